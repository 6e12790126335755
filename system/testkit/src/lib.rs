//! The workspace's test kit, a dev-dependency only: real services on loopback ports chosen at
//! run time (Apache Kafka, one node or three; the schema registry), topic creation,
//! [`eventually`], and the original demo's Python producer.
//!
//! A missing tool is a failed test with a message saying how to install it, never a skip:
//! `.ci/test` installs every tool these helpers look for.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auction_schemas::{Bid, BidDecoder, HeaderIds, LogPosition, RegistrySettings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use auction_schema_registry::{self as registry, ServerSettings, Storage, store::Store};

mod kafka;
pub use kafka::{KAFKA_SASL_PASSWORD, KAFKA_SASL_USER, Kafka, KafkaCluster, kafka_libs};

/// A free TCP port on 127.0.0.1 (free when asked; bind soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Waits until something accepts TCP connections on `addr`, at most `within`.
pub fn wait_for_port(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Where a tool is: the environment variable, then `PATH`, then `fallback` under `$HOME`.
pub fn locate_tool(env_var: &str, name: &str, home_fallback: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidate = home.join(home_fallback);
    assert!(
        candidate.is_file(),
        "{name} is not installed (looked at ${env_var}, PATH and ~/{home_fallback}); run `.ci/test`, which installs it"
    );
    candidate
}

/// Creates `name` with `partitions` partitions (replication factor 1) on the cluster at
/// `bootstrap`; a topic that exists already is fine.
pub async fn try_create_topic(bootstrap: &str, name: &str, partitions: i32) -> Result<(), String> {
    try_create_replicated_topic(bootstrap, name, partitions, 1).await
}

/// Creates `name` with `partitions` partitions of `replication` replicas each (the cluster's
/// defaults for everything else, such as `min.insync.replicas`); a topic that exists already is
/// fine.
pub async fn try_create_replicated_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication: i32,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|e| format!("cannot create topic {name}: {e}"))?;
    for result in results {
        if let Err((topic, code)) = result
            && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(format!("cannot create topic {topic}: {code}"));
        }
    }
    Ok(())
}

/// The partitions of `topic` as the cluster's metadata says now: for each, its id, its leader
/// (-1: none) and how many replicas are in sync. Empty when the metadata cannot be read.
pub fn partition_states(bootstrap: &str, topic: &str) -> Vec<PartitionState> {
    let Ok(consumer) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create::<BaseConsumer>()
    else {
        return Vec::new();
    };
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) else {
        return Vec::new();
    };
    metadata
        .topics()
        .first()
        .map(|t| {
            t.partitions()
                .iter()
                .map(|p| PartitionState {
                    id: p.id(),
                    leader: p.leader(),
                    in_sync: p.isr().len(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The leader of `partition` of `topic`, as the cluster's metadata says (-1: none).
pub fn partition_leader(bootstrap: &str, topic: &str, partition: i32) -> i32 {
    partition_states(bootstrap, topic)
        .iter()
        .find(|p| p.id == partition)
        .map_or(-1, |p| p.leader)
}

/// One partition in the cluster's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionState {
    /// The partition.
    pub id: i32,
    /// The broker leading it (-1: none).
    pub leader: i32,
    /// How many replicas are in sync.
    pub in_sync: usize,
}

/// A schema registry on a free loopback port, stopped when the token is cancelled or dropped.
#[derive(Debug)]
pub struct TestRegistry {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The state behind it.
    pub store: Arc<Store>,
    shutdown: CancellationToken,
}

impl TestRegistry {
    /// Starts an empty in-memory registry.
    pub async fn start() -> Self {
        Self::start_on(
            "127.0.0.1:0".parse().expect("address"),
            Arc::new(Store::in_memory()),
        )
        .await
    }

    /// Starts a registry on `addr` over `store`.
    pub async fn start_on(addr: SocketAddr, store: Arc<Store>) -> Self {
        let shutdown = CancellationToken::new();
        let mut settings = ServerSettings::in_memory(addr);
        settings.storage = Storage::Shared(Arc::clone(&store));
        let registry = registry::start(settings, shutdown.clone())
            .await
            .expect("cannot start the schema registry");
        Self {
            url: registry.url(),
            store,
            shutdown,
        }
    }

    /// Stops serving (the port closes).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The Python interpreter of the test virtualenv (with confluent-kafka, grpcio-tools, ...):
/// `$AUCTION_PYTHON`, else `~/.cache/auction/venv/bin/python` as `.ci/test` creates it.
pub fn python() -> PathBuf {
    locate_tool(
        "AUCTION_PYTHON",
        "auction-python-not-on-path",
        ".cache/auction/venv/bin/python",
    )
}

/// The original demo's producer (confluent-kafka-python, JSONSerializer, the v1 schema), as a
/// script for [`python`]: `demo_producer.py [--config CONFIG_PY] BOOTSTRAP REGISTRY_URL TOPIC
/// SCHEMA_FILE NAME:PRICE...`; it prints how many records the broker acknowledged.
pub fn demo_producer() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("demo_producer.py")
}

/// The demo's JSON Schema (version 1, byte for byte).
pub fn demo_schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/json/auction-value.v1.json")
}

/// Polls `check` until it returns true, at most `within`; whether it did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The bid log judged by the service's default rules (starting price 1, increment 1): each
/// bid's partition, offset and whether it was valid at its position: above every earlier valid
/// bid of its auction in its partition (the order the owner decides in), its first copy only.
#[derive(Debug, Default)]
pub struct JudgedLog {
    /// Bid id → (partition, offset, valid at its position), for each bid's first record.
    pub bids: std::collections::HashMap<String, (i32, i64, bool)>,
    /// Bid ids that the log holds more than once.
    pub written_twice: Vec<String>,
}

/// Judges `log` (as [`read_bids`] returns it) record by record in log order.
pub fn judge_log(log: &[(Bid, i32, i64)]) -> JudgedLog {
    let mut ordered: Vec<&(Bid, i32, i64)> = log.iter().collect();
    ordered.sort_by_key(|(_, partition, offset)| (*partition, *offset));
    let mut highest: std::collections::HashMap<(String, i32), i64> =
        std::collections::HashMap::new();
    let mut judged = JudgedLog::default();
    for (bid, partition, offset) in ordered {
        let id = bid.bid_id.to_string();
        if judged.bids.contains_key(&id) {
            judged.written_twice.push(id);
            continue;
        }
        let key = (bid.auction_id.to_string(), *partition);
        let price = i64::from(bid.price.get());
        let valid = highest.get(&key).is_none_or(|h| price > *h);
        if valid {
            highest.insert(key, price);
        }
        judged.bids.insert(id, (*partition, *offset, valid));
    }
    judged
}

/// Every record of `topic`, from each partition's start to its end as of the call, decoded as a
/// bid through the registry at `registry_url`, with its partition and offset. Panics when a
/// record is not a valid bid or the log cannot be read within 60 s.
pub async fn read_bids(bootstrap: &str, registry_url: &str, topic: &str) -> Vec<(Bid, i32, i64)> {
    try_read_bids(bootstrap, registry_url, topic, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// As [`read_bids`], with an error instead of a panic, and `within` to read it all.
pub async fn try_read_bids(
    bootstrap: &str,
    registry_url: &str,
    topic: &str,
    within: Duration,
) -> Result<Vec<(Bid, i32, i64)>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "testkit-log-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        // A fresh reader's first end of a partition is the end as of the call (transaction
        // markers take offsets but are not records, so counting records cannot tell).
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| format!("cannot create a consumer: {e}"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("cannot read the metadata of {topic}: {e}"))?;
    let partitions = metadata
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len()) as i32;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let decoder =
        BidDecoder::new(&RegistrySettings::new(registry_url)).map_err(|e| e.to_string())?;
    let mut bids = Vec::new();
    let mut at_end = vec![false; usize::try_from(partitions).unwrap_or(0)];
    let deadline = Instant::now() + within;
    while at_end.iter().any(|end| !end) && Instant::now() < deadline {
        let message = match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => message,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                if let Some(end) = usize::try_from(partition)
                    .ok()
                    .and_then(|p| at_end.get_mut(p))
                {
                    *end = true;
                }
                continue;
            }
            _ => continue,
        };
        let position = LogPosition {
            topic,
            partition: message.partition(),
            offset: message.offset(),
        };
        let headers = message
            .headers()
            .map(|headers| HeaderIds::from_pairs(headers.iter().map(|h| (h.key, h.value))))
            .unwrap_or_default();
        let decoded = decoder
            .decode(message.payload(), position, headers)
            .await
            .map_err(|e| {
                format!(
                    "not a valid bid at {topic}/{}@{}: {e}",
                    position.partition, position.offset
                )
            })?;
        bids.push((decoded.bid, message.partition(), message.offset()));
    }
    let unread = at_end.iter().filter(|end| !**end).count();
    if unread > 0 {
        return Err(format!(
            "could not read the whole log of {topic} within {within:?}: {unread} partitions not read to their end"
        ));
    }
    Ok(bids)
}

/// This process's resident memory in KiB (`VmRSS`), 0 where `/proc` cannot say.
pub fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
