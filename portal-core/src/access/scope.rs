//! `Scope`: one permission an API key may use, written `object action`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::PortalError;

/// One permission an API key may use in its org, written `object action`, such as
/// `members read` or `cases/* write`.
///
/// The object is 1 to 128 of `a-z 0-9 _ - . /`, or a pattern: `*` (everything) or
/// `prefix/*` (anything under `prefix/`). The action is 1 to 64 of `a-z 0-9 _ -`, or
/// `*`. Patterns match as the built-in role table's do.
///
/// ```
/// use portal_core::identity::Scope;
///
/// let scope: Scope = "cases/* read".parse()?;
/// assert!(scope.allows("cases/wf_1", "read"));
/// assert!(!scope.allows("cases/wf_1", "write"));
/// assert!(!scope.allows("members", "read"));
/// # Ok::<(), portal_core::identity::ParseScopeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    object: String,
    action: String,
}

/// The text is not a scope (`object action`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a scope (expected `object action`, such as `members read`)")]
pub struct ParseScopeError(String);

impl From<ParseScopeError> for PortalError {
    fn from(err: ParseScopeError) -> Self {
        PortalError::invalid_field("scopes", err.to_string())
    }
}

impl Scope {
    /// A scope of `action` on `object`.
    ///
    /// # Errors
    ///
    /// [`ParseScopeError`] if either part breaks the rules above.
    pub fn new(object: &str, action: &str) -> Result<Self, ParseScopeError> {
        if valid_object(object) && valid_action(action) {
            Ok(Self {
                object: object.to_owned(),
                action: action.to_owned(),
            })
        } else {
            Err(ParseScopeError(shown(&format!("{object} {action}"))))
        }
    }

    /// The object or object pattern.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The action or `*`.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// Whether the scope covers `action` on `object`.
    pub fn allows(&self, object: &str, action: &str) -> bool {
        super::pattern_matches(&self.object, object) && super::pattern_matches(&self.action, action)
    }
}

fn valid_object(object: &str) -> bool {
    let body = if object == "*" {
        return true;
    } else {
        object.strip_suffix("/*").unwrap_or(object)
    };
    (1..=128).contains(&object.len())
        && !body.is_empty()
        && !body.starts_with('/')
        && !body.ends_with('/')
        && !body.contains("//")
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

fn valid_action(action: &str) -> bool {
    action == "*"
        || ((1..=64).contains(&action.len())
            && action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-')))
}

/// At most 64 characters of input, for an error message.
fn shown(text: &str) -> String {
    text.chars().take(64).collect()
}

impl FromStr for Scope {
    type Err = ParseScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (object, action) = s.split_once(' ').ok_or_else(|| ParseScopeError(shown(s)))?;
        Scope::new(object, action).map_err(|_| ParseScopeError(shown(s)))
    }
}

/// The string form, `object action`, is what stores keep.
impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.object, self.action)
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scopes_parse_and_print_as_object_then_action() {
        for text in [
            "members read",
            "cases/* write",
            "* *",
            "billing *",
            "reports/q1.pdf read",
        ] {
            let scope: Scope = text.parse().unwrap();
            assert_eq!(scope.to_string(), text);
        }
    }

    #[test]
    fn malformed_scopes_are_refused() {
        for bad in [
            "",
            "members",
            "members  read",
            "Members read",
            "members read write",
            "/members read",
            "members/ read",
            "a//b read",
            "mem*bers read",
            "members re*d",
            "*/x read",
            "members READ",
        ] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?} parsed");
        }
        assert!(Scope::new(&"a".repeat(129), "read").is_err());
        assert!(Scope::new("members", &"r".repeat(65)).is_err());
    }

    #[test]
    fn patterns_cover_what_the_role_table_covers() {
        let scope: Scope = "cases/* *".parse().unwrap();
        assert!(scope.allows("cases/wf_1", "approve"));
        assert!(!scope.allows("cases", "read"));
        assert!(!scope.allows("casesx/1", "read"));
        let exact: Scope = "members read".parse().unwrap();
        assert!(exact.allows("members", "read"));
        assert!(!exact.allows("members", "write"));
        assert!(!exact.allows("members/x", "read"));
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in ".{0,80}") {
            if let Ok(scope) = text.parse::<Scope>() {
                prop_assert_eq!(scope.to_string(), text);
            }
        }
    }
}
