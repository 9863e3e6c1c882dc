//! OIDC/JWT bearer tokens on the reference servers: the settings ([`BearerSettings`]: issuer,
//! audiences, where the JWKS is, allowed algorithms, just-in-time provisioning) and the
//! [`JwtAuthenticator`] built from them, which the wiring hands to
//! `IdentityService::with_bearer`.
//!
//! The key set is read from a file once at start ([`JwksLocation::File`]) or fetched with
//! an HTTP `GET` ([`JwksLocation::Url`]) whenever the authenticator refreshes it. A URL must
//! be `https://`, except on a loopback host (`127.0.0.1`, `[::1]`, `localhost`): keys taken
//! over plain HTTP from the network would let anyone on the path sign tokens. A fetch waits
//! at most [`FETCH_TIMEOUT`] and reads at most [`MAX_JWKS_BYTES`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use portal_auth::jwt::{
    FetchedJwks, JwksError, JwksSource, JwtAuthenticator, JwtConfig, Provisioning, SigningAlgorithm, StaticJwks,
};
use portal_core::context::ServiceName;
use portal_core::diagnostics::DiagnosticSink;
use portal_core::identity::ExternalIdentityStore;
use portal_core::ids::IdGenerator;
use portal_core::tenancy::TenancyStore;
use portal_core::{ErrorCode, PortalError};

/// The longest a JWKS fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest JWKS document read, in bytes.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Where the JSON Web Key Set is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    /// Fetched from this URL (the provider's `jwks_uri`) at the first token and at each
    /// refresh.
    Url(String),
    /// Read from this file once, at start.
    File(PathBuf),
}

/// How a reference server accepts OIDC/JWT bearer tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerSettings {
    /// The exact `iss` tokens must carry.
    pub issuer: String,
    /// The audiences a token's `aud` must name one of (at least one).
    pub audiences: Vec<String>,
    /// Where the verification keys are.
    pub jwks: JwksLocation,
    /// The signature algorithms accepted (asymmetric only).
    pub algorithms: Vec<SigningAlgorithm>,
    /// Whether the first token of an unknown subject with a verified `email` creates a
    /// user (just in time), linked to the token's `(iss, sub)` from then on.
    pub provision: bool,
}

/// Whether `url` may be fetched: `https://`, or `http://` on a loopback host.
///
/// # Errors
///
/// A sentence saying why not.
pub fn check_jwks_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "must be an absolute URL")?;
    let host = uri.host().ok_or("must name a host")?;
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("must be https:// (plain http:// only on a loopback host)")
            }
        }
        _ => Err("must be an https:// URL"),
    }
}

impl BearerSettings {
    /// The authenticator these settings describe, over the given stores; provisioned users
    /// are recorded as made by the service principal `provisioner`.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `JWT_JWKS_FILE` or `JWT_JWKS_URL`) for a key set
    /// file that cannot be read or parsed, or a URL that may not be fetched;
    /// `internal.error` for a configuration the authenticator refuses (no audience, no
    /// algorithm).
    pub fn authenticator(
        &self,
        identities: Arc<dyn ExternalIdentityStore>,
        tenancy: Arc<dyn TenancyStore>,
        sink: Arc<dyn DiagnosticSink>,
        ids: Arc<dyn IdGenerator>,
        provisioner: ServiceName,
    ) -> Result<JwtAuthenticator, PortalError> {
        let mut audiences = self.audiences.iter();
        let first = audiences.next().cloned().unwrap_or_default();
        let mut config = JwtConfig::new(self.issuer.clone(), first).with_algorithms(self.algorithms.iter().copied());
        for audience in audiences {
            config = config.with_audience(audience.clone());
        }
        if self.provision {
            config = config.with_provisioning(Provisioning::new(provisioner));
        }
        let source: Arc<dyn JwksSource> = match &self.jwks {
            JwksLocation::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|err| {
                    PortalError::invalid_field("JWT_JWKS_FILE", "the key set file cannot be read").with_source(err)
                })?;
                Arc::new(StaticJwks::from_json(&text).map_err(|err| {
                    PortalError::invalid_field("JWT_JWKS_FILE", "the key set file is not a JSON Web Key Set")
                        .with_source(err)
                })?)
            }
            JwksLocation::Url(url) => {
                check_jwks_url(url).map_err(|problem| PortalError::invalid_field("JWT_JWKS_URL", problem))?;
                Arc::new(http_jwks(url.clone())?)
            }
        };
        JwtAuthenticator::new(config, source, identities, tenancy, sink, ids).map_err(|err| {
            PortalError::new(ErrorCode::Internal, "the bearer token settings cannot work").with_source(err)
        })
    }
}

/// A key set fetched from `url` with an HTTP `GET` at each refresh.
fn http_jwks(url: String) -> Result<FetchedJwks, PortalError> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let uri: http::Uri = url
        .parse()
        .map_err(|_| PortalError::invalid_field("JWT_JWKS_URL", "must be an absolute URL"))?;
    Ok(FetchedJwks::new(move || {
        let client = client.clone();
        let uri = uri.clone();
        Box::pin(async move {
            let fetch = async {
                let response = client.get(uri).await?;
                if !response.status().is_success() {
                    return Err::<JwkSet, JwksError>(format!("the JWKS URL answered {}", response.status()).into());
                }
                let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
                    .collect()
                    .await?
                    .to_bytes();
                Ok(serde_json::from_slice::<JwkSet>(&body)?)
            };
            tokio::time::timeout(FETCH_TIMEOUT, fetch)
                .await
                .map_err(|_| JwksError::from("the JWKS URL did not answer in time"))?
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::check_jwks_url;

    #[test]
    fn keys_come_over_https_or_from_this_machine() {
        for ok in [
            "https://login.example.com/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]:9000/jwks",
            "http://localhost/jwks",
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://login.example.com/jwks",
            "http://10.0.0.8/jwks",
            "ftp://login.example.com/jwks",
            "/jwks",
            "login.example.com",
        ] {
            assert!(check_jwks_url(refused).is_err(), "{refused}");
        }
    }
}
