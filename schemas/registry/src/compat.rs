//! JSON Schema compatibility: can a reader schema accept every document a writer schema accepts?
//!
//! BACKWARD asks it of (new reader, old writer), FORWARD of (old reader, new writer), FULL of both.
//! The check is conservative: where it cannot prove that the reader accepts everything the writer
//! does, it reports a problem. With a closed content model (`additionalProperties: false`) a new
//! optional property is compatible; a new required property, a removed property, a narrowed type
//! or a tighter constraint is not.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The compatibility levels of Confluent's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// No check.
    None,
    /// The new schema reads what the latest one wrote.
    Backward,
    /// The new schema reads what every earlier one wrote.
    BackwardTransitive,
    /// The latest schema reads what the new one writes.
    Forward,
    /// Every earlier schema reads what the new one writes.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every earlier one.
    FullTransitive,
}

impl CompatibilityLevel {
    /// Whether every earlier version is checked, not only the latest.
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Problems that make `new` incompatible with `old` at this level; empty means compatible.
    pub fn problems(self, new: &Value, old: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        let backward = matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        );
        let forward = matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        );
        if backward {
            reads(new, old, "#", &mut problems);
        }
        if forward {
            let mut forward_problems = Vec::new();
            reads(old, new, "#", &mut forward_problems);
            problems.extend(
                forward_problems
                    .into_iter()
                    .map(|p| format!("forward: {p}")),
            );
        }
        problems
    }
}

/// Keywords this checker understands; any other keyword must be identical on both sides.
const UNDERSTOOD: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "title",
    "description",
    "$comment",
    "examples",
    "default",
    "format",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
];

/// Appends to `problems` every way in which `reader` may reject a document `writer` accepts.
fn reads(reader: &Value, writer: &Value, path: &str, problems: &mut Vec<String>) {
    let (reader, writer) = match (reader, writer) {
        (Value::Bool(true), _) | (_, Value::Bool(false)) => return,
        (Value::Bool(false), _) => {
            problems.push(format!("{path}: the new schema accepts nothing"));
            return;
        }
        (Value::Object(reader), Value::Bool(true)) => {
            if !is_unconstrained(reader) {
                problems.push(format!(
                    "{path}: the old schema accepted anything, the new one does not"
                ));
            }
            return;
        }
        (Value::Object(reader), Value::Object(writer)) => (reader, writer),
        _ => {
            problems.push(format!("{path}: not a JSON Schema"));
            return;
        }
    };

    for (keyword, value) in reader.iter().chain(writer.iter()) {
        if !UNDERSTOOD.contains(&keyword.as_str()) && reader.get(keyword) != writer.get(keyword) {
            problems.push(format!(
                "{path}: keyword {keyword:?} changed, which this registry cannot check"
            ));
            let _ = value;
        }
    }

    check_types(reader, writer, path, problems);
    check_enum(reader, writer, path, problems);
    for keyword in ["pattern", "format"] {
        if reader.get(keyword).is_some() && reader.get(keyword) != writer.get(keyword) {
            problems.push(format!("{path}: {keyword} was added or changed"));
        }
    }
    for keyword in [
        "minLength",
        "minimum",
        "exclusiveMinimum",
        "minItems",
        "minProperties",
    ] {
        check_bound(reader, writer, keyword, Bound::Lower, path, problems);
    }
    for keyword in [
        "maxLength",
        "maximum",
        "exclusiveMaximum",
        "maxItems",
        "maxProperties",
    ] {
        check_bound(reader, writer, keyword, Bound::Upper, path, problems);
    }
    check_properties(reader, writer, path, problems);
    match (reader.get("items"), writer.get("items")) {
        (Some(r), Some(w)) => reads(r, w, &format!("{path}/items"), problems),
        (Some(r), None) => reads(r, &Value::Bool(true), &format!("{path}/items"), problems),
        _ => {}
    }
}

fn is_unconstrained(schema: &Map<String, Value>) -> bool {
    schema.keys().all(|k| {
        matches!(
            k.as_str(),
            "$schema"
                | "$id"
                | "id"
                | "title"
                | "description"
                | "$comment"
                | "examples"
                | "default"
        )
    })
}

fn type_set(schema: &Map<String, Value>) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(types) => Some(types.iter().filter_map(Value::as_str).collect()),
        _ => Some(Vec::new()),
    }
}

fn check_types(
    reader: &Map<String, Value>,
    writer: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    let Some(reader_types) = type_set(reader) else {
        return;
    };
    let Some(writer_types) = type_set(writer) else {
        problems.push(format!(
            "{path}: the type was restricted to {reader_types:?}"
        ));
        return;
    };
    for written in writer_types {
        let accepted = reader_types.contains(&written)
            || (written == "integer" && reader_types.contains(&"number"));
        if !accepted {
            problems.push(format!(
                "{path}: type {written:?} is no longer accepted (now {reader_types:?})"
            ));
        }
    }
}

fn check_enum(
    reader: &Map<String, Value>,
    writer: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    let allowed = |schema: &Map<String, Value>| -> Option<Vec<Value>> {
        if let Some(Value::Array(values)) = schema.get("enum") {
            return Some(values.clone());
        }
        schema.get("const").map(|c| vec![c.clone()])
    };
    let Some(reader_values) = allowed(reader) else {
        return;
    };
    match allowed(writer) {
        None => problems.push(format!("{path}: an enum or const was added")),
        Some(writer_values) => {
            for value in writer_values.iter().filter(|v| !reader_values.contains(v)) {
                problems.push(format!("{path}: value {value} is no longer allowed"));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Bound {
    Lower,
    Upper,
}

fn check_bound(
    reader: &Map<String, Value>,
    writer: &Map<String, Value>,
    keyword: &str,
    bound: Bound,
    path: &str,
    problems: &mut Vec<String>,
) {
    let Some(reader_limit) = reader.get(keyword).and_then(Value::as_f64) else {
        return;
    };
    let tighter = match (writer.get(keyword).and_then(Value::as_f64), bound) {
        (None, _) => true,
        (Some(writer_limit), Bound::Lower) => reader_limit > writer_limit,
        (Some(writer_limit), Bound::Upper) => reader_limit < writer_limit,
    };
    if tighter {
        problems.push(format!("{path}: {keyword} was added or tightened"));
    }
}

fn string_set(schema: &Map<String, Value>, keyword: &str) -> Vec<String> {
    match schema.get(keyword) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn check_properties(
    reader: &Map<String, Value>,
    writer: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    let empty = Map::new();
    let reader_props = reader
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let writer_props = writer
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let open = Value::Bool(true);
    let reader_extra = reader.get("additionalProperties").unwrap_or(&open);
    let writer_extra = writer.get("additionalProperties").unwrap_or(&open);

    let writer_required = string_set(writer, "required");
    for required in string_set(reader, "required") {
        if !writer_required.contains(&required) {
            problems.push(format!("{path}: property {required:?} is newly required"));
        }
    }
    for (name, reader_schema) in reader_props {
        let at = format!("{path}/properties/{name}");
        match writer_props.get(name) {
            Some(writer_schema) => reads(reader_schema, writer_schema, &at, problems),
            // The old schema's extra properties could hold anything under this name.
            None => reads(reader_schema, writer_extra, &at, problems),
        }
    }
    for (name, writer_schema) in writer_props {
        if !reader_props.contains_key(name) {
            let at = format!("{path}/properties/{name}");
            if reader_extra == &Value::Bool(false) {
                problems.push(format!(
                    "{at}: property {name:?} was removed from a closed content model"
                ));
            } else {
                reads(reader_extra, writer_schema, &at, problems);
            }
        }
    }
    reads(
        reader_extra,
        writer_extra,
        &format!("{path}/additionalProperties"),
        problems,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_schemas::event::{SCHEMA_V1, SCHEMA_V2};
    use serde_json::json;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn v2_is_backward_compatible_with_v1() {
        let problems = CompatibilityLevel::Backward.problems(&parse(SCHEMA_V2), &parse(SCHEMA_V1));
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_new_required_field_is_not_backward_compatible() {
        let mut v3 = parse(SCHEMA_V2);
        v3["properties"]["currency"] = json!({"type": "string"});
        v3["required"] = json!(["name", "price", "bid_ts", "currency"]);
        let problems = CompatibilityLevel::Backward.problems(&v3, &parse(SCHEMA_V2));
        assert_eq!(problems, ["#: property \"currency\" is newly required"]);
    }

    #[test]
    fn a_changed_type_is_not_backward_compatible_but_widening_is() {
        let mut narrowed = parse(SCHEMA_V1);
        narrowed["properties"]["price"] = json!({"type": "string"});
        assert_eq!(
            CompatibilityLevel::Backward
                .problems(&narrowed, &parse(SCHEMA_V1))
                .len(),
            1
        );
        let mut widened = parse(SCHEMA_V1);
        widened["properties"]["price"] = json!({"type": "number"});
        assert!(
            CompatibilityLevel::Backward
                .problems(&widened, &parse(SCHEMA_V1))
                .is_empty()
        );
        // ...but a reader of integers cannot take the widened numbers.
        assert!(
            !CompatibilityLevel::Forward
                .problems(&widened, &parse(SCHEMA_V1))
                .is_empty()
        );
    }

    #[test]
    fn removing_a_property_from_a_closed_model_is_not_backward_compatible() {
        let mut removed = parse(SCHEMA_V2);
        removed["properties"]
            .as_object_mut()
            .unwrap()
            .remove("bid_id");
        let problems = CompatibilityLevel::Backward.problems(&removed, &parse(SCHEMA_V2));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("bid_id"));
    }

    #[test]
    fn adding_a_property_to_an_open_model_is_not_provably_compatible() {
        let old = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let new = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}});
        assert!(!CompatibilityLevel::Backward.problems(&new, &old).is_empty());
    }

    #[test]
    fn none_accepts_anything_and_full_checks_both_ways() {
        let v1 = parse(SCHEMA_V1);
        let unrelated = json!({"type": "string"});
        assert!(
            CompatibilityLevel::None
                .problems(&unrelated, &v1)
                .is_empty()
        );
        // v2 reads v1 data, and v1 cannot read v2 data that carries auction_id.
        let full = CompatibilityLevel::Full.problems(&parse(SCHEMA_V2), &v1);
        assert!(
            !full.is_empty() && full.iter().all(|p| p.starts_with("forward:")),
            "{full:?}"
        );
    }
}
