//! Reading a box's event feed: events become feed items, inbox messages are fetched in full.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use uig_connector_api::reexports::{ROption, RString, RVec};
use uig_connector_api::{ConnectorError, FeedBatch, FeedItem};

use crate::api::MediApi;

/// Event type of a message that arrived in the box. Its feed item carries the whole document.
pub const NEW_INBOX_MESSAGE: &str = "NewInboxMessage";

/// Entity of a feed item that carries an inbound document.
pub const DOCUMENT_ENTITY: &str = "document";

/// Entity of a feed item for every other event type.
pub const EVENT_ENTITY: &str = "event";

/// Body of `GET /V2/events`. Unknown members are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventsPage {
    events: Vec<Event>,
    last_event_pointer: Option<String>,
}

/// One event of a box.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    medi_id: Option<String>,
    event_id: String,
    event_pointer: Option<String>,
    event_date_time: Option<Value>,
    event_type: String,
    #[serde(default)]
    event_content: Value,
}

/// Body of `GET /V2/messages/{messageId}`.
#[derive(Deserialize)]
struct MessageBody {
    meta: Option<Map<String, Value>>,
    data: Option<MessageData>,
}

#[derive(Deserialize)]
struct MessageData {
    content: Option<String>,
}

/// Reads the next batch of events of box `medi_id` after `cursor`, at most `count` of them.
///
/// Each event becomes one item keyed by its `eventId`. A `NewInboxMessage` event becomes a
/// `document` item with the message fetched from Kontur, and every other type an `event` item.
/// Any failed message fetch fails the whole batch, so no document is skipped. The next cursor is
/// the response's `lastEventPointer`, and an empty batch keeps the stored cursor. Bodies that
/// lack a documented member are transient errors.
pub fn read_batch(api: &MediApi, medi_id: &str, cursor: Option<&str>, count: u32) -> Result<FeedBatch, ConnectorError> {
    let action = format!("reading events of box {medi_id}");
    let body = api.events(medi_id, cursor, count)?;
    let page: EventsPage = serde_json::from_value(body)
        .map_err(|error| unexpected_body(&action, &format!("it does not match the documented events page: {error}")))?;

    if page.events.is_empty() {
        return Ok(FeedBatch { items: RVec::new(), next_cursor: ROption::RNone });
    }

    let next_cursor = page
        .last_event_pointer
        .clone()
        .filter(|pointer| !pointer.is_empty())
        .or_else(|| page.events.last().and_then(|event| event.event_pointer.clone()))
        .ok_or_else(|| unexpected_body(&action, "it has events but neither lastEventPointer nor eventPointer"))?;

    let mut items = RVec::with_capacity(page.events.len());
    for event in &page.events {
        items.push(feed_item(api, medi_id, event)?);
    }

    Ok(FeedBatch { items, next_cursor: ROption::RSome(RString::from(next_cursor)) })
}

fn feed_item(api: &MediApi, feed_medi_id: &str, event: &Event) -> Result<FeedItem, ConnectorError> {
    let medi_id = event.medi_id.as_deref().unwrap_or(feed_medi_id);
    let mut content = json!({
        "mediId": medi_id,
        "eventId": event.event_id,
        "eventPointer": event.event_pointer,
        "eventDateTime": event.event_date_time,
        "eventType": event.event_type,
    });

    let entity = if event.event_type == NEW_INBOX_MESSAGE {
        add_document(api, event, &mut content)?;
        DOCUMENT_ENTITY
    } else {
        content["eventContent"] = event.event_content.clone();
        EVENT_ENTITY
    };

    Ok(FeedItem {
        external_id: RString::from(event.event_id.as_str()),
        entity: RString::from(entity),
        content: RString::from(content.to_string()),
    })
}

/// Fetches the message of a `NewInboxMessage` event and adds its details, `meta` and base64
/// `content` to the item content.
fn add_document(api: &MediApi, event: &Event, content: &mut Value) -> Result<(), ConnectorError> {
    let Some(message_id) = event.event_content.get("messageId").and_then(Value::as_str) else {
        return Err(unexpected_body(
            &format!("event {}", event.event_id),
            "a NewInboxMessage event has no eventContent.messageId",
        ));
    };

    let action = format!("reading message {message_id}");
    let body = api.message(message_id)?;
    let message: MessageBody = serde_json::from_value(body)
        .map_err(|error| unexpected_body(&action, &format!("it does not match the documented message: {error}")))?;
    let Some(base64_content) = message.data.and_then(|data| data.content) else {
        return Err(unexpected_body(&action, "it has no data.content"));
    };

    let meta = message.meta.unwrap_or_default();
    let details = meta.get("documentDetails").cloned().unwrap_or(Value::Null);
    let detail = |name: &str| details.get(name).cloned().unwrap_or(Value::Null);

    content["messageId"] = json!(message_id);
    content["documentType"] = detail("documentType");
    content["documentNumber"] = detail("documentNumber");
    content["documentDate"] = detail("documentDate");
    content["meta"] = Value::Object(meta);
    content["content"] = json!(base64_content);
    Ok(())
}

fn unexpected_body(action: &str, reason: &str) -> ConnectorError {
    ConnectorError::transient(format!("Kontur returned an unexpected body for {action}: {reason}"))
}
