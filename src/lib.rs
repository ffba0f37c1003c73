//! # zoho-device
//!
//! The command-line program and headless agent on top of `zoho-device-core`.
//!
//! ```text
//!  cli (clap) ──> settings (flags > env > config.toml) ──> app::Context { store, http }
//!      │
//!      ├─ login ── core::DeviceFlow via core::reqwest_driver ──> ui (displays + JSON events)
//!      │                                                    └──> store (atomic, 0600, locked)
//!      ├─ token / refresh / status / logout ── store + core::TokenEndpoint
//!      ├─ api, books ── {api_domain}/books/v3/… with Zoho-oauthtoken: paths checked, organization_id,
//!      │                refresh once on 401/57, Books' budgets (429 44/45/1070), writes never repeated
//!      ├─ doctor ── probes and checks, no secrets
//!      ├─ agent ── login when needed, refresh ahead of expiry, systemd notify
//!      │    └─ gateway ── --serve: Books for local apps (token kept), cached, budgeted
//!      └─ demo ── everything above against zoho-device-sim on loopback
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod api;
pub mod app;
pub mod books;
pub mod cli;
pub mod clock;
pub mod commands;
#[cfg(feature = "sim")]
pub mod demo;
pub mod discovery;
pub mod doctor;
pub mod exit;
pub mod gateway;
pub mod login;
pub mod notify;
pub mod settings;
pub mod store;
pub mod ui;
