//! Journeys in headless Chromium, driven through chromedriver (WebDriver, the `fantoccini`
//! crate) against the real server on loopback over SQLite with the demo data: sign in
//! with the keyboard, switch org, create a case and walk it to closed using only the
//! controls shown, the same with Tab, Enter and Space alone, a viewer sees no write
//! control, two approvers vote a quote to approved, an owner invites, edits a role, asks
//! who can approve, makes an API key (its secret shown once) and visits her sessions, the
//! audit log and the workflow definitions, and an owner grants support access on her
//! screen after which the support user finds why a member's request was refused from its
//! id (root cause, the decision with its reasons, the timeline), and a passkey, made by
//! a virtual authenticator in the browser, signs a member in with no password and answers
//! a password sign-in's second step.
//! Screenshots go to `docs/screens/`.
//!
//! Every screen a journey shows goes through [`World::screen`], which writes its
//! screenshot and checks it with axe-core (injected into the page through WebDriver):
//! any serious or critical violation fails the journey, naming the rule and the
//! elements. `every_screen_passes_axe_core` visits the screens no journey passes
//! through; a new screen is one line of its table.
//!
//! Without `chromium` and `chromedriver` on the `PATH` (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them) each journey says so and passes; without
//! `PORTAL_TEST_AXE_JS` (the path of axe-core's `axe.min.js`; `.ci/run` installs the npm
//! package and sets it) the journeys run and the accessibility checks say they are
//! skipped.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use portal_http::connect;
use portal_http::limiter::SignInLimit;
use portal_http::seed::{DEMO_PASSWORD, DemoData, seed_demo};
use serde_json::{Value, json};

use crate::common::{TestPortal, ada_joins_globex, call, config, token};

/// Whether a program answers `--version`.
fn present(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One journey's world: the real server on loopback, chromedriver and a browser session.
struct World {
    base: String,
    portal: TestPortal,
    browser: Client,
    _driver: Driver,
}

/// The server, chromedriver and a headless Chromium, or `None` (after saying why) when
/// Chromium or chromedriver is missing.
async fn world(journey: &str) -> Option<World> {
    world_on(journey, "127.0.0.1").await
}

/// [`world`], with the browser calling the server `host` (which resolves to loopback):
/// `localhost` where passkeys are used, since browsers bind passkeys to a domain name
/// and never to an IP address, and take plain `http` on `localhost` only.
async fn world_on(journey: &str, host: &str) -> Option<World> {
    if !present("chromedriver") || !(present("chromium") || present("chromium-browser")) {
        eprintln!(
            "skipping the browser journey `{journey}`: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{host}:{}", listener.local_addr().unwrap().port());
    let mut config = config("sqlite::memory:", false);
    config.http.sign_in_limit = SignInLimit {
        per_minute: NonZeroU32::new(600).unwrap(),
        burst: NonZeroU32::new(100).unwrap(),
    };
    if host == "localhost" {
        config.passkey_origin = base.clone();
    }
    let (api, background) = connect(&config).await.expect("connect");
    let demo: DemoData = seed_demo(&api).await.expect("seed");
    let app = example_axum_portal::app(api);
    let served = app.clone();
    tokio::spawn(async move {
        axum::serve(listener, served.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let browser = connect_browser(&driver.url).await;
    Some(World {
        base,
        portal: TestPortal { app, background, demo },
        browser,
        _driver: driver,
    })
}

/// A headless Chromium session, retrying while chromedriver starts.
async fn connect_browser(driver: &str) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"] }),
    );
    let mut last = None;
    for _ in 0..50 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(driver)
            .await
        {
            Ok(client) => return client,
            Err(err) => last = Some(err),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver did not start: {last:?}");
}

/// The variable naming axe-core's `axe.min.js`.
const AXE_JS_VAR: &str = "PORTAL_TEST_AXE_JS";

/// axe-core's script, read once from the file [`AXE_JS_VAR`] names; `None` (said once)
/// when the variable is unset. A set variable naming no readable file fails the test.
fn axe_source() -> Option<&'static str> {
    static SOURCE: OnceLock<Option<String>> = OnceLock::new();
    SOURCE
        .get_or_init(|| match std::env::var(AXE_JS_VAR) {
            Ok(path) => Some(std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{AXE_JS_VAR}={path}: {err}"))),
            Err(_) => {
                eprintln!(
                    "skipping the accessibility checks: {AXE_JS_VAR} is not set (.ci/run installs axe-core and sets it)"
                );
                None
            }
        })
        .as_deref()
}

/// Runs axe-core on the page and answers its serious and critical violations (rule,
/// impact, help, the elements' selectors), or one entry saying axe-core itself failed.
const RUN_AXE: &str = r#"
const done = arguments[arguments.length - 1];
window.axe.run(document, { resultTypes: ["violations"] }).then(
  (result) => done(result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({ rule: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")) }))),
  (err) => done([{ rule: "axe-core failed", impact: "critical", help: String(err), targets: [] }]));
"#;

impl World {
    /// The page as a screen of the portal: its screenshot in `docs/screens/<name>.png`,
    /// and axe-core's check (no serious or critical violation).
    async fn screen(&self, name: &str) {
        self.screenshot(name).await;
        self.accessible(name).await;
    }

    /// Checks the page with axe-core, injected through WebDriver (the page's own
    /// Content-Security-Policy does not apply to WebDriver's scripts): fails on any
    /// serious or critical violation, naming its rule and the elements.
    async fn accessible(&self, screen: &str) {
        let Some(axe) = axe_source() else {
            return;
        };
        let loaded = self
            .browser
            .execute("return typeof window.axe === 'object'", vec![])
            .await
            .unwrap();
        if loaded != Value::Bool(true) {
            self.browser
                .execute(&format!("{axe}\n;return true;"), vec![])
                .await
                .unwrap();
        }
        let found = self.browser.execute_async(RUN_AXE, vec![]).await.unwrap();
        let violations = found.as_array().cloned().unwrap_or_default();
        let shown: Vec<String> = violations
            .iter()
            .map(|v| format!("{} ({}): {} at {}", v["rule"], v["impact"], v["help"], v["targets"]))
            .collect();
        assert!(
            shown.is_empty(),
            "axe-core finds serious or critical violations on the screen `{screen}` ({}):\n{}",
            self.path().await,
            shown.join("\n")
        );
    }

    async fn go(&self, path: &str) {
        self.browser.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    async fn path(&self) -> String {
        self.browser.current_url().await.unwrap().path().to_owned()
    }

    async fn text(&self, css: &str) -> String {
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Clicks what submits a form or follows a link, then waits (up to 10 s) until the
    /// next page has replaced this one and finished loading: a click returns before the
    /// navigation it starts, and reading the old page then would race it.
    async fn click(&self, css: &str) {
        let page = self.browser.find(Locator::Css("html")).await.unwrap();
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.next_page(page, &format!("clicking {css}")).await;
    }

    /// Waits (up to 10 s) until `page` has been replaced by the next one and it has
    /// finished loading.
    async fn next_page(&self, page: Element, what: &str) {
        let mut replaced = false;
        for _ in 0..200 {
            if page.tag_name().await.is_err() {
                replaced = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(replaced, "{what} led to no new page within 10 s");
        for _ in 0..200 {
            let state = self
                .browser
                .execute("return document.readyState", vec![])
                .await
                .unwrap();
            if state == "complete" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the page after {what} did not finish loading within 10 s");
    }

    /// Presses `keys` on the element that has the focus, as a keyboard does.
    async fn press(&self, keys: &str) {
        self.browser
            .active_element()
            .await
            .unwrap()
            .send_keys(keys)
            .await
            .unwrap();
    }

    /// Presses `key` on the focused element and waits for the page it submits or opens.
    async fn press_to_next_page(&self, key: Key) {
        let page = self.browser.find(Locator::Css("html")).await.unwrap();
        self.press(&String::from(char::from(key))).await;
        self.next_page(page, &format!("pressing {key:?}")).await;
    }

    /// Presses Tab (at most 80 times) until the focus is on the element `css` matches,
    /// and checks the focus is visible there (an outline).
    async fn tab_to(&self, css: &str) {
        let tab = String::from(char::from(Key::Tab));
        for _ in 0..80 {
            let focused = self
                .browser
                .execute(
                    "const e = document.activeElement; return e !== null && e.matches(arguments[0])",
                    vec![json!(css)],
                )
                .await
                .unwrap();
            if focused == Value::Bool(true) {
                let outline = self
                    .browser
                    .execute("return getComputedStyle(document.activeElement).outlineStyle", vec![])
                    .await
                    .unwrap();
                assert_ne!(outline, "none", "the focus on {css} is not visible");
                return;
            }
            self.press(&tab).await;
        }
        panic!("80 presses of Tab did not reach {css}");
    }

    /// The `href` of the first link whose text is `text`.
    async fn link_to(&self, text: &str) -> String {
        let href = self
            .browser
            .execute(
                "const a = Array.from(document.querySelectorAll('a')).find(a => a.textContent.trim() === arguments[0]); return a ? a.getAttribute('href') : null",
                vec![json!(text)],
            )
            .await
            .unwrap();
        href.as_str()
            .unwrap_or_else(|| panic!("no link `{text}` on {}", "the page"))
            .to_owned()
    }

    /// Whether an element matches `css`.
    async fn has(&self, css: &str) -> bool {
        self.browser.find(Locator::Css(css)).await.is_ok()
    }

    /// Clicks what changes the page in place (a `<details>` summary), without waiting.
    async fn toggle(&self, css: &str) {
        self.browser
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.browser.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// The `action` of every form on the page that posts.
    async fn post_forms(&self) -> Vec<String> {
        let found = self
            .browser
            .execute(
                "return Array.from(document.querySelectorAll('form[method=post]')).map(f => f.getAttribute('action'))",
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(found).unwrap()
    }

    /// Signs in through the form with the keyboard only: type, Tab, type, Enter.
    async fn sign_in(&self, local: &str) {
        self.go("/sign-in").await;
        self.type_password(local).await;
        self.await_signed_in(local).await;
    }

    /// Types `local`'s email and password into the sign-in form shown, then Enter.
    async fn type_password(&self, local: &str) {
        let email = self.portal.demo.user(local).unwrap().email.clone();
        let field = self.browser.find(Locator::Id("email")).await.unwrap();
        field.send_keys(&format!("{email}\u{e004}")).await.unwrap();
        let active = self.browser.active_element().await.unwrap();
        active.send_keys(&format!("{DEMO_PASSWORD}\u{e007}")).await.unwrap();
    }

    /// Waits (up to 5 s) until the browser shows `path`.
    async fn await_path(&self, path: &str) {
        for _ in 0..50 {
            if self.path().await == path {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the browser is at {}, not {path}", self.path().await);
    }

    /// Waits (up to 5 s) until the browser has left the sign-in steps for a screen of
    /// `local`'s: signed in, it lands on the cases (or, in no org, the support console).
    async fn await_signed_in(&self, local: &str) {
        let left = ["/", "/cases", "/support"].map(|p| url::Url::parse(&format!("{}{p}", self.base)).unwrap());
        for _ in 0..50 {
            let now = self.browser.current_url().await.unwrap();
            if left.contains(&now) {
                let email = &self.portal.demo.user(local).unwrap().email;
                let who = self.text(".signout .who").await;
                assert!(who.contains(email.as_str()), "signed in as {local}, not {who}");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "signing in as {local} did not leave the sign-in steps: {} says {:?}",
            self.path().await,
            self.text("main").await
        );
    }

    async fn sign_out(&self) {
        self.click(".signout button").await;
    }

    /// Scrolls the element `css` matches to the top of the window, for the screenshot.
    async fn scroll_to(&self, css: &str) {
        self.browser
            .execute(
                "document.querySelector(arguments[0]).scrollIntoView()",
                vec![json!(css)],
            )
            .await
            .unwrap();
    }

    /// Writes a screenshot of the page to `docs/screens/<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.browser.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screens");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn end(self) {
        self.browser.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_signs_in_switches_org_and_walks_a_case_to_closed() {
    let Some(world) = world("sign in, switch org, walk a case to closed").await else {
        return;
    };
    ada_joins_globex(&world.portal).await;
    world.sign_in("ada").await;
    // In two orgs, the session works in none yet: the portal asks which.
    assert_eq!(world.path().await, "/");
    assert!(world.text("h1").await.contains("Choose an organization"));
    world.screen("choose-org").await;
    world.click(".choices li:first-child button").await;
    assert_eq!(world.path().await, "/cases");

    // The org switcher: globex's cases, then back to acme.
    let globex = world.portal.demo.globex.to_string();
    let select = world.browser.find(Locator::Id("org-switch")).await.unwrap();
    select.select_by_value(&globex).await.unwrap();
    world.click(".switcher button").await;
    assert!(world.text("table").await.contains("Invoices show the wrong VAT number"));
    let acme = world.portal.demo.acme.to_string();
    let select = world.browser.find(Locator::Id("org-switch")).await.unwrap();
    select.select_by_value(&acme).await.unwrap();
    world.click(".switcher button").await;
    assert!(world.text("table").await.contains("Two invoices for one order"));
    world.screen("cases").await;

    // A new case, walked to closed with the buttons and forms the page shows.
    world.type_into("#new-subject", "The portal in a browser").await;
    world.click("form[action='/workflows/new'] button").await;
    assert!(world.path().await.starts_with("/workflows/wf_"));
    assert_eq!(world.text("#state").await, "open");
    world.screen("case").await;
    world.type_into("#triage-priority", "high").await;
    world.click("#t-triage button").await;
    assert_eq!(world.text("#state").await, "triaged");
    let ada = world.portal.demo.user("ada").unwrap().id.to_string();
    let select = world.browser.find(Locator::Id("assignee-select")).await.unwrap();
    select.select_by_value(&ada).await.unwrap();
    world.click("#assign button").await;
    assert!(world.text("#assignee").await.contains("Ada Lovelace"));
    world.click("#t-start button").await;
    assert_eq!(world.text("#state").await, "in_progress");
    world.type_into("#resolve-resolution", "shipped").await;
    world.click("#t-resolve button").await;
    assert_eq!(world.text("#state").await, "resolved");
    // Closing ends the case: the button is behind a confirmation.
    world.toggle("#t-close summary").await;
    world.screen("confirm").await;
    world.click("#t-close button.danger").await;
    assert_eq!(world.text("#state").await, "closed");
    let forms = world.post_forms().await;
    assert!(
        forms.iter().all(|f| f == "/switch-org" || f == "/sign-out"),
        "a closed case offers no step: {forms:?}"
    );
    world.screen("case-closed").await;
    world.go("/members").await;
    assert!(world.text("table").await.contains("grace@acme.example"));
    world.screen("members").await;
    world.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_write_control() {
    let Some(world) = world("a viewer sees no write control").await else {
        return;
    };
    world.sign_in("linus").await;
    for section in ["/cases", "/returns", "/quotes"] {
        world.go(section).await;
        assert!(world.browser.find(Locator::Css("table")).await.is_ok(), "{section}");
        let forms = world.post_forms().await;
        assert_eq!(forms, vec!["/switch-org", "/sign-out"], "{section}: {forms:?}");
    }
    world.go("/cases").await;
    world.click("table tbody tr a").await;
    assert!(world.path().await.starts_with("/workflows/wf_"));
    let forms = world.post_forms().await;
    assert_eq!(forms, vec!["/switch-org", "/sign-out"], "the case page: {forms:?}");
    world.screen("viewer-case").await;
    let case = world.path().await;
    world.sign_out().await;
    assert_eq!(world.path().await, "/sign-in");
    // The case opened signed out (a link in a mail, say) asks for sign-in, then shows.
    world.go(&case).await;
    assert_eq!(world.path().await, "/sign-in");
    world.type_password("linus").await;
    world.await_path(&case).await;
    assert!(world.browser.find(Locator::Id("state")).await.is_ok(), "the case page");
    world.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_finds_why_a_request_was_refused_from_its_id() {
    let Some(world) = world("support finds the cause of a refused request").await else {
        return;
    };
    // A viewer's refused step, through the API: the problem carries the request id.
    let acme = world.portal.demo.acme.to_string();
    let linus = token(&world.portal, "linus").await;
    let list = call(
        &world.portal,
        &linus,
        Method::GET,
        &format!("/v1/orgs/{acme}/workflows?state=open"),
        None,
    )
    .await;
    let case = list["items"][0]["id"].as_str().unwrap().to_owned();
    let refused: Value = call(
        &world.portal,
        &linus,
        Method::POST,
        &format!("/v1/orgs/{acme}/workflows/{case}/transitions/triage"),
        Some(json!({ "input": { "priority": "low" } })),
    )
    .await;
    let request_id = refused["request_id"].as_str().expect("a problem").to_owned();

    world.sign_in("sam").await;
    world.go("/support").await;
    world.type_into("#org", &acme).await;
    world.type_into("#request", &request_id).await;
    world.click("form[action='/support'] button").await;
    let summary = world.text("#summary").await;
    assert!(!summary.is_empty());
    let cause = world.text("#root-cause").await;
    assert_ne!(cause, "—", "a root cause is named");
    assert!(world.text("table").await.contains(&request_id) || world.text("caption").await.contains(&request_id));
    world.screen("support").await;
    world.end().await;
}

/// The screens axe-core checks that no journey passes through, signed out and then
/// signed in as ada (acme's owner): a new screen is one more line here.
const SIGNED_OUT_SCREENS: &[(&str, &str)] = &[
    ("sign-in", "/sign-in"),
    ("forgot-password", "/forgot-password"),
    ("reset-password", "/reset-password?token=pst_from_a_mail"),
];
const SIGNED_IN_SCREENS: &[(&str, &str)] = &[
    ("returns", "/returns"),
    ("quotes", "/quotes"),
    ("cases-filtered", "/cases?state=resolved"),
    ("support-empty", "/support"),
    ("email-change", "/account/email"),
    ("passkeys-empty", "/account/passkeys"),
    ("authenticator", "/account/authenticator"),
    ("password-change", "/account/password"),
    ("organization", "/organization"),
    (
        "confirm-email-change",
        "/confirm-email-change?token=pec_0000000000000000000000000000000000000000000000000000000000",
    ),
    ("error", "/workflows/not-an-id"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_screen_passes_axe_core() {
    let Some(world) = world("every screen passes axe-core").await else {
        return;
    };
    for (name, path) in SIGNED_OUT_SCREENS {
        world.go(path).await;
        world.screen(name).await;
    }
    // A refused sign-in: the problem box and the marked field.
    world.go("/sign-in").await;
    world.type_into("#email", "ada@acme.example").await;
    world.type_into("#password", "not the password").await;
    world.click("form[action='/sign-in'] button").await;
    assert!(world.has(".problem").await, "a refused sign-in shows its problem");
    world.screen("sign-in-refused").await;
    // The mail-sent answer of a forgotten password.
    world.go("/forgot-password").await;
    world.type_into("#email", "nobody@example.com").await;
    world.click("form[action='/forgot-password'] button").await;
    assert!(world.text("h1").await.contains("Check your mail"));
    world.screen("password-mail-sent").await;

    world.sign_in("ada").await;
    for (name, path) in SIGNED_IN_SCREENS {
        world.go(path).await;
        world.screen(name).await;
    }
    world.go("/workflows/not-an-id").await;
    assert!(world.text("h1").await.contains("Something went wrong"));
    world.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_walked_to_closed_with_the_keyboard_alone() {
    let Some(world) = world("keyboard only: sign in and walk a case to closed").await else {
        return;
    };
    // Signing in types, presses Tab and Enter (World::sign_in); ada is in one org.
    world.sign_in("ada").await;
    assert_eq!(world.path().await, "/cases");
    let case = world.link_to("The export button does nothing").await;
    world.tab_to(&format!("a[href='{case}']")).await;
    world.press_to_next_page(Key::Enter).await;
    assert_eq!(world.path().await, case);
    assert_eq!(world.text("#state").await, "open");

    world.tab_to("#triage-priority").await;
    world.press("high").await;
    world.tab_to("#t-triage button").await;
    world.press_to_next_page(Key::Space).await;
    assert_eq!(world.text("#state").await, "triaged");

    // Only the assignee starts work: ada takes the case, choosing herself by typing.
    world.tab_to("#assignee-select").await;
    world.press("Ada").await;
    world.tab_to("#assign button").await;
    world.press_to_next_page(Key::Enter).await;
    assert!(world.text("#assignee").await.contains("Ada Lovelace"));

    world.tab_to("#t-start button").await;
    world.press_to_next_page(Key::Enter).await;
    assert_eq!(world.text("#state").await, "in_progress");

    world.tab_to("#resolve-resolution").await;
    world.press("fixed with the keyboard").await;
    world.tab_to("#t-resolve button").await;
    world.press_to_next_page(Key::Space).await;
    assert_eq!(world.text("#state").await, "resolved");

    // The confirmation: Enter opens the disclosure, Space confirms.
    world.tab_to("#t-close summary").await;
    world.press(&String::from(char::from(Key::Enter))).await;
    world.tab_to("#t-close button.danger").await;
    world.screen("confirm-keyboard").await;
    world.press_to_next_page(Key::Space).await;
    assert_eq!(world.text("#state").await, "closed");
    world.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvers_vote_and_the_quote_is_approved() {
    let Some(world) = world("approvers vote a quote to approved").await else {
        return;
    };
    // grace (a member) submits the seeded draft; she may not approve her own quote.
    world.sign_in("grace").await;
    world.go("/quotes").await;
    world.screen("quotes").await;
    let quote = world.link_to("Initech").await;
    world.go(&quote).await;
    assert_eq!(world.text("#state").await, "draft");
    world.click("#t-submit button").await;
    assert_eq!(world.text("#state").await, "pending_approval");
    assert!(!world.has("#t-approve").await, "the requester is offered no vote");
    world.sign_out().await;

    // Two approvals are needed: ada's vote leaves the quote pending, alan's approves it.
    world.sign_in("ada").await;
    world.go(&quote).await;
    world.screen("quote-vote").await;
    world.click("#t-approve button[value='approve']").await;
    assert_eq!(world.text("#state").await, "pending_approval");
    assert!(world.text("table").await.contains("vote"), "the vote is in the history");
    world.sign_out().await;

    world.sign_in("alan").await;
    world.go(&quote).await;
    world.click("#t-approve button[value='approve']").await;
    assert_eq!(world.text("#state").await, "approved");
    world.screen("quote-approved").await;
    world.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_finds_the_cause_once_the_owner_grants_access_on_her_screen() {
    let Some(world) = world("an owner grants support access; support finds the cause").await else {
        return;
    };
    // barbara (a globex member) may not invite: a refused request in globex, its id on
    // the problem she is shown.
    let globex = world.portal.demo.globex;
    let barbara = token(&world.portal, "barbara").await;
    let refused = call(
        &world.portal,
        &barbara,
        Method::POST,
        &format!("/v1/orgs/{globex}/invitations"),
        Some(json!({ "email": "someone@globex.example", "roles": ["member"] })),
    )
    .await;
    assert_eq!(refused["code"], "access.denied", "{refused}");
    let request_id = refused["request_id"].as_str().expect("a problem").to_owned();

    // sam holds no grant in globex: the org is not found, as any org he cannot reach.
    world.sign_in("sam").await;
    assert_eq!(world.path().await, "/support");
    world.type_into("#org", &globex.to_string()).await;
    world.type_into("#request", &request_id).await;
    world.click("form[action='/support'] button").await;
    assert!(world.has(".problem").await, "without a grant, a problem");
    assert!(!world.has("#root-cause").await, "without a grant, no explanation");
    world.screen("support-no-grant").await;
    world.sign_out().await;

    // hedy, globex's owner, grants sam read-only access on her support-access screen.
    let sam = world.portal.demo.user("sam").unwrap().id.to_string();
    world.sign_in("hedy").await;
    world.go("/support-access").await;
    world.type_into("#grant-staff", &sam).await;
    world.type_into("#grant-reason", "case 4711: invitations fail").await;
    world
        .browser
        .find(Locator::Id("grant-access"))
        .await
        .unwrap()
        .select_by_value("read_only")
        .await
        .unwrap();
    world.type_into("#grant-hours", "2").await;
    world.click("#grant button").await;
    assert_eq!(world.path().await, "/support-access");
    let grants = world.text("table").await;
    assert!(
        grants.contains("case 4711: invitations fail") && grants.contains(&sam),
        "{grants}"
    );
    world.screen("support-access").await;
    world.sign_out().await;

    // sam looks the request up again: the explanation names the cause, the decision with
    // its reasons (the roles held, what would have granted it), and the timeline.
    world.sign_in("sam").await;
    world.type_into("#org", &globex.to_string()).await;
    world.type_into("#request", &request_id).await;
    world.click("form[action='/support'] button").await;
    assert!(!world.has(".problem").await, "with the grant, no problem");
    assert_eq!(world.text("#root-cause").await, "access.denied");
    let evidence = world.text("#evidence").await;
    assert!(
        evidence.contains("permission_denial") && evidence.contains("would_grant") && evidence.contains("member"),
        "the decision and its reasons: {evidence}"
    );
    let timeline = world.text("table").await;
    assert!(
        timeline.contains("access"),
        "the timeline shows the refused check: {timeline}"
    );
    world.screen("support-granted").await;
    world.sign_out().await;

    // hedy sees what sam looked at.
    world.sign_in("hedy").await;
    world.go("/support-access").await;
    let views = world.text("#staff-views").await;
    assert!(views.contains(&sam), "sam's views are listed: {views}");
    world.screen("support-access-views").await;
    world.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_administers_her_org_on_every_admin_screen() {
    let Some(world) = world("an owner invites, edits roles, asks who can, makes a key").await else {
        return;
    };
    world.sign_in("ada").await;

    // Invitations: the token is shown once, on the answer to the form.
    world.go("/invitations").await;
    world.type_into("#invite-email", "new.hire@acme.example").await;
    world
        .browser
        .find(Locator::Id("invite-roles"))
        .await
        .unwrap()
        .select_by_value("viewer")
        .await
        .unwrap();
    world.click("#invite button").await;
    assert!(world.text("#secret").await.contains("new.hire@acme.example"));
    world.screen("invitations").await;
    world.go("/invitations").await;
    assert!(!world.has("#secret").await, "the token is shown once");
    assert!(world.text("table").await.contains("new.hire@acme.example"));

    // Roles: create one, edit it, ask who can approve quotes and what a member can do.
    world.go("/roles").await;
    world.type_into("#role-name", "report-readers").await;
    world.type_into("#role-permissions", "reports read").await;
    world.click("#new-role button").await;
    assert!(world.has("#edit-report-readers").await, "the role has its edit form");
    world.toggle("#edit-report-readers summary").await;
    world
        .type_into("#edit-report-readers-permissions", "reports read\nreports export")
        .await;
    world.click("#edit-report-readers button").await;
    assert_eq!(world.path().await, "/roles");
    assert!(
        world.text("table").await.contains("reports export"),
        "the edit is saved"
    );
    world.type_into("#who-object", "quotes/*").await;
    world.type_into("#who-action", "approve").await;
    world.click("#who-can-form button").await;
    let who = world.text("#who-can-table").await;
    assert!(who.contains("Ada Lovelace") && who.contains("Alan Turing"), "{who}");
    assert!(!who.contains("Linus Torvalds"), "{who}");
    world.scroll_to("#who-can").await;
    world.screen("roles").await;
    let linus = world.portal.demo.user("linus").unwrap().id.to_string();
    world
        .browser
        .find(Locator::Id("member-select"))
        .await
        .unwrap()
        .select_by_value(&linus)
        .await
        .unwrap();
    world.click("#member-form button").await;
    assert!(world.text("#member-rules caption").await.contains("Linus Torvalds"));
    world.scroll_to("#member-can").await;
    world.screen("roles-member").await;

    // API keys: the secret is shown once.
    world.go("/api-keys").await;
    world.type_into("#key-name", "nightly export").await;
    world.type_into("#key-scopes", "cases/* read").await;
    world.type_into("#key-days", "7").await;
    world.click("#new-key button").await;
    let secret = world.text("#secret code").await;
    assert!(!secret.is_empty(), "the secret is shown");
    world.screen("api-key-created").await;
    world.go("/api-keys").await;
    assert!(!world.has("#secret").await, "the secret is shown once");
    let keys = world.text("table").await;
    assert!(keys.contains("nightly export") && !keys.contains(&secret), "{keys}");
    world.screen("api-keys").await;

    // Sessions, the audit log (filtered) and the workflow definitions.
    world.go("/sessions").await;
    assert!(world.text("table").await.contains("(this one)"));
    world.screen("sessions").await;
    world.go("/audit").await;
    world.type_into("#audit-action", "invitation.created").await;
    world.click("#audit-filters button").await;
    assert!(world.text("table").await.contains("invitation.created"));
    world.screen("audit").await;
    // Webhooks: an endpoint made with the form, its signing secret shown once.
    world.go("/webhooks").await;
    world.type_into("#hook-url", "https://hooks.example.com/x").await;
    world.type_into("#hook-description", "CRM sync").await;
    world.toggle("input[name='event.member.added']").await;
    world.click("#new-endpoint button").await;
    let signing = world.text("#secret code").await;
    assert!(signing.starts_with("whsec_"), "the signing secret is shown: {signing}");
    world.go("/webhooks").await;
    assert!(!world.has("#secret").await, "the signing secret is shown once");
    let endpoints = world.text("table").await;
    assert!(
        endpoints.contains("https://hooks.example.com/x")
            && endpoints.contains("member.added")
            && !endpoints.contains(&signing),
        "{endpoints}"
    );
    world.screen("webhooks").await;
    world.go("/definitions").await;
    world.toggle("main details summary").await;
    assert!(
        world.text("main details pre").await.contains("stateDiagram"),
        "the Mermaid text"
    );
    world.screen("definitions").await;
    world.end().await;
}

/// WebDriver's WebAuthn extension: a virtual CTAP2 authenticator in the browser, built in
/// (so a user handle and discoverable credentials), that verifies its user every time.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        (Method::POST, Some(body.to_string()))
    }
}

/// A passkey on the pages, in Chromium with a virtual authenticator: grace, signed in
/// with her password, adds one on her passkeys screen (the page's script asks the API for
/// the registration with her password, and the browser's authenticator makes it); the
/// sign-in page's passkey button then signs her in with no password; a password sign-in
/// now asks for a second factor, which the step's passkey button answers (she has no TOTP
/// factor, so no code form is offered); she removes the passkey, proving herself with it
/// (no code to type), and it signs nobody in any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_adds_a_passkey_signs_in_with_it_and_removes_it_on_the_pages() {
    let Some(world) = world_on("a passkey on the pages", "localhost").await else {
        return;
    };
    world.browser.issue_cmd(AddVirtualAuthenticator).await.unwrap();
    world.sign_in("grace").await;
    world.go("/account/passkeys").await;
    assert!(world.text("main").await.contains("No passkeys yet"));
    let add = "form[action='/account/passkeys']";
    assert!(
        world
            .browser
            .find(Locator::Css(add))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "the script shows the form in a browser that has passkeys"
    );
    world.type_into("#passkey-name", "Chromium").await;
    world.type_into("#passkey-password", DEMO_PASSWORD).await;
    world.click(&format!("{add} button")).await;
    assert_eq!(world.path().await, "/account/passkeys");
    let listed = world.text("table").await;
    assert!(listed.contains("Chromium") && listed.contains("never"), "{listed}");
    world.screen("passkeys").await;
    world.sign_out().await;

    world.go("/sign-in").await;
    let passkey_form = "form[action='/sign-in/passkey']";
    world.screen("sign-in-passkey").await;
    world.click(&format!("{passkey_form} button")).await;
    world.await_signed_in("grace").await;
    world.sign_out().await;

    world.go("/sign-in").await;
    let email = world.portal.demo.user("grace").unwrap().email.clone();
    world.type_into("#email", &email).await;
    world.type_into("#password", DEMO_PASSWORD).await;
    world.click("form[action='/sign-in'] button").await;
    assert_eq!(world.text("h1").await, "Second factor");
    let step = "form[action='/sign-in/mfa/passkey']";
    assert!(
        world
            .browser
            .find(Locator::Css(step))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "the step offers the passkey"
    );
    assert!(
        !world.has("form[action='/sign-in/mfa']").await,
        "and no code form: grace has no TOTP factor"
    );
    assert!(
        !world
            .browser
            .find(Locator::Css("[data-passkey-fallback]"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap(),
        "the note for browsers without passkeys is hidden"
    );
    world.screen("sign-in-passkey-step").await;
    world.click(&format!("{step} button")).await;
    world.await_signed_in("grace").await;

    world.go("/account/passkeys").await;
    assert!(world.text("table").await.contains("Chromium"), "its last use is shown");
    world.toggle("form[action$='/remove'] summary").await;
    world.type_into("#remove-password-1", DEMO_PASSWORD).await;
    world.click("form[action$='/remove'] button").await;
    assert_eq!(world.path().await, "/account/passkeys");
    assert!(
        world.text("main").await.contains("No passkeys yet"),
        "removed, with her passkey's answer as the fresh factor: {}",
        world.text("main").await
    );
    world.sign_out().await;
    world.go("/sign-in").await;
    world.click(&format!("{passkey_form} button")).await;
    assert!(
        world.text("#problem").await.contains("auth.passkey_refused"),
        "a removed passkey signs nobody in: {}",
        world.text("main").await
    );
    world.end().await;
}

/// An owner sets up an authenticator app: her password answers the QR code (drawn inline,
/// at least 200 pixels wide, and described for screen readers) and the key, and the form
/// for the app's first code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_is_shown_the_qr_code_of_her_authenticator_app() {
    let Some(world) = world("authenticator setup").await else {
        return;
    };
    world.sign_in("ada").await;
    world.go("/account/authenticator").await;
    world.type_into("#setup-password", DEMO_PASSWORD).await;
    world.click("form[action='/account/authenticator/setup'] button").await;
    let qr = world.browser.find(Locator::Css(".qr svg")).await.unwrap();
    let (_, _, width, _) = qr.rectangle().await.unwrap();
    assert!(width >= 200.0, "the QR code is drawn, {width} pixels wide");
    assert!(world.has("form[action='/account/authenticator/confirm']").await);
    world.screen("authenticator-setup").await;
    world.end().await;
}
