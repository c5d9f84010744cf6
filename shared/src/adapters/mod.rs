//! Adapters behind the [`crate::ports`]: local files (the embedded default) and AWS.

pub mod aws;
pub mod aws_fetch;
pub mod aws_queue;
pub mod file;
pub mod file_fetch;
pub mod ndjson;
