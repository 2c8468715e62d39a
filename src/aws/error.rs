//! Classifying AWS failures once: retryable, already contained, forbidden, not found, other.
//!
//! Owns [`AwsError`] (what a failed step call reports), [`classify`] (an SDK error to a
//! [`AwsError`]) and [`with_retries`] (bounded exponential backoff with jitter for the
//! retryable class; the backoff itself is [`crate::util::backoff`]). It may use the AWS SDK's
//! error types and [`crate::util`]; it never imports sled or serenity.
//!
//! Decide on the modeled error code (from `ProvideErrorMetadata`) and the `SdkError` variant,
//! never on a message string. The `message` of a [`AwsError`] is written for people: one
//! sentence built here, plus AWS's own one-line message when it gave one. Raw SDK `Debug` output
//! never goes into it; the full error chain goes to the log at debug level, with the request id
//! to find it by.

use std::future::Future;
use std::time::Duration;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::request_id::RequestId;
use serde::{Deserialize, Serialize};

/// What kind of failure an AWS error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Throttling, 5xx, timeouts, dispatch failures, and a read-back that does not show the
    /// change yet (IAM and S3 are eventually consistent): retry with backoff.
    Retryable,
    /// The resource is already in the state the step wants.
    AlreadyContained,
    /// AccessDenied, UnauthorizedOperation, ...: a permission is missing.
    Forbidden,
    /// The resource does not exist (any more).
    NotFound,
    /// Anything else: fail the step.
    Other,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::AlreadyContained => "already_contained",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Other => "other",
        }
    }
}

/// A failed AWS call (a step, a lookup, an ingest read), classified, with what is needed to act
/// on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{operation} on {resource}: {message}")]
pub struct AwsError {
    pub class: ErrorClass,
    /// The operation, as IAM names it (`iam:UpdateAccessKey`).
    pub operation: String,
    /// The resource id the call was about.
    pub resource: String,
    /// The AWS error code (`AccessDenied`, `Throttling`, ...), when AWS gave one.
    pub code: Option<String>,
    /// The AWS request id, when AWS gave one.
    pub aws_request_id: Option<String>,
    /// One sentence for people: what happened and, for Forbidden, which permission is missing.
    pub message: String,
}

impl AwsError {
    /// An error hanko found itself (bad step parameters, a read-back that does not match...),
    /// with no AWS error code.
    pub fn local(
        class: ErrorClass,
        operation: impl Into<String>,
        resource: impl Into<String>,
        message: impl Into<String>,
    ) -> AwsError {
        AwsError {
            class,
            operation: operation.into(),
            resource: resource.into(),
            code: None,
            aws_request_id: None,
            message: message.into(),
        }
    }

    /// A step hanko cannot run as written (wrong kind for this module, a parameter missing):
    /// an [`ErrorClass::Other`] about the step's own operation and target.
    pub fn invalid_step(step: &crate::plan::Step, message: impl Into<String>) -> AwsError {
        AwsError::local(
            ErrorClass::Other,
            step.operation.clone(),
            step.target.to_string(),
            message,
        )
    }

    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }
}

/// Error codes that mean "slow down" or "AWS had a problem": retry.
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "EC2ThrottledException",
    "PriorRequestNotComplete",
    "BandwidthLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServiceFailure",
    "Unavailable",
];

/// Error codes that mean a permission is missing on the caller's side.
const PERMISSION_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "AllAccessDisabled",
];

/// Error codes that mean the caller's credentials are not accepted at all.
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "InvalidToken",
];

/// Error codes that mean the resource does not exist. Any EC2 code ending in `.NotFound`
/// (`InvalidInstanceID.NotFound`, `InvalidNetworkInterfaceID.NotFound`, ...) also does.
const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchEntity",
    "NoSuchEntityException",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "ResourceNotFoundException",
    "NoSuchPublicAccessBlockConfiguration",
    "OwnershipControlsNotFoundError",
];

/// How the SDK failed, without the payload: what [`classify_parts`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request could not be built (bad input): never retried.
    Construction,
    /// The request timed out.
    Timeout,
    /// The request could not be sent or no response came (connection refused, reset, DNS).
    Dispatch,
    /// A response came but could not be parsed.
    Response,
    /// AWS answered with an error.
    Service,
}

/// The class of a failure, from its variant, the modeled error code and the HTTP status.
pub fn classify_parts(failure: Failure, code: Option<&str>, status: Option<u16>) -> ErrorClass {
    match failure {
        Failure::Construction => return ErrorClass::Other,
        Failure::Timeout | Failure::Dispatch => return ErrorClass::Retryable,
        Failure::Response | Failure::Service => {}
    }
    if let Some(code) = code {
        if RETRYABLE_CODES.contains(&code) {
            return ErrorClass::Retryable;
        }
        if PERMISSION_CODES.contains(&code) || CREDENTIAL_CODES.contains(&code) {
            return ErrorClass::Forbidden;
        }
        if NOT_FOUND_CODES.contains(&code) || code.ends_with(".NotFound") {
            return ErrorClass::NotFound;
        }
    }
    match status {
        Some(429) => ErrorClass::Retryable,
        Some(s) if s >= 500 => ErrorClass::Retryable,
        // Only when AWS gave no code (S3 answers HEAD requests without a body).
        Some(403) if code.is_none() => ErrorClass::Forbidden,
        Some(404) if code.is_none() => ErrorClass::NotFound,
        _ => ErrorClass::Other,
    }
}

/// Classifies an SDK error from `operation` (as IAM names it, `iam:UpdateAccessKey`) on
/// `resource`, with a message for people and the AWS request id.
pub fn classify<E>(err: &SdkError<E, HttpResponse>, operation: &str, resource: &str) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let failure = match err {
        SdkError::ConstructionFailure(_) => Failure::Construction,
        SdkError::TimeoutError(_) => Failure::Timeout,
        SdkError::DispatchFailure(d) if d.is_user() => Failure::Construction,
        SdkError::DispatchFailure(_) => Failure::Dispatch,
        SdkError::ResponseError(_) => Failure::Response,
        _ => Failure::Service,
    };
    let code = err.code().map(str::to_string).or_else(|| {
        err.raw_response()
            .and_then(|r| r.body().bytes())
            .and_then(code_in_xml_body)
    });
    let status = err.raw_response().map(|r| r.status().as_u16());
    let class = classify_parts(failure, code.as_deref(), status);
    let aws_request_id = err.request_id().map(str::to_string);
    tracing::debug!(
        operation,
        resource,
        class = class.as_str(),
        code = code.as_deref().unwrap_or(""),
        aws_request_id = aws_request_id.as_deref().unwrap_or(""),
        error = %DisplayErrorContext(err),
        "AWS call failed"
    );
    let message = describe(
        class,
        failure,
        code.as_deref(),
        operation,
        resource,
        err.message(),
    );
    AwsError {
        class,
        operation: operation.to_string(),
        resource: resource.to_string(),
        code,
        aws_request_id,
        message,
    }
}

/// The `<Code>` of an XML error body the SDK could not parse. Query-protocol services answer
/// `<ErrorResponse><Error><Code>`; moto (and some proxies) wrap it as
/// `<ErrorResponse><Errors><Error><Code>`, which the SDK does not read, leaving no code at all.
/// Only a plausible error code is taken (letters, digits, `.`, `_`, `-`; at most 100 bytes).
fn code_in_xml_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = text[start..start + len].trim();
    let plausible = !code.is_empty()
        && code.len() <= 100
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    plausible.then(|| code.to_string())
}

/// The sentence for people.
fn describe(
    class: ErrorClass,
    failure: Failure,
    code: Option<&str>,
    operation: &str,
    resource: &str,
    aws_message: Option<&str>,
) -> String {
    let mut sentence = match (class, code) {
        (ErrorClass::Forbidden, Some(c)) if CREDENTIAL_CODES.contains(&c) => format!(
            "AWS did not accept hanko's credentials ({c}) for {operation}: check the credentials \
             or the assumed role of this account"
        ),
        (ErrorClass::Forbidden, _) => format!(
            "hanko's role lacks the permission {operation} on {resource}: grant it \
             (see config/iam-policy.json) and retry"
        ),
        (ErrorClass::NotFound, _) => format!("{resource} does not exist (any more)"),
        (ErrorClass::Retryable, _) => match failure {
            Failure::Timeout => format!("{operation} timed out"),
            Failure::Dispatch => format!("{operation} could not reach AWS"),
            _ => format!("AWS is throttling or failing {operation}; retry later"),
        },
        (_, _) => match failure {
            Failure::Construction => format!("{operation} could not be sent: invalid request"),
            Failure::Response => format!("AWS's answer to {operation} could not be read"),
            _ => format!("AWS refused {operation} on {resource}"),
        },
    };
    if let Some(m) = aws_message
        .map(|m| crate::util::one_line(m, MAX_AWS_MESSAGE_CHARS))
        .filter(|m| !m.is_empty())
    {
        sentence.push_str(" (AWS: ");
        sentence.push_str(&m);
        sentence.push(')');
    }
    sentence
}

/// The most characters of AWS's message a sentence quotes.
const MAX_AWS_MESSAGE_CHARS: usize = 300;

/// The answer of a read for which "it does not exist" is an answer, not a failure: `Ok(None)`
/// when `absent` says so of the service's error; any other failure is [`classify`]'d.
// `AwsError` is the step contract's error, built once per failed call.
#[allow(clippy::result_large_err)]
pub fn absent_as_none<T, E>(
    res: Result<T, SdkError<E, HttpResponse>>,
    absent: impl FnOnce(&E) -> bool,
    operation: &str,
    resource: &str,
) -> Result<Option<T>, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.as_service_error().is_some_and(absent) => Ok(None),
        Err(e) => Err(classify(&e, operation, resource)),
    }
}

/// Bounded retries with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry; doubled for each further retry.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub cap: Duration,
}

/// Attempts of [`with_retries`] unless told otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The backoff ceiling before retry number `retry` (1 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        crate::util::backoff_ceiling(self.base, self.cap, retry)
    }

    /// A random backoff in `[0, ceiling(retry)]` ("full jitter").
    fn backoff(&self, retry: u32) -> Duration {
        crate::util::backoff(self.base, self.cap, retry, crate::util::Jitter::Full)
    }
}

/// Runs `op` up to `max_attempts` times (at least once) while it fails with a
/// [`ErrorClass::Retryable`] error, sleeping an exponential backoff with jitter between
/// attempts (base 200 ms, cap 5 s). Any other error is returned at once.
///
/// The SDK clients retry throttling and transient errors on their own too (standard mode,
/// 3 attempts); this loop is the outer bound for a whole step phase.
pub async fn with_retries<T, F, Fut>(op: F, max_attempts: u32) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let policy = RetryPolicy {
        max_attempts,
        ..RetryPolicy::default()
    };
    with_retry_policy(policy, op).await
}

/// [`with_retries`] with an explicit policy.
pub async fn with_retry_policy<T, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < policy.max_attempts => {
                let wait = policy.backoff(attempt);
                tracing::warn!(
                    operation = %e.operation,
                    resource = %e.resource,
                    code = e.code.as_deref().unwrap_or(""),
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "retryable AWS failure; backing off"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn classes_by_code_and_variant() {
        use ErrorClass::*;
        use Failure::*;
        let table: &[(Failure, Option<&str>, Option<u16>, ErrorClass)] = &[
            (Service, Some("Throttling"), Some(400), Retryable),
            (Service, Some("ThrottlingException"), Some(400), Retryable),
            (Service, Some("RequestLimitExceeded"), Some(503), Retryable),
            (Service, Some("SlowDown"), Some(503), Retryable),
            (Service, Some("WhoKnows"), Some(500), Retryable),
            (Service, None, Some(502), Retryable),
            (Service, None, Some(429), Retryable),
            (Timeout, None, None, Retryable),
            (Dispatch, None, None, Retryable),
            (Construction, None, None, Other),
            (Service, Some("AccessDenied"), Some(403), Forbidden),
            (Service, Some("AccessDeniedException"), Some(400), Forbidden),
            (Service, Some("UnauthorizedOperation"), Some(403), Forbidden),
            (Service, Some("InvalidClientTokenId"), Some(403), Forbidden),
            (Service, Some("ExpiredToken"), Some(400), Forbidden),
            (Service, None, Some(403), Forbidden),
            (Service, Some("NoSuchEntity"), Some(404), NotFound),
            (Service, Some("NoSuchBucket"), Some(404), NotFound),
            (
                Service,
                Some("InvalidInstanceID.NotFound"),
                Some(400),
                NotFound,
            ),
            (
                Service,
                Some("InvalidNetworkInterfaceID.NotFound"),
                Some(400),
                NotFound,
            ),
            (Service, Some("InvalidGroup.NotFound"), Some(400), NotFound),
            (Service, None, Some(404), NotFound),
            (Service, Some("InternalError"), Some(500), Retryable),
            (
                Service,
                Some("InvalidInstanceID.Malformed"),
                Some(400),
                Other,
            ),
            (Service, Some("IncorrectInstanceState"), Some(400), Other),
            (Service, None, None, Other),
            (Service, Some("MalformedPolicyDocument"), Some(400), Other),
            (Service, Some("LimitExceeded"), Some(409), Other),
            (Response, None, Some(200), Other),
        ];
        for (failure, code, status, want) in table {
            assert_eq!(
                classify_parts(*failure, *code, *status),
                *want,
                "{failure:?} {code:?} {status:?}"
            );
        }
    }

    #[test]
    fn code_from_an_unparsed_xml_body() {
        let moto =
            b"<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>AccessDenied</Code>\
                     <Message>no</Message></Error></Errors></ErrorResponse>";
        assert_eq!(code_in_xml_body(moto).as_deref(), Some("AccessDenied"));
        assert_eq!(code_in_xml_body(b"<Code>a b</Code>"), None);
        assert_eq!(code_in_xml_body(b"<Code></Code>"), None);
        assert_eq!(code_in_xml_body(b"{\"message\": \"x\"}"), None);
        assert_eq!(code_in_xml_body(&[0xff, 0xfe]), None);
    }

    #[test]
    fn forbidden_message_names_the_permission() {
        let m = describe(
            ErrorClass::Forbidden,
            Failure::Service,
            Some("AccessDenied"),
            "iam:UpdateAccessKey",
            "access key AKIA1 of user alice",
            Some("User: arn:aws:iam::123456789012:user/hanko\n is not authorized"),
        );
        assert_eq!(
            m,
            "hanko's role lacks the permission iam:UpdateAccessKey on access key AKIA1 of user \
             alice: grant it (see config/iam-policy.json) and retry (AWS: User: \
             arn:aws:iam::123456789012:user/hanko is not authorized)"
        );
    }

    #[test]
    fn backoff_ceiling_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let ms: Vec<u128> = (1..=7).map(|r| p.ceiling(r).as_millis()).collect();
        assert_eq!(ms, vec![200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(p.ceiling(100), Duration::from_secs(5));
    }

    /// The default attempts with millisecond backoffs, so the tests do not wait.
    const FAST: RetryPolicy = RetryPolicy {
        max_attempts: DEFAULT_MAX_ATTEMPTS,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(2),
    };

    fn err(class: ErrorClass) -> AwsError {
        AwsError::local(class, "iam:UpdateAccessKey", "key", "x")
    }

    #[tokio::test]
    async fn retries_retryable_errors_up_to_the_bound() {
        let calls = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let out: Result<(), _> = with_retry_policy(FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(err(ErrorClass::Retryable))
        })
        .await;
        assert_eq!(out.unwrap_err().class, ErrorClass::Retryable);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Three backoffs, each at most its ceiling (1 + 2 + 2 ms), plus scheduling slack.
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn with_retries_honours_the_attempt_bound() {
        for (max, want) in [(0, 1), (1, 1)] {
            let calls = AtomicU32::new(0);
            let out: Result<(), _> = with_retries(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(err(ErrorClass::Retryable))
                },
                max,
            )
            .await;
            assert!(out.is_err());
            assert_eq!(calls.load(Ordering::SeqCst), want, "max_attempts {max}");
        }
    }

    #[tokio::test]
    async fn succeeds_after_transient_failures() {
        let calls = AtomicU32::new(0);
        let out = with_retry_policy(FAST, || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(err(ErrorClass::Retryable))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(out, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_forbidden_or_not_found() {
        for class in [
            ErrorClass::Forbidden,
            ErrorClass::NotFound,
            ErrorClass::Other,
        ] {
            let calls = AtomicU32::new(0);
            let out: Result<(), _> = with_retry_policy(FAST, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(err(class))
            })
            .await;
            assert_eq!(out.unwrap_err().class, class);
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{class:?}");
        }
    }
}
