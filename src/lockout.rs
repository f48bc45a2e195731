//! The per-user lock: a ceiling on consecutive failed code checks, across challenges and flows.
//!
//! # State
//!
//! Each user has one short-lived record under their key tag (see [`UserState`]): the *run* of
//! failures (how many, and when the run is forgotten), the lock *level* reached and the instant
//! the current lock lifts, beside the last TOTP step, the send budget and the last verification.
//! A missing record reads as a fresh user. The store changes it only through the composite
//! operations, each atomic, following [`flow::rules`](crate::store::flow::rules).
//!
//! # Transitions
//!
//! 1. **Open** ([`OtpStore::open_attempt`]), before any comparison: while the lock runs the user
//!    is refused with [`Error::Locked`]. Otherwise the attempt is counted in the run; once the run
//!    holds [`Policy::lockout_threshold`] failures, further attempts are refused too (the attempt
//!    that reached the threshold is setting the lock). A run is forgotten
//!    [`Policy::failure_window`] after its first failure.
//! 2. **Settle** with the outcome of the check:
//!    - a pass ([`OtpStore::settle`] with `Passed`) ends the run: no failures, level 0, no lock,
//!      and records when the user passed; when it takes a challenge or a TOTP step, it does so in
//!      the same step, so a pass that lost a race is written nowhere and charged nothing;
//!    - a failure emits [`Event::CodeRejected`] and costs nothing more, except for the attempt
//!      whose number in the run is exactly the threshold: it locks (`Lock`), one level up, until
//!      now + [`Policy::lock_duration`] of the old level, and emits [`Event::LockedOut`].
//!
//! # Escalation
//!
//! The lock lasts [`Policy::lockout_base`] doubled once per level, capped at
//! [`Policy::lockout_max`]. The level outlives the lock by [`Policy::failure_window`], so the
//! next run of failures in that time locks for longer. Only a pass (or a quiet window after the
//! lock lifts) brings it back to level 0.
//!
//! # What is guarded
//!
//! Only the code step. Every check of a second factor opens and settles an attempt: answering a
//! login challenge, confirming a TOTP or email setup, and the step-up of `disable` (where a
//! wrong password counts too) and `backup_codes().regenerate`. A registration code proves an
//! address, not a factor: its attempts open and settle the same way, with the same limits, on
//! a record of their own (`UserKeys::address_checks`), so that it neither ends nor feeds this
//! run and records no verification.
//! [`TwoFactorService::begin_login`] refuses to start a challenge while the user is locked but
//! counts nothing. The password step comes first and is the host's, so someone without the
//! password cannot lock a user out. The per-challenge attempt limit is separate (see
//! [`TwoFactorService::verify_login`]).
//!
//! [`UserState`]: crate::store::flow::UserState
//! [`OtpStore::open_attempt`]: crate::store::OtpStore::open_attempt
//! [`OtpStore::settle`]: crate::store::OtpStore::settle
//! [`Policy::failure_window`]: crate::Policy::failure_window
//! [`Policy::lockout_threshold`]: crate::Policy::lockout_threshold
//! [`Policy::lock_duration`]: crate::Policy::lock_duration
//! [`Policy::lockout_base`]: crate::Policy::lockout_base
//! [`Policy::lockout_max`]: crate::Policy::lockout_max

use crate::clock::until;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::events::Event;
use crate::keyspace::UserKeys;
use crate::service::TwoFactorService;
use crate::store::flow::{AttemptSpec, OpenAttempt, Opened, Outcome, Settled, Settlement};
use crate::store::StoreKey;

impl TwoFactorService {
    /// Opens one attempt on `challenge` (with its attempt cap) and against the user's run,
    /// before any comparison. A challenge that is not live is `missing`.
    pub(crate) async fn open_attempt(
        &self,
        keys: &UserKeys,
        challenge: Option<(&StoreKey, u32)>,
        missing: Error,
        now: Timestamp,
    ) -> Result<OpenAttempt, Error> {
        let spec = AttemptSpec {
            challenge,
            user: keys.user(),
            limits: self.limits(),
        };
        match self.inner.otp.open_attempt(&spec, now).await? {
            Opened::Open(attempt) => Ok(attempt),
            Opened::NoChallenge => Err(missing),
            Opened::Exhausted => Err(Error::TooManyAttempts),
            Opened::Locked { until: Some(t) } => Err(Error::Locked {
                retry_after: until(t, now),
            }),
            // The attempt that reached the threshold is setting the lock.
            Opened::Locked { until: None } => Err(Error::Locked {
                retry_after: self.inner.policy.lock_duration(0),
            }),
        }
    }

    /// Records a failed check of an opened attempt: the event, and the lock when the attempt
    /// reached the threshold. A store error here is logged: the failure was counted when the
    /// attempt was opened, and until the lock is written further attempts are refused.
    pub(crate) async fn fail_attempt(
        &self,
        user: &str,
        keys: &UserKeys,
        attempt: &OpenAttempt,
        now: Timestamp,
    ) {
        self.fail_on(user, keys, attempt, None, now).await;
    }

    /// As [`fail_attempt`](Self::fail_attempt), for a failure that stands only if `challenge`
    /// still does (a backup code found spent, perhaps by a concurrent pass of the same
    /// challenge): when the challenge was taken meanwhile nothing is charged and `false` is
    /// returned.
    pub(crate) async fn fail_on(
        &self,
        user: &str,
        keys: &UserKeys,
        attempt: &OpenAttempt,
        challenge: Option<&StoreKey>,
        now: Timestamp,
    ) -> bool {
        let policy = &self.inner.policy;
        let at_threshold = attempt.failures == policy.lockout_threshold;
        let lock_until = now.saturating_add(policy.lock_duration(attempt.level));
        let mut locked = false;
        if at_threshold || challenge.is_some() {
            let outcome = if at_threshold {
                Outcome::Lock {
                    until: lock_until,
                    level: attempt.level.saturating_add(1),
                }
            } else {
                Outcome::Failed
            };
            let settlement = Settlement {
                challenge,
                user: keys.user(),
                limits: self.limits(),
                outcome,
            };
            match self.inner.otp.settle(&settlement, now).await {
                Ok(Settled::ChallengeGone) => return false,
                Ok(_) => locked = at_threshold,
                Err(e) => {
                    tracing::warn!(target: "twofactor", error = %e, "setting a lock failed");
                }
            }
        }
        self.event(Event::CodeRejected {
            user: user.to_owned(),
        });
        if locked {
            self.event(Event::LockedOut {
                user: user.to_owned(),
                until: lock_until,
            });
        }
        true
    }

    /// Settles a passed check: takes `challenge` (when named) and records `totp_step` (when
    /// given) in one step, and ends the user's run. A challenge taken meanwhile by another
    /// attempt is `gone`, charged nothing; a TOTP step already used is [`Error::CodeReused`],
    /// a failure.
    pub(crate) async fn pass_attempt(
        &self,
        user: &str,
        keys: &UserKeys,
        attempt: &OpenAttempt,
        (challenge, totp_step): (Option<&StoreKey>, Option<u64>),
        gone: Error,
        now: Timestamp,
    ) -> Result<(), Error> {
        let settlement = Settlement {
            challenge,
            user: keys.user(),
            limits: self.limits(),
            outcome: Outcome::Passed { totp_step },
        };
        match self.inner.otp.settle(&settlement, now).await? {
            Settled::Done => Ok(()),
            Settled::Replayed => {
                self.event(Event::ReplayRejected {
                    user: user.to_owned(),
                });
                self.fail_attempt(user, keys, attempt, now).await;
                Err(Error::CodeReused)
            }
            Settled::ChallengeGone => Err(gone),
        }
    }
}
