//! Closed auctions' results, as the bid service writes them to the results topic, land in the
//! MySQL sink's results table and the CSV sink's results file once each, also when a result is
//! delivered twice; a record that is not a result becomes a dead letter.

use std::time::Duration;

use auction_process::Secret;
use auction_schemas::RecordCodec;
use auction_schemas::result::AuctionResult;
use auction_sinks::destination::csv_file::{CsvDestination, CsvSettings};
use auction_sinks::destination::results_csv::results_path_beside;
use auction_sinks::destination::sql::{SqlDestination, SqlSettings, TableName};
use rdkafka::producer::FutureRecord;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{MYSQL_URL, RunningSink, Stack, unique, wait_until};

fn result(auction: &str, winner: Option<(&str, i64)>) -> AuctionResult {
    AuctionResult {
        auction_id: auction.to_owned(),
        title: format!("Lot {auction}, \"boxed\""),
        seller: "Sam".to_owned(),
        sold: winner.is_some(),
        winner: winner.map(|(name, _)| name.to_owned()),
        final_price: winner.map(|(_, price)| price),
        winning_bid_id: winner.map(|_| uuid::Uuid::new_v4()),
        bid_count: 3,
        closed_at: "2026-11-30T16:00:00.250Z".to_owned(),
    }
}

#[tokio::test]
async fn results_land_once_in_the_results_table_and_the_results_file() {
    let stack = Stack::start(3).await;
    let results_topic = format!("{}.results", stack.topic);
    stack.broker.create_topic(&results_topic, 3).await;
    let codec = RecordCodec::results(
        &auction_schemas::RegistrySettings::new(&stack.registry.url),
        &results_topic,
    )
    .unwrap();
    codec.prepare(true).await.unwrap();
    let producer = stack.producer();
    let sold = result("lot-sold", Some(("Ada", 41)));
    let unsold = result("lot-unsold", None);
    // The sold auction's result twice (a redelivery), and one record that is not a result.
    for (key, value) in [
        ("lot-sold", codec.encode(&sold)),
        ("lot-unsold", codec.encode(&unsold)),
        ("lot-sold", codec.encode(&sold)),
        ("poison", b"not a framed result".to_vec()),
    ] {
        producer
            .send(
                FutureRecord::to(&results_topic).key(key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let bids_table = unique("bid_res");
    let results_table = unique("result");
    let mut sql = SqlSettings::new(Secret::new(MYSQL_URL));
    sql.table = TableName::parse(&bids_table).unwrap();
    sql.results_table = Some(TableName::parse(&results_table).unwrap());
    let mysql = RunningSink::spawn(
        stack.settings("mysql", &unique("res-mysql")),
        SqlDestination::connect(&sql).await.unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("output.csv");
    let csv = RunningSink::spawn(
        stack.settings("csv", &unique("res-csv")),
        CsvDestination::new(CsvSettings {
            path: csv_path.clone(),
            rotate_daily: false,
        }),
    );

    let reader = SqlDestination::connect(&sql).await.unwrap();
    let rows = || async {
        reader
            .connection()
            .query_all(Statement::from_string(
                sea_orm::DbBackend::MySql,
                format!(
                    "SELECT auction_id, title, sold, winner, final_price FROM `{results_table}` \
                     ORDER BY auction_id"
                ),
            ))
            .await
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        (
                            row.try_get::<String>("", "auction_id").unwrap(),
                            row.try_get::<String>("", "title").unwrap(),
                            row.try_get::<bool>("", "sold").unwrap(),
                            row.try_get::<Option<String>>("", "winner").unwrap(),
                            row.try_get::<Option<i32>>("", "final_price").unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let within = Duration::from_secs(60);
    wait_until(within, "MySQL has both results", || async {
        rows().await.len() >= 2
    })
    .await;
    let results_file = results_path_beside(&csv_path);
    wait_until(within, "the CSV results file has both results", || async {
        std::fs::read_to_string(&results_file).is_ok_and(|t| t.lines().count() >= 3)
    })
    .await;
    // The poison record's dead letter may still be on its way; a stop now would abandon it.
    wait_until(
        within,
        "both sinks sent the poison record's dead letter",
        || async {
            mysql.progress.snapshot().dead_letters >= 1 && csv.progress.snapshot().dead_letters >= 1
        },
    )
    .await;
    let mysql_summary = mysql.stop().await;
    let csv_summary = csv.stop().await;

    assert_eq!(
        rows().await,
        vec![
            (
                "lot-sold".to_owned(),
                "Lot lot-sold, \"boxed\"".to_owned(),
                true,
                Some("Ada".to_owned()),
                Some(41)
            ),
            (
                "lot-unsold".to_owned(),
                "Lot lot-unsold, \"boxed\"".to_owned(),
                false,
                None,
                None
            ),
        ],
        "one row per auction"
    );
    let text = std::fs::read_to_string(&results_file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and one line per auction:\n{text}");
    assert!(lines[1].starts_with("lot-sold,\"Lot lot-sold, \"\"boxed\"\"\",Sam,true,Ada,41,"));
    assert!(lines[2].starts_with("lot-unsold,\"Lot lot-unsold, \"\"boxed\"\"\",Sam,false,,,"));
    for summary in [mysql_summary, csv_summary] {
        assert_eq!(summary.dead_letters, 1, "the poison record: {summary:?}");
    }
}
