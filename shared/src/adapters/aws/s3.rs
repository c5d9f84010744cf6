//! S3: alert objects at [`BatchId::key`], NDJSON.gz, requesting SSE-KMS with the configured key
//! (without one, the bucket's default encryption applies).

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use super::sdk_err;
use crate::adapters::ndjson::{self, CONTENT_TYPE, decode_batch, encode_batch};
use crate::adapters::ocsf_ndjson;
use crate::config::GzipLevel;
use crate::config::output::OutputFormat;
use crate::domain::{AlertApi, TenantId};
use crate::ports::{AlertSink, AttemptContents, BatchId, StoreError};
use crate::record::AlertRecord;

/// An S3 client for `conf`; path-style addressing when an endpoint URL is configured (an S3
/// emulator on 127.0.0.1 has no per-bucket host names), virtual-host style against AWS.
pub fn s3_client(conf: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(conf)
        .force_path_style(conf.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Alert objects in an S3 bucket at the keys of [`BatchId::key`], NDJSON.gz, SSE-KMS, and/or
/// their OCSF rendering at [`BatchId::ocsf_key`], as its [`OutputFormat`] says.
#[derive(Debug, Clone)]
pub struct S3AlertSink {
    client: aws_sdk_s3::Client,
    bucket: String,
    kms_key_id: Option<String>,
    format: OutputFormat,
    gzip_level: GzipLevel,
}

impl S3AlertSink {
    /// A sink writing to `bucket`, encrypting with `kms_key_id` (id, alias or ARN) when given,
    /// else with the bucket's default encryption; objects at the default gzip level.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: impl Into<String>,
        kms_key_id: Option<String>,
    ) -> Self {
        S3AlertSink {
            client,
            bucket: bucket.into(),
            kms_key_id,
            format: OutputFormat::Raw,
            gzip_level: GzipLevel::DEFAULT,
        }
    }

    /// The same sink writing its objects at `level`.
    pub fn with_gzip_level(self, level: GzipLevel) -> Self {
        S3AlertSink {
            gzip_level: level,
            ..self
        }
    }

    /// The same sink writing `format`.
    pub fn with_format(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(CONTENT_TYPE)
            .body(ByteStream::from(body));
        if let Some(key) = &self.kms_key_id {
            put = put
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key);
        }
        put.send()
            .await
            .map_err(|e| sdk_err("writing an alert object", e.into_service_error()))?;
        Ok(())
    }

    /// Every key under `prefix`, in key order.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_err("listing alert objects", e.into_service_error()))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Every record of every object (of `tenant` only, when given), in key order then line
    /// order: for tests and the demo, not for production volumes.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when S3 fails, [`StoreError::Corrupt`] when an object does not
    /// decode.
    pub async fn records(&self, tenant: Option<&TenantId>) -> Result<Vec<AlertRecord>, StoreError> {
        let prefix = match tenant {
            Some(t) => format!("alerts/tenant={t}/"),
            None => "alerts/".to_string(),
        };
        let mut out = Vec::new();
        for key in self.keys(&prefix).await? {
            let bytes = self.get_object(&key).await?;
            out.extend(decode_batch(&bytes).map_err(|e| StoreError::Corrupt {
                what: key,
                source: Box::new(e),
            })?);
        }
        Ok(out)
    }

    async fn get_object(&self, key: &str) -> Result<bytes::Bytes, StoreError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_err("reading an alert object", e.into_service_error()))?;
        Ok(object
            .body
            .collect()
            .await
            .map_err(|e| sdk_err("reading an alert object", e))?
            .into_bytes())
    }
}

#[async_trait]
impl AlertSink for S3AlertSink {
    async fn write_batch(
        &self,
        batch: &BatchId,
        records: &[AlertRecord],
    ) -> Result<(), StoreError> {
        // Raw first: a retry repairs a missing OCSF twin of a raw object (attempt_contents).
        if self.format.raw() {
            self.put(&batch.key(), encode_batch(records, self.gzip_level)?)
                .await?;
        }
        if self.format.ocsf() {
            self.put(
                &batch.ocsf_key(),
                ocsf_ndjson::encode_batch(records, self.gzip_level)?,
            )
            .await?;
        }
        Ok(())
    }

    async fn attempt_contents(
        &self,
        tenant: &TenantId,
        api: AlertApi,
        date: &str,
        cursor_version: u64,
    ) -> Result<AttemptContents, StoreError> {
        let prefix = BatchId::attempt_prefix(tenant, api, date, cursor_version);
        let mut contents = AttemptContents::default();
        if !self.format.raw() {
            for key in self.keys(&BatchId::ocsf(&prefix)).await? {
                let bytes = self.get_object(&key).await?;
                ocsf_ndjson::add_to_attempt(&mut contents, &key, &bytes)?;
            }
            return Ok(contents);
        }
        let twins = if self.format.ocsf() {
            self.keys(&BatchId::ocsf(&prefix)).await?
        } else {
            Vec::new()
        };
        for key in self.keys(&prefix).await? {
            let bytes = self.get_object(&key).await?;
            ndjson::add_to_attempt(&mut contents, &key, &bytes)?;
            // A raw object whose OCSF twin was not written (interrupted between the two) gets
            // it now: the twin is a function of the raw records.
            let twin = BatchId::ocsf(&key);
            if self.format.ocsf() && !twins.contains(&twin) {
                self.put(
                    &twin,
                    ocsf_ndjson::encode_batch(&decode_batch(&bytes)?, self.gzip_level)?,
                )
                .await?;
            }
        }
        Ok(contents)
    }
}
