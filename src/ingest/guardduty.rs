//! The GuardDuty poller of one region: `ListFindings` since the cursor, `GetFindings` in
//! batches, each finding converted to the API's camelCase JSON and parsed by
//! [`finding::parse_guardduty_value`] (one parser for every path), then stored through the
//! pipeline before the cursor moves.
//!
//! Uses the GuardDuty SDK client, the store and the pipeline; never imports serenity or sled.
//!
//! # The query
//!
//! * `updatedAt` ≥ cursor − [`CURSOR_OVERLAP`](super::CURSOR_OVERLAP) (epoch milliseconds),
//!   sorted by `updatedAt` ascending, every page (`nextToken`); the first poll starts at
//!   now − `ingest.backfill`.
//! * `severity` ≥ `ingest.min_severity` (GuardDuty takes whole numbers, so the bound is
//!   rounded down and the exact minimum is applied again to the parsed findings).
//! * `service.archived` = `false`.
//!
//! # Archived findings
//!
//! Filtering `archived = false` keeps findings that suppression rules archive on arrival out of
//! the channel, but it also hides a finding *becoming* archived, and archiving is not
//! guaranteed to move `updatedAt`, so no cursor-based query is a reliable way to see it. So
//! each poll also re-reads, by id (`GetFindings`, which returns archived findings too), every
//! finding of this region that has a **Pending** or **Approved** (not yet executing) request;
//! one that came back archived is stored as such and the pipeline supersedes its request (an
//! approved one waiting for `/resume` included). That costs one `GetFindings` call per 50 such
//! requests per poll, and it sees an archival however GuardDuty stamps it.
//!
//! # Cursor
//!
//! The cursor (`guardduty:<region>`) is the largest `updatedAt` stored, written after the
//! findings of each page are stored and flushed; with the ascending sort, everything before it
//! has been stored. A crash repeats at most one page, which the store finds unchanged.

use std::collections::{BTreeSet, HashSet};

use aws_sdk_guardduty::types::{Condition, FindingCriteria, OrderBy, SortCriteria};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    accept_page, advance_cursor, checked_id, guardduty_source, quarantine, read_cursor,
    IngestError, PollReport, CURSOR_OVERLAP,
};
use crate::app::App;
use crate::approval::{RequestKind, RequestState};
use crate::aws::error::classify;
use crate::aws::{AwsError, ErrorClass};
use crate::finding;
use crate::finding::json::ObjectBuilder;
use aws_smithy_types::error::display::DisplayErrorContext;

/// `GetFindings` takes at most this many ids.
pub const GET_FINDINGS_BATCH: usize = 50;
/// `ListFindings` returns at most this many ids a page.
pub const MAX_PAGE_SIZE: i32 = 50;

/// Polls GuardDuty findings of one region.
pub struct GuardDutyPoller {
    app: App,
    client: aws_sdk_guardduty::Client,
    region: String,
    /// The configured detector, or the one ListDetectors found (asked once).
    detector_id: Option<String>,
    /// `maxResults` of `ListFindings` (1 to 50).
    page_size: i32,
    /// Finding ids GetFindings could not read, already quarantined by this poller.
    unreadable: HashSet<String>,
    /// Where the next poll's re-read of Pending findings starts ([`RECHECK_PENDING_MAX`]).
    recheck_from: Option<String>,
}

/// Pending requests' findings re-read per poll, at most (20 `GetFindings` calls). After a burst
/// tens of thousands wait: each poll takes the next slice, in finding-id order, and wraps
/// around, so an archival is still seen, later. Approved requests' findings are re-read at
/// every poll, all of them: they run next.
pub const RECHECK_PENDING_MAX: usize = 1_000;

/// The next at most `max` of `ids` from `from` on (wrapping around), and where the slice after
/// them starts (`None`: from the first id).
fn recheck_slice(
    ids: &BTreeSet<String>,
    from: Option<&str>,
    max: usize,
) -> (Vec<String>, Option<String>) {
    if ids.len() <= max {
        return (ids.iter().cloned().collect(), None);
    }
    let start = from.unwrap_or("");
    let mut out: Vec<String> = ids
        .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
        .take(max)
        .cloned()
        .collect();
    if out.len() < max {
        let more = max - out.len();
        out.extend(
            ids.iter()
                .take_while(|id| id.as_str() < start)
                .take(more)
                .cloned(),
        );
    }
    let next = out
        .last()
        .and_then(|last| {
            ids.range::<str, _>((
                std::ops::Bound::Excluded(last.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .next()
        })
        .cloned();
    (out, next)
}

impl GuardDutyPoller {
    /// Now, on the application's clock.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.app.clock.now()
    }

    /// A poller for `region`, with the detector from `ingest.detector_ids` when configured.
    pub fn new(app: App, client: aws_sdk_guardduty::Client, region: &str) -> GuardDutyPoller {
        let detector_id = app.settings.ingest.detector_ids.get(region).cloned();
        GuardDutyPoller {
            app,
            client,
            region: region.to_string(),
            detector_id,
            page_size: MAX_PAGE_SIZE,
            unreadable: HashSet::new(),
            recheck_from: None,
        }
    }

    /// `ListFindings` page size, clamped to 1..=50 (tests use small pages to exercise paging).
    pub fn with_page_size(mut self, n: i32) -> GuardDutyPoller {
        self.page_size = n.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// `guardduty:<region>`: the cursor and status name.
    /// Does this replica poll now (it holds the ingest lease; alone on the store, always)?
    pub fn is_leader(&self) -> bool {
        self.app.replica.ingest_leader()
    }

    pub fn source(&self) -> String {
        guardduty_source(&self.region)
    }

    /// One poll at `now`: every finding updated since the cursor, then the pending ones again.
    pub async fn poll_once(&mut self, now: DateTime<Utc>) -> Result<PollReport, IngestError> {
        let detector = self.detector().await?;
        let source = self.source();
        let settings = &self.app.settings.ingest;
        let mut cursor = read_cursor(&self.app.store, &source, now - settings.backfill)?;
        let since = cursor - CURSOR_OVERLAP;
        let min_severity = settings.min_severity;

        let mut criteria = FindingCriteria::builder()
            .criterion(
                "updatedAt",
                Condition::builder()
                    .greater_than_or_equal(since.timestamp_millis())
                    .build(),
            )
            .criterion(
                "service.archived",
                Condition::builder().equals("false").build(),
            );
        if min_severity > 0.0 {
            criteria = criteria.criterion(
                "severity",
                Condition::builder()
                    .greater_than_or_equal(min_severity.floor() as i64)
                    .build(),
            );
        }
        let criteria = criteria.build();
        let sort = SortCriteria::builder()
            .attribute_name("updatedAt")
            .order_by(OrderBy::Asc)
            .build();

        let mut report = PollReport::default();
        let mut seen: HashSet<String> = HashSet::new();
        let mut next_token: Option<String> = None;
        // The page being stored (on the blocking pool) while the next one is fetched: pages
        // are stored one at a time and in order, and the cursor moves past a page only once it
        // is stored and flushed.
        let mut storing: Option<tokio::task::JoinHandle<Result<Stored, IngestError>>> = None;
        loop {
            let page = self
                .client
                .list_findings()
                .detector_id(&detector)
                .finding_criteria(criteria.clone())
                .sort_criteria(sort.clone())
                .max_results(self.page_size)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| classify(&e, "guardduty:ListFindings", &detector))?;
            let ids = page.finding_ids().to_vec();
            let mut fetched = Vec::with_capacity(ids.len());
            for batch in ids.chunks(GET_FINDINGS_BATCH) {
                fetched.extend(self.fetch(&detector, batch, now, &mut report).await?);
            }
            seen.extend(ids);
            if let Some(previous) = storing.take() {
                self.finish_page(previous, &source, &mut cursor, &mut report)
                    .await?;
            }
            let (app, page_source) = (self.app.clone(), source.clone());
            storing = Some(tokio::task::spawn_blocking(move || {
                store_page(&app, &page_source, &fetched, now)
            }));
            match page.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_string()),
                _ => break,
            }
        }
        if let Some(last) = storing.take() {
            self.finish_page(last, &source, &mut cursor, &mut report)
                .await?;
        }

        // Pending and Approved requests of this region: re-read their findings to see an
        // archival before anything runs.
        // One request at a time: after a burst there are tens of thousands, and only their
        // finding ids are kept.
        let mut approved: BTreeSet<String> = BTreeSet::new();
        let mut waiting: BTreeSet<String> = BTreeSet::new();
        self.app.store.each_request_in_states(
            &[RequestState::Pending, RequestState::Approved],
            |r| {
                if r.kind == RequestKind::Contain
                    && r.plan.region == self.region
                    && !seen.contains(&r.finding_id)
                {
                    if r.state == RequestState::Approved {
                        approved.insert(r.finding_id);
                    } else {
                        waiting.insert(r.finding_id);
                    }
                }
                Ok(())
            },
        )?;
        let (slice, next) =
            recheck_slice(&waiting, self.recheck_from.as_deref(), RECHECK_PENDING_MAX);
        self.recheck_from = next;
        let ids: BTreeSet<String> = approved.into_iter().chain(slice).collect();
        let pending: Vec<String> = ids
            .into_iter()
            .filter(|id| {
                matches!(
                    self.app.store.get_finding(id),
                    Ok(Some(f)) if f.finding.is_guardduty()
                )
            })
            .collect();
        if !pending.is_empty() {
            let mut recheck = PollReport::default();
            self.store_findings(&detector, &pending, now, &mut recheck)
                .await?;
            // Only changes count: an unchanged pending finding was not "seen" by this poll.
            recheck.seen -= recheck.unchanged;
            recheck.unchanged = 0;
            report.add(&recheck);
        }
        Ok(report)
    }

    /// Waits for a page being stored, counts it and moves the cursor past it (its findings
    /// were flushed before the cursor is written).
    async fn finish_page(
        &self,
        storing: tokio::task::JoinHandle<Result<Stored, IngestError>>,
        source: &str,
        cursor: &mut DateTime<Utc>,
        report: &mut PollReport,
    ) -> Result<(), IngestError> {
        let stored = storing
            .await
            .map_err(|e| IngestError::Task(e.to_string()))??;
        report.add(&stored.report);
        if let Some(newest) = stored.newest {
            advance_cursor(&self.app.store, source, cursor, newest)?;
        }
        Ok(())
    }

    /// `GetFindings` for `ids` in batches; each finding parsed and accepted, or quarantined.
    /// Returns the newest `updatedAt` stored.
    async fn store_findings(
        &mut self,
        detector: &str,
        ids: &[String],
        now: DateTime<Utc>,
        report: &mut PollReport,
    ) -> Result<Option<DateTime<Utc>>, IngestError> {
        let mut newest: Option<DateTime<Utc>> = None;
        let source = self.source();
        for batch in ids.chunks(GET_FINDINGS_BATCH) {
            let findings = self.fetch(detector, batch, now, report).await?;
            let stored = store_page(&self.app, &source, &findings, now)?;
            report.add(&stored.report);
            newest = newest.max(stored.newest);
        }
        Ok(newest)
    }

    /// `GetFindings` for one batch. When AWS's answer cannot be read (a document the SDK
    /// rejects), the ids are fetched one by one and each unreadable one is quarantined by id
    /// (once per poller), so one bad document never blocks the others. Throttling, network
    /// and permission errors fail the poll instead (it is retried).
    async fn fetch(
        &mut self,
        detector: &str,
        batch: &[String],
        now: DateTime<Utc>,
        report: &mut PollReport,
    ) -> Result<Vec<aws_sdk_guardduty::types::Finding>, IngestError> {
        let err = match self.get(detector, batch).await {
            Ok(findings) => return Ok(findings),
            Err(e) => e,
        };
        if err.1.is_retryable() || err.1.class == ErrorClass::Forbidden {
            return Err(err.1.into());
        }
        let mut out = Vec::new();
        for id in batch {
            match self.get(detector, std::slice::from_ref(id)).await {
                Ok(found) => out.extend(found),
                Err((detail, e)) if !e.is_retryable() && e.class != ErrorClass::Forbidden => {
                    if self.unreadable.insert(id.clone()) {
                        let raw = json!({ "findingId": id, "detectorId": detector }).to_string();
                        let error =
                            format!("GetFindings returned a finding the SDK cannot read: {detail}");
                        quarantine(&self.app, &self.source(), &raw, &error, now, report)?;
                    }
                }
                Err((_, e)) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// One `GetFindings` call; on failure, a one-line description of the SDK error (for the
    /// quarantine) and its classification.
    async fn get(
        &self,
        detector: &str,
        ids: &[String],
    ) -> Result<Vec<aws_sdk_guardduty::types::Finding>, (String, AwsError)> {
        match self
            .client
            .get_findings()
            .detector_id(detector)
            .set_finding_ids(Some(ids.to_vec()))
            .send()
            .await
        {
            Ok(out) => Ok(out.findings.unwrap_or_default()),
            Err(e) => {
                let detail: String = DisplayErrorContext(&e)
                    .to_string()
                    .chars()
                    .take(300)
                    .collect();
                Err((detail, classify(&e, "guardduty:GetFindings", detector)))
            }
        }
    }

    /// The configured detector, else the first one `ListDetectors` returns (remembered).
    async fn detector(&mut self) -> Result<String, IngestError> {
        if let Some(id) = &self.detector_id {
            return Ok(id.clone());
        }
        let out = self
            .client
            .list_detectors()
            .send()
            .await
            .map_err(|e| classify(&e, "guardduty:ListDetectors", &self.region))?;
        let id = out
            .detector_ids()
            .first()
            .cloned()
            .ok_or_else(|| IngestError::NoDetector {
                region: self.region.clone(),
            })?;
        tracing::info!(region = %self.region, detector_id = %id, "found the GuardDuty detector");
        self.detector_id = Some(id.clone());
        Ok(id)
    }
}

/// What storing one page did.
struct Stored {
    report: PollReport,
    /// The newest `updatedAt` of the page (stored, or below the minimum severity).
    newest: Option<DateTime<Utc>>,
}

/// Parses and accepts (or quarantines) every finding of a page, then flushes the store: once
/// this returns, the page is durable and the cursor may move past it. Blocking (sled): run it
/// on the blocking pool when the caller has something else to do meanwhile.
fn store_page(
    app: &App,
    source: &str,
    findings: &[aws_sdk_guardduty::types::Finding],
    now: DateTime<Utc>,
) -> Result<Stored, IngestError> {
    let mut report = PollReport::default();
    let mut newest: Option<DateTime<Utc>> = None;
    let mut parsed = Vec::with_capacity(findings.len());
    for sdk_finding in findings {
        let doc = finding_to_json(sdk_finding);
        match finding::parse_guardduty_value(&doc, "$").and_then(checked_id) {
            Ok(f) => {
                if let Some(t) = f.updated_at {
                    newest = newest.max(Some(t));
                }
                // GuardDuty's criterion is whole numbers; the exact minimum here.
                if f.severity < app.settings.ingest.min_severity {
                    continue;
                }
                parsed.push(f);
            }
            Err(e) => {
                quarantine(
                    app,
                    source,
                    &doc.to_string(),
                    &e.to_string(),
                    now,
                    &mut report,
                )?;
            }
        }
    }
    // The page's findings and their requests: one transaction.
    accept_page(app, &parsed, now, &mut report)?;
    app.store.flush()?;
    Ok(Stored { report, newest })
}

// ---------------------------------------------------------------------------------------------
// SDK finding -> the API's camelCase JSON
// ---------------------------------------------------------------------------------------------

/// The GuardDuty API JSON of one SDK finding: the fields [`finding::parse_guardduty_value`]
/// reads, under the API's own names.
pub fn finding_to_json(f: &aws_sdk_guardduty::types::Finding) -> Value {
    ObjectBuilder::default()
        .s("id", f.id())
        .s("arn", f.arn())
        .s("accountId", f.account_id())
        .s("region", f.region())
        .s("partition", f.partition())
        .s("schemaVersion", f.schema_version())
        .s("type", f.r#type())
        .v("severity", f.severity().map(|s| json!(s)))
        .s("title", f.title())
        .s("description", f.description())
        .s("createdAt", f.created_at())
        .s("updatedAt", f.updated_at())
        .v("resource", f.resource().map(resource_json))
        .v("service", f.service().map(service_json))
        .done()
}

fn resource_json(r: &aws_sdk_guardduty::types::Resource) -> Value {
    ObjectBuilder::default()
        .s("resourceType", r.resource_type())
        .v(
            "accessKeyDetails",
            r.access_key_details().map(|k| {
                ObjectBuilder::default()
                    .s("accessKeyId", k.access_key_id())
                    .s("principalId", k.principal_id())
                    .s("userName", k.user_name())
                    .s("userType", k.user_type())
                    .done()
            }),
        )
        .v("instanceDetails", r.instance_details().map(instance_json))
        .list(
            "s3BucketDetails",
            r.s3_bucket_details().iter().map(bucket_json).collect(),
        )
        .done()
}

fn instance_json(i: &aws_sdk_guardduty::types::InstanceDetails) -> Value {
    ObjectBuilder::default()
        .s("instanceId", i.instance_id())
        .s("instanceType", i.instance_type())
        .s("instanceState", i.instance_state())
        .s("availabilityZone", i.availability_zone())
        .s("imageId", i.image_id())
        .v(
            "iamInstanceProfile",
            i.iam_instance_profile().map(|p| {
                ObjectBuilder::default()
                    .s("arn", p.arn())
                    .s("id", p.id())
                    .done()
            }),
        )
        .list(
            "networkInterfaces",
            i.network_interfaces().iter().map(interface_json).collect(),
        )
        .list("tags", tags_json(i.tags()))
        .done()
}

fn interface_json(ni: &aws_sdk_guardduty::types::NetworkInterface) -> Value {
    ObjectBuilder::default()
        .s("networkInterfaceId", ni.network_interface_id())
        .s("vpcId", ni.vpc_id())
        .s("subnetId", ni.subnet_id())
        .s("privateIpAddress", ni.private_ip_address())
        .list(
            "privateIpAddresses",
            ni.private_ip_addresses()
                .iter()
                .map(|a| {
                    ObjectBuilder::default()
                        .s("privateIpAddress", a.private_ip_address())
                        .s("privateDnsName", a.private_dns_name())
                        .done()
                })
                .collect(),
        )
        .s("publicIp", ni.public_ip())
        .list(
            "securityGroups",
            ni.security_groups()
                .iter()
                .map(|g| {
                    ObjectBuilder::default()
                        .s("groupId", g.group_id())
                        .s("groupName", g.group_name())
                        .done()
                })
                .collect(),
        )
        .done()
}

fn tags_json(tags: &[aws_sdk_guardduty::types::Tag]) -> Vec<Value> {
    tags.iter()
        .map(|t| {
            ObjectBuilder::default()
                .s("key", t.key())
                .s("value", t.value())
                .done()
        })
        .collect()
}

fn bucket_json(b: &aws_sdk_guardduty::types::S3BucketDetail) -> Value {
    ObjectBuilder::default()
        .s("name", b.name())
        .s("arn", b.arn())
        .s("type", b.r#type())
        .list("tags", tags_json(b.tags()))
        .v(
            "publicAccess",
            b.public_access().map(|p| {
                ObjectBuilder::default()
                    .s("effectivePermission", p.effective_permission())
                    .v(
                        "permissionConfiguration",
                        p.permission_configuration().map(permissions_json),
                    )
                    .done()
            }),
        )
        .done()
}

fn permissions_json(c: &aws_sdk_guardduty::types::PermissionConfiguration) -> Value {
    ObjectBuilder::default()
        .v(
            "bucketLevelPermissions",
            c.bucket_level_permissions().map(|b| {
                ObjectBuilder::default()
                    .v(
                        "accessControlList",
                        b.access_control_list().map(|a| {
                            public_rw_json(
                                a.allows_public_read_access(),
                                a.allows_public_write_access(),
                            )
                        }),
                    )
                    .v(
                        "bucketPolicy",
                        b.bucket_policy().map(|p| {
                            public_rw_json(
                                p.allows_public_read_access(),
                                p.allows_public_write_access(),
                            )
                        }),
                    )
                    .v("blockPublicAccess", b.block_public_access().map(block_json))
                    .done()
            }),
        )
        .v(
            "accountLevelPermissions",
            c.account_level_permissions().map(|a| {
                ObjectBuilder::default()
                    .v("blockPublicAccess", a.block_public_access().map(block_json))
                    .done()
            }),
        )
        .done()
}

/// `accessControlList` and `bucketPolicy`: two SDK types with the same two flags.
fn public_rw_json(read: Option<bool>, write: Option<bool>) -> Value {
    ObjectBuilder::default()
        .b("allowsPublicReadAccess", read)
        .b("allowsPublicWriteAccess", write)
        .done()
}

fn block_json(b: &aws_sdk_guardduty::types::BlockPublicAccess) -> Value {
    ObjectBuilder::default()
        .b("blockPublicAcls", b.block_public_acls())
        .b("ignorePublicAcls", b.ignore_public_acls())
        .b("blockPublicPolicy", b.block_public_policy())
        .b("restrictPublicBuckets", b.restrict_public_buckets())
        .done()
}

fn service_json(s: &aws_sdk_guardduty::types::Service) -> Value {
    ObjectBuilder::default()
        .s("serviceName", s.service_name())
        .s("detectorId", s.detector_id())
        .v("count", s.count().map(|c| json!(c)))
        .b("archived", s.archived())
        .s("eventFirstSeen", s.event_first_seen())
        .s("eventLastSeen", s.event_last_seen())
        .s("resourceRole", s.resource_role())
        .v(
            "additionalInfo",
            s.additional_info().map(additional_info_json),
        )
        .v("action", s.action().map(action_json))
        .done()
}

/// The API carries `additionalInfo` as `{"value": "<JSON text>", "type": "default"}`; the
/// JSON text is unfolded into the object the console and EventBridge show (`sample` and the
/// rest). A value that is not a JSON object is kept under `value`.
fn additional_info_json(a: &aws_sdk_guardduty::types::ServiceAdditionalInfo) -> Value {
    match a.value().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => Value::Object(m),
        _ => ObjectBuilder::default()
            .s("value", a.value())
            .s("type", a.r#type())
            .done(),
    }
}

fn action_json(a: &aws_sdk_guardduty::types::Action) -> Value {
    ObjectBuilder::default()
        .s("actionType", a.action_type())
        .v(
            "awsApiCallAction",
            a.aws_api_call_action().map(|c| {
                ObjectBuilder::default()
                    .s("api", c.api())
                    .s("serviceName", c.service_name())
                    .s("callerType", c.caller_type())
                    .s("errorCode", c.error_code())
                    .v("remoteIpDetails", c.remote_ip_details().map(remote_ip_json))
                    .done()
            }),
        )
        .v(
            "networkConnectionAction",
            a.network_connection_action().map(|c| {
                ObjectBuilder::default()
                    .s("connectionDirection", c.connection_direction())
                    .s("protocol", c.protocol())
                    .b("blocked", c.blocked())
                    .v("remoteIpDetails", c.remote_ip_details().map(remote_ip_json))
                    .done()
            }),
        )
        .v(
            "portProbeAction",
            a.port_probe_action().map(|p| {
                ObjectBuilder::default()
                    .b("blocked", p.blocked())
                    .list(
                        "portProbeDetails",
                        p.port_probe_details()
                            .iter()
                            .map(|d| {
                                ObjectBuilder::default()
                                    .v("remoteIpDetails", d.remote_ip_details().map(remote_ip_json))
                                    .done()
                            })
                            .collect(),
                    )
                    .done()
            }),
        )
        .v(
            "dnsRequestAction",
            a.dns_request_action().map(|d| {
                ObjectBuilder::default()
                    .s("domain", d.domain())
                    .s("protocol", d.protocol())
                    .b("blocked", d.blocked())
                    .done()
            }),
        )
        .v(
            "kubernetesApiCallAction",
            a.kubernetes_api_call_action().map(|k| {
                ObjectBuilder::default()
                    .s("requestUri", k.request_uri())
                    .s("verb", k.verb())
                    .v("remoteIpDetails", k.remote_ip_details().map(remote_ip_json))
                    .done()
            }),
        )
        .done()
}

fn remote_ip_json(r: &aws_sdk_guardduty::types::RemoteIpDetails) -> Value {
    ObjectBuilder::default()
        .s("ipAddressV4", r.ip_address_v4())
        .s("ipAddressV6", r.ip_address_v6())
        .v(
            "country",
            r.country().map(|c| {
                ObjectBuilder::default()
                    .s("countryName", c.country_name())
                    .s("countryCode", c.country_code())
                    .done()
            }),
        )
        .v(
            "city",
            r.city()
                .map(|c| ObjectBuilder::default().s("cityName", c.city_name()).done()),
        )
        .v(
            "organization",
            r.organization().map(|o| {
                ObjectBuilder::default()
                    .s("asn", o.asn())
                    .s("asnOrg", o.asn_org())
                    .s("isp", o.isp())
                    .s("org", o.org())
                    .done()
            }),
        )
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("{i:04}")).collect()
    }

    #[test]
    fn the_pending_recheck_takes_slices_in_turn_and_wraps_around() {
        // Few: all of them, every poll.
        let (all, next) = recheck_slice(&ids(3), Some("0002"), 5);
        assert_eq!(all, ["0000", "0001", "0002"]);
        assert_eq!(next, None);

        // Many: consecutive slices, then around again; every id is re-read within a round.
        let set = ids(10);
        let (a, next) = recheck_slice(&set, None, 4);
        assert_eq!(a, ["0000", "0001", "0002", "0003"]);
        let (b, next) = recheck_slice(&set, next.as_deref(), 4);
        assert_eq!(b, ["0004", "0005", "0006", "0007"]);
        let (c, next) = recheck_slice(&set, next.as_deref(), 4);
        assert_eq!(c, ["0008", "0009", "0000", "0001"]);
        assert_eq!(next.as_deref(), Some("0002"));

        // The id the slice was to start at is gone (its request was decided): the next one.
        let mut fewer = set.clone();
        fewer.remove("0002");
        let (d, _) = recheck_slice(&fewer, Some("0002"), 4);
        assert_eq!(d, ["0003", "0004", "0005", "0006"]);
    }
}
