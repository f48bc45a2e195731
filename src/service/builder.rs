//! [`ServiceBuilder`], the [`PasswordVerifier`] it takes, and [`TwoFactorService::builder`].

use std::sync::Arc;

use async_trait::async_trait;

use super::{DisplayNames, Inner, TwoFactorService};
use crate::clock::{Clock, SystemClock};
use crate::error::{BoxError, Error};
use crate::events::{EventSink, TracingEvents};
use crate::keys::Keyring;
use crate::mail::{AccountNotices, EnglishTemplates, Mailer, Templates};
use crate::policy::Policy;
use crate::store::{EnrollmentStore, OtpStore};
use crate::text::{EnglishTextTemplates, TextSender, TextTemplates};

/// Checks a user's password for the flows that need it ([`Account::disable`](crate::service::Account::disable)).
///
/// It is async, so a host can look the user up in its database and run its password hash off the
/// executor. `Ok(false)` means the password is wrong ([`Error::InvalidPassword`], counted against
/// the user's password limit); `Err` means the check could not be made (the database is down),
/// which the service reports as [`Error::PasswordCheck`] with the cause as its source, never as a
/// wrong password, and fails closed.
///
/// The trait uses [`async_trait`](crate::async_trait): put `#[twofactor::async_trait]` on your
/// `impl`.
///
/// ```
/// use twofactor::{async_trait, error::BoxError, service::PasswordVerifier};
///
/// struct Users { /* a database pool */ }
///
/// impl Users {
///     async fn password_hash(&self, user: &str) -> Result<Option<String>, BoxError> {
///         Ok((user == "alice").then(|| twofactor::account::hash_password("s3cret")).transpose()?)
///     }
/// }
///
/// #[async_trait]
/// impl PasswordVerifier for Users {
///     async fn verify(&self, user: &str, password: &str) -> Result<bool, BoxError> {
///         let Some(phc) = self.password_hash(user).await? else { return Ok(false) };
///         // argon2 takes tens of milliseconds: keep it off the async executor.
///         let password = password.to_owned();
///         Ok(tokio::task::spawn_blocking(move || twofactor::account::verify_password(&password, &phc)).await?)
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # assert!(Users {}.verify("alice", "s3cret").await.unwrap());
/// # assert!(!Users {}.verify("alice", "wrong").await.unwrap());
/// # }
/// ```
///
/// For the simple case, a synchronous check that cannot fail, a closure
/// `Fn(&str, &str) -> bool` (user, password) is a `PasswordVerifier`:
///
/// ```
/// # use twofactor::{Keyring, store::MemoryEnrollmentStore, store::MemoryOtpStore, testing::RecordingMailer, TwoFactorService};
/// let builder = TwoFactorService::builder()
///     .password_verifier(|_user: &str, password: &str| password == "from the host");
/// # let _ = builder;
/// ```
#[async_trait]
pub trait PasswordVerifier: Send + Sync + 'static {
    /// Whether `password` is `user`'s password.
    ///
    /// # Errors
    /// Whatever kept the host from checking: the service answers [`Error::PasswordCheck`] with it
    /// as the source.
    async fn verify(&self, user: &str, password: &str) -> Result<bool, BoxError>;
}

/// The closure adapter: a synchronous check that cannot fail. Keep it cheap (it runs on the
/// executor); a slow hash belongs in an implementation that moves it off, as above.
#[async_trait]
impl<F: Fn(&str, &str) -> bool + Send + Sync + 'static> PasswordVerifier for F {
    async fn verify(&self, user: &str, password: &str) -> Result<bool, BoxError> {
        Ok(self(user, password))
    }
}

/// Builds a [`TwoFactorService`].
pub struct ServiceBuilder {
    issuer: Option<String>,
    keys: Option<Keyring>,
    otp: Option<Arc<dyn OtpStore>>,
    enrollments: Option<Arc<dyn EnrollmentStore>>,
    mailer: Option<Arc<dyn Mailer>>,
    templates: Arc<dyn Templates>,
    texts: Option<Arc<dyn TextSender>>,
    text_templates: Arc<dyn TextTemplates>,
    notices: Option<Arc<dyn AccountNotices>>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    password: Option<Arc<dyn PasswordVerifier>>,
    display_names: Option<Arc<DisplayNames>>,
    events: Arc<dyn EventSink>,
}

impl std::fmt::Debug for ServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBuilder")
            .field("issuer", &self.issuer)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ServiceBuilder {
    /// The product name shown in authenticator apps and messages. Required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The keys. Required.
    pub fn keys(mut self, keys: Keyring) -> Self {
        self.keys = Some(keys);
        self
    }

    /// The short-lived store. Required.
    ///
    /// A store the host keeps a handle on can be passed as an `Arc<S>` (or an
    /// `Arc<dyn OtpStore>`, a `Box<dyn OtpStore>`): the pointer is a store too, and forwards
    /// every call, the composite operations included.
    pub fn otp_store(mut self, store: impl OtpStore) -> Self {
        self.otp = Some(Arc::new(store));
        self
    }

    /// The durable store. Required. An `Arc<S>` or a `Box<dyn EnrollmentStore>` is one too.
    pub fn enrollments(mut self, store: impl EnrollmentStore) -> Self {
        self.enrollments = Some(Arc::new(store));
        self
    }

    /// The mailer. Required. An `Arc<M>` or a `Box<dyn Mailer>` is one too.
    pub fn mailer(mut self, mailer: impl Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// The message templates. Default [`EnglishTemplates`].
    pub fn templates(mut self, templates: impl Templates) -> Self {
        self.templates = Arc::new(templates);
        self
    }

    /// The text (SMS) sender. Optional: without it, phone setup answers
    /// [`Error::InvalidConfig`] and a user's phone factor gets no code by text. An `Arc<T>` or
    /// a `Box<dyn TextSender>` is one too.
    ///
    /// NIST SP 800-63B makes SMS a *restricted* authenticator: offer it beside TOTP or a
    /// security key, which are stronger, not instead of them.
    pub fn text_sender(mut self, sender: impl TextSender) -> Self {
        self.texts = Some(Arc::new(sender));
        self
    }

    /// Where security notices to the account's own contact go (optional; see
    /// [`AccountNotices`]). Without it, a user with neither an email nor a phone factor cannot
    /// request a recovery ([`Error::NoNoticeChannel`]): nobody could tell them of it.
    pub fn account_notices(mut self, notices: impl AccountNotices) -> Self {
        self.notices = Some(Arc::new(notices));
        self
    }

    /// The text templates. Default [`EnglishTextTemplates`].
    pub fn text_templates(mut self, templates: impl TextTemplates) -> Self {
        self.text_templates = Arc::new(templates);
        self
    }

    /// The policy. Default [`Policy::default`].
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The clock. Default [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The password check used by [`Account::disable`](crate::service::Account::disable). Without it, `disable` refuses.
    pub fn password_verifier(mut self, verifier: impl PasswordVerifier) -> Self {
        self.password = Some(Arc::new(verifier));
        self
    }

    /// A lookup of a user's display name, for greetings in messages.
    pub fn display_names(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.display_names = Some(Arc::new(lookup));
        self
    }

    /// Where security events go. Default [`TracingEvents`].
    pub fn events(mut self, sink: impl EventSink) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// The service.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a required part is missing, the issuer is unusable in an
    /// otpauth URI, or the policy fails [`Policy::validate`].
    pub fn build(self) -> Result<TwoFactorService, Error> {
        self.policy.validate()?;
        let issuer = self
            .issuer
            .ok_or_else(|| Error::InvalidConfig("issuer is required".into()))?;
        if !crate::totp::usable_label(&issuer) {
            return Err(Error::InvalidConfig(
                "issuer must be 1 to 256 bytes without ':', control characters or outer spaces"
                    .into(),
            ));
        }
        let missing = |what: &str| Error::InvalidConfig(format!("{what} is required"));
        #[cfg(feature = "webauthn")]
        let webauthn = match &self.policy.security_keys {
            Some(keys) => Some(Arc::new(keys.build()?)),
            None => None,
        };
        Ok(TwoFactorService {
            inner: Arc::new(Inner {
                issuer,
                keys: self.keys.ok_or_else(|| missing("keys"))?,
                otp: self.otp.ok_or_else(|| missing("otp_store"))?,
                enrollments: self.enrollments.ok_or_else(|| missing("enrollments"))?,
                mailer: self.mailer.ok_or_else(|| missing("mailer"))?,
                templates: self.templates,
                texts: self.texts,
                text_templates: self.text_templates,
                notices: self.notices,
                policy: self.policy,
                clock: self.clock,
                password: self.password,
                display_names: self.display_names,
                events: self.events,
                #[cfg(feature = "webauthn")]
                webauthn,
            }),
        })
    }
}

impl TwoFactorService {
    /// A builder. `issuer`, `keys`, `otp_store`, `enrollments` and `mailer` are required.
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder {
            issuer: None,
            keys: None,
            otp: None,
            enrollments: None,
            mailer: None,
            templates: Arc::new(EnglishTemplates),
            texts: None,
            text_templates: Arc::new(EnglishTextTemplates),
            notices: None,
            policy: Policy::default(),
            clock: Arc::new(SystemClock),
            password: None,
            display_names: None,
            events: Arc::new(TracingEvents),
        }
    }
}
