//! The numbers and the report: latency histograms, readings from `/proc`, the JSON report and
//! the readable table.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::{Bench, Outcome};

/// An empty latency histogram (microseconds).
pub(super) fn histogram() -> Histogram<u64> {
    // Microseconds from 1 µs to 10 minutes, 3 significant digits: constant bounds that
    // hdrhistogram always accepts.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant, valid histogram bounds")
}

/// Records `elapsed` (at least 1 µs).
pub(super) fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    let micros = u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    histogram.saturating_record(micros);
}

/// The `quantile` of `histogram` in milliseconds (0 when empty).
pub(super) fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// The count, p50, p99, p999 and max (ms) of `histogram`.
pub(super) fn latency_json(histogram: &Histogram<u64>) -> Value {
    json!({
        "count": histogram.len(),
        "p50_ms": ms(histogram, 0.5),
        "p99_ms": ms(histogram, 0.99),
        "p999_ms": ms(histogram, 0.999),
        "max_ms": histogram.max() as f64 / 1000.0,
    })
}

/// The resident memory of process `pid`, from /proc.
pub(super) fn rss_mb(pid: u32) -> f64 {
    proc_status_kb(&format!("/proc/{pid}/status"), "VmRSS:") as f64 / 1024.0
}

/// The number (kB) after `field` in the `/proc` file at `path`, 0 when there is none.
pub(super) fn proc_status_kb(path: &str, field: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The p50/p99 (ms) of a bid-service latency summary (`name`, in seconds) from the process's
/// metrics: where a PlaceBid call spends its time.
pub(super) fn service_quantiles_ms(name: &str) -> Value {
    let (p50, p99) = service_quantiles_of(name, 1000.0);
    json!({ "p50_ms": p50, "p99_ms": p99 })
}

/// The p50 and p99 of the summary `name` (a count, such as bids per transaction).
pub(super) fn service_quantiles(name: &str) -> Value {
    let (p50, p99) = service_quantiles_of(name, 1.0);
    json!({ "p50": p50, "p99": p99 })
}

fn service_quantiles_of(name: &str, scale: f64) -> (Option<f64>, Option<f64>) {
    let rendered = auction_process::metrics_handle().render();
    let quantile = |q: &str| {
        let prefix = format!("{name}{{quantile=\"{q}\"}} ");
        rendered
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|value| value * scale)
    };
    (quantile("0.5"), quantile("0.99"))
}

/// Where a step's CPU time went, read from `/proc` at its start and end: this process (the
/// load generators, the bid services, the gateway and the sinks run in it), the broker's JVM,
/// and the whole machine (everything else: MariaDB, PostgreSQL, child processes, Kafka
/// Connect's JVM, Python). In cores: CPU seconds a second of the step.
#[derive(Debug, Clone, Copy)]
pub(super) struct CpuMeter {
    started: std::time::Instant,
    kafka_pid: u32,
    own: f64,
    kafka: f64,
    machine: f64,
}

impl CpuMeter {
    /// Starts measuring, with the broker's process id.
    pub(super) fn start(kafka_pid: u32) -> Self {
        Self {
            started: std::time::Instant::now(),
            kafka_pid,
            own: process_cpu_seconds("self"),
            kafka: process_cpu_seconds(&kafka_pid.to_string()),
            machine: machine_busy_seconds(),
        }
    }

    /// The cores each used since the start, and the machine's idle share.
    pub(super) fn json(&self) -> Value {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let own = (process_cpu_seconds("self") - self.own) / wall;
        let kafka = (process_cpu_seconds(&self.kafka_pid.to_string()) - self.kafka) / wall;
        let machine = (machine_busy_seconds() - self.machine) / wall;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        json!({
            "seconds": wall,
            "bench_process_cores": own,
            "kafka_cores": kafka,
            "other_cores": (machine - own - kafka).max(0.0),
            "machine_busy_cores": machine,
            "machine_cores": cores,
            "machine_idle_share": (1.0 - machine / cores).max(0.0),
        })
    }
}

/// User + system CPU seconds of the process `pid` (`self` for this one), from
/// `/proc/<pid>/stat`; 0 when it cannot be read.
fn process_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start with the state, the 3rd
    // field; utime and stime are the 14th and 15th.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|field| field.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks as f64 / clock_ticks()
}

/// CPU seconds the machine spent busy (every state but idle and I/O wait) since boot, from the
/// first line of `/proc/stat`; 0 when it cannot be read.
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("cpu "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|field| field.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(index, _)| !matches!(index, 3 | 4))
        .map(|(_, ticks)| ticks)
        .sum();
    busy as f64 / clock_ticks()
}

fn clock_ticks() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// This machine: processors, CPU model, memory and kernel.
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

/// `count` a second over `seconds`.
pub(super) fn rate(count: u64, seconds: f64) -> f64 {
    count as f64 / seconds.max(1e-9)
}

/// Writes every number of the run to the JSON file, then prints the table and where the JSON is.
pub(super) fn write(
    bench: &Bench,
    kafka_version: &str,
    results: serde_json::Map<String, Value>,
) -> Outcome<()> {
    let (args, sizes) = (&bench.args, &bench.sizes);
    let report = json!({
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "quick": args.quick,
        "machine": machine(),
        "broker": format!("Apache Kafka {kafka_version} (one KRaft node, JVM heap up to 512 MiB), same machine; mock cluster where marked"),
        "sizes": {
            "bids": sizes.bids, "auctions": sizes.auctions, "place_bids": sizes.place_bids,
            "callers": sizes.callers, "hot_bids": sizes.hot_bids, "hot_callers": sizes.hot_callers,
            "rate": sizes.rate, "latency_seconds": sizes.latency_seconds,
            "watched_auctions": sizes.watched, "partitions": sizes.partitions,
        },
        "measurements": Value::Object(results),
        "elapsed_seconds": bench.progress.0.elapsed().as_secs_f64(),
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, text + "\n")
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    println!("{}", table(&report));
    println!("JSON: {}", args.out.display());
    Ok(())
}

fn num(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

/// `p50 / p99 / p999` of a latency result.
fn quantiles(latency: &Value) -> String {
    format!(
        "{:.2} / {:.2} / {:.2}",
        num(&latency["p50_ms"]),
        num(&latency["p99_ms"]),
        num(&latency["p999_ms"])
    )
}

/// The table's rows: each the measurement, its value, its limit or target, and the ratio.
#[derive(Debug, Default)]
struct Rows(Vec<[String; 4]>);

impl Rows {
    fn row(&mut self, what: String, value: String, against: String, ratio: String) {
        self.0.push([what, value, against, ratio]);
    }
}

/// The readable table: each measurement, its limit or target, and the ratio.
pub fn table(report: &Value) -> String {
    let m = &report["measurements"];
    let mut rows = Rows::default();
    place_bid_rows(m, &mut rows);
    open_loop_rows(m, &mut rows);
    sink_rows(m, &mut rows);
    replay_rows(m, &mut rows);
    peer_rows(m, &mut rows);
    cpu_rows(m, &mut rows);
    render(&rows.0)
}

/// Where each step's CPU time went: this process / the broker / the rest, in cores, and the
/// machine's idle share.
fn cpu_rows(m: &Value, rows: &mut Rows) {
    let mut steps: Vec<(String, &Value)> = Vec::new();
    for (label, key) in [("1 alone", "place_bid"), ("3 alone", "hot_auction")] {
        if m[key]["cpu"].is_object() {
            steps.push((label.to_owned(), &m[key]["cpu"]));
        }
    }
    if let Some(map) = m["cpu"].as_object() {
        steps.extend(map.iter().map(|(step, cpu)| (step.replace('_', " "), cpu)));
    }
    if steps.is_empty() {
        return;
    }
    rows.row(
        "CPU per step, cores: this process / broker / rest".into(),
        String::new(),
        String::new(),
        "machine idle".into(),
    );
    for (step, cpu) in steps {
        rows.row(
            format!("   {step} ({:.0} s)", num(&cpu["seconds"])),
            format!(
                "{:.2} / {:.2} / {:.2} (of {:.0})",
                num(&cpu["bench_process_cores"]),
                num(&cpu["kafka_cores"]),
                num(&cpu["other_cores"]),
                num(&cpu["machine_cores"])
            ),
            String::new(),
            pct(num(&cpu["machine_idle_share"])),
        );
    }
}

/// 1, 2 and 3, and the original demo's produce path.
fn place_bid_rows(m: &Value, rows: &mut Rows) {
    let place = &m["place_bid"];
    let producer = &m["bare_producer"];
    rows.row(
        format!(
            "1. PlaceBid, {} callers, closed loop (bids/s)",
            place["callers"]
        ),
        format!("{:.0}", num(&place["bids_per_s"])),
        "target 20000".into(),
        pct(num(&place["bids_per_s"]) / 20000.0),
    );
    rows.row(
        "   its latency p50 / p99 / p999 (ms)".into(),
        quantiles(&place["latency"]),
        String::new(),
        String::new(),
    );
    let echo = &m["echo"];
    if echo.is_object() {
        rows.row(
            format!(
                "1b. trivial tonic unary echo, same closed loop, {} callers (calls/s)",
                echo["callers"]
            ),
            format!("{:.0}", num(&echo["calls_per_s"])),
            "target 1 ≥ 75 %".into(),
            format!("1/1b = {}", pct(num(&echo["place_bid_ratio"]))),
        );
        rows.row(
            "    its latency p50 / p99 / p999 (ms)".into(),
            quantiles(&echo["latency"]),
            String::new(),
            String::new(),
        );
    }
    rows.row(
        format!(
            "2. bare idempotent producer, {:.0}-byte records (rec/s)",
            num(&producer["record_bytes"])
        ),
        format!("{:.0}", num(&producer["records_per_s"])),
        "limit of 1".into(),
        format!("1/2 = {}", pct(num(&producer["place_bid_ratio"]))),
    );
    let hot = &m["hot_auction"];
    rows.row(
        format!("3. one hot auction, {} callers (bids/s)", hot["callers"]),
        format!("{:.0}", num(&hot["bids_per_s"])),
        "target 5000".into(),
        pct(num(&hot["bids_per_s"]) / 5000.0),
    );
    if let Some(scaled) = m["replicas"].as_array() {
        let one = num(&place["bids_per_s"]);
        let one_hot = num(&hot["bids_per_s"]);
        for run in scaled {
            rows.row(
                format!(
                    "   {} replica(s): many auctions / one hot auction (bids/s)",
                    run["replicas"]
                ),
                format!(
                    "{:.0} / {:.0}",
                    num(&run["many_auctions"]["bids_per_s"]),
                    num(&run["hot_auction"]["bids_per_s"])
                ),
                "1 replica".into(),
                format!(
                    "{} / {}",
                    pct(num(&run["many_auctions"]["bids_per_s"]) / one.max(1e-9)),
                    pct(num(&run["hot_auction"]["bids_per_s"]) / one_hot.max(1e-9))
                ),
            );
        }
    }
    let transactional = &m["transactional_producer"];
    if transactional.is_object() {
        let batched = &transactional["batched_transactions"];
        rows.row(
            format!(
                "2b. bare transactional producers ({}), {}-record transactions (rec/s)",
                transactional["producers"], batched["records_per_transaction"]
            ),
            format!("{:.0}", num(&batched["records_per_s"])),
            "limit of 1".into(),
            format!(
                "1/2b = {}",
                pct(num(&place["bids_per_s"]) / num(&batched["records_per_s"]).max(1e-9))
            ),
        );
        rows.row(
            "    one-record transaction: begin, produce, commit (ms)".into(),
            quantiles(&transactional["one_record_transactions"]["transaction"]),
            String::new(),
            String::new(),
        );
    }
    let demo = &m["original_demo"];
    if demo.is_object() {
        rows.row(
            "   the demo's path, one caller: produce + flush per bid (bids/s)".into(),
            format!("{:.0}", num(&demo["produce_flush_per_bid_per_s"])),
            "1 / demo".into(),
            format!("{:.0} ×", num(&demo["place_bid_ratio"])),
        );
    }
}

/// 4.
fn open_loop_rows(m: &Value, rows: &mut Rows) {
    let open = &m["open_loop_latency"];
    rows.row(
        format!(
            "4. open loop {} bids/s offered: PlaceBid p50/p99/p999 (ms)",
            open["offered_per_s"]
        ),
        quantiles(&open["place_bid"]),
        "target p99 ≤ 10".into(),
        pct(num(&open["place_bid"]["p99_ms"]) / 10.0),
    );
    for (key, label) in [
        ("place_bid_at_owner", "   its calls to auctions A owns"),
        ("place_bid_forwarded", "   its calls A forwards to B"),
    ] {
        if open[key].is_object() {
            let bare = num(
                &m["transactional_producer"]["one_record_transactions"]["transaction"]["p99_ms"],
            );
            rows.row(
                format!("{label} (ms)"),
                quantiles(&open[key]),
                format!("bare txn p99 {bare:.2} + 5"),
                pct(num(&open[key]["p99_ms"]) / (bare + 5.0)),
            );
        }
    }
    if open["highest_bid_on_second_replica"].is_object() {
        rows.row(
            "   OK → HighestBid on 2nd replica, sampled (ms)".into(),
            quantiles(&open["highest_bid_on_second_replica"]),
            "target p99 ≤ 20".into(),
            pct(num(&open["highest_bid_on_second_replica"]["p99_ms"]) / 20.0),
        );
    }
    rows.row(
        "   OK → WatchAuction on 2nd replica (ms)".into(),
        quantiles(&open["watch_on_second_replica"]),
        "target p99 ≤ 50".into(),
        pct(num(&open["watch_on_second_replica"]["p99_ms"]) / 50.0),
    );
    rows.row(
        "   OK → row in MariaDB (ms)".into(),
        quantiles(&open["mysql_row"]),
        "target p99 ≤ 1000".into(),
        pct(num(&open["mysql_row"]["p99_ms"]) / 1000.0),
    );
}

/// 5: each sink beside its limit (MySQL also beside the original demo's writer), and the bare
/// consumer.
fn sink_rows(m: &Value, rows: &mut Rows) {
    let demo = &m["original_demo"];
    for (kind, label, target) in [
        ("mysql", "MySQL (MariaDB)", 30_000.0),
        ("csv", "CSV", 100_000.0),
        ("odbc", "ODBC (PostgreSQL)", 10_000.0),
    ] {
        let sink = &m["sinks"][kind];
        rows.row(
            format!("5. {label} sink (rows/s)"),
            format!("{:.0}", num(&sink["rows_per_s"])),
            format!("target {target:.0}"),
            pct(num(&sink["rows_per_s"]) / target),
        );
        rows.row(
            format!("   its limit: {}", sink["limit"].as_str().unwrap_or("")),
            format!("{:.0}", num(&sink["limit_rows_per_s"])),
            "sink / limit".into(),
            pct(num(&sink["ratio"])),
        );
        if kind == "mysql" && demo.is_object() {
            let writer = num(&demo["insert_commit_per_row_per_s"]);
            rows.row(
                "   the demo's writer: one INSERT + COMMIT per row (rows/s)".into(),
                format!("{writer:.0}"),
                "sink / demo".into(),
                format!("{:.0} ×", num(&sink["rows_per_s"]) / writer.max(1e-9)),
            );
        }
        if kind == "mysql" {
            connect_row(m, rows);
            demo_writer_rows(m, rows);
        }
    }
    rows.row(
        "   bare consumer from Apache Kafka (rec/s)".into(),
        format!("{:.0}", num(&m["bare_consumer"]["records_per_s"])),
        String::new(),
        String::new(),
    );
}

/// 5b: Kafka Connect's JDBC sink, the MySQL sink's peer, and the MySQL sink's rate over its.
fn connect_row(m: &Value, rows: &mut Rows) {
    let connect = &m["connect_jdbc_sink"];
    if connect.is_object() {
        rows.row(
            "   5b. peer: Kafka Connect + Debezium JDBC sink, upserts (rows/s)".into(),
            format!("{:.0}", num(&connect["rows_per_s"])),
            "MySQL sink / peer".into(),
            format!("{:.2} ×", num(&connect["mysql_sink_ratio"])),
        );
    }
}

/// 5c: the original demo's Python MySQL writer, the MySQL sink's other peer, and the MySQL
/// sink's rate over its.
fn demo_writer_rows(m: &Value, rows: &mut Rows) {
    let writer = &m["demo_writer"];
    if writer.is_object() {
        rows.row(
            "   5c. peer: the demo's db_writer.py, INSERT + COMMIT a row (rows/s)".into(),
            format!("{:.0}", num(&writer["rows_per_s"])),
            "MySQL sink / peer".into(),
            format!("{:.1} ×", num(&writer["mysql_sink_ratio"])),
        );
        rows.row(
            "    its rows; Python's start to its first row (s)".into(),
            format!("{}; {:.1}", writer["rows"], num(&writer["startup_seconds"])),
            String::new(),
            String::new(),
        );
    }
}

/// 6, and the mock cluster's numbers.
fn replay_rows(m: &Value, rows: &mut Rows) {
    let replay = &m["replay"];
    rows.row(
        format!(
            "6. first start on {} bids / {} auctions, no state yet (s)",
            replay["bids"], replay["auctions"]
        ),
        format!("{:.2}", num(&replay["seconds"])),
        "—".into(),
        "—".into(),
    );
    let restore = &m["restore"];
    rows.row(
        "   a new replica restores from auction.state (s)".into(),
        format!("{:.2}", num(&restore["seconds"])),
        "target ≤ 5 (1M bids)".into(),
        pct(num(&restore["seconds"]) / 5.0),
    );
    rows.row(
        "   RSS after the restore (MB)".into(),
        format!(
            "{:.0} (peak {:.0})",
            num(&restore["rss_mb"]),
            num(&restore["peak_rss_mb"])
        ),
        "target ≤ 200".into(),
        pct(num(&restore["rss_mb"]) / 200.0),
    );
    let scaling = &m["restore_scaling"];
    if scaling.is_object() {
        rows.row(
            format!(
                "6b. restore of {} bids / {} auctions (s)",
                scaling["bids"], scaling["auctions"]
            ),
            format!("{:.2}", num(&scaling["restore"]["seconds"])),
            format!("restore of {} bids", replay["bids"]),
            format!("{:.2} ×", num(&scaling["restore_seconds_ratio"])),
        );
        rows.row(
            "    its RSS (MB); first start on these bids (s)".into(),
            format!(
                "{:.0}; {:.2}",
                num(&scaling["restore"]["rss_mb"]),
                num(&scaling["first_start"]["seconds"])
            ),
            String::new(),
            String::new(),
        );
    }
    let mock = &m["mock_cluster"];
    let shown = |v: &Value| match v.as_f64() {
        Some(x) => format!("{x:.0}"),
        None => "not measured".to_owned(),
    };
    rows.row(
        "mock cluster: bare producer / consumer (rec/s)".into(),
        format!(
            "{} / {}",
            shown(&mock["bare_producer_records_per_s"]),
            shown(&mock["bare_consumer_records_per_s"])
        ),
        String::new(),
        String::new(),
    );
    rows.row(
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
}

/// 7b: the original demo's Flask producer beside `PlaceBid` through the gateway's form and
/// through gRPC, each at its best concurrency.
fn peer_rows(m: &Value, rows: &mut Rows) {
    let demo = &m["demo_peer"];
    let form = &m["gateway_form"];
    if !demo.is_object() || !form.is_object() {
        return;
    }
    let grpc = num(&m["place_bid"]["bids_per_s"]);
    rows.row(
        format!(
            "7b. the demo's Flask app over HTTP, best of 1/4/16 callers: {} (bids/s)",
            demo["best_callers"]
        ),
        format!("{:.0}", num(&demo["bids_per_s"])),
        String::new(),
        String::new(),
    );
    rows.row(
        "    its latency p50 / p99 / p999 (ms)".into(),
        quantiles(&demo["latency"]),
        String::new(),
        String::new(),
    );
    rows.row(
        format!(
            "    PlaceBid through the gateway's form, best: {} callers (bids/s)",
            form["best_callers"]
        ),
        format!("{:.0}", num(&form["bids_per_s"])),
        "form / demo".into(),
        format!(
            "{:.1} ×",
            num(&form["bids_per_s"]) / num(&demo["bids_per_s"]).max(1e-9)
        ),
    );
    rows.row(
        "    its latency p50 / p99 / p999 (ms)".into(),
        quantiles(&form["latency"]),
        String::new(),
        String::new(),
    );
    rows.row(
        format!(
            "    PlaceBid through gRPC (1), {} callers (bids/s)",
            m["place_bid"]["callers"]
        ),
        format!("{grpc:.0}"),
        "gRPC / demo".into(),
        format!("{:.1} ×", grpc / num(&demo["bids_per_s"]).max(1e-9)),
    );
}

/// The rows as a Markdown table, each column as wide as its widest cell.
fn render(rows: &[[String; 4]]) -> String {
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
    for r in rows {
        out.push(line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out.join("\n")
}
