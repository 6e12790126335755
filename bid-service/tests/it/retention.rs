//! Real log semantics on Apache Kafka: a partition emptied by retention or `DeleteRecords` starts
//! at a log start offset above 0, and a new replica must still reach SERVING.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Backend, Service};

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
