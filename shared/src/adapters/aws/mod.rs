//! The AWS adapters: one file per service, each behind the ports of [`crate::ports`].
//!
//! | file | port(s) | AWS service |
//! |---|---|---|
//! | `secrets_manager.rs` | `TokenStore`, `AppSecrets` | Secrets Manager (one secret per tenant, DESIGN §5) |
//! | `dynamodb.rs` | `TenantRegistry`, `ConsentNonces` | DynamoDB (the one table) |
//! | `cursors.rs` | `CursorStore` | DynamoDB (cursor items beside the tenant item) |
//! | `index.rs` | `DeliveryIndex` | DynamoDB (digests per version day beside the tenant item) |
//! | `s3.rs` | `AlertSink` | S3 (NDJSON.gz alert objects, SSE-KMS) |
//! | `sqs.rs` | `WorkQueue` | SQS (one work item per tenant) |
//! | `http.rs` | — | the SDK's HTTP client (reqwest, as for Microsoft) |
//! | `table.rs` | — | DynamoDB: paging, tenant queries, deletes and conditional writes the stores share |
//!
//! DynamoDB items (partition key `pk`, sort key `sk`, both strings):
//!
//! | item | pk | sk | other attributes |
//! |---|---|---|---|
//! | tenant | `TENANT#{id}` | `META` | `record` (JSON of [`crate::domain::Tenant`]), `version` (N), `status` |
//! | used nonce | `NONCE#{nonce}` | `NONCE` | `ttl` (N, Unix seconds; the table's TTL attribute) |
//! | fetch cursor | `TENANT#{id}` | `CURSOR#{api}` | see [`cursors`] |
//! | delivery index | `TENANT#{id}` | `INDEX#{api}#{day}#{shard}` | see [`index`] |

pub mod cursors;
pub mod dynamodb;
mod http;
pub mod index;
#[cfg(feature = "aws-s3")]
pub mod s3;
pub mod secrets_manager;
#[cfg(feature = "aws-sqs")]
pub mod sqs;
mod table;

pub use cursors::DynamoDbCursorStore;
pub use dynamodb::{DynamoDbConsentNonces, DynamoDbTenantRegistry};
pub use index::DynamoDbDeliveryIndex;
#[cfg(feature = "aws-s3")]
pub use s3::{S3AlertSink, s3_client};
pub use secrets_manager::{SecretsManagerAppSecrets, SecretsManagerTokenStore};
#[cfg(feature = "aws-sqs")]
pub use sqs::SqsWorkQueue;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::domain::TenantId;
use crate::ports::StoreError;

/// Loads the AWS SDK configuration from the environment (region, credentials, and
/// `AWS_ENDPOINT_URL`, which is how tests point the SDK at moto).
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_defaults().load().await
}

/// The SDK's configuration loader with our HTTP client ([`http`]): reqwest, rustls over ring
/// and compiled-in root certificates, instead of the SDK's default client. Every SDK configuration
/// in the product and its tests starts here: the SDK crates are built without a default client, so
/// a loader without one fails its first call.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http::sdk_http_client())
}

pub(crate) fn sdk_err<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
    e: E,
) -> StoreError {
    StoreError::unavailable(what, e)
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The partition key of every item about one tenant (its record, its cursors).
pub(crate) fn tenant_pk(id: &TenantId) -> AttributeValue {
    s(format!("TENANT#{id}"))
}
