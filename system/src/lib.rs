//! The whole auction system in one process: the embedded default that a new user starts with one
//! command, on a machine with nothing but the Rust toolchain (and the build's system packages).
//!
//! It runs the same components, configured through the same command-line and environment parsers,
//! as the separate production processes; only the endpoints differ:
//! - Kafka is librdkafka's mock cluster, in memory, listening on a loopback port;
//! - the schema registry is the product's own, in memory, with the bid schemas registered;
//! - the bid service, the gateway, the CSV sink and the SQL sink (on SQLite) run as tasks;
//! - the ODBC sink runs when an ODBC connection string is given.
//!
//! The mock cluster keeps nothing when the process ends, so every run starts a new log and writes
//! into a new directory under the data directory, where a previous run's files stay untouched.

pub mod bench;
pub mod ledger;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use auction_schemas::registry::{self, store::Store};
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
    /// The SQL flavour of the ODBC data source (`ansi` or `hive`).
    #[arg(long, env = "SINK_ODBC_DIALECT", default_value = "ansi")]
    pub odbc_dialect: String,
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

/// The embedded system could not start; the message says why.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn new_run_dir(base: &Path) -> Result<PathBuf, StartError> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    for attempt in 0..100 {
        let dir = base.join(format!("run-{stamp}-{attempt}"));
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StartError(format!(
                    "cannot create the data directory {}: {e}",
                    dir.display()
                ))
            })?;
            return Ok(dir);
        }
    }
    Err(StartError(format!(
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

fn free_local_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "127.0.0.1:0".to_owned())
}

impl Embedded {
    /// Starts every component; they run until `shutdown` is cancelled.
    pub async fn start(
        args: EmbeddedArgs,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let run_dir = new_run_dir(&args.data_dir)?;
        let cluster = MockCluster::new(1)
            .map_err(|e| StartError(format!("cannot start the in-memory Kafka: {e}")))?;
        for (topic, partitions) in [("auction", args.partitions), ("auction.dlq", 1)] {
            cluster
                .create_topic(topic, partitions, 1)
                .map_err(|e| StartError(format!("cannot create topic {topic}: {e}")))?;
        }
        let kafka = cluster.bootstrap_servers();

        let store = Arc::new(Store::in_memory());
        registry::preload_bid_schemas(&store, "auction-value")
            .map_err(|e| StartError(format!("cannot register the bid schemas: {}", e.message)))?;
        let (registry_addr, registry_task) =
            registry::spawn(args.registry_listen, store, None, shutdown.clone())
                .await
                .map_err(|e| {
                    StartError(format!(
                        "cannot start the schema registry on {}: {e}",
                        args.registry_listen
                    ))
                })?;
        let registry_url = format!("http://{registry_addr}");
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let outcome = match registry_task.await {
                Ok(served) => served.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            ("schema registry", outcome)
        });

        // The bid service, configured through its own command line.
        let bid_metrics = free_local_addr();
        let bid_args = <auction_bid_service::config::Args as clap::Parser>::try_parse_from([
            "bid-service",
            "--listen",
            &args.grpc_listen.to_string(),
            "--metrics-listen",
            &bid_metrics,
            "--kafka-bootstrap-servers",
            &kafka,
            "--no-create-topic",
            "--schema-registry-url",
            &registry_url,
        ])
        .map_err(|e| StartError(format!("bid service settings: {e}")))?;
        let settings = bid_args
            .into_settings(std::iter::empty())
            .map_err(|e| StartError(format!("bid service settings: {e}")))?;
        let mut bid_service = auction_bid_service::spawn(settings, shutdown.clone())
            .await
            .map_err(|e| StartError(format!("cannot start the bid service: {e}")))?;
        if !bid_service.wait_caught_up(Duration::from_secs(30)).await {
            return Err(StartError(
                "the bid service did not become ready within 30 s".to_owned(),
            ));
        }
        let grpc = bid_service.grpc_addr;
        let mut metrics = vec![(
            "bid",
            format!("http://{}/metrics", bid_service.metrics_addr),
        )];
        tasks.spawn(async move { ("bid service", bid_service.stopped().await) });

        // The gateway, configured through its own command line.
        let gateway_args = <auction_gateway::config::Args as clap::Parser>::try_parse_from([
            "gateway",
            "--listen",
            &args.http_listen.to_string(),
            "--bid-service-url",
            &format!("http://{grpc}"),
        ])
        .map_err(|e| StartError(format!("gateway settings: {e}")))?;
        let gateway = auction_gateway::spawn(gateway_args.into_settings(), shutdown.clone())
            .await
            .map_err(|e| StartError(format!("cannot start the gateway: {e}")))?;
        let web = gateway.addr;
        metrics.push(("gateway", format!("http://{web}/metrics")));
        tasks.spawn(async move { ("gateway", gateway.stopped().await) });

        // The sinks, configured through the `auction-sink` command line.
        let csv = run_dir.join("output.csv");
        let sqlite = run_dir.join("bids.db");
        let mut sinks: Vec<(&'static str, Vec<String>)> = vec![
            (
                "csv",
                vec!["csv".into(), "--path".into(), csv.display().to_string()],
            ),
            (
                "sql",
                vec![
                    "mysql".into(),
                    "--database-url".into(),
                    format!("sqlite://{}?mode=rwc", sqlite.display()),
                ],
            ),
        ];
        if let Some(connection) = &args.odbc_connection_string {
            sinks.push((
                "odbc",
                vec![
                    "odbc".into(),
                    "--connection-string".into(),
                    connection.clone(),
                    "--dialect".into(),
                    args.odbc_dialect.clone(),
                ],
            ));
        }
        for (name, target) in sinks {
            let metrics_addr = free_local_addr();
            let mut command: Vec<String> = vec![
                "auction-sink".into(),
                "--bootstrap-servers".into(),
                kafka.clone(),
                "--schema-registry-url".into(),
                registry_url.clone(),
                "--metrics-listen".into(),
                metrics_addr.clone(),
                "--batch-linger-ms".into(),
                "50".into(),
            ];
            command.extend(target);
            let cli = <auction_sinks::config::Cli as clap::Parser>::try_parse_from(&command)
                .map_err(|e| StartError(format!("{name} sink settings: {e}")))?;
            metrics.push((name, format!("http://{metrics_addr}/metrics")));
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let task_name = match name {
                    "csv" => "CSV sink",
                    "sql" => "SQL sink",
                    _ => "ODBC sink",
                };
                (
                    task_name,
                    auction_sinks::config::run(cli, Vec::new(), shutdown).await,
                )
            });
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
