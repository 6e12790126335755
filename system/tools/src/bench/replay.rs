//! 6: a bid service in a child process on the pre-filled topic, twice: first on the history alone
//! (no state yet: its owners apply every bid and write the auctions' state), then as a new replica
//! that restores from that state. Time to the complete state and RSS (from `/proc/self/status`),
//! from Apache Kafka; the first start also from librdkafka's mock cluster. Then (6b) the same on
//! three times the bids over the same auctions, to show what a restore's time follows.

use std::process::Stdio;
use std::time::{Duration, Instant};

use auction_bid_service::Settings;
use auction_proto::v1::HighestBidRequest;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::closed_loop::connect;
use super::kafka_baseline::{PREFILL_TOPIC, fill_more};
use super::report::proc_status_kb;
use super::{Bench, BenchArgs, Outcome, Sizes};

/// 6: the first start on the history, then the restore, in child processes from Apache Kafka;
/// then the first start from the mock cluster at `mock` (when it served the pre-filled topic).
/// Returns the `replay` (first start), `restore` and mock results.
pub(super) async fn measure(bench: &Bench, mock: Option<&str>) -> Outcome<(Value, Value, Value)> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    progress.say(format!(
        "6. a bid service on {} bids over {} auctions in a child process, from Apache Kafka: first start (no state yet)",
        sizes.bids, sizes.auctions
    ));
    let (mut replay, mut restore) = first_start_then_restore(bench, PREFILL_TOPIC, sizes).await?;
    progress.say("   first start from the mock cluster");
    let replay_mock = match mock {
        Some(mock_bootstrap) => {
            replay_in_child(mock_bootstrap, &bench.registry_url, PREFILL_TOPIC, sizes)
                .await
                .unwrap_or_else(|e| json!({ "error": e }))
        }
        None => json!({ "error": "not measured: the mock cluster could not serve the topic" }),
    };
    for result in [&mut replay, &mut restore] {
        if let Value::Object(map) = result {
            map.insert("broker".into(), json!("kafka"));
        }
    }
    Ok((replay, restore, replay_mock))
}

/// How many times the pre-filled topic's bids the restore's scaling run restores, over the same
/// auctions.
const RESTORE_SCALE: u64 = 3;

/// Waits `--compaction-wait-secs` (default 30 s, none with `--quick`), so that Kafka's log
/// cleaner can compact the state topic the first start wrote.
async fn compaction_wait(bench: &Bench) {
    let seconds = bench
        .args
        .compaction_wait_secs
        .unwrap_or(if bench.args.quick { 0 } else { 30 });
    if seconds > 0 {
        bench.progress.say(format!(
            "   waiting {seconds} s for the log cleaner to compact the state topic"
        ));
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
}

/// 6b: the restore's scaling: a topic with [`RESTORE_SCALE`] times the pre-filled bids over the
/// same auctions, a first start on it, then a new replica's restore, to set beside `restore`
/// (the restore of the pre-filled topic): a restore reads the auctions' state, so its time
/// should follow the auctions, not the bids.
pub(super) async fn restore_scaling(
    bench: &Bench,
    kafka: &auction_testkit::Kafka,
    restore: &Value,
) -> Outcome<Value> {
    let progress = &bench.progress;
    let mut larger = bench.sizes;
    larger.bids = bench.sizes.bids * RESTORE_SCALE;
    let topic = format!("{PREFILL_TOPIC}-x{RESTORE_SCALE}");
    progress.say(format!(
        "6b. restore's scaling: {} bids over the same {} auctions on {topic}",
        larger.bids, larger.auctions
    ));
    fill_more(bench, kafka, &topic, larger.bids).await?;
    progress.say("   first start (no state yet)");
    let (first, larger_restore) = first_start_then_restore(bench, &topic, &larger).await?;
    progress.say(format!(
        "   (the {} bids' restore: {} s)",
        bench.sizes.bids, restore["seconds"]
    ));
    let ratio = larger_restore["seconds"].as_f64().unwrap_or(0.0)
        / restore["seconds"].as_f64().unwrap_or(0.0).max(1e-9);
    Ok(json!({
        "broker": "kafka",
        "bids": larger.bids,
        "auctions": larger.auctions,
        "first_start": first,
        "restore": larger_restore,
        "restore_seconds_ratio": ratio,
    }))
}

/// A first start on `topic` (no state yet) and, after the compaction wait, a new replica's
/// restore from the state it wrote, each in a child process; their results.
async fn first_start_then_restore(
    bench: &Bench,
    topic: &str,
    sizes: &Sizes,
) -> Outcome<(Value, Value)> {
    let progress = &bench.progress;
    let first = replay_in_child(&bench.bootstrap, &bench.registry_url, topic, sizes).await?;
    progress.say(format!(
        "   {} s, RSS {} MB",
        first["seconds"], first["rss_mb"]
    ));
    compaction_wait(bench).await;
    progress.say("   a new replica restores from the state the first one wrote");
    let restore = replay_in_child(&bench.bootstrap, &bench.registry_url, topic, sizes).await?;
    progress.say(format!(
        "   {} s, RSS {} MB",
        restore["seconds"], restore["rss_mb"]
    ));
    Ok((first, restore))
}

/// A bid service in a child process on `topic`; its time to the complete state, and memory.
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
        .args(
            sizes
                .recent_bids
                .map(|n| ["--recent-bids-per-auction".to_owned(), n.to_string()])
                .into_iter()
                .flatten(),
        )
        // The state topic's read is logged with the records it held.
        .env(
            "RUST_LOG",
            "warn,auction_bid_service::state_log=info,auction_bid_service::owner=info",
        )
        .env("NO_COLOR", "1")
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
    let mut result = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str::<Value>(line).ok())
        .ok_or_else(|| format!("the replay process printed no result: {stdout}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The read copy's read of the state topic, and each owner's take-over, log the state
    // records they read.
    let logged = |message: &str, field: &str| {
        stderr
            .lines()
            .filter(|line| line.contains(message))
            .filter_map(|line| number_after(line, field))
            .collect::<Vec<u64>>()
    };
    let state_records = logged("auction state read", " records=").first().copied();
    let takeover_records: u64 = logged("took over the partition", "state_records=")
        .iter()
        .sum();
    if let Value::Object(map) = &mut result {
        if let Some(records) = state_records {
            map.insert("state_records_read".into(), json!(records));
        }
        map.insert(
            "state_records_read_by_owners".into(),
            json!(takeover_records),
        );
    }
    Ok(result)
}

/// The number right after `field` in a log line.
fn number_after(line: &str, field: &str) -> Option<u64> {
    let (_, after) = line.split_once(field)?;
    after
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The child side of the replay measurement.
pub(super) async fn replay_child(args: &BenchArgs) -> Outcome<()> {
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
    // A group (and transactional ids) of the topic's own.
    settings.group_id = format!("bench-replay-{topic}");
    settings.create_topic = false;
    if let Some(recent) = args.recent_bids_per_auction {
        settings.recent_bids_per_auction = recent;
    }
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
    let serving_seconds = started.elapsed().as_secs_f64();
    // The state is complete once the first and the last auction have every one of their bids
    // (a first start applies the history after it serves; a restore has it at once).
    let mut client = connect(service.grpc_addr).await?;
    let expected = |k: u64| bids / auctions + u64::from(k < bids % auctions);
    let deadline = Instant::now() + Duration::from_secs(240 + bids / 1000);
    let mut counts = (0, 0);
    while Instant::now() < deadline {
        counts = (
            bid_count(&mut client, 0).await?,
            bid_count(&mut client, auctions - 1).await?,
        );
        if counts == (expected(0), expected(auctions - 1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_kb = proc_status_kb("/proc/self/status", "VmRSS:");
    let peak_kb = proc_status_kb("/proc/self/status", "VmHWM:");
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(60), service.stopped()).await;
    if counts != (expected(0), expected(auctions - 1)) {
        return Err(format!(
            "the state was not complete in time: the first and last auctions have {counts:?} bids, expected {:?}",
            (expected(0), expected(auctions - 1))
        ));
    }
    let state = counts.0;
    println!(
        "{}",
        json!({
            "bids": bids,
            "auctions": auctions,
            "seconds": seconds,
            "serving_seconds": serving_seconds,
            "bids_per_s": bids as f64 / seconds.max(1e-9),
            "rss_mb": rss_kb as f64 / 1024.0,
            "peak_rss_mb": peak_kb as f64 / 1024.0,
            "rss_before_start_mb": rss_before_kb as f64 / 1024.0,
            "auction_a0_bid_count": state,
        })
    );
    Ok(())
}

/// Auction `a-<k>`'s bid count as the service answers it.
async fn bid_count(
    client: &mut auction_proto::v1::bid_service_client::BidServiceClient<tonic::transport::Channel>,
    k: u64,
) -> Outcome<u64> {
    Ok(client
        .highest_bid(HighestBidRequest {
            auction_id: format!("a-{k}"),
        })
        .await
        .map_err(|e| format!("HighestBid: {e}"))?
        .into_inner()
        .auction
        .unwrap_or_default()
        .bid_count)
}
