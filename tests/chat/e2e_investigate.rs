//! "What this key did", end to end: the real bot against the Discord fake, with one AWS
//! endpoint that is the CloudTrail `LookupEvents` stand-in in front of moto (moto has no
//! `LookupEvents`), as `aws.endpoint_url` is in production.
//!
//! * The card of a leaked key is posted first (CloudTrail answers late), then edited with the
//!   summary: counts, the mutating calls by name, the instance and the access key the leaked
//!   key created. Each of those gets its own card and Pending request; approving them
//!   deactivates the new key and isolates the instance in moto.
//! * Throttled lookups are retried to a summary; AccessDenied shows as one line on the card,
//!   and the leaked key's own containment still runs.

use crate::support::cloudtrail_standin::{events, Standin};
use crate::support::e2e_bot;
use crate::support::ec2_world::World;
use crate::support::finding_builder::FindingBuilder;
use crate::support::moto;

use std::time::Duration;

use aws_sdk_iam::types::StatusType;
use chrono::Utc;
use hanko::approval::RequestState;
use hanko::audit::{AuditQuery, EventKind};
use hanko::aws::ClientFactory;
use hanko::finding::Finding;

use e2e_bot::*;

/// A moto user with one access key; returns the key id.
async fn user_with_key(moto: &moto::Moto, user: &str) -> String {
    moto::user_with_key(&moto.iam().await, user).await
}

async fn key_status(moto: &moto::Moto, user: &str, key_id: &str) -> Option<StatusType> {
    let keys = moto
        .iam()
        .await
        .list_access_keys()
        .user_name(user)
        .send()
        .await
        .unwrap();
    keys.access_key_metadata()
        .iter()
        .find(|k| k.access_key_id() == Some(key_id))
        .and_then(|k| k.status())
        .cloned()
}

fn leaked(id: &str, user: &str, key: &str) -> Finding {
    FindingBuilder::new(id)
        .access_key(user, key)
        .finding_type("UnauthorizedAccess:IAMUser/TorIPCaller")
        .severity(8.0)
        .build()
}

/// The stand-in in front of the shared moto, and clients whose every service goes through it.
async fn aws() -> (moto::Shared, Standin, ClientFactory) {
    let moto = moto::shared();
    let port: u16 = moto
        .endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("moto's port");
    let standin = Standin::start_before_moto(port).await;
    let conf = standin.sdk_config(&moto.sdk_config().await, "us-east-1");
    (moto, standin, ClientFactory::from_sdk_config(conf, None))
}

fn embed_field<'a>(m: &'a discord_fake::FakeMessage, name: &str) -> Option<&'a str> {
    m.embeds.first()?["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)?["value"]
        .as_str()
}

use crate::support::discord_fake;

fn requests_of_derived(bot: &Bot) -> Vec<hanko::approval::Request> {
    bot.app()
        .store
        .requests_in_states(&[RequestState::Pending])
        .unwrap()
        .into_iter()
        .filter(|r| r.finding_id.starts_with("inv-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_keys_card_shows_what_it_did_and_what_it_created_is_proposed_and_contained() {
    let (moto, standin, clients) = aws().await;
    let leaked_key = user_with_key(&moto, "inv-leaky").await;
    let new_key = user_with_key(&moto, "inv-mallory").await;
    let world = World::new(&moto).await;
    let launched = world.launch(&[&[world.app.as_str()]]).await;
    let t = Utc::now() - chrono::Duration::minutes(30);
    standin.add(
        "us-east-1",
        [
            events::read(
                &leaked_key,
                "us-east-1",
                "sts.amazonaws.com",
                "GetCallerIdentity",
                t,
            ),
            events::read(
                &leaked_key,
                "us-east-1",
                "iam.amazonaws.com",
                "ListUsers",
                t + chrono::Duration::minutes(1),
            ),
            events::read(
                &leaked_key,
                "us-east-1",
                "s3.amazonaws.com",
                "ListBuckets",
                t + chrono::Duration::minutes(2),
            ),
            events::create_access_key(
                &leaked_key,
                "inv-mallory",
                &new_key,
                t + chrono::Duration::minutes(3),
            ),
            events::run_instances(
                &leaked_key,
                "us-east-1",
                &[&launched.id],
                t + chrono::Duration::minutes(4),
            ),
        ],
    );
    // CloudTrail answers late: the card must not wait for it.
    standin.delay(Duration::from_millis(700));
    let bot = Bot::start(1, clients).await;
    let fake = &bot.fake;

    let f = leaked("e2e-investigate-1", "inv-leaky", &leaked_key);
    let request = bot.accept(&f).expect("the leaked key's own request");
    let card = wait_for_card(fake, request).await;
    assert!(
        embed_field(&card, "What this key did").is_none_or(|v| v.contains("Looking up")),
        "posted before CloudTrail answered: {:?}",
        embed_field(&card, "What this key did")
    );

    let edited = fake
        .wait_for_message(
            |m| {
                m.id == card.id
                    && embed_field(m, "What this key did").is_some_and(|v| v.contains("events**"))
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fake.message(card.id).map(|m| m.embed_text())));
    let field = embed_field(&edited, "What this key did")
        .unwrap()
        .to_string();
    assert!(field.contains("**5 events**"), "{field}");
    assert!(field.contains("3 read-only, 2 mutating"), "{field}");
    assert!(field.contains("`RunInstances` ×1"), "{field}");
    assert!(field.contains("`CreateAccessKey` ×1"), "{field}");
    assert!(field.contains(&launched.id), "{field}");
    assert!(
        field.contains(&new_key) && field.contains("inv-mallory"),
        "{field}"
    );
    assert!(field.contains("Proposed separately"), "{field}");

    // Each created resource: its own card and Pending request.
    eventually("two derived requests", || {
        requests_of_derived(&bot).len() == 2
    })
    .await;
    let derived = requests_of_derived(&bot);
    let mut contained = 0;
    for r in &derived {
        let card = wait_for_card(fake, r.id).await;
        for who in [alice(), bob()] {
            if bot.app().store.get_request(r.id).unwrap().unwrap().state != RequestState::Pending {
                break;
            }
            let approve = card.custom_id_of("Approve").unwrap();
            let click = fake.inject_button(&approve, card.id, &who);
            wait_for_original_edit(fake, &click).await;
        }
        eventually("the derived request ran", || {
            matches!(
                bot.app().store.get_request(r.id).unwrap().unwrap().state,
                RequestState::Succeeded
            )
        })
        .await;
        contained += 1;
    }
    assert_eq!(contained, 2);
    assert_eq!(
        key_status(&moto, "inv-mallory", &new_key).await,
        Some(StatusType::Inactive),
        "the key the leaked key created is deactivated"
    );
    let quarantine = world
        .group_by_name("hanko-quarantine")
        .await
        .expect("the quarantine group");
    assert_eq!(
        world.eni_groups(&launched.enis[0]).await,
        vec![quarantine.group_id().unwrap().to_string()],
        "the launched instance is isolated"
    );
    // The leaked key itself is still the pipeline's request, untouched by the investigation.
    assert_eq!(
        bot.app().store.get_request(request).unwrap().unwrap().state,
        RequestState::Pending
    );
    let recorded = bot
        .app()
        .store
        .query_audit(&AuditQuery {
            kind: Some(EventKind::InvestigationRecorded),
            finding_id: Some(f.id.clone()),
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].detail["events"], 5);
    assert_eq!(recorded[0].detail["outcome"], "complete");
    assert_eq!(
        recorded[0].detail["proposed"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(bot.app().store.verify_audit().is_ok());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_one_line_on_the_card_and_the_key_is_still_contained() {
    let (moto, standin, clients) = aws().await;
    let leaked_key = user_with_key(&moto, "inv-denied").await;
    standin.deny(true);
    let bot = Bot::start(1, clients).await;
    let fake = &bot.fake;
    let f = leaked("e2e-investigate-denied", "inv-denied", &leaked_key);
    let request = bot.accept(&f).expect("a request");
    let card = wait_for_card(fake, request).await;
    let edited = fake
        .wait_for_message(
            |m| {
                m.id == card.id
                    && embed_field(m, "What this key did")
                        .is_some_and(|v| v.contains("lookup failed"))
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", fake.message(card.id).map(|m| m.embed_text())));
    let field = embed_field(&edited, "What this key did")
        .unwrap()
        .to_string();
    let failures: Vec<&str> = field
        .lines()
        .filter(|l| l.contains("lookup failed"))
        .collect();
    assert!(!failures.is_empty(), "{field}");
    for line in &failures {
        assert!(line.contains("AccessDenied"), "{line}");
    }

    // The key's own containment does not wait for CloudTrail.
    let approve = card.custom_id_of("Approve").unwrap();
    let click = fake.inject_button(&approve, card.id, &alice());
    wait_for_original_edit(fake, &click).await;
    eventually("the leaked key is deactivated", || {
        matches!(
            bot.app().store.get_request(request).unwrap().unwrap().state,
            RequestState::Succeeded
        )
    })
    .await;
    assert_eq!(
        key_status(&moto, "inv-denied", &leaked_key).await,
        Some(StatusType::Inactive)
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_lookup_is_retried_to_a_summary() {
    let (moto, standin, clients) = aws().await;
    let leaked_key = user_with_key(&moto, "inv-throttled").await;
    let t = Utc::now() - chrono::Duration::minutes(5);
    // 30 events: more than a card lists, so the whole list is attached as JSON Lines.
    standin.add("us-east-1", events::bulk(&leaked_key, "us-east-1", 30, t));
    standin.throttle_next(3);
    let bot = Bot::start(1, clients).await;
    let f = leaked("e2e-investigate-throttled", "inv-throttled", &leaked_key);
    let request = bot.accept(&f).expect("a request");
    let card = wait_for_card(&bot.fake, request).await;
    let edited = bot
        .fake
        .wait_for_message(
            |m| {
                m.id == card.id
                    && embed_field(m, "What this key did")
                        .is_some_and(|v| v.contains("**30 events**"))
                    && !m.attachments.is_empty()
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {:?}",
                bot.fake.message(card.id).map(|m| m.embed_text())
            )
        });
    let field = embed_field(&edited, "What this key did").unwrap();
    assert!(!field.contains("lookup failed"), "{field}");
    let throttled = standin
        .lookups()
        .iter()
        .filter(|l| l.error.as_deref() == Some("ThrottlingException"))
        .count();
    assert_eq!(throttled, 3, "three throttled answers, then a summary");
    let file = &edited.attachments[0];
    assert_eq!(file.filename, format!("cloudtrail-{leaked_key}-30.jsonl"));
    let text = String::from_utf8(file.data.clone()).unwrap();
    assert_eq!(text.lines().count(), 30);
    for l in text.lines() {
        let e: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(e["event_id"].is_string(), "{l}");
    }
    assert!(
        field.contains(&format!("attached as `cloudtrail-{leaked_key}-30.jsonl`")),
        "{field}"
    );
    bot.stop().await;
}
