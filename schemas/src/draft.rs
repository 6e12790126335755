//! Which JSON Schema draft a schema is read in: the one its `$schema` names, else draft-07, as
//! Confluent's and Karapace's registries read a schema without `$schema`.
//!
//! The `jsonschema` crate on its own reads such a schema as draft 2020-12, where an array-valued
//! `items` (draft-07's tuple form) is not valid; every place that reads a schema (the registry's
//! registering, validating and compatibility check, and the codec's validation of records) goes
//! through [`draft_of`] instead.

use jsonschema::{Draft, Validator};
use serde_json::Value;

/// The draft of a schema without `$schema`.
pub const DEFAULT_DRAFT: Draft = Draft::Draft7;

/// The draft `schema` is read in: its `$schema`, else [`DEFAULT_DRAFT`]. A `$schema` that names
/// no known draft gives [`Draft::Unknown`].
pub fn draft_of(schema: &Value) -> Draft {
    DEFAULT_DRAFT.detect(schema)
}

/// A validator for `schema` in the draft [`draft_of`] gives; an error when `schema` is not a valid
/// schema of that draft (or names an unknown draft).
pub fn validator_for(schema: &Value) -> Result<Validator, String> {
    let options = match draft_of(schema) {
        // Let the crate report the unknown meta-schema in its own words.
        Draft::Unknown => jsonschema::options(),
        draft => jsonschema::options().with_draft(draft),
    };
    options.build(schema).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_without_dollar_schema_is_draft_07() {
        let tuple = json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]});
        assert_eq!(draft_of(&tuple), Draft::Draft7);
        let validator = validator_for(&tuple).expect("draft-07 tuple form is valid");
        assert!(validator.is_valid(&json!(["a", 1, null])));
        assert!(!validator.is_valid(&json!([1, "a"])));
    }

    #[test]
    fn dollar_schema_still_chooses_the_draft() {
        let newer = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "array",
            "items": [{"type": "string"}]
        });
        assert_eq!(draft_of(&newer), Draft::Draft202012);
        assert!(validator_for(&newer).is_err());
        let prefix = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "prefixItems": [{"type": "string"}],
            "items": false
        });
        let validator = validator_for(&prefix).unwrap();
        assert!(validator.is_valid(&json!(["a"])));
        assert!(!validator.is_valid(&json!(["a", "b"])));
        // Draft-07 has no prefixItems (an unknown keyword, ignored): `items: false` then refuses
        // every item.
        let mut as_draft_07 = prefix;
        as_draft_07.as_object_mut().unwrap().remove("$schema");
        let validator = validator_for(&as_draft_07).unwrap();
        assert!(validator.is_valid(&json!([])));
        assert!(!validator.is_valid(&json!(["a"])));
    }

    #[test]
    fn an_unknown_meta_schema_is_an_error_not_a_panic() {
        let custom = json!({"$schema": "https://example.com/my-meta", "type": "string"});
        assert_eq!(draft_of(&custom), Draft::Unknown);
        assert!(validator_for(&custom).is_err());
    }
}
