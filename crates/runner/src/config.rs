//! Settings of the runner.

use std::time::Duration;

/// How the runner works; the defaults suit one node.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Identifies this process in leases: `<node id>:<start time>`. A restarted node recognises
    /// leases of its earlier lives by the node id and takes them back at once.
    pub worker_id: String,
    /// The node-id part of `worker_id`.
    pub node_id: String,
    /// Tasks trained at once on this node.
    pub concurrency: usize,
    /// How long a claim holds without a heartbeat.
    pub lease: Duration,
    /// How often a running task's lease is extended and its progress written.
    pub heartbeat: Duration,
    /// How often to look for pending tasks.
    pub poll: Duration,
    /// A task running longer fails with `DeadlineExceeded`.
    pub deadline: Duration,
    /// Delay before a task whose worker was lost runs again.
    pub retry_delay: Duration,
    /// Successful generations whose artifacts are kept per instance (the served one always is).
    pub keep_generations: usize,
    /// How often the cron scheduler looks for due fires.
    pub scheduler_tick: Duration,
    /// A fire older than this when the scheduler sees it (the node was down) is not run late.
    pub schedule_grace: Duration,
    /// The timezone cron expressions are read in (a fixed offset from UTC).
    pub cron_offset: chrono::FixedOffset,
    /// Nice value of trainer threads, so that training does not starve the API.
    pub trainer_nice: i32,
}

impl RunnerConfig {
    /// Defaults for a node with this id.
    pub fn for_node(node_id: &str, started_ms: i64) -> RunnerConfig {
        RunnerConfig {
            worker_id: format!("{node_id}:{started_ms}"),
            node_id: node_id.to_string(),
            concurrency: 1,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(2),
            poll: Duration::from_millis(500),
            deadline: Duration::from_secs(6 * 3600),
            retry_delay: Duration::from_secs(5),
            keep_generations: 3,
            scheduler_tick: Duration::from_secs(15),
            schedule_grace: Duration::from_secs(600),
            cron_offset: chrono::FixedOffset::east_opt(0).expect("UTC"),
            trainer_nice: 10,
        }
    }
}

/// Parses a cron timezone: `UTC`, `Z` or a fixed offset such as `+08:00` / `-0500`.
pub fn parse_cron_offset(text: &str) -> Result<chrono::FixedOffset, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("utc") || trimmed == "Z" {
        return Ok(chrono::FixedOffset::east_opt(0).expect("UTC"));
    }
    let (sign, digits) = match trimmed.split_at_checked(1) {
        Some(("+", rest)) => (1, rest),
        Some(("-", rest)) => (-1, rest),
        _ => return Err(format!("\"{text}\" is not UTC or an offset like +08:00")),
    };
    let compact: String = digits.chars().filter(|character| *character != ':').collect();
    let (hours, minutes) = match compact.len() {
        2 => (compact.parse::<i32>().ok(), Some(0)),
        4 => (compact[..2].parse::<i32>().ok(), compact[2..].parse::<i32>().ok()),
        _ => (None, None),
    };
    match (hours, minutes) {
        (Some(hours), Some(minutes)) if hours <= 14 && minutes < 60 => {
            chrono::FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
                .ok_or_else(|| format!("\"{text}\" is out of range"))
        }
        _ => Err(format!("\"{text}\" is not UTC or an offset like +08:00")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_offsets_parse() {
        assert_eq!(parse_cron_offset("UTC").unwrap().local_minus_utc(), 0);
        assert_eq!(parse_cron_offset("+08:00").unwrap().local_minus_utc(), 8 * 3600);
        assert_eq!(parse_cron_offset("-0530").unwrap().local_minus_utc(), -(5 * 3600 + 30 * 60));
        for bad in ["Asia/Shanghai", "+8", "+25:00", "08:00", ""] {
            assert!(parse_cron_offset(bad).is_err(), "{bad}");
        }
    }
}
