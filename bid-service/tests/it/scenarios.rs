//! Behaviour a bidder relies on, written once and run against the mock cluster and Apache Kafka.

use std::collections::BTreeMap;
use std::time::Duration;

use auction_proto::v1::{ListAuctionsRequest, ListRecentBidsRequest, WatchAuctionRequest};
use futures::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use auction_proto::v1::bid_service_client::BidServiceClient;
use tonic::transport::Channel;

use crate::helpers::{Backend, Service, demo_produce, eventually, highest_of, read_bids};

pub(crate) async fn accepts_and_answers(backend: Backend) {
    let mut service = Service::start(backend.settings()).await;
    let placed = service
        .place("lot-1", "  Ada  ", 10)
        .await
        .expect("accepted");
    let bid = placed.bid.expect("bid");
    assert_eq!(
        (bid.name.as_str(), bid.price, bid.auction_id.as_str()),
        ("Ada", 10, "lot-1")
    );
    assert!(!placed.replayed);
    let auction = placed.auction.expect("state after the bid");
    assert_eq!((auction.bid_count, auction.minimum_next_bid), (1, 11));
    assert_eq!(
        auction.highest_bid.map(|b| b.bid_id),
        Some(bid.bid_id.clone())
    );

    assert_eq!(
        service.highest("lot-1").await,
        (Some(10), Some("Ada".into()), 1)
    );
    service.place("lot-1", "Grace", 12).await.expect("accepted");
    service.place("lot-2", "Linus", 3).await.expect("accepted");
    let recent = service
        .client
        .list_recent_bids(ListRecentBidsRequest {
            auction_id: "lot-1".into(),
            limit: 0,
        })
        .await
        .expect("recent")
        .into_inner()
        .bids;
    let prices: Vec<i64> = recent.iter().map(|b| b.price).collect();
    assert_eq!(prices, [12, 10], "newest first");
    let auctions = service
        .client
        .list_auctions(ListAuctionsRequest {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("auctions")
        .into_inner()
        .auctions;
    let listed: Vec<(String, Option<i64>)> = auctions
        .iter()
        .map(|a| {
            (
                a.auction_id.clone(),
                a.highest_bid.as_ref().map(|b| b.price),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("lot-2".to_owned(), Some(3)),
            ("lot-1".to_owned(), Some(12))
        ]
    );
    assert_eq!(service.highest("never-bid").await, (None, None, 0));

    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    assert_eq!(log.len(), 3);
    // Keyed by auction: the bids of one auction share a partition, in order.
    let lot1: Vec<(i32, i32)> = log
        .iter()
        .filter(|(b, _, _)| b.auction_id.as_str() == "lot-1")
        .map(|(b, p, _)| (*p, b.price.get()))
        .collect();
    assert_eq!(lot1.len(), 2);
    assert_eq!(lot1[0].0, lot1[1].0);
    service.stop().await;
}

pub(crate) async fn rejects_each_rule(backend: Backend) {
    let mut settings = backend.settings();
    settings.min_increment = 5;
    settings.starting_price = 5;
    let mut service = Service::start(settings).await;

    let fields_of = |status: &tonic::Status| -> Vec<String> {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        status
            .get_details_bad_request()
            .expect("BadRequest details")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect()
    };
    for (auction, name, price, field) in [
        ("lot", "Ada", 0, "price"),
        ("lot", "Ada", -3, "price"),
        ("lot", "Ada", 3_000_000_000, "price"),
        ("lot", "", 10, "name"),
        ("lot", "   ", 10, "name"),
        ("lot", "line\nbreak", 10, "name"),
        ("lot", &"x".repeat(101), 10, "name"),
        ("bad id", "Ada", 10, "auction_id"),
        (&"a".repeat(65), "Ada", 10, "auction_id"),
    ] {
        let status = service
            .place(auction, name, price)
            .await
            .expect_err("refused");
        assert_eq!(fields_of(&status), [field], "{auction:?} {name:?} {price}");
    }
    let every = service.place("bad id", "", 0).await.expect_err("refused");
    assert_eq!(fields_of(&every), ["auction_id", "name", "price"]);
    let bad_request_id = service
        .place_with_id("lot", "Ada", 10, "not-a-uuid")
        .await
        .expect_err("refused");
    assert_eq!(fields_of(&bad_request_id), ["request_id"]);

    let below_start = service
        .place("lot", "Ada", 4)
        .await
        .expect_err("below the starting price");
    assert_eq!(below_start.code(), Code::FailedPrecondition);
    assert!(
        below_start.message().contains("starts at 5"),
        "{}",
        below_start.message()
    );
    service.place("lot", "Ada", 10).await.expect("accepted");
    let too_low = service
        .place("lot", "Bob", 14)
        .await
        .expect_err("below the increment");
    assert_eq!(too_low.code(), Code::FailedPrecondition);
    assert!(
        too_low.message().contains("current highest bid is 10"),
        "{}",
        too_low.message()
    );
    assert!(
        too_low.message().contains("minimum next bid is 15"),
        "{}",
        too_low.message()
    );
    let info = too_low.get_details_error_info().expect("ErrorInfo");
    assert_eq!(
        info.metadata.get("minimum_next_bid").map(String::as_str),
        Some("15")
    );
    let equal = service
        .place("lot", "Bob", 10)
        .await
        .expect_err("equal is too low");
    assert_eq!(equal.code(), Code::FailedPrecondition);
    service.place("lot", "Bob", 15).await.expect("accepted");

    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    let prices: Vec<i32> = log.iter().map(|(b, _, _)| b.price.get()).collect();
    assert_eq!(prices, [10, 15], "only accepted bids are in the log");
    service.stop().await;
}

pub(crate) async fn retries_are_idempotent(backend: Backend) {
    let settings = backend.settings();
    let mut service = Service::start(settings.clone()).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let first = service
        .place_with_id("lot", "Ada", 10, &request_id)
        .await
        .expect("accepted");
    assert!(!first.replayed);
    let first_bid = first.bid.expect("bid");
    assert_eq!(first_bid.bid_id, request_id, "the request id is the bid id");
    let retry = service
        .place_with_id("lot", "Ada", 10, &request_id)
        .await
        .expect("same outcome");
    assert!(retry.replayed);
    assert_eq!(retry.bid.expect("bid"), first_bid);

    // A refused bid is refused again on retry, even with a price that would now pass.
    let low_id = uuid::Uuid::new_v4().to_string();
    let low = service
        .place_with_id("lot", "Bob", 5, &low_id)
        .await
        .expect_err("too low");
    assert_eq!(low.code(), Code::FailedPrecondition);
    let again = service
        .place_with_id("lot", "Bob", 50, &low_id)
        .await
        .expect_err("first outcome");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // Concurrent duplicates place one bid.
    let concurrent_id = uuid::Uuid::new_v4().to_string();
    let mut clients: Vec<_> = (0..5).map(|_| service.client.clone()).collect();
    let calls = clients.iter_mut().map(|client| {
        let id = concurrent_id.clone();
        async move {
            client
                .place_bid(auction_proto::v1::PlaceBidRequest {
                    auction_id: "lot".into(),
                    name: "Cy".into(),
                    price: 20,
                    request_id: id,
                    ..Default::default()
                })
                .await
        }
    });
    let outcomes = futures::future::join_all(calls).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.as_ref().is_ok_and(|r| !r.get_ref().replayed))
            .count(),
        1
    );
    service.stop().await;

    // After a restart, the retry finds the bid in the log.
    let mut restarted = Service::start(settings).await;
    let after_restart = restarted
        .place_with_id("lot", "Ada", 10, &request_id)
        .await
        .expect("same outcome");
    assert!(after_restart.replayed);
    assert_eq!(after_restart.bid.expect("bid").bid_id, request_id);
    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    let ids: Vec<String> = log.iter().map(|(b, _, _)| b.bid_id.to_string()).collect();
    assert_eq!(ids.len(), 2, "one record per request id: {ids:?}");
    assert!(ids.contains(&request_id) && ids.contains(&concurrent_id));
    restarted.stop().await;
}

pub(crate) async fn watchers_see_every_change(backend: Backend) {
    let mut service = Service::start(backend.settings()).await;
    service.place("lot-w", "Ada", 5).await.expect("accepted");
    let mut stream = service
        .client
        .watch_auction(WatchAuctionRequest {
            auction_id: "lot-w".into(),
        })
        .await
        .expect("watch")
        .into_inner();
    assert_eq!(
        next_price(&mut stream).await,
        Some(5),
        "the current state comes first"
    );
    service.place("lot-w", "Bob", 7).await.expect("accepted");
    assert_eq!(next_price(&mut stream).await, Some(7));
    service.place("lot-w", "Cy", 9).await.expect("accepted");
    assert_eq!(next_price(&mut stream).await, Some(9));
    service.stop().await;
}

async fn next_price(
    stream: &mut tonic::Streaming<auction_proto::v1::WatchAuctionResponse>,
) -> Option<i64> {
    let update = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an update within 10 s")
        .expect("the stream is open")
        .expect("an update");
    update.auction.and_then(|a| a.highest_bid).map(|b| b.price)
}

async fn bids_applied(client: BidServiceClient<Channel>, auctions: &[&str]) -> u64 {
    let mut total = 0;
    for auction in auctions {
        total += highest_of(client.clone(), auction).await.2;
    }
    total
}

async fn state_of(
    service: &mut Service,
    auctions: &[&str],
) -> BTreeMap<String, (Option<i64>, Option<String>, u64, Vec<String>)> {
    let mut state = BTreeMap::new();
    for auction in auctions {
        let (price, name, count) = service.highest(auction).await;
        let recent = service
            .client
            .list_recent_bids(ListRecentBidsRequest {
                auction_id: (*auction).to_owned(),
                limit: 100,
            })
            .await
            .expect("recent")
            .into_inner()
            .bids
            .into_iter()
            .map(|b| b.bid_id)
            .collect();
        state.insert((*auction).to_owned(), (price, name, count, recent));
    }
    state
}

pub(crate) async fn replicas_converge_and_restarts_rebuild(backend: Backend) {
    let settings = backend.settings();
    let mut a = Service::start(settings.clone()).await;
    let mut b = Service::start(settings.clone()).await;
    let auctions = ["r-1", "r-2", "r-3"];
    let mut accepted = 0_u64;
    for round in 0..10_i64 {
        for (i, auction) in auctions.iter().enumerate() {
            // Both replicas race on the same auction with the same price: the log decides.
            let price = 10 + round * 10 + i as i64;
            let (from_a, from_b) = tokio::join!(
                a.place(auction, "from-a", price),
                b.place(auction, "from-b", price)
            );
            accepted += u64::from(from_a.is_ok()) + u64::from(from_b.is_ok());
            for outcome in [from_a, from_b] {
                if let Err(status) = outcome {
                    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                }
            }
        }
    }
    assert!(accepted >= 30, "at least one bid per auction and round");
    for replica in [&a, &b] {
        let names = &auctions;
        let applied = eventually(Duration::from_secs(20), || {
            let client = replica.client.clone();
            async move { bids_applied(client, names).await == accepted }
        })
        .await;
        assert!(applied, "a replica did not apply every accepted bid");
    }
    let state_a = state_of(&mut a, &auctions).await;
    assert_eq!(
        state_a,
        state_of(&mut b, &auctions).await,
        "two replicas computed different states"
    );
    a.stop().await;

    let mut c = Service::start(settings).await;
    assert_eq!(
        state_a,
        state_of(&mut c, &auctions).await,
        "a restarted replica rebuilt a different state"
    );
    let log = read_bids(&backend.bootstrap, &backend.registry.url, "auction").await;
    assert_eq!(
        log.len() as u64,
        accepted,
        "every accepted bid is in the log once"
    );
    b.stop().await;
    c.stop().await;
}

pub(crate) async fn counts_bids_of_the_original_demo(backend: Backend) {
    let mut service = Service::start(backend.settings()).await;
    demo_produce(
        &backend.bootstrap,
        &backend.registry.url,
        "auction",
        &["Ada:5", "Bob, \"the\" builder:7"],
    )
    .await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            highest_of(service.client.clone(), "default").await.2 == 2
        })
        .await,
        "the demo's bids were not counted"
    );
    assert_eq!(
        service.highest("default").await,
        (Some(7), Some("Bob, \"the\" builder".into()), 2)
    );
    let too_low = service
        .place("", "Cy", 7)
        .await
        .expect_err("7 is the highest already");
    assert_eq!(too_low.code(), Code::FailedPrecondition);
    service
        .place("", "Cy", 8)
        .await
        .expect("accepted in the default auction");
    service.stop().await;
}
