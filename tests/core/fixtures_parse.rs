//! The finding parsers against the real published documents in `tests/fixtures/guardduty`:
//! every file parses (one known, documented exception), concrete values match the files, and
//! no truncation or mutation of a fixture makes `parse_document` panic.
//!
//! `support/fixtures.rs` finds the fixture folder (`tests/fixtures/guardduty`, or
//! `$HANKO_FIXTURES`); a missing folder fails the tests, it never skips them.

use crate::support::fixtures;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use fixtures::fixtures_dir;
use hanko::finding::{
    parse_document, Finding, FindingSource, ParseError, ResourceKind, SeverityLabel,
};
use serde_json::Value;

/// The folders whose every `*.json` file is a finding document.
const FOLDERS: [&str; 4] = ["api", "api/_wrappers", "eventbridge", "asff"];

/// A hand-written test event (aws-samples waf-acl) whose detail has no `accountId` and whose
/// envelope has no `account`: it parses with an unknown (empty) account, which the planner
/// turns into a notify-only plan. Inventing an account would point containment at the wrong one.
const PARTIAL_ENVELOPE: &str = "eventbridge/aws-samples-waf-acl__gd2acl_test_event__UnauthorizedAccess_EC2_SSHBruteForce__partial_envelope.json";

/// Every fixture document, by its path relative to the fixture folder.
fn fixtures() -> BTreeMap<String, String> {
    let root = fixtures_dir();
    let mut out = BTreeMap::new();
    for folder in FOLDERS {
        let dir = root.join(folder);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("fixture folder {} unreadable: {e}", dir.display()));
        let before = out.len();
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let rel = format!("{folder}/{}", path.file_name().unwrap().to_string_lossy());
                let text = std::fs::read_to_string(&path).unwrap();
                out.insert(rel, text);
            }
        }
        assert!(
            out.len() > before,
            "no *.json fixtures in {}",
            dir.display()
        );
    }
    out
}

/// `finding_types.tsv`: finding type -> resource type as the AWS docs state it.
fn finding_types() -> BTreeMap<String, String> {
    let path = fixtures_dir().join("finding_types.tsv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} unreadable: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            Some((cols.next()?.to_string(), cols.next()?.to_string()))
        })
        .collect()
}

fn parse_one(rel: &str) -> Finding {
    let mut findings =
        parse_document(&fixtures::read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(findings.len(), 1, "{rel}");
    findings.remove(0)
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn every_fixture_parses_with_its_required_fields() {
    let types = finding_types();
    let all = fixtures();
    assert!(
        all.len() >= 48,
        "expected at least 48 fixtures, found {}",
        all.len()
    );
    let mut parsed = 0;
    for (rel, text) in &all {
        let findings = parse_document(text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        if rel == PARTIAL_ENVELOPE {
            // No account anywhere: kept as unknown, never guessed (the planner will not act).
            assert_eq!(findings[0].account_id, "", "{rel}");
            parsed += 1;
            continue;
        }
        assert_eq!(findings.len(), 1, "{rel}");
        for f in &findings {
            assert!(!f.id.is_empty(), "{rel}: id");
            assert!(
                !f.account_id.is_empty() && f.account_id.bytes().all(|b| b.is_ascii_digit()),
                "{rel}: account {}",
                f.account_id
            );
            assert!(f.region.contains('-'), "{rel}: region {}", f.region);
            assert!(!f.finding_type.is_empty(), "{rel}: type");
            assert_eq!(f.severity_label, SeverityLabel::from_score(f.severity));
            assert!(f.console_url().is_some(), "{rel}: console url");
            // Every type, including those converted from ASFF, is a real GuardDuty type ...
            let doc_resource = types
                .get(&f.finding_type)
                .unwrap_or_else(|| panic!("{rel}: {} not in finding_types.tsv", f.finding_type));
            // ... and API findings carry the resource type the AWS docs give it.
            if rel.starts_with("api/") && !doc_resource.starts_with('(') {
                let kinds: Vec<&str> = doc_resource.split('|').collect();
                assert!(
                    kinds.contains(&f.resource.kind.as_str()),
                    "{rel}: kind {:?}, docs say {doc_resource}",
                    f.resource.kind
                );
            }
            parsed += 1;
        }
    }
    assert_eq!(parsed, all.len());
}

#[test]
fn api_instance_finding_values() {
    let f = parse_one("api/UnauthorizedAccess_EC2_SSHBruteForce.json");
    assert_eq!(f.id, "d6bf27df0abae4665ec35fec7085faaa");
    assert_eq!(
        f.arn.as_deref(),
        Some("arn:aws:guardduty:us-east-2:973743533182:detector/37da5a0204286ccd967d2395320d4dcd/finding/d6bf27df0abae4665ec35fec7085faaa")
    );
    assert_eq!(
        (f.account_id.as_str(), f.region.as_str()),
        ("973743533182", "us-east-2")
    );
    assert_eq!(f.finding_type, "UnauthorizedAccess:EC2/SSHBruteForce");
    assert_eq!((f.severity, f.severity_label), (2.0, SeverityLabel::Low));
    assert_eq!((f.count, f.archived, f.sample), (4, false, true));
    assert_eq!(f.source, FindingSource::GuardDuty);
    assert_eq!(
        f.created_at.unwrap().to_rfc3339(),
        "2022-01-12T19:22:44.469+00:00"
    );
    assert_eq!(
        f.first_seen.unwrap().to_rfc3339(),
        "2022-01-12T19:22:44+00:00"
    );
    assert_eq!(
        f.last_seen.unwrap().to_rfc3339(),
        "2022-01-28T21:12:25+00:00"
    );
    assert!(f
        .title
        .starts_with("81.2.69.144 is performing SSH brute force"));

    assert_eq!(f.resource.kind, ResourceKind::Instance);
    let inst = f.resource.instance.as_ref().unwrap();
    assert_eq!(inst.instance_id, some("i-99999999"));
    assert_eq!(inst.instance_type, some("m3.xlarge"));
    assert_eq!(inst.instance_state, some("running"));
    assert_eq!(inst.image_id, some("ami-99999999"));
    assert_eq!(
        inst.instance_profile_arn,
        some("arn:aws:iam::973743533182:example/instance/profile")
    );
    assert_eq!(
        inst.instance_profile_id,
        some("GeneratedFindingInstanceProfileId")
    );
    assert_eq!(inst.tags.len(), 9);
    assert_eq!(inst.tags[0].key, "GeneratedFindingInstaceTag1");
    assert_eq!(inst.network_interfaces.len(), 1);
    let eni = &inst.network_interfaces[0];
    assert_eq!(eni.network_interface_id, some("eni-bfcffe88"));
    assert_eq!(eni.vpc_id, some("GeneratedFindingVPCId"));
    assert_eq!(eni.subnet_id, some("GeneratedFindingSubnetId"));
    assert_eq!(eni.private_ip, some("10.0.0.1"));
    assert_eq!(eni.public_ip, some("81.2.69.144"));
    assert_eq!(
        eni.security_groups[0].group_id,
        some("GeneratedFindingSecurityId")
    );

    assert_eq!(f.actor.action_type, some("NETWORK_CONNECTION"));
    assert_eq!(f.actor.caller_ip, some("81.2.69.144"));
    assert_eq!(f.actor.country, some("GeneratedFindingCountryName"));
    assert_eq!(f.actor.city, some("GeneratedFindingCityName"));
    assert_eq!(f.actor.organization, some("GeneratedFindingASNOrg"));
    assert_eq!(
        f.console_url().as_deref(),
        Some("https://us-east-2.console.aws.amazon.com/guardduty/home?region=us-east-2#/findings?macros=current&fId=d6bf27df0abae4665ec35fec7085faaa")
    );
}

#[test]
fn api_runtime_finding_with_two_security_groups() {
    let f = parse_one("api/PrivilegeEscalation_Runtime_DockerSocketAccessed.json");
    assert_eq!(f.id, "abcd1234");
    assert_eq!(f.region, "us-west-1");
    assert_eq!(f.resource.kind, ResourceKind::Other("Container".into()));
    assert_eq!(f.count, 9);
    assert!(!f.sample, "no sample flag in this finding");
    let eni = &f.resource.instance.as_ref().unwrap().network_interfaces[0];
    assert_eq!(eni.network_interface_id, some("eni-abcd1234"));
    assert_eq!(eni.vpc_id, some("vpc-abcd1234"));
    assert_eq!(eni.subnet_id, some("subnet-abcd1234"));
    let groups: Vec<_> = eni
        .security_groups
        .iter()
        .map(|g| g.group_id.clone())
        .collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0], some("sg-abcd1234"));
    assert!(f.actor.is_empty(), "its action is empty: {:?}", f.actor);
}

#[test]
fn api_access_key_finding_with_an_asia_key_is_not_a_sample() {
    let f = parse_one("api/Policy_IAMUser_RootCredentialUsage__elastic_nonsample2.json");
    assert_eq!(f.id, "34bf27e222d66dab11c677ad8276bde8");
    assert_eq!(f.finding_type, "Policy:IAMUser/RootCredentialUsage");
    assert!(!f.sample);
    assert_eq!(f.count, 204);
    assert_eq!(f.resource.kind, ResourceKind::AccessKey);
    let key = f.resource.access_key.as_ref().unwrap();
    assert_eq!(key.access_key_id, some("ASIAJZ3DXJKMP7MG3EKA"));
    assert_eq!(key.principal_id, some("973743533182"));
    assert_eq!(
        (key.user_type.clone(), key.user_name.clone()),
        (some("Root"), some("Root"))
    );
    assert!(f.resource.instance.is_none());

    // the bucket details come along even though the kind is AccessKey
    let bucket = &f.resource.s3_buckets[0];
    assert_eq!(bucket.name, some("res-guardduty"));
    assert_eq!(bucket.arn, some("arn:aws:s3:::res-guardduty"));
    assert_eq!(bucket.bucket_type, some("Destination"));
    let pa = bucket.public_access.as_ref().unwrap();
    assert_eq!(pa.effective_permission, some("NOT_PUBLIC"));
    let b = pa.bucket_block_public_access.unwrap();
    assert!(
        b.block_public_acls
            && b.ignore_public_acls
            && b.block_public_policy
            && b.restrict_public_buckets
    );
    let a = pa.account_block_public_access.unwrap();
    assert!(
        !a.block_public_acls
            && !a.ignore_public_acls
            && !a.block_public_policy
            && !a.restrict_public_buckets
    );
    assert_eq!(pa.acl_allows_public_write, Some(false));
    assert_eq!(pa.policy_allows_public_read, Some(false));

    assert_eq!(f.actor.action_type, some("AWS_API_CALL"));
    assert_eq!(f.actor.api, some("ListFindings"));
    assert_eq!(f.actor.service_name, some("guardduty.amazonaws.com"));
    assert_eq!(f.actor.caller_ip, some("81.2.69.144"));
    assert_eq!(f.actor.country, some("United States"));
    assert_eq!(f.actor.city, some("San Antonio"));
    assert_eq!(f.actor.organization, some("ATT-INTERNET4"));
}

#[test]
fn api_s3_findings_name_their_buckets() {
    let f = parse_one("api/Discovery_S3_MaliciousIPCaller.json");
    assert_eq!(f.resource.kind, ResourceKind::S3Bucket);
    assert_eq!((f.severity, f.severity_label), (8.0, SeverityLabel::High));
    assert_eq!(f.resource.s3_buckets.len(), 1);
    assert_eq!(f.resource.s3_buckets[0].name, some("bucketName"));
    assert!(f.resource.access_key.is_some());

    // Policy:S3 findings are AccessKey-typed and still carry the bucket and its public facts
    let f = parse_one("api/Policy_S3_BucketAnonymousAccessGranted.json");
    assert_eq!(f.resource.kind, ResourceKind::AccessKey);
    let bucket = &f.resource.s3_buckets[0];
    assert_eq!(bucket.name, some("bucketName"));
    assert_eq!(bucket.tags[0].key, "foo");
    assert_eq!(bucket.tags[0].value, "bar");
    let pa = bucket.public_access.as_ref().unwrap();
    assert_eq!(pa.effective_permission, some("PUBLIC"));
    assert!(!pa.bucket_block_public_access.unwrap().block_public_policy);
}

#[test]
fn api_actor_from_port_probe_dns_and_kubernetes_actions() {
    let f = parse_one("api/Recon_EC2_PortProbeUnprotectedPort.json");
    assert_eq!(f.actor.action_type, some("PORT_PROBE"));
    assert_eq!(f.actor.caller_ip, some("81.2.69.144"));
    assert_eq!(f.actor.country, some("GeneratedFindingCountryName1"));

    let f = parse_one("api/Backdoor_EC2_C_CActivity.B_DNS.json");
    assert_eq!(f.finding_type, "Backdoor:EC2/C&CActivity.B!DNS");
    assert_eq!(f.actor.action_type, some("DNS_REQUEST"));
    assert!(f.actor.domain.is_some());
    assert_eq!(f.actor.caller_ip, None);

    let f = parse_one("api/Execution_Kubernetes_ExecInKubeSystemPod.json");
    assert_eq!(f.resource.kind, ResourceKind::Other("EKSCluster".into()));
    assert_eq!(f.actor.action_type, some("KUBERNETES_API_CALL"));
    assert_eq!(f.actor.caller_ip, some("81.2.69.144"));
}

#[test]
fn sample_flag_is_true_exactly_on_sample_findings() {
    let non_samples: Vec<String> = fixtures()
        .iter()
        .filter(|(rel, _)| rel.starts_with("api/"))
        .filter(|(_, text)| !parse_document(text).unwrap()[0].sample)
        .map(|(rel, _)| rel.clone())
        .collect();
    assert_eq!(
        non_samples,
        [
            "api/Policy_IAMUser_RootCredentialUsage__elastic_nonsample2.json",
            "api/PrivilegeEscalation_Runtime_DockerSocketAccessed.json",
        ]
    );
}

#[test]
fn getfindings_response() {
    let f = parse_one("api/_wrappers/GetFindings_response__Discovery_Kubernetes_TorIPCaller.json");
    assert_eq!(f.id, "e0c22973b012f3af67ac593443e920ff");
    assert_eq!(
        (f.account_id.as_str(), f.region.as_str()),
        ("123412341234", "us-east-1")
    );
    assert_eq!(f.finding_type, "Discovery:Kubernetes/TorIPCaller");
    assert_eq!(f.resource.kind, ResourceKind::Other("EKSCluster".into()));
    assert_eq!(
        f.resource.access_key.as_ref().unwrap().user_type,
        some("Role")
    );
    assert_eq!(f.count, 2);
    assert_eq!(f.actor.caller_ip, some("175.16.199.1"));
}

#[test]
fn eventbridge_guardduty_event() {
    let f = parse_one(
        "eventbridge/cloud-custodian__ec2-duty-event__Backdoor_EC2_C_CActivity.B_DNS.json",
    );
    assert_eq!(f.id, "b4b01b60fc24a199139f8f5f490edd81");
    // the finding's own account, not the envelope's 101010101111
    assert_eq!(f.account_id, "883606788610");
    assert_eq!(f.region, "us-east-1");
    assert_eq!((f.severity, f.severity_label), (5.0, SeverityLabel::Medium));
    assert_eq!(f.resource.kind, ResourceKind::Instance);
    assert_eq!(
        f.resource.instance.as_ref().unwrap().instance_id,
        some("i-99999999")
    );
    assert_eq!(f.actor.domain, some("example.com"));
    assert!(f.sample);
}

#[test]
fn eventbridge_security_hub_custom_action_with_a_guardduty_asff_finding() {
    let f = parse_one(
        "eventbridge/cloud-custodian__securityhub-custom-action__GuardDuty_ASFF_ConsoleLogin.json",
    );
    assert_eq!(f.id, "4cb5a629e9757b650d102f683cdbcd7b");
    assert_eq!(
        f.arn.as_deref(),
        Some("arn:aws:guardduty:us-east-1:644160558196:detector/06b01209ca77b0865dd973df0355fc1e/finding/4cb5a629e9757b650d102f683cdbcd7b")
    );
    assert_eq!(
        (f.account_id.as_str(), f.region.as_str()),
        ("644160558196", "us-east-1")
    );
    assert_eq!(f.finding_type, "UnauthorizedAccess:IAMUser/ConsoleLogin");
    assert_eq!((f.severity, f.severity_label), (5.0, SeverityLabel::Medium));
    assert_eq!(
        f.source,
        FindingSource::SecurityHub {
            product_arn: "arn:aws:securityhub:us-east-1::product/aws/guardduty".into()
        }
    );
    assert!(f.is_guardduty());
    assert_eq!((f.count, f.archived), (1, false));
    assert_eq!(f.resource.kind, ResourceKind::AccessKey);
    let key = f.resource.access_key.as_ref().unwrap();
    assert_eq!(key.user_name, some("kapil"));
    assert_eq!(
        key.access_key_id, None,
        "AWS::IAM::AccessKey:null names no key"
    );
    assert_eq!(f.actor.api, some("ConsoleLogin"));
    assert_eq!(f.actor.service_name, some("signin.amazonaws.com"));
    assert_eq!(f.actor.caller_ip, some("208.115.85.104"));
    assert_eq!(f.actor.country, some("United States"));
    assert_eq!(f.actor.city, some("Washington"));
    assert_eq!(f.actor.organization, some("Smart City Networks, L.P."));
    assert_eq!(
        f.first_seen.unwrap().to_rfc3339(),
        "2019-06-12T15:11:20+00:00"
    );
    assert!(f
        .console_url()
        .unwrap()
        .ends_with("/guardduty/home?region=us-east-1#/findings?macros=current&fId=4cb5a629e9757b650d102f683cdbcd7b"));

    // the same finding extracted from the event parses to the same thing
    let alone = parse_one("asff/cloud-custodian_custom_action__UnauthorizedAccess_IAMUser_ConsoleLogin__AwsIamAccessKey.json");
    assert_eq!(alone, f);
}

#[test]
fn asff_guardduty_findings() {
    let f = parse_one("asff/cloud-custodian_placebo_GetFindings_0__Recon_IAMUser_ResourcePermissions__AwsIamAccessKey.json");
    assert_eq!(f.id, "f6b5c52d7a829ed112f7556dd1cc40c4");
    assert_eq!(f.finding_type, "Recon:IAMUser/ResourcePermissions");
    assert_eq!((f.severity, f.count), (5.0, 4));
    let key = f.resource.access_key.as_ref().unwrap();
    assert_eq!(key.access_key_id, some("AKIAIPRJCJL6BOF6DPMA"));
    assert_eq!(key.user_name, some("brent.clements"));
    assert_eq!(f.actor.caller_ip, some("204.63.43.36"));
    assert_eq!(f.actor.city, some("Plano"));
    assert_eq!(
        f.created_at.unwrap().to_rfc3339(),
        "2019-06-24T16:39:05.221+00:00"
    );

    let f = parse_one("asff/cloud-custodian_placebo_GetFindings_4__Recon_IAMUser_ResourcePermissions__AwsIamAccessKey.json");
    assert_eq!(f.id, "f8b516324d4c8ef0f4c1228093268d82");
    assert_eq!(
        f.resource.access_key.as_ref().unwrap().access_key_id,
        some("ASIAZL6XWCR2ISQCR2PB")
    );

    let f = parse_one("asff/cloud-custodian_placebo_GetFindings_2__Recon_IAMUser_UserPermissions__AwsIamAccessKey.json");
    assert_eq!(f.finding_type, "Recon:IAMUser/UserPermissions");
}

// ---------------------------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------------------------

/// One step of a path into a JSON document.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Renders steps the way the parsers name paths: `$.a[0]["x-y"]`.
fn render(steps: &[Step]) -> String {
    let mut out = String::from("$");
    for step in steps {
        match step {
            Step::Key(k)
                if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                out.push('.');
                out.push_str(k);
            }
            Step::Key(k) => out.push_str(&format!("[{}]", serde_json::to_string(k).unwrap())),
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn collect_nodes(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(at.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                at.push(Step::Key(k.clone()));
                collect_nodes(child, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(Step::Index(i));
                collect_nodes(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(v: &'a mut Value, steps: &[Step]) -> &'a mut Value {
    steps.iter().fold(v, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()).unwrap(),
        Step::Index(i) => v.get_mut(*i).unwrap(),
    })
}

/// `parse_document`, turning a panic into a test failure that names the input.
fn parse_without_panic(text: &str, what: &str) -> Result<Vec<Finding>, ParseError> {
    catch_unwind(AssertUnwindSafe(|| parse_document(text)))
        .unwrap_or_else(|_| panic!("parse_document panicked on {what}"))
}

/// Nodes per fixture to mutate, beyond the top two levels which are always mutated.
const DEEP_NODES_PER_FILE: usize = 120;

#[test]
fn mutated_fixtures_never_panic_and_errors_name_the_mutated_path() {
    let replacements = [
        Value::Null,
        serde_json::json!(7),
        serde_json::json!("x"),
        serde_json::json!([]),
        serde_json::json!({}),
    ];
    let mut total = 0;
    for (rel, text) in fixtures() {
        let original: Value = serde_json::from_str(&text).unwrap();
        let parses_unmutated = parse_document(&text).is_ok();
        let mut nodes = Vec::new();
        collect_nodes(&original, &mut Vec::new(), &mut nodes);
        let (shallow, deep): (Vec<_>, Vec<_>) = nodes.into_iter().partition(|n| n.len() <= 2);
        let stride = deep.len().div_ceil(DEEP_NODES_PER_FILE).max(1);
        let chosen = shallow.into_iter().chain(deep.into_iter().step_by(stride));

        let mut errors = 0;
        for steps in chosen {
            let at = render(&steps);
            for replacement in &replacements {
                let mut doc = original.clone();
                *node_mut(&mut doc, &steps) = replacement.clone();
                let what = format!("{rel} with {at} = {replacement}");
                let result = parse_without_panic(&doc.to_string(), &what);
                total += 1;
                let Err(err) = result else { continue };
                errors += 1;
                if let Some(path) = err.path() {
                    assert!(path.starts_with('$'), "{what}: {err}");
                }
                // A document that parsed before fails only because of what changed: the error
                // names the mutated node or something inside it.
                if parses_unmutated && !matches!(err, ParseError::UnknownShape(_)) {
                    let path = err.path().unwrap_or_else(|| panic!("{what}: {err}"));
                    let inside = path == at
                        || path.starts_with(&format!("{at}."))
                        || path.starts_with(&format!("{at}["));
                    assert!(inside, "{what}: error at an unrelated path: {err}");
                }
            }
        }
        assert!(errors > 0, "{rel}: no mutation was rejected");
    }
    assert!(total > 5_000, "only {total} mutations ran");
}

#[test]
fn truncated_fixtures_never_panic_and_are_not_json() {
    for (rel, text) in fixtures() {
        let boundaries: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        let n = boundaries.len();
        let mut cuts: Vec<usize> = boundaries.iter().take(32).copied().collect();
        cuts.extend(boundaries.iter().skip(n.saturating_sub(32)).copied());
        cuts.extend(boundaries.iter().step_by((n / 64).max(1)).copied());
        for cut in cuts {
            let prefix = &text[..cut];
            let result = parse_without_panic(prefix, &format!("{rel} cut at byte {cut}"));
            if prefix.trim_end() != text.trim_end() {
                assert!(
                    matches!(result, Err(ParseError::NotJson(_))),
                    "{rel} cut at byte {cut}: {result:?}"
                );
            }
        }
    }
}
