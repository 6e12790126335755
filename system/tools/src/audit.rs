//! The fault audit: drives bids through two bid-service replicas while sinks crash (their task
//! aborted mid-work, no orderly shutdown) and restart, a replica is restarted, and the (mock)
//! broker fails requests, slows down and goes away; then checks the books:
//! - every bid whose `PlaceBid` returned OK is in every sink exactly once;
//! - a bid whose call failed or timed out is in each sink at most once;
//! - a refused bid (too low) is in no sink;
//! - no sink's committed offsets ever went backwards.
//!
//! Every component is started through its typed start function, in this process, against the
//! mock cluster's loopback listener; the rows are read back through the sinks crate. A sink
//! killed with SIGKILL as a separate process is covered by the sinks' and the system's tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auction_process::{KafkaProperties, Secret};
use auction_proto::v1::PlaceBidRequest;
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_schema_registry::{self as registry, ServerSettings, Storage, store::Store};
use auction_schemas::RegistrySettings;
use auction_sinks::destination::csv_file::{self, CsvSettings};
use auction_sinks::destination::sql::{SqlDestination, SqlSettings};
use auction_sinks::{
    DestinationSettings, KafkaSettings, RunningSink, RuntimeSettings, SinkSettings,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "auction";
/// A loopback address on a port the system picks.
const ANY_PORT: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
const PARTITIONS: i32 = 6;
const SINKS: [&str; 2] = ["csv", "sql"];

/// How hard to push.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
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
pub struct AuditReport {
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
    /// What went wrong stopping the sinks or reading the books back.
    pub problems: Vec<String>,
}

impl AuditReport {
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

impl std::fmt::Display for AuditReport {
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

/// A sink that can crash and restart.
struct AuditedSink {
    kind: &'static str,
    settings: SinkSettings,
    shutdown: CancellationToken,
    running: Option<RunningSink>,
}

impl AuditedSink {
    async fn start(&mut self) -> Result<(), String> {
        let running = auction_sinks::spawn(self.settings.clone(), self.shutdown.clone())
            .await
            .map_err(|e| format!("cannot start the {} sink: {e}", self.kind))?;
        self.running = Some(running);
        Ok(())
    }

    /// Crashes it, then starts it again a moment later; the fault's name.
    async fn crash_and_restart(&mut self) -> Result<&'static str, String> {
        if let Some(running) = self.running.take() {
            running.abort();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.start().await?;
        Ok(if self.kind == "csv" {
            "csv sink crash"
        } else {
            "sql sink crash"
        })
    }

    /// Stops it as SIGTERM would; what went wrong, if anything.
    async fn stop(&mut self) -> Option<String> {
        self.shutdown.cancel();
        let running = self.running.take()?;
        match tokio::time::timeout(Duration::from_secs(20), running.stopped()).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("the {} sink failed: {e}", self.kind)),
            Err(_) => Some(format!("the {} sink did not stop within 20 s", self.kind)),
        }
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

async fn place_all(args: &AuditArgs, targets: Vec<String>, outcomes: Arc<Mutex<Outcomes>>) {
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
                    eprintln!("audit: {i} bids placed");
                }
                let request_id = uuid_for(i);
                let request = PlaceBidRequest {
                    auction_id: format!("audit-{}", i % 1000),
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
                                    "audit: {group} partition {} went back from {previous} to {offset}",
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

/// How often each bid id is in the CSV file, read through the sinks crate.
fn csv_counts(path: &Path) -> Result<HashMap<String, usize>, String> {
    let ids = csv_file::stored_bid_ids(path).map_err(|e| e.to_string())?;
    Ok(count(ids))
}

/// How often each bid id is in the SQL sink's table, read through the sinks crate (the same
/// driver the sink writes with).
async fn sql_counts(settings: &SqlSettings) -> Result<HashMap<String, usize>, String> {
    let destination = SqlDestination::connect(settings)
        .await
        .map_err(|e| e.to_string())?;
    let rows = destination
        .stored_rows()
        .await
        .map_err(|e| format!("cannot read the SQL sink's rows: {e}"));
    let _ = destination.connection().clone().close().await;
    Ok(count(rows?.into_iter().map(|row| row.bid_id)))
}

fn count(ids: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in ids {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Runs the check; the report says whether the books balance.
pub async fn run(args: AuditArgs) -> Result<AuditReport, String> {
    let dir = args.data_dir.join(format!("audit-{}", std::process::id()));
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
    let registry_settings = |listen| {
        let mut settings = ServerSettings::in_memory(listen);
        settings.storage = Storage::Shared(Arc::clone(&store));
        settings.preload_subject = Some("auction-value".to_owned());
        settings
    };
    let registry = registry::start(registry_settings(ANY_PORT), stop_registry.clone())
        .await
        .map_err(|e| e.to_string())?;
    let (registry_addr, registry_url) = (registry.addr, registry.url());

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
    let sink = |destination: DestinationSettings| -> Result<AuditedSink, String> {
        let kind = destination.kind().map_err(|e| e.to_string())?;
        let kafka = KafkaSettings::new(KafkaProperties::bootstrap(&bootstrap), kind);
        let mut runtime = RuntimeSettings::new(kafka, RegistrySettings::new(&registry_url));
        runtime.batch_size = 200;
        runtime.batch_linger = Duration::from_millis(50);
        Ok(AuditedSink {
            kind: if kind == "csv" { "csv" } else { "sql" },
            settings: SinkSettings {
                runtime,
                destination,
                metrics_listen: ANY_PORT,
            },
            shutdown: CancellationToken::new(),
            running: None,
        })
    };
    let sqlite_settings = SqlSettings::new(Secret::new(format!(
        "sqlite://{}?mode=rwc",
        sqlite.display()
    )));
    let mut sinks = [
        sink(DestinationSettings::Csv(CsvSettings {
            path: csv.clone(),
            rotate_daily: false,
        }))?,
        sink(DestinationSettings::Sql(sqlite_settings.clone()))?,
    ];
    for sink in &mut sinks {
        sink.start().await?;
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
    let mut report = AuditReport::default();
    let mut replica_b = Some((replica_b, stop_b));
    let mut round = 0_usize;
    while !placing.is_finished() {
        tokio::time::sleep(Duration::from_millis(args.fault_every_ms)).await;
        if placing.is_finished() {
            break;
        }
        let kind = match round % 8 {
            0 => sinks[0].crash_and_restart().await?,
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
            2 => sinks[1].crash_and_restart().await?,
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
                    restarted =
                        registry::start(registry_settings(registry_addr), stop_registry.clone())
                            .await
                            .map(|_| ())
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
        eprintln!("audit: fault: {kind}");
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
    eprintln!("audit: every bid placed; waiting for the sinks to catch up");

    // Wait until every acknowledged bid is in both sinks (or the time is up).
    let deadline = Instant::now() + Duration::from_secs(args.drain_timeout_secs);
    loop {
        // Not there yet (no file, no table) counts as no rows.
        let csv_rows = csv_counts(&csv).unwrap_or_default();
        let sql_rows = sql_counts(&sqlite_settings).await.unwrap_or_default();
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
        if let Some(problem) = sink.stop().await {
            report.problems.push(problem);
        }
    }
    stop_watch.cancel();
    report.offsets_backwards = watcher.join().unwrap_or(usize::MAX);
    let mut read_back = |counts: Result<HashMap<String, usize>, String>| {
        counts.unwrap_or_else(|error| {
            report.problems.push(error);
            HashMap::new()
        })
    };
    let csv_rows = read_back(csv_counts(&csv));
    let sql_rows = read_back(sql_counts(&sqlite_settings).await);
    for (sink, rows) in [("csv", csv_rows), ("sql", sql_rows)] {
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
