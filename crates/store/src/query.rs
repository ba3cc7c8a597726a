//! A small builder for the few statements whose WHERE clause depends on the request's filters.
//!
//! `QueryBuilder<Any>` emits `?` placeholders, which PostgreSQL rejects, so this builder numbers
//! `$1, $2, ...` itself (both SQLite and PostgreSQL accept them). Only fixed SQL fragments
//! written in this crate are ever concatenated; every value is a bind parameter.

use sqlx::any::AnyArguments;
use sqlx::{Any, AssertSqlSafe};

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum BindValue {
    Integer(i64),
    Text(String),
}

/// Conditions joined by AND, with their bind values in placeholder order.
#[derive(Debug, Default)]
pub(crate) struct Conditions {
    clauses: Vec<String>,
    values: Vec<BindValue>,
}

impl Conditions {
    /// Adds a clause; each `?` in `clause` becomes the next `$N` and takes the next value.
    pub(crate) fn push(&mut self, clause: &'static str, values: Vec<BindValue>) {
        let mut numbered = String::with_capacity(clause.len() + 4);
        let mut value_iterator = values.into_iter();
        for character in clause.chars() {
            if character == '?' {
                let value = value_iterator.next().expect("one value per placeholder");
                self.values.push(value);
                numbered.push_str(&format!("${}", self.values.len()));
            } else {
                numbered.push(character);
            }
        }
        debug_assert!(value_iterator.next().is_none(), "more values than placeholders in {clause}");
        self.clauses.push(numbered);
    }

    /// Adds `column IN (...)` with one placeholder per value; no values adds nothing.
    pub(crate) fn push_in(&mut self, column: &'static str, values: Vec<BindValue>) {
        if values.is_empty() {
            return;
        }
        let placeholders: Vec<String> = values
            .into_iter()
            .map(|value| {
                self.values.push(value);
                format!("${}", self.values.len())
            })
            .collect();
        self.clauses.push(format!("{column} IN ({})", placeholders.join(", ")));
    }

    /// `WHERE a AND b ...`, or nothing.
    pub(crate) fn where_clause(&self) -> String {
        if self.clauses.is_empty() { String::new() } else { format!(" WHERE {}", self.clauses.join(" AND ")) }
    }

    /// The number of values bound so far (the next placeholder is this plus one).
    pub(crate) fn bound_count(&self) -> usize {
        self.values.len()
    }

    /// A query over `sql` (built from this crate's fragments) with the values bound, then `extra`.
    pub(crate) fn query(&self, sql: String, extra: &[BindValue]) -> sqlx::query::Query<'static, Any, AnyArguments> {
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in self.values.iter().chain(extra) {
            query = match value {
                BindValue::Integer(number) => query.bind(*number),
                BindValue::Text(text) => query.bind(text.clone()),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_in_order() {
        let mut conditions = Conditions::default();
        conditions.push("a = ?", vec![BindValue::Integer(1)]);
        conditions.push("(b > ? OR c < ?)", vec![BindValue::Integer(2), BindValue::Text("x".into())]);
        assert_eq!(conditions.where_clause(), " WHERE a = $1 AND (b > $2 OR c < $3)");
        assert_eq!(conditions.bound_count(), 3);
        conditions.push_in("state", vec![BindValue::Text("a".into()), BindValue::Text("b".into())]);
        conditions.push_in("ignored", Vec::new());
        assert_eq!(conditions.where_clause(), " WHERE a = $1 AND (b > $2 OR c < $3) AND state IN ($4, $5)");
    }
}
