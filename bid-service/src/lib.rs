//! The bid service: the front door for bids.
//!
//! It validates each bid (the bid rules: README.md, "Bid events"; the ones that depend on the
//! auction's state in `book.rs`), writes it to the Kafka topic with the idempotent producer,
//! answers OK only once its own tailer has read the bid back from the log, and answers questions
//! about auctions from the state that the log implies. On start it replays the topic from the
//! beginning (gRPC health is NOT_SERVING until it has caught up), then follows it, so that
//! replicas, restarts and other producers (such as the original Python demo) all converge on the
//! same state.
//!
//! Layout (modules private; [`spawn`], [`Settings`] and [`config`] are the interface):
//! - [`config`] - settings, and the binary's command line.
//! - `book` - auction state; the bid rules that depend on it.
//! - `tailer` - replays and follows the log into the book; reads acknowledged bids back.
//! - `kafka` - the producer, topic set-up, consumer configuration.
//! - `idempotency` - outcomes by `request_id` for idempotent retries.
//! - `api` - the gRPC service and the mapping of errors to statuses.
//! - [`metrics`] - metric names.
//!
//! [`spawn`] starts everything on the configured ports (port 0 picks free ones, for tests).

mod api;
mod book;
pub mod config;
mod idempotency;
mod kafka;
pub mod metrics;
mod tailer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auction_process::{self as service, Readiness};
use auction_proto::v1::bid_service_server::BidServiceServer;
use auction_schemas::{BidDecoder, BidEncoder};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::{BidApi, BidGrpc};
use crate::book::{AuctionBook, BidRules};
pub use crate::config::{GrpcTls, KafkaProperties, Settings};
use crate::idempotency::RequestOutcomes;
use crate::kafka::KafkaBidProducer;
use crate::tailer::{AppliedOffsets, Tailer};
pub use auction_process::StartError;

/// Largest gRPC request accepted; a bid is a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A started bid service.
#[derive(Debug)]
pub struct RunningBidService {
    /// gRPC, gRPC-Web, health and reflection.
    pub grpc_addr: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: SocketAddr,
    /// True once the log has been replayed.
    pub caught_up: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl RunningBidService {
    /// Waits until the service has replayed the log, at most `timeout`.
    pub async fn wait_caught_up(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.caught_up.wait_for(|ready| *ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the service has stopped (after its shutdown token was cancelled).
    pub async fn stopped(self) -> Result<(), String> {
        self.task
            .await
            .map_err(|e| format!("the service task failed: {e}"))?
    }
}

fn check(settings: &Settings) -> Result<(), StartError> {
    let problems: Vec<String> = [
        (settings
            .kafka
            .get("bootstrap.servers")
            .is_none_or(str::is_empty))
        .then(|| "the Kafka bootstrap servers are not set (KAFKA_BOOTSTRAP_SERVERS)".to_owned()),
        (settings.topic.is_empty()).then(|| "the topic name is empty".to_owned()),
        (settings.topic_partitions < 1).then(|| "the topic needs at least 1 partition".to_owned()),
        (settings.min_increment < 1).then(|| "the minimum increment must be at least 1".to_owned()),
        (settings.starting_price < 1).then(|| "the starting price must be at least 1".to_owned()),
        (settings.max_bids_in_flight < 1)
            .then(|| "at least 1 bid must be allowed in flight".to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StartError::new(problems.join("; ")))
    }
}

fn cors(origins: &[String]) -> Result<CorsLayer, StartError> {
    let allow_origin = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        let parsed = origins
            .iter()
            .map(|o| {
                o.parse()
                    .map_err(|_| StartError::new(format!("{o:?} is not a valid CORS origin")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(parsed)
    };
    let headers = [
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "connect-protocol-version",
    ];
    let exposed = ["grpc-status", "grpc-message", "grpc-status-details-bin"];
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            tonic::codegen::http::Method::POST,
            tonic::codegen::http::Method::OPTIONS,
        ])
        .allow_headers(headers.map(tonic::codegen::http::HeaderName::from_static))
        .expose_headers(exposed.map(tonic::codegen::http::HeaderName::from_static))
        .max_age(Duration::from_secs(600)))
}

/// Starts the bid service; it runs until `shutdown` is cancelled, then stops taking calls,
/// finishes the calls in progress, flushes the producer and stops.
pub async fn spawn(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<RunningBidService, StartError> {
    check(&settings)?;
    tracing::info!(kafka = ?settings.kafka, topic = %settings.topic, registry = %settings.registry.url, "starting the bid service");
    let partitions = kafka::ensure_topic(
        &settings.kafka,
        &settings.topic,
        settings.create_topic,
        settings.topic_partitions,
        settings.topic_replication,
        settings.allow_unsafe_topic,
    )
    .await
    .map_err(|e| StartError::new(e.0))?;
    let producer =
        KafkaBidProducer::new(&settings.kafka, &settings.topic, settings.delivery_timeout)
            .map_err(|e| StartError::new(e.0))?;
    let encoder = BidEncoder::new(&settings.registry, &settings.topic)
        .map_err(|e| StartError::new(e.to_string()))?;
    let decoder =
        BidDecoder::new(&settings.registry).map_err(|e| StartError::new(e.to_string()))?;
    let schema_id = if settings.register_schemas {
        encoder.register_schemas().await
    } else {
        encoder.verify_schema().await
    }
    .map_err(|e| {
        StartError::new(format!(
            "cannot use the bid schemas at {}: {e}",
            settings.registry.url
        ))
    })?;
    tracing::info!(
        schema_id,
        registered = settings.register_schemas,
        "bid schema ready"
    );
    let book = Arc::new(AuctionBook::new(
        BidRules {
            min_increment: settings.min_increment,
            starting_price: settings.starting_price,
        },
        settings.recent_bids_per_auction,
        settings.remembered_requests,
    ));
    let applied = Arc::new(AppliedOffsets::new(partitions));
    let (caught_up_sender, caught_up) = watch::channel(false);
    let tailer = Tailer {
        config: kafka::tailer_config(&settings.kafka),
        topic: settings.topic.clone(),
        partitions,
        decoder: Arc::new(decoder),
        book: Arc::clone(&book),
        applied: Arc::clone(&applied),
    };
    let tailer_task = tailer
        .spawn(caught_up_sender, shutdown.clone())
        .await
        .map_err(|e| StartError::new(e.0))?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health.set_not_serving::<BidServiceServer<BidGrpc>>().await;
    let readiness = Readiness::default();
    {
        let health = health.clone();
        let readiness = readiness.clone();
        let mut caught_up = caught_up.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                ready = async { caught_up.wait_for(|ready| *ready).await.is_ok() } => if ready {
                    health.set_service_status("", ServingStatus::Serving).await;
                    health.set_serving::<BidServiceServer<BidGrpc>>().await;
                    readiness.set(true);
                }
            }
        });
    }

    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(auction_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| StartError::new(format!("cannot build server reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| StartError::new(format!("cannot build server reflection: {e}")))?;

    let api = Arc::new(BidApi {
        book,
        producer: producer.clone(),
        encoder: Arc::new(encoder),
        requests: RequestOutcomes::new(settings.remembered_requests),
        applied,
        in_flight: Arc::new(Semaphore::new(settings.max_bids_in_flight)),
        default_deadline: settings.default_deadline,
        delivery_timeout: settings.delivery_timeout,
        shutdown: shutdown.clone(),
    });
    let bid_service =
        BidServiceServer::new(BidGrpc(api)).max_decoding_message_size(MAX_REQUEST_BYTES);

    let listener = TcpListener::bind(settings.grpc_listen).await.map_err(|e| {
        StartError::new(format!(
            "cannot listen for gRPC on {}: {e}",
            settings.grpc_listen
        ))
    })?;
    let grpc_addr = listener
        .local_addr()
        .map_err(|e| StartError::new(format!("cannot read the gRPC address: {e}")))?;
    let metrics_addr =
        service::spawn_ops_server(settings.metrics_listen, readiness.clone(), shutdown.clone())
            .await
            .map_err(|e| {
                StartError::new(format!(
                    "cannot listen for metrics on {}: {e}",
                    settings.metrics_listen
                ))
            })?;

    let mut server = Server::builder();
    if let Some(tls) = &settings.tls {
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(
            &tls.certificate_pem,
            tls.key_pem.expose(),
        ));
        if let Some(ca) = &tls.client_ca_pem {
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        server = server
            .tls_config(config)
            .map_err(|e| StartError::new(format!("the gRPC TLS settings cannot be used: {e}")))?;
    }
    let router = server
        .accept_http1(true)
        .layer(cors(&settings.cors_allowed_origins)?)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(bid_service);
    // A producer that failed fatally can deliver nothing more: stop serving and exit with an
    // error, so that the supervisor restarts the service with a new producer.
    let fatal = Arc::new(std::sync::Mutex::new(None::<String>));
    {
        let producer = producer.clone();
        let fatal = Arc::clone(&fatal);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                if let Some(error) = producer.fatal_error() {
                    tracing::error!(%error, "the Kafka producer failed fatally; stopping");
                    *fatal
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
                    shutdown.cancel();
                    return;
                }
            }
        });
    }
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = router
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                stop.cancelled().await;
                readiness.set(false);
                health
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
            })
            .await;
        let flushed =
            tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
        let _ = tailer_task.await;
        served.map_err(|e| format!("the gRPC server failed: {e}"))?;
        if let Some(error) = fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            return Err(format!(
                "the Kafka producer failed fatally and can deliver no more bids: {error}"
            ));
        }
        match flushed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("the producer could not flush its queue: {e}")),
            Err(e) => Err(format!("the flush task failed: {e}")),
        }
    });
    tracing::info!(%grpc_addr, %metrics_addr, "bid service listening");
    Ok(RunningBidService {
        grpc_addr,
        metrics_addr,
        caught_up,
        task,
    })
}
