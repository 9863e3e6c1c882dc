//! The HTTP contract of the portal's reference servers, free of any web framework.
//!
//! Both `example-axum-portal` and `example-actix-portal` are thin adapters over this
//! crate: they extract path parameters, headers and body bytes, call one [`Api`] method,
//! and render its DTO or its [`ApiError`] as `application/problem+json`. Everything that
//! must not differ between frameworks lives here:
//!
//! | module | what it holds |
//! |---|---|
//! | [`dto`] | request and response bodies (serde + `utoipa::ToSchema`), one file a resource |
//! | [`error`] | [`ApiError`] over `PortalError::to_problem`, JSON bodies that name the failing field |
//! | [`request`] | request id, `traceparent`, credentials, CSRF, `ETag`/`If-Match`, query strings |
//! | [`api`] | [`Api`]: every operation as an async method, one file a resource |
//! | [`openapi`] | the OpenAPI 3.1 document, with the error codes of every response |
//! | [`limiter`] | the per-source sign-in limiter (429 + `Retry-After`) |
//! | [`proxy`] | the client address behind trusted reverse proxies (`X-Forwarded-For`) |
//! | [`wiring`] | the portal on SQLite or Postgres, from one database URL |
//! | [`seed`] | idempotent demo data |
//! | [`settings`] | a server's settings from the environment, its start-up banner |
//!
//! **Architecture invariant**: no type of a web framework appears here; `http` header
//! names are plain `&str` constants, statuses plain `u16` from the error catalog.

pub mod api;
pub mod dto;
pub mod error;
pub mod limiter;
pub mod openapi;
pub mod proxy;
pub mod request;
pub mod seed;
pub mod settings;
pub mod wiring;

pub use api::{Api, ExportQuery, HttpConfig, PageQuery, SupportBundleQuery, TimelineQuery, WorkflowQuery};
pub use error::{ApiError, parse_json};
pub use request::{AuthInput, Caller, RequestMeta};
pub use settings::{ServerSettings, SettingsError};
pub use wiring::{Background, PortalConfig, connect};
