//! The webhook delivery worker: claims due deliveries from any [`WebhookStore`], signs
//! them as Standard Webhooks and POSTs them with reqwest.
//!
//! - **At least once, same id.** A claim leases a delivery ([`DeliveryConfig::lease`]);
//!   the worker marks it after the receiver answered. A worker that stops in between leaves
//!   it to be claimed again when the lease ends, and it is sent again with the same
//!   `webhook-id` (the audit event's id as `msg_…`).
//! - **Retries** follow [`RETRY_SCHEDULE`] with ±20% jitter, about three days; then the
//!   delivery is given up (a replay queues it again).
//! - **Disabling.** An endpoint whose every attempt failed for
//!   [`DeliveryConfig::disable_after`] (five days by default) is disabled, with a
//!   `webhook.endpoint_disabled` audit event in the same transaction.
//! - **Safety.** Each request has a timeout, bodies over [`DeliveryConfig::max_payload`]
//!   are not sent, redirects are not followed, and a resolver refuses private, loopback and
//!   link-local addresses for every host the [`UrlPolicy`] does not allow (checked on the
//!   resolved addresses, so a DNS name cannot point inside).
//! - **Ordering.** None is promised between messages, even to one endpoint: batches are
//!   sent concurrently and a failed message retries later while newer ones go on. Receivers
//!   order by the payload's `timestamp` and deduplicate by `webhook-id`.
//!
//! On Postgres, run as many workers as there are replicas: claims use `FOR UPDATE SKIP
//! LOCKED`, and [`with_wakeups`](DeliveryWorker::with_wakeups) with
//! `postgres::webhook_wakeups` wakes them on `LISTEN/NOTIFY`. On SQLite run one, in the
//! process that writes: `sqlite::webhook_wakeups` wakes it after each commit of that
//! process that queued deliveries; the poll interval finds other processes' deliveries.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use portal_core::audit::{ActorKind, AuditActor, AuditContext, AuditEvent, AuditTarget, actions};
use portal_core::ids::{AuditEventId, IdGenerator, RandomIds, RequestId, WebhookAttemptId};
use portal_core::store::StoreError;
use portal_core::time::{Clock, SystemClock, truncate_to_micros};
use portal_core::webhooks::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header};
use portal_core::webhooks::{
    AttemptStatus, Delivery, DeliveryAttempt, DisableRule, EndpointUrl, FinishedAttempt, NextStep, RETRY_SCHEDULE,
    UrlPolicy, WebhookStore, excerpt, is_forbidden_ip, message_body, retry_delay_in,
};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// How the worker delivers.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The whole request's time limit, answer included (10 s by default).
    pub timeout: Duration,
    /// The largest body sent (256 KiB by default); a larger one is given up.
    pub max_payload: usize,
    /// How long a claim holds a delivery before another worker may take it (60 s).
    pub lease: Duration,
    /// How many deliveries one claim takes (64).
    pub batch: usize,
    /// How long an idle worker waits before it looks again without a wake-up (1 s).
    pub poll_interval: Duration,
    /// How long an endpoint may fail every attempt before it is disabled (5 days).
    pub disable_after: time::Duration,
    /// Which hosts may be plain http and private addresses (none by default).
    pub url_policy: UrlPolicy,
    /// The delays between attempts ([`RETRY_SCHEDULE`] by default, about three days).
    pub schedule: Vec<time::Duration>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_payload: 256 * 1024,
            lease: Duration::from_secs(60),
            batch: 64,
            poll_interval: Duration::from_secs(1),
            disable_after: time::Duration::days(5),
            url_policy: UrlPolicy::default(),
            schedule: RETRY_SCHEDULE.to_vec(),
        }
    }
}

/// A resolver that drops forbidden addresses of hosts the policy does not allow.
#[derive(Debug, Clone)]
struct GuardedResolver {
    policy: UrlPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.allows(&host);
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| allowed || !is_forbidden_ip(addr.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!("`{host}` resolves only to forbidden addresses").into());
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

struct Inner {
    store: Arc<dyn WebhookStore>,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    config: DeliveryConfig,
    wake: Option<Arc<Notify>>,
}

/// Delivers webhook messages from a [`WebhookStore`].
#[derive(Clone)]
pub struct DeliveryWorker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The worker could not be built.
#[derive(Debug, thiserror::Error)]
#[error("the webhook HTTP client could not be built")]
pub struct DeliveryWorkerError(#[source] reqwest::Error);

/// What became of one delivery.
struct Outcome {
    status: AttemptStatus,
    http_status: Option<u16>,
    excerpt: String,
    permanent: bool,
}

impl Outcome {
    fn unreachable(reason: impl Into<String>) -> Self {
        Self {
            status: AttemptStatus::Unreachable,
            http_status: None,
            excerpt: excerpt(&reason.into()),
            permanent: false,
        }
    }
}

/// The first `limit` bytes of the answer, read within the request's time limit.
async fn read_excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < portal_core::webhooks::MAX_EXCERPT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    excerpt(&String::from_utf8_lossy(&bytes))
}

fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    // Without randomness the delay is the schedule's own (jitter one half).
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

impl DeliveryWorker {
    /// A worker over `store` with `config`, the system clock and random ids.
    ///
    /// # Errors
    ///
    /// [`DeliveryWorkerError`] if the TLS client cannot be built.
    pub fn new(store: Arc<dyn WebhookStore>, config: DeliveryConfig) -> Result<Self, DeliveryWorkerError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: config.url_policy.clone(),
            }))
            .user_agent("portal-core-webhooks/1")
            .build()
            .map_err(DeliveryWorkerError)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                client,
                clock: Arc::new(SystemClock),
                ids: Arc::new(RandomIds::default()),
                config,
                wake: None,
            }),
        })
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                store: shared.store.clone(),
                client: shared.client.clone(),
                clock: shared.clock.clone(),
                ids: shared.ids.clone(),
                config: shared.config.clone(),
                wake: shared.wake.clone(),
            },
        };
        change(&mut inner);
        Self { inner: Arc::new(inner) }
    }

    /// Uses `clock` for due times and timestamps.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        self.with(|inner| inner.clock = clock)
    }

    /// Uses `ids` for attempt and event ids.
    #[must_use]
    pub fn with_ids(self, ids: Arc<dyn IdGenerator>) -> Self {
        self.with(|inner| inner.ids = ids)
    }

    /// Wakes the idle worker when `wake` is notified (`postgres::webhook_wakeups`,
    /// `sqlite::webhook_wakeups`).
    #[must_use]
    pub fn with_wakeups(self, wake: Arc<Notify>) -> Self {
        self.with(|inner| inner.wake = Some(wake))
    }

    /// Claims one batch of due deliveries, sends them concurrently and records their
    /// attempts together ([`WebhookStore::finish_attempts`]: one transaction in the SQL
    /// stores); returns how many were claimed.
    ///
    /// # Errors
    ///
    /// The store's error from the claim; a failure to record the attempts is logged, and
    /// the deliveries it left unrecorded are claimed again when their leases end.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let lease = time::Duration::try_from(inner.config.lease).unwrap_or(time::Duration::MINUTE);
        let claimed = inner.store.claim_due(now, now + lease, inner.config.batch).await?;
        let count = claimed.len();
        let mut tasks = JoinSet::new();
        for delivery in claimed {
            let worker = self.clone();
            tasks.spawn(async move { worker.attempt(delivery).await });
        }
        let mut finished = Vec::with_capacity(count);
        while let Some(done) = tasks.join_next().await {
            if let Ok(one) = done {
                finished.push(one);
            }
        }
        // One call (one transaction in the SQL stores) records the claim's attempts.
        if let Err(err) = inner.store.finish_attempts(&finished).await {
            tracing::warn!(
                error = %err,
                attempts = finished.len(),
                "webhook attempts could not be recorded; their deliveries will be claimed again"
            );
        }
        Ok(count)
    }

    /// Runs until `shutdown` completes: claims and delivers while there is work, then
    /// waits for a wake-up or the poll interval. A store failure is logged and retried
    /// after the poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let idle = match self.run_once().await {
                Ok(count) => count == 0,
                Err(err) => {
                    tracing::warn!(error = %err, "webhook deliveries could not be claimed");
                    true
                }
            };
            if idle {
                let wait = tokio::time::sleep(self.inner.config.poll_interval);
                tokio::select! {
                    () = &mut shutdown => return,
                    () = wait => {}
                    () = async {
                        match &self.inner.wake {
                            Some(wake) => wake.notified().await,
                            None => std::future::pending().await,
                        }
                    } => {}
                }
            } else if futures_now(&mut shutdown) {
                return;
            }
        }
    }

    async fn send(&self, delivery: &Delivery) -> Outcome {
        let inner = &self.inner;
        if EndpointUrl::parse(delivery.url.as_str(), &inner.config.url_policy).is_err() {
            return Outcome {
                permanent: true,
                ..Outcome::unreachable("the endpoint URL is not allowed")
            };
        }
        if let Some(host) = delivery.url.host()
            && let Ok(ip) = host.parse::<IpAddr>()
            && is_forbidden_ip(ip)
            && !inner.config.url_policy.allows(&host)
        {
            return Outcome {
                permanent: true,
                ..Outcome::unreachable("the endpoint's address is not allowed")
            };
        }
        let body = match message_body(&delivery.event) {
            Ok(body) => body,
            Err(_) => return Outcome::unreachable("the message did not serialize"),
        };
        if body.len() > inner.config.max_payload {
            return Outcome {
                permanent: true,
                ..Outcome::unreachable(format!("the payload is over {} bytes", inner.config.max_payload))
            };
        }
        let id = delivery.message().to_string();
        let timestamp = inner.clock.now().unix_timestamp();
        let signature = signature_header(&delivery.secrets.signing_at(inner.clock.now()), &id, timestamp, &body);
        let request = inner
            .client
            .post(delivery.url.as_str())
            .header(HEADER_ID, &id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let text = read_excerpt(response).await;
                Outcome {
                    status: if status.is_success() {
                        AttemptStatus::Delivered
                    } else {
                        AttemptStatus::Rejected
                    },
                    http_status: Some(status.as_u16()),
                    excerpt: text,
                    permanent: false,
                }
            }
            Err(err) if err.is_timeout() => Outcome::unreachable("the endpoint did not answer in time"),
            Err(err) if err.is_connect() => Outcome::unreachable("the endpoint could not be reached"),
            Err(_) => Outcome::unreachable("the request failed"),
        }
    }

    /// Sends `delivery` and says how to record it.
    async fn attempt(&self, delivery: Delivery) -> FinishedAttempt {
        let inner = &self.inner;
        let started = Instant::now();
        let attempted_at = truncate_to_micros(inner.clock.now());
        let outcome = self.send(&delivery).await;
        let latency = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        let next = if outcome.status == AttemptStatus::Delivered {
            NextStep::Done
        } else if outcome.permanent {
            NextStep::GiveUp
        } else {
            match retry_delay_in(&inner.config.schedule, delivery.attempt, jitter()) {
                Some(delay) => NextStep::RetryAt(attempted_at + delay),
                None => NextStep::GiveUp,
            }
        };
        let attempt = DeliveryAttempt {
            id: WebhookAttemptId::generate(&*inner.ids, attempted_at),
            org: delivery.org,
            endpoint: delivery.endpoint,
            message: delivery.message(),
            attempt: delivery.attempt,
            attempted_at,
            status: outcome.status,
            http_status: outcome.http_status,
            latency_ms: latency,
            excerpt: outcome.excerpt,
        };
        let disable = (next != NextStep::Done).then(|| DisableRule {
            before: attempted_at - inner.config.disable_after,
            event: AuditEvent {
                id: AuditEventId::generate(&*inner.ids, attempted_at),
                org: delivery.org,
                action: actions::WEBHOOK_ENDPOINT_DISABLED.action(),
                version: actions::WEBHOOK_ENDPOINT_DISABLED.version,
                actor: AuditActor {
                    id: "webhook-delivery".to_owned(),
                    kind: ActorKind::Service,
                    name: None,
                },
                targets: vec![AuditTarget::new("webhook_endpoint", delivery.endpoint)],
                context: AuditContext {
                    request_id: RequestId::generate(&*inner.ids, attempted_at),
                    client_request_id: None,
                    ip: None,
                    user_agent: None,
                },
                occurred_at: attempted_at,
                metadata: serde_json::json!({ "disable_after_seconds": inner.config.disable_after.whole_seconds() }),
            },
        });
        FinishedAttempt { attempt, next, disable }
    }
}

/// Whether `future` is already complete (polled once, never waiting).
fn futures_now<F: std::future::Future<Output = ()> + Unpin>(future: &mut F) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::Pin::new(future).poll(&mut cx).is_ready()
}

/// How many attempts a delivery gets on the default schedule before it is given up.
pub const MAX_ATTEMPTS: usize = RETRY_SCHEDULE.len() + 1;
