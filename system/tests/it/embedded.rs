//! The README's command that runs the system, exactly as written: a bid placed over gRPC lands in
//! the CSV file and the SQLite database, and SIGINT stops everything with exit code 0.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use auction_proto::v1::PlaceBidRequest;
use auction_proto::v1::bid_service_client::BidServiceClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The command in the README's "Run the system" block.
fn readme_run_command() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme
        .split("**Run the system**")
        .nth(1)
        .expect("the README has a Run the system paragraph");
    let block = section.split("```sh").nth(1).expect("a sh block after it");
    let command: Vec<&str> = block
        .split("```")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        command.len(),
        1,
        "the run block must hold exactly one command: {command:?}"
    );
    command[0].to_owned()
}

fn sqlite_rows(db: &Path) -> Vec<String> {
    let script = "import sqlite3, sys\n\
                  rows = sqlite3.connect(sys.argv[1]).execute('select bid_id, name, price from bid order by price').fetchall()\n\
                  print('\\n'.join('|'.join(map(str, r)) for r in rows))";
    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .output()
        .expect("python3 reads SQLite");
    // Until the sink has created its table, there is nothing to read.
    if !output.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn eventually_contains(path: &Path, needle: &str) -> bool {
    for _ in 0..200 {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The value of `<input ... name="NAME" value="...">` in a page.
fn hidden_field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("no {name} field in the page"));
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Places a bid through the gateway's form: GET the page (CSRF cookie and token), POST the form,
/// follow the redirect; returns the bid id (the form's request id).
async fn bid_through_the_form(web: &str, auction: &str, name: &str, price: i64) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    let page_url = format!("{}auctions/{auction}", web);
    let page = client
        .get(&page_url)
        .send()
        .await
        .expect("the auction page");
    assert!(page.status().is_success(), "{}", page.status());
    let cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect();
    let html = page.text().await.expect("HTML");
    let token = hidden_field(&html, "csrf_token");
    let request_id = hidden_field(&html, "request_id");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf_token", &token)
        .append_pair("request_id", &request_id)
        .append_pair("name", name)
        .append_pair("price", &price.to_string())
        .finish();
    let posted = client
        .post(format!("{page_url}/bids"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookies.join("; "))
        .body(body)
        .send()
        .await
        .expect("the form post");
    assert_eq!(
        posted.status(),
        reqwest::StatusCode::SEE_OTHER,
        "post/redirect/get"
    );
    let location = posted
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let flash: Vec<String> = posted
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .collect();
    let target = if location.starts_with("http") {
        location
    } else {
        format!("{}{}", web.trim_end_matches('/'), location)
    };
    let shown = client
        .get(target)
        .header("cookie", [cookies, flash].concat().join("; "))
        .send()
        .await
        .expect("the redirect target")
        .text()
        .await
        .expect("HTML");
    assert!(
        shown.contains("Bid accepted"),
        "the page after the post says:\n{shown}"
    );
    if name.contains('<') {
        assert!(!shown.contains(name), "a name with markup was not escaped");
        assert!(
            shown.contains("&lt;b&gt;Hopper") || shown.contains("&#60;b&#62;Hopper"),
            "the escaped name is not shown:\n{shown}"
        );
    }
    request_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_run_command_runs_the_system_and_stops_cleanly() {
    let command = readme_run_command();
    let data = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new("bash");
    // Run it as a user's shell would: without the variables cargo and nextest set for this test,
    // which would make the nested `cargo run` rebuild.
    for (name, _) in std::env::vars() {
        let from_test_harness =
            (name.starts_with("CARGO_") && name != "CARGO_HOME" && name != "CARGO_TARGET_DIR")
                || name.starts_with("NEXTEST")
                || name.starts_with("RUST_TEST");
        if from_test_harness {
            child.env_remove(&name);
        }
    }
    let mut child = child
        .args(["-c", &command])
        .current_dir(repo())
        .env("AUCTION_DATA_DIR", data.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("the run command starts");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    // The first run may build the release binaries.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1800);
    while !printed
        .iter()
        .any(|l: &String| l.contains("(SQLite, table bid)"))
    {
        match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(line))) => printed.push(line),
            other => panic!(
                "the system did not start: {other:?}\n{}",
                printed.join("\n")
            ),
        }
    }
    let find = |prefix: &str| -> String {
        printed
            .iter()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(prefix)
                    .map(|rest| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{}", printed.join("\n")))
    };
    let grpc = find("gRPC + gRPC-Web:")
        .split_whitespace()
        .next()
        .expect("address")
        .to_owned();
    let csv = PathBuf::from(find("bids land in:"));
    let sqlite = PathBuf::from(
        printed
            .iter()
            .find(|l| l.contains("(SQLite, table bid)"))
            .and_then(|l| l.split_whitespace().next())
            .expect("the SQLite line"),
    );
    assert!(
        csv.starts_with(data.path()),
        "{csv:?} is not under the data directory"
    );
    for (name, url) in [
        ("bid", "metrics bid"),
        ("csv", "metrics csv"),
        ("sqlite", "metrics sqlite"),
    ] {
        let url = find(url);
        let body = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("{name} metrics at {url}: {e}"));
        assert!(
            body.status().is_success(),
            "{name} metrics: {}",
            body.status()
        );
    }

    let mut client = BidServiceClient::connect(grpc.clone())
        .await
        .expect("gRPC connects");
    let placed = client
        .place_bid(PlaceBidRequest {
            auction_id: "readme".into(),
            name: "Ada, \"first\" bidder".into(),
            price: 42,
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .expect("the bid is accepted")
        .into_inner();
    let bid_id = placed.bid.expect("bid").bid_id;
    assert!(
        eventually_contains(&csv, &bid_id).await,
        "the bid never reached {}",
        csv.display()
    );
    let csv_text = std::fs::read_to_string(&csv).expect("CSV");
    assert!(
        csv_text.contains("\"Ada, \"\"first\"\" bidder\""),
        "RFC 4180 quoting:\n{csv_text}"
    );
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = sqlite_rows(&sqlite);
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows, [format!("{bid_id}|Ada, \"first\" bidder|42")]);

    // A bid through the web form, as a browser without JavaScript sends it.
    let web = find("web page:");
    let form_bid = bid_through_the_form(&web, "readme", "Grace <b>Hopper</b>", 50).await;
    assert!(
        eventually_contains(&csv, &form_bid).await,
        "the form's bid never reached {}",
        csv.display()
    );
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = sqlite_rows(&sqlite);
        if rows.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows[1], format!("{form_bid}|Grace <b>Hopper</b>|50"));

    let interrupted = std::process::Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{pid}")])
        .status()
        .expect("kill runs");
    assert!(interrupted.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the system stops within 60 s of SIGINT")
        .expect("exit status");
    let mut rest = Vec::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(1), lines.next_line()).await
    {
        rest.push(line);
    }
    assert!(
        status.success(),
        "exit status {status:?}; output after SIGINT: {rest:?}"
    );
    assert!(
        rest.iter().any(|l| l.contains("stopped cleanly")),
        "{rest:?}"
    );
}
