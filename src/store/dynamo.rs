//! The DynamoDB engine: the store's trees as items of one table, for several replicas.
//!
//! # The table
//!
//! | attribute | type | what |
//! |---|---|---|
//! | `pk` | S, partition key | the tree's name (`requests`, `audit`, `meta`, ...) |
//! | `sk` | S, sort key | `k` followed by the key's bytes in lowercase hex: string order is byte order, as sled's |
//! | `v` | B | the value |
//! | `ver` | S | a version token, new at every write: what a transaction checks |
//!
//! The indexes the store keeps (`audit_idx`, `requests_by_state`, ...) are items of the same
//! table, written in the same transaction as the records they point to. A global secondary
//! index would be eventually consistent and cannot be read inside a transaction, so an audit
//! query or a vote could miss the latest write; items written together cannot.
//!
//! # Transactions
//!
//! A transaction runs its closure against [`DynTx`]: every read is a strongly consistent
//! `GetItem` whose version token is remembered; writes are buffered. The commit is one
//! `TransactWriteItems`: each write is a `Put` or a `Delete`, and each item read is
//! conditioned on its token being unchanged (`ConditionCheck` for one read but not written,
//! `attribute_not_exists(pk)` for one read as absent). So the closure's decision stands only if
//! nothing it read changed: a vote commits with the request's version, the audit chain's
//! head (every appended event rewrites the head item, so the chain stays one chain across
//! replicas) and the vote's absence.
//!
//! A cancelled transaction ([`CancellationReason`] per item) is handled by its reasons:
//!
//! * `ConditionalCheckFailed` (something read changed) or `TransactionConflict` (another
//!   transaction held an item): the closure runs again from fresh reads, so it re-decides
//!   (a vote that meanwhile became a duplicate is refused as one);
//! * `ThrottlingError`, `ProvisionedThroughputExceeded`, `RequestLimitExceeded`: run again
//!   after a backoff;
//! * anything else (`ValidationError`, `ItemCollectionSizeLimitExceeded`): an error.
//!
//! Each retry waits a jittered exponential backoff (2 ms doubling to 200 ms); after
//! [`MAX_ATTEMPTS`] the store gives up with an error that says how many conflicts it met.
//! Every conflict is counted ([`DynamoKv::conflicts`], shown on `/metrics`). The SDK fills in
//! the `ClientRequestToken`, and its own retries of one call reuse it, so a transaction that
//! committed but whose answer was lost is not applied twice.
//!
//! # Calls from synchronous code
//!
//! The store's API is synchronous (sled's is). Calls to DynamoDB run on a small runtime of
//! their own (two threads, `hanko-dynamodb`), and the caller waits for the answer, so a store
//! call works the same from a tokio task, a blocking thread or a test.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, ConsumedCapacity, Delete,
    KeySchemaElement, KeyType, PointInTimeRecoverySpecification, Put, ReturnConsumedCapacity,
    ScalarAttributeType, TableStatus, TransactWriteItem,
};
use aws_sdk_dynamodb::Client;

use super::backend::{Bytes, CasMismatch};
use super::StoreError;

/// DynamoDB's limit on the items of one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// The largest value the store puts in one item: DynamoDB's item limit is 400 KB, names and
/// keys included.
pub const MAX_VALUE_BYTES: usize = 390 * 1024;
/// How many times a transaction is tried before the store gives up.
pub const MAX_ATTEMPTS: u32 = 60;
const BACKOFF_FIRST_MS: u64 = 2;
const BACKOFF_MAX_MS: u64 = 200;

/// Where the store's table is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoTarget {
    pub table: String,
    pub region: String,
    /// An endpoint for DynamoDB only (moto, DynamoDB Local). `None`: the SDK's, which honours
    /// `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
}

impl DynamoTarget {
    /// How the store is named in errors and logs.
    pub fn display(&self) -> PathBuf {
        PathBuf::from(format!("dynamodb://{}/{}", self.region, self.table))
    }
}

/// Capacity units DynamoDB reported as consumed (`ReturnConsumedCapacity = TOTAL`), in
/// thousandths; and the request units the same calls cost by the pricing rules, counted here
/// from the item sizes (moto's `ConsumedCapacity` is a constant, not a measure).
#[derive(Debug, Default)]
struct Capacity {
    read_milli: AtomicU64,
    write_milli: AtomicU64,
    /// On-demand read request units by the rules: a strongly consistent read is one unit per
    /// 4 KB (at least one per call).
    rules_read: AtomicU64,
    /// On-demand write request units by the rules: one per KB of each item written; in a
    /// transaction two per KB of each item, condition checks included.
    rules_write: AtomicU64,
}

/// An item's size as DynamoDB counts it: attribute names plus values.
fn item_size(item: &Item) -> u64 {
    item.iter()
        .map(|(name, value)| {
            name.len() as u64
                + match value {
                    AttributeValue::S(s) => s.len() as u64,
                    AttributeValue::B(b) => b.as_ref().len() as u64,
                    _ => 8,
                }
        })
        .sum()
}

fn units(bytes: u64, per: u64) -> u64 {
    bytes.div_ceil(per).max(1)
}

/// The table, its client, and the runtime its calls run on.
pub struct DynamoKv {
    client: Client,
    table: String,
    target: DynamoTarget,
    handle: tokio::runtime::Handle,
    /// Dropped with the store: the runtime's thread then ends.
    _stop: tokio::sync::oneshot::Sender<()>,
    conflicts: AtomicU64,
    capacity: Capacity,
}

impl std::fmt::Debug for DynamoKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoKv")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

type Item = HashMap<String, AttributeValue>;

/// One page of a query: its entries (key, value) and where the next page starts.
type Page = (Vec<(Vec<u8>, Vec<u8>)>, Option<Item>);

/// The sort key of `key`: `k` and its hex.
fn sort_key(key: &[u8]) -> String {
    let mut s = String::with_capacity(1 + key.len() * 2);
    s.push('k');
    s.push_str(&hex::encode(key));
    s
}

fn key_of_sort_key(sk: &str) -> Option<Vec<u8>> {
    hex::decode(sk.strip_prefix('k')?).ok()
}

fn item_key(tree: &str, key: &[u8]) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(tree.to_owned())),
        ("sk".to_owned(), AttributeValue::S(sort_key(key))),
    ])
}

fn new_version() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn full_item(tree: &str, key: &[u8], value: Vec<u8>, ver: String) -> Item {
    let mut item = item_key(tree, key);
    item.insert("v".to_owned(), AttributeValue::B(Blob::new(value)));
    item.insert("ver".to_owned(), AttributeValue::S(ver));
    item
}

/// The value and version token of an item.
fn value_of(item: &Item) -> Option<(Bytes, String)> {
    let value = match item.get("v")? {
        AttributeValue::B(b) => b.clone().into_inner(),
        _ => return None,
    };
    let ver = match item.get("ver") {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    Some((Bytes::Owned(value), ver))
}

/// The condition that an item is as it was read: its token, or absent.
fn unchanged(ver: &Option<String>) -> (String, Option<(String, AttributeValue)>) {
    match ver {
        Some(v) => (
            "#ver = :ver".to_owned(),
            Some((":ver".to_owned(), AttributeValue::S(v.clone()))),
        ),
        None => ("attribute_not_exists(pk)".to_owned(), None),
    }
}

/// Why a commit did not happen.
pub(super) enum CommitError {
    /// Run the closure again (after a backoff).
    Retry,
    Store(StoreError),
}

impl DynamoKv {
    /// Connects to the table, which must exist (`hanko store init`). `conf`: an SDK config to
    /// use instead of the standard chain's (tests against moto).
    pub fn open(
        target: &DynamoTarget,
        conf: Option<aws_config::SdkConfig>,
    ) -> Result<Arc<DynamoKv>, StoreError> {
        let kv = Self::connect(target, conf)?;
        let client = kv.client.clone();
        let table = kv.table.clone();
        let described =
            kv.run(async move { client.describe_table().table_name(table).send().await })?;
        match described {
            Ok(_) => Ok(kv),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Err(StoreError::Io {
                path: target.display(),
                message: format!(
                    "the DynamoDB table `{}` does not exist in {}: create it with `hanko store init --config FILE` (or the CloudFormation template config/dynamodb.yaml)",
                    target.table, target.region
                ),
            }),
            Err(e) => Err(kv.sdk_error("DescribeTable", &e)),
        }
    }

    /// A client for the table, without checking it exists.
    fn connect(
        target: &DynamoTarget,
        conf: Option<aws_config::SdkConfig>,
    ) -> Result<Arc<DynamoKv>, StoreError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let io = |message: String| StoreError::Io {
            path: target.display(),
            message,
        };
        std::thread::Builder::new()
            .name("hanko-dynamodb".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("hanko-dynamodb")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
            })
            .map_err(|e| io(format!("cannot start the DynamoDB thread: {e}")))?;
        let handle = handle_rx
            .recv()
            .map_err(|e| io(format!("the DynamoDB thread did not start: {e}")))?
            .map_err(|e| io(format!("cannot start the DynamoDB runtime: {e}")))?;

        let conf = match conf {
            Some(conf) => conf,
            None => {
                let region = target.region.clone();
                let endpoint = target.endpoint_url.clone();
                let (conf_tx, conf_rx) = std::sync::mpsc::channel();
                handle.spawn(async move {
                    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .region(aws_config::Region::new(region));
                    if let Some(url) = endpoint {
                        loader = loader.endpoint_url(url);
                    }
                    let _ = conf_tx.send(loader.load().await);
                });
                conf_rx
                    .recv()
                    .map_err(|e| io(format!("cannot load the AWS configuration: {e}")))?
            }
        };
        Ok(Arc::new(DynamoKv {
            client: Client::new(&conf),
            table: target.table.clone(),
            target: target.clone(),
            handle,
            _stop: stop_tx,
            conflicts: AtomicU64::new(0),
            capacity: Capacity::default(),
        }))
    }

    /// Runs `fut` on the DynamoDB runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        crate::util::off_the_worker(|| rx.recv()).map_err(|_| StoreError::Io {
            path: self.target.display(),
            message: "the DynamoDB runtime stopped".into(),
        })
    }

    fn sdk_error<E: ProvideErrorMetadata + std::fmt::Debug>(
        &self,
        operation: &str,
        e: &E,
    ) -> StoreError {
        let detail = match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => format!("{e:?}"),
        };
        StoreError::Io {
            path: self.target.display(),
            message: format!("DynamoDB {operation} failed: {detail}"),
        }
    }

    fn count(&self, consumed: Option<&ConsumedCapacity>, write: bool) {
        let Some(c) = consumed else { return };
        let milli = (c.capacity_units().unwrap_or(0.0) * 1000.0).round() as u64;
        let counter = if write {
            &self.capacity.write_milli
        } else {
            &self.capacity.read_milli
        };
        counter.fetch_add(milli, Ordering::Relaxed);
    }

    /// A value too large for one item is an error that says so (nothing is written).
    fn check_size(&self, tree: &str, len: usize) -> Result<(), StoreError> {
        if len > MAX_VALUE_BYTES {
            return Err(StoreError::Encode {
                what: format!("a value of {len} bytes in `{tree}`"),
                message: format!(
                    "DynamoDB items hold at most 400 KB (hanko keeps values under {MAX_VALUE_BYTES} bytes)"
                ),
            });
        }
        Ok(())
    }

    /// Transactions that met a conflict and ran again, since the store opened.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// Read and write request units this store's calls cost since it opened, counted by
    /// DynamoDB's on-demand pricing rules from the item sizes.
    pub fn request_units(&self) -> (u64, u64) {
        (
            self.capacity.rules_read.load(Ordering::Relaxed),
            self.capacity.rules_write.load(Ordering::Relaxed),
        )
    }

    fn rule_read(&self, n: u64) {
        self.capacity.rules_read.fetch_add(n, Ordering::Relaxed);
    }

    fn rule_write(&self, n: u64) {
        self.capacity.rules_write.fetch_add(n, Ordering::Relaxed);
    }

    /// Read and write capacity units DynamoDB reported as consumed since the store opened.
    pub fn consumed_capacity(&self) -> (f64, f64) {
        (
            self.capacity.read_milli.load(Ordering::Relaxed) as f64 / 1000.0,
            self.capacity.write_milli.load(Ordering::Relaxed) as f64 / 1000.0,
        )
    }

    pub fn target(&self) -> &DynamoTarget {
        &self.target
    }

    // ---------------------------------------------------------------------------------------
    // Single-item operations
    // ---------------------------------------------------------------------------------------

    /// The value and version token at `key`, read strongly consistently.
    pub(super) fn get(
        &self,
        tree: &str,
        key: &[u8],
    ) -> Result<Option<(Bytes, String)>, StoreError> {
        let call = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(item_key(tree, key)))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match self.run(call.send())? {
            Ok(out) => {
                self.count(out.consumed_capacity(), false);
                self.rule_read(units(out.item().map_or(0, item_size), 4096));
                Ok(out.item().and_then(value_of))
            }
            Err(e) => Err(self.sdk_error("GetItem", &e)),
        }
    }

    pub(super) fn put(&self, tree: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.check_size(tree, value.len())?;
        let item = full_item(tree, key, value.to_vec(), new_version());
        self.rule_write(units(item_size(&item), 1024));
        let call = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match self.run(call.send())? {
            Ok(out) => {
                self.count(out.consumed_capacity(), true);
                Ok(())
            }
            Err(e) => Err(self.sdk_error("PutItem", &e)),
        }
    }

    /// Removes `key`; whether it was there.
    pub(super) fn delete(&self, tree: &str, key: &[u8]) -> Result<bool, StoreError> {
        self.rule_write(1);
        let call = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(item_key(tree, key)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match self.run(call.send())? {
            Ok(out) => {
                self.count(out.consumed_capacity(), true);
                Ok(out.attributes().is_some_and(|a| !a.is_empty()))
            }
            Err(e) => Err(self.sdk_error("DeleteItem", &e)),
        }
    }

    /// A conditional `PutItem` (or `DeleteItem`) on the value itself.
    pub(super) fn compare_and_swap(
        &self,
        tree: &str,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), CasMismatch>, StoreError> {
        let (condition, value) = match old {
            None => ("attribute_not_exists(pk)", None),
            Some(old) => (
                "#v = :old",
                Some(AttributeValue::B(Blob::new(old.to_vec()))),
            ),
        };
        let names = value
            .as_ref()
            .map(|_| HashMap::from([("#v".to_owned(), "v".to_owned())]));
        let values = value.map(|v| HashMap::from([(":old".to_owned(), v)]));
        self.rule_write(units(new.map_or(0, |v| v.len() as u64 + 60), 1024));
        let failed = match new {
            Some(new) => {
                let call = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(full_item(tree, key, new.to_vec(), new_version())))
                    .condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total);
                let out = self.run(call.send())?;
                self.condition_failed("PutItem", out, |o| o.consumed_capacity())?
            }
            None => {
                let call = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(item_key(tree, key)))
                    .condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total);
                let out = self.run(call.send())?;
                self.condition_failed("DeleteItem", out, |o| o.consumed_capacity())?
            }
        };
        if failed {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            let current = self.get(tree, key)?.map(|(v, _)| v);
            Ok(Err(CasMismatch { current }))
        } else {
            Ok(Ok(()))
        }
    }

    /// Whether a conditional write's condition failed; its cost counted, any other error
    /// returned.
    fn condition_failed<O, E>(
        &self,
        operation: &str,
        out: Result<
            O,
            aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
        >,
        consumed: impl Fn(&O) -> Option<&ConsumedCapacity>,
    ) -> Result<bool, StoreError>
    where
        E: ProvideErrorMetadata + std::fmt::Debug,
    {
        match out {
            Ok(out) => {
                self.count(consumed(&out), true);
                Ok(false)
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(true),
            Err(e) => Err(self.sdk_error(operation, &e)),
        }
    }

    /// One page of a tree between two sort keys, forward or backward.
    fn query_page(
        &self,
        tree: &str,
        range: &SortRange,
        forward: bool,
        limit: i32,
        start: Option<Item>,
    ) -> Result<Page, StoreError> {
        let mut values = HashMap::from([(":pk".to_owned(), AttributeValue::S(tree.to_owned()))]);
        let condition = match (&range.lo, &range.hi) {
            (Some(lo), Some(hi)) => {
                values.insert(":lo".into(), AttributeValue::S(lo.clone()));
                values.insert(":hi".into(), AttributeValue::S(hi.clone()));
                "pk = :pk AND sk BETWEEN :lo AND :hi"
            }
            (Some(lo), None) => {
                values.insert(":lo".into(), AttributeValue::S(lo.clone()));
                "pk = :pk AND sk >= :lo"
            }
            (None, Some(hi)) => {
                values.insert(":hi".into(), AttributeValue::S(hi.clone()));
                "pk = :pk AND sk <= :hi"
            }
            (None, None) => "pk = :pk",
        };
        let call = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .consistent_read(true)
            .scan_index_forward(forward)
            .limit(limit)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let out = match self.run(call.send())? {
            Ok(out) => out,
            Err(e) => return Err(self.sdk_error("Query", &e)),
        };
        self.count(out.consumed_capacity(), false);
        self.rule_read(units(out.items().iter().map(item_size).sum(), 4096));
        let mut rows = Vec::with_capacity(out.items().len());
        for item in out.items() {
            let key = match item.get("sk") {
                Some(AttributeValue::S(sk)) => key_of_sort_key(sk),
                _ => None,
            };
            let (Some(key), Some((value, _))) = (key, value_of(item)) else {
                return Err(StoreError::Corrupt {
                    key: format!("{tree}/{:?}", item.get("sk")),
                    message: "a DynamoDB item of the store lacks its sort key or value".into(),
                });
            };
            let value = match value {
                Bytes::Owned(v) => v,
                Bytes::Sled(v) => v.to_vec(),
            };
            rows.push((key, value));
        }
        Ok((rows, out.last_evaluated_key().cloned()))
    }

    // ---------------------------------------------------------------------------------------
    // Transactions
    // ---------------------------------------------------------------------------------------

    /// Waits before attempt `attempt` (from 1) of a transaction, and counts the conflict.
    pub(super) fn back_off(&self, attempt: u32) -> Result<(), StoreError> {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        if attempt >= MAX_ATTEMPTS {
            return Err(StoreError::Io {
                path: self.target.display(),
                message: format!(
                    "a transaction met {attempt} conflicts in a row (other replicas writing the same items, or throttling); gave up"
                ),
            });
        }
        let ceiling = (BACKOFF_FIRST_MS << attempt.min(10)).min(BACKOFF_MAX_MS);
        let ms = fastrand::u64(ceiling / 2..=ceiling);
        crate::util::off_the_worker(|| std::thread::sleep(std::time::Duration::from_millis(ms)));
        Ok(())
    }

    fn commit(&self, items: Vec<TransactWriteItem>) -> Result<(), CommitError> {
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(CommitError::Store(StoreError::Io {
                path: self.target.display(),
                message: format!(
                    "a transaction of {} items exceeds DynamoDB's {MAX_TRANSACTION_ITEMS}",
                    items.len()
                ),
            }));
        }
        let written: u64 = items
            .iter()
            .map(|i| {
                let size = i.put().map(|p| item_size(p.item())).unwrap_or(100);
                2 * units(size, 1024)
            })
            .sum();
        self.rule_write(written);
        let call = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let result = self.run(call.send()).map_err(CommitError::Store)?;
        match result {
            Ok(out) => {
                for c in out.consumed_capacity() {
                    self.count(Some(c), true);
                }
                Ok(())
            }
            Err(e) => {
                let retry = match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                        let codes: Vec<&str> = c
                            .cancellation_reasons()
                            .iter()
                            .filter_map(|r| r.code())
                            .filter(|code| *code != "None")
                            .collect();
                        // No reasons at all (some stand-ins): a cancelled transaction is a conflict.
                        codes.is_empty() || codes.iter().all(|code| RETRIED_REASONS.contains(code))
                    }
                    _ => matches!(
                        e.code(),
                        Some(
                            "TransactionInProgressException"
                                | "ProvisionedThroughputExceededException"
                                | "RequestLimitExceeded"
                                | "ThrottlingException"
                        )
                    ),
                };
                if retry {
                    Err(CommitError::Retry)
                } else {
                    Err(CommitError::Store(self.sdk_error("TransactWriteItems", &e)))
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // The table
    // ---------------------------------------------------------------------------------------

    /// Creates the table (on-demand, deletion protection on) if it is missing, waits until it
    /// is active, and turns point-in-time recovery on. Idempotent: an existing table with the
    /// right keys is left as it is, one with other keys is an error. Returns whether it created.
    pub fn init_table(
        target: &DynamoTarget,
        conf: Option<aws_config::SdkConfig>,
    ) -> Result<bool, StoreError> {
        let kv = Self::connect(target, conf)?;
        let client = kv.client.clone();
        let table = kv.table.clone();
        let display = target.display();
        kv.run(async move { create_table(&client, &table, display).await })?
    }
}

/// Cancellation reasons after which the closure runs again.
const RETRIED_REASONS: [&str; 5] = [
    "ConditionalCheckFailed",
    "TransactionConflict",
    "ThrottlingError",
    "ProvisionedThroughputExceeded",
    "RequestLimitExceeded",
];

async fn create_table(client: &Client, table: &str, display: PathBuf) -> Result<bool, StoreError> {
    let io = |message: String| StoreError::Io {
        path: display.clone(),
        message,
    };
    let sdk = |op: &str, e: &dyn ProvideErrorMetadata| {
        io(format!(
            "DynamoDB {op} failed: {}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("")
        ))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| io(e.to_string()))
    };
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| io(e.to_string()))
    };
    let created = match client
        .create_table()
        .table_name(table)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .billing_mode(BillingMode::PayPerRequest)
        .deletion_protection_enabled(true)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceInUseException") => false,
        Err(e) => return Err(sdk("CreateTable", &e)),
    };
    // Wait until it is active (a new table takes a few seconds on AWS).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk("DescribeTable", &e))?;
        let Some(t) = described.table() else {
            return Err(io("DescribeTable returned no table".into()));
        };
        let keys: Vec<(&str, &KeyType)> = t
            .key_schema()
            .iter()
            .map(|k| (k.attribute_name(), k.key_type()))
            .collect();
        if keys != [("pk", &KeyType::Hash), ("sk", &KeyType::Range)] {
            return Err(io(format!(
                "the table `{table}` exists with other keys ({keys:?}); hanko needs partition key `pk` (S) and sort key `sk` (S): pick another table name"
            )));
        }
        if t.table_status() == Some(&TableStatus::Active) {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(io(format!(
                "the table `{table}` did not become active within 120 s"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder()
                .point_in_time_recovery_enabled(true)
                .build()
                .map_err(|e| io(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| sdk("UpdateContinuousBackups", &e))?;
    Ok(created)
}

/// A range of sort keys: `lo`/`hi` inclusive; `exclude_hi` when the upper bound is exclusive
/// (the query asks for `<= hi` and the iterator drops `hi` itself).
struct SortRange {
    lo: Option<String>,
    hi: Option<String>,
    exclude_hi: bool,
    /// The lower bound in bytes, inclusive, to stop a backward scan.
    lo_bytes: Bound<Vec<u8>>,
    /// The upper bound in bytes, to stop a forward scan.
    hi_bytes: Bound<Vec<u8>>,
}

impl SortRange {
    fn new(lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> SortRange {
        let lo_sk = match &lo {
            Bound::Included(k) => Some(sort_key(k)),
            // The smallest key above `k` is `k 00`.
            Bound::Excluded(k) => Some(sort_key(&[k.as_slice(), &[0]].concat())),
            Bound::Unbounded => None,
        };
        let (hi_sk, exclude_hi) = match &hi {
            Bound::Included(k) => (Some(sort_key(k)), false),
            Bound::Excluded(k) => (Some(sort_key(k)), true),
            Bound::Unbounded => (None, false),
        };
        SortRange {
            lo: lo_sk,
            hi: hi_sk,
            exclude_hi,
            lo_bytes: lo,
            hi_bytes: hi,
        }
    }

    /// No key can be in it (a `BETWEEN` with `lo > hi` is an error in DynamoDB).
    fn is_empty(&self) -> bool {
        match (&self.lo, &self.hi) {
            (Some(lo), Some(hi)) => lo > hi || (lo == hi && self.exclude_hi),
            _ => false,
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        let above = match &self.lo_bytes {
            Bound::Included(lo) => key >= lo.as_slice(),
            Bound::Excluded(lo) => key > lo.as_slice(),
            Bound::Unbounded => true,
        };
        let below = match &self.hi_bytes {
            Bound::Included(hi) => key <= hi.as_slice(),
            Bound::Excluded(hi) => key < hi.as_slice(),
            Bound::Unbounded => true,
        };
        above && below
    }
}

/// A scan of one tree, fetched a page at a time in the direction of its first call.
pub struct DynamoIter {
    kv: Arc<DynamoKv>,
    tree: &'static str,
    range: SortRange,
    forward: Option<bool>,
    buffer: VecDeque<(Vec<u8>, Vec<u8>)>,
    next_start: Option<Item>,
    done: bool,
    /// The next page's size: small first (a seek reads one entry), then larger.
    page: i32,
}

impl DynamoIter {
    pub(super) fn new(
        kv: Arc<DynamoKv>,
        tree: &'static str,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
    ) -> DynamoIter {
        let range = SortRange::new(lo, hi);
        let done = range.is_empty();
        DynamoIter {
            kv,
            tree,
            range,
            forward: None,
            buffer: VecDeque::new(),
            next_start: None,
            done,
            page: 8,
        }
    }

    /// The next entry in key order (`forward`) or its reverse. A scan keeps the direction of
    /// its first call; reading from the other end as well is refused with an error.
    pub(super) fn next_in(&mut self, forward: bool) -> Option<Result<(Bytes, Bytes), StoreError>> {
        match self.forward {
            None => self.forward = Some(forward),
            Some(f) if f != forward => {
                self.done = true;
                return Some(Err(StoreError::Io {
                    path: self.kv.target.display(),
                    message: "a DynamoDB scan was read from both ends".into(),
                }));
            }
            Some(_) => {}
        }
        loop {
            if let Some((k, v)) = self.buffer.pop_front() {
                if !self.range.contains(&k) {
                    continue;
                }
                return Some(Ok((Bytes::Owned(k), Bytes::Owned(v))));
            }
            if self.done {
                return None;
            }
            let start = self.next_start.take();
            match self
                .kv
                .query_page(self.tree, &self.range, forward, self.page, start)
            {
                Ok((rows, next)) => {
                    self.page = (self.page * 8).min(1000);
                    self.buffer.extend(rows);
                    self.done = next.is_none();
                    self.next_start = next;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// One transaction
// -------------------------------------------------------------------------------------------

type ItemId = (&'static str, Vec<u8>);

#[derive(Default)]
struct TxState {
    /// Items read: their value and version token (`None`: absent).
    reads: HashMap<ItemId, (Option<Bytes>, Option<String>)>,
    /// Items written: the new value, or `None` for a removal.
    writes: BTreeMap<ItemId, Option<Vec<u8>>>,
}

/// One run of a transaction's closure on DynamoDB: reads remembered, writes buffered.
pub struct DynTx {
    kv: Arc<DynamoKv>,
    state: RefCell<TxState>,
}

impl DynTx {
    pub(super) fn new(kv: Arc<DynamoKv>) -> DynTx {
        DynTx {
            kv,
            state: RefCell::new(TxState::default()),
        }
    }

    pub(super) fn get(&self, tree: &'static str, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        let id = (tree, key.to_vec());
        {
            let state = self.state.borrow();
            if let Some(written) = state.writes.get(&id) {
                return Ok(written.clone().map(Bytes::Owned));
            }
            if let Some((value, _)) = state.reads.get(&id) {
                return Ok(value.clone());
            }
        }
        let read = self.kv.get(tree, key)?;
        let (value, ver) = match read {
            Some((v, ver)) => (Some(v), Some(ver)),
            None => (None, None),
        };
        self.state
            .borrow_mut()
            .reads
            .insert(id, (value.clone(), ver));
        Ok(value)
    }

    pub(super) fn put(&self, tree: &'static str, key: &[u8], value: Option<Vec<u8>>) {
        self.state
            .borrow_mut()
            .writes
            .insert((tree, key.to_vec()), value);
    }

    /// Commits what the closure wrote, on the condition that nothing it read changed.
    pub(super) fn commit(self) -> Result<(), CommitError> {
        let state = self.state.into_inner();
        if state.writes.is_empty() {
            return Ok(());
        }
        for ((tree, _), value) in &state.writes {
            if let Some(v) = value {
                self.kv
                    .check_size(tree, v.len())
                    .map_err(CommitError::Store)?;
            }
        }
        let table = self.kv.table.clone();
        let build_err = |e: aws_sdk_dynamodb::error::BuildError| {
            CommitError::Store(StoreError::Encode {
                what: "a DynamoDB transaction".into(),
                message: e.to_string(),
            })
        };
        let ver_name = || Some(HashMap::from([("#ver".to_owned(), "ver".to_owned())]));
        let mut items = Vec::with_capacity(state.writes.len() + state.reads.len());
        for (id, value) in &state.writes {
            let read = state.reads.get(id).map(|(_, ver)| unchanged(ver));
            let (condition, names, values) = match read {
                Some((cond, val)) => {
                    let names = val.as_ref().and(ver_name());
                    (Some(cond), names, val.map(|(k, v)| HashMap::from([(k, v)])))
                }
                None => (None, None, None),
            };
            let item = match value {
                Some(v) => TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&table)
                            .set_item(Some(full_item(id.0, &id.1, v.clone(), new_version())))
                            .set_condition_expression(condition)
                            .set_expression_attribute_names(names)
                            .set_expression_attribute_values(values)
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
                None => TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&table)
                            .set_key(Some(item_key(id.0, &id.1)))
                            .set_condition_expression(condition)
                            .set_expression_attribute_names(names)
                            .set_expression_attribute_values(values)
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            };
            items.push(item);
        }
        for (id, (_, ver)) in &state.reads {
            if state.writes.contains_key(id) {
                continue;
            }
            let (cond, val) = unchanged(ver);
            let names = val.as_ref().and(ver_name());
            items.push(
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(&table)
                            .set_key(Some(item_key(id.0, &id.1)))
                            .condition_expression(cond)
                            .set_expression_attribute_names(names)
                            .set_expression_attribute_values(
                                val.map(|(k, v)| HashMap::from([(k, v)])),
                            )
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
            );
        }
        self.kv.commit(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_keep_byte_order() {
        let keys: [&[u8]; 6] = [b"", b"\x00", b"\x00\x01", b"a", b"a\x00", b"\xff"];
        for pair in keys.windows(2) {
            assert!(sort_key(pair[0]) < sort_key(pair[1]), "{pair:?}");
            assert_eq!(
                key_of_sort_key(&sort_key(pair[0])).as_deref(),
                Some(pair[0])
            );
        }
    }

    #[test]
    fn a_range_bounds_exactly_its_keys() {
        let r = SortRange::new(
            Bound::Excluded(b"a".to_vec()),
            Bound::Excluded(b"c".to_vec()),
        );
        assert!(!r.contains(b"a"));
        assert!(r.contains(b"a\x00"));
        assert!(r.contains(b"b"));
        assert!(!r.contains(b"c"));
        assert_eq!(r.lo.as_deref(), Some("k6100"));
        assert!(r.exclude_hi);
        let empty = SortRange::new(
            Bound::Included(b"c".to_vec()),
            Bound::Included(b"a".to_vec()),
        );
        assert!(empty.is_empty());
    }
}
