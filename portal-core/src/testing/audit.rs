//! The outbox conformance suite: a [`TenancyStore`] writes each audited change's
//! [`AuditEvent`] in the change's transaction, and its [`AuditLog`] reads an org's events
//! back, filtered and page by page.
//!
//! Every clause takes a store and the audit log its events are written to (the same
//! database), and makes the users, orgs and invitations it needs with fresh ids. Run them
//! all with [`audit_log_conformance!`](crate::audit_log_conformance), whose factory
//! returns `Option<(store, log)>`.

use std::sync::LazyLock;

use serde_json::json;
use time::Duration;

use crate::audit::{
    ActorKind, AuditActor, AuditContext, AuditEvent, AuditLog, AuditQuery, AuditTarget, CatalogEntry, actions,
};
use crate::ids::{AuditEventId, OrgId, RandomIds, RequestId};
use crate::store::{Conflict, StoreError};
use crate::tenancy::TenancyStore;
use crate::testing::tenancy::{add_member, at, invitation_value, new_org, new_user, roles_of};

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// An event of `org` with a fresh id at the suite's reference time: what the store
/// conformance suites hand every audited store call.
pub fn audit_event(org: OrgId) -> AuditEvent {
    event_at(org, actions::MEMBER_ROLES_CHANGED, 0)
}

/// A catalog event `entry` in `org`, `seconds` after the reference time, by a fixed user
/// actor from a fixed address, with a fresh id.
fn event_at(org: OrgId, entry: CatalogEntry, seconds: i64) -> AuditEvent {
    let when = at(seconds);
    AuditEvent {
        id: AuditEventId::generate(&*IDS, when),
        org,
        action: entry.action(),
        version: entry.version,
        actor: AuditActor {
            id: "usr_conformance".to_owned(),
            kind: ActorKind::User,
            name: Some("Grace Hopper".to_owned()),
        },
        targets: Vec::new(),
        context: AuditContext {
            request_id: RequestId::generate(&*IDS, when),
            client_request_id: Some("client-1".to_owned()),
            ip: Some("203.0.113.7".to_owned()),
            user_agent: Some("conformance/1.0".to_owned()),
        },
        occurred_at: when,
        metadata: json!({ "seconds": seconds, "nested": { "list": [1, 2, 3] } }),
    }
}

/// All of `org`'s events, read page by page (pages of two, so paging is exercised).
async fn all_events(log: &dyn AuditLog, org: OrgId, query: &AuditQuery) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = Vec::new();
    loop {
        let page = log
            .list(org, query, out.last().map(|e| e.id), 2)
            .await
            .expect("the audit log reads");
        assert!(page.len() <= 2, "list returns at most `limit` events");
        let done = page.len() < 2;
        out.extend(page);
        if done {
            return out;
        }
    }
}

/// Every audited change writes exactly the event it was given, which reads back equal
/// (every field, metadata included), in the org's log and no other, in id order.
pub async fn each_audited_change_writes_its_event(store: &dyn TenancyStore, log: &dyn AuditLog) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let other = new_org(store, &owner).await;
    let user = new_user(store).await;

    let invite = event_at(org.id, actions::INVITATION_CREATED, 1);
    let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    store.create_invitation(&invitation, &invite).await.unwrap();
    let accept = event_at(org.id, actions::INVITATION_ACCEPTED, 2);
    store
        .accept_invitation(invitation.id, user.id, at(2), &accept)
        .await
        .unwrap();
    let change = event_at(org.id, actions::MEMBER_ROLES_CHANGED, 3).target(AuditTarget::new("user", user.id));
    store
        .set_member_roles(org.id, user.id, &roles_of(&["admin"]), at(3), &change)
        .await
        .unwrap();
    let pending = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    let pending_event = event_at(org.id, actions::INVITATION_CREATED, 4);
    store.create_invitation(&pending, &pending_event).await.unwrap();
    let revoke = event_at(org.id, actions::INVITATION_REVOKED, 5);
    store
        .revoke_invitation(org.id, pending.id, at(5), &revoke)
        .await
        .unwrap();
    let remove = event_at(org.id, actions::MEMBER_REMOVED, 6);
    store.remove_member(org.id, user.id, &remove).await.unwrap();
    let mut renamed = org.clone();
    renamed.name = crate::tenancy::OrgName::new("Renamed by its owner").unwrap();
    let update = event_at(org.id, actions::ORG_UPDATED, 7).target(AuditTarget::new("organization", org.id));
    store.update_org(&renamed, &update).await.unwrap();

    let mut expected = vec![invite, accept, change, pending_event, revoke, remove, update];
    expected.sort_by_key(|e| e.id);
    assert_eq!(
        all_events(log, org.id, &AuditQuery::default()).await,
        expected,
        "each change's event reads back, in id order"
    );
    assert!(
        all_events(log, other.id, &AuditQuery::default()).await.is_empty(),
        "another org's log holds none of them"
    );
}

/// A change the store refuses writes no event: an event without its change cannot
/// exist.
pub async fn a_refused_change_writes_no_event(store: &dyn TenancyStore, log: &dyn AuditLog) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let stranger = new_user(store).await;

    let demote = event_at(org.id, actions::MEMBER_ROLES_CHANGED, 1);
    let err = store
        .set_member_roles(org.id, owner.id, &roles_of(&["admin"]), at(1), &demote)
        .await
        .expect_err("demoting the only owner is refused");
    assert!(matches!(err, StoreError::Conflict(Conflict::LastOwner)), "{err:?}");
    let remove = event_at(org.id, actions::MEMBER_REMOVED, 2);
    let err = store
        .remove_member(org.id, stranger.id, &remove)
        .await
        .expect_err("removing a non-member is refused");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let revoke = event_at(org.id, actions::INVITATION_REVOKED, 3);
    let unknown = invitation_value(&org, &stranger.email, roles_of(&["member"]), at(3600));
    let err = store
        .revoke_invitation(org.id, unknown.id, at(3), &revoke)
        .await
        .expect_err("revoking an unknown invitation is refused");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    // An org that does not exist (its id unknown to the store) takes no update, and its
    // event is not written.
    let mut unknown_org = org.clone();
    unknown_org.id = crate::ids::OrgId::generate(&*IDS, at(4));
    let update = event_at(unknown_org.id, actions::ORG_UPDATED, 4);
    let err = store
        .update_org(&unknown_org, &update)
        .await
        .expect_err("updating an unknown org is refused");
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(
        all_events(log, unknown_org.id, &AuditQuery::default()).await.is_empty(),
        "the refused update left no event"
    );

    assert!(
        all_events(log, org.id, &AuditQuery::default()).await.is_empty(),
        "no refused change left an event"
    );
}

/// A change whose event cannot be written (its id is already in the log) is not stored:
/// a change without its event cannot commit.
pub async fn a_change_whose_event_fails_is_not_stored(store: &dyn TenancyStore, log: &dyn AuditLog) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    add_member(store, &org, &user, roles_of(&["member"]), at(1)).await;
    let first = event_at(org.id, actions::MEMBER_ROLES_CHANGED, 2);
    store
        .set_member_roles(org.id, user.id, &roles_of(&["admin"]), at(2), &first)
        .await
        .unwrap();

    let err = store
        .set_member_roles(org.id, user.id, &roles_of(&["viewer"]), at(3), &first)
        .await
        .expect_err("a change with an event already written fails");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "audit event" })
        ),
        "{err:?}"
    );
    let err = store
        .remove_member(org.id, user.id, &first)
        .await
        .expect_err("a removal with an event already written fails");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { .. })),
        "{err:?}"
    );
    let mut renamed = org.clone();
    renamed.name = crate::tenancy::OrgName::new("Never renamed").unwrap();
    let err = store
        .update_org(&renamed, &first)
        .await
        .expect_err("an org update with an event already written fails");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { .. })),
        "{err:?}"
    );
    assert_eq!(
        store.get_org(org.id).await.unwrap().map(|o| o.name),
        Some(org.name.clone()),
        "the update whose event failed was not stored"
    );
    let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    let err = store
        .create_invitation(&invitation, &first)
        .await
        .expect_err("an invitation with an event already written fails");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::AlreadyExists { .. })),
        "{err:?}"
    );

    let member = store.get_membership(org.id, user.id).await.unwrap();
    assert_eq!(
        member.map(|m| m.roles),
        Some(roles_of(&["admin"])),
        "the member keeps the roles of the last change that committed"
    );
    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        None,
        "the invitation whose event failed was not stored"
    );
    let events = all_events(log, org.id, &AuditQuery::default()).await;
    assert_eq!(
        events.len(),
        3,
        "the log holds the membership's two events and the committed change's, no more: {events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| **e == first).count(),
        1,
        "the committed change's event is there once"
    );
}

/// The log filters by action, actor, target and time range (`since` inclusive, `until`
/// exclusive), every filter that is set applying, and pages after a cursor.
pub async fn the_log_filters_and_pages(store: &dyn TenancyStore, log: &dyn AuditLog) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let ann = new_user(store).await;
    let bob = new_user(store).await;
    add_member(store, &org, &ann, roles_of(&["member"]), at(1)).await;
    add_member(store, &org, &bob, roles_of(&["member"]), at(1)).await;
    let mut written = Vec::new();
    for (seconds, user, role) in [(10, &ann, "admin"), (20, &bob, "admin"), (30, &ann, "viewer")] {
        let mut event =
            event_at(org.id, actions::MEMBER_ROLES_CHANGED, seconds).target(AuditTarget::new("user", user.id));
        if seconds == 20 {
            event.actor.id = "key_other".to_owned();
            event.actor.kind = ActorKind::ApiKey;
        }
        store
            .set_member_roles(org.id, user.id, &roles_of(&[role]), at(seconds), &event)
            .await
            .unwrap();
        written.push(event);
    }
    let removal = event_at(org.id, actions::MEMBER_REMOVED, 40).target(AuditTarget::new("user", bob.id));
    store.remove_member(org.id, bob.id, &removal).await.unwrap();
    written.push(removal);

    let query = |f: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    let cases = [
        query(&|q| q.action = Some(actions::MEMBER_REMOVED.action())),
        query(&|q| q.actor = Some("key_other".to_owned())),
        query(&|q| q.target = Some(ann.id.to_string())),
        query(&|q| {
            q.since = Some(at(20));
            q.until = Some(at(40));
        }),
        query(&|q| {
            q.target = Some(bob.id.to_string());
            q.action = Some(actions::MEMBER_ROLES_CHANGED.action());
        }),
        query(&|q| q.since = Some(at(40) + Duration::microseconds(1))),
    ];
    for q in cases {
        let mut expected: Vec<AuditEvent> = written.iter().filter(|e| q.matches(e)).cloned().collect();
        expected.sort_by_key(|e| e.id);
        assert_eq!(all_events(log, org.id, &q).await, expected, "filter {q:?}");
    }
    let everything = all_events(log, org.id, &AuditQuery::default()).await;
    let after_first = log
        .list(org.id, &AuditQuery::default(), Some(everything[0].id), 100)
        .await
        .unwrap();
    assert_eq!(after_first, everything[1..], "a cursor reads what comes after it");
    let none = log.list(org.id, &AuditQuery::default(), None, 0).await.unwrap();
    assert!(none.is_empty(), "a limit of 0 reads nothing");
}

/// An org's retention reads back as set (`None` by default and after unsetting), its
/// change writes its event, and a purge deletes exactly the events of orgs with a
/// retention that occurred before `now` less its days (one at the cut-off stays); another
/// org without a retention loses nothing.
pub async fn retention_purges_old_events_of_that_org_only(store: &dyn TenancyStore, log: &dyn AuditLog) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let other = new_org(store, &owner).await;
    assert_eq!(log.retention(org.id).await.unwrap(), None, "kept for ever by default");
    for seconds in [10, 20, 30] {
        for id in [org.id, other.id] {
            let event = event_at(id, actions::AUDIT_RETENTION_CHANGED, seconds);
            log.set_retention(id, None, &event).await.unwrap();
        }
    }
    let seven = event_at(org.id, actions::AUDIT_RETENTION_CHANGED, 40);
    log.set_retention(org.id, Some(7), &seven).await.unwrap();
    assert_eq!(log.retention(org.id).await.unwrap(), Some(7));
    assert_eq!(log.retention(other.id).await.unwrap(), None);
    let before = all_events(log, org.id, &AuditQuery::default()).await;
    assert!(before.contains(&seven), "the change's event is written");
    let others = all_events(log, other.id, &AuditQuery::default()).await;

    assert_eq!(log.purge_expired(at(40)).await.unwrap(), 0, "nothing is 7 days old yet");
    let cutoff = at(20);
    let purged = log.purge_expired(cutoff + Duration::days(7)).await.unwrap();
    let expected: Vec<AuditEvent> = before.iter().filter(|e| e.occurred_at >= cutoff).cloned().collect();
    assert_eq!(all_events(log, org.id, &AuditQuery::default()).await, expected);
    // At least these: other orgs of the same database with a retention may lose theirs.
    assert!(purged >= (before.len() - expected.len()) as u64, "{purged}");
    assert!(purged >= 1, "the event at 10 s is gone");
    assert_eq!(all_events(log, other.id, &AuditQuery::default()).await, others);

    let unset = event_at(org.id, actions::AUDIT_RETENTION_CHANGED, 50);
    log.set_retention(org.id, None, &unset).await.unwrap();
    assert_eq!(log.retention(org.id).await.unwrap(), None);
    let far = at(50) + Duration::days(3650);
    let remaining = all_events(log, org.id, &AuditQuery::default()).await;
    log.purge_expired(far).await.unwrap();
    assert_eq!(
        all_events(log, org.id, &AuditQuery::default()).await,
        remaining,
        "unset keeps for ever"
    );
    assert_eq!(all_events(log, other.id, &AuditQuery::default()).await, others);
}

/// Expands to one `#[tokio::test]` per outbox clause. The factory is a future of
/// `Option<(store, log)>`, both on one database; `None` skips the suite.
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! audit_log_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some((store, log)) = $factory.await else {
                return;
            };
            $crate::testing::audit::$clause(&store, &log).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::audit_log_conformance! { @tests ($factory)
            each_audited_change_writes_its_event,
            a_refused_change_writes_no_event,
            a_change_whose_event_fails_is_not_stored,
            the_log_filters_and_pages,
            retention_purges_old_events_of_that_org_only,
        }
    };
}

#[cfg(test)]
mod tests {
    /// Every clause function is in the macro's list, and the list names nothing else.
    #[test]
    fn the_macro_lists_every_clause() {
        let source = include_str!("audit.rs");
        let mut functions: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        let list_start = source.find("@tests ($factory)\n").expect("the macro's clause list");
        let mut listed: Vec<&str> = source[list_start..]
            .lines()
            .skip(1)
            .map(str::trim)
            .take_while(|line| line.ends_with(','))
            .map(|line| line.trim_end_matches(','))
            .collect();
        assert_eq!(functions.len(), 5, "found {functions:?}");
        functions.sort_unstable();
        listed.sort_unstable();
        assert_eq!(functions, listed);
    }
}
