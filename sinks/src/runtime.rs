//! The consumer loop every sink runs: collect a batch, decode it, write it (retrying), send dead
//! letters, and only then store the offsets.
//!
//! Invariants:
//! - An offset is stored only after every record below it in its partition is durably in the
//!   target or acknowledged on the dead-letter topic. The store is committed in the background,
//!   synchronously before partitions are revoked, and synchronously at shutdown.
//! - A failing target is retried forever (capped exponential backoff with jitter) without storing
//!   offsets; readiness is false meanwhile, with a sentence saying why ([`crate::health`]). So is
//!   a registry that cannot be reached or does not know a record's schema id (an empty or wrong
//!   registry must not turn the topic into dead letters), and a dead letter the topic refuses.
//! - Every wait on the target, the registry or the dead-letter topic is raced against shutdown:
//!   a write in progress is abandoned (neither stored nor committed, read again after a restart
//!   and written idempotently), so that shutdown takes at most the close timeout.
//! - A batch that waits longer than `stuck_after` to be written makes the sink not ready, also
//!   when nothing returns an error (a hang).
//! - Records of partitions revoked while a batch was being collected are dropped from it: their
//!   new owner reads them again.
//! - The next batch is collected while the current one is written (one batch ahead at most). A
//!   batch already collected when its partitions are revoked is still written (the writes are
//!   idempotent, so the new owner writing it too adds nothing), and storing its offsets fails for
//!   the partitions no longer assigned, so nothing is committed on the new owner's behalf.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auction_process::Readiness;
use auction_process::kafka_startup::{check_connection, check_topic};
use auction_schemas::result::AuctionResult;
use auction_schemas::{
    BidDecoder, DecodeError, HeaderIds, LogPosition, RecordCodec, RegistrySettings,
};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::destination::{Destination, ResultRecord, SinkRecord, SourcePosition, WriteOutcome};
use crate::health::{Blocker, Health, Progress, RunSummary};
use crate::kafka::{
    DeadLetterProducer, DeadLetterReason, KafkaSettings, RawRecord, SinkContext, commit_stored,
    ensure_dead_letter_topic,
};
use crate::metrics as m;
use crate::starting::{self, GroupStart, StartFrom};
use auction_process::Backoff;

/// How a sink consumes, batches and retries.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Kafka connection, topic, group and dead-letter topic.
    pub kafka: KafkaSettings,
    /// The schema registry the records' schema ids refer to.
    pub registry: RegistrySettings,
    /// A batch is written when it has this many records...
    pub batch_size: usize,
    /// ...or when its first record has waited this long.
    pub batch_linger: Duration,
    /// First delay after a failed write.
    pub retry_initial: Duration,
    /// Longest delay between attempts.
    pub retry_max: Duration,
    /// Longest wait for the final commit and the consumer's close at shutdown (closing a group
    /// consumer can hang when the broker is gone).
    pub close_timeout: Duration,
    /// The topic of closed auctions' results, read too when the target exports results;
    /// `None`: results are not read.
    pub results_topic: Option<String>,
    /// Where the group starts on partitions it has never committed.
    pub start_from: StartFrom,
    /// A batch in hand not written for this long makes the sink not ready (stuck).
    pub stuck_after: Duration,
    /// Send records whose schema id the registry does not know to the dead-letter topic
    /// instead of waiting for the registry to know it (only for a registry known to be right).
    pub dead_letter_unknown_schema_ids: bool,
}

impl RuntimeSettings {
    /// Defaults: batches of 500 records or 200 ms, retries from 100 ms up to 30 s, 10 s to close,
    /// stuck after 60 s, unknown schema ids waited for.
    pub fn new(kafka: KafkaSettings, registry: RegistrySettings) -> Self {
        Self {
            results_topic: Some(format!("{}.results", kafka.topic)),
            kafka,
            registry,
            batch_size: 1000,
            batch_linger: Duration::from_millis(200),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            close_timeout: Duration::from_secs(10),
            start_from: StartFrom::Unset,
            stuck_after: Duration::from_secs(60),
            dead_letter_unknown_schema_ids: false,
        }
    }
}

/// Why a sink stopped with an error (it stops cleanly on shutdown otherwise).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The Kafka clients could not be created or subscribed.
    #[error("cannot set up the Kafka {what}: {source}")]
    Kafka {
        /// Which client.
        what: &'static str,
        /// The client's error.
        source: KafkaError,
    },
    /// The schema registry settings are unusable.
    #[error("{0}")]
    Registry(String),
    /// Kafka refused the connection at start (TLS, authentication) or could not be reached.
    #[error("{0}")]
    Connect(String),
    /// The group's start cannot be prepared (the target holds the demo's rows and no start is
    /// given, a start names an unknown partition, the target cannot be read).
    #[error("{0}")]
    Start(String),
    /// The dead-letter topic is missing and may not (or could not) be created, or cannot be
    /// described.
    #[error("{0}")]
    DeadLetterTopic(String),
}

/// Runs a sink until `shutdown` is cancelled, then commits and closes the consumer within
/// `close_timeout`. `progress` counts what was written as it happens.
pub async fn run<T: Destination>(
    settings: RuntimeSettings,
    target: T,
    readiness: Readiness,
    progress: Progress,
    shutdown: CancellationToken,
) -> Result<RunSummary, SinkError> {
    let kind = target.kind();
    // A wrong password, an untrusted certificate or an unknown mechanism stops the sink here,
    // with librdkafka's reason, instead of a consumer that retries forever.
    // Stopping (SIGTERM) while it waits is a clean exit.
    let client = settings
        .kafka
        .consumer_config(&format!("auction-sink-{kind}"));
    if let Err(error) = check_connection(&client, &shutdown).await {
        if shutdown.is_cancelled() {
            return Ok(RunSummary::default());
        }
        return Err(SinkError::Connect(error));
    }
    // A topic whose settings could lose acknowledged bids is refused with a sentence, as the
    // bid service refuses it.
    check_topic(
        &client,
        &settings.kafka.topic,
        settings.kafka.allow_unsafe_topic,
    )
    .await
    .map_err(SinkError::Connect)?;
    // A missing dead-letter topic would stall the first poison record's partition; it is
    // created here when allowed, or the sink refuses to start with a sentence.
    if let Err(reason) = ensure_dead_letter_topic(&settings.kafka, kind, &shutdown).await {
        if shutdown.is_cancelled() {
            return Ok(RunSummary::default());
        }
        return Err(SinkError::DeadLetterTopic(reason));
    }
    let check_foreign_rows = prepare_start(&settings).await?;
    let decoder =
        BidDecoder::new(&settings.registry).map_err(|e| SinkError::Registry(e.to_string()))?;
    let dead_letters =
        DeadLetterProducer::new(&settings.kafka, kind).map_err(|source| SinkError::Kafka {
            what: "dead-letter producer",
            source,
        })?;
    let consumer: StreamConsumer<SinkContext> = settings
        .kafka
        .consumer_config(&format!("auction-sink-{kind}"))
        .create_with_context(SinkContext::new(kind))
        .map_err(|source| SinkError::Kafka {
            what: "consumer",
            source,
        })?;
    let mut topics = vec![settings.kafka.topic.as_str()];
    if let Some(results) = settings
        .results_topic
        .as_deref()
        .filter(|_| target.takes_results())
    {
        topics.push(results);
    }
    consumer
        .subscribe(&topics)
        .map_err(|source| SinkError::Kafka {
            what: "consumer subscription",
            source,
        })?;
    tracing::info!(
        sink = kind,
        topic = %settings.kafka.topic,
        results_topic = ?topics.get(1),
        group = %settings.kafka.group_id,
        dead_letter_topic = %settings.kafka.dead_letter_topic,
        "sink started"
    );
    let health = Health::new(kind, readiness, progress);
    health.running(true);
    let watcher_stop = CancellationToken::new();
    let watcher = tokio::spawn(
        health
            .clone()
            .watch_for_stalls(settings.stuck_after, watcher_stop.clone()),
    );

    let mut worker = Worker {
        kind,
        settings: &settings,
        target,
        check_foreign_rows,
        fatal: None,
        decoder,
        dead_letters,
        health: health.clone(),
        shutdown: shutdown.clone(),
    };
    let consumer = Arc::new(consumer);
    // The next batch is read while this one is decoded and written: the target and the reads
    // from Kafka overlap. One batch at most waits between them.
    let (ready_batches, mut batches) = tokio::sync::mpsc::channel::<Vec<RawRecord>>(1);
    // The reader stops on shutdown, and when the writer stopped for good (see `fatal`).
    let reader_stop = shutdown.child_token();
    let collector = tokio::spawn({
        let consumer = Arc::clone(&consumer);
        let settings = settings.clone();
        let shutdown = reader_stop.clone();
        async move {
            while let Some(batch) = collect_batch(&consumer, &settings, &shutdown).await {
                if ready_batches.send(batch).await.is_err() {
                    break;
                }
            }
        }
    });
    while let Some(batch) = batches.recv().await {
        health.batch_started(batch.len());
        match worker.process(&batch).await {
            Some(positions) => {
                store_offsets(&consumer, &positions, kind);
                health.batch_done();
            }
            // Shutdown during a write or its retries: the batch is abandoned, not stored.
            None => break,
        }
    }
    drop(batches);
    reader_stop.cancel();
    if let Err(e) = collector.await {
        tracing::warn!(sink = kind, error = %e, "the Kafka reader task failed");
    }

    watcher_stop.cancel();
    if let Err(e) = watcher.await {
        tracing::warn!(sink = kind, error = %e, "the stall watcher failed");
    }
    health.running(false);
    close(consumer, settings.close_timeout, kind).await;
    if let Some(reason) = worker.fatal.take() {
        return Err(SinkError::Start(reason));
    }
    let summary = health.progress().snapshot();
    tracing::info!(
        sink = kind,
        written = summary.written,
        duplicates = summary.duplicates,
        dead_letters = summary.dead_letters,
        "sink stopped"
    );
    Ok(summary)
}

/// Writes the group's start for the partitions it has never committed (see
/// [`crate::starting`]). True when the group has never read the topic and no start was given:
/// the target must then be asked, before the first write, whether it holds rows the sink did not
/// write (the demo's), which such a start would write again.
async fn prepare_start(settings: &RuntimeSettings) -> Result<bool, SinkError> {
    let (kafka, start) = (settings.kafka.clone(), settings.start_from.clone());
    tokio::task::spawn_blocking(move || {
        let group = GroupStart::read(&kafka)?;
        let unguarded = group.is_new() && start == StartFrom::Unset;
        group.write(&kafka, &start)?;
        Ok(unguarded)
    })
    .await
    .map_err(|e| SinkError::Start(format!("the Kafka client thread failed: {e}")))?
    .map_err(SinkError::Start)
}

/// Records why the sink must stop; `None`, so that the caller stops as on shutdown.
fn break_with(fatal: &mut Option<String>, reason: String) -> Option<()> {
    tracing::error!("{reason}");
    *fatal = Some(reason);
    None
}

/// Reads records until the batch is full, its first record has waited `batch_linger`, or shutdown
/// (then `None`: a partial batch is left unwritten and unstored, to be read again).
async fn collect_batch(
    consumer: &StreamConsumer<SinkContext>,
    settings: &RuntimeSettings,
    shutdown: &CancellationToken,
) -> Option<Vec<RawRecord>> {
    let mut batch: Vec<RawRecord> = Vec::with_capacity(settings.batch_size);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let wait = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return None,
            () = wait => break,
            received = consumer.recv() => match received {
                Ok(message) => {
                    // A revocation during this recv applies to the records read before it; the
                    // message just returned belongs to the current assignment (librdkafka drops
                    // fetched messages of revoked partitions).
                    drop_revoked(consumer, &mut batch);
                    batch.push(RawRecord::from_message(&message));
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + settings.batch_linger);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read from Kafka; the consumer retries by itself");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
        if batch.len() >= settings.batch_size {
            break;
        }
    }
    drop_revoked(consumer, &mut batch);
    Some(batch)
}

fn drop_revoked(consumer: &StreamConsumer<SinkContext>, batch: &mut Vec<RawRecord>) {
    let revoked = consumer.context().take_revoked();
    if !revoked.is_empty() {
        let before = batch.len();
        batch.retain(|r| !revoked.contains(&(r.topic.clone(), r.partition)));
        if batch.len() != before {
            tracing::info!(
                dropped = before - batch.len(),
                "records of revoked partitions left to their new owner"
            );
        }
    }
}

/// The next offset to read of every partition in a processed batch.
type Positions = BTreeMap<(String, i32), i64>;

fn store_offsets(consumer: &StreamConsumer<SinkContext>, positions: &Positions, kind: &str) {
    if positions.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in positions {
        if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            tracing::warn!(error = %e, "cannot build the offset list");
        }
    }
    // Fails for a partition no longer assigned (the group moved on during a long outage); its new
    // owner re-reads from the last commit and writes idempotently, so nothing is lost.
    if let Err(e) = consumer.store_offsets(&list) {
        tracing::warn!(sink = kind, error = %e, "cannot store offsets of a written batch");
    }
}

/// Commits the stored offsets and closes the consumer, giving up after `timeout`.
async fn close(consumer: Arc<StreamConsumer<SinkContext>>, timeout: Duration, kind: &'static str) {
    let closing = tokio::task::spawn_blocking(move || {
        commit_stored(consumer.as_ref(), "shutdown");
        consumer.unsubscribe();
        // Dropping the last handle closes the consumer (leaves the group); this can block.
        drop(consumer);
    });
    if tokio::time::timeout(timeout, closing).await.is_err() {
        tracing::warn!(
            sink = kind,
            seconds = timeout.as_secs_f64(),
            "the Kafka consumer did not close in time; exiting anyway (uncommitted records are read again and written idempotently)"
        );
    }
}

struct Worker<'a, T: Destination> {
    kind: &'static str,
    settings: &'a RuntimeSettings,
    target: T,
    /// Ask the target for rows the sink did not write before the first write (a new group
    /// starting at the beginning).
    check_foreign_rows: bool,
    /// Why the sink must stop (it then stops as on shutdown and reports this).
    fatal: Option<String>,
    decoder: BidDecoder,
    dead_letters: DeadLetterProducer,
    health: Health,
    shutdown: CancellationToken,
}

enum Attempt<T> {
    Done(T),
    Permanent(String),
}

impl<T: Destination> Worker<'_, T> {
    /// Decodes, writes and dead-letters one batch; returns the offsets to store, or `None` when
    /// shutdown interrupted retries.
    async fn process(&mut self, batch: &[RawRecord]) -> Option<Positions> {
        let mut positions = Positions::new();
        for raw in batch {
            let next = positions
                .entry((raw.topic.clone(), raw.partition))
                .or_insert(0);
            *next = (*next).max(raw.offset + 1);
        }
        if batch.is_empty() {
            return Some(positions);
        }
        metrics::histogram!(m::BATCH_RECORDS, "sink" => self.kind).record(batch.len() as f64);

        let (result_raws, bid_raws): (Vec<&RawRecord>, Vec<&RawRecord>) = batch
            .iter()
            .partition(|raw| self.settings.results_topic.as_ref() == Some(&raw.topic));
        let mut records = Vec::with_capacity(batch.len());
        let mut dead: Vec<(&RawRecord, DeadLetterReason)> = Vec::new();
        let mut seen = HashSet::with_capacity(batch.len());
        let mut in_batch_duplicates = 0;
        for raw in bid_raws {
            match self.decode(raw).await? {
                Ok(record) => {
                    // The same bid twice in one batch (a producer retry): one write is enough.
                    if seen.insert(record.bid.bid_id) {
                        records.push(record);
                    } else {
                        in_batch_duplicates += 1;
                    }
                }
                Err(error) => dead.push((
                    raw,
                    DeadLetterReason {
                        kind: error.kind().to_owned(),
                        message: error.to_string(),
                    },
                )),
            }
        }

        let started = Instant::now();
        let (mut outcome, rejected) = self.write_all(&records).await?;
        outcome.duplicates += in_batch_duplicates;
        metrics::histogram!(m::WRITE_SECONDS, "sink" => self.kind)
            .record(started.elapsed().as_secs_f64());
        for (index, message) in rejected {
            let record = &records[index];
            if let Some(raw) = batch.iter().find(|r| {
                r.partition == record.position.partition
                    && r.offset == record.position.offset
                    && r.topic == record.position.topic
            }) {
                dead.push((
                    raw,
                    DeadLetterReason {
                        kind: "target_rejected".to_owned(),
                        message,
                    },
                ));
            }
        }

        if !result_raws.is_empty() {
            outcome.add(self.write_results(&result_raws, &mut dead).await?);
        }

        for (raw, reason) in &dead {
            self.send_dead_letter(raw, reason).await?;
        }

        metrics::counter!(m::RECORDS_WRITTEN, "sink" => self.kind)
            .increment(outcome.written as u64);
        metrics::counter!(m::RECORDS_DUPLICATE, "sink" => self.kind)
            .increment(outcome.duplicates as u64);
        self.health.progress().add(outcome, dead.len());
        tracing::debug!(
            sink = self.kind,
            records = batch.len(),
            written = outcome.written,
            duplicates = outcome.duplicates,
            dead_letters = dead.len(),
            "batch done"
        );
        Some(positions)
    }

    /// Decodes one record, waiting out registry outages and schema ids the registry does not
    /// know (yet). `Ok(Err(_))` is a dead letter; `None`: shutdown.
    async fn decode(&self, raw: &RawRecord) -> Option<Result<SinkRecord, DecodeError>> {
        let mut backoff = self.backoff();
        loop {
            let position = LogPosition {
                topic: &raw.topic,
                partition: raw.partition,
                offset: raw.offset,
            };
            let headers = HeaderIds::from_pairs(
                raw.headers
                    .iter()
                    .map(|(key, value)| (key.as_str(), value.as_deref())),
            );
            let decoded = until_shutdown(
                &self.shutdown,
                self.decoder.decode(raw.value.as_deref(), position, headers),
            )
            .await?;
            match decoded {
                Err(DecodeError::UnknownSchemaId { schema_id })
                    if !self.settings.dead_letter_unknown_schema_ids =>
                {
                    // An empty or wrong registry, or one that has not caught up with the
                    // producers' (a replica, a restore): the record is not at fault.
                    metrics::gauge!(m::WAITING_FOR_SCHEMA_ID, "sink" => self.kind)
                        .set(f64::from(schema_id));
                    let sentence = format!(
                        "schema id {schema_id} of the record at {}/{} offset {} is not known to \
                         the schema registry at {}; the sink waits for it (nothing after the \
                         record is committed) instead of sending its records to the \
                         dead-letter topic: is SCHEMA_REGISTRY_URL the registry the producers use? \
                         (SINK_DEAD_LETTER_UNKNOWN_SCHEMA_IDS=true dead-letters such records \
                         instead)",
                        raw.topic,
                        raw.partition,
                        raw.offset,
                        registry_address(&self.settings.registry.url)
                    );
                    self.wait_to_retry(&mut backoff, Blocker::Registry, sentence)
                        .await?;
                }
                Err(e) if e.is_retriable() => {
                    let sentence = format!(
                        "the schema registry at {} cannot be reached: {e}",
                        registry_address(&self.settings.registry.url)
                    );
                    self.wait_to_retry(&mut backoff, Blocker::Registry, sentence)
                        .await?;
                }
                outcome => {
                    self.recovered(&backoff, Blocker::Registry);
                    if backoff.attempts() > 0 {
                        metrics::gauge!(m::WAITING_FOR_SCHEMA_ID, "sink" => self.kind).set(0.0);
                    }
                    return Some(outcome.map(|decoded| SinkRecord {
                        bid: decoded.bid,
                        position: SourcePosition {
                            topic: raw.topic.clone(),
                            partition: raw.partition,
                            offset: raw.offset,
                        },
                    }));
                }
            }
        }
    }

    /// Writes every record; a batch the target refuses for good is written one record at a time
    /// so that only the records at fault become dead letters. Returns the rejected indexes.
    async fn write_all(
        &mut self,
        records: &[SinkRecord],
    ) -> Option<(WriteOutcome, Vec<(usize, String)>)> {
        let mut outcome = WriteOutcome::default();
        let mut rejected = Vec::new();
        if records.is_empty() {
            return Some((outcome, rejected));
        }
        match self.write_retrying(records).await? {
            Attempt::Done(done) => outcome.add(done),
            Attempt::Permanent(message) if records.len() == 1 => rejected.push((0, message)),
            Attempt::Permanent(message) => {
                tracing::warn!(sink = self.kind, reason = %message, "the target refused a batch; writing its records one by one");
                for (index, record) in records.iter().enumerate() {
                    match self.write_retrying(std::slice::from_ref(record)).await? {
                        Attempt::Done(done) => outcome.add(done),
                        Attempt::Permanent(message) => rejected.push((index, message)),
                    }
                }
            }
        }
        Some((outcome, rejected))
    }

    /// Decodes and writes closed auctions' results (retrying while the target may recover);
    /// results that cannot be read or written for good join `dead`.
    async fn write_results<'r>(
        &mut self,
        raws: &[&'r RawRecord],
        dead: &mut Vec<(&'r RawRecord, DeadLetterReason)>,
    ) -> Option<WriteOutcome> {
        let mut results = Vec::with_capacity(raws.len());
        let mut decoded = Vec::with_capacity(raws.len());
        for raw in raws {
            match RecordCodec::decode::<AuctionResult>(raw.value.as_deref()) {
                Ok(result) => {
                    decoded.push(*raw);
                    results.push(ResultRecord {
                        result,
                        position: SourcePosition {
                            topic: raw.topic.clone(),
                            partition: raw.partition,
                            offset: raw.offset,
                        },
                    });
                }
                Err(message) => dead.push((
                    raw,
                    DeadLetterReason {
                        kind: "invalid_result".to_owned(),
                        message,
                    },
                )),
            }
        }
        let mut backoff = self.backoff();
        loop {
            match until_shutdown(&self.shutdown, self.target.write_results(&results)).await? {
                Ok(outcome) => {
                    self.recovered(&backoff, Blocker::Target);
                    return Some(outcome);
                }
                Err(e) if self.target.is_retriable(&e) => {
                    metrics::counter!(m::WRITE_RETRIES, "sink" => self.kind).increment(1);
                    let sentence = self.target_failed("closed auctions' results", &e);
                    self.wait_to_retry(&mut backoff, Blocker::Target, sentence)
                        .await?;
                }
                Err(e) => {
                    self.recovered(&backoff, Blocker::Target);
                    let message = e.to_string();
                    dead.extend(decoded.into_iter().map(|raw| {
                        (
                            raw,
                            DeadLetterReason {
                                kind: "target_rejected".to_owned(),
                                message: message.clone(),
                            },
                        )
                    }));
                    return Some(WriteOutcome::default());
                }
            }
        }
    }

    async fn write_retrying(&mut self, records: &[SinkRecord]) -> Option<Attempt<WriteOutcome>> {
        if self.check_foreign_rows {
            self.refuse_foreign_rows().await?;
        }
        let mut backoff = self.backoff();
        loop {
            match until_shutdown(&self.shutdown, self.target.write(records)).await? {
                Ok(outcome) => {
                    self.recovered(&backoff, Blocker::Target);
                    return Some(Attempt::Done(outcome));
                }
                Err(e) if self.target.is_retriable(&e) => {
                    metrics::counter!(m::WRITE_RETRIES, "sink" => self.kind).increment(1);
                    let sentence = self.target_failed("bids", &e);
                    self.wait_to_retry(&mut backoff, Blocker::Target, sentence)
                        .await?;
                }
                Err(e) => {
                    self.recovered(&backoff, Blocker::Target);
                    return Some(Attempt::Permanent(e.to_string()));
                }
            }
        }
    }

    /// Asks the target (waiting out its outages) whether it holds rows the sink did not write;
    /// if it does, the sink stops with [`starting::refusal`]: a new group starting at the
    /// beginning would write them again. `None`: stopped.
    async fn refuse_foreign_rows(&mut self) -> Option<()> {
        let mut backoff = self.backoff();
        let count = loop {
            match until_shutdown(&self.shutdown, self.target.rows_from_elsewhere()).await? {
                Ok(count) => break count,
                Err(e) if self.target.is_retriable(&e) => {
                    metrics::counter!(m::WRITE_RETRIES, "sink" => self.kind).increment(1);
                    let sentence = self.target_failed("the check for the demo's rows", &e);
                    self.wait_to_retry(&mut backoff, Blocker::Target, sentence)
                        .await?;
                }
                Err(e) => break_with(&mut self.fatal, e.to_string())?,
            }
        };
        self.recovered(&backoff, Blocker::Target);
        if count > 0 {
            let target = format!("the {} target", self.kind);
            return break_with(
                &mut self.fatal,
                starting::refusal(&self.settings.kafka, count, &target),
            );
        }
        self.check_foreign_rows = false;
        Some(())
    }

    async fn send_dead_letter(&self, raw: &RawRecord, reason: &DeadLetterReason) -> Option<()> {
        let mut backoff = self.backoff();
        loop {
            match until_shutdown(&self.shutdown, self.dead_letters.send(raw, reason)).await? {
                Ok(()) => {
                    self.recovered(&backoff, Blocker::DeadLetters);
                    tracing::warn!(
                        sink = self.kind,
                        topic = %raw.topic,
                        partition = raw.partition,
                        offset = raw.offset,
                        reason = %reason.kind,
                        "record sent to the dead-letter topic: {}",
                        reason.message
                    );
                    metrics::counter!(m::DEAD_LETTERS, "sink" => self.kind, "reason" => reason.kind.clone())
                        .increment(1);
                    return Some(());
                }
                Err(sentence) => {
                    self.wait_to_retry(&mut backoff, Blocker::DeadLetters, sentence)
                        .await?;
                }
            }
        }
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.settings.retry_initial, self.settings.retry_max)
    }

    /// What a failing target write says, for readiness and the log.
    fn target_failed(&self, what: &str, error: &T::Error) -> String {
        format!("the {} target cannot write {what}: {error}", self.kind)
    }

    /// Not ready because of `blocker` (for the reason `sentence`), then sleeps; `None` when
    /// shutdown came first.
    async fn wait_to_retry(
        &self,
        backoff: &mut Backoff,
        blocker: Blocker,
        sentence: String,
    ) -> Option<()> {
        let delay = backoff.next_delay();
        tracing::warn!(
            sink = self.kind,
            attempt = backoff.attempts(),
            retry_in_ms = delay.as_millis() as u64,
            "retrying: {sentence}"
        );
        self.health.block(blocker, sentence);
        tokio::select! {
            () = self.shutdown.cancelled() => {
                tracing::info!(sink = self.kind, "shutdown while retrying; the batch is left to be read again");
                None
            }
            () = tokio::time::sleep(delay) => Some(()),
        }
    }

    /// `blocker` got through: no longer a reason to be not ready.
    fn recovered(&self, backoff: &Backoff, blocker: Blocker) {
        if backoff.attempts() > 0 {
            tracing::info!(sink = self.kind, attempts = backoff.attempts(), "recovered");
        }
        self.health.clear(blocker);
    }
}

/// Runs `work` unless shutdown comes first (`None`: the work is dropped, and with it a write in
/// progress; its batch is neither stored nor committed, so it is read again after a restart and
/// written idempotently).
async fn until_shutdown<F: Future>(shutdown: &CancellationToken, work: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        done = work => Some(done),
        () = shutdown.cancelled() => {
            tracing::info!("shutdown during a write; the batch is abandoned, to be read again");
            None
        }
    }
}

/// The registry's URL without any user and password in it, for sentences and logs.
fn registry_address(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::registry_address;

    #[test]
    fn registry_addresses_never_carry_credentials() {
        assert_eq!(
            registry_address("http://127.0.0.1:8081"),
            "http://127.0.0.1:8081"
        );
        assert_eq!(
            registry_address("https://key:secret@sr.example.com/path"),
            "https://sr.example.com/path"
        );
    }
}
