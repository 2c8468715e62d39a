//! IAM containment steps: deactivate one access key, revoke a user's or a role's older sessions,
//! quarantine a user. Each has capture, apply, verify and revert (see the step contract in
//! [`crate::aws`]).
//!
//! Scope: a step touches exactly the key, user or role its parameters name, and only the inline
//! policy named in them; never the principal's other keys or policies. Keys are deactivated,
//! never deleted (the id is what CloudTrail queries need).
//!
//! May use `aws-sdk-iam` and the core plan types; never imports sled or serenity.
//!
//! Parameters (`step.parameters`, falling back on `step.target`):
//! - `DeactivateAccessKey`: `{"UserName", "AccessKeyId", "Status": "Inactive"}`
//! - `RevokeUserSessions` / `QuarantineUser`: `{"UserName", "PolicyName"}`
//! - `RevokeRoleSessions`: `{"RoleName", "PolicyName"}`
//!
//! Every `apply` result carries what `revert` needs (the prior state and what hanko put), so
//! revert works from the result alone.

use aws_sdk_iam::types::StatusType;
use aws_sdk_iam::Client;
use chrono::SecondsFormat;
use serde_json::{json, Value};

use super::error::{absent_as_none, classify};
use super::{dry_run_result, dry_run_revert, nothing, nothing_to_verify, prior_of};
use super::{AwsError, Captured, ErrorClass, RevertOutcome, StepCtx};
use super::{QUARANTINE_USER_POLICY, SESSION_REVOKE_POLICY};
use crate::plan::{Action, Step, Target};

/// Said with every IAM change: enforcement is eventually consistent.
pub const PROPAGATION_NOTE: &str =
    "IAM changes take a few minutes to propagate: requests already under way may still succeed \
     for a short while";

const LIST_ACCESS_KEYS: &str = "iam:ListAccessKeys";
const UPDATE_ACCESS_KEY: &str = "iam:UpdateAccessKey";
const STATUS_ACTIVE: &str = "Active";
const STATUS_INACTIVE: &str = "Inactive";

pub async fn capture(client: &Client, step: &Step, ctx: &StepCtx) -> Result<Captured, AwsError> {
    match step.action {
        Action::DeactivateAccessKey => {
            let key = KeyRef::of(step)?;
            let status = key.status(client).await?.ok_or_else(|| key.not_found())?;
            Ok(Captured {
                already_in_target_state: status == STATUS_INACTIVE,
                prior: json!({
                    "UserName": key.user,
                    "AccessKeyId": key.id,
                    "Status": status,
                }),
            })
        }
        _ => {
            let inline = InlinePolicy::of(step)?;
            let existing = inline.get(client).await?;
            let wanted = inline.document(ctx);
            let already = existing
                .as_deref()
                .is_some_and(|doc| same_document(doc, &wanted));
            Ok(Captured {
                already_in_target_state: already,
                prior: inline.prior_json(existing),
            })
        }
    }
}

pub async fn apply(
    client: &Client,
    step: &Step,
    captured: &Captured,
    ctx: &StepCtx,
) -> Result<Value, AwsError> {
    match step.action {
        Action::DeactivateAccessKey => {
            let key = KeyRef::of(step)?;
            let parameters = json!({
                "UserName": key.user,
                "AccessKeyId": key.id,
                "Status": STATUS_INACTIVE,
            });
            if ctx.dry_run {
                return Ok(dry_run_result(UPDATE_ACCESS_KEY, parameters));
            }
            client
                .update_access_key()
                .user_name(&key.user)
                .access_key_id(&key.id)
                .status(StatusType::Inactive)
                .send()
                .await
                .map_err(|e| classify(&e, UPDATE_ACCESS_KEY, &key.resource()))?;
            let prior_status = captured.prior.get("Status").cloned().unwrap_or(Value::Null);
            Ok(json!({
                "UserName": key.user,
                "AccessKeyId": key.id,
                "Status": STATUS_INACTIVE,
                "prior_status": prior_status,
                "note": PROPAGATION_NOTE,
            }))
        }
        _ => {
            let inline = InlinePolicy::of(step)?;
            let document = inline.document(ctx);
            let mut parameters = inline.names_json();
            parameters["PolicyDocument"] = Value::String(document.clone());
            if ctx.dry_run {
                return Ok(dry_run_result(inline.principal.put_op(), parameters));
            }
            inline.put(client, &document).await?;
            let mut result = inline.names_json();
            result["document"] = Value::String(document);
            result["prior"] = captured.prior.clone();
            result["note"] = Value::String(PROPAGATION_NOTE.into());
            if let Some(cutoff) = inline.cutoff(ctx) {
                result["token_issue_time_cutoff"] = Value::String(cutoff);
                result["message"] = Value::String(format!(
                    "sessions of {} issued before the cut-off are denied; {PROPAGATION_NOTE}",
                    inline.principal
                ));
            }
            Ok(result)
        }
    }
}

pub async fn verify(
    client: &Client,
    step: &Step,
    result: &Value,
    ctx: &StepCtx,
) -> Result<(), AwsError> {
    if nothing_to_verify(result, ctx) {
        // Nothing was changed, so there is nothing to read back.
        return Ok(());
    }
    match step.action {
        Action::DeactivateAccessKey => {
            let key = KeyRef::of(step)?;
            match key.status(client).await? {
                Some(s) if s == STATUS_INACTIVE => Ok(()),
                Some(s) => Err(AwsError::local(
                    ErrorClass::Retryable,
                    LIST_ACCESS_KEYS,
                    key.resource(),
                    format!("the key still reads as {s} after UpdateAccessKey"),
                )),
                None => Err(key.not_found()),
            }
        }
        _ => {
            let inline = InlinePolicy::of(step)?;
            let put = result
                .get("document")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    AwsError::local(
                        ErrorClass::Other,
                        inline.principal.get_op(),
                        inline.resource(),
                        "the step result has no policy document to verify",
                    )
                })?;
            match inline.get(client).await? {
                Some(doc) if same_document(&doc, put) => Ok(()),
                Some(_) => Err(AwsError::local(
                    ErrorClass::Retryable,
                    inline.principal.get_op(),
                    inline.resource(),
                    "the inline policy does not read back as the document hanko put",
                )),
                None => Err(AwsError::local(
                    ErrorClass::Retryable,
                    inline.principal.get_op(),
                    inline.resource(),
                    "the inline policy does not read back yet",
                )),
            }
        }
    }
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
    let prior = prior_of(result, captured);
    match step.action {
        Action::DeactivateAccessKey => {
            let key = KeyRef::of(step)?;
            let prior_status = result
                .get("prior_status")
                .and_then(Value::as_str)
                .or_else(|| prior.get("Status").and_then(Value::as_str));
            match prior_status {
                Some(STATUS_ACTIVE) => {}
                Some(_) => return Ok(nothing("the key was already Inactive before the step")),
                None => return Ok(nothing("the step recorded no prior key status")),
            }
            match key.status(client).await? {
                None => Ok(drifted(format!(
                    "access key {} no longer exists; nothing to re-activate",
                    key.id
                ))),
                // Active again, as captured (a retried or resumed revert already re-activated
                // it): the captured state is back.
                Some(s) if ctx.revert_retry && s == STATUS_ACTIVE => Ok(RevertOutcome::Restored),
                Some(s) if s != STATUS_INACTIVE => Ok(drifted(format!(
                    "access key {} is {s} now, not Inactive as hanko left it; left alone",
                    key.id
                ))),
                Some(_) => {
                    if ctx.dry_run {
                        return Ok(nothing("dry run: would set the key Active again"));
                    }
                    client
                        .update_access_key()
                        .user_name(&key.user)
                        .access_key_id(&key.id)
                        .status(StatusType::Active)
                        .send()
                        .await
                        .map_err(|e| classify(&e, UPDATE_ACCESS_KEY, &key.resource()))?;
                    Ok(RevertOutcome::Restored)
                }
            }
        }
        _ => {
            let inline = InlinePolicy::of(step)?;
            let Some(put) = result.get("document").and_then(Value::as_str) else {
                return Ok(nothing("the step put no policy (it was already in place)"));
            };
            let current = inline.get(client).await?;
            // The prior state, when it is back already (a retried or resumed revert restored
            // it): no policy when there was none, the prior document when there was one.
            let prior_document = prior
                .get("exists")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                .then(|| prior.get("document").and_then(Value::as_str))
                .flatten();
            let already_restored = match (&current, prior_document) {
                (None, None) => true,
                (Some(doc), Some(old)) => same_document(doc, old) && !same_document(doc, put),
                _ => false,
            };
            if ctx.revert_retry && already_restored {
                return Ok(RevertOutcome::Restored);
            }
            match current {
                None => Ok(drifted(format!(
                    "the inline policy {} on {} was removed since hanko put it",
                    inline.policy_name, inline.principal
                ))),
                Some(doc) if !same_document(&doc, put) => Ok(drifted(format!(
                    "the inline policy {} on {} was changed since hanko put it; left alone",
                    inline.policy_name, inline.principal
                ))),
                Some(_) => {
                    let restore = prior
                        .get("exists")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .then(|| prior.get("document").and_then(Value::as_str))
                        .flatten();
                    if ctx.dry_run {
                        return Ok(nothing(
                            "dry run: would restore the prior inline policy state",
                        ));
                    }
                    match restore {
                        Some(old) => inline.put(client, old).await?,
                        None => inline.delete(client).await?,
                    }
                    Ok(RevertOutcome::Restored)
                }
            }
        }
    }
}

/// The one access key a `DeactivateAccessKey` step is about.
struct KeyRef {
    user: String,
    id: String,
}

impl KeyRef {
    #[allow(clippy::result_large_err)] // AwsError is the step contract's error type; boxing it only here buys nothing
    fn of(step: &Step) -> Result<KeyRef, AwsError> {
        let (t_user, t_id) = match &step.target {
            Target::AccessKey {
                user_name,
                access_key_id,
            } => (Some(user_name.as_str()), Some(access_key_id.as_str())),
            _ => (None, None),
        };
        Ok(KeyRef {
            user: param(step, "UserName", t_user)?,
            id: param(step, "AccessKeyId", t_id)?,
        })
    }

    fn resource(&self) -> String {
        format!("access key {} of user {}", self.id, self.user)
    }

    fn not_found(&self) -> AwsError {
        AwsError::local(
            ErrorClass::NotFound,
            LIST_ACCESS_KEYS,
            self.resource(),
            format!("user {} has no access key {}", self.user, self.id),
        )
    }

    /// The key's status from `ListAccessKeys` (only this key is looked at); `None` when the
    /// user has no such key.
    async fn status(&self, client: &Client) -> Result<Option<String>, AwsError> {
        let mut marker: Option<String> = None;
        loop {
            let out = client
                .list_access_keys()
                .user_name(&self.user)
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| classify(&e, LIST_ACCESS_KEYS, &self.resource()))?;
            if let Some(k) = out
                .access_key_metadata()
                .iter()
                .find(|k| k.access_key_id() == Some(self.id.as_str()))
            {
                return Ok(Some(
                    k.status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                ));
            }
            match out.marker() {
                Some(m) if out.is_truncated() => marker = Some(m.to_string()),
                _ => return Ok(None),
            }
        }
    }
}

/// The user or role an inline policy is on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principal {
    User(String),
    Role(String),
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::User(n) => write!(f, "user {n}"),
            Principal::Role(n) => write!(f, "role {n}"),
        }
    }
}

impl Principal {
    fn get_op(&self) -> &'static str {
        match self {
            Principal::User(_) => "iam:GetUserPolicy",
            Principal::Role(_) => "iam:GetRolePolicy",
        }
    }

    fn put_op(&self) -> &'static str {
        match self {
            Principal::User(_) => "iam:PutUserPolicy",
            Principal::Role(_) => "iam:PutRolePolicy",
        }
    }

    fn delete_op(&self) -> &'static str {
        match self {
            Principal::User(_) => "iam:DeleteUserPolicy",
            Principal::Role(_) => "iam:DeleteRolePolicy",
        }
    }
}

/// What the deny-all policy of a step denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deny {
    /// Sessions whose token was issued before the step ran.
    OlderSessions,
    /// Everything (quarantine).
    Everything,
}

/// The inline policy a session-revocation or quarantine step puts on one principal.
struct InlinePolicy {
    principal: Principal,
    policy_name: String,
    deny: Deny,
}

impl InlinePolicy {
    #[allow(clippy::result_large_err)] // AwsError is the step contract's error type; boxing it only here buys nothing
    fn of(step: &Step) -> Result<InlinePolicy, AwsError> {
        let (principal, default_name, deny) = match step.action {
            Action::RevokeUserSessions | Action::QuarantineUser => {
                let t = match &step.target {
                    Target::User { user_name } | Target::AccessKey { user_name, .. } => {
                        Some(user_name.as_str())
                    }
                    _ => None,
                };
                let user = param(step, "UserName", t)?;
                if step.action == Action::QuarantineUser {
                    (
                        Principal::User(user),
                        QUARANTINE_USER_POLICY,
                        Deny::Everything,
                    )
                } else {
                    (
                        Principal::User(user),
                        SESSION_REVOKE_POLICY,
                        Deny::OlderSessions,
                    )
                }
            }
            Action::RevokeRoleSessions => {
                let t = match &step.target {
                    Target::Role { role_name } => Some(role_name.as_str()),
                    _ => None,
                };
                let role = param(step, "RoleName", t)?;
                (
                    Principal::Role(role),
                    SESSION_REVOKE_POLICY,
                    Deny::OlderSessions,
                )
            }
            other => {
                return Err(AwsError::invalid_step(
                    step,
                    format!("{other} is not an IAM step"),
                ))
            }
        };
        Ok(InlinePolicy {
            principal,
            policy_name: param(step, "PolicyName", Some(default_name))?,
            deny,
        })
    }

    fn resource(&self) -> String {
        format!("inline policy {} of {}", self.policy_name, self.principal)
    }

    /// `{"UserName"|"RoleName", "PolicyName"}`.
    fn names_json(&self) -> Value {
        match &self.principal {
            Principal::User(n) => json!({"UserName": n, "PolicyName": self.policy_name}),
            Principal::Role(n) => json!({"RoleName": n, "PolicyName": self.policy_name}),
        }
    }

    /// `{"PolicyName", "exists", "document"}`: the state revert restores.
    fn prior_json(&self, existing: Option<String>) -> Value {
        let mut v = self.names_json();
        v["exists"] = Value::Bool(existing.is_some());
        v["document"] = existing.map(Value::String).unwrap_or(Value::Null);
        v
    }

    /// The `aws:TokenIssueTime` cut-off, for session revocation.
    fn cutoff(&self, ctx: &StepCtx) -> Option<String> {
        (self.deny == Deny::OlderSessions)
            .then(|| ctx.now.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    /// The policy document hanko puts.
    fn document(&self, ctx: &StepCtx) -> String {
        let statement = match self.cutoff(ctx) {
            Some(cutoff) => json!({
                "Sid": "HankoRevokeOlderSessions",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": cutoff}},
            }),
            None => json!({
                "Sid": "HankoQuarantine",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
            }),
        };
        json!({"Version": "2012-10-17", "Statement": [statement]}).to_string()
    }

    /// The current document (decoded), or `None` when the principal has no inline policy of
    /// that name.
    async fn get(&self, client: &Client) -> Result<Option<String>, AwsError> {
        let op = self.principal.get_op();
        let resource = self.resource();
        let raw = match &self.principal {
            Principal::User(user) => {
                let res = client
                    .get_user_policy()
                    .user_name(user)
                    .policy_name(&self.policy_name)
                    .send()
                    .await;
                match absent_as_none(res, |s| s.is_no_such_entity_exception(), op, &resource)? {
                    Some(out) => out.policy_document().to_string(),
                    None => return Ok(None),
                }
            }
            Principal::Role(role) => {
                let res = client
                    .get_role_policy()
                    .role_name(role)
                    .policy_name(&self.policy_name)
                    .send()
                    .await;
                match absent_as_none(res, |s| s.is_no_such_entity_exception(), op, &resource)? {
                    Some(out) => out.policy_document().to_string(),
                    None => return Ok(None),
                }
            }
        };
        Ok(Some(decode_document(&raw)))
    }

    async fn put(&self, client: &Client, document: &str) -> Result<(), AwsError> {
        let op = self.principal.put_op();
        match &self.principal {
            Principal::User(user) => client
                .put_user_policy()
                .user_name(user)
                .policy_name(&self.policy_name)
                .policy_document(document)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, op, &self.resource())),
            Principal::Role(role) => client
                .put_role_policy()
                .role_name(role)
                .policy_name(&self.policy_name)
                .policy_document(document)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, op, &self.resource())),
        }
    }

    async fn delete(&self, client: &Client) -> Result<(), AwsError> {
        let op = self.principal.delete_op();
        match &self.principal {
            Principal::User(user) => client
                .delete_user_policy()
                .user_name(user)
                .policy_name(&self.policy_name)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, op, &self.resource())),
            Principal::Role(role) => client
                .delete_role_policy()
                .role_name(role)
                .policy_name(&self.policy_name)
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(&e, op, &self.resource())),
        }
    }
}

/// A string parameter of the step, or the target's value when the parameters lack it.
#[allow(clippy::result_large_err)] // AwsError is the step contract's error type; boxing it only here buys nothing
fn param(step: &Step, key: &str, fallback: Option<&str>) -> Result<String, AwsError> {
    step.parameters
        .get(key)
        .and_then(Value::as_str)
        .or(fallback)
        .map(str::to_string)
        .ok_or_else(|| AwsError::invalid_step(step, format!("the step's parameters lack {key}")))
}

fn drifted(reason: String) -> RevertOutcome {
    RevertOutcome::Drifted { reason }
}

/// Two policy documents say the same thing (compared as JSON, so formatting does not matter).
fn same_document(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// IAM returns policy documents URL-encoded (RFC 3986); some emulators do not. A document that
/// already parses as JSON is kept as it is.
pub fn decode_document(raw: &str) -> String {
    if serde_json::from_str::<Value>(raw).is_ok() {
        return raw.to_string();
    }
    percent_decode(raw).unwrap_or_else(|| raw.to_string())
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the bytes are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ctx() -> StepCtx {
        StepCtx {
            request_id: uuid::Uuid::nil(),
            finding_id: String::new(),
            step_index: 1,
            now: chrono::Utc
                .with_ymd_and_hms(2026, 11, 28, 16, 0, 0)
                .unwrap(),
            dry_run: false,
            approvers: Vec::new(),
            revert_retry: false,
            fresh_capture: false,
        }
    }

    #[test]
    fn decodes_url_encoded_documents() {
        let raw = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(
            decode_document(raw),
            r#"{"Version":"2012-10-17","Statement":[]}"#
        );
        let plain = r#"{"a": "100%"}"#;
        assert_eq!(decode_document(plain), plain);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn session_revocation_document_has_the_cutoff() {
        let step = Step::new(
            Action::RevokeUserSessions,
            Target::User {
                user_name: "alice".into(),
            },
            json!({"UserName": "alice", "PolicyName": SESSION_REVOKE_POLICY}),
        );
        let inline = InlinePolicy::of(&step).unwrap();
        let doc: Value = serde_json::from_str(&inline.document(&ctx())).unwrap();
        assert_eq!(
            doc,
            json!({"Version": "2012-10-17", "Statement": [{
                "Sid": "HankoRevokeOlderSessions", "Effect": "Deny", "Action": "*", "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-11-28T16:00:00Z"}}}]})
        );
    }

    #[test]
    fn parameters_fall_back_on_the_target() {
        let step = Step::new(
            Action::RevokeRoleSessions,
            Target::Role {
                role_name: "web".into(),
            },
            json!({}),
        );
        let inline = InlinePolicy::of(&step).unwrap();
        assert_eq!(inline.principal, Principal::Role("web".into()));
        assert_eq!(inline.policy_name, SESSION_REVOKE_POLICY);
        let bad = Step::new(
            Action::DeactivateAccessKey,
            Target::Role {
                role_name: "web".into(),
            },
            json!({"UserName": "alice"}),
        );
        let err = KeyRef::of(&bad).err().unwrap();
        assert_eq!(err.message, "the step's parameters lack AccessKeyId");
    }

    #[test]
    fn prior_comes_from_result_or_capture() {
        let captured = json!({"prior": {"Status": "Active"}, "already_in_target_state": false});
        assert_eq!(
            prior_of(&json!({}), &captured),
            &json!({"Status": "Active"})
        );
        let bare = json!({"Status": "Inactive"});
        assert_eq!(prior_of(&Value::Null, &bare), &bare);
        let result = json!({"prior": {"exists": false}});
        assert_eq!(prior_of(&result, &bare), &json!({"exists": false}));
    }
}
