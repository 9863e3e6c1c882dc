//! Unit tests of the index: built-in roles, the template, inheritance, explanations, bad input.

use portal_core::access::RoleTableAuthorizer;
use portal_core::context::ServiceName;
use portal_core::ids::{ApiKeyId, OrgId, SequentialIds, UserId};
use portal_core::tenancy::RoleName;
use time::OffsetDateTime;

use super::*;

struct World {
    user: Principal,
    org: OrgId,
    other: OrgId,
}

fn world() -> World {
    let ids = SequentialIds::default();
    let at = OffsetDateTime::UNIX_EPOCH;
    World {
        user: Principal::User(UserId::generate(&ids, at)),
        org: OrgId::generate(&ids, at),
        other: OrgId::generate(&ids, at),
    }
}

fn roles(names: &[&str]) -> Vec<RoleName> {
    names.iter().map(|n| RoleName::new(n).unwrap()).collect()
}

fn p(subject: &str, domain: Domain, object: &str, action: &str, effect: Effect) -> PolicyLine {
    PolicyLine::Permission(PolicyRule {
        subject: subject.into(),
        domain,
        object: object.into(),
        action: action.into(),
        effect,
    })
}

fn g(role: &str, parent: &str, domain: Domain) -> PolicyLine {
    PolicyLine::Inherit {
        role: role.to_owned(),
        parent: parent.to_owned(),
        domain,
    }
}

fn ask<'a>(
    principal: &'a Principal,
    domain: Domain,
    roles: &'a [RoleName],
    object: &'a str,
    action: &'a str,
) -> AccessRequest<'a> {
    AccessRequest {
        principal,
        domain,
        roles,
        object,
        action,
    }
}

#[test]
fn built_in_roles_decide_as_the_role_table_does() {
    let w = world();
    let casbin = CasbinAuthorizer::new(&builtin_policy()).unwrap();
    let table = RoleTableAuthorizer::default();
    let objects = [
        "org",
        "members",
        "invitations",
        "billing",
        "roles/owner",
        "roles/admin",
        "roles/viewer",
        "cases/1",
    ];
    let actions = ["read", "write", "delete", "create", "assign"];
    for role in ["owner", "admin", "member", "viewer", "billing", "custom"] {
        let held = roles(&[role]);
        for object in objects {
            for action in actions {
                let request = ask(&w.user, Domain::Org(w.org), &held, object, action);
                let (ours, theirs) = (casbin.check(&request).unwrap(), table.check(&request).unwrap());
                assert_eq!(ours.is_allowed(), theirs.is_allowed(), "{role} {object} {action}");
                if let (Decision::Denied(ours), Decision::Denied(theirs)) = (ours, theirs) {
                    assert_eq!(ours.would_grant, theirs.would_grant, "{role} {object} {action}");
                }
            }
        }
    }
    for (object, action) in [
        ("orgs", "create"),
        ("invitations", "accept"),
        ("self/orgs", "read"),
        ("users", "create"),
    ] {
        let request = ask(&w.user, Domain::Platform, &[], object, action);
        assert_eq!(
            casbin.is_allowed(&request).unwrap(),
            table.check(&request).unwrap().is_allowed(),
            "{object} {action}"
        );
    }
}

/// The explained chain starts from the roles the actor holds, as the decision resolved
/// them: the shortest way to the rule's role, the role itself when held, and a template
/// role held by a name the org's own lines never mention.
#[test]
fn the_chain_of_a_grant_is_the_shortest_from_a_held_role() {
    let w = world();
    let org = Domain::Org(w.org);
    let mut lines = builtin_policy();
    lines.push(g("lead", "senior", org));
    lines.push(g("senior", "agent", org));
    lines.push(g("deputy", "agent", org));
    lines.push(p("agent", org, "cases/{id}", "close", Effect::Allow));
    let authorizer = CasbinAuthorizer::new(&lines).unwrap();
    let via = |held: &[&str], object: &str, action: &str| -> Vec<Name> {
        let held = roles(held);
        match authorizer.check(&ask(&w.user, org, &held, object, action)).unwrap() {
            Decision::Allowed(grant) => grant.via,
            Decision::Denied(denial) => panic!("{held:?} {object} {action}: {denial:?}"),
        }
    };
    assert_eq!(via(&["lead"], "cases/1", "close"), ["lead", "senior", "agent"]);
    // Of two held roles, the one nearer the rule's role, whichever comes first.
    assert_eq!(via(&["lead", "deputy"], "cases/1", "close"), ["deputy", "agent"]);
    assert_eq!(via(&["deputy", "lead"], "cases/1", "close"), ["deputy", "agent"]);
    // Holding the rule's role itself is a chain of one.
    assert_eq!(via(&["lead", "agent"], "cases/1", "close"), ["agent"]);
    // `member` is a template role this org's lines never name: held by name.
    assert_eq!(via(&["lead", "member"], "members", "read"), ["member"]);
}

#[test]
fn a_custom_role_inherits_a_built_in_one_inside_its_org_only() {
    let w = world();
    let org = Domain::Org(w.org);
    let mut lines = builtin_policy();
    lines.push(g("lead", "member", org));
    lines.push(g("member", "viewer", org));
    lines.push(p("lead", org, "cases/{id}", "approve", Effect::Allow));
    let authorizer = CasbinAuthorizer::new(&lines).unwrap();
    let lead = roles(&["lead"]);

    let Decision::Allowed(grant) = authorizer.check(&ask(&w.user, org, &lead, "members", "read")).unwrap() else {
        panic!("a lead could not read members");
    };
    assert_eq!(grant.via, ["lead", "member"]);
    assert_eq!(grant.rule.domain, Domain::AllOrgs);
    assert!(
        authorizer
            .is_allowed(&ask(&w.user, org, &lead, "cases/wf_9", "approve"))
            .unwrap()
    );
    assert!(
        !authorizer
            .is_allowed(&ask(&w.user, org, &lead, "cases/wf_9/notes", "approve"))
            .unwrap()
    );
    // The same role name in another org has no lines there.
    let elsewhere = ask(&w.user, Domain::Org(w.other), &lead, "members", "read");
    assert!(!authorizer.is_allowed(&elsewhere).unwrap());
}

#[test]
fn an_org_deny_wins_over_a_template_allow_and_is_named() {
    let w = world();
    let org = Domain::Org(w.org);
    let mut lines = builtin_policy();
    lines.push(p("admin", org, "invitations", "create", Effect::Deny));
    let authorizer = CasbinAuthorizer::new(&lines).unwrap();
    let admin = roles(&["admin"]);
    let Decision::Denied(denial) = authorizer
        .check(&ask(&w.user, org, &admin, "invitations", "create"))
        .unwrap()
    else {
        panic!("the deny did not win");
    };
    let DenialReason::ExplicitDeny { rule } = denial.reason else {
        panic!("the denial named no rule");
    };
    assert_eq!(
        rule.to_string(),
        format!("p, admin, {}, invitations, create, deny", w.org)
    );
    assert_eq!(denial.would_grant, ["owner"]);
    // The other org keeps the template's grant.
    assert!(
        authorizer
            .is_allowed(&ask(&w.user, Domain::Org(w.other), &admin, "invitations", "create"))
            .unwrap()
    );
}

#[test]
fn services_are_trusted_keys_act_in_their_org_and_nobody_acts_in_the_template() {
    let w = world();
    let ids = SequentialIds::default();
    let org = Domain::Org(w.org);
    let authorizer = CasbinAuthorizer::new(&builtin_policy()).unwrap();
    let service = Principal::Service(ServiceName::new("jobs").unwrap());
    assert!(
        authorizer
            .is_allowed(&ask(&service, Domain::Platform, &[], "users", "create"))
            .unwrap()
    );
    let key = Principal::ApiKey {
        key: ApiKeyId::generate(&ids, OffsetDateTime::UNIX_EPOCH),
        org: w.org,
    };
    let viewer = roles(&["viewer"]);
    assert!(authorizer.is_allowed(&ask(&key, org, &viewer, "org", "read")).unwrap());
    assert!(
        !authorizer
            .is_allowed(&ask(&key, Domain::Org(w.other), &viewer, "org", "read"))
            .unwrap()
    );
    assert!(!authorizer.is_allowed(&ask(&key, org, &[], "org", "read")).unwrap());
    let owner = roles(&["owner"]);
    assert!(
        !authorizer
            .is_allowed(&ask(&w.user, Domain::AllOrgs, &owner, "org", "read"))
            .unwrap()
    );
}

#[test]
fn bad_lines_are_refused_and_change_nothing() {
    let w = world();
    let org = Domain::Org(w.org);
    let authorizer = CasbinAuthorizer::new(&builtin_policy()).unwrap();
    let before = (authorizer.revision(), authorizer.size());
    let bad: Vec<(PolicyLine, &str)> = vec![
        (p("Admin", org, "org", "read", Effect::Allow), "invalid"),
        (p("usr_x", org, "org", "read", Effect::Allow), "invalid"),
        (p("admin", org, "cases.*", "read", Effect::Allow), "invalid"),
        (p("admin", org, "org", "re ad", Effect::Allow), "invalid"),
        (g("a", "b", Domain::AllOrgs), "invalid"),
        (g("a", "a", org), "invalid"),
    ];
    for (line, _) in &bad {
        let good = p("fine", org, "org", "read", Effect::Allow);
        let err = authorizer.apply(&[good, line.clone()], &[]).unwrap_err();
        assert!(matches!(err, PolicyError::InvalidLine { .. }), "{line:?}: {err}");
    }
    let cycle = [g("a", "b", org), g("b", "c", org), g("c", "a", org)];
    assert!(matches!(
        authorizer.apply(&cycle, &[]).unwrap_err(),
        PolicyError::InheritanceCycle { .. }
    ));
    let chain: Vec<PolicyLine> = (0..=MAX_INHERITANCE_DEPTH)
        .map(|i| g(&format!("r{i}"), &format!("r{}", i + 1), org))
        .collect();
    assert!(matches!(
        authorizer.apply(&chain, &[]).unwrap_err(),
        PolicyError::InheritanceTooDeep { .. }
    ));
    assert!(authorizer.apply(&chain[1..], &[]).is_ok());
    assert_eq!(authorizer.revision(), Revision(before.0.0 + 1));
    assert_eq!(authorizer.size().0, before.1.0 + MAX_INHERITANCE_DEPTH);
    let portal: PortalError = PolicyError::invalid(&bad[0].0, "x").into();
    assert_eq!(portal.code(), ErrorCode::InvalidField);
}

#[test]
fn changes_from_a_store_apply_once_in_revision_order() {
    let w = world();
    let org = Domain::Org(w.org);
    let authorizer = CasbinAuthorizer::new(&builtin_policy()).unwrap();
    let change = PolicyChange {
        revision: Revision(7),
        added: vec![p("viewer", org, "reports/*", "read", Effect::Allow)],
        removed: Vec::new(),
    };
    assert_eq!(authorizer.apply_change(&change).unwrap(), Revision(7));
    let stale = PolicyChange {
        revision: Revision(7),
        added: vec![p("viewer", org, "reports/*", "write", Effect::Allow)],
        removed: Vec::new(),
    };
    assert_eq!(authorizer.apply_change(&stale).unwrap(), Revision(7));
    let viewer = roles(&["viewer"]);
    assert!(
        authorizer
            .is_allowed(&ask(&w.user, org, &viewer, "reports/1", "read"))
            .unwrap()
    );
    assert!(
        !authorizer
            .is_allowed(&ask(&w.user, org, &viewer, "reports/1", "write"))
            .unwrap()
    );
    assert_eq!(authorizer.apply(&[], &change.added).unwrap(), Revision(8));
    assert!(
        !authorizer
            .is_allowed(&ask(&w.user, org, &viewer, "reports/1", "read"))
            .unwrap()
    );
    assert_eq!(authorizer.size().1, 0, "an org without lines keeps no index");
}

#[tokio::test]
async fn the_portal_model_compiles_and_other_models_fall_back_to_the_enforcer() {
    let w = world();
    let org = Domain::Org(w.org);
    let mut lines = builtin_policy();
    lines.push(p("viewer", org, "reports/*", "read", Effect::Allow));
    let spaced = MODEL.replace(" && ", "  &&\t");
    let compiled = CasbinAuthorizer::with_model(&spaced, &lines).await.unwrap();
    assert!(compiled.is_compiled());

    let other = MODEL.replace("keyMatch3", "keyMatch2");
    let fallback = CasbinAuthorizer::with_model(&other, &lines).await.unwrap();
    assert!(!fallback.is_compiled());
    let viewer = roles(&["viewer"]);
    for (object, action) in [
        ("reports/1", "read"),
        ("members", "read"),
        ("members", "write"),
        ("reports/1", "write"),
    ] {
        let request = ask(&w.user, org, &viewer, object, action);
        assert_eq!(
            fallback.check(&request).unwrap().is_allowed(),
            compiled.check(&request).unwrap().is_allowed(),
            "{object} {action}"
        );
    }
    fallback
        .apply(&[], &[p("viewer", org, "reports/*", "read", Effect::Allow)])
        .unwrap();
    assert!(
        !fallback
            .is_allowed(&ask(&w.user, org, &viewer, "reports/1", "read"))
            .unwrap()
    );
    assert_eq!(fallback.lines().len(), lines.len() - 1);

    let flat = "[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n[policy_effect]\ne = some(where (p.eft == allow))\n[matchers]\nm = r.sub == p.sub";
    assert!(matches!(
        CasbinAuthorizer::with_model(flat, &[]).await.unwrap_err(),
        PolicyError::UnsupportedModel { .. }
    ));
}

#[test]
fn a_resync_replaces_the_whole_policy_at_its_revision() {
    let w = world();
    let org = Domain::Org(w.org);
    let mut lines = builtin_policy();
    lines.push(p("viewer", org, "reports/*", "read", Effect::Allow));
    let authorizer = CasbinAuthorizer::new(&lines).unwrap();
    authorizer
        .apply(&[p("viewer", org, "docs", "read", Effect::Allow)], &[])
        .unwrap();
    let replaced = authorizer.replace_all(Revision(3), &builtin_policy()).unwrap();
    assert_eq!((replaced, authorizer.revision()), (Revision(3), Revision(3)));
    let viewer = roles(&["viewer"]);
    assert!(
        !authorizer
            .is_allowed(&ask(&w.user, org, &viewer, "reports/1", "read"))
            .unwrap()
    );
    assert!(
        authorizer
            .is_allowed(&ask(&w.user, org, &viewer, "org", "read"))
            .unwrap()
    );
    assert_eq!(authorizer.size(), (builtin_policy().len(), 0));
    let bad = p("Bad", org, "org", "read", Effect::Allow);
    assert!(authorizer.replace_all(Revision(9), &[bad]).is_err());
    assert_eq!(authorizer.revision(), Revision(3));
}

#[test]
fn a_domain_with_more_than_64_roles_keeps_its_closures() {
    let w = world();
    let org = Domain::Org(w.org);
    let name = |i: usize| format!("r{i:02}");
    let mut lines: Vec<PolicyLine> = (0..70)
        .map(|i| p(&name(i), org, &format!("own/{i}"), "read", Effect::Allow))
        .collect();
    lines.extend((60..68).map(|i| g(&name(i), &name(i + 1), org)));
    lines.push(p(&name(68), org, "shared", "read", Effect::Allow));
    lines.push(p(&name(2), org, "shared", "read", Effect::Deny));
    let authorizer = CasbinAuthorizer::new(&lines).unwrap();
    let actor = roles(&["r60"]);
    let Decision::Allowed(grant) = authorizer.check(&ask(&w.user, org, &actor, "shared", "read")).unwrap() else {
        panic!("the chain did not grant");
    };
    assert_eq!(grant.via, (60..=68).map(name).collect::<Vec<_>>());
    assert!(
        authorizer
            .is_allowed(&ask(&w.user, org, &actor, "own/64", "read"))
            .unwrap()
    );
    assert!(
        !authorizer
            .is_allowed(&ask(&w.user, org, &actor, "own/59", "read"))
            .unwrap()
    );
    let both = roles(&["r60", "r02"]);
    let Decision::Denied(denial) = authorizer.check(&ask(&w.user, org, &both, "shared", "read")).unwrap() else {
        panic!("the deny did not win");
    };
    assert_eq!(denial.would_grant, (60..=68).map(name).collect::<Vec<_>>());
}

mod keys {
    //! The search keys sort as the names do, and equal short keys mean equal names.
    use proptest::prelude::*;

    use super::index::key_of;

    proptest! {
        #[test]
        fn keys_sort_as_names_do(a in "[a-c\\x00/*{}é]{0,10}", b in "[a-c\\x00/*{}é]{0,10}") {
            let (ka, kb) = (key_of(&a), key_of(&b));
            if ka < kb {
                prop_assert!(a < b, "key order {ka:x} < {kb:x} but {a:?} >= {b:?}");
            }
            if ka == kb && a.len() <= 7 {
                prop_assert_eq!(&a, &b);
            }
            if a == b {
                prop_assert_eq!(ka, kb);
            }
        }
    }
}

/// The compiled tables of `org` and `other` in `authorizer`'s current snapshot.
fn tables_shared(authorizer: &CasbinAuthorizer, a: OrgId, b: OrgId) -> bool {
    let Engine::Index(engine) = &authorizer.engine else {
        panic!("the index engine was expected")
    };
    let snapshot = engine.snapshot.load();
    snapshot
        .domain(Domain::Org(a))
        .shares_table_with(snapshot.domain(Domain::Org(b)))
}

#[test]
fn orgs_with_the_same_policy_share_one_index_and_a_change_in_one_stays_in_it() {
    let w = world();
    let third = OrgId::generate(&SequentialIds::default(), OffsetDateTime::now_utc());
    let policy = |org: OrgId| {
        let d = Domain::Org(org);
        vec![
            g("lead", "clerk", d),
            p("clerk", d, "orders", "read", Effect::Allow),
            p("lead", d, "orders/*", "approve", Effect::Allow),
        ]
    };
    let lines: Vec<PolicyLine> = [w.org, w.other].into_iter().flat_map(policy).collect();
    let authorizer = CasbinAuthorizer::new(&lines).unwrap();
    assert!(tables_shared(&authorizer, w.org, w.other), "identical policies share");
    let clerk = roles(&["clerk"]);
    let in_org = |org: OrgId, object, action| {
        authorizer
            .check(&ask(&w.user, Domain::Org(org), &clerk, object, action))
            .unwrap()
            .is_allowed()
    };
    assert!(in_org(w.org, "orders", "read") && in_org(w.other, "orders", "read"));

    // A grant in one org: that org gets its own index; the other decides as before.
    let extra = p("clerk", Domain::Org(w.org), "invoices", "read", Effect::Allow);
    authorizer.apply(std::slice::from_ref(&extra), &[]).unwrap();
    assert!(!tables_shared(&authorizer, w.org, w.other));
    assert!(in_org(w.org, "invoices", "read"));
    assert!(!in_org(w.other, "invoices", "read"), "the grant stayed in its org");
    let Decision::Allowed(grant) = authorizer
        .check(&ask(&w.user, Domain::Org(w.other), &clerk, "orders", "read"))
        .unwrap()
    else {
        panic!("denied")
    };
    assert_eq!(
        grant.rule.domain,
        Domain::Org(w.other),
        "the explanation names the asking org"
    );

    // A third org provisioned with the same policy shares again; revoking the extra
    // line makes all three the same.
    authorizer.apply(&policy(third), &[]).unwrap();
    assert!(tables_shared(&authorizer, w.other, third));
    authorizer.apply(&[], std::slice::from_ref(&extra)).unwrap();
    assert!(tables_shared(&authorizer, w.org, w.other) && tables_shared(&authorizer, w.org, third));
    assert!(!in_org(w.org, "invoices", "read"));
}

/// The JSON of the index's decisions, which the journal stores and triage reads: pinned
/// text, so that no change to the decision types changes it, and read back equal.
#[test]
fn decisions_serialize_to_the_pinned_json() {
    let w = world();
    let org = Domain::Org(w.org);
    let mut lines = builtin_policy();
    lines.push(g("lead", "member", org));
    lines.push(p("lead", org, "cases/{id}", "approve", Effect::Allow));
    lines.push(p("admin", org, "invitations", "create", Effect::Deny));
    let authorizer = CasbinAuthorizer::new(&lines).unwrap();
    let (lead, admin) = (roles(&["lead"]), roles(&["admin", "billing"]));
    let service = Principal::Service(ServiceName::new("billing-sync").unwrap());
    let json = |request: AccessRequest<'_>| {
        let decision = authorizer.check(&request).unwrap();
        let text = serde_json::to_string(&decision).unwrap();
        assert_eq!(serde_json::from_str::<Decision>(&text).unwrap(), decision, "{text}");
        text
    };
    let template_rule =
        r#"{"subject":"member","domain":{"kind":"all_orgs"},"object":"members","action":"read","effect":"allow"}"#;
    assert_eq!(
        json(ask(&w.user, org, &lead, "members", "read")),
        format!(r#"{{"decision":"allowed","rule":{template_rule},"via":["lead","member"]}}"#)
    );
    assert_eq!(
        json(ask(&w.user, org, &lead, "cases/wf_1", "approve")),
        format!(
            r#"{{"decision":"allowed","rule":{{"subject":"lead","domain":{{"kind":"org","org":"{}"}},"object":"cases/{{id}}","action":"approve","effect":"allow"}},"via":["lead"]}}"#,
            w.org
        )
    );
    assert_eq!(
        json(ask(&w.user, org, &admin, "invitations", "create")),
        format!(
            r#"{{"decision":"denied","reason":{{"kind":"explicit_deny","rule":{{"subject":"admin","domain":{{"kind":"org","org":"{}"}},"object":"invitations","action":"create","effect":"deny"}}}},"roles":["admin","billing"],"would_grant":["owner"]}}"#,
            w.org
        )
    );
    assert_eq!(
        json(ask(&w.user, org, &lead, "members", "delete")),
        r#"{"decision":"denied","reason":{"kind":"no_grant"},"roles":["lead"],"would_grant":["admin","owner"]}"#
    );
    assert_eq!(
        json(ask(&w.user, Domain::AllOrgs, &lead, "members", "read")),
        r#"{"decision":"denied","reason":{"kind":"no_grant"},"roles":["lead"],"would_grant":[]}"#
    );
    assert_eq!(
        json(ask(&service, Domain::Platform, &[], "orgs", "create")),
        r#"{"decision":"allowed","rule":{"subject":"service","domain":{"kind":"platform"},"object":"*","action":"*","effect":"allow"},"via":["service"]}"#
    );
}

/// `count` orgs and a user, with sequential ids.
fn orgs_and_user(count: usize) -> (Vec<OrgId>, Principal) {
    let ids = SequentialIds::default();
    let at = OffsetDateTime::UNIX_EPOCH;
    let orgs = (0..count).map(|_| OrgId::generate(&ids, at)).collect();
    (orgs, Principal::User(UserId::generate(&ids, at)))
}

#[test]
fn thousands_of_orgs_load_at_once_and_change_in_batches() {
    // Enough orgs that every slot of the org map's trie holds several, loaded in one
    // change, then changed several at a time (added, replaced and removed in one apply).
    let (orgs, user) = orgs_and_user(6_000);
    let viewer = roles(&["viewer"]);
    // Org i grants `reports/<i mod 3>` read: three distinct indexes, shared.
    let grant = |i: usize| {
        p(
            "viewer",
            Domain::Org(orgs[i]),
            &format!("reports/{}", i % 3),
            "read",
            Effect::Allow,
        )
    };
    let lines: Vec<PolicyLine> = (0..orgs.len()).map(grant).collect();
    let authorizer = CasbinAuthorizer::new(&lines).unwrap();
    assert_eq!(authorizer.size(), (6_000, 6_000));
    let allowed = |i: usize, object: &str| {
        authorizer
            .is_allowed(&ask(&user, Domain::Org(orgs[i]), &viewer, object, "read"))
            .unwrap()
    };
    for i in 0..orgs.len() {
        assert!(allowed(i, &format!("reports/{}", i % 3)), "org {i}");
        assert!(!allowed(i, &format!("reports/{}", (i + 1) % 3)), "org {i}");
    }
    // One change: the first 500 orgs lose their line (the org leaves the map), the next
    // 500 get a second one, and 500 new lines land in orgs that had one already.
    let removed: Vec<PolicyLine> = (0..500).map(grant).collect();
    let added: Vec<PolicyLine> = (500..1_500)
        .map(|i| p("viewer", Domain::Org(orgs[i]), "invoices", "read", Effect::Allow))
        .collect();
    authorizer.apply(&added, &removed).unwrap();
    assert_eq!(authorizer.size(), (6_000 - 500 + 1_000, 5_500));
    for i in 0..orgs.len() {
        assert_eq!(allowed(i, &format!("reports/{}", i % 3)), i >= 500, "org {i}");
        assert_eq!(allowed(i, "invoices"), (500..1_500).contains(&i), "org {i}");
    }
    // And back: every org as loaded.
    authorizer.apply(&removed, &added).unwrap();
    assert_eq!(authorizer.size(), (6_000, 6_000));
    let mut now = authorizer.lines();
    let mut expected = lines.clone();
    let key = |l: &PolicyLine| format!("{l:?}");
    now.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(now, expected);
}

mod sorting {
    //! `sort_after` sorts whatever its sorted prefix and its tail hold.
    use proptest::prelude::*;

    use super::index::sort_after;

    proptest! {
        #[test]
        fn sort_after_sorts(mut prefix in prop::collection::vec(0u8..20, 0..30), tail in prop::collection::vec(0u8..20, 0..12)) {
            prefix.sort_unstable();
            let sorted = prefix.len();
            let mut v = prefix;
            v.extend(tail);
            let mut expected = v.clone();
            expected.sort_unstable();
            sort_after(&mut v, sorted, u8::cmp);
            prop_assert_eq!(v, expected);
        }
    }
}

#[test]
fn a_change_whose_lines_come_back_to_earlier_orgs_lands_each_in_its_own() {
    // 40 orgs, lines dealt round-robin so that every org comes back after the others:
    // the change is grouped by domain whether it is searched in order or through a map.
    let (orgs, user) = orgs_and_user(40);
    let objects = ["a", "b", "c"];
    let lines: Vec<PolicyLine> = objects
        .iter()
        .flat_map(|object| {
            orgs.iter()
                .map(move |org| p("viewer", Domain::Org(*org), object, "read", Effect::Allow))
        })
        .collect();
    for count in [3, 10, 40] {
        let dealt: Vec<PolicyLine> = lines
            .iter()
            .filter(|line| matches!(line.domain(), Domain::Org(org) if orgs[..count].contains(&org)))
            .cloned()
            .collect();
        let authorizer = CasbinAuthorizer::new(&[]).unwrap();
        authorizer.apply(&dealt, &[]).unwrap();
        assert_eq!(authorizer.size(), (3 * count, count));
        let viewer = roles(&["viewer"]);
        for (i, org) in orgs.iter().enumerate() {
            for object in objects {
                let allowed = authorizer
                    .is_allowed(&ask(&user, Domain::Org(*org), &viewer, object, "read"))
                    .unwrap();
                assert_eq!(allowed, i < count, "org {i}, {object}, {count} orgs");
            }
        }
        // Removing them the same way leaves nothing.
        authorizer.apply(&[], &dealt).unwrap();
        assert_eq!(authorizer.size(), (0, 0));
    }
}
