//! `/contain <target> [account] [region]`: a responder proposes containment by hand, for an
//! access key id, an instance id or a bucket name.
//!
//! The proposal is the application layer's ([`crate::actions::propose::contain`]: the read-only
//! AWS lookup, the synthetic finding, the one planner, the duplicate check, the request with
//! the invoker as proposer; see its docs for the table of targets). This handler recognizes
//! the target ([`parse_target`], refusing anything ambiguous), reads the options, and words the
//! outcome or the refusal.
//!
//! Translates only: no AWS SDK, no store, no serenity.

use crate::actions::propose::{self as action, ContainFailure, ContainRefusal};
use crate::app::App;
use crate::discord::cards::plan_text;
use crate::discord::text::truncate;
use crate::ids::is_bucket_name;

use crate::actions::propose::ContainTarget;

use super::{code, plain, require_responder, Handled, Invocation, Reply, MAX_CONTENT};

pub const OPTION_TARGET: &str = "target";
pub const OPTION_ACCOUNT: &str = "account";
pub const OPTION_REGION: &str = "region";

/// The sentence on what `/contain` accepts.
pub const ACCEPTED_FORMS: &str =
    "Give an access key id (AKIA or ASIA followed by 16 capital letters or digits), \
    an instance id (i- followed by 8 or 17 hexadecimal digits) or an S3 bucket name \
    (3 to 63 lowercase letters, digits, dots and hyphens).";

/// Recognizes a target, refusing anything ambiguous; `Err` is a sentence for the invoker.
pub fn parse_target(s: &str) -> Result<ContainTarget, String> {
    let t = s.trim();
    let prefix = t.get(..4).map(str::to_ascii_uppercase);
    if matches!(prefix.as_deref(), Some("AKIA" | "ASIA")) {
        let ok = t.len() == 20
            && t.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        return if ok {
            Ok(ContainTarget::AccessKey(t.to_string()))
        } else {
            Err(format!(
                "{} starts like an access key id but is not one. {ACCEPTED_FORMS}",
                code(t)
            ))
        };
    }
    if let Some(hex) = t.strip_prefix("i-") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return if hex.len() == 8 || hex.len() == 17 {
                Ok(ContainTarget::Instance(t.to_ascii_lowercase()))
            } else {
                Err(format!(
                    "{} looks like an instance id but has {} hexadecimal digits, not 8 or 17. {ACCEPTED_FORMS}",
                    code(t),
                    hex.len()
                ))
            };
        }
    }
    if is_bucket_name(t) {
        return Ok(ContainTarget::Bucket(t.to_string()));
    }
    Err(format!(
        "{} is not a target /contain knows. {ACCEPTED_FORMS}",
        code(t)
    ))
}

pub async fn run(app: &App, inv: &Invocation) -> Reply {
    handle(app, inv).await.finish(app, inv)
}

async fn handle(app: &App, inv: &Invocation) -> Handled {
    if let Err(refused) = require_responder(app, inv, "propose containment with /contain") {
        return *refused;
    }
    let Some(raw) = inv.str_opt(OPTION_TARGET) else {
        return Handled::refused("target_form", ACCEPTED_FORMS);
    };
    let target = match parse_target(raw) {
        Ok(t) => t,
        Err(why) => return Handled::refused("target_form", why),
    };
    let account = inv.str_opt(OPTION_ACCOUNT);
    let region = inv.str_opt(OPTION_REGION);
    let proposed = match action::contain(app, &inv.voter(), &target, account, region).await {
        Ok(p) => p,
        Err(refused) => return refusal(app, inv, &target, refused),
    };
    let needed = app.policy.needed(&proposed.plan);
    let who = if app.policy.allow_self_approval {
        "responders"
    } else {
        "responders other than you (you proposed it, so you cannot approve it)"
    };
    let content = format!(
        "Proposed request `{}` to contain {} in {}/{} (finding {}):\n{}\nNothing runs until {needed} approval(s) by {who}. Its card is being posted in the channel.",
        proposed.request_id.simple(),
        plain(&target.to_string()),
        code(&proposed.account),
        code(&proposed.region),
        code(&proposed.finding.id),
        plan_text(&proposed.plan),
    );
    Handled::done(Reply::ephemeral(truncate(&content, MAX_CONTENT)))
        .finding(proposed.finding.id)
        .request(proposed.request_id)
}

/// The action's refusal in `/contain`'s words.
fn refusal(
    app: &App,
    inv: &Invocation,
    target: &ContainTarget,
    refused: ContainRefusal,
) -> Handled {
    match refused {
        ContainRefusal::NotResponder(_) => {
            match require_responder(app, inv, "propose containment with /contain") {
                Err(refused) => *refused,
                Ok(()) => Handled::refused(super::RULE_RESPONDER, "Only responders may propose containment."),
            }
        }
        ContainRefusal::RegionNotAllowed { region, allowed } => Handled::refused(
            "aws.regions",
            format!(
                "hanko does not act in region {}: the configured regions (aws.regions) are {}.",
                code(&region),
                allowed.join(", ")
            ),
        ),
        ContainRefusal::NoRegion => Handled::refused(
            "aws.regions",
            "No region is configured (aws.regions), so hanko cannot act anywhere.",
        ),
        ContainRefusal::AccountForm(a) => Handled::refused(
            "account_form",
            format!("{} is not an AWS account id (12 digits).", code(&a)),
        ),
        ContainRefusal::AccountNotAllowed(account) => Handled::refused(
            "aws.accounts",
            format!(
                "hanko may not act in account {}: it is not listed in aws.accounts.",
                code(&account)
            ),
        ),
        ContainRefusal::Outside(refusal) => Handled::refused(
            refusal.code(),
            format!("hanko will not act there: {refusal}."),
        ),
        ContainRefusal::OwnerUnknown(key) => Handled::refused(
            "target_owner_unknown",
            format!(
                "AWS does not say which IAM user owns {}, so hanko cannot contain it by hand (a temporary ASIA key is not tied to a user this way); contain the user or role named in the finding's card instead.",
                code(&key)
            ),
        ),
        ContainRefusal::BucketElsewhere { bucket, actual, region } => Handled::refused(
            "bucket_region",
            format!(
                "Bucket {} is in region {}, not {}: run /contain again with region:{}.",
                code(&bucket),
                code(&actual),
                code(&region),
                plain(&actual)
            ),
        ),
        ContainRefusal::NotFound { what, operation, code: aws_code } => Handled::refused(
            "target_not_found",
            format!(
                "AWS does not know {} ({} answered {}).",
                plain(&what),
                operation,
                aws_code.as_deref().unwrap_or("not found")
            ),
        ),
        ContainRefusal::Forbidden { what, operation } => Handled::refused(
            "aws_permission",
            format!(
                "hanko is not allowed to look up {}: {} was denied. Its role needs that permission (see config/iam-policy.json).",
                plain(&what),
                operation
            ),
        ),
        ContainRefusal::NothingToPropose { notes } => Handled::refused(
            "playbook",
            truncate(
                &format!(
                    "Nothing to propose for {}: {}",
                    plain(&target.to_string()),
                    plain(&notes.join("; "))
                ),
                MAX_CONTENT,
            ),
        ),
        ContainRefusal::Covered { request, state, finding_id } => Handled::refused(
            "duplicate",
            format!(
                "Request `{}` ({state}) already covers {}; vote on its card (/finding id:{}).",
                request.simple(),
                plain(&target.to_string()),
                plain(&finding_id)
            ),
        )
        .request(request),
        ContainRefusal::Failed { doing, error, finding } => {
            let handled = match &error {
                ContainFailure::Aws(e) => Handled::failed("contain", &doing, e),
                ContainFailure::Store(e) => Handled::failed("contain", &doing, e),
                ContainFailure::TimedOut(_) => Handled::failed("contain", &doing, &error),
            };
            match finding {
                Some(f) => handled.finding(f),
                None => handled,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_recognized_and_ambiguity_refused() {
        use ContainTarget::*;
        let table: &[(&str, Option<ContainTarget>)] = &[
            (
                "AKIAIOSFODNN7EXAMPLE",
                Some(AccessKey("AKIAIOSFODNN7EXAMPLE".into())),
            ),
            (
                "  ASIAIOSFODNN7EXAMPLE ",
                Some(AccessKey("ASIAIOSFODNN7EXAMPLE".into())),
            ),
            ("AKIAIOSFODNN7EXAMPL", None),
            ("akiaiosfodnn7example", None),
            ("AKIAIOSFODNN7EXAMPLe", None),
            ("AIDAIOSFODNN7EXAMPLE", None),
            ("i-0123abcd", Some(Instance("i-0123abcd".into()))),
            (
                "i-0123456789abcdef0",
                Some(Instance("i-0123456789abcdef0".into())),
            ),
            (
                "i-0123456789ABCDEF0",
                Some(Instance("i-0123456789abcdef0".into())),
            ),
            ("i-0123abc", None),
            ("i-0123456789abcdef", None),
            ("i-logs", Some(Bucket("i-logs".into()))),
            (
                "my-bucket.example",
                Some(Bucket("my-bucket.example".into())),
            ),
            ("ab", None),
            ("My-Bucket", None),
            ("bucket_name", None),
            ("-bucket", None),
            ("a..b", None),
            ("192.168.0.1", None),
            ("xn--bucket", None),
            ("logs-s3alias", None),
            ("arn:aws:s3:::bucket", None),
            ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None),
            ("", None),
        ];
        for (input, want) in table {
            let got = parse_target(input);
            match want {
                Some(t) => assert_eq!(got.as_ref(), Ok(t), "{input}"),
                None => {
                    let why = got.expect_err(input);
                    assert!(why.contains("AKIA or ASIA"), "{input}: {why}");
                }
            }
        }
    }
}
