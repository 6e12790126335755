//! The fault audit: drives bids through two bid-service replicas while faults are injected one
//! after another, then checks the books:
//! - every bid whose `PlaceBid` returned OK is in every sink exactly once;
//! - a bid whose call failed or timed out is in each sink at most once;
//! - a refused bid (too low) is in no sink;
//! - the topic holds no bid twice, and every acknowledged bid is valid at its place in it (in
//!   log order it beats every earlier bid of its auction); on the mock cluster, which keeps an
//!   aborted transaction's records readable, a bid may be there once more for each time it was
//!   in an aborted transaction, and no more;
//! - no sink's committed offsets ever went backwards.
//!
//! It runs on librdkafka's mock cluster (broker faults only it can inject: failed produce and
//! commit requests, latency, the broker down) or on three Apache Kafka nodes (the partition
//! leader's broker SIGKILLed and restarted, a leader SIGSTOPped past the broker session
//! timeout, a replica restarts, which moves partition ownership, and a third replica, in a process
//! of its own, is SIGKILLed while it owns partitions). On both, the CSV and SQLite
//! sinks are SIGKILLed and restarted (each runs in a process of its own, `auction-tools
//! audit-sink`) and the schema registry goes away for a second. Every component is started through its typed start function; the rows are read
//! back through the sinks crate.
//!
//! Layout: [`faults`] (the brokers and what is injected), `books` (placing bids, offsets, reading
//! rows back), [`sink_process`] (the sinks' processes), [`replica_process`] (the replica that is
//! SIGKILLed).

mod books;
mod child;
pub mod faults;
pub mod replica_process;
pub mod sink_process;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use books::{Outcomes, csv_counts, place_all, read_topic_back, sql_counts, watch_offsets};
use faults::{Brokers, Stage};
use sink_process::{SinkProcess, sqlite_settings};

pub use faults::BrokersKind;
pub use replica_process::{AuditReplicaArgs, run_replica};
pub use sink_process::{AuditSinkArgs, run_sink};

const TOPIC: &str = "auction";
const DEAD_LETTER_TOPIC: &str = "auction.dlq";
const PARTITIONS: i32 = 6;
const SINKS: [&str; 2] = ["csv", "sql"];

/// How hard to push, and on what.
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
    /// The brokers: librdkafka's mock cluster, or three Apache Kafka nodes (Java 17 and the
    /// jars of `.ci/kafka/assemble`).
    #[arg(long, value_enum, default_value = "mock")]
    pub brokers: BrokersKind,
    /// Where the sinks write (a new directory is created inside).
    #[arg(long, default_value = "auction-data")]
    pub data_dir: PathBuf,
    /// Give up waiting for the sinks to catch up after this long.
    #[arg(long, default_value_t = 300)]
    pub drain_timeout_secs: u64,
    /// The `auction-tools` binary whose `audit-sink` runs each sink (default: this program).
    #[arg(long, hide = true)]
    pub sink_binary: Option<PathBuf>,
}

/// The books after a run.
#[derive(Debug, Default, Clone)]
pub struct AuditReport {
    /// The brokers the audit ran on.
    pub brokers: &'static str,
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
    /// The first of them: group, partition, from and to.
    pub offsets_backwards_examples: Vec<String>,
    /// Bid ids the topic holds at two or more offsets (the CSV sink, exact by log position,
    /// would write them twice).
    pub written_twice: usize,
    /// The first of them, with their first place in the log and what their call answered.
    pub written_twice_examples: Vec<String>,
    /// Whether the brokers hide an aborted transaction's records from `read_committed`
    /// readers (Apache Kafka does; librdkafka's mock cluster ignores the abort).
    pub aborts_hidden: bool,
    /// Bids the in-process replicas wrote in transactions that were aborted
    /// (`bid_service_bids_in_aborted_transactions_total` during the run).
    pub bids_in_aborted_transactions: usize,
    /// Acknowledged bids that are in the log but not valid at their position (another bid of
    /// their auction before them was as high or higher).
    pub invalid_acknowledged: usize,
    /// The first of them, with their place.
    pub invalid_examples: Vec<String>,
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
            && self.written_twice <= self.twice_explained_by_aborts()
            && self.invalid_acknowledged == 0
    }

    /// How many bids the topic may hold twice because an aborted transaction's copy stays
    /// readable: none on Apache Kafka, one per bid in an aborted transaction on the mock cluster.
    fn twice_explained_by_aborts(&self) -> usize {
        if self.aborts_hidden {
            0
        } else {
            self.bids_in_aborted_transactions
        }
    }
}

impl std::fmt::Display for AuditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "on {}: placed in {:.1} s: {} acknowledged, {} failed or timed out, {} refused",
            self.brokers,
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
        write!(f, "bids written to the topic twice: {}", self.written_twice)?;
        if !self.aborts_hidden {
            write!(
                f,
                " (at most {} allowed: the mock cluster keeps an aborted transaction's records readable, and {} bids were in aborted transactions)",
                self.twice_explained_by_aborts(),
                self.bids_in_aborted_transactions
            )?;
        }
        write_examples(f, &self.written_twice_examples)?;
        write!(
            f,
            "\nacknowledged bids not valid at their place in the log: {}",
            self.invalid_acknowledged
        )?;
        write_examples(f, &self.invalid_examples)?;
        write!(
            f,
            "\ncommitted offsets that went backwards: {}",
            self.offsets_backwards
        )?;
        write_examples(f, &self.offsets_backwards_examples)?;
        write!(
            f,
            "\nverdict: {}",
            if self.holds() {
                "the books balance"
            } else {
                "THE BOOKS DO NOT BALANCE"
            }
        )
    }
}

/// The first five of `examples`, each on a line of its own under the count before them.
fn write_examples(f: &mut std::fmt::Formatter<'_>, examples: &[String]) -> std::fmt::Result {
    examples
        .iter()
        .take(5)
        .try_for_each(|example| write!(f, "\n  {example}"))
}

/// Runs the audit; the report says whether the books balance.
pub async fn run(args: AuditArgs) -> Result<AuditReport, String> {
    let dir = args.data_dir.join(format!("audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let sink_binary = match &args.sink_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?,
    };
    let brokers = Brokers::start(args.brokers).await?;
    let mut stage = Stage::start(brokers).await?;
    let csv = dir.join("output.csv");
    let sqlite = dir.join("bids.db");
    let (bootstrap, registry_url) = (stage.bootstrap(), stage.registry_url());
    stage.sinks = vec![
        SinkProcess::csv(&sink_binary, &bootstrap, &registry_url, &csv),
        SinkProcess::sqlite(&sink_binary, &bootstrap, &registry_url, &sqlite),
    ];
    for sink in &mut stage.sinks {
        sink.start()?;
    }
    if stage.brokers.schedule().contains(&faults::Fault::KillOwner) {
        stage.start_owner_process(&sink_binary, &dir).await?;
    }

    let stop_watch = CancellationToken::new();
    let groups = stage.sinks.iter().map(|s| s.group.to_owned()).collect();
    let watcher = watch_offsets(bootstrap.clone(), groups, stop_watch.clone());
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let started = Instant::now();
    let placing = tokio::spawn({
        let args = args.clone();
        let outcomes = Arc::clone(&outcomes);
        let targets = stage.targets();
        async move { place_all(&args, targets, outcomes).await }
    });

    // Faults, one after another, while the bids go in.
    let mut report = AuditReport {
        brokers: stage.brokers.describe(),
        aborts_hidden: stage.brokers.hides_aborted_transactions(),
        ..AuditReport::default()
    };
    let aborted_before = bids_in_aborted_transactions();
    let schedule = stage.brokers.schedule();
    let mut round = 0_usize;
    while !placing.is_finished() {
        tokio::time::sleep(Duration::from_millis(args.fault_every_ms)).await;
        if placing.is_finished() {
            break;
        }
        let fault = schedule[round % schedule.len()];
        let name = stage.inject(fault).await?;
        eprintln!("audit: fault: {name}");
        *report.faults.entry(name).or_insert(0) += 1;
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

    let topic = read_topic_back(&bootstrap, &registry_url, &outcomes)
        .await
        .map_err(|e| format!("cannot read the topic back: {e}"))?;
    report.written_twice = topic.written_twice;
    report.written_twice_examples = topic.written_twice_examples;
    report.invalid_acknowledged = topic.invalid_acknowledged;
    report.invalid_examples = topic.invalid_examples;
    let sqlite_settings = sqlite_settings(&sqlite);
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
    for sink in &mut stage.sinks {
        if let Some(problem) = sink.terminate() {
            report.problems.push(problem);
        }
    }
    report.bids_in_aborted_transactions =
        bids_in_aborted_transactions().saturating_sub(aborted_before);
    stop_watch.cancel();
    match watcher.join() {
        Ok(backwards) => {
            report.offsets_backwards = backwards.len();
            report.offsets_backwards_examples = backwards;
        }
        Err(_) => {
            report.offsets_backwards = usize::MAX;
            report
                .problems
                .push("the committed-offset watcher panicked".to_owned());
        }
    }
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
    if !report.holds() {
        for sink in &stage.sinks {
            report.problems.push(format!(
                "the end of the {} sink's log:\n{}",
                sink.name,
                sink.log_tail(30)
            ));
        }
    }
    stage.stop().await;
    Ok(report)
}

/// Bids this process's replicas wrote in aborted transactions so far (the owner process of the
/// three-node audit is not counted: Apache Kafka hides those records anyway).
fn bids_in_aborted_transactions() -> usize {
    let total = auction_process::metric_sum(
        auction_bid_service::metrics::BIDS_IN_ABORTED_TRANSACTIONS,
        None,
    );
    // A counter's value: a whole number well within usize.
    total as usize
}
