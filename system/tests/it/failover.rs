//! On three Apache Kafka nodes (replication factor 3, `min.insync.replicas=2`, unclean leader
//! election off): the broker leading the bids' partition is SIGKILLed, or SIGSTOPped past the
//! session timeout and woken, while bids are placed.
//! Every bid that got OK must be in the topic (read_committed) and in the MySQL, CSV and
//! PostgreSQL-over-ODBC sinks exactly once. And the topic settings the bid service creates on
//! three brokers, and that it and the sinks refuse when they break the guarantees.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auction_process::kafka_startup::read_topic_settings;
use auction_proto::v1::PlaceBidRequest;
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_testkit::{KafkaCluster, TestRegistry, partition_leader, read_bids};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tokio_util::sync::CancellationToken;

use crate::support::{Process, binary, eventually, mysql_query, postgres_query, unique};

const BIDS: usize = 400;
const CALLERS: usize = 8;
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
const ODBC_POSTGRES: &str =
    "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;";

/// How often each bid id is in the topic.
async fn bids_in_topic(bootstrap: &str, registry_url: &str, topic: &str) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for (bid, _, _) in read_bids(bootstrap, registry_url, topic).await {
        *ids.entry(bid.bid_id.to_string()).or_insert(0) += 1;
    }
    ids
}

fn counts(rows: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in rows.lines().map(str::trim).filter(|l| !l.is_empty()) {
        *counts.entry(id.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// What happens to the broker leading the bids' partition 0, mid-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaderFault {
    /// SIGKILL: gone for good.
    Kill,
    /// SIGSTOP until its leadership has moved (past the broker session timeout), then SIGCONT:
    /// a zombie that wakes up with connections and requests still open.
    PausePastTheSessionTimeout,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_leader_killed_mid_stream_loses_and_doubles_no_acknowledged_bid() {
    leader_fault_mid_stream(LeaderFault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_leader_paused_past_the_session_timeout_loses_and_doubles_no_acknowledged_bid()
{
    leader_fault_mid_stream(LeaderFault::PausePastTheSessionTimeout).await;
}

async fn leader_fault_mid_stream(fault: LeaderFault) {
    // The in-process bid service's log (and librdkafka's) goes to the test's output, shown when
    // the test fails: what the owner of the partition did after the fault.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let mut cluster = tokio::task::block_in_place(|| KafkaCluster::start(3));
    let bootstrap = cluster.bootstrap.clone();
    let topic = unique("auction");
    let table = unique("bid");
    let logs = tempfile::tempdir().expect("log dir");
    let csv = logs.path().join("output.csv");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let new_topic = NewTopic::new(&topic, 3, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2")
        .set("unclean.leader.election.enable", "false");
    let created = admin
        .create_topics(
            [&new_topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let registry = TestRegistry::start().await;
    let mut settings = auction_bid_service::Settings::new(&bootstrap, &registry.url);
    settings.grpc_listen = "127.0.0.1:0".parse().expect("address");
    settings.metrics_listen = "127.0.0.1:0".parse().expect("address");
    settings.topic = topic.clone();
    settings.create_topic = false;
    let shutdown = CancellationToken::new();
    let mut service = auction_bid_service::spawn(settings, shutdown.clone())
        .await
        .expect("the bid service starts");
    assert!(service.wait_caught_up(Duration::from_secs(60)).await);
    let client = BidServiceClient::connect(format!("http://{}", service.grpc_addr))
        .await
        .expect("connect");

    let sink = |name: &'static str, kind: &str, extra: &[(&str, String)]| {
        let mut command = Command::new(binary("auction-sink"));
        command
            .current_dir(logs.path())
            .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
            .env("AUCTION_TOPIC", &topic)
            .env("SCHEMA_REGISTRY_URL", &registry.url)
            .env("SINK_GROUP_ID", unique(name))
            .env("SINK_METRICS_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .arg(kind);
        for (key, value) in extra {
            command.env(key, value);
        }
        Process::spawn(name, command, logs.path())
    };
    let mysql = sink(
        "sink-mysql",
        "mysql",
        &[
            ("DATABASE_URL", MYSQL_URL.to_owned()),
            ("SINK_TABLE", table.clone()),
        ],
    );
    let csv_sink = sink(
        "sink-csv",
        "csv",
        &[("SINK_CSV_PATH", csv.display().to_string())],
    );
    let odbc = sink(
        "sink-odbc",
        "odbc",
        &[
            ("ODBC_CONNECTION_STRING", ODBC_POSTGRES.to_owned()),
            ("SINK_TABLE", table.clone()),
        ],
    );

    // Callers place one bid each on auctions of their own (nothing is ever too low), retrying
    // UNAVAILABLE with the same request_id as a client should, until every bid got OK.
    let next = Arc::new(AtomicUsize::new(0));
    let placed = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (next, placed, mut client) =
                (Arc::clone(&next), Arc::clone(&placed), client.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut retries = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= BIDS {
                        return (acknowledged, retries);
                    }
                    let request_id = uuid::Uuid::new_v4().to_string();
                    let started = Instant::now();
                    loop {
                        let mut request = tonic::Request::new(PlaceBidRequest {
                            auction_id: format!("failover-{i}"),
                            name: format!("bidder {i}"),
                            price: 10,
                            request_id: request_id.clone(),
                            ..Default::default()
                        });
                        request.set_timeout(Duration::from_secs(10));
                        match client.place_bid(request).await {
                            Ok(response) => {
                                let bid = response.into_inner().bid.expect("bid");
                                assert_eq!(bid.bid_id, request_id, "the request id is the bid id");
                                acknowledged.push(bid.bid_id);
                                placed.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(status) => {
                                assert!(
                                    matches!(
                                        status.code(),
                                        // The server's answer, or the client's own timeout.
                                        tonic::Code::Unavailable
                                            | tonic::Code::DeadlineExceeded
                                            | tonic::Code::Cancelled
                                    ),
                                    "only a retriable refusal is expected: {status:?}"
                                );
                                assert!(
                                    started.elapsed() < Duration::from_secs(120),
                                    "bid {i} was not placed within 120 s: {status:?}"
                                );
                                retries.push(status.message().to_owned());
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                        }
                    }
                }
            })
        })
        .collect();

    // Mid-stream, SIGKILL or SIGSTOP the broker leading partition 0, and check that leadership
    // moved.
    while placed.load(Ordering::SeqCst) < BIDS / 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old_leader = partition_leader(&bootstrap, &topic, 0);
    assert!(old_leader > 0, "partition 0 has no leader");
    let placed_at_kill = placed.load(Ordering::SeqCst);
    match fault {
        LeaderFault::Kill => cluster.kill(old_leader),
        LeaderFault::PausePastTheSessionTimeout => cluster.pause(old_leader),
    }
    let mut new_leader = -1;
    let moved = eventually(|| {
        new_leader = partition_leader(&bootstrap, &topic, 0);
        new_leader > 0 && new_leader != old_leader
    })
    .await;
    assert!(
        moved,
        "the leadership of partition 0 did not move from broker {old_leader}"
    );
    if fault == LeaderFault::PausePastTheSessionTimeout {
        cluster.resume(old_leader);
    }
    println!(
        "{fault:?}: broker {old_leader}, leader of partition 0, after {placed_at_kill} of {BIDS} bids got OK; broker {new_leader} leads it now"
    );

    let mut acknowledged = Vec::new();
    let mut refusals: HashMap<String, usize> = HashMap::new();
    for caller in callers {
        let (ids, refused) = caller.await.expect("caller");
        acknowledged.extend(ids);
        for message in refused {
            *refusals.entry(message).or_insert(0) += 1;
        }
    }
    let retries: usize = refusals.values().sum();
    println!("refusals retried, by message: {refusals:?}");
    assert!(
        placed.load(Ordering::SeqCst) > placed_at_kill,
        "no bid got OK after the kill"
    );

    let in_mysql = || counts(&mysql_query(&format!("SELECT bid_id FROM {table}")));
    let in_csv = || {
        let text = std::fs::read_to_string(&csv).unwrap_or_default();
        let mut found = HashMap::new();
        for id in &acknowledged {
            let count = text.matches(id.as_str()).count();
            if count > 0 {
                found.insert(id.clone(), count);
            }
        }
        found
    };
    let in_postgres = || counts(&postgres_query(&format!("SELECT bid_id FROM {table}")));
    let all_landed = eventually(|| {
        in_mysql().len() >= BIDS && in_csv().len() >= BIDS && in_postgres().len() >= BIDS
    })
    .await;
    let topic_ids = bids_in_topic(&bootstrap, &registry.url, &topic).await;
    let (mysql_ids, csv_ids, postgres_ids) = (in_mysql(), in_csv(), in_postgres());
    let rows = |ids: &HashMap<String, usize>| ids.values().sum::<usize>();
    println!(
        "OK'd bids: {} ({retries} refusals retried with the same request_id); in the topic (read_committed): {}; MySQL rows: {}; CSV rows: {}; PostgreSQL rows: {}",
        acknowledged.len(),
        rows(&topic_ids),
        rows(&mysql_ids),
        rows(&csv_ids),
        rows(&postgres_ids)
    );
    assert!(
        all_landed,
        "not every bid landed:\n{}\n{}\n{}",
        mysql.log(),
        csv_sink.log(),
        odbc.log()
    );
    assert_eq!(acknowledged.len(), BIDS);
    for (what, ids) in [
        ("the topic", &topic_ids),
        ("MySQL", &mysql_ids),
        ("the CSV file", &csv_ids),
        ("PostgreSQL", &postgres_ids),
    ] {
        assert_eq!(rows(ids), BIDS, "{what} holds {} rows", rows(ids));
        for id in &acknowledged {
            assert_eq!(ids.get(id), Some(&1), "bid {id} in {what}");
        }
    }

    shutdown.cancel();
    let _ = service.stopped().await;
    for process in [mysql, csv_sink, odbc] {
        let name = process.name;
        let (status, log) = process.terminate();
        assert!(status.success(), "{name} exited with {status:?}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_three_brokers_the_bid_service_creates_safe_topics_and_it_and_the_sinks_refuse_unsafe_ones()
 {
    let cluster = tokio::task::block_in_place(|| KafkaCluster::start(3));
    let bootstrap = cluster.bootstrap.clone();
    let registry = TestRegistry::start().await;
    let settings = |topic: &str| {
        let mut settings = auction_bid_service::Settings::new(&bootstrap, &registry.url);
        settings.grpc_listen = "127.0.0.1:0".parse().expect("address");
        settings.metrics_listen = "127.0.0.1:0".parse().expect("address");
        settings.topic = topic.to_owned();
        settings
    };
    let client = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .clone();

    // Created by the service: replication factor 3, min.insync.replicas 2, unclean election off.
    let created = unique("auction");
    let shutdown = CancellationToken::new();
    let service = auction_bid_service::spawn(settings(&created), shutdown.clone())
        .await
        .expect("the bid service starts and creates its topic");
    let read = read_topic_settings(&client, &created)
        .await
        .expect("the topic's settings");
    println!("created by the service: {read:?}");
    assert_eq!(read.brokers, 3);
    assert_eq!(read.replication, 3);
    assert_eq!(read.min_insync_replicas, Some(2));
    assert_eq!(read.unclean_leader_election, Some(false));
    assert!(read.problems().is_empty(), "{:?}", read.problems());
    shutdown.cancel();
    let _ = service.stopped().await;

    // Created by hand with replication factor 1: refused with a sentence, unless allowed.
    let handmade = unique("auction");
    let admin: AdminClient<DefaultClientContext> = client.create().expect("admin client");
    let results = admin
        .create_topics(
            [&NewTopic::new(&handmade, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("create_topics");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut refused = settings(&handmade);
    refused.create_topic = false;
    let error = auction_bid_service::spawn(refused, CancellationToken::new())
        .await
        .expect_err("a topic with replication factor 1 on three brokers is refused");
    println!("refused: {error}");
    assert!(
        error
            .to_string()
            .contains(&format!("topic {handmade} is not safe for bids"))
            && error
                .to_string()
                .contains("replication factor is 1 on a cluster of 3 brokers")
            && error
                .to_string()
                .contains("AUCTION_TOPIC_ALLOW_UNSAFE=true"),
        "{error}"
    );
    // A sink refuses it the same way.
    let csv_dir = tempfile::tempdir().expect("temp dir");
    let sink = Command::new(binary("auction-sink"))
        .env("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)
        .env("AUCTION_TOPIC", &handmade)
        .env("SCHEMA_REGISTRY_URL", &registry.url)
        .env("SINK_METRICS_LISTEN", "127.0.0.1:0")
        .env("SINK_CSV_PATH", csv_dir.path().join("output.csv"))
        .arg("csv")
        .output()
        .expect("auction-sink runs");
    let stderr = String::from_utf8_lossy(&sink.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        !sink.status.success()
            && last.starts_with("auction-sink: ")
            && last.contains(&format!("topic {handmade} is not safe for bids"))
            && last.contains("replication factor is 1 on a cluster of 3 brokers"),
        "{stderr}"
    );
    let mut allowed = settings(&handmade);
    allowed.create_topic = false;
    allowed.allow_unsafe_topic = true;
    let shutdown = CancellationToken::new();
    let service = auction_bid_service::spawn(allowed, shutdown.clone())
        .await
        .expect("allowed explicitly, it starts");
    shutdown.cancel();
    let _ = service.stopped().await;
}
