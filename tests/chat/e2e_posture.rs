//! Security Hub posture end to end (issue 7): the real bot against the Discord fake, Security
//! Hub control findings in moto behind the `BatchUpdateFindings` stand-in, and the real
//! Security Hub poller.
//!
//! * 40 failed findings of one control make one card; 3 of another control make a second;
//! * Suppress needs a responder, a reason (modal) and another person's approval, and then sends
//!   exactly the control's findings to `BatchUpdateFindings` as SUPPRESSED with a note naming
//!   the reason, the approver and the request;
//! * Acknowledge sends NOTIFIED at once, audited, and the card says so;
//! * the control passing again turns its card into a resolved one;
//! * (issue 11, item 5) a suppression and its lift reach the card at once, without a poll (the
//!   stand-in, like Security Hub, does not move `UpdatedAt` on `BatchUpdateFindings`): the card
//!   says suppressed, by whom, why and how to lift it; `/score` drops the control; a stale
//!   Acknowledge cannot touch the suppressed findings, nor one suppressed outside hanko;
//! * (issue 11, 4(c)) Acknowledge is refused and audited while paused and outside
//!   `aws.accounts`, audited before its call; "already open" and "nothing to acknowledge"
//!   refusals are audited.
//!
//! Needs `moto_server` (`pip install 'moto[server]'`).

use crate::support::control_findings;
use crate::support::discord_fake;
use crate::support::e2e_bot;
use crate::support::moto;
use crate::support::securityhub_standin as standin;

use discord_fake::{DiscordFake, FakeMessage, MessageSource, CALLBACK_MODAL};
use hanko::actions::posture::{ACK_PAUSED, NOTHING_FAILS, NOTHING_TO_ACKNOWLEDGE};
use hanko::app::App;
use hanko::approval::RequestState;
use hanko::audit::{Actor, AuditQuery, EventKind};
use hanko::aws::ClientFactory;
use hanko::discord::custom_id::{PostureAction, PostureId, SUPPRESS_REASON_INPUT};
use hanko::ingest::securityhub::SecurityHubPoller;
use hanko::plan::Action;
use hanko::posture::{GroupKey, WorkflowStatus};
use serde_json::{json, Value};

use control_findings::{control_finding, ACCOUNT};
use e2e_bot::*;

const REASON: &str = "Public by design: the static website buckets (RISK-142)";

fn s3_findings(status: &str, updated: &str) -> Vec<Value> {
    (0..40)
        .map(|n| {
            control_finding(
                n,
                "S3.8",
                status,
                &format!("arn:aws:s3:::site-{n:02}"),
                updated,
            )
        })
        .collect()
}

fn ec2_findings(status: &str, updated: &str) -> Vec<Value> {
    (100..103)
        .map(|n| {
            control_finding(
                n,
                "EC2.19",
                status,
                &format!("arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/sg-{n}"),
                updated,
            )
        })
        .collect()
}

/// One poll of the Security Hub poller with the bot's app, on a thread with the stack hanko
/// gives its ingest loops (the SDK's Security Hub types overflow a 2 MiB test thread).
async fn poll(app: &App, conf: &aws_config::SdkConfig) -> hanko::ingest::PollReport {
    let app = app.clone();
    let client = aws_sdk_securityhub::Client::new(conf);
    tokio::task::spawn_blocking(move || {
        std::thread::Builder::new()
            .stack_size(hanko::ingest::INGEST_THREAD_STACK)
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async move {
                        SecurityHubPoller::new(app, client, "us-east-1")
                            .poll_once(chrono::Utc::now())
                            .await
                            .unwrap()
                    })
            })
            .unwrap()
            .join()
            .unwrap()
    })
    .await
    .unwrap()
}

fn group_footer(control: &str) -> String {
    format!("posture {ACCOUNT}/us-east-1/{control}")
}

fn group_key(control: &str) -> GroupKey {
    GroupKey {
        account_id: ACCOUNT.into(),
        region: "us-east-1".into(),
        control_id: control.into(),
    }
}

/// The stored workflow status of every control finding of `control`.
fn stored_workflows(app: &App, control: &str) -> Vec<WorkflowStatus> {
    app.store
        .control_findings(&group_key(control))
        .unwrap()
        .iter()
        .map(|f| f.workflow)
        .collect()
}

/// `/score`'s answer, as `who` sees it.
async fn score(fake: &DiscordFake, who: &discord_fake::FakeMember) -> String {
    let cmd = fake.inject_slash_command("score", json!([]), who);
    command_answer(fake, &cmd).await
}

/// The FSBP score line's "passed/evaluated" part for the test account, e.g. `**0/2 (0.0 %)**`.
fn fsbp(passed: u32, total: u32) -> String {
    let percent = if total == 0 {
        0.0
    } else {
        f64::from(passed) * 100.0 / f64::from(total)
    };
    format!(
        "AWS Foundational Security Best Practices v1.0.0 · account `{ACCOUNT}`: **{passed}/{total} ({percent:.1} %)**"
    )
}

/// Refused posture clicks audited with `code`.
fn refusals(app: &App, code: &str) -> Vec<hanko::audit::AuditEvent> {
    app.store
        .query_audit(&AuditQuery {
            kind: Some(EventKind::CommandInvoked),
            ..AuditQuery::default()
        })
        .unwrap()
        .into_iter()
        .filter(|e| e.detail["refused"] == code)
        .collect()
}

/// Whether any `BatchUpdateFindings` body the stand-in received sets `status` on one of `ids`.
fn sent_status_for(standin: &standin::Standin, status: &str, ids: &[String]) -> bool {
    standin.batch_updates().iter().any(|b| {
        b["Workflow"]["Status"] == status
            && b["FindingIdentifiers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|f| ids.iter().any(|id| f["Id"] == id.as_str()))
    })
}

/// The posture card of `control` as the fake holds it, once `check` holds for it.
async fn wait_for_posture_card(
    fake: &DiscordFake,
    control: &str,
    check: impl Fn(&FakeMessage) -> bool,
) -> FakeMessage {
    let footer = group_footer(control);
    let found = fake
        .wait_for_message(
            |m| {
                m.source == MessageSource::ChannelPost
                    && m.embed_text().contains(&footer)
                    && check(m)
            },
            WAIT,
        )
        .await;
    found.unwrap_or_else(|e| {
        let cards: Vec<String> = fake
            .channel_posts(fake.channel_id())
            .iter()
            .map(|m| format!("{}\nbuttons: {:?}", m.embed_text(), m.button_labels()))
            .collect();
        panic!(
            "the {control} card never matched: {e}\ncards now:\n{}",
            cards.join("\n---\n")
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posture_cards_suppress_with_reason_and_approval_acknowledge_and_resolve() {
    let moto = moto::shared();
    let standin = standin::Standin::start_in_own_account(moto.port).await;
    let moto_conf = moto.sdk_config().await;
    // Every AWS call of the bot and the poller goes through the stand-in.
    let conf = moto_conf
        .to_builder()
        .endpoint_url(standin.endpoint())
        .build();
    let updated = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    standin.import(&s3_findings("FAILED", &updated)).await;
    standin.import(&ec2_findings("FAILED", &updated)).await;

    let bot = Bot::start(1, ClientFactory::from_sdk_config(conf.clone(), None)).await;
    let fake = &bot.fake;
    let app = bot.app().clone();
    let report = poll(&app, &conf).await;
    assert_eq!(report.posture_changed, 43, "{report:?}");

    // One card per control, not one per finding.
    let s3_card = wait_for_posture_card(fake, "S3.8", |_| true).await;
    let ec2_card = wait_for_posture_card(fake, "EC2.19", |_| true).await;
    let text = s3_card.embed_text();
    assert!(text.contains("Failing resources (40)"), "{text}");
    assert!(text.contains("+35 more"), "{text}");
    assert!(
        text.contains("AWS Foundational Security Best Practices v1.0.0"),
        "{text}"
    );
    assert_eq!(
        s3_card.button_labels(),
        vec!["Remediate", "Suppress", "Acknowledge"]
    );
    assert_eq!(
        ec2_card.button_labels(),
        vec!["Suppress", "Acknowledge"],
        "hanko has no remediation for EC2.19"
    );
    assert_eq!(
        fake.channel_posts(fake.channel_id()).len(),
        2,
        "43 failed findings, 2 controls: 2 cards"
    );
    // Both controls fail: 0 of 2 evaluated controls pass.
    let scored = score(fake, &alice()).await;
    assert!(scored.contains(&fsbp(0, 2)), "{scored}");

    // Someone without a responder role cannot start a suppression.
    let click = fake.inject_button(
        &s3_card.custom_id_of("Suppress").unwrap(),
        s3_card.id,
        &mallory(),
    );
    let answer = wait_for_ephemeral_answer(fake, &click).await;
    assert!(answer.starts_with("you are not a responder"), "{answer}");

    // Suppress asks for a reason in a modal.
    let click = fake.inject_button(
        &s3_card.custom_id_of("Suppress").unwrap(),
        s3_card.id,
        &alice(),
    );
    let callback = fake.wait_for_callback(&click, WAIT).await.unwrap();
    assert_eq!(callback.body_at("/type"), Some(&json!(CALLBACK_MODAL)));
    let modal_id = callback
        .body_at("/data/custom_id")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert_eq!(
        PostureId::parse(&modal_id).unwrap().action,
        PostureAction::SuppressReason
    );
    let input = callback.body_at("/data/components/0/components/0").unwrap();
    assert_eq!(input["custom_id"], SUPPRESS_REASON_INPUT);
    assert_eq!(input["required"], true);

    // Without a reason, nothing is proposed.
    let submit = fake.inject_modal_submit(&modal_id, &[(SUPPRESS_REASON_INPUT, "  ")], &alice());
    let answer = wait_for_ephemeral_answer(fake, &submit).await;
    assert!(answer.contains("needs a reason"), "{answer}");
    let group = format!("{ACCOUNT}/us-east-1/S3.8");
    assert!(app.store.requests_for_finding(&group).unwrap().is_empty());

    // With one, a suppression request is proposed and its card posted.
    let submit = fake.inject_modal_submit(&modal_id, &[(SUPPRESS_REASON_INPUT, REASON)], &alice());
    eventually("the suppression request", || {
        app.store.requests_for_finding(&group).unwrap().len() == 1
    })
    .await;
    let request = app.store.requests_for_finding(&group).unwrap().remove(0);
    assert_eq!(request.proposer.display_name(), "alice");
    assert_eq!(request.plan.steps.len(), 1);
    let step = &request.plan.steps[0];
    assert_eq!(step.action, Action::SuppressFindings);
    assert_eq!(step.parameters["Reason"], REASON);
    assert_eq!(
        step.parameters["FindingIdentifiers"]
            .as_array()
            .unwrap()
            .len(),
        40
    );
    eventually("the proposer's answer", || {
        fake.original_response(&submit).is_some_and(|o| {
            o.content
                .contains(&format!("proposed as request `{}`", request.id.simple()))
        })
    })
    .await;
    let card = wait_for_card(fake, request.id).await;
    assert!(
        card.embed_text().contains("[SUPPRESS] S3.8"),
        "{}",
        card.embed_text()
    );
    assert!(
        standin.batch_updates().is_empty(),
        "nothing is sent before approval"
    );
    // While it is open, Remediate on the control is refused, and the refusal is audited with
    // the open request (issue 11, 4(c)).
    let click = fake.inject_button(
        &s3_card.custom_id_of("Remediate").unwrap(),
        s3_card.id,
        &bob(),
    );
    let answer = wait_for_ephemeral_answer(fake, &click).await;
    assert!(answer.contains("already open"), "{answer}");
    let open = refusals(&app, "already_open");
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].request_id, Some(request.id));
    assert_eq!(open[0].actor.display_name(), "bob");

    // The proposer cannot approve it; another responder can, and then it runs.
    let own = fake.inject_button(&card.custom_id_of("Approve").unwrap(), card.id, &alice());
    let refusal = wait_for_followup(fake, &own).await;
    assert_eq!(
        refusal.content,
        "you proposed this request, and the policy forbids approving your own request"
    );
    assert!(standin.batch_updates().is_empty());
    fake.inject_button(&card.custom_id_of("Approve").unwrap(), card.id, &bob());
    eventually("the suppression to run", || {
        app.store
            .get_request(request.id)
            .unwrap()
            .is_some_and(|r| r.state == RequestState::Succeeded)
    })
    .await;
    let bodies = standin.batch_updates();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let body = &bodies[0];
    assert_eq!(body["Workflow"]["Status"], "SUPPRESSED");
    let sent: std::collections::BTreeSet<&str> = body["FindingIdentifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["Id"].as_str().unwrap())
        .collect();
    let expected: std::collections::BTreeSet<String> = s3_findings("FAILED", &updated)
        .iter()
        .map(|f| f["Id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sent,
        expected.iter().map(String::as_str).collect(),
        "exactly the control's findings"
    );
    let note = body["Note"]["Text"].as_str().unwrap();
    assert!(note.contains(REASON), "{note}");
    assert!(note.contains("bob"), "{note}");
    assert!(
        note.contains(&request.id.to_string()) || note.contains(&request.id.simple().to_string()),
        "{note}"
    );
    // The stand-in, as Security Hub, left UpdatedAt alone: a poll cannot read this back.
    let s3_ids: Vec<String> = expected.iter().cloned().collect();
    assert!(standin
        .findings()
        .await
        .iter()
        .filter(|f| s3_ids.iter().any(|id| f["Id"] == id.as_str()))
        .all(|f| f["UpdatedAt"] == updated.as_str() && f["Workflow"]["Status"] == "SUPPRESSED"));

    // Issue 11, item 5: the suppression reaches the store and its posture card at once, with
    // no poll: suppressed, by whom, why, and how to lift it.
    eventually("the stored S3.8 findings to read SUPPRESSED", || {
        let w = stored_workflows(&app, "S3.8");
        w.len() == 40 && w.iter().all(|s| *s == WorkflowStatus::Suppressed)
    })
    .await;
    let suppressed_card = wait_for_posture_card(fake, "S3.8", |m| {
        m.embed_text().contains("suppressed (40") && m.embed_text().contains("Suppressed\n")
    })
    .await;
    let text = suppressed_card.embed_text();
    assert!(text.contains("[RESOLVED]"), "{text}");
    assert!(
        text.contains(&format!(
            "40 finding(s) suppressed by request `{}`",
            request.id.simple()
        )),
        "{text}"
    );
    assert!(
        text.contains("proposed by alice, approved by bob"),
        "{text}"
    );
    assert!(text.contains(&format!("Why: {REASON}")), "{text}");
    assert!(
        text.contains(&format!("/revert request:{}", request.id.simple())),
        "{text}"
    );
    assert!(
        !text.contains("failing: 40 new"),
        "the card no longer says the control fails: {text}"
    );
    assert!(
        suppressed_card.button_labels().is_empty(),
        "no Suppress, no Acknowledge on a suppressed control: {:?}",
        suppressed_card.button_labels()
    );
    // /score follows Security Hub: a control whose findings are all suppressed is not
    // evaluated, so only EC2.19 counts, and S3.8 is not among the recent failures.
    let scored = score(fake, &bob()).await;
    assert!(scored.contains(&fsbp(0, 1)), "{scored}");
    assert!(!scored.contains("`S3.8`"), "{scored}");

    // A click on the stale card's Acknowledge (the message as first posted) cannot touch the
    // suppressed findings: refused, audited, and nothing reaches Security Hub.
    let stale = fake.inject_button(
        &s3_card.custom_id_of("Acknowledge").unwrap(),
        s3_card.id,
        &bob(),
    );
    let answer = wait_for_ephemeral_answer(fake, &stale).await;
    assert_eq!(answer, NOTHING_FAILS);
    assert_eq!(
        standin.batch_updates().len(),
        1,
        "no call after the suppression"
    );
    assert!(!sent_status_for(&standin, "NOTIFIED", &s3_ids));
    assert!(
        stored_workflows(&app, "S3.8")
            .iter()
            .all(|s| *s == WorkflowStatus::Suppressed),
        "still suppressed"
    );
    assert!(!refusals(&app, "nothing_fails").is_empty());
    // Suppress on the stale card proposes nothing either.
    let stale = fake.inject_button(
        &s3_card.custom_id_of("Suppress").unwrap(),
        s3_card.id,
        &alice(),
    );
    assert_eq!(wait_for_ephemeral_answer(fake, &stale).await, NOTHING_FAILS);
    assert_eq!(app.store.requests_for_finding(&group).unwrap().len(), 1);

    // Acknowledge sets NOTIFIED at once, without approval.
    fake.inject_button(
        &ec2_card.custom_id_of("Acknowledge").unwrap(),
        ec2_card.id,
        &bob(),
    );
    eventually("the acknowledgement", || standin.batch_updates().len() == 2).await;
    let body = &standin.batch_updates()[1];
    assert_eq!(body["Workflow"]["Status"], "NOTIFIED");
    assert_eq!(body["FindingIdentifiers"].as_array().unwrap().len(), 3);
    let acked = || {
        app.store
            .query_audit(&AuditQuery {
                kind: Some(EventKind::FindingsAcknowledged),
                ..AuditQuery::default()
            })
            .unwrap()
    };
    eventually("the acknowledgement's audit event", || !acked().is_empty()).await;
    let acked = acked();
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0].actor.display_name(), "bob");
    assert_eq!(acked[0].detail["processed"], 3);
    wait_for_posture_card(fake, "EC2.19", |m| {
        m.embed_text().contains("acknowledged")
            && !m.button_labels().contains(&"Acknowledge".to_string())
    })
    .await;
    // Acknowledge again (the stale button): nothing is NEW any more; refused and audited.
    let again = fake.inject_button(
        &ec2_card.custom_id_of("Acknowledge").unwrap(),
        ec2_card.id,
        &alice(),
    );
    let answer = wait_for_ephemeral_answer(fake, &again).await;
    assert_eq!(answer, NOTHING_TO_ACKNOWLEDGE);
    assert_eq!(refusals(&app, "nothing_to_acknowledge").len(), 1);
    assert_eq!(standin.batch_updates().len(), 2);

    // The next poll reads the suppression back: the S3.8 card no longer fails.
    poll(&app, &conf).await;
    wait_for_posture_card(fake, "S3.8", |m| {
        m.embed_text().contains("[RESOLVED]") && m.embed_text().contains("suppressed (40")
    })
    .await;

    // EC2.19 passes again: its card is resolved, with no buttons.
    let later = chrono::Utc::now().to_rfc3339();
    standin.import(&ec2_findings("PASSED", &later)).await;
    poll(&app, &conf).await;
    let resolved =
        wait_for_posture_card(fake, "EC2.19", |m| m.embed_text().contains("[RESOLVED]")).await;
    assert!(resolved.button_labels().is_empty());
    assert_eq!(
        fake.channel_posts(fake.channel_id()).len(),
        3,
        "2 posture cards and 1 request card"
    );

    // /suppressions lists it: who proposed, who approved, why.
    let cmd = fake.inject_slash_command("suppressions", json!([]), &alice());
    let listed = command_answer(fake, &cmd).await;
    assert!(listed.contains("`S3.8`"), "{listed}");
    assert!(listed.contains("40 finding(s)"), "{listed}");
    assert!(listed.contains("by alice"), "{listed}");
    assert!(listed.contains("approved by bob"), "{listed}");
    assert!(listed.contains("RISK-142"), "{listed}");
    assert!(listed.contains("in force"), "{listed}");

    // Lifting it is its revert: proposed by one responder, approved by another, back to NEW.
    let card = fake.message(card.id).unwrap();
    fake.inject_button(&card.custom_id_of("Revert").unwrap(), card.id, &alice());
    eventually("the lift request", || {
        app.store.requests_for_finding(&group).unwrap().len() == 2
    })
    .await;
    let revert = app
        .store
        .requests_for_finding(&group)
        .unwrap()
        .into_iter()
        .find(|r| r.id != request.id)
        .unwrap();
    let revert_card = wait_for_card(fake, revert.id).await;
    let before = standin.batch_updates().len();
    fake.inject_button(
        &revert_card.custom_id_of("Approve").unwrap(),
        revert_card.id,
        &bob(),
    );
    eventually("the lift to run", || {
        app.store
            .get_request(revert.id)
            .unwrap()
            .is_some_and(|r| r.state == RequestState::Succeeded)
    })
    .await;
    let bodies = standin.batch_updates();
    assert_eq!(bodies.len(), before + 1);
    let body = &bodies[before];
    assert_eq!(body["Workflow"]["Status"], "NEW");
    assert_eq!(body["FindingIdentifiers"].as_array().unwrap().len(), 40);
    let cmd = fake.inject_slash_command("suppressions", json!([]), &alice());
    let listed = command_answer(fake, &cmd).await;
    assert!(listed.contains("lifted"), "{listed}");
    // The lift reaches the store and the card at once too: failing again, with its buttons,
    // and no longer named suppressed; /score counts the control again (EC2.19 passes: 1 of 2).
    eventually("the stored S3.8 findings to read NEW again", || {
        stored_workflows(&app, "S3.8")
            .iter()
            .all(|s| *s == WorkflowStatus::New)
    })
    .await;
    let failing_again =
        wait_for_posture_card(fake, "S3.8", |m| m.embed_text().contains("failing: 40 new")).await;
    assert!(
        !failing_again.embed_text().contains("Suppressed\n"),
        "{}",
        failing_again.embed_text()
    );
    assert_eq!(
        failing_again.button_labels(),
        vec!["Remediate", "Suppress", "Acknowledge"]
    );
    let scored = score(fake, &alice()).await;
    assert!(scored.contains(&fsbp(1, 2)), "{scored}");
    // The next poll reads the findings back as NEW: the control fails again on its card.
    poll(&app, &conf).await;
    wait_for_posture_card(fake, "S3.8", |m| {
        !m.embed_text().contains("[RESOLVED]") && m.embed_text().contains("failing: 40 new")
    })
    .await;

    bot.stop().await;
}

/// Whether all four public-access-block flags of `bucket` are on (false when none is set).
async fn blocked(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    match s3.get_public_access_block().bucket(bucket).send().await {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        }),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediate_on_a_posture_card_blocks_exactly_its_failing_buckets_once_approved() {
    let moto = moto::shared();
    let standin = standin::Standin::start_in_own_account(moto.port).await;
    let moto_conf = moto.sdk_config().await;
    let conf = moto_conf
        .to_builder()
        .endpoint_url(standin.endpoint())
        .build();
    let s3 = moto.s3().await;
    for bucket in ["site-a", "site-b", "unrelated"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let updated = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let findings: Vec<Value> = ["site-a", "site-b"]
        .iter()
        .enumerate()
        .map(|(n, b)| control_finding(n, "S3.8", "FAILED", &format!("arn:aws:s3:::{b}"), &updated))
        .collect();
    standin.import(&findings).await;

    let bot = Bot::start(1, ClientFactory::from_sdk_config(conf.clone(), None)).await;
    let fake = &bot.fake;
    let app = bot.app().clone();
    poll(&app, &conf).await;
    let card = wait_for_posture_card(fake, "S3.8", |_| true).await;

    fake.inject_button(&card.custom_id_of("Remediate").unwrap(), card.id, &bob());
    let group = format!("{ACCOUNT}/us-east-1/S3.8");
    eventually("the remediation request", || {
        app.store.requests_for_finding(&group).unwrap().len() == 1
    })
    .await;
    let request = app.store.requests_for_finding(&group).unwrap().remove(0);
    let buckets: Vec<&str> = request
        .plan
        .steps
        .iter()
        .map(|s| {
            assert_eq!(s.action, Action::BlockBucketPublicAccess);
            s.parameters["Bucket"].as_str().unwrap()
        })
        .collect();
    assert_eq!(buckets, vec!["site-a", "site-b"]);
    let request_card = wait_for_card(fake, request.id).await;
    assert!(
        request_card.embed_text().contains("[REMEDIATE] S3.8"),
        "{}",
        request_card.embed_text()
    );
    assert!(
        !blocked(&s3, "site-a").await,
        "nothing changes before approval"
    );

    fake.inject_button(
        &request_card.custom_id_of("Approve").unwrap(),
        request_card.id,
        &alice(),
    );
    eventually("the remediation to run", || {
        app.store
            .get_request(request.id)
            .unwrap()
            .is_some_and(|r| r.state == RequestState::Succeeded)
    })
    .await;
    assert!(blocked(&s3, "site-a").await);
    assert!(blocked(&s3, "site-b").await);
    assert!(!blocked(&s3, "unrelated").await, "only the failing buckets");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_control_whose_notice_was_lost_gets_its_card_at_start() {
    // Stored by an earlier run that stopped before announcing them.
    let bot = Bot::start_prepared(1, unreachable_aws(), |store| {
        let updated = "2026-11-27T08:00:00Z";
        let failing = s3_findings("FAILED", updated);
        let passing = ec2_findings("PASSED", updated);
        for doc in failing.iter().take(3).chain(&passing) {
            let f = hanko::posture::parse_control_finding(doc, "$", "us-east-1").unwrap();
            store.upsert_control_finding(&f).unwrap();
        }
        store.flush().unwrap();
    })
    .await;
    let fake = &bot.fake;
    let card = wait_for_posture_card(fake, "S3.8", |_| true).await;
    assert!(
        card.embed_text().contains("Failing resources (3)"),
        "{}",
        card.embed_text()
    );
    // The passing control has nothing to say, and the failing one is posted once.
    bot.app()
        .notices
        .send(hanko::notices::Notice::PostureChanged {
            group: format!("{ACCOUNT}/us-east-1/EC2.19"),
        });
    eventually("the notice to be handled", || {
        fake.requests_matching("POST", "/channels/*/messages").len() == 1
    })
    .await;
    assert_eq!(fake.channel_posts(fake.channel_id()).len(), 1);
    bot.stop().await;
}

/// A bot against moto behind the stand-in, with the EC2.19 findings (3, FAILED, NEW) polled
/// into its store and their card posted. `edit` changes the config first.
async fn ec2_world(
    edit: impl FnOnce(String) -> String,
) -> (
    moto::Shared,
    standin::Standin,
    aws_config::SdkConfig,
    Bot,
    FakeMessage,
) {
    let moto = moto::shared();
    let standin = standin::Standin::start_in_own_account(moto.port).await;
    let conf = moto
        .sdk_config()
        .await
        .to_builder()
        .endpoint_url(standin.endpoint())
        .build();
    let updated = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    standin.import(&ec2_findings("FAILED", &updated)).await;
    let bot =
        Bot::start_with_config(1, ClientFactory::from_sdk_config(conf.clone(), None), edit).await;
    poll(bot.app(), &conf).await;
    let card = wait_for_posture_card(&bot.fake, "EC2.19", |_| true).await;
    (moto, standin, conf, bot, card)
}

/// Issue 11, 4(c): Acknowledge respects `/pause` (refused, audited, nothing sent), and works
/// again once resumed; its audit event is written before the `BatchUpdateFindings` call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_while_paused_is_refused_and_audited() {
    let (_moto, standin, _conf, bot, card) = ec2_world(|c| c).await;
    let (fake, app) = (&bot.fake, bot.app().clone());
    app.engine
        .set_paused(true, Actor::System, Some("incident review"))
        .unwrap();
    let ack = card.custom_id_of("Acknowledge").unwrap();
    let click = fake.inject_button(&ack, card.id, &bob());
    assert_eq!(wait_for_ephemeral_answer(fake, &click).await, ACK_PAUSED);
    assert!(
        standin.batch_updates().is_empty(),
        "nothing sent while paused"
    );
    let refused = refusals(&app, "paused");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].actor.display_name(), "bob");
    assert_eq!(
        refused[0].finding_id.as_deref(),
        Some(group_key("EC2.19").encode().as_str())
    );
    assert!(stored_workflows(&app, "EC2.19")
        .iter()
        .all(|s| *s == WorkflowStatus::New));

    // Resumed, the same click acknowledges: the pause was what refused it.
    app.engine.set_paused(false, Actor::System, None).unwrap();
    fake.inject_button(&ack, card.id, &bob());
    eventually("the acknowledgement", || standin.batch_updates().len() == 1).await;
    assert_eq!(standin.batch_updates()[0]["Workflow"]["Status"], "NOTIFIED");
    eventually("the acknowledgement's outcome", || {
        !app.store
            .query_audit(&AuditQuery {
                kind: Some(EventKind::FindingsAcknowledged),
                ..AuditQuery::default()
            })
            .unwrap()
            .is_empty()
    })
    .await;
    // The click's own event precedes the outcome: it was written before the call.
    let events = app.store.query_audit(&AuditQuery::default()).unwrap();
    let asked = events
        .iter()
        .find(|e| e.kind == EventKind::CommandInvoked && e.detail["action"] == "acknowledge")
        .expect("the click is audited");
    let done = events
        .iter()
        .find(|e| e.kind == EventKind::FindingsAcknowledged)
        .unwrap();
    assert!(asked.seq < done.seq, "audited before the call");
    assert_eq!(asked.detail["asked"], 3);
    assert_eq!(asked.actor.display_name(), "bob");
    assert_eq!(done.detail["processed"], 3);
    bot.stop().await;
}

/// Issue 11, 4(c): Acknowledge on a control of an account outside `aws.accounts` is refused,
/// audited, and nothing reaches Security Hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_outside_aws_accounts_is_refused() {
    let (_moto, standin, _conf, bot, card) = ec2_world(|c| {
        c.replace(
            "[aws]\n",
            "[aws]\naccounts = [\"111111111111\", \"222222222222\"]\n",
        )
    })
    .await;
    let (fake, app) = (&bot.fake, bot.app().clone());
    assert!(!app.settings.aws.may_act_in(ACCOUNT), "the config took");
    let click = fake.inject_button(&card.custom_id_of("Acknowledge").unwrap(), card.id, &bob());
    let answer = wait_for_ephemeral_answer(fake, &click).await;
    assert!(answer.contains("aws.accounts"), "{answer}");
    assert!(answer.contains(ACCOUNT), "{answer}");
    assert!(standin.batch_updates().is_empty(), "nothing sent");
    assert_eq!(refusals(&app, "aws.accounts").len(), 1);
    assert!(stored_workflows(&app, "EC2.19")
        .iter()
        .all(|s| *s == WorkflowStatus::New));
    bot.stop().await;
}

/// Issue 11, item 5: a finding suppressed in Security Hub outside hanko (the console, another
/// tool) keeps its `UpdatedAt`, so no poll sees it and the store still says NEW. Acknowledge
/// re-reads the findings at the click and sends NOTIFIED only for the one still NEW: it never
/// lifts a suppression. The store then learns what Security Hub said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_leaves_a_finding_suppressed_outside_hanko_alone() {
    let (_moto, standin, conf, bot, card) = ec2_world(|c| c).await;
    let (fake, app) = (&bot.fake, bot.app().clone());
    // A newer finding of another control moves the posture cursor past the EC2.19 findings
    // (updated an hour ago), so the poll's overlap window no longer re-reads them.
    let now = chrono::Utc::now().to_rfc3339();
    let other = control_finding(
        200,
        "IAM.3",
        "PASSED",
        &format!("arn:aws:iam::{ACCOUNT}:user/erin"),
        &now,
    );
    standin.import(&[other]).await;
    poll(&app, &conf).await;
    let ids: Vec<String> = ec2_findings("FAILED", "")
        .iter()
        .map(|f| f["Id"].as_str().unwrap().to_string())
        .collect();
    let arn = ec2_findings("FAILED", "")[0]["ProductArn"]
        .as_str()
        .unwrap()
        .to_string();
    // Suppressed by someone else, straight through the SDK.
    let client = aws_sdk_securityhub::Client::new(&conf);
    let mut call = client.batch_update_findings().workflow(
        aws_sdk_securityhub::types::WorkflowUpdate::builder()
            .status(aws_sdk_securityhub::types::WorkflowStatus::Suppressed)
            .build(),
    );
    for id in &ids[..2] {
        call = call.finding_identifiers(
            aws_sdk_securityhub::types::AwsSecurityFindingIdentifier::builder()
                .id(id)
                .product_arn(&arn)
                .build(),
        );
    }
    call.send().await.unwrap();
    standin.clear_requests();
    poll(&app, &conf).await;
    assert!(
        stored_workflows(&app, "EC2.19")
            .iter()
            .all(|s| *s == WorkflowStatus::New),
        "the poll cannot see a BatchUpdateFindings change"
    );

    fake.inject_button(&card.custom_id_of("Acknowledge").unwrap(), card.id, &bob());
    eventually("the acknowledgement", || standin.batch_updates().len() == 1).await;
    let body = &standin.batch_updates()[0];
    assert_eq!(body["Workflow"]["Status"], "NOTIFIED");
    let sent: Vec<&str> = body["FindingIdentifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["Id"].as_str().unwrap())
        .collect();
    assert_eq!(sent, vec![ids[2].as_str()], "only the finding still NEW");
    assert!(!sent_status_for(&standin, "NOTIFIED", &ids[..2]));
    eventually("the store to learn the suppression", || {
        let mut w = stored_workflows(&app, "EC2.19");
        w.sort();
        w == vec![
            WorkflowStatus::Notified,
            WorkflowStatus::Suppressed,
            WorkflowStatus::Suppressed,
        ]
    })
    .await;
    bot.stop().await;
}
