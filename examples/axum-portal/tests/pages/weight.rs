//! Page weight: every screen, with the stylesheet and the script it loads, stays under
//! 100 KB (there are no images), measured in bytes over the demo data.

use axum::http::StatusCode;

use crate::common::{Client, portal};

/// The most a screen may weigh with its stylesheet and script.
const MAX_PAGE_BYTES: usize = 100 * 1024;

/// Every screen of the demo, signed out and signed in as acme's owner, weighs at most
/// 100 KB with its assets.
#[tokio::test]
async fn every_screen_weighs_under_100_kb_with_its_assets() {
    let portal = portal().await;
    let mut client = Client::new(&portal);
    let css = client.get("/assets/app.css").await.body.len();
    let js = client.get("/assets/app.js").await.body.len();
    let weigh = async |client: &mut Client, path: &str| {
        let page = client.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        let bytes = page.body.len() + css + js;
        assert!(
            bytes <= MAX_PAGE_BYTES,
            "{path} weighs {bytes} bytes with its assets, over {MAX_PAGE_BYTES}"
        );
        assert!(page.body.contains("/assets/app.css"), "{path} loads the stylesheet");
    };
    weigh(&mut client, "/sign-in").await;
    weigh(&mut client, "/forgot-password").await;
    client.sign_in(&portal, "ada").await;
    let cases = client.get("/cases").await;
    let case = regex::Regex::new(r##"href="(/workflows/wf_[^"#]+)""##)
        .unwrap()
        .captures(&cases.body)
        .expect("a case")[1]
        .to_owned();
    for path in [
        "/cases",
        "/returns",
        "/quotes",
        "/members",
        "/support",
        "/webhooks",
        "/account/passkeys",
        "/account/authenticator",
        "/account/password",
        case.as_str(),
    ] {
        weigh(&mut client, path).await;
    }
}
