//! Checks of what a host passes in: user ids and email addresses.

use crate::error::Error;

pub(crate) fn check_user(user: &str) -> Result<(), Error> {
    if user.is_empty() || user.len() > 256 || user.chars().any(char::is_control) {
        return Err(Error::InvalidInput("user id must be 1 to 256 characters"));
    }
    Ok(())
}

pub(crate) fn check_address(address: &str) -> Result<(), Error> {
    let ok = address.len() <= 254
        && address.is_ascii()
        && !address
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        && !address.contains(['<', '>', '"', ',', ';'])
        && matches!(address.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput("not a valid email address"))
    }
}
