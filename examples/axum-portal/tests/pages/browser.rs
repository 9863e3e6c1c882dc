//! Journeys in headless Chromium, driven through chromedriver (WebDriver, the `fantoccini`
//! crate) against the real server on loopback over SQLite with the demo data: sign in
//! with the keyboard, switch org, create a case and walk it to closed using only the
//! controls shown, a viewer sees no write control, and the support user finds why a
//! request was refused from its id. Screenshots go to `docs/screens/`.
//!
//! Without `chromium` and `chromedriver` on the `PATH` (Debian's `chromium` and
//! `chromium-driver`; `.ci/run` installs them) each journey says so and passes.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::Method;
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
    if !present("chromedriver") || !(present("chromium") || present("chromium-browser")) {
        eprintln!(
            "skipping the browser journey `{journey}`: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let mut config = config("sqlite::memory:", false);
    config.http.sign_in_limit = SignInLimit {
        per_minute: NonZeroU32::new(600).unwrap(),
        burst: NonZeroU32::new(100).unwrap(),
    };
    let (api, background) = connect(&config).await.expect("connect");
    let demo: DemoData = seed_demo(&api).await.expect("seed");
    let app = example_axum_portal::app(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
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
        base: format!("http://{address}"),
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

impl World {
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
        let mut replaced = false;
        for _ in 0..200 {
            if page.tag_name().await.is_err() {
                replaced = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(replaced, "clicking {css} led to no new page within 10 s");
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
        panic!("the page after clicking {css} did not finish loading within 10 s");
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
        let email = self.portal.demo.user(local).unwrap().email.clone();
        let field = self.browser.find(Locator::Id("email")).await.unwrap();
        field.send_keys(&format!("{email}\u{e004}")).await.unwrap();
        let active = self.browser.active_element().await.unwrap();
        active.send_keys(&format!("{DEMO_PASSWORD}\u{e007}")).await.unwrap();
        // Signed in, the browser lands on the cases (or, in no org, the support console).
        let left = ["/", "/cases", "/support"].map(|p| url::Url::parse(&format!("{}{p}", self.base)).unwrap());
        for _ in 0..50 {
            let now = self.browser.current_url().await.unwrap();
            if left.contains(&now) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("signing in as {local} did not leave the form");
    }

    async fn sign_out(&self) {
        self.click(".signout button").await;
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
    world.screenshot("choose-org").await;
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
    world.screenshot("cases").await;

    // A new case, walked to closed with the buttons and forms the page shows.
    world.type_into("#new-subject", "The portal in a browser").await;
    world.click("form[action='/workflows/new'] button").await;
    assert!(world.path().await.starts_with("/workflows/wf_"));
    assert_eq!(world.text("#state").await, "open");
    world.screenshot("case").await;
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
    world.screenshot("confirm").await;
    world.click("#t-close button.danger").await;
    assert_eq!(world.text("#state").await, "closed");
    let forms = world.post_forms().await;
    assert!(
        forms.iter().all(|f| f == "/switch-org" || f == "/sign-out"),
        "a closed case offers no step: {forms:?}"
    );
    world.screenshot("case-closed").await;
    world.go("/members").await;
    assert!(world.text("table").await.contains("grace@acme.example"));
    world.screenshot("members").await;
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
    world.screenshot("viewer-case").await;
    world.sign_out().await;
    assert_eq!(world.path().await, "/sign-in");
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
    world.screenshot("support").await;
    world.end().await;
}
