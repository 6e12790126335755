//! 5c: the original demo's MySQL writer as a peer of the MySQL sink — `system/tests/demo/db_writer.py`
//! (the demo's consumer rebuilt in Python: confluent-kafka's `Consumer` and `JSONDeserializer`,
//! one `INSERT` and one `COMMIT` a row through mysql-connector-python), run by the test
//! virtualenv's Python against this run's Apache Kafka and MariaDB, beside the MySQL sink's rate
//! from 5.
//!
//! The writer reads the demo's records, not the sink's, so a topic of its own
//! (`bench-prefill-demo`, the run's partitions) is filled by the bare producer with the first N
//! pre-filled bids as the product writes them in its demo-compatible form (`BidEncoder` with
//! `BidForm::DemoCompatible`: the demo's JSON Schema v1 registered under
//! `bench-prefill-demo-value`, Confluent's framing with its id, then `{name, price, bid_ts}` with
//! `bid_ts` in the demo's form), keyed by the bidder's name as the demo's `app.py` keys them.
//! Because the writer commits once a row, N is capped: 20,000 (2,000 with `--quick`).
//!
//! Its rate is counted as Kafka Connect's in 5b: from the first row in its table to all N
//! (`SELECT COUNT(*)` every 50 ms), so Python's start, the imports and the group join are
//! reported apart (`startup_seconds`).

use std::time::Duration;

use auction_schemas::{Bid, BidEncoder, BidForm, RegistrySettings};
use auction_testkit::Kafka;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use super::demo_peer::demo_command;
use super::kafka_baseline::Prefill;
use super::limits::mysql_drop;
use super::peer_process::{PeerProcess, PeerRun, fill_peer_topic};
use super::{Bench, Outcome};

/// The topic of the demo's records.
const DEMO_WRITER_TOPIC: &str = "bench-prefill-demo";

/// The most rows the writer is given in a full run, and with `--quick`: it commits once a row.
const FULL_ROW_CAP: u64 = 20_000;
const QUICK_ROW_CAP: u64 = 2_000;

/// The most rows the writer gets in this run.
fn row_cap(bench: &Bench) -> u64 {
    if bench.args.quick {
        QUICK_ROW_CAP
    } else {
        FULL_ROW_CAP
    }
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
    let cap = row_cap(bench);
    let rows = bench.sizes.bids.min(cap);
    progress.say(format!(
        "5c. peer of the MySQL sink: the original demo's db_writer.py (one INSERT + COMMIT a row); \
         the first {rows} of the {} bids (capped at {cap}: one commit a row) as the demo's JSON \
         records in {DEMO_WRITER_TOPIC}",
        bench.sizes.bids
    ));
    kafka
        .try_create_topic(DEMO_WRITER_TOPIC, bench.sizes.partitions)
        .await?;
    let count = usize::try_from(rows).unwrap_or(usize::MAX);
    let records = demo_records(bench, &prefill.bids[..count.min(prefill.bids.len())]).await?;
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
    let (writer_rate, ratio) =
        run.against_mysql_sink(bench, "the demo's db_writer.py", mysql_sink_rows_per_s);
    Ok(json!({
        "rows": rows,
        "rows_cap": cap,
        "rows_note": format!(
            "the first {rows} pre-filled bids: the writer commits once a row, so it gets at most \
             {FULL_ROW_CAP} ({QUICK_ROW_CAP} with --quick)"
        ),
        "topic": DEMO_WRITER_TOPIC,
        "record_format": "the product's demo-compatible form (BidForm::DemoCompatible): \
             Confluent framing with the id of the demo's JSON Schema v1 (subject \
             bench-prefill-demo-value) + JSON {name, price, bid_ts}, bid_ts in the demo's form",
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

/// `bids` as the demo's records, encoded as the product writes its demo-compatible form (the
/// demo's schema registered under the topic's value subject), keyed by the bidder's name.
async fn demo_records(bench: &Bench, bids: &[Bid]) -> Outcome<Vec<(String, Vec<u8>)>> {
    let encoder = BidEncoder::with_form(
        &RegistrySettings::new(&bench.registry_url),
        DEMO_WRITER_TOPIC,
        BidForm::DemoCompatible,
    )
    .map_err(|e| e.to_string())?;
    encoder
        .register_schemas()
        .await
        .map_err(|e| format!("cannot register the demo's schema: {e}"))?;
    let mut records = Vec::with_capacity(bids.len());
    for bid in bids {
        let value = encoder
            .encode(bid)
            .await
            .map_err(|e| format!("cannot encode a bid in the demo's form: {e}"))?;
        records.push((bid.name.as_str().to_owned(), value));
    }
    Ok(records)
}

/// Starts `db_writer.py` with its `DEMO_*` settings pointed at this run's broker, registry, the
/// demo's topic, a fresh group and `table` in the run's MariaDB.
fn start_writer(bench: &Bench, table: &str) -> Outcome<PeerProcess> {
    let log = std::env::temp_dir().join(format!("auction-bench-demo-writer-{}.log", bench.stamp));
    let mut command = demo_command(bench, "db_writer.py", DEMO_WRITER_TOPIC, table)?;
    command.env("DEMO_GROUP", format!("bench-demo-writer-{}", bench.stamp));
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
