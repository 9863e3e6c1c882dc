//! [`Detail`]: an event's structured detail, JSON to whoever reads it, kept as the typed
//! value it was made from until somebody does.
//!
//! Most details are read by nobody: they are written to a journal and only a support
//! question ever reads them back. A [`Detail::deferred`] holds the typed value (such as an
//! access decision) and builds its JSON [`Value`] on the first read, once, shared by every
//! clone; serializing it (a journal's append) writes the typed value straight to the
//! serializer, never building the `Value` at all. A detail made from a `Value` is that
//! value. Either way it reads as a `Value` (it dereferences to one) and compares, prints
//! and serializes as its JSON.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An event's structured detail: a JSON [`Value`], or a typed value that becomes one when
/// it is first read.
///
/// Most details are read by nobody: they go to a journal, and only a support question
/// reads them back. A [`Detail::deferred`] keeps the typed value (such as an access
/// decision) and builds its `Value` on the first read, once, shared by every clone;
/// serializing it (a journal's append) writes the typed value straight to the serializer
/// and builds no `Value` at all. It dereferences to a `Value`, and compares, prints and
/// serializes as its JSON.
///
/// ```
/// use portal_core::diagnostics::Detail;
/// use serde_json::json;
///
/// #[derive(serde::Serialize)]
/// struct Rows {
///     rows: u32,
/// }
///
/// let detail = Detail::deferred(Rows { rows: 3 });
/// assert_eq!(detail["rows"], 3); // built now, on the first read
/// assert_eq!(detail, json!({ "rows": 3 }));
/// assert_eq!(serde_json::to_string(&detail).unwrap(), r#"{"rows":3}"#);
/// assert_eq!(Detail::from(json!({ "rows": 3 })), detail);
/// ```
#[derive(Clone, Default)]
pub struct Detail {
    /// The value, when the detail was made from one or changed through `DerefMut`.
    value: Value,
    /// The typed value it was made from, with its JSON once built; `None` once the
    /// detail is a plain value.
    deferred: Option<Arc<dyn Deferred>>,
}

/// A typed detail and its JSON, built on the first read.
struct Lazy<T> {
    typed: T,
    built: OnceLock<Value>,
}

/// What [`Detail`] needs of a [`Lazy`], whatever its type.
trait Deferred: Send + Sync {
    /// The JSON, built on the first call.
    fn value(&self) -> &Value;
    /// Whether the JSON was built.
    fn is_built(&self) -> bool;
    /// The typed value, for a serializer.
    fn typed(&self) -> &dyn erased_serde::Serialize;
    /// Appends the typed value's JSON to `out`, through `serde_json` directly (no
    /// erased serializer between them).
    fn write_typed_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl<T: Serialize + Send + Sync> Deferred for Lazy<T> {
    fn value(&self) -> &Value {
        self.built.get_or_init(|| {
            serde_json::to_value(&self.typed)
                .unwrap_or_else(|err| Value::String(format!("this detail could not be read as JSON: {err}")))
        })
    }

    fn is_built(&self) -> bool {
        self.built.get().is_some()
    }

    fn typed(&self) -> &dyn erased_serde::Serialize {
        &self.typed
    }

    fn write_typed_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, &self.typed)
    }
}

impl Detail {
    /// No detail: JSON `null`.
    pub fn null() -> Self {
        Self::default()
    }

    /// A detail kept as `typed` until it is read: its JSON is built on the first read
    /// (once, shared by clones), and a serializer gets `typed` itself.
    ///
    /// `typed` must serialize to JSON (string map keys), as the detail types of this
    /// crate do; one that does not reads as a string saying so.
    pub fn deferred<T: Serialize + Send + Sync + 'static>(typed: T) -> Self {
        Self {
            value: Value::Null,
            deferred: Some(Arc::new(Lazy {
                typed,
                built: OnceLock::new(),
            })),
        }
    }

    /// The detail as JSON (built now if it was deferred and never read).
    pub fn value(&self) -> &Value {
        match &self.deferred {
            Some(deferred) => deferred.value(),
            None => &self.value,
        }
    }

    /// Whether the detail is still only its typed value (its JSON not built yet).
    pub fn is_deferred(&self) -> bool {
        self.deferred.as_ref().is_some_and(|d| !d.is_built())
    }

    /// Appends the detail's JSON to `out`: what [`Serialize`] writes to a `serde_json`
    /// serializer, without going through an erased serializer for a deferred detail (its
    /// typed value is written by code made for its type when it was deferred).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match &self.deferred {
            Some(deferred) if !deferred.is_built() => deferred.write_typed_json(out),
            _ => serde_json::to_writer(out, self.value()),
        }
    }
}

impl From<Value> for Detail {
    fn from(value: Value) -> Self {
        Self { value, deferred: None }
    }
}

impl Deref for Detail {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

/// Changing a deferred detail makes it a plain value first (built now if need be).
impl DerefMut for Detail {
    fn deref_mut(&mut self) -> &mut Value {
        if let Some(deferred) = self.deferred.take() {
            self.value = deferred.value().clone();
        }
        &mut self.value
    }
}

impl PartialEq for Detail {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl PartialEq<Value> for Detail {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<Detail> for Value {
    fn eq(&self, other: &Detail) -> bool {
        self == other.value()
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.value(), f)
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.value(), f)
    }
}

impl Serialize for Detail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.deferred {
            // Never read: the typed value goes to the serializer as it is.
            Some(deferred) if !deferred.is_built() => erased_serde::serialize(deferred.typed(), serializer),
            _ => self.value().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Detail {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;

    /// Counts how often it is serialized.
    struct Counted<'a>(&'a AtomicUsize);

    impl Serialize for Counted<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            self.0.fetch_add(1, Ordering::Relaxed);
            json!({ "a": [1, 2], "b": "x" }).serialize(serializer)
        }
    }

    static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn a_deferred_detail_is_built_once_on_the_first_read_and_shared_by_clones() {
        let detail = Detail::deferred(Counted(&SERIALIZED));
        let copy = detail.clone();
        assert!(detail.is_deferred());
        assert_eq!(SERIALIZED.load(Ordering::Relaxed), 0, "nothing built before a read");
        assert_eq!(detail["b"], "x");
        assert_eq!(copy["a"], json!([1, 2]));
        assert_eq!(SERIALIZED.load(Ordering::Relaxed), 1, "built once, for both clones");
        assert!(!copy.is_deferred());
    }

    #[test]
    fn serializing_a_deferred_detail_writes_the_typed_value_and_equals_the_value_form() {
        #[derive(Serialize)]
        struct Decision {
            object: String,
            roles: Vec<&'static str>,
        }
        let deferred = Detail::deferred(Decision {
            object: "cases/wf_1".to_owned(),
            roles: vec!["member"],
        });
        let text = serde_json::to_string(&deferred).unwrap();
        assert!(deferred.is_deferred(), "serializing did not build the JSON value");
        let plain = Detail::from(json!({ "object": "cases/wf_1", "roles": ["member"] }));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), *plain);
        assert_eq!(deferred, plain);
        assert_eq!(serde_json::from_str::<Detail>(&text).unwrap(), deferred, "round trip");
        assert_eq!(format!("{deferred:?}"), format!("{:?}", *plain));
    }

    #[test]
    fn changing_a_deferred_detail_changes_it_alone() {
        let original = Detail::deferred(json!({ "failure": "wrong_secret", "user": "usr_1" }));
        let mut redacted = original.clone();
        redacted["failure"] = json!("redacted");
        assert_eq!(redacted, json!({ "failure": "redacted", "user": "usr_1" }));
        assert_eq!(
            original["failure"], "wrong_secret",
            "the clone it came from is unchanged"
        );
        assert_eq!(serde_json::to_value(&redacted).unwrap()["failure"], "redacted");
    }

    #[test]
    fn null_is_the_default() {
        assert_eq!(Detail::null(), Value::Null);
        assert!(!Detail::null().is_deferred());
        assert_eq!(serde_json::to_string(&Detail::default()).unwrap(), "null");
    }
}
