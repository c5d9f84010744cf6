//! The one integration-test binary of mssp-alerts (`DESIGN.md` §8): every cross-crate test is a
//! module here, built on the `TestEnv` harness in `tests/src/lib.rs`. Add a module per subject.

mod aws_adapters;
mod backfill;
mod browser_consent;
mod chaos;
mod cli;
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
mod no_secrets_in_logs;
mod ocsf;
mod onboarding;
mod partial;
mod refresh;
mod refresh_lambda;
mod siem_keys;
