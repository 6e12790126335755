//! 4: open loop at a fixed offered rate against replica A of two: `PlaceBid` latency, apart for
//! the auctions A owns and those it forwards to replica B; `PlaceBid` OK → `HighestBid` (sampled)
//! and → `WatchAuction` update on B; and → the row in MariaDB (the MySQL sink running).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{HighestBidRequest, PlaceBidRequest, WatchAuctionRequest};
use hdrhistogram::Histogram;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::closed_loop::{clients, start_replicas};
use super::limits::mysql_drop;
use super::report::{histogram, latency_json, record};
use super::sinks::{mysql_destination, sink_settings};
use super::{Bench, Outcome, Sizes};

/// 4: replica A takes bids on a fresh topic, replica B is watched, the MySQL sink writes the
/// topic into MariaDB; the open loop's results.
pub(super) async fn measure(bench: &Bench, db: &DatabaseConnection) -> Outcome<Value> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    progress.say(format!(
        "4. open loop at {} bids/s for {} s: PlaceBid → WatchAuction on a second replica, → MariaDB row",
        sizes.rate, sizes.latency_seconds
    ));
    let latency_table = bench.table_name("latency");
    let replicas_stop = bench.shutdown.child_token();
    let mut replicas = start_replicas(bench, "bench-latency", 2, &replicas_stop).await?;
    let (Some(replica_b), Some(replica_a)) = (replicas.pop(), replicas.pop()) else {
        return Err("the open loop needs two replicas".to_owned());
    };
    let a_owns: HashSet<i32> = replica_a.owned_partitions().into_iter().collect();
    progress.say(format!(
        "   replica A owns partitions {:?}, replica B {:?}; every bid goes to A",
        replica_a.owned_partitions(),
        replica_b.owned_partitions()
    ));
    let sink_stop = CancellationToken::new();
    let latency_sink = auction_sinks::spawn(
        sink_settings(
            &bench.bootstrap,
            &bench.registry_url,
            "bench-latency",
            &format!("bench-latency-{}", bench.stamp),
            mysql_destination(&bench.args.database_url, &latency_table)?,
        )?,
        sink_stop.clone(),
    )
    .await
    .map_err(|e| format!("cannot start the MySQL sink: {e}"))?;
    let latency = open_loop(
        replica_a.grpc_addr,
        replica_b.grpc_addr,
        a_owns,
        db,
        &latency_table,
        bench,
    )
    .await;
    let sink_failed_early = latency_sink.is_finished();
    sink_stop.cancel();
    let latency_sink_outcome =
        tokio::time::timeout(Duration::from_secs(30), latency_sink.stopped()).await;
    let latency = match latency_sink_outcome {
        Ok(Err(e)) if sink_failed_early => {
            Err(format!("the MySQL sink stopped during the open loop: {e}"))
        }
        _ => latency,
    };
    replicas_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), replica_a.stopped()).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), replica_b.stopped()).await;
    mysql_drop(db, &latency_table).await;
    let latency = latency?;
    progress.say(format!(
        "   PlaceBid p99 {} ms (at the owner {} ms, forwarded {} ms), HighestBid on B p99 {} ms, WatchAuction p99 {} ms, MariaDB row p99 {} ms",
        latency["place_bid"]["p99_ms"],
        latency["place_bid_at_owner"]["p99_ms"],
        latency["place_bid_forwarded"]["p99_ms"],
        latency["highest_bid_on_second_replica"]["p99_ms"],
        latency["watch_on_second_replica"]["p99_ms"],
        latency["mysql_row"]["p99_ms"]
    ));
    Ok(latency)
}

/// What the open-loop run saw.
#[derive(Debug, Default)]
struct Seen {
    ok: HashMap<String, Instant>,
    watched: HashMap<String, Instant>,
}

/// Bids seen OK and not yet in the MariaDB table, with when they were seen OK.
type Pending = Arc<Mutex<HashMap<String, Instant>>>;

/// What the generator's calls record.
#[derive(Debug)]
struct Calls {
    seen: Arc<Mutex<Seen>>,
    pending: Pending,
    placed: Arc<AtomicU64>,
    place_latency: Mutex<Histogram<u64>>,
    /// The partitions replica A (which takes every call) owns; the others' calls are forwarded.
    a_owns: HashSet<i32>,
    partitions: i32,
    at_owner_latency: Mutex<Histogram<u64>>,
    forwarded_latency: Mutex<Histogram<u64>>,
    /// Replica B, asked `HighestBid` after every [`HIGHEST_BID_SAMPLE`]th OK until it shows the
    /// bid (or a higher one).
    b: BidServiceClient<Channel>,
    highest_latency: Arc<Mutex<Histogram<u64>>>,
    highest_missing: Arc<AtomicU64>,
    /// `HighestBid` polls still running.
    highest_outstanding: Arc<AtomicU64>,
    errors: AtomicU64,
    rejected: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Open loop at `rate` bids/s for `seconds` on replica `a` over `watched` auctions, each watched
/// on replica `b`, with the MySQL sink writing the topic into `table`.
async fn open_loop(
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    a_owns: HashSet<i32>,
    db: &DatabaseConnection,
    table: &str,
    bench: &Bench,
) -> Outcome<Value> {
    let sizes = &bench.sizes;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop_watching = CancellationToken::new();
    let mut watchers = watch(b, sizes.watched, &seen, &stop_watching).await?;

    // Warm-up: a bid that reaches MariaDB shows that the sink is assigned and its table exists.
    let place_clients = clients(a, 256).await?;
    warm_up(place_clients[0].clone(), db, table).await?;

    let pending: Pending = Arc::default();
    let generating = Arc::new(AtomicBool::new(true));
    let poller = poll_mysql(
        Arc::clone(&pending),
        Arc::clone(&generating),
        db.clone(),
        table.to_owned(),
    );

    let total = sizes.rate * sizes.latency_seconds;
    let calls = Arc::new(Calls {
        seen: Arc::clone(&seen),
        pending,
        placed: Arc::new(AtomicU64::new(0)),
        place_latency: Mutex::new(histogram()),
        a_owns,
        partitions: sizes.partitions,
        at_owner_latency: Mutex::new(histogram()),
        forwarded_latency: Mutex::new(histogram()),
        b: clients(b, 1).await?.remove(0),
        highest_latency: Arc::new(Mutex::new(histogram())),
        highest_missing: Arc::new(AtomicU64::new(0)),
        highest_outstanding: Arc::new(AtomicU64::new(0)),
        errors: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        first_error: Mutex::default(),
    });
    let ticker = bench
        .progress
        .ticker("open loop", Arc::clone(&calls.placed), total);
    let (offered_seconds, all_answered_seconds) = generate(&place_clients, sizes, &calls).await;
    ticker.cancel();
    let polls_deadline = Instant::now() + Duration::from_secs(15);
    while calls.highest_outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < polls_deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    generating.store(false, Ordering::Relaxed);
    // Give the second replica time to deliver the last updates.
    wait_watched(&seen, Duration::from_secs(10)).await;
    stop_watching.cancel();
    while let Some(joined) = watchers.join_next().await {
        if let Ok(Err(e)) = joined {
            return Err(e);
        }
    }
    let (mysql_latency, mysql_missing, poll_period) = poller
        .await
        .map_err(|e| format!("the MariaDB poller failed: {e}"))??;
    let (watch_latency, watch_missing, watch_before_ok) = watch_latency(&seen);
    let accepted = calls.placed.load(Ordering::Relaxed);
    let snapshot =
        |h: &Mutex<Histogram<u64>>| h.lock().map(|h| h.clone()).unwrap_or_else(|_| histogram());
    let place_latency = snapshot(&calls.place_latency);
    Ok(json!({
        "offered_per_s": sizes.rate,
        "seconds": sizes.latency_seconds,
        "offered": total,
        "offered_seconds_actual": offered_seconds,
        "accepted": accepted,
        "accepted_per_s": accepted as f64 / all_answered_seconds.max(1e-9),
        "rejected_too_low": calls.rejected.load(Ordering::Relaxed),
        "errors": calls.errors.load(Ordering::Relaxed),
        "first_error": calls.first_error.lock().ok().and_then(|f| f.clone()),
        "watched_auctions": sizes.watched,
        "place_bid": latency_json(&place_latency),
        "place_bid_at_owner": latency_json(&snapshot(&calls.at_owner_latency)),
        "place_bid_forwarded": latency_json(&snapshot(&calls.forwarded_latency)),
        "partitions_owned_by_a": calls.a_owns.len(),
        "highest_bid_on_second_replica": latency_json(&snapshot(&calls.highest_latency)),
        "highest_bid_sample": format!("every {HIGHEST_BID_SAMPLE}th OK, polled every 1 ms"),
        "highest_bid_missing": calls.highest_missing.load(Ordering::Relaxed),
        "watch_on_second_replica": latency_json(&watch_latency),
        "watch_missing": watch_missing,
        "watch_update_before_ok": watch_before_ok,
        "mysql_row": latency_json(&mysql_latency),
        "mysql_missing": mysql_missing,
        "mysql_poll_period_ms": poll_period * 1000.0,
    }))
}

/// Watches auctions `w-0` … on replica `b`, one `WatchAuction` stream each, until `stop`; waits
/// until every stream has delivered its first update.
async fn watch(
    b: std::net::SocketAddr,
    watched: u64,
    seen: &Arc<Mutex<Seen>>,
    stop: &CancellationToken,
) -> Outcome<JoinSet<Outcome<()>>> {
    let watching = Arc::new(AtomicU64::new(0));
    let watch_clients = clients(b, watched).await?;
    let mut watchers = JoinSet::new();
    for j in 0..watched {
        let client = watch_clients[(j as usize) % watch_clients.len()].clone();
        watchers.spawn(watch_one(
            client,
            format!("w-{j}"),
            Arc::clone(seen),
            stop.clone(),
            Arc::clone(&watching),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while watching.load(Ordering::Relaxed) < watched {
        if Instant::now() > deadline {
            return Err("the WatchAuction streams did not start within 30 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(watchers)
}

/// One `WatchAuction` stream on `auction_id`: counts itself in `watching` at its first update and
/// notes when each highest bid was first seen, until `stop`.
async fn watch_one(
    mut client: BidServiceClient<Channel>,
    auction_id: String,
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    watching: Arc<AtomicU64>,
) -> Outcome<()> {
    let request = WatchAuctionRequest { auction_id };
    let mut stream = match client.watch_auction(request).await {
        Ok(response) => response.into_inner(),
        Err(e) => return Err(format!("WatchAuction on the second replica: {e}")),
    };
    let mut first = true;
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            message = stream.message() => message,
        };
        let now = Instant::now();
        match message {
            Ok(Some(update)) => {
                if first {
                    watching.fetch_add(1, Ordering::Relaxed);
                    first = false;
                }
                if let Some(bid) = update.auction.and_then(|s| s.highest_bid)
                    && let Ok(mut seen) = seen.lock()
                {
                    seen.watched.entry(bid.bid_id).or_insert(now);
                }
            }
            Ok(None) => return Err("a WatchAuction stream ended".to_owned()),
            Err(e) => return Err(format!("a WatchAuction stream failed: {e}")),
        }
    }
}

/// Places a warm-up bid through `client` and waits until it is in `table`.
async fn warm_up(
    mut client: BidServiceClient<Channel>,
    db: &DatabaseConnection,
    table: &str,
) -> Outcome<()> {
    let warm = client
        .place_bid(PlaceBidRequest {
            auction_id: "warmup".to_owned(),
            name: "Warm Up".to_owned(),
            price: 1,
            request_id: String::new(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("warm-up PlaceBid: {e}"))?
        .into_inner()
        .bid
        .map(|b| b.bid_id)
        .unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = db
            .query_all(Statement::from_sql_and_values(
                DbBackend::MySql,
                format!("SELECT bid_id FROM {table} WHERE bid_id = ?"),
                [sea_orm::Value::from(warm.clone())],
            ))
            .await
            .map(|rows| !rows.is_empty())
            .unwrap_or(false);
        if found {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the warm-up bid did not reach MariaDB within 60 s".to_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The MariaDB poller: looks the `pending` bids up in `table` by their unique key, recording the
/// time from OK to the row, until `generating` is over and every pending bid was found (or a
/// minute passed). Returns the latency, the bids never found and the mean poll period (s).
fn poll_mysql(
    pending: Pending,
    generating: Arc<AtomicBool>,
    db: DatabaseConnection,
    table: String,
) -> JoinHandle<Outcome<(Histogram<u64>, u64, f64)>> {
    tokio::spawn(async move {
        let mut latency = histogram();
        let mut polls = 0u64;
        let started = Instant::now();
        let mut drained_deadline: Option<Instant> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let ids: Vec<String> = pending
                .lock()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            if !generating.load(Ordering::Relaxed) {
                let deadline =
                    *drained_deadline.get_or_insert(Instant::now() + Duration::from_secs(60));
                if ids.is_empty() || Instant::now() > deadline {
                    let missing = ids.len() as u64;
                    let period = started.elapsed().as_secs_f64() / polls.max(1) as f64;
                    return Ok::<_, String>((latency, missing, period));
                }
            }
            polls += 1;
            for chunk in ids.chunks(1000) {
                let placeholders = vec!["?"; chunk.len()].join(", ");
                let values: Vec<sea_orm::Value> =
                    chunk.iter().map(|id| id.clone().into()).collect();
                let rows = db
                    .query_all(Statement::from_sql_and_values(
                        DbBackend::MySql,
                        format!("SELECT bid_id FROM {table} WHERE bid_id IN ({placeholders})"),
                        values,
                    ))
                    .await
                    .map_err(|e| format!("MariaDB poll: {e}"))?;
                let now = Instant::now();
                if let Ok(mut pending) = pending.lock() {
                    for row in rows {
                        if let Ok(id) = row.try_get::<String>("", "bid_id")
                            && let Some(ok_at) = pending.remove(&id)
                        {
                            record(&mut latency, now.saturating_duration_since(ok_at));
                        }
                    }
                }
            }
        }
    })
}

/// The generator: bid i is due at start + i / rate; its latency counts from then. Returns when
/// every call was answered: the seconds it took to offer every bid, and to have every answer.
async fn generate(
    place_clients: &[BidServiceClient<Channel>],
    sizes: &Sizes,
    calls: &Arc<Calls>,
) -> (f64, f64) {
    let total = sizes.rate * sizes.latency_seconds;
    let started = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / sizes.rate as f64);
        tokio::time::sleep_until(due).await;
        let client = place_clients[(i as usize) % place_clients.len()].clone();
        tasks.spawn(place_one(
            client,
            i,
            sizes.watched,
            due.into_std(),
            Arc::clone(calls),
        ));
        while tasks.try_join_next().is_some() {}
    }
    let offered_seconds = started.elapsed().as_secs_f64();
    while tasks.join_next().await.is_some() {}
    (offered_seconds, started.elapsed().as_secs_f64())
}

/// Bid `i` of the open loop, due at `due`, on auction `w-(i mod watched)`.
async fn place_one(
    mut client: BidServiceClient<Channel>,
    i: u64,
    watched: u64,
    due: Instant,
    calls: Arc<Calls>,
) {
    let auction_id = format!("w-{}", i % watched);
    let price = i64::try_from(i / watched + 1).unwrap_or(i64::MAX);
    let at_owner = calls.a_owns.contains(&auction_bid_service::partition_for(
        &auction_id,
        calls.partitions,
    ));
    let request = PlaceBidRequest {
        auction_id: auction_id.clone(),
        name: format!("Bidder {}", i % 997),
        price,
        request_id: String::new(),
        ..Default::default()
    };
    match client.place_bid(request).await {
        Ok(response) => {
            let now = Instant::now();
            if let Ok(mut histogram) = calls.place_latency.lock() {
                record(&mut histogram, now.saturating_duration_since(due));
            }
            let path = if at_owner {
                &calls.at_owner_latency
            } else {
                &calls.forwarded_latency
            };
            if let Ok(mut histogram) = path.lock() {
                record(&mut histogram, now.saturating_duration_since(due));
            }
            if i.is_multiple_of(HIGHEST_BID_SAMPLE) {
                calls.highest_outstanding.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(poll_highest_bid(
                    calls.b.clone(),
                    auction_id,
                    price,
                    now,
                    Arc::clone(&calls.highest_latency),
                    Arc::clone(&calls.highest_missing),
                    Arc::clone(&calls.highest_outstanding),
                ));
            }
            calls.placed.fetch_add(1, Ordering::Relaxed);
            let id = response
                .into_inner()
                .bid
                .map(|b| b.bid_id)
                .unwrap_or_default();
            if let Ok(mut pending) = calls.pending.lock() {
                pending.insert(id.clone(), now);
            }
            if let Ok(mut seen) = calls.seen.lock() {
                seen.ok.insert(id, now);
            }
        }
        Err(status) if status.code() == tonic::Code::FailedPrecondition => {
            calls.rejected.fetch_add(1, Ordering::Relaxed);
        }
        Err(status) => {
            calls.errors.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut first) = calls.first_error.lock() {
                first.get_or_insert_with(|| status.to_string());
            }
        }
    }
}

/// Every how many bids of the open loop one is followed by `HighestBid` polls on replica B.
const HIGHEST_BID_SAMPLE: u64 = 10;

/// Asks replica `b` for `auction_id`'s highest bid every millisecond until it is at least
/// `price` (the bid OK'd at `ok_at`, or a later one), at most 10 s; records the time from the OK.
async fn poll_highest_bid(
    mut b: BidServiceClient<Channel>,
    auction_id: String,
    price: i64,
    ok_at: Instant,
    latency: Arc<Mutex<Histogram<u64>>>,
    missing: Arc<AtomicU64>,
    outstanding: Arc<AtomicU64>,
) {
    let deadline = ok_at + Duration::from_secs(10);
    loop {
        let highest = b
            .highest_bid(HighestBidRequest {
                auction_id: auction_id.clone(),
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().auction)
            .and_then(|a| a.highest_bid)
            .map_or(0, |bid| bid.price);
        let now = Instant::now();
        if highest >= price {
            if let Ok(mut histogram) = latency.lock() {
                record(&mut histogram, now.saturating_duration_since(ok_at));
            }
            break;
        }
        if now > deadline {
            missing.fetch_add(1, Ordering::Relaxed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    outstanding.fetch_sub(1, Ordering::Relaxed);
}

/// Waits until every bid seen OK was also seen on the watched replica, or `timeout` passed.
async fn wait_watched(seen: &Mutex<Seen>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let complete = seen
            .lock()
            .map(|s| s.ok.keys().all(|id| s.watched.contains_key(id)))
            .unwrap_or(true);
        if complete || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// From OK to the update on the watched replica: the latency, the bids never seen there, and
/// those seen there before their OK.
fn watch_latency(seen: &Mutex<Seen>) -> (Histogram<u64>, u64, u64) {
    let mut watch_latency = histogram();
    let mut watch_missing = 0u64;
    let mut watch_before_ok = 0u64;
    if let Ok(seen) = seen.lock() {
        for (id, ok_at) in &seen.ok {
            match seen.watched.get(id) {
                Some(at) => {
                    if at < ok_at {
                        watch_before_ok += 1;
                    }
                    record(&mut watch_latency, at.saturating_duration_since(*ok_at));
                }
                None => watch_missing += 1,
            }
        }
    }
    (watch_latency, watch_missing, watch_before_ok)
}
