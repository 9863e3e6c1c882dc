//! API keys: creating, listing and revoking them (decided by the gate), and
//! authenticating a request made with one.

use std::time::Instant;

use portal_core::access::Domain;
use portal_core::audit::{AuditActor, AuditEvent, AuditTarget, CatalogEntry, actions};
use portal_core::context::Principal;
use portal_core::identity::{ApiKeyRecord, AuthError, AuthFailure, Authenticated};
use portal_core::ids::{ApiKeyId, OrgId};
use portal_core::store::{Page, PageRequest};
use portal_core::{ErrorCode, PortalError, RequestContext};
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::authenticate::refused;
use super::token::ApiKeyToken;
use super::{CreatedApiKey, IdentityService, NewApiKey, permissions};

/// `at` in RFC 3339, as the audit log's metadata writes times.
fn rfc3339(at: OffsetDateTime) -> Option<String> {
    at.format(&time::format_description::well_known::Rfc3339).ok()
}

fn org_not_found() -> PortalError {
    PortalError::new(ErrorCode::OrgNotFound, "organization not found")
}

impl IdentityService {
    /// Creates an API key for `org`. Asks `api_keys manage`; and, so that nobody makes a
    /// key more powerful than themselves, the actor must be allowed every scope (its
    /// object and action, as written).
    ///
    /// # Errors
    ///
    /// `org.not_found` (also when the actor cannot reach the org); `access.denied`;
    /// `validation.invalid_field` (`name`, `scopes`, `expires_at`); `storage.*`.
    pub async fn create_api_key(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, PortalError> {
        let started = Instant::now();
        let result = async {
            let roles = self
                .inner
                .gate
                .authorize(ctx, org, permissions::API_KEYS_MANAGE, org_not_found)
                .await?;
            let name = new.name.trim();
            if !(1..=100).contains(&name.chars().count()) || name.chars().any(char::is_control) {
                return Err(PortalError::invalid_field(
                    "name",
                    "a key's name has 1 to 100 characters",
                ));
            }
            if new.scopes.is_empty() || new.scopes.len() > 64 {
                return Err(PortalError::invalid_field("scopes", "a key has 1 to 64 scopes"));
            }
            match (new.expires_at, self.inner.config.max_api_key_lifetime) {
                (Some(end), _) if end <= ctx.now() => {
                    return Err(PortalError::invalid_field(
                        "expires_at",
                        "a key must expire in the future",
                    ));
                }
                (Some(end), Some(max)) if end > ctx.now() + max => {
                    return Err(PortalError::invalid_field("expires_at", "a key may not live that long"));
                }
                (None, Some(_)) => {
                    return Err(PortalError::invalid_field("expires_at", "a key needs an expiry"));
                }
                _ => {}
            }
            for scope in &new.scopes {
                self.inner
                    .gate
                    .decide(ctx, Domain::Org(org), &roles, scope.object(), scope.action())?;
            }
            let mut scopes = new.scopes.clone();
            scopes.sort();
            scopes.dedup();
            let key = ApiKeyToken::generate()?;
            let record = ApiKeyRecord {
                id: ApiKeyId::generate(&*self.inner.ids, ctx.now()),
                org,
                name: name.to_owned(),
                prefix: key.prefix().to_owned(),
                token_hash: key.hash(),
                scopes,
                created_by: ctx.principal().clone(),
                created_at: ctx.now(),
                last_used_at: None,
                expires_at: new.expires_at,
                revoked_at: None,
            };
            let event = self
                .api_key_event(ctx, actions::API_KEY_CREATED, &record)
                .await?
                .metadata(json!({
                    "name": record.name,
                    "prefix": record.prefix,
                    "scopes": record.scopes,
                    "expires_at": record.expires_at.and_then(rfc3339),
                }));
            self.inner.stores.api_keys.create(&record, &event).await?;
            Ok(CreatedApiKey {
                key: key.into_secret(),
                record,
            })
        }
        .await;
        self.record(ctx, "auth.api_key.create", Some(org), started, result.as_ref(), |k| {
            json!({ "key": k.record.id, "prefix": k.record.prefix, "scopes": k.record.scopes, "expires_at": k.record.expires_at.map(OffsetDateTime::unix_timestamp) })
        });
        result
    }

    /// A page of the org's API keys (revoked and expired ones too), by id: many keys are
    /// read page by page with the `next` cursor (the id of the last key read). Asks
    /// `api_keys read`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `validation.invalid_field` (`limit`, `cursor`);
    /// `storage.*`.
    pub async fn list_api_keys(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>, PortalError> {
        let started = Instant::now();
        let result = async {
            self.inner
                .gate
                .authorize(ctx, org, permissions::API_KEYS_READ, org_not_found)
                .await?;
            let size = page.size()?;
            let after = page
                .after
                .as_ref()
                .map(|cursor| {
                    cursor.as_str().parse::<ApiKeyId>().map_err(|_| {
                        PortalError::invalid_field("cursor", "the cursor is not one this listing returned")
                    })
                })
                .transpose()?;
            let keys = self.inner.stores.api_keys.list(org, after, size + 1).await?;
            Ok(Page::from_overfetch(keys, size, |k| k.id.to_string()))
        }
        .await;
        self.record(
            ctx,
            "auth.api_key.list",
            Some(org),
            started,
            result.as_ref(),
            |k| json!({ "count": k.items.len() }),
        );
        result
    }

    /// Revokes API key `id` of `org`; it stops working at once. Asks `api_keys manage`.
    ///
    /// # Errors
    ///
    /// `org.not_found`; `access.denied`; `api_key.not_found`; `storage.*`.
    pub async fn revoke_api_key(
        &self,
        ctx: &RequestContext,
        org: OrgId,
        id: ApiKeyId,
    ) -> Result<ApiKeyRecord, PortalError> {
        let started = Instant::now();
        let result = async {
            self.inner
                .gate
                .authorize(ctx, org, permissions::API_KEYS_MANAGE, org_not_found)
                .await?;
            // The event names the key, so it is read first (in the org: another org's key is
            // not found); the store writes the event only if this call revokes the key.
            let key = self
                .inner
                .stores
                .api_keys
                .get(org, id)
                .await?
                .ok_or_else(|| PortalError::new(ErrorCode::ApiKeyNotFound, "API key not found"))?;
            let event = self
                .api_key_event(ctx, actions::API_KEY_REVOKED, &key)
                .await?
                .metadata(json!({ "name": key.name, "prefix": key.prefix }));
            Ok(self.inner.stores.api_keys.revoke(org, id, ctx.now(), &event).await?)
        }
        .await;
        self.record(
            ctx,
            "auth.api_key.revoke",
            Some(org),
            started,
            result.as_ref(),
            |k| json!({ "key": k.id, "prefix": k.prefix }),
        );
        result
    }

    /// The audit event `entry` about `key` for this request, its actor shown with their
    /// display name now (users only).
    async fn api_key_event(
        &self,
        ctx: &RequestContext,
        entry: CatalogEntry,
        key: &ApiKeyRecord,
    ) -> Result<AuditEvent, PortalError> {
        let name = match ctx.principal() {
            Principal::User(user) => self
                .inner
                .tenancy
                .get_user(*user)
                .await?
                .map(|u| u.display_name.to_string()),
            Principal::ApiKey { .. } | Principal::Service(_) => None,
        };
        Ok(AuditEvent::new(
            ctx,
            &*self.inner.ids,
            key.org,
            entry,
            AuditActor::new(ctx.principal(), name),
        )
        .target(AuditTarget::new("api_key", key.id)))
    }

    pub(super) async fn authenticate_api_key(
        &self,
        ctx: &RequestContext,
        text: &SecretString,
        seen: &mut Value,
    ) -> Result<Authenticated, AuthError> {
        let key = ApiKeyToken::parse(text).ok_or(refused(AuthFailure::Malformed))?;
        *seen = json!({ "prefix": key.prefix() });
        let hash = key.hash();
        let record = self
            .inner
            .stores
            .api_keys
            .find_by_token(&hash)
            .await?
            .filter(|k| k.token_hash.ct_eq(&hash))
            .ok_or(refused(AuthFailure::WrongSecret))?;
        *seen = json!({ "key": record.id, "prefix": record.prefix, "org": record.org });
        if record.revoked_at.is_some() {
            return Err(refused(AuthFailure::Revoked));
        }
        if !record.is_live_at(ctx.now()) {
            return Err(refused(AuthFailure::Expired));
        }
        let stale = record
            .last_used_at
            .is_none_or(|last| ctx.now() - last >= self.inner.config.touch_interval);
        if stale {
            self.inner.stores.api_keys.touch(record.id, ctx.now()).await?;
        }
        Ok(Authenticated::api_key(record.id, record.org, record.scopes))
    }
}
