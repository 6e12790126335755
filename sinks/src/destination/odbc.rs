//! The ODBC target (odbc-api): any ODBC data source by connection string, the demo's Hive sink.
//!
//! Two SQL dialects:
//! - `ansi` (PostgreSQL, SQL Server, MySQL through their ODBC drivers): a table with `bid_id` as
//!   its primary key; each batch is one transaction that looks up which bids are already there
//!   and inserts the others as one bulk insert with bound parameter arrays
//!   (`ColumnarBulkInserter`). A concurrent writer that wins a race makes the insert fail on the
//!   key; the batch is retried and the look-up then skips those bids.
//! - `hive` (HiveServer2): `INSERT INTO TABLE ... PARTITION (bid_date) VALUES (...), (...)`, one
//!   multi-row statement with bound parameters, partitioned by the bid's UTC day. Hive has no
//!   unique keys or transactions, so idempotence rests on the look-up before the insert; two
//!   instances of the Hive sink must therefore not share a table.
//!
//! No SQL text is ever built from data: values always travel as bound parameters, and the table
//! name is a validated identifier.
//!
//! odbc-api is blocking, so one dedicated thread owns the connection; the async side sends it
//! jobs. The connection is dropped after any error and opened again on the next job, which makes
//! a restarted database heal by itself.

use std::fmt;
use std::sync::mpsc;
use std::thread;

use chrono::{Datelike, NaiveDateTime, Timelike};
use odbc_api::parameter::{InputParameter, VarCharBox, VarWCharBox, WithDataType};
use odbc_api::{BindParamDesc, Connection, ConnectionOptions, Cursor, DataType, IntoParameter};
use tokio::sync::oneshot;

use super::sql::TableName;
use super::{Destination, SinkRecord, WriteOutcome};
use auction_process::Secret;
use auction_schemas::Bid;

/// Bids looked up per `IN (...)` query.
const LOOKUP_CHUNK: usize = 200;
/// Rows per multi-row Hive INSERT (8 parameters a row).
const HIVE_ROWS_PER_STATEMENT: usize = 100;

/// The SQL flavour of the data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// Standard SQL with transactions and a primary key (tested against PostgreSQL).
    Ansi,
    /// HiveQL: partitioned by day, multi-row `INSERT INTO TABLE ... VALUES`, no transactions.
    Hive,
}

/// How to reach the data source.
#[derive(Debug, Clone)]
pub struct OdbcSettings {
    /// An ODBC connection string, such as
    /// `Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;`.
    pub connection_string: Secret,
    /// The table (`bid` by default).
    pub table: TableName,
    /// The SQL flavour.
    pub dialect: Dialect,
}

impl OdbcSettings {
    /// Settings for table `bid` of the data source `connection_string` speaks to.
    pub fn new(connection_string: Secret, dialect: Dialect) -> Self {
        Self {
            connection_string,
            table: TableName::default(),
            dialect,
        }
    }
}

/// An ODBC failure.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {message}")]
pub struct OdbcError {
    context: &'static str,
    message: String,
    /// The SQLSTATE, when the driver gave one.
    sqlstate: Option<String>,
}

impl OdbcError {
    fn new(context: &'static str) -> impl FnOnce(odbc_api::Error) -> Self {
        move |error| {
            let sqlstate = match &error {
                odbc_api::Error::Diagnostics { record, .. } => {
                    Some(record.state.as_str().to_owned())
                }
                _ => None,
            };
            // The driver's own words, without the Rust debug dump around them.
            let message = error.to_string().replace('\n', " ");
            Self {
                context,
                message,
                sqlstate,
            }
        }
    }

    fn worker_gone() -> Self {
        Self {
            context: "the ODBC worker thread stopped",
            message: "restart the sink".to_owned(),
            sqlstate: None,
        }
    }

    /// The SQLSTATE, when the driver gave one.
    pub fn sqlstate(&self) -> Option<&str> {
        self.sqlstate.as_deref()
    }
}

/// One bid as stored, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OdbcRow {
    /// `bid_id`.
    pub bid_id: String,
    /// `auction_id`.
    pub auction_id: String,
    /// `name`.
    pub name: String,
    /// `price`.
    pub price: i32,
    /// `bid_ts` as the driver prints it.
    pub bid_ts: String,
    /// `kafka_partition`.
    pub kafka_partition: i32,
    /// `kafka_offset`.
    pub kafka_offset: i64,
}

enum Job {
    Write(
        Vec<SinkRecord>,
        oneshot::Sender<Result<WriteOutcome, OdbcError>>,
    ),
    Read(oneshot::Sender<Result<Vec<OdbcRow>, OdbcError>>),
}

/// Writes bids through ODBC.
pub struct OdbcDestination {
    jobs: mpsc::Sender<Job>,
}

impl fmt::Debug for OdbcDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OdbcDestination").finish_non_exhaustive()
    }
}

impl OdbcDestination {
    /// Starts the worker thread; it connects on the first job.
    pub fn new(settings: OdbcSettings) -> Result<Self, OdbcError> {
        let (jobs, receiver) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("odbc-sink".to_owned())
            .spawn(move || Worker::new(settings).serve(receiver))
            .map_err(|e| OdbcError {
                context: "cannot start the ODBC worker thread",
                message: e.to_string(),
                sqlstate: None,
            })?;
        Ok(Self { jobs })
    }

    /// Every row, ordered by partition and offset.
    pub async fn stored_rows(&self) -> Result<Vec<OdbcRow>, OdbcError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Read(reply))
            .map_err(|_| OdbcError::worker_gone())?;
        answer.await.map_err(|_| OdbcError::worker_gone())?
    }
}

impl Destination for OdbcDestination {
    type Error = OdbcError;

    fn kind(&self) -> &'static str {
        "odbc"
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<WriteOutcome, OdbcError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Write(batch.to_vec(), reply))
            .map_err(|_| OdbcError::worker_gone())?;
        answer.await.map_err(|_| OdbcError::worker_gone())?
    }

    fn is_retriable(&self, error: &OdbcError) -> bool {
        // Class 22 is "data exception" (a value the column cannot take): the records are at
        // fault. Everything else (connection, syntax after a schema change, a key race) is
        // waited out, so that a misconfiguration never drains the topic into dead letters.
        !error.sqlstate().is_some_and(|s| s.starts_with("22"))
    }
}

struct Worker {
    settings: OdbcSettings,
    connection: Option<Connection<'static>>,
}

impl Worker {
    fn new(settings: OdbcSettings) -> Self {
        Self {
            settings,
            connection: None,
        }
    }

    fn serve(mut self, jobs: mpsc::Receiver<Job>) {
        for job in jobs {
            match job {
                Job::Write(batch, reply) => {
                    let result = self.run(|w, c| w.write(c, &batch));
                    let _ = reply.send(result);
                }
                Job::Read(reply) => {
                    let result = self.run(|w, c| w.read(c));
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// Runs `job` on a connection (opening it and creating the table first when needed); drops the
    /// connection after an error so the next job starts afresh.
    fn run<T>(
        &mut self,
        job: impl FnOnce(&Self, &Connection<'static>) -> Result<T, OdbcError>,
    ) -> Result<T, OdbcError> {
        if self.connection.is_none() {
            let connection = self.connect()?;
            self.connection = Some(connection);
        }
        let Some(connection) = self.connection.take() else {
            return Err(OdbcError::worker_gone());
        };
        match job(self, &connection) {
            Ok(value) => {
                self.connection = Some(connection);
                Ok(value)
            }
            Err(e) => {
                if self.settings.dialect == Dialect::Ansi {
                    let _ = connection.rollback();
                }
                Err(e)
            }
        }
    }

    fn connect(&self) -> Result<Connection<'static>, OdbcError> {
        let environment = odbc_api::environment().map_err(OdbcError::new("cannot set up ODBC"))?;
        let connection = environment
            .connect_with_connection_string(
                self.settings.connection_string.expose(),
                ConnectionOptions {
                    login_timeout_sec: Some(5),
                    ..ConnectionOptions::default()
                },
            )
            .map_err(OdbcError::new("cannot connect to the ODBC data source"))?;
        self.ensure_table(&connection)?;
        if self.settings.dialect == Dialect::Ansi {
            connection
                .set_autocommit(false)
                .map_err(OdbcError::new("cannot start manual commit mode"))?;
        }
        tracing::info!(table = %self.settings.table, dialect = ?self.settings.dialect, "connected to the ODBC data source");
        Ok(connection)
    }

    fn ensure_table(&self, connection: &Connection<'_>) -> Result<(), OdbcError> {
        let table = self.settings.table.as_str();
        let exists = match self.settings.dialect {
            Dialect::Ansi => {
                let mut tables = connection
                    .tables("", "", table, "")
                    .map_err(OdbcError::new("cannot list tables"))?;
                // Catalog look-ups are case-sensitive in some drivers; unquoted names fold to
                // lower case in PostgreSQL and to upper case in the standard.
                let found = tables.next().is_some();
                drop(tables);
                found
                    || connection
                        .tables("", "", &table.to_ascii_lowercase(), "")
                        .map_err(OdbcError::new("cannot list tables"))?
                        .next()
                        .is_some()
            }
            // HiveQL has IF NOT EXISTS; catalog functions of Hive drivers vary.
            Dialect::Hive => false,
        };
        if !exists {
            connection
                .execute(
                    &create_table_sql(self.settings.dialect, &self.settings.table),
                    (),
                    None,
                )
                .map_err(OdbcError::new("cannot create the table"))?;
            tracing::info!(table, "table created");
        }
        Ok(())
    }

    fn existing_ids(
        &self,
        connection: &Connection<'_>,
        batch: &[SinkRecord],
    ) -> Result<std::collections::HashSet<String>, OdbcError> {
        let mut existing = std::collections::HashSet::new();
        for chunk in batch.chunks(LOOKUP_CHUNK) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT bid_id FROM {} WHERE bid_id IN ({placeholders})",
                self.settings.table
            );
            let ids: Vec<VarCharBox> = chunk
                .iter()
                .map(|r| VarCharBox::from_string(r.bid.bid_id.to_string()))
                .collect();
            let cursor = connection
                .execute(&sql, &ids[..], None)
                .map_err(OdbcError::new("cannot look up existing bids"))?;
            if let Some(mut cursor) = cursor {
                let mut buffer = Vec::new();
                while let Some(mut row) = cursor
                    .next_row()
                    .map_err(OdbcError::new("cannot look up existing bids"))?
                {
                    row.get_text(1, &mut buffer)
                        .map_err(OdbcError::new("cannot look up existing bids"))?;
                    existing.insert(String::from_utf8_lossy(&buffer).trim().to_owned());
                }
            }
        }
        Ok(existing)
    }

    fn write(
        &self,
        connection: &Connection<'_>,
        batch: &[SinkRecord],
    ) -> Result<WriteOutcome, OdbcError> {
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let existing = self.existing_ids(connection, batch)?;
        let fresh: Vec<&SinkRecord> = batch
            .iter()
            .filter(|r| !existing.contains(&r.bid.bid_id.to_string()))
            .collect();
        if !fresh.is_empty() {
            match self.settings.dialect {
                Dialect::Ansi => self.bulk_insert(connection, &fresh)?,
                Dialect::Hive => self.hive_insert(connection, &fresh)?,
            }
        }
        if self.settings.dialect == Dialect::Ansi {
            connection
                .commit()
                .map_err(OdbcError::new("cannot commit bids"))?;
        }
        Ok(WriteOutcome {
            written: fresh.len(),
            duplicates: batch.len() - fresh.len(),
        })
    }

    /// One prepared INSERT executed once over parameter arrays of the whole batch.
    fn bulk_insert(
        &self,
        connection: &Connection<'_>,
        rows: &[&SinkRecord],
    ) -> Result<(), OdbcError> {
        let sql = insert_sql(Dialect::Ansi, &self.settings.table, 1);
        let prepared = connection
            .prepare(&sql)
            .map_err(OdbcError::new("cannot prepare the insert"))?;
        let mut inserter = prepared
            .into_column_inserter(rows.len(), bid_parameters())
            .map_err(OdbcError::new("cannot bind the insert's parameter arrays"))?;
        inserter.set_num_rows(rows.len());
        let rows: Vec<(&Bid, i32, i64)> = rows
            .iter()
            .map(|r| (&r.bid, r.position.partition, r.position.offset))
            .collect();
        if !fill_bid_columns(&mut inserter, &rows) {
            return Err(OdbcError {
                context: "cannot fill the insert's parameter arrays",
                message: "unexpected buffer type".to_owned(),
                sqlstate: None,
            });
        }
        inserter
            .execute()
            .map_err(OdbcError::new("cannot insert bids"))?;
        Ok(())
    }

    /// Multi-row INSERT statements with bound parameters, the form HiveServer2 takes.
    fn hive_insert(
        &self,
        connection: &Connection<'_>,
        rows: &[&SinkRecord],
    ) -> Result<(), OdbcError> {
        // Dynamic partitions are off by default in Hive.
        connection
            .execute("SET hive.exec.dynamic.partition.mode=nonstrict", (), None)
            .map_err(OdbcError::new("cannot enable dynamic partitions"))?;
        for chunk in rows.chunks(HIVE_ROWS_PER_STATEMENT) {
            let sql = insert_sql(Dialect::Hive, &self.settings.table, chunk.len());
            let mut parameters: Vec<Box<dyn InputParameter>> = Vec::with_capacity(chunk.len() * 8);
            for r in chunk {
                let bid = &r.bid;
                let ts = bid.bid_ts.get().naive_utc();
                parameters.push(Box::new(bid.bid_id.to_string().into_parameter()));
                parameters.push(Box::new(
                    bid.auction_id.as_str().to_owned().into_parameter(),
                ));
                parameters.push(Box::new(VarWCharBox::from_str_slice(bid.name.as_str())));
                parameters.push(Box::new(bid.price.get()));
                parameters.push(Box::new(WithDataType {
                    value: odbc_timestamp(ts),
                    data_type: DataType::Timestamp { precision: 6 },
                }));
                parameters.push(Box::new(r.position.partition));
                parameters.push(Box::new(r.position.offset));
                parameters.push(Box::new(ts.format("%Y-%m-%d").to_string().into_parameter()));
            }
            connection
                .execute(&sql, &parameters[..], None)
                .map_err(OdbcError::new("cannot insert bids"))?;
        }
        Ok(())
    }

    fn read(&self, connection: &Connection<'_>) -> Result<Vec<OdbcRow>, OdbcError> {
        let sql = format!(
            "SELECT bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset FROM {} \
             ORDER BY kafka_partition, kafka_offset",
            self.settings.table
        );
        let context = "cannot read bids";
        let mut rows = Vec::new();
        let cursor = connection
            .execute(&sql, (), None)
            .map_err(OdbcError::new(context))?;
        if let Some(mut cursor) = cursor {
            let mut narrow = Vec::new();
            let mut wide = Vec::new();
            let mut text = |row: &mut odbc_api::CursorRow<'_>, column: u16| {
                row.get_text(column, &mut narrow)
                    .map_err(OdbcError::new(context))?;
                Ok::<_, OdbcError>(String::from_utf8_lossy(&narrow).trim().to_owned())
            };
            let bad = |what: &str| OdbcError {
                context,
                message: format!("the column {what} holds an unexpected value"),
                sqlstate: None,
            };
            while let Some(mut row) = cursor.next_row().map_err(OdbcError::new(context))? {
                let bid_id = text(&mut row, 1)?;
                let auction_id = text(&mut row, 2)?;
                row.get_wide_text(3, &mut wide)
                    .map_err(OdbcError::new(context))?;
                let name = String::from_utf16_lossy(&wide);
                let price = text(&mut row, 4)?.parse().map_err(|_| bad("price"))?;
                let bid_ts = text(&mut row, 5)?;
                let kafka_partition = text(&mut row, 6)?
                    .parse()
                    .map_err(|_| bad("kafka_partition"))?;
                let kafka_offset = text(&mut row, 7)?
                    .parse()
                    .map_err(|_| bad("kafka_offset"))?;
                rows.push(OdbcRow {
                    bid_id,
                    auction_id,
                    name,
                    price,
                    bid_ts,
                    kafka_partition,
                    kafka_offset,
                });
            }
        }
        if self.settings.dialect == Dialect::Ansi {
            // Ends the read transaction so the next batch sees fresh data.
            connection.commit().map_err(OdbcError::new(context))?;
        }
        Ok(rows)
    }
}

/// Fills the parameter arrays of an insert made by [`insert_sql`] (one row per array element)
/// and bound with [`bid_parameters`] with `rows`: each bid with its partition and offset.
/// Returns false when a buffer is not of the bound type.
pub fn fill_bid_columns<S: odbc_api::handles::AsStatementRef>(
    inserter: &mut odbc_api::ColumnarBulkInserter<
        S,
        WithDataType<odbc_api::buffers::BoxColumnBuffer>,
    >,
    rows: &[(&Bid, i32, i64)],
) -> bool {
    let Some(mut column) = inserter.column_mut(0).as_text() else {
        return false;
    };
    for (i, (bid, _, _)) in rows.iter().enumerate() {
        column.set_cell(i, Some(bid.bid_id.to_string().as_bytes()));
    }
    let Some(mut column) = inserter.column_mut(1).as_text() else {
        return false;
    };
    for (i, (bid, _, _)) in rows.iter().enumerate() {
        column.set_cell(i, Some(bid.auction_id.as_str().as_bytes()));
    }
    let Some(mut column) = inserter.column_mut(2).as_wide_text() else {
        return false;
    };
    for (i, (bid, _, _)) in rows.iter().enumerate() {
        let wide: Vec<u16> = bid.name.as_str().encode_utf16().collect();
        column.set_cell(i, Some(&wide));
    }
    let Some(column) = inserter.column_mut(3).as_slice::<i32>() else {
        return false;
    };
    for (cell, (bid, _, _)) in column.iter_mut().zip(rows) {
        *cell = bid.price.get();
    }
    let Some(column) = inserter
        .column_mut(4)
        .as_slice::<odbc_api::sys::Timestamp>()
    else {
        return false;
    };
    for (cell, (bid, _, _)) in column.iter_mut().zip(rows) {
        *cell = odbc_timestamp(bid.bid_ts.get().naive_utc());
    }
    let Some(column) = inserter.column_mut(5).as_slice::<i32>() else {
        return false;
    };
    for (cell, (_, partition, _)) in column.iter_mut().zip(rows) {
        *cell = *partition;
    }
    let Some(column) = inserter.column_mut(6).as_slice::<i64>() else {
        return false;
    };
    for (cell, (_, _, offset)) in column.iter_mut().zip(rows) {
        *cell = *offset;
    }
    true
}

fn odbc_timestamp(ts: NaiveDateTime) -> odbc_api::sys::Timestamp {
    odbc_api::sys::Timestamp {
        year: ts.year() as i16,
        month: ts.month() as u16,
        day: ts.day() as u16,
        hour: ts.hour() as u16,
        minute: ts.minute() as u16,
        second: ts.second() as u16,
        // Nanoseconds; events carry microseconds.
        fraction: ts.nanosecond() / 1_000 * 1_000,
    }
}

/// The `CREATE TABLE` of a dialect.
pub fn create_table_sql(dialect: Dialect, table: &TableName) -> String {
    match dialect {
        Dialect::Ansi => format!(
            "CREATE TABLE {table} (\
             bid_id VARCHAR(36) NOT NULL PRIMARY KEY, \
             auction_id VARCHAR(64) NOT NULL, \
             name VARCHAR(100) NOT NULL, \
             price INTEGER NOT NULL, \
             bid_ts TIMESTAMP NOT NULL, \
             kafka_partition INTEGER NOT NULL, \
             kafka_offset BIGINT NOT NULL)"
        ),
        Dialect::Hive => format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
             bid_id STRING, auction_id STRING, name STRING, price INT, bid_ts TIMESTAMP, \
             kafka_partition INT, kafka_offset BIGINT) \
             PARTITIONED BY (bid_date STRING) STORED AS ORC"
        ),
    }
}

/// The parameter arrays of the `ansi` bulk insert, in the column order of [`insert_sql`]:
/// bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset.
pub fn bid_parameters() -> [BindParamDesc; 7] {
    [
        BindParamDesc::text(36),
        BindParamDesc::text(64),
        BindParamDesc::wide_text(100),
        BindParamDesc::i32(false),
        BindParamDesc::timestamp(false, 6),
        BindParamDesc::i32(false),
        BindParamDesc::i64(false),
    ]
}

/// The `INSERT` of a dialect with `rows` rows of placeholders.
pub fn insert_sql(dialect: Dialect, table: &TableName, rows: usize) -> String {
    let columns = "bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset";
    match dialect {
        Dialect::Ansi => {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; rows.max(1)].join(", ");
            format!("INSERT INTO {table} ({columns}) VALUES {values}")
        }
        Dialect::Hive => {
            // The partition column comes last, as Hive's dynamic partitioning expects.
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; rows.max(1)].join(", ");
            format!("INSERT INTO TABLE {table} PARTITION (bid_date) VALUES {values}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableName {
        TableName::parse("bid").unwrap()
    }

    #[test]
    fn hive_statements_are_partitioned_multi_row_inserts() {
        assert_eq!(
            insert_sql(Dialect::Hive, &table(), 2),
            "INSERT INTO TABLE bid PARTITION (bid_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let create = create_table_sql(Dialect::Hive, &table());
        assert!(
            create.starts_with("CREATE TABLE IF NOT EXISTS bid ("),
            "{create}"
        );
        assert!(
            create.contains("PARTITIONED BY (bid_date STRING)"),
            "{create}"
        );
    }

    #[test]
    fn ansi_statements_bind_every_value() {
        assert_eq!(
            insert_sql(Dialect::Ansi, &table(), 1),
            "INSERT INTO bid (bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset) VALUES (?, ?, ?, ?, ?, ?, ?)"
        );
        assert!(
            create_table_sql(Dialect::Ansi, &table())
                .contains("bid_id VARCHAR(36) NOT NULL PRIMARY KEY")
        );
    }

    #[test]
    fn timestamps_keep_microseconds() {
        let ts = chrono::NaiveDate::from_ymd_opt(2026, 11, 23)
            .unwrap()
            .and_hms_micro_opt(10, 15, 30, 123_456)
            .unwrap();
        let odbc = odbc_timestamp(ts);
        assert_eq!((odbc.year, odbc.month, odbc.day), (2026, 11, 23));
        assert_eq!((odbc.hour, odbc.minute, odbc.second), (10, 15, 30));
        assert_eq!(odbc.fraction, 123_456_000);
    }
}
