//! Replicas in step: a task that follows a [`PolicyFeed`] and applies what it delivers to
//! an authorizer's in-memory policy.
//!
//! [`follow`] spawns the task on the current tokio runtime and returns a [`Following`]
//! handle, which reports what was applied ([`FollowStatus`]) and stops the task when it
//! is dropped. A [`PolicyEvent::Change`] is applied incrementally
//! ([`PolicyReplica::apply_change`], touching only its domains), a
//! [`PolicyEvent::Resync`] replaces the whole policy ([`PolicyReplica::replace_all`]).
//!
//! Wiring on Postgres (see `portal-adapters`): load the authorizer from the store, start a
//! `PgPolicyListener` after the revision it was loaded at, and follow it:
//!
//! ```text
//! let store = PgPolicyStore::new(pool.clone());
//! let authorizer = Arc::new(CasbinAuthorizer::from_store(&store).await?);
//! let listener = PgPolicyListener::connect(&listener_pool, store.channel().clone(), authorizer.revision()).await?;
//! let following = portal_auth::sync::follow(listener, authorizer.clone());
//! let portal = Portal::builder().policy(Arc::new(store), authorizer).build()?;
//! ```

use std::sync::Arc;
use std::time::Duration;

use portal_core::access::{PolicyEvent, PolicyFeed, PolicyReplica, Revision};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the follower waits after the feed fails before asking it again, at first;
/// each further failure in a row doubles it, up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(50);

/// The longest wait between attempts while the feed keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a follower has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowStatus {
    /// The authorizer's revision after the last event applied (the authorizer may be
    /// further ahead: a writer applies its own change at once).
    pub revision: Revision,
    /// How many [`PolicyEvent::Change`]s were applied incrementally.
    pub changes: u64,
    /// How many [`PolicyEvent::Resync`]s replaced the whole policy.
    pub resyncs: u64,
    /// How many times the feed failed (each is retried after a pause).
    pub feed_errors: u64,
    /// How many events the authorizer refused (a line its index cannot hold); the
    /// replica then lacks that change, and the error is logged.
    pub refused: u64,
    /// The last failure, for diagnostics.
    pub last_error: Option<String>,
}

/// The handle of a running follower; dropping it stops the task.
#[derive(Debug)]
pub struct Following {
    task: JoinHandle<()>,
    status: watch::Receiver<FollowStatus>,
}

impl Following {
    /// What the follower has done so far.
    pub fn status(&self) -> FollowStatus {
        self.status.borrow().clone()
    }

    /// A receiver that is notified after every event or failure.
    pub fn subscribe(&self) -> watch::Receiver<FollowStatus> {
        self.status.clone()
    }

    /// Waits until the follower has applied an event at `revision` or later, for at most
    /// `timeout`, and returns the status then.
    ///
    /// # Errors
    ///
    /// [`WaitError::TimedOut`] with the status at the deadline; [`WaitError::Stopped`] if
    /// the task ended (it only ends when stopped or when its runtime shuts down).
    pub async fn wait_for(&self, revision: Revision, timeout: Duration) -> Result<FollowStatus, WaitError> {
        let mut status = self.status.clone();
        let reached = tokio::time::timeout(timeout, status.wait_for(|s| s.revision >= revision)).await;
        match reached {
            Ok(Ok(status)) => Ok(status.clone()),
            Ok(Err(_)) => Err(WaitError::Stopped),
            Err(_) => Err(WaitError::TimedOut(Box::new(self.status()))),
        }
    }

    /// Stops the task.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why [`Following::wait_for`] returned without reaching the revision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The deadline passed; the status at that moment.
    #[error("the policy follower did not reach the revision in time (it is at {})", .0.revision.0)]
    TimedOut(Box<FollowStatus>),
    /// The follower's task has ended.
    #[error("the policy follower has stopped")]
    Stopped,
}

/// Spawns a task on the current tokio runtime that applies every event of `feed` to
/// `replica` until the returned handle is dropped.
///
/// The feed should start at the revision the replica holds (usually the one it was
/// loaded at). A feed failure is retried after a pause ([`MIN_BACKOFF`], doubling up to
/// [`MAX_BACKOFF`]); `PgPolicyListener` reconnects and resyncs on its own. An event the
/// replica refuses is logged with `tracing` and counted in [`FollowStatus::refused`]; the
/// task carries on with the next one.
///
/// # Panics
///
/// Outside a tokio runtime, as [`tokio::spawn`] does.
pub fn follow<F, R>(mut feed: F, replica: Arc<R>) -> Following
where
    F: PolicyFeed,
    R: PolicyReplica + ?Sized,
{
    let (tx, rx) = watch::channel(FollowStatus {
        revision: replica.revision(),
        ..FollowStatus::default()
    });
    let task = tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        loop {
            match feed.next().await {
                Ok(event) => {
                    backoff = MIN_BACKOFF;
                    let outcome = match &event {
                        PolicyEvent::Change(change) => replica.apply_change(change),
                        PolicyEvent::Resync { revision, lines } => replica.replace_all(*revision, lines),
                    };
                    tx.send_modify(|status| {
                        match (&event, &outcome) {
                            (_, Err(err)) => {
                                tracing::error!(
                                    revision = event.revision().0,
                                    error = %err,
                                    "the authorizer refused a policy event; this replica lacks it"
                                );
                                status.refused += 1;
                                status.last_error = Some(err.to_string());
                            }
                            (PolicyEvent::Change(_), Ok(_)) => status.changes += 1,
                            (PolicyEvent::Resync { .. }, Ok(_)) => status.resyncs += 1,
                        }
                        status.revision = replica.revision();
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "the policy feed failed");
                    tx.send_modify(|status| {
                        status.feed_errors += 1;
                        status.last_error = Some(err.to_string());
                    });
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });
    Following { task, status: rx }
}
