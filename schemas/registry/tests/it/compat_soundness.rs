//! The compatibility check against the registry's own validator on generated schemas: whenever it
//! calls a change BACKWARD compatible, no generated document that the old schema accepts may be
//! refused by the new one. Deterministic (a fixed seed), so a failure names a reproducible pair.

use auction_schema_registry::compat::CompatibilityLevel;
use auction_schemas::draft;
use serde_json::{Map, Value, json};

/// A small deterministic generator (xorshift64*), enough to vary schemas and documents.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMES: &[&str] = &["a", "b", "c", "a1"];
const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];

fn scalar(random: &mut Random) -> Value {
    random
        .pick(&[
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(1),
            json!(2),
            json!(5),
            json!(10),
            json!(11),
            json!(-1),
            json!(0.5),
            json!(10.5),
            json!(""),
            json!("a"),
            json!("ab"),
            json!("b"),
            json!("aaaa"),
        ])
        .clone()
}

fn document(random: &mut Random, depth: usize) -> Value {
    match if depth == 0 { 0 } else { random.below(4) } {
        0 | 1 => scalar(random),
        2 => Value::Array(
            (0..random.below(4))
                .map(|_| document(random, depth - 1))
                .collect(),
        ),
        _ => {
            let mut map = Map::new();
            for _ in 0..random.below(4) {
                map.insert(
                    (*random.pick(NAMES)).to_owned(),
                    document(random, depth - 1),
                );
            }
            Value::Object(map)
        }
    }
}

fn number(random: &mut Random) -> Value {
    random
        .pick(&[
            json!(0),
            json!(1),
            json!(2),
            json!(5),
            json!(10),
            json!(0.5),
        ])
        .clone()
}

fn schema(random: &mut Random, depth: usize, modern: bool) -> Value {
    if depth == 0 || random.chance(15) {
        return match random.below(6) {
            0 => json!(true),
            1 => json!(false),
            2 => json!({}),
            _ => json!({"type": random.pick(TYPES)}),
        };
    }
    let mut map = Map::new();
    match random.below(9) {
        0 => {
            map.insert("type".into(), json!(random.pick(&["number", "integer"])));
            for keyword in [
                "minimum",
                "maximum",
                "exclusiveMinimum",
                "exclusiveMaximum",
                "multipleOf",
            ] {
                if random.chance(30) {
                    let mut limit = number(random);
                    if keyword == "multipleOf" && limit == json!(0) {
                        limit = json!(2);
                    }
                    map.insert(keyword.into(), limit);
                }
            }
        }
        1 => {
            map.insert("type".into(), json!("string"));
            for keyword in ["minLength", "maxLength"] {
                if random.chance(40) {
                    map.insert(keyword.into(), json!(random.below(4)));
                }
            }
            if random.chance(30) {
                map.insert("pattern".into(), json!(random.pick(&["^a", "a*", "^ab$"])));
            }
        }
        2 => {
            let values: Vec<Value> = (0..1 + random.below(3)).map(|_| scalar(random)).collect();
            if random.chance(50) {
                map.insert("enum".into(), Value::Array(values));
            } else {
                map.insert("const".into(), values[0].clone());
            }
        }
        3 | 4 => {
            if random.chance(70) {
                map.insert("type".into(), json!("object"));
            }
            let mut properties = Map::new();
            for name in NAMES {
                if random.chance(40) {
                    properties.insert((*name).into(), schema(random, depth - 1, modern));
                }
            }
            map.insert("properties".into(), Value::Object(properties));
            if random.chance(40) {
                let required: Vec<&str> = NAMES
                    .iter()
                    .copied()
                    .filter(|_| random.chance(30))
                    .collect();
                map.insert("required".into(), json!(required));
            }
            if random.chance(50) {
                let extra = if random.chance(60) {
                    json!(random.chance(50))
                } else {
                    schema(random, depth - 1, modern)
                };
                let keyword = if modern && random.chance(30) {
                    "unevaluatedProperties"
                } else {
                    "additionalProperties"
                };
                map.insert(keyword.into(), extra);
            }
            if random.chance(20) {
                map.insert(
                    "patternProperties".into(),
                    json!({"^a": schema(random, depth - 1, modern)}),
                );
            }
            for keyword in ["minProperties", "maxProperties"] {
                if random.chance(15) {
                    map.insert(keyword.into(), json!(random.below(3)));
                }
            }
            if random.chance(15) {
                let keyword = if modern {
                    "dependentRequired"
                } else {
                    "dependencies"
                };
                map.insert(keyword.into(), json!({"a": ["b"]}));
            }
            if random.chance(10) {
                map.insert("propertyNames".into(), json!({"maxLength": 1}));
            }
        }
        5 | 6 => {
            if random.chance(70) {
                map.insert("type".into(), json!("array"));
            }
            let tuple: Vec<Value> = (0..random.below(3))
                .map(|_| schema(random, depth - 1, modern))
                .collect();
            match (modern, random.below(3)) {
                (_, 0) => {
                    map.insert("items".into(), schema(random, depth - 1, modern));
                }
                (false, 1) => {
                    map.insert("items".into(), Value::Array(tuple));
                    if random.chance(50) {
                        map.insert("additionalItems".into(), schema(random, depth - 1, modern));
                    }
                }
                (true, 1) => {
                    map.insert("prefixItems".into(), Value::Array(tuple));
                    if random.chance(50) {
                        let keyword = if random.chance(50) {
                            "items"
                        } else {
                            "unevaluatedItems"
                        };
                        map.insert(keyword.into(), schema(random, depth - 1, modern));
                    }
                }
                _ => {}
            }
            for keyword in ["minItems", "maxItems"] {
                if random.chance(25) {
                    map.insert(keyword.into(), json!(random.below(3)));
                }
            }
            if random.chance(15) {
                map.insert("uniqueItems".into(), json!(true));
            }
            if random.chance(15) {
                map.insert("contains".into(), schema(random, depth - 1, modern));
                if modern && random.chance(50) {
                    map.insert("minContains".into(), json!(random.below(3)));
                }
            }
        }
        7 => {
            let keyword = *random.pick(&["allOf", "anyOf", "oneOf", "not", "if"]);
            if keyword == "not" {
                map.insert("not".into(), schema(random, depth - 1, modern));
            } else if keyword == "if" {
                map.insert("if".into(), schema(random, depth - 1, modern));
                map.insert("then".into(), schema(random, depth - 1, modern));
                if random.chance(50) {
                    map.insert("else".into(), schema(random, depth - 1, modern));
                }
            } else {
                let branches: Vec<Value> = (0..1 + random.below(3))
                    .map(|_| schema(random, depth - 1, modern))
                    .collect();
                map.insert(keyword.into(), Value::Array(branches));
            }
        }
        _ => {
            map.insert("$ref".into(), json!("#/definitions/shared"));
        }
    }
    Value::Object(map)
}

/// A schema with a root `definitions` (for `$ref`), in draft-07 or 2020-12.
fn root_schema(random: &mut Random, modern: bool) -> Value {
    let mut root = schema(random, 3, modern);
    if let Value::Object(map) = &mut root {
        map.insert(
            "definitions".into(),
            json!({"shared": schema(random, 2, modern)}),
        );
        if modern {
            map.insert(
                "$schema".into(),
                json!("https://json-schema.org/draft/2020-12/schema"),
            );
        }
    }
    root
}

/// `schema` with one random part replaced, so that pairs are often close (and compatible).
fn mutate(random: &mut Random, original: &Value, modern: bool) -> Value {
    // Walk down a few steps, remembering the way as a JSON pointer.
    let mut pointer = String::new();
    let mut node = original;
    for _ in 0..random.below(4) {
        let step = match node {
            Value::Object(map) if !map.is_empty() => {
                let keys: Vec<&String> = map.keys().collect();
                let key = *random.pick(&keys);
                if key == "$schema" || key == "$ref" {
                    break;
                }
                Some((key.replace('~', "~0").replace('/', "~1"), &map[key]))
            }
            Value::Array(items) if !items.is_empty() => {
                let index = random.below(items.len());
                Some((index.to_string(), &items[index]))
            }
            _ => None,
        };
        match step {
            Some((segment, child))
                if child.is_object() || child.is_array() || child.is_boolean() =>
            {
                pointer.push('/');
                pointer.push_str(&segment);
                node = child;
            }
            _ => break,
        }
    }
    let replacement = schema(random, 2, modern);
    let mut mutated = original.clone();
    if pointer.is_empty() {
        // Keep the root's $schema and definitions: widen or narrow it through an anyOf.
        if let Value::Object(map) = &mut mutated {
            map.insert("anyOf".into(), json!([replacement, random.chance(50)]));
        }
    } else if let Some(target) = mutated.pointer_mut(&pointer) {
        *target = replacement;
    }
    mutated
}

#[test]
fn a_change_called_compatible_breaks_no_generated_document() {
    let mut random = Random(0x5EED_1234_ABCD_0001);
    let mut compatible = 0;
    let mut checked = 0;
    for _ in 0..3000 {
        let modern = random.chance(30);
        let old = root_schema(&mut random, modern);
        let new = if random.chance(70) {
            mutate(&mut random, &old, modern)
        } else {
            root_schema(&mut random, modern)
        };
        let (Ok(old_validator), Ok(new_validator)) =
            (draft::validator_for(&old), draft::validator_for(&new))
        else {
            continue;
        };
        checked += 1;
        if !CompatibilityLevel::Backward.problems(&new, &old).is_empty() {
            continue;
        }
        compatible += 1;
        for _ in 0..200 {
            let document = document(&mut random, 3);
            assert!(
                !old_validator.is_valid(&document) || new_validator.is_valid(&document),
                "called compatible, but {document} breaks it:\nold: {old}\nnew: {new}"
            );
        }
    }
    println!("{checked} generated pairs, {compatible} called compatible");
    assert!(
        compatible > 300,
        "too few compatible pairs to mean much: {compatible}"
    );
}
