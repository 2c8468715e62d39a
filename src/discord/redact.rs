//! Keeps interaction and webhook tokens out of logs.
//!
//! An interaction's token lets whoever holds it answer (and edit the answers of) that
//! interaction for 15 minutes; a webhook's token, post as the webhook. Both travel in the path of
//! the REST routes serenity calls (Discord's API reference, "Receiving and Responding":
//! `POST /interactions/{interaction.id}/{interaction.token}/callback`, and the followup routes
//! `/webhooks/{application.id}/{interaction.token}/…`). When such a call fails, reqwest's error
//! says "error sending request for url (…)" with the whole URL, and serenity's
//! `HttpError::UnsuccessfulRequest` carries the URL too: a log line of the error chain would
//! print the token.
//!
//! [`redact_tokens`] scrubs the token segment of those two routes from any text; [`chain`]
//! renders an error with its sources, scrubbed. Every log line of the Discord adapter that
//! prints a serenity or reqwest error goes through [`chain`] (or [`redact_tokens`]).
//!
//! Errors have two audiences: the person sees one sentence with an error id, the log gets the
//! whole chain (scrubbed) under that id ([`crate::util::error_id`], the one scheme).
//!
//! Pure: no I/O, no serenity type.

/// What a token segment is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The routes whose segment after the next one is a token.
const TOKEN_ROUTES: [&str; 2] = ["/interactions/", "/webhooks/"];

/// `text` with the token of every `/interactions/<id>/<token>` and `/webhooks/<app>/<token>`
/// path replaced by [`REDACTED`] (the ids are kept: they are not secret and help debugging).
pub fn redact_tokens(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = TOKEN_ROUTES
            .iter()
            .filter_map(|route| rest.find(route).map(|at| (at, route.len())))
            .min();
        let Some((at, route_len)) = next else {
            out.push_str(rest);
            return out;
        };
        let after_route = at + route_len;
        out.push_str(&rest[..after_route]);
        rest = &rest[after_route..];
        // The id segment, kept.
        let id_len = segment_len(rest);
        out.push_str(&rest[..id_len]);
        rest = &rest[id_len..];
        // The token segment, after a separator (`/`, or its percent-encoding), replaced.
        let sep = if rest.starts_with('/') {
            1
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("%2f") {
            3
        } else {
            0
        };
        if sep == 0 {
            continue;
        }
        out.push_str(&rest[..sep]);
        rest = &rest[sep..];
        let token_len = segment_len(rest);
        if token_len > 0 {
            out.push_str(REDACTED);
            rest = &rest[token_len..];
        }
    }
}

/// The length of the path segment at the start of `s`: up to a separator of a path, a URL or
/// the text around it.
fn segment_len(s: &str) -> usize {
    s.find(|c: char| {
        matches!(
            c,
            '/' | '?'
                | '#'
                | ')'
                | '('
                | '"'
                | '\''
                | '`'
                | '<'
                | '>'
                | ','
                | ';'
                | '%'
                | ']'
                | '['
        ) || c.is_whitespace()
    })
    .unwrap_or(s.len())
}

/// `error` and its sources, joined with `: `, with tokens redacted: what a log line may print.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    redact_tokens(&crate::util::error_chain(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_interaction_and_webhook_paths_are_redacted() {
        let cases = [
            (
                "error sending request for url (http://127.0.0.1:9/api/v10/interactions/1234/aW50ZXJhY3Rpb246dG9rZW4/callback)",
                "error sending request for url (http://127.0.0.1:9/api/v10/interactions/1234/[redacted]/callback)",
            ),
            (
                "https://discord.com/api/v10/webhooks/99/tok.en-_x/messages/@original?wait=true",
                "https://discord.com/api/v10/webhooks/99/[redacted]/messages/@original?wait=true",
            ),
            (
                "/webhooks/99/secret",
                "/webhooks/99/[redacted]",
            ),
            (
                "a /interactions/1/t1/callback and /webhooks/2/t2 too",
                "a /interactions/1/[redacted]/callback and /webhooks/2/[redacted] too",
            ),
            (
                "/interactions/1%2Ft1/callback",
                "/interactions/1%2F[redacted]/callback",
            ),
            // Nothing to redact.
            ("/channels/1/messages", "/channels/1/messages"),
            ("/interactions/", "/interactions/"),
            ("/interactions/1", "/interactions/1"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(redact_tokens(text), want, "{text}");
        }
    }

    #[test]
    fn a_chain_is_joined_and_redacted() {
        #[derive(Debug, thiserror::Error)]
        #[error("Discord refused the answer")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request for url (http://h/api/v10/interactions/5/SECRET/callback)")]
        struct Inner;
        let text = chain(&Outer(Inner));
        assert_eq!(
            text,
            "Discord refused the answer: error sending request for url (http://h/api/v10/interactions/5/[redacted]/callback)"
        );
        assert!(!text.contains("SECRET"));
    }
}
