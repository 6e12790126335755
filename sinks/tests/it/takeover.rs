//! Taking over from the demo's consumers on Apache Kafka: the demo wrote the first part of the
//! topic into its table and file and committed its offsets; a sink with no start refuses to write
//! the demo's bids again, and one started from the demo's consumer group writes exactly the rest.

use std::collections::BTreeMap;
use std::time::Duration;

use auction_process::Readiness;
use auction_sinks::destination::csv_file::{CsvDestination, CsvSettings};
use auction_sinks::{Destination, Progress, RuntimeSettings, StartFrom};
use auction_testkit::read_bids;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::helpers::{MYSQL_URL, Stack, sql_rows, sql_target, unique};

/// What the demo had done when it stopped: the names it wrote, and its committed offsets.
struct DemoProgress {
    written: Vec<(String, i64, String)>,
    all_names: Vec<String>,
    group: String,
}

/// 30 bids from the demo's producer; the demo "wrote" the first half of each partition and
/// committed its offsets there, as its consumers would have at a Ctrl-C.
async fn demo_stopped_halfway(stack: &Stack) -> DemoProgress {
    stack.produce_demo_bids(30, "demo").await;
    let log = read_bids(&stack.broker.bootstrap, &stack.registry.url, &stack.topic).await;
    let mut per_partition: BTreeMap<i32, Vec<_>> = BTreeMap::new();
    for (bid, partition, offset) in &log {
        per_partition
            .entry(*partition)
            .or_default()
            .push((bid, *offset));
    }
    let group = unique("db_writer");
    let mut committed = TopicPartitionList::new();
    let mut written = Vec::new();
    for (partition, records) in &per_partition {
        let cut = records.len() / 2;
        for (bid, _) in &records[..cut] {
            written.push((
                bid.name.as_str().to_owned(),
                i64::from(bid.price.get()),
                bid.bid_ts.get().format("%Y-%m-%d %H:%M:%S").to_string(),
            ));
        }
        let next = records.get(cut).map_or(records.len() as i64, |(_, o)| *o);
        committed
            .add_partition_offset(&stack.topic, *partition, Offset::Offset(next))
            .unwrap();
    }
    let demo: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.broker.bootstrap)
        .set("group.id", &group)
        .create()
        .unwrap();
    demo.commit(&committed, CommitMode::Sync).unwrap();
    assert!(!written.is_empty() && written.len() < 30);
    DemoProgress {
        written,
        all_names: log
            .iter()
            .map(|(bid, _, _)| bid.name.as_str().to_owned())
            .collect(),
        group,
    }
}

/// Runs the sink until `done` or for at most 60 s; what `run` returned, if it returned.
async fn run_sink<T: Destination>(
    settings: RuntimeSettings,
    target: T,
    done: impl AsyncFn() -> bool,
) -> Option<Result<(), String>> {
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(auction_sinks::run(
        settings,
        target,
        Readiness::default(),
        Progress::default(),
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !running.is_finished() && tokio::time::Instant::now() < deadline && !done().await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if running.is_finished() {
        return Some(running.await.unwrap().map(drop).map_err(|e| e.to_string()));
    }
    shutdown.cancel();
    let _ = running.await;
    None
}

fn counts(names: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for name in names {
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_refuses_the_demos_table_without_a_start_and_takes_over_from_its_group() {
    let stack = Stack::start(2).await;
    let demo = demo_stopped_halfway(&stack).await;
    let table = unique("bid_takeover");
    let admin = sql_target(MYSQL_URL, &table).await;
    let connection = admin.connection();
    use sea_orm::ConnectionTrait;
    connection
        .execute_unprepared(&format!(
            "CREATE TABLE {table} (name VARCHAR(100), price INT, bid_ts DATETIME)"
        ))
        .await
        .unwrap();
    for (name, price, bid_ts) in &demo.written {
        connection
            .execute_unprepared(&format!(
                "INSERT INTO {table} (name, price, bid_ts) VALUES ('{name}', {price}, '{bid_ts}')"
            ))
            .await
            .unwrap();
    }
    let group = unique("auction-sink-mysql");

    // No start given: the sink stops before its first write, saying how to give one.
    let refused = run_sink(
        stack.settings("mysql", &group),
        sql_target(MYSQL_URL, &table).await,
        async || false,
    )
    .await
    .expect("the sink stops by itself")
    .expect_err("the sink refuses the demo's table");
    assert!(
        refused.contains(&format!("already holds {} bids", demo.written.len()))
            && refused.contains("SINK_START_FROM=group:"),
        "{refused}"
    );
    assert_eq!(sql_rows(&admin).await.len(), demo.written.len());

    // Taking over from the demo's group: the rest, once.
    let mut settings = stack.settings("mysql", &group);
    settings.start_from = StartFrom::Group(demo.group.clone());
    let reader = sql_target(MYSQL_URL, &table).await;
    let all = demo.all_names.len();
    let outcome = run_sink(settings, sql_target(MYSQL_URL, &table).await, async || {
        sql_rows(&reader).await.len() >= all
    })
    .await;
    assert!(outcome.is_none(), "the sink stopped: {outcome:?}");
    let rows = sql_rows(&reader).await;
    assert_eq!(
        counts(rows.iter().map(|r| r.name.clone())),
        counts(demo.all_names.clone()),
        "every bid once"
    );
    // The demo's rows kept no position; the sink's rows have theirs.
    let positioned = rows.iter().filter(|r| r.partition >= 0).count();
    assert_eq!(positioned, all - demo.written.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_upgrades_the_demos_file_and_takes_over_from_its_group() {
    let stack = Stack::start(2).await;
    let demo = demo_stopped_halfway(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("output.csv");
    let mut demo_file = String::new();
    for (name, price, bid_ts) in &demo.written {
        demo_file.push_str(&format!("{name},{price},{bid_ts}\r\n"));
    }
    std::fs::write(&path, &demo_file).unwrap();
    let target = || {
        CsvDestination::new(CsvSettings {
            path: path.clone(),
            rotate_daily: false,
        })
    };
    let group = unique("auction-sink-csv");
    let refused = run_sink(stack.settings("csv", &group), target(), async || false)
        .await
        .expect("the sink stops by itself")
        .expect_err("the sink refuses the demo's file");
    assert!(refused.contains("SINK_START_FROM"), "{refused}");

    let mut settings = stack.settings("csv", &group);
    settings.start_from = StartFrom::Group(demo.group.clone());
    let names = || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        csv::ReaderBuilder::new()
            .from_reader(text.as_bytes())
            .records()
            .map(|row| row.unwrap()[2].to_owned())
            .collect::<Vec<_>>()
    };
    let all = demo.all_names.len();
    let outcome = run_sink(settings, target(), async || names().len() >= all).await;
    assert!(outcome.is_none(), "the sink stopped: {outcome:?}");
    assert_eq!(
        counts(names()),
        counts(demo.all_names.clone()),
        "every bid once"
    );
    let mut backup = path.clone().into_os_string();
    backup.push(".demo");
    assert_eq!(std::fs::read_to_string(backup).unwrap(), demo_file);
}
