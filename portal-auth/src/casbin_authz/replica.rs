//! `CasbinAuthorizer` as a [`PolicyReplica`]: dry runs, changes with the store's
//! revisions, and what roles grant through inheritance.

use std::collections::{BTreeMap, HashSet};

use portal_core::PortalError;
use portal_core::access::{
    Domain, EffectivePermission, PolicyChange, PolicyLine, PolicyReplica, Revision, effective_permissions,
};
use portal_core::tenancy::RoleName;

use super::{CasbinAuthorizer, Engine, validate};

impl CasbinAuthorizer {
    /// The lines of one domain in the current policy.
    fn domain_lines(&self, domain: Domain) -> Vec<PolicyLine> {
        match &self.engine {
            Engine::Index(engine) => engine.snapshot.load().domain(domain).lines(domain),
            Engine::Enforcer(fallback) => fallback.lines().into_iter().filter(|l| l.domain() == domain).collect(),
        }
    }
}

/// The casbin-backed authorizer keeps its copy of the policy at the store's revisions.
///
/// [`validate`](PolicyReplica::validate) compiles each domain the change touches, as it
/// would be afterwards, into a throwaway index (on the fallback engine it checks the
/// added lines' shape only): the cost of one domain, whatever the number of orgs.
/// [`permissions`](PolicyReplica::permissions) reads the domain's and the template's lines
/// from the current snapshot.
impl PolicyReplica for CasbinAuthorizer {
    fn revision(&self) -> Revision {
        CasbinAuthorizer::revision(self)
    }

    fn validate(&self, added: &[PolicyLine], removed: &[PolicyLine]) -> Result<(), PortalError> {
        if !self.is_compiled() {
            for line in added {
                validate::fallback_line(line)?;
            }
            return Ok(());
        }
        let mut touched: BTreeMap<Domain, (HashSet<&PolicyLine>, Vec<&PolicyLine>)> = BTreeMap::new();
        for line in removed {
            touched.entry(line.domain()).or_default().0.insert(line);
        }
        for line in added {
            touched.entry(line.domain()).or_default().1.push(line);
        }
        for (domain, (gone, new)) in touched {
            let current = self.domain_lines(domain);
            let after = current
                .iter()
                .filter(|line| !gone.contains(line))
                .chain(new.iter().copied());
            CasbinAuthorizer::new(after)?;
        }
        Ok(())
    }

    fn apply_change(&self, change: &PolicyChange) -> Result<Revision, PortalError> {
        Ok(CasbinAuthorizer::apply_change(self, change)?)
    }

    fn replace_all(&self, revision: Revision, lines: &[PolicyLine]) -> Result<Revision, PortalError> {
        Ok(CasbinAuthorizer::replace_all(self, revision, lines)?)
    }

    fn permissions(&self, domain: Domain, roles: &[RoleName]) -> Vec<EffectivePermission> {
        let own = self.domain_lines(domain);
        let template = match domain {
            Domain::Org(_) => self.domain_lines(Domain::AllOrgs),
            Domain::Platform | Domain::AllOrgs => Vec::new(),
        };
        effective_permissions(&own, &template, roles)
    }
}
