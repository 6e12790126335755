//! The whole auction system in one process: the embedded default that a new user starts with one
//! command, on a machine with nothing but the Rust toolchain (and the build's system packages).
//!
//! It runs the same components as the separate production processes, started through the same
//! typed start functions (settings built here, never parsed from a command line or the user's
//! environment); only the endpoints differ:
//! - Kafka is librdkafka's mock cluster, in memory, listening on a loopback port;
//! - the schema registry is the product's own, in memory, with the bid schemas registered;
//! - the bid service, the gateway, the CSV sink and the SQL sink (on SQLite) run as tasks;
//! - the ODBC sink runs when an ODBC connection string is given.
//!
//! The mock cluster keeps nothing when the process ends, so every run starts a new log and writes
//! into a new directory under the data directory, where a previous run's files stay untouched.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auction_process::{KafkaProperties, Secret, StartError};
use auction_schema_registry::{self as registry, ServerSettings};
use auction_schemas::RegistrySettings;
use auction_sinks::destination::csv_file::CsvSettings;
use auction_sinks::destination::odbc::{Dialect, OdbcSettings};
use auction_sinks::destination::sql::SqlSettings;
use auction_sinks::{DestinationSettings, KafkaSettings, RuntimeSettings, SinkSettings};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where the embedded system listens and writes.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddedArgs {
    /// Each run writes its CSV file and SQLite database into a new directory under this one.
    #[arg(long, env = "AUCTION_DATA_DIR", default_value = "auction-data")]
    pub data_dir: PathBuf,
    /// The bid service's gRPC, gRPC-Web, health and reflection address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,
    /// The web gateway's address (the auction pages).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http_listen: SocketAddr,
    /// The schema registry's address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub registry_listen: SocketAddr,
    /// Partitions of the bid topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Also run the ODBC sink into this data source (for example Hive, or PostgreSQL through
    /// psqlODBC).
    #[arg(long, env = "ODBC_CONNECTION_STRING", hide_env_values = true)]
    pub odbc_connection_string: Option<String>,
    /// The SQL flavour of the ODBC data source.
    #[arg(long, env = "SINK_ODBC_DIALECT", value_enum, default_value = "ansi")]
    pub odbc_dialect: Dialect,
}

/// What the embedded system serves and where it writes, printed at start.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The web pages.
    pub web: SocketAddr,
    /// The bid service (gRPC and gRPC-Web).
    pub grpc: SocketAddr,
    /// The schema registry.
    pub registry: String,
    /// The in-memory Kafka's bootstrap servers.
    pub kafka: String,
    /// Metrics of each component.
    pub metrics: Vec<(&'static str, String)>,
    /// The CSV file.
    pub csv: PathBuf,
    /// The SQLite database.
    pub sqlite: PathBuf,
    /// This run's data directory.
    pub run_dir: PathBuf,
}

impl std::fmt::Display for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "The auction system is running (Ctrl-C stops it).")?;
        writeln!(f, "  web page:         http://{}/", self.web)?;
        writeln!(
            f,
            "  gRPC + gRPC-Web:  http://{}  (try: grpcurl -plaintext {} list)",
            self.grpc, self.grpc
        )?;
        writeln!(f, "  schema registry:  {}", self.registry)?;
        writeln!(f, "  Kafka (in memory): {}", self.kafka)?;
        for (name, url) in &self.metrics {
            writeln!(f, "  metrics {name:<9} {url}")?;
        }
        writeln!(f, "  bids land in:     {}", self.csv.display())?;
        write!(
            f,
            "                    {} (SQLite, table bid)",
            self.sqlite.display()
        )
    }
}

fn new_run_dir(base: &Path) -> Result<PathBuf, StartError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    for attempt in 0..100 {
        let dir = base.join(format!("run-{stamp}-{attempt}"));
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StartError::new(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
            return Ok(dir);
        }
    }
    Err(StartError::new(format!(
        "cannot find a new run directory under {}",
        base.display()
    )))
}

/// The running embedded system.
pub struct Embedded {
    /// What it serves.
    pub endpoints: Endpoints,
    cluster: MockCluster<'static, DefaultProducerContext>,
    tasks: JoinSet<(&'static str, Result<(), String>)>,
}

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedded")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Embedded {
    /// Starts every component; they run until `shutdown` is cancelled.
    pub async fn start(
        args: EmbeddedArgs,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let run_dir = new_run_dir(&args.data_dir)?;
        let cluster = MockCluster::new(1)
            .map_err(|e| StartError::new(format!("cannot start the in-memory Kafka: {e}")))?;
        for (topic, partitions) in [
            ("auction", args.partitions),
            ("auction.state", args.partitions),
            ("auction.results", args.partitions),
            ("auction.dlq", 1),
        ] {
            cluster
                .create_topic(topic, partitions, 1)
                .map_err(|e| StartError::new(format!("cannot create topic {topic}: {e}")))?;
        }
        let kafka = cluster.bootstrap_servers();

        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut registry_settings = ServerSettings::in_memory(args.registry_listen);
        registry_settings.preload_subject = Some("auction-value".to_owned());
        let registry = registry::start(registry_settings, shutdown.clone())
            .await
            .map_err(|e| e.context("the schema registry"))?;
        let registry_url = registry.url();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move { ("schema registry", registry.stopped().await) });

        let mut bid_settings = auction_bid_service::Settings::new(&kafka, &registry_url);
        bid_settings.grpc_listen = args.grpc_listen;
        bid_settings.metrics_listen = any_port;
        bid_settings.create_topic = false;
        let mut bid_service = auction_bid_service::spawn(bid_settings, shutdown.clone())
            .await
            .map_err(|e| e.context("the bid service"))?;
        if !bid_service.wait_caught_up(Duration::from_secs(30)).await {
            return Err(StartError::new(
                "the bid service did not become ready within 30 s",
            ));
        }
        let grpc = bid_service.grpc_addr;
        let mut metrics = vec![(
            "bid",
            format!("http://{}/metrics", bid_service.metrics_addr),
        )];
        tasks.spawn(async move { ("bid service", bid_service.stopped().await) });

        let mut gateway_settings = auction_gateway::Settings::new(format!("http://{grpc}"));
        gateway_settings.listen = args.http_listen;
        gateway_settings.metrics_listen = any_port;
        let gateway = auction_gateway::spawn(gateway_settings, shutdown.clone())
            .await
            .map_err(|e| e.context("the gateway"))?;
        let web = gateway.addr;
        metrics.push((
            "gateway",
            format!("http://{}/metrics", gateway.metrics_addr),
        ));
        tasks.spawn(async move { ("gateway", gateway.stopped().await) });

        let csv = run_dir.join("output.csv");
        let sqlite = run_dir.join("bids.db");
        let mut destinations = vec![
            (
                "CSV sink",
                DestinationSettings::Csv(CsvSettings {
                    path: csv.clone(),
                    rotate_daily: false,
                }),
            ),
            (
                "SQL sink",
                DestinationSettings::Sql(SqlSettings::new(Secret::new(format!(
                    "sqlite://{}?mode=rwc",
                    sqlite.display()
                )))),
            ),
        ];
        if let Some(connection) = &args.odbc_connection_string {
            destinations.push((
                "ODBC sink",
                DestinationSettings::Odbc(OdbcSettings::new(
                    Secret::new(connection.clone()),
                    args.odbc_dialect,
                )),
            ));
        }
        for (name, destination) in destinations {
            let kind = destination.kind()?;
            let kafka = KafkaSettings::new(KafkaProperties::bootstrap(&kafka), kind);
            let mut runtime = RuntimeSettings::new(kafka, RegistrySettings::new(&registry_url));
            runtime.batch_linger = Duration::from_millis(50);
            let sink = auction_sinks::spawn(
                SinkSettings {
                    runtime,
                    destination,
                    metrics_listen: any_port,
                },
                shutdown.clone(),
            )
            .await
            .map_err(|e| e.context(name))?;
            metrics.push((kind, format!("http://{}/metrics", sink.metrics_addr)));
            tasks.spawn(async move { (name, sink.stopped().await.map(|_| ())) });
        }

        Ok(Self {
            endpoints: Endpoints {
                web,
                grpc,
                registry: registry_url,
                kafka,
                metrics,
                csv,
                sqlite,
                run_dir,
            },
            cluster,
            tasks,
        })
    }

    /// Runs until `shutdown` is cancelled or a component stops by itself, then stops everything,
    /// waiting at most `timeout`. Returns what went wrong, by component.
    pub async fn run_until_stopped(
        mut self,
        shutdown: CancellationToken,
        timeout: Duration,
    ) -> Vec<String> {
        type Joined = Result<(&'static str, Result<(), String>), tokio::task::JoinError>;
        let mut failures = Vec::new();
        let mut record = |joined: Joined, expected: bool| match joined {
            Ok((name, Ok(()))) if expected => tracing::info!(component = name, "stopped"),
            Ok((name, Ok(()))) => failures.push(format!("{name} stopped unexpectedly")),
            Ok((name, Err(e))) => failures.push(format!("{name}: {e}")),
            Err(e) => failures.push(format!("a component failed: {e}")),
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {}
            // A component that stopped because shutdown was just requested stopped as expected.
            Some(joined) = self.tasks.join_next() => record(joined, shutdown.is_cancelled()),
        }
        shutdown.cancel();
        let deadline = tokio::time::Instant::now() + timeout;
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await
        {
            record(joined, true);
        }
        if !self.tasks.is_empty() {
            failures.push(format!(
                "{} components did not stop within {timeout:?}",
                self.tasks.len()
            ));
            self.tasks.abort_all();
        }
        drop(self.cluster);
        failures
    }
}
