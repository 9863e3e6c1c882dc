//! Unit and property tests of the tenancy values.

use std::collections::BTreeMap;

use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::error::ErrorCode;

fn param_of(err: PortalError) -> (ErrorCode, Option<String>) {
    (err.code(), err.param().map(str::to_owned))
}

#[test]
fn emails_are_trimmed_and_lowercased() {
    let email = Email::new("  Ann.Lee@Example.COM ").unwrap();
    assert_eq!(email.as_str(), "ann.lee@example.com");
}

#[test]
fn malformed_emails_name_the_email_field() {
    for bad in [
        "",
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "ann lee@example.com",
        "ann@@example.com",
        "ann@-example.com",
        "ann@example..com",
        ".ann@example.com",
        "a..b@example.com",
        "ann<x>@example.com",
        &format!("{}@example.com", "a".repeat(65)),
        &format!("ann@{}.com", "a".repeat(250)),
    ] {
        let err = Email::new(bad).unwrap_err();
        assert_eq!(
            param_of(err),
            (ErrorCode::InvalidField, Some("email".to_owned())),
            "{bad}"
        );
    }
}

#[test]
fn international_domains_are_accepted() {
    assert!(Email::new("ann@exämple.de").is_ok());
}

#[test]
fn slugs_follow_the_url_rule() {
    for good in ["acme", "acme-corp", "a1b", &"a".repeat(63)] {
        assert!(Slug::new(good).is_ok(), "{good}");
    }
    for bad in [
        "ab",
        "-acme",
        "acme-",
        "Acme",
        "acme corp",
        "acme_corp",
        &"a".repeat(64),
        "ünï",
    ] {
        let err = Slug::new(bad).unwrap_err();
        assert_eq!(
            param_of(err),
            (ErrorCode::InvalidField, Some("slug".to_owned())),
            "{bad}"
        );
    }
}

#[test]
fn names_are_trimmed_and_bounded() {
    assert_eq!(OrgName::new("  Acme  ").unwrap().as_str(), "Acme");
    assert!(OrgName::new(&"x".repeat(200)).is_ok());
    for bad in ["", "   ", "a\u{0}b", &"x".repeat(201)] {
        let err = OrgName::new(bad).unwrap_err();
        assert_eq!(param_of(err), (ErrorCode::InvalidField, Some("name".to_owned())));
    }
    let err = DisplayName::new("").unwrap_err();
    assert_eq!(err.param(), Some("display_name"));
}

#[test]
fn role_sets_are_non_empty_bounded_and_sorted() {
    let roles = RoleSet::parse(["viewer", "admin", "viewer"]).unwrap();
    assert_eq!(
        roles.iter().map(RoleName::as_str).collect::<Vec<_>>(),
        ["admin", "viewer"]
    );
    assert_eq!(RoleSet::parse(Vec::<&str>::new()).unwrap_err().param(), Some("roles"));
    let many: Vec<String> = (0..17).map(|i| format!("r{i}")).collect();
    assert_eq!(RoleSet::parse(&many).unwrap_err().param(), Some("roles"));
    // A list is bounded as sent: 17 names are refused even when they repeat one role.
    let repeated = vec!["viewer"; RoleSet::MAX + 1];
    assert_eq!(RoleSet::parse(&repeated).unwrap_err().param(), Some("roles"));
    assert!(RoleSet::parse(vec!["viewer"; RoleSet::MAX]).is_ok());
    for bad in ["", "Admin", "1st", "a b", &"r".repeat(65)] {
        assert!(RoleName::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn metadata_is_bounded() {
    let ok: BTreeMap<String, String> = (0..32).map(|i| (format!("k{i}"), "v".into())).collect();
    assert!(Metadata::new(ok).is_ok());
    let too_many: BTreeMap<String, String> = (0..33).map(|i| (format!("k{i}"), "v".into())).collect();
    assert_eq!(Metadata::new(too_many).unwrap_err().param(), Some("metadata"));
    let bad_key = BTreeMap::from([("no spaces".to_owned(), "v".to_owned())]);
    assert_eq!(Metadata::new(bad_key).unwrap_err().param(), Some("metadata"));
    let long_value = BTreeMap::from([("plan".to_owned(), "x".repeat(1025))]);
    assert_eq!(Metadata::new(long_value).unwrap_err().param(), Some("metadata.plan"));
}

#[test]
fn invitation_tokens_are_secret_and_hash_stably() {
    let token = InvitationToken::generate().unwrap();
    assert_eq!(format!("{token:?}"), "InvitationToken([REDACTED])");
    let text = token.expose_secret().to_owned();
    assert!(text.starts_with("pit_") && text.len() == 56, "{text}");
    let again = InvitationToken::parse(SecretString::from(text)).unwrap();
    assert_eq!(again.hash(), token.hash());
    assert!(!format!("{:?}", token.hash()).contains(&token.expose_secret()[4..12]));
}

#[test]
fn malformed_invitation_tokens_look_unknown() {
    for bad in [
        "",
        "pit_",
        "pit_short",
        &format!("xyz_{}", "0".repeat(52)),
        &format!("pit_{}", "U".repeat(52)),
    ] {
        let err = InvitationToken::parse(SecretString::from(bad.to_owned())).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvitationNotFound);
    }
}

proptest! {
    #[test]
    fn email_normalization_is_idempotent(local in "[a-zA-Z0-9._+-]{1,20}", domain in "[a-zA-Z0-9]{1,10}\\.[a-zA-Z]{2,5}") {
        if let Ok(email) = Email::new(&format!("{local}@{domain}")) {
            let again = Email::new(email.as_str()).unwrap();
            prop_assert_eq!(again, email);
        }
    }

    #[test]
    fn arbitrary_input_never_panics(text in "\\PC{0,80}") {
        let _ = Email::new(&text);
        let _ = Slug::new(&text);
        let _ = OrgName::new(&text);
        let _ = RoleName::new(&text);
        let _ = InvitationToken::parse(SecretString::from(text.clone()));
    }

    /// A role name (shared text inside) is its text: it reads, compares, orders, hashes,
    /// prints and serializes as the `String` it was made from.
    #[test]
    fn a_role_name_behaves_as_its_text(
        a in "[a-z][a-z0-9_-]{0,63}",
        b in "[a-z][a-z0-9_-]{0,63}",
    ) {
        use std::hash::BuildHasher;
        let (ra, rb) = (RoleName::new(&a).unwrap(), RoleName::new(&b).unwrap());
        prop_assert_eq!(ra.as_str(), a.as_str());
        prop_assert_eq!(ra.to_string(), a.clone());
        prop_assert_eq!(format!("{ra:?}"), format!("RoleName({a:?})"));
        prop_assert_eq!(ra == rb, a == b);
        prop_assert_eq!(ra.cmp(&rb), a.cmp(&b));
        prop_assert_eq!(ra.clone(), ra.clone());
        let hasher = std::collections::hash_map::RandomState::new();
        prop_assert_eq!(hasher.hash_one(&ra), hasher.hash_one(a.as_str()));
        let json = serde_json::to_string(&ra).unwrap();
        prop_assert_eq!(&json, &serde_json::to_string(&a).unwrap());
        prop_assert_eq!(serde_json::from_str::<RoleName>(&json).unwrap(), ra.clone());
        prop_assert_eq!(String::from(ra), a);
    }

    #[test]
    fn any_change_to_a_token_changes_its_hash(flip in 4usize..56, with in 0usize..32) {
        let token = InvitationToken::generate().unwrap();
        let mut bytes = token.expose_secret().as_bytes().to_vec();
        let replacement = BASE32[with];
        prop_assume!(bytes[flip] != replacement);
        bytes[flip] = replacement;
        let changed = String::from_utf8(bytes).unwrap();
        let parsed = InvitationToken::parse(SecretString::from(changed)).unwrap();
        prop_assert!(!parsed.hash().ct_eq(&token.hash()));
    }
}
