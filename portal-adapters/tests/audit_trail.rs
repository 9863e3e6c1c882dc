//! The customer audit log end to end on the in-memory stores: the tenancy service's
//! changes land in the org's log with the actor's display name and the request's context,
//! and `AuditTrailService::list` lets owners and admins read it (`audit read`), refuses a
//! viewer, answers another org's member exactly as for a missing org, and decides access
//! before it looks at the filter or the page.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test fails by panicking")]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use portal_adapters::memory::InMemoryTenancyStore;
use portal_core::audit::ActorKind;
use portal_core::audit_trail::{AuditFilter, AuditTrailService};
use portal_core::context::{Principal, ServiceName};
use portal_core::store::PageRequest;
use portal_core::tenancy::{NewOrg, NewUser, Organization, RoleSet, User};
use portal_core::{ErrorCode, Portal, RequestContext};

struct World {
    portal: Portal,
    audit: AuditTrailService,
    owner: User,
    admin: User,
    viewer: User,
    outsider: User,
    acme: Organization,
}

impl World {
    async fn new() -> Self {
        let store = Arc::new(InMemoryTenancyStore::new());
        let log = Arc::new(store.audit_log());
        let portal = Portal::builder().tenancy_store(store).build().unwrap();
        let audit = AuditTrailService::new(log, portal.gate().clone());
        let signup = Principal::Service(ServiceName::new("signup").unwrap());
        let mut users = Vec::new();
        for name in ["owner", "admin", "viewer", "outsider"] {
            let new = NewUser {
                email: format!("{name}@example.com"),
                display_name: format!("The {name}"),
            };
            let ctx = portal.context(signup.clone()).build();
            users.push(portal.tenancy().create_user(&ctx, new).await.unwrap());
        }
        let [owner, admin, viewer, outsider] = users.try_into().unwrap();
        let mut orgs = Vec::new();
        for (by, slug) in [(&owner, "acme"), (&outsider, "globex")] {
            let ctx = portal.context(Principal::User(by.id)).build();
            let new = NewOrg {
                slug: slug.to_owned(),
                name: format!("{slug} corporation"),
                ..NewOrg::default()
            };
            orgs.push(portal.tenancy().create_org(&ctx, new).await.unwrap());
        }
        let acme = orgs.remove(0);
        let world = Self {
            portal,
            audit,
            owner,
            admin,
            viewer,
            outsider,
            acme,
        };
        for (user, role) in [(&world.admin, "admin"), (&world.viewer, "viewer")] {
            let (_, token) = world
                .portal
                .tenancy()
                .invite(
                    &world.as_user(&world.owner),
                    world.acme.id,
                    user.email.as_str(),
                    RoleSet::parse([role]).unwrap(),
                )
                .await
                .unwrap();
            world
                .portal
                .tenancy()
                .accept_invitation(&world.as_user(user), &token)
                .await
                .unwrap();
        }
        world
    }

    fn as_user(&self, user: &User) -> RequestContext {
        self.portal.context(Principal::User(user.id)).build()
    }
}

#[tokio::test]
async fn a_role_change_is_in_the_log_with_its_actor_and_request() {
    let world = World::new().await;
    let ctx = world
        .portal
        .context(Principal::User(world.admin.id))
        .with(|b| {
            b.client_ip(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)))
                .user_agent("curl/8.5\u{7}")
                .request_id_header(Some("client-abc"))
        })
        .build();
    world
        .portal
        .tenancy()
        .set_member_roles(
            &ctx,
            world.acme.id,
            world.viewer.id,
            RoleSet::parse(["member"]).unwrap(),
        )
        .await
        .unwrap();

    let filter = AuditFilter {
        action: Some("member.roles_changed".to_owned()),
        ..AuditFilter::default()
    };
    let page = world
        .audit
        .list(
            &world.as_user(&world.owner),
            world.acme.id,
            &filter,
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "{page:?}");
    let event = &page.items[0];
    assert_eq!(event.actor.id, world.admin.id.to_string());
    assert_eq!(event.actor.kind, ActorKind::User);
    assert_eq!(
        event.actor.name.as_deref(),
        Some("The admin"),
        "the actor's name at the time"
    );
    assert_eq!(event.targets[0].id, world.viewer.id.to_string());
    assert_eq!(event.context.request_id, ctx.request_id());
    assert_eq!(event.context.client_request_id.as_deref(), Some("client-abc"));
    assert_eq!(event.context.ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        event.context.user_agent.as_deref(),
        Some("curl/8.5"),
        "control characters are dropped"
    );
    assert_eq!(event.metadata["before"], serde_json::json!(["viewer"]));
    assert_eq!(event.metadata["after"], serde_json::json!(["member"]));
}

#[tokio::test]
async fn the_log_pages_with_a_cursor_through_every_change() {
    let world = World::new().await;
    let owner = world.as_user(&world.owner);
    let mut seen = Vec::new();
    let mut page = PageRequest::first(1);
    loop {
        let got = world
            .audit
            .list(&owner, world.acme.id, &AuditFilter::default(), &page)
            .await
            .unwrap();
        seen.extend(got.items.iter().map(|e| e.action.to_string()));
        match got.next {
            Some(next) => page = PageRequest::after(next, 1),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "invitation.created",
            "invitation.accepted",
            "invitation.created",
            "invitation.accepted"
        ],
        "the two joins, oldest first"
    );
}

#[tokio::test]
async fn owners_and_admins_read_the_log_and_a_viewer_does_not() {
    let world = World::new().await;
    for user in [&world.owner, &world.admin] {
        world
            .audit
            .list(
                &world.as_user(user),
                world.acme.id,
                &AuditFilter::default(),
                &PageRequest::default(),
            )
            .await
            .unwrap();
    }
    let err = world
        .audit
        .list(
            &world.as_user(&world.viewer),
            world.acme.id,
            &AuditFilter::default(),
            &PageRequest::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::AccessDenied);
}

#[tokio::test]
async fn another_orgs_member_gets_not_found_before_any_validation() {
    let world = World::new().await;
    let bad = AuditFilter {
        action: Some("NOT AN ACTION".to_owned()),
        ..AuditFilter::default()
    };
    for (filter, page) in [
        (AuditFilter::default(), PageRequest::default()),
        (bad.clone(), PageRequest::first(0)),
    ] {
        let err = world
            .audit
            .list(&world.as_user(&world.outsider), world.acme.id, &filter, &page)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::OrgNotFound, "{err:?}");
    }
    let err = world
        .audit
        .list(
            &world.as_user(&world.viewer),
            world.acme.id,
            &bad,
            &PageRequest::first(0),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        ErrorCode::AccessDenied,
        "a viewer learns nothing about the input"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let world = World::new().await;
    let owner = world.as_user(&world.owner);
    let at = time::OffsetDateTime::UNIX_EPOCH;
    let cases = [
        (AuditFilter::default(), PageRequest::first(101), "limit"),
        (AuditFilter::default(), PageRequest::first(0), "limit"),
        (
            AuditFilter::default(),
            PageRequest::after(portal_core::store::Cursor::new("usr_nope"), 10),
            "cursor",
        ),
        (
            AuditFilter {
                action: Some("Member.Removed".to_owned()),
                ..AuditFilter::default()
            },
            PageRequest::default(),
            "action",
        ),
        (
            AuditFilter {
                actor: Some("x".repeat(129)),
                ..AuditFilter::default()
            },
            PageRequest::default(),
            "actor",
        ),
        (
            AuditFilter {
                target: Some(String::new()),
                ..AuditFilter::default()
            },
            PageRequest::default(),
            "target",
        ),
        (
            AuditFilter {
                since: Some(at),
                until: Some(at),
                ..AuditFilter::default()
            },
            PageRequest::default(),
            "until",
        ),
    ];
    for (filter, page, param) in cases {
        let err = world
            .audit
            .list(&owner, world.acme.id, &filter, &page)
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidField, "{param}: {err:?}");
        assert_eq!(err.param(), Some(param));
    }
}
