//! The `TenancyStore` conformance suite: one function per clause of the port's contract.
//!
//! Every function takes a store, makes the users, organizations and invitations it needs
//! with fresh ids, slugs and addresses, and panics with a message naming the clause if
//! the store breaks it. Run them all with
//! [`tenancy_store_conformance!`](crate::tenancy_store_conformance); the list of clauses
//! is in that macro.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::LazyLock;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::context::{Principal, ServiceName};
use crate::ids::{ApiKeyId, IdGenerator, InvitationId, OrgId, RandomIds, UserId};
use crate::store::{Conflict, StoreError};
use crate::tenancy::{
    ApiVersionName, ApiVersionStore, DisplayName, Email, Invitation, InvitationState, Membership, Metadata, OrgName,
    Organization, RoleName, RoleSet, Slug, TenancyStore, TokenHash, User,
};
use crate::testing::audit::audit_event;

// ---------------------------------------------------------------------------------------
// Organizations
// ---------------------------------------------------------------------------------------

/// `create_org` stores the organization and its owner's membership together: both read
/// back exactly, by id and by slug, in the member list and in the owner's org list.
pub async fn create_org_stores_the_org_and_its_owner_membership(store: &dyn TenancyStore) {
    let user = new_user(store).await;
    let mut org = org_value();
    org.metadata = metadata(&[("plan", "gold"), ("region", "eu-west-1")]);
    let owner = owner_of(&org, &user);
    store.create_org(&org, &owner).await.expect("create_org succeeds");

    assert_eq!(
        store.get_org(org.id).await.unwrap(),
        Some(org.clone()),
        "get_org reads the org back"
    );
    assert_eq!(
        store.get_org_by_slug(&org.slug).await.unwrap(),
        Some(org.clone()),
        "get_org_by_slug reads the org back"
    );
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(owner.clone()),
        "the owner's membership is stored with the org"
    );
    assert_eq!(
        all_members(store, org.id).await,
        vec![owner.clone()],
        "the owner is the only member"
    );
    assert_eq!(
        store.list_user_orgs(user.id, None, 100).await.unwrap(),
        vec![(org, owner)],
        "the org is in the owner's org list"
    );
}

/// `create_org` stores the owner's membership in the new org, whatever org the given
/// membership names.
pub async fn create_org_stores_the_owner_membership_in_the_new_org(store: &dyn TenancyStore) {
    let user = new_user(store).await;
    let org = org_value();
    let elsewhere = OrgId::generate(&*IDS, t0());
    let owner = Membership {
        org: elsewhere,
        ..owner_of(&org, &user)
    };
    store.create_org(&org, &owner).await.expect("create_org succeeds");

    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(owner_of(&org, &user)),
        "the membership is in the new org"
    );
    assert_eq!(
        store.get_membership(elsewhere, user.id).await.unwrap(),
        None,
        "and not in the org it named"
    );
}

/// `create_org` fails with [`Conflict::SlugTaken`] if another org has the slug, and
/// changes nothing: the first org is as it was and neither the second org nor its
/// owner's membership exists.
pub async fn create_org_with_a_taken_slug_is_slug_taken(store: &dyn TenancyStore) {
    let first_owner = new_user(store).await;
    let first = new_org(store, &first_owner).await;
    let second_owner = new_user(store).await;
    let mut second = org_value();
    second.slug = first.slug.clone();
    second.name = OrgName::new("Another Company").unwrap();

    let err = expect_err(
        store.create_org(&second, &owner_of(&second, &second_owner)).await,
        "create_org with a taken slug",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::SlugTaken)),
        "expected SlugTaken, got {err:?}"
    );

    assert_eq!(
        store.get_org(first.id).await.unwrap(),
        Some(first.clone()),
        "the first org is unchanged"
    );
    assert_eq!(
        store.get_org_by_slug(&first.slug).await.unwrap(),
        Some(first.clone()),
        "the slug still names the first org"
    );
    assert_eq!(
        store.get_org(second.id).await.unwrap(),
        None,
        "the second org was not stored"
    );
    assert_eq!(
        store.get_membership(second.id, second_owner.id).await.unwrap(),
        None,
        "the second org's owner membership was not stored"
    );
    assert!(
        store
            .list_user_orgs(second_owner.id, None, 100)
            .await
            .unwrap()
            .is_empty(),
        "the second owner belongs to no org"
    );
    assert_eq!(
        all_members(store, first.id).await,
        vec![owner_of(&first, &first_owner)],
        "the first org's members are unchanged"
    );
}

/// `create_org` fails with [`StoreError::NotFound`] (`user`) if the owner's user does not
/// exist, and stores nothing: no org, no membership, and the slug stays free.
pub async fn create_org_with_an_unknown_owner_is_user_not_found(store: &dyn TenancyStore) {
    let ghost = user_value();
    let org = org_value();

    let err = expect_err(
        store.create_org(&org, &owner_of(&org, &ghost)).await,
        "create_org with an unknown owner",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "user" }),
        "expected NotFound(user), got {err:?}"
    );

    assert_eq!(store.get_org(org.id).await.unwrap(), None, "the org was not stored");
    assert_eq!(
        store.get_org_by_slug(&org.slug).await.unwrap(),
        None,
        "the slug names no org"
    );
    assert!(
        store.list_members(org.id, None, 10).await.unwrap().is_empty(),
        "no membership was stored"
    );

    let real = new_user(store).await;
    store
        .create_org(&org, &owner_of(&org, &real))
        .await
        .expect("the slug is still free after the failed create");
}

/// `get_org` and `get_org_by_slug` answer `None` for an org that does not exist.
pub async fn unknown_orgs_are_none(store: &dyn TenancyStore) {
    let unknown = org_value();
    assert_eq!(
        store.get_org(unknown.id).await.unwrap(),
        None,
        "get_org of an unknown id"
    );
    assert_eq!(
        store.get_org_by_slug(&unknown.slug).await.unwrap(),
        None,
        "get_org_by_slug of an unknown slug"
    );
}

/// `update_org` replaces the name and the metadata; the id, the slug and the creation
/// time stay as they were, whatever the given value holds.
pub async fn update_org_replaces_only_name_and_metadata(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let mut org = org_value();
    org.metadata = metadata(&[("plan", "gold"), ("seats", "10")]);
    store.create_org(&org, &owner_of(&org, &owner)).await.unwrap();

    let mut changed = org.clone();
    changed.name = OrgName::new("Acme Renamed").unwrap();
    changed.metadata = metadata(&[("plan", "platinum")]);
    changed.slug = Slug::new(&format!("renamed-{}", tag())).unwrap();
    changed.created_at = at(999);
    store
        .update_org(&changed, &audit_event(org.id))
        .await
        .expect("update_org succeeds");

    let expected = Organization {
        name: changed.name.clone(),
        metadata: changed.metadata.clone(),
        ..org.clone()
    };
    assert_eq!(
        store.get_org(org.id).await.unwrap(),
        Some(expected.clone()),
        "name and metadata changed, the rest stayed"
    );
    assert_eq!(
        store.get_org_by_slug(&org.slug).await.unwrap(),
        Some(expected),
        "the old slug still names the org"
    );
    assert_eq!(
        store.get_org_by_slug(&changed.slug).await.unwrap(),
        None,
        "the slug did not change"
    );

    let mut cleared = org.clone();
    cleared.metadata = Metadata::default();
    store.update_org(&cleared, &audit_event(org.id)).await.unwrap();
    assert_eq!(
        store.get_org(org.id).await.unwrap().map(|o| o.metadata),
        Some(Metadata::default()),
        "metadata can be replaced by empty metadata"
    );
}

/// `update_org` fails with [`StoreError::NotFound`] (`organization`) if the org does not
/// exist, and does not create it.
pub async fn update_org_of_an_unknown_org_is_not_found(store: &dyn TenancyStore) {
    let org = org_value();
    let err = expect_err(
        store.update_org(&org, &audit_event(org.id)).await,
        "update_org of an unknown org",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "organization" }),
        "expected NotFound(organization), got {err:?}"
    );
    assert_eq!(
        store.get_org(org.id).await.unwrap(),
        None,
        "update_org did not create the org"
    );
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

/// `create_user` stores the user: it reads back exactly by id and by email.
pub async fn create_user_stores_the_user(store: &dyn TenancyStore) {
    let user = user_value();
    store.create_user(&user).await.expect("create_user succeeds");
    assert_eq!(
        store.get_user(user.id).await.unwrap(),
        Some(user.clone()),
        "get_user reads the user back"
    );
    assert_eq!(
        store.find_user_by_email(&user.email).await.unwrap(),
        Some(user),
        "find_user_by_email reads the user back"
    );
}

/// `create_user` fails with [`Conflict::EmailTaken`] if another user has the email; the
/// second user is not stored and the address still finds the first.
pub async fn create_user_with_a_taken_email_is_email_taken(store: &dyn TenancyStore) {
    let first = new_user(store).await;
    let mut second = user_value();
    second.email = first.email.clone();
    second.display_name = DisplayName::new("Somebody Else").unwrap();

    let err = expect_err(store.create_user(&second).await, "create_user with a taken email");
    assert!(
        matches!(err, StoreError::Conflict(Conflict::EmailTaken)),
        "expected EmailTaken, got {err:?}"
    );
    assert_eq!(
        store.get_user(second.id).await.unwrap(),
        None,
        "the second user was not stored"
    );
    assert_eq!(
        store.find_user_by_email(&first.email).await.unwrap(),
        Some(first),
        "the address still finds the first user"
    );
}

/// `get_user` and `find_user_by_email` answer `None` for a user that does not exist.
pub async fn unknown_users_are_none(store: &dyn TenancyStore) {
    let unknown = user_value();
    assert_eq!(
        store.get_user(unknown.id).await.unwrap(),
        None,
        "get_user of an unknown id"
    );
    assert_eq!(
        store.find_user_by_email(&unknown.email).await.unwrap(),
        None,
        "find_user_by_email of an unknown address"
    );
}

// ---------------------------------------------------------------------------------------
// Memberships
// ---------------------------------------------------------------------------------------

/// `get_membership` is scoped by org: a member of org A is not found in org B.
pub async fn get_membership_is_scoped_to_its_org(store: &dyn TenancyStore) {
    let ann = new_user(store).await;
    let bob = new_user(store).await;
    let org_a = new_org(store, &ann).await;
    let org_b = new_org(store, &bob).await;

    assert!(
        store.get_membership(org_a.id, ann.id).await.unwrap().is_some(),
        "ann is a member of A"
    );
    assert_eq!(
        store.get_membership(org_b.id, ann.id).await.unwrap(),
        None,
        "ann is not found in B"
    );
    assert_eq!(
        store.get_membership(org_a.id, bob.id).await.unwrap(),
        None,
        "bob is not found in A"
    );
    let stranger = user_value();
    assert_eq!(
        store.get_membership(org_a.id, stranger.id).await.unwrap(),
        None,
        "an unknown user is not found"
    );
}

/// `list_members` returns the org's memberships in ascending user id order, at most
/// `limit` at a time, starting after `after`; paging through returns each member once
/// and other orgs' members never.
pub async fn list_members_orders_by_user_id_and_pages_after_a_cursor(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let other_owner = new_user(store).await;
    let other = new_org(store, &other_owner).await;

    let mut expected = vec![store.get_membership(org.id, owner.id).await.unwrap().unwrap()];
    for n in 0..6 {
        let user = new_user(store).await;
        let roles = if n % 2 == 0 {
            roles_of(&["member"])
        } else {
            roles_of(&["viewer", "billing"])
        };
        expected.push(add_member(store, &org, &user, roles, at(n)).await);
        if n == 3 {
            // A member of both orgs must still appear once in each.
            add_member(store, &other, &user, roles_of(&["viewer"]), at(n)).await;
        }
    }
    expected.sort_by_key(|m| m.user);

    assert_eq!(
        store.list_members(org.id, None, 100).await.unwrap(),
        expected,
        "one big page holds every member"
    );

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_members(org.id, after, 3).await.unwrap();
        assert!(
            page.len() <= 3,
            "a page holds at most `limit` members, got {}",
            page.len()
        );
        let Some(last) = page.last() else { break };
        after = Some(last.user);
        pages.push(page);
        assert!(pages.len() <= 4, "paging does not end");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1],
        "7 members in pages of 3"
    );
    assert_eq!(
        pages.concat(),
        expected,
        "the pages together are the members in user id order"
    );

    let tail = store.list_members(org.id, Some(expected[4].user), 10).await.unwrap();
    assert_eq!(
        tail,
        expected[5..].to_vec(),
        "`after` excludes that member and everyone before"
    );

    let others = store.list_members(other.id, None, 100).await.unwrap();
    assert_eq!(others.len(), 2, "the other org has its owner and one shared member");
    assert!(
        others.iter().all(|m| m.org == other.id),
        "listing one org never returns another's members"
    );
}

/// `list_member_users` returns what `list_members` returns, page for page, each
/// membership with its own user (id, email and name as stored); another org's members
/// never.
pub async fn list_member_users_pairs_each_membership_with_its_user(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let other_owner = new_user(store).await;
    let other = new_org(store, &other_owner).await;
    let mut users = vec![owner.clone()];
    for n in 0..4 {
        let user = new_user(store).await;
        add_member(store, &org, &user, roles_of(&["member", "billing"]), at(n)).await;
        users.push(user);
    }
    add_member(store, &other, &users[1], roles_of(&["viewer"]), at(9)).await;

    let mut after = None;
    let mut seen = Vec::new();
    loop {
        let page = store.list_member_users(org.id, after, 2).await.unwrap();
        let memberships: Vec<_> = page.iter().map(|(m, _)| m.clone()).collect();
        assert_eq!(
            memberships,
            store.list_members(org.id, after, 2).await.unwrap(),
            "the same memberships as `list_members`, page for page"
        );
        let Some((last, _)) = page.last() else { break };
        after = Some(last.user);
        seen.extend(page);
        assert!(seen.len() <= users.len(), "paging does not end");
    }
    assert_eq!(seen.len(), users.len(), "every member once");
    for (membership, user) in &seen {
        assert_eq!(membership.user, user.id, "each membership comes with its own user");
        let stored = users.iter().find(|u| u.id == user.id).expect("one of the org's users");
        assert_eq!(user, stored, "the user as stored: email and name");
    }
    let others = store.list_member_users(other.id, None, 100).await.unwrap();
    assert!(
        others.iter().all(|(m, _)| m.org == other.id),
        "another org's listing holds only its members"
    );
    assert_eq!(others.len(), 2, "the other org's owner and its one shared member");
}

/// `list_user_orgs` returns each membership of the user with its organization, in
/// ascending org id order, and nothing of orgs the user does not belong to; pages
/// (`after` the last org id read, `limit`) hold at most `limit` memberships (a member with
/// two roles is still one) and together every membership once.
pub async fn list_user_orgs_orders_by_org_id_with_each_membership(store: &dyn TenancyStore) {
    let user = new_user(store).await;
    let someone = new_user(store).await;
    let first = new_org(store, &user).await;
    let second = new_org(store, &someone).await;
    let third = new_org(store, &user).await;
    let _not_joined = new_org(store, &someone).await;
    let joined = add_member(store, &second, &user, roles_of(&["viewer", "billing"]), at(5)).await;

    let mut expected = vec![
        (first.clone(), owner_of(&first, &user)),
        (second.clone(), joined),
        (third.clone(), owner_of(&third, &user)),
    ];
    expected.sort_by_key(|(org, _)| org.id);
    assert_eq!(
        store.list_user_orgs(user.id, None, 100).await.unwrap(),
        expected,
        "the user's orgs by org id"
    );
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_user_orgs(user.id, after, 2).await.unwrap();
        assert!(page.len() <= 2, "a page holds at most `limit`: {page:?}");
        after = page.last().map(|(org, _)| org.id);
        let done = page.len() < 2;
        paged.extend(page);
        if done {
            break;
        }
        assert!(paged.len() <= expected.len(), "the pages end");
    }
    assert_eq!(paged, expected, "the pages hold every membership once, by org id");
    assert_eq!(
        store.list_user_orgs(user.id, Some(expected[0].0.id), 1).await.unwrap(),
        vec![expected[1].clone()],
        "after a cursor, the next membership with all its roles"
    );
    assert!(
        store.list_user_orgs(user.id, None, 0).await.unwrap().is_empty(),
        "a page of none is empty"
    );
    assert!(
        store
            .list_user_orgs(user_value().id, None, 100)
            .await
            .unwrap()
            .is_empty(),
        "an unknown user belongs to no org"
    );
}

/// `set_member_roles` replaces the member's roles, sets `updated_at` to the given time,
/// keeps `created_at`, and returns the stored membership.
pub async fn set_member_roles_replaces_roles_and_sets_updated_at(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let joined = add_member(store, &org, &user, roles_of(&["member", "viewer"]), at(1)).await;

    let changed = store
        .set_member_roles(org.id, user.id, &roles_of(&["admin"]), at(100), &audit_event(org.id))
        .await
        .expect("set_member_roles succeeds");
    let expected = Membership {
        roles: roles_of(&["admin"]),
        updated_at: at(100),
        ..joined
    };
    assert_eq!(changed, expected, "the returned membership has the new roles and time");
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(expected),
        "the change is stored"
    );

    let kept = store
        .set_member_roles(
            org.id,
            owner.id,
            &roles_of(&["owner", "billing"]),
            at(101),
            &audit_event(org.id),
        )
        .await
        .expect("the only owner may change roles while keeping `owner`");
    assert_eq!(kept.roles, roles_of(&["billing", "owner"]));
    assert_eq!(kept.updated_at, at(101));
    assert_eq!(kept.created_at, t0(), "created_at stays");
}

/// `set_member_roles` fails with [`StoreError::NotFound`] (`membership`) if the user is
/// not a member of the org, even when they belong to another org, and creates nothing.
pub async fn set_member_roles_of_a_non_member_is_not_found(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let elsewhere = new_user(store).await;
    let _other = new_org(store, &elsewhere).await;
    let unknown = user_value();

    for (who, user) in [
        ("a member of another org", elsewhere.id),
        ("an unknown user", unknown.id),
    ] {
        let err = expect_err(
            store
                .set_member_roles(org.id, user, &roles_of(&["admin"]), at(1), &audit_event(org.id))
                .await,
            &format!("set_member_roles of {who}"),
        );
        assert!(
            matches!(err, StoreError::NotFound { entity: "membership" }),
            "set_member_roles of {who}: expected NotFound(membership), got {err:?}"
        );
        assert_eq!(
            store.get_membership(org.id, user).await.unwrap(),
            None,
            "no membership was created for {who}"
        );
    }
}

/// `set_member_roles` fails with [`Conflict::LastOwner`] if the member is the org's only
/// owner and the new roles lack `owner`; nothing changes, not even `updated_at`.
pub async fn set_member_roles_keeps_the_last_owner(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let admin = new_user(store).await;
    add_member(store, &org, &admin, roles_of(&["admin"]), at(1)).await;
    let before = store.get_membership(org.id, owner.id).await.unwrap().unwrap();

    let err = expect_err(
        store
            .set_member_roles(
                org.id,
                owner.id,
                &roles_of(&["admin", "member"]),
                at(50),
                &audit_event(org.id),
            )
            .await,
        "demoting the only owner",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::LastOwner)),
        "expected LastOwner, got {err:?}"
    );
    assert_eq!(
        store.get_membership(org.id, owner.id).await.unwrap(),
        Some(before),
        "the only owner's membership is unchanged"
    );
}

/// `set_member_roles` may take `owner` from one of two owners; the remaining owner then
/// is the last one and cannot be demoted.
pub async fn set_member_roles_may_demote_one_of_two_owners(store: &dyn TenancyStore) {
    let first = new_user(store).await;
    let org = new_org(store, &first).await;
    let second = new_user(store).await;
    add_member(store, &org, &second, roles_of(&["owner"]), at(1)).await;

    let demoted = store
        .set_member_roles(org.id, first.id, &roles_of(&["admin"]), at(2), &audit_event(org.id))
        .await
        .expect("demoting one of two owners succeeds");
    assert_eq!(demoted.roles, roles_of(&["admin"]));

    let err = expect_err(
        store
            .set_member_roles(org.id, second.id, &roles_of(&["admin"]), at(3), &audit_event(org.id))
            .await,
        "demoting the remaining owner",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::LastOwner)),
        "expected LastOwner, got {err:?}"
    );
    assert_eq!(
        store.get_membership(org.id, second.id).await.unwrap().map(|m| m.roles),
        Some(roles_of(&["owner"])),
        "the remaining owner keeps `owner`"
    );
}

/// `remove_member` removes the membership with all its roles and returns it: the user is
/// no longer found, listed or counted, and joining again gives only the new roles.
pub async fn remove_member_removes_the_membership_and_its_roles(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let joined = add_member(store, &org, &user, roles_of(&["admin", "billing"]), at(1)).await;

    let removed = store
        .remove_member(org.id, user.id, &audit_event(org.id))
        .await
        .expect("remove_member succeeds");
    assert_eq!(removed, joined, "remove_member returns the removed membership");
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        None,
        "the membership is gone"
    );
    assert_eq!(
        all_members(store, org.id).await,
        vec![owner_of(&org, &owner)],
        "only the owner is listed"
    );
    assert!(
        store.list_user_orgs(user.id, None, 100).await.unwrap().is_empty(),
        "the user belongs to no org"
    );

    let rejoined = add_member(store, &org, &user, roles_of(&["viewer"]), at(10)).await;
    assert_eq!(
        rejoined.roles,
        roles_of(&["viewer"]),
        "the old roles did not survive the removal"
    );
    assert_eq!(rejoined.created_at, at(10), "joining again starts a new membership");
}

/// `add_member` stores the membership with its roles and times; a second add of the
/// same user is `AlreadyExists` (`membership`) and leaves the first; an unknown org is
/// `NotFound` (`organization`) and an unknown user `NotFound` (`user`), in that order.
pub async fn add_member_stores_the_membership_once(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let membership = Membership {
        org: org.id,
        user: user.id,
        roles: roles_of(&["admin", "member"]),
        created_at: at(3),
        updated_at: at(3),
    };
    store
        .add_member(&membership, &audit_event(org.id))
        .await
        .expect("add_member succeeds");
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(membership.clone()),
        "the membership reads back"
    );
    let again = Membership {
        roles: roles_of(&["viewer"]),
        ..membership.clone()
    };
    let err = expect_err(store.add_member(&again, &audit_event(org.id)).await, "a second add");
    assert!(
        matches!(
            err,
            StoreError::Conflict(Conflict::AlreadyExists { entity: "membership" })
        ),
        "got {err:?}"
    );
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(membership.clone()),
        "the first membership is unchanged"
    );
    let stranger = user_value();
    let unknown_org = Membership {
        org: org_value().id,
        user: stranger.id,
        ..membership.clone()
    };
    let err = expect_err(
        store.add_member(&unknown_org, &audit_event(unknown_org.org)).await,
        "an unknown org and user",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "organization" }),
        "the org is checked first: {err:?}"
    );
    let unknown_user = Membership {
        user: stranger.id,
        ..membership
    };
    let err = expect_err(
        store.add_member(&unknown_user, &audit_event(org.id)).await,
        "an unknown user",
    );
    assert!(matches!(err, StoreError::NotFound { entity: "user" }), "got {err:?}");
}

/// `remove_member` fails with [`StoreError::NotFound`] (`membership`) if the user is not
/// a member of the org.
pub async fn remove_member_of_a_non_member_is_not_found(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let elsewhere = new_user(store).await;
    let other = new_org(store, &elsewhere).await;

    let err = expect_err(
        store.remove_member(org.id, elsewhere.id, &audit_event(org.id)).await,
        "removing a member of another org",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "membership" }),
        "expected NotFound(membership), got {err:?}"
    );
    assert!(
        store.get_membership(other.id, elsewhere.id).await.unwrap().is_some(),
        "their membership elsewhere is untouched"
    );
    let err = expect_err(
        store.remove_member(org.id, user_value().id, &audit_event(org.id)).await,
        "removing an unknown user",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "membership" }),
        "expected NotFound(membership), got {err:?}"
    );
}

/// `remove_member` fails with [`Conflict::LastOwner`] for the org's only owner, even one
/// holding other roles too; nothing changes.
pub async fn remove_member_keeps_the_last_owner(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let before = store
        .set_member_roles(
            org.id,
            owner.id,
            &roles_of(&["owner", "admin"]),
            at(1),
            &audit_event(org.id),
        )
        .await
        .unwrap();
    let member = new_user(store).await;
    add_member(store, &org, &member, roles_of(&["member"]), at(2)).await;

    let err = expect_err(
        store.remove_member(org.id, owner.id, &audit_event(org.id)).await,
        "removing the only owner",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::LastOwner)),
        "expected LastOwner, got {err:?}"
    );
    assert_eq!(
        store.get_membership(org.id, owner.id).await.unwrap(),
        Some(before),
        "the only owner is still a member with the same roles"
    );
    assert_eq!(all_members(store, org.id).await.len(), 2, "nobody was removed");
}

/// `remove_member` may remove one of two owners; the remaining owner then cannot be
/// removed.
pub async fn remove_member_may_remove_one_of_two_owners(store: &dyn TenancyStore) {
    let first = new_user(store).await;
    let org = new_org(store, &first).await;
    let second = new_user(store).await;
    add_member(store, &org, &second, roles_of(&["owner"]), at(1)).await;

    store
        .remove_member(org.id, first.id, &audit_event(org.id))
        .await
        .expect("removing one of two owners succeeds");
    let err = expect_err(
        store.remove_member(org.id, second.id, &audit_event(org.id)).await,
        "removing the remaining owner",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::LastOwner)),
        "expected LastOwner, got {err:?}"
    );
    assert!(
        store.get_membership(org.id, second.id).await.unwrap().is_some(),
        "the remaining owner stays"
    );
}

// ---------------------------------------------------------------------------------------
// Invitations
// ---------------------------------------------------------------------------------------

/// `create_invitation` stores the invitation; `get_invitation` finds it in its org and
/// answers `None` when asked with another org's id.
pub async fn create_invitation_stores_it_scoped_to_its_org(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let other = new_org(store, &owner).await;
    let invitation = invitation_value(&org, &user_value().email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .expect("create_invitation succeeds");

    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        Some(invitation.clone()),
        "get_invitation reads it back"
    );
    assert_eq!(
        store.get_invitation(other.id, invitation.id).await.unwrap(),
        None,
        "another org's id does not find it"
    );
    assert!(
        store.list_invitations(other.id, None, 10).await.unwrap().is_empty(),
        "another org lists no invitations"
    );
    let unknown = InvitationId::generate(&*IDS, t0());
    assert_eq!(
        store.get_invitation(org.id, unknown).await.unwrap(),
        None,
        "an unknown id is not found"
    );
}

/// `create_invitation` fails with [`StoreError::NotFound`] (`organization`) if the org
/// does not exist, and stores nothing.
pub async fn create_invitation_for_an_unknown_org_is_not_found(store: &dyn TenancyStore) {
    let org = org_value();
    let invitation = invitation_value(&org, &user_value().email, roles_of(&["member"]), at(3600));

    let err = expect_err(
        store.create_invitation(&invitation, &audit_event(invitation.org)).await,
        "create_invitation for an unknown org",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "organization" }),
        "expected NotFound(organization), got {err:?}"
    );
    assert_eq!(
        store.find_invitation_by_token(&invitation.token_hash).await.unwrap(),
        None,
        "the invitation was not stored"
    );
}

/// `find_invitation_by_token` finds the invitation whose token hashes to the hash, in
/// any org, and answers `None` for a hash no invitation has.
pub async fn find_invitation_by_token_finds_its_invitation(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let other = new_org(store, &owner).await;
    let first = invitation_value(&org, &user_value().email, roles_of(&["member"]), at(3600));
    let second = invitation_value(&other, &user_value().email, roles_of(&["viewer"]), at(3600));
    store.create_invitation(&first, &audit_event(first.org)).await.unwrap();
    store
        .create_invitation(&second, &audit_event(second.org))
        .await
        .unwrap();

    assert_eq!(
        store.find_invitation_by_token(&first.token_hash).await.unwrap(),
        Some(first),
        "the first hash"
    );
    assert_eq!(
        store.find_invitation_by_token(&second.token_hash).await.unwrap(),
        Some(second),
        "the second hash"
    );
    let unknown = TokenHash::of(&format!("never-issued-{}", tag()));
    assert_eq!(
        store.find_invitation_by_token(&unknown).await.unwrap(),
        None,
        "an unknown hash"
    );
}

/// `list_invitations` returns the org's invitations, in every state, in ascending id
/// order, at most `limit` at a time, starting after `after`.
pub async fn list_invitations_orders_by_id_and_pages_after_a_cursor(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let other = new_org(store, &owner).await;
    let mut expected = Vec::new();
    for _ in 0..5 {
        let invitation = invitation_value(&org, &user_value().email, roles_of(&["member"]), at(3600));
        store
            .create_invitation(&invitation, &audit_event(invitation.org))
            .await
            .unwrap();
        expected.push(invitation);
    }
    for _ in 0..2 {
        let invitation = invitation_value(&other, &user_value().email, roles_of(&["member"]), at(3600));
        store
            .create_invitation(&invitation, &audit_event(invitation.org))
            .await
            .unwrap();
    }
    expected[1] = store
        .revoke_invitation(org.id, expected[1].id, at(5), &audit_event(org.id))
        .await
        .unwrap();
    expected.sort_by_key(|i| i.id);

    assert_eq!(
        store.list_invitations(org.id, None, 100).await.unwrap(),
        expected,
        "one big page holds all"
    );

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_invitations(org.id, after, 2).await.unwrap();
        assert!(
            page.len() <= 2,
            "a page holds at most `limit` invitations, got {}",
            page.len()
        );
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        pages.push(page);
        assert!(pages.len() <= 3, "paging does not end");
    }
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![2, 2, 1],
        "5 invitations in pages of 2"
    );
    assert_eq!(
        pages.concat(),
        expected,
        "the pages together are the invitations in id order"
    );
    assert_eq!(
        store.list_invitations(other.id, None, 100).await.unwrap().len(),
        2,
        "the other org has its own two"
    );
}

/// `accept_invitation` marks the invitation accepted by the user at the given time and
/// creates their membership with the invitation's roles, joined at that time.
pub async fn accept_invitation_creates_the_membership_and_marks_it_accepted(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let invitation = invitation_value(&org, &user.email, roles_of(&["member", "billing"]), at(3600));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .unwrap();

    let membership = store
        .accept_invitation(invitation.id, user.id, at(60), &audit_event(invitation.org))
        .await
        .expect("accept_invitation succeeds");
    let expected = Membership {
        org: org.id,
        user: user.id,
        roles: roles_of(&["billing", "member"]),
        created_at: at(60),
        updated_at: at(60),
    };
    assert_eq!(membership, expected, "the returned membership");
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(expected),
        "the stored membership"
    );
    let accepted = Invitation {
        state: InvitationState::Accepted {
            by: user.id,
            at: at(60),
        },
        ..invitation.clone()
    };
    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        Some(accepted.clone()),
        "the invitation is accepted by the user at that time"
    );
    assert_eq!(
        store.find_invitation_by_token(&invitation.token_hash).await.unwrap(),
        Some(accepted),
        "the token finds the accepted invitation"
    );
}

/// `accept_invitation` fails with [`Conflict::InvitationNotPending`] for an invitation
/// that was already accepted, by the same user or another, and changes nothing.
pub async fn accept_invitation_twice_is_not_pending(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let other = new_user(store).await;
    let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .unwrap();
    let first = store
        .accept_invitation(invitation.id, user.id, at(1), &audit_event(invitation.org))
        .await
        .unwrap();

    for (who, id) in [("the same user", user.id), ("another user", other.id)] {
        let err = expect_err(
            store
                .accept_invitation(invitation.id, id, at(2), &audit_event(invitation.org))
                .await,
            &format!("accepting again by {who}"),
        );
        assert!(
            matches!(err, StoreError::Conflict(Conflict::InvitationNotPending)),
            "accepting again by {who}: expected InvitationNotPending, got {err:?}"
        );
    }
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(first),
        "the first membership stands"
    );
    assert_eq!(
        store.get_membership(org.id, other.id).await.unwrap(),
        None,
        "the other user did not join"
    );
    assert_eq!(
        store
            .get_invitation(org.id, invitation.id)
            .await
            .unwrap()
            .map(|i| i.state),
        Some(InvitationState::Accepted { by: user.id, at: at(1) }),
        "the invitation records the first acceptance"
    );
}

/// `accept_invitation` fails with [`Conflict::InvitationExpired`] when the time is not
/// before the expiry (at the expiry instant exactly, and after it), and changes nothing;
/// one microsecond before the expiry it succeeds.
pub async fn accept_invitation_at_or_after_expiry_is_expired(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let expires_at = at(3600);
    let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), expires_at);
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .unwrap();

    for (when, time) in [
        ("at the expiry", expires_at),
        ("after the expiry", expires_at + Duration::days(1)),
    ] {
        let err = expect_err(
            store
                .accept_invitation(invitation.id, user.id, time, &audit_event(invitation.org))
                .await,
            &format!("accepting {when}"),
        );
        assert!(
            matches!(err, StoreError::Conflict(Conflict::InvitationExpired)),
            "accepting {when}: expected InvitationExpired, got {err:?}"
        );
    }
    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        Some(invitation.clone()),
        "the expired invitation is unchanged and still pending"
    );
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        None,
        "no membership was created"
    );

    let just_in_time = expires_at - Duration::microseconds(1);
    store
        .accept_invitation(invitation.id, user.id, just_in_time, &audit_event(invitation.org))
        .await
        .expect("one microsecond before the expiry the invitation is still usable");
}

/// `accept_invitation` fails with [`Conflict::InvitationNotPending`] for a revoked
/// invitation, and creates no membership.
pub async fn accept_revoked_invitation_is_not_pending(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let invitation = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .unwrap();
    let revoked = store
        .revoke_invitation(org.id, invitation.id, at(1), &audit_event(org.id))
        .await
        .unwrap();

    let err = expect_err(
        store
            .accept_invitation(invitation.id, user.id, at(2), &audit_event(invitation.org))
            .await,
        "accepting a revoked invitation",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::InvitationNotPending)),
        "expected InvitationNotPending, got {err:?}"
    );
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        None,
        "no membership was created"
    );
    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        Some(revoked),
        "the invitation stays revoked"
    );
}

/// `accept_invitation` for a user who is already a member adds the invitation's roles to
/// theirs (a union), keeps `created_at` and sets `updated_at` to the acceptance time.
pub async fn accept_invitation_of_a_member_adds_its_roles(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let joined = add_member(store, &org, &user, roles_of(&["viewer", "billing"]), at(1)).await;

    let invitation = invitation_value(&org, &user.email, roles_of(&["member", "viewer"]), at(3600));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .unwrap();
    let merged = store
        .accept_invitation(invitation.id, user.id, at(50), &audit_event(invitation.org))
        .await
        .unwrap();
    let expected = Membership {
        roles: roles_of(&["billing", "member", "viewer"]),
        updated_at: at(50),
        ..joined
    };
    assert_eq!(
        merged, expected,
        "the roles are the union, created_at stays, updated_at moves"
    );
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(expected.clone()),
        "the stored membership"
    );

    let subset = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&subset, &audit_event(subset.org))
        .await
        .unwrap();
    let same = store
        .accept_invitation(subset.id, user.id, at(70), &audit_event(subset.org))
        .await
        .unwrap();
    assert_eq!(same.roles, expected.roles, "roles already held are not duplicated");
    assert_eq!(same.created_at, expected.created_at, "created_at stays");
    assert_eq!(
        same.updated_at,
        at(70),
        "updated_at is the acceptance time even when no role was added"
    );
}

/// `accept_invitation` fails with [`StoreError::NotFound`] (`user`) if the user does not
/// exist; the invitation stays pending and no membership is created.
pub async fn accept_invitation_by_an_unknown_user_is_user_not_found(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let ghost = user_value();
    let invitation = invitation_value(&org, &ghost.email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .unwrap();

    let err = expect_err(
        store
            .accept_invitation(invitation.id, ghost.id, at(1), &audit_event(invitation.org))
            .await,
        "accepting as an unknown user",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "user" }),
        "expected NotFound(user), got {err:?}"
    );
    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        Some(invitation),
        "the invitation stays pending"
    );
    assert_eq!(
        store.get_membership(org.id, ghost.id).await.unwrap(),
        None,
        "no membership was created"
    );
}

/// `accept_invitation` fails with [`Conflict::TooManyRoles`] if the member would hold
/// more than [`RoleSet::MAX`] roles; the membership is unchanged and the invitation stays
/// pending. Roles the member already holds do not count twice.
pub async fn accept_invitation_beyond_the_role_limit_is_too_many_roles(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let names: Vec<String> = (1..=RoleSet::MAX).map(|n| format!("role{n:02}")).collect();
    let full = RoleSet::parse(&names).unwrap();
    let joined = add_member(store, &org, &user, full.clone(), at(1)).await;
    assert_eq!(joined.roles, full, "the member holds the most roles allowed");

    let extra = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    store.create_invitation(&extra, &audit_event(extra.org)).await.unwrap();
    let err = expect_err(
        store
            .accept_invitation(extra.id, user.id, at(2), &audit_event(extra.org))
            .await,
        "accepting a role beyond the limit",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::TooManyRoles)),
        "expected TooManyRoles, got {err:?}"
    );
    assert_eq!(
        store.get_membership(org.id, user.id).await.unwrap(),
        Some(joined),
        "the membership is unchanged"
    );
    assert_eq!(
        store.get_invitation(org.id, extra.id).await.unwrap(),
        Some(extra),
        "the invitation stays pending"
    );

    let held = invitation_value(&org, &user.email, roles_of(&["role01", "role16"]), at(3600));
    store.create_invitation(&held, &audit_event(held.org)).await.unwrap();
    let same = store
        .accept_invitation(held.id, user.id, at(3), &audit_event(held.org))
        .await
        .expect("roles already held keep the member within the limit");
    assert_eq!(same.roles, full);
}

/// `accept_invitation` checks in the documented order, so every store reports the same
/// error for the same state: not pending before expired, expired before an unknown user.
pub async fn accept_invitation_reports_errors_in_the_documented_order(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let ghost = user_value();
    let late = at(3600) + Duration::days(1);

    let accepted = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&accepted, &audit_event(accepted.org))
        .await
        .unwrap();
    store
        .accept_invitation(accepted.id, user.id, at(1), &audit_event(accepted.org))
        .await
        .unwrap();
    let revoked = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&revoked, &audit_event(revoked.org))
        .await
        .unwrap();
    store
        .revoke_invitation(org.id, revoked.id, at(1), &audit_event(org.id))
        .await
        .unwrap();
    for (what, id) in [("accepted", accepted.id), ("revoked", revoked.id)] {
        let err = expect_err(
            store.accept_invitation(id, ghost.id, late, &audit_event(org.id)).await,
            &format!("accepting an expired, {what} invitation as an unknown user"),
        );
        assert!(
            matches!(err, StoreError::Conflict(Conflict::InvitationNotPending)),
            "an expired, {what} invitation and an unknown user: expected InvitationNotPending, got {err:?}"
        );
    }

    let pending = invitation_value(&org, &ghost.email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&pending, &audit_event(pending.org))
        .await
        .unwrap();
    let err = expect_err(
        store
            .accept_invitation(pending.id, ghost.id, late, &audit_event(pending.org))
            .await,
        "accepting an expired invitation as an unknown user",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::InvitationExpired)),
        "an expired invitation and an unknown user: expected InvitationExpired, got {err:?}"
    );
}

/// `accept_invitation` fails with [`StoreError::NotFound`] (`invitation`) for an
/// invitation that does not exist.
pub async fn accept_unknown_invitation_is_not_found(store: &dyn TenancyStore) {
    let user = new_user(store).await;
    let unknown = InvitationId::generate(&*IDS, t0());
    let err = expect_err(
        store
            .accept_invitation(unknown, user.id, at(1), &audit_event(OrgId::generate(&*IDS, t0())))
            .await,
        "accepting an unknown invitation",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "invitation" }),
        "expected NotFound(invitation), got {err:?}"
    );
    assert!(
        store.list_user_orgs(user.id, None, 100).await.unwrap().is_empty(),
        "the user joined nothing"
    );
}

/// `revoke_invitation` revokes a pending invitation at the given time and returns it;
/// the change is stored.
pub async fn revoke_invitation_revokes_a_pending_invitation(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let invitation = invitation_value(&org, &user_value().email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .unwrap();

    let revoked = store
        .revoke_invitation(org.id, invitation.id, at(7), &audit_event(org.id))
        .await
        .expect("revoking a pending invitation succeeds");
    let expected = Invitation {
        state: InvitationState::Revoked { at: at(7) },
        ..invitation.clone()
    };
    assert_eq!(revoked, expected, "the returned invitation is revoked at that time");
    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        Some(expected.clone()),
        "stored"
    );
    assert_eq!(
        store.find_invitation_by_token(&invitation.token_hash).await.unwrap(),
        Some(expected),
        "the token finds the revoked invitation"
    );
}

/// `revoke_invitation` fails with [`Conflict::InvitationNotPending`] for an invitation
/// already accepted or already revoked, and changes nothing.
pub async fn revoke_invitation_that_is_not_pending_is_not_pending(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let user = new_user(store).await;
    let accepted = invitation_value(&org, &user.email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&accepted, &audit_event(accepted.org))
        .await
        .unwrap();
    store
        .accept_invitation(accepted.id, user.id, at(1), &audit_event(accepted.org))
        .await
        .unwrap();
    let revoked = invitation_value(&org, &user_value().email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&revoked, &audit_event(revoked.org))
        .await
        .unwrap();
    store
        .revoke_invitation(org.id, revoked.id, at(2), &audit_event(org.id))
        .await
        .unwrap();

    for (what, id) in [
        ("an accepted invitation", accepted.id),
        ("a revoked invitation", revoked.id),
    ] {
        let before = store.get_invitation(org.id, id).await.unwrap();
        let err = expect_err(
            store.revoke_invitation(org.id, id, at(3), &audit_event(org.id)).await,
            &format!("revoking {what}"),
        );
        assert!(
            matches!(err, StoreError::Conflict(Conflict::InvitationNotPending)),
            "revoking {what}: expected InvitationNotPending, got {err:?}"
        );
        assert_eq!(
            store.get_invitation(org.id, id).await.unwrap(),
            before,
            "{what} is unchanged"
        );
    }
    assert!(
        store.get_membership(org.id, user.id).await.unwrap().is_some(),
        "the acceptance stands"
    );
}

/// `revoke_invitation` fails with [`StoreError::NotFound`] (`invitation`) when the org has
/// no such invitation, including another org's invitation, which stays pending.
pub async fn revoke_invitation_of_another_org_is_not_found(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let other = new_org(store, &owner).await;
    let invitation = invitation_value(&org, &user_value().email, roles_of(&["member"]), at(3600));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .unwrap();

    let err = expect_err(
        store
            .revoke_invitation(other.id, invitation.id, at(1), &audit_event(other.id))
            .await,
        "revoking another org's invitation",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "invitation" }),
        "expected NotFound(invitation), got {err:?}"
    );
    assert_eq!(
        store.get_invitation(org.id, invitation.id).await.unwrap(),
        Some(invitation),
        "the invitation is still pending in its own org"
    );
    let unknown = InvitationId::generate(&*IDS, t0());
    let err = expect_err(
        store
            .revoke_invitation(org.id, unknown, at(1), &audit_event(org.id))
            .await,
        "revoking an unknown invitation",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "invitation" }),
        "expected NotFound(invitation), got {err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Values round-trip
// ---------------------------------------------------------------------------------------

/// Every stored time reads back exactly, to the microsecond, from the far past to the
/// far future: creation times, `updated_at`, expiry, acceptance and revocation times.
pub async fn times_round_trip_exactly(store: &dyn TenancyStore) {
    let times = [
        datetime!(1970-01-01 00:00:00.000_001 UTC),
        datetime!(2001-09-09 01:46:40.999_999 UTC),
        datetime!(2099-12-31 23:59:59.999_999 UTC),
    ];
    for time in times {
        let mut user = user_value();
        user.created_at = time;
        store.create_user(&user).await.unwrap();
        assert_eq!(
            store.get_user(user.id).await.unwrap().map(|u| u.created_at),
            Some(time),
            "user created_at"
        );

        let mut org = org_value();
        org.created_at = time;
        let owner = Membership {
            created_at: time,
            updated_at: time,
            ..owner_of(&org, &user)
        };
        store.create_org(&org, &owner).await.unwrap();
        assert_eq!(
            store.get_org(org.id).await.unwrap().map(|o| o.created_at),
            Some(time),
            "org created_at"
        );
        assert_eq!(
            store.get_membership(org.id, user.id).await.unwrap(),
            Some(owner),
            "membership times"
        );

        let changed = store
            .set_member_roles(
                org.id,
                user.id,
                &roles_of(&["owner", "admin"]),
                time,
                &audit_event(org.id),
            )
            .await
            .unwrap();
        assert_eq!(
            changed.updated_at, time,
            "set_member_roles returns the time it was given"
        );
        assert_eq!(
            store
                .get_membership(org.id, user.id)
                .await
                .unwrap()
                .map(|m| m.updated_at),
            Some(time),
            "updated_at"
        );

        let mut accepted = invitation_value(
            &org,
            &user_value().email,
            roles_of(&["member"]),
            time + Duration::days(1),
        );
        accepted.created_at = time;
        store
            .create_invitation(&accepted, &audit_event(accepted.org))
            .await
            .unwrap();
        assert_eq!(
            store.get_invitation(org.id, accepted.id).await.unwrap(),
            Some(accepted.clone()),
            "invitation times"
        );
        let joiner = new_user(store).await;
        let membership = store
            .accept_invitation(accepted.id, joiner.id, time, &audit_event(accepted.org))
            .await
            .unwrap();
        assert_eq!(
            (membership.created_at, membership.updated_at),
            (time, time),
            "accept returns its time"
        );
        assert_eq!(
            store
                .get_invitation(org.id, accepted.id)
                .await
                .unwrap()
                .map(|i| i.state),
            Some(InvitationState::Accepted {
                by: joiner.id,
                at: time
            }),
            "accepted at"
        );
        assert_eq!(
            store.get_membership(org.id, joiner.id).await.unwrap(),
            Some(membership),
            "joined at"
        );

        let revoked = invitation_value(
            &org,
            &user_value().email,
            roles_of(&["member"]),
            time + Duration::days(1),
        );
        store
            .create_invitation(&revoked, &audit_event(revoked.org))
            .await
            .unwrap();
        store
            .revoke_invitation(org.id, revoked.id, time, &audit_event(org.id))
            .await
            .unwrap();
        assert_eq!(
            store.get_invitation(org.id, revoked.id).await.unwrap().map(|i| i.state),
            Some(InvitationState::Revoked { at: time }),
            "revoked at"
        );
    }
}

/// Metadata reads back exactly: the most entries allowed, every allowed key character,
/// empty and maximal values, and text beyond ASCII.
pub async fn metadata_round_trips(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let mut entries = BTreeMap::new();
    entries.insert("empty".to_owned(), String::new());
    entries.insert(
        "Key.With_All-Chars09".to_owned(),
        "Zürich — 東京 — 🚀 — \"quoted\" 'single' \\ back".to_owned(),
    );
    entries.insert("long".to_owned(), "é".repeat(1024));
    entries.insert("json".to_owned(), "{\"not\": [\"parsed\"]}".to_owned());
    entries.insert("newlines".to_owned(), "line one\nline two\ttabbed".to_owned());
    let mut n = 0;
    while entries.len() < Metadata::MAX_ENTRIES {
        entries.insert(format!("k{n:02}"), format!("value {n}"));
        n += 1;
    }
    let mut org = org_value();
    org.metadata = Metadata::new(entries).unwrap();
    store.create_org(&org, &owner_of(&org, &owner)).await.unwrap();
    assert_eq!(
        store.get_org(org.id).await.unwrap(),
        Some(org.clone()),
        "metadata read back after create_org"
    );

    org.metadata = metadata(&[("only", "one ✓")]);
    store.update_org(&org, &audit_event(org.id)).await.unwrap();
    assert_eq!(
        store.get_org(org.id).await.unwrap(),
        Some(org),
        "metadata read back after update_org"
    );
}

/// Every field of an invitation reads back exactly, whichever kind of principal sent it.
pub async fn invitations_round_trip_every_field(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    let senders = [
        Principal::User(owner.id),
        Principal::ApiKey {
            key: ApiKeyId::generate(&*IDS, t0()),
            org: org.id,
        },
        Principal::Service(ServiceName::new("billing-sync.v2").unwrap()),
    ];
    for sender in senders {
        let mut invitation = invitation_value(
            &org,
            &user_value().email,
            roles_of(&["admin", "billing", "custom-role_1"]),
            at(7 * 24 * 3600),
        );
        invitation.invited_by = sender.clone();
        store
            .create_invitation(&invitation, &audit_event(invitation.org))
            .await
            .unwrap();
        assert_eq!(
            store.get_invitation(org.id, invitation.id).await.unwrap(),
            Some(invitation.clone()),
            "an invitation sent by {sender} reads back exactly"
        );
        assert_eq!(
            store.find_invitation_by_token(&invitation.token_hash).await.unwrap(),
            Some(invitation),
            "and is found by its token"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Atomicity under concurrency
// ---------------------------------------------------------------------------------------

/// Of two concurrent `accept_invitation` calls for one invitation, exactly one succeeds;
/// the other fails with [`Conflict::InvitationNotPending`] and its user does not join.
pub async fn concurrent_accepts_of_one_invitation_let_exactly_one_win(store: &dyn TenancyStore) {
    let owner = new_user(store).await;
    let org = new_org(store, &owner).await;
    for round in 0..4 {
        let ann = new_user(store).await;
        let bob = new_user(store).await;
        let invitation = invitation_value(&org, &ann.email, roles_of(&["member"]), at(3600));
        store
            .create_invitation(&invitation, &audit_event(invitation.org))
            .await
            .unwrap();

        let (first_event, second_event) = (audit_event(invitation.org), audit_event(invitation.org));
        let (a, b) = futures::join!(
            store.accept_invitation(invitation.id, ann.id, at(round), &first_event),
            store.accept_invitation(invitation.id, bob.id, at(round), &second_event),
        );
        let (winner, loser, err) = match (a, b) {
            (Ok(_), Err(err)) => (ann.id, bob.id, err),
            (Err(err), Ok(_)) => (bob.id, ann.id, err),
            (a, b) => panic!("round {round}: expected exactly one acceptance, got {a:?} and {b:?}"),
        };
        assert!(
            matches!(err, StoreError::Conflict(Conflict::InvitationNotPending)),
            "round {round}: the losing accept must be InvitationNotPending, got {err:?}"
        );
        assert!(
            store.get_membership(org.id, winner).await.unwrap().is_some(),
            "round {round}: the winner joined"
        );
        assert_eq!(
            store.get_membership(org.id, loser).await.unwrap(),
            None,
            "round {round}: the loser did not join"
        );
        assert_eq!(
            store
                .get_invitation(org.id, invitation.id)
                .await
                .unwrap()
                .map(|i| i.state),
            Some(InvitationState::Accepted {
                by: winner,
                at: at(round)
            }),
            "round {round}: the invitation names the winner"
        );
    }
}

/// Of two concurrent `set_member_roles` calls that each demote one of an org's two
/// owners, exactly one succeeds and the other fails with [`Conflict::LastOwner`]: the org
/// keeps an owner.
pub async fn concurrent_demotions_of_two_owners_keep_an_owner(store: &dyn TenancyStore) {
    for round in 0..4 {
        let (org, first, second) = org_with_two_owners(store).await;
        let admin = roles_of(&["admin"]);
        let (first_event, second_event) = (audit_event(org.id), audit_event(org.id));
        let (a, b) = futures::join!(
            store.set_member_roles(org.id, first.id, &admin, at(round), &first_event),
            store.set_member_roles(org.id, second.id, &admin, at(round), &second_event),
        );
        let err = match (a, b) {
            (Ok(_), Err(err)) | (Err(err), Ok(_)) => err,
            (a, b) => panic!("round {round}: expected exactly one demotion, got {a:?} and {b:?}"),
        };
        assert!(
            matches!(err, StoreError::Conflict(Conflict::LastOwner)),
            "round {round}: the losing demotion must be LastOwner, got {err:?}"
        );
        assert_eq!(
            owner_count(store, org.id).await,
            1,
            "round {round}: exactly one owner remains"
        );
    }
}

/// Of two concurrent `remove_member` calls that each remove one of an org's two owners,
/// exactly one succeeds and the other fails with [`Conflict::LastOwner`]: the org keeps
/// an owner.
pub async fn concurrent_removals_of_two_owners_keep_an_owner(store: &dyn TenancyStore) {
    for round in 0..4 {
        let (org, first, second) = org_with_two_owners(store).await;
        let (first_event, second_event) = (audit_event(org.id), audit_event(org.id));
        let (a, b) = futures::join!(
            store.remove_member(org.id, first.id, &first_event),
            store.remove_member(org.id, second.id, &second_event)
        );
        let err = match (a, b) {
            (Ok(_), Err(err)) | (Err(err), Ok(_)) => err,
            (a, b) => panic!("round {round}: expected exactly one removal, got {a:?} and {b:?}"),
        };
        assert!(
            matches!(err, StoreError::Conflict(Conflict::LastOwner)),
            "round {round}: the losing removal must be LastOwner, got {err:?}"
        );
        assert_eq!(
            owner_count(store, org.id).await,
            1,
            "round {round}: exactly one owner remains"
        );
        assert_eq!(
            all_members(store, org.id).await.len(),
            1,
            "round {round}: one member remains"
        );
    }
}

// ---------------------------------------------------------------------------------------
// API version pins (ApiVersionStore, kept by the tenancy store)
// ---------------------------------------------------------------------------------------

/// `ApiVersionStore`: an org has no pin until pinned; a pin reads back, is replaced by the
/// next (with an audit event or without), belongs to its org only; pinning an unknown org
/// is `NotFound(organization)` and pins nothing.
pub async fn api_version_pins_are_per_org_and_need_the_org<S>(store: &S)
where
    S: TenancyStore + ApiVersionStore,
{
    let owner = new_user(store).await;
    let one = new_org(store, &owner).await;
    let two = new_org(store, &owner).await;
    assert_eq!(store.api_version(one.id).await.unwrap(), None, "a new org has no pin");
    let old = ApiVersionName::new("2026-06-01").unwrap();
    let new = ApiVersionName::new("2026-12-01").unwrap();
    store.pin_api_version(one.id, &old, None).await.expect("pin an org");
    assert_eq!(
        store.api_version(one.id).await.unwrap(),
        Some(old.clone()),
        "the pin reads back"
    );
    assert_eq!(
        store.api_version(two.id).await.unwrap(),
        None,
        "a pin is its org's only"
    );
    store
        .pin_api_version(one.id, &new, Some(&audit_event(one.id)))
        .await
        .expect("re-pin with an audit event");
    assert_eq!(
        store.api_version(one.id).await.unwrap(),
        Some(new.clone()),
        "the new pin replaces the old"
    );
    store
        .pin_api_version(two.id, &old, None)
        .await
        .expect("pin another org");
    assert_eq!(
        store.api_version(one.id).await.unwrap(),
        Some(new),
        "another org's pin leaves this one"
    );
    let unknown = org_value();
    let err = expect_err(
        store.pin_api_version(unknown.id, &old, None).await,
        "pin an unknown org",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "organization" }),
        "expected NotFound(organization), got {err:?}"
    );
    assert_eq!(store.api_version(unknown.id).await.unwrap(), None, "nothing was pinned");
}

/// `create_pinned_org`: the org, its owner's membership and its pin are stored together;
/// when the org cannot be created (its slug is taken, its owner does not exist) nothing is
/// stored, the pin included.
pub async fn create_pinned_org_stores_the_org_its_owner_and_its_pin_together<S>(store: &S)
where
    S: TenancyStore + ApiVersionStore,
{
    let owner = new_user(store).await;
    let version = ApiVersionName::new("2026-12-01").unwrap();
    let org = org_value();
    store
        .create_pinned_org(&org, &owner_of(&org, &owner), &version)
        .await
        .expect("create a pinned org");
    assert_eq!(
        store.get_org(org.id).await.unwrap(),
        Some(org.clone()),
        "the org is stored"
    );
    assert!(
        store.get_membership(org.id, owner.id).await.unwrap().is_some(),
        "its owner is a member"
    );
    assert_eq!(
        store.api_version(org.id).await.unwrap(),
        Some(version.clone()),
        "its pin reads back"
    );

    let taken = Organization {
        id: org_value().id,
        ..org.clone()
    };
    let err = expect_err(
        store
            .create_pinned_org(&taken, &owner_of(&taken, &owner), &version)
            .await,
        "create a pinned org with a taken slug",
    );
    assert!(
        matches!(err, StoreError::Conflict(Conflict::SlugTaken)),
        "expected SlugTaken, got {err:?}"
    );
    assert_eq!(store.get_org(taken.id).await.unwrap(), None, "no org was stored");
    assert_eq!(store.api_version(taken.id).await.unwrap(), None, "no pin was stored");

    // The org's row goes in before the owner is found missing: the pin must not outlive it.
    let orphan = org_value();
    let ghost = user_value();
    let err = expect_err(
        store
            .create_pinned_org(&orphan, &owner_of(&orphan, &ghost), &version)
            .await,
        "create a pinned org for an unknown owner",
    );
    assert!(
        matches!(err, StoreError::NotFound { entity: "user" }),
        "expected NotFound(user), got {err:?}"
    );
    assert_eq!(store.get_org(orphan.id).await.unwrap(), None, "no org was stored");
    assert_eq!(
        store.get_org_by_slug(&orphan.slug).await.unwrap(),
        None,
        "its slug is free"
    );
    assert_eq!(store.api_version(orphan.id).await.unwrap(), None, "no pin was stored");
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// Ids for everything the suite makes: unique across clauses and across processes, so
/// clauses can share one database.
static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// The suite's reference time. Its sub-second part has six significant digits, so a
/// store that loses microseconds fails the round-trip assertions.
fn t0() -> OffsetDateTime {
    datetime!(2025-03-14 15:09:26.535_897 UTC)
}

/// `seconds` after the suite's reference time (2025-03-14 15:09:26.535897 UTC).
pub fn at(seconds: i64) -> OffsetDateTime {
    t0() + Duration::seconds(seconds)
}

/// A fresh 32-character lowercase hex tag for slugs, addresses and tokens.
fn tag() -> String {
    IDS.generate(t0()).simple().to_string()
}

/// The role set of `names` (valid role names).
pub fn roles_of(names: &[&str]) -> RoleSet {
    RoleSet::parse(names).unwrap()
}

fn metadata(entries: &[(&str, &str)]) -> Metadata {
    Metadata::new(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
    .unwrap()
}

/// A user that is not stored yet.
fn user_value() -> User {
    let tag = tag();
    User {
        id: UserId::generate(&*IDS, t0()),
        email: Email::new(&format!("user-{tag}@example.com")).unwrap(),
        display_name: DisplayName::new("Ada Lovelace").unwrap(),
        created_at: t0(),
    }
}

/// An organization that is not stored yet.
fn org_value() -> Organization {
    Organization {
        id: OrgId::generate(&*IDS, t0()),
        slug: Slug::new(&format!("org-{}", tag())).unwrap(),
        name: OrgName::new("Acme Corporation").unwrap(),
        metadata: Metadata::default(),
        created_at: t0(),
    }
}

/// The owner membership `create_org` is given for `user` in `org`.
fn owner_of(org: &Organization, user: &User) -> Membership {
    Membership {
        org: org.id,
        user: user.id,
        roles: RoleSet::one(RoleName::owner()),
        created_at: t0(),
        updated_at: t0(),
    }
}

/// A pending invitation of `org` for `email`, sent by a service, with a fresh token hash.
pub fn invitation_value(org: &Organization, email: &Email, roles: RoleSet, expires_at: OffsetDateTime) -> Invitation {
    Invitation {
        id: InvitationId::generate(&*IDS, t0()),
        org: org.id,
        email: email.clone(),
        roles,
        invited_by: Principal::Service(ServiceName::new("conformance").unwrap()),
        created_at: t0(),
        expires_at,
        state: InvitationState::Pending,
        token_hash: TokenHash::of(&format!("pit_{}", tag())),
    }
}

pub(crate) async fn new_user(store: &dyn TenancyStore) -> User {
    let user = user_value();
    store.create_user(&user).await.expect("fixture: create_user");
    user
}

pub(crate) async fn new_org(store: &dyn TenancyStore, owner: &User) -> Organization {
    let org = org_value();
    store
        .create_org(&org, &owner_of(&org, owner))
        .await
        .expect("fixture: create_org");
    org
}

/// Makes `user` a member of `org` with `roles` the only way the port allows: an
/// invitation, accepted at `when`.
pub(crate) async fn add_member(
    store: &dyn TenancyStore,
    org: &Organization,
    user: &User,
    roles: RoleSet,
    when: OffsetDateTime,
) -> Membership {
    let invitation = invitation_value(org, &user.email, roles, when + Duration::days(7));
    store
        .create_invitation(&invitation, &audit_event(invitation.org))
        .await
        .expect("fixture: create_invitation");
    store
        .accept_invitation(invitation.id, user.id, when, &audit_event(invitation.org))
        .await
        .expect("fixture: accept_invitation")
}

/// An org whose two members are both owners.
async fn org_with_two_owners(store: &dyn TenancyStore) -> (Organization, User, User) {
    let first = new_user(store).await;
    let org = new_org(store, &first).await;
    let second = new_user(store).await;
    add_member(store, &org, &second, roles_of(&["owner"]), t0()).await;
    (org, first, second)
}

/// Every member of `org`, read in one page.
async fn all_members(store: &dyn TenancyStore, org: OrgId) -> Vec<Membership> {
    store.list_members(org, None, 1000).await.expect("list_members")
}

async fn owner_count(store: &dyn TenancyStore, org: OrgId) -> usize {
    all_members(store, org)
        .await
        .iter()
        .filter(|m| m.roles.has_owner())
        .count()
}

/// The error of a call that must fail, or a panic naming `what` with the unexpected value.
#[track_caller]
fn expect_err<T: Debug>(result: Result<T, StoreError>, what: &str) -> StoreError {
    match result {
        Ok(value) => panic!("{what}: expected an error, got Ok({value:?})"),
        Err(err) => err,
    }
}

// ---------------------------------------------------------------------------------------
// The test generator
// ---------------------------------------------------------------------------------------

/// Expands to one `#[tokio::test]` per clause of the [`TenancyStore`] conformance suite.
///
/// `$factory` is an expression evaluating to a future whose output is `Option<S>`, where
/// `S: TenancyStore`. It is evaluated afresh in every test; when it yields `None` the test
/// returns early and passes (the factory prints why it skipped, for example that a
/// database URL is unset). The calling crate must depend on `tokio` with the `macros` and
/// `rt` features. Call it inside a module, since it defines functions named after the
/// clauses:
///
/// ```ignore
/// mod memory {
///     use portal_adapters::memory::InMemoryTenancyStore;
///     portal_core::tenancy_store_conformance!(async { Some(InMemoryTenancyStore::new()) });
/// }
/// ```
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! tenancy_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(store) = $factory.await else {
                return;
            };
            $crate::testing::tenancy::$clause(&store).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::tenancy_store_conformance! { @tests ($factory)
            create_org_stores_the_org_and_its_owner_membership,
            create_org_stores_the_owner_membership_in_the_new_org,
            create_org_with_a_taken_slug_is_slug_taken,
            create_org_with_an_unknown_owner_is_user_not_found,
            unknown_orgs_are_none,
            update_org_replaces_only_name_and_metadata,
            update_org_of_an_unknown_org_is_not_found,
            create_user_stores_the_user,
            create_user_with_a_taken_email_is_email_taken,
            unknown_users_are_none,
            get_membership_is_scoped_to_its_org,
            list_members_orders_by_user_id_and_pages_after_a_cursor,
            list_member_users_pairs_each_membership_with_its_user,
            list_user_orgs_orders_by_org_id_with_each_membership,
            set_member_roles_replaces_roles_and_sets_updated_at,
            set_member_roles_of_a_non_member_is_not_found,
            set_member_roles_keeps_the_last_owner,
            set_member_roles_may_demote_one_of_two_owners,
            remove_member_removes_the_membership_and_its_roles,
            remove_member_of_a_non_member_is_not_found,
            add_member_stores_the_membership_once,
            remove_member_keeps_the_last_owner,
            remove_member_may_remove_one_of_two_owners,
            create_invitation_stores_it_scoped_to_its_org,
            create_invitation_for_an_unknown_org_is_not_found,
            find_invitation_by_token_finds_its_invitation,
            list_invitations_orders_by_id_and_pages_after_a_cursor,
            accept_invitation_creates_the_membership_and_marks_it_accepted,
            accept_invitation_twice_is_not_pending,
            accept_invitation_at_or_after_expiry_is_expired,
            accept_revoked_invitation_is_not_pending,
            accept_invitation_of_a_member_adds_its_roles,
            accept_invitation_by_an_unknown_user_is_user_not_found,
            accept_invitation_beyond_the_role_limit_is_too_many_roles,
            accept_invitation_reports_errors_in_the_documented_order,
            accept_unknown_invitation_is_not_found,
            revoke_invitation_revokes_a_pending_invitation,
            revoke_invitation_that_is_not_pending_is_not_pending,
            revoke_invitation_of_another_org_is_not_found,
            times_round_trip_exactly,
            metadata_round_trips,
            invitations_round_trip_every_field,
            concurrent_accepts_of_one_invitation_let_exactly_one_win,
            concurrent_demotions_of_two_owners_keep_an_owner,
            api_version_pins_are_per_org_and_need_the_org,
            create_pinned_org_stores_the_org_its_owner_and_its_pin_together,
            concurrent_removals_of_two_owners_keep_an_owner,
        }
    };
}

/// The suite's async fixtures, for other suites and adapters' own tests.
pub mod fixtures {
    use time::OffsetDateTime;

    use crate::tenancy::{Membership, Organization, RoleSet, TenancyStore, User};

    /// A new user, stored.
    pub async fn new_user(store: &dyn TenancyStore) -> User {
        super::new_user(store).await
    }

    /// A new org owned by `owner`, stored.
    pub async fn new_org(store: &dyn TenancyStore, owner: &User) -> Organization {
        super::new_org(store, owner).await
    }

    /// Makes `user` a member of `org` with `roles`: an invitation, accepted at `when`
    /// (each with its audit event).
    pub async fn add_member(
        store: &dyn TenancyStore,
        org: &Organization,
        user: &User,
        roles: RoleSet,
        when: OffsetDateTime,
    ) -> Membership {
        super::add_member(store, org, user, roles, when).await
    }
}

#[cfg(test)]
mod tests {
    /// Every clause function is in the macro's list, and the list names nothing else, so
    /// a new clause cannot be forgotten by the adapters' test binaries.
    #[test]
    fn the_macro_lists_every_clause() {
        let source = include_str!("tenancy.rs");
        let mut functions: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split(['(', '<']).next())
            .collect();
        let list_start = source.find("@tests ($factory)\n").expect("the macro's clause list");
        let mut listed: Vec<&str> = source[list_start..]
            .lines()
            .skip(1)
            .map(str::trim)
            .take_while(|line| line.ends_with(','))
            .map(|line| line.trim_end_matches(','))
            .collect();
        assert!(functions.len() > 40, "found only {functions:?}");
        functions.sort_unstable();
        listed.sort_unstable();
        assert_eq!(functions, listed);
    }
}
