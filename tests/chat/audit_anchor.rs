//! Audit anchors (issue 11, item 4b) against moto's S3 through the real aws-sdk client, and the
//! real binary: digests written by the writer and by `hanko run` at shutdown, `hanko audit
//! verify --anchors` with the right key, another key, a cut tail and a rewritten head, and
//! `hanko check-config` with keys made by openssl.

use crate::support::discord_fake;
use crate::support::e2e_bot;
use crate::support::hanko_process;
use crate::support::moto;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use discord_fake::DiscordFake;
use e2e_bot::{commands_dir, config_text};
use hanko::anchor::writer::Anchorer;
use hanko::anchor::{AnchorKey, AnchorLocation, Digest};
use hanko::audit::{Actor, EventKind, NewEvent};
use hanko::aws::ClientFactory;
use hanko::clock::Clock;
use hanko::store::{AnchorSlot, Store};
use hanko_process::{hanko_run, HankoProcess};
use moto::Moto;

const PREFIX: &str = "hanko/prod";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/anchor")
        .join(name)
}

fn append(store: &Store, n: u64) {
    for i in 0..n {
        store
            .append_audit(
                NewEvent::new(
                    Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap(),
                    Actor::Cli { name: "ops".into() },
                    EventKind::CommandInvoked,
                )
                .detail(serde_json::json!({"command": "status", "i": i, "severity": 1.6997106113535186})),
            )
            .unwrap();
    }
}

async fn bucket(moto: &Moto, name: &str) -> aws_sdk_s3::Client {
    let s3 = moto.s3().await;
    s3.create_bucket().bucket(name).send().await.unwrap();
    s3
}

/// The writer as `hanko run` builds it: hanko's own S3 client from a factory over moto.
async fn anchorer(moto: &Moto, store: &Store, bucket: &str, key: &Path) -> Anchorer {
    let factory = ClientFactory::from_sdk_config(moto.sdk_config().await, None);
    Anchorer::new(
        store.clone(),
        factory.own_s3(Some("us-east-1")),
        AnchorLocation::new(bucket, PREFIX),
        AnchorKey::read(key).unwrap(),
        Duration::from_secs(3600),
        Clock::system(),
    )
}

async fn digest_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// `hanko audit verify --db DIR --anchors s3://BUCKET/PREFIX --public-key KEY` against moto.
fn verify(moto: &Moto, db: &Path, bucket: &str, public_key: &Path) -> (i32, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_hanko"))
        .args(["audit", "verify", "--db"])
        .arg(db)
        .args([
            "--anchors",
            &format!("s3://{bucket}/{PREFIX}"),
            "--public-key",
        ])
        .arg(public_key)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_written_to_s3_verify_with_the_right_key_and_fail_with_another() {
    let moto = moto::shared();
    let s3 = bucket(&moto, "anchors-right-key").await;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let writer = anchorer(&moto, &store, "anchors-right-key", &fixture("anchor.pem")).await;
        assert_eq!(
            writer.anchor_now().await.unwrap(),
            None,
            "an empty log: no digest"
        );
        append(&store, 5);
        let first = writer.anchor_now().await.unwrap().expect("a first digest");
        assert_eq!(first.last_seq, 5);
        assert!(
            first
                .key
                .starts_with("hanko/prod/digest-00000000000000000005-"),
            "{}",
            first.key
        );
        assert_eq!(
            writer.anchor_now().await.unwrap(),
            None,
            "the head did not move"
        );
        append(&store, 3);
        let second = writer.anchor_now().await.unwrap().expect("a second digest");
        assert_eq!(second.last_seq, 8);

        // The objects in S3 are the chain the docs describe.
        assert_eq!(
            digest_keys(&s3, "anchors-right-key").await,
            [first.key.clone(), second.key.clone()]
        );
        let object = hanko::aws::anchors::get_object(&s3, "anchors-right-key", &second.key)
            .await
            .unwrap();
        let digest = Digest::parse(&second.key, &object).unwrap();
        assert_eq!((digest.first_seq, digest.last_seq), (6, 8));
        assert_eq!(digest.previous_digest_hash, first.digest_hash);
        assert_eq!(digest.head_hash, store.audit_head().unwrap().1);
        append(&store, 1);
    }

    let (code, out) = verify(
        &moto,
        dir.path(),
        "anchors-right-key",
        &fixture("anchor.pub.pem"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("OK: 9 audit events"), "{out}");
    assert!(out.contains("2 digests"), "{out}");
    assert!(out.contains("last anchored seq 8"), "{out}");
    assert!(out.contains("1 later events not anchored yet"), "{out}");

    let (code, out) = verify(
        &moto,
        dir.path(),
        "anchors-right-key",
        &fixture("other.pub.pem"),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("BROKEN: digest hanko/prod/digest-00000000000000000005-"),
        "{out}"
    );
    assert!(out.contains("signature does not verify"), "{out}");

    // A private key where the public key belongs: the check cannot run (exit 2), says why.
    let (code, out) = verify(
        &moto,
        dir.path(),
        "anchors-right-key",
        &fixture("anchor.pem"),
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("--public-key") && out.contains("SubjectPublicKeyInfo"),
        "{out}"
    );
    assert!(
        !out.contains("MC4CAQAw"),
        "never prints key material: {out}"
    );

    // No digests under the prefix: nothing anchors the store, so the answer is no.
    bucket(&moto, "anchors-empty").await;
    let (code, out) = verify(
        &moto,
        dir.path(),
        "anchors-empty",
        &fixture("anchor.pub.pem"),
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no digests under s3://anchors-empty/hanko/prod/"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_tail_with_a_rewritten_head_fails_verify_anchors_naming_the_last_anchored_seq() {
    let moto = moto::shared();
    bucket(&moto, "anchors-cut").await;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        append(&store, 10);
        let writer = anchorer(&moto, &store, "anchors-cut", &fixture("anchor.pem")).await;
        writer.anchor_now().await.unwrap().unwrap();
        // The attacker cuts events 7 to 10 and rewrites the head to event 6: the store's own
        // check cannot tell.
        store.truncate_audit_for_tests(6).unwrap();
        assert_eq!(store.verify_audit().unwrap(), 6);
    }
    let (code, out) = verify(&moto, dir.path(), "anchors-cut", &fixture("anchor.pub.pem"));
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("BROKEN: "), "{out}");
    assert!(out.contains("ends at event 6"), "{out}");
    assert!(out.contains("last anchored seq: 10"), "{out}");

    // The same store with a new event 7..10 written over the cut: the chain verifies alone,
    // but event 10 no longer has the anchored hash.
    {
        let store = Store::open(dir.path()).unwrap();
        append(&store, 4);
        assert_eq!(store.verify_audit().unwrap(), 10);
    }
    let (code, out) = verify(&moto, dir.path(), "anchors-cut", &fixture("anchor.pub.pem"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("audit event 10 does not have the hash anchored"),
        "{out}"
    );
    assert!(out.contains("last anchored seq: 10"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_that_could_not_be_written_is_written_first_next_time() {
    let moto = moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    append(&store, 3);
    let writer = anchorer(&moto, &store, "anchors-later", &fixture("anchor.pem")).await;
    // No bucket yet: the PutObject fails, the digest stays pending.
    let err = writer.anchor_now().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("s3://anchors-later/hanko/prod/digest-"),
        "{err}"
    );
    assert!(store.anchor_record(AnchorSlot::Pending).unwrap().is_some());
    assert!(store.anchor_record(AnchorSlot::Last).unwrap().is_none());

    let s3 = bucket(&moto, "anchors-later").await;
    append(&store, 2);
    let written = writer.anchor_now().await.unwrap().unwrap();
    assert_eq!(written.last_seq, 5);
    assert!(store.anchor_record(AnchorSlot::Pending).unwrap().is_none());
    let keys = digest_keys(&s3, "anchors-later").await;
    assert_eq!(
        keys.len(),
        2,
        "the pending digest, then the new one: {keys:?}"
    );
    drop(writer);
    drop(store);
    let (code, out) = verify(
        &moto,
        dir.path(),
        "anchors-later",
        &fixture("anchor.pub.pem"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("2 digests") && out.contains("last anchored seq 5"),
        "{out}"
    );
}

/// Keys made by openssl exactly as the docs say, into `dir`: (private, public).
fn openssl_keys(dir: &Path) -> (PathBuf, PathBuf) {
    let private = dir.join("anchor.pem");
    let public = dir.join("anchor.pub.pem");
    let ok = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private)
        .status()
        .expect("openssl is installed")
        .success();
    assert!(ok, "openssl genpkey");
    let ok = Command::new("openssl")
        .args(["pkey", "-in"])
        .arg(&private)
        .args(["-pubout", "-out"])
        .arg(&public)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl pkey -pubout");
    (private, public)
}

#[test]
fn check_config_accepts_the_audit_keys_and_names_a_missing_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let (private, _) = openssl_keys(dir.path());
    let config = dir.path().join("hanko.toml");
    let base = r#"
[discord]
guild_id = "123456789012345678"
channel_id = "223456789012345678"

[responders]
approver_roles = ["323456789012345678"]

[aws]
regions = ["us-east-1"]
"#;
    let check = |audit: &str| {
        std::fs::write(&config, format!("{base}\n[audit]\n{audit}\n")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hanko"))
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = check(&format!(
        "anchor_bucket = \"hanko-audit-anchors\"\nanchor_prefix = \"hanko/prod\"\nanchor_key_file = \"{}\"\nanchor_interval = \"30m\"",
        private.display()
    ));
    assert_eq!((code, out.as_str()), (Some(0), "OK\n"));
    // Relative to the config's directory, prefix and interval left to their defaults.
    let (code, out) =
        check("anchor_bucket = \"hanko-audit-anchors\"\nanchor_key_file = \"anchor.pem\"");
    assert_eq!((code, out.as_str()), (Some(0), "OK\n"));

    let (code, out) =
        check("anchor_bucket = \"hanko-audit-anchors\"\nanchor_key_file = \"missing.pem\"");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("audit.anchor_key_file"), "{out}");
    assert!(
        out.contains("missing.pem: cannot be read (no such file)"),
        "{out}"
    );

    let (code, out) = check("anchor_bucket = \"hanko-audit-anchors\"");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("audit.anchor_key_file: missing"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanko_run_writes_a_digest_at_shutdown_that_verifies() {
    let moto = moto::shared();
    let s3 = bucket(&moto, "anchors-run").await;
    let fake = DiscordFake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, public) = openssl_keys(dir.path());
    let config = dir.path().join("hanko.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[audit]\nanchor_bucket = \"anchors-run\"\nanchor_prefix = \"{PREFIX}\"\nanchor_key_file = \"anchor.pem\"\n",
            config_text(&fake, dir.path(), 1, 0)
        ),
    )
    .unwrap();
    let store_path = dir.path().join("store");
    {
        let store = Store::open(&store_path).unwrap();
        append(&store, 2);
        store.flush().unwrap();
    }

    // Ingest loops reach moto (no GuardDuty there: they log and wait); S3 is moto's.
    let mut cmd = hanko_run(
        Path::new(env!("CARGO_BIN_EXE_hanko")),
        &config,
        &moto.endpoint(),
    );
    cmd.env("HANKO_COMMANDS_DIR", commands_dir())
        .env("HANKO_DISCORD_API_BASE", fake.base_url())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let hanko = HankoProcess::spawn(cmd).await;
    assert!(
        digest_keys(&s3, "anchors-run").await.is_empty(),
        "no digest before the first interval (1h)"
    );

    let stderr = hanko.stop().await;
    assert!(
        stderr.contains("wrote an audit digest"),
        "stderr:\n{stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"), "the key is never logged");

    let keys = digest_keys(&s3, "anchors-run").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("hanko/prod/digest-"), "{keys:?}");
    let (code, out) = verify(&moto, &store_path, "anchors-run", &public);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 digests"), "{out}");
    let (code, out) = verify(&moto, &store_path, "anchors-run", &fixture("other.pub.pem"));
    assert_eq!(code, 1, "{out}");
    fake.shutdown().await;
}
