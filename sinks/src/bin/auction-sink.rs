//! `auction-sink`: parses the command line and environment, then runs the sink (see
//! `auction_sinks::config`).

use std::process::ExitCode;

use auction_schemas::service;
use auction_sinks::config::{self, Cli};
use clap::Parser;

// Many small, short-lived allocations (HTTP/2 frames, Kafka records, JSON): mimalloc serves them
// with less CPU than the system allocator (system/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    service::init_logging(cli.common.log_json);
    let shutdown = service::shutdown_on_signal();
    let env_properties = config::kafka_properties_from_env(std::env::vars());
    match config::run(cli, env_properties, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("auction-sink: {message}");
            ExitCode::FAILURE
        }
    }
}
