//! What the DynamoDB stores of the one table do alike: read every page of a `Scan` or `Query`,
//! query the items of one tenant, delete items by key, and tell a write its condition refused
//! from one that failed.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::QueryError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::scan::ScanError;
use aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{sdk_err, tenant_pk};
use crate::domain::TenantId;
use crate::ports::StoreError;

/// One DynamoDB item (or key): attribute name to value.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The errors of the operations these helpers take results of, each read out of its
/// [`SdkError`] (the service's error, or the SDK's own failure as its unhandled variant).
pub(crate) trait OperationError: std::error::Error + Send + Sync + Sized + 'static {
    /// The operation's error in `e`.
    fn of(e: SdkError<Self>) -> Self;
}

macro_rules! operation_errors {
    ($($error:ty),*) => {
        $(impl OperationError for $error {
            fn of(e: SdkError<Self>) -> Self {
                e.into_service_error()
            }
        })*
    };
}

operation_errors!(ScanError, QueryError, PutItemError, UpdateItemError);

/// A `Scan` or `Query` request, whose pages the SDK's paginator reads one after another.
pub(crate) trait Paged {
    /// The operation's error.
    type Error: OperationError;
    /// Every item of every page.
    fn every_item(self) -> impl Future<Output = Result<Vec<Item>, SdkError<Self::Error>>> + Send;
}

impl Paged for ScanFluentBuilder {
    type Error = ScanError;
    fn every_item(self) -> impl Future<Output = Result<Vec<Item>, SdkError<ScanError>>> + Send {
        self.into_paginator().items().send().try_collect()
    }
}

impl Paged for QueryFluentBuilder {
    type Error = QueryError;
    fn every_item(self) -> impl Future<Output = Result<Vec<Item>, SdkError<QueryError>>> + Send {
        self.into_paginator().items().send().try_collect()
    }
}

/// Every item `request` finds, read to its last page before any is decoded.
pub(crate) async fn all_items<P: Paged>(
    what: &'static str,
    request: P,
) -> Result<Vec<Item>, StoreError> {
    request
        .every_item()
        .await
        .map_err(|e| sdk_err(what, P::Error::of(e)))
}

/// A `Query` of the items of `tenant` whose sort key meets `sk_condition` (its values are the
/// caller's to add; `:pk` is taken).
pub(crate) fn tenant_query(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    tenant: &TenantId,
    sk_condition: &str,
) -> QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .key_condition_expression(format!("pk = :pk AND {sk_condition}"))
        .expression_attribute_values(":pk", tenant_pk(tenant))
}

/// Deletes the items of `keys`, one `DeleteItem` each: the stores delete a handful of items at
/// a time, for which single deletes are simpler than batches with retries of unprocessed keys.
pub(crate) async fn delete_keys(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    what: &'static str,
    keys: Vec<Item>,
) -> Result<(), StoreError> {
    for key in keys {
        client
            .delete_item()
            .table_name(table)
            .set_key(Some(key))
            .send()
            .await
            .map_err(|e| sdk_err(what, e.into_service_error()))?;
    }
    Ok(())
}

/// Why a conditional `PutItem` or `UpdateItem` did not write.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConditionalWriteError {
    /// The condition did not hold. `item` is the item as it was, when the request asked for it
    /// (`ReturnValuesOnConditionCheckFailure`).
    #[error("the write's condition did not hold")]
    Refused {
        /// The item the condition was tested on, if returned.
        item: Option<Item>,
    },
    /// Any other failure.
    #[error(transparent)]
    Failed(#[from] StoreError),
}

impl ConditionalWriteError {
    /// This error, with a refusal read as `refused`.
    pub(crate) fn refused_as(self, refused: StoreError) -> StoreError {
        match self {
            ConditionalWriteError::Refused { .. } => refused,
            ConditionalWriteError::Failed(e) => e,
        }
    }
}

/// The errors of the conditional writes: a refusal, with the item it returned, or another error.
pub(crate) trait ConditionalCheck: OperationError {
    /// `Ok(item)` if the condition refused the write, else the error itself.
    fn refusal(self) -> Result<Option<Item>, Self>;
}

impl ConditionalCheck for PutItemError {
    fn refusal(self) -> Result<Option<Item>, Self> {
        match self {
            PutItemError::ConditionalCheckFailedException(e) => Ok(e.item),
            other => Err(other),
        }
    }
}

impl ConditionalCheck for UpdateItemError {
    fn refusal(self) -> Result<Option<Item>, Self> {
        match self {
            UpdateItemError::ConditionalCheckFailedException(e) => Ok(e.item),
            other => Err(other),
        }
    }
}

/// The result of a conditional write: its output, [`ConditionalWriteError::Refused`] when its
/// condition did not hold, else [`StoreError::Unavailable`] for `what`.
pub(crate) fn conditional<T, E: ConditionalCheck>(
    what: &'static str,
    r: Result<T, SdkError<E>>,
) -> Result<T, ConditionalWriteError> {
    r.map_err(|e| match E::of(e).refusal() {
        Ok(item) => ConditionalWriteError::Refused { item },
        Err(other) => ConditionalWriteError::Failed(sdk_err(what, other)),
    })
}
