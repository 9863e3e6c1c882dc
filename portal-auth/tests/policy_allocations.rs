//! How many heap blocks a permission check allocates, counted by a global allocator: none
//! for a decision without explanation (`is_allowed`) of an actor holding up to eight
//! roles, one for an explained allow (its `via` chain), at most two for an explained denial
//! (the actor's roles and the suggested ones). `docs/architecture.md` states these counts.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of a test fail loudly; clippy.toml relaxes this only inside #[test] functions"
)]

use portal_auth::CasbinAuthorizer;
use portal_auth::casbin_authz::builtin_policy;
use portal_core::Principal;
use portal_core::access::{AccessRequest, Authorizer, Decision, Domain, Effect, PolicyLine, PolicyRule};
use portal_core::ids::{OrgId, UserId};
use portal_core::tenancy::RoleName;

/// The heap blocks `f` allocates on this thread (`allocation_counter` counts per thread).
fn blocks<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let mut out = None;
    let info = allocation_counter::measure(|| out = Some(f()));
    (info.count_total, out.unwrap())
}

fn org() -> OrgId {
    OrgId::from_uuid(uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
}

fn user() -> Principal {
    Principal::User(UserId::from_uuid(uuid::Uuid::from_u128(
        0x0190_0000_0000_7000_8000_0000_0000_0002,
    )))
}

/// The built-in policy and, in the org: custom roles `c1` … `c9`, each inheriting
/// `viewer`; `c0`, alone allowed to approve reports; and a chain `d0` → `d1` → … → `d6` →
/// `viewer`, as deep as inheritance may go but one.
fn authorizer() -> CasbinAuthorizer {
    let domain = Domain::Org(org());
    let mut lines = builtin_policy();
    let inherit = |role: String, parent: String| PolicyLine::Inherit { role, parent, domain };
    for i in 1..10 {
        lines.push(inherit(format!("c{i}"), "viewer".to_owned()));
    }
    for i in 0..7 {
        let parent = if i == 6 {
            "viewer".to_owned()
        } else {
            format!("d{}", i + 1)
        };
        lines.push(inherit(format!("d{i}"), parent));
    }
    lines.push(PolicyLine::Permission(PolicyRule {
        subject: "c0".into(),
        domain,
        object: "reports".into(),
        action: "approve".into(),
        effect: Effect::Allow,
    }));
    CasbinAuthorizer::new(&lines).unwrap()
}

#[test]
fn a_check_allocates_only_what_its_explanation_holds() {
    let authorizer = authorizer();
    let principal = user();
    let ask = |roles: &[RoleName], object: &'static str, action: &'static str| {
        let request = AccessRequest {
            principal: &principal,
            domain: Domain::Org(org()),
            roles,
            object,
            action,
        };
        // Once uncounted: a thread's first read of the snapshot registers it with arc-swap.
        let _ = authorizer.check(&request).unwrap();
        let (decision_blocks, allowed) = blocks(|| authorizer.is_allowed(&request).unwrap());
        let (check_blocks, decision) = blocks(|| authorizer.check(&request).unwrap());
        (decision_blocks, allowed, check_blocks, decision)
    };
    for held in 1..=8 {
        // `c9` … down to `c(10 - held)`, each reaching `viewer`, which may read members.
        let roles: Vec<RoleName> = (10 - held..10)
            .rev()
            .map(|i| RoleName::new(&format!("c{i}")).unwrap())
            .collect();
        let (decision_blocks, allowed, check_blocks, decision) = ask(&roles, "members", "read");
        assert!(allowed, "{held} roles");
        assert_eq!(decision_blocks, 0, "is_allowed with {held} roles allocated");
        let Decision::Allowed(grant) = decision else {
            panic!("{held} roles: denied")
        };
        assert_eq!(grant.via.first().map(|n| n.as_str()), Some("c9"));
        assert_eq!(
            check_blocks, 1,
            "an explained allow with {held} roles: only the via chain"
        );

        // Denied: the roles are copied, and the role that would grant is suggested.
        // (The roles held, at most c2 … c9, never include c0.)
        let (decision_blocks, allowed, check_blocks, decision) = ask(&roles, "reports", "approve");
        assert!(!allowed, "{held} roles");
        assert_eq!(decision_blocks, 0, "a denied is_allowed with {held} roles allocated");
        let Decision::Denied(denial) = decision else {
            panic!("{held} roles may approve reports")
        };
        assert_eq!(denial.would_grant, ["c0", "owner"], "{held} roles");
        assert_eq!(
            check_blocks, 2,
            "an explained denial with {held} roles: its roles and would_grant"
        );
    }
    // A long chain: d0 reaches viewer through seven steps, still one block.
    let roles = vec![RoleName::new("d0").unwrap()];
    let (decision_blocks, allowed, check_blocks, decision) = ask(&roles, "members", "read");
    assert!(allowed);
    assert_eq!(decision_blocks, 0);
    let Decision::Allowed(grant) = decision else {
        panic!("d0 may read members")
    };
    assert_eq!(grant.via.len(), 8, "{:?}", grant.via);
    assert_eq!(check_blocks, 1);
}
