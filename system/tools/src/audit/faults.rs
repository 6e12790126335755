//! What the audit runs on and what it breaks: the brokers (librdkafka's mock cluster or three
//! Apache Kafka nodes), the registry, the two bid-service replicas and the sinks, and each fault
//! that is injected into them. A fault that must move a partition's leadership checks that it
//! did, and fails the audit when it did not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auction_bid_service::RunningBidService;
use auction_schema_registry::{self as registry, ServerSettings, Storage, store::Store};
use auction_testkit::{KafkaCluster, partition_leader, partition_states};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio_util::sync::CancellationToken;

use super::replica_process::ReplicaProcess;
use super::sink_process::SinkProcess;
use super::{DEAD_LETTER_TOPIC, PARTITIONS, TOPIC};

/// A loopback address on a port the system picks.
const ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// How long a leadership change may take on three nodes (the broker session timeout is 9 s).
const FAILOVER_WITHIN: Duration = Duration::from_secs(60);

/// Which brokers the audit runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokersKind {
    /// librdkafka's mock cluster, in this process (faults only it can inject).
    Mock,
    /// Three Apache Kafka nodes (replication factor 3, `min.insync.replicas=2`).
    ThreeNodes,
}

/// The running brokers.
pub(super) enum Brokers {
    Mock(MockCluster<'static, DefaultProducerContext>),
    ThreeNodes(KafkaCluster),
}

impl std::fmt::Debug for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// SIGKILL a sink process (by its index), restart it.
    KillSink(usize),
    /// Stop bid-service replica B and start it again on the same address.
    RestartReplica,
    /// Three nodes: SIGKILL the third replica (its own process, which the clients do not call:
    /// the other two forward to it) while it owns partitions, and start it again.
    KillOwner,
    /// The registry goes away for a second and comes back with the same schemas.
    RegistryDown,
    /// Mock cluster: produce requests fail with retriable errors.
    ProduceErrors,
    /// Mock cluster: offset commits fail.
    CommitErrors,
    /// Mock cluster: 200 ms round trips for a second.
    Latency,
    /// Mock cluster: the broker goes down for a second.
    BrokerDown,
    /// Three nodes: SIGKILL the broker leading partition 0, wait for the leadership to move,
    /// restart it and wait until every partition is fully in sync again.
    KillLeader,
    /// Three nodes: SIGSTOP the broker leading partition 1 until its leadership moves (past the
    /// broker session timeout), then SIGCONT it and wait until every partition is in sync.
    PauseLeader,
}

impl Brokers {
    /// Starts the brokers with the bid topic (6 partitions) and the dead-letter topic.
    pub(super) async fn start(kind: BrokersKind) -> Result<Self, String> {
        match kind {
            BrokersKind::Mock => {
                let cluster = MockCluster::new(1)
                    .map_err(|e| format!("cannot start the mock cluster: {e}"))?;
                // The bid service's state topic too: the mock cluster cannot create topics
                // on request.
                for (topic, partitions) in [
                    (TOPIC, PARTITIONS),
                    ("auction.state", PARTITIONS),
                    ("auction.results", PARTITIONS),
                    (DEAD_LETTER_TOPIC, 1),
                ] {
                    cluster
                        .create_topic(topic, partitions, 1)
                        .map_err(|e| format!("cannot create {topic}: {e}"))?;
                }
                Ok(Self::Mock(cluster))
            }
            BrokersKind::ThreeNodes => {
                eprintln!("audit: starting three Apache Kafka nodes");
                let cluster = tokio::task::spawn_blocking(|| KafkaCluster::start(3))
                    .await
                    .map_err(|e| format!("cannot start three Apache Kafka nodes: {e}"))?;
                for (topic, partitions) in [(TOPIC, PARTITIONS), (DEAD_LETTER_TOPIC, 1)] {
                    cluster.try_create_topic(topic, partitions).await?;
                }
                Ok(Self::ThreeNodes(cluster))
            }
        }
    }

    /// `bootstrap.servers`.
    pub(super) fn bootstrap(&self) -> String {
        match self {
            Self::Mock(cluster) => cluster.bootstrap_servers(),
            Self::ThreeNodes(cluster) => cluster.bootstrap.clone(),
        }
    }

    /// Whether `read_committed` readers miss an aborted transaction's records: Apache Kafka
    /// writes abort markers; librdkafka's mock cluster answers `EndTxn` without acting on it, so
    /// the records of an aborted transaction stay readable there.
    pub(super) fn hides_aborted_transactions(&self) -> bool {
        !matches!(self, Self::Mock(_))
    }

    /// What they are, for the report.
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Self::Mock(_) => "librdkafka's mock cluster",
            Self::ThreeNodes(_) => {
                "three Apache Kafka nodes (replication 3, min.insync.replicas 2)"
            }
        }
    }

    /// The faults injected on them, in turn.
    pub(super) fn schedule(&self) -> Vec<Fault> {
        match self {
            // No replica restart on the mock: moving partition ownership is the consumer
            // group's work, which the mock's group coordinator does slowly (10 to 20 s a
            // cooperative rebalance round, so the owners spent the run moving) and once not at
            // all (it aborted the process on an assertion in
            // `rd_kafka_mock_cgrp_classic_member_add`). Replica restarts are injected on
            // three Apache Kafka nodes.
            Self::Mock(_) => vec![
                Fault::KillSink(0),
                Fault::ProduceErrors,
                Fault::KillSink(1),
                Fault::Latency,
                Fault::RegistryDown,
                Fault::CommitErrors,
                Fault::BrokerDown,
            ],
            Self::ThreeNodes(_) => vec![
                Fault::KillSink(0),
                Fault::KillOwner,
                Fault::KillLeader,
                Fault::KillSink(1),
                Fault::PauseLeader,
                Fault::RestartReplica,
                Fault::RegistryDown,
            ],
        }
    }
}

/// Everything the audit runs, and the faults it can inject into it.
#[derive(Debug)]
pub(super) struct Stage {
    pub(super) brokers: Brokers,
    pub(super) sinks: Vec<SinkProcess>,
    store: Arc<Store>,
    registry_addr: SocketAddr,
    stop_registry: CancellationToken,
    replica_a: Option<(RunningBidService, CancellationToken)>,
    replica_b: Option<(RunningBidService, CancellationToken)>,
    replica_b_addr: SocketAddr,
    /// The third replica, in a process of its own (three nodes only).
    owner_process: Option<ReplicaProcess>,
}

impl Stage {
    /// Starts the registry and two bid-service replicas on `brokers` (the sinks come next).
    pub(super) async fn start(brokers: Brokers) -> Result<Self, String> {
        let store = Arc::new(Store::in_memory());
        let stop_registry = CancellationToken::new();
        let registry = registry::start(registry_settings(&store, ANY_PORT), stop_registry.clone())
            .await
            .map_err(|e| e.to_string())?;
        let registry_addr = registry.addr;
        let mut stage = Self {
            brokers,
            sinks: Vec::new(),
            store,
            registry_addr,
            stop_registry,
            replica_a: None,
            replica_b: None,
            replica_b_addr: ANY_PORT,
            owner_process: None,
        };
        stage.replica_a = Some(stage.start_replica(ANY_PORT).await?);
        let replica_b = stage.start_replica(ANY_PORT).await?;
        stage.replica_b_addr = replica_b.0.grpc_addr;
        stage.replica_b = Some(replica_b);
        Ok(stage)
    }

    pub(super) fn bootstrap(&self) -> String {
        self.brokers.bootstrap()
    }

    pub(super) fn registry_url(&self) -> String {
        format!("http://{}", self.registry_addr)
    }

    /// The replicas' gRPC URLs.
    pub(super) fn targets(&self) -> Vec<String> {
        [&self.replica_a, &self.replica_b]
            .iter()
            .filter_map(|replica| replica.as_ref())
            .map(|(running, _)| format!("http://{}", running.grpc_addr))
            .collect()
    }

    /// Starts the third replica in a process of its own (`binary`'s `audit-replica`), its log in
    /// `dir`, and waits until it is SERVING.
    pub(super) async fn start_owner_process(
        &mut self,
        binary: &std::path::Path,
        dir: &std::path::Path,
    ) -> Result<(), String> {
        let mut process = ReplicaProcess::new(binary, &self.bootstrap(), &self.registry_url(), dir);
        process.start().await?;
        self.owner_process = Some(process);
        Ok(())
    }

    async fn start_replica(
        &self,
        listen: SocketAddr,
    ) -> Result<(RunningBidService, CancellationToken), String> {
        let mut settings =
            auction_bid_service::Settings::new(&self.bootstrap(), &self.registry_url());
        settings.grpc_listen = listen;
        settings.metrics_listen = ANY_PORT;
        settings.create_topic = false;
        if let Brokers::Mock(_) = self.brokers {
            // The mock cluster answers at once or never; on real brokers, a failover takes
            // seconds and the default (30 s) applies.
            settings.delivery_timeout = Duration::from_secs(3);
            // The mock's group coordinator never moves, and each of its rebalances waits out
            // the members' session: a short one keeps ownership moving.
            settings
                .kafka
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "500");
        }
        let shutdown = CancellationToken::new();
        let mut running = auction_bid_service::spawn(settings, shutdown.clone())
            .await
            .map_err(|e| e.to_string())?;
        if !running.wait_caught_up(Duration::from_secs(60)).await {
            return Err("a replica did not replay the log within 60 s".to_owned());
        }
        Ok((running, shutdown))
    }

    /// Injects `fault`, and returns its name for the report.
    pub(super) async fn inject(&mut self, fault: Fault) -> Result<&'static str, String> {
        match (fault, &mut self.brokers) {
            (Fault::KillSink(index), _) => {
                let sink = self
                    .sinks
                    .get_mut(index)
                    .ok_or_else(|| format!("no sink {index}"))?;
                sink.kill_and_restart().await?;
                Ok(if sink.name == "csv" {
                    "SIGKILL csv sink"
                } else {
                    "SIGKILL sql sink"
                })
            }
            (Fault::RestartReplica, _) => {
                if let Some((running, stop)) = self.replica_b.take() {
                    stop.cancel();
                    let _ = running.stopped().await;
                }
                self.replica_b = Some(self.start_replica(self.replica_b_addr).await?);
                Ok("bid-service replica restart")
            }
            (Fault::KillOwner, _) => {
                let process = self
                    .owner_process
                    .as_mut()
                    .ok_or("the third replica's process was not started")?;
                process.kill_owner_and_restart().await?;
                Ok("owner replica SIGKILLed (it owned partitions), restarted")
            }
            (Fault::RegistryDown, _) => {
                self.stop_registry.cancel();
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                self.stop_registry = CancellationToken::new();
                let mut restarted = Err(String::new());
                for _ in 0..50 {
                    let settings = registry_settings(&self.store, self.registry_addr);
                    restarted = registry::start(settings, self.stop_registry.clone())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    if restarted.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                restarted.map_err(|e| format!("cannot restart the schema registry: {e}"))?;
                Ok("schema registry down 1 s")
            }
            (Fault::ProduceErrors, Brokers::Mock(cluster)) => {
                cluster.request_errors(
                    RDKafkaApiKey::Produce,
                    &[
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                    ],
                );
                Ok("produce request errors")
            }
            (Fault::CommitErrors, Brokers::Mock(cluster)) => {
                cluster.request_errors(
                    RDKafkaApiKey::OffsetCommit,
                    &[
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                        RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                    ],
                );
                Ok("offset commit errors")
            }
            (Fault::Latency, Brokers::Mock(cluster)) => {
                let _ = cluster.broker_round_trip_time(1, Duration::from_millis(200));
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                let _ = cluster.broker_round_trip_time(1, Duration::from_millis(0));
                Ok("broker latency 200 ms")
            }
            (Fault::BrokerDown, Brokers::Mock(cluster)) => {
                let _ = cluster.broker_down(1);
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                let _ = cluster.broker_up(1);
                Ok("broker down 1 s")
            }
            (Fault::KillLeader, Brokers::ThreeNodes(cluster)) => {
                let old = move_leadership(cluster, 0, |cluster, id| cluster.kill(id)).await?;
                tokio::task::block_in_place(|| cluster.restart(old));
                wait_in_sync(cluster).await?;
                Ok("partition leader SIGKILLed (leadership moved), restarted")
            }
            (Fault::PauseLeader, Brokers::ThreeNodes(cluster)) => {
                let old = move_leadership(cluster, 1, |cluster, id| cluster.pause(id)).await?;
                cluster.resume(old);
                wait_in_sync(cluster).await?;
                Ok(
                    "partition leader SIGSTOPped past the session timeout (leadership moved), resumed",
                )
            }
            (fault, brokers) => Err(format!("{fault:?} cannot be injected on {brokers:?}")),
        }
    }

    /// Stops the replicas and the registry (the sinks are stopped by the caller).
    pub(super) async fn stop(mut self) {
        if let Some(mut process) = self.owner_process.take() {
            // A replica that does not stop in time is killed; the books are already read.
            let _ = process.terminate();
        }
        for (running, stop) in [self.replica_a.take(), self.replica_b.take()]
            .into_iter()
            .flatten()
        {
            stop.cancel();
            let _ = running.stopped().await;
        }
        self.stop_registry.cancel();
    }
}

fn registry_settings(store: &Arc<Store>, listen: SocketAddr) -> ServerSettings {
    let mut settings = ServerSettings::in_memory(listen);
    settings.storage = Storage::Shared(Arc::clone(store));
    settings.preload_subject = Some("auction-value".to_owned());
    settings
}

/// Applies `fault` to the broker leading `partition` of the bid topic and waits until another
/// broker leads it; returns the old leader. An error when the leadership did not move: the fault
/// did not happen as intended.
async fn move_leadership(
    cluster: &mut KafkaCluster,
    partition: i32,
    fault: impl FnOnce(&mut KafkaCluster, i32),
) -> Result<i32, String> {
    let bootstrap = cluster.bootstrap.clone();
    let old = partition_leader(&bootstrap, TOPIC, partition);
    if old <= 0 {
        return Err(format!("partition {partition} has no leader to fault"));
    }
    tokio::task::block_in_place(|| fault(cluster, old));
    let deadline = Instant::now() + FAILOVER_WITHIN;
    loop {
        let bootstrap = bootstrap.clone();
        let now =
            tokio::task::spawn_blocking(move || partition_leader(&bootstrap, TOPIC, partition))
                .await
                .unwrap_or(-1);
        if now > 0 && now != old {
            return Ok(old);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the leadership of partition {partition} did not move from broker {old} within {FAILOVER_WITHIN:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every partition of the bid topic has all three replicas in sync again, so that
/// the next fault does not take the last in-sync replica but one.
async fn wait_in_sync(cluster: &KafkaCluster) -> Result<(), String> {
    let deadline = Instant::now() + FAILOVER_WITHIN;
    loop {
        let bootstrap = cluster.bootstrap.clone();
        let states = tokio::task::spawn_blocking(move || partition_states(&bootstrap, TOPIC))
            .await
            .unwrap_or_default();
        if states.len() == PARTITIONS as usize && states.iter().all(|p| p.in_sync == 3) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the bid topic's partitions were not all in sync again within {FAILOVER_WITHIN:?}: {states:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
