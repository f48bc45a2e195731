//! `Keyring::open` on arbitrary bytes and on mutated real envelopes: never a panic, and an
//! envelope opens only exactly as sealed, for the user it was sealed for.
//!
//! The keyring has a current key and a previous one (a rotation); the real envelopes are one
//! sealed under each. The first input byte picks the mode: arbitrary bytes as an envelope, or a
//! real envelope and its user changed by edits read from the rest of the input.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use twofactor::testing::fuzz::{open, seal};
use twofactor::Keyring;

const USER: &str = "alice@example.com";
const SECRET: &[u8] = b"0123456789abcdef0123";

struct Fixture {
    keys: Keyring,
    /// Sealed under the current key, and under the previous one.
    envelopes: [Vec<u8>; 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let old = Keyring::new([1; 32]);
        let keys = old.rotate_to(&Keyring::new([2; 32]));
        let envelopes = [
            seal(&keys, USER, SECRET).expect("seal"),
            seal(&old, USER, SECRET).expect("seal"),
        ];
        Fixture { keys, envelopes }
    })
}

/// Applies edits of three bytes each (operation, position, value) to the envelope or the user.
fn mutate(envelope: &mut Vec<u8>, user: &mut Vec<u8>, edits: &[u8]) {
    for edit in edits.chunks_exact(3) {
        let (op, at, v) = (edit[0], usize::from(edit[1]), edit[2]);
        let target = if op & 0x80 != 0 {
            &mut *user
        } else {
            &mut *envelope
        };
        let len = target.len();
        match op & 0x07 {
            0 | 1 => {
                if len > 0 {
                    target[at % len] ^= v;
                }
            }
            2 => target.truncate(at % (len + 1)),
            3 => target.insert(at % (len + 1), v),
            4 => {
                if len > 0 {
                    target.remove(at % len);
                }
            }
            5 => {
                if len > 0 {
                    target[at % len] = v;
                }
            }
            6 => {
                // Swap two bytes.
                if len > 0 {
                    target.swap(at % len, usize::from(v) % len);
                }
            }
            _ => target.extend_from_slice(&[v; 16][..usize::from(at % 17).min(16)]),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // Arbitrary bytes: whatever opens must say truthfully which key sealed it.
        if let Ok((secret, old)) = open(&f.keys, USER, rest) {
            assert!(rest.len() >= 1 + 4 + 24 + 16);
            assert_eq!(old, rest[1..5] != f.envelopes[0][1..5], "{rest:?}");
            // Open for one user only.
            assert!(open(&f.keys, "bob", rest).is_err());
            drop(secret);
        }
        return;
    }
    let which = usize::from(mode >> 1 & 1);
    let original = &f.envelopes[which];
    let mut envelope = original.clone();
    let mut user = USER.as_bytes().to_vec();
    mutate(&mut envelope, &mut user, rest);
    let Ok(user) = String::from_utf8(user) else {
        return;
    };
    let result = open(&f.keys, &user, &envelope);
    if envelope == *original && user == USER {
        let (secret, old) = result.expect("the real envelope opens");
        assert_eq!(secret, SECRET);
        assert_eq!(old, which == 1);
    } else {
        assert!(
            result.is_err(),
            "a mutated envelope opened: {envelope:?} for {user:?}"
        );
    }
});
