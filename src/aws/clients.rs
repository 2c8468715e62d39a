//! AWS clients per account and region.
//!
//! Owns [`ClientFactory`]: the standard credential chain (`aws-config`), a role assumed in
//! member accounts from the configured ARN template (`arn:aws:iam::{account}:role/...`) with its
//! credentials cached per account until five minutes before they expire, and the endpoint
//! override. It may use aws-config and the service SDKs; it never imports sled or serenity.
//!
//! It fails closed: hanko's own credentials serve only hanko's own account, proved with
//! `sts:GetCallerIdentity` (cached once it answers; a failure is not cached, so the next call
//! asks again); any other account needs the role template, and without it
//! [`ClientFactory::clients`] refuses the account instead of acting in the wrong one.
//!
//! Endpoints: an explicit override (from the config) applies to every client. Without one,
//! aws-config itself honours `AWS_ENDPOINT_URL` and the service-specific
//! `AWS_ENDPOINT_URL_<SERVICE>` variables; hanko does not force anything. S3 uses path-style
//! addressing whenever an endpoint is set (moto, LocalStack and MinIO need it), and S3 Control
//! then calls that endpoint as given, without the account id the SDK puts in front of the host
//! (see [`S3ControlEndpoint`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use tokio::sync::{Mutex as AsyncMutex, OnceCell};

use super::error::{classify, AwsError, ErrorClass};

/// The placeholder of the role ARN template that is replaced by the account id.
pub const ACCOUNT_PLACEHOLDER: &str = "{account}";
/// Assumed-role credentials are renewed this long before they expire.
pub const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Name of the credentials provider of assumed-role credentials (shows in SDK logs).
const ASSUMED_PROVIDER_NAME: &str = "hanko-assume-role";

/// The clients one step needs, for one account and region. Each SDK client is built the first
/// time it is asked for, then kept (clones share them): a leaked key's containment builds the
/// IAM client alone instead of six, about 0.25 ms each before the first call.
#[derive(Debug, Clone)]
pub struct AwsClients(Arc<LazyClients>);

#[derive(Debug)]
struct LazyClients {
    conf: SdkConfig,
    /// Path-style S3 addressing (S3 behind a custom endpoint).
    path_style_s3: bool,
    iam: OnceLock<aws_sdk_iam::Client>,
    ec2: OnceLock<aws_sdk_ec2::Client>,
    s3: OnceLock<aws_sdk_s3::Client>,
    s3control: OnceLock<aws_sdk_s3control::Client>,
    securityhub: OnceLock<aws_sdk_securityhub::Client>,
    cloudtrail: OnceLock<aws_sdk_cloudtrail::Client>,
}

impl AwsClients {
    /// Clients from one SDK config; `path_style_s3` for S3 behind a custom endpoint.
    pub fn from_sdk_config(conf: &SdkConfig, path_style_s3: bool) -> AwsClients {
        AwsClients(Arc::new(LazyClients {
            conf: conf.clone(),
            path_style_s3,
            iam: OnceLock::new(),
            ec2: OnceLock::new(),
            s3: OnceLock::new(),
            s3control: OnceLock::new(),
            securityhub: OnceLock::new(),
            cloudtrail: OnceLock::new(),
        }))
    }

    pub fn iam(&self) -> &aws_sdk_iam::Client {
        self.0
            .iam
            .get_or_init(|| aws_sdk_iam::Client::new(&self.0.conf))
    }

    pub fn ec2(&self) -> &aws_sdk_ec2::Client {
        self.0
            .ec2
            .get_or_init(|| aws_sdk_ec2::Client::new(&self.0.conf))
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        self.0.s3.get_or_init(|| {
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&self.0.conf)
                    .force_path_style(self.0.path_style_s3)
                    .build(),
            )
        })
    }

    /// Account-level S3 settings (Block Public Access of the whole account).
    pub fn s3control(&self) -> &aws_sdk_s3control::Client {
        self.0.s3control.get_or_init(|| {
            aws_sdk_s3control::Client::from_conf(
                aws_sdk_s3control::config::Builder::from(&self.0.conf)
                    .endpoint_resolver(S3ControlEndpoint::default())
                    .build(),
            )
        })
    }

    pub fn securityhub(&self) -> &aws_sdk_securityhub::Client {
        self.0
            .securityhub
            .get_or_init(|| aws_sdk_securityhub::Client::new(&self.0.conf))
    }

    /// CloudTrail `LookupEvents`, with the SDK's own retries off: every attempt is one request
    /// against the 2-per-second limit, so each must pass [`super::cloudtrail::LookupRate`],
    /// and [`super::cloudtrail::lookup_key_events`] retries itself.
    pub fn cloudtrail(&self) -> &aws_sdk_cloudtrail::Client {
        self.0.cloudtrail.get_or_init(|| {
            aws_sdk_cloudtrail::Client::from_conf(
                aws_sdk_cloudtrail::config::Builder::from(&self.0.conf)
                    .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
                    .build(),
            )
        })
    }
}

/// S3 Control's endpoint: AWS's own rules, except behind a custom endpoint. The SDK's rules put
/// the account id in front of the host (`123456789012.s3-control.us-east-1.amazonaws.com`), also
/// of a custom endpoint, where `123456789012.127.0.0.1:5000` does not resolve. Behind a custom
/// endpoint (moto, LocalStack) the request goes to that endpoint as given, the way S3 switches to
/// path-style there; the account id still travels in the `x-amz-account-id` header.
#[derive(Debug, Default)]
struct S3ControlEndpoint(aws_sdk_s3control::config::endpoint::DefaultResolver);

impl aws_sdk_s3control::config::endpoint::ResolveEndpoint for S3ControlEndpoint {
    fn resolve_endpoint<'a>(
        &'a self,
        params: &'a aws_sdk_s3control::config::endpoint::Params,
    ) -> aws_sdk_s3control::config::endpoint::EndpointFuture<'a> {
        use aws_sdk_s3control::config::endpoint::{Endpoint, EndpointFuture};
        match params.endpoint() {
            Some(url) => {
                EndpointFuture::ready(Ok(Endpoint::builder().url(url.to_string()).build()))
            }
            None => self.0.resolve_endpoint(params),
        }
    }
}

/// One account's assumed-role credentials; the async lock makes concurrent callers for the
/// same account share one `AssumeRole` call.
type CredentialSlot = Arc<AsyncMutex<Option<Credentials>>>;

/// Builds [`AwsClients`] per account and region. Cheap to clone: clones share the caches.
#[derive(Debug, Clone)]
pub struct ClientFactory {
    /// The standard chain's config: credentials, retry and timeout settings, endpoint.
    base: SdkConfig,
    /// `arn:aws:iam::{account}:role/HankoResponder`; `None`: every account uses `base`'s
    /// credentials.
    role_arn_template: Option<String>,
    /// The account of `base`'s credentials (`sts:GetCallerIdentity`), asked once.
    own_account: Arc<OnceCell<String>>,
    /// Why the last own-account lookup failed (a failure is not cached: the next call asks
    /// again); shown in notify-only plans.
    own_account_error: Arc<Mutex<Option<String>>>,
    /// When the last background own-account lookup was started
    /// ([`ClientFactory::claim_own_account_lookup`]).
    lookup_started: Arc<Mutex<Option<std::time::Instant>>>,
    /// Assumed-role credentials by account id.
    assumed: Arc<Mutex<HashMap<String, CredentialSlot>>>,
    /// Clients already built, by (account, region): an approval's first AWS call does not wait
    /// for six SDK clients to be built. See [`ClientFactory::clients`].
    built: Arc<Mutex<HashMap<(String, String), BuiltClients>>>,
}

/// Clients built for one account and region, and until when they may be handed out.
#[derive(Debug, Clone)]
struct BuiltClients {
    clients: AwsClients,
    /// When they were built: none is kept longer than [`CLIENTS_MAX_AGE`].
    built_at: std::time::Instant,
    /// The assumed-role credentials they carry expire then (`None`: hanko's own credentials,
    /// whose provider renews them itself).
    credentials_expiry: Option<SystemTime>,
}

/// The longest built clients are reused, whatever their credentials.
pub const CLIENTS_MAX_AGE: Duration = Duration::from_secs(15 * 60);

impl BuiltClients {
    /// Whether they may be handed out when they are `age` old and the wall clock says `wall`.
    fn usable(&self, age: Duration, wall: SystemTime) -> bool {
        age < CLIENTS_MAX_AGE
            && self.credentials_expiry.map_or(true, |exp| {
                exp.duration_since(wall)
                    .is_ok_and(|left| left > CREDENTIALS_REFRESH_MARGIN)
            })
    }
}

impl ClientFactory {
    /// Loads the standard AWS chain (environment, profile, SSO, IMDS, ...). `endpoint_url`
    /// overrides the endpoint of every service. `region` (the config's first `aws.regions`) is
    /// the default region, so the chain never asks the instance metadata service for one; every
    /// client is built for the region of its call anyway.
    pub async fn from_env(
        endpoint_url: Option<String>,
        role_arn_template: Option<String>,
        region: Option<String>,
    ) -> ClientFactory {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        ClientFactory::from_sdk_config(loader.load().await, role_arn_template)
    }

    /// A factory over an already loaded SDK config (tests, or a config built by the caller).
    pub fn from_sdk_config(conf: SdkConfig, role_arn_template: Option<String>) -> ClientFactory {
        ClientFactory {
            base: conf,
            role_arn_template: role_arn_template.filter(|t| !t.trim().is_empty()),
            own_account: Arc::new(OnceCell::new()),
            own_account_error: Arc::new(Mutex::new(None)),
            lookup_started: Arc::new(Mutex::new(None)),
            assumed: Arc::new(Mutex::new(HashMap::new())),
            built: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The role hanko assumes in `account_id`, when a template is configured.
    pub fn role_arn(&self, account_id: &str) -> Option<String> {
        self.role_arn_template
            .as_ref()
            .map(|t| t.replace(ACCOUNT_PLACEHOLDER, account_id))
    }

    /// Is a role template configured (every other account reached through its role)?
    pub fn has_role_template(&self) -> bool {
        self.role_arn_template.is_some()
    }

    /// The own account when a lookup has proved it, without asking AWS.
    pub fn proven_own_account(&self) -> Option<String> {
        self.own_account.get().cloned()
    }

    /// Why the last own-account lookup failed, if it did and none succeeded since.
    pub fn own_account_error(&self) -> Option<String> {
        if self.own_account.get().is_some() {
            return None;
        }
        self.own_account_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Remembers why an own-account lookup failed (see [`ClientFactory::own_account_error`]).
    pub fn note_own_account_error(&self, why: &str) {
        *self
            .own_account_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
    }

    /// `true` (and the time noted) when no background own-account lookup was started within
    /// `every`: callers that plan synchronously start at most one lookup per interval.
    pub fn claim_own_account_lookup(&self, every: std::time::Duration) -> bool {
        let mut last = self
            .lookup_started
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < every) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// The region of the base config (the config's first `aws.regions`, or the environment's),
    /// us-east-1 when none is known: where hanko asks about itself (STS, audit anchors).
    pub fn home_region(&self) -> String {
        self.base
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".to_string())
    }

    /// A factory whose own account is already known, for callers that cannot reach STS but
    /// know the account of the credentials they built (tests whose AWS is unreachable). The
    /// account is then never asked.
    pub fn with_proven_own_account(self, account: &str) -> ClientFactory {
        // A fresh cell: clones made before keep their own.
        let cell = OnceCell::new_with(Some(account.to_string()));
        ClientFactory {
            own_account: Arc::new(cell),
            // Clients built under the old answer are not handed out under the new one.
            built: Arc::new(Mutex::new(HashMap::new())),
            ..self
        }
    }

    /// Whether S3 needs path-style addressing: an endpoint is set, globally or for S3.
    fn path_style_s3(&self) -> bool {
        self.base.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
    }

    /// The base config with `region`.
    fn config_in(&self, region: &str) -> aws_types::sdk_config::Builder {
        self.base
            .to_builder()
            .region(Region::new(region.to_string()))
    }

    /// An S3 client with hanko's own credentials (never an assumed role) in `region`, or in
    /// the environment's region when `None` (us-east-1 when it names none): audit anchors.
    pub fn own_s3(&self, region: Option<&str>) -> aws_sdk_s3::Client {
        let region = region
            .map(str::to_string)
            .unwrap_or_else(|| self.home_region());
        let conf = self.config_in(&region).build();
        let s3 = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(self.path_style_s3())
            .build();
        aws_sdk_s3::Client::from_conf(s3)
    }

    /// The account the base credentials belong to (asked once, then cached).
    pub async fn own_account(&self, region: &str) -> Result<String, AwsError> {
        self.own_account
            .get_or_try_init(|| async {
                let sts = aws_sdk_sts::Client::new(&self.config_in(region).build());
                let out =
                    sts.get_caller_identity().send().await.map_err(|e| {
                        classify(&e, "sts:GetCallerIdentity", "hanko's credentials")
                    })?;
                out.account().map(str::to_string).ok_or_else(|| {
                    AwsError::local(
                        ErrorClass::Other,
                        "sts:GetCallerIdentity",
                        "hanko's credentials",
                        "GetCallerIdentity returned no account id",
                    )
                })
            })
            .await
            .cloned()
            .inspect_err(|e| self.note_own_account_error(&e.to_string()))
    }

    /// The clients for `account_id` in `region`: hanko's own credentials in its own account,
    /// the role assumed through the template in any other. Fails closed: without a template,
    /// an account that is not proved to be hanko's own (`sts:GetCallerIdentity`) is refused,
    /// never served with hanko's own credentials.
    ///
    /// Built clients are kept per account and region and handed out again while their
    /// credentials stay fresh (assumed-role ones until [`CREDENTIALS_REFRESH_MARGIN`] before
    /// they expire), at most [`CLIENTS_MAX_AGE`]. Only clients that passed the checks above are
    /// kept, so a cached answer is one the checks would give again.
    pub async fn clients(&self, account_id: &str, region: &str) -> Result<AwsClients, AwsError> {
        let key = (account_id.to_string(), region.to_string());
        if let Some(built) = self.lock_built().get(&key) {
            if built.usable(built.built_at.elapsed(), SystemTime::now()) {
                return Ok(built.clients.clone());
            }
        }
        let mut conf = self.config_in(region);
        let own = self.own_account(region).await;
        let mut credentials_expiry = None;
        match (self.role_arn(account_id), own) {
            (_, Ok(own)) if own == account_id => {}
            (Some(role_arn), _) => {
                let creds = self
                    .assumed_credentials(account_id, &role_arn, region)
                    .await?;
                credentials_expiry = creds.expiry();
                conf = conf.credentials_provider(SharedCredentialsProvider::new(creds));
            }
            (None, Ok(own)) => {
                return Err(AwsError::local(
                    ErrorClass::Forbidden,
                    "sts:GetCallerIdentity",
                    format!("account {account_id}"),
                    format!("hanko has no role in account {account_id}; set aws.role_arn_template (its own credentials are for account {own})"),
                ))
            }
            (None, Err(e)) => return Err(e),
        }
        let clients = AwsClients::from_sdk_config(&conf.build(), self.path_style_s3());
        self.lock_built().insert(
            key,
            BuiltClients {
                clients: clients.clone(),
                built_at: std::time::Instant::now(),
                credentials_expiry,
            },
        );
        Ok(clients)
    }

    fn lock_built(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), BuiltClients>> {
        // A std lock, never held across an await.
        self.built.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cached credentials of the role in `account_id`, renewed when they expire within
    /// [`CREDENTIALS_REFRESH_MARGIN`].
    async fn assumed_credentials(
        &self,
        account_id: &str,
        role_arn: &str,
        region: &str,
    ) -> Result<Credentials, AwsError> {
        let slot = {
            // A std lock, never held across an await.
            let mut map = self.assumed.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(account_id.to_string()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(creds) = cached.as_ref() {
            if still_fresh(creds, SystemTime::now()) {
                return Ok(creds.clone());
            }
        }
        let creds = self.assume_role(role_arn, region).await?;
        tracing::info!(account_id, role_arn, "assumed the responder role");
        *cached = Some(creds.clone());
        Ok(creds)
    }

    async fn assume_role(&self, role_arn: &str, region: &str) -> Result<Credentials, AwsError> {
        let sts = aws_sdk_sts::Client::new(&self.config_in(region).build());
        let session_name = format!("hanko-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let out = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(&session_name)
            .send()
            .await
            .map_err(|e| classify(&e, "sts:AssumeRole", role_arn))?;
        let missing = || {
            AwsError::local(
                ErrorClass::Other,
                "sts:AssumeRole",
                role_arn,
                "AssumeRole returned no credentials",
            )
        };
        let c = out.credentials().ok_or_else(missing)?;
        let expires = SystemTime::try_from(*c.expiration()).map_err(|_| missing())?;
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            Some(expires),
            ASSUMED_PROVIDER_NAME,
        ))
    }
}

/// Credentials without an expiry, or expiring more than the margin after `now`.
fn still_fresh(creds: &Credentials, now: SystemTime) -> bool {
    match creds.expiry() {
        None => true,
        Some(exp) => exp
            .duration_since(now)
            .map(|left| left > CREDENTIALS_REFRESH_MARGIN)
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds_expiring_in(secs: u64, now: SystemTime) -> Credentials {
        Credentials::new("a", "b", None, Some(now + Duration::from_secs(secs)), "t")
    }

    #[test]
    fn background_own_account_lookups_are_claimed_at_most_once_per_interval() {
        let conf = aws_types::SdkConfig::builder().build();
        let factory = ClientFactory::from_sdk_config(conf, None);
        let clone = factory.clone();
        assert!(factory.claim_own_account_lookup(Duration::from_secs(30)));
        // Every clone shares the claim: a burst of plans starts one lookup.
        assert!(!clone.claim_own_account_lookup(Duration::from_secs(30)));
        assert!(!factory.claim_own_account_lookup(Duration::from_secs(30)));
        // Once the interval has passed, the next one may start.
        assert!(clone.claim_own_account_lookup(Duration::ZERO));
        assert_eq!(factory.home_region(), "us-east-1");
    }

    #[test]
    fn built_clients_are_reused_while_their_credentials_are_fresh_and_not_too_old() {
        let conf = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        let clients = AwsClients::from_sdk_config(&conf, false);
        let wall = SystemTime::now();
        let built = |expiry: Option<SystemTime>| BuiltClients {
            clients: clients.clone(),
            built_at: std::time::Instant::now(),
            credentials_expiry: expiry,
        };
        let minute = Duration::from_secs(60);
        assert!(built(None).usable(Duration::ZERO, wall));
        assert!(!built(None).usable(CLIENTS_MAX_AGE, wall));
        let in_an_hour = Some(wall + Duration::from_secs(3600));
        assert!(built(in_an_hour).usable(minute, wall));
        // Within the refresh margin the role is assumed again, so the clients are rebuilt.
        let soon = Some(wall + CREDENTIALS_REFRESH_MARGIN);
        assert!(!built(soon).usable(Duration::ZERO, wall));
        assert!(!built(Some(wall - Duration::from_secs(1))).usable(Duration::ZERO, wall));
    }

    #[test]
    fn credentials_are_renewed_five_minutes_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(still_fresh(&creds_expiring_in(3600, now), now));
        assert!(still_fresh(&creds_expiring_in(301, now), now));
        assert!(!still_fresh(&creds_expiring_in(300, now), now));
        assert!(!still_fresh(&creds_expiring_in(10, now), now));
        let expired = Credentials::new("a", "b", None, Some(now - Duration::from_secs(1)), "t");
        assert!(!still_fresh(&expired, now));
        assert!(still_fresh(
            &Credentials::new("a", "b", None, None, "t"),
            now
        ));
    }

    #[test]
    fn role_arn_from_template() {
        let conf = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let f = ClientFactory::from_sdk_config(
            conf.clone(),
            Some("arn:aws:iam::{account}:role/HankoResponder".into()),
        );
        assert_eq!(
            f.role_arn("111111111111").as_deref(),
            Some("arn:aws:iam::111111111111:role/HankoResponder")
        );
        assert_eq!(
            ClientFactory::from_sdk_config(conf, Some(" ".into())).role_arn("1"),
            None
        );
    }
}
