//! Core of mssp-alerts: everything the Lambda functions, the `mssp` CLI and the tests share.
//!
//! Function binaries are wiring only; configuration, telemetry, time, secrets and (later) the
//! flows, ports, clients and adapters live here so they are written and tested once.
//!
//! - [`config`]: typed environment reader and the per-cloud Microsoft endpoints.
//! - [`telemetry`]: tracing subscriber setup (JSON lines in Lambda, readable locally).
//! - [`clock`]: the injected [`clock::Clock`] port, so expiry and deadlines are testable.
//! - [`secret`]: [`secret::Secret`] and the credential types built on it.
//! - [`web`]: framework-agnostic HTTP handlers (the consent endpoint).
//! - [`wiring`]: the Lambda functions' configuration and the [`flows::Services`] they build.
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod adapters;
pub mod alerts;
pub mod claims;
pub mod clock;
pub mod config;
pub mod consent_state;
pub mod domain;
pub mod entra;
pub mod flows;
pub mod ports;
pub mod secret;
pub mod telemetry;
pub mod web;
pub mod wiring;
