//! Unit tests of the webhook values: URL rules, event-type filters, secrets, the retry
//! schedule, and signatures checked by the independent `standardwebhooks` crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use super::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header};
use super::*;

fn open() -> UrlPolicy {
    UrlPolicy::default()
}

fn loopback_allowed() -> UrlPolicy {
    UrlPolicy {
        allowed_hosts: vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
    }
}

/// Every refused URL is `validation.invalid_field` naming `url`, for each rule.
#[test]
fn endpoint_urls_follow_the_rules() {
    for good in [
        "https://hooks.example.com/portal",
        "https://hooks.example.com:8443/a?b=c",
        "https://203.0.114.9/x",
    ] {
        assert!(EndpointUrl::parse(good, &open()).is_ok(), "{good}");
    }
    let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
    for bad in [
        "http://hooks.example.com/portal",
        "ftp://hooks.example.com/",
        "https://user:pw@hooks.example.com/",
        "https://user@hooks.example.com/",
        "https://hooks.example.com/#frag",
        "https://127.0.0.1/",
        "https://10.1.2.3/",
        "https://192.168.0.1/",
        "https://172.16.5.5/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost/",
        "https://a.localhost/",
        "https://intranet/",
        "https://0.0.0.0/",
        "not a url",
        long.as_str(),
    ] {
        let err = EndpointUrl::parse(bad, &open()).expect_err(bad);
        assert_eq!(err.code(), ErrorCode::InvalidField, "{bad}");
        assert_eq!(err.param(), Some("url"), "{bad}");
    }
}

/// A host the policy allows may use plain http and a loopback address; others may not.
#[test]
fn allowed_hosts_may_be_loopback_over_http() {
    assert!(EndpointUrl::parse("http://127.0.0.1:8080/hook", &loopback_allowed()).is_ok());
    assert!(EndpointUrl::parse("http://localhost:8080/hook", &loopback_allowed()).is_ok());
    assert!(EndpointUrl::parse("http://127.0.0.2:8080/hook", &loopback_allowed()).is_err());
    assert!(EndpointUrl::parse("http://127.0.0.1:8080/hook", &open()).is_err());
}

/// The Debug form of a URL leaves out its query (which may hold a token).
#[test]
fn url_debug_hides_the_query() {
    let url = EndpointUrl::parse("https://hooks.example.com/p?token=s3cret", &open()).unwrap();
    assert!(!format!("{url:?}").contains("s3cret"));
}

#[test]
fn forbidden_addresses_are_recognised() {
    for ip in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(Ipv4Addr::new(100, 64, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 0, 1)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
    ] {
        assert!(is_forbidden_ip(ip), "{ip}");
    }
    for ip in [
        IpAddr::V4(Ipv4Addr::new(93, 184, 215, 14)),
        IpAddr::V6(Ipv6Addr::new(0x2606, 0x4700, 0, 0, 0, 0, 0, 1)),
    ] {
        assert!(!is_forbidden_ip(ip), "{ip}");
    }
}

/// Filters take catalog actions and the host's own, name the offending index, and refuse
/// more than the maximum.
#[test]
fn event_type_filters_are_checked_against_the_catalog() {
    let extra = [AuditAction::new("invoice.paid").unwrap()];
    let ok = EventTypes::parse(
        &[
            "member.removed".to_owned(),
            "invoice.paid".to_owned(),
            "member.removed".to_owned(),
        ],
        &extra,
    )
    .unwrap();
    assert_eq!(ok.names(), ["invoice.paid", "member.removed"]);
    assert!(ok.matches(&AuditAction::new("member.removed").unwrap()));
    assert!(!ok.matches(&AuditAction::new("member.added").unwrap()));
    assert!(EventTypes::default().matches(&AuditAction::new("member.added").unwrap()));

    let unknown = EventTypes::parse(&["member.removed".to_owned(), "invoice.void".to_owned()], &extra).unwrap_err();
    assert_eq!(unknown.param(), Some("event_types/1"));
    let malformed = EventTypes::parse(&["Nope".to_owned()], &extra).unwrap_err();
    assert_eq!(malformed.param(), Some("event_types/0"));
    let many = vec!["member.removed".to_owned(); MAX_EVENT_TYPES + 1];
    assert_eq!(
        EventTypes::parse(&many, &extra).unwrap_err().param(),
        Some("event_types")
    );
}

/// A secret is shown as `whsec_` and base64, reads back equal, and never shows in Debug.
#[test]
fn secrets_round_trip_and_stay_out_of_debug() {
    let secret = WebhookSecret::generate().unwrap();
    let text = secret.to_text();
    assert!(text.expose_secret().starts_with(SECRET_PREFIX));
    assert_eq!(WebhookSecret::from_text(&text).unwrap(), secret);
    assert!(!format!("{secret:?}").contains(&text.expose_secret()[6..]));
    assert_ne!(WebhookSecret::generate().unwrap(), secret);
    for bad in ["whsec_", "whsec_!!", "sk_abc", "whsec_YWJj"] {
        let err = WebhookSecret::from_text(&SecretString::from(bad)).unwrap_err();
        assert_eq!(err.param(), Some("secret"), "{bad}");
    }
}

/// The schedule retries nine times over about three days, jitter within ±20%.
#[test]
fn the_retry_schedule_spans_about_three_days() {
    let total: Duration = RETRY_SCHEDULE.iter().copied().sum();
    assert!(total > Duration::hours(70) && total < Duration::hours(74), "{total}");
    assert_eq!(retry_delay(0, 0.5), None);
    assert_eq!(retry_delay(1, 0.5), Some(Duration::seconds(5)));
    assert_eq!(retry_delay(1, 0.0), Some(Duration::seconds(4)));
    assert_eq!(retry_delay(1, 1.0), Some(Duration::seconds(6)));
    assert_eq!(retry_delay(10, 0.5), None);
}

fn headers(id: &str, timestamp: i64, signature: &str) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    map.insert(HEADER_ID, id.parse().unwrap());
    map.insert(HEADER_TIMESTAMP, timestamp.to_string().parse().unwrap());
    map.insert(HEADER_SIGNATURE, signature.parse().unwrap());
    map
}

proptest! {
    /// The independent `standardwebhooks` crate verifies every signature we write, under
    /// the current secret and, while a rotation window is open, the previous one; and
    /// refuses it under another secret or another body.
    #[test]
    fn standardwebhooks_verifies_our_signatures(text in "\\PC{0,256}", rotated in any::<bool>()) {
        // Bodies are JSON, so UTF-8 (the verifier refuses anything else).
        let body = text.into_bytes();
        let current = WebhookSecret::generate().unwrap();
        let previous = WebhookSecret::generate().unwrap();
        let stranger = WebhookSecret::generate().unwrap();
        let signers: Vec<&WebhookSecret> = if rotated { vec![&current, &previous] } else { vec![&current] };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let id = "msg_01jd5x8y6kf3w9q2m7c4t0vbnr";
        let header = signature_header(&signers, id, now, &body);
        prop_assert_eq!(header.split(' ').count(), signers.len());
        let map = headers(id, now, &header);
        for secret in &signers {
            let verifier = standardwebhooks::Webhook::new(secret.to_text().expose_secret()).unwrap();
            prop_assert!(verifier.verify(&body, &map).is_ok());
        }
        let outsider = standardwebhooks::Webhook::new(stranger.to_text().expose_secret()).unwrap();
        prop_assert!(outsider.verify(&body, &map).is_err());
        let verifier = standardwebhooks::Webhook::new(current.to_text().expose_secret()).unwrap();
        let mut tampered = body.clone();
        tampered.push(b'x');
        prop_assert!(verifier.verify(&tampered, &map).is_err());
    }
}

/// Excerpts are cut on a character boundary at most `MAX_EXCERPT` bytes long.
#[test]
fn excerpts_are_bounded() {
    let text = "é".repeat(MAX_EXCERPT);
    let cut = excerpt(&text);
    assert!(cut.len() <= MAX_EXCERPT && cut.len() >= MAX_EXCERPT - 1);
    assert_eq!(excerpt("short"), "short");
}
