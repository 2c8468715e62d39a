//! The cards' unit tests: every constructor, every state, and the limits.

use super::*;
use crate::approval::Vote;
use crate::approval::{Decision, Request, RequestKind, RequestState};
use crate::audit::Actor;
use crate::discord::custom_id::hash_matches;
use crate::discord::custom_id::{ButtonAction, ButtonId};
use crate::discord::text::{
    MAX_BUTTONS_PER_ROW, MAX_BUTTON_LABEL, MAX_CUSTOM_ID_LEN, MAX_DESCRIPTION, MAX_FIELDS,
    MAX_FIELD_NAME, MAX_FIELD_VALUE, MAX_FOOTER, MAX_ROWS, MAX_TITLE, MAX_TOTAL, TRUNCATION_MARKER,
};
use crate::execution::StepPhase;
use crate::execution::{StepOutcome, StepRecord};
use crate::finding::{AccessKeyDetails, ActorInfo, Resource};
use crate::finding::{Finding, FindingSource, ResourceKind};
use crate::plan::{Action, Plan, Step};
use crate::plan::{RiskClass, Target};
use chrono::{Duration, TimeZone};
use serde_json::json;
use uuid::Uuid;

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const FINDING_ID: &str = "84c5a1f0e1b2c3d4e5f60718293a4b5c";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap()
}

fn key_finding() -> Finding {
    Finding {
        id: FINDING_ID.into(),
        arn: None,
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        finding_type: "CredentialAccess:IAMUser/AnomalousBehavior".into(),
        severity: 8.0,
        severity_label: SeverityLabel::High,
        title: "GetSecretValue was invoked from a known malicious IP address".into(),
        description: "An API was used to access secrets.".into(),
        created_at: Some(t0()),
        updated_at: Some(t0()),
        first_seen: Some(t0() - Duration::hours(2)),
        last_seen: Some(t0()),
        count: 3,
        archived: false,
        sample: false,
        source: FindingSource::GuardDuty,
        resource: Resource {
            kind: ResourceKind::AccessKey,
            access_key: Some(AccessKeyDetails {
                access_key_id: Some(KEY.into()),
                principal_id: Some("AIDAEXAMPLE".into()),
                user_name: Some("alice".into()),
                user_type: Some("IAMUser".into()),
            }),
            instance: None,
            s3_buckets: vec![],
        },
        actor: ActorInfo {
            action_type: Some("AWS_API_CALL".into()),
            caller_ip: Some("198.51.100.7".into()),
            country: Some("Germany".into()),
            city: Some("Frankfurt".into()),
            organization: None,
            api: Some("GetSecretValue".into()),
            service_name: Some("secretsmanager.amazonaws.com".into()),
            domain: None,
        },
    }
}

fn deactivate(key: &str, user: &str) -> Step {
    Step::new(
        Action::DeactivateAccessKey,
        Target::AccessKey {
            user_name: user.into(),
            access_key_id: key.into(),
        },
        json!({"AccessKeyId": key, "UserName": user}),
    )
}

fn revoke(user: &str) -> Step {
    Step::new(
        Action::RevokeUserSessions,
        Target::User {
            user_name: user.into(),
        },
        json!({"UserName": user}),
    )
}

fn key_plan(f: &Finding, steps: Vec<Step>) -> Plan {
    Plan::new(
        f.id.clone(),
        f.account_id.clone(),
        f.region.clone(),
        f.sample,
        steps,
        vec!["the key belongs to IAM user alice".into()],
    )
}

fn request(f: &Finding, kind: RequestKind, steps: Vec<Step>) -> Request {
    Request::new(
        kind,
        key_plan(f, steps),
        Actor::System,
        t0(),
        Duration::hours(4),
    )
}

fn discord(id: &str, name: &str) -> Actor {
    Actor::Discord {
        id: id.into(),
        name: name.into(),
    }
}

fn vote(r: &mut Request, voter: Actor, decision: Decision, minutes: i64) {
    let at = t0() + Duration::minutes(minutes);
    r.votes.push(Vote {
        voter,
        decision,
        plan_hash: r.plan.plan_hash.clone(),
        at,
    });
}

fn record(index: usize, step: &Step, outcome: StepOutcome, message: Option<&str>) -> StepRecord {
    StepRecord {
        index,
        action: step.action,
        target: step.target.clone(),
        phase: StepPhase::Done,
        captured: json!({}),
        result: json!({}),
        outcome: Some(outcome),
        error_code: (outcome == StepOutcome::Failed).then(|| "AccessDenied".to_string()),
        message: message.map(str::to_string),
        started_at: t0() + Duration::minutes(10),
        finished_at: Some(t0() + Duration::minutes(11)),
    }
}

fn value<'a>(card: &'a Card, name: &str) -> &'a str {
    &card
        .field(name)
        .unwrap_or_else(|| panic!("no field {name} in {card:#?}"))
        .value
}

fn labels(card: &Card) -> Vec<(&str, ButtonStyle)> {
    card.buttons
        .iter()
        .map(|b| (b.label.as_str(), b.style))
        .collect()
}

fn assert_within_limits(card: &Card) {
    let n = |s: &str| s.chars().count();
    assert!(n(&card.title) <= MAX_TITLE, "title {}", n(&card.title));
    assert!(
        n(&card.description) <= MAX_DESCRIPTION,
        "description {}",
        n(&card.description)
    );
    assert!(
        card.fields.len() <= MAX_FIELDS,
        "fields {}",
        card.fields.len()
    );
    for f in &card.fields {
        assert!(n(&f.name) <= MAX_FIELD_NAME, "field name {}", n(&f.name));
        assert!(
            n(&f.value) <= MAX_FIELD_VALUE,
            "{}: {}",
            f.name,
            n(&f.value)
        );
        assert!(!f.name.trim().is_empty() && !f.value.trim().is_empty());
    }
    assert!(n(&card.footer) <= MAX_FOOTER, "footer {}", n(&card.footer));
    assert!(
        total_chars(card) <= MAX_TOTAL,
        "total {}",
        total_chars(card)
    );
    assert_eq!(
        total_chars(card),
        n(&card.title)
            + n(&card.description)
            + card
                .fields
                .iter()
                .map(|f| n(&f.name) + n(&f.value))
                .sum::<usize>()
            + n(&card.footer)
    );
    assert!(card.buttons.len() <= MAX_ROWS * MAX_BUTTONS_PER_ROW);
    for b in &card.buttons {
        assert!(n(&b.label) <= MAX_BUTTON_LABEL && !b.label.is_empty());
        assert!(b.id.len() <= MAX_CUSTOM_ID_LEN);
    }
}

#[test]
fn pending_key_card_shows_the_approvals_so_far() {
    let f = key_finding();
    let base = request(
        &f,
        RequestKind::Contain,
        vec![deactivate(KEY, "alice"), revoke("alice")],
    );
    let mut one = base.clone();
    vote(&mut one, discord("111", "alice.sec"), Decision::Approve, 1);
    let mut cli = base.clone();
    vote(
        &mut cli,
        Actor::Cli { name: "ops".into() },
        Decision::Approve,
        1,
    );
    let mut stale = base.clone();
    stale.votes.push(Vote {
        voter: discord("333", "carol"),
        decision: Decision::Approve,
        plan_hash: "0ld".into(),
        at: t0(),
    });

    let table = [
        (
            "no votes",
            &base,
            "0/2 approvals",
            "⏳ Pending: needs 2 more approvals",
        ),
        (
            "one discord vote",
            &one,
            "1/2 approvals: <@111>",
            "⏳ Pending: needs 1 more approval ",
        ),
        (
            "one cli vote",
            &cli,
            "1/2 approvals: ops (cli)",
            "⏳ Pending: needs 1 more approval ",
        ),
        (
            "vote for an old plan",
            &stale,
            "0/2 approvals",
            "⏳ Pending: needs 2 more approvals",
        ),
    ];
    for (name, req, approvals, state) in table {
        let card = request_card(&f, req, &[], 2);
        assert_within_limits(&card);
        assert_eq!(value(&card, FIELD_APPROVALS), approvals, "{name}");
        assert!(
            value(&card, FIELD_STATE).starts_with(state),
            "{name}: {}",
            value(&card, FIELD_STATE)
        );
        assert!(
            value(&card, FIELD_STATE).ends_with(&format!(
                "expires <t:{}:R>",
                (t0() + Duration::hours(4)).timestamp()
            )),
            "{name}"
        );
        assert_eq!(
            labels(&card),
            vec![
                ("Approve", ButtonStyle::Success),
                ("Reject", ButtonStyle::Danger),
                ("Dry run", ButtonStyle::Secondary)
            ],
            "{name}"
        );
        let ids: Vec<ButtonId> = card
            .buttons
            .iter()
            .map(|b| ButtonId::parse(&b.id).unwrap())
            .collect();
        assert_eq!(
            ids.iter().map(|i| i.action).collect::<Vec<_>>(),
            vec![
                ButtonAction::Approve,
                ButtonAction::Reject,
                ButtonAction::DryRun
            ]
        );
        for id in &ids {
            assert_eq!(id.request_id, req.id, "{name}");
            assert!(
                hash_matches(&id.plan_hash_prefix, &req.plan.plan_hash),
                "{name}"
            );
        }
    }
}

#[test]
fn pending_key_card_content() {
    let f = key_finding();
    let req = request(
        &f,
        RequestKind::Contain,
        vec![deactivate(KEY, "alice"), revoke("alice")],
    );
    let card = request_card(&f, &req, &[], 2);
    assert_eq!(card.title, "CredentialAccess:IAMUser/AnomalousBehavior");
    assert_eq!(card.color, COLOR_HIGH);
    assert_eq!(
        card.url.as_deref(),
        Some("https://us-east-1.console.aws.amazon.com/guardduty/home?region=us-east-1#/findings?macros=current&fId=84c5a1f0e1b2c3d4e5f60718293a4b5c")
    );
    assert_eq!(
        card.description,
        "**Key AKIA…MPLE of user alice: GetSecretValue was invoked from a known malicious IP \
         address; plan: deactivate the access key and revoke the user's sessions (2 approvals)**\n\
         **hanko proposes:** deactivate the access key, revoke the user's sessions (2 steps, highest risk: contain)."
    );
    let first = (t0() - Duration::hours(2)).timestamp();
    let table = [
        (FIELD_SEVERITY, "High 8.0".to_string(), true),
        (FIELD_ACCOUNT, "`123456789012`".to_string(), true),
        (FIELD_REGION, "`us-east-1`".to_string(), true),
        (FIELD_RESOURCE, format!("**AccessKey** `{KEY}` of `alice` (IAMUser)"), false),
        (
            FIELD_ACTOR,
            "`198.51.100.7` (Frankfurt, Germany) · API `GetSecretValue` (secretsmanager.amazonaws.com)".to_string(),
            false,
        ),
        (FIELD_FIRST_SEEN, format!("<t:{first}:R>"), true),
        (FIELD_LAST_SEEN, format!("<t:{}:R>", t0().timestamp()), true),
        (FIELD_COUNT, "3".to_string(), true),
        (
            FIELD_PLAN,
            format!(
                "1. `iam:UpdateAccessKey {KEY} → Inactive` · contain\n\
                 2. `iam:PutUserPolicy alice: deny all for sessions issued before approval` · contain"
            ),
            false,
        ),
        (FIELD_NOTES, "• the key belongs to IAM user alice".to_string(), false),
    ];
    for (name, want, inline) in table {
        let field = card.field(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(field.value, want, "{name}");
        assert_eq!(field.inline, inline, "{name}");
    }
    let names: Vec<&str> = card.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            FIELD_SEVERITY,
            FIELD_ACCOUNT,
            FIELD_REGION,
            FIELD_RESOURCE,
            FIELD_ACTOR,
            FIELD_FIRST_SEEN,
            FIELD_LAST_SEEN,
            FIELD_COUNT,
            FIELD_PLAN,
            FIELD_NOTES,
            FIELD_APPROVALS,
            FIELD_STATE
        ]
    );
    assert_eq!(
        card.footer,
        format!(
            "finding {FINDING_ID} · request {} · plan {}",
            req.id.simple(),
            &req.plan.plan_hash[..16]
        )
    );
}

#[test]
fn severity_colours_are_distinct() {
    let table = [
        (SeverityLabel::Low, COLOR_LOW),
        (SeverityLabel::Medium, COLOR_MEDIUM),
        (SeverityLabel::High, COLOR_HIGH),
        (SeverityLabel::Critical, COLOR_CRITICAL),
    ];
    for (label, colour) in table {
        let mut f = key_finding();
        f.severity_label = label;
        let card = finding_card(&f, &key_plan(&f, vec![]));
        assert_eq!(card.color, colour, "{label:?}");
    }
    let mut all: Vec<u32> = table.iter().map(|t| t.1).collect();
    all.dedup();
    assert_eq!(all.len(), 4);
}

#[test]
fn rejected_card_says_who_when_and_why_and_has_no_buttons() {
    let f = key_finding();
    let mut req = request(&f, RequestKind::Contain, vec![deactivate(KEY, "alice")]);
    vote(&mut req, discord("111", "alice.sec"), Decision::Approve, 1);
    vote(
        &mut req,
        discord("222", "bob"),
        Decision::Reject {
            reason: "pentest by the red team (ticket SEC-42)".into(),
        },
        2,
    );
    req.state = RequestState::Rejected;
    req.decided_at = Some(t0() + Duration::minutes(2));
    let card = request_card(&f, &req, &[], 2);
    assert_within_limits(&card);
    assert!(card.buttons.is_empty());
    assert_eq!(
        value(&card, FIELD_STATE),
        format!(
            "❌ Rejected by <@222> <t:{}:R>: pentest by the red team (ticket SEC-42). Nothing was changed.",
            (t0() + Duration::minutes(2)).timestamp()
        )
    );
    assert_eq!(value(&card, FIELD_APPROVALS), "1/2 approvals: <@111>");
}

#[test]
fn final_and_running_states_have_no_buttons_and_say_why() {
    let f = key_finding();
    let base = request(&f, RequestKind::Contain, vec![deactivate(KEY, "alice")]);
    let decided = t0() + Duration::minutes(5);
    let with = |state, archived: bool| {
        let mut r = base.clone();
        vote(&mut r, discord("111", "alice.sec"), Decision::Approve, 1);
        r.state = state;
        r.decided_at = Some(decided);
        let mut f = key_finding();
        f.archived = archived;
        (r, f)
    };
    let at = decided.timestamp();
    let table = [
        (RequestState::Approved, false, format!("✅ Approved by <@111> <t:{at}:R> · ⚙️ the plan runs next (while execution is paused, it waits for /resume)")),
        (RequestState::Executing, false, format!("⚙️ Running the plan… (approved by <@111> <t:{at}:R>)")),
        (RequestState::Expired, false, format!("⌛ Expired unapproved <t:{at}:f> (<t:{at}:R>) with 1/2 approvals. Nothing was changed.")),
        (RequestState::Superseded, true, format!("↪️ Superseded <t:{at}:R>: the finding was archived. Nothing was changed.")),
        (
            RequestState::Superseded,
            false,
            format!("↪️ Superseded <t:{at}:R>: the plan changed; the newer card replaces this one. Nothing was changed."),
        ),
    ];
    for (state, archived, want) in table {
        let (r, f) = with(state, archived);
        let card = request_card(&f, &r, &[], 2);
        assert!(card.buttons.is_empty(), "{state}");
        assert_eq!(value(&card, FIELD_STATE), want, "{state}");
    }
}

#[test]
fn expired_and_superseded_cards_show_no_buttons_that_can_only_be_refused() {
    use crate::approval::Closure;
    let f = key_finding();
    let closed_at = t0() + Duration::hours(6);
    let closure = |code: &str, reason: &str| Closure {
        at: closed_at,
        code: code.into(),
        reason: reason.into(),
    };
    let mut cases = Vec::new();
    for kind in [
        RequestKind::Contain,
        RequestKind::Revert { of: Uuid::nil() },
    ] {
        // Expired unapproved by the sweep, with one vote of two.
        let mut unapproved = request(&f, kind, vec![deactivate(KEY, "alice")]);
        vote(
            &mut unapproved,
            discord("111", "alice.sec"),
            Decision::Approve,
            1,
        );
        unapproved.state = RequestState::Expired;
        unapproved.decided_at = Some(unapproved.expires_at);
        cases.push((unapproved, false, "⌛ Expired unapproved"));
        // Approved, then refused by the engine's pre-flight (approval too old).
        let mut stale = request(&f, kind, vec![deactivate(KEY, "alice")]);
        vote(
            &mut stale,
            discord("111", "alice.sec"),
            Decision::Approve,
            1,
        );
        vote(&mut stale, discord("222", "bob.sec"), Decision::Approve, 2);
        stale.state = RequestState::Expired;
        stale.decided_at = Some(t0() + Duration::minutes(2));
        stale.closure = Some(closure(
            "approval_too_old",
            "the approval of 2026-11-28 03:02 UTC is older than policy.request_ttl (4h); propose and approve it again",
        ));
        cases.push((stale, false, "⌛ Expired"));
        // Approved, then its finding was archived before it ran.
        let mut archived = request(&f, kind, vec![deactivate(KEY, "alice")]);
        vote(
            &mut archived,
            discord("111", "alice.sec"),
            Decision::Approve,
            1,
        );
        archived.state = RequestState::Superseded;
        archived.decided_at = Some(t0() + Duration::minutes(1));
        archived.closure = Some(closure(
            "finding_archived",
            "the finding was archived before the approved plan ran",
        ));
        cases.push((archived, true, "↪️ Superseded"));
        // Superseded while pending (the plan changed).
        let mut replaced = request(&f, kind, vec![deactivate(KEY, "alice")]);
        replaced.state = RequestState::Superseded;
        replaced.decided_at = Some(t0() + Duration::minutes(3));
        cases.push((replaced, false, "↪️ Superseded"));
    }
    for (req, archived, head) in &cases {
        let mut finding = f.clone();
        finding.archived = *archived;
        // Step records would not bring a button back either (none can exist, but the
        // renderer must not depend on that).
        let records = [record(0, &req.plan.steps[0], StepOutcome::Applied, None)];
        for recs in [&records[..0], &records[..]] {
            let card = request_card(&finding, req, recs, 2);
            assert!(
                card.buttons.is_empty(),
                "{} {:?}: {:?}",
                req.state,
                req.kind,
                labels(&card)
            );
            let state = value(&card, FIELD_STATE);
            assert!(state.starts_with(head), "{state}");
            assert!(state.ends_with("Nothing was changed."), "{state}");
        }
    }
    // The pre-flight closures say when and why.
    let stale = request_card(&f, &cases[1].0, &[], 2);
    let at = closed_at.timestamp();
    assert_eq!(
        value(&stale, FIELD_STATE),
        format!(
            "⌛ Expired <t:{at}:f> (<t:{at}:R>) before it ran (approved by <@111>, <@222>): the approval of 2026-11-28 03:02 UTC is older than policy.request\\_ttl (4h); propose and approve it again. Nothing was changed."
        )
    );
    let mut gone = f.clone();
    gone.archived = true;
    let superseded = request_card(&gone, &cases[2].0, &[], 2);
    assert_eq!(
        value(&superseded, FIELD_STATE),
        format!("↪️ Superseded <t:{at}:R>: the finding was archived before the approved plan ran. Nothing was changed.")
    );
}

#[test]
fn executed_card_shows_each_outcome_and_offers_revert() {
    let f = key_finding();
    let steps = vec![
        deactivate(KEY, "alice"),
        revoke("alice"),
        deactivate("AKIAOTHEREXAMPLE0001", "alice"),
        revoke("bob"),
    ];
    let mut req = request(&f, RequestKind::Contain, steps.clone());
    vote(&mut req, discord("111", "alice.sec"), Decision::Approve, 1);
    req.state = RequestState::PartiallyFailed;
    req.decided_at = Some(t0() + Duration::minutes(1));
    let records = vec![
        record(0, &steps[0], StepOutcome::Applied, None),
        record(1, &steps[1], StepOutcome::AlreadyInTargetState, None),
        record(
            2,
            &steps[2],
            StepOutcome::Failed,
            Some("not authorized to perform iam:UpdateAccessKey"),
        ),
        record(3, &steps[3], StepOutcome::Skipped, None),
    ];
    let card = request_card(&f, &req, &records, 1);
    assert_within_limits(&card);
    let plan: Vec<&str> = value(&card, FIELD_PLAN).lines().collect();
    assert_eq!(plan.len(), 4);
    let want_ends = [
        "— ✅ applied",
        "— ☑️ already contained",
        "— ❌ failed: not authorized to perform iam:UpdateAccessKey (AccessDenied)",
        "— ⏭️ skipped",
    ];
    for (line, end) in plan.iter().zip(want_ends) {
        assert!(line.ends_with(end), "{line:?} should end with {end:?}");
    }
    let finished = (t0() + Duration::minutes(11)).timestamp();
    assert_eq!(
        value(&card, FIELD_STATE),
        format!(
            "⚠️ Partially contained <t:{finished}:R> (approved by <@111>): 1 applied, 1 already contained, 1 failed, 1 skipped. IAM changes take a few minutes to propagate."
        )
    );
    assert_eq!(labels(&card), vec![("Revert", ButtonStyle::Secondary)]);
    let id = ButtonId::parse(&card.buttons[0].id).unwrap();
    assert_eq!(id.action, ButtonAction::Revert);
    assert_eq!(id.request_id, req.id);

    // Succeeded with every step applied: also revertable.
    let mut ok = req.clone();
    ok.state = RequestState::Succeeded;
    let done = vec![
        record(0, &steps[0], StepOutcome::Applied, None),
        record(1, &steps[1], StepOutcome::Applied, None),
    ];
    let card = request_card(&f, &ok, &done, 1);
    assert_eq!(
        value(&card, FIELD_STATE),
        format!("✅ Contained <t:{finished}:R> (approved by <@111>): 2 applied. IAM changes take a few minutes to propagate.")
    );
    assert!(value(&card, FIELD_PLAN)
        .lines()
        .nth(2)
        .unwrap()
        .ends_with("— ⏭️ not run"));
    assert_eq!(labels(&card), vec![("Revert", ButtonStyle::Secondary)]);

    // Nothing changed (all already contained): nothing to revert.
    let same = vec![record(
        0,
        &steps[0],
        StepOutcome::AlreadyInTargetState,
        None,
    )];
    assert!(request_card(&f, &ok, &same, 1).buttons.is_empty());

    // A revert request is never itself offered a revert.
    let mut rev = request(&f, RequestKind::Revert { of: req.id }, steps.clone());
    rev.state = RequestState::Succeeded;
    let card = request_card(&f, &rev, &done, 1);
    assert!(card.buttons.is_empty());
    assert!(value(&card, FIELD_PLAN)
        .lines()
        .next()
        .unwrap()
        .ends_with("— ✅ reverted"));
    assert_eq!(
        value(&card, FIELD_STATE),
        format!("✅ Reverted <t:{finished}:R>: 2 reverted. IAM changes take a few minutes to propagate.")
    );
}

#[test]
fn revert_card_says_it_reenables_the_leaked_key() {
    let f = key_finding();
    let of = Uuid::parse_str("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab").unwrap();
    let req = request(
        &f,
        RequestKind::Revert { of },
        vec![deactivate(KEY, "alice")],
    );
    let card = request_card(&f, &req, &[], 1);
    assert_eq!(
        card.title,
        "[REVERT] CredentialAccess:IAMUser/AnomalousBehavior"
    );
    assert_eq!(
        card.description.lines().nth(1).unwrap(),
        format!(
            "⚠️ **Revert** of request `6f1c2d3e4a5b4c6d8e7f0123456789ab`: **re-enables what was contained:** the leaked access key `{KEY}` works again."
        )
    );
    assert_eq!(
        value(&card, FIELD_PLAN),
        format!("1. `iam:UpdateAccessKey {KEY} → Inactive` · contain → undo: key Active again")
    );
    assert_eq!(
        labels(&card).len(),
        3,
        "a revert is approved like any request"
    );
}

#[test]
fn sample_findings_are_labelled() {
    let mut f = key_finding();
    f.sample = true;
    let req = request(&f, RequestKind::Contain, vec![deactivate(KEY, "alice")]);
    assert_eq!(
        request_card(&f, &req, &[], 1).title,
        "[SAMPLE] CredentialAccess:IAMUser/AnomalousBehavior"
    );
    assert!(finding_card(&f, &req.plan).title.starts_with("[SAMPLE] "));
    let rev = request(&f, RequestKind::Revert { of: req.id }, vec![]);
    assert!(request_card(&f, &rev, &[], 1)
        .title
        .starts_with("[SAMPLE] [REVERT] "));
}

#[test]
fn notify_only_cards_have_no_buttons_and_say_why() {
    let mut f = key_finding();
    f.resource.access_key.as_mut().unwrap().user_type = Some("Root".into());
    let note = "notify only: no API can contain the root user from another principal";
    let plan = Plan::new(
        f.id.clone(),
        f.account_id.clone(),
        f.region.clone(),
        false,
        vec![],
        vec![note.into()],
    );
    let card = finding_card(&f, &plan);
    assert_within_limits(&card);
    assert!(card.buttons.is_empty());
    assert_eq!(value(&card, FIELD_NOTES), format!("• {note}"));
    assert_eq!(
        card.description.lines().nth(1).unwrap(),
        "**Notify only:** hanko proposes no automatic containment; see Notes."
    );
    assert_eq!(
        value(&card, FIELD_PLAN),
        "No automatic containment: notify only (see Notes)."
    );
    assert!(value(&card, FIELD_STATE).starts_with("ℹ️ Notify only"));
    assert!(card.field(FIELD_APPROVALS).is_none());

    // A notify-only request renders the same way: nothing to click.
    let req = Request::new(
        RequestKind::Contain,
        plan,
        Actor::System,
        t0(),
        Duration::hours(4),
    );
    let card = request_card(&f, &req, &[], 1);
    assert!(card.buttons.is_empty());
    assert!(card.field(FIELD_APPROVALS).is_none());
    assert_eq!(
        value(&card, FIELD_STATE),
        "ℹ️ Notify only: nothing to approve."
    );
}

#[test]
fn text_from_the_finding_cannot_inject_markup() {
    let mut f = key_finding();
    f.title = "[click](https://evil.example) <@&123> `x` **b**\nsecond line".into();
    f.resource.access_key.as_mut().unwrap().user_name = Some("a`b".into());
    let req = request(&f, RequestKind::Contain, vec![deactivate(KEY, "a`b")]);
    let mut rejected = req.clone();
    vote(
        &mut rejected,
        discord("not-a-snowflake", "<@1> [x](y)"),
        Decision::Reject {
            reason: "# big\n> quote".into(),
        },
        1,
    );
    rejected.state = RequestState::Rejected;
    let card = request_card(&f, &rejected, &[], 1);
    assert_eq!(
        card.description.lines().next().unwrap(),
        "**Key AKIA…MPLE of user a\\`b: \\[click\\](https://evil.example) \\<\\@&123\\> \\`x\\` \\*\\*b\\*\\* second line; plan: deactivate the access key (1 approval)**"
    );
    assert_eq!(
        value(&card, FIELD_RESOURCE),
        format!("**AccessKey** `{KEY}` of `aˋb` (IAMUser)")
    );
    let state = value(&card, FIELD_STATE);
    assert!(
        state.starts_with("❌ Rejected by \\<\\@1\\> \\[x\\](y) unknown: \\# big \\> quote."),
        "{state}"
    );
}

#[test]
fn a_monstrous_finding_stays_within_every_limit() {
    let crab = "🦀";
    let big = |n: usize| crab.repeat(n);
    let mut f = key_finding();
    f.id = big(300);
    f.account_id = big(500);
    f.region = big(40);
    f.finding_type = big(1000);
    f.title = big(10_240);
    f.description = big(10_240);
    f.actor.caller_ip = Some(big(2000));
    f.actor.country = Some(big(2000));
    f.actor.organization = Some(big(2000));
    f.actor.api = Some(big(2000));
    f.resource.access_key.as_mut().unwrap().user_name = Some(big(3000));
    let steps: Vec<Step> = (0..200)
        .map(|i| {
            let mut s = deactivate(&format!("AKIA{i}{}", big(300)), &big(200));
            s.risk = RiskClass::Disrupt;
            s
        })
        .collect();
    let mut plan = key_plan(&f, steps.clone());
    plan.notes = (0..50).map(|_| big(1024)).collect();
    plan.plan_hash = plan.compute_hash();
    let mut req = Request::new(
        RequestKind::Contain,
        plan,
        Actor::System,
        t0(),
        Duration::hours(4),
    );
    for i in 0..40 {
        vote(
            &mut req,
            discord(&format!("{}", 1000 + i), &big(500)),
            Decision::Approve,
            1,
        );
    }
    let pending = request_card(&f, &req, &[], 2);
    assert_within_limits(&pending);
    assert_eq!(pending.url, None, "a malformed region never makes a URL");
    assert!(pending.title.ends_with(TRUNCATION_MARKER));
    assert!(pending.description.contains(TRUNCATION_MARKER));
    let plan_field = value(&pending, FIELD_PLAN);
    assert!(
        plan_field.contains("more steps, see `/finding "),
        "{plan_field}"
    );
    assert!(plan_field.starts_with("1. `iam:UpdateAccessKey AKIA0"));
    assert!(value(&pending, FIELD_APPROVALS).ends_with("+35 more"));
    for b in &pending.buttons {
        assert_eq!(ButtonId::parse(&b.id).unwrap().request_id, req.id);
    }

    req.state = RequestState::Failed;
    let records: Vec<StepRecord> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| record(i, s, StepOutcome::Failed, Some(&big(5000))))
        .collect();
    let failed = request_card(&f, &req, &records, 2);
    assert_within_limits(&failed);
    assert!(value(&failed, FIELD_PLAN).contains("more steps"));

    let notify = finding_card(&f, &key_plan(&f, vec![]));
    assert_within_limits(&notify);
}

#[test]
fn digests_stay_within_limits_and_count_what_they_leave_out() {
    let labels = [
        SeverityLabel::Low,
        SeverityLabel::Medium,
        SeverityLabel::High,
        SeverityLabel::Critical,
    ];
    let findings: Vec<(String, String, SeverityLabel)> = (0..500)
        .map(|i| {
            (
                format!("{i:032x}"),
                "UnauthorizedAccess:EC2/SSHBruteForce".to_string(),
                labels[i % 4],
            )
        })
        .collect();
    for omitted in [0, 120] {
        let card = digest_card(&findings, omitted);
        assert_within_limits(&card);
        assert_eq!(
            card.title,
            format!(
                "Digest: {} findings held back during a burst",
                500 + omitted
            )
        );
        assert_eq!(card.color, COLOR_CRITICAL);
        let lines: Vec<&str> = card.description.lines().collect();
        let listed = lines.len() - 1;
        assert!(listed > 20, "{listed} listed");
        assert!(lines[0].starts_with("**Critical** `UnauthorizedAccess:EC2/SSHBruteForce` · `/finding 00000000000000000000000000000003`"));
        assert!(
            lines[listed - 1].starts_with("**Critical**"),
            "most severe first"
        );
        assert_eq!(
            *lines.last().unwrap(),
            format!("… (+{} more, see `/findings`)", 500 + omitted - listed)
        );
        assert_eq!(
            value(&card, FIELD_BY_SEVERITY),
            if omitted == 0 {
                "Critical 125 · High 125 · Medium 125 · Low 125".to_string()
            } else {
                format!("Critical 125 · High 125 · Medium 125 · Low 125 · {omitted} not listed")
            }
        );
        assert!(card.buttons.is_empty());
    }

    let small = &findings[..2];
    let card = digest_card(small, 0);
    assert_eq!(
        card.description,
        "**Medium** `UnauthorizedAccess:EC2/SSHBruteForce` · `/finding 00000000000000000000000000000001`\n\
         **Low** `UnauthorizedAccess:EC2/SSHBruteForce` · `/finding 00000000000000000000000000000000`"
    );
    assert_eq!(card.color, COLOR_MEDIUM);
    let card = digest_card(small, 3);
    assert_eq!(
        card.description.lines().last().unwrap(),
        "… (+3 more, see `/findings`)"
    );
    let card = digest_card(&[], 7);
    assert_eq!(card.description, "… (+7 more, see `/findings`)");
    assert_eq!(card.color, COLOR_NEUTRAL);
}

#[test]
fn plan_text_lists_the_calls() {
    let f = key_finding();
    let plan = key_plan(&f, vec![deactivate(KEY, "alice"), revoke("alice")]);
    assert_eq!(
        plan_text(&plan),
        format!(
            "1. `iam:UpdateAccessKey {KEY} → Inactive` · contain\n\
             2. `iam:PutUserPolicy alice: deny all for sessions issued before approval` · contain"
        )
    );
    assert_eq!(
        plan_text(&key_plan(&f, vec![])),
        "No steps: this finding is notify-only; no AWS call would be made."
    );
}

#[test]
fn enforce_limits_repairs_a_hand_made_card() {
    let mut card = Card {
        title: "t".repeat(300),
        url: Some("javascript:alert(1)".into()),
        description: "d".repeat(5000),
        color: 0,
        fields: (0..30)
            .map(|i| Field {
                name: if i == 0 { " ".into() } else { "n".repeat(300) },
                value: if i == 1 {
                    String::new()
                } else {
                    "v".repeat(2000)
                },
                inline: false,
            })
            .collect(),
        footer: "f".repeat(3000),
        buttons: (0..30)
            .map(|i| Button {
                id: if i == 1 {
                    "id0".into()
                } else if i == 2 {
                    "x".repeat(101)
                } else {
                    format!("id{i}")
                },
                label: if i == 3 {
                    String::new()
                } else {
                    "l".repeat(100)
                },
                style: ButtonStyle::Primary,
                disabled: false,
            })
            .collect(),
    };
    enforce_limits(&mut card);
    assert_within_limits(&card);
    assert_eq!(card.url, None);
    assert_eq!(card.fields.len(), MAX_FIELDS);
    assert_eq!(card.fields[0].name, "—");
    assert_eq!(card.fields[1].value, "—");
    assert_eq!(card.fields[24].value, "(+6 more fields)");
    assert_eq!(card.buttons.len(), 25);
    assert!(!card.buttons.iter().any(|b| b.id == "x".repeat(101)));
    assert_eq!(card.buttons.iter().filter(|b| b.id == "id0").count(), 1);
    assert_eq!(
        card.buttons[1].label, TRUNCATION_MARKER,
        "empty label replaced"
    );
    assert_eq!(total_chars(&card), MAX_TOTAL);

    let valid = "https://us-east-1.console.aws.amazon.com/guardduty/home";
    let mut ok = Card {
        url: Some(valid.into()),
        ..card.clone()
    };
    enforce_limits(&mut ok);
    assert_eq!(ok.url.as_deref(), Some(valid));
    assert_eq!(
        ok,
        {
            let mut again = ok.clone();
            enforce_limits(&mut again);
            again
        },
        "idempotent"
    );
}

#[test]
fn console_links_follow_the_partition_and_the_product() {
    let link = |f: &Finding| {
        let plan = key_plan(f, vec![]);
        let from_finding_card = finding_card(f, &plan).url;
        let req = request(f, RequestKind::Contain, vec![deactivate(KEY, "alice")]);
        assert_eq!(request_card(f, &req, &[], 1).url, from_finding_card);
        assert_eq!(from_finding_card, f.console_url());
        from_finding_card
    };
    let mut f = key_finding();
    f.region = "cn-north-1".into();
    assert_eq!(
        link(&f).as_deref(),
        Some("https://cn-north-1.console.amazonaws.cn/guardduty/home?region=cn-north-1#/findings?macros=current&fId=84c5a1f0e1b2c3d4e5f60718293a4b5c")
    );
    f.region = "us-gov-west-1".into();
    assert!(link(&f)
        .unwrap()
        .starts_with("https://console.amazonaws-us-gov.com/guardduty/home?region=us-gov-west-1#"));
    // GuardDuty's findings through Security Hub keep the GuardDuty link.
    let mut via_hub = key_finding();
    via_hub.source = FindingSource::SecurityHub {
        product_arn: "arn:aws:securityhub:us-east-1::product/aws/guardduty".into(),
    };
    assert_eq!(link(&via_hub), link(&key_finding()));
    // Another product's finding links to Security Hub's console, filtered on its id.
    let mut other = key_finding();
    other.id = "arn:aws:inspector2:us-east-1:123456789012:finding/abc".into();
    other.source = FindingSource::SecurityHub {
        product_arn: "arn:aws:securityhub:us-east-1::product/aws/inspector".into(),
    };
    let url = link(&other).unwrap();
    assert!(
        url.starts_with("https://us-east-1.console.aws.amazon.com/securityhub/home?region=us-east-1#/findings?search=Id%3D"),
        "{url}"
    );
    assert!(
        url.ends_with(
            "arn%253Aaws%253Ainspector2%253Aus-east-1%253A123456789012%253Afinding%252Fabc"
        ),
        "{url}"
    );
    // Not a region name: no link to another host.
    for bad in ["", "us-east-1a", "evil.example/#", "local"] {
        f.region = bad.into();
        assert_eq!(link(&f), None, "{bad:?}");
    }
}

#[test]
fn the_first_line_says_in_words_what_happened_and_what_the_plan_does() {
    let mut f = key_finding();
    f.finding_type = "UnauthorizedAccess:IAMUser/TorIPCaller".into();
    f.title = "API GetCallerIdentity was invoked from a Tor exit node".into();
    let req = request(
        &f,
        RequestKind::Contain,
        vec![deactivate(KEY, "alice"), revoke("alice")],
    );
    let card = request_card(&f, &req, &[], 2);
    let mut lines = card.description.lines();
    assert_eq!(
        lines.next(),
        Some(
            "**Key AKIA…MPLE of user alice used from a Tor exit node; plan: deactivate the \
             access key and revoke the user's sessions (2 approvals)**"
        )
    );
    // The headline has its own words: the title follows, plain.
    assert_eq!(
        lines.next(),
        Some("API GetCallerIdentity was invoked from a Tor exit node")
    );

    // One approval, and the `!DNS` artifact does not change the words.
    f.finding_type = "UnauthorizedAccess:IAMUser/MaliciousIPCaller.Custom".into();
    assert_eq!(
        headline(&f, &key_plan(&f, vec![deactivate(KEY, "alice")]), Some(1)),
        "Key AKIA…MPLE of user alice used from a known malicious IP address; plan: deactivate \
         the access key (1 approval)"
    );
    f.finding_type = "Backdoor:EC2/C&CActivity.B!DNS".into();
    f.resource = Resource {
        kind: ResourceKind::Instance,
        access_key: None,
        instance: Some(crate::finding::InstanceDetails {
            instance_id: Some("i-0abc1234def567890".into()),
            tags: vec![crate::finding::Tag {
                key: "Name".into(),
                value: "web-1".into(),
            }],
            ..Default::default()
        }),
        s3_buckets: vec![],
    };
    // A finding card has no request: no count.
    let notify = key_plan(&f, vec![]);
    assert_eq!(
        headline(&f, &notify, None),
        "Instance i-0abc1234def567890 (web-1) talking to a command-and-control server; plan: \
         notify only, nothing to approve"
    );
    let card = finding_card(&f, &notify);
    assert!(
        card.description
            .starts_with("**Instance i-0abc1234def567890 (web-1) talking"),
        "{}",
        card.description
    );
}

#[test]
fn a_revert_headline_never_reads_as_a_containment() {
    let f = key_finding();
    let of = Uuid::from_u128(7);
    let req = request(
        &f,
        RequestKind::Revert { of },
        vec![deactivate(KEY, "alice")],
    );
    let card = request_card(&f, &req, &[], 2);
    let first = card.description.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        "**Revert of the containment of key AKIA…MPLE of user alice: restores what hanko \
         changed (2 approvals)**"
    );
    assert!(!first.contains("deactivate"), "{first}");
}

#[test]
fn a_headline_is_capped_and_names_root_and_roles_plainly() {
    let mut f = key_finding();
    f.finding_type = "Policy:IAMUser/RootCredentialUsage".into();
    f.resource.access_key.as_mut().unwrap().user_type = Some("Root".into());
    let plan = key_plan(&f, vec![deactivate(KEY, "alice")]);
    assert!(headline(&f, &plan, Some(2))
        .starts_with("Key AKIA…MPLE of the root user used with root credentials; plan:"));
    f.resource.access_key.as_mut().unwrap().user_type = Some("AssumedRole".into());
    f.finding_type = "Custom:IAMUser/Unknown".into();
    f.title = "x".repeat(5000);
    let h = headline(&f, &plan, Some(2));
    assert!(h.starts_with("Key AKIA…MPLE of role alice: xxx"), "{h}");
    assert!(h.chars().count() <= HEADLINE_CAP, "{}", h.chars().count());
}

#[test]
fn digest_lines_stay_bounded_and_count_every_line() {
    let labels = [
        SeverityLabel::Low,
        SeverityLabel::Medium,
        SeverityLabel::High,
        SeverityLabel::Critical,
    ];
    let findings: Vec<(String, String, SeverityLabel)> = (0..5_000)
        .map(|i| {
            (
                format!("{i:032x}"),
                "UnauthorizedAccess:EC2/SSHBruteForce".to_string(),
                labels[i % 4],
            )
        })
        .collect();
    let lines: DigestLines = findings.iter().cloned().collect();
    assert_eq!(lines.len(), 5_000);
    assert_eq!(lines.kept().len(), DigestLines::KEPT);
    // The most severe, in arrival order: Critical lines are ids 3, 7, 11, ...
    assert!(lines.kept().iter().all(|l| l.2 == SeverityLabel::Critical));
    assert_eq!(lines.kept()[0].0, format!("{:032x}", 3));
    assert_eq!(lines.kept()[1].0, format!("{:032x}", 7));

    let card = digest_card_of(&lines);
    assert_within_limits(&card);
    assert_eq!(card.title, "Digest: 5000 findings held back during a burst");
    assert_eq!(card.color, COLOR_CRITICAL);
    let all = digest_card(&findings, 0);
    // The same message as from every line: the lines a message can show are the kept ones.
    assert_eq!(card.description, all.description);
    assert_eq!(
        value(&card, FIELD_BY_SEVERITY),
        "Critical 1250 · High 1250 · Medium 1250 · Low 1250 · 4900 not listed"
    );

    // A later, more severe line goes before the kept ones of lower severity.
    let mut lines: DigestLines = findings[..3].iter().cloned().collect();
    lines.push((
        "ff".repeat(16),
        "Backdoor:EC2/C&CActivity.B".into(),
        SeverityLabel::High,
    ));
    let order: Vec<SeverityLabel> = lines.kept().iter().map(|l| l.2).collect();
    assert_eq!(
        order,
        [
            SeverityLabel::High,
            SeverityLabel::High,
            SeverityLabel::Medium,
            SeverityLabel::Low
        ]
    );
    assert_eq!(lines.kept()[0].0, format!("{:032x}", 2));
}
