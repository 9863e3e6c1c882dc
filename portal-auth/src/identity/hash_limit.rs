//! The bound on concurrent password hashing: a semaphore sized to the machine, taken
//! before every argon2 computation and held until it ends. A request that cannot get a
//! slot within a short wait is refused as `service.busy` (503, retryable) instead of
//! queueing: each computation takes its memory cost (19 MiB by default) and a blocking
//! thread, so an unbounded queue of sign-ins is an unbounded amount of memory and threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use portal_core::{ErrorCode, PortalError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for a hashing slot by default before it is refused.
pub const DEFAULT_HASH_WAIT: Duration = Duration::from_millis(250);

/// At most `permits` password hashes (or verifications) run at once; a request waits at
/// most `wait` for a slot, then gets `service.busy`.
///
/// The memory argon2 takes at once is so bounded by `permits` × the memory cost of
/// [`PasswordParams`](super::PasswordParams), whatever the number of concurrent sign-ins.
/// It also counts the permits held now and the most ever held at once
/// ([`peak`](Self::peak)), for metrics and tests.
#[derive(Debug)]
pub struct HashLimit {
    semaphore: Arc<Semaphore>,
    permits: usize,
    wait: Duration,
    held: AtomicUsize,
    peak: AtomicUsize,
}

impl HashLimit {
    /// A limit of `permits` concurrent hashes, each request waiting at most `wait`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `hash_concurrency`) for zero permits or more than
    /// the semaphore can count.
    pub fn new(permits: usize, wait: Duration) -> Result<Self, PortalError> {
        if permits == 0 || permits > Semaphore::MAX_PERMITS {
            return Err(PortalError::invalid_field(
                "hash_concurrency",
                "at least one concurrent password hash must be allowed",
            ));
        }
        Ok(Self {
            semaphore: Arc::new(Semaphore::new(permits)),
            permits,
            wait,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        })
    }

    /// A limit sized to the machine: one permit per available core
    /// ([`std::thread::available_parallelism`], 1 when unknown), waiting
    /// [`DEFAULT_HASH_WAIT`].
    pub fn for_this_machine() -> Self {
        let permits = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self {
            semaphore: Arc::new(Semaphore::new(permits)),
            permits,
            wait: DEFAULT_HASH_WAIT,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// How many hashes may run at once.
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// How long a request waits for a slot before `service.busy`.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// How many slots are taken now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// The most slots ever taken at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    /// Takes a slot, waiting at most [`wait`](Self::wait). Hold the permit for as long as
    /// the hash runs (move it into the blocking task, so a cancelled request keeps its
    /// slot until its hash ends); dropping it frees the slot.
    ///
    /// A free slot is taken at once; waiting for one uses tokio's timer, so the runtime
    /// needs its time driver (`enable_time` or `enable_all`, as `#[tokio::main]` has).
    ///
    /// # Errors
    ///
    /// `service.busy` when no slot frees up in time.
    pub async fn acquire(self: &Arc<Self>) -> Result<HashPermit, PortalError> {
        let busy = || {
            PortalError::new(
                ErrorCode::ServiceBusy,
                "too many password checks at once; retry in a moment",
            )
        };
        let permit = match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match tokio::time::timeout(self.wait, self.semaphore.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) | Err(_) => return Err(busy()),
            },
        };
        let held = self.held.fetch_add(1, Ordering::AcqRel) + 1;
        self.peak.fetch_max(held, Ordering::AcqRel);
        Ok(HashPermit {
            _permit: permit,
            limit: self.clone(),
        })
    }
}

/// A slot of a [`HashLimit`], freed when dropped.
#[derive(Debug)]
pub struct HashPermit {
    _permit: OwnedSemaphorePermit,
    limit: Arc<HashLimit>,
}

impl Drop for HashPermit {
    fn drop(&mut self) {
        self.limit.held.fetch_sub(1, Ordering::AcqRel);
    }
}
