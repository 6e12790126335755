//! `gateway`: the auction web pages, talking to the bid service over gRPC.

use std::process::ExitCode;

use auction_gateway::config::Args;
use auction_process as service;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let args = Args::parse();
    service::init_logging(args.log_json);
    let settings = args.into_settings();
    if settings.cookie_key.is_none() {
        tracing::warn!(
            "GATEWAY_COOKIE_KEY is not set: a random key signs cookies, so forms open in browsers stop working when the gateway restarts"
        );
    }
    // Installs the Prometheus recorder before the first metric is recorded.
    let _ = service::metrics_handle();
    service::exit_with("gateway", run(settings).await)
}

async fn run(settings: auction_gateway::Settings) -> Result<(), String> {
    let shutdown = service::shutdown_on_signal();
    let running = auction_gateway::spawn(settings, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "gateway: pages on http://{}/, metrics on http://{}/metrics",
        running.addr, running.metrics_addr
    );
    running.stopped().await
}
