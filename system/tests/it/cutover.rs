//! Cutting over a running demo deployment (README, "Migrating from the demo"), in each order,
//! while a bidder keeps bidding: the demo itself rebuilt from its README (`system/tests/demo/`:
//! the Flask producer with one produce and one flush per request, `db_writer.py` and
//! `file_writer.py` with the demo's consumer settings), Apache Kafka, MariaDB, and the product's
//! processes. At the end the demo's table and CSV file hold every accepted bid exactly once, and
//! the bidder was never refused for longer than the steps allow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auction_proto::v1::PlaceBidRequest;
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_testkit::{Kafka, TestRegistry, free_port, python};
use tokio_util::sync::CancellationToken;

use crate::support::{Process, binary, eventually, mysql_query, repo, unique};

/// The longest a bidder may be refused: while the last replica in the demo-compatible form hands
/// its partitions to a replica in the product's form (the README's step says "a few seconds").
const LONGEST_REFUSAL: Duration = Duration::from_secs(15);

/// Where the bidder sends its bids.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Door {
    /// The demo's Flask form (`POST /`).
    Demo(String),
    /// The bid service's gRPC API.
    BidService(String),
}

/// What the bidder did.
#[derive(Debug, Default)]
struct Bidding {
    /// Accepted bids: name → price.
    accepted: BTreeMap<String, i64>,
    /// How many were accepted through the demo's form.
    through_demo: usize,
    /// The longest time between a refusal and the next acceptance.
    longest_refusal: Duration,
    /// Every refusal of a second or more: the door, and how long.
    long_refusals: Vec<(Door, Duration)>,
}

/// One bidder placing bids one after another on the demo's `default` auction (names
/// `bidder-<n>`, prices rising by one), through whichever door is open; a refused bid is sent
/// again (through the bid service with the same request id, so it counts once).
struct Bidder {
    door: Arc<Mutex<Door>>,
    accepted: Arc<AtomicUsize>,
    last_refusal: Arc<Mutex<String>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Bidding>,
}

impl Bidder {
    fn start(door: Door) -> Self {
        let door = Arc::new(Mutex::new(door));
        let accepted = Arc::new(AtomicUsize::new(0));
        let last_refusal = Arc::new(Mutex::new(String::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(bid_until(
            Arc::clone(&door),
            Arc::clone(&accepted),
            Arc::clone(&last_refusal),
            stop.clone(),
        ));
        Self {
            door,
            accepted,
            last_refusal,
            stop,
            task,
        }
    }

    fn switch(&self, door: Door) {
        *self.door.lock().expect("door") = door;
    }

    /// Waits until `count` more bids were accepted (at most a minute).
    async fn bids_accepted(&self, count: usize) {
        let target = self.accepted.load(Ordering::Relaxed) + count;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.accepted.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "the bidder placed {} bids, waiting for {target}; the last refusal: {}",
                self.accepted.load(Ordering::Relaxed),
                self.last_refusal.lock().expect("refusal")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn finish(self) -> Bidding {
        self.stop.cancel();
        self.task.await.expect("the bidder")
    }
}

async fn bid_until(
    door: Arc<Mutex<Door>>,
    accepted_count: Arc<AtomicUsize>,
    last_refusal: Arc<Mutex<String>>,
    stop: CancellationToken,
) -> Bidding {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let mut bidding = Bidding::default();
    let mut grpc: Option<(String, BidServiceClient<tonic::transport::Channel>)> = None;
    let mut refused_since: Option<Instant> = None;
    for n in 1.. {
        if stop.is_cancelled() {
            break;
        }
        let name = format!("bidder-{n}");
        let price = 100 + n;
        let request_id = uuid::Uuid::new_v4().to_string();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("name", &name)
            .append_pair("price", &price.to_string())
            .finish();
        loop {
            let current = door.lock().expect("door").clone();
            let accepted = match &current {
                Door::Demo(url) => match http
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.clone())
                    .send()
                    .await
                {
                    Ok(response) if response.status().is_success() => Ok(()),
                    Ok(response) => Err(format!("the demo answered {}", response.status())),
                    Err(e) => Err(format!("the demo cannot be reached: {e}")),
                },
                Door::BidService(url) => {
                    if grpc.as_ref().is_none_or(|(connected, _)| connected != url) {
                        grpc = BidServiceClient::connect(url.clone())
                            .await
                            .ok()
                            .map(|client| (url.clone(), client));
                    }
                    match grpc.as_mut() {
                        Some((_, client)) => {
                            let mut request = tonic::Request::new(PlaceBidRequest {
                                auction_id: "default".into(),
                                name: name.clone(),
                                price,
                                request_id: request_id.clone(),
                                ..Default::default()
                            });
                            request.set_timeout(Duration::from_secs(5));
                            client
                                .place_bid(request)
                                .await
                                .map(drop)
                                .map_err(|status| format!("PlaceBid: {status}"))
                        }
                        None => Err(format!("cannot connect to {url}")),
                    }
                }
            };
            if let Err(refusal) = &accepted {
                *last_refusal.lock().expect("refusal") =
                    format!("bid {n} at {current:?}: {refusal}");
            } else {
                if let Some(since) = refused_since.take() {
                    let refused = since.elapsed();
                    bidding.longest_refusal = bidding.longest_refusal.max(refused);
                    if refused >= Duration::from_secs(1) {
                        bidding.long_refusals.push((current.clone(), refused));
                    }
                }
                if matches!(current, Door::Demo(_)) {
                    bidding.through_demo += 1;
                }
                bidding.accepted.insert(name.clone(), price);
                accepted_count.fetch_add(1, Ordering::Relaxed);
                break;
            }
            refused_since.get_or_insert_with(Instant::now);
            if stop.is_cancelled() && refused_since.is_some_and(|s| s.elapsed() > LONGEST_REFUSAL) {
                // Give up on a bid that cannot be placed at the end; the assertion reports it.
                bidding.longest_refusal = bidding
                    .longest_refusal
                    .max(refused_since.map_or(Duration::ZERO, |s| s.elapsed()));
                return bidding;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bidding
}

/// A scenario's own names: topic, table, CSV file, consumer groups, ports.
struct Deployment {
    logs: tempfile::TempDir,
    kafka: Kafka,
    registry: TestRegistry,
    topic: String,
    table: String,
    results_table: String,
    csv: PathBuf,
    demo_port: u16,
}

impl Deployment {
    async fn start() -> Self {
        let kafka = Kafka::start();
        let topic = unique("auction");
        // The demo's README: "Topic `auction` created".
        kafka.create_topic(&topic, 3).await;
        let logs = tempfile::tempdir().expect("log dir");
        Self {
            csv: logs.path().join("output.csv"),
            logs,
            kafka,
            registry: TestRegistry::start().await,
            table: unique("bid"),
            results_table: unique("auction_result"),
            topic,
            demo_port: free_port(),
        }
    }

    fn demo_group(&self, program: &str) -> String {
        format!("{}-{program}", self.topic)
    }

    /// One of the demo's programs, with the demo's settings pointed at this deployment.
    fn demo(&self, program: &'static str) -> Process {
        let mut command = Command::new(python());
        command
            .arg(demo_dir().join(format!("{program}.py")))
            .current_dir(demo_dir())
            .env("PYTHONUNBUFFERED", "1")
            .env("DEMO_BOOTSTRAP", &self.kafka.bootstrap)
            .env("DEMO_REGISTRY_URL", &self.registry.url)
            .env("DEMO_TOPIC", &self.topic)
            .env("DEMO_GROUP", self.demo_group(program))
            .env("DEMO_TABLE", &self.table)
            .env("DEMO_CSV", &self.csv)
            .env("DEMO_PORT", self.demo_port.to_string());
        Process::spawn(program, command, self.logs.path())
    }

    fn demo_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.demo_port)
    }

    /// The bid service on its own ports; `compatible`: bids in the demo-compatible form.
    fn bid_service(&self, name: &'static str, compatible: bool) -> (Process, String, u16) {
        let (grpc, metrics) = (free_port(), free_port());
        let mut command = Command::new(binary("bid-service"));
        command
            .current_dir(self.logs.path())
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.kafka.bootstrap)
            .env("SCHEMA_REGISTRY_URL", &self.registry.url)
            .env("AUCTION_TOPIC", &self.topic)
            .env("BID_SERVICE_LISTEN", format!("127.0.0.1:{grpc}"))
            .env("BID_SERVICE_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
            .env("AUCTION_DEMO_COMPATIBLE", compatible.to_string())
            .env("RUST_LOG", "info");
        (
            Process::spawn(name, command, self.logs.path()),
            format!("http://127.0.0.1:{grpc}"),
            metrics,
        )
    }

    /// The product's sink `kind` on the demo's table or file, taking over from `demo_group`.
    fn sink(&self, name: &'static str, kind: &str, demo_group: &str) -> (Process, u16) {
        let metrics = free_port();
        let mut command = Command::new(binary("auction-sink"));
        command
            .current_dir(self.logs.path())
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.kafka.bootstrap)
            .env("SCHEMA_REGISTRY_URL", &self.registry.url)
            .env("AUCTION_TOPIC", &self.topic)
            .env("SINK_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
            .env("SINK_START_FROM", format!("group:{demo_group}"))
            .env("RUST_LOG", "info");
        match kind {
            "mysql" => command
                .env("DATABASE_URL", "mysql://root@127.0.0.1:3306/test")
                .env("SINK_TABLE", &self.table)
                .env("SINK_RESULTS_TABLE", &self.results_table),
            _ => command.env("SINK_CSV_PATH", &self.csv),
        };
        command.arg(kind);
        (Process::spawn(name, command, self.logs.path()), metrics)
    }

    /// The product's MySQL and CSV sinks on the demo's table and file, each taking over from the
    /// demo's consumer that wrote there; once both are ready.
    async fn take_over_with_sinks(&self) -> (Process, Process) {
        let (mysql, mysql_metrics) =
            self.sink("sink-mysql", "mysql", &self.demo_group("db_writer"));
        let (csv, csv_metrics) = self.sink("sink-csv", "csv", &self.demo_group("file_writer"));
        wait_ready(&mysql, mysql_metrics).await;
        wait_ready(&csv, csv_metrics).await;
        (mysql, csv)
    }

    /// Names of the bids in the demo's table, with how often each appears, and the sum of prices.
    fn table_bids(&self) -> (BTreeMap<String, usize>, i64) {
        let mut names = BTreeMap::new();
        let mut sum = 0;
        for line in mysql_query(&format!("SELECT name, price FROM {}", self.table)).lines() {
            if let Some((name, price)) = line.split_once('\t') {
                *names.entry(name.to_owned()).or_insert(0) += 1;
                sum += price.trim().parse::<i64>().unwrap_or(0);
            }
        }
        (names, sum)
    }

    /// The same for the CSV file (the sink's layout: the name is the third cell, the price the
    /// fourth; the demo's layout: the first and second).
    fn csv_bids(&self) -> (BTreeMap<String, usize>, i64) {
        let mut names = BTreeMap::new();
        let mut sum = 0;
        let Ok(text) = std::fs::read_to_string(&self.csv) else {
            return (names, 0);
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        for row in reader.records().map_while(Result::ok) {
            let (name, price) = match row.len() {
                7 if &row[0] != "bid_id" => (&row[2], &row[3]),
                3 => (&row[0], &row[1]),
                _ => continue,
            };
            *names.entry(name.to_owned()).or_insert(0) += 1;
            sum += price.parse::<i64>().unwrap_or(0);
        }
        (names, sum)
    }

    /// Stops the bidder and checks that it was never refused for longer than the steps allow
    /// and that the table and the CSV file hold every accepted bid exactly once (printing counts
    /// and sums), waiting for the sinks to catch up. `logs`: for a failure's message.
    async fn finish(&self, scenario: &str, bidder: Bidder, logs: &str) {
        let bidding = bidder.finish().await;
        self.assert_every_bid_once(&bidding, scenario).await;
        assert!(
            bidding.longest_refusal <= LONGEST_REFUSAL,
            "{scenario}: the bidder was refused for {:?}\n{logs}",
            bidding.longest_refusal,
        );
    }

    async fn assert_every_bid_once(&self, bidding: &Bidding, scenario: &str) {
        let expected: BTreeMap<String, usize> = bidding
            .accepted
            .keys()
            .map(|name| (name.clone(), 1))
            .collect();
        let expected_sum: i64 = bidding.accepted.values().sum();
        let caught_up =
            eventually(|| self.table_bids().0 == expected && self.csv_bids().0 == expected).await;
        let (table, table_sum) = self.table_bids();
        let (csv, csv_sum) = self.csv_bids();
        println!(
            "{scenario}: accepted {} bids ({} through the demo's form), sum of prices {expected_sum}; \
             {}: {} rows, {} distinct names, sum {table_sum}; {}: {} rows, {} distinct names, sum {csv_sum}; \
             longest refusal {:?}; refusals of a second or more: {:?}",
            expected.len(),
            bidding.through_demo,
            self.table,
            table.values().sum::<usize>(),
            table.len(),
            self.csv.display(),
            csv.values().sum::<usize>(),
            csv.len(),
            bidding.longest_refusal,
            bidding.long_refusals,
        );
        let differences = |found: &BTreeMap<String, usize>| {
            let twice: Vec<_> = found.iter().filter(|(_, n)| **n > 1).collect();
            let missing: Vec<_> = expected
                .keys()
                .filter(|k| !found.contains_key(*k))
                .collect();
            let extra: Vec<_> = found
                .keys()
                .filter(|k| !expected.contains_key(*k))
                .collect();
            format!(
                "written more than once: {twice:?}; missing: {missing:?}; not accepted: {extra:?}"
            )
        };
        assert!(
            caught_up,
            "{scenario}: the table: {}\nthe CSV file: {}",
            differences(&table),
            differences(&csv)
        );
        assert_eq!((table_sum, csv_sum), (expected_sum, expected_sum));
    }
}

/// The last lines of a log, for a failure's message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn demo_dir() -> PathBuf {
    repo().join("system/tests/demo")
}

/// Waits until `process`'s log contains `text`, at most 60 s.
async fn wait_for_log(process: &Process, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !process.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "{} did not say {text:?}:\n{}",
            process.name,
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `/readyz` on `port` answers 200, at most 90 s.
async fn wait_ready(process: &Process, port: u16) {
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if reqwest::get(&url)
            .await
            .is_ok_and(|response| response.status().is_success())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not become ready:\n{}",
            process.name,
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops one of the demo's consumers as its user would (Ctrl-C: it closes its consumer, which
/// commits what it consumed) and checks that it did.
fn stop_demo_consumer(process: Process) -> String {
    let (status, log) = process.terminate();
    assert!(status.success() && log.contains("closed"), "{log}");
    assert!(
        !log.contains("cannot deserialize"),
        "the demo's consumer refused a record:\n{log}"
    );
    log
}

/// The demo running with bids flowing through it: its producer and both consumers.
async fn running_demo(deployment: &Deployment) -> (Process, Process, Process, Bidder) {
    let db_writer = deployment.demo("db_writer");
    let file_writer = deployment.demo("file_writer");
    let app = deployment.demo("app");
    wait_for_log(&app, "listening").await;
    wait_for_log(&db_writer, "assigned").await;
    wait_for_log(&file_writer, "assigned").await;
    let bidder = Bidder::start(Door::Demo(deployment.demo_url()));
    bidder.bids_accepted(20).await;
    wait_for_log(&db_writer, "wrote bidder-").await;
    wait_for_log(&file_writer, "wrote bidder-").await;
    (app, db_writer, file_writer, bidder)
}

/// Producer first: the bid service in the demo-compatible form replaces the Flask app while
/// the demo's consumers keep reading; then the product's sinks take over from the demo's
/// consumer groups; then the compatible form is switched off (a replica in the product's form
/// takes the partitions over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_over_producer_first_while_bids_keep_coming() {
    let deployment = Deployment::start().await;
    let (app, db_writer, file_writer, bidder) = running_demo(&deployment).await;

    // 1. The bid service, writing bids the demo's consumers can read, beside the Flask app.
    let (compatible, compatible_url, compatible_metrics) =
        deployment.bid_service("bid-service-compatible", true);
    wait_ready(&compatible, compatible_metrics).await;
    bidder.switch(Door::BidService(compatible_url));
    // Once a bid went through the new door, none is in flight through the old one: stopping
    // the app cannot cut a request whose bid Kafka took (the bidder would then send it again,
    // and the bid service rightly refuse it as too low).
    bidder.bids_accepted(2).await;
    let _ = app.terminate();
    bidder.bids_accepted(20).await;
    // The demo's consumers read the bid service's bids with their own deserializer.
    let after_switch = |log: &str| {
        log.lines()
            .filter_map(|line| line.strip_prefix("wrote bidder-"))
            .count()
    };
    let written_before = after_switch(&db_writer.log());
    bidder.bids_accepted(10).await;
    assert!(
        after_switch(&db_writer.log()) > written_before,
        "the demo's db_writer stopped writing:\n{}",
        db_writer.log()
    );

    // 2. The demo's consumers stop; the product's sinks continue where they stopped.
    let db_log = stop_demo_consumer(db_writer);
    let file_log = stop_demo_consumer(file_writer);
    assert!(after_switch(&db_log) > 0 && after_switch(&file_log) > 0);
    let (mysql_sink, csv_sink) = deployment.take_over_with_sinks().await;
    bidder.bids_accepted(20).await;

    // 3. The compatible form is switched off: a replica in the product's form joins, the bidder
    // moves to it, and the compatible one stops.
    let (product, product_url, product_metrics) =
        deployment.bid_service("bid-service-product", false);
    wait_ready(&product, product_metrics).await;
    bidder.switch(Door::BidService(product_url));
    let (stopped, compatible_log) = compatible.terminate();
    // The handover really happened: the compatible replica is gone, having stopped cleanly.
    assert!(stopped.success(), "{}", tail(&compatible_log));
    bidder.bids_accepted(30).await;

    let logs = format!(
        "the compatible replica:\n{}\nthe product's replica:\n{}",
        tail(&compatible_log),
        tail(&product.log())
    );
    deployment.finish("producer first", bidder, &logs).await;
    drop((mysql_sink, csv_sink, product));
}

/// Sinks first: the demo's consumers stop and the product's sinks take over from their
/// consumer groups while the Flask app keeps producing; then the bid service replaces the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_over_sinks_first_while_bids_keep_coming() {
    let deployment = Deployment::start().await;
    let (app, db_writer, file_writer, bidder) = running_demo(&deployment).await;

    // 1. The demo's consumers stop; the product's sinks continue where they stopped, reading
    // the demo's producer's bids.
    stop_demo_consumer(db_writer);
    stop_demo_consumer(file_writer);
    let (mysql_sink, csv_sink) = deployment.take_over_with_sinks().await;
    bidder.bids_accepted(20).await;

    // 2. The bid service (in the product's form: nobody reads the topic with the demo's
    // schema any more) replaces the Flask app.
    let (service, service_url, service_metrics) = deployment.bid_service("bid-service", false);
    wait_ready(&service, service_metrics).await;
    bidder.switch(Door::BidService(service_url));
    // Once a bid went through the new door, none is in flight through the old one: stopping
    // the app cannot cut a request whose bid Kafka took (the bidder would then send it again,
    // and the bid service rightly refuse it as too low).
    bidder.bids_accepted(2).await;
    let _ = app.terminate();
    bidder.bids_accepted(30).await;

    let logs = format!("the bid service:\n{}", tail(&service.log()));
    deployment.finish("sinks first", bidder, &logs).await;
    // The demo's file was upgraded in place and its original kept beside it.
    let mut backup = deployment.csv.clone().into_os_string();
    backup.push(".demo");
    assert!(Path::new(&backup).is_file());
    drop((mysql_sink, csv_sink, service));
}
