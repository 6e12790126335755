//! `auction bench`: every path of the product measured in one run, each beside the limit of what
//! it stands on, measured in the same run on the same machine.
//!
//! 1. `PlaceBid` over gRPC with N concurrent callers (closed loop) against Apache Kafka: bids/s and
//!    p50/p99/p999.
//! 2. A bare idempotent rdkafka producer into the same Apache Kafka broker with the same records (this also
//!    fills the topic that 5 and 6 read), and the ratio 1/2.
//! 3. One hot auction: every bid on one auction.
//! 4. Open loop at a fixed offered rate: `PlaceBid` latency, `PlaceBid` OK → `WatchAuction` update
//!    on a second replica, and → the row in MariaDB (the MySQL sink running).
//! 5. Each sink's rows/s from the pre-filled topic, beside its target's own limit (multi-row
//!    inserts through one MariaDB connection, psqlODBC array inserts, plain buffered file
//!    writes) and a bare consumer's rate from Apache Kafka.
//! 6. Replay: a bid service in a child process rebuilds its state from the pre-filled topic; its
//!    time and RSS (from `/proc/self/status`). Also against librdkafka's mock cluster.
//!
//! Progress goes to stderr; the table to stdout; every number to a JSON file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auction_bid_service::Settings;
use auction_process::{KafkaProperties, Secret, parse_property};
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{HighestBidRequest, PlaceBidRequest, WatchAuctionRequest};
use auction_schema_registry::{self as registry, ServerSettings};
use auction_schemas::{Bid, BidEncoder, BidId, BidInput, RegistrySettings};
use auction_sinks::destination::csv_file::CsvSettings;
use auction_sinks::destination::odbc::{Dialect, OdbcSettings};
use auction_sinks::destination::sql::{SqlDestination, SqlSettings, TableName};
use auction_sinks::{DestinationSettings, KafkaSettings, RuntimeSettings, SinkSettings};
use auction_testkit::Kafka;
use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

type Outcome<T> = Result<T, String>;

/// Sizes and targets of the benchmark run. Every size has a full default (the issue's) and a
/// `--quick` default.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Small sizes (20,000 bids, short runs) that finish in a couple of minutes.
    #[arg(long)]
    pub quick: bool,
    /// Bids in the pre-filled topic (bare producer, sinks, replay) [default: 1000000, 20000 with --quick].
    #[arg(long)]
    pub bids: Option<u64>,
    /// Auctions the pre-filled bids spread over [default: bids / 10].
    #[arg(long)]
    pub auctions: Option<u64>,
    /// PlaceBid calls of the closed-loop run [default: 200000, 20000 with --quick].
    #[arg(long)]
    pub place_bids: Option<u64>,
    /// Concurrent PlaceBid callers of the closed-loop run.
    #[arg(long, default_value_t = 256)]
    pub callers: u64,
    /// Accepted bids of the hot-auction run [default: 50000, 5000 with --quick].
    #[arg(long)]
    pub hot_bids: Option<u64>,
    /// Concurrent callers on the hot auction.
    #[arg(long, default_value_t = 64)]
    pub hot_callers: u64,
    /// Offered PlaceBid rate of the open-loop latency run, bids/s.
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// Seconds of the open-loop latency run [default: 20, 5 with --quick].
    #[arg(long)]
    pub latency_seconds: Option<u64>,
    /// Auctions the open-loop bids go to, each watched on the second replica.
    #[arg(long, default_value_t = 200)]
    pub watched_auctions: u64,
    /// Partitions of each benchmark topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// MariaDB/MySQL; tables named `bench_*` are created there and dropped at the end.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        hide_env_values = true,
        default_value = "mysql://root@127.0.0.1:3306/test"
    )]
    pub database_url: String,
    /// ODBC data source (PostgreSQL through psqlODBC); tables named `bench_*` are created and
    /// dropped.
    #[arg(
        long,
        env = "BENCH_ODBC_CONNECTION_STRING",
        hide_env_values = true,
        default_value = "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;"
    )]
    pub odbc_connection_string: String,
    /// A librdkafka property for the bid services' producer and log tailer, as `name=value`
    /// (repeatable), e.g. `fetch.wait.max.ms=10` to see what the tailer's fetch wait costs.
    #[arg(long = "kafka-property", value_name = "NAME=VALUE", value_parser = parse_property)]
    pub kafka_properties: Vec<(String, String)>,
    /// Where the JSON results are written.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
    /// Internal: replay the topic on these bootstrap servers in this process and print the time
    /// and memory as JSON.
    #[arg(long, hide = true, requires_all = ["replay_registry", "replay_topic", "replay_bids", "replay_auctions"])]
    pub replay_child: Option<String>,
    /// Internal (with --replay-child).
    #[arg(long, hide = true)]
    pub replay_registry: Option<String>,
    /// Internal (with --replay-child).
    #[arg(long, hide = true)]
    pub replay_topic: Option<String>,
    /// Internal (with --replay-child).
    #[arg(long, hide = true)]
    pub replay_bids: Option<u64>,
    /// Internal (with --replay-child).
    #[arg(long, hide = true)]
    pub replay_auctions: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Sizes {
    bids: u64,
    auctions: u64,
    place_bids: u64,
    callers: u64,
    hot_bids: u64,
    hot_callers: u64,
    rate: u64,
    latency_seconds: u64,
    watched: u64,
    partitions: i32,
}

impl Sizes {
    fn of(args: &BenchArgs) -> Outcome<Self> {
        let pick = |value: Option<u64>, full: u64, quick: u64| {
            value.unwrap_or(if args.quick { quick } else { full })
        };
        let bids = pick(args.bids, 1_000_000, 20_000);
        let sizes = Self {
            bids,
            auctions: args.auctions.unwrap_or((bids / 10).max(1)),
            place_bids: pick(args.place_bids, 200_000, 20_000),
            callers: args.callers,
            hot_bids: pick(args.hot_bids, 50_000, 5_000),
            hot_callers: args.hot_callers,
            rate: args.rate,
            latency_seconds: pick(args.latency_seconds, 20, 5),
            watched: args.watched_auctions,
            partitions: args.partitions,
        };
        let problems: Vec<&str> = [
            (sizes.bids == 0, "--bids must be at least 1"),
            (sizes.auctions == 0, "--auctions must be at least 1"),
            (
                sizes.auctions > sizes.bids,
                "--auctions must not exceed --bids",
            ),
            (sizes.place_bids == 0, "--place-bids must be at least 1"),
            (sizes.callers == 0, "--callers must be at least 1"),
            (sizes.hot_bids == 0, "--hot-bids must be at least 1"),
            (sizes.hot_callers == 0, "--hot-callers must be at least 1"),
            (sizes.rate == 0, "--rate must be at least 1"),
            (
                sizes.latency_seconds == 0,
                "--latency-seconds must be at least 1",
            ),
            (sizes.watched == 0, "--watched-auctions must be at least 1"),
            (sizes.partitions < 1, "--partitions must be at least 1"),
        ]
        .into_iter()
        .filter_map(|(bad, why)| bad.then_some(why))
        .collect();
        if problems.is_empty() {
            Ok(sizes)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Runs `auction bench` (or, with the hidden `--replay-child`, one replay measurement).
pub async fn main(args: BenchArgs) -> ExitCode {
    auction_process::logging::init_with_default_filter(false, "warn,odbc_api=error");
    let outcome = if args.replay_child.is_some() {
        replay_child(&args).await
    } else {
        run(args).await
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auction bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Progress lines on stderr, stamped with the time since the start.
#[derive(Debug, Clone)]
struct Progress(Instant);

impl Progress {
    fn say(&self, message: impl AsRef<str>) {
        eprintln!(
            "[{:>7.1}s] {}",
            self.0.elapsed().as_secs_f64(),
            message.as_ref()
        );
    }

    /// Prints `label: done/total` every two seconds until the returned token is cancelled.
    fn ticker(&self, label: &str, done: Arc<AtomicU64>, total: u64) -> CancellationToken {
        let stop = CancellationToken::new();
        let progress = self.clone();
        let label = label.to_owned();
        let token = stop.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut last = 0;
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                let now = done.load(Ordering::Relaxed);
                progress.say(format!(
                    "  {label}: {now}/{total} ({:.0}/s now, {:.0}/s average)",
                    (now - last.min(now)) as f64 / 2.0,
                    now as f64 / started.elapsed().as_secs_f64()
                ));
                last = now;
            }
        });
        stop
    }
}

fn histogram() -> Histogram<u64> {
    // Microseconds from 1 µs to 10 minutes, 3 significant digits: constant bounds that
    // hdrhistogram always accepts.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant, valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    histogram.saturating_record(micros);
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn latency_json(histogram: &Histogram<u64>) -> Value {
    json!({
        "count": histogram.len(),
        "p50_ms": ms(histogram, 0.5),
        "p99_ms": ms(histogram, 0.99),
        "p999_ms": ms(histogram, 0.999),
        "max_ms": histogram.max() as f64 / 1000.0,
    })
}

/// The resident memory of process `pid`, from /proc.
fn rss_mb(pid: u32) -> f64 {
    proc_status_kb(&format!("/proc/{pid}/status"), "VmRSS:") as f64 / 1024.0
}

fn proc_status_kb(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The `i`th bid of the pre-filled topic: auction `a-(i mod auctions)`, prices rising within
/// each auction, deterministic ids.
fn prefill_bid(i: u64, auctions: u64) -> Outcome<Bid> {
    let auction = format!("a-{}", i % auctions);
    let name = format!("Bidder {}", i % 997);
    let input = BidInput {
        auction_id: Some(&auction),
        name: &name,
        price: i64::try_from(i / auctions + 1).unwrap_or(i64::MAX),
    };
    Bid::new(
        &input,
        BidId::derived("bench", 0, i64::try_from(i).unwrap_or(i64::MAX)),
    )
    .map_err(|e| e.to_string())
}

/// Counts deliveries of a bare producer.
#[derive(Debug, Default)]
struct DeliveryCount {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// (partition, offset, index of the record) of every delivered record.
    positions: Mutex<Vec<(i32, i64, usize)>>,
}

impl rdkafka::ClientContext for DeliveryCount {}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Self::DeliveryOpaque) {
        match result {
            Ok(message) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut positions) = self.positions.lock() {
                    positions.push((
                        rdkafka::Message::partition(message),
                        rdkafka::Message::offset(message),
                        index,
                    ));
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Produces every record with an idempotent producer configured as the bid service's (acks=all,
/// linger.ms=1, 100,000 queued messages), as fast as librdkafka takes them. Returns seconds, and
/// the indexes of the records in log order (partition by partition, by offset).
fn bare_produce(
    bootstrap: &str,
    topic: &str,
    records: &[(String, Vec<u8>)],
    done: &AtomicU64,
) -> Outcome<(f64, Vec<usize>)> {
    let context = DeliveryCount::default();
    let producer: BaseProducer<DeliveryCount> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "100000")
        .set("message.timeout.ms", "60000")
        .create_with_context(context)
        .map_err(|e| format!("cannot create the producer: {e}"))?;
    let started = Instant::now();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut record = BaseRecord::with_opaque_to(topic, i)
            .key(key.as_bytes())
            .payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("cannot produce to {topic}: {e}")),
            }
        }
        if i % 1000 == 999 {
            producer.poll(Duration::ZERO);
            done.store(
                producer.context().delivered.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| format!("the producer did not flush: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let context = producer.context();
    let delivered = context.delivered.load(Ordering::Relaxed);
    done.store(delivered, Ordering::Relaxed);
    let failed = context.failed.load(Ordering::Relaxed);
    if failed > 0 || delivered != records.len() as u64 {
        let first = context
            .first_error
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        return Err(format!(
            "{delivered} of {} records delivered, {failed} failed: {first}",
            records.len()
        ));
    }
    let mut positions = context
        .positions
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    positions.sort_unstable();
    Ok((seconds, positions.into_iter().map(|(_, _, i)| i).collect()))
}

/// Reads `expected` records from the beginning of every partition with a plain consumer (no
/// decoding). Returns seconds.
fn bare_consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
    done: &AtomicU64,
) -> Outcome<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "auction-bench-bare-consumer")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .map_err(|e| format!("cannot assign {topic}/{partition}: {e}"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("cannot assign {topic}: {e}"))?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60 + expected / 1000);
    let mut count = 0u64;
    let mut last_progress = (Instant::now(), 0u64);
    while count < expected {
        if count != last_progress.1 {
            last_progress = (Instant::now(), count);
        } else if last_progress.0.elapsed() > Duration::from_secs(15) {
            return Err(format!(
                "the bare consumer stalled at {count} of {expected} records (no record for 15 s)"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the bare consumer read {count} of {expected} records before its deadline"
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                count += 1;
                if count.is_multiple_of(1000) {
                    done.store(count, Ordering::Relaxed);
                }
            }
            Some(Err(e)) => return Err(format!("the bare consumer failed: {e}")),
            None => {}
        }
    }
    done.store(count, Ordering::Relaxed);
    Ok(started.elapsed().as_secs_f64())
}

async fn connect(addr: std::net::SocketAddr) -> Outcome<BidServiceClient<Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to the bid service at {addr}: {e}"))?;
    Ok(BidServiceClient::new(channel))
}

/// Clients over `ceil(streams / 64)` connections, so that no connection carries more calls than
/// a server's default concurrent-stream limit.
async fn clients(
    addr: std::net::SocketAddr,
    streams: u64,
) -> Outcome<Vec<BidServiceClient<Channel>>> {
    let mut clients = Vec::new();
    for _ in 0..streams.div_ceil(64).max(1) {
        clients.push(connect(addr).await?);
    }
    Ok(clients)
}

async fn start_bid_service(
    bootstrap: &str,
    registry_url: &str,
    topic: &str,
    partitions: i32,
    kafka_properties: &[(String, String)],
    shutdown: CancellationToken,
) -> Outcome<auction_bid_service::RunningBidService> {
    let mut settings = Settings::new(bootstrap, registry_url);
    for (name, value) in kafka_properties {
        settings.kafka.set(name, value);
    }
    settings.grpc_listen = ([127, 0, 0, 1], 0).into();
    settings.metrics_listen = ([127, 0, 0, 1], 0).into();
    settings.topic = topic.to_owned();
    settings.topic_partitions = partitions;
    let mut service = auction_bid_service::spawn(settings, shutdown)
        .await
        .map_err(|e| format!("cannot start a bid service on {topic}: {e}"))?;
    if !service.wait_caught_up(Duration::from_secs(120)).await {
        return Err(format!(
            "the bid service on {topic} did not catch up within 120 s"
        ));
    }
    Ok(service)
}

#[derive(Debug)]
struct LoadResult {
    accepted: u64,
    rejected: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    latency: Histogram<u64>,
}

impl LoadResult {
    fn json(&self, callers: u64) -> Value {
        json!({
            "callers": callers,
            "accepted": self.accepted,
            "rejected_too_low": self.rejected,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": self.seconds,
            "bids_per_s": self.accepted as f64 / self.seconds.max(1e-9),
            "latency": latency_json(&self.latency),
        })
    }
}

/// Closed loop: `callers` tasks each place bids one after another. With `hot`, every bid goes to
/// one auction at the next price (a caller whose price was overtaken bids again, higher) until
/// `total` bids were accepted; otherwise each caller bids on its own 8 auctions.
async fn closed_loop(
    addr: std::net::SocketAddr,
    callers: u64,
    total: u64,
    hot: bool,
    progress: &Progress,
    label: &str,
) -> Outcome<LoadResult> {
    let clients = clients(addr, callers).await?;
    let accepted = Arc::new(AtomicU64::new(0));
    let next_price = Arc::new(AtomicU64::new(1));
    let failures = Arc::new(AtomicU64::new(0));
    let ticker = progress.ticker(label, Arc::clone(&accepted), total);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for caller in 0..callers {
        let mut client = clients[(caller as usize) % clients.len()].clone();
        let accepted = Arc::clone(&accepted);
        let next_price = Arc::clone(&next_price);
        let failures = Arc::clone(&failures);
        let share = total / callers + u64::from(caller < total % callers);
        tasks.spawn(async move {
            let mut latency = histogram();
            let (mut ok, mut rejected, mut errors, mut first_error) = (0u64, 0u64, 0u64, None);
            let mut k = 0u64;
            loop {
                if hot {
                    if accepted.load(Ordering::Relaxed) >= total {
                        break;
                    }
                } else if k >= share {
                    break;
                }
                if failures.load(Ordering::Relaxed) > 1000 {
                    break;
                }
                let (auction, price) = if hot {
                    ("hot".to_owned(), next_price.fetch_add(1, Ordering::Relaxed))
                } else {
                    (format!("p{caller}-{}", k % 8), k / 8 + 1)
                };
                k += 1;
                let request = PlaceBidRequest {
                    auction_id: auction,
                    name: format!("Bidder {}", k % 997),
                    price: i64::try_from(price).unwrap_or(i64::MAX),
                    request_id: String::new(),
                };
                let sent = Instant::now();
                match client.place_bid(request).await {
                    Ok(_) => {
                        record(&mut latency, sent.elapsed());
                        ok += 1;
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                        rejected += 1;
                    }
                    Err(status) => {
                        errors += 1;
                        failures.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| status.to_string());
                    }
                }
            }
            (ok, rejected, errors, first_error, latency)
        });
    }
    let mut result = LoadResult {
        accepted: 0,
        rejected: 0,
        errors: 0,
        first_error: None,
        seconds: 0.0,
        latency: histogram(),
    };
    while let Some(joined) = tasks.join_next().await {
        let (ok, rejected, errors, first_error, latency) =
            joined.map_err(|e| format!("a caller failed: {e}"))?;
        result.accepted += ok;
        result.rejected += rejected;
        result.errors += errors;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
        let _ = result.latency.add(&latency);
    }
    result.seconds = started.elapsed().as_secs_f64();
    ticker.cancel();
    if result.accepted == 0 {
        return Err(format!(
            "{label}: no bid was accepted ({} errors; first: {})",
            result.errors,
            result.first_error.as_deref().unwrap_or("none")
        ));
    }
    Ok(result)
}

/// The p50/p99 (ms) of a bid-service latency summary (`name`, in seconds) from the process's
/// metrics: where a PlaceBid call spends its time.
fn service_quantiles_ms(name: &str) -> Value {
    let rendered = auction_process::metrics_handle().render();
    let quantile = |q: &str| {
        let prefix = format!("{name}{{quantile=\"{q}\"}} ");
        rendered
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|seconds| seconds * 1000.0)
    };
    json!({ "p50_ms": quantile("0.5"), "p99_ms": quantile("0.99") })
}

/// A sink of the benchmark: on `topic` in its own consumer group, dead letters to `bench.dlq`,
/// metrics on a free port.
fn sink_settings(
    bootstrap: &str,
    registry_url: &str,
    topic: &str,
    group: &str,
    destination: DestinationSettings,
) -> Outcome<SinkSettings> {
    let kind = destination.kind().map_err(|e| e.to_string())?;
    let mut kafka = KafkaSettings::new(KafkaProperties::bootstrap(bootstrap), kind);
    kafka.topic = topic.to_owned();
    kafka.group_id = group.to_owned();
    kafka.dead_letter_topic = "bench.dlq".to_owned();
    Ok(SinkSettings {
        runtime: RuntimeSettings::new(kafka, RegistrySettings::new(registry_url)),
        destination,
        metrics_listen: ([127, 0, 0, 1], 0).into(),
    })
}

/// A MySQL destination: `table` in the database at `url`.
fn mysql_destination(url: &str, table: &str) -> Outcome<DestinationSettings> {
    let mut sql = SqlSettings::new(Secret::new(url));
    sql.table = TableName::parse(table)?;
    Ok(DestinationSettings::Sql(sql))
}

#[derive(Debug)]
struct SinkRun {
    startup_seconds: f64,
    steady_seconds: f64,
    total_seconds: f64,
    rows_at_first_progress: f64,
}

/// Runs a sink over the pre-filled topic until it has written `expected` records, then stops it.
async fn run_sink(settings: SinkSettings, expected: u64, progress: &Progress) -> Outcome<SinkRun> {
    let stop = CancellationToken::new();
    let started = Instant::now();
    let sink = auction_sinks::spawn(settings, stop.clone())
        .await
        .map_err(|e| e.to_string())?;
    let kind = sink.kind;
    let deadline = started + Duration::from_secs(120 + expected / 500);
    let mut first: Option<(Instant, f64)> = None;
    let mut last_report = Instant::now();
    let outcome = loop {
        if sink.is_finished() {
            break Err(format!("the {kind} sink stopped by itself"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = Instant::now();
        let counts = sink.progress();
        let written = (counts.written + counts.duplicates) as f64;
        if written > 0.0 && first.is_none() {
            first = Some((now, written));
        }
        if written >= expected as f64 {
            let (first_at, first_rows) = first.unwrap_or((now, written));
            break Ok(SinkRun {
                startup_seconds: (first_at - started).as_secs_f64(),
                steady_seconds: (now - first_at).as_secs_f64(),
                total_seconds: (now - started).as_secs_f64(),
                rows_at_first_progress: first_rows,
            });
        }
        if now > deadline {
            break Err(format!(
                "the {kind} sink wrote {written} of {expected} records before its deadline"
            ));
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            progress.say(format!("  {kind} sink: {written}/{expected}"));
            last_report = Instant::now();
        }
    };
    stop.cancel();
    match tokio::time::timeout(Duration::from_secs(30), sink.stopped()).await {
        Ok(Err(e)) if outcome.is_err() => Err(format!("the {kind} sink failed: {e}")),
        _ => outcome,
    }
}

async fn mysql_connect(url: &str) -> Outcome<DatabaseConnection> {
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .min_connections(1)
        .sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10));
    sea_orm::Database::connect(options)
        .await
        .map_err(|e| format!("cannot connect to MariaDB: {e}"))
}

async fn mysql_exec(db: &DatabaseConnection, sql: &str) -> Outcome<()> {
    db.execute(Statement::from_string(DbBackend::MySql, sql.to_owned()))
        .await
        .map(|_| ())
        .map_err(|e| format!("MariaDB: {sql}: {e}"))
}

/// MariaDB's own limit: the same rows as 1,000-row idempotent multi-row inserts (the sink's
/// statement shape) through one connection, into a table shaped like the sink's.
/// A table shaped like the MySQL sink's.
/// Creates the bid table `table` at `url` exactly as the MySQL sink does (its own migration),
/// so that the limits are measured on the sink's table.
async fn mysql_create_bid_table(url: &str, table: &str) -> Outcome<()> {
    let mut sql = SqlSettings::new(Secret::new(url));
    sql.table = TableName::parse(table)?;
    let mut destination = SqlDestination::connect(&sql)
        .await
        .map_err(|e| e.to_string())?;
    destination.migrate().await.map_err(|e| e.to_string())?;
    let _ = destination.connection().clone().close().await;
    Ok(())
}

/// The original demo's produce path, one caller: each bid is produced and then flushed before
/// the next (what its Flask handler does per request; the records here are already encoded).
/// Returns bids/s.
fn demo_produce(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) -> Outcome<f64> {
    // A flush sends at once and returns when the record is acknowledged: linger 0, then wait for
    // the record's delivery report.
    let producer: BaseProducer<DeliveryCount> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create_with_context(DeliveryCount::default())
        .map_err(|e| format!("cannot create the demo-path producer: {e}"))?;
    let started = Instant::now();
    for (i, (key, value)) in records.iter().enumerate() {
        producer
            .send(
                BaseRecord::with_opaque_to(topic, i)
                    .key(key.as_bytes())
                    .payload(&value[..]),
            )
            .map_err(|(e, _)| format!("the demo-path producer: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let context = producer.context();
        while context.delivered.load(Ordering::Relaxed) + context.failed.load(Ordering::Relaxed)
            <= i as u64
        {
            if Instant::now() > deadline {
                return Err("the demo-path producer got no acknowledgement within 10 s".into());
            }
            producer.poll(Duration::from_millis(1));
        }
    }
    Ok(rate(records.len() as u64, started.elapsed().as_secs_f64()))
}

/// The original demo's MySQL writer: one single-row INSERT per bid, each its own transaction
/// (autocommit), through one connection. Returns rows/s.
async fn demo_mysql_writer(
    db: &DatabaseConnection,
    url: &str,
    table: &str,
    bids: &[Bid],
) -> Outcome<f64> {
    mysql_create_bid_table(url, table).await?;
    let started = Instant::now();
    for (i, bid) in bids.iter().enumerate() {
        let values: Vec<sea_orm::Value> = vec![
            bid.name.as_str().into(),
            bid.price.get().into(),
            bid.bid_ts.get().naive_utc().into(),
            bid.bid_id.to_string().into(),
            bid.auction_id.as_str().into(),
            0i32.into(),
            (i as i64).into(),
        ];
        db.execute(Statement::from_sql_and_values(
            DbBackend::MySql,
            format!(
                "INSERT INTO {table} (name, price, bid_ts, bid_id, auction_id, kafka_partition, kafka_offset) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            values,
        ))
        .await
        .map_err(|e| format!("the demo writer's insert: {e}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = mysql_exec(db, &format!("DROP TABLE IF EXISTS {table}")).await;
    Ok(rate(bids.len() as u64, seconds))
}

async fn mysql_limit(
    db: &DatabaseConnection,
    url: &str,
    table: &str,
    bids: &[Bid],
    partitions: i32,
) -> Outcome<f64> {
    mysql_create_bid_table(url, table).await?;
    let started = Instant::now();
    for (c, chunk) in bids.chunks(1000).enumerate() {
        let placeholders = vec!["(?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO {table} (name, price, bid_ts, bid_id, auction_id, kafka_partition, kafka_offset) \
             VALUES {placeholders} ON DUPLICATE KEY UPDATE bid_id = bid_id"
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 7);
        for (j, bid) in chunk.iter().enumerate() {
            let i = (c * 1000 + j) as i64;
            values.push(bid.name.as_str().into());
            values.push(bid.price.get().into());
            values.push(bid.bid_ts.get().naive_utc().into());
            values.push(bid.bid_id.to_string().into());
            values.push(bid.auction_id.as_str().into());
            values.push(((i % i64::from(partitions)) as i32).into());
            values.push((i / i64::from(partitions)).into());
        }
        db.execute(Statement::from_sql_and_values(
            DbBackend::MySql,
            sql,
            values,
        ))
        .await
        .map_err(|e| format!("MariaDB limit insert: {e}"))?;
    }
    Ok(started.elapsed().as_secs_f64())
}

fn odbc_error(context: &'static str) -> impl Fn(odbc_api::Error) -> String {
    move |e| format!("ODBC: {context}: {e}")
}

/// psqlODBC's own limit: the same rows as 1,000-row parameter-array inserts, one transaction
/// each, through one connection.
fn odbc_limit(connection_string: &str, table: &str, bids: &[Bid], partitions: i32) -> Outcome<f64> {
    use odbc_api::ConnectionOptions;
    let environment = odbc_api::environment().map_err(odbc_error("cannot set up ODBC"))?;
    let connection = environment
        .connect_with_connection_string(
            connection_string,
            ConnectionOptions {
                login_timeout_sec: Some(5),
                ..ConnectionOptions::default()
            },
        )
        .map_err(odbc_error("cannot connect"))?;
    connection
        .execute(
            &auction_sinks::destination::odbc::create_table_sql(
                Dialect::Ansi,
                &TableName::parse(table)?,
            ),
            (),
            None,
        )
        .map_err(odbc_error("cannot create the table"))?;
    connection
        .set_autocommit(false)
        .map_err(odbc_error("cannot start manual commit mode"))?;
    // The sink's own statement and parameter layout, so the limit is measured on the same shape.
    let table_name = auction_sinks::destination::sql::TableName::parse(table)?;
    let sql = auction_sinks::destination::odbc::insert_sql(
        auction_sinks::destination::odbc::Dialect::Ansi,
        &table_name,
        1,
    );
    let started = Instant::now();
    let mismatch = || "ODBC: unexpected parameter buffer type".to_owned();
    for (c, chunk) in bids.chunks(1000).enumerate() {
        let prepared = connection
            .prepare(&sql)
            .map_err(odbc_error("cannot prepare the insert"))?;
        let mut inserter = prepared
            .into_column_inserter(
                chunk.len(),
                auction_sinks::destination::odbc::bid_parameters(),
            )
            .map_err(odbc_error("cannot bind parameter arrays"))?;
        inserter.set_num_rows(chunk.len());
        let rows: Vec<(&Bid, i32, i64)> = chunk
            .iter()
            .enumerate()
            .map(|(i, bid)| {
                let n = (c * 1000 + i) as i64;
                let partitions = i64::from(partitions);
                (bid, (n % partitions) as i32, n / partitions)
            })
            .collect();
        if !auction_sinks::destination::odbc::fill_bid_columns(&mut inserter, &rows) {
            return Err(mismatch());
        }
        inserter.execute().map_err(odbc_error("cannot insert"))?;
        connection.commit().map_err(odbc_error("cannot commit"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = connection.execute(&format!("DROP TABLE {table}"), (), None);
    let _ = connection.commit();
    Ok(seconds)
}

fn odbc_drop(connection_string: &str, table: &str) {
    if let Ok(environment) = odbc_api::environment()
        && let Ok(connection) = environment.connect_with_connection_string(
            connection_string,
            odbc_api::ConnectionOptions::default(),
        )
    {
        let _ = connection.execute(&format!("DROP TABLE IF EXISTS {table}"), (), None);
    }
}

/// The file system's own limit for the CSV sink: the same rows as CSV lines through a 64 KiB
/// buffer, one fsync at the end; and the same with an fsync after every `batch` rows (the sink
/// fsyncs each batch). Returns (seconds, seconds with per-batch fsync).
fn csv_limit(dir: &Path, bids: &[Bid], batch: usize) -> Outcome<(f64, f64)> {
    use std::io::Write;
    let write = |path: &Path, sync_every: Option<usize>| -> Outcome<f64> {
        let started = Instant::now();
        let file = std::fs::File::create(path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        out.write_all(b"bid_id,auction_id,name,price,bid_ts,kafka_partition,kafka_offset\r\n")
            .map_err(fail)?;
        for (i, bid) in bids.iter().enumerate() {
            write!(
                out,
                "{},{},{},{},{},{},{}\r\n",
                bid.bid_id,
                bid.auction_id.as_str(),
                bid.name.as_str(),
                bid.price.get(),
                bid.bid_ts.to_rfc3339(),
                i % 6,
                i / 6
            )
            .map_err(fail)?;
            if let Some(every) = sync_every
                && i % every == every - 1
            {
                out.flush().map_err(fail)?;
                out.get_ref().sync_data().map_err(fail)?;
            }
        }
        out.flush().map_err(fail)?;
        out.get_ref().sync_all().map_err(fail)?;
        Ok(started.elapsed().as_secs_f64())
    };
    let plain = write(&dir.join("limit.csv"), None)?;
    let synced = write(&dir.join("limit-fsync.csv"), Some(batch.max(1)))?;
    Ok((plain, synced))
}

/// A bid service in a child process replays `topic`; its time and memory.
async fn replay_in_child(
    bootstrap: &str,
    registry_url: &str,
    topic: &str,
    sizes: &Sizes,
) -> Outcome<Value> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let child = tokio::process::Command::new(exe)
        .args(["bench", "--replay-child", bootstrap])
        .args(["--replay-registry", registry_url, "--replay-topic", topic])
        .args(["--replay-bids", &sizes.bids.to_string()])
        .args(["--replay-auctions", &sizes.auctions.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the replay process: {e}"))?;
    let output = tokio::time::timeout(
        Duration::from_secs(300 + sizes.bids / 1000),
        child.wait_with_output(),
    )
    .await
    .map_err(|_| "the replay process did not finish in time".to_owned())?
    .map_err(|e| format!("the replay process failed: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the replay process failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .ok_or_else(|| format!("the replay process printed no result: {stdout}"))
}

/// The child side of the replay measurement.
async fn replay_child(args: &BenchArgs) -> Outcome<()> {
    let (Some(bootstrap), Some(registry_url), Some(topic), Some(bids), Some(auctions)) = (
        args.replay_child.as_deref(),
        args.replay_registry.as_deref(),
        args.replay_topic.as_deref(),
        args.replay_bids,
        args.replay_auctions,
    ) else {
        return Err("--replay-child needs every --replay-* option".to_owned());
    };
    let rss_before_kb = proc_status_kb("/proc/self/status", "VmRSS:");
    let mut settings = Settings::new(bootstrap, registry_url);
    settings.grpc_listen = ([127, 0, 0, 1], 0).into();
    settings.metrics_listen = ([127, 0, 0, 1], 0).into();
    settings.topic = topic.to_owned();
    settings.create_topic = false;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let mut service = auction_bid_service::spawn(settings, shutdown.clone())
        .await
        .map_err(|e| format!("cannot start the bid service: {e}"))?;
    if !service
        .wait_caught_up(Duration::from_secs(240 + bids / 1000))
        .await
    {
        shutdown.cancel();
        return Err("the bid service did not catch up".to_owned());
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_kb = proc_status_kb("/proc/self/status", "VmRSS:");
    let peak_kb = proc_status_kb("/proc/self/status", "VmHWM:");
    // The state is complete: auction a-0 has every one of its bids.
    let mut client = connect(service.grpc_addr).await?;
    let state = client
        .highest_bid(HighestBidRequest {
            auction_id: "a-0".to_owned(),
        })
        .await
        .map_err(|e| format!("HighestBid after replay: {e}"))?
        .into_inner()
        .auction
        .unwrap_or_default();
    let expected_a0 = bids.div_ceil(auctions);
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), service.stopped()).await;
    if state.bid_count != expected_a0 {
        return Err(format!(
            "after replay auction a-0 has {} bids, expected {expected_a0}",
            state.bid_count
        ));
    }
    println!(
        "{}",
        json!({
            "bids": bids,
            "auctions": auctions,
            "seconds": seconds,
            "bids_per_s": bids as f64 / seconds.max(1e-9),
            "rss_mb": rss_kb as f64 / 1024.0,
            "peak_rss_mb": peak_kb as f64 / 1024.0,
            "rss_before_start_mb": rss_before_kb as f64 / 1024.0,
            "auction_a0_bid_count": state.bid_count,
        })
    );
    Ok(())
}

/// What the open-loop run saw.
#[derive(Debug, Default)]
struct Seen {
    ok: HashMap<String, Instant>,
    watched: HashMap<String, Instant>,
}

/// Open loop at `rate` bids/s for `seconds` on replica `a` over `watched` auctions, each watched
/// on replica `b`, with the MySQL sink writing the topic into `table`.
async fn open_loop(
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    db: &DatabaseConnection,
    table: &str,
    sizes: &Sizes,
    progress: &Progress,
) -> Outcome<Value> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop_watching = CancellationToken::new();
    let watching = Arc::new(AtomicU64::new(0));
    let watch_clients = clients(b, sizes.watched).await?;
    let mut watchers = JoinSet::new();
    for j in 0..sizes.watched {
        let mut client = watch_clients[(j as usize) % watch_clients.len()].clone();
        let seen = Arc::clone(&seen);
        let stop = stop_watching.clone();
        let watching = Arc::clone(&watching);
        watchers.spawn(async move {
            let request = WatchAuctionRequest {
                auction_id: format!("w-{j}"),
            };
            let mut stream = match client.watch_auction(request).await {
                Ok(response) => response.into_inner(),
                Err(e) => return Err(format!("WatchAuction on the second replica: {e}")),
            };
            let mut first = true;
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return Ok(()),
                    message = stream.message() => message,
                };
                let now = Instant::now();
                match message {
                    Ok(Some(update)) => {
                        if first {
                            watching.fetch_add(1, Ordering::Relaxed);
                            first = false;
                        }
                        if let Some(bid) = update.auction.and_then(|s| s.highest_bid)
                            && let Ok(mut seen) = seen.lock()
                        {
                            seen.watched.entry(bid.bid_id).or_insert(now);
                        }
                    }
                    Ok(None) => return Err("a WatchAuction stream ended".to_owned()),
                    Err(e) => return Err(format!("a WatchAuction stream failed: {e}")),
                }
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while watching.load(Ordering::Relaxed) < sizes.watched {
        if Instant::now() > deadline {
            return Err("the WatchAuction streams did not start within 30 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Warm-up: a bid that reaches MariaDB shows that the sink is assigned and its table exists.
    let place_clients = clients(a, 256).await?;
    let warm = place_clients[0]
        .clone()
        .place_bid(PlaceBidRequest {
            auction_id: "warmup".to_owned(),
            name: "Warm Up".to_owned(),
            price: 1,
            request_id: String::new(),
        })
        .await
        .map_err(|e| format!("warm-up PlaceBid: {e}"))?
        .into_inner()
        .bid
        .map(|b| b.bid_id)
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = db
            .query_all(Statement::from_sql_and_values(
                DbBackend::MySql,
                format!("SELECT bid_id FROM {table} WHERE bid_id = ?"),
                [sea_orm::Value::from(warm.clone())],
            ))
            .await
            .map(|rows| !rows.is_empty())
            .unwrap_or(false);
        if found {
            break;
        }
        if Instant::now() > deadline {
            return Err("the warm-up bid did not reach MariaDB within 60 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The MariaDB poller: bids seen OK and not yet in the table, looked up by their unique key.
    let pending: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let generating = Arc::new(AtomicBool::new(true));
    let poller = {
        let pending = Arc::clone(&pending);
        let generating = Arc::clone(&generating);
        let db = db.clone();
        let table = table.to_owned();
        tokio::spawn(async move {
            let mut latency = histogram();
            let mut polls = 0u64;
            let started = Instant::now();
            let mut drained_deadline: Option<Instant> = None;
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let ids: Vec<String> = pending
                    .lock()
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                if !generating.load(Ordering::Relaxed) {
                    let deadline =
                        *drained_deadline.get_or_insert(Instant::now() + Duration::from_secs(60));
                    if ids.is_empty() || Instant::now() > deadline {
                        let missing = ids.len() as u64;
                        let period = started.elapsed().as_secs_f64() / polls.max(1) as f64;
                        return Ok::<_, String>((latency, missing, period));
                    }
                }
                polls += 1;
                for chunk in ids.chunks(1000) {
                    let placeholders = vec!["?"; chunk.len()].join(", ");
                    let values: Vec<sea_orm::Value> =
                        chunk.iter().map(|id| id.clone().into()).collect();
                    let rows = db
                        .query_all(Statement::from_sql_and_values(
                            DbBackend::MySql,
                            format!("SELECT bid_id FROM {table} WHERE bid_id IN ({placeholders})"),
                            values,
                        ))
                        .await
                        .map_err(|e| format!("MariaDB poll: {e}"))?;
                    let now = Instant::now();
                    if let Ok(mut pending) = pending.lock() {
                        for row in rows {
                            if let Ok(id) = row.try_get::<String>("", "bid_id")
                                && let Some(ok_at) = pending.remove(&id)
                            {
                                record(&mut latency, now.saturating_duration_since(ok_at));
                            }
                        }
                    }
                }
            }
        })
    };

    // The generator: bid i is due at start + i / rate; its latency counts from then.
    let total = sizes.rate * sizes.latency_seconds;
    let placed = Arc::new(AtomicU64::new(0));
    let ticker = progress.ticker("open loop", Arc::clone(&placed), total);
    let place_latency = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let started = tokio::time::Instant::now();
    let mut calls = JoinSet::new();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / sizes.rate as f64);
        tokio::time::sleep_until(due).await;
        let mut client = place_clients[(i as usize) % place_clients.len()].clone();
        let (seen, pending, place_latency, placed, errors, rejected, first_error) = (
            Arc::clone(&seen),
            Arc::clone(&pending),
            Arc::clone(&place_latency),
            Arc::clone(&placed),
            Arc::clone(&errors),
            Arc::clone(&rejected),
            Arc::clone(&first_error),
        );
        let due = due.into_std();
        let watched = sizes.watched;
        calls.spawn(async move {
            let request = PlaceBidRequest {
                auction_id: format!("w-{}", i % watched),
                name: format!("Bidder {}", i % 997),
                price: i64::try_from(i / watched + 1).unwrap_or(i64::MAX),
                request_id: String::new(),
            };
            match client.place_bid(request).await {
                Ok(response) => {
                    let now = Instant::now();
                    if let Ok(mut histogram) = place_latency.lock() {
                        record(&mut histogram, now.saturating_duration_since(due));
                    }
                    placed.fetch_add(1, Ordering::Relaxed);
                    let id = response
                        .into_inner()
                        .bid
                        .map(|b| b.bid_id)
                        .unwrap_or_default();
                    if let Ok(mut pending) = pending.lock() {
                        pending.insert(id.clone(), now);
                    }
                    if let Ok(mut seen) = seen.lock() {
                        seen.ok.insert(id, now);
                    }
                }
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(status) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut first) = first_error.lock() {
                        first.get_or_insert_with(|| status.to_string());
                    }
                }
            }
        });
        while calls.try_join_next().is_some() {}
    }
    let offered_seconds = started.elapsed().as_secs_f64();
    while calls.join_next().await.is_some() {}
    let all_answered_seconds = started.elapsed().as_secs_f64();
    ticker.cancel();
    generating.store(false, Ordering::Relaxed);
    // Give the second replica time to deliver the last updates.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let complete = seen
            .lock()
            .map(|s| s.ok.keys().all(|id| s.watched.contains_key(id)))
            .unwrap_or(true);
        if complete || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_watching.cancel();
    while let Some(joined) = watchers.join_next().await {
        if let Ok(Err(e)) = joined {
            return Err(e);
        }
    }
    let (mysql_latency, mysql_missing, poll_period) = poller
        .await
        .map_err(|e| format!("the MariaDB poller failed: {e}"))??;
    let mut watch_latency = histogram();
    let mut watch_missing = 0u64;
    let mut watch_before_ok = 0u64;
    if let Ok(seen) = seen.lock() {
        for (id, ok_at) in &seen.ok {
            match seen.watched.get(id) {
                Some(at) => {
                    if at < ok_at {
                        watch_before_ok += 1;
                    }
                    record(&mut watch_latency, at.saturating_duration_since(*ok_at));
                }
                None => watch_missing += 1,
            }
        }
    }
    let accepted = placed.load(Ordering::Relaxed);
    let place_latency = place_latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    Ok(json!({
        "offered_per_s": sizes.rate,
        "seconds": sizes.latency_seconds,
        "offered": total,
        "offered_seconds_actual": offered_seconds,
        "accepted": accepted,
        "accepted_per_s": accepted as f64 / all_answered_seconds.max(1e-9),
        "rejected_too_low": rejected.load(Ordering::Relaxed),
        "errors": errors.load(Ordering::Relaxed),
        "first_error": first_error.lock().ok().and_then(|f| f.clone()),
        "watched_auctions": sizes.watched,
        "place_bid": latency_json(&place_latency),
        "watch_on_second_replica": latency_json(&watch_latency),
        "watch_missing": watch_missing,
        "watch_update_before_ok": watch_before_ok,
        "mysql_row": latency_json(&mysql_latency),
        "mysql_missing": mysql_missing,
        "mysql_poll_period_ms": poll_period * 1000.0,
    }))
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_default();
    let memory_kb = proc_status_kb("/proc/meminfo", "MemTotal:");
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gb": memory_kb as f64 / 1024.0 / 1024.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

fn rate(count: u64, seconds: f64) -> f64 {
    count as f64 / seconds.max(1e-9)
}

/// The whole run.
async fn run(args: BenchArgs) -> Outcome<()> {
    let sizes = Sizes::of(&args)?;
    // Installs the metrics recorder before anything records (the services' and sinks' metrics
    // are read from it).
    let _ = auction_process::metrics_handle();
    let progress = Progress(Instant::now());
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    if let Some(dir) = args.out.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    progress.say(format!(
        "auction bench{}: {} pre-filled bids over {} auctions, {} PlaceBid calls by {} callers, {} hot bids, {} bids/s for {} s",
        if args.quick { " --quick" } else { "" },
        sizes.bids,
        sizes.auctions,
        sizes.place_bids,
        sizes.callers,
        sizes.hot_bids,
        sizes.rate,
        sizes.latency_seconds
    ));
    let kafka = Kafka::try_start()?;
    progress.say(format!(
        "Apache Kafka {} on {}",
        kafka.version, kafka.bootstrap
    ));
    let shutdown = CancellationToken::new();
    let _stop_on_exit = shutdown.clone().drop_guard();
    let registry = registry::start(
        ServerSettings::in_memory(([127, 0, 0, 1], 0).into()),
        shutdown.clone(),
    )
    .await
    .map_err(|e| format!("cannot start the schema registry: {e}"))?;
    let registry_url = registry.url();
    let bootstrap = kafka.bootstrap.clone();
    let mut results = serde_json::Map::new();

    let start_service = |topic: &'static str, stop: CancellationToken| {
        start_bid_service(
            &bootstrap,
            &registry_url,
            topic,
            sizes.partitions,
            &args.kafka_properties,
            stop,
        )
    };

    // 1 and 3: PlaceBid, closed loop, then one hot auction.
    progress.say("1. PlaceBid over gRPC, closed loop, against Apache Kafka");
    let place_stop = shutdown.child_token();
    let service = start_service("bench-place", place_stop.clone()).await?;
    let place = closed_loop(
        service.grpc_addr,
        sizes.callers,
        sizes.place_bids,
        false,
        &progress,
        "PlaceBid",
    )
    .await?;
    let breakdown = json!({
        "produce_ack": service_quantiles_ms(auction_bid_service::metrics::PRODUCE_SECONDS),
        "ack_to_applied": service_quantiles_ms(auction_bid_service::metrics::APPLY_WAIT_SECONDS),
    });
    progress.say(format!(
        "   {:.0} bids/s, p99 {:.2} ms; inside the service: {breakdown}",
        rate(place.accepted, place.seconds),
        ms(&place.latency, 0.99)
    ));
    progress.say("3. one hot auction");
    let hot = closed_loop(
        service.grpc_addr,
        sizes.hot_callers,
        sizes.hot_bids,
        true,
        &progress,
        "hot auction",
    )
    .await?;
    progress.say(format!(
        "   {:.0} accepted bids/s ({} overtaken and re-bid)",
        rate(hot.accepted, hot.seconds),
        hot.rejected
    ));
    place_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), service.stopped()).await;

    // 2: the bare producer, which also fills the topic for 5 and 6.
    progress.say(format!(
        "2. bare idempotent producer: encoding {} bids",
        sizes.bids
    ));
    let prefill_topic = "bench-prefill";
    kafka
        .try_create_topic(prefill_topic, sizes.partitions)
        .await?;
    kafka.try_create_topic("bench.dlq", 1).await?;
    let encoder = BidEncoder::new(&RegistrySettings::new(&registry_url), prefill_topic)
        .map_err(|e| e.to_string())?;
    encoder
        .register_schemas()
        .await
        .map_err(|e| format!("cannot register the bid schemas: {e}"))?;
    let mut bids = Vec::with_capacity(usize::try_from(sizes.bids).unwrap_or(0));
    let mut records = Vec::with_capacity(bids.capacity());
    for i in 0..sizes.bids {
        let bid = prefill_bid(i, sizes.auctions)?;
        let value = encoder
            .encode(&bid)
            .await
            .map_err(|e| format!("cannot encode a bid: {e}"))?;
        records.push((bid.auction_id.as_str().to_owned(), value));
        bids.push(bid);
    }
    let record_bytes =
        records.iter().map(|(_, v)| v.len()).sum::<usize>() as f64 / records.len().max(1) as f64;
    let records = Arc::new(records);
    let bids = Arc::new(bids);
    let produce = |bootstrap: String, topic: &'static str, label: &'static str| {
        let records = Arc::clone(&records);
        let done = Arc::new(AtomicU64::new(0));
        let ticker = progress.ticker(label, Arc::clone(&done), sizes.bids);
        async move {
            let outcome = tokio::task::spawn_blocking(move || {
                bare_produce(&bootstrap, topic, &records, &done)
            })
            .await
            .map_err(|e| format!("the producer task failed: {e}"))?;
            ticker.cancel();
            outcome
        }
    };
    let (produce_seconds, log_order) = produce(
        bootstrap.clone(),
        prefill_topic,
        "bare producer → Apache Kafka",
    )
    .await?;
    // The targets' limits write the records in the order a sink reads them (partition by
    // partition), which is what decides how scattered the index inserts are.
    let log_ordered_bids: Arc<Vec<Bid>> =
        Arc::new(log_order.iter().map(|&i| bids[i].clone()).collect());
    let producer_rate = rate(sizes.bids, produce_seconds);
    progress.say(format!(
        "   {producer_rate:.0} records/s of {record_bytes:.0} bytes"
    ));
    let consume = |bootstrap: String, label: &'static str| {
        let done = Arc::new(AtomicU64::new(0));
        let ticker = progress.ticker(label, Arc::clone(&done), sizes.bids);
        let (partitions, expected) = (sizes.partitions, sizes.bids);
        async move {
            let outcome = tokio::task::spawn_blocking(move || {
                bare_consume(&bootstrap, prefill_topic, partitions, expected, &done)
            })
            .await
            .map_err(|e| format!("the consumer task failed: {e}"))?;
            ticker.cancel();
            outcome
        }
    };
    progress.say("   bare consumer from Apache Kafka (what bounds the sinks and replay)");
    let consume_seconds = consume(bootstrap.clone(), "bare consumer ← Apache Kafka").await?;

    // The same against librdkafka's mock cluster, for comparison; a failure there is reported,
    // not fatal.
    progress.say("   the same against librdkafka's mock cluster");
    let mock = rdkafka::mocking::MockCluster::new(1)
        .map_err(|e| format!("cannot start the mock cluster: {e}"))?;
    mock.create_topic(prefill_topic, sizes.partitions, 1)
        .map_err(|e| format!("cannot create the topic in the mock cluster: {e}"))?;
    let mock_bootstrap = mock.bootstrap_servers();
    let mock_produce = produce(
        mock_bootstrap.clone(),
        prefill_topic,
        "bare producer → mock",
    )
    .await;
    let mock_consume = match &mock_produce {
        Ok(_) => consume(mock_bootstrap.clone(), "bare consumer ← mock").await,
        Err(e) => Err(e.clone()),
    };
    if let Err(e) = &mock_consume {
        progress.say(format!("   mock cluster: {e} (reported, not fatal)"));
    }

    let mut place_json = place.json(sizes.callers);
    place_json["inside_the_service"] = breakdown;
    results.insert("place_bid".into(), place_json);
    results.insert(
        "bare_producer".into(),
        json!({
            "broker": "kafka",
            "records": sizes.bids,
            "record_bytes": record_bytes,
            "seconds": produce_seconds,
            "records_per_s": producer_rate,
            "place_bid_ratio": rate(place.accepted, place.seconds) / producer_rate.max(1e-9),
        }),
    );
    results.insert("hot_auction".into(), hot.json(sizes.hot_callers));

    // 4: open loop on a fresh topic: replica A takes bids, replica B is watched, the MySQL sink
    // writes into MariaDB.
    progress.say(format!(
        "4. open loop at {} bids/s for {} s: PlaceBid → WatchAuction on a second replica, → MariaDB row",
        sizes.rate, sizes.latency_seconds
    ));
    let db = mysql_connect(&args.database_url).await?;
    let latency_table = format!("bench_latency_{stamp}");
    let replicas_stop = shutdown.child_token();
    let replica_a = start_service("bench-latency", replicas_stop.clone()).await?;
    let replica_b = start_service("bench-latency", replicas_stop.clone()).await?;
    let sink_stop = CancellationToken::new();
    let latency_sink = auction_sinks::spawn(
        sink_settings(
            &bootstrap,
            &registry_url,
            "bench-latency",
            &format!("bench-latency-{stamp}"),
            mysql_destination(&args.database_url, &latency_table)?,
        )?,
        sink_stop.clone(),
    )
    .await
    .map_err(|e| format!("cannot start the MySQL sink: {e}"))?;
    let latency = open_loop(
        replica_a.grpc_addr,
        replica_b.grpc_addr,
        &db,
        &latency_table,
        &sizes,
        &progress,
    )
    .await;
    let sink_failed_early = latency_sink.is_finished();
    sink_stop.cancel();
    let latency_sink_outcome =
        tokio::time::timeout(Duration::from_secs(30), latency_sink.stopped()).await;
    let latency = match latency_sink_outcome {
        Ok(Err(e)) if sink_failed_early => {
            Err(format!("the MySQL sink stopped during the open loop: {e}"))
        }
        _ => latency,
    };
    replicas_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), replica_a.stopped()).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), replica_b.stopped()).await;
    let _ = mysql_exec(&db, &format!("DROP TABLE IF EXISTS {latency_table}")).await;
    let latency = latency?;
    progress.say(format!(
        "   PlaceBid p99 {} ms, WatchAuction p99 {} ms, MariaDB row p99 {} ms",
        latency["place_bid"]["p99_ms"],
        latency["watch_on_second_replica"]["p99_ms"],
        latency["mysql_row"]["p99_ms"]
    ));
    results.insert("open_loop_latency".into(), latency);
    let kafka_rss_after_bids = rss_mb(kafka.pid());

    // 5: each sink from the pre-filled topic, beside its target's own limit.
    progress.say(format!(
        "5. sinks from the pre-filled topic of {} bids",
        sizes.bids
    ));
    let work_dir = std::env::temp_dir().join(format!("auction-bench-{stamp}"));
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| format!("cannot create {}: {e}", work_dir.display()))?;
    let mysql_table = format!("bench_sink_{stamp}");
    let mysql_limit_table = format!("bench_limit_{stamp}");
    let odbc_table = format!("bench_sink_{stamp}");
    let odbc_limit_table = format!("bench_limit_{stamp}");
    let csv_path = work_dir.join("sink.csv");
    let mut sinks = serde_json::Map::new();
    let mut odbc = OdbcSettings::new(
        Secret::new(args.odbc_connection_string.clone()),
        Dialect::Ansi,
    );
    odbc.table = TableName::parse(&odbc_table)?;
    let destinations = [
        (
            "mysql",
            mysql_destination(&args.database_url, &mysql_table)?,
        ),
        (
            "csv",
            DestinationSettings::Csv(CsvSettings {
                path: csv_path.clone(),
                rotate_daily: false,
            }),
        ),
        ("odbc", DestinationSettings::Odbc(odbc)),
    ];
    for (kind, destination) in destinations {
        progress.say(format!("   {kind} sink"));
        let settings = sink_settings(
            &bootstrap,
            &registry_url,
            prefill_topic,
            &format!("bench-{kind}-{stamp}"),
            destination,
        )?;
        let batch_size = settings.runtime.batch_size;
        let run = run_sink(settings, sizes.bids, &progress).await;
        if kind == "mysql" {
            let _ = mysql_exec(&db, &format!("DROP TABLE IF EXISTS {mysql_table}")).await;
        }
        if kind == "odbc" {
            let connection = args.odbc_connection_string.clone();
            let table = odbc_table.clone();
            let _ = tokio::task::spawn_blocking(move || odbc_drop(&connection, &table)).await;
        }
        let run = run?;
        let steady_rows = sizes.bids as f64 - run.rows_at_first_progress;
        let sink_rate = if run.steady_seconds > 0.0 && steady_rows > 0.0 {
            steady_rows / run.steady_seconds
        } else {
            rate(sizes.bids, run.total_seconds)
        };
        progress.say(format!(
            "   {kind} sink: {sink_rate:.0} rows/s; measuring the target's own limit"
        ));
        let (limit_name, limit_seconds, extra) = match kind {
            "mysql" => {
                let seconds = mysql_limit(
                    &db,
                    &args.database_url,
                    &mysql_limit_table,
                    &log_ordered_bids,
                    sizes.partitions,
                )
                .await;
                let _ = mysql_exec(&db, &format!("DROP TABLE IF EXISTS {mysql_limit_table}")).await;
                (
                    "1,000-row idempotent multi-row INSERT, one connection",
                    seconds?,
                    Value::Null,
                )
            }
            "csv" => {
                let (dir, bids) = (work_dir.clone(), Arc::clone(&bids));
                let (plain, synced) =
                    tokio::task::spawn_blocking(move || csv_limit(&dir, &bids, batch_size))
                        .await
                        .map_err(|e| format!("the CSV limit task failed: {e}"))??;
                (
                    "plain buffered writes (64 KiB buffer), one fsync at the end",
                    plain,
                    json!({
                        "fsync_every_batch_rows_per_s": rate(sizes.bids, synced),
                        "batch_rows": batch_size,
                    }),
                )
            }
            _ => {
                let (connection, table, bids, partitions) = (
                    args.odbc_connection_string.clone(),
                    odbc_limit_table.clone(),
                    Arc::clone(&log_ordered_bids),
                    sizes.partitions,
                );
                let seconds = tokio::task::spawn_blocking(move || {
                    odbc_limit(&connection, &table, &bids, partitions)
                })
                .await
                .map_err(|e| format!("the ODBC limit task failed: {e}"))?;
                if seconds.is_err() {
                    let (connection, table) = (
                        args.odbc_connection_string.clone(),
                        odbc_limit_table.clone(),
                    );
                    let _ =
                        tokio::task::spawn_blocking(move || odbc_drop(&connection, &table)).await;
                }
                (
                    "psqlODBC parameter-array INSERT, 1,000 rows per transaction",
                    seconds?,
                    Value::Null,
                )
            }
        };
        let limit_rate = rate(sizes.bids, limit_seconds);
        progress.say(format!("   {kind} limit: {limit_rate:.0} rows/s"));
        sinks.insert(
            kind.to_owned(),
            json!({
                "rows": sizes.bids,
                "batch_size": batch_size,
                "rows_per_s": sink_rate,
                "rows_per_s_including_startup": rate(sizes.bids, run.total_seconds),
                "startup_seconds": run.startup_seconds,
                "seconds": run.total_seconds,
                "limit": limit_name,
                "limit_rows_per_s": limit_rate,
                "ratio": sink_rate / limit_rate.max(1e-9),
                "limit_extra": extra,
            }),
        );
    }
    let _ = std::fs::remove_dir_all(&work_dir);
    results.insert("sinks".into(), Value::Object(sinks));
    results.insert(
        "bare_consumer".into(),
        json!({
            "broker": "kafka",
            "records": sizes.bids,
            "seconds": consume_seconds,
            "records_per_s": rate(sizes.bids, consume_seconds),
        }),
    );

    // 6: replay, in a child process, from Apache Kafka and from the mock cluster.
    progress.say(format!(
        "6. replay of {} bids over {} auctions in a child process, from Apache Kafka",
        sizes.bids, sizes.auctions
    ));
    let mut replay = replay_in_child(&bootstrap, &registry_url, prefill_topic, &sizes).await?;
    progress.say(format!(
        "   {} s, RSS {} MB",
        replay["seconds"], replay["rss_mb"]
    ));
    progress.say("   replay from the mock cluster");
    let replay_mock = if mock_consume.is_ok() {
        replay_in_child(&mock_bootstrap, &registry_url, prefill_topic, &sizes)
            .await
            .unwrap_or_else(|e| json!({ "error": e }))
    } else {
        json!({ "error": "not measured: the mock cluster could not serve the topic" })
    };
    if let Value::Object(map) = &mut replay {
        map.insert("broker".into(), json!("kafka"));
    }
    results.insert("replay".into(), replay);

    // The original demo's I/O patterns, for comparison with 1 and 5.
    let demo_count = if args.quick { 500 } else { 2000 };
    progress.say(format!(
        "the original demo's patterns: {demo_count} bids produced one by one with a flush each, \
         {demo_count} rows inserted one per commit"
    ));
    kafka
        .try_create_topic("bench-demo", sizes.partitions)
        .await?;
    let demo_records: Vec<(String, Vec<u8>)> = records.iter().take(demo_count).cloned().collect();
    let demo_bootstrap = bootstrap.clone();
    let demo_path = tokio::task::spawn_blocking(move || {
        demo_produce(&demo_bootstrap, "bench-demo", &demo_records)
    })
    .await
    .map_err(|e| format!("the demo-path task failed: {e}"))??;
    let demo_writer = demo_mysql_writer(
        &db,
        &args.database_url,
        &format!("bench_demo_{stamp}"),
        &bids[..demo_count.min(bids.len())],
    )
    .await?;
    progress.say(format!(
        "   demo path {demo_path:.0} bids/s, demo writer {demo_writer:.0} rows/s"
    ));
    results.insert(
        "original_demo".into(),
        json!({
            "records": demo_count,
            "produce_flush_per_bid_per_s": demo_path,
            "place_bid_ratio": rate(place.accepted, place.seconds) / demo_path.max(1e-9),
            "insert_commit_per_row_per_s": demo_writer,
        }),
    );
    let outcome = |r: &Outcome<f64>| match r {
        Ok(seconds) => json!(rate(sizes.bids, *seconds)),
        Err(e) => json!(format!("not measured: {e}")),
    };
    results.insert(
        "mock_cluster".into(),
        json!({
            "bare_producer_records_per_s": outcome(&mock_produce.map(|(seconds, _)| seconds)),
            "bare_consumer_records_per_s": outcome(&mock_consume),
            "replay": replay_mock,
        }),
    );
    drop(mock);
    results.insert("kafka_rss_mb".into(), json!(kafka_rss_after_bids));

    let report = json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "quick": args.quick,
        "machine": machine(),
        "broker": format!("Apache Kafka {} (one KRaft node, JVM heap up to 512 MiB), same machine; mock cluster where marked", kafka.version),
        "sizes": {
            "bids": sizes.bids, "auctions": sizes.auctions, "place_bids": sizes.place_bids,
            "callers": sizes.callers, "hot_bids": sizes.hot_bids, "hot_callers": sizes.hot_callers,
            "rate": sizes.rate, "latency_seconds": sizes.latency_seconds,
            "watched_auctions": sizes.watched, "partitions": sizes.partitions,
        },
        "measurements": Value::Object(results),
        "elapsed_seconds": progress.0.elapsed().as_secs_f64(),
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    println!("{}", table(&report));
    println!("JSON: {}", args.out.display());
    drop(kafka);
    Ok(())
}

fn num(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

/// The readable table: each measurement, its limit or target, and the ratio.
pub fn table(report: &Value) -> String {
    let m = &report["measurements"];
    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut row = |what: String, value: String, against: String, ratio: String| {
        rows.push([what, value, against, ratio]);
    };
    let pct = |x: f64| format!("{:.0} %", x * 100.0);
    let place = &m["place_bid"];
    let producer = &m["bare_producer"];
    row(
        format!(
            "1. PlaceBid, {} callers, closed loop (bids/s)",
            place["callers"]
        ),
        format!("{:.0}", num(&place["bids_per_s"])),
        "target 20000".into(),
        pct(num(&place["bids_per_s"]) / 20000.0),
    );
    row(
        "   its latency p50 / p99 / p999 (ms)".into(),
        format!(
            "{:.2} / {:.2} / {:.2}",
            num(&place["latency"]["p50_ms"]),
            num(&place["latency"]["p99_ms"]),
            num(&place["latency"]["p999_ms"])
        ),
        String::new(),
        String::new(),
    );
    row(
        format!(
            "2. bare idempotent producer, {:.0}-byte records (rec/s)",
            num(&producer["record_bytes"])
        ),
        format!("{:.0}", num(&producer["records_per_s"])),
        "limit of 1".into(),
        format!("1/2 = {}", pct(num(&producer["place_bid_ratio"]))),
    );
    let hot = &m["hot_auction"];
    row(
        format!("3. one hot auction, {} callers (bids/s)", hot["callers"]),
        format!("{:.0}", num(&hot["bids_per_s"])),
        "target 5000".into(),
        pct(num(&hot["bids_per_s"]) / 5000.0),
    );
    let demo = &m["original_demo"];
    if demo.is_object() {
        row(
            "   the demo's path, one caller: produce + flush per bid (bids/s)".into(),
            format!("{:.0}", num(&demo["produce_flush_per_bid_per_s"])),
            "1 / demo".into(),
            format!("{:.0} ×", num(&demo["place_bid_ratio"])),
        );
    }
    let open = &m["open_loop_latency"];
    let p99 = |v: &Value| {
        format!(
            "{:.2} / {:.2} / {:.2}",
            num(&v["p50_ms"]),
            num(&v["p99_ms"]),
            num(&v["p999_ms"])
        )
    };
    row(
        format!(
            "4. open loop {} bids/s offered: PlaceBid p50/p99/p999 (ms)",
            open["offered_per_s"]
        ),
        p99(&open["place_bid"]),
        "target p99 ≤ 10".into(),
        pct(num(&open["place_bid"]["p99_ms"]) / 10.0),
    );
    row(
        "   OK → WatchAuction on 2nd replica (ms)".into(),
        p99(&open["watch_on_second_replica"]),
        "target p99 ≤ 50".into(),
        pct(num(&open["watch_on_second_replica"]["p99_ms"]) / 50.0),
    );
    row(
        "   OK → row in MariaDB (ms)".into(),
        p99(&open["mysql_row"]),
        "target p99 ≤ 1000".into(),
        pct(num(&open["mysql_row"]["p99_ms"]) / 1000.0),
    );
    for (kind, label, target) in [
        ("mysql", "MySQL (MariaDB)", 30_000.0),
        ("csv", "CSV", 100_000.0),
        ("odbc", "ODBC (PostgreSQL)", 10_000.0),
    ] {
        let sink = &m["sinks"][kind];
        row(
            format!("5. {label} sink (rows/s)"),
            format!("{:.0}", num(&sink["rows_per_s"])),
            format!("target {target:.0}"),
            pct(num(&sink["rows_per_s"]) / target),
        );
        row(
            format!("   its limit: {}", sink["limit"].as_str().unwrap_or("")),
            format!("{:.0}", num(&sink["limit_rows_per_s"])),
            "sink / limit".into(),
            pct(num(&sink["ratio"])),
        );
        if kind == "mysql" && demo.is_object() {
            let writer = num(&demo["insert_commit_per_row_per_s"]);
            row(
                "   the demo's writer: one INSERT + COMMIT per row (rows/s)".into(),
                format!("{writer:.0}"),
                "sink / demo".into(),
                format!("{:.0} ×", num(&sink["rows_per_s"]) / writer.max(1e-9)),
            );
        }
    }
    row(
        "   bare consumer from Apache Kafka (rec/s)".into(),
        format!("{:.0}", num(&m["bare_consumer"]["records_per_s"])),
        String::new(),
        String::new(),
    );
    let replay = &m["replay"];
    row(
        format!(
            "6. replay {} bids / {} auctions from Apache Kafka (s)",
            replay["bids"], replay["auctions"]
        ),
        format!("{:.2}", num(&replay["seconds"])),
        "target ≤ 10 (1M bids)".into(),
        pct(num(&replay["seconds"]) / 10.0),
    );
    row(
        "   RSS after replay (MB)".into(),
        format!(
            "{:.0} (peak {:.0})",
            num(&replay["rss_mb"]),
            num(&replay["peak_rss_mb"])
        ),
        "target ≤ 200".into(),
        pct(num(&replay["rss_mb"]) / 200.0),
    );
    let mock = &m["mock_cluster"];
    let shown = |v: &Value| match v.as_f64() {
        Some(x) => format!("{x:.0}"),
        None => "not measured".to_owned(),
    };
    row(
        "mock cluster: bare producer / consumer (rec/s)".into(),
        format!(
            "{} / {}",
            shown(&mock["bare_producer_records_per_s"]),
            shown(&mock["bare_consumer_records_per_s"])
        ),
        String::new(),
        String::new(),
    );
    row(
        "mock cluster: replay (s) / RSS (MB)".into(),
        if mock["replay"]["seconds"].is_f64() {
            format!(
                "{:.2} / {:.0}",
                num(&mock["replay"]["seconds"]),
                num(&mock["replay"]["rss_mb"])
            )
        } else {
            "not measured".to_owned()
        },
        String::new(),
        String::new(),
    );
    let widths: Vec<usize> = (0..4)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
                .max(["measurement", "value", "limit / target", "ratio"][c].len())
        })
        .collect();
    let line = |cells: [&str; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        format!("| {} |", padded.join(" | "))
    };
    let mut out = vec![
        line(["measurement", "value", "limit / target", "ratio"]),
        format!(
            "|{}|",
            widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("|")
        ),
    ];
    for r in &rows {
        out.push(line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out.join("\n")
}
