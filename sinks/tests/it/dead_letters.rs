//! The dead-letter topic on Apache Kafka: checked at start (a missing topic is created, or the
//! sink refuses to start when creation is off), a dead letter the topic refuses holds its
//! partition with a sentence instead of stalling silently, and a dead letter carries a bounded
//! number of the original record's headers.

use std::process::Stdio;
use std::time::Duration;

use auction_sinks::dead_letter_headers as dlq;
use auction_sinks::destination::csv_file::{CsvDestination, CsvSettings};
use auction_sinks::{MAX_COPIED_HEADERS, RuntimeSettings};
use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::helpers::RunningSink;
use crate::helpers::{Stack, csv_rows, unique, wait_until};
use crate::watched::{committed, end_offsets, read_all, topic_exists};

fn csv_sink(settings: RuntimeSettings, dir: &tempfile::TempDir) -> RunningSink {
    RunningSink::spawn(
        settings,
        CsvDestination::new(CsvSettings {
            path: dir.path().join("output.csv"),
            rotate_daily: false,
        }),
    )
}

/// Produces `value` with `headers` to partition 0 of the stack's bid topic.
async fn produce_raw(stack: &Stack, value: &[u8], headers: OwnedHeaders) {
    stack
        .producer()
        .send(
            FutureRecord::<str, [u8]>::to(&stack.topic)
                .partition(0)
                .key("lot-0")
                .payload(value)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("the poison record is produced");
}

fn admin(stack: &Stack) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &stack.broker.bootstrap)
        .create()
        .expect("an admin client")
}

#[tokio::test]
async fn with_the_dead_letter_topic_missing_and_creation_off_the_sink_refuses_to_start_with_a_sentence()
 {
    let stack = Stack::start(1).await;
    let missing = unique("auction.dlq.missing");
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("output.csv");
    // The broker creates topics on request (the testkit leaves Kafka's default
    // auto.create.topics.enable=true), so the sink must neither ask it to nor rely on it.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_auction-sink"))
        .args(["csv", "--path", csv_path.to_str().unwrap()])
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.broker.bootstrap)
        .env("AUCTION_TOPIC", &stack.topic)
        .env("SINK_DEAD_LETTER_TOPIC", &missing)
        .env("SINK_DEAD_LETTER_NO_CREATE", "true")
        .env("SINK_GROUP_ID", unique("no-dlq"))
        .env("SCHEMA_REGISTRY_URL", &stack.registry.url)
        .env("SINK_METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("the sink exits within 60 s")
        .expect("auction-sink runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{}", stderr.lines().last().unwrap_or_default());
    assert!(!output.status.success(), "{stderr}");
    let sentence = format!(
        "auction-sink: the dead-letter topic {missing} does not exist and SINK_DEAD_LETTER_NO_CREATE forbids creating it"
    );
    assert!(
        stderr.lines().any(|line| line.starts_with(&sentence)),
        "one line says why: {stderr}"
    );
    assert!(
        !topic_exists(&stack.broker.bootstrap, &missing),
        "the check did not create the topic"
    );
    assert!(!csv_path.exists(), "nothing was written");
}

#[tokio::test]
async fn a_missing_dead_letter_topic_is_created_at_start_and_dead_letters_carry_bounded_headers() {
    let stack = Stack::start(1).await;
    let created = unique("auction.dlq.created");
    assert!(!topic_exists(&stack.broker.bootstrap, &created));
    let before = stack.produce_bids(5, 1, "before").await;
    let mut headers = OwnedHeaders::new();
    for i in 0..100 {
        headers = headers.insert(Header {
            key: &format!("h{i:03}"),
            value: Some("0123456789"),
        });
    }
    produce_raw(&stack, b"not framed at all", headers).await;
    let after = stack.produce_bids(5, 1, "after").await;

    let mut settings = stack.settings("csv", &unique("dlq-created"));
    settings.kafka.dead_letter_topic = created.clone();
    let dir = tempfile::tempdir().unwrap();
    let sink = csv_sink(settings, &dir);
    let csv_path = dir.path().join("output.csv");
    // The sink's own count moves once a batch is durable; the file is read after that.
    wait_until(
        Duration::from_secs(60),
        "the bids around the poison record are written",
        || async { sink.progress.snapshot().written >= before.len() + after.len() },
    )
    .await;
    assert_eq!(csv_rows(&csv_path).len(), before.len() + after.len());
    assert!(
        topic_exists(&stack.broker.bootstrap, &created),
        "created at start"
    );
    wait_until(
        Duration::from_secs(30),
        "the dead letter is written",
        || async { end_offsets(&stack.broker.bootstrap, &created, 1) == vec![1] },
    )
    .await;

    let letters = read_all(&stack.broker.bootstrap, &created);
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.value.as_deref(), Some(&b"not framed at all"[..]));
    let header = |key: &str| {
        letter
            .headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
    };
    let copied = letter
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with('h'))
        .count();
    assert_eq!(
        copied, MAX_COPIED_HEADERS,
        "the first headers, up to the bound"
    );
    assert_eq!(header("h000").as_deref(), Some("0123456789"));
    assert_eq!(header(dlq::HEADERS_DROPPED).as_deref(), Some("36"));
    assert_eq!(header(dlq::ERROR_KIND).as_deref(), Some("bad_magic_byte"));
    assert_eq!(header(dlq::SOURCE_OFFSET).as_deref(), Some("5"));
    let summary = sink.stop().await;
    assert_eq!(summary.dead_letters, 1);
    assert_eq!(summary.written, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_for_its_topic_holds_the_partition_with_a_sentence_until_it_fits() {
    let stack = Stack::start(1).await;
    // A dead-letter topic that takes records of 2 KiB at most.
    let small = unique("auction.dlq.small");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic =
        NewTopic::new(&small, 1, TopicReplication::Fixed(1)).set("max.message.bytes", "2048");
    for result in admin(&stack)
        .create_topics([&topic], &options)
        .await
        .unwrap()
    {
        result.expect("the small dead-letter topic is created");
    }
    let before = stack.produce_bids(3, 1, "before").await;
    let poison = vec![b'x'; 10_000];
    produce_raw(&stack, &poison, OwnedHeaders::new()).await;
    let after = stack.produce_bids(3, 1, "after").await;
    let poison_offset = before.len() as i64;

    let group = unique("dlq-small");
    let mut settings = stack.settings("csv", &group);
    settings.kafka.dead_letter_topic = small.clone();
    let dir = tempfile::tempdir().unwrap();
    let sink = csv_sink(settings, &dir);

    wait_until(
        Duration::from_secs(60),
        "the sink says the dead letter is too large",
        || async { sink.reason().contains("larger than the topic accepts") },
    )
    .await;
    let reason = sink.reason();
    println!("not ready: {reason}");
    assert!(reason.contains(&small), "{reason}");
    assert!(
        reason.contains(&format!("offset {poison_offset}")),
        "{reason}"
    );
    // It keeps retrying without committing past the record.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!sink.readiness.get());
    let held = committed(&stack.broker.bootstrap, &group, &stack.topic, 1)[0];
    assert!(
        held.is_none_or(|offset| offset <= poison_offset),
        "committed {held:?}, not past the poison record at {poison_offset}"
    );
    assert_eq!(end_offsets(&stack.broker.bootstrap, &small, 1), vec![0]);
    assert_eq!(sink.progress.snapshot().dead_letters, 0);

    // The operator raises the topic's limit: the retry gets through and the partition moves on.
    let raised =
        AlterConfig::new(ResourceSpecifier::Topic(&small)).set("max.message.bytes", "1048588");
    for result in admin(&stack)
        .alter_configs([&raised], &options)
        .await
        .unwrap()
    {
        result.expect("the topic's limit is raised");
    }
    wait_until(
        Duration::from_secs(60),
        "the dead letter is written",
        || async { end_offsets(&stack.broker.bootstrap, &small, 1) == vec![1] },
    )
    .await;
    let end = end_offsets(&stack.broker.bootstrap, &stack.topic, 1)[0];
    wait_until(
        Duration::from_secs(30),
        "the partition is committed to its end",
        || async { committed(&stack.broker.bootstrap, &group, &stack.topic, 1)[0] == Some(end) },
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the sink is ready again",
        || async { sink.readiness.get() },
    )
    .await;
    assert_eq!(
        read_all(&stack.broker.bootstrap, &small)[0]
            .value
            .as_deref(),
        Some(&poison[..])
    );
    assert_eq!(
        csv_rows(&dir.path().join("output.csv")).len(),
        before.len() + after.len()
    );
    let summary = sink.stop().await;
    assert_eq!(summary.dead_letters, 1);
}
