//! AWS clients per account and region (to be written): the standard credential chain, a role
//! assumed in member accounts from the configured ARN template (cached until expiry), and the
//! endpoint override (config or `AWS_ENDPOINT_URL*`), with path-style S3 when an endpoint is set.

/// The clients one step needs, for one account and region.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
}

/// Builds [`AwsClients`] per account and region.
#[derive(Debug, Clone, Default)]
pub struct ClientFactory {}
