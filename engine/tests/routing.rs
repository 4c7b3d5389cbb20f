//! Routing and directory synchronisation across connectors, against the real binary, the real
//! plugins and the mocks. A new Kontur document lands in a client's inbox and produces a KIAS
//! notification in its own pool. A KIAS directory sync feeds the mapping that AVINFO replies use.

mod common;

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use uig_engine::db::{directory_entry, message};

use common::{wait_until, with_db, Gateway, GatewayOptions, Mock};

const WAIT: Duration = Duration::from_secs(30);
const INSURER_BOX: &str = "6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13";
const LADA_VIN: &str = "XTA21099043765432";

fn kias_section(url: &str) -> String {
    format!(
        "[connectors.kias]\nlibrary = \"libuig_connector_kias.so\"\nrequired = true\nallowed_urls = [\"{url}\"]\ndeadline_ms = 10000\n\
         entity_pools = {{ notify = \"notify-kias\" }}\n\n[connectors.kias.retry]\ninitial_backoff_ms = 200\nmax_backoff_ms = 1000\n\n\
         [connectors.kias.settings]\nendpoint = \"{url}/kiasSvc.asmx\"\napp_id = 1001\nuser = \"demo\"\npassword = \"demo-kias-password\"\n\
         timeout_ms = 5000\n\n[connectors.kias.settings.directories]\ncar_make = 2001\n\n[pools.notify-kias]\nconcurrency = 2\n\n"
    )
}

fn kontur_section(url: &str) -> String {
    format!(
        "[connectors.kontur]\nlibrary = \"libuig_connector_kontur.so\"\nrequired = true\nallowed_urls = [\"{url}\"]\ndeadline_ms = 5000\n\n\
         [connectors.kontur.settings]\nbase_url = \"{url}\"\ntoken_url = \"{url}/connect/token\"\nclient_id = \"demo-kontur\"\n\
         client_secret = \"demo-kontur-secret\"\n\n"
    )
}

fn kias_state(mock: &Mock) -> Value {
    reqwest::blocking::get(format!("{}/_mock/kias/state", mock.url)).unwrap().json().unwrap()
}

#[test]
fn kontur_document_notifies_kias() {
    let mock = Mock::start();
    let url = mock.url.clone();
    let routes = format!(
        "[jobs.kontur-inbox]\nschedule = \"* * * * * *\"\npoll_feed = {{ connector = \"kontur\", feed = \"{INSURER_BOX}\" }}\n\n\
         [[routes]]\nconnector = \"kontur\"\nentity = \"document\"\nclients = [\"test\"]\n\n\
         [[routes.forward]]\nrecipient = \"kias\"\nentity = \"notify\"\nclient = \"test\"\n\
         fields = [\"mediId\", \"messageId\", \"documentType\", \"documentNumber\"]\nset = {{ event = \"KONTUR_DOCUMENT\" }}\n\n"
    );
    let options = GatewayOptions { extra_config: format!("{}{}{routes}", kias_section(&url), kontur_section(&url)), ..GatewayOptions::default() };
    let gateway = Gateway::start_with(&mock, options);

    let body = json!({"mediId": INSURER_BOX, "count": 2, "documentType": "Invoice", "text": "Счёт"});
    let response = reqwest::blocking::Client::new().post(format!("{url}/_mock/kontur/inbox")).json(&body).send().unwrap();
    assert!(response.status().is_success());

    wait_until("two KIAS notifications", WAIT, || kias_state(&mock)["notifications"].as_array().unwrap().len() == 2);
    let state = kias_state(&mock);
    let notification = &state["notifications"][0];
    assert_eq!(notification["event"], "KONTUR_DOCUMENT", "{notification}");
    let params = notification["params"].to_string();
    assert!(params.contains(INSURER_BOX), "{params}");
    assert!(params.contains("Invoice"), "{params}");

    // KIAS got the calls; the results reach the ledger a moment later.
    let rows = || with_db(&gateway, async |db| message::Entity::find().all(&db.reader).await.unwrap());
    wait_until("the forwarded messages delivered", WAIT, || rows().iter().filter(|row| row.recipient == "kias" && row.status == "delivered").count() == 2);
    let rows = rows();
    let inbound: Vec<_> = rows.iter().filter(|row| row.direction == "inbound").collect();
    let forwarded: Vec<_> = rows.iter().filter(|row| row.recipient == "kias").collect();
    assert_eq!(inbound.len(), 2);
    assert!(inbound.iter().all(|row| row.status == "received" && row.entity == "document"));
    assert_eq!(forwarded.len(), 2);
    assert!(forwarded.iter().all(|row| row.status == "delivered" && row.pool == "notify-kias"), "{forwarded:?}");
}

#[test]
fn kias_directory_sync_feeds_avinfo_mapping() {
    let mock = Mock::start();
    let url = mock.url.clone();
    let job = "[jobs.kias-car-makes]\nschedule = \"*/2 * * * * *\"\nsync_directory = { connector = \"kias\", directory = \"car_make\", into = \"brand\", link = [\"avinfo\"] }\n\n";
    let options = GatewayOptions { extra_config: format!("{}{job}", kias_section(&url)), ..GatewayOptions::default() };
    let gateway = Gateway::start_with(&mock, options);

    let brand_code = || {
        let (status, body) = gateway.call("POST", "/sync/message/send", &[("recipient", "avinfo"), ("entity", "vehicle"), ("message", &format!(r#"{{"vin":"{LADA_VIN}"}}"#))]);
        assert_eq!(status, 200, "{body}");
        body["data"]["brand"]["code"].as_str().unwrap_or_default().to_string()
    };
    // The CSV file imported at start maps VAZ to 1001 until the first sync replaces it.
    let vaz = || {
        with_db(&gateway, async |db| {
            directory_entry::Entity::find()
                .filter(directory_entry::Column::Connector.eq("kias"))
                .filter(directory_entry::Column::AltCode.eq("VAZ"))
                .one(&db.reader)
                .await
                .unwrap()
        })
    };
    wait_until("the directory sync", WAIT, || vaz().is_some());
    let vaz = vaz().unwrap();
    assert!(vaz.code.chars().all(|c| c.is_ascii_digit()), "KIAS keys are numeric ISNs: {vaz:?}");
    assert_eq!(vaz.directory, "car_make");

    // Within the snapshot refresh the AVINFO reply carries KIAS's ISN as the internal brand code.
    wait_until("the new mapping in AVINFO replies", WAIT, || brand_code() == vaz.code);
    let jobs = common::uig(&["jobs", "--config", gateway.config_path.to_str().unwrap()]);
    assert!(jobs.contains("kias-car-makes (sync_directory"), "{jobs}");
    assert!(jobs.contains("stored as directory \"brand\""), "{jobs}");
}
