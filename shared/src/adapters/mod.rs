//! Adapters behind the [`crate::ports`]: local files (the embedded default) and AWS, one file per
//! technology, plus the NDJSON object format both sinks write.

pub mod aws;
pub mod local;
pub mod ndjson;
pub mod unconfigured;
