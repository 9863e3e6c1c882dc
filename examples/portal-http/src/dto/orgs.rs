//! Tenancy bodies: orgs (and the caller's orgs with their roles), members, invitations.

use std::collections::BTreeMap;

use portal_core::ids::{InvitationId, OrgId, UserId};
use portal_core::tenancy::{Invitation, InvitationState, Membership, Organization, RoleName, User, UserOrg};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::common::ShownOnce;

fn roles_of(roles: impl IntoIterator<Item = RoleName>) -> Vec<String> {
    roles.into_iter().map(|r| r.as_str().to_owned()).collect()
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    /// Its id.
    #[schema(value_type = String, example = "org_01jd5x8y6kf3w9q2m7c4t0vbnr")]
    pub id: OrgId,
    /// Its unique URL name.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// Integrator data.
    pub metadata: BTreeMap<String, String>,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&Organization> for OrgView {
    fn from(org: &Organization) -> Self {
        Self {
            id: org.id,
            slug: org.slug.as_str().to_owned(),
            name: org.name.as_str().to_owned(),
            metadata: org.metadata.entries().clone(),
            created_at: org.created_at,
        }
    }
}

/// An org of the caller, with the caller's roles in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyOrgView {
    /// The org.
    pub org: OrgView,
    /// The caller's roles there.
    pub roles: Vec<String>,
}

impl From<&UserOrg> for MyOrgView {
    fn from(entry: &UserOrg) -> Self {
        Self {
            org: OrgView::from(&entry.org),
            roles: roles_of(entry.membership.roles.iter().cloned()),
        }
    }
}

/// The caller's orgs.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyOrgList {
    /// The orgs, by id.
    pub items: Vec<MyOrgView>,
    /// The cursor of the next page, if there are more orgs.
    pub next: Option<String>,
}

/// `POST /v1/orgs`: the caller becomes its owner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    /// The unique URL name: lowercase letters, digits and dashes.
    #[schema(example = "initech")]
    pub slug: String,
    /// The display name.
    #[schema(example = "Initech")]
    pub name: String,
    /// Integrator data.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `PATCH /v1/orgs/{org_id}`: what to change; a field left out stays as it is.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    /// A new display name.
    #[serde(default)]
    #[schema(example = "Initech Europe")]
    pub name: Option<String>,
    /// New integrator data, replacing all of it (`{}` clears it).
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A member of an org.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The user.
    #[schema(value_type = String)]
    pub user: UserId,
    /// Their roles.
    pub roles: Vec<String>,
    /// Their name: in the members listing (read with the page, in one query); absent
    /// from the membership a change answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Their email: in the members listing; absent from the membership a change answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When their roles last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&Membership> for MemberView {
    fn from(m: &Membership) -> Self {
        Self {
            org: m.org,
            user: m.user,
            roles: roles_of(m.roles.iter().cloned()),
            display_name: None,
            email: None,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

impl From<&(Membership, User)> for MemberView {
    fn from((m, user): &(Membership, User)) -> Self {
        Self {
            display_name: Some(user.display_name.as_str().to_owned()),
            email: Some(user.email.as_str().to_owned()),
            ..Self::from(m)
        }
    }
}

/// A member in the members listing (API version `2026-12-01`): their user embedded,
/// `joined_at` for the membership's creation. Version `2026-06-01` lists [`MemberView`]s
/// instead (see [`version`](crate::version)).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberEntry {
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// The user.
    pub user: MemberUser,
    /// Their roles.
    pub roles: Vec<String>,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: OffsetDateTime,
    /// When their roles last changed.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// The user of a [`MemberEntry`].
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberUser {
    /// Their id.
    #[schema(value_type = String)]
    pub id: UserId,
    /// Their name.
    pub display_name: String,
    /// Their email.
    pub email: String,
}

impl From<&(Membership, User)> for MemberEntry {
    fn from((m, user): &(Membership, User)) -> Self {
        Self {
            org: m.org,
            user: MemberUser {
                id: m.user,
                display_name: user.display_name.as_str().to_owned(),
                email: user.email.as_str().to_owned(),
            },
            roles: roles_of(m.roles.iter().cloned()),
            joined_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    /// The members.
    pub items: Vec<MemberEntry>,
    /// The cursor of the next page (`?cursor=`), if any.
    pub next: Option<String>,
}

/// `POST /v1/orgs/{org_id}/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Who is invited.
    #[schema(example = "new.hire@acme.example")]
    pub email: String,
    /// The roles they get on accepting.
    #[schema(example = json!(["member"]))]
    pub roles: Vec<String>,
}

/// An invitation (never its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// Its id.
    #[schema(value_type = String)]
    pub id: InvitationId,
    /// The org.
    #[schema(value_type = String)]
    pub org: OrgId,
    /// Who is invited.
    pub email: String,
    /// The roles they get.
    pub roles: Vec<String>,
    /// `pending`, `accepted` or `revoked`.
    pub state: String,
    /// When it was made.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it stops working.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        let state = match &i.state {
            InvitationState::Pending => "pending",
            InvitationState::Accepted { .. } => "accepted",
            InvitationState::Revoked { .. } => "revoked",
        };
        Self {
            id: i.id,
            org: i.org,
            email: i.email.as_str().to_owned(),
            roles: roles_of(i.roles.iter().cloned()),
            state: state.to_owned(),
            created_at: i.created_at,
            expires_at: i.expires_at,
        }
    }
}

/// A new invitation and its token, shown once (send it to the invitee).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    /// The invitation.
    pub invitation: InvitationView,
    /// The token the invitee accepts with; only its hash is stored.
    pub token: ShownOnce,
}

/// A page of invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// The invitations.
    pub items: Vec<InvitationView>,
    /// The cursor of the next page, if any.
    pub next: Option<String>,
}

/// `POST /v1/invitations/accept`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The invitation token.
    #[schema(value_type = String, format = Password)]
    pub token: SecretString,
}

/// The API version an org is pinned to (`GET`/`PUT /v1/orgs/{org_id}/api-version`; the
/// `PUT` takes the same body).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiVersionView {
    /// The version's date, one of the supported versions (`docs/http.md`).
    pub version: String,
}
