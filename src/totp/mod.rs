//! TOTP (RFC 6238): secrets, codes, otpauth URIs (Key Uri Format) and QR codes.
//!
//! Codes are computed here from a pre-keyed HMAC state (RFC 4226 §5.3 dynamic truncation): the
//! key schedule of the HMAC runs once per verification and each step of the window only clones
//! that state. This module adds what a server needs around it: secrets from the OS CSPRNG, a
//! verification window with replay protection (the caller records the accepted step), URIs that
//! every authenticator app reads (and a parser for them), and QR rendering. The RFC 4226 and
//! RFC 6238 test vectors in `tests/rfc_vectors.rs` pin the output.

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
