//! A target that hangs without an error (a MariaDB table locked by another session): the sink
//! turns not ready once a batch has waited past `stuck_after`, ready again when the write goes
//! through; and a shutdown during such a write ends the sink within its close timeout, the batch
//! being written once after a restart.

use std::time::{Duration, Instant};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};

use crate::helpers::RunningSink;
use crate::helpers::{
    MYSQL_URL, Stack, assert_exactly_once, sql_rows, sql_target, unique, wait_until,
};

/// One MariaDB session (a pool of one connection), for `LOCK TABLES`.
async fn session() -> DatabaseConnection {
    let mut options = ConnectOptions::new(MYSQL_URL);
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    Database::connect(options).await.expect("MariaDB")
}

/// Rows of `table`, counted by the session that may hold its lock (0 before the sink has
/// created the table).
async fn count(session: &DatabaseConnection, table: &str) -> i64 {
    let counted = session
        .query_one(Statement::from_string(
            session.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM `{table}`"),
        ))
        .await;
    match counted {
        Ok(Some(row)) => row.try_get("", "n").expect("n"),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stalled_by_a_locked_table_makes_the_sink_not_ready_and_shutdown_does_not_wait_for_it()
 {
    let stack = Stack::start(1).await;
    let table = unique("bid_stall");
    let group = unique("stall");
    let settings = || {
        let mut settings = stack.settings("mysql", &group);
        settings.stuck_after = Duration::from_secs(2);
        settings.close_timeout = Duration::from_secs(3);
        settings
    };
    let mut bids = stack.produce_bids(50, 3, "first").await;
    let sink = RunningSink::spawn(settings(), sql_target(MYSQL_URL, &table).await);
    let lock = session().await;
    wait_until(
        Duration::from_secs(60),
        "the first bids are written",
        || async { count(&lock, &table).await == 50 },
    )
    .await;
    wait_until(Duration::from_secs(10), "the sink is ready", || async {
        sink.readiness.get()
    })
    .await;

    // Another session locks the table: the sink's insert waits, without an error.
    lock.execute_unprepared(&format!("LOCK TABLES `{table}` WRITE"))
        .await
        .expect("lock");
    bids.extend(stack.produce_bids(50, 3, "during-lock").await);
    wait_until(
        Duration::from_secs(30),
        "the sink reports itself stuck",
        || async { sink.reason().contains("stuck") },
    )
    .await;
    println!("not ready: {}", sink.reason());
    assert!(!sink.readiness.get());
    assert_eq!(count(&lock, &table).await, 50, "the write really stalled");
    lock.execute_unprepared("UNLOCK TABLES")
        .await
        .expect("unlock");
    wait_until(
        Duration::from_secs(30),
        "the stalled batch is written",
        || async { count(&lock, &table).await == 100 },
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the sink is ready again",
        || async { sink.readiness.get() },
    )
    .await;
    assert_eq!(sink.reason(), "");

    // Locked again, and the sink is told to stop while its write waits.
    lock.execute_unprepared(&format!("LOCK TABLES `{table}` WRITE"))
        .await
        .expect("lock");
    bids.extend(stack.produce_bids(50, 3, "at-shutdown").await);
    wait_until(
        Duration::from_secs(30),
        "the sink is stuck again",
        || async { sink.reason().contains("stuck") },
    )
    .await;
    let asked = Instant::now();
    sink.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(20), sink.handle)
        .await
        .expect("the sink stops while its write hangs")
        .unwrap()
        .expect("a clean stop");
    let took = asked.elapsed();
    println!("stopped {took:?} after shutdown with a write hanging: {stopped:?}");
    assert!(
        took < settings().close_timeout + Duration::from_secs(2),
        "within the close timeout: {took:?}"
    );
    assert_eq!(
        count(&lock, &table).await,
        100,
        "the abandoned batch was not written"
    );
    lock.execute_unprepared("UNLOCK TABLES")
        .await
        .expect("unlock");

    // A restart writes the abandoned batch, once.
    let sink = RunningSink::spawn(settings(), sql_target(MYSQL_URL, &table).await);
    wait_until(Duration::from_secs(60), "every bid is written", || async {
        count(&lock, &table).await == 150
    })
    .await;
    let rows = sql_rows(&sql_target(MYSQL_URL, &table).await).await;
    assert_eq!(rows.len(), bids.len());
    assert_exactly_once(&rows, &bids);
    sink.stop().await;
}
