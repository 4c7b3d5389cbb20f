//! Calls of KIAS procedures through `ExecProc`, with the session (`Sid`) kept between calls.
//!
//! The first call authenticates with `Auth` and keeps the returned `Sid` for
//! `settings.session_ttl_seconds`. When KIAS returns error `001` (session expired), the client
//! authenticates once more and repeats the call once, which is safe because KIAS rejected the
//! first call before running the procedure.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha512};
use uig_connector_api::reexports::RString;
use uig_connector_api::sdk::HostContext;
use uig_connector_api::{ConnectorError, HttpRequest};

use crate::data::{read_data, request_document, DataReply, KiasError};
use crate::params::Param;
use crate::settings::{Settings, SoapVersion};
use crate::soap;
use crate::xml::Element;

/// Name of the authentication procedure.
pub const AUTH_PROCEDURE: &str = "Auth";

/// Text that replaces a secret wherever it would appear in an error message.
const REDACTED: &str = "***";

/// One procedure call.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// Procedure name (`reqName`).
    pub procedure: &'a str,
    /// Parameters after the `Sid`.
    pub params: &'a [Param],
    /// True when running the procedure twice has no second effect (lookups, directory reads).
    pub idempotent: bool,
    /// Ids for log lines, such as `message_id=42 attempt=2`.
    pub context: &'a str,
}

/// A session: the `Sid` and the moment the connector stops reusing it.
#[derive(Clone)]
struct Session {
    sid: String,
    expires_at: Instant,
}

/// Client of one KIAS service for one user.
pub struct KiasClient {
    host: HostContext,
    endpoint: String,
    soap_version: SoapVersion,
    app_id: u64,
    user: String,
    /// The plain password, kept only to remove it from error messages.
    password: String,
    /// SHA-512 of the password in lowercase hex, sent as `Pwd`.
    password_hash: String,
    session_ttl: Duration,
    timeout_ms: u64,
    session: Mutex<Option<Session>>,
}

impl KiasClient {
    /// Creates a client from validated settings. It authenticates on the first call.
    pub fn new(settings: &Settings, host: HostContext) -> Self {
        KiasClient {
            host,
            endpoint: settings.endpoint_url().to_string(),
            soap_version: settings.soap_version,
            app_id: settings.app_id,
            user: settings.user.trim().to_string(),
            password: settings.password.clone(),
            password_hash: password_hash(&settings.password),
            session_ttl: Duration::from_secs(settings.session_ttl_seconds),
            timeout_ms: settings.timeout_ms,
            session: Mutex::new(None),
        }
    }

    /// Returns the host, for log lines of the entities.
    pub fn host(&self) -> &HostContext {
        &self.host
    }

    /// Runs a procedure and returns its `result` element.
    ///
    /// Errors: HTTP and SOAP failures as [`soap::read_response`] classifies them, KIAS errors as
    /// [`KiasError::into_connector_error`] maps them. No error contains the password, its hash or
    /// the `Sid`.
    pub fn exec(&self, call: &Call<'_>) -> Result<Element, ConnectorError> {
        let sid = self.session_sid(call.context)?;
        let first = self.exec_with_sid(call, &sid).map_err(|error| self.redact(error, &sid))?;
        let kias_error = match first {
            DataReply::Result(result) => return Ok(result),
            DataReply::Error(error) if error.is_session_expired() => error,
            DataReply::Error(error) => return Err(self.redact(error.into_connector_error(call.procedure), &sid)),
        };

        self.host.warn(&format!(
            "KIAS session expired (error {}) before procedure {}: authenticating again and repeating the call once ({})",
            kias_error.code, call.procedure, call.context
        ));
        self.forget_session(&sid);
        let sid = self.session_sid(call.context)?;
        let second = self.exec_with_sid(call, &sid).map_err(|error| self.redact(error, &sid))?;
        match second {
            DataReply::Result(result) => Ok(result),
            DataReply::Error(error) => Err(self.redact(error.into_connector_error(call.procedure), &sid)),
        }
    }

    fn exec_with_sid(&self, call: &Call<'_>, sid: &str) -> Result<DataReply, ConnectorError> {
        self.host.debug(&format!("calling KIAS procedure {} ({})", call.procedure, call.context));
        let document = request_document(call.procedure, self.app_id, Some(sid), call.params)
            .map_err(|error| ConnectorError::permanent(format!("failed to write the KIAS request: {error}")))?;
        self.post(call.procedure, &document, call.idempotent)
    }

    /// Returns the current `Sid`, authenticating when there is none or it is past its time to live.
    ///
    /// The lock is held during authentication, so concurrent calls wait for one `Auth` instead of
    /// each sending their own. Plugin calls run on blocking threads, where such waiting is allowed.
    fn session_sid(&self, context: &str) -> Result<String, ConnectorError> {
        let mut session = self.lock_session();
        if let Some(current) = session.as_ref().filter(|current| current.expires_at > Instant::now()) {
            return Ok(current.sid.clone());
        }

        let sid = self.authenticate(context).map_err(|error| self.redact(error, ""))?;
        *session = Some(Session { sid: sid.clone(), expires_at: Instant::now() + self.session_ttl });
        Ok(sid)
    }

    /// Drops the session if it still is `sid`, so a concurrent call's newer session survives.
    fn forget_session(&self, sid: &str) {
        let mut session = self.lock_session();
        if session.as_ref().is_some_and(|current| current.sid == sid) {
            *session = None;
        }
    }

    fn authenticate(&self, context: &str) -> Result<String, ConnectorError> {
        let params = [Param::text("Name", self.user.as_str()), Param::text("Pwd", self.password_hash.as_str())];
        let document = request_document(AUTH_PROCEDURE, self.app_id, None, &params)
            .map_err(|error| ConnectorError::permanent(format!("failed to write the KIAS request: {error}")))?;

        let result = match self.post(AUTH_PROCEDURE, &document, true)? {
            DataReply::Result(result) => result,
            DataReply::Error(error) => return Err(self.auth_error(error)),
        };
        let Some(sid) = result.child_text("Sid") else {
            return Err(ConnectorError::transient(
                "KIAS returned an Auth result without a Sid, so no session could be opened",
            )
            .with_code(soap::MALFORMED_RESPONSE));
        };

        self.host.info(&format!("authenticated with KIAS as user {:?} ({context})", self.user));
        Ok(sid.to_string())
    }

    /// Maps an error of `Auth`: a `9xx` code stays transient, and every other code means that
    /// KIAS rejected the credentials or the AppId.
    fn auth_error(&self, error: KiasError) -> ConnectorError {
        if error.is_system_error() {
            return error.into_connector_error(AUTH_PROCEDURE);
        }
        ConnectorError::auth(format!(
            "KIAS rejected the authentication of user {:?} with error {}: {} (check settings.user, \
             settings.password and settings.app_id)",
            self.user,
            error.code,
            error.short_text()
        ))
        .with_code(error.code)
    }

    /// Sends one `ExecProc` request and reads the `data` reply.
    fn post(&self, procedure: &str, document: &str, idempotent: bool) -> Result<DataReply, ConnectorError> {
        let body = soap::envelope(self.soap_version, document)
            .map_err(|error| ConnectorError::permanent(format!("failed to write the SOAP envelope: {error}")))?;
        let mut request = HttpRequest::post(self.endpoint.as_str(), body);
        for (name, value) in soap::request_headers(self.soap_version) {
            request = request.header(name, &value);
        }
        request.timeout_ms = self.timeout_ms;
        request.idempotent = idempotent;

        let response = self.host.http(request).map_err(|http_error| {
            let mut error = http_error.into_connector_error();
            error.message =
                RString::from(format!("request to KIAS for procedure {procedure} failed: {}", error.message));
            error
        })?;

        let data = soap::read_response(&response)?;
        read_data(&data).map_err(|reason| {
            ConnectorError::transient(format!("KIAS returned an unexpected data document for {procedure}: {reason}"))
                .with_code(soap::MALFORMED_RESPONSE)
        })
    }

    /// Replaces the password, its hash and `sid` in the error's message and code.
    fn redact(&self, mut error: ConnectorError, sid: &str) -> ConnectorError {
        let secrets = [sid, self.password.as_str(), self.password_hash.as_str()];
        let mut message = error.message.to_string();
        let mut code = error.code.to_string();
        for secret in secrets.into_iter().filter(|secret| !secret.is_empty()) {
            message = message.replace(secret, REDACTED);
            code = code.replace(secret, REDACTED);
        }
        error.message = RString::from(message);
        error.code = RString::from(code);
        error
    }

    fn lock_session(&self) -> MutexGuard<'_, Option<Session>> {
        // The guarded value is replaced whole, so a poisoned lock still guards a usable session.
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Returns the SHA-512 of `password` in lowercase hex, as KIAS expects in `Pwd`.
pub fn password_hash(password: &str) -> String {
    hex::encode(Sha512::digest(password.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_sha512_hex() {
        assert_eq!(
            password_hash("abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }
}
