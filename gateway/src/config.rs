//! Settings of the gateway. The binary fills them from flags and environment variables (and
//! `.env`); tests build them directly.

use std::net::SocketAddr;
use std::time::Duration;

use auction_schemas::Secret;

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP address of the pages, the live updates, the assets and `/healthz` `/readyz` `/metrics`.
    pub listen: SocketAddr,
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
            bid_service_url: bid_service_url.into(),
            cookie_key: None,
            secure_cookies: false,
            call_timeout: Duration::from_secs(10),
            max_body_bytes: 8 * 1024,
            max_live_streams: 1_000,
            readiness_interval: Duration::from_secs(2),
            resubscribe_max_backoff: Duration::from_secs(5),
            recent_bids: 10,
        }
    }
}
