//! The audit events of a user's own identity: sign-in, sign-out, password and second
//! factor changes, written once per org the user belongs to.
//!
//! A member's sign-in is their orgs' business (each org's customers audit who entered
//! their portal), but a user is not filed under one org: they belong to several, or to
//! none. So an identity change is described once, as a [`UserAuditEvent`] (a template
//! without an org), and the identity store that makes the change writes it, **in the
//! change's transaction**, as one [`AuditEvent`] per org the user is a member of when the
//! transaction reads the memberships ([`UserAuditEvent::events`]). Each row is filed
//! under its org and names only the user, so no org learns another org's name or ids;
//! every row is fanned out to its org's webhook endpoints exactly like any other event.
//! A user who belongs to no org writes no row.

use std::fmt;
use std::sync::Arc;

use crate::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget, CatalogEntry};
use crate::context::RequestContext;
use crate::ids::{AuditEventId, IdGenerator, OrgId, UserId};

/// A change of one user's identity, to be written in the log of every org they belong to.
///
/// Built by the service before the store call, like an [`AuditEvent`]; the store reads
/// the user's memberships in its transaction and writes [`events`](Self::events) of them.
/// The event names the user as its first target.
#[derive(Clone)]
pub struct UserAuditEvent {
    user: UserId,
    /// The event as every org gets it; its `org` is a placeholder that
    /// [`events`](Self::events) replaces.
    template: AuditEvent,
    ids: Arc<dyn IdGenerator>,
}

impl UserAuditEvent {
    /// The catalog event `entry` about `user`, done by `actor` during `ctx`'s request, at
    /// its time, with `user` as its target and no metadata yet. `ids` makes the id of each
    /// org's row after the first.
    pub fn new(
        ctx: &RequestContext,
        ids: Arc<dyn IdGenerator>,
        user: UserId,
        entry: CatalogEntry,
        actor: AuditActor,
    ) -> Self {
        let template = AuditEvent::new(ctx, &*ids, OrgId::from_uuid(uuid::Uuid::nil()), entry, actor)
            .target(AuditTarget::new("user", user));
        Self { user, template, ids }
    }

    /// Sets the metadata every org's row carries.
    #[must_use]
    pub fn metadata(mut self, metadata: serde_json::Value) -> Self {
        self.template = self.template.metadata(metadata);
        self
    }

    /// The same event with `key` set to `value` in its metadata (made an object if it was
    /// not one): for a field only the store knows, such as how many sessions a "sign out
    /// everywhere" revoked.
    #[must_use]
    pub fn with_metadata_field(&self, key: &str, value: serde_json::Value) -> Self {
        let mut event = self.clone();
        if !event.template.metadata.is_object() {
            event.template.metadata = serde_json::Value::Object(serde_json::Map::new());
        }
        if let serde_json::Value::Object(fields) = &mut event.template.metadata {
            fields.insert(key.to_owned(), value);
        }
        event
    }

    /// Whose change it is: the user whose memberships choose the orgs.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// What happened.
    pub fn action(&self) -> &AuditAction {
        &self.template.action
    }

    /// The id the first org's row gets (the others get fresh ones).
    pub fn first_id(&self) -> AuditEventId {
        self.template.id
    }

    /// The rows to write for the orgs `orgs` (the user's memberships as the store's
    /// transaction reads them, in the order given): the same event filed under each org,
    /// the first with the template's id, each other with a fresh id made at the event's
    /// time, so that ids stay unique and sort after the first. Writing the same template
    /// twice therefore fails on the first row's id, as writing one event twice does.
    pub fn events(&self, orgs: &[OrgId]) -> Vec<AuditEvent> {
        orgs.iter()
            .enumerate()
            .map(|(i, org)| {
                let mut event = self.template.clone();
                event.org = *org;
                if i > 0 {
                    event.id = AuditEventId::generate(&*self.ids, event.occurred_at);
                }
                event
            })
            .collect()
    }
}

impl fmt::Debug for UserAuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAuditEvent")
            .field("user", &self.user)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}
