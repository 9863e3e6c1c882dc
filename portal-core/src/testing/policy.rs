//! The `PolicyStore` conformance suite: one function per clause of the port's contract.
//!
//! Policy is global, not per tenant: the revision counts every change and `load` returns
//! every line. So, unlike the tenancy suite, each clause needs a store nobody else writes
//! to while it runs, as [`policy_store_conformance!`](crate::policy_store_conformance)
//! gives it (a fresh one per clause). Except for
//! [`a_fresh_store_is_empty_at_revision_zero`], the clauses do not assume the store is
//! empty when they start: they compare against what it held before. Lines use fresh org
//! ids and role names, so leftovers of an earlier clause never collide with them.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::LazyLock;

use time::macros::datetime;

use crate::access::{Domain, Effect, PolicyChange, PolicyLine, PolicyRule, PolicyStore, Revision};
use crate::ids::{IdGenerator, OrgId, RandomIds};

// ---------------------------------------------------------------------------------------
// Reading and writing
// ---------------------------------------------------------------------------------------

/// A store no line was ever applied to loads no lines at [`Revision::ZERO`], has an empty
/// change log, and holds no line in any domain.
pub async fn a_fresh_store_is_empty_at_revision_zero(store: &dyn PolicyStore) {
    assert_eq!(
        store.load().await.unwrap(),
        (Revision::ZERO, Vec::new()),
        "load of a fresh store"
    );
    assert_eq!(
        store.changes_since(Revision::ZERO).await.unwrap(),
        Some(Vec::new()),
        "changes_since(0) of a fresh store"
    );
    for domain in [Domain::Platform, Domain::AllOrgs, Domain::Org(new_org())] {
        assert!(
            store.load_domain(domain).await.unwrap().is_empty(),
            "load_domain({domain}) of a fresh store"
        );
    }
}

/// `apply` adds and removes lines: `load` then returns exactly the lines held before,
/// plus those added, minus those removed, at the revision `apply` returned.
pub async fn apply_adds_and_removes_lines(store: &dyn PolicyStore) {
    let (before, base) = store.load().await.unwrap();
    let org = new_org();
    let lines = sample_lines(org);

    let first = store.apply(&lines, &[]).await.expect("apply adds lines");
    assert!(first > before, "an apply that adds lines moves the revision forward");
    let mut want = set(&base);
    want.extend(lines.iter().cloned());
    assert_loads(store, first, &want, "after adding lines").await;

    let gone = [lines[0].clone(), lines[3].clone()];
    let second = store.apply(&[], &gone).await.expect("apply removes lines");
    assert!(second > first, "an apply that removes lines moves the revision forward");
    for line in &gone {
        want.remove(line);
    }
    assert_loads(store, second, &want, "after removing lines").await;

    let fresh = permission("auditor", Domain::Org(org), "invoices", "read", Effect::Allow);
    let third = store
        .apply(std::slice::from_ref(&fresh), &[lines[1].clone()])
        .await
        .expect("apply adds and removes in one call");
    assert!(third > second, "a mixed apply moves the revision forward");
    want.remove(&lines[1]);
    want.insert(fresh);
    assert_loads(store, third, &want, "after a mixed apply").await;
}

/// `apply` is idempotent per line: adding a line that exists or removing one that does
/// not is not an error and is not recorded; a line given twice counts once; and an
/// `apply` that changes nothing returns the current revision and records nothing.
pub async fn apply_is_idempotent_per_line(store: &dyn PolicyStore) {
    let org = new_org();
    let lines = sample_lines(org);
    let first = store.apply(&lines, &[]).await.unwrap();

    assert_eq!(
        store
            .apply(&lines, &[])
            .await
            .expect("adding lines that exist is not an error"),
        first,
        "adding only lines that exist keeps the revision"
    );
    let absent = permission(&role(), Domain::Org(org), "cases", "read", Effect::Allow);
    assert_eq!(
        store
            .apply(&[], std::slice::from_ref(&absent))
            .await
            .expect("removing a missing line is not an error"),
        first,
        "removing only missing lines keeps the revision"
    );
    assert_eq!(
        store.apply(&[], &[]).await.unwrap(),
        first,
        "an empty apply keeps the revision"
    );
    assert_eq!(
        store.changes_since(first).await.unwrap(),
        Some(Vec::new()),
        "applies that changed nothing recorded nothing"
    );

    // One effective line each way, mixed with lines that change nothing and duplicates.
    let new_line = permission(&role(), Domain::Org(org), "cases", "write", Effect::Deny);
    let second = store
        .apply(
            &[lines[0].clone(), new_line.clone(), new_line.clone(), lines[2].clone()],
            &[absent.clone(), lines[1].clone(), lines[1].clone()],
        )
        .await
        .unwrap();
    assert_eq!(second, first.next(), "a change gets the next revision");
    let changes = store
        .changes_since(first)
        .await
        .unwrap()
        .expect("the log holds the change");
    assert_eq!(changes.len(), 1, "one change was recorded: {changes:?}");
    assert_eq!(
        changes[0].revision, second,
        "the change has the revision apply returned"
    );
    assert_eq!(
        changes[0].added,
        vec![new_line.clone()],
        "only the new line is recorded as added, once"
    );
    assert_eq!(
        changes[0].removed,
        vec![lines[1].clone()],
        "only the present line is recorded as removed, once"
    );

    let mut want = set(&lines);
    want.remove(&lines[1]);
    want.insert(new_line);
    assert_loads(store, second, &want, "after the mixed apply").await;
}

/// `apply` removes, then adds: a line given in both lists is present afterwards. If it
/// was present, nothing changes; if it was absent, it is recorded as added.
pub async fn a_line_added_and_removed_at_once_is_present_afterwards(store: &dyn PolicyStore) {
    let org = new_org();
    let present = permission(&role(), Domain::Org(org), "cases", "read", Effect::Allow);
    let absent = inherit(&role(), &role(), Domain::Org(org));
    let first = store.apply(std::slice::from_ref(&present), &[]).await.unwrap();

    assert_eq!(
        store
            .apply(std::slice::from_ref(&present), std::slice::from_ref(&present))
            .await
            .unwrap(),
        first,
        "adding and removing a present line changes nothing"
    );
    let second = store
        .apply(std::slice::from_ref(&absent), std::slice::from_ref(&absent))
        .await
        .unwrap();
    assert_eq!(second, first.next(), "adding and removing an absent line adds it");
    let changes = store
        .changes_since(first)
        .await
        .unwrap()
        .expect("the log holds the change");
    assert_eq!(
        changes,
        vec![PolicyChange {
            revision: second,
            added: vec![absent.clone()],
            removed: Vec::new(),
        }],
        "the change records the line as added"
    );
    let lines = set(&store.load_domain(Domain::Org(org)).await.unwrap());
    assert_eq!(lines, set(&[present, absent]), "both lines are present");
}

/// Every `apply` that changes a line gets the next revision: strictly greater than every
/// earlier one, with no gaps, as replicas detect missed changes by gaps.
pub async fn revisions_strictly_increase_without_gaps(store: &dyn PolicyStore) {
    let (mut last, _) = store.load().await.unwrap();
    let org = new_org();
    let mut added = Vec::new();
    for n in 0..12 {
        let line = permission(&role(), Domain::Org(org), &format!("cases/{n}"), "read", Effect::Allow);
        // Every third apply removes a line added before instead of adding one.
        let revision = if n % 3 == 2 {
            let gone: PolicyLine = added.pop().unwrap();
            store.apply(&[], &[gone]).await.unwrap()
        } else {
            added.push(line.clone());
            store.apply(&[line], &[]).await.unwrap()
        };
        assert_eq!(revision, last.next(), "apply {n} gets the revision after {last:?}");
        last = revision;
    }
    assert_eq!(store.load().await.unwrap().0, last, "load is at the last revision");
}

/// Lines read back exactly as they were written: both kinds of line, both effects, every
/// kind of domain, and text with spaces, commas, quotes, wildcards, SQL pattern
/// characters, non-ASCII letters and an empty action.
pub async fn lines_round_trip_exactly(store: &dyn PolicyStore) {
    let org = new_org();
    let tag = role();
    let lines = vec![
        permission(
            &format!("{tag} with spaces, and \"quotes\""),
            Domain::Org(org),
            "cases/*",
            "*",
            Effect::Allow,
        ),
        permission(
            &format!("{tag}-ünïcødé"),
            Domain::Platform,
            "orgs/{id}/members",
            "",
            Effect::Deny,
        ),
        permission(
            &format!("{tag}%_\\"),
            Domain::AllOrgs,
            "it's; DROP TABLE x; --",
            "read",
            Effect::Allow,
        ),
        permission(
            &format!("{tag}-long"),
            Domain::Org(org),
            &"o".repeat(2000),
            "write",
            Effect::Deny,
        ),
        inherit(&format!("{tag}-child"), &format!("{tag}-parent ✓"), Domain::Org(org)),
        inherit(&format!("{tag}-staff"), "support", Domain::Platform),
        inherit(&format!("{tag}-lead"), "member", Domain::AllOrgs),
    ];
    let (before, base) = store.load().await.unwrap();
    let revision = store.apply(&lines, &[]).await.unwrap();

    let mut want = set(&base);
    want.extend(lines.iter().cloned());
    assert_loads(store, revision, &want, "after writing unusual lines").await;
    let changes = store
        .changes_since(before)
        .await
        .unwrap()
        .expect("the log holds the change");
    assert_eq!(changes.len(), 1, "one change: {changes:?}");
    assert_eq!(
        set(&changes[0].added),
        set(&lines),
        "the logged change holds the lines exactly"
    );
    assert!(changes[0].removed.is_empty(), "and removes nothing");

    let revision = store.apply(&[], &lines).await.unwrap();
    assert_loads(store, revision, &set(&base), "after removing them by value").await;
}

/// `load_domain` returns exactly the lines of its domain: an org's lines, not another
/// org's, nor the platform's, nor those written for every org ([`Domain::AllOrgs`]).
pub async fn load_domain_returns_only_its_domains_lines(store: &dyn PolicyStore) {
    let (a, b) = (new_org(), new_org());
    let in_a = sample_lines(a);
    let in_b = sample_lines(b);
    let tag = role();
    let platform = vec![
        permission(&tag, Domain::Platform, "orgs", "create", Effect::Allow),
        inherit(&format!("{tag}-lead"), &tag, Domain::Platform),
    ];
    let all_orgs = vec![permission(&tag, Domain::AllOrgs, "members", "read", Effect::Allow)];
    let before_platform = set(&store.load_domain(Domain::Platform).await.unwrap());
    let before_all_orgs = set(&store.load_domain(Domain::AllOrgs).await.unwrap());
    let everything: Vec<PolicyLine> = [&in_a, &in_b, &platform, &all_orgs]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    store.apply(&everything, &[]).await.unwrap();

    assert_eq!(
        set(&store.load_domain(Domain::Org(a)).await.unwrap()),
        set(&in_a),
        "org a's lines"
    );
    assert_eq!(
        set(&store.load_domain(Domain::Org(b)).await.unwrap()),
        set(&in_b),
        "org b's lines"
    );
    let mut want = before_platform;
    want.extend(platform);
    assert_eq!(
        set(&store.load_domain(Domain::Platform).await.unwrap()),
        want,
        "the platform's lines"
    );
    let mut want = before_all_orgs;
    want.extend(all_orgs);
    assert_eq!(
        set(&store.load_domain(Domain::AllOrgs).await.unwrap()),
        want,
        "the template's lines"
    );
    assert!(
        store.load_domain(Domain::Org(new_org())).await.unwrap().is_empty(),
        "an org without lines has none"
    );

    store.apply(&[], &in_a).await.unwrap();
    assert!(
        store.load_domain(Domain::Org(a)).await.unwrap().is_empty(),
        "org a's lines are gone once removed"
    );
    assert_eq!(
        set(&store.load_domain(Domain::Org(b)).await.unwrap()),
        set(&in_b),
        "org b's are not"
    );
}

// ---------------------------------------------------------------------------------------
// The change log
// ---------------------------------------------------------------------------------------

/// `changes_since(r)` returns exactly the changes committed after `r`, in revision
/// order, each with the revision its `apply` returned and only the lines it changed; it
/// is empty at the current revision and after it.
pub async fn changes_since_returns_the_later_changes_in_order(store: &dyn PolicyStore) {
    let (start, _) = store.load().await.unwrap();
    let org = new_org();
    let lines = sample_lines(org);
    let extra = permission(&role(), Domain::Org(org), "returns", "approve", Effect::Allow);

    let r1 = store.apply(&lines[..3], &[]).await.unwrap();
    // Re-adds a line (not recorded) and adds two (recorded).
    let r2 = store.apply(&lines[2..5], &[]).await.unwrap();
    // Removes a present and an absent line, adds one.
    let r3 = store
        .apply(std::slice::from_ref(&extra), &[lines[0].clone(), lines[5].clone()])
        .await
        .unwrap();

    let want = vec![
        (r1, set(&lines[..3]), set(&[])),
        (r2, set(&lines[3..5]), set(&[])),
        (r3, set(std::slice::from_ref(&extra)), set(&lines[..1])),
    ];
    assert_changes(store, start, &want, "changes_since(start)").await;
    assert_changes(store, r1, &want[1..], "changes_since(r1)").await;
    assert_changes(store, r2, &want[2..], "changes_since(r2)").await;
    assert_changes(store, r3, &[], "changes_since(current)").await;
    assert_changes(store, Revision(r3.0 + 1000), &[], "changes_since(a later revision)").await;
}

/// Replaying the change log over the lines held before yields exactly what `load`
/// returns, at the last change's revision.
pub async fn the_change_log_replays_to_load(store: &dyn PolicyStore) {
    let (start, base) = store.load().await.unwrap();
    let org = new_org();
    let lines = sample_lines(org);
    store.apply(&lines, &[]).await.unwrap();
    store.apply(&[], &lines[1..3]).await.unwrap();
    store.apply(&lines[1..2], &lines[4..]).await.unwrap();
    store.apply(&[], &lines[..1]).await.unwrap();

    let changes = store
        .changes_since(start)
        .await
        .unwrap()
        .expect("the log holds the changes");
    let (revision, now) = store.load().await.unwrap();
    assert_eq!(
        changes.last().map(|c| c.revision),
        Some(revision),
        "the last change is load's revision"
    );
    assert_eq!(replay(set(&base), &changes), set(&now), "the replayed log equals load");
}

/// `trim_changes(r)` forgets the log up to `r` and keeps the lines: `changes_since` of a
/// revision before `r` is `None`, of `r` or later it is the changes kept. Trimming to an
/// earlier revision changes nothing, and trimming past the current revision trims to it.
pub async fn trim_changes_forgets_the_log_up_to_a_revision(store: &dyn PolicyStore) {
    let (start, _) = store.load().await.unwrap();
    let org = new_org();
    let lines = sample_lines(org);
    let r1 = store.apply(&lines[..1], &[]).await.unwrap();
    let r2 = store.apply(&lines[1..2], &[]).await.unwrap();
    let r3 = store.apply(&lines[2..3], &[]).await.unwrap();
    let loaded = store.load().await.unwrap();

    store.trim_changes(r2).await.expect("trim_changes succeeds");
    for before in [start, r1] {
        assert_eq!(
            store.changes_since(before).await.unwrap(),
            None,
            "changes_since({before:?}) after trimming through {r2:?}"
        );
    }
    let kept = store
        .changes_since(r2)
        .await
        .unwrap()
        .expect("changes after the trim point are kept");
    assert_eq!(
        kept.iter().map(|c| c.revision).collect::<Vec<_>>(),
        vec![r3],
        "the change after r2 is kept"
    );
    assert_eq!(
        set(&store.load().await.unwrap().1),
        set(&loaded.1),
        "trimming keeps the lines"
    );
    assert_eq!(store.load().await.unwrap().0, loaded.0, "and the revision");

    store
        .trim_changes(r1)
        .await
        .expect("trimming to an earlier revision is not an error");
    assert!(
        store.changes_since(r2).await.unwrap().is_some(),
        "trimming to an earlier revision changes nothing"
    );

    store
        .trim_changes(Revision(r3.0 + 1000))
        .await
        .expect("trimming past the current revision is not an error");
    assert_eq!(
        store.changes_since(r2).await.unwrap(),
        None,
        "the log is trimmed through r3"
    );
    assert_eq!(
        store.changes_since(r3).await.unwrap(),
        Some(Vec::new()),
        "but not past the current revision"
    );
    let r4 = store.apply(&lines[3..4], &[]).await.unwrap();
    assert_eq!(r4, r3.next(), "revisions continue after a trim");
    assert_changes(
        store,
        r3,
        &[(r4, set(&lines[3..4]), set(&[]))],
        "the next change is logged",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Atomicity and concurrency
// ---------------------------------------------------------------------------------------

/// A mixed `apply` is atomic to readers: while one task swaps two lines back and forth
/// (removing one and adding the other in one call), every `load` another task makes holds
/// exactly one of them, and equals the change log replayed up to its revision.
pub async fn a_mixed_apply_is_atomic_to_readers(store: &dyn PolicyStore) {
    let (start, base) = store.load().await.unwrap();
    let org = new_org();
    let a = permission(&role(), Domain::Org(org), "cases", "read", Effect::Allow);
    let b = permission(&role(), Domain::Org(org), "cases", "write", Effect::Allow);
    store.apply(std::slice::from_ref(&a), &[]).await.unwrap();

    let writer = async {
        for n in 0..20 {
            let (add, remove) = if n % 2 == 0 { (&b, &a) } else { (&a, &b) };
            store
                .apply(std::slice::from_ref(add), std::slice::from_ref(remove))
                .await
                .unwrap();
        }
    };
    let reader = async {
        let mut seen = Vec::new();
        for _ in 0..20 {
            seen.push(store.load().await.unwrap());
        }
        seen
    };
    let ((), seen) = futures::join!(writer, reader);

    let log = store
        .changes_since(start)
        .await
        .unwrap()
        .expect("the log holds the changes");
    for (revision, lines) in seen {
        let lines = set(&lines);
        assert!(
            lines.contains(&a) != lines.contains(&b),
            "a load at {revision:?} holds exactly one of the swapped lines"
        );
        let upto: Vec<PolicyChange> = log.iter().filter(|c| c.revision <= revision).cloned().collect();
        assert_eq!(
            replay(set(&base), &upto),
            lines,
            "a load at {revision:?} equals the log replayed up to it"
        );
    }
}

/// Concurrent `apply` calls take turns: two tasks applying at once get distinct,
/// consecutive revisions; of two concurrent adds of one line exactly one records it; and
/// the change log, in revision order, replays to what `load` returns.
pub async fn concurrent_applies_get_distinct_revisions_and_replay_to_load(store: &dyn PolicyStore) {
    let (start, base) = store.load().await.unwrap();
    let org = new_org();
    let shared = permission(&role(), Domain::Org(org), "shared", "read", Effect::Allow);
    let task = |name: &'static str| {
        let shared = shared.clone();
        async move {
            let mut revisions = Vec::new();
            let mut mine = Vec::new();
            for n in 0..10 {
                let line = permission(
                    &format!("{name}-{}", role()),
                    Domain::Org(org),
                    "cases",
                    "read",
                    Effect::Allow,
                );
                let added = if n == 5 {
                    vec![line.clone(), shared.clone()]
                } else {
                    vec![line.clone()]
                };
                // Every fourth apply also removes the task's first line, then puts it back.
                let removed: Vec<PolicyLine> = if n % 4 == 3 {
                    mine.first().cloned().into_iter().collect()
                } else {
                    Vec::new()
                };
                revisions.push(store.apply(&added, &removed).await.unwrap());
                if n % 4 == 3 {
                    revisions.push(store.apply(&mine[..1], &[]).await.unwrap());
                }
                mine.push(line);
            }
            (revisions, mine)
        }
    };
    let ((left, left_lines), (right, right_lines)) = futures::join!(task("left"), task("right"));

    let mut revisions: Vec<Revision> = left.iter().chain(&right).copied().collect();
    revisions.sort();
    let distinct: HashSet<Revision> = revisions.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        revisions.len(),
        "every apply got its own revision: {revisions:?}"
    );

    let log = store
        .changes_since(start)
        .await
        .unwrap()
        .expect("the log holds the changes");
    let logged: Vec<Revision> = log.iter().map(|c| c.revision).collect();
    assert_eq!(
        logged, revisions,
        "the log holds exactly the revisions apply returned, in order"
    );
    let consecutive: Vec<Revision> = (1..=revisions.len() as u64).map(|n| Revision(start.0 + n)).collect();
    assert_eq!(logged, consecutive, "the revisions are consecutive");
    assert_eq!(
        log.iter().filter(|c| c.added.contains(&shared)).count(),
        1,
        "of two concurrent adds of one line exactly one records it"
    );

    let (revision, now) = store.load().await.unwrap();
    assert_eq!(Some(&revision), logged.last(), "load is at the last revision");
    let now = set(&now);
    assert_eq!(replay(set(&base), &log), now, "the replayed log equals load");
    let mut want = set(&base);
    want.extend(left_lines);
    want.extend(right_lines);
    want.insert(shared);
    assert_eq!(now, want, "every line both tasks added is there");
}

/// Concurrent `apply` calls on the same lines are serialized: while two tasks add and
/// remove the same lines against each other, every call succeeds, and each change the
/// log records removes only lines that were present and adds only lines that were
/// absent, so the log replays exactly to what `load` returns.
pub async fn concurrent_applies_on_the_same_lines_record_each_change_once(store: &dyn PolicyStore) {
    let (start, base) = store.load().await.unwrap();
    let org = new_org();
    let shared: Vec<PolicyLine> = (0..3)
        .map(|n| permission(&role(), Domain::Org(org), &format!("shared/{n}"), "read", Effect::Allow))
        .collect();
    let task = |offset: usize| {
        let shared = &shared;
        async move {
            for n in 0..15 {
                let add = &shared[(n + offset) % 3];
                let remove = &shared[(n + offset + 1) % 3];
                store
                    .apply(std::slice::from_ref(add), std::slice::from_ref(remove))
                    .await
                    .expect("an apply racing another on the same lines succeeds");
            }
        }
    };
    futures::join!(task(0), task(1));

    let log = store
        .changes_since(start)
        .await
        .unwrap()
        .expect("the log holds the changes");
    let (revision, now) = store.load().await.unwrap();
    assert_eq!(
        log.last().map(|c| c.revision).unwrap_or(start),
        revision,
        "load is at the last change"
    );
    // `replay` fails on a change that removes an absent line or adds a present one.
    assert_eq!(replay(set(&base), &log), set(&now), "the replayed log equals load");
}

/// Runs every clause of the suite against `make()`'s stores, one fresh store per clause.
///
/// [`policy_store_conformance!`](crate::policy_store_conformance) is usually the better
/// choice, since it makes one test per clause; this function suits a custom harness.
/// Clauses run one after another in the order of the macro.
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: PolicyStore,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    crate::policy_store_conformance! { @clauses run (make) }
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// Ids for the orgs and roles the suite makes: unique across clauses and processes.
static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

fn new_org() -> OrgId {
    OrgId::generate(&*IDS, datetime!(2025-03-14 15:09:26 UTC))
}

/// A fresh role name, `role-<32 hex digits>`.
fn role() -> String {
    format!("role-{}", IDS.generate(datetime!(2025-03-14 15:09:26 UTC)).simple())
}

fn permission(subject: &str, domain: Domain, object: &str, action: &str, effect: Effect) -> PolicyLine {
    PolicyLine::Permission(PolicyRule {
        subject: subject.into(),
        domain,
        object: object.into(),
        action: action.into(),
        effect,
    })
}

fn inherit(role: &str, parent: &str, domain: Domain) -> PolicyLine {
    PolicyLine::Inherit {
        role: role.to_owned(),
        parent: parent.to_owned(),
        domain,
    }
}

/// Six distinct lines of `org` with fresh role names: allows, a deny, inheritance.
fn sample_lines(org: OrgId) -> Vec<PolicyLine> {
    let (lead, agent) = (role(), role());
    let domain = Domain::Org(org);
    vec![
        permission(&agent, domain, "cases/*", "read", Effect::Allow),
        permission(&agent, domain, "cases/*", "write", Effect::Allow),
        permission(&agent, domain, "billing", "*", Effect::Deny),
        permission(&lead, domain, "members", "read", Effect::Allow),
        inherit(&lead, &agent, domain),
        inherit(&lead, "viewer", domain),
    ]
}

fn set(lines: &[PolicyLine]) -> HashSet<PolicyLine> {
    lines.iter().cloned().collect()
}

/// `base` with `changes` applied in order.
fn replay(mut base: HashSet<PolicyLine>, changes: &[PolicyChange]) -> HashSet<PolicyLine> {
    for change in changes {
        for line in &change.removed {
            assert!(
                base.remove(line),
                "change {:?} removes a line that was absent: {line:?}",
                change.revision
            );
        }
        for line in &change.added {
            assert!(
                base.insert(line.clone()),
                "change {:?} adds a line that was present: {line:?}",
                change.revision
            );
        }
    }
    base
}

/// Asserts that `load` returns `lines`, each once, at `revision`.
#[track_caller]
fn check_loaded(loaded: (Revision, Vec<PolicyLine>), revision: Revision, lines: &HashSet<PolicyLine>, when: &str) {
    let (got_revision, got) = loaded;
    assert_eq!(got_revision, revision, "{when}: load's revision");
    assert_eq!(set(&got).len(), got.len(), "{when}: load returns each line once");
    assert_eq!(&set(&got), lines, "{when}: load's lines");
}

async fn assert_loads(store: &dyn PolicyStore, revision: Revision, lines: &HashSet<PolicyLine>, when: &str) {
    check_loaded(store.load().await.unwrap(), revision, lines, when);
}

/// Asserts that `changes_since(after)` returns `want` (revision, added, removed), in
/// order; the lines of one change may come in any order.
async fn assert_changes(
    store: &dyn PolicyStore,
    after: Revision,
    want: &[(Revision, HashSet<PolicyLine>, HashSet<PolicyLine>)],
    what: &str,
) {
    let got = store.changes_since(after).await.unwrap();
    let got = expect_some(got, what);
    let got: Vec<(Revision, HashSet<PolicyLine>, HashSet<PolicyLine>)> = got
        .into_iter()
        .map(|c| (c.revision, set(&c.added), set(&c.removed)))
        .collect();
    assert_eq!(got, want, "{what}");
}

#[track_caller]
fn expect_some<T: Debug>(value: Option<T>, what: &str) -> T {
    match value {
        Some(value) => value,
        None => panic!("{what}: expected the log to hold the changes, got None (trimmed)"),
    }
}

// ---------------------------------------------------------------------------------------
// The test generator
// ---------------------------------------------------------------------------------------

/// Expands to one `#[tokio::test]` per clause of the [`PolicyStore`] conformance suite.
///
/// `$factory` is an expression evaluating to a future whose output is `Option<S>`, where
/// `S: PolicyStore`. It is evaluated afresh in every test, and every clause needs a
/// store of its own (see the [module docs](crate::testing::policy)); when it yields
/// `None` the test returns early and passes (the factory prints why it skipped, for
/// example that a database URL is unset). The calling crate must depend on `tokio` with
/// the `macros` and `rt` features. Call it inside a module, since it defines functions
/// named after the clauses:
///
/// ```ignore
/// mod memory {
///     use portal_adapters::memory::InMemoryPolicyStore;
///     portal_core::policy_store_conformance!(async { Some(InMemoryPolicyStore::new()) });
/// }
/// ```
///
/// The rules starting with `@` are internal: they keep the list of clauses in one place
/// for this macro and for [`run_all`](crate::testing::policy::run_all).
#[macro_export]
macro_rules! policy_store_conformance {
    (@clauses $mode:ident $args:tt) => {
        $crate::policy_store_conformance! { @$mode $args
            a_fresh_store_is_empty_at_revision_zero,
            apply_adds_and_removes_lines,
            apply_is_idempotent_per_line,
            a_line_added_and_removed_at_once_is_present_afterwards,
            revisions_strictly_increase_without_gaps,
            lines_round_trip_exactly,
            load_domain_returns_only_its_domains_lines,
            changes_since_returns_the_later_changes_in_order,
            the_change_log_replays_to_load,
            trim_changes_forgets_the_log_up_to_a_revision,
            a_mixed_apply_is_atomic_to_readers,
            concurrent_applies_get_distinct_revisions_and_replay_to_load,
            concurrent_applies_on_the_same_lines_record_each_change_once,
        }
    };
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(store) = $factory.await else {
                return;
            };
            $crate::testing::policy::$clause(&store).await;
        }
    )*};
    (@run ($make:ident) $($clause:ident,)*) => {$(
        let store = $make().await;
        $crate::testing::policy::$clause(&store).await;
    )*};
    ($factory:expr $(,)?) => {
        $crate::policy_store_conformance! { @clauses tests ($factory) }
    };
}
