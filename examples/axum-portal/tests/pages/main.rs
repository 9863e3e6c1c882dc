//! The pages (`/`, the portal in a browser) through the real app: `forms` drives them with
//! plain HTTP through the router (forms posted as a browser posts them, cookies kept);
//! `browser` drives headless Chromium through chromedriver against the real server on
//! loopback, and skips (saying so) when Chromium or chromedriver is absent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

mod account;
mod admin;
mod browser;
mod common;
mod forms;
mod password;
#[path = "../soft_key/mod.rs"]
mod soft_key;
mod store_calls;
mod webhooks;
mod weight;
