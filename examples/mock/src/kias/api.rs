//! HTTP handlers of the kiasSvc service: `POST /kiasSvc.asmx` (ExecProc over SOAP 1.1 and 1.2)
//! and `GET /kiasSvc.asmx?WSDL`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use tracing::{info, warn};

use super::procedures::{self, Outcome};
use super::soap::{self, RequestError, SoapVersion};
use super::state::{KiasMode, KiasState};
use super::xml::XmlNode;

/// Body of the HTML 502 page that the `html_502` and `fail_after_commit` modes return, as a
/// reverse proxy in front of IIS would.
const BAD_GATEWAY_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
<body><h1>502 Bad Gateway</h1><p>The upstream kiasSvc server did not respond (mock).</p></body></html>\n";

/// `POST /kiasSvc.asmx`: runs the `ExecProc` call in the body and returns its `data` document
/// in a SOAP envelope of the request's version, encoded as `PUT /_mock/kias/encoding` set.
///
/// Requests that are not valid `ExecProc` calls get a SOAP Fault with HTTP 500, and a content
/// type other than SOAP 1.1 or 1.2 gets HTTP 415. The fault mode applies after parsing, so a
/// mode limited to one procedure can spare the others.
pub async fn exec_proc(
    State(state): State<KiasState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match soap::read_request(&headers, &body) {
        Ok(request) => request,
        Err(RequestError::UnsupportedMediaType(content_type)) => {
            warn!(
                content_type,
                "kias request rejected: not a SOAP content type"
            );
            let message = format!(
                "unsupported content type {content_type:?}: send text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)\n"
            );
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response();
        }
        Err(RequestError::Fault {
            version,
            code,
            reason,
        }) => {
            warn!(code, reason, "kias request rejected with a SOAP Fault");
            return fault_response(&state, version, code, &reason);
        }
    };
    let version = request.version;
    let procedure = request.procedure().to_owned();

    let fault = {
        let mut runtime = state.lock();
        runtime.requests += 1;
        *runtime
            .requests_by_version
            .entry(version.name())
            .or_insert(0) += 1;
        runtime.take_fault(&procedure)
    };
    match fault {
        None | Some((KiasMode::Normal, _)) => {}
        Some((KiasMode::Slow, delay)) => tokio::time::sleep(delay).await,
        Some((KiasMode::Fault, _)) => {
            info!(procedure, "kias call failed on purpose (mock mode fault)");
            let reason = "Server was unable to process request. ---> KIAS failed on purpose (mock mode fault)";
            return fault_response(&state, version, "Server", reason);
        }
        Some((KiasMode::Html502, _)) => {
            info!(
                procedure,
                "kias call answered with a 502 page on purpose (mock mode html_502)"
            );
            return bad_gateway();
        }
        Some((KiasMode::Reset, _)) => {
            info!(
                procedure,
                "kias connection closed on purpose (mock mode reset)"
            );
            // Unwinding out of the handler ends the task that serves this connection, so the
            // socket is closed with no response sent. `resume_unwind` skips the panic hook, so
            // nothing is printed. Tests must drive this mode over a socket, because a `oneshot`
            // call would unwind into the test.
            std::panic::resume_unwind(Box::new("mock mode reset"))
        }
        Some((KiasMode::Malformed, _)) => {
            info!(
                procedure,
                "kias response cut on purpose (mock mode malformed)"
            );
            return malformed_response(&state, version);
        }
        Some((KiasMode::FailAfterCommit, _)) => {
            let outcome = procedures::execute(&state, &procedure, &request.params());
            info!(
                procedure,
                succeeded = outcome.is_ok(),
                "kias call performed, then answered with a 502 page on purpose (mock mode fail_after_commit)"
            );
            return bad_gateway();
        }
    }

    let outcome = procedures::execute(&state, &procedure, &request.params());
    match &outcome {
        Ok(_) => info!(
            procedure,
            soap_version = version.name(),
            "kias call succeeded"
        ),
        Err(error) => info!(
            procedure,
            code = error.code,
            text = error.text,
            "kias call returned an error"
        ),
    }
    data_response(&state, version, outcome)
}

/// Wraps an outcome into `<data><result>…</result></data>` or `<data><error>…</error></data>`.
fn data_document(outcome: Outcome) -> XmlNode {
    let content = match outcome {
        Ok(children) => XmlNode::parent("result", children),
        Err(error) => XmlNode::parent(
            "error",
            vec![
                XmlNode::text("code", error.code),
                XmlNode::text("text", error.text),
            ],
        ),
    };
    XmlNode::parent("data", vec![content])
}

/// Writes an envelope with the configured encoding and the given status.
fn soap_response(
    state: &KiasState,
    version: SoapVersion,
    status: StatusCode,
    document: &str,
) -> Response {
    let encoding = state.lock().encoding;
    let content_type = encoding.content_type(version.media_type());
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        encoding.encode(document),
    )
        .into_response()
}

fn data_response(state: &KiasState, version: SoapVersion, outcome: Outcome) -> Response {
    let declared = state.lock().encoding.declared_label();
    match soap::response_document(version, &data_document(outcome), declared) {
        Ok(document) => soap_response(state, version, StatusCode::OK, &document),
        Err(error) => internal_error(&error),
    }
}

fn fault_response(state: &KiasState, version: SoapVersion, code: &str, reason: &str) -> Response {
    let declared = state.lock().encoding.declared_label();
    match soap::fault_document(version, code, reason, declared) {
        Ok(document) => soap_response(state, version, StatusCode::INTERNAL_SERVER_ERROR, &document),
        Err(error) => internal_error(&error),
    }
}

/// Returns a successful response cut in the middle, so the envelope is not well-formed.
fn malformed_response(state: &KiasState, version: SoapVersion) -> Response {
    let declared = state.lock().encoding.declared_label();
    let outcome = Ok(vec![XmlNode::text("STATUSNAME", "Ответ будет обрезан")]);
    let document = match soap::response_document(version, &data_document(outcome), declared) {
        Ok(document) => document,
        Err(error) => return internal_error(&error),
    };
    let mut cut = document.len() / 2;
    while !document.is_char_boundary(cut) {
        cut -= 1;
    }
    soap_response(state, version, StatusCode::OK, &document[..cut])
}

fn bad_gateway() -> Response {
    (StatusCode::BAD_GATEWAY, Html(BAD_GATEWAY_PAGE)).into_response()
}

fn internal_error(error: &std::io::Error) -> Response {
    warn!(%error, "kias response could not be written");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("failed to write the response: {error}\n"),
    )
        .into_response()
}

/// `GET /kiasSvc.asmx?WSDL`: returns the WSDL with both bindings, addressed at the `Host` the
/// request used. Without `?WSDL` it returns a short HTML page naming the service.
pub async fn describe(headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let wants_wsdl = query.is_some_and(|query| query.eq_ignore_ascii_case("wsdl"));
    if !wants_wsdl {
        let page = "<!DOCTYPE html>\n<html><head><title>kiasSvc</title></head><body><h1>kiasSvc (mock)</h1>\
                    <p>POST ExecProc calls here. The description is at <a href=\"?WSDL\">?WSDL</a>.</p></body></html>\n";
        return Html(page).into_response();
    }

    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("127.0.0.1");
    let location = format!("http://{host}/kiasSvc.asmx");
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        soap::wsdl(&location),
    )
        .into_response()
}
