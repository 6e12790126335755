//! Shared test set-up: unique names, bids, targets and their stored rows.

use std::path::PathBuf;

use auction_schemas::{AuctionId, Bid, BidId, BidTimestamp, BidderName, Price, Secret};
use auction_sinks::target::csv_file::{CsvSettings, CsvTarget};
use auction_sinks::target::odbc::{Dialect, OdbcSettings, OdbcTarget};
use auction_sinks::target::sql::{SqlSettings, SqlTarget, TableName};
use auction_sinks::{SinkRecord, SourcePosition, Target, WriteOutcome};

/// MariaDB on the machine (see `.ci/test`).
pub const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// PostgreSQL through unixODBC and psqlODBC.
pub const ODBC_POSTGRES: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;";

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// A bid at `partition`/`offset` of topic `auction`.
pub fn record(name: &str, price: i64, partition: i32, offset: i64) -> SinkRecord {
    record_in("auction", "lot-1", name, price, partition, offset)
}

/// A bid with every field chosen.
pub fn record_in(
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
pub struct Row {
    pub partition: i64,
    pub offset: i64,
    pub bid_id: String,
    pub auction_id: String,
    pub name: String,
    pub price: i64,
}

impl Row {
    pub fn of(record: &SinkRecord) -> Self {
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
pub enum Harness {
    Sql(SqlTarget),
    Csv(CsvTarget, PathBuf, #[allow(dead_code)] tempfile::TempDir),
    Odbc(OdbcTarget),
}

impl Harness {
    pub async fn mysql(table: &str) -> Self {
        Self::Sql(sql_target(MYSQL_URL, table).await)
    }

    pub async fn sqlite(dir: &tempfile::TempDir) -> Self {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("bids.db").display());
        Self::Sql(sql_target(&url, "bid").await)
    }

    pub fn csv() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.csv");
        Self::Csv(
            CsvTarget::new(CsvSettings {
                path: path.clone(),
                rotate_daily: false,
            }),
            path,
            dir,
        )
    }

    pub fn odbc(table: &str) -> Self {
        Self::Odbc(odbc_target(table))
    }

    pub async fn write(&mut self, batch: &[SinkRecord]) -> WriteOutcome {
        match self {
            Self::Sql(t) => t.write(batch).await.unwrap(),
            Self::Csv(t, _, _) => t.write(batch).await.unwrap(),
            Self::Odbc(t) => t.write(batch).await.unwrap(),
        }
    }

    pub fn neutralises_formulas(&self) -> bool {
        matches!(self, Self::Csv(..))
    }

    pub async fn rows(&self) -> Vec<Row> {
        match self {
            Self::Sql(t) => sql_rows(t).await,
            Self::Csv(_, path, _) => csv_rows(path),
            Self::Odbc(t) => odbc_rows(t).await,
        }
    }
}

pub async fn sql_target(url: &str, table: &str) -> SqlTarget {
    let mut settings = SqlSettings::new(Secret::new(url));
    settings.table = TableName::parse(table).unwrap();
    SqlTarget::connect(&settings).await.unwrap()
}

pub fn odbc_target(table: &str) -> OdbcTarget {
    OdbcTarget::new(OdbcSettings {
        connection_string: Secret::new(ODBC_POSTGRES),
        table: TableName::parse(table).unwrap(),
        dialect: Dialect::Ansi,
    })
    .unwrap()
}

pub async fn sql_rows(target: &SqlTarget) -> Vec<Row> {
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

pub async fn odbc_rows(target: &OdbcTarget) -> Vec<Row> {
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
pub fn csv_rows(path: &std::path::Path) -> Vec<Row> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let header = reader.headers().unwrap().clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        auction_sinks::target::csv_file::HEADER
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
