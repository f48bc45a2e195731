//! The encodings of the [default layout](super#default-layout): the records the default
//! implementations of the composite operations keep under the keys the service passes in, built
//! from the primitives.

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::key::StoreKey;

use super::{UserState, USER_STATE_LEN, USER_STATE_V1_LEN};

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
/// A record written before the epoch was added holds a version-1 state (epoch 0).
pub(crate) fn decode_default_user(bytes: &[u8]) -> Result<(UserState, u64), StoreError> {
    let len = match bytes.first() {
        Some(1) => USER_STATE_V1_LEN,
        _ => USER_STATE_LEN,
    };
    let (state, run) = bytes
        .split_at_checked(len)
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

/// The top bit of a challenge record's first 8 bytes: set, an epoch follows them.
const STAMPED: u64 = 1 << 63;

/// A challenge record: `expires_at` (8 bytes, big-endian) with its top bit set, the epoch as a
/// presence byte and 4 bytes (big-endian; 0 when absent), then the challenge's value.
///
/// A record written before epochs existed has the top bit clear and the value straight after
/// `expires_at`: it reads as epoch 0 ([`read_challenge_bytes`]). Times here stop at 2^63 - 1
/// seconds.
pub(crate) fn challenge_bytes(value: &[u8], expires_at: Timestamp, epoch: Option<u32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + value.len());
    let expires = expires_at.as_unix_secs().min(STAMPED - 1) | STAMPED;
    out.extend_from_slice(&expires.to_be_bytes());
    out.push(u8::from(epoch.is_some()));
    out.extend_from_slice(&epoch.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Reads [`challenge_bytes`] output (or a record of the earlier form): its expiry, its epoch
/// and its value.
pub(crate) fn read_challenge_bytes(
    bytes: &[u8],
) -> Result<(Timestamp, Option<u32>, &[u8]), StoreError> {
    let malformed = || StoreError::corrupt("malformed challenge record");
    let (expires, rest) = bytes.split_first_chunk::<8>().ok_or_else(malformed)?;
    let expires = u64::from_be_bytes(*expires);
    if expires & STAMPED == 0 {
        return Ok((Timestamp::from_unix_secs(expires), Some(0), rest));
    }
    let (&present, rest) = rest.split_first().ok_or_else(malformed)?;
    let (epoch, value) = rest.split_first_chunk::<4>().ok_or_else(malformed)?;
    let epoch = match present {
        0 if *epoch == [0; 4] => None,
        1 => Some(u32::from_be_bytes(*epoch)),
        _ => return Err(malformed()),
    };
    Ok((Timestamp::from_unix_secs(expires & !STAMPED), epoch, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_records_carry_their_epoch_and_the_earlier_form_reads_as_epoch_0() {
        let at = Timestamp::from_unix_secs(1_700_000_300);
        for epoch in [None, Some(0), Some(7), Some(u32::MAX)] {
            let bytes = challenge_bytes(b"\x00v", at, epoch);
            assert_eq!(
                read_challenge_bytes(&bytes).unwrap(),
                (at, epoch, &b"\x00v"[..])
            );
        }
        let mut earlier = at.as_unix_secs().to_be_bytes().to_vec();
        earlier.extend_from_slice(b"value");
        assert_eq!(
            read_challenge_bytes(&earlier).unwrap(),
            (at, Some(0), &b"value"[..])
        );
        let mut bad = challenge_bytes(b"v", at, Some(1));
        bad[8] = 2;
        assert!(read_challenge_bytes(&bad).is_err());
        assert!(read_challenge_bytes(&challenge_bytes(b"", at, None)[..12]).is_err());
        assert!(read_challenge_bytes(&[0; 7]).is_err());
    }

    #[test]
    fn default_user_records_of_either_version_read() {
        let user = UserState {
            failures: 1,
            epoch: 9,
            ..UserState::default()
        };
        let bytes = encode_default_user(&user, 42);
        assert_eq!(decode_default_user(&bytes).unwrap(), (user, 42));
        let mut v1 = user.to_bytes()[..USER_STATE_V1_LEN].to_vec();
        v1[0] = 1;
        v1.extend_from_slice(&42u64.to_be_bytes());
        let old = UserState { epoch: 0, ..user };
        assert_eq!(decode_default_user(&v1).unwrap(), (old, 42));
    }
}
