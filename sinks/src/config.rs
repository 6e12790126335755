//! The command line and environment of `auction-sink`, and the start-up that turns them into a
//! running sink. Every flag also reads an environment variable (and `.env`, loaded by `main`).
//!
//! Kafka is configured the way the bid service is: every environment variable `KAFKA_<NAME>`
//! becomes the librdkafka property `<name>` with `_` read as `.` (`KAFKA_BOOTSTRAP_SERVERS`,
//! `KAFKA_SECURITY_PROTOCOL=SASL_SSL`, `KAFKA_SASL_MECHANISM=PLAIN`, `KAFKA_SASL_USERNAME`,
//! `KAFKA_SASL_PASSWORD`), and `--kafka-property name=value` adds more.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use auction_schemas::service::{self, Readiness};
use auction_schemas::{RegistrySettings, Secret};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::kafka::KafkaSettings;
use crate::runtime::{self, RuntimeSettings};
use crate::target::csv_file::{CsvSettings, CsvTarget};
use crate::target::odbc::{Dialect, OdbcSettings, OdbcTarget};
use crate::target::sql::{SqlSettings, SqlTarget, TableName};

/// Lands bid events from Kafka in MySQL/SQLite, a CSV file or an ODBC data source, each bid
/// exactly once.
///
/// Instances of one kind with the same group id share the topic's partitions. Records that can
/// never be written go to the dead-letter topic with headers saying why and where from.
/// /healthz, /readyz and /metrics are served on the metrics address.
#[derive(Debug, Parser)]
#[command(name = "auction-sink", version)]
pub struct Cli {
    /// Settings every sink shares.
    #[command(flatten)]
    pub common: CommonArgs,
    /// The target.
    #[command(subcommand)]
    pub target: TargetArgs,
}

/// Settings every sink shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Kafka bootstrap servers (librdkafka `bootstrap.servers`).
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS", global = true)]
    pub bootstrap_servers: Option<String>,
    /// An extra librdkafka property, `name=value`; repeatable. Overrides `KAFKA_*` variables.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE", value_parser = parse_property, global = true)]
    pub kafka_properties: Vec<(String, String)>,
    /// The topic of bid events.
    #[arg(long, env = "AUCTION_TOPIC", default_value = "auction", global = true)]
    pub topic: String,
    /// Consumer group; default `auction-sink-<kind>`. Instances with the same group share the
    /// partitions.
    #[arg(long, env = "SINK_GROUP_ID", global = true)]
    pub group_id: Option<String>,
    /// Where records that can never be written go.
    #[arg(
        long,
        env = "SINK_DEAD_LETTER_TOPIC",
        default_value = "auction.dlq",
        global = true
    )]
    pub dead_letter_topic: String,
    /// Start even if the bid topic's settings break the guarantees (a replication factor below 3
    /// on three or more brokers, min.insync.replicas below 2, unclean leader election,
    /// compaction).
    #[arg(long, env = "AUCTION_TOPIC_ALLOW_UNSAFE", global = true)]
    pub allow_unsafe_topic: bool,
    /// Schema registry URL.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub schema_registry_url: String,
    /// Schema registry basic-auth user (Confluent Cloud: the API key).
    #[arg(long, env = "SCHEMA_REGISTRY_USERNAME", global = true)]
    pub schema_registry_username: Option<String>,
    /// Schema registry basic-auth password (prefer the environment variable to the flag).
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub schema_registry_password: Option<String>,
    /// Write a batch when it holds this many records...
    #[arg(long, env = "SINK_BATCH_SIZE", default_value_t = 500, global = true)]
    pub batch_size: usize,
    /// ...or when its first record has waited this many milliseconds.
    #[arg(
        long,
        env = "SINK_BATCH_LINGER_MS",
        default_value_t = 200,
        global = true
    )]
    pub batch_linger_ms: u64,
    /// First delay after a failed write, in milliseconds (doubles each time, with jitter).
    #[arg(
        long,
        env = "SINK_RETRY_INITIAL_MS",
        default_value_t = 100,
        global = true
    )]
    pub retry_initial_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    #[arg(
        long,
        env = "SINK_RETRY_MAX_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub retry_max_ms: u64,
    /// Longest wait for the final commit and the consumer's close at shutdown, in milliseconds.
    #[arg(
        long,
        env = "SINK_CLOSE_TIMEOUT_MS",
        default_value_t = 10_000,
        global = true
    )]
    pub close_timeout_ms: u64,
    /// Address of /healthz, /readyz and /metrics; default 127.0.0.1:9102 (mysql), 9103 (csv),
    /// 9104 (odbc). Port 0 picks a free port; the address is printed at start.
    #[arg(long, env = "SINK_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "LOG_FORMAT_JSON", global = true)]
    pub log_json: bool,
}

/// The target and its settings.
#[derive(Debug, Subcommand)]
pub enum TargetArgs {
    /// MySQL or MariaDB (the demo's `test.bid`), or SQLite, through SeaORM.
    #[command(visible_alias = "sql")]
    Mysql {
        /// `mysql://user:password@host:3306/test` or `sqlite://bids.db?mode=rwc`.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: String,
        /// The table; created, or upgraded in place from the demo's, at start.
        #[arg(long, env = "SINK_TABLE", default_value = "bid")]
        table: TableName,
        /// Connections in the pool.
        #[arg(long, env = "SINK_DB_MAX_CONNECTIONS", default_value_t = 4)]
        max_connections: u32,
    },
    /// A CSV file (the demo's `output.csv`), with an offsets checkpoint beside it.
    Csv {
        /// The file.
        #[arg(long, env = "SINK_CSV_PATH", default_value = "output.csv")]
        path: PathBuf,
        /// Start a new file every UTC day (`output-YYYY-MM-DD.csv`).
        #[arg(long, env = "SINK_CSV_ROTATE_DAILY")]
        rotate_daily: bool,
    },
    /// Any ODBC data source by connection string (Hive in production).
    Odbc {
        /// The ODBC connection string (may hold a password: prefer the environment variable).
        #[arg(long, env = "ODBC_CONNECTION_STRING", hide_env_values = true)]
        connection_string: String,
        /// The table; created if missing.
        #[arg(long, env = "SINK_TABLE", default_value = "bid")]
        table: TableName,
        /// The SQL flavour of the data source.
        #[arg(long, env = "SINK_ODBC_DIALECT", value_enum, default_value = "ansi")]
        dialect: Dialect,
    },
}

fn parse_property(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, got {raw:?}")),
    }
}

pub use auction_schemas::service::{is_secret_property, kafka_properties_from_env};

impl Cli {
    /// The sink kind the command names.
    pub fn kind(&self) -> &'static str {
        match self.target {
            TargetArgs::Mysql { .. } => "mysql",
            TargetArgs::Csv { .. } => "csv",
            TargetArgs::Odbc { .. } => "odbc",
        }
    }

    /// The runtime settings; `env_properties` are the `KAFKA_*` variables already read.
    pub fn runtime_settings(
        &self,
        env_properties: Vec<(String, String)>,
    ) -> Result<RuntimeSettings, String> {
        let common = &self.common;
        let kind = self.kind();
        let mut properties = env_properties;
        properties.retain(|(name, _)| name != "bootstrap.servers");
        properties.extend(common.kafka_properties.iter().cloned());
        let bootstrap = common
            .bootstrap_servers
            .clone()
            .or_else(|| {
                properties
                    .iter()
                    .rev()
                    .find(|(n, _)| n == "bootstrap.servers")
                    .map(|(_, v)| v.clone())
            })
            .ok_or("the Kafka bootstrap servers are not set (KAFKA_BOOTSTRAP_SERVERS or --bootstrap-servers)")?;
        properties.retain(|(name, _)| name != "bootstrap.servers");
        let mut kafka = KafkaSettings::new(bootstrap, kind);
        kafka.topic = common.topic.clone();
        kafka.dead_letter_topic = common.dead_letter_topic.clone();
        kafka.allow_unsafe_topic = common.allow_unsafe_topic;
        if let Some(group) = &common.group_id {
            kafka.group_id = group.clone();
        }
        kafka.properties = properties;
        let mut registry = RegistrySettings::new(&common.schema_registry_url);
        registry.username = common.schema_registry_username.clone();
        registry.password = common.schema_registry_password.clone().map(Secret::new);
        if common.batch_size == 0 {
            return Err("the batch size must be at least 1".to_owned());
        }
        let mut settings = RuntimeSettings::new(kafka, registry);
        settings.batch_size = common.batch_size;
        settings.batch_linger = Duration::from_millis(common.batch_linger_ms);
        settings.retry_initial = Duration::from_millis(common.retry_initial_ms);
        settings.retry_max = Duration::from_millis(common.retry_max_ms);
        settings.close_timeout = Duration::from_millis(common.close_timeout_ms);
        Ok(settings)
    }

    fn metrics_listen(&self) -> SocketAddr {
        let port = match self.target {
            TargetArgs::Mysql { .. } => 9102,
            TargetArgs::Csv { .. } => 9103,
            TargetArgs::Odbc { .. } => 9104,
        };
        self.common
            .metrics_listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

/// Starts the sink the command line describes and runs it until `shutdown`.
pub async fn run(
    cli: Cli,
    env_properties: Vec<(String, String)>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let settings = cli.runtime_settings(env_properties)?;
    let kind = cli.kind();
    let readiness = Readiness::default();
    let metrics_addr =
        service::spawn_ops_server(cli.metrics_listen(), readiness.clone(), shutdown.clone())
            .await
            .map_err(|e| format!("cannot serve metrics on {}: {e}", cli.metrics_listen()))?;
    service::metrics_handle();
    let redacted: Vec<String> = settings
        .kafka
        .properties
        .iter()
        .map(|(name, value)| {
            if is_secret_property(name) {
                format!("{name}=[redacted]")
            } else {
                format!("{name}={value}")
            }
        })
        .collect();
    tracing::info!(sink = kind, metrics = %format!("http://{metrics_addr}/metrics"), kafka = %settings.kafka.bootstrap_servers, properties = ?redacted, "starting");
    println!("auction-sink {kind}: metrics, /healthz and /readyz on http://{metrics_addr}");

    let outcome = match cli.target {
        TargetArgs::Mysql {
            database_url,
            table,
            max_connections,
        } => {
            let mut sql = SqlSettings::new(Secret::new(database_url));
            sql.table = table;
            sql.max_connections = max_connections;
            let target = SqlTarget::connect(&sql).await.map_err(|e| e.to_string())?;
            runtime::run(settings, target, readiness, shutdown).await
        }
        TargetArgs::Csv { path, rotate_daily } => {
            let target = CsvTarget::new(CsvSettings { path, rotate_daily });
            runtime::run(settings, target, readiness, shutdown).await
        }
        TargetArgs::Odbc {
            connection_string,
            table,
            dialect,
        } => {
            let target = OdbcTarget::new(OdbcSettings {
                connection_string: Secret::new(connection_string),
                table,
                dialect,
            })
            .map_err(|e| e.to_string())?;
            runtime::run(settings, target, readiness, shutdown).await
        }
    };
    outcome.map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_variables_become_librdkafka_properties() {
        let vars = [
            ("KAFKA_SASL_USERNAME", "key"),
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_", "ignored"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert_eq!(
            kafka_properties_from_env(vars),
            [
                ("sasl.username".to_owned(), "key".to_owned()),
                ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
            ]
        );
        assert!(is_secret_property("sasl.password"));
        assert!(!is_secret_property("ssl.key.location"));
        assert!(!is_secret_property("security.protocol"));
    }

    #[test]
    fn command_line_builds_runtime_settings() {
        let cli = Cli::try_parse_from([
            "auction-sink",
            "--bootstrap-servers",
            "k:9092",
            "--kafka-property",
            "sasl.password=hunter2",
            "csv",
            "--path",
            "x.csv",
        ])
        .unwrap();
        assert_eq!(cli.kind(), "csv");
        let settings = cli.runtime_settings(Vec::new()).unwrap();
        assert_eq!(settings.kafka.group_id, "auction-sink-csv");
        assert_eq!(settings.kafka.dead_letter_topic, "auction.dlq");
        assert_eq!(settings.kafka.bootstrap_servers, "k:9092");
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(
            Cli::try_parse_from([
                "auction-sink",
                "mysql",
                "--database-url",
                "x",
                "--table",
                "a;b"
            ])
            .is_err()
        );
    }
}
