//! `schema-registry`: the product's Confluent-compatible schema registry (JSON Schema).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use auction_schemas::registry::{self, BasicAuth, store::Store};
use auction_schemas::{Secret, service};
use clap::Parser;

/// A Confluent-compatible schema registry for JSON Schema, in memory or backed by a file.
///
/// Serves the REST subset that Confluent's serializers and `schema_registry_converter` use:
/// register, look up, schemas by id, subjects and versions, compatibility checks (BACKWARD by
/// default) and compatibility configuration.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "SCHEMA_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Keep the registry in this JSON file (written after every change); in memory only when unset.
    #[arg(long, env = "SCHEMA_REGISTRY_DATA_FILE")]
    data_file: Option<PathBuf>,
    /// Require HTTP basic auth with this user.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_BASIC_AUTH_USER",
        requires = "basic_auth_password"
    )]
    basic_auth_user: Option<String>,
    /// The basic-auth password (prefer the environment variable to the flag).
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_BASIC_AUTH_PASSWORD",
        hide_env_values = true
    )]
    basic_auth_password: Option<String>,
    /// Register the bid schemas (v1, the demo's, then v2) under this subject at start.
    #[arg(long, env = "SCHEMA_REGISTRY_PRELOAD_SUBJECT", value_name = "SUBJECT")]
    preload_subject: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "LOG_FORMAT_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    service::init_logging(args.log_json);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("schema-registry: {message}");
            ExitCode::FAILURE
        }
    }
}
async fn run(args: Args) -> Result<(), String> {
    let store = match &args.data_file {
        Some(file) => Store::open(file)?,
        None => Store::in_memory(),
    };
    let store = Arc::new(store);
    if let Some(subject) = &args.preload_subject {
        let (v1, v2) = registry::preload_bid_schemas(&store, subject).map_err(|e| {
            format!(
                "cannot register the bid schemas under {subject}: {}",
                e.message
            )
        })?;
        tracing::info!(subject, v1, v2, "bid schemas registered");
    }
    let auth = match (args.basic_auth_user, args.basic_auth_password) {
        (Some(username), Some(password)) => Some(BasicAuth {
            username,
            password: Secret::new(password),
        }),
        _ => None,
    };
    let shutdown = service::shutdown_on_signal();
    let (addr, server) = registry::spawn(args.listen, store, auth, shutdown.clone())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    println!("schema registry listening on http://{addr}");
    server
        .await
        .map_err(|e| format!("the server task failed: {e}"))?
        .map_err(|e| format!("the server failed: {e}"))
}
