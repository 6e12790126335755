//! 7b. The original demo as a peer of the whole path: its Flask producer (`system/tests/demo/app.py`,
//! one produce + flush per request, run by the test virtualenv's Python against this run's Apache
//! Kafka and schema registry) and the gateway's bid form (`auction_gateway::spawn` in this process
//! over a bid service of the run, the per-client limits lifted), each driven over HTTP by the same
//! closed loop of 1, 4 and 16 callers posting the form; bids/s and latency at each, and the best.
//!
//! Each caller bids on its own 8 auctions at rising prices as in 1 (the demo's form has no
//! auction: its bids carry a name and a price only), so that every bid is accepted. Only the
//! POST is timed: the demo answers it with `accepted`, the gateway with a redirect (303) whose
//! page a browser would load next; each gateway caller loads its auction page once first, for the
//! CSRF cookie and token it then posts with every bid (a fresh `request_id` a bid, as a new page
//! gives).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auction_testkit::Kafka;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::closed_loop::start_bid_service;
use super::peer_process::{PeerProcess, parse_mysql_url};
use super::report::{histogram, latency_json, ms, rate, record};
use super::{Bench, Outcome};

/// The numbers of concurrent callers each peer is driven with; the best is reported.
const CONCURRENCY: [u64; 3] = [1, 4, 16];

/// Where each form goes.
#[derive(Debug, Clone)]
enum FormTarget {
    /// The demo's `POST /` (`name`, `price`).
    Demo { url: String },
    /// The gateway's `POST /auctions/{id}/bids`, each caller with the CSRF cookie and token its
    /// auction page gave it.
    Gateway {
        base: String,
        sessions: Arc<Vec<CsrfSession>>,
    },
}

/// The CSRF cookie and the form's token from one auction page.
#[derive(Debug, Clone)]
struct CsrfSession {
    cookie: String,
    token: String,
}

/// What one concurrency level measured.
#[derive(Debug)]
struct Level {
    callers: u64,
    accepted: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    latency: Histogram<u64>,
}

impl Level {
    fn bids_per_s(&self) -> f64 {
        rate(self.accepted, self.seconds)
    }

    fn json(&self) -> Value {
        json!({
            "callers": self.callers,
            "accepted": self.accepted,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": self.seconds,
            "bids_per_s": self.bids_per_s(),
            "latency": latency_json(&self.latency),
        })
    }
}

/// Bids posted at each concurrency level (between its callers).
fn bids_per_level(bench: &Bench) -> u64 {
    if bench.args.quick { 300 } else { 3000 }
}

/// 7b: the demo's Flask producer, then the gateway's form; the `demo_peer` and `gateway_form`
/// results.
pub(super) async fn measure(bench: &Bench, kafka: &Kafka) -> Outcome<(Value, Value)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let demo = demo(bench, kafka, &http).await?;
    let gateway = gateway_form(bench, &http).await?;
    Ok((demo, gateway))
}

/// The test virtualenv's Python (with Flask, confluent-kafka, mysql-connector-python):
/// `$AUCTION_PYTHON`, else `~/.cache/auction/venv/bin/python` as `.ci/test` creates it.
pub(super) fn python() -> Outcome<PathBuf> {
    if let Some(path) = std::env::var_os("AUCTION_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let fallback = home.join(".cache/auction/venv/bin/python");
    if fallback.is_file() {
        Ok(fallback)
    } else {
        Err(format!(
            "no Python for the original demo: AUCTION_PYTHON is not set and {} does not exist \
             (`.ci/test` creates that virtualenv from .ci/requirements.txt)",
            fallback.display()
        ))
    }
}

/// The command that runs the demo's `script` (in `system/tests/demo/`) on the test
/// virtualenv's Python with its `DEMO_*` settings pointed at this run's broker, registry and
/// MariaDB, `topic` and `table`.
pub(super) fn demo_command(
    bench: &Bench,
    script: &str,
    topic: &str,
    table: &str,
) -> Outcome<Command> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/demo");
    let database = parse_mysql_url(
        &bench.args.database_url,
        &format!("to run the demo's {script}"),
    )?;
    let mut command = Command::new(python()?);
    command
        .arg(dir.join(script))
        .current_dir(&dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("DEMO_BOOTSTRAP", &bench.bootstrap)
        .env("DEMO_REGISTRY_URL", &bench.registry_url)
        .env("DEMO_TOPIC", topic)
        .env("DEMO_TABLE", table)
        .env(
            "DEMO_MYSQL_HOST",
            database.host.trim_start_matches('[').trim_end_matches(']'),
        )
        .env("DEMO_MYSQL_PORT", database.port.to_string())
        .env("DEMO_MYSQL_USER", &database.user)
        .env("DEMO_MYSQL_PASSWORD", &database.password)
        .env("DEMO_MYSQL_DATABASE", &database.database);
    Ok(command)
}

/// A free port on 127.0.0.1 (for the demo, which takes its port from `DEMO_PORT`).
fn free_port() -> Outcome<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1 for the demo: {e}"))
}

/// Starts `system/tests/demo/app.py` with its settings pointed at this run's broker, registry
/// and database and `topic`; returns once it accepts connections.
async fn start_demo(bench: &Bench, topic: &str) -> Outcome<(PeerProcess, String)> {
    let port = free_port()?;
    let log = std::env::temp_dir().join(format!("auction-bench-demo-{}.log", bench.stamp));
    let mut command = demo_command(bench, "app.py", topic, &bench.table_name("demo_peer"))?;
    command.env("DEMO_PORT", port.to_string());
    let mut app = PeerProcess::spawn("the demo's app.py", command, log)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(stopped) = app.stopped() {
            return Err(format!("before serving, {stopped}"));
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the demo's app.py did not listen on {addr} within 60 s:\n{}",
                app.log_tail()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((app, format!("http://{addr}/")))
}

/// The demo's Flask producer at each concurrency.
async fn demo(bench: &Bench, kafka: &Kafka, http: &reqwest::Client) -> Outcome<Value> {
    let progress = &bench.progress;
    let topic = "bench-demo-peer";
    progress.say(format!(
        "7b. the original demo's Flask producer (app.py: one produce + flush a request) over HTTP, {} bids at each of {CONCURRENCY:?} callers",
        bids_per_level(bench)
    ));
    kafka
        .try_create_topic(topic, bench.sizes.partitions)
        .await?;
    let (app, url) = start_demo(bench, topic).await?;
    let target = FormTarget::Demo { url };
    // The first bid registers the schema; it is not counted.
    post_bid(http, &target, 0, u64::MAX)
        .await
        .map_err(|e| format!("the demo's first bid: {e}\n{}", app.log_tail()))?;
    let mut result = levels(bench, http, &target, "demo")
        .await
        .map_err(|e| format!("{e}\n{}", app.log_tail()))?;
    drop(app);
    result["configuration"] = json!(
        "system/tests/demo/app.py as the demo ships it: Flask's development server (threaded), \
         one confluent-kafka Producer with default settings, JSONSerializer against this run's \
         schema registry, one produce + flush() a request"
    );
    Ok(result)
}

/// The gateway's bid form over a bid service of the run.
async fn gateway_form(bench: &Bench, http: &reqwest::Client) -> Outcome<Value> {
    let progress = &bench.progress;
    progress.say(format!(
        "7b. PlaceBid through the gateway's bid form over HTTP, {} bids at each of {CONCURRENCY:?} callers",
        bids_per_level(bench)
    ));
    let stop = bench.shutdown.child_token();
    let service = start_bid_service(bench, "bench-gateway-form", stop.clone()).await?;
    let mut settings = auction_gateway::Settings::new(format!("http://{}", service.grpc_addr));
    settings.listen = ([127, 0, 0, 1], 0).into();
    settings.metrics_listen = ([127, 0, 0, 1], 0).into();
    // One client (this process) posts every bid: the per-client limits would refuse them.
    settings.client_posts_per_sec = 1_000_000;
    settings.client_streams_per_sec = 1_000_000;
    settings.max_live_streams_per_client = 1_000_000;
    let gateway = auction_gateway::spawn(settings, stop.clone())
        .await
        .map_err(|e| format!("cannot start the gateway: {e}"))?;
    let base = format!("http://{}", gateway.addr);
    let outcome = async {
        let callers = CONCURRENCY.into_iter().max().unwrap_or(1);
        let mut sessions = Vec::new();
        for caller in 0..callers {
            sessions.push(csrf_session(http, &base, &auction(caller, 0)).await?);
        }
        let target = FormTarget::Gateway {
            base,
            sessions: Arc::new(sessions),
        };
        post_bid(http, &target, 0, u64::MAX)
            .await
            .map_err(|e| format!("the gateway's first bid: {e}"))?;
        let accepted_before = gateway_accepted_bids();
        let mut result = levels(bench, http, &target, "gateway form").await?;
        let posted: u64 = result["levels"]
            .as_array()
            .map(|levels| levels.iter().filter_map(|l| l["accepted"].as_u64()).sum())
            .unwrap_or(0);
        let accepted = gateway_accepted_bids() - accepted_before;
        if accepted < posted as f64 {
            return Err(format!(
                "the gateway redirected {posted} bids but counted only {accepted} accepted \
                 ({BIDS_METRIC} in its metrics)"
            ));
        }
        result["configuration"] = json!(
            "auction_gateway::spawn in this process (default settings but the per-client post \
             and stream limits lifted), over one bid service of the run (default settings); \
             each caller loads its auction page once for the CSRF cookie and token"
        );
        Ok(result)
    }
    .await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), gateway.stopped()).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), service.stopped()).await;
    outcome
}

/// The gateway's counter of placed bids by outcome.
const BIDS_METRIC: &str = "gateway_bids_total";

/// The gateway's count of accepted bids so far, from this process's metrics.
fn gateway_accepted_bids() -> f64 {
    auction_process::metric_sum(BIDS_METRIC, Some("outcome=\"accepted\""))
}

/// Caller `caller`'s auction for its `k`-th bid (its own 8, as in 1).
fn auction(caller: u64, k: u64) -> String {
    format!("p{caller}-{}", k % 8)
}

/// Loads the auction page like a browser: its CSRF cookie and the form's token.
async fn csrf_session(http: &reqwest::Client, base: &str, auction: &str) -> Outcome<CsrfSession> {
    let url = format!("{base}/auctions/{auction}");
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let cookie = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with("auction_csrf="))
        .map(str::to_owned)
        .ok_or_else(|| format!("GET {url} set no auction_csrf cookie"))?;
    let page = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let token = input_value(&page, "csrf_token")
        .ok_or_else(|| format!("GET {url}: the page has no csrf_token input"))?;
    Ok(CsrfSession { cookie, token })
}

/// The `value` attribute of the input named `name` in `html`.
fn input_value(html: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[start..];
    let value = rest.find("value=\"")? + "value=\"".len();
    let end = rest[value..].find('"')?;
    Some(rest[value..value + end].to_owned())
}

/// Caller `caller` posts its `k`-th bid (`k` = `u64::MAX`: a warm-up bid); whether it was
/// accepted.
async fn post_bid(
    http: &reqwest::Client,
    target: &FormTarget,
    caller: u64,
    k: u64,
) -> Result<(), String> {
    let name = format!("Bidder {}", k % 997);
    let price = if k == u64::MAX { 1 } else { k / 8 + 2 };
    match target {
        FormTarget::Demo { url } => {
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("name", &name)
                .append_pair("price", &price.to_string())
                .finish();
            let response = http
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() && text.trim() == "accepted" {
                Ok(())
            } else {
                Err(format!("the demo answered {status}: {}", text.trim()))
            }
        }
        FormTarget::Gateway { base, sessions } => {
            let session = &sessions[usize::try_from(caller).unwrap_or(0) % sessions.len().max(1)];
            let auction = if k == u64::MAX {
                "warm-up".to_owned()
            } else {
                auction(caller, k)
            };
            let url = format!("{base}/auctions/{auction}/bids");
            let body = form_urlencoded::Serializer::new(String::new())
                .append_pair("csrf_token", &session.token)
                .append_pair("request_id", &uuid::Uuid::new_v4().to_string())
                .append_pair("name", &name)
                .append_pair("price", &price.to_string())
                .finish();
            let response = http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cookie", &session.cookie)
                .body(body)
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            let status = response.status();
            let _ = response.bytes().await;
            if status == reqwest::StatusCode::SEE_OTHER {
                Ok(())
            } else {
                Err(format!("the gateway answered {status} to POST {url}"))
            }
        }
    }
}

/// `target` at each of [`CONCURRENCY`]: every level's numbers, and the best level's as the
/// result's own `bids_per_s`, `latency` and `best_callers`.
async fn levels(
    bench: &Bench,
    http: &reqwest::Client,
    target: &FormTarget,
    label: &str,
) -> Outcome<Value> {
    let total = bids_per_level(bench);
    let mut measured = Vec::new();
    // Each level bids on from where the one before stopped, so that prices keep rising.
    let mut first_k = 0;
    for callers in CONCURRENCY {
        let level = closed_loop(bench, http, target, callers, total, first_k, label).await?;
        first_k += total;
        bench.progress.say(format!(
            "   {label}, {callers} caller(s): {:.0} bids/s, p50 {:.2} ms, p99 {:.2} ms",
            level.bids_per_s(),
            ms(&level.latency, 0.5),
            ms(&level.latency, 0.99)
        ));
        measured.push(level);
    }
    let best = measured
        .iter()
        .max_by(|a, b| a.bids_per_s().total_cmp(&b.bids_per_s()))
        .ok_or("no concurrency level was measured")?;
    Ok(json!({
        "best_callers": best.callers,
        "bids_per_s": best.bids_per_s(),
        "latency": latency_json(&best.latency),
        "levels": measured.iter().map(Level::json).collect::<Vec<_>>(),
    }))
}

/// `callers` tasks post `total` bids between them, each one after another; caller `c`'s bids
/// are numbered from `first_k` on.
async fn closed_loop(
    bench: &Bench,
    http: &reqwest::Client,
    target: &FormTarget,
    callers: u64,
    total: u64,
    first_k: u64,
    label: &str,
) -> Outcome<Level> {
    let accepted = Arc::new(AtomicU64::new(0));
    let ticker = bench.progress.ticker(
        &format!("{label}, {callers} caller(s)"),
        Arc::clone(&accepted),
        total,
    );
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for caller in 0..callers {
        let (http, target, accepted) = (http.clone(), target.clone(), Arc::clone(&accepted));
        let share = total / callers + u64::from(caller < total % callers);
        tasks.spawn(async move {
            let mut latency = histogram();
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            for k in first_k..first_k + share {
                let sent = Instant::now();
                match post_bid(&http, &target, caller, k).await {
                    Ok(()) => {
                        record(&mut latency, sent.elapsed());
                        ok += 1;
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (ok, errors, first_error, latency)
        });
    }
    let mut level = Level {
        callers,
        accepted: 0,
        errors: 0,
        first_error: None,
        seconds: 0.0,
        latency: histogram(),
    };
    while let Some(joined) = tasks.join_next().await {
        let (ok, errors, first_error, latency) =
            joined.map_err(|e| format!("a {label} caller failed: {e}"))?;
        level.accepted += ok;
        level.errors += errors;
        if level.first_error.is_none() {
            level.first_error = first_error;
        }
        let _ = level.latency.add(&latency);
    }
    level.seconds = started.elapsed().as_secs_f64();
    ticker.cancel();
    if level.errors > 0 {
        return Err(format!(
            "{label}, {callers} caller(s): {} of {total} bids failed; the first: {}",
            level.errors,
            level.first_error.as_deref().unwrap_or("none")
        ));
    }
    Ok(level)
}
