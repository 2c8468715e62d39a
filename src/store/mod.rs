//! The store: findings, requests, votes, step records and the audit log, in one sled database.
//!
//! This is the only module that knows key layouts. Everyone else calls typed methods on
//! [`Store`]; no sled type and no key string appears in the public API (the raw `kv`
//! accessors are private to this folder), so another backend (DynamoDB with conditional
//! writes, for several replicas) can implement the same surface later.
//!
//! # Layout of the folder
//!
//! This file: [`Store`], opening, errors, the transaction over every tree (`Tx`, with the
//! audit append every state change shares), key and encoding helpers. One `impl Store` per
//! idea in the others: [`audit`] (queries, verification), [`findings`], [`requests`] (votes,
//! transitions, execution claims), [`steps`] (execution records), [`quarantine`],
//! [`posture`] (control findings, score snapshots), and the small typed values of the `kv`
//! tree: [`kv`] (the pause flag, anchor records, the health probe), [`cards`] (card
//! locations), [`days`] (claimed digest days), [`ingest_status`] (cursors and source health).
//!
//! It may use the core modules (`finding`, `plan`, `approval`, `audit`, `execution`) and sled.
//! It must never import serenity, the AWS SDK or anything from the edges.
//!
//! # Consistency
//!
//! Every change of state and its audit event commit in **one** multi-tree sled transaction:
//! an upserted finding and its `FindingIngested`/`FindingUpdated` event, a vote with the
//! transition it causes and its event, a compare-and-swap on a request's state with its
//! event. sled 0.34 runs transactions under a process-wide write lock, and retries the closure
//! on conflict, so the closures here only read and write through the transaction and compute
//! from what they read (they never touch a clock or anything outside).
//!
//! Methods whose effect must survive a crash before anyone acts on it (votes, transitions,
//! request updates, new requests, step records) flush before returning. The others rely on
//! sled's periodic flush (every 500 ms), or on their caller's [`Store::flush`] before it
//! acknowledges anything: ingest stores a whole page or batch of findings (and the requests
//! they propose, [`Store::create_request_deferred`]) and flushes once before it moves its
//! cursor or deletes its messages.
//!
//! sled allows one process at a time on a database: a second process gets
//! [`StoreError::Locked`], whose message says so in one sentence.
//!
//! # Trees and key layouts
//!
//! Integers in keys are big-endian so that byte order is numeric order. `seq` is a `u64`,
//! `uuid` the 16 bytes of a request id, `time` a timestamp in microseconds since the epoch as
//! an `i64` with its sign bit flipped (so byte order is time order, before 1970 included).
//! Values are JSON unless stated otherwise.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `schema_version` | ASCII decimal, currently `1` ([`SCHEMA_VERSION`]) |
//! | `meta` | `audit_head` | `{"seq": u64, "hash": hex}`: the last appended event (absent when the log is empty) |
//! | `meta` | `finding_count` | `u64` BE: number of distinct findings |
//! | `meta` | `quarantine_last_id` | `u64` BE: the last quarantine id handed out |
//! | `meta` | `quarantine_first_id` | `u64` BE: the oldest quarantine id still kept (ids from it to `quarantine_last_id` are kept; older ones were dropped) |
//! | `audit` | `seq` (from 1) | [`AuditEvent`], as its record ([`AuditEvent::record`]: the canonical bytes that were hashed, plus `hash`) |
//! | `audit_idx` | `b"f" 0 finding_id 0 seq` | empty: event `seq` is about this finding |
//! | `audit_idx` | `b"r" 0 uuid seq` | empty: event `seq` is about this request |
//! | `audit_idx` | `b"a" 0 actor_key 0 seq` | empty: event `seq` was done by [`Actor::key`] |
//! | `audit_idx` | `b"k" 0 kind 0 seq` | empty: event `seq` has this [`EventKind`] name |
//! | `audit_actors` | `actor_key 0 display_name` | [`Actor`]: every identity seen in the log, to resolve a query's actor name to index keys |
//! | `findings` | `finding_id` | [`StoredFinding`] |
//! | `findings_by_time` | `time(last_ingested_at) finding_id` | empty |
//! | `requests` | `uuid` | [`Request`] |
//! | `requests_by_finding` | `finding_id 0 time(created_at) uuid` | empty |
//! | `requests_by_state` | `state 0 uuid` (state as [`RequestState::as_str`]) | empty |
//! | `steps` | `uuid index` (`index` as `u64`) | [`crate::execution::StepRecord`] |
//! | `quarantine` | `id` (`u64`, from 1) | [`QuarantinedInput`]: at most `ingest.quarantine_max` of them, each `raw` at most [`MAX_QUARANTINED_BYTES`] |
//! | `cursors` | `source` | UTF-8 string: an ingest cursor |
//! | `kv` | `engine.paused`, `audit.anchor.*`, `health.probe` | see [`kv`]: the pause flag, the audit anchor records |
//! | `kv` | `card.…` | see [`cards`]: where each chat card is ([`Store::card_location`]) |
//! | `kv` | `posture.digest.last`, `posture.drop.<account>.<standard>` | see [`days`]: claimed digest days ([`Store::claimed_day`]) |
//! | `kv` | `ingest.<source>.…` | see [`ingest_status`]: each ingest source's health ([`SourceStatus`]) |
//! | `posture` | `account/region/control` ([`GroupKey::encode`]) `0` asff_id | [`crate::posture::ControlFinding`] |
//! | `posture_scores` | `YYYY-MM-DD` | [`crate::posture::Snapshot`]: the day's last recorded scores |
//!
//! The posture trees hold Security Hub's state, not hanko's decisions: each write is one key,
//! outside the audit transaction (what people do about posture is audited through requests).
//!
//! The index trees are written in the same transaction as the records they point to. A key
//! with a `0` separator after a free-form string (a finding id, an actor key) is read back by
//! exact length, so an id that itself contains a `0` byte can never be confused with another.
//!
//! # Audit queries
//!
//! [`Store::query_audit`] walks the index prefixes of every indexed filter that is set
//! (finding, request, actor, kind) backwards and intersects them by sequence number (a
//! zig-zag join with one seek per step), so it decodes only events that match every indexed
//! filter; the remaining filters ([`crate::audit::AuditQuery::matches`]) are applied to those. With only a
//! time range, it scans the log itself, newest first. Events are appended in time order up to
//! the clock skew between writers ([`CLOCK_SKEW_TOLERANCE`]), so a time range bounds every
//! scan: it starts at the first event at or after `until` + tolerance (found by binary search
//! over the log) and stops at the first event older than `since` - tolerance.
//!
//! Cost: one seek per result and per step of the join. An intersection that turns out empty
//! walks the smaller index (about 60 ms for two filters sharing nothing over 1,000,000 events).
//!
//! # Migrations
//!
//! `meta/schema_version` is written on first open. A store written by a newer schema refuses
//! to open ([`StoreError::UnsupportedSchema`]); a future version migrates older ones in
//! [`Store::open`].

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use uuid::Uuid;

mod audit;
mod backend;
mod cards;
mod days;
pub mod dynamo;
mod findings;
mod ingest_status;
mod investigations;
mod kv;
mod leases;
mod posture;
mod quarantine;
mod reminders;
mod requests;
mod reverts;
mod steps;

use backend::{abort, Backend, Tree, TxError, TxResult, TxTree};
pub use cards::{CardKey, CardLocation};
pub use days::DayClaim;
pub use ingest_status::SourceStatus;
pub use kv::AnchorSlot;
pub use leases::{execution_lease, Heartbeat, Lease, LeaseClaim};

use crate::approval::{
    Closure, Decided, Decision, Outcome, Refusal, Request, RequestState, VoteInput,
};
use crate::audit::{Actor, AuditEvent, ChainError, EventKind, NewEvent, GENESIS_HASH};
use crate::finding::Finding;
use crate::posture::GroupKey;

/// Where a store lives: a sled directory or a DynamoDB table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sled(PathBuf),
    DynamoDb(dynamo::DynamoTarget),
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sled(path) => write!(f, "{}", path.display()),
            StoreLocation::DynamoDb(t) => write!(f, "{}", t.display().display()),
        }
    }
}

/// The schema this code reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// How far back in time an event may be appended after a newer one (clock skew between
/// writers) and still be found by a query with `since`.
pub const CLOCK_SKEW_TOLERANCE: Duration = Duration::minutes(5);

const META_SCHEMA_VERSION: &[u8] = b"schema_version";
const META_AUDIT_HEAD: &[u8] = b"audit_head";
const META_FINDING_COUNT: &[u8] = b"finding_count";
const META_QUARANTINE_LAST_ID: &[u8] = b"quarantine_last_id";
const META_QUARANTINE_FIRST_ID: &[u8] = b"quarantine_first_id";

/// The most bytes of a quarantined document kept, truncation marker included.
pub const MAX_QUARANTINED_BYTES: usize = 64 * 1024;
/// The most bytes of a quarantined document's error kept.
const MAX_QUARANTINE_ERROR_BYTES: usize = 1024;
/// What a truncated quarantined document ends with.
pub const QUARANTINE_TRUNCATION_MARKER: &str = "…[hanko: truncated]";

const TREE_META: &str = "meta";
const TREE_AUDIT: &str = "audit";
const TREE_AUDIT_IDX: &str = "audit_idx";
const TREE_AUDIT_ACTORS: &str = "audit_actors";
const TREE_FINDINGS: &str = "findings";
const TREE_FINDINGS_BY_TIME: &str = "findings_by_time";
const TREE_REQUESTS: &str = "requests";
const TREE_REQUESTS_BY_FINDING: &str = "requests_by_finding";
const TREE_REQUESTS_BY_STATE: &str = "requests_by_state";
const TREE_STEPS: &str = "steps";
const TREE_QUARANTINE: &str = "quarantine";
const TREE_CURSORS: &str = "cursors";
const TREE_KV: &str = "kv";
const TREE_POSTURE: &str = "posture";
const TREE_POSTURE_SCORES: &str = "posture_scores";

/// Shown as the path of a temporary store.
const TEMPORARY_PATH: &str = "<temporary store>";

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {} is in use by another hanko process (sled allows one process at a time); stop it or use its chat commands", path.display())]
    Locked { path: PathBuf },
    #[error("store at {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("store at {} was written with schema version {found}, and this hanko reads version {supported}; upgrade hanko", path.display())]
    UnsupportedSchema {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    #[error("corrupt record `{key}` in the store: {message}")]
    Corrupt { key: String, message: String },
    #[error("cannot encode {what} for the store: {message}")]
    Encode { what: String, message: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    Duplicate { what: String },
    #[error("request {request_id} is {found}, not {expected}: something else changed it first")]
    Conflict {
        request_id: Uuid,
        expected: RequestState,
        found: RequestState,
    },
    /// A run's execution lease was taken over by another replica (it lapsed): the run stops
    /// writing, the new holder finishes the request.
    #[error("lease {name} is no longer this run's (now held by {}): another replica took the work over", holder.as_deref().unwrap_or("nobody"))]
    LeaseLost {
        name: String,
        holder: Option<String>,
    },
    #[error("request {request_id} cannot go from {from} to {to}")]
    InvalidTransition {
        request_id: Uuid,
        from: RequestState,
        to: RequestState,
    },
}

/// Why [`Store::verify_audit`] failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain itself is broken: an event was edited, removed or cannot be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The events verify but the recorded head does not match the last of them: events at
    /// the end of the log were deleted, or the last one was rewritten with a fresh hash.
    #[error("audit log ends at event {last_seq} but its recorded head is event {head_seq} with another hash: events at the end were deleted or rewritten")]
    HeadMismatch { head_seq: u64, last_seq: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// The sequence number of the first bad event, when the chain is what failed.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            VerifyError::Chain(e) => Some(e.seq()),
            VerifyError::HeadMismatch { head_seq, last_seq } => Some(if last_seq < head_seq {
                last_seq + 1
            } else {
                *last_seq
            }),
            VerifyError::Store(_) => None,
        }
    }
}

/// A finding as stored: the latest document and when hanko saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFinding {
    pub finding: Finding,
    pub first_ingested_at: DateTime<Utc>,
    pub last_ingested_at: DateTime<Utc>,
}

/// What [`Store::upsert_finding`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// First time this finding id was seen.
    New,
    /// A newer document replaced the stored one.
    Updated {
        previous_count: u64,
        previous_updated_at: Option<DateTime<Utc>>,
        became_archived: bool,
    },
    /// The document is not newer than the stored one; nothing was written.
    Unchanged,
}

/// What [`Store::start_execution`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionStart {
    /// The request is Executing now.
    Started(Request),
    /// The check refused: the request is closed (Expired or Superseded) with its reason.
    Refused(Request),
}

/// A refusal to start an approved request: the state it moves to, why, and its audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRefusal {
    pub to: RequestState,
    pub closure: Closure,
    pub event: NewEvent,
}

/// An input that could not be parsed, kept for a person to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedInput {
    pub id: u64,
    /// Where it came from (`sqs`, `guardduty`, `securityhub`, a file name).
    pub source: String,
    pub raw: String,
    /// The parse error.
    pub error: String,
    pub at: DateTime<Utc>,
    /// The document's size when it was longer than [`MAX_QUARANTINED_BYTES`] and `raw` was
    /// cut (it then ends with [`QUARANTINE_TRUNCATION_MARKER`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_from_bytes: Option<u64>,
}

/// `s` cut at a character boundary to at most `max` bytes, the cut marked with `marker`;
/// `None` when it fits.
fn truncate_bytes(s: &str, max: usize, marker: &str) -> Option<String> {
    if s.len() <= max {
        return None;
    }
    let mut cut = max.saturating_sub(marker.len());
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}{marker}", &s[..cut]))
}

/// The last appended audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

impl Head {
    fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// The engine with every tree opened. Cloned cheaply through the `Arc` in [`Store`].
struct Inner {
    /// Where the database lives (a directory, or `dynamodb://region/table`), for error messages.
    path: PathBuf,
    backend: Backend,
    trees: Trees,
    /// Audit events decoded by queries, so a test can show a query reads only what matches.
    events_decoded: AtomicU64,
    /// Leases this process took over from an owner that stopped renewing them.
    takeovers: AtomicU64,
}

/// The hanko store. Cheap to clone; every clone is the same database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Why a vote's transaction stopped without writing.
enum VoteAbort {
    Store(StoreError),
    Refused {
        refusal: Refusal,
        finding_id: String,
    },
}

impl From<StoreError> for VoteAbort {
    fn from(e: StoreError) -> Self {
        VoteAbort::Store(e)
    }
}

/// How long [`Store::open`] waits for a file lock to be released.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(1500);

/// sled's page cache. Its default (1 GiB) lets a burst of findings grow the process by every
/// page it writes; hanko's reads are point lookups and short index ranges, which the
/// operating system's page cache serves well, so a small cache bounds the resident memory.
/// 8 MiB: the 10,000-finding burst ran as fast as with 16 MiB (1.8-2.1 s) and peaked lower.
pub const CACHE_BYTES: u64 = 8 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// A lock held by this process's previous handle is waited for up to [`LOCK_PATIENCE`]:
    /// sled's flusher thread lets go of the file lock a moment after the last handle is
    /// dropped. Another process's lock gives [`StoreError::Locked`] after that wait.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        let db = loop {
            match sled::Config::new()
                .path(path)
                .cache_capacity(CACHE_BYTES)
                .open()
            {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: path.to_path_buf(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                Err(e) => return Err(sled_error(path, e)),
            }
        };
        Store::from_db(path.to_path_buf(), db)
    }

    /// Opens the store at `location`: [`Store::open`] or [`Store::open_dynamodb`] with the
    /// standard AWS chain.
    pub fn open_at(location: &StoreLocation) -> Result<Store, StoreError> {
        match location {
            StoreLocation::Sled(path) => Store::open(path),
            StoreLocation::DynamoDb(target) => Store::open_dynamodb(target, None),
        }
    }

    /// A store in a temporary directory, removed when the last clone is dropped.
    pub fn open_temporary() -> Result<Store, StoreError> {
        let path = PathBuf::from(TEMPORARY_PATH);
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| sled_error(&path, e))?;
        Store::from_db(path, db)
    }

    fn from_db(path: PathBuf, db: sled::Db) -> Result<Store, StoreError> {
        let shared: Arc<Path> = Arc::from(path.as_path());
        let open = |name: &'static str| -> Result<Tree, StoreError> {
            Ok(Tree::Sled {
                tree: db.open_tree(name).map_err(|e| sled_error(&path, e))?,
                path: shared.clone(),
            })
        };
        let trees = Trees::open(open)?;
        Store::from_trees(path, Backend::Sled(db), trees)
    }

    /// Opens the store in a DynamoDB table, which `hanko store init` created
    /// ([`Store::init_dynamodb`]). `conf`: an SDK config to use instead of the standard chain's
    /// (tests against moto); the chain's honours `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn open_dynamodb(
        target: &dynamo::DynamoTarget,
        conf: Option<aws_config::SdkConfig>,
    ) -> Result<Store, StoreError> {
        let kv = dynamo::DynamoKv::open(target, conf)?;
        let trees = Trees::open(|name| {
            Ok(Tree::Dynamo {
                kv: kv.clone(),
                name,
            })
        })?;
        Store::from_trees(target.display(), Backend::Dynamo(kv), trees)
    }

    /// Creates the store's DynamoDB table if it is missing (on-demand capacity, deletion
    /// protection, point-in-time recovery), idempotently; whether it created it.
    pub fn init_dynamodb(
        target: &dynamo::DynamoTarget,
        conf: Option<aws_config::SdkConfig>,
    ) -> Result<bool, StoreError> {
        dynamo::DynamoKv::init_table(target, conf)
    }

    fn from_trees(path: PathBuf, backend: Backend, t: Trees) -> Result<Store, StoreError> {
        let inner = Inner {
            trees: t,
            events_decoded: AtomicU64::new(0),
            takeovers: AtomicU64::new(0),
            path,
            backend,
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// Copies every record of this store into `to`, which must be empty (no audit event, no
    /// finding, no request): `hanko store migrate`. Records are copied byte for byte, tree by
    /// tree, so the audit chain and its head arrive as they were; the caller verifies `to`.
    /// Returns how many records were copied.
    pub fn copy_into(&self, to: &Store) -> Result<u64, StoreError> {
        if to.head()?.seq > 0
            || to.inner.trees.findings.first()?.is_some()
            || to.inner.trees.requests.first()?.is_some()
        {
            return Err(StoreError::Duplicate {
                what: format!(
                    "a store at {} (the destination must be empty)",
                    to.inner.path.display()
                ),
            });
        }
        let pairs = |s: &Store| -> [Tree; 15] {
            let i = &*s.inner;
            [
                i.trees.findings.clone(),
                i.trees.findings_by_time.clone(),
                i.trees.requests.clone(),
                i.trees.requests_by_finding.clone(),
                i.trees.requests_by_state.clone(),
                i.trees.steps.clone(),
                i.trees.quarantine.clone(),
                i.trees.cursors.clone(),
                i.trees.kv.clone(),
                i.trees.posture.clone(),
                i.trees.posture_scores.clone(),
                i.trees.audit.clone(),
                i.trees.audit_idx.clone(),
                i.trees.audit_actors.clone(),
                // Last: the head and counters, once everything they count is there.
                i.trees.meta.clone(),
            ]
        };
        let mut copied = 0;
        for (from, into) in pairs(self).iter().zip(pairs(to).iter()) {
            for item in from.iter() {
                let (key, value) = item?;
                into.insert(&key, &value)?;
                copied += 1;
            }
        }
        to.flush()?;
        Ok(copied)
    }

    /// Leases this process took over after their holder stopped renewing them.
    pub fn lease_takeovers(&self) -> u64 {
        self.inner
            .takeovers
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Can several processes share this store (DynamoDB), so that leases decide who does what?
    pub fn is_shared(&self) -> bool {
        matches!(self.inner.backend, Backend::Dynamo(_))
    }

    /// The engine's name: `sled` or `dynamodb`.
    pub fn backend_name(&self) -> &'static str {
        self.inner.backend.name()
    }

    /// DynamoDB transactions that met a conflict and ran again (0 on sled).
    pub fn write_conflicts(&self) -> u64 {
        match &self.inner.backend {
            Backend::Sled(_) => 0,
            Backend::Dynamo(kv) => kv.conflicts(),
        }
    }

    /// Read and write request units this store's DynamoDB calls cost since it opened, by the
    /// on-demand pricing rules (`None` on sled).
    pub fn request_units(&self) -> Option<(u64, u64)> {
        match &self.inner.backend {
            Backend::Sled(_) => None,
            Backend::Dynamo(kv) => Some(kv.request_units()),
        }
    }

    /// Read and write capacity units DynamoDB reported as consumed since this store opened
    /// (`None` on sled).
    pub fn consumed_capacity(&self) -> Option<(f64, f64)> {
        match &self.inner.backend {
            Backend::Sled(_) => None,
            Backend::Dynamo(kv) => Some(kv.consumed_capacity()),
        }
    }

    /// Writes the schema version on first open; refuses a store from another version.
    fn check_schema(&self) -> Result<(), StoreError> {
        let current = SCHEMA_VERSION.to_string();
        let previous = self.inner.trees.meta.compare_and_swap(
            META_SCHEMA_VERSION,
            None::<&[u8]>,
            Some(current.as_bytes()),
        )?;
        match previous {
            Ok(()) => Ok(()),
            Err(cas) => {
                let found = cas
                    .current
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_default();
                if found == current {
                    Ok(())
                } else {
                    Err(StoreError::UnsupportedSchema {
                        path: self.inner.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    })
                }
            }
        }
    }

    /// Writes everything to disk (sled). On DynamoDB every write is durable when it returns.
    pub fn flush(&self) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Sled(db) => {
                db.flush().map_err(|e| sled_error(&self.inner.path, e))?;
            }
            Backend::Dynamo(_) => {}
        }
        Ok(())
    }

    /// Runs `f` in one transaction over every transactional tree.
    fn transact<T, E: From<StoreError>>(
        &self,
        f: impl Fn(&Tx<'_>) -> TxResult<T, E>,
    ) -> Result<T, E> {
        match &self.inner.backend {
            Backend::Sled(_) => self.transact_sled(f),
            Backend::Dynamo(kv) => self.transact_dynamo(kv, f),
        }
    }

    /// A sled transaction over every transactional tree.
    fn transact_sled<T, E: From<StoreError>>(
        &self,
        f: impl Fn(&Tx<'_>) -> TxResult<T, E>,
    ) -> Result<T, E> {
        let i = &*self.inner;
        let path = i.path.as_path();
        let sled_tree = |t: &Tree| -> Result<sled::Tree, StoreError> {
            match t {
                Tree::Sled { tree, .. } => Ok(tree.clone()),
                Tree::Dynamo { .. } => Err(StoreError::Io {
                    path: path.to_path_buf(),
                    message: "a DynamoDB tree in a sled store".into(),
                }),
            }
        };
        let owned = [
            sled_tree(&i.trees.meta)?,
            sled_tree(&i.trees.audit)?,
            sled_tree(&i.trees.audit_idx)?,
            sled_tree(&i.trees.audit_actors)?,
            sled_tree(&i.trees.findings)?,
            sled_tree(&i.trees.findings_by_time)?,
            sled_tree(&i.trees.requests)?,
            sled_tree(&i.trees.requests_by_finding)?,
            sled_tree(&i.trees.requests_by_state)?,
            sled_tree(&i.trees.steps)?,
            sled_tree(&i.trees.quarantine)?,
            sled_tree(&i.trees.kv)?,
        ];
        let [m, a, ai, aa, f1, fbt, r, rbf, rbs, st, q, k] = &owned;
        let trees = (m, a, ai, aa, f1, fbt, r, rbf, rbs, st, q, k);
        let result = trees.transaction(
            |(
                meta,
                audit,
                audit_idx,
                audit_actors,
                findings,
                findings_by_time,
                requests,
                requests_by_finding,
                requests_by_state,
                steps,
                quarantine,
                kv,
            )| {
                let t = |tree| TxTree::Sled { tree, path };
                let tx = Tx {
                    meta: t(meta),
                    audit: t(audit),
                    audit_idx: t(audit_idx),
                    audit_actors: t(audit_actors),
                    findings: t(findings),
                    findings_by_time: t(findings_by_time),
                    requests: t(requests),
                    requests_by_finding: t(requests_by_finding),
                    requests_by_state: t(requests_by_state),
                    steps: t(steps),
                    quarantine: t(quarantine),
                    kv: t(kv),
                };
                match f(&tx) {
                    Ok(v) => Ok(v),
                    Err(TxError::Abort(e)) => Err(ConflictableTransactionError::Abort(e)),
                    Err(TxError::Conflict) => Err(ConflictableTransactionError::Conflict),
                    Err(TxError::Storage(e)) => {
                        Err(ConflictableTransactionError::Abort(E::from(e)))
                    }
                }
            },
        );
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => E::from(sled_error(path, e)),
        })
    }

    /// A DynamoDB transaction: the closure runs against fresh reads until its commit finds
    /// nothing it read changed ([`dynamo`]'s module docs).
    fn transact_dynamo<T, E: From<StoreError>>(
        &self,
        kv: &Arc<dynamo::DynamoKv>,
        f: impl Fn(&Tx<'_>) -> TxResult<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 0;
        loop {
            let dtx = dynamo::DynTx::new(kv.clone());
            let outcome = {
                let t = |name| TxTree::Dynamo { tx: &dtx, name };
                let tx = Tx {
                    meta: t(TREE_META),
                    audit: t(TREE_AUDIT),
                    audit_idx: t(TREE_AUDIT_IDX),
                    audit_actors: t(TREE_AUDIT_ACTORS),
                    findings: t(TREE_FINDINGS),
                    findings_by_time: t(TREE_FINDINGS_BY_TIME),
                    requests: t(TREE_REQUESTS),
                    requests_by_finding: t(TREE_REQUESTS_BY_FINDING),
                    requests_by_state: t(TREE_REQUESTS_BY_STATE),
                    steps: t(TREE_STEPS),
                    quarantine: t(TREE_QUARANTINE),
                    kv: t(TREE_KV),
                };
                f(&tx)
            };
            match outcome {
                Ok(v) => match dtx.commit() {
                    Ok(()) => return Ok(v),
                    Err(dynamo::CommitError::Retry) => {}
                    Err(dynamo::CommitError::Store(e)) => return Err(E::from(e)),
                },
                Err(TxError::Abort(e)) => return Err(e),
                Err(TxError::Conflict) => {}
                Err(TxError::Storage(e)) => return Err(E::from(e)),
            }
            attempt += 1;
            kv.back_off(attempt).map_err(E::from)?;
        }
    }

    /// How many items of a batch one transaction may hold, for a batch whose elements write
    /// about `items_each` items each: all of them on sled, as many as fit in DynamoDB's
    /// 100-item limit (at least one) there.
    fn batch_size(&self, items_each: usize) -> usize {
        match self.inner.backend.max_transaction_items() {
            None => usize::MAX,
            Some(max) => (max / items_each.max(1)).max(1),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Plumbing
    // ---------------------------------------------------------------------------------------

    fn get<T: DeserializeOwned>(
        &self,
        tree: &Tree,
        key: &[u8],
        name: impl FnOnce() -> String,
    ) -> Result<Option<T>, StoreError> {
        match tree.get(key)? {
            Some(value) => decode(&value, name).map(Some),
            None => Ok(None),
        }
    }

    fn get_string(
        &self,
        tree: &Tree,
        tree_name: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        match tree.get(key.as_bytes())? {
            Some(value) => {
                String::from_utf8(value.to_vec())
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        key: format!("{tree_name}/{key}"),
                        message: e.to_string(),
                    })
            }
            None => Ok(None),
        }
    }
}

/// The transactional view of every tree written in transactions.
struct Tx<'a> {
    meta: TxTree<'a>,
    audit: TxTree<'a>,
    audit_idx: TxTree<'a>,
    audit_actors: TxTree<'a>,
    findings: TxTree<'a>,
    findings_by_time: TxTree<'a>,
    requests: TxTree<'a>,
    requests_by_finding: TxTree<'a>,
    requests_by_state: TxTree<'a>,
    steps: TxTree<'a>,
    quarantine: TxTree<'a>,
    kv: TxTree<'a>,
}

/// Every tree of a store, as opened.
struct Trees {
    meta: Tree,
    audit: Tree,
    audit_idx: Tree,
    audit_actors: Tree,
    findings: Tree,
    findings_by_time: Tree,
    requests: Tree,
    requests_by_finding: Tree,
    requests_by_state: Tree,
    steps: Tree,
    quarantine: Tree,
    cursors: Tree,
    kv: Tree,
    posture: Tree,
    posture_scores: Tree,
}

impl Trees {
    /// Opens every tree by name.
    fn open(
        mut open: impl FnMut(&'static str) -> Result<Tree, StoreError>,
    ) -> Result<Trees, StoreError> {
        Ok(Trees {
            meta: open(TREE_META)?,
            audit: open(TREE_AUDIT)?,
            audit_idx: open(TREE_AUDIT_IDX)?,
            audit_actors: open(TREE_AUDIT_ACTORS)?,
            findings: open(TREE_FINDINGS)?,
            findings_by_time: open(TREE_FINDINGS_BY_TIME)?,
            requests: open(TREE_REQUESTS)?,
            requests_by_finding: open(TREE_REQUESTS_BY_FINDING)?,
            requests_by_state: open(TREE_REQUESTS_BY_STATE)?,
            steps: open(TREE_STEPS)?,
            quarantine: open(TREE_QUARANTINE)?,
            cursors: open(TREE_CURSORS)?,
            kv: open(TREE_KV)?,
            posture: open(TREE_POSTURE)?,
            posture_scores: open(TREE_POSTURE_SCORES)?,
        })
    }
}

impl Tx<'_> {
    fn get<T: DeserializeOwned, E: From<StoreError>>(
        &self,
        tree: TxTree<'_>,
        key: &[u8],
        name: impl FnOnce() -> String,
    ) -> TxResult<Option<T>, E> {
        match tree.get(key)? {
            Some(value) => match decode(&value, name) {
                Ok(v) => Ok(Some(v)),
                Err(e) => abort(e),
            },
            None => Ok(None),
        }
    }

    fn get_u64<E: From<StoreError>>(&self, tree: TxTree<'_>, key: &[u8]) -> TxResult<u64, E> {
        match tree.get(key)? {
            None => Ok(0),
            Some(value) => match be_u64(&value) {
                Some(n) => Ok(n),
                None => abort(StoreError::Corrupt {
                    key: String::from_utf8_lossy(key).into_owned(),
                    message: format!("expected an 8-byte counter, found {} bytes", value.len()),
                }),
            },
        }
    }

    fn get_request<E: From<StoreError>>(&self, id: Uuid) -> TxResult<Option<Request>, E> {
        self.get(self.requests, id.as_bytes(), || request_key_name(id))
    }

    /// Writes `req` and keeps its indexes in step with `previous` (the stored version).
    fn put_request<E: From<StoreError>>(
        &self,
        req: &Request,
        previous: Option<&Request>,
    ) -> TxResult<(), E> {
        self.requests
            .insert(req.id.as_bytes(), tx_encode(req, "request")?)?;
        let state_key = request_state_key(req.state, req.id);
        let finding_key = request_finding_key(req);
        if let Some(prev) = previous {
            let old_state_key = request_state_key(prev.state, prev.id);
            if old_state_key != state_key {
                self.requests_by_state.remove(old_state_key)?;
            }
            let old_finding_key = request_finding_key(prev);
            if old_finding_key != finding_key {
                self.requests_by_finding.remove(old_finding_key)?;
            }
        }
        self.requests_by_state.insert(state_key, &[] as &[u8])?;
        self.requests_by_finding.insert(finding_key, &[] as &[u8])?;
        Ok(())
    }

    /// Seals `ev` after the current head and writes it, its index entries and the new head.
    fn append<E: From<StoreError>>(&self, ev: NewEvent) -> TxResult<AuditEvent, E> {
        let head: Head = self
            .get(self.meta, META_AUDIT_HEAD, meta_key_name(META_AUDIT_HEAD))?
            .unwrap_or_else(Head::genesis);
        let seq = head.seq + 1;
        // The record holds the very bytes that were hashed (audit's module docs).
        let (event, record) = ev.seal_record(seq, &head.hash);
        let new_head = Head {
            seq,
            hash: event.hash.clone(),
        };
        self.audit.insert(seq.to_be_bytes(), record)?;
        for key in index_keys(&event) {
            self.audit_idx.insert(key, &[] as &[u8])?;
        }
        self.audit_actors.insert(
            actor_catalog_key(&event.actor),
            tx_encode(&event.actor, "actor")?,
        )?;
        self.meta
            .insert(META_AUDIT_HEAD, tx_encode(&new_head, "audit head")?)?;
        Ok(event)
    }
}

// -------------------------------------------------------------------------------------------
// Events
// -------------------------------------------------------------------------------------------

/// The audit event a decided vote writes.
fn vote_event(decided: &Decided, vote: &VoteInput, now: DateTime<Utc>) -> NewEvent {
    let request = &decided.request;
    let (kind, detail) = match (&decided.outcome, &vote.decision) {
        (Outcome::Approved { approvals }, _) => (
            EventKind::ApprovalGranted,
            serde_json::json!({
                "approvals": approvals,
                "approvers": request.approvers().iter().map(|a| a.key()).collect::<Vec<_>>(),
                "plan_hash": vote.plan_hash,
            }),
        ),
        (Outcome::Recorded { approvals, needed }, _) => (
            EventKind::VoteRecorded,
            serde_json::json!({
                "decision": decision_name(&vote.decision),
                "approvals": approvals,
                "needed": needed,
                "plan_hash": vote.plan_hash,
            }),
        ),
        (Outcome::Rejected, decision) => (
            EventKind::RequestRejected,
            serde_json::json!({
                "reason": match decision {
                    Decision::Reject { reason } => reason.as_str(),
                    Decision::Approve => "",
                },
                "plan_hash": vote.plan_hash,
            }),
        ),
    };
    NewEvent::new(now, vote.voter.actor.clone(), kind)
        .finding(request.finding_id.clone())
        .request(request.id)
        .detail(detail)
}

fn decision_name(decision: &Decision) -> &'static str {
    match decision {
        Decision::Approve => "approve",
        Decision::Reject { .. } => "reject",
    }
}

/// Fills in the request and finding ids of an event about `req` when the caller left them out.
fn event_for_request(mut ev: NewEvent, req: &Request) -> NewEvent {
    if ev.request_id.is_none() {
        ev.request_id = Some(req.id);
    }
    if ev.finding_id.is_none() {
        ev.finding_id = Some(req.finding_id.clone());
    }
    ev
}

fn finding_detail(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "finding_type": f.finding_type,
        "severity": f.severity,
        "account_id": f.account_id,
        "region": f.region,
        "count": f.count,
        "updated_at": f.updated_at,
        "archived": f.archived,
        "sample": f.sample,
    })
}

// -------------------------------------------------------------------------------------------
// Keys
// -------------------------------------------------------------------------------------------

fn idx_finding_prefix(finding_id: &str) -> Vec<u8> {
    tagged_prefix(b'f', finding_id.as_bytes())
}

fn idx_request_prefix(request_id: Uuid) -> Vec<u8> {
    let mut key = vec![b'r', 0];
    key.extend_from_slice(request_id.as_bytes());
    key
}

fn idx_actor_prefix(actor_key: &str) -> Vec<u8> {
    tagged_prefix(b'a', actor_key.as_bytes())
}

fn idx_kind_prefix(kind: EventKind) -> Vec<u8> {
    tagged_prefix(b'k', kind.as_str().as_bytes())
}

/// `tag 0 value 0`.
fn tagged_prefix(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 3 + 8);
    key.push(tag);
    key.push(0);
    key.extend_from_slice(value);
    key.push(0);
    key
}

/// The `audit_idx` keys of one event.
fn index_keys(event: &AuditEvent) -> Vec<Vec<u8>> {
    let mut prefixes = Vec::with_capacity(4);
    if let Some(f) = &event.finding_id {
        prefixes.push(idx_finding_prefix(f));
    }
    if let Some(r) = event.request_id {
        prefixes.push(idx_request_prefix(r));
    }
    prefixes.push(idx_actor_prefix(&event.actor.key()));
    prefixes.push(idx_kind_prefix(event.kind));
    for p in &mut prefixes {
        p.extend_from_slice(&event.seq.to_be_bytes());
    }
    prefixes
}

fn actor_catalog_key(actor: &Actor) -> Vec<u8> {
    let mut key = actor.key().into_bytes();
    key.push(0);
    key.extend_from_slice(actor.display_name().as_bytes());
    key
}

/// Order-preserving bytes of a time: microseconds with the sign bit flipped.
fn time_key(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

fn finding_time_key(t: DateTime<Utc>, finding_id: &str) -> Vec<u8> {
    let mut key = time_key(t).to_vec();
    key.extend_from_slice(finding_id.as_bytes());
    key
}

fn requests_by_finding_prefix(finding_id: &str) -> Vec<u8> {
    let mut key = finding_id.as_bytes().to_vec();
    key.push(0);
    key
}

fn request_finding_key(req: &Request) -> Vec<u8> {
    let mut key = requests_by_finding_prefix(&req.finding_id);
    key.extend_from_slice(&time_key(req.created_at));
    key.extend_from_slice(req.id.as_bytes());
    key
}

fn requests_by_state_prefix(state: RequestState) -> Vec<u8> {
    let mut key = state.as_str().as_bytes().to_vec();
    key.push(0);
    key
}

fn request_state_key(state: RequestState, id: Uuid) -> Vec<u8> {
    let mut key = requests_by_state_prefix(state);
    key.extend_from_slice(id.as_bytes());
    key
}

fn step_key(request_id: Uuid, index: usize) -> Vec<u8> {
    let mut key = request_id.as_bytes().to_vec();
    key.extend_from_slice(&(index as u64).to_be_bytes());
    key
}

fn uuid_at(key: &[u8], at: usize) -> Uuid {
    key.get(at..at + 16)
        .and_then(|b| Uuid::from_slice(b).ok())
        .unwrap_or(Uuid::nil())
}

fn be_u64(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_be_bytes)
}

fn audit_key_name(key: &[u8]) -> String {
    match be_u64(key) {
        Some(seq) => format!("{TREE_AUDIT}/{seq}"),
        None => format!("{TREE_AUDIT}/{}", hex::encode(key)),
    }
}

fn meta_key_name(key: &'static [u8]) -> impl FnOnce() -> String {
    move || format!("{TREE_META}/{}", String::from_utf8_lossy(key))
}

fn request_key_name(id: Uuid) -> String {
    format!("{TREE_REQUESTS}/{id}")
}

// -------------------------------------------------------------------------------------------
// Encoding and errors
// -------------------------------------------------------------------------------------------

/// `account/region/control 0 asff_id`: a group's findings share a prefix.
fn posture_key(group: &GroupKey, finding_id: &str) -> Vec<u8> {
    let mut key = group.encode().into_bytes();
    key.push(0);
    key.extend_from_slice(finding_id.as_bytes());
    key
}

fn posture_name(key: &[u8]) -> String {
    format!(
        "{TREE_POSTURE}/{}",
        String::from_utf8_lossy(key).replace('\0', "/")
    )
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Encode {
        what: what.to_string(),
        message: e.to_string(),
    })
}

/// [`encode`] inside a transaction: a failure aborts it.
fn tx_encode<T: Serialize, E: From<StoreError>>(value: &T, what: &str) -> TxResult<Vec<u8>, E> {
    encode(value, what).or_else(abort)
}

fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    key: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: key(),
        message: e.to_string(),
    })
}

/// sled reports a held lock as an `Io` error of kind `Other` whose message starts with
/// "could not acquire lock"; `WouldBlock` is what `flock` itself returns.
fn is_lock_error(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock")
        }
        _ => false,
    }
}

fn sled_error(path: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Corruption { at, .. } => StoreError::Corrupt {
            key: format!("sled log at {at:?}"),
            message: format!("sled found corruption in {}", path.display()),
        },
        other => StoreError::Io {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditQuery;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap()
    }

    fn event(finding: &str, kind: EventKind) -> NewEvent {
        NewEvent::new(t0(), Actor::System, kind).finding(finding)
    }

    #[test]
    fn time_keys_sort_in_time_order_across_the_epoch() {
        let times = [
            Utc.with_ymd_and_hms(1960, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 1).unwrap(),
            t0(),
        ];
        for pair in times.windows(2) {
            assert!(time_key(pair[0]) < time_key(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn index_keys_name_every_indexed_field() {
        let request = Uuid::new_v4();
        let sealed = event("f1", EventKind::VoteRecorded)
            .request(request)
            .seal(7, GENESIS_HASH);
        let seq = 7u64.to_be_bytes();
        let with_seq = |mut p: Vec<u8>| {
            p.extend_from_slice(&seq);
            p
        };
        assert_eq!(
            index_keys(&sealed),
            vec![
                with_seq(b"f\0f1\0".to_vec()),
                with_seq([&b"r\0"[..], request.as_bytes()].concat()),
                with_seq(b"a\0system\0".to_vec()),
                with_seq(b"k\0VoteRecorded\0".to_vec()),
            ]
        );
    }

    #[test]
    fn a_finding_query_decodes_only_that_findings_events() {
        let store = Store::open_temporary().unwrap();
        for i in 0..2000 {
            store
                .append_audit(event(
                    &format!("noise-{}", i % 50),
                    EventKind::FindingUpdated,
                ))
                .unwrap();
            if i % 500 == 0 {
                store
                    .append_audit(event("target", EventKind::FindingIngested))
                    .unwrap();
            }
        }
        let before = store.events_decoded();
        let q = AuditQuery {
            finding_id: Some("target".into()),
            ..Default::default()
        };
        let found = store.query_audit(&q).unwrap();
        assert_eq!(found.len(), 4);
        assert!(found.windows(2).all(|w| w[0].seq > w[1].seq));
        assert_eq!(store.events_decoded() - before, 4);

        // Two indexed filters: only the intersection is decoded, although "system" and
        // FindingUpdated each match thousands of events.
        let before = store.events_decoded();
        let q = AuditQuery {
            finding_id: Some("noise-7".into()),
            actor: Some("system".into()),
            kind: Some(EventKind::FindingUpdated),
            limit: Some(5),
            ..Default::default()
        };
        let found = store.query_audit(&q).unwrap();
        assert_eq!(found.len(), 5);
        assert!(found
            .iter()
            .all(|e| e.finding_id.as_deref() == Some("noise-7")));
        assert_eq!(store.events_decoded() - before, 5);
    }

    #[test]
    fn a_finding_id_with_a_zero_byte_is_not_confused_with_its_prefix() {
        let store = Store::open_temporary().unwrap();
        store
            .append_audit(event("x", EventKind::FindingIngested))
            .unwrap();
        store
            .append_audit(event("x\0y", EventKind::FindingIngested))
            .unwrap();
        store
            .append_audit(event("x\0", EventKind::FindingIngested))
            .unwrap();
        for (id, seq) in [("x", 1), ("x\0y", 2), ("x\0", 3)] {
            let q = AuditQuery {
                finding_id: Some(id.into()),
                ..Default::default()
            };
            let found: Vec<u64> = store
                .query_audit(&q)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(found, [seq], "{id:?}");
        }
    }

    #[test]
    fn schema_version_is_written_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(
                store
                    .inner
                    .trees
                    .meta
                    .get(META_SCHEMA_VERSION)
                    .unwrap()
                    .as_deref(),
                Some(&b"1"[..])
            );
            store
                .inner
                .trees
                .meta
                .insert(META_SCHEMA_VERSION, &b"2"[..])
                .unwrap();
            store.flush().unwrap();
        }
        match Store::open(dir.path()) {
            Err(StoreError::UnsupportedSchema {
                found, supported, ..
            }) => {
                assert_eq!((found.as_str(), supported), ("2", 1));
            }
            other => panic!("expected UnsupportedSchema, got {other:?}"),
        }
    }

    #[test]
    fn a_corrupt_request_is_a_typed_error_not_a_panic() {
        let store = Store::open_temporary().unwrap();
        let id = Uuid::new_v4();
        store
            .inner
            .trees
            .requests
            .insert(id.as_bytes(), &b"{oops"[..])
            .unwrap();
        match store.get_request(id) {
            Err(StoreError::Corrupt { key, .. }) => assert_eq!(key, format!("requests/{id}")),
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Inside a transaction too.
        let ev = NewEvent::new(t0(), Actor::System, EventKind::RequestExpired);
        let err = store
            .transition(id, RequestState::Pending, RequestState::Expired, ev)
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert_eq!(store.audit_len(), 0);
    }
}
