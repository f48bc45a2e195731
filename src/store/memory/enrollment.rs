//! [`MemoryEnrollmentStore`]: enrolment records and backup codes in two maps under one lock.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::{BackupCodeRecord, EnrollmentRecord, EnrollmentStore, Revision};

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
