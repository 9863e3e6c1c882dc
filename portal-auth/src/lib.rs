//! Identity and access adapters for `portal-core`: the casbin-backed authorizer.
//!
//! - [`casbin_authz`]: [`CasbinAuthorizer`], which implements
//!   [`portal_core::Authorizer`] on casbin's model and policy format with a compiled
//!   index, explanations in the same call, and casbin's `Enforcer` as the fallback for
//!   models the index does not compile.
//!
//! Authenticators (passwords, sessions, API keys, OIDC) come with the identity work.

pub mod casbin_authz;

pub use casbin_authz::{CasbinAuthorizer, PolicyError};
