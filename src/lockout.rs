//! The per-user lock: a ceiling on consecutive failed code checks, across challenges and flows.
//!
//! # State
//!
//! Each user has two short-lived records under their key tag (a keyed hash of the user id):
//!
//! - `lock` holds a [`LockState`]: a *generation*, the lock *level* reached and the instant
//!   (`until`) the current lock lifts. A missing record reads as generation 0, level 0, unlocked.
//! - `fails:{generation}` counts the failures of that generation. It starts at the first failure
//!   and lives for [`Policy::failure_window`]; a new generation starts a new counter, so the old
//!   one is simply abandoned.
//!
//! # Transitions
//!
//! 1. **Reserve** ([`TwoFactorService::reserve_attempt`]), before any comparison: while `until` is
//!    in the future the user is refused with [`Error::Locked`]. Otherwise the generation's counter
//!    is incremented atomically; past [`Policy::lockout_threshold`] the attempt is refused too (the
//!    attempt that reached the threshold is setting the lock).
//! 2. **Settle** ([`TwoFactorService::settle`]) with the outcome of the check:
//!    - a success resets: a new generation, level 0, no lock;
//!    - any failure (a wrong code or password, but also a store error) emits
//!      [`Event::CodeRejected`], and the attempt whose count is exactly the threshold locks: a new
//!      generation, level + 1, `until` = now + [`Policy::lock_duration`] of the old level, and
//!      [`Event::LockedOut`].
//!
//! # Escalation
//!
//! The lock lasts [`Policy::lockout_base`] doubled once per level, capped at
//! [`Policy::lockout_max`]. The level survives the lock: the record lives until
//! `until + failure_window`, so the next run of failures in that time locks for longer. Only a
//! success (or a quiet `failure_window` after the lock lifts) brings it back to level 0.
//!
//! # What is guarded
//!
//! Only the code step. Every check of a second factor reserves and settles an attempt: answering
//! a login challenge, confirming a TOTP or email setup, a registration code, and the step-up of
//! `disable` (where a wrong password counts too) and `regenerate_backup_codes`.
//! [`TwoFactorService::begin_login`] refuses to start a challenge while the user is locked but
//! counts nothing. The password step comes first and is the host's, so someone without the
//! password cannot lock a user out. The per-challenge attempt limit is separate (see
//! [`TwoFactorService::verify_login`]).
//!
//! [`Policy::failure_window`]: crate::Policy::failure_window
//! [`Policy::lockout_threshold`]: crate::Policy::lockout_threshold
//! [`Policy::lock_duration`]: crate::Policy::lock_duration
//! [`Policy::lockout_base`]: crate::Policy::lockout_base
//! [`Policy::lockout_max`]: crate::Policy::lockout_max

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::Error;
use crate::events::Event;
use crate::service::{decode, encode, tag_key, until, TwoFactorService};
use crate::store::StoreKey;

/// The per-user lock state: a generation (whose failure counter is live), the lock level reached
/// and when the current lock lifts.
#[derive(Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct LockState {
    generation: u64,
    level: u32,
    pub(crate) until: Timestamp,
}

/// A user's reservation of one attempt against the per-user ceiling.
pub(crate) struct Attempt {
    state: LockState,
    count: u64,
    /// The user's key tag, computed once per flow.
    tag: String,
}

impl Attempt {
    pub(crate) fn key(&self, what: &str) -> StoreKey {
        tag_key(&self.tag, what)
    }
}

impl TwoFactorService {
    pub(crate) async fn lock_state(
        &self,
        lock_key: &StoreKey,
        now: Timestamp,
    ) -> Result<LockState, Error> {
        match self.inner.otp.get(lock_key, now).await? {
            Some(bytes) => decode(&bytes),
            None => Ok(LockState::default()),
        }
    }

    /// Refuses when the user is locked; otherwise reserves one attempt against the per-user
    /// ceiling, counted before any comparison.
    pub(crate) async fn reserve_attempt(
        &self,
        user: &str,
        now: Timestamp,
    ) -> Result<Attempt, Error> {
        let policy = &self.inner.policy;
        let tag = self.user_tag(user);
        let state = self.lock_state(&tag_key(&tag, "lock"), now).await?;
        if state.until > now {
            return Err(Error::Locked {
                retry_after: until(state.until, now),
            });
        }
        let key = tag_key(&tag, &format!("fails:{}", state.generation));
        let count = self
            .inner
            .otp
            .increment(&key, now.saturating_add(policy.failure_window), now)
            .await?;
        if count > u64::from(policy.lockout_threshold) {
            // The lock for this generation is being set by the attempt that reached the
            // threshold; until it is, refuse.
            return Err(Error::Locked {
                retry_after: policy.lock_duration(state.level),
            });
        }
        Ok(Attempt { state, count, tag })
    }

    /// Records the failure of a reserved attempt; the one that reaches the threshold locks.
    async fn fail_attempt(
        &self,
        user: &str,
        attempt: &Attempt,
        now: Timestamp,
    ) -> Result<(), Error> {
        let policy = &self.inner.policy;
        self.event(Event::CodeRejected {
            user: user.to_owned(),
        });
        if attempt.count == u64::from(policy.lockout_threshold) {
            let lock_for = policy.lock_duration(attempt.state.level);
            let next = LockState {
                generation: attempt.state.generation.wrapping_add(1),
                level: attempt.state.level.saturating_add(1),
                until: now.saturating_add(lock_for),
            };
            let expires = next.until.saturating_add(policy.failure_window);
            self.inner
                .otp
                .put(&attempt.key("lock"), &encode(&next)?, expires, now)
                .await?;
            self.event(Event::LockedOut {
                user: user.to_owned(),
                until: next.until,
            });
        }
        Ok(())
    }

    /// A success ends the run of consecutive failures: a new generation, level 0.
    async fn reset_attempts(&self, attempt: &Attempt, now: Timestamp) -> Result<(), Error> {
        let next = LockState {
            generation: attempt.state.generation.wrapping_add(1),
            level: 0,
            until: Timestamp::EPOCH,
        };
        let expires = now.saturating_add(self.inner.policy.failure_window);
        self.inner
            .otp
            .put(&attempt.key("lock"), &encode(&next)?, expires, now)
            .await?;
        Ok(())
    }

    /// Settles a reserved attempt: a success resets the run of failures, anything else counts as
    /// a failure (so that the attempt reaching the threshold always sets the lock).
    pub(crate) async fn settle<T>(
        &self,
        user: &str,
        attempt: &Attempt,
        now: Timestamp,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        match result {
            Ok(v) => {
                self.reset_attempts(attempt, now).await?;
                Ok(v)
            }
            Err(e) => {
                if let Err(store) = self.fail_attempt(user, attempt, now).await {
                    tracing::warn!(target: "twofactor", error = %store, "recording a failure failed");
                }
                Err(e)
            }
        }
    }
}
