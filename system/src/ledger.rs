//! The ledger check: drives bids through two bid-service replicas while sink processes are killed
//! with SIGKILL and restarted, a replica is restarted, and the (mock) broker fails requests, slows
//! down and goes away; then checks the books:
//! - every bid whose `PlaceBid` returned OK is in every sink exactly once;
//! - a bid whose call failed or timed out is in each sink at most once;
//! - a refused bid (too low) is in no sink;
//! - no sink's committed offsets ever went backwards.
//!
//! The sinks are the production `auction-sink` binary (CSV and SQLite), started as child
//! processes against the mock cluster's loopback listener.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auction_proto::v1::PlaceBidRequest;
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_schemas::registry::{self, store::Store};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "auction";
const PARTITIONS: i32 = 6;
const SINKS: [&str; 2] = ["csv", "sql"];

/// How hard to push.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerArgs {
    /// How many bids to place.
    #[arg(long, default_value_t = 100_000)]
    pub bids: usize,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Time between two faults.
    #[arg(long, default_value_t = 2_000)]
    pub fault_every_ms: u64,
    /// Where the sinks write (a new directory is created inside).
    #[arg(long, default_value = "auction-data")]
    pub data_dir: PathBuf,
    /// Give up waiting for the sinks to catch up after this long.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout_secs: u64,
}

/// The books after a run.
#[derive(Debug, Default, Clone)]
pub struct LedgerReport {
    /// PlaceBid returned OK.
    pub acknowledged: usize,
    /// PlaceBid failed or timed out (the bid may or may not be in the log).
    pub uncertain: usize,
    /// PlaceBid refused the bid (too low).
    pub refused: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Per sink: acknowledged bids found exactly once.
    pub found_once: BTreeMap<&'static str, usize>,
    /// Per sink: acknowledged bids missing.
    pub missing: BTreeMap<&'static str, usize>,
    /// Per sink: bids found more than once.
    pub duplicated: BTreeMap<&'static str, usize>,
    /// Per sink: uncertain bids found (at most once each).
    pub uncertain_found: BTreeMap<&'static str, usize>,
    /// Per sink: refused or unknown bids found.
    pub unexpected: BTreeMap<&'static str, usize>,
    /// Committed offsets that went backwards.
    pub offsets_backwards: usize,
    /// How long the bids took to place.
    pub placing: Duration,
    /// What went wrong reading the books back, and the end of each sink's log when they do not
    /// balance.
    pub problems: Vec<String>,
}

impl LedgerReport {
    /// Whether every rule of the books holds.
    pub fn holds(&self) -> bool {
        SINKS.iter().all(|sink| {
            self.missing.get(sink).copied().unwrap_or(0) == 0
                && self.duplicated.get(sink).copied().unwrap_or(0) == 0
                && self.unexpected.get(sink).copied().unwrap_or(0) == 0
                && self.found_once.get(sink).copied().unwrap_or(0) == self.acknowledged
        }) && self.offsets_backwards == 0
    }
}

impl std::fmt::Display for LedgerReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "placed in {:.1} s: {} acknowledged, {} failed or timed out, {} refused",
            self.placing.as_secs_f64(),
            self.acknowledged,
            self.uncertain,
            self.refused
        )?;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect();
        writeln!(f, "faults: {}", faults.join(", "))?;
        for sink in SINKS {
            let get = |map: &BTreeMap<&'static str, usize>| map.get(sink).copied().unwrap_or(0);
            writeln!(
                f,
                "{sink:>4} sink: {} acknowledged bids exactly once, {} missing, {} duplicated, {} of the failed bids present (at most once), {} unexpected",
                get(&self.found_once),
                get(&self.missing),
                get(&self.duplicated),
                get(&self.uncertain_found),
                get(&self.unexpected)
            )?;
        }
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        write!(
            f,
            "committed offsets that went backwards: {}\nverdict: {}",
            self.offsets_backwards,
            if self.holds() {
                "the books balance"
            } else {
                "THE BOOKS DO NOT BALANCE"
            }
        )
    }
}

/// A sink process that can be killed and restarted.
struct SinkProcess {
    kind: &'static str,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl SinkProcess {
    fn start(&mut self, binary: &Path) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let child = Command::new(binary)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the {} sink ({}): {e}",
                    self.kind,
                    binary.display()
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Test binaries live one level down, in deps/.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is not built; build every binary first (`cargo build --release --bins`)",
            path.display()
        ))
    }
}

async fn start_replica(
    bootstrap: &str,
    registry: &str,
    listen: std::net::SocketAddr,
) -> Result<(auction_bid_service::RunningBidService, CancellationToken), String> {
    let mut settings = auction_bid_service::Settings::new(bootstrap, registry);
    settings.grpc_listen = listen;
    settings.metrics_listen = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    settings.create_topic = false;
    settings.delivery_timeout = Duration::from_secs(3);
    let shutdown = CancellationToken::new();
    let mut running = auction_bid_service::spawn(settings, shutdown.clone())
        .await
        .map_err(|e| e.to_string())?;
    if !running.wait_caught_up(Duration::from_secs(60)).await {
        return Err("a replica did not replay the log within 60 s".to_owned());
    }
    Ok((running, shutdown))
}

#[derive(Default)]
struct Outcomes {
    acknowledged: HashSet<String>,
    uncertain: HashSet<String>,
    refused: HashSet<String>,
}

async fn place_all(args: &LedgerArgs, targets: Vec<String>, outcomes: Arc<Mutex<Outcomes>>) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..args.concurrency.max(1) {
        let next = Arc::clone(&next);
        let outcomes = Arc::clone(&outcomes);
        let targets = targets.clone();
        let total = args.bids;
        workers.spawn(async move {
            let mut clients: HashMap<usize, BidServiceClient<tonic::transport::Channel>> =
                HashMap::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return;
                }
                if i > 0 && i.is_multiple_of(10_000) {
                    eprintln!("ledger: {i} bids placed");
                }
                let request_id = uuid_for(i);
                let request = PlaceBidRequest {
                    auction_id: format!("ledger-{}", i % 1000),
                    name: format!("bidder {worker}"),
                    price: i64::try_from(i / 1000 + 1).unwrap_or(i64::MAX),
                    request_id: request_id.clone(),
                };
                // Retry what may succeed later, with the same request id, a few times.
                let mut verdict = Verdict::Uncertain;
                for attempt in 0..4_usize {
                    let target = (i + attempt) % targets.len();
                    let client = match clients.get(&target) {
                        Some(client) => client.clone(),
                        None => match BidServiceClient::connect(targets[target].clone()).await {
                            Ok(client) => {
                                clients.insert(target, client.clone());
                                client
                            }
                            Err(_) => {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                continue;
                            }
                        },
                    };
                    let mut call = tonic::Request::new(request.clone());
                    call.set_timeout(Duration::from_secs(5));
                    match client.clone().place_bid(call).await {
                        Ok(_) => {
                            verdict = Verdict::Acknowledged;
                            break;
                        }
                        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                            verdict = Verdict::Refused;
                            break;
                        }
                        Err(_) => {
                            clients.remove(&target);
                            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                        }
                    }
                }
                let mut outcomes = outcomes.lock().await;
                match verdict {
                    Verdict::Acknowledged => outcomes.acknowledged.insert(request_id),
                    Verdict::Refused => outcomes.refused.insert(request_id),
                    Verdict::Uncertain => outcomes.uncertain.insert(request_id),
                };
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

enum Verdict {
    Acknowledged,
    Refused,
    Uncertain,
}

/// A request id per bid number, so the books can be read back by id.
fn uuid_for(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

/// Reads every committed offset of the sinks' groups, and counts those that went backwards.
fn watch_offsets(bootstrap: String, stop: CancellationToken) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut last: HashMap<(String, i32), i64> = HashMap::new();
        let mut backwards = 0;
        let groups = ["auction-sink-csv", "auction-sink-mysql"];
        let consumers: Vec<(String, BaseConsumer)> = groups
            .iter()
            .filter_map(|group| {
                ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("group.id", *group)
                    .set("enable.auto.commit", "false")
                    .create()
                    .ok()
                    .map(|c| ((*group).to_owned(), c))
            })
            .collect();
        while !stop.is_cancelled() {
            for (group, consumer) in &consumers {
                let mut partitions = TopicPartitionList::new();
                for p in 0..PARTITIONS {
                    partitions.add_partition(TOPIC, p);
                }
                if let Ok(committed) =
                    consumer.committed_offsets(partitions, Duration::from_secs(2))
                {
                    for element in committed.elements() {
                        if let Offset::Offset(offset) = element.offset() {
                            let key = (group.clone(), element.partition());
                            if let Some(previous) = last.get(&key)
                                && offset < *previous
                            {
                                eprintln!(
                                    "ledger: {group} partition {} went back from {previous} to {offset}",
                                    element.partition()
                                );
                                backwards += 1;
                            }
                            last.insert(key, offset);
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        backwards
    })
}

fn csv_counts(path: &Path) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text.lines().skip(1) {
            if let Some(id) = line.split(',').next() {
                *counts.entry(id.to_owned()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Bid ids in the SQL sink's SQLite table, read through the same driver the sink writes with.
async fn sqlite_counts(path: &Path) -> Result<HashMap<String, usize>, String> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let db = sea_orm::Database::connect(&url)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT bid_id FROM bid",
        ))
        .await
        .map_err(|e| format!("cannot read the bids of {}: {e}", path.display()));
    let _ = db.close().await;
    let mut counts = HashMap::new();
    for row in rows? {
        let id: String = row
            .try_get("", "bid_id")
            .map_err(|e| format!("a bid_id of {} is unreadable: {e}", path.display()))?;
        *counts.entry(id).or_insert(0) += 1;
    }
    Ok(counts)
}

/// The last `lines` lines of a log file.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs the check; the report says whether the books balance.
pub async fn run(args: LedgerArgs) -> Result<LedgerReport, String> {
    let sink_binary = sibling_binary("auction-sink")?;
    let dir = args.data_dir.join(format!("ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cluster: MockCluster<'static, DefaultProducerContext> =
        MockCluster::new(1).map_err(|e| format!("cannot start the mock cluster: {e}"))?;
    cluster
        .create_topic(TOPIC, PARTITIONS, 1)
        .map_err(|e| e.to_string())?;
    cluster
        .create_topic("auction.dlq", 1, 1)
        .map_err(|e| e.to_string())?;
    let bootstrap = cluster.bootstrap_servers();

    let mut stop_registry = CancellationToken::new();
    let store = Arc::new(Store::in_memory());
    registry::preload_bid_schemas(&store, "auction-value").map_err(|e| e.message)?;
    let (registry_addr, _) = registry::spawn(
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        Arc::clone(&store),
        None,
        stop_registry.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let registry_url = format!("http://{registry_addr}");

    let (replica_a, stop_a) = start_replica(
        &bootstrap,
        &registry_url,
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
    )
    .await?;
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?;
    let (replica_b, stop_b) = start_replica(&bootstrap, &registry_url, free).await?;
    let b_addr = replica_b.grpc_addr;
    let targets = vec![
        format!("http://{}", replica_a.grpc_addr),
        format!("http://{b_addr}"),
    ];

    let csv = dir.join("output.csv");
    let sqlite = dir.join("bids.db");
    let common = |kind: &str| -> Vec<String> {
        vec![
            "--bootstrap-servers".into(),
            bootstrap.clone(),
            "--schema-registry-url".into(),
            registry_url.clone(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
            "--batch-size".into(),
            "200".into(),
            "--batch-linger-ms".into(),
            "50".into(),
            kind.into(),
        ]
    };
    let mut csv_args = common("csv");
    csv_args.extend(["--path".into(), csv.display().to_string()]);
    let mut sql_args = common("mysql");
    sql_args.extend([
        "--database-url".into(),
        format!("sqlite://{}?mode=rwc", sqlite.display()),
    ]);
    let mut sinks = [
        SinkProcess {
            kind: "csv",
            args: csv_args,
            log: dir.join("sink-csv.log"),
            child: None,
        },
        SinkProcess {
            kind: "sql",
            args: sql_args,
            log: dir.join("sink-sql.log"),
            child: None,
        },
    ];
    for sink in &mut sinks {
        sink.start(&sink_binary)?;
    }

    let stop_watch = CancellationToken::new();
    let watcher = watch_offsets(bootstrap.clone(), stop_watch.clone());
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let started = Instant::now();
    let placing = tokio::spawn({
        let args = args.clone();
        let outcomes = Arc::clone(&outcomes);
        async move { place_all(&args, targets, outcomes).await }
    });

    // Faults, one after another, while the bids go in.
    let mut report = LedgerReport::default();
    let mut replica_b = Some((replica_b, stop_b));
    let mut round = 0_usize;
    while !placing.is_finished() {
        tokio::time::sleep(Duration::from_millis(args.fault_every_ms)).await;
        if placing.is_finished() {
            break;
        }
        let kind = match round % 8 {
            0 => {
                sinks[0].kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                sinks[0].start(&sink_binary)?;
                "SIGKILL csv sink"
            }
            1 => {
                cluster.request_errors(
                    RDKafkaApiKey::Produce,
                    &[
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                    ],
                );
                "produce request errors"
            }
            2 => {
                sinks[1].kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                sinks[1].start(&sink_binary)?;
                "SIGKILL sql sink"
            }
            3 => {
                let _ = cluster.broker_round_trip_time(1, Duration::from_millis(200));
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                let _ = cluster.broker_round_trip_time(1, Duration::from_millis(0));
                "broker latency 200 ms"
            }
            4 => {
                if let Some((running, stop)) = replica_b.take() {
                    stop.cancel();
                    let _ = running.stopped().await;
                }
                let restarted = start_replica(&bootstrap, &registry_url, b_addr).await?;
                replica_b = Some(restarted);
                "bid-service replica restart"
            }
            5 => {
                // The registry goes away and comes back on the same address with the same schemas.
                stop_registry.cancel();
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                stop_registry = CancellationToken::new();
                let mut restarted = Err(String::new());
                for _ in 0..50 {
                    restarted = registry::spawn(
                        registry_addr,
                        Arc::clone(&store),
                        None,
                        stop_registry.clone(),
                    )
                    .await
                    .map_err(|e| e.to_string());
                    if restarted.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                restarted.map_err(|e| format!("cannot restart the schema registry: {e}"))?;
                "schema registry down 1 s"
            }
            6 => {
                cluster.request_errors(
                    RDKafkaApiKey::OffsetCommit,
                    &[
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                    ],
                );
                "offset commit errors"
            }
            _ => {
                let _ = cluster.broker_down(1);
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                let _ = cluster.broker_up(1);
                "broker down 1 s"
            }
        };
        eprintln!("ledger: fault: {kind}");
        *report.faults.entry(kind).or_insert(0) += 1;
        round += 1;
    }
    placing
        .await
        .map_err(|e| format!("the bid drivers failed: {e}"))?;
    report.placing = started.elapsed();
    let outcomes = std::mem::take(&mut *outcomes.lock().await);
    report.acknowledged = outcomes.acknowledged.len();
    report.uncertain = outcomes.uncertain.len();
    report.refused = outcomes.refused.len();
    eprintln!("ledger: every bid placed; waiting for the sinks to catch up");

    // Wait until every acknowledged bid is in both sinks (or the time is up).
    let deadline = Instant::now() + Duration::from_secs(args.drain_timeout_secs);
    loop {
        let csv_rows = csv_counts(&csv);
        // Not there yet (the sink has not created its table) counts as no rows.
        let sql_rows = sqlite_counts(&sqlite).await.unwrap_or_default();
        let done = outcomes
            .acknowledged
            .iter()
            .all(|id| csv_rows.contains_key(id) && sql_rows.contains_key(id));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let in-flight batches land, then stop everything cleanly before the final count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for sink in &mut sinks {
        sink.terminate();
    }
    stop_watch.cancel();
    report.offsets_backwards = watcher.join().unwrap_or(usize::MAX);
    let sql_rows = sqlite_counts(&sqlite).await.unwrap_or_else(|error| {
        report.problems.push(error);
        HashMap::new()
    });
    for (sink, rows) in [("csv", csv_counts(&csv)), ("sql", sql_rows)] {
        let mut once = 0;
        let mut missing = 0;
        let mut duplicated = 0;
        let mut uncertain_found = 0;
        let mut unexpected = 0;
        for id in &outcomes.acknowledged {
            match rows.get(id).copied().unwrap_or(0) {
                0 => missing += 1,
                1 => once += 1,
                _ => duplicated += 1,
            }
        }
        for (id, count) in &rows {
            if outcomes.acknowledged.contains(id) {
                continue;
            }
            if outcomes.uncertain.contains(id) {
                uncertain_found += 1;
                if *count > 1 {
                    duplicated += 1;
                }
            } else {
                unexpected += 1;
            }
        }
        report.found_once.insert(sink, once);
        report.missing.insert(sink, missing);
        report.duplicated.insert(sink, duplicated);
        report.uncertain_found.insert(sink, uncertain_found);
        report.unexpected.insert(sink, unexpected);
    }
    if !report.holds() {
        for sink in &sinks {
            report.problems.push(format!(
                "the end of the {} sink's log ({}):\n{}",
                sink.kind,
                sink.log.display(),
                log_tail(&sink.log, 30)
            ));
        }
    }
    stop_a.cancel();
    let _ = replica_a.stopped().await;
    if let Some((running, stop)) = replica_b {
        stop.cancel();
        let _ = running.stopped().await;
    }
    stop_registry.cancel();
    drop(cluster);
    Ok(report)
}
