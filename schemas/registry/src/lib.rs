//! The product's Confluent-compatible schema registry: the REST subset that Confluent's clients
//! (and `schema_registry_converter`) use, for JSON Schema, in memory or backed by a file.
//!
//! - [`store`] - state and persistence.
//! - [`compat`] - the compatibility check (BACKWARD by default).
//! - [`error`] - Confluent error bodies.
//!
//! Routes: `POST /subjects/{s}/versions` (register; the same schema gets the same id),
//! `POST /subjects/{s}` (look up), `GET /schemas/ids/{id}`, `GET /schemas/ids/{id}/versions`,
//! `GET /subjects`, `GET /subjects/{s}/versions`, `GET /subjects/{s}/versions/{n|latest}`,
//! `GET /subjects/{s}/versions/{n|latest}/schema`, `POST /compatibility/subjects/{s}/versions/{n|latest}`,
//! `GET|PUT /config`, `GET|PUT /config/{s}`, and `/healthz`.

pub mod compat;
pub mod error;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use auction_process::{Secret, StartError};
use compat::CompatibilityLevel;
use error::RegistryError;
use store::{Store, StoredSchema, SubjectSchema, VersionSelector};

/// The content type of Confluent's API.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Largest request body accepted (a schema is a few kilobytes).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Credentials that every request must present, when set.
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
    auth: Option<Arc<BasicAuth>>,
}

/// The registry's HTTP routes over `store`.
pub fn router(store: Arc<Store>, auth: Option<BasicAuth>) -> Router {
    let state = AppState {
        store,
        auth: auth.map(Arc::new),
    };
    let api = Router::new()
        .route("/", get(|| async { reply(StatusCode::OK, &json!({})) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(get_schema))
        .route("/schemas/ids/{id}/schema", get(get_raw_schema))
        .route("/schemas/ids/{id}/versions", get(get_schema_versions))
        .route(
            "/schemas/types",
            get(|| async { reply(StatusCode::OK, &json!(["JSON"])) }),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_compatibility),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config).put(put_subject_config),
        )
        .layer(middleware::from_fn_with_state(state.clone(), require_auth))
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
    let store = match settings.storage {
        Storage::InMemory => Arc::new(Store::in_memory()),
        Storage::File(file) => Arc::new(Store::open(&file).map_err(StartError::new)?),
        Storage::Shared(store) => store,
    };
    if let Some(subject) = &settings.preload_subject {
        let (v1, v2) = preload_bid_schemas(&store, subject).map_err(|e| {
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
    let app = router(Arc::clone(&store), settings.auth);
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

async fn require_auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.auth else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let authorised = presented
        .as_deref()
        .and_then(|p| p.split_once(':'))
        .is_some_and(|(user, password)| {
            user == expected.username && password == expected.password.expose()
        });
    if authorised {
        next.run(request).await
    } else {
        RegistryError::unauthorized().into_response()
    }
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

async fn list_subjects(State(state): State<AppState>) -> Response {
    reply(StatusCode::OK, &json!(state.store.subjects()))
}

async fn register(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let request = SchemaRequest::parse(&body)?;
    let id = state
        .store
        .register(&subject, request.schema_type(), &request.schema)?;
    tracing::info!(subject, id, "schema registered");
    Ok(reply(StatusCode::OK, &json!({"id": id})))
}

async fn lookup(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let request = SchemaRequest::parse(&body)?;
    let found = state
        .store
        .lookup(&subject, request.schema_type(), &request.schema)?;
    Ok(reply(StatusCode::OK, &subject_schema_body(&found)))
}

async fn list_versions(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Result<Response, RegistryError> {
    Ok(reply(
        StatusCode::OK,
        &json!(state.store.versions(&subject)?),
    ))
}

async fn get_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let found = state
        .store
        .version(&subject, VersionSelector::parse(&version)?)?;
    Ok(reply(StatusCode::OK, &subject_schema_body(&found)))
}

async fn get_version_schema(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, RegistryError> {
    let found = state
        .store
        .version(&subject, VersionSelector::parse(&version)?)?;
    Ok(raw_schema(&found.schema))
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

async fn get_schema_versions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, RegistryError> {
    let id = parse_id(&id)?;
    state.store.schema_by_id(id)?;
    let versions: Vec<Value> = state
        .store
        .subject_versions_of(id)
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(reply(StatusCode::OK, &Value::Array(versions)))
}

#[derive(Debug, Deserialize)]
struct VerboseQuery {
    #[serde(default)]
    verbose: bool,
}

async fn check_compatibility(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    Query(query): Query<VerboseQuery>,
    body: Bytes,
) -> Result<Response, RegistryError> {
    let request = SchemaRequest::parse(&body)?;
    let problems = state.store.compatibility(
        &subject,
        VersionSelector::parse(&version)?,
        request.schema_type(),
        &request.schema,
    )?;
    let mut answer = json!({"is_compatible": problems.is_empty()});
    if query.verbose {
        answer["messages"] = json!(problems);
    }
    Ok(reply(StatusCode::OK, &answer))
}

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

fn parse_level(body: &[u8]) -> Result<CompatibilityLevel, RegistryError> {
    let request: ConfigRequest = serde_json::from_slice(body).map_err(|e| {
        RegistryError::bad_request(&format!(
            "expected {{\"compatibility\": \"BACKWARD\"}}: {e}"
        ))
    })?;
    serde_json::from_value(Value::String(request.compatibility.to_uppercase()))
        .map_err(|_| RegistryError::invalid_compatibility_level(&request.compatibility))
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
    state.store.set_global_level(level)?;
    Ok(reply(
        StatusCode::OK,
        &json!({"compatibility": level_name(level)}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubjectConfigQuery {
    #[serde(default)]
    default_to_global: bool,
}

async fn get_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(query): Query<SubjectConfigQuery>,
) -> Result<Response, RegistryError> {
    let level = match state.store.subject_level(&subject) {
        Some(level) => level,
        None if query.default_to_global => state.store.global_level(),
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
    state.store.set_subject_level(&subject, level)?;
    Ok(reply(
        StatusCode::OK,
        &json!({"compatibility": level_name(level)}),
    ))
}
