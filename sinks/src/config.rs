//! The command line and environment of `auction-sink`, turned into [`SinkSettings`] in one
//! place ([`Cli::into_settings`]). Every flag also reads an environment variable (and `.env`,
//! loaded by `main`).
//!
//! Kafka is configured the way the bid service is: every environment variable `KAFKA_<NAME>`
//! becomes the librdkafka property `<name>` with `_` read as `.` (`KAFKA_BOOTSTRAP_SERVERS`,
//! `KAFKA_SECURITY_PROTOCOL=SASL_SSL`, `KAFKA_SASL_MECHANISM=PLAIN`, `KAFKA_SASL_USERNAME`,
//! `KAFKA_SASL_PASSWORD`), and `--kafka-property name=value` adds more.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use auction_process::{KafkaArgs, Secret, StartError};
use auction_schemas::RegistrySettings;
use clap::{Args, Parser, Subcommand};

use crate::destination::csv_file::CsvSettings;
use crate::destination::odbc::{Dialect, OdbcSettings};
use crate::destination::sql::{SqlSettings, TableName};
use crate::kafka::KafkaSettings;
use crate::runtime::RuntimeSettings;
use crate::start::{DestinationSettings, SinkSettings};
use crate::starting::StartFrom;

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
    /// Where the bids land.
    #[command(subcommand)]
    pub destination: DestinationArgs,
}

/// Settings every sink shares.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Kafka: bootstrap servers and any librdkafka property.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The topic of bid events.
    #[arg(long, env = "AUCTION_TOPIC", default_value = "auction", global = true)]
    pub topic: String,
    /// The topic of closed auctions' results, which the mysql and csv sinks export too; default:
    /// the bid topic's name followed by `.results`.
    #[arg(long, env = "AUCTION_RESULTS_TOPIC", global = true)]
    pub results_topic: Option<String>,
    /// Consumer group; default `auction-sink-<kind>`. Instances with the same group share the
    /// partitions.
    #[arg(long, env = "SINK_GROUP_ID", global = true)]
    pub group_id: Option<String>,
    /// Where the consumer group starts on partitions it has never committed: `earliest` (the
    /// beginning), `group:<id>` (where another consumer group, such as the demo's `db_writer`,
    /// has committed: a cut-over without writing the demo's bids again), or
    /// `<partition>:<offset>,...`. Unset: the beginning, unless the target already holds bids the
    /// sink did not write (the demo's table or file), which is refused with a sentence. A
    /// partition the group has committed is never moved.
    #[arg(long, env = "SINK_START_FROM", global = true, value_parser = clap::value_parser!(StartFrom))]
    pub start_from: Option<StartFrom>,
    /// Where records that can never be written go.
    #[arg(
        long,
        env = "SINK_DEAD_LETTER_TOPIC",
        default_value = "auction.dlq",
        global = true
    )]
    pub dead_letter_topic: String,
    /// Do not create the dead-letter topic when it is missing: the sink then refuses to start
    /// without it (for clusters where clients may not create topics).
    #[arg(long, env = "SINK_DEAD_LETTER_NO_CREATE", global = true)]
    pub dead_letter_no_create: bool,
    /// Send records whose schema id the registry does not know to the dead-letter topic instead
    /// of waiting (not ready) until the registry knows it. Only for a registry known to be the
    /// right one: pointed at an empty or wrong registry, this drains the topic into dead letters.
    #[arg(long, env = "SINK_DEAD_LETTER_UNKNOWN_SCHEMA_IDS", global = true)]
    pub dead_letter_unknown_schema_ids: bool,
    /// Not ready when a batch in hand has not been written for this many milliseconds (a hung
    /// target, registry or dead-letter topic); ready again once it is written.
    #[arg(
        long,
        env = "SINK_STUCK_AFTER_MS",
        default_value_t = 60_000,
        global = true
    )]
    pub stuck_after_ms: u64,
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
    #[arg(long, env = "SINK_BATCH_SIZE", default_value_t = 1000, global = true)]
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
    /// Address of /healthz, /readyz and /metrics; default 127.0.0.1:9102 (mysql, sqlite), 9103
    /// (csv), 9104 (odbc). Port 0 picks a free port; the address is printed at start.
    #[arg(long, env = "SINK_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "LOG_FORMAT_JSON", global = true)]
    pub log_json: bool,
}

/// The destination and its settings.
#[derive(Debug, Subcommand)]
pub enum DestinationArgs {
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
        /// The table of closed auctions' results (from the results topic); created at start.
        #[arg(long, env = "SINK_RESULTS_TABLE", default_value = "auction_result")]
        results_table: TableName,
        /// Longest wait, in milliseconds, for any one statement or for a connection; a database
        /// that does not answer in time fails the write (retried, not ready meanwhile).
        #[arg(long, env = "SINK_STATEMENT_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
        statement_timeout_ms: u64,
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
        /// Longest wait, in milliseconds, for any one statement or for logging in; a data source
        /// that does not answer in time fails the write (retried, not ready meanwhile).
        #[arg(long, env = "SINK_STATEMENT_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..))]
        statement_timeout_ms: u64,
    },
}

impl Cli {
    /// The settings this command line describes; `env` supplies the `KAFKA_*` variables.
    pub fn into_settings(
        self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<SinkSettings, StartError> {
        let destination = match self.destination {
            DestinationArgs::Mysql {
                database_url,
                table,
                max_connections,
                results_table,
                statement_timeout_ms,
            } => {
                let mut sql = SqlSettings::new(Secret::new(database_url));
                sql.table = table;
                sql.max_connections = max_connections;
                sql.results_table = Some(results_table);
                sql.statement_timeout = Duration::from_millis(statement_timeout_ms);
                DestinationSettings::Sql(sql)
            }
            DestinationArgs::Csv { path, rotate_daily } => {
                DestinationSettings::Csv(CsvSettings { path, rotate_daily })
            }
            DestinationArgs::Odbc {
                connection_string,
                table,
                dialect,
                statement_timeout_ms,
            } => DestinationSettings::Odbc(OdbcSettings {
                connection_string: Secret::new(connection_string),
                table,
                dialect,
                statement_timeout: Duration::from_millis(statement_timeout_ms),
            }),
        };
        let kind = destination.kind()?;
        let common = self.common;
        let mut kafka = KafkaSettings::new(common.kafka.into_properties(env)?, kind);
        kafka.topic = common.topic;
        kafka.dead_letter_topic = common.dead_letter_topic;
        kafka.allow_unsafe_topic = common.allow_unsafe_topic;
        kafka.create_dead_letter_topic = !common.dead_letter_no_create;
        if let Some(group) = common.group_id {
            kafka.group_id = group;
        }
        let mut registry = RegistrySettings::new(&common.schema_registry_url);
        registry.username = common.schema_registry_username;
        registry.password = common.schema_registry_password.map(Secret::new);
        if common.batch_size == 0 {
            return Err(StartError::new("the batch size must be at least 1"));
        }
        let mut runtime = RuntimeSettings::new(kafka, registry);
        if let Some(results_topic) = common.results_topic {
            runtime.results_topic = Some(results_topic);
        }
        runtime.batch_size = common.batch_size;
        runtime.batch_linger = Duration::from_millis(common.batch_linger_ms);
        runtime.retry_initial = Duration::from_millis(common.retry_initial_ms);
        runtime.retry_max = Duration::from_millis(common.retry_max_ms);
        runtime.close_timeout = Duration::from_millis(common.close_timeout_ms);
        if common.stuck_after_ms == 0 {
            return Err(StartError::new(
                "SINK_STUCK_AFTER_MS must be at least 1 (milliseconds a batch may wait before the sink reports itself stuck)",
            ));
        }
        runtime.stuck_after = Duration::from_millis(common.stuck_after_ms);
        runtime.dead_letter_unknown_schema_ids = common.dead_letter_unknown_schema_ids;
        runtime.start_from = common.start_from.unwrap_or_default();
        let default_port = match kind {
            "csv" => 9103,
            "odbc" => 9104,
            _ => 9102,
        };
        Ok(SinkSettings {
            runtime,
            destination,
            metrics_listen: common
                .metrics_listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_kind_comes_from_the_url_scheme() {
        let kind = |url: &str| {
            Cli::try_parse_from([
                "auction-sink",
                "--bootstrap-servers",
                "k:9092",
                "mysql",
                "--database-url",
                url,
            ])
            .unwrap()
            .into_settings(Vec::new())
            .map(|settings| {
                (
                    settings.destination.kind().unwrap(),
                    settings.runtime.kafka.group_id,
                )
            })
        };
        assert_eq!(
            kind("mysql://root@h/test").unwrap(),
            ("mysql", "auction-sink-mysql".to_owned())
        );
        assert_eq!(
            kind("sqlite://bids.db").unwrap(),
            ("sqlite", "auction-sink-sqlite".to_owned())
        );
        assert!(
            kind("postgres://h/test")
                .unwrap_err()
                .to_string()
                .contains("DATABASE_URL")
        );
    }

    #[test]
    fn command_line_builds_sink_settings() {
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
        let settings = cli.into_settings(Vec::new()).unwrap();
        assert_eq!(settings.destination.kind().unwrap(), "csv");
        assert_eq!(settings.metrics_listen.port(), 9103);
        assert_eq!(settings.runtime.kafka.group_id, "auction-sink-csv");
        assert_eq!(settings.runtime.kafka.dead_letter_topic, "auction.dlq");
        assert_eq!(settings.runtime.kafka.bootstrap_servers(), "k:9092");
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
