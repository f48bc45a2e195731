//! [`StoreKey`]: the key of a short-lived record in the [`OtpStore`](crate::store::OtpStore).

/// The key of a short-lived record, built by the service.
///
/// Keys are ASCII, at most a few hundred bytes, and contain a `{…}` hash tag naming the user or
/// challenge they belong to, so that a Redis Cluster keeps related keys on one slot. A store may
/// prefix them (to share one Redis between applications) but must not otherwise change them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey(String);

impl StoreKey {
    /// A key from its text. Intended for stores' own tests; the service builds its own keys.
    pub fn new(key: impl Into<String>) -> Self {
        StoreKey(key.into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash tag: the text between the first `{` and the next `}`, if any.
    pub fn hash_tag(&self) -> Option<&str> {
        let start = self.0.find('{')?;
        let rest = self.0.get(start + 1..)?;
        let end = rest.find('}')?;
        rest.get(..end)
    }
}

impl std::fmt::Display for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
