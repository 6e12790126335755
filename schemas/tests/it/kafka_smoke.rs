//! One encoded bid through a real Apache Kafka broker: idempotent produce, consume, decode.

use std::time::Duration;

use auction_schema_registry as registry;
use auction_schemas::{
    Bid, BidDecoder, BidEncoder, BidId, BidInput, HeaderIds, LogPosition, RegistrySettings,
};
use auction_testkit::{Kafka, TestRegistry};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[tokio::test]
async fn an_encoded_bid_goes_through_apache_kafka_and_decodes() {
    let broker = Kafka::start();
    broker.create_topic("auction", 3).await;
    let registry = TestRegistry::start().await;
    registry::preload_bid_schemas(&registry.store, "auction-value").unwrap();
    let settings = RegistrySettings::new(&registry.url);

    let input = BidInput {
        auction_id: Some("smoke"),
        name: "Ada",
        price: 10,
    };
    let bid = Bid::new(&input, BidId::new_random()).unwrap();
    let value = BidEncoder::new(&settings, "auction")
        .unwrap()
        .encode(&bid)
        .await
        .unwrap();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .unwrap();
    let key = bid.auction_id.as_str().to_owned();
    let delivery = producer
        .send(
            FutureRecord::to("auction").key(&key).payload(&value),
            Duration::from_secs(20),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("the broker acknowledges the record");
    let (partition, offset) = (delivery.partition, delivery.offset);

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "smoke")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("auction", partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
        .await
        .expect("a record within 20 s")
        .expect("a record");
    assert_eq!(message.key(), Some(key.as_bytes()));
    assert_eq!(message.payload(), Some(value.as_slice()));
    assert_eq!((message.partition(), message.offset()), (partition, offset));

    let position = LogPosition {
        topic: "auction",
        partition,
        offset,
    };
    let decoded = BidDecoder::new(&settings)
        .unwrap()
        .decode(message.payload(), position, HeaderIds::NONE)
        .await
        .unwrap();
    assert_eq!(decoded.bid, bid);
}
