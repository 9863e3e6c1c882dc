//! `JwtAuthenticator`: one test per reason a bearer token is refused, key rotation, the
//! mapping of claims to users (links, verified email, just-in-time provisioning), and the
//! diagnostics every attempt leaves. Keys are the TEST-ONLY fixtures of `tests/fixtures/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

mod jwt_common;

use std::time::Duration;

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, OctetKeyParameters, OctetKeyType};
use jwt_common::*;
use portal_auth::jwt::{JwtConfig, JwtConfigError, MembershipClaim, Provisioning, SigningAlgorithm};
use portal_core::TenancyStore;
use portal_core::context::{Principal, ServiceName};
use portal_core::diagnostics::{EventKind, Outcome};
use portal_core::error::ErrorCode;
use portal_core::identity::{AuthError, AuthFailure, Authenticated, ExternalIdentityStore};
use portal_core::ids::{RandomIds, UserId};
use portal_core::store::StoreError;
use portal_core::tenancy::{Email, Membership, OrgName, Organization, RoleName, RoleSet, Slug};
use serde_json::{Value, json};

fn signed_in_as(result: Result<Authenticated, AuthError>, user: UserId) {
    let signed_in = result.unwrap_or_else(|err| panic!("expected a sign-in, got {err:?}"));
    assert_eq!(signed_in.principal, Principal::User(user));
    assert_eq!(signed_in.session, None);
}

// ---------------------------------------------------------------------------------------
// Accepted tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_token_signs_in_the_linked_user() {
    let world = World::standard();
    let user = world.linked_user("alice", "alice@example.com").await;
    signed_in_as(world.sign_in(&RSA_1.sign(&claims("alice"))).await, user);

    let events = world.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.kind, EventKind::Authentication);
    assert_eq!(event.outcome, Outcome::Succeeded);
    assert_eq!(event.actor, Some(Principal::User(user)));
    assert_eq!(event.schema, "auth.bearer.v1");
    assert_eq!(
        event.detail,
        json!({ "user": user, "issuer": ISSUER, "kid": "rsa-1", "found": "linked" })
    );
}

#[tokio::test]
async fn es256_and_eddsa_tokens_are_accepted_when_allowed() {
    let world = World::standard();
    let user = world.linked_user("alice", "alice@example.com").await;
    signed_in_as(world.sign_in(&EC_1.sign(&claims("alice"))).await, user);
    signed_in_as(world.sign_in(&ED_1.sign(&claims("alice"))).await, user);
}

#[tokio::test]
async fn an_algorithm_left_off_the_allow_list_is_refused() {
    let world = World::new(
        config().with_algorithms([SigningAlgorithm::ES256]),
        vec![RSA_1.jwk(), EC_1.jwk()],
    );
    let user = world.linked_user("alice", "alice@example.com").await;
    signed_in_as(world.sign_in(&EC_1.sign(&claims("alice"))).await, user);
    assert_eq!(
        failure(world.sign_in(&RSA_1.sign(&claims("alice"))).await),
        AuthFailure::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn an_audience_array_naming_ours_is_accepted() {
    let world = World::standard();
    let user = world.linked_user("alice", "alice@example.com").await;
    let token = RSA_1.sign(&with(claims("alice"), "aud", json!(["other-api", AUDIENCE])));
    signed_in_as(world.sign_in(&token).await, user);
}

// ---------------------------------------------------------------------------------------
// Refusals, one per reason
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_signature_is_wrong_secret() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    // Signed with rsa-2's private key, but naming rsa-1, whose public key is in the set.
    let token = RSA_2.sign_as("rsa-1", &claims("alice"));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::WrongSecret);
}

#[tokio::test]
async fn an_unknown_kid_is_wrong_secret() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    let token = RSA_2.sign(&claims("alice"));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::WrongSecret);
    let event = world.events().pop().unwrap();
    assert_eq!(
        event.detail,
        json!({ "failure": "wrong_secret", "issuer": null, "kid": "rsa-2" })
    );
    assert_eq!(event.code, Some(ErrorCode::InvalidCredentials));
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    for issuer in [
        "https://evil.example.com/",
        "https://login.example.com",
        "HTTPS://LOGIN.EXAMPLE.COM/",
    ] {
        let token = RSA_1.sign(&with(claims("alice"), "iss", json!(issuer)));
        assert_eq!(
            failure(world.sign_in(&token).await),
            AuthFailure::WrongIssuer,
            "{issuer}"
        );
    }
    let event = world.events().pop().unwrap();
    assert_eq!(event.detail["failure"], "wrong_issuer");
    assert_eq!(event.detail["issuer"], "HTTPS://LOGIN.EXAMPLE.COM/");
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    for audience in [json!("other-api"), json!(["other-api", "third-api"]), json!([])] {
        let token = RSA_1.sign(&with(claims("alice"), "aud", audience.clone()));
        assert_eq!(
            failure(world.sign_in(&token).await),
            AuthFailure::WrongAudience,
            "{audience}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_beyond_the_skew_and_accepted_within_it() {
    let world = World::standard();
    let user = world.linked_user("alice", "alice@example.com").await;
    let leeway = LEEWAY.as_secs() as i64;
    let at = |exp: i64| RSA_1.sign(&with(claims("alice"), "exp", json!(exp)));
    // Expired `leeway - 1` seconds ago: within the skew.
    signed_in_as(world.sign_in(&at(unix(now()) - leeway + 1)).await, user);
    // Expired exactly `leeway` seconds ago, and long ago: refused.
    assert_eq!(
        failure(world.sign_in(&at(unix(now()) - leeway)).await),
        AuthFailure::Expired
    );
    assert_eq!(
        failure(world.sign_in(&at(unix(now()) - 86_400)).await),
        AuthFailure::Expired
    );
    assert_eq!(world.events().pop().unwrap().detail["failure"], "expired");
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused_beyond_the_skew_and_accepted_within_it() {
    let world = World::standard();
    let user = world.linked_user("alice", "alice@example.com").await;
    let leeway = LEEWAY.as_secs() as i64;
    let nbf = |nbf: i64| RSA_1.sign(&with(claims("alice"), "nbf", json!(nbf)));
    signed_in_as(world.sign_in(&nbf(unix(now()) + leeway)).await, user);
    assert_eq!(
        failure(world.sign_in(&nbf(unix(now()) + leeway + 1)).await),
        AuthFailure::NotYetValid
    );
    // An `iat` in the future beyond the skew is refused the same way.
    let iat = RSA_1.sign(&with(claims("alice"), "iat", json!(unix(now()) + leeway + 60)));
    assert_eq!(failure(world.sign_in(&iat).await), AuthFailure::NotYetValid);
    assert_eq!(world.events().pop().unwrap().detail["failure"], "not_yet_valid");
}

#[tokio::test]
async fn the_skew_is_configurable_and_bounded() {
    let world = World::new(config().with_leeway(Duration::ZERO), vec![RSA_1.jwk()]);
    let user = world.linked_user("alice", "alice@example.com").await;
    let token = RSA_1.sign(&with(claims("alice"), "nbf", json!(unix(now()) + 1)));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::NotYetValid);
    let token = RSA_1.sign(&with(claims("alice"), "nbf", json!(unix(now()))));
    signed_in_as(world.sign_in(&token).await, user);

    let identities = world.identities.clone();
    let err = portal_auth::jwt::JwtAuthenticator::new(
        config().with_leeway(JwtConfig::MAX_LEEWAY + Duration::from_secs(1)),
        std::sync::Arc::new(world.jwks.source()),
        identities,
        world.tenancy.clone(),
        world.journal.clone(),
        std::sync::Arc::new(RandomIds::default()),
    )
    .expect_err("a leeway over five minutes is refused");
    assert!(matches!(err, JwtConfigError::LeewayTooLarge { .. }), "{err:?}");
}

#[tokio::test]
async fn the_none_algorithm_is_refused() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    let payload = b64(claims("alice").to_string().as_bytes());
    for alg in ["none", "None", "NONE"] {
        let header = b64(json!({ "alg": alg, "kid": "rsa-1", "typ": "JWT" })
            .to_string()
            .as_bytes());
        for token in [format!("{header}.{payload}."), format!("{header}.{payload}.c2ln")] {
            assert_eq!(
                failure(world.sign_in(&token).await),
                AuthFailure::AlgorithmNotAllowed,
                "{alg}"
            );
        }
    }
    assert_eq!(world.events().pop().unwrap().detail["failure"], "algorithm_not_allowed");
}

#[tokio::test]
async fn an_hmac_token_signed_with_the_rsa_public_key_is_refused() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    // The classic confusion: HS256 with the (public) RSA key as the HMAC secret, in the
    // PEM form and in the JWK's own modulus bytes.
    let jwk = serde_json::to_value(RSA_1.jwk()).unwrap();
    for secret in [
        RSA_1_PUBLIC_PEM.as_bytes().to_vec(),
        jwk["n"].as_str().unwrap().as_bytes().to_vec(),
    ] {
        let token = sign_hs256("rsa-1", &claims("alice"), &secret);
        assert_eq!(failure(world.sign_in(&token).await), AuthFailure::AlgorithmNotAllowed);
    }
}

#[tokio::test]
async fn a_symmetric_key_in_the_jwks_is_never_used() {
    let secret = b"a shared secret that must never verify anything";
    let oct = Jwk {
        common: jsonwebtoken::jwk::CommonParameters {
            key_id: Some("hmac-1".to_owned()),
            ..Default::default()
        },
        algorithm: jsonwebtoken::jwk::AlgorithmParameters::OctetKey(OctetKeyParameters {
            key_type: OctetKeyType::Octet,
            value: b64(secret),
        }),
    };
    let world = World::new(config(), vec![RSA_1.jwk(), oct]);
    world.linked_user("alice", "alice@example.com").await;
    let token = sign_hs256("hmac-1", &claims("alice"), secret);
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::AlgorithmNotAllowed);
}

#[tokio::test]
async fn an_algorithm_that_does_not_fit_the_key_is_refused() {
    let world = World::new(
        config().with_algorithms([
            SigningAlgorithm::RS256,
            SigningAlgorithm::PS256,
            SigningAlgorithm::ES256,
        ]),
        vec![RSA_1.jwk(), EC_1.jwk(), RSA_2.jwk_declaring(KeyAlgorithm::PS256)],
    );
    world.linked_user("alice", "alice@example.com").await;
    // An ES256 header naming an RSA key.
    let token = EC_1.sign_as("rsa-1", &claims("alice"));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::AlgorithmNotAllowed);
    // An RS256 header naming an EC key.
    let token = RSA_1.sign_as("ec-1", &claims("alice"));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::AlgorithmNotAllowed);
    // An RS256 header naming a key whose JWK declares PS256.
    let token = RSA_2.sign(&claims("alice"));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::AlgorithmNotAllowed);
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    let valid = RSA_1.sign(&claims("alice"));
    let (header, rest) = valid.split_once('.').unwrap();
    let no_kid = b64(json!({ "alg": "RS256" }).to_string().as_bytes());
    let crit = b64(json!({ "alg": "RS256", "kid": "rsa-1", "crit": ["exp"] })
        .to_string()
        .as_bytes());
    let not_json = b64(b"{\"alg\": \"RS256\",");
    let cases = [
        String::new(),
        "not a token".to_owned(),
        "a.b".to_owned(),
        format!("{valid}.extra.parts"),
        format!("{header}.{rest}."),
        format!("!!!.{rest}"),
        format!("{not_json}.{rest}"),
        format!("{no_kid}.{rest}"),
        format!("{crit}.{rest}"),
        format!("{valid}{}", "A".repeat(JwtConfig::MAX_TOKEN_LEN)),
    ];
    for token in cases {
        assert_eq!(
            failure(world.sign_in(&token).await),
            AuthFailure::Malformed,
            "{}",
            &token[..token.len().min(80)]
        );
    }
    // Signed, but without a subject: malformed claims.
    let token = RSA_1.sign(&with(claims("alice"), "sub", Value::Null));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::Malformed);
    let token = RSA_1.sign(&with(claims("alice"), "exp", Value::Null));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::Malformed);
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    world.linked_user("mallory", "mallory@example.com").await;
    let token = RSA_1.sign(&claims("mallory"));
    let parts: Vec<&str> = token.split('.').collect();
    // Same header and signature; the payload now says `alice`, or expires a year later.
    for forged in [
        claims("alice"),
        with(claims("mallory"), "exp", json!(unix(now()) + 365 * 86_400)),
    ] {
        let tampered = format!("{}.{}.{}", parts[0], b64(forged.to_string().as_bytes()), parts[2]);
        assert_eq!(failure(world.sign_in(&tampered).await), AuthFailure::WrongSecret);
    }
}

#[tokio::test]
async fn an_identity_nobody_is_linked_to_is_unknown_account() {
    let world = World::standard();
    world.user("alice@example.com").await;
    let token = RSA_1.sign(&with(
        with(claims("alice"), "email", json!("alice@example.com")),
        "email_verified",
        json!(true),
    ));
    // Email fallback is off by default: the verified address is not enough.
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::UnknownAccount);
    assert_eq!(world.events().pop().unwrap().detail["failure"], "unknown_account");
}

#[tokio::test]
async fn other_credentials_are_not_bearer_tokens() {
    use portal_core::identity::{Authenticator, Credential};
    let world = World::standard();
    let credential = Credential::ApiKey(secrecy::SecretString::from(RSA_1.sign(&claims("alice"))));
    let err = world
        .auth
        .authenticate(&jwt_common::request_at(now()), &credential)
        .await
        .unwrap_err();
    assert_eq!(err.failure(), Some(AuthFailure::Malformed));
}

// ---------------------------------------------------------------------------------------
// Keys: rotation, refresh limits, outages
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_rotated_key_is_accepted_after_a_refresh_and_a_removed_one_is_refused() {
    let world = World::new(config(), vec![RSA_1.jwk()]);
    let user = world.linked_user("alice", "alice@example.com").await;
    let old = RSA_1.sign(&claims("alice"));
    let new = RSA_2.sign(&claims("alice"));
    signed_in_as(world.sign_in(&old).await, user);
    assert_eq!(world.jwks.fetches(), 1, "the first token fetches the set");

    // The provider starts signing with rsa-2 and publishes it next to rsa-1.
    world.jwks.set(vec![RSA_1.jwk(), RSA_2.jwk()]);
    let later = now() + Duration::from_secs(61);
    signed_in_as(world.sign_in_at(&new, later).await, user);
    assert_eq!(world.jwks.fetches(), 2, "the unknown kid refreshed the set once");
    signed_in_as(world.sign_in_at(&new, later).await, user);
    signed_in_as(world.sign_in_at(&old, later).await, user);
    assert_eq!(world.jwks.fetches(), 2, "known kids need no refresh");

    // The provider retires rsa-1. A token with an unknown kid refreshes the set, after
    // which rsa-1 tokens are refused.
    world.jwks.set(vec![RSA_2.jwk()]);
    let even_later = later + Duration::from_secs(61);
    let unknown = RSA_1.sign_as("rsa-3", &claims("alice"));
    assert_eq!(
        failure(world.sign_in_at(&unknown, even_later).await),
        AuthFailure::WrongSecret
    );
    assert_eq!(world.jwks.fetches(), 3);
    assert_eq!(
        failure(world.sign_in_at(&old, even_later).await),
        AuthFailure::WrongSecret
    );
    signed_in_as(world.sign_in_at(&new, even_later).await, user);
}

#[tokio::test]
async fn a_removed_key_is_refused_once_the_set_is_older_than_its_maximum_age() {
    let world = World::new(
        config().with_key_max_age(Duration::from_secs(600)),
        vec![RSA_1.jwk(), RSA_2.jwk()],
    );
    let user = world.linked_user("alice", "alice@example.com").await;
    let old = RSA_1.sign(&claims("alice"));
    signed_in_as(world.sign_in(&old).await, user);
    world.jwks.set(vec![RSA_2.jwk()]);
    // Within the maximum age the held set still verifies rsa-1.
    signed_in_as(world.sign_in_at(&old, now() + Duration::from_secs(599)).await, user);
    assert_eq!(world.jwks.fetches(), 1);
    // Past it, the next token fetches the set, and rsa-1 is gone.
    assert_eq!(
        failure(world.sign_in_at(&old, now() + Duration::from_secs(600)).await),
        AuthFailure::WrongSecret
    );
    assert_eq!(world.jwks.fetches(), 2);
}

#[tokio::test]
async fn unknown_kids_refresh_the_set_at_most_once_per_interval() {
    let world = World::new(config(), vec![RSA_1.jwk()]);
    world.linked_user("alice", "alice@example.com").await;
    signed_in_as(
        world.sign_in(&RSA_1.sign(&claims("alice"))).await,
        world.identities.find(ISSUER, "alice").await.unwrap().unwrap().user,
    );
    assert_eq!(world.jwks.fetches(), 1);
    // A flood of made-up kids within the interval: no refresh at all (the set was just
    // fetched), then exactly one after the interval.
    for i in 0..20 {
        let token = RSA_1.sign_as(&format!("made-up-{i}"), &claims("alice"));
        assert_eq!(failure(world.sign_in(&token).await), AuthFailure::WrongSecret);
    }
    assert_eq!(world.jwks.fetches(), 1, "refreshes are rate-limited");
    let later = now() + REFRESH;
    for i in 0..20 {
        let token = RSA_1.sign_as(&format!("made-up-{i}"), &claims("alice"));
        assert_eq!(failure(world.sign_in_at(&token, later).await), AuthFailure::WrongSecret);
    }
    assert_eq!(world.jwks.fetches(), 2, "one refresh per interval");
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refresh() {
    let world = std::sync::Arc::new(World::new(config(), vec![RSA_1.jwk()]));
    world.linked_user("alice", "alice@example.com").await;
    world.jwks.set(vec![RSA_1.jwk(), RSA_2.jwk()]);
    let token = RSA_2.sign(&claims("alice"));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (world, token) = (world.clone(), token.clone());
            tokio::spawn(async move { world.sign_in(&token).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }
    assert_eq!(world.jwks.fetches(), 1);
}

#[tokio::test]
async fn a_failing_jwks_source_is_storage_unavailable_and_known_keys_keep_working() {
    let world = World::new(config().with_key_max_age(Duration::from_secs(60)), vec![RSA_1.jwk()]);
    let user = world.linked_user("alice", "alice@example.com").await;
    world.jwks.fail(true);
    let err = world.sign_in(&RSA_1.sign(&claims("alice"))).await.unwrap_err();
    assert!(
        matches!(err, AuthError::Store(StoreError::Unavailable { backend: "jwks", .. })),
        "{err:?}"
    );
    assert_eq!(world.events().pop().unwrap().code, Some(ErrorCode::StorageUnavailable));

    world.jwks.fail(false);
    let later = now() + REFRESH;
    signed_in_as(world.sign_in_at(&RSA_1.sign(&claims("alice")), later).await, user);
    // The provider goes down and the set grows old: the keys held keep verifying.
    world.jwks.fail(true);
    let much_later = later + Duration::from_secs(3600);
    let token = RSA_1.sign(&with(claims("alice"), "exp", json!(unix(much_later) + 60)));
    signed_in_as(world.sign_in_at(&token, much_later).await, user);
    assert_eq!(world.jwks.fetches(), 3, "the stale set was asked for once");
}

// ---------------------------------------------------------------------------------------
// Users: email fallback and just-in-time provisioning
// ---------------------------------------------------------------------------------------

fn with_email(subject: &str, email: &str, verified: Value) -> Value {
    with(with(claims(subject), "email", json!(email)), "email_verified", verified)
}

#[tokio::test]
async fn email_fallback_needs_a_verified_address_and_links_the_identity() {
    let world = World::new(config().with_email_fallback(true), vec![RSA_1.jwk()]);
    let user = world.user("alice@example.com").await;
    for unverified in [json!(false), json!("false"), Value::Null] {
        let token = RSA_1.sign(&with_email("idp-alice", "alice@example.com", unverified.clone()));
        assert_eq!(
            failure(world.sign_in(&token).await),
            AuthFailure::UnknownAccount,
            "email_verified {unverified}"
        );
    }
    assert_eq!(world.identities.find(ISSUER, "idp-alice").await.unwrap(), None);

    let token = RSA_1.sign(&with_email("idp-alice", "Alice@Example.com", json!(true)));
    signed_in_as(world.sign_in(&token).await, user);
    assert_eq!(world.events().pop().unwrap().detail["found"], "email");
    let link = world.identities.find(ISSUER, "idp-alice").await.unwrap().unwrap();
    assert_eq!(link.user, user);
    // The link now decides, even when the address at the provider changes.
    let token = RSA_1.sign(&with_email("idp-alice", "alice@new.example.com", json!("true")));
    signed_in_as(world.sign_in(&token).await, user);
    assert_eq!(world.events().pop().unwrap().detail["found"], "linked");
}

async fn org(world: &World, slug: &str) -> Organization {
    let owner = world.user(&format!("owner@{slug}.example.com")).await;
    let org = Organization {
        id: portal_core::ids::OrgId::generate(&RandomIds::default(), now()),
        slug: Slug::new(slug).unwrap(),
        name: OrgName::new("Acme").unwrap(),
        metadata: Default::default(),
        created_at: now(),
    };
    let membership = Membership {
        org: org.id,
        user: owner,
        roles: RoleSet::one(RoleName::owner()),
        created_at: now(),
        updated_at: now(),
    };
    world.tenancy.create_org(&org, &membership).await.unwrap();
    org
}

fn provisioning() -> Provisioning {
    Provisioning::new(ServiceName::new("jwt-provisioning").unwrap())
}

fn member_role() -> RoleName {
    RoleName::new("member").unwrap()
}

#[tokio::test]
async fn provisioning_creates_the_user_and_membership_once() {
    let world = World::new(
        config().with_provisioning(
            provisioning()
                .with_membership(MembershipClaim::new("org", member_role()).only([Slug::new("acme").unwrap()])),
        ),
        vec![RSA_1.jwk()],
    );
    let acme = org(&world, "acme").await;
    let claims = with(
        with(
            with_email("idp-bob", "bob@acme.example.com", json!(true)),
            "org",
            json!("acme"),
        ),
        "name",
        json!("Bob Builder"),
    );
    let token = RSA_1.sign(&claims);

    let first = world.sign_in(&token).await.unwrap();
    let Principal::User(bob) = first.principal else {
        panic!("a user principal");
    };
    assert_eq!(world.events().pop().unwrap().detail["found"], "provisioned");
    let user = world.tenancy.get_user(bob).await.unwrap().expect("the user exists");
    assert_eq!(user.email, Email::new("bob@acme.example.com").unwrap());
    assert_eq!(user.display_name.as_str(), "Bob Builder");
    let membership = world
        .tenancy
        .get_membership(acme.id, bob)
        .await
        .unwrap()
        .expect("a member");
    assert_eq!(membership.roles, RoleSet::one(member_role()));

    // The second sign-in finds the same user and provisions nothing.
    signed_in_as(world.sign_in_at(&token, now() + Duration::from_secs(5)).await, bob);
    assert_eq!(world.events().pop().unwrap().detail["found"], "linked");
    assert_eq!(
        world
            .tenancy
            .find_user_by_email(&user.email)
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob)
    );
    let invitations = world.tenancy.list_invitations(acme.id, None, 10).await.unwrap();
    assert_eq!(invitations.len(), 1, "one membership was provisioned");
    assert_eq!(
        invitations[0].invited_by,
        Principal::Service(ServiceName::new("jwt-provisioning").unwrap())
    );
    assert_eq!(world.identities.list_for_user(bob, None, 100).await.unwrap().len(), 1);
}

#[tokio::test]
async fn provisioning_refuses_an_org_outside_the_allow_list_and_writes_nothing() {
    let world = World::new(
        config().with_provisioning(
            provisioning()
                .with_membership(MembershipClaim::new("org", member_role()).only([Slug::new("acme").unwrap()])),
        ),
        vec![RSA_1.jwk()],
    );
    org(&world, "acme").await;
    org(&world, "globex").await;
    for slug in ["globex", "no-such-org", "Not A Slug"] {
        let token = RSA_1.sign(&with(
            with_email("idp-eve", "eve@example.com", json!(true)),
            "org",
            json!(slug),
        ));
        assert_eq!(
            failure(world.sign_in(&token).await),
            AuthFailure::UnknownAccount,
            "{slug}"
        );
    }
    assert_eq!(
        world
            .tenancy
            .find_user_by_email(&Email::new("eve@example.com").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(world.identities.find(ISSUER, "idp-eve").await.unwrap(), None);
}

#[tokio::test]
async fn provisioning_needs_a_verified_email_and_never_takes_over_an_existing_account() {
    let world = World::new(config().with_provisioning(provisioning()), vec![RSA_1.jwk()]);
    let token = RSA_1.sign(&with_email("idp-carol", "carol@example.com", json!(false)));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::UnknownAccount);
    let token = RSA_1.sign(&claims("idp-no-email"));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::UnknownAccount);

    // An account with the address exists and email fallback is off: no takeover.
    let existing = world.user("dave@example.com").await;
    let token = RSA_1.sign(&with_email("idp-dave", "dave@example.com", json!(true)));
    assert_eq!(failure(world.sign_in(&token).await), AuthFailure::UnknownAccount);
    assert_eq!(
        world.identities.list_for_user(existing, None, 100).await.unwrap(),
        vec![]
    );

    // Without a membership claim configured, a user is provisioned with no org.
    let token = RSA_1.sign(&with_email("idp-erin", "erin@example.com", json!(true)));
    let erin = world.sign_in(&token).await.unwrap().principal.user().unwrap();
    assert_eq!(world.tenancy.list_user_orgs(erin, None, 100).await.unwrap(), vec![]);
}

#[tokio::test]
async fn an_interrupted_provisioning_finishes_at_the_next_sign_in() {
    let world = World::new(config().with_provisioning(provisioning()), vec![RSA_1.jwk()]);
    // The link was written, then the process died before the user was created.
    let id = UserId::generate(&RandomIds::default(), now());
    world
        .identities
        .link(&portal_core::identity::ExternalIdentity::new(ISSUER, "idp-frank", id, now()).unwrap())
        .await
        .unwrap();
    let token = RSA_1.sign(&with_email("idp-frank", "frank@example.com", json!(true)));
    signed_in_as(world.sign_in(&token).await, id);
    assert!(world.tenancy.get_user(id).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------
// Secrets stay out of diagnostics and Debug
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_token_or_key_appears_in_events_or_debug_output() {
    let world = World::standard();
    world.linked_user("alice", "alice@example.com").await;
    let tokens = [
        RSA_1.sign(&claims("alice")),
        RSA_2.sign(&claims("alice")),
        RSA_1.sign(&with(claims("alice"), "exp", json!(0))),
    ];
    for token in &tokens {
        let _ = world.sign_in(token).await;
    }
    let recorded = serde_json::to_string(&world.journal.events()).unwrap();
    let debug = format!("{:?} {:?}", world.auth, world.journal.events());
    for token in &tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!recorded.contains(signature), "a signature in the events");
        assert!(!debug.contains(signature), "a signature in Debug output");
    }
    let n = serde_json::to_value(RSA_1.jwk()).unwrap()["n"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!debug.contains(&n[..40]), "key material in Debug output");
    assert!(debug.contains("rsa-1"), "the kids are shown: {debug}");
}
