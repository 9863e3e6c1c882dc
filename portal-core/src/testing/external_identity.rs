//! The `ExternalIdentityStore` conformance suite: one function per clause of the port's contract.
//!
//! Every function takes a store, makes links under a fresh issuer and fresh user ids, and
//! panics with a message naming the clause if the store breaks it. Run them all with
//! [`external_identity_store_conformance!`](crate::external_identity_store_conformance).

use std::sync::LazyLock;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::identity::{ExternalIdentity, ExternalIdentityStore};
use crate::ids::{IdGenerator, RandomIds, UserId};
use crate::store::{Conflict, StoreError};

/// `link` stores the link and `find` reads it back exactly, including an issuer and a
/// subject of the longest accepted lengths and non-ASCII text.
pub async fn link_stores_the_link_and_find_reads_it_back(store: &dyn ExternalIdentityStore) {
    let issuer = new_issuer();
    let identity = link_value(&issuer, "248289761001", new_user(), 0);
    store.link(&identity).await.expect("link succeeds");
    assert_eq!(
        store.find(&issuer, "248289761001").await.unwrap(),
        Some(identity),
        "find reads the link back"
    );

    let long_issuer = format!(
        "{issuer}{}",
        "a".repeat(ExternalIdentity::MAX_ISSUER_LEN - issuer.len())
    );
    let long_subject = format!(
        "sübjéct-{}",
        "z".repeat(ExternalIdentity::MAX_SUBJECT_LEN - "sübjéct-".len())
    );
    let long = link_value(&long_issuer, &long_subject, new_user(), 1);
    store.link(&long).await.expect("link of the longest values succeeds");
    assert_eq!(
        store.find(&long_issuer, &long_subject).await.unwrap(),
        Some(long),
        "the longest issuer and subject, with non-ASCII text, read back exactly"
    );
}

/// `find` matches issuer and subject exactly: another issuer, another subject, or a
/// different case finds nothing.
pub async fn find_matches_issuer_and_subject_exactly(store: &dyn ExternalIdentityStore) {
    let issuer = new_issuer();
    let identity = link_value(&issuer, "Subject-1", new_user(), 0);
    store.link(&identity).await.expect("link succeeds");
    let other_issuer = new_issuer();
    let cases = [
        (other_issuer.as_str(), "Subject-1", "another issuer"),
        (issuer.as_str(), "Subject-2", "another subject"),
        (issuer.as_str(), "subject-1", "the subject in another case"),
        (&issuer[..issuer.len() - 1], "Subject-1", "a prefix of the issuer"),
    ];
    for (issuer, subject, what) in cases {
        assert_eq!(store.find(issuer, subject).await.unwrap(), None, "{what}");
    }
}

/// `link` of a pair already linked is `Conflict::AlreadyExists`, whichever user it names,
/// and the existing link is unchanged.
pub async fn link_of_a_linked_pair_is_already_exists(store: &dyn ExternalIdentityStore) {
    let issuer = new_issuer();
    let first = link_value(&issuer, "sub", new_user(), 0);
    store.link(&first).await.expect("link succeeds");
    for (again, what) in [
        (link_value(&issuer, "sub", new_user(), 5), "to another user"),
        (link_value(&issuer, "sub", first.user, 5), "to the same user"),
    ] {
        let err = store.link(&again).await.expect_err(what);
        assert!(
            matches!(
                err,
                StoreError::Conflict(Conflict::AlreadyExists {
                    entity: "external_identity"
                })
            ),
            "{what}: expected AlreadyExists, got {err:?}"
        );
    }
    assert_eq!(
        store.find(&issuer, "sub").await.unwrap(),
        Some(first),
        "the first link is unchanged"
    );
}

/// `list_for_user` returns every link of the user, ordered by issuer then subject (byte
/// order), and none of another user's; pages (`after` the last pair read, `limit`) hold
/// at most `limit` and together every link once.
pub async fn list_for_user_returns_the_users_links_in_order(store: &dyn ExternalIdentityStore) {
    let (user, other) = (new_user(), new_user());
    let issuer = new_issuer();
    let issuer_b = format!("{issuer}b");
    let links = [
        link_value(&issuer, "B", user, 0),
        link_value(&issuer, "a", user, 1),
        link_value(&issuer_b, "A", user, 2),
        link_value(&issuer, "other", other, 3),
    ];
    for link in links.iter().rev() {
        store.link(link).await.expect("link succeeds");
    }
    // Byte order: uppercase sorts before lowercase, and an issuer before its extensions.
    let expected = vec![links[0].clone(), links[1].clone(), links[2].clone()];
    assert_eq!(
        store.list_for_user(user, None, 100).await.unwrap(),
        expected,
        "the user's links"
    );
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_for_user(user, after, 1).await.unwrap();
        assert!(page.len() <= 1, "a page holds at most `limit`: {page:?}");
        after = page.last().map(|l| (l.issuer.clone(), l.subject.clone()));
        let done = page.is_empty();
        paged.extend(page);
        if done {
            break;
        }
        assert!(paged.len() <= expected.len(), "the pages end");
    }
    assert_eq!(paged, expected, "the pages hold every link once, in order");
    assert_eq!(
        store.list_for_user(new_user(), None, 100).await.unwrap(),
        vec![],
        "a user without links lists none"
    );
}

/// `unlink` removes the link and returns it; the pair can then be linked again.
pub async fn unlink_removes_the_link_and_returns_it(store: &dyn ExternalIdentityStore) {
    let issuer = new_issuer();
    let user = new_user();
    let link = link_value(&issuer, "sub", user, 0);
    let kept = link_value(&issuer, "kept", user, 1);
    store.link(&link).await.expect("link succeeds");
    store.link(&kept).await.expect("link succeeds");
    assert_eq!(
        store.unlink(&issuer, "sub").await.unwrap(),
        link,
        "unlink returns the link"
    );
    assert_eq!(store.find(&issuer, "sub").await.unwrap(), None, "the link is gone");
    assert_eq!(
        store.list_for_user(user, None, 100).await.unwrap(),
        vec![kept],
        "the user's other link stays"
    );
    let relinked = link_value(&issuer, "sub", new_user(), 10);
    store.link(&relinked).await.expect("the pair can be linked again");
    assert_eq!(store.find(&issuer, "sub").await.unwrap(), Some(relinked));
}

/// `unlink` of a pair that is not linked is `NotFound` and changes nothing.
pub async fn unlink_of_an_unlinked_pair_is_not_found(store: &dyn ExternalIdentityStore) {
    let issuer = new_issuer();
    let link = link_value(&issuer, "sub", new_user(), 0);
    store.link(&link).await.expect("link succeeds");
    for (issuer, subject, what) in [
        (issuer.as_str(), "other", "an unknown subject"),
        ("https://unknown.example", "sub", "an unknown issuer"),
    ] {
        let err = store.unlink(issuer, subject).await.expect_err(what);
        assert!(
            matches!(
                err,
                StoreError::NotFound {
                    entity: "external_identity"
                }
            ),
            "{what}: expected NotFound, got {err:?}"
        );
    }
    assert_eq!(
        store.find(&issuer, "sub").await.unwrap(),
        Some(link),
        "the link is still there"
    );
}

static IDS: LazyLock<RandomIds> = LazyLock::new(RandomIds::default);

/// The suite's reference time, with six significant sub-second digits so a store that
/// loses microseconds fails the round trips.
fn t0() -> OffsetDateTime {
    datetime!(2025-03-14 15:09:26.535_897 UTC)
}

fn new_user() -> UserId {
    UserId::generate(&*IDS, t0())
}

/// An issuer no other clause or run uses.
fn new_issuer() -> String {
    format!("https://idp-{}.example.com", IDS.generate(t0()).simple())
}

/// A link made `seconds` after [`t0`].
fn link_value(issuer: &str, subject: &str, user: UserId, seconds: i64) -> ExternalIdentity {
    ExternalIdentity::new(issuer, subject, user, t0() + Duration::seconds(seconds)).expect("a valid identity")
}

/// Expands to one `#[tokio::test]` per clause of the
/// [`ExternalIdentityStore`](crate::identity::ExternalIdentityStore) contract, each on a
/// fresh store from `$factory` (a future of `Option<S>`; `None` skips the test). Call it
/// inside a module, since it defines functions named after the clauses:
///
/// ```ignore
/// mod memory {
///     use portal_adapters::memory::InMemoryExternalIdentityStore;
///     portal_core::external_identity_store_conformance!(async { Some(InMemoryExternalIdentityStore::new()) });
/// }
/// ```
///
/// The rule starting with `@` is internal.
#[macro_export]
macro_rules! external_identity_store_conformance {
    (@tests ($factory:expr) $($clause:ident,)*) => {$(
        #[tokio::test]
        async fn $clause() {
            let Some(store) = $factory.await else {
                return;
            };
            $crate::testing::external_identity::$clause(&store).await;
        }
    )*};
    ($factory:expr $(,)?) => {
        $crate::external_identity_store_conformance! { @tests ($factory)
            link_stores_the_link_and_find_reads_it_back,
            find_matches_issuer_and_subject_exactly,
            link_of_a_linked_pair_is_already_exists,
            list_for_user_returns_the_users_links_in_order,
            unlink_removes_the_link_and_returns_it,
            unlink_of_an_unlinked_pair_is_not_found,
        }
    };
}
