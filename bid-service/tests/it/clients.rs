//! The example clients of other languages against a running bid service: Python over gRPC, and
//! TypeScript over gRPC-Web (Connect in Node), each also running an auction to its close; and
//! every grpcurl example of the README, run by bash as a reader would paste it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use auction_testkit::{locate_tool, python};
use chrono::{DateTime, SecondsFormat, Utc};
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

/// How far ahead the example clients' auctions end, in seconds. Their soft-close window is as long,
/// so every bid placed before the end moves the end: each client call (tsx needs about a second
/// to start) only has to come within that many seconds of the one before it.
const ENDS_IN: &str = "4";

fn time_of(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e}): {value}"))
        .to_utc()
}

/// Runs an auction to its close through an example client (`client` makes a command line of it):
/// created with a reserve and a short end, a proxy bid and a competing bid that the proxy's
/// maximum answers, watched until the close, which the watch ends at by itself; then cancels a
/// second auction with its seller key. `permission_denied` is the client's name of that code.
async fn run_an_auction_to_its_close(
    client: impl Fn(&[&str]) -> Command,
    lamp: &str,
    vase: &str,
    permission_denied: &str,
) {
    let created = run(client(&[
        "create",
        "Brass lamp",
        "Sam",
        "10",
        "--reserve",
        "15",
        "--ends-in",
        ENDS_IN,
        "--soft-close",
        ENDS_IN,
        "--id",
        lamp,
    ]))
    .await;
    assert_eq!(created["created"], true, "{created}");
    assert!(
        created["seller_key"]
            .as_str()
            .is_some_and(|k| k.len() >= 32),
        "a seller key: {created}"
    );
    let auction = &created["auction"];
    assert_eq!(
        (auction["auction_id"].as_str(), auction["status"].as_str()),
        (Some(lamp), Some("OPEN")),
        "{created}"
    );
    assert_eq!(auction["definition"]["has_reserve"], true, "{created}");
    assert_eq!(
        auction["definition"]["soft_close_window"],
        format!("{ENDS_IN}s"),
        "{created}"
    );
    let scheduled_end = time_of(&auction["definition"]["scheduled_end_time"]);

    // The watch starts before the bids and must end by itself after the close.
    let mut watch = client(&["watch", lamp]);
    watch
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let watching = tokio::spawn(watch.spawn().expect("the watch started").wait_with_output());

    // Bob's maximum bids only as much as needed: on an auction without bids, its reserve.
    let bob = run(client(&["place", lamp, "Bob", "--max", "30"])).await;
    assert_eq!(
        (
            bob["accepted"].clone(),
            bob["outbid"].clone(),
            bob["bid"]["name"].clone(),
            bob["bid"]["price"].clone(),
            bob["auction"]["reserve_met"].clone(),
        ),
        (
            true.into(),
            false.into(),
            "Bob".into(),
            15.into(),
            true.into()
        ),
        "{bob}"
    );
    // Ann's higher bid is placed, and outbid at once by Bob's maximum.
    let ann = run(client(&["place", lamp, "Ann", "20"])).await;
    assert_eq!(
        (
            ann["accepted"].clone(),
            ann["outbid"].clone(),
            ann["bid"]["price"].clone()
        ),
        (true.into(), true.into(), 20.into()),
        "{ann}"
    );

    let output = tokio::time::timeout(Duration::from_secs(60), watching)
        .await
        .expect("the watch ended by itself within 60 s of the bids")
        .expect("the watch task")
        .expect("the watch ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the watch failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let updates: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let (last, earlier) = updates.split_last().expect("updates");
    assert_eq!(
        earlier.first().unwrap_or(last)["status"],
        "OPEN",
        "{stdout}"
    );
    assert!(
        earlier.iter().all(|u| u["status"] == "OPEN"),
        "only the last update is the close:\n{stdout}"
    );
    assert_eq!(last["status"], "CLOSED", "{stdout}");
    let result = &last["result"];
    assert_eq!(
        (
            result["sold"].clone(),
            result["winning_bid"]["name"].clone(),
            result["winning_bid"]["price"].clone()
        ),
        (true.into(), "Bob".into(), 21.into()),
        "Bob wins at one increment over Ann's 20: {last}"
    );
    assert!(
        last["extensions"].as_u64().unwrap_or_default() >= 1
            && time_of(&last["end_time"]) > scheduled_end,
        "the bids in the soft-close window moved the end: {last}"
    );
    assert!(
        time_of(&result["closed_at"]) >= time_of(&last["end_time"]),
        "closed at the end, not before: {last}"
    );
    let got = run(client(&["get", lamp])).await;
    assert_eq!(got["status"], "CLOSED", "{got}");
    assert_eq!(got["result"], last["result"], "{got}");

    // A second auction, cancelled by its seller: only with the seller key.
    let vase = run(client(&[
        "create",
        "Blue vase",
        "Sam",
        "5",
        "--ends-in",
        "600",
        "--id",
        vase,
    ]))
    .await;
    let key = vase["seller_key"]
        .as_str()
        .expect("a seller key")
        .to_owned();
    let vase_id = vase["auction"]["auction_id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let wrong = client(&["cancel", &vase_id, "not-the-key"])
        .output()
        .await
        .expect("ran");
    let refused: Value = serde_json::from_slice(&wrong.stdout).expect("JSON");
    assert_eq!(
        (
            wrong.status.code(),
            refused["cancelled"].clone(),
            refused["code"].clone()
        ),
        (Some(1), false.into(), permission_denied.into()),
        "{refused}"
    );
    let cancelled = run(client(&["cancel", &vase_id, &key])).await;
    assert_eq!(
        (
            cancelled["cancelled"].clone(),
            cancelled["auction"]["status"].clone()
        ),
        (true.into(), "CANCELLED".into()),
        "{cancelled}"
    );
    // A cancelled auction never changes again: the watch prints its state and ends.
    let watched = run(client(&["watch", &vase_id])).await;
    assert_eq!(watched["status"], "CANCELLED", "{watched}");

    // Bad input is refused before any call, saying what is wrong.
    let bad = client(&["create", "Brass lamp", "Sam", "ten", "--ends-in", "60"])
        .output()
        .await
        .expect("ran");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("STARTING_PRICE must be a whole number")
            || stderr.contains("STARTING_PRICE: must be a whole number"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_places_queries_watches_and_runs_an_auction_over_grpc() {
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

    run_an_auction_to_its_close(&python_command, "lamp-py", "vase-py", "PERMISSION_DENIED").await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_example_places_queries_watches_and_runs_an_auction_over_grpc_web() {
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

    run_an_auction_to_its_close(&ts_command, "lamp-ts", "vase-ts", "PermissionDenied").await;
    service.stop().await;
}

/// What the grpcurl examples of the README run, in order: the `grpcurl` lines of its `sh` code
/// blocks, and in blocks with grpcurl lines the shell variable assignments (`NAME=$(...)`) that
/// later lines use.
pub(crate) fn readme_grpcurl_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut examples = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in readme.lines().map(str::trim) {
        if line.starts_with("```") {
            if let Some(lines) = block.take()
                && lines.iter().any(|l| l.starts_with("grpcurl "))
            {
                examples.extend(lines);
            }
            if line == "```sh" {
                block = Some(Vec::new());
            }
        } else if let Some(lines) = block.as_mut()
            && (line.starts_with("grpcurl ") || assigned_variable(line).is_some())
        {
            lines.push(line.to_owned());
        }
    }
    examples
}

/// The variable that a line `NAME=$(command)` sets.
fn assigned_variable(line: &str) -> Option<&str> {
    let (name, value) = line.split_once('=')?;
    let is_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    (is_name && value.starts_with("$(") && value.ends_with(')')).then_some(name)
}

/// The `auction_id` of an example's request, if it names one.
fn auction_of(example: &str) -> Option<&str> {
    let (_, rest) = example.split_once(r#""auction_id": ""#)?;
    rest.split_once('"').map(|(id, _)| id)
}

/// The end the README's auctions get in this test: its `END_TIME` is minutes ahead, for a reader;
/// this one is near enough that the watch until the close ends soon, and far enough for the
/// examples before it (each a grpcurl start) to come before it.
const README_AUCTION_SECONDS: i64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpcurl_example_of_the_readme_works() {
    let grpcurl = locate_tool("GRPCURL", "grpcurl", ".cache/auction/venv/bin/grpcurl");
    // bash runs each example as written; `grpcurl` is the located one.
    let bin = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(&grpcurl, bin.path().join("grpcurl")).expect("symlink");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let backend = Backend::kafka().await;
    let service = Service::start(backend.settings()).await;
    let addr = service.running.grpc_addr.to_string();
    // The TLS examples run against a TLS server in `tls.rs`.
    let examples: Vec<String> = readme_grpcurl_examples()
        .into_iter()
        .filter(|e| !e.contains("-cacert"))
        .collect();
    assert!(
        examples.len() >= 15,
        "the README lost its grpcurl examples: {examples:?}"
    );
    let mut variables: HashMap<String, String> = HashMap::new();
    let mut created: HashSet<String> = HashSet::new();
    let mut covered = Vec::new();
    for example in &examples {
        let line = example.replace("127.0.0.1:50051", &addr);
        let mut bash = Command::new("bash");
        bash.env("PATH", &path)
            .envs(&variables)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);

        if let Some(name) = assigned_variable(&line) {
            let output = bash
                .arg("-c")
                .arg(format!("set -eo pipefail\n{line}\nprintf %s \"${name}\""))
                .output()
                .await
                .expect("bash ran");
            let value = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(
                output.status.success() && !value.is_empty(),
                "`{example}` set nothing:\n{value}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let value = match name {
                "END_TIME" => {
                    let end = DateTime::parse_from_rfc3339(&value)
                        .unwrap_or_else(|e| panic!("`{example}` is not RFC 3339 ({e}): {value}"));
                    let ahead = end.to_utc() - Utc::now();
                    assert!(
                        ahead > chrono::Duration::seconds(30) && ahead < chrono::Duration::days(1),
                        "`{example}` should be minutes ahead: {value}"
                    );
                    (Utc::now() + chrono::Duration::seconds(README_AUCTION_SECONDS))
                        .to_rfc3339_opts(SecondsFormat::Secs, true)
                }
                "SELLER_KEY" => {
                    assert!(
                        value.len() == 32 && value.chars().all(|c| c.is_ascii_hexdigit()),
                        "`{example}` should set the seller key: {value}"
                    );
                    value
                }
                other => panic!("the README sets {other}, which this test does not check"),
            };
            variables.insert(name.to_owned(), value);
            continue;
        }

        let words: Vec<&str> = line.split_whitespace().collect();
        let method = words.last().copied().unwrap_or_default();
        bash.arg("-c").arg(format!("exec {line}"));
        let output = if method.ends_with("/WatchAuction") {
            // A watch never ends by itself: read its first message, or for an auction that an
            // example created, every message until the close; then stop it.
            let until_closed = auction_of(example).is_some_and(|a| created.contains(a));
            let mut child = bash.spawn().expect("grpcurl started");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let mut text = String::new();
            let mut message = String::new();
            let wait = if until_closed { 60 } else { 10 };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
            while let Ok(Ok(Some(printed))) =
                tokio::time::timeout_at(deadline, lines.next_line()).await
            {
                message.push_str(&printed);
                message.push('\n');
                if printed == "}" {
                    text.push_str(&message);
                    if !until_closed || message.contains("\"AUCTION_STATUS_CLOSED\"") {
                        break;
                    }
                    message.clear();
                }
            }
            let _ = child.kill().await;
            if until_closed {
                let last: Value = serde_json::from_str(&message).unwrap_or_else(|e| {
                    panic!("`{example}` ended without a message ({e}):\n{text}")
                });
                assert_eq!(
                    last["auction"]["status"], "AUCTION_STATUS_CLOSED",
                    "`{example}` printed no close within {wait} s:\n{text}"
                );
                let winner = &last["auction"]["result"]["winningBid"];
                assert_eq!(
                    (winner["name"].as_str(), winner["price"].as_str()),
                    (Some("Bob"), Some("21")),
                    "Bob's maximum wins at one increment over Ann's 20:\n{text}"
                );
            }
            text
        } else {
            let output = bash.output().await.expect("grpcurl ran");
            assert!(
                output.status.success(),
                "`{example}` failed:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let expected: &[&str] = match method {
            "list" => &["auction.v1.BidService"],
            "auction.v1.BidService" => &["rpc PlaceBid", "rpc CreateAuction"],
            "grpc.health.v1.Health/Check" => &["\"SERVING\""],
            "auction.v1.BidService/PlaceBid" if example.contains("max_price") => {
                // A maximum on an auction without bids bids the reserve.
                &[
                    "\"name\": \"Bob\"",
                    "\"price\": \"15\"",
                    "\"reserveMet\": true",
                ]
            }
            "auction.v1.BidService/PlaceBid" if example.contains("\"Ann\"") => {
                &["\"price\": \"20\"", "\"outbid\": true"]
            }
            "auction.v1.BidService/PlaceBid" => {
                &["\"bidId\": \"6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f\""]
            }
            "auction.v1.BidService/HighestBid" => &["\"name\": \"Ada\""],
            "auction.v1.BidService/ListRecentBids" => &["\"price\": \"10\""],
            "auction.v1.BidService/ListAuctions" => &["\"auctionId\": \"lot-1\""],
            "auction.v1.BidService/WatchAuction" if example.contains("lot-1") => {
                &["\"minimumNextBid\": \"11\""]
            }
            "auction.v1.BidService/WatchAuction" => &["\"status\": \"AUCTION_STATUS_CLOSED\""],
            "auction.v1.BidService/CreateAuction" => {
                created.extend(auction_of(example).map(str::to_owned));
                &["\"sellerKey\": \"", "\"status\": \"AUCTION_STATUS_OPEN\""]
            }
            "auction.v1.BidService/GetAuction" => &[
                "\"status\": \"AUCTION_STATUS_OPEN\"",
                "\"softCloseWindow\": \"2s\"",
                "\"reserveMet\": true",
            ],
            "auction.v1.BidService/CancelAuction" => &["\"status\": \"AUCTION_STATUS_CANCELLED\""],
            other => panic!("the README has a grpcurl example this test does not check: {other}"),
        };
        for expected in expected {
            assert!(
                output.contains(expected),
                "`{example}` printed:\n{output}\n(expected {expected})"
            );
        }
        covered.push(method.to_owned());
    }
    for rpc in [
        "PlaceBid",
        "HighestBid",
        "WatchAuction",
        "ListRecentBids",
        "ListAuctions",
        "CreateAuction",
        "GetAuction",
        "CancelAuction",
    ] {
        assert!(
            covered.iter().any(|m| m.ends_with(&format!("/{rpc}"))),
            "no README example for {rpc}"
        );
    }
    service.stop().await;
}
