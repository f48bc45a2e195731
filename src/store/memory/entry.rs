//! A record of [`MemoryOtpStore`](super::MemoryOtpStore) (bytes or a number, and its expiry),
//! and a challenge's record: its attempt count, code and value encoded in one allocation.

use crate::clock::Timestamp;
use crate::codec::{Reader, Writer};
use crate::error::StoreError;
use crate::store::flow::ChallengeState;

#[derive(Debug)]
pub(super) enum Value {
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
pub(super) struct Entry {
    pub(super) value: Value,
    pub(super) expires_at: Timestamp,
}

impl Entry {
    pub(super) fn bytes(value: &[u8], expires_at: Timestamp) -> Self {
        Entry {
            value: Value::Bytes(value.into()),
            expires_at,
        }
    }

    pub(super) fn number(n: u64, expires_at: Timestamp) -> Self {
        Entry {
            value: Value::Number(n),
            expires_at,
        }
    }

    pub(super) fn live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        match self.value {
            Value::Bytes(b) => b.into_vec(),
            Value::Number(n) => n.to_string().into_bytes(),
        }
    }
}

/// A challenge's entry: the attempt count, the epoch (a presence byte, then 4 bytes when
/// present), the code (a presence byte and a length-prefixed string) and the value, in one
/// allocation.
pub(super) fn challenge_entry(ch: &ChallengeState) -> Entry {
    let code_len = ch.code.as_ref().map_or(0, |c| c.len() + 2);
    let epoch_len = if ch.epoch.is_some() { 4 } else { 0 };
    let mut w = Writer::with_capacity(6 + epoch_len + code_len + ch.value.len());
    w.u32(ch.attempts);
    match ch.epoch {
        Some(epoch) => w.u8(1).u32(epoch),
        None => w.u8(0),
    };
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
        let epoch = read_epoch(&mut r)?;
        let code = match r.u8()? {
            0 => None,
            1 => Some(r.bytes()?.to_vec()),
            _ => return None,
        };
        Some((attempts, epoch, code))
    })();
    let (attempts, epoch, code) = read.ok_or_else(|| StoreError::corrupt("malformed challenge"))?;
    Ok(ChallengeState {
        value: r.0.to_vec(),
        code,
        attempts,
        expires_at,
        epoch,
    })
}

/// The epoch of a [`challenge_entry`], after its attempt count: `None` when malformed.
fn read_epoch(r: &mut Reader<'_>) -> Option<Option<u32>> {
    match r.u8()? {
        0 => Some(None),
        1 => Some(Some(r.u32()?)),
        _ => None,
    }
}

/// The epoch of the challenge entry `bytes`, read without copying the rest.
pub(super) fn challenge_entry_epoch(bytes: &[u8]) -> Result<Option<u32>, StoreError> {
    let mut r = Reader(bytes);
    r.u32()
        .and_then(|_| read_epoch(&mut r))
        .ok_or_else(|| StoreError::corrupt("malformed challenge"))
}

/// The bytes of a [`challenge_entry`].
#[cfg(feature = "fuzzing")]
pub(crate) fn challenge_entry_bytes(ch: &ChallengeState) -> Vec<u8> {
    challenge_entry(ch).into_bytes()
}
