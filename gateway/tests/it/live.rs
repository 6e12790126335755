//! Live updates: the SSE bridge from `WatchAuction`, across a bid service restart and shutdown.

use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::helpers::{Backend, BidService, gateway_settings, place};

/// Reads SSE frames from a body until one satisfies `want`; fails after `within`.
struct Events {
    stream: axum::body::BodyDataStream,
    buffer: String,
}

impl Events {
    /// The next `(event, data)` frame, or `None` when the stream ended.
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if !data.is_empty() {
                    return Some((event, data));
                }
                continue;
            }
            let chunk = self.stream.next().await?.expect("body chunk");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Waits for an event named `event` whose data satisfies `want`.
    async fn wait_for(
        &mut self,
        event: &str,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some((name, data)) = self.next().await {
                if name != event {
                    continue;
                }
                let value = if event == "status" {
                    serde_json::Value::String(data)
                } else {
                    serde_json::from_str(&data).expect("JSON data")
                };
                if want(&value) {
                    return Some(value);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(value)) => value,
            Ok(None) => panic!("the event stream ended before the {event} event came"),
            Err(_) => panic!("no matching {event} event within 30 s"),
        }
    }
}

#[tokio::test]
async fn live_updates_follow_bids_and_survive_a_bid_service_restart() {
    let backend = Backend::start().await;
    let service = BidService::start(&backend, "127.0.0.1:0".parse().expect("address")).await;
    let grpc = service.running.grpc_addr;
    let url = service.url();
    let shutdown = CancellationToken::new();
    let app = auction_gateway::App::new(gateway_settings(&url), shutdown.clone()).expect("app");
    let response = auction_gateway::router(app)
        .oneshot(
            Request::get("/auctions/live-1/events")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
    let mut events = Events {
        stream: response.into_body().into_data_stream(),
        buffer: String::new(),
    };

    events.wait_for("status", |s| s == "live").await;
    events.wait_for("auction", |a| a["bid_count"] == 0).await;
    place(&url, "live-1", "Ada <b>", 10).await;
    let update = events.wait_for("auction", |a| a["bid_count"] == 1).await;
    assert_eq!(update["highest"]["name"], "Ada <b>");
    assert_eq!(update["highest"]["price"], 10);
    assert_eq!(update["minimum_next_bid"], 11);
    assert_eq!(update["recent"][0]["name"], "Ada <b>");

    // The bid service goes away: the same connection says so and keeps trying.
    service.stop().await;
    events.wait_for("status", |s| s == "reconnecting").await;

    // It comes back on the same address: the connection resubscribes by itself and carries on.
    let service = BidService::start(&backend, grpc).await;
    events.wait_for("status", |s| s == "live").await;
    events.wait_for("auction", |a| a["bid_count"] == 1).await;
    place(&url, "live-1", "Grace", 20).await;
    let update = events.wait_for("auction", |a| a["bid_count"] == 2).await;
    assert_eq!(update["highest"]["name"], "Grace");
    assert_eq!(update["recent"][1]["name"], "Ada <b>");

    // Shutdown ends the stream.
    shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while events.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream did not end on shutdown");
    service.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_live_streams_so_the_server_stops() {
    let backend = Backend::start().await;
    let service = BidService::start(&backend, "127.0.0.1:0".parse().expect("address")).await;
    let shutdown = CancellationToken::new();
    let running = auction_gateway::spawn(gateway_settings(&service.url()), shutdown.clone())
        .await
        .expect("gateway");
    let mut socket = tokio::net::TcpStream::connect(running.addr)
        .await
        .expect("connect");
    socket
        .write_all(b"GET /auctions/live-2/events HTTP/1.1\r\nHost: gateway\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .expect("request");
    let mut seen = String::new();
    let mut buffer = [0; 4096];
    let got_state = tokio::time::timeout(Duration::from_secs(30), async {
        while !seen.contains("event: auction") {
            let n = socket.read(&mut buffer).await.expect("read");
            assert!(n > 0, "the stream closed early: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    })
    .await;
    assert!(got_state.is_ok(), "no auction event: {seen}");
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");

    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), running.stopped()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the gateway did not stop with a live stream open: {stopped:?}"
    );
    // The browser's connection is closed.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection stayed open after shutdown");
    service.stop().await;
}
