//! Real log semantics on Apache Kafka: with the bid topic emptied by `DeleteRecords` (as retention
//! would), a new replica restores the same state from `auction.state` and still knows the request
//! ids; partitions added to the topic are followed by a running service.

use std::time::Duration;

use auction_schemas::{Bid, BidEncoder, BidId, BidInput, RegistrySettings};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{HighestBidRequest, ListRecentBidsRequest, PlaceBidRequest};
use tonic::transport::Channel;

use crate::helpers::{Backend, Service, eventually, highest_of, read_bids};

/// Every auction as a replica answers it: (highest bid, count, recent bids), and the answers to
/// retries of `requests`.
async fn snapshot(
    client: &BidServiceClient<Channel>,
    auctions: &[&str],
) -> Vec<(
    Option<auction_proto::v1::Bid>,
    u64,
    Vec<auction_proto::v1::Bid>,
)> {
    let mut states = Vec::new();
    for auction in auctions {
        let state = client
            .clone()
            .highest_bid(HighestBidRequest {
                auction_id: (*auction).to_owned(),
            })
            .await
            .expect("HighestBid")
            .into_inner()
            .auction
            .expect("state");
        let recent = client
            .clone()
            .list_recent_bids(ListRecentBidsRequest {
                auction_id: (*auction).to_owned(),
                limit: 100,
            })
            .await
            .expect("ListRecentBids")
            .into_inner()
            .bids;
        states.push((state.highest_bid, state.bid_count, recent));
    }
    states
}

/// With every bid deleted from the bid topic (`DeleteRecords` up to each partition's end), a new
/// replica restores the exact state the first one had from `auction.state`, and retries with the
/// request ids of the deleted bids still return their first outcomes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_restores_the_same_state_after_delete_records_emptied_the_bid_topic() {
    let backend = Backend::kafka().await;
    let mut first = Service::start(backend.settings()).await;
    let auctions = ["north", "south", "east", "west", "centre", "harbour"];
    let mut placed = Vec::new();
    for round in 0..4 {
        for (i, auction) in auctions.iter().enumerate() {
            let request_id = uuid::Uuid::new_v4().to_string();
            let answer = first
                .place_with_id(
                    auction,
                    &format!("bidder-{round}"),
                    10 + (round * 10 + i) as i64,
                    &request_id,
                )
                .await
                .expect("accepted");
            placed.push((auction, request_id, answer.bid.expect("bid")));
        }
    }
    // A refused request is remembered too.
    let refused_id = uuid::Uuid::new_v4().to_string();
    first
        .place_with_id("north", "late", 1, &refused_id)
        .await
        .expect_err("too low");
    let before = snapshot(&first.client, &auctions).await;
    first.stop().await;

    // Delete every record of every partition: the log start moves up to the end.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &backend.bootstrap)
        .create()
        .expect("consumer");
    let mut up_to = TopicPartitionList::new();
    for partition in 0..3 {
        let (_, high) = consumer
            .fetch_watermarks("auction", partition, Duration::from_secs(10))
            .expect("watermarks");
        up_to
            .add_partition_offset("auction", partition, Offset::Offset(high))
            .expect("offset");
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &backend.bootstrap)
        .create()
        .expect("admin");
    admin
        .delete_records(&up_to, &AdminOptions::new())
        .await
        .expect("DeleteRecords");
    // The fault happened: every partition now starts at its end, above 0, and holds no bid.
    let mut emptied = 0;
    for partition in 0..3 {
        let (low, high) = consumer
            .fetch_watermarks("auction", partition, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(low, high, "partition {partition} still holds records");
        if low > 0 {
            emptied += 1;
        }
    }
    assert_eq!(emptied, 3, "DeleteRecords did not move every log start");
    assert!(
        read_bids(&backend.bootstrap, &backend.registry.url, "auction")
            .await
            .is_empty(),
        "the bid topic still holds bids"
    );

    let second = Service::start(backend.settings()).await;
    let after = snapshot(&second.client, &auctions).await;
    assert_eq!(
        after, before,
        "the new replica's state differs from the first one's"
    );
    let mut retry = second.client.clone();
    for (auction, request_id, bid) in &placed {
        let answer = retry
            .place_bid(PlaceBidRequest {
                auction_id: (*auction).to_string(),
                name: "someone else".to_owned(),
                price: 1_000_000,
                request_id: request_id.clone(),
                ..Default::default()
            })
            .await
            .expect("the first outcome")
            .into_inner();
        assert!(answer.replayed, "{answer:?}");
        assert_eq!(
            answer.bid.as_ref(),
            Some(bid),
            "the retry's answer is the first bid"
        );
    }
    let refused = retry
        .place_bid(PlaceBidRequest {
            auction_id: "north".to_owned(),
            name: "late".to_owned(),
            price: 1_000_000,
            request_id: refused_id,
            ..Default::default()
        })
        .await
        .expect_err("the first outcome: refused");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        read_bids(&backend.bootstrap, &backend.registry.url, "auction")
            .await
            .is_empty(),
        "a retry wrote a bid"
    );
    println!(
        "{} bids on {} auctions deleted from the bid topic; the new replica restored the same state and answered {} retries with their first outcomes",
        placed.len(),
        auctions.len(),
        placed.len() + 1
    );
    second.stop().await;
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
