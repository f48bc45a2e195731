//! In-memory stores: the embedded default for a single process, and the reference for the
//! conformance suite.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{BackupCodeRecord, EnrollmentRecord, EnrollmentStore, OtpStore, Revision, StoreKey};
use crate::clock::Timestamp;
use crate::error::StoreError;

/// Writes between two sweeps of expired records.
const SWEEP_EVERY: u64 = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a map half-updated (every update is a single
    // insert or remove), so a poisoned lock is safe to use.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug)]
enum Value {
    Bytes(Vec<u8>),
    Number(u64),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Timestamp,
}

impl Entry {
    fn live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}

#[derive(Debug, Default)]
struct OtpState {
    entries: HashMap<String, Entry>,
    writes: u64,
}

impl OtpState {
    /// Counts a write and, every so often, drops the records that have expired by `now`, so the
    /// map never grows with dead entries.
    fn note_write(&mut self, now: Timestamp) {
        self.writes = self.writes.wrapping_add(1);
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.entries.retain(|_, e| e.live(now));
        }
    }

    fn live(&self, key: &StoreKey, now: Timestamp) -> Option<&Entry> {
        self.entries.get(key.as_str()).filter(|e| e.live(now))
    }
}

/// An [`OtpStore`] in process memory, for a single instance and for tests.
///
/// Every operation holds one lock for its whole duration, so each is atomic. Expired records are
/// swept as writes happen, using the `now` the service passes in: the map does not grow without
/// bound. State is lost on restart and not shared between processes: run several instances on
/// Redis or SQL instead.
///
/// ```
/// # tokio_test_block_on(async {
/// use twofactor::{MemoryOtpStore, OtpStore, StoreKey, Timestamp};
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
    pub fn purge_expired(&self, now: Timestamp) -> usize {
        let mut state = lock(&self.state);
        let before = state.entries.len();
        state.entries.retain(|_, e| e.live(now));
        before - state.entries.len()
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
                    Value::Bytes(b) => b.clone(),
                    Value::Number(n) => n.to_string().into_bytes(),
                };
                (k.clone(), bytes)
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
        state.entries.insert(
            key.as_str().to_owned(),
            Entry {
                value: Value::Bytes(value.to_vec()),
                expires_at,
            },
        );
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
        state.entries.insert(
            key.as_str().to_owned(),
            Entry {
                value: Value::Bytes(value.to_vec()),
                expires_at,
            },
        );
        Ok(true)
    }

    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let state = lock(&self.state);
        Ok(match state.live(key, now).map(|e| &e.value) {
            Some(Value::Bytes(b)) => Some(b.clone()),
            Some(Value::Number(n)) => Some(n.to_string().into_bytes()),
            None => None,
        })
    }

    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
        let mut state = lock(&self.state);
        Ok(match state.entries.remove(key.as_str()) {
            Some(e) if e.live(now) => match e.value {
                Value::Bytes(b) => Some(b),
                Value::Number(n) => Some(n.to_string().into_bytes()),
            },
            _ => None,
        })
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        lock(&self.state).entries.remove(key.as_str());
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
        // A live counter keeps its expiry; a missing or expired one starts again.
        let (count, expires_at) = match state.live(key, now) {
            Some(Entry {
                value: Value::Number(n),
                expires_at: keep,
            }) => (n.saturating_add(1), *keep),
            Some(_) => return Err(StoreError::corrupt("increment on a key that holds bytes")),
            None => (1, expires_at),
        };
        state.entries.insert(
            key.as_str().to_owned(),
            Entry {
                value: Value::Number(count),
                expires_at,
            },
        );
        Ok(count)
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
        state.entries.insert(
            key.as_str().to_owned(),
            Entry {
                value: Value::Number(value),
                expires_at,
            },
        );
        Ok(true)
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
        let n = lock(&self.state)
            .codes
            .get(user)
            .map(|set| set.iter().filter(|(_, used)| used.is_none()).count())
            .unwrap_or(0);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}
