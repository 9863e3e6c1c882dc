//! The webhook store (`webhook_store_conformance!`, in each backend's `webhooks` module), the outbox (`audit_log_conformance!`, in each backend's `audit` module; `admin_audit_conformance!`, the policy, identity and support grant stores' events, in `admin_audit`), the identity outbox (`identity_audit_conformance!`, in `identity_audit`), the passkey store (`passkey_store_conformance!`, in `passkey`), `TenancyStore`, `PolicyStore`, `WorkflowStore`, `SupportGrantStore`, identity store, `IdempotencyStore` and `Journal`
//! conformance suites, run against
//! every backend in one binary.
//!
//! Each module expands `portal_core::tenancy_store_conformance!` and
//! `portal_core::policy_store_conformance!`, and its nested `workflow` module (so clause
//! names do not clash) `portal_core::workflow_store_conformance!`, and its nested `support`
//! module `portal_core::support_grant_store_conformance!`, and its nested `identity` and
//! `external_identity` modules `portal_core::identity_store_conformance!` and
//! `portal_core::external_identity_store_conformance!`, and its nested `scim` module
//! `portal_core::scim_store_conformance!`, into one test per
//! contract clause, with a fresh store per test. SQLite runs twice: in memory (shared cache, fast) and on a file
//! opened the way hosts open it (write-ahead log, busy timeout), because the two lock
//! differently. The Postgres module needs `PORTAL_TEST_POSTGRES_URL`; without it every
//! Postgres test returns early after printing that it was skipped.

#[path = "../common/mod.rs"]
mod common;

mod memory {
    mod webhooks {
        portal_core::webhook_store_conformance!(async {
            let store = portal_adapters::memory::InMemoryTenancyStore::default();
            let webhooks = portal_adapters::memory::InMemoryWebhookStore::new(store.audit_log());
            Some((store, webhooks))
        });
    }

    mod audit {
        portal_core::audit_log_conformance!(async {
            let store = portal_adapters::memory::InMemoryTenancyStore::default();
            let log = store.audit_log();
            Some((store, log))
        });
    }

    mod admin_audit {
        portal_core::admin_audit_conformance!(async {
            let log = portal_adapters::memory::InMemoryAuditLog::new();
            Some((
                portal_adapters::memory::InMemoryPolicyStore::with_audit_log(log.clone()),
                portal_adapters::memory::InMemoryIdentityStore::with_audit_log(log.clone()),
                portal_adapters::memory::InMemorySupportGrantStore::with_audit_log(log.clone()),
                log,
            ))
        });
    }

    mod passkey {
        portal_core::passkey_store_conformance!(async {
            let tenancy = std::sync::Arc::new(portal_adapters::memory::InMemoryTenancyStore::default());
            let log = tenancy.audit_log();
            let identity = portal_adapters::memory::InMemoryIdentityStore::with_tenancy(tenancy.clone());
            Some((tenancy, identity, log))
        });
    }

    mod identity_audit {
        portal_core::identity_audit_conformance!(async {
            let tenancy = std::sync::Arc::new(portal_adapters::memory::InMemoryTenancyStore::default());
            let log = tenancy.audit_log();
            let identity = portal_adapters::memory::InMemoryIdentityStore::with_tenancy(tenancy.clone());
            Some((tenancy, identity, log))
        });
    }

    portal_core::tenancy_store_conformance!(async { Some(portal_adapters::memory::InMemoryTenancyStore::default()) });
    portal_core::policy_store_conformance!(async { Some(portal_adapters::memory::InMemoryPolicyStore::new()) });

    mod support {
        portal_core::support_grant_store_conformance!(async {
            Some(portal_adapters::memory::InMemorySupportGrantStore::new())
        });
    }

    mod identity {
        portal_core::identity_store_conformance!(async { Some(portal_adapters::memory::InMemoryIdentityStore::new()) });
    }
    mod email_change {
        portal_core::email_change_store_conformance!(async {
            let tenancy = std::sync::Arc::new(portal_adapters::memory::InMemoryTenancyStore::new());
            Some((
                portal_adapters::memory::InMemoryIdentityStore::with_tenancy(tenancy.clone()),
                tenancy,
            ))
        });
    }
    mod external_identity {
        portal_core::external_identity_store_conformance!(async {
            Some(portal_adapters::memory::InMemoryExternalIdentityStore::new())
        });
    }
    mod scim {
        portal_core::scim_store_conformance!(async { Some(portal_adapters::memory::InMemoryScimStore::new()) });
    }

    mod workflow {
        portal_core::workflow_store_conformance!(async { Some(portal_adapters::memory::InMemoryWorkflowStore::new()) });
    }

    mod workflow_outbox {
        portal_core::workflow_outbox_conformance!(async {
            let log = portal_adapters::memory::InMemoryAuditLog::new();
            Some((
                portal_adapters::memory::InMemoryWorkflowStore::with_audit_log(log.clone()),
                log,
            ))
        });
    }

    mod journal {
        portal_core::journal_store_conformance!(async {
            Some(portal_adapters::observability::MemoryJournal::default())
        });
    }

    mod idempotency {
        portal_core::idempotency_store_conformance!(async {
            Some(portal_adapters::memory::InMemoryIdempotencyStore::new())
        });
    }
}

/// The webhook store clause `finished_attempts_are_recorded_together` can fail: a store
/// that records a batch attempt by attempt (as a `finish_attempts` looping over
/// `finish_attempt` would), stopping at the first failure, leaves the attempts before it
/// recorded, and the clause catches it.
mod non_atomic_webhooks {
    use async_trait::async_trait;
    use portal_adapters::memory::{InMemoryTenancyStore, InMemoryWebhookStore};
    use portal_core::audit::AuditEvent;
    use portal_core::ids::{OrgId, WebhookAttemptId, WebhookEndpointId};
    use portal_core::store::StoreError;
    use portal_core::webhooks::{
        Delivery, DeliveryAttempt, DisableRule, FinishedAttempt, NextStep, Replay, WebhookEndpoint, WebhookStore,
    };
    use time::OffsetDateTime;

    /// The in-memory store, but recording a batch of attempts one by one.
    struct OneByOne(InMemoryWebhookStore);

    #[async_trait]
    impl WebhookStore for OneByOne {
        async fn create_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
            self.0.create_endpoint(endpoint, event).await
        }
        async fn get_endpoint(&self, org: OrgId, id: WebhookEndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
            self.0.get_endpoint(org, id).await
        }
        async fn list_endpoints(
            &self,
            org: OrgId,
            after: Option<WebhookEndpointId>,
            limit: usize,
        ) -> Result<Vec<WebhookEndpoint>, StoreError> {
            self.0.list_endpoints(org, after, limit).await
        }
        async fn update_endpoint(&self, endpoint: &WebhookEndpoint, event: &AuditEvent) -> Result<(), StoreError> {
            self.0.update_endpoint(endpoint, event).await
        }
        async fn delete_endpoint(
            &self,
            org: OrgId,
            id: WebhookEndpointId,
            event: &AuditEvent,
        ) -> Result<(), StoreError> {
            self.0.delete_endpoint(org, id, event).await
        }
        async fn claim_due(
            &self,
            now: OffsetDateTime,
            lease_until: OffsetDateTime,
            limit: usize,
        ) -> Result<Vec<Delivery>, StoreError> {
            self.0.claim_due(now, lease_until, limit).await
        }
        async fn finish_attempt(
            &self,
            attempt: &DeliveryAttempt,
            next: NextStep,
            disable: Option<DisableRule>,
        ) -> Result<bool, StoreError> {
            self.0.finish_attempt(attempt, next, disable).await
        }
        /// The defect: each attempt in its own step, so a failure leaves those before it.
        async fn finish_attempts(&self, finished: &[FinishedAttempt]) -> Result<Vec<bool>, StoreError> {
            let mut disabled = Vec::with_capacity(finished.len());
            for one in finished {
                disabled.push(
                    self.0
                        .finish_attempt(&one.attempt, one.next, one.disable.clone())
                        .await?,
                );
            }
            Ok(disabled)
        }
        async fn list_attempts(
            &self,
            org: OrgId,
            endpoint: WebhookEndpointId,
            after: Option<WebhookAttemptId>,
            limit: usize,
        ) -> Result<Vec<DeliveryAttempt>, StoreError> {
            self.0.list_attempts(org, endpoint, after, limit).await
        }
        async fn replay(
            &self,
            org: OrgId,
            endpoint: WebhookEndpointId,
            replay: Replay,
            now: OffsetDateTime,
        ) -> Result<u64, StoreError> {
            self.0.replay(org, endpoint, replay, now).await
        }
    }

    #[tokio::test]
    async fn the_clause_fails_a_store_that_records_attempts_one_by_one() {
        let tenancy = InMemoryTenancyStore::default();
        let store = OneByOne(InMemoryWebhookStore::new(tenancy.audit_log()));
        let run = tokio::spawn(async move {
            portal_core::testing::webhooks::finished_attempts_are_recorded_together(&tenancy, &store).await;
        })
        .await;
        let failure = run.expect_err("the clause refuses a store that records one by one");
        let message = failure.into_panic();
        let message = message
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| message.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(
            message.contains("nothing of the refused batch is logged"),
            "it fails where the first attempt of the refused batch was logged: {message}"
        );
    }
}

/// The joined session read's conformance on a SQLite pool: identity and tenancy stores
/// on the same database, as the reference servers build them.
#[cfg(feature = "sqlite")]
async fn sqlite_session_membership_reads(pool: portal_adapters::sqlite::SqlitePool) {
    let identity = portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone());
    let tenancy = portal_adapters::sqlite::SqliteTenancyStore::new(pool);
    portal_core::testing::identity::session_membership_reads_equal_the_two_reads(
        &identity, &identity, &tenancy, &identity,
    )
    .await;
}

#[cfg(feature = "sqlite")]
mod sqlite {
    mod webhooks {
        portal_core::webhook_store_conformance!(async {
            let pool = crate::common::fresh_sqlite_pool().await;
            Some((
                portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteWebhookStore::new(pool),
            ))
        });
    }

    mod audit {
        portal_core::audit_log_conformance!(async {
            let pool = crate::common::fresh_sqlite_pool().await;
            Some((
                portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    mod admin_audit {
        portal_core::admin_audit_conformance!(async {
            let pool = crate::common::fresh_sqlite_pool().await;
            Some((
                portal_adapters::sqlite::SqlitePolicyStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteSupportGrantStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    mod passkey {
        portal_core::passkey_store_conformance!(async {
            let pool = crate::common::fresh_sqlite_pool().await;
            Some((
                std::sync::Arc::new(portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone())),
                portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    mod identity_audit {
        portal_core::identity_audit_conformance!(async {
            let pool = crate::common::fresh_sqlite_pool().await;
            Some((
                std::sync::Arc::new(portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone())),
                portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    portal_core::tenancy_store_conformance!(async { Some(crate::common::fresh_sqlite_store().await) });
    portal_core::policy_store_conformance!(async { Some(crate::common::fresh_sqlite_policy_store().await) });

    mod support {
        portal_core::support_grant_store_conformance!(async {
            Some(crate::common::fresh_sqlite_support_store().await)
        });
    }

    mod email_change {
        portal_core::email_change_store_conformance!(async {
            let pool = crate::common::fresh_sqlite_pool().await;
            Some((
                portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
                std::sync::Arc::new(portal_adapters::sqlite::SqliteTenancyStore::new(pool)),
            ))
        });
    }

    mod identity {
        portal_core::identity_store_conformance!(async {
            Some(portal_adapters::sqlite::SqliteIdentityStore::new(
                crate::common::fresh_sqlite_pool().await,
            ))
        });

        #[tokio::test]
        async fn session_membership_reads_equal_the_two_reads() {
            crate::sqlite_session_membership_reads(crate::common::fresh_sqlite_pool().await).await;
        }
    }
    mod external_identity {
        portal_core::external_identity_store_conformance!(async {
            Some(crate::common::fresh_sqlite_external_identity_store().await)
        });
    }
    mod scim {
        portal_core::scim_store_conformance!(async {
            Some(portal_adapters::sqlite::SqliteScimStore::new(
                crate::common::fresh_sqlite_pool().await,
            ))
        });
    }

    mod workflow {
        portal_core::workflow_store_conformance!(async { Some(crate::common::fresh_sqlite_workflow_store().await) });
    }

    mod workflow_outbox {
        portal_core::workflow_outbox_conformance!(async {
            let pool = crate::common::fresh_sqlite_pool().await;
            Some((
                portal_adapters::sqlite::SqliteWorkflowStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    mod journal {
        portal_core::journal_store_conformance!(async { Some(crate::common::fresh_sqlite_journal().await) });
    }

    mod idempotency {
        portal_core::idempotency_store_conformance!(async {
            Some(portal_adapters::sqlite::SqliteIdempotencyStore::new(
                crate::common::fresh_sqlite_pool().await,
            ))
        });
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_file {
    mod webhooks {
        portal_core::webhook_store_conformance!(async {
            let pool = crate::common::fresh_sqlite_file_pool().await;
            Some((
                portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteWebhookStore::new(pool),
            ))
        });
    }

    mod audit {
        portal_core::audit_log_conformance!(async {
            let pool = crate::common::fresh_sqlite_file_pool().await;
            Some((
                portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    mod admin_audit {
        portal_core::admin_audit_conformance!(async {
            let pool = crate::common::fresh_sqlite_file_pool().await;
            Some((
                portal_adapters::sqlite::SqlitePolicyStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteSupportGrantStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    mod passkey {
        portal_core::passkey_store_conformance!(async {
            let pool = crate::common::fresh_sqlite_file_pool().await;
            Some((
                std::sync::Arc::new(portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone())),
                portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    mod identity_audit {
        portal_core::identity_audit_conformance!(async {
            let pool = crate::common::fresh_sqlite_file_pool().await;
            Some((
                std::sync::Arc::new(portal_adapters::sqlite::SqliteTenancyStore::new(pool.clone())),
                portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    portal_core::tenancy_store_conformance!(async { Some(crate::common::fresh_sqlite_file_store().await) });
    portal_core::policy_store_conformance!(async { Some(crate::common::fresh_sqlite_file_policy_store().await) });

    mod support {
        portal_core::support_grant_store_conformance!(async {
            Some(crate::common::fresh_sqlite_file_support_store().await)
        });
    }

    mod email_change {
        portal_core::email_change_store_conformance!(async {
            let pool = crate::common::fresh_sqlite_file_pool().await;
            Some((
                portal_adapters::sqlite::SqliteIdentityStore::new(pool.clone()),
                std::sync::Arc::new(portal_adapters::sqlite::SqliteTenancyStore::new(pool)),
            ))
        });
    }

    mod identity {
        portal_core::identity_store_conformance!(async {
            Some(portal_adapters::sqlite::SqliteIdentityStore::new(
                crate::common::fresh_sqlite_file_pool().await,
            ))
        });

        #[tokio::test]
        async fn session_membership_reads_equal_the_two_reads() {
            crate::sqlite_session_membership_reads(crate::common::fresh_sqlite_file_pool().await).await;
        }
    }
    mod external_identity {
        portal_core::external_identity_store_conformance!(async {
            Some(crate::common::fresh_sqlite_file_external_identity_store().await)
        });
    }
    mod scim {
        portal_core::scim_store_conformance!(async {
            Some(portal_adapters::sqlite::SqliteScimStore::new(
                crate::common::fresh_sqlite_file_pool().await,
            ))
        });
    }

    mod workflow {
        portal_core::workflow_store_conformance!(async {
            Some(crate::common::fresh_sqlite_file_workflow_store().await)
        });
    }

    mod workflow_outbox {
        portal_core::workflow_outbox_conformance!(async {
            let pool = crate::common::fresh_sqlite_file_pool().await;
            Some((
                portal_adapters::sqlite::SqliteWorkflowStore::new(pool.clone()),
                portal_adapters::sqlite::SqliteAuditLog::new(pool),
            ))
        });
    }

    mod journal {
        portal_core::journal_store_conformance!(async { Some(crate::common::fresh_sqlite_file_journal().await) });
    }

    mod idempotency {
        portal_core::idempotency_store_conformance!(async {
            Some(portal_adapters::sqlite::SqliteIdempotencyStore::new(
                crate::common::fresh_sqlite_file_pool().await,
            ))
        });
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    mod webhooks {
        portal_core::webhook_store_conformance!(async {
            crate::common::fresh_pg_pool().await.map(|pool| {
                (
                    portal_adapters::postgres::PgTenancyStore::new(pool.clone()),
                    portal_adapters::postgres::PgWebhookStore::new(pool),
                )
            })
        });
    }

    mod passkey {
        portal_core::passkey_store_conformance!(async {
            crate::common::fresh_pg_pool().await.map(|pool| {
                (
                    std::sync::Arc::new(portal_adapters::postgres::PgTenancyStore::new(pool.clone())),
                    portal_adapters::postgres::PgIdentityStore::new(pool.clone()),
                    portal_adapters::postgres::PgAuditLog::new(pool),
                )
            })
        });
    }

    mod identity_audit {
        portal_core::identity_audit_conformance!(async {
            crate::common::fresh_pg_pool().await.map(|pool| {
                (
                    std::sync::Arc::new(portal_adapters::postgres::PgTenancyStore::new(pool.clone())),
                    portal_adapters::postgres::PgIdentityStore::new(pool.clone()),
                    portal_adapters::postgres::PgAuditLog::new(pool),
                )
            })
        });
    }

    mod audit {
        portal_core::audit_log_conformance!(async {
            crate::common::fresh_pg_pool().await.map(|pool| {
                (
                    portal_adapters::postgres::PgTenancyStore::new(pool.clone()),
                    portal_adapters::postgres::PgAuditLog::new(pool),
                )
            })
        });
    }

    mod admin_audit {
        portal_core::admin_audit_conformance!(async {
            let schema = crate::common::fresh_pg_schema().await?;
            let pool = crate::common::fresh_pg_pool_with(&schema, crate::common::pg_pool_options()).await;
            Some((
                portal_adapters::postgres::PgPolicyStore::new(pool.clone())
                    .with_channel(crate::common::schema_channel(&schema)),
                portal_adapters::postgres::PgIdentityStore::new(pool.clone()),
                portal_adapters::postgres::PgSupportGrantStore::new(pool.clone()),
                portal_adapters::postgres::PgAuditLog::new(pool),
            ))
        });
    }

    portal_core::tenancy_store_conformance!(crate::common::fresh_pg_store());
    portal_core::policy_store_conformance!(crate::common::fresh_pg_policy_store());

    mod support {
        portal_core::support_grant_store_conformance!(crate::common::fresh_pg_support_store());
    }

    mod email_change {
        portal_core::email_change_store_conformance!(async {
            crate::common::fresh_pg_pool().await.map(|pool| {
                (
                    portal_adapters::postgres::PgIdentityStore::new(pool.clone()),
                    std::sync::Arc::new(portal_adapters::postgres::PgTenancyStore::new(pool)),
                )
            })
        });
    }

    mod identity {
        portal_core::identity_store_conformance!(async {
            crate::common::fresh_pg_pool()
                .await
                .map(portal_adapters::postgres::PgIdentityStore::new)
        });

        #[tokio::test]
        async fn session_membership_reads_equal_the_two_reads() {
            let Some(pool) = crate::common::fresh_pg_pool().await else {
                return;
            };
            let identity = portal_adapters::postgres::PgIdentityStore::new(pool.clone());
            let tenancy = portal_adapters::postgres::PgTenancyStore::new(pool);
            portal_core::testing::identity::session_membership_reads_equal_the_two_reads(
                &identity, &identity, &tenancy, &identity,
            )
            .await;
        }
    }
    mod external_identity {
        portal_core::external_identity_store_conformance!(crate::common::fresh_pg_external_identity_store());
    }
    mod scim {
        portal_core::scim_store_conformance!(async {
            crate::common::fresh_pg_pool()
                .await
                .map(portal_adapters::postgres::PgScimStore::new)
        });
    }

    mod workflow {
        portal_core::workflow_store_conformance!(crate::common::fresh_pg_workflow_store());
    }

    mod workflow_outbox {
        portal_core::workflow_outbox_conformance!(async {
            crate::common::fresh_pg_pool().await.map(|pool| {
                (
                    portal_adapters::postgres::PgWorkflowStore::new(pool.clone()),
                    portal_adapters::postgres::PgAuditLog::new(pool),
                )
            })
        });
    }

    mod journal {
        portal_core::journal_store_conformance!(crate::common::fresh_pg_journal());
    }

    mod idempotency {
        portal_core::idempotency_store_conformance!(async {
            crate::common::fresh_pg_pool()
                .await
                .map(portal_adapters::postgres::PgIdempotencyStore::new)
        });
    }
}
