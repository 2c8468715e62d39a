//! hanko's binary on the DynamoDB store (moto), as an operator deploys it: `hanko store init`
//! creates the table (and says so again, idempotently), `hanko run` keeps everything there, a
//! second gateway replica on the same table refuses to start with one clear sentence, and
//! `hanko audit verify|query --config` read the configured table.

use crate::support::discord_fake;
use crate::support::e2e_bot;
use crate::support::hanko_process;
use crate::support::moto;
use crate::support::sqs_events;

use std::path::Path;
use std::time::Instant;

use aws_sdk_iam::types::StatusType;
use chrono::Utc;
use discord_fake::{DiscordFake, MessageSource};
use serde_json::json;

use e2e_bot::{alice, bob, POLL, RESPONDER_ROLE, WAIT};
use hanko_process::{hanko_run, HankoProcess};

const REGION: &str = "us-east-1";

fn config_text(fake: &DiscordFake, dir: &Path, queue_url: &str, table: &str) -> String {
    let token_file = dir.join("token");
    std::fs::write(&token_file, fake.token()).unwrap();
    format!(
        r#"
[discord]
token_file = "{token}"
guild_id = "{guild}"
channel_id = "{channel}"
api_base = "{base}"

[responders]
approver_roles = ["{RESPONDER_ROLE}"]

[policy]
approvals = {{ evidence = 1, contain = 2, disrupt = 2 }}

[aws]
regions = ["{REGION}"]

[ingest]
guardduty = false
sqs_queue_url = "{queue_url}"
min_severity = 1.0

[store]
backend = "dynamodb"
table = "{table}"

[http]
listen = "127.0.0.1:0"
"#,
        token = token_file.display(),
        guild = fake.guild_id(),
        channel = fake.channel_id(),
        base = fake.base_url(),
    )
}

/// `hanko ARGS… --config CONFIG` against moto, as an operator's shell would run it.
async fn hanko(args: &[&str], config: &Path) -> (bool, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hanko"));
    cmd.args(args)
        .arg("--config")
        .arg(config)
        .env("AWS_ENDPOINT_URL", moto::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE");
    hanko_process::finish(cmd).await
}

async fn start(config: &Path) -> HankoProcess {
    let mut cmd = hanko_run(
        Path::new(env!("CARGO_BIN_EXE_hanko")),
        config,
        &moto::shared().endpoint(),
    );
    cmd.env("HANKO_COMMANDS_DIR", e2e_bot::commands_dir())
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    HankoProcess::spawn(cmd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_dynamodb_the_binary_inits_its_table_contains_a_key_and_the_audit_verifies_from_the_config(
) {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue = sqs
        .create_queue()
        .queue_name("hanko-dynamodb-binary")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let key = moto::user_with_key(&iam, "frank").await;

    let fake = DiscordFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hanko.toml");
    let table = format!("hanko-binary-{}", std::process::id());
    std::fs::write(&config, config_text(&fake, dir.path(), &queue, &table)).unwrap();

    // Before `store init`, `hanko run` says what to do.
    let (ok, said) = hanko(&["audit", "verify"], &config).await;
    assert!(!ok && said.contains("hanko store init"), "{said}");
    let (ok, said) = hanko(&["store", "init"], &config).await;
    assert!(ok && said.contains("created"), "{said}");
    let (ok, said) = hanko(&["store", "init"], &config).await;
    assert!(ok && said.contains("already exists"), "idempotent: {said}");
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let described = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.table().unwrap().deletion_protection_enabled(),
        Some(true)
    );

    let replica = start(&config).await;
    let (_, health) = e2e_bot::http_get(replica.http_addr, "/healthz").await;
    assert!(
        health.contains("backend: dynamodb") && health.contains("gateway"),
        "{health}"
    );
    // A second gateway replica on the same table would answer every click twice: refused.
    let second = hanko_run(
        Path::new(env!("CARGO_BIN_EXE_hanko")),
        &config,
        &moto.endpoint(),
    )
    .env("HANKO_COMMANDS_DIR", e2e_bot::commands_dir())
    .env("AWS_REGION", REGION)
    .stderr(std::process::Stdio::piped())
    .output()
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{said}");
    assert!(
        said.contains("holds the Discord gateway") && said.contains("interactions = \"http\""),
        "{said}"
    );

    // A leaked key, contained with two approvals, everything in the table.
    let mut doc: serde_json::Value = serde_json::from_str(&crate::support::fixtures::read(
        "api/UnauthorizedAccess_IAMUser_TorIPCaller.json",
    ))
    .unwrap();
    doc["id"] = json!("d1a0000000000000000000000000000f");
    doc["accountId"] = json!("123456789012");
    doc["region"] = json!(REGION);
    doc["updatedAt"] = json!(Utc::now().to_rfc3339());
    doc["resource"]["accessKeyDetails"]["accessKeyId"] = json!(key);
    doc["resource"]["accessKeyDetails"]["userName"] = json!("frank");
    doc["service"]["additionalInfo"]["sample"] = json!(false);
    doc["service"]["archived"] = json!(false);
    sqs.send_message()
        .queue_url(&queue)
        .message_body(sqs_events::guardduty_event(&doc))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let card =
        loop {
            if let Some(card) = fake.messages().into_iter().find(|m| {
                m.source == MessageSource::ChannelPost && m.custom_id_of("Approve").is_some()
            }) {
                break card;
            }
            assert!(
                Instant::now() < deadline,
                "no card; stderr:\n{}",
                replica.stderr()
            );
            tokio::time::sleep(POLL).await;
        };
    for who in [alice(), bob()] {
        let approve = card.custom_id_of("Approve").unwrap();
        let click = fake.inject_button(&approve, card.id, &who);
        fake.wait_for_callback(&click, WAIT).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let keys = iam
            .list_access_keys()
            .user_name("frank")
            .send()
            .await
            .unwrap();
        if keys.access_key_metadata()[0].status() == Some(&StatusType::Inactive) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key was not deactivated; stderr:\n{}",
            replica.stderr()
        );
        tokio::time::sleep(POLL).await;
    }
    let (_, metrics) = e2e_bot::http_get(replica.http_addr, "/metrics").await;
    assert!(
        metrics.contains("hanko_store_write_conflicts_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hanko_dynamodb_consumed_capacity_units_total{kind=\"write\"}"),
        "{metrics}"
    );
    replica.stop().await;

    let (ok, said) = hanko(&["audit", "verify"], &config).await;
    assert!(ok && said.contains("hash chain intact"), "{said}");
    let (ok, said) = hanko(
        &["audit", "query", "--kind", "ApprovalGranted", "--json"],
        &config,
    )
    .await;
    assert!(ok, "{said}");
    let events: serde_json::Value = serde_json::from_str(&said).unwrap();
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{said}");
    fake.shutdown().await;
}
