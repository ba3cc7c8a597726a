//! The policy language's tests: table-driven evaluation cases (wildcards, case rules,
//! deny-overrides, every condition operator, the missing-key rule), refusals of malformed
//! documents with their messages, and property tests.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

const APP_A: &str = "acs:opensearch:cn-hangzhou:root:apps/app_a";
const APP_B: &str = "acs:opensearch:cn-hangzhou:root:apps/app_b";
/// 2026-01-01T00:00:00Z.
const NEW_YEAR_2026: i64 = 1_767_225_600;

fn context() -> RequestContext {
    RequestContext {
        source_ip: Some("10.1.2.3".parse().unwrap()),
        current_time: NEW_YEAR_2026,
        secure_transport: false,
        mfa_present: false,
    }
}

fn policy(document: &str) -> Policy {
    Policy::parse(document).unwrap_or_else(|error| panic!("{document} was refused: {error}"))
}

fn decide_with(documents: &[&str], action: &str, resource: &str, context: RequestContext) -> Decision {
    let policies: Vec<Policy> = documents.iter().map(|document| policy(document)).collect();
    evaluate(&policies, &AuthorizationRequest { action, resource, context })
}

fn effect(documents: &[&str], action: &str, resource: &str) -> DecisionEffect {
    decide_with(documents, action, resource, context()).effect
}

/// One statement with a condition block, allowing everything when the condition holds.
fn allow_if(condition: &str) -> String {
    format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}}}]}}"#
    )
}

fn statement(effect: &str, action: &str, resource: &str) -> String {
    format!(r#"{{"Version":"1","Statement":[{{"Effect":"{effect}","Action":{action},"Resource":{resource}}}]}}"#)
}

use DecisionEffect::{Allowed, ExplicitDeny, ImplicitDeny};

#[test]
fn actions_and_resources_table() {
    // (Action element, Resource element, requested action, requested resource, expected)
    let cases: &[(&str, &str, &str, &str, DecisionEffect)] = &[
        // exact
        (r#""opensearch:WriteFunction""#, &format!("\"{APP_A}\""), "opensearch:WriteFunction", APP_A, Allowed),
        (r#""opensearch:WriteFunction""#, &format!("\"{APP_A}\""), "opensearch:DescribeFunction", APP_A, ImplicitDeny),
        (r#""opensearch:WriteFunction""#, &format!("\"{APP_A}\""), "opensearch:WriteFunction", APP_B, ImplicitDeny),
        // `*` alone
        (r#""*""#, r#""*""#, "opensearch:WriteFunction", APP_A, Allowed),
        (r#""*""#, r#""*""#, "ram:CreateUser", "acs:ram:*:root:user/alice", Allowed),
        // action wildcards
        (r#""opensearch:*""#, r#""*""#, "opensearch:SearchApp", APP_A, Allowed),
        (r#""opensearch:*""#, r#""*""#, "ram:CreateUser", APP_A, ImplicitDeny),
        (r#""opensearch:Describe*""#, r#""*""#, "opensearch:DescribeFunction", APP_A, Allowed),
        (r#""opensearch:Describe*""#, r#""*""#, "opensearch:DescribeAppGroup", APP_A, Allowed),
        (r#""opensearch:Describe*""#, r#""*""#, "opensearch:WriteFunction", APP_A, ImplicitDeny),
        (r#""opensearch:?riteFunction""#, r#""*""#, "opensearch:WriteFunction", APP_A, Allowed),
        (r#""opensearch:?riteFunction""#, r#""*""#, "opensearch:rriteFunctio", APP_A, ImplicitDeny),
        (r#""opensearch:*Function""#, r#""*""#, "opensearch:Function", APP_A, Allowed),
        // actions are case-insensitive, both ways
        (r#""OPENSEARCH:writefunction""#, r#""*""#, "opensearch:WriteFunction", APP_A, Allowed),
        (r#""opensearch:WriteFunction""#, r#""*""#, "OpenSearch:WRITEFUNCTION", APP_A, Allowed),
        (r#""opensearch:describe*""#, r#""*""#, "opensearch:DescribeFunction", APP_A, Allowed),
        // a list of actions ORs
        (
            r#"["opensearch:DescribeFunction","opensearch:WriteFunction"]"#,
            r#""*""#,
            "opensearch:WriteFunction",
            APP_A,
            Allowed,
        ),
        // resource wildcards
        (r#""*""#, r#""acs:opensearch:*:*:apps/*""#, "opensearch:WriteFunction", APP_A, Allowed),
        (r#""*""#, r#""acs:opensearch:*:*:apps/app_*""#, "opensearch:WriteFunction", APP_B, Allowed),
        (r#""*""#, r#""acs:opensearch:*:*:apps/app_?""#, "opensearch:WriteFunction", APP_B, Allowed),
        (
            r#""*""#,
            r#""acs:opensearch:*:*:apps/app_?""#,
            "opensearch:WriteFunction",
            "acs:opensearch:r:root:apps/app_bb",
            ImplicitDeny,
        ),
        (r#""*""#, r#""acs:opensearch:*:*:apps/app_a""#, "opensearch:WriteFunction", APP_B, ImplicitDeny),
        // a prefix is not a match: the pattern covers the whole resource
        (r#""*""#, r#""acs:opensearch:*:*:apps/app""#, "opensearch:WriteFunction", APP_A, ImplicitDeny),
        (
            r#""*""#,
            r#""acs:opensearch:*:*:apps/app_a""#,
            "opensearch:WriteFunction",
            "acs:opensearch:r:root:apps/app_a2",
            ImplicitDeny,
        ),
        // `*` crosses ':' and '/'
        (r#""*""#, r#""acs:opensearch:*:*:*""#, "opensearch:WriteFunction", APP_A, Allowed),
        (r#""*""#, r#""acs:*:*:*:*""#, "ram:CreateUser", "acs:ram:*:root:user/alice", Allowed),
        // resources are case-sensitive
        (r#""*""#, r#""acs:opensearch:*:*:apps/App_A""#, "opensearch:WriteFunction", APP_A, ImplicitDeny),
        (
            r#""*""#,
            r#""acs:opensearch:*:*:apps/app_a""#,
            "opensearch:WriteFunction",
            "ACS:opensearch:r:root:apps/app_a",
            ImplicitDeny,
        ),
        (
            r#""*""#,
            &format!("\"{APP_A}\""),
            "opensearch:WriteFunction",
            "acs:opensearch:cn-hangzhou:root:apps/APP_A",
            ImplicitDeny,
        ),
        // the account and region parts
        (r#""*""#, r#""acs:opensearch:cn-hangzhou:root:apps/*""#, "opensearch:WriteFunction", APP_A, Allowed),
        (r#""*""#, r#""acs:opensearch:cn-beijing:root:apps/*""#, "opensearch:WriteFunction", APP_A, ImplicitDeny),
        (r#""*""#, r#""acs:opensearch:*:12345:apps/*""#, "opensearch:WriteFunction", APP_A, ImplicitDeny),
        // a `*` in the request is a literal character
        (
            r#""*""#,
            r#""acs:opensearch:*:*:apps/app_a""#,
            "opensearch:WriteFunction",
            "acs:opensearch:r:root:apps/*",
            ImplicitDeny,
        ),
        (
            r#""*""#,
            r#""acs:opensearch:*:*:apps/*""#,
            "opensearch:ListAppGroup",
            "acs:opensearch:r:root:apps/*",
            Allowed,
        ),
        (
            r#""*""#,
            r#""acs:opensearch:*:*:apps/?""#,
            "opensearch:ListAppGroup",
            "acs:opensearch:r:root:apps/*",
            Allowed,
        ),
        // RAM's own ARNs have an empty region; `*` also matches the empty string
        (r#""ram:*""#, r#""acs:ram::*:user/alice""#, "ram:CreateAccessKey", "acs:ram::root:user/alice", Allowed),
        (r#""ram:*""#, r#""acs:ram:*:*:user/alice""#, "ram:CreateAccessKey", "acs:ram::root:user/alice", Allowed),
        (r#""ram:*""#, r#""acs:ram::*:user/alice""#, "ram:CreateAccessKey", "acs:ram::root:user/alice2", ImplicitDeny),
        // a list of resources ORs
        (r#""*""#, &format!("[\"{APP_A}\",\"{APP_B}\"]"), "opensearch:WriteFunction", APP_B, Allowed),
    ];
    for (index, (action, resource, requested_action, requested_resource, expected)) in cases.iter().enumerate() {
        let document = statement("Allow", action, resource);
        assert_eq!(
            effect(&[&document], requested_action, requested_resource),
            *expected,
            "case {index}: {document} for {requested_action} on {requested_resource}"
        );
    }
}

#[test]
fn not_action_and_not_resource() {
    let all_but_write =
        r#"{"Version":"1","Statement":[{"Effect":"Allow","NotAction":"opensearch:Write*","Resource":"*"}]}"#;
    assert_eq!(effect(&[all_but_write], "opensearch:DescribeFunction", APP_A), Allowed);
    assert_eq!(effect(&[all_but_write], "opensearch:WriteFunction", APP_A), ImplicitDeny);
    assert_eq!(effect(&[all_but_write], "ram:CreateUser", APP_A), Allowed);
    let all_but_b =
        format!(r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"*","NotResource":"{APP_B}"}}]}}"#);
    assert_eq!(effect(&[&all_but_b], "opensearch:WriteFunction", APP_A), Allowed);
    assert_eq!(effect(&[&all_but_b], "opensearch:WriteFunction", APP_B), ImplicitDeny);
    // Deny + NotAction: everything except Describe* is denied.
    let deny_all_but_describe =
        r#"{"Version":"1","Statement":[{"Effect":"Deny","NotAction":"opensearch:Describe*","Resource":"*"}]}"#;
    let allow_all = statement("Allow", r#""*""#, r#""*""#);
    assert_eq!(effect(&[&allow_all, deny_all_but_describe], "opensearch:WriteFunction", APP_A), ExplicitDeny);
    assert_eq!(effect(&[&allow_all, deny_all_but_describe], "opensearch:DescribeFunction", APP_A), Allowed);
    // NotAction alone grants nothing it lists and denies nothing.
    assert_eq!(effect(&[deny_all_but_describe], "opensearch:DescribeFunction", APP_A), ImplicitDeny);
}

#[test]
fn default_deny_and_deny_overrides() {
    assert_eq!(effect(&[], "opensearch:DescribeFunction", APP_A), ImplicitDeny);
    let allow_all = statement("Allow", r#""*""#, r#""*""#);
    let deny_b = statement("Deny", r#""opensearch:*""#, &format!("\"{APP_B}\""));
    assert_eq!(effect(&[&allow_all, &deny_b], "opensearch:WriteFunction", APP_A), Allowed);
    assert_eq!(effect(&[&allow_all, &deny_b], "opensearch:WriteFunction", APP_B), ExplicitDeny);
    // Order does not matter.
    assert_eq!(effect(&[&deny_b, &allow_all], "opensearch:WriteFunction", APP_B), ExplicitDeny);
    // Within one policy too.
    let mixed = r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"opensearch:WriteFunction","Resource":"*"},{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    assert_eq!(effect(&[mixed], "opensearch:WriteFunction", APP_A), ExplicitDeny);
    assert_eq!(effect(&[mixed], "opensearch:DescribeFunction", APP_A), Allowed);
    // A Deny that does not apply changes nothing.
    let deny_ram = statement("Deny", r#""ram:*""#, r#""*""#);
    assert_eq!(effect(&[&allow_all, &deny_ram], "opensearch:WriteFunction", APP_A), Allowed);
}

#[test]
fn the_deciding_statement_is_named() {
    let describe = statement("Allow", r#""opensearch:Describe*""#, r#""*""#);
    let two_statements = r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"ram:*","Resource":"*"},{"Effect":"Deny","Action":"opensearch:DescribeFunction","Resource":"*"}]}"#;
    let allowed = decide_with(&[&describe], "opensearch:DescribeAppGroup", APP_A, context());
    assert_eq!(allowed.effect, Allowed);
    assert_eq!(allowed.deciding, Some(StatementRef { policy_index: 0, statement_index: 0 }));
    let denied = decide_with(&[&describe, two_statements], "opensearch:DescribeFunction", APP_A, context());
    assert_eq!(denied.effect, ExplicitDeny);
    assert_eq!(denied.deciding, Some(StatementRef { policy_index: 1, statement_index: 1 }));
    assert_eq!(denied.deciding.unwrap().to_string(), "policy 1 Statement[1]");
    let implicit = decide_with(&[&describe], "opensearch:WriteFunction", APP_A, context());
    assert_eq!(implicit, Decision { effect: ImplicitDeny, deciding: None });
    assert!(!implicit.is_allowed());
    // The first applicable Allow, in the order given.
    let allow_all = statement("Allow", r#""*""#, r#""*""#);
    let first = decide_with(&[&allow_all, &describe], "opensearch:DescribeAppGroup", APP_A, context());
    assert_eq!(first.deciding, Some(StatementRef { policy_index: 0, statement_index: 0 }));
}

fn at(source_ip: Option<&str>, current_time: i64, secure_transport: bool) -> RequestContext {
    RequestContext {
        source_ip: source_ip.map(|text| text.parse::<IpAddr>().unwrap()),
        current_time,
        secure_transport,
        mfa_present: false,
    }
}

#[test]
fn conditions_table() {
    let office = Some("192.168.1.20");
    let outside = Some("8.8.8.8");
    // (Condition element, request context, expected)
    let cases: Vec<(&str, RequestContext, DecisionEffect)> = vec![
        // IpAddress / NotIpAddress
        (r#"{"IpAddress":{"acs:SourceIp":"192.168.0.0/16"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"IpAddress":{"acs:SourceIp":"192.168.0.0/16"}}"#, at(outside, NEW_YEAR_2026, false), ImplicitDeny),
        (r#"{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","192.168.1.20"]}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"IpAddress":{"acs:SourceIp":"192.168.1.21"}}"#, at(office, NEW_YEAR_2026, false), ImplicitDeny),
        // host bits below the prefix are cleared
        (r#"{"IpAddress":{"acs:SourceIp":"192.168.1.99/24"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"IpAddress":{"acs:SourceIp":"0.0.0.0/0"}}"#, at(outside, NEW_YEAR_2026, false), Allowed),
        (r#"{"NotIpAddress":{"acs:SourceIp":"192.168.0.0/16"}}"#, at(outside, NEW_YEAR_2026, false), Allowed),
        (r#"{"NotIpAddress":{"acs:SourceIp":"192.168.0.0/16"}}"#, at(office, NEW_YEAR_2026, false), ImplicitDeny),
        // IPv6, and IPv4-mapped addresses compare as IPv4
        (r#"{"IpAddress":{"acs:SourceIp":"2001:db8::/32"}}"#, at(Some("2001:db8::7"), NEW_YEAR_2026, false), Allowed),
        (
            r#"{"IpAddress":{"acs:SourceIp":"2001:db8::/32"}}"#,
            at(Some("2001:db9::7"), NEW_YEAR_2026, false),
            ImplicitDeny,
        ),
        (r#"{"IpAddress":{"acs:SourceIp":"2001:db8::/32"}}"#, at(office, NEW_YEAR_2026, false), ImplicitDeny),
        (
            r#"{"IpAddress":{"acs:SourceIp":"192.168.0.0/16"}}"#,
            at(Some("::ffff:192.168.1.20"), NEW_YEAR_2026, false),
            Allowed,
        ),
        // the missing-key rule: an unknown source address makes positive false, negated true
        (r#"{"IpAddress":{"acs:SourceIp":"0.0.0.0/0"}}"#, at(None, NEW_YEAR_2026, false), ImplicitDeny),
        (r#"{"NotIpAddress":{"acs:SourceIp":"192.168.0.0/16"}}"#, at(None, NEW_YEAR_2026, false), Allowed),
        (r#"{"StringEquals":{"acs:SourceIp":"192.168.1.20"}}"#, at(None, NEW_YEAR_2026, false), ImplicitDeny),
        (r#"{"StringNotEquals":{"acs:SourceIp":"192.168.1.20"}}"#, at(None, NEW_YEAR_2026, false), Allowed),
        // String operators on the address's text
        (r#"{"StringEquals":{"acs:SourceIp":"192.168.1.20"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"StringNotEquals":{"acs:SourceIp":"192.168.1.20"}}"#, at(office, NEW_YEAR_2026, false), ImplicitDeny),
        (r#"{"StringLike":{"acs:SourceIp":"192.168.*"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"StringNotLike":{"acs:SourceIp":["10.*","8.8.*"]}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"StringNotLike":{"acs:SourceIp":["10.*","8.8.*"]}}"#, at(outside, NEW_YEAR_2026, false), ImplicitDeny),
        (
            r#"{"StringEqualsIgnoreCase":{"acs:SourceIp":"2001:DB8::7"}}"#,
            at(Some("2001:db8::7"), NEW_YEAR_2026, false),
            Allowed,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"acs:SourceIp":"2001:DB8::7"}}"#,
            at(Some("2001:db8::7"), NEW_YEAR_2026, false),
            ImplicitDeny,
        ),
        // Date operators on acs:CurrentTime
        (r#"{"DateLessThan":{"acs:CurrentTime":"2026-06-01T00:00:00Z"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (
            r#"{"DateLessThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}"#,
            at(office, NEW_YEAR_2026, false),
            ImplicitDeny,
        ),
        (
            r#"{"DateLessThanEquals":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}"#,
            at(office, NEW_YEAR_2026, false),
            Allowed,
        ),
        (
            r#"{"DateGreaterThan":{"acs:CurrentTime":"2025-12-31T23:59:59Z"}}"#,
            at(office, NEW_YEAR_2026, false),
            Allowed,
        ),
        (
            r#"{"DateGreaterThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}"#,
            at(office, NEW_YEAR_2026, false),
            ImplicitDeny,
        ),
        (
            r#"{"DateGreaterThanEquals":{"acs:CurrentTime":"2026-01-01T08:00:00+08:00"}}"#,
            at(office, NEW_YEAR_2026, false),
            Allowed,
        ),
        (
            r#"{"DateEquals":{"acs:CurrentTime":"2026-01-01T08:00:00+08:00"}}"#,
            at(office, NEW_YEAR_2026, false),
            Allowed,
        ),
        (r#"{"DateEquals":{"acs:CurrentTime":"2026-01-01T00:00:00.900Z"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (
            r#"{"DateNotEquals":{"acs:CurrentTime":"2026-01-01T00:00:00Z"}}"#,
            at(office, NEW_YEAR_2026, false),
            ImplicitDeny,
        ),
        (r#"{"DateNotEquals":{"acs:CurrentTime":"2026-01-01T00:00:01Z"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        // Numeric operators read acs:CurrentTime as Unix seconds
        (r#"{"NumericEquals":{"acs:CurrentTime":1767225600}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"NumericNotEquals":{"acs:CurrentTime":"1767225600"}}"#, at(office, NEW_YEAR_2026, false), ImplicitDeny),
        (r#"{"NumericLessThan":{"acs:CurrentTime":1767225601}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"NumericLessThanEquals":{"acs:CurrentTime":1767225599}}"#, at(office, NEW_YEAR_2026, false), ImplicitDeny),
        (r#"{"NumericGreaterThan":{"acs:CurrentTime":1767225599.5}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (
            r#"{"NumericGreaterThanEquals":{"acs:CurrentTime":1767225601}}"#,
            at(office, NEW_YEAR_2026, false),
            ImplicitDeny,
        ),
        // Bool on acs:SecureTransport and acs:MFAPresent
        (r#"{"Bool":{"acs:SecureTransport":"true"}}"#, at(office, NEW_YEAR_2026, true), Allowed),
        (r#"{"Bool":{"acs:SecureTransport":true}}"#, at(office, NEW_YEAR_2026, false), ImplicitDeny),
        (r#"{"Bool":{"acs:SecureTransport":"false"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        (r#"{"Bool":{"acs:MFAPresent":"true"}}"#, at(office, NEW_YEAR_2026, true), ImplicitDeny),
        // condition key names are case-insensitive
        (r#"{"IpAddress":{"ACS:sourceip":"192.168.0.0/16"}}"#, at(office, NEW_YEAR_2026, false), Allowed),
        // operators AND, keys under one operator AND, values OR
        (
            r#"{"IpAddress":{"acs:SourceIp":"192.168.0.0/16"},"Bool":{"acs:SecureTransport":"true"}}"#,
            at(office, NEW_YEAR_2026, false),
            ImplicitDeny,
        ),
        (
            r#"{"IpAddress":{"acs:SourceIp":"192.168.0.0/16"},"Bool":{"acs:SecureTransport":"true"}}"#,
            at(office, NEW_YEAR_2026, true),
            Allowed,
        ),
        (
            r#"{"Bool":{"acs:SecureTransport":"true","acs:MFAPresent":"false"}}"#,
            at(office, NEW_YEAR_2026, true),
            Allowed,
        ),
        (
            r#"{"DateGreaterThan":{"acs:CurrentTime":["2030-01-01T00:00:00Z","2020-01-01T00:00:00Z"]}}"#,
            at(office, NEW_YEAR_2026, false),
            Allowed,
        ),
    ];
    for (index, (condition, request_context, expected)) in cases.iter().enumerate() {
        let document = allow_if(condition);
        let decision = decide_with(&[&document], "opensearch:DescribeFunction", APP_A, *request_context);
        assert_eq!(decision.effect, *expected, "case {index}: {condition} with {request_context:?}");
    }
}

#[test]
fn a_conditional_deny_only_denies_when_its_condition_holds() {
    let allow_all = statement("Allow", r#""*""#, r#""*""#);
    let deny_outside = r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}}]}"#;
    let inside = at(Some("10.9.9.9"), NEW_YEAR_2026, false);
    let outside = at(Some("11.0.0.1"), NEW_YEAR_2026, false);
    assert_eq!(decide_with(&[&allow_all, deny_outside], "opensearch:SearchApp", APP_A, inside).effect, Allowed);
    assert_eq!(decide_with(&[&allow_all, deny_outside], "opensearch:SearchApp", APP_A, outside).effect, ExplicitDeny);
    // An unknown source address: the negated operator holds, so the Deny fires (fail closed).
    let unknown = at(None, NEW_YEAR_2026, false);
    assert_eq!(decide_with(&[&allow_all, deny_outside], "opensearch:SearchApp", APP_A, unknown).effect, ExplicitDeny);
}

#[test]
fn malformed_policies_are_refused_naming_the_problem() {
    let cases: &[(&str, &str, &str)] = &[
        // (document, expected path, a fragment of the rule)
        ("", "", "not valid JSON"),
        ("{", "", "not valid JSON"),
        (r#"{"Version":"1","Statement":[]} x"#, "", "not valid JSON"),
        ("[]", "", "must be a JSON object"),
        (r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#, "Version", "is required"),
        (r#"{"Version":1,"Statement":[]}"#, "Version", "must be the string \"1\", found the number 1"),
        (r#"{"Version":"2","Statement":[]}"#, "Version", "found the string \"2\""),
        (r#"{"Version":"1"}"#, "Statement", "is required"),
        (r#"{"Version":"1","Statement":[]}"#, "Statement", "at least one statement"),
        (
            r#"{"Version":"1","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
            "Statement",
            "must be a list of statements, found an object",
        ),
        (r#"{"Version":"1","Id":"x","Statement":[]}"#, "Id", "is not a policy element"),
        (r#"{"Version":"1","Statement":["x"]}"#, "Statement[0]", "must be an object"),
        (r#"{"Version":"1","Statement":[{"Action":"*","Resource":"*"}]}"#, "Statement[0].Effect", "is required"),
        (
            r#"{"Version":"1","Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#,
            "Statement[0].Effect",
            "must be \"Allow\" or \"Deny\", found the string \"allow\"",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":true,"Action":"*","Resource":"*"}]}"#,
            "Statement[0].Effect",
            "found the boolean true",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Sid":"s1"}]}"#,
            "Statement[0].Sid",
            "is not a statement element",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","action":"*","Resource":"*"}]}"#,
            "Statement[0].action",
            "names are case-sensitive",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}]}"#,
            "Statement[0].Principal",
            "resource policies",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            "Statement[0]",
            "needs Action or NotAction",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","NotAction":"x:y","Resource":"*"}]}"#,
            "Statement[0]",
            "has both Action and NotAction",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*"}]}"#,
            "Statement[0]",
            "needs Resource or NotResource",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            "Statement[0].Action",
            "must not be an empty list",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["*",3],"Resource":"*"}]}"#,
            "Statement[0].Action[1]",
            "must be a string, found the number 3",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"WriteFunction","Resource":"*"}]}"#,
            "Statement[0].Action",
            "service:ActionName",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"open*:WriteFunction","Resource":"*"}]}"#,
            "Statement[0].Action",
            "the service before ':' must be a RAM code",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"opensearch:Write Function","Resource":"*"}]}"#,
            "Statement[0].Action",
            "the action after ':'",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"apps/my_app"}]}"#,
            "Statement[0].Resource",
            "must be \"*\" or an ARN",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"acs:opensearch:*:*"}]}"#,
            "Statement[0].Resource",
            "must be \"*\" or an ARN",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":{"a":1}}]}"#,
            "Statement[0].Resource",
            "must be a string or a list of strings, found an object",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Effect":"Deny","Action":"*","Resource":"*"}]}"#,
            "Statement[0].Effect",
            "appears twice",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}]}"#,
            "Statement[0].Condition",
            "must not be empty",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqual":{"acs:SourceIp":"x"}}}]}"#,
            "Statement[0].Condition.StringEqual",
            "is not a supported condition operator",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"acs:SourceIp":"x"}}}]}"#,
            "Statement[0].Condition.StringEqualsIfExists",
            "IfExists and Null are not supported",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"acs:UserAgent":"x"}}}]}"#,
            "Statement[0].Condition.StringEquals.acs:UserAgent",
            "is not a condition key Trainyard supplies",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"acs:CurrentTime":"10.0.0.0/8"}}}]}"#,
            "Statement[0].Condition.IpAddress.acs:CurrentTime",
            "IpAddress does not apply to acs:CurrentTime",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.0/33"}}}]}"#,
            "Statement[0].Condition.IpAddress.acs:SourceIp",
            "invalid prefix length",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","10.0.0.256"]}}}]}"#,
            "Statement[0].Condition.IpAddress.acs:SourceIp[1]",
            "must be an IPv4 or IPv6 address or CIDR block",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"acs:CurrentTime":"2026-01-01"}}}]}"#,
            "Statement[0].Condition.DateLessThan.acs:CurrentTime",
            "is not an ISO 8601 time with a zone",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"acs:CurrentTime":"1e9"}}}]}"#,
            "Statement[0].Condition.NumericLessThan.acs:CurrentTime",
            "is not a decimal number",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"yes"}}}]}"#,
            "Statement[0].Condition.Bool.acs:SecureTransport",
            "is not \"true\" or \"false\"",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":[]}}}]}"#,
            "Statement[0].Condition.Bool.acs:SecureTransport",
            "must not be an empty list",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"true","ACS:securetransport":"false"}}}]}"#,
            "Statement[0].Condition.Bool.ACS:securetransport",
            "a second time",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{}}}]}"#,
            "Statement[0].Condition.Bool",
            "at least one condition key",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"acs:SourceIp":1}}}]}"#,
            "Statement[0].Condition.StringEquals.acs:SourceIp",
            "must be a string for a String operator",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"acs:SourceIp":[[[["x"]]]]}}}]}"#,
            "Statement[0].Condition.StringEquals.acs:SourceIp[0][0][0]",
            "deeper than 8 levels",
        ),
    ];
    for (document, expected_path, expected_rule) in cases {
        let error = Policy::parse(document).expect_err(document);
        assert_eq!(error.path, *expected_path, "{document}: {error}");
        assert!(
            error.rule.contains(expected_rule),
            "{document}: the rule \"{}\" lacks \"{expected_rule}\"",
            error.rule
        );
    }
}

#[test]
fn oversized_documents_are_refused_before_parsing() {
    let padding = " ".repeat(MAX_POLICY_CHARACTERS);
    let document =
        format!(r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"*","Resource":"*"}}]}}{padding}"#);
    let error = Policy::parse(&document).unwrap_err();
    assert!(error.rule.contains("longer than 6144 characters"), "{error}");
}

#[test]
fn the_error_names_the_parameter_that_carried_the_document() {
    let error =
        Policy::parse(r#"{"Version":"1","Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#).unwrap_err();
    let core_error = error.clone().into_core_error("policyDocument");
    assert_eq!(core_error.code(), crate::ErrorCode::InvalidParameter);
    let message = core_error.to_string();
    assert!(message.contains("policyDocument.Statement[0].Effect"), "{message}");
    assert!(error.to_string().starts_with("Statement[0].Effect: "), "{error}");
}

#[test]
fn canonical_form_round_trips() {
    let documents = [
        r#"{ "Statement": [ { "Resource": ["acs:opensearch:*:*:apps/a", "acs:opensearch:*:*:apps/b"], "Action": ["opensearch:Describe*"], "Effect": "Allow" } ], "Version": "1" }"#,
        r#"{"Version":"1","Statement":[{"Effect":"Deny","NotAction":"opensearch:WriteFunction","NotResource":"*","Condition":{"Bool":{"acs:securetransport":false},"NumericLessThan":{"acs:CurrentTime":[1e3, 17]},"IpAddress":{"acs:SourceIp":["10.0.0.1/8"]}}}]}"#,
    ];
    for document in documents {
        let parsed = policy(document);
        let canonical = parsed.to_canonical_json();
        let reparsed = policy(&canonical);
        assert_eq!(reparsed, parsed, "{canonical}");
        assert_eq!(reparsed.to_canonical_json(), canonical);
    }
    assert_eq!(
        policy(documents[0]).to_canonical_json(),
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"opensearch:Describe*","Resource":["acs:opensearch:*:*:apps/a","acs:opensearch:*:*:apps/b"]}]}"#
    );
    // Key names are written in their documented spelling; values as written.
    let second = policy(documents[1]).to_canonical_json();
    assert!(second.contains(r#""Bool":{"acs:SecureTransport":false}"#), "{second}");
    assert!(second.contains(r#""IpAddress":{"acs:SourceIp":"10.0.0.1/8"}"#), "{second}");
}

#[test]
fn statements_report_whether_they_apply() {
    let parsed = policy(&statement("Deny", r#""opensearch:WriteFunction""#, r#""*""#));
    let statement = &parsed.statements()[0];
    assert_eq!(statement.effect(), Effect::Deny);
    let request = AuthorizationRequest { action: "opensearch:writefunction", resource: APP_A, context: context() };
    assert!(statement.applies_to(&request));
}

#[test]
fn the_arns_name_the_app_group_by_name() {
    assert_eq!(opensearch_app_arn("cn-hangzhou", "root", "app_a"), APP_A);
    assert_eq!(opensearch_any_arn("cn-hangzhou", "root"), "acs:opensearch:cn-hangzhou:root:apps/*");
}

#[test]
fn glob_matching_is_not_exponential() {
    let pattern: Vec<char> = "a*a*a*a*a*a*a*a*b".chars().collect();
    let text: Vec<char> = "a".repeat(200).chars().collect();
    let (matched, steps) = glob_matches_counting_steps(&pattern, &text);
    assert!(!matched);
    assert!(steps <= pattern.len() * text.len() + text.len(), "{steps} steps");
}

/// The reference matcher: `*` and `?` by plain recursion with memoisation (the textbook
/// definition, independent of the greedy one under test).
fn reference_glob(pattern: &[char], text: &[char]) -> bool {
    let mut memo = vec![vec![None; text.len() + 1]; pattern.len() + 1];
    fn go(pattern: &[char], text: &[char], p: usize, t: usize, memo: &mut Vec<Vec<Option<bool>>>) -> bool {
        if let Some(known) = memo[p][t] {
            return known;
        }
        let result = match pattern.get(p) {
            None => t == text.len(),
            Some('*') => go(pattern, text, p + 1, t, memo) || (t < text.len() && go(pattern, text, p, t + 1, memo)),
            Some('?') => t < text.len() && go(pattern, text, p + 1, t + 1, memo),
            Some(literal) => t < text.len() && text[t] == *literal && go(pattern, text, p + 1, t + 1, memo),
        };
        memo[p][t] = Some(result);
        result
    }
    go(pattern, text, 0, 0, &mut memo)
}

fn action_strategy() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "opensearch:WriteFunction",
        "opensearch:DescribeFunction",
        "opensearch:SearchApp",
        "opensearch:WriteData",
        "ram:CreateUser",
        "ram:AttachPolicyToUser",
    ])
    .prop_map(str::to_string)
}

fn resource_strategy() -> impl Strategy<Value = String> {
    "[ab_]{1,4}".prop_map(|name| format!("acs:opensearch:cn-hangzhou:root:apps/{name}"))
}

fn action_pattern_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        Just("opensearch:*".to_string()),
        Just("opensearch:Write*".to_string()),
        Just("opensearch:describe*".to_string()),
        Just("ram:*".to_string()),
        action_strategy(),
    ]
}

fn resource_pattern_strategy() -> impl Strategy<Value = String> {
    prop_oneof![Just("*".to_string()), "[ab_*?]{1,4}".prop_map(|name| format!("acs:opensearch:*:*:apps/{name}")),]
}

fn statement_strategy() -> impl Strategy<Value = String> {
    (prop::bool::ANY, action_pattern_strategy(), resource_pattern_strategy(), prop::bool::ANY).prop_map(
        |(allow, action, resource, secure_only)| {
            let effect = if allow { "Allow" } else { "Deny" };
            let condition = if secure_only { r#","Condition":{"Bool":{"acs:SecureTransport":"true"}}"# } else { "" };
            format!(r#"{{"Effect":"{effect}","Action":"{action}","Resource":"{resource}"{condition}}}"#)
        },
    )
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    prop::collection::vec(statement_strategy(), 1..4)
        .prop_map(|statements| policy(&format!(r#"{{"Version":"1","Statement":[{}]}}"#, statements.join(","))))
}

proptest! {
    #[test]
    fn glob_matching_agrees_with_the_reference(pattern in "[ab*?]{0,8}", text in "[ab]{0,10}") {
        let pattern: Vec<char> = pattern.chars().collect();
        let text: Vec<char> = text.chars().collect();
        prop_assert_eq!(glob_matches(&pattern, &text), reference_glob(&pattern, &text));
    }

    #[test]
    fn a_deny_of_everything_always_wins(
        policies in prop::collection::vec(policy_strategy(), 0..4),
        action in action_strategy(),
        resource in resource_strategy(),
        secure in prop::bool::ANY,
        position in 0usize..4,
    ) {
        let mut policies = policies;
        let deny_all = policy(&statement("Deny", r#""*""#, r#""*""#));
        policies.insert(position.min(policies.len()), deny_all);
        let request_context = at(Some("10.0.0.1"), NEW_YEAR_2026, secure);
        let decision = evaluate(&policies, &AuthorizationRequest { action: &action, resource: &resource, context: request_context });
        prop_assert_eq!(decision.effect, ExplicitDeny);
    }

    #[test]
    fn adding_an_allow_never_denies_an_allowed_request(
        policies in prop::collection::vec(policy_strategy(), 0..4),
        extra_action in action_pattern_strategy(),
        extra_resource in resource_pattern_strategy(),
        action in action_strategy(),
        resource in resource_strategy(),
        secure in prop::bool::ANY,
    ) {
        let request_context = at(Some("10.0.0.1"), NEW_YEAR_2026, secure);
        let request = AuthorizationRequest { action: &action, resource: &resource, context: request_context };
        let before = evaluate(&policies, &request);
        let mut widened = policies.clone();
        widened.push(policy(&statement("Allow", &format!("\"{extra_action}\""), &format!("\"{extra_resource}\""))));
        let after = evaluate(&widened, &request);
        if before.is_allowed() {
            prop_assert!(after.is_allowed());
        }
        // And an explicit deny stays one.
        if before.effect == ExplicitDeny {
            prop_assert_eq!(after.effect, ExplicitDeny);
        }
    }

    #[test]
    fn the_order_of_policies_does_not_change_the_effect(
        policies in prop::collection::vec(policy_strategy(), 0..5),
        action in action_strategy(),
        resource in resource_strategy(),
        secure in prop::bool::ANY,
    ) {
        let request_context = at(None, NEW_YEAR_2026, secure);
        let request = AuthorizationRequest { action: &action, resource: &resource, context: request_context };
        let forward = evaluate(&policies, &request).effect;
        let mut reversed = policies.clone();
        reversed.reverse();
        prop_assert_eq!(evaluate(&reversed, &request).effect, forward);
    }

    #[test]
    fn actions_compare_case_insensitively(action in action_strategy(), resource in resource_strategy(), upper in prop::bool::ANY) {
        let policies = [policy(&statement("Allow", &format!("\"{action}\""), r#""*""#))];
        let requested = if upper { action.to_uppercase() } else { action.to_lowercase() };
        let decision = evaluate(&policies, &AuthorizationRequest { action: &requested, resource: &resource, context: context() });
        prop_assert!(decision.is_allowed());
    }

    #[test]
    fn the_canonical_form_parses_to_the_same_policy(parsed in policy_strategy()) {
        let canonical = parsed.to_canonical_json();
        prop_assert_eq!(Policy::parse(&canonical).unwrap(), parsed);
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(document in ".{0,200}") {
        let _ = Policy::parse(&document);
    }
}
