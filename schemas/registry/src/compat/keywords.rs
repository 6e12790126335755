//! How the compatibility check sorts the keywords of JSON Schema's drafts.

use jsonschema::Draft;

/// Keywords without a validation meaning: annotations, identifiers, definitions.
pub(super) const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "$anchor",
    "$dynamicAnchor",
    "$recursiveAnchor",
    "$vocabulary",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "definitions",
    "$defs",
];

/// Validation keywords of some draft that this checker does not reason about (or not in every
/// draft): where the reader has one, the writer must have it too, unchanged, in the same draft.
pub(super) const OTHER_KEYWORDS: &[&str] = &[
    "const",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedItems",
    "unevaluatedProperties",
    "minContains",
    "maxContains",
    "prefixItems",
    "additionalItems",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
    "discriminator",
];

/// References resolved against the dynamic scope: their meaning depends on where the schema is
/// used, so this checker never compares them.
pub(super) const DYNAMIC_REFERENCES: &[&str] = &["$recursiveRef", "$dynamicRef"];

/// Whether `keyword` means something this checker reasons about, in `draft`.
pub(super) fn is_handled(keyword: &str, draft: Draft) -> bool {
    match keyword {
        "$ref"
        | "type"
        | "enum"
        | "minimum"
        | "maximum"
        | "exclusiveMinimum"
        | "exclusiveMaximum"
        | "multipleOf"
        | "minLength"
        | "maxLength"
        | "pattern"
        | "format"
        | "items"
        | "minItems"
        | "maxItems"
        | "uniqueItems"
        | "properties"
        | "patternProperties"
        | "additionalProperties"
        | "required"
        | "minProperties"
        | "maxProperties"
        | "allOf"
        | "anyOf"
        | "oneOf"
        | "not" => true,
        "const" | "contains" | "propertyNames" => draft >= Draft::Draft6,
        "if" | "then" | "else" => draft >= Draft::Draft7,
        "dependencies" => draft <= Draft::Draft7,
        "additionalItems" => draft <= Draft::Draft201909,
        "dependentRequired"
        | "dependentSchemas"
        | "unevaluatedItems"
        | "unevaluatedProperties"
        | "minContains"
        | "maxContains" => draft >= Draft::Draft201909,
        "prefixItems" => draft >= Draft::Draft202012,
        _ => false,
    }
}

/// Keywords that make a subschema look at the same instance through other subschemas: with one of
/// them, a writer's `unevaluated*` may apply to fewer items or properties than it seems to.
pub(super) const IN_PLACE_APPLICATORS: &[&str] = &[
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "$ref",
    "$recursiveRef",
    "$dynamicRef",
    "dependentSchemas",
    "contains",
];
