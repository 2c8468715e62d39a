//! Cards: what a responder sees in the channel, rendered from plain core values.
//!
//! A [`Card`] is a Discord embed plus its buttons, as plain data. The constructors
//! ([`request_card`], [`finding_card`], [`digest_card`]) are pure functions of a finding, its
//! request, the persisted step records and the policy's quorum; [`super::convert`] turns a card
//! into serenity builders. This module never imports serenity, the AWS SDK or sled, reads no
//! clock and does no I/O, so every card can be checked by a unit test.
//!
//! The card is read at 3 a.m.: the colour says how bad ([`severity_color`]), the title says
//! what (the GuardDuty finding type), the description says what hanko proposes, the last
//! field says where the request is and what is expected of the reader, and the buttons are
//! the only actions that make sense in that state:
//!
//! | state | buttons | what the card adds |
//! |---|---|---|
//! | Pending | Approve, Reject, Dry run | approvals so far, expiry |
//! | Approved, Executing | none | who approved, "running" |
//! | Rejected, Expired, Superseded | none: a vote on them can only be refused | who decided, when, why; nothing was changed |
//! | Succeeded, PartiallyFailed, Failed | Revert (contain requests that changed something) | each step's outcome |
//!
//! Every constructor ends with [`enforce_limits`], so a card is never refused by Discord:
//! oversized text is cut on a character boundary and ends with a visible `…` (lists say how
//! many entries were left out and where to find them). Discord counts characters as Unicode
//! code points (discord-api-docs#1315), and so does this module.
//!
//! Text that comes from a finding or a person (titles, names, reasons, AWS error messages) is
//! stripped of markdown and mention markup before it is shown, so a crafted tag value or
//! reject reason cannot render a masked link or a fake mention.

use chrono::{DateTime, Utc};

use super::custom_id::{ButtonAction, ButtonId, PostureAction, PostureId, MAX_CUSTOM_ID_LEN};
use crate::approval::{Decision, Request, RequestKind, RequestState};
use crate::audit::Actor;
use crate::execution::{StepOutcome, StepRecord};
use crate::finding::{Finding, FindingSource, ResourceKind, SeverityLabel};
use crate::plan::{Action, Plan, Step};
use crate::posture::{Group, GroupStatus, PostureSeverity};

// Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits
// and the message components page).
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
pub const MAX_FOOTER: usize = 2048;
/// The sum of title, description, field names and values, and footer.
pub const MAX_TOTAL: usize = 6000;
pub const MAX_BUTTONS_PER_ROW: usize = 5;
pub const MAX_ROWS: usize = 5;
pub const MAX_BUTTON_LABEL: usize = 80;
/// Longer URLs are dropped rather than risk a refused message.
pub const MAX_URL: usize = 2048;

/// Ends every cut text.
pub const TRUNCATION_MARKER: &str = "…";

/// Severity colours, after the GuardDuty console's severity badges.
/// Low: blue (informational).
pub const COLOR_LOW: u32 = 0x0972D3;
/// Medium: amber.
pub const COLOR_MEDIUM: u32 = 0xF29D38;
/// High: red-orange.
pub const COLOR_HIGH: u32 = 0xD13212;
/// Critical: dark red, clearly darker than High.
pub const COLOR_CRITICAL: u32 = 0x7D0A0A;
/// A digest with nothing in it.
pub const COLOR_NEUTRAL: u32 = 0x8C8C94;
/// A posture card whose control passes again: green.
pub const COLOR_RESOLVED: u32 = 0x1D8102;

/// Field names; handlers and tests find fields by these.
pub const FIELD_SEVERITY: &str = "Severity";
pub const FIELD_ACCOUNT: &str = "Account";
pub const FIELD_REGION: &str = "Region";
pub const FIELD_RESOURCE: &str = "Resource";
pub const FIELD_ACTOR: &str = "Actor";
pub const FIELD_FIRST_SEEN: &str = "First seen";
pub const FIELD_LAST_SEEN: &str = "Last seen";
pub const FIELD_COUNT: &str = "Count";
pub const FIELD_PLAN: &str = "Plan";
pub const FIELD_NOTES: &str = "Notes";
pub const FIELD_APPROVALS: &str = "Approvals";
pub const FIELD_STATE: &str = "State";
pub const FIELD_BY_SEVERITY: &str = "By severity";
pub const FIELD_STANDARDS: &str = "Standards";
/// Followed by the count in parentheses.
pub const FIELD_RESOURCES: &str = "Failing resources";
pub const FIELD_FAILING_SINCE: &str = "Failing since";

/// A value shown in a code span is cut to this many characters before it is wrapped, so a
/// huge id never leaves a code span open.
const CODE_CAP: usize = 120;
/// The finding title in the description.
const TITLE_LINE_CAP: usize = 1000;
/// Free text from people and AWS (reasons, error messages, notes).
const TEXT_CAP: usize = 600;
/// How many interfaces, buckets or approvers are listed before "+N more".
const LIST_CAP: usize = 5;

/// A Discord embed with its buttons, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub title: String,
    pub url: Option<String>,
    pub description: String,
    pub color: u32,
    pub fields: Vec<Field>,
    pub footer: String,
    /// In order; [`super::convert::to_components`] puts five on a row.
    pub buttons: Vec<Button>,
}

impl Card {
    /// The first field named `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
    pub inline: bool,
}

impl Field {
    fn new(name: &str, value: String, inline: bool) -> Self {
        Field {
            name: name.to_string(),
            value,
            inline,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonStyle {
    Primary,
    Success,
    Danger,
    Secondary,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    /// The `custom_id`, from [`ButtonId::encode`].
    pub id: String,
    pub label: String,
    pub style: ButtonStyle,
    pub disabled: bool,
}

/// The embed colour of a severity.
pub fn severity_color(label: SeverityLabel) -> u32 {
    match label {
        SeverityLabel::Low => COLOR_LOW,
        SeverityLabel::Medium => COLOR_MEDIUM,
        SeverityLabel::High => COLOR_HIGH,
        SeverityLabel::Critical => COLOR_CRITICAL,
    }
}

// ---------------------------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------------------------

/// The card of a containment (or revert) request: the finding, the plan, the votes so far and,
/// once the engine ran, each step's outcome from `records`. `needed_approvals` is the policy's
/// quorum for this plan (`Policy::needed`).
///
/// A revert request's plan lists the steps of the containment it undoes; its card says what
/// each revert restores, and says loudly when that re-enables a leaked key or a public bucket.
pub fn request_card(
    finding: &Finding,
    request: &Request,
    records: &[StepRecord],
    needed_approvals: u32,
) -> Card {
    let subject = Subject {
        title: plain(&finding.finding_type),
        sample: finding.sample,
        head_line: title_line(finding),
        fields: finding_fields(finding),
        gone: finding.archived.then_some("the finding was archived"),
        footer: format!("finding {}", plain_capped(&finding.id, CODE_CAP)),
        url: console_url(finding),
        color: severity_color(finding.severity_label),
    };
    subject_request_card(subject, request, records, needed_approvals)
}

/// The card of a request about a posture group (a suppression, a remediation, or the revert
/// of one): the control and its failing resources instead of a finding, the same plan,
/// approvals, state and buttons as any request.
pub fn posture_request_card(
    group: &Group,
    request: &Request,
    records: &[StepRecord],
    needed_approvals: u32,
) -> Card {
    let suppression = request
        .plan
        .steps
        .iter()
        .any(|s| s.action == Action::SuppressFindings);
    let subject = Subject {
        title: format!(
            "{} {} {}",
            if suppression {
                "[SUPPRESS]"
            } else {
                "[REMEDIATE]"
            },
            plain(&group.key.control_id),
            plain(&group.title)
        ),
        sample: false,
        head_line: format!(
            "Security Hub control {} in account {}",
            code(&group.key.control_id),
            code(&group.key.account_id)
        ),
        fields: posture_fields(group),
        gone: (group.status == GroupStatus::Resolved).then_some("the control passes again"),
        footer: format!("posture {}", plain_capped(&group.key.encode(), CODE_CAP)),
        url: remediation_url(group),
        color: posture_color(group.severity),
    };
    subject_request_card(subject, request, records, needed_approvals)
}

/// What a request card shows about what the request is for.
struct Subject {
    /// Plain text, without the `[SAMPLE]`/`[REVERT]` prefixes.
    title: String,
    sample: bool,
    /// The first line of the description.
    head_line: String,
    fields: Vec<Field>,
    /// Why the subject went away (an archived finding, a control that passes again), which a
    /// superseded request says.
    gone: Option<&'static str>,
    /// The footer's first part, e.g. `finding <id>`.
    footer: String,
    url: Option<String>,
    color: u32,
}

fn subject_request_card(
    subject: Subject,
    request: &Request,
    records: &[StepRecord],
    needed_approvals: u32,
) -> Card {
    let plan = &request.plan;
    let revert_of = match request.kind {
        RequestKind::Revert { of } => Some(of),
        RequestKind::Contain => None,
    };
    let mut title = String::new();
    if plan.sample || subject.sample {
        title.push_str("[SAMPLE] ");
    }
    if revert_of.is_some() {
        title.push_str("[REVERT] ");
    }
    title.push_str(&subject.title);

    let proposal = match revert_of {
        Some(of) => revert_line(plan, &of.simple().to_string()),
        None => proposal_line(plan),
    };
    let description = format!("{}\n{proposal}", subject.head_line);

    let mut fields = subject.fields;
    fields.push(Field::new(
        FIELD_PLAN,
        plan_field(plan, records, request.state, revert_of.is_some()),
        false,
    ));
    if !plan.notes.is_empty() {
        fields.push(Field::new(FIELD_NOTES, notes_field(plan), false));
    }
    let approvers = request.approvers();
    if !plan.is_notify_only() {
        fields.push(Field::new(
            FIELD_APPROVALS,
            approvals_line(&approvers, needed_approvals),
            false,
        ));
    }
    fields.push(Field::new(
        FIELD_STATE,
        state_text(subject.gone, request, records, needed_approvals),
        false,
    ));

    let buttons = buttons_for(request, records);
    let footer = format!(
        "{} · request {} · plan {}",
        subject.footer,
        request.id.simple(),
        hash_prefix(&plan.plan_hash),
    );
    let mut card = Card {
        title,
        url: subject.url,
        description,
        color: subject.color,
        fields,
        footer,
        buttons,
    };
    enforce_limits(&mut card);
    card
}

/// The card of a posture group: one Security Hub control failing in one account, with the
/// resources it fails on (a count and the first few), the standards, the remediation link
/// Security Hub gives and since when it fails. A group that no longer fails says so.
///
/// While it fails, the card offers Suppress (asks for a reason, then needs approval) and
/// Acknowledge (Security Hub workflow NOTIFIED, no approval); `remediable` adds Remediate.
pub fn posture_card(group: &Group, remediable: bool) -> Card {
    let key = &group.key;
    let resolved = matches!(
        group.status,
        GroupStatus::Resolved | GroupStatus::Suppressed
    );
    let mut title = String::new();
    if resolved {
        title.push_str("[RESOLVED] ");
    }
    title.push_str(&format!(
        "{} {}",
        plain(&key.control_id),
        plain(&group.title)
    ));
    let description = match group.status {
        GroupStatus::Failing | GroupStatus::Acknowledged => format!(
            "Security Hub control {} fails on {} resource(s) in account {}.",
            code(&key.control_id),
            group.failing.len(),
            code(&key.account_id)
        ),
        GroupStatus::Suppressed => format!(
            "Nothing fails any more except {} suppressed finding(s).",
            group.suppressed_count
        ),
        GroupStatus::Resolved => {
            "The control passes again (or its findings were archived): nothing to do.".to_string()
        }
    };
    let mut fields = posture_fields(group);
    fields.push(Field::new(
        FIELD_STATE,
        match group.status {
            GroupStatus::Failing => format!("failing: {} new", group.new_count),
            GroupStatus::Acknowledged => "failing, acknowledged".to_string(),
            GroupStatus::Suppressed => {
                format!("suppressed ({} finding(s))", group.suppressed_count)
            }
            GroupStatus::Resolved => "resolved".to_string(),
        },
        true,
    ));
    let mut buttons = Vec::new();
    if !resolved {
        let id = |action| PostureId::new(action, key.clone()).encode();
        if remediable {
            buttons.push(Button {
                id: id(PostureAction::Remediate),
                label: "Remediate".into(),
                style: ButtonStyle::Primary,
                disabled: false,
            });
        }
        buttons.push(Button {
            id: id(PostureAction::Suppress),
            label: "Suppress".into(),
            style: ButtonStyle::Secondary,
            disabled: false,
        });
        if group.new_count > 0 {
            buttons.push(Button {
                id: id(PostureAction::Acknowledge),
                label: "Acknowledge".into(),
                style: ButtonStyle::Secondary,
                disabled: false,
            });
        }
        // An id that does not fit Discord's limit (a very long control id) gets no buttons.
        buttons.retain(|b| b.id.chars().count() <= MAX_CUSTOM_ID_LEN);
    }
    let mut card = Card {
        title,
        url: remediation_url(group),
        description,
        color: if resolved {
            COLOR_RESOLVED
        } else {
            posture_color(group.severity)
        },
        fields,
        footer: format!("posture {}", plain_capped(&key.encode(), CODE_CAP)),
        buttons,
    };
    enforce_limits(&mut card);
    card
}

/// A suppression in force on a posture group, as its card names it: the request that ran it,
/// who proposed and approved it, why, and whether its lift is under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuppressionInForce {
    pub request_id: uuid::Uuid,
    pub findings: usize,
    pub proposer: String,
    pub approvers: Vec<String>,
    pub reason: String,
    /// A lift (revert) proposed or running.
    pub lift_pending: Option<uuid::Uuid>,
}

/// The field of a posture card that names its suppressions.
pub const FIELD_SUPPRESSED: &str = "Suppressed";

/// [`posture_card`], plus a [`FIELD_SUPPRESSED`] field per suppression in force naming who
/// proposed and approved it, why, and how to lift it (its revert, approval-gated).
pub fn posture_card_with_suppressions(
    group: &Group,
    remediable: bool,
    suppressions: &[SuppressionInForce],
) -> Card {
    let mut card = posture_card(group, remediable);
    if group.suppressed_count == 0 {
        return card;
    }
    // Before the State field, so the card reads: what, where, suppressed by whom, state.
    let at = card
        .fields
        .iter()
        .position(|f| f.name == FIELD_STATE)
        .unwrap_or(card.fields.len());
    for (i, s) in suppressions.iter().enumerate() {
        card.fields.insert(
            at + i,
            Field::new(FIELD_SUPPRESSED, suppression_text(s), false),
        );
    }
    enforce_limits(&mut card);
    card
}

fn suppression_text(s: &SuppressionInForce) -> String {
    let id = s.request_id.simple().to_string();
    let approvers = if s.approvers.is_empty() {
        "?".to_string()
    } else {
        s.approvers
            .iter()
            .take(LIST_CAP)
            .map(|a| plain(a))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lift = match s.lift_pending {
        Some(lift) => format!(
            "Lift proposed as request {}: vote on its card.",
            code(&lift.simple().to_string())
        ),
        None => format!(
            "Lift: the Revert button on request {}'s card, or `/revert request:{id}` (needs \
             approval).",
            code(&id)
        ),
    };
    format!(
        "{} finding(s) suppressed by request {}, proposed by {}, approved by {}.\nWhy: {}\n{lift}",
        s.findings,
        code(&id),
        plain(&s.proposer),
        approvers,
        plain(&truncate(&s.reason, TEXT_CAP)),
    )
}

/// Security Hub's remediation link, when it is an https URL within Discord's limit.
fn remediation_url(group: &Group) -> Option<String> {
    group
        .remediation_url
        .as_deref()
        .filter(|u| u.starts_with("https://") && u.len() <= MAX_URL)
        .map(str::to_string)
}

/// The fields every posture card has: how bad, where, which standards, which resources, since
/// when.
fn posture_fields(group: &Group) -> Vec<Field> {
    let key = &group.key;
    let mut fields = vec![
        Field::new(FIELD_SEVERITY, group.severity.as_str().to_string(), true),
        Field::new(FIELD_ACCOUNT, code(&key.account_id), true),
        Field::new(FIELD_REGION, code(&key.region), true),
        Field::new(
            FIELD_STANDARDS,
            if group.standards.is_empty() {
                "?".to_string()
            } else {
                group
                    .standards
                    .iter()
                    .map(|s| plain(&crate::posture::standard_name(s)))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
            false,
        ),
    ];
    if !group.failing.is_empty() {
        let mut lines: Vec<String> = group
            .failing
            .iter()
            .take(LIST_CAP)
            .map(|r| format!("{} {}", plain(&r.resource_type), code(&r.id)))
            .collect();
        if group.failing.len() > LIST_CAP {
            lines.push(format!("+{} more", group.failing.len() - LIST_CAP));
        }
        fields.push(Field::new(
            &format!("{} ({})", FIELD_RESOURCES, group.failing.len()),
            lines.join("\n"),
            false,
        ));
    }
    if let Some(since) = group.failing_since {
        fields.push(Field::new(FIELD_FAILING_SINCE, ts(Some(since)), true));
    }
    fields
}

/// The embed colour of a posture severity (Informational as Low).
pub fn posture_color(s: PostureSeverity) -> u32 {
    match s {
        PostureSeverity::Informational | PostureSeverity::Low => COLOR_LOW,
        PostureSeverity::Medium => COLOR_MEDIUM,
        PostureSeverity::High => COLOR_HIGH,
        PostureSeverity::Critical => COLOR_CRITICAL,
    }
}

/// The card of a finding without an open request: notify-only findings (the plan's notes say
/// why nothing is proposed and what a person should do), or `/finding` on a finding whose plan
/// was never proposed. It has no buttons.
pub fn finding_card(finding: &Finding, plan: &Plan) -> Card {
    let mut title = String::new();
    if plan.sample || finding.sample {
        title.push_str("[SAMPLE] ");
    }
    title.push_str(&plain(&finding.finding_type));
    let description = format!("{}\n{}", title_line(finding), proposal_line(plan));

    let mut fields = finding_fields(finding);
    fields.push(Field::new(
        FIELD_PLAN,
        plan_field(plan, &[], RequestState::Pending, false),
        false,
    ));
    if !plan.notes.is_empty() || plan.is_notify_only() {
        fields.push(Field::new(FIELD_NOTES, notes_field(plan), false));
    }
    let state = if plan.is_notify_only() {
        "ℹ️ Notify only: nothing to approve. Follow the notes by hand.".to_string()
    } else {
        "ℹ️ No request is open for this plan.".to_string()
    };
    fields.push(Field::new(FIELD_STATE, state, false));

    let mut card = Card {
        title,
        url: console_url(finding),
        description,
        color: severity_color(finding.severity_label),
        fields,
        footer: format!(
            "finding {} · plan {}",
            plain_capped(&finding.id, CODE_CAP),
            hash_prefix(&plan.plan_hash)
        ),
        buttons: Vec::new(),
    };
    enforce_limits(&mut card);
    card
}

/// The digest of findings folded during a burst: `(finding id, finding type, severity)` for
/// each listed finding, most severe first, each reachable with `/finding <id>`; `omitted` more
/// were not even listed. Every one of them is stored; only the post was saved.
pub fn digest_card(findings: &[(String, String, SeverityLabel)], omitted: usize) -> Card {
    let total = findings.len() + omitted;
    let mut sorted: Vec<&(String, String, SeverityLabel)> = findings.iter().collect();
    // Stable: equal severities keep their arrival order.
    sorted.sort_by_key(|f| std::cmp::Reverse(f.2));

    let lines: Vec<String> = sorted
        .iter()
        .map(|(id, kind, sev)| {
            format!(
                "**{}** {} · `/finding {}`",
                sev.as_str(),
                code(kind),
                code_inner(id, CODE_CAP)
            )
        })
        .collect();
    // Findings not even listed count as left out: the marker always says how many are not
    // shown, and room for it is kept when every listed line fits.
    let more = |left: usize| {
        format!(
            "{TRUNCATION_MARKER} (+{} more, see `/findings`)",
            left + omitted
        )
    };
    let reserve = if omitted > 0 {
        more(0).chars().count() + 1
    } else {
        0
    };
    let (mut description, left) = fit_lines(&lines, MAX_DESCRIPTION - reserve, more);
    if left == 0 && omitted > 0 {
        if !description.is_empty() {
            description.push('\n');
        }
        description.push_str(&more(0));
    }

    let count = |label| findings.iter().filter(|f| f.2 == label).count();
    let mut by_severity = [
        SeverityLabel::Critical,
        SeverityLabel::High,
        SeverityLabel::Medium,
        SeverityLabel::Low,
    ]
    .iter()
    .map(|&l| format!("{} {}", l.as_str(), count(l)))
    .collect::<Vec<_>>()
    .join(" · ");
    if omitted > 0 {
        by_severity.push_str(&format!(" · {omitted} not listed"));
    }

    let color = findings
        .iter()
        .map(|f| f.2)
        .max()
        .map(severity_color)
        .unwrap_or(COLOR_NEUTRAL);
    let mut card = Card {
        title: format!("Digest: {total} findings held back during a burst"),
        url: None,
        description,
        color,
        fields: vec![Field::new(FIELD_BY_SEVERITY, by_severity, false)],
        footer: "Every finding is stored and has its request; open one with /finding <id>."
            .to_string(),
        buttons: Vec::new(),
    };
    enforce_limits(&mut card);
    card
}

/// The plan as numbered steps with their exact calls and risk classes, one a line: the
/// dry-run answer and `/finding` use it. Not truncated: callers put it where it fits (an embed
/// description, or through [`truncate`]).
pub fn plan_text(plan: &Plan) -> String {
    if plan.is_notify_only() {
        return "No steps: this finding is notify-only; no AWS call would be made.".to_string();
    }
    plan.steps
        .iter()
        .enumerate()
        .map(|(i, s)| step_line(i, s))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Pieces
// ---------------------------------------------------------------------------------------------

fn title_line(finding: &Finding) -> String {
    let title = plain_capped(&finding.title, TITLE_LINE_CAP);
    if title.is_empty() {
        "(the finding has no title)".to_string()
    } else {
        format!("**{title}**")
    }
}

/// One line of what hanko proposes.
fn proposal_line(plan: &Plan) -> String {
    if plan.is_notify_only() {
        return "**Notify only:** hanko proposes no automatic containment; see Notes.".to_string();
    }
    let mut phrases: Vec<&str> = Vec::new();
    for s in &plan.steps {
        let p = action_phrase(s.action);
        if !phrases.contains(&p) {
            phrases.push(p);
        }
    }
    let n = plan.steps.len();
    let risk = plan.max_risk().map(|r| r.as_str()).unwrap_or("none");
    format!(
        "**hanko proposes:** {} ({n} step{}, highest risk: {risk}).",
        phrases.join(", "),
        if n == 1 { "" } else { "s" }
    )
}

/// The revert request's headline: what it brings back.
fn revert_line(plan: &Plan, of: &str) -> String {
    let mut dangers: Vec<String> = Vec::new();
    for s in &plan.steps {
        if let Some(d) = revert_danger(s) {
            if !dangers.contains(&d) {
                dangers.push(d);
            }
        }
    }
    let what = if dangers.is_empty() {
        "restores the settings hanko changed".to_string()
    } else {
        format!("**re-enables what was contained:** {}", dangers.join(", "))
    };
    format!("⚠️ **Revert** of request `{of}`: {what}.")
}

/// What a person must know before approving the revert of `step`, when it re-opens something.
fn revert_danger(step: &Step) -> Option<String> {
    let p = |k: &str| {
        step.parameters
            .get(k)
            .and_then(|v| v.as_str())
            .map(code)
            .unwrap_or_else(|| "?".to_string())
    };
    match step.action {
        Action::DeactivateAccessKey => Some(format!(
            "the leaked access key {} works again",
            p("AccessKeyId")
        )),
        Action::RevokeUserSessions => {
            Some(format!("old sessions of user {} work again", p("UserName")))
        }
        Action::RevokeRoleSessions => {
            Some(format!("old sessions of role {} work again", p("RoleName")))
        }
        Action::QuarantineUser => Some(format!("user {} works again", p("UserName"))),
        Action::IsolateInstance => Some(format!(
            "instance {} is reachable on the network again",
            p("InstanceId")
        )),
        Action::DetachInstanceProfile => Some(format!(
            "instance {} gets its IAM role back",
            p("InstanceId")
        )),
        Action::StopInstance => Some(format!("instance {} is started", p("InstanceId"))),
        Action::BlockBucketPublicAccess => {
            Some(format!("bucket {} may be public again", p("Bucket")))
        }
        Action::EnforceBucketOwnership => {
            Some(format!("bucket {} honours ACLs again", p("Bucket")))
        }
        Action::BlockAccountPublicAccess => Some(format!(
            "buckets of account {} may be public again",
            p("AccountId")
        )),
        Action::SuppressFindings => Some(format!(
            "the findings of control {} are NEW again and count against the score",
            p("ControlId")
        )),
        Action::SnapshotVolumes
        | Action::EnableTerminationProtection
        | Action::SetShutdownBehaviorStop
        | Action::PreserveVolumes
        | Action::TagInstance => None,
    }
}

/// What a step's revert does, for the revert card's step list.
fn revert_effect(action: Action) -> &'static str {
    match action {
        Action::DeactivateAccessKey => "key Active again",
        Action::RevokeUserSessions | Action::RevokeRoleSessions => {
            "deletes the session-revocation policy"
        }
        Action::QuarantineUser => "deletes the deny-all policy",
        Action::SnapshotVolumes => "nothing: snapshots are kept as evidence",
        Action::EnableTerminationProtection
        | Action::SetShutdownBehaviorStop
        | Action::PreserveVolumes => "restores the prior value",
        Action::IsolateInstance => "restores each interface's prior security groups",
        Action::TagInstance => "removes the quarantine tag",
        Action::DetachInstanceProfile => "re-associates the instance profile",
        Action::StopInstance => "starts the instance",
        Action::BlockBucketPublicAccess => "restores the prior public access block",
        Action::EnforceBucketOwnership => "restores the prior ownership controls",
        Action::BlockAccountPublicAccess => "restores the account's prior public access block",
        Action::SuppressFindings => "sets the findings' workflow back to NEW",
    }
}

fn action_phrase(action: Action) -> &'static str {
    match action {
        Action::DeactivateAccessKey => "deactivate the access key",
        Action::RevokeUserSessions => "revoke the user's sessions",
        Action::RevokeRoleSessions => "revoke the role's sessions",
        Action::QuarantineUser => "quarantine the user",
        Action::SnapshotVolumes => "snapshot the volumes",
        Action::EnableTerminationProtection => "protect from termination",
        Action::SetShutdownBehaviorStop => "stop on shutdown",
        Action::PreserveVolumes => "keep the volumes",
        Action::IsolateInstance => "isolate the instance",
        Action::TagInstance => "tag it",
        Action::DetachInstanceProfile => "detach the instance profile",
        Action::StopInstance => "stop the instance",
        Action::BlockBucketPublicAccess => "block public access to the bucket",
        Action::EnforceBucketOwnership => "disable the bucket's ACLs",
        Action::BlockAccountPublicAccess => "block public access account-wide",
        Action::SuppressFindings => "suppress the control's findings",
    }
}

fn step_line(i: usize, step: &Step) -> String {
    format!(
        "{}. {} · {}",
        i + 1,
        code(&step.summary()),
        step.risk.as_str()
    )
}

/// The numbered steps, each with its outcome once the engine has a record of it.
fn plan_field(plan: &Plan, records: &[StepRecord], state: RequestState, revert: bool) -> String {
    if plan.is_notify_only() {
        return "No automatic containment: notify only (see Notes).".to_string();
    }
    let ran = matches!(
        state,
        RequestState::Executing
            | RequestState::Succeeded
            | RequestState::PartiallyFailed
            | RequestState::Failed
    );
    let lines: Vec<String> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut line = step_line(i, step);
            if revert {
                line = format!("{line} → undo: {}", revert_effect(step.action));
            }
            if ran {
                let outcome = match records.iter().find(|r| r.index == i) {
                    Some(r) => outcome_text(r, revert, state),
                    None if state == RequestState::Executing => "⏳ waiting".to_string(),
                    None => "⏭️ not run".to_string(),
                };
                line = format!("{line} — {outcome}");
            }
            line
        })
        .collect();
    let finding = plain_capped(&plan.finding_id, 64);
    fit_lines(&lines, MAX_FIELD_VALUE, |left| {
        format!("{TRUNCATION_MARKER} (+{left} more steps, see `/finding {finding}`)")
    })
    .0
}

fn outcome_text(record: &StepRecord, revert: bool, state: RequestState) -> String {
    match record.outcome {
        Some(StepOutcome::Applied) if revert => "✅ reverted".to_string(),
        Some(StepOutcome::Applied) => "✅ applied".to_string(),
        Some(StepOutcome::AlreadyInTargetState) if revert => "☑️ already restored".to_string(),
        Some(StepOutcome::AlreadyInTargetState) => "☑️ already contained".to_string(),
        Some(StepOutcome::Failed) => {
            let why = match (&record.message, &record.error_code) {
                (Some(m), Some(c)) => format!("{} ({})", plain_capped(m, TEXT_CAP), plain(c)),
                (Some(m), None) => plain_capped(m, TEXT_CAP),
                (None, Some(c)) => plain_capped(c, TEXT_CAP),
                (None, None) => "no reason was recorded".to_string(),
            };
            format!("❌ failed: {why}")
        }
        Some(StepOutcome::Skipped) => match &record.message {
            Some(m) => format!("⏭️ skipped: {}", plain_capped(m, TEXT_CAP)),
            None => "⏭️ skipped".to_string(),
        },
        None if state == RequestState::Executing => "⚙️ running".to_string(),
        None => "❓ interrupted: checked again on resume".to_string(),
    }
}

fn notes_field(plan: &Plan) -> String {
    if plan.notes.is_empty() {
        return "A playbook rule makes this finding notify-only.".to_string();
    }
    let lines: Vec<String> = plan
        .notes
        .iter()
        .map(|n| format!("• {}", plain_capped(n, TEXT_CAP)))
        .collect();
    let finding = plain_capped(&plan.finding_id, 64);
    fit_lines(&lines, MAX_FIELD_VALUE, |left| {
        format!("{TRUNCATION_MARKER} (+{left} more notes, see `/finding {finding}`)")
    })
    .0
}

/// `1/2 approvals: <@123>`.
fn approvals_line(approvers: &[&Actor], needed: u32) -> String {
    let n = approvers.len();
    if n == 0 {
        return format!("0/{needed} approvals");
    }
    format!("{n}/{needed} approvals: {}", actor_list(approvers))
}

fn actor_list(actors: &[&Actor]) -> String {
    let mut names: Vec<String> = actors.iter().take(LIST_CAP).map(|a| mention(a)).collect();
    if actors.len() > LIST_CAP {
        names.push(format!("+{} more", actors.len() - LIST_CAP));
    }
    names.join(", ")
}

/// A Discord mention for Discord users (it renders as their current name and pings no one in
/// an embed), the name for CLI operators.
fn mention(actor: &Actor) -> String {
    match actor {
        Actor::Discord { id, name } => {
            if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
                format!("<@{id}>")
            } else {
                plain_capped(name, 64)
            }
        }
        Actor::Cli { name } => format!("{} (cli)", plain_capped(name, 64)),
        Actor::System => "hanko".to_string(),
    }
}

/// Where the request is, who decided, when and why, and what the reader can do.
fn state_text(
    gone: Option<&str>,
    request: &Request,
    records: &[StepRecord],
    needed: u32,
) -> String {
    let approvers = request.approvers();
    let decided = ts(request.decided_at);
    let approved_by = if approvers.is_empty() {
        String::new()
    } else {
        format!(" by {}", actor_list(&approvers))
    };
    let revert = matches!(request.kind, RequestKind::Revert { .. });
    match request.state {
        RequestState::Pending if request.plan.is_notify_only() => {
            "ℹ️ Notify only: nothing to approve.".to_string()
        }
        RequestState::Pending => {
            let missing = (needed as usize).saturating_sub(approvers.len()).max(1);
            format!(
                "⏳ Pending: needs {missing} more approval{} · expires {}",
                if missing == 1 { "" } else { "s" },
                ts(Some(request.expires_at))
            )
        }
        RequestState::Approved => {
            format!("✅ Approved{approved_by} {decided} · ⚙️ the plan runs next (while execution is paused, it waits for /resume)")
        }
        RequestState::Executing => {
            format!("⚙️ Running the plan… (approved{approved_by} {decided})")
        }
        RequestState::Rejected => {
            let rejector = request
                .votes
                .iter()
                .find(|v| matches!(v.decision, Decision::Reject { .. }))
                .map(|v| mention(&v.voter))
                .unwrap_or_else(|| "a responder".to_string());
            let reason = request
                .reject_reason()
                .map(|r| plain_capped(r, TEXT_CAP))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "no reason recorded".to_string());
            format!("❌ Rejected by {rejector} {decided}: {reason}. Nothing was changed.")
        }
        // Approved, then refused by the engine's checks before it ran: say when and why.
        RequestState::Expired if request.closure.is_some() => {
            let closure = request.closure.as_ref();
            let at = when(closure.map(|c| c.at));
            let why = closure
                .map(|c| plain_capped(&c.reason, TEXT_CAP))
                .unwrap_or_default();
            let approved = if approvers.is_empty() {
                String::new()
            } else {
                format!(" (approved{approved_by})")
            };
            format!("⌛ Expired {at} before it ran{approved}: {why}. Nothing was changed.")
        }
        RequestState::Expired => format!(
            "⌛ Expired unapproved {} with {}/{needed} approvals. Nothing was changed.",
            when(request.decided_at),
            approvers.len()
        ),
        RequestState::Superseded => {
            let closure = request.closure.as_ref();
            let why = closure
                .map(|c| plain_capped(&c.reason, TEXT_CAP))
                .or(gone.map(str::to_string))
                .unwrap_or_else(|| {
                    "the plan changed; the newer card replaces this one".to_string()
                });
            let at = match closure {
                Some(c) => ts(Some(c.at)),
                None => decided,
            };
            format!("↪️ Superseded {at}: {why}. Nothing was changed.")
        }
        RequestState::Succeeded | RequestState::PartiallyFailed | RequestState::Failed => {
            let tally = Tally::of(records);
            let finished = ts(records.iter().filter_map(|r| r.finished_at).max());
            let head = match (request.state, revert) {
                (RequestState::Succeeded, false) => "✅ Contained",
                (RequestState::Succeeded, true) => "✅ Reverted",
                (RequestState::PartiallyFailed, false) => "⚠️ Partially contained",
                (RequestState::PartiallyFailed, true) => "⚠️ Partially reverted",
                (_, false) => "❌ Containment failed",
                (_, true) => "❌ Revert failed",
            };
            let approved = if approvers.is_empty() {
                String::new()
            } else {
                format!(" (approved{approved_by})")
            };
            let mut s = format!("{head} {finished}{approved}: {}", tally.summary(revert));
            let iam_changed = records
                .iter()
                .any(|r| r.outcome == Some(StepOutcome::Applied) && r.action.service() == "iam");
            if iam_changed {
                s.push_str(". IAM changes take a few minutes to propagate");
            }
            s.push('.');
            s
        }
    }
}

#[derive(Default)]
struct Tally {
    applied: usize,
    already: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    fn of(records: &[StepRecord]) -> Self {
        let mut t = Tally::default();
        for r in records {
            match r.outcome {
                Some(StepOutcome::Applied) => t.applied += 1,
                Some(StepOutcome::AlreadyInTargetState) => t.already += 1,
                Some(StepOutcome::Failed) => t.failed += 1,
                Some(StepOutcome::Skipped) => t.skipped += 1,
                None => {}
            }
        }
        t
    }

    /// `1 applied, 1 failed`: counts that are zero are left out.
    fn summary(&self, revert: bool) -> String {
        let parts = [
            (self.applied, if revert { "reverted" } else { "applied" }),
            (
                self.already,
                if revert {
                    "already restored"
                } else {
                    "already contained"
                },
            ),
            (self.failed, "failed"),
            (self.skipped, "skipped"),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if shown.is_empty() {
            "no step recorded".to_string()
        } else {
            shown.join(", ")
        }
    }
}

fn buttons_for(request: &Request, records: &[StepRecord]) -> Vec<Button> {
    let id = |action| ButtonId::new(action, request.id, &request.plan.plan_hash).encode();
    match request.state {
        RequestState::Pending if !request.plan.is_notify_only() => vec![
            Button {
                id: id(ButtonAction::Approve),
                label: "Approve".into(),
                style: ButtonStyle::Success,
                disabled: false,
            },
            Button {
                id: id(ButtonAction::Reject),
                label: "Reject".into(),
                style: ButtonStyle::Danger,
                disabled: false,
            },
            Button {
                id: id(ButtonAction::DryRun),
                label: "Dry run".into(),
                style: ButtonStyle::Secondary,
                disabled: false,
            },
        ],
        RequestState::Succeeded | RequestState::PartiallyFailed | RequestState::Failed
            if request.kind == RequestKind::Contain && changed_something(records) =>
        {
            vec![Button {
                id: id(ButtonAction::Revert),
                label: "Revert".into(),
                style: ButtonStyle::Secondary,
                disabled: false,
            }]
        }
        _ => Vec::new(),
    }
}

/// Did a step change something that a revert would restore? (Snapshots are evidence and stay.)
fn changed_something(records: &[StepRecord]) -> bool {
    records
        .iter()
        .any(|r| r.outcome == Some(StepOutcome::Applied) && r.action != Action::SnapshotVolumes)
}

/// The fields every finding card has: how bad, where, what, who, when, how often.
fn finding_fields(f: &Finding) -> Vec<Field> {
    let mut fields = vec![
        Field::new(
            FIELD_SEVERITY,
            format!("{} {:.1}", f.severity_label.as_str(), f.severity),
            true,
        ),
        Field::new(FIELD_ACCOUNT, code(&f.account_id), true),
        Field::new(FIELD_REGION, code(&f.region), true),
        Field::new(FIELD_RESOURCE, resource_text(f), false),
    ];
    if let Some(actor) = actor_text(f) {
        fields.push(Field::new(FIELD_ACTOR, actor, false));
    }
    fields.push(Field::new(FIELD_FIRST_SEEN, ts(f.first_seen), true));
    fields.push(Field::new(FIELD_LAST_SEEN, ts(f.last_seen), true));
    fields.push(Field::new(FIELD_COUNT, f.count.to_string(), true));
    fields
}

fn resource_text(f: &Finding) -> String {
    let r = &f.resource;
    let kind = plain(r.kind.as_str());
    match &r.kind {
        ResourceKind::AccessKey => match &r.access_key {
            Some(k) => {
                let mut s = format!(
                    "**{kind}** {}",
                    k.access_key_id
                        .as_deref()
                        .map(code)
                        .unwrap_or("(no key id)".into())
                );
                if let Some(user) = &k.user_name {
                    s.push_str(&format!(" of {}", code(user)));
                }
                if let Some(t) = &k.user_type {
                    s.push_str(&format!(" ({})", plain_capped(t, 40)));
                }
                s
            }
            None => format!("**{kind}** (the finding names no key)"),
        },
        ResourceKind::Instance => match &r.instance {
            Some(i) => {
                let mut s = format!(
                    "**{kind}** {}",
                    i.instance_id
                        .as_deref()
                        .map(code)
                        .unwrap_or("(no instance id)".into())
                );
                for extra in [&i.instance_type, &i.instance_state].into_iter().flatten() {
                    s.push_str(&format!(" {}", plain_capped(extra, 40)));
                }
                if !i.network_interfaces.is_empty() {
                    let mut enis: Vec<String> = i
                        .network_interfaces
                        .iter()
                        .take(LIST_CAP)
                        .map(|n| {
                            let ips: Vec<&str> = [&n.private_ip, &n.public_ip]
                                .into_iter()
                                .flatten()
                                .map(String::as_str)
                                .collect();
                            let eni = n
                                .network_interface_id
                                .as_deref()
                                .map(code)
                                .unwrap_or("(no id)".into());
                            if ips.is_empty() {
                                eni
                            } else {
                                format!("{eni} ({})", plain_capped(&ips.join(", "), 80))
                            }
                        })
                        .collect();
                    if i.network_interfaces.len() > LIST_CAP {
                        enis.push(format!("+{} more", i.network_interfaces.len() - LIST_CAP));
                    }
                    s.push_str(&format!("\ninterfaces: {}", enis.join(", ")));
                }
                s
            }
            None => format!("**{kind}** (the finding names no instance)"),
        },
        ResourceKind::S3Bucket => {
            let mut names: Vec<String> = r
                .s3_buckets
                .iter()
                .take(LIST_CAP)
                .map(|b| b.name.as_deref().map(code).unwrap_or("(no name)".into()))
                .collect();
            if r.s3_buckets.len() > LIST_CAP {
                names.push(format!("+{} more", r.s3_buckets.len() - LIST_CAP));
            }
            if names.is_empty() {
                format!("**{kind}** (the finding names no bucket)")
            } else {
                format!("**{kind}** {}", names.join(", "))
            }
        }
        ResourceKind::Other(_) => format!("**{kind}**"),
    }
}

/// `198.51.100.7 (Frankfurt, Germany) · Example ISP · API GetObject (s3.amazonaws.com)`.
fn actor_text(f: &Finding) -> Option<String> {
    let a = &f.actor;
    let mut parts: Vec<String> = Vec::new();
    if let Some(ip) = &a.caller_ip {
        let place: Vec<String> = [&a.city, &a.country]
            .into_iter()
            .flatten()
            .map(|p| plain_capped(p, 60))
            .collect();
        if place.is_empty() {
            parts.push(code(ip));
        } else {
            parts.push(format!("{} ({})", code(ip), place.join(", ")));
        }
    } else if let Some(country) = &a.country {
        parts.push(plain_capped(country, 60));
    }
    if let Some(org) = &a.organization {
        parts.push(plain_capped(org, 80));
    }
    if let Some(api) = &a.api {
        match &a.service_name {
            Some(svc) => parts.push(format!("API {} ({})", code(api), plain_capped(svc, 60))),
            None => parts.push(format!("API {}", code(api))),
        }
    }
    if let Some(domain) = &a.domain {
        parts.push(format!("domain {}", code(domain)));
    }
    if parts.is_empty() {
        a.action_type.as_deref().map(|t| plain_capped(t, 60))
    } else {
        Some(parts.join(" · "))
    }
}

/// The GuardDuty console page of the finding, for GuardDuty findings with a well-formed region.
fn console_url(f: &Finding) -> Option<String> {
    let from_guardduty = match &f.source {
        FindingSource::GuardDuty => true,
        FindingSource::SecurityHub { product_arn } => product_arn.contains("guardduty"),
    };
    let region_ok = !f.region.is_empty()
        && f.region.len() <= 32
        && f.region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !from_guardduty || !region_ok || f.id.is_empty() {
        return None;
    }
    let region = &f.region;
    Some(format!(
        "https://{region}.console.aws.amazon.com/guardduty/home?region={region}#/findings?macros=current&fId={}",
        percent_encode(&f.id)
    ))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hash_prefix(hash: &str) -> String {
    hash.chars().take(16).collect()
}

/// `<t:UNIX:f> (<t:UNIX:R>)`: the date and time, and how long ago, each in the reader's own
/// time zone (for the moment a request closed, which the reader wants exactly).
fn when(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!("<t:{0}:f> (<t:{0}:R>)", t.timestamp()),
        None => "unknown".to_string(),
    }
}

/// `<t:UNIX:R>`, which each reader's client shows as "3 minutes ago" in their own time zone.
fn ts(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!("<t:{}:R>", t.timestamp()),
        None => "unknown".to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

/// Cuts `s` to at most `max` characters (code points, as Discord counts), ending with
/// [`TRUNCATION_MARKER`] when something was cut. Never splits a UTF-8 sequence.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push_str(TRUNCATION_MARKER);
    out
}

/// Untrusted text for one line: control characters become spaces, and markdown, masked-link,
/// mention and timestamp markup is neutralised with backslashes (`\[x\](y)` is not a link,
/// `\<@1\>` is not a mention). `#` and `-` only matter at the start of a line.
pub(crate) fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' | '>' | '@' => {
                out.push('\\');
                out.push(c);
            }
            '#' | '-' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// [`plain`], cut to `max` characters of the original first (escapes are not counted).
fn plain_capped(s: &str, max: usize) -> String {
    plain(&truncate(s, max))
}

/// An identifier in a code span: cut to [`CODE_CAP`] characters first, backticks and control
/// characters replaced, so the span always closes.
pub(crate) fn code(s: &str) -> String {
    code_capped(s, CODE_CAP)
}

/// [`code`], cut to `max` characters.
pub(crate) fn code_capped(s: &str, max: usize) -> String {
    format!("`{}`", code_inner(s, max))
}

/// What goes between the backticks of [`code_capped`]; `?` when nothing would show.
fn code_inner(s: &str, max: usize) -> String {
    let inner: String = truncate(s, max)
        .chars()
        .map(|c| match c {
            '`' => 'ˋ',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if inner.trim().is_empty() {
        "?".to_string()
    } else {
        inner
    }
}

/// Joins whole lines within `max` characters. When they do not all fit, the last line is
/// `more(n)`, `n` being how many lines were left out, and `n` is returned too. A single line
/// longer than a third of `max` is cut, so that one monster cannot hide all the others.
fn fit_lines(lines: &[String], max: usize, more: impl Fn(usize) -> String) -> (String, usize) {
    let line_cap = (max / 3).max(1);
    let lines: Vec<String> = lines.iter().map(|l| truncate(l, line_cap)).collect();
    let joined = lines.join("\n");
    if joined.chars().count() <= max {
        return (joined, 0);
    }
    let mut out = String::new();
    let mut used = 0;
    let mut kept = 0;
    for line in &lines {
        let sep = usize::from(kept > 0);
        let line_len = line.chars().count();
        let marker_len = more(lines.len() - kept - 1).chars().count();
        if used + sep + line_len + 1 + marker_len > max {
            break;
        }
        if sep == 1 {
            out.push('\n');
        }
        out.push_str(line);
        used += sep + line_len;
        kept += 1;
    }
    let left = lines.len() - kept;
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&more(left));
    (truncate(&out, max), left)
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/// The characters Discord counts towards [`MAX_TOTAL`]: title, description, field names and
/// values, footer.
pub fn total_chars(card: &Card) -> usize {
    let n = |s: &str| s.chars().count();
    n(&card.title)
        + n(&card.description)
        + card
            .fields
            .iter()
            .map(|f| n(&f.name) + n(&f.value))
            .sum::<usize>()
        + n(&card.footer)
}

/// Brings `card` within every Discord limit, cutting rather than failing. Applied by every
/// constructor; call it again after editing a card by hand.
pub fn enforce_limits(card: &mut Card) {
    card.title = truncate(&card.title, MAX_TITLE);
    card.description = truncate(&card.description, MAX_DESCRIPTION);
    card.footer = truncate(&card.footer, MAX_FOOTER);
    if card.fields.len() > MAX_FIELDS {
        let left = card.fields.len() - (MAX_FIELDS - 1);
        card.fields.truncate(MAX_FIELDS - 1);
        card.fields.push(Field {
            name: TRUNCATION_MARKER.to_string(),
            value: format!("(+{left} more fields)"),
            inline: false,
        });
    }
    for f in &mut card.fields {
        // Discord refuses empty field names and values.
        if f.name.trim().is_empty() {
            f.name = "—".to_string();
        }
        if f.value.trim().is_empty() {
            f.value = "—".to_string();
        }
        f.name = truncate(&f.name, MAX_FIELD_NAME);
        f.value = truncate(&f.value, MAX_FIELD_VALUE);
    }
    if let Some(url) = &card.url {
        let valid = url.starts_with("https://")
            && url.len() <= MAX_URL
            && url.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            card.url = None;
        }
    }
    shrink_to_total(card);

    let mut seen = std::collections::HashSet::new();
    card.buttons.retain(|b| {
        !b.id.is_empty() && b.id.chars().count() <= MAX_CUSTOM_ID_LEN && seen.insert(b.id.clone())
    });
    card.buttons.truncate(MAX_ROWS * MAX_BUTTONS_PER_ROW);
    for b in &mut card.buttons {
        if b.label.trim().is_empty() {
            b.label = TRUNCATION_MARKER.to_string();
        }
        b.label = truncate(&b.label, MAX_BUTTON_LABEL);
    }
}

/// Which text of a card [`shrink_to_total`] cuts.
#[derive(Clone, Copy)]
enum Slot {
    Title,
    Description,
    Footer,
    Name(usize),
    Value(usize),
}

/// Cuts the longest texts first, each down to a floor that keeps it useful, until the card is
/// within [`MAX_TOTAL`]. The floors sum to far less than the limit, so it always ends.
fn shrink_to_total(card: &mut Card) {
    const FLOOR_TITLE: usize = 64;
    const FLOOR_DESCRIPTION: usize = 256;
    const FLOOR_FOOTER: usize = 64;
    const FLOOR_NAME: usize = 32;
    const FLOOR_VALUE: usize = 64;
    loop {
        let total = total_chars(card);
        if total <= MAX_TOTAL {
            return;
        }
        let excess = total - MAX_TOTAL;
        let n = |s: &str| s.chars().count();
        let mut candidates = vec![
            (Slot::Title, n(&card.title), FLOOR_TITLE),
            (Slot::Description, n(&card.description), FLOOR_DESCRIPTION),
            (Slot::Footer, n(&card.footer), FLOOR_FOOTER),
        ];
        for (i, f) in card.fields.iter().enumerate() {
            candidates.push((Slot::Name(i), n(&f.name), FLOOR_NAME));
            candidates.push((Slot::Value(i), n(&f.value), FLOOR_VALUE));
        }
        let best = candidates
            .into_iter()
            .filter(|(_, len, floor)| len > floor)
            .max_by_key(|(_, len, floor)| len - floor);
        match best {
            Some((slot, len, floor)) => {
                let target = floor.max(len.saturating_sub(excess));
                let text = match slot {
                    Slot::Title => &mut card.title,
                    Slot::Description => &mut card.description,
                    Slot::Footer => &mut card.footer,
                    Slot::Name(i) => &mut card.fields[i].name,
                    Slot::Value(i) => &mut card.fields[i].value,
                };
                *text = truncate(text, target);
            }
            None => {
                // Unreachable with the floors above (they sum to under 2,800), kept so the
                // loop provably ends.
                if card.fields.pop().is_none() {
                    card.title = truncate(&card.title, 0);
                    card.description = truncate(&card.description, MAX_TOTAL / 2);
                    card.footer = truncate(&card.footer, 0);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Vote;
    use crate::discord::custom_id::hash_matches;
    use crate::execution::StepPhase;
    use crate::finding::{AccessKeyDetails, ActorInfo, Resource};
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

    fn record(
        index: usize,
        step: &Step,
        outcome: StepOutcome,
        message: Option<&str>,
    ) -> StepRecord {
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
            "**GetSecretValue was invoked from a known malicious IP address**\n\
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
            "**\\[click\\](https://evil.example) \\<\\@&123\\> \\`x\\` \\*\\*b\\*\\* second line**"
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
    fn truncation_keeps_characters_whole() {
        let table = [
            ("hello", 10, "hello"),
            ("hello", 5, "hello"),
            ("hello", 4, "hel…"),
            ("hello", 1, "…"),
            ("hello", 0, ""),
            ("🦀🦀🦀🦀", 3, "🦀🦀…"),
            ("é🦀あ", 2, "é…"),
        ];
        for (s, max, want) in table {
            assert_eq!(truncate(s, max), want, "{s} {max}");
        }
        let cut = truncate(&"🦀".repeat(10_000), MAX_FIELD_VALUE);
        assert_eq!(cut.chars().count(), MAX_FIELD_VALUE);
        assert_eq!(
            cut.len(),
            4 * (MAX_FIELD_VALUE - 1) + TRUNCATION_MARKER.len()
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
}
