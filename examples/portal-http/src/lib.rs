#![doc = include_str!("../README.md")]

pub mod api;
pub mod bearer;
pub mod contract;
pub mod dto;
pub mod edge;
pub mod error;
pub mod idempotency;
pub mod input;
pub mod limiter;
pub mod openapi;
pub mod operator;
pub mod proxy;
pub mod request;
pub mod routes;
pub mod seed;
pub mod settings;
pub mod test_schema;
pub mod version;
pub mod wiring;

/// The `http` crate of [`routes::Request`] and [`routes::Response`] (`Method`, `StatusCode`,
/// `HeaderMap`), for adapters whose framework uses another version.
pub use http;

pub use api::{
    Api, ExportQuery, HttpConfig, PageQuery, SignInAnswer, SupportBundleQuery, TimelineQuery, WorkflowQuery,
};
pub use bearer::{BearerSettings, JwksLocation};
pub use error::{ApiError, parse_json};
pub use request::{AuthInput, Caller, RequestMeta};
pub use settings::{ServerSettings, SettingsError};
pub use wiring::{
    Background, JournalPlacement, MailSettings, PortalConfig, WebhookSettings, connect, journal_url_beside,
};
