//! The RAM policy language: parse and validate a policy document, match actions and resources,
//! evaluate conditions and decide a request. Pure: no HTTP, no SQL, no I/O.
//!
//! # The document
//! A policy is RAM JSON: `{"Version": "1", "Statement": [...]}`, each statement with `Effect`
//! (`Allow` | `Deny`), exactly one of `Action` / `NotAction`, exactly one of `Resource` /
//! `NotResource` (a string or a non-empty list of strings) and an optional
//! `Condition` `{Operator: {Key: value | [values]}}`. [`Policy::parse`] refuses anything else
//! with a [`PolicyError`] naming the path (`Statement[2].Effect`, statements counted from 0)
//! and the rule. It refuses rather than ignores, because an ignored typo in an authorization
//! document silently widens or narrows access:
//! - unknown elements (`Sid`, `Id`, `effect`: element names are case-sensitive), `Principal`
//!   (it belongs to resource policies; Trainyard attaches identity policies only);
//! - wrong JSON types (`"Effect": true`, `"Version": 1`, a single statement object instead of a
//!   list), empty lists and empty objects;
//! - duplicate keys in any object (JSON parsers disagree on which one wins, so a reviewer and the
//!   evaluator could read two different policies);
//! - nesting deeper than [`MAX_NESTING_DEPTH`] and documents over [`MAX_POLICY_CHARACTERS`]
//!   characters (Unicode scalar values of the text as submitted, whitespace included: the limit
//!   is checked before parsing, so an attacker cannot make us parse a large document);
//! - actions not `*` nor `service:Name` (wildcards in the name only: `*` alone already means
//!   every service), resources not `*` nor an ARN `acs:<service>:<region>:<account>:<resource>`;
//! - unknown operators (`StringEqual`, `stringEquals`, `...IfExists`, `Null`): a typo must never
//!   act as "no condition";
//! - condition keys other than the four Trainyard supplies (below), operators that do not apply
//!   to the key's type (`IpAddress` on `acs:CurrentTime`), and malformed values (a bad CIDR,
//!   date, number or boolean).
//!
//! The result is a typed [`Policy`] with compiled patterns; [`Policy::to_canonical_json`] writes
//! it back as compact JSON in a fixed element order (one value as a string, several as a list),
//! which is what the store keeps. Parsing the canonical form gives back an equal [`Policy`].
//!
//! # Condition keys (decision)
//! | Key (matched case-insensitively, like AWS) | Type | Operators |
//! |---|---|---|
//! | `acs:SourceIp` | IP address | `IpAddress`, `NotIpAddress`; `String*` on its text (`10.0.0.1`, `2001:db8::1`) |
//! | `acs:CurrentTime` | time | `Date*` (ISO 8601 / RFC 3339 with `Z` or an offset); `Numeric*` (Unix seconds) |
//! | `acs:SecureTransport` | boolean | `Bool` |
//! | `acs:MFAPresent` | boolean | `Bool` (always present: false for AccessKey calls) |
//!
//! Every other key — other `acs:*` keys such as `acs:UserAgent`, and service keys — is
//! **refused** at load rather than accepted as "never present". Under the missing-key rule an
//! accepted-but-absent key would make a positive `Deny` never fire and a negated `Allow` always
//! grant, the opposite of what its author meant; refusing tells the author now, and a key can be
//! added later when Trainyard supplies it.
//!
//! # Condition logic
//! Operators in a block AND, keys under one operator AND, values of one key OR; a negated
//! operator (`StringNotEquals`, `StringNotEqualsIgnoreCase`, `StringNotLike`, `NumericNotEquals`,
//! `DateNotEquals`, `NotIpAddress`) holds when none of its values matches (NOR). A key absent
//! from the request makes a positive operator false and a negated one true (the AWS rule).
//! Dates compare to the second in UTC (fractional seconds in a policy value are dropped).
//! A request address that is an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is compared as the
//! IPv4 address, so IPv4 CIDRs keep working behind dual-stack listeners.
//!
//! # Matching
//! `*` matches any sequence (including `/` and `:`) and `?` exactly one character; the pattern
//! covers the whole string. Actions compare case-insensitively, resources case-sensitively.
//! Request values are literals: a `*` in a request is just a character. The matcher keeps only
//! the last `*` to backtrack to, so it never backtracks exponentially (time is bounded by
//! pattern length × text length, and is linear for patterns like `a*a*a*a*b`).
//!
//! # Evaluation
//! [`evaluate`] denies by default; an applicable `Deny` anywhere wins over any `Allow`; the order
//! of policies and statements does not change the effect. `Allow` + `NotAction` grants every
//! action except those listed; it denies nothing. The [`Decision`] names the deciding statement:
//! the first applicable `Deny`, else the first applicable `Allow` (policies and statements in
//! the order given), none for an implicit deny.
//!
//! # OpenSearch resources (decision)
//! The ARN names the app group by **name**: [`opensearch_app_arn`] gives
//! `acs:opensearch:{region}:{account}:apps/{appGroupName}`. The path's `appGroupIdentity` is
//! resolved to the canonical name before the request is authorized, so a request by id and a
//! request by name hit the same ARN, and a Deny written with the name blocks both. Operations
//! without an app group (CreateAppGroup, GetFunctionVersion, GetFunctionCurrentVersion) are
//! authorized against [`opensearch_any_arn`], `acs:opensearch:{region}:{account}:apps/*`, as
//! upstream's policy examples write it: a policy granting `apps/*` (or `*`) grants them, one
//! scoped to `apps/my_*` does not, and a Deny on one app does not block them. Since the request
//! ARN is a literal, its trailing `*` is one character: a pattern `apps/?` also covers it.
//! ListAppGroups is evaluated per listed app group instead, so a user sees exactly the app groups
//! it may list (`trainyard_api::access` documents the rule).

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::CoreError;
use crate::names::printable;

/// The longest policy document accepted, in characters (RAM's limit for a custom policy).
pub const MAX_POLICY_CHARACTERS: usize = 6_144;

/// The deepest nesting of JSON lists and objects accepted. A valid document nests at most six
/// (document, Statement list, statement, Condition, operator, value list); the margin lets the
/// structural check, not the depth check, explain a list where a string belongs.
pub const MAX_NESTING_DEPTH: usize = 8;

/// The only `Version` RAM defines.
pub const POLICY_VERSION: &str = "1";

/// The RAM code of OpenSearch, the service part of its actions and ARNs.
pub const OPENSEARCH_SERVICE: &str = "opensearch";

/// The element names a statement may have, in canonical order.
const STATEMENT_ELEMENTS: &[&str] = &["Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"];

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a policy document was refused: where (`Statement[2].Effect`; empty for the document as a
/// whole) and which rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub path: String,
    pub rule: String,
}

impl PolicyError {
    fn at(path: impl Into<String>, rule: impl Into<String>) -> PolicyError {
        PolicyError { path: path.into(), rule: rule.into() }
    }

    /// The domain error for this refusal, naming the parameter that carried the document
    /// (`PolicyDocument.Statement[2].Effect`).
    pub fn into_core_error(self, document_parameter: &str) -> CoreError {
        if self.path.is_empty() {
            return CoreError::invalid(document_parameter, self.rule);
        }
        CoreError::invalid(format!("{document_parameter}.{}", self.path), self.rule)
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            return formatter.write_str(&self.rule);
        }
        write!(formatter, "{}: {}", self.path, self.rule)
    }
}

impl std::error::Error for PolicyError {}

impl From<PolicyError> for CoreError {
    fn from(error: PolicyError) -> CoreError {
        error.into_core_error("PolicyDocument")
    }
}

fn member_path(parent: &str, key: &str) -> String {
    let shown_key = printable(key);
    if parent.is_empty() {
        return shown_key;
    }
    format!("{parent}.{shown_key}")
}

fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

// ---------------------------------------------------------------------------------------------
// JSON tree: serde_json drives the syntax; this visitor refuses duplicate keys and deep nesting
// ---------------------------------------------------------------------------------------------

/// A parsed JSON value that keeps object members in document order.
#[derive(Debug, Clone, PartialEq)]
enum JsonValue {
    Null,
    Bool(bool),
    /// The number as serde_json writes it back.
    Number(String),
    String(String),
    Array(Vec<JsonValue>),
    Object(Vec<(String, JsonValue)>),
}

/// How a value is named in messages ("found the boolean true").
fn describe(value: &JsonValue) -> String {
    match value {
        JsonValue::Null => "null".to_string(),
        JsonValue::Bool(flag) => format!("the boolean {flag}"),
        JsonValue::Number(number) => format!("the number {}", printable(number)),
        JsonValue::String(text) => format!("the string \"{}\"", printable(text)),
        JsonValue::Array(_) => "a list".to_string(),
        JsonValue::Object(_) => "an object".to_string(),
    }
}

/// Builds a [`JsonValue`] while tracking the path and depth; a structural refusal is recorded in
/// `failure` (serde's error type can only carry a message) and turned into the [`PolicyError`].
struct TreeSeed<'failure> {
    path: String,
    depth: usize,
    failure: &'failure RefCell<Option<PolicyError>>,
}

impl<'failure> TreeSeed<'failure> {
    fn child(&self, path: String, depth: usize) -> TreeSeed<'failure> {
        TreeSeed { path, depth, failure: self.failure }
    }

    fn refuse<E: de::Error>(&self, path: String, rule: String) -> E {
        let message = format!("{path}: {rule}");
        *self.failure.borrow_mut() = Some(PolicyError::at(path, rule));
        E::custom(message)
    }

    fn enter_container<E: de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_NESTING_DEPTH {
            return Err(self
                .refuse(self.path.clone(), format!("nests lists and objects deeper than {MAX_NESTING_DEPTH} levels")));
        }
        Ok(depth)
    }
}

impl<'de> DeserializeSeed<'de> for TreeSeed<'_> {
    type Value = JsonValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<JsonValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_> {
    type Value = JsonValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonValue, E> {
        Ok(JsonValue::Null)
    }

    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<JsonValue, E> {
        Ok(JsonValue::Bool(flag))
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(number.to_string()))
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<JsonValue, E> {
        Ok(JsonValue::Number(number.to_string()))
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<JsonValue, E> {
        let Some(finite) = serde_json::Number::from_f64(number) else {
            return Err(self.refuse(self.path.clone(), "is not a finite number".to_string()));
        };
        Ok(JsonValue::Number(finite.to_string()))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<JsonValue, E> {
        Ok(JsonValue::String(text.to_string()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<JsonValue, E> {
        Ok(JsonValue::String(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<JsonValue, A::Error> {
        let depth = self.enter_container()?;
        let mut items = Vec::new();
        loop {
            let item_seed = self.child(index_path(&self.path, items.len()), depth);
            let Some(item) = sequence.next_element_seed(item_seed)? else {
                return Ok(JsonValue::Array(items));
            };
            items.push(item);
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonValue, A::Error> {
        let depth = self.enter_container()?;
        let mut members: Vec<(String, JsonValue)> = Vec::new();
        let mut seen_keys: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path_of_member = member_path(&self.path, &key);
            if !seen_keys.insert(key.clone()) {
                return Err(self.refuse(
                    path_of_member,
                    "appears twice in the same object; duplicate keys are refused because JSON parsers disagree on which one wins".to_string(),
                ));
            }
            let value = map.next_value_seed(self.child(path_of_member, depth))?;
            members.push((key, value));
        }
        Ok(JsonValue::Object(members))
    }
}

fn parse_json_tree(document: &str) -> Result<JsonValue, PolicyError> {
    let failure = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(document);
    let root_seed = TreeSeed { path: String::new(), depth: 0, failure: &failure };
    let parsed = root_seed.deserialize(&mut deserializer);
    let tree = match parsed {
        Ok(tree) => tree,
        Err(syntax_error) => {
            return Err(failure
                .into_inner()
                .unwrap_or_else(|| PolicyError::at("", format!("the document is not valid JSON ({syntax_error})"))));
        }
    };
    if let Err(trailing_error) = deserializer.end() {
        return Err(PolicyError::at("", format!("the document is not valid JSON ({trailing_error})")));
    }
    Ok(tree)
}

// ---------------------------------------------------------------------------------------------
// Glob matching
// ---------------------------------------------------------------------------------------------

/// True when `pattern` (`*` any sequence, `?` exactly one character, anything else literal)
/// covers the whole of `text`. Both are slices of characters so that `?` is one character, not
/// one byte.
fn glob_matches(pattern: &[char], text: &[char]) -> bool {
    glob_matches_counting_steps(pattern, text).0
}

/// [`glob_matches`], also returning how many steps it took (for the complexity test).
///
/// Greedy matching with a single backtrack point: when a literal fails after a `*`, only the last
/// `*` is allowed to absorb one more character. Earlier stars never need to be revisited — if the
/// rest of the pattern after the last star cannot match from any later position, no different
/// split of the earlier stars can help — so there is no exponential blow-up.
fn glob_matches_counting_steps(pattern: &[char], text: &[char]) -> (bool, usize) {
    let mut pattern_position = 0;
    let mut text_position = 0;
    // (pattern index just after the last `*`, text index that star's match currently ends at)
    let mut last_star: Option<(usize, usize)> = None;
    let mut steps = 0;
    while text_position < text.len() {
        steps += 1;
        let pattern_char = pattern.get(pattern_position).copied();
        if pattern_char == Some('*') {
            pattern_position += 1;
            last_star = Some((pattern_position, text_position));
            continue;
        }
        if pattern_char == Some('?') || pattern_char == Some(text[text_position]) {
            pattern_position += 1;
            text_position += 1;
            continue;
        }
        let Some((after_star, star_end)) = last_star else {
            return (false, steps);
        };
        // Let the last star swallow one more character and retry the rest of the pattern.
        pattern_position = after_star;
        text_position = star_end + 1;
        last_star = Some((after_star, star_end + 1));
    }
    let rest_is_stars = pattern[pattern_position..].iter().all(|pattern_char| *pattern_char == '*');
    (rest_is_stars, steps)
}

/// A compiled `Action` or `Resource` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// As written in the document (what the canonical form writes back).
    written: String,
    /// What is matched: lower-cased for actions, as written for resources.
    compiled: Vec<char>,
}

/// The `Action`/`NotAction` or `Resource`/`NotResource` element of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PatternList {
    /// True for `NotAction` / `NotResource`: the statement applies to everything not listed.
    negated: bool,
    patterns: Vec<Pattern>,
}

impl PatternList {
    fn covers(&self, text: &[char]) -> bool {
        let listed = self.patterns.iter().any(|pattern| glob_matches(&pattern.compiled, text));
        listed != self.negated
    }
}

// ---------------------------------------------------------------------------------------------
// Condition operators and keys
// ---------------------------------------------------------------------------------------------

/// The kind of value an operator compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperatorFamily {
    String,
    Numeric,
    Date,
    Bool,
    IpAddress,
}

/// Defines [`ConditionOperator`] with each operator's name, family and negation.
macro_rules! condition_operators {
    ($($variant:ident => ($family:ident, $negated:literal),)*) => {
        /// A condition operator, as named in a policy (names are case-sensitive).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ConditionOperator {
            $($variant,)*
        }

        impl ConditionOperator {
            /// All operators, in table order.
            pub const ALL: &'static [ConditionOperator] = &[$(ConditionOperator::$variant,)*];

            /// The operator's name in a policy document.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ConditionOperator::$variant => stringify!($variant),)*
                }
            }

            /// The kind of value it compares.
            pub const fn family(self) -> OperatorFamily {
                match self {
                    $(ConditionOperator::$variant => OperatorFamily::$family,)*
                }
            }

            /// True for the operators whose values are NORed and that hold when the key is absent.
            pub const fn is_negated(self) -> bool {
                match self {
                    $(ConditionOperator::$variant => $negated,)*
                }
            }
        }
    };
}

condition_operators! {
    StringEquals => (String, false),
    StringNotEquals => (String, true),
    StringEqualsIgnoreCase => (String, false),
    StringNotEqualsIgnoreCase => (String, true),
    StringLike => (String, false),
    StringNotLike => (String, true),
    NumericEquals => (Numeric, false),
    NumericNotEquals => (Numeric, true),
    NumericLessThan => (Numeric, false),
    NumericLessThanEquals => (Numeric, false),
    NumericGreaterThan => (Numeric, false),
    NumericGreaterThanEquals => (Numeric, false),
    DateEquals => (Date, false),
    DateNotEquals => (Date, true),
    DateLessThan => (Date, false),
    DateLessThanEquals => (Date, false),
    DateGreaterThan => (Date, false),
    DateGreaterThanEquals => (Date, false),
    Bool => (Bool, false),
    IpAddress => (IpAddress, false),
    NotIpAddress => (IpAddress, true),
}

impl ConditionOperator {
    /// The operator with this exact (case-sensitive) name.
    pub fn from_name(name: &str) -> Option<ConditionOperator> {
        ConditionOperator::ALL.iter().copied().find(|operator| operator.name() == name)
    }
}

/// A condition key Trainyard supplies with every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionKey {
    /// `acs:SourceIp`: the caller's address, absent when the listener cannot tell.
    SourceIp,
    /// `acs:CurrentTime`: when the request is authorized.
    CurrentTime,
    /// `acs:SecureTransport`: whether the request came over TLS.
    SecureTransport,
    /// `acs:MFAPresent`: whether the caller authenticated with MFA.
    MfaPresent,
}

impl ConditionKey {
    pub const ALL: &'static [ConditionKey] =
        &[ConditionKey::SourceIp, ConditionKey::CurrentTime, ConditionKey::SecureTransport, ConditionKey::MfaPresent];

    /// The documented spelling, which the canonical form writes.
    pub const fn name(self) -> &'static str {
        match self {
            ConditionKey::SourceIp => "acs:SourceIp",
            ConditionKey::CurrentTime => "acs:CurrentTime",
            ConditionKey::SecureTransport => "acs:SecureTransport",
            ConditionKey::MfaPresent => "acs:MFAPresent",
        }
    }

    /// The key named `name`, compared case-insensitively (condition key names are not
    /// case-sensitive in AWS, and accepting `acs:sourceip` is what its author meant).
    pub fn from_name(name: &str) -> Option<ConditionKey> {
        ConditionKey::ALL.iter().copied().find(|key| key.name().eq_ignore_ascii_case(name))
    }

    /// True when `family` has a meaning for this key.
    pub const fn accepts(self, family: OperatorFamily) -> bool {
        match self {
            ConditionKey::SourceIp => matches!(family, OperatorFamily::IpAddress | OperatorFamily::String),
            ConditionKey::CurrentTime => matches!(family, OperatorFamily::Date | OperatorFamily::Numeric),
            ConditionKey::SecureTransport | ConditionKey::MfaPresent => matches!(family, OperatorFamily::Bool),
        }
    }

    /// What to write instead, for the message refusing an operator this key does not accept.
    const fn usable_operators(self) -> &'static str {
        match self {
            ConditionKey::SourceIp => {
                "it is an IP address: use IpAddress or NotIpAddress (or a String operator on its text)"
            }
            ConditionKey::CurrentTime => {
                "it is a time: use a Date operator with ISO 8601 values (or a Numeric operator with Unix seconds)"
            }
            ConditionKey::SecureTransport | ConditionKey::MfaPresent => "it is a boolean: use Bool",
        }
    }
}

/// An IP network: an address with the host bits cleared and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IpNetwork {
    network: IpAddr,
    prefix_length: u8,
}

impl IpNetwork {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address (a /32 or /128). Host bits
    /// below the prefix are cleared, as AWS does.
    fn parse(text: &str) -> Result<IpNetwork, String> {
        let rule = "must be an IPv4 or IPv6 address or CIDR block, such as 192.168.0.0/16 or 2001:db8::/32";
        let (address_text, prefix_text) = match text.split_once('/') {
            Some((address_text, prefix_text)) => (address_text, Some(prefix_text)),
            None => (text, None),
        };
        let Ok(address) = address_text.parse::<IpAddr>() else {
            return Err(format!("\"{}\" {rule}", printable(text)));
        };
        let max_prefix: u8 = if address.is_ipv4() { 32 } else { 128 };
        let prefix_length = match prefix_text {
            None => max_prefix,
            Some(digits) => {
                let well_formed = !digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit());
                match digits.parse::<u8>() {
                    Ok(length) if well_formed && length <= max_prefix => length,
                    _ => {
                        return Err(format!(
                            "\"{}\" has an invalid prefix length: 0 to {max_prefix} for this address",
                            printable(text)
                        ));
                    }
                }
            }
        };
        Ok(IpNetwork { network: mask_address(address, prefix_length), prefix_length })
    }

    fn contains(&self, candidate: IpAddr) -> bool {
        let comparable = candidate.to_canonical();
        if comparable.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        mask_address(comparable, self.prefix_length) == self.network
    }
}

fn mask_address(address: IpAddr, prefix_length: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix_length)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix_length)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// A condition value as written (what the canonical form writes back).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Literal {
    Text(String),
    Number(String),
    Bool(bool),
}

/// A condition value compiled for its operator.
#[derive(Debug, Clone, PartialEq)]
enum CompiledValue {
    Text(String),
    /// Lower-cased, for the IgnoreCase operators.
    FoldedText(String),
    Glob(Vec<char>),
    Number(f64),
    /// Unix seconds.
    Time(i64),
    Bool(bool),
    Network(IpNetwork),
}

#[derive(Debug, Clone, PartialEq)]
struct ConditionValue {
    written: Literal,
    compiled: CompiledValue,
}

/// One key under one operator with its values (ORed, or NORed for a negated operator).
#[derive(Debug, Clone, PartialEq)]
struct KeyCondition {
    key: ConditionKey,
    values: Vec<ConditionValue>,
}

/// One operator of a `Condition` block with its keys (ANDed).
#[derive(Debug, Clone, PartialEq)]
struct OperatorBlock {
    operator: ConditionOperator,
    keys: Vec<KeyCondition>,
}

/// True for `-?digits(.digits)?`: what a numeric condition value may be (no exponents, `inf`,
/// `NaN` or `+`, which Rust's float parser would otherwise accept).
fn is_plain_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
}

fn compile_value(operator: ConditionOperator, literal: Literal) -> Result<ConditionValue, String> {
    let compiled = match (operator.family(), &literal) {
        (OperatorFamily::String, Literal::Text(text)) => match operator {
            ConditionOperator::StringEqualsIgnoreCase | ConditionOperator::StringNotEqualsIgnoreCase => {
                CompiledValue::FoldedText(text.to_lowercase())
            }
            ConditionOperator::StringLike | ConditionOperator::StringNotLike => {
                CompiledValue::Glob(text.chars().collect())
            }
            _ => CompiledValue::Text(text.clone()),
        },
        (OperatorFamily::String, _) => return Err("must be a string for a String operator".to_string()),
        (OperatorFamily::Numeric, Literal::Text(text) | Literal::Number(text)) => {
            let parsed = if is_plain_decimal(text) { text.parse::<f64>().ok() } else { None };
            match parsed {
                Some(number) if number.is_finite() => CompiledValue::Number(number),
                _ => return Err(format!("\"{}\" is not a decimal number such as 42 or -1.5", printable(text))),
            }
        }
        (OperatorFamily::Numeric, Literal::Bool(_)) => return Err("must be a number".to_string()),
        (OperatorFamily::Date, Literal::Text(text)) => match chrono::DateTime::parse_from_rfc3339(text) {
            // `timestamp()` counts whole seconds, dropping any fraction: dates compare to the second.
            Ok(time) => CompiledValue::Time(time.timestamp()),
            Err(_) => {
                return Err(format!(
                    "\"{}\" is not an ISO 8601 time with a zone, such as 2019-08-12T17:00:00+08:00 or 2019-08-12T09:00:00Z",
                    printable(text)
                ));
            }
        },
        (OperatorFamily::Date, _) => return Err("must be an ISO 8601 time string".to_string()),
        (OperatorFamily::Bool, Literal::Bool(flag)) => CompiledValue::Bool(*flag),
        (OperatorFamily::Bool, Literal::Text(text)) => match text.as_str() {
            "true" => CompiledValue::Bool(true),
            "false" => CompiledValue::Bool(false),
            _ => return Err(format!("\"{}\" is not \"true\" or \"false\"", printable(text))),
        },
        (OperatorFamily::Bool, Literal::Number(_)) => return Err("must be \"true\" or \"false\"".to_string()),
        (OperatorFamily::IpAddress, Literal::Text(text)) => CompiledValue::Network(IpNetwork::parse(text)?),
        (OperatorFamily::IpAddress, _) => return Err("must be an IP address or CIDR block string".to_string()),
    };
    Ok(ConditionValue { written: literal, compiled })
}

// ---------------------------------------------------------------------------------------------
// The typed policy
// ---------------------------------------------------------------------------------------------

/// Whether a statement grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub const fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// A validated, compiled policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// One statement of a [`Policy`].
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    effect: Effect,
    actions: PatternList,
    resources: PatternList,
    conditions: Vec<OperatorBlock>,
}

impl Policy {
    /// Parses and validates a RAM policy document; see the module documentation for the rules.
    pub fn parse(document: &str) -> Result<Policy, PolicyError> {
        check_document_size(document)?;
        let tree = parse_json_tree(document)?;
        let policy = compile_document(&tree)?;
        // The canonical form is at most as long as the input except when it re-spells a JSON
        // number (`1e3` becomes `1000.0`); refuse rather than store a form that would not parse.
        let canonical_characters = policy.to_canonical_json().chars().count();
        if canonical_characters > MAX_POLICY_CHARACTERS {
            return Err(PolicyError::at(
                "",
                format!(
                    "the document's canonical form has {canonical_characters} characters; at most {MAX_POLICY_CHARACTERS} are allowed"
                ),
            ));
        }
        Ok(policy)
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The document as compact JSON in canonical element order — what is stored and shown.
    pub fn to_canonical_json(&self) -> String {
        let mut output = String::from("{\"Version\":\"1\",\"Statement\":[");
        for (statement_index, statement) in self.statements.iter().enumerate() {
            if statement_index > 0 {
                output.push(',');
            }
            statement.write_canonical_json(&mut output);
        }
        output.push_str("]}");
        output
    }
}

impl Statement {
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// True when the statement's action, resource and condition all cover `request` (whatever
    /// its effect): what a policy simulator lists.
    pub fn applies_to(&self, request: &AuthorizationRequest<'_>) -> bool {
        self.applies(&PreparedRequest::new(request))
    }

    fn applies(&self, request: &PreparedRequest) -> bool {
        self.actions.covers(&request.action)
            && self.resources.covers(&request.resource)
            && self.conditions.iter().all(|block| block.holds(&request.context))
    }

    fn write_canonical_json(&self, output: &mut String) {
        output.push_str("{\"Effect\":");
        write_json_string(output, self.effect.as_str());
        output.push_str(if self.actions.negated { ",\"NotAction\":" } else { ",\"Action\":" });
        write_one_or_many(output, &self.actions.patterns, |output, pattern| {
            write_json_string(output, &pattern.written)
        });
        output.push_str(if self.resources.negated { ",\"NotResource\":" } else { ",\"Resource\":" });
        write_one_or_many(output, &self.resources.patterns, |output, pattern| {
            write_json_string(output, &pattern.written)
        });
        if !self.conditions.is_empty() {
            output.push_str(",\"Condition\":{");
            for (block_index, block) in self.conditions.iter().enumerate() {
                if block_index > 0 {
                    output.push(',');
                }
                write_json_string(output, block.operator.name());
                output.push_str(":{");
                for (key_index, key_condition) in block.keys.iter().enumerate() {
                    if key_index > 0 {
                        output.push(',');
                    }
                    write_json_string(output, key_condition.key.name());
                    output.push(':');
                    write_one_or_many(output, &key_condition.values, |output, value| match &value.written {
                        Literal::Text(text) => write_json_string(output, text),
                        Literal::Number(number) => output.push_str(number),
                        Literal::Bool(flag) => output.push_str(if *flag { "true" } else { "false" }),
                    });
                }
                output.push('}');
            }
            output.push('}');
        }
        output.push('}');
    }
}

fn write_json_string(output: &mut String, text: &str) {
    // serde_json's Display of a string value is its escaped JSON form and cannot fail.
    output.push_str(&serde_json::Value::from(text).to_string());
}

/// Writes one item bare and several as a list: the canonical shape of every list element.
fn write_one_or_many<T>(output: &mut String, items: &[T], write_item: impl Fn(&mut String, &T)) {
    if let [only] = items {
        write_item(output, only);
        return;
    }
    output.push('[');
    for (item_index, item) in items.iter().enumerate() {
        if item_index > 0 {
            output.push(',');
        }
        write_item(output, item);
    }
    output.push(']');
}

// ---------------------------------------------------------------------------------------------
// Compiling the JSON tree into a Policy
// ---------------------------------------------------------------------------------------------

fn check_document_size(document: &str) -> Result<(), PolicyError> {
    // A character is at most four bytes: a text that long is over the limit without counting.
    let too_many_bytes = document.len() > MAX_POLICY_CHARACTERS * 4;
    if too_many_bytes || document.chars().count() > MAX_POLICY_CHARACTERS {
        return Err(PolicyError::at(
            "",
            format!("the document is longer than {MAX_POLICY_CHARACTERS} characters (whitespace included)"),
        ));
    }
    Ok(())
}

fn expect_object<'tree>(
    value: &'tree JsonValue,
    path: &str,
    rule: &str,
) -> Result<&'tree [(String, JsonValue)], PolicyError> {
    let JsonValue::Object(members) = value else {
        return Err(PolicyError::at(path, format!("{rule}, found {}", describe(value))));
    };
    Ok(members)
}

fn find_member<'tree>(members: &'tree [(String, JsonValue)], name: &str) -> Option<&'tree JsonValue> {
    members.iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

fn compile_document(tree: &JsonValue) -> Result<Policy, PolicyError> {
    let members =
        expect_object(tree, "", "the document must be a JSON object {\"Version\": \"1\", \"Statement\": [...]}")?;
    for (key, _) in members {
        if key != "Version" && key != "Statement" {
            return Err(PolicyError::at(
                member_path("", key),
                "is not a policy element; a document has Version and Statement (names are case-sensitive)",
            ));
        }
    }
    match find_member(members, "Version") {
        None => return Err(PolicyError::at("Version", "is required and must be \"1\"")),
        Some(JsonValue::String(version)) if version == POLICY_VERSION => {}
        Some(other) => {
            return Err(PolicyError::at("Version", format!("must be the string \"1\", found {}", describe(other))));
        }
    }
    let Some(statement_value) = find_member(members, "Statement") else {
        return Err(PolicyError::at("Statement", "is required: a list of statements"));
    };
    let JsonValue::Array(statement_items) = statement_value else {
        return Err(PolicyError::at(
            "Statement",
            format!("must be a list of statements, found {}", describe(statement_value)),
        ));
    };
    if statement_items.is_empty() {
        return Err(PolicyError::at("Statement", "must list at least one statement"));
    }
    let statements = statement_items
        .iter()
        .enumerate()
        .map(|(statement_index, item)| compile_statement(item, &index_path("Statement", statement_index)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy { statements })
}

fn compile_statement(value: &JsonValue, path: &str) -> Result<Statement, PolicyError> {
    let members = expect_object(
        value,
        path,
        "must be an object with Effect, Action or NotAction, Resource or NotResource, and optionally Condition",
    )?;
    for (key, _) in members {
        if key == "Principal" {
            return Err(PolicyError::at(
                member_path(path, key),
                "belongs to resource policies; an identity policy names no principal",
            ));
        }
        if !STATEMENT_ELEMENTS.contains(&key.as_str()) {
            return Err(PolicyError::at(
                member_path(path, key),
                "is not a statement element; a statement has Effect, Action, NotAction, Resource, NotResource and Condition (names are case-sensitive)",
            ));
        }
    }
    let effect_path = member_path(path, "Effect");
    let effect = match find_member(members, "Effect") {
        None => return Err(PolicyError::at(effect_path, "is required: \"Allow\" or \"Deny\"")),
        Some(JsonValue::String(text)) if text == "Allow" => Effect::Allow,
        Some(JsonValue::String(text)) if text == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(PolicyError::at(
                effect_path,
                format!("must be \"Allow\" or \"Deny\", found {}", describe(other)),
            ));
        }
    };
    let actions = compile_pattern_list(members, path, PatternKind::Action)?;
    let resources = compile_pattern_list(members, path, PatternKind::Resource)?;
    let conditions = match find_member(members, "Condition") {
        None => Vec::new(),
        Some(condition_value) => compile_condition(condition_value, &member_path(path, "Condition"))?,
    };
    Ok(Statement { effect, actions, resources, conditions })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternKind {
    Action,
    Resource,
}

impl PatternKind {
    const fn element_names(self) -> (&'static str, &'static str) {
        match self {
            PatternKind::Action => ("Action", "NotAction"),
            PatternKind::Resource => ("Resource", "NotResource"),
        }
    }

    fn validate(self, text: &str) -> Result<(), String> {
        match self {
            PatternKind::Action => validate_action(text),
            PatternKind::Resource => validate_resource(text),
        }
    }

    fn compile(self, text: &str) -> Vec<char> {
        match self {
            // Actions compare case-insensitively; validation made them ASCII.
            PatternKind::Action => text.to_ascii_lowercase().chars().collect(),
            PatternKind::Resource => text.chars().collect(),
        }
    }
}

fn validate_action(text: &str) -> Result<(), String> {
    if text == "*" {
        return Ok(());
    }
    let shape_rule = "must be \"*\" or service:ActionName, such as opensearch:WriteFunction or opensearch:Describe*";
    let Some((service, action_name)) = text.split_once(':') else {
        return Err(format!("\"{}\" {shape_rule}", printable(text)));
    };
    let service_is_literal_code =
        !service.is_empty() && service.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-');
    if !service_is_literal_code {
        return Err(format!(
            "\"{}\": the service before ':' must be a RAM code such as opensearch (letters, digits, '-'; no wildcards — use \"*\" alone for every action)",
            printable(text)
        ));
    }
    let action_name_is_valid = !action_name.is_empty()
        && action_name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'*' | b'?'));
    if !action_name_is_valid {
        return Err(format!(
            "\"{}\": the action after ':' must be letters, digits, '_', '-' and the wildcards '*' and '?'",
            printable(text)
        ));
    }
    Ok(())
}

fn validate_resource(text: &str) -> Result<(), String> {
    if text == "*" {
        return Ok(());
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters".to_string());
    }
    let segments: Vec<&str> = text.splitn(5, ':').collect();
    let is_arn = segments.len() == 5 && segments[0] == "acs" && !segments[1].is_empty() && !segments[4].is_empty();
    if !is_arn {
        return Err(format!(
            "\"{}\" must be \"*\" or an ARN acs:<service>:<region>:<account-id>:<resource>, such as acs:opensearch:*:*:apps/my_app",
            printable(text)
        ));
    }
    Ok(())
}

/// The items of an element that is a string or a non-empty list of strings, with their paths.
fn string_or_list<'tree>(value: &'tree JsonValue, path: &str) -> Result<Vec<(String, &'tree str)>, PolicyError> {
    match value {
        JsonValue::String(text) => Ok(vec![(path.to_string(), text.as_str())]),
        JsonValue::Array(items) if items.is_empty() => Err(PolicyError::at(path, "must not be an empty list")),
        JsonValue::Array(items) => items
            .iter()
            .enumerate()
            .map(|(item_index, item)| {
                let item_path = index_path(path, item_index);
                match item {
                    JsonValue::String(text) => Ok((item_path, text.as_str())),
                    other => Err(PolicyError::at(item_path, format!("must be a string, found {}", describe(other)))),
                }
            })
            .collect(),
        other => {
            Err(PolicyError::at(path, format!("must be a string or a list of strings, found {}", describe(other))))
        }
    }
}

fn compile_pattern_list(
    members: &[(String, JsonValue)],
    statement_path: &str,
    kind: PatternKind,
) -> Result<PatternList, PolicyError> {
    let (positive_name, negated_name) = kind.element_names();
    let (negated, element_name, element_value) =
        match (find_member(members, positive_name), find_member(members, negated_name)) {
            (Some(_), Some(_)) => {
                return Err(PolicyError::at(
                    statement_path,
                    format!("has both {positive_name} and {negated_name}; a statement has exactly one of them"),
                ));
            }
            (None, None) => {
                return Err(PolicyError::at(
                    statement_path,
                    format!("needs {positive_name} or {negated_name} (exactly one of them)"),
                ));
            }
            (Some(value), None) => (false, positive_name, value),
            (None, Some(value)) => (true, negated_name, value),
        };
    let element_path = member_path(statement_path, element_name);
    let patterns = string_or_list(element_value, &element_path)?
        .into_iter()
        .map(|(item_path, text)| {
            kind.validate(text).map_err(|rule| PolicyError::at(item_path, rule))?;
            Ok(Pattern { written: text.to_string(), compiled: kind.compile(text) })
        })
        .collect::<Result<Vec<_>, PolicyError>>()?;
    Ok(PatternList { negated, patterns })
}

fn compile_condition(value: &JsonValue, path: &str) -> Result<Vec<OperatorBlock>, PolicyError> {
    let operator_members =
        expect_object(value, path, "must be an object {\"Operator\": {\"Key\": value or [values]}}")?;
    if operator_members.is_empty() {
        return Err(PolicyError::at(path, "must not be empty; omit Condition for an unconditional statement"));
    }
    operator_members
        .iter()
        .map(|(operator_name, key_members_value)| {
            let operator_path = member_path(path, operator_name);
            let Some(operator) = ConditionOperator::from_name(operator_name) else {
                let supported: Vec<&str> = ConditionOperator::ALL.iter().map(|operator| operator.name()).collect();
                return Err(PolicyError::at(
                    operator_path,
                    format!(
                        "is not a supported condition operator (names are case-sensitive; ...IfExists and Null are not supported); supported: {}",
                        supported.join(", ")
                    ),
                ));
            };
            compile_operator_block(operator, key_members_value, &operator_path)
        })
        .collect()
}

fn compile_operator_block(
    operator: ConditionOperator,
    value: &JsonValue,
    operator_path: &str,
) -> Result<OperatorBlock, PolicyError> {
    let key_members = expect_object(value, operator_path, "must be an object {\"Key\": value or [values]}")?;
    if key_members.is_empty() {
        return Err(PolicyError::at(operator_path, "must name at least one condition key"));
    }
    let mut keys: Vec<KeyCondition> = Vec::new();
    for (key_name, values_value) in key_members {
        let key_path = member_path(operator_path, key_name);
        let Some(key) = ConditionKey::from_name(key_name) else {
            let supported: Vec<&str> = ConditionKey::ALL.iter().map(|key| key.name()).collect();
            return Err(PolicyError::at(
                key_path,
                format!(
                    "is not a condition key Trainyard supplies (unknown keys are refused, not treated as absent); supported: {}",
                    supported.join(", ")
                ),
            ));
        };
        if keys.iter().any(|existing| existing.key == key) {
            return Err(PolicyError::at(
                key_path,
                format!("names {} a second time under this operator (key names are case-insensitive)", key.name()),
            ));
        }
        if !key.accepts(operator.family()) {
            return Err(PolicyError::at(
                key_path,
                format!("{} does not apply to {}: {}", operator.name(), key.name(), key.usable_operators()),
            ));
        }
        let values = literal_or_list(values_value, &key_path)?
            .into_iter()
            .map(|(value_path, literal)| {
                compile_value(operator, literal).map_err(|rule| PolicyError::at(value_path, rule))
            })
            .collect::<Result<Vec<_>, _>>()?;
        keys.push(KeyCondition { key, values });
    }
    Ok(OperatorBlock { operator, keys })
}

/// The values of a condition key: one scalar or a non-empty list of scalars, with their paths.
fn literal_or_list(value: &JsonValue, path: &str) -> Result<Vec<(String, Literal)>, PolicyError> {
    fn literal(value: &JsonValue, path: &str) -> Result<Literal, PolicyError> {
        match value {
            JsonValue::String(text) => Ok(Literal::Text(text.clone())),
            JsonValue::Number(number) => Ok(Literal::Number(number.clone())),
            JsonValue::Bool(flag) => Ok(Literal::Bool(*flag)),
            other => {
                Err(PolicyError::at(path, format!("must be a string, number or boolean, found {}", describe(other))))
            }
        }
    }
    match value {
        JsonValue::Array(items) if items.is_empty() => Err(PolicyError::at(path, "must not be an empty list")),
        JsonValue::Array(items) => items
            .iter()
            .enumerate()
            .map(|(item_index, item)| {
                let item_path = index_path(path, item_index);
                literal(item, &item_path).map(|compiled| (item_path, compiled))
            })
            .collect(),
        scalar => literal(scalar, path).map(|compiled| vec![(path.to_string(), compiled)]),
    }
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

/// The facts about a request that conditions can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestContext {
    /// `acs:SourceIp`; `None` when the listener cannot tell (the key is then absent).
    pub source_ip: Option<IpAddr>,
    /// `acs:CurrentTime`, in Unix seconds.
    pub current_time: i64,
    /// `acs:SecureTransport`: the request came over TLS.
    pub secure_transport: bool,
    /// `acs:MFAPresent`: always present; false for AccessKey-signed calls.
    pub mfa_present: bool,
}

/// What is being authorized. `action` is `service:Name` (`opensearch:WriteFunction`);
/// `resource` is the full ARN (see [`opensearch_app_arn`]). Both are literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorizationRequest<'request> {
    pub action: &'request str,
    pub resource: &'request str,
    pub context: RequestContext,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionEffect {
    /// Some statement allows the request and none denies it.
    Allowed,
    /// A `Deny` statement applies.
    ExplicitDeny,
    /// No statement applies (deny by default).
    ImplicitDeny,
}

/// Which statement decided: `policy_index` into the slice given to [`evaluate`] (the caller maps
/// it to the policy's name) and `statement_index` within that policy, both counted from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatementRef {
    pub policy_index: usize,
    pub statement_index: usize,
}

impl fmt::Display for StatementRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "policy {} Statement[{}]", self.policy_index, self.statement_index)
    }
}

/// The decision on one request, with the statement that decided it (none for an implicit deny).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    pub effect: DecisionEffect,
    pub deciding: Option<StatementRef>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == DecisionEffect::Allowed
    }
}

/// The request in the form the matchers read, computed once per evaluation.
struct PreparedRequest {
    /// Lower-cased: actions compare case-insensitively.
    action: Vec<char>,
    resource: Vec<char>,
    context: RequestContext,
}

impl PreparedRequest {
    fn new(request: &AuthorizationRequest<'_>) -> PreparedRequest {
        PreparedRequest {
            action: request.action.to_ascii_lowercase().chars().collect(),
            resource: request.resource.chars().collect(),
            context: request.context,
        }
    }
}

/// A request's value for a condition key, `None` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContextValue {
    Address(IpAddr),
    Time(i64),
    Flag(bool),
}

fn context_value(key: ConditionKey, context: &RequestContext) -> Option<ContextValue> {
    match key {
        // Canonical form: an IPv4-mapped IPv6 address is its IPv4 address.
        ConditionKey::SourceIp => context.source_ip.map(|address| ContextValue::Address(address.to_canonical())),
        ConditionKey::CurrentTime => Some(ContextValue::Time(context.current_time)),
        ConditionKey::SecureTransport => Some(ContextValue::Flag(context.secure_transport)),
        ConditionKey::MfaPresent => Some(ContextValue::Flag(context.mfa_present)),
    }
}

impl OperatorBlock {
    fn holds(&self, context: &RequestContext) -> bool {
        self.keys.iter().all(|key_condition| key_condition.holds(self.operator, context))
    }
}

impl KeyCondition {
    fn holds(&self, operator: ConditionOperator, context: &RequestContext) -> bool {
        let Some(actual) = context_value(self.key, context) else {
            // The missing-key rule: false for a positive operator, true for a negated one.
            return operator.is_negated();
        };
        // The text form only String operators read (compiled once, not per value).
        let actual_text = match actual {
            ContextValue::Address(address) if operator.family() == OperatorFamily::String => Some(address.to_string()),
            _ => None,
        };
        let any_value_matches =
            self.values.iter().any(|value| positive_match(operator, &value.compiled, actual, actual_text.as_deref()));
        any_value_matches != operator.is_negated()
    }
}

/// Whether `actual` matches one value under the positive form of `operator` (a negated
/// operator's caller inverts the OR of these). Type pairs that load-time validation excludes
/// never match.
fn positive_match(
    operator: ConditionOperator,
    expected: &CompiledValue,
    actual: ContextValue,
    actual_text: Option<&str>,
) -> bool {
    use ConditionOperator as Op;
    match (expected, actual) {
        (CompiledValue::Text(text), _) => actual_text == Some(text.as_str()),
        (CompiledValue::FoldedText(folded), _) => {
            actual_text.is_some_and(|candidate| candidate.to_lowercase() == *folded)
        }
        (CompiledValue::Glob(pattern), _) => {
            actual_text.is_some_and(|candidate| glob_matches(pattern, &candidate.chars().collect::<Vec<_>>()))
        }
        (CompiledValue::Number(bound), ContextValue::Time(seconds)) => {
            // Unix seconds are exact in an f64 for any plausible time (below 2^53).
            let candidate = seconds as f64;
            match operator {
                Op::NumericEquals | Op::NumericNotEquals => candidate == *bound,
                Op::NumericLessThan => candidate < *bound,
                Op::NumericLessThanEquals => candidate <= *bound,
                Op::NumericGreaterThan => candidate > *bound,
                Op::NumericGreaterThanEquals => candidate >= *bound,
                _ => false,
            }
        }
        (CompiledValue::Time(bound), ContextValue::Time(seconds)) => match operator {
            Op::DateEquals | Op::DateNotEquals => seconds == *bound,
            Op::DateLessThan => seconds < *bound,
            Op::DateLessThanEquals => seconds <= *bound,
            Op::DateGreaterThan => seconds > *bound,
            Op::DateGreaterThanEquals => seconds >= *bound,
            _ => false,
        },
        (CompiledValue::Bool(expected_flag), ContextValue::Flag(flag)) => flag == *expected_flag,
        (CompiledValue::Network(network), ContextValue::Address(address)) => network.contains(address),
        _ => false,
    }
}

/// Decides `request` against every policy attached to the caller: deny by default, an
/// applicable `Deny` anywhere wins, otherwise an applicable `Allow` allows. The effect does not
/// depend on the order of `policies` or of their statements; the deciding statement is the
/// first applicable `Deny`, else the first applicable `Allow`, in the order given.
pub fn evaluate(policies: &[Policy], request: &AuthorizationRequest<'_>) -> Decision {
    let prepared = PreparedRequest::new(request);
    let mut first_allow: Option<StatementRef> = None;
    for (policy_index, policy) in policies.iter().enumerate() {
        for (statement_index, statement) in policy.statements.iter().enumerate() {
            // Once an Allow is found only a Deny can change the outcome.
            if statement.effect == Effect::Allow && first_allow.is_some() {
                continue;
            }
            if !statement.applies(&prepared) {
                continue;
            }
            let reference = StatementRef { policy_index, statement_index };
            if statement.effect == Effect::Deny {
                return Decision { effect: DecisionEffect::ExplicitDeny, deciding: Some(reference) };
            }
            first_allow = Some(reference);
        }
    }
    match first_allow {
        Some(reference) => Decision { effect: DecisionEffect::Allowed, deciding: Some(reference) },
        None => Decision { effect: DecisionEffect::ImplicitDeny, deciding: None },
    }
}

// ---------------------------------------------------------------------------------------------
// OpenSearch resources
// ---------------------------------------------------------------------------------------------

/// The ARN of an app group, by its canonical **name** (resolve an id to the name first):
/// `acs:opensearch:{region}:{account}:apps/{appGroupName}`. The name is expected to have passed
/// [`crate::names::validate_name`]; even if it has not, it is matched as a literal.
pub fn opensearch_app_arn(region: &str, account_id: &str, app_group_name: &str) -> String {
    format!("acs:{OPENSEARCH_SERVICE}:{region}:{account_id}:apps/{app_group_name}")
}

/// The ARN that operations without an app group (ListAppGroups, CreateAppGroup, the function
/// catalog) are authorized against: `acs:opensearch:{region}:{account}:apps/*`, matched as a
/// literal (see the module documentation).
pub fn opensearch_any_arn(region: &str, account_id: &str) -> String {
    format!("acs:{OPENSEARCH_SERVICE}:{region}:{account_id}:apps/*")
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
