//! The config's unit tests: raw reading, validation and the entry points.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveTime};

use super::raw::*;
use super::validation::*;
use super::*;
use crate::approval::Approvals;
use crate::finding::SeverityLabel;
use crate::ids::is_region;
use crate::plan::RiskClass;

const ORIGIN: &str = "/etc/hanko/hanko.toml";

/// A minimal valid config; tests append to or replace parts of it.
const BASE: &str = r#"
[discord]
guild_id = "123456789012345678"
channel_id = "223456789012345678"

[responders]
approver_roles = ["323456789012345678"]

[aws]
regions = ["us-east-1"]
"#;

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new(ORIGIN)) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected Invalid, got {other:?}\n---\n{text}"),
    }
}

fn keys(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|p| p.key).collect()
}

#[test]
fn minimal_config_gets_the_defaults() {
    let s = parse(BASE, Path::new(ORIGIN)).unwrap();
    assert_eq!(
        s.discord.token_source,
        TokenSource::Env("HANKO_DISCORD_TOKEN".into())
    );
    assert_eq!(s.discord.guild_id, 123_456_789_012_345_678);
    assert_eq!(s.discord.channel_id, 223_456_789_012_345_678);
    assert_eq!(s.discord.api_base, None);
    assert_eq!(s.discord.interactions, Interactions::Gateway);
    assert_eq!(s.policy.approvals, Approvals::default());
    assert_eq!(s.policy.ttl, Duration::hours(4));
    assert!(!s.policy.allow_self_approval);
    assert_eq!(
        s.policy.approver_roles,
        BTreeSet::from(["323456789012345678".to_owned()])
    );
    assert_eq!(s.ingest.poll_interval, std::time::Duration::from_secs(60));
    assert_eq!(s.ingest.backfill, Duration::hours(24));
    assert_eq!(s.ingest.min_severity, 4.0);
    assert_eq!(s.ingest.quarantine_max, DEFAULT_QUARANTINE_MAX);
    assert!(s.ingest.guardduty);
    assert!(!s.ingest.securityhub);
    assert_eq!(s.store.path, PathBuf::from("/var/lib/hanko"));
    assert_eq!(s.http.listen, "127.0.0.1:9464".parse().unwrap());
    assert_eq!(s.playbooks_path, None);
    assert_eq!(s.aws.accounts, None);
    assert!(s.aws.may_act_in("999999999999"));
    assert_eq!(s.posture.digest_at, NaiveTime::from_hms_opt(9, 0, 0));
    assert_eq!(s.posture.drop_alert_points, 5.0);
    assert_eq!(s.posture.suppress_risk, RiskClass::Evidence);
    assert_eq!(s.posture.iam3_max_key_age, Duration::days(90));
    assert_eq!(s.posture, PostureSettings::default());
}

#[test]
fn every_key_is_read() {
    let text = r#"
[discord]
token_file = "secrets/discord"
guild_id = "123456789012345678"
channel_id = "223456789012345678"
api_base = "http://127.0.0.1:8080"
interactions = "http"
public_key = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"

[responders]
approver_roles = ["323456789012345678"]
approver_users = ["423456789012345678"]
admin_roles = ["523456789012345678"]

[policy]
approvals = { evidence = 2, contain = 3, disrupt = 4 }
allow_self_approval = true
request_ttl = "30m"

[aws]
regions = ["us-east-1", "eu-west-1"]
role_arn_template = "arn:aws:iam::{account}:role/HankoResponder"
endpoint_url = "http://127.0.0.1:5000"
accounts = ["111111111111"]

[ingest]
guardduty = false
poll_interval = "5m"
backfill = "7d"
min_severity = 7
sqs_queue_url = "https://sqs.us-east-1.amazonaws.com/111111111111/hanko"
securityhub = true
detector_ids = { "eu-west-1" = "abc123" }

[store]
path = "data"

[http]
listen = "[::1]:9000"

[playbooks]
path = "/etc/hanko/playbooks.toml"

[posture]
digest = true
digest_at = "17:45"
drop_alert_points = 2.5
suppress_risk = "contain"
iam3_max_key_age = "45d"
"#;
    let s = parse(text, Path::new(ORIGIN)).unwrap();
    assert_eq!(
        s.discord.token_source,
        TokenSource::File("/etc/hanko/secrets/discord".into())
    );
    assert_eq!(s.discord.api_base.as_deref(), Some("http://127.0.0.1:8080"));
    assert!(s.discord.interactions.is_http());
    assert_eq!(s.responders.admin_roles.len(), 1);
    assert_eq!(
        s.policy.approver_users,
        BTreeSet::from(["423456789012345678".to_owned()])
    );
    assert_eq!(
        s.policy.approvals,
        Approvals {
            evidence: 2,
            contain: 3,
            disrupt: 4
        }
    );
    assert!(s.policy.allow_self_approval);
    assert_eq!(s.policy.ttl, Duration::minutes(30));
    assert_eq!(s.aws.regions, vec!["us-east-1", "eu-west-1"]);
    assert_eq!(
        s.aws.role_arn("222222222222").as_deref(),
        Some("arn:aws:iam::222222222222:role/HankoResponder")
    );
    assert!(s.aws.may_act_in("111111111111"));
    assert!(!s.aws.may_act_in("222222222222"));
    assert_eq!(s.ingest.poll_interval, std::time::Duration::from_secs(300));
    assert_eq!(s.ingest.backfill, Duration::days(7));
    assert_eq!(s.ingest.min_severity, 7.0);
    assert!(!s.ingest.guardduty && s.ingest.securityhub);
    assert_eq!(s.ingest.detector_ids["eu-west-1"], "abc123");
    assert_eq!(s.store.path, PathBuf::from("/etc/hanko/data"));
    assert_eq!(s.http.listen, "[::1]:9000".parse().unwrap());
    assert_eq!(
        s.playbooks_path,
        Some(PathBuf::from("/etc/hanko/playbooks.toml"))
    );
    assert_eq!(
        s.posture,
        PostureSettings {
            digest_at: NaiveTime::from_hms_opt(17, 45, 0),
            drop_alert_points: 2.5,
            suppress_risk: RiskClass::Contain,
            iam3_max_key_age: Duration::days(45),
        }
    );
}

#[test]
fn the_posture_digest_can_be_turned_off_and_whole_points_are_numbers() {
    let s = parse(
        &format!("{BASE}\n[posture]\ndigest = false\ndrop_alert_points = 10\n"),
        Path::new(ORIGIN),
    )
    .unwrap();
    assert_eq!(s.posture.digest_at, None);
    assert_eq!(s.posture.drop_alert_points, 10.0);
    // Off, but a bad time is still reported: it would bite when turned back on.
    let p = problems(&format!(
        "{BASE}\n[posture]\ndigest = false\ndigest_at = \"9am\"\n"
    ));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "posture.digest_at");
    assert_eq!(
        p[0].message,
        "`9am` is not a time of day: write it as HH:MM in UTC, 24-hour, e.g. \"09:00\" or \"17:30\""
    );
    let p = problems(&format!("{BASE}\n[posture]\nsuppress_risk = \"low\"\n"));
    assert_eq!(
        p[0].message,
        "`low` is not a risk class: use evidence, contain or disrupt (their approvers are set in policy.approvals)"
    );
}

#[test]
fn times_of_day() {
    for (text, h, m) in [
        ("00:00", 0, 0),
        ("09:00", 9, 0),
        ("23:59", 23, 59),
        (" 07:05 ", 7, 5),
    ] {
        assert_eq!(
            parse_time_of_day(text),
            Ok(NaiveTime::from_hms_opt(h, m, 0).unwrap()),
            "{text}"
        );
    }
    for bad in [
        "24:00", "12:60", "9:00", "09:0", "0900", "09:00:00", "-1:00", "", "ab:cd", "09:00Z",
    ] {
        assert!(parse_time_of_day(bad).is_err(), "{bad}");
    }
}

/// Each entry: a change to BASE (appended TOML, or a replaced line) and the one problem key
/// it must produce.
#[test]
fn bad_configs_name_their_key() {
    let table: &[(&str, &str, &str)] = &[
        // (replace this, with this, expected key)
        (
            "",
            "[policy]\naprovals = { evidence = 1 }",
            "policy.aprovals",
        ),
        (
            "",
            "[policy]\napprovals = { evidnce = 1 }",
            "policy.approvals.evidnce",
        ),
        (
            "",
            "[policy]\napprovals = { disrupt = 0 }",
            "policy.approvals.disrupt",
        ),
        (
            "",
            "[policy]\napprovals = { contain = 11 }",
            "policy.approvals.contain",
        ),
        ("", "[policy]\napprovals = 2", "policy.approvals"),
        ("", "[policy]\nrequest_ttl = \"1m\"", "policy.request_ttl"),
        ("", "[policy]\nrequest_ttl = \"8d\"", "policy.request_ttl"),
        (
            "",
            "[policy]\nrequest_ttl = \"4 hours\"",
            "policy.request_ttl",
        ),
        ("", "[policy]\nrequest_ttl = 4", "policy.request_ttl"),
        (
            "",
            "[policy]\nallow_self_approval = \"no\"",
            "policy.allow_self_approval",
        ),
        ("", "[polcy]\nrequest_ttl = \"4h\"", "polcy"),
        (
            "",
            "[ingest]\npoll_interval = \"5s\"",
            "ingest.poll_interval",
        ),
        ("", "[ingest]\nbackfill = \"91d\"", "ingest.backfill"),
        ("", "[ingest]\nmin_severity = 11.0", "ingest.min_severity"),
        ("", "[ingest]\nmin_severity = -1", "ingest.min_severity"),
        ("", "[ingest]\nquarantine_max = 0", "ingest.quarantine_max"),
        (
            "",
            "[ingest]\nquarantine_max = 100001",
            "ingest.quarantine_max",
        ),
        (
            "",
            "[ingest]\nsqs_queue_url = \"sqs://queue\"",
            "ingest.sqs_queue_url",
        ),
        (
            "",
            "[ingest]\ndetector_ids = { \"us-west-2\" = \"abc\" }",
            "ingest.detector_ids.us-west-2",
        ),
        ("", "[ingest]\nguardduty = false", "ingest.guardduty"),
        ("", "[http]\nlisten = \"localhost\"", "http.listen"),
        ("", "[http]\nlisten = \"0.0.0.0:99999\"", "http.listen"),
        ("", "[store]\npath = \"\"", "store.path"),
        ("", "[playbooks]\npath = \"\"", "playbooks.path"),
        ("", "[playbooks]\nfile = \"p.toml\"", "playbooks.file"),
        (
            "",
            "[http]\nlisten = \"127.0.0.1:1\"\nport = 1",
            "http.port",
        ),
        ("regions = [\"us-east-1\"]", "regions = []", "aws.regions"),
        ("regions = [\"us-east-1\"]", "", "aws.regions"),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"US-EAST-1\"]",
            "aws.regions[0]",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\", \"useast1\"]",
            "aws.regions[1]",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\", \"us-east-1\"]",
            "aws.regions[1]",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = \"us-east-1\"",
            "aws.regions",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\"]\nrole_arn_template = \"arn:aws:iam::123:role/X\"",
            "aws.role_arn_template",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\"]\nrole_arn_template = \"iam::{account}:role/X\"",
            "aws.role_arn_template",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\"]\nrole_arn_template = \"arn:aws:iam::{account}:role/{name}\"",
            "aws.role_arn_template",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\"]\nendpoint_url = \"127.0.0.1:5000\"",
            "aws.endpoint_url",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\"]\naccounts = [\"1234\"]",
            "aws.accounts[0]",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\"]\naccounts = [123456789012]",
            "aws.accounts",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\"]\naccounts = []",
            "aws.accounts",
        ),
        (
            "regions = [\"us-east-1\"]",
            "regions = [\"us-east-1\"]\nregion = \"us-east-1\"",
            "aws.region",
        ),
        (
            "guild_id = \"123456789012345678\"",
            "guild_id = 123456789012345678",
            "discord.guild_id",
        ),
        (
            "guild_id = \"123456789012345678\"",
            "guild_id = \"12345\"",
            "discord.guild_id",
        ),
        (
            "guild_id = \"123456789012345678\"",
            "guild_id = \"99999999999999999999\"",
            "discord.guild_id",
        ),
        (
            "guild_id = \"123456789012345678\"",
            "guild_id = \"0123456789012345678\"",
            "discord.guild_id",
        ),
        ("guild_id = \"123456789012345678\"", "", "discord.guild_id"),
        (
            "channel_id = \"223456789012345678\"",
            "channel_id = \"my-channel\"",
            "discord.channel_id",
        ),
        (
            "channel_id = \"223456789012345678\"",
            "channel_id = \"223456789012345678\"\napi_base = \"discord.com\"",
            "discord.api_base",
        ),
        (
            "channel_id = \"223456789012345678\"",
            "channel_id = \"223456789012345678\"\ntoken = \"abc\"",
            "discord.token",
        ),
        (
            "channel_id = \"223456789012345678\"",
            "channel_id = \"223456789012345678\"\ntoken_env = \"A\"\ntoken_file = \"/f\"",
            "discord.token_file",
        ),
        (
            "channel_id = \"223456789012345678\"",
            "channel_id = \"223456789012345678\"\ntoken_env = \"MTIz.abc.def\"",
            "discord.token_env",
        ),
        (
            "channel_id = \"223456789012345678\"",
            "channel_id = \"223456789012345678\"\ntoken_file = \"\"",
            "discord.token_file",
        ),
        (
            "channel_id = \"223456789012345678\"",
            "channel_id = \"223456789012345678\"\nchanel = \"1\"",
            "discord.chanel",
        ),
        (
            "approver_roles = [\"323456789012345678\"]",
            "approver_roles = []",
            "responders.approver_roles",
        ),
        (
            "approver_roles = [\"323456789012345678\"]",
            "",
            "responders.approver_roles",
        ),
        (
            "approver_roles = [\"323456789012345678\"]",
            "approver_roles = [\"323456789012345678\", \"x\"]",
            "responders.approver_roles[1]",
        ),
        (
            "approver_roles = [\"323456789012345678\"]",
            "approver_roles = [323456789012345678]",
            "responders.approver_roles",
        ),
        (
            "approver_roles = [\"323456789012345678\"]",
            "approver_roles = [\"323456789012345678\"]\nadmin_roles = [\"1\"]",
            "responders.admin_roles[0]",
        ),
        ("", "[posture]\ndigest_at = \"9:00\"", "posture.digest_at"),
        ("", "[posture]\ndigest_at = \"25:00\"", "posture.digest_at"),
        ("", "[posture]\ndigest_at = 900", "posture.digest_at"),
        ("", "[posture]\ndigest = \"no\"", "posture.digest"),
        (
            "",
            "[posture]\ndrop_alert_points = -1",
            "posture.drop_alert_points",
        ),
        (
            "",
            "[posture]\ndrop_alert_points = 101.0",
            "posture.drop_alert_points",
        ),
        (
            "",
            "[posture]\ndrop_alert_points = \"5\"",
            "posture.drop_alert_points",
        ),
        (
            "",
            "[posture]\nsuppress_risk = \"Evidence!\"",
            "posture.suppress_risk",
        ),
        ("", "[posture]\nsuppress_risk = 1", "posture.suppress_risk"),
        (
            "",
            "[posture]\niam3_max_key_age = \"12h\"",
            "posture.iam3_max_key_age",
        ),
        (
            "",
            "[posture]\niam3_max_key_age = \"3651d\"",
            "posture.iam3_max_key_age",
        ),
        (
            "",
            "[posture]\niam3_max_key_age = 90",
            "posture.iam3_max_key_age",
        ),
        (
            "",
            "[posture]\niam3_max_key_age = \"90 days\"",
            "posture.iam3_max_key_age",
        ),
        (
            "",
            "[posture]\ndigest_time = \"09:00\"",
            "posture.digest_time",
        ),
        ("", "[posture]\nregions = []", "posture.regions"),
    ];
    for (from, to, want) in table {
        let text = if from.is_empty() {
            format!("{BASE}\n{to}\n")
        } else {
            assert!(BASE.contains(from), "{from}");
            BASE.replacen(from, to, 1)
        };
        let got = keys(&text);
        assert_eq!(got, vec![want.to_string()], "\n---\n{text}");
    }
}

#[test]
fn unknown_keys_suggest_the_close_one() {
    let p = problems(&format!(
        "{BASE}\n[policy]\naprovals = {{ evidence = 1 }}\n"
    ));
    assert_eq!(
        p[0].display(Path::new("hanko.toml")).to_string(),
        "hanko.toml: policy.aprovals: unknown key; did you mean policy.approvals?"
    );
    let p = problems(&format!("{BASE}\n[polcy]\n"));
    assert_eq!(p[0].message, "unknown key; did you mean policy?");
    let p = problems(&format!("{BASE}\n[policy]\nregions = []\n"));
    assert_eq!(p[0].key, "policy.regions");
    assert_eq!(p[0].message, "unknown key here; `regions` belongs in [aws]");
    let p = problems(&format!("{BASE}\n[ingest]\nzzzzzz = 1\n"));
    assert!(
        p[0].message
            .starts_with("unknown key; the keys of [ingest] are guardduty, "),
        "{}",
        p[0].message
    );
}

#[test]
fn several_problems_are_reported_together() {
    let text = r#"
[discord]
guild_id = 123
channel_id = "x"
token = "MTIzNDU2.secret.value"

[policy]
aprovals = { evidence = 1 }
approvals = { disrupt = 0, evidnce = 1 }
request_ttl = "1m"

[aws]
regions = []

[ingest]
poll_interval = "1s"
min_severity = "high"

[http]
listen = "nowhere"
"#;
    let mut got = keys(text);
    got.sort();
    let mut want = vec![
        "discord.guild_id",
        "discord.channel_id",
        "discord.token",
        "policy.aprovals",
        "policy.approvals.disrupt",
        "policy.approvals.evidnce",
        "policy.request_ttl",
        "aws.regions",
        "ingest.poll_interval",
        "ingest.min_severity",
        "http.listen",
        "responders.approver_roles",
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn no_message_echoes_a_token() {
    let secret = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.secretsecretsecret";
    for line in [
        format!("token = \"{secret}\""),
        format!("token_env = \"{secret}\""),
    ] {
        let text = BASE.replacen("[discord]", &format!("[discord]\n{line}"), 1);
        let err = parse(&text, Path::new(ORIGIN)).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("secretsecret"), "{shown}");
        assert!(shown.contains("token_env"), "{shown}");
    }
}

/// The public key of a fixed Ed25519 key pair, as the Developer Portal shows one.
fn a_public_key() -> String {
    hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes(),
    )
}

/// 32 bytes that are not an Ed25519 public key (no curve point has this y).
fn not_a_curve_point() -> String {
    let bytes = (0u8..=255)
        .map(|b| [b; 32])
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .expect("some constant 32 bytes are not a point");
    hex::encode(bytes)
}

fn with_discord(lines: &str) -> String {
    BASE.replacen("[discord]", &format!("[discord]\n{lines}"), 1)
}

#[test]
fn http_interactions_read_the_public_key() {
    let key = a_public_key();
    for (lines, want) in [
        (
            "interactions = \"gateway\"".to_string(),
            Interactions::Gateway,
        ),
        (
            format!("public_key = \"{key}\""),
            // Checked, but unused at the gateway.
            Interactions::Gateway,
        ),
        (
            format!(
                "interactions = \"http\"\npublic_key = \"{}\"",
                key.to_uppercase()
            ),
            Interactions::Http {
                public_key: DiscordPublicKey(hex::decode(&key).unwrap().try_into().unwrap()),
            },
        ),
    ] {
        let s = parse(&with_discord(&lines), Path::new(ORIGIN)).unwrap();
        assert_eq!(s.discord.interactions, want, "{lines}");
    }
}

#[test]
fn http_interactions_refuse_a_missing_or_malformed_public_key() {
    let token_like = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.secretsecretsecret";
    let cases: &[(String, &str, &str)] = &[
        (
            "interactions = \"http\"".into(),
            "discord.public_key",
            "missing: with discord.interactions = \"http\" hanko checks every request's signature with the application's public key; copy PUBLIC KEY from the Discord Developer Portal (your application, General Information), 64 hex characters",
        ),
        (
            format!("interactions = \"http\"\npublic_key = \"{token_like}\""),
            "discord.public_key",
            "is not a Discord public key (50 characters): it is 64 hex characters; copy PUBLIC KEY from the Discord Developer Portal (your application, General Information), not the bot token",
        ),
        (
            // 64 characters, not all hex.
            format!("interactions = \"http\"\npublic_key = \"{}\"", "g".repeat(64)),
            "discord.public_key",
            "is not a Discord public key (64 characters): it is 64 hex characters; copy PUBLIC KEY from the Discord Developer Portal (your application, General Information), not the bot token",
        ),
        (
            format!("interactions = \"http\"\npublic_key = \"{}\"", &a_public_key()[..62]),
            "discord.public_key",
            "is not a Discord public key (62 characters): it is 64 hex characters; copy PUBLIC KEY from the Discord Developer Portal (your application, General Information), not the bot token",
        ),
        (
            format!("interactions = \"http\"\npublic_key = \"{}\"", not_a_curve_point()),
            "discord.public_key",
            "is 64 hex characters but not an Ed25519 public key: copy PUBLIC KEY again from the Discord Developer Portal (your application, General Information)",
        ),
        (
            // A bad key is reported at the gateway too: it would bite when the mode changes.
            "public_key = \"abc\"".into(),
            "discord.public_key",
            "is not a Discord public key (3 characters): it is 64 hex characters; copy PUBLIC KEY from the Discord Developer Portal (your application, General Information), not the bot token",
        ),
        (
            format!("interactions = \"webhook\"\npublic_key = \"{}\"", a_public_key()),
            "discord.interactions",
            "`webhook` is not a way to receive interactions: use \"gateway\" (hanko connects to Discord; the default) or \"http\" (Discord POSTs them to hanko's /interactions; set discord.public_key too)",
        ),
        (
            "interactions = true".into(),
            "discord.interactions",
            "",
        ),
    ];
    for (lines, key, message) in cases {
        let p = problems(&with_discord(lines));
        assert_eq!(p.len(), 1, "{lines}: {p:?}");
        assert_eq!(p[0].key, *key, "{lines}");
        if !message.is_empty() {
            assert_eq!(p[0].message, *message, "{lines}");
        }
        let shown = format!("{p:?}");
        assert!(!shown.contains("secretsecret"), "{shown}");
    }
}

#[test]
fn sections_must_be_tables() {
    let p = problems(&format!("policy = 1\n{BASE}"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "policy");
    assert_eq!(
        p[0].message,
        "must be a table (a `[policy]` section), not an integer"
    );
    let p = problems(&format!("token = \"x\"\nregions = []\n{BASE}"));
    assert_eq!(p[0].key, "regions");
    assert_eq!(p[0].message, "unknown key here; `regions` belongs in [aws]");
    assert_eq!(p[1].key, "token");
    assert!(p[1]
        .message
        .starts_with("secrets never go in the config file"));
}

#[test]
fn syntax_errors_have_line_and_column() {
    let text = "[discord]\nguild_id = \"1\nchannel_id = 2\n";
    match parse(text, Path::new(ORIGIN)) {
        Err(ConfigError::Syntax {
            line, column, path, ..
        }) => {
            assert_eq!(path, PathBuf::from(ORIGIN));
            assert_eq!((line, column), (2, 14));
        }
        other => panic!("{other:?}"),
    }
    // Duplicate keys are syntax errors too.
    let dup = format!("{BASE}\n[aws]\nregions = []\n");
    let err = parse(&dup, Path::new(ORIGIN)).unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: 12, .. }),
        "{err:?}"
    );
}

#[test]
fn env_override_of_api_base() {
    let s = parse(BASE, Path::new(ORIGIN)).unwrap();
    let set = |v: &'static str| move |name: &str| (name == API_BASE_ENV).then(|| v.to_owned());
    let s2 = apply_env(s.clone(), Path::new(ORIGIN), set("http://127.0.0.1:4000")).unwrap();
    assert_eq!(
        s2.discord.api_base.as_deref(),
        Some("http://127.0.0.1:4000")
    );
    let unchanged = apply_env(s.clone(), Path::new(ORIGIN), |_| None).unwrap();
    assert_eq!(unchanged, s);
    match apply_env(s, Path::new(ORIGIN), set("127.0.0.1:4000")) {
        Err(ConfigError::Invalid { problems, .. }) => {
            assert_eq!(problems[0].key, "discord.api_base");
            assert!(problems[0].message.contains(API_BASE_ENV));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn edit_distances() {
    for (a, b, d) in [
        ("", "", 0),
        ("aprovals", "approvals", 1),
        ("polcy", "policy", 1),
        ("kitten", "sitting", 3),
        ("abc", "", 3),
    ] {
        assert_eq!(edit_distance(a, b), d, "{a} {b}");
    }
}

#[test]
fn field_names_follow_the_raw_structs() {
    assert_eq!(
        field_names::<RawConfig>(),
        [
            "discord",
            "responders",
            "policy",
            "aws",
            "ingest",
            "store",
            "http",
            "playbooks",
            "posture",
            "audit",
            "notify",
            "investigate"
        ]
    );
    assert_eq!(
        field_names::<RawAudit>(),
        [
            "anchor_bucket",
            "anchor_prefix",
            "anchor_key_file",
            "anchor_interval"
        ]
    );
    assert_eq!(
        field_names::<RawApprovals>(),
        ["evidence", "contain", "disrupt"]
    );
}

/// The test key pair of `tests/fixtures/anchor`, made by openssl.
fn fixture_key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/anchor")
        .join(name)
}

#[test]
fn the_audit_section_is_read_with_its_defaults() {
    let s = parse(BASE, Path::new(ORIGIN)).unwrap();
    assert_eq!(
        s.audit,
        AuditSettings::default(),
        "no [audit]: nothing anchored"
    );
    let s = parse(
        &format!(
            "{BASE}\n[audit]\nanchor_bucket = \"hanko-audit\"\nanchor_key_file = \"anchor.pem\"\n"
        ),
        Path::new(ORIGIN),
    )
    .unwrap();
    assert_eq!(
        s.audit.anchor,
        Some(AnchorSettings {
            bucket: "hanko-audit".into(),
            prefix: String::new(),
            key_file: PathBuf::from("/etc/hanko/anchor.pem"),
            interval: std::time::Duration::from_secs(3600),
        })
    );
    let s = parse(
        &format!("{BASE}\n[audit]\nanchor_bucket = \"hanko-audit\"\nanchor_prefix = \"hanko/prod\"\nanchor_key_file = \"/k/a.pem\"\nanchor_interval = \"15m\"\n"),
        Path::new(ORIGIN),
    )
    .unwrap();
    let a = s.audit.anchor.unwrap();
    assert_eq!(a.prefix, "hanko/prod");
    assert_eq!(a.interval, std::time::Duration::from_secs(900));
}

#[test]
fn bad_audit_keys_name_the_key_and_the_fix() {
    let audit = |lines: &str| problems(&format!("{BASE}\n[audit]\n{lines}\n"));
    let p = audit("anchor_bucket = \"hanko-audit\"");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "audit.anchor_key_file");
    assert!(
        p[0].message.contains("openssl genpkey -algorithm ed25519"),
        "{}",
        p[0].message
    );
    let p = audit("anchor_key_file = \"a.pem\"");
    assert_eq!(p[0].key, "audit.anchor_bucket");
    assert!(p[0].message.starts_with("missing"), "{}", p[0].message);
    let p = audit("anchor_bucket = \"Not_A_Bucket\"\nanchor_key_file = \"a.pem\"");
    assert_eq!(p[0].key, "audit.anchor_bucket");
    assert!(p[0].message.contains("lowercase"), "{}", p[0].message);
    let p = audit("anchor_bucket = \"b-1\"\nanchor_key_file = \"a.pem\"\nanchor_interval = 60");
    assert_eq!(p[0].key, "audit.anchor_interval");
    assert!(
        p[0].message.contains("write durations as strings"),
        "{}",
        p[0].message
    );
    let p =
        audit("anchor_bucket = \"b-1\"\nanchor_key_file = \"a.pem\"\nanchor_interval = \"10s\"");
    assert_eq!(p[0].key, "audit.anchor_interval");
    assert!(
        p[0].message.contains("between 1m and 30d"),
        "{}",
        p[0].message
    );
    let p = audit("anchor_bukcet = \"b-1\"");
    assert_eq!(p[0].key, "audit.anchor_bukcet");
    assert!(
        p[0].message.contains("did you mean audit.anchor_bucket?"),
        "{}",
        p[0].message
    );
    let p = audit("anchor_bucket = \"b-1\"\nanchor_key_file = \"\"");
    assert_eq!(p[0].key, "audit.anchor_key_file");
}

#[test]
fn check_reads_the_anchor_key_file_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hanko.toml");
    let write = |key_file: &Path| {
        std::fs::write(
            &config,
            format!(
                "{BASE}\n[audit]\nanchor_bucket = \"hanko-audit\"\nanchor_key_file = \"{}\"\n",
                key_file.display()
            ),
        )
        .unwrap();
    };
    write(&fixture_key("anchor.pem"));
    assert_eq!(check(&config), Vec::<String>::new());

    write(&dir.path().join("missing.pem"));
    let lines = check(&config);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("audit.anchor_key_file"), "{}", lines[0]);
    assert!(lines[0].contains("no such file"), "{}", lines[0]);

    // A public key (or anything else) where the private key belongs.
    write(&fixture_key("anchor.pub.pem"));
    let lines = check(&config);
    assert!(lines[0].contains("audit.anchor_key_file"), "{}", lines[0]);
    assert!(lines[0].contains("PKCS#8"), "{}", lines[0]);
    let secret = "MC4CAQAwBQYDK2VwBCIE-not-a-key";
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, secret).unwrap();
    write(&garbage);
    let lines = check(&config);
    assert!(lines[0].contains("audit.anchor_key_file"), "{}", lines[0]);
    assert!(!lines.join("\n").contains(secret), "{lines:?}");
}

#[test]
fn raw_structs_alone_deny_unknown_fields() {
    let err = toml::from_str::<RawConfig>("[policy]\naprovals = 1\n").unwrap_err();
    assert!(err.message().contains("aprovals"), "{}", err.message());
}

#[test]
fn regions() {
    for ok in ["us-east-1", "us-gov-west-1", "ap-southeast-2", "cn-north-1"] {
        assert!(is_region(ok), "{ok}");
    }
    for bad in [
        "us-east",
        "useast1",
        "US-EAST-1",
        "us--1",
        "-east-1",
        "us-east-1a",
        "",
    ] {
        assert!(!is_region(bad), "{bad}");
    }
}

#[test]
fn secret_never_prints() {
    let s = Secret("hunter2-token".to_owned());
    assert_eq!(format!("{s}"), "[redacted]");
    assert_eq!(format!("{s:?}"), "[redacted]");
    assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
    assert_eq!(s.expose(), "hunter2-token");
}

#[test]
fn token_from_env() {
    let name = "HANKO_TEST_TOKEN_FROM_ENV_7F3A";
    std::env::set_var(name, "  tok-value-123\n");
    let secret = TokenSource::Env(name.into()).read().unwrap();
    assert_eq!(secret.expose(), "tok-value-123");
    std::env::set_var(name, " ");
    let err = TokenSource::Env(name.into())
        .read()
        .unwrap_err()
        .to_string();
    assert!(err.contains(name) && err.contains("empty"), "{err}");
    std::env::remove_var(name);
}

#[test]
fn token_errors_name_the_variable_or_file_not_a_value() {
    let name = "HANKO_TEST_TOKEN_SURELY_UNSET_91C2";
    let err = TokenSource::Env(name.into())
        .read()
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("the Discord token variable {name} is not set: export the bot token in it, or point discord.token_file at a file holding it")
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = TokenSource::File(missing.clone())
        .read()
        .unwrap_err()
        .to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("no such file"), "{err}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let err = TokenSource::File(empty.clone())
        .read()
        .unwrap_err()
        .to_string();
    assert!(err.contains("is empty"), "{err}");

    let full = dir.path().join("token");
    std::fs::write(&full, "file-token-456\n").unwrap();
    assert_eq!(
        TokenSource::File(full).read().unwrap().expose(),
        "file-token-456"
    );
}

#[test]
fn the_example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hanko.example.toml");
    let s = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.aws.regions, vec!["us-east-1"]);
    assert_eq!(s.policy.approvals, Approvals::default());
    assert_eq!(s.policy.ttl, Duration::hours(4));
    assert_eq!(s.posture, PostureSettings::default());
    assert!(check(&path).is_empty());
}

#[test]
fn check_prints_one_line_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hanko.toml");
    std::fs::write(
        &path,
        format!("{BASE}\n[policy]\nrequest_ttl = \"1m\"\nallow_self = true\n"),
    )
    .unwrap();
    let lines = check(&path);
    let file = path.display().to_string();
    assert_eq!(
        lines,
        vec![
            format!("{file}: policy.allow_self: unknown key; the keys of [policy] are approvals, allow_self_approval, request_ttl"),
            format!("{file}: policy.request_ttl: `1m` is out of range: use between 5m and 7d"),
        ]
    );
    let missing = dir.path().join("absent.toml");
    assert_eq!(
        check(&missing),
        vec![format!(
            "{}: cannot read the config file: no such file",
            missing.display()
        )]
    );
    std::fs::write(&path, format!("{BASE}\n[playbooks]\npath = \"pb.toml\"\n")).unwrap();
    let lines = check(&path);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("playbooks.path"), "{lines:?}");
}

#[test]
fn notify_defaults_page_nobody_and_escalate_after_ten_minutes() {
    let s = parse(BASE, Path::new(ORIGIN)).unwrap();
    assert_eq!(s.notify, NotifySettings::default());
    assert!(s.notify.page_roles.is_empty());
    assert_eq!(s.notify.page_at, SeverityLabel::High);
    assert_eq!(s.notify.escalate_after, Duration::minutes(10));
    assert!(!s.notify.pages(SeverityLabel::Critical, chrono::Utc::now()));
}

#[test]
fn notify_reads_roles_threshold_quiet_hours_and_escalation() {
    let text = format!(
        r#"{BASE}
[notify]
page_roles = ["423456789012345678"]
page_at = "Medium"
quiet = {{ from = "22:00", to = "07:00", below = "critical" }}
escalate_after = "15m"
"#
    );
    let s = parse(&text, Path::new(ORIGIN)).unwrap();
    let n = &s.notify;
    assert_eq!(n.page_roles, BTreeSet::from([423_456_789_012_345_678]));
    assert_eq!(
        n.escalate_roles, n.page_roles,
        "escalation defaults to the page roles"
    );
    assert_eq!(n.page_at, SeverityLabel::Medium);
    assert_eq!(n.escalate_after, Duration::minutes(15));
    let at = |hm: &str| {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-12-04T{hm}:00Z"))
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // Daytime: Medium and up page, Low does not.
    assert!(n.pages(SeverityLabel::Medium, at("12:00")));
    assert!(!n.pages(SeverityLabel::Low, at("12:00")));
    // Night (across midnight): only Critical.
    for night in ["22:00", "23:59", "00:00", "06:59"] {
        assert!(!n.pages(SeverityLabel::High, at(night)), "{night}");
        assert!(n.pages(SeverityLabel::Critical, at(night)), "{night}");
    }
    assert!(n.pages(SeverityLabel::High, at("07:00")), "to is exclusive");
    assert!(n.pages(SeverityLabel::High, at("21:59")));
}

#[test]
fn notify_escalate_roles_may_differ_from_the_page_roles() {
    let text = format!(
        "{BASE}\n[notify]\npage_roles = [\"423456789012345678\"]\nescalate_roles = [\"523456789012345678\"]\n"
    );
    let s = parse(&text, Path::new(ORIGIN)).unwrap();
    assert_eq!(
        s.notify.escalate_roles,
        BTreeSet::from([523_456_789_012_345_678])
    );
}

#[test]
fn notify_problems_name_the_key_and_the_fix() {
    let bad = format!(
        r#"{BASE}
[notify]
page_roles = ["not-a-role"]
page_at = "severe"
quiet = {{ from = "25:00", to = "07:00" }}
escalate_after = "10s"
"#
    );
    let found = problems(&bad);
    let message = |key: &str| {
        found
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("no problem for {key}: {found:?}"))
            .message
            .clone()
    };
    assert!(!message("notify.page_roles[0]").is_empty());
    assert!(message("notify.page_at").contains("low, medium, high or critical"));
    assert!(message("notify.quiet.from").contains("HH:MM"));
    assert!(message("notify.quiet.below").contains("below = \"critical\""));
    assert!(message("notify.escalate_after").contains("between 1m and 7d"));

    let empty = format!(
        "{BASE}\n[notify]\nquiet = {{ from = \"07:00\", to = \"07:00\", below = \"high\" }}\n"
    );
    assert_eq!(keys(&empty), ["notify.quiet.to"]);
    let typo = format!("{BASE}\n[notify]\npage_role = [\"423456789012345678\"]\n");
    let found = problems(&typo);
    assert_eq!(found[0].key, "notify.page_role");
    assert!(
        found[0].message.contains("notify.page_roles"),
        "{}",
        found[0].message
    );
    let quiet_typo = format!(
        "{BASE}\n[notify]\nquiet = {{ from = \"22:00\", to = \"07:00\", bellow = \"high\" }}\n"
    );
    assert!(keys(&quiet_typo).contains(&"notify.quiet.bellow".to_string()));
}

#[test]
fn investigate_defaults_and_limits() {
    let s = parse(BASE, Path::new(ORIGIN)).unwrap();
    assert_eq!(s.investigate, InvestigateSettings::default());
    assert!(s.investigate.enabled);
    assert_eq!(s.investigate.lookback, Duration::hours(24));
    assert_eq!(s.investigate.max_events, 1000);
    let text =
        format!("{BASE}\n[investigate]\nenabled = false\nlookback = \"7d\"\nmax_events = 50\n");
    let s = parse(&text, Path::new(ORIGIN)).unwrap();
    assert!(!s.investigate.enabled);
    assert_eq!(s.investigate.lookback, Duration::days(7));
    assert_eq!(s.investigate.max_events, 50);
    let bad = format!("{BASE}\n[investigate]\nlookback = \"91d\"\nmax_events = 0\n");
    let found = problems(&bad);
    assert_eq!(
        keys(&bad),
        ["investigate.lookback", "investigate.max_events"]
    );
    assert!(
        found[0].message.contains("between 1m and 90d"),
        "{}",
        found[0].message
    );
    assert!(
        found[1].message.contains("from 1 to 10000"),
        "{}",
        found[1].message
    );
}

#[test]
fn the_store_is_sled_by_default_and_dynamodb_when_asked() {
    let s = parse(BASE, Path::new(ORIGIN)).unwrap();
    assert_eq!(s.store.backend, StoreBackend::Sled);
    let text = format!("{BASE}\n[store]\nbackend = \"dynamodb\"\ntable = \"hanko-prod\"\n");
    let s = parse(&text, Path::new(ORIGIN)).unwrap();
    assert_eq!(
        s.store.backend,
        StoreBackend::DynamoDb {
            table: "hanko-prod".into(),
            region: "us-east-1".into()
        },
        "the region defaults to the first of aws.regions"
    );
    let text = format!(
        "{BASE}\n[store]\nbackend = \"dynamodb\"\ntable = \"hanko\"\nregion = \"eu-west-1\"\n"
    );
    let s = parse(&text, Path::new(ORIGIN)).unwrap();
    assert_eq!(
        s.store.backend,
        StoreBackend::DynamoDb {
            table: "hanko".into(),
            region: "eu-west-1".into()
        }
    );
    match s.store.location(Some("http://127.0.0.1:5000")) {
        crate::store::StoreLocation::DynamoDb(t) => {
            assert_eq!(
                (t.table.as_str(), t.region.as_str()),
                ("hanko", "eu-west-1")
            );
        }
        other => panic!("expected DynamoDB, got {other:?}"),
    }
}

#[test]
fn bad_store_keys_name_the_key_and_the_fix() {
    for (section, key, fix) in [
        ("backend = \"postgres\"", "store.backend", "\"dynamodb\""),
        ("backend = \"dynamodb\"", "store.table", "hanko store init"),
        (
            "backend = \"dynamodb\"\ntable = \"a\"",
            "store.table",
            "3 to 255",
        ),
        (
            "backend = \"dynamodb\"\ntable = \"has space\"",
            "store.table",
            "3 to 255",
        ),
        (
            "backend = \"dynamodb\"\ntable = \"hanko\"\nregion = \"mars-1\"",
            "store.region",
            "us-east-1",
        ),
        ("table = \"hanko\"", "store.table", "backend = \"dynamodb\""),
    ] {
        let text = format!("{BASE}\n[store]\n{section}\n");
        let found = problems(&text);
        let p = found
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{section}: expected {key}, got {found:?}"));
        assert!(p.message.contains(fix), "{section}: {}", p.message);
    }
}
