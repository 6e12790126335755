//! The migration upgrades the demo's table in place without losing rows, and is idempotent.

use auction_sinks::Destination;
use auction_sinks::destination::sql::Migration;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{MYSQL_URL, record, sql_rows, sql_target, unique};

async fn demo_table_is_upgraded(url: &str, table: &str, create: &str, now: &str) {
    let mut target = sql_target(url, table).await;
    let db = target.connection().clone();
    let backend = db.get_database_backend();
    db.execute(Statement::from_string(backend, create.to_owned()))
        .await
        .unwrap();
    for (name, price) in [("alice", 10), ("bob", 20)] {
        db.execute(Statement::from_string(
            backend,
            format!("INSERT INTO {table} (name, price, bid_ts) VALUES ('{name}', {price}, {now})"),
        ))
        .await
        .unwrap();
    }

    assert_eq!(target.migrate().await.unwrap(), Migration::Upgraded);
    assert_eq!(target.migrate().await.unwrap(), Migration::UpToDate);

    let rows = sql_rows(&target).await;
    assert_eq!(rows.len(), 2, "the demo's rows are kept");
    for row in &rows {
        assert_eq!(row.auction_id, "default");
        assert_eq!(row.bid_id.len(), 36, "each old row got a bid id: {row:?}");
    }
    assert_ne!(rows[0].bid_id, rows[1].bid_id);

    let batch = [record("carol", 30, 0, 0)];
    assert_eq!(target.write(&batch).await.unwrap().written, 1);
    assert_eq!(target.write(&batch).await.unwrap().duplicates, 1);
    let rows = sql_rows(&target).await;
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().any(|r| r.name == "alice" && r.price == 10));
    assert!(rows.iter().any(|r| r.name == "carol" && r.offset == 0));
}

#[tokio::test]
async fn mysql_upgrades_the_demo_table_in_place() {
    let table = unique("bid_demo");
    let create = format!("CREATE TABLE {table} (name VARCHAR(100), price INT, bid_ts DATETIME)");
    demo_table_is_upgraded(MYSQL_URL, &table, &create, "NOW()").await;
}

#[tokio::test]
async fn sqlite_upgrades_the_demo_table_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display());
    let create = "CREATE TABLE bid (name VARCHAR(100), price INT, bid_ts DATETIME)";
    demo_table_is_upgraded(&url, "bid", create, "'2026-11-23 10:00:00'").await;
}

#[tokio::test]
async fn two_instances_migrating_at_once_both_succeed() {
    let table = unique("bid_race");
    let mut a = sql_target(MYSQL_URL, &table).await;
    let mut b = sql_target(MYSQL_URL, &table).await;
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
}
