//! Integration tests against AWS through the real aws-sdk clients: moto (one shared server
//! per binary where tests can share it, see `support::moto`) and the GuardDuty / Security Hub
//! stand-ins. Containment steps, the engine and drill, remediation, ingest, and the CloudTrail
//! lookup of a leaked key's events (against the CloudTrail stand-in).

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod aws_ec2;
mod aws_iam_s3;
mod aws_securityhub;
mod engine_drill;
mod ingest_guardduty;
mod ingest_securityhub;
mod ingest_spawn;
mod ingest_sqs;
mod investigate_cloudtrail;
mod remediate;
