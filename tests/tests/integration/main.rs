//! The one integration-test binary of mssp-alerts (`DESIGN.md` §8): every cross-crate test is a
//! module here, built on the `TestEnv` harness in `tests/src/lib.rs`. Add a module per subject.

mod app_health;
mod aws_adapters;
mod backfill;
mod browser_consent;
mod chaos;
mod cli;
mod cli_messages;
mod consent_events;
mod consent_hostile;
mod consent_lambda;
mod emulator_alerts;
mod emulator_fleet;
mod emulator_identity;
mod fetch;
mod fetch_adapters;
mod fetcher_lambda;
mod fixtures;
mod harness;
mod infra_config;
mod infra_e2e;
mod infra_iam;
mod lambda_world;
mod late;
mod malformed_events;
mod metrics;
mod no_secrets_in_logs;
mod ocsf;
mod onboarding;
mod partial;
mod refresh;
mod refresh_lambda;
mod refresh_race;
mod siem_keys;
mod siem_region;
mod tenants_import;
