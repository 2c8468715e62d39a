//! The Security Hub poller of one region: `GetFindings` of active findings in workflow NEW or
//! NOTIFIED, at or above the minimum severity (as `SeverityLabel`s: Security Hub deprecated
//! the `SeverityNormalized` filter; see [`labels_at_or_above`]), updated since the cursor; each
//! `AwsSecurityFinding` is converted to ASFF JSON and parsed by [`finding::parse_asff_value`],
//! then stored through the pipeline before the cursor moves.
//!
//! Uses the Security Hub SDK client, the store and the pipeline; never imports serenity or sled.
//!
//! The same GuardDuty finding through SQS, the GuardDuty API and Security Hub is one finding:
//! the ASFF parser gives a GuardDuty finding its GuardDuty id, and the store deduplicates.
//!
//! Every server-side filter is applied again to what comes back ([`wanted`]), because
//! Security Hub-compatible stand-ins (moto 5.2.1 ignores `Filters` and `SortCriteria` of
//! `GetFindings` entirely) may return more than was asked for.
//!
//! Like the GuardDuty poller, each poll re-reads (by `Id`) the findings of this region that
//! came from Security Hub and have a Pending request, because the query above hides a finding
//! that became `ARCHIVED`; the parser marks such a finding archived and the pipeline
//! supersedes its request.

use std::collections::HashSet;

use aws_sdk_securityhub::operation::get_findings::GetFindingsOutput;
use aws_sdk_securityhub::types::{
    AwsSecurityFinding, AwsSecurityFindingFilters, DateFilter, RecordState, SeverityLabel,
    SortCriterion, SortOrder, StringFilter, StringFilterComparison, WorkflowStatus,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::{
    accept, advance_cursor, checked_id, posture_source, quarantine, read_cursor,
    securityhub_source, IngestError, PollReport, CURSOR_OVERLAP,
};
use crate::app::App;
use crate::approval::{RequestKind, RequestState};
use crate::aws::error::classify;
use crate::finding::json::ObjectBuilder;
use crate::finding::{self, FindingSource};
use crate::notices::Notice;
use crate::pipeline;
use crate::posture;

/// `GetFindings` returns at most this many findings a page.
pub const MAX_PAGE_SIZE: i32 = 100;
/// Ids per `Id` filter when re-reading pending findings.
const RECHECK_BATCH: usize = 20;
/// The `UpdatedAt` window ends this far after now (clock skew).
const FUTURE_SLACK: chrono::Duration = chrono::Duration::minutes(5);

/// Polls Security Hub findings of one region.
pub struct SecurityHubPoller {
    app: App,
    client: aws_sdk_securityhub::Client,
    region: String,
    page_size: i32,
}

impl SecurityHubPoller {
    /// Now, on the application's clock.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.app.clock.now()
    }

    pub fn new(app: App, client: aws_sdk_securityhub::Client, region: &str) -> SecurityHubPoller {
        SecurityHubPoller {
            app,
            client,
            region: region.to_string(),
            page_size: MAX_PAGE_SIZE,
        }
    }

    /// `MaxResults` of `GetFindings`, clamped to 1..=100.
    pub fn with_page_size(mut self, n: i32) -> SecurityHubPoller {
        self.page_size = n.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// `securityhub:<region>`: the cursor and status name.
    /// Does this replica poll now (it holds the ingest lease; alone on the store, always)?
    pub fn is_leader(&self) -> bool {
        self.app.replica.ingest_leader()
    }

    pub fn source(&self) -> String {
        securityhub_source(&self.region)
    }

    /// One poll at `now`.
    pub async fn poll_once(&mut self, now: DateTime<Utc>) -> Result<PollReport, IngestError> {
        let source = self.source();
        let settings = &self.app.settings.ingest;
        let mut cursor = read_cursor(&self.app.store, &source, now - settings.backfill)?;
        let since = cursor - CURSOR_OVERLAP;
        let eq = |v: &str| {
            StringFilter::builder()
                .value(v)
                .comparison(StringFilterComparison::Equals)
                .build()
        };
        let mut filters = AwsSecurityFindingFilters::builder()
            .record_state(eq(RecordState::Active.as_str()))
            .workflow_status(eq(WorkflowStatus::New.as_str()))
            .workflow_status(eq(WorkflowStatus::Notified.as_str()));
        for label in labels_at_or_above(settings.min_severity) {
            filters = filters.severity_label(eq(label.as_str()));
        }
        let filters = updated_between(filters, since, now).build();

        let mut report = PollReport::default();
        let mut seen = HashSet::new();
        let mut next_token: Option<String> = None;
        loop {
            let page = self.page(&filters, next_token.take()).await?;
            let mut newest = None;
            for f in page.findings() {
                // Control findings are posture, read by the posture query below.
                if !wanted(f, since, settings.min_severity) || is_control(f) {
                    continue;
                }
                if let Some(t) = self.store(f, now, &mut report)? {
                    newest = newest.max(Some(t));
                }
                if let Some(id) = f.id() {
                    seen.insert(id.to_string());
                }
            }
            if let Some(newest) = newest {
                advance_cursor(&self.app.store, &source, &mut cursor, newest)?;
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_string()),
                _ => break,
            }
        }
        let recheck = self.recheck_pending(&seen, now).await?;
        report.add(&recheck);
        self.posture_pass(now, &mut report).await?;
        Ok(report)
    }

    /// The posture query: every control finding (any compliance status, active or archived,
    /// any workflow) updated since the posture cursor, stored per group; each changed group is
    /// announced once the page that changed it is flushed.
    async fn posture_pass(
        &self,
        now: DateTime<Utc>,
        report: &mut PollReport,
    ) -> Result<(), IngestError> {
        let source = posture_source(&self.region);
        let store = &self.app.store;
        let before = report.posture_changed;
        let mut cursor = read_cursor(store, &source, now - self.app.settings.ingest.backfill)?;
        let since = cursor - CURSOR_OVERLAP;
        let mut filters = AwsSecurityFindingFilters::builder();
        for status in ["PASSED", "FAILED", "WARNING", "NOT_AVAILABLE"] {
            filters = filters.compliance_status(
                StringFilter::builder()
                    .value(status)
                    .comparison(StringFilterComparison::Equals)
                    .build(),
            );
        }
        let filters = updated_between(filters, since, now).build();
        let mut next_token: Option<String> = None;
        loop {
            let page = self.page(&filters, next_token.take()).await?;
            let mut newest = None;
            let mut changed = std::collections::BTreeSet::new();
            for f in page.findings() {
                if !is_control(f) || !updated_since(f, since) {
                    continue;
                }
                let doc = asff_to_json(f);
                match posture::parse_control_finding(&doc, "$", &self.region) {
                    Ok(cf) => {
                        if store.upsert_control_finding(&cf)? {
                            report.posture_changed += 1;
                            changed.insert(cf.group_key().encode());
                        }
                        newest = newest.max(cf.updated_at);
                    }
                    Err(e) => {
                        quarantine(
                            &self.app,
                            &source,
                            &doc.to_string(),
                            &e.to_string(),
                            now,
                            report,
                        )?;
                    }
                }
            }
            match newest {
                Some(newest) => advance_cursor(store, &source, &mut cursor, newest)?,
                None => store.flush()?,
            }
            for group in changed {
                if let Some(key) = posture::GroupKey::decode(&group) {
                    let superseded =
                        pipeline::posture_changed(store, &self.app.notices, &key, now)?;
                    report.superseded += superseded.len();
                }
                self.app.notices.send(Notice::PostureChanged { group });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => next_token = Some(t.to_string()),
                _ => break,
            }
        }
        // Each day keeps its last scores (`/score`'s trend compares with them): recorded when
        // a control finding changed, and once on a day that has no record yet. Recording scans
        // every control finding, so it is not done on every poll of every region.
        let changed = report.posture_changed > before;
        if changed || store.score_snapshot(now.date_naive())?.is_none() {
            store.record_scores(now)?;
        }
        Ok(())
    }

    /// One `GetFindings` page for `filters`, oldest update first.
    async fn page(
        &self,
        filters: &AwsSecurityFindingFilters,
        next_token: Option<String>,
    ) -> Result<GetFindingsOutput, IngestError> {
        let sort = SortCriterion::builder()
            .field("UpdatedAt")
            .sort_order(SortOrder::Ascending)
            .build();
        // Boxed: Security Hub's finding type is large, and so is the send future.
        Box::pin(
            self.client
                .get_findings()
                .filters(filters.clone())
                .sort_criteria(sort)
                .max_results(self.page_size)
                .set_next_token(next_token)
                .send(),
        )
        .await
        .map_err(|e| classify(&e, "securityhub:GetFindings", &self.region).into())
    }

    /// Parses and accepts one finding, or quarantines it. Returns its `UpdatedAt`.
    fn store(
        &self,
        f: &AwsSecurityFinding,
        now: DateTime<Utc>,
        report: &mut PollReport,
    ) -> Result<Option<DateTime<Utc>>, IngestError> {
        let doc = asff_to_json(f);
        match finding::parse_asff_value(&doc, "$").and_then(checked_id) {
            Ok(parsed) => {
                accept(&self.app, &parsed, now, report)?;
                Ok(parsed.updated_at)
            }
            Err(e) => {
                quarantine(
                    &self.app,
                    &self.source(),
                    &doc.to_string(),
                    &e.to_string(),
                    now,
                    report,
                )?;
                Ok(None)
            }
        }
    }

    /// Re-reads the Security Hub findings of this region that have a Pending request.
    async fn recheck_pending(
        &self,
        seen: &HashSet<String>,
        now: DateTime<Utc>,
    ) -> Result<PollReport, IngestError> {
        let mut asff_ids: Vec<String> = Vec::new();
        let mut listed: HashSet<String> = HashSet::new();
        // Walked one at a time: after a burst tens of thousands wait, each with its plan.
        self.app
            .store
            .each_request_in_states(&[RequestState::Pending], |r| {
                if r.kind != RequestKind::Contain || r.plan.region != self.region {
                    return Ok(());
                }
                let Some(stored) = self.app.store.get_finding(&r.finding_id)? else {
                    return Ok(());
                };
                if !matches!(stored.finding.source, FindingSource::SecurityHub { .. }) {
                    return Ok(());
                }
                // The ASFF `Id`: the ARN for GuardDuty's product (kept as `arn`), else the id.
                let id = stored.finding.arn.clone().unwrap_or(stored.finding.id);
                if !seen.contains(&id) && listed.insert(id.clone()) {
                    asff_ids.push(id);
                }
                Ok(())
            })?;
        let mut report = PollReport::default();
        for batch in asff_ids.chunks(RECHECK_BATCH) {
            let mut filters = AwsSecurityFindingFilters::builder();
            for id in batch {
                filters = filters.id(StringFilter::builder()
                    .value(id)
                    .comparison(StringFilterComparison::Equals)
                    .build());
            }
            let out = Box::pin(
                self.client
                    .get_findings()
                    .filters(filters.build())
                    .max_results(MAX_PAGE_SIZE)
                    .send(),
            )
            .await
            .map_err(|e| classify(&e, "securityhub:GetFindings", &self.region))?;
            for f in out.findings() {
                if f.id().is_some_and(|id| batch.iter().any(|b| b == id)) {
                    self.store(f, now, &mut report)?;
                }
            }
        }
        report.seen -= report.unchanged;
        report.unchanged = 0;
        Ok(report)
    }
}

/// The server-side filters, applied again: `RecordState` ACTIVE, workflow NEW or NOTIFIED (the
/// older `WorkflowState` NEW, ASSIGNED or IN_PROGRESS when `Workflow` is absent), normalized
/// severity at or above `min_severity * 10`, `UpdatedAt` at or after `since`.
#[allow(deprecated)] // `WorkflowState`: still what older findings carry.
pub fn wanted(f: &AwsSecurityFinding, since: DateTime<Utc>, min_severity: f64) -> bool {
    use aws_sdk_securityhub::types::WorkflowState;
    let active = f.record_state().map_or(true, |s| *s == RecordState::Active);
    let workflow = match (f.workflow().and_then(|w| w.status()), f.workflow_state()) {
        (Some(s), _) => matches!(s, WorkflowStatus::New | WorkflowStatus::Notified),
        (None, Some(s)) => matches!(
            s,
            WorkflowState::New | WorkflowState::Assigned | WorkflowState::InProgress
        ),
        (None, None) => true,
    };
    let severity = match f.severity() {
        Some(s) => match (s.normalized(), s.product()) {
            (Some(n), _) => f64::from(n) >= min_severity * 10.0,
            (None, Some(p)) => p >= min_severity,
            (None, None) => min_severity <= 0.0,
        },
        None => min_severity <= 0.0,
    };
    let recent = updated_since(f, since);
    active && workflow && severity && recent
}

/// `filters` with `UpdatedAt` from `since` to a little after `now` (clock skew).
fn updated_between(
    filters: aws_sdk_securityhub::types::builders::AwsSecurityFindingFiltersBuilder,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> aws_sdk_securityhub::types::builders::AwsSecurityFindingFiltersBuilder {
    filters.updated_at(
        DateFilter::builder()
            .start(rfc3339(since))
            .end(rfc3339(now + FUTURE_SLACK))
            .build(),
    )
}

/// A compliance check of a security standard (posture), not a threat finding.
fn is_control(f: &AwsSecurityFinding) -> bool {
    let compliance = f.compliance();
    compliance.and_then(|c| c.status()).is_some()
        && (compliance.and_then(|c| c.security_control_id()).is_some()
            || f.product_fields()
                .is_some_and(|p| p.contains_key("ControlId") || p.contains_key("RuleId")))
}

fn updated_since(f: &AwsSecurityFinding, since: DateTime<Utc>) -> bool {
    match f
        .updated_at()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        Some(t) => t >= since,
        None => true,
    }
}

/// The severity labels whose band reaches `min_severity` (GuardDuty's 0-10 scale; Security
/// Hub's normalized bands: LOW 1-39, MEDIUM 40-69, HIGH 70-89, CRITICAL 90-100). Security Hub
/// deprecated the `SeverityNormalized` filter in favour of `SeverityLabel`; the label is the
/// coarse server-side cut and [`wanted`] applies the exact minimum.
pub fn labels_at_or_above(min_severity: f64) -> Vec<SeverityLabel> {
    let bands = [
        (SeverityLabel::Informational, 0.0),
        (SeverityLabel::Low, 3.9),
        (SeverityLabel::Medium, 6.9),
        (SeverityLabel::High, 8.9),
        (SeverityLabel::Critical, 10.0),
    ];
    bands
        .into_iter()
        .filter(|(_, top)| *top >= min_severity)
        .map(|(label, _)| label)
        .collect()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------------------------------------
// SDK finding -> ASFF JSON
// ---------------------------------------------------------------------------------------------

/// The ASFF JSON of one SDK finding: the fields [`finding::parse_asff_value`] reads, under
/// ASFF's own names.
pub fn asff_to_json(f: &AwsSecurityFinding) -> Value {
    ObjectBuilder::default()
        .s("SchemaVersion", f.schema_version())
        .s("Id", f.id())
        .s("ProductArn", f.product_arn())
        .s("GeneratorId", f.generator_id())
        .s("AwsAccountId", f.aws_account_id())
        .s("Region", f.region())
        .v(
            "Types",
            Some(Value::Array(
                f.types().iter().map(|t| Value::String(t.clone())).collect(),
            )),
        )
        .s("FirstObservedAt", f.first_observed_at())
        .s("LastObservedAt", f.last_observed_at())
        .s("CreatedAt", f.created_at())
        .s("UpdatedAt", f.updated_at())
        .v(
            "Severity",
            f.severity().map(|s| {
                ObjectBuilder::default()
                    .v("Product", s.product().map(|p| json!(p)))
                    .v("Normalized", s.normalized().map(|n| json!(n)))
                    .s("Original", s.original())
                    .s("Label", s.label().map(|l| l.as_str()))
                    .done()
            }),
        )
        .s("Title", f.title())
        .s("Description", f.description())
        .map("ProductFields", f.product_fields())
        .list(
            "Resources",
            f.resources().iter().map(resource_json).collect(),
        )
        .s("RecordState", f.record_state().map(|r| r.as_str()))
        .s("WorkflowState", f.workflow_state().map(|w| w.as_str()))
        .v(
            "Workflow",
            f.workflow().map(|w| {
                ObjectBuilder::default()
                    .s("Status", w.status().map(|s| s.as_str()))
                    .done()
            }),
        )
        .b("Sample", f.sample())
        .v("Action", f.action().map(action_json))
        .v("Compliance", f.compliance().map(compliance_json))
        .v(
            "Remediation",
            f.remediation().and_then(|r| r.recommendation()).map(|rec| {
                json!({ "Recommendation": ObjectBuilder::default()
                    .s("Text", rec.text())
                    .s("Url", rec.url())
                    .done() })
            }),
        )
        .done()
}

fn compliance_json(c: &aws_sdk_securityhub::types::Compliance) -> Value {
    ObjectBuilder::default()
        .s("Status", c.status().map(|s| s.as_str()))
        .s("SecurityControlId", c.security_control_id())
        .list(
            "AssociatedStandards",
            c.associated_standards()
                .iter()
                .map(|a| {
                    ObjectBuilder::default()
                        .s("StandardsId", a.standards_id())
                        .done()
                })
                .collect(),
        )
        .done()
}

fn resource_json(r: &aws_sdk_securityhub::types::Resource) -> Value {
    ObjectBuilder::default()
        .s("Type", r.r#type())
        .s("Id", r.id())
        .s("Partition", r.partition().map(|p| p.as_str()))
        .s("Region", r.region())
        .map("Tags", r.tags())
        .v("Details", r.details().map(details_json))
        .done()
}

#[allow(deprecated)] // `UserName`: what GuardDuty's ASFF still fills in.
fn details_json(d: &aws_sdk_securityhub::types::ResourceDetails) -> Value {
    ObjectBuilder::default()
        .v(
            "AwsIamAccessKey",
            d.aws_iam_access_key().map(|k| {
                ObjectBuilder::default()
                    .s("AccessKeyId", k.access_key_id())
                    .s("UserName", k.user_name())
                    .s("PrincipalId", k.principal_id())
                    .s("PrincipalName", k.principal_name())
                    .s("PrincipalType", k.principal_type())
                    .s("AccountId", k.account_id())
                    .done()
            }),
        )
        .v(
            "AwsEc2Instance",
            d.aws_ec2_instance().map(|i| {
                ObjectBuilder::default()
                    .s("Type", i.r#type())
                    .s("ImageId", i.image_id())
                    .s("IamInstanceProfileArn", i.iam_instance_profile_arn())
                    .s("VpcId", i.vpc_id())
                    .s("SubnetId", i.subnet_id())
                    .list(
                        "NetworkInterfaces",
                        i.network_interfaces()
                            .iter()
                            .map(|n| {
                                ObjectBuilder::default()
                                    .s("NetworkInterfaceId", n.network_interface_id())
                                    .done()
                            })
                            .collect(),
                    )
                    .done()
            }),
        )
        .v(
            "AwsS3Bucket",
            d.aws_s3_bucket().map(|b| {
                ObjectBuilder::default()
                    .s("Name", b.name())
                    .s("OwnerId", b.owner_id())
                    .v(
                        "PublicAccessBlockConfiguration",
                        b.public_access_block_configuration().map(|p| {
                            ObjectBuilder::default()
                                .b("BlockPublicAcls", p.block_public_acls())
                                .b("IgnorePublicAcls", p.ignore_public_acls())
                                .b("BlockPublicPolicy", p.block_public_policy())
                                .b("RestrictPublicBuckets", p.restrict_public_buckets())
                                .done()
                        }),
                    )
                    .done()
            }),
        )
        .done()
}

fn action_json(a: &aws_sdk_securityhub::types::Action) -> Value {
    ObjectBuilder::default()
        .s("ActionType", a.action_type())
        .v(
            "AwsApiCallAction",
            a.aws_api_call_action().map(|c| {
                ObjectBuilder::default()
                    .s("Api", c.api())
                    .s("ServiceName", c.service_name())
                    .s("CallerType", c.caller_type())
                    .v("RemoteIpDetails", c.remote_ip_details().map(remote_ip_json))
                    .done()
            }),
        )
        .v(
            "NetworkConnectionAction",
            a.network_connection_action().map(|c| {
                ObjectBuilder::default()
                    .s("ConnectionDirection", c.connection_direction())
                    .v("RemoteIpDetails", c.remote_ip_details().map(remote_ip_json))
                    .done()
            }),
        )
        .v(
            "PortProbeAction",
            a.port_probe_action().map(|p| {
                ObjectBuilder::default()
                    .list(
                        "PortProbeDetails",
                        p.port_probe_details()
                            .iter()
                            .map(|d| {
                                ObjectBuilder::default()
                                    .v("RemoteIpDetails", d.remote_ip_details().map(remote_ip_json))
                                    .done()
                            })
                            .collect(),
                    )
                    .done()
            }),
        )
        .v(
            "DnsRequestAction",
            a.dns_request_action()
                .map(|d| ObjectBuilder::default().s("Domain", d.domain()).done()),
        )
        .done()
}

fn remote_ip_json(r: &aws_sdk_securityhub::types::ActionRemoteIpDetails) -> Value {
    ObjectBuilder::default()
        .s("IpAddressV4", r.ip_address_v4())
        .v(
            "Country",
            r.country().map(|c| {
                ObjectBuilder::default()
                    .s("CountryName", c.country_name())
                    .done()
            }),
        )
        .v(
            "City",
            r.city()
                .map(|c| ObjectBuilder::default().s("CityName", c.city_name()).done()),
        )
        .v(
            "Organization",
            r.organization().map(|o| {
                ObjectBuilder::default()
                    .s("AsnOrg", o.asn_org())
                    .s("Org", o.org())
                    .done()
            }),
        )
        .done()
}
