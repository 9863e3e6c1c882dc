//! A software authenticator for the tests of both binaries (HTTP and pages): 1Password's
//! `passkey` crate, its own WebAuthn client and CTAP2 authenticator, independent of the
//! `webauthn-rs` the portal verifies with. It answers `navigator.credentials.create()` and
//! `.get()` offline, as the JSON a page posts.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey as SoftPasskey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use serde_json::Value;

/// The origin the test portal serves its pages on; its host is the relying party id.
pub(crate) const ORIGIN: &str = "https://portal.example.com";

/// A user who is present and verified (a PIN or a fingerprint) every time.
pub(crate) struct AlwaysVerified;

#[async_trait::async_trait]
impl UserValidationMethod for AlwaysVerified {
    type PasskeyItem = SoftPasskey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, SoftPasskey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

/// A software authenticator holding one discoverable credential, with a signature counter.
pub(crate) struct SoftKey {
    client: Client<Option<SoftPasskey>, AlwaysVerified, RustCryptoBackend, public_suffix::PublicSuffixList, ()>,
}

impl SoftKey {
    pub(crate) fn new() -> Self {
        Self::holding(None)
    }

    pub(crate) fn holding(credential: Option<SoftPasskey>) -> Self {
        let mut authenticator = Authenticator::new(Aaguid::new_empty(), credential, AlwaysVerified, RustCryptoBackend);
        authenticator.set_make_credentials_with_signature_counter(true);
        Self {
            client: Client::new(authenticator),
        }
    }

    /// The credential it holds, as it is now.
    pub(crate) fn credential(&self) -> Option<SoftPasskey> {
        self.client.authenticator().store().clone()
    }

    /// `navigator.credentials.create(options)` on `origin`, as the JSON a page posts.
    pub(crate) async fn create(&mut self, origin: &str, options: &Value) -> Value {
        let request: CredentialCreationOptions = serde_json::from_value(options.clone()).expect("creation options");
        let origin = url::Url::parse(origin).unwrap();
        let created = self
            .client
            .register(&origin, request, DefaultClientData)
            .await
            .expect("the authenticator registers");
        serde_json::to_value(created).unwrap()
    }

    /// `navigator.credentials.get(options)` on `origin`, as the JSON a page posts.
    pub(crate) async fn get(&mut self, origin: &str, options: &Value) -> Value {
        let request: CredentialRequestOptions = serde_json::from_value(options.clone()).expect("request options");
        let origin = url::Url::parse(origin).unwrap();
        let asserted = self
            .client
            .authenticate(&origin, request, DefaultClientData)
            .await
            .expect("the authenticator answers");
        serde_json::to_value(asserted).unwrap()
    }
}
