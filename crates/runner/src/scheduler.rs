//! The cron scheduler: at each tick, for every instance with a cron, the latest fire time that
//! has come is enqueued — exactly once across every node, because the first scheduler to record
//! a (instance, fire time) pair owns it (`TaskQueue::fire_schedule`). A fire that comes while a
//! task of the instance is pending or running is skipped, and a fire older than the grace
//! period when first seen (the node was down) is not run late: the next one will be.
//!
//! Cron expressions are read in the configured fixed offset (UTC by default), with the rules of
//! `trainyard_core::cron` (five fields, `?` accepted, Sunday = 0).

use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use tokio_util::sync::CancellationToken;
use trainyard_core::clock::{Clock, format_utc_seconds};
use trainyard_core::queue::{FireOutcome, TaskQueue};

use crate::config::RunnerConfig;

/// The latest fire time of `cron` at or before `now_ms`, in epoch milliseconds.
pub fn latest_fire_ms(cron: &croner::Cron, now_ms: i64, offset: FixedOffset) -> Option<i64> {
    let now: DateTime<FixedOffset> = DateTime::from_timestamp_millis(now_ms)?.with_timezone(&offset);
    cron.find_previous_occurrence(&now, true).ok().map(|fire| fire.timestamp_millis())
}

/// One pass over the scheduled instances; returns the tasks enqueued.
pub async fn tick(queue: &dyn TaskQueue, now_ms: i64, config: &RunnerConfig) -> usize {
    let instances = match queue.scheduled_instances().await {
        Ok(instances) => instances,
        Err(error) => {
            tracing::warn!(%error, "could not list scheduled instances");
            return 0;
        }
    };
    let mut enqueued = 0;
    for instance in instances {
        let schedule = match trainyard_core::cron::parse_cron(&instance.cron) {
            Ok(Some(schedule)) => schedule,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(instance = %instance.instance_name, %error, "skipping an instance whose cron does not parse");
                continue;
            }
        };
        let Some(fire_ms) = latest_fire_ms(schedule.cron(), now_ms, config.cron_offset) else {
            continue;
        };
        let too_old = now_ms - fire_ms > config.schedule_grace.as_millis() as i64;
        if fire_ms < instance.created_ms || too_old {
            continue;
        }
        let run_id = format!("cron__{}", format_utc_seconds(fire_ms));
        match queue.fire_schedule(&instance, fire_ms, &run_id, now_ms).await {
            Ok(FireOutcome::Enqueued(task)) => {
                enqueued += 1;
                tracing::info!(instance = %instance.instance_name, generation = task.generation, %run_id, "cron fire enqueued a task");
            }
            Ok(FireOutcome::SkippedBusy) => {
                tracing::info!(instance = %instance.instance_name, %run_id, "cron fire skipped: a task is still running")
            }
            Ok(FireOutcome::AlreadyFired) => {}
            Err(error) => tracing::warn!(instance = %instance.instance_name, %error, "could not fire a schedule"),
        }
    }
    enqueued
}

pub async fn run(queue: Arc<dyn TaskQueue>, clock: Arc<dyn Clock>, config: RunnerConfig, shutdown: CancellationToken) {
    loop {
        tick(queue.as_ref(), clock.now_ms(), &config).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.scheduler_tick) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_fire_respects_the_offset() {
        let cron = trainyard_core::cron::parse_cron("0 3 ? * *").unwrap().unwrap();
        // 2026-11-29T08:49:38Z.
        let now_ms = 1_795_942_178_000;
        let utc = latest_fire_ms(cron.cron(), now_ms, FixedOffset::east_opt(0).unwrap()).unwrap();
        assert_eq!(format_utc_seconds(utc), "2026-11-29T03:00:00Z");
        let beijing = latest_fire_ms(cron.cron(), now_ms, FixedOffset::east_opt(8 * 3600).unwrap()).unwrap();
        assert_eq!(format_utc_seconds(beijing), "2026-11-28T19:00:00Z", "03:00 at +08:00");
        let exactly = latest_fire_ms(cron.cron(), utc, FixedOffset::east_opt(0).unwrap()).unwrap();
        assert_eq!(exactly, utc, "a fire time is due at its own instant");
    }
}
