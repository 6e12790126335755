//! Shared test set-up: unique names, bids, targets and their stored rows.

use std::path::PathBuf;

use auction_process::Secret;
use auction_schemas::{AuctionId, Bid, BidId, BidTimestamp, BidderName, Price};
use auction_sinks::destination::csv_file::{CsvDestination, CsvSettings};
use auction_sinks::destination::odbc::{Dialect, OdbcDestination, OdbcSettings};
use auction_sinks::destination::sql::{SqlDestination, SqlSettings, TableName};
use auction_sinks::{Destination, SinkRecord, SourcePosition, WriteOutcome};

/// MariaDB on the machine (see `.ci/test`).
pub(crate) const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// PostgreSQL through unixODBC and psqlODBC.
pub(crate) const ODBC_POSTGRES: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;";

/// A name no other test (or earlier run) uses.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A bid at `partition`/`offset` of topic `auction`.
pub(crate) fn record(name: &str, price: i64, partition: i32, offset: i64) -> SinkRecord {
    record_in("auction", "lot-1", name, price, partition, offset)
}

/// A bid with every field chosen.
pub(crate) fn record_in(
    topic: &str,
    auction: &str,
    name: &str,
    price: i64,
    partition: i32,
    offset: i64,
) -> SinkRecord {
    SinkRecord {
        bid: Bid {
            bid_id: BidId::new_random(),
            auction_id: AuctionId::parse(auction).unwrap(),
            name: BidderName::parse(name).unwrap(),
            price: Price::parse(price).unwrap(),
            bid_ts: BidTimestamp::parse("2026-11-23T10:15:30.123456Z").unwrap(),
        },
        position: SourcePosition {
            topic: topic.to_owned(),
            partition,
            offset,
        },
    }
}

/// One stored bid in the common shape of every target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Row {
    pub partition: i64,
    pub offset: i64,
    pub bid_id: String,
    pub auction_id: String,
    pub name: String,
    pub price: i64,
}

impl Row {
    pub(crate) fn of(record: &SinkRecord) -> Self {
        Self {
            partition: i64::from(record.position.partition),
            offset: record.position.offset,
            bid_id: record.bid.bid_id.to_string(),
            auction_id: record.bid.auction_id.as_str().to_owned(),
            name: record.bid.name.as_str().to_owned(),
            price: i64::from(record.bid.price.get()),
        }
    }
}

/// A target under test and a way to read back what it stored.
pub(crate) enum Harness {
    Sql(SqlDestination),
    Csv(
        CsvDestination,
        PathBuf,
        #[allow(dead_code)] tempfile::TempDir,
    ),
    Odbc(OdbcDestination),
}

impl Harness {
    pub(crate) async fn mysql(table: &str) -> Self {
        Self::Sql(sql_target(MYSQL_URL, table).await)
    }

    pub(crate) async fn sqlite(dir: &tempfile::TempDir) -> Self {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("bids.db").display());
        Self::Sql(sql_target(&url, "bid").await)
    }

    pub(crate) fn csv() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.csv");
        Self::Csv(
            CsvDestination::new(CsvSettings {
                path: path.clone(),
                rotate_daily: false,
            }),
            path,
            dir,
        )
    }

    pub(crate) fn odbc(table: &str) -> Self {
        Self::Odbc(odbc_target(table))
    }

    pub(crate) async fn write(&mut self, batch: &[SinkRecord]) -> WriteOutcome {
        match self {
            Self::Sql(t) => t.write(batch).await.unwrap(),
            Self::Csv(t, _, _) => t.write(batch).await.unwrap(),
            Self::Odbc(t) => t.write(batch).await.unwrap(),
        }
    }

    pub(crate) fn neutralises_formulas(&self) -> bool {
        matches!(self, Self::Csv(..))
    }

    pub(crate) async fn rows(&self) -> Vec<Row> {
        match self {
            Self::Sql(t) => sql_rows(t).await,
            Self::Csv(_, path, _) => csv_rows(path),
            Self::Odbc(t) => odbc_rows(t).await,
        }
    }
}

pub(crate) async fn sql_target(url: &str, table: &str) -> SqlDestination {
    let mut settings = SqlSettings::new(Secret::new(url));
    settings.table = TableName::parse(table).unwrap();
    SqlDestination::connect(&settings).await.unwrap()
}

pub(crate) fn odbc_target(table: &str) -> OdbcDestination {
    let mut settings = OdbcSettings::new(Secret::new(ODBC_POSTGRES), Dialect::Ansi);
    settings.table = TableName::parse(table).unwrap();
    OdbcDestination::new(settings).unwrap()
}

pub(crate) async fn sql_rows(target: &SqlDestination) -> Vec<Row> {
    let mut rows: Vec<Row> = target
        .stored_rows()
        .await
        .unwrap()
        .into_iter()
        .map(|r| Row {
            partition: i64::from(r.kafka_partition.unwrap_or(-1)),
            offset: r.kafka_offset.unwrap_or(-1),
            bid_id: r.bid_id,
            auction_id: r.auction_id,
            name: r.name,
            price: i64::from(r.price),
        })
        .collect();
    rows.sort();
    rows
}

pub(crate) async fn odbc_rows(target: &OdbcDestination) -> Vec<Row> {
    let mut rows: Vec<Row> = target
        .stored_rows()
        .await
        .unwrap()
        .into_iter()
        .map(|r| Row {
            partition: i64::from(r.kafka_partition),
            offset: r.kafka_offset,
            bid_id: r.bid_id,
            auction_id: r.auction_id,
            name: r.name,
            price: i64::from(r.price),
        })
        .collect();
    rows.sort();
    rows
}

/// The data rows of a CSV file (after its one header row), as the `csv` crate reads them.
pub(crate) fn csv_rows(path: &std::path::Path) -> Vec<Row> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        auction_sinks::destination::csv_file::HEADER
    );
    let mut rows: Vec<Row> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            Row {
                bid_id: r[0].to_owned(),
                auction_id: r[1].to_owned(),
                name: r[2].to_owned(),
                price: r[3].parse().unwrap(),
                partition: r[5].parse().unwrap(),
                offset: r[6].parse().unwrap(),
            }
        })
        .collect();
    rows.sort();
    rows
}

// ---- Kafka stacks for end-to-end tests ----

use std::future::Future;
use std::time::Duration;

use auction_process::KafkaProperties;
use auction_process::Readiness;
use auction_schema_registry as registry;
use auction_schemas::{BidEncoder, BidInput, RegistrySettings};
use auction_sinks::{KafkaSettings, Progress, RunSummary, RuntimeSettings, SinkError};
use auction_testkit::{Kafka, TestRegistry, demo_producer, demo_schema, python};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// An Apache Kafka broker, the product's registry with the bid schemas, a bid topic and a dead-letter
/// topic, all fresh.
pub(crate) struct Stack {
    pub broker: Kafka,
    pub registry: TestRegistry,
    pub topic: String,
    pub dead_letter_topic: String,
    pub schema_v1: u32,
}

impl Stack {
    pub(crate) async fn start(partitions: i32) -> Self {
        let broker = Kafka::start();
        let topic = unique("auction");
        let dead_letter_topic = format!("{topic}.dlq");
        broker.create_topic(&topic, partitions).await;
        broker.create_topic(&dead_letter_topic, 1).await;
        let registry = TestRegistry::start().await;
        let (schema_v1, _) =
            registry::preload_bid_schemas(&registry.store, &format!("{topic}-value")).unwrap();
        Self {
            broker,
            registry,
            topic,
            dead_letter_topic,
            schema_v1,
        }
    }

    pub(crate) fn settings(&self, kind: &str, group: &str) -> RuntimeSettings {
        let mut kafka =
            KafkaSettings::new(KafkaProperties::bootstrap(&self.broker.bootstrap), kind);
        kafka.topic = self.topic.clone();
        kafka.group_id = group.to_owned();
        kafka.dead_letter_topic = self.dead_letter_topic.clone();
        let mut settings = RuntimeSettings::new(kafka, RegistrySettings::new(&self.registry.url));
        settings.batch_linger = Duration::from_millis(50);
        settings.retry_initial = Duration::from_millis(50);
        settings.retry_max = Duration::from_millis(500);
        settings.close_timeout = Duration::from_secs(5);
        settings
    }

    pub(crate) fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.broker.bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()
            .unwrap()
    }

    /// Produces `count` bids as the bid service does (v2, `BidEncoder`, idempotent producer,
    /// key = auction id) over `auctions` auctions; returns them.
    pub(crate) async fn produce_bids(
        &self,
        count: usize,
        auctions: usize,
        prefix: &str,
    ) -> Vec<Bid> {
        let encoder =
            BidEncoder::new(&RegistrySettings::new(&self.registry.url), &self.topic).unwrap();
        let producer = self.producer();
        let mut bids = Vec::with_capacity(count);
        let mut deliveries = Vec::with_capacity(count);
        for i in 0..count {
            let auction = format!("lot-{}", i % auctions.max(1));
            let name = format!("{prefix} {i}");
            let input = BidInput {
                auction_id: Some(&auction),
                name: &name,
                price: 1 + i as i64,
            };
            let bid = Bid::new(&input, BidId::new_random()).unwrap();
            let value = encoder.encode(&bid).await.unwrap();
            let delivery = producer
                .send_result(FutureRecord::to(&self.topic).key(&auction).payload(&value))
                .map_err(|(e, _)| e)
                .unwrap();
            deliveries.push(delivery);
            bids.push(bid);
        }
        for delivery in deliveries {
            delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
        bids
    }

    /// Produces `count` bids with the original demo's Python producer (JSONSerializer, v1).
    pub(crate) async fn produce_demo_bids(&self, count: usize, prefix: &str) {
        let bids = (0..count).map(|i| format!("{prefix} {i}:{}", 100 + i));
        let output = tokio::process::Command::new(python())
            .arg(demo_producer())
            .args([
                self.broker.bootstrap.as_str(),
                self.registry.url.as_str(),
                self.topic.as_str(),
            ])
            .arg(demo_schema())
            .args(bids)
            .output()
            .await
            .expect("cannot run the test virtualenv's python");
        assert!(
            output.status.success(),
            "the demo producer failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            count.to_string()
        );
    }
}

/// A sink running in this process, watched from the outside: its readiness, why it is not
/// ready, what it has done.
pub(crate) struct RunningSink {
    pub shutdown: CancellationToken,
    pub readiness: Readiness,
    /// What it has done so far.
    pub progress: Progress,
    pub handle: JoinHandle<Result<RunSummary, SinkError>>,
}

impl RunningSink {
    pub(crate) fn spawn<T: Destination>(settings: RuntimeSettings, target: T) -> Self {
        auction_process::init_logging(false);
        let shutdown = CancellationToken::new();
        let readiness = Readiness::default();
        let progress = Progress::default();
        let handle = tokio::spawn(auction_sinks::run(
            settings,
            target,
            readiness.clone(),
            progress.clone(),
            shutdown.clone(),
        ));
        Self {
            shutdown,
            readiness,
            progress,
            handle,
        }
    }

    /// Why it is not ready, or "" when nothing holds it up.
    pub(crate) fn reason(&self) -> String {
        self.progress.not_ready_reason().unwrap_or_default()
    }

    /// Stops it as SIGTERM would and returns what it did (20 s at most).
    pub(crate) async fn stop(self) -> RunSummary {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("the sink stops within 20 s")
            .expect("the sink task")
            .expect("the sink ran without an error")
    }
}

/// Polls `check` until it returns true, failing after `within` with `what`.
pub(crate) async fn wait_until<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that `rows` hold every bid of `bids` exactly once.
pub(crate) fn assert_exactly_once(rows: &[Row], bids: &[Bid]) {
    let mut ids: Vec<&str> = rows.iter().map(|r| r.bid_id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "a bid was written twice");
    for bid in bids {
        assert!(
            ids.binary_search(&bid.bid_id.to_string().as_str()).is_ok(),
            "bid {} ({}) is missing",
            bid.bid_id,
            bid.name
        );
    }
}
