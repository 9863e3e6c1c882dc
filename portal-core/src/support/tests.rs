//! Unit tests of support grant values: the reason's bounds, the active window, the roles.

use time::Duration;
use time::macros::datetime;

use super::{SupportAccess, SupportGrant, SupportReason};
use crate::context::Principal;
use crate::error::ErrorCode;
use crate::ids::{GrantId, OrgId, SequentialIds, UserId};

fn grant() -> SupportGrant {
    let ids = SequentialIds::default();
    let at = datetime!(2030-01-01 00:00 UTC);
    SupportGrant {
        id: GrantId::generate(&ids, at),
        staff: UserId::generate(&ids, at),
        org: OrgId::generate(&ids, at),
        reason: SupportReason::new("ticket 1").unwrap(),
        access: SupportAccess::ReadOnly,
        granted_by: Principal::User(UserId::generate(&ids, at)),
        created_at: at,
        expires_at: at + Duration::hours(1),
        revoked_at: None,
        first_used_at: None,
    }
}

#[test]
fn a_reason_is_trimmed_and_must_hold_text() {
    assert_eq!(SupportReason::new("  ticket 1 ").unwrap().as_str(), "ticket 1");
    let long = "x".repeat(SupportReason::MAX_CHARS + 1);
    for bad in ["", "   ", "line\nbreak", long.as_str()] {
        let err = SupportReason::new(bad).unwrap_err();
        assert_eq!(
            (err.code(), err.param()),
            (ErrorCode::InvalidField, Some("reason")),
            "{bad:?}"
        );
    }
    assert!(
        SupportReason::new(&"é".repeat(SupportReason::MAX_CHARS)).is_ok(),
        "the bound counts characters"
    );
}

#[test]
fn a_grant_is_active_from_its_creation_until_its_expiry_or_revocation() {
    let g = grant();
    let micro = Duration::microseconds(1);
    assert!(!g.is_active_at(g.created_at - micro));
    assert!(g.is_active_at(g.created_at));
    assert!(g.is_active_at(g.expires_at - micro));
    assert!(!g.is_active_at(g.expires_at));
    let revoked = SupportGrant {
        revoked_at: Some(g.created_at + Duration::minutes(5)),
        ..g
    };
    assert!(revoked.is_active_at(revoked.created_at + Duration::minutes(5) - micro));
    assert!(!revoked.is_active_at(revoked.created_at + Duration::minutes(5)));
}

#[test]
fn access_levels_map_to_the_built_in_support_roles_and_round_trip() {
    assert_eq!(SupportAccess::ReadOnly.role().as_str(), "support_readonly");
    assert_eq!(SupportAccess::ReadWrite.role().as_str(), "support");
    for access in [SupportAccess::ReadOnly, SupportAccess::ReadWrite] {
        assert_eq!(SupportAccess::parse(access.as_str()), Some(access));
        assert!(crate::access::is_builtin_role(access.role().as_str()));
    }
    assert_eq!(SupportAccess::parse("admin"), None);
}
