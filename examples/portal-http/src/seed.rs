//! Demo data: two orgs (`acme`, `globex`), users in every role (owner, admin, member,
//! viewer, another org's owner, and a vendor support engineer with a read-only support
//! grant to `acme`), and workflow instances in several states. Idempotent: users and orgs
//! are looked up before they are made, and the rest is made only with a new `acme`.

use std::fmt;

use portal_core::context::ServiceName;
use portal_core::ids::{OrgId, UserId};
use portal_core::support::{NewSupportGrant, SupportAccess};
use portal_core::tenancy::{Email, NewOrg, NewUser, RoleName, RoleSet, Slug};
use portal_core::workflow::NewInstance;
use portal_core::{PortalError, Principal, RequestContext};
use secrecy::SecretString;
use serde_json::json;

use crate::api::Api;

/// The password of every demo user.
pub const DEMO_PASSWORD: &str = "correct horse battery staple";

/// One demo user.
#[derive(Debug, Clone)]
pub struct DemoUser {
    /// What the user is in the demo, such as `acme owner`.
    pub role: &'static str,
    /// The login email.
    pub email: String,
    /// The user's id.
    pub id: UserId,
}

/// What [`seed_demo`] made or found.
#[derive(Debug, Clone)]
pub struct DemoData {
    /// `acme`'s id.
    pub acme: OrgId,
    /// `globex`'s id.
    pub globex: OrgId,
    /// Every demo user; all sign in with [`DEMO_PASSWORD`].
    pub users: Vec<DemoUser>,
    /// Whether this call made the data (`false`: it was there already).
    pub created: bool,
}

impl DemoData {
    /// The user whose email starts with `local` (such as `ada`).
    pub fn user(&self, local: &str) -> Option<&DemoUser> {
        self.users.iter().find(|u| u.email.starts_with(&format!("{local}@")))
    }
}

impl fmt::Display for DemoData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "orgs: acme = {}, globex = {}", self.acme, self.globex)?;
        writeln!(f, "demo users (password `{DEMO_PASSWORD}`):")?;
        for user in &self.users {
            writeln!(f, "  {:<34} {:<22} {}", user.email, user.role, user.id)?;
        }
        Ok(())
    }
}

const USERS: [(&str, &str, &str); 7] = [
    ("ada@acme.example", "Ada Lovelace", "acme owner"),
    ("alan@acme.example", "Alan Turing", "acme admin"),
    ("grace@acme.example", "Grace Hopper", "acme member"),
    ("linus@acme.example", "Linus Torvalds", "acme viewer"),
    ("hedy@globex.example", "Hedy Lamarr", "globex owner"),
    ("barbara@globex.example", "Barbara Liskov", "globex member"),
    ("sam@vendor.example", "Sam Support", "vendor support (grant)"),
];

fn signup() -> Result<Principal, PortalError> {
    Ok(Principal::Service(ServiceName::new("demo-seed")?))
}

/// Makes the demo data, or finds it when it is there already.
///
/// # Errors
///
/// Any error of the services it calls (`storage.*` mostly).
pub async fn seed_demo(api: &Api) -> Result<DemoData, PortalError> {
    let portal = api.portal();
    let store = api.tenancy_store();
    let service = || -> Result<RequestContext, PortalError> { Ok(portal.context(signup()?).build()) };
    let mut users = Vec::new();
    for (email, name, role) in USERS {
        let existing = store.find_user_by_email(&Email::new(email)?).await?;
        let user = match existing {
            Some(user) => user,
            None => {
                let user = portal
                    .tenancy()
                    .create_user(
                        &service()?,
                        NewUser {
                            email: email.to_owned(),
                            display_name: name.to_owned(),
                        },
                    )
                    .await?;
                api.identity()
                    .set_password(&service()?, user.id, SecretString::from(DEMO_PASSWORD.to_owned()))
                    .await?;
                user
            }
        };
        users.push(DemoUser {
            role,
            email: email.to_owned(),
            id: user.id,
        });
    }
    let as_user = |id: UserId| portal.context(Principal::User(id)).build();
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    let [ada, alan, grace, linus, hedy, barbara, sam] = ids[..] else {
        return Err(PortalError::new(
            portal_core::ErrorCode::Internal,
            "the demo has seven users",
        ));
    };

    let mut created = false;
    let org = |slug: &'static str, name: &'static str, owner: UserId| {
        let ctx = as_user(owner);
        async move {
            if let Some(org) = store.get_org_by_slug(&Slug::new(slug)?).await? {
                return Ok::<_, PortalError>((org.id, false));
            }
            let org = portal
                .tenancy()
                .create_org(
                    &ctx,
                    NewOrg {
                        slug: slug.to_owned(),
                        name: name.to_owned(),
                        ..NewOrg::default()
                    },
                )
                .await?;
            // Made now, so on the current API version, as an org made over HTTP.
            if let Some(pins) = api.pins() {
                let current = crate::version::ApiVersion::current();
                let name = portal_core::tenancy::ApiVersionName::new(current.name())?;
                pins.store().pin_api_version(org.id, &name, None).await?;
                pins.remember(org.id, current);
            }
            Ok((org.id, true))
        }
    };
    let (acme, acme_new) = org("acme", "Acme Corporation", ada).await?;
    let (globex, globex_new) = org("globex", "Globex Inc.", hedy).await?;

    let join = |org: OrgId, inviter: UserId, user: UserId, email: &'static str, role: RoleName| async move {
        let (_, token) = portal
            .tenancy()
            .invite(&as_user(inviter), org, email, RoleSet::one(role))
            .await?;
        portal.tenancy().accept_invitation(&as_user(user), &token).await?;
        Ok::<_, PortalError>(())
    };
    if globex_new {
        join(globex, hedy, barbara, "barbara@globex.example", RoleName::member()).await?;
        let workflows = workflows(api)?;
        let case = NewInstance::new(
            "support_case",
            &json!({ "subject": "Invoices show the wrong VAT number" }),
        )?;
        workflows.create(&as_user(barbara), globex, case).await?;
    }
    if acme_new {
        created = true;
        join(acme, ada, alan, "alan@acme.example", RoleName::admin()).await?;
        join(acme, ada, grace, "grace@acme.example", RoleName::member()).await?;
        join(acme, alan, linus, "linus@acme.example", RoleName::viewer()).await?;
        // A pending invitation, to list and revoke.
        portal
            .tenancy()
            .invite(
                &as_user(alan),
                acme,
                "new.hire@acme.example",
                RoleSet::one(RoleName::member()),
            )
            .await?;
        if let Ok(support) = portal.support() {
            support
                .grant(
                    &as_user(ada),
                    acme,
                    NewSupportGrant {
                        staff: sam,
                        reason: "demo: vendor support may read acme's cases".to_owned(),
                        access: SupportAccess::ReadOnly,
                        duration: time::Duration::hours(72),
                    },
                )
                .await?;
        }
        seed_cases(api, acme, grace, alan).await?;
    }
    Ok(DemoData {
        acme,
        globex,
        users,
        created: created || globex_new,
    })
}

fn workflows(api: &Api) -> Result<&portal_core::workflow::WorkflowService, PortalError> {
    Ok(api.portal().workflows()?)
}

/// Support cases in `open`, `triaged`, `in_progress` and `resolved`, a return request
/// waiting for approval, and a quote draft.
async fn seed_cases(api: &Api, acme: OrgId, member: UserId, admin: UserId) -> Result<(), PortalError> {
    let portal = api.portal();
    let workflows = workflows(api)?;
    let ctx = |id: UserId| portal.context(Principal::User(id)).build();
    let case = |subject: &str| NewInstance::new("support_case", &json!({ "subject": subject }));

    workflows
        .create(&ctx(member), acme, case("The export button does nothing")?)
        .await?;

    let triaged = workflows
        .create(&ctx(member), acme, case("Two invoices for one order")?)
        .await?;
    workflows
        .transition(
            &ctx(admin),
            acme,
            triaged.id,
            "triage",
            triaged.version,
            json!({ "priority": "high" }),
        )
        .await?;

    let working = workflows
        .create(
            &ctx(member),
            acme,
            case("SSO login loops back to the start")?.assigned_to(member),
        )
        .await?;
    let working = workflows
        .transition(
            &ctx(admin),
            acme,
            working.id,
            "triage",
            working.version,
            json!({ "priority": "urgent" }),
        )
        .await?;
    workflows
        .transition(&ctx(member), acme, working.id, "start", working.version, json!({}))
        .await?;

    let resolved = workflows
        .create(
            &ctx(member),
            acme,
            case("Password reset mail never arrives")?.assigned_to(member),
        )
        .await?;
    let resolved = workflows
        .transition(
            &ctx(admin),
            acme,
            resolved.id,
            "triage",
            resolved.version,
            json!({ "priority": "low" }),
        )
        .await?;
    let resolved = workflows
        .transition(&ctx(member), acme, resolved.id, "start", resolved.version, json!({}))
        .await?;
    workflows
        .transition(
            &ctx(member),
            acme,
            resolved.id,
            "resolve",
            resolved.version,
            json!({ "resolution": "the mail server's SPF record was fixed" }),
        )
        .await?;

    let refund = NewInstance::new(
        "return_request",
        &json!({ "order_id": "SO-1042", "amount_cents": 12_900, "reason": "arrived damaged" }),
    )?;
    workflows.create(&ctx(member), acme, refund).await?;
    let quote = NewInstance::new(
        "quote_approval",
        &json!({ "customer": "Initech", "amount_cents": 4_500_000 }),
    )?;
    workflows.create(&ctx(member), acme, quote).await?;
    Ok(())
}
