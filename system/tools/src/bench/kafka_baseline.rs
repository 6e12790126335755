//! 2: the limits of Apache Kafka itself, beside which `PlaceBid`, the sinks and replay are
//! shown: a bare idempotent producer (which also fills the pre-filled topic that 5 and 6 read), a
//! bare consumer, the same against librdkafka's mock cluster, and the original demo's produce
//! path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auction_schemas::{Bid, BidEncoder, BidId, BidInput, RegistrySettings};
use auction_testkit::Kafka;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, DeliveryResult, Producer, ProducerContext,
};
use rdkafka::types::RDKafkaErrorCode;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use super::limits::demo_mysql_writer;
use super::report::rate;
use super::{Bench, Outcome, Sizes};

/// The topic that the bare producer fills and the sinks and replay read.
pub(super) const PREFILL_TOPIC: &str = "bench-prefill";

/// The pre-filled topic's bids and records, and what producing and consuming them took.
#[derive(Debug)]
pub(super) struct Prefill {
    /// The bids, in the order they were produced.
    pub(super) bids: Arc<Vec<Bid>>,
    /// The bids in the order a sink reads them (partition by partition): the targets' limits
    /// write them in this order, which is what decides how scattered the index inserts are.
    pub(super) log_ordered_bids: Arc<Vec<Bid>>,
    /// The encoded records (key, value) of `bids`.
    records: Arc<Vec<(String, Vec<u8>)>>,
    /// The mean size of a record's value.
    record_bytes: f64,
    produce_seconds: f64,
    consume_seconds: f64,
}

impl Prefill {
    /// The encoded records (key, value) of the pre-filled bids.
    pub(super) fn records(&self) -> &Arc<Vec<(String, Vec<u8>)>> {
        &self.records
    }

    /// The `bare_producer` results, with the ratio of `PlaceBid`'s rate to the producer's.
    pub(super) fn producer_json(&self, sizes: &Sizes, place_bids_per_s: f64) -> Value {
        let producer_rate = rate(sizes.bids, self.produce_seconds);
        json!({
            "broker": "kafka",
            "records": sizes.bids,
            "record_bytes": self.record_bytes,
            "seconds": self.produce_seconds,
            "records_per_s": producer_rate,
            "place_bid_ratio": place_bids_per_s / producer_rate.max(1e-9),
        })
    }

    /// The `bare_consumer` results.
    pub(super) fn consumer_json(&self, sizes: &Sizes) -> Value {
        json!({
            "broker": "kafka",
            "records": sizes.bids,
            "seconds": self.consume_seconds,
            "records_per_s": rate(sizes.bids, self.consume_seconds),
        })
    }
}

/// 2: encodes the bids, produces them with the bare producer into the pre-filled topic, then
/// reads them back with the bare consumer.
pub(super) async fn fill_topic(bench: &Bench, kafka: &Kafka) -> Outcome<Prefill> {
    let (progress, sizes) = (&bench.progress, &bench.sizes);
    progress.say(format!(
        "2. bare idempotent producer: encoding {} bids",
        sizes.bids
    ));
    kafka
        .try_create_topic(PREFILL_TOPIC, sizes.partitions)
        .await?;
    kafka.try_create_topic("bench.dlq", 1).await?;
    let (bids, records) = encode(bench, PREFILL_TOPIC, sizes.bids).await?;
    let record_bytes =
        records.iter().map(|(_, v)| v.len()).sum::<usize>() as f64 / records.len().max(1) as f64;
    let records = Arc::new(records);
    let bids = Arc::new(bids);
    let (produce_seconds, log_order) = produce(
        bench,
        bench.bootstrap.clone(),
        PREFILL_TOPIC,
        &records,
        "bare producer → Apache Kafka",
    )
    .await?;
    let log_ordered_bids = Arc::new(log_order.iter().map(|&i| bids[i].clone()).collect());
    let producer_rate = rate(sizes.bids, produce_seconds);
    progress.say(format!(
        "   {producer_rate:.0} records/s of {record_bytes:.0} bytes"
    ));
    progress.say("   bare consumer from Apache Kafka (what bounds the sinks and replay)");
    let consume_seconds = consume(
        bench,
        bench.bootstrap.clone(),
        "bare consumer ← Apache Kafka",
    )
    .await?;
    Ok(Prefill {
        bids,
        log_ordered_bids,
        records,
        record_bytes,
        produce_seconds,
        consume_seconds,
    })
}

/// Fills `topic` (created with the run's partitions) with `count` bids over the run's auctions,
/// as the pre-filled topic is filled; for the restore's scaling. Returns the seconds it took.
pub(super) async fn fill_more(
    bench: &Bench,
    kafka: &Kafka,
    topic: &str,
    count: u64,
) -> Outcome<f64> {
    kafka
        .try_create_topic(topic, bench.sizes.partitions)
        .await?;
    bench
        .progress
        .say(format!("   encoding {count} bids for {topic}"));
    let (_, records) = encode(bench, topic, count).await?;
    let (seconds, _) = produce(
        bench,
        bench.bootstrap.clone(),
        topic,
        &Arc::new(records),
        &format!("bare producer → {topic}"),
    )
    .await?;
    Ok(seconds)
}

/// `count` bids over the run's auctions for `topic` and their records, encoded with the bid
/// schemas registered.
async fn encode(
    bench: &Bench,
    topic: &str,
    count: u64,
) -> Outcome<(Vec<Bid>, Vec<(String, Vec<u8>)>)> {
    let sizes = &bench.sizes;
    let encoder = BidEncoder::new(&RegistrySettings::new(&bench.registry_url), topic)
        .map_err(|e| e.to_string())?;
    encoder
        .register_schemas()
        .await
        .map_err(|e| format!("cannot register the bid schemas: {e}"))?;
    let mut bids = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut records = Vec::with_capacity(bids.capacity());
    for i in 0..count {
        let bid = prefill_bid(i, sizes.auctions)?;
        let value = encoder
            .encode(&bid)
            .await
            .map_err(|e| format!("cannot encode a bid: {e}"))?;
        records.push((bid.auction_id.as_str().to_owned(), value));
        bids.push(bid);
    }
    Ok((bids, records))
}

/// The bare producer in a blocking task, progress under `label`: `records` into `topic` on
/// `bootstrap`.
pub(super) async fn produce(
    bench: &Bench,
    bootstrap: String,
    topic: &str,
    records: &Arc<Vec<(String, Vec<u8>)>>,
    label: &str,
) -> Outcome<(f64, Vec<usize>)> {
    let records = Arc::clone(records);
    let done = Arc::new(AtomicU64::new(0));
    let ticker = bench
        .progress
        .ticker(label, Arc::clone(&done), records.len() as u64);
    let topic = topic.to_owned();
    let outcome =
        tokio::task::spawn_blocking(move || bare_produce(&bootstrap, &topic, &records, &done))
            .await
            .map_err(|e| format!("the producer task failed: {e}"))?;
    ticker.cancel();
    outcome
}

/// The bare consumer in a blocking task, progress under `label`: the pre-filled topic on
/// `bootstrap`.
async fn consume(bench: &Bench, bootstrap: String, label: &str) -> Outcome<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let ticker = bench
        .progress
        .ticker(label, Arc::clone(&done), bench.sizes.bids);
    let (partitions, expected) = (bench.sizes.partitions, bench.sizes.bids);
    let outcome = tokio::task::spawn_blocking(move || {
        bare_consume(&bootstrap, PREFILL_TOPIC, partitions, expected, &done)
    })
    .await
    .map_err(|e| format!("the consumer task failed: {e}"))?;
    ticker.cancel();
    outcome
}

/// The bare producer and consumer against librdkafka's mock cluster, which stays up for the
/// replay from it.
pub(super) struct MockRun {
    _cluster: MockCluster<'static, DefaultProducerContext>,
    bootstrap: String,
    produce_seconds: Outcome<f64>,
    consume_seconds: Outcome<f64>,
}

impl MockRun {
    /// The mock cluster's bootstrap servers, when it served the pre-filled topic to the bare
    /// consumer.
    pub(super) fn served(&self) -> Option<&str> {
        self.consume_seconds
            .is_ok()
            .then_some(self.bootstrap.as_str())
    }

    /// The `mock_cluster` results, with the replay's from it.
    pub(super) fn json(&self, sizes: &Sizes, replay: Value) -> Value {
        let outcome = |r: &Outcome<f64>| match r {
            Ok(seconds) => json!(rate(sizes.bids, *seconds)),
            Err(e) => json!(format!("not measured: {e}")),
        };
        json!({
            "bare_producer_records_per_s": outcome(&self.produce_seconds),
            "bare_consumer_records_per_s": outcome(&self.consume_seconds),
            "replay": replay,
        })
    }
}

/// The same as 2 against librdkafka's mock cluster, for comparison; a failure there is reported,
/// not fatal.
pub(super) async fn on_mock_cluster(bench: &Bench, prefill: &Prefill) -> Outcome<MockRun> {
    bench
        .progress
        .say("   the same against librdkafka's mock cluster");
    let cluster = MockCluster::new(1).map_err(|e| format!("cannot start the mock cluster: {e}"))?;
    // With the bid service's state topic: the mock cluster cannot create topics on request.
    for topic in [PREFILL_TOPIC.to_owned(), format!("{PREFILL_TOPIC}.state")] {
        cluster
            .create_topic(&topic, bench.sizes.partitions, 1)
            .map_err(|e| format!("cannot create {topic} in the mock cluster: {e}"))?;
    }
    let bootstrap = cluster.bootstrap_servers();
    let produce_seconds = produce(
        bench,
        bootstrap.clone(),
        PREFILL_TOPIC,
        &prefill.records,
        "bare producer → mock",
    )
    .await
    .map(|(seconds, _)| seconds);
    let consume_seconds = match &produce_seconds {
        Ok(_) => consume(bench, bootstrap.clone(), "bare consumer ← mock").await,
        Err(e) => Err(e.clone()),
    };
    if let Err(e) = &consume_seconds {
        bench
            .progress
            .say(format!("   mock cluster: {e} (reported, not fatal)"));
    }
    Ok(MockRun {
        _cluster: cluster,
        bootstrap,
        produce_seconds,
        consume_seconds,
    })
}

/// The original demo's I/O patterns, for comparison with 1 and 5: bids produced one by one with
/// a flush each, and rows inserted one per commit (`demo_mysql_writer`); its results.
pub(super) async fn original_demo(
    bench: &Bench,
    kafka: &Kafka,
    db: &DatabaseConnection,
    prefill: &Prefill,
    place_bids_per_s: f64,
) -> Outcome<Value> {
    let demo_count = if bench.args.quick { 500 } else { 2000 };
    bench.progress.say(format!(
        "the original demo's patterns: {demo_count} bids produced one by one with a flush each, \
         {demo_count} rows inserted one per commit"
    ));
    kafka
        .try_create_topic("bench-demo", bench.sizes.partitions)
        .await?;
    let demo_records: Vec<(String, Vec<u8>)> =
        prefill.records.iter().take(demo_count).cloned().collect();
    let demo_bootstrap = bench.bootstrap.clone();
    let demo_path = tokio::task::spawn_blocking(move || {
        demo_produce(&demo_bootstrap, "bench-demo", &demo_records)
    })
    .await
    .map_err(|e| format!("the demo-path task failed: {e}"))??;
    let bids = &prefill.bids;
    let demo_writer = demo_mysql_writer(
        db,
        &bench.args.database_url,
        &bench.table_name("demo"),
        &bids[..demo_count.min(bids.len())],
    )
    .await?;
    bench.progress.say(format!(
        "   demo path {demo_path:.0} bids/s, demo writer {demo_writer:.0} rows/s"
    ));
    Ok(json!({
        "records": demo_count,
        "produce_flush_per_bid_per_s": demo_path,
        "place_bid_ratio": place_bids_per_s / demo_path.max(1e-9),
        "insert_commit_per_row_per_s": demo_writer,
    }))
}

/// The `i`th bid of the pre-filled topic: auction `a-(i mod auctions)`, prices rising within
/// each auction, deterministic ids.
fn prefill_bid(i: u64, auctions: u64) -> Outcome<Bid> {
    let auction = format!("a-{}", i % auctions);
    let name = format!("Bidder {}", i % 997);
    let input = BidInput {
        auction_id: Some(&auction),
        name: &name,
        price: i64::try_from(i / auctions + 1).unwrap_or(i64::MAX),
    };
    Bid::new(
        &input,
        BidId::derived("bench", 0, i64::try_from(i).unwrap_or(i64::MAX)),
    )
    .map_err(|e| e.to_string())
}

/// Hands `record` to `producer`, waiting while its queue is full (it drains as the broker
/// acknowledges).
pub(super) fn send_when_room<'a, C: ProducerContext>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, str, [u8], C::DeliveryOpaque>,
) -> Outcome<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, back)) => return Err(format!("cannot produce to {}: {e}", back.topic)),
        }
    }
}

/// Counts deliveries of a bare producer.
#[derive(Debug, Default)]
struct DeliveryCount {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// (partition, offset, index of the record) of every delivered record.
    positions: Mutex<Vec<(i32, i64, usize)>>,
}

impl rdkafka::ClientContext for DeliveryCount {}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Self::DeliveryOpaque) {
        match result {
            Ok(message) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut positions) = self.positions.lock() {
                    positions.push((
                        rdkafka::Message::partition(message),
                        rdkafka::Message::offset(message),
                        index,
                    ));
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

/// Produces every record with an idempotent producer configured as the bid service's (acks=all,
/// linger.ms=1, 100,000 queued messages), as fast as librdkafka takes them. Returns seconds, and
/// the indexes of the records in log order (partition by partition, by offset).
fn bare_produce(
    bootstrap: &str,
    topic: &str,
    records: &[(String, Vec<u8>)],
    done: &AtomicU64,
) -> Outcome<(f64, Vec<usize>)> {
    let context = DeliveryCount::default();
    let producer: BaseProducer<DeliveryCount> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "100000")
        .set("message.timeout.ms", "60000")
        .create_with_context(context)
        .map_err(|e| format!("cannot create the producer: {e}"))?;
    let started = Instant::now();
    for (i, (key, value)) in records.iter().enumerate() {
        let record = BaseRecord::with_opaque_to(topic, i)
            .key(key.as_str())
            .payload(&value[..]);
        send_when_room(&producer, record)?;
        if i % 1000 == 999 {
            producer.poll(Duration::ZERO);
            done.store(
                producer.context().delivered.load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| format!("the producer did not flush: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let context = producer.context();
    let delivered = context.delivered.load(Ordering::Relaxed);
    done.store(delivered, Ordering::Relaxed);
    let failed = context.failed.load(Ordering::Relaxed);
    if failed > 0 || delivered != records.len() as u64 {
        let first = context
            .first_error
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .unwrap_or_default();
        return Err(format!(
            "{delivered} of {} records delivered, {failed} failed: {first}",
            records.len()
        ));
    }
    let mut positions = context
        .positions
        .lock()
        .map(|mut p| std::mem::take(&mut *p))
        .unwrap_or_default();
    positions.sort_unstable();
    Ok((seconds, positions.into_iter().map(|(_, _, i)| i).collect()))
}

/// Reads `expected` records from the beginning of every partition with a plain consumer (no
/// decoding). Returns seconds.
fn bare_consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    expected: u64,
    done: &AtomicU64,
) -> Outcome<f64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "auction-bench-bare-consumer")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("cannot create the consumer: {e}"))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .map_err(|e| format!("cannot assign {topic}/{partition}: {e}"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("cannot assign {topic}: {e}"))?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60 + expected / 1000);
    let mut count = 0u64;
    let mut last_progress = (Instant::now(), 0u64);
    while count < expected {
        if count != last_progress.1 {
            last_progress = (Instant::now(), count);
        } else if last_progress.0.elapsed() > Duration::from_secs(15) {
            return Err(format!(
                "the bare consumer stalled at {count} of {expected} records (no record for 15 s)"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the bare consumer read {count} of {expected} records before its deadline"
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => {
                count += 1;
                if count.is_multiple_of(1000) {
                    done.store(count, Ordering::Relaxed);
                }
            }
            Some(Err(e)) => return Err(format!("the bare consumer failed: {e}")),
            None => {}
        }
    }
    done.store(count, Ordering::Relaxed);
    Ok(started.elapsed().as_secs_f64())
}

/// The original demo's produce path, one caller: each bid is produced and then flushed before
/// the next (what its Flask handler does per request; the records here are already encoded).
/// Returns bids/s.
fn demo_produce(bootstrap: &str, topic: &str, records: &[(String, Vec<u8>)]) -> Outcome<f64> {
    // A flush sends at once and returns when the record is acknowledged: linger 0, then wait for
    // the record's delivery report.
    let producer: BaseProducer<DeliveryCount> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create_with_context(DeliveryCount::default())
        .map_err(|e| format!("cannot create the demo-path producer: {e}"))?;
    let started = Instant::now();
    for (i, (key, value)) in records.iter().enumerate() {
        producer
            .send(
                BaseRecord::with_opaque_to(topic, i)
                    .key(key.as_bytes())
                    .payload(&value[..]),
            )
            .map_err(|(e, _)| format!("the demo-path producer: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let context = producer.context();
        while context.delivered.load(Ordering::Relaxed) + context.failed.load(Ordering::Relaxed)
            <= i as u64
        {
            if Instant::now() > deadline {
                return Err("the demo-path producer got no acknowledgement within 10 s".into());
            }
            producer.poll(Duration::from_millis(1));
        }
    }
    Ok(rate(records.len() as u64, started.elapsed().as_secs_f64()))
}
