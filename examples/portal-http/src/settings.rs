//! A reference server's settings from the environment and its start-up banner, shared by
//! the axum and actix-web servers so both read the same variables the same way.

use std::fmt::Write as _;
use std::net::IpAddr;

use portal_adapters::mail::{SmtpConfig, SmtpSecurity};
use portal_auth::identity::SignUpPolicy;
use portal_auth::jwt::SigningAlgorithm;

use crate::bearer::{BearerSettings, JwksLocation, check_jwks_url};
use crate::seed::{DEMO_PASSWORD, DemoData};
use crate::{MailSettings, PortalConfig};

/// What a reference server reads from its environment.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `DATABASE_URL` | `sqlite://<temp dir>/<demo file>` | `sqlite://…` or `postgres://…`; migrated at start |
/// | `BIND` | `127.0.0.1` | the address to listen on |
/// | `PORT` | the server's own | the port to listen on |
/// | `COOKIE_SECURE` | `true` unless `BIND` is a loopback address | mark cookies `Secure` and name them `__Host-portal_session`, `__Host-portal_csrf` |
/// | `PORTAL_SEED` | `true` on SQLite, `false` on Postgres | make the demo data (idempotent); set `1` to seed a Postgres database |
/// | `HASH_CONCURRENCY` | the number of cores | password hashes run at once; past it, after a short wait, sign-in answers `503 service.busy` |
/// | `TRUSTED_PROXIES` | none | comma-separated addresses or networks (`10.0.0.0/8`) of the host's reverse proxies: behind one, the client address is the right-most `X-Forwarded-For` entry that is not a trusted proxy |
/// | `SIGN_UP` | `invitation` | who may sign up by asking: `invitation` (nobody: accounts come with invitations), `open` (anyone), or `domains` (addresses at the domains of `SIGN_UP_DOMAINS`) |
/// | `SIGN_UP_DOMAINS` | none | with `SIGN_UP=domains`: comma-separated `domain=org_id` claims, such as `acme.example=org_…`; a new user of a claimed domain joins that org as `member`. The host asserts each claim (see `docs/identity.md`) |
/// | `WEBHOOK_DELIVERY` | `true` | run the webhook delivery worker beside the API (one per replica; on Postgres they share the work) |
/// | `WEBHOOK_ALLOWED_HOSTS` | none | comma-separated hosts webhook endpoints may name beyond the public internet (plain `http`, loopback or private addresses), such as `127.0.0.1` for a local receiver |
/// | `JWT_ISSUER` | none (no bearer JWTs) | accept OIDC/JWT bearer tokens whose `iss` is exactly this; needs `JWT_AUDIENCE` and one of `JWT_JWKS_URL`, `JWT_JWKS_FILE` |
/// | `JWT_AUDIENCE` | none | comma-separated audiences; a token's `aud` must name one |
/// | `JWT_JWKS_URL` | none | the provider's `jwks_uri` (`https://`, or `http://` on a loopback host), fetched at the first token and on refresh |
/// | `JWT_JWKS_FILE` | none | a JSON Web Key Set file, read at start |
/// | `JWT_ALGORITHMS` | `RS256,ES256` | comma-separated signature algorithms (RS256/384/512, PS256/384/512, ES256, ES384, EdDSA) |
/// | `JWT_PROVISION` | `true` | create a user at the first token of an unknown subject with a verified email (just in time) |
#[derive(Debug)]
pub struct ServerSettings {
    /// The portal's configuration (database URL, cookie flags; events also traced).
    pub config: PortalConfig,
    /// The address to listen on.
    pub bind: IpAddr,
    /// The port to listen on.
    pub port: u16,
    /// Whether to make (or find) the demo data at start.
    pub seed: bool,
}

/// A setting the environment holds but the server cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{variable} {problem}, not `{value}`")]
pub struct SettingsError {
    /// The variable.
    pub variable: &'static str,
    /// What it should be.
    pub problem: &'static str,
    /// What it was.
    pub value: String,
}

impl ServerSettings {
    /// Reads the settings from the process environment; `demo_file` names the default
    /// SQLite file in the temporary directory and `default_port` the port.
    ///
    /// # Errors
    ///
    /// [`SettingsError`] naming the variable that does not parse.
    pub fn from_env(demo_file: &str, default_port: u16) -> Result<Self, SettingsError> {
        Self::from_lookup(demo_file, default_port, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any lookup of variables (tests pass a map).
    ///
    /// # Errors
    ///
    /// [`SettingsError`] naming the variable that does not parse.
    pub fn from_lookup(
        demo_file: &str,
        default_port: u16,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let database_url = lookup("DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}", std::env::temp_dir().join(demo_file).display()));
        let bind = match lookup("BIND") {
            Some(value) => value.parse().map_err(|_| SettingsError {
                variable: "BIND",
                problem: "must be an IP address",
                value,
            })?,
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let port = match lookup("PORT") {
            Some(value) => value.parse().map_err(|_| SettingsError {
                variable: "PORT",
                problem: "must be a port number",
                value,
            })?,
            None => default_port,
        };
        let flag = |variable: &'static str, default: bool| -> Result<bool, SettingsError> {
            match lookup(variable) {
                None => Ok(default),
                Some(value) => match value.as_str() {
                    "1" | "true" | "yes" => Ok(true),
                    "0" | "false" | "no" => Ok(false),
                    _ => Err(SettingsError {
                        variable,
                        problem: "must be true or false",
                        value,
                    }),
                },
            }
        };
        let mut config = PortalConfig::new(database_url);
        // Plain-HTTP cookies only where nothing but this machine can connect.
        config.http.cookie_secure = flag("COOKIE_SECURE", !bind.is_loopback())?;
        if let Some(value) = lookup("TRUSTED_PROXIES") {
            config.http.trusted_proxies = value.parse().map_err(|_| SettingsError {
                variable: "TRUSTED_PROXIES",
                problem: "must be comma-separated IP addresses or networks (such as `10.0.0.0/8`)",
                value,
            })?;
        }
        config.webhooks.deliver = flag("WEBHOOK_DELIVERY", true)?;
        if let Some(value) = lookup("WEBHOOK_ALLOWED_HOSTS") {
            config.webhooks.allowed_hosts = value
                .split(',')
                .map(str::trim)
                .filter(|host| !host.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(value) = lookup("HASH_CONCURRENCY") {
            let permits = value.parse::<usize>().ok().filter(|n| *n > 0);
            config.hash_concurrency = Some(permits.ok_or(SettingsError {
                variable: "HASH_CONCURRENCY",
                problem: "must be a whole number of at least 1",
                value,
            })?);
        }
        let public_url = lookup("PUBLIC_URL").unwrap_or_else(|| match bind {
            IpAddr::V6(v6) => format!("http://[{v6}]:{port}"),
            IpAddr::V4(v4) => format!("http://{v4}:{port}"),
        });
        config.reset_link = format!("{}/reset-password", public_url.trim_end_matches('/'));
        config.verify_link = format!("{}/verify-email", public_url.trim_end_matches('/'));
        config.email_change_link = format!("{}/confirm-email-change", public_url.trim_end_matches('/'));
        config.sign_up_link = format!("{}/sign-up", public_url.trim_end_matches('/'));
        // Passkeys need a domain name: an address like `127.0.0.1` becomes `localhost`.
        config.passkey_origin = lookup("PASSKEY_ORIGIN").unwrap_or_else(|| {
            let public = public_url.trim_end_matches('/');
            match url::Url::parse(public) {
                Ok(url) if url.domain().is_some() => public.to_owned(),
                _ => format!("http://localhost:{port}"),
            }
        });
        config.sign_up_policy = sign_up_policy(&lookup)?;
        if let Some(folder) = lookup("MAIL_DIR") {
            config.mail = MailSettings::Folder(folder.into());
        }
        if let Some(host) = lookup("SMTP_HOST") {
            let port = match lookup("SMTP_PORT") {
                Some(value) => value.parse().map_err(|_| SettingsError {
                    variable: "SMTP_PORT",
                    problem: "must be a port number",
                    value,
                })?,
                None => 587,
            };
            let security = match lookup("SMTP_SECURITY").as_deref() {
                None | Some("starttls") => SmtpSecurity::StartTls,
                Some("tls") => SmtpSecurity::Tls,
                Some("none") => SmtpSecurity::None,
                Some(other) => {
                    return Err(SettingsError {
                        variable: "SMTP_SECURITY",
                        problem: "must be starttls, tls or none",
                        value: other.to_owned(),
                    });
                }
            };
            let credentials = lookup("SMTP_USER").map(|user| {
                let password = lookup("SMTP_PASSWORD").unwrap_or_default();
                (user, secrecy::SecretString::from(password))
            });
            config.mail = MailSettings::Smtp(SmtpConfig {
                host,
                port,
                security,
                credentials,
                from: lookup("MAIL_FROM").unwrap_or_else(|| "Portal <no-reply@portal.invalid>".to_owned()),
                timeout: std::time::Duration::from_secs(10),
            });
        }
        config.bearer = bearer_settings(&lookup, &flag)?;
        config.trace_events = true;
        // Demo users with a published password never land in a real database unasked.
        let seed = flag("PORTAL_SEED", !config.is_postgres())?;
        Ok(Self {
            config,
            bind,
            port,
            seed,
        })
    }

    /// How to sign in to the server at `base` (`http://host:port`) with the demo data, as
    /// the servers print it at start.
    pub fn sign_in_help(base: &str, demo: &DemoData) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "sign in (the token is in `session_token`):");
        let _ = writeln!(
            out,
            "  curl -s {base}/v1/auth/sign-in -H 'content-type: application/json' \\\n    -d '{{\"email\":\"ada@acme.example\",\"password\":\"{DEMO_PASSWORD}\"}}'"
        );
        let _ = writeln!(out, "then, with TOKEN set to it:");
        let _ = writeln!(
            out,
            "  curl -s {base}/v1/orgs/{}/workflows -H \"authorization: Bearer $TOKEN\"",
            demo.acme
        );
        let _ = write!(out, "the contract: {base}/openapi.json");
        out
    }

    /// Where the server takes a client's address from (for the sign-in limit), as the
    /// servers print it at start: the TCP peer, or `X-Forwarded-For` behind the proxies
    /// of `TRUSTED_PROXIES`.
    pub fn client_address_help(&self) -> String {
        if self.config.http.trusted_proxies.is_empty() {
            "client addresses: the TCP peer (X-Forwarded-For is ignored; set TRUSTED_PROXIES behind a reverse proxy)"
                .to_owned()
        } else {
            format!(
                "client addresses: from X-Forwarded-For when the peer is one of TRUSTED_PROXIES ({}), else the TCP peer",
                self.config.http.trusted_proxies
            )
        }
    }
}

/// The sign-up policy of `SIGN_UP` and `SIGN_UP_DOMAINS`.
fn sign_up_policy(lookup: &impl Fn(&str) -> Option<String>) -> Result<SignUpPolicy, SettingsError> {
    match lookup("SIGN_UP").as_deref() {
        None | Some("invitation") => Ok(SignUpPolicy::InvitationOnly),
        Some("open") => Ok(SignUpPolicy::Open),
        Some("domains") => {
            let value = lookup("SIGN_UP_DOMAINS").unwrap_or_default();
            let bad = || SettingsError {
                variable: "SIGN_UP_DOMAINS",
                problem: "must be comma-separated domain=org_id claims when SIGN_UP=domains",
                value: value.clone(),
            };
            let mut claims = std::collections::BTreeMap::new();
            for claim in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let (domain, org) = claim.split_once('=').ok_or_else(bad)?;
                let domain = domain.trim().to_ascii_lowercase();
                // The domain of a valid address, and nothing more.
                portal_core::tenancy::Email::new(&format!("x@{domain}")).map_err(|_| bad())?;
                let org = org.trim().parse::<portal_core::ids::OrgId>().map_err(|_| bad())?;
                claims.insert(domain, org);
            }
            if claims.is_empty() {
                return Err(bad());
            }
            Ok(SignUpPolicy::Domains(claims))
        }
        Some(other) => Err(SettingsError {
            variable: "SIGN_UP",
            problem: "must be invitation, open or domains",
            value: other.to_owned(),
        }),
    }
}

/// The bearer token settings, when `JWT_ISSUER` is set.
fn bearer_settings(
    lookup: &impl Fn(&str) -> Option<String>,
    flag: &impl Fn(&'static str, bool) -> Result<bool, SettingsError>,
) -> Result<Option<BearerSettings>, SettingsError> {
    let Some(issuer) = lookup("JWT_ISSUER").filter(|issuer| !issuer.is_empty()) else {
        return Ok(None);
    };
    let list = |value: &str| -> Vec<String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let audiences = list(&lookup("JWT_AUDIENCE").unwrap_or_default());
    if audiences.is_empty() {
        return Err(SettingsError {
            variable: "JWT_AUDIENCE",
            problem: "must name at least one audience when JWT_ISSUER is set",
            value: lookup("JWT_AUDIENCE").unwrap_or_default(),
        });
    }
    let jwks = match (lookup("JWT_JWKS_URL"), lookup("JWT_JWKS_FILE")) {
        (Some(url), None) => {
            check_jwks_url(&url).map_err(|problem| SettingsError {
                variable: "JWT_JWKS_URL",
                problem,
                value: url.clone(),
            })?;
            JwksLocation::Url(url)
        }
        (None, Some(file)) => JwksLocation::File(file.into()),
        (url, _) => {
            return Err(SettingsError {
                variable: "JWT_JWKS_URL",
                problem: "or JWT_JWKS_FILE (exactly one of them) must be set when JWT_ISSUER is set",
                value: url.unwrap_or_default(),
            });
        }
    };
    let algorithms = match lookup("JWT_ALGORITHMS") {
        None => vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256],
        Some(value) => {
            let parsed: Option<Vec<SigningAlgorithm>> = list(&value)
                .iter()
                .map(|name| SigningAlgorithm::from_name(name))
                .collect();
            match parsed {
                Some(algorithms) if !algorithms.is_empty() => algorithms,
                _ => {
                    return Err(SettingsError {
                        variable: "JWT_ALGORITHMS",
                        problem: "must list asymmetric algorithms (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)",
                        value,
                    });
                }
            }
        }
    };
    Ok(Some(BearerSettings {
        issuer,
        audiences,
        jwks,
        algorithms,
        provision: flag("JWT_PROVISION", true)?,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<ServerSettings, SettingsError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ServerSettings::from_lookup("demo.db", 3000, |name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_are_a_temp_sqlite_file_on_localhost() {
        let s = settings(&[]).expect("defaults");
        assert_eq!((s.bind, s.port, s.seed), (IpAddr::from([127, 0, 0, 1]), 3000, true));
        assert!(s.config.redacted_url().starts_with("sqlite://"));
        assert!(!s.config.http.cookie_secure);
        assert!(
            s.config.http.trusted_proxies.is_empty(),
            "no proxy is trusted by default"
        );
        assert!(s.client_address_help().contains("TCP peer"));
    }

    #[test]
    fn cookies_are_secure_unless_bound_to_loopback() {
        for bind in ["127.0.0.1", "::1", "127.0.0.2"] {
            let s = settings(&[("BIND", bind)]).expect("valid");
            assert!(!s.config.http.cookie_secure, "{bind}: plain http://localhost works");
        }
        for bind in ["0.0.0.0", "::", "192.0.2.10"] {
            let s = settings(&[("BIND", bind)]).expect("valid");
            assert!(s.config.http.cookie_secure, "{bind}: reachable from elsewhere");
        }
        let s = settings(&[("BIND", "0.0.0.0"), ("COOKIE_SECURE", "false")]).expect("valid");
        assert!(!s.config.http.cookie_secure, "an explicit setting wins");
    }

    #[test]
    fn the_sign_up_policy_is_read_from_sign_up_and_its_domains() {
        let policy = |vars: &[(&str, &str)]| settings(vars).map(|s| s.config.sign_up_policy);
        assert_eq!(policy(&[]).expect("valid"), SignUpPolicy::InvitationOnly, "the default");
        assert_eq!(policy(&[("SIGN_UP", "open")]).expect("valid"), SignUpPolicy::Open);
        let org = "org_01jq9v5e6h8m3k2n4p6r8t0vwx";
        let parsed: portal_core::ids::OrgId = org.parse().expect("an org id");
        let claims = format!("Acme.Example={org}, acme.test = {org}");
        let domains = policy(&[("SIGN_UP", "domains"), ("SIGN_UP_DOMAINS", &claims)]).expect("valid");
        let expected = [("acme.example".to_owned(), parsed), ("acme.test".to_owned(), parsed)];
        assert_eq!(domains, SignUpPolicy::Domains(expected.into_iter().collect()));
        for bad in [
            vec![("SIGN_UP", "sometimes")],
            vec![("SIGN_UP", "domains")],
            vec![("SIGN_UP", "domains"), ("SIGN_UP_DOMAINS", "acme.example")],
            vec![("SIGN_UP", "domains"), ("SIGN_UP_DOMAINS", "acme.example=not-an-org")],
            vec![
                ("SIGN_UP", "domains"),
                ("SIGN_UP_DOMAINS", "not a domain=org_01jq9v5e6h8m3k2n4p6r8t0vwx"),
            ],
        ] {
            let err = policy(&bad).expect_err("refused");
            assert!(err.variable.starts_with("SIGN_UP"), "{bad:?}: {err}");
        }
        let s = settings(&[("PUBLIC_URL", "https://portal.example/")]).expect("valid");
        assert_eq!(s.config.sign_up_link, "https://portal.example/sign-up");
    }

    #[test]
    fn the_demo_data_is_seeded_on_sqlite_only_unless_asked() {
        assert!(settings(&[]).expect("valid").seed, "SQLite: seeded");
        let pg = [("DATABASE_URL", "postgres://app@db.internal/portal")];
        assert!(!settings(&pg).expect("valid").seed, "Postgres: not seeded by default");
        let asked = [pg[0], ("PORTAL_SEED", "1")];
        assert!(settings(&asked).expect("valid").seed, "Postgres: seeded when asked");
        let refused = [("PORTAL_SEED", "0")];
        assert!(!settings(&refused).expect("valid").seed);
    }

    #[test]
    fn trusted_proxies_are_read_and_shown() {
        let s = settings(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7")]).expect("valid");
        assert!(s.config.http.trusted_proxies.trusts(IpAddr::from([10, 1, 2, 3])));
        assert!(!s.config.http.trusted_proxies.trusts(IpAddr::from([192, 168, 1, 8])));
        assert!(
            s.client_address_help().contains("10.0.0.0/8, 192.168.1.7/32"),
            "{}",
            s.client_address_help()
        );
    }

    #[test]
    fn each_bad_setting_is_named() {
        for (var, value) in [
            ("BIND", "localhost"),
            ("PORT", "70000"),
            ("COOKIE_SECURE", "maybe"),
            ("PORTAL_SEED", "2"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("HASH_CONCURRENCY", "0"),
            ("HASH_CONCURRENCY", "many"),
        ] {
            let err = settings(&[(var, value)]).expect_err(var);
            assert_eq!(err.variable, var);
            assert!(err.to_string().contains(value), "{err}");
        }
        let s = settings(&[("PORT", "8080"), ("COOKIE_SECURE", "true"), ("PORTAL_SEED", "no")]).expect("valid");
        assert_eq!((s.port, s.config.http.cookie_secure, s.seed), (8080, true, false));
        assert_eq!(s.config.hash_concurrency, None, "sized to the machine by default");
        let s = settings(&[("HASH_CONCURRENCY", "3")]).expect("valid");
        assert_eq!(s.config.hash_concurrency, Some(3));
    }

    /// Bearer JWTs are off unless `JWT_ISSUER` is set; then the audience, exactly one key
    /// set location and the algorithms are read, and each bad one is named.
    #[test]
    fn bearer_tokens_are_configured_by_the_jwt_variables() {
        assert_eq!(settings(&[]).expect("valid").config.bearer, None);
        let s = settings(&[
            ("JWT_ISSUER", "https://login.example.com/"),
            ("JWT_AUDIENCE", "portal-api, other"),
            ("JWT_JWKS_URL", "https://login.example.com/jwks"),
        ])
        .expect("valid");
        assert_eq!(
            s.config.bearer,
            Some(BearerSettings {
                issuer: "https://login.example.com/".to_owned(),
                audiences: vec!["portal-api".to_owned(), "other".to_owned()],
                jwks: JwksLocation::Url("https://login.example.com/jwks".to_owned()),
                algorithms: vec![SigningAlgorithm::RS256, SigningAlgorithm::ES256],
                provision: true,
            })
        );
        let s = settings(&[
            ("JWT_ISSUER", "https://login.example.com/"),
            ("JWT_AUDIENCE", "portal-api"),
            ("JWT_JWKS_FILE", "/etc/portal/jwks.json"),
            ("JWT_ALGORITHMS", "EdDSA,PS256"),
            ("JWT_PROVISION", "false"),
        ])
        .expect("valid");
        let bearer = s.config.bearer.expect("configured");
        assert_eq!(bearer.jwks, JwksLocation::File("/etc/portal/jwks.json".into()));
        assert_eq!(
            bearer.algorithms,
            vec![SigningAlgorithm::EdDSA, SigningAlgorithm::PS256]
        );
        assert!(!bearer.provision);

        let base = [
            ("JWT_ISSUER", "https://login.example.com/"),
            ("JWT_AUDIENCE", "portal-api"),
        ];
        for (extra, variable) in [
            (vec![("JWT_AUDIENCE", " ")], "JWT_AUDIENCE"),
            (vec![], "JWT_JWKS_URL"),
            (
                vec![("JWT_JWKS_URL", "https://a/jwks"), ("JWT_JWKS_FILE", "/k.json")],
                "JWT_JWKS_URL",
            ),
            (vec![("JWT_JWKS_URL", "http://login.example.com/jwks")], "JWT_JWKS_URL"),
            (
                vec![("JWT_JWKS_FILE", "/k.json"), ("JWT_ALGORITHMS", "HS256")],
                "JWT_ALGORITHMS",
            ),
            (
                vec![("JWT_JWKS_FILE", "/k.json"), ("JWT_ALGORITHMS", "none")],
                "JWT_ALGORITHMS",
            ),
        ] {
            let mut vars: Vec<(&str, &str)> = base.to_vec();
            for (k, v) in extra {
                vars.retain(|(name, _)| *name != k);
                vars.push((k, v));
            }
            let err = settings(&vars).expect_err(variable);
            assert_eq!(err.variable, variable, "{vars:?}: {err}");
        }
    }
}
