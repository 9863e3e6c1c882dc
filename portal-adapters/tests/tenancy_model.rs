//! Property tests of tenancy: random operation sequences keep the invariants, and every
//! SQL store answers them exactly as the in-memory reference does.
//!
//! The sequences come from `portal_core::testing::model` and run through the real
//! `TenancyService` with a manual clock and sequential ids, so two stores fed one
//! sequence must produce equal transcripts. Postgres runs only when
//! `PORTAL_TEST_POSTGRES_URL` is set, and says so when it is not.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;

use portal_adapters::memory::InMemoryTenancyStore;
use portal_core::ErrorCode;
use portal_core::TenancyStore;
use portal_core::testing::model::{self, Actor, Effect, Invitee, Op, Roles, Target, Transcript};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Operations per generated sequence, after the first org creation.
const MAX_OPS: usize = 40;

#[expect(clippy::expect_used, reason = "a test that cannot start a runtime cannot run")]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// Runs `ops` on a fresh model portal over `store`.
async fn run_on(store: Arc<dyn TenancyStore>, ops: &[Op]) -> Transcript {
    let (portal, clock) = model::portal(store);
    model::run(&portal, &clock, ops).await
}

async fn run_on_memory(ops: &[Op]) -> Transcript {
    run_on(Arc::new(InMemoryTenancyStore::new()), ops).await
}

/// Fails the case with the first difference between the reference and `other`.
fn same_as_reference(reference: &Transcript, other: &Transcript, backend: &str) -> Result<(), TestCaseError> {
    if let Some(difference) = reference.difference(other) {
        return Err(TestCaseError::fail(format!(
            "{backend} differs from the in-memory reference at {difference}"
        )));
    }
    Ok(())
}

fn invariants(transcript: &Transcript) -> Result<(), TestCaseError> {
    model::check_invariants(transcript).map_err(|violation| TestCaseError::fail(violation.to_string()))
}

proptest! {
    #![proptest_config(Config::with_cases(256))]

    /// Random sequences never break the invariants on the reference store, and the model
    /// is deterministic: the same sequence gives the same transcript twice.
    #[test]
    fn memory_store_keeps_the_invariants(ops in model::ops(MAX_OPS)) {
        let rt = runtime();
        let first = rt.block_on(run_on_memory(&ops));
        invariants(&first)?;
        let second = rt.block_on(run_on_memory(&ops));
        same_as_reference(&first, &second, "a second in-memory run")?;
    }
}

#[cfg(feature = "sqlite")]
proptest! {
    #![proptest_config(Config::with_cases(64))]

    /// SQLite gives the same transcript as the reference for every sequence.
    #[test]
    fn sqlite_store_answers_like_the_reference(ops in model::ops(MAX_OPS)) {
        let rt = runtime();
        let reference = rt.block_on(run_on_memory(&ops));
        let sqlite = rt.block_on(async {
            let store = common::fresh_sqlite_store().await;
            run_on(Arc::new(store), &ops).await
        });
        invariants(&sqlite)?;
        same_as_reference(&reference, &sqlite, "SQLite")?;
    }
}

/// Postgres gives the same transcript as the reference for every sequence. Skipped,
/// saying so, when `PORTAL_TEST_POSTGRES_URL` is unset.
#[cfg(feature = "postgres")]
#[test]
fn postgres_store_answers_like_the_reference() {
    if common::postgres_url().is_none() {
        return;
    }
    let mut runner = TestRunner::new(Config::with_cases(24));
    let result = runner.run(&model::ops(MAX_OPS), |ops| {
        let rt = runtime();
        let reference = rt.block_on(run_on_memory(&ops));
        let postgres = rt.block_on(async {
            let store = common::fresh_pg_store().await.expect("the Postgres URL is set");
            run_on(Arc::new(store), &ops).await
        });
        invariants(&postgres)?;
        same_as_reference(&reference, &postgres, "Postgres")
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// A written-out sequence has the outcomes the tenancy rules call for, so the model's
/// runner is known to exercise what the generated sequences rely on.
#[test]
fn a_scripted_sequence_has_the_expected_outcomes() {
    let owner = Roles(0b0001);
    let admin = Roles(0b0010);
    let viewer = Roles(0b1000);
    let ops = [
        Op::CreateOrg { by: 0, slug: 0 },
        Op::CreateOrg { by: 1, slug: 0 },
        Op::Invite {
            actor: Actor::User(0),
            org: 0,
            invitee: Invitee::User(1),
            roles: admin,
        },
        Op::Accept {
            invitation: 0,
            by: Some(2),
        },
        Op::Accept {
            invitation: 0,
            by: None,
        },
        Op::Accept {
            invitation: 0,
            by: None,
        },
        Op::Invite {
            actor: Actor::User(1),
            org: 0,
            invitee: Invitee::User(2),
            roles: owner,
        },
        Op::SetRoles {
            actor: Actor::User(0),
            org: 0,
            target: Target::User(0),
            roles: viewer,
        },
        Op::RemoveMember {
            actor: Actor::User(0),
            org: 0,
            target: Target::User(0),
        },
        Op::Invite {
            actor: Actor::User(1),
            org: 0,
            invitee: Invitee::User(3),
            roles: viewer,
        },
        Op::Advance { minutes: 11 },
        Op::Accept {
            invitation: 0,
            by: None,
        },
        Op::Revoke {
            actor: Actor::User(1),
            invitation: 0,
        },
        Op::Revoke {
            actor: Actor::User(1),
            invitation: 0,
        },
        Op::SetRoles {
            actor: Actor::User(2),
            org: 0,
            target: Target::User(1),
            roles: viewer,
        },
        Op::RemoveMember {
            actor: Actor::User(0),
            org: 0,
            target: Target::User(1),
        },
        Op::RemoveMember {
            actor: Actor::User(0),
            org: 2,
            target: Target::User(1),
        },
    ];
    let transcript = runtime().block_on(run_on_memory(&ops));
    let codes: Vec<Result<&str, ErrorCode>> = transcript
        .steps
        .iter()
        .map(|step| {
            step.outcome.as_ref().map(|effect| match effect {
                Effect::OrgCreated(_) => "org created",
                Effect::Invited(_) => "invited",
                Effect::Accepted { .. } => "accepted",
                Effect::Revoked(_) => "revoked",
                Effect::RolesSet(_) => "roles set",
                Effect::Removed { .. } => "removed",
                Effect::ClockAdvanced => "clock advanced",
            })
        })
        .map(|outcome| outcome.map_err(|code| *code))
        .collect();
    assert_eq!(
        codes,
        vec![
            Ok("org created"),
            Err(ErrorCode::OrgSlugTaken),
            Ok("invited"),
            Err(ErrorCode::InvitationEmailMismatch),
            Ok("accepted"),
            Err(ErrorCode::InvitationUsed),
            // An admin may not offer the owner role.
            Err(ErrorCode::AccessDenied),
            Err(ErrorCode::LastOwner),
            Err(ErrorCode::LastOwner),
            Ok("invited"),
            Ok("clock advanced"),
            Err(ErrorCode::InvitationExpired),
            Ok("revoked"),
            Err(ErrorCode::InvitationRevoked),
            // User 2 is not a member: the org is not found for them.
            Err(ErrorCode::OrgNotFound),
            Ok("removed"),
            // Org indexes wrap around the orgs created: org 2 is org 0 here.
            Err(ErrorCode::MemberNotFound),
        ]
    );
    model::check_invariants(&transcript).expect("the invariants hold");
    let org = &transcript.orgs[0];
    assert_eq!(org.members.len(), 1, "only the owner is left: {:?}", org.members);
    assert_eq!(org.invitations.len(), 2);
}
