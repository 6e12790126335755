//! 5: each sink's rows/s from the pre-filled topic (MySQL into MariaDB, CSV, ODBC into
//! PostgreSQL), beside its target's own limit (see `limits`).

use std::path::Path;
use std::time::{Duration, Instant};

use auction_process::{KafkaProperties, Secret};
use auction_schemas::RegistrySettings;
use auction_sinks::destination::csv_file::CsvSettings;
use auction_sinks::destination::odbc::{Dialect, OdbcSettings};
use auction_sinks::destination::sql::{SqlSettings, TableName};
use auction_sinks::{DestinationSettings, KafkaSettings, RuntimeSettings, SinkSettings};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::kafka_baseline::{PREFILL_TOPIC, Prefill};
use super::limits::{self, mysql_drop, odbc_drop_in_task};
use super::report::rate;
use super::{Bench, Outcome, Progress};

/// 5: each sink over the pre-filled topic until it has written every bid, then its target's own
/// limit with the same bids; the `sinks` results, by sink.
pub(super) async fn measure(
    bench: &Bench,
    db: &DatabaseConnection,
    prefill: &Prefill,
) -> Outcome<Value> {
    bench.progress.say(format!(
        "5. sinks from the pre-filled topic of {} bids",
        bench.sizes.bids
    ));
    let work_dir = std::env::temp_dir().join(format!("auction-bench-{}", bench.stamp));
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| format!("cannot create {}: {e}", work_dir.display()))?;
    let mut sinks = serde_json::Map::new();
    for (kind, destination) in destinations(bench, &work_dir)? {
        let sink = one_sink(bench, db, prefill, &work_dir, kind, destination).await?;
        sinks.insert(kind.to_owned(), sink);
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    Ok(Value::Object(sinks))
}

/// The sinks' destinations: the MariaDB table, `sink.csv` in `work_dir`, and the PostgreSQL
/// table (through ODBC), the tables named `bench_sink_STAMP`.
fn destinations(
    bench: &Bench,
    work_dir: &Path,
) -> Outcome<[(&'static str, DestinationSettings); 3]> {
    let table = bench.table_name("sink");
    let mut odbc = OdbcSettings::new(
        Secret::new(bench.args.odbc_connection_string.clone()),
        Dialect::Ansi,
    );
    odbc.table = TableName::parse(&table)?;
    Ok([
        (
            "mysql",
            mysql_destination(&bench.args.database_url, &table)?,
        ),
        (
            "csv",
            DestinationSettings::Csv(CsvSettings {
                path: work_dir.join("sink.csv"),
                rotate_daily: false,
            }),
        ),
        ("odbc", DestinationSettings::Odbc(odbc)),
    ])
}

/// Sink `kind` over the pre-filled topic into `destination` (its table dropped after), then its
/// target's own limit; the sink's results.
async fn one_sink(
    bench: &Bench,
    db: &DatabaseConnection,
    prefill: &Prefill,
    work_dir: &Path,
    kind: &str,
    destination: DestinationSettings,
) -> Outcome<Value> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    progress.say(format!("   {kind} sink"));
    let mut settings = sink_settings(
        &bench.bootstrap,
        &bench.registry_url,
        PREFILL_TOPIC,
        &format!("bench-{kind}-{}", bench.stamp),
        destination,
    )?;
    if let Some(batch_size) = bench.args.sink_batch_size {
        settings.runtime.batch_size = usize::try_from(batch_size).unwrap_or(usize::MAX);
    }
    let batch_size = settings.runtime.batch_size;
    let run = run_sink(settings, sizes.bids, progress).await;
    match kind {
        "mysql" => mysql_drop(db, &bench.table_name("sink")).await,
        "odbc" => {
            odbc_drop_in_task(
                bench.args.odbc_connection_string.clone(),
                bench.table_name("sink"),
            )
            .await;
        }
        _ => {}
    }
    let run = run?;
    let steady_rows = sizes.bids as f64 - run.rows_at_first_progress;
    let sink_rate = if run.steady_seconds > 0.0 && steady_rows > 0.0 {
        steady_rows / run.steady_seconds
    } else {
        rate(sizes.bids, run.total_seconds)
    };
    progress.say(format!(
        "   {kind} sink: {sink_rate:.0} rows/s; measuring the target's own limit"
    ));
    let limit = limits::of_target(bench, db, prefill, work_dir, kind, batch_size).await?;
    let limit_rate = rate(sizes.bids, limit.seconds);
    progress.say(format!("   {kind} limit: {limit_rate:.0} rows/s"));
    Ok(json!({
        "rows": sizes.bids,
        "batch_size": batch_size,
        "rows_per_s": sink_rate,
        "rows_per_s_including_startup": rate(sizes.bids, run.total_seconds),
        "startup_seconds": run.startup_seconds,
        "seconds": run.total_seconds,
        "limit": limit.name,
        "limit_rows_per_s": limit_rate,
        "ratio": sink_rate / limit_rate.max(1e-9),
        "limit_extra": limit.extra,
    }))
}

/// A sink of the benchmark: on `topic` in its own consumer group, dead letters to `bench.dlq`,
/// metrics on a free port.
pub(super) fn sink_settings(
    bootstrap: &str,
    registry_url: &str,
    topic: &str,
    group: &str,
    destination: DestinationSettings,
) -> Outcome<SinkSettings> {
    let kind = destination.kind().map_err(|e| e.to_string())?;
    let mut kafka = KafkaSettings::new(KafkaProperties::bootstrap(bootstrap), kind);
    kafka.topic = topic.to_owned();
    kafka.group_id = group.to_owned();
    kafka.dead_letter_topic = "bench.dlq".to_owned();
    Ok(SinkSettings {
        runtime: RuntimeSettings::new(kafka, RegistrySettings::new(registry_url)),
        destination,
        metrics_listen: ([127, 0, 0, 1], 0).into(),
    })
}

/// A MySQL destination: `table` in the database at `url`.
pub(super) fn mysql_destination(url: &str, table: &str) -> Outcome<DestinationSettings> {
    let mut sql = SqlSettings::new(Secret::new(url));
    sql.table = TableName::parse(table)?;
    Ok(DestinationSettings::Sql(sql))
}

/// How long a sink took over the pre-filled topic.
#[derive(Debug)]
struct SinkRun {
    startup_seconds: f64,
    steady_seconds: f64,
    total_seconds: f64,
    rows_at_first_progress: f64,
}

/// Runs a sink over the pre-filled topic until it has written `expected` records, then stops it.
async fn run_sink(settings: SinkSettings, expected: u64, progress: &Progress) -> Outcome<SinkRun> {
    let stop = CancellationToken::new();
    let started = Instant::now();
    let sink = auction_sinks::spawn(settings, stop.clone())
        .await
        .map_err(|e| e.to_string())?;
    let kind = sink.kind;
    let deadline = started + Duration::from_secs(120 + expected / 500);
    let mut first: Option<(Instant, f64)> = None;
    let mut last_report = Instant::now();
    let outcome = loop {
        if sink.is_finished() {
            break Err(format!("the {kind} sink stopped by itself"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        let counts = sink.progress();
        let written = (counts.written + counts.duplicates) as f64;
        if written > 0.0 && first.is_none() {
            first = Some((now, written));
        }
        if written >= expected as f64 {
            let (first_at, first_rows) = first.unwrap_or((now, written));
            break Ok(SinkRun {
                startup_seconds: (first_at - started).as_secs_f64(),
                steady_seconds: (now - first_at).as_secs_f64(),
                total_seconds: (now - started).as_secs_f64(),
                rows_at_first_progress: first_rows,
            });
        }
        if now > deadline {
            break Err(format!(
                "the {kind} sink wrote {written} of {expected} records before its deadline"
            ));
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            progress.say(format!("  {kind} sink: {written}/{expected}"));
            last_report = Instant::now();
        }
    };
    stop.cancel();
    match tokio::time::timeout(Duration::from_secs(30), sink.stopped()).await {
        Ok(Err(e)) if outcome.is_err() => Err(format!("the {kind} sink failed: {e}")),
        _ => outcome,
    }
}
