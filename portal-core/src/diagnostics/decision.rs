//! [`DecisionDetail`]: the detail of an `access.check` event, kept typed (and inline) until
//! a sink builds it.

use std::sync::Arc;

use serde::Serialize;

use crate::access::{AccessRequest, Decision, Domain, Name, Scope};
use crate::principal::Principal;

/// The detail of an `access.check` event (`access.decision.v1`), kept typed until read.
/// Its fields are in the order of the JSON object's keys when read back.
///
/// A decision about an API key also keeps the key's scopes and, for a denial, the scope
/// that would have allowed the request, so that `explain` says a key acted, what it held
/// and what it lacked (a key holds no roles, so `roles` and `would_grant` are empty).
#[derive(Serialize)]
pub(crate) struct DecisionDetail {
    action: RequestText,
    decision: Decision,
    domain: Domain,
    object: RequestText,
    principal: Principal,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<KeyScopes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    would_allow: Option<Scope>,
}

impl DecisionDetail {
    /// The detail of `decision` on `request`; `key_scopes` are the scopes of the API key
    /// that asked, `None` for any other principal.
    pub(crate) fn new(request: &AccessRequest<'_>, decision: Decision, key_scopes: Option<Arc<[Scope]>>) -> Self {
        let granted = match &decision {
            Decision::Allowed(grant) => Some(&grant.rule),
            Decision::Denied(_) => None,
        };
        let (object, action) = (
            RequestText::new(request.object, granted.map(|r| &r.object)),
            RequestText::new(request.action, granted.map(|r| &r.action)),
        );
        let would_allow = match (&key_scopes, &decision) {
            (Some(_), Decision::Denied(_)) => scope_for(request.object, request.action),
            _ => None,
        };
        Self {
            action,
            decision,
            domain: request.domain,
            object,
            principal: request.principal.clone(),
            scopes: key_scopes.map(KeyScopes),
            would_allow,
        }
    }
}

/// An API key's scopes, shared with its request: serialized as a list of strings.
struct KeyScopes(Arc<[Scope]>);

impl Serialize for KeyScopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

/// The scope a key would need for `action` on `object`: the object's pattern for a
/// resource instance (`cases/* approve` for `cases/wf_… approve`), else the object itself.
fn scope_for(object: &str, action: &str) -> Option<Scope> {
    let pattern = match object.split_once('/') {
        Some((resource, _)) if !resource.is_empty() => format!("{resource}/*"),
        _ => object.to_owned(),
    };
    Scope::new(&pattern, action).ok()
}

/// The most bytes of a request's object or action a [`RequestText`] holds inline: enough
/// for `cases/wf_…` and every built-in permission.
pub(crate) const INLINE_TEXT: usize = 46;

/// A request's object or action as a decision's detail keeps it: the granting rule's own
/// name when the text is the same (an exact rule), else the text copied inline when short
/// (nearly always), so that recording a decision makes no allocation of its own for them:
/// the detail is handed to another thread, and every block freed there costs the request
/// thread a fresh one (`docs/benchmarks.md`, "Diagnostics", measures recording).
pub(crate) enum RequestText {
    Shared(Name),
    Inline { len: u8, bytes: [u8; INLINE_TEXT] },
}

impl RequestText {
    fn new(text: &str, rule: Option<&Name>) -> Self {
        if let Some(name) = rule.filter(|name| name.as_str() == text) {
            return Self::Shared(name.clone());
        }
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= INLINE_TEXT => {
                let mut bytes = [0; INLINE_TEXT];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Self::Inline { len, bytes }
            }
            _ => Self::Shared(Name::from(text)),
        }
    }
}

/// As the plain string.
impl Serialize for RequestText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Shared(name) => serializer.serialize_str(name),
            // A whole `str` was copied in, so this borrows: it never replaces anything.
            Self::Inline { len, bytes } => {
                serializer.serialize_str(&String::from_utf8_lossy(&bytes[..usize::from(*len)]))
            }
        }
    }
}
