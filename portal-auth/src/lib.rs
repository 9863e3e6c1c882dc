//! Identity and access adapters for `portal-core`: the identity service and the casbin-backed authorizer.
//!
//! - [`casbin_authz`]: [`CasbinAuthorizer`], which implements
//!   [`portal_core::Authorizer`] on casbin's model and policy format with a compiled
//!   index, explanations in the same call, and casbin's `Enforcer` as the fallback for
//!   models the index does not compile; it is also a `PolicyReplica`, so a `Portal`
//!   administers policy through it.
//! - [`sync`]: [`follow`](sync::follow) keeps an authorizer in step with a `PolicyFeed`
//!   (other replicas' changes, through Postgres `LISTEN`/`NOTIFY` or in memory).
//!
//! - [`identity`]: [`IdentityService`](identity::IdentityService): argon2id passwords,
//!   sessions, scoped API keys, sign-in throttling and active orgs; it is the portal's
//!   `Authenticator`, handing bearer tokens to the JWT authenticator.
//! - [`jwt`]: [`JwtAuthenticator`](jwt::JwtAuthenticator), which implements
//!   [`portal_core::identity::Authenticator`] for OIDC/JWT bearer tokens: signatures
//!   checked against a host-supplied JWKS with key rotation by `kid`, an allow-list of
//!   asymmetric algorithms only, issuer, audience and time checks with bounded skew, and
//!   claims mapped to users through linked external identities, with optional
//!   just-in-time provisioning.

pub mod casbin_authz;
pub mod identity;
pub mod jwt;
pub mod sync;

pub use casbin_authz::{CasbinAuthorizer, PolicyError};
