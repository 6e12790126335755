//! `schema-registry`: the product's Confluent-compatible schema registry (JSON Schema).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use auction_process::{self as service, Secret};
use auction_schema_registry::{
    self as registry, BasicAuth, RegistryLimits, ServerSettings, Storage,
};
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
    /// Require HTTP basic auth with this user (with a write credential set, this one only reads).
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
        hide_env_values = true,
        requires = "basic_auth_user"
    )]
    basic_auth_password: Option<String>,
    /// Require this user for changes (registering schemas, deletes, configuration); it reads too.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_WRITE_BASIC_AUTH_USER",
        requires = "write_basic_auth_password"
    )]
    write_basic_auth_user: Option<String>,
    /// The write credential's password (prefer the environment variable to the flag).
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_WRITE_BASIC_AUTH_PASSWORD",
        hide_env_values = true,
        requires = "write_basic_auth_user"
    )]
    write_basic_auth_password: Option<String>,
    /// The most subjects the registry keeps (soft-deleted ones included); registering a new
    /// subject beyond it is refused.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_MAX_SUBJECTS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_subjects: u32,
    /// The most versions of one subject (soft-deleted ones included); registering beyond it is
    /// refused.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_MAX_VERSIONS_PER_SUBJECT",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_versions_per_subject: u32,
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
            auth: credential(self.basic_auth_user, self.basic_auth_password),
            write_auth: credential(self.write_basic_auth_user, self.write_basic_auth_password),
            limits: RegistryLimits {
                max_subjects: self.max_subjects as usize,
                max_versions_per_subject: self.max_versions_per_subject as usize,
            },
            preload_subject: self.preload_subject,
        }
    }
}

/// A credential from a user and a password (clap requires both or neither).
fn credential(username: Option<String>, password: Option<String>) -> Option<BasicAuth> {
    match (username, password) {
        (Some(username), Some(password)) => Some(BasicAuth {
            username,
            password: Secret::new(password),
        }),
        _ => None,
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
