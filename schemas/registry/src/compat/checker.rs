//! The comparison itself: every constraint of a reader node must follow from the writer, a
//! conjunction of nodes (see the parent module for the approach).

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::HashMap;

use jsonschema::Draft;
use serde_json::{Map, Value};

use super::keywords::{
    ANNOTATIONS, DYNAMIC_REFERENCES, IN_PLACE_APPLICATORS, OTHER_KEYWORDS, is_handled,
};
use super::model::{
    ANY_STRING, Bound, Dependents, ItemModel, ObjectModel, Types, compare_numbers,
    has_nested_dialects, has_nested_ids, may_be_equal, named_types, pattern_accepts_every_string,
    pattern_matches, percent_decode, refers_only_to_definitions, string_list,
};
use auction_schemas::draft::draft_of;

/// Problems that keep `reader` from accepting every document `writer` accepts (see
/// [`super::reader_problems`]).
pub(super) fn compare(reader: &Value, writer: &Value) -> Vec<String> {
    let checker = match Checker::new(reader, writer) {
        Ok(checker) => checker,
        Err(problem) => return vec![problem],
    };
    let writer = checker.writer([Node {
        schema: writer,
        side: Side::Writer,
    }]);
    checker.reads(
        Node {
            schema: reader,
            side: Side::Reader,
        },
        &writer,
        "#",
        0,
    )
}

/// At most this many comparison steps per check; a larger comparison is refused.
const STEP_BUDGET: usize = 50_000;

/// At most this many comparisons nested in one another (which bounds the stack used); a deeper
/// comparison is refused.
const MAX_NESTING: usize = 128;

/// Which of the two schemas a node belongs to (its `$ref`s resolve against that schema's root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Reader,
    Writer,
}

/// A subschema and the schema it belongs to.
#[derive(Debug, Clone, Copy)]
struct Node<'a> {
    schema: &'a Value,
    side: Side,
}

impl<'a> Node<'a> {
    fn child(self, schema: &'a Value) -> Self {
        Self {
            schema,
            side: self.side,
        }
    }

    fn object(self) -> Option<&'a Map<String, Value>> {
        self.schema.as_object()
    }

    fn get(self, keyword: &str) -> Option<&'a Value> {
        self.object().and_then(|map| map.get(keyword))
    }

    fn address(self) -> usize {
        std::ptr::from_ref(self.schema) as usize
    }
}

/// The writer: a conjunction of nodes, expanded (`allOf` branches and `$ref` targets joined in).
#[derive(Debug, Clone)]
struct Writer<'a> {
    nodes: Vec<Node<'a>>,
    /// Nodes whose `anyOf`/`oneOf` was already split into cases.
    split: Vec<usize>,
    /// The writer accepts nothing (a `false` among its nodes).
    empty: bool,
}

/// One of the two schemas compared.
#[derive(Debug)]
struct Root<'a> {
    schema: &'a Value,
    draft: Draft,
    /// `$ref`s can be resolved as JSON pointers into the root (no nested `$id` moves their base).
    follows_refs: bool,
}

/// A `$ref` in progress of being compared, for recursive schemas.
#[derive(Debug)]
struct Visit {
    reader: usize,
    writer: Vec<usize>,
    depth: usize,
}

/// One comparison of a reader schema with a writer schema.
#[derive(Debug)]
struct Checker<'a> {
    reader: Root<'a>,
    writer: Root<'a>,
    /// Both schemas have the same draft and the same `definitions`/`$defs`, which refer only to
    /// each other: a subschema referring only to them means the same on both sides.
    shared_definitions: bool,
    steps: Cell<usize>,
    visits: RefCell<Vec<Visit>>,
    types_seen: RefCell<HashMap<usize, Types>>,
    types_in_progress: RefCell<Vec<usize>>,
    nesting: Cell<usize>,
}

/// One level of nested comparison, given back when dropped.
struct Nested<'c>(&'c Cell<usize>);

impl Drop for Nested<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl<'a> Checker<'a> {
    fn new(reader: &'a Value, writer: &'a Value) -> Result<Self, String> {
        let root = |schema: &'a Value, which: &str| {
            let draft = draft_of(schema);
            if draft == Draft::Unknown {
                return Err(format!(
                    "#: the {which} schema's $schema names no JSON Schema draft this registry knows"
                ));
            }
            if has_nested_dialects(schema, true) {
                return Err(format!(
                    "#: the {which} schema embeds a $schema below its root, which this registry cannot compare"
                ));
            }
            Ok(Root {
                schema,
                draft,
                follows_refs: !has_nested_ids(schema, true),
            })
        };
        let reader = root(reader, "new")?;
        let writer = root(writer, "old")?;
        let definitions =
            |root: &Root<'a>| (root.schema.get("definitions"), root.schema.get("$defs"));
        let shared_definitions = reader.draft == writer.draft
            && reader.follows_refs
            && writer.follows_refs
            && definitions(&reader) == definitions(&writer)
            && definitions(&reader)
                .0
                .is_none_or(refers_only_to_definitions)
            && definitions(&reader)
                .1
                .is_none_or(refers_only_to_definitions);
        Ok(Self {
            reader,
            writer,
            shared_definitions,
            steps: Cell::new(0),
            visits: RefCell::new(Vec::new()),
            types_seen: RefCell::new(HashMap::new()),
            types_in_progress: RefCell::new(Vec::new()),
            nesting: Cell::new(0),
        })
    }

    fn root(&self, side: Side) -> &Root<'a> {
        match side {
            Side::Reader => &self.reader,
            Side::Writer => &self.writer,
        }
    }

    fn draft(&self, node: Node<'a>) -> Draft {
        self.root(node.side).draft
    }

    /// Counts a step; false once the budget is spent.
    fn step(&self) -> bool {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        steps <= STEP_BUDGET
    }

    /// Enters one more level of nested comparison; `None` past [`MAX_NESTING`].
    fn nest(&self) -> Option<Nested<'_>> {
        let level = self.nesting.get();
        if level >= MAX_NESTING {
            return None;
        }
        self.nesting.set(level + 1);
        Some(Nested(&self.nesting))
    }

    /// The target of a local `$ref` (`#`, `#/json/pointer`), if this checker can follow it.
    fn resolve(&self, node: Node<'a>, reference: &Value) -> Option<Node<'a>> {
        let root = self.root(node.side);
        if !root.follows_refs {
            return None;
        }
        let fragment = reference.as_str()?.strip_prefix('#')?;
        let target = if fragment.is_empty() {
            root.schema
        } else {
            root.schema.pointer(&percent_decode(fragment)?)?
        };
        Some(node.child(target))
    }

    /// A writer made of `nodes` (expanded).
    fn writer(&self, nodes: impl IntoIterator<Item = Node<'a>>) -> Writer<'a> {
        let mut writer = Writer {
            nodes: Vec::new(),
            split: Vec::new(),
            empty: false,
        };
        for node in nodes {
            self.join(&mut writer, node);
        }
        writer
    }

    /// Adds `node` to the conjunction, with its `allOf` branches and its `$ref` target. In drafts
    /// up to 07 a `$ref` replaces its siblings; a `$ref` that cannot be followed is left out,
    /// which only makes the writer accept more (the safe direction).
    fn join(&self, writer: &mut Writer<'a>, node: Node<'a>) {
        self.join_once(writer, node, &mut Vec::new());
    }

    /// [`Self::join`], skipping nodes already met (a `$ref` chain may loop back to its start).
    fn join_once(&self, writer: &mut Writer<'a>, node: Node<'a>, met: &mut Vec<usize>) {
        match node.schema {
            Value::Bool(false) => writer.empty = true,
            Value::Object(map) => {
                if met.contains(&node.address())
                    || writer.nodes.iter().any(|n| n.address() == node.address())
                {
                    return;
                }
                met.push(node.address());
                let mut keep_siblings = true;
                if let Some(reference) = map.get("$ref") {
                    keep_siblings = self.draft(node) > Draft::Draft7;
                    if let Some(target) = self.resolve(node, reference) {
                        self.join_once(writer, target, met);
                    }
                }
                if keep_siblings {
                    writer.nodes.push(node);
                    if let Some(Value::Array(branches)) = map.get("allOf") {
                        for branch in branches {
                            self.join_once(writer, node.child(branch), met);
                        }
                    }
                }
            }
            // `true`, or not a schema: no constraint this checker can rely on.
            _ => {}
        }
    }

    /// A node of `writer` with an `anyOf` or `oneOf` not yet split into cases.
    fn unsplit_disjunction(&self, writer: &Writer<'a>) -> Option<(Node<'a>, &'a [Value])> {
        writer.nodes.iter().find_map(|node| {
            if writer.split.contains(&node.address()) {
                return None;
            }
            ["anyOf", "oneOf"].into_iter().find_map(|keyword| {
                node.get(keyword)
                    .and_then(Value::as_array)
                    .map(|branches| (*node, branches.as_slice()))
            })
        })
    }

    /// The cases of `writer`'s first unsplit `anyOf`/`oneOf`: one writer per branch.
    fn cases(&self, writer: &Writer<'a>) -> Option<Vec<Writer<'a>>> {
        let (node, branches) = self.unsplit_disjunction(writer)?;
        Some(
            branches
                .iter()
                .map(|branch| {
                    let mut case = writer.clone();
                    case.split.push(node.address());
                    self.join(&mut case, node.child(branch));
                    case
                })
                .collect(),
        )
    }

    /// The types a node may accept (an over-approximation, memoised; a `$ref` loop counts as
    /// accepting every type).
    fn possible_types(&self, node: Node<'a>) -> Types {
        if let Some(types) = self.types_seen.borrow().get(&node.address()) {
            return *types;
        }
        if self.types_in_progress.borrow().contains(&node.address()) {
            return Types::ALL;
        }
        self.types_in_progress.borrow_mut().push(node.address());
        let types = self.compute_possible_types(node);
        self.types_in_progress.borrow_mut().pop();
        self.types_seen.borrow_mut().insert(node.address(), types);
        types
    }

    fn compute_possible_types(&self, node: Node<'a>) -> Types {
        let map = match node.schema {
            Value::Bool(false) => return Types::NONE,
            Value::Object(map) => map,
            _ => return Types::ALL,
        };
        let mut types = Types::ALL;
        if let Some(target) = map.get("$ref").and_then(|r| self.resolve(node, r)) {
            let target_types = self.possible_types(target);
            if self.draft(node) <= Draft::Draft7 {
                return target_types;
            }
            types = types.and(target_types);
        }
        if let Some(named) = map.get("type") {
            types = types.and(match named {
                // An unknown name: assume the worst for an over-approximation.
                Value::String(name) => Types::named(name).unwrap_or(Types::ALL),
                Value::Array(names) => names.iter().fold(Types::NONE, |all, name| {
                    all.or(name.as_str().and_then(Types::named).unwrap_or(Types::ALL))
                }),
                _ => Types::ALL,
            });
        }
        if let Some(values) = self.allowed_values(node) {
            types = types.and(
                values
                    .iter()
                    .fold(Types::NONE, |all, v| all.or(Types::of_value(v))),
            );
        }
        if let Some(excluded) = map.get("not") {
            types = types.without(self.surely_types(node.child(excluded)));
        }
        if let Some(Value::Array(branches)) = map.get("allOf") {
            for branch in branches {
                types = types.and(self.possible_types(node.child(branch)));
            }
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = map.get(keyword) {
                types = types.and(branches.iter().fold(Types::NONE, |all, branch| {
                    all.or(self.possible_types(node.child(branch)))
                }));
            }
        }
        types
    }

    /// Types every value of which a node accepts (`true`, `{}`, or a bare `type`), for `not`.
    fn surely_types(&self, node: Node<'a>) -> Types {
        match node.schema {
            Value::Bool(true) => Types::ALL,
            Value::Object(map) => {
                let mut types = Types::ALL;
                for (keyword, value) in map {
                    if keyword == "type" {
                        let mut named = named_types(value);
                        if self.draft(node) == Draft::Draft4
                            && named.and(Types::NUMBER) == Types::INTEGER
                        {
                            // Draft-4's `integer` does not take every integer-valued number (`1.0`).
                            named = named.without(Types::INTEGER);
                        }
                        types = types.and(named);
                    } else if !ANNOTATIONS.contains(&keyword.as_str())
                        && (is_handled(keyword, self.draft(node))
                            || OTHER_KEYWORDS.contains(&keyword.as_str())
                            || DYNAMIC_REFERENCES.contains(&keyword.as_str()))
                    {
                        return Types::NONE;
                    }
                }
                types
            }
            _ => Types::NONE,
        }
    }

    /// The types the writer may write.
    fn writer_types(&self, writer: &Writer<'a>) -> Types {
        if writer.empty {
            return Types::NONE;
        }
        writer.nodes.iter().fold(Types::ALL, |types, node| {
            types.and(self.possible_types(*node))
        })
    }

    /// The values an `enum`/`const` allows, if the node has one.
    fn allowed_values(&self, node: Node<'a>) -> Option<Vec<&'a Value>> {
        let listed = node.get("enum").and_then(Value::as_array);
        let constant = node
            .get("const")
            .filter(|_| self.draft(node) >= Draft::Draft6);
        match (listed, constant) {
            (None, None) => None,
            (Some(values), None) => Some(values.iter().collect()),
            (None, Some(value)) => Some(vec![value]),
            (Some(values), Some(value)) => {
                Some(values.iter().filter(|v| may_be_equal(v, value)).collect())
            }
        }
    }

    /// The values the writer may write, when one of its nodes lists them (an over-approximation:
    /// values that another node surely refuses are left out).
    fn writer_values(&self, writer: &Writer<'a>) -> Option<Vec<&'a Value>> {
        let lists: Vec<Vec<&'a Value>> = writer
            .nodes
            .iter()
            .filter_map(|node| self.allowed_values(*node))
            .collect();
        let (first, others) = lists.split_first()?;
        let types = self.writer_types(writer);
        Some(
            first
                .iter()
                .copied()
                .filter(|value| Types::of_value(value).intersects(types))
                .filter(|value| {
                    others
                        .iter()
                        .all(|list| list.iter().any(|other| may_be_equal(value, other)))
                })
                .collect(),
        )
    }

    /// Whether `node` and `other` surely mean the same: the same node, or the same text in the
    /// same draft whose references resolve alike.
    fn same_meaning(&self, node: Node<'a>, other: Node<'a>) -> bool {
        if node.side == other.side && node.address() == other.address() {
            return true;
        }
        node.schema == other.schema
            && self.draft(node) == self.draft(other)
            && self.context_free(node.schema)
    }

    /// Whether a subschema's meaning does not depend on the schema around it.
    fn context_free(&self, schema: &Value) -> bool {
        fn has_refs(schema: &Value) -> bool {
            match schema {
                Value::Object(map) => map.iter().any(|(key, value)| {
                    key == "$ref" || DYNAMIC_REFERENCES.contains(&key.as_str()) || has_refs(value)
                }),
                Value::Array(items) => items.iter().any(has_refs),
                _ => false,
            }
        }
        !has_refs(schema) || (self.shared_definitions && refers_only_to_definitions(schema))
    }

    /// Whether the reader accepts every document the writer accepts.
    fn proves(&self, reader: Node<'a>, writer: &Writer<'a>, depth: usize) -> bool {
        self.reads(reader, writer, "#", depth).is_empty()
    }

    /// Every way in which `reader` may reject a document `writer` accepts, at `path` of the
    /// document, `depth` steps below its root.
    fn reads(
        &self,
        reader: Node<'a>,
        writer: &Writer<'a>,
        path: &str,
        depth: usize,
    ) -> Vec<String> {
        if writer.empty {
            return Vec::new();
        }
        let nested = self.nest();
        if nested.is_none() || !self.step() {
            return vec![format!(
                "{path}: the schemas are too large to compare; this registry refuses what it cannot check"
            )];
        }
        let map = match reader.schema {
            Value::Bool(true) => return Vec::new(),
            Value::Bool(false) => {
                return if self.writer_types(writer).is_empty() {
                    Vec::new()
                } else {
                    vec![format!("{path}: the new schema accepts no value here")]
                };
            }
            Value::Object(map) => map,
            _ => return vec![format!("{path}: not a JSON Schema")],
        };
        let writer_addresses = {
            let mut addresses: Vec<usize> = writer.nodes.iter().map(|n| n.address()).collect();
            addresses.sort_unstable();
            addresses
        };
        let revisit = self
            .visits
            .borrow()
            .iter()
            .find(|v| v.reader == reader.address() && v.writer == writer_addresses)
            .map(|v| v.depth);
        if let Some(entered_at) = revisit {
            // Met again below a step into the document: holds by induction on the depth.
            return if depth > entered_at {
                Vec::new()
            } else {
                vec![format!(
                    "{path}: a $ref loops without stepping into the document; this registry cannot compare it"
                )]
            };
        }
        self.visits.borrow_mut().push(Visit {
            reader: reader.address(),
            writer: writer_addresses,
            depth,
        });
        let problems = self.reads_object(reader, map, writer, path, depth);
        self.visits.borrow_mut().pop();
        if problems.is_empty() {
            return problems;
        }
        // The writer's own alternatives may each be read where the whole could not be shown to.
        if let Some(cases) = self.cases(writer)
            && cases.iter().all(|case| self.proves(reader, case, depth))
        {
            return Vec::new();
        }
        problems
    }

    fn reads_object(
        &self,
        reader: Node<'a>,
        map: &'a Map<String, Value>,
        writer: &Writer<'a>,
        path: &str,
        depth: usize,
    ) -> Vec<String> {
        let writer_types = self.writer_types(writer);
        if writer_types.is_empty() {
            return Vec::new();
        }
        if writer
            .nodes
            .iter()
            .any(|node| self.same_meaning(reader, *node))
        {
            return Vec::new();
        }
        let draft = self.draft(reader);
        let mut problems = Vec::new();
        if let Some(reference) = map.get("$ref") {
            // Up to draft-07 the siblings of `$ref` are ignored; checking them too is only stricter.
            match self.resolve(reader, reference) {
                Some(target) => problems.extend(self.reads(target, writer, path, depth)),
                None => problems.push(format!(
                    "{path}: $ref {reference} cannot be followed by this registry"
                )),
            }
        }
        for (keyword, value) in map {
            let keyword = keyword.as_str();
            if ANNOTATIONS.contains(&keyword) || is_handled(keyword, draft) {
                continue;
            }
            if DYNAMIC_REFERENCES.contains(&keyword) {
                problems.push(format!(
                    "{path}: {keyword} depends on where the schema is used; this registry cannot check it"
                ));
            } else if OTHER_KEYWORDS.contains(&keyword) {
                let unchanged = writer.nodes.iter().any(|node| {
                    self.draft(*node) == draft
                        && node.get(keyword) == Some(value)
                        && self.context_free(value)
                });
                if !unchanged {
                    problems.push(format!(
                        "{path}: keyword {keyword:?} changed, which this registry cannot check"
                    ));
                }
            }
            // Any other keyword is unknown to every draft: validators ignore it.
        }
        self.check_combinators(reader, map, writer, path, depth, &mut problems);
        self.check_types(reader, writer, writer_types, path, &mut problems);
        self.check_enum(reader, writer, writer_types, path, &mut problems);
        if writer_types.intersects(Types::NUMBER) {
            self.check_numbers(reader, writer, path, &mut problems);
        }
        if writer_types.intersects(Types::STRING) {
            self.check_strings(reader, writer, path, &mut problems);
        }
        if writer_types.intersects(Types::ARRAY) {
            self.check_arrays(reader, writer, path, depth, &mut problems);
        }
        if writer_types.intersects(Types::OBJECT) {
            self.check_objects(reader, writer, path, depth, &mut problems);
        }
        problems
    }

    fn check_combinators(
        &self,
        reader: Node<'a>,
        map: &'a Map<String, Value>,
        writer: &Writer<'a>,
        path: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        if let Some(Value::Array(branches)) = map.get("allOf") {
            for (i, branch) in branches.iter().enumerate() {
                problems.extend(self.reads(
                    reader.child(branch),
                    writer,
                    &format!("{path}/allOf/{i}"),
                    depth,
                ));
            }
        }
        if let Some(Value::Array(branches)) = map.get("anyOf") {
            if let [only] = branches.as_slice() {
                problems.extend(self.reads(
                    reader.child(only),
                    writer,
                    &format!("{path}/anyOf/0"),
                    depth,
                ));
            } else if !branches
                .iter()
                .any(|branch| self.proves(reader.child(branch), writer, depth))
            {
                problems.push(format!(
                    "{path}: an old document may match none of the new anyOf branches"
                ));
            }
        }
        if let Some(Value::Array(branches)) = map.get("oneOf") {
            if let [only] = branches.as_slice() {
                problems.extend(self.reads(
                    reader.child(only),
                    writer,
                    &format!("{path}/oneOf/0"),
                    depth,
                ));
            } else if !self.one_of_holds(reader, branches, writer, depth) {
                problems.push(format!(
                    "{path}: an old document may match none, or more than one, of the new oneOf branches"
                ));
            }
        }
        if let Some(excluded) = map.get("not")
            && !self.excludes(reader.child(excluded), writer, depth)
        {
            problems.push(format!(
                "{path}: the new schema's \"not\" may refuse an old document"
            ));
        }
        if self.draft(reader) >= Draft::Draft7
            && let Some(condition) = map.get("if")
            && !self.if_holds(reader, map, condition, writer, depth)
        {
            problems.push(format!(
                "{path}: the new schema's if/then/else may refuse an old document"
            ));
        }
    }

    /// Exactly one branch accepts every writer document: one branch reads the writer and every
    /// other branch is disjoint from it.
    fn one_of_holds(
        &self,
        reader: Node<'a>,
        branches: &'a [Value],
        writer: &Writer<'a>,
        depth: usize,
    ) -> bool {
        branches.iter().enumerate().any(|(i, branch)| {
            self.proves(reader.child(branch), writer, depth)
                && branches
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .all(|(_, other)| self.disjoint(reader.child(other), writer, depth))
        })
    }

    /// The reader's `not: excluded` accepts every writer document: no writer document matches
    /// `excluded`, or the writer has a `not` of a schema wider than `excluded`.
    fn excludes(&self, excluded: Node<'a>, writer: &Writer<'a>, depth: usize) -> bool {
        self.disjoint(excluded, writer, depth)
            || writer.nodes.iter().any(|node| {
                node.get("not").is_some_and(|wider| {
                    self.proves(node.child(wider), &self.writer([excluded]), depth)
                })
            })
    }

    /// The reader's `if`/`then`/`else` accepts every writer document.
    fn if_holds(
        &self,
        reader: Node<'a>,
        map: &'a Map<String, Value>,
        condition: &'a Value,
        writer: &Writer<'a>,
        depth: usize,
    ) -> bool {
        let unchanged = writer.nodes.iter().any(|node| {
            ["if", "then", "else"].iter().all(|keyword| {
                match (map.get(*keyword), node.get(keyword)) {
                    (None, None) => true,
                    (Some(mine), Some(theirs)) => {
                        self.same_meaning(reader.child(mine), node.child(theirs))
                    }
                    _ => false,
                }
            })
        });
        let holds = |branch: Option<&'a Value>| {
            branch.is_none_or(|branch| self.proves(reader.child(branch), writer, depth))
        };
        let then_branch = map.get("then");
        let else_branch = map.get("else");
        unchanged
            || (holds(then_branch) && holds(else_branch))
            || (self.proves(reader.child(condition), writer, depth) && holds(then_branch))
            || (self.disjoint(reader.child(condition), writer, depth) && holds(else_branch))
    }

    /// Whether no document matches both `node` and the writer (sound: false when unsure).
    fn disjoint(&self, node: Node<'a>, writer: &Writer<'a>, depth: usize) -> bool {
        if writer.empty {
            return true;
        }
        let nested = self.nest();
        if nested.is_none() || !self.step() {
            return false;
        }
        let map = match node.schema {
            Value::Bool(false) => return true,
            Value::Bool(true) => return self.writer_types(writer).is_empty(),
            Value::Object(map) => map,
            _ => return false,
        };
        let node_types = self.possible_types(node);
        let writer_types = self.writer_types(writer);
        if !node_types.intersects(writer_types) {
            return true;
        }
        if let Some(values) = self.allowed_values(node)
            && values
                .iter()
                .all(|value| !self.writer_may_write(writer, value, writer_types))
        {
            return true;
        }
        if let Some(values) = self.writer_values(writer)
            && values.iter().all(|value| {
                !Types::of_value(value).intersects(node_types)
                    || self
                        .allowed_values(node)
                        .is_some_and(|allowed| !allowed.iter().any(|a| may_be_equal(a, value)))
            })
        {
            return true;
        }
        if let Some(target) = map.get("$ref").and_then(|r| self.resolve(node, r))
            && self.disjoint(target, writer, depth)
        {
            return true;
        }
        if let Some(Value::Array(branches)) = map.get("allOf")
            && branches
                .iter()
                .any(|branch| self.disjoint(node.child(branch), writer, depth))
        {
            return true;
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = map.get(keyword)
                && branches
                    .iter()
                    .all(|branch| self.disjoint(node.child(branch), writer, depth))
            {
                return true;
            }
        }
        if let Some(excluded) = map.get("not")
            && self.proves(node.child(excluded), writer, depth)
        {
            return true;
        }
        if (node_types.within(Types::OBJECT) || writer_types.within(Types::OBJECT))
            && self.disjoint_by_property(node, writer, depth)
        {
            return true;
        }
        self.cases(writer)
            .is_some_and(|cases| cases.iter().all(|case| self.disjoint(node, case, depth)))
    }

    /// Objects of `node` and of the writer disagree on a property one of them requires (a
    /// discriminator such as `"kind": {"const": "a"}`).
    fn disjoint_by_property(&self, node: Node<'a>, writer: &Writer<'a>, depth: usize) -> bool {
        let Some(properties) = node.get("properties").and_then(Value::as_object) else {
            return false;
        };
        let required = string_list(node.get("required"));
        let writer_required: Vec<&str> = writer
            .nodes
            .iter()
            .flat_map(|n| string_list(n.get("required")))
            .collect();
        properties.iter().any(|(name, schema)| {
            if !required.contains(&name.as_str()) && !writer_required.contains(&name.as_str()) {
                return false;
            }
            let theirs: Vec<Node<'a>> = writer
                .nodes
                .iter()
                .filter_map(|n| {
                    n.get("properties")
                        .and_then(|p| p.get(name))
                        .map(|s| n.child(s))
                })
                .collect();
            !theirs.is_empty() && self.disjoint(node.child(schema), &self.writer(theirs), depth + 1)
        })
    }

    /// Whether the writer may write `value`.
    fn writer_may_write(&self, writer: &Writer<'a>, value: &Value, types: Types) -> bool {
        Types::of_value(value).intersects(types)
            && writer.nodes.iter().all(|node| {
                self.allowed_values(*node)
                    .is_none_or(|allowed| allowed.iter().any(|a| may_be_equal(a, value)))
            })
    }

    fn check_types(
        &self,
        reader: Node<'a>,
        writer: &Writer<'a>,
        writer_types: Types,
        path: &str,
        problems: &mut Vec<String>,
    ) {
        let Some(named) = reader.get("type") else {
            return;
        };
        let accepted = named_types(named);
        let mut refused = writer_types.without(accepted);
        // Draft-4's `integer` refuses `1.0`, which this checker counts among integers: only a
        // draft-4 writer that itself wrote `integer` surely writes none.
        if self.draft(reader) == Draft::Draft4
            && accepted.and(Types::NUMBER) == Types::INTEGER
            && writer_types.intersects(Types::INTEGER)
            && !writer.nodes.iter().any(|node| {
                self.draft(*node) == Draft::Draft4
                    && node.get("type").is_some_and(|theirs| {
                        named_types(theirs).and(Types::NUMBER) == Types::INTEGER
                    })
            })
        {
            refused = refused.or(Types::INTEGER);
        }
        if refused.is_empty() {
            return;
        }
        if writer_types == Types::ALL {
            problems.push(format!(
                "{path}: the type was restricted to {:?}",
                accepted.names()
            ));
            return;
        }
        for name in refused.names() {
            problems.push(format!(
                "{path}: type {name:?} is no longer accepted (now {:?})",
                accepted.names()
            ));
        }
    }

    fn check_enum(
        &self,
        reader: Node<'a>,
        writer: &Writer<'a>,
        writer_types: Types,
        path: &str,
        problems: &mut Vec<String>,
    ) {
        let Some(allowed) = self.allowed_values(reader) else {
            return;
        };
        let domain: Vec<Value>;
        let written = match self.writer_values(writer) {
            Some(values) => values,
            None => {
                // Only null and booleans have few enough values to list.
                if !writer_types.within(Types::NULL.or(Types::BOOLEAN)) {
                    problems.push(format!("{path}: an enum or const was added"));
                    return;
                }
                let mut values = Vec::new();
                if writer_types.intersects(Types::NULL) {
                    values.push(Value::Null);
                }
                if writer_types.intersects(Types::BOOLEAN) {
                    values.extend([Value::Bool(true), Value::Bool(false)]);
                }
                domain = values;
                domain.iter().collect()
            }
        };
        for value in written {
            if !allowed.contains(&value) {
                problems.push(format!("{path}: value {value} is no longer allowed"));
            }
        }
    }

    /// The lower (`upper == false`) or upper bounds a node puts on numbers, in its draft.
    fn bounds(&self, node: Node<'a>, upper: bool) -> Vec<Bound<'a>> {
        let (inclusive, exclusive) = if upper {
            ("maximum", "exclusiveMaximum")
        } else {
            ("minimum", "exclusiveMinimum")
        };
        let mut bounds = Vec::new();
        let draft_4 = self.draft(node) == Draft::Draft4;
        if let Some(limit) = node.get(inclusive).filter(|v| v.is_number()) {
            bounds.push(Bound {
                keyword: inclusive,
                limit,
                exclusive: draft_4 && node.get(exclusive) == Some(&Value::Bool(true)),
            });
        }
        if !draft_4 && let Some(limit) = node.get(exclusive).filter(|v| v.is_number()) {
            bounds.push(Bound {
                keyword: exclusive,
                limit,
                exclusive: true,
            });
        }
        bounds
    }

    fn check_numbers(
        &self,
        reader: Node<'a>,
        writer: &Writer<'a>,
        path: &str,
        problems: &mut Vec<String>,
    ) {
        let values = self.writer_values(writer);
        for upper in [false, true] {
            for bound in self.bounds(reader, upper) {
                let within = |limit: &Value, exclusive: bool| match (
                    compare_numbers(limit, bound.limit),
                    upper,
                ) {
                    (Some(Ordering::Greater), false) | (Some(Ordering::Less), true) => true,
                    (Some(Ordering::Equal), _) => exclusive || !bound.exclusive,
                    _ => false,
                };
                let implied = match &values {
                    // A written value is its own inclusive bound.
                    Some(values) => values
                        .iter()
                        .filter(|v| v.is_number())
                        .all(|v| within(v, false)),
                    None => writer.nodes.iter().any(|node| {
                        self.bounds(*node, upper)
                            .iter()
                            .any(|theirs| within(theirs.limit, theirs.exclusive))
                    }),
                };
                if !implied {
                    problems.push(format!("{path}: {} was added or tightened", bound.keyword));
                }
            }
        }
        if let Some(divisor) = reader.get("multipleOf") {
            let divides = |multiple: &Value| match (divisor.as_u64(), multiple.as_i64()) {
                (Some(d), Some(m)) if d > 0 => m.unsigned_abs() % d == 0,
                _ => multiple == divisor,
            };
            let implied = match &values {
                Some(values) => values.iter().filter(|v| v.is_number()).all(|v| divides(v)),
                None => {
                    writer
                        .nodes
                        .iter()
                        .any(|node| node.get("multipleOf").is_some_and(divides))
                        || (divisor.as_u64() == Some(1)
                            && self
                                .writer_types(writer)
                                .and(Types::NUMBER)
                                .within(Types::INTEGER))
                }
            };
            if !implied {
                problems.push(format!("{path}: multipleOf was added or changed"));
            }
        }
    }

    fn check_strings(
        &self,
        reader: Node<'a>,
        writer: &Writer<'a>,
        path: &str,
        problems: &mut Vec<String>,
    ) {
        let values = self.writer_values(writer);
        let lengths = |keyword: &str| -> Vec<u64> {
            writer
                .nodes
                .iter()
                .filter_map(|node| node.get(keyword).and_then(Value::as_u64))
                .collect()
        };
        let string_lengths = |check: &dyn Fn(u64) -> bool| {
            values.as_ref().map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str())
                    .all(|s| check(s.chars().count() as u64))
            })
        };
        if let Some(minimum) = reader.get("minLength") {
            let implied = minimum.as_u64().is_some_and(|minimum| {
                string_lengths(&|length| length >= minimum)
                    .unwrap_or_else(|| lengths("minLength").iter().any(|l| *l >= minimum))
            });
            if !implied {
                problems.push(format!("{path}: minLength was added or tightened"));
            }
        }
        if let Some(maximum) = reader.get("maxLength") {
            let implied = maximum.as_u64().is_some_and(|maximum| {
                string_lengths(&|length| length <= maximum)
                    .unwrap_or_else(|| lengths("maxLength").iter().any(|l| *l <= maximum))
            });
            if !implied {
                problems.push(format!("{path}: maxLength was added or tightened"));
            }
        }
        for keyword in ["pattern", "format"] {
            if let Some(expected) = reader.get(keyword) {
                let unchanged = writer
                    .nodes
                    .iter()
                    .any(|node| node.get(keyword) == Some(expected))
                    || values
                        .as_ref()
                        .is_some_and(|values| values.iter().all(|v| !v.is_string()))
                    || (keyword == "pattern"
                        && expected.as_str().is_some_and(pattern_accepts_every_string));
                if !unchanged {
                    problems.push(format!("{path}: {keyword} was added or changed"));
                }
            }
        }
    }

    /// What a node says about array items; a writer's `unevaluatedItems` counts only where no
    /// other subschema may evaluate items, a reader's wherever it could apply (stricter).
    fn item_model(&self, node: Node<'a>, as_writer: bool) -> ItemModel<'a> {
        let draft = self.draft(node);
        let mut model = ItemModel::default();
        if draft >= Draft::Draft202012 {
            if let Some(Value::Array(prefix)) = node.get("prefixItems") {
                model.prefix = prefix;
            }
            model.rest = node.get("items");
        } else {
            match node.get("items") {
                Some(Value::Array(prefix)) => {
                    model.prefix = prefix;
                    model.rest = node.get("additionalItems");
                }
                items => model.rest = items,
            }
        }
        if model.rest.is_none() && draft >= Draft::Draft201909 {
            let evaluated_elsewhere = IN_PLACE_APPLICATORS
                .iter()
                .any(|keyword| node.get(keyword).is_some());
            if !as_writer || !evaluated_elsewhere {
                model.rest = node.get("unevaluatedItems");
            }
        }
        model
    }

    fn check_arrays(
        &self,
        reader: Node<'a>,
        writer: &Writer<'a>,
        path: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        let mine = self.item_model(reader, false);
        let theirs: Vec<(Node<'a>, ItemModel<'a>)> = writer
            .nodes
            .iter()
            .map(|node| (*node, self.item_model(*node, true)))
            .collect();
        // The most items a writer array may have.
        let longest = writer
            .nodes
            .iter()
            .zip(&theirs)
            .filter_map(|(node, (_, model))| {
                let declared = node.get("maxItems").and_then(Value::as_u64);
                let closed =
                    (model.rest == Some(&Value::Bool(false))).then_some(model.prefix.len() as u64);
                declared.into_iter().chain(closed).min()
            })
            .min();
        let prefix_length = theirs
            .iter()
            .map(|(_, model)| model.prefix.len())
            .chain([mine.prefix.len()])
            .max()
            .unwrap_or(0);
        for index in 0..prefix_length {
            if longest.is_some_and(|longest| longest <= index as u64) {
                break;
            }
            let Some(expected) = mine.item(index) else {
                continue;
            };
            let written = self.writer(
                theirs
                    .iter()
                    .filter_map(|(node, model)| model.item(index).map(|s| node.child(s))),
            );
            problems.extend(self.reads(
                reader.child(expected),
                &written,
                &format!("{path}/items/{index}"),
                depth + 1,
            ));
        }
        if let Some(expected) = mine.rest
            && longest.is_none_or(|longest| longest > prefix_length as u64)
        {
            let written = self.writer(
                theirs
                    .iter()
                    .filter_map(|(node, model)| model.rest.map(|s| node.child(s))),
            );
            problems.extend(self.reads(
                reader.child(expected),
                &written,
                &format!("{path}/items"),
                depth + 1,
            ));
        }
        if let Some(minimum) = reader.get("minItems") {
            let implied = minimum.as_u64().is_some_and(|minimum| {
                writer.nodes.iter().any(|node| {
                    node.get("minItems")
                        .and_then(Value::as_u64)
                        .is_some_and(|m| m >= minimum)
                })
            });
            if !implied {
                problems.push(format!("{path}: minItems was added or tightened"));
            }
        }
        if let Some(maximum) = reader.get("maxItems") {
            let implied = maximum
                .as_u64()
                .zip(longest)
                .is_some_and(|(maximum, longest)| longest <= maximum);
            if !implied {
                problems.push(format!("{path}: maxItems was added or tightened"));
            }
        }
        if reader.get("uniqueItems") == Some(&Value::Bool(true)) {
            let implied = longest.is_some_and(|longest| longest <= 1)
                || writer
                    .nodes
                    .iter()
                    .any(|node| node.get("uniqueItems") == Some(&Value::Bool(true)));
            if !implied {
                problems.push(format!("{path}: uniqueItems was added"));
            }
        }
        if self.draft(reader) >= Draft::Draft6
            && let Some(wanted) = reader.get("contains")
        {
            problems.extend(self.contains_problems(reader, wanted, writer, longest, path, depth));
        }
    }

    /// `contains` with its `minContains`/`maxContains` (2019-09 on; before, at least one).
    fn contains_counts(&self, node: Node<'a>) -> (u64, Option<u64>) {
        if self.draft(node) >= Draft::Draft201909 {
            (
                node.get("minContains").and_then(Value::as_u64).unwrap_or(1),
                node.get("maxContains").and_then(Value::as_u64),
            )
        } else {
            (1, None)
        }
    }

    /// Problems with the reader's `contains` (`longest`: the most items a writer array has).
    fn contains_problems(
        &self,
        reader: Node<'a>,
        wanted: &'a Value,
        writer: &Writer<'a>,
        longest: Option<u64>,
        path: &str,
        depth: usize,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let (at_least, at_most) = self.contains_counts(reader);
        let their_contains: Vec<(Node<'a>, &'a Value, u64, Option<u64>)> = writer
            .nodes
            .iter()
            .filter(|node| self.draft(**node) >= Draft::Draft6)
            .filter_map(|node| {
                let (least, most) = self.contains_counts(*node);
                node.get("contains").map(|c| (*node, c, least, most))
            })
            .collect();
        if at_least > 0
            && !their_contains.iter().any(|(node, theirs, least, _)| {
                *least >= at_least
                    && self.proves(
                        reader.child(wanted),
                        &self.writer([node.child(theirs)]),
                        depth + 1,
                    )
            })
        {
            problems.push(format!(
                "{path}: contains (or minContains) was added or tightened"
            ));
        }
        if let Some(at_most) = at_most {
            let implied = longest.is_some_and(|longest| longest <= at_most)
                || their_contains.iter().any(|(node, theirs, _, most)| {
                    most.is_some_and(|most| most <= at_most)
                        && self.same_meaning(reader.child(wanted), node.child(theirs))
                });
            if !implied {
                problems.push(format!("{path}: maxContains was added or tightened"));
            }
        }
        problems
    }

    /// What a node says about object properties; a writer's `unevaluatedProperties` counts only
    /// where no other subschema may evaluate properties, a reader's wherever it could apply.
    fn object_model(&self, node: Node<'a>, as_writer: bool) -> ObjectModel<'a> {
        let mut extra = node.get("additionalProperties");
        if extra.is_none() && self.draft(node) >= Draft::Draft201909 {
            let evaluated_elsewhere = IN_PLACE_APPLICATORS
                .iter()
                .any(|keyword| node.get(keyword).is_some());
            if !as_writer || !evaluated_elsewhere {
                extra = node.get("unevaluatedProperties");
            }
        }
        ObjectModel {
            properties: node.get("properties").and_then(Value::as_object),
            patterns: node.get("patternProperties").and_then(Value::as_object),
            extra,
        }
    }

    /// The schemas the reader may apply to property `name` (all it surely or possibly applies).
    fn reader_property(model: &ObjectModel<'a>, name: &str) -> Vec<&'a Value> {
        let mut schemas: Vec<&'a Value> = model.property(name).into_iter().collect();
        let mut surely_matched = false;
        for (pattern, schema) in model.patterns.into_iter().flatten() {
            match pattern_matches(pattern, name) {
                Some(false) => {}
                Some(true) => {
                    surely_matched = true;
                    schemas.push(schema);
                }
                None => schemas.push(schema),
            }
        }
        if model.property(name).is_none() && !surely_matched {
            schemas.extend(model.extra);
        }
        schemas
    }

    /// The schemas the writer surely applies to property `name`.
    fn writer_property(node: Node<'a>, model: &ObjectModel<'a>, name: &str) -> Vec<Node<'a>> {
        let mut schemas: Vec<Node<'a>> = model
            .property(name)
            .map(|s| node.child(s))
            .into_iter()
            .collect();
        let mut maybe_matched = false;
        for (pattern, schema) in model.patterns.into_iter().flatten() {
            match pattern_matches(pattern, name) {
                Some(false) => {}
                Some(true) => {
                    maybe_matched = true;
                    schemas.push(node.child(schema));
                }
                None => maybe_matched = true,
            }
        }
        if model.property(name).is_none() && !maybe_matched {
            schemas.extend(model.extra.map(|s| node.child(s)));
        }
        schemas
    }

    fn check_objects(
        &self,
        reader: Node<'a>,
        writer: &Writer<'a>,
        path: &str,
        depth: usize,
        problems: &mut Vec<String>,
    ) {
        let mine = self.object_model(reader, false);
        let theirs: Vec<(Node<'a>, ObjectModel<'a>)> = writer
            .nodes
            .iter()
            .map(|node| (*node, self.object_model(*node, true)))
            .collect();
        let mut names: Vec<&'a str> = mine
            .properties
            .into_iter()
            .chain(theirs.iter().filter_map(|(_, model)| model.properties))
            .flat_map(|properties| properties.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let written = self.writer(
                theirs
                    .iter()
                    .flat_map(|(node, model)| Self::writer_property(*node, model, name)),
            );
            for expected in Self::reader_property(&mine, name) {
                problems.extend(self.reads(
                    reader.child(expected),
                    &written,
                    &format!("{path}/properties/{name}"),
                    depth + 1,
                ));
            }
        }
        // Properties that no `properties` of either side names.
        let my_patterns = mine
            .patterns
            .map(|p| p.keys().collect::<Vec<_>>())
            .unwrap_or_default();
        if let Some(expected) = mine.extra {
            let written = self.writer(theirs.iter().filter_map(|(node, model)| {
                let only_shared_patterns = model
                    .patterns
                    .is_none_or(|patterns| patterns.keys().all(|p| my_patterns.contains(&p)));
                only_shared_patterns
                    .then_some(model.extra.map(|s| node.child(s)))
                    .flatten()
            }));
            problems.extend(self.reads(
                reader.child(expected),
                &written,
                &format!("{path}/additionalProperties"),
                depth + 1,
            ));
        }
        for (pattern, expected) in mine.patterns.into_iter().flatten() {
            let written = self.writer(theirs.iter().filter_map(|(node, model)| {
                match model.patterns.and_then(|patterns| patterns.get(pattern)) {
                    Some(same_pattern) => Some(node.child(same_pattern)),
                    None if !model.has_patterns() => model.extra.map(|s| node.child(s)),
                    None => None,
                }
            }));
            problems.extend(self.reads(
                reader.child(expected),
                &written,
                &format!("{path}/patternProperties/{pattern}"),
                depth + 1,
            ));
        }
        let writer_required: Vec<&str> = writer
            .nodes
            .iter()
            .flat_map(|node| string_list(node.get("required")))
            .collect();
        for required in string_list(reader.get("required")) {
            if !writer_required.contains(&required) {
                problems.push(format!("{path}: property {required:?} is newly required"));
            }
        }
        if let Some(minimum) = reader.get("minProperties") {
            let mut distinct_required = writer_required.clone();
            distinct_required.sort_unstable();
            distinct_required.dedup();
            let implied = minimum.as_u64().is_some_and(|minimum| {
                distinct_required.len() as u64 >= minimum
                    || writer.nodes.iter().any(|node| {
                        node.get("minProperties")
                            .and_then(Value::as_u64)
                            .is_some_and(|m| m >= minimum)
                    })
            });
            if !implied {
                problems.push(format!("{path}: minProperties was added or tightened"));
            }
        }
        if let Some(maximum) = reader.get("maxProperties") {
            let implied = maximum.as_u64().is_some_and(|maximum| {
                theirs.iter().any(|(node, model)| {
                    node.get("maxProperties")
                        .and_then(Value::as_u64)
                        .is_some_and(|m| m <= maximum)
                        || (!model.has_patterns()
                            && model.extra == Some(&Value::Bool(false))
                            && model.properties.map_or(0, Map::len) as u64 <= maximum)
                })
            });
            if !implied {
                problems.push(format!("{path}: maxProperties was added or tightened"));
            }
        }
        problems.extend(self.dependency_problems(
            reader,
            writer,
            &theirs,
            &writer_required,
            path,
            depth,
        ));
        if self.draft(reader) >= Draft::Draft6
            && let Some(names) = reader.get("propertyNames")
        {
            // Property names are strings, and meet the writer's own `propertyNames`.
            let any_string = Node {
                schema: &ANY_STRING,
                side: Side::Writer,
            };
            let written_names = self.writer(
                std::iter::once(any_string).chain(
                    writer
                        .nodes
                        .iter()
                        .filter(|node| self.draft(**node) >= Draft::Draft6)
                        .filter_map(|node| node.get("propertyNames").map(|n| node.child(n))),
                ),
            );
            problems.extend(self.reads(
                reader.child(names),
                &written_names,
                &format!("{path}/propertyNames"),
                depth + 1,
            ));
        }
    }

    /// A node's dependent requirements (`property -> required names`) and dependent schemas
    /// (`property -> schema`), from `dependencies` (up to draft-07) or `dependentRequired` and
    /// `dependentSchemas` (2019-09 on).
    fn dependents(&self, node: Node<'a>) -> Dependents<'a> {
        let mut required = Vec::new();
        let mut schemas = Vec::new();
        let entries = |keyword: &str| {
            node.get(keyword)
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str(), value))
        };
        if self.draft(node) <= Draft::Draft7 {
            for (name, value) in entries("dependencies") {
                match value {
                    Value::Array(_) => required.push((name, string_list(Some(value)))),
                    _ => schemas.push((name, value)),
                }
            }
        } else {
            for (name, value) in entries("dependentRequired") {
                required.push((name, string_list(Some(value))));
            }
            schemas.extend(entries("dependentSchemas"));
        }
        Dependents { required, schemas }
    }

    /// Problems with the reader's dependent requirements and dependent schemas.
    fn dependency_problems(
        &self,
        reader: Node<'a>,
        writer: &Writer<'a>,
        theirs: &[(Node<'a>, ObjectModel<'a>)],
        writer_required: &[&str],
        path: &str,
        depth: usize,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let Dependents {
            required: my_required,
            schemas: my_schemas,
        } = self.dependents(reader);
        if my_required.is_empty() && my_schemas.is_empty() {
            return problems;
        }
        let their_dependents: Vec<_> = writer
            .nodes
            .iter()
            .map(|node| (*node, self.dependents(*node)))
            .collect();
        let forbidden = |name: &str| theirs.iter().any(|(_, model)| model.forbids(name));
        for (name, needed) in my_required {
            if forbidden(name) {
                continue;
            }
            for dependency in needed {
                let implied = writer_required.contains(&dependency)
                    || their_dependents.iter().any(|(_, dependents)| {
                        dependents
                            .required
                            .iter()
                            .any(|(theirs, list)| *theirs == name && list.contains(&dependency))
                    });
                if !implied {
                    problems.push(format!(
                        "{path}: property {dependency:?} is newly required when {name:?} is present"
                    ));
                }
            }
        }
        for (name, schema) in my_schemas {
            if forbidden(name) {
                continue;
            }
            // When `name` is present the document meets the writer and its own dependent schemas.
            let mut when_present = writer.clone();
            for (node, dependents) in &their_dependents {
                for (theirs, their_schema) in &dependents.schemas {
                    if *theirs == name {
                        self.join(&mut when_present, node.child(their_schema));
                    }
                }
            }
            problems.extend(self.reads(
                reader.child(schema),
                &when_present,
                &format!("{path}/dependentSchemas/{name}"),
                depth,
            ));
        }
        problems
    }
}
