//! Property tests of `CasbinAuthorizer` over generated policies and requests: it decides
//! exactly as casbin's `Enforcer`, keeps tenants apart, denies by default, lets deny win,
//! never grants on revocation, inherits transitively inside an org, ignores rule order,
//! stays equal to a rebuild under incremental changes, and explains soundly (the rule named
//! grants, the role chain is a shortest one, a denial suggests exactly the roles that grant).

#![allow(
    clippy::unwrap_used,
    reason = "helpers of a test fail loudly; clippy.toml relaxes this only inside #[test] functions"
)]

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use casbin::{CoreApi, MgmtApi};
use portal_auth::casbin_authz::{self, CasbinAuthorizer, MODEL, SIGNED_IN_ROLE, casbin_request, request_links};
use portal_core::Principal;
use portal_core::access::{AccessRequest, Authorizer, Decision, DenialReason, Domain, Effect, PolicyLine, PolicyRule};
use portal_core::ids::{ApiKeyId, OrgId, SequentialIds, UserId};
use portal_core::tenancy::RoleName;
use proptest::prelude::*;
use time::OffsetDateTime;

/// Role names the policies use; edges go only from a lower to a higher index, so the
/// inheritance graph is acyclic and at most five links deep.
const ROLES: [&str; 6] = ["admin", "viewer", "reviewer_a", "reviewer_b", "reviewe", "user"];
const RULE_OBJECTS: [&str; 9] = [
    "*",
    "cases/*",
    "cases/{id}",
    "cases/{id}/notes",
    "members",
    "cases/1",
    "a/*/b",
    "docs",
    "x-{id}/*",
];
const RULE_ACTIONS: [&str; 3] = ["*", "read", "write"];
const REQUEST_OBJECTS: [&str; 14] = [
    "cases/1",
    "cases/",
    "cases/1/notes",
    "cases/a\nb",
    "members",
    "docs",
    "a/x/b",
    "a//b",
    "cases",
    "*",
    "x-é/",
    "cases/1/x",
    "a/\n/b",
    "members/1",
];
const REQUEST_ACTIONS: [&str; 4] = ["read", "write", "*", "delete"];

fn orgs() -> [OrgId; 3] {
    let ids = SequentialIds::default();
    let at = OffsetDateTime::UNIX_EPOCH;
    [
        OrgId::generate(&ids, at),
        OrgId::generate(&ids, at),
        OrgId::generate(&ids, at),
    ]
}

fn domain_of(index: usize) -> Domain {
    match index {
        0..=2 => Domain::Org(orgs()[index]),
        3 => Domain::Platform,
        _ => Domain::AllOrgs,
    }
}

fn permission() -> impl Strategy<Value = PolicyLine> {
    (
        0..ROLES.len(),
        prop::sample::select(vec![0usize, 0, 1, 1, 2, 3, 4, 4]),
        0..RULE_OBJECTS.len(),
        0..RULE_ACTIONS.len(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(role, domain, object, action, deny)| {
            PolicyLine::Permission(PolicyRule {
                subject: ROLES[role].into(),
                domain: domain_of(domain),
                object: RULE_OBJECTS[object].into(),
                action: RULE_ACTIONS[action].into(),
                effect: if deny { Effect::Deny } else { Effect::Allow },
            })
        })
}

fn inherit() -> impl Strategy<Value = PolicyLine> {
    (0..ROLES.len() - 1, 1..ROLES.len(), 0..4usize).prop_map(|(child, offset, domain)| {
        let parent = (child + offset).min(ROLES.len() - 1);
        let parent = if parent == child { child + 1 } else { parent };
        PolicyLine::Inherit {
            role: ROLES[child].to_owned(),
            parent: ROLES[parent].to_owned(),
            domain: domain_of(domain),
        }
    })
}

fn policy() -> impl Strategy<Value = Vec<PolicyLine>> {
    (
        prop::collection::vec(permission(), 0..40),
        prop::collection::vec(inherit(), 0..10),
    )
        .prop_map(|(mut p, g)| {
            p.extend(g);
            p
        })
}

/// A request without its principal: who asks is made unique per request in [`principal`].
#[derive(Debug, Clone)]
struct Ask {
    key: bool,
    domain: usize,
    roles: Vec<RoleName>,
    object: &'static str,
    action: &'static str,
}

fn ask() -> impl Strategy<Value = Ask> {
    (
        prop::bool::weighted(0.15),
        prop::sample::select(vec![0usize, 0, 0, 1, 1, 2, 3, 3, 4]),
        prop::sample::subsequence(ROLES.to_vec(), 1..4),
        prop::sample::select(REQUEST_OBJECTS.to_vec()),
        prop::sample::select(REQUEST_ACTIONS.to_vec()),
    )
        .prop_map(|(key, domain, roles, object, action)| Ask {
            key,
            domain,
            roles: roles.into_iter().map(|r| RoleName::new(r).unwrap()).collect(),
            object,
            action,
        })
}

/// The `n`th principal: a user, or an API key of the first org.
fn principal(n: usize, key: bool) -> Principal {
    let id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n as u128);
    if key {
        Principal::ApiKey {
            key: ApiKeyId::from_uuid(id),
            org: orgs()[0],
        }
    } else {
        Principal::User(UserId::from_uuid(id))
    }
}

fn request<'a>(principal: &'a Principal, ask: &'a Ask) -> AccessRequest<'a> {
    AccessRequest {
        principal,
        domain: domain_of(ask.domain),
        roles: &ask.roles,
        object: ask.object,
        action: ask.action,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

/// casbin's decisions on `asks`, with every request's role links added (each request
/// has its own principal, so the links do not mix).
fn enforcer_decisions(lines: &[PolicyLine], principals: &[Principal], asks: &[Ask]) -> Vec<bool> {
    runtime().block_on(async {
        let mut enforcer = casbin_authz::enforcer(MODEL, lines).await.unwrap();
        let links: Vec<Vec<String>> = principals
            .iter()
            .zip(asks)
            .flat_map(|(p, a)| request_links(&request(p, a)))
            .collect();
        if !links.is_empty() {
            enforcer.add_grouping_policies(links).await.unwrap();
        }
        principals
            .iter()
            .zip(asks)
            .map(|(p, a)| enforcer.enforce(casbin_request(&request(p, a))).unwrap())
            .collect()
    })
}

/// The roles an actor reaches in `domain` by the lines, found by a plain search.
fn reachable(lines: &[PolicyLine], domain: Domain, direct: &[String]) -> HashSet<String> {
    let mut seen: HashSet<String> = direct.iter().cloned().collect();
    let mut queue: VecDeque<String> = direct.iter().cloned().collect();
    while let Some(role) = queue.pop_front() {
        for line in lines {
            if let PolicyLine::Inherit {
                role: r,
                parent,
                domain: d,
            } = line
                && *d == domain
                && *r == role
                && seen.insert(parent.clone())
            {
                queue.push_back(parent.clone());
            }
        }
    }
    seen
}

/// The fewest inheritance steps in `domain` from one of `direct` to `target` (0 when it
/// is held), found by a plain breadth-first search of the lines.
fn distance(lines: &[PolicyLine], domain: Domain, direct: &[String], target: &str) -> Option<usize> {
    let mut seen: HashSet<&str> = direct.iter().map(String::as_str).collect();
    let mut level: Vec<&str> = seen.iter().copied().collect();
    for steps in 0.. {
        if level.is_empty() {
            return None;
        }
        if level.contains(&target) {
            return Some(steps);
        }
        let mut next = Vec::new();
        for line in lines {
            if let PolicyLine::Inherit {
                role,
                parent,
                domain: d,
            } = line
                && *d == domain
                && level.contains(&role.as_str())
                && seen.insert(parent.as_str())
            {
                next.push(parent.as_str());
            }
        }
        level = next;
    }
    None
}

/// The roles the index counts for a request, by the documented rules.
fn direct_roles(request: &AccessRequest<'_>) -> Vec<String> {
    let mut roles: Vec<String> = match (request.principal, request.domain) {
        (_, Domain::AllOrgs) => Vec::new(),
        (Principal::ApiKey { org, .. }, domain) if domain != Domain::Org(*org) => Vec::new(),
        _ => request.roles.iter().map(|r| r.as_str().to_owned()).collect(),
    };
    if matches!(request.principal, Principal::User(_)) && request.domain == Domain::Platform {
        roles.push(SIGNED_IN_ROLE.to_owned());
    }
    roles
}

fn rule_matches(rule: &PolicyRule, request: &AccessRequest<'_>) -> bool {
    let domain_ok =
        rule.domain == request.domain || (rule.domain == Domain::AllOrgs && matches!(request.domain, Domain::Org(_)));
    let object_ok = rule.object == "*" || casbin::function_map::key_match3(request.object, &rule.object);
    let action_ok = rule.action == "*" || rule.action == request.action;
    domain_ok && object_ok && action_ok
}

/// Deny over allow, evaluated line by line: the oracle for suggested roles.
fn naive_allowed(lines: &[PolicyLine], request: &AccessRequest<'_>, direct: &[String]) -> bool {
    let reach = reachable(lines, request.domain, direct);
    let matching = |effect: Effect| {
        lines.iter().any(|l| {
            matches!(l, PolicyLine::Permission(rule)
                if rule.effect == effect && reach.contains(rule.subject.as_str()) && rule_matches(rule, request))
        })
    };
    matching(Effect::Allow) && !matching(Effect::Deny)
}

/// Roles named by lines of `domain` (and of the template, for an org).
fn roles_named(lines: &[PolicyLine], domain: Domain) -> HashSet<String> {
    let mut out = HashSet::new();
    for line in lines {
        let applies = line.domain() == domain || (line.domain() == Domain::AllOrgs && matches!(domain, Domain::Org(_)));
        if !applies {
            continue;
        }
        match line {
            PolicyLine::Permission(rule) => {
                out.insert(rule.subject.to_string());
            }
            PolicyLine::Inherit { role, parent, .. } => {
                out.insert(role.clone());
                out.insert(parent.clone());
            }
        }
    }
    out
}

fn is_deny(line: &PolicyLine) -> bool {
    matches!(line, PolicyLine::Permission(r) if r.effect == Effect::Deny)
}

fn build(lines: &[PolicyLine]) -> CasbinAuthorizer {
    CasbinAuthorizer::new(lines).unwrap()
}

fn decisions(authorizer: &CasbinAuthorizer, principals: &[Principal], asks: &[Ask]) -> Vec<Decision> {
    principals
        .iter()
        .zip(asks)
        .map(|(p, a)| authorizer.check(&request(p, a)).unwrap())
        .collect()
}

fn principals_for(asks: &[Ask]) -> Vec<Principal> {
    asks.iter().enumerate().map(|(n, a)| principal(n, a.key)).collect()
}

/// How many differential checks ran and how many were allowed, to show the generated
/// requests exercise both outcomes.
static CHECKED: AtomicUsize = AtomicUsize::new(0);
static ALLOWED: AtomicUsize = AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_index_decides_exactly_as_casbins_enforcer(lines in policy(), asks in prop::collection::vec(ask(), 1..60)) {
        let principals = principals_for(&asks);
        let authorizer = build(&lines);
        let expected = enforcer_decisions(&lines, &principals, &asks);
        for ((p, a), casbin) in principals.iter().zip(&asks).zip(expected) {
            let ours = authorizer.is_allowed(&request(p, a)).unwrap();
            ALLOWED.fetch_add(usize::from(ours), Ordering::Relaxed);
            CHECKED.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(ours, casbin, "request {:?}", a);
            prop_assert_eq!(authorizer.check(&request(p, a)).unwrap().is_allowed(), casbin);
        }
    }
}

#[test]
fn the_differential_test_sees_both_outcomes() {
    the_index_decides_exactly_as_casbins_enforcer();
    let (checked, allowed) = (CHECKED.load(Ordering::Relaxed), ALLOWED.load(Ordering::Relaxed));
    println!("differential: {checked} checks, {allowed} allowed");
    assert!(
        allowed * 20 > checked,
        "only {allowed} of {checked} generated requests were allowed"
    );
    assert!(
        allowed * 10 < checked * 9,
        "{allowed} of {checked} generated requests were allowed"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn nothing_in_one_org_reaches_another(lines in policy(), asks in prop::collection::vec(ask(), 1..60), removed in 0..3usize) {
        let principals = principals_for(&asks);
        let org = Domain::Org(orgs()[removed]);
        let without: Vec<PolicyLine> = lines.iter().filter(|l| l.domain() != org).cloned().collect();
        let (full, stripped) = (build(&lines), build(&without));
        for (p, a) in principals.iter().zip(&asks) {
            let r = request(p, a);
            if r.domain != org {
                prop_assert_eq!(full.check(&r).unwrap(), stripped.check(&r).unwrap());
            }
        }
    }

    #[test]
    fn no_rule_means_no_access_and_deny_lines_alone_grant_nothing(lines in policy(), asks in prop::collection::vec(ask(), 1..60)) {
        let principals = principals_for(&asks);
        let denies: Vec<PolicyLine> = lines
            .iter()
            .filter(|l| !matches!(l, PolicyLine::Permission(r) if r.effect == Effect::Allow))
            .cloned()
            .collect();
        let (empty, deny_only) = (build(&[]), build(&denies));
        for (p, a) in principals.iter().zip(&asks) {
            let Decision::Denied(denial) = empty.check(&request(p, a)).unwrap() else {
                return Err(TestCaseError::fail("an empty policy allowed"));
            };
            prop_assert_eq!(denial.reason, DenialReason::NoGrant);
            prop_assert!(denial.would_grant.is_empty());
            prop_assert!(!deny_only.is_allowed(&request(p, a)).unwrap());
        }
    }

    #[test]
    fn an_explicit_deny_wins_over_the_grant(lines in policy(), asks in prop::collection::vec(ask(), 1..60)) {
        let principals = principals_for(&asks);
        let authorizer = build(&lines);
        for (p, a) in principals.iter().zip(&asks) {
            let r = request(p, a);
            if let Decision::Allowed(grant) = authorizer.check(&r).unwrap() {
                let deny = PolicyLine::Permission(PolicyRule { effect: Effect::Deny, ..grant.rule.clone() });
                let mut with_deny = lines.clone();
                with_deny.push(deny);
                let Decision::Denied(denial) = build(&with_deny).check(&r).unwrap() else {
                    return Err(TestCaseError::fail("an allow survived a deny of its own rule"));
                };
                let explicit = matches!(denial.reason, DenialReason::ExplicitDeny { .. });
                prop_assert!(explicit, "the denial names no deny rule");
            }
        }
    }

    /// Deny lines work the other way round (removing one, or a role or `g` line that
    /// reaches one, can grant), so: removing allow lines never grants, in any policy;
    /// removing `g` lines or the actor's roles never grants where no deny line exists.
    #[test]
    fn revoking_grants_or_roles_never_grants_anything_new(
        lines in policy(),
        asks in prop::collection::vec(ask(), 1..60),
        keep in prop::collection::vec(any::<bool>(), 32),
    ) {
        let principals = principals_for(&asks);
        let revoke = |allowed_kind: &dyn Fn(&PolicyLine) -> bool| -> Vec<PolicyLine> {
            lines.iter().zip(keep.iter().cycle()).filter(|(l, keep)| !**keep && allowed_kind(l)).map(|(l, _)| l.clone()).collect()
        };
        let allow_lines = revoke(&|l| matches!(l, PolicyLine::Permission(r) if r.effect == Effect::Allow));
        let deny_free: Vec<PolicyLine> = lines.iter().filter(|l| !is_deny(l)).cloned().collect();
        let g_lines = revoke(&|l| matches!(l, PolicyLine::Inherit { .. }));
        for (policy, revoked) in [(&lines, &allow_lines), (&deny_free, &g_lines)] {
            let before = build(policy);
            let after = build(policy);
            after.apply(&[], revoked).unwrap();
            for (p, a) in principals.iter().zip(&asks) {
                let r = request(p, a);
                if after.is_allowed(&r).unwrap() {
                    prop_assert!(before.is_allowed(&r).unwrap(), "revoking {:?} granted {:?}", revoked, a);
                }
            }
        }
        let deny_free = build(&deny_free);
        for (p, a) in principals.iter().zip(&asks) {
            let fewer = Ask { roles: a.roles.iter().skip(1).cloned().collect(), ..a.clone() };
            if deny_free.is_allowed(&request(p, &fewer)).unwrap() {
                prop_assert!(deny_free.is_allowed(&request(p, a)).unwrap(), "dropping a role granted {:?}", a);
            }
        }
    }

    #[test]
    fn inheritance_is_transitive_and_stays_in_its_org(lines in policy(), asks in prop::collection::vec(ask(), 1..60)) {
        // Without deny lines, a role is allowed at least what each role it inherits is.
        let allows: Vec<PolicyLine> = lines.iter().filter(|l| !is_deny(l)).cloned().collect();
        let authorizer = build(&allows);
        let user = principal(0, false);
        for a in &asks {
            let domain = domain_of(a.domain);
            for child in ROLES {
                let ancestors = reachable(&allows, domain, &[child.to_owned()]);
                let child_ask = Ask { key: false, roles: vec![RoleName::new(child).unwrap()], ..a.clone() };
                let child_allowed = authorizer.is_allowed(&request(&user, &child_ask)).unwrap();
                for ancestor in &ancestors {
                    let ancestor_ask = Ask { key: false, roles: vec![RoleName::new(ancestor).unwrap()], ..a.clone() };
                    if authorizer.is_allowed(&request(&user, &ancestor_ask)).unwrap() {
                        prop_assert!(child_allowed, "{} inherits {} in {} but is denied {:?}", child, ancestor, domain, a);
                    }
                }
            }
        }
    }

    #[test]
    fn the_order_of_lines_does_not_matter(lines in policy(), asks in prop::collection::vec(ask(), 1..60), seed in any::<u64>()) {
        let principals = principals_for(&asks);
        let mut shuffled = lines.clone();
        shuffled.reverse();
        let n = shuffled.len().max(1);
        shuffled.rotate_left((seed as usize) % n);
        shuffled.extend(lines.iter().take(3).cloned());
        prop_assert_eq!(
            decisions(&build(&lines), &principals, &asks),
            decisions(&build(&shuffled), &principals, &asks)
        );
    }

    #[test]
    fn incremental_changes_equal_a_rebuild(
        first in policy(),
        second in policy(),
        asks in prop::collection::vec(ask(), 1..60),
        batch in 1..6usize,
    ) {
        let principals = principals_for(&asks);
        let authorizer = build(&first);
        let (old, new): (HashSet<&PolicyLine>, HashSet<&PolicyLine>) = (first.iter().collect(), second.iter().collect());
        let removed: Vec<PolicyLine> = old.difference(&new).map(|l| (*l).clone()).collect();
        let added: Vec<PolicyLine> = second.iter().filter(|l| !old.contains(l)).cloned().collect();
        let mut revision = authorizer.revision();
        for chunk in removed.chunks(batch) {
            let next = authorizer.apply(&[], chunk).unwrap();
            prop_assert!(next > revision);
            revision = next;
        }
        for chunk in added.chunks(batch) {
            let next = authorizer.apply(chunk, &[]).unwrap();
            prop_assert!(next > revision);
            revision = next;
        }
        let rebuilt = build(&second);
        let (got, want): (HashSet<PolicyLine>, HashSet<PolicyLine>) =
            (authorizer.lines().into_iter().collect(), rebuilt.lines().into_iter().collect());
        prop_assert_eq!(got, want);
        prop_assert_eq!(decisions(&authorizer, &principals, &asks), decisions(&rebuilt, &principals, &asks));
    }

    #[test]
    fn explanations_are_sound(lines in policy(), asks in prop::collection::vec(ask(), 1..60)) {
        let principals = principals_for(&asks);
        let authorizer = build(&lines);
        for (p, a) in principals.iter().zip(&asks) {
            let r = request(p, a);
            let direct = direct_roles(&r);
            let reach = reachable(&lines, r.domain, &direct);
            let in_policy = |rule: &PolicyRule| lines.contains(&PolicyLine::Permission(rule.clone()));
            match authorizer.check(&r).unwrap() {
                Decision::Allowed(grant) => {
                    prop_assert!(in_policy(&grant.rule), "the grant names {} which is not in the policy", grant.rule);
                    prop_assert_eq!(grant.rule.effect, Effect::Allow);
                    prop_assert!(rule_matches(&grant.rule, &r), "{} does not match {:?}", grant.rule, a);
                    prop_assert!(direct.iter().any(|d| *d == grant.via[0]), "via starts at {} the actor does not hold", grant.via[0]);
                    prop_assert_eq!(grant.via.last(), Some(&grant.rule.subject));
                    for pair in grant.via.windows(2) {
                        let edge = PolicyLine::Inherit { role: pair[0].to_string(), parent: pair[1].to_string(), domain: r.domain };
                        prop_assert!(lines.contains(&edge), "via uses {:?}, not in the policy", edge);
                    }
                    // And it is a shortest chain from a held role to the rule's.
                    prop_assert_eq!(
                        Some(grant.via.len() - 1),
                        distance(&lines, r.domain, &direct, &grant.rule.subject),
                        "via {:?} is not a shortest chain", grant.via
                    );
                }
                Decision::Denied(denial) => {
                    let matching = |effect: Effect| {
                        lines.iter().any(|l| matches!(l, PolicyLine::Permission(rule)
                            if rule.effect == effect && reach.contains(rule.subject.as_str()) && rule_matches(rule, &r)))
                    };
                    match &denial.reason {
                        DenialReason::ExplicitDeny { rule } => {
                            prop_assert!(in_policy(rule));
                            prop_assert_eq!(rule.effect, Effect::Deny);
                            prop_assert!(rule_matches(rule, &r) && reach.contains(rule.subject.as_str()));
                        }
                        DenialReason::NoGrant => {
                            prop_assert!(!matching(Effect::Allow), "a NoGrant denial of {:?} has a granting rule", a);
                            prop_assert!(!matching(Effect::Deny));
                        }
                    }
                    prop_assert_eq!(&denial.roles, &a.roles);
                    // Suggested roles are exactly those of the domain that would grant to
                    // someone holding that role alone.
                    let mut expected: Vec<String> = match r.domain {
                        Domain::AllOrgs => Vec::new(),
                        Domain::Org(org) if matches!(p, Principal::ApiKey { org: key_org, .. } if *key_org != org) => Vec::new(),
                        Domain::Platform if matches!(p, Principal::ApiKey { .. }) => Vec::new(),
                        domain => roles_named(&lines, domain)
                            .into_iter()
                            .filter(|role| naive_allowed(&lines, &r, std::slice::from_ref(role)))
                            .collect(),
                    };
                    expected.sort();
                    prop_assert_eq!(&denial.would_grant, &expected);
                }
            }
        }
    }

    /// On inheritance graphs with many ways to one role (12 roles, any acyclic edges), the
    /// explained chain is a shortest one from the roles held, whichever order they come in.
    #[test]
    fn an_explained_chain_is_a_shortest_one(
        edges in prop::collection::vec((0usize..12, 0usize..12), 0..40),
        held in prop::sample::subsequence((0usize..12).collect::<Vec<_>>(), 1..5),
        shuffle in any::<u64>(),
        target in 0usize..12,
    ) {
        let org = domain_of(0);
        let role = |i: usize| format!("r{i:02}");
        let mut lines: Vec<PolicyLine> = edges
            .iter()
            .filter(|(a, b)| a < b)
            .map(|(a, b)| PolicyLine::Inherit { role: role(*a), parent: role(*b), domain: org })
            .collect();
        lines.push(PolicyLine::Permission(PolicyRule {
            subject: role(target).into(),
            domain: org,
            object: "docs".into(),
            action: "read".into(),
            effect: Effect::Allow,
        }));
        let authorizer = build(&lines);
        let mut held: Vec<String> = held.into_iter().map(role).collect();
        let turn = shuffle as usize % held.len();
        held.rotate_left(turn);
        let roles: Vec<RoleName> = held.iter().map(|r| RoleName::new(r).unwrap()).collect();
        let user = principal(1, false);
        let request = AccessRequest { principal: &user, domain: org, roles: &roles, object: "docs", action: "read" };
        let expected = distance(&lines, org, &held, &role(target));
        match authorizer.check(&request).unwrap() {
            Decision::Allowed(grant) => {
                prop_assert_eq!(Some(grant.via.len() - 1), expected, "via {:?}", grant.via);
                prop_assert!(held.iter().any(|h| *h == grant.via[0]));
            }
            Decision::Denied(_) => prop_assert_eq!(expected, None),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Patterns under deny: API key scopes and custom role grants, decided through the gate
// ---------------------------------------------------------------------------------------

/// Scopes a key may be made with, and grants a custom role may hold: patterns included.
const SCOPE_OBJECTS: [&str; 6] = ["*", "cases/*", "cases/1", "members", "docs", "a/*"];
const SCOPE_ACTIONS: [&str; 3] = ["*", "read", "write"];
/// The concrete requests a key or a role holder may then make.
const CONCRETE_OBJECTS: [&str; 8] = [
    "cases/1",
    "cases/2",
    "cases/1/notes",
    "members",
    "docs",
    "a/x/b",
    "a/x",
    "cases",
];
const CONCRETE_ACTIONS: [&str; 3] = ["read", "write", "delete"];

struct Nowhere;

impl portal_core::diagnostics::DiagnosticSink for Nowhere {
    fn record(&self, _event: portal_core::diagnostics::DiagnosticEvent) {}
}

/// A gate deciding with `authorizer`; the decisions asked here read no membership.
fn gate_over(authorizer: std::sync::Arc<dyn Authorizer>) -> portal_core::gate::Gate {
    portal_core::gate::Gate::new(
        authorizer,
        std::sync::Arc::new(Nowhere),
        portal_core::gate::MockMembershipSource::new(),
    )
}

/// Policies of one org (and the template) where rule objects are the scope-like patterns
/// the gate can weigh exactly, with denies.
fn pattern_policy() -> impl Strategy<Value = Vec<PolicyLine>> {
    let rule = (
        0..ROLES.len(),
        prop::sample::select(vec![0usize, 0, 1]),
        0..SCOPE_OBJECTS.len(),
        0..SCOPE_ACTIONS.len(),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(role, domain, object, action, deny)| {
            PolicyLine::Permission(PolicyRule {
                subject: ROLES[role].into(),
                domain: domain_of(domain),
                object: SCOPE_OBJECTS[object].into(),
                action: SCOPE_ACTIONS[action].into(),
                effect: if deny { Effect::Deny } else { Effect::Allow },
            })
        });
    (
        prop::collection::vec(rule, 0..30),
        prop::collection::vec(inherit(), 0..6),
    )
        .prop_map(|(mut p, g)| {
            p.extend(g);
            p
        })
}

fn creator_roles() -> impl Strategy<Value = Vec<RoleName>> {
    prop::sample::subsequence(ROLES.to_vec(), 1..4)
        .prop_map(|roles| roles.into_iter().map(|r| RoleName::new(r).unwrap()).collect())
}

/// Whether `user` holding `roles` in the first org may do `action` on `object`, through
/// the gate (which is how key creation and role writes ask).
fn gate_allows(
    gate: &portal_core::gate::Gate,
    user: &Principal,
    roles: &[RoleName],
    object: &str,
    action: &str,
) -> bool {
    gate.decision_for(user, domain_of(0), roles, object, action)
        .unwrap()
        .is_allowed()
}

fn authorizers(lines: &[PolicyLine]) -> Vec<(&'static str, std::sync::Arc<dyn Authorizer>)> {
    vec![
        ("casbin", std::sync::Arc::new(build(lines))),
        (
            "role table",
            std::sync::Arc::new(portal_core::access::RoleTableAuthorizer::default()),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A key is made only with scopes its creator is allowed as written (as
    /// `create_api_key` asks the gate); then every request its scopes allow, its creator
    /// could do when it was made.
    #[test]
    fn a_key_never_allows_what_its_creator_could_not_do_when_it_was_made(
        lines in pattern_policy(),
        roles in creator_roles(),
        scopes in prop::collection::vec((0..SCOPE_OBJECTS.len(), 0..SCOPE_ACTIONS.len()), 1..4),
    ) {
        let creator = principal(1, false);
        for (name, authorizer) in authorizers(&lines) {
            let gate = gate_over(authorizer);
            let scopes: Vec<portal_core::access::Scope> = scopes
                .iter()
                .map(|&(o, a)| portal_core::access::Scope::new(SCOPE_OBJECTS[o], SCOPE_ACTIONS[a]).unwrap())
                .filter(|s| gate_allows(&gate, &creator, &roles, s.object(), s.action()))
                .collect();
            for object in CONCRETE_OBJECTS {
                for action in CONCRETE_ACTIONS {
                    if scopes.iter().any(|s| s.allows(object, action)) {
                        prop_assert!(
                            gate_allows(&gate, &creator, &roles, object, action),
                            "{name}: a key with {scopes:?} may `{action}` `{object}`, its creator (roles {roles:?}) may not"
                        );
                    }
                }
            }
        }
    }

    /// Deny wins for custom roles too: a grant the writer may write (as `create_role`
    /// asks the gate) never reaches, for a holder of the role alone, what a deny rule
    /// forbids the writer.
    #[test]
    fn deny_wins_for_keys_and_custom_roles_too(
        lines in pattern_policy(),
        roles in creator_roles(),
        grant in (0..SCOPE_OBJECTS.len(), 0..SCOPE_ACTIONS.len()),
    ) {
        let writer = principal(1, false);
        let (object, action) = (SCOPE_OBJECTS[grant.0], SCOPE_ACTIONS[grant.1]);
        let gate = gate_over(std::sync::Arc::new(build(&lines)));
        if gate_allows(&gate, &writer, &roles, object, action) {
            // The custom role, written into the org, held by someone else alone.
            let mut with_role = lines.clone();
            with_role.push(PolicyLine::Permission(PolicyRule {
                subject: "custom".into(),
                domain: domain_of(0),
                object: object.into(),
                action: action.into(),
                effect: Effect::Allow,
            }));
            let gate = gate_over(std::sync::Arc::new(build(&with_role)));
            let holder = principal(2, false);
            let custom = [RoleName::new("custom").unwrap()];
            for o in CONCRETE_OBJECTS {
                for a in CONCRETE_ACTIONS {
                    if gate_allows(&gate, &holder, &custom, o, a) {
                        prop_assert!(
                            gate_allows(&gate, &writer, &roles, o, a),
                            "a role granting `{object} {action}` lets its holder `{a}` `{o}`, which its writer (roles {roles:?}) may not"
                        );
                    }
                }
            }
        }
    }
}
