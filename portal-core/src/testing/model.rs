//! A tenancy model for property tests: random operation sequences, a deterministic
//! runner over the real [`TenancyService`](crate::TenancyService), and the invariants.
//!
//! The universe is small on purpose, so that interesting collisions happen often: four
//! users made up front, three slugs (so a fourth org is always a duplicate), invitations
//! that expire five minutes after they are sent, and a clock the sequence moves forward.
//! [`ops`] generates sequences; [`run`] applies one through a [`Portal`] built by
//! [`portal`] (a [`ManualClock`] and [`SequentialIds`], so every id and time is a
//! function of the sequence alone) and returns a [`Transcript`]: each operation's outcome
//! as a comparable value, then a snapshot of every org read back through the store.
//!
//! Two uses follow:
//!
//! - [`check_invariants`] on any transcript: every org keeps an owner, a removed member
//!   holds no roles, no invitation admits twice, an expired or revoked invitation admits
//!   nobody.
//! - Differential testing: the same sequence run against the in-memory reference store
//!   and a SQL store must give equal transcripts ([`Transcript::difference`] says where
//!   they part).
//!
//! ```ignore
//! use portal_core::testing::model;
//! proptest::proptest! {
//!     #[test]
//!     fn invariants_hold(ops in model::ops(40)) {
//!         let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//!         let transcript = rt.block_on(async {
//!             let (portal, clock) = model::portal(std::sync::Arc::new(MyStore::default()));
//!             model::run(&portal, &clock, &ops).await
//!         });
//!         if let Err(violation) = model::check_invariants(&transcript) {
//!             proptest::prop_assert!(false, "{violation}");
//!         }
//!     }
//! }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use proptest::prelude::*;
use secrecy::SecretString;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::context::{Principal, ServiceName};
use crate::error::{ErrorCode, PortalError};
use crate::ids::{InvitationId, OrgId, SequentialIds, UserId};
use crate::portal::Portal;
use crate::store::PageRequest;
use crate::tenancy::{
    Email, Invitation, InvitationState, InvitationToken, Membership, NewOrg, NewUser, Organization, RoleName, RoleSet,
    TenancyConfig, TenancyStore,
};
use crate::time::ManualClock;

/// How many users the model makes before the first operation.
pub const USERS: usize = 4;

/// The slugs orgs are created with. There are fewer than the create operations a long
/// sequence holds, so `org.slug_taken` comes up often.
pub const SLUGS: [&str; 3] = ["acme", "globex", "initech"];

/// How long an invitation stays usable in the model.
pub const INVITATION_TTL: Duration = Duration::minutes(5);

/// How many invitations, counting back from the newest, an operation may name.
pub const INVITATION_SLOTS: usize = 8;

/// The roles the model hands out, in the order of a [`Roles`] mask's bits.
const ROLE_NAMES: [&str; 4] = ["owner", "admin", "member", "viewer"];

/// Who performs an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    /// User `i` of the model's [`USERS`], member of the org or not.
    User(usize),
    /// The `k`-th member (modulo their number, in user id order) of the org the
    /// operation is about, read from the store when the operation runs; user `k` if the
    /// org has no members. Generated sequences mostly use this, so that most operations
    /// get past the membership check to the rules behind it.
    Member(usize),
    /// The host's trusted service principal, which the default authorizer allows
    /// everything.
    Service,
}

/// Whose membership an operation changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// User `i` of the model's [`USERS`], member of the org or not.
    User(usize),
    /// The `k`-th member of the org, as for [`Actor::Member`].
    Member(usize),
}

/// Who an invitation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invitee {
    /// The address of user `i`.
    User(usize),
    /// An address no user has.
    Stranger,
}

/// A non-empty subset of `owner`, `admin`, `member` and `viewer`, as a bit mask.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Roles(pub u8);

impl Roles {
    /// The role set, or `None` for an empty mask.
    pub fn to_role_set(self) -> Option<RoleSet> {
        let names = ROLE_NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name);
        RoleSet::parse(names).ok()
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = ROLE_NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect();
        write!(f, "{names:?}")
    }
}

/// One tenancy operation.
///
/// Orgs are named by creation order, modulo the number created so far (`org: 0` is the
/// first org created); before any org exists, every index names an org that does not.
/// Invitations are named newest first, modulo the number sent (`invitation: 0` is the
/// latest one), and name an invitation that does not exist before any was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// User `by` creates an org with slug `SLUGS[slug]`, owned by themselves.
    CreateOrg {
        /// The creating user.
        by: usize,
        /// The index into [`SLUGS`].
        slug: usize,
    },
    /// `actor` invites `invitee` to org `org` with `roles`.
    Invite {
        /// Who sends it.
        actor: Actor,
        /// Which org.
        org: usize,
        /// To whom.
        invitee: Invitee,
        /// With which roles.
        roles: Roles,
    },
    /// A user accepts invitation `invitation`: the invitee themselves when `by` is
    /// `None` (user 0 for a stranger's invitation), otherwise user `by`.
    Accept {
        /// Which invitation.
        invitation: usize,
        /// Who accepts, if not the invitee.
        by: Option<usize>,
    },
    /// `actor` revokes invitation `invitation` in its org.
    Revoke {
        /// Who revokes.
        actor: Actor,
        /// Which invitation.
        invitation: usize,
    },
    /// `actor` replaces the roles of `target` in org `org`.
    SetRoles {
        /// Who acts.
        actor: Actor,
        /// Which org.
        org: usize,
        /// Whose roles.
        target: Target,
        /// The new roles.
        roles: Roles,
    },
    /// `actor` removes `target` from org `org`.
    RemoveMember {
        /// Who acts.
        actor: Actor,
        /// Which org.
        org: usize,
        /// Who is removed.
        target: Target,
    },
    /// The clock moves forward, which expires invitations.
    Advance {
        /// By how many minutes.
        minutes: u8,
    },
}

/// A strategy for one operation, weighted towards the ones that change memberships and
/// towards actors and targets who are members, so that the rules behind the membership
/// check (roles, owners, invitation states) are what most operations meet.
pub fn op() -> impl Strategy<Value = Op> {
    let actor = prop_oneof![
        6 => (0..USERS).prop_map(Actor::Member),
        3 => (0..USERS).prop_map(Actor::User),
        1 => Just(Actor::Service),
    ];
    let target = prop_oneof![3 => (0..USERS).prop_map(Target::Member), 1 => (0..USERS).prop_map(Target::User)];
    let invitee = prop_oneof![6 => (0..USERS).prop_map(Invitee::User), 1 => Just(Invitee::Stranger)];
    let roles = (1u8..16).prop_map(Roles);
    let org = 0..SLUGS.len();
    let invitation = 0..INVITATION_SLOTS;
    prop_oneof![
        1 => create_org(),
        5 => (actor.clone(), org.clone(), invitee, roles.clone())
            .prop_map(|(actor, org, invitee, roles)| Op::Invite { actor, org, invitee, roles }),
        5 => (invitation.clone(), proptest::option::weighted(0.2, 0..USERS))
            .prop_map(|(invitation, by)| Op::Accept { invitation, by }),
        1 => (actor.clone(), invitation).prop_map(|(actor, invitation)| Op::Revoke { actor, invitation }),
        3 => (actor.clone(), org.clone(), target.clone(), roles)
            .prop_map(|(actor, org, target, roles)| Op::SetRoles { actor, org, target, roles }),
        2 => (actor, org, target).prop_map(|(actor, org, target)| Op::RemoveMember { actor, org, target }),
        1 => (1u8..=6).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

/// A strategy for an org creation.
pub fn create_org() -> impl Strategy<Value = Op> {
    (0..USERS, 0..SLUGS.len()).prop_map(|(by, slug)| Op::CreateOrg { by, slug })
}

/// A strategy for a sequence of up to `max_len` operations after an org creation, so
/// that most sequences have an org to work in.
pub fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    (create_org(), proptest::collection::vec(op(), 0..max_len)).prop_map(|(first, rest)| {
        let mut ops = Vec::with_capacity(rest.len() + 1);
        ops.push(first);
        ops.extend(rest);
        ops
    })
}

/// What a successful operation did, in values that are equal across backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// An org was created.
    OrgCreated(Organization),
    /// An invitation was sent.
    Invited(InvitationView),
    /// An invitation was accepted, giving this membership.
    Accepted {
        /// The invitation.
        invitation: InvitationId,
        /// The membership after the acceptance.
        membership: Membership,
    },
    /// An invitation was revoked.
    Revoked(InvitationView),
    /// A member's roles were replaced.
    RolesSet(Membership),
    /// A member was removed; `still_member` is whether a read right afterwards still
    /// found them (it must not).
    Removed {
        /// The removed membership.
        membership: Membership,
        /// Whether the membership was still found after the removal.
        still_member: bool,
    },
    /// The clock moved.
    ClockAdvanced,
}

/// One operation and how it ended: its effect, or the error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The operation.
    pub op: Op,
    /// When it ran.
    pub at: OffsetDateTime,
    /// Its effect or error code.
    pub outcome: Result<Effect, ErrorCode>,
}

/// An invitation without its token hash, which is random and so differs between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationView {
    /// Its id.
    pub id: InvitationId,
    /// Its org.
    pub org: OrgId,
    /// Who may accept it.
    pub email: Email,
    /// The roles it gives.
    pub roles: RoleSet,
    /// Who sent it.
    pub invited_by: Principal,
    /// When it was sent.
    pub created_at: OffsetDateTime,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// Where it stands.
    pub state: InvitationState,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        Self {
            id: i.id,
            org: i.org,
            email: i.email.clone(),
            roles: i.roles.clone(),
            invited_by: i.invited_by.clone(),
            created_at: i.created_at,
            expires_at: i.expires_at,
            state: i.state.clone(),
        }
    }
}

/// One org as the store holds it at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSnapshot {
    /// The org.
    pub org: Organization,
    /// Its members, in user id order, read page by page.
    pub members: Vec<Membership>,
    /// Its invitations, in id order, read page by page.
    pub invitations: Vec<InvitationView>,
}

/// Everything a run did and left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The model's users, in index order.
    pub users: Vec<UserId>,
    /// Every operation with its outcome, in order.
    pub steps: Vec<Step>,
    /// Every org created, in creation order, as stored at the end.
    pub orgs: Vec<OrgSnapshot>,
    /// Every user's orgs with their memberships, in org id order, as stored at the end.
    pub user_orgs: Vec<Vec<(OrgId, Membership)>>,
}

impl Transcript {
    /// Where this transcript first differs from `other`, described for a test failure,
    /// or `None` if they are equal.
    pub fn difference(&self, other: &Transcript) -> Option<String> {
        if self.users != other.users {
            return Some(format!("users: {:?} vs {:?}", self.users, other.users));
        }
        for (n, (a, b)) in self.steps.iter().zip(&other.steps).enumerate() {
            if a != b {
                return Some(format!("step {n}:\n  {a:?}\nvs\n  {b:?}"));
            }
        }
        if self.steps.len() != other.steps.len() {
            return Some(format!("{} steps vs {}", self.steps.len(), other.steps.len()));
        }
        for (a, b) in self.orgs.iter().zip(&other.orgs) {
            if a != b {
                return Some(format!("final state of {}:\n  {a:?}\nvs\n  {b:?}", a.org.slug));
            }
        }
        if self.orgs.len() != other.orgs.len() {
            return Some(format!("{} orgs vs {}", self.orgs.len(), other.orgs.len()));
        }
        if self.user_orgs != other.user_orgs {
            return Some(format!("user orgs: {:?}\nvs\n  {:?}", self.user_orgs, other.user_orgs));
        }
        None
    }
}

/// A portal over `store` for the model: the default authorizer, invitations that last
/// [`INVITATION_TTL`], ids from [`SequentialIds`] and a [`ManualClock`] at a fixed
/// start, so that two runs of one sequence make the same ids and times.
pub fn portal(store: Arc<dyn TenancyStore>) -> (Portal, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(datetime!(2030-01-01 09:00:00.000_123 UTC)));
    let portal = Portal::builder()
        .tenancy_store(store)
        .clock(clock.clone())
        .ids(Arc::new(SequentialIds::default()))
        .tenancy_config(TenancyConfig {
            invitation_ttl: INVITATION_TTL,
        })
        .build()
        .expect("a portal with a tenancy store builds");
    (portal, clock)
}

/// An invitation the run sent, with the token only the run knows.
struct Sent {
    org: OrgId,
    id: InvitationId,
    invitee: Invitee,
    token: InvitationToken,
}

/// The run's view of the world: what it has made so far, by index.
struct World<'p> {
    portal: &'p Portal,
    users: Vec<UserId>,
    orgs: Vec<OrgId>,
    invitations: Vec<Sent>,
}

fn service() -> Principal {
    Principal::Service(ServiceName::new("tenancy-model").expect("a valid service name"))
}

/// An org id no run ever makes: the model's stand-in for an unknown org.
fn unknown_org() -> OrgId {
    OrgId::from_uuid(uuid::Uuid::from_u128(1))
}

/// An invitation id no run ever makes.
fn unknown_invitation() -> InvitationId {
    InvitationId::from_uuid(uuid::Uuid::from_u128(2))
}

impl World<'_> {
    fn ctx(&self, principal: Principal) -> crate::RequestContext {
        self.portal.context(principal).build()
    }

    fn org(&self, index: usize) -> OrgId {
        if self.orgs.is_empty() {
            unknown_org()
        } else {
            self.orgs[index % self.orgs.len()]
        }
    }

    fn invitation(&self, index: usize) -> Option<&Sent> {
        let newest = self.invitations.len().checked_sub(1)?;
        self.invitations.get(newest - index % self.invitations.len())
    }

    /// The `k`-th member of `org` in user id order, or user `k` if it has none.
    async fn member(&self, org: OrgId, k: usize) -> UserId {
        let members = self.members(org).await;
        if members.is_empty() {
            self.users[k % USERS]
        } else {
            members[k % members.len()].user
        }
    }

    /// Every member of `org`, read page by page as the service (none if it does not exist).
    async fn members(&self, org: OrgId) -> Vec<Membership> {
        let ctx = self.ctx(service());
        let mut members = Vec::new();
        let mut page = PageRequest::first(2);
        loop {
            match self.portal.tenancy().list_members(&ctx, org, &page).await {
                Ok(got) => {
                    members.extend(got.items);
                    match got.next {
                        Some(next) => page = PageRequest::after(next, 2),
                        None => return members,
                    }
                }
                Err(err) if err.code() == ErrorCode::OrgNotFound => return members,
                Err(err) => panic!("listing members failed: {err:?}"),
            }
        }
    }

    async fn principal(&self, actor: Actor, org: OrgId) -> Principal {
        match actor {
            Actor::User(i) => Principal::User(self.users[i % USERS]),
            Actor::Member(k) => Principal::User(self.member(org, k).await),
            Actor::Service => service(),
        }
    }

    async fn target(&self, target: Target, org: OrgId) -> UserId {
        match target {
            Target::User(i) => self.users[i % USERS],
            Target::Member(k) => self.member(org, k).await,
        }
    }

    fn email(invitee: Invitee) -> String {
        match invitee {
            Invitee::User(i) => format!("user{}@example.com", i % USERS),
            Invitee::Stranger => "stranger@example.com".to_owned(),
        }
    }

    async fn apply(&mut self, op: Op, clock: &ManualClock) -> Result<Effect, PortalError> {
        let tenancy = self.portal.tenancy();
        match op {
            Op::CreateOrg { by, slug } => {
                let slug = SLUGS[slug % SLUGS.len()];
                let ctx = self.ctx(Principal::User(self.users[by % USERS]));
                let new = NewOrg {
                    slug: slug.to_owned(),
                    name: format!("{slug} inc"),
                    metadata: BTreeMap::from([("tier".to_owned(), "model".to_owned())]),
                    owner: None,
                };
                let org = tenancy.create_org(&ctx, new).await?;
                self.orgs.push(org.id);
                Ok(Effect::OrgCreated(org))
            }
            Op::Invite {
                actor,
                org,
                invitee,
                roles,
            } => {
                let Some(roles) = roles.to_role_set() else {
                    return Err(PortalError::invalid_field("roles", "the model generated no roles"));
                };
                let org = self.org(org);
                let ctx = self.ctx(self.principal(actor, org).await);
                let (invitation, token) = tenancy.invite(&ctx, org, &Self::email(invitee), roles).await?;
                self.invitations.push(Sent {
                    org: invitation.org,
                    id: invitation.id,
                    invitee,
                    token,
                });
                Ok(Effect::Invited(InvitationView::from(&invitation)))
            }
            Op::Accept { invitation, by } => {
                let unknown;
                let (id, token, invitee) = match self.invitation(invitation) {
                    Some(sent) => (sent.id, &sent.token, sent.invitee),
                    None => {
                        // A token of the right shape that no invitation has.
                        unknown = InvitationToken::parse(SecretString::from(format!("pit_{}", "0".repeat(52))))?;
                        (unknown_invitation(), &unknown, Invitee::Stranger)
                    }
                };
                let user = match (by, invitee) {
                    (Some(user), _) | (None, Invitee::User(user)) => user,
                    (None, Invitee::Stranger) => 0,
                };
                let ctx = self.ctx(Principal::User(self.users[user % USERS]));
                let membership = tenancy.accept_invitation(&ctx, token).await?;
                Ok(Effect::Accepted {
                    invitation: id,
                    membership,
                })
            }
            Op::Revoke { actor, invitation } => {
                let (org, id) = match self.invitation(invitation) {
                    Some(sent) => (sent.org, sent.id),
                    None => (self.org(0), unknown_invitation()),
                };
                let ctx = self.ctx(self.principal(actor, org).await);
                let revoked = tenancy.revoke_invitation(&ctx, org, id).await?;
                Ok(Effect::Revoked(InvitationView::from(&revoked)))
            }
            Op::SetRoles {
                actor,
                org,
                target,
                roles,
            } => {
                let Some(roles) = roles.to_role_set() else {
                    return Err(PortalError::invalid_field("roles", "the model generated no roles"));
                };
                let org = self.org(org);
                let user = self.target(target, org).await;
                let ctx = self.ctx(self.principal(actor, org).await);
                let membership = tenancy.set_member_roles(&ctx, org, user, roles).await?;
                Ok(Effect::RolesSet(membership))
            }
            Op::RemoveMember { actor, org, target } => {
                let org = self.org(org);
                let user = self.target(target, org).await;
                let ctx = self.ctx(self.principal(actor, org).await);
                let membership = tenancy.remove_member(&ctx, org, user).await?;
                let check = self.ctx(service());
                let still_member = match tenancy.get_member(&check, org, membership.user).await {
                    Ok(_) => true,
                    Err(err) if err.code() == ErrorCode::MemberNotFound => false,
                    Err(err) => panic!("reading a removed member failed: {err:?}"),
                };
                Ok(Effect::Removed {
                    membership,
                    still_member,
                })
            }
            Op::Advance { minutes } => {
                clock.advance(Duration::minutes(i64::from(minutes)));
                Ok(Effect::ClockAdvanced)
            }
        }
    }

    /// Reads every org, its members and invitations page by page (pages of two, so the
    /// cursors are exercised), and every user's orgs (also in pages of two).
    async fn snapshot(&self) -> (Vec<OrgSnapshot>, Vec<Vec<(OrgId, Membership)>>) {
        let tenancy = self.portal.tenancy();
        let ctx = self.ctx(service());
        let mut orgs = Vec::new();
        for &id in &self.orgs {
            let org = tenancy.get_org(&ctx, id).await.expect("snapshot: get_org");
            let members = self.members(id).await;
            let mut invitations = Vec::new();
            let mut page = PageRequest::first(2);
            loop {
                let got = tenancy
                    .list_invitations(&ctx, id, &page)
                    .await
                    .expect("snapshot: list_invitations");
                invitations.extend(got.items.iter().map(InvitationView::from));
                match got.next {
                    Some(next) => page = PageRequest::after(next, 2),
                    None => break,
                }
            }
            orgs.push(OrgSnapshot {
                org,
                members,
                invitations,
            });
        }
        let mut user_orgs = Vec::new();
        for &user in &self.users {
            let mut listed = Vec::new();
            let mut page = PageRequest::first(2);
            loop {
                let got = tenancy
                    .list_user_orgs(&ctx, user, &page)
                    .await
                    .expect("snapshot: list_user_orgs");
                listed.extend(got.items.into_iter().map(|u| (u.org.id, u.membership)));
                match got.next {
                    Some(next) => page = PageRequest::after(next, 2),
                    None => break,
                }
            }
            user_orgs.push(listed);
        }
        (orgs, user_orgs)
    }
}

/// Applies `ops` through `portal`'s [`TenancyService`](crate::TenancyService) and records
/// what happened.
///
/// `portal` and `clock` should come from [`portal`] over a fresh store. The run first
/// creates the model's [`USERS`] (`user0@example.com`, ...) as a service principal, then
/// moves the clock one second before each operation, so every step has its own time.
///
/// # Panics
///
/// If the users cannot be created or the final snapshot cannot be read: both are setup,
/// not behaviour under test.
pub async fn run(portal: &Portal, clock: &ManualClock, ops: &[Op]) -> Transcript {
    let mut world = World {
        portal,
        users: Vec::new(),
        orgs: Vec::new(),
        invitations: Vec::new(),
    };
    for i in 0..USERS {
        let ctx = world.ctx(service());
        let new = NewUser {
            email: format!("user{i}@example.com"),
            display_name: format!("User {i}"),
        };
        let user = portal
            .tenancy()
            .create_user(&ctx, new)
            .await
            .expect("setup: create_user");
        world.users.push(user.id);
    }
    let mut steps = Vec::with_capacity(ops.len());
    for &op in ops {
        clock.advance(Duration::seconds(1));
        let at = crate::Clock::now(clock);
        let outcome = world.apply(op, clock).await.map_err(|err| err.code());
        steps.push(Step { op, at, outcome });
    }
    let (orgs, user_orgs) = world.snapshot().await;
    Transcript {
        users: world.users,
        steps,
        orgs,
        user_orgs,
    }
}

/// An invariant a transcript breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant broken: {0}")]
pub struct Violation(pub String);

/// Checks the rules every run must keep, whatever the operations:
///
/// - every org keeps at least one owner;
/// - a removed member is not found right after the removal, and is not a member at the
///   end unless they joined again later;
/// - no invitation is accepted twice, an accepted invitation's acceptance is the one the
///   store records, and a revoked invitation was never accepted;
/// - no acceptance happened at or after the invitation's expiry;
/// - the member lists and the users' org lists agree.
///
/// # Errors
///
/// The first [`Violation`] found.
pub fn check_invariants(transcript: &Transcript) -> Result<(), Violation> {
    let fail = |message: String| Err(Violation(message));

    for snapshot in &transcript.orgs {
        if !snapshot.members.iter().any(|m| m.roles.has_owner()) {
            return fail(format!(
                "org {} has no owner: {:?}",
                snapshot.org.slug, snapshot.members
            ));
        }
    }

    // The last membership change of each (org, user), from successful steps.
    let mut last_change: BTreeMap<(OrgId, UserId), (usize, bool)> = BTreeMap::new();
    let mut accepts: BTreeMap<InvitationId, Vec<(usize, &Membership)>> = BTreeMap::new();
    for (n, step) in transcript.steps.iter().enumerate() {
        let Ok(effect) = &step.outcome else { continue };
        match effect {
            Effect::OrgCreated(org) => {
                if let Some(owner) = creator(&step.op, &transcript.users) {
                    last_change.insert((org.id, owner), (n, true));
                }
            }
            Effect::Accepted { invitation, membership } => {
                last_change.insert((membership.org, membership.user), (n, true));
                accepts.entry(*invitation).or_default().push((n, membership));
            }
            Effect::RolesSet(membership) => {
                last_change.insert((membership.org, membership.user), (n, true));
            }
            Effect::Removed {
                membership,
                still_member,
            } => {
                if *still_member {
                    return fail(format!(
                        "step {n}: {membership:?} was still found right after its removal"
                    ));
                }
                last_change.insert((membership.org, membership.user), (n, false));
            }
            Effect::Invited(_) | Effect::Revoked(_) | Effect::ClockAdvanced => {}
        }
    }

    for ((org, user), (n, member)) in &last_change {
        let Some(snapshot) = transcript.orgs.iter().find(|s| s.org.id == *org) else {
            continue;
        };
        let found = snapshot.members.iter().find(|m| m.user == *user);
        if !member && found.is_some() {
            return fail(format!(
                "{user} was removed from {} at step {n} and never rejoined, but is a member: {found:?}",
                snapshot.org.slug
            ));
        }
        if *member && found.is_none() {
            return fail(format!(
                "{user} joined or changed roles in {} at step {n} and was never removed, but is not a member",
                snapshot.org.slug
            ));
        }
    }

    for (invitation, accepted) in &accepts {
        if accepted.len() > 1 {
            let steps: Vec<usize> = accepted.iter().map(|(n, _)| *n).collect();
            return fail(format!(
                "invitation {invitation} was accepted {} times, at steps {steps:?}",
                accepted.len()
            ));
        }
    }
    let invitations = transcript.orgs.iter().flat_map(|s| &s.invitations);
    for invitation in invitations {
        let accepted = accepts.get(&invitation.id).and_then(|a| a.first());
        match (&invitation.state, accepted) {
            (InvitationState::Accepted { by, at }, Some((n, membership))) => {
                if membership.user != *by {
                    return fail(format!(
                        "invitation {} records {by} but step {n} admitted {}",
                        invitation.id, membership.user
                    ));
                }
                if *at >= invitation.expires_at {
                    return fail(format!(
                        "invitation {} was accepted at {at}, not before its expiry",
                        invitation.id
                    ));
                }
            }
            (InvitationState::Accepted { .. }, None) => {
                return fail(format!(
                    "invitation {} is accepted but no step accepted it",
                    invitation.id
                ));
            }
            (InvitationState::Pending | InvitationState::Revoked { .. }, Some((n, _))) => {
                return fail(format!(
                    "step {n} accepted invitation {} but it is {:?}",
                    invitation.id, invitation.state
                ));
            }
            (InvitationState::Pending | InvitationState::Revoked { .. }, None) => {}
        }
    }

    let mut from_members = BTreeSet::new();
    for snapshot in &transcript.orgs {
        for m in &snapshot.members {
            from_members.insert(membership_key(m));
        }
    }
    let mut from_users = BTreeSet::new();
    for (n, orgs) in transcript.user_orgs.iter().enumerate() {
        for (org, m) in orgs {
            if *org != m.org || Some(&m.user) != transcript.users.get(n) {
                return fail(format!("user {n}'s org list holds a foreign membership {m:?}"));
            }
            from_users.insert(membership_key(m));
        }
    }
    if from_members != from_users {
        return fail(format!(
            "member lists and user org lists disagree:\n  {from_members:?}\nvs\n  {from_users:?}"
        ));
    }
    Ok(())
}

/// The user who performed an org creation.
fn creator(op: &Op, users: &[UserId]) -> Option<UserId> {
    match op {
        Op::CreateOrg { by, .. } => users.get(by % USERS).copied(),
        _ => None,
    }
}

/// A membership as an ordered value, so sets of them can be compared.
fn membership_key(m: &Membership) -> (OrgId, UserId, Vec<&str>, OffsetDateTime, OffsetDateTime) {
    (
        m.org,
        m.user,
        m.roles.iter().map(RoleName::as_str).collect(),
        m.created_at,
        m.updated_at,
    )
}
