//! Shared test support: the one service [`Harness`] (memory or any stores, a manual clock,
//! recording doubles), the every-store macro, the store servers and their visible skips, fault
//! injection, and helpers to read codes the way a user would. Test files share helpers only
//! through here.

#[cfg(feature = "webauthn")]
pub(crate) mod authenticator;
pub(crate) mod every_store;
pub(crate) mod faults;
pub(crate) mod harness;
pub(crate) mod logs;
#[cfg(all(feature = "test-util", any(feature = "redis", feature = "postgres")))]
pub(crate) mod proxy;
pub(crate) mod skip;
pub(crate) mod stores;
pub(crate) mod tools;

pub(crate) use every_store::{every_store, Stores};
// The any-store helpers serve the server-backed suites and `store_flows` (feature `test-util`).
#[cfg_attr(
    not(all(feature = "test-util", any(feature = "redis", feature = "postgres"))),
    allow(unused_imports)
)]
pub(crate) use harness::{fresh_user, retry, AnyHarness, Harness};

/// A fixed start time well past 2038, so no test depends on 32-bit time.
pub(crate) const START: u64 = 2_200_000_000;

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The first run of digits (spaces allowed inside) of 6 to 10 digits in `text`.
pub(crate) fn code_in(text: &str) -> Option<String> {
    for line in text.lines() {
        let t = line.trim();
        let digits: String = t.chars().filter(|c| !c.is_whitespace()).collect();
        if (6..=10).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
            return Some(digits);
        }
    }
    None
}

/// A numeric code that differs from `code`.
pub(crate) fn wrong(code: &str) -> String {
    code.chars()
        .map(|c| {
            let d = c.to_digit(10).unwrap();
            char::from_digit((d + 1) % 10, 10).unwrap()
        })
        .collect()
}

/// Runs `n` copies of `f` at once on a multi-threaded runtime and returns their results.
pub(crate) async fn race<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut handles = Vec::new();
    for i in 0..n {
        let fut = f(i);
        let b = barrier.clone();
        handles.push(tokio::spawn(async move {
            b.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
