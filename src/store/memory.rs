//! In-memory stores: the embedded default for a single process, and the reference for the
//! conformance suite.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use indexmap::IndexMap;

use super::flow::{
    rules, AttemptSpec, Begun, ChallengeState, NewChallenge, Opened, Outcome, Reserved,
    SendRefused, SendSpec, Settled, Settlement, UserLimits, UserState,
};
use super::{BackupCodeRecord, EnrollmentRecord, EnrollmentStore, OtpStore, Revision, StoreKey};
use crate::clock::Timestamp;
use crate::codec::{Reader, Writer};
use crate::error::StoreError;

/// Live records the sweep steps over per write, at most.
const SWEEP_CHECKS: usize = 4;
/// Expired records one write may remove, at least. Removing is paid for by the write that
/// inserted the record, so it does not count against [`SWEEP_CHECKS`].
const SWEEP_REMOVALS: usize = 32;
/// One write may also remove up to `len >> SWEEP_REMOVALS_SHIFT` expired records (1/4096 of the
/// map), so that a large map left full of expired records drains in a few thousand writes.
const SWEEP_REMOVALS_SHIFT: u32 = 12;
/// Tables of at most this capacity are never shrunk: too small to matter.
const SHRINK_FLOOR: usize = 1024;

/// The slots of a hash table sized for `n` records: a power of two, at most 7/8 full (as
/// hashbrown, under `IndexMap`, sizes them). Only when the table shrinks depends on it.
fn slots(n: usize) -> usize {
    (n.saturating_mul(8) / 7).next_power_of_two()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a map half-updated (every update is a whole
    // insert, remove or shrink), so a poisoned lock is safe to use.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
enum Value {
    Bytes(Box<[u8]>),
    Number(u64),
}

/// One record.
///
/// Every pending record costs this struct inline (plus the key's pointer and the map's stored
/// hash: 24 more bytes), and the table keeps up to ~2x slack: keep new fields small, and put
/// variable-length data behind a `Box<[u8]>` (16 bytes) rather than a `Vec` (24).
/// `tests/heap.rs` checks the whole cost of a challenge-sized record.
#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Timestamp,
}

impl Entry {
    fn bytes(value: &[u8], expires_at: Timestamp) -> Self {
        Entry {
            value: Value::Bytes(value.into()),
            expires_at,
        }
    }

    fn number(n: u64, expires_at: Timestamp) -> Self {
        Entry {
            value: Value::Number(n),
            expires_at,
        }
    }

    fn live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }

    fn into_bytes(self) -> Vec<u8> {
        match self.value {
            Value::Bytes(b) => b.into_vec(),
            Value::Number(n) => n.to_string().into_bytes(),
        }
    }
}

/// A challenge's entry: the attempt count, the code (a presence byte and a length-prefixed
/// string) and the value, in one allocation.
fn challenge_entry(ch: &ChallengeState) -> Entry {
    let code_len = ch.code.as_ref().map_or(0, |c| c.len() + 2);
    let mut w = Writer::with_capacity(5 + code_len + ch.value.len());
    w.u32(ch.attempts);
    match &ch.code {
        Some(code) => w.u8(1).bytes(code),
        None => w.u8(0),
    };
    let mut bytes = w.into_vec();
    bytes.extend_from_slice(&ch.value);
    // Sized exactly above: the box takes the vector's buffer, no copy.
    Entry {
        value: Value::Bytes(bytes.into_boxed_slice()),
        expires_at: ch.expires_at,
    }
}

/// Reads the bytes of a [`challenge_entry`] back.
pub(crate) fn read_challenge_entry(
    bytes: &[u8],
    expires_at: Timestamp,
) -> Result<ChallengeState, StoreError> {
    let mut r = Reader(bytes);
    let read = (|| {
        let attempts = r.u32()?;
        let code = match r.u8()? {
            0 => None,
            1 => Some(r.bytes()?.to_vec()),
            _ => return None,
        };
        Some((attempts, code))
    })();
    let (attempts, code) = read.ok_or_else(|| StoreError::corrupt("malformed challenge"))?;
    Ok(ChallengeState {
        value: r.0.to_vec(),
        code,
        attempts,
        expires_at,
    })
}

/// The bytes of a [`challenge_entry`].
#[cfg(feature = "fuzzing")]
pub(crate) fn challenge_entry_bytes(ch: &ChallengeState) -> Vec<u8> {
    challenge_entry(ch).into_bytes()
}

/// The records, and the sweep that garbage-collects the expired ones.
///
/// The map keeps its records in one dense vector (an [`IndexMap`]), so the sweep is a cursor
/// into it: each write steps over at most [`SWEEP_CHECKS`] live records and removes the expired
/// ones it meets (`swap_remove`, O(1)), so no write ever scans the whole map. Every record is
/// reached within `len / SWEEP_CHECKS` writes. Expired records left behind the cursor number at
/// most the records inserted during one pass (one per write), so the map holds at most about
/// 4/3 of what is live plus what expired during the last pass. A map full of expired records
/// (a flood gone stale) drains faster: a write may remove up to `len / 4096` of them, each paid
/// for by its own insertion. Liveness is always decided from `expires_at` and the `now` of the
/// call: the sweep is only garbage collection.
#[derive(Debug, Default)]
struct OtpState {
    entries: IndexMap<Box<str>, Entry>,
    /// The position the sweep looks at next.
    cursor: usize,
    /// The most records held since the table was last shrunk: it has room for at least these.
    peak: usize,
    /// Records removed since the table was last shrunk: what pays for the next shrink.
    removed: usize,
    /// How many times the table was shrunk.
    shrinks: u64,
}

impl OtpState {
    /// Runs one bounded step of the sweep; called by every write that may insert.
    fn note_write(&mut self, now: Timestamp) {
        let mut checks = SWEEP_CHECKS;
        let mut removals = SWEEP_REMOVALS.max(self.entries.len() >> SWEEP_REMOVALS_SHIFT);
        while checks > 0 && removals > 0 && !self.entries.is_empty() {
            if self.cursor >= self.entries.len() {
                self.cursor = 0;
            }
            let expired = self
                .entries
                .get_index(self.cursor)
                .is_some_and(|(_, e)| !e.live(now));
            if expired {
                // The last record moves into this slot: look at it next.
                self.entries.swap_remove_index(self.cursor);
                self.removed = self.removed.saturating_add(1);
                removals -= 1;
            } else {
                self.cursor += 1;
                checks -= 1;
            }
        }
        self.shrink_if_sparse();
    }

    /// Gives memory back once a table fitted to 5/4 of the records left would be smaller than
    /// the one held, shrinking it to fit.
    ///
    /// A shrink rehashes the records left, O(len): it waits until at least as many records have
    /// been removed since the last one, so it is amortized O(1) per removal; and the 5/4 margin
    /// keeps a map that hovers around a growth boundary from growing and shrinking over and
    /// over. The table held is sized from the larger of the most records it held since the last
    /// shrink (which follows a draining flood at once) and the capacity it reports (which sees
    /// the slack left after a shrink, but which tombstones left by removals lower for a while).
    fn shrink_if_sparse(&mut self) {
        let held = self.peak.max(self.entries.capacity());
        let len = self.entries.len();
        if held > SHRINK_FLOOR && slots(len + len / 4) < slots(held) && self.removed >= len {
            self.entries.shrink_to_fit();
            self.peak = len;
            self.removed = 0;
            self.shrinks = self.shrinks.wrapping_add(1);
        }
    }

    /// Removes the record under `key`, live or not.
    fn remove(&mut self, key: &StoreKey) -> Option<Entry> {
        let entry = self.entries.swap_remove(key.as_str());
        if entry.is_some() {
            self.removed = self.removed.saturating_add(1);
        }
        entry
    }

    /// Removes the record at `at` (from [`find`](Self::find)); later positions may move.
    fn remove_at(&mut self, at: usize) {
        if self.entries.swap_remove_index(at).is_some() {
            self.removed = self.removed.saturating_add(1);
        }
    }

    /// Where the record under `key` is, live or not. An operation looks each key up once and
    /// reads and writes it through this position, which holds until a record is removed (by
    /// [`remove_at`](Self::remove_at) or the sweep, which the composite operations run last).
    fn find(&self, key: &StoreKey) -> Option<usize> {
        self.entries.get_index_of(key.as_str())
    }

    fn live_at(&self, at: Option<usize>, now: Timestamp) -> Option<&Entry> {
        at.and_then(|i| self.entries.get_index(i))
            .map(|(_, e)| e)
            .filter(|e| e.live(now))
    }

    fn live(&self, key: &StoreKey, now: Timestamp) -> Option<&Entry> {
        self.live_at(self.find(key), now)
    }

    // ---- the records of the composite operations ---------------------------------------------

    /// The live challenge at `at`: its entry holds the attempt count, the code and the value
    /// in one allocation (see [`challenge_entry`]).
    fn challenge_at(
        &self,
        at: Option<usize>,
        now: Timestamp,
    ) -> Result<Option<ChallengeState>, StoreError> {
        let Some(entry) = self.live_at(at, now) else {
            return Ok(None);
        };
        let Value::Bytes(bytes) = &entry.value else {
            return Err(StoreError::corrupt("a challenge key holds a counter"));
        };
        read_challenge_entry(bytes, entry.expires_at).map(Some)
    }

    fn challenge(
        &self,
        key: &StoreKey,
        now: Timestamp,
    ) -> Result<Option<ChallengeState>, StoreError> {
        self.challenge_at(self.find(key), now)
    }

    /// The user's record at `at` as of `now`; a missing one is a fresh user.
    fn user_at(
        &self,
        at: Option<usize>,
        now: Timestamp,
    ) -> Result<(UserState, Timestamp), StoreError> {
        match self.live_at(at, now) {
            Some(Entry {
                value: Value::Bytes(b),
                expires_at,
            }) => Ok((UserState::from_bytes(b)?, *expires_at)),
            Some(_) => Err(StoreError::corrupt("a user key holds a counter")),
            None => Ok((UserState::default(), Timestamp::EPOCH)),
        }
    }

    fn user(&self, key: &StoreKey, now: Timestamp) -> Result<(UserState, Timestamp), StoreError> {
        self.user_at(self.find(key), now)
    }

    fn cooldown_until(&self, key: &StoreKey, now: Timestamp) -> Option<Timestamp> {
        self.live(key, now).map(|e| e.expires_at)
    }

    /// Writes the user's record at `at` (found for `key`), over the old bytes when it has them.
    fn set_user_at(
        &mut self,
        at: Option<usize>,
        key: &StoreKey,
        user: &UserState,
        expires_at: Timestamp,
    ) {
        let bytes = user.to_bytes();
        if let Some((_, entry)) = at.and_then(|i| self.entries.get_index_mut(i)) {
            match &mut entry.value {
                Value::Bytes(b) if b.len() == bytes.len() => b.copy_from_slice(&bytes),
                value => *value = Value::Bytes(bytes.into()),
            }
            entry.expires_at = expires_at;
            return;
        }
        self.insert(key, Entry::bytes(&bytes, expires_at));
    }

    fn set_user(&mut self, key: &StoreKey, user: &UserState, expires_at: Timestamp) {
        self.set_user_at(self.find(key), key, user, expires_at);
    }

    /// Sets the attempt count of the challenge at `at` in place: it leads the entry's bytes.
    fn count_attempt_at(&mut self, at: usize, attempts: u32) {
        if let Some((
            _,
            Entry {
                value: Value::Bytes(b),
                ..
            },
        )) = self.entries.get_index_mut(at)
        {
            if let Some(head) = b.get_mut(..4) {
                head.copy_from_slice(&attempts.to_be_bytes());
            }
        }
    }

    /// Reserves a send: the cooldown, then the cap, on a user record already read.
    fn reserve(
        &mut self,
        user: &mut UserState,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<(), SendRefused> {
        let cooldown = self.cooldown_until(spec.cooldown, now);
        rules::reserve(user, cooldown, spec, now)
    }

    /// Stores `entry` at `at` (found for `key`), in place; or inserts it under `key`.
    fn set_at(&mut self, at: Option<usize>, key: &StoreKey, entry: Entry) {
        match at.and_then(|i| self.entries.get_index_mut(i)) {
            Some((_, slot)) => *slot = entry,
            None => self.insert(key, entry),
        }
    }

    /// Stores `entry` under `key`, in place when the key is held (no new allocation for it).
    fn set(&mut self, key: &StoreKey, entry: Entry) {
        self.set_at(self.find(key), key, entry);
    }

    fn insert(&mut self, key: &StoreKey, entry: Entry) {
        self.entries.insert(key.as_str().into(), entry);
        self.peak = self.peak.max(self.entries.len());
    }
}

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
    state: Mutex<OtpState>,
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
        let (user, _) = state.user_at(user_at, now)?;
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
        if let (Some((spec, c)), Some(Ok(())), Some(at)) = (&new.send, send, cooldown_at) {
            state.set_at(at, spec.cooldown, Entry::bytes(&[], spec.cooldown_until));
            let expires = rules::user_expires_at(&user, &new.limits, now);
            state.set_user_at(user_at, new.user, &user, expires);
            code = Some(c.to_vec());
        }
        let ch = ChallengeState::new(new.value.to_vec(), code, new.expires_at);
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
        let value = match challenge {
            Some(key) => match state.challenge(key, now)? {
                Some(ch) => Some(ch.value),
                None => return Ok(Reserved::NoChallenge),
            },
            None => None,
        };
        let (mut record, expires) = state.user(user, now)?;
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
                    ch.value = value.to_vec();
                    ch.expires_at = expires_at;
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
        let (user, _) = state.user_at(user_at, now)?;
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
            let expires = rules::user_expires_at(&user, &spec.limits, now);
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
        let live = match settlement.challenge {
            Some(_) => state.live_at(challenge_at, now).is_some(),
            None => true,
        };
        let user_at = state.find(settlement.user);
        let (user, _) = state.user_at(user_at, now)?;
        let mut user = rules::current(user, &settlement.limits, now);
        let settled = rules::settle(live, &mut user, settlement.outcome, now);
        if settled == Settled::Done && settlement.outcome != Outcome::Failed {
            let expires = rules::user_expires_at(&user, &settlement.limits, now);
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
}

#[derive(Debug, Default)]
struct EnrollmentState {
    records: HashMap<String, (EnrollmentRecord, Revision)>,
    codes: HashMap<String, Vec<(BackupCodeRecord, Option<Timestamp>)>>,
    next_revision: Revision,
}

/// An [`EnrollmentStore`] in process memory. Everything is lost on restart: use it for tests,
/// demos and single-process tools; use SQL in production.
#[derive(Debug, Default)]
pub struct MemoryEnrollmentStore {
    state: Mutex<EnrollmentState>,
}

impl MemoryEnrollmentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every stored backup-code record of `user` (used or not), for tests that inspect
    /// what a store holds.
    pub fn backup_code_records(&self, user: &str) -> Vec<BackupCodeRecord> {
        lock(&self.state)
            .codes
            .get(user)
            .map(|v| v.iter().map(|(r, _)| r.clone()).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl EnrollmentStore for MemoryEnrollmentStore {
    async fn load(&self, user: &str) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
        Ok(lock(&self.state).records.get(user).cloned())
    }

    async fn save(
        &self,
        user: &str,
        record: &EnrollmentRecord,
        expected: Option<Revision>,
    ) -> Result<Option<Revision>, StoreError> {
        let mut state = lock(&self.state);
        let current = state.records.get(user).map(|(_, rev)| *rev);
        if current != expected {
            return Ok(None);
        }
        state.next_revision = state.next_revision.wrapping_add(1);
        let revision = state.next_revision;
        state
            .records
            .insert(user.to_owned(), (record.clone(), revision));
        Ok(Some(revision))
    }

    async fn remove(&self, user: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        state.records.remove(user);
        state.codes.remove(user);
        Ok(())
    }

    async fn replace_backup_codes(
        &self,
        user: &str,
        codes: &[BackupCodeRecord],
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        let set = codes.iter().map(|c| (c.clone(), None)).collect();
        lock(&self.state).codes.insert(user.to_owned(), set);
        Ok(())
    }

    async fn find_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
    ) -> Result<Option<BackupCodeRecord>, StoreError> {
        Ok(lock(&self.state).codes.get(user).and_then(|set| {
            set.iter()
                .find(|(c, used)| used.is_none() && c.lookup == lookup)
                .map(|(c, _)| c.clone())
        }))
    }

    async fn consume_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut state = lock(&self.state);
        let Some(set) = state.codes.get_mut(user) else {
            return Ok(false);
        };
        match set
            .iter_mut()
            .find(|(c, used)| used.is_none() && c.lookup == lookup)
        {
            Some((_, used)) => {
                *used = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError> {
        Ok(lock(&self.state).remaining(user))
    }

    async fn load_with_codes(
        &self,
        user: &str,
    ) -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
        let state = lock(&self.state);
        Ok((state.records.get(user).cloned(), state.remaining(user)))
    }

    async fn redeem_backup_code(
        &self,
        user: &str,
        lookup: &[u8],
        now: Timestamp,
    ) -> Result<Option<u32>, StoreError> {
        let mut state = lock(&self.state);
        let Some(set) = state.codes.get_mut(user) else {
            return Ok(None);
        };
        let Some((_, used)) = set
            .iter_mut()
            .find(|(c, used)| used.is_none() && c.lookup == lookup)
        else {
            return Ok(None);
        };
        *used = Some(now);
        Ok(Some(state.remaining(user)))
    }
}

impl EnrollmentState {
    /// How many unused backup codes `user` holds.
    fn remaining(&self, user: &str) -> u32 {
        let n = self.codes.get(user).map_or(0, |set| {
            set.iter().filter(|(_, used)| used.is_none()).count()
        });
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn run<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the memory store never waits"),
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_unix_secs(secs)
    }

    fn capacity(store: &MemoryOtpStore) -> usize {
        lock(&store.state).entries.capacity()
    }

    /// Writes `put`s on one key at `now` until the store holds `target` records; returns how
    /// many it took, or `None` after `limit`.
    fn writes_until(
        store: &MemoryOtpStore,
        now: u64,
        target: usize,
        limit: usize,
    ) -> Option<usize> {
        let key = StoreKey::new("{w}:writer");
        (1..=limit).find(|_| {
            run(store.put(&key, b"w", at(now + 1_000), at(now))).unwrap();
            store.len() == target
        })
    }

    #[test]
    fn the_sweep_reaches_expired_records_between_live_ones() {
        let store = MemoryOtpStore::new();
        let n = 20_000;
        for i in 0..n {
            // Alternately a record that outlives the test and one that expires at 200.
            let expires = if i % 2 == 0 { 1_000_000 } else { 200 };
            run(store.put(
                &StoreKey::new(format!("{{k}}:{i}")),
                b"v",
                at(expires),
                at(100),
            ))
            .unwrap();
        }
        // Each write steps over SWEEP_CHECKS live records. The pass starts wherever the cursor
        // stood, and after it wraps, a removal can pull a record already seen back under it:
        // still within len / SWEEP_CHECKS writes.
        let took = writes_until(&store, 300, n / 2 + 1, n).unwrap();
        assert!(took <= n / SWEEP_CHECKS, "{took} writes");
        for i in (0..n).step_by(2) {
            let key = StoreKey::new(format!("{{k}}:{i}"));
            assert_eq!(
                run(store.get(&key, at(300))).unwrap().as_deref(),
                Some(&b"v"[..])
            );
        }
    }

    #[test]
    fn a_stale_flood_drains_and_the_table_shrinks() {
        let store = MemoryOtpStore::new();
        let n = 200_000;
        for i in 0..n {
            run(store.put(&StoreKey::new(format!("{{f}}:{i}")), b"v", at(200), at(100))).unwrap();
        }
        let full = capacity(&store);
        assert!(full >= n);
        // Far fewer writes than records: each removes up to len / 4096 expired ones.
        let took = writes_until(&store, 300, 1, n / 10).unwrap();
        let state = lock(&store.state);
        let left = state.entries.capacity();
        assert!(left <= SHRINK_FLOOR, "{left} slots left");
        // About one shrink per halving, not one per write.
        assert!(state.shrinks <= 20, "{} shrinks", state.shrinks);
        eprintln!(
            "{n} expired records drained by {took} writes; {full} slots shrank to {left} in {} \
             steps",
            state.shrinks
        );
    }

    #[test]
    fn purge_shrinks_the_table() {
        let store = MemoryOtpStore::new();
        for i in 0..50_000 {
            let expires = if i < 100 { 1_000 } else { 200 };
            run(store.put(
                &StoreKey::new(format!("{{p}}:{i}")),
                b"v",
                at(expires),
                at(100),
            ))
            .unwrap();
        }
        assert!(capacity(&store) >= 50_000);
        assert_eq!(store.purge_expired(at(300)), 49_900);
        assert_eq!(store.len(), 100);
        assert!(capacity(&store) < 256, "{} slots left", capacity(&store));
    }

    #[test]
    fn a_steady_map_does_not_shrink() {
        // Records come and go around a number just past a growth boundary (3584 slots): the
        // table keeps its size however many records are removed.
        let store = MemoryOtpStore::new();
        let live = 3_585;
        let key = |i: usize| StoreKey::new(format!("{{s}}:{i}"));
        for i in 0..live {
            run(store.put(&key(i), b"v", at(10_000), at(100))).unwrap();
        }
        for i in live..live * 20 {
            run(store.put(&key(i), b"v", at(10_000), at(100))).unwrap();
            assert!(run(store.take(&key(i - live), at(100))).unwrap().is_some());
            if i % 7 == 0 {
                // Dip a few below, and come back.
                run(store.delete(&key(i - live + 1))).unwrap();
                run(store.put(&key(i - live + 1), b"v", at(10_000), at(100))).unwrap();
            }
        }
        assert_eq!(lock(&store.state).shrinks, 0);
    }
}
