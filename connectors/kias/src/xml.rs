//! Owned XML element tree, parsed with roxmltree and detached from the source text.

/// Maximum element nesting of a KIAS document. Deeper documents are rejected before the recursive
/// conversions in this crate could exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// An XML element: its local name, its own text and its child elements. Attributes, comments and
/// processing instructions are dropped, because KIAS documents carry no data in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    /// Local name, without a namespace prefix.
    pub name: String,
    /// Concatenated text and CDATA of the element's own text nodes, entities resolved.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// Creates an element with text and no children.
    pub fn text(name: &str, text: &str) -> Self {
        Element { name: name.to_string(), text: text.to_string(), children: Vec::new() }
    }

    /// Parses a document and returns its root element.
    ///
    /// Errors are human-readable descriptions: roxmltree's message with line and column, or the
    /// depth limit.
    pub fn parse_document(text: &str) -> Result<Element, String> {
        check_depth(text)?;
        let document = roxmltree::Document::parse(text).map_err(|error| error.to_string())?;
        Element::from_node(document.root_element(), 1)
    }

    fn from_node(node: roxmltree::Node<'_, '_>, depth: usize) -> Result<Element, String> {
        if depth > MAX_DEPTH {
            return Err(format!("elements are nested deeper than {MAX_DEPTH} levels"));
        }

        let mut element =
            Element { name: node.tag_name().name().to_string(), text: String::new(), children: Vec::new() };
        for child in node.children() {
            if child.is_element() {
                element.children.push(Element::from_node(child, depth + 1)?);
            } else if child.is_text() {
                element.text.push_str(child.text().unwrap_or_default());
            }
        }
        Ok(element)
    }

    /// Returns the first child named `name`, compared without regard to ASCII case, because KIAS
    /// installations differ in the case of structural names (`ROWSET`, `Rowset`).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.name.eq_ignore_ascii_case(name))
    }

    /// Returns the trimmed text of the child named `name`, or `None` when the child is missing or
    /// its text is blank.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        let text = self.child(name)?.text.trim();
        (!text.is_empty()).then_some(text)
    }

    /// Checks the local name without regard to ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Returns the rows of a `ROWSET` child, or of this element when it is the `ROWSET` itself.
    pub fn rows(&self) -> Option<Vec<&Element>> {
        let rowset = if self.is("ROWSET") { self } else { self.child("ROWSET")? };
        Some(rowset.children.iter().filter(|row| row.is("row")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_text_and_children() {
        let root = Element::parse_document(
            "<?xml version=\"1.0\" encoding=\"windows-1251\"?>\
             <soap:a xmlns:soap=\"urn:x\" id=\"1\"><!-- c --><b>x &amp; <![CDATA[<y>]]></b><c/></soap:a>",
        )
        .unwrap();

        assert_eq!(root.name, "a");
        assert_eq!(root.children, vec![Element::text("b", "x & <y>"), Element::text("c", "")]);
    }

    #[test]
    fn child_lookup_ignores_case() {
        let root = Element::parse_document("<data><Result><ISN> 12 </ISN><EMPTY> </EMPTY></Result></data>").unwrap();

        let result = root.child("result").unwrap();

        assert_eq!(result.child_text("isn"), Some("12"));
        assert_eq!(result.child_text("EMPTY"), None);
        assert_eq!(result.child_text("MISSING"), None);
    }

    #[test]
    fn rows_found_under_rowset() {
        let root =
            Element::parse_document("<result><ROWSET><row><A>1</A></row><x/><ROW><A>2</A></ROW></ROWSET></result>")
                .unwrap();

        let rows = root.rows().unwrap();

        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].child_text("A"), Some("2"));
        assert!(Element::text("result", "").rows().is_none());
    }

    #[test]
    fn deep_nesting_rejected() {
        let depth = MAX_DEPTH + 1;
        let text = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));

        let error = Element::parse_document(&text).unwrap_err();

        assert!(error.contains("deeper than 64"), "{error}");
        assert!(Element::parse_document(&format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH))).is_ok());
    }

    #[test]
    fn malformed_document_error_has_position() {
        let error = Element::parse_document("<data><result></data>").unwrap_err();

        assert!(error.contains("1:"), "{error}");
    }

    #[test]
    fn dtd_rejected() {
        let error = Element::parse_document("<!DOCTYPE d [<!ENTITY e \"x\">]><d>&e;</d>").unwrap_err();

        assert!(!error.is_empty());
    }
}

/// Rejects a document nested deeper than [`MAX_DEPTH`] before roxmltree parses it: roxmltree
/// recurses once per level, so a few thousand levels would overflow the thread's stack and abort
/// the whole engine, which no panic guard can catch. A document that is malformed in other ways
/// passes here, so that roxmltree reports the error.
fn check_depth(text: &str) -> Result<(), String> {
    use quick_xml::events::Event;

    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("elements are nested deeper than {MAX_DEPTH} levels"));
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Eof) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}
