//! The registry's state: schemas by id, versions by subject, compatibility levels. Kept in memory
//! and, when a file is given, in that file too, so a restarted registry serves the same ids.
//!
//! A change is made on a copy of the state, written to the file, and only then made visible: when
//! the write fails the client gets 50001 and the registry keeps the state it had, so every id it
//! answers with is on disk. The file is written atomically: `<file>.tmp` in the same directory,
//! fsync, rename over the file, fsync of the directory. Opening refuses a file that is not one this
//! registry wrote (never starting empty over it) and a file another registry process holds: the
//! store keeps an advisory lock on `<file>.lock` for its life. The writes are blocking; the
//! server runs them off its async threads.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// Soft-deleted: hidden unless asked for, not checked against, still readable by id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Which versions a read sees, after Confluent's `deleted` and `deletedOnly` parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletedVersions {
    /// Live versions only (the default).
    #[default]
    Exclude,
    /// Live and soft-deleted versions (`deleted=true`).
    Include,
    /// Soft-deleted versions only (`deletedOnly=true`).
    Only,
}

impl DeletedVersions {
    /// From the two query flags; `deletedOnly` wins, as in Confluent's registry.
    pub fn from_flags(deleted: bool, deleted_only: bool) -> Self {
        match (deleted, deleted_only) {
            (_, true) => Self::Only,
            (true, false) => Self::Include,
            (false, false) => Self::Exclude,
        }
    }

    fn shows(self, version: &SubjectVersion) -> bool {
        match self {
            Self::Exclude => !version.deleted,
            Self::Include => true,
            Self::Only => version.deleted,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// How much the registry keeps: registering beyond these is refused (42205) and stores nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// The most subjects, soft-deleted ones included (they keep their versions until deleted
    /// permanently).
    pub max_subjects: usize,
    /// The most versions of one subject, soft-deleted ones included.
    pub max_versions_per_subject: usize,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        Self {
            max_subjects: 10_000,
            max_versions_per_subject: 1_000,
        }
    }
}

/// The registry's state, safe to share between requests.
#[derive(Debug)]
pub struct Store {
    state: RwLock<State>,
    /// The data file, when there is one. Its mutex also makes changes one at a time; readers never
    /// wait for the disk, only for the moment a written state replaces the old one.
    data_file: Mutex<Option<DataFile>>,
}

/// What a change did: callers that changed nothing need not write.
enum Edit<T> {
    Unchanged(T),
    Changed(T),
}

impl Store {
    /// A store kept only in memory.
    pub fn in_memory() -> Self {
        Self {
            state: RwLock::new(State::default()),
            data_file: Mutex::new(None),
        }
    }

    /// A store kept in `file`, loading what it holds if it exists. Refused, with a sentence, when
    /// the file is not a registry data file, cannot be read, or another registry holds it.
    pub fn open(file: &Path) -> Result<Self, String> {
        let (data_file, state) = DataFile::open(file)?;
        Ok(Self {
            state: RwLock::new(state),
            data_file: Mutex::new(Some(data_file)),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `edit` to a copy of the state, writes the copy to the data file (if any) and only
    /// then makes it the state: a failed write changes nothing.
    fn change<T>(
        &self,
        edit: impl FnOnce(&mut State) -> Result<Edit<T>, RegistryError>,
    ) -> Result<T, RegistryError> {
        let data_file = self
            .data_file
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = self.read().clone();
        match edit(&mut next)? {
            Edit::Unchanged(value) => Ok(value),
            Edit::Changed(value) => {
                if let Some(data_file) = data_file.as_ref() {
                    data_file.write(&next)?;
                }
                *self.write() = next;
                Ok(value)
            }
        }
    }

    /// Registers `schema` under `subject` within the default [`RegistryLimits`], or returns the
    /// id it already has there.
    pub fn register(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
    ) -> Result<u32, RegistryError> {
        self.register_within(subject, schema_type, schema, &RegistryLimits::default())
    }

    /// Registers `schema` under `subject`, or returns the id it already has there; a new subject
    /// or version beyond `limits` is refused (42205).
    ///
    /// Only live versions count: a schema whose version was soft-deleted gets a new version (with
    /// its old id), and compatibility is checked against live versions only, as in Confluent's
    /// registry.
    pub fn register_within(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        limits: &RegistryLimits,
    ) -> Result<u32, RegistryError> {
        let parsed = parse_schema(schema_type, schema)?;
        if let Some(id) = self.read().registered_id(subject, &parsed) {
            return Ok(id);
        }
        self.change(|state| {
            if let Some(id) = state.registered_id(subject, &parsed) {
                return Ok(Edit::Unchanged(id));
            }
            let versions = state.subjects.get(subject).cloned().unwrap_or_default();
            if versions.is_empty() && state.subjects.len() >= limits.max_subjects {
                return Err(RegistryError::limit_reached(&format!(
                    "this registry keeps at most {} subjects (SCHEMA_REGISTRY_MAX_SUBJECTS), \
                     soft-deleted ones included; subject \"{subject}\" would be one more \
                     (delete unused subjects permanently to make room)",
                    limits.max_subjects
                )));
            }
            if versions.len() >= limits.max_versions_per_subject {
                return Err(RegistryError::limit_reached(&format!(
                    "subject \"{subject}\" has {} versions, the most this registry keeps per \
                     subject (SCHEMA_REGISTRY_MAX_VERSIONS_PER_SUBJECT), soft-deleted ones \
                     included (delete old versions permanently to make room)",
                    versions.len()
                )));
            }
            state.check_against_subject(subject, &parsed)?;
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
                        parsed: parsed.clone(),
                    });
                    id
                }
            };
            let version = versions.last().map_or(1, |v| v.version + 1);
            state
                .subjects
                .entry(subject.to_owned())
                .or_default()
                .push(SubjectVersion {
                    version,
                    id,
                    deleted: false,
                });
            Ok(Edit::Changed(id))
        })
    }

    /// Finds `schema` among the versions of `subject` that `deleted` shows.
    pub fn lookup(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
        deleted: DeletedVersions,
    ) -> Result<SubjectSchema, RegistryError> {
        let parsed = parse_schema(schema_type, schema)?;
        let state = self.read();
        let versions = state.shown_versions(subject, deleted)?;
        versions
            .iter()
            .find(|v| state.schemas[index(v.id)].parsed == parsed)
            .map(|v| state.subject_schema(subject, v))
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// The schema with a global id. Ids stay readable after their versions are deleted, so that
    /// records already written with them can still be read.
    pub fn schema_by_id(&self, id: u32) -> Result<StoredSchema, RegistryError> {
        let state = self.read();
        id.checked_sub(1)
            .and_then(|i| state.schemas.get(i as usize))
            .cloned()
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// Every subject and version that uses a schema id, among the versions `deleted` shows.
    pub fn subject_versions_of(&self, id: u32, deleted: DeletedVersions) -> Vec<(String, u32)> {
        let state = self.read();
        state
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |v| v.id == id && deleted.shows(v))
                    .map(move |v| (subject.clone(), v.version))
            })
            .collect()
    }

    /// The subjects that have a live version, sorted.
    pub fn subjects(&self) -> Vec<String> {
        self.listed_subjects(DeletedVersions::Exclude)
    }

    /// The subjects that have a version `deleted` shows (with [`DeletedVersions::Only`]: the
    /// subjects whose versions are all soft-deleted), sorted.
    pub fn listed_subjects(&self, deleted: DeletedVersions) -> Vec<String> {
        let state = self.read();
        state
            .subjects
            .iter()
            .filter(|(_, versions)| match deleted {
                DeletedVersions::Exclude | DeletedVersions::Include => {
                    versions.iter().any(|v| deleted.shows(v))
                }
                // A subject is deleted once all its versions are.
                DeletedVersions::Only => versions.iter().all(|v| v.deleted),
            })
            .map(|(subject, _)| subject.clone())
            .collect()
    }

    /// The live version numbers of a subject.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        self.listed_versions(subject, DeletedVersions::Exclude)
    }

    /// The version numbers of a subject that `deleted` shows.
    pub fn listed_versions(
        &self,
        subject: &str,
        deleted: DeletedVersions,
    ) -> Result<Vec<u32>, RegistryError> {
        let state = self.read();
        Ok(state
            .shown_versions(subject, deleted)?
            .iter()
            .map(|v| v.version)
            .collect())
    }

    /// One version of a subject among those `deleted` shows (`latest`: the highest of them).
    pub fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
        deleted: DeletedVersions,
    ) -> Result<SubjectSchema, RegistryError> {
        let state = self.read();
        let versions = state.shown_versions(subject, deleted)?;
        let found = select(&versions, selector).ok_or_else(RegistryError::version_not_found)?;
        Ok(state.subject_schema(subject, found))
    }

    /// Problems that would keep `schema` from being registered after `selector` of `subject`,
    /// at the subject's level (live versions only).
    pub fn compatibility(
        &self,
        subject: &str,
        selector: VersionSelector,
        schema_type: &str,
        schema: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let parsed = parse_schema(schema_type, schema)?;
        let state = self.read();
        let level = state.level_of(subject);
        let versions = state.live_versions(subject);
        if versions.is_empty() {
            // Nothing registered yet: anything is compatible with nothing.
            return Ok(Vec::new());
        }
        let old = select(&versions, selector).ok_or_else(RegistryError::version_not_found)?;
        Ok(level.problems(&parsed, &state.schemas[index(old.id)].parsed))
    }

    /// Problems that would keep `schema` from being registered under `subject`: the same check
    /// as registering (the latest live version, or every live version at a transitive level).
    pub fn compatibility_with_subject(
        &self,
        subject: &str,
        schema_type: &str,
        schema: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let parsed = parse_schema(schema_type, schema)?;
        let state = self.read();
        let level = state.level_of(subject);
        let versions = state.live_versions(subject);
        Ok(checked_versions(&versions, level)
            .iter()
            .flat_map(|old| {
                level
                    .problems(&parsed, &state.schemas[index(old.id)].parsed)
                    .into_iter()
                    .map(move |problem| format!("version {}: {problem}", old.version))
            })
            .collect())
    }

    /// Deletes one version: soft (hidden, kept) by default, or permanently (`permanent`) once it
    /// was soft-deleted, as in Confluent's registry. Returns the version number.
    pub fn delete_version(
        &self,
        subject: &str,
        selector: VersionSelector,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        self.change(|state| {
            let versions = state
                .subjects
                .get_mut(subject)
                .ok_or_else(|| RegistryError::subject_not_found(subject))?;
            let position = match selector {
                // `latest` names the highest live version.
                VersionSelector::Latest => versions.iter().rposition(|v| !v.deleted),
                VersionSelector::Number(n) => versions.iter().position(|v| v.version == n),
            }
            .ok_or_else(RegistryError::version_not_found)?;
            let found = versions[position];
            match (permanent, found.deleted) {
                (false, false) => versions[position].deleted = true,
                (false, true) => {
                    return Err(RegistryError::version_soft_deleted(subject, found.version));
                }
                (true, false) => {
                    return Err(RegistryError::version_not_soft_deleted(
                        subject,
                        found.version,
                    ));
                }
                (true, true) => {
                    versions.remove(position);
                    if versions.is_empty() {
                        state.subjects.remove(subject);
                        state.subject_levels.remove(subject);
                    }
                }
            }
            Ok(Edit::Changed(found.version))
        })
    }

    /// Deletes a subject: soft-deletes its live versions, or (`permanent`, once they all were
    /// soft-deleted) removes the subject and its compatibility level. Returns the versions deleted.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        self.change(|state| {
            let versions = state
                .subjects
                .get_mut(subject)
                .ok_or_else(|| RegistryError::subject_not_found(subject))?;
            let all_deleted = versions.iter().all(|v| v.deleted);
            let deleted = if permanent {
                if !all_deleted {
                    return Err(RegistryError::subject_not_soft_deleted(subject));
                }
                let numbers = versions.iter().map(|v| v.version).collect();
                state.subjects.remove(subject);
                state.subject_levels.remove(subject);
                numbers
            } else {
                if all_deleted {
                    return Err(RegistryError::subject_soft_deleted(subject));
                }
                versions
                    .iter_mut()
                    .filter(|v| !v.deleted)
                    .map(|v| {
                        v.deleted = true;
                        v.version
                    })
                    .collect()
            };
            Ok(Edit::Changed(deleted))
        })
    }

    /// The global compatibility level.
    pub fn global_level(&self) -> CompatibilityLevel {
        self.read().global_level
    }

    /// Sets the global compatibility level.
    pub fn set_global_level(&self, level: CompatibilityLevel) -> Result<(), RegistryError> {
        self.change(|state| {
            state.global_level = level;
            Ok(Edit::Changed(()))
        })
    }

    /// Puts the global level back to the default (BACKWARD); returns the level it had.
    pub fn reset_global_level(&self) -> Result<CompatibilityLevel, RegistryError> {
        self.change(|state| {
            let previous =
                std::mem::replace(&mut state.global_level, State::default().global_level);
            Ok(Edit::Changed(previous))
        })
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
        self.change(|state| {
            state.subject_levels.insert(subject.to_owned(), level);
            Ok(Edit::Changed(()))
        })
    }

    /// Removes the level set for a subject (it follows the global level again); returns it.
    pub fn delete_subject_level(&self, subject: &str) -> Result<CompatibilityLevel, RegistryError> {
        self.change(|state| {
            let previous = state
                .subject_levels
                .remove(subject)
                .ok_or_else(|| RegistryError::subject_level_not_configured(subject))?;
            Ok(Edit::Changed(previous))
        })
    }
}

/// The data file of a file-backed store, with the lock that keeps other registries off it.
#[derive(Debug)]
struct DataFile {
    path: PathBuf,
    /// `<file>.tmp`, written and then renamed over the file.
    temporary: PathBuf,
    /// `<file>.lock`, locked (advisory, exclusive) for the store's life. A lock on the data file
    /// itself would not do: every write replaces it with another file.
    _lock: File,
}

impl DataFile {
    /// Locks `path` for this process and reads the state it holds (empty when it does not exist).
    fn open(path: &Path) -> Result<(Self, State), String> {
        let lock_path = with_suffix(path, ".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                format!(
                    "cannot create the lock file {} beside the registry data file: {e}",
                    lock_path.display()
                )
            })?;
        lock_exclusively(&lock).map_err(|e| match e {
            LockError::Held => format!(
                "{} is in use by another schema registry process (it holds {}); stop that \
                 process first, as two registries on one data file would hand out the same ids",
                path.display(),
                lock_path.display()
            ),
            LockError::Io(e) => format!("cannot lock {}: {e}", lock_path.display()),
        })?;
        let state = match std::fs::read(path) {
            Ok(bytes) => State::from_file(path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok((
            Self {
                path: path.to_owned(),
                temporary: with_suffix(path, ".tmp"),
                _lock: lock,
            },
            state,
        ))
    }

    /// Writes `state` atomically: a temporary file in the same directory, fsync, rename over
    /// the data file, fsync of the directory (so the rename itself survives a power loss).
    fn write(&self, state: &State) -> Result<(), RegistryError> {
        let write = || -> std::io::Result<()> {
            let bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
            let mut out = File::create(&self.temporary)?;
            out.write_all(&bytes)?;
            out.sync_all()?;
            drop(out);
            std::fs::rename(&self.temporary, &self.path)?;
            File::open(directory_of(&self.path))?.sync_all()
        };
        write().map_err(|e| {
            tracing::error!(file = %self.path.display(), error = %e, "cannot write the registry data file");
            RegistryError::storage(&format!(
                "cannot write {}: {e}; nothing was changed",
                self.path.display()
            ))
        })
    }
}

/// Why a lock was not taken.
enum LockError {
    /// Another open file (another process, or another store in this one) holds it.
    Held,
    Io(std::io::Error),
}

#[cfg(unix)]
fn lock_exclusively(file: &File) -> Result<(), LockError> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(LockError::Held),
        Err(e) => Err(LockError::Io(e.into())),
    }
}

/// Advisory locks are taken on Unix only; elsewhere one registry per data file is up to the
/// operator.
#[cfg(not(unix))]
fn lock_exclusively(_file: &File) -> Result<(), LockError> {
    Ok(())
}

/// `path` with `suffix` appended to its file name (`registry.json` → `registry.json.lock`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The directory holding `path` (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

impl State {
    /// The state a data file holds, checked: every schema's id is its position and is JSON, and
    /// every version names a schema that exists.
    fn from_file(path: &Path, bytes: &[u8]) -> Result<Self, String> {
        let file = path.display();
        let advice = "restore it from a backup, or move it away to start an empty registry";
        let mut state: Self = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "{file} is not a schema registry data file (expected the JSON object this \
                 registry writes, with schemas, subjects, global_level and subject_levels): {e}; \
                 {advice}"
            )
        })?;
        for (position, schema) in state.schemas.iter_mut().enumerate() {
            if schema.id as usize != position + 1 {
                return Err(format!(
                    "{file} is corrupt: schema number {} has id {}, but ids must run 1, 2, 3, ... \
                     in order; {advice}",
                    position + 1,
                    schema.id
                ));
            }
            schema.parsed = serde_json::from_str(&schema.schema).map_err(|e| {
                format!(
                    "{file} is corrupt: schema {} is not JSON ({e}); {advice}",
                    schema.id
                )
            })?;
        }
        for (subject, versions) in &state.subjects {
            if let Some(version) = versions
                .iter()
                .find(|v| v.id == 0 || v.id as usize > state.schemas.len())
            {
                return Err(format!(
                    "{file} is corrupt: version {} of subject \"{subject}\" names schema id {}, \
                     which the file does not hold; {advice}",
                    version.version, version.id
                ));
            }
        }
        Ok(state)
    }

    /// The id `parsed` has among the live versions of `subject`, if it is registered there.
    fn registered_id(&self, subject: &str, parsed: &Value) -> Option<u32> {
        self.subjects
            .get(subject)?
            .iter()
            .find(|v| !v.deleted && self.schemas[index(v.id)].parsed == *parsed)
            .map(|v| v.id)
    }

    /// The level that applies to `subject`: its own, else the global one.
    fn level_of(&self, subject: &str) -> CompatibilityLevel {
        self.subject_levels
            .get(subject)
            .copied()
            .unwrap_or(self.global_level)
    }

    /// The live versions of `subject` (none when it does not exist).
    fn live_versions(&self, subject: &str) -> Vec<SubjectVersion> {
        self.subjects
            .get(subject)
            .map(|versions| versions.iter().filter(|v| !v.deleted).copied().collect())
            .unwrap_or_default()
    }

    /// The versions of `subject` that `deleted` shows; 40401 when it shows none, as a subject
    /// whose versions are all soft-deleted is not found unless deleted ones are asked for.
    fn shown_versions(
        &self,
        subject: &str,
        deleted: DeletedVersions,
    ) -> Result<Vec<SubjectVersion>, RegistryError> {
        let versions: Vec<SubjectVersion> = self
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::subject_not_found(subject))?
            .iter()
            .filter(|v| deleted.shows(v))
            .copied()
            .collect();
        if versions.is_empty() && deleted != DeletedVersions::Only {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(versions)
    }

    fn subject_schema(&self, subject: &str, version: &SubjectVersion) -> SubjectSchema {
        SubjectSchema {
            subject: subject.to_owned(),
            version: version.version,
            schema: self.schemas[index(version.id)].clone(),
        }
    }

    /// 409 when `parsed` breaks the subject's level against its live versions.
    fn check_against_subject(&self, subject: &str, parsed: &Value) -> Result<(), RegistryError> {
        let level = self.level_of(subject);
        let versions = self.live_versions(subject);
        for old in checked_versions(&versions, level) {
            let problems = level.problems(parsed, &self.schemas[index(old.id)].parsed);
            if !problems.is_empty() {
                return Err(RegistryError::incompatible(
                    subject,
                    old.version,
                    level,
                    &problems,
                ));
            }
        }
        Ok(())
    }
}

/// The versions a new schema is checked against at `level`: all of them when transitive, else
/// the latest.
fn checked_versions(versions: &[SubjectVersion], level: CompatibilityLevel) -> &[SubjectVersion] {
    if level.is_transitive() {
        versions
    } else {
        versions
            .last()
            .map(std::slice::from_ref)
            .unwrap_or_default()
    }
}

fn select(versions: &[SubjectVersion], selector: VersionSelector) -> Option<&SubjectVersion> {
    match selector {
        VersionSelector::Latest => versions.last(),
        VersionSelector::Number(n) => versions.iter().find(|v| v.version == n),
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
    auction_schemas::draft::validator_for(&parsed).map_err(|e| {
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
                .version(
                    "auction-value",
                    VersionSelector::Latest,
                    DeletedVersions::Exclude
                )
                .unwrap()
                .schema
                .id,
            2
        );
        assert_eq!(store.schema_by_id(1).unwrap().schema, SCHEMA_V1);
        assert_eq!(
            store.subject_versions_of(1, DeletedVersions::Exclude),
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
    fn a_failed_write_leaves_the_state_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("registry.json");
        let store = Store::open(&file).unwrap();
        assert_eq!(store.register("s", "JSON", SCHEMA_V1), Ok(1));
        // A directory where the temporary file goes makes every write fail.
        let obstacle = dir.path().join("registry.json.tmp");
        std::fs::create_dir(&obstacle).unwrap();
        let failed = store.register("s", "JSON", SCHEMA_V2).unwrap_err();
        assert_eq!(failed.error_code, 50001, "{}", failed.message);
        assert_eq!(store.schema_by_id(2).unwrap_err().error_code, 40403);
        assert_eq!(store.versions("s").unwrap(), [1]);
        assert_eq!(
            store
                .set_global_level(CompatibilityLevel::None)
                .unwrap_err()
                .error_code,
            50001
        );
        assert_eq!(store.global_level(), CompatibilityLevel::Backward);
        assert_eq!(
            store.delete_subject("s", false).unwrap_err().error_code,
            50001
        );
        assert_eq!(store.versions("s").unwrap(), [1]);
        std::fs::remove_dir(&obstacle).unwrap();
        assert_eq!(store.register("s", "JSON", SCHEMA_V2), Ok(2));
        drop(store);
        let reopened = Store::open(&file).unwrap();
        assert_eq!(reopened.versions("s").unwrap(), [1, 2]);
        assert_eq!(reopened.schema_by_id(2).unwrap().schema, SCHEMA_V2);
    }

    #[test]
    fn a_second_store_on_the_same_file_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("registry.json");
        let first = Store::open(&file).unwrap();
        let refused = Store::open(&file).unwrap_err();
        assert!(
            refused.contains("in use by another schema registry process"),
            "{refused}"
        );
        drop(first);
        assert!(Store::open(&file).is_ok());
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

    #[test]
    fn a_schema_without_dollar_schema_is_read_as_draft_07() {
        let store = Store::in_memory();
        // Draft-07's tuple form of `items`, which draft 2020-12 does not allow.
        let tuple = r#"{"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}"#;
        assert_eq!(store.register("pairs-value", "JSON", tuple).unwrap(), 1);
        let wider = r#"{"type": "array", "items": [{"type": "string"}, {"type": "number"}]}"#;
        assert_eq!(store.register("pairs-value", "JSON", wider).unwrap(), 2);
        // With $schema naming 2020-12 the same text is refused.
        let newer = r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "items": [{}]}"#;
        assert_eq!(
            store
                .register("other-value", "JSON", newer)
                .unwrap_err()
                .error_code,
            42201
        );
    }

    #[test]
    fn soft_then_permanent_deletes_follow_confluent() {
        let store = Store::in_memory();
        store.register("s", "JSON", SCHEMA_V1).unwrap();
        store.register("s", "JSON", SCHEMA_V2).unwrap();
        let latest = VersionSelector::Latest;
        assert_eq!(
            store
                .delete_version("s", VersionSelector::Number(2), true)
                .unwrap_err()
                .error_code,
            40407
        );
        assert_eq!(store.delete_version("s", latest, false), Ok(2));
        assert_eq!(store.versions("s").unwrap(), [1]);
        assert_eq!(
            store
                .listed_versions("s", DeletedVersions::Include)
                .unwrap(),
            [1, 2]
        );
        assert_eq!(
            store.listed_versions("s", DeletedVersions::Only).unwrap(),
            [2]
        );
        assert_eq!(
            store
                .delete_version("s", VersionSelector::Number(2), false)
                .unwrap_err()
                .error_code,
            40406
        );
        // The id stays readable; the latest live version is 1 again.
        assert_eq!(store.schema_by_id(2).unwrap().schema, SCHEMA_V2);
        assert_eq!(
            store
                .version("s", latest, DeletedVersions::Exclude)
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            store.delete_version("s", VersionSelector::Number(2), true),
            Ok(2)
        );
        assert_eq!(
            store
                .listed_versions("s", DeletedVersions::Include)
                .unwrap(),
            [1]
        );

        assert_eq!(
            store.delete_subject("s", true).unwrap_err().error_code,
            40405
        );
        assert_eq!(store.delete_subject("s", false), Ok(vec![1]));
        assert!(store.subjects().is_empty());
        assert_eq!(store.listed_subjects(DeletedVersions::Only), ["s"]);
        assert_eq!(store.versions("s").unwrap_err().error_code, 40401);
        assert_eq!(
            store.delete_subject("s", false).unwrap_err().error_code,
            40404
        );
        // Registering a soft-deleted schema again makes a new version with the same id.
        assert_eq!(store.register("s", "JSON", SCHEMA_V1), Ok(1));
        assert_eq!(
            store
                .listed_versions("s", DeletedVersions::Include)
                .unwrap(),
            [1, 2]
        );
        store.delete_subject("s", false).unwrap();
        assert_eq!(store.delete_subject("s", true), Ok(vec![1, 2]));
        assert_eq!(
            store.listed_subjects(DeletedVersions::Include),
            Vec::<String>::new()
        );
        assert_eq!(
            store.delete_subject("s", false).unwrap_err().error_code,
            40401
        );
    }
}
