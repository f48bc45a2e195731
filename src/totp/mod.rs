//! TOTP (RFC 6238): secrets, codes, otpauth URIs (Key Uri Format) and QR codes.
//!
//! Codes are computed here from a pre-keyed HMAC state (RFC 4226 §5.3 dynamic truncation): the
//! key schedule of the HMAC runs once per verification and each step of the window only clones
//! that state. This module adds what a server needs around it: secrets from the OS CSPRNG, a
//! verification window with replay protection (the caller records the accepted step), URIs that
//! every authenticator app reads (and a parser for them), and QR rendering. The RFC 4226 and
//! RFC 6238 test vectors in `tests/rfc_vectors.rs` pin the output.
//!
//! The service runs all of this for its users ([`TwoFactorService::totp`](crate::TwoFactorService::totp));
//! the parts are public for tools and tests:
//!
//! ```
//! use twofactor::totp::{otpauth_uri, OtpAuthUri, TotpParams, TotpSecret, TotpVerifier};
//!
//! let secret = TotpSecret::generate(20)?;
//! let uri = otpauth_uri("Acme", "alice@example.com", &secret, TotpParams::default())?;
//! assert_eq!(OtpAuthUri::parse(&uri)?.secret().as_bytes(), secret.as_bytes());
//!
//! // A code from the app, checked with one step of skew either way: the match is the step,
//! // which the caller records so the code cannot be replayed.
//! let verifier = TotpVerifier::new(&secret, TotpParams::default())?;
//! let now = 1_700_000_000;
//! let code = verifier.code(now - 30);
//! assert_eq!(verifier.verify(now, 1, &code), Some(now / 30 - 1));
//! assert_eq!(verifier.verify(now + 60, 1, &code), None);
//! # Ok::<(), twofactor::Error>(())
//! ```

mod math;
mod qr;
mod setup;
mod uri;

pub(crate) use math::matching_step;
pub use math::{totp_code, TotpAlgorithm, TotpParams, TotpSecret, TotpVerifier};
#[cfg(feature = "qr-png")]
pub use qr::qr_png;
pub use qr::qr_svg;
pub use setup::{TotpSetup, TotpSetupResponse};
pub(crate) use uri::usable_label;
pub use uri::{otpauth_uri, OtpAuthUri};
