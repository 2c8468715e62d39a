//! `/score`: Security Hub's security score per standard and account (passed controls among
//! the evaluated ones, as [`crate::posture::scores`] counts them), the trend against the scores
//! hanko recorded 1 and 7 days ago, and the controls that failed most recently. Everyone in the
//! channel sees it: a score is meant to be seen.
//!
//! Reads the store only. The ingest's posture pass records the day's scores
//! ([`Store::record_scores`]) whenever a control finding changed, and once on a day without a
//! record, so each day keeps its last scores.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::app::App;
use crate::posture::{self, ControlFinding, Group, GroupKey, Snapshot};
use crate::store::{Store, StoreError};

use super::{code, plain, Handled, Invocation, Reply};

/// Controls listed under "failed most recently".
pub const RECENT: usize = 5;

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    match score_text(&app.store, app.clock.now()) {
        Ok(text) => Handled::done(Reply::public(text)),
        Err(e) => Handled::failed("score", "reading the store", &e),
    }
    .finish(app, inv)
}

/// The answer when no control was evaluated.
pub const NOTHING_EVALUATED: &str = "No Security Hub control has been evaluated yet (is \
    `ingest.securityhub` on, with a standard enabled?).";

/// The `/score` answer at `now`.
pub fn score_text(store: &Store, now: DateTime<Utc>) -> Result<String, StoreError> {
    Ok(score_report(store, now)?.unwrap_or_else(|| NOTHING_EVALUATED.to_string()))
}

/// The score report at `now`, `None` when no control was evaluated (the daily digest posts
/// nothing then).
pub fn score_report(store: &Store, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
    let findings = store.all_control_findings()?;
    let rows = posture::scores(&findings);
    if rows.is_empty() {
        return Ok(None);
    }
    let today = now.date_naive();
    let day_ago = store.score_snapshot(today - Duration::days(1))?;
    let week_ago = store.score_snapshot(today - Duration::days(7))?;
    let mut out = String::from("**Security score** (passed controls / evaluated controls)\n");
    for row in &rows {
        let trend = |then: &Option<Snapshot>, label: &str| match posture::trend(
            row,
            then.as_ref()
                .and_then(|s| s.row(&row.standard, &row.account_id)),
        ) {
            Some(d) => format!("{label}: {d:+.1} pts"),
            None => format!("{label}: no record"),
        };
        out.push_str(&format!(
            "• {} · account {}: **{}/{} ({:.1} %)** · {} · {}\n",
            plain(&posture::standard_name(&row.standard)),
            code(&row.account_id),
            row.passed,
            row.total,
            row.percent().unwrap_or(0.0),
            trend(&day_ago, "1 d"),
            trend(&week_ago, "7 d"),
        ));
    }
    let mut by_group: BTreeMap<GroupKey, Vec<ControlFinding>> = BTreeMap::new();
    for f in findings {
        by_group.entry(f.group_key()).or_default().push(f);
    }
    let groups: Vec<Group> = by_group.values().filter_map(|g| Group::of(g)).collect();
    let recent = posture::recently_failed(&groups, RECENT);
    if !recent.is_empty() {
        out.push_str("**Failed most recently**\n");
        for (g, since) in recent {
            out.push_str(&format!(
                "• {} {} · account {} · {} resource(s) · since <t:{}:R>\n",
                code(&g.key.control_id),
                plain(&g.title),
                code(&g.key.account_id),
                g.failing.len(),
                since.timestamp()
            ));
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::{parse_control_finding, ComplianceStatus};
    use chrono::TimeZone;
    use serde_json::json;

    fn finding(n: usize, control: &str, status: &str, updated: &str) -> ControlFinding {
        let v = json!({
            "Id": format!("arn:aws:securityhub:us-east-1:123456789012:security-control/{control}/finding/{n}"),
            "ProductArn": "arn:aws:securityhub:us-east-1::product/aws/securityhub",
            "AwsAccountId": "123456789012",
            "Region": "us-east-1",
            "FirstObservedAt": updated,
            "UpdatedAt": updated,
            "Title": format!("{control} title"),
            "Resources": [{"Type": "AwsS3Bucket", "Id": format!("arn:aws:s3:::b{n}")}],
            "Compliance": {"Status": status, "SecurityControlId": control, "AssociatedStandards": [
                {"StandardsId": "standards/aws-foundational-security-best-practices/v/1.0.0"}]},
            "Workflow": {"Status": "NEW"},
            "RecordState": "ACTIVE"
        });
        parse_control_finding(&v, "$", "us-east-1").unwrap()
    }

    #[test]
    fn the_score_matches_a_hand_count_with_its_trend_after_two_recorded_days() {
        let store = Store::open_temporary().unwrap();
        let day1 = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let day2 = day1 + Duration::days(1);
        let day3 = day2 + Duration::days(1);
        // Day 1: 4 controls, all passing → 4/4.
        for (n, c) in ["S3.8", "IAM.3", "EC2.2", "KMS.4"].iter().enumerate() {
            store
                .upsert_control_finding(&finding(n, c, "PASSED", "2026-11-26T10:00:00Z"))
                .unwrap();
        }
        store.record_scores(day1).unwrap();
        // Day 2: S3.8 fails on one of its two buckets → 3/4.
        store
            .upsert_control_finding(&finding(10, "S3.8", "FAILED", "2026-11-27T09:00:00Z"))
            .unwrap();
        store.record_scores(day2).unwrap();
        // Day 3: IAM.3 fails too → 2/4: -25 points against day 2; 7 days ago: no record.
        store
            .upsert_control_finding(&finding(1, "IAM.3", "FAILED", "2026-11-28T08:00:00Z"))
            .unwrap();
        let text = score_text(&store, day3).unwrap();
        assert!(
            text.contains("AWS Foundational Security Best Practices v1.0.0 · account `123456789012`: **2/4 (50.0 %)** · 1 d: -25.0 pts · 7 d: no record"),
            "{text}"
        );
        // Most recent failure first.
        let iam = text.find("`IAM.3`").unwrap();
        let s3 = text.find("`S3.8`").unwrap();
        assert!(iam < s3, "{text}");
        // Recording day 3 replaces nothing of day 2.
        store.record_scores(day3).unwrap();
        let d2 = store.score_snapshot(day2.date_naive()).unwrap().unwrap();
        assert_eq!((d2.rows[0].passed, d2.rows[0].total), (3, 4));
        assert_eq!(
            finding(0, "S3.8", "PASSED", "2026-11-26T10:00:00Z").compliance,
            ComplianceStatus::Passed
        );
    }

    #[test]
    fn with_no_control_finding_it_says_so() {
        let store = Store::open_temporary().unwrap();
        assert!(score_text(&store, Utc::now())
            .unwrap()
            .starts_with("No Security Hub control has been evaluated yet"));
    }
}
