//! Core of mssp-alerts: everything the Lambda functions, the `mssp` CLI and the tests share.
//! Function binaries and the CLI are wiring: they build [`flows::Deps`] with [`assemble`] and call
//! one flow per event or command.
//!
//! The crate map — each module, what it is for, and what it may use (every arrow points down;
//! nothing below `flows` knows a flow exists):
//!
//! | module | responsibility | may use |
//! |---|---|---|
//! | [`assemble`] | configuration → [`flows::Deps`] over the AWS or the local adapters | everything below |
//! | [`lambda`] | Lambda edge helpers: deadlines; payloads read into `aws_lambda_events` types (schedule, SQS records, direct invokes) | `flows::onboarding::sanitize` |
//! | [`flows`] | use cases: onboarding, refresh, fetch, range, dispatch, status | `ports`, `microsoft`, `consent`, `record`, `domain`, `config`, `clock`, `secret` |
//! | [`consent`] | signed consent state and links, the consent HTTP handler | `flows::onboarding`, `domain`, `secret` |
//! | [`adapters`] | the ports over local files (`local/`) and AWS (`aws/`), one file per technology; NDJSON objects of raw records or of their OCSF rendering | `ports`, `record`, `ocsf`, `domain`, `config` |
//! | [`microsoft`] | identity client, token claims, HTTP budget and retry, the three alert sources | `domain`, `secret` |
//! | [`ports`] | the storage traits flows depend on, in our own types | `domain`, `record` |
//! | [`ocsf`] | the record's OCSF rendering (Detection Finding, OCSF 1.1.0) and its mapping table | `record`, `domain`, `microsoft::alerts` |
//! | [`record`] | the delivered record (`mssp.alert/1`) and its one builder | `domain`, `microsoft::alerts` |
//! | [`domain`] | tenants, auth models, APIs, tokens | `config` (clouds), `secret` |
//! | [`config`] | environment reader, clouds and endpoints, the deployment's variables | — |
//! | [`clock`], [`secret`], [`telemetry`] | injected time; secret types, constant-time compare, HMAC; tracing setup | — |
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod adapters;
pub mod assemble;
pub mod clock;
pub mod config;
pub mod consent;
pub mod domain;
pub mod flows;
pub mod lambda;
pub mod microsoft;
pub mod ocsf;
pub mod ports;
pub mod record;
pub mod secret;
pub mod telemetry;
