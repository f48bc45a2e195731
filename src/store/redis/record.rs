//! The primitives' record: the value under `<prefix><key>` is the record's `expires_at` as 20
//! ASCII digits, a type byte (`b` for bytes, `n` for a number) and the payload (see the module
//! docs), kept by Redis until a TTL that only collects garbage.

use crate::clock::Timestamp;
use crate::error::StoreError;

/// Time a record is kept by Redis after it expired for the service: covers clock differences
/// between the host instances and Redis.
pub(super) const GC_GRACE_MS: u64 = 60_000;
/// The longest Redis TTL set (ten years); longer lifetimes are clamped.
pub(super) const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3_600 * 1_000;
/// Width of the fixed-width decimal fields.
pub(super) const DIGITS: usize = 20;
pub(super) const TAG_BYTES: u8 = b'b';
pub(super) const TAG_NUMBER: u8 = b'n';

/// A fixed-width decimal field.
pub(super) fn digits(n: u64) -> String {
    format!("{n:0DIGITS$}")
}

/// The Redis TTL for a record that expires at `expires_at`, seen at `now`.
pub(super) fn ttl_ms(expires_at: Timestamp, now: Timestamp) -> u64 {
    expires_at
        .as_unix_secs()
        .saturating_sub(now.as_unix_secs())
        .saturating_mul(1_000)
        .saturating_add(GC_GRACE_MS)
        .min(MAX_TTL_MS)
}

pub(super) fn encode(expires_at: Timestamp, tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(DIGITS + 1 + payload.len());
    v.extend_from_slice(digits(expires_at.as_unix_secs()).as_bytes());
    v.push(tag);
    v.extend_from_slice(payload);
    v
}

fn parse_digits(field: &[u8]) -> Result<u64, StoreError> {
    if field.len() != DIGITS || !field.iter().all(u8::is_ascii_digit) {
        return Err(StoreError::corrupt("a Redis record has a malformed number"));
    }
    std::str::from_utf8(field)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::corrupt("a Redis record has a malformed number"))
}

/// Decodes a stored record and returns its value when it is live at `now`.
pub(super) fn decode_live(
    raw: Option<Vec<u8>>,
    now: Timestamp,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(raw) = raw else { return Ok(None) };
    let (Some(exp), Some(&tag), Some(payload)) =
        (raw.get(..DIGITS), raw.get(DIGITS), raw.get(DIGITS + 1..))
    else {
        return Err(StoreError::corrupt("a Redis record is too short"));
    };
    if parse_digits(exp)? <= now.as_unix_secs() {
        return Ok(None);
    }
    match tag {
        TAG_BYTES => Ok(Some(payload.to_vec())),
        TAG_NUMBER => Ok(Some(parse_digits(payload)?.to_string().into_bytes())),
        _ => Err(StoreError::corrupt("a Redis record has an unknown type")),
    }
}
