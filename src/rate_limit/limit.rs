//! A limit and its window maths: how many hits a key may make, fixed or sliding windows, and the
//! decision for one hit. Pure values; the counting lives in [`RateLimiter`](super::RateLimiter).

use std::time::Duration;

use crate::error::Error;

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

/// How many hits a [`RateLimiter`](super::RateLimiter) allows per key, and in what window.
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

    pub(crate) fn window_secs(&self) -> u64 {
        self.window.as_secs().max(1)
    }
}

/// The outcome of one [`RateLimiter::check`](super::RateLimiter::check).
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

/// The decision for a hit that made the current window's count `current`, with `previous` hits
/// in the window before and `elapsed` seconds of the current window gone.
pub(crate) fn decide(limit: Limit, current: u64, previous: u64, elapsed: u64) -> Decision {
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
