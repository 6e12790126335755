//! A registry that does not know a record's schema id (an empty or wrong one) must not make the
//! bid service skip the bid: the owner of its partition waits until the registry knows the id,
//! and decides nothing on a book without it.

use std::time::Duration;

use auction_schemas::event::SCHEMA_V2;
use auction_schemas::wire;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tonic::Code;

use crate::helpers::{Backend, Service};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_whose_schema_id_the_registry_does_not_know_is_waited_for_not_skipped() {
    let backend = Backend::kafka().await;
    let mut service = Service::start(backend.settings()).await;
    let first = service
        .place("reg-1", "carol", 10)
        .await
        .expect("the first bid");

    // The id the registry hands out next: a record framed with it names a schema nobody knows.
    let probe = backend
        .registry
        .store
        .register(
            "probe-value",
            "JSON",
            r#"{"type":"object","title":"probe"}"#,
        )
        .expect("a probe schema");
    let unknown = probe + 1;
    let value = serde_json::json!({
        "name": "alice",
        "price": 100,
        "bid_ts": "2026-11-30T10:00:00Z",
        "auction_id": "reg-1",
        "bid_id": uuid::Uuid::new_v4().to_string(),
    });
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &backend.bootstrap)
        .create()
        .expect("a producer");
    let payload = wire::frame(unknown, value.to_string().as_bytes());
    producer
        .send(
            FutureRecord::to("auction")
                .key("reg-1")
                .partition(first.bid.as_ref().expect("the bid").partition)
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .expect("the record with an unknown schema id is in the log");

    // The owner cannot read alice's bid: a lower bid must not be accepted meanwhile.
    let mut request = tonic::Request::new(auction_proto::v1::PlaceBidRequest {
        auction_id: "reg-1".to_owned(),
        name: "bob".to_owned(),
        price: 50,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(5));
    let waiting = service.client.place_bid(request).await;
    println!("a bid placed while the partition waits for schema id {unknown}: {waiting:?}");
    assert!(
        waiting.is_err(),
        "bob's 50 was accepted on a book without alice's 100: {waiting:?}"
    );

    // The registry learns the id (a schema for the same bids, registered elsewhere).
    let variant = SCHEMA_V2.replacen(
        "\"title\": \"Bid\"",
        "\"title\": \"Bid\", \"description\": \"the same bid, registered again\"",
        1,
    );
    assert_ne!(variant, SCHEMA_V2, "the variant differs from v2");
    let registered = backend
        .registry
        .store
        .register("elsewhere-value", "JSON", &variant)
        .expect("the variant");
    assert_eq!(registered, unknown, "the registry now knows the id");

    // Alice's bid is applied at its position; bids are decided on the whole book again.
    let mut decided = None;
    for _ in 0..60 {
        match service.place("reg-1", "bob", 50).await {
            Err(status) if status.code() == Code::FailedPrecondition => {
                decided = Some(status);
                break;
            }
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => panic!("bob's 50 after the registry learned the id: {other:?}"),
        }
    }
    let decided = decided.expect("a decision within 30 s");
    println!("once the id is known: {}", decided.message());
    let (price, bidder, count) = service.highest("reg-1").await;
    assert_eq!(
        (price, bidder.as_deref(), count),
        (Some(100), Some("alice"), 2)
    );
    service.stop().await;
}
