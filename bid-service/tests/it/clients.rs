//! The example clients of other languages against a running bid service: Python over gRPC, and
//! TypeScript over gRPC-Web (Connect in Node), and every grpcurl example of the README.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use auction_testkit::{locate_tool, python};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::{Backend, Service};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tsx() -> PathBuf {
    let tsx = repo().join("proto/clients/typescript/node_modules/.bin/tsx");
    assert!(
        tsx.is_file(),
        "the TypeScript example's packages are not installed; run `.ci/test`, which installs them"
    );
    tsx
}

async fn run(mut command: Command) -> Value {
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the client finished within 60 s")
        .expect("the client ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

/// Starts a watch command and returns its first two JSON lines, placing a bid after the first.
async fn watch_two_updates(
    mut command: Command,
    service: &mut Service,
    auction: &str,
    price: i64,
) -> (Value, Value) {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the watch client started");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("an update within 30 s")
            .expect("readable")
            .expect("a line");
        serde_json::from_str(&line).expect("JSON")
    };
    let first = next().await;
    service
        .place(auction, "Grace", price)
        .await
        .expect("accepted");
    let second = next().await;
    let _ = child.kill().await;
    (first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_places_queries_and_watches_over_grpc() {
    let backend = Backend::kafka().await;
    let mut service = Service::start(backend.settings()).await;
    let script = repo().join("proto/clients/python/bid_client.py");
    let target = service.running.grpc_addr.to_string();
    let python_command = |args: &[&str]| {
        let mut command = Command::new(python());
        command.arg(&script).args(["--target", &target]).args(args);
        command
    };

    let placed = run(python_command(&["place", "lot-py", "Ada Lovelace", "10"])).await;
    assert_eq!(placed["accepted"], true);
    assert_eq!(placed["bid"]["name"], "Ada Lovelace");
    assert_eq!(placed["auction"]["highest_bid"]["price"], 10);
    let too_low = python_command(&["place", "lot-py", "Bob", "10"])
        .output()
        .await
        .expect("ran");
    assert_eq!(too_low.status.code(), Some(1));
    let refused: Value = serde_json::from_slice(&too_low.stdout).expect("JSON");
    assert_eq!(refused["code"], "FAILED_PRECONDITION");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("minimum next bid is 11"),
        "{refused}"
    );
    let highest = run(python_command(&["highest", "lot-py"])).await;
    assert_eq!(
        (
            highest["highest_bid"]["name"].clone(),
            highest["bid_count"].clone()
        ),
        ("Ada Lovelace".into(), 1.into())
    );

    let (first, second) = watch_two_updates(
        python_command(&["watch", "lot-py", "--updates", "2"]),
        &mut service,
        "lot-py",
        15,
    )
    .await;
    assert_eq!(
        first["highest_bid"]["price"], 10,
        "the current state comes first"
    );
    assert_eq!(second["highest_bid"]["price"], 15);
    assert_eq!(second["highest_bid"]["name"], "Grace");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_example_places_queries_and_watches_over_grpc_web() {
    let tsx = tsx();
    let backend = Backend::kafka().await;
    let mut service = Service::start(backend.settings()).await;
    let url = format!("http://{}", service.running.grpc_addr);
    let ts_command = |args: &[&str]| {
        let mut command = Command::new(&tsx);
        command
            .current_dir(repo().join("proto/clients/typescript"))
            .arg("src/bid_client.ts")
            .args(args)
            .env("BID_SERVICE_URL", &url);
        command
    };

    let placed = run(ts_command(&["place", "lot-ts", "Grace Hopper", "20"])).await;
    assert_eq!(placed["accepted"], true);
    assert_eq!(placed["bid"]["price"], 20);
    assert_eq!(placed["auction"]["minimum_next_bid"], 21);
    let invalid = ts_command(&["place", "lot-ts", "", "0"])
        .output()
        .await
        .expect("ran");
    let refused: Value = serde_json::from_slice(&invalid.stdout).expect("JSON");
    assert_eq!(refused["code"], "InvalidArgument", "{refused}");
    let highest = run(ts_command(&["highest", "lot-ts"])).await;
    assert_eq!(highest["highest_bid"]["name"], "Grace Hopper");

    let (first, second) = watch_two_updates(
        ts_command(&["watch", "lot-ts", "2"]),
        &mut service,
        "lot-ts",
        25,
    )
    .await;
    assert_eq!(
        first["highest_bid"]["price"], 20,
        "the current state comes first"
    );
    assert_eq!(second["highest_bid"]["price"], 25);
    service.stop().await;
}

/// The grpcurl lines of the README's code blocks, in order.
pub(crate) fn readme_grpcurl_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut in_shell_block = false;
    let mut examples = Vec::new();
    for line in readme.lines().map(str::trim) {
        if line.starts_with("```") {
            in_shell_block = line == "```sh";
        } else if in_shell_block && line.starts_with("grpcurl ") {
            examples.push(line.to_owned());
        }
    }
    examples
}

/// Splits a README command line the way a POSIX shell would for these examples (single quotes).
pub(crate) fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                }
                in_word = false;
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpcurl_example_of_the_readme_works() {
    let grpcurl = locate_tool("GRPCURL", "grpcurl", ".cache/auction/venv/bin/grpcurl");
    let backend = Backend::kafka().await;
    let service = Service::start(backend.settings()).await;
    // The TLS examples run against a TLS server in `tls.rs`.
    let examples: Vec<String> = readme_grpcurl_examples()
        .into_iter()
        .filter(|e| !e.contains("-cacert"))
        .collect();
    assert!(
        examples.len() >= 8,
        "the README lost its grpcurl examples: {examples:?}"
    );
    let mut covered = Vec::new();
    for example in &examples {
        let words: Vec<String> = shell_words(example)
            .into_iter()
            .map(|w| w.replace("127.0.0.1:50051", &service.running.grpc_addr.to_string()))
            .collect();
        let method = words.last().cloned().unwrap_or_default();
        let mut command = Command::new(&grpcurl);
        command
            .args(&words[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = if method.ends_with("/WatchAuction") {
            // A watch never ends by itself: read its first message, then stop it.
            let mut child = command.spawn().expect("grpcurl started");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let mut text = String::new();
            while let Ok(Ok(Some(line))) =
                tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await
            {
                text.push_str(&line);
                text.push('\n');
                if line == "}" {
                    break;
                }
            }
            let _ = child.kill().await;
            text
        } else {
            let output = command.output().await.expect("grpcurl ran");
            assert!(
                output.status.success(),
                "`{example}` failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let expected = match method.as_str() {
            "list" => "auction.v1.BidService",
            "auction.v1.BidService" => "rpc PlaceBid",
            "grpc.health.v1.Health/Check" => "\"SERVING\"",
            "auction.v1.BidService/PlaceBid" => {
                "\"bidId\": \"6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f\""
            }
            "auction.v1.BidService/HighestBid" => "\"name\": \"Ada\"",
            "auction.v1.BidService/ListRecentBids" => "\"price\": \"10\"",
            "auction.v1.BidService/ListAuctions" => "\"auctionId\": \"lot-1\"",
            "auction.v1.BidService/WatchAuction" => "\"minimumNextBid\": \"11\"",
            other => panic!("the README has a grpcurl example this test does not check: {other}"),
        };
        assert!(
            output.contains(expected),
            "`{example}` printed:\n{output}\n(expected {expected})"
        );
        covered.push(method);
    }
    for rpc in [
        "PlaceBid",
        "HighestBid",
        "WatchAuction",
        "ListRecentBids",
        "ListAuctions",
    ] {
        assert!(
            covered.iter().any(|m| m.ends_with(&format!("/{rpc}"))),
            "no README example for {rpc}"
        );
    }
    service.stop().await;
}
