//! The rules of the `/v1` contract that the DTOs' derives cannot state, written into the
//! OpenAPI document so that a request the document allows is one the server accepts (and
//! one it forbids, the server refuses): lengths, patterns and item counts as the services
//! enforce them, RFC 3339 times, cursors, the payload of each workflow definition, the
//! transition names, and that no string carries a NUL (the edge refuses it everywhere, see
//! [`input`](crate::input)); and the links between operations (create an org, then read
//! it; create a workflow, then read, move, assign it; …).
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

/// A note that may be empty or only white space, without control characters (`Cc`). Its
/// length is bounded by the field's `maxLength`.
pub const FREE_TEXT_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

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

/// An audit action filter, as `portal_core::audit::AuditAction` takes it: dotted
/// lowercase segments, each starting with a letter, 3 to 64 bytes.
pub const AUDIT_ACTION_PATTERN: &str = "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$";

fn audit_action() -> Value {
    json!({"pattern": AUDIT_ACTION_PATTERN, "minLength": 3, "maxLength": 64})
}

/// A webhook endpoint's event type: an audit action's name, as [`audit_action`].
fn event_type() -> Value {
    let mut schema = audit_action();
    merge(&mut schema, &json!({"type": "string"}));
    schema
}

/// An audit actor or target filter: 1 to 128 visible ASCII characters.
fn audit_id() -> Value {
    json!({"pattern": "^[!-~]{1,128}$"})
}

/// Query parameters with a format or pattern: operation, parameter, schema keywords.
fn query_rules() -> Vec<(&'static str, &'static str, Value)> {
    let time = json!({"format": "date-time"});
    vec![
        ("timeline", "from", time.clone()),
        ("timeline", "until", time.clone()),
        ("export_events", "from", time.clone()),
        ("export_events", "until", time.clone()),
        ("list_workflows", "assignee", json!({"pattern": id_pattern("usr")})),
        ("list_audit_events", "from", time.clone()),
        ("list_audit_events", "until", time.clone()),
        ("export_audit_events", "from", time.clone()),
        ("export_audit_events", "until", time),
        ("list_audit_events", "action", audit_action()),
        ("export_audit_events", "action", audit_action()),
        ("list_audit_events", "actor", audit_id()),
        ("export_audit_events", "actor", audit_id()),
        ("list_audit_events", "target", audit_id()),
        ("export_audit_events", "target", audit_id()),
    ]
}

/// Body properties with their rules: schema, property, keywords merged into it.
fn body_rules() -> Vec<(&'static str, &'static str, Value)> {
    let name = |max: u32| json!({"pattern": NAME_PATTERN, "maxLength": max});
    let free_text = |max: usize| json!({"pattern": FREE_TEXT_PATTERN, "maxLength": max});
    let metadata = || {
        json!({
            "maxProperties": portal_core::tenancy::Metadata::MAX_ENTRIES,
            "propertyNames": {"type": "string", "pattern": METADATA_KEY_PATTERN},
            "additionalProperties": {"type": "string", "maxLength": 1024, "pattern": NO_NUL_PATTERN},
        })
    };
    vec![
        ("CreateOrgRequest", "slug", json!({"pattern": SLUG_PATTERN})),
        ("CreateOrgRequest", "name", name(200)),
        ("CreateOrgRequest", "metadata", metadata()),
        ("UpdateOrgRequest", "name", name(200)),
        ("UpdateOrgRequest", "metadata", metadata()),
        (
            "InviteRequest",
            "email",
            json!({"pattern": EMAIL_PATTERN, "maxLength": 254}),
        ),
        (
            "InviteRequest",
            "roles",
            json!({"minItems": 1, "maxItems": portal_core::tenancy::RoleSet::MAX}),
        ),
        (
            "GroupRolesRequest",
            "roles",
            json!({"maxItems": portal_core::tenancy::RoleSet::MAX}),
        ),
        (
            "PasswordResetRequest",
            "email",
            json!({"pattern": EMAIL_PATTERN, "maxLength": 254}),
        ),
        (
            "PasswordResetConfirm",
            "token",
            json!({"pattern": "^prt_[0-9a-hjkmnp-tv-z]{58}$"}),
        ),
        (
            "VerifyEmailRequest",
            "token",
            json!({"pattern": "^pev_[0-9a-hjkmnp-tv-z]{58}$"}),
        ),
        (
            "ConfirmEmailChangeRequest",
            "token",
            json!({"pattern": "^pec_[0-9a-hjkmnp-tv-z]{58}$"}),
        ),
        (
            "EmailChangeRequestBody",
            "email",
            json!({"pattern": EMAIL_PATTERN, "maxLength": 254}),
        ),
        ("EmailChangeRequestBody", "code", totp_code()),
        ("EmailChangeRequestBody", "recovery_code", recovery_code()),
        (
            "MfaChallengeRequest",
            "challenge_token",
            json!({"pattern": "^pmc_[0-9a-hjkmnp-tv-z]{58}$"}),
        ),
        (
            "MfaPasskeyOptionsRequest",
            "challenge_token",
            json!({"pattern": "^pmc_[0-9a-hjkmnp-tv-z]{58}$"}),
        ),
        (
            "MfaPasskeyChallengeRequest",
            "challenge_token",
            json!({"pattern": "^pmc_[0-9a-hjkmnp-tv-z]{58}$"}),
        ),
        ("MfaChallengeRequest", "code", totp_code()),
        ("MfaChallengeRequest", "recovery_code", recovery_code()),
        ("ConfirmTotpRequest", "code", totp_code()),
        ("SecondFactorRequest", "code", totp_code()),
        ("SecondFactorRequest", "recovery_code", recovery_code()),
        ("RemoveTotpRequest", "code", totp_code()),
        ("RemoveTotpRequest", "recovery_code", recovery_code()),
        ("CreateApiKeyRequest", "name", name(100)),
        (
            "CreateWebhookEndpointRequest",
            "description",
            free_text(portal_core::webhooks::MAX_DESCRIPTION),
        ),
        (
            "UpdateWebhookEndpointRequest",
            "description",
            free_text(portal_core::webhooks::MAX_DESCRIPTION),
        ),
        // An event type is an audit action's name (`EventTypes::parse`); which names the
        // catalog holds the document cannot enumerate (a host adds its own).
        (
            "CreateWebhookEndpointRequest",
            "event_types",
            json!({"items": event_type()}),
        ),
        (
            "UpdateWebhookEndpointRequest",
            "event_types",
            json!({"items": event_type()}),
        ),
        ("BeginPasskeyRegistrationRequest", "code", totp_code()),
        ("BeginPasskeyRegistrationRequest", "recovery_code", recovery_code()),
        (
            "CreateSupportGrantRequest",
            "reason",
            name(portal_core::support::SupportReason::MAX_CHARS as u32),
        ),
        (
            "CreateApiKeyRequest",
            "scopes",
            json!({"minItems": 1, "maxItems": 64, "items": {"type": "string", "pattern": SCOPE_PATTERN}}),
        ),
        ("RoleView", "parent", json!({"pattern": ROLE_NAME_PATTERN})),
        ("RoleUpdate", "parent", json!({"pattern": ROLE_NAME_PATTERN})),
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

/// A TOTP code: six digits.
fn totp_code() -> Value {
    json!({"pattern": "^[0-9]{6}$"})
}

/// A recovery code: 16 base32 characters, in groups of four with or without dashes.
fn recovery_code() -> Value {
    json!({"pattern": "^[a-zA-Z2-7]{4}(-?[a-zA-Z2-7]{4}){3}$", "maxLength": 19})
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

/// A link to declare: the operation it leads to, its description, its parameters.
type Link = (&'static str, &'static str, Value);

/// The OpenAPI links between operations, for schemathesis' stateful phase (and for
/// readers): a success of the first operation (its status) feeds the parameters of the
/// next. `$response.body#/…` reads the answer, `$request.path.…` the request that made it.
fn links() -> Vec<(&'static str, &'static str, Vec<Link>)> {
    let org = "$request.path.org_id";
    let read = |next| {
        (
            next,
            "the new instance",
            json!({"org_id": org, "workflow_id": "$response.body#/id"}),
        )
    };
    let change = |next| {
        (
            next,
            "the new instance, at the version read",
            json!({"org_id": org, "workflow_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"}),
        )
    };
    vec![
        (
            "create_org",
            "201",
            vec![
                ("get_org", "the new org", json!({"org_id": "$response.body#/id"})),
                (
                    "list_members",
                    "its members (the caller, its owner)",
                    json!({"org_id": "$response.body#/id"}),
                ),
                (
                    "list_workflows",
                    "its workflows",
                    json!({"org_id": "$response.body#/id"}),
                ),
                (
                    "get_mfa_policy",
                    "its MFA policy",
                    json!({"org_id": "$response.body#/id"}),
                ),
            ],
        ),
        (
            "create_workflow",
            "201",
            vec![
                read("get_workflow"),
                read("workflow_history"),
                change("transition_workflow"),
                change("assign_workflow"),
                change("vote_workflow"),
            ],
        ),
        (
            "create_role",
            "201",
            vec![(
                "delete_role",
                "the new role",
                json!({"org_id": org, "role": "$response.body#/name"}),
            )],
        ),
        (
            "invite",
            "201",
            vec![(
                "revoke_invitation",
                "the new invitation",
                json!({"org_id": org, "invitation_id": "$response.body#/invitation/id"}),
            )],
        ),
        (
            "create_api_key",
            "201",
            vec![(
                "revoke_api_key",
                "the new key",
                json!({"org_id": org, "key_id": "$response.body#/api_key/id"}),
            )],
        ),
        (
            "create_support_grant",
            "201",
            vec![(
                "revoke_support_grant",
                "the new grant",
                json!({"org_id": org, "grant_id": "$response.body#/id"}),
            )],
        ),
    ]
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
    name.ends_with("Request")
        || name.ends_with("RequestBody")
        || matches!(name, "RoleView" | "RoleUpdate" | "RolePermissionView")
}

/// Writes the rules above into `doc`, the document utoipa built.
pub fn tighten(doc: &mut Value) {
    let (transitions, voted) = transition_names();
    let cursors = cursor_patterns();
    let queries = query_rules();
    let links = links();
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
        for (_, status, targets) in links.iter().filter(|(op, _, _)| *op == id) {
            if let Some(response) = operation.get_mut("responses").and_then(|r| r.get_mut(*status)) {
                let mut declared = Map::new();
                for (target, description, parameters) in targets {
                    declared.insert(
                        (*target).to_owned(),
                        json!({"operationId": target, "description": description, "parameters": parameters}),
                    );
                }
                merge(response, &json!({"links": declared}));
            }
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
    if let Some(role) = schemas.get_mut("RoleUpdate") {
        merge(
            role,
            &json!({"anyOf": [
                {"required": ["parent"], "properties": {"parent": {"type": "string"}}},
                {"properties": {"permissions": {"minItems": 1}}},
            ],
            "description": "A custom role's new parent and permissions, replacing the old ones: at least one permission, or a parent (another role than itself)."}),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use std::collections::BTreeMap;

    use portal_core::access::{Domain, Effect, PolicyLine, PolicyRule, Scope};
    use portal_core::tenancy::{Email, Metadata, OrgName, Slug};
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;

    /// The document's pattern as Rust's `regex` reads it (the same ECMA subset: classes,
    /// `\u` escapes, `\s`, counted repetition; no look-around).
    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap()
    }

    /// Text of the alphabet that matters to the rules (letters of both cases, digits, the
    /// punctuation the rules name, a space, a control, a NUL, a non-ASCII letter).
    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                4 => proptest::char::range('a', 'z'),
                1 => proptest::char::range('A', 'Z'),
                2 => proptest::char::range('0', '9'),
                3 => proptest::sample::select(vec!['-', '_', '.', '/', '*', ' ', '@', ':', '=', '~', ',', '\u{0}', '\u{7}', '\u{85}', 'é', '{', '}']),
            ],
            0..80,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn permission_ok(object: &str, action: &str) -> bool {
        let line = PolicyLine::Permission(PolicyRule {
            subject: "reports-reader".into(),
            domain: Domain::AllOrgs,
            object: object.into(),
            action: action.into(),
            effect: Effect::Allow,
        });
        portal_auth::CasbinAuthorizer::new([&line]).is_ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Exact patterns: the document allows a value exactly when the server takes it.
        #[test]
        fn exact_patterns_are_the_servers_rules(s in text()) {
            prop_assert_eq!(re(SLUG_PATTERN).is_match(&s), Slug::new(&s).is_ok(), "slug {:?}", s);
            let key_ok = Metadata::new(BTreeMap::from([(s.clone(), String::new())])).is_ok();
            prop_assert_eq!(re(METADATA_KEY_PATTERN).is_match(&s), key_ok, "metadata key {:?}", s);
            prop_assert_eq!(re(PERMISSION_ACTION_PATTERN).is_match(&s), permission_ok("reports", &s), "action {:?}", s);
            prop_assert_eq!(re(NO_NUL_PATTERN).is_match(&s), !s.contains('\u{0}'));
        }

        /// Patterns the document states as a subset: whatever they allow, the server takes.
        #[test]
        fn subset_patterns_only_allow_what_the_server_takes(s in text(), t in text()) {
            if re(PERMISSION_OBJECT_PATTERN).is_match(&s) && s.len() <= 256 {
                prop_assert!(permission_ok(&s, "read"), "object {:?}", s);
            }
            let scope = format!("{s} {t}");
            if re(SCOPE_PATTERN).is_match(&scope) {
                prop_assert!(scope.parse::<Scope>().is_ok(), "scope {:?}", scope);
            }
            let email = format!("{s}@{t}.example");
            if re(EMAIL_PATTERN).is_match(&email) {
                prop_assert!(Email::new(&email).is_ok(), "email {:?}", email);
            }
            if re(NAME_PATTERN).is_match(&s) && s.chars().count() <= 200 {
                prop_assert!(OrgName::new(&s).is_ok(), "name {:?}", s);
            }
        }
    }

    #[test]
    fn the_patterns_take_and_refuse_the_obvious_cases() {
        assert!(re(SCOPE_PATTERN).is_match("cases/* read"));
        assert!(re(SCOPE_PATTERN).is_match("* *"));
        assert!(!re(SCOPE_PATTERN).is_match("cases/*"));
        assert!(re(EMAIL_PATTERN).is_match("new.hire@acme.example"));
        assert!(!re(EMAIL_PATTERN).is_match("new hire@acme.example"));
        assert!(re(NAME_PATTERN).is_match(" Initech "));
        assert!(!re(NAME_PATTERN).is_match("   "));
        assert!(!re(NAME_PATTERN).is_match("Ini\u{7}tech"));
        assert!(re(&event_cursor_pattern()).is_match("1733500000000000.evt_01jd5x8y6kf3w9q2m7c4t0vbnr"));
        let position =
            portal_core::diagnostics::EventPosition::from_cursor("1733500000000000.evt_01jd5x8y6kf3w9q2m7c4t0vbnr");
        assert!(
            position.is_some(),
            "a cursor the pattern allows is one the journal reads"
        );
    }

    /// The document after [`tighten`].
    fn document() -> Value {
        serde_json::from_str(&crate::openapi::openapi_json()).unwrap()
    }

    #[test]
    fn each_definitions_payload_schema_is_its_payload_type() {
        let doc = document();
        let variants = doc["components"]["schemas"]["CreateWorkflowRequest"]["oneOf"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = variants
            .iter()
            .map(|v| v["properties"]["definition"]["const"].as_str().unwrap())
            .collect();
        let shipped: Vec<String> = catalog::all().unwrap().iter().map(|d| d.name().to_owned()).collect();
        assert_eq!(names, shipped);
        for variant in variants {
            let payload = &variant["properties"]["payload"];
            // The smallest payload the schema allows: its required fields, strings empty and
            // integers at their maximum; the definition's type must take it.
            let mut sample = serde_json::Map::new();
            for field in payload["required"].as_array().unwrap() {
                let field = field.as_str().unwrap();
                let value = match payload["properties"][field]["type"].as_str() {
                    Some("integer") => payload["properties"][field]["maximum"].clone(),
                    _ => json!(""),
                };
                sample.insert(field.to_owned(), value);
            }
            let sample = Value::Object(sample);
            let taken = match variant["properties"]["definition"]["const"].as_str().unwrap() {
                "support_case" => serde_json::from_value::<catalog::SupportCase>(sample.clone()).is_ok(),
                "return_request" => serde_json::from_value::<catalog::ReturnRequest>(sample.clone()).is_ok(),
                "quote_approval" => serde_json::from_value::<catalog::Quote>(sample.clone()).is_ok(),
                other => panic!("no payload type for {other}"),
            };
            assert!(taken, "{sample}");
            // Without a required field, the type refuses it.
            for field in payload["required"].as_array().unwrap() {
                let mut short = sample.clone();
                short.as_object_mut().unwrap().remove(field.as_str().unwrap());
                let taken = match variant["properties"]["definition"]["const"].as_str().unwrap() {
                    "support_case" => serde_json::from_value::<catalog::SupportCase>(short).is_ok(),
                    "return_request" => serde_json::from_value::<catalog::ReturnRequest>(short).is_ok(),
                    _ => serde_json::from_value::<catalog::Quote>(short).is_ok(),
                };
                assert!(!taken, "{field} is required");
            }
        }
    }

    #[test]
    fn the_transition_names_are_the_shipped_definitions() {
        let doc = document();
        let operation = &doc["paths"]["/v1/orgs/{org_id}/workflows/{workflow_id}/transitions/{transition}"]["post"];
        let transition = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "transition")
            .unwrap();
        let names = transition["schema"]["enum"].as_array().unwrap();
        for definition in catalog::all().unwrap() {
            for t in definition.transitions() {
                assert!(names.contains(&json!(t.name())), "{}", t.name());
            }
        }
        let vote = &doc["components"]["schemas"]["VoteRequestBody"]["properties"]["transition"]["enum"];
        assert_eq!(vote, &json!(["approve"]));
    }

    /// Every link names an operation of the document, sets only parameters that operation
    /// has, from a response field its source's schema has; the pairs the stateful phase
    /// walks are there.
    #[test]
    fn every_link_leads_to_an_operation_and_its_parameters() {
        let doc = document();
        let mut operations = BTreeMap::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                if let Some(id) = operation["operationId"].as_str() {
                    operations.insert(id.to_owned(), operation.clone());
                }
            }
        }
        let mut pairs = Vec::new();
        for (source, operation) in &operations {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(links) = response["links"].as_object() else {
                    continue;
                };
                let body = response["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .map(|name| doc["components"]["schemas"][name].clone())
                    .unwrap();
                for (name, link) in links {
                    let target = &operations[link["operationId"].as_str().unwrap()];
                    pairs.push((source.clone(), status.clone(), name.clone()));
                    for (parameter, expression) in link["parameters"].as_object().unwrap() {
                        let (location, parameter) = parameter.split_once('.').unwrap_or(("", parameter));
                        let known = target["parameters"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|p| p["name"] == parameter && (location.is_empty() || p["in"] == location));
                        assert!(known, "{source} → {name}: no parameter {parameter}");
                        let expression = expression.as_str().unwrap();
                        if let Some(pointer) = expression.strip_prefix("$response.body#") {
                            let mut schema = body.clone();
                            for field in pointer.split('/').skip(1) {
                                schema = schema["properties"][field].clone();
                                if let Some(name) = schema["$ref"]
                                    .as_str()
                                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                                {
                                    schema = doc["components"]["schemas"][name].clone();
                                }
                            }
                            assert!(!schema.is_null(), "{source} → {name}: the answer has no {pointer}");
                        } else if let Some(path) = expression.strip_prefix("$request.path.") {
                            assert!(
                                operation["parameters"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .any(|p| p["name"] == path),
                                "{source} → {name}: the request has no {path}"
                            );
                        } else {
                            assert_eq!(expression, "$response.header.ETag", "{source} → {name}");
                        }
                    }
                }
            }
        }
        for (source, target) in [
            ("create_org", "get_org"),
            ("create_workflow", "get_workflow"),
            ("create_workflow", "transition_workflow"),
            ("create_workflow", "workflow_history"),
            ("create_role", "delete_role"),
            ("invite", "revoke_invitation"),
            ("create_api_key", "revoke_api_key"),
        ] {
            assert!(
                pairs.iter().any(|(s, _, t)| s == source && t == target),
                "{source} → {target}"
            );
        }
    }

    #[test]
    fn every_request_string_refuses_nul() {
        let doc = document();
        fn walk(schema: &Value, at: &str) {
            if let Some(map) = schema.as_object() {
                if is_string(map) {
                    let pattern = map.get("pattern").and_then(Value::as_str);
                    let constrained = map.contains_key("enum")
                        || map.contains_key("const")
                        || map.get("format").and_then(Value::as_str) == Some("date-time");
                    assert!(
                        constrained || pattern.is_some_and(|p| !Regex::new(p).unwrap().is_match("a\u{0}b")),
                        "{at} takes a NUL"
                    );
                }
                for (key, value) in map {
                    walk(value, &format!("{at}/{key}"));
                }
            } else if let Some(items) = schema.as_array() {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}/{i}"));
                }
            }
        }
        for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
            if is_request_schema(name) {
                walk(schema, name);
            }
        }
    }
}
