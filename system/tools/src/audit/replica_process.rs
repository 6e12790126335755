//! A bid-service replica of the fault audit in a process of its own, so that the audit can
//! SIGKILL the owner of partitions mid-stream: the parent side (`ReplicaProcess`) and the
//! child side (`auction-tools audit-replica`, [`run_replica`]). The audit's clients call the
//! other two replicas, which forward to this one the calls of the partitions it owns; killing it
//! leaves its transactions open and its session to expire, as a crashed machine would.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use auction_testkit::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::child::{log_tail, spawn_logged, terminate};

/// `auction-tools audit-replica`: one bid-service replica of the fault audit, run until SIGTERM
/// (or SIGKILL).
#[derive(Debug, Clone, clap::Args)]
pub struct AuditReplicaArgs {
    /// The audit's Kafka.
    #[arg(long)]
    pub bootstrap_servers: String,
    /// The audit's schema registry.
    #[arg(long)]
    pub registry_url: String,
    /// Where it takes gRPC calls (the other replicas forward to it there).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Where it serves `/metrics` and `/readyz`.
    #[arg(long)]
    pub metrics_listen: SocketAddr,
}

/// Runs one replica of the audit until SIGINT or SIGTERM.
pub async fn run_replica(args: AuditReplicaArgs) -> Result<(), String> {
    let mut settings =
        auction_bid_service::Settings::new(&args.bootstrap_servers, &args.registry_url);
    settings.grpc_listen = args.listen;
    settings.metrics_listen = args.metrics_listen;
    settings.create_topic = false;
    // The recorder behind `/metrics`, before anything records (the audit reads the gauge of
    // owned partitions).
    let _ = auction_process::metrics_handle();
    let shutdown = auction_process::shutdown_on_signal();
    let running = auction_bid_service::spawn(settings, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    running.stopped().await
}

/// A replica process that can be SIGKILLed while it owns partitions, and started again.
#[derive(Debug)]
pub(super) struct ReplicaProcess {
    binary: PathBuf,
    args: Vec<String>,
    metrics: SocketAddr,
    log: PathBuf,
    child: Option<Child>,
}

impl ReplicaProcess {
    /// A replica on free local ports, logging into `dir`.
    pub(super) fn new(binary: &Path, bootstrap: &str, registry: &str, dir: &Path) -> Self {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let (grpc, metrics) = (local(free_port()), local(free_port()));
        let args = vec![
            "audit-replica".to_owned(),
            "--bootstrap-servers".to_owned(),
            bootstrap.to_owned(),
            "--registry-url".to_owned(),
            registry.to_owned(),
            "--listen".to_owned(),
            grpc.to_string(),
            "--metrics-listen".to_owned(),
            metrics.to_string(),
        ];
        Self {
            binary: binary.to_path_buf(),
            args,
            metrics,
            log: dir.join("replica-process.log"),
            child: None,
        }
    }

    /// Starts it, appending its output to its log, and waits until it is ready (SERVING).
    pub(super) async fn start(&mut self) -> Result<(), String> {
        let child = spawn_logged(
            &self.binary,
            &self.args,
            "warn,auction_bid_service=info",
            &self.log,
            "the replica process",
        )?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if http_get(self.metrics, "/readyz")
                .await
                .is_ok_and(|answer| answer.starts_with("HTTP/1.1 200"))
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err("the replica process was not ready within 90 s".to_owned())
    }

    /// Waits (at most 30 s) until it owns at least one partition, SIGKILLs it, checks that the
    /// kill is what ended it, and starts it again. Returns how many partitions it owned.
    pub(super) async fn kill_owner_and_restart(&mut self) -> Result<u64, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let owned = loop {
            let owned = self.owned_partitions().await?;
            if owned > 0 {
                break owned;
            }
            if Instant::now() > deadline {
                let metrics = http_get(self.metrics, "/metrics").await.unwrap_or_default();
                return Err(format!(
                    "the replica process owned no partition for 30 s; its metrics:\n{}\nits log's end:\n{}",
                    metrics
                        .lines()
                        .filter(|line| line.contains("owned"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    log_tail(&self.log, 20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let mut child = self
            .child
            .take()
            .ok_or("the replica process was not running")?;
        child
            .kill()
            .map_err(|e| format!("cannot SIGKILL the replica process: {e}"))?;
        let status = child
            .wait()
            .map_err(|e| format!("cannot reap the replica process: {e}"))?;
        if status.signal() != Some(9) {
            return Err(format!(
                "the replica process ended with {status}, not by the SIGKILL"
            ));
        }
        self.start().await?;
        Ok(owned)
    }

    /// The partitions it owns now, from its `bid_service_owned_partitions` gauge.
    async fn owned_partitions(&self) -> Result<u64, String> {
        let answer = http_get(self.metrics, "/metrics").await?;
        let gauge = auction_process::metric_sum_in(
            &answer,
            auction_bid_service::metrics::OWNED_PARTITIONS,
            None,
        );
        Ok(gauge.max(0.0) as u64)
    }

    /// SIGTERM, then waits up to 30 s for it to stop; what went wrong, if anything.
    pub(super) fn terminate(&mut self) -> Option<String> {
        let child = self.child.take()?;
        terminate(child, "the replica process", Duration::from_secs(30))
    }
}

impl Drop for ReplicaProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The whole answer (status line, headers, body) to `GET path` on `addr`.
async fn http_get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("{addr}{path} did not answer within 5 s"))?
        .map_err(|e| format!("cannot read {addr}{path}: {e}"))
}
