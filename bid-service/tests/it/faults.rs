//! Faults injected with librdkafka's mock cluster: a broker that goes away, produce requests that
//! fail and are retried.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use auction_proto::v1::PlaceBidRequest;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tonic::Code;

use crate::helpers::{Backend, Service, eventually, read_bids, resident_kib};

fn request(price: i64, timeout: Duration) -> tonic::Request<PlaceBidRequest> {
    let mut request = tonic::Request::new(PlaceBidRequest {
        auction_id: "fault".into(),
        name: "Ada".into(),
        price,
        request_id: String::new(),
        ..Default::default()
    });
    request.set_timeout(timeout);
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_is_unavailable_within_the_deadline_and_nothing_acknowledged_is_lost() {
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.delivery_timeout = Duration::from_millis(1500);
    let mut service = Service::start(settings).await;
    let mut acknowledged = Vec::new();
    for price in [10, 11] {
        let placed = service
            .client
            .place_bid(request(price, Duration::from_secs(5)))
            .await
            .expect("accepted");
        acknowledged.push(placed.into_inner().bid.expect("bid").bid_id);
    }

    backend.mock_cluster().broker_down(1).expect("broker down");
    let started = Instant::now();
    let refused = service
        .client
        .place_bid(request(20, Duration::from_secs(5)))
        .await
        .expect_err("no broker, no bid");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    assert!(refused.message().contains("retry"), "{}", refused.message());

    backend.mock_cluster().broker_up(1).expect("broker up");
    let mut client = service.client.clone();
    let mut price = 30;
    let recovered = eventually(Duration::from_secs(30), || {
        price += 1;
        let mut client = client.clone();
        let current = price;
        async move {
            client
                .place_bid(request(current, Duration::from_secs(5)))
                .await
                .is_ok()
        }
    })
    .await;
    assert!(
        recovered,
        "the service did not recover when the broker came back"
    );
    let placed = client
        .place_bid(request(1000, Duration::from_secs(5)))
        .await
        .expect("accepted");
    acknowledged.push(placed.into_inner().bid.expect("bid").bid_id);

    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    let ids: Vec<String> = log.iter().map(|(b, _, _)| b.bid_id.to_string()).collect();
    for id in &acknowledged {
        assert_eq!(
            ids.iter().filter(|i| *i == id).count(),
            1,
            "acknowledged bid {id} must be in the log once"
        );
    }
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "no bid twice in the log"
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_produce_requests_are_retried_without_duplicates() {
    let backend = Backend::mock().await;
    let mut service = Service::start(backend.settings()).await;
    let errors = [
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
    ];
    backend
        .mock_cluster()
        .request_errors(RDKafkaApiKey::Produce, &errors);
    let mut accepted = HashSet::new();
    let mut unavailable = 0;
    for auction in 0..5 {
        let calls = (1..=10).map(|price| {
            let mut client = service.client.clone();
            async move {
                // A client as the service asks for: UNAVAILABLE is retried with the same
                // request_id, which returns the first outcome or places the bid once.
                let request_id = uuid::Uuid::new_v4().to_string();
                let mut refusals = 0;
                loop {
                    let outcome = client
                        .place_bid(PlaceBidRequest {
                            auction_id: format!("retry-{auction}"),
                            name: format!("bidder-{price}"),
                            price,
                            request_id: request_id.clone(),
                            ..Default::default()
                        })
                        .await;
                    match outcome {
                        Err(status) if status.code() == Code::Unavailable && refusals < 5 => {
                            refusals += 1;
                        }
                        other => return (other, refusals),
                    }
                }
            }
        });
        for (outcome, refusals) in futures::future::join_all(calls).await {
            unavailable += refusals;
            match outcome {
                Ok(response) => {
                    accepted.insert(response.into_inner().bid.expect("bid").bid_id);
                }
                Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
            }
        }
    }
    println!(
        "{} bids accepted, {unavailable} UNAVAILABLE answers retried",
        accepted.len()
    );
    assert!(!accepted.is_empty());
    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    let ids: Vec<String> = log.iter().map(|(b, _, _)| b.bid_id.to_string()).collect();
    assert_eq!(
        ids.len(),
        accepted.len(),
        "every accepted bid once, nothing else: {ids:?}"
    );
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), accepted);
    let total: u64 = {
        let mut total = 0;
        for auction in 0..5 {
            total += service.highest(&format!("retry-{auction}")).await.2;
        }
        total
    };
    assert_eq!(total, accepted.len() as u64);
    service.stop().await;
}

/// The cause of a lost acknowledgement, with rdkafka and the mock cluster only (no product code).
///
/// Produce request R1 carries record A and fails with REQUEST_TIMED_OUT ("may have been
/// written"); R2, sent while R1 was in flight, carries B and succeeds. A real broker refuses R2
/// (OUT_OF_ORDER_SEQUENCE_NUMBER: A's sequence numbers were never appended), but the mock cluster
/// checks sequence numbers only for transactional producers, so it appends B. librdkafka then
/// concludes from R2's success that A was written too ("implicitly acked") and reports A as
/// delivered, without an offset. A is not in the log. If this test ever fails, the mock cluster
/// (or librdkafka) has changed; the service's guard (an OK only for a bid read back from the log)
/// stays either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_cluster_acknowledges_an_idempotent_batch_it_never_appended() {
    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("phantom", 1, 1).expect("topic");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        // The retry of R1 must not overtake R2's acknowledgement.
        .set("retry.backoff.ms", "2000")
        .set("retry.backoff.max.ms", "2000")
        .create()
        .expect("producer");
    let send = |payload: &'static str| {
        producer.send(
            FutureRecord::<str, str>::to("phantom").payload(payload),
            Duration::from_secs(30),
        )
    };
    let first = send("warm-up").await.expect("warm-up delivered");
    assert_eq!(first.offset, 0);

    cluster
        .broker_round_trip_time(1, Duration::from_millis(500))
        .expect("slow broker");
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT],
    );
    let a = {
        let producer = producer.clone();
        tokio::spawn(async move {
            producer
                .send(
                    FutureRecord::<str, str>::to("phantom").payload("A"),
                    Duration::from_secs(30),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = send("B").await.expect("B delivered");
    let a = a.await.expect("task").expect("A reported as delivered");
    println!(
        "delivery reports: A at offset {}, B at offset {}",
        a.offset, b.offset
    );
    cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .expect("fast broker");

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "phantom-reader")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&["phantom"]).expect("subscribe");
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => log.push((
                message.offset(),
                String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    assert_eq!(
        log,
        vec![(0, "warm-up".to_owned()), (1, "B".to_owned())],
        "A was reported delivered (offset {}) but the log does not hold it",
        a.offset
    );
    assert!(
        a.offset < 0,
        "the implicit acknowledgement carries no offset: {}",
        a.offset
    );
}

/// The same fault through the service, whose owners write in transactions: whatever Kafka makes
/// of the timed-out produce request, an OK means the log holds the bid where the answer says,
/// and an UNAVAILABLE means it holds no such bid; a retry with the same request_id then agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_produce_request_never_gives_an_ok_the_log_contradicts() {
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.kafka.set("retry.backoff.ms", "2000");
    settings.kafka.set("retry.backoff.max.ms", "2000");
    let mut service = Service::start(settings).await;
    let bid = |price: i64, request_id: &str| {
        let mut request = tonic::Request::new(PlaceBidRequest {
            auction_id: "phantom".into(),
            name: format!("bidder-{price}"),
            price,
            request_id: request_id.to_owned(),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(20));
        request
    };
    service
        .client
        .place_bid(bid(5, ""))
        .await
        .expect("warm-up accepted");

    backend
        .mock_cluster()
        .broker_round_trip_time(1, Duration::from_millis(500))
        .expect("slow broker");
    backend.mock_cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT],
    );
    let request_a = uuid::Uuid::new_v4().to_string();
    let mut client = service.client.clone();
    let first = bid(10, &request_a);
    let a = tokio::spawn(async move { client.place_bid(first).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let b = service.client.place_bid(bid(20, "")).await;
    let a = a.await.expect("task");
    backend
        .mock_cluster()
        .broker_round_trip_time(1, Duration::ZERO)
        .expect("fast broker");
    println!("A: {a:?}\nB: {b:?}");

    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    let in_log =
        |answer: &Result<tonic::Response<auction_proto::v1::PlaceBidResponse>, tonic::Status>| {
            match answer {
                Ok(response) => {
                    let bid = response.get_ref().bid.clone().expect("bid");
                    assert!(
                        log.iter()
                            .any(|(b, partition, offset)| b.bid_id.to_string() == bid.bid_id
                                && (*partition, *offset) == (bid.partition, bid.offset)),
                        "an OK'd bid is not in the log where its answer says: {bid:?} / {log:?}"
                    );
                    true
                }
                Err(status) => {
                    assert!(
                        matches!(status.code(), Code::Unavailable | Code::FailedPrecondition),
                        "{status:?}"
                    );
                    false
                }
            }
        };
    let a_placed = in_log(&a);
    in_log(&b);
    assert_eq!(
        log.iter()
            .any(|(b, _, _)| b.bid_id.to_string() == request_a),
        a_placed,
        "A is in the log exactly when it was answered OK"
    );

    // The retry agrees with the log.
    let retried = service.client.place_bid(bid(10, &request_a)).await;
    if a_placed {
        assert!(retried.expect("A's first outcome").get_ref().replayed);
    } else {
        let highest = service.highest("phantom").await.0;
        match retried {
            Ok(response) => assert!(highest <= Some(10), "{response:?}"),
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_quickly_with_resource_exhausted_and_recovers() {
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.max_bids_in_flight = 8;
    let mut service = Service::start(settings).await;
    // A slow broker: every acknowledgement takes at least 300 ms, so calls pile up.
    backend
        .mock_cluster()
        .broker_round_trip_time(1, Duration::from_millis(300))
        .expect("slow broker");
    let calls = (0..48).map(|i| {
        let mut client = service.client.clone();
        async move {
            let started = Instant::now();
            let outcome = client
                .place_bid(PlaceBidRequest {
                    auction_id: format!("load-{i}"),
                    name: "Ada".into(),
                    price: 10,
                    request_id: uuid::Uuid::new_v4().to_string(),
                    ..Default::default()
                })
                .await;
            (outcome.map(|_| ()).map_err(|s| s.code()), started.elapsed())
        }
    });
    let outcomes = futures::future::join_all(calls).await;
    let accepted = outcomes.iter().filter(|(o, _)| o.is_ok()).count();
    let shed: Vec<Duration> = outcomes
        .iter()
        .filter(|(o, _)| *o == Err(Code::ResourceExhausted))
        .map(|(_, took)| *took)
        .collect();
    assert_eq!(
        accepted + shed.len(),
        outcomes.len(),
        "only accepted or shed: {outcomes:?}"
    );
    assert!(accepted >= 8, "the admitted calls were placed: {accepted}");
    assert!(
        shed.len() >= 8,
        "twice the capacity offered, but only {} calls were shed",
        shed.len()
    );
    let slowest_refusal = shed.iter().max().copied().unwrap_or_default();
    assert!(
        slowest_refusal < Duration::from_millis(250),
        "a shed call waited {slowest_refusal:?}, longer than the broker's round trip"
    );

    // When the load drops, every bid gets through again.
    backend
        .mock_cluster()
        .broker_round_trip_time(1, Duration::from_millis(0))
        .expect("fast broker");
    for i in 0..5 {
        service
            .place(&format!("after-{i}"), "Ada", 10)
            .await
            .expect("accepted after the overload");
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_and_place_nothing() {
    let backend = Backend::mock().await;
    let mut service = Service::start(backend.settings()).await;
    let huge = "x".repeat(100 * 1024);
    let refused = service
        .place("big", &huge, 10)
        .await
        .expect_err("a 100 KiB request is refused");
    assert!(
        matches!(
            refused.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::InvalidArgument
        ),
        "{refused:?}"
    );
    assert_eq!(service.highest("big").await.2, 0, "nothing was placed");
    service
        .place("big", "Ada", 10)
        .await
        .expect("the service still serves");
    service.stop().await;
}

/// A fatal error of an owner's transactional producer: the call gets UNAVAILABLE (never OK); the
/// owner replaces its producer (its new epoch fences the old one) and keeps deciding, without a
/// restart; a retry with the same request id gets one bid in the log, whatever became of the
/// first attempt (the mock cluster does not abort the old producer's records the way Apache Kafka
/// does, so the first attempt may or may not be in the log: the retry must agree with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_replaces_the_producer_and_the_owner_keeps_serving() {
    let backend = Backend::mock().await;
    let mut service = Service::start(backend.settings()).await;
    service
        .place("fatal", "Ada", 10)
        .await
        .expect("accepted before the fault");
    // The broker reports a sequence the producer did not send: the idempotent producer can no
    // longer vouch for order or once-ness, which librdkafka treats as fatal.
    backend.mock_cluster().request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER; 3],
    );
    let request_id = "00000000-0000-4000-8000-00000000fa7a";
    // Without the fault this bid would be accepted: UNAVAILABLE shows the fault happened.
    let outcome = service.place_with_id("fatal", "Bob", 20, request_id).await;
    assert!(
        outcome
            .as_ref()
            .is_err_and(|s| s.code() == Code::Unavailable),
        "a bid the producer could not persist was not refused: {outcome:?}"
    );
    // The client retries with the same request id until the owner, with its new producer,
    // answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    let retried = loop {
        match service.place_with_id("fatal", "Bob", 20, request_id).await {
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => break other,
        }
    };
    let retried = retried.expect("the owner did not recover: the retry was not accepted");
    let bid = retried.bid.expect("the accepted bid");
    assert_eq!(bid.bid_id, request_id, "the bid id is the request id");
    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    let copies: Vec<_> = log
        .iter()
        .filter(|(b, _, _)| b.bid_id.to_string() == request_id)
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "the retried bid is in the log once: {log:?}"
    );
    assert_eq!(
        (copies[0].1, copies[0].2),
        (bid.partition, bid.offset),
        "the answer says where the bid is"
    );
    service
        .place("fatal", "Cy", 30)
        .await
        .expect("the owner keeps deciding after replacing its producer");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_verification_only_the_service_needs_v2_registered_and_registers_nothing() {
    // Nothing registered: the service refuses to start, saying what to do.
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.register_schemas = false;
    let refused =
        auction_bid_service::spawn(settings.clone(), tokio_util::sync::CancellationToken::new())
            .await
            .expect_err("v2 is not registered");
    let message = refused.to_string();
    assert!(
        message.contains("not registered under subject auction-value"),
        "{message}"
    );
    assert!(
        backend.registry.store.subjects().is_empty(),
        "the service registered a schema"
    );

    // Registered by an operator: the service frames bids with that id and registers nothing.
    let (_, v2) =
        auction_schema_registry::preload_bid_schemas(&backend.registry.store, "auction-value")
            .expect("operator registers the schemas");
    auction_schema_registry::preload_state_schema(&backend.registry.store, "auction.state-value")
        .expect("operator registers the state schema");
    auction_schema_registry::preload_results_schema(
        &backend.registry.store,
        "auction.results-value",
    )
    .expect("operator registers the results schema");
    let mut service = Service::start(settings).await;
    service
        .place("verified", "Ada", 10)
        .await
        .expect("accepted");
    assert_eq!(
        backend
            .registry
            .store
            .versions("auction-value")
            .expect("subject"),
        [1, 2]
    );
    assert_eq!(
        backend.registry.store.subjects(),
        [
            "auction-value",
            "auction.results-value",
            "auction.state-value"
        ],
        "the service registered nothing"
    );
    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    assert_eq!(log.len(), 1);
    assert_eq!(v2, 2);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_is_resource_exhausted_and_memory_stays_bounded() {
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    // A tiny producer queue and a slow broker: the queue fills before the in-flight limit.
    settings.kafka.set("queue.buffering.max.messages", "4");
    settings.max_bids_in_flight = 1_000;
    let mut service = Service::start(settings).await;
    backend
        .mock_cluster()
        .broker_round_trip_time(1, Duration::from_millis(300))
        .expect("slow broker");
    let mut rss_after_round = Vec::new();
    for round in 0..4 {
        let calls = (0..64).map(|i| {
            let mut client = service.client.clone();
            async move {
                client
                    .place_bid(PlaceBidRequest {
                        auction_id: format!("queue-{round}-{i}"),
                        name: "Ada".into(),
                        price: 10,
                        request_id: String::new(),
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
                    .map_err(|s| s.code())
            }
        });
        let outcomes = futures::future::join_all(calls).await;
        let full = outcomes
            .iter()
            .filter(|o| **o == Err(Code::ResourceExhausted))
            .count();
        assert!(
            full > 0,
            "a full producer queue never answered RESOURCE_EXHAUSTED: {outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .all(|o| o.is_ok() || *o == Err(Code::ResourceExhausted)),
            "{outcomes:?}"
        );
        rss_after_round.push(resident_kib());
    }
    // Repeated overload does not keep growing memory.
    let growth = rss_after_round[3].saturating_sub(rss_after_round[0]);
    assert!(
        growth < 32 * 1024,
        "resident memory grew by {growth} KiB over three overloads: {rss_after_round:?}"
    );
    backend
        .mock_cluster()
        .broker_round_trip_time(1, Duration::from_millis(0))
        .expect("fast broker");
    service
        .place("queue-after", "Ada", 10)
        .await
        .expect("accepted once the queue drains");
    service.stop().await;
}
