//! `fetch_directory`: a breadth-first walk of a KIAS directory tree with `GETDICTILIST`.
//!
//! Each page is one `GETDICTILIST` call for the next node in the queue, and returns that node's
//! children. The page token carries the queue of nodes still to read, so the walk needs no state
//! in the connector and survives an engine restart between pages.

use serde_json::json;
use uig_connector_api::reexports::{ROption, RString, RVec};
use uig_connector_api::{ConnectorError, DirectoryEntry, DirectoryPage, DirectoryRequest};

use crate::client::{Call, KiasClient};
use crate::params::Param;
use crate::soap::MALFORMED_RESPONSE;
use crate::values::is_isn;
use crate::xml::Element;

/// The KIAS procedure that lists the children of a directory node.
pub const LIST_PROCEDURE: &str = "GETDICTILIST";

/// Deepest level whose children are read, where the root's children are level 1. Deeper entries are
/// returned without their children, which stops a walk through a cyclic tree.
pub const MAX_DEPTH: u32 = 8;

/// Error code of a page token that this connector did not issue.
pub const INVALID_PAGE_TOKEN: &str = "invalid_page_token";

/// A node still to read: its ISN and its level (0 for the directory's root).
#[derive(Clone, Debug, PartialEq, Eq)]
struct QueuedNode {
    isn: String,
    depth: u32,
}

/// Reads one page of the directory `request.directory`, whose root is `root_isn`.
pub fn fetch_page(
    client: &KiasClient,
    directory: &str,
    root_isn: u64,
    request: &DirectoryRequest,
) -> Result<DirectoryPage, ConnectorError> {
    let mut queue = match request.page_token.as_ref().into_option() {
        Some(token) => parse_token(token, directory)?,
        None => vec![QueuedNode { isn: root_isn.to_string(), depth: 0 }],
    };
    if queue.is_empty() {
        return Ok(DirectoryPage { entries: RVec::new(), next_page_token: ROption::RNone });
    }
    let node = queue.remove(0);

    let params = [Param::text("DictiISN", node.isn.as_str())];
    let context = format!("directory={directory} DictiISN={}", node.isn);
    let result =
        client.exec(&Call { procedure: LIST_PROCEDURE, params: &params, idempotent: true, context: &context })?;

    let mut entries = Vec::new();
    for row in list_rows(&result)? {
        let entry = entry_from_row(row, &node)?;
        if node.depth + 1 < MAX_DEPTH && may_have_children(row) {
            queue.push(QueuedNode { isn: entry.code.to_string(), depth: node.depth + 1 });
        }
        entries.push(entry);
    }

    let next_page_token =
        if queue.is_empty() { ROption::RNone } else { ROption::RSome(RString::from(write_token(&queue, directory))) };
    Ok(DirectoryPage { entries: RVec::from(entries), next_page_token })
}

/// Returns the rows of a `GETDICTILIST` result, none for a blank result.
fn list_rows(result: &Element) -> Result<Vec<&Element>, ConnectorError> {
    if let Some(rows) = result.rows() {
        return Ok(rows);
    }
    if result.children.is_empty() && result.text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Err(unexpected("the result has no ROWSET"))
}

/// Builds the entry of one row. `code` is the ISN, and `name` is the full name, else the short name,
/// else the code. `parent` is the ISN of the node read, none for the root's children. `alt_code`
/// is the row's `CODE` when it is not blank.
fn entry_from_row(row: &Element, node: &QueuedNode) -> Result<DirectoryEntry, ConnectorError> {
    let isn = row
        .child_text("ISN")
        .filter(|isn| is_isn(isn))
        .ok_or_else(|| unexpected(&format!("a row under DictiISN {} has no numeric ISN", node.isn)))?;
    let alt_code = row.child_text("CODE");
    let name = row.child_text("FULLNAME").or_else(|| row.child_text("SHORTNAME")).or(alt_code).unwrap_or(isn);
    let parent = (node.depth > 0).then(|| RString::from(node.isn.as_str()));

    Ok(DirectoryEntry {
        code: RString::from(isn),
        name: RString::from(name),
        parent: parent.into(),
        alt_code: alt_code.map(RString::from).into(),
    })
}

/// Checks whether a row may have children: `N_CHILDREN` above zero, or no `N_CHILDREN` at all,
/// in which case the node is read to find out.
fn may_have_children(row: &Element) -> bool {
    match row.child_text("N_CHILDREN") {
        Some(count) => count.parse::<u64>().map_or(true, |count| count > 0),
        None => true,
    }
}

fn unexpected(reason: &str) -> ConnectorError {
    ConnectorError::transient(format!("KIAS returned an unexpected {LIST_PROCEDURE} result: {reason}"))
        .with_code(MALFORMED_RESPONSE)
}

/// Writes the page token: `{"directory": name, "queue": [[isn, depth], ...]}`.
fn write_token(queue: &[QueuedNode], directory: &str) -> String {
    let nodes: Vec<serde_json::Value> = queue.iter().map(|node| json!([node.isn, node.depth])).collect();
    json!({"directory": directory, "queue": nodes}).to_string()
}

/// Reads a page token written by [`write_token`] for the same directory.
fn parse_token(token: &str, directory: &str) -> Result<Vec<QueuedNode>, ConnectorError> {
    let invalid = |reason: &str| {
        ConnectorError::permanent(format!(
            "page token of directory {directory:?} is invalid because {reason}: start the walk again without a token"
        ))
        .with_code(INVALID_PAGE_TOKEN)
    };

    let value: serde_json::Value = serde_json::from_str(token).map_err(|_| invalid("it is not JSON"))?;
    if value["directory"].as_str() != Some(directory) {
        return Err(invalid("it belongs to another directory"));
    }
    let nodes = value["queue"].as_array().ok_or_else(|| invalid("it has no queue"))?;

    let mut queue = Vec::with_capacity(nodes.len());
    for node in nodes {
        let isn = node[0].as_str().filter(|isn| is_isn(isn));
        let depth = node[1].as_u64().and_then(|depth| u32::try_from(depth).ok()).filter(|depth| *depth < MAX_DEPTH);
        match (isn, depth) {
            (Some(isn), Some(depth)) => queue.push(QueuedNode { isn: isn.to_string(), depth }),
            _ => return Err(invalid("a queued node is not an ISN with a level")),
        }
    }
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip() {
        let queue = vec![
            QueuedNode { isn: "3366101".to_string(), depth: 1 },
            QueuedNode { isn: "3367001".to_string(), depth: 2 },
        ];

        let token = write_token(&queue, "car_make");

        assert_eq!(token, r#"{"directory":"car_make","queue":[["3366101",1],["3367001",2]]}"#);
        assert_eq!(parse_token(&token, "car_make").unwrap(), queue);
    }

    #[test]
    fn foreign_tokens_rejected() {
        let cases = [
            ("not json", "not JSON"),
            (r#"{"directory":"region","queue":[]}"#, "another directory"),
            (r#"{"directory":"car_make"}"#, "no queue"),
            (r#"{"directory":"car_make","queue":[["33a",1]]}"#, "not an ISN"),
            (r#"{"directory":"car_make","queue":[[3366101,1]]}"#, "not an ISN"),
            (r#"{"directory":"car_make","queue":[["3366101",99]]}"#, "not an ISN"),
        ];

        for (token, expected) in cases {
            let error = parse_token(token, "car_make").unwrap_err();

            assert_eq!(error.code.as_str(), INVALID_PAGE_TOKEN, "{token}");
            assert!(error.message.contains(expected), "{token}: {}", error.message);
        }
    }

    #[test]
    fn entry_fields_from_row() {
        let row = Element::parse_document(
            "<row><ISN>3366101</ISN><CODE>VAZ</CODE><SHORTNAME>ВАЗ</SHORTNAME><FULLNAME>LADA (ВАЗ)</FULLNAME></row>",
        )
        .unwrap();

        let top = entry_from_row(&row, &QueuedNode { isn: "2001".to_string(), depth: 0 }).unwrap();
        let nested = entry_from_row(&row, &QueuedNode { isn: "2001".to_string(), depth: 1 }).unwrap();

        assert_eq!(top.code.as_str(), "3366101");
        assert_eq!(top.name.as_str(), "LADA (ВАЗ)");
        assert_eq!(top.parent.into_option(), None);
        assert_eq!(top.alt_code.into_option().map(|code| code.to_string()).as_deref(), Some("VAZ"));
        assert_eq!(nested.parent.into_option().map(|code| code.to_string()).as_deref(), Some("2001"));
    }

    #[test]
    fn entry_name_falls_back() {
        let node = QueuedNode { isn: "1".to_string(), depth: 0 };
        let short =
            Element::parse_document("<row><ISN>5</ISN><CODE> </CODE><SHORTNAME>Кр</SHORTNAME><FULLNAME/></row>")
                .unwrap();
        let code_only = Element::parse_document("<row><ISN>6</ISN><CODE>X</CODE></row>").unwrap();
        let bare = Element::parse_document("<row><ISN>7</ISN></row>").unwrap();

        let short = entry_from_row(&short, &node).unwrap();

        assert_eq!(short.name.as_str(), "Кр");
        assert!(short.alt_code.is_none());
        assert_eq!(entry_from_row(&code_only, &node).unwrap().name.as_str(), "X");
        assert_eq!(entry_from_row(&bare, &node).unwrap().name.as_str(), "7");
    }

    #[test]
    fn row_without_isn_rejected() {
        let row = Element::parse_document("<row><ISN>x1</ISN><FULLNAME>A</FULLNAME></row>").unwrap();

        let error = entry_from_row(&row, &QueuedNode { isn: "2001".to_string(), depth: 0 }).unwrap_err();

        assert_eq!(error.code.as_str(), MALFORMED_RESPONSE);
        assert!(error.message.contains("DictiISN 2001"), "{}", error.message);
    }

    #[test]
    fn children_flag_read() {
        let with = Element::parse_document("<row><N_CHILDREN>3</N_CHILDREN></row>").unwrap();
        let without = Element::parse_document("<row><N_CHILDREN>0</N_CHILDREN></row>").unwrap();
        let unknown = Element::parse_document("<row/>").unwrap();

        assert!(may_have_children(&with));
        assert!(!may_have_children(&without));
        assert!(may_have_children(&unknown));
    }
}
