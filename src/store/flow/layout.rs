//! The encodings of the [default layout](super#default-layout): the records the default
//! implementations of the composite operations keep under the keys the service passes in, built
//! from the primitives.

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::key::StoreKey;

use super::{UserState, USER_STATE_LEN};

/// The key `suffix` of the record under `key` (`K:code`, `U:sends`, …).
pub(crate) fn sub(key: &StoreKey, suffix: &str) -> StoreKey {
    StoreKey::new(format!("{}:{suffix}", key.as_str()))
}

/// The user's record as the default layout keeps it: without the counters, plus the id of the
/// current run of failures.
pub(crate) fn encode_default_user(user: &UserState, run: u64) -> Vec<u8> {
    let mut out = user.to_bytes().to_vec();
    out.extend_from_slice(&run.to_be_bytes());
    out
}

/// Reads [`encode_default_user`] output: the state and the id of the current run of failures.
pub(crate) fn decode_default_user(bytes: &[u8]) -> Result<(UserState, u64), StoreError> {
    let (state, run) = bytes
        .split_at_checked(USER_STATE_LEN)
        .ok_or_else(|| StoreError::corrupt("malformed user record"))?;
    let run: [u8; 8] = run
        .try_into()
        .map_err(|_| StoreError::corrupt("malformed user record"))?;
    Ok((UserState::from_bytes(state)?, u64::from_be_bytes(run)))
}

/// The number held by a counter or an `advance` mark, as `get` reads it back (decimal text);
/// 0 when it is not one.
pub(crate) fn parse_number(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A challenge record: `expires_at` (8 bytes, big-endian), then the challenge's value.
pub(crate) fn challenge_bytes(value: &[u8], expires_at: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&expires_at.as_unix_secs().to_be_bytes());
    out.extend_from_slice(value);
    out
}
