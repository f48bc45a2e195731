//! [`MemoryOtpStore`]: the [`OtpStore`] primitives and composite operations, each under one
//! lock on the map.

use std::sync::Mutex;

use async_trait::async_trait;

use super::entry::{challenge_entry, Entry, Value};
use super::lock;
use super::state::OtpState;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::flow::{
    rules, AttemptSpec, Begun, ChallengeState, NewChallenge, Opened, Outcome, Reserved, SendSpec,
    Settled, Settlement, UserLimits, UserState,
};
use crate::store::{OtpStore, StoreKey};

/// An [`OtpStore`] in process memory, for a single instance and for tests.
///
/// Every operation holds one lock for its whole duration, so each is atomic. Expired records are
/// treated as absent at once, and garbage-collected a few at a time as writes happen, using the
/// `now` the service passes in: no operation scans the whole map, and the map does not grow
/// without bound. [`purge_expired`](Self::purge_expired) removes them all at once, for a host
/// that wants to run it from a timer. The table shrinks again after a flood has expired. State
/// is lost on restart and not shared between processes: run several instances on Redis or SQL
/// instead.
///
/// ```
/// # tokio_test_block_on(async {
/// use twofactor::{store::MemoryOtpStore, store::OtpStore, store::StoreKey, clock::Timestamp};
///
/// let store = MemoryOtpStore::new();
/// let key = StoreKey::new("{u1}:demo");
/// let now = Timestamp::from_unix_secs(100);
/// store.put(&key, b"v", Timestamp::from_unix_secs(160), now).await.unwrap();
/// assert_eq!(store.take(&key, now).await.unwrap().as_deref(), Some(&b"v"[..]));
/// assert_eq!(store.take(&key, now).await.unwrap(), None);
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryOtpStore {
    pub(super) state: Mutex<OtpState>,
}

impl MemoryOtpStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of records held, live or expired-but-not-yet-swept.
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every record that has expired by `now`, and returns how many were removed.
    ///
    /// This scans the whole map. Afterwards the table is shrunk to fit the records left when that
    /// makes it smaller (by the rule the sweep follows).
    pub fn purge_expired(&self, now: Timestamp) -> usize {
        let mut state = lock(&self.state);
        let before = state.entries.len();
        state.entries.retain(|_, e| e.live(now));
        let removed = before - state.entries.len();
        state.removed = state.removed.saturating_add(removed);
        state.shrink_if_sparse();
        removed
    }

    /// A copy of every live byte value, for tests that inspect what a store holds.
    pub fn dump(&self, now: Timestamp) -> Vec<(String, Vec<u8>)> {
        let state = lock(&self.state);
        let mut out: Vec<(String, Vec<u8>)> = state
            .entries
            .iter()
            .filter(|(_, e)| e.live(now))
            .map(|(k, e)| {
                let bytes = match &e.value {
                    Value::Bytes(b) => b.to_vec(),
                    Value::Number(n) => n.to_string().into_bytes(),
                };
                (k.to_string(), bytes)
            })
            .collect();
        out.sort();
        out
    }
}

#[async_trait]
impl OtpStore for MemoryOtpStore {
    async fn put(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        state.note_write(now);
        state.set(key, Entry::bytes(value, expires_at));
        Ok(())
    }

    async fn put_if_absent(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        if state.live(key, now).is_some() {
            return Ok(false);
        }
        state.note_write(now);
        state.set(key, Entry::bytes(value, expires_at));
        Ok(true)
    }

    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let state = lock(&self.state);
        Ok(match state.live(key, now).map(|e| &e.value) {
            Some(Value::Bytes(b)) => Some(b.to_vec()),
            Some(Value::Number(n)) => Some(n.to_string().into_bytes()),
            None => None,
        })
    }

    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let mut state = lock(&self.state);
        Ok(match state.remove(key) {
            Some(e) if e.live(now) => Some(e.into_bytes()),
            _ => None,
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        lock(&self.state).remove(key);
        Ok(())
    }

    async fn increment(
        &self,
        key: &StoreKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut state = lock(&self.state);
        state.note_write(now);
        // A live counter keeps its expiry and counts up in place; a missing or expired one
        // starts again.
        if let Some(entry) = state.entries.get_mut(key.as_str()) {
            if entry.live(now) {
                return match &mut entry.value {
                    Value::Number(n) => {
                        *n = n.saturating_add(1);
                        Ok(*n)
                    }
                    Value::Bytes(_) => {
                        Err(StoreError::corrupt("increment on a key that holds bytes"))
                    }
                };
            }
            *entry = Entry::number(1, expires_at);
            return Ok(1);
        }
        state.set(key, Entry::number(1, expires_at));
        Ok(1)
    }

    async fn advance(
        &self,
        key: &StoreKey,
        value: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let current = match state.live(key, now).map(|e| &e.value) {
            Some(Value::Number(n)) => Some(*n),
            Some(Value::Bytes(_)) => {
                return Err(StoreError::corrupt("advance on a key that holds bytes"))
            }
            None => None,
        };
        if current.is_some_and(|c| c >= value) {
            return Ok(false);
        }
        state.note_write(now);
        state.set(key, Entry::number(value, expires_at));
        Ok(true)
    }

    async fn begin_challenge(
        &self,
        new: &NewChallenge<'_>,
        now: Timestamp,
    ) -> Result<Begun, StoreError> {
        let mut state = lock(&self.state);
        let user_at = state.find(new.user);
        let (user, user_expires) = state.user_at(user_at, now)?;
        let mut user = rules::current(user, &new.limits, now);
        if let Some(until) = rules::locked(&user, now) {
            return Ok(Begun::Locked { until });
        }
        let cooldown_at = new.send.as_ref().map(|(spec, _)| state.find(spec.cooldown));
        let send = match (&new.send, cooldown_at) {
            (Some((spec, _)), Some(at)) => {
                let cooldown = state.live_at(at, now).map(|e| e.expires_at);
                Some(rules::reserve(&mut user, cooldown, spec, now))
            }
            _ => None,
        };
        if let (true, Some(Err(refused))) = (new.send_required, send) {
            return Ok(Begun::SendRefused(refused));
        }
        let challenge_at = state.find(new.challenge);
        if state.live_at(challenge_at, now).is_some() {
            return Ok(Begun::Collision);
        }
        let mut code = None;
        let keep = rules::keep_for_challenge(&user, user_expires, new.expires_at);
        if let (Some((spec, c)), Some(Ok(())), Some(at)) = (&new.send, send, cooldown_at) {
            state.set_at(at, spec.cooldown, Entry::bytes(&[], spec.cooldown_until));
            let expires = rules::user_expires_at(&user, &new.limits, now)
                .max(user_expires)
                .max(keep.unwrap_or(Timestamp::EPOCH));
            state.set_user_at(user_at, new.user, &user, expires);
            code = Some(c.to_vec());
        } else if let Some(expires) = keep {
            state.set_user_at(user_at, new.user, &user, expires);
        }
        let ch = ChallengeState::new(new.value.to_vec(), code, new.expires_at).in_epoch(user.epoch);
        state.set_at(challenge_at, new.challenge, challenge_entry(&ch));
        state.note_write(now);
        Ok(Begun::Created { send })
    }

    async fn reserve_send(
        &self,
        user: &StoreKey,
        challenge: Option<&StoreKey>,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<Reserved, StoreError> {
        let mut state = lock(&self.state);
        let (mut record, expires) = state.user(user, now)?;
        let value = match challenge {
            Some(key) => match state.challenge(key, now)? {
                Some(ch) if rules::in_epoch(ch.epoch, &record) => Some(ch.value),
                _ => return Ok(Reserved::NoChallenge),
            },
            None => None,
        };
        if record.sends_until <= now {
            record.sends = 0;
        }
        if let Err(refused) = state.reserve(&mut record, spec, now) {
            return Ok(Reserved::Refused(refused));
        }
        state.note_write(now);
        state.set(spec.cooldown, Entry::bytes(&[], spec.cooldown_until));
        state.set_user(user, &record, expires.max(record.sends_until));
        Ok(Reserved::Granted(value))
    }

    async fn store_code(
        &self,
        key: &StoreKey,
        create: Option<(&[u8], Timestamp)>,
        code: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let ch = match (state.challenge(key, now)?, create) {
            (Some(mut ch), create) => {
                if let Some((value, expires_at)) = create {
                    // A new pending record: its attempt count stays, it is bound to no epoch.
                    ch.value = value.to_vec();
                    ch.expires_at = expires_at;
                    ch.epoch = None;
                }
                ch.code = Some(code.to_vec());
                ch
            }
            (None, Some((value, expires_at))) => {
                ChallengeState::new(value.to_vec(), Some(code.to_vec()), expires_at)
            }
            (None, None) => return Ok(false),
        };
        state.note_write(now);
        state.set(key, challenge_entry(&ch));
        Ok(true)
    }

    async fn open_attempt(
        &self,
        spec: &AttemptSpec<'_>,
        now: Timestamp,
    ) -> Result<Opened, StoreError> {
        let mut state = lock(&self.state);
        let challenge_at = spec.challenge.and_then(|(key, _)| state.find(key));
        let mut challenge = match spec.challenge {
            Some(_) => state.challenge_at(challenge_at, now)?,
            None => None,
        };
        let user_at = state.find(spec.user);
        let (user, user_expires) = state.user_at(user_at, now)?;
        let mut user = rules::current(user, &spec.limits, now);
        let opened = rules::open(
            challenge.as_mut(),
            spec.challenge.map(|(_, max)| max),
            &mut user,
            &spec.limits,
            now,
        );
        if let Opened::Open(_) = opened {
            if let (Some(at), Some(ch)) = (challenge_at, &challenge) {
                state.count_attempt_at(at, ch.attempts);
            }
            let expires = rules::user_expires_at(&user, &spec.limits, now).max(user_expires);
            state.set_user_at(user_at, spec.user, &user, expires);
            state.note_write(now);
        }
        Ok(opened)
    }

    async fn settle(
        &self,
        settlement: &Settlement<'_>,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        let mut state = lock(&self.state);
        let challenge_at = settlement.challenge.and_then(|key| state.find(key));
        let (live, epoch) = match settlement.challenge {
            Some(_) => match state.challenge_epoch_at(challenge_at, now)? {
                Some(epoch) => (true, epoch),
                None => (false, None),
            },
            None => (true, None),
        };
        let user_at = state.find(settlement.user);
        let (user, user_expires) = state.user_at(user_at, now)?;
        let mut user = rules::current(user, &settlement.limits, now);
        let settled = rules::settle(live, epoch, &mut user, settlement.outcome, now);
        if settled == Settled::Done && settlement.outcome != Outcome::Failed {
            let expires = rules::user_expires_at(&user, &settlement.limits, now).max(user_expires);
            // Written before the challenge is removed: a removal moves the last record.
            state.set_user_at(user_at, settlement.user, &user, expires);
            if let (Some(at), Outcome::Passed { .. }) = (challenge_at, settlement.outcome) {
                state.remove_at(at);
            }
            state.note_write(now);
        }
        Ok(settled)
    }

    async fn user_state(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<UserState, StoreError> {
        let state = lock(&self.state);
        let (record, _) = state.user(user, now)?;
        Ok(rules::current(record, limits, now))
    }

    async fn end_challenges(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let mut state = lock(&self.state);
        let user_at = state.find(user);
        let (record, user_expires) = state.user_at(user_at, now)?;
        let mut record = rules::current(record, limits, now);
        let epoch = rules::end_challenges(&mut record);
        let expires = rules::user_expires_at(&record, limits, now).max(user_expires);
        state.set_user_at(user_at, user, &record, expires);
        state.note_write(now);
        Ok(epoch)
    }
}
