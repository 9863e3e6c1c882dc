//! Bodies shared by several resources: [`ShownOnce`], the secret a response shows once.

use serde::Serialize;
use utoipa::ToSchema;

/// A secret shown once in a response (a session token, an API key, an invitation
/// token): serialized as a plain string, never printed by `Debug`.
#[derive(Clone, Serialize, ToSchema)]
#[schema(value_type = String)]
#[serde(transparent)]
pub struct ShownOnce(pub String);

impl std::fmt::Debug for ShownOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShownOnce([REDACTED])")
    }
}
