//! The rules of the composite operations, as pure functions over the records: a native store
//! loads the records, applies the rule and writes back what changed, all in one atomic step.

use super::{
    ChallengeState, OpenAttempt, Opened, Outcome, SendRefused, SendSpec, Settled, UserLimits,
    UserState,
};
use crate::clock::Timestamp;

/// The user's record as seen at `now`: a lapsed run of failures, lock level or send window
/// is forgotten.
pub fn current(mut user: UserState, limits: &UserLimits, now: Timestamp) -> UserState {
    if user.failures_until <= now {
        user.failures = 0;
    }
    if user.level > 0 && user.locked_until.saturating_add(limits.failure_window) <= now {
        user.level = 0;
    }
    if user.sends_until <= now {
        user.sends = 0;
    }
    user
}

/// Reserves a send for `user`, given whether a cooldown is live (and until when). Returns
/// the refusal, or changes `user` and returns `Ok`; the caller then starts the cooldown.
pub fn reserve(
    user: &mut UserState,
    cooldown: Option<Timestamp>,
    spec: &SendSpec<'_>,
    now: Timestamp,
) -> Result<(), SendRefused> {
    if let Some(until) = cooldown {
        return Err(SendRefused::Cooldown { until });
    }
    if user.sends >= spec.max_sends {
        return Err(SendRefused::Capped {
            until: user.sends_until,
        });
    }
    if user.sends == 0 {
        user.sends_until = now.saturating_add(spec.send_window);
    }
    user.sends = user.sends.saturating_add(1);
    Ok(())
}

/// Whether the user's code step is locked at `now` (for `begin_challenge`).
pub fn locked(user: &UserState, now: Timestamp) -> Option<Timestamp> {
    (user.locked_until > now).then_some(user.locked_until)
}

/// Whether a challenge stamped with `challenge_epoch` still stands for `user`: it was begun in
/// the user's current epoch, or is bound to none (a pending code made by `store_code`).
pub fn in_epoch(challenge_epoch: Option<u32>, user: &UserState) -> bool {
    challenge_epoch.is_none_or(|epoch| epoch == user.epoch)
}

/// Ends every challenge of the user begun so far: moves the epoch on by one (wrapping) and
/// returns the new epoch. `end_challenges` does it alone; a lock does it too.
pub fn end_challenges(user: &mut UserState) -> u32 {
    user.epoch = user.epoch.wrapping_add(1);
    user.epoch
}

/// Opens an attempt: counts it on the challenge (when named) and against the user's run.
/// `challenge` is the live challenge, if any; a challenge of an earlier epoch (see
/// [`in_epoch`]) is refused as `Opened::NoChallenge`, as a missing one is (checked after the
/// cap and the lock, so that a locked user sees the lock). On `Opened::Open` both records were
/// changed and must be written back, otherwise nothing was changed.
pub fn open(
    challenge: Option<&mut ChallengeState>,
    max_attempts: Option<u32>,
    user: &mut UserState,
    limits: &UserLimits,
    now: Timestamp,
) -> Opened {
    let mut attempts = 0;
    let mut challenge = challenge;
    if let Some(max) = max_attempts {
        let Some(ch) = challenge.as_deref() else {
            return Opened::NoChallenge;
        };
        if ch.attempts >= max {
            return Opened::Exhausted;
        }
        attempts = ch.attempts + 1;
    }
    if let Some(until) = locked(user, now) {
        return Opened::Locked { until: Some(until) };
    }
    if user.failures >= limits.threshold {
        return Opened::Locked { until: None };
    }
    // After the lock: while it runs, an ended challenge answers as the user's other ones do.
    if challenge
        .as_deref()
        .is_some_and(|ch| !in_epoch(ch.epoch, user))
    {
        return Opened::NoChallenge;
    }
    if user.failures == 0 {
        user.failures_until = now.saturating_add(limits.failure_window);
    }
    user.failures += 1;
    if let Some(ch) = challenge.as_deref_mut() {
        ch.attempts = attempts;
    }
    Opened::Open(OpenAttempt {
        challenge: challenge.as_deref().cloned(),
        attempts,
        failures: user.failures,
        level: user.level,
    })
}

/// Settles an attempt. `challenge_live` says whether the named challenge is still live
/// (`true` when none was named), and `challenge_epoch` is its epoch (`None` when none was named
/// or it is bound to none). A pass on a challenge of an earlier epoch (see [`in_epoch`]) is
/// [`Settled::ChallengeGone`]: the user's factors changed, or a lock was set, since it was
/// begun. A lock also ends every challenge of the user ([`end_challenges`]). On
/// `Settled::Done` the caller writes `user` back (unless the outcome was `Failed`) and, on a
/// pass with a challenge, deletes the challenge; otherwise it writes nothing.
pub fn settle(
    challenge_live: bool,
    challenge_epoch: Option<u32>,
    user: &mut UserState,
    outcome: Outcome,
    now: Timestamp,
) -> Settled {
    match outcome {
        Outcome::Passed { totp_step } => {
            if !challenge_live || !in_epoch(challenge_epoch, user) {
                return Settled::ChallengeGone;
            }
            if let Some(step) = totp_step {
                if user.last_step.is_some_and(|last| last >= step) {
                    return Settled::Replayed;
                }
                user.last_step = Some(step);
            }
            user.failures = 0;
            user.level = 0;
            user.locked_until = Timestamp::EPOCH;
            user.last_verified_at = Some(user.last_verified_at.map_or(now, |t| t.max(now)));
            Settled::Done
        }
        Outcome::Failed => {
            if !challenge_live {
                return Settled::ChallengeGone;
            }
            Settled::Done
        }
        Outcome::Lock { until, level } => {
            if !challenge_live {
                return Settled::ChallengeGone;
            }
            user.failures = 0;
            user.level = level;
            user.locked_until = user.locked_until.max(until);
            end_challenges(user);
            Settled::Done
        }
    }
}

/// When the user's record expires after a write at `now`: kept `retention`, and never
/// before its lock and run are over.
///
/// A store never moves a live record's expiry earlier: it writes the later of this and the
/// expiry the record had. With [`keep_for_challenge`], that keeps a record whose epoch is not 0
/// until every challenge stamped with it has lapsed, so that a lapsed record (read as epoch 0)
/// can never count up again to the epoch of a challenge still live.
pub fn user_expires_at(user: &UserState, limits: &UserLimits, now: Timestamp) -> Timestamp {
    now.saturating_add(limits.retention)
        .max(user.failures_until)
        .max(user.locked_until.saturating_add(limits.failure_window))
        .max(user.sends_until)
}

/// For `begin_challenge`: the expiry the user's record (expiring at `record_expires_at`) needs
/// so as to outlive a challenge stamped with its epoch and expiring at `challenge_expires_at`,
/// when the store must write it for that; `None` when it lives long enough already, or its
/// epoch is 0 (the epoch a missing record reads as).
pub fn keep_for_challenge(
    user: &UserState,
    record_expires_at: Timestamp,
    challenge_expires_at: Timestamp,
) -> Option<Timestamp> {
    (user.epoch != 0 && record_expires_at < challenge_expires_at).then_some(challenge_expires_at)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::flow::rules;

    #[test]
    fn open_counts_before_comparing_and_stops_at_the_threshold() {
        let limits = UserLimits::new(2, Duration::from_secs(100), Duration::from_secs(1_000));
        let now = Timestamp::from_unix_secs(10);
        let mut user = UserState::default();
        let mut ch = ChallengeState::new(b"v".to_vec(), None, Timestamp::from_unix_secs(50));
        let first = rules::open(Some(&mut ch), Some(5), &mut user, &limits, now);
        assert!(matches!(
            first,
            Opened::Open(OpenAttempt {
                attempts: 1,
                failures: 1,
                ..
            })
        ));
        let second = rules::open(Some(&mut ch), Some(5), &mut user, &limits, now);
        assert!(matches!(
            second,
            Opened::Open(OpenAttempt {
                attempts: 2,
                failures: 2,
                ..
            })
        ));
        let third = rules::open(Some(&mut ch), Some(5), &mut user, &limits, now);
        assert_eq!(third, Opened::Locked { until: None });
        assert_eq!(ch.attempts, 2, "a refused attempt is not counted");
        let later = rules::current(user, &limits, now.saturating_add(Duration::from_secs(100)));
        assert_eq!(later.failures, 0, "the run lapses after the window");
    }

    #[test]
    fn an_earlier_epoch_ends_a_challenge_and_a_lock_moves_the_epoch_on() {
        let limits = UserLimits::new(5, Duration::from_secs(100), Duration::from_secs(1_000));
        let now = Timestamp::from_unix_secs(10);
        let mut user = UserState::default();
        let exp = Timestamp::from_unix_secs(50);
        let mut ch = ChallengeState::new(b"v".to_vec(), None, exp).in_epoch(0);
        let mut pending = ChallengeState::new(b"p".to_vec(), None, exp);
        assert_eq!(rules::end_challenges(&mut user), 1);
        assert_eq!(
            rules::open(Some(&mut ch), Some(5), &mut user, &limits, now),
            Opened::NoChallenge
        );
        assert_eq!((ch.attempts, user.failures), (0, 0), "nothing counted");
        assert!(matches!(
            rules::open(Some(&mut pending), Some(5), &mut user, &limits, now),
            Opened::Open(_)
        ));
        let pass = Outcome::Passed { totp_step: Some(1) };
        assert_eq!(
            rules::settle(true, Some(0), &mut user, pass, now),
            Settled::ChallengeGone
        );
        assert_eq!(user.last_step, None);
        assert_eq!(
            rules::settle(true, Some(1), &mut user, pass, now),
            Settled::Done
        );
        let lock = Outcome::Lock {
            until: Timestamp::from_unix_secs(20),
            level: 1,
        };
        assert_eq!(
            rules::settle(true, Some(0), &mut user, lock, now),
            Settled::Done
        );
        assert_eq!(user.epoch, 2, "a lock ends the challenges, stale or not");
        user.epoch = u32::MAX;
        assert_eq!(rules::end_challenges(&mut user), 0, "epochs wrap");
        // A record whose epoch is not 0 is kept for a challenge stamped with it.
        user.epoch = 3;
        let record = Timestamp::from_unix_secs(40);
        assert_eq!(rules::keep_for_challenge(&user, record, exp), Some(exp));
        assert_eq!(rules::keep_for_challenge(&user, exp, exp), None);
        user.epoch = 0;
        assert_eq!(rules::keep_for_challenge(&user, record, exp), None);
    }
}
