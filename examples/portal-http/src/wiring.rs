//! Builds the whole portal behind the API from one database URL: every store on SQLite
//! (the default, a file migrated at start) or on Postgres (`postgres://…`), the
//! casbin-backed authorizer loaded from the policy store (seeded with the built-in roles
//! when empty), the identity service, the shipped workflow definitions, support grants,
//! and the diagnostics journal behind a buffered sink that triage reads back (with the
//! identity store's sessions in support bundles), webhooks, and (when
//! [`WebhookSettings::deliver`] is on) a webhook delivery worker on the same database.

use std::sync::Arc;

use portal_adapters::counted::{Counted, StoreCalls};
use portal_adapters::mail::{FolderMailer, SmtpConfig, SmtpMailer};
use portal_adapters::observability::{
    BufferConfig, BufferedJournalSink, FanOutSink, FlushingJournal, JournalWriter, MemoryJournal, TracingSink,
};
use portal_adapters::webhooks::{DeliveryConfig, DeliveryWorker};
use portal_adapters::{postgres, sqlite};
use portal_auth::CasbinAuthorizer;
use portal_auth::casbin_authz::builtin_policy;
use portal_auth::identity::{
    DEFAULT_HASH_WAIT, EmailChange, EmailVerification, HashLimit, IdentityService, IdentityStores,
    KnownBreachedPasswords, Mfa, Passkeys, PasswordParams, PasswordReset, SignUp, SignUpPolicy,
};
use portal_auth::sync::Following;
use portal_core::audit::AuditLog;
use portal_core::context::ServiceName;
use portal_core::diagnostics::{DiagnosticSink, Journal};
use portal_core::gate::Gate;
use portal_core::idempotency::IdempotencyStore;
use portal_core::identity::{
    EmailChangeStore, EmailVerificationStore, ExternalIdentityStore, MfaPolicyStore, OneTimeTokenStore, PasskeyStore,
    SessionMembershipStore, SessionStore, TotpFactorStore,
};
use portal_core::ids::{OrgId, RandomIds, UserId};
use portal_core::mail::Mailer;
use portal_core::policy::AuditedPolicyStore;
use portal_core::scim::{ScimService, ScimStore};
use portal_core::store::{MAX_PAGE_SIZE, StoreError};
use portal_core::support::SupportGrantStore;
use portal_core::tenancy::{ApiVersionStore, TenancyStore};
use portal_core::time::{Clock as _, SystemClock};
use portal_core::triage::{SessionDirectory, SessionSummary, TriageConfig};
use portal_core::webhooks::{UrlPolicy, WebhookConfig, WebhookStore};
use portal_core::workflow::{WorkflowStore, catalog};
use portal_core::{ErrorCode, Portal, PortalError, Principal};

use crate::api::{Api, HttpConfig};
use crate::bearer::BearerSettings;

/// Where the portal keeps its data and how the HTTP layer behaves.
///
/// Its `Debug` shows the database URL without its password ([`redact_url`]).
#[derive(Clone)]
pub struct PortalConfig {
    /// `sqlite://path.db` (created if missing), `sqlite::memory:`, or `postgres://…`.
    pub database_url: String,
    /// argon2 parameters; `None` keeps the identity service's defaults (19 MiB, 2
    /// passes). Tests pass light ones.
    pub password_params: Option<PasswordParams>,
    /// How many password hashes may run at once; `None` sizes it to the machine (one per
    /// core). Past it a sign-in waits a moment, then answers `503 service.busy`.
    pub hash_concurrency: Option<usize>,
    /// Also send diagnostic events to `tracing` (the journal always gets them).
    pub trace_events: bool,
    /// The HTTP settings.
    pub http: HttpConfig,
    /// How password-reset links and password notices are mailed.
    pub mail: MailSettings,
    /// The page a password-reset link opens, the token added as `?token=`.
    pub reset_link: String,
    /// The page an email-verification link opens, the token added as `?token=`.
    pub verify_link: String,
    /// The page a change-of-email link opens, the token added as `?token=`.
    pub email_change_link: String,
    /// The page a sign-up link opens, the token added as `?token=`.
    pub sign_up_link: String,
    /// Who may sign up by asking ([`SignUpPolicy::InvitationOnly`] by default).
    pub sign_up_policy: SignUpPolicy,
    /// How OIDC/JWT bearer tokens are accepted; `None` accepts none (the default).
    pub bearer: Option<BearerSettings>,
    /// When set, every store is wrapped in a [`Counted`] decorator tallying its calls here
    /// (the pages' test of store calls per page reads it); `None` in a real server.
    pub store_calls: Option<StoreCalls>,
    /// Webhook endpoints' allowed hosts and the delivery worker.
    pub webhooks: WebhookSettings,
    /// The origin pages are served on, which passkeys are bound to (its host is the
    /// relying party id): `http://localhost:3000` by default (browsers take plain `http`
    /// for passkeys on `localhost` only, and never an IP address).
    pub passkey_origin: String,
    /// Where the diagnostics journal is kept ([`JournalPlacement::Beside`] by default).
    pub journal: JournalPlacement,
    /// How the journal's writer buffers and batches events ([`BufferConfig::default`]:
    /// 10,000 events, batches of up to 500, a look every 10 ms while events come in).
    pub journal_buffer: BufferConfig,
}

/// Where the diagnostics journal is kept.
///
/// On SQLite the journal is the busiest writer (every request files its events), and a
/// journal in the portal's own file pays twice on the request path: its batches take
/// turns at the one write lock with the business writes, and each of its commits makes
/// every pooled connection that reads next drop its page cache and read the pages
/// again. In a database of its own, neither happens (`docs/benchmarks.md`, "HTTP").
/// Triage reads the journal alone (by request id, org or actor, never joined with the
/// business tables), so nothing needs the two in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum JournalPlacement {
    /// On SQLite, a database of its own beside the portal's ([`journal_url_beside`]:
    /// `portal.journal.db` next to `portal.db`, another in-memory database beside an
    /// in-memory one), opened with `sqlite::connect_journal` (16 KiB pages, temporary
    /// files in memory) and migrated with `sqlite::migrate_journal`. On Postgres, the
    /// portal's database (its writers do not take turns, nor do its commits empty the
    /// readers' caches). The default.
    #[default]
    Beside,
    /// The portal's own database, whatever the backend.
    Shared,
    /// This process's memory (`MemoryJournal`, at most 100,000 events, lost at exit):
    /// triage works within the process. For measurements (the HTTP benchmark's ceiling
    /// without a journal on disk) and tests, not for a server.
    Memory,
}

/// The URL of the SQLite database a [`JournalPlacement::Beside`] journal takes beside
/// the SQLite database at `url`: the file's name with `.journal` before its `.db`
/// extension (or `.journal.db` added), the URL's query kept; `sqlite::memory:` (a
/// database of its own) beside an in-memory database.
pub fn journal_url_beside(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return "sqlite::memory:".to_owned();
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let file = match base.strip_suffix(".db") {
        Some(stem) => format!("{stem}.journal.db"),
        None => format!("{base}.journal.db"),
    };
    match query {
        Some(query) => format!("{file}?{query}"),
        None => file,
    }
}

/// How the reference server handles webhooks.
#[derive(Debug, Clone, Default)]
pub struct WebhookSettings {
    /// Hosts an endpoint URL may name beyond the public internet: reached over plain
    /// `http` and at loopback, private or link-local addresses. None by default; tests
    /// allow `127.0.0.1` explicitly. Both the endpoints' validation and the worker's
    /// resolver use it.
    pub allowed_hosts: Vec<String>,
    /// Run a [`DeliveryWorker`] beside the API on the same database (the reference
    /// servers do; off by default, so a test that delivers nothing polls nothing). On
    /// Postgres it wakes on `LISTEN portal_webhooks`.
    pub deliver: bool,
    /// The worker's settings; its `url_policy` is replaced by
    /// [`allowed_hosts`](Self::allowed_hosts).
    pub delivery: DeliveryConfig,
}

impl WebhookSettings {
    fn url_policy(&self) -> UrlPolicy {
        UrlPolicy {
            allowed_hosts: self.allowed_hosts.clone(),
        }
    }
}

/// How the reference server sends mail.
#[derive(Debug, Clone)]
pub enum MailSettings {
    /// Write each message to a file in this folder and log its path (the default:
    /// `<temp dir>/portal-mail`), so a demo works offline.
    Folder(std::path::PathBuf),
    /// Send over SMTP.
    Smtp(SmtpConfig),
}

impl MailSettings {
    fn mailer(&self, from: &str) -> Result<Arc<dyn Mailer>, PortalError> {
        let mailer: Arc<dyn Mailer> = match self {
            MailSettings::Folder(folder) => Arc::new(FolderMailer::new(folder, from)?),
            MailSettings::Smtp(config) => Arc::new(SmtpMailer::new(config.clone())?),
        };
        Ok(mailer)
    }
}

/// The sender of the development mailer's messages.
const FOLDER_SENDER: &str = "Portal <no-reply@portal.invalid>";

impl PortalConfig {
    /// SQLite at `database_url` (or Postgres, by the URL's scheme) with default settings.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            password_params: None,
            hash_concurrency: None,
            trace_events: false,
            http: HttpConfig::default(),
            mail: MailSettings::Folder(std::env::temp_dir().join("portal-mail")),
            reset_link: "http://127.0.0.1:3000/reset-password".to_owned(),
            verify_link: "http://127.0.0.1:3000/verify-email".to_owned(),
            email_change_link: "http://127.0.0.1:3000/confirm-email-change".to_owned(),
            sign_up_link: "http://127.0.0.1:3000/sign-up".to_owned(),
            sign_up_policy: SignUpPolicy::InvitationOnly,
            bearer: None,
            store_calls: None,
            webhooks: WebhookSettings::default(),
            passkey_origin: "http://localhost:3000".to_owned(),
            journal: JournalPlacement::default(),
            journal_buffer: BufferConfig::default(),
        }
    }

    /// The database URL without its password, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.database_url)
    }

    /// Whether the URL names a Postgres database.
    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://") || self.database_url.starts_with("postgresql://")
    }
}

impl std::fmt::Debug for PortalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalConfig")
            .field("database_url", &self.redacted_url())
            .field("password_params", &self.password_params)
            .field("hash_concurrency", &self.hash_concurrency)
            .field("trace_events", &self.trace_events)
            .field("http", &self.http)
            .field("mail", &self.mail)
            .field("reset_link", &self.reset_link)
            .field("verify_link", &self.verify_link)
            .field("email_change_link", &self.email_change_link)
            .field("sign_up_link", &self.sign_up_link)
            .field("sign_up_policy", &self.sign_up_policy)
            .field("bearer", &self.bearer)
            .field("store_calls", &self.store_calls.is_some())
            .field("webhooks", &self.webhooks)
            .field("journal", &self.journal)
            .field("journal_buffer", &self.journal_buffer)
            .finish()
    }
}

/// `url` with the password of its user information replaced by `***`
/// (`postgres://app:***@db/portal`); URLs without one are returned as they are.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
        None => url.to_owned(),
    }
}

/// What runs beside the API and must be stopped with it: the journal writer (flushed
/// on shutdown), the pruning of failed sign-ins too old to count and of audit events past
/// their org's retention (every [`PRUNE_EVERY`]), the webhook delivery worker when configured and, on Postgres, the
/// policy follower that keeps replicas in step.
pub struct Background {
    writer: JournalWriter,
    journal_sink: Arc<dyn DiagnosticSink>,
    following: Option<Following>,
    pruning: tokio::task::JoinHandle<()>,
    delivery: Option<Delivering>,
    database: Database,
    journal_database: Option<Database>,
}

/// A running delivery worker and the signal that stops it.
struct Delivering {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts a [`DeliveryWorker`] over `store`, woken by `LISTEN` on Postgres and by this
/// process's commits that queued deliveries on SQLite.
fn spawn_delivery(
    store: Arc<dyn WebhookStore>,
    settings: &WebhookSettings,
    database: &Database,
) -> Result<Delivering, PortalError> {
    let mut config = settings.delivery.clone();
    config.url_policy = settings.url_policy();
    let mut worker = DeliveryWorker::new(store, config).map_err(|err| {
        PortalError::new(ErrorCode::Internal, "the webhook delivery client could not be built").with_source(err)
    })?;
    worker = worker.with_wakeups(match database {
        Database::Postgres(pool) => postgres::webhook_wakeups(pool.clone()),
        Database::Sqlite(pool) => sqlite::webhook_wakeups(pool),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    Ok(Delivering { stop, task })
}

/// How often the server forgets failed sign-ins that left the throttle window
/// ([`IdentityService::prune_login_failures`]).
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Prunes old failed sign-ins, expired passkey ceremonies, expired `Idempotency-Key`
/// records and audit events past their org's retention every [`PRUNE_EVERY`], the first time at once; a failure is
/// logged and tried again at the next tick.
fn spawn_pruning(
    portal: Portal,
    identity: IdentityService,
    idempotency: Arc<dyn IdempotencyStore>,
    audit: Arc<dyn AuditLog>,
    actor: Principal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PRUNE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let ctx = portal.context(actor.clone()).build();
            match identity.prune_login_failures(&ctx).await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "forgot failed sign-ins older than the throttle window"),
                Err(err) => tracing::warn!(code = %err.code(), "pruning failed sign-ins failed: {err}"),
            }
            match identity.prune_passkey_ceremonies(&ctx).await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "deleted expired passkey ceremonies"),
                Err(err) => tracing::warn!(code = %err.code(), "deleting expired passkey ceremonies failed: {err}"),
            }
            match idempotency.purge_expired(portal.clock().now()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "deleted expired idempotency records"),
                Err(err) => tracing::warn!(error = %err, "deleting expired idempotency records failed"),
            }
            match audit.purge_expired(portal.clock().now()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "deleted audit events past their org's retention"),
                Err(err) => tracing::warn!(error = %err, "deleting audit events past their retention failed"),
            }
        }
    })
}

/// The database behind the stores.
#[derive(Debug, Clone)]
pub enum Database {
    /// SQLite.
    Sqlite(sqlite::SqlitePool),
    /// Postgres.
    Postgres(postgres::PgPool),
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("writer", &self.writer)
            .field("following", &self.following.is_some())
            .field("delivery", &self.delivery.is_some())
            .field("database", &self.database)
            .field("journal_database", &self.journal_database)
            .finish_non_exhaustive()
    }
}

impl Background {
    /// The sink that writes to the diagnostics journal (buffered), for the host's own
    /// events, such as `portal_adapters::observability::JournalLayer` filing the server's
    /// request spans and logs under their request ids.
    pub fn journal_sink(&self) -> Arc<dyn DiagnosticSink> {
        self.journal_sink.clone()
    }

    /// Waits until every diagnostic event recorded so far is in the journal (triage
    /// reads the journal, so tests flush before asking it).
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The journal's own database, when it has one ([`JournalPlacement::Beside`] on
    /// SQLite).
    pub fn journal_database(&self) -> Option<&Database> {
        self.journal_database.as_ref()
    }

    /// Flushes the journal, stops the follower, the pruning and the delivery worker (its
    /// attempts in flight finish first), and closes the pool.
    pub async fn shutdown(self) {
        if let Some(following) = self.following {
            following.stop();
        }
        self.pruning.abort();
        if let Some(delivery) = self.delivery {
            let _ = delivery.stop.send(());
            let _ = delivery.task.await;
        }
        self.writer.shutdown().await;
        for database in std::iter::once(self.database).chain(self.journal_database) {
            match database {
                Database::Sqlite(pool) => pool.close().await,
                Database::Postgres(pool) => pool.close().await,
            }
        }
    }
}

/// The identity store as the keeper of TOTP factors and of orgs' MFA policies.
struct MfaStores {
    factors: Arc<dyn TotpFactorStore>,
    policies: Arc<dyn MfaPolicyStore>,
}

/// The name authenticator apps show beside a user's account.
pub const MFA_ISSUER: &str = "portal-core";

struct Stores {
    tenancy: Arc<dyn TenancyStore>,
    /// The tenancy store again, as the keeper of orgs' API version pins.
    api_versions: Arc<dyn ApiVersionStore>,
    identity: IdentityStores,
    /// The identity store again, as the keeper of password-reset tokens.
    tokens: Arc<dyn OneTimeTokenStore>,
    /// The identity store again, as the keeper of email-verification tokens.
    verification: Arc<dyn EmailVerificationStore>,
    /// The identity store again, as the keeper of change-of-email tokens and the switch
    /// (it shares the tenancy store's database).
    email_change: Arc<dyn EmailChangeStore>,
    /// The identity store again, as the keeper of TOTP factors and orgs' MFA policies.
    mfa: MfaStores,
    /// The identity store again, as the keeper of passkeys and their ceremonies.
    passkeys: Arc<dyn PasskeyStore>,
    /// The identity store again, as the one-statement session-and-membership read (it
    /// shares the tenancy store's pool).
    session_memberships: Arc<dyn SessionMembershipStore>,
    workflows: Arc<dyn WorkflowStore>,
    policy: Arc<dyn AuditedPolicyStore>,
    support: Arc<dyn SupportGrantStore>,
    journal: Arc<dyn Journal>,
    /// The customer audit log the stores above write in their transactions.
    audit: Arc<dyn AuditLog>,
    scim: Arc<dyn ScimStore>,
    /// The `Idempotency-Key` records, shared by every server on the database.
    idempotency: Arc<dyn IdempotencyStore>,
    /// The links of bearer-token identities to users.
    external: Arc<dyn ExternalIdentityStore>,
    /// Webhook endpoints, deliveries and attempts (the outbox's fan-out).
    webhooks: Arc<dyn WebhookStore>,
    /// The same webhook store for the delivery worker, never counted (it polls).
    delivery: Arc<dyn WebhookStore>,
}

impl Stores {
    /// Every store wrapped in [`Counted`], tallying in `calls`.
    fn counted(self, calls: &StoreCalls) -> Self {
        let count = calls.clone();
        Self {
            tenancy: Arc::new(Counted::new(self.tenancy, count.clone())),
            api_versions: Arc::new(Counted::new(self.api_versions, count.clone())),
            identity: IdentityStores {
                credentials: Arc::new(Counted::new(self.identity.credentials, count.clone())),
                sessions: Arc::new(Counted::new(self.identity.sessions, count.clone())),
                api_keys: Arc::new(Counted::new(self.identity.api_keys, count.clone())),
                attempts: Arc::new(Counted::new(self.identity.attempts, count.clone())),
            },
            tokens: Arc::new(Counted::new(self.tokens, count.clone())),
            session_memberships: Arc::new(Counted::new(self.session_memberships, count.clone())),
            workflows: Arc::new(Counted::new(self.workflows, count.clone())),
            policy: Arc::new(Counted::new(self.policy, count.clone())),
            support: Arc::new(Counted::new(self.support, count.clone())),
            journal: Arc::new(Counted::new(self.journal, count.clone())),
            audit: Arc::new(Counted::new(self.audit, count.clone())),
            scim: Arc::new(Counted::new(self.scim, count.clone())),
            idempotency: Arc::new(Counted::new(self.idempotency, count.clone())),
            verification: Arc::new(Counted::new(self.verification, count.clone())),
            email_change: Arc::new(Counted::new(self.email_change, count.clone())),
            mfa: MfaStores {
                factors: Arc::new(Counted::new(self.mfa.factors, count.clone())),
                policies: Arc::new(Counted::new(self.mfa.policies, count.clone())),
            },
            passkeys: Arc::new(Counted::new(self.passkeys, count.clone())),
            external: Arc::new(Counted::new(self.external, count.clone())),
            webhooks: Arc::new(Counted::new(self.webhooks, count)),
            delivery: self.delivery,
        }
    }
}

/// The stores, the database and the journal's own database if it has one.
async fn open(config: &PortalConfig) -> Result<(Stores, Database, Option<Database>), PortalError> {
    let (mut stores, database) = open_stores(config).await?;
    let journal_database = match (&config.journal, &database) {
        (JournalPlacement::Shared, _) | (JournalPlacement::Beside, Database::Postgres(_)) => None,
        (JournalPlacement::Memory, _) => {
            stores.journal = Arc::new(MemoryJournal::default());
            None
        }
        (JournalPlacement::Beside, Database::Sqlite(_)) => {
            let pool = sqlite::connect_journal(&journal_url_beside(&config.database_url)).await?;
            sqlite::migrate_journal(&pool).await?;
            stores.journal = Arc::new(sqlite::SqliteJournal::new(pool.clone()));
            Some(Database::Sqlite(pool))
        }
    };
    match &config.store_calls {
        Some(calls) => Ok((stores.counted(calls), database, journal_database)),
        None => Ok((stores, database, journal_database)),
    }
}

async fn open_stores(config: &PortalConfig) -> Result<(Stores, Database), PortalError> {
    if config.is_postgres() {
        let pool = postgres::connect(&config.database_url).await?;
        postgres::migrate(&pool).await?;
        let identity = Arc::new(postgres::PgIdentityStore::new(pool.clone()));
        let tenancy = Arc::new(postgres::PgTenancyStore::new(pool.clone()));
        let webhooks: Arc<dyn WebhookStore> = Arc::new(postgres::PgWebhookStore::new(pool.clone()));
        let stores = Stores {
            tenancy: tenancy.clone(),
            api_versions: tenancy,
            identity: IdentityStores::from_one(identity.clone()),
            tokens: identity.clone(),
            verification: identity.clone(),
            email_change: identity.clone(),
            mfa: MfaStores {
                factors: identity.clone(),
                policies: identity.clone(),
            },
            passkeys: identity.clone(),
            session_memberships: identity,
            workflows: Arc::new(postgres::PgWorkflowStore::new(pool.clone())),
            policy: Arc::new(postgres::PgPolicyStore::new(pool.clone())),
            support: Arc::new(postgres::PgSupportGrantStore::new(pool.clone())),
            journal: Arc::new(postgres::PgJournal::new(pool.clone())),
            audit: Arc::new(postgres::PgAuditLog::new(pool.clone())),
            scim: Arc::new(postgres::PgScimStore::new(pool.clone())),
            idempotency: Arc::new(postgres::PgIdempotencyStore::new(pool.clone())),
            external: Arc::new(postgres::PgExternalIdentityStore::new(pool.clone())),
            webhooks: webhooks.clone(),
            delivery: webhooks,
        };
        Ok((stores, Database::Postgres(pool)))
    } else if config.database_url.starts_with("sqlite:") {
        let pool = sqlite::connect(&config.database_url).await?;
        sqlite::migrate(&pool).await?;
        let identity = Arc::new(sqlite::SqliteIdentityStore::new(pool.clone()));
        let tenancy = Arc::new(sqlite::SqliteTenancyStore::new(pool.clone()));
        let webhooks: Arc<dyn WebhookStore> = Arc::new(sqlite::SqliteWebhookStore::new(pool.clone()));
        let stores = Stores {
            tenancy: tenancy.clone(),
            api_versions: tenancy,
            identity: IdentityStores::from_one(identity.clone()),
            tokens: identity.clone(),
            verification: identity.clone(),
            email_change: identity.clone(),
            mfa: MfaStores {
                factors: identity.clone(),
                policies: identity.clone(),
            },
            passkeys: identity.clone(),
            session_memberships: identity,
            workflows: Arc::new(sqlite::SqliteWorkflowStore::new(pool.clone())),
            policy: Arc::new(sqlite::SqlitePolicyStore::new(pool.clone())),
            support: Arc::new(sqlite::SqliteSupportGrantStore::new(pool.clone())),
            journal: Arc::new(sqlite::SqliteJournal::new(pool.clone())),
            audit: Arc::new(sqlite::SqliteAuditLog::new(pool.clone())),
            scim: Arc::new(sqlite::SqliteScimStore::new(pool.clone())),
            idempotency: Arc::new(sqlite::SqliteIdempotencyStore::new(pool.clone())),
            external: Arc::new(sqlite::SqliteExternalIdentityStore::new(pool.clone())),
            webhooks: webhooks.clone(),
            delivery: webhooks,
        };
        Ok((stores, Database::Sqlite(pool)))
    } else {
        Err(PortalError::invalid_field(
            "DATABASE_URL",
            "the database URL must start with `sqlite:` or `postgres://`",
        ))
    }
}

/// Passkeys on `store`, bound to `origin` (its host is the relying party id).
///
/// # Errors
///
/// `validation.invalid_field` (`passkey_origin`) for an origin that is not a URL with a
/// domain name, or that passkeys cannot be bound to.
fn passkeys(store: Arc<dyn PasskeyStore>, origin: &str) -> Result<Passkeys, PortalError> {
    let host = url::Url::parse(origin)
        .ok()
        .and_then(|url| url.domain().map(str::to_owned))
        .ok_or_else(|| {
            PortalError::invalid_field(
                "passkey_origin",
                "the passkey origin must be a URL with a domain name (not an IP address)",
            )
        })?;
    Passkeys::new(store, &host, origin, MFA_ISSUER)
}

/// Opens the database named by `config`, migrates it, and builds the [`Api`] and what
/// runs beside it. Must be called inside a tokio runtime (it spawns the journal writer).
///
/// # Errors
///
/// `validation.invalid_field` (`DATABASE_URL`) for an unknown scheme; `storage.*` when
/// the database cannot be opened or migrated; `access.policy_failure` when the stored
/// policy does not load.
pub async fn connect(config: &PortalConfig) -> Result<(Api, Background), PortalError> {
    let (stores, database, journal_database) = open(config).await?;
    let (revision, lines) = stores.policy.load().await?;
    if lines.is_empty() {
        stores.policy.apply(&builtin_policy(), &[]).await?;
    }
    let authorizer = Arc::new(CasbinAuthorizer::from_store(&*stores.policy).await?);
    let following = match &database {
        Database::Postgres(pool) => {
            let listener = postgres::PgPolicyListener::connect(
                pool,
                postgres::NotifyChannel::default(),
                authorizer.revision().max(revision),
            )
            .await?;
            Some(portal_auth::sync::follow(listener, authorizer.clone()))
        }
        Database::Sqlite(_) => None,
    };
    let (buffered, writer) = BufferedJournalSink::spawn(stores.journal.clone(), config.journal_buffer.clone());
    let journal_sink: Arc<dyn DiagnosticSink> = Arc::new(buffered);
    let sink: Arc<dyn DiagnosticSink> = if config.trace_events {
        Arc::new(FanOutSink::new(vec![journal_sink.clone(), Arc::new(TracingSink)]))
    } else {
        journal_sink.clone()
    };
    let ids = Arc::new(RandomIds::default());
    let directory = Arc::new(StoreSessionDirectory {
        sessions: stores.identity.sessions.clone(),
        tenancy: stores.tenancy.clone(),
    });
    // One gate for every service, the identity service's included.
    // It keeps orgs' MFA policies too: a member without a second factor is refused in an
    // org that requires one.
    let gate = Gate::new(authorizer.clone(), sink.clone(), stores.tenancy.clone())
        .with_support_grants(stores.support.clone(), ids.clone())
        .with_mfa_policy(stores.mfa.policies.clone());
    let scim = ScimService::new(
        stores.scim,
        stores.tenancy.clone(),
        Some(stores.identity.sessions.clone()),
        gate.clone(),
        ids.clone(),
    );
    let from = match &config.mail {
        MailSettings::Smtp(smtp) => smtp.from.clone(),
        MailSettings::Folder(_) => FOLDER_SENDER.to_owned(),
    };
    let mailer = config.mail.mailer(&from)?;
    let reset = PasswordReset::new(stores.tokens.clone(), mailer.clone(), config.reset_link.clone());
    let mfa = Mfa {
        factors: stores.mfa.factors,
        challenges: stores.tokens,
        policies: stores.mfa.policies,
        issuer: MFA_ISSUER.to_owned(),
        challenge_lifetime: time::Duration::minutes(5),
    };
    let sign_up = SignUp::new(
        config.sign_up_policy.clone(),
        stores.verification.clone(),
        mailer.clone(),
        config.sign_up_link.clone(),
    );
    let email_change = EmailChange::new(stores.email_change, mailer.clone(), config.email_change_link.clone());
    let verification = EmailVerification::new(stores.verification, mailer, config.verify_link.clone());
    let mut identity = IdentityService::new(stores.identity, stores.tenancy.clone(), gate.clone(), ids.clone())
        .with_session_memberships(stores.session_memberships)
        .with_password_reset(reset)
        .with_email_verification(verification)
        .with_email_change(email_change)
        .with_sign_up(sign_up)
        .with_mfa(mfa)
        .with_passkeys(passkeys(stores.passkeys, &config.passkey_origin)?)
        .with_breach_check(Arc::new(KnownBreachedPasswords::common()));
    if let Some(bearer) = &config.bearer {
        let jwt = bearer.authenticator(
            stores.external,
            stores.tenancy.clone(),
            sink.clone(),
            ids.clone(),
            ServiceName::new("provisioning")?,
        )?;
        identity = identity.with_bearer(Arc::new(jwt));
    }
    if let Some(params) = config.password_params {
        identity = identity.with_password_params(params)?;
    }
    if let Some(permits) = config.hash_concurrency {
        identity = identity.with_hash_limit(HashLimit::new(permits, DEFAULT_HASH_WAIT)?);
    }
    let definitions = catalog::all().map_err(|err| {
        PortalError::new(ErrorCode::Internal, "a shipped workflow definition is invalid").with_source(err)
    })?;
    let portal = Portal::builder()
        .tenancy_store(stores.tenancy.clone())
        .gate(gate)
        .policy(stores.policy, authorizer)
        .authenticator(Arc::new(identity.clone()))
        .workflow_store(stores.workflows)
        .workflow_definitions(definitions)
        .support_grants(stores.support)
        .ids(ids)
        // Triage reads what every request recorded before the read, however long the
        // writer lingers.
        .journal(Arc::new(FlushingJournal::new(stores.journal, writer.flusher())))
        .triage_config(TriageConfig::default())
        .session_directory(directory)
        .audit_log(stores.audit.clone())
        .webhook_store(stores.webhooks)
        .webhook_config(WebhookConfig {
            url_policy: config.webhooks.url_policy(),
            ..WebhookConfig::default()
        })
        .build()?;
    let delivery = if config.webhooks.deliver {
        Some(spawn_delivery(stores.delivery, &config.webhooks, &database)?)
    } else {
        None
    };
    let maintenance = Principal::Service(ServiceName::new("maintenance")?);
    let pruning = spawn_pruning(
        portal.clone(),
        identity.clone(),
        stores.idempotency.clone(),
        stores.audit,
        maintenance,
    );
    let api = Api::new(portal, identity, stores.tenancy, scim, config.http.clone())?
        .with_idempotency_store(stores.idempotency)?
        .with_api_version_store(stores.api_versions)?;
    Ok((
        api,
        Background {
            writer,
            journal_sink,
            following,
            pruning,
            delivery,
            database,
            journal_database,
        },
    ))
}

/// Where support bundles find sessions: the identity store's live sessions (not revoked,
/// not past their absolute expiry) of one user, or of each of an org's first 200 members
/// (as many as a bundle lists).
struct StoreSessionDirectory {
    sessions: Arc<dyn SessionStore>,
    tenancy: Arc<dyn TenancyStore>,
}

#[async_trait::async_trait]
impl SessionDirectory for StoreSessionDirectory {
    async fn sessions(&self, org: Option<OrgId>, user: Option<UserId>) -> Result<Vec<SessionSummary>, StoreError> {
        let users = match (user, org) {
            // A second guard behind `TriageService::support_bundle`'s: in an org, only a
            // member's sessions, never another tenant's user's.
            (Some(user), Some(org)) => match self.tenancy.get_membership(org, user).await? {
                Some(_) => vec![user],
                None => Vec::new(),
            },
            (Some(user), None) => vec![user],
            (None, Some(org)) => self
                .tenancy
                .list_members(org, None, 200)
                .await?
                .iter()
                .map(|m| m.user)
                .collect(),
            (None, None) => Vec::new(),
        };
        let now = SystemClock.now();
        let mut summaries = Vec::new();
        for user in users {
            // Bounded like the members: a bundle holds each user's newest sessions.
            let sessions = self.sessions.list(user, now, None, MAX_PAGE_SIZE as usize).await?;
            summaries.extend(sessions.iter().map(|s| SessionSummary {
                id: s.id,
                user: s.user,
                created_at: s.created_at,
                expires_at: s.absolute_expires_at,
                revoked: s.revoked_at.is_some(),
            }));
        }
        Ok(summaries)
    }
}

#[cfg(test)]
mod tests {
    use super::{journal_url_beside, redact_url};

    #[test]
    fn the_journal_beside_a_sqlite_file_is_a_file_of_its_own() {
        assert_eq!(
            journal_url_beside("sqlite:///tmp/portal.db"),
            "sqlite:///tmp/portal.journal.db"
        );
        assert_eq!(
            journal_url_beside("sqlite://data/portal.db?mode=rwc"),
            "sqlite://data/portal.journal.db?mode=rwc"
        );
        assert_eq!(journal_url_beside("sqlite://portal"), "sqlite://portal.journal.db");
        // Beside an in-memory database, another one (sqlx names each `:memory:` pool's
        // database apart).
        assert_eq!(journal_url_beside("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(
            journal_url_beside("sqlite://file:demo?mode=memory&cache=shared"),
            "sqlite::memory:"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/portal?sslmode=require"),
            "postgres://app:***@db:5432/portal?sslmode=require"
        );
        assert_eq!(redact_url("postgres://app@db/portal"), "postgres://app@db/portal");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
