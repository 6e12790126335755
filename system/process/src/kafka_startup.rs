//! Connecting to Kafka at start (feature `kafka`): a metadata round trip that fails fast with
//! librdkafka's own reason (an untrusted certificate, failed SASL authentication, a mechanism the
//! broker does not offer, an unreachable host) instead of retrying forever. The bid service and
//! every sink call it before they serve, so that a wrong setting stops the process at start with
//! a sentence saying why; the settings' secrets never appear in that sentence (librdkafka does
//! not print them, and the reason is all that is reported). Also the check of a bid topic's
//! settings (replication, `min.insync.replicas`, unclean leader election, cleanup policy)
//! against the guarantees.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ConfigResource, ResourceSpecifier};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use tokio_util::sync::CancellationToken;

/// How long start-up waits for the cluster before it gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Remembers the last error librdkafka reported, so that a start-up failure can say why instead
/// of only timing out.
#[derive(Debug, Default)]
pub struct ErrorRecordingContext {
    last_error: Mutex<Option<String>>,
}

impl ErrorRecordingContext {
    /// The last error librdkafka reported, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// An error that waiting will not cure: TLS or authentication.
    pub fn fatal_error(&self) -> Option<String> {
        self.last_error().filter(|e| {
            let e = e.to_ascii_lowercase();
            ["ssl", "certificate", "sasl", "authentication"]
                .iter()
                .any(|word| e.contains(word))
        })
    }

    /// `what`, with librdkafka's last error as the reason.
    pub fn explain(&self, what: &str) -> String {
        match self.last_error() {
            Some(error) => format!("{what}; Kafka said: {error}"),
            None => format!("{what}; is Kafka reachable?"),
        }
    }

    fn record(&self, message: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message.to_owned());
    }
}

impl ClientContext for ErrorRecordingContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "Kafka client error");
        self.record(reason);
    }

    // librdkafka reports connection failures (TLS handshakes, authentication) through its log,
    // from its own threads; errors reach `error` only when the main queue is polled.
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if (level as i32) <= (RDKafkaLogLevel::Warning as i32) {
            tracing::warn!(facility, message, "Kafka client");
            self.record(message);
        } else {
            tracing::debug!(facility, message, "Kafka client");
        }
    }
}

impl ConsumerContext for ErrorRecordingContext {}

/// Connects to the cluster of `config` once; an unreachable broker, an untrusted certificate,
/// failed authentication or a SASL mechanism the broker does not offer is an error with
/// librdkafka's reason. Gives up (with an error) as soon as `stop` is cancelled.
pub async fn check_connection(
    config: &ClientConfig,
    stop: &CancellationToken,
) -> Result<(), String> {
    wait_for_metadata(
        config,
        stop,
        None,
        |_| Some(()),
        format!("cannot reach Kafka within {} s", CONNECT_TIMEOUT.as_secs()),
    )
    .await
}

/// Asks the cluster for metadata (of one topic, or of the cluster) until `pick` finds what it
/// needs, for at most [`CONNECT_TIMEOUT`]. Stops early, with librdkafka's reason, on an error
/// that waiting will not cure (TLS, authentication), or when `stop` is cancelled; says `missing`
/// when the cluster answers without what `pick` looks for.
pub async fn wait_for_metadata<T: Send + 'static>(
    config: &ClientConfig,
    stop: &CancellationToken,
    topic: Option<String>,
    pick: impl Fn(&rdkafka::metadata::Metadata) -> Option<T> + Send + 'static,
    missing: String,
) -> Result<T, String> {
    let mut config = config.clone();
    config.set_log_level(RDKafkaLogLevel::Warning);
    if config.get("group.id").is_none() {
        config.set("group.id", "auction-metadata");
    }
    let consumer: BaseConsumer<ErrorRecordingContext> = config
        .create_with_context(ErrorRecordingContext::default())
        .map_err(|e| format!("cannot create a Kafka client: {e}"))?;
    // The blocking task must end on `stop`: a runtime waits for its blocking tasks before the
    // process can exit.
    let stop = stop.clone();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if stop.is_cancelled() {
                return Err("stopped while connecting to Kafka".to_owned());
            }
            let outcome = consumer.fetch_metadata(topic.as_deref(), Duration::from_secs(1));
            if let Some(found) = outcome.as_ref().ok().and_then(&pick) {
                return Ok(found);
            }
            // Polling delivers librdkafka's logs and errors to the context (and paces the loop).
            let _ = consumer.poll(Duration::from_millis(200));
            if let Some(error) = consumer.context().fatal_error() {
                return Err(format!("cannot connect to Kafka: {error}"));
            }
            if Instant::now() > deadline {
                return Err(match outcome {
                    Err(e) => consumer.context().explain(&format!("{missing}: {e}")),
                    Ok(_) => missing,
                });
            }
        }
    })
    .await
    .map_err(|e| format!("the metadata task failed: {e}"))?
}

/// What a topic of bids must be for the product's guarantees, as read back from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    /// Brokers in the cluster.
    pub brokers: usize,
    /// The smallest replica count of the topic's partitions.
    pub replication: usize,
    /// `min.insync.replicas`, when the cluster reports it.
    pub min_insync_replicas: Option<usize>,
    /// `unclean.leader.election.enable`, when the cluster reports it.
    pub unclean_leader_election: Option<bool>,
    /// `cleanup.policy`, when the cluster reports it.
    pub cleanup_policy: Option<String>,
}

impl TopicSettings {
    /// Each setting that breaks a guarantee of a topic of bids, as a sentence saying which and
    /// why. Empty when the topic is fit.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.durability_problems();
        if self
            .cleanup_policy
            .as_deref()
            .is_some_and(|policy| policy.contains("compact"))
        {
            problems.push(
                "cleanup.policy includes compact (want delete): compaction keeps only the last bid of each auction"
                    .to_owned(),
            );
        }
        problems
    }

    /// The same for the compacted state topic (`auction.state`): durable like the bid topic, and
    /// compacted without deletion, since its records are the only copy of an auction's state once
    /// old bids have been deleted.
    pub fn state_problems(&self) -> Vec<String> {
        let mut problems = self.durability_problems();
        if let Some(policy) = self.cleanup_policy.as_deref()
            && policy.trim() != "compact"
        {
            problems.push(format!(
                "cleanup.policy is {policy:?} (want compact): deleting old state records forgets auctions whose bids are gone"
            ));
        }
        problems
    }

    fn durability_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let wanted = self.brokers.min(3);
        if self.replication < wanted {
            problems.push(format!(
                "its replication factor is {} on a cluster of {} brokers (want {wanted}): losing one broker can lose acknowledged bids",
                self.replication, self.brokers
            ));
        }
        if let Some(min_insync) = self
            .min_insync_replicas
            .filter(|m| self.replication >= 3 && *m < 2)
        {
            problems.push(format!(
                "min.insync.replicas is {min_insync} (want 2): a bid acknowledged by a single replica is lost with it"
            ));
        }
        if self.unclean_leader_election == Some(true) {
            problems.push(
                "unclean.leader.election.enable is true (want false): a replica that missed acknowledged bids could become leader and drop them"
                    .to_owned(),
            );
        }
        problems
    }
}

/// Reads back the settings of `topic` that the guarantees depend on: the cluster's broker count,
/// the topic's replication factor (from metadata), and `min.insync.replicas`,
/// `unclean.leader.election.enable` and `cleanup.policy` (from DescribeConfigs, asked only of a
/// cluster of two or more brokers; unknown when it does not answer).
pub async fn read_topic_settings(
    config: &ClientConfig,
    topic: &str,
) -> Result<TopicSettings, String> {
    let name = topic.to_owned();
    let (brokers, replication) = wait_for_metadata(
        config,
        &CancellationToken::new(),
        Some(topic.to_owned()),
        move |metadata| {
            let found = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())?;
            let replication = found
                .partitions()
                .iter()
                .map(|p| p.replicas().len())
                .min()
                .unwrap_or(0);
            Some((metadata.brokers().len(), replication))
        },
        format!("topic {topic} does not exist"),
    )
    .await?;
    // On a single broker the replication settings cannot be better than they are, and
    // librdkafka's mock cluster (the embedded default, many tests) does not answer
    // DescribeConfigs at all: asking would only cost the request timeout.
    let resource = if brokers > 1 {
        describe_topic(config, topic).await
    } else {
        None
    };
    let value = |name: &str| {
        resource
            .as_ref()
            .and_then(|r| r.get(name))
            .and_then(|entry| entry.value.clone())
    };
    if resource.is_none() && brokers > 1 {
        tracing::warn!(
            topic,
            "the cluster did not describe the topic's configuration; only its replication factor is checked"
        );
    }
    Ok(TopicSettings {
        brokers,
        replication,
        min_insync_replicas: value("min.insync.replicas").and_then(|v| v.parse().ok()),
        unclean_leader_election: value("unclean.leader.election.enable").map(|v| v == "true"),
        cleanup_policy: value("cleanup.policy"),
    })
}

/// The topic's configuration as the cluster describes it, if it does within 5 s.
async fn describe_topic(config: &ClientConfig, topic: &str) -> Option<ConfigResource> {
    let admin: AdminClient<ErrorRecordingContext> = config
        .create_with_context(ErrorRecordingContext::default())
        .ok()?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
    let mut results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
        .ok()?;
    results.pop()?.ok()
}

/// Refuses `topic` when its settings break the guarantees (see [`TopicSettings::problems`]),
/// with one sentence naming each setting, unless `allow_unsafe` (then it only warns).
pub async fn check_topic(
    config: &ClientConfig,
    topic: &str,
    allow_unsafe: bool,
) -> Result<(), String> {
    let settings = read_topic_settings(config, topic).await?;
    refuse_unless_fit(topic, "bids", settings.problems(), allow_unsafe)
}

/// Refuses the state topic `topic` when its settings break the guarantees (see
/// [`TopicSettings::state_problems`]), as [`check_topic`] does for the bid topic.
pub async fn check_state_topic(
    config: &ClientConfig,
    topic: &str,
    allow_unsafe: bool,
) -> Result<(), String> {
    let settings = read_topic_settings(config, topic).await?;
    refuse_unless_fit(
        topic,
        "auction state",
        settings.state_problems(),
        allow_unsafe,
    )
}

fn refuse_unless_fit(
    topic: &str,
    what: &str,
    problems: Vec<String>,
    allow_unsafe: bool,
) -> Result<(), String> {
    if problems.is_empty() {
        return Ok(());
    }
    let sentence = format!(
        "topic {topic} is not safe for {what}: {}",
        problems.join("; ")
    );
    if allow_unsafe {
        tracing::warn!(topic, problems = %sentence, "running on an unsafe topic as allowed");
        Ok(())
    } else {
        Err(format!(
            "{sentence}. Fix the topic, or set AUCTION_TOPIC_ALLOW_UNSAFE=true to run anyway"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::TopicSettings;

    fn safe() -> TopicSettings {
        TopicSettings {
            brokers: 3,
            replication: 3,
            min_insync_replicas: Some(2),
            unclean_leader_election: Some(false),
            cleanup_policy: Some("delete".to_owned()),
        }
    }

    #[test]
    fn a_safe_topic_has_no_problem_and_each_unsafe_setting_is_named() {
        assert!(safe().problems().is_empty());
        let single = TopicSettings {
            brokers: 1,
            replication: 1,
            min_insync_replicas: Some(1),
            ..safe()
        };
        assert!(single.problems().is_empty(), "one broker cannot do better");
        let cases = [
            (
                TopicSettings {
                    replication: 1,
                    ..safe()
                },
                "replication factor is 1 on a cluster of 3 brokers",
            ),
            (
                TopicSettings {
                    min_insync_replicas: Some(1),
                    ..safe()
                },
                "min.insync.replicas is 1",
            ),
            (
                TopicSettings {
                    unclean_leader_election: Some(true),
                    ..safe()
                },
                "unclean.leader.election.enable is true",
            ),
            (
                TopicSettings {
                    cleanup_policy: Some("compact".to_owned()),
                    ..safe()
                },
                "cleanup.policy includes compact",
            ),
        ];
        for (settings, expected) in cases {
            let problems = settings.problems();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(expected), "{problems:?}");
        }
    }
}
