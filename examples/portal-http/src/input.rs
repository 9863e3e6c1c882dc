//! The edge's rules for text a client sends, applied before any operation sees it, so a
//! value is refused the same way on every backend or stored the same way on all of them.
//!
//! | rule | where | answer |
//! |---|---|---|
//! | a JSON body is one object | [`parse_json`](crate::parse_json) | `400 request.malformed` |
//! | no NUL (`U+0000`) in any string of a JSON body, at any depth, keys included | [`parse_json`](crate::parse_json) | `400 validation.invalid_field`, `param` the JSON path |
//! | no NUL in a query parameter's name or value | [`parse_query`](crate::request::parse_query) | `400 validation.invalid_field`, `param` the parameter |
//! | no NUL in a path parameter | [`Request::param`](crate::routes::Request::param) | `400 validation.invalid_field`, `param` the parameter |
//! | no unpaired surrogate (`"\ud800"`) in a JSON string | serde_json, which refuses them | `400 validation.invalid_field` or `request.malformed` |
//!
//! Why NUL: PostgreSQL cannot hold it in `text` or `jsonb` (it answers an error, which
//! would be a `500 storage.failure`), while SQLite and memory store it; refusing it at
//! the edge makes every backend agree. Every other Unicode scalar value (controls, bidi
//! overrides, non-characters) is stored as sent by every backend; the length is bounded by
//! the body limit and by each field's own rule. Headers cannot carry NUL (HTTP forbids it).

use portal_core::ErrorCode;

use crate::error::ApiError;

/// Whether a JSON text holds a NUL in one of its strings (the escape `\u0000`; a raw NUL
/// byte is not JSON and serde_json refuses it).
///
/// Only a backslash starts an escape, and in JSON a backslash appears only inside a
/// string, so a scan that skips each escaped character finds every escaped NUL and no
/// false one (`"\\u0000"` is a backslash and the text `u0000`).
pub(crate) fn json_has_nul(body: &[u8]) -> bool {
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' {
            if body.get(i + 1) == Some(&b'u') && body.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The JSON path (`payload.items[2].name`) of the first string holding a NUL, keys
/// included (a key's path is the object's, then the key, a NUL in it written `\u0000`).
fn nul_path(value: &serde_json::Value, path: &mut String) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_path(item, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        serde_json::Value::Object(fields) => fields.iter().any(|(key, item)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            // A NUL of the key itself is written `\u0000`: the param is echoed in the
            // answer and journaled, where a NUL is what this module keeps out.
            path.push_str(&key.replace('\0', "\\u0000"));
            let found = key.contains('\0') || nul_path(item, path);
            if !found {
                path.truncate(len);
            }
            found
        }),
        _ => false,
    }
}

/// Checks a JSON body before it is read into its type: one object, no NUL in any string.
///
/// The type check comes first because serde's derives read a struct from a JSON array
/// too (`["slug", "name"]` would fill the fields in order).
///
/// # Errors
///
/// `request.malformed` for a body that is not an object (or not JSON);
/// `validation.invalid_field` naming the JSON path of a string with a NUL.
pub(crate) fn check_json_body(body: &[u8]) -> Result<(), ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "the request body must be a JSON object",
        ));
    }
    if json_has_nul(body) {
        // Rare: parse it once more to name the field.
        let mut path = String::new();
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
            nul_path(&value, &mut path);
        }
        return Err(nul_refused(if path.is_empty() { "body" } else { &path }));
    }
    Ok(())
}

/// Checks a text parameter (a query parameter's name or value, a path parameter).
///
/// # Errors
///
/// `validation.invalid_field` naming `param` when `value` holds a NUL.
pub(crate) fn check_text(param: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        Err(nul_refused(param))
    } else {
        Ok(())
    }
}

fn nul_refused(param: &str) -> ApiError {
    ApiError::invalid_field(
        param,
        format!("`{param}` holds a NUL character (U+0000), which no field accepts"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    fn param(body: &str) -> Option<String> {
        check_json_body(body.as_bytes())
            .err()
            .and_then(|e| e.portal_error().param().map(str::to_owned))
    }

    #[test]
    fn only_an_object_is_a_body() {
        for body in [r#"["slug","name",{}]"#, "\"text\"", "3", "null", "true", "", "  "] {
            let err = check_json_body(body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), ErrorCode::MalformedRequest, "{body}");
        }
        assert!(check_json_body(b" \n{\"a\": [1]}").is_ok());
    }

    #[test]
    fn a_nul_is_named_by_its_json_path() {
        assert_eq!(
            param(r#"{"metadata": {"plan": "a\u0000b"}}"#).as_deref(),
            Some("metadata.plan")
        );
        assert_eq!(
            param(r#"{"payload": {"items": ["ok", "\u0000"]}}"#).as_deref(),
            Some("payload.items[1]")
        );
        assert_eq!(param(r#"{"a\u0000": 1}"#).as_deref(), Some(r"a\u0000"));
        assert_eq!(param(r#"{"comment": "\u0000"}"#).as_deref(), Some("comment"));
    }

    #[test]
    fn an_escaped_backslash_is_not_a_nul() {
        assert!(check_json_body(br#"{"path": "C:\\u0000"}"#).is_ok());
        assert!(check_json_body(br#"{"path": "\\\u0000"}"#).is_err());
    }

    proptest! {
        /// The byte scan agrees with serde_json: a body holds a NUL exactly when one of
        /// its parsed strings (or keys) does.
        #[test]
        fn the_scan_agrees_with_the_parser(strings in proptest::collection::vec(any::<String>(), 0..4)) {
            let value = serde_json::json!({ "items": strings, "key": strings.first() });
            let text = serde_json::to_string(&value).unwrap();
            let has_nul = strings.iter().any(|s| s.contains('\0'));
            prop_assert_eq!(json_has_nul(text.as_bytes()), has_nul);
            prop_assert_eq!(check_json_body(text.as_bytes()).is_err(), has_nul);
        }
    }
}
