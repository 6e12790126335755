//! The ODBC sink's `hive` dialect against a real HiveServer2-protocol server: the Spark Thrift
//! Server of the PyPI `pyspark` package (`.ci/requirements.txt`), with an embedded Derby metastore,
//! all of its files in a temporary folder of the test.
//!
//! No Hive ODBC driver exists here, so what runs is the dialect's SQL, taken from the sink's own
//! functions (`create_table_sql`, `HIVE_DYNAMIC_PARTITIONS`, `hive_insert_statements`,
//! `lookup_sql`), with the values the sink binds to its markers. HiveServer2 has no parameter
//! binding: a Hive ODBC driver renders bound values into the text as literals, and here PyHive's
//! parameter support does (`tests/python/hive_statements.py`). The ODBC path itself is unverified.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auction_schemas::{AuctionId, Bid, BidId, BidTimestamp, BidderName, Price};
use auction_sinks::destination::odbc::{
    Dialect, HIVE_DYNAMIC_PARTITIONS, HiveParameter, create_table_sql, hive_insert_statements,
    lookup_sql,
};
use auction_sinks::destination::sql::TableName;
use auction_testkit::{free_port, python};
use chrono::NaiveDateTime;
use serde_json::{Value, json};

/// How long the server may take to listen (about 15 s on an idle two-core machine).
const STARTUP_LIMIT: Duration = Duration::from_secs(240);
/// How long the statements may take (a few seconds each on two cores).
const SCRIPT_LIMIT: Duration = Duration::from_secs(300);

/// A Spark Thrift Server on 127.0.0.1; killed (and its folder removed) when dropped, also when
/// the test fails.
struct SparkThriftServer {
    child: Child,
    port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl SparkThriftServer {
    fn start() -> Self {
        let spark_home = spark_home();
        let thrift_jar = std::fs::read_dir(spark_home.join("jars"))
            .unwrap_or_else(|e| panic!("cannot list {}/jars: {e}", spark_home.display()))
            .flatten()
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("spark-hive-thriftserver")
            });
        assert!(
            thrift_jar,
            "the pyspark package at {} lacks the spark-hive-thriftserver jar",
            spark_home.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("auction-spark-")
            .tempdir()
            .expect("cannot create a folder for Spark");
        let d = |name: &str| dir.path().join(name).display().to_string();
        for name in ["conf", "tmp", "local"] {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
        }
        let port = free_port();
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(spark_home.join("bin/spark-submit"))
            .current_dir(dir.path())
            .env("SPARK_HOME", &spark_home)
            .env("SPARK_CONF_DIR", d("conf"))
            .env("SPARK_LOCAL_IP", "127.0.0.1")
            .env("SPARK_LOCAL_DIRS", d("local"))
            .args(["--master", "local[2]", "--driver-memory", "1g"])
            .args(["--conf", "spark.ui.enabled=false"])
            .args(["--conf", "spark.driver.host=127.0.0.1"])
            .args(["--conf", "spark.driver.bindAddress=127.0.0.1"])
            // Spark's TIMESTAMP is an instant shown in the session's zone; the sink's are UTC.
            .args(["--conf", "spark.sql.session.timeZone=UTC"])
            .args([
                "--conf",
                &format!("spark.sql.warehouse.dir={}", d("warehouse")),
            ])
            .args(["--conf", &format!("spark.local.dir={}", d("local"))])
            .arg("--conf")
            .arg(format!(
                "spark.driver.extraJavaOptions=-Dderby.system.home={} -Djava.io.tmpdir={}",
                dir.path().display(),
                d("tmp")
            ))
            .args([
                "--class",
                "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            ])
            .args(["--hiveconf", "hive.server2.thrift.bind.host=127.0.0.1"])
            .args(["--hiveconf", &format!("hive.server2.thrift.port={port}")])
            .arg("--hiveconf")
            .arg(format!(
                "javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName={};create=true",
                d("metastore_db")
            ))
            .args([
                "--hiveconf",
                &format!("hive.exec.scratchdir={}", d("scratch")),
            ])
            .args([
                "--hiveconf",
                &format!("hive.exec.local.scratchdir={}", d("local-scratch")),
            ])
            .args([
                "--hiveconf",
                &format!("hive.downloaded.resources.dir={}", d("resources")),
            ])
            .args([
                "--hiveconf",
                &format!("hive.querylog.location={}", d("querylog")),
            ])
            .arg("spark-internal")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}/bin/spark-submit: {e}",
                    spark_home.display()
                )
            });
        let mut server = Self {
            child,
            port,
            log,
            dir,
        };
        eprintln!(
            "starting the Spark Thrift Server ({}) on 127.0.0.1:{port}, files in {}",
            spark_home.display(),
            server.dir.path().display()
        );
        server.wait_listening();
        server
    }

    fn wait_listening(&mut self) {
        let started = Instant::now();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut reported = 0;
        loop {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                eprintln!(
                    "the Spark Thrift Server listens after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the Spark Thrift Server exited ({status}) before listening; its log:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                started.elapsed() < STARTUP_LIMIT,
                "the Spark Thrift Server did not listen on {addr} within {} s; its log:\n{}",
                STARTUP_LIMIT.as_secs(),
                self.log_tail()
            );
            if started.elapsed().as_secs() >= reported + 10 {
                reported = started.elapsed().as_secs();
                eprintln!("still waiting for the Spark Thrift Server ({reported} s)");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The last lines of the server's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for SparkThriftServer {
    fn drop(&mut self) {
        // spark-submit execs the JVM, so the child is the server itself.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pyspark package folder of the test virtualenv (Spark's home: `bin/`, `jars/`).
fn spark_home() -> PathBuf {
    let output = Command::new(python())
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .output()
        .expect("cannot run the test virtualenv's Python");
    assert!(
        output.status.success(),
        "pyspark is not installed in the test virtualenv (run `.ci/test`, which installs \
         .ci/requirements.txt): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn bid(auction: &str, name: &str, price: i64, ts: &str) -> Bid {
    Bid {
        bid_id: BidId::new_random(),
        auction_id: AuctionId::parse(auction).unwrap(),
        name: BidderName::parse(name).unwrap(),
        price: Price::parse(price).unwrap(),
        bid_ts: BidTimestamp::parse(ts).unwrap(),
    }
}

/// A bound parameter as the script reads it.
fn parameter_json(parameter: &HiveParameter) -> Value {
    match parameter {
        HiveParameter::Text(text) => json!({"type": "text", "value": text}),
        HiveParameter::WideText(text) => json!({"type": "wide_text", "value": text}),
        HiveParameter::Integer(value) => json!({"type": "integer", "value": value}),
        HiveParameter::BigInt(value) => json!({"type": "bigint", "value": value}),
        HiveParameter::Timestamp(ts) => json!({
            "type": "timestamp",
            "value": ts.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        }),
    }
}

/// Runs the script on the statements; its JSON answer.
fn run_statements(server: &SparkThriftServer, statements: &Value) -> Value {
    let file = server.dir.path().join("statements.json");
    std::fs::write(&file, serde_json::to_vec_pretty(statements).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/hive_statements.py");
    let stdout_file = server.dir.path().join("script.out");
    let mut child = Command::new(python())
        .arg(&script)
        .args(["127.0.0.1", &server.port.to_string()])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_file).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cannot run the test virtualenv's Python");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > SCRIPT_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the statements did not finish within {} s; the server's log:\n{}",
                SCRIPT_LIMIT.as_secs(),
                server.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&stdout_file).unwrap_or_default();
    assert!(
        status.success(),
        "a statement failed on the Spark Thrift Server ({status}; the script's error is above); \
         the server's log:\n{}",
        server.log_tail()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn hive_dialect_runs_on_spark_thrift_server() {
    // Two UTC days (one bid each side of midnight), two Kafka partitions, an offset past 2^31,
    // names with an apostrophe and characters outside ASCII.
    let batch = [
        (
            bid("lot-1", "Zoë O'Brien", 100, "2026-11-23T10:15:30.123456Z"),
            0,
            7,
        ),
        (
            bid("lot-1", "Ana", 105, "2026-11-23T23:59:59.999999Z"),
            0,
            8,
        ),
        (
            bid("lot-2", "李雷 😀", 20, "2026-11-24T00:00:00.000001Z"),
            1,
            5_000_000_000,
        ),
        (
            bid("lot-2", "Bob", 21, "2026-11-24T08:00:00Z"),
            1,
            5_000_000_001,
        ),
        (bid("lot-1", "Émile", 110, "2026-11-24T09:30:00.5Z"), 0, 9),
    ];
    let rows: Vec<(&Bid, i32, i64)> = batch.iter().map(|(b, p, o)| (b, *p, *o)).collect();
    let table = TableName::default();
    let inserts: Vec<Value> = hive_insert_statements(&table, &rows)
        .iter()
        .map(|(sql, values)| {
            json!({"sql": sql, "parameters": values.iter().map(parameter_json).collect::<Vec<_>>()})
        })
        .collect();
    assert_eq!(inserts.len(), 1, "a batch of five is one statement");
    let absent = BidId::new_random().to_string();
    let mut lookup_ids: Vec<String> = batch.iter().map(|(b, _, _)| b.bid_id.to_string()).collect();
    lookup_ids.push(absent.clone());
    let statements = json!({
        "table": table.as_str(),
        "create": create_table_sql(Dialect::Hive, &table),
        "session": HIVE_DYNAMIC_PARTITIONS,
        "inserts": inserts,
        "lookup": {
            "sql": lookup_sql(&table, lookup_ids.len()),
            "parameters": lookup_ids
                .iter()
                .map(|id| parameter_json(&HiveParameter::Text(id.clone())))
                .collect::<Vec<_>>(),
        },
    });

    let server = SparkThriftServer::start();
    let answer = run_statements(&server, &statements);

    // The table has the dialect's columns, partitioned by day.
    let columns: Vec<(String, String)> = answer["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| Some((c[0].as_str()?.to_owned(), c[1].as_str()?.to_owned())))
        .filter(|(name, _)| !name.is_empty() && !name.starts_with('#'))
        .take(8)
        .collect();
    let expected_columns = [
        ("bid_id", "string"),
        ("auction_id", "string"),
        ("name", "string"),
        ("price", "int"),
        ("bid_ts", "timestamp"),
        ("kafka_partition", "int"),
        ("kafka_offset", "bigint"),
        ("bid_date", "string"),
    ];
    assert_eq!(
        columns,
        expected_columns
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect::<Vec<_>>()
    );

    // Every bid reads back field for field, in its day's partition.
    let stored = answer["rows"].as_array().unwrap();
    eprintln!("{} rows read back: {stored:?}", stored.len());
    let mut expected: Vec<&(Bid, i32, i64)> = batch.iter().collect();
    expected.sort_by_key(|(_, p, o)| (*p, *o));
    assert_eq!(stored.len(), expected.len(), "{stored:?}");
    for (row, (bid, partition, offset)) in stored.iter().zip(expected) {
        let ts = bid.bid_ts.get().naive_utc();
        assert_eq!(row["bid_id"], bid.bid_id.to_string(), "{row}");
        assert_eq!(row["auction_id"], bid.auction_id.as_str(), "{row}");
        assert_eq!(row["name"], bid.name.as_str(), "{row}");
        assert_eq!(row["price"], bid.price.get(), "{row}");
        let stored_ts = row["bid_ts"].as_str().unwrap_or_default();
        assert_eq!(
            NaiveDateTime::parse_from_str(stored_ts, "%Y-%m-%d %H:%M:%S%.f").ok(),
            Some(ts),
            "{row}"
        );
        assert_eq!(row["kafka_partition"], *partition, "{row}");
        assert_eq!(row["kafka_offset"], *offset, "{row}");
        assert_eq!(row["bid_date"], ts.format("%Y-%m-%d").to_string(), "{row}");
    }
    assert_eq!(
        answer["partitions"],
        json!(["bid_date=2026-11-23", "bid_date=2026-11-24"])
    );

    // The look-up the sink's idempotence rests on finds exactly the stored bids.
    let mut ids: Vec<String> = batch.iter().map(|(b, _, _)| b.bid_id.to_string()).collect();
    ids.sort();
    assert_eq!(answer["found"], json!(ids), "the absent id was {absent}");
    eprintln!(
        "the hive dialect's CREATE, SET, INSERT and look-up ran on the Spark Thrift Server: {} \
         bids in partitions {}",
        stored.len(),
        answer["partitions"]
    );
}
