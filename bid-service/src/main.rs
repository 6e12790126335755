//! `bid-service`: takes bids over gRPC and gRPC-Web and writes them to Kafka.

use std::process::ExitCode;

use auction_bid_service::config::Args;
use auction_process as service;
use clap::Parser;

// Many small, short-lived allocations (HTTP/2 frames, Kafka records, JSON): mimalloc serves them
// with less CPU than the system allocator (system/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let args = Args::parse();
    service::init_logging(args.log_json);
    let settings = match args.into_settings(std::env::vars()) {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("bid-service: {message}");
            return ExitCode::from(2);
        }
    };
    service::exit_with("bid-service", run(settings).await)
}

async fn run(settings: auction_bid_service::Settings) -> Result<(), String> {
    let shutdown = service::shutdown_on_signal();
    let running = auction_bid_service::spawn(settings, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "bid service: gRPC and gRPC-Web on {}, metrics on http://{}/metrics",
        running.grpc_addr, running.metrics_addr
    );
    running.stopped().await
}
