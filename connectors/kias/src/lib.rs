//! UIG connector plugin for KIAS, the insurers' core system, over its SOAP service `kiasSvc`
//! (`ExecProc`). The wire protocol as UIG models it is in `docs/kias-api.md`.

use uig_connector_api::sdk::{HostContext, PluginConnector, PluginInfo};
use uig_connector_api::{Capabilities, ConnectorError, DirectoryPage, DirectoryRequest, Reply, SendRequest};

pub mod client;
pub mod data;
pub mod directory;
pub mod encoding;
pub mod entities;
pub mod params;
pub mod reply;
pub mod settings;
pub mod soap;
pub mod values;
pub mod xml;

use client::KiasClient;
use params::INVALID_PAYLOAD;
use settings::Settings;

/// The KIAS connector: sends events, A-7 receipts and payment confirmations to KIAS and reads
/// its directories.
pub struct Kias {
    settings: Settings,
    client: KiasClient,
}

impl PluginConnector for Kias {
    type Settings = Settings;

    const INFO: PluginInfo = PluginInfo {
        name: "kias",
        version: env!("CARGO_PKG_VERSION"),
        description: "KIAS core insurance system over SOAP ExecProc: event notifications, A-7 receipts, \
                      payment confirmations and directories",
        capabilities: Capabilities(Capabilities::SEND.0 | Capabilities::FETCH_DIRECTORY.0),
        entities: &entities::ENTITIES,
        config_schema: settings::CONFIG_SCHEMA,
    };

    fn create(settings: Settings, host: HostContext) -> Result<Self, ConnectorError> {
        settings.validate()?;

        let directories: Vec<&str> = settings.directories.keys().map(String::as_str).collect();
        host.info(&format!(
            "kias connector ready: endpoint={}, soap_version={}, app_id={}, user={:?}, directories=[{}], \
             session_ttl_seconds={}, timeout_ms={}",
            settings.endpoint_url(),
            settings.soap_version.name(),
            settings.app_id,
            settings.user.trim(),
            directories.join(", "),
            settings.session_ttl_seconds,
            settings.timeout_ms
        ));

        Ok(Kias { client: KiasClient::new(&settings, host), settings })
    }

    /// Sends one message. The payload is validated before any request, and `a7_create` and
    /// `payment_confirm` are safe to retry (see their modules).
    fn send(&self, request: &SendRequest) -> Result<Reply, ConnectorError> {
        let context = format!("message_id={} attempt={}", request.message_id, request.attempt);
        let procedures = &self.settings.procedures;

        match request.entity.as_str() {
            entities::NOTIFY => entities::notify::send(&self.client, &procedures.notify, request, &context),
            entities::A7_CREATE => entities::a7::send(&self.client, procedures, request, &context),
            entities::PAYMENT_CONFIRM => entities::payment::send(&self.client, procedures, request, &context),
            unknown => Err(ConnectorError::permanent(format!(
                "unknown entity {unknown:?}: the kias connector accepts {}",
                entities::ENTITIES.join(", ")
            ))
            .with_code(INVALID_PAYLOAD)),
        }
    }

    /// Reads one page of a directory named in `settings.directories`.
    fn fetch_directory(&self, request: &DirectoryRequest) -> Result<DirectoryPage, ConnectorError> {
        let directory = request.directory.as_str();
        let Some(root_isn) = self.settings.directories.get(directory) else {
            let known: Vec<&str> = self.settings.directories.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
            return Err(ConnectorError::config(format!(
                "unknown directory {directory:?}: settings.directories of the kias connector names {known}"
            )));
        };

        directory::fetch_page(&self.client, directory, *root_isn, request)
    }
}

uig_connector_api::export_connector!(Kias);

#[cfg(test)]
mod tests;
