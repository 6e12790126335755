//! The product's Confluent-compatible schema registry: the REST subset that Confluent's clients
//! (and `schema_registry_converter`) use, for JSON Schema, in memory or backed by a file.
//!
//! - [`store`] - state and persistence.
//! - [`compat`] - the compatibility check (BACKWARD by default).
//! - `auction_schemas::draft` (shared with the codec): which JSON Schema draft a schema is read
//!   in (draft-07 without `$schema`).
//! - [`query`] - query parameters (booleans in any case, as Confluent reads them).
//! - [`error`] - Confluent error bodies.
//! - `auth` - basic auth: a read credential and an optional separate write credential, compared
//!   in constant time.
//!
//! Routes: `POST /subjects/{s}/versions` (register; the same schema gets the same id),
//! `POST /subjects/{s}` (look up), `DELETE /subjects/{s}` and `DELETE /subjects/{s}/versions/{n|latest}`
//! (soft, or `permanent=true` after a soft delete), `GET /schemas/ids/{id}`,
//! `GET /schemas/ids/{id}/schema`, `GET /schemas/ids/{id}/versions`, `GET /schemas/ids/{id}/subjects`,
//! `GET /schemas/types`, `GET /subjects`, `GET /subjects/{s}/versions`,
//! `GET /subjects/{s}/versions/{n|latest}`, `GET /subjects/{s}/versions/{n|latest}/schema`,
//! `GET /subjects/{s}/versions/{n|latest}/referencedby` (always empty: no references),
//! `POST /compatibility/subjects/{s}/versions/{n|latest}`, `POST /compatibility/subjects/{s}/versions`,
//! `GET|PUT|DELETE /config`, `GET|PUT|DELETE /config/{s}`, and `/healthz`.
//!
//! Changes (and their writes to the data file) run on tokio's blocking threads, so a slow disk
//! never stalls the async threads that serve reads.

mod auth;

pub mod compat;
pub mod error;
pub mod query;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use auction_process::{Secret, StartError};
use compat::CompatibilityLevel;
use error::RegistryError;
use query::QueryParams;
pub use store::RegistryLimits;
use store::{DeletedVersions, Store, StoredSchema, SubjectSchema, VersionSelector};

/// The content type of Confluent's API.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Largest request body accepted (a schema is a few kilobytes).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A basic-auth credential.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    /// The user.
    pub username: String,
    /// The password.
    pub password: Secret,
}

#[derive(Debug, Clone)]
struct AppState {
    store: Arc<Store>,
    limits: RegistryLimits,
}

impl AppState {
    /// Runs a change of the store (which may write its data file) on a blocking thread.
    async fn change<T: Send + 'static>(
        &self,
        change: impl FnOnce(&Store) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || change(&store))
            .await
            .map_err(|e| RegistryError::storage(&format!("the change did not complete: {e}")))?
    }
}

/// Who may use the registry's routes.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The credential every request must present, when set (the write credential also reads).
    pub auth: Option<BasicAuth>,
    /// The credential that changes (registering, `PUT`, `DELETE`) need, when set; the read
    /// credential then gets 403 on them.
    pub write_auth: Option<BasicAuth>,
}

/// The registry's HTTP routes over `store`, for the users `access` lets in, keeping `limits`.
pub fn router(store: Arc<Store>, access: &Access, limits: RegistryLimits) -> Router {
    let state = AppState { store, limits };
    let rules = Arc::new(auth::AccessRules::new(
        access.auth.as_ref(),
        access.write_auth.as_ref(),
    ));
    let api = Router::new()
        .route("/", get(|| async { reply(StatusCode::OK, &json!({})) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(get_referenced_by),
        )
        .route("/schemas/ids/{id}", get(get_schema))
        .route("/schemas/ids/{id}/schema", get(get_raw_schema))
        .route("/schemas/ids/{id}/versions", get(get_schema_versions))
        .route("/schemas/ids/{id}/subjects", get(get_schema_subjects))
        .route(
            "/schemas/types",
            get(|| async { reply(StatusCode::OK, &json!(["JSON"])) }),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_compatibility_with_subject),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .layer(middleware::from_fn_with_state(rules, auth::require_auth))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(api)
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Where the registry keeps its schemas.
#[derive(Debug, Clone)]
pub enum Storage {
    /// In memory: gone when the process ends.
    InMemory,
    /// In this JSON file, written after every change.
    File(PathBuf),
    /// A store the caller keeps (the one-process system, tests).
    Shared(Arc<Store>),
}

/// Everything a registry server needs.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where to listen; port 0 picks a free port (see [`RunningRegistry::addr`]).
    pub listen: SocketAddr,
    /// Where the schemas are kept.
    pub storage: Storage,
    /// Credentials every request must present, when set.
    pub auth: Option<BasicAuth>,
    /// Credentials that changes (registering, `PUT`, `DELETE`) need, when set; they read too,
    /// and `auth` then only reads. Must differ from `auth`.
    pub write_auth: Option<BasicAuth>,
    /// How many subjects and versions the registry keeps.
    pub limits: RegistryLimits,
    /// Register the bid schemas (v1, the demo's, then v2) under this subject at start.
    pub preload_subject: Option<String>,
}

impl ServerSettings {
    /// An in-memory registry without authentication on `listen`, preloading nothing.
    pub fn in_memory(listen: SocketAddr) -> Self {
        Self {
            listen,
            storage: Storage::InMemory,
            auth: None,
            write_auth: None,
            limits: RegistryLimits::default(),
            preload_subject: None,
        }
    }
}

/// A started registry.
#[derive(Debug)]
pub struct RunningRegistry {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The state behind it.
    pub store: Arc<Store>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningRegistry {
    /// `http://ADDR`, what clients are given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server has stopped (after shutdown) and says whether it failed.
    pub async fn stopped(self) -> Result<(), String> {
        match self.task.await {
            Ok(served) => served.map_err(|e| format!("the server failed: {e}")),
            Err(e) => Err(format!("the server task failed: {e}")),
        }
    }
}

/// Starts a registry: opens (or creates) its storage, preloads the bid schemas when asked, and
/// serves until `shutdown`.
pub async fn start(
    settings: ServerSettings,
    shutdown: CancellationToken,
) -> Result<RunningRegistry, StartError> {
    if let (Some(read), Some(write)) = (&settings.auth, &settings.write_auth)
        && read.username == write.username
        && read.password.expose() == write.password.expose()
    {
        return Err(StartError::new(
            "the write credential (SCHEMA_REGISTRY_WRITE_BASIC_AUTH_USER/_PASSWORD) is the same \
             as the read credential (SCHEMA_REGISTRY_BASIC_AUTH_USER/_PASSWORD); give writes a \
             credential of their own, or leave the write credential unset",
        ));
    }
    let store = match settings.storage {
        Storage::InMemory => Arc::new(Store::in_memory()),
        Storage::File(file) => {
            let opened = tokio::task::spawn_blocking(move || Store::open(&file))
                .await
                .map_err(|e| StartError::new(format!("opening the data file failed: {e}")))?;
            Arc::new(opened.map_err(StartError::new)?)
        }
        Storage::Shared(store) => store,
    };
    if let Some(subject) = &settings.preload_subject {
        let (preloading, preloaded_subject) = (Arc::clone(&store), subject.clone());
        let (v1, v2) = tokio::task::spawn_blocking(move || {
            preload_bid_schemas(&preloading, &preloaded_subject)
        })
        .await
        .map_err(|e| StartError::new(format!("registering the bid schemas failed: {e}")))?
        .map_err(|e| {
            StartError::new(format!(
                "cannot register the bid schemas under {subject}: {}",
                e.message
            ))
        })?;
        tracing::info!(subject, v1, v2, "bid schemas registered");
    }
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| StartError::new(format!("cannot listen on {}: {e}", settings.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::new(format!("cannot read the bound address: {e}")))?;
    let access = Access {
        auth: settings.auth,
        write_auth: settings.write_auth,
    };
    let app = router(Arc::clone(&store), &access, settings.limits);
    let task = tokio::spawn(serve(listener, app, shutdown));
    Ok(RunningRegistry { addr, store, task })
}

/// Registers the bid schemas (v1, then v2) under `subject`, as the original demo's set-up did for v1.
pub fn preload_bid_schemas(store: &Store, subject: &str) -> Result<(u32, u32), RegistryError> {
    let v1 = store.register(
        subject,
        store::JSON_SCHEMA_TYPE,
        auction_schemas::event::SCHEMA_V1,
    )?;
    let v2 = store.register(
        subject,
        store::JSON_SCHEMA_TYPE,
        auction_schemas::event::SCHEMA_V2,
    )?;
    Ok((v1, v2))
}

/// Registers the bid service's state schema under `subject` (`<state topic>-value`), for
/// registries where the service may not register schemas itself.
pub fn preload_state_schema(store: &Store, subject: &str) -> Result<u32, RegistryError> {
    store.register(
        subject,
        store::JSON_SCHEMA_TYPE,
        auction_schemas::state::STATE_SCHEMA_V1,
    )
}

/// Registers the results schema under `subject` (`<results topic>-value`), for registries where
/// the service may not register schemas itself.
pub fn preload_results_schema(store: &Store, subject: &str) -> Result<u32, RegistryError> {
    store.register(
        subject,
        store::JSON_SCHEMA_TYPE,
        auction_schemas::result::RESULT_SCHEMA_V1,
    )
}

pub(crate) fn reply(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// The body of register, look-up and compatibility requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<Value>>,
}

impl SchemaRequest {
    fn parse(body: &[u8]) -> Result<Self, RegistryError> {
        let request: Self = serde_json::from_slice(body).map_err(|e| {
            RegistryError::bad_request(&format!(
                "expected {{\"schema\": \"...\", \"schemaType\": \"JSON\"}}: {e}"
            ))
        })?;
        if request.references.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(RegistryError::invalid_schema(
                "schema references are not supported by this registry",
            ));
        }
        Ok(request)
    }

    /// Confluent's default type is AVRO when none is given.
    fn schema_type(&self) -> &str {
        self.schema_type.as_deref().unwrap_or("AVRO")
    }
}

fn subject_schema_body(found: &SubjectSchema) -> Value {
    json!({
        "subject": found.subject,
        "version": found.version,
        "id": found.schema.id,
        "schemaType": found.schema.schema_type,
        "schema": found.schema.schema,
    })
}

fn schema_body(schema: &StoredSchema) -> Value {
    json!({"schemaType": schema.schema_type, "schema": schema.schema})
}

/// The versions a read shows, from its `deleted` and `deletedOnly` (or `deleted_only`, as
/// confluent-kafka-python spells it) parameters.
fn deleted_versions(query: &QueryParams) -> Result<DeletedVersions, RegistryError> {
    Ok(DeletedVersions::from_flags(
        query.flag("deleted")?,
        query.flag_any(&["deletedOnly", "deleted_only"])?,
    ))
}

/// Live versions, or (`deleted=true`) soft-deleted ones too: what reads of one version see.
fn live_or_all_versions(query: &QueryParams) -> Result<DeletedVersions, RegistryError> {
    Ok(if query.flag("deleted")? {
        DeletedVersions::Include
    } else {
        DeletedVersions::Exclude
    })
}

/// Reads `normalize`, so that a malformed value is refused; the registry compares schemas as
/// parsed JSON, which is what normalizing a JSON schema amounts to, so either value means the same.
fn check_normalize(query: &QueryParams) -> Result<(), RegistryError> {
    query.flag("normalize").map(|_| ())
}

async fn list_subjects(
    State(state): State<AppState>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let mut subjects = state.store.listed_subjects(deleted_versions(&query)?);
    if let Some(prefix) = query.text("subjectPrefix") {
        subjects.retain(|subject| subject.starts_with(prefix));
    }
    Ok(reply(StatusCode::OK, &json!(query.page(subjects)?)))
}

async fn register(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    query: QueryParams,
    body: Bytes,
) -> Result<Response, RegistryError> {
    check_normalize(&query)?;
    let request = SchemaRequest::parse(&body)?;
    let limits = state.limits;
    let registered = subject.clone();
    let id = state
        .change(move |store| {
            store.register_within(&registered, request.schema_type(), &request.schema, &limits)
        })
        .await?;
    tracing::info!(subject, id, "schema registered");
    Ok(reply(StatusCode::OK, &json!({"id": id})))
}

async fn lookup(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    query: QueryParams,
    body: Bytes,
) -> Result<Response, RegistryError> {
    check_normalize(&query)?;
    let deleted = live_or_all_versions(&query)?;
    let request = SchemaRequest::parse(&body)?;
    let found = state
        .store
        .lookup(&subject, request.schema_type(), &request.schema, deleted)?;
    Ok(reply(StatusCode::OK, &subject_schema_body(&found)))
}

async fn delete_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let permanent = query.flag("permanent")?;
    let deleted = subject.clone();
    let versions = state
        .change(move |store| store.delete_subject(&deleted, permanent))
        .await?;
    tracing::info!(subject, permanent, ?versions, "subject deleted");
    Ok(reply(StatusCode::OK, &json!(versions)))
}

async fn list_versions(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let versions = state
        .store
        .listed_versions(&subject, deleted_versions(&query)?)?;
    Ok(reply(StatusCode::OK, &json!(query.page(versions)?)))
}

/// The version a `GET` names; with `deleted=true`, soft-deleted versions count too.
fn read_version(
    state: &AppState,
    subject: &str,
    version: &str,
    query: &QueryParams,
) -> Result<SubjectSchema, RegistryError> {
    let deleted = live_or_all_versions(query)?;
    state
        .store
        .version(subject, VersionSelector::parse(version)?, deleted)
}

async fn get_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let found = read_version(&state, &subject, &version, &query)?;
    Ok(reply(StatusCode::OK, &subject_schema_body(&found)))
}

async fn get_version_schema(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let found = read_version(&state, &subject, &version, &query)?;
    Ok(raw_schema(&found.schema))
}

/// Schemas that reference this version: none, as this registry accepts no references.
async fn get_referenced_by(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    read_version(&state, &subject, &version, &query)?;
    Ok(reply(StatusCode::OK, &json!([])))
}

async fn delete_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let permanent = query.flag("permanent")?;
    let selector = VersionSelector::parse(&version)?;
    let from = subject.clone();
    let deleted = state
        .change(move |store| store.delete_version(&from, selector, permanent))
        .await?;
    tracing::info!(subject, version = deleted, permanent, "version deleted");
    Ok(reply(StatusCode::OK, &json!(deleted)))
}

fn parse_id(raw: &str) -> Result<u32, RegistryError> {
    raw.parse().map_err(|_| RegistryError::schema_not_found())
}

async fn get_schema(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, RegistryError> {
    let schema = state.store.schema_by_id(parse_id(&id)?)?;
    Ok(reply(StatusCode::OK, &schema_body(&schema)))
}

async fn get_raw_schema(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, RegistryError> {
    let schema = state.store.schema_by_id(parse_id(&id)?)?;
    Ok(raw_schema(&schema))
}

fn raw_schema(schema: &StoredSchema) -> Response {
    let mut response = schema.schema.clone().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// The subject-version pairs that use schema `id`, filtered by the `subject` and `deleted`
/// parameters.
fn schema_uses(
    state: &AppState,
    id: &str,
    query: &QueryParams,
) -> Result<Vec<(String, u32)>, RegistryError> {
    let id = parse_id(id)?;
    state.store.schema_by_id(id)?;
    let deleted = live_or_all_versions(query)?;
    let mut uses = state.store.subject_versions_of(id, deleted);
    if let Some(subject) = query.text("subject") {
        uses.retain(|(used_by, _)| used_by == subject);
    }
    Ok(uses)
}

async fn get_schema_versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let versions: Vec<Value> = schema_uses(&state, &id, &query)?
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(reply(StatusCode::OK, &json!(query.page(versions)?)))
}

async fn get_schema_subjects(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let mut subjects: Vec<String> = schema_uses(&state, &id, &query)?
        .into_iter()
        .map(|(subject, _)| subject)
        .collect();
    subjects.dedup();
    Ok(reply(StatusCode::OK, &json!(query.page(subjects)?)))
}

/// Confluent's answer to a compatibility check: `messages` only when `verbose=true`.
fn compatibility_body(problems: &[String], query: &QueryParams) -> Result<Value, RegistryError> {
    let verbose = query.flag("verbose")?;
    let mut answer = json!({"is_compatible": problems.is_empty()});
    if verbose {
        answer["messages"] = json!(problems);
    }
    Ok(answer)
}

async fn check_compatibility(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    query: QueryParams,
    body: Bytes,
) -> Result<Response, RegistryError> {
    check_normalize(&query)?;
    let request = SchemaRequest::parse(&body)?;
    let problems = state.store.compatibility(
        &subject,
        VersionSelector::parse(&version)?,
        request.schema_type(),
        &request.schema,
    )?;
    Ok(reply(
        StatusCode::OK,
        &compatibility_body(&problems, &query)?,
    ))
}

/// The check registering would make: against the latest version, or all of them at a transitive
/// level.
async fn check_compatibility_with_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    query: QueryParams,
    body: Bytes,
) -> Result<Response, RegistryError> {
    check_normalize(&query)?;
    let request = SchemaRequest::parse(&body)?;
    let problems =
        state
            .store
            .compatibility_with_subject(&subject, request.schema_type(), &request.schema)?;
    Ok(reply(
        StatusCode::OK,
        &compatibility_body(&problems, &query)?,
    ))
}

/// The body of `PUT /config`: Confluent's `compatibility`, or `compatibilityLevel` as
/// confluent-kafka-python's `ServerConfig` may send it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigRequest {
    #[serde(default)]
    compatibility: Option<String>,
    #[serde(default)]
    compatibility_level: Option<String>,
}

fn parse_level(body: &[u8]) -> Result<CompatibilityLevel, RegistryError> {
    let expected = "expected {\"compatibility\": \"BACKWARD\"}";
    let request: ConfigRequest = serde_json::from_slice(body)
        .map_err(|e| RegistryError::bad_request(&format!("{expected}: {e}")))?;
    let raw = request
        .compatibility
        .or(request.compatibility_level)
        .ok_or_else(|| RegistryError::bad_request(&format!("{expected}: no level given")))?;
    serde_json::from_value(Value::String(raw.to_uppercase()))
        .map_err(|_| RegistryError::invalid_compatibility_level(&raw))
}

fn level_name(level: CompatibilityLevel) -> Value {
    serde_json::to_value(level).unwrap_or(Value::Null)
}

async fn get_global_config(State(state): State<AppState>) -> Response {
    reply(
        StatusCode::OK,
        &json!({"compatibilityLevel": level_name(state.store.global_level())}),
    )
}

async fn put_global_config(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let level = parse_level(&body)?;
    state
        .change(move |store| store.set_global_level(level))
        .await?;
    Ok(reply(
        StatusCode::OK,
        &json!({"compatibility": level_name(level)}),
    ))
}

/// Puts the global level back to BACKWARD and answers with the level it had.
async fn delete_global_config(State(state): State<AppState>) -> Result<Response, RegistryError> {
    let previous = state.change(|store| store.reset_global_level()).await?;
    Ok(reply(
        StatusCode::OK,
        &json!({"compatibilityLevel": level_name(previous)}),
    ))
}

async fn get_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    query: QueryParams,
) -> Result<Response, RegistryError> {
    let default_to_global = query.flag("defaultToGlobal")?;
    let level = match state.store.subject_level(&subject) {
        Some(level) => level,
        None if default_to_global => state.store.global_level(),
        None => return Err(RegistryError::subject_level_not_configured(&subject)),
    };
    Ok(reply(
        StatusCode::OK,
        &json!({"compatibilityLevel": level_name(level)}),
    ))
}

async fn put_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let level = parse_level(&body)?;
    state
        .change(move |store| store.set_subject_level(&subject, level))
        .await?;
    Ok(reply(
        StatusCode::OK,
        &json!({"compatibility": level_name(level)}),
    ))
}

/// Removes the subject's own level (it follows the global one again) and answers with it.
async fn delete_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Result<Response, RegistryError> {
    let previous = state
        .change(move |store| store.delete_subject_level(&subject))
        .await?;
    Ok(reply(
        StatusCode::OK,
        &json!({"compatibilityLevel": level_name(previous)}),
    ))
}
