//! [`Policy`]: every number of the flows, with where its default comes from.
//!
//! ```
//! use std::time::Duration;
//! use twofactor::Policy;
//!
//! let mut policy = Policy::default();
//! policy.email_code_ttl = Duration::from_secs(120);
//! assert!(policy.validate().is_ok());
//! policy.email_code_ttl = Duration::from_secs(3600); // over the 10-minute cap
//! assert!(policy.validate().is_err());
//! ```

use std::time::Duration;

use crate::error::Error;
use crate::rate_limit::limit::Limit;
use crate::totp::TotpAlgorithm;

/// How backup codes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BackupCodeHashing {
    /// Keyed HMAC-SHA256 with the keyring's MAC key: a check is one hash and one lookup. A 60-bit
    /// code under a key that is not in the store cannot be brute-forced from a leaked store.
    #[default]
    Hmac,
    /// Argon2id per code (PHC string), found through a short keyed-hash prefix so that one guess
    /// costs one argon2 run. For deployments that want defence even if the MAC key leaks.
    Argon2id,
}

/// Every number of the flows. Construct with [`Policy::default`] and change fields;
/// [`Policy::validate`] (run by the service builder) refuses unsafe values.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Digits of an email code. Default 6 (ASVS 6.5.4 / 2.7.4: at least 20 bits; seeds 000, 001, 004).
    /// Allowed 6..=10.
    pub email_code_digits: u32,
    /// How long an email code lives. Default 300 s (seed 000; ASVS 2.7.2 caps out-of-band codes at
    /// 10 minutes, and so does [`Policy::validate`]).
    pub email_code_ttl: Duration,
    /// Wait between two sends to one user. Default 60 s (seeds 001, 004).
    pub resend_cooldown: Duration,
    /// Sends allowed per user per [`Policy::send_window`]. Default 5.
    pub max_sends: u32,
    /// The window of [`Policy::max_sends`]. Default 15 minutes.
    pub send_window: Duration,
    /// How long a login challenge lives. Default 5 minutes (seed 002's short-lived challenge;
    /// NIST SP 800-63B §5.1.3.2 and ASVS 2.7.2 cap it at 10 minutes).
    pub challenge_ttl: Duration,
    /// Code attempts per challenge, across all its methods, after which it is void. Default 5
    /// (seeds 001, 002; RFC 4226 §7.3 throttling).
    pub challenge_max_attempts: u32,
    /// Attempts per pending setup or verification code. Default 5.
    pub code_max_attempts: u32,
    /// Consecutive failures per user, across challenges, that trigger a lock. Default 10.
    pub lockout_threshold: u32,
    /// The first lock's length; each further lock doubles it. Default 15 minutes (seed 001).
    pub lockout_base: Duration,
    /// The longest lock. Default 24 hours. With the defaults, at most 70 consecutive failures are
    /// ever evaluated in a day (NIST SP 800-63B §5.2.2 asks for at most 100).
    pub lockout_max: Duration,
    /// How long consecutive failures are remembered. Default 24 hours.
    pub failure_window: Duration,
    /// How long the user's short-lived record (the last verification time that status shows, the
    /// last TOTP step, the lock) is kept after the user's last code check. Default 400 days, so
    /// that status keeps the last verification of anyone who signs in at least yearly. A value
    /// below `failure_window` counts as `failure_window`.
    pub user_record_ttl: Duration,
    /// TOTP algorithm. Default SHA-1 (RFC 6238; what every authenticator app honours).
    pub totp_algorithm: TotpAlgorithm,
    /// TOTP digits: 6 (default) or 8.
    pub totp_digits: u32,
    /// What [`totp().confirm_setup`](crate::service::Totp::confirm_setup) does when the
    /// policy asks for SHA-256/512 or 8 digits and the confirmation code is instead the SHA-1,
    /// 6-digit code of the same secret (an app that ignored `algorithm=` and `digits=`, such as
    /// Google Authenticator on Android). `false` (default): refuse with
    /// [`Error::TotpAlgorithmUnsupported`](crate::Error::TotpAlgorithmUnsupported), so the
    /// user picks another app. `true`: enrol with SHA-1 and 6 digits, which
    /// [`Status::totp_algorithm`](crate::account::Status::totp_algorithm) then shows and every later
    /// check uses (RFC 6238's default, which every app honours).
    ///
    /// Either way, a confirmation code compared against both settings counts as two attempts
    /// against the user's lock, so the check never evaluates more candidates per counted
    /// attempt than a confirmation without it.
    pub totp_allow_sha1_fallback: bool,
    /// TOTP step. Default 30 s (RFC 6238 §5.2).
    pub totp_period: Duration,
    /// Steps accepted either side of now. Default 1, the maximum (RFC 6238 §5.2).
    pub totp_skew: u32,
    /// TOTP secret length in bytes. Default 20 = 160 bits (RFC 4226 R6); under 16 refused.
    pub totp_secret_bytes: usize,
    /// How recent a passed second-factor check must be to add a factor without a new code
    /// (`totp().start_setup` and `email().start_setup` on an account with a factor). Default 5
    /// minutes (ASVS 5.0 6.4.4: changes to factors need re-authentication); 1 s to 1 hour.
    pub reauth_window: Duration,
    /// How long an unconfirmed TOTP setup stays pending. Default 15 minutes; 1 s to
    /// [`Policy::MAX_TOTP_SETUP_TTL`] (1 hour): a setup is meant to be confirmed while the user
    /// is at the screen that shows it, and one left pending for days would outlive the
    /// circumstances it was started in (its confirmation needs a fresh factor anyway once the
    /// account has one, see [`totp().confirm_setup`](crate::service::Totp::confirm_setup)).
    pub totp_setup_ttl: Duration,
    /// How long a trusted device signs in without a code
    /// ([`devices().trust`](crate::service::Devices::trust)): the default lifetime and the
    /// cap on the one a host asks for. Default 30 days (the design's figure: a code once a month on
    /// a trusted browser); 1 s to 365 days. A trusted device signs in with the password alone,
    /// so keep it short where the password is the weaker link.
    pub trusted_device_ttl: Duration,
    /// Trusted devices kept per user; trusting one more forgets the least recently used.
    /// Default 10; 1 to 50.
    pub max_trusted_devices: u32,
    /// How long after [`recovery().request`](crate::service::Recovery::request) two-factor
    /// authentication is turned off, unless a second-factor check or a cancellation comes
    /// first. Default 72 hours (the design's figure: long enough for the real user, told at
    /// once, to react); 1 hour to 30 days.
    pub recovery_delay: Duration,
    /// How long before a recovery takes effect the reminder goes out
    /// ([`recovery().process`](crate::service::Recovery::process)). Default 24 hours;
    /// positive and shorter than `recovery_delay`.
    pub recovery_reminder: Duration,
    /// Backup codes per set. Default 10 (seed 002).
    pub backup_code_count: u32,
    /// How backup codes are stored. Default keyed HMAC.
    pub backup_code_hashing: BackupCodeHashing,
    /// Login steps per client ([`LoginContext::client`](crate::LoginContext::client)) across
    /// every account, counted by [`TwoFactorService::begin_login`](crate::TwoFactorService::begin_login) and
    /// [`TwoFactorService::verify_login`](crate::TwoFactorService::verify_login).
    /// Default 60 in any 15 minutes, sliding (seed 001 limits per IP; an honest login is two
    /// steps, so a shared address still fits 30 logins). Must allow at least one step in a
    /// window of 1 s to 1 day.
    ///
    /// [`TwoFactorService::begin_login`]: crate::TwoFactorService::begin_login
    pub client_login_limit: Limit,
    /// Security keys and passkeys (WebAuthn): the relying party and its rules. `None` (the
    /// default) offers no security key; see [`SecurityKeyPolicy`](crate::security_key::SecurityKeyPolicy).
    #[cfg(feature = "webauthn")]
    pub security_keys: Option<crate::security_key::types::SecurityKeyPolicy>,
    /// Set only by [`Policy::dangerous_allow_over_100_failures_per_day`].
    allow_over_100_failures_per_day: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            email_code_digits: 6,
            email_code_ttl: Duration::from_secs(300),
            resend_cooldown: Duration::from_secs(60),
            max_sends: 5,
            send_window: Duration::from_secs(15 * 60),
            challenge_ttl: Duration::from_secs(300),
            challenge_max_attempts: 5,
            code_max_attempts: 5,
            lockout_threshold: 10,
            lockout_base: Duration::from_secs(15 * 60),
            lockout_max: Duration::from_secs(24 * 3600),
            failure_window: Duration::from_secs(24 * 3600),
            user_record_ttl: Duration::from_secs(400 * 24 * 3600),
            totp_algorithm: TotpAlgorithm::Sha1,
            totp_digits: 6,
            totp_allow_sha1_fallback: false,
            totp_period: Duration::from_secs(30),
            totp_skew: 1,
            totp_secret_bytes: 20,
            reauth_window: Duration::from_secs(300),
            totp_setup_ttl: Duration::from_secs(15 * 60),
            trusted_device_ttl: Duration::from_secs(30 * 24 * 3600),
            max_trusted_devices: 10,
            recovery_delay: Duration::from_secs(72 * 3600),
            recovery_reminder: Duration::from_secs(24 * 3600),
            backup_code_count: 10,
            backup_code_hashing: BackupCodeHashing::Hmac,
            client_login_limit: Limit::sliding(60, Duration::from_secs(15 * 60)),
            #[cfg(feature = "webauthn")]
            security_keys: None,
            allow_over_100_failures_per_day: false,
        }
    }
}

use crate::code::MAX_CODE_TTL;

const MAX_FAILURES_PER_DAY: u64 = 100;

const DAY_SECS: u64 = 86_400;

impl Policy {
    /// The cap on code and challenge lifetimes (ASVS 2.7.2, NIST SP 800-63B §5.1.3.2): 10 minutes.
    pub const MAX_CODE_TTL: Duration = MAX_CODE_TTL;

    /// The most consecutive failed code checks a policy may let an attacker have evaluated per user in
    /// any 24 hours (NIST SP 800-63B §5.2.2), unless the host opts out with
    /// [`Policy::dangerous_allow_over_100_failures_per_day`].
    pub const MAX_FAILURES_PER_DAY: u64 = MAX_FAILURES_PER_DAY;

    /// The longest [`Policy::totp_setup_ttl`] that [`Policy::validate`] accepts: 1 hour.
    pub const MAX_TOTP_SETUP_TTL: Duration = Duration::from_secs(3600);

    /// Checks every value against its safe range.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first field out of range.
    pub fn validate(&self) -> Result<(), Error> {
        fn bad(what: &str) -> Result<(), Error> {
            Err(Error::InvalidConfig(what.to_owned()))
        }
        if !(6..=10).contains(&self.email_code_digits) {
            return bad("email_code_digits must be 6 to 10");
        }
        #[cfg(feature = "webauthn")]
        if let Some(keys) = &self.security_keys {
            keys.validate()?;
        }
        if self.email_code_ttl.as_secs() == 0 || self.email_code_ttl > MAX_CODE_TTL {
            return bad("email_code_ttl must be 1 s to 10 min");
        }
        if self.challenge_ttl.as_secs() == 0 || self.challenge_ttl > MAX_CODE_TTL {
            return bad("challenge_ttl must be 1 s to 10 min");
        }
        if self.challenge_max_attempts == 0 || self.challenge_max_attempts > 10 {
            return bad("challenge_max_attempts must be 1 to 10");
        }
        if self.code_max_attempts == 0 || self.code_max_attempts > 10 {
            return bad("code_max_attempts must be 1 to 10");
        }
        if self.max_sends == 0 || self.send_window.as_secs() == 0 {
            return bad("max_sends and send_window must be positive");
        }
        if self.lockout_threshold == 0 || self.lockout_threshold > 100 {
            return bad("lockout_threshold must be 1 to 100");
        }
        if self.lockout_base.as_secs() == 0 || self.lockout_max < self.lockout_base {
            return bad("lockout_base must be positive and at most lockout_max");
        }
        if self.failure_window.as_secs() == 0 {
            return bad("failure_window must be positive");
        }
        let worst = self.worst_case_failures_per_day();
        if worst > MAX_FAILURES_PER_DAY && !self.allow_over_100_failures_per_day {
            return Err(Error::InvalidConfig(format!(
                "this lockout policy lets {worst} failed codes per user be evaluated in 24 hours; \
                 NIST SP 800-63B allows at most {MAX_FAILURES_PER_DAY} (raise lockout_base or \
                 failure_window, or lower lockout_threshold)"
            )));
        }
        if !matches!(self.totp_digits, 6 | 8) {
            return bad("totp_digits must be 6 or 8");
        }
        if !(15..=120).contains(&self.totp_period.as_secs()) {
            return bad("totp_period must be 15 s to 120 s");
        }
        if self.totp_skew > 1 {
            return bad("totp_skew must be 0 or 1 (RFC 6238 §5.2)");
        }
        if !(16..=64).contains(&self.totp_secret_bytes) {
            return bad("totp_secret_bytes must be 16 to 64 (at least 128 bits)");
        }
        if !(1..=3600).contains(&self.reauth_window.as_secs()) {
            return bad("reauth_window must be 1 s to 1 hour");
        }
        if self.totp_setup_ttl.as_secs() == 0 || self.totp_setup_ttl > Self::MAX_TOTP_SETUP_TTL {
            return bad("totp_setup_ttl must be 1 s to 1 hour");
        }
        if !(1..=365 * DAY_SECS).contains(&self.trusted_device_ttl.as_secs()) {
            return bad("trusted_device_ttl must be 1 s to 365 days");
        }
        if !(1..=50).contains(&self.max_trusted_devices) {
            return bad("max_trusted_devices must be 1 to 50");
        }
        if !(3600..=30 * DAY_SECS).contains(&self.recovery_delay.as_secs()) {
            return bad("recovery_delay must be 1 hour to 30 days");
        }
        if self.recovery_reminder.as_secs() == 0 || self.recovery_reminder >= self.recovery_delay {
            return bad("recovery_reminder must be positive and shorter than recovery_delay");
        }
        if !(1..=32).contains(&self.backup_code_count) {
            return bad("backup_code_count must be 1 to 32");
        }
        if self.client_login_limit.validate().is_err() {
            return bad("client_login_limit must allow at least 1 step in 1 s to 1 day");
        }
        Ok(())
    }

    /// The most failed code checks an attacker holding the password can have evaluated for one
    /// user in 24 hours under this policy (saturating above 10,000).
    ///
    /// Computed over every strategy the lock allows: a run of `lockout_threshold` failures locks
    /// for [`lock_duration`](Self::lock_duration) of the level reached; the next run may start as
    /// the lock lifts (one level up), or after waiting `failure_window` more for the level to
    /// lapse (back to level 0); and a run stopped one short of the threshold is forgotten
    /// `failure_window` after its first failure, without a lock. [`validate`](Self::validate)
    /// refuses a policy whose figure passes [`Policy::MAX_FAILURES_PER_DAY`].
    ///
    /// ```
    /// use twofactor::Policy;
    /// // 10 failures, then 15 min, 30 min, 1 h, … of lock (capped at 24 h): 70 in a day.
    /// assert_eq!(Policy::default().worst_case_failures_per_day(), 70);
    /// ```
    pub fn worst_case_failures_per_day(&self) -> u64 {
        const CAP: u64 = 10_000;
        const LEVELS: usize = 65;
        let threshold = u64::from(self.lockout_threshold.max(1));
        let window = self.failure_window.as_secs().max(1);
        let lock = |level: usize| {
            self.lock_duration(u32::try_from(level).unwrap_or(u32::MAX))
                .as_secs()
                .max(1)
        };
        // earliest[f][level]: the earliest second at which `f` failures have been evaluated and
        // the user stands unlocked at `level`. A state reached before the day ends may still
        // spend a whole run (or a run one short of the threshold) at once.
        let width = usize::try_from(CAP + threshold).unwrap_or(usize::MAX);
        let mut earliest = vec![[u64::MAX; LEVELS]; width + 1];
        if let Some(row) = earliest.get_mut(0) {
            row[0] = 0;
        }
        let mut best = 0u64;
        for f in 0..=width {
            for level in 0..LEVELS {
                let t = earliest
                    .get(f)
                    .and_then(|row| row.get(level).copied())
                    .unwrap_or(u64::MAX);
                if t >= DAY_SECS {
                    continue;
                }
                let done = u64::try_from(f).unwrap_or(u64::MAX);
                best = best.max(done + threshold);
                let after_run = usize::try_from(done + threshold).unwrap_or(usize::MAX);
                let lifted = t.saturating_add(lock(level));
                let mut reach = |f: usize, level: usize, at: u64| {
                    if let Some(slot) = earliest.get_mut(f).and_then(|row| row.get_mut(level)) {
                        *slot = (*slot).min(at);
                    }
                };
                reach(after_run, (level + 1).min(LEVELS - 1), lifted);
                reach(after_run, 0, lifted.saturating_add(window));
                if threshold > 1 {
                    let short = usize::try_from(done + threshold - 1).unwrap_or(usize::MAX);
                    reach(short, level, t.saturating_add(window));
                }
            }
            if best >= CAP {
                return CAP;
            }
        }
        best.min(CAP)
    }

    /// Accepts a lockout policy that lets more than [`Policy::MAX_FAILURES_PER_DAY`] failed codes per
    /// user be evaluated in 24 hours.
    ///
    /// **WARNING:** above that figure a 6-digit code falls to online guessing far sooner than
    /// NIST SP 800-63B §5.2.2 allows. Meant for tests and for deployments with a limit of their
    /// own in front.
    pub fn dangerous_allow_over_100_failures_per_day(mut self) -> Self {
        self.allow_over_100_failures_per_day = true;
        self
    }

    /// The length of the lock that starts at the `level`-th lock (0-based): `lockout_base`
    /// doubled `level` times, capped at `lockout_max`. Saturates for any input.
    pub fn lock_duration(&self, level: u32) -> Duration {
        let factor = 1u64.checked_shl(level.min(63)).unwrap_or(u64::MAX);
        let secs = self.lockout_base.as_secs().saturating_mul(factor);
        Duration::from_secs(secs).min(self.lockout_max)
    }
}
