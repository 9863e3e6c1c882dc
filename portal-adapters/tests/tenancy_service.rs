//! The tenancy rules at the service level: every bad input answers its stable error code
//! (and names the offending field), storage faults become retryable
//! `storage.unavailable`, and every operation leaves a diagnostic event.
//!
//! The rules run against the in-memory reference store; the storage faults are injected
//! with `MockTenancyStore` (feature `mock` of `portal-core`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

use mockall::Sequence;
use portal_adapters::memory::InMemoryTenancyStore;
use portal_core::context::Principal;
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink, EventKind, Outcome};
use portal_core::ids::{InvitationId, OrgId, SequentialIds, UserId};
use portal_core::store::{Cursor, PageRequest, StoreError};
use portal_core::tenancy::{
    InvitationToken, Membership, MockTenancyStore, NewOrg, NewUser, OrgUpdate, Organization, RoleSet, TenancyStore,
    User,
};
use portal_core::time::ManualClock;
use portal_core::{ErrorCode, Portal, PortalError, RequestContext};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A diagnostic sink that keeps every event, for assertions.
#[derive(Default)]
struct CollectingSink {
    events: Mutex<Vec<DiagnosticEvent>>,
}

impl DiagnosticSink for CollectingSink {
    fn record(&self, event: DiagnosticEvent) {
        self.events.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }
}

impl CollectingSink {
    /// Every event of the request `ctx`.
    fn of(&self, ctx: &RequestContext) -> Vec<DiagnosticEvent> {
        let events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        events
            .iter()
            .filter(|e| e.request_id == ctx.request_id())
            .cloned()
            .collect()
    }

    /// The one event that records the outcome of the operation the request `ctx` ran.
    fn outcome_of(&self, ctx: &RequestContext) -> DiagnosticEvent {
        let events: Vec<_> = self
            .of(ctx)
            .into_iter()
            .filter(|e| !matches!(e.kind, EventKind::PermissionDecision | EventKind::StorageFault))
            .collect();
        assert_eq!(events.len(), 1, "expected one outcome event, got {events:#?}");
        events.into_iter().next().unwrap()
    }
}

fn start() -> OffsetDateTime {
    datetime!(2030-06-01 08:00:00.250_000 UTC)
}

fn portal_over(store: Arc<dyn TenancyStore>) -> (Portal, Arc<ManualClock>, Arc<CollectingSink>) {
    let clock = Arc::new(ManualClock::new(start()));
    let sink = Arc::new(CollectingSink::default());
    let portal = Portal::builder()
        .tenancy_store(store)
        .clock(clock.clone())
        .ids(Arc::new(SequentialIds::default()))
        .diagnostics(sink.clone())
        .build()
        .unwrap();
    (portal, clock, sink)
}

/// An org `acme` with an owner, an admin and a viewer, and an outsider who owns `globex`.
struct World {
    portal: Portal,
    clock: Arc<ManualClock>,
    sink: Arc<CollectingSink>,
    owner: User,
    admin: User,
    viewer: User,
    outsider: User,
    acme: Organization,
    globex: Organization,
}

impl World {
    async fn new() -> Self {
        let (portal, clock, sink) = portal_over(Arc::new(InMemoryTenancyStore::new()));
        let service = Principal::Service(portal_core::context::ServiceName::new("signup").unwrap());
        let mut users = Vec::new();
        for name in ["owner", "admin", "viewer", "outsider"] {
            let ctx = portal.context(service.clone()).build();
            let new = NewUser {
                email: format!("{name}@example.com"),
                display_name: format!("The {name}"),
            };
            users.push(portal.tenancy().create_user(&ctx, new).await.unwrap());
        }
        let [owner, admin, viewer, outsider] = users.try_into().unwrap();
        let acme = create_org(&portal, &owner, "acme").await.unwrap();
        let globex = create_org(&portal, &outsider, "globex").await.unwrap();
        let world = Self {
            portal,
            clock,
            sink,
            owner,
            admin,
            viewer,
            outsider,
            acme,
            globex,
        };
        world.join(&world.acme, &world.owner, &world.admin, &["admin"]).await;
        world.join(&world.acme, &world.owner, &world.viewer, &["viewer"]).await;
        world
    }

    fn as_user(&self, user: &User) -> RequestContext {
        self.portal.context(Principal::User(user.id)).build()
    }

    fn tenancy(&self) -> &portal_core::TenancyService {
        self.portal.tenancy()
    }

    /// `inviter` invites `email` to `org` with `roles`, and returns the token.
    async fn invite(&self, org: &Organization, inviter: &User, email: &str, roles: &[&str]) -> InvitationToken {
        let (_, token) = self
            .tenancy()
            .invite(&self.as_user(inviter), org.id, email, RoleSet::parse(roles).unwrap())
            .await
            .unwrap();
        token
    }

    /// `inviter` invites `user` to `org` with `roles`, and `user` accepts.
    async fn join(&self, org: &Organization, inviter: &User, user: &User, roles: &[&str]) -> Membership {
        let token = self.invite(org, inviter, user.email.as_str(), roles).await;
        self.tenancy()
            .accept_invitation(&self.as_user(user), &token)
            .await
            .unwrap()
    }
}

async fn create_org(portal: &Portal, by: &User, slug: &str) -> Result<Organization, PortalError> {
    let ctx = portal.context(Principal::User(by.id)).build();
    let new = NewOrg {
        slug: slug.to_owned(),
        name: format!("{slug} corporation"),
        ..NewOrg::default()
    };
    portal.tenancy().create_org(&ctx, new).await
}

/// The error of a call that must fail.
#[track_caller]
fn err<T: Debug>(result: Result<T, PortalError>) -> PortalError {
    match result {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(err) => err,
    }
}

/// Asserts a `validation.invalid_field` error about `param`.
#[track_caller]
fn assert_invalid<T: Debug>(result: Result<T, PortalError>, param: &str) {
    let err = err(result);
    assert_eq!(err.code(), ErrorCode::InvalidField, "{err:?}");
    assert_eq!(err.param(), Some(param), "{err:?}");
}

/// Asserts the error code of a call that must fail.
#[track_caller]
fn assert_code<T: Debug>(result: Result<T, PortalError>, code: ErrorCode) {
    let err = err(result);
    assert_eq!(err.code(), code, "{err:?}");
}

fn roles(names: &[&str]) -> RoleSet {
    RoleSet::parse(names).unwrap()
}

fn page(limit: u32) -> PageRequest {
    PageRequest::first(limit)
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_empty_org_name_is_an_invalid_name() {
    let world = World::new().await;
    for name in ["", "   ", "\t\n"] {
        let new = NewOrg {
            slug: "initech".to_owned(),
            name: name.to_owned(),
            ..NewOrg::default()
        };
        assert_invalid(
            world.tenancy().create_org(&world.as_user(&world.owner), new).await,
            "name",
        );
    }
    let update = OrgUpdate {
        name: Some(String::new()),
        ..OrgUpdate::default()
    };
    assert_invalid(
        world
            .tenancy()
            .update_org(&world.as_user(&world.owner), world.acme.id, update)
            .await,
        "name",
    );
}

#[tokio::test]
async fn an_org_name_of_201_characters_is_an_invalid_name() {
    let world = World::new().await;
    let ctx = world.as_user(&world.owner);
    let too_long = NewOrg {
        slug: "initech".to_owned(),
        name: "é".repeat(201),
        ..NewOrg::default()
    };
    assert_invalid(world.tenancy().create_org(&ctx, too_long).await, "name");
    let longest = NewOrg {
        slug: "initech".to_owned(),
        name: "é".repeat(200),
        ..NewOrg::default()
    };
    world
        .tenancy()
        .create_org(&ctx, longest)
        .await
        .expect("200 characters is the longest name allowed");
}

#[tokio::test]
async fn a_malformed_slug_is_an_invalid_slug() {
    let world = World::new().await;
    let sixty_four = "a".repeat(64);
    for slug in [
        "Acme",
        "-acme",
        "acme-",
        "ab",
        "a b c",
        "acme_inc",
        "",
        sixty_four.as_str(),
    ] {
        let new = NewOrg {
            slug: slug.to_owned(),
            name: "Acme".to_owned(),
            ..NewOrg::default()
        };
        let result = world.tenancy().create_org(&world.as_user(&world.owner), new).await;
        let err = err(result);
        assert_eq!(err.code(), ErrorCode::InvalidField, "slug `{slug}`: {err:?}");
        assert_eq!(err.param(), Some("slug"), "slug `{slug}`: {err:?}");
    }
}

#[tokio::test]
async fn a_taken_slug_is_org_slug_taken() {
    let world = World::new().await;
    assert_code(
        create_org(&world.portal, &world.viewer, "acme").await,
        ErrorCode::OrgSlugTaken,
    );
    let ctx = world.as_user(&world.viewer);
    let orgs = world
        .tenancy()
        .list_user_orgs(&ctx, world.viewer.id, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(orgs.len(), 1, "the viewer is still only in acme: {orgs:?}");
}

#[tokio::test]
async fn oversized_metadata_is_invalid_metadata() {
    let world = World::new().await;
    let ctx = || world.as_user(&world.owner);
    let too_many: BTreeMap<String, String> = (0..33).map(|n| (format!("k{n}"), "v".to_owned())).collect();
    let new = NewOrg {
        slug: "initech".to_owned(),
        name: "Initech".to_owned(),
        metadata: too_many,
        owner: None,
    };
    assert_invalid(world.tenancy().create_org(&ctx(), new).await, "metadata");
    let long_value = OrgUpdate {
        metadata: Some(BTreeMap::from([("plan".to_owned(), "x".repeat(1025))])),
        ..OrgUpdate::default()
    };
    assert_invalid(
        world.tenancy().update_org(&ctx(), world.acme.id, long_value).await,
        "metadata.plan",
    );
    let bad_key = OrgUpdate {
        metadata: Some(BTreeMap::from([("no spaces".to_owned(), "v".to_owned())])),
        ..OrgUpdate::default()
    };
    assert_invalid(
        world.tenancy().update_org(&ctx(), world.acme.id, bad_key).await,
        "metadata",
    );
}

#[tokio::test]
async fn an_org_owner_the_actor_may_not_name_is_an_invalid_owner() {
    let world = World::new().await;
    let someone_else = NewOrg {
        slug: "initech".to_owned(),
        name: "Initech".to_owned(),
        owner: Some(world.viewer.id),
        ..NewOrg::default()
    };
    assert_invalid(
        world
            .tenancy()
            .create_org(&world.as_user(&world.owner), someone_else)
            .await,
        "owner",
    );
    let service = world
        .portal
        .context(Principal::Service("signup".parse_service()))
        .build();
    let nobody = NewOrg {
        slug: "initech".to_owned(),
        name: "Initech".to_owned(),
        ..NewOrg::default()
    };
    assert_invalid(world.tenancy().create_org(&service, nobody).await, "owner");
    let ghost = NewOrg {
        slug: "initech".to_owned(),
        name: "Initech".to_owned(),
        owner: Some(UserId::from_uuid(uuid::Uuid::from_u128(99))),
        ..NewOrg::default()
    };
    assert_code(
        world.tenancy().create_org(&service, ghost).await,
        ErrorCode::UserNotFound,
    );
}

#[tokio::test]
async fn a_malformed_email_is_an_invalid_email() {
    let world = World::new().await;
    let service = world
        .portal
        .context(Principal::Service("signup".parse_service()))
        .build();
    for email in [
        "not-an-email",
        "ann@localhost",
        "ann smith@example.com",
        "@example.com",
        "ann@",
        "ann@@x.com",
    ] {
        let new = NewUser {
            email: email.to_owned(),
            display_name: "Ann".to_owned(),
        };
        let err = err(world.tenancy().create_user(&service, new).await);
        assert_eq!(err.code(), ErrorCode::InvalidField, "email `{email}`: {err:?}");
        assert_eq!(err.param(), Some("email"), "email `{email}`: {err:?}");
    }
    assert_invalid(
        world
            .tenancy()
            .invite(
                &world.as_user(&world.owner),
                world.acme.id,
                "not-an-email",
                roles(&["member"]),
            )
            .await,
        "email",
    );
}

#[tokio::test]
async fn a_taken_email_is_user_email_taken_whatever_its_case() {
    let world = World::new().await;
    let service = world
        .portal
        .context(Principal::Service("signup".parse_service()))
        .build();
    let new = NewUser {
        email: "  Owner@Example.COM ".to_owned(),
        display_name: "A second owner".to_owned(),
    };
    assert_code(
        world.tenancy().create_user(&service, new).await,
        ErrorCode::UserEmailTaken,
    );
}

// ---------------------------------------------------------------------------------------
// Invitations
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_invitation_is_invitation_expired() {
    let world = World::new().await;
    let token = world
        .invite(&world.acme, &world.owner, world.outsider.email.as_str(), &["member"])
        .await;
    // The default lifetime is seven days; at the expiry instant it is already unusable.
    world.clock.advance(Duration::days(7));
    let ctx = world.as_user(&world.outsider);
    assert_code(
        world.tenancy().accept_invitation(&ctx, &token).await,
        ErrorCode::InvitationExpired,
    );
    // The outsider did not join: acme is still hidden from them.
    let outsider_ctx = world.as_user(&world.outsider);
    assert_code(
        world.tenancy().get_org(&outsider_ctx, world.acme.id).await,
        ErrorCode::OrgNotFound,
    );
}

#[tokio::test]
async fn a_used_invitation_is_invitation_already_used() {
    let world = World::new().await;
    let token = world
        .invite(&world.acme, &world.owner, world.outsider.email.as_str(), &["member"])
        .await;
    let ctx = world.as_user(&world.outsider);
    world.tenancy().accept_invitation(&ctx, &token).await.unwrap();
    let again = world.as_user(&world.outsider);
    assert_code(
        world.tenancy().accept_invitation(&again, &token).await,
        ErrorCode::InvitationUsed,
    );
}

#[tokio::test]
async fn a_revoked_invitation_is_invitation_revoked() {
    let world = World::new().await;
    let (invitation, token) = world
        .tenancy()
        .invite(
            &world.as_user(&world.admin),
            world.acme.id,
            world.outsider.email.as_str(),
            roles(&["member"]),
        )
        .await
        .unwrap();
    world
        .tenancy()
        .revoke_invitation(&world.as_user(&world.admin), world.acme.id, invitation.id)
        .await
        .unwrap();
    let ctx = world.as_user(&world.outsider);
    assert_code(
        world.tenancy().accept_invitation(&ctx, &token).await,
        ErrorCode::InvitationRevoked,
    );
    assert_code(
        world
            .tenancy()
            .revoke_invitation(&world.as_user(&world.admin), world.acme.id, invitation.id)
            .await,
        ErrorCode::InvitationRevoked,
    );
}

#[tokio::test]
async fn an_invitation_accepted_by_another_address_is_email_mismatch() {
    let world = World::new().await;
    let token = world
        .invite(&world.acme, &world.owner, world.outsider.email.as_str(), &["member"])
        .await;
    let ctx = world.as_user(&world.viewer);
    assert_code(
        world.tenancy().accept_invitation(&ctx, &token).await,
        ErrorCode::InvitationEmailMismatch,
    );
    // The invitation is still usable by the address it was sent to.
    let ctx = world.as_user(&world.outsider);
    world.tenancy().accept_invitation(&ctx, &token).await.unwrap();
}

#[tokio::test]
async fn an_unknown_or_malformed_token_is_invitation_not_found() {
    let world = World::new().await;
    // A well-formed token that this portal never issued: one from another portal.
    let elsewhere = World::new().await;
    let foreign = elsewhere
        .invite(&elsewhere.acme, &elsewhere.owner, "viewer2@example.com", &["member"])
        .await;
    let ctx = world.as_user(&world.viewer);
    assert_code(
        world.tenancy().accept_invitation(&ctx, &foreign).await,
        ErrorCode::InvitationNotFound,
    );

    for malformed in [
        "",
        "pit_",
        "pit_short",
        "not-a-token-at-all-but-long-enough-to-look-like-one-0000",
    ] {
        let err = InvitationToken::parse(malformed.to_owned().into()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvitationNotFound, "token `{malformed}`");
    }
}

#[tokio::test]
async fn an_unknown_invitation_id_is_invitation_not_found() {
    let world = World::new().await;
    let unknown = InvitationId::from_uuid(uuid::Uuid::from_u128(42));
    assert_code(
        world
            .tenancy()
            .revoke_invitation(&world.as_user(&world.owner), world.acme.id, unknown)
            .await,
        ErrorCode::InvitationNotFound,
    );
}

#[tokio::test]
async fn an_invitation_of_another_org_is_invitation_not_found() {
    let world = World::new().await;
    let (theirs, _) = world
        .tenancy()
        .invite(
            &world.as_user(&world.outsider),
            world.globex.id,
            "someone@example.com",
            roles(&["member"]),
        )
        .await
        .unwrap();
    assert_code(
        world
            .tenancy()
            .revoke_invitation(&world.as_user(&world.owner), world.acme.id, theirs.id)
            .await,
        ErrorCode::InvitationNotFound,
    );
    let listed = world
        .tenancy()
        .list_invitations(&world.as_user(&world.outsider), world.globex.id, &page(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].state, theirs.state, "their invitation is still pending");
}

#[tokio::test]
async fn inviting_a_member_is_already_member() {
    let world = World::new().await;
    let result = world
        .tenancy()
        .invite(
            &world.as_user(&world.owner),
            world.acme.id,
            "VIEWER@example.com",
            roles(&["admin"]),
        )
        .await;
    let err = err(result);
    assert_eq!(err.code(), ErrorCode::AlreadyMember, "{err:?}");
    assert_eq!(err.param(), Some("email"));
}

// ---------------------------------------------------------------------------------------
// Not found, never denied
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_org_is_org_not_found() {
    let world = World::new().await;
    let unknown = OrgId::from_uuid(uuid::Uuid::from_u128(7));
    let service = world
        .portal
        .context(Principal::Service("support".parse_service()))
        .build();
    assert_code(world.tenancy().get_org(&service, unknown).await, ErrorCode::OrgNotFound);
    assert_code(
        world.tenancy().get_org(&world.as_user(&world.owner), unknown).await,
        ErrorCode::OrgNotFound,
    );
    assert_code(
        world.tenancy().list_members(&service, unknown, &page(10)).await,
        ErrorCode::OrgNotFound,
    );
}

#[tokio::test]
async fn an_unknown_member_is_member_not_found() {
    let world = World::new().await;
    let ctx = || world.as_user(&world.owner);
    let ghost = UserId::from_uuid(uuid::Uuid::from_u128(9));
    for user in [world.outsider.id, ghost] {
        assert_code(
            world.tenancy().get_member(&ctx(), world.acme.id, user).await,
            ErrorCode::MemberNotFound,
        );
        assert_code(
            world
                .tenancy()
                .set_member_roles(&ctx(), world.acme.id, user, roles(&["member"]))
                .await,
            ErrorCode::MemberNotFound,
        );
        assert_code(
            world.tenancy().remove_member(&ctx(), world.acme.id, user).await,
            ErrorCode::MemberNotFound,
        );
    }
}

#[tokio::test]
async fn another_orgs_id_is_org_not_found_never_access_denied() {
    let world = World::new().await;
    let globex = world.globex.id;
    // Both the owner, who may do anything in acme, and the viewer, who may do little,
    // learn nothing about globex: it is simply not found.
    for user in [&world.owner, &world.viewer] {
        let ctx = || world.as_user(user);
        let tenancy = world.tenancy();
        assert_code(tenancy.get_org(&ctx(), globex).await, ErrorCode::OrgNotFound);
        assert_code(
            tenancy.update_org(&ctx(), globex, OrgUpdate::default()).await,
            ErrorCode::OrgNotFound,
        );
        assert_code(
            tenancy.list_members(&ctx(), globex, &page(10)).await,
            ErrorCode::OrgNotFound,
        );
        assert_code(
            tenancy.get_member(&ctx(), globex, world.outsider.id).await,
            ErrorCode::OrgNotFound,
        );
        assert_code(
            tenancy
                .set_member_roles(&ctx(), globex, world.outsider.id, roles(&["viewer"]))
                .await,
            ErrorCode::OrgNotFound,
        );
        assert_code(
            tenancy.remove_member(&ctx(), globex, world.outsider.id).await,
            ErrorCode::OrgNotFound,
        );
        assert_code(
            tenancy
                .invite(&ctx(), globex, "someone@example.com", roles(&["member"]))
                .await,
            ErrorCode::OrgNotFound,
        );
        assert_code(
            tenancy.list_invitations(&ctx(), globex, &page(10)).await,
            ErrorCode::OrgNotFound,
        );
        let unknown = InvitationId::from_uuid(uuid::Uuid::from_u128(3));
        assert_code(
            tenancy.revoke_invitation(&ctx(), globex, unknown).await,
            ErrorCode::OrgNotFound,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Permissions and owners
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_viewer_is_denied_members_write() {
    let world = World::new().await;
    let ctx = || world.as_user(&world.viewer);
    let tenancy = world.tenancy();
    assert_code(
        tenancy
            .set_member_roles(&ctx(), world.acme.id, world.admin.id, roles(&["viewer"]))
            .await,
        ErrorCode::AccessDenied,
    );
    assert_code(
        tenancy.remove_member(&ctx(), world.acme.id, world.admin.id).await,
        ErrorCode::AccessDenied,
    );
    assert_code(
        tenancy
            .invite(&ctx(), world.acme.id, "someone@example.com", roles(&["viewer"]))
            .await,
        ErrorCode::AccessDenied,
    );
    // A viewer may still read.
    tenancy
        .list_members(&ctx(), world.acme.id, &page(10))
        .await
        .expect("a viewer may list members");
}

#[tokio::test]
async fn an_admin_cannot_grant_owner() {
    let world = World::new().await;
    let ctx = || world.as_user(&world.admin);
    let tenancy = world.tenancy();
    assert_code(
        tenancy
            .set_member_roles(&ctx(), world.acme.id, world.viewer.id, roles(&["owner"]))
            .await,
        ErrorCode::AccessDenied,
    );
    assert_code(
        tenancy
            .invite(
                &ctx(),
                world.acme.id,
                "someone@example.com",
                roles(&["owner", "member"]),
            )
            .await,
        ErrorCode::AccessDenied,
    );
    // Taking `owner` away needs the same permission as granting it.
    assert_code(
        tenancy.remove_member(&ctx(), world.acme.id, world.owner.id).await,
        ErrorCode::AccessDenied,
    );
    let viewer = tenancy
        .get_member(&ctx(), world.acme.id, world.viewer.id)
        .await
        .unwrap();
    assert_eq!(
        viewer.roles,
        roles(&["viewer"]),
        "the denied change left the roles alone"
    );
    // Roles below owner are the admin's to give.
    let promoted = tenancy
        .set_member_roles(&ctx(), world.acme.id, world.viewer.id, roles(&["member"]))
        .await
        .expect("an admin may grant `member`");
    assert_eq!(promoted.roles, roles(&["member"]));
}

#[tokio::test]
async fn the_last_owner_cannot_be_removed_or_demoted() {
    let world = World::new().await;
    let ctx = || world.as_user(&world.owner);
    let tenancy = world.tenancy();
    assert_code(
        tenancy
            .set_member_roles(&ctx(), world.acme.id, world.owner.id, roles(&["admin"]))
            .await,
        ErrorCode::LastOwner,
    );
    assert_code(
        tenancy.remove_member(&ctx(), world.acme.id, world.owner.id).await,
        ErrorCode::LastOwner,
    );
    // With a second owner, the first may step down.
    tenancy
        .set_member_roles(&ctx(), world.acme.id, world.admin.id, roles(&["owner"]))
        .await
        .unwrap();
    tenancy
        .set_member_roles(&ctx(), world.acme.id, world.owner.id, roles(&["admin"]))
        .await
        .expect("one of two owners may step down");
}

// ---------------------------------------------------------------------------------------
// Pagination
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_page_limit_outside_1_to_200_is_an_invalid_limit() {
    let world = World::new().await;
    let ctx = || world.as_user(&world.owner);
    let tenancy = world.tenancy();
    for limit in [0, 201, u32::MAX] {
        assert_invalid(tenancy.list_members(&ctx(), world.acme.id, &page(limit)).await, "limit");
        assert_invalid(
            tenancy.list_invitations(&ctx(), world.acme.id, &page(limit)).await,
            "limit",
        );
    }
    for limit in [1, 200] {
        tenancy
            .list_members(&ctx(), world.acme.id, &page(limit))
            .await
            .expect("1 and 200 are allowed page sizes");
    }
}

#[tokio::test]
async fn a_garbage_cursor_is_an_invalid_cursor() {
    let world = World::new().await;
    let ctx = || world.as_user(&world.owner);
    let tenancy = world.tenancy();
    let invitation_cursor = InvitationId::from_uuid(uuid::Uuid::from_u128(5)).to_string();
    for cursor in ["garbage", "", "usr_", invitation_cursor.as_str()] {
        let bad = PageRequest::after(Cursor::new(cursor), 10);
        let err = err(tenancy.list_members(&ctx(), world.acme.id, &bad).await);
        assert_eq!(err.code(), ErrorCode::InvalidField, "cursor `{cursor}`: {err:?}");
        assert_eq!(err.param(), Some("cursor"), "cursor `{cursor}`: {err:?}");
    }
    let member_cursor = PageRequest::after(Cursor::new(world.owner.id.to_string()), 10);
    assert_invalid(
        tenancy.list_invitations(&ctx(), world.acme.id, &member_cursor).await,
        "cursor",
    );
}

// ---------------------------------------------------------------------------------------
// Storage faults
// ---------------------------------------------------------------------------------------

fn unavailable() -> StoreError {
    StoreError::Unavailable {
        backend: "mock",
        source: "connection reset by peer".into(),
    }
}

fn owner_membership(org: OrgId, user: UserId) -> Membership {
    Membership {
        org,
        user,
        roles: roles(&["owner"]),
        created_at: start(),
        updated_at: start(),
    }
}

#[tokio::test]
async fn storage_unavailable_on_create_org_is_retryable_and_the_retry_succeeds() {
    let mut store = MockTenancyStore::new();
    let mut calls = Sequence::new();
    store
        .expect_create_org()
        .times(1)
        .in_sequence(&mut calls)
        .returning(|_, _| Err(unavailable()));
    store
        .expect_create_org()
        .times(1)
        .in_sequence(&mut calls)
        .withf(|org, owner| org.slug.as_str() == "acme" && owner.org == org.id && owner.roles.has_owner())
        .returning(|_, _| Ok(()));
    let (portal, _clock, sink) = portal_over(Arc::new(store));
    let user = UserId::from_uuid(uuid::Uuid::from_u128(11));
    let new = || NewOrg {
        slug: "acme".to_owned(),
        name: "Acme".to_owned(),
        ..NewOrg::default()
    };

    let ctx = portal.context(Principal::User(user)).build();
    let err = err(portal.tenancy().create_org(&ctx, new()).await);
    assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{err:?}");
    assert!(err.is_retryable(), "storage.unavailable is retryable");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the store error is kept as the source"
    );
    let event = sink.outcome_of(&ctx);
    assert_eq!(event.name, "tenancy.org.create");
    assert_eq!(event.outcome, Outcome::Failed);
    assert_eq!(event.code, Some(ErrorCode::StorageUnavailable));
    let faults: Vec<_> = sink
        .of(&ctx)
        .into_iter()
        .filter(|e| e.kind == EventKind::StorageFault)
        .collect();
    assert_eq!(faults.len(), 1, "one storage fault event: {faults:#?}");
    assert_eq!(faults[0].code, Some(ErrorCode::StorageUnavailable));

    let retry = portal.context(Principal::User(user)).build();
    let org = portal
        .tenancy()
        .create_org(&retry, new())
        .await
        .expect("the retry succeeds once storage is back");
    assert_eq!(org.slug.as_str(), "acme");
    let event = sink.outcome_of(&retry);
    assert_eq!((event.outcome, event.code), (Outcome::Succeeded, None));
    assert_eq!(event.org, Some(org.id));
}

#[tokio::test]
async fn storage_unavailable_on_set_member_roles_is_retryable_and_the_retry_succeeds() {
    let org = OrgId::from_uuid(uuid::Uuid::from_u128(20));
    let owner = UserId::from_uuid(uuid::Uuid::from_u128(21));
    let member = UserId::from_uuid(uuid::Uuid::from_u128(22));
    let mut store = MockTenancyStore::new();
    store.expect_get_membership().returning(move |o, u| {
        Ok(Some(if u == owner {
            owner_membership(o, u)
        } else {
            Membership {
                roles: roles(&["viewer"]),
                ..owner_membership(o, u)
            }
        }))
    });
    // The audit event's actor is shown by the display name read with the user.
    store.expect_get_user().returning(|_| Ok(None));
    let mut calls = Sequence::new();
    store
        .expect_set_member_roles()
        .times(1)
        .in_sequence(&mut calls)
        .returning(|_, _, _, _, _| Err(unavailable()));
    store
        .expect_set_member_roles()
        .times(1)
        .in_sequence(&mut calls)
        .withf(move |o, u, r, _, e| {
            *o == org
                && *u == member
                && *r == roles(&["member"])
                && e.org == org
                && e.action.as_str() == "member.roles_changed"
        })
        .returning(|o, u, r, at, _| {
            Ok(Membership {
                roles: r.clone(),
                updated_at: at,
                ..owner_membership(o, u)
            })
        });
    let (portal, _clock, sink) = portal_over(Arc::new(store));

    let ctx = portal.context(Principal::User(owner)).build();
    let err = err(portal
        .tenancy()
        .set_member_roles(&ctx, org, member, roles(&["member"]))
        .await);
    assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{err:?}");
    assert!(err.is_retryable());
    let event = sink.outcome_of(&ctx);
    assert_eq!(event.name, "tenancy.member.set_roles");
    assert_eq!(
        (event.outcome, event.code),
        (Outcome::Failed, Some(ErrorCode::StorageUnavailable))
    );
    assert_eq!(event.org, Some(org));

    let retry = portal.context(Principal::User(owner)).build();
    let changed = portal
        .tenancy()
        .set_member_roles(&retry, org, member, roles(&["member"]))
        .await
        .expect("the retry succeeds once storage is back");
    assert_eq!(changed.roles, roles(&["member"]));
    assert_eq!(sink.outcome_of(&retry).outcome, Outcome::Succeeded);
}

#[tokio::test]
async fn a_backend_failure_is_storage_failure_and_not_retryable() {
    let mut store = MockTenancyStore::new();
    store.expect_create_user().returning(|_| {
        Err(StoreError::Backend {
            backend: "mock",
            source: "disk I/O error".into(),
        })
    });
    let (portal, _clock, sink) = portal_over(Arc::new(store));
    let ctx = portal.context(Principal::Service("signup".parse_service())).build();
    let new = NewUser {
        email: "ann@example.com".to_owned(),
        display_name: "Ann".to_owned(),
    };
    let err = err(portal.tenancy().create_user(&ctx, new).await);
    assert_eq!(err.code(), ErrorCode::StorageFailure);
    assert!(!err.is_retryable());
    let problem = err.to_problem(ctx.request_id());
    assert!(
        !problem.detail.contains("disk"),
        "a server error hides its cause: {problem:?}"
    );
    assert_eq!(sink.outcome_of(&ctx).outcome, Outcome::Failed);
}

// ---------------------------------------------------------------------------------------
// Diagnostics
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_operation_records_its_outcome_under_its_request_id() {
    let world = World::new().await;
    let tenancy = world.tenancy();

    let ok = world.as_user(&world.owner);
    tenancy.get_org(&ok, world.acme.id).await.unwrap();
    let event = world.sink.outcome_of(&ok);
    assert_eq!(event.name, "tenancy.org.read");
    assert_eq!(event.kind, EventKind::Query);
    assert_eq!((event.outcome, event.code), (Outcome::Succeeded, None));
    assert_eq!(event.request_id, ok.request_id());
    assert_eq!(event.org, Some(world.acme.id));
    assert_eq!(event.actor, Some(Principal::User(world.owner.id)));

    let rejected = world.as_user(&world.owner);
    let _ = tenancy
        .set_member_roles(&rejected, world.acme.id, world.owner.id, roles(&["admin"]))
        .await;
    let event = world.sink.outcome_of(&rejected);
    assert_eq!(event.name, "tenancy.member.set_roles");
    assert_eq!(event.kind, EventKind::TenancyChange);
    assert_eq!(
        (event.outcome, event.code),
        (Outcome::Rejected, Some(ErrorCode::LastOwner))
    );
    assert_eq!(event.request_id, rejected.request_id());

    let denied = world.as_user(&world.viewer);
    let _ = tenancy.remove_member(&denied, world.acme.id, world.admin.id).await;
    let event = world.sink.outcome_of(&denied);
    assert_eq!(event.name, "tenancy.member.remove");
    assert_eq!(
        (event.outcome, event.code),
        (Outcome::Denied, Some(ErrorCode::AccessDenied))
    );
    let decisions: Vec<_> = world
        .sink
        .of(&denied)
        .into_iter()
        .filter(|e| e.kind == EventKind::PermissionDecision)
        .collect();
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_eq!(
        decisions[0].outcome,
        Outcome::Denied,
        "the denial is recorded with its decision"
    );
    assert_eq!(decisions[0].detail["object"], "members");
    assert_eq!(decisions[0].detail["action"], "delete");

    let invalid = world.as_user(&world.owner);
    let _ = tenancy.list_members(&invalid, world.acme.id, &page(0)).await;
    let event = world.sink.outcome_of(&invalid);
    assert_eq!(event.name, "tenancy.member.list");
    assert_eq!(
        (event.outcome, event.code),
        (Outcome::Rejected, Some(ErrorCode::InvalidField))
    );
    assert_eq!(event.detail["param"], "limit", "the offending field is in the detail");

    let hidden = world.as_user(&world.viewer);
    let _ = tenancy.get_org(&hidden, world.globex.id).await;
    let event = world.sink.outcome_of(&hidden);
    assert_eq!(
        (event.outcome, event.code),
        (Outcome::Rejected, Some(ErrorCode::OrgNotFound))
    );
}

#[tokio::test]
async fn an_invitation_token_never_reaches_diagnostics() {
    let world = World::new().await;
    let ctx = world.as_user(&world.owner);
    let (_, token) = world
        .tenancy()
        .invite(&ctx, world.acme.id, "newcomer@example.com", roles(&["member"]))
        .await
        .unwrap();
    let accept = world.as_user(&world.outsider);
    let _ = world.tenancy().accept_invitation(&accept, &token).await;
    // Every token starts with `pit_`; no event may hold one.
    let events = world.sink.events.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(!events.is_empty());
    for event in events.iter() {
        let json = serde_json::to_string(event).unwrap();
        assert!(!json.contains("pit_"), "an event holds a token: {json}");
    }
    assert_eq!(
        format!("{token:?}"),
        "InvitationToken([REDACTED])",
        "Debug redacts the token"
    );
}

/// Parses a service name, for brevity.
trait ParseService {
    fn parse_service(&self) -> portal_core::context::ServiceName;
}

impl ParseService for str {
    fn parse_service(&self) -> portal_core::context::ServiceName {
        portal_core::context::ServiceName::new(self).unwrap()
    }
}

/// An org update is audited in its transaction as `org.updated`, by the actor, naming
/// what changed: the name before and after, the metadata keys added, removed or given
/// another value (never a value). An update that changes nothing writes no event, and a
/// viewer (no `org write`) is refused before anything is written.
#[tokio::test]
async fn an_org_update_is_audited_with_what_changed_and_a_no_op_writes_nothing() {
    use portal_core::audit::{AuditLog as _, AuditQuery};

    let store = Arc::new(InMemoryTenancyStore::new());
    let log = store.audit_log();
    let (portal, _clock, _sink) = portal_over(store);
    let service = Principal::Service(portal_core::context::ServiceName::new("signup").unwrap());
    let owner = portal
        .tenancy()
        .create_user(
            &portal.context(service).build(),
            NewUser {
                email: "owner@example.com".to_owned(),
                display_name: "The owner".to_owned(),
            },
        )
        .await
        .unwrap();
    let mut new = NewOrg {
        slug: "acme".to_owned(),
        name: "Acme".to_owned(),
        ..NewOrg::default()
    };
    new.metadata = BTreeMap::from([
        ("plan".to_owned(), "silver".to_owned()),
        ("region".to_owned(), "eu".to_owned()),
        ("secret_ref".to_owned(), "vault:acme".to_owned()),
    ]);
    let ctx = portal.context(Principal::User(owner.id)).build();
    let acme = portal.tenancy().create_org(&ctx, new).await.unwrap();
    let updated = || async {
        log.list(
            acme.id,
            &AuditQuery {
                action: Some(portal_core::audit::actions::ORG_UPDATED.action()),
                ..AuditQuery::default()
            },
            None,
            100,
        )
        .await
        .unwrap()
    };

    let update = OrgUpdate {
        name: Some("Acme Corporation".to_owned()),
        metadata: Some(BTreeMap::from([
            ("plan".to_owned(), "gold".to_owned()),
            ("region".to_owned(), "eu".to_owned()),
            ("seats".to_owned(), "10".to_owned()),
        ])),
    };
    let org = portal
        .tenancy()
        .update_org(&ctx, acme.id, update.clone())
        .await
        .unwrap();
    assert_eq!(org.name.as_str(), "Acme Corporation");
    let events = updated().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.actor.id, owner.id.to_string());
    assert_eq!(event.targets[0].kind, "organization");
    assert_eq!(
        event.metadata,
        serde_json::json!({
            "changed": ["name", "metadata"],
            "name": { "before": "Acme", "after": "Acme Corporation" },
            "metadata_keys": ["plan", "seats", "secret_ref"],
        })
    );
    assert!(
        !event.metadata.to_string().contains("vault:acme") && !event.metadata.to_string().contains("gold"),
        "no metadata value is in the log"
    );

    let same = portal.tenancy().update_org(&ctx, acme.id, update).await.unwrap();
    assert_eq!(same, org, "the same update changes nothing");
    assert_eq!(updated().await.len(), 1, "and writes no event");
    let renamed_only = OrgUpdate {
        name: Some("Acme Inc.".to_owned()),
        ..OrgUpdate::default()
    };
    portal.tenancy().update_org(&ctx, acme.id, renamed_only).await.unwrap();
    let events = updated().await;
    assert_eq!(events.len(), 2);
    let newest = events.iter().max_by_key(|e| e.id).unwrap();
    assert_eq!(newest.metadata["changed"], serde_json::json!(["name"]));
    assert!(newest.metadata.get("metadata_keys").is_none(), "{:?}", newest.metadata);
}
