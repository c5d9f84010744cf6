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
//! | [`metrics`] | the metric model: flow results → observations, rendered as CloudWatch EMF lines (functions) or Prometheus text (`mssp serve`) | `flows`, `domain`, `config` |
//! | [`lambda`] | Lambda edge helpers: deadlines; payloads read into `aws_lambda_events` types (schedule, SQS records, direct invokes) | `flows::onboarding::sanitize` |
//! | [`flows`] | use cases: onboarding, token lifecycle (`refresh`, `tokens`, the app registration's `app_health`), the regular fetch (`fetch`: plan, glance at an idle tenant, drain, deliver, commit), the jobs over the past (`sweep`, `backfill`), SIEM regions (`region`), one machine's schedule (`schedule`, `cadence`), `range` (no cursor move), `dispatch`, `status` | `ports`, `microsoft`, `consent`, `record`, `domain`, `config`, `clock`, `secret` |
//! | [`consent`] | signed consent state and links, the consent HTTP handler | `flows::onboarding`, `domain`, `secret` |
//! | [`adapters`] | the ports over local files (`local/`) and AWS (`aws/`), one file per technology (secrets, registry, cursors + leases, delivery index, sink, queue); NDJSON objects of raw records or of their OCSF rendering | `ports`, `record`, `ocsf`, `domain`, `config` |
//! | [`microsoft`] | identity client, token claims, HTTP budget and retry, the three alert sources | `domain`, `secret` |
//! | [`ports`] | the storage traits flows depend on, in our own types (cursor, job, delivery index, work item) | `domain`, `record` |
//! | [`ocsf`] | the record's OCSF rendering (Detection Finding, OCSF 1.1.0) and its mapping table | `record`, `domain`, `microsoft::alerts` |
//! | [`record`] | the delivered record (`mssp.alert/1`) and its one builder | `domain`, `microsoft::alerts` |
//! | [`domain`] | tenants, auth models, APIs, tokens | `config` (clouds), `secret` |
//! | [`config`] | environment reader, clouds and endpoints, the deployment's variables | — |
//! | [`clock`], [`secret`], [`telemetry`] | injected time; secret types, constant-time compare, HMAC; tracing setup | — |
//! | [`explain`] | error text for operators: an error's chain, the repeated-clause check | — |
#![warn(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod adapters;
pub mod assemble;
pub mod clock;
pub mod config;
pub mod consent;
pub mod domain;
pub mod explain;
pub mod flows;
pub mod lambda;
pub mod metrics;
pub mod microsoft;
pub mod ocsf;
pub mod ports;
pub mod record;
pub mod secret;
pub mod telemetry;
