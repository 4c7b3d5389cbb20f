//! UIG connector plugin for Kontur.Strakhovanie: sends documents through the Kontur Medi API v2
//! and reads a box's event feed.

use serde_json::json;
use uig_connector_api::sdk::{HostContext, PluginConnector, PluginInfo};
use uig_connector_api::{Capabilities, ConnectorError, FeedBatch, PollRequest, Reply, SendRequest};

pub mod api;
pub mod auth;
pub mod feed;
pub mod outbound;
pub mod response;
pub mod settings;

use api::MediApi;
use outbound::{canonical_medi_id, OutboundMessage, INVALID_PAYLOAD};
use settings::{Settings, MAX_EVENTS_COUNT};

/// The only entity that `send` accepts.
const MESSAGE_ENTITY: &str = "message";

/// The Kontur connector: posts messages from a box and turns a box's events into feed items.
pub struct Kontur {
    settings: Settings,
    host: HostContext,
    api: MediApi,
}

impl PluginConnector for Kontur {
    type Settings = Settings;

    const INFO: PluginInfo = PluginInfo {
        name: "kontur",
        version: env!("CARGO_PKG_VERSION"),
        description: "Kontur.Strakhovanie document exchange (Kontur Medi API v2): sends messages, reads box events",
        capabilities: Capabilities(Capabilities::SEND.0 | Capabilities::POLL_FEED.0),
        entities: &[MESSAGE_ENTITY],
        config_schema: settings::CONFIG_SCHEMA,
    };

    fn create(settings: Settings, host: HostContext) -> Result<Self, ConnectorError> {
        settings.validate()?;

        host.info(&format!(
            "kontur connector ready: base_url={}, token_url={}, client_id={}, scope={}, events_count={}, timeout_ms={}",
            settings.api_root(),
            settings.token_endpoint(),
            settings.client_id,
            settings.requested_scope(),
            settings.events_count,
            settings.timeout_ms
        ));

        Ok(Kontur { api: MediApi::new(&settings, host.clone()), settings, host })
    }

    /// Posts the message in `request.payload` from the box it names and returns Kontur's ids.
    ///
    /// The payload is validated before any HTTP request. The reply is
    /// `{"mediId", "messageId", "documentCirculationId"}` as Kontur returned them.
    fn send(&self, request: &SendRequest) -> Result<Reply, ConnectorError> {
        if request.entity.as_str() != MESSAGE_ENTITY {
            return Err(ConnectorError::permanent(format!(
                "unknown entity {:?}: the kontur connector accepts only entity \"{MESSAGE_ENTITY}\"",
                request.entity.as_str()
            ))
            .with_code(INVALID_PAYLOAD));
        }
        let message = OutboundMessage::from_payload(&request.payload)?;

        self.host.debug(&format!(
            "posting a message from box {} (message_id={}, attempt={})",
            message.medi_id, request.message_id, request.attempt
        ));
        let body = self.api.post_message(&message.medi_id, &message.message_base64)?;

        let Some(message_id) = body.get("messageId").and_then(|value| value.as_str()) else {
            return Err(ConnectorError::transient(format!(
                "Kontur accepted the message from box {} but returned no messageId",
                message.medi_id
            )));
        };
        self.host.info(&format!(
            "Kontur accepted message_id={} from box {} as messageId {message_id}",
            request.message_id, message.medi_id
        ));

        let reply = json!({
            "mediId": body.get("mediId").cloned().unwrap_or_else(|| json!(message.medi_id)),
            "messageId": message_id,
            "documentCirculationId": body.get("documentCirculationId").cloned().unwrap_or_default(),
        });
        Ok(Reply::done(reply.to_string()))
    }

    /// Reads the next events of the box named by `request.feed` after `request.cursor`.
    ///
    /// `count` is `request.limit` capped by `settings.events_count`, and a limit of 0 requests
    /// `events_count` events. See [`feed::read_batch`] for the items and the cursor.
    fn poll_feed(&self, request: &PollRequest) -> Result<FeedBatch, ConnectorError> {
        let Some(medi_id) = canonical_medi_id(&request.feed) else {
            return Err(ConnectorError::config(format!(
                "feed {:?} is not a Kontur box id: name the feed by the box GUID (mediId), such as \
                 \"6f1c0b7e-3d2a-4c59-9a41-2b8e5d7f0a13\"",
                request.feed.as_str()
            )));
        };
        let cursor =
            request.cursor.as_ref().map(|cursor| cursor.as_str()).into_option().filter(|cursor| !cursor.is_empty());
        let count = self.events_count(request.limit);

        let batch = feed::read_batch(&self.api, &medi_id, cursor, count)?;

        self.host.debug(&format!(
            "read {} events of box {medi_id} (count={count}, from pointer {})",
            batch.items.len(),
            cursor.unwrap_or("<start>")
        ));
        Ok(batch)
    }
}

impl Kontur {
    /// Returns the `count` of one poll: the engine's `limit` capped by `settings.events_count`,
    /// or `events_count` when `limit` is 0.
    fn events_count(&self, limit: u32) -> u32 {
        let count = if limit == 0 { self.settings.events_count } else { limit.min(self.settings.events_count) };
        count.clamp(1, MAX_EVENTS_COUNT)
    }
}

uig_connector_api::export_connector!(Kontur);

#[cfg(test)]
mod tests;
