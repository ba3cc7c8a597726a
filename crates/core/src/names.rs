//! Validation of the names that appear in paths and bodies.
//!
//! Upstream documents one rule for instance names — 1 to 30 characters, letters, digits and
//! underscores, starting with a letter (`^[a-zA-Z][a-zA-Z0-9_]{0,29}$`). Trainyard applies the
//! same rule to app group names and resource names, so that no name can carry a path separator,
//! a dot, a wildcard (`*`, `?`), whitespace or a non-ASCII look-alike. Names are case-sensitive.

use crate::error::CoreError;

/// The longest name (instance, app group, resource) in characters.
pub const MAX_NAME_LENGTH: usize = 30;

/// The rule, as shown in error messages.
pub const NAME_RULE: &str = "1-30 characters, ASCII letters, digits and underscores, starting with a letter";

/// True when `name` follows the upstream instance-name rule.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    bytes.len() <= MAX_NAME_LENGTH
        && first.is_ascii_alphabetic()
        && bytes.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_')
}

/// Checks `value` against the name rule; the error names `field`.
pub fn validate_name(field: &str, value: &str) -> Result<(), CoreError> {
    if value.is_empty() {
        return Err(CoreError::MissingParameter { field: field.to_string() });
    }
    if is_valid_name(value) {
        return Ok(());
    }
    Err(CoreError::invalid(field, format!("\"{}\" does not follow the rule: {NAME_RULE}", printable(value))))
}

/// Parses a task generation as it appears in a path: a positive decimal integer without sign or
/// leading zeros.
pub fn parse_generation(value: &str) -> Result<i64, CoreError> {
    let well_formed = !value.is_empty()
        && value.len() <= 18
        && value.bytes().all(|byte| byte.is_ascii_digit())
        && !value.starts_with('0');
    if !well_formed {
        return Err(CoreError::invalid(
            "generation",
            format!("\"{}\" is not a positive decimal integer", printable(value)),
        ));
    }
    value.parse::<i64>().map_err(|_| CoreError::invalid("generation", "the value is out of range"))
}

/// A bounded, control-character-free rendering of caller input for error messages, so that a
/// hostile name can neither flood a response nor smuggle terminal escapes into logs.
pub fn printable(value: &str) -> String {
    let mut shown: String = value.chars().take(64).flat_map(char::escape_default).collect();
    if value.chars().count() > 64 {
        shown.push_str("...");
    }
    shown
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn accepts_upstream_examples() {
        for name in ["ctr_test", "my_ctr", "a", "A1_b2", "x23456789012345678901234567890"] {
            assert!(is_valid_name(name), "{name}");
        }
    }

    #[test]
    fn rejects_hostile_and_malformed_names() {
        let thirty_one = "a".repeat(31);
        for name in [
            "",
            "1abc",
            "_abc",
            "a b",
            "a/b",
            "..",
            "a.b",
            "a*",
            "a?",
            "é",
            "a\0",
            "a%2F",
            "ab-c",
            "ｃtr",
            thirty_one.as_str(),
            "a\u{202e}b",
        ] {
            assert!(!is_valid_name(name), "{name:?} should be rejected");
        }
    }

    #[test]
    fn error_names_the_field_and_rule() {
        let error = validate_name("instanceName", "9lives").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("instanceName") && message.contains("starting with a letter"), "{message}");
        assert_eq!(
            validate_name("instanceName", ""),
            Err(CoreError::MissingParameter { field: "instanceName".into() })
        );
    }

    #[test]
    fn generations_are_positive_integers() {
        assert_eq!(parse_generation("1"), Ok(1));
        assert_eq!(parse_generation("1620000000"), Ok(1_620_000_000));
        for bad in ["0", "01", "-1", "+1", "1.0", "", "abc", "9999999999999999999"] {
            assert!(parse_generation(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn valid_names_match_the_upstream_regex(name in "\\PC{0,40}") {
            let by_regex_shape = {
                let mut chars = name.chars();
                match chars.next() {
                    Some(first) if first.is_ascii_alphabetic() => {
                        name.chars().count() <= 30 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                    }
                    _ => false,
                }
            };
            prop_assert_eq!(is_valid_name(&name), by_regex_shape);
        }

        #[test]
        fn generated_valid_names_are_accepted(name in "[a-zA-Z][a-zA-Z0-9_]{0,29}") {
            prop_assert!(validate_name("instanceName", &name).is_ok());
        }

        #[test]
        fn printable_never_contains_control_characters(value in "\\PC*|[\\x00-\\x1f]*") {
            prop_assert!(!printable(&value).chars().any(char::is_control));
        }
    }
}
