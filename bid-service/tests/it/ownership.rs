//! Partition ownership on Apache Kafka: replicas behind different addresses racing on one hot
//! auction, an owner paused past its session timeout (a zombie), and an owner killed mid-stream.
//! Each test checks the log itself afterwards: in log order every OK'd bid beats every earlier
//! valid bid by the increment, sits where its answer says, and no request id is in the log twice.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{PlaceBidRequest, PlaceBidResponse};
use auction_schemas::state::StateRecord;
use auction_schemas::{Bid, RecordCodec};
use auction_testkit::{Kafka, KafkaCluster, TestRegistry, free_port};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::helpers::{Service, eventually, highest_of, read_bids};

/// What the log says of each bid (see [`auction_testkit::judge_log`]); no bid may be in it twice.
fn judge_log(log: &[(Bid, i32, i64)]) -> HashMap<String, (i32, i64, bool)> {
    let judged = auction_testkit::judge_log(log);
    assert!(
        judged.written_twice.is_empty(),
        "bids in the log twice: {:?}",
        judged.written_twice
    );
    judged.bids
}

/// Every OK'd answer is in the log, valid at its position, where the answer says.
fn assert_oks_valid(log: &[(Bid, i32, i64)], oks: &[PlaceBidResponse]) {
    let judged = judge_log(log);
    for ok in oks {
        let bid = ok.bid.as_ref().expect("bid");
        let (partition, offset, valid) = judged
            .get(&bid.bid_id)
            .unwrap_or_else(|| panic!("an OK'd bid is not in the log: {bid:?}"));
        assert_eq!(
            (*partition, *offset),
            (bid.partition, bid.offset),
            "an OK'd bid is not where its answer says"
        );
        assert!(
            valid,
            "an OK'd bid is invalid at its position in the log: {bid:?}"
        );
    }
}

/// The highest valid bid of `auction` in the judged `log`.
fn highest_valid(
    log: &[(Bid, i32, i64)],
    judged: &HashMap<String, (i32, i64, bool)>,
    auction: &str,
) -> Option<i64> {
    log.iter()
        .filter(|(bid, _, _)| {
            bid.auction_id.as_str() == auction && judged[&bid.bid_id.to_string()].2
        })
        .map(|(bid, _, _)| i64::from(bid.price.get()))
        .max()
}

fn request(
    auction: &str,
    name: &str,
    price: i64,
    request_id: &str,
    timeout: Duration,
) -> tonic::Request<PlaceBidRequest> {
    let mut request = tonic::Request::new(PlaceBidRequest {
        auction_id: auction.to_owned(),
        name: name.to_owned(),
        price,
        request_id: request_id.to_owned(),
        ..Default::default()
    });
    request.set_timeout(timeout);
    request
}

/// The minimum next bid a FAILED_PRECONDITION names.
fn minimum_next(status: &tonic::Status) -> Option<i64> {
    status
        .get_details_error_info()?
        .metadata
        .get("minimum_next_bid")?
        .parse()
        .ok()
}

/// Callers bid on one auction through every client in turn, each bidding the minimum next bid
/// it last learnt; returns every OK.
async fn race(
    clients: &[BidServiceClient<Channel>],
    auction: &str,
    callers: usize,
    calls: usize,
) -> Vec<PlaceBidResponse> {
    let oks = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let clients = clients.to_vec();
            let (oks, auction) = (Arc::clone(&oks), auction.to_owned());
            tokio::spawn(async move {
                let mut next = 1;
                for call in 0..calls {
                    let mut client = clients[(caller + call) % clients.len()].clone();
                    let id = uuid::Uuid::new_v4().to_string();
                    let name = format!("caller-{caller}");
                    // UNAVAILABLE is retried with the same request id, as clients are told to.
                    let mut answer = client
                        .place_bid(request(&auction, &name, next, &id, Duration::from_secs(20)))
                        .await;
                    for _ in 0..5 {
                        if !matches!(&answer, Err(status) if status.code() == Code::Unavailable) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        answer = client
                            .place_bid(request(&auction, &name, next, &id, Duration::from_secs(20)))
                            .await;
                    }
                    match answer {
                        Ok(response) => {
                            let response = response.into_inner();
                            next = response.bid.as_ref().map_or(next, |b| b.price)
                                + 1
                                + (caller as i64 % 3);
                            oks.lock().unwrap().push(response);
                        }
                        Err(status) if status.code() == Code::FailedPrecondition => {
                            next = minimum_next(&status).unwrap_or(next + 1) + (call as i64 % 2);
                        }
                        Err(status) => panic!("a racing call failed: {status:?}"),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("caller");
    }
    Arc::try_unwrap(oks)
        .expect("callers done")
        .into_inner()
        .unwrap()
}

async fn racing_replicas(replicas: usize) {
    let kafka = Kafka::start();
    let registry = TestRegistry::start().await;
    let mut services = Vec::new();
    for _ in 0..replicas {
        let mut settings = auction_bid_service::Settings::new(&kafka.bootstrap, &registry.url);
        settings.grpc_listen = "127.0.0.1:0".parse().expect("address");
        settings.metrics_listen = "127.0.0.1:0".parse().expect("address");
        settings.topic_partitions = 3;
        services.push(Service::start(settings).await);
    }
    let clients: Vec<_> = services.iter().map(|s| s.client.clone()).collect();
    let oks = race(&clients, "hot", 12, 40).await;
    assert!(oks.len() >= 40, "too few bids got through: {}", oks.len());

    // The same request id sent to two replicas at once places one bid.
    let id = uuid::Uuid::new_v4().to_string();
    let next = highest_of(clients[0].clone(), "hot").await.0.unwrap_or(0) + 100;
    let (mut a, mut b) = (clients[0].clone(), clients[1].clone());
    let (first, second) = tokio::join!(
        a.place_bid(request("hot", "twice", next, &id, Duration::from_secs(20))),
        b.place_bid(request("hot", "twice", next, &id, Duration::from_secs(20))),
    );
    let (first, second) = (
        first.expect("first").into_inner(),
        second.expect("second").into_inner(),
    );
    assert_eq!(first.bid, second.bid, "both calls answer with the one bid");
    assert!(
        first.replayed != second.replayed,
        "exactly one call placed it"
    );

    let log = read_bids(&kafka.bootstrap, &registry.url, "auction").await;
    let mut all_oks = oks.clone();
    all_oks.push(first);
    assert_oks_valid(&log, &all_oks);
    let judged = judge_log(&log);
    let highest = log
        .iter()
        .filter(|(bid, _, _)| judged[&bid.bid_id.to_string()].2)
        .map(|(bid, _, _)| i64::from(bid.price.get()))
        .max();
    for client in &clients {
        let client = client.clone();
        let agreed = eventually(Duration::from_secs(10), || {
            let client = client.clone();
            async move { highest_of(client, "hot").await.0 == highest }
        })
        .await;
        assert!(
            agreed,
            "a replica does not report the log's highest bid {highest:?}"
        );
    }
    println!(
        "{replicas} replicas: {} OK'd bids of {} in the log, highest {highest:?}, every OK'd bid valid at its position",
        all_oks.len(),
        log.len()
    );
    for service in services {
        service.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_on_a_hot_auction_never_ok_an_invalid_bid() {
    racing_replicas(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_racing_on_a_hot_auction_never_ok_an_invalid_bid() {
    racing_replicas(3).await;
}

/// A bid service in a process of its own, so that it can be paused and killed.
pub(crate) struct Replica {
    pub child: Child,
    pub address: String,
    pub client: BidServiceClient<Channel>,
}

impl Replica {
    pub(crate) async fn start(bootstrap: &str, registry_url: &str, partitions: i32) -> Self {
        let grpc: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let metrics = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_bid-service"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BID_SERVICE_LISTEN", grpc.to_string())
            .env("BID_SERVICE_METRICS_LISTEN", metrics)
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("SCHEMA_REGISTRY_URL", registry_url)
            .env("AUCTION_TOPIC_PARTITIONS", partitions.to_string())
            .env("KAFKA_SESSION_TIMEOUT_MS", "6000")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bid-service");
        let address = format!("http://{grpc}");
        let channel = Channel::from_shared(address.clone())
            .expect("uri")
            .connect_lazy();
        // From here on, dropping the replica kills and reaps its process.
        let replica = Self {
            child,
            address,
            client: BidServiceClient::new(channel.clone()),
        };
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let serving = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok_and(|r| {
                    r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                });
            if serving {
                return replica;
            }
            assert!(
                Instant::now() < deadline,
                "the replica at {} did not start serving",
                replica.address
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }

    fn is_stopped(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('T'))
            })
            .unwrap_or(false)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address the state topic names as the owner of `partition` (its last `#owner` record).
pub(crate) fn owner_of(bootstrap: &str, partition: i32) -> Option<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "owner-reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("auction.state", partition, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut owner = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                if let Ok(StateRecord::Owner(record)) = RecordCodec::decode(message.payload()) {
                    owner = Some(record.address);
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    owner
}

/// One call's record: when it started and ended (relative to the test's start), to whom, and
/// its answer.
#[derive(Debug, Clone)]
struct Call {
    request_id: String,
    replica: usize,
    started: Duration,
    ended: Duration,
    answer: Result<PlaceBidResponse, (Code, String)>,
}

/// Callers bid on `auction` through `replicas[k]` for their fixed k until `stop`, recording
/// every call.
fn load(
    clients: Vec<BidServiceClient<Channel>>,
    auction: &str,
    per_replica: usize,
    epoch: Instant,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Vec<Call>> {
    let auction = auction.to_owned();
    tokio::spawn(async move {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (replica, client) in clients.into_iter().enumerate() {
            for caller in 0..per_replica {
                let (mut client, calls, stop, auction) = (
                    client.clone(),
                    Arc::clone(&calls),
                    stop.clone(),
                    auction.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut next = 1;
                    while !stop.is_cancelled() {
                        let request_id = uuid::Uuid::new_v4().to_string();
                        let started = epoch.elapsed();
                        let name = format!("r{replica}-c{caller}");
                        let answer = client
                            .place_bid(request(
                                &auction,
                                &name,
                                next,
                                &request_id,
                                Duration::from_secs(30),
                            ))
                            .await
                            .map(tonic::Response::into_inner)
                            .map_err(|s| (s.code(), s.message().to_owned()));
                        match &answer {
                            Ok(ok) => next = ok.bid.as_ref().map_or(next, |b| b.price) + 1,
                            Err((Code::FailedPrecondition, _)) => next += 7,
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                        calls.lock().unwrap().push(Call {
                            request_id,
                            replica,
                            started,
                            ended: epoch.elapsed(),
                            answer,
                        });
                    }
                }));
            }
        }
        for task in tasks {
            let _ = task.await;
        }
        Arc::try_unwrap(calls)
            .expect("callers done")
            .into_inner()
            .unwrap()
    })
}

/// The zombie: the owner of the hot auction's partition is SIGSTOPped past its session timeout
/// while bids are in flight on it; the other replica takes over and accepts bids; the first is
/// SIGCONTed. None of the paused owner's in-flight bids lands after the takeover (fencing), its
/// callers never get an OK the log contradicts, and both replicas agree on the state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_is_fenced_and_its_in_flight_bids_are_never_committed_after_takeover() {
    let cluster = KafkaCluster::start(3);
    let registry = TestRegistry::start().await;
    let first = Replica::start(&cluster.bootstrap, &registry.url, 2).await;
    let second = Replica::start(&cluster.bootstrap, &registry.url, 2).await;
    let auction = "zombie-lot";
    let partition = (crc32fast::hash(auction.as_bytes()) % 2) as i32;
    let replicas = [first, second];
    let ownership_settled = eventually(Duration::from_secs(60), || async {
        owner_of(&cluster.bootstrap, partition).is_some()
    })
    .await;
    assert!(ownership_settled, "no replica took partition {partition}");
    // Wait until the group has settled on two members (the second join moves a partition).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let owner_address = owner_of(&cluster.bootstrap, partition).expect("owner");
    let owner = replicas
        .iter()
        .position(|r| r.address == owner_address)
        .expect("the owner is one of the replicas");
    let survivor = 1 - owner;
    println!("partition {partition} of {auction} is owned by replica {owner} ({owner_address})");

    let epoch = Instant::now();
    let stop_load = tokio_util::sync::CancellationToken::new();
    let clients: Vec<_> = replicas.iter().map(|r| r.client.clone()).collect();
    let calls = load(clients, auction, 4, epoch, stop_load.clone());
    tokio::time::sleep(Duration::from_secs(3)).await;

    replicas[owner].signal("-STOP");
    let paused_at = epoch.elapsed();
    assert!(
        eventually(Duration::from_secs(5), || async {
            replicas[owner].is_stopped()
        })
        .await,
        "the owner is not paused"
    );
    // The fault happened: the survivor takes the partition over while the owner is paused.
    let took_over = eventually(Duration::from_secs(60), || async {
        owner_of(&cluster.bootstrap, partition).as_deref()
            == Some(replicas[survivor].address.as_str())
    })
    .await;
    assert!(
        took_over,
        "the survivor never took partition {partition} over"
    );
    let took_over_at = epoch.elapsed();
    let mut survivor_client = replicas[survivor].client.clone();
    // The load keeps bidding through both replicas (the read copy a commit behind the owner), so
    // a price just above the highest read may be too low by the time it arrives: bid 50 above it
    // (the load's callers climb past it in a few refusals), again until one is accepted.
    let mut accepted = None;
    for _ in 0..20 {
        let next = highest_of(survivor_client.clone(), auction)
            .await
            .0
            .unwrap_or(0)
            + 50;
        match survivor_client
            .place_bid(request(
                auction,
                "after-takeover",
                next,
                &uuid::Uuid::new_v4().to_string(),
                Duration::from_secs(20),
            ))
            .await
        {
            Err(status) if status.code() == Code::FailedPrecondition => continue,
            answer => {
                accepted = Some(answer);
                break;
            }
        }
    }
    accepted
        .expect("the survivor accepted none of 20 bids above its highest")
        .expect("the survivor accepts bids once it owns the partition");
    tokio::time::sleep(Duration::from_secs(2)).await;
    replicas[owner].signal("-CONT");
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop_load.cancel();
    let calls = calls.await.expect("load");

    let log = read_bids(&cluster.bootstrap, &registry.url, "auction").await;
    let oks: Vec<PlaceBidResponse> = calls.iter().filter_map(|c| c.answer.clone().ok()).collect();
    assert_oks_valid(&log, &oks);
    let judged = judge_log(&log);

    // The calls in flight on the paused owner when it stopped.
    let in_flight: Vec<&Call> = calls
        .iter()
        .filter(|c| c.replica == owner && c.started < paused_at && c.ended > paused_at)
        .collect();
    assert!(
        !in_flight.is_empty(),
        "no call was in flight on the owner when it was paused"
    );
    // The first bid the survivor wrote as the new owner.
    let first_after_takeover = calls
        .iter()
        .filter(|c| c.started > took_over_at)
        .filter_map(|c| c.answer.as_ref().ok())
        .filter_map(|ok| ok.bid.as_ref())
        .filter(|b| b.partition == partition)
        .map(|b| b.offset)
        .min()
        .expect("bids were accepted after the takeover");
    let mut landed = 0;
    for call in &in_flight {
        if let Some((p, offset, _)) = judged.get(&call.request_id) {
            landed += 1;
            assert!(
                *p == partition && *offset < first_after_takeover,
                "a bid in flight on the paused owner was committed after the takeover (offset {offset}, new owner's first at {first_after_takeover})"
            );
        } else {
            assert!(
                call.answer.is_err(),
                "a call answered OK whose bid is not in the log: {call:?}"
            );
        }
    }
    let unavailable = in_flight
        .iter()
        .filter(|c| matches!(c.answer, Err((Code::Unavailable, _))))
        .count();
    println!(
        "{} calls; {} in flight on the paused owner: {landed} committed before the takeover, {unavailable} answered UNAVAILABLE; {} OK'd bids all valid",
        calls.len(),
        in_flight.len(),
        oks.len()
    );

    // Every UNAVAILABLE learns the truth from a retry with its request id on the survivor.
    for call in calls
        .iter()
        .filter(|c| matches!(c.answer, Err((Code::Unavailable, _))))
    {
        let retried = survivor_client
            .place_bid(request(
                auction,
                "retry",
                1,
                &call.request_id,
                Duration::from_secs(20),
            ))
            .await;
        match (judged.contains_key(&call.request_id), retried) {
            (true, Ok(response)) => assert!(response.get_ref().replayed, "{response:?}"),
            (false, Err(status)) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}")
            }
            (in_log, other) => {
                panic!("a retry disagrees with the log (in the log: {in_log}): {other:?}")
            }
        }
    }

    // Both replicas report the log's state.
    let highest = highest_valid(&log, &judged, auction);
    for replica in &replicas {
        let client = replica.client.clone();
        let agreed = eventually(Duration::from_secs(30), || {
            let client = client.clone();
            async move { highest_of(client, auction).await.0 == highest }
        })
        .await;
        assert!(
            agreed,
            "replica {} does not report the log's highest bid {highest:?}",
            replica.address
        );
    }
}

/// The owner is SIGKILLed mid-stream: callers retry each request id through the other replica
/// until it has a final answer; each request id ends up in the log at most once, exactly when
/// its final answer is OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_loses_nothing_and_retries_on_another_replica_place_each_bid_once() {
    let kafka = Kafka::start();
    let registry = TestRegistry::start().await;
    let mut replicas = [
        Replica::start(&kafka.bootstrap, &registry.url, 2).await,
        Replica::start(&kafka.bootstrap, &registry.url, 2).await,
    ];
    let auctions = ["kill-a", "kill-b", "kill-c", "kill-d"];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let owners: HashSet<String> = (0..2)
        .filter_map(|p| owner_of(&kafka.bootstrap, p))
        .collect();
    let victim = replicas
        .iter()
        .position(|r| owners.contains(&r.address))
        .expect("a replica owns a partition");
    let survivor = 1 - victim;
    let clients: Vec<_> = replicas.iter().map(|r| r.client.clone()).collect();
    let finals = Arc::new(Mutex::new(
        Vec::<(String, Result<PlaceBidResponse, Code>)>::new(),
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for caller in 0..8 {
        let (clients, finals, stop) = (clients.clone(), Arc::clone(&finals), stop.clone());
        let auction = auctions[caller % auctions.len()].to_owned();
        tasks.push(tokio::spawn(async move {
            let mut next = 1;
            while !stop.is_cancelled() {
                let request_id = uuid::Uuid::new_v4().to_string();
                let mut target = caller % 2;
                let answer = loop {
                    let mut client = clients[target].clone();
                    match client
                        .place_bid(request(
                            &auction,
                            &format!("c{caller}"),
                            next,
                            &request_id,
                            Duration::from_secs(15),
                        ))
                        .await
                    {
                        Ok(response) => break Ok(response.into_inner()),
                        Err(status) if status.code() == Code::FailedPrecondition => {
                            break Err(status.code());
                        }
                        // UNAVAILABLE, or the replica is gone: the same request id elsewhere.
                        Err(_) => {
                            target = 1 - target;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                };
                match &answer {
                    Ok(ok) => next = ok.bid.as_ref().map_or(next, |b| b.price) + 1,
                    Err(_) => next += 5,
                }
                finals.lock().unwrap().push((request_id, answer));
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = finals.lock().unwrap().len();
    replicas[victim].child.kill().expect("SIGKILL");
    replicas[victim].child.wait().expect("reaped");
    tokio::time::sleep(Duration::from_secs(20)).await;
    stop.cancel();
    for task in tasks {
        task.await.expect("caller");
    }
    let finals = Arc::try_unwrap(finals).expect("done").into_inner().unwrap();
    let after_kill = finals.len() - before_kill;
    assert!(
        after_kill > 0,
        "no call completed after the owner was killed"
    );

    let log = read_bids(&kafka.bootstrap, &registry.url, "auction").await;
    let judged = judge_log(&log);
    let oks: Vec<PlaceBidResponse> = finals
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok().cloned())
        .collect();
    assert_oks_valid(&log, &oks);
    for (request_id, answer) in &finals {
        assert_eq!(
            judged.contains_key(request_id),
            answer.is_ok(),
            "request {request_id}: in the log exactly when its final answer is OK ({answer:?})"
        );
    }
    println!(
        "{} requests ({after_kill} finished after the owner was killed), {} OK'd, each once in the log",
        finals.len(),
        oks.len()
    );
    let survivor_client = replicas[survivor].client.clone();
    for auction in auctions {
        let highest = highest_valid(&log, &judged, auction);
        let client = survivor_client.clone();
        assert!(
            eventually(Duration::from_secs(20), || {
                let client = client.clone();
                async move { highest_of(client, auction).await.0 == highest }
            })
            .await,
            "the survivor does not report the log's highest bid of {auction}"
        );
    }
}
