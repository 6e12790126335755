//! The short fault audits (the long one is `auction-tools audit --bids 100000`, see
//! system/RELIABILITY.md): bids through two replicas while the sink processes are SIGKILLed and
//! restarted and the registry goes away; on the mock cluster the broker also fails requests,
//! slows down and goes away, on three Apache Kafka nodes the partition leaders' brokers are
//! SIGKILLed and SIGSTOPped, a replica restarts (partition ownership moves) and a third replica,
//! in a process of its own, is SIGKILLed while it owns partitions. Afterwards the books must
//! balance.

use std::path::PathBuf;

use auction_tools::audit::{self, AuditArgs, BrokersKind};

fn args(
    brokers: BrokersKind,
    bids: usize,
    fault_every_ms: u64,
    data: &tempfile::TempDir,
) -> AuditArgs {
    AuditArgs {
        bids,
        concurrency: 16,
        fault_every_ms,
        brokers,
        data_dir: data.path().to_path_buf(),
        drain_timeout_secs: 240,
        sink_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_auction-tools"))),
    }
}

/// Runs the audit; checks that bids were acknowledged, that each of `faults` was injected, and
/// that the books balance. A failure is returned, not panicked, so that the report (its verdict
/// last) ends the test's output instead of a backtrace.
async fn audit_holds(args: AuditArgs, faults: &[&str]) -> Result<(), String> {
    let report = audit::run(args).await?;
    println!("{report}");
    if report.acknowledged == 0 {
        return Err(format!("no bid was acknowledged:\n{report}"));
    }
    if let Some(fault) = faults.iter().find(|f| !report.faults.contains_key(*f)) {
        return Err(format!("{fault:?} was not injected:\n{report}"));
    }
    if !report.holds() {
        return Err(format!("the books do not balance:\n{report}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_bid_is_in_every_sink_exactly_once_despite_faults() -> Result<(), String>
{
    let data = tempfile::tempdir().expect("temp dir");
    let faults = [
        "SIGKILL csv sink",
        "produce request errors",
        "SIGKILL sql sink",
    ];
    // A fault a second: each broker fault costs the owners a transaction (timed out or aborted,
    // then rewritten or its producer replaced); at two a second they spent the run recovering.
    audit_holds(args(BrokersKind::Mock, 2_000, 1_000, &data), &faults).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_three_kafka_nodes_every_acknowledged_bid_is_in_every_sink_exactly_once_despite_broker_faults()
-> Result<(), String> {
    let data = tempfile::tempdir().expect("temp dir");
    // Each broker fault checks that the leadership really moved, or the audit fails.
    // The owner kill checks that the killed replica owned partitions and that the SIGKILL ended
    // it.
    let faults = [
        "SIGKILL csv sink",
        "owner replica SIGKILLed (it owned partitions), restarted",
        "partition leader SIGKILLed (leadership moved), restarted",
    ];
    // A fault every 5 s: a broker fault or a replica restart moves partition ownership, and each
    // takeover (fencing, restore) takes seconds; at one fault a second the owners spend the run
    // taking partitions over (RELIABILITY.md, "The fault audit").
    audit_holds(args(BrokersKind::ThreeNodes, 2_000, 5_000, &data), &faults).await
}
