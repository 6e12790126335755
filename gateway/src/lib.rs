//! The gateway: the web front end of the auction platform (ARCHITECTURE.md, "Code map").
//!
//! Server-rendered pages (axum + askama) talk to the bid service over gRPC: a list of auctions,
//! an auction page with the bid form, and live updates of the highest bid over Server-Sent Events.
//! Every page works without JavaScript; the one script only keeps a page current.
//!
//! Layout (modules private but for [`config`] and [`metrics`]):
//! - [`config`] - settings, and the binary's command line.
//! - [`metrics`] - metric names.
//! - `pages` - the pages and the bid form (post/redirect/get with a one-shot message).
//! - `create` - the form that creates an auction and shows its seller key once.
//! - `outcome` - what a `PlaceBid` answer means, in sentences.
//! - `live` - the SSE endpoint: one connection's updates, bounded in total and per client.
//! - `live_hub` - one upstream `WatchAuction` per followed auction, shared by its connections.
//! - `limits` - per-client limits: live streams held, stream and form-post rates.
//! - `server` - the HTTP/1.1 and HTTP/2 server with its connection time limits.
//! - `security` - the signed CSRF token, the signed message cookie and the security headers.
//! - `assets` - the stylesheet and script, compiled into the binary.
//!
//! Invariants: a post without a valid CSRF token reaches no gRPC call; every value on a page goes
//! through askama's HTML escaping (or `textContent` in the script); users see sentences, never
//! error details; live streams end when the shutdown token is cancelled.
//!
//! [`spawn`] serves everything on the configured address (port 0 picks a free one); tests can
//! also drive [`router`] directly.

mod assets;
pub mod config;
mod create;
mod limits;
mod live;
mod live_hub;
pub mod metrics;
mod outcome;
mod pages;
mod security;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auction_process::{self as service, Readiness};
use auction_proto::v1::bid_service_client::BidServiceClient;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub use crate::config::Settings;
use crate::limits::ClientLimits;
use crate::live_hub::LiveHub;
use crate::security::CookieKey;
use crate::server::ConnectionLimits;
pub use auction_process::StartError;

/// Most streams one HTTP/2 connection carries at once (a browser opens one per request).
const HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// The gRPC service whose health decides `/readyz`.
const BID_SERVICE_NAME: &str = "auction.v1.BidService";

/// What the handlers share: the bid service client, the cookie key and the settings.
#[derive(Debug, Clone)]
pub struct App(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    settings: Settings,
    channel: Channel,
    cookie_key: CookieKey,
    readiness: Readiness,
    live_streams: Arc<Semaphore>,
    live_hub: LiveHub,
    client_limits: Arc<ClientLimits>,
    shutdown: CancellationToken,
}

impl App {
    /// Builds the shared state and starts the readiness probe (which runs until `shutdown`).
    /// The connection to the bid service is made on first use and re-made after it restarts, so
    /// the gateway starts even while the bid service is down. Call within a Tokio runtime.
    pub fn new(settings: Settings, shutdown: CancellationToken) -> Result<Self, StartError> {
        let endpoint = Endpoint::from_shared(settings.bid_service_url.clone())
            .map_err(|e| {
                StartError::new(format!(
                    "the bid service URL {:?} is not valid: {e}",
                    settings.bid_service_url
                ))
            })?
            .connect_timeout(Duration::from_secs(2))
            // Pings find a bid service that vanished without closing its connections, so that
            // live streams resubscribe instead of waiting forever.
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if settings.max_body_bytes == 0
            || settings.max_live_streams == 0
            || settings.max_live_streams_per_client == 0
            || settings.client_streams_per_sec == 0
            || settings.client_posts_per_sec == 0
        {
            return Err(StartError::new(
                "the body limit, the live stream limits (GATEWAY_MAX_LIVE_STREAMS, \
                 GATEWAY_MAX_LIVE_STREAMS_PER_CLIENT) and the client rates \
                 (GATEWAY_CLIENT_STREAMS_PER_SEC, GATEWAY_CLIENT_POSTS_PER_SEC) must be at least 1"
                    .to_owned(),
            ));
        }
        let cookie_key = match &settings.cookie_key {
            Some(secret) if !secret.expose().is_empty() => CookieKey::from_secret(secret.expose()),
            _ => CookieKey::random(),
        };
        // The gateway's counters go to the process's Prometheus recorder, served at /metrics.
        let _ = service::metrics_handle();
        let app = Self(Arc::new(Inner {
            channel: endpoint.connect_lazy(),
            cookie_key,
            readiness: Readiness::default(),
            live_streams: Arc::new(Semaphore::new(settings.max_live_streams)),
            live_hub: LiveHub::default(),
            client_limits: Arc::new(ClientLimits::new(&settings)),
            shutdown,
            settings,
        }));
        tokio::spawn(app.clone().probe_readiness());
        tokio::spawn(app.clone().forget_idle_clients());
        Ok(app)
    }

    /// A client of the bid service (cheap: clients share one connection).
    pub fn client(&self) -> BidServiceClient<Channel> {
        BidServiceClient::new(self.0.channel.clone())
    }

    /// `message` as a request with the configured call timeout.
    pub fn with_timeout<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.0.settings.call_timeout);
        request
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Whether the bid service was reachable and serving at the last probe.
    pub fn readiness(&self) -> Readiness {
        self.0.readiness.clone()
    }

    pub(crate) fn cookie_key(&self) -> &CookieKey {
        &self.0.cookie_key
    }

    fn live_streams(&self) -> Arc<Semaphore> {
        Arc::clone(&self.0.live_streams)
    }

    fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    fn live_hub(&self) -> &LiveHub {
        &self.0.live_hub
    }

    pub(crate) fn client_limits(&self) -> &Arc<ClientLimits> {
        &self.0.client_limits
    }

    /// How many auctions the gateway follows upstream now (one `WatchAuction` each).
    pub fn followed_auctions(&self) -> usize {
        self.0.live_hub.followed_count()
    }

    /// Every minute, forgets the clients whose rate buckets are full again.
    async fn forget_idle_clients(self) {
        let shutdown = self.0.shutdown.clone();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            self.0.client_limits.forget_idle_clients();
        }
    }

    /// Asks the bid service's `grpc.health.v1` whether it serves.
    pub async fn bid_service_serving(&self) -> bool {
        let mut health = HealthClient::new(self.0.channel.clone());
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: BID_SERVICE_NAME.to_owned(),
        });
        request.set_timeout(Duration::from_secs(2));
        matches!(
            health.check(request).await.map(|r| r.into_inner().status()),
            Ok(ServingStatus::Serving)
        )
    }

    async fn probe_readiness(self) {
        let shutdown = self.0.shutdown.clone();
        loop {
            let serving = tokio::select! {
                () = shutdown.cancelled() => break,
                serving = self.bid_service_serving() => serving,
            };
            if serving != self.0.readiness.get() {
                tracing::info!(bid_service_serving = serving, "gateway readiness changed");
            }
            self.0.readiness.set(serving);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.0.settings.readiness_interval) => {}
            }
        }
        self.0.readiness.set(false);
    }
}

fn panic_page(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side. Please try again.",
    )
        .into_response()
}

/// Every public route of the gateway: pages, the bid form, live updates and assets. `/healthz`,
/// `/readyz` and `/metrics` are served on the metrics address instead ([`spawn`]).
pub fn router(app: App) -> Router {
    let body_limit = app.settings().max_body_bytes;
    Router::new()
        .route("/", get(pages::index))
        .route("/open", get(pages::open))
        .route("/auctions/new", get(create::new_auction))
        .route("/auctions", post(create::create_auction))
        .route("/auctions/{id}", get(pages::auction))
        .route("/auctions/{id}/bids", post(pages::place_bid))
        .route("/auctions/{id}/events", get(live::events))
        .route("/assets/app.css", get(assets::app_css))
        .route("/assets/live.js", get(assets::live_js))
        .fallback(pages::not_found)
        .with_state(app)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(security::security_headers))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panic_page))
}

/// A started gateway.
#[derive(Debug)]
pub struct RunningGateway {
    /// Where it serves the pages.
    pub addr: SocketAddr,
    /// Where it serves `/healthz`, `/readyz` and `/metrics`.
    pub metrics_addr: SocketAddr,
    /// The shared state (for its readiness).
    pub app: App,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningGateway {
    /// Waits until the gateway has stopped (after its shutdown token was cancelled).
    pub async fn stopped(self) -> Result<(), String> {
        self.task
            .await
            .map_err(|e| format!("the gateway task failed: {e}"))?
            .map_err(|e| format!("the gateway's HTTP server failed: {e}"))
    }
}

/// Starts the gateway; it serves until `shutdown` is cancelled, then ends the live streams,
/// finishes the requests in progress and stops.
pub async fn spawn(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<RunningGateway, StartError> {
    let listen = settings.listen;
    let app = App::new(settings, shutdown.clone())?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| StartError::new(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::new(format!("cannot read the listening address: {e}")))?;
    let metrics_listen = app.settings().metrics_listen;
    let metrics_addr = service::spawn_ops_server(metrics_listen, app.readiness(), shutdown.clone())
        .await
        .map_err(|e| StartError::new(format!("cannot serve metrics on {metrics_listen}: {e}")))?;
    let routes = router(app.clone());
    let limits = ConnectionLimits {
        header_timeout: app.settings().header_timeout,
        http2_keepalive_interval: app.settings().http2_keepalive_interval,
        http2_keepalive_timeout: app.settings().http2_keepalive_interval,
        http2_max_concurrent_streams: HTTP2_MAX_CONCURRENT_STREAMS,
    };
    let task = tokio::spawn(server::serve(listener, routes, limits, shutdown));
    tracing::info!(%addr, %metrics_addr, "gateway serving");
    Ok(RunningGateway {
        addr,
        metrics_addr,
        app,
        task,
    })
}
