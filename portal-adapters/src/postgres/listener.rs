//! `PgPolicyListener`: a replica's feed of the policy changes every replica commits,
//! through Postgres `LISTEN`/`NOTIFY`.

use std::collections::VecDeque;
use std::fmt;

use async_trait::async_trait;
use portal_core::access::{PolicyEvent, PolicyFeed, Revision};
use portal_core::store::StoreError;
use sqlx::postgres::PgListener;
use sqlx::{Acquire, PgPool};

use super::codec::db;
use super::policy::{NotifyChannel, Payload, changes_since_on, load_on};

/// A [`PolicyFeed`] on Postgres: it `LISTEN`s on the channel a
/// [`PgPolicyStore`](super::PgPolicyStore) announces its changes on, and turns the
/// notifications into [`PolicyEvent`]s in revision order.
///
/// - A notification carrying the change that follows the last revision delivered becomes
///   a [`PolicyEvent::Change`] with no further I/O.
/// - A notification carrying only its revision (the change was too large for a payload),
///   one that skips revisions (a gap), or one that cannot be read makes the listener read
///   the missing changes from the log with `changes_since`; if the log was trimmed past
///   them, it delivers a [`PolicyEvent::Resync`] instead.
/// - When the listening connection is lost, notifications sent meanwhile are lost with
///   it. The listener then reconnects, listens again, and delivers a `Resync` with every
///   line, read after it listens again, so no change falls between the two.
/// - Notifications at or below the last revision delivered (a change the log or a resync
///   already delivered) are skipped.
///
/// It holds one connection of the pool it was given for as long as it lives, and reads
/// the log and the lines on that connection too.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portal_adapters::postgres::{self, NotifyChannel, PgPolicyListener, PgPolicyStore};
/// use portal_core::access::{PolicyEvent, PolicyStore};
///
/// let pool = postgres::connect("postgres://portal@localhost/portal").await?;
/// let store = PgPolicyStore::new(pool.clone());
/// let (revision, _lines) = store.load().await?;
/// let mut listener = PgPolicyListener::connect(&pool, NotifyChannel::default(), revision).await?;
/// loop {
///     match listener.next().await {
///         Ok(PolicyEvent::Change(change)) => { /* apply `change` to the in-memory copy */ }
///         Ok(PolicyEvent::Resync { revision, lines }) => { /* rebuild it from `lines` */ }
///         Err(err) if err.is_retryable() => { /* wait a moment, then carry on */ }
///         Err(err) => return Err(err.into()),
///     }
/// }
/// # }
/// ```
pub struct PgPolicyListener {
    pool: PgPool,
    channel: NotifyChannel,
    /// `None` after a failure made the connection unusable; the next call makes another.
    listener: Option<PgListener>,
    /// The revision of the last event delivered.
    last: Revision,
    /// Events read but not delivered yet, in revision order.
    queue: VecDeque<PolicyEvent>,
    /// What must be read before the next notification can be trusted.
    need: Need,
}

/// Reading the listener owes its consumer before it waits for notifications again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Nothing: the notifications continue where the events delivered end.
    Nothing,
    /// The changes after the last revision delivered, from the log.
    CatchUp,
    /// Every line: notifications may have been lost.
    Resync,
}

impl fmt::Debug for PgPolicyListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgPolicyListener")
            .field("channel", &self.channel)
            .field("connected", &self.listener.is_some())
            .field("revision", &self.last.0)
            .field("queued", &self.queue.len())
            .field("need", &self.need)
            .finish()
    }
}

impl PgPolicyListener {
    /// Starts listening on `channel` with a connection from `pool`, for the changes
    /// committed after `after` (usually the revision
    /// [`PolicyStore::load`](portal_core::access::PolicyStore::load) returned for the
    /// consumer's copy). Changes committed between `after` and now are read from the log
    /// by the first [`next`](Self::next).
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the server cannot be reached; [`StoreError::Backend`]
    /// if it refuses to listen.
    pub async fn connect(pool: &PgPool, channel: NotifyChannel, after: Revision) -> Result<Self, StoreError> {
        let listener = listen(pool, &channel).await?;
        Ok(Self {
            pool: pool.clone(),
            channel,
            listener: Some(listener),
            last: after,
            queue: VecDeque::new(),
            need: Need::CatchUp,
        })
    }

    /// The channel it listens on.
    pub fn channel(&self) -> &NotifyChannel {
        &self.channel
    }

    /// The revision of the last event delivered, or the starting revision before the
    /// first.
    pub fn revision(&self) -> Revision {
        self.last
    }

    /// Waits for the next event: see the type's documentation for what it delivers.
    ///
    /// A lost connection is handled here: the call reconnects and delivers a
    /// [`PolicyEvent::Resync`]. Cancel-safe: dropping the future (to time out, say) loses
    /// no event; a read it was in the middle of is made again by the next call.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] if the server cannot be reached (or a read failed)
    /// even after one attempt to reconnect; the listener stays usable, and a later call
    /// reconnects and delivers a `Resync`. [`StoreError::Corrupt`] if a stored line or
    /// change cannot be read; [`StoreError::Backend`] for other failures.
    pub async fn next(&mut self) -> Result<PolicyEvent, StoreError> {
        // A connection the server closed (an administrator, a restart, a proxy) fails
        // the read or wait in progress. The first such failure in a call is handled by
        // reconnecting at once; a second is returned, so a server that keeps closing
        // connections is reported rather than retried forever.
        let mut reconnected = false;
        loop {
            match self.step().await {
                Ok(Some(event)) => return Ok(event),
                Ok(None) => {}
                Err(err) if err.is_retryable() && !reconnected => {
                    tracing::warn!(channel = %self.channel, error = %err, "policy listener lost its connection");
                    reconnected = true;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// One step towards the next event: deliver a queued event, connect, read what is
    /// owed, or wait for a notification. A failure drops the connection, so the next
    /// step makes another and resynchronizes.
    async fn step(&mut self) -> Result<Option<PolicyEvent>, StoreError> {
        if let Some(event) = self.queue.pop_front() {
            self.last = event.revision();
            return Ok(Some(event));
        }
        let listener = match &mut self.listener {
            Some(listener) => listener,
            None => {
                let listener = listen(&self.pool, &self.channel).await?;
                self.need = Need::Resync;
                self.listener.insert(listener)
            }
        };
        let done = match self.need {
            Need::Resync => match listener.acquire().await {
                Ok(conn) => load_on(conn).await.map(|(revision, lines)| {
                    tracing::info!(
                        channel = %self.channel,
                        revision = revision.0,
                        lines = lines.len(),
                        "policy listener resynchronized"
                    );
                    self.queue.push_back(PolicyEvent::Resync { revision, lines });
                    self.need = Need::Nothing;
                }),
                Err(err) => Err(db(err)),
            },
            Need::CatchUp => match listener.acquire().await {
                Ok(conn) => changes_since_on(conn, self.last).await.map(|changes| match changes {
                    Some(changes) => {
                        self.queue.extend(changes.into_iter().map(PolicyEvent::Change));
                        self.need = Need::Nothing;
                    }
                    None => self.need = Need::Resync,
                }),
                Err(err) => Err(db(err)),
            },
            Need::Nothing => match listener.try_recv().await {
                Ok(Some(notification)) => {
                    self.on_payload(notification.payload());
                    Ok(())
                }
                // The connection was lost (and made again): whatever was sent
                // meanwhile is gone.
                Ok(None) => {
                    tracing::warn!(channel = %self.channel, "policy listener lost its connection");
                    self.need = Need::Resync;
                    Ok(())
                }
                Err(err) => Err(db(err)),
            },
        };
        if done.is_err() {
            self.listener = None;
            self.need = Need::Resync;
        }
        done.map(|()| None)
    }

    /// Handles one notification's payload.
    fn on_payload(&mut self, payload: &str) {
        let next = self.last.next();
        match serde_json::from_str::<Payload>(payload) {
            Ok(payload) if payload.revision < next => {}
            Ok(payload) if payload.revision == next => match payload.into_change() {
                Some(change) => self.queue.push_back(PolicyEvent::Change(change)),
                None => self.need = Need::CatchUp,
            },
            Ok(_) => self.need = Need::CatchUp,
            Err(err) => {
                tracing::warn!(
                    channel = %self.channel,
                    error = %err,
                    "unreadable policy notification; reading the change log instead"
                );
                self.need = Need::CatchUp;
            }
        }
    }
}

/// A listener on `channel` with a connection from `pool`.
async fn listen(pool: &PgPool, channel: &NotifyChannel) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(pool).await.map_err(db)?;
    listener.listen(channel.as_str()).await.map_err(db)?;
    Ok(listener)
}

#[async_trait]
impl PolicyFeed for PgPolicyListener {
    async fn next(&mut self) -> Result<PolicyEvent, StoreError> {
        PgPolicyListener::next(self).await
    }

    fn revision(&self) -> Revision {
        PgPolicyListener::revision(self)
    }
}
