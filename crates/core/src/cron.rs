//! The `cron` of an instance: when it retrains.
//!
//! Upstream documents five fields `Minutes Hours DayofMonth Month DayofWeek`, `?` allowed in the
//! day fields, DayofWeek `0` = Sunday, and an empty string meaning "no periodic training".
//! Trainyard parses with croner in POSIX mode (Sunday is 0 — 7 is accepted too — and names such
//! as `MON-FRI` work); seconds and years are refused so that a six-field Quartz pattern is not
//! silently read differently. The timezone of fire times is chosen by the scheduler, not here.

use croner::parser::{CronParser, Seconds, Year};

use crate::error::CoreError;

/// A validated cron expression.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    pattern: String,
    cron: croner::Cron,
}

impl CronSchedule {
    /// The expression as the user wrote it (trimmed).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The parsed croner schedule.
    pub fn cron(&self) -> &croner::Cron {
        &self.cron
    }
}

/// Parses `text`; an empty or blank string means "no periodic training" and gives `None`.
pub fn parse_cron(text: &str) -> Result<Option<CronSchedule>, CoreError> {
    let pattern = text.trim();
    if pattern.is_empty() {
        return Ok(None);
    }
    let field_count = pattern.split_whitespace().count();
    if field_count != 5 {
        return Err(CoreError::invalid(
            "cron",
            format!("expected 5 fields (minute hour day-of-month month day-of-week), found {field_count}"),
        ));
    }
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    let cron = parser.parse(pattern).map_err(|error| {
        CoreError::invalid(
            "cron",
            format!("\"{}\" is not a valid cron expression: {error}", crate::names::printable(pattern)),
        )
    })?;
    // Croner accepts a well-formed pattern that can never fire (e.g. 30 February); refuse it
    // so that an instance never waits forever for a retraining that will not come.
    let reference = chrono::DateTime::from_timestamp(0, 0).unwrap_or_default();
    if cron.find_next_occurrence(&reference, false).is_err() {
        return Err(CoreError::invalid("cron", format!("\"{}\" never fires", crate::names::printable(pattern))));
    }
    Ok(Some(CronSchedule { pattern: pattern.to_string(), cron }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_upstream_examples() {
        for pattern in
            ["0 0 ? * 0,1,2,3,4,5,6", "0 3 ? * 0,1,3,5", "12 4 ? * 1,2,3,4,5,6,0", "0 0 ? * MON-FRI", "*/15 * * * *"]
        {
            assert!(parse_cron(pattern).unwrap().is_some(), "{pattern}");
        }
    }

    #[test]
    fn empty_means_no_schedule() {
        assert!(parse_cron("").unwrap().is_none());
        assert!(parse_cron("   ").unwrap().is_none());
    }

    #[test]
    fn rejects_bad_patterns_naming_cron() {
        for pattern in ["0 0 * *", "0 0 0 * * *", "61 * * * *", "* 25 * * *", "a b c d e", "0 0 30 2 *"] {
            let error = parse_cron(pattern).unwrap_err();
            assert!(error.to_string().contains("cron"), "{pattern}: {error}");
        }
    }
}
