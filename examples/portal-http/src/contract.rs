//! The rules of the `/v1` contract that the DTOs' derives cannot state, written into the
//! OpenAPI document so that a request the document allows is one the server accepts (and
//! one it forbids, the server refuses): lengths, patterns and item counts as the services
//! enforce them, RFC 3339 times, cursors, the payload of each workflow definition, the
//! transition names, and that no string carries a NUL (the edge refuses it everywhere, see
//! [`input`](crate::input)).
//!
//! [`tighten`] edits the document as JSON after utoipa built it, from the tables below;
//! [`openapi_json`](crate::openapi::openapi_json) calls it, so the served and the committed
//! document carry the same rules. What no schema can say (one field compared with
//! another, a time compared with now, an id that must name a member) is written in the
//! operation's description and listed in `docs/http.md`.

use portal_core::workflow::catalog;
use serde_json::{Map, Value, json};

use crate::openapi::{ROLE_NAME_PATTERN, id_pattern};

/// A string without NUL (`U+0000`): every string the edge reads.
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

/// A slug, as `portal_core::tenancy::Slug` takes it: 3 to 63 of `a-z 0-9 -`, no `-` at
/// either end.
pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$";

/// A name of people (an org's display name, an API key's name): not only white space, no
/// control characters (`Cc`). Its length is bounded by the field's `maxLength`.
pub const NAME_PATTERN: &str =
    "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// An email address of the common form (`local@example.org`): a dot-atom local part of
/// letters, digits and `_ % + -`, and a domain of two or more labels. The server takes
/// more (`portal_core::tenancy::Email`); every address of this form it takes.
pub const EMAIL_PATTERN: &str = "^[A-Za-z0-9_%+-]{1,32}(\\.[A-Za-z0-9_%+-]{1,16}){0,2}@([A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?\\.){1,3}[A-Za-z]{2,16}$";

/// An API key scope, `object action` as `portal_core::access::Scope` parses it: the
/// object `*` or lowercase path segments with an optional `/*`, the action `*` or 1 to 64
/// of `a-z 0-9 _ -`.
pub const SCOPE_PATTERN: &str = "^(\\*|[a-z0-9_.-]{1,60}(/[a-z0-9_.-]{1,60})?(/\\*)?) (\\*|[a-z0-9_-]{1,64})$";

/// The object of a custom role's permission, as the casbin authorizer compiles it: `*`,
/// or `a-z A-Z 0-9 _ - / : @ = ~` with `/*` (its `maxLength` is 256). The authorizer also
/// takes `{name}` placeholders, which the document leaves out.
pub const PERMISSION_OBJECT_PATTERN: &str = "^(\\*|([A-Za-z0-9_/:@=~-]|/\\*)+)$";

/// The action of a custom role's permission: `*` or 1 to 64 of `a-z A-Z 0-9 _ - . :`.
pub const PERMISSION_ACTION_PATTERN: &str = "^(\\*|[A-Za-z0-9_.:-]{1,64})$";

/// A metadata key: 1 to 64 of ASCII letters, digits, `_ . -`.
pub const METADATA_KEY_PATTERN: &str = "^[A-Za-z0-9_.-]{1,64}$";

/// A journal cursor (`…/diagnostics/requests/{request_id}`, the timeline): Unix
/// microseconds, a dot, an event id.
fn event_cursor_pattern() -> String {
    format!("^[0-9]{{1,17}}\\.{}", &id_pattern("evt")[1..])
}

/// The pattern of each listing's `cursor` the [`openapi`](crate::openapi) module does not
/// set: the key the listing pages by.
fn cursor_patterns() -> Vec<(&'static str, String)> {
    vec![
        ("list_sessions", id_pattern("ses")),
        ("list_roles", ROLE_NAME_PATTERN.to_owned()),
        ("list_api_keys", id_pattern("key")),
        ("request_events", event_cursor_pattern()),
        ("timeline", event_cursor_pattern()),
    ]
}

/// Query parameters with a format or pattern: operation, parameter, schema keywords.
fn query_rules() -> Vec<(&'static str, &'static str, Value)> {
    let time = json!({"format": "date-time"});
    vec![
        ("timeline", "from", time.clone()),
        ("timeline", "until", time.clone()),
        ("export_events", "from", time.clone()),
        ("export_events", "until", time),
        ("list_workflows", "assignee", json!({"pattern": id_pattern("usr")})),
    ]
}

/// Body properties with their rules: schema, property, keywords merged into it.
fn body_rules() -> Vec<(&'static str, &'static str, Value)> {
    let name = |max: u32| json!({"pattern": NAME_PATTERN, "maxLength": max});
    vec![
        ("CreateOrgRequest", "slug", json!({"pattern": SLUG_PATTERN})),
        ("CreateOrgRequest", "name", name(200)),
        (
            "CreateOrgRequest",
            "metadata",
            json!({
                "maxProperties": portal_core::tenancy::Metadata::MAX_ENTRIES,
                "propertyNames": {"type": "string", "pattern": METADATA_KEY_PATTERN},
                "additionalProperties": {"type": "string", "maxLength": 1024, "pattern": NO_NUL_PATTERN},
            }),
        ),
        (
            "InviteRequest",
            "email",
            json!({"pattern": EMAIL_PATTERN, "maxLength": 254}),
        ),
        ("InviteRequest", "roles", json!({"minItems": 1})),
        ("CreateApiKeyRequest", "name", name(100)),
        (
            "CreateApiKeyRequest",
            "scopes",
            json!({"minItems": 1, "maxItems": 64, "items": {"type": "string", "pattern": SCOPE_PATTERN}}),
        ),
        ("RoleView", "parent", json!({"pattern": ROLE_NAME_PATTERN})),
        (
            "RolePermissionView",
            "object",
            json!({"pattern": PERMISSION_OBJECT_PATTERN, "maxLength": 256}),
        ),
        (
            "RolePermissionView",
            "action",
            json!({"pattern": PERMISSION_ACTION_PATTERN}),
        ),
        ("DelegationRequest", "starts_at", json!({"format": "date-time"})),
        ("DelegationRequest", "ends_at", json!({"format": "date-time"})),
        ("VoteRequestBody", "on_behalf_of", json!({"pattern": id_pattern("usr")})),
    ]
}

/// The payload schema of each shipped definition, by name: the fields of
/// `portal_core::workflow::catalog`'s payload types (unknown fields are kept as sent).
fn payload_schemas() -> Vec<(&'static str, Value)> {
    let text = json!({"type": "string", "pattern": NO_NUL_PATTERN});
    let cents = json!({"type": "integer", "minimum": 0, "maximum": u64::MAX});
    vec![
        (
            "support_case",
            json!({
                "type": "object",
                "description": "A support case (`catalog::SupportCase`).",
                "required": ["subject"],
                "propertyNames": {"type": "string", "pattern": NO_NUL_PATTERN},
                "properties": {
                    "subject": text,
                    "customer_reference": {"type": ["string", "null"], "pattern": NO_NUL_PATTERN},
                },
            }),
        ),
        (
            "return_request",
            json!({
                "type": "object",
                "description": "A return request (`catalog::ReturnRequest`).",
                "required": ["order_id", "amount_cents", "reason"],
                "propertyNames": {"type": "string", "pattern": NO_NUL_PATTERN},
                "properties": {"order_id": text, "amount_cents": cents, "reason": text},
            }),
        ),
        (
            "quote_approval",
            json!({
                "type": "object",
                "description": "A quote (`catalog::Quote`).",
                "required": ["customer", "amount_cents"],
                "propertyNames": {"type": "string", "pattern": NO_NUL_PATTERN},
                "properties": {"customer": text, "amount_cents": cents},
            }),
        ),
    ]
}

/// Every transition name of the shipped definitions, and those with an approval rule.
fn transition_names() -> (Vec<String>, Vec<String>) {
    let mut all = Vec::new();
    let mut voted = Vec::new();
    for definition in catalog::all().unwrap_or_default() {
        for transition in definition.transitions() {
            all.push(transition.name().to_owned());
            if transition.approval().is_some() {
                voted.push(transition.name().to_owned());
            }
        }
    }
    for names in [&mut all, &mut voted] {
        names.sort();
        names.dedup();
    }
    (all, voted)
}

/// Request objects of any shape (a transition's or a vote's input, a payload): their keys
/// carry no NUL either (nor, at any depth, do their strings, which no schema here states).
const FREE_OBJECTS: &[(&str, &str)] = &[
    ("TransitionRequest", "input"),
    ("VoteRequestBody", "input"),
    ("CreateWorkflowRequest", "payload"),
];

/// Merges `keywords` into the object `target`.
fn merge(target: &mut Value, keywords: &Value) {
    if let (Some(target), Some(keywords)) = (target.as_object_mut(), keywords.as_object()) {
        for (key, value) in keywords {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Every operation of the document, by its `operationId`.
fn operations(doc: &mut Value) -> Vec<(String, &mut Map<String, Value>)> {
    let mut found = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            if let Some(item) = item.as_object_mut() {
                for operation in item.values_mut() {
                    if let Some(operation) = operation.as_object_mut()
                        && let Some(id) = operation.get("operationId").and_then(Value::as_str)
                    {
                        found.push((id.to_owned(), operation));
                    }
                }
            }
        }
    }
    found
}

/// The schema of `operation`'s parameter `name`.
fn parameter_schema<'a>(operation: &'a mut Map<String, Value>, name: &str) -> Option<&'a mut Value> {
    operation
        .get_mut("parameters")?
        .as_array_mut()?
        .iter_mut()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get_mut("schema")
}

/// Whether `schema` is a string schema (`"string"` or `["string", "null"]`).
fn is_string(schema: &Map<String, Value>) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(types)) => types.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// Adds [`NO_NUL_PATTERN`] to `schema` and every schema under it that is a string
/// without a pattern, an enum or a date-time format.
fn forbid_nul(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let free = is_string(map)
                && !map.contains_key("pattern")
                && !map.contains_key("enum")
                && !map.contains_key("const")
                && map.get("format").and_then(Value::as_str) != Some("date-time");
            if free {
                map.insert("pattern".to_owned(), json!(NO_NUL_PATTERN));
            }
            for value in map.values_mut() {
                forbid_nul(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// Whether the component `name` describes a request body (the NUL rule is the edge's,
/// on what clients send).
fn is_request_schema(name: &str) -> bool {
    name.ends_with("Request") || name.ends_with("RequestBody") || matches!(name, "RoleView" | "RolePermissionView")
}

/// Writes the rules above into `doc`, the document utoipa built.
pub fn tighten(doc: &mut Value) {
    let (transitions, voted) = transition_names();
    let cursors = cursor_patterns();
    let queries = query_rules();
    for (id, operation) in operations(doc) {
        if let Some((_, pattern)) = cursors.iter().find(|(op, _)| *op == id)
            && let Some(schema) = parameter_schema(operation, "cursor")
        {
            merge(schema, &json!({"pattern": pattern}));
        }
        for (_, name, keywords) in queries.iter().filter(|(op, _, _)| *op == id) {
            if let Some(schema) = parameter_schema(operation, name) {
                merge(schema, keywords);
            }
        }
        if id == "transition_workflow"
            && let Some(schema) = parameter_schema(operation, "transition")
        {
            merge(schema, &json!({"enum": transitions}));
        }
        if let Some(parameters) = operation.get_mut("parameters") {
            forbid_nul(parameters);
        }
    }
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) else {
        return;
    };
    for (schema, property, keywords) in body_rules() {
        if let Some(target) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(property))
        {
            merge(target, &keywords);
        }
    }
    if let Some(role) = schemas.get_mut("RoleView") {
        merge(
            role,
            &json!({"anyOf": [
                {"required": ["parent"], "properties": {"parent": {"type": "string"}}},
                {"properties": {"permissions": {"minItems": 1}}},
            ],
            "description": "A custom role of an org: at least one permission, or a parent (another role than itself)."}),
        );
    }
    if let Some(vote) = schemas
        .get_mut("VoteRequestBody")
        .and_then(|s| s.pointer_mut("/properties/transition"))
    {
        merge(vote, &json!({"enum": voted}));
    }
    if let Some(create) = schemas.get_mut("CreateWorkflowRequest") {
        let payloads = payload_schemas();
        let names: Vec<&str> = payloads.iter().map(|(name, _)| *name).collect();
        if let Some(definition) = create.pointer_mut("/properties/definition") {
            merge(definition, &json!({"enum": names}));
        }
        let one_of: Vec<Value> = payloads
            .into_iter()
            .map(|(name, payload)| {
                json!({
                    "title": name,
                    "properties": {"definition": {"const": name}, "payload": payload},
                })
            })
            .collect();
        merge(create, &json!({"oneOf": one_of}));
    }
    for (name, schema) in schemas.iter_mut() {
        if is_request_schema(name) {
            forbid_nul(schema);
        }
    }
    for (schema, property) in FREE_OBJECTS {
        if let Some(target) = schemas
            .get_mut(*schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
        {
            merge(
                target,
                &json!({"propertyNames": {"type": "string", "pattern": NO_NUL_PATTERN}}),
            );
        }
    }
}
