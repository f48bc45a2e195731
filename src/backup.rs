//! Backup codes: shown once, stored keyed-hashed, single use.
//!
//! A code is 12 Crockford base32 characters (60 bits from the OS CSPRNG), shown as
//! `XXXX-XXXX-XXXX`. Input is forgiving: case, spaces and dashes are ignored and the letters
//! `I`, `L` and `O` read as `1`, `1` and `0`. The store holds only
//! `HMAC-SHA256(mac_key, "backup" ‖ user ‖ code)`, so a check is one hash and one lookup however
//! many codes a user holds; with [`BackupCodeHashing::Argon2id`] it holds an argon2id PHC string per
//! code, found through a short prefix of that HMAC so that one guess costs one argon2 run.
//!
//! The service's check of a submitted backup code (`consume_backup`, in an
//! `impl TwoFactorService` block) lives here too, next to the hashing it relies on.

use rand::rngs::OsRng;
use rand::RngCore;

use crate::clock::Timestamp;
use crate::code::Secret;
use crate::error::Error;
use crate::events::Event;
use crate::input::check_user;
use crate::keys::Keyring;
use crate::mail::{MailContent, SecurityAction};
use crate::password::{argon2_hash, argon2_verify};
use crate::policy::BackupCodeHashing;
use crate::service::TwoFactorService;
use crate::store::BackupCodeRecord;

/// Crockford's base32 alphabet: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters per code (12 × 5 = 60 bits).
pub(crate) const CODE_CHARS: usize = 12;
/// Bytes of the HMAC kept as the lookup of an argon2id-stored code: 16 bits. Each prefix is
/// shared by 2^44 of the 2^60 possible codes, so even a holder of the MAC key learns nothing
/// from it and must run argon2 per guess; a set never holds one prefix twice (a colliding code
/// is drawn again), so a guess costs at most one argon2 run.
const ARGON2_LOOKUP_LEN: usize = 2;
/// The lookup length of argon2id-stored codes written by earlier versions (64 bits), still
/// found so that their codes keep working until the set is regenerated.
const LEGACY_ARGON2_LOOKUP_LEN: usize = 8;

/// A freshly generated set of backup codes, to show the user once.
///
/// `Debug` is redacted; the codes are zeroized on drop.
///
/// ```
/// let set = twofactor::account::BackupCodeSet::generate(10);
/// assert_eq!(set.codes().len(), 10);
/// let code = set.codes()[0].expose();
/// assert_eq!(code.len(), 14); // XXXX-XXXX-XXXX
/// assert_eq!(&code[4..5], "-");
/// ```
#[derive(Clone)]
pub struct BackupCodeSet {
    codes: Vec<Secret>,
}

impl std::fmt::Debug for BackupCodeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupCodeSet({} codes, [redacted])", self.codes.len())
    }
}

impl BackupCodeSet {
    /// `count` new codes, all distinct.
    pub fn generate(count: usize) -> Self {
        let mut codes: Vec<Secret> = Vec::with_capacity(count);
        while codes.len() < count {
            let c = generate_code();
            if !codes.iter().any(|x| x == &c) {
                codes.push(c);
            }
        }
        BackupCodeSet { codes }
    }

    /// The codes, formatted `XXXX-XXXX-XXXX`.
    pub fn codes(&self) -> &[Secret] {
        &self.codes
    }

    /// The stored form of every code for `user`. A code whose lookup would repeat one of the
    /// set's is drawn again first (with argon2id's 16-bit prefixes that happens to about one set
    /// in 1,500), so the codes to show are read from `self` after this call.
    pub(crate) fn records(
        &mut self,
        keys: &Keyring,
        user: &str,
        hashing: BackupCodeHashing,
    ) -> Result<Vec<BackupCodeRecord>, Error> {
        let mut lookups: Vec<(Secret, Vec<u8>)> = Vec::with_capacity(self.codes.len());
        for i in 0..self.codes.len() {
            loop {
                let code = self.codes.get(i).ok_or(Error::MalformedCode)?;
                let canonical = canonical(code.expose()).ok_or(Error::MalformedCode)?;
                let lookup = match hashing {
                    BackupCodeHashing::Hmac => full_lookup(keys, user, &canonical),
                    BackupCodeHashing::Argon2id => short_lookup(keys, user, &canonical),
                };
                if !lookups.iter().any(|(_, l)| *l == lookup) {
                    lookups.push((canonical, lookup));
                    break;
                }
                let fresh = loop {
                    let c = generate_code();
                    if !self.codes.contains(&c) {
                        break c;
                    }
                };
                if let Some(slot) = self.codes.get_mut(i) {
                    *slot = fresh;
                }
            }
        }
        lookups
            .into_iter()
            .map(|(canonical, lookup)| {
                let verifier = match hashing {
                    BackupCodeHashing::Hmac => None,
                    BackupCodeHashing::Argon2id => {
                        Some(argon2_hash(canonical.expose().as_bytes())?)
                    }
                };
                Ok(BackupCodeRecord::new(lookup, verifier))
            })
            .collect()
    }
}

fn generate_code() -> Secret {
    let n = OsRng.next_u64() & ((1u64 << 60) - 1);
    let mut s = String::with_capacity(CODE_CHARS + 2);
    for i in 0..CODE_CHARS {
        if i == 4 || i == 8 {
            s.push('-');
        }
        let shift = 5 * (CODE_CHARS - 1 - i);
        let idx = ((n >> shift) & 31) as usize;
        s.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'0')));
    }
    Secret::new(s)
}

/// The canonical 12-character form of a backup code typed by a user, if it is one.
///
/// Input must already be normalised (ASCII, upper case, no spaces or dashes).
pub(crate) fn canonical(input: &str) -> Option<Secret> {
    let cleaned: String = input.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if cleaned.len() != CODE_CHARS {
        return None;
    }
    let mut out = String::with_capacity(CODE_CHARS);
    for c in cleaned.chars() {
        let c = match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        out.push(c);
    }
    Some(Secret::new(out))
}

fn full_lookup(keys: &Keyring, user: &str, canonical: &Secret) -> Vec<u8> {
    keys.mac(&[
        b"backup code",
        user.as_bytes(),
        canonical.expose().as_bytes(),
    ])
    .to_vec()
}

fn short_lookup(keys: &Keyring, user: &str, canonical: &Secret) -> Vec<u8> {
    let mut v = full_lookup(keys, user, canonical);
    v.truncate(ARGON2_LOOKUP_LEN);
    v
}

fn check_verifier(canonical: &Secret, verifier: &str) -> bool {
    argon2_verify(canonical.expose().as_bytes(), verifier)
}

impl TwoFactorService {
    /// Consumes a backup code and returns how many unused codes remain, or `None` when the code
    /// is not an unused code of the user's. With argon2id-stored codes, the lookup prefix finds
    /// the candidate and one argon2 run checks it.
    pub(crate) async fn redeem_backup(
        &self,
        user: &str,
        canonical: &Secret,
        now: Timestamp,
    ) -> Result<Option<u32>, Error> {
        let keys = &self.inner.keys;
        let store = &self.inner.enrollments;
        match self.inner.policy.backup_code_hashing {
            BackupCodeHashing::Hmac => {
                let lookup = full_lookup(keys, user, canonical);
                Ok(store.redeem_backup_code(user, &lookup, now).await?)
            }
            BackupCodeHashing::Argon2id => {
                let full = full_lookup(keys, user, canonical);
                let mut found = None;
                for len in [ARGON2_LOOKUP_LEN, LEGACY_ARGON2_LOOKUP_LEN] {
                    let lookup = full.get(..len).unwrap_or(&full).to_vec();
                    if let Some(record) = store.find_backup_code(user, &lookup).await? {
                        found = Some((lookup, record));
                        break;
                    }
                }
                let Some((lookup, found)) = found else {
                    return Ok(None);
                };
                let ok = found
                    .verifier
                    .as_deref()
                    .is_some_and(|v| check_verifier(canonical, v));
                if !ok {
                    return Ok(None);
                }
                Ok(store.redeem_backup_code(user, &lookup, now).await?)
            }
        }
    }
}

impl TwoFactorService {
    /// [`BackupCodes::regenerate`](crate::service::BackupCodes::regenerate).
    pub(crate) async fn regenerate_backup_codes(
        &self,
        user: &str,
        code: &str,
    ) -> Result<Vec<Secret>, Error> {
        check_user(user)?;
        let code = Self::step_up_answer(code)?;
        let policy = &self.inner.policy;
        let now = self.now();
        let (rec, rev) = self.load(user).await?;
        if !rec.is_enabled() {
            return Err(Error::NotEnrolled);
        }
        let action = Some(SecurityAction::RegenerateBackupCodes);
        self.step_up(user, (&rec, rev), &code, action, None, now)
            .await?;
        // Trusted devices go first: when that fails, nothing has changed.
        self.revoke_devices_from(user, Some((rec.clone(), rev)))
            .await?;
        let mut set = BackupCodeSet::generate(policy.backup_code_count as usize);
        let records = set.records(&self.inner.keys, user, policy.backup_code_hashing)?;
        self.inner
            .enrollments
            .replace_backup_codes(user, &records, now)
            .await?;
        let ended = self.end_challenges(user).await;
        self.event(Event::BackupCodesRegenerated {
            user: user.to_owned(),
        });
        let to = rec.email.as_ref().map(|e| e.address.as_str());
        self.notify(user, to, MailContent::BackupCodesRegenerated)
            .await;
        ended.map(|()| set.codes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_12_crockford_chars_in_three_groups() {
        let set = BackupCodeSet::generate(50);
        for c in set.codes() {
            let s = c.expose();
            assert_eq!(s.len(), 14);
            let parts: Vec<&str> = s.split('-').collect();
            assert_eq!(parts.len(), 3);
            assert!(parts.iter().all(|p| p.len() == 4));
            assert!(s
                .bytes()
                .filter(|b| *b != b'-')
                .all(|b| ALPHABET.contains(&b)));
        }
    }

    #[test]
    fn canonical_forgives_case_and_confusables() {
        assert_eq!(
            canonical("abcd-efgh-jkmn").unwrap().expose(),
            "ABCDEFGHJKMN"
        );
        assert_eq!(canonical("OIL0OIL0OIL0").unwrap().expose(), "011001100110");
        assert!(canonical("ABCDEFGHJKMU").is_none()); // U is not Crockford
        assert!(canonical("ABCDEFGHJKM").is_none());
        assert!(canonical("ABCDEFGHJKMNP").is_none());
    }

    #[test]
    fn records_hold_no_code() {
        let keys = Keyring::generate();
        let mut set = BackupCodeSet::generate(10);
        let recs = set.records(&keys, "u", BackupCodeHashing::Hmac).unwrap();
        for (code, rec) in set.codes().iter().zip(&recs) {
            let plain = canonical(code.expose()).unwrap();
            assert_eq!(rec.lookup.len(), 32);
            assert!(!rec
                .lookup
                .windows(12)
                .any(|w| w == plain.expose().as_bytes()));
        }
    }

    #[test]
    fn argon2_lookups_are_16_bit_prefixes_unique_within_a_set() {
        let keys = Keyring::generate();
        let mut set = BackupCodeSet::generate(32);
        let recs = set
            .records(&keys, "u", BackupCodeHashing::Argon2id)
            .unwrap();
        for (i, (code, rec)) in set.codes().iter().zip(&recs).enumerate() {
            assert_eq!(rec.lookup.len(), 2);
            assert!(recs[..i].iter().all(|r| r.lookup != rec.lookup));
            let plain = canonical(code.expose()).unwrap();
            assert!(check_verifier(&plain, rec.verifier.as_deref().unwrap()));
        }
        // A prefix names many codes: among 4,096 random codes some share one (about 128 pairs
        // are expected), so a prefix confirms no guess without an argon2 run.
        let mut seen = std::collections::HashSet::new();
        let shared = (0..4096)
            .map(|_| short_lookup(&keys, "u", &canonical(generate_code().expose()).unwrap()))
            .filter(|l| !seen.insert(l.clone()))
            .count();
        assert!(shared > 0);
    }
}
