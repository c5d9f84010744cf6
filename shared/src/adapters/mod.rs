//! Adapters behind the [`crate::ports`]: local files (the embedded default) and AWS, one file per
//! technology, plus the object formats both sinks write: NDJSON of raw records, NDJSON of their OCSF rendering.

pub mod aws;
pub mod local;
pub mod ndjson;
pub mod ocsf_ndjson;
pub mod unconfigured;
