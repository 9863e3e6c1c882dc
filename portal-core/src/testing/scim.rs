//! The `ScimStore` conformance suite: one function per clause of the port's contract.
//!
//! Every function takes a store, provisions users and groups in fresh orgs with fresh
//! ids, and panics with a message naming the clause if the store breaks it. Run them all
//! with [`scim_store_conformance!`](crate::scim_store_conformance).

use std::sync::LazyLock;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::access::RoleName;
use crate::ids::{GroupId, OrgId, RandomIds, UserId};
use crate::scim::filter::Filter;
use crate::scim::{Lookup, ScimEmail, ScimGroup, ScimName, ScimProfile, ScimStore, ScimUser};
use crate::store::{Conflict, StoreError};

/// `create_user` stores the user and `get_user` reads it back exactly, profile included
/// (non-ASCII text too); `find_user_by_user_name` finds it ignoring case; another org
/// finds nothing.
pub async fn create_user_stores_it_and_get_reads_it_back(store: &dyn ScimStore) {
    let org = new_org();
    let mut user = user_value(org, "Zoë.Ångström@example.com", Some("00u1ab"), 0);
    user.profile.emails.push(ScimEmail {
        value: "zoe@home.example".to_owned(),
        kind: Some("home".to_owned()),
        primary: false,
    });
    store.create_user(&user).await.expect("create_user succeeds");
    assert_eq!(
        store.get_user(org, user.user).await.unwrap(),
        Some(user.clone()),
        "get_user reads the user back"
    );
    assert_eq!(
        store
            .find_user_by_user_name(org, "zoë.ångström@EXAMPLE.com")
            .await
            .unwrap(),
        Some(user.clone()),
        "find_user_by_user_name ignores case"
    );
    let other = new_org();
    assert_eq!(
        store.get_user(other, user.user).await.unwrap(),
        None,
        "another org's get"
    );
    assert_eq!(
        store.find_user_by_user_name(other, &user.user_name).await.unwrap(),
        None,
        "another org's find"
    );
    assert_eq!(
        store.find_user_by_user_name(org, "zoë").await.unwrap(),
        None,
        "a prefix finds nothing"
    );
}

/// `create_user` of a provisioned user, of a `userName` taken in the org (in any case) or
/// of an `externalId` taken in the org is `Conflict::AlreadyExists` naming which, and
/// nothing changes; the same `userName` and `externalId` in another org are fine.
pub async fn create_user_refuses_duplicates_in_the_org(store: &dyn ScimStore) {
    let org = new_org();
    let first = user_value(org, "ada@example.com", Some("ext-1"), 0);
    store.create_user(&first).await.expect("create_user succeeds");
    let mut same_user = user_value(org, "other@example.com", None, 1);
    same_user.user = first.user;
    let cases = [
        (same_user, "scim_user"),
        (user_value(org, "ADA@example.com", None, 1), "scim_user_name"),
        (user_value(org, "new@example.com", Some("ext-1"), 1), "scim_external_id"),
    ];
    for (again, entity) in cases {
        let err = store.create_user(&again).await.expect_err(entity);
        assert!(
            matches!(err, StoreError::Conflict(Conflict::AlreadyExists { entity: e }) if e == entity),
            "{entity}: got {err:?}"
        );
        if again.user != first.user {
            assert_eq!(
                store.get_user(org, again.user).await.unwrap(),
                None,
                "{entity}: nothing stored"
            );
        }
    }
    assert_eq!(store.get_user(org, first.user).await.unwrap(), Some(first.clone()));
    let elsewhere = user_value(new_org(), "ada@example.com", Some("ext-1"), 2);
    store
        .create_user(&elsewhere)
        .await
        .expect("the same userName and externalId in another org");
    let mut no_external = user_value(org, "b@example.com", None, 3);
    store.create_user(&no_external).await.expect("no externalId");
    no_external = user_value(org, "c@example.com", None, 3);
    store
        .create_user(&no_external)
        .await
        .expect("a second user without externalId");
}

/// `list_users` pages through one org's users in ascending user id order, and only
/// through that org's.
pub async fn list_users_pages_one_org_in_id_order(store: &dyn ScimStore) {
    let org = new_org();
    let mut made = Vec::new();
    for i in 0..5 {
        let user = user_value(org, &format!("u{i}@example.com"), None, i);
        store.create_user(&user).await.unwrap();
        made.push(user);
    }
    store
        .create_user(&user_value(new_org(), "u0@example.com", None, 0))
        .await
        .unwrap();
    made.sort_by_key(|u| u.user);
    let first = store.list_users(org, None, 3).await.unwrap();
    assert_eq!(first, made[..3], "the first page");
    let rest = store.list_users(org, Some(first[2].user), 3).await.unwrap();
    assert_eq!(rest, made[3..], "the page after the cursor");
    assert!(
        store.list_users(new_org(), None, 10).await.unwrap().is_empty(),
        "an empty org"
    );
}

/// `replace_user` stores the new attributes with the version grown by one and the
/// creation time kept; a stale version is `Conflict::Version` with the current one; a
/// `userName` taken by another user is `AlreadyExists`; a user of another org is
/// `NotFound`; a refused replace changes nothing.
pub async fn replace_user_checks_version_and_uniqueness(store: &dyn ScimStore) {
    let org = new_org();
    let user = user_value(org, "grace@example.com", Some("g"), 0);
    store.create_user(&user).await.unwrap();
    let taken = user_value(org, "linus@example.com", Some("l"), 0);
    store.create_user(&taken).await.unwrap();

    let mut next = user.clone();
    next.user_name = "Grace.Hopper@example.com".to_owned();
    next.active = false;
    next.profile.display_name = Some("Rear Admiral Hopper".to_owned());
    next.updated_at = t0() + Duration::seconds(60);
    next.created_at = t0() + Duration::days(9);
    let stored = store.replace_user(&next, 1).await.expect("replace succeeds");
    let mut want = next.clone();
    want.version = 2;
    want.created_at = user.created_at;
    assert_eq!(stored, want, "the stored user");
    assert_eq!(
        store.get_user(org, user.user).await.unwrap(),
        Some(want.clone()),
        "read back"
    );

    let err = store.replace_user(&next, 1).await.expect_err("a stale version");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Version {
                expected: 1,
                current: 2
            })
        ),
        "got {err:?}"
    );
    let mut clash = want.clone();
    clash.user_name = "LINUS@example.com".to_owned();
    let err = store.replace_user(&clash, 2).await.expect_err("a taken userName");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists {
                entity: "scim_user_name"
            })
        ),
        "got {err:?}"
    );
    clash = want.clone();
    clash.external_id = Some("l".to_owned());
    let err = store.replace_user(&clash, 2).await.expect_err("a taken externalId");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists {
                entity: "scim_external_id"
            })
        ),
        "got {err:?}"
    );
    assert_eq!(
        store.get_user(org, user.user).await.unwrap(),
        Some(want.clone()),
        "unchanged"
    );

    let mut elsewhere = want.clone();
    elsewhere.org = new_org();
    let err = store.replace_user(&elsewhere, 2).await.expect_err("another org");
    assert!(
        matches!(err, StoreError::NotFound { entity: "scim_user" }),
        "got {err:?}"
    );
}

/// `create_group` stores the group and `get_group` reads it back with its members in
/// ascending order and its roles; a member that is no SCIM user of the org is
/// `NotFound` (`scim_user`) and nothing is stored; a `displayName` taken in the org in
/// any case is `AlreadyExists` (`scim_group_name`).
pub async fn create_group_stores_members_of_the_org_only(store: &dyn ScimStore) {
    let org = new_org();
    let mut members = Vec::new();
    for i in 0..3 {
        let user = user_value(org, &format!("m{i}@example.com"), None, i);
        store.create_user(&user).await.unwrap();
        members.push(user.user);
    }
    members.sort();
    let group = group_value(org, "Engineering", members.clone(), &["admin", "member"]);
    store.create_group(&group).await.expect("create_group succeeds");
    assert_eq!(store.get_group(org, group.id).await.unwrap(), Some(group.clone()));
    assert_eq!(store.get_group(new_org(), group.id).await.unwrap(), None, "another org");

    let stranger = user_value(new_org(), "s@example.com", None, 0);
    store.create_user(&stranger).await.unwrap();
    let bad = group_value(org, "Sales", vec![members[0], stranger.user], &[]);
    let err = store.create_group(&bad).await.expect_err("a member of another org");
    assert!(
        matches!(err, StoreError::NotFound { entity: "scim_user" }),
        "got {err:?}"
    );
    assert_eq!(store.get_group(org, bad.id).await.unwrap(), None, "nothing stored");

    let dup = group_value(org, "ENGINEERING", Vec::new(), &[]);
    let err = store.create_group(&dup).await.expect_err("a taken displayName");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists {
                entity: "scim_group_name"
            })
        ),
        "got {err:?}"
    );
    let empty = group_value(org, "Nobody", Vec::new(), &[]);
    store.create_group(&empty).await.expect("a group without members");
    assert_eq!(store.get_group(org, empty.id).await.unwrap(), Some(empty));
}

/// `replace_group` replaces members, roles and name with the version grown by one; a
/// stale version is `Conflict::Version`; `groups_of` answers a user's groups of the org in
/// id order; `list_groups` pages in id order.
pub async fn replace_group_moves_members_and_groups_of_follows(store: &dyn ScimStore) {
    let org = new_org();
    let a = user_value(org, "a@example.com", None, 0);
    let b = user_value(org, "b@example.com", None, 0);
    store.create_user(&a).await.unwrap();
    store.create_user(&b).await.unwrap();
    let g1 = group_value(org, "One", vec![a.user], &["member"]);
    let g2 = group_value(org, "Two", vec![a.user], &[]);
    store.create_group(&g1).await.unwrap();
    store.create_group(&g2).await.unwrap();
    assert_eq!(
        store.groups_of(org, a.user).await.unwrap(),
        vec![g1.clone(), g2.clone()]
    );
    assert!(store.groups_of(org, b.user).await.unwrap().is_empty());

    let mut next = g1.clone();
    next.members = vec![b.user];
    next.roles = vec![role("admin")];
    next.display_name = "Uno".to_owned();
    next.updated_at = t0() + Duration::seconds(5);
    let stored = store.replace_group(&next, 1).await.expect("replace succeeds");
    let mut want = next.clone();
    want.version = 2;
    assert_eq!(stored, want);
    assert_eq!(store.get_group(org, g1.id).await.unwrap(), Some(want.clone()));
    assert_eq!(store.groups_of(org, a.user).await.unwrap(), vec![g2.clone()]);
    assert_eq!(store.groups_of(org, b.user).await.unwrap(), vec![want.clone()]);

    let err = store.replace_group(&next, 1).await.expect_err("a stale version");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::Version {
                expected: 1,
                current: 2
            })
        ),
        "got {err:?}"
    );
    let mut clash = want.clone();
    clash.display_name = "two".to_owned();
    let err = store.replace_group(&clash, 2).await.expect_err("a taken displayName");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists {
                entity: "scim_group_name"
            })
        ),
        "got {err:?}"
    );
    assert_eq!(
        store.get_group(org, g1.id).await.unwrap(),
        Some(want.clone()),
        "unchanged"
    );

    let page = store.list_groups(org, None, 1).await.unwrap();
    assert_eq!(page, vec![want.clone()]);
    assert_eq!(store.list_groups(org, Some(g1.id), 5).await.unwrap(), vec![g2]);
}

/// `mapped_roles` answers every role some group of the org maps to, once each, and
/// nothing of another org's groups; a group's new mapping is read at once, and an
/// unmapped or deleted group maps nothing.
pub async fn mapped_roles_are_the_org_groups_roles(store: &dyn ScimStore) {
    let org = new_org();
    let other = new_org();
    assert!(store.mapped_roles(org).await.unwrap().is_empty(), "no group, no role");
    let a = group_value(org, "A", vec![], &["admin", "member"]);
    let b = group_value(org, "B", vec![], &["admin"]);
    let c = group_value(org, "C", vec![], &[]);
    let theirs = group_value(other, "A", vec![], &["owner"]);
    for group in [&a, &b, &c, &theirs] {
        store.create_group(group).await.unwrap();
    }
    let want: std::collections::BTreeSet<RoleName> = [role("admin"), role("member")].into_iter().collect();
    assert_eq!(
        store.mapped_roles(org).await.unwrap(),
        want,
        "the roles of the org's groups"
    );

    let mut next = a.clone();
    next.roles = vec![role("viewer")];
    store.replace_group(&next, 1).await.unwrap();
    let want: std::collections::BTreeSet<RoleName> = [role("admin"), role("viewer")].into_iter().collect();
    assert_eq!(
        store.mapped_roles(org).await.unwrap(),
        want,
        "a new mapping is read at once"
    );
    store.delete_group(org, b.id).await.unwrap();
    let want: std::collections::BTreeSet<RoleName> = [role("viewer")].into_iter().collect();
    assert_eq!(
        store.mapped_roles(org).await.unwrap(),
        want,
        "a deleted group maps nothing"
    );
    let only: std::collections::BTreeSet<RoleName> = [role("owner")].into_iter().collect();
    assert_eq!(
        store.mapped_roles(other).await.unwrap(),
        only,
        "another org's groups are apart"
    );
}

/// `delete_user` returns the user and removes it from every group of the org at once;
/// `delete_group` returns the group; deleting what is not in the org is `NotFound`.
pub async fn delete_removes_users_from_groups(store: &dyn ScimStore) {
    let org = new_org();
    let a = user_value(org, "a@example.com", None, 0);
    let b = user_value(org, "b@example.com", None, 0);
    store.create_user(&a).await.unwrap();
    store.create_user(&b).await.unwrap();
    let mut both = vec![a.user, b.user];
    both.sort();
    let group = group_value(org, "Both", both, &[]);
    store.create_group(&group).await.unwrap();

    let err = store.delete_user(new_org(), a.user).await.expect_err("another org");
    assert!(
        matches!(err, StoreError::NotFound { entity: "scim_user" }),
        "got {err:?}"
    );
    assert_eq!(store.delete_user(org, a.user).await.unwrap(), a);
    assert_eq!(store.get_user(org, a.user).await.unwrap(), None);
    let left = store.get_group(org, group.id).await.unwrap().expect("the group stays");
    assert_eq!(left.members, vec![b.user], "the deleted user left the group");
    assert!(store.groups_of(org, a.user).await.unwrap().is_empty());
    let err = store.delete_user(org, a.user).await.expect_err("deleted twice");
    assert!(
        matches!(err, StoreError::NotFound { entity: "scim_user" }),
        "got {err:?}"
    );

    let err = store.delete_group(new_org(), group.id).await.expect_err("another org");
    assert!(
        matches!(err, StoreError::NotFound { entity: "scim_group" }),
        "got {err:?}"
    );
    assert_eq!(store.delete_group(org, group.id).await.unwrap(), left);
    assert_eq!(store.get_group(org, group.id).await.unwrap(), None);
    assert!(store.groups_of(org, b.user).await.unwrap().is_empty());
    assert_eq!(
        store.get_user(org, b.user).await.unwrap(),
        Some(b),
        "members stay users"
    );
}

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// The suite's reference time, with six significant sub-second digits so a store that
/// loses microseconds fails the round trips.
/// The lookup of a filter, which must have one.
fn lookup_of(filter: &str) -> Lookup {
    Filter::parse(filter)
        .expect("a valid filter")
        .lookup()
        .unwrap_or_else(|| panic!("`{filter}` has a lookup"))
}

/// Every user of `org`, in id order.
async fn all_users(store: &dyn ScimStore, org: OrgId) -> Vec<ScimUser> {
    store.list_users(org, None, 1000).await.expect("list_users")
}

/// `find_users` answers exactly the org's users the lookup matches
/// (`Lookup::matches_user`: `userName`, `emails.value` and `displayName` ignoring case,
/// non-ASCII too; `externalId` byte for byte; `eq` and `sw`), in id order and paged after
/// a cursor; it follows a replace (new emails and display name) and a delete; another
/// org's users are never found; a lookup users cannot match finds nothing.
pub async fn find_users_answers_what_the_lookup_matches(store: &dyn ScimStore) {
    let org = new_org();
    let mut ada = user_value(org, "Ada.Lovelace@Example.com", Some("00uA1"), 0);
    ada.profile.display_name = Some("Ada Lovelace".to_owned());
    ada.profile.emails.push(ScimEmail {
        value: "ADA@home.example".to_owned(),
        kind: Some("home".to_owned()),
        primary: false,
    });
    let mut byron = user_value(org, "ada.byron@example.com", Some("00uA2"), 1);
    byron.profile.display_name = Some("Ada Byron".to_owned());
    let mut zoe = user_value(org, "Zoë.Ångström@example.com", Some("00ub3"), 2);
    zoe.profile.display_name = Some("ZOË Å".to_owned());
    zoe.profile.emails.push(ScimEmail {
        value: "zoë@ÅNGSTRÖM.example".to_owned(),
        kind: None,
        primary: false,
    });
    let grace = user_value(org, "grace@example.com", None, 3);
    let elsewhere = new_org();
    let mut twin = user_value(elsewhere, "ada.lovelace@example.com", Some("00uA1"), 4);
    twin.profile.display_name = Some("Ada Lovelace".to_owned());
    for user in [&ada, &byron, &zoe, &grace, &twin] {
        store.create_user(user).await.expect("create_user succeeds");
    }
    let cases: &[(&str, usize)] = &[
        (r#"userName eq "ADA.LOVELACE@example.com""#, 1),
        (r#"userName sw "ada.""#, 2),
        (r#"userName sw "ZOË.å""#, 1),
        (r#"externalId eq "00uA1""#, 1),
        (r#"externalId eq "00ua1""#, 0),
        (r#"externalId sw "00uA""#, 2),
        (r#"emails.value eq "ada@HOME.example""#, 1),
        (r#"emails.value eq "ada.byron@EXAMPLE.com""#, 1),
        (r#"emails.value sw "zoë@å""#, 1),
        (r#"emails sw "ada""#, 2),
        (r#"displayName eq "ada lovelace""#, 1),
        (r#"displayName sw "ADA ""#, 2),
        (r#"displayName sw "zoë""#, 1),
        (r#"displayName sw "nobody""#, 0),
    ];
    let users = all_users(store, org).await;
    for (filter, count) in cases {
        let lookup = lookup_of(filter);
        let want: Vec<ScimUser> = users.iter().filter(|u| lookup.matches_user(u)).cloned().collect();
        assert_eq!(want.len(), *count, "`{filter}`: the users it matches");
        let found = store.find_users(org, &lookup, None, 100).await.expect("find_users");
        assert_eq!(
            found, want,
            "`{filter}`: find_users answers the users the lookup matches"
        );
        if let [first, rest @ ..] = want.as_slice() {
            assert_eq!(
                store.find_users(org, &lookup, None, 1).await.unwrap(),
                vec![first.clone()],
                "`{filter}`: the first page"
            );
            assert_eq!(
                store.find_users(org, &lookup, Some(first.user), 100).await.unwrap(),
                rest,
                "`{filter}`: the page after the cursor"
            );
        }
    }
    assert_eq!(
        store
            .find_users(elsewhere, &lookup_of(r#"externalId eq "00uA1""#), None, 100)
            .await
            .unwrap(),
        vec![twin],
        "another org finds its own user only"
    );
    assert!(
        store
            .find_users(org, &Lookup::Member(ada.user), None, 100)
            .await
            .unwrap()
            .is_empty(),
        "users have no members"
    );

    let mut renamed = ada.clone();
    renamed.profile.display_name = Some("Countess of Lovelace".to_owned());
    renamed.profile.emails.retain(|e| e.primary);
    renamed.updated_at = t0() + Duration::seconds(10);
    let renamed = store.replace_user(&renamed, 1).await.expect("replace_user");
    for (filter, want) in [
        (r#"emails.value eq "ada@home.example""#, vec![]),
        (r#"displayName eq "ada lovelace""#, vec![]),
        (r#"displayName sw "countess""#, vec![renamed.clone()]),
        (r#"emails.value eq "ada.lovelace@example.com""#, vec![renamed.clone()]),
    ] {
        assert_eq!(
            store.find_users(org, &lookup_of(filter), None, 100).await.unwrap(),
            want,
            "`{filter}` after a replace"
        );
    }
    store.delete_user(org, byron.user).await.expect("delete_user");
    for filter in [
        r#"emails.value eq "ada.byron@example.com""#,
        r#"displayName eq "ada byron""#,
    ] {
        assert!(
            store
                .find_users(org, &lookup_of(filter), None, 100)
                .await
                .unwrap()
                .is_empty(),
            "`{filter}` after a delete"
        );
    }
}

/// `find_groups` answers exactly the org's groups the lookup matches (`displayName`
/// ignoring case, `externalId`, `eq` and `sw`, `members.value eq`), in id order and
/// paged after a cursor; another org's groups are never found; a lookup groups cannot
/// match finds nothing.
pub async fn find_groups_answers_what_the_lookup_matches(store: &dyn ScimStore) {
    let org = new_org();
    let ada = user_value(org, "ada@example.com", None, 0);
    let linus = user_value(org, "linus@example.com", None, 1);
    for user in [&ada, &linus] {
        store.create_user(user).await.unwrap();
    }
    let mut engineering = group_value(org, "Engineering", vec![ada.user, linus.user], &[]);
    engineering.external_id = Some("g-eng".to_owned());
    let guild = group_value(org, "Engineers Guild", vec![linus.user], &["admin"]);
    let mut sales = group_value(org, "Sälés", vec![], &[]);
    sales.external_id = Some("g-sales".to_owned());
    let elsewhere = new_org();
    let mut twin = group_value(elsewhere, "Engineering", vec![], &[]);
    twin.external_id = Some("g-eng".to_owned());
    for group in [&engineering, &guild, &sales, &twin] {
        store.create_group(group).await.expect("create_group succeeds");
    }
    let groups = store.list_groups(org, None, 1000).await.unwrap();
    let cases = [
        (r#"displayName eq "ENGINEERING""#.to_owned(), 1),
        (r#"displayName sw "engineer""#.to_owned(), 2),
        (r#"displayName eq "SÄLÉS""#.to_owned(), 1),
        (r#"externalId eq "g-sales""#.to_owned(), 1),
        (r#"externalId sw "g-""#.to_owned(), 2),
        (r#"externalId eq "G-SALES""#.to_owned(), 0),
        (format!(r#"members.value eq "{}""#, linus.user), 2),
        (format!(r#"members.value eq "{}""#, ada.user), 1),
    ];
    for (filter, count) in &cases {
        let lookup = lookup_of(filter);
        let want: Vec<ScimGroup> = groups.iter().filter(|g| lookup.matches_group(g)).cloned().collect();
        assert_eq!(want.len(), *count, "`{filter}`: the groups it matches");
        let found = store.find_groups(org, &lookup, None, 100).await.expect("find_groups");
        assert_eq!(
            found, want,
            "`{filter}`: find_groups answers the groups the lookup matches"
        );
        if let [first, rest @ ..] = want.as_slice() {
            assert_eq!(
                store.find_groups(org, &lookup, Some(first.id), 100).await.unwrap(),
                rest,
                "`{filter}`: the page after the cursor"
            );
        }
    }
    assert_eq!(
        store
            .find_groups(elsewhere, &lookup_of(r#"externalId eq "g-eng""#), None, 100)
            .await
            .unwrap(),
        vec![twin],
        "another org finds its own group only"
    );
    assert!(
        store
            .find_groups(org, &lookup_of(r#"userName eq "ada@example.com""#), None, 100)
            .await
            .unwrap()
            .is_empty(),
        "groups have no userName"
    );
}

fn t0() -> OffsetDateTime {
    datetime!(2025-03-14 15:09:26.535_897 UTC)
}

fn new_org() -> OrgId {
    OrgId::generate(&*IDS, t0())
}

fn role(name: &str) -> RoleName {
    RoleName::new(name).expect("a valid role name")
}

/// A user of `org` provisioned `seconds` after [`t0`], version 1.
fn user_value(org: OrgId, user_name: &str, external_id: Option<&str>, seconds: i64) -> ScimUser {
    let at = t0() + Duration::seconds(seconds);
    ScimUser {
        org,
        user: UserId::generate(&*IDS, at),
        user_name: user_name.to_owned(),
        external_id: external_id.map(str::to_owned),
        active: true,
        profile: ScimProfile {
            name: ScimName {
                formatted: Some("Zoë Ångström".to_owned()),
                given_name: Some("Zoë".to_owned()),
                family_name: None,
            },
            display_name: None,
            emails: vec![ScimEmail {
                value: user_name.to_owned(),
                kind: Some("work".to_owned()),
                primary: true,
            }],
        },
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

/// A group of `org` with `members` (ascending) and `roles`, version 1.
fn group_value(org: OrgId, name: &str, members: Vec<UserId>, roles: &[&str]) -> ScimGroup {
    let mut roles: Vec<RoleName> = roles.iter().map(|r| role(r)).collect();
    roles.sort();
    ScimGroup {
        org,
        id: GroupId::generate(&*IDS, t0()),
        display_name: name.to_owned(),
        external_id: None,
        members,
        roles,
        version: 1,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// Expands to one `#[tokio::test]` per clause of the [`ScimStore`](crate::scim::ScimStore)
/// contract, each on a fresh store from `$factory` (a future of `Option<S>`; `None` skips
/// the test). Call it inside a module, since it defines functions named after the clauses.
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! scim_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(store) = $factory.await else {
                return;
            };
            $crate::testing::scim::$clause(&store).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::scim_store_conformance! { @tests ($factory)
            create_user_stores_it_and_get_reads_it_back,
            create_user_refuses_duplicates_in_the_org,
            list_users_pages_one_org_in_id_order,
            replace_user_checks_version_and_uniqueness,
            create_group_stores_members_of_the_org_only,
            replace_group_moves_members_and_groups_of_follows,
            delete_removes_users_from_groups,
            mapped_roles_are_the_org_groups_roles,
            find_users_answers_what_the_lookup_matches,
            find_groups_answers_what_the_lookup_matches,
        }
    };
}
