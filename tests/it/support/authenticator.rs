//! A software security key and browser for the WebAuthn tests: 1Password's passkey-rs client
//! and authenticator, fed the JSON the service hands a browser and answering with the JSON a
//! browser posts back. Independent of `webauthn-rs`, which checks what it signs.

use passkey::authenticator::{Authenticator, MemoryStore, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::{webauthn as pk, Passkey};
use url::Url;

/// The relying party of the tests and its origin.
pub(crate) const RP_ID: &str = "localhost";
pub(crate) const ORIGIN: &str = "http://localhost:8080";

/// The default policy with security keys for the tests' relying party.
pub(crate) fn policy() -> twofactor::Policy {
    let mut p = twofactor::Policy::default();
    p.security_keys = Some(twofactor::security_key::SecurityKeyPolicy::new(
        RP_ID, ORIGIN,
    ));
    p
}

/// The request options a login challenge carries.
pub(crate) fn options(c: &twofactor::Challenge) -> serde_json::Value {
    c.security_key()
        .expect("a security key is on offer")
        .as_json()
        .clone()
}

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
        Self::with_counter(true)
    }

    /// A key with or without a signature counter (without: always 0, as many passkeys).
    pub(crate) fn with_counter(counter: bool) -> Self {
        let mut auth = Authenticator::new(
            Aaguid::new_empty(),
            MemoryStore::new(),
            Present,
            RustCryptoBackend,
        );
        auth.set_make_credentials_with_signature_counter(counter);
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

    /// `navigator.credentials.create(options)` at the tests' origin.
    pub(crate) async fn create(&mut self, options: &serde_json::Value) -> String {
        self.create_at(ORIGIN, options).await.unwrap()
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

    /// `navigator.credentials.get(options)` at the tests' origin.
    pub(crate) async fn get(&mut self, options: &serde_json::Value) -> String {
        self.get_at(ORIGIN, options).await.unwrap()
    }

    /// Sets the counter of every credential the key holds, as a clone made earlier would have.
    pub(crate) fn set_counter(&mut self, counter: u32) {
        let store = self.client.authenticator_mut().store_mut();
        for pk in store.values_mut() {
            pk.counter = Some(counter);
        }
    }
}
