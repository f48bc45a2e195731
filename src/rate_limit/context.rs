//! [`LoginContext`]: who is asking, for the login steps.

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
