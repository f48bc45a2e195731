//! Work the answer does not wait for (mail), tracked so that tests and a graceful shutdown can
//! wait until it is done.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Spawned tasks, counted.
#[derive(Debug, Default)]
pub(crate) struct Background {
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    running: AtomicUsize,
    idle: Notify,
}

impl Background {
    /// Runs `task` on its own; the caller answers without waiting for it.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let state = Arc::clone(&self.state);
        state.running.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            task.await;
            if state.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                state.idle.notify_waiters();
            }
        });
    }

    /// Waits until no spawned task is running.
    pub(crate) async fn settled(&self) {
        loop {
            let idle = self.state.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.state.running.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}
