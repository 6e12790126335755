//! The SQL target through SeaORM: MySQL/MariaDB in production, SQLite for the embedded default,
//! with the same code.
//!
//! The table keeps the original demo's columns (`name`, `price`, `bid_ts`) and adds `bid_id`
//! (unique: the idempotency key), `auction_id`, `kafka_partition` and `kafka_offset`. A batch is
//! one transaction of multi-row inserts whose conflict clause makes a redelivered bid a no-op
//! (`ON DUPLICATE KEY UPDATE bid_id = bid_id` on MySQL, `ON CONFLICT (bid_id) DO NOTHING` on
//! SQLite). `INSERT IGNORE` is not used on purpose: it would also turn real errors (a truncated
//! value, a bad date) into warnings that nobody reads.
//!
//! Every statement, and taking a connection from the pool (which opens one when needed), has a
//! time limit (`SINK_STATEMENT_TIMEOUT_MS`, [`SqlSettings::statement_timeout`]): a database that
//! accepts connections but never answers makes the write fail like an outage, so the runtime
//! retries it and reports not-ready, instead of waiting forever. A statement that timed out
//! inside a transaction leaves nothing behind: the transaction is never committed. Its
//! connection goes back to the pool with a ROLLBACK queued (sqlx's behaviour when a
//! transaction is dropped), and the pool sends it, and a ping, before reusing the connection;
//! that check is bounded by the same limit here (`answers_within`), so a server that stays
//! silent gets the connection closed instead (ending the session, which rolls back on the
//! server), and the stuck connection never keeps its pool slot.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use auction_process::Secret;
use chrono::NaiveDateTime;
use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sea_orm::sqlx::pool::PoolOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    SqlxMySqlConnector, SqlxSqliteConnector, Statement, TransactionTrait, Value,
};

use super::results_sql::ResultsTable;
use super::{Destination, ResultRecord, SinkRecord, WriteOutcome};

/// Rows per INSERT statement: 7 parameters a row stays far below MySQL's 65,535 and SQLite's
/// 32,766 placeholders.
const ROWS_PER_STATEMENT: usize = 500;

/// A table name: a plain SQL identifier, so it can be quoted without escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl Default for TableName {
    /// `bid`, the demo's table.
    fn default() -> Self {
        Self("bid".to_owned())
    }
}

impl TableName {
    /// Accepts `[A-Za-z_][A-Za-z0-9_]{0,63}`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut chars = raw.chars();
        let valid = raw.len() <= 64
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "the table name {raw:?} must be 1 to 64 characters of A-Z, a-z, 0-9 or '_', not starting with a digit"
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for TableName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to reach the database.
#[derive(Debug, Clone)]
pub struct SqlSettings {
    /// `mysql://user:password@host:3306/test` or `sqlite://bids.db?mode=rwc`.
    pub database_url: Secret,
    /// The table (`bid` by default, the demo's).
    pub table: TableName,
    /// The table of closed auctions' results (`auction_result` by default); `None`: results are
    /// not exported.
    pub results_table: Option<TableName>,
    /// Pool size (SQLite always uses one connection: it has one writer anyway).
    pub max_connections: u32,
    /// Time limit to open a connection or take one from the pool (never longer than
    /// `statement_timeout`).
    pub connect_timeout: Duration,
    /// Time limit of every statement and of taking a connection (`SINK_STATEMENT_TIMEOUT_MS`).
    pub statement_timeout: Duration,
}

/// The SQL database a URL names, by its scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlKind {
    /// `mysql://` or `mariadb://`.
    Mysql,
    /// `sqlite:`.
    Sqlite,
}

impl SqlKind {
    /// The kind a database URL names; an error saying which schemes are known otherwise.
    pub fn of_url(url: &str) -> Result<Self, SqlError> {
        if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Self::Mysql)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(SqlError::Config(
                "DATABASE_URL must start with mysql://, mariadb:// or sqlite:".to_owned(),
            ))
        }
    }

    /// The sink kind, in metrics, logs, dead-letter headers and the default group id.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }

    fn backend(self) -> DbBackend {
        match self {
            Self::Mysql => DbBackend::MySql,
            Self::Sqlite => DbBackend::Sqlite,
        }
    }
}

impl SqlSettings {
    /// The database kind its URL names.
    pub fn kind(&self) -> Result<SqlKind, SqlError> {
        SqlKind::of_url(self.database_url.expose())
    }

    /// Defaults: table `bid`, 4 connections, 5 s to connect, 30 s a statement.
    pub fn new(database_url: Secret) -> Self {
        Self {
            database_url,
            table: TableName::default(),
            results_table: TableName::parse("auction_result").ok(),
            max_connections: 4,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
        }
    }
}

/// The default of `SINK_STATEMENT_TIMEOUT_MS`: 30 s.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The setting that bounds every statement, named in the errors it causes.
pub const STATEMENT_TIMEOUT_SETTING: &str = "SINK_STATEMENT_TIMEOUT_MS";

/// The time limits of one statement (`SINK_STATEMENT_TIMEOUT_MS`) and of taking a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatementLimit {
    statement: Duration,
    connect: Duration,
}

impl StatementLimit {
    fn new(settings: &SqlSettings) -> Self {
        let statement = settings.statement_timeout.max(Duration::from_millis(1));
        Self {
            statement,
            connect: settings.connect_timeout.min(statement),
        }
    }

    /// Runs `statement` (a SeaORM call: taking a connection and one round of statements), failing
    /// with [`SqlError::Timeout`] when it takes longer than the limit. The call's future is
    /// dropped on time-out, which releases the transaction's lock before the transaction itself
    /// is dropped.
    pub(crate) async fn run<T>(
        self,
        context: &'static str,
        statement: impl Future<Output = Result<T, DbErr>>,
    ) -> Result<T, SqlError> {
        match tokio::time::timeout(self.statement, statement).await {
            Ok(Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))) => {
                Err(SqlError::ConnectTimeout {
                    context,
                    limit: self.connect,
                })
            }
            Ok(result) => result.map_err(SqlError::db(context)),
            Err(_) => Err(SqlError::Timeout {
                context,
                limit: self.statement,
            }),
        }
    }
}

/// A database error, classified.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The URL is not a MySQL or SQLite URL.
    #[error("{0}")]
    Config(String),
    /// What the database or the driver said.
    #[error("{context}: {source}")]
    Database {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: DbErr,
    },
    /// The database did not answer within the statement timeout (retried like an outage).
    #[error(
        "{context}: the database did not answer within {} ms ({STATEMENT_TIMEOUT_SETTING}); \
         the statement is abandoned and its transaction, if any, rolled back",
        limit.as_millis()
    )]
    Timeout {
        /// What was being done.
        context: &'static str,
        /// The limit that passed.
        limit: Duration,
    },
    /// No connection could be opened (or taken from the pool) in time (retried like an outage).
    #[error(
        "{context}: no connection to the database within {} ms (the connect timeout, or \
         {STATEMENT_TIMEOUT_SETTING} when shorter); it is unreachable or does not answer",
        limit.as_millis()
    )]
    ConnectTimeout {
        /// What was being done.
        context: &'static str,
        /// The limit that passed.
        limit: Duration,
    },
}

impl SqlError {
    pub(crate) fn db(context: &'static str) -> impl FnOnce(DbErr) -> Self {
        move |source| Self::Database { context, source }
    }
}

/// One bid as stored, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// `bid_id`.
    pub bid_id: String,
    /// `auction_id`.
    pub auction_id: String,
    /// `name`.
    pub name: String,
    /// `price`.
    pub price: i32,
    /// `bid_ts`, in UTC.
    pub bid_ts: NaiveDateTime,
    /// `kafka_partition` (absent on rows from before the upgrade).
    pub kafka_partition: Option<i32>,
    /// `kafka_offset`.
    pub kafka_offset: Option<i64>,
}

/// What the migration found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// The table did not exist and was created.
    Created,
    /// The table existed without some product columns (the demo's table) and was upgraded.
    Upgraded,
    /// The table was up to date.
    UpToDate,
}

/// Writes bids into a MySQL or SQLite table through a SeaORM connection pool.
#[derive(Debug)]
pub struct SqlDestination {
    db: DatabaseConnection,
    kind: SqlKind,
    backend: DbBackend,
    table: TableName,
    results: Option<ResultsTable>,
    limit: StatementLimit,
    migrated: bool,
}

impl SqlDestination {
    /// Sets up the pool without connecting yet: a database that is down at start is waited for by
    /// the runtime's retries like any other outage. The table is migrated before the first write.
    pub async fn connect(settings: &SqlSettings) -> Result<Self, SqlError> {
        let kind = settings.kind()?;
        let backend = kind.backend();
        let limit = StatementLimit::new(settings);
        let url = settings
            .database_url
            .expose()
            .replacen("mariadb://", "mysql://", 1);
        let unusable =
            |e: sea_orm::sqlx::Error| SqlError::Config(format!("DATABASE_URL cannot be used: {e}"));
        let db = match kind {
            SqlKind::Mysql => {
                let connect = url
                    .parse::<MySqlConnectOptions>()
                    .map_err(unusable)?
                    .disable_statement_logging();
                let pool = pool_options(settings, settings.max_connections.max(1))
                    .after_release(move |connection: &mut MySqlConnection, _| {
                        Box::pin(async move { Ok(answers_within(limit, connection.ping()).await) })
                    })
                    .connect_lazy_with(connect);
                SqlxMySqlConnector::from_sqlx_mysql_pool(pool)
            }
            SqlKind::Sqlite => {
                let connect = url
                    .parse::<SqliteConnectOptions>()
                    .map_err(unusable)?
                    .disable_statement_logging();
                // One connection: SQLite has one writer anyway.
                let pool = pool_options(settings, 1)
                    .after_release(move |connection: &mut SqliteConnection, _| {
                        Box::pin(async move { Ok(answers_within(limit, connection.ping()).await) })
                    })
                    .connect_lazy_with(connect);
                SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)
            }
        };
        Ok(Self {
            db,
            kind,
            backend,
            table: settings.table.clone(),
            results: settings
                .results_table
                .clone()
                .map(|table| ResultsTable::new(backend, table, limit)),
            limit,
            migrated: false,
        })
    }

    /// The pool, for tests and diagnostics.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Creates the table, or upgrades the demo's table in place, keeping every row. Safe to run
    /// from several instances at once.
    pub async fn migrate(&mut self) -> Result<Migration, SqlError> {
        let migration = match self.backend {
            DbBackend::MySql => self.migrate_mysql().await?,
            _ => self.migrate_sqlite().await?,
        };
        if migration != Migration::UpToDate {
            tracing::info!(table = %self.table, ?migration, "table migrated");
        }
        if let Some(results) = &self.results {
            results.create(&self.db).await?;
        }
        self.migrated = true;
        Ok(migration)
    }

    fn quoted(&self) -> String {
        match self.backend {
            DbBackend::MySql => format!("`{}`", self.table),
            _ => format!("\"{}\"", self.table),
        }
    }

    async fn execute(&self, sql: String, context: &'static str) -> Result<(), SqlError> {
        self.limit
            .run(
                context,
                self.db.execute(Statement::from_string(self.backend, sql)),
            )
            .await
            .map(drop)
    }

    /// The `n` column of a one-row `SELECT COUNT(*) AS n` on `connection`, bounded by the limit.
    async fn count(
        &self,
        connection: &impl ConnectionTrait,
        statement: Statement,
        context: &'static str,
    ) -> Result<i64, SqlError> {
        self.limit
            .run(context, connection.query_one(statement))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()
            .map_err(SqlError::db(context))
            .map(|n| n.unwrap_or(0))
    }

    /// DDL that another instance may have run a moment earlier: "duplicate column" (1060) and
    /// "duplicate key name" (1061) mean it is done.
    async fn execute_ddl_once(&self, sql: String, context: &'static str) -> Result<(), SqlError> {
        match self.execute(sql, context).await {
            Err(SqlError::Database { source, .. })
                if matches!(mysql_code(&source), Some(1060 | 1061)) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    async fn columns(&self) -> Result<Vec<(String, String, Option<i64>)>, SqlError> {
        let statement = match self.backend {
            DbBackend::MySql => Statement::from_sql_and_values(
                self.backend,
                "SELECT CAST(COLUMN_NAME AS CHAR) AS c, CAST(COALESCE(CHARACTER_SET_NAME, '') AS CHAR) AS cs, \
                 CAST(DATETIME_PRECISION AS SIGNED) AS p \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                [self.table.as_str().into()],
            ),
            _ => Statement::from_sql_and_values(
                self.backend,
                "SELECT name AS c, '' AS cs, NULL AS p FROM pragma_table_info(?)",
                [self.table.as_str().into()],
            ),
        };
        let rows = self
            .limit
            .run(
                "cannot read the table's columns",
                self.db.query_all(statement),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String>("", "c")?.to_ascii_lowercase(),
                    row.try_get::<String>("", "cs")?,
                    row.try_get::<Option<i64>>("", "p")?,
                ))
            })
            .collect::<Result<_, DbErr>>()
            .map_err(SqlError::db("cannot read the table's columns"))
    }

    async fn migrate_mysql(&self) -> Result<Migration, SqlError> {
        let table = self.quoted();
        let columns = self.columns().await?;
        if columns.is_empty() {
            self.execute(
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (\
                     name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
                     price INT NOT NULL, \
                     bid_ts DATETIME(6) NOT NULL, \
                     bid_id CHAR(36) CHARACTER SET ascii NOT NULL, \
                     auction_id VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT 'default', \
                     kafka_partition INT NULL, \
                     kafka_offset BIGINT NULL, \
                     UNIQUE KEY bid_id_unique (bid_id), \
                     KEY auction_price (auction_id, price)\
                     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
                ),
                "cannot create the table",
            )
            .await?;
            return Ok(Migration::Created);
        }
        let has = |name: &str| columns.iter().any(|(c, _, _)| c == name);
        let mut changed = false;
        if !has("bid_id") {
            // Rows from the demo have no id: each gets a random one, then the column becomes the
            // unique idempotency key.
            self.execute_ddl_once(
                format!("ALTER TABLE {table} ADD COLUMN bid_id CHAR(36) CHARACTER SET ascii NULL"),
                "cannot add bid_id",
            )
            .await?;
            changed = true;
        }
        self.execute(
            format!("UPDATE {table} SET bid_id = UUID() WHERE bid_id IS NULL"),
            "cannot give existing rows a bid_id",
        )
        .await?;
        if !has("auction_id") {
            self.execute_ddl_once(
                format!("ALTER TABLE {table} ADD COLUMN auction_id VARCHAR(64) CHARACTER SET ascii NOT NULL DEFAULT 'default'"),
                "cannot add auction_id",
            )
            .await?;
            changed = true;
        }
        if !has("kafka_partition") {
            self.execute_ddl_once(
                format!("ALTER TABLE {table} ADD COLUMN kafka_partition INT NULL"),
                "cannot add kafka_partition",
            )
            .await?;
            changed = true;
        }
        if !has("kafka_offset") {
            self.execute_ddl_once(
                format!("ALTER TABLE {table} ADD COLUMN kafka_offset BIGINT NULL"),
                "cannot add kafka_offset",
            )
            .await?;
            changed = true;
        }
        // The demo's columns keep their names and meaning; they only widen: names take any
        // Unicode (utf8mb4) and times keep the microseconds that events carry.
        let name_ok = columns
            .iter()
            .any(|(c, cs, _)| c == "name" && cs == "utf8mb4");
        let ts_ok = columns
            .iter()
            .any(|(c, _, p)| c == "bid_ts" && *p == Some(6));
        if !name_ok || !ts_ok {
            self.execute(
                format!(
                    "ALTER TABLE {table} \
                     MODIFY name VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, \
                     MODIFY bid_ts DATETIME(6) NULL"
                ),
                "cannot widen name and bid_ts",
            )
            .await?;
            changed = true;
        }
        let unique = self
            .count(
                &self.db,
                Statement::from_sql_and_values(
                    self.backend,
                    "SELECT COUNT(*) AS n FROM information_schema.STATISTICS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'bid_id' AND NON_UNIQUE = 0",
                    [self.table.as_str().into()],
                ),
                "cannot read the table's indexes",
            )
            .await?;
        if unique == 0 {
            self.execute_ddl_once(
                format!(
                    "ALTER TABLE {table} MODIFY bid_id CHAR(36) CHARACTER SET ascii NOT NULL, \
                     ADD UNIQUE KEY bid_id_unique (bid_id)"
                ),
                "cannot make bid_id unique",
            )
            .await?;
            changed = true;
        }
        Ok(if changed {
            Migration::Upgraded
        } else {
            Migration::UpToDate
        })
    }

    async fn migrate_sqlite(&self) -> Result<Migration, SqlError> {
        let table = self.quoted();
        let columns = self.columns().await?;
        let index = format!("\"{}_bid_id_unique\"", self.table);
        if columns.is_empty() {
            self.execute(
                format!(
                    "CREATE TABLE IF NOT EXISTS {table} (\
                     name TEXT NOT NULL, price INTEGER NOT NULL, bid_ts TEXT NOT NULL, \
                     bid_id TEXT NOT NULL, auction_id TEXT NOT NULL DEFAULT 'default', \
                     kafka_partition INTEGER, kafka_offset INTEGER)"
                ),
                "cannot create the table",
            )
            .await?;
            self.execute(
                format!("CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} (bid_id)"),
                "cannot make bid_id unique",
            )
            .await?;
            return Ok(Migration::Created);
        }
        let has = |name: &str| columns.iter().any(|(c, _, _)| c == name);
        let mut changed = false;
        for (column, definition) in [
            ("bid_id", "bid_id TEXT"),
            ("auction_id", "auction_id TEXT NOT NULL DEFAULT 'default'"),
            ("kafka_partition", "kafka_partition INTEGER"),
            ("kafka_offset", "kafka_offset INTEGER"),
        ] {
            if !has(column) {
                self.execute(
                    format!("ALTER TABLE {table} ADD COLUMN {definition}"),
                    "cannot add a column",
                )
                .await?;
                changed = true;
            }
        }
        self.execute(
            format!(
                "UPDATE {table} SET bid_id = lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-' || \
                 hex(randomblob(2)) || '-' || hex(randomblob(2)) || '-' || hex(randomblob(6))) WHERE bid_id IS NULL"
            ),
            "cannot give existing rows a bid_id",
        )
        .await?;
        self.execute(
            format!("CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} (bid_id)"),
            "cannot make bid_id unique",
        )
        .await?;
        Ok(if changed {
            Migration::Upgraded
        } else {
            Migration::UpToDate
        })
    }

    async fn insert(&self, batch: &[SinkRecord]) -> Result<WriteOutcome, SqlError> {
        let table = self.quoted();
        let conflict = match self.backend {
            DbBackend::MySql => "ON DUPLICATE KEY UPDATE bid_id = bid_id",
            _ => "ON CONFLICT (bid_id) DO NOTHING",
        };
        // Taking a connection and BEGIN are bounded like any statement. A time-out below drops the
        // transaction uncommitted (see the module's header).
        let transaction = self
            .limit
            .run("cannot start a transaction", self.db.begin())
            .await?;
        let mut outcome = WriteOutcome::default();
        // In key order, the rows of a statement go to neighbouring pages of the unique index on
        // bid_id (InnoDB's clustered index when the table has no primary key) instead of pages
        // all over it (BENCHMARKS.md).
        let mut sorted: Vec<&SinkRecord> = batch.iter().collect();
        sorted.sort_unstable_by_key(|r| r.bid.bid_id.as_uuid());
        for chunk in sorted.chunks(ROWS_PER_STATEMENT) {
            // Counted first because MySQL reports a row that already existed as "affected" too
            // (the driver asks for found rows); the count only feeds metrics.
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let ids: Vec<Value> = chunk
                .iter()
                .map(|r| r.bid.bid_id.to_string().into())
                .collect();
            let existing = self
                .count(
                    &transaction,
                    Statement::from_sql_and_values(
                        self.backend,
                        format!(
                            "SELECT COUNT(*) AS n FROM {table} WHERE bid_id IN ({placeholders})"
                        ),
                        ids,
                    ),
                    "cannot look up existing bids",
                )
                .await?;
            let existing = usize::try_from(existing).unwrap_or(0).min(chunk.len());

            let rows = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 7);
            for record in chunk {
                let bid = &record.bid;
                values.push(bid.bid_id.to_string().into());
                values.push(bid.auction_id.as_str().into());
                values.push(bid.name.as_str().into());
                values.push(bid.price.get().into());
                values.push(bid.bid_ts.get().naive_utc().into());
                values.push(record.position.partition.into());
                values.push(record.position.offset.into());
            }
            self.limit
                .run(
                    "cannot insert bids",
                    transaction.execute(Statement::from_sql_and_values(
                        self.backend,
                        format!(
                            "INSERT INTO {table} (bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset) \
                             VALUES {rows} {conflict}"
                        ),
                        values,
                    )),
                )
                .await?;
            outcome.add(WriteOutcome {
                written: chunk.len() - existing,
                duplicates: existing,
            });
        }
        self.limit
            .run("cannot commit bids", transaction.commit())
            .await?;
        Ok(outcome)
    }

    /// Every row, ordered by partition and offset (rows from before the upgrade first).
    pub async fn stored_rows(&self) -> Result<Vec<StoredRow>, SqlError> {
        let rows = self
            .limit
            .run(
                "cannot read bids",
                self.db.query_all(Statement::from_string(
                    self.backend,
                    format!(
                        "SELECT bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset FROM {} \
                         ORDER BY kafka_partition, kafka_offset",
                        self.quoted()
                    ),
                )),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredRow {
                    bid_id: row.try_get("", "bid_id")?,
                    auction_id: row.try_get("", "auction_id")?,
                    name: row.try_get("", "name")?,
                    price: row.try_get("", "price")?,
                    bid_ts: row.try_get("", "bid_ts")?,
                    kafka_partition: row.try_get("", "kafka_partition")?,
                    kafka_offset: row.try_get("", "kafka_offset")?,
                })
            })
            .collect::<Result<_, DbErr>>()
            .map_err(SqlError::db("cannot read bids"))
    }
}

impl Destination for SqlDestination {
    type Error = SqlError;

    fn kind(&self) -> &'static str {
        self.kind.name()
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<WriteOutcome, SqlError> {
        if !self.migrated {
            self.migrate().await?;
        }
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        self.insert(batch).await
    }

    fn is_retriable(&self, error: &SqlError) -> bool {
        match error {
            SqlError::Config(_) | SqlError::Timeout { .. } | SqlError::ConnectTimeout { .. } => {
                true
            }
            SqlError::Database { source, .. } => !is_data_error(source),
        }
    }

    async fn rows_from_elsewhere(&mut self) -> Result<u64, SqlError> {
        if !self.migrated {
            self.migrate().await?;
        }
        // The sink writes every row with its Kafka position; the demo's rows have none.
        let count = self
            .count(
                &self.db,
                Statement::from_string(
                    self.backend,
                    format!(
                        "SELECT COUNT(*) AS n FROM {} WHERE kafka_partition IS NULL",
                        self.quoted()
                    ),
                ),
                "cannot count the rows from before the upgrade",
            )
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    fn takes_results(&self) -> bool {
        self.results.is_some()
    }

    async fn write_results(&mut self, results: &[ResultRecord]) -> Result<WriteOutcome, SqlError> {
        if !self.migrated {
            self.migrate().await?;
        }
        match &self.results {
            Some(table) if !results.is_empty() => table.insert(&self.db, results).await,
            _ => Ok(WriteOutcome::default()),
        }
    }
}

/// The MySQL error number, when the database answered with one.
fn mysql_code(error: &DbErr) -> Option<u16> {
    let sqlx_error = match error {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e,
        _ => return None,
    };
    let database = sqlx_error.as_database_error()?;
    database
        .try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>()
        .map(|e| e.number())
}

/// True for errors caused by the values of the rows themselves, which no retry can fix: only
/// those make dead letters. Anything else (connection lost, table missing, lock timeout, disk
/// full) is an outage to wait out, so that a misconfiguration never drains the topic into the
/// dead-letter topic.
fn is_data_error(error: &DbErr) -> bool {
    if let Some(code) = mysql_code(error) {
        // Data too long, incorrect value, out of range, bad datetime, NULL in NOT NULL column.
        return matches!(code, 1406 | 1366 | 1264 | 1292 | 1048 | 1265);
    }
    let sqlx_error = match error {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    // SQLite: a CHECK or NOT NULL constraint (extended codes 275, 1299); never the unique key,
    // which the conflict clause handles.
    sqlx_error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "275" || code == "1299")
}

/// The pool both kinds share: no idle connections kept at start (a database that is down is
/// waited for by the runtime's retries), and taking a connection (opening one included) bounded
/// by the connect timeout and the statement timeout, whichever is shorter.
fn pool_options<DB: sea_orm::sqlx::Database>(
    settings: &SqlSettings,
    connections: u32,
) -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .max_connections(connections)
        .min_connections(0)
        .acquire_timeout(StatementLimit::new(settings).connect)
}

/// Whether a connection going back to the pool answers a ping within the statement limit. sqlx
/// pings every returned connection (to flush a queued ROLLBACK and to find broken ones) without a
/// time limit; a connection whose statement timed out against a server that never answers would
/// keep its pool slot forever. Checked first here, bounded: `false` makes the pool close it.
async fn answers_within(
    limit: StatementLimit,
    ping: impl Future<Output = Result<(), sea_orm::sqlx::Error>>,
) -> bool {
    match tokio::time::timeout(limit.statement, ping).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::debug!(%error, "a pooled database connection is broken; closing it");
            false
        }
        Err(_) => {
            tracing::info!(
                "a database connection did not answer within {STATEMENT_TIMEOUT_SETTING}; closing it"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(TableName::parse("bid").is_ok());
        assert!(TableName::parse("bid_2026_x").is_ok());
        assert!(TableName::parse("_t").is_ok());
        assert!(TableName::parse("").is_err());
        assert!(TableName::parse("1bid").is_err());
        assert!(TableName::parse("bid; DROP TABLE bid").is_err());
        assert!(TableName::parse("b`id").is_err());
        assert!(TableName::parse(&"a".repeat(65)).is_err());
    }
}
