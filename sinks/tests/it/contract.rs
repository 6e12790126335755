//! One contract, run against every target: a batch lands exactly once, a redelivered batch
//! changes nothing, and hostile names round-trip literally (CSV: formulas neutralised).

use auction_schemas::BidderName;
use auction_sinks::destination::csv_file::neutralise;

use crate::helpers::{Harness, Row, record, record_in, unique};

/// Names that break naive SQL, CSV or spreadsheets.
const HOSTILE_NAMES: [&str; 9] = [
    "O'Brien \"the hammer\"",
    "Smith, John",
    "Zoë 🦀 李小龍",
    "'); DROP TABLE bid;--",
    "=HYPERLINK(\"http://evil.example\",\"click\")",
    "+SUM(1,2)",
    "-1+1",
    "@cmd",
    "back\\slash %s %% _",
];

async fn contract(mut target: Harness) {
    // A newline cannot be in a bid at all (the bid rules refuse control characters), so it can
    // only reach a sink as a dead letter; see end_to_end::poison_messages_go_to_the_dead_letter_topic.
    assert!(BidderName::parse("two\nlines").is_err());

    let mut batch: Vec<_> = HOSTILE_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| record(name, 10 + i as i64, (i % 3) as i32, i as i64))
        .collect();
    batch.push(record(&"é".repeat(100), i64::from(i32::MAX), 0, 100));
    batch.push(record_in("auction", "-lot", "Ada", 1, 1, 101));

    let outcome = target.write(&batch).await;
    assert_eq!((outcome.written, outcome.duplicates), (batch.len(), 0));

    let expected: Vec<Row> = {
        let mut rows: Vec<Row> = batch.iter().map(Row::of).collect();
        if target.neutralises_formulas() {
            for row in &mut rows {
                row.name = neutralise(&row.name).into_owned();
                row.auction_id = neutralise(&row.auction_id).into_owned();
            }
        }
        rows.sort();
        rows
    };
    let stored = target.rows().await;
    assert_eq!(stored, expected, "the first batch lands exactly once");
    if target.neutralises_formulas() {
        assert!(stored.iter().any(|r| r.name.starts_with("'=HYPERLINK(")));
    } else {
        assert!(stored.iter().any(|r| r.name == "'); DROP TABLE bid;--"));
    }

    // The same batch again (a redelivery after a crash before the offsets were committed).
    let again = target.write(&batch).await;
    assert_eq!((again.written, again.duplicates), (0, batch.len()));
    assert_eq!(
        target.rows().await,
        expected,
        "a redelivered batch changes nothing"
    );

    // A batch that overlaps the last one: only the new records land.
    let mut overlapping = batch[batch.len() - 3..].to_vec();
    let fresh = [record("Grace", 5, 2, 200), record("Linus", 6, 0, 201)];
    overlapping.extend(fresh.iter().cloned());
    let outcome = target.write(&overlapping).await;
    assert_eq!((outcome.written, outcome.duplicates), (2, 3));
    let stored = target.rows().await;
    assert_eq!(stored.len(), batch.len() + 2);
    for record in &fresh {
        assert_eq!(
            stored
                .iter()
                .filter(|r| r.bid_id == record.bid.bid_id.to_string())
                .count(),
            1
        );
    }

    // An empty batch is a no-op.
    assert_eq!(target.write(&[]).await.written, 0);
}

#[tokio::test]
async fn contract_mysql() {
    contract(Harness::mysql(&unique("bid_contract")).await).await;
}

#[tokio::test]
async fn contract_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    contract(Harness::sqlite(&dir).await).await;
}

#[tokio::test]
async fn contract_csv() {
    contract(Harness::csv()).await;
}

#[tokio::test]
async fn contract_odbc_postgres() {
    contract(Harness::odbc(&unique("bid_contract"))).await;
}
