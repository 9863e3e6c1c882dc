//! SCIM PATCH (RFC 7644 §3.5.2) applied to a user or a group, with the quirks Okta and
//! Microsoft Entra ID send: op names in any case (`Replace`, `add`), `value` as an object
//! without a `path` (`{"op": "replace", "value": {"active": false}}`), `active` as the
//! string `"False"`, members as one object or an array, and `remove` with a path filter
//! (`members[value eq "usr_…"]`) or with the members in `value`.
//!
//! The result is the resource's new attributes ([`NewScimUser`], [`NewScimGroup`]), which
//! the caller stores with [`ScimService::replace_user`](super::ScimService::replace_user)
//! or [`replace_group`](super::ScimService::replace_group), so a PATCH follows the same
//! rules as a PUT.

use serde_json::Value;

use super::{NewScimGroup, NewScimUser, ScimEmail, ScimGroup, ScimProfile, ScimUser};
use crate::error::PortalError;
use crate::ids::UserId;

/// The schema a PATCH request names.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The most operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1_000;

/// User attributes of RFC 7643's core schema this server accepts and does not store.
const IGNORED_USER_ATTRIBUTES: &[&str] = &[
    "nickname",
    "profileurl",
    "title",
    "usertype",
    "preferredlanguage",
    "locale",
    "timezone",
    "phonenumbers",
    "addresses",
    "ims",
    "photos",
    "roles",
    // `groups` is read-only (RFC 7643 §4.1.2): Okta sends `"groups": []` on create.
    "groups",
    "entitlements",
    "x509certificates",
];

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `add`.
    Add,
    /// `remove`.
    Remove,
    /// `replace`.
    Replace,
}

/// One operation of a PATCH request.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    /// The operation.
    pub op: OpKind,
    /// The attribute path, if any.
    pub path: Option<String>,
    /// The value, if any.
    pub value: Option<Value>,
}

fn invalid(param: &'static str, message: impl Into<String>) -> PortalError {
    PortalError::invalid_field(param, message)
}

/// Reads a PATCH request body: `schemas` must name [`PATCH_OP_SCHEMA`] and `Operations`
/// hold 1 to [`MAX_OPERATIONS`] operations whose `op` is `add`, `remove` or `replace` in
/// any case.
///
/// # Errors
///
/// `validation.invalid_field`: param `schemas` for a missing or wrong schema, `Operations`
/// for a missing, empty or oversized list, `op` for an unknown operation, `path` for a
/// path that is not a string or a `remove` without one.
pub fn parse_ops(body: &Value) -> Result<Vec<PatchOp>, PortalError> {
    let schemas = body.get("schemas").and_then(Value::as_array);
    if !schemas.is_some_and(|s| s.iter().any(|s| s.as_str() == Some(PATCH_OP_SCHEMA))) {
        return Err(invalid(
            "schemas",
            format!("a PATCH names the schema `{PATCH_OP_SCHEMA}`"),
        ));
    }
    let ops = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| invalid("Operations", "a PATCH carries at least one operation"))?;
    if ops.len() > MAX_OPERATIONS {
        return Err(invalid(
            "Operations",
            format!("a PATCH carries at most {MAX_OPERATIONS} operations"),
        ));
    }
    ops.iter()
        .map(|op| {
            let kind = match op
                .get("op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => OpKind::Add,
                Some("remove") => OpKind::Remove,
                Some("replace") => OpKind::Replace,
                _ => return Err(invalid("op", "an operation is `add`, `remove` or `replace`")),
            };
            let path = match op.get("path") {
                None | Some(Value::Null) => None,
                Some(Value::String(path)) if !path.trim().is_empty() => Some(path.trim().to_owned()),
                Some(_) => return Err(invalid("path", "a path is a non-empty string")),
            };
            if kind == OpKind::Remove && path.is_none() && op.get("value").is_none() {
                return Err(invalid("path", "a `remove` names a path"));
            }
            Ok(PatchOp {
                op: kind,
                path,
                value: op.get("value").cloned(),
            })
        })
        .collect()
}

/// The schema URN of a User resource.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The schema URN of the enterprise extension of a User (RFC 7643 §4.3).
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The schema URN of a Group resource.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Checks a resource's `schemas`, when sent: a list of strings naming `core` and nothing
/// but `allowed` (RFC 7643 §3: a resource names its core schema and its extensions).
/// A resource without `schemas` is taken as the core schema's (identity providers
/// that omit it mean nothing else).
fn check_schemas(fields: &serde_json::Map<String, Value>, core: &str, allowed: &[&str]) -> Result<(), PortalError> {
    let Some((_, schemas)) = fields.iter().find(|(name, _)| name.eq_ignore_ascii_case("schemas")) else {
        return Ok(());
    };
    let Some(list) = schemas.as_array() else {
        return Err(invalid("schemas", "`schemas` is a list of schema URNs"));
    };
    let mut names = Vec::with_capacity(list.len());
    for schema in list {
        let Some(name) = schema.as_str() else {
            return Err(invalid("schemas", "`schemas` is a list of schema URNs"));
        };
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return Err(invalid(
                "schemas",
                format!("this resource does not take the schema `{name}`"),
            ));
        }
        names.push(name);
    }
    if !names.iter().any(|n| n.eq_ignore_ascii_case(core)) {
        return Err(invalid("schemas", format!("`schemas` names `{core}`")));
    }
    Ok(())
}

/// The attribute a path names, without its schema URN, lowercased.
fn attribute(path: &str) -> String {
    let lower = path.to_ascii_lowercase();
    match lower.strip_prefix("urn:ietf:params:scim:schemas:core:2.0:") {
        Some(rest) => rest.split_once(':').map_or(rest, |(_, attr)| attr).to_owned(),
        None => lower,
    }
}

fn text(value: Option<&Value>, param: &'static str) -> Result<Option<String>, PortalError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(param, "the value is not a string")),
    }
}

/// `active` as a boolean, or the strings `"true"`/`"false"` in any case (Entra).
fn boolean(value: Option<&Value>) -> Result<bool, PortalError> {
    match value {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid("value", "`active` is true or false")),
    }
}

/// Applies `ops` to `user` and answers its new attributes.
///
/// # Errors
///
/// `validation.invalid_field`: param `path` for a path this server does not support or
/// that names no attribute of a user, `value` for a value of the wrong type.
pub fn apply_to_user(user: &ScimUser, ops: &[PatchOp]) -> Result<NewScimUser, PortalError> {
    let mut out = NewScimUser {
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone(),
        active: user.active,
        profile: user.profile.clone(),
    };
    for op in ops {
        match &op.path {
            Some(path) => set_user(&mut out, op.op, &attribute(path), op.value.as_ref())?,
            None => {
                let Some(Value::Object(fields)) = &op.value else {
                    return Err(invalid("value", "an operation without a path carries an object"));
                };
                set_user_fields(&mut out, op.op, fields)?;
            }
        }
    }
    Ok(out)
}

/// Sets every attribute of a user resource's `fields` (`schemas`, `id` and `meta`, which
/// the server owns, are skipped).
fn set_user_fields(
    out: &mut NewScimUser,
    op: OpKind,
    fields: &serde_json::Map<String, Value>,
) -> Result<(), PortalError> {
    for (name, value) in fields {
        let name = attribute(name);
        if name == "schemas" || name == "id" || name == "meta" {
            continue;
        }
        set_user(out, op, &name, Some(value))?;
    }
    Ok(())
}

/// Reads a User resource as a POST or PUT sends it (RFC 7644 §3.3, §3.5.1): the
/// attributes a PATCH `replace` may set, `active` `true` when absent (or a string, as
/// Entra sends it), `password` accepted and not kept (sign-in goes through the org's
/// identity provider), the attributes [`apply_to_user`] ignores ignored.
///
/// # Errors
///
/// `validation.invalid_field`: param `value` for a body that is not an object or a value
/// of the wrong type, `path` for an attribute this server does not support. A missing
/// `userName` is left empty, which [`ScimService`](super::ScimService) refuses (param
/// `userName`).
pub fn user_from_resource(body: &Value) -> Result<NewScimUser, PortalError> {
    let Value::Object(fields) = body else {
        return Err(invalid("value", "a User resource is a JSON object"));
    };
    check_schemas(fields, USER_SCHEMA, &[USER_SCHEMA, ENTERPRISE_USER_SCHEMA])?;
    let mut out = NewScimUser {
        user_name: String::new(),
        external_id: None,
        active: true,
        profile: ScimProfile::default(),
    };
    let mut fields = fields.clone();
    fields.retain(|name, _| !name.eq_ignore_ascii_case("password"));
    set_user_fields(&mut out, OpKind::Replace, &fields)?;
    Ok(out)
}

fn set_user(user: &mut NewScimUser, op: OpKind, attr: &str, value: Option<&Value>) -> Result<(), PortalError> {
    let removing = op == OpKind::Remove;
    let name = &mut user.profile.name;
    match attr {
        "active" => user.active = if removing { false } else { boolean(value)? },
        "username" if !removing => {
            user.user_name = text(value, "value")?.ok_or_else(|| invalid("value", "`userName` is required"))?;
        }
        "externalid" => user.external_id = if removing { None } else { text(value, "value")? },
        "displayname" => user.profile.display_name = if removing { None } else { text(value, "value")? },
        "name.givenname" => name.given_name = if removing { None } else { text(value, "value")? },
        "name.familyname" => name.family_name = if removing { None } else { text(value, "value")? },
        "name.formatted" => name.formatted = if removing { None } else { text(value, "value")? },
        "name" => match value {
            _ if removing => *name = Default::default(),
            Some(Value::Object(parts)) => {
                for (part, v) in parts {
                    set_user(user, op, &format!("name.{}", part.to_ascii_lowercase()), Some(v))?;
                }
            }
            _ => return Err(invalid("value", "`name` is an object")),
        },
        "emails" => {
            if removing {
                user.profile.emails.clear();
                return Ok(());
            }
            let emails = match value {
                Some(Value::Array(items)) => items.iter().map(email).collect::<Result<Vec<_>, _>>()?,
                Some(item @ Value::Object(_)) => vec![email(item)?],
                _ => return Err(invalid("value", "`emails` is a list of objects")),
            };
            if op == OpKind::Replace {
                user.profile.emails = emails;
            } else {
                for e in emails {
                    user.profile
                        .emails
                        .retain(|old| !old.value.eq_ignore_ascii_case(&e.value));
                    user.profile.emails.push(e);
                }
            }
        }
        // Entra: `emails[type eq "work"].value`.
        path if path.starts_with("emails[") && path.ends_with("].value") => {
            let kind = quoted(path).ok_or_else(|| invalid("path", "an emails filter names a type"))?;
            let existing = user
                .profile
                .emails
                .iter()
                .position(|e| e.kind.as_deref().is_some_and(|k| k.eq_ignore_ascii_case(&kind)));
            match (removing, existing) {
                (true, Some(i)) => {
                    user.profile.emails.remove(i);
                }
                (true, None) => {}
                (false, Some(i)) => {
                    user.profile.emails[i].value =
                        text(value, "value")?.ok_or_else(|| invalid("value", "an email address is required"))?;
                }
                (false, None) => {
                    let primary = user.profile.emails.is_empty();
                    user.profile.emails.push(ScimEmail {
                        value: text(value, "value")?.ok_or_else(|| invalid("value", "an email address is required"))?,
                        kind: Some(kind),
                        primary,
                    });
                }
            }
        }
        // Core and enterprise attributes this server does not keep, which Okta and Entra
        // send with every user: accepted and not stored (RFC 7643 §2.2 lets a service
        // provider keep a subset). Any other attribute is an invalid path.
        other
            if IGNORED_USER_ATTRIBUTES.contains(&other.split(['.', '[']).next().unwrap_or(other))
                || other.starts_with("urn:ietf:params:scim:schemas:extension:enterprise:2.0:user") => {}
        _ => return Err(invalid("path", format!("the path `{attr}` is not supported"))),
    }
    Ok(())
}

fn email(item: &Value) -> Result<ScimEmail, PortalError> {
    let value = text(item.get("value"), "value")?.ok_or_else(|| invalid("value", "an email has a `value`"))?;
    Ok(ScimEmail {
        value,
        kind: text(item.get("type"), "value")?,
        primary: item
            .get("primary")
            .map(|p| boolean(Some(p)))
            .transpose()?
            .unwrap_or(false),
    })
}

/// The first `"…"` in `path`.
fn quoted(path: &str) -> Option<String> {
    let start = path.find('"')?;
    let end = path[start + 1..].find('"')? + start + 1;
    Some(path[start + 1..end].to_owned())
}

/// Applies `ops` to `group` and answers its new attributes.
///
/// # Errors
///
/// `validation.invalid_field`: param `path` for an unsupported path, `value` for a
/// member that is not an object with a `value` holding a user id.
pub fn apply_to_group(group: &ScimGroup, ops: &[PatchOp]) -> Result<NewScimGroup, PortalError> {
    let mut out = NewScimGroup {
        display_name: group.display_name.clone(),
        external_id: group.external_id.clone(),
        members: group.members.clone(),
    };
    for op in ops {
        match op.path.as_deref() {
            Some(raw) => set_group(&mut out, op.op, &attribute(raw), raw, op.value.as_ref())?,
            None => {
                let Some(Value::Object(fields)) = &op.value else {
                    return Err(invalid("value", "an operation without a path carries an object"));
                };
                for (name, value) in fields {
                    let name = attribute(name);
                    if name == "schemas" || name == "id" || name == "meta" {
                        continue;
                    }
                    set_group(&mut out, op.op, &name, &name, Some(value))?;
                }
            }
        }
    }
    Ok(out)
}

/// Reads a Group resource as a POST or PUT sends it: `displayName`, `externalId` and
/// `members` (each `{"value": "<user id>"}`), as a PATCH `replace` of each sets them.
///
/// # Errors
///
/// `validation.invalid_field`: param `value` for a body that is not an object or a value
/// of the wrong type (a member id that is no user id included), `path` for an attribute
/// a group does not have. A missing `displayName` is left empty, which
/// [`ScimService`](super::ScimService) refuses.
pub fn group_from_resource(body: &Value) -> Result<NewScimGroup, PortalError> {
    let Value::Object(fields) = body else {
        return Err(invalid("value", "a Group resource is a JSON object"));
    };
    check_schemas(fields, GROUP_SCHEMA, &[GROUP_SCHEMA])?;
    let mut out = NewScimGroup {
        display_name: String::new(),
        external_id: None,
        members: Vec::new(),
    };
    for (name, value) in fields {
        let name = attribute(name);
        if name == "schemas" || name == "id" || name == "meta" {
            continue;
        }
        set_group(&mut out, OpKind::Replace, &name, &name, Some(value))?;
    }
    Ok(out)
}

/// Applies one operation on `attr` (the lowercased attribute of the path `raw`).
fn set_group(
    group: &mut NewScimGroup,
    op: OpKind,
    attr: &str,
    raw: &str,
    value: Option<&Value>,
) -> Result<(), PortalError> {
    match (attr, op) {
        ("displayname", OpKind::Remove) => return Err(invalid("path", "`displayName` is required")),
        ("displayname", _) => {
            group.display_name = text(value, "value")?.ok_or_else(|| invalid("value", "`displayName` is required"))?;
        }
        ("externalid", OpKind::Remove) => group.external_id = None,
        ("externalid", _) => group.external_id = text(value, "value")?,
        ("members", OpKind::Replace) => group.members = members(value)?,
        ("members", OpKind::Add) => group.members.extend(members(value)?),
        ("members", OpKind::Remove) => match value {
            None | Some(Value::Null) => group.members.clear(),
            Some(_) => {
                let gone = members(value)?;
                group.members.retain(|m| !gone.contains(m));
            }
        },
        (path, OpKind::Remove) if path.starts_with("members[") && path.ends_with(']') => {
            let inner = &path["members[".len()..path.len() - 1];
            let (attr, rest) = inner.trim().split_once(char::is_whitespace).unwrap_or((inner, ""));
            let rest = rest.trim_start();
            if attr != "value" || !rest.starts_with("eq") {
                return Err(invalid("path", "a members filter is `members[value eq \"…\"]`"));
            }
            // `attr` is lowercased: the id is read from the path as sent.
            let id = quoted(raw).ok_or_else(|| invalid("path", "a members filter names an id"))?;
            let id = parse_member(&id)?;
            group.members.retain(|m| *m != id);
        }
        _ => return Err(invalid("path", format!("the path `{attr}` is not supported"))),
    }
    Ok(())
}

/// Members as `[{"value": "usr_…"}, …]` or one `{"value": "usr_…"}`.
fn members(value: Option<&Value>) -> Result<Vec<UserId>, PortalError> {
    let items: Vec<&Value> = match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ Value::Object(_)) => vec![item],
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(invalid("value", "members are objects with a `value`")),
    };
    items
        .into_iter()
        .map(|item| match item.get("value").and_then(Value::as_str) {
            Some(id) => parse_member(id),
            None => Err(invalid("value", "a member has a `value`")),
        })
        .collect()
}

fn parse_member(id: &str) -> Result<UserId, PortalError> {
    id.parse()
        .map_err(|_| invalid("value", format!("`{}` is not a user id", id.escape_default())))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::ids::{GroupId, OrgId};
    use crate::scim::ScimProfile;

    fn id(n: u128) -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn user() -> ScimUser {
        let at = datetime!(2025-01-01 00:00 UTC);
        ScimUser {
            org: OrgId::from_uuid(uuid::Uuid::from_u128(1)),
            user: id(2),
            user_name: "test.user@okta.local".to_owned(),
            external_id: None,
            active: true,
            profile: ScimProfile {
                emails: vec![ScimEmail {
                    value: "test.user@okta.local".to_owned(),
                    kind: Some("work".to_owned()),
                    primary: true,
                }],
                ..ScimProfile::default()
            },
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    fn group(members: Vec<UserId>) -> ScimGroup {
        let at = datetime!(2025-01-01 00:00 UTC);
        ScimGroup {
            org: OrgId::from_uuid(uuid::Uuid::from_u128(1)),
            id: GroupId::from_uuid(uuid::Uuid::from_u128(9)),
            display_name: "Test SCIMv2".to_owned(),
            external_id: None,
            members,
            roles: Vec::new(),
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    fn body(ops: Value) -> Value {
        json!({ "schemas": [PATCH_OP_SCHEMA], "Operations": ops })
    }

    /// Okta's deactivation (`replace` with a value object, no path) and Entra's (`Replace`
    /// of `active` with the string `"False"`) both deactivate; Entra's attribute updates
    /// (an emails filter path, `name.givenName`, an unstored `title`) apply.
    #[test]
    fn okta_and_entra_user_patches_apply() {
        let okta = parse_ops(&body(json!([{ "op": "replace", "value": { "active": false } }]))).unwrap();
        assert!(!apply_to_user(&user(), &okta).unwrap().active, "Okta deactivates");

        let entra = parse_ops(&body(json!([
            { "op": "Replace", "path": "active", "value": "False" },
            { "op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@contoso.com" },
            { "op": "Replace", "path": "name.givenName", "value": "Barbara" },
            { "op": "Add", "path": "title", "value": "Engineer" },
            { "op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D" },
            { "op": "Replace", "path": "externalId", "value": "a0b1" },
        ])))
        .unwrap();
        let patched = apply_to_user(&user(), &entra).unwrap();
        assert!(!patched.active);
        assert_eq!(patched.profile.emails.len(), 1, "the work address is replaced");
        assert_eq!(patched.profile.emails[0].value, "new@contoso.com");
        assert_eq!(patched.profile.name.given_name.as_deref(), Some("Barbara"));
        assert_eq!(patched.external_id.as_deref(), Some("a0b1"));

        let reactivate = parse_ops(&body(json!([{ "op": "replace", "path": "active", "value": true }]))).unwrap();
        let mut inactive = user();
        inactive.active = false;
        assert!(apply_to_user(&inactive, &reactivate).unwrap().active);
    }

    /// Okta's group push (rename by value object, add members, remove one by a path
    /// filter) and Entra's (add and remove with the members in `value`) move members.
    #[test]
    fn okta_and_entra_group_patches_move_members() {
        let (a, b, c) = (id(10), id(11), id(12));
        let okta = parse_ops(&body(json!([
            { "op": "replace", "value": { "id": "abf4dd94", "displayName": "Renamed" } },
            { "op": "add", "path": "members", "value": [{ "value": b.to_string(), "display": "b@okta.local" }] },
            { "op": "remove", "path": format!("members[value eq \"{a}\"]") },
        ])))
        .unwrap();
        let patched = apply_to_group(&group(vec![a]), &okta).unwrap();
        assert_eq!(patched.display_name, "Renamed");
        assert_eq!(patched.members, vec![b]);

        let entra = parse_ops(&body(json!([
            { "op": "Add", "path": "members", "value": [{ "value": c.to_string() }] },
            { "op": "Remove", "path": "members", "value": [{ "value": a.to_string() }] },
        ])))
        .unwrap();
        let patched = apply_to_group(&group(vec![a, b]), &entra).unwrap();
        assert_eq!(patched.members, vec![b, c]);

        let one = parse_ops(&body(
            json!([{ "op": "add", "path": "members", "value": { "value": a.to_string() } }]),
        ))
        .unwrap();
        assert_eq!(
            apply_to_group(&group(Vec::new()), &one).unwrap().members,
            vec![a],
            "one object"
        );
    }

    /// Wrong schemas, unknown ops, unsupported paths and wrongly typed values are
    /// `validation.invalid_field` naming what is wrong, never a panic.
    #[test]
    fn malformed_patches_are_refused_with_the_offending_part() {
        let cases = [
            (
                json!({ "Operations": [{ "op": "add", "path": "title", "value": "x" }] }),
                "schemas",
            ),
            (body(json!([])), "Operations"),
            (body(json!([{ "op": "copy", "path": "title" }])), "op"),
            (body(json!([{ "op": "remove" }])), "path"),
            (body(json!([{ "op": "add", "path": 7, "value": "x" }])), "path"),
        ];
        for (patch, param) in cases {
            let err = parse_ops(&patch).expect_err(param);
            assert_eq!(err.param(), Some(param), "{patch}");
        }
        let user_cases = [
            (
                json!([{ "op": "replace", "path": "active", "value": "maybe" }]),
                "value",
            ),
            (json!([{ "op": "replace", "path": "password", "value": "x" }]), "path"),
            (json!([{ "op": "remove", "path": "userName" }]), "path"),
            (json!([{ "op": "replace", "value": "not an object" }]), "value"),
            (json!([{ "op": "replace", "path": "emails", "value": 3 }]), "value"),
        ];
        for (ops, param) in user_cases {
            let ops = parse_ops(&body(ops.clone())).unwrap();
            let err = apply_to_user(&user(), &ops).expect_err(param);
            assert_eq!(err.param(), Some(param), "{ops:?}");
        }
        let group_cases = [
            (
                json!([{ "op": "add", "path": "members", "value": [{ "value": "not-an-id" }] }]),
                "value",
            ),
            (json!([{ "op": "remove", "path": "members[display eq \"x\"]" }]), "path"),
            (json!([{ "op": "remove", "path": "displayName" }]), "path"),
            (json!([{ "op": "add", "path": "owners", "value": [] }]), "path"),
        ];
        for (ops, param) in group_cases {
            let ops = parse_ops(&body(ops.clone())).unwrap();
            let err = apply_to_group(&group(Vec::new()), &ops).expect_err(param);
            assert_eq!(err.param(), Some(param), "{ops:?}");
        }
    }

    #[test]
    fn a_posted_resource_reads_as_a_replace_and_keeps_no_password() {
        let new = user_from_resource(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ada@example.com",
            "externalId": "00u1",
            "name": { "givenName": "Ada", "familyName": "Lovelace" },
            "emails": [{ "value": "ada@example.com", "type": "work", "primary": true }],
            "password": "hunter2",
            "title": "Countess",
        }))
        .unwrap();
        assert_eq!(new.user_name, "ada@example.com");
        assert_eq!(new.external_id.as_deref(), Some("00u1"));
        assert!(new.active, "SCIM's default");
        assert_eq!(new.profile.name.family_name.as_deref(), Some("Lovelace"));
        assert_eq!(new.profile.primary_email(), Some("ada@example.com"));
        assert!(!format!("{new:?}").contains("hunter2"));
        let entra = user_from_resource(&json!({ "userName": "x", "active": "False" })).unwrap();
        assert!(!entra.active);
        assert_eq!(user_from_resource(&json!("x")).unwrap_err().param(), Some("value"));
        assert_eq!(
            user_from_resource(&json!({ "userName": "x", "shoeSize": 9 }))
                .unwrap_err()
                .param(),
            Some("path")
        );
    }

    #[test]
    fn a_posted_group_reads_its_name_and_members() {
        let new = group_from_resource(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering",
            "externalId": "g1",
            "members": [{ "value": id(1).to_string() }, { "value": id(2).to_string() }],
        }))
        .unwrap();
        assert_eq!(new.display_name, "Engineering");
        assert_eq!(new.external_id.as_deref(), Some("g1"));
        assert_eq!(new.members, [id(1), id(2)]);
        assert!(group_from_resource(&json!({ "displayName": "x", "members": [{ "value": "nope" }] })).is_err());
        assert_eq!(group_from_resource(&json!([])).unwrap_err().param(), Some("value"));
    }
}
