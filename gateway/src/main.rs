//! `gateway`: the auction web pages, talking to the bid service over gRPC.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use auction_gateway::Settings;
use auction_schemas::{Secret, service};
use clap::Parser;

/// Serves the auction pages: the list of auctions, each auction's bid form and recent bids, and
/// live updates of the highest bid (Server-Sent Events), over the bid service's gRPC API.
/// `/healthz`, `/readyz` (the bid service is reachable) and `/metrics` are on the same address.
/// A `.env` file in the working directory is read first.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// HTTP address to serve on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The bid service's gRPC URL.
    #[arg(
        long,
        env = "BID_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    bid_service_url: String,
    /// Secret that signs the CSRF and message cookies; replicas must share it. Without it a
    /// random key is drawn at start and open forms stop working after a restart.
    #[arg(long, env = "GATEWAY_COOKIE_KEY", hide_env_values = true)]
    cookie_key: Option<String>,
    /// Mark cookies Secure (when browsers reach the gateway over HTTPS).
    #[arg(long, env = "GATEWAY_SECURE_COOKIES")]
    secure_cookies: bool,
    /// How long one call to the bid service may take, in milliseconds.
    #[arg(long, env = "GATEWAY_CALL_TIMEOUT_MS", default_value_t = 10_000)]
    call_timeout_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 8 * 1024)]
    max_body_bytes: usize,
    /// Most live-update streams open at once.
    #[arg(long, env = "GATEWAY_MAX_LIVE_STREAMS", default_value_t = 1_000)]
    max_live_streams: usize,
    /// How many recent bids an auction page lists.
    #[arg(long, env = "GATEWAY_RECENT_BIDS", default_value_t = 10)]
    recent_bids: u32,
    /// Log as JSON lines.
    #[arg(long, env = "LOG_FORMAT_JSON")]
    log_json: bool,
}

impl Args {
    fn settings(self) -> Settings {
        let mut settings = Settings::new(self.bid_service_url);
        settings.listen = self.listen;
        settings.cookie_key = self.cookie_key.map(Secret::new);
        settings.secure_cookies = self.secure_cookies;
        settings.call_timeout = Duration::from_millis(self.call_timeout_ms);
        settings.max_body_bytes = self.max_body_bytes;
        settings.max_live_streams = self.max_live_streams;
        settings.recent_bids = self.recent_bids.clamp(1, 100);
        settings
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let args = Args::parse();
    service::init_logging(args.log_json);
    let settings = args.settings();
    if settings.cookie_key.is_none() {
        tracing::warn!(
            "GATEWAY_COOKIE_KEY is not set: a random key signs cookies, so forms open in browsers stop working when the gateway restarts"
        );
    }
    // Installs the Prometheus recorder before the first metric is recorded.
    let _ = service::metrics_handle();
    let shutdown = service::shutdown_on_signal();
    let running = match auction_gateway::spawn(settings, shutdown).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "gateway: pages on http://{addr}/, metrics on http://{addr}/metrics",
        addr = running.addr
    );
    match running.stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
