//! 2b: the bare transactional producer, the limit beside `PlaceBid` now that every accepted bid
//! is written inside a Kafka transaction by its partition's owner. One producer per partition of
//! a fresh topic (as the owners are), each in its own thread, with the bid service's transaction
//! settings, on the same pre-encoded records:
//! - one-record transactions back to back: begin, produce, commit; the time of each, which bounds
//!   a lone bid's `PlaceBid` latency;
//! - [`BATCH`]-record transactions back to back: records/s, which bounds `PlaceBid`'s rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{Value, json};

use super::kafka_baseline::send_when_room;
use super::report::{histogram, latency_json, ms, rate, record};
use super::{Bench, Outcome};

/// The topic the transactional producers write.
const TOPIC: &str = "bench-transactional";

/// Records of a transaction in the throughput run.
const BATCH: usize = 500;

/// Time limit of each transactional call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// 2b: both runs, each for `seconds`, on `records` (keys are ignored: each producer writes its
/// own partition).
pub(super) async fn measure(
    bench: &Bench,
    kafka: &auction_testkit::Kafka,
    records: &Arc<Vec<(String, Vec<u8>)>>,
) -> Outcome<Value> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    let seconds = if bench.args.quick { 2 } else { 10 };
    kafka.try_create_topic(TOPIC, sizes.partitions).await?;
    progress.say(format!(
        "2b. bare transactional producer, one per partition ({}), one-record transactions for {seconds} s",
        sizes.partitions
    ));
    let single = run(bench, records, 1, seconds, "one-record transactions").await?;
    progress.say(format!(
        "   {:.0} transactions/s, each p50 {:.2} / p99 {:.2} ms",
        single.records_per_s(),
        ms(&single.latency, 0.5),
        ms(&single.latency, 0.99)
    ));
    progress.say(format!("    {BATCH}-record transactions for {seconds} s"));
    let batched = run(bench, records, BATCH, seconds, "batched transactions").await?;
    progress.say(format!(
        "   {:.0} records/s, each transaction p50 {:.2} / p99 {:.2} ms",
        batched.records_per_s(),
        ms(&batched.latency, 0.5),
        ms(&batched.latency, 0.99)
    ));
    Ok(json!({
        "broker": "kafka",
        "producers": sizes.partitions,
        "one_record_transactions": single.json(1),
        "batched_transactions": batched.json(BATCH),
    }))
}

/// What one run measured, over every producer.
struct Run {
    records: u64,
    seconds: f64,
    latency: Histogram<u64>,
}

impl Run {
    fn records_per_s(&self) -> f64 {
        rate(self.records, self.seconds)
    }

    fn json(&self, batch: usize) -> Value {
        json!({
            "records_per_transaction": batch,
            "records": self.records,
            "seconds": self.seconds,
            "records_per_s": self.records_per_s(),
            "transactions_per_s": rate(self.records / batch as u64, self.seconds),
            "transaction": latency_json(&self.latency),
        })
    }
}

/// One producer per partition, each committing `batch`-record transactions back to back for
/// `seconds`.
async fn run(
    bench: &Bench,
    records: &Arc<Vec<(String, Vec<u8>)>>,
    batch: usize,
    seconds: u64,
    label: &str,
) -> Outcome<Run> {
    let done = Arc::new(AtomicU64::new(0));
    let ticker = bench.progress.ticker(label, Arc::clone(&done), 0);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let mut threads = Vec::new();
    for partition in 0..bench.sizes.partitions {
        let bootstrap = bench.bootstrap.clone();
        let records = Arc::clone(records);
        let done = Arc::clone(&done);
        let id = format!("bench-transactional-{}-{batch}-{partition}", bench.stamp);
        threads.push(tokio::task::spawn_blocking(move || {
            produce(&bootstrap, &id, partition, &records, batch, until, &done)
        }));
    }
    let mut total = Run {
        records: 0,
        seconds: 0.0,
        latency: histogram(),
    };
    for thread in threads {
        let (count, latency) = thread
            .await
            .map_err(|e| format!("a transactional producer failed: {e}"))??;
        total.records += count;
        let _ = total.latency.add(&latency);
    }
    total.seconds = started.elapsed().as_secs_f64();
    ticker.cancel();
    Ok(total)
}

/// One transactional producer on `partition`: transactions of `batch` records until `until`.
/// Returns the records committed and each transaction's time (begin to commit returned).
fn produce(
    bootstrap: &str,
    transactional_id: &str,
    partition: i32,
    records: &[(String, Vec<u8>)],
    batch: usize,
    until: Instant,
    done: &AtomicU64,
) -> Outcome<(u64, Histogram<u64>)> {
    // The bid service's transactional settings (`auction_bid_service`'s producer).
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .map_err(|e| format!("cannot create a transactional producer: {e}"))?;
    producer
        .init_transactions(CALL_TIMEOUT)
        .map_err(|e| format!("cannot initialise transactions: {e}"))?;
    let mut latency = histogram();
    let mut committed = 0u64;
    let mut next = 0usize;
    while Instant::now() < until {
        let started = Instant::now();
        producer
            .begin_transaction()
            .map_err(|e| format!("cannot begin a transaction: {e}"))?;
        for _ in 0..batch {
            let (key, value) = &records[next % records.len()];
            next += 1;
            let record = BaseRecord::to(TOPIC)
                .partition(partition)
                .key(key.as_str())
                .payload(&value[..]);
            send_when_room(&producer, record)?;
        }
        // As the bid service does: every delivery report served before the commit, whose
        // flush (rust-rdkafka's) would otherwise wait for events 100 ms at a time.
        let delivered_by = Instant::now() + CALL_TIMEOUT;
        while producer.in_flight_count() > 0 && Instant::now() < delivered_by {
            producer.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_micros(250));
        }
        producer
            .commit_transaction(CALL_TIMEOUT)
            .map_err(|e| format!("cannot commit a transaction: {e}"))?;
        record(&mut latency, started.elapsed());
        committed += batch as u64;
        done.fetch_add(batch as u64, Ordering::Relaxed);
    }
    Ok((committed, latency))
}
