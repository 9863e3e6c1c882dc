//! [`Name`]: the shared text of a policy rule's subject, object and action, and of the
//! role names in a decision.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A name in a policy rule or a decision: a role, an object or object pattern, or an
/// action.
///
/// Immutable text that costs nothing to hand out: either a `&'static str`
/// ([`from_static`](Self::from_static), for the built-in tables and constants) or shared
/// text (an `Arc<str>`, whose clones count a reference instead of copying the text), so
/// an authorizer that holds its policy's names (`CasbinAuthorizer` interns them, the
/// `RoleTableAuthorizer`'s are constants) hands them out in a
/// [`Decision`](super::Decision) without allocating. It reads as a `str` (through `Deref`,
/// [`as_str`](Self::as_str), and comparisons with `str`, `&str` and `String`), compares,
/// orders and hashes by its text whichever way it is held, and serializes as a plain
/// string.
///
/// ```
/// use portal_core::access::Name;
///
/// let role = Name::from("admin");
/// assert_eq!(role, "admin");
/// assert_eq!(role, Name::from_static("admin"));
/// assert_eq!(role.len(), 5);
/// assert_eq!(serde_json::to_string(&role).unwrap(), r#""admin""#);
/// ```
#[derive(Clone)]
pub struct Name(Text);

/// How a [`Name`] holds its text.
#[derive(Clone)]
enum Text {
    /// A constant: cloning and dropping touch nothing shared.
    Static(&'static str),
    /// Shared with whoever made it (an authorizer's interned names).
    Shared(Arc<str>),
}

impl Name {
    /// A name for constant text: no allocation, and no reference count to keep.
    #[inline]
    pub const fn from_static(text: &'static str) -> Self {
        Self(Text::Static(text))
    }

    /// Whether the text is a constant (no reference count behind it).
    #[cfg(test)]
    pub(crate) fn is_constant(&self) -> bool {
        matches!(self.0, Text::Static(_))
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Text::Static(text) => text,
            Text::Shared(text) => text,
        }
    }
}

impl PartialEq for Name {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// As its text, so that a `Name` and a `str` look each other up (`Borrow<str>`).
impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Deref for Name {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// Hashes and orders as its text, so a set of names can be searched by `&str`.
impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// Shares the text: no copy.
impl From<Arc<str>> for Name {
    #[inline]
    fn from(text: Arc<str>) -> Self {
        Self(Text::Shared(text))
    }
}

impl From<&str> for Name {
    fn from(text: &str) -> Self {
        Self(Text::Shared(Arc::from(text)))
    }
}

impl From<String> for Name {
    fn from(text: String) -> Self {
        Self(Text::Shared(Arc::from(text)))
    }
}

impl From<&String> for Name {
    fn from(text: &String) -> Self {
        Self(Text::Shared(Arc::from(text.as_str())))
    }
}

impl From<Name> for Arc<str> {
    fn from(name: Name) -> Self {
        match name.0 {
            Text::Static(text) => Arc::from(text),
            Text::Shared(text) => text,
        }
    }
}

impl From<Name> for String {
    fn from(name: Name) -> Self {
        name.as_str().to_owned()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As the text, quoted: `"admin"`.
impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        *self.as_str() == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        *self.as_str() == **other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.as_str() == **other
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        *self == *other.as_str()
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.as_str()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        **self == *other.as_str()
    }
}

/// A plain string.
impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// From a plain string.
impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use super::*;

    #[test]
    fn a_constant_and_a_shared_name_of_the_same_text_are_the_same_name() {
        let (constant, shared) = (Name::from_static("admin"), Name::from("admin"));
        assert_eq!(constant, shared);
        assert_eq!(constant.cmp(&shared), std::cmp::Ordering::Equal);
        assert!(Name::from_static("admin") < Name::from_static("billing"));
        let (shared_admin, constant_billing) = (Name::from("admin"), Name::from_static("billing"));
        assert!(shared_admin < constant_billing);
        // Hashed as the text: a set of either kind is searched by `&str` and finds both.
        let set: HashSet<Name> = [constant.clone()].into_iter().collect();
        assert!(set.contains("admin") && set.contains(&shared));
        let sorted: BTreeSet<Name> = [Name::from("viewer"), Name::from_static("admin")].into_iter().collect();
        assert_eq!(sorted.iter().map(Name::as_str).collect::<Vec<_>>(), ["admin", "viewer"]);
    }

    #[test]
    fn a_constant_name_reads_prints_and_serializes_as_its_text() {
        let name = Name::from_static("cases/*");
        assert_eq!(name, "cases/*");
        assert_eq!(name.to_string(), "cases/*");
        assert_eq!(format!("{name:?}"), r#""cases/*""#);
        assert_eq!(serde_json::to_string(&name).unwrap(), r#""cases/*""#);
        assert_eq!(&*Arc::<str>::from(name.clone()), "cases/*");
        assert_eq!(String::from(name), "cases/*");
    }
}
