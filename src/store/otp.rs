//! The [`OtpStore`] trait, and the default implementations of its composite operations, built
//! from its primitives in the [default layout](crate::store::flow#default-layout).

use std::time::Duration;

use async_trait::async_trait;

use super::flow::layout::{
    challenge_bytes, decode_default_user, encode_default_user, parse_number, read_challenge_bytes,
    sub,
};
use super::flow::{
    rules, AttemptSpec, Begun, ChallengeState, NewChallenge, OpenAttempt, Opened, Outcome,
    Reserved, SendRefused, SendSpec, Settled, Settlement, UserLimits, UserState,
};
use super::key::StoreKey;
use crate::clock::Timestamp;
use crate::error::StoreError;

/// Short-lived state: pending codes, challenges, counters, lockouts, cooldowns, TOTP steps.
///
/// Each method must be atomic on its own (one round trip in Redis, one statement in SQL): the
/// security of the limits depends on it. A record whose `expires_at` is at or before the `now`
/// passed in is treated as absent by every method, whether or not the backend has removed it yet.
///
/// Values are opaque bytes written by this crate (at most a few kilobytes).
///
/// # Implementing it
///
/// The trait is async through [`async_trait`](crate::async_trait): put `#[twofactor::async_trait]`
/// on the `impl` too (without it the compiler answers E0195, "lifetime parameters or bounds do not
/// match"). An `Arc<S>` or a `Box<dyn OtpStore>` is an `OtpStore` as well, forwarding every
/// call. A store that wraps another, here to count calls, forwards the composite operations
/// too; one that does not gets the defaults, built from its primitives: still correct, but with
/// more round trips.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use twofactor::store::flow::{
///     AttemptSpec, Begun, NewChallenge, Opened, Reserved, SendSpec, Settled, Settlement,
///     UserLimits, UserState,
/// };
/// use twofactor::{async_trait, store::MemoryOtpStore, store::OtpStore, error::StoreError, store::StoreKey, clock::Timestamp};
///
/// /// Counts the calls that reach the store inside.
/// struct Metered<S> {
///     inner: S,
///     calls: AtomicU64,
/// }
///
/// impl<S> Metered<S> {
///     fn hit(&self) {
///         self.calls.fetch_add(1, Ordering::Relaxed);
///     }
/// }
///
/// #[async_trait]
/// impl<S: OtpStore> OtpStore for Metered<S> {
///     async fn put(&self, key: &StoreKey, value: &[u8], expires_at: Timestamp, now: Timestamp)
///         -> Result<(), StoreError> {
///         self.hit();
///         self.inner.put(key, value, expires_at, now).await
///     }
///     async fn put_if_absent(&self, key: &StoreKey, value: &[u8], expires_at: Timestamp,
///         now: Timestamp) -> Result<bool, StoreError> {
///         self.hit();
///         self.inner.put_if_absent(key, value, expires_at, now).await
///     }
///     async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
///         self.hit();
///         self.inner.get(key, now).await
///     }
///     async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError> {
///         self.hit();
///         self.inner.take(key, now).await
///     }
///     async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
///         self.hit();
///         self.inner.delete(key).await
///     }
///     async fn increment(&self, key: &StoreKey, expires_at: Timestamp, now: Timestamp)
///         -> Result<u64, StoreError> {
///         self.hit();
///         self.inner.increment(key, expires_at, now).await
///     }
///     async fn advance(&self, key: &StoreKey, value: u64, expires_at: Timestamp, now: Timestamp)
///         -> Result<bool, StoreError> {
///         self.hit();
///         self.inner.advance(key, value, expires_at, now).await
///     }
///     // The composite operations: forwarded, so the inner store's native ones run.
///     async fn begin_challenge(&self, new: &NewChallenge<'_>, now: Timestamp)
///         -> Result<Begun, StoreError> {
///         self.hit();
///         self.inner.begin_challenge(new, now).await
///     }
///     async fn reserve_send(&self, user: &StoreKey, challenge: Option<&StoreKey>,
///         spec: &SendSpec<'_>, now: Timestamp) -> Result<Reserved, StoreError> {
///         self.hit();
///         self.inner.reserve_send(user, challenge, spec, now).await
///     }
///     async fn store_code(&self, key: &StoreKey, create: Option<(&[u8], Timestamp)>, code: &[u8],
///         now: Timestamp) -> Result<bool, StoreError> {
///         self.hit();
///         self.inner.store_code(key, create, code, now).await
///     }
///     async fn open_attempt(&self, spec: &AttemptSpec<'_>, now: Timestamp)
///         -> Result<Opened, StoreError> {
///         self.hit();
///         self.inner.open_attempt(spec, now).await
///     }
///     async fn settle(&self, settlement: &Settlement<'_>, now: Timestamp)
///         -> Result<Settled, StoreError> {
///         self.hit();
///         self.inner.settle(settlement, now).await
///     }
///     async fn user_state(&self, user: &StoreKey, limits: &UserLimits, now: Timestamp)
///         -> Result<UserState, StoreError> {
///         self.hit();
///         self.inner.user_state(user, limits, now).await
///     }
///     async fn end_challenges(&self, user: &StoreKey, limits: &UserLimits, now: Timestamp)
///         -> Result<u32, StoreError> {
///         self.hit();
///         self.inner.end_challenges(user, limits, now).await
///     }
/// }
///
/// let store = std::sync::Arc::new(Metered { inner: MemoryOtpStore::new(), calls: AtomicU64::new(0) });
/// // The host keeps a handle to read the count; the service takes the Arc as a store.
/// let _builder = twofactor::TwoFactorService::builder().otp_store(store.clone());
/// # assert_eq!(store.calls.load(Ordering::Relaxed), 0);
/// ```
#[async_trait]
pub trait OtpStore: Send + Sync + 'static {
    /// Stores `value` under `key`, replacing any record, until `expires_at`.
    async fn put(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Stores `value` only if no live record exists under `key`. Returns whether it was stored.
    async fn put_if_absent(
        &self,
        key: &StoreKey,
        value: &[u8],
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The live value under `key`, if any.
    async fn get(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes the record under `key` and returns its value if it was live.
    ///
    /// Under concurrent calls for one key, exactly one caller receives the value.
    async fn take(&self, key: &StoreKey, now: Timestamp) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes the record under `key`, live or not. Removing nothing is not an error.
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError>;

    /// Adds one to the counter under `key` and returns the new count.
    ///
    /// A missing or expired counter starts again at 1 and expires at `expires_at`; a live counter
    /// keeps its expiry. N concurrent calls on a fresh key return exactly 1..=N.
    async fn increment(
        &self,
        key: &StoreKey,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Stores `value` if no live record exists under `key` or the live one holds a smaller number.
    /// Returns whether it was stored; on success the record expires at `expires_at`.
    ///
    /// Used for the last accepted TOTP step: of N concurrent calls with the same value, exactly one
    /// returns `true`.
    async fn advance(
        &self,
        key: &StoreKey,
        value: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    // ---- composite operations (see [`flow`]) -------------------------------------------------

    /// Creates a login challenge in one step: refuses a locked user, reserves the code's send
    /// when one is asked for, and stores the challenge (with the code when the send was granted).
    ///
    /// The default runs the [`flow`](crate::store::flow) rules over the primitives (several round
    /// trips); a native store does it in one.
    async fn begin_challenge(
        &self,
        new: &NewChallenge<'_>,
        now: Timestamp,
    ) -> Result<Begun, StoreError> {
        default_begin_challenge(self, new, now).await
    }

    /// Reserves a send for the user `user`: checks the named challenge is live (returning its
    /// value), then the cooldown and the send cap; a granted send starts the cooldown and is
    /// counted.
    async fn reserve_send(
        &self,
        user: &StoreKey,
        challenge: Option<&StoreKey>,
        spec: &SendSpec<'_>,
        now: Timestamp,
    ) -> Result<Reserved, StoreError> {
        default_reserve_send(self, user, challenge, spec, now).await
    }

    /// Stores `code` as the current code of the challenge or pending record under `key`, keeping
    /// its attempt count. With `create = Some((value, expires_at))` the record's value and expiry
    /// are set too, and a missing record is created; without it, a missing record is left missing
    /// and `false` returned.
    async fn store_code(
        &self,
        key: &StoreKey,
        create: Option<(&[u8], Timestamp)>,
        code: &[u8],
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        default_store_code(self, key, create, code, now).await
    }

    /// Opens one attempt: loads the named challenge and counts the attempt on it, refuses a
    /// locked user, and counts the attempt against the user's run of failures, before the caller
    /// compares anything.
    ///
    /// Under N concurrent calls, no more than the challenge's cap and the user's threshold are
    /// opened.
    async fn open_attempt(
        &self,
        spec: &AttemptSpec<'_>,
        now: Timestamp,
    ) -> Result<Opened, StoreError> {
        default_open_attempt(self, spec, now).await
    }

    /// Settles an opened attempt: on a pass, takes the challenge, records the TOTP step (refusing
    /// a replay) and ends the user's run; on a failure that reached the threshold, locks.
    ///
    /// Under N concurrent passes on one challenge, exactly one returns [`Settled::Done`], and a
    /// pass that does not is written nowhere.
    async fn settle(
        &self,
        settlement: &Settlement<'_>,
        now: Timestamp,
    ) -> Result<Settled, StoreError> {
        default_settle(self, settlement, now).await
    }

    /// The user's record as of `now` (default values when there is none).
    async fn user_state(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<UserState, StoreError> {
        default_user_state(self, user, limits, now).await
    }

    /// Ends every challenge of the user begun so far: moves the user's
    /// [epoch](crate::store::flow::UserState::epoch) on by one
    /// ([`rules::end_challenges`](crate::store::flow::rules::end_challenges)) and returns the new
    /// one, creating the user's record when there is none (kept as `limits` says). A challenge
    /// begun before cannot be opened or passed afterwards.
    ///
    /// The service calls it after every change of a user's factors. Calling it again is safe:
    /// it only ends challenges.
    async fn end_challenges(
        &self,
        user: &StoreKey,
        limits: &UserLimits,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        default_end_challenges(self, user, limits, now).await
    }
}

// ---- the default implementations, built from the primitives ----------------------------------

async fn load_user<S: OtpStore + ?Sized>(
    store: &S,
    key: &StoreKey,
    now: Timestamp,
) -> Result<(UserState, u64), StoreError> {
    match store.get(key, now).await? {
        Some(bytes) => decode_default_user(&bytes),
        None => Ok((UserState::default(), 0)),
    }
}

async fn save_user<S: OtpStore + ?Sized>(
    store: &S,
    key: &StoreKey,
    user: &UserState,
    run: u64,
    limits: &UserLimits,
    now: Timestamp,
) -> Result<(), StoreError> {
    let expires = rules::user_expires_at(user, limits, now);
    store
        .put(key, &encode_default_user(user, run), expires, now)
        .await
}

async fn load_challenge<S: OtpStore + ?Sized>(
    store: &S,
    key: &StoreKey,
    now: Timestamp,
) -> Result<Option<ChallengeState>, StoreError> {
    let Some(bytes) = store.get(key, now).await? else {
        return Ok(None);
    };
    let (expires_at, epoch, value) = read_challenge_bytes(&bytes)?;
    if expires_at <= now {
        return Ok(None);
    }
    let code = store.get(&sub(key, "code"), now).await?;
    let attempts = match store.get(&sub(key, "n"), now).await? {
        Some(n) => u32::try_from(parse_number(&n)).unwrap_or(u32::MAX),
        None => 0,
    };
    Ok(Some(ChallengeState {
        value: value.to_vec(),
        code,
        attempts,
        expires_at,
        epoch,
    }))
}

/// The user's epoch in the default layout: the counter `U:epoch` (0 when there is none).
async fn load_epoch<S: OtpStore + ?Sized>(
    store: &S,
    user: &StoreKey,
    now: Timestamp,
) -> Result<u32, StoreError> {
    let count = store.get(&sub(user, "epoch"), now).await?;
    Ok(count.map_or(0, |n| epoch_of(parse_number(&n))))
}

/// The epoch a count of `U:epoch` stands for (epochs wrap, as the rules' do).
fn epoch_of(count: u64) -> u32 {
    u32::try_from(count & u64::from(u32::MAX)).unwrap_or(0)
}

/// Moves the user's epoch on in the default layout. The counter never expires: a counter that
/// lapsed would count up again through epochs that challenges still live may carry.
async fn bump_epoch<S: OtpStore + ?Sized>(
    store: &S,
    user: &StoreKey,
    now: Timestamp,
) -> Result<u32, StoreError> {
    let n = store
        .increment(&sub(user, "epoch"), Timestamp::MAX, now)
        .await?;
    Ok(epoch_of(n))
}

/// Reserves a send in the default layout: the cooldown by `put_if_absent`, the cap by
/// `increment` (a refused send gives its cooldown back).
async fn default_reserve<S: OtpStore + ?Sized>(
    store: &S,
    user_key: &StoreKey,
    spec: &SendSpec<'_>,
    now: Timestamp,
) -> Result<Result<(), SendRefused>, StoreError> {
    let stamp = spec.cooldown_until.as_unix_secs().to_be_bytes();
    if !store
        .put_if_absent(spec.cooldown, &stamp, spec.cooldown_until, now)
        .await?
    {
        let until = match store.get(spec.cooldown, now).await? {
            Some(b) => b.first_chunk::<8>().map_or(spec.cooldown_until, |t| {
                Timestamp::from_unix_secs(u64::from_be_bytes(*t))
            }),
            None => now.saturating_add(Duration::from_secs(1)),
        };
        return Ok(Err(SendRefused::Cooldown { until }));
    }
    let window_end = now.saturating_add(spec.send_window);
    match store
        .increment(&sub(user_key, "sends"), window_end, now)
        .await
    {
        Ok(n) if n <= u64::from(spec.max_sends) => Ok(Ok(())),
        Ok(_) => {
            store.delete(spec.cooldown).await?;
            Ok(Err(SendRefused::Capped { until: window_end }))
        }
        Err(e) => {
            let _ = store.delete(spec.cooldown).await;
            Err(e)
        }
    }
}

async fn default_begin_challenge<S: OtpStore + ?Sized>(
    store: &S,
    new: &NewChallenge<'_>,
    now: Timestamp,
) -> Result<Begun, StoreError> {
    let (user, _) = load_user(store, new.user, now).await?;
    if let Some(until) = rules::locked(&user, now) {
        return Ok(Begun::Locked { until });
    }
    // Read before the challenge is stored: a concurrent end_challenges either came first (the
    // challenge carries its epoch) or ends the challenge.
    let epoch = load_epoch(store, new.user, now).await?;
    let send = match &new.send {
        Some((spec, _)) => Some(default_reserve(store, new.user, spec, now).await?),
        None => None,
    };
    if let (true, Some(Err(refused))) = (new.send_required, send) {
        return Ok(Begun::SendRefused(refused));
    }
    if !store
        .put_if_absent(
            new.challenge,
            &challenge_bytes(new.value, new.expires_at, Some(epoch)),
            new.expires_at,
            now,
        )
        .await?
    {
        return Ok(Begun::Collision);
    }
    if let (Some((_, code)), Some(Ok(()))) = (&new.send, send) {
        store
            .put(&sub(new.challenge, "code"), code, new.expires_at, now)
            .await?;
    }
    Ok(Begun::Created { send })
}

async fn default_reserve_send<S: OtpStore + ?Sized>(
    store: &S,
    user: &StoreKey,
    challenge: Option<&StoreKey>,
    spec: &SendSpec<'_>,
    now: Timestamp,
) -> Result<Reserved, StoreError> {
    let value = match challenge {
        Some(key) => {
            let Some(ch) = load_challenge(store, key, now).await? else {
                return Ok(Reserved::NoChallenge);
            };
            // A challenge of an earlier epoch is as good as gone: no code is sent for it.
            if let Some(epoch) = ch.epoch {
                if epoch != load_epoch(store, user, now).await? {
                    return Ok(Reserved::NoChallenge);
                }
            }
            Some(ch.value)
        }
        None => None,
    };
    Ok(match default_reserve(store, user, spec, now).await? {
        Ok(()) => Reserved::Granted(value),
        Err(refused) => Reserved::Refused(refused),
    })
}

async fn default_store_code<S: OtpStore + ?Sized>(
    store: &S,
    key: &StoreKey,
    create: Option<(&[u8], Timestamp)>,
    code: &[u8],
    now: Timestamp,
) -> Result<bool, StoreError> {
    let expires_at = match load_challenge(store, key, now).await? {
        Some(ch) => match create {
            // A new pending code replaces the value and expiry; the attempt count stays.
            Some((value, expires_at)) => {
                store
                    .put(
                        key,
                        &challenge_bytes(value, expires_at, None),
                        expires_at,
                        now,
                    )
                    .await?;
                // The attempt counter moves to the new expiry with its count (counted again:
                // the primitives have no way to change a counter's expiry).
                let n = sub(key, "n");
                if ch.attempts > 0 {
                    store.delete(&n).await?;
                    for _ in 0..ch.attempts {
                        store.increment(&n, expires_at, now).await?;
                    }
                }
                expires_at
            }
            None => ch.expires_at,
        },
        None => match create {
            Some((value, expires_at)) => {
                store.delete(&sub(key, "n")).await?;
                store
                    .put(
                        key,
                        &challenge_bytes(value, expires_at, None),
                        expires_at,
                        now,
                    )
                    .await?;
                expires_at
            }
            None => return Ok(false),
        },
    };
    store.put(&sub(key, "code"), code, expires_at, now).await?;
    Ok(true)
}

async fn default_open_attempt<S: OtpStore + ?Sized>(
    store: &S,
    spec: &AttemptSpec<'_>,
    now: Timestamp,
) -> Result<Opened, StoreError> {
    let mut challenge = None;
    if let Some((key, max)) = spec.challenge {
        let Some(ch) = load_challenge(store, key, now).await? else {
            return Ok(Opened::NoChallenge);
        };
        if ch.attempts >= max {
            return Ok(Opened::Exhausted);
        }
        challenge = Some((key, max, ch));
    }
    let (user, run) = load_user(store, spec.user, now).await?;
    let user = rules::current(user, &spec.limits, now);
    if let Some(until) = rules::locked(&user, now) {
        return Ok(Opened::Locked { until: Some(until) });
    }
    // A challenge of an earlier epoch is refused before anything is counted.
    if let Some((
        _,
        _,
        ChallengeState {
            epoch: Some(epoch), ..
        },
    )) = &challenge
    {
        if *epoch != load_epoch(store, spec.user, now).await? {
            return Ok(Opened::NoChallenge);
        }
    }
    let mut attempts = 0;
    let challenge = match challenge {
        Some((key, max, mut ch)) => {
            let n = store.increment(&sub(key, "n"), ch.expires_at, now).await?;
            if n > u64::from(max) {
                return Ok(Opened::Exhausted);
            }
            attempts = u32::try_from(n).unwrap_or(u32::MAX);
            ch.attempts = attempts;
            Some(ch)
        }
        None => None,
    };
    let failures = store
        .increment(
            &sub(spec.user, &format!("f:{run}")),
            now.saturating_add(spec.limits.failure_window),
            now,
        )
        .await?;
    if failures > u64::from(spec.limits.threshold) {
        return Ok(Opened::Locked { until: None });
    }
    Ok(Opened::Open(OpenAttempt {
        challenge,
        attempts,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        level: user.level,
    }))
}

async fn default_settle<S: OtpStore + ?Sized>(
    store: &S,
    settlement: &Settlement<'_>,
    now: Timestamp,
) -> Result<Settled, StoreError> {
    let (user, run) = load_user(store, settlement.user, now).await?;
    let mut user = rules::current(user, &settlement.limits, now);
    match settlement.outcome {
        Outcome::Passed { totp_step } => {
            // Take the challenge first: of concurrent passes exactly one gets it, and the others
            // find it gone (charged nothing). A replayed step then puts it back as it was (its
            // attempt count and code live under keys of their own and were not touched).
            let taken = match settlement.challenge {
                Some(key) => match store.take(key, now).await? {
                    Some(bytes) => Some((key, bytes)),
                    None => return Ok(Settled::ChallengeGone),
                },
                None => None,
            };
            // The epoch is read after the challenge is taken: an end_challenges that returned
            // before this settle began is seen, and the challenge (dead) stays taken.
            if let Some((key, bytes)) = &taken {
                if let (_, Some(epoch), _) = read_challenge_bytes(bytes)? {
                    if epoch != load_epoch(store, settlement.user, now).await? {
                        let _ = store.delete(&sub(key, "code")).await;
                        let _ = store.delete(&sub(key, "n")).await;
                        return Ok(Settled::ChallengeGone);
                    }
                }
            }
            if let Some(step) = totp_step {
                // The mark outlives every window in which a code of that step is accepted.
                let expires = now.saturating_add(settlement.limits.retention);
                if !store
                    .advance(&sub(settlement.user, "step"), step, expires, now)
                    .await?
                {
                    if let Some((key, bytes)) = &taken {
                        let (expires_at, _, _) = read_challenge_bytes(bytes)?;
                        store.put(key, bytes, expires_at, now).await?;
                    }
                    return Ok(Settled::Replayed);
                }
            }
            if let Some((key, _)) = taken {
                let _ = store.delete(&sub(key, "code")).await;
                let _ = store.delete(&sub(key, "n")).await;
            }
            rules::settle(
                true,
                None,
                &mut user,
                Outcome::Passed { totp_step: None },
                now,
            );
            user.last_step = totp_step.or(user.last_step);
        }
        outcome @ (Outcome::Lock { .. } | Outcome::Failed) => {
            let live = match settlement.challenge {
                Some(key) => load_challenge(store, key, now).await?.is_some(),
                None => true,
            };
            let settled = rules::settle(live, None, &mut user, outcome, now);
            if settled != Settled::Done || outcome == Outcome::Failed {
                return Ok(settled);
            }
            // The lock ends every challenge of the user (the epoch lives in its own counter;
            // the record's copy is not read).
            bump_epoch(store, settlement.user, now).await?;
        }
    }
    // A new run: the old run's counter is no longer read.
    save_user(
        store,
        settlement.user,
        &user,
        run.wrapping_add(1),
        &settlement.limits,
        now,
    )
    .await?;
    Ok(Settled::Done)
}

async fn default_user_state<S: OtpStore + ?Sized>(
    store: &S,
    user: &StoreKey,
    limits: &UserLimits,
    now: Timestamp,
) -> Result<UserState, StoreError> {
    let (state, run) = load_user(store, user, now).await?;
    // The counters keep their own expiry: read them after the record's lapses are applied.
    let mut state = rules::current(state, limits, now);
    if let Some(n) = store.get(&sub(user, &format!("f:{run}")), now).await? {
        state.failures = u32::try_from(parse_number(&n)).unwrap_or(u32::MAX);
    }
    if let Some(n) = store.get(&sub(user, "sends"), now).await? {
        state.sends = u32::try_from(parse_number(&n)).unwrap_or(u32::MAX);
    }
    if let Some(n) = store.get(&sub(user, "step"), now).await? {
        state.last_step = Some(parse_number(&n));
    }
    state.epoch = load_epoch(store, user, now).await?;
    Ok(state)
}

async fn default_end_challenges<S: OtpStore + ?Sized>(
    store: &S,
    user: &StoreKey,
    _limits: &UserLimits,
    now: Timestamp,
) -> Result<u32, StoreError> {
    bump_epoch(store, user, now).await
}
