//! 5b: the peer a user would pick instead of the MySQL sink — Apache Kafka Connect's standalone
//! worker with the Debezium JDBC sink connector — writing the same bids into MariaDB with upserts
//! on `bid_id`, beside the MySQL sink's rate from 5.
//!
//! The connector reads `JsonConverter` records with a schema (`schemas.enable=true`), not the
//! sink's Avro, so a second topic is pre-filled with the same bids (same keys, same partitions,
//! same producer) in that form: `{"schema": …, "payload": {bid_id, auction_id, name, price,
//! bid_ts}}`, `bid_ts` as `io.debezium.time.MicroTimestamp`. The table is created as the MySQL
//! sink creates its own (same columns and indexes; the peer leaves the Kafka coordinates NULL).
//! Its rate is counted like the sink's: from the first row in the table to all of them
//! (`SELECT COUNT(*)` every 50 ms), so the JVM's start and the plugin scan are left out.
//!
//! Kafka Connect's jars and the connector's plugin come from `.ci/kafka/assemble-connect`
//! (`$AUCTION_CONNECT_LIBS` and `$AUCTION_CONNECT_PLUGINS`, else
//! `~/.cache/auction/connect/current/{libs,plugins}`); it runs on the machine's Java with the
//! heap bounded as the test kit's Kafka node's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use auction_testkit::Kafka;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use super::kafka_baseline::Prefill;
use super::limits::{mysql_create_bid_table, mysql_drop};
use super::peer_process::{PeerProcess, PeerRun, fill_peer_topic, parse_mysql_url};
use super::{Bench, Outcome};

/// The topic of the same bids as `JsonConverter` records with their schema.
const CONNECT_TOPIC: &str = "bench-prefill-connect";

/// The connector's `batch.size` and the worker consumer's `max.poll.records`: Debezium's
/// documentation says a batch is capped by `max.poll.records`, so both are raised together
/// (from 500 each). The MySQL sink's batches are 1,000 rows, so the peer's are the larger.
const BATCH_SIZE: u64 = 5000;

/// Kafka Connect's jars and the Debezium JDBC sink's plugin folder.
#[derive(Debug)]
struct ConnectInstall {
    libs: PathBuf,
    plugins: PathBuf,
}

impl ConnectInstall {
    /// What `.ci/kafka/assemble-connect` made, or `$AUCTION_CONNECT_LIBS` and
    /// `$AUCTION_CONNECT_PLUGINS`.
    fn find() -> Outcome<Self> {
        let current = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".cache/auction/connect/current");
        let dir = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| current.join(default))
        };
        let install = Self {
            libs: dir("AUCTION_CONNECT_LIBS", "libs"),
            plugins: dir("AUCTION_CONNECT_PLUGINS", "plugins"),
        };
        if install.runtime_version().is_none() || install.connector_version().is_none() {
            return Err(format!(
                "Kafka Connect and the Debezium JDBC sink are not assembled in {} and {} (set AUCTION_CONNECT_LIBS and AUCTION_CONNECT_PLUGINS, or run `.ci/kafka/assemble-connect`, which `.ci/test` runs)",
                install.libs.display(),
                install.plugins.display()
            ));
        }
        Ok(install)
    }

    /// connect-runtime's version, from its jar's name.
    fn runtime_version(&self) -> Option<String> {
        jar_version(&self.libs, "connect-runtime-")
    }

    /// The Debezium JDBC sink's version, from its jar's name.
    fn connector_version(&self) -> Option<String> {
        jar_version(
            &self.plugins.join("debezium-connector-jdbc"),
            "debezium-connector-jdbc-",
        )
    }
}

/// The version in the name of the jar `PREFIX<version>.jar` in `dir`.
fn jar_version(dir: &Path, prefix: &str) -> Option<String> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let name = entry.file_name().into_string().ok()?;
        let version = name.strip_prefix(prefix)?.strip_suffix(".jar")?;
        version
            .starts_with(|c: char| c.is_ascii_digit())
            .then(|| version.to_owned())
    })
}

/// 5b: fills the JSON topic with the pre-filled bids, runs Kafka Connect with the Debezium JDBC
/// sink over it into a fresh table until every bid is there, and compares its rate with the
/// MySQL sink's (`mysql_sink_rows_per_s`, from 5).
pub(super) async fn measure(
    bench: &Bench,
    kafka: &Kafka,
    db: &DatabaseConnection,
    prefill: &Prefill,
    mysql_sink_rows_per_s: f64,
) -> Outcome<Value> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    let install = ConnectInstall::find()?;
    let runtime = install.runtime_version().unwrap_or_default();
    let connector = install.connector_version().unwrap_or_default();
    progress.say(format!(
        "5b. peer of the MySQL sink: Kafka Connect {runtime} + Debezium JDBC sink {connector}; the same {} bids as JsonConverter records with schemas in {CONNECT_TOPIC}",
        sizes.bids
    ));
    kafka
        .try_create_topic(CONNECT_TOPIC, sizes.partitions)
        .await?;
    let record_bytes = fill_peer_topic(
        bench,
        CONNECT_TOPIC,
        json_records(prefill)?,
        "bare producer → the JSON topic",
    )
    .await?;
    let table = bench.table_name("connect_bid");
    mysql_create_bid_table(&bench.args.database_url, &table).await?;
    let work_dir = std::env::temp_dir().join(format!("auction-bench-connect-{}", bench.stamp));
    let run = run_connect(bench, db, &install, &work_dir, &table).await;
    mysql_drop(db, &table).await;
    let _ = std::fs::remove_dir_all(&work_dir);
    let run = run?;
    let (connect_rate, ratio) =
        run.against_mysql_sink(bench, "Kafka Connect JDBC sink", mysql_sink_rows_per_s);
    Ok(json!({
        "rows": sizes.bids,
        "topic": CONNECT_TOPIC,
        "record_format": "JsonConverter, schemas.enable=true (schema + payload)",
        "record_bytes": record_bytes,
        "connect_runtime": runtime,
        "connector": format!("io.debezium:debezium-connector-jdbc:{connector}"),
        "insert_mode": "upsert on bid_id (primary.key.mode=record_value)",
        "batch_size": BATCH_SIZE,
        "max_poll_records": BATCH_SIZE,
        "rows_per_s": connect_rate,
        "rows_per_s_including_startup": run.rows_per_s_including_startup(),
        "startup_seconds": run.startup_seconds,
        "seconds": run.total_seconds,
        "mysql_sink_rows_per_s": mysql_sink_rows_per_s,
        "mysql_sink_ratio": ratio,
    }))
}

/// The pre-filled bids as `JsonConverter` records with their schema, keyed as in the pre-filled
/// topic (by auction).
fn json_records(prefill: &Prefill) -> Outcome<Vec<(String, Vec<u8>)>> {
    let schema = json!({
        "type": "struct",
        "name": "auction.Bid",
        "optional": false,
        "fields": [
            {"field": "bid_id", "type": "string", "optional": false},
            {"field": "auction_id", "type": "string", "optional": false},
            {"field": "name", "type": "string", "optional": false},
            {"field": "price", "type": "int32", "optional": false},
            {"field": "bid_ts", "type": "int64", "optional": false,
             "name": "io.debezium.time.MicroTimestamp", "version": 1},
        ],
    });
    prefill
        .bids
        .iter()
        .map(|bid| {
            let value = json!({
                "schema": schema,
                "payload": {
                    "bid_id": bid.bid_id.to_string(),
                    "auction_id": bid.auction_id.as_str(),
                    "name": bid.name.as_str(),
                    "price": bid.price.get(),
                    "bid_ts": bid.bid_ts.get().timestamp_micros(),
                },
            });
            serde_json::to_vec(&value)
                .map(|bytes| (bid.auction_id.as_str().to_owned(), bytes))
                .map_err(|e| format!("cannot encode a bid as JSON: {e}"))
        })
        .collect()
}

/// Writes the worker's and the connector's configuration into `work_dir`, starts the worker and
/// counts the rows of `table` until every bid is there; the worker is killed at the end.
async fn run_connect(
    bench: &Bench,
    db: &DatabaseConnection,
    install: &ConnectInstall,
    work_dir: &Path,
    table: &str,
) -> Outcome<PeerRun> {
    let expected = bench.sizes.bids;
    std::fs::create_dir_all(work_dir)
        .map_err(|e| format!("cannot create {}: {e}", work_dir.display()))?;
    let worker = work_dir.join("worker.properties");
    let connector = work_dir.join("jdbc-sink.properties");
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&worker, worker_properties(bench, install, work_dir))?;
    write(
        &connector,
        connector_properties(bench, &jdbc_url(&bench.args.database_url)?, table),
    )?;
    let mut command = Command::new("java");
    command
        .args(["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Xshare:auto"])
        .args(["-cp", &format!("{}/*", install.libs.display())])
        .arg("org.apache.kafka.connect.cli.ConnectStandalone")
        .arg(&worker)
        .arg(&connector);
    let mut process = PeerProcess::spawn("Kafka Connect", command, work_dir.join("connect.log"))?;
    process
        .count_rows_until_done(
            bench,
            db,
            table,
            expected,
            Duration::from_secs(120 + expected / 500),
        )
        .await
}

/// The standalone worker: the run's broker, JSON values with schemas, string keys, offsets in
/// `work_dir`, the connector's plugin folder, the REST listener on a free port, and per-connector
/// consumer overrides allowed.
fn worker_properties(bench: &Bench, install: &ConnectInstall, work_dir: &Path) -> String {
    format!(
        "bootstrap.servers={bootstrap}\n\
         key.converter=org.apache.kafka.connect.storage.StringConverter\n\
         value.converter=org.apache.kafka.connect.json.JsonConverter\n\
         value.converter.schemas.enable=true\n\
         offset.storage.file.filename={offsets}\n\
         plugin.path={plugins}\n\
         plugin.discovery=only_scan\n\
         listeners=http://127.0.0.1:0\n\
         connector.client.config.override.policy=All\n",
        bootstrap = bench.bootstrap,
        offsets = work_dir.join("offsets").display(),
        plugins = install.plugins.display(),
    )
}

/// The Debezium JDBC sink: one task over the JSON topic from its start, upserts on `bid_id`
/// into `table` (created beforehand, so no schema evolution), batches of [`BATCH_SIZE`].
fn connector_properties(bench: &Bench, url: &JdbcUrl, table: &str) -> String {
    format!(
        "name=bench-connect-jdbc-{stamp}\n\
         connector.class=io.debezium.connector.jdbc.JdbcSinkConnector\n\
         tasks.max=1\n\
         topics={CONNECT_TOPIC}\n\
         connection.url={jdbc}\n\
         connection.username={user}\n\
         connection.password={password}\n\
         insert.mode=upsert\n\
         primary.key.mode=record_value\n\
         primary.key.fields=bid_id\n\
         schema.evolution=none\n\
         collection.name.format={table}\n\
         batch.size={BATCH_SIZE}\n\
         consumer.override.max.poll.records={BATCH_SIZE}\n\
         consumer.override.auto.offset.reset=earliest\n",
        stamp = bench.stamp,
        jdbc = url.url,
        user = url.user,
        password = url.password,
    )
}

/// A JDBC connection for the Debezium JDBC sink.
#[derive(Debug)]
struct JdbcUrl {
    url: String,
    user: String,
    password: String,
}

/// The JDBC URL of the benchmark's `mysql://user:password@host:port/database`, through MySQL
/// Connector/J (bundled with the connector) with `rewriteBatchedStatements=true`, which sends each
/// JDBC batch as multi-row statements: the faster of the two bundled drivers here (MariaDB
/// Connector/J 3.5 wrote about 10 % fewer rows/s in a trial of 20,000 bids).
fn jdbc_url(database_url: &str) -> Outcome<JdbcUrl> {
    let parts = parse_mysql_url(database_url, "to run Kafka Connect against it")?;
    Ok(JdbcUrl {
        url: format!(
            "jdbc:mysql://{}:{}/{}?rewriteBatchedStatements=true",
            parts.host, parts.port, parts.database
        ),
        user: parts.user,
        password: parts.password,
    })
}
