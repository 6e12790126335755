//! The registry's state: schemas by id, versions by subject, compatibility levels. Kept in memory
//! and, when a file is given, written to it (atomically: temporary file, fsync, rename) after every
//! change, so a restarted registry serves the same ids.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compat::CompatibilityLevel;
use crate::error::RegistryError;

/// The only schema type this registry stores.
pub const JSON_SCHEMA_TYPE: &str = "JSON";

/// A schema as stored: the text exactly as first registered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSchema {
    /// Global id.
    pub id: u32,
    /// Always `JSON` here.
    pub schema_type: String,
    /// The text as registered.
    pub schema: String,
    #[serde(skip)]
    parsed: Value,
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SubjectVersion {
    /// 1, 2, ...
    pub version: u32,
    /// The schema's global id.
    pub id: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    schemas: Vec<StoredSchema>,
    subjects: BTreeMap<String, Vec<SubjectVersion>>,
    global_level: CompatibilityLevel,
    subject_levels: BTreeMap<String, CompatibilityLevel>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            schemas: Vec::new(),
            subjects: BTreeMap::new(),
            global_level: CompatibilityLevel::Backward,
            subject_levels: BTreeMap::new(),
        }
    }
}

/// Which version of a subject a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The highest version.
    Latest,
    /// A given version.
    Number(u32),
}

impl VersionSelector {
    /// Parses `latest`, `-1` or a positive number.
    pub fn parse(raw: &str) -> Result<Self, RegistryError> {
        match raw {
            "latest" | "-1" => Ok(Self::Latest),
            number => match number.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Self::Number(n)),
                _ => Err(RegistryError::invalid_version(raw)),
            },
        }
    }
}

/// A registered schema seen through one of its subjects.
#[derive(Debug, Clone)]
pub struct SubjectSchema {
    /// The subject.
    pub subject: String,
    /// The version under the subject.
    pub version: u32,
    /// The schema.
    pub schema: StoredSchema,
}

/// The registry's state, safe to share between requests.
#[derive(Debug)]
pub struct Store {
    state: RwLock<State>,
    file: Option<PathBuf>,
}

impl Store {
    /// A store kept only in memory.
    pub fn in_memory() -> Self {
        Self {
            state: RwLock::new(State::default()),
            file: None,
        }
    }

    /// A store kept in `file`, loading what it holds if it exists.
    pub fn open(file: &Path) -> Result<Self, String> {
        let state = match std::fs::read(file) {
            Ok(bytes) => {
                let mut state: State = serde_json::from_slice(&bytes).map_err(|e| {
                    format!("{} is not a schema registry data file: {e}", file.display())
                })?;
                for schema in &mut state.schemas {
                    schema.parsed = serde_json::from_str(&schema.schema).map_err(|e| {
                        format!(
                            "{} holds schema {} that is not JSON: {e}",
                            file.display(),
                            schema.id
                        )
                    })?;
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        Ok(Self {
            state: RwLock::new(state),
            file: Some(file.to_owned()),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn persist(&self, state: &State) -> Result<(), RegistryError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let write = || -> std::io::Result<()> {
            let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
            let temporary = file.with_extension("tmp");
            let mut out = std::fs::File::create(&temporary)?;
            out.write_all(&bytes)?;
            out.sync_all()?;
            std::fs::rename(&temporary, file)
        };
        write()
            .map_err(|e| RegistryError::storage(&format!("cannot write {}: {e}", file.display())))
    }

    /// Registers `schema` under `subject`, or returns the id it already has there.
    pub fn register(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
    ) -> Result<u32, RegistryError> {
        let parsed = parse_schema(schema_type, schema)?;
        let mut state = self.write();
        let versions = state.subjects.get(subject).cloned().unwrap_or_default();
        if let Some(existing) = versions
            .iter()
            .find(|v| state.schemas[index(v.id)].parsed == parsed)
        {
            return Ok(existing.id);
        }
        let level = state
            .subject_levels
            .get(subject)
            .copied()
            .unwrap_or(state.global_level);
        let checked: Vec<&SubjectVersion> = if level.is_transitive() {
            versions.iter().collect()
        } else {
            versions.last().into_iter().collect()
        };
        for old in checked {
            let problems = level.problems(&parsed, &state.schemas[index(old.id)].parsed);
            if !problems.is_empty() {
                return Err(RegistryError::incompatible(
                    subject,
                    old.version,
                    level,
                    &problems,
                ));
            }
        }
        let id = match state
            .schemas
            .iter()
            .find(|s| s.schema_type == schema_type && s.parsed == parsed)
        {
            Some(same) => same.id,
            None => {
                let id = u32::try_from(state.schemas.len() + 1)
                    .map_err(|_| RegistryError::storage("too many schemas"))?;
                state.schemas.push(StoredSchema {
                    id,
                    schema_type: schema_type.to_owned(),
                    schema: schema.to_owned(),
                    parsed,
                });
                id
            }
        };
        let version = versions.last().map_or(1, |v| v.version + 1);
        state
            .subjects
            .entry(subject.to_owned())
            .or_default()
            .push(SubjectVersion { version, id });
        self.persist(&state)?;
        Ok(id)
    }

    /// Finds `schema` among the versions of `subject`.
    pub fn lookup(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
    ) -> Result<SubjectSchema, RegistryError> {
        let parsed = parse_schema(schema_type, schema)?;
        let state = self.read();
        let versions = state
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        versions
            .iter()
            .find(|v| state.schemas[index(v.id)].parsed == parsed)
            .map(|v| SubjectSchema {
                subject: subject.to_owned(),
                version: v.version,
                schema: state.schemas[index(v.id)].clone(),
            })
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// The schema with a global id.
    pub fn schema_by_id(&self, id: u32) -> Result<StoredSchema, RegistryError> {
        let state = self.read();
        id.checked_sub(1)
            .and_then(|i| state.schemas.get(i as usize))
            .cloned()
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// Every subject and version that uses a schema id.
    pub fn subject_versions_of(&self, id: u32) -> Vec<(String, u32)> {
        let state = self.read();
        state
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |v| v.id == id)
                    .map(move |v| (subject.clone(), v.version))
            })
            .collect()
    }

    /// All subjects, sorted.
    pub fn subjects(&self) -> Vec<String> {
        self.read().subjects.keys().cloned().collect()
    }

    /// The version numbers of a subject.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let state = self.read();
        let versions = state
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        Ok(versions.iter().map(|v| v.version).collect())
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
    ) -> Result<SubjectSchema, RegistryError> {
        let state = self.read();
        let versions = state
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::subject_not_found(subject))?;
        let found = match selector {
            VersionSelector::Latest => versions.last(),
            VersionSelector::Number(n) => versions.iter().find(|v| v.version == n),
        };
        let found = found.ok_or_else(RegistryError::version_not_found)?;
        Ok(SubjectSchema {
            subject: subject.to_owned(),
            version: found.version,
            schema: state.schemas[index(found.id)].clone(),
        })
    }

    /// Problems that would keep `schema` from being registered after `selector` of `subject`.
    pub fn compatibility(
        &self,
        subject: &str,
        selector: VersionSelector,
        schema_type: &str,
        schema: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let parsed = parse_schema(schema_type, schema)?;
        let state = self.read();
        let level = state
            .subject_levels
            .get(subject)
            .copied()
            .unwrap_or(state.global_level);
        let Some(versions) = state.subjects.get(subject) else {
            // Nothing registered yet: anything is compatible with nothing.
            return Ok(Vec::new());
        };
        let old = match selector {
            VersionSelector::Latest => versions.last(),
            VersionSelector::Number(n) => versions.iter().find(|v| v.version == n),
        }
        .ok_or_else(RegistryError::version_not_found)?;
        Ok(level.problems(&parsed, &state.schemas[index(old.id)].parsed))
    }

    /// The global compatibility level.
    pub fn global_level(&self) -> CompatibilityLevel {
        self.read().global_level
    }

    /// Sets the global compatibility level.
    pub fn set_global_level(&self, level: CompatibilityLevel) -> Result<(), RegistryError> {
        let mut state = self.write();
        state.global_level = level;
        self.persist(&state)
    }

    /// The level set for a subject, if any.
    pub fn subject_level(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.read().subject_levels.get(subject).copied()
    }

    /// Sets the level of one subject.
    pub fn set_subject_level(
        &self,
        subject: &str,
        level: CompatibilityLevel,
    ) -> Result<(), RegistryError> {
        let mut state = self.write();
        state.subject_levels.insert(subject.to_owned(), level);
        self.persist(&state)
    }
}

fn index(id: u32) -> usize {
    id as usize - 1
}

fn parse_schema(schema_type: &str, schema: &str) -> Result<Value, RegistryError> {
    if schema_type != JSON_SCHEMA_TYPE {
        return Err(RegistryError::invalid_schema(&format!(
            "schemaType {schema_type:?} is not supported; this registry stores JSON schemas only (schemaType \"JSON\")"
        )));
    }
    let parsed: Value = serde_json::from_str(schema)
        .map_err(|e| RegistryError::invalid_schema(&format!("the schema is not JSON: {e}")))?;
    jsonschema::validator_for(&parsed).map_err(|e| {
        RegistryError::invalid_schema(&format!("the schema is not a valid JSON Schema: {e}"))
    })?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use auction_schemas::event::{SCHEMA_V1, SCHEMA_V2};

    #[test]
    fn registering_is_idempotent_and_ids_are_global() {
        let store = Store::in_memory();
        assert_eq!(
            store.register("auction-value", "JSON", SCHEMA_V1).unwrap(),
            1
        );
        assert_eq!(
            store.register("auction-value", "JSON", SCHEMA_V1).unwrap(),
            1
        );
        assert_eq!(
            store.register("auction-value", "JSON", SCHEMA_V2).unwrap(),
            2
        );
        // The same schema under another subject keeps its id.
        assert_eq!(store.register("other-value", "JSON", SCHEMA_V1).unwrap(), 1);
        assert_eq!(store.versions("auction-value").unwrap(), [1, 2]);
        assert_eq!(
            store
                .version("auction-value", VersionSelector::Latest)
                .unwrap()
                .schema
                .id,
            2
        );
        assert_eq!(store.schema_by_id(1).unwrap().schema, SCHEMA_V1);
        assert_eq!(
            store.subject_versions_of(1),
            [
                ("auction-value".to_owned(), 1),
                ("other-value".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn state_survives_a_restart_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("registry.json");
        {
            let store = Store::open(&file).unwrap();
            store.register("auction-value", "JSON", SCHEMA_V1).unwrap();
            store
                .set_subject_level("auction-value", CompatibilityLevel::Full)
                .unwrap();
        }
        let store = Store::open(&file).unwrap();
        assert_eq!(store.schema_by_id(1).unwrap().schema, SCHEMA_V1);
        assert_eq!(
            store.subject_level("auction-value"),
            Some(CompatibilityLevel::Full)
        );
        assert_eq!(
            store.register("auction-value", "JSON", SCHEMA_V1).unwrap(),
            1
        );
    }

    #[test]
    fn bad_schemas_and_selectors_are_refused_with_confluent_codes() {
        let store = Store::in_memory();
        assert_eq!(
            store.register("s", "AVRO", "{}").unwrap_err().error_code,
            42201
        );
        assert_eq!(
            store
                .register("s", "JSON", "{not json")
                .unwrap_err()
                .error_code,
            42201
        );
        assert_eq!(
            store
                .register("s", "JSON", r#"{"type": 5}"#)
                .unwrap_err()
                .error_code,
            42201
        );
        assert_eq!(store.versions("missing").unwrap_err().error_code, 40401);
        assert_eq!(store.schema_by_id(7).unwrap_err().error_code, 40403);
        assert_eq!(VersionSelector::parse("0").unwrap_err().error_code, 42202);
        assert_eq!(
            VersionSelector::parse("-1").unwrap(),
            VersionSelector::Latest
        );
    }
}
