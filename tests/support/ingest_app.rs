//! An [`App`] for the ingest tests: validated settings from a small TOML, a temporary (or
//! given) store, the built-in playbooks, and a client factory over the test SDK config.

#![allow(dead_code)]

use std::path::Path;

use hanko::app::App;
use hanko::audit::{AuditQuery, EventKind};
use hanko::aws::ClientFactory;
use hanko::config::Settings;
use hanko::playbooks::Playbooks;
use hanko::store::Store;

/// The fixtures are from 2019 to 2024: look back far enough to see them all.
pub const TEST_BACKFILL_DAYS: i64 = 20 * 365;

/// Settings with `[ingest]` lines added; backfill widened to [`TEST_BACKFILL_DAYS`] (beyond
/// what the file may say, so set here).
pub fn settings(ingest: &str) -> Settings {
    let text = format!(
        r#"
[discord]
guild_id = "123456789012345678"
channel_id = "223456789012345678"

[responders]
approver_roles = ["323456789012345678"]

[aws]
# The fixtures come from several accounts and from us-east-1 and us-east-2: a multi-account
# deployment that acts there through its role (hanko acts only where it may, see
# hanko::planner), so their plans keep their steps.
regions = ["us-east-1", "us-east-2"]
role_arn_template = "arn:aws:iam::{{account}}:role/HankoResponder"

[ingest]
{ingest}
"#
    );
    let mut s = hanko::config::parse(&text, Path::new("/tmp/hanko-ingest-test.toml"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    s.ingest.backfill = chrono::Duration::days(TEST_BACKFILL_DAYS);
    s
}

pub fn app(settings: Settings, store: Store, conf: aws_config::SdkConfig) -> App {
    let clients = ClientFactory::from_sdk_config(conf, settings.aws.role_arn_template.clone());
    App::new(settings, Playbooks::defaults(), store, clients)
}

/// Audit events of `kind`, optionally about one finding.
pub fn events(store: &Store, kind: EventKind, finding: Option<&str>) -> usize {
    store
        .query_audit(&AuditQuery {
            kind: Some(kind),
            finding_id: finding.map(str::to_string),
            ..AuditQuery::default()
        })
        .unwrap()
        .len()
}
