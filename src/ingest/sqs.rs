//! EventBridge through SQS: long-poll the configured queue, parse each body with
//! [`finding::parse_eventbridge`] (GuardDuty `GuardDuty Finding` events and Security Hub
//! `Security Hub Findings - Imported`), store through the pipeline, flush, and only then delete.
//!
//! Uses the SQS SDK client, the store and the pipeline; never imports serenity or sled.
//!
//! A message is acknowledged (deleted) in exactly two cases:
//!
//! * its findings are stored and the store is flushed to disk, or
//! * its body does not parse, or a finding in it has an invalid id
//!   ([`finding::check_finding_id`]): it is kept in the store's quarantine with the error and
//!   the raw body (audited as `FindingRejected`), then deleted, so it neither loops nor vanishes.
//!
//! A message whose findings could not be stored (a store error) is not deleted: SQS delivers it
//! again after its visibility timeout, and after the queue's `maxReceiveCount` it goes to the
//! dead-letter queue. A crash between store and delete is the same redelivery, and the store
//! deduplicates it (no second finding, no second request).
//!
//! The three steps are public ([`SqsIngest::receive`], [`SqsIngest::store`],
//! [`SqsIngest::delete`]) so a test can stop between store and delete, as a crash would.

use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use chrono::{DateTime, TimeZone, Utc};

use super::{accept, checked_ids, quarantine, IngestError, PollReport, SQS_SOURCE};
use crate::app::App;
use crate::aws::error::classify;
use crate::aws::{AwsError, ErrorClass};
use crate::finding;

/// Long-poll wait, the longest SQS allows.
pub const WAIT_TIME_SECONDS: i32 = 20;
/// Messages per receive, the most SQS allows (and the most one DeleteMessageBatch takes).
pub const MAX_MESSAGES: i32 = 10;

/// Reads the findings queue.
pub struct SqsIngest {
    app: App,
    client: aws_sdk_sqs::Client,
    queue_url: String,
    wait_seconds: i32,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its findings (ids) are stored and flushed.
    Stored { finding_ids: Vec<String> },
    /// It did not parse and is in the quarantine under this id.
    Quarantined { id: u64 },
}

/// One message handled by [`SqsIngest::store`], ready to be deleted.
#[derive(Debug, Clone)]
pub struct Handled {
    pub message_id: String,
    pub receipt_handle: String,
    pub outcome: Outcome,
    /// From the message's `SentTimestamp` (its arrival in SQS) to its findings being stored
    /// and flushed; `None` when SQS did not give the attribute.
    pub delivery: Option<Duration>,
}

/// The result of [`SqsIngest::store`].
#[derive(Debug, Default)]
pub struct StoredBatch {
    /// Messages that may be deleted.
    pub handled: Vec<Handled>,
    pub report: PollReport,
    /// The store failed on a message: it and the ones after it stay in the queue.
    pub error: Option<IngestError>,
}

/// What one [`SqsIngest::poll_once`] did.
#[derive(Debug, Default)]
pub struct SqsReport {
    pub report: PollReport,
    pub handled: Vec<Handled>,
    pub deleted: usize,
}

impl SqsIngest {
    /// Now, on the application's clock.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.app.clock.now()
    }

    pub fn new(app: App, client: aws_sdk_sqs::Client, queue_url: String) -> SqsIngest {
        SqsIngest {
            app,
            client,
            queue_url,
            wait_seconds: WAIT_TIME_SECONDS,
        }
    }

    /// A shorter long-poll wait (0 to 20 s); tests use it to finish quickly.
    pub fn with_wait_seconds(mut self, secs: i32) -> SqsIngest {
        self.wait_seconds = secs.clamp(0, WAIT_TIME_SECONDS);
        self
    }

    /// Receive, store, delete.
    pub async fn poll_once(&self) -> Result<SqsReport, IngestError> {
        let messages = self.receive().await?;
        if messages.is_empty() {
            return Ok(SqsReport::default());
        }
        let batch = self.store(&messages, self.app.clock.now());
        let deleted = self.delete(&batch.handled).await?;
        if let Some(e) = batch.error {
            return Err(e);
        }
        Ok(SqsReport {
            report: batch.report,
            handled: batch.handled,
            deleted,
        })
    }

    /// Long-polls for up to [`MAX_MESSAGES`] messages, with their `SentTimestamp`.
    pub async fn receive(&self) -> Result<Vec<Message>, IngestError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .wait_time_seconds(self.wait_seconds)
            .max_number_of_messages(MAX_MESSAGES)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await
            .map_err(|e| classify(&e, "sqs:ReceiveMessage", &self.queue_url))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Parses and stores each message (or quarantines it), then flushes the store. Stops at
    /// the first store error; the messages handled before it may be deleted.
    pub fn store(&self, messages: &[Message], now: DateTime<Utc>) -> StoredBatch {
        let mut batch = StoredBatch::default();
        let mut pending = Vec::new();
        for m in messages {
            let Some(receipt_handle) = m.receipt_handle() else {
                continue;
            };
            match self.store_one(m, now, &mut batch.report) {
                Ok(outcome) => pending.push((m, receipt_handle.to_string(), outcome)),
                Err(e) => {
                    batch.error = Some(e);
                    break;
                }
            }
        }
        // Durable before anything is acknowledged.
        if let Err(e) = self.app.store.flush() {
            batch.error = Some(e.into());
            return batch;
        }
        let stored_at = self.app.clock.now();
        for (m, receipt_handle, outcome) in pending {
            let delivery = sent_at(m).and_then(|sent| (stored_at - sent).to_std().ok());
            batch.handled.push(Handled {
                message_id: m.message_id().unwrap_or_default().to_string(),
                receipt_handle,
                outcome,
                delivery,
            });
        }
        if let Some(ms) = batch
            .handled
            .iter()
            .filter_map(|h| h.delivery)
            .next_back()
            .map(|d| d.as_millis())
        {
            let _ = self.app.store.record_delivery_ms(SQS_SOURCE, ms);
        }
        batch
    }

    fn store_one(
        &self,
        m: &Message,
        now: DateTime<Utc>,
        report: &mut PollReport,
    ) -> Result<Outcome, IngestError> {
        let body = m.body().unwrap_or_default();
        match finding::parse_eventbridge(body).and_then(checked_ids) {
            Ok(findings) => {
                let mut finding_ids = Vec::with_capacity(findings.len());
                for f in &findings {
                    accept(&self.app, f, now, report)?;
                    finding_ids.push(f.id.clone());
                }
                Ok(Outcome::Stored { finding_ids })
            }
            Err(e) => {
                let error = if body.is_empty() {
                    "the message has no body".to_string()
                } else {
                    e.to_string()
                };
                let id = quarantine(&self.app, SQS_SOURCE, body, &error, now, report)?;
                Ok(Outcome::Quarantined { id })
            }
        }
    }

    /// Deletes handled messages, ten at a time. Returns how many SQS confirmed; a message SQS
    /// failed to delete is delivered again and found unchanged by the store.
    pub async fn delete(&self, handled: &[Handled]) -> Result<usize, IngestError> {
        let mut deleted = 0;
        for chunk in handled.chunks(MAX_MESSAGES as usize) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&h.receipt_handle)
                        .build()
                        .map_err(|e| {
                            IngestError::from(AwsError::local(
                                ErrorClass::Other,
                                "sqs:DeleteMessageBatch",
                                &self.queue_url,
                                format!("cannot build the request: {e}"),
                            ))
                        })
                })
                .collect::<Result<Vec<_>, IngestError>>()?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| classify(&e, "sqs:DeleteMessageBatch", &self.queue_url))?;
            deleted += out.successful().len();
            for f in out.failed() {
                tracing::warn!(
                    queue = %self.queue_url,
                    code = f.code(),
                    "SQS did not delete a stored message; it will be delivered again and deduplicated"
                );
            }
        }
        Ok(deleted)
    }
}

/// The message's `SentTimestamp` (epoch milliseconds).
fn sent_at(m: &Message) -> Option<DateTime<Utc>> {
    let ms: i64 = m
        .attributes()?
        .get(&MessageSystemAttributeName::SentTimestamp)?
        .parse()
        .ok()?;
    Utc.timestamp_millis_opt(ms).single()
}

/// The region of an AWS queue URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
pub fn queue_region(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let rest = host.strip_prefix("sqs.")?;
    let (region, domain) = rest.split_once('.')?;
    (domain.starts_with("amazonaws.") && !region.is_empty()).then(|| region.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_from_queue_url() {
        let table = [
            (
                "https://sqs.eu-west-1.amazonaws.com/111111111111/hanko",
                Some("eu-west-1"),
            ),
            (
                "https://sqs.cn-north-1.amazonaws.com.cn/111111111111/q",
                Some("cn-north-1"),
            ),
            ("http://127.0.0.1:5000/123456789012/q", None),
            ("https://queue.amazonaws.com/1/q", None),
            ("garbage", None),
        ];
        for (url, want) in table {
            assert_eq!(queue_region(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn sent_timestamp_is_read_in_milliseconds() {
        let m = Message::builder()
            .attributes(MessageSystemAttributeName::SentTimestamp, "1714557600123")
            .build();
        assert_eq!(sent_at(&m).unwrap().timestamp_millis(), 1_714_557_600_123);
        let m = Message::builder()
            .attributes(MessageSystemAttributeName::SentTimestamp, "soon")
            .build();
        assert_eq!(sent_at(&m), None);
        assert_eq!(sent_at(&Message::builder().build()), None);
    }
}
