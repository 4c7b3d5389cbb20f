//! State of the mock KIAS: credentials, sessions, stored receipts, payments and notifications,
//! the fault mode, the response encoding and request counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha512};

use super::encoding::ResponseEncoding;
use super::KiasOptions;

/// Fault mode of the mock KIAS, switched at runtime by `PUT /_mock/kias/mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KiasMode {
    /// Requests get the responses that the protocol describes.
    Normal,
    /// Requests get HTTP 500 with a SOAP Fault and have no effect.
    Fault,
    /// Requests get HTTP 502 with an HTML page, as from a proxy, and have no effect.
    Html502,
    /// The connection is closed without a response, and the request has no effect.
    Reset,
    /// Requests have no effect and get HTTP 200 with an envelope cut in half.
    Malformed,
    /// Requests get the `Normal` responses after the configured delay.
    Slow,
    /// Requests take effect, then get HTTP 502 with an HTML page, so the client cannot know.
    FailAfterCommit,
}

impl KiasMode {
    const ALL: [KiasMode; 7] = [
        KiasMode::Normal,
        KiasMode::Fault,
        KiasMode::Html502,
        KiasMode::Reset,
        KiasMode::Malformed,
        KiasMode::Slow,
        KiasMode::FailAfterCommit,
    ];

    /// Returns the name used in the control API's JSON.
    pub fn name(self) -> &'static str {
        match self {
            KiasMode::Normal => "normal",
            KiasMode::Fault => "fault",
            KiasMode::Html502 => "html_502",
            KiasMode::Reset => "reset",
            KiasMode::Malformed => "malformed",
            KiasMode::Slow => "slow",
            KiasMode::FailAfterCommit => "fail_after_commit",
        }
    }

    /// Returns the mode named `name`, or `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.name() == name)
    }

    /// Returns the valid names, comma-separated, for error messages.
    pub fn valid_names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|mode| mode.name()).collect();
        names.join(", ")
    }
}

/// The current fault mode and its limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    pub mode: KiasMode,
    /// Delay of the `slow` mode.
    pub delay: Duration,
    /// Number of requests still affected before the mode returns to `normal`, or `None` for
    /// every request until the mode is changed.
    pub remaining: Option<u64>,
    /// The only procedure affected, such as `User_A7Create`, or `None` to affect every procedure.
    pub procedure: Option<String>,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            mode: KiasMode::Normal,
            delay: Duration::ZERO,
            remaining: None,
            procedure: None,
        }
    }
}

/// An A-7 receipt, as `GET /_mock/kias/state` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Receipt {
    pub isn: String,
    pub series: String,
    pub number: String,
    pub status: String,
    pub agent_isn: String,
    pub policy_isn: String,
    pub amount: String,
    pub payer: String,
    /// Payment date, `dd.mm.yyyy`.
    pub date_pay: String,
    pub external_key: String,
    /// Registration time, `dd.mm.yyyy hh:mm:ss`.
    pub created: String,
}

/// A payment confirmation, as `GET /_mock/kias/state` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Confirmation {
    pub payment_isn: String,
    pub amount: String,
    /// Payment date, `dd.mm.yyyy`.
    pub date_pay: String,
    pub policy_isn: String,
    pub document: String,
    pub external_key: String,
    /// Confirmation time, `dd.mm.yyyy hh:mm:ss`.
    pub confirmed: String,
}

/// A stored notification, as `GET /_mock/kias/state` lists it.
#[derive(Clone, Debug, Serialize)]
pub struct Notification {
    pub isn: String,
    pub event: String,
    /// Every parameter except `Sid`, converted to JSON.
    pub params: serde_json::Value,
    /// Receive time, `dd.mm.yyyy hh:mm:ss`.
    pub received: String,
}

/// Everything that `POST /_mock/kias/reset` returns to its start value.
#[derive(Debug)]
pub struct Runtime {
    pub sessions: HashMap<String, Instant>,
    pub auth_count: u64,
    pub requests: u64,
    pub requests_by_version: BTreeMap<&'static str, u64>,
    pub calls_by_procedure: BTreeMap<String, u64>,
    pub receipts: Vec<Receipt>,
    pub confirmations: BTreeMap<String, Confirmation>,
    pub notifications: Vec<Notification>,
    pub next_isn: u64,
    pub fault: FaultPlan,
    pub encoding: ResponseEncoding,
}

/// First ISN that the mock assigns to receipts and notifications.
const FIRST_ASSIGNED_ISN: u64 = 8_800_001;

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            sessions: HashMap::new(),
            auth_count: 0,
            requests: 0,
            requests_by_version: BTreeMap::new(),
            calls_by_procedure: BTreeMap::new(),
            receipts: Vec::new(),
            confirmations: BTreeMap::new(),
            notifications: Vec::new(),
            next_isn: FIRST_ASSIGNED_ISN,
            fault: FaultPlan::default(),
            encoding: ResponseEncoding::Utf8,
        }
    }
}

impl Runtime {
    /// Returns a new ISN for a stored record.
    pub fn assign_isn(&mut self) -> String {
        let isn = self.next_isn;
        self.next_isn += 1;
        isn.to_string()
    }

    /// Opens a session that lasts `lifetime` and returns its `Sid`.
    pub fn open_session(&mut self, lifetime: Duration) -> String {
        let sid = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        self.sessions.insert(sid.clone(), Instant::now() + lifetime);
        self.auth_count += 1;
        sid
    }

    /// Checks that `sid` names a live session, and removes it once expired.
    pub fn session_is_live(&mut self, sid: &str) -> bool {
        match self.sessions.get(sid) {
            Some(expires_at) if *expires_at > Instant::now() => true,
            Some(_) => {
                self.sessions.remove(sid);
                false
            }
            None => false,
        }
    }

    /// Returns the fault to apply to a call of `procedure`, and counts it down.
    pub fn take_fault(&mut self, procedure: &str) -> Option<(KiasMode, Duration)> {
        let plan = &mut self.fault;
        if plan.mode == KiasMode::Normal {
            return None;
        }
        if plan
            .procedure
            .as_deref()
            .is_some_and(|only| only != procedure)
        {
            return None;
        }

        let applied = (plan.mode, plan.delay);
        if let Some(remaining) = plan.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                *plan = FaultPlan::default();
            }
        }
        Some(applied)
    }
}

/// Credentials of the mock KIAS.
#[derive(Debug)]
struct Credentials {
    user: String,
    /// SHA-512 of the password, lowercase hex.
    password_hash: String,
    session_lifetime: Duration,
}

/// State shared by all handlers of the mock KIAS.
#[derive(Clone, Debug)]
pub struct KiasState {
    credentials: Arc<Credentials>,
    runtime: Arc<Mutex<Runtime>>,
}

impl KiasState {
    /// Creates the state with the credentials and the session lifetime from the command line.
    pub fn new(options: &KiasOptions) -> Self {
        let password_hash = hex_lower(&Sha512::digest(options.kias_password.as_bytes()));
        KiasState {
            credentials: Arc::new(Credentials {
                user: options.kias_user.clone(),
                password_hash,
                session_lifetime: Duration::from_secs(options.kias_session_lifetime),
            }),
            runtime: Arc::new(Mutex::new(Runtime::default())),
        }
    }

    /// Checks a user name and a password hash (hex, either case) against the configured ones.
    pub fn credentials_match(&self, user: &str, password_hash: &str) -> bool {
        user == self.credentials.user
            && password_hash.eq_ignore_ascii_case(&self.credentials.password_hash)
    }

    /// Returns the lifetime of new sessions.
    pub fn session_lifetime(&self) -> Duration {
        self.credentials.session_lifetime
    }

    /// Locks the runtime state.
    pub fn lock(&self) -> MutexGuard<'_, Runtime> {
        // Each update under the lock writes whole values, so the state stays usable even if a
        // panic poisoned the lock.
        self.runtime.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Returns the current local time as KIAS writes it, `dd.mm.yyyy hh:mm:ss`.
pub fn kias_now() -> String {
    chrono::Local::now().format("%d.%m.%Y %H:%M:%S").to_string()
}
