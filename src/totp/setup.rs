//! TOTP enrolment in the service: [`Totp::start_setup`](crate::service::Totp::start_setup) and
//! [`Totp::confirm_setup`](crate::service::Totp::confirm_setup), the TOTP check with replay protection used by every
//! flow, and re-sealing a secret after a key rotation.

use crate::backup::BackupCodeSet;
use crate::clock::Timestamp;
use crate::code::{self, Secret};
use crate::error::Error;
use crate::events::Event;
use crate::input::check_user;
use crate::keyspace::UserKeys;
use crate::mail::MailContent;
use crate::method::Method;
use crate::service::TwoFactorService;
use crate::store::{PendingTotp, TotpRecord};
use crate::totp::TotpAlgorithm;
use crate::totp::{self, TotpParams, TotpSecret};

/// What apps that ignore `algorithm=` and `digits=` use (the period is the requested one).
const SHA1_FALLBACK: TotpParams = TotpParams {
    algorithm: TotpAlgorithm::Sha1,
    digits: 6,
    period: 30,
};

/// What a TOTP setup shows the user, once: the secret, its otpauth URI and the backup codes.
/// The QR code is rendered from the URI only when asked for ([`qr_svg`](Self::qr_svg),
/// [`qr_png`](Self::qr_png)), so a setup costs no rendering the host does not use.
pub struct TotpSetup {
    secret: Secret,
    uri: Secret,
    backup_codes: BackupCodeSet,
}

impl std::fmt::Debug for TotpSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetup([redacted])")
    }
}

impl TotpSetup {
    /// The secret as unpadded base32, for manual entry.
    ///
    /// **Security warning:** show it only to the enrolling user, once.
    pub fn secret_base32(&self) -> &str {
        self.secret.expose()
    }

    /// The `otpauth://` URI (it contains the secret).
    pub fn otpauth_uri(&self) -> &str {
        self.uri.expose()
    }

    /// The QR code of the URI as an SVG document (it contains the secret), rendered now.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the URI is too long for a QR code (an account name within
    /// the accepted 256 bytes always fits).
    pub fn qr_svg(&self) -> Result<String, Error> {
        totp::qr_svg(self.uri.expose())
    }

    /// The QR code of the URI as PNG bytes (it contains the secret), rendered now. Needs the
    /// `qr-png` feature (default).
    ///
    /// # Errors
    /// As [`qr_svg`](Self::qr_svg).
    #[cfg(feature = "qr-png")]
    #[cfg_attr(docsrs, doc(cfg(feature = "qr-png")))]
    pub fn qr_png(&self) -> Result<Vec<u8>, Error> {
        totp::qr_png(self.uri.expose())
    }

    /// The backup codes that become valid when the setup is confirmed.
    pub fn backup_codes(&self) -> &[Secret] {
        self.backup_codes.codes()
    }

    /// The setup as a response body for the enrolling user: the secret, the otpauth URI and the
    /// backup codes, serializable; add a QR code with
    /// [`with_qr_svg`](TotpSetupResponse::with_qr_svg) or
    /// [`with_qr_png`](TotpSetupResponse::with_qr_png).
    ///
    /// `TotpSetup` itself is not `Serialize`, so its secrets reach a wire format only through
    /// this explicit step.
    pub fn to_response(&self) -> TotpSetupResponse {
        TotpSetupResponse {
            secret: self.secret.expose().to_owned(),
            otpauth_uri: self.uri.expose().to_owned(),
            backup_codes: self
                .backup_codes
                .codes()
                .iter()
                .map(|c| c.expose().to_owned())
                .collect(),
            qr_svg: None,
            qr_png: None,
        }
    }
}

/// A TOTP setup as the response to the enrolling user, from [`TotpSetup::to_response`].
///
/// Serializes as `{"secret": …, "otpauth_uri": …, "backup_codes": […]}`, plus `"qr_svg"` (an SVG
/// document) and `"qr_png"` (a `data:image/png;base64,…` URI) when asked for. Every field is a
/// secret: send it once, over TLS, to that user only. `Debug` is redacted and the fields are
/// zeroized on drop.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), twofactor::Error> {
/// # let tf = twofactor::TwoFactorService::builder().issuer("Acme").keys(twofactor::Keyring::generate())
/// #     .otp_store(twofactor::store::MemoryOtpStore::new()).enrollments(twofactor::store::MemoryEnrollmentStore::new())
/// #     .mailer(twofactor::testing::RecordingMailer::new()).build()?;
/// let setup = tf.totp().start_setup("user-42", "alice@example.com").await?;
/// let body = serde_json::to_value(setup.to_response().with_qr_svg()?).unwrap();
/// assert!(body["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
/// assert_eq!(body["backup_codes"].as_array().unwrap().len(), 10);
/// assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
/// assert!(body.get("qr_png").is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, serde::Serialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
#[non_exhaustive]
pub struct TotpSetupResponse {
    /// The secret as unpadded base32, for manual entry.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The backup codes, as shown to the user (`XXXX-XXXX-XXXX`).
    pub backup_codes: Vec<String>,
    /// The QR code of the URI as an SVG document, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
    /// The QR code of the URI as a `data:image/png;base64,…` URI, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_png: Option<String>,
}

impl std::fmt::Debug for TotpSetupResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSetupResponse([redacted])")
    }
}

impl TotpSetupResponse {
    /// Adds the QR code as an SVG document (`qr_svg`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the URI is too long for a QR code.
    pub fn with_qr_svg(mut self) -> Result<Self, Error> {
        self.qr_svg = Some(totp::qr_svg(&self.otpauth_uri)?);
        Ok(self)
    }

    /// Adds the QR code as a PNG in a `data:` URI (`qr_png`), ready for an `<img src>`. Needs
    /// the `qr-png` feature (default).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the URI is too long for a QR code.
    #[cfg(feature = "qr-png")]
    #[cfg_attr(docsrs, doc(cfg(feature = "qr-png")))]
    pub fn with_qr_png(mut self) -> Result<Self, Error> {
        use base64::Engine as _;
        let png = totp::qr_png(&self.otpauth_uri)?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        self.qr_png = Some(format!("data:image/png;base64,{b64}"));
        Ok(self)
    }
}

impl TwoFactorService {
    /// [`Totp::start_setup`](crate::service::Totp::start_setup).
    pub(crate) async fn start_totp_setup(
        &self,
        user: &str,
        account_name: &str,
    ) -> Result<TotpSetup, Error> {
        check_user(user)?;
        let policy = &self.inner.policy;
        let now = self.now();
        let (rec, rev) = self.load(user).await?;
        if rec.totp.is_some() {
            return Err(Error::AlreadyEnrolled);
        }
        self.require_fresh_factor(user, &rec, now).await?;
        let secret = TotpSecret::generate(policy.totp_secret_bytes)?;
        let params = TotpParams {
            algorithm: policy.totp_algorithm,
            digits: policy.totp_digits,
            period: policy.totp_period.as_secs(),
        };
        let uri = Secret::new(totp::otpauth_uri(
            &self.inner.issuer,
            account_name,
            &secret,
            params,
        )?);
        let mut codes = BackupCodeSet::generate(policy.backup_code_count as usize);
        let records = codes.records(&self.inner.keys, user, policy.backup_code_hashing)?;
        let sealed = self.inner.keys.seal(user, secret.as_bytes())?;
        let totp_rec = TotpRecord::new(
            sealed,
            params.algorithm.name(),
            params.digits,
            params.period,
            now,
        );
        let pending =
            PendingTotp::new(totp_rec, records, now.saturating_add(policy.totp_setup_ttl));
        self.update_from(user, Some((rec, rev)), |rec| {
            if rec.totp.is_some() {
                return Err(Error::AlreadyEnrolled);
            }
            rec.pending_totp = Some(pending.clone());
            Ok(true)
        })
        .await?;
        self.event(Event::FactorSetupStarted {
            user: user.to_owned(),
            method: Method::Totp,
        });
        Ok(TotpSetup {
            secret: Secret::new(secret.to_base32()),
            uri,
            backup_codes: codes,
        })
    }

    /// [`Totp::confirm_setup`](crate::service::Totp::confirm_setup).
    pub(crate) async fn confirm_totp_setup(&self, user: &str, code: &str) -> Result<(), Error> {
        check_user(user)?;
        let input = code::normalize(code)?;
        let now = self.now();
        let (rec, rev) = self.load(user).await?;
        if rec.totp.is_some() {
            return Err(Error::AlreadyEnrolled);
        }
        let pending = match &rec.pending_totp {
            Some(p) if p.expires_at > now => p.clone(),
            _ => return Err(Error::NothingPending),
        };
        // A setup started before the account had a factor is not a licence to add one later:
        // once there is a factor, confirming needs a fresh one, as starting would now.
        self.require_fresh_factor(user, &rec, now).await?;
        let keys = self.user_keys(user);
        let (_, fallback) = self
            .confirm_candidates(user, &keys, &pending.totp, &input, now)
            .await?;
        // Install the backup codes first: if saving the record then fails, a retry installs the
        // same set again and nothing is lost.
        self.inner
            .enrollments
            .replace_backup_codes(user, &pending.backup_codes, now)
            .await?;
        let sealed = pending.totp.sealed_secret.clone();
        let email = rec.email.as_ref().map(|e| e.address.clone());
        self.update_from(user, Some((rec, rev)), |rec| {
            match &rec.pending_totp {
                Some(p) if p.totp.sealed_secret == sealed => {}
                _ => return Err(Error::NothingPending),
            }
            let mut totp = pending.totp.clone();
            totp.confirmed_at = Some(now);
            if fallback {
                totp.algorithm = TotpAlgorithm::Sha1.name().to_owned();
                totp.digits = SHA1_FALLBACK.digits;
                totp.sha1_fallback = true;
            }
            rec.totp = Some(totp);
            rec.pending_totp = None;
            rec.last_verified_at = Some(now);
            Ok(true)
        })
        .await?;
        let ended = self.end_challenges(user).await;
        if fallback {
            self.event(Event::TotpSha1Fallback {
                user: user.to_owned(),
                requested: Self::totp_params(&pending.totp)?.algorithm,
                digits: pending.totp.digits,
            });
        }
        self.event(Event::FactorEnabled {
            user: user.to_owned(),
            method: Method::Totp,
        });
        // The factors the account had are told (an email factor is the one that can be).
        let to = email.as_deref();
        self.notify(
            user,
            to,
            MailContent::FactorAdded {
                method: Method::Totp,
            },
        )
        .await;
        ended
    }

    /// Checks a setup's confirmation code: against the requested settings when it has their
    /// digits, and against SHA-1 with 6 digits (same secret and period) when the requested
    /// settings differ and it has 6 digits. Each setting compared opens its own attempt, before
    /// its comparison, so the lock counts every candidate set. Returns the step matched and
    /// whether it matched the SHA-1 fallback (only when the policy allows it).
    async fn confirm_candidates(
        &self,
        user: &str,
        keys: &UserKeys,
        requested: &TotpRecord,
        input: &Secret,
        now: Timestamp,
    ) -> Result<(u64, bool), Error> {
        let params = Self::totp_params(requested)?;
        let fallback = TotpParams {
            period: params.period,
            ..SHA1_FALLBACK
        };
        let check_requested = code::is_numeric(input, params.digits);
        let check_fallback = params != fallback && code::is_numeric(input, fallback.digits);
        if !check_requested && !check_fallback {
            return Err(Error::MalformedCode);
        }
        let sealed = &requested.sealed_secret;
        let mut opened = Vec::with_capacity(2);
        let mut found = None;
        for (params, is_fallback) in [(params, false), (fallback, true)] {
            if !(if is_fallback {
                check_fallback
            } else {
                check_requested
            }) {
                continue;
            }
            let attempt = match self
                .open_attempt(keys, None, Error::NothingPending, now)
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    for a in &opened {
                        self.fail_attempt(user, keys, a, now).await;
                    }
                    return Err(e);
                }
            };
            opened.push(attempt);
            match self.match_totp(user, sealed, params, input, now) {
                Ok(Some((step, _))) => {
                    found = Some((step, is_fallback));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    for a in &opened {
                        self.fail_attempt(user, keys, a, now).await;
                    }
                    return Err(e);
                }
            }
        }
        let refused = match found {
            Some((_, true)) if !self.inner.policy.totp_allow_sha1_fallback => {
                Error::TotpAlgorithmUnsupported {
                    requested: params.algorithm.name(),
                    digits: params.digits,
                }
            }
            Some((step, fallback)) => {
                let Some(last) = opened.last() else {
                    return Err(Error::Internal("no attempt was opened"));
                };
                self.pass_attempt(
                    user,
                    keys,
                    last,
                    (None, Some(step)),
                    Error::NothingPending,
                    now,
                )
                .await?;
                return Ok((step, fallback));
            }
            None => Error::InvalidCode {
                attempts_remaining: None,
            },
        };
        for a in &opened {
            self.fail_attempt(user, keys, a, now).await;
        }
        Err(refused)
    }

    /// The TOTP step `code` matches for the sealed secret, within the skew window, and whether
    /// the secret was sealed under an older key (the caller may re-seal). Stores nothing: the
    /// step is recorded, refusing a replay, when the attempt is settled.
    pub(crate) fn match_totp(
        &self,
        user: &str,
        sealed: &[u8],
        params: TotpParams,
        code: &Secret,
        now: Timestamp,
    ) -> Result<Option<(u64, bool)>, Error> {
        if !code::is_numeric(code, params.digits) {
            return Ok(None);
        }
        let (secret, old_key) = self.inner.keys.open(user, sealed)?;
        let skew = self.inner.policy.totp_skew;
        Ok(
            totp::matching_step(&secret, params, now.as_unix_secs(), skew, code.expose())
                .map(|step| (step, old_key)),
        )
    }

    /// Re-seals a TOTP secret under the current key after a rotation. Best effort: the old
    /// envelope keeps working if this fails.
    pub(crate) async fn reseal(&self, user: &str) {
        if let Err(e) = self.totp().reseal_secret(user).await {
            tracing::warn!(target: "twofactor", error = %e, "re-sealing a TOTP secret failed");
        }
    }

    /// [`Totp::reseal_secret`](crate::service::Totp::reseal_secret).
    pub(crate) async fn reseal_totp_secret(&self, user: &str) -> Result<Option<String>, Error> {
        check_user(user)?;
        let keys = &self.inner.keys;
        let reseal = |sealed: &mut Vec<u8>| -> Result<bool, Error> {
            let (secret, old) = keys.open(user, sealed)?;
            if old {
                *sealed = keys.seal(user, &secret)?;
            }
            Ok(old)
        };
        let rec = self
            .update(user, |rec| {
                let mut changed = false;
                if let Some(totp) = rec.totp.as_mut() {
                    changed |= reseal(&mut totp.sealed_secret)?;
                }
                if let Some(pending) = rec.pending_totp.as_mut() {
                    changed |= reseal(&mut pending.totp.sealed_secret)?;
                }
                Ok(changed)
            })
            .await?;
        Ok(rec
            .totp
            .as_ref()
            .and_then(|t| crate::keys::envelope_key_id(&t.sealed_secret)))
    }
}
