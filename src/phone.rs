//! [`PhoneNumber`]: a validated E.164 number for the text channel, masked when printed.
//!
//! The parser is strict and our own: after spaces and dashes are dropped, a number is `+`
//! followed by 8 to 15 ASCII digits, the first not zero (ITU-T E.164 allows at most 15 digits,
//! and no country code starts with 0). Anything else is a [`PhoneError`], never a panic.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The fewest digits accepted after the `+`.
pub const MIN_PHONE_DIGITS: usize = 8;
/// The most digits accepted after the `+` (E.164).
pub const MAX_PHONE_DIGITS: usize = 15;
/// Input longer than this (in bytes, before normalising) is refused unread.
const MAX_INPUT: usize = 64;

pub(crate) use crate::error::PhoneError;

/// A phone number in E.164 form (`+491701234567`), for the text channel.
///
/// A phone number is personal data: `Debug` and `Display` print it masked (`+49•••••••567`:
/// the first two and last three digits), so it can appear in logs. [`as_e164`](Self::as_e164)
/// gives the whole number, for the [`TextSender`](crate::text::TextSender) only. It serializes as
/// the E.164 text and deserializes through the same parser.
///
/// ```
/// use twofactor::{error::PhoneError, text::PhoneNumber};
///
/// let n = PhoneNumber::parse("+49 170 123-4567")?;
/// assert_eq!(n.as_e164(), "+491701234567");
/// assert_eq!(n.to_string(), "+49•••••••567");
/// assert_eq!(format!("{n:?}"), "PhoneNumber(+49•••••••567)");
/// assert_eq!(PhoneNumber::parse("0170 1234567"), Err(PhoneError::MissingPlus));
/// assert_eq!(PhoneError::TooShort.code(), "phone_too_short");
/// # Ok::<(), PhoneError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses `input`, dropping spaces and dashes.
    ///
    /// # Errors
    /// A [`PhoneError`] saying what is wrong.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        if input.len() > MAX_INPUT {
            return Err(PhoneError::TooLong);
        }
        let mut chars = input.chars().filter(|c| !matches!(c, ' ' | '-'));
        match chars.next() {
            None => return Err(PhoneError::Empty),
            Some('+') => {}
            Some(_) => return Err(PhoneError::MissingPlus),
        }
        let mut out = String::with_capacity(MAX_PHONE_DIGITS + 1);
        out.push('+');
        for c in chars {
            if !c.is_ascii_digit() {
                return Err(PhoneError::NotDigits);
            }
            if out.len() > MAX_PHONE_DIGITS {
                return Err(PhoneError::TooLong);
            }
            out.push(c);
        }
        let digits = out.len() - 1;
        if digits < MIN_PHONE_DIGITS {
            return Err(PhoneError::TooShort);
        }
        if out.as_bytes().get(1) == Some(&b'0') {
            return Err(PhoneError::LeadingZero);
        }
        Ok(PhoneNumber(out))
    }

    /// The whole number in E.164 form. Personal data: hand it to the sender, do not log it.
    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// The masked form: `+`, the first two digits, a `•` per hidden digit, the last three.
    pub fn masked(&self) -> String {
        let digits = self.0.get(1..).unwrap_or_default();
        let n = digits.chars().count();
        digits
            .chars()
            .enumerate()
            .fold(String::from("+"), |mut s, (i, c)| {
                s.push(if i < 2 || i + 3 >= n { c } else { '•' });
                s
            })
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(n: PhoneNumber) -> String {
        n.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises() {
        for (input, want) in [
            ("+491701234567", "+491701234567"),
            ("+49 170 123-4567", "+491701234567"),
            (" +1-202-555-0143 ", "+12025550143"),
            ("+12345678", "+12345678"),
            ("+123456789012345", "+123456789012345"),
        ] {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().as_e164(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn refuses_with_the_reason() {
        for (input, want) in [
            ("", PhoneError::Empty),
            (" - ", PhoneError::Empty),
            ("491701234567", PhoneError::MissingPlus),
            ("00491701234567", PhoneError::MissingPlus),
            ("+", PhoneError::TooShort),
            ("+1234567", PhoneError::TooShort),
            ("+1234567890123456", PhoneError::TooLong),
            ("+0491701234567", PhoneError::LeadingZero),
            ("+49(170)1234567", PhoneError::NotDigits),
            ("+49.170.1234567", PhoneError::NotDigits),
            ("+49١٧٠١٢٣٤٥٦٧", PhoneError::NotDigits),
            ("+4917012345+67", PhoneError::NotDigits),
            ("+49\n1701234567", PhoneError::NotDigits),
        ] {
            assert_eq!(PhoneNumber::parse(input), Err(want), "{input:?}");
        }
        assert_eq!(
            PhoneNumber::parse(&"1".repeat(10_000)),
            Err(PhoneError::TooLong)
        );
        assert_eq!(
            PhoneNumber::parse(&format!("+{}", " ".repeat(100))),
            Err(PhoneError::TooLong)
        );
    }

    #[test]
    fn printed_masked() {
        let n = PhoneNumber::parse("+491701234123").unwrap();
        assert_eq!(n.to_string(), "+49•••••••123");
        assert_eq!(format!("{n:?}"), "PhoneNumber(+49•••••••123)");
        let short = PhoneNumber::parse("+12345678").unwrap();
        assert_eq!(short.to_string(), "+12•••678");
        assert!(!format!("{short:?}").contains("345"));
    }

    #[test]
    fn serde_goes_through_the_parser() {
        let n = PhoneNumber::parse("+491701234567").unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"+491701234567\"");
        assert_eq!(serde_json::from_str::<PhoneNumber>(&json).unwrap(), n);
        assert!(serde_json::from_str::<PhoneNumber>("\"12\"").is_err());
    }

    #[test]
    fn codes_are_distinct() {
        let all = [
            PhoneError::Empty,
            PhoneError::MissingPlus,
            PhoneError::NotDigits,
            PhoneError::TooShort,
            PhoneError::TooLong,
            PhoneError::LeadingZero,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
        assert!(all.iter().all(|e| e.code().starts_with("phone_")));
    }
}
