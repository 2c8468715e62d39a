//! One way for tests to write a [`Finding`] by hand: a builder with the defaults of a GuardDuty
//! finding about an IAM access key, so a test names only what it is about.
//!
//! ```ignore
//! let f = FindingBuilder::new("f-1")
//!     .access_key("alice", "AKIAAAAAAAAAAAAAAAA1")
//!     .severity(8.5)
//!     .build();
//! ```
//!
//! Findings read from documents (the fixtures, EventBridge events) go through the real parsers
//! instead; this is for the tests that need a finding with exactly these fields.

use chrono::{DateTime, TimeZone, Utc};
use hanko::finding::{
    AccessKeyDetails, ActorInfo, Finding, FindingSource, InstanceDetails, Resource, ResourceKind,
    S3BucketDetails, SeverityLabel,
};

/// The account the tests act in (moto's default account).
pub const ACCOUNT: &str = "123456789012";
/// The region a finding is in unless a test says otherwise.
pub const REGION: &str = "us-east-1";
/// The finding type unless a test says otherwise.
pub const FINDING_TYPE: &str = "UnauthorizedAccess:IAMUser/MaliciousIPCaller";

/// 2026-11-28 16:00 UTC: every time of a built finding unless a test sets it.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap()
}

/// Builds a [`Finding`]; see the module header.
#[derive(Debug, Clone)]
pub struct FindingBuilder {
    finding: Finding,
}

impl FindingBuilder {
    /// A GuardDuty finding `id` in [`ACCOUNT`]/[`REGION`] of type [`FINDING_TYPE`], severity
    /// 8.0 (High), every time [`t0`], seen once, live, about an access key it names nothing of.
    pub fn new(id: &str) -> Self {
        let t = t0();
        FindingBuilder {
            finding: Finding {
                id: id.to_string(),
                arn: None,
                account_id: ACCOUNT.into(),
                region: REGION.into(),
                finding_type: FINDING_TYPE.into(),
                severity: 8.0,
                severity_label: SeverityLabel::from_score(8.0),
                title: format!("finding {id}"),
                description: String::new(),
                created_at: Some(t),
                updated_at: Some(t),
                first_seen: Some(t),
                last_seen: Some(t),
                count: 1,
                archived: false,
                sample: false,
                source: FindingSource::GuardDuty,
                resource: Resource {
                    kind: ResourceKind::AccessKey,
                    access_key: None,
                    instance: None,
                    s3_buckets: Vec::new(),
                },
                actor: ActorInfo::default(),
            },
        }
    }

    /// About access key `key` of IAM user `user`.
    pub fn access_key(mut self, user: &str, key: &str) -> Self {
        self.finding.resource = Resource {
            kind: ResourceKind::AccessKey,
            access_key: Some(AccessKeyDetails {
                access_key_id: Some(key.into()),
                principal_id: None,
                user_name: Some(user.into()),
                user_type: Some("IAMUser".into()),
            }),
            instance: None,
            s3_buckets: Vec::new(),
        };
        self
    }

    /// About EC2 instance `instance_id`.
    pub fn instance(mut self, instance_id: &str) -> Self {
        self.finding.resource = Resource {
            kind: ResourceKind::Instance,
            access_key: None,
            instance: Some(InstanceDetails {
                instance_id: Some(instance_id.into()),
                ..Default::default()
            }),
            s3_buckets: Vec::new(),
        };
        self
    }

    /// About S3 bucket `name` (call again for a finding about several buckets).
    pub fn bucket(mut self, name: &str) -> Self {
        if self.finding.resource.kind != ResourceKind::S3Bucket {
            self.finding.resource = Resource {
                kind: ResourceKind::S3Bucket,
                access_key: None,
                instance: None,
                s3_buckets: Vec::new(),
            };
        }
        self.finding.resource.s3_buckets.push(S3BucketDetails {
            name: Some(name.into()),
            ..Default::default()
        });
        self
    }

    /// About a resource of another kind (`EKSCluster`, ...), with no details.
    pub fn other_resource(mut self, kind: &str) -> Self {
        self.finding.resource = Resource {
            kind: ResourceKind::Other(kind.into()),
            access_key: None,
            instance: None,
            s3_buckets: Vec::new(),
        };
        self
    }

    /// No resource details at all, of `kind`.
    pub fn bare_resource(mut self, kind: ResourceKind) -> Self {
        self.finding.resource = Resource {
            kind,
            access_key: None,
            instance: None,
            s3_buckets: Vec::new(),
        };
        self
    }

    pub fn account(mut self, account_id: &str) -> Self {
        self.finding.account_id = account_id.into();
        self
    }

    pub fn region(mut self, region: &str) -> Self {
        self.finding.region = region.into();
        self
    }

    pub fn arn(mut self, arn: &str) -> Self {
        self.finding.arn = Some(arn.into());
        self
    }

    pub fn finding_type(mut self, finding_type: &str) -> Self {
        self.finding.finding_type = finding_type.into();
        self
    }

    /// The score and the label GuardDuty gives it.
    pub fn severity(mut self, score: f64) -> Self {
        self.finding.severity = score;
        self.finding.severity_label = SeverityLabel::from_score(score);
        self
    }

    pub fn title(mut self, title: &str) -> Self {
        self.finding.title = title.into();
        self
    }

    pub fn description(mut self, description: &str) -> Self {
        self.finding.description = description.into();
        self
    }

    pub fn created_at(mut self, t: DateTime<Utc>) -> Self {
        self.finding.created_at = Some(t);
        self
    }

    pub fn updated_at(mut self, t: DateTime<Utc>) -> Self {
        self.finding.updated_at = Some(t);
        self
    }

    pub fn first_seen(mut self, t: DateTime<Utc>) -> Self {
        self.finding.first_seen = Some(t);
        self
    }

    pub fn last_seen(mut self, t: DateTime<Utc>) -> Self {
        self.finding.last_seen = Some(t);
        self
    }

    /// Every time of the finding (created, updated, first and last seen) at `t`.
    pub fn at(self, t: DateTime<Utc>) -> Self {
        self.created_at(t).updated_at(t).first_seen(t).last_seen(t)
    }

    pub fn count(mut self, count: u64) -> Self {
        self.finding.count = count;
        self
    }

    pub fn archived(mut self, archived: bool) -> Self {
        self.finding.archived = archived;
        self
    }

    /// One of GuardDuty's generated sample findings.
    pub fn sample(mut self, sample: bool) -> Self {
        self.finding.sample = sample;
        self
    }

    pub fn source(mut self, source: FindingSource) -> Self {
        self.finding.source = source;
        self
    }

    pub fn actor(mut self, actor: ActorInfo) -> Self {
        self.finding.actor = actor;
        self
    }

    pub fn build(self) -> Finding {
        self.finding
    }
}
