//! The `filter` parameter language of upstream's training parameters.
//!
//! Upstream documents filters such as `biz_type != 1` or `is_onsale > 0,price <= 100`: conditions
//! `field op value` with `op` one of `>= <= > < = !=`, several conditions joined by `,` meaning
//! AND (there is no OR). Trainyard accepts exactly that, plus double-quoted values so that a
//! value may contain a comma (`title = "a,b"`; `\"` and `\\` escape inside quotes).

use std::fmt;

use crate::error::CoreError;

/// A comparison operator of a filter condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOperator {
    GreaterOrEqual,
    LessOrEqual,
    NotEqual,
    Greater,
    Less,
    Equal,
}

impl FilterOperator {
    /// Longest operators first, so that `>=` is not read as `>` followed by `=`.
    const SPELLINGS: [(&'static str, FilterOperator); 6] = [
        (">=", FilterOperator::GreaterOrEqual),
        ("<=", FilterOperator::LessOrEqual),
        ("!=", FilterOperator::NotEqual),
        (">", FilterOperator::Greater),
        ("<", FilterOperator::Less),
        ("=", FilterOperator::Equal),
    ];

    pub fn as_str(self) -> &'static str {
        Self::SPELLINGS.iter().find(|(_, operator)| *operator == self).map(|(text, _)| *text).unwrap_or("=")
    }
}

/// The right-hand side of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Number(f64),
    Text(String),
}

/// One `field op value` condition.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterCondition {
    pub field: String,
    pub operator: FilterOperator,
    pub value: FilterValue,
}

/// A parsed filter: all conditions must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub conditions: Vec<FilterCondition>,
}

impl fmt::Display for Filter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, condition) in self.conditions.iter().enumerate() {
            if index > 0 {
                formatter.write_str(",")?;
            }
            write!(formatter, "{} {} ", condition.field, condition.operator.as_str())?;
            match &condition.value {
                FilterValue::Number(number) => write!(formatter, "{number}")?,
                FilterValue::Text(text) => {
                    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
                    write!(formatter, "\"{escaped}\"")?;
                }
            }
        }
        Ok(())
    }
}

/// Parses a filter. `field_name` is the parameter name used in errors; `allowed_fields`, when
/// given, is the closed set of fields the filter may test.
pub fn parse_filter(field_name: &str, text: &str, allowed_fields: Option<&[&str]>) -> Result<Filter, CoreError> {
    let mut conditions = Vec::new();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Ok(Filter::default());
    }
    loop {
        let (condition, after) = parse_condition(field_name, rest, conditions.len() + 1)?;
        if let Some(allowed) = allowed_fields
            && !allowed.contains(&condition.field.as_str())
        {
            return Err(CoreError::invalid(
                field_name,
                format!(
                    "condition {} tests field \"{}\"; allowed fields are {}",
                    conditions.len() + 1,
                    condition.field,
                    allowed.join(", ")
                ),
            ));
        }
        conditions.push(condition);
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(Filter { conditions });
        }
        let Some(next) = after.strip_prefix(',') else {
            return Err(CoreError::invalid(
                field_name,
                format!("expected \",\" between conditions near \"{}\"", preview(after)),
            ));
        };
        rest = next.trim_start();
        if rest.is_empty() {
            return Err(CoreError::invalid(field_name, "the filter ends with \",\""));
        }
    }
}

fn parse_condition<'a>(
    field_name: &str,
    text: &'a str,
    position: usize,
) -> Result<(FilterCondition, &'a str), CoreError> {
    let field_length = text.bytes().take_while(|byte| byte.is_ascii_alphanumeric() || *byte == b'_').count();
    let field = &text[..field_length];
    let field_is_valid = field_length > 0 && field_length <= 64 && !field.as_bytes()[0].is_ascii_digit();
    if !field_is_valid {
        return Err(CoreError::invalid(
            field_name,
            format!(
                "condition {position} must start with a field name (letters, digits, underscores) near \"{}\"",
                preview(text)
            ),
        ));
    }
    let after_field = text[field_length..].trim_start();
    let Some((operator_text, operator)) =
        FilterOperator::SPELLINGS.iter().find(|(spelling, _)| after_field.starts_with(spelling))
    else {
        return Err(CoreError::invalid(
            field_name,
            format!("condition {position} needs one of the operators >= <= > < = != after \"{field}\""),
        ));
    };
    let after_operator = after_field[operator_text.len()..].trim_start();
    let (value, rest) = parse_value(field_name, after_operator, position)?;
    Ok((FilterCondition { field: field.to_string(), operator: *operator, value }, rest))
}

fn parse_value<'a>(field_name: &str, text: &'a str, position: usize) -> Result<(FilterValue, &'a str), CoreError> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut characters = quoted.char_indices();
        while let Some((index, character)) = characters.next() {
            match character {
                '"' => return Ok((FilterValue::Text(value), &quoted[index + 1..])),
                '\\' => match characters.next() {
                    Some((_, escaped @ ('"' | '\\'))) => value.push(escaped),
                    _ => {
                        return Err(CoreError::invalid(
                            field_name,
                            format!("condition {position}: only \\\" and \\\\ may be escaped"),
                        ));
                    }
                },
                other => value.push(other),
            }
        }
        return Err(CoreError::invalid(field_name, format!("condition {position}: the quoted value is not closed")));
    }
    let end = text.find(',').unwrap_or(text.len());
    let raw = text[..end].trim();
    if raw.is_empty() {
        return Err(CoreError::invalid(field_name, format!("condition {position} has no value")));
    }
    if raw.contains(|character: char| character == '"' || character.is_whitespace() || "<>=!".contains(character)) {
        return Err(CoreError::invalid(
            field_name,
            format!(
                "condition {position}: an unquoted value is one word without quotes or operators; quote it (\"...\")"
            ),
        ));
    }
    let value = match raw.parse::<f64>() {
        Ok(number) if number.is_finite() => FilterValue::Number(number),
        _ => FilterValue::Text(raw.to_string()),
    };
    Ok((value, &text[end..]))
}

fn preview(text: &str) -> String {
    crate::names::printable(&text.chars().take(20).collect::<String>())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_upstream_examples() {
        let filter = parse_filter("filter", "biz_type != 1", None).unwrap();
        assert_eq!(
            filter.conditions,
            vec![FilterCondition {
                field: "biz_type".into(),
                operator: FilterOperator::NotEqual,
                value: FilterValue::Number(1.0)
            }]
        );
        let filter = parse_filter("filter", "is_onsale > 0,price<=100, title = \"a,b\"", None).unwrap();
        assert_eq!(filter.conditions.len(), 3);
        assert_eq!(filter.conditions[1].operator, FilterOperator::LessOrEqual);
        assert_eq!(filter.conditions[2].value, FilterValue::Text("a,b".into()));
        assert_eq!(parse_filter("filter", "  ", None).unwrap(), Filter::default());
    }

    #[test]
    fn rejects_malformed_filters_naming_the_parameter() {
        for bad in
            ["biz_type", "biz_type !", "1x = 2", "a = 1,", "a = 1 b = 2", "a = \"open", "a == 1 ||", "= 3", "a = x\"y"]
        {
            let error = parse_filter("filter", bad, None).unwrap_err();
            assert!(error.to_string().contains("filter"), "{bad}: {error}");
        }
    }

    #[test]
    fn restricts_fields_when_asked() {
        assert!(parse_filter("filter", "user_id != 0", Some(&["user_id", "biz_id"])).is_ok());
        let error = parse_filter("filter", "price > 1", Some(&["user_id", "biz_id"])).unwrap_err();
        assert!(error.to_string().contains("allowed fields are user_id, biz_id"), "{error}");
    }

    fn arbitrary_condition() -> impl Strategy<Value = FilterCondition> {
        let operator =
            prop::sample::select(FilterOperator::SPELLINGS.iter().map(|(_, operator)| *operator).collect::<Vec<_>>());
        let value = prop_oneof![
            (-1.0e6f64..1.0e6).prop_map(FilterValue::Number),
            "[a-z ,\"\\\\=<>!]{0,12}".prop_map(FilterValue::Text),
        ];
        ("[a-zA-Z_][a-zA-Z0-9_]{0,10}", operator, value).prop_map(|(field, operator, value)| FilterCondition {
            field,
            operator,
            value,
        })
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(conditions in prop::collection::vec(arbitrary_condition(), 1..5)) {
            let filter = Filter { conditions };
            let reparsed = parse_filter("filter", &filter.to_string(), None).unwrap();
            prop_assert_eq!(reparsed, filter);
        }

        #[test]
        fn never_panics(text in "\\PC{0,60}") {
            let _ = parse_filter("filter", &text, None);
        }
    }
}
