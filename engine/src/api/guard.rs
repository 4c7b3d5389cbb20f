//! Limits on the request line and headers, checked before any handler reads the request.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::error::{ApiError, Language};

/// Longest accepted request target (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest accepted total of header names and values, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Rejects a request whose target or headers exceed the limits, with 414 or 431.
pub async fn limit_request_head(request: Request, next: Next) -> Response {
    let language = Language::from_headers(request.headers());
    let uri_bytes = request.uri().to_string().len();
    if uri_bytes > MAX_URI_BYTES {
        tracing::info!(uri_bytes, "request target too long");
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("Строка запроса длиннее {MAX_URI_BYTES} байт: передайте параметры в теле запроса POST."),
            format!("the request target exceeds {MAX_URI_BYTES} bytes: send the parameters in a POST body"),
        )
        .into_response_in(language);
    }
    let header_bytes: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if header_bytes > MAX_HEADER_BYTES {
        tracing::info!(header_bytes, "request headers too large");
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("Заголовки запроса больше {MAX_HEADER_BYTES} байт: уберите лишние заголовки."),
            format!("the request headers exceed {MAX_HEADER_BYTES} bytes: drop unneeded headers"),
        )
        .into_response_in(language);
    }
    next.run(request).await
}
