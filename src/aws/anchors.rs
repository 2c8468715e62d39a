//! S3 for audit anchors: write one digest object, list the digests under a prefix, read one
//! ([`crate::anchor`] owns the format and decides what to write).
//!
//! Permissions (see `config/iam-policy.json`): `hanko run` needs only `s3:PutObject` on
//! `arn:aws:s3:::BUCKET/PREFIX*`; `hanko audit verify --anchors` needs `s3:ListBucket` on the
//! bucket (with the prefix) and `s3:GetObject` on `BUCKET/PREFIX*`.
//!
//! With S3 Object Lock on the bucket, a `PutObject` must carry an integrity checksum (S3 API
//! reference, PutObject: "Content-MD5 or x-amz-sdk-checksum-algorithm header is required for
//! any request to upload an object with a retention period configured using Amazon S3 Object
//! Lock"): every digest is sent with a SHA-256 checksum.
//!
//! May use `aws-sdk-s3`; never imports sled or serenity.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use aws_sdk_s3::Client;

use super::error::classify;
use super::{AwsError, ErrorClass};

const PUT_OBJECT: &str = "s3:PutObject";
const GET_OBJECT: &str = "s3:GetObject";
const LIST_BUCKET: &str = "s3:ListBucket";

/// Writes one digest object.
pub async fn put_digest(
    s3: &Client,
    bucket: &str,
    key: &str,
    object: Vec<u8>,
) -> Result<(), AwsError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("application/json")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(object))
        .send()
        .await
        .map_err(|e| classify(&e, PUT_OBJECT, &format!("s3://{bucket}/{key}")))?;
    Ok(())
}

/// Every object key under `prefix`, in key order (all pages).
pub async fn list_keys(s3: &Client, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| classify(&e, LIST_BUCKET, &format!("s3://{bucket}/{prefix}")))?;
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        match out.next_continuation_token() {
            Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => break,
        }
    }
    keys.sort();
    Ok(keys)
}

/// The bytes of one object.
pub async fn get_object(s3: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
    let resource = format!("s3://{bucket}/{key}");
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(&e, GET_OBJECT, &resource))?;
    let body = out.body.collect().await.map_err(|e| {
        AwsError::local(
            ErrorClass::Retryable,
            GET_OBJECT,
            resource.clone(),
            format!("the object's body could not be read: {e}"),
        )
    })?;
    Ok(body.into_bytes().to_vec())
}
