//! The decoders of stored records, on arbitrary bytes: never a panic, and whatever decodes
//! encodes again to what was read (or to its one canonical form) and decodes to the same value.
//!
//! The first input byte picks the decoder: the challenge record, the code record, the user
//! state, the memory store's challenge entry, the default layout's user record, or the JSON of
//! an enrolment record. A user state of version 1 (before the epoch) encodes to version 2.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor::store::flow::{UserState, USER_STATE_LEN, USER_STATE_V1_LEN};
use twofactor::testing::fuzz::{
    challenge_record, code_record, default_user_record, memory_challenge_entry,
    memory_challenge_entry_bytes, CHALLENGE_KNOWN_BITS,
};
use twofactor::{clock::Timestamp, store::EnrollmentRecord};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            if let Ok(encoded) = challenge_record(bytes) {
                // The same bytes, except the methods byte: unknown bits are dropped.
                let mut expected = bytes.to_vec();
                expected[1] &= CHALLENGE_KNOWN_BITS;
                assert_eq!(encoded, expected);
                assert_eq!(challenge_record(&encoded).ok(), Some(encoded));
            }
        }
        1 => {
            if let Ok(encoded) = code_record(bytes) {
                assert_eq!(encoded, bytes);
            }
        }
        2 => {
            if let Ok(state) = UserState::from_bytes(bytes) {
                // Version 2 encodes to its own length; version 1 (no epoch) to version 2.
                let encoded = state.to_bytes();
                assert_eq!(encoded.len(), USER_STATE_LEN);
                if bytes.len() == USER_STATE_V1_LEN {
                    assert_eq!(state.epoch, 0);
                } else {
                    assert_eq!(encoded.len(), bytes.len());
                }
                assert_eq!(UserState::from_bytes(&encoded).ok(), Some(state));
            }
        }
        3 => {
            let expires_at = Timestamp::from_unix_secs(1_700_000_000);
            if let Ok(entry) = memory_challenge_entry(bytes, expires_at) {
                assert_eq!(entry.expires_at, expires_at);
                let encoded = memory_challenge_entry_bytes(&entry);
                assert_eq!(encoded, bytes);
                assert_eq!(
                    memory_challenge_entry(&encoded, expires_at).ok(),
                    Some(entry)
                );
            }
        }
        4 => {
            if let Ok((state, run)) = default_user_record(bytes) {
                let mut encoded = state.to_bytes().to_vec();
                encoded.extend_from_slice(&run.to_be_bytes());
                // A version-1 state (no epoch) encodes to version 2.
                if bytes.len() != USER_STATE_V1_LEN + 8 {
                    assert_eq!(encoded.len(), bytes.len());
                }
                assert_eq!(default_user_record(&encoded).ok(), Some((state, run)));
            }
        }
        _ => {
            if let Ok(record) = serde_json::from_slice::<EnrollmentRecord>(bytes) {
                let json = serde_json::to_vec(&record).expect("a record serialises");
                let again: EnrollmentRecord =
                    serde_json::from_slice(&json).expect("serialised JSON reads back");
                assert_eq!(again, record);
            }
        }
    }
});
