//! A `Portal` on SQLite: an org, an invitation, a new member, and a denied action as problem+json.
//!
//! Run with:
//!
//! ```sh
//! cargo run -p example-quickstart
//! ```
//!
//! Set `QUICKSTART_DATABASE_URL` (for example `sqlite://portal.db`) to keep the data in a
//! file of your choice; by default a new file in the system's temporary directory is used
//! and removed at the end. Set `RUST_LOG=portal=info` to see the diagnostic events that
//! `TracingSink` emits.

use std::sync::Arc;

use anyhow::Context as _;
use portal_adapters::observability::{FanOutSink, MemoryJournal, TracingSink};
use portal_adapters::sqlite::{self, SqliteTenancyStore};
use portal_core::context::ServiceName;
use portal_core::diagnostics::Journal;
use portal_core::tenancy::{NewOrg, NewUser, RoleName, RoleSet};
use portal_core::{PageRequest, Portal, Principal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let temp = std::env::temp_dir().join(format!("portal-quickstart-{}.db", std::process::id()));
    let url = std::env::var("QUICKSTART_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}", temp.display()));
    let pool = sqlite::connect(&url).await.with_context(|| format!("opening {url}"))?;
    sqlite::migrate(&pool).await.context("migrating")?;

    // The journal keeps events in memory so this example can show what support would see;
    // the tracing sink sends the same events to the host's subscriber.
    let journal = Arc::new(MemoryJournal::default());
    let portal = Portal::builder()
        .tenancy_store(Arc::new(SqliteTenancyStore::new(pool.clone())))
        .diagnostics(Arc::new(FanOutSink::new(vec![journal.clone(), Arc::new(TracingSink)])))
        .build()?;
    let tenancy = portal.tenancy();

    // Sign-up is the host's own code: a service principal creates the users.
    let signup = Principal::Service(ServiceName::new("signup")?);
    let ada = tenancy
        .create_user(
            &portal.context(signup.clone()).build(),
            NewUser {
                email: "Ada@Acme.example".into(),
                display_name: "Ada Lovelace".into(),
            },
        )
        .await?;
    let bob = tenancy
        .create_user(
            &portal.context(signup).build(),
            NewUser {
                email: "bob@acme.example".into(),
                display_name: "Bob".into(),
            },
        )
        .await?;
    println!("users: {} <{}>, {} <{}>", ada.id, ada.email, bob.id, bob.email);

    // Ada creates an org and becomes its owner.
    let as_ada = || portal.context(Principal::User(ada.id)).build();
    let acme = tenancy
        .create_org(
            &as_ada(),
            NewOrg {
                slug: "acme".into(),
                name: "Acme Inc.".into(),
                ..NewOrg::default()
            },
        )
        .await?;
    println!("org: {} ({})", acme.id, acme.slug);

    // She invites Bob as a viewer; the token is shown once and only its hash is stored.
    let (invitation, token) = tenancy
        .invite(&as_ada(), acme.id, "bob@acme.example", RoleSet::one(RoleName::viewer()))
        .await?;
    println!(
        "invitation: {} for {} expires {}",
        invitation.id, invitation.email, invitation.expires_at
    );

    // Bob accepts it and joins.
    let as_bob = || portal.context(Principal::User(bob.id)).build();
    let membership = tenancy.accept_invitation(&as_bob(), &token).await?;
    let roles: Vec<&str> = membership.roles.iter().map(RoleName::as_str).collect();
    println!("bob joined {} as {roles:?}", membership.org);

    let members = tenancy
        .list_members(&as_ada(), acme.id, &PageRequest::first(10))
        .await?;
    for member in &members.items {
        let roles: Vec<&str> = member.roles.iter().map(RoleName::as_str).collect();
        println!("  member {} {roles:?}", member.user);
    }

    // Bob, a viewer, tries to remove Ada. The authorizer denies it.
    let ctx = as_bob();
    let denied = tenancy
        .remove_member(&ctx, acme.id, ada.id)
        .await
        .err()
        .context("a viewer removed the owner")?;
    println!("\nbob removing ada: {} ({})", denied.code(), denied.message());
    println!("the problem+json a client receives:");
    println!(
        "{}",
        serde_json::to_string_pretty(&denied.to_problem(ctx.request_id()))?
    );

    // Support finds the whole story under the request id from the problem body.
    println!("\nwhat support finds under {}:", ctx.request_id());
    let first_page = portal_core::diagnostics::RequestQuery::first(ctx.request_id(), 100);
    for event in journal.by_request(&first_page).await? {
        println!(
            "  {} {} {} {}",
            event.kind.as_str(),
            event.name,
            event.outcome.as_str(),
            serde_json::to_string(&event.detail)?
        );
    }

    pool.close().await;
    if std::env::var_os("QUICKSTART_DATABASE_URL").is_none() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", temp.display()));
        }
    }
    Ok(())
}
