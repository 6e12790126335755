//! A peer run as a child process (Kafka Connect's worker in 5b, the original demo's Python writer
//! in 5c and its Flask app in 7b): its output in a log file, killed when dropped (also when its
//! step fails); the benchmark's MariaDB URL in parts for those that connect themselves; a peer's
//! topic filled with the bids in its own form; and the rows a peer writes into a MariaDB table
//! counted until all are there, the start-up (a JVM, a Python interpreter, a group join) told
//! apart from the writing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::kafka_baseline::produce;
use super::report::rate;
use super::{Bench, Outcome};

/// Fills `topic` with a peer's own form of the bids (keyed records) through the bare producer;
/// returns their mean size in bytes.
pub(super) async fn fill_peer_topic(
    bench: &Bench,
    topic: &str,
    records: Vec<(String, Vec<u8>)>,
    label: &str,
) -> Outcome<f64> {
    let records = std::sync::Arc::new(records);
    let record_bytes =
        records.iter().map(|(_, v)| v.len()).sum::<usize>() as f64 / records.len().max(1) as f64;
    produce(bench, bench.bootstrap.clone(), topic, &records, label).await?;
    Ok(record_bytes)
}

/// A peer's child process.
#[derive(Debug)]
pub(super) struct PeerProcess {
    /// What it is, for messages (`Kafka Connect`, `the demo's db_writer.py`).
    name: &'static str,
    child: Child,
    log: PathBuf,
    started: Instant,
}

impl PeerProcess {
    /// Starts `command` with its standard output and error into the file `log` (removed when
    /// the process is dropped).
    pub(super) fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Outcome<Self> {
        let output = std::fs::File::create(&log)
            .and_then(|file| Ok((file.try_clone()?, file)))
            .map_err(|e| format!("cannot create {name}'s log {}: {e}", log.display()))?;
        let started = Instant::now();
        let child = command
            .stdin(Stdio::null())
            .stdout(output.0)
            .stderr(output.1)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Self {
            name,
            child,
            log,
            started,
        })
    }

    /// Why it is no longer running, with the end of its output, if it stopped by itself.
    pub(super) fn stopped(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        Some(format!(
            "{} stopped by itself ({status}); its output ends:\n{}",
            self.name,
            self.log_tail()
        ))
    }

    /// The last 40 lines of its output, for an error message.
    pub(super) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Counts the rows of `table` every 50 ms until all `expected` are there (a table that does
    /// not exist yet counts none: a peer may create its own), with progress every 2 s; an error
    /// with the end of the peer's output if it stops by itself or `deadline` (from its start)
    /// passes first.
    pub(super) async fn count_rows_until_done(
        &mut self,
        bench: &Bench,
        db: &DatabaseConnection,
        table: &str,
        expected: u64,
        deadline: Duration,
    ) -> Outcome<PeerRun> {
        let name = self.name;
        let deadline = self.started + deadline;
        let mut first: Option<(Instant, f64)> = None;
        let mut table_exists = false;
        let mut last_report = (Instant::now(), 0.0);
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if let Some(stopped) = self.stopped() {
                return Err(format!("before writing all {expected} rows, {stopped}"));
            }
            let now = Instant::now();
            table_exists = table_exists || self::table_exists(db, table).await?;
            let rows = if table_exists {
                count_rows(db, table).await? as f64
            } else {
                0.0
            };
            if rows > 0.0 && first.is_none() {
                first = Some((now, rows));
            }
            if rows >= expected as f64 {
                let (first_at, first_rows) = first.unwrap_or((now, rows));
                return Ok(PeerRun {
                    rows: expected,
                    startup_seconds: (first_at - self.started).as_secs_f64(),
                    steady_seconds: (now - first_at).as_secs_f64(),
                    total_seconds: (now - self.started).as_secs_f64(),
                    rows_at_first_row: first_rows,
                });
            }
            if now > deadline {
                return Err(format!(
                    "{name} wrote {rows} of {expected} rows before its deadline; its output ends:\n{}",
                    self.log_tail()
                ));
            }
            let since_report = last_report.0.elapsed();
            if since_report > Duration::from_secs(2) {
                let state = if first.is_some() {
                    format!(
                        "writing, {:.0} rows/s now",
                        (rows - last_report.1) / since_report.as_secs_f64()
                    )
                } else {
                    "starting".to_owned()
                };
                bench
                    .progress
                    .say(format!("  {name} ({state}): {rows}/{expected}"));
                last_report = (Instant::now(), rows);
            }
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// How long a peer took over its rows.
#[derive(Debug)]
pub(super) struct PeerRun {
    rows: u64,
    /// From its start to its first row.
    pub(super) startup_seconds: f64,
    /// From its first row to all of them.
    steady_seconds: f64,
    /// From its start to all of them.
    pub(super) total_seconds: f64,
    rows_at_first_row: f64,
}

impl PeerRun {
    /// Rows a second from the first row to the last (the whole run's rate when the rows came at
    /// once).
    pub(super) fn rows_per_s(&self) -> f64 {
        let steady_rows = self.rows as f64 - self.rows_at_first_row;
        if self.steady_seconds > 0.0 && steady_rows > 0.0 {
            steady_rows / self.steady_seconds
        } else {
            self.rows_per_s_including_startup()
        }
    }

    /// Its rows/s and the MySQL sink's rate over it, said in progress as `name`'s.
    pub(super) fn against_mysql_sink(
        &self,
        bench: &Bench,
        name: &str,
        mysql_sink_rows_per_s: f64,
    ) -> (f64, f64) {
        let rows_per_s = self.rows_per_s();
        let ratio = mysql_sink_rows_per_s / rows_per_s.max(1e-9);
        bench.progress.say(format!(
            "   {name}: {rows_per_s:.0} rows/s ({:.1} s to its first row); MySQL sink / {name} = {ratio:.2}",
            self.startup_seconds
        ));
        (rows_per_s, ratio)
    }

    /// Rows a second from its start.
    pub(super) fn rows_per_s_including_startup(&self) -> f64 {
        rate(self.rows, self.total_seconds)
    }
}

/// The parts of the benchmark's `--database-url`, `mysql://user:password@host:port/database`
/// (user and password percent-decoded), for the peers that connect to MariaDB themselves.
#[derive(Debug)]
pub(super) struct MysqlUrl {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) password: String,
    pub(super) database: String,
}

/// Parses the benchmark's `--database-url` for `purpose` (said in the error, e.g. "to run Kafka
/// Connect against it"): scheme `mysql` or `mariadb`, a host and a database; port 3306 when
/// none is given.
pub(super) fn parse_mysql_url(database_url: &str, purpose: &str) -> Outcome<MysqlUrl> {
    let invalid = |why: &str| {
        format!(
            "--database-url must look like mysql://user:password@host:3306/database {purpose}: {why}"
        )
    };
    let parsed = reqwest::Url::parse(database_url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "mysql" | "mariadb") {
        return Err(invalid("the scheme is not mysql or mariadb"));
    }
    let host = parsed.host_str().ok_or_else(|| invalid("no host"))?;
    let database = parsed.path().trim_start_matches('/');
    if database.is_empty() {
        return Err(invalid("no database"));
    }
    let decode = |raw: &str| {
        form_urlencoded::parse(format!("x={raw}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    Ok(MysqlUrl {
        host: host.to_owned(),
        port: parsed.port().unwrap_or(3306),
        user: decode(parsed.username()),
        password: decode(parsed.password().unwrap_or("")),
        database: database.to_owned(),
    })
}

/// The rows of `table`.
pub(super) async fn count_rows(db: &DatabaseConnection, table: &str) -> Outcome<u64> {
    let row = db
        .query_one(Statement::from_string(
            DbBackend::MySql,
            format!("SELECT COUNT(*) FROM {table}"),
        ))
        .await
        .map_err(|e| format!("cannot count the rows of {table}: {e}"))?
        .ok_or_else(|| format!("SELECT COUNT(*) FROM {table} returned no row"))?;
    row.try_get_by_index::<i64>(0)
        .map(|n| u64::try_from(n).unwrap_or(0))
        .map_err(|e| format!("cannot read the row count of {table}: {e}"))
}

/// Whether `table` exists in the connection's database.
async fn table_exists(db: &DatabaseConnection, table: &str) -> Outcome<bool> {
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = ?",
            [table.into()],
        ))
        .await
        .map_err(|e| format!("cannot look for the table {table}: {e}"))?
        .ok_or_else(|| format!("looking for the table {table} returned no row"))?;
    row.try_get_by_index::<i64>(0)
        .map(|n| n > 0)
        .map_err(|e| format!("cannot read whether the table {table} exists: {e}"))
}
