//! `auction-tools bench --quick` with tiny sizes runs every measurement and reports each: every
//! line of the table, with its value, and every number in its JSON file, positive. Speed is not
//! asserted: only that the benchmark runs and reports.

use std::process::Command;

use serde_json::Value;

fn positive(report: &Value, path: &str) -> f64 {
    let value = path
        .split('.')
        .fold(report, |v, key| match key.parse::<usize>() {
            Ok(index) => &v[index],
            Err(_) => &v[key],
        })
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is missing or not a number in {report:#}"));
    assert!(value > 0.0, "{path} is {value}, not positive");
    value
}

#[test]
fn quick_bench_reports_every_measurement() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("results.json");
    let output = Command::new(env!("CARGO_BIN_EXE_auction-tools"))
        .args(["bench", "--quick", "--bids", "2000", "--place-bids", "2000"])
        .args(["--hot-bids", "500", "--callers", "32", "--hot-callers", "8"])
        .args([
            "--rate",
            "500",
            "--latency-seconds",
            "2",
            "--watched-auctions",
            "20",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run auction-tools bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "auction-tools bench failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("| measurement"), "no table:\n{stdout}");
    // Every line of the table, each with its value.
    for line in [
        "1. PlaceBid, 32 callers, closed loop (bids/s)",
        "1b. trivial tonic unary echo",
        "2. bare idempotent producer",
        "2b. bare transactional producers",
        "3. one hot auction, 8 callers",
        "3 replica(s): many auctions / one hot auction",
        "the demo's path, one caller: produce + flush per bid",
        "4. open loop 500 bids/s offered",
        "OK → HighestBid on 2nd replica",
        "OK → WatchAuction on 2nd replica",
        "OK → row in MariaDB",
        "5. MySQL (MariaDB) sink",
        "5b. peer: Kafka Connect + Debezium JDBC sink",
        "5c. peer: the demo's db_writer.py",
        "5. CSV sink",
        "5. ODBC (PostgreSQL) sink",
        "bare consumer from Apache Kafka",
        "6. first start on 2000 bids",
        "a new replica restores from auction.state",
        "6b. restore of 6000 bids",
        "7b. the demo's Flask app over HTTP",
        "PlaceBid through the gateway's form",
        "PlaceBid through gRPC (1)",
        "CPU per step, cores",
        "1 alone",
        "5 sinks and limits",
    ] {
        let row = stdout
            .lines()
            .find(|row| row.contains(line))
            .unwrap_or_else(|| panic!("the table has no line {line:?}:\n{stdout}"));
        let value = row.split('|').nth(2).unwrap_or_default().trim();
        assert!(
            !value.is_empty() || line.starts_with("CPU per step"),
            "the line {line:?} has no value: {row}"
        );
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("results.json")).expect("JSON");
    for path in [
        "measurements.place_bid.bids_per_s",
        "measurements.place_bid.latency.p50_ms",
        "measurements.place_bid.latency.p99_ms",
        "measurements.place_bid.latency.p999_ms",
        "measurements.echo.calls_per_s",
        "measurements.echo.place_bid_ratio",
        "measurements.echo.latency.p99_ms",
        "measurements.demo_peer.bids_per_s",
        "measurements.demo_peer.latency.p50_ms",
        "measurements.demo_peer.latency.p99_ms",
        "measurements.gateway_form.bids_per_s",
        "measurements.gateway_form.latency.p50_ms",
        "measurements.bare_producer.records_per_s",
        "measurements.bare_producer.record_bytes",
        "measurements.bare_producer.place_bid_ratio",
        "measurements.hot_auction.bids_per_s",
        "measurements.replicas.0.many_auctions.bids_per_s",
        "measurements.replicas.1.many_auctions.bids_per_s",
        "measurements.replicas.2.many_auctions.bids_per_s",
        "measurements.replicas.2.hot_auction.bids_per_s",
        "measurements.transactional_producer.batched_transactions.records_per_s",
        "measurements.transactional_producer.one_record_transactions.transaction.p99_ms",
        "measurements.open_loop_latency.accepted",
        "measurements.open_loop_latency.place_bid.p99_ms",
        "measurements.open_loop_latency.place_bid_at_owner.count",
        "measurements.open_loop_latency.place_bid_forwarded.count",
        "measurements.open_loop_latency.highest_bid_on_second_replica.count",
        "measurements.open_loop_latency.watch_on_second_replica.count",
        "measurements.open_loop_latency.mysql_row.count",
        "measurements.open_loop_latency.mysql_row.p99_ms",
        "measurements.bare_consumer.records_per_s",
        "measurements.connect_jdbc_sink.rows_per_s",
        "measurements.connect_jdbc_sink.mysql_sink_ratio",
        "measurements.demo_writer.rows_per_s",
        "measurements.demo_writer.mysql_sink_ratio",
        "measurements.replay.seconds",
        "measurements.replay.rss_mb",
        "measurements.restore.seconds",
        "measurements.restore.rss_mb",
        "measurements.restore_scaling.restore.seconds",
        "measurements.restore_scaling.restore_seconds_ratio",
        "machine.nproc",
        "measurements.place_bid.cpu.bench_process_cores",
        "measurements.place_bid.cpu.kafka_cores",
        "measurements.place_bid.cpu.machine_busy_cores",
        "measurements.cpu.4_open_loop.bench_process_cores",
        "measurements.cpu.5_sinks_and_limits.machine_busy_cores",
    ] {
        positive(&report, path);
    }
    for sink in ["mysql", "csv", "odbc"] {
        for field in ["rows_per_s", "limit_rows_per_s", "ratio"] {
            positive(&report, &format!("measurements.sinks.{sink}.{field}"));
        }
    }
    assert_eq!(report["measurements"]["replay"]["bids"], 2000);
    assert_eq!(report["measurements"]["restore"]["bids"], 2000);
    assert_eq!(report["measurements"]["restore_scaling"]["bids"], 6000);
    let replicas: Vec<&Value> = (0..3)
        .map(|k| &report["measurements"]["replicas"][k]["replicas"])
        .collect();
    assert_eq!(replicas, [1, 2, 3], "the scale-out runs");
    for peer in ["demo_peer", "gateway_form"] {
        let callers: Vec<&Value> = (0..3)
            .map(|k| &report["measurements"][peer]["levels"][k]["callers"])
            .collect();
        assert_eq!(callers, [1, 4, 16], "{peer}'s concurrency levels");
        for k in 0..3 {
            positive(
                &report,
                &format!("measurements.{peer}.levels.{k}.bids_per_s"),
            );
        }
    }
}
