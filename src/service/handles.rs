//! The per-concept handles of [`TwoFactorService`]: `tf.totp()`, `tf.email()`, `tf.sms()`,
//! `tf.backup_codes()`, `tf.security_keys()`, `tf.devices()`, `tf.recovery()`, `tf.account()`.
//! Each borrows the service and groups the calls of one concept; the login steps stay on the
//! service itself.

use std::time::Duration;

use super::TwoFactorService;
use crate::account::{DeviceTrust, RecoveryProgress, Status, TrustedDevice};
use crate::clock::Timestamp;
use crate::code::Secret;
use crate::error::Error;
use crate::mail::SecurityAction;
use crate::method::{Method, Verified};
#[cfg(feature = "webauthn")]
use crate::security_key::{SecurityKeyInfo, SecurityKeyOptions};
use crate::text::PhoneNumber;
use crate::totp::TotpSetup;

/// TOTP authenticator apps: setup, confirmation, re-sealing after a key rotation.
///
/// Made by [`TwoFactorService::totp`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let mailer = twofactor::testing::RecordingMailer::new();
/// # let tf = twofactor::TwoFactorService::builder()
/// #     .issuer("Acme")
/// #     .keys(twofactor::Keyring::generate())
/// #     .otp_store(twofactor::store::MemoryOtpStore::new())
/// #     .enrollments(twofactor::store::MemoryEnrollmentStore::new())
/// #     .mailer(mailer.clone())
/// #     .build()?;
/// let setup = tf.totp().start_setup("alice", "alice@example.com").await?;
/// assert!(setup.otpauth_uri().starts_with("otpauth://totp/"));
/// # Ok::<(), twofactor::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Totp<'a>(pub(crate) &'a TwoFactorService);

impl Totp<'_> {
    /// Starts (or restarts) a TOTP setup: a new secret, its otpauth URI and QR code, and a backup
    /// code set that becomes valid on confirmation. A second call replaces an unconfirmed setup.
    ///
    /// On an account that already has a factor (email), this needs a fresh one: see
    /// [`account().reauthenticate`](crate::service::Account::reauthenticate).
    ///
    /// # Errors
    /// [`Error::AlreadyEnrolled`] when TOTP is already confirmed; [`Error::ReauthRequired`];
    /// [`Error::InvalidInput`] for an unusable user id or account name; store errors.
    pub async fn start_setup(self, user: &str, account_name: &str) -> Result<TotpSetup, Error> {
        self.0.start_totp_setup(user, account_name).await
    }

    /// Confirms a TOTP setup with a code from the app, enabling TOTP and installing the backup
    /// codes shown at setup. The code's step is recorded, so it cannot be replayed at login.
    ///
    /// When the policy asks for SHA-256/512 or 8 digits, a 6-digit code is also compared with
    /// the SHA-1, 6-digit code of the secret, to catch an app that ignored the setting: that
    /// code is refused with [`Error::TotpAlgorithmUnsupported`], or, under
    /// [`Policy::totp_allow_sha1_fallback`](crate::Policy::totp_allow_sha1_fallback), enrols
    /// SHA-1 with 6 digits ([`Status::totp_algorithm`](crate::account::Status::totp_algorithm) shows
    /// it, every later check uses it, and [`Event::TotpSha1Fallback`](crate::events::Event::TotpSha1Fallback) records it). A code
    /// compared under both settings counts as two attempts against the user's lock.
    ///
    /// When the account has a factor by the time of confirmation, this needs a fresh one, as
    /// [`totp().start_setup`](crate::service::Totp::start_setup) does: a second-factor check
    /// passed within [`Policy::reauth_window`](crate::Policy::reauth_window) (see
    /// [`account().reauthenticate`](crate::service::Account::reauthenticate)). So a setup
    /// started while the account had no factor does not add one later on the strength of that
    /// start. Refused with [`Error::ReauthRequired`], the setup stays pending and may be
    /// confirmed after a reauthentication, within
    /// [`Policy::totp_setup_ttl`](crate::Policy::totp_setup_ttl).
    ///
    /// # Errors
    /// [`Error::NothingPending`] without a live setup; [`Error::ReauthRequired`];
    /// [`Error::InvalidCode`],
    /// [`Error::TotpAlgorithmUnsupported`], [`Error::CodeReused`],
    /// [`Error::Locked`], [`Error::MalformedCode`]; store errors (nothing is half-enabled).
    pub async fn confirm_setup(self, user: &str, code: &str) -> Result<(), Error> {
        self.0.confirm_totp_setup(user, code).await
    }

    /// Re-seals the user's TOTP secret (confirmed or pending) under the keyring's current
    /// sealing key, if an older key sealed it, and returns the id of the key that seals it now
    /// (`None` without a TOTP factor). Run it over every user after a rotation to retire the old
    /// key sooner than logins would (see [`Keyring`](crate::Keyring)'s rotation notes).
    ///
    /// # Errors
    /// [`Error::Crypto`] when the secret opens under no key of the ring; store errors.
    pub async fn reseal_secret(self, user: &str) -> Result<Option<String>, Error> {
        self.0.reseal_totp_secret(user).await
    }
}

/// Email codes outside a login: email as a factor, and address verification at registration.
///
/// Made by [`TwoFactorService::email`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let mailer = twofactor::testing::RecordingMailer::new();
/// # let tf = twofactor::TwoFactorService::builder()
/// #     .issuer("Acme")
/// #     .keys(twofactor::Keyring::generate())
/// #     .otp_store(twofactor::store::MemoryOtpStore::new())
/// #     .enrollments(twofactor::store::MemoryEnrollmentStore::new())
/// #     .mailer(mailer.clone())
/// #     .build()?;
/// tf.email().send_verification_code("alice", "alice@example.com").await?;
/// assert!(mailer.last_to("alice@example.com").is_some());
/// # Ok::<(), twofactor::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Email<'a>(pub(crate) &'a TwoFactorService);

impl Email<'_> {
    /// Mails a code to `address`; confirming it with [`email().confirm_setup`](crate::service::Email::confirm_setup)
    /// makes the proven address a second factor.
    ///
    /// On an account that already has a factor, this needs a fresh one: see
    /// [`account().reauthenticate`](crate::service::Account::reauthenticate).
    ///
    /// # Errors
    /// [`Error::AlreadyEnrolled`] when email 2FA is on; [`Error::ReauthRequired`];
    /// [`Error::InvalidInput`];
    /// [`Error::Cooldown`] / [`Error::RateLimited`]; delivery and store errors (no usable code left).
    pub async fn start_setup(self, user: &str, address: &str) -> Result<(), Error> {
        self.0.start_email_setup(user, address).await
    }

    /// Confirms the email setup code, enabling email as a factor. Returns the proven address.
    ///
    /// # Errors
    /// [`Error::NothingPending`], [`Error::InvalidCode`], [`Error::Expired`],
    /// [`Error::TooManyAttempts`], [`Error::Locked`], [`Error::MalformedCode`]; store errors.
    pub async fn confirm_setup(self, user: &str, code: &str) -> Result<String, Error> {
        self.0.confirm_email_setup(user, code).await
    }

    /// Mails a code that verifies `address` at registration (not a second factor by itself).
    ///
    /// # Errors
    /// As [`email().start_setup`](crate::service::Email::start_setup), without `AlreadyEnrolled`.
    pub async fn send_verification_code(self, user: &str, address: &str) -> Result<(), Error> {
        self.0.send_verification_code(user, address).await
    }

    /// Checks a registration code; returns the address it proves.
    ///
    /// It proves the address, not a second factor: it sets no last verification and opens no
    /// re-authentication window (an account with a factor still answers
    /// [`Error::ReauthRequired`] when adding one), and it neither ends nor feeds the run of
    /// failed codes that guards the factors. Its attempts are limited as codes are (per code,
    /// and per user with the same lock and escalation), on a count of their own.
    ///
    /// # Errors
    /// As [`email().confirm_setup`](crate::service::Email::confirm_setup).
    pub async fn verify_registration_code(self, user: &str, code: &str) -> Result<String, Error> {
        self.0.verify_registration_code(user, code).await
    }
}

/// A phone number as a factor (the text channel): setup and confirmation.
///
/// Made by [`TwoFactorService::sms`].
#[derive(Clone, Copy, Debug)]
pub struct Sms<'a>(pub(crate) &'a TwoFactorService);

impl Sms<'_> {
    /// Texts a code to `phone` (E.164; spaces and dashes are dropped); confirming it with
    /// [`sms().confirm_setup`](crate::service::Sms::confirm_setup) makes the proven number a second factor.
    ///
    /// **SMS is a restricted authenticator (NIST SP 800-63B §5.1.3.3)**: numbers are ported and
    /// SIM-swapped, texts intercepted. Offer it beside a TOTP app or a security key, which are
    /// stronger. The send counts against the same per-user budget, cooldown and resend rules as
    /// email codes.
    ///
    /// On an account that already has a factor, this needs a fresh one: see
    /// [`account().reauthenticate`](crate::service::Account::reauthenticate).
    ///
    /// # Errors
    /// [`Error::InvalidPhone`] for a number not in E.164 form; [`Error::InvalidConfig`] without a
    /// [`text_sender`](crate::service::ServiceBuilder::text_sender); [`Error::AlreadyEnrolled`] when a
    /// phone factor is on; [`Error::ReauthRequired`]; [`Error::Cooldown`] /
    /// [`Error::RateLimited`]; delivery and store errors (no usable code left).
    pub async fn start_setup(self, user: &str, phone: &str) -> Result<(), Error> {
        self.0.start_sms_setup(user, phone).await
    }

    /// Confirms the code texted by [`sms().start_setup`](crate::service::Sms::start_setup), enabling the
    /// phone as a factor ([`Method::Sms`]). Returns the proven number.
    ///
    /// # Errors
    /// As [`email().confirm_setup`](crate::service::Email::confirm_setup).
    pub async fn confirm_setup(self, user: &str, code: &str) -> Result<PhoneNumber, Error> {
        self.0.confirm_sms_setup(user, code).await
    }
}

/// The account as a whole: status, re-authentication, step-up codes, turning 2FA off.
///
/// Made by [`TwoFactorService::account`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let mailer = twofactor::testing::RecordingMailer::new();
/// # let tf = twofactor::TwoFactorService::builder()
/// #     .issuer("Acme")
/// #     .keys(twofactor::Keyring::generate())
/// #     .otp_store(twofactor::store::MemoryOtpStore::new())
/// #     .enrollments(twofactor::store::MemoryEnrollmentStore::new())
/// #     .mailer(mailer.clone())
/// #     .build()?;
/// let status = tf.account().status("alice").await?;
/// assert!(!status.enabled);
/// # Ok::<(), twofactor::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Account<'a>(pub(crate) &'a TwoFactorService);

impl Account<'_> {
    /// Mails a code to the user's email factor (or, without one, texts it to their phone
    /// factor) that confirms `action`, to answer
    /// [`disable`](crate::service::Account::disable), [`backup_codes().regenerate`](crate::service::BackupCodes::regenerate) or
    /// [`account().reauthenticate`](crate::service::Account::reauthenticate) when they have no app at hand. The message names
    /// the change it confirms.
    ///
    /// The code confirms that change and no other: [`disable`](crate::service::Account::disable)
    /// (and [`security_keys().remove`](crate::service::SecurityKeys::remove), a smaller change
    /// of the same kind) takes a code sent for [`SecurityAction::DisableTwoFactor`],
    /// [`backup_codes().regenerate`](crate::service::BackupCodes::regenerate) one sent for
    /// [`SecurityAction::RegenerateBackupCodes`]; a code sent for another change is refused as
    /// a wrong code, and counted like one. [`account().reauthenticate`](crate::service::Account::reauthenticate),
    /// which changes nothing by itself, takes a code sent for any change; send
    /// [`SecurityAction::AddFactor`] before adding a factor. One step-up code is pending at a
    /// time: a new one, for any change, replaces it.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] without an email or phone factor; cooldown, cap, delivery and
    /// store errors.
    pub async fn send_step_up_code(self, user: &str, action: SecurityAction) -> Result<(), Error> {
        self.0.send_step_up_code(user, action).await
    }

    /// Confirms a fresh second factor (a TOTP code, a step-up email code or a backup code) before
    /// a change to the user's factors. For [`Policy::reauth_window`] afterwards, the user may add
    /// a factor ([`totp().start_setup`](crate::service::Totp::start_setup),
    /// [`email().start_setup`](crate::service::Email::start_setup)); without it, an account that has a factor
    /// answers those with [`Error::ReauthRequired`], so that a session alone cannot add a factor
    /// of its own.
    ///
    /// The attempt counts against the user's limits like any code check.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use twofactor::{*, account::DeviceTrust, events::Event, mail::MailContent, testing::ManualClock, store::MemoryEnrollmentStore, store::MemoryOtpStore, service::PasswordVerifier, text::PhoneNumber, testing::RecordingMailer, account::RecoveryProgress, mail::SecurityAction, security_key::SecurityKeyInfo, security_key::SecurityKeyOptions, security_key::SecurityKeyPolicy, service::ServiceBuilder, account::Status, text::TextContent, clock::Timestamp, totp::TotpParams, totp::TotpSecret, totp::TotpSetup, account::TrustedDevice, totp::otpauth_uri, totp::totp_code};
    /// let mailer = RecordingMailer::new();
    /// let clock = ManualClock::new(Timestamp::from_unix_secs(1_700_000_000));
    /// let tf = TwoFactorService::builder()
    ///     .issuer("Acme")
    ///     .keys(Keyring::generate())
    ///     .otp_store(MemoryOtpStore::new())
    ///     .enrollments(MemoryEnrollmentStore::new())
    ///     .mailer(mailer.clone())
    ///     .clock(clock.clone())
    ///     .build()?;
    /// let setup = tf.totp().start_setup("alice", "alice@example.com").await?;
    /// let secret = TotpSecret::from_base32(setup.secret_base32())?;
    /// let code = |t: u64| totp_code(secret.as_bytes(), TotpParams::default(), t);
    /// tf.totp().confirm_setup("alice", &code(1_700_000_000)).await?;
    ///
    /// // An hour later, a session alone may not add a factor.
    /// clock.advance(std::time::Duration::from_secs(3600));
    /// let later = 1_700_003_600;
    /// assert!(matches!(
    ///     tf.email().start_setup("alice", "alice@example.com").await,
    ///     Err(Error::ReauthRequired)
    /// ));
    /// // A current code opens the window.
    /// tf.account().reauthenticate("alice", &code(later)).await?;
    /// tf.email().start_setup("alice", "alice@example.com").await?;
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] without a factor; [`Error::InvalidCode`], [`Error::CodeReused`],
    /// [`Error::Locked`], [`Error::MalformedCode`]; store errors.
    ///
    /// [`Policy::reauth_window`]: crate::Policy::reauth_window
    pub async fn reauthenticate(self, user: &str, code: &str) -> Result<Method, Error> {
        self.0.reauthenticate(user, code).await
    }

    /// Turns two-factor authentication off: needs the password (checked by the host's
    /// [`PasswordVerifier`]) and a current TOTP code, step-up email code or backup code. Removes
    /// every factor and backup code, and notifies the email factor if there was one.
    ///
    /// # Errors
    /// [`Error::InvalidPassword`], [`Error::NotEnrolled`], [`Error::InvalidCode`],
    /// [`Error::Locked`], …; [`Error::PasswordCheck`] when the verifier could not check (the
    /// attempt stays counted, nothing is changed); [`Error::InvalidConfig`] when no password
    /// verifier is configured.
    ///
    /// [`PasswordVerifier`]: crate::service::PasswordVerifier
    pub async fn disable(self, user: &str, password: &str, code: &str) -> Result<(), Error> {
        self.0.disable(user, password, code).await
    }

    /// The user's two-factor state.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn status(self, user: &str) -> Result<Status, Error> {
        self.0.status(user).await
    }
}

/// Backup codes: a new set, voiding the old one.
///
/// Made by [`TwoFactorService::backup_codes`].
#[derive(Clone, Copy, Debug)]
pub struct BackupCodes<'a>(pub(crate) &'a TwoFactorService);

impl BackupCodes<'_> {
    /// Replaces the backup codes with a new set, after a fresh factor (TOTP, step-up email code,
    /// or one of the current backup codes). Every old code stops working.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`], [`Error::InvalidCode`], [`Error::Locked`], …; store errors.
    pub async fn regenerate(self, user: &str, code: &str) -> Result<Vec<Secret>, Error> {
        self.0.regenerate_backup_codes(user, code).await
    }
}

/// Trusted devices ("remember this device"): trust after a pass, list, revoke.
///
/// Made by [`TwoFactorService::devices`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// # let mailer = twofactor::testing::RecordingMailer::new();
/// # let tf = twofactor::TwoFactorService::builder()
/// #     .issuer("Acme")
/// #     .keys(twofactor::Keyring::generate())
/// #     .otp_store(twofactor::store::MemoryOtpStore::new())
/// #     .enrollments(twofactor::store::MemoryEnrollmentStore::new())
/// #     .mailer(mailer.clone())
/// #     .build()?;
/// assert!(tf.devices().list("alice").await?.is_empty());
/// # Ok::<(), twofactor::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Devices<'a>(pub(crate) &'a TwoFactorService);

impl Devices<'_> {
    /// Trusts the browser a user just passed the second factor in: returns a device token that
    /// lets [`begin_login`](crate::LoginContext::device) complete later logins of
    /// that user without a code, for `ttl` (default and cap:
    /// [`Policy::trusted_device_ttl`](crate::Policy::trusted_device_ttl), 30 days).
    ///
    /// It takes the [`Verified`] of that check, which only this crate makes: it must name a
    /// second factor (a code, a backup code or, feature `webauthn`, a security key; not a login
    /// without a factor, nor a device login, so a device cannot extend its own trust) and be at
    /// most [`Policy::reauth_window`](crate::Policy::reauth_window) old.
    /// The user's email factor, if any, is told that a device was trusted.
    ///
    /// # Errors
    /// [`Error::ReauthRequired`] for a `Verified` that is stale or names no factor;
    /// [`Error::NotEnrolled`] when the user no longer has a factor; [`Error::InvalidInput`] for
    /// an empty or over-long label, or one with control characters; store errors.
    pub async fn trust(
        &self,
        verified: &Verified,
        label: &str,
        ttl: Option<Duration>,
    ) -> Result<DeviceTrust, Error> {
        self.0.trust_device(verified, label, ttl).await
    }

    /// The user's live trusted devices, oldest first.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn list(self, user: &str) -> Result<Vec<TrustedDevice>, Error> {
        self.0.trusted_devices(user).await
    }

    /// Revokes one trusted device by its [`id`](TrustedDevice::id); `false` when the user has
    /// no such device.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn revoke(self, user: &str, id: &str) -> Result<bool, Error> {
        self.0.revoke_device(user, id).await
    }

    /// Revokes every trusted device of the user and returns how many there were. Call it when
    /// the user changes or resets their password. A backup-code regeneration does the same, and
    /// [`disable`](crate::service::Account::disable) drops them with the enrolment.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn revoke_all(self, user: &str) -> Result<u32, Error> {
        self.0.revoke_devices(user).await
    }
}

/// Delayed account recovery: request with the password, cancel, and the deadline's processing.
///
/// Made by [`TwoFactorService::recovery`].
#[derive(Clone, Copy, Debug)]
pub struct Recovery<'a>(pub(crate) &'a TwoFactorService);

impl Recovery<'_> {
    /// Schedules turning two-factor authentication off for a user who lost every factor, after
    /// [`Policy::recovery_delay`](crate::Policy::recovery_delay), and returns when it takes
    /// effect. Needs the password (the host's [`PasswordVerifier`](crate::service::PasswordVerifier)).
    ///
    /// The call needs no session, so it tells nothing to whoever lacks the password: the
    /// password is checked first, once, whether or not the account has a factor, and a wrong
    /// one is [`Error::InvalidPassword`] either way. Only with the right password does an account
    /// without a factor answer [`Error::NotEnrolled`] (its holder would see as much by signing
    /// in). The checks are limited as at [`disable`](crate::service::Account::disable) (10 per
    /// 24 hours by default, ended only by a correct password), but on a count of their own: a
    /// stranger's guesses here never lock the owner's password at `disable`, and a correct
    /// password at one does not reset the other.
    ///
    /// The user's email factor is told at once ([`MailContent::RecoveryRequested`](crate::mail::MailContent::RecoveryRequested)), and their
    /// phone factor by text ([`TextContent::RecoveryRequested`](crate::text::TextContent::RecoveryRequested), with a text sender); the host
    /// should also tell the account's own address, from [`Event::RecoveryRequested`](crate::events::Event::RecoveryRequested). While one
    /// is pending, a new request changes nothing and returns the same time.
    ///
    /// # Errors
    /// [`Error::InvalidPassword`]; [`Error::Locked`] past the password limit (then the password
    /// is not checked); [`Error::NotEnrolled`], with the right password, without a factor;
    /// [`Error::PasswordCheck`]; [`Error::InvalidConfig`] without a password verifier; store
    /// errors.
    pub async fn request(self, user: &str, password: &str) -> Result<Timestamp, Error> {
        self.0.request_recovery(user, password).await
    }

    /// Cancels a pending recovery; `false` when none was pending. A passed second-factor check
    /// cancels it too.
    ///
    /// **A privileged call: it takes no proof.** Whoever can make the host call it for a user
    /// can keep that user's recovery from ever completing, so expose it only behind a check of
    /// the host's own: a session that has just passed a second factor (the login that cancels
    /// the recovery anyway), or an operator's tool. Never on the strength of the password alone,
    /// which is what the recovery exists to outlast.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn cancel(self, user: &str) -> Result<bool, Error> {
        self.0.cancel_recovery(user).await
    }

    /// Moves the user's recovery on: when it is due, turns two-factor authentication off (as
    /// [`disable`](crate::service::Account::disable) does, telling the email factor); when it takes effect within
    /// [`Policy::recovery_reminder`](crate::Policy::recovery_reminder), sends the reminder once.
    /// Run it periodically for each user with a pending recovery.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn process(self, user: &str) -> Result<RecoveryProgress, Error> {
        self.0.process_recovery(user).await
    }
}

#[cfg(feature = "webauthn")]
/// Security keys and passkeys (WebAuthn, feature `webauthn`): registration, listing, renaming, removal, step-up.
///
/// Made by [`TwoFactorService::security_keys`].
#[derive(Clone, Copy, Debug)]
pub struct SecurityKeys<'a>(pub(crate) &'a TwoFactorService);

#[cfg(feature = "webauthn")]
impl SecurityKeys<'_> {
    /// Starts registering a security key or passkey for `user`: the options for
    /// `navigator.credentials.create`. The user's keys already registered are excluded (the
    /// browser refuses to register one twice). Finish with
    /// [`security_keys().finish_registration`](crate::service::SecurityKeys::finish_registration) within
    /// [`SecurityKeyPolicy::ceremony_ttl`](crate::security_key::SecurityKeyPolicy::ceremony_ttl); a new start replaces an unfinished one.
    ///
    /// On an account that already has a factor this needs a fresh one, as adding any factor
    /// does (see [`account().reauthenticate`](crate::service::Account::reauthenticate)).
    ///
    /// # Errors
    /// [`Error::ReauthRequired`]; [`Error::FallbackFactorRequired`] when the policy does not let
    /// a key stand alone and the user has no code factor; [`Error::InvalidInput`] for an
    /// unusable `display_name` or when the user has [`SecurityKeyPolicy::max_keys`](crate::security_key::SecurityKeyPolicy::max_keys) keys;
    /// [`Error::InvalidConfig`] without [`Policy::security_keys`](crate::Policy); store errors.
    pub async fn start_registration(
        self,
        user: &str,
        display_name: &str,
    ) -> Result<SecurityKeyOptions, Error> {
        self.0
            .start_security_key_registration(user, display_name)
            .await
    }

    /// Finishes a registration with the browser's response to `navigator.credentials.create`
    /// (the `PublicKeyCredential` as JSON, base64url fields) and stores the key under `label`.
    /// The ceremony is single use: it is taken before the response is checked, so a failed
    /// finish needs a new start.
    ///
    /// The user's email factor is told; the event is [`Event::FactorEnabled`](crate::events::Event::FactorEnabled) with
    /// [`Method::SecurityKey`].
    ///
    /// # Errors
    /// [`Error::NothingPending`] without a live registration; [`Error::SecurityKeyRejected`]
    /// for a response that fails verification (another origin, another ceremony, malformed);
    /// [`Error::AlreadyEnrolled`] for a key the user already has; [`Error::InvalidInput`] for
    /// an unusable label or past [`SecurityKeyPolicy::max_keys`](crate::security_key::SecurityKeyPolicy::max_keys);
    /// [`Error::FallbackFactorRequired`]; store errors.
    pub async fn finish_registration(
        &self,
        user: &str,
        response_json: &str,
        label: &str,
    ) -> Result<SecurityKeyInfo, Error> {
        self.0
            .finish_security_key_registration(user, response_json, label)
            .await
    }

    /// The user's security keys, oldest first.
    ///
    /// # Errors
    /// Store errors; [`Error::InvalidInput`] for an unusable user id.
    pub async fn list(self, user: &str) -> Result<Vec<SecurityKeyInfo>, Error> {
        self.0.list_security_keys(user).await
    }

    /// Renames one of the user's keys: the renamed key, or `None` when the user has no such key.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unusable label; store errors.
    pub async fn rename(
        &self,
        user: &str,
        id: &str,
        label: &str,
    ) -> Result<Option<SecurityKeyInfo>, Error> {
        self.0.rename_security_key(user, id, label).await
    }

    /// Removes one of the user's keys. The same rules as [`disable`](crate::service::Account::disable): the
    /// password (checked by the host's [`PasswordVerifier`](crate::service::PasswordVerifier)) and a
    /// fresh factor (a code, or an assertion of any of the user's keys, this one included; see
    /// [`security_keys().start_step_up`](crate::service::SecurityKeys::start_step_up)). When it was the
    /// user's last factor, two-factor authentication is turned off, as `disable` does (backup
    /// codes and trusted devices go too).
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] when the user has no such key; then as [`disable`](crate::service::Account::disable).
    pub async fn remove(
        &self,
        user: &str,
        id: &str,
        password: &str,
        code: &str,
    ) -> Result<(), Error> {
        self.0.remove_security_key(user, id, password, code).await
    }

    /// Starts a step-up with a security key: the options for `navigator.credentials.get`. The
    /// browser's assertion then goes where a code would: [`account().reauthenticate`](crate::service::Account::reauthenticate),
    /// [`disable`](crate::service::Account::disable), [`backup_codes().regenerate`](crate::service::BackupCodes::regenerate),
    /// [`security_keys().remove`](crate::service::SecurityKeys::remove). It is good for one attempt within
    /// [`SecurityKeyPolicy::ceremony_ttl`](crate::security_key::SecurityKeyPolicy::ceremony_ttl); a new start replaces it.
    ///
    /// # Errors
    /// [`Error::NotEnrolled`] when the user has no key; [`Error::InvalidConfig`]; store errors.
    pub async fn start_step_up(self, user: &str) -> Result<SecurityKeyOptions, Error> {
        self.0.start_security_key_step_up(user).await
    }
}

impl TwoFactorService {
    /// TOTP authenticator apps: setup, confirmation, re-sealing after a key rotation.
    pub fn totp(&self) -> Totp<'_> {
        Totp(self)
    }

    /// Email codes outside a login: email as a factor, and address verification at registration.
    pub fn email(&self) -> Email<'_> {
        Email(self)
    }

    /// A phone number as a factor (the text channel): setup and confirmation.
    pub fn sms(&self) -> Sms<'_> {
        Sms(self)
    }

    /// The account as a whole: status, re-authentication, step-up codes, turning 2FA off.
    pub fn account(&self) -> Account<'_> {
        Account(self)
    }

    /// Backup codes: a new set, voiding the old one.
    pub fn backup_codes(&self) -> BackupCodes<'_> {
        BackupCodes(self)
    }

    /// Trusted devices ("remember this device"): trust after a pass, list, revoke.
    pub fn devices(&self) -> Devices<'_> {
        Devices(self)
    }

    /// Delayed account recovery: request with the password, cancel, and the deadline's processing.
    pub fn recovery(&self) -> Recovery<'_> {
        Recovery(self)
    }

    /// Security keys and passkeys (WebAuthn, feature `webauthn`): registration, listing, renaming, removal, step-up.
    #[cfg(feature = "webauthn")]
    pub fn security_keys(&self) -> SecurityKeys<'_> {
        SecurityKeys(self)
    }
}
