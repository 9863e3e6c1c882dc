//! `ScimService` end to end on real stores (memory, SQLite, Postgres): provisioning links
//! or creates portal users and their memberships, `active: false` deprovisions (membership
//! removed, sessions revoked, events recorded) and re-activation restores, group
//! membership moves mapped roles at once, the last-owner rule holds, and callers outside
//! the org, or without `scim provision`, are refused before anything is validated.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

#[path = "common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex, PoisonError};

use portal_core::access::RoleName;
use portal_core::context::Principal;
use portal_core::diagnostics::{DiagnosticEvent, DiagnosticSink};
use portal_core::identity::{Scope, SessionRecord, SessionStore};
use portal_core::ids::{ApiKeyId, IdGenerator, OrgId, RandomIds, SessionId, UserId};
use portal_core::scim::{NewScimGroup, NewScimUser, ScimEmail, ScimProfile, ScimService, ScimStore};
use portal_core::tenancy::{NewOrg, NewUser, RoleSet, TokenHash};
use portal_core::{ErrorCode, Portal, RequestContext, TenancyStore};
use time::Duration;

/// A sink that keeps every event.
#[derive(Default)]
struct Events(Mutex<Vec<DiagnosticEvent>>);

impl DiagnosticSink for Events {
    fn record(&self, event: DiagnosticEvent) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(event);
    }
}

impl Events {
    /// The events named `name` that succeeded.
    fn named(&self, name: &str) -> Vec<DiagnosticEvent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect()
    }
}

/// One portal on one backend: `acme` owned by `ada`, a viewer `linus` of `acme`, `globex`
/// owned by `hedy`, and an existing portal user `grace` who belongs to no org yet.
struct World {
    portal: Portal,
    scim: ScimService,
    tenancy: Arc<dyn TenancyStore>,
    sessions: Arc<dyn SessionStore>,
    events: Arc<Events>,
    acme: OrgId,
    globex: OrgId,
    ada: UserId,
    linus: UserId,
    grace: UserId,
}

impl World {
    async fn new(tenancy: Arc<dyn TenancyStore>, scim: Arc<dyn ScimStore>, sessions: Arc<dyn SessionStore>) -> Self {
        let events = Arc::new(Events::default());
        let portal = Portal::builder()
            .tenancy_store(tenancy.clone())
            .diagnostics(events.clone())
            .build()
            .unwrap();
        let signup = Principal::Service(portal_core::context::ServiceName::new("signup").unwrap());
        let mut ids = Vec::new();
        for name in ["ada", "linus", "grace", "hedy"] {
            let ctx = portal.context(signup.clone()).build();
            let new = NewUser {
                email: format!("{name}-{}@example.com", tag()),
                display_name: name.to_owned(),
            };
            ids.push(portal.tenancy().create_user(&ctx, new).await.unwrap().id);
        }
        let [ada, linus, grace, hedy] = ids.try_into().unwrap();
        let acme = org(&portal, ada, "acme").await;
        let globex = org(&portal, hedy, "globex").await;
        let viewer = portal_core::tenancy::Membership {
            org: acme,
            user: linus,
            roles: RoleSet::one(RoleName::viewer()),
            created_at: portal.clock().now(),
            updated_at: portal.clock().now(),
        };
        tenancy
            .add_member(&viewer, &portal_core::testing::audit::audit_event(acme))
            .await
            .unwrap();
        let service = ScimService::new(
            scim,
            tenancy.clone(),
            Some(sessions.clone()),
            portal.gate().clone(),
            Arc::new(RandomIds::default()),
        );
        Self {
            portal,
            scim: service,
            tenancy,
            sessions,
            events,
            acme,
            globex,
            ada,
            linus,
            grace,
        }
    }

    /// A directory's API key of `org` with the scope `scim provision`.
    fn directory(&self, org: OrgId) -> RequestContext {
        let key = ApiKeyId::generate(&RandomIds::default(), self.portal.clock().now());
        let scopes: Arc<[Scope]> = Arc::from(vec!["scim provision".parse::<Scope>().unwrap()]);
        self.portal
            .context(Principal::ApiKey { key, org })
            .with(|b| b.scopes(scopes))
            .build()
    }

    fn as_user(&self, user: UserId) -> RequestContext {
        self.portal.context(Principal::User(user)).build()
    }

    async fn email_of(&self, user: UserId) -> String {
        self.tenancy
            .get_user(user)
            .await
            .unwrap()
            .unwrap()
            .email
            .as_str()
            .to_owned()
    }

    async fn roles(&self, user: UserId) -> Option<Vec<String>> {
        self.tenancy
            .get_membership(self.acme, user)
            .await
            .unwrap()
            .map(|m| m.roles.iter().map(|r| r.as_str().to_owned()).collect())
    }

    /// A live session of `user`.
    async fn session(&self, user: UserId) -> TokenHash {
        let now = self.portal.clock().now();
        let hash = TokenHash::of(&format!("pss_{}", tag()));
        let record = SessionRecord {
            id: SessionId::generate(&RandomIds::default(), now),
            user,
            token_hash: hash,
            active_org: Some(self.acme),
            created_at: now,
            last_seen_at: now,
            absolute_expires_at: now + Duration::days(1),
            revoked_at: None,
        };
        self.sessions.create(&record, None).await.unwrap();
        hash
    }
}

fn tag() -> String {
    RandomIds::default()
        .generate(time::OffsetDateTime::now_utc())
        .simple()
        .to_string()
}

async fn org(portal: &Portal, owner: UserId, name: &str) -> OrgId {
    let ctx = portal.context(Principal::User(owner)).build();
    let new = NewOrg {
        slug: format!("{name}-{}", &tag()[20..]),
        name: name.to_owned(),
        metadata: Default::default(),
        owner: None,
    };
    portal.tenancy().create_org(&ctx, new).await.unwrap().id
}

fn scim_user(user_name: &str, email: Option<&str>, active: bool) -> NewScimUser {
    NewScimUser {
        user_name: user_name.to_owned(),
        external_id: Some(format!("00u{}", &tag()[16..])),
        active,
        profile: ScimProfile {
            emails: email
                .map(|value| ScimEmail {
                    value: value.to_owned(),
                    kind: Some("work".to_owned()),
                    primary: true,
                })
                .into_iter()
                .collect(),
            ..ScimProfile::default()
        },
    }
}

fn strings(roles: &[&str]) -> Option<Vec<String>> {
    Some(roles.iter().map(|r| (*r).to_owned()).collect())
}

/// A known portal user is linked (same id, no second user), joins as `member`; a new one
/// is created; `active: false` removes the membership, revokes the sessions and records
/// it; `active: true` restores the membership.
async fn provisioning_links_and_deactivation_deprovisions(w: World) {
    let dir = w.directory(w.acme);
    let grace_email = w.email_of(w.grace).await;
    let linked = w
        .scim
        .create_user(
            &dir,
            w.acme,
            scim_user(&grace_email.to_uppercase(), Some(&grace_email), true),
        )
        .await
        .expect("provisioning a known user");
    assert_eq!(linked.user, w.grace, "the known user is linked, not duplicated");
    assert_eq!(w.roles(w.grace).await, strings(&["member"]), "she joined as member");
    let event = &w.events.named("scim.user.create")[0];
    assert_eq!(event.detail.value().get("linked"), Some(&serde_json::json!(true)));

    let fresh_email = format!("new-{}@example.com", tag());
    let created = w
        .scim
        .create_user(&dir, w.acme, scim_user(&fresh_email, None, true))
        .await
        .expect("provisioning a new user by userName");
    assert_ne!(created.user, w.grace);
    assert_eq!(w.email_of(created.user).await, fresh_email, "a portal user was created");
    assert_eq!(w.roles(created.user).await, strings(&["member"]));

    let token = w.session(w.grace).await;
    let mut off = scim_user(&grace_email, Some(&grace_email), false);
    off.external_id = linked.external_id.clone();
    let stale = w
        .scim
        .replace_user(&dir, w.acme, w.grace, off.clone(), Some(7))
        .await
        .expect_err("a stale version");
    assert_eq!(stale.code(), ErrorCode::VersionConflict);
    assert_eq!(
        w.roles(w.grace).await,
        strings(&["member"]),
        "a refused replace changes nothing"
    );

    let deactivated = w
        .scim
        .replace_user(&dir, w.acme, w.grace, off.clone(), Some(1))
        .await
        .expect("deactivation");
    assert!(!deactivated.active);
    assert_eq!(deactivated.version, 2);
    assert_eq!(w.roles(w.grace).await, None, "the membership is removed");
    let session = w.sessions.find_by_token(&token).await.unwrap().unwrap();
    assert!(session.revoked_at.is_some(), "her session is revoked");
    let event = w.events.named("scim.user.replace").pop().unwrap();
    assert_eq!(
        event.detail.value().get("sessions_revoked"),
        Some(&serde_json::json!(1))
    );

    off.active = true;
    let back = w
        .scim
        .replace_user(&dir, w.acme, w.grace, off, None)
        .await
        .expect("re-activation");
    assert!(back.active);
    assert_eq!(
        w.roles(w.grace).await,
        strings(&["member"]),
        "re-activation restores membership"
    );

    let dup = w
        .scim
        .create_user(&dir, w.acme, scim_user(&fresh_email.to_uppercase(), None, true))
        .await
        .expect_err("a taken userName");
    assert_eq!(dup.code(), ErrorCode::ScimUniqueness);

    w.scim.delete_user(&dir, w.acme, created.user).await.expect("delete");
    assert_eq!(w.roles(created.user).await, None, "deleting removes the membership");
    let gone = w.scim.get_user(&dir, w.acme, created.user).await.expect_err("deleted");
    assert_eq!(gone.code(), ErrorCode::ScimUserNotFound);
}

/// Mapping a group to roles gives its active members those roles at once, and leaving
/// the group takes them away; a manual role no group maps (the owner's) stays; the last
/// owner can be neither deactivated nor stripped of `owner` through a group, and a
/// refused change leaves the group and the roles as they were.
async fn groups_move_roles_and_the_last_owner_holds(w: World) {
    let dir = w.directory(w.acme);
    let owner = w.as_user(w.ada);
    let grace_email = w.email_of(w.grace).await;
    let grace = w
        .scim
        .create_user(&dir, w.acme, scim_user(&grace_email, None, true))
        .await
        .unwrap();
    let ada_email = w.email_of(w.ada).await;
    let ada = w
        .scim
        .create_user(&dir, w.acme, scim_user(&ada_email, None, true))
        .await
        .unwrap();
    assert_eq!(ada.user, w.ada, "the owner is linked");
    assert_eq!(
        w.roles(w.ada).await,
        strings(&["owner"]),
        "linking keeps the owner's role"
    );

    let admins = w
        .scim
        .create_group(
            &dir,
            w.acme,
            NewScimGroup {
                display_name: "Admins".to_owned(),
                external_id: None,
                members: vec![grace.user],
            },
        )
        .await
        .unwrap();
    let denied = w
        .scim
        .set_group_roles(&dir, w.acme, admins.id, vec![RoleName::admin()])
        .await
        .expect_err("a directory key may not map roles");
    assert_eq!(denied.code(), ErrorCode::AccessDenied);
    w.scim
        .set_group_roles(&owner, w.acme, admins.id, vec![RoleName::admin()])
        .await
        .expect("the owner maps the group");
    assert_eq!(
        w.roles(w.grace).await,
        strings(&["admin", "member"]),
        "the mapped role at once"
    );

    let emptied = w
        .scim
        .replace_group(
            &dir,
            w.acme,
            admins.id,
            NewScimGroup {
                display_name: "Admins".to_owned(),
                external_id: None,
                members: Vec::new(),
            },
            Some(2),
        )
        .await
        .expect("removing the member");
    assert!(emptied.members.is_empty());
    assert_eq!(
        w.roles(w.grace).await,
        strings(&["member"]),
        "leaving takes the role away"
    );

    let owners = w
        .scim
        .create_group(
            &dir,
            w.acme,
            NewScimGroup {
                display_name: "Owners".to_owned(),
                external_id: None,
                members: vec![w.ada],
            },
        )
        .await
        .unwrap();
    let owners = w
        .scim
        .set_group_roles(&owner, w.acme, owners.id, vec![RoleName::owner()])
        .await
        .unwrap();
    let refused = w
        .scim
        .replace_group(
            &dir,
            w.acme,
            owners.id,
            NewScimGroup {
                display_name: "Owners".to_owned(),
                external_id: None,
                members: Vec::new(),
            },
            None,
        )
        .await
        .expect_err("the last owner would lose `owner`");
    assert_eq!(refused.code(), ErrorCode::LastOwner);
    assert_eq!(w.roles(w.ada).await, strings(&["owner"]), "her roles are unchanged");
    let kept = w.scim.get_group(&dir, w.acme, owners.id).await.unwrap();
    assert_eq!(kept.members, vec![w.ada], "the group is as it was");

    let mut off = scim_user(&ada_email, None, false);
    off.external_id = ada.external_id.clone();
    let refused = w
        .scim
        .replace_user(&dir, w.acme, w.ada, off, None)
        .await
        .expect_err("deactivating the last owner");
    assert_eq!(refused.code(), ErrorCode::LastOwner);
    assert!(
        w.scim.get_user(&dir, w.acme, w.ada).await.unwrap().active,
        "still active"
    );
    assert_eq!(w.roles(w.ada).await, strings(&["owner"]));
    assert_eq!(owners.roles, vec![RoleName::owner()]);
}

/// Another org's directory key, a member without `scim provision` and a user of no org
/// are refused before validation, with the codes that reveal nothing; another org's
/// directory cannot reach this org's users by id.
async fn outsiders_are_refused_before_validation(w: World) {
    let dir = w.directory(w.acme);
    let grace_email = w.email_of(w.grace).await;
    let grace = w
        .scim
        .create_user(&dir, w.acme, scim_user(&grace_email, None, true))
        .await
        .unwrap();
    let invalid = NewScimUser {
        user_name: String::new(),
        ..scim_user("x@example.com", None, true)
    };

    let globex_dir = w.directory(w.globex);
    let err = w
        .scim
        .create_user(&globex_dir, w.acme, invalid.clone())
        .await
        .expect_err("another org's key in this org");
    assert_eq!(err.code(), ErrorCode::OrgNotFound);
    let err = w
        .scim
        .get_user(&globex_dir, w.globex, grace.user)
        .await
        .expect_err("this org's user through another org");
    assert_eq!(err.code(), ErrorCode::ScimUserNotFound, "as a missing one");
    assert!(
        w.scim
            .list_users(&globex_dir, w.globex, None, 100)
            .await
            .unwrap()
            .is_empty(),
        "another org's directory lists nothing of this org"
    );

    let viewer = w.as_user(w.linus);
    let err = w
        .scim
        .create_user(&viewer, w.acme, invalid.clone())
        .await
        .expect_err("a viewer");
    assert_eq!(err.code(), ErrorCode::AccessDenied, "authorized before validated");
    let err = w
        .scim
        .create_user(&w.as_user(w.grace), w.globex, invalid.clone())
        .await
        .expect_err("a non-member");
    assert_eq!(err.code(), ErrorCode::OrgNotFound);

    let err = w
        .scim
        .create_user(&dir, w.acme, invalid)
        .await
        .expect_err("empty userName");
    assert_eq!(err.code(), ErrorCode::InvalidField);
    assert_eq!(err.param(), Some("userName"));
}

/// Okta's documented provisioning sequence, replayed through the service: create the
/// user, find it by `userName eq`, push a group and add the user with a PATCH, then
/// deactivate with `replace` of a value object; then Entra's: `Replace` of `active` with
/// the string `"False"` and a group `Remove` with the member in `value`. Memberships and
/// mapped roles follow each step.
async fn okta_and_entra_sequences_replay(w: World) {
    use portal_core::scim::filter::Filter;
    use portal_core::scim::patch::{apply_to_group, apply_to_user, parse_ops};
    use serde_json::json;

    let dir = w.directory(w.acme);
    let owner = w.as_user(w.ada);
    let email = w.email_of(w.grace).await;
    let filter = Filter::parse(&format!("userName eq \"{email}\"")).unwrap();
    let before = w.scim.list_users(&dir, w.acme, None, 100).await.unwrap();
    assert!(
        !before.iter().any(|u| filter.matches_user(u)),
        "Okta first finds no user"
    );
    let user = w
        .scim
        .create_user(&dir, w.acme, scim_user(&email, Some(&email), true))
        .await
        .unwrap();
    let found = w
        .scim
        .find_user_by_user_name(&dir, w.acme, &email.to_uppercase())
        .await
        .unwrap();
    assert_eq!(found.as_ref().map(|u| u.user), Some(user.user));

    let group = w
        .scim
        .create_group(
            &dir,
            w.acme,
            NewScimGroup {
                display_name: "Okta Admins".to_owned(),
                external_id: None,
                members: Vec::new(),
            },
        )
        .await
        .unwrap();
    w.scim
        .set_group_roles(&owner, w.acme, group.id, vec![RoleName::admin()])
        .await
        .unwrap();
    let group = w.scim.get_group(&dir, w.acme, group.id).await.unwrap();
    let add = parse_ops(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "add", "path": "members", "value": [{ "value": user.user.to_string(), "display": email }] }]
    }))
    .unwrap();
    let next = apply_to_group(&group, &add).unwrap();
    w.scim
        .replace_group(&dir, w.acme, group.id, next, Some(group.version))
        .await
        .unwrap();
    assert_eq!(
        w.roles(user.user).await,
        strings(&["admin", "member"]),
        "the push gives the role"
    );

    let okta_off = parse_ops(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "value": { "active": false } }]
    }))
    .unwrap();
    let current = w.scim.get_user(&dir, w.acme, user.user).await.unwrap();
    let next = apply_to_user(&current, &okta_off).unwrap();
    w.scim
        .replace_user(&dir, w.acme, user.user, next, Some(current.version))
        .await
        .unwrap();
    assert_eq!(w.roles(user.user).await, None, "Okta's deactivation removes the member");

    let entra_on = parse_ops(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Replace", "path": "active", "value": "True" }]
    }))
    .unwrap();
    let current = w.scim.get_user(&dir, w.acme, user.user).await.unwrap();
    let next = apply_to_user(&current, &entra_on).unwrap();
    w.scim.replace_user(&dir, w.acme, user.user, next, None).await.unwrap();
    assert_eq!(
        w.roles(user.user).await,
        strings(&["admin", "member"]),
        "re-activation restores the group's role"
    );

    let entra_remove = parse_ops(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Remove", "path": "members", "value": [{ "value": user.user.to_string() }] }]
    }))
    .unwrap();
    let group = w.scim.get_group(&dir, w.acme, group.id).await.unwrap();
    let next = apply_to_group(&group, &entra_remove).unwrap();
    w.scim.replace_group(&dir, w.acme, group.id, next, None).await.unwrap();
    assert_eq!(
        w.roles(user.user).await,
        strings(&["member"]),
        "leaving takes the role away"
    );

    let entra_off = parse_ops(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "Replace", "path": "active", "value": "False" }]
    }))
    .unwrap();
    let current = w.scim.get_user(&dir, w.acme, user.user).await.unwrap();
    let next = apply_to_user(&current, &entra_off).unwrap();
    w.scim.replace_user(&dir, w.acme, user.user, next, None).await.unwrap();
    assert_eq!(
        w.roles(user.user).await,
        None,
        "Entra's deactivation removes the member"
    );
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    let identity = Arc::new(portal_adapters::memory::InMemoryIdentityStore::new());
                    let w = World::new(
                        Arc::new(portal_adapters::memory::InMemoryTenancyStore::new()),
                        Arc::new(portal_adapters::memory::InMemoryScimStore::new()),
                        identity,
                    )
                    .await;
                    super::$test(w).await;
                }
            )*
        }

        #[cfg(feature = "sqlite")]
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    let pool = crate::common::fresh_sqlite_pool().await;
                    let w = World::new(
                        Arc::new(portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone())),
                        Arc::new(portal_adapters::sqlite::SqliteScimStore::new(pool.clone())),
                        Arc::new(portal_adapters::sqlite::SqliteIdentityStore::new(pool)),
                    )
                    .await;
                    super::$test(w).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            use super::*;
            $(
                #[tokio::test]
                async fn $test() {
                    let Some(pool) = crate::common::fresh_pg_pool().await else {
                        return;
                    };
                    let w = World::new(
                        Arc::new(portal_adapters::postgres::PgTenancyStore::new(pool.clone())),
                        Arc::new(portal_adapters::postgres::PgScimStore::new(pool.clone())),
                        Arc::new(portal_adapters::postgres::PgIdentityStore::new(pool)),
                    )
                    .await;
                    super::$test(w).await;
                }
            )*
        }
    };
}

on_every_backend!(
    provisioning_links_and_deactivation_deprovisions,
    groups_move_roles_and_the_last_owner_holds,
    outsiders_are_refused_before_validation,
    okta_and_entra_sequences_replay,
);
