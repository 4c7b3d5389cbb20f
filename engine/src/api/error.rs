//! API errors: a stable English `code`, and a message in Russian (default) or English.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::params::ParamError;
use crate::timestamp::TimestampError;

/// Language of error messages, chosen by `Accept-Language`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Russian,
    English,
}

impl Language {
    /// Picks English when the highest-priority tag of `Accept-Language` is English, else Russian.
    pub fn from_headers(headers: &HeaderMap) -> Language {
        let Some(value) = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|value| value.to_str().ok()) else {
            return Language::Russian;
        };
        let mut best: Option<(f32, &str)> = None;
        for part in value.split(',') {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim();
            let quality = pieces
                .find_map(|piece| piece.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if best.is_none_or(|(top, _)| quality > top) {
                best = Some((quality, tag));
            }
        }
        match best {
            Some((_, tag)) if tag.to_ascii_lowercase().starts_with("en") => Language::English,
            _ => Language::Russian,
        }
    }
}

/// An error response of the API.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable English code, for programs.
    pub code: &'static str,
    /// The parameter at fault, if one is.
    pub field: Option<String>,
    pub russian: String,
    pub english: String,
    /// Seconds to wait, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Creates an error with both messages.
    pub fn new(status: StatusCode, code: &'static str, russian: impl Into<String>, english: impl Into<String>) -> Self {
        ApiError { status, code, field: None, russian: russian.into(), english: english.into(), retry_after: None }
    }

    /// Names the parameter at fault.
    pub fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// Renders the error in `language`.
    pub fn into_response_in(self, language: Language) -> Response {
        let message = match language {
            Language::Russian => &self.russian,
            Language::English => &self.english,
        };
        let mut error = json!({"code": self.code, "message": message});
        if let Some(field) = &self.field {
            error["field"] = json!(field);
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.headers_mut().insert(axum::http::header::CONTENT_LANGUAGE, HeaderValue::from_static(match language {
            Language::Russian => "ru",
            Language::English => "en",
        }));
        response
    }

    pub fn missing(field: &str) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_parameter",
            format!("Не передан обязательный параметр «{field}»: добавьте его в строку запроса или в тело."),
            format!("missing required parameter \"{field}\": add it to the query string or the body"),
        )
        .field(field)
    }

    pub fn invalid(field: &str, russian: impl Into<String>, english: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", russian, english).field(field)
    }

    pub fn missing_token() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "Не передан токен: укажите параметр «token» или заголовок «Authorization: Bearer <токен>».",
            "missing token: send the \"token\" parameter or the \"Authorization: Bearer <token>\" header",
        )
        .field("token")
    }

    pub fn invalid_token() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "Токен не найден или клиент отключён: проверьте токен, выданный командой «uig client add».",
            "unknown token or disabled client: check the token issued by \"uig client add\"",
        )
        .field("token")
    }

    pub fn invalid_signature() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "Подпись «hash» не совпадает: вычислите HMAC-SHA256 секретом клиента от METHOD\\nPATH\\nCANONICAL\\nTOKEN, как описано в README (раздел «Подпись»).",
            "signature \"hash\" does not match: compute HMAC-SHA256 with the client secret over METHOD\\nPATH\\nCANONICAL\\nTOKEN as the README's signature section describes",
        )
        .field("hash")
    }

    pub fn not_found(id: i64) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "message_not_found",
            format!("Сообщение {id} не найдено среди сообщений этого клиента."),
            format!("message {id} not found among this client's messages"),
        )
        .field("id")
    }

    pub fn body_too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("Тело запроса больше допустимых {limit} байт: уменьшите сообщение."),
            format!("request body exceeds the limit of {limit} bytes: send a smaller message"),
        )
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "Шлюз временно не может выполнить запрос (ошибка хранилища): повторите запрос позже.",
            "the gateway cannot serve the request right now (storage failure): retry later",
        )
        .retry_after(5)
    }

    pub fn rate_limited(seconds: u64) -> Self {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Клиент превысил допустимую частоту запросов: повторите запрос через {seconds} с (заголовок Retry-After)."),
            format!("the client exceeded its request rate: retry in {seconds} s (Retry-After header)"),
        )
        .retry_after(seconds)
    }

    pub fn queue_full(seconds: u64) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            format!("Очередь доставки шлюза заполнена: сообщение не принято, повторите запрос через {seconds} с (заголовок Retry-After)."),
            format!("the gateway's delivery queue is full, so the message was not accepted: retry in {seconds} s (Retry-After header)"),
        )
        .retry_after(seconds)
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl From<ParamError> for ApiError {
    fn from(error: ParamError) -> Self {
        let english = error.to_string();
        let (russian, field) = match &error {
            ParamError::Duplicate { name } => (
                format!("Параметр «{name}» передан несколько раз: передайте его один раз, в строке запроса или в теле."),
                Some(name.clone()),
            ),
            ParamError::InvalidUtf8 { name } => (
                format!("Параметр «{name}» после percent-декодирования не является UTF-8: кодируйте текст в UTF-8."),
                Some(name.clone()),
            ),
            ParamError::InvalidJson { detail } => (format!("Тело запроса не является корректным JSON: {detail}."), None),
            ParamError::NotAnObject => (
                "Тело запроса в JSON должно быть объектом параметров, например {\"recipient\": \"avinfo\"}.".to_string(),
                None,
            ),
        };
        let mut api_error = ApiError::new(StatusCode::BAD_REQUEST, error.code(), russian, english);
        api_error.field = field;
        api_error
    }
}

impl From<TimestampError> for ApiError {
    fn from(error: TimestampError) -> Self {
        let english = error.to_string();
        let (status, russian) = match &error {
            TimestampError::TooOld { age_seconds, window_seconds } => (
                StatusCode::UNAUTHORIZED,
                format!("Метка времени старше времени сервера на {age_seconds} с, допустимо {window_seconds} с: проверьте часы клиента и передайте свежую метку."),
            ),
            TimestampError::InFuture { ahead_seconds, window_seconds } => (
                StatusCode::UNAUTHORIZED,
                format!("Метка времени опережает время сервера на {ahead_seconds} с, допустимо {window_seconds} с: проверьте часы клиента."),
            ),
            _ => (
                StatusCode::BAD_REQUEST,
                "Некорректная метка времени «timestamp»: используйте RFC 3339 со смещением (2026-12-04T12:00:00+03:00), «ГГГГ-ММ-ДД ЧЧ:ММ:СС» или Unix-время в секундах.".to_string(),
            ),
        };
        ApiError::new(status, error.code(), russian, english).field("timestamp")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn language(value: &str) -> Language {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::ACCEPT_LANGUAGE, HeaderValue::from_str(value).unwrap());
        Language::from_headers(&headers)
    }

    #[test]
    fn language_follows_priority() {
        assert_eq!(language("en"), Language::English);
        assert_eq!(language("en-US,ru;q=0.5"), Language::English);
        assert_eq!(language("ru-RU,en;q=0.8"), Language::Russian);
        assert_eq!(language("de"), Language::Russian);
        assert_eq!(Language::from_headers(&HeaderMap::new()), Language::Russian);
    }
}
