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
    let shutdown = service::shutdown_on_signal();
    let running = match auction_bid_service::spawn(settings, shutdown).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("bid-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "bid service: gRPC and gRPC-Web on {}, metrics on http://{}/metrics",
        running.grpc_addr, running.metrics_addr
    );
    match running.stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bid-service: {e}");
            ExitCode::FAILURE
        }
    }
}
