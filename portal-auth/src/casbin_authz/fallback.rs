//! The fallback engine: casbin's own `Enforcer`, for models the index does not compile.

use std::sync::{Mutex, MutexGuard, PoisonError};

use casbin::{CoreApi, Enforcer};
use portal_core::access::{
    AccessError, AccessRequest, Decision, Denial, DenialReason, Domain, Effect, Grant, Name, PolicyLine, PolicyRule,
    Revision,
};

use super::PolicyError;
use super::model::{actor_roles, casbin_request, casbin_rule, request_links};
use super::validate;

/// How many checks run between two rebuilds of casbin's role links, which drop the
/// principals' nodes that per-request links leave in casbin's role graph.
const CHECKS_PER_REBUILD: u32 = 4096;

/// casbin's Enforcer behind a mutex: a check adds the request's role links, enforces and
/// takes the links away again, so checks run one at a time.
pub(crate) struct Fallback {
    state: Mutex<State>,
}

struct State {
    enforcer: Enforcer,
    revision: Revision,
    checks_since_rebuild: u32,
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fallback").finish_non_exhaustive()
    }
}

impl Fallback {
    pub(crate) fn new(enforcer: Enforcer, revision: Revision) -> Self {
        Self {
            state: Mutex::new(State {
                enforcer,
                revision,
                checks_since_rebuild: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn revision(&self) -> Revision {
        self.lock().revision
    }

    /// Whether casbin allows `request`, given the request's role links.
    pub(crate) fn allows(&self, request: &AccessRequest<'_>) -> Result<bool, AccessError> {
        let mut state = self.lock();
        let links = request_links(request);
        let rm = state.enforcer.get_role_manager();
        {
            let mut rm = rm.write();
            for link in &links {
                rm.add_link(&link[0], &link[1], Some(&link[2]));
            }
        }
        let result = state.enforcer.enforce(casbin_request(request));
        {
            let mut rm = rm.write();
            for link in &links {
                // The link was added just above, so deleting it finds it.
                let _ = rm.delete_link(&link[0], &link[1], Some(&link[2]));
            }
        }
        state.checks_since_rebuild += 1;
        if state.checks_since_rebuild >= CHECKS_PER_REBUILD {
            state.checks_since_rebuild = 0;
            state
                .enforcer
                .build_role_links()
                .map_err(|e| AccessError::new("casbin could not rebuild its role links", Some(Box::new(e))))?;
        }
        result.map_err(|e| AccessError::new("casbin's enforcer failed", Some(Box::new(e))))
    }

    /// Decides with casbin and explains as far as casbin tells: an allow's rule is the
    /// request itself with subject `*`, and its `via` lists the actor's roles; a denial is
    /// [`DenialReason::NoGrant`] with no suggested roles.
    pub(crate) fn check(&self, request: &AccessRequest<'_>) -> Result<Decision, AccessError> {
        if self.allows(request)? {
            Ok(Decision::Allowed(Grant {
                rule: PolicyRule {
                    subject: super::index::ANY,
                    domain: request.domain,
                    object: request.object.into(),
                    action: request.action.into(),
                    effect: Effect::Allow,
                },
                via: actor_roles(request).iter().map(Name::from).collect(),
            }))
        } else {
            Ok(Decision::Denied(Denial {
                reason: DenialReason::NoGrant,
                roles: request.roles.to_vec(),
                would_grant: Vec::new(),
            }))
        }
    }

    /// Removes then adds lines and rebuilds casbin's role links.
    pub(crate) fn apply(
        &self,
        added: &[PolicyLine],
        removed: &[PolicyLine],
        revision: Option<Revision>,
    ) -> Result<Revision, PolicyError> {
        for line in added {
            validate::fallback_line(line)?;
        }
        let mut state = self.lock();
        let next = match revision {
            Some(r) if r <= state.revision => return Ok(state.revision),
            Some(r) => r,
            None => Revision(state.revision.0 + 1),
        };
        let model = state.enforcer.get_mut_model();
        for line in removed {
            let (ptype, values) = casbin_rule(line);
            model.remove_policy(ptype, ptype, values);
        }
        for line in added {
            let (ptype, values) = casbin_rule(line);
            model.add_policy(ptype, ptype, values);
        }
        state.enforcer.build_role_links().map_err(PolicyError::model)?;
        state.revision = next;
        Ok(next)
    }

    pub(crate) fn set_revision(&self, revision: Revision) {
        self.lock().revision = revision;
    }

    /// Every line casbin holds, read back from its model.
    pub(crate) fn lines(&self) -> Vec<PolicyLine> {
        let state = self.lock();
        let model = state.enforcer.get_model();
        let mut out = Vec::new();
        for values in model.get_policy("p", "p") {
            if let [subject, domain, object, action, effect] = values.as_slice()
                && let Ok(domain) = domain.parse::<Domain>()
            {
                out.push(PolicyLine::Permission(PolicyRule {
                    subject: subject.into(),
                    domain,
                    object: object.into(),
                    action: action.into(),
                    effect: if effect == "deny" { Effect::Deny } else { Effect::Allow },
                }));
            }
        }
        for values in model.get_policy("g", "g") {
            if let [role, parent, domain] = values.as_slice()
                && let Ok(domain) = domain.parse::<Domain>()
            {
                out.push(PolicyLine::Inherit {
                    role: role.clone(),
                    parent: parent.clone(),
                    domain,
                });
            }
        }
        out
    }
}
