//! Feed polling: the events request, item shapes, cursors, document fetches and their failures.

use uig_connector_api::{ErrorKind, FeedBatch, HttpErrorKind, PollRequest};

use super::*;

const CONTENT_BASE64: &str = "0KHRh9GR0YIg4oSWIDE3";

fn poll(feed: &str, cursor: Option<&str>, limit: u32) -> PollRequest {
    PollRequest { feed: feed.into(), cursor: cursor.map(RString::from).into(), limit }
}

fn event(event_id: &str, pointer: &str, event_type: &str, content: Value) -> Value {
    json!({
        "mediId": INSURER_BOX,
        "eventId": event_id,
        "eventPointer": pointer,
        "eventDateTime": "2025-06-02T09:15:00+03:00",
        "eventType": event_type,
        "eventContent": content,
    })
}

fn events_page(events: Vec<Value>, last_event_pointer: Option<&str>) -> Value {
    json!({"events": events, "count": events.len(), "lastEventPointer": last_event_pointer})
}

fn message_meta() -> Value {
    json!({
        "messageId": MESSAGE_ID,
        "mediId": INSURER_BOX,
        "senderMediId": "c3a9e2d4-8b71-4f06-b5d2-7e1f9a0c4b68",
        "documentCirculationId": "dc-9",
        "documentDetails": {"documentType": "Invoice", "documentNumber": "INV-17", "documentDate": "2025-06-01"},
    })
}

fn message_body() -> Value {
    json!({"meta": message_meta(), "data": {"content": CONTENT_BASE64}})
}

fn item_json(batch: &FeedBatch, index: usize) -> Value {
    serde_json::from_str(&batch.items[index].content).unwrap()
}

fn next_cursor(batch: &FeedBatch) -> Option<String> {
    batch.next_cursor.as_ref().map(|cursor| cursor.to_string()).into_option()
}

#[test]
fn first_poll_sends_no_pointer() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(200, events_page(vec![], None));
    let kontur = connector(&host);

    kontur.poll_feed(&poll(INSURER_BOX, None, 50)).unwrap();

    let request = &host.requests()[1];
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(request.url.as_str(), format!("{BASE_URL}/V2/events?mediId={INSURER_BOX}&count=50"));
    assert!(request.idempotent);
    assert_eq!(header(request, "authorization").as_deref(), Some("Bearer token-a"));
}

#[test]
fn cursor_sent_percent_encoded() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(200, events_page(vec![], Some("MTA/+=")));
    let kontur = connector(&host);

    kontur.poll_feed(&poll(&INSURER_BOX.to_uppercase(), Some("MTA/+="), 10)).unwrap();

    let url = host.requests()[1].url.to_string();
    assert_eq!(url, format!("{BASE_URL}/V2/events?mediId={INSURER_BOX}&lastEventPointer=MTA%2F%2B%3D&count=10"));
}

#[test]
fn empty_cursor_counts_as_none() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(200, events_page(vec![], None));
    let kontur = connector(&host);

    kontur.poll_feed(&poll(INSURER_BOX, Some(""), 10)).unwrap();

    assert!(!host.requests()[1].url.contains("lastEventPointer"));
}

#[test]
fn count_capped_by_settings() {
    let cases = [(100, 0, 100), (100, 7, 7), (100, 5000, 100), (1000, 5000, 1000), (1000, 250, 250), (1, 0, 1)];
    for (events_count, limit, expected) in cases {
        let host = FakeHost::default();
        host.queue_token("token-a");
        host.queue_json(200, events_page(vec![], None));
        let kontur = connector_with(&host, Settings { events_count, ..settings_for_test() });

        kontur.poll_feed(&poll(INSURER_BOX, None, limit)).unwrap();

        let url = host.requests()[1].url.to_string();
        assert!(url.ends_with(&format!("&count={expected}")), "events_count {events_count}, limit {limit}: {url}");
    }
}

#[test]
fn empty_batch_keeps_cursor() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(200, events_page(vec![], Some("cG9pbnRlci0y")));
    let kontur = connector(&host);

    let batch = kontur.poll_feed(&poll(INSURER_BOX, Some("cG9pbnRlci0y"), 10)).unwrap();

    assert!(batch.items.is_empty());
    assert_eq!(next_cursor(&batch), None);
}

#[test]
fn inbox_event_becomes_document() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let inbox =
        event("ev-1", "p-1", "NewInboxMessage", json!({"messageId": MESSAGE_ID, "documentCirculationId": "dc-9"}));
    host.queue_json(200, events_page(vec![inbox], Some("p-1")));
    host.queue_json(200, message_body());
    let kontur = connector(&host);

    let batch = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap();

    assert_eq!(batch.items.len(), 1);
    let item = &batch.items[0];
    assert_eq!(item.external_id.as_str(), "ev-1");
    assert_eq!(item.entity.as_str(), "document");
    assert_eq!(
        item_json(&batch, 0),
        json!({
            "mediId": INSURER_BOX,
            "eventId": "ev-1",
            "eventPointer": "p-1",
            "eventDateTime": "2025-06-02T09:15:00+03:00",
            "eventType": "NewInboxMessage",
            "messageId": MESSAGE_ID,
            "documentType": "Invoice",
            "documentNumber": "INV-17",
            "documentDate": "2025-06-01",
            "meta": message_meta(),
            "content": CONTENT_BASE64,
        })
    );
    assert_eq!(next_cursor(&batch).as_deref(), Some("p-1"));
    let fetch = &host.requests()[2];
    assert_eq!(fetch.url.as_str(), format!("{BASE_URL}/V2/messages/{MESSAGE_ID}"));
    assert_eq!(header(fetch, "authorization").as_deref(), Some("Bearer token-a"));
}

#[test]
fn other_events_keep_content() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let events = vec![
        event("ev-1", "p-1", "NewOutboxMessage", json!({"messageId": "m-1", "documentCirculationId": "dc-1"})),
        event("ev-2", "p-2", "MessageDelivered", json!({"messageId": "m-1"})),
        event("ev-3", "p-3", "MessageUndelivered", json!({"messageId": "m-2", "reason": "box closed"})),
        event("ev-4", "p-4", "ProcessingTimesReport", json!({"averageMinutes": 12})),
        event("ev-5", "p-5", "SomeFutureType", json!(null)),
    ];
    host.queue_json(200, events_page(events.clone(), Some("p-5")));
    let kontur = connector(&host);

    let batch = kontur.poll_feed(&poll(INSURER_BOX, Some("p-0"), 10)).unwrap();

    assert_eq!(batch.items.len(), 5);
    for (index, source) in events.iter().enumerate() {
        let item = &batch.items[index];
        assert_eq!(item.entity.as_str(), "event", "{source}");
        assert_eq!(item.external_id.as_str(), source["eventId"].as_str().unwrap());
        assert_eq!(item_json(&batch, index), *source);
    }
    assert_eq!(next_cursor(&batch).as_deref(), Some("p-5"));
    assert_eq!(host.requests().len(), 2, "no message fetch for non-inbox events");
}

#[test]
fn mixed_batch_keeps_feed_order() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let events = vec![
        event("ev-1", "p-1", "NewOutboxMessage", json!({"messageId": "m-1"})),
        event("ev-2", "p-2", "NewInboxMessage", json!({"messageId": MESSAGE_ID})),
        event("ev-3", "p-3", "MessageDelivered", json!({"messageId": "m-1"})),
    ];
    host.queue_json(200, events_page(events, Some("p-3")));
    host.queue_json(200, message_body());
    let kontur = connector(&host);

    let batch = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap();

    let ids: Vec<&str> = batch.items.iter().map(|item| item.external_id.as_str()).collect();
    assert_eq!(ids, ["ev-1", "ev-2", "ev-3"]);
    let entities: Vec<&str> = batch.items.iter().map(|item| item.entity.as_str()).collect();
    assert_eq!(entities, ["event", "document", "event"]);
}

#[test]
fn missing_last_pointer_uses_last_event() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let events =
        vec![event("ev-1", "p-1", "MessageDelivered", json!({})), event("ev-2", "p-2", "MessageDelivered", json!({}))];
    host.queue_json(200, json!({"events": events}));
    let kontur = connector(&host);

    let batch = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap();

    assert_eq!(next_cursor(&batch).as_deref(), Some("p-2"));
}

#[test]
fn event_without_box_uses_feed_box() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let mut source = event("ev-1", "p-1", "MessageDelivered", json!({"messageId": "m-1"}));
    source.as_object_mut().unwrap().remove("mediId");
    host.queue_json(200, events_page(vec![source], Some("p-1")));
    let kontur = connector(&host);

    let batch = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap();

    assert_eq!(item_json(&batch, 0)["mediId"], INSURER_BOX);
}

#[test]
fn invalid_pointer_is_permanent() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(400, vendor_error("InvalidLastEventPointer", "pointer is not valid"));
    let kontur = connector(&host);

    let error = kontur.poll_feed(&poll(INSURER_BOX, Some("bogus"), 10)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "InvalidLastEventPointer");
    assert!(error.message.contains("InvalidLastEventPointer: pointer is not valid"), "{}", error.message);
    assert!(error.message.contains(&format!("reading events of box {INSURER_BOX}")), "{}", error.message);
}

#[test]
fn events_errors_mapped() {
    let cases = [
        (400, "BadEventsCount", ErrorKind::PERMANENT),
        (403, "HasNoAccessToMediId", ErrorKind::CONFIG),
        (500, "InternalServerError", ErrorKind::TRANSIENT),
    ];
    for (status, code, kind) in cases {
        let host = FakeHost::default();
        host.queue_token("token-a");
        host.queue_json(status, vendor_error(code, "details"));
        let kontur = connector(&host);

        let error = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap_err();

        assert_eq!(error.kind, kind, "HTTP {status}");
        assert_eq!(error.code.as_str(), code, "HTTP {status}");
    }
}

#[test]
fn events_401_renews_token() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue_json(401, vendor_error("Unauthorized", "expired"));
    host.queue_token("token-b");
    host.queue_json(200, events_page(vec![], None));
    let kontur = connector(&host);

    kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap();

    let requests = host.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[3].url, requests[1].url);
    assert_eq!(header(&requests[3], "authorization").as_deref(), Some("Bearer token-b"));
}

#[test]
fn transient_fetch_failure_fails_batch() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let events = vec![
        event("ev-1", "p-1", "NewInboxMessage", json!({"messageId": MESSAGE_ID})),
        event("ev-2", "p-2", "NewInboxMessage", json!({"messageId": "m-2"})),
    ];
    host.queue_json(200, events_page(events, Some("p-2")));
    host.queue_json(200, message_body());
    host.queue(Err(HttpError {
        kind: HttpErrorKind::TIMEOUT,
        message: "request to http://127.0.0.1:9090/V2/messages/m-2 timed out".into(),
    }));
    let kontur = connector(&host);

    let error = kontur.poll_feed(&poll(INSURER_BOX, Some("p-0"), 10)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.starts_with("reading message m-2 at Kontur failed"), "{}", error.message);
}

#[test]
fn missing_message_fails_batch() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let inbox = event("ev-1", "p-1", "NewInboxMessage", json!({"messageId": MESSAGE_ID}));
    host.queue_json(200, events_page(vec![inbox], Some("p-1")));
    host.queue_json(404, vendor_error("MessageNotFound", "no such message"));
    let kontur = connector(&host);

    let error = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::PERMANENT);
    assert_eq!(error.code.as_str(), "MessageNotFound");
    assert!(error.message.contains(&format!("reading message {MESSAGE_ID}")), "{}", error.message);
}

#[test]
fn message_id_percent_encoded_in_path() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let inbox = event("ev-1", "p-1", "NewInboxMessage", json!({"messageId": "a/b?c"}));
    host.queue_json(200, events_page(vec![inbox], Some("p-1")));
    host.queue_json(200, message_body());
    let kontur = connector(&host);

    kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap();

    assert_eq!(host.requests()[2].url.as_str(), format!("{BASE_URL}/V2/messages/a%2Fb%3Fc"));
}

#[test]
fn message_without_details_gives_nulls() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    let inbox = event("ev-1", "p-1", "NewInboxMessage", json!({"messageId": MESSAGE_ID}));
    host.queue_json(200, events_page(vec![inbox], Some("p-1")));
    host.queue_json(200, json!({"meta": {"messageId": MESSAGE_ID}, "data": {"content": "AA=="}}));
    let kontur = connector(&host);

    let batch = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap();

    let content = item_json(&batch, 0);
    assert_eq!(content["documentType"], Value::Null);
    assert_eq!(content["documentNumber"], Value::Null);
    assert_eq!(content["documentDate"], Value::Null);
    assert_eq!(content["meta"], json!({"messageId": MESSAGE_ID}));
    assert_eq!(content["content"], "AA==");
}

#[test]
fn unexpected_bodies_are_transient() {
    let inbox_without_id = event("ev-1", "p-1", "NewInboxMessage", json!({"documentCirculationId": "dc"}));
    let inbox = event("ev-1", "p-1", "NewInboxMessage", json!({"messageId": MESSAGE_ID}));
    let cases = [
        (json!({"count": 0}), None, "documented events page"),
        (json!({"events": [{"eventType": "MessageDelivered"}]}), None, "eventId"),
        (json!({"events": [{"eventId": "ev-1", "eventType": "MessageDelivered"}]}), None, "neither lastEventPointer"),
        (events_page(vec![inbox_without_id], Some("p-1")), None, "no eventContent.messageId"),
        (events_page(vec![inbox.clone()], Some("p-1")), Some(json!({"meta": {}})), "no data.content"),
        (events_page(vec![inbox], Some("p-1")), Some(json!({"data": {"content": 5}})), "documented message"),
    ];
    for (page, message, fragment) in cases {
        let host = FakeHost::default();
        host.queue_token("token-a");
        host.queue_json(200, page.clone());
        if let Some(message) = message {
            host.queue_json(200, message);
        }
        let kontur = connector(&host);

        let error = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap_err();

        assert_eq!(error.kind, ErrorKind::TRANSIENT, "{page}");
        assert!(error.message.contains("unexpected body"), "{}", error.message);
        assert!(error.message.contains(fragment), "{fragment}: {}", error.message);
    }
}

#[test]
fn malformed_events_body_is_transient() {
    let host = FakeHost::default();
    host.queue_token("token-a");
    host.queue(Ok(json_response(200, &[], r#"{"events": [{"eventId": "ev-1", "#)));
    let kontur = connector(&host);

    let error = kontur.poll_feed(&poll(INSURER_BOX, None, 10)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::TRANSIENT);
    assert!(error.message.contains("malformed JSON body for reading events"), "{}", error.message);
}

#[test]
fn feed_must_be_box_guid() {
    let host = FakeHost::default();
    let kontur = connector(&host);

    let error = kontur.poll_feed(&poll("insurer", None, 10)).unwrap_err();

    assert_eq!(error.kind, ErrorKind::CONFIG);
    assert!(error.message.contains("feed \"insurer\" is not a Kontur box id"), "{}", error.message);
    assert!(host.requests().is_empty());
}
