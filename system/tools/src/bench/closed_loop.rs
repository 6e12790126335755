//! 1 and 3: `PlaceBid` over gRPC in a closed loop against Apache Kafka, then every bid on one
//! hot auction; bids/s and latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auction_bid_service::Settings;
use auction_proto::v1::PlaceBidRequest;
use auction_proto::v1::bid_service_client::BidServiceClient;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::report::{
    CpuMeter, histogram, latency_json, ms, rate, record, service_quantiles, service_quantiles_ms,
};
use super::{Bench, Outcome, Progress};

/// What 1 and 3 measured: their results, and the closed loop's rate to compare others with.
#[derive(Debug)]
pub(super) struct ClosedLoops {
    /// The `place_bid` results.
    pub(super) place_bid: Value,
    /// The `hot_auction` results.
    pub(super) hot_auction: Value,
    /// 1 and 3 with 1, 2 and 3 replicas.
    pub(super) replicas: Value,
    /// Accepted `PlaceBid` calls a second in the closed loop (one replica).
    pub(super) bids_per_s: f64,
}

/// 1 and 3 with 1, 2 and 3 replicas, each count on a fresh topic: the callers spread over the
/// replicas round robin (as behind a load balancer that knows nothing of ownership), so a
/// replica forwards the calls whose auction another replica owns.
pub(super) async fn measure(bench: &Bench) -> Outcome<ClosedLoops> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    let mut place_bid = Value::Null;
    let mut hot_auction = Value::Null;
    let mut bids_per_s = 0.0;
    let mut scaled = Vec::new();
    for replicas in 1..=MAX_REPLICAS {
        progress.say(format!(
            "1. PlaceBid over gRPC, closed loop, against Apache Kafka, {replicas} replica(s)"
        ));
        let stop = bench.shutdown.child_token();
        let services =
            start_replicas(bench, &format!("bench-place-{replicas}"), replicas, &stop).await?;
        let addrs: Vec<_> = services.iter().map(|s| s.grpc_addr).collect();
        let meter = CpuMeter::start(bench.kafka_pid);
        let place = closed_loop(
            &addrs,
            sizes.callers,
            sizes.place_bids,
            false,
            progress,
            "PlaceBid",
        )
        .await?;
        let place_cpu = meter.json();
        let breakdown = json!({
            "commit": service_quantiles_ms(auction_bid_service::metrics::COMMIT_SECONDS),
            "bids_per_transaction": service_quantiles(auction_bid_service::metrics::BIDS_PER_TRANSACTION),
        });
        progress.say(format!(
            "   {:.0} bids/s, p99 {:.2} ms; inside the service: {breakdown}",
            rate(place.accepted, place.seconds),
            ms(&place.latency, 0.99)
        ));
        progress.say(format!("3. one hot auction, {replicas} replica(s)"));
        let meter = CpuMeter::start(bench.kafka_pid);
        let hot = closed_loop(
            &addrs,
            sizes.hot_callers,
            sizes.hot_bids,
            true,
            progress,
            "hot auction",
        )
        .await?;
        let hot_cpu = meter.json();
        progress.say(format!(
            "   {:.0} accepted bids/s ({} overtaken and re-bid)",
            rate(hot.accepted, hot.seconds),
            hot.rejected
        ));
        stop.cancel();
        for service in services {
            let _ = tokio::time::timeout(Duration::from_secs(30), service.stopped()).await;
        }
        scaled.push(json!({
            "replicas": replicas,
            "many_auctions": place.json(sizes.callers),
            "hot_auction": hot.json(sizes.hot_callers),
        }));
        if replicas == 1 {
            place_bid = place.json(sizes.callers);
            place_bid["inside_the_service"] = breakdown;
            place_bid["cpu"] = place_cpu;
            hot_auction = hot.json(sizes.hot_callers);
            hot_auction["cpu"] = hot_cpu;
            bids_per_s = rate(place.accepted, place.seconds);
        }
    }
    Ok(ClosedLoops {
        place_bid,
        hot_auction,
        replicas: Value::Array(scaled),
        bids_per_s,
    })
}

/// Replica counts of the scale-out measurement.
const MAX_REPLICAS: usize = 3;

/// `count` bid services of the run on `topic` (one consumer group), started one after another;
/// returns once every replica is SERVING and each partition has exactly one owner among them
/// (every replica owning at least one while there are partitions enough).
pub(super) async fn start_replicas(
    bench: &Bench,
    topic: &str,
    count: usize,
    shutdown: &CancellationToken,
) -> Outcome<Vec<auction_bid_service::RunningBidService>> {
    let mut services = Vec::new();
    for _ in 0..count {
        services.push(start_bid_service(bench, topic, shutdown.clone()).await?);
    }
    let partitions = usize::try_from(bench.sizes.partitions).unwrap_or(1);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let owned: Vec<Vec<i32>> = services.iter().map(|s| s.owned_partitions()).collect();
        let mut all: Vec<i32> = owned.iter().flatten().copied().collect();
        all.sort_unstable();
        let each_owns = count > partitions || owned.iter().all(|o| !o.is_empty());
        if all.len() == partitions && all.windows(2).all(|w| w[0] != w[1]) && each_owns {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the {count} replicas on {topic} did not settle their partitions within 120 s: {owned:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for service in &mut services {
        if !service.wait_caught_up(Duration::from_secs(60)).await {
            return Err(format!("a replica on {topic} is not SERVING after 60 s"));
        }
    }
    Ok(services)
}

/// A client of the bid service at `addr`.
pub(super) async fn connect(addr: std::net::SocketAddr) -> Outcome<BidServiceClient<Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| format!("cannot connect to the bid service at {addr}: {e}"))?;
    Ok(BidServiceClient::new(channel))
}

/// Clients over `ceil(streams / 64)` connections, so that no connection carries more calls than
/// a server's default concurrent-stream limit.
pub(super) async fn clients(
    addr: std::net::SocketAddr,
    streams: u64,
) -> Outcome<Vec<BidServiceClient<Channel>>> {
    let mut clients = Vec::new();
    for _ in 0..streams.div_ceil(64).max(1) {
        clients.push(connect(addr).await?);
    }
    Ok(clients)
}

/// A bid service of the run on `topic` (with the run's partitions and `--kafka-property`s),
/// caught up with its topic.
pub(super) async fn start_bid_service(
    bench: &Bench,
    topic: &str,
    shutdown: CancellationToken,
) -> Outcome<auction_bid_service::RunningBidService> {
    let mut settings = Settings::new(&bench.bootstrap, &bench.registry_url);
    for (name, value) in &bench.args.kafka_properties {
        settings.kafka.set(name, value);
    }
    if let Some(ms) = bench.args.commit_interval_ms {
        settings.commit_interval = Duration::from_millis(ms);
    }
    settings.grpc_listen = ([127, 0, 0, 1], 0).into();
    settings.metrics_listen = ([127, 0, 0, 1], 0).into();
    settings.topic = topic.to_owned();
    // A group (and so transactional ids) of the topic's own: runs on other topics never fence
    // these owners.
    settings.group_id = format!("bench-{topic}-{}", bench.stamp);
    settings.topic_partitions = bench.sizes.partitions;
    // Every call of the run comes from this process on loopback, like a gateway's: its watch
    // streams (4's `--watched-auctions`) count only in the replica's total.
    settings.watch_streams_exempt_clients = vec![std::net::Ipv4Addr::LOCALHOST.into()];
    let mut service = auction_bid_service::spawn(settings, shutdown)
        .await
        .map_err(|e| format!("cannot start a bid service on {topic}: {e}"))?;
    if !service.wait_caught_up(Duration::from_secs(120)).await {
        return Err(format!(
            "the bid service on {topic} did not catch up within 120 s"
        ));
    }
    Ok(service)
}

/// What a closed loop measured.
#[derive(Debug)]
pub(super) struct LoadResult {
    pub(super) accepted: u64,
    rejected: u64,
    errors: u64,
    first_error: Option<String>,
    pub(super) seconds: f64,
    pub(super) latency: Histogram<u64>,
}

impl LoadResult {
    pub(super) fn json(&self, callers: u64) -> Value {
        json!({
            "callers": callers,
            "accepted": self.accepted,
            "rejected_too_low": self.rejected,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": self.seconds,
            "bids_per_s": self.accepted as f64 / self.seconds.max(1e-9),
            "latency": latency_json(&self.latency),
        })
    }
}

/// Closed loop: `callers` tasks, spread over the replicas at `addrs`, each place bids one after
/// another. With `hot`, every bid goes to
/// one auction at the next price (a caller whose price was overtaken bids again, higher) until
/// `total` bids were accepted; otherwise each caller bids on its own 8 auctions. The servers at
/// `addrs` are bid services, or the echo (1b) that answers `PlaceBid` at once.
pub(super) async fn closed_loop(
    addrs: &[std::net::SocketAddr],
    callers: u64,
    total: u64,
    hot: bool,
    progress: &Progress,
    label: &str,
) -> Outcome<LoadResult> {
    // Caller i calls replica i mod replicas.
    let replicas = addrs.len() as u64;
    let mut per_replica = Vec::new();
    for (r, addr) in addrs.iter().enumerate() {
        let callers_here = callers / replicas + u64::from((r as u64) < callers % replicas);
        per_replica.push(clients(*addr, callers_here.max(1)).await?);
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let next_price = Arc::new(AtomicU64::new(1));
    let failures = Arc::new(AtomicU64::new(0));
    let ticker = progress.ticker(label, Arc::clone(&accepted), total);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for caller in 0..callers {
        let here = &per_replica[(caller % replicas) as usize];
        let mut client = here[((caller / replicas) as usize) % here.len()].clone();
        let accepted = Arc::clone(&accepted);
        let next_price = Arc::clone(&next_price);
        let failures = Arc::clone(&failures);
        let share = total / callers + u64::from(caller < total % callers);
        tasks.spawn(async move {
            let mut latency = histogram();
            let (mut ok, mut rejected, mut errors, mut first_error) = (0u64, 0u64, 0u64, None);
            let mut k = 0u64;
            loop {
                if hot {
                    if accepted.load(Ordering::Relaxed) >= total {
                        break;
                    }
                } else if k >= share {
                    break;
                }
                if failures.load(Ordering::Relaxed) > 1000 {
                    break;
                }
                let (auction, price) = if hot {
                    ("hot".to_owned(), next_price.fetch_add(1, Ordering::Relaxed))
                } else {
                    (format!("p{caller}-{}", k % 8), k / 8 + 1)
                };
                k += 1;
                let request = PlaceBidRequest {
                    auction_id: auction,
                    name: format!("Bidder {}", k % 997),
                    price: i64::try_from(price).unwrap_or(i64::MAX),
                    request_id: String::new(),
                    ..Default::default()
                };
                let sent = Instant::now();
                match client.place_bid(request).await {
                    Ok(_) => {
                        record(&mut latency, sent.elapsed());
                        ok += 1;
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                        rejected += 1;
                    }
                    Err(status) => {
                        errors += 1;
                        failures.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| status.to_string());
                    }
                }
            }
            (ok, rejected, errors, first_error, latency)
        });
    }
    let mut result = LoadResult {
        accepted: 0,
        rejected: 0,
        errors: 0,
        first_error: None,
        seconds: 0.0,
        latency: histogram(),
    };
    while let Some(joined) = tasks.join_next().await {
        let (ok, rejected, errors, first_error, latency) =
            joined.map_err(|e| format!("a caller failed: {e}"))?;
        result.accepted += ok;
        result.rejected += rejected;
        result.errors += errors;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
        let _ = result.latency.add(&latency);
    }
    result.seconds = started.elapsed().as_secs_f64();
    ticker.cancel();
    if result.accepted == 0 {
        return Err(format!(
            "{label}: no bid was accepted ({} errors; first: {})",
            result.errors,
            result.first_error.as_deref().unwrap_or("none")
        ));
    }
    Ok(result)
}
