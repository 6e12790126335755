//! Where a sink's consumer group starts reading the partitions it has never committed: the
//! beginning (the default), another consumer group's committed offsets (taking over from the
//! original demo's consumers without writing again what they wrote), or offsets given by hand.
//!
//! The start is written into the sink's own group as committed offsets before the sink joins it
//! (what `kafka-consumer-groups --reset-offsets` does for a group without members), so it holds
//! for every instance of the group and across restarts, and later starts change nothing: a
//! partition the group has committed is never moved. Kafka only takes such a commit while the
//! group has no members; an instance that loses that race finds the offsets its peer wrote.
//!
//! A target that already holds rows the sink did not write (the demo's table or CSV file) and a
//! group that has never committed anything make a sink that would write the demo's bids a second
//! time: before its first write, it stops unless the start was given, saying how to give it
//! ([`refusal`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::kafka::KafkaSettings;

/// How long each call to Kafka may take while the start is prepared.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the group starts on partitions it has never committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// Not given: the beginning, unless the target holds rows the sink did not write.
    #[default]
    Unset,
    /// The beginning, even over rows the sink did not write (`earliest`).
    Earliest,
    /// Where another consumer group (the demo's) has committed (`group:<id>`); its partitions
    /// without a commit start at the beginning.
    Group(String),
    /// These offsets by partition (`<partition>:<offset>,...`); other partitions start at the
    /// beginning.
    Offsets(BTreeMap<i32, i64>),
}

impl FromStr for StartFrom {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Self::Unset);
        }
        if raw == "earliest" {
            return Ok(Self::Earliest);
        }
        if let Some(group) = raw.strip_prefix("group:") {
            let group = group.trim();
            if group.is_empty() {
                return Err("group: needs the consumer group's id, as in group:db_writer".into());
            }
            return Ok(Self::Group(group.to_owned()));
        }
        let mut offsets = BTreeMap::new();
        for pair in raw.split(',') {
            let parsed = pair.split_once(':').and_then(|(partition, offset)| {
                Some((
                    partition.trim().parse::<i32>().ok().filter(|p| *p >= 0)?,
                    offset.trim().parse::<i64>().ok().filter(|o| *o >= 0)?,
                ))
            });
            let Some((partition, offset)) = parsed else {
                return Err(format!(
                    "{pair:?} is not <partition>:<offset>; expected earliest, group:<id> or \
                     <partition>:<offset>,... such as 0:120,1:98"
                ));
            };
            if offsets.insert(partition, offset).is_some() {
                return Err(format!("partition {partition} is given twice"));
            }
        }
        Ok(Self::Offsets(offsets))
    }
}

impl fmt::Display for StartFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unset => f.write_str("the beginning (not set)"),
            Self::Earliest => f.write_str("earliest"),
            Self::Group(group) => write!(f, "group:{group}"),
            Self::Offsets(offsets) => {
                let pairs: Vec<String> = offsets.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                f.write_str(&pairs.join(","))
            }
        }
    }
}

/// The sink's own consumer group as it stands before the sink joins it.
pub(crate) struct GroupStart {
    own: BaseConsumer,
    partitions: Vec<i32>,
    committed: BTreeMap<i32, i64>,
}

impl GroupStart {
    /// Reads the partitions of the topic and what the sink's group has committed on them.
    ///
    /// Blocking (Kafka calls with timeouts), as is [`GroupStart::write`]: call them off the
    /// async threads.
    pub(crate) fn read(kafka: &KafkaSettings) -> Result<Self, String> {
        let own = group_client(kafka, &kafka.group_id)?;
        let partitions = partitions_of(&own, &kafka.topic)?;
        let committed = committed(&own, &kafka.topic, &partitions, &kafka.group_id)?;
        Ok(Self {
            own,
            partitions,
            committed,
        })
    }

    /// True when the group has never committed anything on the topic: a first start, where
    /// rows the sink did not write matter.
    pub(crate) fn is_new(&self) -> bool {
        self.committed.is_empty()
    }

    /// Writes the start into the group for the partitions it has never committed.
    pub(crate) fn write(self, kafka: &KafkaSettings, start: &StartFrom) -> Result<(), String> {
        let uncommitted: Vec<i32> = self
            .partitions
            .iter()
            .copied()
            .filter(|p| !self.committed.contains_key(p))
            .collect();
        if uncommitted.is_empty() {
            return Ok(());
        }
        let chosen: BTreeMap<i32, i64> = match start {
            StartFrom::Unset => BTreeMap::new(),
            StartFrom::Earliest => BTreeMap::new(),
            StartFrom::Group(group) => {
                let theirs = group_client(kafka, group)?;
                committed(&theirs, &kafka.topic, &self.partitions, group)?
            }
            StartFrom::Offsets(offsets) => {
                if let Some(unknown) = offsets.keys().find(|p| !self.partitions.contains(p)) {
                    return Err(format!(
                        "SINK_START_FROM names partition {unknown}, but {} has partitions 0 to {}",
                        kafka.topic,
                        self.partitions.len().saturating_sub(1)
                    ));
                }
                offsets.clone()
            }
        };
        let seeded: BTreeMap<i32, i64> = chosen
            .into_iter()
            .filter(|(partition, _)| uncommitted.contains(partition))
            .collect();
        if seeded.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &seeded {
            list.add_partition_offset(&kafka.topic, *partition, Offset::Offset(*offset))
                .map_err(|e| format!("cannot list the starting offsets: {e}"))?;
        }
        if let Err(e) = self.own.commit(&list, CommitMode::Sync) {
            // Another instance of the group may have joined it first (Kafka then refuses
            // commits from outside the group): what counts is that the group has a start now.
            let now = committed(&self.own, &kafka.topic, &self.partitions, &kafka.group_id)?;
            if seeded.keys().any(|p| !now.contains_key(p)) {
                return Err(format!(
                    "cannot write the starting offsets into the consumer group {}: {e} \
                     (stop the group's other instances and start again)",
                    kafka.group_id
                ));
            }
            return Ok(());
        }
        tracing::info!(group = %kafka.group_id, topic = %kafka.topic, from = %start, offsets = ?seeded,
            "the consumer group starts where it was told");
        Ok(())
    }
}

/// Why a sink whose group has never read the topic, with no start given, does not start at the
/// beginning: `target` already holds `foreign_rows` bids it did not write (the demo's).
pub(crate) fn refusal(kafka: &KafkaSettings, foreign_rows: u64, target: &str) -> String {
    format!(
        "{target} already holds {foreign_rows} bids this sink did not write (the demo's), and the \
         consumer group {} has never read {}: starting at the beginning would write them a \
         second time. Set SINK_START_FROM=group:<the demo's consumer group> to continue where \
         the demo's consumers stopped (README, \"Migrating from the demo\"), \
         SINK_START_FROM=<partition>:<offset>,... to name the offsets, or SINK_START_FROM=earliest \
         to write the whole topic anyway",
        kafka.group_id, kafka.topic
    )
}

/// A consumer of `group` that never joins it: it only reads and writes committed offsets.
fn group_client(kafka: &KafkaSettings, group: &str) -> Result<BaseConsumer, String> {
    let mut config: ClientConfig = kafka.consumer_config("auction-sink-start");
    config
        .set("group.id", group)
        .set("statistics.interval.ms", "0");
    config
        .create()
        .map_err(|e| format!("cannot create a Kafka client for the consumer group {group}: {e}"))
}

fn partitions_of(client: &BaseConsumer, topic: &str) -> Result<Vec<i32>, String> {
    let metadata = client
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .map_err(|e| format!("cannot read the partitions of {topic}: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!(
            "the topic {topic} has no partitions (does it exist?)"
        ));
    }
    Ok(partitions)
}

/// The committed offsets of `group` on `topic`, by partition; partitions it never committed are
/// absent.
fn committed(
    client: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    group: &str,
) -> Result<BTreeMap<i32, i64>, String> {
    let mut list = TopicPartitionList::new();
    for partition in partitions {
        list.add_partition(topic, *partition);
    }
    let answered = client.committed_offsets(list, CALL_TIMEOUT).map_err(|e| {
        format!("cannot read the committed offsets of the consumer group {group}: {e}")
    })?;
    Ok(answered
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_the_setting_is_read() {
        assert_eq!("".parse::<StartFrom>().unwrap(), StartFrom::Unset);
        assert_eq!(
            "earliest".parse::<StartFrom>().unwrap(),
            StartFrom::Earliest
        );
        assert_eq!(
            " group:db_writer ".parse::<StartFrom>().unwrap(),
            StartFrom::Group("db_writer".into())
        );
        assert_eq!(
            "0:120, 2:7".parse::<StartFrom>().unwrap(),
            StartFrom::Offsets(BTreeMap::from([(0, 120), (2, 7)]))
        );
        assert_eq!(
            "0:120,2:7".parse::<StartFrom>().unwrap().to_string(),
            "0:120,2:7"
        );
    }

    #[test]
    fn bad_forms_say_what_was_expected() {
        let error = "latest".parse::<StartFrom>().unwrap_err();
        assert!(
            error.contains("expected earliest, group:<id> or <partition>:<offset>"),
            "{error}"
        );
        assert!(
            "group:"
                .parse::<StartFrom>()
                .unwrap_err()
                .contains("group:db_writer")
        );
        assert!(
            "0:1,0:2"
                .parse::<StartFrom>()
                .unwrap_err()
                .contains("given twice")
        );
        assert!("0:-1".parse::<StartFrom>().is_err());
    }
}
