//! Conversion of a KIAS `result` element into the JSON reply that the gateway stores.
//!
//! - An element with child elements becomes an object keyed by the lowercased child names
//!   (`POLICYISN` → `policyisn`), and children with the same name become an array.
//! - A `ROWSET` becomes an array of its `row` children. An element whose only child is a
//!   `ROWSET` becomes that array itself.
//! - A leaf becomes its trimmed text, with `dd.mm.yyyy` dates turned into ISO dates, or `null` when
//!   the text is blank. Every other value stays a string, so ISNs and amounts keep their digits.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::values::kias_to_iso;
use crate::xml::Element;

/// Converts an element by the rules of this module.
pub fn element_to_json(element: &Element) -> Value {
    if element.is("ROWSET") {
        return rowset_to_json(element);
    }
    if let [only] = element.children.as_slice() {
        if only.is("ROWSET") {
            return rowset_to_json(only);
        }
    }
    if element.children.is_empty() {
        return leaf_to_json(&element.text);
    }

    let mut repeats: HashMap<String, usize> = HashMap::new();
    for child in &element.children {
        *repeats.entry(child.name.to_lowercase()).or_default() += 1;
    }

    let mut object = Map::new();
    for child in &element.children {
        let key = child.name.to_lowercase();
        let value = element_to_json(child);
        if repeats[&key] > 1 {
            let list = object.entry(key).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(values) = list {
                values.push(value);
            }
        } else {
            object.insert(key, value);
        }
    }
    Value::Object(object)
}

fn rowset_to_json(rowset: &Element) -> Value {
    let rows = rowset.children.iter().filter(|row| row.is("row")).map(element_to_json).collect();
    Value::Array(rows)
}

fn leaf_to_json(text: &str) -> Value {
    let text = text.trim();
    if text.is_empty() {
        return Value::Null;
    }
    match kias_to_iso(text) {
        Some(iso) => Value::String(iso),
        None => Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(xml: &str) -> Value {
        element_to_json(&Element::parse_document(xml).unwrap())
    }

    #[test]
    fn record_converted() {
        let value = convert(
            "<result><ISN>3366101</ISN><SERIES>7000</SERIES><AMOUNT>12500.50</AMOUNT>\
             <DATEPAY>01.03.2025</DATEPAY><CREATED>01.03.2025 14:05:09</CREATED><PAYER>Иванов &amp; сын</PAYER>\
             <NOTE/><FLAG>Y</FLAG><BADDATE>31.02.2025</BADDATE></result>",
        );

        assert_eq!(
            value,
            json!({
                "isn": "3366101",
                "series": "7000",
                "amount": "12500.50",
                "datepay": "2025-03-01",
                "created": "2025-03-01T14:05:09",
                "payer": "Иванов & сын",
                "note": null,
                "flag": "Y",
                "baddate": "31.02.2025"
            })
        );
    }

    #[test]
    fn rowset_becomes_array() {
        let value = convert(
            "<result><ROWSET><row><ISN>1</ISN><NAME>ВАЗ</NAME></row><row><ISN>2</ISN><NAME/></row></ROWSET></result>",
        );

        assert_eq!(value, json!([{"isn": "1", "name": "ВАЗ"}, {"isn": "2", "name": null}]));
    }

    #[test]
    fn empty_rowset_is_empty_array() {
        assert_eq!(convert("<result><ROWSET/></result>"), json!([]));
        assert_eq!(convert("<result><ROWSET>\n</ROWSET></result>"), json!([]));
    }

    #[test]
    fn nested_rowset_under_record() {
        let value = convert(
            "<result><ISN>5</ISN><ITEMS><ROWSET><row><N>1</N></row></ROWSET></ITEMS>\
             <ROWSET><row>a</row><row>b</row></ROWSET></result>",
        );

        assert_eq!(value, json!({"isn": "5", "items": [{"n": "1"}], "rowset": ["a", "b"]}));
    }

    #[test]
    fn repeated_children_become_array() {
        let value = convert("<result><PHONE>1</PHONE><PHONE>2</PHONE><PHONE>3</PHONE><X>x</X></result>");

        assert_eq!(value, json!({"phone": ["1", "2", "3"], "x": "x"}));
    }

    #[test]
    fn repeated_rowsets_stay_separate() {
        let value = convert(
            "<result><LIST><ROWSET><row>a</row></ROWSET></LIST><LIST><ROWSET><row>b</row></ROWSET></LIST></result>",
        );

        assert_eq!(value, json!({"list": [["a"], ["b"]]}));
    }

    #[test]
    fn blank_result_is_null() {
        assert_eq!(convert("<result>  </result>"), Value::Null);
        assert_eq!(convert("<result/>"), Value::Null);
    }

    #[test]
    fn whitespace_trimmed_in_leaves() {
        let value = convert("<result>\n  <ISN>\n 42 \n</ISN>\n</result>");

        assert_eq!(value, json!({"isn": "42"}));
    }
}
