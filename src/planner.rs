//! The one planner: where hanko may act, and the plan every path shows or proposes.
//!
//! Owns the rule "hanko acts only in an account it has proved it is in, and only inside the
//! allow-lists": its own account (proved by `sts:GetCallerIdentity`, asked once and cached by
//! [`ClientFactory`]), or any account reached through `aws.role_arn_template`; and only accounts
//! in `aws.accounts` (when set) and regions in `aws.regions`. Everything else is refused with a
//! [`Refusal`] whose text says why and what to set.
//!
//! The same rule is applied at every stage, so a card never shows steps hanko would refuse:
//!
//! * **plan time**: [`plan`] (a finding) and [`restrict`] (a plan built elsewhere: posture
//!   remediation, a suppression, a revert) turn a plan hanko may not run into a notify-only
//!   plan whose note is the refusal. Every proposer and every card goes through them: ingest
//!   (`pipeline`), the outbox's finding card, `/finding`, `/findings`, `/contain`, posture
//!   Suppress and Remediate, Revert, and `hanko drill`;
//! * **vote time**: [`crate::app::App::refusal_now`] before an approval is recorded ([`crate::actions::vote`]);
//! * **in the engine**: [`engine_refusal`] before the first mutating call, in case a stored plan
//!   predates a change of the config (see [`crate::engine`]); [`ClientFactory::clients`] itself
//!   refuses an account it has no credentials for.
//!
//! The pure part ([`Scope`], [`check`], [`plan`], [`restrict`]) takes the proven reach as data.
//! The async part ([`prove`]) asks STS once (with a timeout) and lets the factory cache the
//! answer. When the lookup fails, hanko fails closed without making the failure permanent: the
//! plan is notify-only with a note saying why, the failure is not cached, and the next update of
//! the finding (or `/contain`, or a vote) asks again and plans anew.
//!
//! May use: finding, plan, playbooks, config, aws (the client factory). Never serenity or
//! sled.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::aws::error::{AwsError, ErrorClass};
use crate::aws::ClientFactory;
use crate::config::AwsSettings;
use crate::finding::Finding;
use crate::plan::{self, Plan};
use crate::playbooks::Playbooks;

/// How long an own-account lookup (`sts:GetCallerIdentity`) may take before hanko plans without
/// it (fail closed, retried next time).
pub const PROVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest time between two background own-account lookups started by [`reach_known`].
pub const LOOKUP_RETRY: Duration = Duration::from_secs(30);

/// The allow-lists of the config (`aws.regions`, `aws.accounts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Regions hanko acts in; `None`: any region (a CLI run without `--config`).
    pub regions: Option<Vec<String>>,
    /// Accounts hanko acts in; `None`: any account it can reach.
    pub accounts: Option<BTreeSet<String>>,
}

impl Limits {
    /// The allow-lists of `aws`.
    pub fn of(aws: &AwsSettings) -> Limits {
        Limits {
            regions: Some(aws.regions.clone()),
            accounts: aws.accounts.clone(),
        }
    }
}

/// Which account hanko's own credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnAccount {
    /// `sts:GetCallerIdentity` answered with this account.
    Proven(String),
    /// Not known (yet): why. hanko acts nowhere without a role template until it is.
    Unproven(String),
}

/// The accounts hanko can prove it reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub own_account: OwnAccount,
    /// `aws.role_arn_template` is set: every other account is reached through its role
    /// (`sts:AssumeRole` at execution; a missing role fails the steps there).
    pub role_template: bool,
}

/// Everything the rule needs: the allow-lists and the proven reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub limits: Limits,
    pub reach: Reach,
}

/// Why hanko will not act in an account and region. The text is the plan's note (after
/// "notify only: "), the answer to a refused vote, and the message of a refused step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the plan does not name its AWS account, and hanko never guesses where to act")]
    NoAccount,
    #[error("region {region} is not in aws.regions ({allowed}), so hanko does not act there; add it to aws.regions to act in it")]
    RegionNotAllowed { region: String, allowed: String },
    #[error("account {account} is not in aws.accounts, so hanko does not act there")]
    AccountNotAllowed { account: String },
    #[error("hanko has no role in account {account}; set aws.role_arn_template (its own credentials are for account {own})")]
    NoRole { account: String, own: String },
    #[error("hanko has no role in account {account} and could not prove which account its own credentials belong to ({why}); set aws.role_arn_template, or fix the credentials: the plan is made again on the finding's next update, a vote or /contain")]
    OwnAccountUnproven { account: String, why: String },
}

impl Refusal {
    /// A stable code for audit events.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoAccount => "no_account",
            Refusal::RegionNotAllowed { .. } => "aws.regions",
            Refusal::AccountNotAllowed { .. } => "aws.accounts",
            Refusal::NoRole { .. } => "no_role_in_account",
            Refusal::OwnAccountUnproven { .. } => "own_account_unproven",
        }
    }
}

/// May hanko act in `account` and `region` under `scope`? Pure.
pub fn check(scope: &Scope, account: &str, region: &str) -> Result<(), Refusal> {
    if account.is_empty() {
        return Err(Refusal::NoAccount);
    }
    if let Some(regions) = &scope.limits.regions {
        if !regions.iter().any(|r| r == region) {
            return Err(Refusal::RegionNotAllowed {
                region: region.to_string(),
                allowed: regions.join(", "),
            });
        }
    }
    if let Some(accounts) = &scope.limits.accounts {
        if !accounts.contains(account) {
            return Err(Refusal::AccountNotAllowed {
                account: account.to_string(),
            });
        }
    }
    if scope.reach.role_template {
        return Ok(());
    }
    match &scope.reach.own_account {
        OwnAccount::Proven(own) if own == account => Ok(()),
        OwnAccount::Proven(own) => Err(Refusal::NoRole {
            account: account.to_string(),
            own: own.clone(),
        }),
        OwnAccount::Unproven(why) => Err(Refusal::OwnAccountUnproven {
            account: account.to_string(),
            why: why.clone(),
        }),
    }
}

/// The plan for `finding` under `playbooks`, notify-only where `scope` refuses it. Pure.
pub fn plan(finding: &Finding, playbooks: &Playbooks, scope: &Scope) -> Plan {
    restrict(plan::plan(finding, playbooks), scope)
}

/// `plan` unchanged when hanko may run it; otherwise the same plan without steps, with the
/// refusal as its last note. A plan that already has no steps is returned as it is. Pure.
pub fn restrict(plan: Plan, scope: &Scope) -> Plan {
    if plan.is_notify_only() {
        return plan;
    }
    match check(scope, &plan.account_id, &plan.region) {
        Ok(()) => plan,
        Err(refusal) => {
            // The refusal first; then what the plan would have done, for whoever acts by hand
            // (the steps' own notes, about effects that will not happen here, are dropped).
            let mut notes = vec![format!("notify only: {refusal}")];
            if !plan.steps.is_empty() {
                let steps: Vec<String> = plan.steps.iter().map(|s| s.summary()).collect();
                notes.push(format!("by hand, the plan would be: {}", steps.join("; ")));
            }
            Plan::new(
                plan.finding_id,
                plan.account_id,
                plan.region,
                plan.sample,
                Vec::new(),
                notes,
            )
        }
    }
}

/// The reach as the factory knows it now, without asking AWS (for synchronous callers: the
/// pipeline, card rendering). An unproven own account also starts a lookup in the background
/// when a runtime is there, so the next plan can use it.
pub fn reach_known(clients: &ClientFactory) -> Reach {
    if clients.proven_own_account().is_none() {
        // At most one lookup per [`LOOKUP_RETRY`], however many findings arrive meanwhile: a
        // burst while STS is down must not become a burst of STS calls.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            if clients.claim_own_account_lookup(LOOKUP_RETRY) {
                let clients = clients.clone();
                handle.spawn(async move {
                    prove(&clients, None).await;
                });
            }
        }
    }
    reach_known_quietly(clients)
}

/// The reach, asking STS for the own account if it is not cached yet (at most
/// [`PROVE_TIMEOUT`]). A failure is not cached: the next call asks again. `region` is the
/// region to ask STS in (when `None`, the factory's home region: the first of `aws.regions`).
pub async fn prove(clients: &ClientFactory, region: Option<&str>) -> Reach {
    let region = region
        .map(str::to_string)
        .unwrap_or_else(|| clients.home_region());
    if clients.proven_own_account().is_none() {
        match tokio::time::timeout(PROVE_TIMEOUT, clients.own_account(&region)).await {
            Ok(Ok(account)) => {
                tracing::info!(account_id = %account, "hanko's own account proved (sts:GetCallerIdentity)")
            }
            // `own_account` has noted why for the plans' notes.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not prove hanko's own account; plans are notify-only outside a role template until it can");
            }
            Err(_) => {
                tracing::warn!("sts:GetCallerIdentity did not answer in time; plans are notify-only outside a role template until it does");
                clients.note_own_account_error("sts:GetCallerIdentity did not answer in time");
            }
        }
    }
    reach_known_quietly(clients)
}

/// [`reach_known`] without starting a lookup.
fn reach_known_quietly(clients: &ClientFactory) -> Reach {
    Reach {
        own_account: match clients.proven_own_account() {
            Some(a) => OwnAccount::Proven(a),
            None => OwnAccount::Unproven(
                clients
                    .own_account_error()
                    .unwrap_or_else(|| "sts:GetCallerIdentity has not answered".to_string()),
            ),
        },
        role_template: clients.has_role_template(),
    }
}

/// The engine's check before the first mutating call: the allow-lists it was given and the
/// reach of its client factory, proved now if needed.
pub async fn engine_refusal(
    limits: &Limits,
    clients: &ClientFactory,
    plan: &Plan,
) -> Option<Refusal> {
    if plan.is_notify_only() {
        return None;
    }
    let region = Some(plan.region.as_str()).filter(|r| !r.is_empty());
    let scope = Scope {
        limits: limits.clone(),
        reach: prove(clients, region).await,
    };
    check(&scope, &plan.account_id, &plan.region).err()
}

/// The step error every step of a refused plan fails with (class `forbidden`), so the refusal
/// is in each `StepFailed` event and on the card.
pub fn refused_step_error(refusal: &Refusal, plan: &Plan) -> AwsError {
    AwsError::local(
        ErrorClass::Forbidden,
        "hanko:CheckReach",
        format!("account {} in {}", plan.account_id, plan.region),
        format!("{REFUSED_PREFIX}{refusal}"),
    )
}

/// How the message of a step refused by [`engine_refusal`] begins.
pub const REFUSED_PREFIX: &str = "refused before any AWS call: ";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{deactivate_access_key_step, Plan};

    const OWN: &str = "123456789012";
    const OTHER: &str = "999999999999";

    fn scope(own: OwnAccount, template: bool) -> Scope {
        Scope {
            limits: Limits {
                regions: Some(vec!["us-east-1".into()]),
                accounts: None,
            },
            reach: Reach {
                own_account: own,
                role_template: template,
            },
        }
    }

    fn key_plan(account: &str, region: &str) -> Plan {
        Plan::new(
            "f-1".into(),
            account.into(),
            region.into(),
            false,
            vec![deactivate_access_key_step("erin", "AKIAEXAMPLE")],
            vec!["IAM changes take a few minutes to propagate".into()],
        )
    }

    #[test]
    fn own_account_only_without_a_role_template() {
        let s = scope(OwnAccount::Proven(OWN.into()), false);
        assert_eq!(check(&s, OWN, "us-east-1"), Ok(()));
        let refused = check(&s, OTHER, "us-east-1").unwrap_err();
        assert_eq!(refused.code(), "no_role_in_account");
        assert!(refused
            .to_string()
            .starts_with("hanko has no role in account 999999999999; set aws.role_arn_template"));
        // The template reaches every account, the own one too.
        let t = scope(OwnAccount::Proven(OWN.into()), true);
        assert_eq!(check(&t, OTHER, "us-east-1"), Ok(()));
        assert_eq!(check(&t, OWN, "us-east-1"), Ok(()));
    }

    #[test]
    fn an_unproven_own_account_refuses_everything_but_the_template() {
        let s = scope(OwnAccount::Unproven("timed out".into()), false);
        let refused = check(&s, OWN, "us-east-1").unwrap_err();
        assert_eq!(refused.code(), "own_account_unproven");
        assert!(refused.to_string().contains("timed out"), "{refused}");
        assert!(refused.to_string().contains("next update"), "{refused}");
        let t = scope(OwnAccount::Unproven("timed out".into()), true);
        assert_eq!(check(&t, OTHER, "us-east-1"), Ok(()));
    }

    #[test]
    fn allow_lists_come_first_and_bind_the_template_too() {
        let mut s = scope(OwnAccount::Proven(OWN.into()), true);
        let region = check(&s, OWN, "eu-west-1").unwrap_err();
        assert_eq!(region.code(), "aws.regions");
        assert!(region.to_string().contains("eu-west-1"), "{region}");
        s.limits.accounts = Some([OWN.to_string()].into());
        assert_eq!(
            check(&s, OTHER, "us-east-1").unwrap_err().code(),
            "aws.accounts"
        );
        assert_eq!(check(&s, OWN, "us-east-1"), Ok(()));
        assert_eq!(check(&s, "", "us-east-1"), Err(Refusal::NoAccount));
        // No limits (a CLI run without --config): only the reach decides.
        s.limits = Limits::default();
        assert_eq!(check(&s, OTHER, "eu-west-1"), Ok(()));
    }

    #[test]
    fn restrict_turns_a_refused_plan_into_notify_only_with_the_reason() {
        let s = scope(OwnAccount::Proven(OWN.into()), false);
        let mine = key_plan(OWN, "us-east-1");
        assert_eq!(restrict(mine.clone(), &s), mine);
        let other = restrict(key_plan(OTHER, "us-east-1"), &s);
        assert!(other.is_notify_only());
        assert_eq!(other.notes.len(), 2, "{:?}", other.notes);
        assert_eq!(
            other.notes[0],
            "notify only: hanko has no role in account 999999999999; set aws.role_arn_template (its own credentials are for account 123456789012)"
        );
        // What it would have done, for whoever acts by hand.
        assert!(
            other.notes[1].starts_with("by hand, the plan would be: iam:UpdateAccessKey"),
            "{:?}",
            other.notes
        );
        assert_eq!(other.plan_hash, other.compute_hash());
        let elsewhere = restrict(key_plan(OWN, "eu-west-1"), &s);
        assert!(elsewhere.is_notify_only());
        assert!(
            elsewhere.notes[0].contains("aws.regions"),
            "{:?}",
            elsewhere.notes
        );
    }
}
