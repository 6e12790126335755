//! The short ledger check (the long one is `auction ledger`, see the README): bids through two
//! replicas while the sinks are killed and restarted, a replica restarts and the mock broker
//! fails, slows down and goes away; afterwards the books must balance.

use auction_tools::audit::{self, AuditArgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_bid_is_in_every_sink_exactly_once_despite_faults() {
    let data = tempfile::tempdir().expect("temp dir");
    let args = AuditArgs {
        bids: 4_000,
        concurrency: 16,
        fault_every_ms: 500,
        data_dir: data.path().to_path_buf(),
        drain_timeout_secs: 120,
    };
    let report = audit::run(args).await.expect("the ledger check ran");
    println!("{report}");
    assert!(
        report.acknowledged > 0,
        "no bid was acknowledged:\n{report}"
    );
    assert!(
        report.faults.len() >= 3,
        "too few kinds of faults were injected:\n{report}"
    );
    assert!(report.holds(), "{report}");
}
