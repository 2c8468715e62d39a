//! hanko's own binary, as an operator runs it.
//!
//! The morning after: `hanko run` is stopped, then started again with the
//! system wall clock moved five hours forward (libfaketime's `faketime`), against the Discord
//! fake and moto. hanko reads the time through the system clock, so nothing in it is told about
//! the move; what an operator sees must follow from the clock alone:
//!
//! - the card of a request nobody voted on expired (the default time to live is 4 h): it says
//!   so and has no Approve button any more;
//! - `/contain` on the same key is then accepted (an expired request covers nothing);
//! - a request approved while paused runs on `/resume`, without a restart;
//! - a finding of another account (999999999999) for a user whose namesake lives in hanko's own
//!   account gets a notify-only card, and the namesake keeps its key throughout;
//! - `hanko audit verify` passes on the store afterwards (also under the moved clock).
//!
//! From anywhere: the binary copied alone into an empty folder starts with its config beside
//! it, registers its embedded slash commands, and never asks the instance metadata service.
//!
//! Needs libfaketime (Debian's package `faketime`; `scripts/test.sh` installs it) and
//! `moto_server`; a missing one fails the test with the fix, it never skips.

use crate::support::discord_fake;
use crate::support::e2e_bot;
use crate::support::fixtures;
use crate::support::hanko_process;
use crate::support::moto;
use crate::support::sqs_events;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_iam::types::StatusType;
use chrono::Utc;
use discord_fake::{DiscordFake, FakeMember, FakeMessage, MessageSource};
use serde_json::{json, Value};

use e2e_bot::{alice, bob, command_answer, ADMIN_ROLE, POLL, RESPONDER_ROLE, WAIT};
use hanko_process::{hanko_run, HankoProcess};
use sqs_events::guardduty_event;

const FIXTURE: &str = "api/UnauthorizedAccess_IAMUser_TorIPCaller.json";
const OWN_ACCOUNT: &str = "123456789012";
const OTHER_ACCOUNT: &str = "999999999999";
const REGION: &str = "us-east-1";

/// An admin who may also vote.
fn carol() -> FakeMember {
    FakeMember::new(
        1_180_000_000_000_001_003,
        "carol",
        &[RESPONDER_ROLE, ADMIN_ROLE],
    )
}

/// libfaketime, which moves the wall clock of the process it is preloaded into (the
/// multi-threaded build: hanko runs tokio's worker threads), or a failure that says how to
/// install it. It is preloaded into hanko itself rather than through the `faketime` wrapper, so
/// the signal that stops hanko reaches hanko.
fn libfaketime() -> PathBuf {
    const TRIED: [&str; 4] = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
        "/usr/lib/faketime/libfaketimeMT.so.1",
        "/usr/local/lib/faketime/libfaketimeMT.so.1",
    ];
    TRIED
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "libfaketime is not installed (looked in {TRIED:?}): `apt-get install faketime` \
                 (scripts/test.sh does it)"
            )
        })
}

/// `command`, with its wall clock moved by `offset` (libfaketime's syntax, e.g. `+5h`).
fn shifted(command: &mut tokio::process::Command, offset: &str) {
    command
        .env("LD_PRELOAD", libfaketime())
        .env("FAKETIME", offset)
        // Only the wall clock moves: tokio's timers keep the monotonic clock.
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
}

/// The EventBridge event GuardDuty emits for the leaked-key fixture, with `key` of `user` in
/// `account`, updated now, not a sample.
fn leaked_key_event(finding_id: &str, account: &str, key: &str, user: &str) -> String {
    let text = fixtures::read(FIXTURE)
        .replace("GeneratedFindingAccessKeyId", key)
        .replace("GeneratedFindingUserName", user);
    let mut d: Value = serde_json::from_str(&text).unwrap();
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    d["id"] = json!(finding_id);
    d["arn"] = json!(format!(
        "arn:aws:guardduty:{REGION}:{account}:detector/wallclock/finding/{finding_id}"
    ));
    d["accountId"] = json!(account);
    d["region"] = json!(REGION);
    d["updatedAt"] = json!(now);
    d["service"]["additionalInfo"]["sample"] = json!(false);
    d["service"]["archived"] = json!(false);
    guardduty_event(&d)
}

fn config_text(fake: &DiscordFake, dir: &Path, queue_url: &str) -> String {
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
admin_roles = ["{ADMIN_ROLE}"]

[policy]
approvals = {{ evidence = 1, contain = 1, disrupt = 2 }}

[aws]
regions = ["{REGION}"]

[ingest]
guardduty = false
sqs_queue_url = "{queue_url}"
min_severity = 1.0

[store]
path = "{store}"

[http]
listen = "127.0.0.1:0"
"#,
        token = token_file.display(),
        guild = fake.guild_id(),
        channel = fake.channel_id(),
        base = fake.base_url(),
        store = dir.join("store").display(),
    )
}

/// `hanko run` as the tests of this file start it: commands from the repository, the AWS
/// region from the environment, the instance metadata service off; the wall clock moved by
/// `shift` (a libfaketime offset such as `+5h`) when given.
async fn start(config: &Path, aws_endpoint: &str, shift: Option<&str>) -> HankoProcess {
    let mut cmd = hanko_run(Path::new(env!("CARGO_BIN_EXE_hanko")), config, aws_endpoint);
    if let Some(offset) = shift {
        shifted(&mut cmd, offset);
    }
    cmd.env("HANKO_COMMANDS_DIR", e2e_bot::commands_dir())
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    HankoProcess::spawn(cmd).await
}

async fn key_status(iam: &aws_sdk_iam::Client, user: &str, key: &str) -> StatusType {
    let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
    keys.access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key))
        .and_then(|k| k.status().cloned())
        .unwrap()
}

/// The newest channel post whose embed mentions `needle`, once there are `count` of them.
async fn card_mentioning(fake: &DiscordFake, needle: &str, count: usize) -> FakeMessage {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut cards: Vec<FakeMessage> = fake
            .messages()
            .into_iter()
            .filter(|m| m.source == MessageSource::ChannelPost && m.embed_text().contains(needle))
            .collect();
        if cards.len() >= count {
            cards.sort_by_key(|m| m.id);
            return cards.pop().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no card #{count} mentioning {needle} within {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_morning_after_five_hours_expire_cards_contain_works_and_other_accounts_stay_untouched()
{
    libfaketime();
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&conf);
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let queue = sqs
        .create_queue()
        .queue_name("hanko-wallclock")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dave_key = moto::user_with_key(&iam, "dave").await;
    // `erin` in hanko's own account: the namesake of the other account's `erin`.
    let erin_key = moto::user_with_key(&iam, "erin").await;

    let fake = DiscordFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hanko.toml");
    std::fs::write(&config, config_text(&fake, dir.path(), &queue)).unwrap();

    // ---- day one: two findings, nobody votes -------------------------------------------------
    let hanko = start(&config, &moto.endpoint(), None).await;
    for body in [
        leaked_key_event(
            "0a11ce0000000000000000000000000a",
            OWN_ACCOUNT,
            &dave_key,
            "dave",
        ),
        leaked_key_event(
            "0a11ce0000000000000000000000000b",
            OTHER_ACCOUNT,
            &erin_key,
            "erin",
        ),
    ] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let dave_card = card_mentioning(&fake, &dave_key, 1).await;
    assert!(
        dave_card.button_labels().contains(&"Approve".to_string()),
        "{:?}",
        dave_card.button_labels()
    );
    let erin_card = card_mentioning(&fake, &erin_key, 1).await;
    assert!(
        !erin_card.button_labels().contains(&"Approve".to_string()),
        "another account's finding without a role gets no Approve: {:?}\n{}",
        erin_card.button_labels(),
        erin_card.embed_text()
    );
    // Markdown escapes the underscores of the key's name; read the text as a person would.
    let said = erin_card.embed_text().replace('\\', "");
    assert!(
        said.contains(&format!("no role in account {OTHER_ACCOUNT}"))
            && said.contains("aws.role_arn_template"),
        "the card says why and what to set:\n{said}"
    );
    hanko.stop().await;

    // ---- five hours later -------------------------------------------------------------------
    let hanko = start(&config, &moto.endpoint(), Some("+5h")).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let card = fake.message(dave_card.id).unwrap();
        let text = card.embed_text().to_lowercase();
        if text.contains("expired") && !card.button_labels().contains(&"Approve".to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unvoted card did not expire; buttons {:?}\n{}\nstderr:\n{}",
            card.button_labels(),
            card.embed_text(),
            hanko.stderr()
        );
        tokio::time::sleep(POLL).await;
    }

    // Paused: a fresh /contain on the same key is accepted and approved, but does not run.
    let pause = fake.inject_slash_command("pause", json!({"reason": "morning drill"}), &carol());
    let answer = command_answer(&fake, &pause).await;
    assert!(answer.to_lowercase().contains("paus"), "{answer}");
    let contain = fake.inject_slash_command(
        "contain",
        json!({"target": dave_key, "region": REGION}),
        &alice(),
    );
    let answer = command_answer(&fake, &contain).await;
    assert!(
        !answer.contains("already covers"),
        "an expired request covers nothing: {answer}"
    );
    let fresh = card_mentioning(&fake, &dave_key, 2).await;
    assert_ne!(fresh.id, dave_card.id);
    let approve = fresh.custom_id_of("Approve").unwrap_or_else(|| {
        panic!(
            "the fresh card can be approved: {:?}",
            fresh.button_labels()
        )
    });
    let click = fake.inject_button(&approve, fresh.id, &bob());
    fake.wait_for_callback(&click, WAIT).await.unwrap();
    // The click is answered; give a (wrongly) running engine time to act, then check nothing did.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        key_status(&iam, "dave", &dave_key).await,
        StatusType::Active,
        "nothing runs while paused"
    );

    // /resume runs what was approved meanwhile, without a restart.
    let resume = fake.inject_slash_command("resume", json!({}), &carol());
    command_answer(&fake, &resume).await;
    let deadline = Instant::now() + WAIT;
    while key_status(&iam, "dave", &dave_key).await != StatusType::Inactive {
        assert!(
            Instant::now() < deadline,
            "/resume did not run the approved request; stderr:\n{}",
            hanko.stderr()
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(
        key_status(&iam, "erin", &erin_key).await,
        StatusType::Active,
        "the other account's namesake keeps its key"
    );
    hanko.stop().await;

    // The audit chain verifies, read under the moved clock too.
    let mut verify = tokio::process::Command::new(env!("CARGO_BIN_EXE_hanko"));
    shifted(&mut verify, "+5h");
    let verify = verify
        .args(["audit", "verify", "--db"])
        .arg(dir.path().join("store"))
        .output()
        .await
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    fake.shutdown().await;
}

/// The release binary copied alone into an empty folder, with its config beside it, started from
/// there: no `HANKO_COMMANDS_DIR` (the slash commands are embedded), no `AWS_REGION` (the
/// config's `aws.regions` is the SDK's region) and the instance metadata service reachable at a
/// local listener that records any connection: hanko must register every command and never ask
/// it (nor warn about it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_alone_in_an_empty_folder_registers_its_embedded_commands_and_never_asks_imds() {
    let moto = moto::shared();
    let conf = moto.sdk_config().await;
    let queue = aws_sdk_sqs::Client::new(&conf)
        .create_queue()
        .queue_name("hanko-alone")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // A stand-in instance metadata service on loopback: it only counts connections.
    let imds = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let imds_addr = imds.local_addr().unwrap();
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let asked = asked.clone();
        tokio::spawn(async move {
            while let Ok((_conn, _)) = imds.accept().await {
                asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }

    let fake = DiscordFake::start().await;
    let folder = tempfile::tempdir().unwrap();
    let bin = folder.path().join("hanko");
    std::fs::copy(env!("CARGO_BIN_EXE_hanko"), &bin).unwrap();
    let config = folder.path().join("hanko.toml");
    std::fs::write(&config, config_text(&fake, folder.path(), &queue)).unwrap();
    let mut cmd = hanko_run(&bin, Path::new("hanko.toml"), &moto.endpoint());
    cmd.current_dir(folder.path())
        .env_remove("AWS_EC2_METADATA_DISABLED")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://{imds_addr}"),
        );
    let hanko = HankoProcess::spawn(cmd).await;

    let mut expected: Vec<String> = hanko::command_defs::COMMAND_NAMES
        .iter()
        .map(|n| n.to_string())
        .collect();
    expected.sort();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut registered: Vec<String> = fake
            .commands(Some(fake.guild_id()))
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        registered.sort();
        if registered == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "registered {registered:?}, expected {expected:?}; stderr:\n{}",
            hanko.stderr()
        );
        tokio::time::sleep(POLL).await;
    }
    let stderr = hanko.stderr();
    hanko.stop().await;
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "hanko asked the instance metadata service; stderr:\n{stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        !lower.contains("imds") && !lower.contains("metadata"),
        "no warning about the instance metadata service:\n{stderr}"
    );
    fake.shutdown().await;
}
