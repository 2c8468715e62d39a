//! Cards: what a responder sees in the channel, rendered from plain core values.
//!
//! A [`Card`] is a Discord embed plus its buttons, as plain data. The constructors are pure
//! functions of a finding (or a posture group), its request, the persisted step records and
//! the policy's quorum, one idea a file:
//!
//! * [`request`](request_card): the card of a containment or revert request;
//! * [`posture`](posture_card): a failing Security Hub control, and the card of a request
//!   about one ([`posture_request_card`]);
//! * [`finding`](finding_card): a finding without an open request (notify-only, `/finding`),
//!   and the finding fields every request card shows;
//! * [`digest`](digest_card): the findings folded during a burst;
//! * `plan`: how a plan, its steps and their outcomes read ([`plan_text`] for the dry run);
//! * `headline`: the first line in words ([`headline`]), also a page's and a reminder's text;
//! * `limits`: [`enforce_limits`], which every constructor ends with.
//!
//! [`super::convert`] turns a card into serenity builders. Escaping and Discord's limits come
//! from [`super::text`]; console links from [`crate::finding::Finding::console_url`]; button ids from
//! [`super::custom_id`]. This module never imports serenity, the AWS SDK or sled, reads no
//! clock and does no I/O, so every card can be checked by a unit test.
//!
//! The card is read at 3 a.m.: the colour says how bad ([`severity_color`]), the title says
//! what (the GuardDuty finding type), the description's first line says in words what happened
//! and what the plan does ([`headline`]), then what hanko proposes, the last
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
//! many entries were left out and where to find them).
//!
//! Text that comes from a finding or a person (titles, names, reasons, AWS error messages) is
//! stripped of markdown and mention markup before it is shown ([`plain`], [`code`]), so a
//! crafted tag value or reject reason cannot render a masked link or a fake mention.

mod digest;
mod finding;
mod headline;
mod investigation;
mod limits;
mod plan;
mod posture;
mod request;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

use crate::finding::SeverityLabel;

pub use self::digest::{digest_card, digest_card_of, DigestLines};
pub use self::finding::finding_card;
pub use self::headline::{headline, revert_headline, HEADLINE_CAP};
pub use self::investigation::{
    attachment_name, investigation_field, wants_attachment, with_investigation, FIELD_INVESTIGATION,
};
pub use self::limits::{enforce_limits, total_chars};
pub use self::plan::plan_text;
pub use self::posture::{
    posture_card, posture_card_with_suppressions, posture_color, posture_request_card,
    SuppressionInForce, FIELD_SUPPRESSED,
};
pub use self::request::request_card;

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
    /// The `custom_id`, from [`super::custom_id::ButtonId::encode`].
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
