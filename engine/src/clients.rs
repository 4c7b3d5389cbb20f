//! Client systems: creation, listing and authentication by token.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::crypto::{random_credential, token_hash, MasterKey};
use crate::db::{client, client_secret, Db};
use crate::ledger::now_ms;

/// An authenticated client with its decrypted secret.
#[derive(Clone)]
pub struct Client {
    pub id: i32,
    pub name: String,
    /// The current secret: callbacks are signed with it and new requests should be.
    pub secret: String,
    /// Earlier secrets that still verify requests after a rotation, until they expire.
    pub previous_secrets: Vec<String>,
    pub allowed_recipients: Vec<String>,
    pub callback_hosts: Vec<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret", &"***")
            .field("previous_secrets", &self.previous_secrets.len())
            .field("allowed_recipients", &self.allowed_recipients)
            .field("callback_hosts", &self.callback_hosts)
            .finish()
    }
}

impl Client {
    /// Returns the current secret first, then the earlier ones still valid.
    pub fn active_secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret.as_str()).chain(self.previous_secrets.iter().map(String::as_str))
    }

    /// Reports whether the client may send to `recipient`; `*` allows every connector.
    pub fn may_send_to(&self, recipient: &str) -> bool {
        self.allowed_recipients.iter().any(|allowed| allowed == "*" || allowed == recipient)
    }

    /// Reports whether a callback to `host` (and `port`, when the entry names one) is allowed.
    pub fn may_call_back(&self, host: &str, port: Option<u16>) -> bool {
        self.callback_hosts.iter().any(|allowed| match allowed.rsplit_once(':') {
            Some((allowed_host, allowed_port)) if allowed_port.chars().all(|c| c.is_ascii_digit()) => {
                allowed_host.eq_ignore_ascii_case(host) && port.map(|p| p.to_string()).as_deref() == Some(allowed_port)
            }
            _ => allowed.eq_ignore_ascii_case(host),
        })
    }
}

/// Credentials of a new client, printed once by `uig client add` and never shown again.
#[derive(Debug, serde::Serialize)]
pub struct CreatedClient {
    pub id: i32,
    pub name: String,
    pub token: String,
    pub secret: String,
    pub allowed_recipients: Vec<String>,
    pub callback_hosts: Vec<String>,
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(String::from).collect()
}

/// Creates a client. Token and secret are generated unless given (for migrating existing clients
/// with their credentials); the token is stored as a hash and the secret encrypted.
pub async fn create(
    db: &Db,
    key: &MasterKey,
    name: &str,
    allowed_recipients: &[String],
    callback_hosts: &[String],
    token: Option<String>,
    secret: Option<String>,
) -> anyhow::Result<CreatedClient> {
    let token = token.unwrap_or_else(|| random_credential("tok", 24));
    let secret = secret.unwrap_or_else(|| random_credential("sec", 32));
    if token.len() < 8 || secret.len() < 8 {
        anyhow::bail!("token and secret must be at least 8 characters long");
    }

    let existing = client::Entity::find().filter(client::Column::Name.eq(name)).one(&db.reader).await?;
    if existing.is_some() {
        anyhow::bail!("a client named \"{name}\" already exists: choose another name");
    }

    let model = client::ActiveModel {
        name: Set(name.to_string()),
        token_hash: Set(token_hash(&token)),
        secret_ciphertext: Set(key.encrypt(&secret)),
        allowed_recipients: Set(allowed_recipients.join(",")),
        callback_hosts: Set(callback_hosts.join(",")),
        disabled: Set(false),
        created_at: Set(now_ms()),
        ..Default::default()
    }
    .insert(&db.writer)
    .await
    .map_err(|error| match error.to_string().contains("UNIQUE") {
        true => anyhow::anyhow!("this token is already used by another client: choose another token"),
        false => anyhow::Error::from(error),
    })?;

    Ok(CreatedClient {
        id: model.id,
        name: model.name,
        token,
        secret,
        allowed_recipients: allowed_recipients.to_vec(),
        callback_hosts: callback_hosts.to_vec(),
    })
}

/// Result of a secret rotation, printed once by `uig client rotate-secret`.
#[derive(Debug, serde::Serialize)]
pub struct RotatedSecret {
    pub name: String,
    pub secret: String,
    /// Unix milliseconds until which the replaced secret still verifies requests.
    pub previous_valid_until: i64,
}

/// Gives a client a new secret; the replaced one stays valid for `keep_previous_hours` so the
/// client system can switch without failed requests. During that time callbacks carry one
/// signature per active secret, as Standard Webhooks allows.
pub async fn rotate_secret(db: &Db, key: &MasterKey, name: &str, secret: Option<String>, keep_previous_hours: u64) -> anyhow::Result<RotatedSecret> {
    use sea_orm::TransactionTrait;

    let secret = secret.unwrap_or_else(|| random_credential("sec", 32));
    if secret.len() < 8 {
        anyhow::bail!("the secret must be at least 8 characters long");
    }
    let Some(found) = client::Entity::find().filter(client::Column::Name.eq(name)).one(&db.reader).await? else {
        anyhow::bail!("no client named \"{name}\": see `uig client list`");
    };
    let now = now_ms();
    let valid_until = now + keep_previous_hours as i64 * 3_600_000;
    let transaction = db.writer.begin().await?;
    client_secret::ActiveModel {
        client_id: Set(found.id),
        secret_ciphertext: Set(found.secret_ciphertext.clone()),
        created_at: Set(now),
        expires_at: Set(valid_until),
        ..Default::default()
    }
    .insert(&transaction)
    .await?;
    let mut updated: client::ActiveModel = found.into();
    updated.secret_ciphertext = Set(key.encrypt(&secret));
    updated.update(&transaction).await?;
    transaction.commit().await?;
    Ok(RotatedSecret { name: name.to_string(), secret, previous_valid_until: valid_until })
}

/// Lists all clients (without credentials), by id.
pub async fn list(db: &Db) -> Result<Vec<client::Model>, DbErr> {
    client::Entity::find().order_by_asc(client::Column::Id).all(&db.reader).await
}

/// Looks clients up by token or id, caching decrypted entries for a short time.
#[derive(Clone)]
pub struct ClientRegistry {
    db: Db,
    key: MasterKey,
    by_token: Cache<String, Arc<Client>>,
    by_id: Cache<i32, Arc<Client>>,
}

impl ClientRegistry {
    /// Creates a registry whose cache entries live 30 seconds, so a disabled client is locked out
    /// within that time.
    pub fn new(db: Db, key: MasterKey) -> Self {
        let ttl = Duration::from_secs(30);
        ClientRegistry {
            db,
            key,
            by_token: Cache::builder().max_capacity(10_000).time_to_live(ttl).build(),
            by_id: Cache::builder().max_capacity(10_000).time_to_live(ttl).build(),
        }
    }

    /// Returns the enabled client with this token, if any.
    pub async fn authenticate(&self, token: &str) -> anyhow::Result<Option<Arc<Client>>> {
        let hash = token_hash(token);
        if let Some(found) = self.by_token.get(&hash) {
            return Ok(Some(found));
        }
        let model = client::Entity::find().filter(client::Column::TokenHash.eq(hash.as_str())).one(&self.db.reader).await?;
        let Some(model) = model.filter(|model| !model.disabled) else {
            return Ok(None);
        };
        let client = Arc::new(self.decrypt(model).await?);
        self.by_token.insert(hash, client.clone());
        Ok(Some(client))
    }

    /// Returns the client with this id, enabled or not.
    pub async fn by_id(&self, id: i32) -> anyhow::Result<Option<Arc<Client>>> {
        if let Some(found) = self.by_id.get(&id) {
            return Ok(Some(found));
        }
        let Some(model) = client::Entity::find_by_id(id).one(&self.db.reader).await? else {
            return Ok(None);
        };
        let client = Arc::new(self.decrypt(model).await?);
        self.by_id.insert(id, client.clone());
        Ok(Some(client))
    }

    async fn decrypt(&self, model: client::Model) -> anyhow::Result<Client> {
        let previous = client_secret::Entity::find()
            .filter(client_secret::Column::ClientId.eq(model.id))
            .filter(client_secret::Column::ExpiresAt.gt(now_ms()))
            .order_by_desc(client_secret::Column::Id)
            .all(&self.db.reader)
            .await?;
        let previous_secrets = previous.iter().map(|row| self.key.decrypt(&row.secret_ciphertext)).collect::<Result<Vec<_>, _>>()?;
        Ok(Client {
            id: model.id,
            name: model.name,
            secret: self.key.decrypt(&model.secret_ciphertext)?,
            previous_secrets,
            allowed_recipients: split_list(&model.allowed_recipients),
            callback_hosts: split_list(&model.callback_hosts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(callback_hosts: &[&str]) -> Client {
        Client {
            id: 1,
            name: "crm".into(),
            secret: "s".into(),
            previous_secrets: vec!["old".into()],
            allowed_recipients: vec!["avinfo".into()],
            callback_hosts: callback_hosts.iter().map(|host| host.to_string()).collect(),
        }
    }

    #[test]
    fn callback_host_with_port_matches_exactly() {
        let client = client(&["127.0.0.1:9090", "crm.local"]);
        assert!(client.may_call_back("127.0.0.1", Some(9090)));
        assert!(!client.may_call_back("127.0.0.1", Some(9091)));
        assert!(client.may_call_back("CRM.local", Some(443)));
        assert!(!client.may_call_back("evil.local", None));
    }

    #[test]
    fn secret_is_not_in_debug_output() {
        let text = format!("{:?}", client(&[]));
        assert!(!text.contains("secret: \"s\""));
        assert!(!text.contains("old"));
        assert!(text.contains("***"));
    }
}
