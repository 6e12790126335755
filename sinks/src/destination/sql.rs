//! The SQL target through SeaORM: MySQL/MariaDB in production, SQLite for the embedded default,
//! with the same code.
//!
//! The table keeps the original demo's columns (`name`, `price`, `bid_ts`) and adds `bid_id`
//! (unique: the idempotency key), `auction_id`, `kafka_partition` and `kafka_offset`. A batch is
//! one transaction of multi-row inserts whose conflict clause makes a redelivered bid a no-op
//! (`ON DUPLICATE KEY UPDATE bid_id = bid_id` on MySQL, `ON CONFLICT (bid_id) DO NOTHING` on
//! SQLite). `INSERT IGNORE` is not used on purpose: it would also turn real errors (a truncated
//! value, a bad date) into warnings that nobody reads.

use std::fmt;
use std::time::Duration;

use auction_process::Secret;
use chrono::NaiveDateTime;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    Statement, TransactionTrait, Value,
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
    /// Time limit to open a connection or take one from the pool.
    pub connect_timeout: Duration,
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

    /// Defaults: table `bid`, 4 connections, 5 s to connect.
    pub fn new(database_url: Secret) -> Self {
        Self {
            database_url,
            table: TableName::default(),
            results_table: TableName::parse("auction_result").ok(),
            max_connections: 4,
            connect_timeout: Duration::from_secs(5),
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
    migrated: bool,
}

impl SqlDestination {
    /// Sets up the pool without connecting yet: a database that is down at start is waited for by
    /// the runtime's retries like any other outage. The table is migrated before the first write.
    pub async fn connect(settings: &SqlSettings) -> Result<Self, SqlError> {
        let kind = settings.kind()?;
        let backend = kind.backend();
        let url = settings
            .database_url
            .expose()
            .replacen("mariadb://", "mysql://", 1);
        let mut options = ConnectOptions::new(url);
        let connections = match backend {
            DbBackend::Sqlite => 1,
            _ => settings.max_connections.max(1),
        };
        options
            .max_connections(connections)
            .min_connections(0)
            .connect_timeout(settings.connect_timeout)
            .acquire_timeout(settings.connect_timeout)
            .connect_lazy(true)
            .sqlx_logging(false);
        let db = Database::connect(options).await.map_err(|e| {
            SqlError::Config(format!(
                "DATABASE_URL cannot be used: {}",
                describe_db_error(&e)
            ))
        })?;
        Ok(Self {
            db,
            kind,
            backend,
            table: settings.table.clone(),
            results: settings
                .results_table
                .clone()
                .map(|table| ResultsTable::new(backend, table)),
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
        self.db
            .execute(Statement::from_string(self.backend, sql))
            .await
            .map(|_| ())
            .map_err(SqlError::db(context))
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
            .db
            .query_all(statement)
            .await
            .map_err(SqlError::db("cannot read the table's columns"))?;
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
            .db
            .query_one(Statement::from_sql_and_values(
                self.backend,
                "SELECT COUNT(*) AS n FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = 'bid_id' AND NON_UNIQUE = 0",
                [self.table.as_str().into()],
            ))
            .await
            .map_err(SqlError::db("cannot read the table's indexes"))?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()
            .map_err(SqlError::db("cannot read the table's indexes"))?
            .unwrap_or(0);
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
        let transaction = self
            .db
            .begin()
            .await
            .map_err(SqlError::db("cannot start a transaction"))?;
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
            let existing = transaction
                .query_one(Statement::from_sql_and_values(
                    self.backend,
                    format!("SELECT COUNT(*) AS n FROM {table} WHERE bid_id IN ({placeholders})"),
                    ids,
                ))
                .await
                .map_err(SqlError::db("cannot look up existing bids"))?
                .map(|row| row.try_get::<i64>("", "n"))
                .transpose()
                .map_err(SqlError::db("cannot look up existing bids"))?
                .unwrap_or(0);
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
            transaction
                .execute(Statement::from_sql_and_values(
                    self.backend,
                    format!(
                        "INSERT INTO {table} (bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset) \
                         VALUES {rows} {conflict}"
                    ),
                    values,
                ))
                .await
                .map_err(SqlError::db("cannot insert bids"))?;
            outcome.add(WriteOutcome {
                written: chunk.len() - existing,
                duplicates: existing,
            });
        }
        transaction
            .commit()
            .await
            .map_err(SqlError::db("cannot commit bids"))?;
        Ok(outcome)
    }

    /// Every row, ordered by partition and offset (rows from before the upgrade first).
    pub async fn stored_rows(&self) -> Result<Vec<StoredRow>, SqlError> {
        let rows = self
            .db
            .query_all(Statement::from_string(
                self.backend,
                format!(
                    "SELECT bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset FROM {} \
                     ORDER BY kafka_partition, kafka_offset",
                    self.quoted()
                ),
            ))
            .await
            .map_err(SqlError::db("cannot read bids"))?;
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
            SqlError::Config(_) => true,
            SqlError::Database { source, .. } => !is_data_error(source),
        }
    }

    async fn rows_from_elsewhere(&mut self) -> Result<u64, SqlError> {
        if !self.migrated {
            self.migrate().await?;
        }
        // The sink writes every row with its Kafka position; the demo's rows have none.
        let count = self
            .db
            .query_one(Statement::from_string(
                self.backend,
                format!(
                    "SELECT COUNT(*) AS n FROM {} WHERE kafka_partition IS NULL",
                    self.quoted()
                ),
            ))
            .await
            .map_err(SqlError::db(
                "cannot count the rows from before the upgrade",
            ))?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()
            .map_err(SqlError::db(
                "cannot count the rows from before the upgrade",
            ))?
            .unwrap_or(0);
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

fn describe_db_error(error: &DbErr) -> String {
    error.to_string()
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
