//! `auction`: the whole auction system in one process (see the crate documentation).

use std::process::ExitCode;
use std::time::Duration;

use auction_process as service;
use auction_system::{Embedded, EmbeddedArgs};
use clap::{Parser, Subcommand};

// Many small, short-lived allocations (HTTP/2 frames, Kafka records, JSON): mimalloc serves them
// with less CPU than the system allocator (system/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The auction bidding platform.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Log as JSON lines.
    #[arg(long, env = "LOG_FORMAT_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the whole system in this process: an in-memory Kafka, the schema registry, the bid
    /// service, the CSV and SQLite sinks (and the ODBC sink when a connection string is given).
    Dev(EmbeddedArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    service::init_logging(cli.log_json);
    let shutdown = service::shutdown_on_signal();
    match cli.command {
        Command::Dev(args) => {
            let embedded = match Embedded::start(args, shutdown.clone()).await {
                Ok(embedded) => embedded,
                Err(e) => {
                    eprintln!("auction: {e}");
                    shutdown.cancel();
                    return ExitCode::FAILURE;
                }
            };
            println!("{}", embedded.endpoints);
            let failures = embedded
                .run_until_stopped(shutdown, Duration::from_secs(20))
                .await;
            if failures.is_empty() {
                println!("The auction system stopped cleanly.");
                ExitCode::SUCCESS
            } else {
                for failure in failures {
                    eprintln!("auction: {failure}");
                }
                ExitCode::FAILURE
            }
        }
    }
}
