//! What anyone can make the bid service keep: watching auctions that do not exist must not
//! create state, and a watched auction's subscription goes when its last watcher leaves.

use std::time::Duration;

use auction_proto::v1::WatchAuctionRequest;
use auction_proto::v1::bid_service_client::BidServiceClient;
use futures::StreamExt;
use tonic::transport::Channel;

use crate::helpers::{Backend, Service, eventually, resident_kib};

/// The value of a gauge in this process's metrics.
fn gauge(name: &str) -> f64 {
    auction_process::metrics_handle()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
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
