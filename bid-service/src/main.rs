//! `bid-service`: takes bids over gRPC and gRPC-Web and writes them to Kafka.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use auction_bid_service::{KafkaProperties, Settings};
use auction_schemas::{RegistrySettings, Secret, service};
use clap::Parser;

/// Takes bids over gRPC (and gRPC-Web, with health and reflection on the same port), writes each
/// accepted bid to Kafka with the idempotent producer, and answers from the state the log implies.
///
/// Kafka is configured by librdkafka properties: every environment variable `KAFKA_<NAME>` becomes
/// the property `<name>` with `_` read as `.`, e.g. `KAFKA_BOOTSTRAP_SERVERS`,
/// `KAFKA_SECURITY_PROTOCOL=SASL_SSL`, `KAFKA_SASL_MECHANISM=PLAIN`, `KAFKA_SASL_USERNAME`,
/// `KAFKA_SASL_PASSWORD`. `--kafka-property name=value` adds more. A `.env` file in the working
/// directory is read first.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// gRPC, gRPC-Web, health and reflection address.
    #[arg(long, env = "BID_SERVICE_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Prometheus /metrics, /healthz and /readyz address.
    #[arg(
        long,
        env = "BID_SERVICE_METRICS_LISTEN",
        default_value = "127.0.0.1:9101"
    )]
    metrics_listen: SocketAddr,
    /// Kafka bootstrap servers (librdkafka `bootstrap.servers`).
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    kafka_bootstrap_servers: String,
    /// An extra librdkafka property, `name=value`; repeatable.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE")]
    kafka_properties: Vec<String>,
    /// The bid topic.
    #[arg(long, env = "AUCTION_TOPIC", default_value = "auction")]
    topic: String,
    /// Do not create the topic at start (it must exist).
    #[arg(long, env = "AUCTION_TOPIC_NO_CREATE")]
    no_create_topic: bool,
    /// Partitions of the topic when the service creates it.
    #[arg(long, env = "AUCTION_TOPIC_PARTITIONS", default_value_t = 6)]
    topic_partitions: i32,
    /// Replication factor of the topic when the service creates it (3 on Confluent Cloud).
    #[arg(long, env = "AUCTION_TOPIC_REPLICATION", default_value_t = 1)]
    topic_replication: i32,
    /// Schema registry URL.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    schema_registry_url: String,
    /// Schema registry basic-auth user (Confluent Cloud: the API key).
    #[arg(long, env = "SCHEMA_REGISTRY_USERNAME")]
    schema_registry_username: Option<String>,
    /// Schema registry basic-auth password (prefer the environment variable).
    #[arg(long, env = "SCHEMA_REGISTRY_PASSWORD", hide_env_values = true)]
    schema_registry_password: Option<String>,
    /// How much a bid must add to the current highest.
    #[arg(long, env = "AUCTION_MIN_INCREMENT", default_value_t = 1)]
    min_increment: i32,
    /// The lowest first bid of an auction.
    #[arg(long, env = "AUCTION_STARTING_PRICE", default_value_t = 1)]
    starting_price: i32,
    /// How long Kafka may take to acknowledge a bid before the call fails with UNAVAILABLE.
    #[arg(long, env = "BID_SERVICE_DELIVERY_TIMEOUT_MS", default_value_t = 5000)]
    delivery_timeout_ms: u64,
    /// Most PlaceBid calls in progress at once; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "BID_SERVICE_MAX_IN_FLIGHT", default_value_t = 10_000)]
    max_in_flight: usize,
    /// Browser origins allowed to call over gRPC-Web (comma-separated); any origin when unset.
    #[arg(long, env = "BID_SERVICE_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,
    /// Serve gRPC over TLS with this certificate chain (PEM file).
    #[arg(long, env = "BID_SERVICE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of the TLS certificate (PEM file).
    #[arg(long, env = "BID_SERVICE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (PEM file); needs --tls-cert.
    #[arg(long, env = "BID_SERVICE_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// Log as JSON lines.
    #[arg(long, env = "LOG_FORMAT_JSON")]
    log_json: bool,
}

impl Args {
    fn settings(self) -> Result<Settings, String> {
        let mut kafka = KafkaProperties::from_env_vars(std::env::vars());
        kafka.set("bootstrap.servers", self.kafka_bootstrap_servers);
        for property in &self.kafka_properties {
            let (name, value) = property
                .split_once('=')
                .ok_or_else(|| format!("--kafka-property {property:?} must be NAME=VALUE"))?;
            kafka.set(name.trim(), value.trim());
        }
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
        settings.topic = self.topic;
        settings.create_topic = !self.no_create_topic;
        settings.topic_partitions = self.topic_partitions;
        settings.topic_replication = self.topic_replication;
        settings.registry = registry;
        settings.min_increment = self.min_increment;
        settings.starting_price = self.starting_price;
        settings.delivery_timeout = Duration::from_millis(self.delivery_timeout_ms);
        settings.max_bids_in_flight = self.max_in_flight;
        settings.cors_allowed_origins = self.cors_origins;
        let read = |what: &str, path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
        };
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            settings.tls = Some(auction_bid_service::GrpcTls {
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

#[tokio::main]
async fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let args = Args::parse();
    service::init_logging(args.log_json);
    let settings = match args.settings() {
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
