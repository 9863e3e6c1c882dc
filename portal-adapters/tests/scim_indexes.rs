//! SCIM filters read indexes: for every `eq` and `sw` lookup a filter narrows to
//! (`userName`, `externalId`, `emails.value`, `displayName`, `members.value`), the plan
//! SQLite (`EXPLAIN QUERY PLAN`) and Postgres (`EXPLAIN`, after `ANALYZE`) make for the
//! store's query names the index it reads and never scans the table, on an org of 2,000
//! users and 200 groups beside another org's. The plans are printed (`--nocapture`);
//! docs/scim.md quotes them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a test fails by panicking and shows the plans it checked"
)]

#[path = "common/mod.rs"]
mod common;

use portal_core::ids::{GroupId, OrgId, RandomIds, UserId};
use portal_core::scim::filter::Filter;
use portal_core::scim::{Lookup, ScimEmail, ScimGroup, ScimProfile, ScimStore, ScimUser};
use portal_core::store::StoreError;
use time::OffsetDateTime;

const USERS: usize = 2_000;
const GROUPS: usize = 200;

fn lookup(filter: &str) -> Lookup {
    Filter::parse(filter)
        .unwrap()
        .lookup()
        .expect("the filter has a lookup")
}

/// Fills `org` with users and groups; answers the id of a user who is in a group.
async fn fill(store: &dyn ScimStore, org: OrgId) -> UserId {
    let ids = RandomIds::default();
    let at = OffsetDateTime::now_utc();
    let mut users = Vec::new();
    for i in 0..USERS {
        let user = ScimUser {
            org,
            user: UserId::generate(&ids, at),
            user_name: format!("user{i:04}@example.com"),
            external_id: Some(format!("00u{i:04}")),
            active: true,
            profile: ScimProfile {
                display_name: Some(format!("User {i:04}")),
                emails: vec![
                    ScimEmail {
                        value: format!("user{i:04}@example.com"),
                        kind: Some("work".to_owned()),
                        primary: true,
                    },
                    ScimEmail {
                        value: format!("u{i:04}@home.example"),
                        kind: Some("home".to_owned()),
                        primary: false,
                    },
                ],
                ..ScimProfile::default()
            },
            version: 1,
            created_at: at,
            updated_at: at,
        };
        store.create_user(&user).await.unwrap();
        users.push(user.user);
    }
    for g in 0..GROUPS {
        let group = ScimGroup {
            org,
            id: GroupId::generate(&ids, at),
            display_name: format!("Group {g:03}"),
            external_id: Some(format!("g-{g:03}")),
            members: users.iter().skip(g * 5).take(5).copied().collect(),
            roles: Vec::new(),
            version: 1,
            created_at: at,
            updated_at: at,
        };
        store.create_group(&group).await.unwrap();
    }
    users[5]
}

/// The user lookups, each with what its plan must name: the index on Postgres, the
/// index's key on SQLite (whose unique constraints make indexes named
/// `sqlite_autoindex_…`).
fn user_cases() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            r#"userName eq "USER0042@example.com""#,
            "scim_users_user_name_key",
            "user_name_key=?",
        ),
        (
            r#"userName sw "user004""#,
            "scim_users_user_name_key",
            "user_name_key>?",
        ),
        (
            r#"externalId eq "00u0042""#,
            "scim_users_external_id_key",
            "external_id=?",
        ),
        (
            r#"externalId sw "00u004""#,
            "scim_users_external_id_key",
            "external_id>?",
        ),
        (
            r#"emails.value eq "u0042@HOME.example""#,
            "scim_user_emails_key_idx",
            "scim_user_emails_key_idx (org_id=? AND email_key=?)",
        ),
        (
            r#"emails.value sw "u004""#,
            "scim_user_emails_key_idx",
            "scim_user_emails_key_idx (org_id=? AND email_key>? AND email_key<?)",
        ),
        (
            r#"displayName eq "user 0042""#,
            "scim_users_display_name_idx",
            "scim_users_display_name_idx (org_id=? AND display_name_key=?)",
        ),
        (
            r#"displayName sw "User 004""#,
            "scim_users_display_name_idx",
            "scim_users_display_name_idx (org_id=? AND display_name_key>? AND display_name_key<?)",
        ),
    ]
}

/// The group lookups, as [`user_cases`].
fn group_cases(member: UserId) -> Vec<(String, &'static str, &'static str)> {
    vec![
        (
            r#"displayName eq "group 007""#.to_owned(),
            "scim_groups_display_name_key",
            "display_name_key=?",
        ),
        (
            r#"displayName sw "Group 00""#.to_owned(),
            "scim_groups_display_name_key",
            "display_name_key>?",
        ),
        (
            r#"externalId eq "g-007""#.to_owned(),
            "scim_groups_external_id_key",
            "external_id=?",
        ),
        (
            r#"externalId sw "g-00""#.to_owned(),
            "scim_groups_external_id_key",
            "external_id>?",
        ),
        (
            format!(r#"members.value eq "{member}""#),
            "scim_group_members_user_idx",
            "scim_group_members_user_idx (org_id=? AND user_id=?)",
        ),
    ]
}

/// Checks every plan: it names the index (`postgres` picks which name of a case) and
/// does not read a whole table (`scan` tells a full scan of a table on this backend).
async fn check_plans<U, G>(
    backend: &str,
    postgres: bool,
    scan: &dyn Fn(&str, &str) -> bool,
    member: UserId,
    users: U,
    groups: G,
) where
    U: AsyncFn(&Lookup) -> Result<Option<String>, StoreError>,
    G: AsyncFn(&Lookup) -> Result<Option<String>, StoreError>,
{
    for (filter, pg_index, sqlite_index) in user_cases() {
        let index = if postgres { pg_index } else { sqlite_index };
        let plan = users(&lookup(filter)).await.unwrap().expect("a query runs");
        println!("{backend} `{filter}`:\n{plan}\n");
        assert!(plan.contains(index), "{backend} `{filter}` reads {index}:\n{plan}");
        assert!(
            !scan(&plan, "scim_users"),
            "{backend} `{filter}` scans the users:\n{plan}"
        );
    }
    for (filter, pg_index, sqlite_index) in group_cases(member) {
        let index = if postgres { pg_index } else { sqlite_index };
        let plan = groups(&lookup(&filter)).await.unwrap().expect("a query runs");
        println!("{backend} `{filter}`:\n{plan}\n");
        assert!(plan.contains(index), "{backend} `{filter}` reads {index}:\n{plan}");
        assert!(
            !scan(&plan, "scim_groups"),
            "{backend} `{filter}` scans the groups:\n{plan}"
        );
    }
}

/// Fills two orgs and answers the first with a member of its groups.
async fn two_orgs(store: &dyn ScimStore) -> (OrgId, UserId) {
    let ids = RandomIds::default();
    let org = OrgId::generate(&ids, OffsetDateTime::now_utc());
    let member = fill(store, org).await;
    fill(store, OrgId::generate(&ids, OffsetDateTime::now_utc())).await;
    (org, member)
}

/// A scan of the table, or of the org's rows in it (a search on the primary key's first
/// column alone).
fn sqlite_scans(plan: &str, table: &str) -> bool {
    plan.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with(&format!("SCAN {table}"))
            || line.starts_with(&format!("SEARCH {table} USING PRIMARY KEY (org_id=?)"))
    })
}

fn postgres_scans(plan: &str, table: &str) -> bool {
    plan.contains(&format!("Seq Scan on {table}"))
}

#[tokio::test]
async fn sqlite_filters_read_indexes() {
    let store = portal_adapters::sqlite::SqliteScimStore::new(common::fresh_sqlite_pool().await);
    let (org, member) = two_orgs(&store).await;
    check_plans(
        "sqlite",
        false,
        &sqlite_scans,
        member,
        async |l: &Lookup| store.explain_find_users(org, l).await,
        async |l: &Lookup| store.explain_find_groups(org, l).await,
    )
    .await;
    check_results(&store, org, member).await;
}

#[tokio::test]
async fn postgres_filters_read_indexes() {
    let Some(pool) = common::fresh_pg_pool().await else {
        return;
    };
    let store = portal_adapters::postgres::PgScimStore::new(pool.clone());
    let (org, member) = two_orgs(&store).await;
    for table in ["scim_users", "scim_user_emails", "scim_groups", "scim_group_members"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(&pool)
            .await
            .unwrap();
    }
    check_plans(
        "postgres",
        true,
        &postgres_scans,
        member,
        async |l: &Lookup| store.explain_find_users(org, l).await,
        async |l: &Lookup| store.explain_find_groups(org, l).await,
    )
    .await;
    check_results(&store, org, member).await;
}

/// What the indexed queries answer is what the lookups match (ten users per `sw`
/// prefix of four digits' three, one per `eq`; groups likewise).
async fn check_results(store: &dyn ScimStore, org: OrgId, member: UserId) {
    for (filter, _, _) in user_cases() {
        let want = if filter.contains(" sw ") { 10 } else { 1 };
        let found = store.find_users(org, &lookup(filter), None, 500).await.unwrap();
        assert_eq!(found.len(), want, "`{filter}`");
        assert!(
            found.iter().all(|u| Filter::parse(filter).unwrap().matches_user(u)),
            "`{filter}`"
        );
    }
    for (filter, _, _) in group_cases(member) {
        let want = if filter.contains(" sw ") { 10 } else { 1 };
        let found = store.find_groups(org, &lookup(&filter), None, 500).await.unwrap();
        assert_eq!(found.len(), want, "`{filter}`");
        assert!(
            found.iter().all(|g| Filter::parse(&filter).unwrap().matches_group(g)),
            "`{filter}`"
        );
    }
}
