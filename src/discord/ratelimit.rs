//! Discord's 429 answers, read instead of guessed: the one REST call that must see them
//! (creating a message) and the reading of how long Discord asked hanko to wait.
//!
//! serenity 0.12 turns every unsuccessful answer into an `ErrorResponse` that keeps the status
//! and drops the headers; its body type needs a `code` that a rate-limit body does not have, so
//! the body's `retry_after` is lost too. [`Poster::create_message`] therefore builds the same
//! serenity [`Request`] that `Http::send_message` builds (`POST /channels/{id}/messages`) and
//! executes it itself, so a 429 becomes a [`RateLimited`] read from the answer:
//!
//! 1. `Retry-After`, the header Discord says to rely on (whole seconds on discord.com; a
//!    fraction is accepted). When the scope is a user's own bucket and `X-RateLimit-Reset-After`
//!    is the finer reading of the same wait (at most `Retry-After` and less than a second
//!    below it, as Discord's example answer has `65` and `64.57`), the finer one is used.
//! 2. `X-RateLimit-Reset-After` alone, when `Retry-After` is missing or unreadable and the limit
//!    is the bucket's own (not `global`, not a `shared` resource limit, whose wait the bucket's
//!    reset does not describe).
//! 3. The JSON body's `retry_after` (float seconds).
//! 4. Nothing readable: [`UNREADABLE_WAIT`], a whole channel window.
//!
//! Header values come from outside: a value that is not a finite, non-negative number of
//! seconds is ignored (the next source is read), and what is read is clamped to
//! [`MIN_RETRY_AFTER`]..=[`MAX_RETRY_AFTER`] (Discord has been seen answering days; the
//! callers' attempts are bounded, so an over-long limit costs at most a few capped waits).
//!
//! # The two modes of serenity's `Http`
//!
//! * **Its ratelimiter on** (production, discord.com, [`super::bot::http_client`] without an
//!   `api_base`): the request goes through `Ratelimiter::perform`, as `Http::send_message`'s
//!   would, which keeps the route's bucket and, on a 429 with a `Retry-After`, sleeps that long
//!   (whole seconds, uncapped: serenity's wait, not [`MAX_RETRY_AFTER`]) and sends again by
//!   itself; hanko never sees that 429 and does not wait a second time. A 429 it hands back is
//!   one it did not wait for (it named no `Retry-After`), and hanko waits what the rest of the
//!   answer says (steps 2 to 4 above). The metric of 429s then counts only those.
//! * **Its ratelimiter off** (`discord.api_base` set: a proxy or the test fake): serenity keeps
//!   its reqwest client private, so the request goes out on a reqwest client of the
//!   [`Poster`]'s own, and every 429 comes back to hanko, which waits its `retry_after`.
//!
//! Either way the caller waits from the moment the answer arrived
//! ([`PostError::RateLimited`]'s `arrived`), not from when it was read, and keeps its own pace
//! otherwise (the outbox's budget, the digest's bounded retries).
//!
//! Only creating a message goes through here: edits and interaction answers stay with serenity's
//! `Http` (a 429 on an edit is logged by its caller; the outbox does not retry edits).
//!
//! May use serenity's public HTTP types and reqwest; never the app, the store or the AWS SDK.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serenity::all::{ChannelId, CreateMessage, Message};
use serenity::http::{ErrorResponse, Http, HttpError, LightMethod, Request, Route};
use tokio::time::Instant;

/// The shortest wait a 429 gets (a `retry_after` of 0 is not an invitation to hammer).
pub const MIN_RETRY_AFTER: Duration = Duration::from_millis(10);
/// The longest wait one 429 gets; a longer `retry_after` is waited this long and the post is
/// tried again (the callers' attempts are bounded).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The wait when a 429 says nothing readable: Discord's channel window (5 s) and a margin, as
/// the outbox's [`POST_WINDOW`](super::outbox::POST_WINDOW).
pub const UNREADABLE_WAIT: Duration = super::outbox::POST_WINDOW;

/// `Retry-After`: seconds to wait (Discord: "rely on the `Retry-After` header").
pub const RETRY_AFTER: &str = "retry-after";
/// `X-RateLimit-Reset-After`: seconds until the bucket resets, with decimals.
pub const RESET_AFTER: &str = "x-ratelimit-reset-after";
/// `X-RateLimit-Scope`: `user`, `global` or `shared`, on 429s only.
pub const SCOPE: &str = "x-ratelimit-scope";
/// `X-RateLimit-Global`: present on a 429 of the global limit.
pub const GLOBAL: &str = "x-ratelimit-global";

/// What `X-RateLimit-Scope` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The bot's own limit on this route (its bucket).
    User,
    /// The bot's global limit (all routes).
    Global,
    /// A limit of the resource (the channel), shared with everyone; not counted against the bot.
    Shared,
}

impl Scope {
    fn parse(value: &str) -> Option<Scope> {
        match value.trim().to_ascii_lowercase().as_str() {
            "user" => Some(Scope::User),
            "global" => Some(Scope::Global),
            "shared" => Some(Scope::Shared),
            _ => None,
        }
    }
}

/// Where [`RateLimited::retry_after`] was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    RetryAfterHeader,
    ResetAfterHeader,
    Body,
    /// Nothing was readable: [`UNREADABLE_WAIT`].
    Nothing,
}

/// A 429, as read from Discord's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimited {
    /// How long to wait from when the answer arrived, clamped to
    /// [`MIN_RETRY_AFTER`]..=[`MAX_RETRY_AFTER`].
    pub retry_after: Duration,
    /// The global limit (every route), from `X-RateLimit-Global` or the body's `global`.
    pub global: bool,
    /// `X-RateLimit-Scope`, when present and known.
    pub scope: Option<Scope>,
    pub read_from: ReadFrom,
}

impl RateLimited {
    /// Reads a 429 from its headers and body (see the module docs for the order). Never fails:
    /// what cannot be read is skipped, and nothing readable waits [`UNREADABLE_WAIT`].
    pub fn read(headers: &HeaderMap, body: &[u8]) -> RateLimited {
        let body: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let scope = header_str(headers, SCOPE).and_then(Scope::parse);
        let global = scope == Some(Scope::Global)
            || headers.contains_key(GLOBAL)
            || body
                .as_ref()
                .and_then(|b| b.get("global"))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
        // The bucket's reset describes the wait only for the bucket's own limit.
        let own_bucket = !global && scope != Some(Scope::Shared);
        let retry = header_str(headers, RETRY_AFTER).and_then(seconds);
        let reset = header_str(headers, RESET_AFTER)
            .and_then(seconds)
            .filter(|_| own_bucket);
        let body_retry = body
            .as_ref()
            .and_then(|b| b.get("retry_after"))
            .and_then(serde_json::Value::as_f64)
            .and_then(finite_seconds);
        let (wait, read_from) = match (retry, reset) {
            (Some(retry), Some(reset))
                if reset <= retry && retry.saturating_sub(reset) < Duration::from_secs(1) =>
            {
                (reset, ReadFrom::ResetAfterHeader)
            }
            (Some(retry), _) => (retry, ReadFrom::RetryAfterHeader),
            (None, Some(reset)) => (reset, ReadFrom::ResetAfterHeader),
            (None, None) => match body_retry {
                Some(wait) => (wait, ReadFrom::Body),
                None => (UNREADABLE_WAIT, ReadFrom::Nothing),
            },
        };
        RateLimited {
            retry_after: wait.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER),
            global,
            scope,
            read_from,
        }
    }
}

/// A header's value as text, when it is present and visible ASCII.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A number of seconds (`"1"`, `"0.3"`, `"64.57"`); `None` for anything else (an HTTP date, a
/// negative number, NaN, infinity, garbage).
fn seconds(text: &str) -> Option<Duration> {
    text.trim().parse::<f64>().ok().and_then(finite_seconds)
}

fn finite_seconds(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    // Anything past the cap is the cap; `try_from` refuses only what no Duration holds.
    Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
}

/// Why a message was not created.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("Discord answered 429 (retry after {:?}, read from {:?})", .limit.retry_after, .limit.read_from)]
    RateLimited {
        limit: RateLimited,
        /// When the answer arrived: the wait counts from here.
        arrived: Instant,
    },
    #[error(transparent)]
    Discord(#[from] serenity::Error),
}

/// Creates messages through serenity's `Http`, seeing a 429's headers (see the module docs).
#[derive(Debug, Clone)]
pub struct Poster {
    http: Arc<Http>,
    /// The client for requests without serenity's ratelimiter (`None` when it is on, or when a
    /// client could not be built: then serenity sends and a 429 waits [`UNREADABLE_WAIT`]).
    direct: Option<reqwest::Client>,
}

impl Poster {
    pub fn new(http: Arc<Http>) -> Poster {
        let direct = if http.ratelimiter.is_some() {
            None
        } else {
            // serenity built the same kind of client before this one (it panics if it cannot).
            match reqwest::Client::builder().use_rustls_tls().build() {
                Ok(client) => Some(client),
                Err(e) => {
                    tracing::error!(error = %e, "no HTTP client for Discord posts of hanko's own; a 429 waits a whole window");
                    None
                }
            }
        };
        Poster { http, direct }
    }

    /// `POST /channels/{channel}/messages` with `message` (no files), as `Http::send_message`.
    pub async fn create_message(
        &self,
        channel: ChannelId,
        message: &CreateMessage,
    ) -> Result<Message, PostError> {
        let body = serde_json::to_vec(message).map_err(serenity::Error::from)?;
        let request = Request::new(
            Route::ChannelMessages {
                channel_id: channel,
            },
            LightMethod::Post,
        )
        .body(Some(body));
        let response = match (&self.http.ratelimiter, &self.direct) {
            (Some(ratelimiter), _) => ratelimiter.perform(request).await?,
            (None, Some(client)) => {
                let built = request
                    .build(client, self.http.token(), self.http.proxy.as_deref())?
                    .build()
                    .map_err(serenity::Error::from)?;
                client.execute(built).await.map_err(serenity::Error::from)?
            }
            (None, None) => {
                return match self.http.send_message(channel, vec![], message).await {
                    Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(r)))
                        if r.status_code == StatusCode::TOO_MANY_REQUESTS =>
                    {
                        Err(PostError::RateLimited {
                            limit: RateLimited::read(&HeaderMap::new(), &[]),
                            arrived: Instant::now(),
                        })
                    }
                    other => other.map_err(PostError::from),
                };
            }
        };
        let arrived = Instant::now();
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let headers = response.headers().clone();
            // A body that cannot be read is an empty one: the headers may still say it all.
            let body = response.bytes().await.unwrap_or_default();
            return Err(PostError::RateLimited {
                limit: RateLimited::read(&headers, &body),
                arrived,
            });
        }
        if !status.is_success() {
            return Err(serenity::Error::Http(HttpError::UnsuccessfulRequest(
                ErrorResponse::from_response(response, LightMethod::Post.reqwest_method()).await,
            ))
            .into());
        }
        let bytes = response.bytes().await.map_err(serenity::Error::from)?;
        Ok(serde_json::from_slice(&bytes).map_err(serenity::Error::from)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    const DISCORD_BODY: &[u8] =
        br#"{"message": "You are being rate limited.", "retry_after": 0.3, "global": false}"#;

    #[test]
    fn retry_after_is_read_from_the_headers_then_the_body_then_a_whole_window() {
        let ms = Duration::from_millis;
        // (case, headers, body, wait, read from)
        let cases: Vec<(&str, HeaderMap, &[u8], Duration, ReadFrom)> = vec![
            (
                "Discord's example: Retry-After rounds Reset-After up; the finer one is used",
                headers(&[
                    (RETRY_AFTER, b"1"),
                    (RESET_AFTER, b"0.300"),
                    (SCOPE, b"user"),
                ]),
                DISCORD_BODY,
                ms(300),
                ReadFrom::ResetAfterHeader,
            ),
            (
                "a fractional Retry-After",
                headers(&[(RETRY_AFTER, b"0.75")]),
                b"",
                ms(750),
                ReadFrom::RetryAfterHeader,
            ),
            (
                "Reset-After far below Retry-After describes another wait",
                headers(&[(RETRY_AFTER, b"3"), (RESET_AFTER, b"0.5"), (SCOPE, b"user")]),
                b"",
                ms(3_000),
                ReadFrom::RetryAfterHeader,
            ),
            (
                "a shared resource limit: the bucket's reset is not the wait",
                headers(&[
                    (RETRY_AFTER, b"2"),
                    (RESET_AFTER, b"1.5"),
                    (SCOPE, b"shared"),
                ]),
                b"",
                ms(2_000),
                ReadFrom::RetryAfterHeader,
            ),
            (
                "Retry-After missing: Reset-After",
                headers(&[(RESET_AFTER, b"1.25")]),
                DISCORD_BODY,
                ms(1_250),
                ReadFrom::ResetAfterHeader,
            ),
            (
                "Retry-After garbage: Reset-After",
                headers(&[(RETRY_AFTER, b"soon"), (RESET_AFTER, b"0.3")]),
                b"",
                ms(300),
                ReadFrom::ResetAfterHeader,
            ),
            (
                "an HTTP-date Retry-After is not read",
                headers(&[(RETRY_AFTER, b"Wed, 21 Oct 2015 07:28:00 GMT")]),
                DISCORD_BODY,
                ms(300),
                ReadFrom::Body,
            ),
            (
                "no headers: the body",
                HeaderMap::new(),
                DISCORD_BODY,
                ms(300),
                ReadFrom::Body,
            ),
            (
                "global, no Retry-After: the bucket's reset is ignored, the body read",
                headers(&[(RESET_AFTER, b"0.1"), (GLOBAL, b"true")]),
                br#"{"retry_after": 2.5, "global": true}"#,
                ms(2_500),
                ReadFrom::Body,
            ),
            (
                "garbage everywhere: a whole window",
                headers(&[
                    (RETRY_AFTER, b"NaN"),
                    (RESET_AFTER, b"-4"),
                    (SCOPE, b"\xff\xfe"),
                ]),
                br#"{"retry_after": "later"}"#,
                UNREADABLE_WAIT,
                ReadFrom::Nothing,
            ),
            (
                "not UTF-8, not JSON",
                headers(&[(RETRY_AFTER, b"\xc3\x28")]),
                b"\xff<html>",
                UNREADABLE_WAIT,
                ReadFrom::Nothing,
            ),
            (
                "nothing at all",
                HeaderMap::new(),
                b"",
                UNREADABLE_WAIT,
                ReadFrom::Nothing,
            ),
            (
                "infinity is garbage",
                headers(&[(RETRY_AFTER, b"inf")]),
                b"",
                UNREADABLE_WAIT,
                ReadFrom::Nothing,
            ),
            (
                "huge: capped",
                headers(&[(RETRY_AFTER, b"172800")]),
                b"",
                MAX_RETRY_AFTER,
                ReadFrom::RetryAfterHeader,
            ),
            (
                "beyond any Duration: capped",
                headers(&[(RETRY_AFTER, b"1e300")]),
                b"",
                MAX_RETRY_AFTER,
                ReadFrom::RetryAfterHeader,
            ),
            (
                "zero: floored",
                headers(&[(RETRY_AFTER, b"0")]),
                b"",
                MIN_RETRY_AFTER,
                ReadFrom::RetryAfterHeader,
            ),
        ];
        for (case, headers, body, wait, read_from) in cases {
            let limit = RateLimited::read(&headers, body);
            assert_eq!(limit.retry_after, wait, "{case}");
            assert_eq!(limit.read_from, read_from, "{case}");
        }
    }

    #[test]
    fn scope_and_global_are_read_from_headers_or_body() {
        let user = RateLimited::read(&headers(&[(SCOPE, b"User")]), DISCORD_BODY);
        assert_eq!((user.scope, user.global), (Some(Scope::User), false));
        let global = RateLimited::read(&headers(&[(SCOPE, b"global"), (RETRY_AFTER, b"65")]), b"");
        assert_eq!((global.scope, global.global), (Some(Scope::Global), true));
        assert_eq!(global.retry_after, MAX_RETRY_AFTER, "65 s, capped");
        let by_body =
            RateLimited::read(&HeaderMap::new(), br#"{"retry_after": 1, "global": true}"#);
        assert_eq!((by_body.scope, by_body.global), (None, true));
        let unknown = RateLimited::read(&headers(&[(SCOPE, b"planet")]), b"");
        assert_eq!((unknown.scope, unknown.global), (None, false));
    }
}
