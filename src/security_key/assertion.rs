//! Assertions: the login answer, step-up by key, the signature counter and its clone signal.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use webauthn_rs::prelude::{
    AuthenticationResult, PasskeyAuthentication, RequestChallengeResponse,
    SecurityKeyAuthentication, WebauthnError,
};

use crate::challenge::ChallengeToken;
use crate::clock::Timestamp;
use crate::error::Error;
use crate::events::Event;
use crate::method::{Method, Verified};
use crate::service::TwoFactorService;
use crate::store::{EnrollmentRecord, Revision};

use super::*;

impl TwoFactorService {
    /// The options and state of an assertion ceremony over the user's keys; `None` when the
    /// user has none or security keys are not configured.
    pub(crate) fn start_assertion(
        &self,
        rec: &EnrollmentRecord,
    ) -> Result<Option<(SecurityKeyOptions, Vec<u8>)>, Error> {
        let (Some(rp), Some(policy)) = (
            self.inner.webauthn.as_deref(),
            self.inner.policy.security_keys.as_ref(),
        ) else {
            return Ok(None);
        };
        if rec.security_keys.is_empty() {
            return Ok(None);
        }
        let keys = rec
            .security_keys
            .iter()
            .map(credential)
            .collect::<Result<Vec<_>, _>>()?;
        let refused = |_: WebauthnError| Error::Internal("starting a WebAuthn assertion failed");
        let (options, state): (RequestChallengeResponse, Vec<u8>) = match policy.user_verification {
            UserVerification::Discouraged => {
                let (o, s) = rp
                    .start_securitykey_authentication(&keys)
                    .map_err(refused)?;
                (o, tagged(FLOW_SECURITY_KEY, &s)?)
            }
            UserVerification::Required => {
                let passkeys = keys.iter().map(as_passkey).collect::<Result<Vec<_>, _>>()?;
                let (o, s) = rp
                    .start_passkey_authentication(&passkeys)
                    .map_err(refused)?;
                (o, tagged(FLOW_PASSKEY, &s)?)
            }
        };
        Ok(Some((SecurityKeyOptions::encode(&options)?, state)))
    }

    /// Checks an assertion against a stored ceremony state. Reads nothing.
    pub(crate) fn check_assertion(
        &self,
        assertion: &Assertion,
        state: &[u8],
    ) -> Result<Checked, Error> {
        let rp = self.relying_party()?;
        let (flow, body) = state
            .split_first()
            .ok_or_else(|| corrupt("ceremony state"))?;
        let outcome = match *flow {
            FLOW_SECURITY_KEY => {
                let s: SecurityKeyAuthentication =
                    serde_json::from_slice(body).map_err(|_| corrupt("ceremony state"))?;
                rp.finish_securitykey_authentication(&assertion.0, &s)
            }
            FLOW_PASSKEY => {
                let s: PasskeyAuthentication =
                    serde_json::from_slice(body).map_err(|_| corrupt("ceremony state"))?;
                rp.finish_passkey_authentication(&assertion.0, &s)
            }
            _ => return Err(corrupt("ceremony state")),
        };
        Ok(match outcome {
            Ok(result) => Checked::Good(result),
            Err(WebauthnError::CredentialPossibleCompromise) => {
                // The signature was good but the counter went backwards; webauthn-rs gives no
                // result then, so the key is named by the assertion's credential id.
                Checked::Cloned(assertion.0.raw_id.to_vec())
            }
            Err(_) => Checked::Bad,
        })
    }

    /// Records a good assertion on the key that made it, in one compare-and-swap of the user's
    /// record (starting from `loaded`, the record the caller already holds, when given): a counter at or below the highest seen for that key is a clone signal (refused
    /// and reported) unless the key's last check answered this very ceremony (the same assertion
    /// sent twice: a repeat, which the challenge's single use settles); otherwise the counter,
    /// the flags `webauthn-rs` keeps and the last use are saved.
    pub(crate) async fn record_assertion(
        &self,
        user: &str,
        result: &AuthenticationResult,
        state: &[u8],
        loaded: Option<(EnrollmentRecord, Option<Revision>)>,
        now: Timestamp,
    ) -> Result<KeyUse, Error> {
        let ceremony = ceremony_tag(state);
        let mut outcome = KeyUse::Missing;
        self.update_from(user, loaded, |rec| {
            outcome = KeyUse::Missing;
            for k in rec.security_keys.iter_mut() {
                let mut cred = credential(k)?;
                if cred.cred_id() != result.cred_id() {
                    continue;
                }
                let counter = result.counter();
                if (counter > 0 || k.counter > 0) && counter <= k.counter {
                    outcome = if k.last_ceremony.as_deref() == Some(ceremony.as_str()) {
                        KeyUse::Repeat
                    } else {
                        KeyUse::Cloned(k.id.clone())
                    };
                    return Ok(false);
                }
                cred.update_credential(result);
                k.credential = serde_json::to_string(&cred)
                    .map_err(|_| Error::Internal("encoding a security key failed"))?;
                k.counter = counter;
                k.last_used_at = Some(now);
                k.last_ceremony = Some(ceremony.clone());
                outcome = KeyUse::Recorded;
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        if let KeyUse::Cloned(key) = &outcome {
            self.clone_suspected(user, key.clone());
        }
        Ok(outcome)
    }

    /// A step-up answered with a security key's assertion: one attempt, opened on the pending
    /// step-up ceremony (its own cap) and against the user's run before anything is checked;
    /// the password first when `password` is given. A pass takes the ceremony.
    pub(crate) async fn step_up_with_key(
        &self,
        user: &str,
        (rec, rev): (&EnrollmentRecord, Option<Revision>),
        assertion: &Assertion,
        password: Option<bool>,
        now: Timestamp,
    ) -> Result<Method, Error> {
        let keys = self.user_keys(user);
        let pending = keys.pending(STEP_UP);
        let max = self.inner.policy.code_max_attempts;
        let attempt = self
            .open_attempt(&keys, Some((&pending, max)), Error::NothingPending, now)
            .await?;
        let checked = async {
            if password == Some(false) {
                return Err(Error::InvalidPassword);
            }
            let state = attempt
                .challenge
                .as_ref()
                .map(|c| c.value.as_slice())
                .ok_or(Error::NothingPending)?;
            let loaded = Some((rec.clone(), rev));
            self.assertion_passes(user, assertion, state, loaded, now)
                .await
        }
        .await;
        match checked {
            Ok(true) => {}
            outcome => {
                self.fail_attempt(user, &keys, &attempt, now).await;
                outcome?;
                return Err(Error::InvalidCode {
                    attempts_remaining: Some(max.saturating_sub(attempt.attempts)),
                });
            }
        }
        self.pass_attempt(
            user,
            &keys,
            &attempt,
            (Some(&pending), None),
            Error::NothingPending,
            now,
        )
        .await?;
        if rec.recovery.is_some() {
            self.recovery().cancel(user).await?;
        }
        Ok(Method::SecurityKey)
    }

    /// Checks an assertion against a ceremony's state and records it on the key: whether the
    /// check passes (a clone signal is reported and fails it).
    pub(crate) async fn assertion_passes(
        &self,
        user: &str,
        assertion: &Assertion,
        state: &[u8],
        loaded: Option<(EnrollmentRecord, Option<Revision>)>,
        now: Timestamp,
    ) -> Result<bool, Error> {
        match self.check_assertion(assertion, state)? {
            Checked::Good(result) => Ok(self
                .record_assertion(user, &result, state, loaded, now)
                .await?
                .passes()),
            Checked::Cloned(cred_id) => {
                self.clone_signalled(user, &cred_id).await;
                Ok(false)
            }
            Checked::Bad => Ok(false),
        }
    }

    /// Answers a login challenge with a security key's assertion: the JSON of the
    /// `PublicKeyCredential` that `navigator.credentials.get` returned for
    /// [`Challenge::security_key`](crate::Challenge::security_key)'s options (base64url fields,
    /// as `PublicKeyCredential.toJSON()` writes them).
    ///
    /// The same rules as a code: the attempt is counted against the challenge and the user before
    /// the signature is checked, a failure counts toward the lock, and a pass consumes the
    /// challenge (of concurrent passes, exactly one succeeds). A signature counter at or below
    /// the highest seen for the key is refused and reported
    /// ([`Event::SecurityKeyCloneSuspected`]). [`verify_login`](Self::verify_login) takes the
    /// same JSON.
    ///
    /// # Errors
    /// [`Error::MalformedCode`] for input that is not an assertion; [`Error::InvalidCode`] for
    /// one that fails (another origin, another challenge or user, a removed key, a clone
    /// signal); then as [`verify_login`](Self::verify_login).
    pub async fn verify_login_security_key(
        &self,
        token: &ChallengeToken,
        assertion_json: &str,
    ) -> Result<Verified, Error> {
        let assertion = Assertion::parse(assertion_json)?;
        self.verify_login_key(token, &assertion).await
    }

    pub(crate) async fn verify_login_key(
        &self,
        token: &ChallengeToken,
        assertion: &Assertion,
    ) -> Result<Verified, Error> {
        let now = self.now();
        let max = self.inner.policy.challenge_max_attempts;
        let (at, _, attempt, challenge) = self.open_challenge(token, now).await?;
        let user = challenge.user.as_str();
        let checked = match &challenge.security_key {
            Some(state) if challenge.methods.contains(&Method::SecurityKey) => {
                self.assertion_passes(user, assertion, state, None, now)
                    .await
            }
            _ => Ok(false),
        };
        match checked {
            Ok(true) => {}
            outcome => {
                self.fail_attempt(user, &at.keys, &attempt, now).await;
                outcome?;
                return Err(Error::InvalidCode {
                    attempts_remaining: Some(max.saturating_sub(attempt.attempts)),
                });
            }
        }
        self.pass_attempt(
            user,
            &at.keys,
            &attempt,
            (Some(&at.challenge), None),
            Error::InvalidChallenge,
            now,
        )
        .await?;
        self.event(Event::Verified {
            user: user.to_owned(),
            method: Method::SecurityKey,
        });
        let recovery_cancelled = challenge.recovery_pending && self.recovery().cancel(user).await?;
        Ok(Verified {
            user: user.to_owned(),
            method: Some(Method::SecurityKey),
            backup_codes_remaining: challenge.backup_codes_remaining,
            verified_at: now,
            recovery_cancelled,
        })
    }

    /// Reports a clone signal on the key `key`.
    pub(crate) fn clone_suspected(&self, user: &str, key: String) {
        self.event(Event::SecurityKeyCloneSuspected {
            user: user.to_owned(),
            key,
        });
    }

    /// Reports a clone signal raised by the ceremony's own counter check, naming the user's key
    /// with credential id `cred_id` (or none, when it is not one of theirs any more).
    pub(crate) async fn clone_signalled(&self, user: &str, cred_id: &[u8]) {
        let key = match self.load(user).await {
            Ok((rec, _)) => rec.security_keys.iter().find_map(|k| {
                credential(k)
                    .ok()
                    .filter(|c| c.cred_id().as_slice() == cred_id)
                    .map(|_| k.id.clone())
            }),
            Err(_) => None,
        };
        self.clone_suspected(user, key.unwrap_or_default());
    }
}

/// What [`TwoFactorService::record_assertion`] found.
pub(crate) enum KeyUse {
    /// Saved: the check passes.
    Recorded,
    /// The key's last check answered this ceremony already: nothing saved; the check passes only
    /// if the challenge is still there to take.
    Repeat,
    /// The key is not the user's (any more): the check fails.
    Missing,
    /// A clone signal on this key: the check fails.
    Cloned(String),
}

impl KeyUse {
    /// Whether the check may go on to take its challenge.
    pub(crate) fn passes(&self) -> bool {
        matches!(self, KeyUse::Recorded | KeyUse::Repeat)
    }
}

/// A short tag naming one ceremony: a hash of its state (which holds its random challenge).
fn ceremony_tag(state: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(state);
    URL_SAFE_NO_PAD.encode(digest.get(..12).unwrap_or_default())
}
