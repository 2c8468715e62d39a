//! AWS identifiers, checked in one place: account ids, region names, the partition a region
//! belongs to, its console host, the percent-encoding used in console links, and the ids of the
//! resources hanko contains or reads out of CloudTrail (access keys, instances, security groups,
//! IAM names, buckets).
//!
//! Pure: no SDK, no I/O. The finding parsers, the config, the planner, `/contain`, the card
//! renderer, `custom_id`s and the remediations all check ids through these functions, so a
//! value one of them accepts is never refused by another.

/// An AWS account id: exactly 12 ASCII digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A region name such as `us-east-1`, `us-gov-west-1` or `ap-southeast-2`: two or more
/// lowercase words, then a number, joined by `-`. It goes into URLs and client configuration,
/// so nothing else passes.
pub fn is_region(s: &str) -> bool {
    if s.len() > 32 {
        return false;
    }
    let parts: Vec<&str> = s.split('-').collect();
    match parts.split_last() {
        Some((number, words)) if words.len() >= 2 => {
            !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
                && words
                    .iter()
                    .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        }
        _ => false,
    }
}

/// The partition of a region: `aws`, `aws-cn` or `aws-us-gov`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The AWS console's host for a region, in its partition.
pub fn console_host(region: &str) -> String {
    match partition(region) {
        "aws-cn" => format!("{region}.console.amazonaws.cn"),
        "aws-us-gov" => "console.amazonaws-us-gov.com".to_string(),
        _ => format!("{region}.console.aws.amazon.com"),
    }
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// S3's naming rules for a general purpose bucket: 3 to 63 lowercase letters, digits, dots and
/// hyphens, starting and ending with a letter or digit, no `..`, not shaped like an IP address,
/// none of the prefixes and suffixes S3 reserves. The one check: `/contain`, the config's
/// anchor bucket and bucket ARNs in posture findings all use it.
pub fn is_bucket_name(s: &str) -> bool {
    let b = s.as_bytes();
    let charset = b
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
    let edges = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ip_like = s.split('.').count() == 4
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    (3..=63).contains(&b.len())
        && charset
        && edges(b.first())
        && edges(b.last())
        && !s.contains("..")
        && !ip_like
        && !["xn--", "sthree-", "amzn-s3-demo-"]
            .iter()
            .any(|p| s.starts_with(p))
        && !["-s3alias", "--ol-s3", ".mrap", "--x-s3"]
            .iter()
            .any(|x| s.ends_with(x))
}

/// An access key id: `AKIA` (long-term) or `ASIA` (temporary) followed by 16 capital letters
/// or digits. Other prefixes (`AIDA` user ids, `AROA` role ids, ...) are not keys.
pub fn is_access_key_id(s: &str) -> bool {
    (s.starts_with("AKIA") || s.starts_with("ASIA"))
        && s.len() == 20
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// `prefix` followed by 8 or 17 lowercase hexadecimal digits: the two lengths EC2 has issued.
fn is_ec2_id(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// An EC2 instance id as AWS writes it: `i-` and 8 or 17 lowercase hexadecimal digits.
pub fn is_instance_id(s: &str) -> bool {
    is_ec2_id(s, "i-")
}

/// A security group id as AWS writes it: `sg-` and 8 or 17 lowercase hexadecimal digits.
pub fn is_security_group_id(s: &str) -> bool {
    is_ec2_id(s, "sg-")
}

/// An IAM user or role name: 1 to 64 of letters, digits and `+=,.@_-` (IAM's own rule for both).
pub fn is_iam_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!(is_account_id("123456789012"));
        for bad in [
            "",
            "1234",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "１23456789012",
        ] {
            assert!(!is_account_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn regions() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "cn-north-1",
            "eu-central-2",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "evil.example/#",
            "us--1",
            "-east-1",
        ] {
            assert!(!is_region(bad), "{bad:?}");
        }
        assert!(!is_region(&format!("{}-east-1", "a".repeat(40))));
    }

    #[test]
    fn partitions_and_console_hosts() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-east-1"), "aws-us-gov");
        assert_eq!(
            console_host("eu-west-1"),
            "eu-west-1.console.aws.amazon.com"
        );
        assert_eq!(
            console_host("cn-north-1"),
            "cn-north-1.console.amazonaws.cn"
        );
        assert_eq!(
            console_host("us-gov-west-1"),
            "console.amazonaws-us-gov.com"
        );
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved() {
        assert_eq!(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(
            percent_encode("arn:aws:x/1 é"),
            "arn%3Aaws%3Ax%2F1%20%C3%A9"
        );
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my.bucket-1", &"a".repeat(63)] {
            assert!(is_bucket_name(ok), "{ok}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Bucket",
            "-abc",
            "abc.",
            "a..b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "under_score",
        ] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }
    #[test]
    fn access_key_ids_are_akia_or_asia_and_sixteen_more() {
        for ok in [
            "AKIAIOSFODNN7EXAMPLE",
            "ASIAQNZGKIQY56JQ7WML",
            "AKIA0000000000000000",
        ] {
            assert!(is_access_key_id(ok), "{ok}");
        }
        for bad in [
            "",
            "AKIA",
            "AKIAIOSFODNN7EXAMPL",
            "AKIAIOSFODNN7EXAMPLEE",
            "AKIAIOSFODNN7EXAMPLe",
            "akiaIOSFODNN7EXAMPLE",
            "AIDAIOSFODNN7EXAMPLE",
            "AROAIOSFODNN7EXAMPLE",
            "AKIAIOSFODNN7EXAMP E",
            "AKIAIOSFODNN7EXAMP\u{0130}",
            "GeneratedFindingAccessKeyId",
        ] {
            assert!(!is_access_key_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn instance_and_security_group_ids() {
        for ok in ["i-e38a6646", "i-0123456789abcdef0"] {
            assert!(is_instance_id(ok), "{ok}");
        }
        for bad in [
            "i-",
            "i-e38a664",
            "i-0123456789ABCDEF0",
            "i-0123456789abcdefg",
            "i-0123456789abcdef01",
            "sg-e38a6646",
            "i-e38a6646 ",
            "x i-e38a6646",
        ] {
            assert!(!is_instance_id(bad), "{bad:?}");
        }
        assert!(is_security_group_id("sg-c6eca7a3"));
        assert!(is_security_group_id("sg-0123456789abcdef0"));
        assert!(!is_security_group_id("i-c6eca7a3"));
        assert!(!is_security_group_id("sg-launch-wizard-2"));
    }

    #[test]
    fn iam_names() {
        for ok in ["mallory", "svc+ci=1,a.b@c_d-e", &"a".repeat(64)] {
            assert!(is_iam_name(ok), "{ok}");
        }
        for bad in [
            "",
            &"a".repeat(65),
            "a b",
            "a/b",
            "a`b",
            "@everyone ",
            "名前",
        ] {
            assert!(!is_iam_name(bad), "{bad:?}");
        }
    }
}
