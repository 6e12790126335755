//! The bid service: the front door for bids.
//!
//! Replicas form one Kafka consumer group over the bid topic; each partition has one owner at a
//! time, which alone decides for the auctions of that partition: it validates their bids one after
//! another, writes them in Kafka transactions (fenced by a `transactional.id` per partition, so a
//! replica that lost ownership can never commit), answers OK once the bid is committed and read
//! back valid at its position, and writes each changed auction's state to the compacted state
//! topic in the same transaction. Other replicas forward `PlaceBid` to the owner. Every replica
//! keeps a read copy of all auctions from the state topic for the read calls. ARCHITECTURE.md
//! tells the whole story, failure cases included.
//!
//! Layout (modules private; [`spawn`], [`Settings`] and [`config`] are the interface):
//! - [`config`] - settings, and the binary's command line.
//! - `auction` - one auction's state as a fold of its bids; the bid rules that depend on it.
//! - `ownership` - the consumer group: which partitions this replica owns; feeds their owners.
//! - `owner` - the owner of one partition: fencing, restore, decisions, transactions.
//! - `read_copy` - every auction's state for reads, and each partition's owner.
//! - `state_log` - reading the state topic (the read copy's follower, restores).
//! - `forward` - forwarding calls to the owner on another replica.
//! - `kafka` - topics, partitioning, client configurations.
//! - `api` - the gRPC service and the mapping of errors to statuses.
//! - `limits` - bids in flight, auctions opened by a first bid, open watch streams.
//! - [`metrics`] - metric names.
//!
//! [`spawn`] starts everything on the configured ports (port 0 picks free ones, for tests).

mod api;
mod auction;
pub mod config;
mod creation;
mod forward;
mod kafka;
mod lifecycle;
mod limits;
pub mod metrics;
mod owner;
mod ownership;
mod read_copy;
mod state_log;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use auction_process::{self as service, Readiness};
use auction_proto::v1::bid_service_server::BidServiceServer;
use auction_schemas::{BidDecoder, BidEncoder, RecordCodec};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::{BidApi, BidGrpc};
use crate::auction::BidRules;
pub use crate::config::{GrpcTls, KafkaProperties, Settings};
use crate::kafka::TopicSpec;
/// The partition of the bid topic that holds an auction's bids (librdkafka's default
/// partitioner for keyed records: CRC-32 of the auction id modulo the partition count).
pub use crate::kafka::partition_for;
use crate::owner::OwnerContext;
use crate::read_copy::ReadCopy;
use crate::state_log::StateFollower;
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
    /// True once the service is SERVING: the state topic has been read and every partition has
    /// an owner.
    pub caught_up: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<(), String>>,
    ownership: Arc<ownership::Ownership>,
    /// Stops the group consumer's thread (it is no tokio task) when this handle is dropped
    /// without a shutdown, as when a test panics.
    _group_stop: tokio_util::sync::DropGuard,
}

impl RunningBidService {
    /// Waits until the service is SERVING, at most `timeout`.
    pub async fn wait_caught_up(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.caught_up.wait_for(|ready| *ready))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The partitions of the bid topic whose owner runs in this replica now.
    pub fn owned_partitions(&self) -> Vec<i32> {
        let mut owned = self.ownership.owned();
        owned.sort_unstable();
        owned
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
        (settings.state_topic().is_empty() || settings.state_topic() == settings.topic)
            .then(|| "the state topic needs a name of its own".to_owned()),
        (settings.group_id.is_empty()).then(|| "the consumer group name is empty".to_owned()),
        (settings.topic_partitions < 1).then(|| "the topic needs at least 1 partition".to_owned()),
        (settings.min_increment < 1).then(|| "the minimum increment must be at least 1".to_owned()),
        (settings.starting_price < 1).then(|| "the starting price must be at least 1".to_owned()),
        (settings.max_bids_in_flight < 1)
            .then(|| "at least 1 bid must be allowed in flight".to_owned()),
        (settings.implicit_auctions && settings.max_implicit_auctions < 1).then(|| {
            "AUCTION_MAX_IMPLICIT_AUCTIONS must be at least 1 (to open no auction on a first \
             bid, set AUCTION_NO_IMPLICIT_AUCTIONS)"
                .to_owned()
        }),
        (settings.max_watch_streams < 1)
            .then(|| "BID_SERVICE_MAX_WATCH_STREAMS must be at least 1".to_owned()),
        (settings.max_watch_streams_per_client < 1)
            .then(|| "BID_SERVICE_MAX_WATCH_STREAMS_PER_CLIENT must be at least 1".to_owned()),
        (settings.max_concurrent_streams_per_connection < 1)
            .then(|| "BID_SERVICE_MAX_STREAMS_PER_CONNECTION must be at least 1".to_owned()),
        (settings.http2_keepalive_interval.is_some() && settings.http2_keepalive_timeout.is_zero())
            .then(|| "BID_SERVICE_HTTP2_KEEPALIVE_TIMEOUT_SECS must be at least 1".to_owned()),
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

/// The CORS policy of gRPC-Web: the listed origins, any with `*`, none when the list is empty
/// (a preflight from an unlisted origin gets no `Access-Control-Allow-Origin`, so the browser
/// refuses the call).
fn cors(origins: &[String]) -> Result<CorsLayer, StartError> {
    let allow_origin = if origins.iter().any(|o| o.trim() == "*") {
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
    // The process's Prometheus recorder, before the first metric is recorded: without it the
    // counts made before the first scrape of /metrics were lost.
    let _ = service::metrics_handle();
    let state_topic = settings.state_topic();
    tracing::info!(kafka = ?settings.kafka, topic = %settings.topic, state_topic = %state_topic,
        registry = %settings.registry.url, "starting the bid service");
    let partitions = kafka::ensure_topic(
        &settings.kafka,
        TopicSpec {
            name: &settings.topic,
            partitions: settings.topic_partitions,
            replication: settings.topic_replication,
            compacted: false,
        },
        settings.create_topic,
        settings.allow_unsafe_topic,
    )
    .await
    .map_err(|e| StartError::new(e.0))?;
    // The state topic has as many partitions as the bid topic: an auction's state lives in the
    // partition of the same number as its bids. The results topic is compacted too (one record
    // per closed auction, kept for the sinks).
    let results_topic = settings.results_topic();
    let mut compacted_partitions = Vec::new();
    for name in [&state_topic, &results_topic] {
        let spec = TopicSpec {
            name,
            partitions,
            replication: settings.topic_replication,
            compacted: true,
        };
        let ensured = kafka::ensure_topic(
            &settings.kafka,
            spec,
            settings.create_state_topic,
            settings.allow_unsafe_topic,
        )
        .await
        .map_err(|e| StartError::new(e.0))?;
        compacted_partitions.push(ensured);
    }
    let state_partitions = compacted_partitions[0];
    if state_partitions != partitions {
        return Err(StartError::new(format!(
            "the state topic {} has {state_partitions} partitions and the bid topic {} has {partitions}: \
             they must have the same number (add partitions to the smaller one)",
            state_topic, settings.topic
        )));
    }
    let encoder = BidEncoder::with_form(&settings.registry, &settings.topic, settings.bid_form)
        .map_err(|e| StartError::new(e.to_string()))?;
    let decoder =
        BidDecoder::new(&settings.registry).map_err(|e| StartError::new(e.to_string()))?;
    let state_codec = RecordCodec::state(&settings.registry, &state_topic)
        .map_err(|e| StartError::new(e.to_string()))?;
    let registry_error = |e: auction_schemas::EncodeError| {
        StartError::new(format!(
            "cannot use the schemas at {}: {e}",
            settings.registry.url
        ))
    };
    let schema_id = if settings.register_schemas {
        encoder.register_schemas().await
    } else {
        encoder.verify_schema().await
    }
    .map_err(registry_error)?;
    let state_schema_id = state_codec
        .prepare(settings.register_schemas)
        .await
        .map_err(registry_error)?;
    let results_codec = RecordCodec::results(&settings.registry, &results_topic)
        .map_err(|e| StartError::new(e.to_string()))?;
    results_codec
        .prepare(settings.register_schemas)
        .await
        .map_err(registry_error)?;
    tracing::info!(
        schema_id,
        state_schema_id,
        registered = settings.register_schemas,
        "schemas ready"
    );

    let listener = TcpListener::bind(settings.grpc_listen).await.map_err(|e| {
        StartError::new(format!(
            "cannot listen for gRPC on {}: {e}",
            settings.grpc_listen
        ))
    })?;
    let grpc_addr = listener
        .local_addr()
        .map_err(|e| StartError::new(format!("cannot read the gRPC address: {e}")))?;
    let address = match &settings.advertised_address {
        Some(address) => address.clone(),
        None if grpc_addr.ip().is_unspecified() => {
            return Err(StartError::new(format!(
                "the service listens on {grpc_addr}, so the other replicas cannot know where to \
                 reach it: set BID_SERVICE_ADVERTISED_ADDRESS (for example http://10.0.0.5:50051)"
            )));
        }
        None => format!(
            "{}://{grpc_addr}",
            if settings.tls.is_some() {
                "https"
            } else {
                "http"
            }
        ),
    };

    let rules = BidRules {
        min_increment: settings.min_increment,
        starting_price: settings.starting_price,
        recent_limit: settings.recent_bids_per_auction,
    };
    let read_copy = Arc::new(ReadCopy::new(rules));
    let (read_sender, mut state_read) = watch::channel(false);
    let (serving_sender, caught_up) = watch::channel(false);
    let follower_task = StateFollower {
        config: kafka::reader_config(&settings.kafka),
        topic: state_topic.clone(),
        partitions,
        read_copy: Arc::clone(&read_copy),
    }
    .spawn(read_sender, shutdown.clone())
    .map_err(|e| StartError::new(e.0))?;

    let context = Arc::new(OwnerContext {
        kafka: settings.kafka.clone(),
        topic: settings.topic.clone(),
        state_topic: state_topic.clone(),
        transactional_id_prefix: settings.group_id.clone(),
        rules,
        idempotency_window: settings.idempotency_window,
        commit_interval: settings.commit_interval,
        transaction_timeout: settings.delivery_timeout,
        encoder: Arc::new(encoder),
        decoder: Arc::new(decoder),
        state_codec: Arc::new(state_codec),
        read_copy: Arc::clone(&read_copy),
        address: address.clone(),
        group: OnceLock::new(),
        implicit_auctions: settings.implicit_auctions,
        implicit_limit: limits::ImplicitAuctions::new(
            settings.max_implicit_auctions,
            settings.implicit_auctions_per_second,
        ),
        results_topic,
        results_codec: Arc::new(results_codec),
    });
    let group_stop = shutdown.child_token();
    let (ownership, group_ended) = ownership::start(
        context,
        partitions,
        &settings.group_id,
        tokio::runtime::Handle::current(),
        group_stop.clone(),
    )
    .map_err(|e| StartError::new(e.0))?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
    health.set_not_serving::<BidServiceServer<BidGrpc>>().await;
    let readiness = Readiness::default();
    {
        // SERVING once the state topic has been read, the group has given this replica its
        // partitions and their owners here have taken over, and every other partition has an
        // owner named by the state topic: the first calls need not wait. (The state topic alone
        // is not enough: for a restarted replica it still names its earlier self.)
        let health = health.clone();
        let ownership = Arc::clone(&ownership);
        let readiness = readiness.clone();
        let shutdown = shutdown.clone();
        let read_copy = Arc::clone(&read_copy);
        tokio::spawn(async move {
            let ready = async {
                if state_read.wait_for(|read| *read).await.is_err() {
                    return false;
                }
                let started = std::time::Instant::now();
                while !(ownership.settled()
                    && (0..partitions).all(|p| read_copy.owner(p).is_some()))
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tracing::info!(
                    seconds = started.elapsed().as_secs_f64(),
                    "every partition has an owner; serving"
                );
                true
            };
            tokio::select! {
                () = shutdown.cancelled() => {}
                ready = ready => if ready {
                    health.set_service_status("", ServingStatus::Serving).await;
                    health.set_serving::<BidServiceServer<BidGrpc>>().await;
                    readiness.set(true);
                    serving_sender.send_replace(true);
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

    let partition_count = Arc::clone(&ownership.partitions);
    let api = Arc::new(BidApi {
        read_copy,
        ownership: Arc::clone(&ownership),
        forwarder: forward::Forwarder::default(),
        address,
        partitions: partition_count,
        in_flight: limits::BidsInFlight::new(settings.max_bids_in_flight),
        watch_streams: limits::WatchStreams::new(
            settings.max_watch_streams,
            settings.max_watch_streams_per_client,
            settings.watch_streams_exempt_clients.clone(),
        ),
        bids_per_client: settings.bids_per_second_per_client.map(|per_second| {
            governor::RateLimiter::keyed(governor::Quota::per_second(per_second))
        }),
        default_deadline: settings.default_deadline,
        shutdown: shutdown.clone(),
        creation_token: settings.creation_token.clone(),
        rules,
    });
    if api.bids_per_client.is_some() {
        // The per-client limiter keeps a cell per address: those that have not bid lately go.
        let api = Arc::clone(&api);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = every.tick() => {
                        if let Some(limiter) = &api.bids_per_client {
                            limiter.retain_recent();
                            limiter.shrink_to_fit();
                        }
                    }
                }
            }
        });
    }
    let bid_service =
        BidServiceServer::new(BidGrpc(api)).max_decoding_message_size(MAX_REQUEST_BYTES);

    let metrics_addr =
        service::spawn_ops_server(settings.metrics_listen, readiness.clone(), shutdown.clone())
            .await
            .map_err(|e| {
                StartError::new(format!(
                    "cannot listen for metrics on {}: {e}",
                    settings.metrics_listen
                ))
            })?;

    // Dead peers are found by HTTP/2 pings and TCP keepalive. tonic 0.14 (hyper 1) has no
    // idle-connection timeout: an idle connection that answers pings stays open, holding no
    // stream; what a client can hold is bounded by the stream limits.
    let mut server = Server::builder()
        .http2_keepalive_interval(settings.http2_keepalive_interval)
        .http2_keepalive_timeout(Some(settings.http2_keepalive_timeout))
        .max_concurrent_streams(settings.max_concurrent_streams_per_connection);
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
    // The server's own TCP settings apply only to listeners it binds: these go on the incoming
    // stream.
    let incoming = TcpIncoming::from(listener).with_keepalive(settings.tcp_keepalive);
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = router
            .serve_with_incoming_shutdown(incoming, async move {
                stop.cancelled().await;
                readiness.set(false);
                health
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
            })
            .await;
        // The group consumer's thread stops the owners (their open transactions aborted) and
        // leaves the group, so that the other replicas take over at once.
        let _ = group_ended.await;
        let _ = follower_task.await;
        served.map_err(|e| format!("the gRPC server failed: {e}"))
    });
    tracing::info!(%grpc_addr, %metrics_addr, "bid service listening");
    Ok(RunningBidService {
        grpc_addr,
        metrics_addr,
        caught_up,
        task,
        ownership,
        _group_stop: group_stop.drop_guard(),
    })
}
