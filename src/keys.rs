//! The [`Keyring`]: one 32-byte master secret, HKDF-derived MAC and AEAD keys, key ids, rotation.
//!
//! The MAC key keys every stored code hash (`HMAC-SHA256`), so a leaked store without the key gives
//! nothing to brute-force. The AEAD key seals TOTP secrets with XChaCha20-Poly1305; the envelope
//! names the key id, so after a rotation the previous key still opens old secrets, and a successful
//! verification re-seals them under the current key.
//!
//! # Rotation that loses nothing
//!
//! Two lineages, rotated on their own schedules:
//!
//! - The **index key** names records: user key tags, challenge ids, the keyed hashes of codes
//!   and backup codes. It is the MAC key of the first master secret of a ring and does not
//!   change with [`Keyring::rotate_to`], so after a rotation every backup code, pending code, open
//!   challenge, replay mark and lock is still found under the same name: nothing is lost and
//!   nothing re-opens.
//! - The **sealing key** (the current master's AEAD key) seals TOTP secrets and rotates with
//!   [`Keyring::rotate_to`]. Old sealing keys stay in the ring to open what they sealed; a
//!   secret is re-sealed under the current key at the user's next TOTP check, or at once by
//!   [`Totp::reseal_secret`](crate::service::Totp::reseal_secret).
//!   [`Status::totp_key_id`](crate::account::Status::totp_key_id) tells which key a user's secret is
//!   sealed under: once no user reports an old key id (and a challenge lifetime and a TOTP setup
//!   lifetime have passed since the last re-seal, for the copies those hold), that key can leave
//!   the ring.
//!
//! A host keeps the rotation in its configuration: the first master secret, then each later one,
//! `Keyring::from_base64(&first)?.rotate_to(&Keyring::from_base64(&second)?)`.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::Error;

type HmacSha256 = Hmac<Sha256>;

const ENVELOPE_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

/// The keys derived from one master secret.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct KeySet {
    id: [u8; KEY_ID_LEN],
    mac: [u8; 32],
    aead: [u8; 32],
    /// HMAC-SHA256 keyed once with `mac`, cloned for each use (the `hmac` crate offers no way to
    /// wipe its inner state; the raw key above is wiped).
    #[zeroize(skip)]
    mac_state: HmacSha256,
}

impl KeySet {
    fn derive(master: &[u8; 32]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"twofactor keyring v1"), master);
        let mut id = [0; KEY_ID_LEN];
        let mut mac = [0; 32];
        let mut aead = [0; 32];
        // Expanding 32 or 4 bytes from HKDF-SHA256 cannot fail (the limit is 255 * 32 bytes).
        let _ = hk.expand(b"key id", &mut id);
        let _ = hk.expand(b"mac key", &mut mac);
        let _ = hk.expand(b"aead key", &mut aead);
        let mac_state = hmac_with(&mac);
        KeySet {
            id,
            mac,
            aead,
            mac_state,
        }
    }
}

/// The keys of a `twofactor` deployment: a current key and, during a rotation, older ones.
///
/// Build it from a 32-byte master secret kept outside the store (an environment variable, a
/// secrets manager). `Debug` shows only key ids.
///
/// ```
/// use twofactor::Keyring;
///
/// let current = Keyring::generate();
/// let b64 = Keyring::generate_base64(); // what you would put in TWOFACTOR_KEY
/// let keys = Keyring::from_base64(&b64).unwrap();
/// assert_ne!(keys.key_id(), current.key_id());
/// // Rotation: the new key seals, the old one still opens.
/// let rotated = current.rotate_to(&keys);
/// assert_eq!(rotated.key_id(), keys.key_id());
/// ```
#[derive(Clone)]
pub struct Keyring {
    current: KeySet,
    previous: Vec<KeySet>,
    /// The first master's keys: its MAC key names every record (see the module docs).
    index: KeySet,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_id", &self.key_id())
            .field("index_key_id", &hex(&self.index.id))
            .field(
                "previous",
                &self.previous.iter().map(|k| hex(&k.id)).collect::<Vec<_>>(),
            )
            .field("secrets", &"[redacted]")
            .finish()
    }
}

impl Keyring {
    /// A keyring from a 32-byte master secret.
    pub fn new(master: [u8; 32]) -> Self {
        let mut master = master;
        let current = KeySet::derive(&master);
        master.zeroize();
        Keyring {
            index: current.clone(),
            current,
            previous: Vec::new(),
        }
    }

    /// A keyring from a master secret encoded in standard or URL-safe base64 (padded or not).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the text is not base64 of exactly 32 bytes. The message never
    /// contains the text.
    pub fn from_base64(text: &str) -> Result<Self, Error> {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let text = text.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| Error::InvalidConfig("the master key is not valid base64".into()))?;
        let bytes: [u8; 32] = decoded.as_slice().try_into().map_err(|_| {
            Error::InvalidConfig(format!(
                "the master key must be 32 bytes, got {}",
                decoded.len()
            ))
        })?;
        Ok(Keyring::new(bytes))
    }

    /// A keyring with a fresh random master secret (for tests and demos: it is not saved anywhere).
    pub fn generate() -> Self {
        let mut master = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut master);
        Keyring::new(master)
    }

    /// A fresh random master secret as base64, to store in your configuration.
    pub fn generate_base64() -> String {
        let mut master = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(master.as_mut());
        base64::engine::general_purpose::STANDARD.encode(master.as_ref())
    }

    /// A keyring that seals under `next`'s key, still opens everything `self` opens, and keeps
    /// `self`'s index key, so every stored record keeps its name (see the module docs).
    pub fn rotate_to(&self, next: &Keyring) -> Keyring {
        let mut previous = vec![self.current.clone()];
        previous.extend(self.previous.iter().cloned());
        previous.retain(|k| k.id != next.current.id);
        Keyring {
            current: next.current.clone(),
            previous,
            index: self.index.clone(),
        }
    }

    /// The id of the index key that names records, as 8 hex digits: the first master's.
    pub fn index_key_id(&self) -> String {
        hex(&self.index.id)
    }

    /// The ids of every sealing key the ring can open with, current first.
    pub fn key_ids(&self) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(|k| hex(&k.id))
            .collect()
    }

    /// The current key id, as 8 hex digits.
    pub fn key_id(&self) -> String {
        hex(&self.current.id)
    }

    /// A pre-keyed HMAC-SHA256 over length-prefixed parts, under the index key.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.index.mac_state.clone();
        for p in parts {
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Seals `secret` for `user` under the current key.
    pub(crate) fn seal(&self, user: &str, secret: &[u8]) -> Result<Vec<u8>, Error> {
        let ks = &self.current;
        let cipher = XChaCha20Poly1305::new((&ks.aead).into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = aad(&ks.id, user);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Crypto)?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&ks.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens an envelope sealed for `user`. Returns the secret and whether it was sealed under an
    /// older key (and so should be re-sealed).
    pub(crate) fn open(
        &self,
        user: &str,
        envelope: &[u8],
    ) -> Result<(Zeroizing<Vec<u8>>, bool), Error> {
        if envelope.len() < HEADER_LEN + TAG_LEN {
            return Err(Error::Crypto);
        }
        let (header, ct) = envelope.split_at(HEADER_LEN);
        let (version, rest) = header.split_at(1);
        let (id, nonce) = rest.split_at(KEY_ID_LEN);
        if version != [ENVELOPE_VERSION] {
            return Err(Error::Crypto);
        }
        let (ks, old) = if id == self.current.id {
            (&self.current, false)
        } else {
            let ks = self
                .previous
                .iter()
                .find(|k| k.id == id)
                .ok_or(Error::Crypto)?;
            (ks, true)
        };
        let cipher = XChaCha20Poly1305::new((&ks.aead).into());
        let aad = aad(&ks.id, user);
        let pt = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| Error::Crypto)?;
        Ok((Zeroizing::new(pt), old))
    }
}

/// The id of the key an envelope was sealed under, as 8 hex digits.
pub(crate) fn envelope_key_id(envelope: &[u8]) -> Option<String> {
    envelope.get(1..1 + KEY_ID_LEN).map(hex)
}

fn aad(key_id: &[u8], user: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + user.len());
    aad.extend_from_slice(b"twofactor totp secret v1");
    aad.extend_from_slice(key_id);
    aad.extend_from_slice(&(user.len() as u64).to_be_bytes());
    aad.extend_from_slice(user.as_bytes());
    aad
}

/// HMAC-SHA256 keyed with `key`.
fn hmac_with(key: &[u8; 32]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this never falls back.
    <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    fn nibble(n: u8) -> char {
        char::from(if n < 10 { b'0' + n } else { b'a' + (n - 10) })
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(nibble(b >> 4));
        s.push(nibble(b & 0x0f));
    }
    s
}
