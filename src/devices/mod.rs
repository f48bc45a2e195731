//! Trusted devices ("remember this device"): after a passed second factor, the host may trust
//! the browser with [`Devices::trust`](crate::service::Devices::trust); a later
//! [`LoginContext::device`](crate::LoginContext::device) given its [`DeviceToken`] completes the login
//! with [`Method::TrustedDevice`] and no challenge.
//!
//! A device token is `tfd1_` followed by 43 base64url characters: 256 bits from the OS CSPRNG. It
//! never is a [`ChallengeToken`](crate::ChallengeToken) (prefix `tfc2_`, 59 characters), and
//! neither parses as the other. The store never sees it: the user's enrolment record keeps, per
//! device, `HMAC-SHA256(index key, "trusted device" ‖ user ‖ token)` with a public id, the
//! host's label and the times. A token is checked only against the records of the user the
//! host names, so a token of one user never opens another's account.
//!
//! Devices live in the [`EnrollmentRecord`](crate::store::EnrollmentRecord) (`trusted_devices`), so
//! every enrolment store keeps them durably, updates them by compare-and-swap, and drops them
//! with the record at [`disable`](crate::service::Account::disable). A backup-code regeneration and
//! [`devices().revoke_all`](crate::service::Devices::revoke_all) (call it on a password change) revoke
//! them all. At most [`Policy::max_trusted_devices`](crate::Policy::max_trusted_devices) are kept
//! per user: trusting one more forgets the least recently used.
//!
//! A device login is not a second-factor check: it neither ends nor resets the user's run of
//! failures or lock, and it does not count as a fresh factor for security changes
//! ([`account().reauthenticate`](crate::service::Account::reauthenticate) still asks for a code).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;

use crate::clock::Timestamp;
use crate::code;
use crate::error::Error;
use crate::events::Event;
use crate::input::check_user;
use crate::login::LoginStep;
use crate::mail::MailContent;
use crate::method::{Method, Verified};
use crate::service::TwoFactorService;
use crate::store::{EnrollmentRecord, Revision, TrustedDeviceRecord};

pub(crate) mod types;

pub use types::{DeviceToken, DeviceTrust, TrustedDevice, MAX_DEVICE_LABEL};
use types::{ID_BYTES, RANDOM_BYTES};

/// How stale a device's stored last use must be before a login rewrites it (see
/// [`TrustedDevice::last_used_at`]).
const LAST_USE_GRANULARITY: Duration = Duration::from_secs(3600);

/// Reads (and, when the use is to be recorded, compare-and-swap writes) a device login makes
/// before it stops recording the use and lets the device in on the last read.
const LAST_USE_WRITES: usize = 5;

impl TwoFactorService {
    /// [`Devices::trust`](crate::service::Devices::trust).
    pub(crate) async fn trust_device(
        &self,
        verified: &Verified,
        label: &str,
        ttl: Option<Duration>,
    ) -> Result<DeviceTrust, Error> {
        let user = verified.user.as_str();
        check_user(user)?;
        if label.trim().is_empty()
            || label.len() > MAX_DEVICE_LABEL
            || label.chars().any(char::is_control)
        {
            return Err(Error::InvalidInput(
                "device label must be 1 to 128 bytes without control characters",
            ));
        }
        let policy = &self.inner.policy;
        let now = self.now();
        let fresh = verified
            .verified_at
            .saturating_add(policy.reauth_window)
            .as_unix_secs()
            >= now.as_unix_secs();
        // Every second factor, a security key's assertion included; not a device login (a
        // device cannot extend its own trust) nor a login without a factor.
        if !matches!(
            verified.method,
            Some(
                Method::Totp
                    | Method::Email
                    | Method::Sms
                    | Method::BackupCode
                    | Method::SecurityKey
            )
        ) || !fresh
        {
            return Err(Error::ReauthRequired);
        }
        let ttl = ttl
            .unwrap_or(policy.trusted_device_ttl)
            .min(policy.trusted_device_ttl)
            .max(Duration::from_secs(1));
        let (token, random) = DeviceToken::generate();
        let mut id = [0u8; ID_BYTES];
        OsRng.fill_bytes(&mut id);
        let record = TrustedDeviceRecord::new(
            URL_SAFE_NO_PAD.encode(id),
            self.device_mac(user, &random).to_vec(),
            label.to_owned(),
            now,
            now.saturating_add(ttl),
        );
        let max = policy.max_trusted_devices as usize;
        let rec = self
            .update(user, |rec| {
                if !rec.is_enabled() {
                    return Err(Error::NotEnrolled);
                }
                rec.trusted_devices.retain(|d| d.expires_at > now);
                while rec.trusted_devices.len() >= max {
                    // Forget the least recently used.
                    let oldest = rec
                        .trusted_devices
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, d)| d.last_used_at.unwrap_or(d.created_at))
                        .map(|(i, _)| i);
                    match oldest {
                        Some(i) => {
                            rec.trusted_devices.remove(i);
                        }
                        None => break,
                    }
                }
                rec.trusted_devices.push(record.clone());
                Ok(true)
            })
            .await?;
        self.event(Event::DeviceTrusted {
            user: user.to_owned(),
            device: record.id.clone(),
        });
        let to = rec.email.as_ref().map(|e| e.address.as_str());
        self.notify(user, to, MailContent::DeviceTrusted).await;
        Ok(DeviceTrust {
            token,
            device: TrustedDevice::from(&record),
        })
    }

    /// The login's second step with a device token (see [`LoginContext::device`]): a live
    /// trusted device of the user completes it, any other token falls through to the challenge.
    ///
    /// [`LoginContext::device`]: crate::LoginContext::device
    pub(crate) async fn begin_login_with_device(
        &self,
        user: &str,
        token: &DeviceToken,
    ) -> Result<LoginStep, Error> {
        // One load serves the device check and, when the token is refused, the challenge.
        let (loaded, remaining) = self.load_with_codes_revised(user).await?;
        match self.device_login(user, token, loaded, remaining).await? {
            Ok(verified) => Ok(LoginStep::Complete(verified)),
            Err((rec, remaining)) => self.begin_login_from(user, rec, remaining).await,
        }
    }

    /// [`Devices::list`](crate::service::Devices::list).
    pub(crate) async fn trusted_devices(&self, user: &str) -> Result<Vec<TrustedDevice>, Error> {
        check_user(user)?;
        let now = self.now();
        let (rec, _) = self.load(user).await?;
        Ok(live(&rec, now).map(TrustedDevice::from).collect())
    }

    /// [`Devices::revoke`](crate::service::Devices::revoke).
    pub(crate) async fn revoke_device(&self, user: &str, id: &str) -> Result<bool, Error> {
        check_user(user)?;
        let mut found = false;
        self.update(user, |rec| {
            let before = rec.trusted_devices.len();
            rec.trusted_devices.retain(|d| d.id != id);
            found = rec.trusted_devices.len() != before;
            Ok(found)
        })
        .await?;
        if found {
            self.event(Event::DevicesRevoked {
                user: user.to_owned(),
                count: 1,
            });
        }
        Ok(found)
    }

    /// [`Devices::revoke_all`](crate::service::Devices::revoke_all).
    pub(crate) async fn revoke_devices(&self, user: &str) -> Result<u32, Error> {
        check_user(user)?;
        self.revoke_devices_from(user, None).await
    }

    /// [`devices().revoke_all`](crate::service::Devices::revoke_all) from a record the caller has just loaded: no
    /// store call when there is no device to revoke.
    pub(crate) async fn revoke_devices_from(
        &self,
        user: &str,
        loaded: Option<(EnrollmentRecord, Option<Revision>)>,
    ) -> Result<u32, Error> {
        let mut count = 0u32;
        self.update_from(user, loaded, |rec| {
            count = u32::try_from(rec.trusted_devices.len()).unwrap_or(u32::MAX);
            rec.trusted_devices.clear();
            Ok(count > 0)
        })
        .await?;
        if count > 0 {
            self.event(Event::DevicesRevoked {
                user: user.to_owned(),
                count,
            });
        }
        Ok(count)
    }

    /// Checks a device token for `user`; on success records its use and returns the proof.
    /// A login on `token` from the record the caller loaded: `Ok(Verified)`, or the record and
    /// count back (`Err`) for a challenge when the token is refused. A revocation that won the
    /// race since the load refuses the token (the record is then loaded again for the challenge).
    async fn device_login(
        &self,
        user: &str,
        token: &DeviceToken,
        loaded: (EnrollmentRecord, Option<Revision>),
        remaining: u32,
    ) -> Result<Result<Verified, (EnrollmentRecord, u32)>, Error> {
        let now = self.now();
        let rejected = || {
            self.event(Event::DeviceRejected {
                user: user.to_owned(),
            })
        };
        if loaded.0.recovery.is_some() {
            // Not a refused device: the challenge says why (`Challenge::recovery_pending`).
            return Ok(Err((loaded.0, remaining)));
        }
        let Some(random) = DeviceToken::random_of(token.as_str()) else {
            rejected();
            return Ok(Err((loaded.0, remaining)));
        };
        let mac = self.device_mac(user, &random);
        let matching = |rec: &EnrollmentRecord| -> Option<String> {
            // While a recovery is pending, a device alone is not enough: the login asks for a
            // factor, whose pass cancels the recovery (and a due one is applied by
            // `begin_login`, not passed over).
            if !rec.is_enabled() || rec.recovery.is_some() {
                return None;
            }
            // Every live device is compared, in constant time, whichever matches.
            let mut found = None;
            for d in live(rec, now) {
                if code::ct_eq(&d.mac, &mac) {
                    found = Some(d.id.clone());
                }
            }
            found
        };
        if matching(&loaded.0).is_none() {
            rejected();
            return Ok(Err((loaded.0, remaining)));
        }
        // Record the use, coarsely: only when the stored time is `LAST_USE_GRANULARITY` old or
        // absent, so that concurrent logins on one device do not all rewrite the record. The
        // time is best-effort: a write that loses its compare-and-swap does not fail the login.
        // The device itself is not: each try checks it again on the record it read, so a
        // revocation or disable that won the race refuses the token.
        let mut loaded = Some(loaded);
        let mut admitted = false;
        for _ in 0..LAST_USE_WRITES {
            let (mut rec, rev) = match loaded.take() {
                Some(first) => first,
                None => self.load(user).await?,
            };
            let Some(id) = matching(&rec) else {
                admitted = false;
                break;
            };
            admitted = true;
            let mut stale = false;
            for d in rec.trusted_devices.iter_mut().filter(|d| d.id == id) {
                if d.last_used_at
                    .is_none_or(|t| t.saturating_add(LAST_USE_GRANULARITY) <= now)
                {
                    d.last_used_at = Some(now);
                    stale = true;
                }
            }
            if !stale
                || self
                    .inner
                    .enrollments
                    .save(user, &rec, rev)
                    .await?
                    .is_some()
            {
                break;
            }
        }
        if !admitted {
            rejected();
            return Ok(Err(self.load_with_codes(user).await?));
        }
        self.event(Event::Verified {
            user: user.to_owned(),
            method: Method::TrustedDevice,
        });
        Ok(Ok(Verified {
            user: user.to_owned(),
            method: Some(Method::TrustedDevice),
            backup_codes_remaining: remaining,
            verified_at: now,
            recovery_cancelled: false,
        }))
    }

    fn device_mac(&self, user: &str, random: &[u8; RANDOM_BYTES]) -> [u8; 32] {
        self.inner
            .keys
            .mac(&[b"trusted device", user.as_bytes(), random])
    }
}

/// The devices of `rec` still trusted at `now`.
fn live(rec: &EnrollmentRecord, now: Timestamp) -> impl Iterator<Item = &TrustedDeviceRecord> {
    rec.trusted_devices
        .iter()
        .filter(move |d| d.expires_at > now)
}
