//! The registry's BACKWARD check against peer vectors: 577 old/new schema pairs from Confluent's
//! and Karapace's own test suites (`tests/data/json-schema-compat-vectors.json`; its `about` and
//! `sources` say where each comes from), with each peer's verdict and, for a breaking change, a
//! document the old schema accepts and the new one refuses.
//!
//! Each vector is classified:
//! - `agree`: the registry gives the peer's verdict;
//! - `conservative`: the registry refuses a change the peer accepts (allowed: it refuses what it
//!   cannot show safe);
//! - `unsafe`: the registry accepts a change that a known document breaks (never allowed);
//! - `permissive`: the registry accepts a change the peer refuses by a registry rule, where the
//!   vector argues (`no_counterexample`) that no document breaks.

use std::collections::BTreeMap;

use auction_schema_registry::compat::CompatibilityLevel;
use auction_schemas::draft;
use serde_json::{Value, json};

const VECTORS: &str = include_str!("../data/json-schema-compat-vectors.json");

/// One pair of the data file.
struct Vector<'a> {
    id: &'a str,
    old: &'a Value,
    new: &'a Value,
    /// The peer's BACKWARD verdict.
    peer_compatible: bool,
    /// A document the old schema accepts and the new one refuses, where one is known (for a peer
    /// "incompatible" its `counterexample`, for a peer "compatible" its
    /// `peer_allows_a_breaking_change`).
    breaking_document: Option<&'a Value>,
}

fn vectors(data: &Value) -> Vec<Vector<'_>> {
    data["vectors"]
        .as_array()
        .expect("a `vectors` array")
        .iter()
        .map(|vector| {
            let annotation = &vector["annotation"];
            Vector {
                id: vector["id"].as_str().expect("an id"),
                old: &vector["old"],
                new: &vector["new"],
                peer_compatible: vector["backward"].as_bool().expect("a backward verdict"),
                breaking_document: annotation
                    .get("counterexample")
                    .or_else(|| annotation.get("peer_allows_a_breaking_change")),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Agree,
    Conservative,
    Unsafe,
    Permissive,
}

fn classify(vector: &Vector<'_>, registry_compatible: bool) -> Class {
    match (registry_compatible, vector.peer_compatible) {
        (true, _) if vector.breaking_document.is_some() => Class::Unsafe,
        (ours, peers) if ours == peers => Class::Agree,
        (false, true) => Class::Conservative,
        (true, false) => Class::Permissive,
        _ => unreachable!("every combination is covered above"),
    }
}

#[test]
fn the_backward_check_never_accepts_a_change_a_peer_document_breaks() {
    let data: Value = serde_json::from_str(VECTORS).expect("the vectors are JSON");
    let vectors = vectors(&data);
    assert_eq!(vectors.len(), 577, "the data file changed");

    let mut classes: BTreeMap<Class, Vec<&str>> = BTreeMap::new();
    for vector in &vectors {
        let problems = CompatibilityLevel::Backward.problems(vector.new, vector.old);
        classes
            .entry(classify(vector, problems.is_empty()))
            .or_default()
            .push(vector.id);
    }
    let ids = |class| classes.get(&class).cloned().unwrap_or_default();
    let (agree, conservative, unsafe_, permissive) = (
        ids(Class::Agree),
        ids(Class::Conservative),
        ids(Class::Unsafe),
        ids(Class::Permissive),
    );
    println!(
        "peer vectors: {} agree, {} conservative, {} unsafe ({} permissive: accepted where the peer \
         refuses by a registry rule and no document breaks)",
        agree.len(),
        conservative.len(),
        unsafe_.len(),
        permissive.len()
    );
    // Some changes a peer accepts are broken by a known document: refusing them is right.
    let (rightly_refused, unproven): (Vec<&str>, Vec<&str>) = conservative.iter().partition(|id| {
        vectors
            .iter()
            .any(|v| v.id == **id && v.breaking_document.is_some())
    });
    println!(
        "{} conservative refusals remain: {} of changes a known document breaks (the peer accepts \
         them wrongly): {rightly_refused:?}; {} of changes this registry cannot show safe: \
         {unproven:?}",
        conservative.len(),
        rightly_refused.len(),
        unproven.len()
    );
    println!("unsafe: {unsafe_:?}");
    println!("permissive: {permissive:?}");
    assert!(
        unsafe_.is_empty(),
        "the registry accepts changes that a known document breaks: {unsafe_:?}"
    );
    assert_eq!(
        agree.len() + conservative.len() + permissive.len(),
        vectors.len()
    );
}

/// The documents hold as the vectors say under the registry's own validator (draft-07 without
/// `$schema`), so "unsafe" above means what it says; and every schema of the file is one the
/// registry can register.
#[test]
fn every_vector_schema_compiles_and_every_breaking_document_breaks() {
    let data: Value = serde_json::from_str(VECTORS).expect("the vectors are JSON");
    let mut wrong = Vec::new();
    for vector in vectors(&data) {
        let old = draft::validator_for(vector.old)
            .unwrap_or_else(|e| panic!("{}: the old schema does not compile: {e}", vector.id));
        let new = draft::validator_for(vector.new)
            .unwrap_or_else(|e| panic!("{}: the new schema does not compile: {e}", vector.id));
        let breaks = |document: &Value| old.is_valid(document) && !new.is_valid(document);
        if vector
            .breaking_document
            .is_some_and(|document| !breaks(document))
        {
            wrong.push(vector.id);
        }
    }
    assert!(
        wrong.is_empty(),
        "documents that do not break the change as the vector says: {wrong:?}"
    );
}

/// Beyond each vector's own document: no document of the whole file, nor a set of small probes,
/// breaks a change the registry accepts (under the registry's own validator).
#[test]
fn no_probe_document_breaks_a_change_the_registry_accepts() {
    let data: Value = serde_json::from_str(VECTORS).expect("the vectors are JSON");
    let vectors = vectors(&data);
    let scalars = [
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(-1),
        json!(13),
        json!(1.5),
        json!(""),
        json!("a"),
        json!("abc"),
        json!("2020-01-01"),
    ];
    let mut probes: Vec<Value> = scalars.to_vec();
    probes.extend(scalars.iter().map(|s| json!([s])));
    probes.extend(scalars.iter().map(|s| json!([s, s, "a"])));
    probes.extend(scalars.iter().map(|s| json!({"a": s, "b": s})));
    probes.extend(
        scalars
            .iter()
            .map(|s| json!({"foo": s, "bar": s, "p": [s]})),
    );
    probes.extend(vectors.iter().filter_map(|v| v.breaking_document.cloned()));

    let mut broken = Vec::new();
    for vector in &vectors {
        if !CompatibilityLevel::Backward
            .problems(vector.new, vector.old)
            .is_empty()
        {
            continue;
        }
        let old = draft::validator_for(vector.old).expect("the old schema compiles");
        let new = draft::validator_for(vector.new).expect("the new schema compiles");
        if let Some(document) = probes
            .iter()
            .find(|document| old.is_valid(document) && !new.is_valid(document))
        {
            broken.push(format!("{}: {document}", vector.id));
        }
    }
    assert!(
        broken.is_empty(),
        "accepted changes that a probe document breaks: {broken:?}"
    );
}
