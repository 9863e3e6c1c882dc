//! Authorization: `CasbinAuthorizer` against casbin's own Enforcer on the shared workload.
//!
//! Run with `cargo bench -p portal-benches --bench authz` (add `-- --noplot`; set
//! `AUTHZ_TENANTS=100,1000` to choose sizes). The workload is
//! `shared/bench/authz-workload.md`: per tenant 5 roles, 4 inheritance lines, 10 users
//! holding 11 role assignments, and 20 permission lines. casbin's Enforcer holds all 35
//! lines per tenant; the index holds the 24 role lines, and the 11 assignments live in a
//! membership map that every timed index check reads first, as a service does.
//!
//! `AUTHZ_DISTINCT=1` gives every tenant one permission line of its own, so that no two
//! tenants' policies compile to the same (shared) index.
//!
//! The program first prints its own measurements as Markdown (per-check p50/p99 from
//! `Instant` around each check, checks per second, load time, memory from child
//! processes, grant and revoke, explain), then runs the criterion benchmarks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark program fails loudly and prints its report"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use casbin::{Adapter, CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};
use criterion::{BenchmarkId, Criterion, SamplingMode};
use portal_auth::CasbinAuthorizer;
use portal_auth::casbin_authz::MODEL;
use portal_core::Principal;
use portal_core::access::{AccessRequest, Authorizer, Decision, Domain, Effect, PolicyLine, PolicyRule};
use portal_core::ids::{OrgId, UserId};
use portal_core::tenancy::RoleName;

/// casbin's documented RBAC-with-domains model, the one the reference figures used.
const DOCUMENTED_MODEL: &str = r"[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
";

const ROLES: [&str; 5] = ["admin", "manager", "editor", "viewer", "billing"];
const INHERIT: [(&str, &str); 4] = [
    ("admin", "manager"),
    ("manager", "editor"),
    ("editor", "viewer"),
    ("billing", "viewer"),
];
const USERS: [&[&str]; 10] = [
    &["admin"],
    &["manager"],
    &["editor"],
    &["editor"],
    &["viewer"],
    &["viewer"],
    &["viewer"],
    &["viewer"],
    &["billing"],
    &["editor", "billing"],
];
const GRANTS: [(&str, &str, &str); 20] = [
    ("admin", "users", "write"),
    ("admin", "settings", "write"),
    ("admin", "orders", "delete"),
    ("admin", "invoices", "approve"),
    ("admin", "workflows", "write"),
    ("admin", "documents", "delete"),
    ("manager", "orders", "approve"),
    ("manager", "orders", "write"),
    ("manager", "reports", "read"),
    ("manager", "tickets", "delete"),
    ("manager", "workflows", "approve"),
    ("editor", "documents", "write"),
    ("editor", "tickets", "write"),
    ("editor", "workflows", "read"),
    ("viewer", "orders", "read"),
    ("viewer", "invoices", "read"),
    ("viewer", "documents", "read"),
    ("viewer", "tickets", "read"),
    ("billing", "invoices", "write"),
    ("billing", "reports", "read"),
];
const OBJECTS: [&str; 8] = [
    "orders",
    "invoices",
    "users",
    "settings",
    "reports",
    "tickets",
    "documents",
    "workflows",
];
const ACTIONS: [&str; 4] = ["read", "write", "delete", "approve"];

/// SplitMix64: a small seeded generator, so the request stream is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn org(i: usize) -> OrgId {
    OrgId::from_uuid(uuid::Uuid::from_u128(
        0x0190_0000_0000_7000_8000_0000_0000_0000 + i as u128,
    ))
}

fn user(i: usize, j: usize) -> UserId {
    UserId::from_uuid(uuid::Uuid::from_u128(
        0x0191_0000_0000_7000_8000_0000_0000_0000 + (i * 10 + j) as u128,
    ))
}

/// `AUTHZ_DISTINCT=1`: every tenant gets one permission line of its own (36 lines per
/// tenant), so that no two tenants compile to the same index. Without it the tenants'
/// policies are the shared workload's, identical but for the domain, and the index
/// compiles them all to one shared table.
fn distinct_tenants() -> bool {
    std::env::var("AUTHZ_DISTINCT").is_ok_and(|v| v == "1")
}

/// The workload at one size, in both engines' terms.
struct Workload {
    tenants: usize,
    /// The index's lines: role inheritance and permissions.
    lines: Vec<PolicyLine>,
    /// casbin's lines: the same plus the user assignments as `g` lines.
    casbin_p: Vec<Vec<String>>,
    casbin_g: Vec<Vec<String>>,
    memberships: HashMap<(OrgId, UserId), Vec<RoleName>>,
    /// One number per tenant in a plain hash map: reading it for a request's org is the
    /// memory floor (one random read of per-tenant data) the index's checks are set beside.
    floor: HashMap<OrgId, u64>,
}

impl Workload {
    fn new(tenants: usize) -> Self {
        let mut lines = Vec::with_capacity(tenants * 24);
        let (mut casbin_p, mut casbin_g) = (Vec::new(), Vec::new());
        let mut memberships = HashMap::new();
        let mut floor = HashMap::new();
        for i in 0..tenants {
            floor.insert(org(i), i as u64);
            let domain = Domain::Org(org(i));
            let dom = domain.to_string();
            for (role, parent) in INHERIT {
                lines.push(PolicyLine::Inherit {
                    role: role.to_owned(),
                    parent: parent.to_owned(),
                    domain,
                });
                casbin_g.push(vec![role.to_owned(), parent.to_owned(), dom.clone()]);
            }
            for (role, object, action) in GRANTS {
                lines.push(PolicyLine::Permission(PolicyRule {
                    subject: role.into(),
                    domain,
                    object: object.into(),
                    action: action.into(),
                    effect: Effect::Allow,
                }));
                casbin_p.push(vec![
                    role.into(),
                    dom.clone(),
                    object.into(),
                    action.into(),
                    "allow".into(),
                ]);
            }
            if distinct_tenants() {
                // One permission no other tenant has, so that no two tenants' policies
                // compile to the same index and none is shared: the worst case for memory
                // and caches. Requests never ask for it.
                let object = format!("archive/{i}");
                lines.push(PolicyLine::Permission(PolicyRule {
                    subject: "viewer".into(),
                    domain,
                    object: object.clone().into(),
                    action: "read".into(),
                    effect: Effect::Allow,
                }));
                casbin_p.push(vec![
                    "viewer".into(),
                    dom.clone(),
                    object,
                    "read".into(),
                    "allow".into(),
                ]);
            }
            for (j, roles) in USERS.iter().enumerate() {
                let u = user(i, j);
                memberships.insert((org(i), u), roles.iter().map(|r| RoleName::new(r).unwrap()).collect());
                for role in *roles {
                    casbin_g.push(vec![u.to_string(), (*role).to_owned(), dom.clone()]);
                }
            }
        }
        debug_assert!(ROLES.len() == 5);
        Self {
            tenants,
            lines,
            casbin_p,
            casbin_g,
            memberships,
            floor,
        }
    }

    fn casbin_lines(&self) -> usize {
        self.casbin_p.len() + self.casbin_g.len()
    }

    fn authorizer(&self) -> CasbinAuthorizer {
        CasbinAuthorizer::new(&self.lines).unwrap()
    }

    async fn enforcer(&self, documented: bool) -> Enforcer {
        let model = DefaultModel::from_str(if documented { DOCUMENTED_MODEL } else { MODEL })
            .await
            .unwrap();
        let mut adapter = MemoryAdapter::default();
        let p = if documented {
            self.casbin_p.iter().map(|p| p[..4].to_vec()).collect()
        } else {
            self.casbin_p.clone()
        };
        adapter.add_policies("p", "p", p).await.unwrap();
        adapter.add_policies("g", "g", self.casbin_g.clone()).await.unwrap();
        Enforcer::new(model, adapter).await.unwrap()
    }
}

/// One request of the stream, with casbin's strings made ahead of time.
struct Request {
    principal: Principal,
    user: UserId,
    org: OrgId,
    object: &'static str,
    action: &'static str,
    allowed: bool,
    strings: (String, String, String, String),
}

/// The timed index check: the membership lookup, then the authorizer.
#[inline]
fn index_check(authorizer: &CasbinAuthorizer, w: &Workload, r: &Request) -> Decision {
    let roles = w.memberships.get(&(r.org, r.user)).map_or(&[][..], Vec::as_slice);
    authorizer
        .check(&AccessRequest {
            principal: &r.principal,
            domain: Domain::Org(r.org),
            roles,
            object: r.object,
            action: r.action,
        })
        .unwrap()
}

#[inline]
fn index_is_allowed(authorizer: &CasbinAuthorizer, w: &Workload, r: &Request) -> bool {
    let roles = w.memberships.get(&(r.org, r.user)).map_or(&[][..], Vec::as_slice);
    authorizer
        .is_allowed(&AccessRequest {
            principal: &r.principal,
            domain: Domain::Org(r.org),
            roles,
            object: r.object,
            action: r.action,
        })
        .unwrap()
}

/// A seeded stream: half allowed, half denied, half of the denied cross-tenant.
fn stream(w: &Workload, authorizer: &CasbinAuthorizer, n: usize, seed: u64) -> Vec<Request> {
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(n);
    let (mut allowed, mut denied, mut cross) = (0, 0, 0);
    while out.len() < n {
        let (i, j) = (rng.below(w.tenants), rng.below(USERS.len()));
        let cross_tenant = cross < n / 4 && rng.below(4) == 0 && w.tenants > 1;
        let asked = if cross_tenant {
            (i + 1 + rng.below(w.tenants - 1)) % w.tenants
        } else {
            i
        };
        let u = user(i, j);
        let mut r = Request {
            principal: Principal::User(u),
            user: u,
            org: org(asked),
            object: OBJECTS[rng.below(OBJECTS.len())],
            action: ACTIONS[rng.below(ACTIONS.len())],
            allowed: false,
            strings: (String::new(), String::new(), String::new(), String::new()),
        };
        r.allowed = index_check(authorizer, w, &r).is_allowed();
        let keep = match (cross_tenant, r.allowed) {
            (true, _) => {
                cross += 1;
                true
            }
            (false, true) if allowed < n / 2 => {
                allowed += 1;
                true
            }
            (false, false) if denied < n / 4 => {
                denied += 1;
                true
            }
            _ => false,
        };
        if keep {
            r.strings = (
                u.to_string(),
                org(asked).to_string(),
                r.object.to_owned(),
                r.action.to_owned(),
            );
            out.push(r);
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank]
}

fn show(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

/// Times each call separately; returns the sorted durations.
fn per_call(mut f: impl FnMut(usize), n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for k in 0..n {
        let start = Instant::now();
        f(k);
        out.push(start.elapsed());
    }
    out.sort();
    out
}

/// Resident and peak memory of this process, in KiB, from `/proc/self/status`.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Run in a child process: build one engine at one size and print the memory it took.
fn probe(spec: &str) {
    let (engine, tenants) = spec.split_once(':').unwrap();
    let w = Workload::new(tenants.parse().unwrap());
    let (before, _) = memory_kib();
    let start = Instant::now();
    let keep: Box<dyn std::any::Any> = match engine {
        "index" => Box::new(w.authorizer()),
        "casbin" => {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            Box::new(runtime.block_on(w.enforcer(false)))
        }
        other => panic!("unknown engine `{other}`"),
    };
    let took = start.elapsed();
    let (after, peak) = memory_kib();
    black_box(&keep);
    println!(
        "{} {} {}",
        after.saturating_sub(before),
        peak.saturating_sub(before),
        took.as_micros()
    );
}

/// (held KiB, peak KiB above the start, load µs) of one engine, measured in a fresh process.
fn memory_of(engine: &str, tenants: usize) -> (u64, u64, u64) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env("AUTHZ_PROBE", format!("{engine}:{tenants}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let v: Vec<u64> = text.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    (
        v.first().copied().unwrap_or(0),
        v.get(1).copied().unwrap_or(0),
        v.get(2).copied().unwrap_or(0),
    )
}

/// How many Enforcer checks to time per outcome at a size: the Enforcer costs grow with it.
fn casbin_samples(tenants: usize) -> usize {
    match tenants {
        0..=100 => 200,
        101..=1000 => 40,
        _ => 12,
    }
}

/// Grants one line into, then revokes it from, a random tenant, 500 times: the sorted
/// durations of the grants and of the revokes.
fn grant_and_revoke(authorizer: &CasbinAuthorizer, tenants: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut rng = Rng(7);
    let mut grant = Vec::new();
    let mut revoke = Vec::new();
    for _ in 0..500 {
        let line = PolicyLine::Permission(PolicyRule {
            subject: "viewer".into(),
            domain: Domain::Org(org(rng.below(tenants))),
            object: "reports".into(),
            action: "write".into(),
            effect: Effect::Allow,
        });
        let start = Instant::now();
        authorizer.apply(std::slice::from_ref(&line), &[]).unwrap();
        grant.push(start.elapsed());
        let start = Instant::now();
        authorizer.apply(&[], std::slice::from_ref(&line)).unwrap();
        revoke.push(start.elapsed());
    }
    grant.sort();
    revoke.sort();
    (grant, revoke)
}

/// The custom measurements of one size, printed as Markdown rows.
fn report(w: &Workload, authorizer: &CasbinAuthorizer, requests: &[Request]) {
    let n = w.tenants;
    println!(
        "\n### {n} tenants ({} index lines, {} casbin lines)\n",
        w.lines.len(),
        w.casbin_lines()
    );
    let (allowed, denied): (Vec<&Request>, Vec<&Request>) = requests.iter().partition(|r| r.allowed);

    // Warm the caches the way a running service has them, then time each check.
    for r in requests {
        black_box(index_check(authorizer, w, r));
    }
    // The four kinds of timed call take turns, each on a different cold request, so that
    // the noise of a shared machine falls on all of them alike and their ratio holds.
    let (mut index_allowed, mut index_denied, mut decide_allowed, mut decide_denied) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut in_hand, mut floor) = (Vec::new(), Vec::new());
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    for k in 0..200_000 {
        let (a, d) = (allowed.len(), denied.len());
        index_allowed.push(time(&mut || {
            black_box(index_check(authorizer, w, allowed[k % a]));
        }));
        decide_allowed.push(time(&mut || {
            black_box(index_is_allowed(authorizer, w, allowed[(k + a / 2) % a]));
        }));
        index_denied.push(time(&mut || {
            black_box(index_check(authorizer, w, denied[k % d]));
        }));
        decide_denied.push(time(&mut || {
            black_box(index_is_allowed(authorizer, w, denied[(k + d / 2) % d]));
        }));
        // The index alone: the roles read (and copied, as a store read would) outside the timer.
        let r = allowed[(k + a / 3) % a];
        let roles: Vec<RoleName> = w.memberships.get(&(r.org, r.user)).cloned().unwrap_or_default();
        in_hand.push(time(&mut || {
            let request = AccessRequest {
                principal: &r.principal,
                domain: Domain::Org(r.org),
                roles: &roles,
                object: r.object,
                action: r.action,
            };
            black_box(authorizer.check(&request).unwrap());
        }));
        // The memory floor: one read of per-tenant data for another request's org.
        let r = allowed[(k + 2 * a / 3) % a];
        floor.push(time(&mut || {
            black_box(w.floor.get(&r.org));
        }));
    }
    in_hand.sort();
    floor.sort();
    for v in [
        &mut index_allowed,
        &mut index_denied,
        &mut decide_allowed,
        &mut decide_denied,
    ] {
        v.sort();
    }
    let lookup = per_call(
        |k| {
            let r = denied[k % denied.len()];
            black_box(w.memberships.get(&(r.org, r.user)).map_or(0, Vec::len));
        },
        200_000,
    );
    let timer = per_call(
        |k| {
            black_box(k);
        },
        200_000,
    );

    // Checks per second on one core: the whole mixed stream, back to back, for a second.
    let start = Instant::now();
    let mut checks = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        for r in requests {
            black_box(index_check(authorizer, w, r));
        }
        checks += requests.len() as u64;
    }
    let index_rate = checks as f64 / start.elapsed().as_secs_f64();

    let (grant, revoke) = grant_and_revoke(authorizer, n);

    // casbin's Enforcer: portal model (same decisions) and the documented model.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let start = Instant::now();
    let mut enforcer = runtime.block_on(w.enforcer(false));
    let casbin_load = start.elapsed();
    let documented = runtime.block_on(w.enforcer(true));
    let samples = casbin_samples(n);
    let enforce = |e: &Enforcer, r: &Request| -> bool {
        let (s, d, o, a) = &r.strings;
        e.enforce((s.as_str(), d.as_str(), o.as_str(), a.as_str())).unwrap()
    };
    for r in allowed.iter().take(samples).chain(denied.iter().take(samples)) {
        assert_eq!(enforce(&enforcer, r), r.allowed, "casbin and the index disagree");
    }
    let casbin_allowed = per_call(
        |k| {
            black_box(enforce(&enforcer, allowed[k]));
        },
        samples,
    );
    let casbin_denied = per_call(
        |k| {
            black_box(enforce(&enforcer, denied[k]));
        },
        samples,
    );
    let documented_allowed = per_call(
        |k| {
            black_box(enforce(&documented, allowed[k]));
        },
        samples,
    );
    let documented_denied = per_call(
        |k| {
            black_box(enforce(&documented, denied[k]));
        },
        samples,
    );
    let casbin_mean = (casbin_allowed.iter().chain(&casbin_denied).sum::<Duration>()) / (2 * samples) as u32;
    let mut casbin_grant = Vec::new();
    let mut casbin_revoke = Vec::new();
    for k in 0..10 {
        let rule = vec![
            "viewer".to_owned(),
            org(k % n).to_string(),
            "reports".into(),
            "write".into(),
            "allow".into(),
        ];
        let start = Instant::now();
        runtime.block_on(enforcer.add_policy(rule.clone())).unwrap();
        casbin_grant.push(start.elapsed());
        let start = Instant::now();
        runtime.block_on(enforcer.remove_policy(rule)).unwrap();
        casbin_revoke.push(start.elapsed());
    }
    casbin_grant.sort();
    casbin_revoke.sort();
    drop((enforcer, documented));

    let (index_held, index_peak, index_load) = memory_of("index", n);
    let (casbin_held, casbin_peak, casbin_probe_load) = memory_of("casbin", n);
    let p = |v: &[Duration]| format!("{} / {}", show(percentile(v, 0.5)), show(percentile(v, 0.99)));
    println!(
        "| measure | index (CasbinAuthorizer) | casbin Enforcer, portal model | casbin Enforcer, documented model |"
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| allowed check p50 / p99 | {} | {} | {} |",
        p(&index_allowed),
        p(&casbin_allowed),
        p(&documented_allowed)
    );
    println!(
        "| denied check p50 / p99 | {} | {} | {} |",
        p(&index_denied),
        p(&casbin_denied),
        p(&documented_denied)
    );
    println!(
        "| decision only (`is_allowed`), allowed / denied p50 | {} / {} | | |",
        show(percentile(&decide_allowed, 0.5)),
        show(percentile(&decide_denied, 0.5))
    );
    println!(
        "| allowed check with the roles in hand (membership read before the timer) p50 / p99 | {} | | |",
        p(&in_hand)
    );
    println!(
        "| of which the membership lookup, p50 | {} | (casbin resolves roles itself) | |",
        show(percentile(&lookup, 0.5))
    );
    println!(
        "| memory floor: one hash-map read of per-tenant data, timed alike, p50 / p99 | {} | | |",
        p(&floor)
    );
    println!(
        "| checks per second, one core | {:.2} M | {:.0} | |",
        index_rate / 1e6,
        1.0 / casbin_mean.as_secs_f64()
    );
    println!(
        "| speed-up over the Enforcer (denied p50) | {:.0}× | | |",
        percentile(&casbin_denied, 0.5).as_secs_f64() / percentile(&index_denied, 0.5).as_secs_f64()
    );
    println!(
        "| load ({} / {} lines), per line | {} ({:.2} µs/line) | {} ({:.2} µs/line) | |",
        w.lines.len(),
        w.casbin_lines(),
        show(Duration::from_micros(index_load)),
        index_load as f64 / w.lines.len() as f64,
        show(casbin_load.max(Duration::from_micros(casbin_probe_load))),
        casbin_load.as_micros() as f64 / w.casbin_lines() as f64
    );
    println!(
        "| memory held after load / peak during load | {} / {} KiB | {} / {} KiB | |",
        index_held, index_peak, casbin_held, casbin_peak
    );
    println!("| grant one line p50 / p99 | {} | {} | |", p(&grant), p(&casbin_grant));
    println!(
        "| revoke one line p50 / p99 | {} | {} | |",
        p(&revoke),
        p(&casbin_revoke)
    );
    println!(
        "| explain: check ÷ decision only, allowed / denied p50 | {:.2}× / {:.2}× | n/a | |",
        percentile(&index_allowed, 0.5).as_secs_f64() / percentile(&decide_allowed, 0.5).as_secs_f64(),
        percentile(&index_denied, 0.5).as_secs_f64() / percentile(&decide_denied, 0.5).as_secs_f64()
    );
    println!(
        "\n(timer overhead per timed call: p50 {}; Enforcer samples per outcome: {samples})",
        show(percentile(&timer, 0.5))
    );
}

fn criterion_benches(c: &mut Criterion, w: &Workload, authorizer: &CasbinAuthorizer, requests: &[Request]) {
    let n = w.tenants;
    let (allowed, denied): (Vec<&Request>, Vec<&Request>) = requests.iter().partition(|r| r.allowed);
    let mut group = c.benchmark_group("authz/index");
    let mut k = 0usize;
    group.bench_function(BenchmarkId::new("check_allowed", n), |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            index_check(authorizer, w, allowed[k % allowed.len()])
        })
    });
    group.bench_function(BenchmarkId::new("check_denied", n), |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            index_check(authorizer, w, denied[k % denied.len()])
        })
    });
    group.bench_function(BenchmarkId::new("is_allowed_denied", n), |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            index_is_allowed(authorizer, w, denied[k % denied.len()])
        })
    });
    let line = PolicyLine::Permission(PolicyRule {
        subject: "viewer".into(),
        domain: Domain::Org(org(n / 2)),
        object: "reports".into(),
        action: "write".into(),
        effect: Effect::Allow,
    });
    group.bench_function(BenchmarkId::new("grant_and_revoke", n), |b| {
        b.iter(|| {
            authorizer.apply(std::slice::from_ref(&line), &[]).unwrap();
            authorizer.apply(&[], std::slice::from_ref(&line)).unwrap()
        })
    });
    group.finish();

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let enforcer = runtime.block_on(w.enforcer(false));
    let mut group = c.benchmark_group("authz/enforcer");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(if n >= 10_000 { 4 } else { 2 }));
    for (name, set) in [("check_allowed", &allowed), ("check_denied", &denied)] {
        let mut k = 0usize;
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                k = k.wrapping_add(1);
                let (s, d, o, a) = &set[k % set.len()].strings;
                enforcer
                    .enforce((s.as_str(), d.as_str(), o.as_str(), a.as_str()))
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// `AUTHZ_PROFILE=<what>:<tenants>`: only the index, for `valgrind --tool=callgrind` or
/// `--tool=cachegrind` (casbin would dominate any profile). `what` is `check` (100,000
/// allowed and denied checks with the roles read from the membership map), `is_allowed`
/// (the same without explanations), `grant` (500 grants and revokes), `time` (the
/// report's index timings alone: load, grant, revoke and the kinds of check) or `threads` (checks per second on one thread and on
/// `AUTHZ_THREADS`, default 2, at once).
fn profile(spec: &str) {
    let (what, tenants) = spec.split_once(':').expect("AUTHZ_PROFILE=<what>:<tenants>");
    let w = Workload::new(tenants.parse().expect("a number of tenants"));
    let start = Instant::now();
    let authorizer = w.authorizer();
    let load = start.elapsed();
    let requests = stream(&w, &authorizer, 20_000, 42);
    match what {
        "check" => profiled_checks(&authorizer, &w, &requests),
        "is_allowed" => profiled_decisions(&authorizer, &w, &requests),
        "grant" => {
            let mut rng = Rng(7);
            for _ in 0..500 {
                let line = PolicyLine::Permission(PolicyRule {
                    subject: "viewer".into(),
                    domain: Domain::Org(org(rng.below(w.tenants))),
                    object: "reports".into(),
                    action: "write".into(),
                    effect: Effect::Allow,
                });
                authorizer.apply(std::slice::from_ref(&line), &[]).unwrap();
                authorizer.apply(&[], std::slice::from_ref(&line)).unwrap();
            }
        }
        "time" => {
            // The index's own measurements of `report`, without casbin: p50 / p99 in ns.
            let (allowed, denied): (Vec<&Request>, Vec<&Request>) = requests.iter().partition(|r| r.allowed);
            let (mut check, mut decision, mut in_hand, mut floor) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for r in &requests {
                black_box(index_check(&authorizer, &w, r));
            }
            for k in 0..200_000 {
                let r = if k % 2 == 0 {
                    allowed[k % allowed.len()]
                } else {
                    denied[k % denied.len()]
                };
                let start = Instant::now();
                black_box(index_check(&authorizer, &w, r));
                check.push(start.elapsed());
                // Half the stream away, as in `report`: a request timed here was last
                // touched long ago, so no call warms another's data.
                let r = allowed[(k + allowed.len() / 2) % allowed.len()];
                let start = Instant::now();
                black_box(index_is_allowed(&authorizer, &w, r));
                decision.push(start.elapsed());
                let r = allowed[(k + allowed.len() / 3) % allowed.len()];
                let roles: Vec<RoleName> = w.memberships.get(&(r.org, r.user)).cloned().unwrap_or_default();
                let start = Instant::now();
                black_box(
                    authorizer
                        .check(&AccessRequest {
                            principal: &r.principal,
                            domain: Domain::Org(r.org),
                            roles: &roles,
                            object: r.object,
                            action: r.action,
                        })
                        .unwrap(),
                );
                in_hand.push(start.elapsed());
                let r = allowed[(k + 2 * allowed.len() / 3) % allowed.len()];
                let start = Instant::now();
                black_box(w.floor.get(&r.org));
                floor.push(start.elapsed());
            }
            let (grant, revoke) = grant_and_revoke(&authorizer, w.tenants);
            println!(
                "{tenants} tenants, load: {} ({} per line)",
                show(load),
                show(load / w.lines.len() as u32)
            );
            for (name, mut v) in [
                ("grant one line", grant),
                ("revoke one line", revoke),
                ("check, membership timed", check),
                ("is_allowed, allowed", decision),
                ("check, roles in hand, allowed", in_hand),
                ("memory floor (one hash-map read of per-tenant data)", floor),
            ] {
                v.sort();
                println!(
                    "{tenants} tenants, {name}: p50 {} p99 {}",
                    show(percentile(&v, 0.5)),
                    show(percentile(&v, 0.99))
                );
            }
        }
        "threads" => {
            // Checks per second with one thread and with AUTHZ_THREADS (default 2) at once,
            // each walking the stream from its own offset: explained checks, whose decisions
            // may share the index's names (reference counts every thread writes), and
            // `is_allowed`, which writes nothing shared.
            let threads: usize = std::env::var("AUTHZ_THREADS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2);
            for explained in [true, false] {
                for n in [1, threads] {
                    let total = std::sync::atomic::AtomicU64::new(0);
                    std::thread::scope(|s| {
                        for t in 0..n {
                            let (authorizer, w, requests, total) = (&authorizer, &w, &requests, &total);
                            s.spawn(move || {
                                let start = Instant::now();
                                let mut k = t * requests.len() / n;
                                let mut done = 0u64;
                                while start.elapsed() < Duration::from_secs(2) {
                                    for _ in 0..1000 {
                                        let r = &requests[k % requests.len()];
                                        if explained {
                                            black_box(index_check(authorizer, w, r));
                                        } else {
                                            black_box(index_is_allowed(authorizer, w, r));
                                        }
                                        k += 1;
                                    }
                                    done += 1000;
                                }
                                let rate = done as f64 / start.elapsed().as_secs_f64();
                                total.fetch_add(rate as u64, std::sync::atomic::Ordering::Relaxed);
                            });
                        }
                    });
                    println!(
                        "{tenants} tenants, {}, {n} thread(s): {:.2} M checks/s in all",
                        if explained { "check" } else { "is_allowed" },
                        total.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6
                    );
                }
            }
        }
        other => panic!("unknown AUTHZ_PROFILE {other}"),
    }
}

/// 100,000 checks with explanations; a function of its own so a profiler can select it
/// (`--toggle-collect=authz::profiled_checks`).
#[inline(never)]
fn profiled_checks(authorizer: &CasbinAuthorizer, w: &Workload, requests: &[Request]) {
    for k in 0..100_000 {
        black_box(index_check(authorizer, w, &requests[(k * 7919) % requests.len()]));
    }
}

/// 100,000 decisions without explanations (`is_allowed`).
#[inline(never)]
fn profiled_decisions(authorizer: &CasbinAuthorizer, w: &Workload, requests: &[Request]) {
    for k in 0..100_000 {
        black_box(index_is_allowed(authorizer, w, &requests[(k * 7919) % requests.len()]));
    }
}

fn main() {
    if let Ok(spec) = std::env::var("AUTHZ_PROBE") {
        probe(&spec);
        return;
    }
    if let Ok(spec) = std::env::var("AUTHZ_PROFILE") {
        profile(&spec);
        return;
    }
    let sizes: Vec<usize> = std::env::var("AUTHZ_TENANTS")
        .unwrap_or_else(|_| "100,1000,10000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut criterion = Criterion::default().configure_from_args();
    println!("## Authorization benchmark (custom measurements)");
    println!(
        "tenants' policies: {}",
        if distinct_tenants() {
            "distinct (AUTHZ_DISTINCT=1: one line of its own per tenant, nothing shared)"
        } else {
            "the shared workload's (identical but for the domain)"
        }
    );
    for n in sizes {
        let w = Workload::new(n);
        let authorizer = w.authorizer();
        let requests = stream(&w, &authorizer, 20_000, 42);
        report(&w, &authorizer, &requests);
        criterion_benches(&mut criterion, &w, &authorizer, &requests);
    }
    criterion.final_summary();
}
