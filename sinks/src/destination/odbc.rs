//! The ODBC target (odbc-api): any ODBC data source by connection string, the demo's Hive sink.
//!
//! Two SQL dialects:
//! - `ansi` (PostgreSQL, SQL Server, MySQL through their ODBC drivers): a table with `bid_id` as
//!   its primary key; each batch is one transaction that looks up which bids are already there
//!   and inserts the others as one bulk insert with bound parameter arrays
//!   (`ColumnarBulkInserter`). A concurrent writer that wins a race makes the insert fail on the
//!   key; the batch is retried and the look-up then skips those bids.
//! - `hive` (HiveServer2): `INSERT INTO TABLE ... PARTITION (bid_date) SELECT CAST(? AS ...), ...
//!   UNION ALL SELECT ...`, one multi-row statement with bound parameters, partitioned by the
//!   bid's UTC day (see [`insert_sql`] for why not `VALUES`). Hive has no unique keys or
//!   transactions, so idempotence rests on the look-up before the insert; two instances of the
//!   Hive sink must therefore not share a table. Its statements, as [`hive_insert_statements`]
//!   gives them, are run against Spark's HiveServer2-compatible Thrift Server by the test
//!   `hive::hive_dialect_runs_on_spark_thrift_server`; the path through a Hive ODBC driver is not.
//!
//! No SQL text is ever built from data: values always travel as bound parameters, and the table
//! name is a validated identifier.
//!
//! odbc-api is blocking, so one dedicated thread owns the connection; the async side sends it
//! jobs. The connection is dropped after any error and opened again on the next job, which makes
//! a restarted database heal by itself.
//!
//! Time limits (`SINK_STATEMENT_TIMEOUT_MS`): the driver is asked to bound the login
//! (`SQL_ATTR_LOGIN_TIMEOUT`) and every statement (`SQL_ATTR_QUERY_TIMEOUT`), both in whole
//! seconds, rounded up. Drivers may ignore either, and commits have no timeout in ODBC, so the
//! async side also watches the thread: when no ODBC call has returned for the limit (rounded up)
//! plus one second, the write fails as timed out (the runtime retries it and reports not-ready)
//! while the thread stays in its call. Nothing is queued behind a stuck call: the next write
//! first waits, bounded again, for the thread to come back, so at most one batch is ever in the
//! thread and two writes never overlap (the Hive dialect's look-up before insert relies on that).
//! A call that returns after its write was given up on is finished or rolled back as usual; the
//! retry's look-up then skips whatever it committed.

use std::fmt;
use std::future::Future;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use chrono::{Datelike, NaiveDateTime, Timelike};
use odbc_api::parameter::{InputParameter, VarCharBox, VarWCharBox, WithDataType};
use odbc_api::{BindParamDesc, Connection, ConnectionOptions, Cursor, DataType, IntoParameter};
use tokio::sync::{oneshot, watch};

use super::sql::{DEFAULT_STATEMENT_TIMEOUT, STATEMENT_TIMEOUT_SETTING, TableName};
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
    /// HiveQL: partitioned by day, multi-row `INSERT INTO TABLE ... SELECT`, no transactions.
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
    /// Time limit of the login and of every statement (`SINK_STATEMENT_TIMEOUT_MS`); drivers
    /// take whole seconds, so it is rounded up.
    pub statement_timeout: Duration,
}

impl OdbcSettings {
    /// Settings for table `bid` of the data source `connection_string` speaks to.
    pub fn new(connection_string: Secret, dialect: Dialect) -> Self {
        Self {
            connection_string,
            table: TableName::default(),
            dialect,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }

    /// The limit in the whole seconds ODBC attributes take (at least 1: 0 means "none" to ODBC).
    fn timeout_secs(&self) -> u64 {
        self.statement_timeout.as_millis().div_ceil(1000).max(1) as u64
    }

    /// How long the async side waits for any one ODBC call to return: the driver's limit and one
    /// second for the driver's own cancellation to arrive first.
    fn watchdog(&self) -> Duration {
        Duration::from_secs(self.timeout_secs() + 1)
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
            let mut message = error.to_string().replace('\n', " ");
            // HYT00/HYT01: the driver's timeout expired; 57014: PostgreSQL cancelled the statement
            // (what psqlODBC's query timeout does).
            if matches!(sqlstate.as_deref(), Some("HYT00" | "HYT01" | "57014")) {
                message.push_str(&format!(
                    " (a statement timed out or was cancelled; the limit is {STATEMENT_TIMEOUT_SETTING})"
                ));
            }
            Self {
                context,
                message,
                sqlstate,
            }
        }
    }

    fn timed_out(waited: Duration) -> Self {
        Self {
            context: "the ODBC data source did not answer in time",
            message: format!(
                "no ODBC call returned within {} s ({STATEMENT_TIMEOUT_SETTING} rounded up to whole \
                 seconds, plus 1 s); the write is given up and retried, and nothing more is sent \
                 to the driver until the stuck call returns",
                waited.as_secs()
            ),
            sqlstate: None,
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
    /// Ticks each time an ODBC call of the worker thread returns.
    calls: watch::Receiver<u64>,
    /// The longest wait for one call (see [`OdbcSettings::watchdog`]).
    watchdog: Duration,
    stuck: Option<StuckJob>,
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
        let (ticks, calls) = watch::channel(0);
        let watchdog = settings.watchdog();
        thread::Builder::new()
            .name("odbc-sink".to_owned())
            .spawn(move || Worker::new(settings, ticks).serve(receiver))
            .map_err(|e| OdbcError {
                context: "cannot start the ODBC worker thread",
                message: e.to_string(),
                sqlstate: None,
            })?;
        Ok(Self {
            jobs,
            calls,
            watchdog,
            stuck: None,
        })
    }

    /// Every row, ordered by partition and offset.
    pub async fn stored_rows(&self) -> Result<Vec<OdbcRow>, OdbcError> {
        let (reply, mut answer) = oneshot::channel();
        self.jobs
            .send(Job::Read(reply))
            .map_err(|_| OdbcError::worker_gone())?;
        let mut result = None;
        let answered = answered_in_time(self.calls.clone(), self.watchdog, async {
            result = Some((&mut answer).await);
        })
        .await;
        match result {
            Some(Ok(rows)) => rows,
            _ if !answered => Err(OdbcError::timed_out(self.watchdog)),
            _ => Err(OdbcError::worker_gone()),
        }
    }

    /// Sends a write to the worker thread and waits for its answer while its ODBC calls keep
    /// returning within the watchdog's time. A write still running from an earlier time-out is
    /// waited for first (bounded the same way), so that writes never pile up behind a stuck call.
    async fn write_batch(&mut self, batch: Vec<SinkRecord>) -> Result<WriteOutcome, OdbcError> {
        if let Some(mut stuck) = self.stuck.take() {
            if !answered_in_time(self.calls.clone(), self.watchdog, stuck.returned()).await {
                self.stuck = Some(stuck);
                return Err(OdbcError::timed_out(self.watchdog));
            }
            tracing::info!("the ODBC call that timed out has returned");
        }
        let (reply, mut answer) = oneshot::channel();
        self.jobs
            .send(Job::Write(batch, reply))
            .map_err(|_| OdbcError::worker_gone())?;
        let mut result = None;
        let answered = answered_in_time(self.calls.clone(), self.watchdog, async {
            result = Some((&mut answer).await);
        })
        .await;
        match result {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(OdbcError::worker_gone()),
            None => {
                debug_assert!(!answered);
                self.stuck = Some(StuckJob(answer));
                Err(OdbcError::timed_out(self.watchdog))
            }
        }
    }
}

/// The answer of a write the async side stopped waiting for: the worker thread is still in it.
struct StuckJob(oneshot::Receiver<Result<WriteOutcome, OdbcError>>);

impl StuckJob {
    /// Waits until the worker thread has answered the stuck write.
    async fn returned(&mut self) {
        let _ = (&mut self.0).await;
    }
}

/// Waits for `answer` as long as the worker's ODBC calls keep returning within `watchdog` of
/// each other; false when one did not.
async fn answered_in_time(
    mut calls: watch::Receiver<u64>,
    watchdog: Duration,
    answer: impl Future<Output = ()>,
) -> bool {
    let mut answer = std::pin::pin!(answer);
    calls.mark_unchanged();
    loop {
        tokio::select! {
            () = &mut answer => return true,
            changed = calls.changed() => {
                if changed.is_err() {
                    // The thread ended; its answer (or its absence) follows at once.
                    answer.await;
                    return true;
                }
            }
            () = tokio::time::sleep(watchdog) => return false,
        }
    }
}

impl Destination for OdbcDestination {
    type Error = OdbcError;

    fn kind(&self) -> &'static str {
        "odbc"
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<WriteOutcome, OdbcError> {
        self.write_batch(batch.to_vec()).await
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
    /// Ticked after every ODBC call, for the async side's watchdog.
    ticks: watch::Sender<u64>,
}

impl Worker {
    fn new(settings: OdbcSettings, ticks: watch::Sender<u64>) -> Self {
        Self {
            settings,
            connection: None,
            ticks,
        }
    }

    /// Tells the async side that an ODBC call returned.
    fn tick(&self) {
        self.ticks
            .send_modify(|calls| *calls = calls.wrapping_add(1));
    }

    /// The driver's limit of one statement, in seconds.
    fn query_timeout(&self) -> Option<usize> {
        usize::try_from(self.settings.timeout_secs()).ok()
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
                    self.tick();
                }
                Err(e)
            }
        }
    }

    fn connect(&self) -> Result<Connection<'static>, OdbcError> {
        let environment = odbc_api::environment().map_err(OdbcError::new("cannot set up ODBC"))?;
        let connection = environment.connect_with_connection_string(
            self.settings.connection_string.expose(),
            ConnectionOptions {
                login_timeout_sec: u32::try_from(self.settings.timeout_secs()).ok(),
                ..ConnectionOptions::default()
            },
        );
        self.tick();
        let connection =
            connection.map_err(OdbcError::new("cannot connect to the ODBC data source"))?;
        self.ensure_table(&connection)?;
        if self.settings.dialect == Dialect::Ansi {
            connection
                .set_autocommit(false)
                .map_err(OdbcError::new("cannot start manual commit mode"))?;
            self.tick();
        }
        tracing::info!(table = %self.settings.table, dialect = ?self.settings.dialect, "connected to the ODBC data source");
        Ok(connection)
    }

    fn ensure_table(&self, connection: &Connection<'_>) -> Result<(), OdbcError> {
        let table = self.settings.table.as_str();
        let exists = match self.settings.dialect {
            Dialect::Ansi => {
                // Catalog look-ups are case-sensitive in some drivers; unquoted names fold to
                // lower case in PostgreSQL and to upper case in the standard.
                self.table_listed(connection, table)?
                    || self.table_listed(connection, &table.to_ascii_lowercase())?
            }
            // HiveQL has IF NOT EXISTS; catalog functions of Hive drivers vary.
            Dialect::Hive => false,
        };
        if !exists {
            let created = connection.execute(
                &create_table_sql(self.settings.dialect, &self.settings.table),
                (),
                self.query_timeout(),
            );
            self.tick();
            created.map_err(OdbcError::new("cannot create the table"))?;
            tracing::info!(table, "table created");
        }
        Ok(())
    }

    /// Whether the catalog lists `table`, the look-up bounded by the query timeout.
    fn table_listed(&self, connection: &Connection<'_>, table: &str) -> Result<bool, OdbcError> {
        let context = "cannot list tables";
        let mut statement = connection.preallocate().map_err(OdbcError::new(context))?;
        if let Some(seconds) = self.query_timeout() {
            statement
                .set_query_timeout_sec(seconds)
                .map_err(OdbcError::new(context))?;
        }
        let tables = statement.into_tables("", "", table, "");
        self.tick();
        let found = tables.map_err(OdbcError::new(context))?.next().is_some();
        self.tick();
        Ok(found)
    }

    fn existing_ids(
        &self,
        connection: &Connection<'_>,
        batch: &[SinkRecord],
    ) -> Result<std::collections::HashSet<String>, OdbcError> {
        let mut existing = std::collections::HashSet::new();
        for chunk in batch.chunks(LOOKUP_CHUNK) {
            let sql = lookup_sql(&self.settings.table, chunk.len());
            let ids: Vec<VarCharBox> = chunk
                .iter()
                .map(|r| VarCharBox::from_string(r.bid.bid_id.to_string()))
                .collect();
            let cursor = connection.execute(&sql, &ids[..], self.query_timeout());
            self.tick();
            let cursor = cursor.map_err(OdbcError::new("cannot look up existing bids"))?;
            if let Some(mut cursor) = cursor {
                let mut buffer = Vec::new();
                while let Some(mut row) = {
                    let row = cursor.next_row();
                    self.tick();
                    row.map_err(OdbcError::new("cannot look up existing bids"))?
                } {
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
            let committed = connection.commit();
            self.tick();
            committed.map_err(OdbcError::new("cannot commit bids"))?;
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
        let prepared = connection.prepare(&sql);
        self.tick();
        let mut prepared = prepared.map_err(OdbcError::new("cannot prepare the insert"))?;
        if let Some(seconds) = self.query_timeout() {
            prepared
                .set_query_timeout_sec(seconds)
                .map_err(OdbcError::new("cannot set the insert's query timeout"))?;
        }
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
        let inserted = inserter.execute().map(drop);
        self.tick();
        inserted.map_err(OdbcError::new("cannot insert bids"))?;
        Ok(())
    }

    /// Multi-row INSERT statements with bound parameters, the form HiveServer2 takes.
    fn hive_insert(
        &self,
        connection: &Connection<'_>,
        rows: &[&SinkRecord],
    ) -> Result<(), OdbcError> {
        // Dynamic partitions are off by default in Hive.
        let set = connection
            .execute(HIVE_DYNAMIC_PARTITIONS, (), self.query_timeout())
            .map(drop);
        self.tick();
        set.map_err(OdbcError::new("cannot enable dynamic partitions"))?;
        let rows: Vec<(&Bid, i32, i64)> = rows
            .iter()
            .map(|r| (&r.bid, r.position.partition, r.position.offset))
            .collect();
        for (sql, values) in hive_insert_statements(&self.settings.table, &rows) {
            let parameters: Vec<Box<dyn InputParameter>> =
                values.into_iter().map(HiveParameter::into_odbc).collect();
            let inserted = connection
                .execute(&sql, &parameters[..], self.query_timeout())
                .map(drop);
            self.tick();
            inserted.map_err(OdbcError::new("cannot insert bids"))?;
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
        let cursor = connection.execute(&sql, (), self.query_timeout());
        self.tick();
        let cursor = cursor.map_err(OdbcError::new(context))?;
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
            while let Some(mut row) = {
                let row = cursor.next_row();
                self.tick();
                row.map_err(OdbcError::new(context))?
            } {
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
            let committed = connection.commit();
            self.tick();
            committed.map_err(OdbcError::new(context))?;
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
            // Not `VALUES (?, ...)`: HiveServer2 has no parameter binding, so Hive's ODBC drivers
            // put each value into the text as a literal (a timestamp as a quoted string); Hive 1
            // and 2 take only plain literals in `VALUES` (no CAST: "Expression of type
            // TOK_FUNCTION not supported in insert/values") and convert them to the column
            // types, while Spark's Thrift Server refuses a string for a TIMESTAMP column
            // (`spark.sql.storeAssignmentPolicy=ANSI`, its default). One `SELECT` without
            // `FROM` per row, each value cast to its column's type, joined by `UNION ALL`, is
            // HiveQL from Hive 1.2 on and Spark SQL alike. The partition column comes last, as
            // dynamic partitioning expects.
            let row = "SELECT CAST(? AS STRING), CAST(? AS STRING), CAST(? AS STRING), \
                       CAST(? AS INT), CAST(? AS TIMESTAMP), CAST(? AS INT), CAST(? AS BIGINT), \
                       CAST(? AS STRING)";
            let rows = vec![row; rows.max(1)].join(" UNION ALL ");
            format!("INSERT INTO TABLE {table} PARTITION (bid_date) {rows}")
        }
    }
}

/// The look-up of which of `ids` bids are already stored, before an insert (both dialects).
pub fn lookup_sql(table: &TableName, ids: usize) -> String {
    let placeholders = vec!["?"; ids.max(1)].join(", ");
    format!("SELECT bid_id FROM {table} WHERE bid_id IN ({placeholders})")
}

/// The session setting the `hive` dialect sends before its inserts: Hive refuses an insert
/// whose partition values all come from the data unless dynamic partitioning is `nonstrict`.
pub const HIVE_DYNAMIC_PARTITIONS: &str = "SET hive.exec.dynamic.partition.mode=nonstrict";

/// A value bound to one parameter marker of a `hive` INSERT, typed as the sink binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiveParameter {
    /// Narrow text: `bid_id`, `auction_id`, `bid_date`.
    Text(String),
    /// Wide (UTF-16) text: `name`.
    WideText(String),
    /// A 32-bit integer: `price`, `kafka_partition`.
    Integer(i32),
    /// A 64-bit integer: `kafka_offset`.
    BigInt(i64),
    /// A timestamp with microseconds, in UTC: `bid_ts`.
    Timestamp(NaiveDateTime),
}

impl HiveParameter {
    /// The ODBC parameter this value is bound as.
    fn into_odbc(self) -> Box<dyn InputParameter> {
        match self {
            Self::Text(text) => Box::new(text.into_parameter()),
            Self::WideText(text) => Box::new(VarWCharBox::from_str_slice(&text)),
            Self::Integer(value) => Box::new(value),
            Self::BigInt(value) => Box::new(value),
            Self::Timestamp(ts) => Box::new(WithDataType {
                value: odbc_timestamp(ts),
                data_type: DataType::Timestamp { precision: 6 },
            }),
        }
    }
}

/// The INSERT statements the `hive` dialect executes for `rows` (each bid with its Kafka
/// partition and offset), in order, each with the values bound to its markers: at most
/// `HIVE_ROWS_PER_STATEMENT` rows a statement, the partition value the bid's UTC day. The sink
/// sends [`HIVE_DYNAMIC_PARTITIONS`] before them on the same connection.
pub fn hive_insert_statements(
    table: &TableName,
    rows: &[(&Bid, i32, i64)],
) -> Vec<(String, Vec<HiveParameter>)> {
    rows.chunks(HIVE_ROWS_PER_STATEMENT)
        .map(|chunk| {
            let sql = insert_sql(Dialect::Hive, table, chunk.len());
            let mut values = Vec::with_capacity(chunk.len() * 8);
            for (bid, partition, offset) in chunk {
                let ts = bid.bid_ts.get().naive_utc();
                values.extend([
                    HiveParameter::Text(bid.bid_id.to_string()),
                    HiveParameter::Text(bid.auction_id.as_str().to_owned()),
                    HiveParameter::WideText(bid.name.as_str().to_owned()),
                    HiveParameter::Integer(bid.price.get()),
                    HiveParameter::Timestamp(ts),
                    HiveParameter::Integer(*partition),
                    HiveParameter::BigInt(*offset),
                    HiveParameter::Text(ts.format("%Y-%m-%d").to_string()),
                ]);
            }
            (sql, values)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableName {
        TableName::parse("bid").unwrap()
    }

    #[test]
    fn hive_statements_are_partitioned_multi_row_inserts() {
        let row = "SELECT CAST(? AS STRING), CAST(? AS STRING), CAST(? AS STRING), CAST(? AS INT), \
                   CAST(? AS TIMESTAMP), CAST(? AS INT), CAST(? AS BIGINT), CAST(? AS STRING)";
        assert_eq!(
            insert_sql(Dialect::Hive, &table(), 2),
            format!("INSERT INTO TABLE bid PARTITION (bid_date) {row} UNION ALL {row}")
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
    fn hive_inserts_bind_eight_values_a_row_in_statements_of_at_most_a_hundred_rows() {
        use auction_schemas::{AuctionId, BidId, BidTimestamp, BidderName, Price};
        let bid = Bid {
            bid_id: BidId::new_random(),
            auction_id: AuctionId::parse("lot-1").unwrap(),
            name: BidderName::parse("Zoë").unwrap(),
            price: Price::parse(42).unwrap(),
            bid_ts: BidTimestamp::parse("2026-11-23T23:59:59.123456Z").unwrap(),
        };
        let rows: Vec<(&Bid, i32, i64)> = (0..150).map(|i| (&bid, 3, 5_000_000_000 + i)).collect();
        let statements = hive_insert_statements(&table(), &rows);
        let shapes: Vec<(String, usize)> = statements
            .iter()
            .map(|(sql, values)| (sql.clone(), values.len()))
            .collect();
        assert_eq!(
            shapes,
            [
                (insert_sql(Dialect::Hive, &table(), 100), 800),
                (insert_sql(Dialect::Hive, &table(), 50), 400),
            ]
        );
        let ts = bid.bid_ts.get().naive_utc();
        assert_eq!(
            statements[1].1[..8],
            [
                HiveParameter::Text(bid.bid_id.to_string()),
                HiveParameter::Text("lot-1".to_owned()),
                HiveParameter::WideText("Zoë".to_owned()),
                HiveParameter::Integer(42),
                HiveParameter::Timestamp(ts),
                HiveParameter::Integer(3),
                HiveParameter::BigInt(5_000_000_100),
                HiveParameter::Text("2026-11-23".to_owned()),
            ]
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
