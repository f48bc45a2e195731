//! The scripts: the clamp of the numbers passed to them, the prelude, the keys they touch, and
//! the parsing of their replies.

use std::time::Duration;

use ::redis::Value;

use crate::clock::Timestamp;
use crate::store::flow::SendRefused;
use crate::store::redis::record::{GC_GRACE_MS, MAX_TTL_MS};
use crate::store::redis::reply::Reply;
use crate::store::redis::scripts::{
    lua_num, lua_secs, lua_time, BEGIN_CHALLENGE, END_CHALLENGES, LUA_MAX, OPEN_ATTEMPT, PRELUDE,
    RESERVE_SEND, SETTLE, STORE_CODE, USER_STATE,
};

#[test]
fn numbers_for_lua_clamp_at_two_to_the_53_minus_one() {
    assert_eq!(LUA_MAX, 9_007_199_254_740_991);
    assert_eq!(lua_num(LUA_MAX - 1), LUA_MAX - 1);
    assert_eq!(lua_num(LUA_MAX), LUA_MAX);
    assert_eq!(lua_num(LUA_MAX + 1), LUA_MAX);
    assert_eq!(lua_num(u64::MAX), LUA_MAX);
    assert_eq!(
        lua_time(Timestamp::from_unix_secs(1_700_000_000)),
        1_700_000_000
    );
    assert_eq!(lua_time(Timestamp::MAX), LUA_MAX);
    // Whole seconds, as `Timestamp::saturating_add` counts a duration.
    assert_eq!(lua_secs(Duration::from_millis(1_999)), 1);
    assert_eq!(lua_secs(Duration::MAX), LUA_MAX);
    // The clamp is the last integer a double holds exactly, and its sum with itself is past
    // it: saturating there in the scripts is exact.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let round_trip = |n: u64| (n as f64) as u64;
    assert_eq!(round_trip(LUA_MAX), LUA_MAX);
    assert_ne!(round_trip(LUA_MAX + 2), LUA_MAX + 2);
    #[allow(clippy::cast_precision_loss)]
    let twice = LUA_MAX as f64 + LUA_MAX as f64;
    assert!(twice > LUA_MAX as f64);
}

#[test]
fn the_lua_prelude_uses_the_rust_constants() {
    let prelude = PRELUDE;
    assert!(prelude.contains(&format!("local MAX = {LUA_MAX}\n")));
    assert!(prelude.contains(&format!("local GRACE_MS = {GC_GRACE_MS}\n")));
    assert!(prelude.contains(&format!("local MAX_TTL_MS = {MAX_TTL_MS}\n")));
    for script in COMPOSITE_SCRIPTS {
        assert!(script.starts_with(prelude));
    }
}

const COMPOSITE_SCRIPTS: [&str; 7] = [
    BEGIN_CHALLENGE,
    RESERVE_SEND,
    STORE_CODE,
    OPEN_ATTEMPT,
    SETTLE,
    USER_STATE,
    END_CHALLENGES,
];

/// Every Redis command of a composite script names a key passed in `KEYS` (directly, or as
/// the `key` parameter of a prelude function called with one): the script stays on the slot
/// of those keys.
#[test]
fn composite_scripts_touch_only_their_keys() {
    for script in COMPOSITE_SCRIPTS {
        let mut rest = script;
        let mut calls = 0;
        // `redis.call('` and `redis.pcall('` alike.
        while let Some(at) = rest.find("call('") {
            calls += 1;
            let after = rest.get(at + "call('".len()..).unwrap_or_default();
            let key = after.split_once(", ").map_or("", |(_, k)| k);
            assert!(
                key.starts_with("key,") || key.starts_with("key)") || key.starts_with("KEYS["),
                "a command on another key: {}",
                after.lines().next().unwrap_or_default()
            );
            rest = after;
        }
        assert!(calls >= 7, "the prelude's commands at least");
        for helper in [
            "load_user(",
            "save_user(",
            "load_challenge(",
            "load_cooldown(",
            "start_cooldown(",
            "save_challenge(",
            "count_attempt(",
        ] {
            let body = script.get(PRELUDE.len()..).unwrap_or_default();
            for (at, _) in body.match_indices(helper) {
                let arg = body.get(at + helper.len()..).unwrap_or_default();
                assert!(arg.starts_with("KEYS["), "{helper} on another key");
            }
        }
    }
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn script_replies_parse_and_refuse_garbage() {
    let mut open = Reply::parse(Value::Array(vec![
        bulk("open"),
        Value::Int(2),
        Value::Int(3),
        Value::Int(1),
        Value::BulkString(b"\x00v\xff".to_vec()),
        Value::Nil,
        Value::Int(9_007_199_254_740_991),
    ]))
    .unwrap();
    assert_eq!(open.outcome, "open");
    assert_eq!(
        (
            open.count().unwrap(),
            open.count().unwrap(),
            open.count().unwrap()
        ),
        (2, 3, 1)
    );
    assert_eq!(open.bytes().unwrap(), b"\x00v\xff");
    assert_eq!(open.opt_bytes().unwrap(), None);
    assert_eq!(open.time().unwrap(), Timestamp::from_unix_secs(LUA_MAX));
    assert!(open.opt_num().is_err(), "past the end");

    let mut refused = Reply::parse(Value::Array(vec![bulk("capped"), Value::Int(60)])).unwrap();
    assert_eq!(
        refused.refusal("capped").unwrap(),
        SendRefused::Capped {
            until: Timestamp::from_unix_secs(60)
        }
    );

    let corrupt = Reply::parse(Value::Array(vec![
        bulk("corrupt"),
        bulk("malformed user record"),
    ]))
    .unwrap_err();
    assert_eq!(corrupt.kind(), crate::error::StoreErrorKind::Corrupt);
    assert!(corrupt.to_string().contains("malformed user record"));

    for garbage in [
        Value::Nil,
        Value::Int(1),
        Value::Array(vec![]),
        Value::Array(vec![Value::Int(1)]),
        Value::Array(vec![Value::BulkString(vec![0xff])]),
    ] {
        let e = Reply::parse(garbage).unwrap_err();
        assert_eq!(e.kind(), crate::error::StoreErrorKind::Corrupt);
    }
    let mut negative = Reply::parse(Value::Array(vec![bulk("user"), Value::Int(-1)])).unwrap();
    assert!(negative.num().is_err());
    let mut too_big = Reply::parse(Value::Array(vec![bulk("user"), Value::Int(1 << 40)])).unwrap();
    assert!(too_big.count().is_err(), "a count is a u32");
    let odd = Reply::parse(Value::Array(vec![bulk("what")])).unwrap();
    assert!(odd.unexpected::<()>().is_err());
}
