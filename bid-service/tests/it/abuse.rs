//! What anyone can make the bid service keep: watching auctions that do not exist must not
//! create state, and a watched auction's subscription goes when its last watcher leaves; the
//! work of `PlaceBid` calls is bounded however short their deadlines; auctions opened by a first
//! bid have a cap and a rate; open `WatchAuction` streams are bounded per client and in total.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{
    GetAuctionRequest, ListAuctionsRequest, PlaceBidRequest, WatchAuctionRequest,
    WatchAuctionResponse,
};
use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

use crate::helpers::{Backend, Service, eventually, resident_kib};

/// The value of an unlabelled gauge or counter in this process's metrics (0 when not recorded).
fn gauge(name: &str) -> f64 {
    auction_process::metric_sum(name, None)
}

/// `count` `WatchAuction` calls on random auction ids, 32 at a time: each reads the first state
/// and leaves.
async fn watch_random_auctions(client: &BidServiceClient<Channel>, count: usize) {
    futures::stream::iter(0..count)
        .for_each_concurrent(32, |_| {
            let mut client = client.clone();
            async move {
                let mut stream = client
                    .watch_auction(WatchAuctionRequest {
                        auction_id: format!("nobody-{}", uuid::Uuid::new_v4().simple()),
                    })
                    .await
                    .expect("WatchAuction")
                    .into_inner();
                let first = stream
                    .message()
                    .await
                    .expect("the first state")
                    .expect("a state");
                assert_eq!(first.auction.expect("auction").bid_count, 0);
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_watches_of_unknown_auctions_keep_nothing() {
    // The service installs the process's recorder as it starts; so does this, before anything.
    let _ = auction_process::metrics_handle();
    let backend = Backend::mock().await;
    let mut service = Service::start(backend.settings()).await;
    service.place("a-real-lot", "Ada", 10).await.expect("a bid");
    let entries = || gauge("bid_service_auction_entries");
    let settled = || async { gauge("bid_service_watchers") == 0.0 && entries() == 1.0 };
    // A warm-up, so that buffers and connection state reach their working size.
    watch_random_auctions(&service.client, 5_000).await;
    assert!(
        eventually(Duration::from_secs(30), settled).await,
        "after the warm-up: {} entries, {} watchers",
        entries(),
        gauge("bid_service_watchers")
    );
    let rss_before = resident_kib();

    watch_random_auctions(&service.client, 100_000).await;
    let left = eventually(Duration::from_secs(30), settled).await;
    let rss_after = resident_kib();
    println!(
        "after 100,000 WatchAuction calls on random ids: {} auction entries (1 before), {} watchers; \
         resident memory {rss_before} KiB before, {rss_after} KiB after",
        entries(),
        gauge("bid_service_watchers"),
    );
    assert!(left, "the watched ids stayed in memory");
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    // The real auction is still there, and watching it still works.
    assert_eq!(service.highest("a-real-lot").await.2, 1);
    service.stop().await;
}

/// One `PlaceBid` on a new auction with a 1 ms deadline (`grpc-timeout`). How it ended, for
/// the counts: its status code, or `transport` when the client's HTTP/2 stream was reset under
/// it (the server ends a call whose 1 ms deadline has passed while the client may still be
/// sending it; the client then sees a broken pipe, code UNKNOWN).
async fn bid_with_a_one_ms_deadline(
    client: &mut BidServiceClient<Channel>,
    auction: String,
) -> String {
    let mut request = tonic::Request::new(PlaceBidRequest {
        auction_id: auction,
        name: "Ada".to_owned(),
        price: 10,
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(1));
    match client.place_bid(request).await {
        Ok(_) => "Ok".to_owned(),
        Err(status)
            if status.code() == Code::Unknown
                && std::error::Error::source(&status)
                    .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some()) =>
        {
            "transport".to_owned()
        }
        Err(status) => format!("{:?}", status.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bids_with_a_one_ms_deadline_keep_the_live_work_within_the_in_flight_limit() {
    const LIMIT: usize = 50;
    const CALLS: usize = 10_000;
    const CLIENTS: usize = 4;
    let _ = auction_process::metrics_handle();
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.max_bids_in_flight = LIMIT;
    let mut service = Service::start(settings).await;
    service
        .place("before", "Ada", 10)
        .await
        .expect("a bid before the fault");

    // A slow broker, from librdkafka's mock cluster: every request waits 500 ms for its answer,
    // so a bid (several transactional requests, then the read-back) takes seconds while its
    // client gave it 1 ms. The mock cluster's round-trip time is the one fault that makes the
    // broker slow rather than stopped (a SIGSTOPped Kafka answers nothing, and the calls would
    // wait on a dead connection, not on a slow one), and it applies to this one broker only.
    let cluster = backend.mock_cluster();
    cluster
        .broker_round_trip_time(1, Duration::from_millis(500))
        .expect("slow broker");
    // The fault is real: a bid given 1 s is not confirmed within it.
    let slow = service
        .client
        .place_bid({
            let mut request = tonic::Request::new(PlaceBidRequest {
                auction_id: "slow-probe".to_owned(),
                name: "Ada".to_owned(),
                price: 10,
                request_id: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            });
            request.set_timeout(Duration::from_secs(1));
            request
        })
        .await;
    assert!(
        matches!(
            slow.as_ref().map_err(tonic::Status::code),
            Err(Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded)
        ),
        "a bid on the slow broker was confirmed within 1 s: {slow:?}"
    );

    let address = format!("http://{}", service.running.grpc_addr);
    let started = Instant::now();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let client = BidServiceClient::connect(address.clone())
            .await
            .expect("connect");
        clients.push(tokio::spawn(async move {
            let mut codes: BTreeMap<String, usize> = BTreeMap::new();
            let calls = futures::stream::iter((c..CALLS).step_by(CLIENTS))
                .map(|i| {
                    let mut client = client.clone();
                    async move { bid_with_a_one_ms_deadline(&mut client, format!("slow-{i}")).await }
                })
                .buffer_unordered(16)
                .collect::<Vec<String>>()
                .await;
            for code in calls {
                *codes.entry(code).or_default() += 1;
            }
            codes
        }));
    }
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    for client in clients {
        for (code, count) in client.await.expect("client task") {
            *codes.entry(code).or_default() += count;
        }
    }
    let took = started.elapsed();
    // Every deadline has passed, yet the admitted work still runs: it holds its slots.
    let live_after = gauge("bid_service_bids_in_flight");
    let peak = gauge("bid_service_bids_in_flight_peak");
    let shed = auction_process::metric_sum(
        "bid_service_bids_rejected_total",
        Some("reason=\"overloaded\""),
    );
    println!(
        "{CALLS} PlaceBid calls with a 1 ms deadline in {took:.1?} against a broker with a 500 ms \
         round trip, in-flight limit {LIMIT}: peak of live bid tasks {peak}, {live_after} still \
         live after the calls ended, {shed} refused by the service as overloaded; statuses seen \
         by the clients: {codes:?}"
    );
    assert_eq!(codes.values().sum::<usize>(), CALLS);
    let unexpected: Vec<&String> = codes
        .keys()
        .filter(|code| {
            ![
                "ResourceExhausted",
                "Unavailable",
                "DeadlineExceeded",
                "Cancelled",
                "transport",
            ]
            .contains(&code.as_str())
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "only RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED (tonic's answer to \
         an expired grpc-timeout, on either side) or a stream reset by the deadline may end a \
         call that cannot be confirmed in 1 ms: {codes:?}"
    );
    assert!(peak > 0.0, "no bid task ever ran");
    assert!(
        peak <= LIMIT as f64,
        "{peak} bid tasks ran at once, above the in-flight limit of {LIMIT}"
    );
    // Most clients give up (their 1 ms passes) before the service's refusal reaches them: the
    // service's own count says how many calls found the limit reached.
    assert!(
        shed > 0.0,
        "the work never reached the limit, so the limit was not tried"
    );

    // Once the broker is fast again, the work drains and a normal bid succeeds.
    cluster
        .broker_round_trip_time(1, Duration::ZERO)
        .expect("fast broker");
    assert!(
        eventually(Duration::from_secs(120), || async {
            gauge("bid_service_bids_in_flight") == 0.0
        })
        .await,
        "{} bid tasks still run two minutes after the broker recovered",
        gauge("bid_service_bids_in_flight")
    );
    let mut placed = None;
    for _ in 0..20 {
        match service.place("after", "Ada", 10).await {
            Ok(response) => {
                placed = Some(response);
                break;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    assert!(
        placed.is_some(),
        "no bid was accepted after the broker recovered"
    );
    assert_eq!(service.highest("after").await.0, Some(10));
    service.stop().await;
}

/// Bids 10 on each auction in turn: the ids accepted, and the statuses of the refused.
async fn first_bids(service: &mut Service, ids: &[String]) -> (Vec<String>, Vec<tonic::Status>) {
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for id in ids {
        match service.place(id, "Ada", 10).await {
            Ok(_) => accepted.push(id.clone()),
            Err(status) => refused.push(status),
        }
    }
    (accepted, refused)
}

fn new_ids(count: usize) -> Vec<String> {
    (0..count)
        .map(|_| format!("new-{}", uuid::Uuid::new_v4().simple()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_open_auctions_up_to_the_cap_and_no_further_even_after_a_restart() {
    const CAP: usize = 5;
    const BEYOND: usize = 3;
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.max_implicit_auctions = CAP;
    let mut service = Service::start(settings.clone()).await;
    let ids = new_ids(CAP + BEYOND);
    let (accepted, refused) = first_bids(&mut service, &ids).await;
    println!(
        "cap {CAP}: {} of {} first bids on new auctions accepted, {} refused: {:?}",
        accepted.len(),
        ids.len(),
        refused.len(),
        refused.first().map(tonic::Status::message)
    );
    assert_eq!(accepted, ids[..CAP].to_vec());
    assert_eq!(refused.len(), BEYOND);
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("AUCTION_MAX_IMPLICIT_AUCTIONS"),
            "{}",
            status.message()
        );
    }
    let count_auctions = |mut client: BidServiceClient<Channel>| async move {
        client
            .list_auctions(ListAuctionsRequest {
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("ListAuctions")
            .into_inner()
            .auctions
            .len()
    };
    assert_eq!(count_auctions(service.client.clone()).await, CAP);
    // A refused bid created nothing.
    let refused_id = &ids[CAP];
    let missing = service
        .client
        .get_auction(GetAuctionRequest {
            auction_id: refused_id.clone(),
        })
        .await
        .expect_err("a refused first bid opened the auction");
    assert_eq!(missing.code(), Code::NotFound);
    // Bids on the auctions that exist are still taken.
    service
        .place(&accepted[0], "Grace", 20)
        .await
        .expect("a bid on an existing auction");

    // The cap counts the auctions a restarted replica restores.
    service.stop().await;
    let mut service = Service::start(settings).await;
    let refused = service
        .place(&new_ids(1)[0], "Ada", 10)
        .await
        .expect_err("a new auction beyond the cap after a restart");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    service
        .place(&accepted[1], "Grace", 20)
        .await
        .expect("a bid on an existing auction after a restart");
    assert_eq!(count_auctions(service.client.clone()).await, CAP);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_open_auctions_no_faster_than_the_rate() {
    const PER_SECOND: u32 = 2;
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.implicit_auctions_per_second = std::num::NonZeroU32::new(PER_SECOND).expect("rate");
    let mut service = Service::start(settings).await;
    let ids = new_ids(10);
    let started = Instant::now();
    let (accepted, refused) = first_bids(&mut service, &ids).await;
    let took = started.elapsed().as_secs_f64();
    println!(
        "{PER_SECOND} new auctions/s: {} of {} first bids accepted in {took:.2} s, {} refused",
        accepted.len(),
        ids.len(),
        refused.len()
    );
    // A burst of PER_SECOND, then PER_SECOND a second.
    let allowed = PER_SECOND as f64 * (1.0 + took);
    assert!(
        !accepted.is_empty() && accepted.len() as f64 <= allowed + 1.0,
        "{} accepted in {took:.2} s",
        accepted.len()
    );
    assert!(!refused.is_empty(), "no first bid was refused");
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .contains("AUCTION_IMPLICIT_AUCTIONS_PER_SEC"),
            "{}",
            status.message()
        );
    }
    // Later, new auctions are opened again, and existing ones take bids meanwhile.
    service
        .place(&accepted[0], "Grace", 20)
        .await
        .expect("a bid on an existing auction");
    tokio::time::sleep(Duration::from_secs(1)).await;
    service
        .place(&new_ids(1)[0], "Ada", 10)
        .await
        .expect("a new auction once the rate allows");
    service.stop().await;
}

/// Opens `count` `WatchAuction` streams one after another: those that delivered their first
/// state, and the statuses of the refused.
async fn open_streams(
    client: &BidServiceClient<Channel>,
    count: usize,
) -> (
    Vec<tonic::Streaming<WatchAuctionResponse>>,
    Vec<tonic::Status>,
) {
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for i in 0..count {
        let opened = client
            .clone()
            .watch_auction(WatchAuctionRequest {
                auction_id: format!("watched-{}", i % 7),
            })
            .await;
        match opened {
            Ok(response) => {
                let mut stream = response.into_inner();
                stream
                    .message()
                    .await
                    .expect("the first state")
                    .expect("a state");
                open.push(stream);
            }
            Err(status) => refused.push(status),
        }
    }
    (open, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_are_bounded_per_client_and_in_total_and_freed_when_clients_leave() {
    const PER_CLIENT: usize = 20;
    const TOTAL: usize = 15;
    let _ = auction_process::metrics_handle();
    let backend = Backend::mock().await;

    // Per client: the most, 10 more refused, and room again once the client leaves.
    let mut settings = backend.settings();
    settings.max_watch_streams_per_client = PER_CLIENT;
    let service = Service::start(settings).await;
    let (open, refused) = open_streams(&service.client, PER_CLIENT + 10).await;
    println!(
        "per-client limit {PER_CLIENT}: {} streams open, {} refused ({:?}); bid service's \
         stream gauge {}",
        open.len(),
        refused.len(),
        refused.first().map(tonic::Status::message),
        gauge("bid_service_watch_streams")
    );
    assert_eq!((open.len(), refused.len()), (PER_CLIENT, 10));
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .contains("BID_SERVICE_MAX_WATCH_STREAMS_PER_CLIENT"),
            "{}",
            status.message()
        );
    }
    assert_eq!(gauge("bid_service_watch_streams"), PER_CLIENT as f64);
    drop(open);
    assert!(
        eventually(Duration::from_secs(10), || async {
            gauge("bid_service_watch_streams") == 0.0
        })
        .await,
        "the streams' slots were not released when the client left"
    );
    let (open, refused) = open_streams(&service.client, PER_CLIENT).await;
    assert_eq!((open.len(), refused.len()), (PER_CLIENT, 0), "{refused:?}");
    drop(open);
    service.stop().await;

    // In total: an exempt client (as a gateway would be) is held only by the total.
    let mut settings = backend.settings();
    settings.max_watch_streams = TOTAL;
    settings.max_watch_streams_per_client = 5;
    settings.watch_streams_exempt_clients = vec!["127.0.0.1".parse().expect("address")];
    let service = Service::start(settings).await;
    let (open, refused) = open_streams(&service.client, TOTAL + 10).await;
    println!(
        "total limit {TOTAL} (client exempt from the per-client limit of 5): {} streams open, \
         {} refused ({:?})",
        open.len(),
        refused.len(),
        refused.first().map(tonic::Status::message)
    );
    assert_eq!((open.len(), refused.len()), (TOTAL, 10));
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("BID_SERVICE_MAX_WATCH_STREAMS)"),
            "{}",
            status.message()
        );
    }
    drop(open);
    assert!(
        eventually(Duration::from_secs(10), || async {
            gauge("bid_service_watch_streams") == 0.0
        })
        .await,
        "the streams' slots were not released when the client left"
    );
    let (open, refused) = open_streams(&service.client, TOTAL).await;
    assert_eq!((open.len(), refused.len()), (TOTAL, 0), "{refused:?}");
    drop(open);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_from_one_client_beyond_its_rate_are_refused() {
    const PER_SECOND: u32 = 3;
    let backend = Backend::mock().await;
    let mut settings = backend.settings();
    settings.bids_per_second_per_client = std::num::NonZeroU32::new(PER_SECOND);
    let mut service = Service::start(settings).await;
    let started = Instant::now();
    let mut accepted = 0;
    let mut refused = Vec::new();
    for price in 10..20 {
        match service.place("rated", "Ada", price).await {
            Ok(_) => accepted += 1,
            Err(status) => refused.push(status),
        }
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "{PER_SECOND} bids/s per client: {accepted} of 10 accepted in {took:.2} s, {} refused",
        refused.len()
    );
    assert!(
        accepted >= 1 && f64::from(accepted) <= f64::from(PER_SECOND) * (1.0 + took) + 1.0,
        "{accepted} accepted in {took:.2} s"
    );
    assert!(!refused.is_empty(), "no bid was refused");
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status
                .message()
                .contains("BID_SERVICE_BIDS_PER_SEC_PER_CLIENT"),
            "{}",
            status.message()
        );
    }
    // The refused bids placed nothing; once the rate allows, bids are taken again.
    assert_eq!(
        service.highest("rated").await.2,
        u64::try_from(accepted).expect("count")
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    service
        .place("rated", "Grace", 100)
        .await
        .expect("a bid once the rate allows");
    service.stop().await;
}
