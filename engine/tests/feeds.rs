//! Feed tests against the real binary, the real Kontur plugin and the mock Kontur. They cover
//! documents routed to an inbox and forwarded, events sharing a timestamp, the stored pointer
//! across kill -9 and restarts, an empty batch, and a pointer the system rejects.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use common::{wait_until, Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(30);

/// The insurer box that the mock serves by default.
const INSURER_BOX: &str = "6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13";

/// Kontur pointed at the mock, polled every second in batches of `batch`, documents routed to
/// the test client's inbox and forwarded to testkit `echo`.
fn feed_config(mock: &Mock, batch: u32) -> String {
    let url = &mock.url;
    format!(
        "[connectors.kontur]\nlibrary = \"libuig_connector_kontur.so\"\nrequired = true\nallowed_urls = [\"{url}\"]\ndeadline_ms = 2000\n\n\
         [connectors.kontur.settings]\nbase_url = \"{url}\"\ntoken_url = \"{url}/connect/token\"\nclient_id = \"demo-kontur\"\n\
         client_secret = \"demo-kontur-secret\"\nevents_count = 1000\n\n\
         [jobs.kontur-inbox]\nschedule = \"* * * * * *\"\npoll_feed = {{ connector = \"kontur\", feed = \"{INSURER_BOX}\", batch = {batch} }}\n\n\
         [[routes]]\nconnector = \"kontur\"\nentity = \"document\"\nclients = [\"test\"]\n\n\
         [[routes.forward]]\nrecipient = \"testkit\"\nentity = \"echo\"\nclient = \"test\"\n\
         fields = [\"mediId\", \"messageId\", \"documentNumber\"]\nset = {{ EventType = \"KONTUR_DOCUMENT\" }}\n\n"
    )
}

fn start(mock: &Mock, batch: u32) -> Gateway {
    Gateway::start_with(mock, GatewayOptions { extra_config: feed_config(mock, batch), ..GatewayOptions::default() })
}

/// Injects `count` inbound documents into the insurer box and returns their event ids.
fn inject(mock: &Mock, count: u32, event_date_time: Option<&str>) -> Vec<String> {
    let mut body = json!({"mediId": INSURER_BOX, "count": count, "text": "Счёт на оплату лечения"});
    if let Some(time) = event_date_time {
        body["eventDateTime"] = json!(time);
    }
    let response = reqwest::blocking::Client::new().post(format!("{}/_mock/kontur/inbox", mock.url)).json(&body).send().unwrap();
    assert!(response.status().is_success(), "inject: {}", response.status());
    let injected: Value = response.json().unwrap();
    injected["injected"].as_array().unwrap().iter().map(|item| item["eventId"].as_str().unwrap().to_string()).collect()
}

/// Reads every message of the test client through list-all.
fn all_messages(gateway: &Gateway) -> Vec<Value> {
    let mut messages = Vec::new();
    for page in 1.. {
        let (status, body) = gateway.call("GET", "/sync/message/list-all", &[("per_page", "1000"), ("page", &page.to_string())]);
        assert_eq!(status, 200, "{body}");
        messages.extend(body["data"].as_array().unwrap().iter().cloned());
        if body["meta"]["has_more"] != true {
            return messages;
        }
    }
    unreachable!()
}

/// Returns the external event ids of the received (inbound) messages, one per message.
fn received_event_ids(gateway: &Gateway) -> Vec<String> {
    let db = gateway.dir.path().join("uig.db");
    let output = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print('\\n'.join(r[0] for r in c.execute(\"select json_extract(message,'$.external_id') from messages where direction='inbound' order by id\")))", db.to_str().unwrap()])
        .output()
        .expect("python3 reads the ledger");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().lines().filter(|line| !line.is_empty()).map(String::from).collect()
}

fn cursor_list(gateway: &Gateway) -> String {
    common::uig(&["cursor", "list", "--config", gateway.config_path.to_str().unwrap()])
}

fn pointer(gateway: &Gateway) -> String {
    let listing = cursor_list(gateway);
    let line = listing.lines().find(|line| line.trim_start().starts_with("pointer:")).unwrap_or_else(|| panic!("{listing}"));
    line.trim_start().trim_start_matches("pointer:").trim().to_string()
}

#[test]
fn documents_sharing_timestamp_reach_inbox() {
    let mock = Mock::start();
    let gateway = start(&mock, 100);
    let events = inject(&mock, 3, Some("2026-12-04T10:00:00+03:00"));

    wait_until("three received documents", WAIT, || received_event_ids(&gateway).len() == 3);
    assert_eq!(received_event_ids(&gateway), events);

    let (status, body) = gateway.call("GET", "/sync/message/list-new", &[("per_page", "10")]);
    assert_eq!(status, 200, "{body}");
    let received: Vec<&Value> = body["data"].as_array().unwrap().iter().filter(|row| row["status"] == "received").collect();
    assert_eq!(received.len(), 3, "{body}");
    let id = received[0]["id"].as_i64().unwrap();
    let (_, document) = gateway.call("GET", "/sync/message/get", &[("id", &id.to_string())]);
    assert_eq!(document["entity"], "document");
    assert_eq!(document["data"]["eventType"], "NewInboxMessage");
    assert_eq!(document["data"]["eventDateTime"], "2026-12-04T10:00:00+03:00");
    let envelope: Value = serde_json::from_str(document["message"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["external_id"], events[0].as_str());

    // Each document was also forwarded to testkit with the chosen fields and the fixed one.
    wait_until("three forwarded messages", WAIT, || all_messages(&gateway).iter().filter(|row| row["status"] == "delivered").count() == 3);
    let forwarded = all_messages(&gateway).into_iter().find(|row| row["status"] == "delivered").unwrap();
    let (_, forwarded) = gateway.call("GET", "/sync/message/get", &[("id", &forwarded["id"].to_string())]);
    let echoed = &forwarded["data"]["echo"];
    assert_eq!(echoed["EventType"], "KONTUR_DOCUMENT", "{forwarded}");
    assert_eq!(echoed["mediId"], INSURER_BOX);
    assert!(echoed.get("content").is_none(), "only the listed fields are forwarded: {echoed}");

    let listing = cursor_list(&gateway);
    assert!(listing.contains(&format!("kontur/{INSURER_BOX}")), "{listing}");
    assert!(listing.contains("events:      3"), "{listing}");
}

#[test]
fn empty_batch_keeps_pointer() {
    let mock = Mock::start();
    let gateway = start(&mock, 100);
    inject(&mock, 2, None);
    wait_until("two received documents", WAIT, || received_event_ids(&gateway).len() == 2);
    let before = pointer(&gateway);
    assert_ne!(before, "- (start of the feed)");

    let polls = || {
        let stats: Value = reqwest::blocking::get(format!("{}/_mock/kontur/stats", mock.url)).unwrap().json().unwrap();
        stats["events_requests"].as_u64().unwrap()
    };
    let seen = polls();
    wait_until("two more polls", WAIT, || polls() >= seen + 2);
    assert_eq!(pointer(&gateway), before);
    assert_eq!(received_event_ids(&gateway).len(), 2);
}

#[test]
fn pointer_survives_kill_without_loss_or_duplicates() {
    let mock = Mock::start();
    let mut gateway = start(&mock, 25);
    let mut expected = inject(&mock, 150, None);

    // Kill the gateway while it works through the batches, twice, then let it finish. A restarted
    // instance waits for the dead poller's lease (deadline 2 s + 5 s) before it polls again.
    for round in 0..2 {
        wait_until("some progress", WAIT, || received_event_ids(&gateway).len() > round * 30);
        gateway.kill();
        expected.extend(inject(&mock, 20, None));
        gateway.spawn();
    }
    wait_until("every document", Duration::from_secs(60), || received_event_ids(&gateway).len() >= expected.len());
    std::thread::sleep(Duration::from_millis(1500));

    let received = received_event_ids(&gateway);
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "an event was stored twice");
    assert_eq!(received, expected, "events lost or out of order");
}

#[test]
fn rejected_pointer_is_kept_and_reported() {
    let mock = Mock::start();
    let gateway = start(&mock, 100);
    inject(&mock, 2, None);
    wait_until("two received documents", WAIT, || received_event_ids(&gateway).len() == 2);

    let feed = format!("kontur/{INSURER_BOX}");
    let config = gateway.config_path.to_str().unwrap();
    common::uig(&["cursor", "set", "--config", config, &feed, "not-a-pointer"]);
    let ready = || -> Value { reqwest::blocking::get(format!("{}/health/ready", gateway.url)).unwrap().json().unwrap() };
    wait_until("the feed to be reported failing", WAIT, || !ready()["failing_feeds"].as_array().unwrap().is_empty());

    let failing = ready()["failing_feeds"][0].clone();
    assert_eq!(failing["feed"], feed.as_str());
    assert_eq!(failing["error"]["code"], "InvalidLastEventPointer", "{failing}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(pointer(&gateway), "not-a-pointer", "the pointer must not be reset silently");
    assert!(gateway.log().contains("uig cursor set"), "the log tells the operator what to do");

    // Cleared, the feed is read from its start again; the stored events are not added twice.
    common::uig(&["cursor", "set", "--config", config, &feed, "--clear"]);
    inject(&mock, 1, None);
    wait_until("the third document", WAIT, || received_event_ids(&gateway).len() == 3);
    wait_until("the failure to clear", WAIT, || ready()["failing_feeds"].as_array().unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(received_event_ids(&gateway).len(), 3);
}
