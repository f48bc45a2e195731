//! The native layout on a live Redis (`TWOFACTOR_TEST_REDIS_URL`; skipped without it, or a
//! failure under `TWOFACTOR_REQUIRE_SERVERS=1`): the records, their TTLs and the keys touched,
//! the clamp of far times, and records of the other layout.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::store::flow::{UserLimits, UserState};
use crate::store::redis::RedisOtpStore;
use crate::store::StoreKey;

mod epoch;
mod layout;
mod other_layouts;

const T0: u64 = 1_700_000_000;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

fn limits() -> UserLimits {
    UserLimits::new(5, Duration::from_secs(600), Duration::from_secs(3_600))
}

struct Keys {
    user: StoreKey,
    challenge: StoreKey,
    cooldown: StoreKey,
}

fn keys() -> Keys {
    let tag = format!("{:016x}", rand::random::<u64>());
    Keys {
        user: StoreKey::new(format!("u:{{{tag}}}")),
        challenge: StoreKey::new(format!("u:{{{tag}}}:c")),
        cooldown: StoreKey::new(format!("u:{{{tag}}}:c:cool")),
    }
}

/// The live Redis (`TWOFACTOR_TEST_REDIS_URL`) for the test `name`, or `None` when it skips
/// (see [`server_url`](crate::store::skips::server_url)).
fn redis_url(name: &str) -> Option<String> {
    crate::store::skips::server_url("TWOFACTOR_TEST_REDIS_URL", name)
}

/// Runs `test` with a store under a prefix of its own, and removes its keys afterwards.
fn with_redis<F, Fut>(name: &str, test: F)
where
    F: FnOnce(RedisOtpStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(url) = redis_url(name) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let prefix = format!("twofactor-test:{:016x}:", rand::random::<u64>());
        let store = RedisOtpStore::builder(url)
            .prefix(prefix.clone())
            .connect()
            .await
            .unwrap();
        test(store.clone()).await;
        let mut conn = store.conn.clone();
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !left.is_empty() {
            redis::cmd("DEL")
                .arg(left)
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
        }
    });
}

async fn query<T: redis::FromRedisValue>(store: &RedisOtpStore, cmd: &mut redis::Cmd) -> T {
    let mut conn = store.conn.clone();
    cmd.query_async(&mut conn).await.unwrap()
}

async fn pttl(store: &RedisOtpStore, key: &StoreKey) -> i64 {
    query(store, redis::cmd("PTTL").arg(store.full_key(key))).await
}

/// The user's record as stored: its [`UserState`] and its expiry.
async fn raw_user(store: &RedisOtpStore, key: &StoreKey) -> (UserState, u64) {
    let raw: Vec<u8> = query(store, redis::cmd("GET").arg(store.full_key(key))).await;
    let (state, exp) = raw.split_at(crate::store::flow::USER_STATE_LEN);
    (
        UserState::from_bytes(state).unwrap(),
        u64::from_be_bytes(exp.try_into().unwrap()),
    )
}
