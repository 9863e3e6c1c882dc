//! The org's administration screens: the organization (its name, renamed by those who
//! may), invitations, roles (what each can do, custom roles),
//! API keys (the secret shown once), the user's sessions, support access (grants and what
//! staff looked at), the audit log and the workflow definitions. Each handler reads its
//! data with a fixed number of [`Api`] calls whatever the number of rows, shows a write
//! control only when the gate allows it (the operation decides again), puts a destructive
//! step behind a `<details>` confirmation, and shows a refused form again with what was
//! typed and the problem next to the field its `param` names.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use portal_core::access::{BUILTIN_ROLES, permissions as perm};
use portal_core::ids::{ApiKeyId, GrantId, InvitationId, OrgId, SessionId, UserId};
use portal_http::api::AuditEventsQuery;
use portal_http::dto::{
    CreateApiKeyRequest, CreateSupportGrantRequest, EffectView, InviteRequest, RolePermissionView, RoleUpdate,
    RoleView, SupportAccessView, UpdateOrgRequest, WhoCanQuery,
};
use portal_http::request::{parse_query, path_id};
use portal_http::{Api, ApiError, PageQuery, RequestMeta, TimelineQuery};
use serde::Deserialize;

use super::screens::{Meta, PAGE_ROWS, active_org, may, member_names, shown_time};
use super::{Nav, PageError, ProblemView, Session, cleared_cookies, form, html, problem, see_other, session};

/// What a refused form posted and the field its problem names, to show it again.
#[derive(Debug, Default)]
pub struct FormState {
    /// The posted fields, by name.
    values: BTreeMap<String, String>,
    /// The problem's `param`.
    param: Option<String>,
    /// The problem's message, shown next to the field.
    message: String,
}

impl FormState {
    fn refused(err: &ApiError, values: BTreeMap<String, String>) -> Self {
        Self {
            param: err.portal_error().param().map(str::to_owned),
            message: err.portal_error().message().to_owned(),
            values,
        }
    }

    /// What was typed in `name`, or nothing.
    pub fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// Whether `value` was the one chosen in `name` (a select's option).
    pub fn chose(&self, name: &str, value: &str) -> bool {
        self.value(name) == value
    }

    /// Whether the problem names the field `name` (or an item of it: `scopes[1]`,
    /// `permissions[0].object`).
    pub fn invalid(&self, name: &str) -> bool {
        self.param.as_deref().is_some_and(|p| {
            p == name
                || p.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
        })
    }

    /// The problem's message when it names `name`, else nothing.
    pub fn error(&self, name: &str) -> &str {
        if self.invalid(name) { &self.message } else { "" }
    }
}

/// The problem and the form of a refused step, for the page shown again.
pub(super) type Refused = Option<(ApiError, BTreeMap<String, String>)>;

/// The status of a page showing `problem`: the problem's own (a `404` for another org's
/// id, a `422`-like `400` for input), else `200`.
pub(super) fn status_of(refused: &Refused) -> StatusCode {
    refused.as_ref().map_or(StatusCode::OK, |(err, _)| {
        StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST)
    })
}

/// The problem view and form state of `refused`.
pub(super) fn shown(refused: Refused, meta: &RequestMeta, org: Option<OrgId>) -> (Option<ProblemView>, FormState) {
    match refused {
        Some((err, values)) => (
            Some(ProblemView::new(&err, meta, org)),
            FormState::refused(&err, values),
        ),
        None => (None, FormState::default()),
    }
}

/// A posted form and the signed-in session it must carry the CSRF token of.
pub(super) async fn posted(
    api: &Api,
    meta: &RequestMeta,
    headers: &HeaderMap,
    body: &[u8],
    current: &'static str,
) -> Result<(Session, BTreeMap<String, String>), PageError> {
    let fields = form(body).map_err(|err| problem(err, meta, None))?;
    let s = session(
        api,
        meta,
        headers,
        fields.get("csrf").map(String::as_str),
        true,
        current,
    )
    .await?;
    Ok((s, fields))
}

/// The `cursor` of a paged screen.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorQuery {
    cursor: Option<String>,
}

fn cursor_query(query: Option<&str>, meta: &RequestMeta, nav: &Nav) -> Result<PageQuery, PageError> {
    let q: CursorQuery = parse_query(query).map_err(|err| problem(err, meta, Some(nav.clone())))?;
    Ok(PageQuery {
        limit: Some(PAGE_ROWS),
        cursor: q.cursor,
    })
}

pub(super) fn encoded(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

// ---------------------------------------------------------------------------------------
// Invitations
// ---------------------------------------------------------------------------------------

/// An invitation row.
struct InvitationRow {
    id: String,
    email: String,
    roles: String,
    state: String,
    expires: String,
    pending: bool,
}

#[derive(Template)]
#[template(path = "organization.html")]
struct OrganizationPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    form: FormState,
    csrf: String,
    name: String,
    slug: String,
    created: String,
    metadata: Vec<(String, String)>,
    can_rename: bool,
    /// Whether the name was just changed.
    renamed: bool,
}

async fn organization_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    refused: Refused,
    renamed: bool,
) -> Result<Response, PageError> {
    let org = active_org(&s, meta)?;
    let fail = |err: ApiError| problem(err, meta, Some(s.nav.clone()));
    let view = api.get_org(&s.caller, org).await.map_err(fail)?;
    let can_rename = may(api, &s, org, perm::ORG_WRITE.object, perm::ORG_WRITE.action).await;
    let status = status_of(&refused);
    let (problem, form) = shown(refused, meta, Some(org));
    let page = OrganizationPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        form,
        name: view.name,
        slug: view.slug,
        created: shown_time(view.created_at),
        metadata: view.metadata.into_iter().collect(),
        can_rename,
        renamed,
    };
    Ok(html(status, &page))
}

/// `GET /organization`: the active org's name, URL name and integrator data, and the
/// rename form when the caller may (`org write`); `?renamed=1` (where a rename goes, so
/// that the header's org switcher shows the new name) says it was renamed.
pub(crate) async fn organization(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "organization").await?;
    organization_page(&api, &meta, s, None, query.as_deref() == Some("renamed=1")).await
}

/// `POST /organization`: renames the active org (its metadata stays), the API's way.
pub(crate) async fn rename_org(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "organization").await?;
    let org = active_org(&s, &meta)?;
    let request = UpdateOrgRequest {
        name: Some(fields.get("name").cloned().unwrap_or_default()),
        metadata: None,
    };
    match api.update_org(&s.caller, org, request).await {
        Ok(_) => Ok(see_other("/organization?renamed=1")),
        Err(err) => organization_page(&api, &meta, s, Some((err, fields)), false).await,
    }
}

#[derive(Template)]
#[template(path = "invitations.html")]
struct InvitationsPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    form: FormState,
    csrf: String,
    rows: Vec<InvitationRow>,
    paged: bool,
    next: Option<String>,
    roles: Vec<String>,
    can_invite: bool,
    can_revoke: bool,
    /// A new invitation's token, shown once.
    token: Option<(String, String)>,
}

async fn invitations_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    query: PageQuery,
    refused: Refused,
    token: Option<(String, String)>,
) -> Result<Response, PageError> {
    let org = active_org(&s, meta)?;
    let fail = |err: ApiError| problem(err, meta, Some(s.nav.clone()));
    let list = api.list_invitations(&s.caller, org, &query).await.map_err(fail)?;
    let can_invite = may(
        api,
        &s,
        org,
        perm::INVITATIONS_CREATE.object,
        perm::INVITATIONS_CREATE.action,
    )
    .await;
    let can_revoke = may(
        api,
        &s,
        org,
        perm::INVITATIONS_DELETE.object,
        perm::INVITATIONS_DELETE.action,
    )
    .await;
    let mut roles: Vec<String> = ["member", "viewer", "admin", "billing", "owner"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    if can_invite {
        let custom = PageQuery {
            limit: Some(100),
            cursor: None,
        };
        if let Ok(list) = api.list_roles(&s.caller, org, &custom).await {
            roles.extend(list.items.into_iter().map(|r| r.name));
        }
    }
    let status = status_of(&refused);
    let (problem, form) = shown(refused, meta, Some(org));
    let page = InvitationsPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        form,
        rows: list
            .items
            .iter()
            .map(|i| InvitationRow {
                id: i.id.to_string(),
                email: i.email.clone(),
                roles: i.roles.join(", "),
                state: i.state.clone(),
                expires: shown_time(i.expires_at),
                pending: i.state == "pending",
            })
            .collect(),
        paged: query.cursor.is_some(),
        next: list.next.as_deref().map(encoded),
        roles,
        can_invite,
        can_revoke,
        token,
    };
    Ok(html(status, &page))
}

/// `GET /invitations`: the org's invitations, the invite form when the caller may invite.
pub(crate) async fn invitations(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "invitations").await?;
    let query = cursor_query(query.as_deref(), &meta, &s.nav)?;
    invitations_page(&api, &meta, s, query, None, None).await
}

/// `POST /invitations`: invites `email` with the role `roles`; the token is shown once.
pub(crate) async fn invite(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "invitations").await?;
    let org = active_org(&s, &meta)?;
    let request = InviteRequest {
        email: fields.get("email").cloned().unwrap_or_default(),
        roles: fields.get("roles").cloned().into_iter().collect(),
    };
    match api.invite(&s.caller, org, request).await {
        Ok(created) => {
            let token = Some((created.invitation.email.clone(), created.token.0.clone()));
            invitations_page(&api, &meta, s, PageQuery::default(), None, token).await
        }
        Err(err) => invitations_page(&api, &meta, s, PageQuery::default(), Some((err, fields)), None).await,
    }
}

/// `POST /invitations/{id}/revoke`.
pub(crate) async fn revoke_invitation(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "invitations").await?;
    let org = active_org(&s, &meta)?;
    let result = match path_id::<InvitationId>("invitation_id", &id) {
        Ok(id) => api.revoke_invitation(&s.caller, org, id).await.map(drop),
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(see_other("/invitations")),
        Err(err) => invitations_page(&api, &meta, s, PageQuery::default(), Some((err, fields)), None).await,
    }
}

// ---------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------

/// A role as the roles screen shows it: its name, parent and what it grants or denies.
struct RoleRow {
    name: String,
    parent: String,
    grants: Vec<String>,
}

impl RoleRow {
    /// Its grants as the edit form's text: one a line, as the create form takes them.
    fn grants_text(&self) -> String {
        self.grants.join("\n")
    }
}

/// The roles screen's query: who may do `action` on `object`, and what `member` may do.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesQuery {
    object: Option<String>,
    action: Option<String>,
    member: Option<String>,
}

/// A member who may do what was asked, with the rule and the role chain.
struct HolderRow {
    name: String,
    roles: String,
    rule: String,
    via: String,
}

/// The answer of the "who can" form.
struct WhoCanView {
    object: String,
    action: String,
    rows: Vec<HolderRow>,
}

/// One rule that reaches the chosen member.
struct MemberRuleRow {
    rule: String,
    via: String,
}

/// The answer of the "what can a member do" form.
struct MemberRulesView {
    name: String,
    rows: Vec<MemberRuleRow>,
}

/// A member to choose in the "what can a member do" form.
struct MemberChoice {
    id: String,
    name: String,
}

fn rule_text(rule: &portal_http::dto::RuleView) -> String {
    match rule.effect {
        EffectView::Allow => format!("{} {}", rule.object, rule.action),
        EffectView::Deny => format!("deny {} {}", rule.object, rule.action),
    }
}

#[derive(Template)]
#[template(path = "roles.html")]
struct RolesPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    form: FormState,
    csrf: String,
    builtin: Vec<RoleRow>,
    custom: Vec<RoleRow>,
    parents: Vec<String>,
    can_manage: bool,
    asked: RolesQueryShown,
    who_can: Option<WhoCanView>,
    member_rules: Option<MemberRulesView>,
    members: Vec<MemberChoice>,
}

/// The query as typed, shown again in the forms.
#[derive(Default)]
struct RolesQueryShown {
    object: String,
    action: String,
    member: String,
}

impl RolesPage {
    /// Whether the edit form of `role` is the one refused (it opens with what was typed).
    fn editing(&self, role: &str) -> bool {
        self.form.value("editing") == role
    }

    /// The parent the edit form of `role` shows: what was typed if it was refused, else
    /// the role's own.
    fn edit_parent<'a>(&'a self, role: &'a RoleRow) -> &'a str {
        if self.editing(&role.name) {
            self.form.value("parent")
        } else {
            &role.parent
        }
    }

    /// The permissions the edit form of `role` shows, likewise.
    fn edit_permissions(&self, role: &RoleRow) -> String {
        if self.editing(&role.name) {
            self.form.value("permissions").to_owned()
        } else {
            role.grants_text()
        }
    }
}

async fn roles_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    refused: Refused,
    asked: RolesQuery,
) -> Result<Response, PageError> {
    let org = active_org(&s, meta)?;
    let fail = |err: ApiError| problem(err, meta, Some(s.nav.clone()));
    let query = PageQuery {
        limit: Some(100),
        cursor: None,
    };
    let list = api.list_roles(&s.caller, org, &query).await.map_err(fail)?;
    // Names for the member choice and the who-can rows: one call, the first 100 members.
    let names = member_names(api, &s, org).await;
    let mut refused = refused;
    let mut who_can = None;
    if asked.object.is_some() || asked.action.is_some() {
        let q = WhoCanQuery {
            object: asked.object.clone(),
            action: asked.action.clone(),
        };
        match api.who_can(&s.caller, org, &q).await {
            Ok(list) => {
                who_can = Some(WhoCanView {
                    object: list.object,
                    action: list.action,
                    rows: list
                        .items
                        .iter()
                        .map(|h| HolderRow {
                            name: names.get(&h.user).cloned().unwrap_or_else(|| h.user.to_string()),
                            roles: h.roles.join(", "),
                            rule: format!("{}: {}", h.grant.role, rule_text(&h.grant)),
                            via: h.grant.via.join(" → "),
                        })
                        .collect(),
                });
            }
            Err(err) if refused.is_none() => refused = Some((err, asked_values(&asked))),
            Err(_) => {}
        }
    }
    let mut member_rules = None;
    if let Some(member) = asked.member.as_deref().filter(|m| !m.is_empty()) {
        let user = path_id::<UserId>("member", member);
        let answer = match user {
            Ok(user) => api.member_permissions(&s.caller, org, user).await,
            Err(err) => Err(err),
        };
        match answer {
            Ok(rules) => {
                member_rules = Some(MemberRulesView {
                    name: names
                        .get(&rules.user)
                        .cloned()
                        .unwrap_or_else(|| rules.user.to_string()),
                    rows: rules
                        .items
                        .iter()
                        .map(|r| MemberRuleRow {
                            rule: format!("{}: {}", r.role, rule_text(r)),
                            via: r.via.join(" → "),
                        })
                        .collect(),
                });
            }
            Err(err) if refused.is_none() => refused = Some((err, asked_values(&asked))),
            Err(_) => {}
        }
    }
    let members = names
        .iter()
        .map(|(id, name)| MemberChoice {
            id: id.to_string(),
            name: name.clone(),
        })
        .collect();
    let can_manage = may(api, &s, org, perm::ROLES_MANAGE.object, perm::ROLES_MANAGE.action).await;
    let builtin: Vec<RoleRow> = BUILTIN_ROLES
        .iter()
        .map(|r| RoleRow {
            name: r.name.to_owned(),
            parent: String::new(),
            grants: r.grants.iter().map(|g| format!("{} {}", g.object, g.action)).collect(),
        })
        .collect();
    let custom: Vec<RoleRow> = list
        .items
        .iter()
        .map(|r| RoleRow {
            name: r.name.clone(),
            parent: r.parent.clone().unwrap_or_default(),
            grants: r
                .permissions
                .iter()
                .map(|p| match p.effect {
                    EffectView::Allow => format!("{} {}", p.object, p.action),
                    EffectView::Deny => format!("deny {} {}", p.object, p.action),
                })
                .collect(),
        })
        .collect();
    let parents = builtin.iter().chain(&custom).map(|r| r.name.clone()).collect();
    let status = status_of(&refused);
    let (problem, form) = shown(refused, meta, Some(org));
    let page = RolesPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        form,
        builtin,
        custom,
        parents,
        can_manage,
        asked: RolesQueryShown {
            object: asked.object.unwrap_or_default(),
            action: asked.action.unwrap_or_default(),
            member: asked.member.unwrap_or_default(),
        },
        who_can,
        member_rules,
        members,
    };
    Ok(html(status, &page))
}

/// The "who can" and "member" queries as form values, to show a refused one again.
fn asked_values(asked: &RolesQuery) -> BTreeMap<String, String> {
    [
        ("object", &asked.object),
        ("action", &asked.action),
        ("member", &asked.member),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
    .collect()
}

/// `GET /roles`: what each built-in and custom role can do; the custom role forms (new,
/// edit, delete); who may do an action on an object (`?object=&action=`) and what a
/// member may do (`?member=`).
pub(crate) async fn roles(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "roles").await?;
    let asked: RolesQuery = parse_query(query.as_deref()).map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    roles_page(&api, &meta, s, None, asked).await
}

/// The permissions of the role form: one a line, `object action` or `deny object action`.
fn role_permissions(text: &str) -> Vec<RolePermissionView> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (effect, rest) = match line.strip_prefix("deny ") {
                Some(rest) => (EffectView::Deny, rest.trim()),
                None => (EffectView::Allow, line),
            };
            let (object, action) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            RolePermissionView {
                object: object.trim().to_owned(),
                action: action.trim().to_owned(),
                effect,
            }
        })
        .collect()
}

/// `POST /roles`: defines a custom role.
pub(crate) async fn create_role(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "roles").await?;
    let org = active_org(&s, &meta)?;
    let role = RoleView {
        name: fields.get("name").cloned().unwrap_or_default(),
        parent: fields.get("parent").filter(|p| !p.is_empty()).cloned(),
        permissions: role_permissions(fields.get("permissions").map_or("", String::as_str)),
    };
    match api.create_role(&s.caller, org, role).await {
        Ok(_) => Ok(see_other("/roles")),
        Err(err) => roles_page(&api, &meta, s, Some((err, fields)), RolesQuery::default()).await,
    }
}

/// `POST /roles/{name}/edit`: replaces a custom role's parent and permissions.
pub(crate) async fn update_role(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, mut fields) = posted(&api, &meta, &headers, &body, "roles").await?;
    let org = active_org(&s, &meta)?;
    let update = RoleUpdate {
        parent: fields.get("parent").filter(|p| !p.is_empty()).cloned(),
        permissions: role_permissions(fields.get("permissions").map_or("", String::as_str)),
    };
    match api.update_role(&s.caller, org, &name, update).await {
        Ok(_) => Ok(see_other("/roles")),
        Err(err) => {
            fields.insert("editing".to_owned(), name);
            roles_page(&api, &meta, s, Some((err, fields)), RolesQuery::default()).await
        }
    }
}

/// `POST /roles/{name}/delete`.
pub(crate) async fn delete_role(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "roles").await?;
    let org = active_org(&s, &meta)?;
    match api.delete_role(&s.caller, org, &name).await {
        Ok(()) => Ok(see_other("/roles")),
        Err(err) => roles_page(&api, &meta, s, Some((err, fields)), RolesQuery::default()).await,
    }
}

// ---------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------

/// An API key row (never its secret).
struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    scopes: String,
    created: String,
    last_used: String,
    expires: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    form: FormState,
    csrf: String,
    rows: Vec<KeyRow>,
    paged: bool,
    next: Option<String>,
    can_manage: bool,
    /// A new key's name and secret, shown once.
    secret: Option<(String, String)>,
}

async fn api_keys_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    query: PageQuery,
    refused: Refused,
    secret: Option<(String, String)>,
) -> Result<Response, PageError> {
    let org = active_org(&s, meta)?;
    let fail = |err: ApiError| problem(err, meta, Some(s.nav.clone()));
    let list = api.list_api_keys(&s.caller, org, &query).await.map_err(fail)?;
    let can_manage = may(api, &s, org, perm::API_KEYS_MANAGE.object, perm::API_KEYS_MANAGE.action).await;
    let status = status_of(&refused);
    let (problem, form) = shown(refused, meta, Some(org));
    let when = |at: Option<time::OffsetDateTime>| at.map_or_else(|| "—".to_owned(), shown_time);
    let page = ApiKeysPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        form,
        rows: list
            .items
            .iter()
            .map(|k| KeyRow {
                id: k.id.to_string(),
                name: k.name.clone(),
                prefix: k.prefix.clone(),
                scopes: k.scopes.join(", "),
                created: shown_time(k.created_at),
                last_used: when(k.last_used_at),
                expires: when(k.expires_at),
                revoked: k.revoked_at.is_some(),
            })
            .collect(),
        paged: query.cursor.is_some(),
        next: list.next.as_deref().map(encoded),
        can_manage,
        secret,
    };
    Ok(html(status, &page))
}

/// `GET /api-keys`: the org's API keys; the create form when the caller may manage them.
pub(crate) async fn api_keys(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "api-keys").await?;
    let query = cursor_query(query.as_deref(), &meta, &s.nav)?;
    api_keys_page(&api, &meta, s, query, None, None).await
}

/// `POST /api-keys`: creates a key (`name`, `scopes` one a line, `days` until it expires);
/// its secret is shown once.
pub(crate) async fn create_api_key(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "api-keys").await?;
    let org = active_org(&s, &meta)?;
    let days = match fields.get("days").map(|d| d.trim().parse::<i64>()) {
        Some(Ok(days)) if (1..=365).contains(&days) => days,
        _ => {
            let err = ApiError::invalid_field("expires_at", "choose how many days the key lasts (1 to 365)");
            return api_keys_page(&api, &meta, s, PageQuery::default(), Some((err, fields)), None).await;
        }
    };
    let request = CreateApiKeyRequest {
        name: fields.get("name").cloned().unwrap_or_default(),
        scopes: fields
            .get("scopes")
            .map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        expires_at: s.caller.context().now() + time::Duration::days(days),
    };
    match api.create_api_key(&s.caller, org, request).await {
        Ok(created) => {
            let secret = Some((created.api_key.name.clone(), created.key.0.clone()));
            api_keys_page(&api, &meta, s, PageQuery::default(), None, secret).await
        }
        Err(err) => api_keys_page(&api, &meta, s, PageQuery::default(), Some((err, fields)), None).await,
    }
}

/// `POST /api-keys/{id}/revoke`.
pub(crate) async fn revoke_api_key(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "api-keys").await?;
    let org = active_org(&s, &meta)?;
    let result = match path_id::<ApiKeyId>("key_id", &id) {
        Ok(id) => api.revoke_api_key(&s.caller, org, id).await.map(drop),
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(see_other("/api-keys")),
        Err(err) => api_keys_page(&api, &meta, s, PageQuery::default(), Some((err, fields)), None).await,
    }
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

/// A session row.
struct SessionRow {
    id: String,
    created: String,
    last_seen: String,
    expires: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct SessionsPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    csrf: String,
    rows: Vec<SessionRow>,
    paged: bool,
    next: Option<String>,
}

async fn sessions_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    query: PageQuery,
    refused: Refused,
) -> Result<Response, PageError> {
    let fail = |err: ApiError| problem(err, meta, Some(s.nav.clone()));
    let list = api.list_sessions(&s.caller, &query).await.map_err(fail)?;
    let status = status_of(&refused);
    let (problem, _) = shown(refused, meta, s.org());
    let page = SessionsPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        rows: list
            .items
            .iter()
            .map(|v| SessionRow {
                id: v.id.to_string(),
                created: shown_time(v.created_at),
                last_seen: shown_time(v.last_seen_at),
                expires: shown_time(v.absolute_expires_at),
                current: v.current,
            })
            .collect(),
        paged: query.cursor.is_some(),
        next: list.next.as_deref().map(encoded),
    };
    Ok(html(status, &page))
}

/// `GET /sessions`: the signed-in user's sessions.
pub(crate) async fn sessions(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "sessions").await?;
    let query = cursor_query(query.as_deref(), &meta, &s.nav)?;
    sessions_page(&api, &meta, s, query, None).await
}

/// `POST /sessions/{id}/revoke`: ends one of the user's sessions; ending the current one
/// signs out here too.
pub(crate) async fn revoke_session(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "sessions").await?;
    let id = match path_id::<SessionId>("session_id", &id) {
        Ok(id) => id,
        Err(err) => return sessions_page(&api, &meta, s, PageQuery::default(), Some((err, fields))).await,
    };
    let current = s.caller.session() == Some(id);
    match api.revoke_session(&s.caller, id).await {
        Ok(()) if current => {
            let mut response = see_other("/sign-in");
            for cookie in cleared_cookies(&api).map_err(|err| problem(err, &meta, None))? {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
        Ok(()) => Ok(see_other("/sessions")),
        Err(err) => sessions_page(&api, &meta, s, PageQuery::default(), Some((err, fields))).await,
    }
}

// ---------------------------------------------------------------------------------------
// Support access
// ---------------------------------------------------------------------------------------

/// A grant row.
struct GrantRow {
    id: String,
    staff: String,
    reason: String,
    access: &'static str,
    granted_by: String,
    expires: String,
    state: &'static str,
    active: bool,
}

/// A recorded entry of a staff member into the org.
struct AccessRow {
    at: String,
    staff: String,
    request_id: String,
    grant: String,
}

#[derive(Template)]
#[template(path = "support_access.html")]
struct SupportAccessPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    form: FormState,
    csrf: String,
    rows: Vec<GrantRow>,
    paged: bool,
    next: Option<String>,
    can_grant: bool,
    can_revoke: bool,
    accesses: Vec<AccessRow>,
    accesses_known: bool,
}

/// The journal pages of the last 24 hours the support access screen reads (a fixed
/// number, 100 events each) for staff entries.
const ACCESS_PAGES: usize = 5;

/// The staff entries (`support.access` events) of the org's last 24 hours, newest first,
/// from at most [`ACCESS_PAGES`] pages of its timeline; `None` when the caller may not
/// read the timeline.
async fn staff_accesses(api: &Api, s: &Session, org: OrgId) -> Option<Vec<AccessRow>> {
    let mut rows = Vec::new();
    let mut cursor = None;
    for _ in 0..ACCESS_PAGES {
        let query = TimelineQuery {
            limit: Some(100),
            cursor: cursor.take(),
            ..TimelineQuery::default()
        };
        let page = api.timeline(&s.caller, org, &query).await.ok()?;
        rows.extend(page.items.iter().filter(|e| e.name == "support.access").map(|e| {
            AccessRow {
                at: shown_time(e.at),
                staff: e.actor.clone().unwrap_or_default(),
                request_id: e.request_id.to_string(),
                grant: e
                    .detail
                    .get("grant")
                    .and_then(|g| g.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            }
        }));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    rows.reverse();
    rows.truncate(50);
    Some(rows)
}

async fn support_access_page(
    api: &Api,
    meta: &RequestMeta,
    s: Session,
    query: PageQuery,
    refused: Refused,
) -> Result<Response, PageError> {
    let org = active_org(&s, meta)?;
    let fail = |err: ApiError| problem(err, meta, Some(s.nav.clone()));
    let list = api.list_support_grants(&s.caller, org, &query).await.map_err(fail)?;
    let can_grant = may(
        api,
        &s,
        org,
        perm::SUPPORT_GRANTS_CREATE.object,
        perm::SUPPORT_GRANTS_CREATE.action,
    )
    .await;
    let can_revoke = may(
        api,
        &s,
        org,
        perm::SUPPORT_GRANTS_DELETE.object,
        perm::SUPPORT_GRANTS_DELETE.action,
    )
    .await;
    let accesses = staff_accesses(api, &s, org).await;
    let status = status_of(&refused);
    let (problem, form) = shown(refused, meta, Some(org));
    let page = SupportAccessPage {
        csrf: s.nav.csrf.clone(),
        nav: Some(s.nav),
        problem,
        form,
        rows: list
            .items
            .iter()
            .map(|g| GrantRow {
                id: g.id.to_string(),
                staff: g.staff.to_string(),
                reason: g.reason.clone(),
                access: match g.access {
                    SupportAccessView::ReadOnly => "read only",
                    SupportAccessView::ReadWrite => "read and write",
                },
                granted_by: g.granted_by.clone(),
                expires: shown_time(g.expires_at),
                state: if g.revoked_at.is_some() {
                    "revoked"
                } else if g.active {
                    "active"
                } else {
                    "expired"
                },
                active: g.active,
            })
            .collect(),
        paged: query.cursor.is_some(),
        next: list.next.as_deref().map(encoded),
        can_grant,
        can_revoke,
        accesses_known: accesses.is_some(),
        accesses: accesses.unwrap_or_default(),
    };
    Ok(html(status, &page))
}

/// `GET /support-access`: the org's support grants, the grant form, and the staff entries
/// recorded in its journal.
pub(crate) async fn support_access(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "support-access").await?;
    let query = cursor_query(query.as_deref(), &meta, &s.nav)?;
    support_access_page(&api, &meta, s, query, None).await
}

/// `POST /support-access`: grants `staff` access for `reason`, `access` and `hours`.
pub(crate) async fn grant_support(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "support-access").await?;
    let org = active_org(&s, &meta)?;
    let hours = match fields.get("hours").map(|h| h.trim().parse::<u32>()) {
        Some(Ok(hours)) => hours,
        _ => {
            let err = ApiError::invalid_field("hours", "how many hours the grant lasts, a whole number");
            return support_access_page(&api, &meta, s, PageQuery::default(), Some((err, fields))).await;
        }
    };
    let request = CreateSupportGrantRequest {
        staff: fields.get("staff").map(|t| t.trim().to_owned()).unwrap_or_default(),
        reason: fields.get("reason").cloned().unwrap_or_default(),
        access: match fields.get("access").map(String::as_str) {
            Some("read_write") => SupportAccessView::ReadWrite,
            _ => SupportAccessView::ReadOnly,
        },
        hours,
    };
    match api.create_support_grant(&s.caller, org, request).await {
        Ok(_) => Ok(see_other("/support-access")),
        Err(err) => support_access_page(&api, &meta, s, PageQuery::default(), Some((err, fields))).await,
    }
}

/// `POST /support-access/{id}/revoke`.
pub(crate) async fn revoke_support(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (s, fields) = posted(&api, &meta, &headers, &body, "support-access").await?;
    let org = active_org(&s, &meta)?;
    let result = match path_id::<GrantId>("grant_id", &id) {
        Ok(id) => api.revoke_support_grant(&s.caller, org, id).await.map(drop),
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Ok(see_other("/support-access")),
        Err(err) => support_access_page(&api, &meta, s, PageQuery::default(), Some((err, fields))).await,
    }
}

// ---------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------

/// An audit event row.
struct AuditRow {
    at: String,
    action: String,
    actor: String,
    targets: String,
    request_id: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Option<Nav>,
    problem: Option<ProblemView>,
    form: FormState,
    rows: Vec<AuditRow>,
    filters: String,
    paged: bool,
    next: Option<String>,
    export_csv: String,
    export_jsonl: String,
}

/// The filters of the audit log screen.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditFilters {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    from: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

/// `GET /audit`: the org's audit log, filtered (action, actor, target, from, until), 20 a
/// page with the cursor, and links to its export.
pub(crate) async fn audit(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "audit").await?;
    let org = active_org(&s, &meta)?;
    let filters: AuditFilters =
        parse_query(query.as_deref()).map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let given = |v: &Option<String>| v.clone().filter(|t| !t.trim().is_empty());
    let wanted = [
        ("action", given(&filters.action)),
        ("actor", given(&filters.actor)),
        ("target", given(&filters.target)),
        ("from", given(&filters.from)),
        ("until", given(&filters.until)),
    ];
    // Built in its own scope: the serializer is not `Send`, and must not live across an
    // `await`.
    let filter_text = {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &wanted {
            if let Some(value) = value {
                pairs.append_pair(name, value);
            }
        }
        pairs.finish()
    };
    let query = AuditEventsQuery {
        action: given(&filters.action),
        actor: given(&filters.actor),
        target: given(&filters.target),
        from: given(&filters.from),
        until: given(&filters.until),
        limit: Some(PAGE_ROWS),
        cursor: filters.cursor.clone(),
    };
    let values: BTreeMap<String, String> = wanted
        .iter()
        .filter_map(|(name, value)| value.clone().map(|v| ((*name).to_owned(), v)))
        .collect();
    let (rows, next, refused) = match api.audit_events(&s.caller, org, &query).await {
        Ok(list) => (
            list.items
                .iter()
                .map(|e| AuditRow {
                    at: shown_time(e.occurred_at),
                    action: e.action.clone(),
                    actor: match &e.actor.name {
                        Some(name) => format!("{name} ({})", e.actor.id),
                        None => e.actor.id.clone(),
                    },
                    targets: e
                        .targets
                        .iter()
                        .map(|t| format!("{} {}", t.kind, t.id))
                        .collect::<Vec<_>>()
                        .join(", "),
                    request_id: e.context.request_id.clone(),
                })
                .collect(),
            list.next,
            None,
        ),
        // A refused filter is shown next to its field; a refused reader gets the error page.
        Err(err) if err.status() == 400 => (Vec::new(), None, Some((err, values.clone()))),
        Err(err) => return Err(problem(err, &meta, Some(s.nav.clone()))),
    };
    let status = status_of(&refused);
    let (problem, mut form) = shown(refused, &meta, Some(org));
    form.values = values;
    let joined = |extra: &str| {
        if filter_text.is_empty() {
            extra.to_owned()
        } else if extra.is_empty() {
            filter_text.clone()
        } else {
            format!("{filter_text}&{extra}")
        }
    };
    let page = AuditPage {
        nav: Some(s.nav.clone()),
        problem,
        form,
        rows,
        paged: filters.cursor.is_some(),
        next: next.map(|n| joined(&format!("cursor={}", encoded(&n)))),
        export_csv: format!("/v1/orgs/{org}/audit-events/export?{}", joined("format=csv")),
        export_jsonl: format!("/v1/orgs/{org}/audit-events/export?{}", joined("format=jsonl")),
        filters: filter_text,
    };
    Ok(html(status, &page))
}

// ---------------------------------------------------------------------------------------
// Workflow definitions
// ---------------------------------------------------------------------------------------

/// A definition as its screen shows it.
struct DefinitionSection {
    name: String,
    version: u32,
    resource: String,
    initial: String,
    states: Vec<(String, bool, String)>,
    transitions: Vec<(String, String, String, String, String)>,
    mermaid: String,
}

#[derive(Template)]
#[template(path = "definitions.html")]
struct DefinitionsPage {
    nav: Option<Nav>,
    definitions: Vec<DefinitionSection>,
}

/// `GET /definitions`: every workflow definition: its states, its transitions with what
/// each asks, and its Mermaid text.
pub(crate) async fn definitions(
    State(api): State<Api>,
    Extension(meta): Meta,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let s = session(&api, &meta, &headers, None, false, "definitions").await?;
    let org = active_org(&s, &meta)?;
    let list = api
        .list_workflow_definitions(&s.caller, org)
        .await
        .map_err(|err| problem(err, &meta, Some(s.nav.clone())))?;
    let definitions = list
        .items
        .into_iter()
        .map(|d| DefinitionSection {
            states: d
                .states
                .iter()
                .map(|st| {
                    let due = st
                        .due_within_seconds
                        .map_or_else(String::new, |secs| format!("{} h", secs / 3600));
                    (st.name.clone(), st.terminal, due)
                })
                .collect(),
            transitions: d
                .transitions
                .iter()
                .map(|t| {
                    let asks = match (&t.approval, &t.permission) {
                        (Some(a), _) => format!(
                            "{} approval(s) by {} {} (reject: {})",
                            a.required, a.permission.object, a.permission.action, a.on_reject
                        ),
                        (None, Some(p)) => format!("{} {}", p.object, p.action),
                        (None, None) => "—".to_owned(),
                    };
                    let needs = t
                        .inputs
                        .iter()
                        .map(|i| format!("input {i}"))
                        .chain(t.guards.iter().map(|g| format!("guard {g}")))
                        .collect::<Vec<_>>()
                        .join(", ");
                    (t.name.clone(), t.from.join(", "), t.to.clone(), asks, needs)
                })
                .collect(),
            name: d.name,
            version: d.version,
            resource: d.resource,
            initial: d.initial,
            mermaid: d.mermaid,
        })
        .collect();
    let page = DefinitionsPage {
        nav: Some(s.nav),
        definitions,
    };
    Ok(html(StatusCode::OK, &page))
}
