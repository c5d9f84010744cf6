//! [`Objects`] in an S3 bucket: the alerts bucket the exporter reads, the Security Lake bucket it
//! writes (with the bucket's default encryption, which Security Lake configures).

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use shared::ports::StoreError;

use crate::Objects;

/// The media type of the lake files.
pub const PARQUET: &str = "application/vnd.apache.parquet";

/// The objects of one bucket.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Objects {
    /// The objects of `bucket` through `client`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Objects {
            client,
            bucket: bucket.into(),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

#[async_trait]
impl Objects for S3Objects {
    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::unavailable("reading an object", e.into_service_error()))?;
        Ok(object
            .body
            .collect()
            .await
            .map_err(|e| StoreError::unavailable("reading an object", e))?
            .into_bytes()
            .to_vec())
    }

    /// Every object written here is a lake file: typed as Parquet.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(PARQUET)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| StoreError::unavailable("writing a lake file", e.into_service_error()))?;
        Ok(())
    }
}
