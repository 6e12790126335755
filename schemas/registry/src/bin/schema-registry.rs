//! `schema-registry`: the product's Confluent-compatible schema registry (JSON Schema).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use auction_process::{self as service, Secret};
use auction_schema_registry::{self as registry, BasicAuth, ServerSettings, Storage};
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
    service::exit_with("schema-registry", run(args).await)
}

impl Args {
    /// The server settings these arguments describe.
    fn into_settings(self) -> ServerSettings {
        ServerSettings {
            listen: self.listen,
            storage: match self.data_file {
                Some(file) => Storage::File(file),
                None => Storage::InMemory,
            },
            auth: match (self.basic_auth_user, self.basic_auth_password) {
                (Some(username), Some(password)) => Some(BasicAuth {
                    username,
                    password: Secret::new(password),
                }),
                _ => None,
            },
            preload_subject: self.preload_subject,
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let shutdown = service::shutdown_on_signal();
    let registry = registry::start(args.into_settings(), shutdown)
        .await
        .map_err(|e| e.to_string())?;
    println!("schema registry listening on {}", registry.url());
    registry.stopped().await
}
