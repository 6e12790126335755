//! The one way to start a sink: [`SinkSettings`] in, a [`RunningSink`] out. The `auction-sink`
//! binary, the one-process system, the benchmark and the fault audit all start sinks here.

use std::net::SocketAddr;

use auction_process::{Readiness, StartError, metrics_handle, spawn_ops_server};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::destination::csv_file::{CsvDestination, CsvSettings};
use crate::destination::odbc::{OdbcDestination, OdbcSettings};
use crate::destination::sql::{SqlDestination, SqlSettings};
use crate::health::{Progress, RunSummary};
use crate::runtime::{self, RuntimeSettings};

/// Where a sink writes.
#[derive(Debug, Clone)]
pub enum DestinationSettings {
    /// MySQL, MariaDB or SQLite, by the URL's scheme.
    Sql(SqlSettings),
    /// A CSV file with its offsets checkpoint.
    Csv(CsvSettings),
    /// Any ODBC data source.
    Odbc(OdbcSettings),
}

impl DestinationSettings {
    /// The sink kind: `mysql`, `sqlite`, `csv` or `odbc`; an error for a database URL of no
    /// known kind.
    pub fn kind(&self) -> Result<&'static str, StartError> {
        match self {
            Self::Sql(sql) => sql
                .kind()
                .map(|kind| kind.name())
                .map_err(|e| StartError::new(e.to_string())),
            Self::Csv(_) => Ok("csv"),
            Self::Odbc(_) => Ok("odbc"),
        }
    }
}

/// Everything a sink needs to run.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// Kafka, the registry, batching and retries.
    pub runtime: RuntimeSettings,
    /// Where the bids land.
    pub destination: DestinationSettings,
    /// `/healthz`, `/readyz` and `/metrics`; port 0 picks a free port (see
    /// [`RunningSink::metrics_addr`]).
    pub metrics_listen: SocketAddr,
}

/// A started sink.
#[derive(Debug)]
pub struct RunningSink {
    /// The sink kind (`mysql`, `sqlite`, `csv`, `odbc`).
    pub kind: &'static str,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
    /// True while the sink consumes and writes.
    pub readiness: Readiness,
    progress: Progress,
    task: JoinHandle<Result<RunSummary, runtime::SinkError>>,
}

impl RunningSink {
    /// What it has written so far.
    pub fn progress(&self) -> RunSummary {
        self.progress.snapshot()
    }

    /// Why it is not ready now (the registry, the target, the dead-letter topic, or a batch
    /// stuck past `SINK_STUCK_AFTER_MS`), as sentences; `None` when nothing holds it up.
    pub fn not_ready_reason(&self) -> Option<String> {
        self.progress.not_ready_reason()
    }

    /// Whether it has stopped (by shutdown or by an error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the sink has stopped (after shutdown, or by itself on an error) and returns
    /// what it wrote, or why it failed.
    pub async fn stopped(self) -> Result<RunSummary, String> {
        match self.task.await {
            Ok(outcome) => outcome.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the sink task failed: {e}")),
        }
    }
}

/// Starts a sink: serves its ops endpoints, sets up its destination (a database is connected
/// lazily, so one that is down is waited for like any outage), and runs the consumer loop until
/// `shutdown`.
pub async fn spawn(
    settings: SinkSettings,
    shutdown: CancellationToken,
) -> Result<RunningSink, StartError> {
    let kind = settings.destination.kind()?;
    let readiness = Readiness::default();
    let listen = settings.metrics_listen;
    let metrics_addr = spawn_ops_server(listen, readiness.clone(), shutdown.clone())
        .await
        .map_err(|e| StartError::new(format!("cannot serve metrics on {listen}: {e}")))?;
    metrics_handle();
    tracing::info!(
        sink = kind,
        metrics = %format!("http://{metrics_addr}/metrics"),
        properties = ?settings.runtime.kafka.properties.redacted(),
        "starting"
    );
    let progress = Progress::default();
    let runtime = settings.runtime;
    let (ready, counts) = (readiness.clone(), progress.clone());
    let task = match settings.destination {
        DestinationSettings::Sql(sql) => {
            let destination = SqlDestination::connect(&sql)
                .await
                .map_err(|e| StartError::new(e.to_string()))?;
            tokio::spawn(runtime::run(runtime, destination, ready, counts, shutdown))
        }
        DestinationSettings::Csv(csv) => {
            let destination = CsvDestination::new(csv);
            tokio::spawn(runtime::run(runtime, destination, ready, counts, shutdown))
        }
        DestinationSettings::Odbc(odbc) => {
            let destination =
                OdbcDestination::new(odbc).map_err(|e| StartError::new(e.to_string()))?;
            tokio::spawn(runtime::run(runtime, destination, ready, counts, shutdown))
        }
    };
    Ok(RunningSink {
        kind,
        metrics_addr,
        readiness,
        progress,
        task,
    })
}
