//! The Security Hub suppression step against moto and the `BatchUpdateFindings` stand-in,
//! through the real aws-sdk-securityhub client: capture, apply, verify, a second run that finds
//! nothing to do, revert (and revert after someone else moved a finding), acknowledge, an
//! unprocessed finding, a dry run, and findings that no longer exist.
//!
//! Needs `moto_server` (`pip install 'moto[server]'`); every test starts its own server and
//! stand-in. The findings are consolidated control findings of S3.8, written in the ASFF shape
//! Security Hub documents for them.

use crate::support::moto;
use crate::support::securityhub_standin as standin;

use chrono::Utc;
use hanko::aws::securityhub::{self, FindingIdentifier, NOTE_MAX_CHARS, NOTE_UPDATED_BY};
use hanko::aws::{Captured, ErrorClass, RevertOutcome, StepCtx};
use hanko::plan::{Action, Step, Target};
use serde_json::{json, Value};
use standin::Standin;

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const CONTROL: &str = "S3.8";
const PRODUCT_ARN: &str = "arn:aws:securityhub:us-east-1::product/aws/securityhub";
const REASON: &str = "Accepted risk: the buckets serve the public website (RISK-142)";

/// A FAILED consolidated control finding of S3.8 on `bucket`, workflow NEW, record ACTIVE.
fn control_finding(n: u32, bucket: &str) -> Value {
    let id = format!(
        "arn:aws:securityhub:{REGION}:{ACCOUNT}:security-control/{CONTROL}/finding/\
         5b1d3c6e-8f0a-4c2b-9e7d-00000000000{n}"
    );
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    json!({
        "SchemaVersion": "2018-10-08",
        "Id": id,
        "ProductArn": PRODUCT_ARN,
        "ProductName": "Security Hub",
        "CompanyName": "AWS",
        "Region": REGION,
        "GeneratorId": format!("security-control/{CONTROL}"),
        "AwsAccountId": ACCOUNT,
        "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"],
        "FirstObservedAt": "2024-05-02T09:14:03.512Z",
        "LastObservedAt": "2024-05-06T09:14:11.208Z",
        "CreatedAt": "2024-05-02T09:14:03.512Z",
        "UpdatedAt": "2024-05-06T09:14:07.011Z",
        "Severity": {"Label": "HIGH", "Normalized": 70, "Original": "HIGH"},
        "Title": "S3 general purpose buckets should block public access",
        "Description": "This control checks whether an Amazon S3 general purpose bucket blocks \
                        public access at the bucket level.",
        "Remediation": {
            "Recommendation": {
                "Text": "For information on how to correct this issue, consult the AWS Security \
                         Hub controls documentation.",
                "Url": "https://docs.aws.amazon.com/console/securityhub/S3.8/remediation"
            }
        },
        "ProductFields": {
            "RelatedAWSResources:0/name": "securityhub-s3-bucket-level-public-access-prohibited-1f2e3d4c",
            "RelatedAWSResources:0/type": "AWS::Config::ConfigRule",
            "aws/securityhub/ProductName": "Security Hub",
            "aws/securityhub/CompanyName": "AWS",
            "Resources:0/Id": bucket_arn,
            "aws/securityhub/FindingId": format!("{PRODUCT_ARN}/{id}")
        },
        "Resources": [{
            "Type": "AwsS3Bucket",
            "Id": bucket_arn,
            "Partition": "aws",
            "Region": REGION,
            "Details": {"AwsS3Bucket": {"OwnerId": "a1b2c3d4e5f6", "CreatedAt": "2023-11-20T08:00:00.000Z"}}
        }],
        "Compliance": {
            "Status": "FAILED",
            "SecurityControlId": CONTROL,
            "AssociatedStandards": [
                {"StandardsId": "standards/aws-foundational-security-best-practices/v/1.0.0"}
            ]
        },
        "WorkflowState": "NEW",
        "Workflow": {"Status": "NEW"},
        "RecordState": "ACTIVE",
        "FindingProviderFields": {
            "Severity": {"Label": "HIGH", "Original": "HIGH"},
            "Types": ["Software and Configuration Checks/Industry and Regulatory Standards"]
        },
        "ProcessedAt": "2024-05-06T09:14:12.873Z"
    })
}

/// moto, the stand-in in front of it, a client through the stand-in and the 3 findings.
struct World {
    _moto: moto::Shared,
    standin: Standin,
    client: aws_sdk_securityhub::Client,
    findings: Vec<Value>,
}

impl World {
    async fn new() -> World {
        // The shared moto, with this world's findings in a moto account of their own.
        let moto = moto::shared();
        let standin = Standin::start_in_own_account(moto.port).await;
        let client = standin.client(&moto.sdk_config().await);
        let findings: Vec<Value> = ["www-assets", "www-media", "press-kit"]
            .iter()
            .zip(1..)
            .map(|(b, n)| control_finding(n, b))
            .collect();
        standin.import(&findings).await;
        standin.clear_requests();
        World {
            _moto: moto,
            standin,
            client,
            findings,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.findings
            .iter()
            .map(|f| f["Id"].as_str().unwrap().to_string())
            .collect()
    }

    fn step(&self, reason: &str) -> Step {
        step_for(&self.ids(), reason)
    }

    /// Each finding's workflow status as moto holds it (raw JSON: the tests run on a default
    /// 2 MiB test thread, on purpose, and the SDK's `GetFindings` deserializer does not fit
    /// there in a debug build; the step reads on a deep-stack thread of its own).
    async fn statuses(&self) -> Vec<String> {
        let stored = self.standin.findings().await;
        self.ids()
            .iter()
            .map(|id| {
                stored
                    .iter()
                    .find(|f| f["Id"] == id.as_str())
                    .and_then(|f| f["Workflow"]["Status"].as_str())
                    .unwrap_or("(none)")
                    .to_string()
            })
            .collect()
    }

    /// Someone else sets one finding's workflow in the console.
    async fn set_status_by_hand(&self, id: &str, status: &str) {
        self.client
            .batch_update_findings()
            .finding_identifiers(
                aws_sdk_securityhub::types::AwsSecurityFindingIdentifier::builder()
                    .id(id)
                    .product_arn(PRODUCT_ARN)
                    .build(),
            )
            .workflow(
                aws_sdk_securityhub::types::WorkflowUpdate::builder()
                    .status(status.into())
                    .build(),
            )
            .send()
            .await
            .expect("a hand-made BatchUpdateFindings");
    }
}

fn step_for(ids: &[String], reason: &str) -> Step {
    let identifiers: Vec<Value> = ids
        .iter()
        .map(|id| json!({"Id": id, "ProductArn": PRODUCT_ARN}))
        .collect();
    Step::new(
        Action::SuppressFindings,
        Target::ControlFindings {
            control_id: CONTROL.into(),
            finding_ids: ids.to_vec(),
        },
        json!({
            "ControlId": CONTROL,
            "FindingIdentifiers": identifiers,
            "Reason": reason,
            "Workflow": {"Status": "SUPPRESSED"},
        }),
    )
}

fn ctx() -> StepCtx {
    StepCtx {
        request_id: uuid::Uuid::new_v4(),
        finding_id: String::new(),
        step_index: 0,
        now: Utc::now(),
        dry_run: false,
        approvers: vec!["alice".into(), "Bob K".into()],
        revert_retry: false,
        fresh_capture: false,
    }
}

/// The identifiers of a BatchUpdateFindings body, sorted.
fn identifiers_of(body: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = body["FindingIdentifiers"]
        .as_array()
        .expect("FindingIdentifiers")
        .iter()
        .map(|i| {
            (
                i["Id"].as_str().unwrap().to_string(),
                i["ProductArn"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn expected_identifiers(ids: &[String]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = ids
        .iter()
        .map(|id| (id.clone(), PRODUCT_ARN.to_string()))
        .collect();
    v.sort();
    v
}

/// Capture, apply, verify, as the engine runs a step.
async fn suppress(w: &World, step: &Step, ctx: &StepCtx) -> (Captured, Value) {
    let captured = securityhub::capture(&w.client, step, ctx)
        .await
        .expect("capture");
    assert!(!captured.already_in_target_state, "{captured:?}");
    let result = securityhub::apply(&w.client, step, &captured, ctx)
        .await
        .expect("apply");
    securityhub::verify(&w.client, step, &result, ctx)
        .await
        .expect("verify");
    (captured, result)
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn suppress_sends_the_exact_body_and_a_second_run_is_already_done() {
    let w = World::new().await;
    let step = w.step(REASON);
    let ctx = ctx();
    let (captured, result) = suppress(&w, &step, &ctx).await;

    let prior: serde_json::Map<String, Value> =
        w.ids().into_iter().map(|i| (i, json!("NEW"))).collect();
    assert_eq!(
        captured.prior,
        json!({"ControlId": CONTROL, "WorkflowStatus": prior, "Missing": []})
    );
    let bodies = w.standin.batch_updates();
    assert_eq!(bodies.len(), 1, "one BatchUpdateFindings call: {bodies:#?}");
    let body = &bodies[0];
    assert_eq!(identifiers_of(body), expected_identifiers(&w.ids()));
    let note = format!(
        "Suppressed by hanko request {}, approved by alice, Bob K. Reason: {REASON}",
        ctx.request_id
    );
    assert_eq!(
        body,
        &json!({
            "FindingIdentifiers": body["FindingIdentifiers"],
            "Workflow": {"Status": "SUPPRESSED"},
            "Note": {"Text": note, "UpdatedBy": "hanko"},
        }),
        "nothing else is sent (no severity, no user-defined fields)"
    );
    assert_eq!(result["Note"], json!(note));
    assert_eq!(result["RequestId"], json!(ctx.request_id.to_string()));
    assert_eq!(w.statuses().await, vec!["SUPPRESSED"; 3]);
    let stored = w.standin.findings().await;
    assert_eq!(stored.len(), 3, "moto updated in place, no copies");
    for f in &stored {
        assert_eq!(f["Note"]["Text"], json!(note));
        assert_eq!(
            f["Compliance"]["SecurityControlId"], CONTROL,
            "the rest is kept"
        );
    }

    // The engine runs the step again (a retry after a restart): nothing to apply.
    let again = securityhub::capture(&w.client, &step, &ctx)
        .await
        .expect("capture again");
    assert!(again.already_in_target_state, "{again:?}");
    assert_eq!(w.standin.batch_updates().len(), 1, "no second PATCH");
}

#[tokio::test]
async fn a_2000_character_reason_is_cut_to_fit_512_keeping_approvers_and_request() {
    let w = World::new().await;
    let reason = format!("{} END-OF-REASON", "because ".repeat(250));
    assert!(reason.chars().count() > 2000);
    let mut ctx = ctx();
    ctx.approvers = vec![
        "Alice Wong (SecOps)".into(),
        "Bob K".into(),
        "Chidi Okafor".into(),
    ];
    suppress(&w, &w.step(&reason), &ctx).await;
    let body = &w.standin.batch_updates()[0];
    let text = body["Note"]["Text"].as_str().unwrap();
    assert!(
        text.chars().count() <= 512,
        "{} chars",
        text.chars().count()
    );
    assert_eq!(text.chars().count(), NOTE_MAX_CHARS, "the room is used");
    assert!(
        text.starts_with(&format!(
            "Suppressed by hanko request {}, approved by Alice Wong (SecOps), Bob K, \
             Chidi Okafor. Reason: because because",
            ctx.request_id
        )),
        "{text}"
    );
    assert!(
        text.ends_with('…') && !text.contains("END-OF-REASON"),
        "{text}"
    );
    assert_eq!(body["Note"]["UpdatedBy"], NOTE_UPDATED_BY);
}

#[tokio::test]
async fn revert_lifts_the_suppression_back_to_new() {
    let w = World::new().await;
    let step = w.step(REASON);
    let (captured, result) = suppress(&w, &step, &ctx()).await;
    w.standin.clear_requests();

    let lift = ctx();
    let out = securityhub::revert(&w.client, &step, &captured.prior, &result, &lift)
        .await
        .expect("revert");
    assert_eq!(out, RevertOutcome::Restored);
    assert_eq!(w.statuses().await, vec!["NEW"; 3]);
    let bodies = w.standin.batch_updates();
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    assert_eq!(identifiers_of(&bodies[0]), expected_identifiers(&w.ids()));
    assert_eq!(bodies[0]["Workflow"], json!({"Status": "NEW"}));
    assert_eq!(
        bodies[0]["Note"]["Text"],
        json!(format!(
            "Suppression lifted by hanko request {} (suppressed by request {}), approved by \
             alice, Bob K; workflow back to NEW.",
            lift.request_id,
            result["RequestId"].as_str().unwrap()
        ))
    );

    // Lifting again finds them all back already and sends nothing.
    let again = securityhub::revert(&w.client, &step, &captured.prior, &result, &lift)
        .await
        .expect("revert again");
    assert!(
        matches!(again, RevertOutcome::NothingToRevert { .. }),
        "{again:?}"
    );
    assert_eq!(w.standin.batch_updates().len(), 1);
}

#[tokio::test]
async fn revert_leaves_a_finding_someone_resolved_alone_and_names_it() {
    let w = World::new().await;
    let step = w.step(REASON);
    let (captured, result) = suppress(&w, &step, &ctx()).await;
    let ids = w.ids();
    w.set_status_by_hand(&ids[1], "RESOLVED").await;
    w.standin.clear_requests();

    let out = securityhub::revert(&w.client, &step, &captured.prior, &result, &ctx())
        .await
        .expect("revert");
    let RevertOutcome::Drifted { reason } = out else {
        panic!("a partial lift must not read as Restored: {out:?}");
    };
    assert!(
        reason.contains(&format!("{} is RESOLVED now", ids[1])),
        "{reason}"
    );
    assert!(reason.contains("left alone"), "{reason}");
    assert!(
        reason.contains("the other 2 finding(s) was lifted (2 to NEW)"),
        "{reason}"
    );
    assert_eq!(w.statuses().await, vec!["NEW", "RESOLVED", "NEW"]);
    let bodies = w.standin.batch_updates();
    assert_eq!(bodies.len(), 1);
    assert_eq!(
        identifiers_of(&bodies[0]),
        expected_identifiers(&[ids[0].clone(), ids[2].clone()]),
        "the resolved finding is not in the call"
    );
}

#[tokio::test]
async fn revert_when_every_finding_moved_sends_nothing() {
    let w = World::new().await;
    let step = w.step(REASON);
    let (captured, result) = suppress(&w, &step, &ctx()).await;
    for id in w.ids() {
        w.set_status_by_hand(&id, "RESOLVED").await;
    }
    w.standin.clear_requests();
    let out = securityhub::revert(&w.client, &step, &captured.prior, &result, &ctx())
        .await
        .expect("revert");
    let RevertOutcome::Drifted { reason } = out else {
        panic!("nothing of hanko's is left to lift: {out:?}");
    };
    assert!(
        reason.starts_with("no finding is suppressed as hanko left it"),
        "{reason}"
    );
    assert!(w.standin.batch_updates().is_empty(), "no PATCH");
    assert_eq!(w.statuses().await, vec!["RESOLVED"; 3]);
}

#[tokio::test]
async fn acknowledge_sets_notified_with_a_note() {
    let w = World::new().await;
    let ids = w.ids();
    let pairs: Vec<(String, String)> = ids[..2]
        .iter()
        .map(|id| (id.clone(), PRODUCT_ARN.to_string()))
        .collect();
    let out = securityhub::acknowledge(&w.client, &pairs, "carol")
        .await
        .expect("acknowledge");
    assert_eq!(out.status, "NOTIFIED");
    assert_eq!(out.processed.len(), 2);
    let bodies = w.standin.batch_updates();
    assert_eq!(bodies.len(), 1);
    assert_eq!(identifiers_of(&bodies[0]), expected_identifiers(&ids[..2]));
    assert_eq!(
        bodies[0],
        json!({
            "FindingIdentifiers": bodies[0]["FindingIdentifiers"],
            "Workflow": {"Status": "NOTIFIED"},
            "Note": {"Text": "Acknowledged in hanko by carol.", "UpdatedBy": "hanko"},
        })
    );
    assert_eq!(w.statuses().await, vec!["NOTIFIED", "NOTIFIED", "NEW"]);
}

#[tokio::test]
async fn an_unprocessed_finding_is_a_classified_error_naming_it() {
    let w = World::new().await;
    let ids = w.ids();
    w.standin.report_unprocessed(
        &ids[2],
        "ConcurrentUpdateError",
        "The finding was updated concurrently",
    );
    let step = w.step(REASON);
    let ctx = ctx();
    let captured = securityhub::capture(&w.client, &step, &ctx)
        .await
        .expect("capture");
    let err = securityhub::apply(&w.client, &step, &captured, &ctx)
        .await
        .expect_err("an unprocessed finding fails the step");
    assert_eq!(err.class, ErrorClass::Retryable, "{err:?}");
    assert_eq!(err.code.as_deref(), Some("ConcurrentUpdateError"));
    assert_eq!(err.operation, "securityhub:BatchUpdateFindings");
    assert!(
        err.message
            .contains(&format!("{}: ConcurrentUpdateError", ids[2])),
        "{}",
        err.message
    );
    assert!(err.message.contains("(2 processed)"), "{}", err.message);

    // A finding Security Hub does not know is NotFound.
    w.standin
        .report_unprocessed(&ids[0], "FindingNotFound", "Finding not found");
    let err = securityhub::apply(&w.client, &step, &captured, &ctx)
        .await
        .expect_err("unprocessed");
    assert_eq!(err.class, ErrorClass::NotFound, "{err:?}");
}

#[tokio::test]
async fn a_dry_run_makes_no_patch() {
    let w = World::new().await;
    let step = w.step(REASON);
    let mut ctx = ctx();
    ctx.dry_run = true;
    let captured = securityhub::capture(&w.client, &step, &ctx)
        .await
        .expect("capture reads in a dry run");
    let result = securityhub::apply(&w.client, &step, &captured, &ctx)
        .await
        .expect("apply");
    securityhub::verify(&w.client, &step, &result, &ctx)
        .await
        .expect("verify");
    assert!(
        w.standin.batch_updates().is_empty(),
        "no PATCH in a dry run"
    );
    assert!(
        w.standin
            .requests()
            .iter()
            .all(|r| r.method == "POST" && r.path == "/findings"),
        "only GetFindings: {:?}",
        w.standin.requests()
    );
    assert_eq!(result["dry_run"], true);
    assert_eq!(result["would_call"], "securityhub:BatchUpdateFindings");
    assert_eq!(
        result["parameters"]["FindingIdentifiers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(w.statuses().await, vec!["NEW"; 3]);
    let out = securityhub::revert(&w.client, &step, &captured.prior, &result, &ctx)
        .await
        .expect("revert");
    assert!(
        matches!(out, RevertOutcome::NothingToRevert { .. }),
        "{out:?}"
    );
}

#[tokio::test]
async fn findings_that_no_longer_exist_are_named_and_the_rest_carry_on() {
    let w = World::new().await;
    let gone = format!(
        "arn:aws:securityhub:{REGION}:{ACCOUNT}:security-control/{CONTROL}/finding/deleted-0"
    );
    let mut ids = w.ids();
    ids.push(gone.clone());
    let step = step_for(&ids, REASON);
    let (captured, result) = suppress(&w, &step, &ctx()).await;
    assert_eq!(captured.prior["Missing"], json!([gone]));
    assert_eq!(result["Missing"], json!([gone]));
    let body = &w.standin.batch_updates()[0];
    assert_eq!(
        identifiers_of(body),
        expected_identifiers(&w.ids()),
        "the missing finding is not sent"
    );

    // None left: NotFound, and no call.
    w.standin.clear_requests();
    let none = step_for(std::slice::from_ref(&gone), REASON);
    let err = securityhub::capture(&w.client, &none, &ctx())
        .await
        .expect_err("nothing to suppress");
    assert_eq!(err.class, ErrorClass::NotFound, "{err:?}");
    assert!(w.standin.batch_updates().is_empty());
}

#[tokio::test]
async fn a_finding_already_suppressed_by_someone_else_keeps_its_note() {
    let w = World::new().await;
    let ids = w.ids();
    w.set_status_by_hand(&ids[0], "SUPPRESSED").await;
    w.standin.clear_requests();
    let step = w.step(REASON);
    let (captured, result) = suppress(&w, &step, &ctx()).await;
    assert_eq!(captured.prior["WorkflowStatus"][&ids[0]], "SUPPRESSED");
    assert_eq!(result["AlreadySuppressed"], json!([ids[0]]));
    let body = &w.standin.batch_updates()[0];
    assert_eq!(
        identifiers_of(body),
        expected_identifiers(&ids[1..]),
        "only the findings hanko suppresses"
    );
    // Lifting restores hanko's two and leaves the other suppression in place.
    let out = securityhub::revert(&w.client, &step, &captured.prior, &result, &ctx())
        .await
        .expect("revert");
    assert_eq!(out, RevertOutcome::Restored);
    assert_eq!(w.statuses().await, vec!["SUPPRESSED", "NEW", "NEW"]);
    let hankos: Vec<FindingIdentifier> =
        serde_json::from_value(result["Suppressed"].clone()).unwrap();
    assert_eq!(hankos.len(), 2);
}
