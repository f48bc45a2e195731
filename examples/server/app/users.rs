//! The demo user store: usernames, email addresses and argon2id password hashes, in memory.
//!
//! A real host has its own users table; this is the smallest thing that makes the flows work.
//! A registration stays pending until its email code is verified, and only verified users can
//! sign in.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::RngCore;
use twofactor::clock::Timestamp;

/// How long a registration waits for its email code.
const PENDING_TTL: Duration = Duration::from_secs(3600);
/// Registrations waiting at once for one address: the crate limits sends per user, and this
/// keeps anyone from mailing an address again and again under ever new usernames.
const MAX_PENDING_PER_ADDRESS: usize = 3;

/// A verified user.
#[derive(Clone)]
pub(crate) struct User {
    /// The stable id the two-factor service knows the user by.
    pub(crate) id: String,
    /// The name the user signs in with.
    pub(crate) username: String,
    /// The verified email address.
    pub(crate) email: String,
    /// argon2id PHC string.
    password_hash: String,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

struct Pending {
    user: User,
    expires: Timestamp,
}

#[derive(Default)]
struct Inner {
    by_name: HashMap<String, User>,
    name_by_id: HashMap<String, String>,
    pending: HashMap<String, Pending>,
}

/// Users and pending registrations.
pub(crate) struct Users {
    inner: Mutex<Inner>,
    /// A hash of nothing anyone knows, checked when a username is unknown so that a login for an
    /// unknown user costs the same argon2 run as one for a known user.
    dummy_hash: String,
    /// See [`Users::decoy_id`].
    decoy_id: String,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Users { .. }")
    }
}

/// A username in its stored form (trimmed, lower case), or `None` if it is not acceptable:
/// 3 to 32 characters among `a-z 0-9 . _ -`.
pub(crate) fn normalize_username(name: &str) -> Option<String> {
    let name = name.trim().to_ascii_lowercase();
    let ok = (3..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    ok.then_some(name)
}

/// Whether a password is acceptable: 8 to 256 characters (NIST SP 800-63B §5.1.1.2 asks for at
/// least 8; the upper bound keeps one argon2 run bounded).
pub(crate) fn password_acceptable(password: &str) -> bool {
    (8..=256).contains(&password.chars().count())
}

impl Users {
    /// An empty store.
    ///
    /// # Errors
    /// When the dummy hash cannot be made.
    pub(crate) fn new() -> Result<Self, twofactor::Error> {
        let mut noise = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut noise);
        let dummy_hash = twofactor::account::hash_password(&format!("{noise:?}"))?;
        Ok(Users {
            inner: Mutex::new(Inner::default()),
            dummy_hash,
            decoy_id: new_user_id(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a pending registration and returns the id its email code is sent for.
    ///
    /// - A name that belongs to a verified user: `None`.
    /// - A name with a registration waiting: the waiting one is kept as it is (its password,
    ///   address, id and code budget), and only a request naming the same address gets its id
    ///   back, to mail that address a new code (the crate's cooldown and send cap apply, and the
    ///   code's attempt count is kept). Anyone else gets `None`: a pending registration cannot
    ///   be taken over, and registering again buys no fresh budget of code guesses.
    /// - An address with [`MAX_PENDING_PER_ADDRESS`] registrations waiting: `None`.
    pub(crate) fn register(
        &self,
        username: &str,
        email: &str,
        password_hash: String,
        now: Timestamp,
    ) -> Option<String> {
        let mut inner = self.lock();
        inner.pending.retain(|_, p| p.expires > now);
        if inner.by_name.contains_key(username) {
            return None;
        }
        if let Some(p) = inner.pending.get(username) {
            return p
                .user
                .email
                .eq_ignore_ascii_case(email)
                .then(|| p.user.id.clone());
        }
        let waiting = inner
            .pending
            .values()
            .filter(|p| p.user.email.eq_ignore_ascii_case(email))
            .count();
        if waiting >= MAX_PENDING_PER_ADDRESS {
            return None;
        }
        let id = new_user_id();
        inner.pending.insert(
            username.to_owned(),
            Pending {
                user: User {
                    id: id.clone(),
                    username: username.to_owned(),
                    email: email.to_owned(),
                    password_hash,
                },
                expires: now.saturating_add(PENDING_TTL),
            },
        );
        Some(id)
    }

    /// An id no registration has: a code checked against it costs the same store work as one
    /// checked against a pending registration, and always fails.
    pub(crate) fn decoy_id(&self) -> &str {
        &self.decoy_id
    }

    /// The id of a live pending registration.
    pub(crate) fn pending_id(&self, username: &str, now: Timestamp) -> Option<String> {
        let inner = self.lock();
        let p = inner.pending.get(username)?;
        (p.expires > now).then(|| p.user.id.clone())
    }

    /// Turns the pending registration with this id into a user, once its address is verified.
    pub(crate) fn activate(&self, username: &str, id: &str) -> Option<User> {
        let mut inner = self.lock();
        if inner.by_name.contains_key(username)
            || inner.pending.get(username).map(|p| p.user.id.as_str()) != Some(id)
        {
            return None;
        }
        let user = inner.pending.remove(username)?.user;
        inner
            .name_by_id
            .insert(user.id.clone(), user.username.clone());
        inner.by_name.insert(user.username.clone(), user.clone());
        Some(user)
    }

    /// A verified user by id.
    pub(crate) fn get(&self, id: &str) -> Option<User> {
        let inner = self.lock();
        let name = inner.name_by_id.get(id)?;
        inner.by_name.get(name).cloned()
    }

    /// The user if the password is theirs. An unknown username costs the same argon2 run as a
    /// known one, and both failures look the same to the caller.
    pub(crate) fn authenticate(&self, username: &str, password: &str) -> Option<User> {
        let user = self.lock().by_name.get(username).cloned();
        let hash = user
            .as_ref()
            .map_or(self.dummy_hash.as_str(), |u| &u.password_hash);
        let ok = twofactor::account::verify_password(password, hash);
        user.filter(|_| ok)
    }

    /// Whether `password` is the password of the user with this id (the service's hook for
    /// disabling two-factor authentication).
    pub(crate) fn check_password(&self, id: &str, password: &str) -> bool {
        let hash = self.get(id).map(|u| u.password_hash);
        let ok = twofactor::account::verify_password(
            password,
            hash.as_deref().unwrap_or(&self.dummy_hash),
        );
        ok && hash.is_some()
    }
}

/// 96 random bits, hex: the user id the service and tokens carry.
fn new_user_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut id = String::from("u_");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}
