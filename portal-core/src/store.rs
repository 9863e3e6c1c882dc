//! What every store port shares: `StoreError`, and cursor pagination.

use serde::{Deserialize, Serialize};

use crate::error::{BoxError, ErrorCode, PortalError};

/// The error of every store port.
///
/// Adapters map their driver's errors into these variants once (see
/// `portal_adapters::sql`), so services never see a driver type.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the operation needs does not exist (in this org).
    #[error("{entity} not found")]
    NotFound {
        /// What was missing, such as `membership`.
        entity: &'static str,
    },
    /// The operation would break a rule the store enforces atomically.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The backend could not be reached, timed out, ran out of connections, or lost the
    /// connection mid-operation. The transaction was rolled back, so nothing was written,
    /// except in the one case no client can rule out: a connection lost while `COMMIT`
    /// was in flight, where the outcome is unknown. The same call may succeed later;
    /// callers that cannot tolerate a repeat use an idempotency key.
    #[error("{backend} is unavailable")]
    Unavailable {
        /// The backend, such as `postgres`.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// Any other backend failure; a retry is not expected to help.
    #[error("{backend} failed")]
    Backend {
        /// The backend, such as `sqlite`.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A stored value could not be read back into a domain type.
    #[error("{backend} holds a corrupt {what}")]
    Corrupt {
        /// The backend.
        backend: &'static str,
        /// What could not be decoded.
        what: String,
    },
}

impl StoreError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// A rule the store enforces atomically was about to be broken.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// Another organization already has this slug.
    #[error("the slug is taken")]
    SlugTaken,
    /// Another user already has this email address.
    #[error("the email address is taken")]
    EmailTaken,
    /// The row already exists (a duplicate id).
    #[error("the {entity} already exists")]
    AlreadyExists {
        /// What already exists.
        entity: &'static str,
    },
    /// The change would leave an organization without an owner.
    #[error("the organization would lose its last owner")]
    LastOwner,
    /// The invitation was accepted or revoked before this call.
    #[error("the invitation is no longer pending")]
    InvitationNotPending,
    /// The invitation's expiry time has passed.
    #[error("the invitation has expired")]
    InvitationExpired,
    /// Accepting the invitation would give the member more than
    /// [`RoleSet::MAX`](crate::tenancy::RoleSet::MAX) roles; nothing changes.
    #[error("the member would hold more than 16 roles")]
    TooManyRoles,
    /// The principal already used this idempotency key for a different request.
    #[error("the idempotency key was used for another request")]
    IdempotencyKeyReused,
    /// The version the caller expected is not the current one.
    #[error("expected version {expected}, found {current}")]
    Version {
        /// What the caller expected.
        expected: u64,
        /// What the store holds.
        current: u64,
    },
}

impl From<StoreError> for PortalError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound { entity } => {
                let code = match entity {
                    "organization" => ErrorCode::OrgNotFound,
                    "user" => ErrorCode::UserNotFound,
                    "membership" => ErrorCode::MemberNotFound,
                    "invitation" => ErrorCode::InvitationNotFound,
                    "workflow" => ErrorCode::WorkflowNotFound,
                    "support_grant" => ErrorCode::SupportGrantNotFound,
                    "webhook_endpoint" => ErrorCode::WebhookEndpointNotFound,
                    "webhook_message" => ErrorCode::WebhookMessageNotFound,
                    "session" => ErrorCode::SessionNotFound,
                    "api_key" => ErrorCode::ApiKeyNotFound,
                    "scim_user" => ErrorCode::ScimUserNotFound,
                    "scim_group" => ErrorCode::ScimGroupNotFound,
                    _ => ErrorCode::StorageFailure,
                };
                PortalError::new(code, format!("{entity} not found"))
            }
            StoreError::Conflict(conflict) => {
                if conflict == Conflict::TooManyRoles {
                    return PortalError::invalid_field("roles", conflict.to_string());
                }
                let code = match &conflict {
                    Conflict::SlugTaken => ErrorCode::OrgSlugTaken,
                    Conflict::EmailTaken => ErrorCode::UserEmailTaken,
                    Conflict::LastOwner => ErrorCode::LastOwner,
                    Conflict::InvitationNotPending => ErrorCode::InvitationUsed,
                    Conflict::InvitationExpired => ErrorCode::InvitationExpired,
                    Conflict::Version { .. } => ErrorCode::VersionConflict,
                    Conflict::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
                    Conflict::AlreadyExists {
                        entity: "scim_user" | "scim_user_name" | "scim_group_name" | "scim_external_id",
                    } => ErrorCode::ScimUniqueness,
                    Conflict::AlreadyExists { .. } | Conflict::TooManyRoles => ErrorCode::StorageFailure,
                };
                let mut out = PortalError::new(code, conflict.to_string());
                if let Conflict::Version { current, .. } = conflict {
                    out = out.with_detail("current_version", current);
                }
                out
            }
            err @ StoreError::Unavailable { .. } => {
                PortalError::new(ErrorCode::StorageUnavailable, "storage is temporarily unavailable").with_source(err)
            }
            err @ (StoreError::Backend { .. } | StoreError::Corrupt { .. }) => {
                PortalError::new(ErrorCode::StorageFailure, "storage failed").with_source(err)
            }
        }
    }
}

/// The most items one page may hold.
pub const MAX_PAGE_SIZE: u32 = 200;

/// The items one page holds when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Which page to read: the cursor returned with the previous page, and a size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// The `next` cursor of the previous page; `None` for the first page.
    #[serde(default)]
    pub after: Option<Cursor>,
    /// How many items to return, 1 to [`MAX_PAGE_SIZE`]; [`DEFAULT_PAGE_SIZE`] if `None`.
    #[serde(default)]
    pub limit: Option<u32>,
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Self {
        Self {
            after: None,
            limit: Some(limit),
        }
    }

    /// The page after `cursor`.
    pub fn after(cursor: Cursor, limit: u32) -> Self {
        Self {
            after: Some(cursor),
            limit: Some(limit),
        }
    }

    /// The validated page size.
    ///
    /// # Errors
    ///
    /// `validation.invalid_field` (param `limit`) outside 1 to [`MAX_PAGE_SIZE`].
    pub fn size(&self) -> Result<usize, PortalError> {
        match self.limit.unwrap_or(DEFAULT_PAGE_SIZE) {
            n @ 1..=MAX_PAGE_SIZE => Ok(n as usize),
            n => Err(PortalError::invalid_field(
                "limit",
                format!("page size `{n}` is outside 1 to {MAX_PAGE_SIZE}"),
            )),
        }
    }
}

/// An opaque position in a listing. Clients pass it back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a cursor a client sent back.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The cursor's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One page of a listing in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// The cursor of the next page, or `None` if this is the last.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `size + 1` items read after the previous cursor: the extra
    /// item only tells that another page exists, and `key` makes the cursor of the last
    /// item kept.
    pub fn from_overfetch(mut items: Vec<T>, size: usize, key: impl Fn(&T) -> String) -> Self {
        let next = if items.len() > size {
            items.truncate(size);
            items.last().map(|last| Cursor(key(last)))
        } else {
            None
        };
        Self { items, next }
    }
}
