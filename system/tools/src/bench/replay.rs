//! 6: replay: a bid service in a child process rebuilds its state from the pre-filled topic; its
//! time and RSS (from `/proc/self/status`), from Apache Kafka and from librdkafka's mock cluster.

use std::process::Stdio;
use std::time::{Duration, Instant};

use auction_bid_service::Settings;
use auction_proto::v1::HighestBidRequest;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::closed_loop::connect;
use super::kafka_baseline::PREFILL_TOPIC;
use super::report::proc_status_kb;
use super::{Bench, BenchArgs, Outcome, Sizes};

/// 6: replay in a child process from Apache Kafka, then from the mock cluster at `mock` (when it
/// served the pre-filled topic). Returns the `replay` results and the mock cluster's.
pub(super) async fn measure(bench: &Bench, mock: Option<&str>) -> Outcome<(Value, Value)> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    progress.say(format!(
        "6. replay of {} bids over {} auctions in a child process, from Apache Kafka",
        sizes.bids, sizes.auctions
    ));
    let mut replay =
        replay_in_child(&bench.bootstrap, &bench.registry_url, PREFILL_TOPIC, sizes).await?;
    progress.say(format!(
        "   {} s, RSS {} MB",
        replay["seconds"], replay["rss_mb"]
    ));
    progress.say("   replay from the mock cluster");
    let replay_mock = match mock {
        Some(mock_bootstrap) => {
            replay_in_child(mock_bootstrap, &bench.registry_url, PREFILL_TOPIC, sizes)
                .await
                .unwrap_or_else(|e| json!({ "error": e }))
        }
        None => json!({ "error": "not measured: the mock cluster could not serve the topic" }),
    };
    if let Value::Object(map) = &mut replay {
        map.insert("broker".into(), json!("kafka"));
    }
    Ok((replay, replay_mock))
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
