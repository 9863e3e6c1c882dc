//! The route table: every operation of the API as a [`Route`] (method, path, operation
//! id, handler), which each server mounts with one generic handler of its framework. A
//! server cannot serve an operation and forget another: both serve [`routes`], and a test
//! of each compares what it serves with the OpenAPI document.
//!
//! A handler takes the neutral [`Request`] (method, path parameters by name, query
//! string, headers, body bytes, the [`RequestMeta`](crate::RequestMeta) of the adapter's
//! edge) and gives a [`Response`] (status, headers, a body empty, in one piece or
//! [streamed](BodyStream)) or an [`ApiError`], which the adapter's edge renders as
//! problem+json with [`Response::problem`].
//!
//! The handlers are one file a resource, as in [`api`](crate::api):
//!
//! | file | operations |
//! |---|---|
//! | `routes/identity.rs` | sign-in and out (and their cookies), the MFA challenge, enrollment and org policy, password reset and change, email verification, `me`, sessions, API keys, switching the session's org |
//! | `routes/orgs.rs` | the caller's orgs, orgs, members, invitations, the org's API version |
//! | `routes/roles.rs` | custom roles (define, replace, delete), giving and taking a member's role, what a member may do, who may do something, mapping a directory (SCIM) group to roles |
//! | `routes/workflows.rs` | workflow instances, transitions, history, assignment, votes, delegations |
//! | `routes/support.rs` | support access grants: give, list, revoke |
//! | `routes/definitions.rs` | workflow definitions (states, transitions, Mermaid) |
//! | `routes/audit.rs` | the customer audit log and its export (JSON lines or CSV, streamed), its retention |
//! | `routes/webhooks.rs` | webhook endpoints, secret rotation, the attempt log, replays, event types |
//! | `routes/diagnostics.rs` | a request's events and explanation, the timeline, support bundles, the export; `GET /openapi.json` and `GET /openapi/{version}` |
//! | `routes/scim.rs` | SCIM 2.0 under `/scim/v2` (a separate protocol: not in the OpenAPI document, see [`Route::is_documented`]) |
//!
//! To add an operation: write its handler in the resource's file, add one line to the
//! table below (`route!(METHOD "/path/{param}", module::operation_id, Idempotency)`, the
//! last part saying what the operation does with an `Idempotency-Key`, see
//! [`idempotency`]), and its utoipa
//! path in [`openapi`](crate::openapi). Both servers serve it from then on, and both
//! servers' cross-tenant suites ([`tenancy_probe`]) probe it when it has an id in its path
//! or query; a new kind of id, query parameter or body is taught to the probe once.

use std::future::Future;
use std::pin::Pin;

use http::Method;

use portal_core::access::Permission;
use portal_core::ids::OrgId;

use crate::api::Api;
use crate::error::ApiError;
use crate::idempotency::{self, Idempotency};
use crate::request::Caller;
use crate::version;

mod audit;
pub mod authz_probe;
mod check;
mod definitions;
mod diagnostics;
mod identity;
mod message;
mod orgs;
mod roles;
pub mod scim;
pub mod scim_suite;
mod support;
pub mod tenancy_probe;
mod webhooks;
pub mod wire;
mod workflows;

pub use identity::{Jar, set_cookie};

pub use check::{check_against_document, check_served, operations_in};
pub use message::{Body, BodyStream, JSON, Request, Response};

/// What a handler returns: a boxed future, so that every handler has the one type
/// [`Handler`].
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;

/// A handler: the operation of one route over the neutral [`Request`].
pub type Handler = fn(Api, Request) -> HandlerFuture;

/// One operation of the API.
#[derive(Clone)]
pub struct Route {
    /// Its method.
    pub method: Method,
    /// Its path, parameters written `{name}` (the syntax of axum 0.8 and actix-web).
    pub path: &'static str,
    /// Its `operationId` in the OpenAPI document (`openapi_json` for `GET /openapi.json`,
    /// and the handler's name for the SCIM routes, which the document does not list).
    pub operation_id: &'static str,
    /// Its handler.
    pub handler: Handler,
    /// What it does with an `Idempotency-Key` ([`Idempotency`]): every route that is not a
    /// `GET` chooses in the table, and a test of the table refuses a route that did not.
    pub idempotency: Idempotency,
}

impl Route {
    /// Runs the handler on `request` in the request's API version ([`version::run`]: the
    /// `Portal-Version` header, else the path org's pin), under the route's
    /// [`Idempotency`]. The routes the document does not list ([`is_documented`](Self::is_documented))
    /// have one version and skip it.
    pub fn call(&self, api: Api, request: Request) -> HandlerFuture {
        if self.is_documented() {
            Box::pin(version::run(self.clone(), api, request))
        } else {
            self.call_unversioned(api, request)
        }
    }

    /// Runs the handler on `request` in the current version, under the route's
    /// [`Idempotency`]: a key is kept, left to the service, or refused, never ignored
    /// ([`idempotency::run`]).
    pub fn call_unversioned(&self, api: Api, request: Request) -> HandlerFuture {
        match self.idempotency {
            Idempotency::Safe | Idempotency::Service => (self.handler)(api, request),
            Idempotency::Replay | Idempotency::ShowsSecret | Idempotency::Refused => {
                Box::pin(idempotency::run(self.clone(), api, request))
            }
        }
    }

    /// Whether the OpenAPI document lists this route: all do but `GET /openapi.json`,
    /// `GET /openapi/{version}` and the SCIM routes under [`scim::SCIM_PREFIX`]. SCIM is a protocol of its own (RFC
    /// 7643/7644), which its clients learn from the RFCs and the discovery resources
    /// (`/scim/v2/ServiceProviderConfig`, `ResourceTypes`, `Schemas`), not from this
    /// document; so the table-against-document check leaves them out explicitly, and
    /// `docs/scim.md` describes them.
    pub fn is_documented(&self) -> bool {
        self.path != OPENAPI_PATH && self.path != VERSIONED_OPENAPI_PATH && !self.is_scim()
    }

    /// Whether this is a SCIM route (under [`scim::SCIM_PREFIX`]).
    pub fn is_scim(&self) -> bool {
        self.path
            .strip_prefix(scim::SCIM_PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The names of the path's parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
    }

    /// The path with each parameter `{name}` replaced by `value(name)`: a URI to call the
    /// route with.
    pub fn uri(&self, value: impl Fn(&str) -> String) -> String {
        self.path
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => value(name),
                    None => segment.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.method, self.path, self.operation_id)
    }
}

/// The path's org (`org_id`), once `caller` was allowed `permission` there
/// ([`Api::authorize_first`]): an operation calls it before it parses anything else of the
/// request (other path values, the query, the body), so that a caller without the
/// permission gets `access.denied`, never a validation error.
async fn authorized_org(
    api: &Api,
    req: &Request,
    caller: &mut Caller,
    permission: Permission,
) -> Result<OrgId, ApiError> {
    let org = req.id::<OrgId>("org_id")?;
    api.authorize_first(caller, org, permission).await?;
    Ok(org)
}

/// The path of the OpenAPI document, served by the table like any route.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The path of each API version's OpenAPI document (`/openapi/2026-06-01`, see
/// [`version`]).
pub const VERSIONED_OPENAPI_PATH: &str = "/openapi/{version}";

/// One table entry: `route!(METHOD "/path", module::operation_id, Idempotency)`, the
/// handler being the `async fn operation_id(Api, Request) -> Result<Response, ApiError>` of
/// `module`. A `GET` may leave out the last part ([`Idempotency::Safe`]); any other
/// method must say what it does with an `Idempotency-Key`.
macro_rules! route {
    (GET $path:literal, $module:ident :: $operation:ident) => {
        route!(GET $path, $module::$operation, Safe)
    };
    ($method:ident $path:literal, $module:ident :: $operation:ident, $idempotency:ident) => {
        Route {
            method: Method::$method,
            path: $path,
            operation_id: stringify!($operation),
            handler: |api, request| Box::pin($module::$operation(api, request)),
            idempotency: Idempotency::$idempotency,
        }
    };
}

/// The table, in the order of `openapi.rs`, then the SCIM routes.
static ROUTES: &[Route] = &[
    route!(POST "/v1/auth/sign-in", identity::sign_in, Refused),
    route!(POST "/v1/auth/sign-out", identity::sign_out, Refused),
    route!(POST "/v1/auth/password-reset", identity::request_password_reset, Refused),
    route!(POST "/v1/auth/password-reset/confirm", identity::reset_password, Refused),
    route!(POST "/v1/auth/password", identity::change_password, Refused),
    route!(POST "/v1/auth/sign-up", identity::request_sign_up, Refused),
    route!(POST "/v1/auth/sign-up/confirm", identity::complete_sign_up, Refused),
    route!(POST "/v1/auth/sign-up/invitation", identity::sign_up_by_invitation, Refused),
    route!(POST "/v1/auth/email-verification", identity::request_email_verification, Replay),
    route!(POST "/v1/auth/email-verification/confirm", identity::verify_email, Replay),
    route!(POST "/v1/auth/email-change", identity::request_email_change, Refused),
    route!(POST "/v1/auth/email-change/confirm", identity::confirm_email_change, Replay),
    route!(GET "/v1/auth/email", identity::email_status),
    route!(GET "/v1/auth/me", identity::me),
    route!(GET "/v1/sessions", identity::list_sessions),
    route!(DELETE "/v1/sessions/{session_id}", identity::revoke_session, Replay),
    route!(GET "/v1/orgs", orgs::list_my_orgs),
    route!(POST "/v1/orgs", orgs::create_org, Replay),
    route!(GET "/v1/orgs/{org_id}", orgs::get_org),
    route!(PATCH "/v1/orgs/{org_id}", orgs::update_org, Replay),
    route!(GET "/v1/orgs/{org_id}/members", orgs::list_members),
    route!(DELETE "/v1/orgs/{org_id}/members/{user_id}", orgs::remove_member, Replay),
    route!(POST "/v1/orgs/{org_id}/members/{user_id}/roles", roles::assign_role, Replay),
    route!(DELETE "/v1/orgs/{org_id}/members/{user_id}/roles/{role}", roles::unassign_role, Replay),
    route!(GET "/v1/orgs/{org_id}/invitations", orgs::list_invitations),
    route!(POST "/v1/orgs/{org_id}/invitations", orgs::invite, ShowsSecret),
    route!(DELETE "/v1/orgs/{org_id}/invitations/{invitation_id}", orgs::revoke_invitation, Replay),
    route!(POST "/v1/invitations/accept", orgs::accept_invitation, Replay),
    route!(GET "/v1/orgs/{org_id}/roles", roles::list_roles),
    route!(POST "/v1/orgs/{org_id}/roles", roles::create_role, Replay),
    route!(DELETE "/v1/orgs/{org_id}/roles/{role}", roles::delete_role, Replay),
    route!(PUT "/v1/orgs/{org_id}/roles/{role}", roles::update_role, Replay),
    route!(GET "/v1/orgs/{org_id}/members/{user_id}/permissions", roles::member_permissions),
    route!(GET "/v1/orgs/{org_id}/who-can", roles::who_can),
    route!(GET "/v1/orgs/{org_id}/api-keys", identity::list_api_keys),
    route!(POST "/v1/orgs/{org_id}/api-keys", identity::create_api_key, ShowsSecret),
    route!(DELETE "/v1/orgs/{org_id}/api-keys/{key_id}", identity::revoke_api_key, Replay),
    route!(GET "/v1/orgs/{org_id}/workflows", workflows::list_workflows),
    route!(POST "/v1/orgs/{org_id}/workflows", workflows::create_workflow, Service),
    route!(GET "/v1/orgs/{org_id}/workflows/{workflow_id}", workflows::get_workflow),
    route!(POST "/v1/orgs/{org_id}/workflows/{workflow_id}/transitions/{transition}", workflows::transition_workflow, Service),
    route!(GET "/v1/orgs/{org_id}/diagnostics/requests/{request_id}", diagnostics::request_events),
    route!(GET "/v1/orgs/{org_id}/diagnostics/requests/{request_id}/explain", diagnostics::explain_request),
    route!(GET "/v1/orgs/{org_id}/diagnostics/timeline", diagnostics::timeline),
    route!(POST "/v1/auth/switch-org", identity::switch_org, Refused),
    route!(GET "/v1/orgs/{org_id}/workflows/{workflow_id}/history", workflows::workflow_history),
    route!(PUT "/v1/orgs/{org_id}/workflows/{workflow_id}/assignee", workflows::assign_workflow, Service),
    route!(POST "/v1/orgs/{org_id}/workflows/{workflow_id}/votes", workflows::vote_workflow, Service),
    route!(POST "/v1/orgs/{org_id}/delegations", workflows::delegate_votes, Replay),
    route!(GET "/v1/orgs/{org_id}/diagnostics/support-bundle", diagnostics::support_bundle),
    route!(GET "/v1/orgs/{org_id}/diagnostics/export", diagnostics::export_events),
    route!(GET "/v1/orgs/{org_id}/audit-events", audit::list_audit_events),
    route!(GET "/v1/orgs/{org_id}/audit-events/export", audit::export_audit_events),
    route!(PUT "/v1/orgs/{org_id}/scim-groups/{group_id}/roles", roles::set_group_roles, Replay),
    route!(GET "/v1/orgs/{org_id}/support-grants", support::list_support_grants),
    route!(POST "/v1/orgs/{org_id}/support-grants", support::create_support_grant, Replay),
    route!(DELETE "/v1/orgs/{org_id}/support-grants/{grant_id}", support::revoke_support_grant, Replay),
    route!(GET "/v1/orgs/{org_id}/workflow-definitions", definitions::list_workflow_definitions),
    route!(GET "/v1/orgs/{org_id}/workflow-definitions/{definition}", definitions::get_workflow_definition),
    route!(POST "/v1/auth/mfa/challenge", identity::complete_mfa_challenge, Refused),
    route!(POST "/v1/auth/mfa/challenge/passkey/options", identity::begin_mfa_passkey, Refused),
    route!(POST "/v1/auth/mfa/challenge/passkey", identity::complete_mfa_challenge_with_passkey, Refused),
    route!(GET "/v1/auth/mfa", identity::mfa_status),
    route!(POST "/v1/auth/mfa/totp", identity::begin_totp_enrollment, ShowsSecret),
    route!(POST "/v1/auth/mfa/totp/confirm", identity::confirm_totp, ShowsSecret),
    route!(POST "/v1/auth/mfa/totp/remove", identity::remove_totp, Replay),
    route!(POST "/v1/auth/mfa/recovery-codes", identity::regenerate_recovery_codes, ShowsSecret),
    route!(GET "/v1/auth/passkeys", identity::list_passkeys),
    route!(POST "/v1/auth/passkeys/registration", identity::begin_passkey_registration, ShowsSecret),
    route!(POST "/v1/auth/passkeys/reauthentication", identity::begin_passkey_reauthentication, ShowsSecret),
    route!(POST "/v1/auth/passkeys", identity::finish_passkey_registration, Replay),
    route!(POST "/v1/auth/passkeys/sign-in/options", identity::begin_passkey_sign_in, Refused),
    route!(POST "/v1/auth/passkeys/sign-in", identity::finish_passkey_sign_in, Refused),
    route!(PATCH "/v1/auth/passkeys/{passkey_id}", identity::rename_passkey, Replay),
    route!(POST "/v1/auth/passkeys/{passkey_id}/remove", identity::remove_passkey, Replay),
    route!(GET "/v1/orgs/{org_id}/mfa-policy", identity::get_mfa_policy),
    route!(PUT "/v1/orgs/{org_id}/mfa-policy", identity::set_mfa_policy, Replay),
    route!(GET "/v1/orgs/{org_id}/api-version", orgs::get_api_version),
    route!(PUT "/v1/orgs/{org_id}/api-version", orgs::set_api_version, Replay),
    route!(GET "/v1/orgs/{org_id}/audit-retention", audit::get_audit_retention),
    route!(PUT "/v1/orgs/{org_id}/audit-retention", audit::set_audit_retention, Replay),
    route!(GET "/v1/webhook-event-types", webhooks::list_webhook_event_types),
    route!(GET "/v1/orgs/{org_id}/webhook-endpoints", webhooks::list_webhook_endpoints),
    route!(POST "/v1/orgs/{org_id}/webhook-endpoints", webhooks::create_webhook_endpoint, ShowsSecret),
    route!(GET "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}", webhooks::get_webhook_endpoint),
    route!(PATCH "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}", webhooks::update_webhook_endpoint, Replay),
    route!(DELETE "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}", webhooks::delete_webhook_endpoint, Replay),
    route!(POST "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}/rotate-secret", webhooks::rotate_webhook_secret, ShowsSecret),
    route!(GET "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}/attempts", webhooks::list_webhook_attempts),
    route!(POST "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}/messages/{message_id}/replay", webhooks::replay_webhook_message, Replay),
    route!(POST "/v1/orgs/{org_id}/webhook-endpoints/{endpoint_id}/replay", webhooks::replay_webhook_range, Replay),
    route!(GET "/openapi.json", diagnostics::openapi_json),
    route!(GET "/openapi/{version}", diagnostics::versioned_openapi_json),
    route!(GET "/scim/v2/Users", scim::scim_list_users),
    route!(POST "/scim/v2/Users", scim::scim_create_user, Replay),
    route!(GET "/scim/v2/Users/{id}", scim::scim_get_user),
    route!(PUT "/scim/v2/Users/{id}", scim::scim_replace_user, Replay),
    route!(PATCH "/scim/v2/Users/{id}", scim::scim_patch_user, Replay),
    route!(DELETE "/scim/v2/Users/{id}", scim::scim_delete_user, Replay),
    route!(GET "/scim/v2/Groups", scim::scim_list_groups),
    route!(POST "/scim/v2/Groups", scim::scim_create_group, Replay),
    route!(GET "/scim/v2/Groups/{id}", scim::scim_get_group),
    route!(PUT "/scim/v2/Groups/{id}", scim::scim_replace_group, Replay),
    route!(PATCH "/scim/v2/Groups/{id}", scim::scim_patch_group, Replay),
    route!(DELETE "/scim/v2/Groups/{id}", scim::scim_delete_group, Replay),
    route!(GET "/scim/v2/ServiceProviderConfig", scim::scim_service_provider_config),
    route!(GET "/scim/v2/ResourceTypes", scim::scim_resource_types),
    route!(GET "/scim/v2/ResourceTypes/{id}", scim::scim_resource_type),
    route!(GET "/scim/v2/Schemas", scim::scim_schemas),
    route!(GET "/scim/v2/Schemas/{id}", scim::scim_schema),
    route!(GET "/scim/v2/{resource}", scim::scim_unknown),
    route!(POST "/scim/v2/{resource}", scim::scim_search, Replay),
];

/// Every route: each operation of the OpenAPI document, `GET /openapi.json`, and the SCIM
/// routes.
pub fn routes() -> &'static [Route] {
    ROUTES
}

/// The routes of one path, as a framework mounts them (one resource, one handler per
/// method; another method answers `405`).
#[derive(Debug, Clone)]
pub struct Resource {
    /// The path.
    pub path: &'static str,
    /// Its routes, one a method.
    pub routes: Vec<&'static Route>,
}

/// [`routes`] grouped by path, in the table's order of first appearance.
pub fn resources() -> Vec<Resource> {
    let mut resources: Vec<Resource> = Vec::new();
    for route in routes() {
        match resources.iter_mut().find(|r| r.path == route.path) {
            Some(resource) => resource.routes.push(route),
            None => resources.push(Resource {
                path: route.path,
                routes: vec![route],
            }),
        }
    }
    resources
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_table_is_the_documents_operations_and_the_document() {
        let doc: serde_json::Value = serde_json::from_str(&crate::openapi::openapi_json()).unwrap();
        let scim = routes().iter().filter(|r| r.is_scim()).count();
        assert_eq!(scim, 19, "the SCIM routes");
        // Not documented: `GET /openapi.json`, `GET /openapi/{version}` and SCIM.
        assert_eq!(check_against_document(&doc), Ok(routes().len() - 2 - scim));
        assert_eq!(operations_in(&doc).len(), routes().len() - 2 - scim);
        assert_eq!(routes().iter().filter(|r| !r.is_documented()).count(), 2 + scim);
        assert!(
            operations_in(&doc)
                .iter()
                .all(|(_, path, _)| !path.starts_with("/scim/")),
            "the document lists no SCIM path"
        );
    }

    #[test]
    fn a_route_missing_from_the_document_is_named() {
        let mut doc: serde_json::Value = serde_json::from_str(&crate::openapi::openapi_json()).unwrap();
        doc["paths"]["/v1/auth/me"].as_object_mut().unwrap().clear();
        doc["paths"]["/v1/extra"] = serde_json::json!({ "get": { "operationId": "extra" } });
        let err = check_against_document(&doc).unwrap_err();
        assert!(err.contains("documented, not served: GET /v1/extra (extra)"), "{err}");
        assert!(err.contains("served, not documented: GET /v1/auth/me (me)"), "{err}");
    }

    #[test]
    fn a_path_is_one_resource_and_a_method_appears_once_on_it() {
        for resource in resources() {
            let mut methods: Vec<&str> = resource.routes.iter().map(|r| r.method.as_str()).collect();
            let count = methods.len();
            methods.sort_unstable();
            methods.dedup();
            assert_eq!(methods.len(), count, "{}", resource.path);
        }
        assert_eq!(
            resources().iter().map(|r| r.routes.len()).sum::<usize>(),
            routes().len()
        );
    }

    /// Every route that changes something chose what it does with an `Idempotency-Key`:
    /// only a `GET` is `Safe` (a key ignored), and only the workflow operations, which key
    /// requests in the workflow store, leave it to their service.
    #[test]
    fn every_changing_route_keeps_refuses_or_hands_over_a_key() {
        for route in routes() {
            assert_eq!(
                route.idempotency == Idempotency::Safe,
                route.method == Method::GET,
                "{route:?} is {:?}",
                route.idempotency
            );
        }
        let service: Vec<&str> = routes()
            .iter()
            .filter(|r| r.idempotency == Idempotency::Service)
            .map(|r| r.operation_id)
            .collect();
        assert_eq!(
            service,
            [
                "create_workflow",
                "transition_workflow",
                "assign_workflow",
                "vote_workflow"
            ]
        );
    }

    #[test]
    fn params_are_named_in_order() {
        let route = routes()
            .iter()
            .find(|r| r.operation_id == "transition_workflow")
            .unwrap();
        assert_eq!(
            route.params().collect::<Vec<_>>(),
            ["org_id", "workflow_id", "transition"]
        );
    }
}
