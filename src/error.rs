//! Errors: one enum a host can act on, each variant with a stable machine code and an HTTP status.
//!
//! ```
//! use twofactor::Error;
//!
//! let e = Error::InvalidCode { attempts_remaining: Some(2) };
//! assert_eq!(e.code(), "invalid_code");
//! assert_eq!(e.http_status(), 401);
//! // One message, code and status for every failed code step, so a response reveals nothing.
//! assert_eq!(e.public_message(), Error::InvalidChallenge.public_message());
//! assert_eq!(Error::MalformedCode.public_code(), e.public_code());
//! assert_eq!(Error::MalformedCode.public_http_status(), e.public_http_status());
//! ```

use std::fmt;
use std::time::Duration;

/// A boxed error source, kept so that a host can log the underlying cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in a two-factor flow.
///
/// Match on the variants you treat specially and fall back to [`Error::http_status`] and
/// [`Error::code`] for the rest; answer a client with [`Error::public_http_status`],
/// [`Error::public_code`] and [`Error::public_message`]. No variant ever carries a secret or a
/// code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The code was well formed but wrong.
    #[error("the code is not valid")]
    InvalidCode {
        /// How many more tries the current challenge allows, when known.
        attempts_remaining: Option<u32>,
    },
    /// The input is not a code at all: empty, too long, or with characters a code never has.
    #[error("the input is not a well-formed code")]
    MalformedCode,
    /// The code or challenge was valid once but has expired.
    #[error("the code or challenge has expired")]
    Expired,
    /// The challenge token is unknown, tampered with, already used, or made for another purpose.
    #[error("the challenge is not valid")]
    InvalidChallenge,
    /// The code was right but has been used before (a replayed TOTP step or a spent code).
    #[error("the code has already been used")]
    CodeReused,
    /// The challenge (or pending code) used up its attempts and is void.
    #[error("too many attempts; start again")]
    TooManyAttempts,
    /// Too many consecutive failures for this user: the code step is locked for a while.
    #[error("too many failed attempts; locked for {}s", retry_after.as_secs())]
    Locked {
        /// When the lock lifts.
        retry_after: Duration,
    },
    /// A code was sent moments ago; wait before asking for another.
    #[error("a code was sent recently; retry in {}s", retry_after.as_secs())]
    Cooldown {
        /// When a resend is allowed.
        retry_after: Duration,
    },
    /// The send cap for this user was reached.
    #[error("too many codes sent; retry in {}s", retry_after.as_secs())]
    RateLimited {
        /// When the next send is allowed.
        retry_after: Duration,
    },
    /// The user has no such factor (or no pending setup to confirm).
    #[error("the user is not enrolled in this factor")]
    NotEnrolled,
    /// A new code was asked for a challenge that has no email or text (SMS) method (the user
    /// signs in with TOTP or a backup code only): there is nothing to resend. Answered by
    /// [`TwoFactorService::resend_code`](crate::TwoFactorService::resend_code); offer resending
    /// only when [`Challenge::methods`](crate::Challenge::methods) holds [`Method::Email`](crate::Method::Email).
    #[error("the challenge has no email code to resend")]
    NoEmailMethod,
    /// A recovery was asked for a user who could not be told of it: no email factor, no phone
    /// factor with a text sender, and no
    /// [`ServiceBuilder::account_notices`](crate::service::ServiceBuilder::account_notices).
    /// Nothing was scheduled.
    #[error("there is no way to tell the account's owner")]
    NoNoticeChannel,
    /// The factor is already enabled; disable it first.
    #[error("the factor is already enabled")]
    AlreadyEnrolled,
    /// The confirmation code of a TOTP setup is the SHA-1, 6-digit code of the secret, not the
    /// code of the algorithm and digits the policy asked for: the authenticator app ignored
    /// them. Nothing was enabled; the user should use an app that honours the setting (or the
    /// host may allow the fallback with
    /// [`Policy::totp_allow_sha1_fallback`](crate::Policy::totp_allow_sha1_fallback)). The
    /// attempt was counted like a wrong code.
    #[error("the authenticator app does not support {requested} with {digits} digits")]
    TotpAlgorithmUnsupported {
        /// The name of the algorithm the policy asked for (`"SHA256"` or `"SHA512"`, as
        /// [`TotpAlgorithm::name`](crate::totp::TotpAlgorithm::name) gives it).
        requested: &'static str,
        /// The digits the policy asked for.
        digits: u32,
    },
    /// There is no pending setup or code to confirm.
    #[error("there is nothing pending to confirm")]
    NothingPending,
    /// A security key's registration response was not accepted (malformed, made for another
    /// origin or ceremony, a credential type or algorithm not allowed); nothing was stored.
    #[error("the security key's response was not accepted")]
    SecurityKeyRejected,
    /// The policy lets a security key be added only beside a factor answered with a code (an
    /// authenticator app, email or phone), so that a lost key does not lock the user out
    /// (`SecurityKeyPolicy::allow_key_alone`, feature `webauthn`, is off).
    #[error("add an authenticator app, email or phone factor first")]
    FallbackFactorRequired,
    /// The change needs a fresh second factor: confirm with a current code first
    /// ([`Account::reauthenticate`](crate::service::Account::reauthenticate)).
    #[error("a fresh second factor is required")]
    ReauthRequired,
    /// The host's password check refused the password.
    #[error("the password is not correct")]
    InvalidPassword,
    /// The host's [`PasswordVerifier`](crate::service::PasswordVerifier) could not check the password (its
    /// database was down, …): not a wrong password. The flow failed closed; the cause is the
    /// source.
    #[error("the password could not be checked")]
    PasswordCheck(#[source] BoxError),
    /// An argument was unusable (empty user id, malformed email address, …).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// A phone number is not in E.164 form; the [`PhoneError`] says why
    /// (its own [`code`](crate::error::PhoneError::code)). Holds no digit of the input.
    #[error("invalid phone number: {0}")]
    InvalidPhone(#[from] PhoneError),
    /// The service or policy configuration is not acceptable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// An internal failure that no input explains (the argon2 hasher failed).
    #[error("internal failure: {0}")]
    Internal(&'static str),
    /// A sealed secret did not open: wrong key, wrong user, tampered or unknown key id.
    #[error("a sealed secret could not be opened")]
    Crypto,
    /// The storage backend failed. The flow failed closed: nothing was granted.
    ///
    /// # What a host does next
    ///
    /// When [`is_transient`](Error::is_transient) is true (the server was down, stalled past its
    /// timeout, or the connection dropped), the call may or may not have reached the store
    /// before it failed. Retry the **same call with the same input** after a short pause (the
    /// stores reconnect by themselves): every step is safe to retry.
    ///
    /// - [`verify_login`](crate::TwoFactorService::verify_login) with the same token and code
    ///   answers [`Verified`](crate::Verified) when the failed try did not consume the
    ///   challenge, or [`Error::InvalidChallenge`] when it did (the challenge was taken and the
    ///   code's TOTP step recorded by the try whose answer was lost). Treat that
    ///   `InvalidChallenge` like any other: not logged in; call
    ///   [`begin_login`](crate::TwoFactorService::begin_login) again. The code is never
    ///   accepted twice ([`Error::CodeReused`] on the new challenge: the user waits for the
    ///   next TOTP code, or uses the emailed or a backup code). Each retry counts as an
    ///   attempt on the challenge and is bounded by its cap.
    /// - [`totp().confirm_setup`](crate::service::Totp::confirm_setup) retried with the
    ///   same code answers `Ok`, or [`Error::AlreadyEnrolled`] when the failed try did enable
    ///   the factor (with the backup codes shown at setup); with [`Error::CodeReused`], the step
    ///   was recorded but the setup is still pending: confirm with the next code.
    ///
    /// A store that came back empty (Redis without persistence) lost its challenges: the retry
    /// answers `InvalidChallenge` and the login starts again. These outcomes are exercised
    /// against real servers that are killed, stopped, stalled with `SIGSTOP`, and cut by a proxy
    /// after a write was forwarded (`tests/it/real_failures.rs`).
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// The mailer failed. The flow failed closed and left no usable code.
    #[error("delivery failed")]
    Delivery(#[from] DeliveryError),
}

impl Error {
    /// A stable, machine-readable code for this error, suitable for a JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidCode { .. } => "invalid_code",
            Error::MalformedCode => "malformed_code",
            Error::Expired => "expired",
            Error::InvalidChallenge => "invalid_challenge",
            Error::CodeReused => "code_reused",
            Error::TooManyAttempts => "too_many_attempts",
            Error::Locked { .. } => "locked",
            Error::Cooldown { .. } => "cooldown",
            Error::RateLimited { .. } => "rate_limited",
            Error::NotEnrolled => "not_enrolled",
            Error::NoEmailMethod => "no_email_method",
            Error::NoNoticeChannel => "no_notice_channel",
            Error::TotpAlgorithmUnsupported { .. } => "totp_algorithm_unsupported",
            Error::AlreadyEnrolled => "already_enrolled",
            Error::NothingPending => "nothing_pending",
            Error::SecurityKeyRejected => "security_key_rejected",
            Error::FallbackFactorRequired => "fallback_factor_required",
            Error::ReauthRequired => "reauth_required",
            Error::InvalidPassword => "invalid_password",
            Error::PasswordCheck(_) => "password_check_failed",
            Error::InvalidInput(_) => "invalid_input",
            Error::InvalidPhone(_) => "invalid_phone",
            Error::InvalidConfig(_) => "invalid_config",
            Error::Internal(_) => "internal_error",
            Error::Crypto => "crypto_failed",
            Error::Store(_) => "store_unavailable",
            Error::Delivery(_) => "delivery_failed",
        }
    }

    /// The HTTP status a host should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Error::MalformedCode
            | Error::InvalidInput(_)
            | Error::InvalidPhone(_)
            | Error::SecurityKeyRejected => 400,
            Error::InvalidCode { .. }
            | Error::Expired
            | Error::InvalidChallenge
            | Error::CodeReused
            | Error::InvalidPassword => 401,
            Error::NotEnrolled => 404,
            Error::TotpAlgorithmUnsupported { .. } => 422,
            Error::ReauthRequired => 403,
            Error::AlreadyEnrolled
            | Error::NothingPending
            | Error::NoEmailMethod
            | Error::NoNoticeChannel
            | Error::FallbackFactorRequired => 409,
            Error::TooManyAttempts
            | Error::Locked { .. }
            | Error::Cooldown { .. }
            | Error::RateLimited { .. } => 429,
            Error::InvalidConfig(_) | Error::Internal(_) | Error::Crypto => 500,
            Error::Store(_) | Error::Delivery(_) | Error::PasswordCheck(_) => 503,
        }
    }

    /// How long the caller should wait before trying again, for the 429 family.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Locked { retry_after }
            | Error::Cooldown { retry_after }
            | Error::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Whether the same call may succeed if simply retried later (a store or mailer outage).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => e.is_transient(),
            Error::Delivery(e) => e.is_transient(),
            _ => false,
        }
    }

    /// A machine code safe to show a client: [`code`](Self::code), except that every failure of
    /// the code step (wrong, malformed, expired or reused code; unknown, used or tampered
    /// challenge; nothing pending) shares `invalid_code`, so a response never tells an attacker
    /// which part was wrong. Log [`code`](Self::code); answer with this and
    /// [`public_http_status`](Self::public_http_status).
    ///
    /// ```
    /// use twofactor::Error;
    /// assert_eq!(Error::CodeReused.public_code(), "invalid_code");
    /// assert_eq!(Error::InvalidChallenge.public_code(), "invalid_code");
    /// assert_eq!(Error::TooManyAttempts.public_code(), "too_many_attempts");
    /// ```
    pub fn public_code(&self) -> &'static str {
        match self {
            Error::InvalidCode { .. }
            | Error::MalformedCode
            | Error::Expired
            | Error::InvalidChallenge
            | Error::CodeReused
            | Error::NothingPending => "invalid_code",
            other => other.code(),
        }
    }

    /// The HTTP status safe to answer a client with: [`http_status`](Self::http_status), except
    /// that every failure of the code step that [`public_code`](Self::public_code) answers with
    /// `invalid_code` (a wrong, malformed, expired or reused code; an unknown, used or tampered
    /// challenge; nothing pending) answers 401, so the status tells no more than the code does.
    /// [`http_status`](Self::http_status) gives 400 for a malformed code and 409 when nothing is
    /// pending: log it, answer with this.
    ///
    /// ```
    /// use twofactor::Error;
    ///
    /// let malformed = Error::MalformedCode;
    /// let wrong = Error::InvalidCode { attempts_remaining: Some(2) };
    /// assert_eq!(malformed.http_status(), 400); // for the log
    /// assert_eq!(malformed.public_http_status(), 401); // for the client
    /// assert_eq!(malformed.public_http_status(), wrong.public_http_status());
    /// assert_eq!(malformed.public_code(), wrong.public_code());
    /// assert_eq!(Error::NothingPending.public_http_status(), 401);
    /// // Outside the code step, the public status is the status.
    /// assert_eq!(Error::TooManyAttempts.public_http_status(), 429);
    /// assert_eq!(Error::ReauthRequired.public_http_status(), 403);
    /// ```
    pub fn public_http_status(&self) -> u16 {
        if self.public_code() == "invalid_code" {
            401
        } else {
            self.http_status()
        }
    }

    /// A message safe to show an end user.
    ///
    /// Every failure of the code step (wrong, expired, reused code; unknown, used or tampered
    /// challenge; malformed input; a code to confirm when none is pending, which is also what an
    /// expired code looks like once the store has dropped it) gets the same text, so a response
    /// never tells an attacker which part was wrong (ASVS 5.0 6.3.8).
    pub fn public_message(&self) -> &'static str {
        match self {
            Error::InvalidCode { .. }
            | Error::MalformedCode
            | Error::Expired
            | Error::InvalidChallenge
            | Error::CodeReused
            | Error::NothingPending => "The code is invalid or has expired.",
            Error::TooManyAttempts => "Too many attempts. Please start again.",
            Error::Locked { .. } => "Too many failed attempts. Please try again later.",
            Error::Cooldown { .. } | Error::RateLimited { .. } => {
                "Please wait before requesting another code."
            }
            Error::NotEnrolled => "Two-factor authentication is not set up.",
            Error::NoEmailMethod => "This sign-in has no email code to resend.",
            Error::NoNoticeChannel => {
                "This account has no address to be told of a recovery. Please contact support."
            }
            Error::TotpAlgorithmUnsupported { .. } => {
                "Your authenticator app does not support the requested settings. \
                 Please use another authenticator app."
            }
            Error::AlreadyEnrolled => "Two-factor authentication is already enabled.",
            Error::ReauthRequired => "Please confirm with a current code first.",
            Error::SecurityKeyRejected => "The security key could not be registered.",
            Error::FallbackFactorRequired => {
                "Add an authenticator app, email or phone first, then a security key."
            }
            Error::InvalidPassword => "The password is not correct.",
            Error::InvalidInput(_) => "The request is not valid.",
            Error::InvalidPhone(_) => {
                "The phone number is not valid. Enter it with + and the country code."
            }
            Error::InvalidConfig(_) | Error::Internal(_) | Error::Crypto => {
                "An internal error occurred."
            }
            Error::Store(_) | Error::Delivery(_) | Error::PasswordCheck(_) => {
                "The service is temporarily unavailable. Please try again."
            }
        }
    }
}

/// What kind of failure a [`StoreError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached or refused the connection.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// A record could not be decoded: the store holds something this crate did not write.
    Corrupt,
    /// Any other backend failure.
    Other,
}

/// A failure of an [`OtpStore`](crate::store::OtpStore) or [`EnrollmentStore`](crate::store::EnrollmentStore).
///
/// It keeps its source, and says whether retrying may help.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<BoxError>,
}

impl StoreError {
    /// A new error of `kind` caused by `source`.
    pub fn new(kind: StoreErrorKind, source: impl Into<BoxError>) -> Self {
        StoreError {
            kind,
            source: Some(source.into()),
        }
    }

    /// The backend is unreachable or refused the connection.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Unavailable, source)
    }

    /// The backend did not answer in time.
    pub fn timeout(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Timeout, source)
    }

    /// A stored record could not be decoded.
    pub fn corrupt(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Corrupt, source)
    }

    /// Any other failure.
    pub fn other(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Other, source)
    }

    /// The kind of failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Unavailable | StoreErrorKind::Timeout
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "store unavailable",
            StoreErrorKind::Timeout => "store timed out",
            StoreErrorKind::Corrupt => "store record corrupt",
            StoreErrorKind::Other => "store failed",
        };
        match &self.source {
            Some(s) => write!(f, "{what}: {s}"),
            None => f.write_str(what),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// A failure of a [`Mailer`](crate::mail::Mailer). It keeps its source and says whether retrying may help.
#[derive(Debug)]
pub struct DeliveryError {
    transient: bool,
    source: BoxError,
}

impl DeliveryError {
    /// A failure that may go away (connection refused, timeout, 4xx SMTP reply).
    pub fn transient(source: impl Into<BoxError>) -> Self {
        DeliveryError {
            transient: true,
            source: source.into(),
        }
    }

    /// A failure that will not go away by retrying (bad address, 5xx SMTP reply, bad config).
    pub fn permanent(source: impl Into<BoxError>) -> Self {
        DeliveryError {
            transient: false,
            source: source.into(),
        }
    }

    /// Whether retrying the same delivery later may succeed.
    pub fn is_transient(&self) -> bool {
        self.transient
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "delivery failed: {}", self.source)
    }
}

impl std::error::Error for DeliveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Why a text is not an E.164 phone number. Each variant has a stable [`code`](Self::code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// Nothing but spaces and dashes.
    #[error("the phone number is empty")]
    Empty,
    /// It does not start with `+` and a country code.
    #[error("the phone number must start with + and the country code")]
    MissingPlus,
    /// A character other than an ASCII digit after the `+` (spaces and dashes are dropped).
    #[error("the phone number may hold only digits after the +")]
    NotDigits,
    /// Fewer than 8 digits.
    #[error("the phone number is too short")]
    TooShort,
    /// More than 15 digits (or a very long input).
    #[error("the phone number is too long")]
    TooLong,
    /// The country code starts with 0.
    #[error("the country code cannot start with 0")]
    LeadingZero,
}

impl PhoneError {
    /// A stable machine code: `phone_empty`, `phone_missing_plus`, `phone_not_digits`,
    /// `phone_too_short`, `phone_too_long` or `phone_leading_zero`.
    pub fn code(self) -> &'static str {
        match self {
            PhoneError::Empty => "phone_empty",
            PhoneError::MissingPlus => "phone_missing_plus",
            PhoneError::NotDigits => "phone_not_digits",
            PhoneError::TooShort => "phone_too_short",
            PhoneError::TooLong => "phone_too_long",
            PhoneError::LeadingZero => "phone_leading_zero",
        }
    }
}
