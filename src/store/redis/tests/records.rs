//! The primitives' records, their TTLs, and the mapping of Redis failures.

use ::redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::clock::Timestamp;
use crate::store::redis::connection::store_error;
use crate::store::redis::record::{
    decode_live, digits, encode, ttl_ms, DIGITS, GC_GRACE_MS, MAX_TTL_MS, TAG_BYTES, TAG_NUMBER,
};

#[test]
fn a_script_on_a_node_without_its_slot_is_transient() {
    use crate::error::StoreErrorKind;
    let moved = RedisError::from((
        ErrorKind::Server(ServerErrorKind::ResponseError),
        "response error",
        "Script attempted to access a non local key in a cluster node script: 15bf, on \
         @user_script:95."
            .to_owned(),
    ));
    let e = store_error(moved);
    assert_eq!(e.kind(), StoreErrorKind::Unavailable);
    assert!(e.is_transient());
    let other = RedisError::from((
        ErrorKind::Server(ServerErrorKind::ResponseError),
        "response error",
        "user_script:1: some other script error".to_owned(),
    ));
    assert!(!store_error(other).is_transient());
}

#[test]
fn records_round_trip_and_expire_by_now() {
    let rec = encode(Timestamp::from_unix_secs(100), TAG_BYTES, b"\x00v\xff");
    let at = |t| decode_live(Some(rec.clone()), Timestamp::from_unix_secs(t)).unwrap();
    assert_eq!(at(99).as_deref(), Some(&b"\x00v\xff"[..]));
    assert_eq!(at(100), None);
    let n = encode(Timestamp::MAX, TAG_NUMBER, digits(42).as_bytes());
    assert_eq!(
        decode_live(Some(n), Timestamp::EPOCH).unwrap().as_deref(),
        Some(&b"42"[..])
    );
}

#[test]
fn fixed_width_fields_order_like_numbers() {
    assert!(digits(9) < digits(10));
    assert!(digits(u64::MAX - 1) < digits(u64::MAX));
    assert_eq!(digits(u64::MAX).len(), DIGITS);
}

#[test]
fn malformed_records_are_corrupt_not_panics() {
    for raw in [
        &b""[..],
        b"123",
        b"0000000000000000000xb",
        b"00000000000000000099zv",
    ] {
        let e = decode_live(Some(raw.to_vec()), Timestamp::EPOCH).unwrap_err();
        assert_eq!(e.kind(), crate::error::StoreErrorKind::Corrupt);
    }
}

#[test]
fn ttl_covers_the_lifetime_and_saturates() {
    let now = Timestamp::from_unix_secs(1_000);
    assert_eq!(ttl_ms(Timestamp::from_unix_secs(1_060), now), 120_000);
    assert_eq!(ttl_ms(Timestamp::from_unix_secs(10), now), GC_GRACE_MS);
    assert_eq!(ttl_ms(Timestamp::MAX, now), MAX_TTL_MS);
}
