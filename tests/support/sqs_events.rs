//! GuardDuty findings as they reach hanko through EventBridge and SQS, for the tests that feed
//! a queue in moto: the event GuardDuty emits, the queue, the send.

#![allow(dead_code)]

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};

/// The EventBridge event GuardDuty emits for a finding (`detail` in the API shape).
pub fn guardduty_event(detail: &Value) -> String {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": detail["accountId"],
        "time": detail["updatedAt"],
        "region": detail["region"],
        "resources": [],
        "detail": detail,
    })
    .to_string()
}

/// A queue named `name` whose received messages stay invisible for `visibility_secs` (SQS's
/// default is 30); its URL.
pub async fn queue(sqs: &aws_sdk_sqs::Client, name: &str, visibility_secs: u32) -> String {
    sqs.create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_secs.to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

pub async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str) {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}
