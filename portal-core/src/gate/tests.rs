//! Unit tests of the gate: the pinned JSON of decisions, the detail of a decision, and
//! API keys judged by their scopes.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;
use crate::access::{RoleTableAuthorizer, Scope};
use crate::diagnostics::{DeferredDetail, INLINE_TEXT};
use crate::ids::{ApiKeyId, GrantId, OrgId, SequentialIds, UserId};
use crate::store::StoreError;

/// No members anywhere: these tests give the roles themselves.
struct NoMembers;

#[async_trait]
impl MembershipSource for NoMembers {
    async fn member_roles(&self, _org: OrgId, _user: UserId) -> Result<Option<Vec<RoleName>>, StoreError> {
        Ok(None)
    }

    async fn org_exists(&self, _org: OrgId) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn display_name(&self, _user: UserId) -> Result<Option<String>, StoreError> {
        Ok(Some("Sam Support".to_owned()))
    }
}

/// A sink that keeps nothing (the verdicts are read before they are recorded).
struct Nowhere;

impl DiagnosticSink for Nowhere {
    fn record(&self, _event: DiagnosticEvent) {}
}

fn role_table_gate() -> Gate {
    Gate::new(Arc::new(RoleTableAuthorizer::default()), Arc::new(Nowhere), NoMembers)
}

/// The event a verdict records, its detail built.
fn recorded(verdict: Verdict) -> DiagnosticEvent {
    DeferredDetail::apply(verdict.detail, verdict.event)
}

/// Text and back: the text, after checking that it reads back equal.
fn json(decision: &Decision) -> String {
    let text = serde_json::to_string(decision).unwrap();
    assert_eq!(&serde_json::from_str::<Decision>(&text).unwrap(), decision, "{text}");
    text
}

/// The JSON of decisions, which the journal stores and triage reads, pinned: a change
/// to the decision types must not change it.
#[test]
fn decisions_serialize_to_the_pinned_json() {
    let ids = SequentialIds::default();
    let at = OffsetDateTime::UNIX_EPOCH;
    let (org, user) = (OrgId::generate(&ids, at), Principal::User(UserId::generate(&ids, at)));
    let key = Principal::ApiKey {
        key: ApiKeyId::generate(&ids, at),
        org,
    };
    let ask = |principal, object, action| AccessRequest {
        principal,
        domain: Domain::Org(org),
        roles: &[],
        object,
        action,
    };
    let scopes = [Scope::new("cases/*", "read").unwrap()];
    assert_eq!(
        json(&api_key_decision(org, &scopes, &ask(&key, "cases/wf_1", "read"))),
        format!(
            r#"{{"decision":"allowed","rule":{{"subject":"api_key","domain":{{"kind":"org","org":"{org}"}},"object":"cases/*","action":"read","effect":"allow"}},"via":["scope"]}}"#
        )
    );
    assert_eq!(
        json(&api_key_decision(org, &scopes, &ask(&key, "cases/wf_1", "write"))),
        r#"{"decision":"denied","reason":{"kind":"no_grant"},"roles":[],"would_grant":[]}"#
    );

    let viewer = [RoleName::viewer()];
    let request = AccessRequest {
        roles: &viewer,
        ..ask(&user, "members", "write")
    };
    assert_eq!(
        json(&RoleTableAuthorizer::default().check(&request).unwrap()),
        r#"{"decision":"denied","reason":{"kind":"no_grant"},"roles":["viewer"],"would_grant":["admin","owner"]}"#
    );
    let request = AccessRequest {
        roles: &viewer,
        ..ask(&user, "members", "read")
    };
    assert_eq!(
        json(&RoleTableAuthorizer::default().check(&request).unwrap()),
        format!(
            r#"{{"decision":"allowed","rule":{{"subject":"viewer","domain":{{"kind":"org","org":"{org}"}},"object":"members","action":"read","effect":"allow"}},"via":["viewer"]}}"#
        )
    );

    let denied = Decision::Denied(Denial {
        reason: DenialReason::ExplicitDeny {
            rule: PolicyRule {
                subject: "admin".into(),
                domain: Domain::AllOrgs,
                object: "invitations".into(),
                action: "*".into(),
                effect: Effect::Deny,
            },
        },
        roles: vec![RoleName::admin(), RoleName::member()],
        would_grant: vec!["owner".into()],
    });
    assert_eq!(
        json(&denied),
        r#"{"decision":"denied","reason":{"kind":"explicit_deny","rule":{"subject":"admin","domain":{"kind":"all_orgs"},"object":"invitations","action":"*","effect":"deny"}},"roles":["admin","member"],"would_grant":["owner"]}"#
    );
}

/// The `access.check` detail names the request's own object and action, however it
/// keeps them: the rule's name (exact rule), inline (a wildcard rule, short text), or
/// shared (long text); read as JSON and serialized straight from the typed value alike.
#[test]
fn a_decision_detail_names_the_requests_object_and_action() {
    let ids = SequentialIds::default();
    let at = OffsetDateTime::UNIX_EPOCH;
    let (org, user) = (OrgId::generate(&ids, at), Principal::User(UserId::generate(&ids, at)));
    let ctx = crate::context::RequestContext::builder(user.clone()).build(&crate::time::ManualClock::new(at), &ids);
    let long = format!("cases/{}", "w".repeat(INLINE_TEXT));
    let at_limit = format!("cases/{}", "é".repeat((INLINE_TEXT - 6) / 2));
    assert_eq!(at_limit.len(), INLINE_TEXT);
    for (roles, object, action, allowed) in [
        (vec![RoleName::viewer()], "members", "read", true),
        (vec![RoleName::owner()], "org", "read", true),
        (vec![RoleName::owner()], long.as_str(), "approve", true),
        (vec![RoleName::owner()], at_limit.as_str(), "approve", true),
        (vec![RoleName::viewer()], long.as_str(), "write", false),
        (vec![RoleName::viewer()], "org", "delete", false),
    ] {
        let request = AccessRequest {
            principal: &user,
            domain: Domain::Org(org),
            roles: &roles,
            object,
            action,
        };
        let verdict = role_table_gate()
            .evaluate(&ctx, request.domain, request.roles, request.object, request.action)
            .unwrap();
        let ok = verdict.allowed();
        let event = recorded(verdict);
        assert_eq!(ok, allowed, "{object} {action}");
        let serialized = serde_json::to_value(&event).unwrap();
        for detail in [&serialized["detail"], event.detail.value()] {
            assert_eq!(detail["object"], object, "{detail}");
            assert_eq!(detail["action"], action, "{detail}");
            assert_eq!(
                detail["decision"]["decision"],
                if allowed { "allowed" } else { "denied" }
            );
        }
    }
}

/// An MFA policy store that counts its reads and answers `unmet` for everyone.
struct CountingPolicy {
    unmet: bool,
    reads: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl MfaPolicySource for CountingPolicy {
    async fn mfa_unmet(&self, _org: OrgId, _user: UserId) -> Result<bool, StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.unmet)
    }
}

/// The MFA standing a request's context carries (read with the session) is enforced as it
/// is, without reading the policy again; without it the policy is read. Either way a
/// member who falls short is refused with `auth.mfa_required`.
#[tokio::test]
async fn the_mfa_standing_read_with_the_session_is_enforced_without_another_read() {
    let ids = SequentialIds::default();
    let at = OffsetDateTime::UNIX_EPOCH;
    let (org, user) = (OrgId::generate(&ids, at), UserId::generate(&ids, at));
    let roles: Arc<[RoleName]> = Arc::from(vec![RoleName::new("member").unwrap()]);
    for policy_unmet in [false, true] {
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gate = role_table_gate().with_mfa_policy(CountingPolicy {
            unmet: policy_unmet,
            reads: reads.clone(),
        });
        let context = |carried: Option<bool>| {
            let builder = RequestContext::builder(Principal::User(user))
                .org(org)
                .org_roles(org, roles.clone());
            let builder = match carried {
                Some(unmet) => builder.org_mfa_unmet(org, unmet),
                None => builder,
            };
            builder.build(&crate::time::SystemClock, &ids)
        };
        for carried in [false, true] {
            let answer = gate.roles(&context(Some(carried)), org).await;
            match carried {
                false => assert_eq!(answer.unwrap(), Some(roles.to_vec())),
                true => assert_eq!(answer.unwrap_err().code(), ErrorCode::MfaRequired),
            }
        }
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "the carried standing is trusted"
        );
        let answer = gate.roles(&context(None), org).await;
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "read when not carried"
        );
        match policy_unmet {
            false => assert_eq!(answer.unwrap(), Some(roles.to_vec())),
            true => assert_eq!(answer.unwrap_err().code(), ErrorCode::MfaRequired),
        }
        // Roles the gate answered and the request kept mark the policy as met.
        let mut kept = context(None);
        kept.keep_org_roles(org, roles.clone());
        assert!(gate.roles(&kept, org).await.is_ok());
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "kept roles: no read"
        );
    }
}

/// One support grant, as a grant source that remembers its first use and the events it
/// was handed; `fail` makes recording the first use fail.
struct OneGrant {
    grant: GrantId,
    first_used_at: std::sync::Mutex<Option<OffsetDateTime>>,
    events: std::sync::Mutex<Vec<crate::audit::AuditEvent>>,
    fail: bool,
}

#[async_trait]
impl GrantSource for Arc<OneGrant> {
    async fn active_grant(
        &self,
        _staff: UserId,
        _org: OrgId,
        at: OffsetDateTime,
    ) -> Result<Option<ActiveGrant>, StoreError> {
        Ok(Some(ActiveGrant {
            id: self.grant,
            access: crate::access::SupportAccess::ReadOnly,
            expires_at: at + time::Duration::hours(1),
            first_used_at: *self.first_used_at.lock().unwrap(),
        }))
    }

    async fn record_first_use(
        &self,
        _org: OrgId,
        grant: GrantId,
        at: OffsetDateTime,
        event: &crate::audit::AuditEvent,
    ) -> Result<bool, StoreError> {
        assert_eq!(grant, self.grant);
        self.events.lock().unwrap().push(event.clone());
        if self.fail {
            return Err(StoreError::Unavailable {
                backend: "test",
                source: "the database is down".into(),
            });
        }
        let mut first = self.first_used_at.lock().unwrap();
        if first.is_some() {
            return Ok(false);
        }
        *first = Some(at);
        Ok(true)
    }
}

/// A staff member let in through a grant that was never used has its first use written
/// (`support_grant.used`: the staff member as `support_staff` with their display name,
/// the grant and the org as targets, the access and expiry), and then gets the grant's
/// role; a grant read with its first use set writes nothing more; when the first use
/// cannot be written the staff member does not get in.
#[tokio::test]
async fn a_grants_first_use_is_written_once_before_the_staff_member_gets_in() {
    let ids = Arc::new(SequentialIds::default());
    let at = OffsetDateTime::UNIX_EPOCH;
    let (org, staff) = (OrgId::generate(&*ids, at), UserId::generate(&*ids, at));
    let grants = Arc::new(OneGrant {
        grant: GrantId::generate(&*ids, at),
        first_used_at: std::sync::Mutex::new(None),
        events: std::sync::Mutex::default(),
        fail: false,
    });
    let gate = role_table_gate().with_support_grants(grants.clone(), ids.clone());
    let ctx = || RequestContext::builder(Principal::User(staff)).build(&crate::time::SystemClock, &*ids);
    let readonly = vec![crate::access::SupportAccess::ReadOnly.role()];

    let first = ctx();
    assert_eq!(gate.roles(&first, org).await.unwrap(), Some(readonly.clone()));
    assert_eq!(gate.roles(&ctx(), org).await.unwrap(), Some(readonly.clone()));
    let events = grants.events.lock().unwrap().clone();
    assert_eq!(
        events.len(),
        1,
        "only the first use is handed to the grant source: {events:?}"
    );
    let event = &events[0];
    assert_eq!(event.org, org);
    assert_eq!(event.action, crate::audit::actions::SUPPORT_GRANT_USED.action());
    assert_eq!(event.version, crate::audit::actions::SUPPORT_GRANT_USED.version);
    assert_eq!(
        event.actor,
        crate::audit::AuditActor {
            id: staff.to_string(),
            kind: crate::audit::ActorKind::SupportStaff,
            name: Some("Sam Support".to_owned()),
        }
    );
    assert_eq!(
        event.targets,
        vec![
            crate::audit::AuditTarget::new("support_grant", grants.grant),
            crate::audit::AuditTarget::new("organization", org),
        ]
    );
    assert_eq!(event.context.request_id, first.request_id());
    assert_eq!(event.metadata["access"], "read_only");
    assert!(event.metadata["expires_at"].is_string(), "{event:?}");

    let failing = Arc::new(OneGrant {
        grant: GrantId::generate(&*ids, at),
        first_used_at: std::sync::Mutex::new(None),
        events: std::sync::Mutex::default(),
        fail: true,
    });
    let gate = role_table_gate().with_support_grants(failing.clone(), ids.clone());
    let err = gate
        .roles(&ctx(), org)
        .await
        .expect_err("an unrecorded first use lets nobody in");
    assert_eq!(err.code(), ErrorCode::StorageUnavailable, "{err:?}");
}
