//! `ingest::spawn_all` end to end: the GuardDuty client finds its stand-in through the
//! standard `AWS_ENDPOINT_URL_GUARDDUTY` variable (no endpoint in the config), the loop
//! ingests every fixture, writes its status keys, and stops promptly on shutdown.
//!
//! It sets process environment variables, which no other test of the binary may see: the
//! test runs itself again as a child process of the binary (alone, with `--exact`), and the
//! child does the work.

use crate::support::guardduty_standin as standin;
use crate::support::ingest_app as support;

use std::time::{Duration, Instant};

use hanko::ingest::spawn_all;
use hanko::store::SourceStatus;
use hanko::store::Store;

/// Set in the child process that runs [`spawn_all_in_a_process_of_its_own`].
const CHILD_ENV: &str = "HANKO_TEST_INGEST_SPAWN_CHILD";

#[test]
fn spawn_all_honours_the_service_endpoint_variable_and_stops_on_shutdown() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            // The child test's full name in this binary (`tests/aws`: module `ingest_spawn`).
            "ingest_spawn::spawn_all_in_a_process_of_its_own",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child process failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run: {stdout}"
    );
}

/// The test itself; does nothing unless run by the test above, in a process of its own.
#[tokio::test]
async fn spawn_all_in_a_process_of_its_own() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let fixtures = standin::api_fixtures();
    let live = fixtures
        .iter()
        .filter(|(_, d)| d["service"]["archived"] != true)
        .count();
    let standin = standin::Standin::start(
        "37da5a0204286ccd967d2395320d4dcd",
        fixtures.into_iter().map(|(_, d)| d).collect(),
    )
    .await;
    // The standard chain, pointed at the stand-in for GuardDuty only.
    std::env::set_var("AWS_ENDPOINT_URL_GUARDDUTY", standin.endpoint());
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::remove_var("AWS_ENDPOINT_URL");
    std::env::remove_var("AWS_PROFILE");

    let mut settings =
        support::settings("guardduty = true\npoll_interval = \"10s\"\nmin_severity = 0.0");
    settings.aws.regions = vec!["us-east-2".into()];
    assert_eq!(settings.aws.endpoint_url, None);
    let store = Store::open_temporary().unwrap();
    let conf = standin::test_sdk_config().await;
    let app = support::app(settings, store.clone(), conf);

    let (tx, rx) = tokio::sync::watch::channel(false);
    let handles = spawn_all(app, rx).await;
    assert_eq!(
        handles.len(),
        1,
        "one GuardDuty loop, no SQS, no Security Hub"
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = SourceStatus::read(&store, "guardduty:us-east-2", chrono::Utc::now()).unwrap();
        if store.finding_count() == live as u64 && status.last_ok.is_some() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the loop did not ingest the fixtures"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.errors, 0);
    assert_eq!(status.last_error, None);
    assert_eq!(
        standin.requests_to("/detector").len(),
        1,
        "ListDetectors reached the stand-in"
    );

    // The loop now waits out its 10 s interval; shutdown must not.
    let stopped = Instant::now();
    tx.send(true).unwrap();
    for h in handles {
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("the loop stops within 5 s")
            .unwrap();
    }
    assert!(stopped.elapsed() < Duration::from_secs(5));
}
