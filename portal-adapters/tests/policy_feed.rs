//! Policy feeds: replicas learn of each other's policy changes.
//!
//! - `memory`: `InMemoryPolicyFeed` follows changes made through any clone of its store,
//!   catches up from the log, and resynchronizes when the log was trimmed.
//! - `postgres`: `PgPolicyListener` on a pool of its own receives, through `LISTEN`/
//!   `NOTIFY`, the changes a `PgPolicyStore` on another pool commits: small ones carried
//!   in the notification, large ones announced by revision and read from the log, gaps
//!   filled from the log, and a full resync after its connection is killed with
//!   `pg_terminate_backend`. These need `PORTAL_TEST_POSTGRES_URL`; without it they
//!   return early after printing that they were skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod common;

use std::time::Duration;

use portal_core::access::{Domain, Effect, PolicyChange, PolicyEvent, PolicyLine, PolicyRule};
use portal_core::ids::{OrgId, RandomIds};

/// How long a replica may take to see a change another replica committed.
const WITHIN: Duration = Duration::from_secs(1);

fn new_org() -> OrgId {
    OrgId::generate(&RandomIds::default(), time::OffsetDateTime::now_utc())
}

/// A permission of role `role-<n>` in `org`, padded so a few hundred make a large change.
fn line(org: OrgId, n: usize) -> PolicyLine {
    PolicyLine::Permission(PolicyRule {
        subject: format!("role-{n}").into(),
        domain: Domain::Org(org),
        object: format!("cases/{n}/attachments/*").into(),
        action: "read".into(),
        effect: Effect::Allow,
    })
}

fn lines(org: OrgId, range: std::ops::Range<usize>) -> Vec<PolicyLine> {
    range.map(|n| line(org, n)).collect()
}

fn sorted(mut lines: Vec<PolicyLine>) -> Vec<PolicyLine> {
    lines.sort_by_key(|line| format!("{line:?}"));
    lines
}

fn change(revision: u64, added: Vec<PolicyLine>, removed: Vec<PolicyLine>) -> PolicyEvent {
    PolicyEvent::Change(PolicyChange {
        revision: portal_core::access::Revision(revision),
        added,
        removed,
    })
}

mod memory {
    use portal_adapters::memory::InMemoryPolicyStore;
    use portal_core::access::{PolicyEvent, PolicyFeed, PolicyStore, Revision};

    use super::*;

    #[tokio::test]
    async fn a_feed_delivers_every_clones_changes_in_order() {
        let store = InMemoryPolicyStore::new();
        let replica = store.clone();
        let org = new_org();
        let mut feed = store.feed(Revision::ZERO);

        replica.apply(&lines(org, 0..2), &[]).await.unwrap();
        replica.apply(&lines(org, 2..3), &lines(org, 0..1)).await.unwrap();
        assert_eq!(
            tokio::time::timeout(WITHIN, feed.next()).await.unwrap().unwrap(),
            change(1, lines(org, 0..2), Vec::new())
        );
        assert_eq!(
            tokio::time::timeout(WITHIN, feed.next()).await.unwrap().unwrap(),
            change(2, lines(org, 2..3), lines(org, 0..1))
        );
        assert_eq!(PolicyFeed::revision(&feed), Revision(2));

        // A wait that times out loses nothing: the change committed afterwards arrives.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), feed.next())
                .await
                .is_err()
        );
        replica.apply(&lines(org, 3..4), &[]).await.unwrap();
        assert_eq!(
            tokio::time::timeout(WITHIN, feed.next()).await.unwrap().unwrap(),
            change(3, lines(org, 3..4), Vec::new())
        );
    }

    #[tokio::test]
    async fn a_feed_that_starts_behind_catches_up_from_the_log() {
        let store = InMemoryPolicyStore::new();
        let org = new_org();
        store.apply(&lines(org, 0..1), &[]).await.unwrap();
        store.apply(&lines(org, 1..2), &[]).await.unwrap();
        let mut feed = store.feed(Revision(1));
        assert_eq!(
            tokio::time::timeout(WITHIN, feed.next()).await.unwrap().unwrap(),
            change(2, lines(org, 1..2), Vec::new())
        );
    }

    #[tokio::test]
    async fn a_feed_behind_a_trimmed_log_resyncs() {
        let store = InMemoryPolicyStore::new();
        let org = new_org();
        let mut feed = store.feed(Revision::ZERO);
        store.apply(&lines(org, 0..1), &[]).await.unwrap();
        store.apply(&lines(org, 1..2), &[]).await.unwrap();
        store.trim_changes(Revision(2)).await.unwrap();
        match tokio::time::timeout(WITHIN, feed.next()).await.unwrap().unwrap() {
            PolicyEvent::Resync { revision, lines: got } => {
                assert_eq!(revision, Revision(2));
                assert_eq!(sorted(got), sorted(lines(org, 0..2)));
            }
            other => panic!("expected a resync, got {other:?}"),
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use portal_adapters::postgres::{NOTIFY_PAYLOAD_LIMIT, PgPolicyListener, PgPolicyStore};
    use portal_core::access::{PolicyEvent, PolicyStore, Revision};
    use sqlx::PgPool;
    use sqlx::postgres::{PgListener, PgPoolOptions};

    use super::common::{self, PgSchema};
    use super::*;

    /// One replica's store on a fresh schema, announcing on the schema's own channel.
    async fn replica() -> Option<(PgSchema, PgPolicyStore)> {
        let schema = common::fresh_pg_schema().await?;
        let pool = common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await;
        let store = PgPolicyStore::new(pool).with_channel(common::schema_channel(&schema));
        Some((schema, store))
    }

    /// A pool of one connection on `schema`, named `application_name` in
    /// `pg_stat_activity`: what another replica's listener runs on.
    async fn pool_named(schema: &PgSchema, application_name: &str) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(schema.options.clone().application_name(application_name))
            .await
            .expect("connect to the test schema")
    }

    async fn listener_on(schema: &PgSchema, store: &PgPolicyStore, after: Revision) -> PgPolicyListener {
        let pool = pool_named(schema, &format!("{}_listener", schema.name)).await;
        PgPolicyListener::connect(&pool, store.channel().clone(), after)
            .await
            .expect("the listener connects")
    }

    /// A raw listener on the store's channel, to see the notifications themselves.
    async fn raw_listener(schema: &PgSchema, store: &PgPolicyStore) -> PgListener {
        let pool = pool_named(schema, &format!("{}_raw", schema.name)).await;
        let mut raw = PgListener::connect_with(&pool).await.unwrap();
        raw.listen(store.channel().as_str()).await.unwrap();
        raw
    }

    async fn next_within(listener: &mut PgPolicyListener, within: Duration) -> PolicyEvent {
        match tokio::time::timeout(within, listener.next()).await {
            Ok(Ok(event)) => event,
            Ok(Err(err)) => panic!("the listener failed: {err:?}"),
            Err(_) => panic!("no policy event within {within:?}"),
        }
    }

    #[tokio::test]
    async fn a_change_reaches_a_listener_on_another_pool_within_a_second_with_its_lines() {
        let Some((schema, store)) = replica().await else {
            return;
        };
        let org = new_org();
        let (start, _) = store.load().await.unwrap();
        let mut listener = listener_on(&schema, &store, start).await;
        let mut raw = raw_listener(&schema, &store).await;

        let added = lines(org, 0..3);
        let revision = store.apply(&added, &[]).await.unwrap();
        let event = next_within(&mut listener, WITHIN).await;
        assert_eq!(event, change(revision.0, added.clone(), Vec::new()));
        assert_eq!(listener.revision(), revision);

        // The notification itself carried the change: nothing had to be read back.
        let notification = tokio::time::timeout(WITHIN, raw.recv()).await.unwrap().unwrap();
        let carried: PolicyChange = serde_json::from_str(notification.payload()).unwrap();
        assert_eq!(carried.revision, revision);
        assert_eq!(carried.added, added);

        let removed = store.apply(&lines(org, 3..4), &lines(org, 0..1)).await.unwrap();
        assert_eq!(
            next_within(&mut listener, WITHIN).await,
            change(removed.0, lines(org, 3..4), lines(org, 0..1))
        );
    }

    #[tokio::test]
    async fn a_large_change_is_announced_by_revision_and_read_from_the_log() {
        let Some((schema, store)) = replica().await else {
            return;
        };
        let org = new_org();
        let mut listener = listener_on(&schema, &store, Revision::ZERO).await;
        let mut raw = raw_listener(&schema, &store).await;

        let added = lines(org, 0..300);
        let whole = serde_json::to_string(&PolicyChange {
            revision: Revision(1),
            added: added.clone(),
            removed: Vec::new(),
        })
        .unwrap();
        assert!(
            whole.len() > NOTIFY_PAYLOAD_LIMIT,
            "the change is too large for a payload"
        );
        let revision = store.apply(&added, &[]).await.unwrap();

        let notification = tokio::time::timeout(WITHIN, raw.recv()).await.unwrap().unwrap();
        assert_eq!(notification.payload(), format!("{{\"revision\":{}}}", revision.0));
        assert_eq!(
            next_within(&mut listener, WITHIN).await,
            change(revision.0, added, Vec::new())
        );
    }

    #[tokio::test]
    async fn a_listener_that_starts_behind_catches_up_from_the_log() {
        let Some((schema, store)) = replica().await else {
            return;
        };
        let org = new_org();
        let r1 = store.apply(&lines(org, 0..1), &[]).await.unwrap();
        let r2 = store.apply(&lines(org, 1..2), &[]).await.unwrap();
        let mut listener = listener_on(&schema, &store, Revision::ZERO).await;
        assert_eq!(
            next_within(&mut listener, WITHIN).await,
            change(r1.0, lines(org, 0..1), Vec::new())
        );
        assert_eq!(
            next_within(&mut listener, WITHIN).await,
            change(r2.0, lines(org, 1..2), Vec::new())
        );
    }

    #[tokio::test]
    async fn a_listener_behind_a_trimmed_log_resyncs() {
        let Some((schema, store)) = replica().await else {
            return;
        };
        let org = new_org();
        store.apply(&lines(org, 0..1), &[]).await.unwrap();
        let r2 = store.apply(&lines(org, 1..2), &[]).await.unwrap();
        store.trim_changes(r2).await.unwrap();
        let mut listener = listener_on(&schema, &store, Revision::ZERO).await;
        match next_within(&mut listener, WITHIN).await {
            PolicyEvent::Resync { revision, lines: got } => {
                assert_eq!(revision, r2);
                assert_eq!(sorted(got), sorted(lines(org, 0..2)));
            }
            other => panic!("expected a resync, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_gap_in_the_notifications_is_filled_from_the_log() {
        let Some((schema, store)) = replica().await else {
            return;
        };
        let org = new_org();
        let mut listener = listener_on(&schema, &store, Revision::ZERO).await;

        // A change committed without a notification, as if it had been lost.
        let silent = line(org, 0);
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query("INSERT INTO policy_lines (domain, ptype, subject, object, action, effect) VALUES ($1, 'p', $2, $3, 'read', 'allow')")
            .bind(Domain::Org(org).to_string())
            .bind("role-0")
            .bind("cases/0/attachments/*")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE policy_revision SET value = value + 1")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO policy_changes (revision, added, removed) VALUES (1, $1, '[]')")
            .bind(sqlx::types::Json(vec![silent.clone()]))
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let r2 = store.apply(&lines(org, 1..2), &[]).await.unwrap();
        assert_eq!(r2, Revision(2));
        assert_eq!(
            next_within(&mut listener, WITHIN).await,
            change(1, vec![silent], Vec::new())
        );
        assert_eq!(
            next_within(&mut listener, WITHIN).await,
            change(2, lines(org, 1..2), Vec::new())
        );
    }

    #[tokio::test]
    async fn changes_from_two_replicas_arrive_in_revision_order() {
        let Some((schema, store)) = replica().await else {
            return;
        };
        let other = PgPolicyStore::new(common::fresh_pg_pool_with(&schema, common::pg_pool_options()).await)
            .with_channel(store.channel().clone());
        let org = new_org();
        let mut listener = listener_on(&schema, &store, Revision::ZERO).await;

        let write = |store: PgPolicyStore, from: usize| async move {
            for n in from..from + 15 {
                store.apply(&[line(org, n)], &[]).await.unwrap();
            }
        };
        tokio::join!(write(store.clone(), 0), write(other, 100));

        let mut held = std::collections::HashSet::new();
        for expected in 1..=30 {
            match next_within(&mut listener, WITHIN).await {
                PolicyEvent::Change(change) => {
                    assert_eq!(change.revision, Revision(expected), "changes arrive in revision order");
                    held.extend(change.added);
                }
                other => panic!("expected a change, got {other:?}"),
            }
        }
        let (revision, now) = store.load().await.unwrap();
        assert_eq!(revision, Revision(30));
        assert_eq!(
            held,
            now.into_iter().collect(),
            "the changes replay to the stored policy"
        );
    }

    /// The pids of the backends named `application_name`.
    async fn backends(store: &PgPolicyStore, application_name: &str) -> Vec<i32> {
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(application_name)
            .fetch_all(store.pool())
            .await
            .unwrap()
    }

    /// Terminates the listener's backend (waiting until it is gone) and returns its pid.
    async fn kill_listener(schema: &PgSchema, store: &PgPolicyStore) -> i32 {
        let pids = backends(store, &format!("{}_listener", schema.name)).await;
        assert_eq!(pids.len(), 1, "one backend serves the listener: {pids:?}");
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
            .bind(pids[0])
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(killed, "the listener's backend was terminated");
        pids[0]
    }

    #[tokio::test]
    async fn a_killed_listener_connection_is_followed_by_a_resync_with_the_current_lines() {
        let Some((schema, store)) = replica().await else {
            return;
        };
        let org = new_org();
        let mut listener = listener_on(&schema, &store, Revision::ZERO).await;
        let first = store.apply(&lines(org, 0..2), &[]).await.unwrap();
        assert_eq!(
            next_within(&mut listener, WITHIN).await,
            change(first.0, lines(org, 0..2), Vec::new())
        );

        let killed = kill_listener(&schema, &store).await;
        // Changed while the listener is disconnected: no notification can reach it.
        let during = store.apply(&lines(org, 2..3), &lines(org, 0..1)).await.unwrap();

        // The next call notices the lost connection, reconnects and resynchronizes.
        match next_within(&mut listener, Duration::from_secs(5)).await {
            PolicyEvent::Resync { revision, lines: got } => {
                assert_eq!(revision, during, "the resync is at the current revision");
                assert_eq!(sorted(got), sorted(lines(org, 1..3)), "and holds the current lines");
            }
            other => panic!("expected a resync, got {other:?}"),
        }
        let now = backends(&store, &format!("{}_listener", schema.name)).await;
        assert_eq!(now.len(), 1, "the listener reconnected: {now:?}");
        assert_ne!(now[0], killed, "on a new backend");

        // And it keeps listening.
        let after = store.apply(&lines(org, 3..4), &[]).await.unwrap();
        assert_eq!(after, during.next());
        assert_eq!(
            next_within(&mut listener, WITHIN).await,
            change(after.0, lines(org, 3..4), Vec::new())
        );
    }

    #[tokio::test]
    async fn a_listener_killed_while_it_waits_resyncs_and_misses_nothing() {
        let Some((schema, store)) = replica().await else {
            return;
        };
        let org = new_org();
        let mut listener = listener_on(&schema, &store, Revision::ZERO).await;
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = listener.next().await;
                let failed = event.is_err();
                if events.send(event).is_err() || failed {
                    return;
                }
            }
        });
        let first = store.apply(&lines(org, 0..2), &[]).await.unwrap();
        let got = tokio::time::timeout(WITHIN, received.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, change(first.0, lines(org, 0..2), Vec::new()));

        // Killed while the task waits for a notification; changes follow at once, racing
        // the reconnection.
        kill_listener(&schema, &store).await;
        let mut last = first;
        for n in 2..6 {
            last = store
                .apply(&lines(org, n..n + 1), &lines(org, n - 2..n - 1))
                .await
                .unwrap();
        }

        // The first event after the kill is a resync; whatever it did not include
        // arrives as changes after it, so the replica ends up with the stored policy.
        let mut held: Option<std::collections::HashSet<PolicyLine>> = None;
        let mut at = first;
        while at < last {
            let event = tokio::time::timeout(Duration::from_secs(5), received.recv())
                .await
                .expect("events keep coming")
                .expect("the task is running")
                .expect("the listener recovers by itself");
            match (event, held.as_mut()) {
                (PolicyEvent::Resync { revision, lines }, _) => {
                    at = revision;
                    held = Some(lines.into_iter().collect());
                }
                (PolicyEvent::Change(change), Some(held)) => {
                    assert_eq!(change.revision, at.next(), "changes follow the resync in order");
                    at = change.revision;
                    for line in &change.removed {
                        held.remove(line);
                    }
                    held.extend(change.added);
                }
                (other, None) => panic!("expected a resync first, got {other:?}"),
            }
        }
        task.abort();
        let (revision, now) = store.load().await.unwrap();
        assert_eq!(at, revision);
        assert_eq!(
            held,
            Some(now.into_iter().collect()),
            "the replica holds the stored policy"
        );
    }
}
