//! A software security key and browser for the security-key tests: 1Password's passkey-rs client
//! and authenticator, fed the JSON the example hands the page and answering with the JSON the page
//! posts back. Independent of `webauthn-rs`, which checks what it signs.

use passkey::authenticator::{Authenticator, MemoryStore, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::{webauthn as pk, Passkey};
use url::Url;

/// A user who is always there and verified; it refuses to register a credential the options
/// exclude, as a real key's owner is told to.
struct Present;

#[twofactor::async_trait]
impl UserValidationMethod for Present {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        hint: UiHint<'a, Passkey>,
        presence: bool,
        verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        if let UiHint::InformExcludedCredentialFound(_) = hint {
            return Err(Ctap2Error::CredentialExcluded);
        }
        Ok(UserCheck {
            presence,
            verification,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

type SoftClient =
    Client<MemoryStore, Present, RustCryptoBackend, public_suffix::PublicSuffixList, ()>;

/// One software security key, with the browser that talks to it.
pub(crate) struct SoftKey {
    client: SoftClient,
}

impl SoftKey {
    /// A key with a signature counter (it rises by one per assertion).
    pub(crate) fn new() -> Self {
        let mut auth = Authenticator::new(
            Aaguid::new_empty(),
            MemoryStore::new(),
            Present,
            RustCryptoBackend,
        );
        auth.set_make_credentials_with_signature_counter(true);
        SoftKey {
            client: Client::new(auth).allows_insecure_localhost(true),
        }
    }

    /// `navigator.credentials.create(options)` at `origin`: the registration response JSON.
    pub(crate) async fn create_at(
        &mut self,
        origin: &str,
        options: &serde_json::Value,
    ) -> Result<String, String> {
        let opts: pk::CredentialCreationOptions =
            serde_json::from_value(options.clone()).map_err(|e| e.to_string())?;
        let origin = Url::parse(origin).unwrap();
        let cred = self
            .client
            .register(&origin, opts, DefaultClientData)
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(serde_json::to_string(&cred).unwrap())
    }

    /// `navigator.credentials.get(options)` at `origin`: the assertion JSON.
    pub(crate) async fn get_at(
        &mut self,
        origin: &str,
        options: &serde_json::Value,
    ) -> Result<String, String> {
        let opts: pk::CredentialRequestOptions =
            serde_json::from_value(options.clone()).map_err(|e| e.to_string())?;
        let origin = Url::parse(origin).unwrap();
        let cred = self
            .client
            .authenticate(&origin, opts, DefaultClientData)
            .await
            .map_err(|e| format!("{e:?}"))?;
        Ok(serde_json::to_string(&cred).unwrap())
    }
}
