//! `auction bench`: every path of the product measured in one run, each beside the limit of what
//! it stands on, measured in the same run on the same machine.
//!
//! 1. `PlaceBid` over gRPC with N concurrent callers (closed loop) against Apache Kafka: bids/s and
//!    p50/p99/p999, with 1, 2 and 3 replicas.
//! 2. A bare idempotent rdkafka producer into the same Apache Kafka broker with the same records (this also
//!    fills the topic that 5 and 6 read), and the ratio 1/2.
//! 3. One hot auction: every bid on one auction.
//! 4. Open loop at a fixed offered rate: `PlaceBid` latency, `PlaceBid` OK → `WatchAuction` update
//!    on a second replica, and → the row in MariaDB (the MySQL sink running).
//! 5. Each sink's rows/s from the pre-filled topic, beside its target's own limit (multi-row
//!    inserts through one MariaDB connection, psqlODBC array inserts, plain buffered file
//!    writes) and a bare consumer's rate from Apache Kafka.
//!    5b. The MySQL sink's peer: Kafka Connect's standalone worker with the Debezium JDBC sink,
//!    the same bids (as `JsonConverter` records in a second topic) upserted into MariaDB.
//!    5c. The MySQL sink's other peer: the original demo's MySQL writer (`db_writer.py`, in
//!    Python), the first 20,000 bids (2,000 with `--quick`) as the demo's JSON records in a third
//!    topic, inserted one row per commit.
//! 6. Replay: a bid service in a child process rebuilds its state from the pre-filled topic; its
//!    time and RSS (from `/proc/self/status`). Also against librdkafka's mock cluster. Then a new
//!    replica restores from the state; and (6b) the same with three times the bids over the same
//!    auctions.
//!
//! Beside 1 and 4: the bare transactional producer (2b), one per partition as the owners.
//! Beside 1: a trivial tonic unary echo driven by the same closed loop (1b), `PlaceBid`'s ceiling.
//! 7b. The original demo's Flask producer over HTTP, beside `PlaceBid` through the gateway's
//!    bid form, each at 1, 4 and 16 callers.
//!
//! Beside each step: where its CPU time went (`measurements.cpu`: this process, the broker's JVM,
//! the rest of the machine, and what stayed idle), from `/proc`.
//!
//! Progress goes to stderr; the table to stdout; every number to a JSON file.
//!
//! Layout, a module a measurement:
//! - `closed_loop`: 1 and 3, `PlaceBid` in a closed loop and on one hot auction, 1 to 3 replicas.
//! - `echo`: 1b, the trivial tonic unary echo with 1's closed loop.
//! - `transactional`: 2b, the bare transactional producer.
//! - `kafka_baseline`: 2, the bare producer and consumer (also on the mock cluster), the
//!   pre-filled topic, and the original demo's produce path.
//! - `open_loop`: 4, latency at a fixed offered rate to the second replica and to MariaDB.
//! - `sinks`: 5, each sink over the pre-filled topic.
//! - `limits`: 5's limits, each target's own, and the original demo's MySQL writer.
//! - `connect_peer`: 5b, Kafka Connect's JDBC sink (Debezium) as the MySQL sink's peer.
//! - `demo_writer_peer`: 5c, the original demo's Python MySQL writer as the MySQL sink's peer.
//! - `peer_process`: 5b's and 5c's peers as child processes, and the rows they write counted.
//! - `replay`: 6, a first start on the history and a restore from the state, in child processes.
//! - `demo_peer`: 7b, the original demo's Flask producer and the gateway's bid form over HTTP.
//! - `report`: latency histograms, `/proc` readings, the JSON report and the table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auction_process::parse_property;
use auction_schema_registry::{self as registry, RunningRegistry, ServerSettings};
use auction_testkit::Kafka;
use tokio_util::sync::{CancellationToken, DropGuard};

mod closed_loop;
mod connect_peer;
mod demo_peer;
mod demo_writer_peer;
mod echo;
mod kafka_baseline;
mod limits;
mod open_loop;
mod peer_process;
mod replay;
mod report;
mod sinks;
mod transactional;

pub use report::table;

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
    /// The bid services' commit interval (how long an owner gathers bids into one
    /// transaction), in ms [default: the service's, 2].
    #[arg(long)]
    pub commit_interval_ms: Option<u64>,
    /// The sinks' batch size in step 5 (and the CSV limit's) [default: the sinks', 1000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub sink_batch_size: Option<u64>,
    /// Recent bids each auction keeps for ListRecentBids in the replay and restore
    /// measurements (6, 6b) [default: the service's, 10]: what the restored state holds.
    #[arg(long)]
    pub recent_bids_per_auction: Option<usize>,
    /// Only steps 1 and 3 (PlaceBid in a closed loop and one hot auction, 1 to 3 replicas), their
    /// numbers printed as JSON: to try a setting quickly.
    #[arg(long, conflicts_with = "restore_only")]
    pub closed_loop_only: bool,
    /// Where the JSON results are written.
    #[arg(long, default_value = "target/bench/results.json")]
    pub out: PathBuf,
    /// Only the restore measurements (steps 6 and 6b): the pre-filled topic, a first start on its
    /// history, then a new replica's restore from the state the first one wrote (waiting
    /// `--compaction-wait-secs` between them); then the same with three times the bids.
    #[arg(long)]
    pub restore_only: bool,
    /// Seconds to wait after each first start before the restore, so that Kafka's log cleaner
    /// can compact the state topic [default: 30, 0 with --quick].
    #[arg(long)]
    pub compaction_wait_secs: Option<u64>,
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
    /// Recent bids an auction keeps in 6 and 6b (the service's default when `None`).
    recent_bids: Option<usize>,
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
            recent_bids: args.recent_bids_per_auction,
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
        replay::replay_child(&args).await
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

/// What the steps of one run share: its sizes and arguments, the broker's and the registry's
/// addresses, and the token that stops the bid services still running when the run ends.
#[derive(Debug)]
struct Bench {
    args: BenchArgs,
    sizes: Sizes,
    progress: Progress,
    /// Milliseconds since the epoch: tells this run's tables, consumer groups and files apart.
    stamp: u128,
    /// Apache Kafka's `bootstrap.servers`.
    bootstrap: String,
    /// The broker's process id, for the steps' CPU use.
    kafka_pid: u32,
    registry_url: String,
    shutdown: CancellationToken,
    _registry: RunningRegistry,
    _stop_on_exit: DropGuard,
}

impl Bench {
    /// Checks the sizes, says what the run will do and starts Apache Kafka and the schema
    /// registry.
    async fn start(args: BenchArgs) -> Outcome<(Kafka, Self)> {
        let sizes = Sizes::of(&args)?;
        // Installs the metrics recorder before anything records (the services' and sinks'
        // metrics are read from it).
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
        let stop_on_exit = shutdown.clone().drop_guard();
        let registry = registry::start(
            ServerSettings::in_memory(([127, 0, 0, 1], 0).into()),
            shutdown.clone(),
        )
        .await
        .map_err(|e| format!("cannot start the schema registry: {e}"))?;
        let bench = Self {
            args,
            sizes,
            progress,
            stamp,
            bootstrap: kafka.bootstrap.clone(),
            kafka_pid: kafka.pid(),
            registry_url: registry.url(),
            shutdown,
            _registry: registry,
            _stop_on_exit: stop_on_exit,
        };
        Ok((kafka, bench))
    }

    /// The name of this run's table for `what` (`bench_WHAT_STAMP`).
    fn table_name(&self, what: &str) -> String {
        format!("bench_{what}_{}", self.stamp)
    }
}

/// The whole run, step by step as in the list above.
async fn run(args: BenchArgs) -> Outcome<()> {
    let restore_only = args.restore_only;
    let (kafka, bench) = Bench::start(args).await?;
    let sizes = &bench.sizes;
    if restore_only {
        kafka_baseline::fill_topic(&bench, &kafka).await?;
        let (replay, restore, _) = replay::measure(&bench, None).await?;
        let scaling = replay::restore_scaling(&bench, &kafka, &restore).await?;
        let results = serde_json::json!({
            "replay": replay,
            "restore": restore,
            "restore_scaling": scaling,
        });
        println!("{results:#}");
        return Ok(());
    }
    if bench.args.closed_loop_only {
        let closed = closed_loop::measure(&bench).await?;
        let results = serde_json::json!({
            "place_bid": closed.place_bid,
            "hot_auction": closed.hot_auction,
            "replicas": closed.replicas,
        });
        println!("{results:#}");
        return Ok(());
    }
    // Where each step's CPU time went (this process, the broker, the rest of the machine).
    let mut cpu = serde_json::Map::new();
    let meter = report::CpuMeter::start(bench.kafka_pid);
    // 1 and 3: PlaceBid, closed loop, then one hot auction.
    let closed = closed_loop::measure(&bench).await?;
    cpu.insert("1_3_closed_loops_1_to_3_replicas".into(), meter.json());
    // 1b: the trivial echo with the same closed loop.
    let meter = report::CpuMeter::start(bench.kafka_pid);
    let echo = echo::measure(&bench, closed.bids_per_s).await?;
    cpu.insert("1b_echo".into(), meter.json());
    // 2: the bare producer, which also fills the topic for 5 and 6, and the bare consumer; the
    // same against librdkafka's mock cluster.
    let meter = report::CpuMeter::start(bench.kafka_pid);
    let prefill = kafka_baseline::fill_topic(&bench, &kafka).await?;
    cpu.insert("2_bare_producer_and_consumer".into(), meter.json());
    let meter = report::CpuMeter::start(bench.kafka_pid);
    let transactional = transactional::measure(&bench, &kafka, prefill.records()).await?;
    cpu.insert("2b_transactional_producers".into(), meter.json());
    let mock = kafka_baseline::on_mock_cluster(&bench, &prefill).await?;
    let mut results = serde_json::Map::new();
    results.insert("place_bid".into(), closed.place_bid);
    results.insert("echo".into(), echo);
    results.insert(
        "bare_producer".into(),
        prefill.producer_json(sizes, closed.bids_per_s),
    );
    results.insert("hot_auction".into(), closed.hot_auction);
    results.insert("replicas".into(), closed.replicas);
    results.insert("transactional_producer".into(), transactional);
    // 4: open loop on a fresh topic, to a second replica and to MariaDB.
    let db = limits::mysql_connect(&bench.args.database_url).await?;
    let meter = report::CpuMeter::start(bench.kafka_pid);
    let latency = open_loop::measure(&bench, &db).await?;
    cpu.insert("4_open_loop".into(), meter.json());
    results.insert("open_loop_latency".into(), latency);
    let kafka_rss_after_bids = report::rss_mb(kafka.pid());
    // 5: each sink from the pre-filled topic, beside its target's own limit.
    let meter = report::CpuMeter::start(bench.kafka_pid);
    let sinks = sinks::measure(&bench, &db, &prefill).await?;
    cpu.insert("5_sinks_and_limits".into(), meter.json());
    // 5b: Kafka Connect's JDBC sink over the same bids, beside the MySQL sink.
    let mysql_sink_rate = sinks["mysql"]["rows_per_s"].as_f64().unwrap_or(0.0);
    let meter = report::CpuMeter::start(bench.kafka_pid);
    let connect = connect_peer::measure(&bench, &kafka, &db, &prefill, mysql_sink_rate).await?;
    cpu.insert("5b_kafka_connect".into(), meter.json());
    results.insert("sinks".into(), sinks);
    results.insert("connect_jdbc_sink".into(), connect);
    // 5c: the original demo's Python MySQL writer over the first of the same bids.
    let demo_writer =
        demo_writer_peer::measure(&bench, &kafka, &db, &prefill, mysql_sink_rate).await?;
    results.insert("demo_writer".into(), demo_writer);
    results.insert("bare_consumer".into(), prefill.consumer_json(sizes));
    // 6: first start on the history and restore, in child processes, from Apache Kafka; the
    // first start also from the mock cluster.
    let meter = report::CpuMeter::start(bench.kafka_pid);
    let (replay, restore, replay_mock) = replay::measure(&bench, mock.served()).await?;
    cpu.insert("6_replay_and_restore".into(), meter.json());
    let scaling = replay::restore_scaling(&bench, &kafka, &restore).await?;
    results.insert("replay".into(), replay);
    results.insert("restore".into(), restore);
    results.insert("restore_scaling".into(), scaling);
    // The original demo's I/O patterns, for comparison with 1 and 5.
    let demo =
        kafka_baseline::original_demo(&bench, &kafka, &db, &prefill, closed.bids_per_s).await?;
    results.insert("original_demo".into(), demo);
    // 7b: the original demo's Flask producer and the gateway's bid form, over HTTP.
    let meter = report::CpuMeter::start(bench.kafka_pid);
    let (demo_peer, gateway_form) = demo_peer::measure(&bench, &kafka).await?;
    cpu.insert("7b_demo_and_gateway_form".into(), meter.json());
    results.insert("demo_peer".into(), demo_peer);
    results.insert("gateway_form".into(), gateway_form);
    results.insert("mock_cluster".into(), mock.json(sizes, replay_mock));
    drop(mock);
    results.insert(
        "kafka_rss_mb".into(),
        serde_json::json!(kafka_rss_after_bids),
    );
    results.insert("cpu".into(), serde_json::Value::Object(cpu));
    report::write(&bench, &kafka.version, results)?;
    drop(kafka);
    Ok(())
}
