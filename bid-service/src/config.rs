//! Settings of the bid service. The binary fills them from flags and environment variables (and
//! `.env`); tests build them directly.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

pub use auction_process::KafkaProperties;
use auction_process::{KafkaArgs, Secret};
use auction_schemas::{BidForm, RegistrySettings};

/// TLS for the gRPC port: the server's certificate and key, and optionally the CA that client
/// certificates must chain to (then every client must present one).
#[derive(Debug, Clone)]
pub struct GrpcTls {
    /// The server certificate chain, PEM.
    pub certificate_pem: String,
    /// The server's private key, PEM.
    pub key_pem: Secret,
    /// When set, clients must present a certificate signed by this CA (PEM).
    pub client_ca_pem: Option<String>,
}

/// Everything the bid service needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC, gRPC-Web, health and reflection.
    pub grpc_listen: SocketAddr,
    /// Prometheus `/metrics`, `/healthz`, `/readyz`.
    pub metrics_listen: SocketAddr,
    /// Kafka client properties (at least `bootstrap.servers`).
    pub kafka: KafkaProperties,
    /// The bid topic.
    pub topic: String,
    /// The compacted state topic, co-partitioned with the bid topic; `None`: the bid topic's
    /// name followed by `.state` (see [`Settings::state_topic`]).
    pub state_topic: Option<String>,
    /// The compacted topic of closed auctions' results, which the sinks export; `None`: the bid
    /// topic's name followed by `.results` (see [`Settings::results_topic`]).
    pub results_topic: Option<String>,
    /// The consumer group of the replicas (it hands out partition ownership); also the prefix
    /// of the owners' `transactional.id`s.
    pub group_id: String,
    /// Where other replicas reach this one to forward calls (`http://host:port`); when unset,
    /// the gRPC listen address, which must then not be a wildcard.
    pub advertised_address: Option<String>,
    /// How long a `request_id` is remembered (from its bid's timestamp) for idempotent retries.
    pub idempotency_window: Duration,
    /// How long an owner gathers calls into one Kafka transaction.
    pub commit_interval: Duration,
    /// Create the bid topic at start when it is missing.
    pub create_topic: bool,
    /// Create the state topic at start when it is missing (compacted, as many partitions as
    /// the bid topic).
    pub create_state_topic: bool,
    /// Partitions of a topic created at start.
    pub topic_partitions: i32,
    /// Replication factor of a topic created at start; 0: 3 on three or more brokers, else one
    /// per broker.
    pub topic_replication: i32,
    /// Run on a topic whose settings break the guarantees (replication, `min.insync.replicas`,
    /// unclean leader election, compaction), with a warning instead of refusing to start.
    pub allow_unsafe_topic: bool,
    /// The schema registry.
    pub registry: RegistrySettings,
    /// Register the bid schemas at start; when false, only verify that v2 is registered (for
    /// registries where clients may not register schemas).
    pub register_schemas: bool,
    /// How much a bid must add to the current highest.
    pub min_increment: i32,
    /// The lowest first bid of an auction.
    pub starting_price: i32,
    /// Whether a bid on an auction nobody created opens it (the demo's way) with the rules
    /// above; when false such a bid gets NOT_FOUND.
    pub implicit_auctions: bool,
    /// When set, `CreateAuction` needs this token.
    pub creation_token: Option<Secret>,
    /// The form bids are written in: the product's (schema version 2), or the demo-compatible
    /// one (version 1 values, ids in headers) while the demo's consumers still read the topic.
    pub bid_form: BidForm,
    /// How many recent bids each auction keeps for `ListRecentBids`.
    pub recent_bids_per_auction: usize,
    /// Kafka's `transaction.timeout.ms` for the owners' transactions (and so the longest a bid
    /// may take to be delivered).
    pub delivery_timeout: Duration,
    /// The deadline of a call that sets none.
    pub default_deadline: Duration,
    /// Most `PlaceBid` calls whose work runs at once (a call's slot is held until its work
    /// ends, even after its deadline); more are refused with RESOURCE_EXHAUSTED.
    pub max_bids_in_flight: usize,
    /// Most auctions nobody created (opened by a first bid) that the partitions this replica
    /// owns may hold, restored ones included; a bid that would open one more is refused with
    /// RESOURCE_EXHAUSTED. With N replicas the system holds at most about N times as many.
    pub max_implicit_auctions: usize,
    /// Most auctions this replica opens on a first bid per second (in bursts of as many); more
    /// are refused with RESOURCE_EXHAUSTED.
    pub implicit_auctions_per_second: NonZeroU32,
    /// Most `WatchAuction` streams open at once on this replica; more are refused with
    /// RESOURCE_EXHAUSTED.
    pub max_watch_streams: usize,
    /// Most `WatchAuction` streams open at once from one client address (the peer IP).
    pub max_watch_streams_per_client: usize,
    /// Client addresses whose streams count only in the total (such as a gateway's, which
    /// watches every auction its visitors look at).
    pub watch_streams_exempt_clients: Vec<IpAddr>,
    /// Most `PlaceBid` calls per second from one client address (the peer IP; bursts of as
    /// many); `None`: no per-client limit. Calls forwarded by other replicas are not counted.
    pub bids_per_second_per_client: Option<NonZeroU32>,
    /// How often an HTTP/2 ping goes to each connection; `None`: never.
    pub http2_keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed.
    pub http2_keepalive_timeout: Duration,
    /// TCP keepalive: idle time before the first probe; `None`: off.
    pub tcp_keepalive: Option<Duration>,
    /// Most concurrent HTTP/2 streams (calls) on one connection.
    pub max_concurrent_streams_per_connection: u32,
    /// Origins allowed to call over gRPC-Web from a browser; `*` allows any; empty allows none
    /// (CORS applies to browsers only).
    pub cors_allowed_origins: Vec<String>,
    /// TLS on the gRPC port; plaintext when unset.
    pub tls: Option<GrpcTls>,
}

impl Settings {
    /// Defaults for a broker at `bootstrap` and a registry at `registry_url`, on the product's
    /// default ports.
    pub fn new(bootstrap: &str, registry_url: &str) -> Self {
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9101)),
            kafka: KafkaProperties::bootstrap(bootstrap),
            topic: "auction".to_owned(),
            state_topic: None,
            results_topic: None,
            group_id: "auction-bid-service".to_owned(),
            advertised_address: None,
            idempotency_window: Duration::from_secs(24 * 3600),
            commit_interval: Duration::from_millis(2),
            create_topic: true,
            create_state_topic: true,
            topic_partitions: 6,
            topic_replication: 0,
            allow_unsafe_topic: false,
            registry: RegistrySettings::new(registry_url),
            register_schemas: true,
            min_increment: 1,
            starting_price: 1,
            implicit_auctions: true,
            bid_form: BidForm::Product,
            creation_token: None,
            recent_bids_per_auction: 10,
            delivery_timeout: Duration::from_secs(30),
            default_deadline: Duration::from_secs(10),
            max_bids_in_flight: 10_000,
            max_implicit_auctions: 100_000,
            implicit_auctions_per_second: NonZeroU32::new(10_000).unwrap_or(NonZeroU32::MIN),
            max_watch_streams: 10_000,
            max_watch_streams_per_client: 100,
            watch_streams_exempt_clients: Vec::new(),
            bids_per_second_per_client: None,
            http2_keepalive_interval: Some(Duration::from_secs(30)),
            http2_keepalive_timeout: Duration::from_secs(20),
            tcp_keepalive: Some(Duration::from_secs(60)),
            max_concurrent_streams_per_connection: 1_000,
            cors_allowed_origins: Vec::new(),
            tls: None,
        }
    }
}

impl Settings {
    /// The state topic's name.
    pub fn state_topic(&self) -> String {
        self.state_topic
            .clone()
            .unwrap_or_else(|| format!("{}.state", self.topic))
    }

    /// The results topic's name.
    pub fn results_topic(&self) -> String {
        self.results_topic
            .clone()
            .unwrap_or_else(|| format!("{}.results", self.topic))
    }
}

/// Takes bids over gRPC (and gRPC-Web, with health and reflection on the same port). Replicas form
/// one Kafka consumer group: the owner of an auction's partition decides its bids and writes them
/// in Kafka transactions; the others forward to it. Every replica answers reads from the state
/// topic.
///
/// Kafka is configured by librdkafka properties: every environment variable `KAFKA_<NAME>` becomes
/// the property `<name>` with `_` read as `.`, e.g. `KAFKA_BOOTSTRAP_SERVERS`,
/// `KAFKA_SECURITY_PROTOCOL=SASL_SSL`, `KAFKA_SASL_MECHANISM=PLAIN`, `KAFKA_SASL_USERNAME`,
/// `KAFKA_SASL_PASSWORD`. `--kafka-property name=value` adds more. A `.env` file in the working
/// directory is read first.
#[derive(Debug, clap::Parser)]
#[command(version)]
pub struct Args {
    /// gRPC, gRPC-Web, health and reflection address.
    #[arg(long, env = "BID_SERVICE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Prometheus /metrics, /healthz and /readyz address.
    #[arg(
        long,
        env = "BID_SERVICE_METRICS_LISTEN",
        default_value = "127.0.0.1:9101"
    )]
    pub metrics_listen: SocketAddr,
    /// Kafka: bootstrap servers and any librdkafka property.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The bid topic.
    #[arg(long, env = "AUCTION_TOPIC", default_value = "auction")]
    pub topic: String,
    /// The compacted state topic (co-partitioned with the bid topic); default: the bid topic's
    /// name followed by `.state`.
    #[arg(long, env = "AUCTION_STATE_TOPIC")]
    pub state_topic: Option<String>,
    /// The compacted topic of closed auctions' results (what the sinks export); default: the bid
    /// topic's name followed by `.results`.
    #[arg(long, env = "AUCTION_RESULTS_TOPIC")]
    pub results_topic: Option<String>,
    /// The consumer group of the replicas (and the prefix of their transactional ids).
    #[arg(long, env = "BID_SERVICE_GROUP", default_value = "auction-bid-service")]
    pub group: String,
    /// Where the other replicas reach this one (http://host:port); default: the listen
    /// address, which must then not be 0.0.0.0 or `[::]`.
    #[arg(long, env = "BID_SERVICE_ADVERTISED_ADDRESS")]
    pub advertised_address: Option<String>,
    /// How long a request_id is remembered for idempotent retries, in seconds (from the bid's
    /// time).
    #[arg(
        long,
        env = "BID_SERVICE_IDEMPOTENCY_WINDOW_SECS",
        default_value_t = 86_400
    )]
    pub idempotency_window_secs: u64,
    /// How long the owner of a partition gathers bids into one Kafka transaction, in
    /// milliseconds.
    #[arg(long, env = "BID_SERVICE_COMMIT_INTERVAL_MS", default_value_t = 2)]
    pub commit_interval_ms: u64,
    /// Recent bids each auction keeps (what ListRecentBids and the gateway's page can show):
    /// with the auctions, most of a replica's memory (a replica restored with 100,000 auctions at
    /// 10 each: 268 MB resident).
    #[arg(
        long,
        env = "BID_SERVICE_RECENT_BIDS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    pub recent_bids: u16,
    /// Do not create the topics at start (they must exist).
    #[arg(long, env = "AUCTION_TOPIC_NO_CREATE")]
    pub no_create_topic: bool,
    /// Partitions of the topic when the service creates it.
    #[arg(long, env = "AUCTION_TOPIC_PARTITIONS", default_value_t = 6)]
    pub topic_partitions: i32,
    /// Replication factor of the topic when the service creates it; 0: 3 on three or more
    /// brokers (with min.insync.replicas=2), else one per broker.
    #[arg(long, env = "AUCTION_TOPIC_REPLICATION", default_value_t = 0)]
    pub topic_replication: i32,
    /// Start even if the topic's settings break the guarantees (a replication factor below 3 on
    /// three or more brokers, min.insync.replicas below 2, unclean leader election, compaction).
    #[arg(long, env = "AUCTION_TOPIC_ALLOW_UNSAFE")]
    pub allow_unsafe_topic: bool,
    /// Schema registry URL.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub schema_registry_url: String,
    /// Schema registry basic-auth user (Confluent Cloud: the API key).
    #[arg(long, env = "SCHEMA_REGISTRY_USERNAME")]
    pub schema_registry_username: Option<String>,
    /// Schema registry basic-auth password (prefer the environment variable).
    #[arg(long, env = "SCHEMA_REGISTRY_PASSWORD", hide_env_values = true)]
    pub schema_registry_password: Option<String>,
    /// Do not register the bid schemas; only verify at start that v2 is registered (for
    /// registries where clients may not register schemas).
    #[arg(long, env = "SCHEMA_REGISTRY_VERIFY_ONLY")]
    pub schema_registry_verify_only: bool,
    /// How much a bid must add to the current highest.
    #[arg(long, env = "AUCTION_MIN_INCREMENT", default_value_t = 1)]
    pub min_increment: i32,
    /// The lowest first bid of an auction.
    #[arg(long, env = "AUCTION_STARTING_PRICE", default_value_t = 1)]
    pub starting_price: i32,
    /// Refuse bids on auctions nobody created (NOT_FOUND) instead of opening them on the first
    /// bid, as the original demo does.
    #[arg(long, env = "AUCTION_NO_IMPLICIT_AUCTIONS")]
    pub no_implicit_auctions: bool,
    /// Write bids the original demo's consumers can read: schema version 1 values (name, price
    /// and a `bid_ts` of the demo's form), the bid and auction ids in the `auction-bid-id` and
    /// `auction-id` headers. For a cut-over while the demo's consumers still run (README,
    /// "Migrating from the demo"); switch it off once they are gone.
    #[arg(long, env = "AUCTION_DEMO_COMPATIBLE")]
    pub demo_compatible: bool,
    /// Require this token in CreateAuction's `creation_token` (prefer the environment variable);
    /// anyone may create auctions when unset.
    #[arg(long, env = "AUCTION_CREATION_TOKEN", hide_env_values = true)]
    pub creation_token: Option<String>,
    /// Kafka's transaction timeout: how long a bid may take to be committed (longer than a
    /// partition leader's failover, about 10 s with Kafka's defaults). The call itself answers
    /// by the client's deadline.
    #[arg(
        long,
        env = "BID_SERVICE_DELIVERY_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub delivery_timeout_ms: u64,
    /// Most PlaceBid calls whose work runs at once (held until the work ends, even past the
    /// client's deadline); more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "BID_SERVICE_MAX_IN_FLIGHT", default_value_t = 10_000)]
    pub max_in_flight: usize,
    /// Most auctions nobody created (opened by a first bid) in the partitions this replica
    /// owns; a bid that would open one more gets RESOURCE_EXHAUSTED.
    #[arg(long, env = "AUCTION_MAX_IMPLICIT_AUCTIONS", default_value_t = 100_000)]
    pub max_implicit_auctions: usize,
    /// Most auctions this replica opens on a first bid per second; more get RESOURCE_EXHAUSTED.
    #[arg(
        long,
        env = "AUCTION_IMPLICIT_AUCTIONS_PER_SEC",
        default_value_t = 10_000
    )]
    pub implicit_auctions_per_sec: u32,
    /// Most WatchAuction streams open at once on this replica; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "BID_SERVICE_MAX_WATCH_STREAMS", default_value_t = 10_000)]
    pub max_watch_streams: usize,
    /// Most WatchAuction streams open at once from one client address (peer IP).
    #[arg(
        long,
        env = "BID_SERVICE_MAX_WATCH_STREAMS_PER_CLIENT",
        default_value_t = 100
    )]
    pub max_watch_streams_per_client: usize,
    /// Client addresses (comma-separated IPs, such as the gateway's) whose WatchAuction
    /// streams count only in the total, not per client.
    #[arg(long, env = "BID_SERVICE_WATCH_EXEMPT_CLIENTS", value_delimiter = ',')]
    pub watch_exempt_clients: Vec<IpAddr>,
    /// Most PlaceBid calls per second from one client address (peer IP); 0: no limit.
    #[arg(long, env = "BID_SERVICE_BIDS_PER_SEC_PER_CLIENT", default_value_t = 0)]
    pub bids_per_sec_per_client: u32,
    /// Seconds between HTTP/2 pings on each gRPC connection (a peer that does not answer is
    /// dropped); 0: no pings.
    #[arg(long, env = "BID_SERVICE_HTTP2_KEEPALIVE_SECS", default_value_t = 30)]
    pub http2_keepalive_secs: u64,
    /// Seconds an HTTP/2 ping may go unanswered before the connection is closed.
    #[arg(
        long,
        env = "BID_SERVICE_HTTP2_KEEPALIVE_TIMEOUT_SECS",
        default_value_t = 20
    )]
    pub http2_keepalive_timeout_secs: u64,
    /// Seconds a gRPC connection may be idle before TCP keepalive probes start; 0: off.
    #[arg(long, env = "BID_SERVICE_TCP_KEEPALIVE_SECS", default_value_t = 60)]
    pub tcp_keepalive_secs: u64,
    /// Most concurrent calls (HTTP/2 streams) on one gRPC connection.
    #[arg(
        long,
        env = "BID_SERVICE_MAX_STREAMS_PER_CONNECTION",
        default_value_t = 1_000
    )]
    pub max_streams_per_connection: u32,
    /// Browser origins allowed to call over gRPC-Web (comma-separated, such as
    /// `https://auction.example.com`); `*` allows any origin. Unset: no other origin (a page
    /// served elsewhere cannot call the service from a browser; other clients are not affected).
    #[arg(long, env = "BID_SERVICE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM file).
    #[arg(long, env = "BID_SERVICE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of the TLS certificate (PEM file).
    #[arg(long, env = "BID_SERVICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (PEM file); needs --tls-cert.
    #[arg(long, env = "BID_SERVICE_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "LOG_FORMAT_JSON")]
    pub log_json: bool,
}

impl Args {
    /// The settings these arguments describe; `env` supplies the `KAFKA_*` variables.
    pub fn into_settings(
        self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, String> {
        let kafka = self.kafka.into_properties(env)?;
        let mut registry = RegistrySettings::new(self.schema_registry_url);
        registry.username = self.schema_registry_username;
        registry.password = self.schema_registry_password.map(Secret::new);
        if registry.password.is_some() && registry.username.is_none() {
            return Err(
                "SCHEMA_REGISTRY_PASSWORD is set but SCHEMA_REGISTRY_USERNAME is not".to_owned(),
            );
        }
        let mut settings = Settings::new("", "");
        settings.grpc_listen = self.listen;
        settings.metrics_listen = self.metrics_listen;
        settings.kafka = kafka;
        settings.state_topic = self.state_topic;
        settings.results_topic = self.results_topic;
        settings.topic = self.topic;
        settings.group_id = self.group;
        settings.advertised_address = self.advertised_address;
        settings.idempotency_window = Duration::from_secs(self.idempotency_window_secs);
        settings.commit_interval = Duration::from_millis(self.commit_interval_ms);
        settings.recent_bids_per_auction = usize::from(self.recent_bids);
        settings.create_topic = !self.no_create_topic;
        settings.create_state_topic = !self.no_create_topic;
        settings.topic_partitions = self.topic_partitions;
        settings.topic_replication = self.topic_replication;
        settings.allow_unsafe_topic = self.allow_unsafe_topic;
        settings.registry = registry;
        settings.register_schemas = !self.schema_registry_verify_only;
        settings.min_increment = self.min_increment;
        settings.starting_price = self.starting_price;
        settings.implicit_auctions = !self.no_implicit_auctions;
        settings.bid_form = if self.demo_compatible {
            BidForm::DemoCompatible
        } else {
            BidForm::Product
        };
        settings.creation_token = self.creation_token.map(Secret::new);
        settings.delivery_timeout = Duration::from_millis(self.delivery_timeout_ms);
        settings.max_bids_in_flight = self.max_in_flight;
        settings.max_implicit_auctions = self.max_implicit_auctions;
        settings.implicit_auctions_per_second = NonZeroU32::new(self.implicit_auctions_per_sec)
            .ok_or("AUCTION_IMPLICIT_AUCTIONS_PER_SEC must be at least 1 (to open no auction on a first bid, set AUCTION_NO_IMPLICIT_AUCTIONS)")?;
        settings.max_watch_streams = self.max_watch_streams;
        settings.max_watch_streams_per_client = self.max_watch_streams_per_client;
        settings.watch_streams_exempt_clients = self.watch_exempt_clients;
        settings.bids_per_second_per_client = NonZeroU32::new(self.bids_per_sec_per_client);
        let seconds = |secs: u64| (secs > 0).then(|| Duration::from_secs(secs));
        settings.http2_keepalive_interval = seconds(self.http2_keepalive_secs);
        settings.http2_keepalive_timeout = Duration::from_secs(self.http2_keepalive_timeout_secs);
        settings.tcp_keepalive = seconds(self.tcp_keepalive_secs);
        settings.max_concurrent_streams_per_connection = self.max_streams_per_connection;
        settings.cors_allowed_origins = self.cors_origins;
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
        };
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            settings.tls = Some(GrpcTls {
                certificate_pem: read("TLS certificate", cert)?,
                key_pem: Secret::new(read("TLS key", key)?),
                client_ca_pem: self
                    .tls_client_ca
                    .as_deref()
                    .map(|ca| read("client CA", ca))
                    .transpose()?,
            });
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Args;

    #[test]
    fn recent_bids_set_what_each_auction_keeps_and_zero_is_refused_naming_the_flag() {
        let base = [
            "auction-bid-service",
            "--bootstrap-servers",
            "127.0.0.1:9092",
        ];
        let args = Args::try_parse_from(base.into_iter().chain(["--recent-bids", "3"]))
            .expect("3 is accepted");
        let settings = args.into_settings(Vec::new()).expect("settings");
        assert_eq!(settings.recent_bids_per_auction, 3);
        let default = Args::try_parse_from(base).expect("defaults");
        assert_eq!(
            default
                .into_settings(Vec::new())
                .expect("settings")
                .recent_bids_per_auction,
            10
        );
        let refused = Args::try_parse_from(base.into_iter().chain(["--recent-bids", "0"]))
            .expect_err("0 is refused");
        assert!(refused.to_string().contains("--recent-bids"), "{refused}");
    }
}
