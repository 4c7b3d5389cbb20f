//! The scheduler: runs the configured jobs on their cron schedules, once per tick across every
//! engine instance that shares the database.
//!
//! Each instance computes the next tick of each job and tries to claim it with a conditional
//! update of the job's row (`last_tick < tick`, no live lease). The one instance that wins runs
//! the job and records the run; the others skip that tick.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, Set};
use tokio::sync::watch;

use crate::config::{parse_schedule, JobConfig};
use crate::db::{job, job_run, Db};
use crate::engine::Engine;
use crate::ledger::{self, now_ms};

/// Lease of a running job, renewed every [`JOB_HEARTBEAT`]: a run of a killed instance blocks
/// later ticks for at most this long.
const JOB_LEASE_MS: i64 = 15_000;

/// How often a running job renews its lease.
const JOB_HEARTBEAT: Duration = Duration::from_secs(5);

/// How often every instance checks whether another instance changed the directory mappings.
const DIRECTORY_REFRESH: Duration = Duration::from_secs(15);

/// Runs every enabled job until `shutdown` turns true; a running job finishes first.
pub async fn run(engine: Arc<Engine>, shutdown: watch::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, job) in &engine.config.jobs {
        if job.enabled {
            tasks.spawn(run_job(engine.clone(), name.clone(), job.clone(), shutdown.clone()));
        }
    }
    tasks.spawn(refresh_directories(engine.clone(), shutdown));
    while tasks.join_next().await.is_some() {}
}

async fn refresh_directories(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(DIRECTORY_REFRESH) => {}
            _ = shutdown.changed() => return,
        }
        match engine.directories.refresh(&engine.db).await {
            Ok(true) => tracing::info!("directory mappings changed in the database; snapshot reloaded"),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "checking directory mappings for changes failed"),
        }
    }
}

/// Returns the first tick of `schedule` after `after_ms`, in Unix milliseconds.
pub fn next_tick(schedule: &croner::Cron, time_zone: chrono_tz::Tz, after_ms: i64) -> Option<i64> {
    let after = time_zone.timestamp_millis_opt(after_ms).single()?;
    schedule.find_next_occurrence(&after, false).ok().map(|tick| tick.timestamp_millis())
}

async fn run_job(engine: Arc<Engine>, name: String, job: JobConfig, mut shutdown: watch::Receiver<bool>) {
    let schedule = match parse_schedule(&job.schedule) {
        Ok(schedule) => schedule,
        Err(error) => {
            // Config validation parsed it already; this is a guard, not an expected path.
            tracing::error!(job = %name, %error, "job schedule is invalid; the job does not run");
            return;
        }
    };
    if let Err(error) = ensure_row(&engine.db, &name).await {
        tracing::error!(job = %name, %error, "cannot create the job's row; the job does not run");
        return;
    }
    let time_zone = engine.config.time_zone;
    let mut after = now_ms();
    loop {
        let Some(tick) = next_tick(&schedule, time_zone, after) else {
            tracing::warn!(job = %name, schedule = %job.schedule, "schedule has no further ticks; the job stops");
            return;
        };
        let wait = Duration::from_millis((tick - now_ms()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        after = tick;
        match claim(&engine.db, &name, tick, &engine.instance_id, JOB_LEASE_MS).await {
            Ok(true) => run_once(&engine, &name, &job, tick).await,
            Ok(false) => tracing::debug!(job = %name, tick, "tick taken by another instance or a run still going"),
            Err(error) => tracing::error!(job = %name, %error, "claiming the job's tick failed"),
        }
        // A run longer than the interval skips the ticks it covered instead of running them late.
        after = after.max(now_ms());
    }
}

/// Runs the job for a claimed tick and records the outcome.
async fn run_once(engine: &Engine, name: &str, job: &JobConfig, tick: i64) {
    let started = now_ms();
    let timeout = Duration::from_secs(job.timeout_seconds);
    let run = tokio::time::timeout(timeout, execute(engine, job));
    tokio::pin!(run);
    let mut heartbeat = tokio::time::interval(JOB_HEARTBEAT);
    heartbeat.tick().await;
    let result = loop {
        tokio::select! {
            finished = &mut run => break match finished {
                Ok(result) => result,
                Err(_) => Err(format!("the run exceeded timeout_seconds = {}", job.timeout_seconds)),
            },
            _ = heartbeat.tick() => {
                if let Err(error) = renew(&engine.db, name, &engine.instance_id, JOB_LEASE_MS).await {
                    tracing::warn!(job = %name, %error, "renewing the job's lease failed");
                }
            }
        }
    };
    let duration_ms = now_ms() - started;
    let (outcome, detail) = match &result {
        Ok(detail) => ("ok", detail.clone()),
        Err(error) => ("failed", error.clone()),
    };
    match &result {
        Ok(detail) => tracing::info!(job = %name, duration_ms, outcome, detail = %detail, "job finished"),
        Err(error) => tracing::warn!(job = %name, duration_ms, outcome, error = %error, "job failed"),
    }
    if let Err(error) = record(&engine.db, name, tick, &engine.instance_id, started, duration_ms, outcome, &detail).await {
        tracing::error!(job = %name, %error, "recording the job run failed");
    }
}

/// Runs the job's task and returns a one-line summary.
pub async fn execute(engine: &Engine, job: &JobConfig) -> Result<String, String> {
    if let Some(poll) = &job.poll_feed {
        return crate::feeds::poll(engine, poll).await.map(|summary| summary.describe());
    }
    if let Some(sync) = &job.sync_directory {
        return crate::directory::sync(engine, sync).await;
    }
    if job.retry_due.is_some() {
        let due = ledger::count_due(&engine.db).await.map_err(|error| format!("ledger error: {error}"))?;
        engine.wake_all_pools();
        return Ok(format!("{due} messages due; worker pools woken"));
    }
    if job.cache_expiry.is_some() {
        engine.cache.run_pending_tasks();
        return Ok(format!("{} cache entries after expiry", engine.cache.entry_count()));
    }
    if let Some(retention) = &job.retention {
        let cutoff = now_ms() - retention.keep_days as i64 * 86_400_000;
        let deleted = ledger::delete_older_than(&engine.db, cutoff).await.map_err(|error| format!("ledger error: {error}"))?;
        return Ok(format!(
            "deleted {} messages, {} job runs, {} seen feed events older than {} days",
            deleted.messages, deleted.job_runs, deleted.feed_events, retention.keep_days
        ));
    }
    Err("the job has no task".to_string())
}

async fn ensure_row(db: &Db, name: &str) -> Result<(), DbErr> {
    if job::Entity::find_by_id(name).one(&db.writer).await?.is_some() {
        return Ok(());
    }
    let row = job::ActiveModel { name: Set(name.to_string()), runs: Set(0), failures: Set(0), ..Default::default() };
    match row.insert(&db.writer).await {
        Ok(_) => Ok(()),
        Err(_) if job::Entity::find_by_id(name).one(&db.writer).await?.is_some() => Ok(()),
        Err(error) => Err(error),
    }
}

/// Claims `tick` for this instance unless an instance claimed it (or a later one) already, or a
/// run of an earlier tick still holds the lease.
async fn claim(db: &Db, name: &str, tick: i64, owner: &str, lease_ms: i64) -> Result<bool, DbErr> {
    let now = now_ms();
    let result = job::Entity::update_many()
        .col_expr(job::Column::LastTick, Expr::value(tick))
        .col_expr(job::Column::LeaseOwner, Expr::value(owner))
        .col_expr(job::Column::LeaseUntil, Expr::value(now + lease_ms))
        .filter(job::Column::Name.eq(name))
        .filter(Condition::any().add(job::Column::LastTick.is_null()).add(job::Column::LastTick.lt(tick)))
        .filter(Condition::any().add(job::Column::LeaseUntil.is_null()).add(job::Column::LeaseUntil.lt(now)))
        .exec(&db.writer)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Extends the lease of this instance's running job.
async fn renew(db: &Db, name: &str, owner: &str, lease_ms: i64) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(job::Column::LeaseUntil, Expr::value(now_ms() + lease_ms))
        .filter(job::Column::Name.eq(name))
        .filter(job::Column::LeaseOwner.eq(owner))
        .exec(&db.writer)
        .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn record(db: &Db, name: &str, tick: i64, owner: &str, started: i64, duration_ms: i64, outcome: &str, detail: &str) -> Result<(), DbErr> {
    let failed = i64::from(outcome != "ok");
    job::Entity::update_many()
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<String>::None))
        .col_expr(job::Column::LeaseUntil, Expr::value(Option::<i64>::None))
        .col_expr(job::Column::LastStartedAt, Expr::value(started))
        .col_expr(job::Column::LastDurationMs, Expr::value(duration_ms))
        .col_expr(job::Column::LastOutcome, Expr::value(outcome))
        .col_expr(job::Column::LastDetail, Expr::value(detail))
        .col_expr(job::Column::Runs, Expr::col(job::Column::Runs).add(1))
        .col_expr(job::Column::Failures, Expr::col(job::Column::Failures).add(failed))
        .filter(job::Column::Name.eq(name))
        .filter(job::Column::LeaseOwner.eq(owner))
        .exec(&db.writer)
        .await?;
    job_run::ActiveModel {
        job: Set(name.to_string()),
        tick: Set(tick),
        instance: Set(owner.to_string()),
        started_at: Set(started),
        duration_ms: Set(duration_ms),
        outcome: Set(outcome.to_string()),
        detail: Set(Some(detail.to_string())),
        ..Default::default()
    }
    .insert(&db.writer)
    .await?;
    Ok(())
}

/// One job as `uig jobs` shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub name: String,
    pub task: &'static str,
    pub schedule: String,
    pub enabled: bool,
    pub next_run: Option<i64>,
    pub state: Option<job::Model>,
}

/// Returns every configured job with its stored state.
pub async fn list(db: &Db, config: &crate::config::Config) -> Result<Vec<JobView>, DbErr> {
    let mut views = Vec::new();
    for (name, job) in &config.jobs {
        let next_run = parse_schedule(&job.schedule).ok().and_then(|schedule| next_tick(&schedule, config.time_zone, now_ms()));
        views.push(JobView {
            name: name.clone(),
            task: task_name(job),
            schedule: job.schedule.clone(),
            enabled: job.enabled,
            next_run: next_run.filter(|_| job.enabled),
            state: job::Entity::find_by_id(name.as_str()).one(&db.reader).await?,
        });
    }
    Ok(views)
}

/// Returns the name of the job's task.
pub fn task_name(job: &JobConfig) -> &'static str {
    if job.poll_feed.is_some() {
        "poll_feed"
    } else if job.sync_directory.is_some() {
        "sync_directory"
    } else if job.retry_due.is_some() {
        "retry_due"
    } else if job.cache_expiry.is_some() {
        "cache_expiry"
    } else {
        "retention"
    }
}

/// Formats Unix milliseconds as UTC RFC 3339, for the CLI.
pub fn format_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms).single().map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_schedule_ticks_on_the_next_multiple() {
        let schedule = parse_schedule("*/10 * * * * *").unwrap();
        // 2026-12-04T12:00:03Z
        let after = 1_796_385_603_000;
        assert_eq!(next_tick(&schedule, chrono_tz::UTC, after), Some(1_796_385_610_000));
    }

    #[test]
    fn five_field_schedule_uses_the_configured_time_zone() {
        let schedule = parse_schedule("0 3 * * *").unwrap();
        // 2026-12-04T12:00:00Z; 03:00 in Moscow (UTC+3) is 00:00 UTC the next day.
        let after = 1_796_385_600_000;
        assert_eq!(next_tick(&schedule, chrono_tz::Europe::Moscow, after), Some(1_796_428_800_000));
    }

    #[test]
    fn invalid_schedule_names_an_example() {
        let error = parse_schedule("every minute").unwrap_err();
        assert!(error.contains("not a cron expression"), "{error}");
        assert!(error.contains("*/30 * * * * *"), "{error}");
    }
}
