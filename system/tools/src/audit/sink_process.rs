//! The audit's sinks, each in a process of its own so that the audit can SIGKILL it: the parent
//! side (`SinkProcess`) and the child side (`auction-tools audit-sink`, [`run_sink`]), which
//! builds the sink's settings and starts it through `auction_sinks::spawn`.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use auction_process::{KafkaProperties, Secret};
use auction_schemas::RegistrySettings;
use auction_sinks::destination::csv_file::CsvSettings;
use auction_sinks::destination::sql::SqlSettings;
use auction_sinks::{DestinationSettings, KafkaSettings, RuntimeSettings, SinkSettings};

use super::child::{log_tail, spawn_logged, terminate};

/// `auction-tools audit-sink`: one sink of the fault audit, run until SIGTERM (or SIGKILL).
#[derive(Debug, Clone, clap::Args)]
pub struct AuditSinkArgs {
    /// The audit's Kafka.
    #[arg(long)]
    pub bootstrap_servers: String,
    /// The audit's schema registry.
    #[arg(long)]
    pub registry_url: String,
    /// Land the bids in this CSV file...
    #[arg(long, conflicts_with = "sqlite", required_unless_present = "sqlite")]
    pub csv: Option<PathBuf>,
    /// ...or in this SQLite database.
    #[arg(long)]
    pub sqlite: Option<PathBuf>,
}

impl AuditSinkArgs {
    /// The sink's settings: small batches (200 records or 50 ms) so that a kill lands between
    /// many writes and commits, and a 6 s group session so that a killed sink's partitions move
    /// to its restarted process within seconds, not the default 45 s.
    fn into_settings(self) -> Result<SinkSettings, String> {
        let destination = match (self.csv, self.sqlite) {
            (Some(path), _) => DestinationSettings::Csv(CsvSettings {
                path,
                rotate_daily: false,
            }),
            (None, Some(path)) => DestinationSettings::Sql(sqlite_settings(&path)),
            (None, None) => return Err("give --csv or --sqlite".to_owned()),
        };
        let kind = destination.kind().map_err(|e| e.to_string())?;
        let mut properties = KafkaProperties::bootstrap(self.bootstrap_servers);
        properties
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000");
        let kafka = KafkaSettings::new(properties, kind);
        let mut runtime = RuntimeSettings::new(kafka, RegistrySettings::new(&self.registry_url));
        runtime.batch_size = 200;
        runtime.batch_linger = Duration::from_millis(50);
        Ok(SinkSettings {
            runtime,
            destination,
            metrics_listen: ([127, 0, 0, 1], 0).into(),
        })
    }
}

/// The settings of the audit's SQLite database at `path` (the sink's and the reader's).
pub(super) fn sqlite_settings(path: &Path) -> SqlSettings {
    SqlSettings::new(Secret::new(format!("sqlite://{}?mode=rwc", path.display())))
}

/// Runs one sink of the audit until SIGINT or SIGTERM.
pub async fn run_sink(args: AuditSinkArgs) -> Result<(), String> {
    let settings = args.into_settings()?;
    let shutdown = auction_process::shutdown_on_signal();
    let sink = auction_sinks::spawn(settings, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    sink.stopped().await.map(|_| ())
}

/// A sink process that can be killed and restarted.
#[derive(Debug)]
pub(super) struct SinkProcess {
    /// `csv` or `sql`, as the report names it.
    pub(super) name: &'static str,
    /// Its consumer group.
    pub(super) group: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl SinkProcess {
    /// The CSV sink writing `path`.
    pub(super) fn csv(binary: &Path, bootstrap: &str, registry: &str, path: &Path) -> Self {
        Self::new(
            "csv",
            "auction-sink-csv",
            binary,
            bootstrap,
            registry,
            "--csv",
            path,
        )
    }

    /// The SQL sink writing the SQLite database `path`.
    pub(super) fn sqlite(binary: &Path, bootstrap: &str, registry: &str, path: &Path) -> Self {
        let group = "auction-sink-sqlite";
        Self::new("sql", group, binary, bootstrap, registry, "--sqlite", path)
    }

    fn new(
        name: &'static str,
        group: &'static str,
        binary: &Path,
        bootstrap: &str,
        registry: &str,
        destination_flag: &str,
        path: &Path,
    ) -> Self {
        let args = vec![
            "audit-sink".to_owned(),
            "--bootstrap-servers".to_owned(),
            bootstrap.to_owned(),
            "--registry-url".to_owned(),
            registry.to_owned(),
            destination_flag.to_owned(),
            path.display().to_string(),
        ];
        let log = path.with_file_name(format!("sink-{name}.log"));
        Self {
            name,
            group,
            binary: binary.to_path_buf(),
            args,
            log,
            child: None,
        }
    }

    /// Starts it, appending its output to its log (with its own start, rebalances and stop,
    /// for when the books do not balance).
    pub(super) fn start(&mut self) -> Result<(), String> {
        let child = spawn_logged(
            &self.binary,
            &self.args,
            "warn,auction_sinks=info",
            &self.log,
            &format!("the {} sink", self.name),
        )?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILLs it (checking that it was running), then starts it again a moment later.
    pub(super) async fn kill_and_restart(&mut self) -> Result<(), String> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| format!("the {} sink was not running", self.name))?;
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the {} sink had stopped by itself ({status}) before it was to be killed:\n{}",
                self.name,
                self.log_tail(30)
            ));
        }
        child
            .kill()
            .map_err(|e| format!("cannot SIGKILL the {} sink: {e}", self.name))?;
        let _ = child.wait();
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.start()
    }

    /// SIGTERM, then waits up to 20 s for it to stop; what went wrong, if anything.
    pub(super) fn terminate(&mut self) -> Option<String> {
        let child = self.child.take()?;
        terminate(
            child,
            &format!("the {} sink", self.name),
            Duration::from_secs(20),
        )
    }

    /// The last `lines` lines of its log.
    pub(super) fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
