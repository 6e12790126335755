//! What anyone can make the gateway hold: live streams on auctions that do not exist leave
//! nothing behind, one client cannot take every live stream, its streams share one upstream
//! subscription per auction, and a client posting forms too fast is slowed down, not served.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auction_gateway::{RunningGateway, Settings};
use auction_proto::v1::ListAuctionsRequest;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use auction_testkit::resident_kib;

use crate::helpers::{Backend, BidService, Stack, client, gateway_settings, place};

/// The value of a gauge in this process's metrics (the bid service and the gateway share it).
fn gauge(name: &str) -> f64 {
    auction_process::metric_sum(name, None)
}

/// A raw HTTP/1.1 request on its own connection: the status code, the connection, and what was
/// read so far. Reads until `until` appears after the headers (or only the headers when `None`).
async fn open(addr: SocketAddr, path: &str, until: Option<&str>) -> (u16, TcpStream, String) {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: gateway\r\nAccept: text/event-stream\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("request");
    let mut seen = String::new();
    let mut buffer = [0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(end) = seen.find("\r\n\r\n") {
                match until {
                    Some(text) if !seen[end..].contains(text) => {}
                    _ => break,
                }
            }
            let n = socket.read(&mut buffer).await.expect("read");
            assert!(n > 0, "the connection closed early: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 30 s: {seen}");
    let status = seen
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {seen}"));
    (status, socket, seen)
}

async fn start_gateway(settings: Settings) -> (RunningGateway, CancellationToken) {
    let shutdown = CancellationToken::new();
    let running = auction_gateway::spawn(settings, shutdown.clone())
        .await
        .expect("gateway");
    (running, shutdown)
}

async fn auction_count(url: &str) -> usize {
    client(url)
        .await
        .list_auctions(ListAuctionsRequest {
            limit: 500,
            ..Default::default()
        })
        .await
        .expect("ListAuctions")
        .into_inner()
        .auctions
        .len()
}

/// Waits until the gateway follows no auction and the bid service has no watcher left.
async fn wait_until_nothing_is_followed(gateway: &RunningGateway) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while gateway.app.followed_auctions() > 0 || gauge("bid_service_watchers") > 0.0 {
        assert!(
            Instant::now() < deadline,
            "still followed after 30 s: {} auctions in the gateway, {} watchers in the bid service",
            gateway.app.followed_auctions(),
            gauge("bid_service_watchers")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `count` live streams of random auction ids, 32 at a time: each waits for the auction's first
/// state (so the gateway really subscribed upstream) and leaves.
async fn follow_random_auctions(addr: SocketAddr, count: usize) {
    futures::stream::iter(0..count)
        .for_each_concurrent(32, |_| async move {
            let path = format!("/auctions/nobody-{}/events", uuid::Uuid::new_v4().simple());
            let (status, _socket, seen) = open(addr, &path, Some("event: auction")).await;
            assert_eq!(status, 200, "{seen}");
            assert!(seen.contains("\"bid_count\":0"), "{seen}");
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_live_streams_of_unknown_auctions_keep_nothing() {
    let _ = auction_process::metrics_handle();
    let backend = Backend::start().await;
    let service = BidService::start(&backend, "127.0.0.1:0".parse().expect("address")).await;
    let url = service.url();
    for auction in ["real-1", "real-2", "real-3"] {
        place(&url, auction, "alice", 10).await;
    }
    let mut settings = gateway_settings(&url);
    // This client is every client here: only the per-client limits are lifted.
    settings.client_streams_per_sec = 1_000_000;
    settings.max_live_streams_per_client = 1_000;
    let (gateway, shutdown) = start_gateway(settings).await;
    let auctions_before = auction_count(&url).await;
    assert_eq!(auctions_before, 3);

    // Warm up the allocator and the connection pools, then measure.
    follow_random_auctions(gateway.addr, 2_000).await;
    wait_until_nothing_is_followed(&gateway).await;
    let rss_before = resident_kib();
    let started = Instant::now();
    follow_random_auctions(gateway.addr, 100_000).await;
    let took = started.elapsed();
    wait_until_nothing_is_followed(&gateway).await;
    let rss_after = resident_kib();
    let auctions_after = auction_count(&url).await;
    println!(
        "100,000 live streams of unknown auctions in {took:.1?}: auctions {auctions_before} before, \
         {auctions_after} after; followed upstream after: {}; resident memory (gateway and bid \
         service in this process) {rss_before} KiB before, {rss_after} KiB after",
        gateway.app.followed_auctions()
    );
    assert_eq!(
        auctions_after, auctions_before,
        "unknown auctions were created"
    );
    assert_eq!(gauge("bid_service_auction_entries"), 3.0);
    assert!(
        rss_after <= rss_before + 8 * 1024,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    shutdown.cancel();
    gateway.stopped().await.expect("gateway stopped");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_live_streams_from_one_client_get_429_beyond_its_limit() {
    let _ = auction_process::metrics_handle();
    let backend = Backend::start().await;
    let service = BidService::start(&backend, "127.0.0.1:0".parse().expect("address")).await;
    let url = service.url();
    place(&url, "popular", "alice", 10).await;
    let mut settings = gateway_settings(&url);
    settings.max_live_streams_per_client = 50;
    settings.client_streams_per_sec = 1_000_000;
    let (gateway, shutdown) = start_gateway(settings).await;

    let answers: Vec<(u16, TcpStream, String)> = futures::stream::iter(0..2_000)
        .map(|_| open(gateway.addr, "/auctions/popular/events", None))
        .buffer_unordered(200)
        .collect()
        .await;
    let accepted = answers
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, _, _)| *status == 429)
        .count();
    let other: Vec<u16> = answers
        .iter()
        .map(|(status, _, _)| *status)
        .filter(|status| *status != 200 && *status != 429)
        .collect();
    let retry_after = answers
        .iter()
        .filter(|(status, _, _)| *status == 429)
        .all(|(_, _, seen)| seen.to_ascii_lowercase().contains("retry-after: 5"));
    // Every accepted stream shares one upstream subscription.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let followed = gateway.app.followed_auctions();
    let watchers = gauge("bid_service_watchers");
    println!(
        "2,000 live streams from one client: {accepted} accepted, {refused} refused with 429, others \
         {other:?}; the gateway follows {followed} auction upstream; the bid service has \
         {watchers} watcher(s)"
    );
    assert_eq!(accepted, 50, "the per-client limit");
    assert_eq!(refused, 1_950);
    assert!(other.is_empty(), "{other:?}");
    assert!(retry_after, "a 429 without Retry-After");
    assert_eq!(followed, 1, "one upstream stream per auction");
    assert_eq!(
        watchers, 1.0,
        "the bid service's stream count stays bounded"
    );

    // Pages still load, for this client and everyone else, while its streams are open.
    for path in ["/", "/auctions/popular"] {
        let (status, _socket, seen) = open(gateway.addr, path, None).await;
        assert_eq!(status, 200, "{path}: {seen}");
    }
    // Updates still reach the open streams: a bid shows on one of them.
    place(&url, "popular", "bob", 20).await;
    let mut open_streams: Vec<(u16, TcpStream, String)> = answers
        .into_iter()
        .filter(|(status, _, _)| *status == 200)
        .collect();
    let (_, socket, seen) = open_streams.first_mut().expect("an accepted stream");
    let mut buffer = [0; 4096];
    let got = tokio::time::timeout(Duration::from_secs(30), async {
        while !seen.contains("\"bidder\":\"bob\"") && !seen.contains("bob") {
            let n = socket.read(&mut buffer).await.expect("read");
            assert!(n > 0, "the stream closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    })
    .await;
    assert!(
        got.is_ok(),
        "bob's bid did not reach an open stream: {seen}"
    );
    drop(open_streams);

    shutdown.cancel();
    gateway.stopped().await.expect("gateway stopped");
    service.stop().await;
}

#[tokio::test]
async fn a_client_posting_bids_faster_than_its_rate_gets_429_and_nothing_is_placed() {
    let mut stack = Stack::start_with(|settings| settings.client_posts_per_sec = 3).await;
    let page = stack.get("/auctions/rate-1", "").await;
    let cookies = format!(
        "auction_csrf={}",
        page.cookie("auction_csrf").expect("csrf cookie")
    );
    let token = page.hidden("csrf_token");
    let mut statuses = Vec::new();
    for price in 1..=10 {
        let price = (price * 10).to_string();
        let answer = stack
            .post_form(
                "/auctions/rate-1/bids",
                &cookies,
                &[
                    ("csrf_token", token.as_str()),
                    ("name", "eager"),
                    ("price", price.as_str()),
                    ("request_id", ""),
                ],
            )
            .await;
        if answer.status.as_u16() == 429 {
            assert_eq!(
                answer
                    .headers
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap_or("")),
                Some("1")
            );
            assert!(
                answer.body.contains("nothing was placed"),
                "{}",
                answer.body
            );
        }
        statuses.push(answer.status.as_u16());
    }
    let placed = statuses.iter().filter(|status| **status == 303).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    println!("10 bid forms at once, 3 per second allowed: statuses {statuses:?}");
    assert_eq!((placed, refused), (3, 7), "{statuses:?}");
    assert_eq!(crate::helpers::bid_count(&stack.url, "rate-1").await, 3);
    // A moment later the client may bid again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = stack
        .post_form(
            "/auctions/rate-1/bids",
            &cookies,
            &[
                ("csrf_token", token.as_str()),
                ("name", "eager"),
                ("price", "500"),
                ("request_id", ""),
            ],
        )
        .await;
    assert_eq!(again.status.as_u16(), 303);
    assert_eq!(crate::helpers::bid_count(&stack.url, "rate-1").await, 4);
    stack.stop_bid_service().await;
}

#[tokio::test]
async fn connections_that_send_nothing_are_closed_after_the_header_timeout() {
    let backend = Backend::start().await;
    let service = BidService::start(&backend, "127.0.0.1:0".parse().expect("address")).await;
    let mut settings = gateway_settings(&service.url());
    settings.header_timeout = Duration::from_millis(500);
    let (gateway, shutdown) = start_gateway(settings).await;

    // A client that connects and never sends a request, and one that stays after its answer.
    let mut silent = TcpStream::connect(gateway.addr).await.expect("connect");
    let (status, mut kept_alive, _) = open(gateway.addr, "/assets/app.css", None).await;
    assert_eq!(status, 200);
    let started = Instant::now();
    let mut buffer = [0; 4096];
    for (name, socket) in [("silent", &mut silent), ("kept alive", &mut kept_alive)] {
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "the {name} connection was still open after 10 s"
        );
    }
    println!(
        "a silent and an idle kept-alive connection closed {:.1?} after connecting (header timeout 500 ms)",
        started.elapsed()
    );
    shutdown.cancel();
    gateway.stopped().await.expect("gateway stopped");
    service.stop().await;
}
