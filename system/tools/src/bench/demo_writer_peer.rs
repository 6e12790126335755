//! 5c: the original demo's MySQL writer as a peer of the MySQL sink — `system/tests/demo/db_writer.py`
//! (the demo's consumer rebuilt in Python: confluent-kafka's `Consumer` and `JSONDeserializer`,
//! one `INSERT` and one `COMMIT` a row through mysql-connector-python), run by the test
//! virtualenv's Python against this run's Apache Kafka and MariaDB, beside the MySQL sink's rate
//! from 5.
//!
//! The writer reads the demo's records, not the sink's Avro, so a topic of its own
//! (`bench-prefill-demo`, the run's partitions) is filled by the bare producer with the first N
//! pre-filled bids in the demo's wire form: Confluent's framing (magic byte 0, then the 4-byte
//! big-endian id of the demo's JSON Schema, `SCHEMA_STR` of `system/tests/demo/settings.py`,
//! registered under `bench-prefill-demo-value` in the run's registry), then the compact JSON
//! `{"name":…,"price":…,"bid_ts":…}` that confluent-kafka's `JSONSerializer` writes, `bid_ts` as
//! the demo's `app.py` writes it (`str(datetime.datetime.now())`: `YYYY-MM-DD HH:MM:SS.ffffff`,
//! the fraction left out when it is zero), keyed by the bidder's name as `app.py` keys them.
//! Because the writer commits once a row, N is capped: 20,000 (2,000 with `--quick`).
//!
//! Its rate is counted as Kafka Connect's in 5b: from the first row in its table to all N
//! (`SELECT COUNT(*)` every 50 ms), so Python's start, the imports and the group join are
//! reported apart (`startup_seconds`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use auction_schemas::Bid;
use auction_testkit::Kafka;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use super::connect_peer::parse_mysql_url;
use super::demo_peer::python;
use super::kafka_baseline::Prefill;
use super::limits::mysql_drop;
use super::peer_process::{PeerProcess, PeerRun, fill_peer_topic};
use super::{Bench, Outcome};

/// The topic of the demo's records.
const DEMO_WRITER_TOPIC: &str = "bench-prefill-demo";

/// The subject the demo's schema is registered under (the topic's value subject).
const DEMO_WRITER_SUBJECT: &str = "bench-prefill-demo-value";

/// The most rows the writer is given in a full run, and with `--quick`: it commits once a row.
const FULL_ROW_CAP: u64 = 20_000;
const QUICK_ROW_CAP: u64 = 2_000;

/// The demo's settings module, whose `SCHEMA_STR` is the schema registered here.
const DEMO_SETTINGS_PY: &str = include_str!("../../../tests/demo/settings.py");

/// How many of the pre-filled bids the writer gets: all of them up to the cap.
fn writer_rows(bench: &Bench) -> u64 {
    let cap = if bench.args.quick {
        QUICK_ROW_CAP
    } else {
        FULL_ROW_CAP
    };
    bench.sizes.bids.min(cap)
}

/// 5c: fills the demo's topic, runs `db_writer.py` over it into a fresh table until every one of
/// its bids is there, and compares its rate with the MySQL sink's (`mysql_sink_rows_per_s`, from
/// 5).
pub(super) async fn measure(
    bench: &Bench,
    kafka: &Kafka,
    db: &DatabaseConnection,
    prefill: &Prefill,
    mysql_sink_rows_per_s: f64,
) -> Outcome<Value> {
    let progress = &bench.progress;
    let rows = writer_rows(bench);
    let cap = if bench.args.quick {
        QUICK_ROW_CAP
    } else {
        FULL_ROW_CAP
    };
    progress.say(format!(
        "5c. peer of the MySQL sink: the original demo's db_writer.py (one INSERT + COMMIT a row); \
         the first {rows} of the {} bids (capped at {cap}: one commit a row) as the demo's JSON \
         records in {DEMO_WRITER_TOPIC}",
        bench.sizes.bids
    ));
    kafka
        .try_create_topic(DEMO_WRITER_TOPIC, bench.sizes.partitions)
        .await?;
    let schema_id = register_demo_schema(bench).await?;
    let count = usize::try_from(rows).unwrap_or(usize::MAX);
    let records = demo_records(&prefill.bids[..count.min(prefill.bids.len())], schema_id)?;
    let rows = records.len() as u64;
    let record_bytes = fill_peer_topic(
        bench,
        DEMO_WRITER_TOPIC,
        records,
        "bare producer → the demo's topic",
    )
    .await?;
    let table = bench.table_name("demo_writer");
    let run = run_writer(bench, db, &table, rows).await;
    mysql_drop(db, &table).await;
    let run = run?;
    let writer_rate = run.rows_per_s();
    let ratio = mysql_sink_rows_per_s / writer_rate.max(1e-9);
    progress.say(format!(
        "   the demo's db_writer.py: {writer_rate:.0} rows/s ({:.1} s to its first row); MySQL sink / demo writer = {ratio:.1}",
        run.startup_seconds
    ));
    Ok(json!({
        "rows": rows,
        "rows_cap": cap,
        "rows_note": format!(
            "the first {rows} pre-filled bids: the writer commits once a row, so it gets at most \
             {FULL_ROW_CAP} ({QUICK_ROW_CAP} with --quick)"
        ),
        "topic": DEMO_WRITER_TOPIC,
        "record_format": format!(
            "the demo's: Confluent framing (magic byte 0, 4-byte schema id of the demo's JSON \
             Schema, subject {DEMO_WRITER_SUBJECT}) + compact JSON {{name, price, bid_ts}}, \
             bid_ts as str(datetime.datetime.now())"
        ),
        "record_bytes": record_bytes,
        "configuration": "system/tests/demo/db_writer.py as the demo ships it, on the test \
             virtualenv's Python: confluent-kafka Consumer (auto-commit, auto.offset.reset \
             earliest, a fresh group), JSONDeserializer with the demo's schema, one INSERT + \
             commit a row through mysql-connector-python into its own table",
        "rows_per_s": writer_rate,
        "rows_per_s_including_startup": run.rows_per_s_including_startup(),
        "startup_seconds": run.startup_seconds,
        "seconds": run.total_seconds,
        "mysql_sink_rows_per_s": mysql_sink_rows_per_s,
        "mysql_sink_ratio": ratio,
    }))
}

/// The demo's JSON Schema: `SCHEMA_STR` of `system/tests/demo/settings.py`, exactly as written
/// there.
fn demo_schema() -> Outcome<&'static str> {
    const START: &str = "SCHEMA_STR = \"\"\"";
    let text = DEMO_SETTINGS_PY
        .split_once(START)
        .and_then(|(_, rest)| rest.split_once("\"\"\""))
        .map(|(schema, _)| schema)
        .ok_or("system/tests/demo/settings.py has no SCHEMA_STR = \"\"\"…\"\"\" block")?;
    serde_json::from_str::<Value>(text)
        .map_err(|e| format!("SCHEMA_STR of system/tests/demo/settings.py is not JSON: {e}"))?;
    Ok(text)
}

/// Registers the demo's schema (`schemaType` JSON) under [`DEMO_WRITER_SUBJECT`] in the run's
/// registry through Confluent's REST API; returns its id.
async fn register_demo_schema(bench: &Bench) -> Outcome<u32> {
    let url = format!(
        "{}/subjects/{DEMO_WRITER_SUBJECT}/versions",
        bench.registry_url.trim_end_matches('/')
    );
    let body = json!({ "schema": demo_schema()?, "schemaType": "JSON" });
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(body.to_string())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| format!("cannot register the demo's schema at {url}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("cannot read the registry's answer from {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "the registry refused the demo's schema ({status}) at {url}: {text}"
        ));
    }
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|answer| answer["id"].as_u64())
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| format!("the registry answered {url} without a schema id: {text}"))
}

/// `bids` as the demo's records: keyed by the bidder's name, the value Confluent's framing with
/// `schema_id` then the compact JSON `{"name":…,"price":…,"bid_ts":…}`.
fn demo_records(bids: &[Bid], schema_id: u32) -> Outcome<Vec<(String, Vec<u8>)>> {
    let quoted = |text: &str| {
        serde_json::to_string(text).map_err(|e| format!("cannot encode a bid as JSON: {e}"))
    };
    bids.iter()
        .map(|bid| {
            let document = format!(
                "{{\"name\":{},\"price\":{},\"bid_ts\":{}}}",
                quoted(bid.name.as_str())?,
                bid.price.get(),
                quoted(&demo_bid_ts(bid))?
            );
            let mut value = Vec::with_capacity(5 + document.len());
            value.push(0);
            value.extend_from_slice(&schema_id.to_be_bytes());
            value.extend_from_slice(document.as_bytes());
            Ok((bid.name.as_str().to_owned(), value))
        })
        .collect()
}

/// The bid's time as the demo's `app.py` writes it, `str(datetime.datetime.now())`: Python's
/// `YYYY-MM-DD HH:MM:SS.ffffff`, without the fraction when it is zero (here in UTC).
fn demo_bid_ts(bid: &Bid) -> String {
    let time = bid.bid_ts.get();
    if time.timestamp_subsec_micros() == 0 {
        time.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        time.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

/// Starts `db_writer.py` with its `DEMO_*` settings pointed at this run's broker, registry, the
/// demo's topic, a fresh group and `table` in the run's MariaDB.
fn start_writer(bench: &Bench, table: &str) -> Outcome<PeerProcess> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/demo");
    let database = parse_mysql_url(&bench.args.database_url, "to run the demo's db_writer.py")?;
    let log = std::env::temp_dir().join(format!("auction-bench-demo-writer-{}.log", bench.stamp));
    let mut command = Command::new(python()?);
    command
        .arg(dir.join("db_writer.py"))
        .current_dir(&dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("DEMO_BOOTSTRAP", &bench.bootstrap)
        .env("DEMO_REGISTRY_URL", &bench.registry_url)
        .env("DEMO_TOPIC", DEMO_WRITER_TOPIC)
        .env("DEMO_GROUP", format!("bench-demo-writer-{}", bench.stamp))
        .env(
            "DEMO_MYSQL_HOST",
            database.host.trim_start_matches('[').trim_end_matches(']'),
        )
        .env("DEMO_MYSQL_PORT", database.port.to_string())
        .env("DEMO_MYSQL_USER", &database.user)
        .env("DEMO_MYSQL_PASSWORD", &database.password)
        .env("DEMO_MYSQL_DATABASE", &database.database)
        .env("DEMO_TABLE", table);
    PeerProcess::spawn("the demo's db_writer.py", command, log)
}

/// Runs the writer and counts the rows of `table` until all `expected` are there; the writer is
/// killed at the end.
async fn run_writer(
    bench: &Bench,
    db: &DatabaseConnection,
    table: &str,
    expected: u64,
) -> Outcome<PeerRun> {
    let mut writer = start_writer(bench, table)?;
    // Generous: Python's start, then a commit a row (a few thousand a second at best).
    writer
        .count_rows_until_done(
            bench,
            db,
            table,
            expected,
            Duration::from_secs(120 + expected / 50),
        )
        .await
}
