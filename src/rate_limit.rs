//! [`RateLimiter`]: a limit the host sets on what the crate does not see (the password step, a
//! registration form, a route), kept in the same [`OtpStore`](crate::OtpStore) as the login state, so that every
//! instance of a service on one Redis or one SQL database shares it.
//!
//! A limiter counts hits per key (any string: a client address, an account, a route) in a
//! window of time, [fixed](Limit::fixed) or [sliding](Limit::sliding), and says when to retry:
//!
//! - a **fixed** window is one counter per window (`increment` with the window's end as expiry):
//!   one store call, one round trip;
//! - a **sliding** window weighs the previous window's count by how much of it still overlaps
//!   the last `window` of time (the approximation that Cloudflare and nginx use): the current
//!   counter's `increment` and the previous counter's `get` are sent together, so a check waits
//!   for one round trip, though it makes two store calls.
//!
//! Every check counts, allowed or not: a client that keeps knocking while refused keeps its
//! window full, and `retry_after` says how long it must wait once it stops.
//!
//! # Keys
//!
//! The key text never reaches the store: the store key is `tf:rl:{tag}:<window>`, where `tag` is
//! a keyed hash (the keyring's MAC key) of the limiter's name, its limit and the key text. So a
//! hostile key string of any length costs one hash and 50 bytes of store, never collides with
//! the crate's own `tf:{…}` keys or with another limiter's keys, and the store holds no client
//! address in clear. The two windows of one key share the `{tag}` hash tag, and so one Redis
//! Cluster slot.
//!
//! # Recommended layers
//!
//! | layer | key | where | why |
//! | --- | --- | --- | --- |
//! | per client address | the IP (or its /64 for IPv6) | before the password check and on every login step: [`LoginContext`] with [`TwoFactorService::begin_login_with`] and [`TwoFactorService::verify_login_with`] ([`Policy::client_login_limit`](crate::Policy::client_login_limit)) | caps what one source can try across every account (credential stuffing, code guessing on stolen passwords) |
//! | per account | the normalised username | before the password check, in the host | caps password guesses on one account from many addresses; together with the per-user code lock of the crate, no success in one step forgives failures in another |
//! | per challenge | (built in) | [`TwoFactorService::verify_login`] | each challenge is void after [`Policy::challenge_max_attempts`](crate::Policy::challenge_max_attempts), each user locked after [`Policy::lockout_threshold`](crate::Policy::lockout_threshold) consecutive failures |
//! | per address or route | the email address, the route | registration, password-reset or contact forms | caps mail to one address and work per route |
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use twofactor::*;
//!
//! let tf = TwoFactorService::builder()
//!     .issuer("Acme")
//!     .keys(Keyring::generate())
//!     .otp_store(MemoryOtpStore::new())
//!     .enrollments(MemoryEnrollmentStore::new())
//!     .mailer(RecordingMailer::new())
//!     .build()?;
//!
//! // At most 5 password checks per account in any 15 minutes, shared by every instance.
//! let passwords = tf.rate_limiter("password", Limit::sliding(5, Duration::from_secs(900)))?;
//! for _ in 0..5 {
//!     passwords.hit("alice").await?;
//! }
//! match passwords.hit("alice").await {
//!     Err(Error::RateLimited { retry_after }) => assert!(retry_after > Duration::ZERO),
//!     other => panic!("expected a refusal, got {other:?}"),
//! }
//! // Other keys have their own count.
//! assert!(passwords.check("bob").await?.allowed);
//! # Ok::<(), Error>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::clock::Timestamp;
use crate::error::{Error, StoreError};
use crate::service::TwoFactorService;
use crate::store::StoreKey;

/// The longest window a [`Limit`] takes: one day.
pub const MAX_LIMIT_WINDOW: Duration = Duration::from_secs(86_400);

/// How a [`Limit`] counts time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WindowKind {
    /// Windows that start at multiples of the window length: one counter per check. Allows up to
    /// twice the limit across a window boundary.
    Fixed,
    /// The last `window` of time, estimated from the current and the previous fixed window.
    Sliding,
}

/// How many hits a [`RateLimiter`] allows per key, and in what window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    max: u32,
    window: Duration,
    kind: WindowKind,
}

impl Limit {
    /// At most `max` hits per fixed window of `window` (whole seconds, at least one).
    pub const fn fixed(max: u32, window: Duration) -> Self {
        Limit {
            max,
            window,
            kind: WindowKind::Fixed,
        }
    }

    /// At most `max` hits in any `window` (whole seconds, at least one), estimated by weighing
    /// the previous fixed window.
    pub const fn sliding(max: u32, window: Duration) -> Self {
        Limit {
            max,
            window,
            kind: WindowKind::Sliding,
        }
    }

    /// The hits allowed per window.
    pub const fn max(&self) -> u32 {
        self.max
    }

    /// The window.
    pub const fn window(&self) -> Duration {
        self.window
    }

    /// Fixed or sliding.
    pub const fn kind(&self) -> WindowKind {
        self.kind
    }

    /// Refuses a limit that allows nothing or whose window is not 1 s to [`MAX_LIMIT_WINDOW`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming what is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max == 0 {
            return Err(Error::InvalidConfig(
                "a rate limit must allow at least one hit".into(),
            ));
        }
        if self.window < Duration::from_secs(1) || self.window > MAX_LIMIT_WINDOW {
            return Err(Error::InvalidConfig(
                "a rate limit's window must be 1 second to 1 day".into(),
            ));
        }
        Ok(())
    }

    fn window_secs(&self) -> u64 {
        self.window.as_secs().max(1)
    }
}

/// The outcome of one [`RateLimiter::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Whether this hit is within the limit.
    pub allowed: bool,
    /// Hits left in the window after this one (0 when refused).
    pub remaining: u32,
    /// When refused: how long until a hit would be allowed, if no other hit comes.
    pub retry_after: Option<Duration>,
}

/// Counts hits per key against a [`Limit`], in the service's [`OtpStore`](crate::OtpStore).
///
/// Made by [`TwoFactorService::rate_limiter`]; cheap to clone. See the [module
/// documentation](crate::rate_limit) for the recommended layers.
#[derive(Clone)]
pub struct RateLimiter {
    service: TwoFactorService,
    name: String,
    limit: Limit,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("name", &self.name)
            .field("limit", &self.limit)
            .finish()
    }
}

impl TwoFactorService {
    /// A rate limiter named `name` over this service's short-lived store.
    ///
    /// Limiters with different names, or the same name and a different limit, count apart. The
    /// name is 1 to 64 printable ASCII characters.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a bad name or a limit [`Limit::validate`] refuses.
    pub fn rate_limiter(&self, name: &str, limit: Limit) -> Result<RateLimiter, Error> {
        let printable = name.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if name.is_empty() || name.len() > 64 || !printable {
            return Err(Error::InvalidConfig(
                "a rate limiter's name must be 1 to 64 printable ASCII characters".into(),
            ));
        }
        limit.validate()?;
        Ok(RateLimiter {
            service: self.clone(),
            name: name.to_owned(),
            limit,
        })
    }
}

impl RateLimiter {
    /// The limit this limiter applies.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Counts one hit for `key` and says whether it is within the limit.
    ///
    /// # Errors
    /// Store errors: a limiter fails closed, so treat an error as a refusal.
    pub async fn check(&self, key: &str) -> Result<Decision, Error> {
        let now = self.service.now();
        let w = self.limit.window_secs();
        let index = now.as_unix_secs() / w;
        let elapsed = now.as_unix_secs() % w;
        let window_end = index.saturating_add(1).saturating_mul(w);
        let tag = self.tag(key);
        let store = &self.service.inner.otp;
        let (current, previous) = match self.limit.kind {
            WindowKind::Fixed => {
                let n = store
                    .increment(&window_key(&tag, index), at(window_end), now)
                    .await?;
                (n, 0)
            }
            WindowKind::Sliding => {
                // The current counter also serves as the previous one during the next window.
                let expires = at(window_end.saturating_add(w));
                let previous_key = window_key(&tag, index.wrapping_sub(1));
                let (n, prev) = both(
                    store.increment(&window_key(&tag, index), expires, now),
                    store.get(&previous_key, now),
                )
                .await;
                (n?, count_of(prev?)?)
            }
        };
        Ok(decide(self.limit, current, previous, elapsed))
    }

    /// Counts one hit for `key`; `Err(Error::RateLimited { retry_after })` past the limit.
    ///
    /// # Errors
    /// [`Error::RateLimited`] when refused; store errors.
    pub async fn hit(&self, key: &str) -> Result<(), Error> {
        let d = self.check(key).await?;
        match d.retry_after {
            Some(retry_after) if !d.allowed => Err(Error::RateLimited { retry_after }),
            _ => Ok(()),
        }
    }

    /// The keyed hash naming `key`'s counters: a key of any size costs one hash.
    fn tag(&self, key: &str) -> String {
        let limit = &self.limit;
        let kind: &[u8] = match limit.kind {
            WindowKind::Fixed => b"fixed",
            WindowKind::Sliding => b"sliding",
        };
        let mac = self.service.inner.keys.mac(&[
            b"rate limit",
            self.name.as_bytes(),
            kind,
            &limit.max.to_be_bytes(),
            &limit.window_secs().to_be_bytes(),
            key.as_bytes(),
        ]);
        let head = mac.first_chunk::<18>().copied().unwrap_or_default();
        URL_SAFE_NO_PAD.encode(head)
    }
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs)
}

fn window_key(tag: &str, index: u64) -> StoreKey {
    StoreKey::new(format!("tf:rl:{{{tag}}}:{index}"))
}

/// A counter's value as `get` returns it: its count in decimal.
fn count_of(value: Option<Vec<u8>>) -> Result<u64, StoreError> {
    match value {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| StoreError::corrupt("a rate-limit counter is not a number")),
    }
}

/// The decision for a hit that made the current window's count `current`, with `previous` hits
/// in the window before and `elapsed` seconds of the current window gone.
fn decide(limit: Limit, current: u64, previous: u64, elapsed: u64) -> Decision {
    let (max, w) = (u128::from(limit.max), u128::from(limit.window_secs()));
    let (cur, prev, e) = (
        u128::from(current),
        u128::from(previous),
        u128::from(elapsed),
    );
    // Hits in the last `window`, scaled by `w` to stay in integers.
    let scaled = match limit.kind {
        WindowKind::Fixed => cur * w,
        WindowKind::Sliding => prev * (w - e.min(w)) + cur * w,
    };
    if scaled <= max * w {
        let used = scaled.div_ceil(w);
        let remaining = u32::try_from(max.saturating_sub(used)).unwrap_or(u32::MAX);
        return Decision {
            allowed: true,
            remaining,
            retry_after: None,
        };
    }
    let wait = match limit.kind {
        WindowKind::Fixed => w - e.min(w),
        WindowKind::Sliding => sliding_wait(max, w, cur, prev, e.min(w)),
    };
    let secs = u64::try_from(wait).unwrap_or(u64::MAX).max(1);
    Decision {
        allowed: false,
        remaining: 0,
        retry_after: Some(Duration::from_secs(secs)),
    }
}

/// Seconds until one more hit fits in a sliding window, if none comes meanwhile.
fn sliding_wait(max: u128, w: u128, cur: u128, prev: u128, e: u128) -> u128 {
    // Still in this window: prev * (w - e') / w + cur + 1 <= max, for e' = e + wait < w.
    if cur < max {
        // Smallest e' with prev * (w - e') <= room (none to wait for without a previous window).
        if let Some(fit) = ((max - cur - 1) * w).checked_div(prev) {
            let target = w.saturating_sub(fit);
            if target < w {
                return target.saturating_sub(e);
            }
        }
    }
    // In the next window, s seconds in: cur * (w - s) / w + 1 <= max.
    let room = max.saturating_sub(1) * w;
    let s = room.checked_div(cur).map_or(0, |fit| w.saturating_sub(fit));
    (w - e) + s
}

/// Polls two futures at once and returns both outputs: two store calls in one round trip of
/// waiting.
async fn both<A, B>(mut a: Pin<Box<A>>, mut b: Pin<Box<B>>) -> (A::Output, B::Output)
where
    A: Future + ?Sized,
    B: Future + ?Sized,
{
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(move |cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            if let (Some(x), Some(y)) = (ra.take(), rb.take()) {
                return Poll::Ready((x, y));
            }
        }
        Poll::Pending
    })
    .await
}

/// Who is asking, for the login steps: lets [`TwoFactorService::begin_login_with`] and
/// [`TwoFactorService::verify_login_with`] hold a per-client ceiling
/// ([`Policy::client_login_limit`](crate::Policy::client_login_limit)) beside the per-user and
/// per-challenge limits.
///
/// ```
/// use twofactor::LoginContext;
///
/// let ctx = LoginContext::new().client("203.0.113.7");
/// assert_eq!(ctx.client_id(), Some("203.0.113.7"));
/// assert_eq!(LoginContext::new().client_id(), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginContext {
    client: Option<String>,
}

impl LoginContext {
    /// A context that names no client: only the per-user and per-challenge limits apply.
    pub fn new() -> Self {
        LoginContext::default()
    }

    /// The client the request comes from: typically its IP address (for IPv6, its /64), taken
    /// from the connection or from a proxy header the host trusts. Any string; it is hashed
    /// before it reaches the store.
    pub fn client(mut self, client: impl Into<String>) -> Self {
        self.client = Some(client.into());
        self
    }

    /// The client, if one was named.
    pub fn client_id(&self) -> Option<&str> {
        self.client.as_deref()
    }
}

impl TwoFactorService {
    /// Counts one login step for the context's client against
    /// [`Policy::client_login_limit`](crate::Policy::client_login_limit).
    pub(crate) async fn limit_client(&self, ctx: &LoginContext) -> Result<(), Error> {
        let Some(client) = ctx.client_id() else {
            return Ok(());
        };
        self.rate_limiter("login client", self.inner.policy.client_login_limit)?
            .hit(client)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn fixed_window_allows_max_then_waits_for_its_end() {
        let l = Limit::fixed(3, W);
        assert!(decide(l, 3, 0, 10).allowed);
        assert_eq!(decide(l, 3, 0, 10).remaining, 0);
        let d = decide(l, 4, 0, 10);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_secs(50)));
    }

    #[test]
    fn sliding_window_weighs_the_previous_window() {
        let l = Limit::sliding(10, W);
        // 10 hits in the previous window, 15 s into this one: 7.5 of them still count.
        assert!(decide(l, 2, 10, 15).allowed);
        assert!(!decide(l, 3, 10, 15).allowed);
        // Half-way, 5 count.
        assert!(decide(l, 5, 10, 30).allowed);
        assert!(!decide(l, 6, 10, 30).allowed);
    }

    #[test]
    fn sliding_retry_after_is_when_one_more_hit_fits() {
        let l = Limit::sliding(10, W);
        for (cur, prev, e) in [
            (3, 10, 15),
            (11, 0, 5),
            (6, 10, 30),
            (40, 40, 59),
            (1, 500, 0),
        ] {
            let d = decide(l, cur, prev, e);
            assert!(!d.allowed, "{cur} {prev} {e}");
            let wait = d.retry_after.unwrap().as_secs();
            // After the wait, the next hit (one more in whichever window then is current) fits;
            // a second earlier it did not.
            let fits = |t: u64| {
                let e2 = e + t;
                if e2 < 60 {
                    decide(l, cur + 1, prev, e2).allowed
                } else {
                    decide(l, 1, cur, e2 - 60).allowed
                }
            };
            assert!(fits(wait), "{cur} {prev} {e}: {wait}");
            assert!(wait == 1 || !fits(wait - 1), "{cur} {prev} {e}: {wait}");
        }
    }

    #[test]
    fn the_policy_refuses_a_client_limit_that_allows_nothing() {
        let mut policy = crate::Policy::default();
        assert!(policy.validate().is_ok());
        policy.client_login_limit = Limit::sliding(0, W);
        assert!(policy.validate().is_err());
        policy.client_login_limit = Limit::fixed(5, Duration::ZERO);
        assert!(policy.validate().is_err());
    }

    #[test]
    fn limits_are_validated() {
        assert!(Limit::fixed(0, W).validate().is_err());
        assert!(Limit::fixed(1, Duration::from_millis(500))
            .validate()
            .is_err());
        assert!(Limit::fixed(1, Duration::from_secs(86_401))
            .validate()
            .is_err());
        assert!(Limit::sliding(1, Duration::from_secs(86_400))
            .validate()
            .is_ok());
    }
}
