//! `/findings [min_severity] [resource_type] [limit]`: the recent findings, most severe first,
//! each with where its latest request stands. Ephemeral: a list for the one who asked.
//!
//! The store indexes findings by ingestion time only, so this looks at the
//! [`SCAN_WINDOW`] most recently ingested findings, filters and sorts those (severity, then
//! last seen, newest first), and shows at most `limit` lines that fit in one message.
//!
//! Uses the store and the planner (for findings without a request); no Discord or AWS I/O.

use std::cmp::Ordering;

use crate::app::App;
use crate::approval::{Request, RequestKind};
use crate::finding::{Finding, ResourceKind};
use crate::store::StoredFinding;

use super::{code, code_capped, fit_lines, plain, Handled, Invocation, Reply, MAX_CONTENT};

pub const OPTION_MIN_SEVERITY: &str = "min_severity";
pub const OPTION_RESOURCE_TYPE: &str = "resource_type";
pub const OPTION_LIMIT: &str = "limit";
/// Shown when `limit` is not given (the definition promises 10).
pub const DEFAULT_LIMIT: usize = 10;
/// The definition's maximum.
pub const MAX_LIMIT: usize = 50;
/// How many of the most recently ingested findings are filtered and sorted.
pub const SCAN_WINDOW: usize = 1000;

/// The `resource_type` choices of `commands/findings.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindFilter {
    AccessKey,
    Instance,
    S3Bucket,
    /// Any other resource type.
    Other,
}

impl KindFilter {
    pub fn parse(s: &str) -> Option<KindFilter> {
        match s {
            "AccessKey" => Some(KindFilter::AccessKey),
            "Instance" => Some(KindFilter::Instance),
            "S3Bucket" => Some(KindFilter::S3Bucket),
            "Other" => Some(KindFilter::Other),
            _ => None,
        }
    }

    pub fn matches(self, kind: &ResourceKind) -> bool {
        matches!(
            (self, kind),
            (KindFilter::AccessKey, ResourceKind::AccessKey)
                | (KindFilter::Instance, ResourceKind::Instance)
                | (KindFilter::S3Bucket, ResourceKind::S3Bucket)
                | (KindFilter::Other, ResourceKind::Other(_))
        )
    }
}

/// The filters of one `/findings`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Filter {
    pub min_severity: Option<f64>,
    pub kind: Option<KindFilter>,
    pub limit: usize,
}

impl Filter {
    /// Reads and checks the options; `Err` is a sentence for the invoker.
    pub fn from_invocation(inv: &Invocation) -> Result<Filter, String> {
        let min_severity = inv.num_opt(OPTION_MIN_SEVERITY)?;
        if let Some(m) = min_severity {
            if !(0.0..=10.0).contains(&m) {
                return Err(format!(
                    "min_severity must be between 0 and 10 (GuardDuty's scale), not {m}"
                ));
            }
        }
        let kind = match inv.str_opt(OPTION_RESOURCE_TYPE) {
            None => None,
            Some(s) => Some(KindFilter::parse(s).ok_or_else(|| {
                format!(
                    "resource_type must be AccessKey, Instance, S3Bucket or Other, not {}",
                    code(s)
                )
            })?),
        };
        let limit = match inv.int_opt(OPTION_LIMIT)? {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
            Some(n) => return Err(format!("limit must be between 1 and {MAX_LIMIT}, not {n}")),
        };
        Ok(Filter {
            min_severity,
            kind,
            limit,
        })
    }

    pub fn matches(&self, f: &Finding) -> bool {
        self.min_severity.map_or(true, |m| f.severity >= m)
            && self.kind.map_or(true, |k| k.matches(&f.resource.kind))
    }
}

/// Most severe first; equal severities by last seen (or ingestion), newest first; then id.
pub fn by_severity_then_time(a: &StoredFinding, b: &StoredFinding) -> Ordering {
    let seen = |s: &StoredFinding| {
        s.finding
            .last_seen
            .or(s.finding.updated_at)
            .unwrap_or(s.last_ingested_at)
    };
    b.finding
        .severity
        .total_cmp(&a.finding.severity)
        .then_with(|| seen(b).cmp(&seen(a)))
        .then_with(|| a.finding.id.cmp(&b.finding.id))
}

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).finish(app, inv)
}

fn handle(app: &App, inv: &Invocation) -> Handled {
    let filter = match Filter::from_invocation(inv) {
        Ok(f) => f,
        Err(why) => return Handled::refused("options", format!("Cannot list findings: {why}.")),
    };
    let recent = match app.store.recent_findings(SCAN_WINDOW) {
        Ok(r) => r,
        Err(e) => return Handled::failed("findings", "reading the recent findings", &e),
    };
    let scanned = recent.len();
    let mut matching: Vec<StoredFinding> = recent
        .into_iter()
        .filter(|s| filter.matches(&s.finding))
        .collect();
    matching.sort_by(by_severity_then_time);
    let total = matching.len();
    matching.truncate(filter.limit);

    let mut lines = Vec::with_capacity(matching.len());
    for s in &matching {
        let requests = match app.store.requests_for_finding(&s.finding.id) {
            Ok(r) => r,
            Err(e) => return Handled::failed("findings", "reading a finding's requests", &e),
        };
        lines.push(line(app, &s.finding, requests.last()));
    }

    let mut filters = Vec::new();
    if let Some(m) = filter.min_severity {
        filters.push(format!("severity ≥ {m}"));
    }
    if let Some(k) = filter.kind {
        filters.push(format!("resource {k:?}"));
    }
    let scope = if scanned >= SCAN_WINDOW {
        format!("among the {SCAN_WINDOW} most recently ingested")
    } else {
        "stored".to_string()
    };
    if total == 0 {
        let why = if filters.is_empty() {
            String::new()
        } else {
            format!(" matching {}", filters.join(", "))
        };
        return Handled::done(Reply::ephemeral(format!("No findings{why} {scope}.")));
    }
    let header = format!(
        "**{} of {total} findings** {scope}{}, highest severity first:",
        matching.len(),
        if filters.is_empty() {
            String::new()
        } else {
            format!(" ({})", filters.join(", "))
        }
    );
    let (content, _) = fit_lines(&header, &lines, MAX_CONTENT, |n| {
        format!("… {n} more not shown: raise min_severity, pick a resource_type or lower limit")
    });
    Handled::done(Reply::ephemeral(content))
}

/// `**High 8.0** [SAMPLE] `Type` · AccessKey `AKIA…` of `bob` · `1234…`/`us-east-1` · Pending · id `…``
fn line(app: &App, f: &Finding, latest: Option<&Request>) -> String {
    let sample = if f.sample { " **[SAMPLE]**" } else { "" };
    let state = match latest {
        Some(r) => match r.kind {
            RequestKind::Contain => r.state.as_str().to_string(),
            RequestKind::Revert { .. } => format!("revert {}", r.state),
        },
        None if app.plan_in(f).is_notify_only() => "notify only".to_string(),
        None => "no request".to_string(),
    };
    format!(
        "**{} {:.1}**{sample} {} · {} · {}/{} · **{state}** · id {}",
        f.severity_label.as_str(),
        f.severity,
        code_capped(&f.finding_type, 80),
        resource(f),
        code(&f.account_id),
        code_capped(&f.region, 32),
        code_capped(&f.id, 100),
    )
}

/// The resource in a few words.
pub fn resource(f: &Finding) -> String {
    let r = &f.resource;
    match &r.kind {
        ResourceKind::AccessKey => {
            let key = r.access_key.as_ref();
            let id = key.and_then(|k| k.access_key_id.as_deref());
            let user = key.and_then(|k| k.user_name.as_deref());
            match (id, user) {
                (Some(id), Some(user)) => {
                    format!(
                        "AccessKey {} of {}",
                        code_capped(id, 40),
                        code_capped(user, 64)
                    )
                }
                (Some(id), None) => format!("AccessKey {}", code_capped(id, 40)),
                (None, Some(user)) => format!("AccessKey of {}", code_capped(user, 64)),
                (None, None) => "AccessKey".to_string(),
            }
        }
        ResourceKind::Instance => {
            match r.instance.as_ref().and_then(|i| i.instance_id.as_deref()) {
                Some(id) => format!("Instance {}", code_capped(id, 40)),
                None => "Instance".to_string(),
            }
        }
        ResourceKind::S3Bucket => {
            let names: Vec<&str> = r
                .s3_buckets
                .iter()
                .filter_map(|b| b.name.as_deref())
                .collect();
            match names.as_slice() {
                [] => "S3Bucket".to_string(),
                [one] => format!("S3Bucket {}", code_capped(one, 64)),
                [first, rest @ ..] => {
                    format!("S3Bucket {} +{} more", code_capped(first, 64), rest.len())
                }
            }
        }
        ResourceKind::Other(kind) => plain(&crate::discord::text::truncate(kind, 40)),
    }
}
