//! Security Hub steps: suppress the findings of one failing control (`BatchUpdateFindings`,
//! `Workflow.Status` SUPPRESSED with a note carrying the reason, the approvers and the request),
//! lift a suppression (revert), and acknowledge findings (NOTIFIED, no approval needed; with
//! [`acknowledge_new`], only those Security Hub still reads as NEW). See the step contract in
//! [`crate::aws`].
//!
//! May use `aws-sdk-securityhub`, the core plan types and [`crate::util`] (its reads run on the
//! deep-stack thread); never imports sled, serenity or [`crate::ingest`] (the posture sync hands
//! [`read_findings`] the ASFF converter).
//!
//! A finding is named by its ASFF identifier, the pair (`Id`, `ProductArn`). The step's
//! parameters, built by the posture planner, are
//! `{"ControlId", "FindingIdentifiers": [{"Id", "ProductArn"}], "Reason", "Workflow"}`; its target
//! is [`Target::ControlFindings`] with the same `Id`s.
//!
//! What each phase does:
//! * capture: reads each finding's `Workflow.Status` (`GetFindings`, [`ID_FILTER_BATCH`] `Id`
//!   filters a call, matched again client-side since moto ignores filters). Findings that no
//!   longer exist are listed under `Missing` and the rest carry on; none left is NotFound.
//! * apply: one `BatchUpdateFindings` per [`BATCH_UPDATE_MAX`] findings that are not
//!   SUPPRESSED yet (those someone else already suppressed are left as they are, note included).
//!   Any finding Security Hub reports unprocessed fails the step, named with its error code.
//! * verify: every finding hanko suppressed reads back SUPPRESSED, else Retryable.
//! * [`read_findings`] re-reads findings by `Id` as ASFF JSON, so the posture store can take
//!   what a step did (a `BatchUpdateFindings` does not move `UpdatedAt`, so no poll sees it).
//! * revert (lifting the suppression): each finding hanko suppressed goes back to the status
//!   captured before (NEW for a card's findings), with a note saying it was lifted, for which
//!   request and with whose approval; only while it still reads SUPPRESSED. One that someone
//!   changed since (resolved it, say) is left alone and named. When any finding is left alone the
//!   outcome is [`RevertOutcome::Drifted`], even if others were restored (the reason says which):
//!   the contract's `Restored` means "the captured state is back", which would not be true, and
//!   a person should look at the finding that moved.
//!
//! The note ([`suppression_note`]) fits Security Hub's 512-character limit by cutting the
//! reason, never the approvers or the request id.

use std::collections::BTreeMap;

use aws_sdk_securityhub::types::{
    AwsSecurityFinding, AwsSecurityFindingFilters, AwsSecurityFindingIdentifier, NoteUpdate,
    StringFilter, StringFilterComparison, WorkflowStatus, WorkflowUpdate,
};
use aws_sdk_securityhub::Client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{classify, classify_parts, Failure};
use super::{dry_run_result, dry_run_revert, nothing, nothing_to_verify, prior_of};
use super::{AwsError, Captured, ErrorClass, RevertOutcome, StepCtx};
use crate::plan::{Action, Step, Target};

const GET_FINDINGS: &str = "securityhub:GetFindings";
const BATCH_UPDATE: &str = "securityhub:BatchUpdateFindings";
/// `Note.UpdatedBy` of every note hanko writes.
pub const NOTE_UPDATED_BY: &str = "hanko";
/// Security Hub's limit on `Note.Text`, in characters.
pub const NOTE_MAX_CHARS: usize = 512;
/// Findings per `BatchUpdateFindings` call (Security Hub's limit).
pub const BATCH_UPDATE_MAX: usize = 100;
/// `Id` values per `GetFindings` call (Security Hub takes up to 20 values per filter field).
pub const ID_FILTER_BATCH: usize = 20;
/// `GetFindings` pages read per batch at most: a guard against a token that never ends.
const MAX_PAGES: usize = 1000;
/// A finding without a `Workflow` is NEW, as Security Hub treats it.
const DEFAULT_STATUS: &str = "NEW";
const SUPPRESSED: &str = "SUPPRESSED";
const NOTIFIED: &str = "NOTIFIED";

/// One ASFF finding identifier.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FindingIdentifier {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "ProductArn")]
    pub product_arn: String,
}

/// What a `BatchUpdateFindings` round did (all of it processed: anything else is an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updated {
    /// The workflow status set.
    pub status: String,
    /// The `Id`s Security Hub processed.
    pub processed: Vec<String>,
    /// The note written with it.
    pub note: String,
}

/// The step's parameters, validated.
struct Suppression {
    control_id: String,
    findings: Vec<FindingIdentifier>,
    reason: String,
}

pub async fn capture(client: &Client, step: &Step, _ctx: &StepCtx) -> Result<Captured, AwsError> {
    let s = suppression_of(step)?;
    let seen = read_statuses(client, &s.findings, &step.target.to_string()).await?;
    let (statuses, missing) = split_seen(&s.findings, &seen);
    if statuses.is_empty() {
        return Err(AwsError::local(
            ErrorClass::NotFound,
            GET_FINDINGS,
            step.target.to_string(),
            format!(
                "none of the {} finding(s) of control {} exists any more",
                s.findings.len(),
                s.control_id
            ),
        ));
    }
    Ok(Captured {
        already_in_target_state: statuses.values().all(|st| st == SUPPRESSED),
        prior: json!({
            "ControlId": s.control_id,
            "WorkflowStatus": statuses,
            "Missing": missing,
        }),
    })
}

pub async fn apply(
    client: &Client,
    step: &Step,
    captured: &Captured,
    ctx: &StepCtx,
) -> Result<Value, AwsError> {
    let s = suppression_of(step)?;
    let resource = step.target.to_string();
    let note = suppression_note(&s.reason, &ctx.approvers, &ctx.request_id.to_string())
        .map_err(|m| AwsError::local(ErrorClass::Other, BATCH_UPDATE, &resource, m))?;
    let prior = statuses_in(&captured.prior);
    // What capture saw: findings it did not find are left out; so are those already suppressed
    // (by someone else: their note stays).
    let (to_suppress, already): (Vec<FindingIdentifier>, Vec<FindingIdentifier>) = s
        .findings
        .iter()
        .filter(|f| prior.is_empty() || prior.contains_key(&f.id))
        .cloned()
        .partition(|f| prior.get(&f.id).map(String::as_str) != Some(SUPPRESSED));
    let ids = |v: &[FindingIdentifier]| v.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    if ctx.dry_run {
        return Ok(dry_run_result(
            BATCH_UPDATE,
            json!({
                "FindingIdentifiers": to_suppress,
                "Workflow": {"Status": SUPPRESSED},
                "Note": {"Text": note, "UpdatedBy": NOTE_UPDATED_BY},
            }),
        ));
    }
    let updated = batch_update(client, &to_suppress, SUPPRESSED, &note, &resource).await?;
    Ok(json!({
        "ControlId": s.control_id,
        "RequestId": ctx.request_id.to_string(),
        "Suppressed": to_suppress,
        "Processed": updated.processed,
        "AlreadySuppressed": ids(&already),
        "Missing": captured.prior.get("Missing").cloned().unwrap_or(json!([])),
        "Note": note,
        "prior": captured.prior,
    }))
}

pub async fn verify(
    client: &Client,
    step: &Step,
    result: &Value,
    ctx: &StepCtx,
) -> Result<(), AwsError> {
    if nothing_to_verify(result, ctx) {
        return Ok(());
    }
    let suppressed = identifiers_in(result, "Suppressed");
    if suppressed.is_empty() {
        return Ok(());
    }
    let resource = step.target.to_string();
    let seen = read_statuses(client, &suppressed, &resource).await?;
    let not_yet: Vec<String> = suppressed
        .iter()
        .filter(|f| seen.get(&f.id).map(String::as_str) != Some(SUPPRESSED))
        .map(|f| match seen.get(&f.id) {
            Some(st) => format!("{} is {st}", f.id),
            None => format!("{} is not found", f.id),
        })
        .collect();
    if not_yet.is_empty() {
        return Ok(());
    }
    Err(AwsError::local(
        ErrorClass::Retryable,
        GET_FINDINGS,
        resource,
        format!(
            "{} of {} finding(s) do not read back SUPPRESSED yet: {}",
            not_yet.len(),
            suppressed.len(),
            not_yet.join("; ")
        ),
    ))
}

pub async fn revert(
    client: &Client,
    step: &Step,
    captured: &Value,
    result: &Value,
    ctx: &StepCtx,
) -> Result<RevertOutcome, AwsError> {
    if let Some(outcome) = dry_run_revert(result) {
        return Ok(outcome);
    }
    let suppressed = identifiers_in(result, "Suppressed");
    if suppressed.is_empty() {
        return Ok(nothing(
            "the step suppressed no finding (they were already suppressed)",
        ));
    }
    let resource = step.target.to_string();
    let prior = statuses_in(prior_of(result, captured));
    let seen = read_statuses(client, &suppressed, &resource).await?;
    // Per finding: still as hanko left it (restore), already back (nothing to do), or moved.
    let mut restore: BTreeMap<String, Vec<FindingIdentifier>> = BTreeMap::new();
    let mut back = 0usize;
    let mut moved: Vec<String> = Vec::new();
    for f in &suppressed {
        let was = prior
            .get(&f.id)
            .cloned()
            .unwrap_or_else(|| DEFAULT_STATUS.to_string());
        match seen.get(&f.id).map(String::as_str) {
            Some(SUPPRESSED) => restore.entry(was).or_default().push(f.clone()),
            Some(now) if now == was => back += 1,
            Some(now) => moved.push(format!("{} is {now} now", f.id)),
            None => moved.push(format!("{} no longer exists", f.id)),
        }
    }
    if restore.is_empty() {
        return Ok(if ctx.revert_retry && moved.is_empty() && back > 0 {
            // A retried or resumed lift already restored them: the captured state is back.
            RevertOutcome::Restored
        } else if moved.is_empty() {
            nothing("every finding is already back to its status before the suppression")
        } else {
            RevertOutcome::Drifted {
                reason: format!(
                    "no finding is suppressed as hanko left it: {}; left alone",
                    moved.join("; ")
                ),
            }
        });
    }
    let restoring: usize = restore.values().map(Vec::len).sum();
    if ctx.dry_run {
        return Ok(nothing(&format!(
            "dry run: would lift the suppression of {restoring} finding(s)"
        )));
    }
    let original = result
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut restored = Vec::new();
    for (status, findings) in &restore {
        let note = lift_note(
            status,
            original,
            &ctx.request_id.to_string(),
            &ctx.approvers,
        )
        .map_err(|m| AwsError::local(ErrorClass::Other, BATCH_UPDATE, &resource, m))?;
        batch_update(client, findings, status, &note, &resource).await?;
        restored.push(format!("{} to {status}", findings.len()));
    }
    if moved.is_empty() {
        return Ok(RevertOutcome::Restored);
    }
    Ok(RevertOutcome::Drifted {
        reason: format!(
            "{} changed since hanko suppressed it and was left alone ({}); the suppression of \
             the other {} finding(s) was lifted ({}{})",
            if moved.len() == 1 {
                "1 finding".to_string()
            } else {
                format!("{} findings", moved.len())
            },
            moved.join("; "),
            restoring + back,
            restored.join(", "),
            if back > 0 {
                format!(", {back} already back")
            } else {
                String::new()
            }
        ),
    })
}

/// `(Id, ProductArn)` pairs as finding identifiers, each once.
fn identifiers_of(pairs: &[(String, String)]) -> Vec<FindingIdentifier> {
    dedup(
        pairs
            .iter()
            .map(|(id, arn)| FindingIdentifier {
                id: id.clone(),
                product_arn: arn.clone(),
            })
            .collect(),
    )
}

/// Sets the findings' workflow to NOTIFIED with a note naming `by`: the Acknowledge button.
/// No approval is needed for this (by the posture design); the caller audits it. Any finding
/// Security Hub does not process is an error naming it.
pub async fn acknowledge(
    client: &Client,
    identifiers: &[(String, String)],
    by: &str,
) -> Result<Updated, AwsError> {
    let findings = identifiers_of(identifiers);
    let resource = format!("{} finding(s)", findings.len());
    if findings.is_empty() {
        return Err(AwsError::local(
            ErrorClass::Other,
            BATCH_UPDATE,
            resource,
            "no finding to acknowledge",
        ));
    }
    let note = acknowledge_note(by);
    batch_update(client, &findings, NOTIFIED, &note, &resource).await
}

/// What [`acknowledge_new`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The `BatchUpdateFindings` round; `None` when no finding was still NEW.
    pub updated: Option<Updated>,
    /// Findings left alone because Security Hub no longer holds them as NEW: `Id` → the status
    /// it read (a finding that no longer exists is absent).
    pub skipped: BTreeMap<String, String>,
}

/// [`acknowledge`], for only those of `identifiers` that Security Hub still holds in workflow
/// NEW when asked: their statuses are read first (`GetFindings` by `Id`), so a finding
/// suppressed (or resolved, or acknowledged) since hanko last read it is never sent NOTIFIED.
/// That matters because `BatchUpdateFindings` does not change `UpdatedAt`: a workflow change
/// made outside hanko is never seen by a poll of "updated since", so the stored status may be
/// stale, and NOTIFIED on a SUPPRESSED finding would lift a suppression without approval.
pub async fn acknowledge_new(
    client: &Client,
    identifiers: &[(String, String)],
    by: &str,
) -> Result<Acknowledged, AwsError> {
    let findings = identifiers_of(identifiers);
    let resource = format!("{} finding(s)", findings.len());
    let seen = read_statuses(client, &findings, &resource).await?;
    let (still_new, moved): (Vec<FindingIdentifier>, Vec<FindingIdentifier>) = findings
        .into_iter()
        .filter(|f| seen.contains_key(&f.id))
        .partition(|f| seen.get(&f.id).map(String::as_str) == Some(DEFAULT_STATUS));
    let skipped = moved
        .iter()
        .filter_map(|f| Some((f.id.clone(), seen.get(&f.id)?.clone())))
        .collect();
    if still_new.is_empty() {
        return Ok(Acknowledged {
            updated: None,
            skipped,
        });
    }
    let pairs: Vec<(String, String)> = still_new
        .into_iter()
        .map(|f| (f.id, f.product_arn))
        .collect();
    Ok(Acknowledged {
        updated: Some(acknowledge(client, &pairs, by).await?),
        skipped,
    })
}

// ---------------------------------------------------------------------------------------------
// notes

/// The note of a suppression:
/// `Suppressed by hanko request <id>, approved by <a>, <b>. Reason: <reason>`.
/// The reason (whitespace collapsed) is cut with `…` to fit [`NOTE_MAX_CHARS`]; the approvers
/// and the request id never are: when they alone do not fit, this is an error.
pub fn suppression_note(
    reason: &str,
    approvers: &[String],
    request_id: &str,
) -> Result<String, String> {
    let head = format!(
        "Suppressed by hanko request {request_id}, approved by {}. Reason: ",
        names(approvers)
    );
    with_tail_cut(head, &one_line(reason))
}

/// The note of a lifted suppression:
/// `Suppression lifted by hanko request <lift id> (suppressed by request <id>), approved by <a>;
/// workflow back to <STATUS>.`
pub fn lift_note(
    status: &str,
    suppressed_by: &str,
    lift_request_id: &str,
    approvers: &[String],
) -> Result<String, String> {
    let note = format!(
        "Suppression lifted by hanko request {lift_request_id} (suppressed by request \
         {suppressed_by}), approved by {}; workflow back to {status}.",
        names(approvers)
    );
    if note.chars().count() > NOTE_MAX_CHARS {
        return Err(format!(
            "the approvers' names do not fit in Security Hub's {NOTE_MAX_CHARS}-character note"
        ));
    }
    Ok(note)
}

/// The note of an acknowledgement: `Acknowledged in hanko by <name>.` (a very long name is cut).
pub fn acknowledge_note(by: &str) -> String {
    let by = one_line(by);
    let by = if by.is_empty() { "someone" } else { &by };
    let note = format!("Acknowledged in hanko by {by}.");
    if note.chars().count() <= NOTE_MAX_CHARS {
        return note;
    }
    let head = "Acknowledged in hanko by ";
    with_tail_cut(head.to_string(), by).unwrap_or_else(|_| head.to_string())
}

fn names(approvers: &[String]) -> String {
    let names: Vec<String> = approvers
        .iter()
        .map(|a| one_line(a))
        .filter(|a| !a.is_empty())
        .collect();
    if names.is_empty() {
        "(no approver recorded)".to_string()
    } else {
        names.join(", ")
    }
}

/// `head` + as much of `tail` as fits in [`NOTE_MAX_CHARS`] (cut with `…`).
fn with_tail_cut(head: String, tail: &str) -> Result<String, String> {
    let room = NOTE_MAX_CHARS
        .checked_sub(head.chars().count())
        .filter(|r| *r >= 2)
        .ok_or_else(|| {
            format!(
                "the approvers' names and the request id do not fit in Security Hub's \
                 {NOTE_MAX_CHARS}-character note"
            )
        })?;
    let mut note = head;
    if tail.chars().count() <= room {
        note.push_str(tail);
    } else {
        note.extend(tail.chars().take(room - 1));
        note.push('…');
    }
    Ok(note)
}

/// Text on one line, runs of whitespace as one space, nothing cut: the note's limit is kept
/// by [`with_tail_cut`], on the whole note.
fn one_line(s: &str) -> String {
    crate::util::one_line(s, usize::MAX)
}

// ---------------------------------------------------------------------------------------------
// calls

/// Each finding's `Workflow.Status`, by `Id`, for those that exist (matching `ProductArn`).
///
/// Runs on a thread with a deep stack (see [`on_deep_stack`]): the SDK's `GetFindings`
/// deserializer overflows the 2 MiB stack of a tokio worker in unoptimized builds.
async fn read_statuses(
    client: &Client,
    findings: &[FindingIdentifier],
    resource: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    let (client, findings, res) = (client.clone(), findings.to_vec(), resource.to_string());
    on_deep_stack(async move { read_statuses_here(&client, &findings, &res).await })
        .await
        .map_err(|m| AwsError::local(ErrorClass::Retryable, GET_FINDINGS, resource, m))?
}

async fn read_statuses_here(
    client: &Client,
    findings: &[FindingIdentifier],
    resource: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    let mut seen = BTreeMap::new();
    for_each_found(client, findings, resource, |id, f| {
        seen.insert(id.to_string(), status_of(f));
    })
    .await?;
    Ok(seen)
}

/// Each finding of `findings` as Security Hub holds it now, read through `read` on the deep-stack
/// thread (the posture sync passes `crate::ingest::securityhub::asff_to_json`, the shape its
/// parser reads; taking it as a parameter keeps this module from importing ingest); findings
/// that no longer exist are left out. `GetFindings` with an `Id` filter, [`ID_FILTER_BATCH`]
/// ids a call; on a deep stack like [`read_statuses`].
pub async fn read_findings<T: Send + 'static>(
    client: &Client,
    findings: &[FindingIdentifier],
    read: fn(&AwsSecurityFinding) -> T,
) -> Result<Vec<T>, AwsError> {
    let resource = format!("{} finding(s)", findings.len());
    let (client, findings, res) = (client.clone(), findings.to_vec(), resource.clone());
    on_deep_stack(async move {
        let mut docs = Vec::new();
        for_each_found(&client, &findings, &res, |_, f| {
            docs.push(read(f));
        })
        .await
        .map(|()| docs)
    })
    .await
    .map_err(|m| AwsError::local(ErrorClass::Retryable, GET_FINDINGS, &resource, m))?
}

/// Calls `each` with the `Id` and the finding for every one of `findings` that exists
/// (matching `ProductArn`), reading them by `Id` filter.
async fn for_each_found(
    client: &Client,
    findings: &[FindingIdentifier],
    resource: &str,
    mut each: impl FnMut(&str, &AwsSecurityFinding),
) -> Result<(), AwsError> {
    for batch in findings.chunks(ID_FILTER_BATCH) {
        let mut filters = AwsSecurityFindingFilters::builder();
        for f in batch {
            filters = filters.id(StringFilter::builder()
                .value(&f.id)
                .comparison(StringFilterComparison::Equals)
                .build());
        }
        let filters = filters.build();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = client
                .get_findings()
                .filters(filters.clone())
                .max_results(100)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| classify(&e, GET_FINDINGS, resource))?;
            for f in out.findings() {
                if let Some(id) = wanted(f, batch) {
                    each(id, f);
                }
            }
            token = out
                .next_token()
                .filter(|t| !t.is_empty() && Some(*t) != token.as_deref())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(())
}

/// Polls `fut` to completion on a thread with a deep stack ([`crate::util::deep_stack`]),
/// driven by the calling runtime (so the shared client's connection pool stays on it). The error
/// is a sentence for a Retryable [`AwsError`].
async fn on_deep_stack<F, T>(fut: F) -> Result<T, String>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    crate::util::on_deep_stack("hanko-securityhub", crate::util::Driver::Caller, fut)
        .await
        .map_err(|e| {
            let why = aws_smithy_types::error::display::DisplayErrorContext(&e);
            format!("cannot read Security Hub on a thread of its own: {why}")
        })
}

/// The finding's `Id` when it is one of `batch` (moto ignores the filters).
fn wanted<'a>(f: &'a AwsSecurityFinding, batch: &[FindingIdentifier]) -> Option<&'a str> {
    let id = f.id()?;
    batch
        .iter()
        .any(|b| b.id == id && f.product_arn().map_or(true, |arn| arn == b.product_arn))
        .then_some(id)
}

fn status_of(f: &AwsSecurityFinding) -> String {
    f.workflow()
        .and_then(|w| w.status())
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| DEFAULT_STATUS.to_string())
}

/// `BatchUpdateFindings` in rounds of [`BATCH_UPDATE_MAX`]; any unprocessed finding is an error
/// that names it (and says how many were processed before).
async fn batch_update(
    client: &Client,
    findings: &[FindingIdentifier],
    status: &str,
    note: &str,
    resource: &str,
) -> Result<Updated, AwsError> {
    let mut processed = Vec::new();
    for batch in findings.chunks(BATCH_UPDATE_MAX) {
        let mut call = client
            .batch_update_findings()
            .workflow(
                WorkflowUpdate::builder()
                    .status(WorkflowStatus::from(status))
                    .build(),
            )
            .note(
                NoteUpdate::builder()
                    .text(note)
                    .updated_by(NOTE_UPDATED_BY)
                    .build(),
            );
        for f in batch {
            call = call.finding_identifiers(
                AwsSecurityFindingIdentifier::builder()
                    .id(&f.id)
                    .product_arn(&f.product_arn)
                    .build(),
            );
        }
        let out = call
            .send()
            .await
            .map_err(|e| classify(&e, BATCH_UPDATE, resource))?;
        processed.extend(
            out.processed_findings()
                .iter()
                .filter_map(|p| p.id().map(str::to_string)),
        );
        let unprocessed: Vec<(String, Option<String>, Option<String>)> = out
            .unprocessed_findings()
            .iter()
            .map(|u| {
                (
                    u.finding_identifier()
                        .and_then(|i| i.id())
                        .unwrap_or("(no id)")
                        .to_string(),
                    u.error_code().map(str::to_string),
                    u.error_message().map(one_line),
                )
            })
            .collect();
        if !unprocessed.is_empty() {
            return Err(unprocessed_error(
                &unprocessed,
                status,
                processed.len(),
                resource,
            ));
        }
    }
    Ok(Updated {
        status: status.to_string(),
        processed,
        note: note.to_string(),
    })
}

/// The error for findings Security Hub did not process. The class is the most serious of their
/// codes (anything but Retryable wins), so a retry happens only when every one may succeed.
fn unprocessed_error(
    unprocessed: &[(String, Option<String>, Option<String>)],
    status: &str,
    processed: usize,
    resource: &str,
) -> AwsError {
    let class = unprocessed
        .iter()
        .map(|(_, code, _)| unprocessed_class(code.as_deref()))
        .fold(ErrorClass::Retryable, |acc, c| {
            if acc == ErrorClass::Retryable {
                c
            } else {
                acc
            }
        });
    let named: Vec<String> = unprocessed
        .iter()
        .map(|(id, code, message)| {
            let mut s = format!("{id}: {}", code.as_deref().unwrap_or("no error code"));
            if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
                s.push_str(&format!(" ({m})"));
            }
            s
        })
        .collect();
    AwsError {
        class,
        operation: BATCH_UPDATE.to_string(),
        resource: resource.to_string(),
        code: unprocessed.first().and_then(|(_, c, _)| c.clone()),
        aws_request_id: None,
        message: format!(
            "Security Hub did not set {} finding(s) to {status} ({processed} processed): {}",
            unprocessed.len(),
            named.join("; ")
        ),
    }
}

/// The class of a `BatchUpdateFindings` unprocessed-finding error code. Security Hub's own codes
/// first (`ConcurrentUpdateError` is worth a retry, `FindingNotFound` is NotFound), then the
/// shared table of [`classify_parts`].
fn unprocessed_class(code: Option<&str>) -> ErrorClass {
    match code {
        Some("ConcurrentUpdateError") => ErrorClass::Retryable,
        Some("FindingNotFound") => ErrorClass::NotFound,
        code => classify_parts(Failure::Service, code, None),
    }
}

// ---------------------------------------------------------------------------------------------
// parameters and records

#[allow(clippy::result_large_err)] // AwsError is the step contract's error type
fn suppression_of(step: &Step) -> Result<Suppression, AwsError> {
    let invalid = |what: String| AwsError::invalid_step(step, what);
    if step.action != Action::SuppressFindings {
        return Err(invalid(format!(
            "{} is not a Security Hub step",
            step.action
        )));
    }
    let p = &step.parameters;
    let findings: Vec<FindingIdentifier> = p
        .get("FindingIdentifiers")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| invalid(format!("the step's FindingIdentifiers are malformed: {e}")))?
        .unwrap_or_default();
    let findings = dedup(findings);
    if findings.is_empty() {
        return Err(invalid(
            "the step's parameters list no FindingIdentifiers".into(),
        ));
    }
    let control_id = p
        .get("ControlId")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Target::ControlFindings {
        control_id: target_control,
        finding_ids,
    } = &step.target
    {
        let mut want: Vec<&str> = finding_ids.iter().map(String::as_str).collect();
        let mut have: Vec<&str> = findings.iter().map(|f| f.id.as_str()).collect();
        want.sort_unstable();
        want.dedup();
        have.sort_unstable();
        if want != have || control_id.as_ref().is_some_and(|c| c != target_control) {
            return Err(invalid(
                "the step's parameters and its target name different findings".into(),
            ));
        }
    }
    let control_id = control_id
        .or_else(|| match &step.target {
            Target::ControlFindings { control_id, .. } => Some(control_id.clone()),
            _ => None,
        })
        .ok_or_else(|| invalid("the step's parameters lack ControlId".into()))?;
    let reason = p
        .get("Reason")
        .and_then(Value::as_str)
        .map(one_line)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("a suppression needs a Reason; the step has none".into()))?;
    if let Some(status) = p.pointer("/Workflow/Status").and_then(Value::as_str) {
        if status != SUPPRESSED {
            return Err(invalid(format!(
                "the step asks for Workflow.Status {status}; it only suppresses"
            )));
        }
    }
    Ok(Suppression {
        control_id,
        findings,
        reason,
    })
}

/// Identifiers in first-seen order, each once.
fn dedup(findings: Vec<FindingIdentifier>) -> Vec<FindingIdentifier> {
    let mut seen = std::collections::BTreeSet::new();
    findings
        .into_iter()
        .filter(|f| seen.insert(f.clone()))
        .collect()
}

/// Splits what was read into statuses by `Id` and the `Id`s not found.
fn split_seen(
    findings: &[FindingIdentifier],
    seen: &BTreeMap<String, String>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut statuses = BTreeMap::new();
    let mut missing = Vec::new();
    for f in findings {
        match seen.get(&f.id) {
            Some(s) => {
                statuses.insert(f.id.clone(), s.clone());
            }
            None => missing.push(f.id.clone()),
        }
    }
    (statuses, missing)
}

/// `{"<Id>": "<status>"}` of a captured prior.
fn statuses_in(prior: &Value) -> BTreeMap<String, String> {
    prior
        .get("WorkflowStatus")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn identifiers_in(result: &Value, key: &str) -> Vec<FindingIdentifier> {
    result
        .get(key)
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "6f1c2a1e-0000-4000-8000-000000000001";

    #[test]
    fn suppression_note_carries_reason_approvers_and_request() {
        let note = suppression_note(
            "  accepted risk:\n bucket is a public website ",
            &["alice".into(), "Bob K".into()],
            REQ,
        )
        .unwrap();
        assert_eq!(
            note,
            format!(
                "Suppressed by hanko request {REQ}, approved by alice, Bob K. Reason: accepted \
                 risk: bucket is a public website"
            )
        );
    }

    #[test]
    fn a_long_reason_is_cut_never_the_approvers() {
        let approvers: Vec<String> = (0..8)
            .map(|i| format!("approver-{i}-{}", "x".repeat(20)))
            .collect();
        for reason in ["r".repeat(2000), "é".repeat(2000), "🙂".repeat(600)] {
            let note = suppression_note(&reason, &approvers, REQ).unwrap();
            assert_eq!(note.chars().count(), NOTE_MAX_CHARS, "{note}");
            assert!(note.ends_with('…'));
            assert!(note.contains(REQ));
            for a in &approvers {
                assert!(note.contains(a.as_str()), "{a} in {note}");
            }
        }
    }

    #[test]
    fn approvers_that_cannot_fit_are_an_error_not_a_cut() {
        let approvers: Vec<String> = (0..40).map(|i| format!("approver-number-{i}")).collect();
        assert!(suppression_note("why", &approvers, REQ).is_err());
        assert!(lift_note("NEW", REQ, REQ, &approvers).is_err());
    }

    #[test]
    fn notes_without_approvers_say_so() {
        let note = suppression_note("why", &[], REQ).unwrap();
        assert!(
            note.contains("approved by (no approver recorded)"),
            "{note}"
        );
    }

    #[test]
    fn acknowledge_note_fits() {
        assert_eq!(acknowledge_note("carol"), "Acknowledged in hanko by carol.");
        assert_eq!(acknowledge_note(" "), "Acknowledged in hanko by someone.");
        let long = acknowledge_note(&"n".repeat(900));
        assert_eq!(long.chars().count(), NOTE_MAX_CHARS);
    }

    #[test]
    fn unprocessed_codes_are_classified() {
        let table = [
            (Some("ConcurrentUpdateError"), ErrorClass::Retryable),
            (Some("FindingNotFound"), ErrorClass::NotFound),
            (Some("InternalFailure"), ErrorClass::Retryable),
            (Some("AccessDeniedException"), ErrorClass::Forbidden),
            (Some("InvalidInput"), ErrorClass::Other),
            (None, ErrorClass::Other),
        ];
        for (code, want) in table {
            assert_eq!(unprocessed_class(code), want, "{code:?}");
        }
        let e = unprocessed_error(
            &[
                ("a".into(), Some("ConcurrentUpdateError".into()), None),
                (
                    "b".into(),
                    Some("FindingNotFound".into()),
                    Some("gone".into()),
                ),
            ],
            SUPPRESSED,
            1,
            "2 finding(s) of control S3.8",
        );
        assert_eq!(e.class, ErrorClass::NotFound);
        assert!(
            e.message.contains("b: FindingNotFound (gone)"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("a: ConcurrentUpdateError"),
            "{}",
            e.message
        );
    }

    fn step(params: Value, ids: &[&str]) -> Step {
        Step::new(
            Action::SuppressFindings,
            Target::ControlFindings {
                control_id: "S3.8".into(),
                finding_ids: ids.iter().map(|s| s.to_string()).collect(),
            },
            params,
        )
    }

    #[test]
    fn parameters_are_checked() {
        let ident = json!([{"Id": "a", "ProductArn": "p"}, {"Id": "a", "ProductArn": "p"}]);
        let ok = step(
            json!({"ControlId": "S3.8", "FindingIdentifiers": ident, "Reason": "r",
                   "Workflow": {"Status": "SUPPRESSED"}}),
            &["a"],
        );
        let s = suppression_of(&ok).unwrap();
        assert_eq!(s.findings.len(), 1, "duplicates are sent once");
        let bad = [
            json!({"ControlId": "S3.8", "FindingIdentifiers": ident, "Reason": " "}),
            json!({"ControlId": "S3.8", "FindingIdentifiers": [], "Reason": "r"}),
            json!({"ControlId": "S3.8", "FindingIdentifiers": [{"Id": "a"}], "Reason": "r"}),
            json!({"ControlId": "S3.9", "FindingIdentifiers": ident, "Reason": "r"}),
            json!({"ControlId": "S3.8", "FindingIdentifiers": ident, "Reason": "r",
                   "Workflow": {"Status": "RESOLVED"}}),
        ];
        for p in bad {
            assert!(suppression_of(&step(p.clone(), &["a"])).is_err(), "{p}");
        }
        let other_ids = step(
            json!({"ControlId": "S3.8", "FindingIdentifiers": ident, "Reason": "r"}),
            &["a", "b"],
        );
        assert!(suppression_of(&other_ids).is_err());
    }
}
