//! JSON Schema compatibility: can a reader schema accept every document a writer schema accepts?
//!
//! BACKWARD asks it of (new reader, old writer), FORWARD of (old reader, new writer), FULL of both.
//!
//! The check is conservative: it calls a change compatible only when it can show that the reader
//! accepts every document the writer accepts. Where it cannot (a keyword it does not reason about
//! changed, a pattern it cannot compare, a `$ref` it cannot follow, a comparison too large), it
//! reports a problem, so it may refuse a harmless change but never accepts a breaking one. Each
//! schema is read in its own draft: the one its `$schema` names, else draft-07.
//!
//! How: the writer is a conjunction of schema nodes (its `allOf` branches and `$ref` targets joined
//! in). Every constraint of the reader must follow from them, keyword family by keyword family
//! (types, enums, numbers, strings, arrays, objects); the reader's `anyOf`, `oneOf`, `not` and `if`
//! are shown by branch inclusion and disjointness, and the writer's own `anyOf`/`oneOf` is split
//! into cases when that helps. Recursive `$ref`s are assumed to hold when met again only below a
//! step into the document (a property, an item), which makes the argument an induction on the
//! document's depth.
//!
//! With a closed content model (`additionalProperties: false`) a new optional property is
//! compatible; a new required property, a removed property, a narrowed type or a tighter
//! constraint is not.

mod checker;
mod keywords;
mod model;

use jsonschema::Draft;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use auction_schemas::draft::draft_of;

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
            problems.extend(reader_problems(new, old));
        }
        if forward {
            problems.extend(
                reader_problems(old, new)
                    .into_iter()
                    .map(|p| format!("forward: {p}")),
            );
        }
        problems
    }
}

/// Every way in which `reader` may reject a document that `writer` accepts (messages worded for
/// BACKWARD: the reader is "new", the writer "old"); empty when the reader provably accepts every
/// document the writer accepts.
pub fn reader_problems(reader: &Value, writer: &Value) -> Vec<String> {
    if reader == writer && draft_of(reader) != Draft::Unknown {
        // The same schema in the same draft (refs resolve alike in the same text).
        return Vec::new();
    }
    checker::compare(reader, writer)
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

    /// Changes the earlier check accepted although a document breaks them.
    #[test]
    fn changes_a_document_breaks_are_refused() {
        let breaking = [
            // `x1` also matches `^x`: the new schema wants it both a string and an integer.
            (
                json!({"type": "object", "patternProperties": {"^x": {"type": "string"}},
                       "additionalProperties": false}),
                json!({"type": "object", "properties": {"x1": {"type": "integer"}},
                       "patternProperties": {"^x": {"type": "string"}},
                       "additionalProperties": false}),
            ),
            // Draft-4's boolean exclusiveMinimum makes 5 fail.
            (
                json!({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 5}),
                json!({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 5,
                       "exclusiveMinimum": true}),
            ),
            // `a` was evaluated by `properties`; without it, unevaluatedProperties refuses it.
            (
                json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "properties": {"a": {}}, "unevaluatedProperties": false}),
                json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "unevaluatedProperties": false}),
            ),
            // A draft-07 tuple gets a narrower second item.
            (
                json!({"type": "array", "items": [{"type": "string"}, {"type": "number"}]}),
                json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}),
            ),
        ];
        for (old, new) in breaking {
            assert!(
                !CompatibilityLevel::Backward.problems(&new, &old).is_empty(),
                "{old} -> {new} was called compatible"
            );
        }
    }

    #[test]
    fn unions_tuples_and_references_are_compared_not_refused() {
        let compatible = [
            // A widened union: every old string still matches exactly one branch.
            (
                json!({"type": "string"}),
                json!({"oneOf": [{"type": "number"}, {"type": "string"}]}),
            ),
            // A draft-07 tuple whose items widen.
            (
                json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}),
                json!({"type": "array", "items": [{"type": "string"}, {"type": "number"}]}),
            ),
            // The same type, once inline and once through a definition.
            (
                json!({"type": "string"}),
                json!({"$ref": "#/definitions/text", "definitions": {"text": {"type": "string"}}}),
            ),
            // A discriminated union gains a variant.
            (
                json!({"oneOf": [
                    {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
                    {"type": "object", "properties": {"kind": {"const": "b"}}, "required": ["kind"]}
                ]}),
                json!({"oneOf": [
                    {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
                    {"type": "object", "properties": {"kind": {"const": "b"}}, "required": ["kind"]},
                    {"type": "object", "properties": {"kind": {"const": "c"}}, "required": ["kind"]}
                ]}),
            ),
        ];
        for (old, new) in compatible {
            let problems = CompatibilityLevel::Backward.problems(&new, &old);
            assert!(problems.is_empty(), "{old} -> {new}: {problems:?}");
        }
    }

    #[test]
    fn a_self_referencing_schema_is_refused_not_a_stack_overflow() {
        let looping = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": "#/definitions/loop",
            "definitions": {"loop": {"$ref": "#/definitions/loop"}}
        });
        let other = json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "const": 1});
        // Whatever the verdicts, the check ends.
        CompatibilityLevel::Full.problems(&looping, &other);
        CompatibilityLevel::Full.problems(&other, &looping);
    }
}
