//! What a leaked access key did: CloudTrail events read into plain types, summarized for a
//! card, and the resources the key created that hanko can contain (issue 15, part 3).
//!
//! Owns [`Window`] (the time range asked), [`TrailEvent`] (one `LookupEvents` event, read from
//! the API's own fields and the record in its `CloudTrailEvent` string), [`Created`] (what a
//! successful call created, with its id), [`Summary`] / [`summarize`] (counts, calls by name,
//! created resources, sources, first and last time), [`Containable`] / [`containable`] (what to
//! propose, as separate approval-gated requests: never a deletion) and [`jsonl`] (the whole list
//! as JSON Lines, for an attachment).
//!
//! Pure: no SDK, no I/O, no clock. It may use [`crate::ids`] and [`crate::util`]; the AWS
//! adapter ([`crate::aws::cloudtrail`]) turns SDK events into [`ApiEvent`]s and calls
//! [`TrailEvent::parse`].
//!
//! A record's request parameters are the caller's text, and the caller is the attacker: every
//! id kept is checked first (`ids::is_instance_id`, `ids::is_access_key_id`,
//! `ids::is_bucket_name`, `ids::is_iam_name`, ...), and a value that fails is dropped, never
//! shown or proposed. Free text (user agents, event names) is kept on one line and bounded;
//! escaping it for Discord is the card's job.
//!
//! Where created ids live in a record (only when it has no `errorCode`):
//!
//! | eventSource / eventName | id |
//! |---|---|
//! | ec2 `RunInstances` | `responseElements.instancesSet.items[].instanceId` |
//! | iam `CreateAccessKey` | `responseElements.accessKey.accessKeyId`, `.userName` |
//! | iam `CreateUser` | `responseElements.user.userName` |
//! | iam `CreateRole` | `responseElements.role.roleName`, `.arn` |
//! | ec2 `CreateSecurityGroup` | `responseElements.groupId`; name in `requestParameters.groupName` |
//! | s3 `CreateBucket` | `requestParameters.bucketName` (`responseElements` is null) |
//! | s3 `PutBucketPolicy` | `requestParameters.bucketName`, `.bucketPolicy` (an object, or a JSON string) |

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids;

/// The most bytes [`jsonl`] writes; whole lines only.
pub const MAX_JSONL_BYTES: usize = 8 * 1024 * 1024;
/// The most characters kept of a user agent.
const MAX_USER_AGENT_CHARS: usize = 256;
/// The most characters kept of any other text field (names, sources, ids, error codes).
const MAX_TEXT_CHARS: usize = 128;
/// The most resources kept of one event's `Resources`.
const MAX_RESOURCES_PER_EVENT: usize = 20;
/// The most created resources kept of one event (a `RunInstances` of many instances).
const MAX_CREATED_PER_EVENT: usize = 1000;

const EC2: &str = "ec2.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const S3: &str = "s3.amazonaws.com";

/// The time range of a lookup: `LookupEvents`' `StartTime` and `EndTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// The `lookback` before `end` (a negative lookback counts as none).
    pub fn back_from(end: DateTime<Utc>, lookback: chrono::Duration) -> Window {
        Window {
            start: end - lookback.max(chrono::Duration::zero()),
            end,
        }
    }

    /// Is `t` inside the window (both ends included)?
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t <= self.end
    }
}

/// The fields of one `LookupEvents` `Event`, as the API gives them (every one optional), with
/// `CloudTrailEvent` still the JSON text it is on the wire. The AWS adapter fills it from the
/// SDK's `Event`; tests fill it by hand.
#[derive(Debug, Clone, Default)]
pub struct ApiEvent<'a> {
    pub event_id: Option<&'a str>,
    pub event_name: Option<&'a str>,
    /// `"true"` or `"false"`: a string in the API.
    pub read_only: Option<&'a str>,
    pub event_time: Option<DateTime<Utc>>,
    pub event_source: Option<&'a str>,
    pub username: Option<&'a str>,
    /// `Resources[]`: (`ResourceType`, `ResourceName`).
    pub resources: Vec<(Option<&'a str>, Option<&'a str>)>,
    pub cloud_trail_event: Option<&'a str>,
}

/// A resource an event names (`Event.Resources[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
}

/// One CloudTrail event of the key, read. One line of [`jsonl`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailEvent {
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub event_time: Option<DateTime<Utc>>,
    /// The record's `awsRegion`, else the region that was asked.
    pub region: String,
    /// `Event.ReadOnly` (`"true"`/`"false"`), else the record's `readOnly`; `None`: unknown
    /// (counted as mutating).
    pub read_only: Option<bool>,
    pub username: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The record's `errorCode`: the call failed and created nothing.
    pub error_code: Option<String>,
    pub resources: Vec<ResourceRef>,
    /// What the call created; empty when it failed.
    pub created: Vec<Created>,
    /// `CloudTrailEvent` was missing or not a JSON object: only the API's own fields are known.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
}

/// A resource a successful call created (or, for a bucket policy, changed), with its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Created {
    Instance {
        id: String,
    },
    /// `user`: the user the key belongs to, when the record names a valid one.
    AccessKey {
        id: String,
        user: Option<String>,
    },
    User {
        name: String,
    },
    Role {
        name: String,
        arn: Option<String>,
    },
    SecurityGroup {
        id: String,
        name: Option<String>,
    },
    Bucket {
        name: String,
    },
    /// A bucket policy was put; `public`: a statement allows everyone (`Principal: "*"`).
    BucketPolicy {
        bucket: String,
        public: bool,
    },
}

impl Created {
    /// What makes two of them the same resource: the kind and the id. A bucket's policy is one
    /// resource however often it was put (the newest put says how it is now).
    fn key(&self) -> (&'static str, &str) {
        match self {
            Created::Instance { id } => ("instance", id),
            Created::AccessKey { id, .. } => ("access_key", id),
            Created::User { name } => ("user", name),
            Created::Role { name, .. } => ("role", name),
            Created::SecurityGroup { id, .. } => ("security_group", id),
            Created::Bucket { name } => ("bucket", name),
            Created::BucketPolicy { bucket, .. } => ("bucket_policy", bucket),
        }
    }
}

/// A created resource with where, when and by which event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedAt {
    pub what: Created,
    pub region: String,
    pub at: Option<DateTime<Utc>>,
    pub event_id: String,
}

/// What the key did, in numbers and names: the card's field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub events: u32,
    pub read_only: u32,
    /// Not known to be read-only (`ReadOnly` false or missing).
    pub mutating: u32,
    /// Calls that failed (`errorCode`), read-only or not.
    pub failed_calls: u32,
    /// Events whose record could not be read.
    pub unreadable: u32,
    /// The lookup stopped at its maximum: older events were not read.
    pub capped: bool,
    /// Mutating calls by name, most frequent first, then by name.
    pub mutating_by_name: Vec<(String, u32)>,
    /// Created resources, each once, oldest first.
    pub created: Vec<CreatedAt>,
    /// Source IPs, most frequent first, then by value.
    pub source_ips: Vec<(String, u32)>,
    /// User agents, most frequent first, then by value.
    pub user_agents: Vec<(String, u32)>,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

/// Something the key created that hanko can contain, proposed as its own request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Containable {
    /// A new access key: deactivate it.
    AccessKey {
        id: String,
        user: Option<String>,
        region: String,
    },
    /// A new user: deactivate its keys.
    UserKeys { user: String },
    /// A launched instance: isolate it.
    Instance { id: String, region: String },
    /// A bucket whose policy was opened to everyone: block public access.
    BucketPublicAccess { bucket: String, region: String },
}

impl TrailEvent {
    /// Reads one event. `query_region` is the region the lookup asked (the event's region when
    /// the record does not say). Never fails: what cannot be read is left out, and an
    /// unreadable record is marked [`TrailEvent::unreadable`].
    pub fn parse(api: &ApiEvent<'_>, query_region: &str) -> TrailEvent {
        let record: Option<serde_json::Map<String, Value>> = api
            .cloud_trail_event
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            });
        let field = |name: &str| record.as_ref().and_then(|r| r.get(name));
        let text_field = |name: &str| field(name).and_then(Value::as_str);

        let event_source = api
            .event_source
            .or_else(|| text_field("eventSource"))
            .map(|s| text(s, MAX_TEXT_CHARS))
            .unwrap_or_default();
        let event_name = api
            .event_name
            .or_else(|| text_field("eventName"))
            .map(|s| text(s, MAX_TEXT_CHARS))
            .unwrap_or_default();
        let event_time = api.event_time.or_else(|| {
            text_field("eventTime")
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
        });
        let read_only = match api.read_only.map(str::trim) {
            Some(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(s) if s.eq_ignore_ascii_case("false") => Some(false),
            _ => field("readOnly").and_then(Value::as_bool),
        };
        let region = text_field("awsRegion")
            .filter(|r| ids::is_region(r))
            .unwrap_or(query_region)
            .to_string();
        let error_code = text_field("errorCode")
            .map(|s| text(s, MAX_TEXT_CHARS))
            .filter(|s| !s.is_empty());
        let resources = api
            .resources
            .iter()
            .filter_map(|(kind, name)| {
                Some(ResourceRef {
                    kind: text(kind.unwrap_or(""), MAX_TEXT_CHARS),
                    name: text((*name)?, MAX_TEXT_CHARS),
                })
            })
            .take(MAX_RESOURCES_PER_EVENT)
            .collect();
        let created = match (&record, &error_code) {
            (Some(r), None) => created_by(&event_source, &event_name, r),
            _ => Vec::new(),
        };
        TrailEvent {
            event_id: api
                .event_id
                .or_else(|| text_field("eventID"))
                .map(|s| text(s, MAX_TEXT_CHARS))
                .unwrap_or_default(),
            event_name,
            event_source,
            event_time,
            region,
            read_only,
            username: api
                .username
                .or_else(|| {
                    record
                        .as_ref()
                        .and_then(|r| r.get("userIdentity")?.get("userName")?.as_str())
                })
                .map(|s| text(s, MAX_TEXT_CHARS)),
            source_ip: text_field("sourceIPAddress").map(|s| text(s, MAX_TEXT_CHARS)),
            user_agent: text_field("userAgent").map(|s| text(s, MAX_USER_AGENT_CHARS)),
            error_code,
            resources,
            created,
            unreadable: record.is_none(),
        }
    }
}

/// `s` on one line, at most `max` characters.
fn text(s: &str, max: usize) -> String {
    crate::util::one_line(s, max)
}

/// The string at `path` (object keys) in `v`.
fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, key| v.get(key))?.as_str()
}

/// What a successful call created, read from its record; ids that fail their check are
/// dropped.
fn created_by(source: &str, name: &str, record: &serde_json::Map<String, Value>) -> Vec<Created> {
    let null = Value::Null;
    let request = record.get("requestParameters").unwrap_or(&null);
    let response = record.get("responseElements").unwrap_or(&null);
    let mut out = Vec::new();
    match (source, name) {
        (EC2, "RunInstances") => {
            let items = response
                .pointer("/instancesSet/items")
                .and_then(Value::as_array);
            for item in items.into_iter().flatten() {
                if let Some(id) = item
                    .get("instanceId")
                    .and_then(Value::as_str)
                    .filter(|id| ids::is_instance_id(id))
                {
                    out.push(Created::Instance { id: id.to_string() });
                }
            }
        }
        (IAM, "CreateAccessKey") => {
            if let Some(id) =
                str_at(response, &["accessKey", "accessKeyId"]).filter(|k| ids::is_access_key_id(k))
            {
                let user = str_at(response, &["accessKey", "userName"])
                    .or_else(|| str_at(request, &["userName"]))
                    .filter(|u| ids::is_iam_name(u))
                    .map(str::to_string);
                out.push(Created::AccessKey {
                    id: id.to_string(),
                    user,
                });
            }
        }
        (IAM, "CreateUser") => {
            if let Some(name) =
                str_at(response, &["user", "userName"]).filter(|u| ids::is_iam_name(u))
            {
                out.push(Created::User {
                    name: name.to_string(),
                });
            }
        }
        (IAM, "CreateRole") => {
            if let Some(name) =
                str_at(response, &["role", "roleName"]).filter(|r| ids::is_iam_name(r))
            {
                let arn = str_at(response, &["role", "arn"])
                    .filter(|a| is_role_arn(a, name))
                    .map(str::to_string);
                out.push(Created::Role {
                    name: name.to_string(),
                    arn,
                });
            }
        }
        (EC2, "CreateSecurityGroup") => {
            if let Some(id) =
                str_at(response, &["groupId"]).filter(|g| ids::is_security_group_id(g))
            {
                let name = str_at(request, &["groupName"])
                    .filter(|n| is_security_group_name(n))
                    .map(str::to_string);
                out.push(Created::SecurityGroup {
                    id: id.to_string(),
                    name,
                });
            }
        }
        (S3, "CreateBucket") => {
            if let Some(bucket) =
                str_at(request, &["bucketName"]).filter(|b| ids::is_bucket_name(b))
            {
                out.push(Created::Bucket {
                    name: bucket.to_string(),
                });
            }
        }
        (S3, "PutBucketPolicy") => {
            if let Some(bucket) =
                str_at(request, &["bucketName"]).filter(|b| ids::is_bucket_name(b))
            {
                let public = request.get("bucketPolicy").is_some_and(policy_is_public);
                out.push(Created::BucketPolicy {
                    bucket: bucket.to_string(),
                    public,
                });
            }
        }
        _ => {}
    }
    out.truncate(MAX_CREATED_PER_EVENT);
    out
}

/// `arn:<partition>:iam::<account>:role/<path/>name`, ending in `name`.
fn is_role_arn(arn: &str, name: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    prefix == "arn"
        && matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        && service == "iam"
        && region.is_empty()
        && ids::is_account_id(account)
        && resource.len() <= 512 + 64
        && resource.starts_with("role/")
        && resource.ends_with(&format!("/{name}"))
        && resource
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
}

/// A security group name EC2 accepts in a VPC: 1 to 255 of letters, digits, spaces and
/// `._-:/()#,@[]+=&;{}!$*`, not starting with `sg-`.
fn is_security_group_name(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && !s.starts_with("sg-")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" ._-:/()#,@[]+=&;{}!$*".contains(&b))
}

/// Does a statement of the policy allow everyone: `Effect: Allow` with `Principal` `"*"`,
/// `{"AWS": "*"}` or `"*"` in an `AWS` list? The policy is an object or its JSON text.
/// Conditions are not read: a policy that allows everyone under a condition is still proposed
/// for a person to look at, never changed without approval.
fn policy_is_public(policy: &Value) -> bool {
    let parsed;
    let doc = match policy {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => return false,
        },
        v => v,
    };
    let statements: Vec<&Value> = match doc.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    let everyone = |p: &Value| p.as_str() == Some("*");
    statements.iter().any(|st| {
        st.get("Effect").and_then(Value::as_str) == Some("Allow")
            && st.get("Principal").is_some_and(|p| {
                everyone(p)
                    || p.get("AWS").is_some_and(|aws| {
                        everyone(aws) || aws.as_array().is_some_and(|l| l.iter().any(everyone))
                    })
            })
    })
}

/// Newest first; events without a time last; otherwise in the order given.
fn newest_first(events: &[TrailEvent]) -> Vec<&TrailEvent> {
    let mut sorted: Vec<&TrailEvent> = events.iter().collect();
    sorted.sort_by(|a, b| match (a.event_time, b.event_time) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    sorted
}

/// Counts, most frequent first, then by value.
fn ranked(counts: BTreeMap<String, u32>) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = counts.into_iter().collect();
    // The map iterates by value; a stable sort by count keeps that order among equals.
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    v
}

/// Summarizes `events` (any order). `capped`: the lookup stopped at its maximum.
pub fn summarize(events: &[TrailEvent], capped: bool) -> Summary {
    let mut s = Summary {
        capped,
        ..Summary::default()
    };
    let mut by_name = BTreeMap::new();
    let mut ips = BTreeMap::new();
    let mut agents = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut created = Vec::new();
    for e in newest_first(events) {
        s.events += 1;
        if e.read_only == Some(true) {
            s.read_only += 1;
        } else {
            s.mutating += 1;
            *by_name.entry(e.event_name.clone()).or_insert(0) += 1;
        }
        if e.error_code.is_some() {
            s.failed_calls += 1;
        }
        if e.unreadable {
            s.unreadable += 1;
        }
        if let Some(ip) = &e.source_ip {
            *ips.entry(ip.clone()).or_insert(0) += 1;
        }
        if let Some(ua) = &e.user_agent {
            *agents.entry(ua.clone()).or_insert(0) += 1;
        }
        if let Some(t) = e.event_time {
            s.first = Some(s.first.map_or(t, |f| f.min(t)));
            s.last = Some(s.last.map_or(t, |l| l.max(t)));
        }
        for c in &e.created {
            // Newest first: the first seen of a resource is its newest state.
            let (kind, id) = c.key();
            if seen.insert((kind, id.to_string())) {
                created.push(CreatedAt {
                    what: c.clone(),
                    region: e.region.clone(),
                    at: e.event_time,
                    event_id: e.event_id.clone(),
                });
            }
        }
    }
    // Oldest first, as the story happened, those without a time last; the sort is stable, so
    // one event's resources keep their order.
    created.sort_by_key(|c| (c.at.is_none(), c.at));
    s.created = created;
    s.mutating_by_name = ranked(by_name);
    s.source_ips = ranked(ips);
    s.user_agents = ranked(agents);
    s
}

/// What of the summary's created resources hanko can contain, in the order they were created:
/// new access keys (deactivate), new users' keys (deactivate), launched instances (isolate),
/// buckets whose policy was opened to everyone (block public access). Roles, security groups,
/// plain new buckets and bucket policies that open nothing are listed on the card, not proposed;
/// nothing is ever proposed for deletion.
pub fn containable(summary: &Summary) -> Vec<Containable> {
    summary
        .created
        .iter()
        .filter_map(|c| match &c.what {
            Created::AccessKey { id, user } => Some(Containable::AccessKey {
                id: id.clone(),
                user: user.clone(),
                region: c.region.clone(),
            }),
            Created::User { name } => Some(Containable::UserKeys { user: name.clone() }),
            Created::Instance { id } => Some(Containable::Instance {
                id: id.clone(),
                region: c.region.clone(),
            }),
            Created::BucketPolicy {
                bucket,
                public: true,
            } => Some(Containable::BucketPublicAccess {
                bucket: bucket.clone(),
                region: c.region.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The events as JSON Lines, newest first, one [`TrailEvent`] a line, at most
/// [`MAX_JSONL_BYTES`] (whole lines: the oldest are left out when it would be more).
pub fn jsonl(events: &[TrailEvent]) -> Vec<u8> {
    jsonl_within(events, MAX_JSONL_BYTES)
}

fn jsonl_within(events: &[TrailEvent], max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for e in newest_first(events) {
        let Ok(line) = serde_json::to_vec(e) else {
            continue;
        };
        if out.len() + line.len() + 1 > max_bytes {
            break;
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The stored investigation
// ---------------------------------------------------------------------------------------------

/// How the lookup went in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RegionOutcome {
    /// Read: `events` events, `capped` when older ones were left.
    Read {
        region: String,
        events: u32,
        capped: bool,
    },
    /// The lookup failed: the error's class, AWS code and one line of its message.
    Failed {
        region: String,
        class: String,
        code: Option<String>,
        line: String,
    },
}

impl RegionOutcome {
    pub fn region(&self) -> &str {
        match self {
            RegionOutcome::Read { region, .. } | RegionOutcome::Failed { region, .. } => region,
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self, RegionOutcome::Failed { .. })
    }
}

/// Where an investigation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InvestigationState {
    /// Looking up CloudTrail now.
    Running,
    /// Some region failed; another attempt comes at `at`.
    RetryAt { at: DateTime<Utc> },
    /// Every region was read.
    Done,
    /// Attempts are over and some region never answered; what was read stands.
    Failed,
    /// Not looked up, and why (one sentence).
    Skipped { reason: String },
}

/// What hanko did with one [`Containable`]: the request it proposed, or why none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub what: Containable,
    pub request: Option<uuid::Uuid>,
    /// Why no request (already covered, notify-only, not found): one sentence.
    pub note: Option<String>,
}

/// One investigation of the access key of one finding, as stored and shown on its card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Investigation {
    pub finding_id: String,
    pub access_key_id: String,
    pub account: String,
    pub window: Window,
    pub state: InvestigationState,
    /// Attempts made so far (1 after the first).
    pub attempts: u32,
    /// One outcome per region asked, in the order asked.
    pub regions: Vec<RegionOutcome>,
    /// What the events read say (`None` until a region was read).
    pub summary: Option<Summary>,
    pub proposals: Vec<Proposal>,
    pub updated_at: DateTime<Utc>,
}

impl Investigation {
    /// A new investigation, running.
    pub fn start(
        finding_id: &str,
        access_key_id: &str,
        account: &str,
        window: Window,
        now: DateTime<Utc>,
    ) -> Investigation {
        Investigation {
            finding_id: finding_id.to_string(),
            access_key_id: access_key_id.to_string(),
            account: account.to_string(),
            window,
            state: InvestigationState::Running,
            attempts: 0,
            regions: Vec::new(),
            summary: None,
            proposals: Vec::new(),
            updated_at: now,
        }
    }

    /// The regions that failed in the last attempt.
    pub fn failed_regions(&self) -> Vec<String> {
        self.regions
            .iter()
            .filter(|r| r.failed())
            .map(|r| r.region().to_string())
            .collect()
    }

    /// The region names, in the order asked.
    pub fn region_names(&self) -> Vec<String> {
        self.regions
            .iter()
            .map(|r| r.region().to_string())
            .collect()
    }

    /// Finished: nothing more will be looked up.
    pub fn is_final(&self) -> bool {
        matches!(
            self.state,
            InvestigationState::Done
                | InvestigationState::Failed
                | InvestigationState::Skipped { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const RUN_INSTANCES: &str = include_str!("../tests/fixtures/cloudtrail/run_instances.json");
    const CREATE_ACCESS_KEY: &str =
        include_str!("../tests/fixtures/cloudtrail/create_access_key.json");
    const CREATE_USER: &str = include_str!("../tests/fixtures/cloudtrail/create_user.json");
    const CREATE_USER_DENIED: &str =
        include_str!("../tests/fixtures/cloudtrail/create_user_denied.json");
    const CREATE_ROLE: &str = include_str!("../tests/fixtures/cloudtrail/create_role.json");
    const CREATE_SECURITY_GROUP: &str =
        include_str!("../tests/fixtures/cloudtrail/create_security_group.json");
    const CREATE_BUCKET: &str = include_str!("../tests/fixtures/cloudtrail/create_bucket.json");
    const PUT_POLICY_PUBLIC: &str =
        include_str!("../tests/fixtures/cloudtrail/put_bucket_policy_public.json");
    const PUT_POLICY_ACCOUNT: &str =
        include_str!("../tests/fixtures/cloudtrail/put_bucket_policy_account.json");
    const DESCRIBE_INSTANCES: &str =
        include_str!("../tests/fixtures/cloudtrail/describe_instances.json");

    /// The event the API would return for `record`: its top-level fields derived from the
    /// record, as CloudTrail does (`ReadOnly` as a string), the record as `CloudTrailEvent`.
    fn from_record(record: &str) -> TrailEvent {
        let v: Value = serde_json::from_str(record).expect("fixture is JSON");
        let read_only = v["readOnly"].as_bool().map(|b| b.to_string());
        let time = v["eventTime"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let api = ApiEvent {
            event_id: v["eventID"].as_str(),
            event_name: v["eventName"].as_str(),
            read_only: read_only.as_deref(),
            event_time: time,
            event_source: v["eventSource"].as_str(),
            username: v["userIdentity"]["userName"].as_str(),
            resources: Vec::new(),
            cloud_trail_event: Some(record),
        };
        TrailEvent::parse(&api, "us-west-2")
    }

    /// `record` with `edit` applied.
    fn edited(record: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(record).expect("fixture is JSON");
        edit(&mut v);
        v.to_string()
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 14, h, m, s).unwrap()
    }

    #[test]
    fn run_instances_creates_each_instance() {
        let e = from_record(RUN_INSTANCES);
        assert_eq!(
            e.created,
            vec![
                Created::Instance {
                    id: "i-0abc1234def567890".into()
                },
                Created::Instance {
                    id: "i-0abc1234def567891".into()
                },
            ]
        );
        assert_eq!(e.event_name, "RunInstances");
        assert_eq!(e.event_source, "ec2.amazonaws.com");
        assert_eq!(e.region, "us-east-2", "the record's awsRegion wins");
        assert_eq!(e.read_only, Some(false));
        assert_eq!(e.event_time, Some(at(3, 12, 40)));
        assert_eq!(e.source_ip.as_deref(), Some("198.51.100.7"));
        assert!(e
            .user_agent
            .as_deref()
            .unwrap()
            .starts_with("aws-cli/2.15.0"));
        assert_eq!(e.username.as_deref(), Some("alice"));
        assert_eq!(e.event_id, "01db8111-5bf5-43ec-a075-ce318ec46574");
        assert_eq!(e.error_code, None);
        assert!(!e.unreadable);
    }

    #[test]
    fn create_access_key_names_the_key_and_its_user() {
        let e = from_record(CREATE_ACCESS_KEY);
        assert_eq!(
            e.created,
            vec![Created::AccessKey {
                id: "AKIAQNZGKIQYMALLORY1".into(),
                user: Some("mallory".into())
            }]
        );
        assert_eq!(e.region, "us-east-1");
        // Without the user in the response, the request's userName names it.
        let no_user = edited(CREATE_ACCESS_KEY, |v| {
            v["responseElements"]["accessKey"]
                .as_object_mut()
                .unwrap()
                .remove("userName");
        });
        assert_eq!(
            from_record(&no_user).created,
            vec![Created::AccessKey {
                id: "AKIAQNZGKIQYMALLORY1".into(),
                user: Some("mallory".into())
            }]
        );
    }

    #[test]
    fn create_user_names_the_user() {
        assert_eq!(
            from_record(CREATE_USER).created,
            vec![Created::User {
                name: "mallory".into()
            }]
        );
    }

    #[test]
    fn create_role_names_the_role_and_its_arn() {
        assert_eq!(
            from_record(CREATE_ROLE).created,
            vec![Created::Role {
                name: "backup-sync".into(),
                arn: Some("arn:aws:iam::123456789012:role/backup-sync".into())
            }]
        );
        // An ARN that does not name the role is dropped, the role kept.
        let odd = edited(CREATE_ROLE, |v| {
            v["responseElements"]["role"]["arn"] = "arn:aws:iam::123456789012:role/other".into();
        });
        assert_eq!(
            from_record(&odd).created,
            vec![Created::Role {
                name: "backup-sync".into(),
                arn: None
            }]
        );
    }

    #[test]
    fn create_security_group_names_the_group() {
        assert_eq!(
            from_record(CREATE_SECURITY_GROUP).created,
            vec![Created::SecurityGroup {
                id: "sg-0f1e2d3c4b5a69788".into(),
                name: Some("ssh-anywhere".into())
            }]
        );
    }

    #[test]
    fn create_bucket_names_the_bucket_from_the_request() {
        let e = from_record(CREATE_BUCKET);
        assert_eq!(
            e.created,
            vec![Created::Bucket {
                name: "loot".into()
            }]
        );
    }

    #[test]
    fn put_bucket_policy_says_whether_it_opens_the_bucket_to_everyone() {
        assert_eq!(
            from_record(PUT_POLICY_PUBLIC).created,
            vec![Created::BucketPolicy {
                bucket: "loot".into(),
                public: true
            }]
        );
        assert_eq!(
            from_record(PUT_POLICY_ACCOUNT).created,
            vec![Created::BucketPolicy {
                bucket: "payroll-exports".into(),
                public: false
            }]
        );
        // The policy as a JSON string, `{"AWS": "*"}` and `"*"` in an AWS list count too;
        // a Deny for everyone does not.
        for (principal, effect, public) in [
            (serde_json::json!({"AWS": "*"}), "Allow", true),
            (
                serde_json::json!({"AWS": ["arn:aws:iam::999988887777:root", "*"]}),
                "Allow",
                true,
            ),
            (serde_json::json!("*"), "Deny", false),
            (
                serde_json::json!({"Service": "logging.s3.amazonaws.com"}),
                "Allow",
                false,
            ),
        ] {
            let policy = serde_json::json!({
                "Version": "2012-10-17",
                "Statement": {"Effect": effect, "Principal": principal, "Action": "s3:GetObject",
                              "Resource": "arn:aws:s3:::loot/*"}
            });
            let as_text = edited(PUT_POLICY_ACCOUNT, |v| {
                v["requestParameters"]["bucketPolicy"] = policy.to_string().into();
            });
            assert_eq!(
                from_record(&as_text).created,
                vec![Created::BucketPolicy {
                    bucket: "payroll-exports".into(),
                    public
                }],
                "{policy}"
            );
        }
    }

    #[test]
    fn a_failed_call_created_nothing() {
        let e = from_record(CREATE_USER_DENIED);
        assert_eq!(e.error_code.as_deref(), Some("AccessDenied"));
        assert!(e.created.is_empty());
        // The same record with an errorCode added to a successful call: nothing either.
        let failed = edited(RUN_INSTANCES, |v| {
            v["errorCode"] = "Client.InstanceLimitExceeded".into();
        });
        let e = from_record(&failed);
        assert!(e.created.is_empty());
        assert_eq!(
            e.error_code.as_deref(),
            Some("Client.InstanceLimitExceeded")
        );
        // An empty or null errorCode is no error.
        for code in [Value::Null, "".into()] {
            let ok = edited(CREATE_USER, |v| v["errorCode"] = code.clone());
            assert_eq!(from_record(&ok).created.len(), 1, "{code}");
        }
    }

    #[test]
    fn read_only_from_the_api_string_then_the_record() {
        let record = edited(DESCRIBE_INSTANCES, |v| {
            v.as_object_mut().unwrap().remove("readOnly");
        });
        let parse = |read_only: Option<&str>, record: &str| {
            TrailEvent::parse(
                &ApiEvent {
                    read_only,
                    cloud_trail_event: Some(record),
                    ..ApiEvent::default()
                },
                "us-east-2",
            )
            .read_only
        };
        assert_eq!(parse(Some("true"), &record), Some(true));
        assert_eq!(parse(Some("false"), &record), Some(false));
        // Absent in both: unknown.
        assert_eq!(parse(None, &record), None);
        // Absent from the API: the record's boolean.
        assert_eq!(parse(None, DESCRIBE_INSTANCES), Some(true));
        // The API's string wins over the record.
        assert_eq!(parse(Some("false"), DESCRIBE_INSTANCES), Some(false));
        // Anything else in the string is not a truth value.
        assert_eq!(parse(Some("yes"), &record), None);
    }

    #[test]
    fn crafted_ids_are_dropped() {
        let bad_instance = edited(RUN_INSTANCES, |v| {
            v["responseElements"]["instancesSet"]["items"][0]["instanceId"] =
                "i-0abc`@everyone".into();
            v["responseElements"]["instancesSet"]["items"][1]["instanceId"] = 7.into();
        });
        assert!(from_record(&bad_instance).created.is_empty());
        let bad_key = edited(CREATE_ACCESS_KEY, |v| {
            v["responseElements"]["accessKey"]["accessKeyId"] = "AKIA<@&123>".into();
        });
        assert!(from_record(&bad_key).created.is_empty());
        let bad_user_of_key = edited(CREATE_ACCESS_KEY, |v| {
            v["responseElements"]["accessKey"]["userName"] = "mal lory\n@here".into();
            v["requestParameters"]["userName"] = "mal lory\n@here".into();
        });
        assert_eq!(
            from_record(&bad_user_of_key).created,
            vec![Created::AccessKey {
                id: "AKIAQNZGKIQYMALLORY1".into(),
                user: None
            }]
        );
        let bad_user = edited(CREATE_USER, |v| {
            v["responseElements"]["user"]["userName"] = "x".repeat(65).into();
        });
        assert!(from_record(&bad_user).created.is_empty());
        let bad_role = edited(CREATE_ROLE, |v| {
            v["responseElements"]["role"]["roleName"] = "role/../../x".into();
        });
        assert!(from_record(&bad_role).created.is_empty());
        let bad_group = edited(CREATE_SECURITY_GROUP, |v| {
            v["responseElements"]["groupId"] = "sg-XYZ".into();
        });
        assert!(from_record(&bad_group).created.is_empty());
        let bad_group_name = edited(CREATE_SECURITY_GROUP, |v| {
            v["requestParameters"]["groupName"] = "`name` <@1>".into();
        });
        assert_eq!(
            from_record(&bad_group_name).created,
            vec![Created::SecurityGroup {
                id: "sg-0f1e2d3c4b5a69788".into(),
                name: None
            }]
        );
        for bucket in ["Loot", "lo", "loot/../x", "[loot](https://evil.example)"] {
            let bad_bucket = edited(CREATE_BUCKET, |v| {
                v["requestParameters"]["bucketName"] = bucket.into();
            });
            assert!(from_record(&bad_bucket).created.is_empty(), "{bucket}");
            let bad_policy = edited(PUT_POLICY_PUBLIC, |v| {
                v["requestParameters"]["bucketName"] = bucket.into();
            });
            assert!(from_record(&bad_policy).created.is_empty(), "{bucket}");
        }
        // A region that is not one falls back to the region asked.
        let bad_region = edited(CREATE_BUCKET, |v| v["awsRegion"] = "us-east-2/../x".into());
        assert_eq!(from_record(&bad_region).region, "us-west-2");
    }

    #[test]
    fn free_text_is_one_bounded_line() {
        let long = edited(DESCRIBE_INSTANCES, |v| {
            v["userAgent"] = format!("evil\n{}", "a".repeat(1000)).into();
        });
        let ua = from_record(&long).user_agent.unwrap();
        assert!(!ua.contains('\n'));
        assert_eq!(ua.chars().count(), MAX_USER_AGENT_CHARS);
    }

    #[test]
    fn an_unreadable_record_keeps_the_api_fields() {
        for record in [None, Some("not json"), Some("[1, 2]")] {
            let e = TrailEvent::parse(
                &ApiEvent {
                    event_id: Some("e-1"),
                    event_name: Some("RunInstances"),
                    event_source: Some(EC2),
                    read_only: Some("false"),
                    event_time: Some(at(1, 0, 0)),
                    resources: vec![(Some("AWS::EC2::Instance"), Some("i-0abc1234def567890"))],
                    cloud_trail_event: record,
                    ..ApiEvent::default()
                },
                "eu-west-1",
            );
            assert!(e.unreadable, "{record:?}");
            assert!(e.created.is_empty());
            assert_eq!(e.event_name, "RunInstances");
            assert_eq!(e.region, "eu-west-1");
            assert_eq!(e.read_only, Some(false));
            assert_eq!(
                e.resources,
                vec![ResourceRef {
                    kind: "AWS::EC2::Instance".into(),
                    name: "i-0abc1234def567890".into()
                }]
            );
        }
    }

    /// The story of the fixtures: reads, a denied call, a group, instances, a user and its
    /// key, a role, a bucket and its policy opened, then narrowed on another bucket.
    fn story() -> Vec<TrailEvent> {
        [
            PUT_POLICY_ACCOUNT,
            PUT_POLICY_PUBLIC,
            CREATE_BUCKET,
            CREATE_ROLE,
            CREATE_ACCESS_KEY,
            CREATE_USER,
            CREATE_USER_DENIED,
            RUN_INSTANCES,
            CREATE_SECURITY_GROUP,
            DESCRIBE_INSTANCES,
        ]
        .iter()
        .map(|r| from_record(r))
        .collect()
    }

    #[test]
    fn summary_counts_names_and_orders() {
        let mut events = story();
        // Two more reads from another address with another agent.
        for i in 0..2 {
            let read = edited(DESCRIBE_INSTANCES, |v| {
                v["eventID"] = format!("read-{i}").into();
                v["eventTime"] = format!("2024-05-14T03:2{i}:00Z").into();
                v["sourceIPAddress"] = "203.0.113.9".into();
            });
            events.push(from_record(&read));
        }
        let s = summarize(&events, false);
        assert_eq!(s.events, 12);
        assert_eq!(s.read_only, 3);
        assert_eq!(s.mutating, 9);
        assert_eq!(s.failed_calls, 1);
        assert_eq!(s.unreadable, 0);
        assert!(!s.capped);
        assert_eq!(
            s.mutating_by_name,
            vec![
                ("CreateUser".to_string(), 2),
                ("PutBucketPolicy".to_string(), 2),
                ("CreateAccessKey".to_string(), 1),
                ("CreateBucket".to_string(), 1),
                ("CreateRole".to_string(), 1),
                ("CreateSecurityGroup".to_string(), 1),
                ("RunInstances".to_string(), 1),
            ]
        );
        assert_eq!(
            s.source_ips,
            vec![
                ("198.51.100.7".to_string(), 8),
                ("203.0.113.9".to_string(), 4)
            ]
        );
        // Eight distinct agents; the reads' three times, the CreateUser and PutBucketPolicy
        // agents twice each.
        assert_eq!(s.user_agents.len(), 8, "{:?}", s.user_agents);
        assert_eq!(s.user_agents[0].1, 3);
        assert!(s.user_agents[0]
            .0
            .ends_with("command/ec2.describe-instances"));
        assert_eq!(
            (s.user_agents[1].1, s.user_agents[2].1, s.user_agents[3].1),
            (2, 2, 1)
        );
        assert_eq!(s.first, Some(at(3, 10, 12)));
        assert_eq!(s.last, Some(at(3, 21, 0)));
        let created: Vec<&Created> = s.created.iter().map(|c| &c.what).collect();
        assert_eq!(
            created,
            vec![
                &Created::SecurityGroup {
                    id: "sg-0f1e2d3c4b5a69788".into(),
                    name: Some("ssh-anywhere".into())
                },
                &Created::Instance {
                    id: "i-0abc1234def567890".into()
                },
                &Created::Instance {
                    id: "i-0abc1234def567891".into()
                },
                &Created::User {
                    name: "mallory".into()
                },
                &Created::AccessKey {
                    id: "AKIAQNZGKIQYMALLORY1".into(),
                    user: Some("mallory".into())
                },
                &Created::Role {
                    name: "backup-sync".into(),
                    arn: Some("arn:aws:iam::123456789012:role/backup-sync".into())
                },
                &Created::Bucket {
                    name: "loot".into()
                },
                &Created::BucketPolicy {
                    bucket: "loot".into(),
                    public: true
                },
                &Created::BucketPolicy {
                    bucket: "payroll-exports".into(),
                    public: false
                },
            ]
        );
        assert_eq!(s.created[1].region, "us-east-2");
        assert_eq!(s.created[1].at, Some(at(3, 12, 40)));
        assert_eq!(
            s.created[1].event_id,
            "01db8111-5bf5-43ec-a075-ce318ec46574"
        );
        assert_eq!(s.created[3].region, "us-east-1");
        // The order of the input does not matter.
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(summarize(&reversed, false), s);
        assert!(summarize(&events, true).capped);
    }

    #[test]
    fn summary_lists_a_resource_once_in_its_newest_state() {
        // The bucket opened, then closed again: one entry, not public.
        let opened = from_record(PUT_POLICY_PUBLIC);
        let closed = from_record(&edited(PUT_POLICY_ACCOUNT, |v| {
            v["requestParameters"]["bucketName"] = "loot".into();
            v["eventTime"] = "2024-05-14T04:00:00Z".into();
            v["eventID"] = "closed".into();
        }));
        let s = summarize(&[opened.clone(), closed.clone()], false);
        assert_eq!(s.created.len(), 1);
        assert_eq!(
            s.created[0].what,
            Created::BucketPolicy {
                bucket: "loot".into(),
                public: false
            }
        );
        assert_eq!(s.created[0].event_id, "closed");
        assert!(containable(&s).is_empty());
        // Opened after it was closed: public, proposed.
        let reopened = from_record(&edited(PUT_POLICY_PUBLIC, |v| {
            v["eventTime"] = "2024-05-14T05:00:00Z".into();
        }));
        let s = summarize(&[opened, closed, reopened.clone()], false);
        assert_eq!(s.created.len(), 1);
        assert_eq!(s.created[0].what, reopened.created[0]);
        // The same event twice: its resources once.
        let run = from_record(RUN_INSTANCES);
        let s = summarize(&[run.clone(), run], false);
        assert_eq!(s.created.len(), 2);
    }

    #[test]
    fn containable_is_keys_user_keys_instances_and_opened_buckets_only() {
        let s = summarize(&story(), false);
        assert_eq!(
            containable(&s),
            vec![
                Containable::Instance {
                    id: "i-0abc1234def567890".into(),
                    region: "us-east-2".into()
                },
                Containable::Instance {
                    id: "i-0abc1234def567891".into(),
                    region: "us-east-2".into()
                },
                Containable::UserKeys {
                    user: "mallory".into()
                },
                Containable::AccessKey {
                    id: "AKIAQNZGKIQYMALLORY1".into(),
                    user: Some("mallory".into()),
                    region: "us-east-1".into()
                },
                Containable::BucketPublicAccess {
                    bucket: "loot".into(),
                    region: "us-east-2".into()
                },
            ]
        );
        // Reads, roles, groups, plain buckets, closed policies and failed calls: nothing.
        let quiet = summarize(
            &[
                from_record(DESCRIBE_INSTANCES),
                from_record(CREATE_ROLE),
                from_record(CREATE_SECURITY_GROUP),
                from_record(CREATE_BUCKET),
                from_record(PUT_POLICY_ACCOUNT),
                from_record(CREATE_USER_DENIED),
            ],
            false,
        );
        assert_eq!(quiet.created.len(), 4);
        assert!(containable(&quiet).is_empty());
    }

    #[test]
    fn jsonl_is_one_event_a_line_newest_first_and_round_trips() {
        let events = story();
        let bytes = jsonl(&events);
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.ends_with('\n'));
        let back: Vec<TrailEvent> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back.len(), events.len());
        let times: Vec<_> = back.iter().map(|e| e.event_time.unwrap()).collect();
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(times, sorted, "newest first");
        assert_eq!(back[0].event_name, "PutBucketPolicy");
        assert_eq!(back.last().unwrap().event_name, "DescribeInstances");
        for e in &events {
            assert!(back.contains(e), "{} did not round-trip", e.event_id);
        }
    }

    #[test]
    fn jsonl_keeps_whole_lines_within_the_cap() {
        let events = story();
        let all = jsonl(&events);
        let first_line = all.iter().position(|&b| b == b'\n').unwrap() + 1;
        // Room for the first line and part of the second: only the first.
        let cut = jsonl_within(&events, first_line + 10);
        assert_eq!(cut, all[..first_line]);
        assert!(jsonl_within(&events, first_line - 1).is_empty());
        assert_eq!(jsonl_within(&events, all.len()), all);
        assert!(jsonl(&[]).is_empty());
    }

    #[test]
    fn window_back_from_end() {
        let w = Window::back_from(at(12, 0, 0), chrono::Duration::hours(24));
        assert_eq!(
            w.start,
            Utc.with_ymd_and_hms(2024, 5, 13, 12, 0, 0).unwrap()
        );
        assert!(w.contains(w.start) && w.contains(w.end));
        assert!(!w.contains(at(12, 0, 1)));
        let none = Window::back_from(at(12, 0, 0), chrono::Duration::hours(-1));
        assert_eq!(none.start, none.end);
    }
}
