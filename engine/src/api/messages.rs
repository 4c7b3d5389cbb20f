//! Handlers of the message API: send (async and sync), list, get and status refresh.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use uig_connector_api::{Capabilities, SendRequest, StatusRequest};

use super::error::ApiError;
use super::request::{Rejection, SignedRequest};
use crate::db::message;
use crate::delivery;
use crate::engine::Engine;
use crate::ledger::{self, ListOrder, ListQuery, NewMessage, Stored};
use crate::plugins::ConnectorHandle;
use crate::status::Status;

/// How far back the first lookup of an `Idempotency-Key` reaches, in milliseconds (24 hours).
///
/// NOTE: the unique index on (client, key) keeps an older key bound to its message as well, so
/// such a repeat fails the insert and gets that message back. The window only narrows the lookup.
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

type ApiResult = Result<Response, Rejection>;

/// Formats Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Builds the summary object `{id, status, created_at, updated_at}` that every response starts with.
fn summary_of(id: i64, status: &str, created_at: i64, updated_at: i64) -> Value {
    json!({
        "id": id,
        "status": status,
        "created_at": format_time(created_at),
        "updated_at": format_time(updated_at),
    })
}

/// A message as `send` and `get` return it: the summary, then the fields that each adds. It is
/// serialized straight from the stored row, so the stored JSON is not parsed into a tree.
#[derive(serde::Serialize)]
struct MessageBody<'m> {
    id: i64,
    status: &'m str,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'m str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity: Option<&'m str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'m str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<StoredJson<'m>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<StoredJson<'m>>,
}

impl<'m> MessageBody<'m> {
    fn summary(message: &'m message::Model) -> MessageBody<'m> {
        MessageBody {
            id: message.id,
            status: &message.status,
            created_at: format_time(message.created_at),
            updated_at: format_time(message.updated_at),
            recipient: None,
            entity: None,
            message: None,
            data: None,
            error: None,
        }
    }

    fn into_response(self, status: StatusCode) -> Response {
        (status, Json(self)).into_response()
    }
}

/// Stored JSON text, written as the JSON it holds. Text that is not one JSON value is written as
/// a JSON string, and a missing value as null.
struct StoredJson<'m>(&'m Option<String>);

impl serde::Serialize for StoredJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_deref() {
            None => serializer.serialize_none(),
            Some(text) => match serde_json::from_str::<&RawValue>(text) {
                Ok(raw) => raw.serialize(serializer),
                Err(_) => serializer.serialize_str(text),
            },
        }
    }
}

fn storage_failure(error: impl std::fmt::Display, request: &SignedRequest) -> Rejection {
    tracing::error!(%error, client = %request.client.name, "ledger operation failed");
    Rejection(ApiError::internal(), request.language)
}

/// Validated parameters of a send.
struct SendParams {
    recipient: String,
    entity: String,
    message: String,
    callback: Option<String>,
    idempotency_key: Option<String>,
}

fn read_send(engine: &Engine, request: &SignedRequest, allow_callback: bool) -> Result<(SendParams, Arc<ConnectorHandle>), ApiError> {
    let param = |name: &str| request.params.get(name).ok_or_else(|| ApiError::missing(name));
    let recipient = param("recipient")?.to_string();
    let entity = param("entity")?.to_string();
    let message = param("message")?.to_string();

    let Some(connector) = engine.connectors.get(&recipient).cloned() else {
        if let Some(unavailable) = engine.connectors.unavailable(&recipient) {
            tracing::warn!(connector = %recipient, reason = %unavailable.reason, "send to unavailable connector");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "connector_unavailable",
                format!("Коннектор «{recipient}» недоступен (не загрузился при старте): обратитесь к оператору шлюза."),
                format!("connector \"{recipient}\" is unavailable (it failed to load at start): contact the gateway operator"),
            )
            .field("recipient")
            .retry_after(60));
        }
        let known = engine.connectors.names().join(", ");
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_recipient",
            format!("Неизвестный получатель «{recipient}»: доступные коннекторы — {known}."),
            format!("unknown recipient \"{recipient}\": enabled connectors are {known}"),
        )
        .field("recipient"));
    };

    if !request.client.may_send_to(&recipient) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "recipient_not_allowed",
            format!("Клиенту «{}» не разрешено отправлять получателю «{recipient}»: попросите оператора добавить его (uig client add --allow).", request.client.name),
            format!("client \"{}\" may not send to \"{recipient}\": ask the operator to allow it (uig client add --allow)", request.client.name),
        )
        .field("recipient"));
    }
    if !connector.accepts_entity(&entity) {
        let entities = connector.entities().join(", ");
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_entity",
            format!("Коннектор «{recipient}» не принимает сущность «{entity}»: допустимы {entities}."),
            format!("connector \"{recipient}\" does not accept entity \"{entity}\": valid entities are {entities}"),
        )
        .field("entity"));
    }
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&message) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
            format!("Параметр «message» не является корректным JSON ({error}): передайте JSON-текст."),
            format!("parameter \"message\" is not valid JSON ({error}): send JSON text"),
        )
        .field("message"));
    }

    let callback = match request.params.get("callback") {
        Some(_) if !allow_callback => {
            return Err(ApiError::invalid(
                "callback",
                "Параметр «callback» допустим только в /async/message/send: синхронный ответ приходит в теле.",
                "parameter \"callback\" is only valid in /async/message/send: the sync answer comes in the response body",
            ))
        }
        Some(url) if !url.is_empty() => Some(check_callback(request, url)?),
        _ => None,
    };

    let idempotency_key = match request.headers.get("idempotency-key") {
        None => None,
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= 255 => Some(key.to_string()),
            _ => {
                return Err(ApiError::invalid(
                    "Idempotency-Key",
                    "Заголовок Idempotency-Key должен быть ASCII-строкой длиной от 1 до 255 символов.",
                    "header Idempotency-Key must be an ASCII string of 1 to 255 characters",
                ))
            }
        },
    };

    Ok((SendParams { recipient, entity, message, callback, idempotency_key }, connector))
}

fn check_callback(request: &SignedRequest, url: &str) -> Result<String, ApiError> {
    let invalid = || {
        ApiError::invalid(
            "callback",
            format!("Параметр «callback» = «{url}» не является адресом http(s)://хост/путь."),
            format!("parameter \"callback\" = \"{url}\" is not an http(s)://host/path URL"),
        )
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| invalid())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid());
    }
    let host = parsed.host_str().ok_or_else(invalid)?;
    if !request.client.may_call_back(host, parsed.port_or_known_default()) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "callback_not_allowed",
            format!("Хост «{host}» не входит в список разрешённых для обратных вызовов клиента: попросите оператора добавить его (--callback-host)."),
            format!("host \"{host}\" is not on the client's callback allow-list: ask the operator to add it (--callback-host)"),
        )
        .field("callback"));
    }
    Ok(url.to_string())
}

async fn store(engine: &Engine, request: &SignedRequest, send: &SendParams, status: Status) -> Result<Stored, Rejection> {
    let new = new_message(engine, request, send, status);
    engine.intake.store(new, idempotency_since()).await.map_err(|error| storage_failure(error, request))
}

/// The oldest creation time of a message whose idempotency key still counts as a repeat.
fn idempotency_since() -> i64 {
    ledger::now_ms() - IDEMPOTENCY_WINDOW_MS
}

fn new_message(engine: &Engine, request: &SignedRequest, send: &SendParams, status: Status) -> NewMessage {
    NewMessage {
        client_id: request.client.id,
        recipient: send.recipient.clone(),
        entity: send.entity.clone(),
        message: send.message.clone(),
        status,
        callback_url: send.callback.clone(),
        request_hash: Some(request.hash.clone()),
        request_ts: Some(request.signed_at_ms),
        idempotency_key: send.idempotency_key.clone(),
        pool: engine.config.pool_for(&send.recipient, &send.entity),
        lease: (status == Status::Processing).then(|| (engine.instance_id.clone(), engine.config.worker.lease_seconds as i64 * 1000)),
    }
}

/// `POST /async/message/send`: stores the message for the worker and returns 202.
pub async fn send_async(State(engine): State<Arc<Engine>>, request: SignedRequest) -> ApiResult {
    let (send, _connector) = read_send(&engine, &request, true).map_err(|error| Rejection(error, request.language))?;
    if let Err(seconds) = engine.limits.admit_queued() {
        tracing::warn!(client = %request.client.name, "delivery queue full, send rejected");
        return Err(Rejection(ApiError::queue_full(seconds), request.language));
    }
    let stored = store(&engine, &request, &send, Status::Queued).await?;

    let (message, replayed) = match stored {
        Stored::Created(message) => {
            engine.wake_pool(&message.pool);
            tracing::info!(message_id = message.id, client = %request.client.name, recipient = %message.recipient, entity = %message.entity, "message queued");
            (message, false)
        }
        Stored::Existing(message) => (message, true),
    };
    let mut response = MessageBody::summary(&message).into_response(StatusCode::ACCEPTED);
    if replayed {
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `POST /sync/message/send`: stores the message, delivers it inline and returns the result. A
/// lookup is delivered first and stored with its result ([`send_lookup`]).
pub async fn send_sync(State(engine): State<Arc<Engine>>, request: SignedRequest) -> ApiResult {
    let (send, connector) = read_send(&engine, &request, false).map_err(|error| Rejection(error, request.language))?;
    if let Some(open_for) = connector.breaker.open_for() {
        let seconds = open_for.as_secs().max(1);
        tracing::info!(connector = %connector.name, client = %request.client.name, "sync send rejected, circuit breaker open");
        let error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit_open",
            format!("Внешняя система «{}» недавно часто отвечала ошибками, вызовы приостановлены: повторите запрос через {seconds} с.", connector.name),
            format!("external system \"{}\" failed repeatedly, so calls to it are paused: retry in {seconds} s", connector.name),
        )
        .field("recipient")
        .retry_after(seconds);
        return Err(Rejection(error, request.language));
    }
    if connector.is_lookup(&send.entity) {
        return send_lookup(&engine, &request, &send, &connector).await;
    }
    let stored = store(&engine, &request, &send, Status::Processing).await?;

    let replayed = matches!(stored, Stored::Existing(_));
    let message = match stored {
        Stored::Existing(message) => message,
        Stored::Created(message) => {
            let send_request = SendRequest {
                message_id: message.id,
                entity: message.entity.as_str().into(),
                payload: message.message.as_str().into(),
                attempt: 1,
            };
            // A sync client waits for this one attempt: no retry, a failure is final.
            let (attempt, result) = delivery::attempt_send(&connector, send_request, 1, i64::MAX).await;
            engine.finisher.sync(attempt, result).await.map_err(|error| storage_failure(error, &request))?
        }
    };
    Ok(sync_response(&message, replayed))
}

/// Sends a lookup synchronously: the plugin is called first, with `message_id` 0, and the message
/// is stored once, with its result and attempt, in one commit. A lookup changes nothing at the
/// recipient, so nothing needs a record before the call. If the engine dies during it, the client
/// sees its request fail and repeats it. A repeated request calls the plugin again and returns
/// the earlier message, and the new result is not stored.
async fn send_lookup(engine: &Engine, request: &SignedRequest, send: &SendParams, connector: &ConnectorHandle) -> ApiResult {
    let send_request = SendRequest { message_id: 0, entity: send.entity.as_str().into(), payload: send.message.as_str().into(), attempt: 1 };
    let (attempt, result) = delivery::attempt_send(connector, send_request, 1, i64::MAX).await;
    let new = new_message(engine, request, send, Status::Processing);
    let stored = engine.intake.store_with_result(new, idempotency_since(), attempt, result).await.map_err(|error| storage_failure(error, request))?;
    let replayed = matches!(stored, Stored::Existing(_));
    let (Stored::Created(message) | Stored::Existing(message)) = stored;
    if !replayed && message.status == Status::Failed.as_str() {
        // The attempt's own warning ran before the message had an id.
        tracing::warn!(message_id = message.id, connector = %connector.name, "sync lookup failed and is stored as failed");
    }
    Ok(sync_response(&message, replayed))
}

fn sync_response(message: &message::Model, replayed: bool) -> Response {
    let body = MessageBody {
        data: Some(StoredJson(&message.data)),
        error: message.error.is_some().then_some(StoredJson(&message.error)),
        ..MessageBody::summary(message)
    };
    let mut response = body.into_response(StatusCode::OK);
    if replayed {
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    response
}

fn read_list_query(request: &SignedRequest, unread_only: bool) -> Result<ListQuery, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        match request.params.get(name) {
            None | Some("") => Ok(None),
            Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
                ApiError::invalid(
                    name,
                    format!("Параметр «{name}» = «{text}» должен быть целым числом."),
                    format!("parameter \"{name}\" = \"{text}\" must be an integer"),
                )
            }),
        }
    };

    let anchor = number("id")?;
    if let Some(id) = anchor {
        if id < 0 {
            return Err(ApiError::invalid("id", "Параметр «id» не может быть отрицательным.", "parameter \"id\" must not be negative"));
        }
    }
    let page = number("page")?.unwrap_or(1);
    if !(1..=1_000_000).contains(&page) {
        return Err(ApiError::invalid(
            "page",
            "Параметр «page» должен быть от 1 до 1000000; для дальних страниц передайте id последнего сообщения в параметре «id».",
            "parameter \"page\" must be from 1 to 1000000; for far pages pass the last message id as \"id\"",
        ));
    }
    let per_page = number("per_page")?.unwrap_or(100);
    if !(10..=1000).contains(&per_page) {
        return Err(ApiError::invalid(
            "per_page",
            format!("Параметр «per_page» = {per_page} вне диапазона: допустимо от 10 до 1000."),
            format!("parameter \"per_page\" = {per_page} is out of range: use 10 to 1000"),
        ));
    }
    let order = match request.params.get("order").unwrap_or("asc") {
        "asc" | "" => ListOrder::Asc,
        "desc" => ListOrder::Desc,
        other => {
            return Err(ApiError::invalid(
                "order",
                format!("Параметр «order» = «{other}»: допустимо asc или desc."),
                format!("parameter \"order\" = \"{other}\": use asc or desc"),
            ))
        }
    };
    Ok(ListQuery { client_id: request.client.id, unread_only, anchor, order, page: page as u64, per_page: per_page as u64 })
}

async fn list(engine: Arc<Engine>, request: SignedRequest, unread_only: bool) -> ApiResult {
    let query = read_list_query(&request, unread_only).map_err(|error| Rejection(error, request.language))?;
    let page = ledger::list(&engine.db, &query).await.map_err(|error| storage_failure(error, &request))?;

    let data: Vec<Value> = page
        .rows
        .iter()
        .map(|row| summary_of(row.id, &row.status, row.created_at, row.updated_at))
        .collect();
    let meta = json!({
        "page": query.page,
        "per_page": query.per_page,
        "order": if query.order == ListOrder::Asc { "asc" } else { "desc" },
        "id": query.anchor,
        "count": data.len(),
        "has_more": page.has_more,
        "next_id": page.rows.last().map(|row| row.id),
    });
    Ok(Json(json!({"data": data, "meta": meta})).into_response())
}

/// `GET /sync/message/list-all`.
pub async fn list_all(State(engine): State<Arc<Engine>>, request: SignedRequest) -> ApiResult {
    list(engine, request, false).await
}

/// `GET /sync/message/list-new`: only messages the client has not read with `get`.
pub async fn list_new(State(engine): State<Arc<Engine>>, request: SignedRequest) -> ApiResult {
    list(engine, request, true).await
}

fn read_id(request: &SignedRequest) -> Result<i64, ApiError> {
    let text = request.params.get("id").ok_or_else(|| ApiError::missing("id"))?;
    text.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::invalid(
            "id",
            format!("Параметр «id» = «{text}» должен быть положительным целым числом."),
            format!("parameter \"id\" = \"{text}\" must be a positive integer"),
        )
    })
}

async fn owned_message(engine: &Engine, request: &SignedRequest) -> Result<message::Model, Rejection> {
    let id = read_id(request).map_err(|error| Rejection(error, request.language))?;
    ledger::find_for_client(&engine.db, request.client.id, id)
        .await
        .map_err(|error| storage_failure(error, request))?
        .ok_or_else(|| Rejection(ApiError::not_found(id), request.language))
}

/// `GET /sync/message/get`: the whole message; marks it read.
pub async fn get(State(engine): State<Arc<Engine>>, request: SignedRequest) -> ApiResult {
    let message = owned_message(&engine, &request).await?;
    let message = ledger::mark_read(&engine.db, message).await.map_err(|error| storage_failure(error, &request))?;

    let body = MessageBody {
        recipient: Some(&message.recipient),
        entity: Some(&message.entity),
        message: Some(&message.message),
        data: Some(StoredJson(&message.data)),
        error: Some(StoredJson(&message.error)),
        ..MessageBody::summary(&message)
    };
    Ok(body.into_response(StatusCode::OK))
}

/// `PUT /sync/message/status`: refreshes a pending message from the recipient where the connector
/// supports it, then returns the current status.
pub async fn refresh_status(State(engine): State<Arc<Engine>>, request: SignedRequest) -> ApiResult {
    let message = owned_message(&engine, &request).await?;

    let refreshable = message.status == Status::Processing.as_str() && message.lease_owner.is_none();
    let connector = engine.connectors.get(&message.recipient).filter(|connector| connector.supports(Capabilities::REFRESH_STATUS));
    let message = match (refreshable, connector) {
        (true, Some(connector)) => {
            let status_request = StatusRequest {
                message_id: message.id,
                entity: message.entity.as_str().into(),
                external_id: message.external_id.clone().map(Into::into).into(),
                payload: message.message.as_str().into(),
            };
            let (attempt, result) = delivery::attempt_refresh(connector, status_request).await;
            ledger::finish_refresh(&engine.db, attempt, result).await.map_err(|error| storage_failure(error, &request))?;
            engine.callback_due.notify_one();
            ledger::find(&engine.db, message.id)
                .await
                .map_err(|error| storage_failure(error, &request))?
                .unwrap_or(message)
        }
        _ => message,
    };
    Ok(MessageBody::summary(&message).into_response(StatusCode::OK))
}
