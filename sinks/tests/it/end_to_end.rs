//! End to end against Apache Kafka: bids from the bid service's path and from the original demo's
//! Python producer land in every target exactly once; poison records become dead letters.

use std::collections::HashMap;
use std::time::Duration;

use auction_schemas::wire;
use auction_sinks::dead_letter_headers as dlq;
use auction_sinks::destination::csv_file::{CsvDestination, CsvSettings};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::helpers::{
    MYSQL_URL, RunningSink, Stack, assert_exactly_once, csv_rows, odbc_rows, odbc_target, sql_rows,
    sql_target, unique, wait_until,
};

#[tokio::test]
async fn bids_from_the_bid_service_and_the_demo_producer_land_once_in_every_target() {
    let stack = Stack::start(3).await;
    let bids = stack.produce_bids(300, 7, "service").await;
    stack.produce_demo_bids(40, "demo").await;
    let total = bids.len() + 40;

    let table = unique("bid_e2e");
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("output.csv");
    let mysql = RunningSink::spawn(
        stack.settings("mysql", "e2e-mysql"),
        sql_target(MYSQL_URL, &table).await,
    );
    let csv = RunningSink::spawn(
        stack.settings("csv", "e2e-csv"),
        CsvDestination::new(CsvSettings {
            path: csv_path.clone(),
            rotate_daily: false,
        }),
    );
    let odbc = RunningSink::spawn(stack.settings("odbc", "e2e-odbc"), odbc_target(&table));

    let mysql_reader = sql_target(MYSQL_URL, &table).await;
    let odbc_reader = odbc_target(&table);
    let within = Duration::from_secs(60);
    wait_until(within, "MySQL has every bid", || async {
        mysql_reader
            .stored_rows()
            .await
            .map(|r| r.len())
            .unwrap_or(0)
            >= total
    })
    .await;
    wait_until(within, "the CSV file has every bid", || async {
        csv_rows(&csv_path).len() >= total
    })
    .await;
    wait_until(within, "PostgreSQL has every bid", || async {
        odbc_reader
            .stored_rows()
            .await
            .map(|r| r.len())
            .unwrap_or(0)
            >= total
    })
    .await;

    for (target, rows) in [
        ("mysql", sql_rows(&mysql_reader).await),
        ("csv", csv_rows(&csv_path)),
        ("odbc", odbc_rows(&odbc_reader).await),
    ] {
        assert_eq!(rows.len(), total, "{target}");
        assert_exactly_once(&rows, &bids);
        for i in 0..40 {
            let name = format!("demo {i}");
            let demo: Vec<_> = rows.iter().filter(|r| r.name == name).collect();
            assert_eq!(demo.len(), 1, "{target}: {name}");
            assert_eq!(demo[0].auction_id, "default", "{target}");
            assert_eq!(demo[0].price, 100 + i, "{target}");
        }
    }
    for sink in [mysql, csv, odbc] {
        let summary = sink.stop().await;
        assert_eq!(summary.written, total);
        assert_eq!(summary.dead_letters, 0);
    }
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_topic_and_the_rest_keep_flowing() {
    let stack = Stack::start(1).await;
    let before = stack.produce_bids(5, 1, "before").await;

    let v1 = stack.schema_v1;
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("bad_magic_byte", b"hello, not framed".to_vec()),
        (
            "unknown_schema_id",
            wire::frame(
                9_999,
                br#"{"name":"x","price":1,"bid_ts":"2026-11-23 10:00:00"}"#,
            ),
        ),
        ("invalid_json", wire::frame(v1, b"{not json")),
        (
            "schema_violation",
            wire::frame(
                v1,
                br#"{"name":"x","price":"ten","bid_ts":"2026-11-23 10:00:00"}"#,
            ),
        ),
        (
            "invalid_bid",
            wire::frame(
                v1,
                b"{\"name\":\"two\\nlines\",\"price\":5,\"bid_ts\":\"2026-11-23 10:00:00\"}",
            ),
        ),
        (
            "invalid_bid",
            wire::frame(
                v1,
                br#"{"name":"zero","price":0,"bid_ts":"2026-11-23 10:00:00"}"#,
            ),
        ),
    ];
    let producer = stack.producer();
    let mut offsets = Vec::new();
    for (i, (_, value)) in poison.iter().enumerate() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "trace-id",
            value: Some(format!("t-{i}").as_str()),
        });
        let delivered = producer
            .send(
                FutureRecord::to(&stack.topic)
                    .key("poison")
                    .payload(value.as_slice())
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        offsets.push(delivered.offset);
    }
    let after = stack.produce_bids(5, 1, "after").await;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bids.db").display());
    // An unknown schema id is waited for by default (an empty or wrong registry must not
    // drain the topic, see registry_outage.rs); this registry is the right one, so such a
    // record is a dead letter here.
    let mut settings = stack.settings("sqlite", "poison");
    settings.dead_letter_unknown_schema_ids = true;
    let sink = RunningSink::spawn(settings, sql_target(&url, "bid").await);
    let reader = sql_target(&url, "bid").await;
    wait_until(Duration::from_secs(60), "the valid bids landed", || async {
        reader.stored_rows().await.map(|r| r.len()).unwrap_or(0) >= 10
    })
    .await;
    let rows = sql_rows(&reader).await;
    assert_eq!(rows.len(), 10);
    assert_exactly_once(&rows, &[before, after].concat());

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.broker.bootstrap)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer
        .subscribe(&[stack.dead_letter_topic.as_str()])
        .unwrap();
    for (i, (kind, value)) in poison.iter().enumerate() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a dead letter within 30 s")
            .unwrap();
        let headers: HashMap<String, String> = message
            .headers()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert_eq!(message.payload(), Some(value.as_slice()), "original bytes");
        assert_eq!(message.key(), Some(b"poison".as_slice()), "original key");
        assert_eq!(headers["trace-id"], format!("t-{i}"), "original headers");
        assert_eq!(
            headers[dlq::SINK],
            "sqlite",
            "the SQL sink names its kind by the URL"
        );
        assert_eq!(headers[dlq::GROUP], "poison");
        assert_eq!(headers[dlq::ERROR_KIND], *kind);
        assert!(!headers[dlq::ERROR_MESSAGE].is_empty());
        assert_eq!(headers[dlq::SOURCE_TOPIC], stack.topic);
        assert_eq!(headers[dlq::SOURCE_PARTITION], "0");
        assert_eq!(headers[dlq::SOURCE_OFFSET], offsets[i].to_string());
    }
    let summary = sink.stop().await;
    assert_eq!(summary.dead_letters, poison.len());
    assert_eq!(summary.written, 10);
}
