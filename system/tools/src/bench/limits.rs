//! 5's limits: each sink's target measured on its own with the same rows (multi-row inserts
//! through one MariaDB connection, psqlODBC array inserts, plain buffered file writes), and the
//! original demo's MySQL writer (one insert, one commit a row).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auction_process::Secret;
use auction_schemas::Bid;
use auction_sinks::destination::odbc::Dialect;
use auction_sinks::destination::sql::{SqlDestination, SqlSettings, TableName};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};

use super::kafka_baseline::Prefill;
use super::report::rate;
use super::{Bench, Outcome};

/// A target's own limit, shown beside its sink.
#[derive(Debug)]
pub(super) struct Limit {
    /// What was measured.
    pub(super) name: &'static str,
    /// How long it took to write every bid.
    pub(super) seconds: f64,
    /// More about it (`limit_extra` in the results), or null.
    pub(super) extra: Value,
}

/// The own limit of sink `kind`'s target (`mysql`, `csv`, `odbc`) with the pre-filled bids, in a
/// table `bench_limit_STAMP` or in `work_dir`; `batch_size` is the sink's.
pub(super) async fn of_target(
    bench: &Bench,
    db: &DatabaseConnection,
    prefill: &Prefill,
    work_dir: &Path,
    kind: &str,
    batch_size: usize,
) -> Outcome<Limit> {
    match kind {
        "mysql" => {
            let table = bench.table_name("limit");
            let seconds = mysql_limit(
                db,
                &bench.args.database_url,
                &table,
                &prefill.log_ordered_bids,
                bench.sizes.partitions,
            )
            .await;
            mysql_drop(db, &table).await;
            Ok(Limit {
                name: "1,000-row idempotent multi-row INSERT, one connection",
                seconds: seconds?,
                extra: Value::Null,
            })
        }
        "csv" => {
            let (dir, bids) = (work_dir.to_path_buf(), Arc::clone(&prefill.bids));
            let (plain, synced) =
                tokio::task::spawn_blocking(move || csv_limit(&dir, &bids, batch_size))
                    .await
                    .map_err(|e| format!("the CSV limit task failed: {e}"))??;
            Ok(Limit {
                name: "plain buffered writes (64 KiB buffer), one fsync at the end",
                seconds: plain,
                extra: json!({
                    "fsync_every_batch_rows_per_s": rate(bench.sizes.bids, synced),
                    "batch_rows": batch_size,
                }),
            })
        }
        _ => {
            let (connection, table, bids, partitions) = (
                bench.args.odbc_connection_string.clone(),
                bench.table_name("limit"),
                Arc::clone(&prefill.log_ordered_bids),
                bench.sizes.partitions,
            );
            let seconds = tokio::task::spawn_blocking(move || {
                odbc_limit(&connection, &table, &bids, partitions)
            })
            .await
            .map_err(|e| format!("the ODBC limit task failed: {e}"))?;
            if seconds.is_err() {
                odbc_drop_in_task(
                    bench.args.odbc_connection_string.clone(),
                    bench.table_name("limit"),
                )
                .await;
            }
            Ok(Limit {
                name: "psqlODBC parameter-array INSERT, 1,000 rows per transaction",
                seconds: seconds?,
                extra: Value::Null,
            })
        }
    }
}

/// Drops `table` from MariaDB, if it is there; a failure is ignored.
pub(super) async fn mysql_drop(db: &DatabaseConnection, table: &str) {
    let _ = mysql_exec(db, &format!("DROP TABLE IF EXISTS {table}")).await;
}

/// Drops `table` through ODBC in a blocking task, if it is there; a failure is ignored.
pub(super) async fn odbc_drop_in_task(connection_string: String, table: String) {
    let _ = tokio::task::spawn_blocking(move || odbc_drop(&connection_string, &table)).await;
}

/// One connection to MariaDB at `url`.
pub(super) async fn mysql_connect(url: &str) -> Outcome<DatabaseConnection> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10));
    sea_orm::Database::connect(options)
        .await
        .map_err(|e| format!("cannot connect to MariaDB: {e}"))
}

/// Runs `sql` on MariaDB.
async fn mysql_exec(db: &DatabaseConnection, sql: &str) -> Outcome<()> {
    db.execute(Statement::from_string(DbBackend::MySql, sql.to_owned()))
        .await
        .map(|_| ())
        .map_err(|e| format!("MariaDB: {sql}: {e}"))
}

/// Creates the bid table `table` at `url` exactly as the MySQL sink does (its own migration),
/// so that the limits are measured on the sink's table.
pub(super) async fn mysql_create_bid_table(url: &str, table: &str) -> Outcome<()> {
    let mut sql = SqlSettings::new(Secret::new(url));
    sql.table = TableName::parse(table)?;
    let mut destination = SqlDestination::connect(&sql)
        .await
        .map_err(|e| e.to_string())?;
    destination.migrate().await.map_err(|e| e.to_string())?;
    let _ = destination.connection().clone().close().await;
    Ok(())
}

/// The original demo's MySQL writer: one single-row INSERT per bid, each its own transaction
/// (autocommit), through one connection. Returns rows/s.
pub(super) async fn demo_mysql_writer(
    db: &DatabaseConnection,
    url: &str,
    table: &str,
    bids: &[Bid],
) -> Outcome<f64> {
    mysql_create_bid_table(url, table).await?;
    let started = Instant::now();
    for (i, bid) in bids.iter().enumerate() {
        let values: Vec<sea_orm::Value> = vec![
            bid.name.as_str().into(),
            bid.price.get().into(),
            bid.bid_ts.get().naive_utc().into(),
            bid.bid_id.to_string().into(),
            bid.auction_id.as_str().into(),
            0i32.into(),
            (i as i64).into(),
        ];
        db.execute(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "INSERT INTO {table} (name, price, bid_ts, bid_id, auction_id, kafka_partition, kafka_offset) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            values,
        ))
        .await
        .map_err(|e| format!("the demo writer's insert: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    mysql_drop(db, table).await;
    Ok(rate(bids.len() as u64, seconds))
}

/// MariaDB's own limit: the same rows as 1,000-row idempotent multi-row inserts (the sink's
/// statement shape) through one connection, into a table shaped like the sink's. Returns seconds.
async fn mysql_limit(
    db: &DatabaseConnection,
    url: &str,
    table: &str,
    bids: &[Bid],
    partitions: i32,
) -> Outcome<f64> {
    mysql_create_bid_table(url, table).await?;
    let started = Instant::now();
    for (c, chunk) in bids.chunks(1000).enumerate() {
        let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO {table} (name, price, bid_ts, bid_id, auction_id, kafka_partition, kafka_offset) \
             VALUES {placeholders} ON DUPLICATE KEY UPDATE bid_id = bid_id"
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 7);
        for (j, bid) in chunk.iter().enumerate() {
            let i = (c * 1000 + j) as i64;
            values.push(bid.name.as_str().into());
            values.push(bid.price.get().into());
            values.push(bid.bid_ts.get().naive_utc().into());
            values.push(bid.bid_id.to_string().into());
            values.push(bid.auction_id.as_str().into());
            values.push(((i % i64::from(partitions)) as i32).into());
            values.push((i / i64::from(partitions)).into());
        }
        db.execute(Statement::from_sql_and_values(
            DbBackend::MySql,
            sql,
            values,
        ))
        .await
        .map_err(|e| format!("MariaDB limit insert: {e}"))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Says which ODBC step failed.
fn odbc_error(context: &'static str) -> impl Fn(odbc_api::Error) -> String {
    move |e| format!("ODBC: {context}: {e}")
}

/// psqlODBC's own limit: the same rows as 1,000-row parameter-array inserts, one transaction
/// each, through one connection.
fn odbc_limit(connection_string: &str, table: &str, bids: &[Bid], partitions: i32) -> Outcome<f64> {
    use odbc_api::ConnectionOptions;
    let environment = odbc_api::environment().map_err(odbc_error("cannot set up ODBC"))?;
    let connection = environment
        .connect_with_connection_string(
            connection_string,
            ConnectionOptions {
                login_timeout_sec: Some(5),
                ..ConnectionOptions::default()
            },
        )
        .map_err(odbc_error("cannot connect"))?;
    connection
        .execute(
            &auction_sinks::destination::odbc::create_table_sql(
                Dialect::Ansi,
                &TableName::parse(table)?,
            ),
            (),
            None,
        )
        .map_err(odbc_error("cannot create the table"))?;
    connection
        .set_autocommit(false)
        .map_err(odbc_error("cannot start manual commit mode"))?;
    // The sink's own statement and parameter layout, so the limit is measured on the same shape.
    let table_name = auction_sinks::destination::sql::TableName::parse(table)?;
    let sql = auction_sinks::destination::odbc::insert_sql(
        auction_sinks::destination::odbc::Dialect::Ansi,
        &table_name,
        1,
    );
    let started = Instant::now();
    let mismatch = || "ODBC: unexpected parameter buffer type".to_owned();
    for (c, chunk) in bids.chunks(1000).enumerate() {
        let prepared = connection
            .prepare(&sql)
            .map_err(odbc_error("cannot prepare the insert"))?;
        let mut inserter = prepared
            .into_column_inserter(
                chunk.len(),
                auction_sinks::destination::odbc::bid_parameters(),
            )
            .map_err(odbc_error("cannot bind parameter arrays"))?;
        inserter.set_num_rows(chunk.len());
        let rows: Vec<(&Bid, i32, i64)> = chunk
            .iter()
            .enumerate()
            .map(|(i, bid)| {
                let n = (c * 1000 + i) as i64;
                let partitions = i64::from(partitions);
                (bid, (n % partitions) as i32, n / partitions)
            })
            .collect();
        if !auction_sinks::destination::odbc::fill_bid_columns(&mut inserter, &rows) {
            return Err(mismatch());
        }
        inserter.execute().map_err(odbc_error("cannot insert"))?;
        connection.commit().map_err(odbc_error("cannot commit"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = connection.execute(&format!("DROP TABLE {table}"), (), None);
    let _ = connection.commit();
    Ok(seconds)
}

/// Drops `table` through ODBC, if it is there.
fn odbc_drop(connection_string: &str, table: &str) {
    if let Ok(environment) = odbc_api::environment()
        && let Ok(connection) = environment.connect_with_connection_string(
            connection_string,
            odbc_api::ConnectionOptions::default(),
        )
    {
        let _ = connection.execute(&format!("DROP TABLE IF EXISTS {table}"), (), None);
    }
}

/// The file system's own limit for the CSV sink: the same rows as CSV lines through a 64 KiB
/// buffer, one fsync at the end; and the same with an fsync after every `batch` rows (the sink
/// fsyncs each batch). Returns (seconds, seconds with per-batch fsync).
fn csv_limit(dir: &Path, bids: &[Bid], batch: usize) -> Outcome<(f64, f64)> {
    use std::io::Write;
    let write = |path: &Path, sync_every: Option<usize>| -> Outcome<f64> {
        let started = Instant::now();
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        out.write_all(b"bid_id,auction_id,name,price,bid_ts,kafka_partition,kafka_offset\r\n")
            .map_err(fail)?;
        for (i, bid) in bids.iter().enumerate() {
            write!(
                out,
                "{},{},{},{},{},{},{}\r\n",
                bid.bid_id,
                bid.auction_id.as_str(),
                bid.name.as_str(),
                bid.price.get(),
                bid.bid_ts.to_rfc3339(),
                i % 6,
                i / 6
            )
            .map_err(fail)?;
            if let Some(every) = sync_every
                && i % every == every - 1
            {
                out.flush().map_err(fail)?;
                out.get_ref().sync_data().map_err(fail)?;
            }
        }
        out.flush().map_err(fail)?;
        out.get_ref().sync_all().map_err(fail)?;
        Ok(started.elapsed().as_secs_f64())
    };
    let plain = write(&dir.join("limit.csv"), None)?;
    let synced = write(&dir.join("limit-fsync.csv"), Some(batch.max(1)))?;
    Ok((plain, synced))
}
