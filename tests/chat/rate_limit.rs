//! Discord's rate limit, end to end (issue 14, item 3): a card Discord refuses with a 429 is
//! posted once the `retry_after` of that answer has passed, not a whole 5 s window later. The
//! real bot (serenity with its ratelimiter off, the outbox) against the Discord fake answering
//! the next posts with a 429 worded as Discord's docs show one
//! ([`DiscordFake::rate_limit_next_posts`]: `Retry-After: 1`, `X-RateLimit-Reset-After: 0.300`,
//! `X-RateLimit-Scope: user`, body `retry_after: 0.3`). The digest's side is in
//! `posture_digest.rs`; the reading of the headers is unit-tested in `src/discord/ratelimit.rs`.

use crate::support::discord_fake::{DiscordFake, RecordedRequest};
use crate::support::e2e_bot;
use crate::support::finding_builder::FindingBuilder;

use std::time::Duration;

use hanko::discord::outbox::POST_WINDOW;
use serde_json::json;

use e2e_bot::*;

/// What the fake asks to wait.
const RETRY_AFTER: Duration = Duration::from_millis(300);
/// The least time between a 429 and the next post: its `retry_after`, less a margin for the
/// time the answer took to reach hanko (the wait counts from then, so it only adds).
const AT_LEAST: Duration = Duration::from_millis(250);
/// The most: half the old whole-window wait ([`POST_WINDOW`], 5.25 s), so waiting a window
/// fails, with room for a slow shared machine.
const AT_MOST: Duration = Duration::from_millis(2_500);

fn finding(id: &str, key: &str) -> hanko::finding::Finding {
    FindingBuilder::new(id)
        .access_key("alice", key)
        .finding_type("UnauthorizedAccess:IAMUser/TorIPCaller")
        .severity(8.0)
        .build()
}

/// Every `POST /channels/*/messages` so far, once `count` of them were answered.
async fn posts(fake: &DiscordFake, count: usize) -> Vec<RecordedRequest> {
    fake.wait_for_requests(|r| r.matches("POST", "/channels/*/messages"), count, WAIT)
        .await
        .unwrap()
}

async fn metric(bot: &Bot, line: &str) -> bool {
    let addr = bot.running.as_ref().unwrap().http_addr;
    let (status, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    metrics.contains(&format!("\n{line}\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_refused_with_429_is_posted_after_its_retry_after_not_a_whole_window() {
    assert!(AT_MOST < POST_WINDOW);
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;
    fake.rate_limit_next_posts(1, RETRY_AFTER);

    bot.accept(&finding("rl-429-once", "AKIARATELIMIT0000001"));
    let posts = posts(fake, 2).await;
    let statuses: Vec<u16> = posts.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200], "one 429, then the card");
    assert_eq!(
        posts[0].response,
        Some(
            json!({"message": "You are being rate limited.", "retry_after": 0.3, "global": false})
        )
    );
    assert_eq!(posts[0].body, posts[1].body, "the same card, sent again");

    let waited = posts[1].received_at.duration_since(posts[0].received_at);
    eprintln!("429 with retry_after {RETRY_AFTER:?}: the card was sent again {waited:?} later");
    assert!(
        waited >= AT_LEAST,
        "{waited:?}: sooner than the retry_after"
    );
    assert!(
        waited < AT_MOST,
        "{waited:?}: the retry_after was {RETRY_AFTER:?}, not a whole window"
    );
    assert_eq!(fake.channel_posts(fake.channel_id()).len(), 1);
    assert!(metric(&bot, "hanko_discord_rate_limited_total 1").await);
    assert!(metric(&bot, "hanko_cards_posted_total 1").await);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_429_in_a_row_is_waited_for_its_own_retry_after_and_counted() {
    let bot = Bot::start(1, unreachable_aws()).await;
    let fake = &bot.fake;
    fake.rate_limit_next_posts(2, RETRY_AFTER);

    bot.accept(&finding("rl-429-twice", "AKIARATELIMIT0000002"));
    let posts = posts(fake, 3).await;
    let statuses: Vec<u16> = posts.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    for pair in posts.windows(2) {
        let waited = pair[1].received_at.duration_since(pair[0].received_at);
        assert!(waited >= AT_LEAST, "{waited:?}");
        assert!(waited < AT_MOST, "{waited:?}");
    }
    assert!(metric(&bot, "hanko_discord_rate_limited_total 2").await);

    // The pace after it is the budget's: the next card goes out at once.
    bot.accept(&finding("rl-after", "AKIARATELIMIT0000003"));
    let after = self::posts(fake, 4).await;
    assert_eq!(after[3].status, 200);
    let gap = after[3].received_at.duration_since(after[2].received_at);
    assert!(
        gap < AT_MOST,
        "{gap:?}: the 429s hold nothing after their retry_after"
    );
    bot.stop().await;
}
