//! [`LoginContext`]: who is asking, for the login steps.

use crate::devices::types::DeviceToken;

/// Who is asking, for the login steps
/// ([`begin_login`](crate::TwoFactorService::begin_login),
/// [`verify_login`](crate::TwoFactorService::verify_login)): the client, so that a per-client
/// ceiling ([`Policy::client_login_limit`](crate::Policy::client_login_limit)) holds beside the
/// per-user and per-challenge limits, and the browser's trusted-device token, if any.
/// `LoginContext::new()` names neither.
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
    device: Option<DeviceToken>,
}

impl LoginContext {
    /// A context that names no client: only the per-user and per-challenge limits apply.
    pub fn new() -> Self {
        LoginContext::default()
    }

    /// A shared context that names neither a client nor a device, for calls that have neither
    /// (a job, a test): `tf.begin_login(LoginContext::none(), user)`.
    pub fn none() -> &'static LoginContext {
        static NONE: LoginContext = LoginContext {
            client: None,
            device: None,
        };
        &NONE
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

    /// The trusted-device token the browser presented (the cookie of
    /// [`Devices::trust`](crate::service::Devices::trust)).
    ///
    /// In [`begin_login`](crate::TwoFactorService::begin_login), a token that is live, trusted
    /// by this user, and not revoked completes the login at once: `LoginStep::Complete` with
    /// [`Method::TrustedDevice`](crate::Method::TrustedDevice), no challenge, no mail; the
    /// device's last use is recorded. Any other token (another user's, expired, revoked,
    /// malformed) is refused quietly (an `Event::DeviceRejected`) and the login goes on to its
    /// challenge: the host may then clear the cookie.
    pub fn device(mut self, token: DeviceToken) -> Self {
        self.device = Some(token);
        self
    }

    /// The device token, if one was given.
    pub fn device_token(&self) -> Option<&DeviceToken> {
        self.device.as_ref()
    }
}
