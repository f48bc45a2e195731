//! Argon2id password hashing helpers (PHC strings), for hosts that have none.
//!
//! The disable flow needs the user's password; the service checks it through the host's
//! [`PasswordVerifier`](crate::service::PasswordVerifier). A host without password hashing of its own can
//! store [`hash_password`]'s output and check it with [`verify_password`].
//!
//! ```
//! let phc = twofactor::account::hash_password("correct horse battery staple").unwrap();
//! assert!(phc.starts_with("$argon2id$"));
//! assert!(twofactor::account::verify_password("correct horse battery staple", &phc));
//! assert!(!twofactor::account::verify_password("wrong", &phc));
//! assert!(!twofactor::account::verify_password("anything", "not a phc string"));
//! ```

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier as _, SaltString};
use argon2::Argon2;
use rand::RngCore;

use crate::error::Error;

/// The longest password accepted, in bytes (argon2 itself allows more; nobody needs more).
const MAX_PASSWORD_LEN: usize = 4096;

/// Hashes `password` with argon2id (the crate's default parameters: 19 MiB, 2 passes, OWASP's
/// recommendation) and a random salt, as a PHC string.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty or over-long password.
pub fn hash_password(password: &str) -> Result<String, Error> {
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        return Err(Error::InvalidInput("password must be 1 to 4096 bytes"));
    }
    argon2_hash(password.as_bytes())
}

/// Whether `password` matches the PHC string `phc`. Parameters are read from the string, so hashes
/// made with older parameters keep verifying. A malformed `phc` is simply `false`.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD_LEN {
        return false;
    }
    argon2_verify(password.as_bytes(), phc)
}

pub(crate) fn argon2_hash(secret: &[u8]) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|_| Error::Internal("argon2 salt encoding failed"))?;
    Argon2::default()
        .hash_password(secret, &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::Internal("argon2 hashing failed"))
}

pub(crate) fn argon2_verify(secret: &[u8], phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(secret, &parsed).is_ok(),
        Err(_) => false,
    }
}
