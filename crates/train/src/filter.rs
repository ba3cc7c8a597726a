//! Evaluating the `filter` create parameter on a record.
//!
//! The language is core's (`trainyard_core::filter`): conditions `field op value` joined by `,`
//! (AND). How a condition compares, decided here because the data holds text where the filter
//! may hold numbers:
//! - a number against a field that reads as a number (`hits`, or `biz_id` pushed as `123`)
//!   compares numerically;
//! - otherwise both sides compare as text (byte order for `<`, `>`), a number written in its
//!   shortest form (`1`, not `1.0`);
//! - an absent field (no `user_id`, no `biz_id`) equals nothing: `!=` holds, every other
//!   operator fails.

use std::cmp::Ordering;

use trainyard_core::filter::{Filter, FilterOperator, FilterValue, parse_filter};

use crate::TrainError;

/// A field's value in one record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue<'a> {
    Text(&'a str),
    Integer(i64),
    Absent,
}

/// A parsed `filter` parameter (empty when the instance has none).
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordFilter {
    filter: Filter,
    text: String,
}

impl RecordFilter {
    /// Parses the `filter` parameter; `allowed_fields` are the fields the catalog lets it test.
    pub fn from_parameter(text: Option<&str>, allowed_fields: &[&str]) -> Result<RecordFilter, TrainError> {
        let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
            return Ok(RecordFilter::default());
        };
        // The catalog validated the parameter when the instance was created; failing here
        // means the catalog and the trainer disagree.
        let filter = parse_filter("filter", text, Some(allowed_fields))
            .map_err(|error| TrainError::Internal(format!("the filter parameter does not parse: {error}")))?;
        Ok(RecordFilter { filter, text: text.to_string() })
    }

    pub fn is_empty(&self) -> bool {
        self.filter.conditions.is_empty()
    }

    /// The filter as the instance wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the filter tests `field`.
    pub fn tests(&self, field: &str) -> bool {
        self.filter.conditions.iter().any(|condition| condition.field == field)
    }

    /// Whether a record passes; `field` gives the record's value of a field.
    pub fn matches<'a>(&self, field: impl Fn(&str) -> FieldValue<'a>) -> bool {
        self.filter.conditions.iter().all(|condition| {
            let value = field(&condition.field);
            holds(value, condition.operator, &condition.value)
        })
    }
}

fn holds(value: FieldValue<'_>, operator: FilterOperator, expected: &FilterValue) -> bool {
    let ordering = match (value, expected) {
        (FieldValue::Absent, _) => return operator == FilterOperator::NotEqual,
        (FieldValue::Integer(number), FilterValue::Number(wanted)) => (number as f64).partial_cmp(wanted),
        (FieldValue::Text(text), FilterValue::Number(wanted)) => match text.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => number.partial_cmp(wanted),
            _ => Some(text.cmp(wanted.to_string().as_str())),
        },
        (FieldValue::Integer(number), FilterValue::Text(wanted)) => Some(number.to_string().as_str().cmp(wanted)),
        (FieldValue::Text(text), FilterValue::Text(wanted)) => Some(text.cmp(wanted.as_str())),
    };
    let Some(ordering) = ordering else {
        return operator == FilterOperator::NotEqual;
    };
    match operator {
        FilterOperator::Equal => ordering == Ordering::Equal,
        FilterOperator::NotEqual => ordering != Ordering::Equal,
        FilterOperator::Greater => ordering == Ordering::Greater,
        FilterOperator::GreaterOrEqual => ordering != Ordering::Less,
        FilterOperator::Less => ordering == Ordering::Less,
        FilterOperator::LessOrEqual => ordering != Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[&str] = &["user_id", "biz_id", "hits", "query"];

    fn passes(filter: &str, biz_id: FieldValue<'_>, hits: i64) -> bool {
        let filter = RecordFilter::from_parameter(Some(filter), FIELDS).unwrap();
        filter.matches(|field| match field {
            "biz_id" => biz_id,
            "hits" => FieldValue::Integer(hits),
            "query" => FieldValue::Text("red shoes"),
            _ => FieldValue::Absent,
        })
    }

    #[test]
    fn numbers_compare_numerically_text_as_text_and_absent_fields_equal_nothing() {
        assert!(passes("biz_id = 123", FieldValue::Text("123"), 1));
        assert!(passes("biz_id = 123", FieldValue::Text("123.0"), 1));
        assert!(!passes("biz_id != 123", FieldValue::Text("123"), 1));
        assert!(passes("biz_id != 1", FieldValue::Text("pc"), 1));
        assert!(!passes("biz_id = 1", FieldValue::Text("pc"), 1));
        assert!(passes("biz_id = pc", FieldValue::Text("pc"), 1));
        assert!(passes("biz_id = pc, hits >= 3", FieldValue::Text("pc"), 3));
        assert!(!passes("biz_id = pc, hits > 3", FieldValue::Text("pc"), 3));
        assert!(passes("hits < 10", FieldValue::Absent, 9));
        assert!(passes("query = \"red shoes\"", FieldValue::Absent, 1));
        assert!(passes("user_id != u1", FieldValue::Absent, 1), "an absent user is not u1");
        assert!(!passes("user_id = u1", FieldValue::Absent, 1));
        assert!(!passes("user_id > a", FieldValue::Absent, 1));
        assert!(passes("", FieldValue::Absent, 0), "no filter passes everything");
    }

    #[test]
    fn a_filter_outside_the_allowed_fields_is_an_internal_error() {
        let error = RecordFilter::from_parameter(Some("price > 1"), FIELDS).unwrap_err();
        assert!(error.to_string().contains("allowed fields"), "{error}");
    }
}
