//! `auction-sink`: turns the command line and environment into settings
//! (`auction_sinks::config`), then runs the sink until SIGINT or SIGTERM.

use std::process::ExitCode;

use auction_sinks::config::Cli;
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
    auction_process::init_logging(cli.common.log_json);
    let shutdown = auction_process::shutdown_on_signal();
    auction_process::exit_with("auction-sink", run(cli, shutdown).await)
}

async fn run(cli: Cli, shutdown: tokio_util::sync::CancellationToken) -> Result<(), String> {
    let settings = cli
        .into_settings(std::env::vars())
        .map_err(|e| e.to_string())?;
    let sink = auction_sinks::spawn(settings, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "auction-sink {}: metrics, /healthz and /readyz on http://{}",
        sink.kind, sink.metrics_addr
    );
    sink.stopped().await.map(|_| ())
}
