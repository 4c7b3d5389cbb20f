//! UIG connector plugin for AVINFO: vehicle data by VIN or Russian plate number.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use uig_connector_api::reexports::RString;
use uig_connector_api::sdk::{HostContext, PluginConnector, PluginInfo};
use uig_connector_api::{Capabilities, ConnectorError, HttpError, HttpRequest, HttpResponse, Reply, SendRequest};

pub mod lookup;
pub mod response;
pub mod settings;

use lookup::{Lookup, INVALID_PAYLOAD};
use settings::Settings;

/// The only entity this connector accepts.
const VEHICLE_ENTITY: &str = "vehicle";

/// Characters percent-encoded in a query value: everything except the URL-unreserved characters
/// `A-Z a-z 0-9 - . _ ~`, which HTTP clients leave as they are.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Text that replaces the API key wherever it would appear in an error message.
const REDACTED: &str = "***";

/// The AVINFO connector: looks a vehicle up by VIN or plate, caches the vehicle data and reshapes
/// it for the gateway's clients.
pub struct Avinfo {
    settings: Settings,
    host: HostContext,
    /// `{base_url}/api/v1/vehicle`, without a query.
    endpoint: String,
    /// The API key as it appears in the request URL.
    encoded_api_key: String,
    /// Pairs of directory and AVINFO code already reported as unmapped, so each is logged once
    /// per connector instance.
    unmapped_codes: Mutex<HashSet<(String, String)>>,
}

impl PluginConnector for Avinfo {
    type Settings = Settings;

    const INFO: PluginInfo = PluginInfo {
        name: "avinfo",
        version: env!("CARGO_PKG_VERSION"),
        description: "AVINFO vehicle data (brand, model, power, OSAGO policies) by VIN or plate number",
        capabilities: Capabilities(Capabilities::SEND.0 | Capabilities::SEND_ASYNC.0),
        entities: &[VEHICLE_ENTITY],
        config_schema: settings::CONFIG_SCHEMA,
    };

    fn create(settings: Settings, host: HostContext) -> Result<Self, ConnectorError> {
        settings.validate()?;

        host.info(&format!(
            "avinfo connector ready: endpoint={}, cache_ttl_seconds={}, timeout_ms={}",
            settings.vehicle_endpoint(),
            settings.cache_ttl_seconds,
            settings.timeout_ms
        ));

        Ok(Avinfo {
            endpoint: settings.vehicle_endpoint(),
            encoded_api_key: utf8_percent_encode(&settings.api_key, QUERY_VALUE).to_string(),
            settings,
            host,
            unmapped_codes: Mutex::new(HashSet::new()),
        })
    }

    /// Looks up the vehicle in `request.payload` and returns the reshaped AVINFO data.
    ///
    /// The payload is validated before any HTTP request, and a cache hit returns without one. Only
    /// successful lookups are cached. The cache stores the vehicle data without the directory
    /// mapping, which is applied on every reply, so a mapping change takes effect at once.
    fn send(&self, request: &SendRequest) -> Result<Reply, ConnectorError> {
        let lookup = match self.start(request)? {
            Start::Cached(reply) => return Ok(reply),
            Start::Lookup(lookup) => lookup,
        };
        let response = self.host.http(self.vehicle_request(&lookup, request.message_id));
        self.finish(&lookup, response)
    }

    /// Looks up the vehicle like [`send`](Self::send), without holding a thread during the HTTP
    /// request. The engine calls this one, because the plugin declares `SEND_ASYNC`.
    fn send_async(self: Arc<Self>, request: SendRequest) -> impl Future<Output = Result<Reply, ConnectorError>> + Send + 'static {
        async move {
            let lookup = match self.start(&request)? {
                Start::Cached(reply) => return Ok(reply),
                Start::Lookup(lookup) => lookup,
            };
            let response = self.host.http_async(self.vehicle_request(&lookup, request.message_id)).await;
            self.finish(&lookup, response)
        }
    }
}

/// Next step of a send, once its request and the cache are checked.
enum Start {
    /// The reply, from the cache.
    Cached(Reply),
    /// The lookup to request from AVINFO.
    Lookup(Lookup),
}

impl Avinfo {
    /// Checks the entity and the payload, then looks in the cache.
    fn start(&self, request: &SendRequest) -> Result<Start, ConnectorError> {
        if request.entity.as_str() != VEHICLE_ENTITY {
            return Err(ConnectorError::permanent(format!(
                "unknown entity {:?}: the avinfo connector accepts only entity \"{VEHICLE_ENTITY}\"",
                request.entity.as_str()
            ))
            .with_code(INVALID_PAYLOAD));
        }
        let lookup = Lookup::from_payload(&request.payload)?;
        match self.cached_reply(&lookup, request.message_id) {
            Some(reply) => Ok(Start::Cached(reply)),
            None => Ok(Start::Lookup(lookup)),
        }
    }

    /// Builds AVINFO's request for `lookup`.
    fn vehicle_request(&self, lookup: &Lookup, message_id: i64) -> HttpRequest {
        let url = format!(
            "{}?key={}&{}={}",
            self.endpoint,
            self.encoded_api_key,
            lookup.parameter(),
            utf8_percent_encode(lookup.value(), QUERY_VALUE)
        );
        let mut http_request = HttpRequest::get(url);
        http_request.timeout_ms = self.settings.timeout_ms;
        http_request.idempotent = true;
        self.host.debug(&format!("requesting AVINFO for {lookup} (message_id={message_id})"));
        http_request
    }

    /// Turns AVINFO's response into the reply and caches its vehicle data. Errors never contain the
    /// API key.
    fn finish(&self, lookup: &Lookup, response: Result<HttpResponse, HttpError>) -> Result<Reply, ConnectorError> {
        let response = response.map_err(|http_error| {
            let mut error = http_error.into_connector_error();
            error.message = RString::from(format!("request to AVINFO for {lookup} failed: {}", error.message));
            self.redact_api_key(error)
        })?;
        let vehicle = response::vehicle_data(&response, lookup).map_err(|error| self.redact_api_key(error))?;
        self.store_in_cache(lookup, &vehicle);
        Ok(self.reshape(vehicle))
    }

    /// Returns the reply for a cached lookup, or `None` on a miss, with caching disabled, or when
    /// the cached entry is unreadable, which is logged and then treated as a miss.
    fn cached_reply(&self, lookup: &Lookup, message_id: i64) -> Option<Reply> {
        if self.settings.cache_ttl_seconds == 0 {
            return None;
        }
        let cache_key = lookup.cache_key();
        let cached = self.host.cache_get(&cache_key)?;

        match response::parse_cached(&cached) {
            Ok(vehicle) => {
                self.host.debug(&format!("served {lookup} from cache (message_id={message_id})"));
                Some(self.reshape(vehicle))
            }
            Err(reason) => {
                self.host.warn(&format!("ignoring unreadable cache entry {cache_key:?}, requesting AVINFO again: {reason}"));
                None
            }
        }
    }

    fn store_in_cache(&self, lookup: &Lookup, vehicle: &response::VehicleData) {
        if self.settings.cache_ttl_seconds == 0 {
            return;
        }
        let text = serde_json::to_string(vehicle).expect("vehicle data has only strings, numbers and JSON values");
        self.host.cache_put(&lookup.cache_key(), text, self.settings.cache_ttl_seconds);
    }

    /// Reshapes AVINFO's vehicle data with the current directory mapping into a finished reply.
    fn reshape(&self, vehicle: response::VehicleData) -> Reply {
        let reshaped = response::reshape(vehicle, |directory, external_code| {
            let internal_code = self.host.map_to_internal(directory, external_code);
            if internal_code.is_none() {
                self.warn_unmapped(directory, external_code);
            }
            internal_code
        });
        Reply::done(reshaped)
    }

    /// Logs a missing directory mapping once per directory and code.
    fn warn_unmapped(&self, directory: &str, external_code: &str) {
        let first_time = match self.unmapped_codes.lock() {
            Ok(mut reported) => reported.insert((directory.to_string(), external_code.to_string())),
            Err(_) => true,
        };
        if first_time {
            self.host.warn(&format!(
                "directory {directory:?} has no internal code for AVINFO code {external_code:?}: replies carry \
                 \"code\": null until a mapping is added"
            ));
        }
    }

    /// Replaces the API key, raw and percent-encoded, in the error's message and code.
    fn redact_api_key(&self, mut error: ConnectorError) -> ConnectorError {
        error.message = RString::from(self.redact_text(&error.message));
        error.code = RString::from(self.redact_text(&error.code));
        error
    }

    /// Replaces every occurrence of the API key in `text`. A very short key also replaces
    /// unrelated text: the message gets garbled, but the key itself cannot remain in it.
    fn redact_text(&self, text: &str) -> String {
        text.replace(&self.encoded_api_key, REDACTED).replace(&self.settings.api_key, REDACTED)
    }
}

uig_connector_api::export_connector!(Avinfo);

#[cfg(test)]
mod tests;
