//! Read-only lookups of a resource a person names by hand (`/contain`): who owns an access key
//! (`iam:GetAccessKeyLastUsed`), an instance's interfaces, profile and tags
//! (`ec2:DescribeInstances`), and whether a bucket exists and where (`s3:HeadBucket`); and a
//! user's access keys (`iam:ListAccessKeys`) for the IAM.3 remediation ([`crate::remediate`]).
//!
//! Each answers with the [`Resource`] a finding would carry, so a hand-made proposal plans like
//! any other, or with why it cannot: [`Looked::OwnerUnknown`] (AWS names no IAM user for the
//! key) and [`Looked::BucketElsewhere`] (the bucket is in another region). AWS errors are
//! classified ([`AwsError`]). Called by the application layer
//! ([`crate::actions::propose`]); may use the AWS SDK clients and the finding types.

use chrono::{DateTime, Utc};

use crate::aws::error::classify;
use crate::aws::{AwsClients, AwsError, ErrorClass};
use crate::finding::{
    AccessKeyDetails, InstanceDetails, NetworkInterface, Resource, ResourceKind, S3BucketDetails,
    SecurityGroupRef, Tag,
};

/// `GetAccessKeyLastUsed` names the root user like this.
const ROOT_USER_NAME: &str = "<root_account>";

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub enum Looked {
    Found(Box<Resource>),
    /// AWS does not say which IAM user owns the access key (a temporary `ASIA` key).
    OwnerUnknown,
    /// The bucket exists in another region than the one asked.
    BucketElsewhere {
        actual: String,
    },
}

/// The access key `key` and the IAM user who owns it.
pub async fn access_key(clients: &AwsClients, key: &str) -> Result<Looked, AwsError> {
    const OP: &str = "iam:GetAccessKeyLastUsed";
    let out = clients
        .iam()
        .get_access_key_last_used()
        .access_key_id(key)
        .send()
        .await
        .map_err(|e| classify(&e, OP, key))?;
    let user = match out.user_name() {
        Some(u) if !u.is_empty() => u.to_string(),
        _ => return Ok(Looked::OwnerUnknown),
    };
    let user_type = if user == ROOT_USER_NAME {
        "Root"
    } else {
        "IAMUser"
    };
    Ok(Looked::Found(Box::new(Resource {
        kind: ResourceKind::AccessKey,
        access_key: Some(AccessKeyDetails {
            access_key_id: Some(key.to_string()),
            principal_id: None,
            user_name: Some(user),
            user_type: Some(user_type.to_string()),
        }),
        instance: None,
        s3_buckets: Vec::new(),
    })))
}

/// The instance `id`: its interfaces, security groups, profile and tags.
pub async fn instance(clients: &AwsClients, id: &str) -> Result<Looked, AwsError> {
    const OP: &str = "ec2:DescribeInstances";
    let out = clients
        .ec2()
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| classify(&e, OP, id))?;
    let Some(i) = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .find(|i| i.instance_id() == Some(id))
    else {
        return Err(AwsError::local(
            ErrorClass::NotFound,
            OP,
            id,
            format!("instance {id} was not found"),
        ));
    };
    let interfaces = i
        .network_interfaces()
        .iter()
        .map(|n| NetworkInterface {
            network_interface_id: n.network_interface_id().map(str::to_string),
            vpc_id: n.vpc_id().map(str::to_string),
            subnet_id: n.subnet_id().map(str::to_string),
            private_ip: n.private_ip_address().map(str::to_string),
            public_ip: n
                .association()
                .and_then(|a| a.public_ip())
                .map(str::to_string),
            security_groups: n
                .groups()
                .iter()
                .map(|g| SecurityGroupRef {
                    group_id: g.group_id().map(str::to_string),
                    group_name: g.group_name().map(str::to_string),
                })
                .collect(),
        })
        .collect();
    let tags = i
        .tags()
        .iter()
        .filter_map(|t| {
            Some(Tag {
                key: t.key()?.to_string(),
                value: t.value().unwrap_or_default().to_string(),
            })
        })
        .collect();
    Ok(Looked::Found(Box::new(Resource {
        kind: ResourceKind::Instance,
        access_key: None,
        instance: Some(InstanceDetails {
            instance_id: Some(id.to_string()),
            instance_type: i.instance_type().map(|t| t.as_str().to_string()),
            instance_state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string()),
            availability_zone: i
                .placement()
                .and_then(|p| p.availability_zone())
                .map(str::to_string),
            image_id: i.image_id().map(str::to_string),
            instance_profile_arn: i
                .iam_instance_profile()
                .and_then(|p| p.arn())
                .map(str::to_string),
            instance_profile_id: i
                .iam_instance_profile()
                .and_then(|p| p.id())
                .map(str::to_string),
            network_interfaces: interfaces,
            tags,
        }),
        s3_buckets: Vec::new(),
    })))
}

/// The bucket `bucket`, when it exists and is in `region`.
pub async fn bucket(clients: &AwsClients, bucket: &str, region: &str) -> Result<Looked, AwsError> {
    const OP: &str = "s3:HeadBucket";
    let out = clients
        .s3()
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| classify(&e, OP, bucket))?;
    if let Some(actual) = out.bucket_region().filter(|r| *r != region) {
        return Ok(Looked::BucketElsewhere {
            actual: actual.to_string(),
        });
    }
    Ok(Looked::Found(Box::new(Resource {
        kind: ResourceKind::S3Bucket,
        access_key: None,
        instance: None,
        s3_buckets: vec![S3BucketDetails {
            name: Some(bucket.to_string()),
            arn: Some(format!("arn:aws:s3:::{bucket}")),
            bucket_type: None,
            public_access: None,
            tags: Vec::new(),
        }],
    })))
}

/// One access key as `ListAccessKeys` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub access_key_id: String,
    pub active: bool,
    pub created: Option<DateTime<Utc>>,
}

/// Every access key of `user` (read-only, all pages).
pub async fn access_keys_of(clients: &AwsClients, user: &str) -> Result<Vec<KeyInfo>, AwsError> {
    let mut keys = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = clients
            .iam()
            .list_access_keys()
            .user_name(user)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| classify(&e, "iam:ListAccessKeys", &format!("user {user}")))?;
        for k in out.access_key_metadata() {
            let Some(id) = k.access_key_id() else {
                continue;
            };
            keys.push(KeyInfo {
                access_key_id: id.to_string(),
                active: k.status().map(|s| s.as_str()) == Some("Active"),
                created: k
                    .create_date()
                    .and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos())),
            });
        }
        match out.marker() {
            Some(m) if out.is_truncated() => marker = Some(m.to_string()),
            _ => return Ok(keys),
        }
    }
}
