//! What the compatibility check reads out of a schema node (types, bounds, what it says about
//! items and properties) and the helpers on values and patterns it relies on.

use std::cmp::Ordering;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::keywords::DYNAMIC_REFERENCES;

/// A set of JSON types, with numbers split into integers and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Types(u8);

impl Types {
    pub(super) const NONE: Self = Self(0);
    pub(super) const NULL: Self = Self(1);
    pub(super) const BOOLEAN: Self = Self(2);
    pub(super) const OBJECT: Self = Self(4);
    pub(super) const ARRAY: Self = Self(8);
    pub(super) const INTEGER: Self = Self(16);
    pub(super) const FRACTION: Self = Self(32);
    pub(super) const STRING: Self = Self(64);
    pub(super) const NUMBER: Self = Self(16 | 32);
    pub(super) const ALL: Self = Self(127);

    pub(super) fn and(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    pub(super) fn or(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub(super) fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    pub(super) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(super) fn intersects(self, other: Self) -> bool {
        !self.and(other).is_empty()
    }

    pub(super) fn within(self, other: Self) -> bool {
        self.without(other).is_empty()
    }

    /// The type a `type` keyword names; `None` for a name no draft has.
    pub(super) fn named(name: &str) -> Option<Self> {
        Some(match name {
            "null" => Self::NULL,
            "boolean" => Self::BOOLEAN,
            "object" => Self::OBJECT,
            "array" => Self::ARRAY,
            "integer" => Self::INTEGER,
            "number" => Self::NUMBER,
            "string" => Self::STRING,
            _ => return None,
        })
    }

    /// The types of a value (`1.0` may count as an integer or not, depending on the draft).
    pub(super) fn of_value(value: &Value) -> Self {
        match value {
            Value::Null => Self::NULL,
            Value::Bool(_) => Self::BOOLEAN,
            Value::Object(_) => Self::OBJECT,
            Value::Array(_) => Self::ARRAY,
            Value::String(_) => Self::STRING,
            Value::Number(n) if n.is_i64() || n.is_u64() => Self::INTEGER,
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 => Self::NUMBER,
                _ => Self::FRACTION,
            },
        }
    }

    /// The names of these types, for messages (`number` for non-integers).
    pub(super) fn names(self) -> Vec<&'static str> {
        [
            (Self::NULL, "null"),
            (Self::BOOLEAN, "boolean"),
            (Self::OBJECT, "object"),
            (Self::ARRAY, "array"),
            (Self::INTEGER, "integer"),
            (Self::FRACTION, "number"),
            (Self::STRING, "string"),
        ]
        .into_iter()
        .filter(|(types, _)| self.intersects(*types))
        .map(|(_, name)| name)
        .collect()
    }
}

/// A lower or upper bound on numbers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bound<'a> {
    pub(super) keyword: &'static str,
    pub(super) limit: &'a Value,
    pub(super) exclusive: bool,
}

/// What a node says about the items of arrays, in its draft.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ItemModel<'a> {
    /// Schemas of the first items (draft-07's tuple `items`, 2020-12's `prefixItems`).
    pub(super) prefix: &'a [Value],
    /// The schema of every later item, if any.
    pub(super) rest: Option<&'a Value>,
}

impl<'a> ItemModel<'a> {
    pub(super) fn item(&self, index: usize) -> Option<&'a Value> {
        self.prefix.get(index).or(self.rest)
    }
}

/// What a node says about the properties of objects.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ObjectModel<'a> {
    pub(super) properties: Option<&'a Map<String, Value>>,
    pub(super) patterns: Option<&'a Map<String, Value>>,
    /// The schema of properties neither `properties` nor `patternProperties` name.
    pub(super) extra: Option<&'a Value>,
}

impl<'a> ObjectModel<'a> {
    pub(super) fn property(&self, name: &str) -> Option<&'a Value> {
        self.properties.and_then(|properties| properties.get(name))
    }

    pub(super) fn has_patterns(&self) -> bool {
        self.patterns.is_some_and(|patterns| !patterns.is_empty())
    }

    /// Objects of this model cannot have the property `name`.
    pub(super) fn forbids(&self, name: &str) -> bool {
        match self.property(name) {
            Some(schema) => schema == &Value::Bool(false),
            None => !self.has_patterns() && self.extra == Some(&Value::Bool(false)),
        }
    }
}

/// What a node makes depend on the presence of a property.
#[derive(Debug, Default)]
pub(super) struct Dependents<'a> {
    /// Property -> the names it requires.
    pub(super) required: Vec<(&'a str, Vec<&'a str>)>,
    /// Property -> the schema the whole object must then meet.
    pub(super) schemas: Vec<(&'a str, &'a Value)>,
}

/// Whether a `patternProperties` regular expression matches `name`: `Some` when that is certain
/// without a regex engine (a literal prefix, `^literal`, `^literal$`), `None` when unknown.
pub(super) fn pattern_matches(pattern: &str, name: &str) -> Option<bool> {
    let is_literal = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' ' | ':' | '@' | '/'))
    };
    let anchored = pattern.strip_prefix('^')?;
    if let Some(exact) = anchored.strip_suffix('$') {
        return is_literal(exact).then(|| name == exact);
    }
    is_literal(anchored).then(|| name.starts_with(anchored))
}

/// Whether a `pattern` matches every string: it has no anchor, escape or group modifier (nothing
/// ties a match to a position) and it matches the empty string, which a search then finds at the
/// start of any string (`a*`, `.*`). Asked of the registry's own validator.
pub(super) fn pattern_accepts_every_string(pattern: &str) -> bool {
    !pattern.contains(['^', '$', '\\'])
        && !pattern.contains("(?")
        && auction_schemas::draft::validator_for(&serde_json::json!({"pattern": pattern}))
            .is_ok_and(|validator| validator.is_valid(&Value::String(String::new())))
}

/// The schema of every property name: a string (what `propertyNames` is checked against).
pub(super) static ANY_STRING: LazyLock<Value> =
    LazyLock::new(|| serde_json::json!({"type": "string"}));

/// Numbers compared exactly where both are integers, else as floating point.
pub(super) fn compare_numbers(a: &Value, b: &Value) -> Option<Ordering> {
    let as_integer = |v: &Value| {
        v.as_i64()
            .map(i128::from)
            .or_else(|| v.as_u64().map(i128::from))
    };
    match (as_integer(a), as_integer(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// Whether two values may be equal as JSON Schema compares them (numbers by value).
pub(super) fn may_be_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => {
            compare_numbers(a, b) != Some(Ordering::Less)
                && compare_numbers(a, b) != Some(Ordering::Greater)
        }
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| may_be_equal(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| may_be_equal(a, b)))
        }
        _ => a == b,
    }
}

/// The types a `type` keyword names (a name no draft has accepts nothing).
pub(super) fn named_types(named: &Value) -> Types {
    match named {
        Value::String(name) => Types::named(name).unwrap_or(Types::NONE),
        Value::Array(names) => names.iter().fold(Types::NONE, |all, name| {
            all.or(name.as_str().and_then(Types::named).unwrap_or(Types::NONE))
        }),
        _ => Types::NONE,
    }
}

pub(super) fn string_list(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Whether `schema` holds `$id` (or draft-4's `id`) below its root: such a subschema moves the base
/// of the `$ref`s inside it, which this checker does not follow.
pub(super) fn has_nested_ids(schema: &Value, is_root: bool) -> bool {
    match schema {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (!is_root && matches!(key.as_str(), "$id" | "id") && value.is_string())
                || has_nested_ids(value, false)
        }),
        Value::Array(items) => items.iter().any(|item| has_nested_ids(item, false)),
        _ => false,
    }
}

/// Whether `schema` holds a `$schema` below its root (an embedded resource in another draft).
pub(super) fn has_nested_dialects(schema: &Value, is_root: bool) -> bool {
    match schema {
        Value::Object(map) => map.iter().any(|(key, value)| {
            (!is_root && key == "$schema" && value.is_string()) || has_nested_dialects(value, false)
        }),
        Value::Array(items) => items.iter().any(|item| has_nested_dialects(item, false)),
        _ => false,
    }
}

/// Whether every reference inside `schema` points into `definitions` or `$defs` (and none is
/// dynamic): such a subschema means the same in two schemas whose definitions are the same.
pub(super) fn refers_only_to_definitions(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.iter().all(|(key, value)| match key.as_str() {
            "$ref" => value.as_str().is_some_and(|reference| {
                reference.starts_with("#/definitions/") || reference.starts_with("#/$defs/")
            }),
            key if DYNAMIC_REFERENCES.contains(&key) => false,
            _ => refers_only_to_definitions(value),
        }),
        Value::Array(items) => items.iter().all(refers_only_to_definitions),
        _ => true,
    }
}

/// Decodes `%XX` escapes of a URI fragment.
pub(super) fn percent_decode(fragment: &str) -> Option<String> {
    let bytes = fragment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = fragment.get(i + 1..i + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}
