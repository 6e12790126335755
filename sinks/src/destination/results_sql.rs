//! Closed auctions' results in a SQL table of their own (`auction_result` by default), beside the
//! bid table: created at start if missing, one row per auction keyed by `auction_id`, so that a
//! redelivered result is a no-op (`ON DUPLICATE KEY UPDATE` on MySQL, `ON CONFLICT DO NOTHING` on
//! SQLite). Every statement has the bid table's time limit (`SINK_STATEMENT_TIMEOUT_MS`).

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait, Value};

use super::sql::{SqlError, StatementLimit, TableName};
use super::{ResultRecord, WriteOutcome};

/// The results table of one database.
#[derive(Debug, Clone)]
pub struct ResultsTable {
    backend: DbBackend,
    table: TableName,
    limit: StatementLimit,
}

impl ResultsTable {
    /// The table `table` on `backend`, each statement bounded by `limit`.
    pub(crate) fn new(backend: DbBackend, table: TableName, limit: StatementLimit) -> Self {
        Self {
            backend,
            table,
            limit,
        }
    }

    fn quoted(&self) -> String {
        match self.backend {
            DbBackend::MySql => format!("`{}`", self.table),
            _ => format!("\"{}\"", self.table),
        }
    }

    /// Creates the table if it does not exist (safe from several instances at once).
    pub async fn create(&self, db: &DatabaseConnection) -> Result<(), SqlError> {
        let table = self.quoted();
        let sql = match self.backend {
            DbBackend::MySql => format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 auction_id VARCHAR(64) CHARACTER SET ascii NOT NULL, \
                 title VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
                 seller VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
                 sold BOOLEAN NOT NULL, \
                 winner VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL, \
                 final_price INT NULL, \
                 winning_bid_id CHAR(36) CHARACTER SET ascii NULL, \
                 bid_count BIGINT NOT NULL, \
                 closed_at DATETIME(6) NOT NULL, \
                 kafka_partition INT NULL, \
                 kafka_offset BIGINT NULL, \
                 PRIMARY KEY (auction_id)\
                 ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            ),
            _ => format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 auction_id TEXT NOT NULL PRIMARY KEY, title TEXT NOT NULL, seller TEXT NOT NULL, \
                 sold INTEGER NOT NULL, winner TEXT NULL, final_price INTEGER NULL, \
                 winning_bid_id TEXT NULL, bid_count INTEGER NOT NULL, closed_at TEXT NOT NULL, \
                 kafka_partition INTEGER NULL, kafka_offset INTEGER NULL)"
            ),
        };
        self.limit
            .run(
                "cannot create the results table",
                db.execute(Statement::from_string(self.backend, sql)),
            )
            .await
            .map(drop)
    }

    /// Inserts the results that are not there yet, in one transaction.
    pub async fn insert(
        &self,
        db: &DatabaseConnection,
        results: &[ResultRecord],
    ) -> Result<WriteOutcome, SqlError> {
        let table = self.quoted();
        let conflict = match self.backend {
            DbBackend::MySql => "ON DUPLICATE KEY UPDATE auction_id = auction_id",
            _ => "ON CONFLICT (auction_id) DO NOTHING",
        };
        let transaction = self
            .limit
            .run("cannot start a transaction", db.begin())
            .await?;
        let mut outcome = WriteOutcome::default();
        for record in results {
            let result = &record.result;
            let existing = self
                .limit
                .run(
                    "cannot look up existing results",
                    transaction.query_one(Statement::from_sql_and_values(
                        self.backend,
                        format!("SELECT COUNT(*) AS n FROM {table} WHERE auction_id = ?"),
                        [result.auction_id.as_str().into()],
                    )),
                )
                .await?
                .map(|row| row.try_get::<i64>("", "n"))
                .transpose()
                .map_err(SqlError::db("cannot look up existing results"))?
                .unwrap_or(0);
            if existing > 0 {
                outcome.duplicates += 1;
                continue;
            }
            let closed_at = chrono::DateTime::parse_from_rfc3339(&result.closed_at)
                .map(|t| t.naive_utc())
                .unwrap_or_default();
            let values: Vec<Value> = vec![
                result.auction_id.as_str().into(),
                result.title.as_str().into(),
                result.seller.as_str().into(),
                result.sold.into(),
                result.winner.clone().into(),
                result.final_price.into(),
                result.winning_bid_id.map(|id| id.to_string()).into(),
                i64::try_from(result.bid_count).unwrap_or(i64::MAX).into(),
                closed_at.into(),
                record.position.partition.into(),
                record.position.offset.into(),
            ];
            self.limit
                .run(
                    "cannot insert results",
                    transaction.execute(Statement::from_sql_and_values(
                        self.backend,
                        format!(
                            "INSERT INTO {table} (auction_id, title, seller, sold, winner, final_price, \
                             winning_bid_id, bid_count, closed_at, kafka_partition, kafka_offset) \
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {conflict}"
                        ),
                        values,
                    )),
                )
                .await?;
            outcome.written += 1;
        }
        self.limit
            .run("cannot commit results", transaction.commit())
            .await?;
        Ok(outcome)
    }
}
