//! The values passed between the service and a store in the composite operations: the records a
//! store keeps per user and per challenge, the requests, and the outcomes.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::codec::{Reader, Writer};
use crate::error::StoreError;
use crate::store::key::StoreKey;

/// What the login steps keep per user in the [`OtpStore`](crate::store::OtpStore).
///
/// A native store keeps it as one record (see [`UserState::to_bytes`]) and changes it only
/// through the [`rules`](super::rules).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserState {
    /// Failures counted in the current run (attempts opened and not yet passed).
    pub failures: u32,
    /// When the current run of failures is forgotten.
    pub failures_until: Timestamp,
    /// Locks set in the current run; each one lasts longer.
    pub level: u32,
    /// Until when the code step is locked (`EPOCH`: not locked).
    pub locked_until: Timestamp,
    /// The last TOTP time step accepted for the user.
    pub last_step: Option<u64>,
    /// Codes sent in the current send window.
    pub sends: u32,
    /// When the current send window ends.
    pub sends_until: Timestamp,
    /// When the user last passed a code check.
    pub last_verified_at: Option<Timestamp>,
    /// The user's epoch: every challenge is stamped with the epoch it was begun in, and is dead
    /// once the epoch moved on. [`end_challenges`](crate::store::OtpStore::end_challenges) (a
    /// change of the user's factors) and a lock each move it on by one (see
    /// [`rules::end_challenges`](super::rules::end_challenges)).
    pub epoch: u32,
}

/// The length of [`UserState::to_bytes`] (version 2).
pub const USER_STATE_LEN: usize = USER_STATE_V1_LEN + 4;

/// The length of a version-1 record, which [`UserState::from_bytes`] still reads (with epoch 0):
/// the form before the epoch was added.
pub const USER_STATE_V1_LEN: usize = 1 + 4 + 8 + 4 + 8 + 9 + 4 + 8 + 9;

const USER_STATE_VERSION: u8 = 2;

impl UserState {
    /// The fixed binary form: a version byte (2), then each field big-endian in the order
    /// declared, options as a presence byte and a value.
    ///
    /// Version 1, read by [`from_bytes`](Self::from_bytes) as epoch 0, is the same without the
    /// trailing epoch.
    pub fn to_bytes(&self) -> [u8; USER_STATE_LEN] {
        let mut w = Writer::with_capacity(USER_STATE_LEN);
        w.u8(USER_STATE_VERSION)
            .u32(self.failures)
            .u64(self.failures_until.as_unix_secs())
            .u32(self.level)
            .u64(self.locked_until.as_unix_secs())
            .opt_u64(self.last_step)
            .u32(self.sends)
            .u64(self.sends_until.as_unix_secs())
            .opt_u64(self.last_verified_at.map(Timestamp::as_unix_secs))
            .u32(self.epoch);
        let mut out = [0u8; USER_STATE_LEN];
        let bytes = w.into_vec();
        if let Some(dst) = out.get_mut(..bytes.len()) {
            dst.copy_from_slice(&bytes);
        }
        out
    }

    /// Reads [`to_bytes`](Self::to_bytes) output, or a version-1 record (epoch 0).
    ///
    /// # Errors
    /// A corrupt-record error for any other input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        Self::read(bytes).ok_or_else(|| StoreError::corrupt("malformed user record"))
    }

    fn read(bytes: &[u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != 1 && version != USER_STATE_VERSION {
            return None;
        }
        let mut state = UserState {
            failures: r.u32()?,
            failures_until: Timestamp::from_unix_secs(r.u64()?),
            level: r.u32()?,
            locked_until: Timestamp::from_unix_secs(r.u64()?),
            last_step: r.opt_u64()?,
            sends: r.u32()?,
            sends_until: Timestamp::from_unix_secs(r.u64()?),
            last_verified_at: r.opt_u64()?.map(Timestamp::from_unix_secs),
            epoch: 0,
        };
        if version == USER_STATE_VERSION {
            state.epoch = r.u32()?;
        }
        r.is_empty().then_some(state)
    }
}

/// A live challenge (or pending code) as a store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChallengeState {
    /// The value written when it was created (opaque to the store).
    pub value: Vec<u8>,
    /// The current code, if one was stored (opaque to the store).
    pub code: Option<Vec<u8>>,
    /// Attempts opened on it so far.
    pub attempts: u32,
    /// When it lapses.
    pub expires_at: Timestamp,
    /// The user's [epoch](UserState::epoch) when it was begun: it is dead once the user's epoch
    /// differs. `None` for a record bound to no epoch: a pending code created by
    /// [`store_code`](crate::store::OtpStore::store_code), which is not told the user.
    /// A record written before epochs existed reads as epoch 0.
    pub epoch: Option<u32>,
}

impl ChallengeState {
    /// A fresh record with no attempt yet, bound to no epoch.
    pub fn new(value: Vec<u8>, code: Option<Vec<u8>>, expires_at: Timestamp) -> Self {
        ChallengeState {
            value,
            code,
            attempts: 0,
            expires_at,
            epoch: None,
        }
    }

    /// The same, stamped with the user's epoch `epoch` (a challenge begun by
    /// [`begin_challenge`](crate::store::OtpStore::begin_challenge)).
    #[must_use]
    pub fn in_epoch(mut self, epoch: u32) -> Self {
        self.epoch = Some(epoch);
        self
    }
}

/// The per-user limits an operation enforces, and how long the user's record is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserLimits {
    /// Consecutive failures allowed before the code step locks.
    pub threshold: u32,
    /// How long a run of failures, and a lock level after its lock lifts, is remembered.
    pub failure_window: Duration,
    /// How long the user's record is kept after the operation writes it.
    pub retention: Duration,
}

impl UserLimits {
    /// Limits from their parts.
    pub fn new(threshold: u32, failure_window: Duration, retention: Duration) -> Self {
        UserLimits {
            threshold,
            failure_window,
            retention,
        }
    }
}

/// A send to reserve: the cooldown and the per-user cap.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct SendSpec<'a> {
    /// The cooldown record of what is sent (one challenge, or one purpose of one user).
    pub cooldown: &'a StoreKey,
    /// Until when the next send of the same kind is refused.
    pub cooldown_until: Timestamp,
    /// Sends allowed per user and window.
    pub max_sends: u32,
    /// The send window, started by its first send.
    pub send_window: Duration,
}

impl<'a> SendSpec<'a> {
    /// A send from its parts.
    pub fn new(
        cooldown: &'a StoreKey,
        cooldown_until: Timestamp,
        max_sends: u32,
        send_window: Duration,
    ) -> Self {
        SendSpec {
            cooldown,
            cooldown_until,
            max_sends,
            send_window,
        }
    }
}

/// Why a send was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendRefused {
    /// Within the cooldown, which ends then.
    Cooldown {
        /// The end of the cooldown.
        until: Timestamp,
    },
    /// The user's send cap is reached until then.
    Capped {
        /// The end of the send window.
        until: Timestamp,
    },
}

/// A challenge to create with [`OtpStore::begin_challenge`](crate::store::OtpStore::begin_challenge).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct NewChallenge<'a> {
    /// The user's record.
    pub user: &'a StoreKey,
    /// The user's limits.
    pub limits: UserLimits,
    /// Where the challenge goes (under the user's hash tag).
    pub challenge: &'a StoreKey,
    /// Its value.
    pub value: &'a [u8],
    /// When it lapses.
    pub expires_at: Timestamp,
    /// A code to send with it: the send to reserve, and the code stored if it is granted.
    pub send: Option<(SendSpec<'a>, &'a [u8])>,
    /// Whether a refused send refuses the whole challenge (nothing is created).
    pub send_required: bool,
}

/// The outcome of [`OtpStore::begin_challenge`](crate::store::OtpStore::begin_challenge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Begun {
    /// The challenge was created; `send` says whether its code's send was granted (and the code
    /// stored), when one was asked for.
    Created {
        /// The send's outcome.
        send: Option<Result<(), SendRefused>>,
    },
    /// The send was required and refused: nothing was created.
    SendRefused(SendRefused),
    /// The user is locked until then: nothing was created.
    Locked {
        /// The end of the lock.
        until: Timestamp,
    },
    /// A live record already exists under the challenge key: nothing was created.
    Collision,
}

/// The outcome of [`OtpStore::reserve_send`](crate::store::OtpStore::reserve_send).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reserved {
    /// Granted: the cooldown runs and the send is counted. Holds the challenge's value when one
    /// was named.
    Granted(Option<Vec<u8>>),
    /// Refused.
    Refused(SendRefused),
    /// The named challenge is not live.
    NoChallenge,
}

/// One attempt to open with [`OtpStore::open_attempt`](crate::store::OtpStore::open_attempt).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct AttemptSpec<'a> {
    /// The challenge or pending code answered, and its attempt cap.
    pub challenge: Option<(&'a StoreKey, u32)>,
    /// The user's record.
    pub user: &'a StoreKey,
    /// The user's limits.
    pub limits: UserLimits,
}

/// An attempt counted by [`OtpStore::open_attempt`](crate::store::OtpStore::open_attempt): the caller
/// may now compare.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenAttempt {
    /// The challenge, when one was named.
    pub challenge: Option<ChallengeState>,
    /// This attempt's number on the challenge (1-based; 0 without a challenge).
    pub attempts: u32,
    /// This attempt's number in the user's run of failures (1-based).
    pub failures: u32,
    /// Locks already set in the user's run.
    pub level: u32,
}

/// The outcome of [`OtpStore::open_attempt`](crate::store::OtpStore::open_attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Opened {
    /// Counted; compare, then [`settle`](crate::store::OtpStore::settle).
    Open(OpenAttempt),
    /// The named challenge is not live.
    NoChallenge,
    /// The challenge's attempts are used up; nothing was counted.
    Exhausted,
    /// The user is locked; nothing was counted against the user. `until` is `None` while the
    /// attempt that reached the threshold is still being settled.
    Locked {
        /// The end of the lock, when known.
        until: Option<Timestamp>,
    },
}

/// How an opened attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The code matched. `totp_step` is the TOTP step it matched, to record (and refuse if not
    /// newer than the last one).
    Passed {
        /// The matched TOTP step, if the code was a TOTP code.
        totp_step: Option<u64>,
    },
    /// The code failed, where the failure depends on the challenge still standing (a backup
    /// code found spent may have been spent by a concurrent pass of the same challenge): nothing
    /// is written; [`Settled::ChallengeGone`] says the challenge was taken meanwhile.
    Failed,
    /// The code failed and the attempt reached the threshold: lock until `until`, at `level`
    /// (unless the named challenge was taken meanwhile).
    Lock {
        /// The end of the lock.
        until: Timestamp,
        /// The new lock level.
        level: u32,
    },
}

/// An attempt to settle with [`OtpStore::settle`](crate::store::OtpStore::settle).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Settlement<'a> {
    /// The challenge the attempt was opened on, if any.
    pub challenge: Option<&'a StoreKey>,
    /// The user's record.
    pub user: &'a StoreKey,
    /// The user's limits.
    pub limits: UserLimits,
    /// How the attempt ended.
    pub outcome: Outcome,
}

/// The result of [`OtpStore::settle`](crate::store::OtpStore::settle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// Done: on a pass, the challenge was taken, the step recorded and the run ended.
    Done,
    /// The challenge was no longer live (another attempt took it): nothing was written.
    ChallengeGone,
    /// The TOTP step was not newer than the last one accepted: nothing was written.
    Replayed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_state_round_trips_and_refuses_garbage() {
        let s = UserState {
            failures: 3,
            failures_until: Timestamp::from_unix_secs(99),
            level: 2,
            locked_until: Timestamp::from_unix_secs(1_000),
            last_step: Some(u64::MAX),
            sends: 4,
            sends_until: Timestamp::MAX,
            last_verified_at: None,
            epoch: 7,
        };
        assert_eq!(UserState::from_bytes(&s.to_bytes()).unwrap(), s);
        assert!(UserState::from_bytes(&[]).is_err());
        let mut bad = s.to_bytes();
        bad[0] = 9;
        assert!(UserState::from_bytes(&bad).is_err());
        let mut bad = s.to_bytes();
        // The presence byte of last_step, after the version, failures, failures_until, level
        // and locked_until.
        bad[1 + 4 + 8 + 4 + 8] = 7;
        assert!(UserState::from_bytes(&bad).is_err());
        // A version-2 record cut to the length of version 1, and the reverse: refused.
        let mut cut = s.to_bytes()[..USER_STATE_V1_LEN].to_vec();
        assert!(UserState::from_bytes(&cut).is_err());
        cut[0] = 1;
        cut.extend_from_slice(&[0, 0, 0, 7]);
        assert!(UserState::from_bytes(&cut).is_err());
    }

    /// A record written before the epoch was added (version 1) reads with epoch 0, and is
    /// written back as version 2.
    #[test]
    fn a_version_1_user_record_reads_with_epoch_0() {
        let s = UserState {
            failures: 2,
            locked_until: Timestamp::from_unix_secs(500),
            last_step: Some(9),
            ..UserState::default()
        };
        let v1 = version_1_bytes(&s);
        assert_eq!(v1.len(), USER_STATE_V1_LEN);
        let read = UserState::from_bytes(&v1).unwrap();
        assert_eq!(read, s);
        assert_eq!(read.epoch, 0);
        let v2 = read.to_bytes();
        assert_eq!((v2[0], v2.len()), (2, USER_STATE_LEN));
        assert_eq!(v2[1..USER_STATE_V1_LEN], v1[1..]);
    }

    /// The version-1 form of `s` (its epoch dropped).
    pub(crate) fn version_1_bytes(s: &UserState) -> Vec<u8> {
        let mut v1 = s.to_bytes()[..USER_STATE_V1_LEN].to_vec();
        v1[0] = 1;
        v1
    }
}
