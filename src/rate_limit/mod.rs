//! [`RateLimiter`]: a limit the host sets on what the crate does not see (the password step, a
//! registration form, a route), kept in the same [`OtpStore`](crate::store::OtpStore) as the login state, so that every
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
//! | per client address | the IP (or its /64 for IPv6) | before the password check and on every login step: [`LoginContext`] with [`TwoFactorService::begin_login`](crate::TwoFactorService::begin_login) and [`TwoFactorService::verify_login`](crate::TwoFactorService::verify_login) ([`Policy::client_login_limit`](crate::Policy::client_login_limit)) | caps what one source can try across every account (credential stuffing, code guessing on stolen passwords) |
//! | per account | the normalised username | before the password check, in the host | caps password guesses on one account from many addresses; together with the per-user code lock of the crate, no success in one step forgives failures in another |
//! | per challenge | (built in) | [`TwoFactorService::verify_login`] | each challenge is void after [`Policy::challenge_max_attempts`](crate::Policy::challenge_max_attempts), each user locked after [`Policy::lockout_threshold`](crate::Policy::lockout_threshold) consecutive failures |
//! | per address or route | the email address, the route | registration, password-reset or contact forms | caps mail to one address and work per route |
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use twofactor::{*, rate_limit::Decision, rate_limit::Limit, rate_limit::MAX_LIMIT_WINDOW, store::MemoryEnrollmentStore, store::MemoryOtpStore, store::OtpStore, rate_limit::RateLimiter, testing::RecordingMailer, error::StoreError, store::StoreKey, clock::Timestamp, rate_limit::WindowKind};
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

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::clock::Timestamp;
use crate::error::{Error, StoreError};
use crate::service::TwoFactorService;
use crate::store::StoreKey;

mod context;
pub(crate) mod limit;

pub use context::LoginContext;
pub(crate) use limit::decide;
pub use limit::{Decision, Limit, WindowKind, MAX_LIMIT_WINDOW};

/// Counts hits per key against a [`Limit`], in the service's [`OtpStore`](crate::store::OtpStore).
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
        let (current, previous) = match self.limit.kind() {
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
        let kind: &[u8] = match limit.kind() {
            WindowKind::Fixed => b"fixed",
            WindowKind::Sliding => b"sliding",
        };
        let mac = self.service.inner.keys.mac(&[
            b"rate limit",
            self.name.as_bytes(),
            kind,
            &limit.max().to_be_bytes(),
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
