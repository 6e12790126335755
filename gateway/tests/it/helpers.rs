//! A bid service on the mock cluster, a gateway in front of it, and ways to talk to both.

use std::net::SocketAddr;
use std::time::Duration;

use auction_bid_service::{RunningBidService, Settings as BidSettings};
use auction_gateway::{App, Settings};
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{HighestBidRequest, PlaceBidRequest};
use auction_testkit::TestRegistry;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tower::ServiceExt;

/// A mock cluster with the `auction` topic and a schema registry.
pub(crate) struct Backend {
    _cluster: MockCluster<'static, DefaultProducerContext>,
    pub bootstrap: String,
    pub registry: TestRegistry,
}

impl Backend {
    pub(crate) async fn start() -> Self {
        let cluster = MockCluster::new(1).expect("mock cluster");
        // The mock cluster has no CreateTopics API; its owner creates topics directly.
        cluster.create_topic("auction", 3, 1).expect("topic");
        cluster
            .create_topic("auction.state", 3, 1)
            .expect("state topic");
        cluster
            .create_topic("auction.results", 3, 1)
            .expect("results topic");
        let bootstrap = cluster.bootstrap_servers();
        Self {
            _cluster: cluster,
            bootstrap,
            registry: TestRegistry::start().await,
        }
    }

    /// Settings for a bid service on `grpc` (port 0: a free one).
    pub(crate) fn bid_settings(&self, grpc: SocketAddr) -> BidSettings {
        let mut settings = BidSettings::new(&self.bootstrap, &self.registry.url);
        settings.grpc_listen = grpc;
        settings.metrics_listen = "127.0.0.1:0".parse().expect("address");
        settings.topic_partitions = 3;
        settings.create_topic = false;
        settings
    }
}

/// A running bid service.
pub(crate) struct BidService {
    pub running: RunningBidService,
    pub shutdown: CancellationToken,
}

impl BidService {
    pub(crate) async fn start(backend: &Backend, grpc: SocketAddr) -> Self {
        let shutdown = CancellationToken::new();
        let mut running = auction_bid_service::spawn(backend.bid_settings(grpc), shutdown.clone())
            .await
            .unwrap_or_else(|e| panic!("the bid service did not start: {e}"));
        assert!(
            running.wait_caught_up(Duration::from_secs(60)).await,
            "the bid service did not replay the log"
        );
        Self { running, shutdown }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.running.grpc_addr)
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(30), self.running.stopped()).await;
        assert!(
            matches!(stopped, Ok(Ok(()))),
            "the bid service did not stop cleanly: {stopped:?}"
        );
    }
}

/// A client straight to the bid service, to set up and to check what the gateway did.
pub(crate) async fn client(url: &str) -> BidServiceClient<Channel> {
    BidServiceClient::connect(url.to_owned())
        .await
        .expect("connect to the bid service")
}

pub(crate) async fn place(url: &str, auction: &str, name: &str, price: i64) {
    client(url)
        .await
        .place_bid(PlaceBidRequest {
            auction_id: auction.to_owned(),
            name: name.to_owned(),
            price,
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("placing {name} {price} on {auction} failed: {e}"));
}

/// How many bids an auction has, per the bid service.
pub(crate) async fn bid_count(url: &str, auction: &str) -> u64 {
    client(url)
        .await
        .highest_bid(HighestBidRequest {
            auction_id: auction.to_owned(),
        })
        .await
        .expect("HighestBid")
        .into_inner()
        .auction
        .expect("auction state")
        .bid_count
}

/// Gateway settings for tests: a fixed cookie key, a fast readiness probe.
pub(crate) fn gateway_settings(bid_service_url: &str) -> Settings {
    let mut settings = Settings::new(bid_service_url);
    settings.listen = "127.0.0.1:0".parse().expect("address");
    settings.metrics_listen = "127.0.0.1:0".parse().expect("address");
    settings.cookie_key = Some(auction_process::Secret::new("test cookie key"));
    settings.readiness_interval = Duration::from_millis(100);
    settings.resubscribe_max_backoff = Duration::from_millis(500);
    // Tests post forms and open streams faster than a person; the tests of the per-client
    // limits set their own.
    settings.client_posts_per_sec = 1_000;
    settings.client_streams_per_sec = 1_000;
    settings
}

/// Everything a page test needs: backend, bid service and the gateway's router.
pub(crate) struct Stack {
    /// Kept so that the broker and the registry run until the test ends.
    _backend: Backend,
    pub service: Option<BidService>,
    pub url: String,
    pub router: Router,
    /// `/healthz`, `/readyz` and `/metrics`, served apart from the public router.
    pub ops: Router,
    pub shutdown: CancellationToken,
}

impl Stack {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A stack whose gateway settings `adjust` changes from the tests' defaults.
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let backend = Backend::start().await;
        let service = BidService::start(&backend, "127.0.0.1:0".parse().expect("address")).await;
        let url = service.url();
        let shutdown = CancellationToken::new();
        let mut settings = gateway_settings(&url);
        adjust(&mut settings);
        let app = App::new(settings, shutdown.clone()).expect("gateway");
        let ops = auction_process::ops_router(app.readiness());
        let router = auction_gateway::router(app);
        Self {
            _backend: backend,
            service: Some(service),
            url,
            router,
            ops,
            shutdown,
        }
    }

    pub(crate) async fn stop_bid_service(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop().await;
        }
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Page {
        Self::send_to(&self.router, request).await
    }

    /// GET on the metrics address (`/healthz`, `/readyz`, `/metrics`).
    pub(crate) async fn get_ops(&self, path: &str) -> Page {
        Self::send_to(
            &self.ops,
            Request::get(path).body(Body::empty()).expect("request"),
        )
        .await
    }

    async fn send_to(router: &Router, request: Request<Body>) -> Page {
        let response = router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 10 * 1024 * 1024)
            .await
            .expect("body");
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(crate) async fn get(&self, path: &str, cookies: &str) -> Page {
        let mut request = Request::get(path);
        if !cookies.is_empty() {
            request = request.header(header::COOKIE, cookies);
        }
        self.send(request.body(Body::empty()).expect("request"))
            .await
    }

    pub(crate) async fn post_form(&self, path: &str, cookies: &str, form: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.post_raw(path, cookies, body).await
    }

    pub(crate) async fn post_raw(&self, path: &str, cookies: &str, body: String) -> Page {
        let mut request =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if !cookies.is_empty() {
            request = request.header(header::COOKIE, cookies);
        }
        self.send(request.body(Body::from(body)).expect("request"))
            .await
    }

    /// Opens an auction page like a browser and submits its form with `name` and `price`;
    /// returns the redirect and the page it leads to.
    pub(crate) async fn submit_bid(&self, auction: &str, name: &str, price: &str) -> (Page, Page) {
        let page = self.get(&format!("/auctions/{auction}"), "").await;
        let csrf = page
            .cookie("auction_csrf")
            .expect("the page sets a CSRF cookie");
        let cookies = format!("auction_csrf={csrf}");
        let redirect = self
            .post_form(
                &format!("/auctions/{auction}/bids"),
                &cookies,
                &[
                    ("csrf_token", &page.hidden("csrf_token")),
                    ("request_id", &page.hidden("request_id")),
                    ("name", name),
                    ("price", price),
                ],
            )
            .await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER, "{}", redirect.body);
        let flash = redirect.cookie("auction_flash").expect("a message cookie");
        let location = redirect.location();
        let next = self
            .get(&location, &format!("{cookies}; auction_flash={flash}"))
            .await;
        (redirect, next)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(service) = &self.service {
            service.shutdown.cancel();
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// The value a `Set-Cookie` header of the response gives cookie `name`.
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }

    /// The value of the input named `name` in the page.
    pub(crate) fn hidden(&self, name: &str) -> String {
        input_value(&self.body, name)
            .unwrap_or_else(|| panic!("no input {name} in the page:\n{}", self.body))
    }

    pub(crate) fn location(&self) -> String {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("a Location header")
            .to_owned()
    }
}

/// The `value` attribute of the input named `name`.
pub(crate) fn input_value(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[start..];
    let value = rest.find("value=\"")? + "value=\"".len();
    let end = rest[value..].find('"')?;
    Some(rest[value..value + end].to_owned())
}

pub(crate) use auction_testkit::eventually;
