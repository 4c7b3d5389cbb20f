//! Owned XML elements of the mock KIAS: parsed from requests and written into responses.

use std::io;

use quick_xml::events::BytesText;
use quick_xml::Writer;

/// Maximum element nesting accepted in a request document.
const MAX_DEPTH: usize = 64;

/// An element with its local name, its own text and its child elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XmlNode {
    /// Local name, without a namespace prefix.
    pub name: String,
    /// Concatenated text of the element's own text nodes.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<XmlNode>,
}

impl XmlNode {
    /// Creates an element with text.
    pub fn text(name: &str, text: impl Into<String>) -> Self {
        XmlNode {
            name: name.to_owned(),
            text: text.into(),
            children: Vec::new(),
        }
    }

    /// Creates an element with children.
    pub fn parent(name: &str, children: Vec<XmlNode>) -> Self {
        XmlNode {
            name: name.to_owned(),
            text: String::new(),
            children,
        }
    }

    /// Creates a `ROWSET` element whose `row` children contain `rows`.
    pub fn rowset(rows: Vec<Vec<XmlNode>>) -> Self {
        let rows = rows
            .into_iter()
            .map(|fields| XmlNode::parent("row", fields))
            .collect();
        XmlNode::parent("ROWSET", rows)
    }

    /// Copies a roxmltree element, or returns an error when it is nested deeper than 64 levels.
    pub fn from_roxmltree(node: roxmltree::Node<'_, '_>) -> Result<Self, String> {
        Self::copy(node, 1)
    }

    fn copy(node: roxmltree::Node<'_, '_>, depth: usize) -> Result<Self, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "elements are nested deeper than {MAX_DEPTH} levels"
            ));
        }
        let mut copied = XmlNode {
            name: node.tag_name().name().to_owned(),
            ..XmlNode::default()
        };
        for child in node.children() {
            if child.is_element() {
                copied.children.push(Self::copy(child, depth + 1)?);
            } else if child.is_text() {
                copied.text.push_str(child.text().unwrap_or_default());
            }
        }
        Ok(copied)
    }

    /// Returns the first child with the local name `name`.
    pub fn child(&self, name: &str) -> Option<&XmlNode> {
        self.children.iter().find(|child| child.name == name)
    }

    /// Returns the trimmed text of the child `name`, or `None` when it is missing or blank.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        let text = self.child(name)?.text.trim();
        (!text.is_empty()).then_some(text)
    }

    /// Writes the element, with text escaped by quick-xml.
    pub fn write(&self, writer: &mut Writer<Vec<u8>>) -> io::Result<()> {
        let element = writer.create_element(self.name.as_str());
        if self.children.is_empty() {
            if self.text.is_empty() {
                element.write_empty()?;
            } else {
                element.write_text_content(BytesText::new(&self.text))?;
            }
            return Ok(());
        }
        element.write_inner_content(|writer| {
            for child in &self.children {
                child.write(writer)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Converts the element into JSON for the control API: text for a leaf, an array for a
    /// `ROWSET`, and an object keyed by child names otherwise.
    pub fn to_json(&self) -> serde_json::Value {
        if self.name == "ROWSET" {
            return self.children.iter().map(XmlNode::to_json).collect();
        }
        if self.children.is_empty() {
            return serde_json::Value::String(self.text.clone());
        }
        let members = self
            .children
            .iter()
            .map(|child| (child.name.clone(), child.to_json()))
            .collect();
        serde_json::Value::Object(members)
    }
}
