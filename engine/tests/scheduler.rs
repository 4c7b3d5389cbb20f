//! Scheduler and worker pool tests against the real binary: pools isolate a slow system, a job
//! tick runs once across two instances sharing a database, retention keeps list-all exact, and
//! `uig jobs` shows the runs.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::Value;
use uig_engine::db::{job_run, message};

use common::{wait_until, with_db, Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(20);

fn send_async(gateway: &Gateway, recipient: &str, entity: &str, message: &str) -> i64 {
    let (status, body) = gateway.call("POST", "/async/message/send", &[("recipient", recipient), ("entity", entity), ("message", message)]);
    assert_eq!(status, 202, "{body}");
    body["id"].as_i64().unwrap()
}

fn status_of(gateway: &Gateway, id: i64) -> String {
    let (code, body) = gateway.call("GET", "/sync/message/get", &[("id", &id.to_string())]);
    assert_eq!(code, 200, "{body}");
    body["status"].as_str().unwrap().to_string()
}

/// Puts the testkit's `sleep` entity into pool `slow` with the given concurrency.
fn with_slow_pool(concurrency: u32) -> impl FnOnce(String) -> String {
    move |text| {
        let text = text.replace("[connectors.testkit]\n", "[connectors.testkit]\nentity_pools = { sleep = \"slow\" }\n");
        format!("{text}\n[pools.slow]\nconcurrency = {concurrency}\n\n[pools.worker]\nconcurrency = 2\n")
    }
}

#[test]
fn slow_pool_does_not_delay_other_pool() {
    let mock = Mock::start();
    let gateway = Gateway::start_edited(&mock, GatewayOptions::default(), with_slow_pool(2));

    // Six slow calls in a pool of two take three rounds of 1.5 s.
    let slow: Vec<i64> = (0..6).map(|_| send_async(&gateway, "testkit", "sleep", r#"{"ms": 1500}"#)).collect();
    wait_until("the slow pool to start", WAIT, || slow.iter().any(|id| status_of(&gateway, *id) == "processing"));

    let quick: Vec<i64> = (0..5).map(|index| send_async(&gateway, "testkit", "echo", &format!(r#"{{"n": {index}}}"#))).collect();
    wait_until("the echo messages", WAIT, || quick.iter().all(|id| status_of(&gateway, *id) == "delivered"));

    // Had both shared a pool of two, the echoes would have waited behind the sleeps.
    let slow_left = slow.iter().filter(|id| status_of(&gateway, **id) != "delivered").count();
    assert!(slow_left >= 3, "echoes waited for the slow pool: only {slow_left} slow messages were still undelivered");
    let at_once = slow.iter().filter(|id| status_of(&gateway, **id) == "processing").count();
    assert!(at_once <= 2, "the slow pool ran {at_once} calls at once, above its concurrency of 2");

    wait_until("the slow messages", Duration::from_secs(30), || slow.iter().all(|id| status_of(&gateway, *id) == "delivered"));
    let pools = with_db(&gateway, async |db| {
        message::Entity::find().order_by_asc(message::Column::Id).all(&db.reader).await.unwrap().into_iter().map(|row| row.pool).collect::<Vec<_>>()
    });
    assert_eq!(pools, [vec!["slow"; 6], vec!["worker"; 5]].concat());
}

#[test]
fn unknown_pool_is_rejected_with_its_key() {
    let mock = Mock::start();
    let dir = tempfile::tempdir().unwrap();
    let mut text = common::config_text(dir.path(), common::free_port(), &mock.url, &GatewayOptions::default());
    text = text.replace("[connectors.testkit]\n", "[connectors.testkit]\nentity_pools = { sleep = \"slowest\" }\n");
    let path = dir.path().join("uig.toml");
    std::fs::write(&path, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_uig")).args(["serve", "--config", path.to_str().unwrap()]).env("UIG_MASTER_KEY", common::MASTER_KEY).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("connectors.testkit.entity_pools.sleep"), "{stderr}");
    assert!(stderr.contains("no pool \"slowest\""), "{stderr}");
}

#[test]
fn job_tick_runs_once_across_two_instances() {
    let mock = Mock::start();
    let options = GatewayOptions {
        extra_config: "[jobs.wake]\nschedule = \"* * * * * *\"\nretry_due = {}\n".to_string(),
        ..GatewayOptions::default()
    };
    let gateway = Gateway::start_with(&mock, options);

    // A second instance on the same config and database, on another port.
    let second_port = common::free_port();
    let second_log = std::fs::File::create(gateway.dir.path().join("second.log")).unwrap();
    let mut second = Command::new(env!("CARGO_BIN_EXE_uig"))
        .args(["serve", "--config", gateway.config_path.to_str().unwrap()])
        .env("UIG_MASTER_KEY", common::MASTER_KEY)
        .env("UIG_LISTEN", format!("127.0.0.1:{second_port}"))
        .stdout(Stdio::null())
        .stderr(second_log)
        .spawn()
        .unwrap();

    let runs = || with_db(&gateway, async |db| job_run::Entity::find().filter(job_run::Column::Job.eq("wake")).all(&db.reader).await.unwrap());
    wait_until("six runs of the job", WAIT, || runs().len() >= 6);
    let _ = second.kill();
    let _ = second.wait();

    let runs = runs();
    let mut ticks: Vec<i64> = runs.iter().map(|run| run.tick).collect();
    ticks.sort_unstable();
    let before = ticks.len();
    ticks.dedup();
    assert_eq!(ticks.len(), before, "a tick ran more than once: {runs:?}");
    assert!(runs.iter().all(|run| run.outcome == "ok" && run.detail.as_deref().unwrap_or("").contains("messages due")), "{runs:?}");
    assert!(ticks.iter().all(|tick| tick % 1000 == 0), "ticks are whole seconds: {ticks:?}");

    let listing = common::uig(&["jobs", "--config", gateway.config_path.to_str().unwrap()]);
    assert!(listing.contains("wake (retry_due, \"* * * * * *\")"), "{listing}");
    assert!(listing.contains(" ok in "), "{listing}");
    assert!(listing.contains("messages due; worker pools woken"), "{listing}");
}

#[test]
fn retention_keeps_sequence_prefix() {
    let mock = Mock::start();
    let options = GatewayOptions {
        extra_config: "[jobs.retention]\nschedule = \"* * * * * *\"\nretention = { keep_days = 30 }\n".to_string(),
        ..GatewayOptions::default()
    };
    let gateway = Gateway::start_with(&mock, options);
    let ids: Vec<i64> = (0..6).map(|index| send_async(&gateway, "testkit", "echo", &format!(r#"{{"n": {index}}}"#))).collect();
    wait_until("delivery", WAIT, || ids.iter().all(|id| status_of(&gateway, *id) == "delivered"));

    // Age the first three and the fifth by 100 days; the fourth stays new, so the fifth must stay
    // too: only a prefix of the sequence may go.
    let old = chrono::Utc::now().timestamp_millis() - 100 * 86_400_000;
    with_db(&gateway, async |db| {
        use sea_orm::sea_query::Expr;
        message::Entity::update_many()
            .col_expr(message::Column::CreatedAt, Expr::value(old))
            .filter(message::Column::Id.is_in([ids[0], ids[1], ids[2], ids[4]]))
            .exec(&db.writer)
            .await
            .unwrap();
    });
    wait_until("retention", WAIT, || gateway.count_messages() == 3);

    let (code, body) = gateway.call("GET", "/sync/message/list-all", &[("per_page", "10")]);
    assert_eq!(code, 200, "{body}");
    let listed: Vec<i64> = body["data"].as_array().unwrap().iter().map(|row| row["id"].as_i64().unwrap()).collect();
    assert_eq!(listed, ids[3..].to_vec(), "{body}");
    let (code, body) = gateway.call("GET", "/sync/message/list-all", &[("per_page", "10"), ("page", "2")]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"], Value::Array(Vec::new()), "{body}");
}
