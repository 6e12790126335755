//! The books of the audit: placing the bids and remembering each call's outcome, watching the
//! sinks' committed offsets, and reading the rows back through the sinks crate.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use auction_proto::v1::PlaceBidRequest;
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_sinks::destination::csv_file;
use auction_sinks::destination::sql::{SqlDestination, SqlSettings};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{AuditArgs, PARTITIONS, TOPIC};

/// What each call answered, by request id.
#[derive(Debug, Default)]
pub(super) struct Outcomes {
    pub(super) acknowledged: HashSet<String>,
    pub(super) uncertain: HashSet<String>,
    pub(super) refused: HashSet<String>,
}

/// Places `args.bids` bids through `targets`, `args.concurrency` at a time, retrying what may
/// succeed later with the same request id.
pub(super) async fn place_all(
    args: &AuditArgs,
    targets: Vec<String>,
    outcomes: Arc<Mutex<Outcomes>>,
) {
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
                    ..Default::default()
                };
                // Retry what may succeed later, with the same request id, a few times, on the
                // replica that took the first call (a retry on another replica while the first
                // call is still in flight can write the bid a second time; README, "The bid
                // service").
                let mut verdict = Verdict::Uncertain;
                let target = i % targets.len();
                for attempt in 0..4_usize {
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

/// Reads every committed offset of the sinks' groups, and says which went backwards.
pub(super) fn watch_offsets(
    bootstrap: String,
    groups: Vec<String>,
    stop: CancellationToken,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut last: HashMap<(String, i32), i64> = HashMap::new();
        let mut backwards = Vec::new();
        let consumers: Vec<(String, BaseConsumer)> = groups
            .iter()
            .filter_map(|group| {
                ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .create()
                    .ok()
                    .map(|c| (group.clone(), c))
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
                                let went = format!(
                                    "{group} partition {} went back from {previous} to {offset}",
                                    element.partition()
                                );
                                eprintln!("audit: {went}");
                                backwards.push(went);
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

/// What the topic itself says, read to its end.
pub(super) struct TopicBooks {
    /// Bid ids the topic holds at two or more offsets.
    pub(super) written_twice: usize,
    /// The first few of them: id, first place, what its call answered.
    pub(super) written_twice_examples: Vec<String>,
    /// Acknowledged bids not valid at their position (judged in log order by the service's
    /// rules).
    pub(super) invalid_acknowledged: usize,
    /// The first few of them: id and place.
    pub(super) invalid_examples: Vec<String>,
}

/// Reads the topic back and judges it (see [`TopicBooks`]).
pub(super) async fn read_topic_back(
    bootstrap: &str,
    registry_url: &str,
    outcomes: &Outcomes,
) -> Result<TopicBooks, String> {
    let within = Duration::from_secs(600);
    let bids = auction_testkit::try_read_bids(bootstrap, registry_url, TOPIC, within).await?;
    let judged = auction_testkit::judge_log(&bids);
    let twice: BTreeSet<&String> = judged.written_twice.iter().collect();
    let written_twice_examples = twice
        .iter()
        .take(5)
        .map(|id| {
            let answered = if outcomes.acknowledged.contains(*id) {
                "acknowledged"
            } else if outcomes.uncertain.contains(*id) {
                "failed or timed out"
            } else if outcomes.refused.contains(*id) {
                "refused"
            } else {
                "never placed"
            };
            let (partition, offset, _) = judged.bids.get(*id).copied().unwrap_or((-1, -1, false));
            format!("{id}: first at partition {partition} offset {offset}; its call: {answered}")
        })
        .collect();
    let invalid: BTreeSet<(&String, i32, i64)> = outcomes
        .acknowledged
        .iter()
        .filter_map(|id| match judged.bids.get(id) {
            Some((partition, offset, false)) => Some((id, *partition, *offset)),
            _ => None,
        })
        .collect();
    let invalid_examples = invalid
        .iter()
        .take(5)
        .map(|(id, partition, offset)| {
            format!("{id}: acknowledged, not valid at partition {partition} offset {offset}")
        })
        .collect();
    Ok(TopicBooks {
        written_twice: twice.len(),
        written_twice_examples,
        invalid_acknowledged: invalid.len(),
        invalid_examples,
    })
}

/// How often each bid id is in the CSV file, read through the sinks crate.
pub(super) fn csv_counts(path: &Path) -> Result<HashMap<String, usize>, String> {
    let ids = csv_file::stored_bid_ids(path).map_err(|e| e.to_string())?;
    Ok(count(ids))
}

/// How often each bid id is in the SQL sink's table, read through the sinks crate (the same
/// driver the sink writes with).
pub(super) async fn sql_counts(settings: &SqlSettings) -> Result<HashMap<String, usize>, String> {
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
