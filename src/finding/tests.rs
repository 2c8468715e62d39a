//! The parsers' unit tests: every shape, every required field, the paths errors name.

use super::asff::guardduty_type_from_asff;
use super::*;
use serde_json::json;

/// A minimal valid GuardDuty finding; tests change one thing at a time.
fn gd() -> Value {
    json!({
        "id": "abc123",
        "accountId": "123456789012",
        "region": "eu-west-1",
        "type": "Recon:IAMUser/MaliciousIPCaller",
        "severity": 5
    })
}

fn parse(v: &Value) -> Result<Vec<Finding>, ParseError> {
    parse_document(&v.to_string())
}

fn one(v: &Value) -> Finding {
    let mut all = parse(v).expect("parses");
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn asff_gd() -> Value {
    json!({
        "SchemaVersion": "2018-10-08",
        "Id": "arn:aws:guardduty:eu-west-1:123456789012:detector/d1/finding/f00d",
        "ProductArn": "arn:aws:securityhub:eu-west-1::product/aws/guardduty",
        "AwsAccountId": "123456789012",
        "Types": ["TTPs/Discovery/Recon:IAMUser-ResourcePermissions"],
        "Severity": {"Product": 5, "Normalized": 50},
        "Resources": [{"Type": "AwsIamAccessKey", "Id": "AWS::IAM::AccessKey:AKIAEXAMPLE"}]
    })
}

#[test]
fn severity_label_boundaries() {
    let table = [
        (0.0, SeverityLabel::Low),
        (3.9, SeverityLabel::Low),
        (4.0, SeverityLabel::Medium),
        (6.9, SeverityLabel::Medium),
        (7.0, SeverityLabel::High),
        (8.9, SeverityLabel::High),
        (9.0, SeverityLabel::Critical),
        (10.0, SeverityLabel::Critical),
    ];
    for (score, label) in table {
        assert_eq!(SeverityLabel::from_score(score), label, "score {score}");
    }
}

#[test]
fn minimal_guardduty_finding_gets_defaults() {
    let f = one(&gd());
    assert_eq!(f.id, "abc123");
    assert_eq!(f.account_id, "123456789012");
    assert_eq!(f.region, "eu-west-1");
    assert_eq!(f.finding_type, "Recon:IAMUser/MaliciousIPCaller");
    assert_eq!(f.severity, 5.0);
    assert_eq!(f.severity_label, SeverityLabel::Medium);
    assert_eq!(f.count, 1);
    assert!(!f.archived);
    assert!(!f.sample);
    assert_eq!(f.source, FindingSource::GuardDuty);
    assert_eq!(f.resource.kind, ResourceKind::Other("Unknown".into()));
    assert!(f.actor.is_empty());
    assert_eq!((f.title.as_str(), f.created_at), ("", None));
}

#[test]
fn missing_id_names_its_path() {
    let mut v = gd();
    v.as_object_mut().unwrap().remove("id");
    assert_eq!(
        parse(&v),
        Err(ParseError::Missing {
            path: "$.id".into()
        })
    );
    // null counts as absent
    v["id"] = Value::Null;
    assert_eq!(
        parse(&v),
        Err(ParseError::Missing {
            path: "$.id".into()
        })
    );
}

#[test]
fn each_required_field_is_required() {
    for (key, path) in [
        ("accountId", "$.accountId"),
        ("region", "$.region"),
        ("type", "$.type"),
    ] {
        let mut v = gd();
        v.as_object_mut().unwrap().remove(key);
        assert_eq!(parse(&v), Err(ParseError::Missing { path: path.into() }));
    }
    let mut v = gd();
    v["id"] = json!("  ");
    assert!(matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.id"));
}

#[test]
fn severity_as_string_is_a_wrong_type() {
    let mut v = gd();
    v["severity"] = json!("high");
    assert_eq!(
        parse(&v),
        Err(ParseError::WrongType {
            path: "$.severity".into(),
            expected: "number",
            found: "string"
        })
    );
    v["severity"] = json!(11);
    assert!(matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.severity"));
}

#[test]
fn error_in_second_finding_of_a_list_names_its_index() {
    let doc = json!({"findings": [gd(), {"id": 5}]});
    let err = parse(&doc).unwrap_err();
    assert_eq!(err.path(), Some("$.findings[1].id"));
    assert!(matches!(
        err,
        ParseError::WrongType {
            found: "number",
            ..
        }
    ));
    // the same through the GuardDuty parser
    assert_eq!(
        parse_guardduty_json(&doc.to_string()).unwrap_err().path(),
        Some("$.findings[1].id")
    );
}

#[test]
fn deep_paths_are_exact() {
    let mut v = gd();
    v["resource"] = json!({
        "resourceType": "Instance",
        "instanceDetails": {"networkInterfaces": [{"securityGroups": [
            {"groupId": "sg-1"}, {"groupId": 7}
        ]}]}
    });
    let doc = json!({ "findings": [v] });
    assert_eq!(
        parse(&doc).unwrap_err().path(),
        Some(
            "$.findings[0].resource.instanceDetails.networkInterfaces[0].securityGroups[1].groupId"
        )
    );
}

#[test]
fn not_json_and_unknown_shapes() {
    assert!(matches!(
        parse_document("{\"id\": "),
        Err(ParseError::NotJson(_))
    ));
    assert!(matches!(parse_document(""), Err(ParseError::NotJson(_))));
    for doc in ["{\"hello\": 1}", "42", "\"text\"", "null"] {
        assert!(
            matches!(parse_document(doc), Err(ParseError::UnknownShape(_))),
            "{doc}"
        );
    }
    assert_eq!(ParseError::UnknownShape("x".into()).path(), Some("$"));
    assert_eq!(ParseError::NotJson("x".into()).path(), None);
}

#[test]
fn times_rfc3339_or_epoch_seconds_and_bad_ones_are_invalid() {
    let mut v = gd();
    v["createdAt"] = json!("2022-01-12T19:22:44.469Z");
    v["updatedAt"] = json!(1513612691.5);
    let f = one(&v);
    assert_eq!(
        f.created_at.unwrap().to_rfc3339(),
        "2022-01-12T19:22:44.469+00:00"
    );
    assert_eq!(f.updated_at.unwrap().timestamp_millis(), 1_513_612_691_500);
    v["service"] = json!({"eventFirstSeen": "yesterday"});
    assert!(
        matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.service.eventFirstSeen")
    );
    v["service"] = json!({"eventLastSeen": 1e300});
    assert!(
        matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.service.eventLastSeen")
    );
}

#[test]
fn account_and_region_are_checked_because_they_reach_arns_and_urls() {
    let mut v = gd();
    v["accountId"] = json!("1234:role/x");
    assert!(matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.accountId"));
    let mut v = gd();
    v["region"] = json!("evil.example#");
    assert!(matches!(parse(&v), Err(ParseError::Invalid { path, .. }) if path == "$.region"));
}

#[test]
fn counts_numbers_or_strings_never_negative_or_fractional() {
    let table = [
        (json!(7), Ok(7)),
        (json!("12"), Ok(12)),
        (json!(-1), Err(())),
        (json!(1.5), Err(())),
        (json!("many"), Err(())),
        (Value::Null, Ok(1)),
    ];
    for (count, want) in table {
        let mut v = gd();
        v["service"] = json!({ "count": count });
        match (parse(&v), want) {
            (Ok(f), Ok(n)) => assert_eq!(f[0].count, n),
            (Err(e), Err(())) => assert_eq!(e.path(), Some("$.service.count")),
            (got, want) => panic!("count {count}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn service_fields_sample_archived_and_actor() {
    let mut v = gd();
    v["service"] = json!({
        "archived": true,
        "count": 3,
        "additionalInfo": {"sample": true},
        "action": {
            "actionType": "PORT_PROBE",
            "portProbeAction": {"portProbeDetails": [
                {"remoteIpDetails": {"ipAddressV4": "198.51.100.7",
                    "country": {"countryName": "Elbonia"}, "city": {"cityName": "Mud"},
                    "organization": {"org": "OnlyOrg"}}},
                {"remoteIpDetails": {"ipAddressV4": "198.51.100.8"}}
            ]}
        }
    });
    let f = one(&v);
    assert!(f.archived && f.sample);
    assert_eq!(f.count, 3);
    assert_eq!(f.actor.action_type.as_deref(), Some("PORT_PROBE"));
    assert_eq!(f.actor.caller_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(f.actor.country.as_deref(), Some("Elbonia"));
    assert_eq!(f.actor.city.as_deref(), Some("Mud"));
    assert_eq!(f.actor.organization.as_deref(), Some("OnlyOrg"));
}

#[test]
fn every_details_object_is_filled_whatever_the_kind() {
    let mut v = gd();
    v["resource"] = json!({
        "resourceType": "AccessKey",
        "accessKeyDetails": {"accessKeyId": "AKIAEXAMPLE", "userType": "IAMUser", "userName": "alice"},
        "instanceDetails": {"instanceId": "i-1", "iamInstanceProfile": {"arn": "arn:p", "id": "AIP"},
            "tags": [{"key": "hanko:exempt", "value": "true"}, {"key": "empty"}]},
        "s3BucketDetails": [{"name": "b1", "publicAccess": {"effectivePermission": "PUBLIC",
            "permissionConfiguration": {"bucketLevelPermissions": {
                "accessControlList": {"allowsPublicReadAccess": true, "allowsPublicWriteAccess": false},
                "blockPublicAccess": {"blockPublicAcls": true}}}}}]
    });
    let f = one(&v);
    assert_eq!(f.resource.kind, ResourceKind::AccessKey);
    let key = f.resource.access_key.unwrap();
    assert_eq!(key.access_key_id.as_deref(), Some("AKIAEXAMPLE"));
    assert_eq!(key.user_name.as_deref(), Some("alice"));
    let inst = f.resource.instance.unwrap();
    assert_eq!(inst.instance_profile_arn.as_deref(), Some("arn:p"));
    assert_eq!(inst.instance_profile_id.as_deref(), Some("AIP"));
    assert_eq!(inst.tags[0].key, "hanko:exempt");
    assert_eq!(inst.tags[1].value, "");
    let pa = f.resource.s3_buckets[0].public_access.clone().unwrap();
    assert_eq!(pa.effective_permission.as_deref(), Some("PUBLIC"));
    assert_eq!(pa.acl_allows_public_read, Some(true));
    assert_eq!(pa.policy_allows_public_read, None);
    let flags = pa.bucket_block_public_access.unwrap();
    assert!(flags.block_public_acls && !flags.restrict_public_buckets);
    assert_eq!(pa.account_block_public_access, None);
}

#[test]
fn a_tag_without_a_key_is_missing() {
    let mut v = gd();
    v["resource"] = json!({"instanceDetails": {"tags": [{"value": "v"}]}});
    assert_eq!(
        parse(&v).unwrap_err().path(),
        Some("$.resource.instanceDetails.tags[0].key")
    );
}

#[test]
fn asff_types_convert_to_guardduty_types() {
    let table: [(&[&str], Option<&str>); 7] = [
        (
            &["TTPs/Discovery/Recon:IAMUser-ResourcePermissions"],
            Some("Recon:IAMUser/ResourcePermissions"),
        ),
        (
            &["Unusual Behaviors/User/UnauthorizedAccess:IAMUser-ConsoleLogin"],
            Some("UnauthorizedAccess:IAMUser/ConsoleLogin"),
        ),
        (
            &["TTPs/Command and Control/Backdoor:EC2-C&CActivity.B!DNS"],
            Some("Backdoor:EC2/C&CActivity.B!DNS"),
        ),
        // only the first `-` after the `:` was a `/`
        (&["Effects/X:Y-Some-Name"], Some("X:Y/Some-Name")),
        (
            &[
                "Software and Configuration Checks",
                "TTPs/Recon:EC2-PortProbeUnprotectedPort",
            ],
            Some("Recon:EC2/PortProbeUnprotectedPort"),
        ),
        (&["Recon:NoDash"], Some("Recon:NoDash")),
        (
            &["Software and Configuration Checks/Vulnerabilities/CVE"],
            None,
        ),
    ];
    for (types, want) in table {
        assert_eq!(
            guardduty_type_from_asff(types).as_deref(),
            want,
            "{types:?}"
        );
    }
}

#[test]
fn asff_guardduty_finding() {
    let f = one(&asff_gd());
    assert_eq!(f.id, "f00d");
    assert_eq!(
        f.arn.as_deref(),
        Some("arn:aws:guardduty:eu-west-1:123456789012:detector/d1/finding/f00d")
    );
    assert_eq!(f.region, "eu-west-1");
    assert_eq!(f.finding_type, "Recon:IAMUser/ResourcePermissions");
    assert_eq!((f.severity, f.severity_label), (5.0, SeverityLabel::Medium));
    assert_eq!(f.resource.kind, ResourceKind::AccessKey);
    assert_eq!(
        f.resource
            .access_key
            .clone()
            .unwrap()
            .access_key_id
            .as_deref(),
        Some("AKIAEXAMPLE")
    );
    assert!(f.is_guardduty());
    assert!(matches!(f.source, FindingSource::SecurityHub { .. }));
}

#[test]
fn asff_severity_sources_in_order() {
    let table = [
        (json!({"Product": 8, "Normalized": 20}), Ok(8.0)),
        (json!({"Original": "7.5", "Normalized": 20}), Ok(7.5)),
        (json!({"Normalized": 70}), Ok(7.0)),
        (json!({"Label": "CRITICAL"}), Ok(9.0)),
        (json!({"Label": "INFORMATIONAL"}), Ok(0.0)),
        (json!({}), Ok(0.0)),
        (json!({"Label": "SEVERE"}), Err("$.Severity.Label")),
        (json!({"Normalized": 101}), Err("$.Severity.Normalized")),
        (json!({"Product": "5"}), Err("$.Severity.Product")),
    ];
    for (sev, want) in table {
        let mut v = asff_gd();
        v["Severity"] = sev.clone();
        match (parse(&v), want) {
            (Ok(f), Ok(s)) => assert_eq!(f[0].severity, s, "{sev}"),
            (Err(e), Err(path)) => assert_eq!(e.path(), Some(path), "{sev}"),
            (got, want) => panic!("{sev}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn asff_product_fields_with_the_service_prefix_and_record_state() {
    let mut v = asff_gd();
    v["ProductFields"] = json!({
        "aws/guardduty/service/count": "12",
        "aws/guardduty/service/archived": "false",
        "aws/guardduty/service/additionalInfo/sample": "true",
        "aws/guardduty/service/action/actionType": "NETWORK_CONNECTION",
        "aws/guardduty/service/action/networkConnectionAction/remoteIpDetails/ipAddressV4": "203.0.113.9",
        "aws/guardduty/service/action/networkConnectionAction/remoteIpDetails/country/countryName": "Narnia",
        "aws/guardduty/service/action/networkConnectionAction/remoteIpDetails/organization/org": "Org Only"
    });
    v["RecordState"] = json!("ARCHIVED");
    let f = one(&v);
    assert_eq!(f.count, 12);
    assert!(f.archived, "RecordState ARCHIVED wins over archived=false");
    assert!(f.sample);
    assert_eq!(f.actor.action_type.as_deref(), Some("NETWORK_CONNECTION"));
    assert_eq!(f.actor.caller_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(f.actor.country.as_deref(), Some("Narnia"));
    assert_eq!(f.actor.organization.as_deref(), Some("Org Only"));

    v["ProductFields"] = json!({"count": "lots"});
    assert_eq!(parse(&v).unwrap_err().path(), Some("$.ProductFields.count"));
    v["ProductFields"] = json!({"aws/guardduty/service/archived": 1});
    assert_eq!(
        parse(&v).unwrap_err().path(),
        Some("$.ProductFields[\"aws/guardduty/service/archived\"]")
    );
}

#[test]
fn asff_action_block_fills_the_actor() {
    let mut v = asff_gd();
    v["Action"] = json!({
        "ActionType": "AWS_API_CALL",
        "AwsApiCallAction": {"Api": "ListBuckets", "ServiceName": "s3.amazonaws.com",
            "RemoteIpDetails": {"IpAddressV4": "192.0.2.1", "City": {"CityName": "Springfield"},
                "Organization": {"AsnOrg": "Example ASN"}}}
    });
    let f = one(&v);
    assert_eq!(f.actor.api.as_deref(), Some("ListBuckets"));
    assert_eq!(f.actor.service_name.as_deref(), Some("s3.amazonaws.com"));
    assert_eq!(f.actor.caller_ip.as_deref(), Some("192.0.2.1"));
    assert_eq!(f.actor.city.as_deref(), Some("Springfield"));
    assert_eq!(f.actor.organization.as_deref(), Some("Example ASN"));
}

#[test]
fn asff_other_product_resources_and_region_fallbacks() {
    let v = json!({
        "Findings": [{
            "Id": "inspector-finding-1",
            "ProductArn": "arn:aws:securityhub:us-west-2::product/aws/inspector",
            "AwsAccountId": "111122223333",
            "Types": ["Software and Configuration Checks/Vulnerabilities/CVE"],
            "Severity": {"Label": "HIGH", "Product": 99},
            "Resources": [
                {"Type": "AwsEc2Instance", "Id": "arn:aws:ec2:us-west-2:111122223333:instance/i-0abc",
                 "Tags": {"Name": "web"},
                 "Details": {"AwsEc2Instance": {"VpcId": "vpc-1", "SubnetId": "subnet-1",
                    "IamInstanceProfileArn": "arn:aws:iam::111122223333:instance-profile/p",
                    "NetworkInterfaces": [{"NetworkInterfaceId": "eni-1"}, {"NetworkInterfaceId": "eni-2"}]}}},
                {"Type": "AwsS3Bucket", "Id": "arn:aws:s3:::my-bucket",
                 "Details": {"AwsS3Bucket": {"PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": true, "IgnorePublicAcls": true,
                    "BlockPublicPolicy": false, "RestrictPublicBuckets": true}}}},
                {"Type": "AwsLambdaFunction", "Id": "arn:aws:lambda:us-west-2:111122223333:function:f"}
            ]
        }]
    });
    let f = one(&v);
    assert_eq!(f.id, "inspector-finding-1");
    assert_eq!(f.arn, None);
    assert_eq!(f.region, "us-west-2", "from the ProductArn");
    assert_eq!(
        f.finding_type,
        "Software and Configuration Checks/Vulnerabilities/CVE"
    );
    assert_eq!(f.severity, 7.0, "label, not another product's own score");
    assert!(!f.is_guardduty());
    assert_eq!(f.resource.kind, ResourceKind::Instance);
    let inst = f.resource.instance.clone().unwrap();
    assert_eq!(inst.instance_id.as_deref(), Some("i-0abc"));
    assert_eq!(inst.network_interfaces.len(), 2);
    assert_eq!(
        inst.network_interfaces[1].network_interface_id.as_deref(),
        Some("eni-2")
    );
    assert_eq!(inst.network_interfaces[1].vpc_id.as_deref(), Some("vpc-1"));
    assert_eq!(
        inst.tags,
        vec![Tag {
            key: "Name".into(),
            value: "web".into()
        }]
    );
    let bucket = &f.resource.s3_buckets[0];
    assert_eq!(bucket.name.as_deref(), Some("my-bucket"));
    let flags = bucket
        .public_access
        .clone()
        .unwrap()
        .bucket_block_public_access
        .unwrap();
    assert!(flags.block_public_acls && !flags.block_public_policy);

    // no Region, no ARN anywhere: the first resource's Region; then nothing at all
    let mut v = json!({"Id": "x", "AwsAccountId": "111122223333", "Types": ["T"],
        "Resources": [{"Type": "Other", "Region": "ap-south-1"}]});
    assert_eq!(one(&v).region, "ap-south-1");
    v["Resources"] = json!([]);
    assert_eq!(
        parse(&v),
        Err(ParseError::Missing {
            path: "$.Region".into()
        })
    );
}

#[test]
fn asff_lists_and_the_null_key_id() {
    let mut item = asff_gd();
    item["Resources"][0]["Id"] = json!("AWS::IAM::AccessKey:null");
    item["Resources"][0]["Details"] =
        json!({"AwsIamAccessKey": {"PrincipalName": "bob", "PrincipalType": "AssumedRole"}});
    let list = parse_asff(&json!([item.clone(), item]).to_string()).unwrap();
    assert_eq!(list.len(), 2);
    let key = list[0].resource.access_key.clone().unwrap();
    assert_eq!(key.access_key_id, None);
    assert_eq!(key.user_name.as_deref(), Some("bob"));
    assert_eq!(key.user_type.as_deref(), Some("AssumedRole"));
    assert_eq!(parse_asff("[]").unwrap(), vec![]);
    assert_eq!(
        parse_asff(&json!([asff_gd(), {"Id": 1}]).to_string())
            .unwrap_err()
            .path(),
        Some("$[1].Id")
    );
}

#[test]
fn eventbridge_guardduty_uses_the_detail_account_and_falls_back_to_the_envelope_region() {
    let mut detail = gd();
    detail.as_object_mut().unwrap().remove("region");
    let event = json!({
        "source": "aws.guardduty", "detail-type": "GuardDuty Finding",
        "account": "999999999999", "region": "ap-northeast-1", "detail": detail
    });
    let f = one(&event);
    assert_eq!(f.account_id, "123456789012");
    assert_eq!(f.region, "ap-northeast-1");

    // a partial envelope is recognised by its detail; an account never comes from the
    // envelope: without one in the detail the account is unknown (empty)
    let mut detail = gd();
    detail.as_object_mut().unwrap().remove("accountId");
    let partial = json!({"region": "us-east-1", "account": "999999999999", "detail": detail});
    let f = &parse_eventbridge(&partial.to_string()).unwrap()[0];
    assert_eq!(f.account_id, "");
    // a bare API document still needs its account
    let mut bare = gd();
    bare.as_object_mut().unwrap().remove("accountId");
    assert_eq!(
        parse_guardduty_json(&bare.to_string()),
        Err(ParseError::Missing {
            path: "$.accountId".into()
        })
    );
}

#[test]
fn eventbridge_shapes_that_are_not_findings() {
    let table = [
        json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
        json!({"source": "aws.guardduty", "detail-type": "GuardDuty Malware Protection Object Scan Result", "detail": {}}),
        json!({"source": "aws.securityhub", "detail-type": "Security Hub Insight Results", "detail": {}}),
        json!({"detail": {"something": "else"}}),
    ];
    for event in table {
        assert!(
            matches!(parse(&event), Err(ParseError::UnknownShape(_))),
            "{event}"
        );
    }
    let bad = json!({"source": "aws.guardduty", "detail-type": 5, "detail": gd()});
    assert_eq!(parse(&bad).unwrap_err().path(), Some("$[\"detail-type\"]"));
    let sh = json!({"source": "aws.securityhub", "detail-type": "Security Hub Findings - Imported",
        "detail": {"findings": [asff_gd(), asff_gd()]}});
    assert_eq!(parse(&sh).unwrap().len(), 2);
    let sh_bad = json!({"source": "aws.securityhub", "detail": {}});
    assert_eq!(
        parse(&sh_bad),
        Err(ParseError::Missing {
            path: "$.detail.findings".into()
        })
    );
}

#[test]
fn console_urls() {
    let f = one(&gd());
    assert_eq!(
        f.console_url().as_deref(),
        Some("https://eu-west-1.console.aws.amazon.com/guardduty/home?region=eu-west-1#/findings?macros=current&fId=abc123")
    );
    let mut cn = f.clone();
    cn.region = "cn-north-1".into();
    assert!(cn
        .console_url()
        .unwrap()
        .starts_with("https://cn-north-1.console.amazonaws.cn/guardduty/"));
    let mut evil = f.clone();
    evil.region = "evil.example/#".into();
    assert_eq!(evil.console_url(), None);

    let mut other = f;
    other.id = "arn:aws:x:y/1".into();
    other.source = FindingSource::SecurityHub {
        product_arn: "arn:aws:securityhub:eu-west-1::product/aws/inspector".into(),
    };
    assert_eq!(
        other.console_url().as_deref(),
        Some("https://eu-west-1.console.aws.amazon.com/securityhub/home?region=eu-west-1#/findings?search=Id%3D%255Coperator%255C%253AEQUALS%255C%253Aarn%253Aaws%253Ax%253Ay%252F1")
    );
}

#[test]
fn value_entry_points_prefix_their_paths() {
    let mut v = gd();
    v["severity"] = json!(true);
    assert_eq!(
        parse_guardduty_value(&v, "$.Messages[3].Body")
            .unwrap_err()
            .path(),
        Some("$.Messages[3].Body.severity")
    );
    assert_eq!(
        parse_asff_value(&json!({"Id": []}), "$.Findings[9]")
            .unwrap_err()
            .path(),
        Some("$.Findings[9].Id")
    );
    assert_eq!(parse_guardduty_value(&gd(), "$").unwrap().id, "abc123");
    assert_eq!(parse_guardduty_json("{\"findings\": null}"), Ok(vec![]));
    assert_eq!(parse_guardduty_json("{\"findings\": []}"), Ok(vec![]));
    assert!(matches!(
        parse_guardduty_json("[]"),
        Err(ParseError::WrongType { found: "array", .. })
    ));
    // a bare list of GuardDuty findings is recognised by parse_document
    assert_eq!(parse(&json!([gd(), null, gd()])).unwrap().len(), 2);
}
