//! The generated cross-tenant suite (issue 18, item 4), shared by both servers' tests.
//!
//! [`Tenants::set_up`] makes, through the server, a victim org (the demo's `acme`) with
//! real ids of every kind (its org, members, workflows, an invitation, a custom role, an
//! API key, a member's session, a real request) and three attackers from outside it: a
//! member of another org (`globex`'s member), the owner of an org made for the probe, and
//! an API key of another org with every scope. [`probe_tenancy`] then calls, as each
//! attacker, every operation of an OpenAPI document that has an id in its path or query,
//! once with the victim's ids everywhere and, when the path names an org and another id,
//! once in the attacker's own org with the victim's other ids; and again with well-formed
//! ids that exist nowhere (the *ghost* probe). It asserts that
//!
//! - a probe never answers `2xx`, except in the attacker's own org when the victim's ids
//!   are only filters of the query or [`LOOKUP_PARAMS`] (a request id), which may answer
//!   `200` with nothing of the victim in it,
//! - a probe with the victim's ids answers `404` when the operation documents a `404`
//!   (across tenants, not found, never forbidden; on a path without an org, such as a
//!   session's, a `401`/`403` refusing the attacker's kind whatever the id also does),
//! - a victim's id answers the same status and code as a ghost id (no existence oracle),
//! - no id of the victim org (org, users, workflows, invitation, key, session, role) is in
//!   the body, but for those the request itself names (a problem's `instance`, a bundle's
//!   `user`), which the attacker holds already.
//!
//! Before probing, each attacker sends a request to its own org under the victim's request
//! id (a client may choose its request id) and under a ghost of it, so that a request view
//! merging other principals' events of one id shows them.
//!
//! The suite is generated: a new operation is probed without editing a test. A path or
//! query parameter the probe has no victim value for ([`victim_value`]) and a body-taking
//! operation without a body ([`probe_body`]) fail the suite by name, so that a new kind of
//! id or body is taught here once.
//!
//! Leaks known and being fixed elsewhere are listed in [`KNOWN_LEAKS`]: they are expected
//! to fail, and the suite fails when one passes, so the entry is deleted with the fix.

use std::collections::BTreeSet;

use http::Method;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::{Route, routes};
use crate::seed::{DEMO_PASSWORD, DemoData};

/// Probes known to fail today, `(operation id, attacker, variant)`: a leak found and not
/// yet fixed is listed here with its issue, so the suite stays green while the fix is
/// under way, and fails when a listed probe passes, so the entry is deleted with the fix.
/// Empty: the two leaks it held (a bundle of another org's user, a request view joined
/// through a client-chosen request id) are fixed.
pub const KNOWN_LEAKS: &[(&str, &str, &str)] = &[];

/// The variant of a probe with the victim's ids everywhere.
pub const VICTIM_ORG: &str = "the victim's org";

/// The variant of a probe in the attacker's own org with the victim's other ids.
pub const OWN_ORG: &str = "the attacker's own org";

/// The query parameters that carry no id (paging, time windows, filters by name, state or
/// action, an export's format).
pub const NON_ID_QUERY_PARAMS: &[&str] = &[
    "limit",
    "cursor",
    "from",
    "until",
    "state",
    "definition",
    "action",
    "object",
    "format",
];

/// A request the probe sends: `call` sends it through the server under test.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    /// Its method.
    pub method: Method,
    /// Its path and query.
    pub uri: String,
    /// Its headers (`authorization`, `content-type`, `if-match`), lower-case names.
    pub headers: Vec<(String, String)>,
    /// Its JSON body, if any.
    pub body: Option<String>,
}

impl ProbeRequest {
    fn new(method: Method, uri: String, bearer: Option<&str>, body: Option<&Value>) -> Self {
        let mut headers = Vec::new();
        if let Some(bearer) = bearer {
            headers.push(("authorization".to_owned(), format!("Bearer {bearer}")));
        }
        if body.is_some() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        Self {
            method,
            uri,
            headers,
            body: body.map(Value::to_string),
        }
    }
}

/// What the server answered a [`ProbeRequest`].
#[derive(Debug, Clone)]
pub struct ProbeAnswer {
    /// The status.
    pub status: u16,
    /// The `X-Request-Id` header, if any.
    pub request_id: Option<String>,
    /// The body as JSON (`null` when empty, a string when not JSON).
    pub body: Value,
}

/// The victim org's ids, as the probe uses them.
#[derive(Debug, Clone)]
pub struct Victim {
    /// The org.
    pub org: String,
    /// A member (`grace`), whose session and sign-in are probed.
    pub member: String,
    /// Every member's user id.
    pub users: Vec<String>,
    /// An open support case, the workflow the probe names.
    pub workflow: String,
    /// Its version as an `If-Match` tag.
    pub workflow_tag: String,
    /// A transition of that workflow.
    pub transition: String,
    /// Every workflow id of the org's first page.
    pub workflows: Vec<String>,
    /// A pending invitation.
    pub invitation: String,
    /// A custom role's name.
    pub role: String,
    /// An API key's id.
    pub key: String,
    /// A SCIM group of the org (its directory's), with a member.
    pub group: String,
    /// The member's session id.
    pub session: String,
    /// A support grant of the org (the demo's, to vendor support).
    pub grant: String,
    /// The id of a real request: the member's sign-in (an org-less event naming the user).
    pub request: String,
    /// A webhook endpoint of the org.
    pub webhook_endpoint: String,
    /// A message of that endpoint (its own creation event's, `msg_…`).
    pub webhook_message: String,
    /// A passkey id for the member's passkey routes: a well-formed `pky_` id that names no
    /// passkey (registering one needs an authenticator, which the probe has not), so the
    /// probe shows those routes refuse every attacker kind alike; that another user's
    /// real passkey answers exactly like an unknown id is proven by the passkey tests of
    /// both servers (`tests/http/passkeys.rs`) and the store's conformance suite.
    pub passkey: String,
}

/// One attacker: a bearer credential and the org it works in.
#[derive(Debug, Clone)]
pub struct Attacker {
    /// Who it is, as failures name it.
    pub name: &'static str,
    /// Its session token or API key.
    pub bearer: String,
    /// Its own org.
    pub own_org: String,
}

/// The victim org and its attackers, made through the server by [`Tenants::set_up`].
#[derive(Debug, Clone)]
pub struct Tenants {
    /// The victim.
    pub victim: Victim,
    /// The attackers.
    pub attackers: Vec<Attacker>,
}

/// What [`probe_tenancy`] covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// The operations with an id in their path or query.
    pub operations: usize,
    /// The probes sent with the victim's ids (each also sent with ghost ids).
    pub probes: usize,
    /// The probes of [`KNOWN_LEAKS`] that failed as expected.
    pub known_leaks: usize,
}

fn answer_ok(what: &str, answer: &ProbeAnswer, status: u16) -> Result<(), String> {
    if answer.status == status {
        Ok(())
    } else {
        Err(format!("set-up: {what} answered {} {}", answer.status, answer.body))
    }
}

fn text(what: &str, value: &Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("set-up: {what} is not a string: {value}"))
}

fn in_days(days: i64) -> Result<String, String> {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&Rfc3339)
        .map_err(|e| e.to_string())
}

impl Tenants {
    /// Makes the victim's ids and the attackers through the server (`call`) seeded with
    /// `demo`: the victim is `acme`, its owner `ada` making an invitation, a custom role
    /// and an API key and its member `grace` signing in; the attackers are `globex`'s
    /// member `barbara`, `globex`'s owner `hedy` in an org she makes for the probe, and an
    /// API key of `globex` with every scope. Uses four sign-ins. Flush the journal after
    /// it, so that the victim's request is there to be probed.
    ///
    /// # Errors
    ///
    /// The step that did not answer as expected.
    pub async fn set_up(
        demo: &DemoData,
        mut call: impl AsyncFnMut(ProbeRequest) -> ProbeAnswer,
    ) -> Result<Self, String> {
        let mut sign_in = async |local: &str| -> Result<ProbeAnswer, String> {
            let user = demo
                .user(local)
                .ok_or_else(|| format!("set-up: no demo user {local}"))?;
            let body = json!({ "email": user.email, "password": DEMO_PASSWORD });
            let answer = call(ProbeRequest::new(
                Method::POST,
                "/v1/auth/sign-in".to_owned(),
                None,
                Some(&body),
            ))
            .await;
            answer_ok(&format!("signing in as {local}"), &answer, 200)?;
            Ok(answer)
        };
        let owner = text("ada's token", &sign_in("ada").await?.body["session_token"])?;
        let grace_in = sign_in("grace").await?;
        let grace = text("grace's token", &grace_in.body["session_token"])?;
        let request = grace_in
            .request_id
            .clone()
            .ok_or("set-up: grace's sign-in has no X-Request-Id")?;
        let barbara = text("barbara's token", &sign_in("barbara").await?.body["session_token"])?;
        let hedy = text("hedy's token", &sign_in("hedy").await?.body["session_token"])?;

        let org = demo.acme.to_string();
        let mut send = async |bearer: &str, method: Method, uri: String, body: Option<Value>| -> ProbeAnswer {
            call(ProbeRequest::new(method, uri, Some(bearer), body.as_ref())).await
        };
        let sessions = send(&grace, Method::GET, "/v1/sessions".to_owned(), None).await;
        answer_ok("grace's sessions", &sessions, 200)?;
        let session = sessions.body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|s| s["current"] == true))
            .map(|s| text("a session id", &s["id"]))
            .ok_or("set-up: grace has no current session")??;
        let cases = send(
            &grace,
            Method::GET,
            format!("/v1/orgs/{org}/workflows?definition=support_case&state=open"),
            None,
        )
        .await;
        answer_ok("acme's open cases", &cases, 200)?;
        let case = &cases.body["items"][0];
        let workflow = text("an open case's id", &case["id"])?;
        let workflow_tag = format!("\"{}\"", case["version"]);
        let all = send(&owner, Method::GET, format!("/v1/orgs/{org}/workflows"), None).await;
        answer_ok("acme's workflows", &all, 200)?;
        let workflows = all.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| text("a workflow id", &w["id"]))
            .collect::<Result<Vec<_>, _>>()?;
        let invited = send(
            &owner,
            Method::POST,
            format!("/v1/orgs/{org}/invitations"),
            Some(json!({ "email": "victim.invitee@acme.example", "roles": ["member"] })),
        )
        .await;
        answer_ok("inviting to acme", &invited, 201)?;
        let invitation = text("the invitation's id", &invited.body["invitation"]["id"])?;
        let role = "victim-auditors".to_owned();
        let made_role = send(
            &owner,
            Method::POST,
            format!("/v1/orgs/{org}/roles"),
            Some(json!({ "name": role, "permissions": [{ "object": "reports", "action": "read" }] })),
        )
        .await;
        answer_ok("acme's custom role", &made_role, 201)?;
        let made_key = send(
            &owner,
            Method::POST,
            format!("/v1/orgs/{org}/api-keys"),
            Some(json!({ "name": "victim key", "scopes": ["cases/* read"], "expires_at": in_days(30)? })),
        )
        .await;
        answer_ok("acme's API key", &made_key, 201)?;
        let key = text("the key's id", &made_key.body["api_key"]["id"])?;
        // The org's directory provisions a user and a group of it (SCIM, with a key of
        // the org holding `scim provision`).
        let made_scim_key = send(
            &owner,
            Method::POST,
            format!("/v1/orgs/{org}/api-keys"),
            Some(json!({ "name": "victim directory", "scopes": ["scim provision"], "expires_at": in_days(30)? })),
        )
        .await;
        answer_ok("acme's SCIM key", &made_scim_key, 201)?;
        let scim_key = text("the SCIM key", &made_scim_key.body["key"])?;
        let provisioned = send(
            &scim_key,
            Method::POST,
            "/scim/v2/Users".to_owned(),
            Some(json!({ "userName": "victim.directory.user@acme.example" })),
        )
        .await;
        answer_ok("a SCIM user of acme", &provisioned, 201)?;
        let scim_user = text("the SCIM user's id", &provisioned.body["id"])?;
        let grouped = send(
            &scim_key,
            Method::POST,
            "/scim/v2/Groups".to_owned(),
            Some(json!({ "displayName": "Victim engineers", "members": [{ "value": scim_user }] })),
        )
        .await;
        answer_ok("a SCIM group of acme", &grouped, 201)?;
        let group = text("the SCIM group's id", &grouped.body["id"])?;
        let grants = send(&owner, Method::GET, format!("/v1/orgs/{org}/support-grants"), None).await;
        answer_ok("acme's support grants", &grants, 200)?;
        let grant = text("a support grant's id", &grants.body["items"][0]["id"])?;
        let hook = send(
            &owner,
            Method::POST,
            format!("/v1/orgs/{org}/webhook-endpoints"),
            Some(json!({ "url": "https://hooks.example.com/victim", "description": "victim endpoint" })),
        )
        .await;
        answer_ok("acme's webhook endpoint", &hook, 201)?;
        let webhook_endpoint = text("the endpoint's id", &hook.body["endpoint"]["id"])?;
        // Its first message is its own creation event (an empty filter takes every event).
        let created = send(
            &owner,
            Method::GET,
            format!("/v1/orgs/{org}/audit-events?action=webhook.endpoint_created&limit=100"),
            None,
        )
        .await;
        answer_ok("acme's endpoint creation events", &created, 200)?;
        let event = created.body["items"]
            .as_array()
            .and_then(|items| items.last())
            .map(|e| text("an audit event id", &e["id"]))
            .ok_or("set-up: no endpoint creation event")??;
        let webhook_message = event.replacen("aud_", "msg_", 1);

        let fresh = send(
            &hedy,
            Method::POST,
            "/v1/orgs".to_owned(),
            Some(json!({ "slug": "tenancy-probe", "name": "Tenancy probe" })),
        )
        .await;
        answer_ok("hedy's fresh org", &fresh, 201)?;
        let fresh_org = text("the fresh org's id", &fresh.body["id"])?;
        let globex = demo.globex.to_string();
        let attacker_key = send(
            &hedy,
            Method::POST,
            format!("/v1/orgs/{globex}/api-keys"),
            Some(json!({ "name": "tenancy probe", "scopes": ["* *"], "expires_at": in_days(30)? })),
        )
        .await;
        answer_ok("globex's API key with every scope", &attacker_key, 201)?;
        let attacker_key = text("globex's key", &attacker_key.body["key"])?;

        // Each attacker sends a request to its own org under the victim's request id (a
        // client may choose its request id) and under a ghost of it, so that its own org
        // has events under both: a request view that merges in other principals' events
        // of the same id then shows them.
        for (bearer, own) in [(&barbara, &globex), (&hedy, &fresh_org), (&attacker_key, &globex)] {
            for id in [request.clone(), ghost(&request)] {
                let mut plant = ProbeRequest::new(Method::GET, format!("/v1/orgs/{own}"), Some(bearer), None);
                plant.headers.push(("x-request-id".to_owned(), id));
                let planted = call(plant).await;
                answer_ok("a request to the attacker's own org", &planted, 200)?;
            }
        }

        let users = demo
            .users
            .iter()
            .filter(|u| u.role.starts_with("acme "))
            .map(|u| u.id.to_string())
            .collect();
        let member = demo
            .user("grace")
            .map(|u| u.id.to_string())
            .ok_or("set-up: no demo user grace")?;
        Ok(Self {
            victim: Victim {
                org,
                member,
                users,
                workflow,
                workflow_tag,
                transition: "triage".to_owned(),
                workflows,
                invitation,
                role,
                key,
                group,
                session,
                grant,
                request,
                webhook_endpoint,
                webhook_message,
                passkey: "pky_01jd5x8y6kf3w9q2m7c4t0vbnr".to_owned(),
            },
            attackers: vec![
                Attacker {
                    name: "a member of another org",
                    bearer: barbara,
                    own_org: globex.clone(),
                },
                Attacker {
                    name: "the owner of a fresh org",
                    bearer: hedy,
                    own_org: fresh_org,
                },
                Attacker {
                    name: "an API key of another org",
                    bearer: attacker_key,
                    own_org: globex,
                },
            ],
        })
    }
}

impl Victim {
    /// Every id of the victim org a body must not show.
    fn secrets(&self) -> BTreeSet<&str> {
        let mut ids: BTreeSet<&str> = [
            self.org.as_str(),
            &self.member,
            &self.workflow,
            &self.invitation,
            &self.role,
            &self.key,
            &self.group,
            &self.session,
            &self.grant,
            &self.webhook_endpoint,
        ]
        .into_iter()
        .collect();
        ids.extend(self.users.iter().map(String::as_str));
        ids.extend(self.workflows.iter().map(String::as_str));
        ids
    }
}

/// The victim's value for the path or query parameter `name`; `None` for a parameter the
/// probe was never taught (the suite then fails, naming it).
pub fn victim_value<'v>(victim: &'v Victim, name: &str) -> Option<&'v str> {
    Some(match name {
        "org_id" => &victim.org,
        // An audit log's `actor` and `target` filters name a user as well.
        "user_id" | "user" | "assignee" | "actor" | "target" => &victim.member,
        "workflow_id" => &victim.workflow,
        "transition" => &victim.transition,
        "invitation_id" => &victim.invitation,
        "role" => &victim.role,
        "key_id" => &victim.key,
        "group_id" => &victim.group,
        "session_id" => &victim.session,
        "grant_id" => &victim.grant,
        // A definition is the deployment's, the same in every org (see `CATALOG_PARAMS`).
        "definition" => "support_case",
        "request_id" => &victim.request,
        "endpoint_id" => &victim.webhook_endpoint,
        "message_id" => &victim.webhook_message,
        "passkey_id" => &victim.passkey,
        _ => return None,
    })
}

/// A well-formed value of the same kind as `value` that names nothing: an id
/// (`prefix_` and 26 characters) with its last character changed, else a new name.
pub fn ghost(value: &str) -> String {
    match value.rsplit_once('_') {
        Some((prefix, suffix)) if suffix.len() == 26 && suffix.is_ascii() => {
            let last = if suffix.ends_with('0') { '1' } else { '0' };
            format!("{prefix}_{}{last}", &suffix[..25])
        }
        _ => format!("{value}-ghost"),
    }
}

/// A minimal valid body of a body-taking operation the probe calls, by operation id, with
/// the victim's ids where it names one; `None` for an operation the probe was never taught.
pub fn probe_body(operation_id: &str, victim: &Victim) -> Option<Value> {
    let later = in_days(1).ok()?;
    Some(match operation_id {
        "assign_role" => json!({ "role": "member" }),
        "invite" => json!({ "email": "probe.invitee@example.com", "roles": ["member"] }),
        "create_role" => json!({ "name": "probe-role", "permissions": [{ "object": "reports", "action": "read" }] }),
        "update_role" => json!({ "permissions": [{ "object": "reports", "action": "read" }] }),
        "create_api_key" => json!({ "name": "probe", "scopes": ["cases/* read"], "expires_at": later }),
        "create_workflow" => json!({ "definition": "support_case", "payload": { "subject": "probe" } }),
        "transition_workflow" => json!({ "input": { "priority": "high" } }),
        "assign_workflow" => json!({ "assignee": victim.member }),
        "vote_workflow" => json!({ "transition": "approve", "decision": "approve", "input": {} }),
        "delegate_votes" => json!({ "to": victim.member, "ends_at": later }),
        "set_group_roles" => json!({ "roles": ["admin"] }),
        "create_support_grant" => {
            json!({ "staff": victim.member, "reason": "probe", "access": "read_only", "hours": 1 })
        }
        "set_mfa_policy" => json!({ "required": false }),
        "set_api_version" => json!({ "version": crate::version::CURRENT }),
        "set_audit_retention" => json!({ "days": 30 }),
        "update_org" => json!({ "name": "probe" }),
        "create_webhook_endpoint" => json!({ "url": "https://hooks.example.com/probe" }),
        "update_webhook_endpoint" => json!({ "description": "probe" }),
        "replay_webhook_range" => json!({ "since": in_days(-1).ok()?, "until": later }),
        "rename_passkey" => json!({ "name": "probe" }),
        "remove_passkey" => json!({ "password": DEMO_PASSWORD }),
        _ => return None,
    })
}

/// One operation of the document the probe calls.
struct Operation {
    route: &'static Route,
    /// The id parameters of its query.
    query: Vec<String>,
    /// Whether it documents a `404`.
    documents_404: bool,
    /// Whether it takes a body.
    takes_body: bool,
    /// Whether it takes `If-Match`.
    if_match: bool,
}

/// The operations of `doc` with an id in their path or query, each with its route.
///
/// # Errors
///
/// An operation the route table does not serve, or a query parameter that is neither an
/// id the probe knows nor in [`NON_ID_QUERY_PARAMS`].
fn operations_with_ids(doc: &Value, table: &'static [Route], victim: &Victim) -> Result<Vec<Operation>, String> {
    let mut operations = Vec::new();
    let mut errors = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let Some(route) = table
                .iter()
                .find(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method))
            else {
                continue;
            };
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            let mut query = Vec::new();
            let mut if_match = false;
            for parameter in &parameters {
                let name = parameter["name"].as_str().unwrap_or_default();
                match parameter["in"].as_str() {
                    Some("query") if NON_ID_QUERY_PARAMS.contains(&name) => {}
                    Some("query") if victim_value(victim, name).is_some() => query.push(name.to_owned()),
                    Some("query") => errors.push(format!(
                        "{route:?}: the query parameter `{name}` is not taught to the probe \
                         (add its victim value to `victim_value` or it to `NON_ID_QUERY_PARAMS`)"
                    )),
                    Some("header") if name.eq_ignore_ascii_case("if-match") => if_match = true,
                    _ => {}
                }
            }
            if route.params().next().is_none() && query.is_empty() {
                continue;
            }
            operations.push(Operation {
                route,
                query,
                documents_404: operation["responses"].get("404").is_some(),
                takes_body: operation.get("requestBody").is_some(),
                if_match,
            });
        }
    }
    if errors.is_empty() {
        Ok(operations)
    } else {
        Err(errors.join("\n"))
    }
}

/// The number of operations of `doc` with an id in its path, or a query parameter not in
/// [`NON_ID_QUERY_PARAMS`]: what [`probe_tenancy`] must cover.
pub fn count_operations_with_ids(doc: &Value) -> usize {
    doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, item)| item.as_object().into_iter().flatten())
        .filter(|(_, operation)| {
            operation["parameters"].as_array().into_iter().flatten().any(|p| {
                let name = p["name"].as_str().unwrap_or_default();
                match p["in"].as_str() {
                    Some("path") => true,
                    Some("query") => !NON_ID_QUERY_PARAMS.contains(&name),
                    _ => false,
                }
            })
        })
        .count()
}

/// The path parameters whose ids are keys to look up within the org of the path rather
/// than an org's own records: in the attacker's own org, such an id may answer `2xx`
/// (nothing of it is visible there), as a filter of the query may.
pub const LOOKUP_PARAMS: &[&str] = &["request_id"];

/// The path parameters that name something of the deployment's catalog, the same in every
/// org (a transition, a workflow definition): no record of an org, so the probe calls
/// them only in the victim's org, where the org itself is what is not found.
pub const CATALOG_PARAMS: &[&str] = &["transition", "definition"];

/// Calls every operation of `doc` with an id in its path or query as every attacker of
/// `tenants` with the victim's ids and with ghost ids, through a server (`call`), and
/// checks the answers (see the [module](self)). Answers what it covered.
///
/// # Errors
///
/// Every failed probe, one a line (known leaks apart), a parameter or body the probe was
/// never taught, or a known leak that no longer fails.
pub async fn probe_tenancy(
    doc: &Value,
    tenants: &Tenants,
    call: impl AsyncFnMut(ProbeRequest) -> ProbeAnswer,
) -> Result<Coverage, String> {
    probe_routes(doc, routes(), KNOWN_LEAKS, tenants, call).await
}

/// [`probe_tenancy`] over the routes `table`, with the known leaks `known`.
async fn probe_routes(
    doc: &Value,
    table: &'static [Route],
    known_leaks: &[(&str, &str, &str)],
    tenants: &Tenants,
    mut call: impl AsyncFnMut(ProbeRequest) -> ProbeAnswer,
) -> Result<Coverage, String> {
    let victim = &tenants.victim;
    let operations = operations_with_ids(doc, table, victim)?;
    let mut untaught = Vec::new();
    for operation in &operations {
        for name in operation.route.params() {
            if victim_value(victim, name).is_none() {
                untaught.push(format!(
                    "{:?}: the path parameter `{name}` has no victim value (teach it to `victim_value`)",
                    operation.route
                ));
            }
        }
        if operation.takes_body && probe_body(operation.route.operation_id, victim).is_none() {
            untaught.push(format!(
                "{:?}: takes a body the probe does not know (add it to `probe_body`)",
                operation.route
            ));
        }
    }
    if !untaught.is_empty() {
        return Err(untaught.join("\n"));
    }
    let secrets = victim.secrets();
    let mut failures = Vec::new();
    let mut known = 0;
    let mut fixed = Vec::new();
    let mut probes = 0;
    for operation in &operations {
        let route = operation.route;
        let has_org = route.params().any(|p| p == "org_id");
        let other_path_ids = route.params().any(|p| p != "org_id" && !CATALOG_PARAMS.contains(&p));
        let record_ids = route
            .params()
            .any(|p| p != "org_id" && !CATALOG_PARAMS.contains(&p) && !LOOKUP_PARAMS.contains(&p));
        for attacker in &tenants.attackers {
            let mut variants = vec![VICTIM_ORG];
            if has_org && (other_path_ids || !operation.query.is_empty()) {
                variants.push(OWN_ORG);
            }
            for variant in variants {
                let own = variant == OWN_ORG;
                let value = |name: &str, ghosted: bool| -> String {
                    if own && name == "org_id" {
                        return attacker.own_org.clone();
                    }
                    let real = victim_value(victim, name).unwrap_or_default();
                    if ghosted { ghost(real) } else { real.to_owned() }
                };
                let request = |ghosted: bool| {
                    let mut uri = route.uri(|name| value(name, ghosted));
                    let query: Vec<String> = operation
                        .query
                        .iter()
                        .map(|name| format!("{name}={}", value(name, ghosted)))
                        .collect();
                    if !query.is_empty() {
                        uri = format!("{uri}?{}", query.join("&"));
                    }
                    let body = if operation.takes_body {
                        probe_body(route.operation_id, victim)
                    } else {
                        None
                    };
                    let mut request =
                        ProbeRequest::new(route.method.clone(), uri, Some(&attacker.bearer), body.as_ref());
                    if operation.if_match {
                        request
                            .headers
                            .push(("if-match".to_owned(), victim.workflow_tag.clone()));
                    }
                    request
                };
                let real = request(false);
                let answer = call(real.clone()).await;
                let ghosted = call(request(true)).await;
                probes += 1;

                let mut wrong = Vec::new();
                let may_succeed = own && !record_ids;
                if (200..300).contains(&answer.status) && !may_succeed {
                    wrong.push(format!("answered {}", answer.status));
                }
                // Across tenants, not found: a path naming the victim's org is 404. A path
                // without an org (a session) is 404 too, unless the attacker's kind is
                // refused whatever the id (an API key managing sessions: 403, as for a
                // ghost, which the next check holds).
                let refused_kind = !has_org && matches!(answer.status, 401 | 403);
                if !own && operation.documents_404 && answer.status != 404 && !refused_kind {
                    wrong.push(format!("answered {}, not the documented 404", answer.status));
                }
                let code = |a: &ProbeAnswer| a.body.get("code").cloned().unwrap_or(Value::Null);
                if (answer.status, code(&answer)) != (ghosted.status, code(&ghosted)) {
                    wrong.push(format!(
                        "answered {} {} for the victim's ids but {} {} for ghost ids",
                        answer.status,
                        code(&answer),
                        ghosted.status,
                        code(&ghosted)
                    ));
                }
                // What the request itself names may be echoed (a problem's `instance`, a
                // bundle's `user`): the attacker holds it already.
                let body = answer.body.to_string();
                let shown: Vec<&str> = secrets
                    .iter()
                    .copied()
                    .filter(|id| body.contains(id) && !real.uri.contains(id))
                    .collect();
                if !shown.is_empty() {
                    wrong.push(format!("showed the victim's {shown:?}"));
                }

                let listed = known_leaks
                    .iter()
                    .any(|&(id, who, how)| id == route.operation_id && who == attacker.name && how == variant);
                let probe = format!(
                    "{} as {} in {variant}: {} {}",
                    route.operation_id, attacker.name, real.method, real.uri
                );
                match (wrong.is_empty(), listed) {
                    (true, false) => {}
                    (false, false) => failures.push(format!("{probe}: {}; body {}", wrong.join("; "), answer.body)),
                    (false, true) => known += 1,
                    (true, true) => fixed.push(format!("{probe}: passes; delete it from KNOWN_LEAKS")),
                }
            }
        }
    }
    failures.extend(fixed);
    if failures.is_empty() {
        Ok(Coverage {
            operations: operations.len(),
            probes,
            known_leaks: known,
        })
    } else {
        Err(format!(
            "{} of {probes} cross-tenant probes failed:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn tenants() -> Tenants {
        let id = |prefix: &str, n: u8| format!("{prefix}_01m967gzrsemz8e2325g9mgb{n:02}");
        Tenants {
            victim: Victim {
                org: id("org", 1),
                member: id("usr", 1),
                users: vec![id("usr", 1), id("usr", 2)],
                workflow: id("wf", 1),
                workflow_tag: "\"3\"".to_owned(),
                transition: "triage".to_owned(),
                workflows: vec![id("wf", 1), id("wf", 2)],
                invitation: id("inv", 1),
                role: "victim-auditors".to_owned(),
                key: id("key", 1),
                group: id("grp", 1),
                session: id("ses", 1),
                grant: id("sag", 1),
                request: id("req", 1),
                webhook_endpoint: id("whk", 1),
                webhook_message: id("msg", 1),
                passkey: id("pky", 1),
            },
            attackers: vec![Attacker {
                name: "an outsider",
                bearer: "token".to_owned(),
                own_org: id("org", 9),
            }],
        }
    }

    fn document() -> Value {
        serde_json::from_str(&crate::openapi::openapi_json()).unwrap()
    }

    fn not_found() -> ProbeAnswer {
        ProbeAnswer {
            status: 404,
            request_id: None,
            body: json!({ "code": "org.not_found", "status": 404 }),
        }
    }

    /// A table of one route `method path (operation_id)`, and a document listing it with
    /// its path parameters, the query parameters `query` and, with `body`, a request body.
    fn one_route(
        method: Method,
        path: &'static str,
        operation_id: &'static str,
        query: &[&str],
        body: bool,
    ) -> (&'static [Route], Value) {
        let route = Route {
            method: method.clone(),
            path,
            operation_id,
            handler: routes()[0].handler,
            idempotency: crate::idempotency::Idempotency::Safe,
        };
        let mut parameters: Vec<Value> = route.params().map(|p| json!({ "name": p, "in": "path" })).collect();
        parameters.extend(query.iter().map(|q| json!({ "name": q, "in": "query" })));
        let mut operation =
            json!({ "operationId": operation_id, "parameters": parameters, "responses": { "404": {} } });
        if body {
            operation["requestBody"] = json!({ "content": {} });
        }
        let doc = json!({ "paths": { path: { method.as_str().to_ascii_lowercase(): operation } } });
        (Box::leak(vec![route].into_boxed_slice()), doc)
    }

    #[tokio::test]
    async fn a_parameter_or_body_the_probe_was_never_taught_fails_by_name() {
        let (table, doc) = one_route(
            Method::GET,
            "/v1/orgs/{org_id}/widgets/{widget_id}",
            "get_widget",
            &[],
            false,
        );
        let err = probe_routes(&doc, table, &[], &tenants(), async |_| not_found())
            .await
            .unwrap_err();
        assert!(
            err.contains("get_widget") && err.contains("`widget_id` has no victim value"),
            "{err}"
        );

        let (table, doc) = one_route(
            Method::GET,
            "/v1/orgs/{org_id}/widgets",
            "list_widgets",
            &["owner"],
            false,
        );
        let err = probe_routes(&doc, table, &[], &tenants(), async |_| not_found())
            .await
            .unwrap_err();
        assert!(
            err.contains("list_widgets") && err.contains("`owner` is not taught"),
            "{err}"
        );

        let (table, doc) = one_route(Method::POST, "/v1/orgs/{org_id}/widgets", "create_widget", &[], true);
        let err = probe_routes(&doc, table, &[], &tenants(), async |_| not_found())
            .await
            .unwrap_err();
        assert!(err.contains("create_widget") && err.contains("probe_body"), "{err}");
    }

    #[tokio::test]
    async fn a_server_answering_not_found_passes_and_covers_every_operation_with_an_id() {
        let doc = document();
        let coverage = probe_routes(&doc, routes(), &[], &tenants(), async |_| not_found())
            .await
            .unwrap();
        assert_eq!(coverage.operations, count_operations_with_ids(&doc));
        assert!(coverage.operations > 20, "{coverage:?}");
        assert!(coverage.probes > coverage.operations, "{coverage:?}");
        assert_eq!(coverage.known_leaks, 0);
    }

    #[tokio::test]
    async fn a_leak_an_oracle_or_a_2xx_fails_the_probe_by_name() {
        let doc = document();
        let t = tenants();
        let workflow = t.victim.workflow.clone();
        // The victim's workflow, shown from the attacker's own org.
        let err = probe_routes(&doc, routes(), &[], &t, async |request| {
            if request.uri.ends_with(&format!("/workflows/{workflow}")) && !request.uri.contains(&t.victim.org) {
                ProbeAnswer {
                    status: 404,
                    request_id: None,
                    body: json!({ "code": "workflow.not_found", "detail": t.victim.workflows[1] }),
                }
            } else {
                not_found()
            }
        })
        .await
        .unwrap_err();
        assert_eq!(err.lines().count(), 2, "{err}");
        assert!(
            err.contains("get_workflow as an outsider in the attacker's own org"),
            "{err}"
        );
        assert!(err.contains("showed the victim's"), "{err}");
        // 403 for a real id, 404 for a ghost: an existence oracle.
        let err = probe_routes(&doc, routes(), &[], &t, async |request| {
            if request.uri.contains(&t.victim.key) {
                ProbeAnswer {
                    status: 403,
                    request_id: None,
                    body: json!({ "code": "access.denied" }),
                }
            } else {
                not_found()
            }
        })
        .await
        .unwrap_err();
        assert!(err.contains("revoke_api_key") && err.contains("for ghost ids"), "{err}");
        assert!(err.contains("not the documented 404"), "{err}");
        // A 2xx for the victim's member, removed from the victim's org.
        let err = probe_routes(&doc, routes(), &[], &t, async |request| {
            if request.method == Method::DELETE && request.uri.ends_with(&format!("/members/{}", t.victim.member)) {
                ProbeAnswer {
                    status: 204,
                    request_id: None,
                    body: Value::Null,
                }
            } else {
                not_found()
            }
        })
        .await
        .unwrap_err();
        assert!(err.contains("remove_member") && err.contains("answered 204"), "{err}");
    }

    #[tokio::test]
    async fn a_known_leak_is_counted_while_it_fails_and_named_when_it_passes() {
        let doc = document();
        let t = tenants();
        let known = [("get_org", "an outsider", VICTIM_ORG)];
        let leaky = async |request: ProbeRequest| {
            if request.method == Method::GET && request.uri == format!("/v1/orgs/{}", t.victim.org) {
                ProbeAnswer {
                    status: 200,
                    request_id: None,
                    body: json!({ "id": t.victim.org }),
                }
            } else {
                not_found()
            }
        };
        let coverage = probe_routes(&doc, routes(), &known, &t, leaky).await.unwrap();
        assert_eq!(coverage.known_leaks, 1);
        let err = probe_routes(&doc, routes(), &known, &t, async |_| not_found())
            .await
            .unwrap_err();
        assert!(
            err.contains("get_org") && err.contains("delete it from KNOWN_LEAKS"),
            "{err}"
        );
    }

    #[test]
    fn a_ghost_is_the_same_kind_of_value_naming_nothing() {
        assert_eq!(
            ghost("org_01m967gzrsemz8e2325g9mgb0b"),
            "org_01m967gzrsemz8e2325g9mgb00"
        );
        assert_eq!(
            ghost("org_01m967gzrsemz8e2325g9mgb00"),
            "org_01m967gzrsemz8e2325g9mgb01"
        );
        assert_eq!(ghost("victim-auditors"), "victim-auditors-ghost");
        assert!(
            ghost("usr_01m967gzrkfv5vr96whnz7bztj")
                .parse::<portal_core::ids::UserId>()
                .is_ok()
        );
    }

    #[test]
    fn every_known_leak_names_a_route_and_a_variant() {
        for (operation, _, variant) in KNOWN_LEAKS {
            assert!(routes().iter().any(|r| r.operation_id == *operation), "{operation}");
            assert!([VICTIM_ORG, OWN_ORG].contains(variant), "{variant}");
        }
    }
}
