//! Settings of the gateway. The binary fills them from flags and environment variables (and
//! `.env`); tests build them directly.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use auction_process::Secret;

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP address of the pages, the live updates and the assets (the public address).
    pub listen: SocketAddr,
    /// Address of `/healthz`, `/readyz` and `/metrics`, kept off the public address; port 0
    /// picks a free port (see `RunningGateway::metrics_addr`).
    pub metrics_listen: SocketAddr,
    /// The bid service's gRPC endpoint, e.g. `http://127.0.0.1:50051`.
    pub bid_service_url: String,
    /// Key that signs the CSRF and message cookies. Without one a random key is drawn at start:
    /// forms open in a browser then stop working when the gateway restarts, and several gateway
    /// replicas behind one address must share a key.
    pub cookie_key: Option<Secret>,
    /// Mark cookies `Secure` (set this when browsers reach the gateway over HTTPS).
    pub secure_cookies: bool,
    /// How long one call to the bid service may take before the page says it is unavailable.
    pub call_timeout: Duration,
    /// Largest request body accepted; a bid form is well under 1 KiB.
    pub max_body_bytes: usize,
    /// Most live-update streams open at once; more are refused with 503 and the page still works.
    pub max_live_streams: usize,
    /// Most live-update streams one client holds at once; more are refused with 429.
    pub max_live_streams_per_client: usize,
    /// How many live-update streams one client may open per second (as a burst, too); faster
    /// openings are refused with 429.
    pub client_streams_per_sec: u32,
    /// How many forms (bids, new auctions) one client may post per second (as a burst, too);
    /// faster posts are refused with 429 before they reach the bid service.
    pub client_posts_per_sec: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client; from any other peer the header
    /// is ignored and the peer's address is the client.
    pub trusted_proxies: Vec<IpAddr>,
    /// Longest wait for a request's headers, and for the next request on an idle HTTP/1.1
    /// connection.
    pub header_timeout: Duration,
    /// How often idle HTTP/2 connections are pinged; one that does not answer within the same
    /// time is closed.
    pub http2_keepalive_interval: Duration,
    /// How often `/readyz` asks the bid service whether it serves.
    pub readiness_interval: Duration,
    /// Longest wait between two attempts to resubscribe a live stream to the bid service.
    pub resubscribe_max_backoff: Duration,
    /// How many recent bids an auction page lists.
    pub recent_bids: u32,
}

impl Settings {
    /// Defaults for a bid service at `bid_service_url`, on the product's default port 8080.
    pub fn new(bid_service_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9105)),
            bid_service_url: bid_service_url.into(),
            cookie_key: None,
            secure_cookies: false,
            call_timeout: Duration::from_secs(10),
            max_body_bytes: 8 * 1024,
            max_live_streams: 1_000,
            max_live_streams_per_client: 20,
            client_streams_per_sec: 10,
            client_posts_per_sec: 5,
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(30),
            http2_keepalive_interval: Duration::from_secs(30),
            readiness_interval: Duration::from_secs(2),
            resubscribe_max_backoff: Duration::from_secs(5),
            recent_bids: 10,
        }
    }
}

/// Serves the auction pages: the list of auctions, each auction's bid form and recent bids, and
/// live updates of the highest bid (Server-Sent Events), over the bid service's gRPC API.
/// `/healthz`, `/readyz` (the bid service is reachable) and `/metrics` are on a separate address,
/// off the public one.
/// A `.env` file in the working directory is read first.
#[derive(Debug, clap::Parser)]
#[command(version)]
pub struct Args {
    /// HTTP address to serve the pages on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of /healthz, /readyz and /metrics (keep it off the public network).
    #[arg(long, env = "GATEWAY_METRICS_LISTEN", default_value = "127.0.0.1:9105")]
    pub metrics_listen: SocketAddr,
    /// The bid service's gRPC URL.
    #[arg(
        long,
        env = "BID_SERVICE_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub bid_service_url: String,
    /// Secret that signs the CSRF and message cookies; replicas must share it. Without it a
    /// random key is drawn at start and open forms stop working after a restart.
    #[arg(long, env = "GATEWAY_COOKIE_KEY", hide_env_values = true)]
    pub cookie_key: Option<String>,
    /// Mark cookies Secure (when browsers reach the gateway over HTTPS).
    #[arg(long, env = "GATEWAY_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// How long one call to the bid service may take, in milliseconds.
    #[arg(long, env = "GATEWAY_CALL_TIMEOUT_MS", default_value_t = 10_000)]
    pub call_timeout_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "GATEWAY_MAX_BODY_BYTES", default_value_t = 8 * 1024)]
    pub max_body_bytes: usize,
    /// Most live-update streams open at once (more get 503).
    #[arg(long, env = "GATEWAY_MAX_LIVE_STREAMS", default_value_t = 1_000)]
    pub max_live_streams: usize,
    /// Most live-update streams one client holds at once (more get 429).
    #[arg(
        long,
        env = "GATEWAY_MAX_LIVE_STREAMS_PER_CLIENT",
        default_value_t = 20
    )]
    pub max_live_streams_per_client: usize,
    /// Live-update streams one client may open per second (faster get 429).
    #[arg(long, env = "GATEWAY_CLIENT_STREAMS_PER_SEC", default_value_t = 10)]
    pub client_streams_per_sec: u32,
    /// Forms (bids, new auctions) one client may post per second (faster get 429).
    #[arg(long, env = "GATEWAY_CLIENT_POSTS_PER_SEC", default_value_t = 5)]
    pub client_posts_per_sec: u32,
    /// Comma-separated addresses of reverse proxies whose X-Forwarded-For names the client.
    #[arg(long, env = "GATEWAY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
    /// Longest wait for a request's headers and between requests on an idle connection, in
    /// milliseconds.
    #[arg(long, env = "GATEWAY_HEADER_TIMEOUT_MS", default_value_t = 30_000)]
    pub header_timeout_ms: u64,
    /// How often idle HTTP/2 connections are pinged (and how long a ping may go unanswered), in
    /// seconds.
    #[arg(long, env = "GATEWAY_HTTP2_KEEPALIVE_SECS", default_value_t = 30)]
    pub http2_keepalive_secs: u64,
    /// How many recent bids an auction page lists.
    #[arg(long, env = "GATEWAY_RECENT_BIDS", default_value_t = 10)]
    pub recent_bids: u32,
    /// Log as JSON lines.
    #[arg(long, env = "LOG_FORMAT_JSON")]
    pub log_json: bool,
}

impl Args {
    /// The settings these arguments describe.
    pub fn into_settings(self) -> Settings {
        let mut settings = Settings::new(self.bid_service_url);
        settings.listen = self.listen;
        settings.metrics_listen = self.metrics_listen;
        settings.cookie_key = self.cookie_key.map(Secret::new);
        settings.secure_cookies = self.secure_cookies;
        settings.call_timeout = Duration::from_millis(self.call_timeout_ms);
        settings.max_body_bytes = self.max_body_bytes;
        settings.max_live_streams = self.max_live_streams;
        settings.max_live_streams_per_client = self.max_live_streams_per_client;
        settings.client_streams_per_sec = self.client_streams_per_sec;
        settings.client_posts_per_sec = self.client_posts_per_sec;
        settings.trusted_proxies = self.trusted_proxies;
        settings.header_timeout = Duration::from_millis(self.header_timeout_ms);
        settings.http2_keepalive_interval = Duration::from_secs(self.http2_keepalive_secs);
        settings.recent_bids = self.recent_bids.clamp(1, 100);
        settings
    }
}
