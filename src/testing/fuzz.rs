//! Entry points for the fuzz targets in `fuzz/`: thin wrappers around crate-internal functions.
//! Enabled by the `fuzzing` feature; not a public API, and it may change at any time.

use crate::challenge::{ChallengeRecord, CodeRecord, TAG_BYTES};
use crate::store::flow::{ChallengeState, UserState};
use crate::{clock::Timestamp, error::StoreError, ChallengeToken, Error, Keyring, Secret};

/// `code::normalize`: what a user typed, normalised.
pub fn normalize(input: &str) -> Result<Secret, Error> {
    crate::code::normalize(input)
}

/// `code::is_numeric`: whether normalised input is a code of `digits` digits.
pub fn is_numeric(code: &Secret, digits: u32) -> bool {
    crate::code::is_numeric(code, digits)
}

/// `backup::canonical`: the canonical form of a backup code, if the input is one.
pub fn backup_canonical(input: &str) -> Option<Secret> {
    crate::backup::canonical(input)
}

/// `ChallengeToken::generate`: a fresh token carrying `tag`.
pub fn challenge_token(tag: &[u8; TAG_BYTES]) -> ChallengeToken {
    ChallengeToken::generate(tag)
}

/// `ChallengeToken::locate`: the user's key tag and the challenge id of a token.
pub fn challenge_locate(
    token: &ChallengeToken,
    keys: &Keyring,
) -> Option<([u8; TAG_BYTES], [u8; 16])> {
    token.locate(keys)
}

/// `Keyring::seal`: seals `secret` for `user` under the current key.
pub fn seal(keys: &Keyring, user: &str, secret: &[u8]) -> Result<Vec<u8>, Error> {
    keys.seal(user, secret)
}

/// `Keyring::open`: the secret in an envelope, and whether an older key sealed it.
pub fn open(keys: &Keyring, user: &str, envelope: &[u8]) -> Result<(Vec<u8>, bool), Error> {
    keys.open(user, envelope)
        .map(|(secret, old)| (secret.to_vec(), old))
}

/// The bits of a challenge record's methods byte that survive a decode.
pub const CHALLENGE_KNOWN_BITS: u8 = crate::challenge::KNOWN_BITS;

/// `ChallengeRecord::decode`, then `encode` of what it read.
pub fn challenge_record(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    ChallengeRecord::decode(bytes).map(|r| r.encode())
}

/// `CodeRecord::decode`, then `encode` of what it read.
pub fn code_record(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    CodeRecord::decode(bytes).map(|r| r.encode())
}

/// The memory store's challenge entry, read back from its bytes.
pub fn memory_challenge_entry(
    bytes: &[u8],
    expires_at: Timestamp,
) -> Result<ChallengeState, StoreError> {
    crate::store::read_challenge_entry(bytes, expires_at)
}

/// The bytes of the memory store's challenge entry for `ch`.
pub fn memory_challenge_entry_bytes(ch: &ChallengeState) -> Vec<u8> {
    crate::store::challenge_entry_bytes(ch)
}

/// The user record of the default layout (built from the primitives): the state and the id
/// of the current run of failures.
pub fn default_user_record(bytes: &[u8]) -> Result<(UserState, u64), StoreError> {
    crate::store::flow::decode_default_user(bytes)
}
