//! Real log semantics on Apache Kafka: a partition emptied by retention or `DeleteRecords` starts
//! at a log start offset above 0, and a new replica must still reach SERVING; partitions added to
//! the topic are followed by a running service.

use std::time::Duration;

use auction_schemas::{Bid, BidEncoder, BidId, BidInput, RegistrySettings};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Backend, Service, eventually, highest_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_reaches_serving_after_delete_records_emptied_the_partitions() {
    let backend = Backend::kafka().await;
    let mut first = Service::start(backend.settings()).await;
    for (i, auction) in ["north", "south", "east", "west", "centre", "harbour"]
        .iter()
        .enumerate()
    {
        first
            .place(auction, "Ada", 10 + i as i64)
            .await
            .expect("accepted");
    }
    first.stop().await;

    // Delete every record of every partition: the log start moves up to the end.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &backend.bootstrap)
        .create()
        .expect("consumer");
    let mut up_to = TopicPartitionList::new();
    let mut emptied = 0;
    for partition in 0..3 {
        let (_, high) = consumer
            .fetch_watermarks("auction", partition, Duration::from_secs(10))
            .expect("watermarks");
        if high > 0 {
            emptied += 1;
        }
        up_to
            .add_partition_offset("auction", partition, Offset::Offset(high))
            .expect("offset");
    }
    assert!(emptied > 0, "no partition held a bid");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &backend.bootstrap)
        .create()
        .expect("admin");
    admin
        .delete_records(&up_to, &AdminOptions::new())
        .await
        .expect("DeleteRecords");
    // The fault happened: some partition now starts above 0 and holds nothing.
    let mut moved = 0;
    for partition in 0..3 {
        let (low, high) = consumer
            .fetch_watermarks("auction", partition, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(low, high, "partition {partition} still holds records");
        if low > 0 {
            moved += 1;
        }
    }
    assert_eq!(moved, emptied, "DeleteRecords did not move the log start");

    let shutdown = CancellationToken::new();
    let mut second = auction_bid_service::spawn(backend.settings(), shutdown.clone())
        .await
        .expect("a new replica starts");
    assert!(
        second.wait_caught_up(Duration::from_secs(30)).await,
        "a new replica stayed NOT_SERVING on partitions whose log starts above 0"
    );
    shutdown.cancel();
    let _ = second.stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_on_partitions_added_while_running_are_served_without_a_restart() {
    let backend = Backend::kafka().await;
    let mut service = Service::start(backend.settings()).await;
    service.place("before", "Ada", 10).await.expect("accepted");

    // Three partitions become six.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &backend.bootstrap)
        .create()
        .expect("admin");
    let results = admin
        .create_partitions(
            [&NewPartitions::new("auction", 6)],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("CreatePartitions");
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    // Another producer (as the demo's would) that knows the six partitions: find an auction whose
    // key lands on a new partition, by writing its first bid there.
    let registry = RegistrySettings::new(&backend.registry.url);
    let encoder = BidEncoder::new(&registry, "auction").expect("encoder");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &backend.bootstrap)
        .create()
        .expect("producer");
    let mut landed = None;
    for k in 0..200 {
        let auction = format!("added-{k}");
        let bid = Bid::new(
            &BidInput {
                auction_id: Some(&auction),
                name: "Grace",
                price: 50,
            },
            BidId::new_random(),
        )
        .expect("bid");
        let payload = encoder.encode(&bid).await.expect("encoded");
        let delivered = producer
            .send(
                FutureRecord::to("auction").key(&auction).payload(&payload),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("delivered");
        if delivered.partition >= 3 {
            landed = Some((auction, delivered.partition));
            break;
        }
    }
    let (auction, partition) = landed.expect("an auction on a new partition");

    // The running service applies that partition's bids and places bids there.
    let client = service.client.clone();
    let seen = eventually(Duration::from_secs(30), || {
        let (client, auction) = (client.clone(), auction.clone());
        async move { highest_of(client, &auction).await.0 == Some(50) }
    })
    .await;
    assert!(
        seen,
        "the bid on new partition {partition} was never applied"
    );
    let refused = service
        .place(&auction, "Ada", 50)
        .await
        .expect_err("50 does not beat 50");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    // Its producer learns the new partitions within its metadata refresh (10 s); from then on
    // the auction's bids go to the new partition too.
    let mut on_new_partition = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while on_new_partition.is_none() && std::time::Instant::now() < deadline {
        let next = highest_of(service.client.clone(), &auction)
            .await
            .0
            .unwrap_or(0)
            + 1;
        if let Ok(placed) = service.place(&auction, "Ada", next).await {
            let bid = placed.bid.expect("bid");
            if bid.partition >= 3 {
                on_new_partition = Some(bid.partition);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (highest, _, count) = highest_of(service.client.clone(), &auction).await;
    println!(
        "auction {auction}: first bid on new partition {partition}; the service placed a bid on partition {on_new_partition:?}; highest {highest:?} after {count} bids"
    );
    assert!(
        on_new_partition.is_some(),
        "the service never wrote a bid of {auction} to a new partition"
    );
    service.stop().await;
}
