//! The argon2 gate: at most one password hash per core at a time, a short queue behind them, and
//! 503 with `Retry-After` when the queue is full.
//!
//! Each argon2id run takes 19 MiB and tens of milliseconds of a core. Without a cap, a hundred
//! concurrent unauthenticated logins are a hundred runs at once: the memory goes (and, with
//! allocators that keep freed memory, stays) in the gigabytes. With the gate, memory is bounded
//! by the permits and a flood waits in a bounded queue or is told to come back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// How long a refused caller is told to wait.
pub(crate) const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The gate's size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HashLimits {
    /// Hashes running at once.
    pub(crate) concurrent: usize,
    /// Callers waiting for a permit; the next one is refused.
    pub(crate) queue: usize,
}

impl HashLimits {
    /// One hash per core, and a queue of four per core.
    pub(crate) fn from_cores() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashLimits {
            concurrent: cores,
            queue: cores * 4,
        }
    }
}

/// The queue is full: answer 503 with `Retry-After`.
#[derive(Debug)]
pub(crate) struct Busy;

/// Caps the concurrent argon2 runs.
#[derive(Debug)]
pub(crate) struct HashGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue: usize,
}

impl HashGate {
    pub(crate) fn new(limits: HashLimits) -> Self {
        HashGate {
            permits: Arc::new(Semaphore::new(limits.concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            queue: limits.queue,
        }
    }

    /// A permit to hash: at once if one is free, after waiting in the queue if there is room,
    /// else [`Busy`].
    pub(crate) async fn permit(&self) -> Result<OwnedSemaphorePermit, Busy> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => return Err(Busy),
            Err(TryAcquireError::NoPermits) => {}
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let permit = Arc::clone(&self.permits).acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| Busy)
    }

    /// Runs `work` (an argon2 hash or check) on the blocking pool under a permit. The permit is
    /// held by the blocking task, so a client that hangs up does not free it early.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<Option<T>, Busy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.permit().await?;
        let done = tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await;
        Ok(done.ok())
    }
}
