//! The webhooks screen (`/webhooks`): the active org's endpoints (URL, event types,
//! enabled, failing or disabled), the create form (event types as checkboxes from the
//! catalog) that shows the signing secret once, and per endpoint enable/disable, rotate
//! the secret (the new one shown once), delete behind a confirmation, and its delivery
//! attempts (`?endpoint=<id>`) with a replay button per message. The page reads its data
//! with a fixed number of [`Api`] calls; every control posts the session's CSRF token and
//! the operation authorizes (`webhooks manage`) before it reads the input.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use portal_core::access::permissions as perm;
use portal_core::ids::{OrgId, WebhookEndpointId, WebhookMessageId};
use portal_http::dto::{CreateWebhookEndpointRequest, UpdateWebhookEndpointRequest};
use portal_http::request::{parse_query, path_id};
use portal_http::{Api, ApiError, PageQuery, RequestMeta};
use serde::Deserialize;

use super::admin::{FormState, Refused, encoded, posted, shown, status_of};
use super::screens::{Meta, PAGE_ROWS, active_org, may, shown_time};
use super::{Nav, PageError, ProblemView, Session, html, problem, see_other, session};

/// The prefix of an event type's checkbox name in the create form (`event.<name>`).
const EVENT_FIELD: &str = "event.";

/// An endpoint row.
struct EndpointRow {
    id: String,
    url: String,
    description: String,
    events: String,
    /// `enabled`, `failing since …` or `disabled`.
    state: String,
    enabled: bool,
}

/// A delivery attempt row.
struct AttemptRow {
    message: String,
    attempt: u32,
    at: String,
    status: String,
    http_status: String,
    latency_ms: u32,
}

/// An event type of the catalog, a checkbox of the create form.
struct EventChoice {
    name: String,
    description: String,
}

/// The selected endpoint's delivery attempts.
struct Deliveries {
    id: String,
    url: String,
    rows: Vec<AttemptRow>,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    form: FormState,
    csrf: String,
    rows: Vec<EndpointRow>,
    paged: bool,
    next: Option<String>,
    events: Vec<EventChoice>,
    can_manage: bool,
    deliveries: Option<Deliveries>,
    /// A new (or rotated) endpoint's URL and signing secret, shown once.
    secret: Option<(String, String)>,
}

impl WebhooksPage {
    /// Whether the refused form had the event type `name` ticked.
    fn ticked(&self, name: &str) -> bool {
        self.form.value(&format!("{EVENT_FIELD}{name}")) == "on"
    }
}

/// The query of `/webhooks`: the endpoints' page and the endpoint whose attempts show.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhooksQuery {
    cursor: Option<String>,
    endpoint: Option<String>,
}

/// What the page shows besides the endpoints' list.
#[derive(Default)]
struct Shown {
    query: PageQuery,
    endpoint: Option<WebhookEndpointId>,
    refused: Refused,
    secret: Option<(String, String)>,
}

async fn webhooks_page(api: &Api, meta: &RequestMeta, s: Session, shown_: Shown) -> Result<Response, PageError> {
    let org = active_org(&s, meta)?;
    let fail = |err: ApiError| problem(err, meta, Some(s.nav.clone()));
    let list = api
        .list_webhook_endpoints(&s.caller, org, &shown_.query)
        .await
        .map_err(fail)?;
    let deliveries = match shown_.endpoint {
        Some(id) => Some(deliveries(api, &s, org, id).await.map_err(fail)?),
        None => None,
    };
    let can_manage = may(api, &s, org, perm::WEBHOOKS_MANAGE.object, perm::WEBHOOKS_MANAGE.action).await;
    let status = status_of(&shown_.refused);
    let (problem, form) = shown(shown_.refused, meta, Some(org));
    let page = WebhooksPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        form,
        rows: list
            .items
            .iter()
            .map(|e| EndpointRow {
                id: e.id.to_string(),
                url: e.url.clone(),
                description: e.description.clone(),
                events: e.event_types.join(", "),
                state: match (e.enabled, e.failing_since) {
                    (false, _) => "disabled".to_owned(),
                    (true, Some(since)) => format!("failing since {}", shown_time(since)),
                    (true, None) => "enabled".to_owned(),
                },
                enabled: e.enabled,
            })
            .collect(),
        paged: shown_.query.cursor.is_some(),
        next: list.next.as_deref().map(encoded),
        events: api
            .webhook_event_types()
            .items
            .into_iter()
            .map(|t| EventChoice {
                name: t.name,
                description: t.description,
            })
            .collect(),
        can_manage,
        deliveries,
        secret: shown_.secret,
    };
    Ok(html(status, &page))
}

/// The first page of endpoint `id`'s attempt log (`webhook.endpoint_not_found` for an id
/// the org does not have).
async fn deliveries(api: &Api, s: &Session, org: OrgId, id: WebhookEndpointId) -> Result<Deliveries, ApiError> {
    let endpoint = api.get_webhook_endpoint(&s.caller, org, id).await?;
    let query = PageQuery {
        limit: Some(PAGE_ROWS),
        cursor: None,
    };
    let attempts = api.list_webhook_attempts(&s.caller, org, id, &query).await?;
    Ok(Deliveries {
        id: endpoint.id.to_string(),
        url: endpoint.url,
        rows: attempts
            .items
            .iter()
            .map(|a| AttemptRow {
                message: a.message_id.to_string(),
                attempt: a.attempt,
                at: shown_time(a.attempted_at),
                status: a.status.clone(),
                http_status: a.http_status.map_or_else(|| "—".to_owned(), |c| c.to_string()),
                latency_ms: a.latency_ms,
            })
            .collect(),
    })
}

/// `GET /webhooks[?cursor=…][&endpoint=<id>]`: the org's endpoints, the selected
/// endpoint's delivery attempts, and the controls when the caller may manage webhooks.
pub(crate) async fn webhooks(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "webhooks").await?;
    let q: WebhooksQuery = parse_query(query.as_deref()).map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let endpoint = match q.endpoint.as_deref() {
        Some(id) => {
            Some(path_id::<WebhookEndpointId>("endpoint", id).map_err(|err| problem(err, &meta, Some(s.nav.clone())))?)
        }
        None => None,
    };
    let shown_ = Shown {
        query: PageQuery {
            limit: Some(PAGE_ROWS),
            cursor: q.cursor,
        },
        endpoint,
        ..Shown::default()
    };
    webhooks_page(&api, &meta, s, shown_).await
}

/// The page shown again after a refused step.
async fn refused_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    err: ApiError,
    fields: BTreeMap<String, String>,
) -> Result<Response, PageError> {
    let shown_ = Shown {
        refused: Some((err, fields)),
        ..Shown::default()
    };
    webhooks_page(api, meta, s, shown_).await
}

/// `POST /webhooks`: creates an endpoint (`url`, `description`, a ticked `event.<name>`
/// per event type); its signing secret is shown once.
pub(crate) async fn create(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "webhooks").await?;
    let org = active_org(&s, &meta)?;
    let request = CreateWebhookEndpointRequest {
        url: fields.get("url").map(|u| u.trim().to_owned()).unwrap_or_default(),
        description: fields.get("description").cloned().unwrap_or_default(),
        event_types: fields
            .iter()
            .filter(|(_, v)| v.as_str() == "on")
            .filter_map(|(k, _)| k.strip_prefix(EVENT_FIELD))
            .map(str::to_owned)
            .collect(),
        enabled: true,
    };
    match api.create_webhook_endpoint(&s.caller, org, request).await {
        Ok(created) => {
            let shown_ = Shown {
                secret: Some((created.endpoint.url.clone(), created.secret.0.clone())),
                ..Shown::default()
            };
            webhooks_page(&api, &meta, s, shown_).await
        }
        Err(err) => refused_page(&api, &meta, s, err, fields).await,
    }
}

/// `POST /webhooks/{id}/enabled` (`enabled` = `true` or `false`): turns deliveries to
/// the endpoint on or off.
pub(crate) async fn set_enabled(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "webhooks").await?;
    let org = active_org(&s, &meta)?;
    let enabled = match fields.get("enabled").map(String::as_str) {
        Some("true") => Some(true),
        Some("false") => Some(false),
        _ => None,
    };
    let result = match path_id::<WebhookEndpointId>("endpoint_id", &id) {
        Ok(id) => {
            let changes = UpdateWebhookEndpointRequest {
                url: None,
                description: None,
                event_types: None,
                enabled,
            };
            match enabled {
                Some(_) => api.update_webhook_endpoint(&s.caller, org, id, changes).await.map(drop),
                None => Err(ApiError::invalid_field("enabled", "choose true or false")),
            }
        }
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(see_other("/webhooks")),
        Err(err) => refused_page(&api, &meta, s, err, fields).await,
    }
}

/// `POST /webhooks/{id}/rotate`: a new signing secret, shown once (the previous one keeps
/// signing beside it for the rotation window).
pub(crate) async fn rotate(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "webhooks").await?;
    let org = active_org(&s, &meta)?;
    let result = match path_id::<WebhookEndpointId>("endpoint_id", &id) {
        Ok(id) => api.rotate_webhook_secret(&s.caller, org, id).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(rotated) => {
            let shown_ = Shown {
                secret: Some((rotated.endpoint.url.clone(), rotated.secret.0.clone())),
                ..Shown::default()
            };
            webhooks_page(&api, &meta, s, shown_).await
        }
        Err(err) => refused_page(&api, &meta, s, err, fields).await,
    }
}

/// `POST /webhooks/{id}/delete`: deletes the endpoint, its pending deliveries and its
/// attempt log.
pub(crate) async fn delete(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "webhooks").await?;
    let org = active_org(&s, &meta)?;
    let result = match path_id::<WebhookEndpointId>("endpoint_id", &id) {
        Ok(id) => api.delete_webhook_endpoint(&s.caller, org, id).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(see_other("/webhooks")),
        Err(err) => refused_page(&api, &meta, s, err, fields).await,
    }
}

/// `POST /webhooks/{id}/messages/{message}/replay`: queues the message to the endpoint
/// again (the same `webhook-id`).
pub(crate) async fn replay(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path((id, message)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "webhooks").await?;
    let org = active_org(&s, &meta)?;
    let result = match (
        path_id::<WebhookEndpointId>("endpoint_id", &id),
        path_id::<WebhookMessageId>("message_id", &message),
    ) {
        (Ok(id), Ok(message)) => api
            .replay_webhook_message(&s.caller, org, id, message)
            .await
            .map(|_| id),
        (Err(err), _) | (_, Err(err)) => Err(err),
    };
    match result {
        Ok(id) => Ok(see_other(&format!("/webhooks?endpoint={id}"))),
        Err(err) => refused_page(&api, &meta, s, err, fields).await,
    }
}
