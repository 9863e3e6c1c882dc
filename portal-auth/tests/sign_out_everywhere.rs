//! "Sign out everywhere" in the customer audit log, through `IdentityService` on the
//! in-memory stores (the identity store writing into the tenancy store's log): it writes
//! one `user.sessions_revoked` in each org of the user, with the count it revoked and the
//! user as actor, none in an org they do not belong to and none when no session was live;
//! a password change and a password set by the host, which also end every session, write
//! their own event and no `user.sessions_revoked` beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests assert")]

use std::sync::Arc;

use portal_adapters::memory::{InMemoryAuditLog, InMemoryIdentityStore, InMemoryTenancyStore};
use portal_auth::identity::{IdentityService, IdentityStores, PasswordParams, SignIn};
use portal_core::access::RoleTableAuthorizer;
use portal_core::audit::{AuditEvent, AuditLog, AuditQuery, actions};
use portal_core::context::ServiceName;
use portal_core::gate::Gate;
use portal_core::ids::{OrgId, SequentialIds, UserId};
use portal_core::portal::discard_sink;
use portal_core::tenancy::{NewOrg, NewUser};
use portal_core::time::ManualClock;
use portal_core::{Portal, Principal, RequestContext};
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;

const PASSWORD: &str = "correct horse battery staple";

struct World {
    portal: Portal,
    identity: IdentityService,
    log: InMemoryAuditLog,
}

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn world() -> World {
    let clock = Arc::new(ManualClock::new(
        OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
    ));
    let ids = Arc::new(SequentialIds::default());
    let tenancy = Arc::new(InMemoryTenancyStore::default());
    let log = tenancy.audit_log();
    let authorizer = Arc::new(RoleTableAuthorizer::default());
    let sink = discard_sink();
    let store = Arc::new(InMemoryIdentityStore::with_tenancy(tenancy.clone()));
    let identity = IdentityService::new(
        IdentityStores::from_one(store),
        tenancy.clone(),
        Gate::new(authorizer.clone(), sink.clone(), tenancy.clone()),
        ids.clone(),
    )
    .with_password_params(PasswordParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    })
    .unwrap();
    let portal = Portal::builder()
        .tenancy_store(tenancy)
        .authorizer(authorizer)
        .diagnostics(sink)
        .clock(clock)
        .ids(ids)
        .authenticator(Arc::new(identity.clone()))
        .build()
        .unwrap();
    World { portal, identity, log }
}

impl World {
    fn host(&self) -> RequestContext {
        self.portal
            .context(Principal::Service(ServiceName::new("web").unwrap()))
            .build()
    }

    fn as_user(&self, user: UserId) -> RequestContext {
        self.portal.context(Principal::User(user)).build()
    }

    async fn user(&self, email: &str, name: &str) -> UserId {
        let user = self
            .portal
            .tenancy()
            .create_user(
                &self.host(),
                NewUser {
                    email: email.to_owned(),
                    display_name: name.to_owned(),
                },
            )
            .await
            .unwrap();
        self.identity
            .set_password(&self.host(), user.id, secret(PASSWORD))
            .await
            .unwrap();
        user.id
    }

    async fn org(&self, slug: &str, owner: UserId) -> OrgId {
        self.portal
            .tenancy()
            .create_org(
                &self.host(),
                NewOrg {
                    slug: slug.to_owned(),
                    name: slug.to_owned(),
                    owner: Some(owner),
                    ..NewOrg::default()
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn sign_in(&self, email: &str, password: &str) {
        self.identity
            .sign_in(
                &self.host(),
                SignIn {
                    email: email.to_owned(),
                    password: secret(password),
                    source: "198.51.100.7".to_owned(),
                    previous_session: None,
                },
            )
            .await
            .expect("signs in");
    }

    /// The `user.sessions_revoked` events of `org`, oldest first.
    async fn revocations(&self, org: OrgId) -> Vec<AuditEvent> {
        let query = AuditQuery {
            action: Some(actions::USER_SESSIONS_REVOKED.action()),
            ..AuditQuery::default()
        };
        self.log.list(org, &query, None, 100).await.unwrap()
    }
}

#[tokio::test]
async fn signing_out_everywhere_is_logged_once_in_each_org_of_the_user() {
    let w = world();
    let ann = w.user("ann@example.com", "Ann Example").await;
    let bob = w.user("bob@example.com", "Bob Example").await;
    let (first, second) = (w.org("first", ann).await, w.org("second", ann).await);
    let elsewhere = w.org("elsewhere", bob).await;
    w.sign_in("ann@example.com", PASSWORD).await;
    w.sign_in("ann@example.com", PASSWORD).await;

    let everywhere = w.as_user(ann);
    assert_eq!(w.identity.revoke_all_sessions(&everywhere).await.unwrap(), 2);
    let mut ids = Vec::new();
    for org in [first, second] {
        let events = w.revocations(org).await;
        assert_eq!(events.len(), 1, "one event in each of ann's orgs: {events:#?}");
        let event = &events[0];
        assert_eq!(event.version, 1);
        assert_eq!(event.actor.id, ann.to_string());
        assert_eq!(event.actor.name.as_deref(), Some("Ann Example"));
        assert_eq!(event.targets.len(), 1);
        assert_eq!(event.targets[0].id, ann.to_string());
        assert_eq!(event.context.request_id, everywhere.request_id());
        assert_eq!(event.metadata, json!({ "sessions_revoked": 2 }));
        ids.push(event.id);
    }
    assert_ne!(ids[0], ids[1], "each org's row has its own id");
    assert!(
        w.revocations(elsewhere).await.is_empty(),
        "bob's org sees nothing of ann"
    );

    assert_eq!(
        w.identity.revoke_all_sessions(&w.as_user(ann)).await.unwrap(),
        0,
        "nothing left to revoke"
    );
    assert_eq!(w.revocations(first).await.len(), 1, "revoking nothing writes nothing");

    // A password change and a password set by the host end every session too; each
    // writes its own event, never a `user.sessions_revoked` beside it.
    w.sign_in("ann@example.com", PASSWORD).await;
    w.identity
        .change_password(
            &w.as_user(ann),
            secret(PASSWORD),
            secret("a brand new passphrase"),
            "198.51.100.7",
            None,
        )
        .await
        .expect("changes the password");
    w.sign_in("ann@example.com", "a brand new passphrase").await;
    w.identity
        .set_password(&w.host(), ann, secret("another passphrase entirely"))
        .await
        .expect("the host sets a password");
    for org in [first, second] {
        assert_eq!(w.revocations(org).await.len(), 1, "no second revocation event");
        let all = w.log.list(org, &AuditQuery::default(), None, 100).await.unwrap();
        let changes = all
            .iter()
            .filter(|e| e.action == actions::USER_PASSWORD_CHANGED.action())
            .count();
        assert_eq!(changes, 2, "the change and the set are logged as themselves");
    }
}
