//! The map behind [`MemoryOtpStore`](super::MemoryOtpStore): the records by key, the sweep
//! that garbage-collects the expired ones a few at a time, the shrinking of the table, and the
//! reads and writes of the records the composite operations use.

use indexmap::IndexMap;

use super::entry::{challenge_entry_epoch, read_challenge_entry, Entry, Value};
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::flow::{rules, ChallengeState, SendRefused, SendSpec, UserState};
use crate::store::StoreKey;

/// Live records the sweep steps over per write, at most.
pub(super) const SWEEP_CHECKS: usize = 4;
/// Expired records one write may remove, at least. Removing is paid for by the write that
/// inserted the record, so it does not count against [`SWEEP_CHECKS`].
const SWEEP_REMOVALS: usize = 32;
/// One write may also remove up to `len >> SWEEP_REMOVALS_SHIFT` expired records (1/4096 of the
/// map), so that a large map left full of expired records drains in a few thousand writes.
const SWEEP_REMOVALS_SHIFT: u32 = 12;
/// Tables of at most this capacity are never shrunk: too small to matter.
pub(super) const SHRINK_FLOOR: usize = 1024;

/// The slots of a hash table sized for `n` records: a power of two, at most 7/8 full (as
/// hashbrown, under `IndexMap`, sizes them). Only when the table shrinks depends on it.
fn slots(n: usize) -> usize {
    (n.saturating_mul(8) / 7).next_power_of_two()
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
pub(super) struct OtpState {
    pub(super) entries: IndexMap<Box<str>, Entry>,
    /// The position the sweep looks at next.
    cursor: usize,
    /// The most records held since the table was last shrunk: it has room for at least these.
    peak: usize,
    /// Records removed since the table was last shrunk: what pays for the next shrink.
    pub(super) removed: usize,
    /// How many times the table was shrunk.
    pub(super) shrinks: u64,
}

impl OtpState {
    /// Runs one bounded step of the sweep; called by every write that may insert.
    pub(super) fn note_write(&mut self, now: Timestamp) {
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
    pub(super) fn shrink_if_sparse(&mut self) {
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
    pub(super) fn remove(&mut self, key: &StoreKey) -> Option<Entry> {
        let entry = self.entries.swap_remove(key.as_str());
        if entry.is_some() {
            self.removed = self.removed.saturating_add(1);
        }
        entry
    }

    /// Removes the record at `at` (from [`find`](Self::find)); later positions may move.
    pub(super) fn remove_at(&mut self, at: usize) {
        if self.entries.swap_remove_index(at).is_some() {
            self.removed = self.removed.saturating_add(1);
        }
    }

    /// Where the record under `key` is, live or not. An operation looks each key up once and
    /// reads and writes it through this position, which holds until a record is removed (by
    /// [`remove_at`](Self::remove_at) or the sweep, which the composite operations run last).
    pub(super) fn find(&self, key: &StoreKey) -> Option<usize> {
        self.entries.get_index_of(key.as_str())
    }

    pub(super) fn live_at(&self, at: Option<usize>, now: Timestamp) -> Option<&Entry> {
        at.and_then(|i| self.entries.get_index(i))
            .map(|(_, e)| e)
            .filter(|e| e.live(now))
    }

    pub(super) fn live(&self, key: &StoreKey, now: Timestamp) -> Option<&Entry> {
        self.live_at(self.find(key), now)
    }

    // ---- the records of the composite operations ---------------------------------------------

    /// The live challenge at `at`: its entry holds the attempt count, the code and the value
    /// in one allocation (see [`challenge_entry`](super::entry::challenge_entry)).
    pub(super) fn challenge_at(
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

    pub(super) fn challenge(
        &self,
        key: &StoreKey,
        now: Timestamp,
    ) -> Result<Option<ChallengeState>, StoreError> {
        self.challenge_at(self.find(key), now)
    }

    /// The epoch of the live challenge at `at` (`None` when it is not live), read from the
    /// entry's head without copying it.
    pub(super) fn challenge_epoch_at(
        &self,
        at: Option<usize>,
        now: Timestamp,
    ) -> Result<Option<Option<u32>>, StoreError> {
        match self.live_at(at, now).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Bytes(bytes)) => challenge_entry_epoch(bytes).map(Some),
            Some(Value::Number(_)) => Err(StoreError::corrupt("a challenge key holds a counter")),
        }
    }

    /// The user's record at `at` as of `now`; a missing one is a fresh user.
    pub(super) fn user_at(
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

    pub(super) fn user(
        &self,
        key: &StoreKey,
        now: Timestamp,
    ) -> Result<(UserState, Timestamp), StoreError> {
        self.user_at(self.find(key), now)
    }

    fn cooldown_until(&self, key: &StoreKey, now: Timestamp) -> Option<Timestamp> {
        self.live(key, now).map(|e| e.expires_at)
    }

    /// Writes the user's record at `at` (found for `key`), over the old bytes when it has them.
    pub(super) fn set_user_at(
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

    pub(super) fn set_user(&mut self, key: &StoreKey, user: &UserState, expires_at: Timestamp) {
        self.set_user_at(self.find(key), key, user, expires_at);
    }

    /// Sets the attempt count of the challenge at `at` in place: it leads the entry's bytes.
    pub(super) fn count_attempt_at(&mut self, at: usize, attempts: u32) {
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
    pub(super) fn reserve(
        &mut self,
        user: &mut UserState,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<(), SendRefused> {
        let cooldown = self.cooldown_until(spec.cooldown, now);
        rules::reserve(user, cooldown, spec, now)
    }

    /// Stores `entry` at `at` (found for `key`), in place; or inserts it under `key`.
    pub(super) fn set_at(&mut self, at: Option<usize>, key: &StoreKey, entry: Entry) {
        match at.and_then(|i| self.entries.get_index_mut(i)) {
            Some((_, slot)) => *slot = entry,
            None => self.insert(key, entry),
        }
    }

    /// Stores `entry` under `key`, in place when the key is held (no new allocation for it).
    pub(super) fn set(&mut self, key: &StoreKey, entry: Entry) {
        self.set_at(self.find(key), key, entry);
    }

    fn insert(&mut self, key: &StoreKey, entry: Entry) {
        self.entries.insert(key.as_str().into(), entry);
        self.peak = self.peak.max(self.entries.len());
    }
}
