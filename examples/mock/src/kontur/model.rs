//! Values that the mock Kontur stores and returns: boxes, messages and document details.

use serde::Serialize;

use super::{CLINIC_MEDI_ID, INSURER_MEDI_ID};

/// One box that the mock serves, as `GET /V2/parties` lists it.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Party {
    pub medi_id: &'static str,
    pub name: &'static str,
    pub inn: &'static str,
    pub kpp: &'static str,
    pub party_type: &'static str,
}

/// The boxes that the client credentials may use. Any other mediId gets `HasNoAccessToMediId`.
pub const PARTIES: [Party; 2] = [
    Party {
        medi_id: INSURER_MEDI_ID,
        name: "АО «Страховая компания UIG-Демо»",
        inn: "7700000001",
        kpp: "770001001",
        party_type: "Insurer",
    },
    Party {
        medi_id: CLINIC_MEDI_ID,
        name: "ООО «Клиника Демо»",
        inn: "6600000002",
        kpp: "660001001",
        party_type: "Clinic",
    },
];

/// Returns the served box with id `medi_id`, compared without regard to case.
pub fn party(medi_id: &str) -> Option<&'static Party> {
    PARTIES
        .iter()
        .find(|party| party.medi_id.eq_ignore_ascii_case(medi_id.trim()))
}

/// Details of a document, `meta.documentDetails` of a message. Messages posted through the API
/// have none, because the mock does not parse their content.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentDetails {
    pub document_type: Option<String>,
    pub document_number: Option<String>,
    pub document_date: Option<String>,
}

/// One message in a box.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub message_id: String,
    pub medi_id: &'static str,
    pub sender_medi_id: &'static str,
    pub recipient_medi_id: Option<&'static str>,
    pub direction: &'static str,
    pub document_circulation_id: String,
    pub sent_date_time: String,
    pub details: DocumentDetails,
    pub content_base64: String,
}

/// Ids of a message that was stored and announced by an event.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredIds {
    pub medi_id: String,
    pub message_id: String,
    pub document_circulation_id: String,
    pub event_id: String,
    pub event_pointer: String,
    pub document_number: Option<String>,
}

/// An inbound document to inject, with the type and date defaults already applied.
#[derive(Clone, Debug)]
pub struct InboundDocument {
    pub medi_id: &'static str,
    pub details: DocumentDetails,
    pub text: Option<String>,
    pub event_date_time: Option<String>,
}

/// Builds the text of an injected document that the request gave none for.
pub fn default_text(details: &DocumentDetails) -> String {
    format!(
        "{} {} of {} (uig-mock document)",
        details.document_type.as_deref().unwrap_or("Document"),
        details.document_number.as_deref().unwrap_or("-"),
        details.document_date.as_deref().unwrap_or("-"),
    )
}
