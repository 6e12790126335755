//! A sink pointed at a registry that does not know the records' schema ids (an empty registry,
//! as after a registry was replaced without its data) waits, not ready, committing nothing and
//! dead-lettering nothing; once the same schemas are registered, under the same ids, it writes
//! every bid exactly once.

use std::time::Duration;

use auction_schema_registry as registry;
use auction_schemas::RegistrySettings;
use auction_sinks::destination::csv_file::{CsvDestination, CsvSettings};
use auction_testkit::TestRegistry;

use crate::helpers::RunningSink;
use crate::helpers::{Stack, assert_exactly_once, csv_rows, sql_rows, sql_target, wait_until};
use crate::watched::{committed, end_offsets};

const PARTITIONS: i32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_started_against_an_empty_registry_write_no_dead_letters_and_commit_nothing_then_everything()
 {
    // The producers' registry knows the bid schemas (v2 from the bid service's encoder, v1 from
    // the demo's producer); the sinks are pointed at a second, empty instance.
    let stack = Stack::start(PARTITIONS).await;
    let bids = stack.produce_bids(200, 7, "service").await;
    stack.produce_demo_bids(20, "demo").await;
    let total = bids.len() + 20;
    let subject = format!("{}-value", stack.topic);
    // Registering again answers the ids the producers' registry holds.
    let (v1, v2) = registry::preload_bid_schemas(&stack.registry.store, &subject).unwrap();
    assert_eq!(v1, stack.schema_v1);
    let empty = TestRegistry::start().await;

    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("output.csv");
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.path().join("bids.db").display());
    let at_empty = |kind: &str, group: &str| {
        let mut settings = stack.settings(kind, group);
        settings.registry = RegistrySettings::new(&empty.url);
        settings
    };
    let csv = RunningSink::spawn(
        at_empty("csv", "empty-registry-csv"),
        CsvDestination::new(CsvSettings {
            path: csv_path.clone(),
            rotate_daily: false,
        }),
    );
    let sqlite = RunningSink::spawn(
        at_empty("sqlite", "empty-registry-sqlite"),
        sql_target(&sqlite_url, "bid").await,
    );

    // Both notice the unknown id and say which one.
    for (name, sink) in [("csv", &csv), ("sqlite", &sqlite)] {
        wait_until(
            Duration::from_secs(60),
            &format!("the {name} sink waits for an unknown schema id"),
            || async {
                sink.reason()
                    .contains("is not known to the schema registry")
            },
        )
        .await;
        let reason = sink.reason();
        assert!(
            reason.contains(&format!("schema id {v1} "))
                || reason.contains(&format!("schema id {v2} ")),
            "{name}: the reason names the id: {reason}"
        );
        assert!(
            reason.contains(&empty.url),
            "{name}: and the registry: {reason}"
        );
        println!("{name} not ready: {reason}");
    }
    // A few seconds of the empty registry: several retries, and the 1 s auto-commit several
    // times over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let reader = sql_target(&sqlite_url, "bid").await;
    for (name, sink, group) in [
        ("csv", &csv, "empty-registry-csv"),
        ("sqlite", &sqlite, "empty-registry-sqlite"),
    ] {
        assert!(
            !sink.readiness.get(),
            "{name} is not ready while the ids are unknown"
        );
        let progress = sink.progress.snapshot();
        assert_eq!(progress.dead_letters, 0, "{name}: {progress:?}");
        assert_eq!(progress.written, 0, "{name}: {progress:?}");
        assert_eq!(
            committed(&stack.broker.bootstrap, group, &stack.topic, PARTITIONS),
            vec![None; PARTITIONS as usize],
            "{name} committed nothing"
        );
    }
    assert!(csv_rows(&csv_path).is_empty());
    // The table is created with the first write: none yet.
    assert_eq!(reader.stored_rows().await.map(|r| r.len()).unwrap_or(0), 0);
    assert_eq!(
        end_offsets(&stack.broker.bootstrap, &stack.dead_letter_topic, 1),
        vec![0],
        "no dead letter"
    );

    // The same schemas, in the same order, get the same ids.
    let ids =
        registry::preload_bid_schemas(&empty.store, &subject).expect("registering the bid schemas");
    assert_eq!(
        ids,
        (v1, v2),
        "the second registry hands out the producers' ids"
    );

    // The sink's own count moves once a batch is durable; the file is read after that.
    wait_until(
        Duration::from_secs(60),
        "every bid is in the CSV file",
        || async { csv.progress.snapshot().written >= total },
    )
    .await;
    wait_until(
        Duration::from_secs(60),
        "every bid is in SQLite",
        || async { reader.stored_rows().await.map(|r| r.len()).unwrap_or(0) >= total },
    )
    .await;
    let ends = end_offsets(&stack.broker.bootstrap, &stack.topic, PARTITIONS);
    for (name, sink, group) in [
        ("csv", &csv, "empty-registry-csv"),
        ("sqlite", &sqlite, "empty-registry-sqlite"),
    ] {
        wait_until(
            Duration::from_secs(30),
            &format!("{name} is ready again"),
            || async { sink.readiness.get() },
        )
        .await;
        wait_until(
            Duration::from_secs(30),
            &format!("{name} committed the whole topic"),
            || async {
                committed(&stack.broker.bootstrap, group, &stack.topic, PARTITIONS)
                    == ends.iter().map(|end| Some(*end)).collect::<Vec<_>>()
            },
        )
        .await;
    }
    for rows in [csv_rows(&csv_path), sql_rows(&reader).await] {
        assert_eq!(rows.len(), total);
        assert_exactly_once(&rows, &bids);
        assert_eq!(
            rows.iter().filter(|r| r.name.starts_with("demo ")).count(),
            20
        );
    }
    for sink in [csv, sqlite] {
        let summary = sink.stop().await;
        assert_eq!(summary.written, total);
        assert_eq!(summary.dead_letters, 0);
    }
    assert_eq!(
        end_offsets(&stack.broker.bootstrap, &stack.dead_letter_topic, 1),
        vec![0],
        "still no dead letter"
    );
}
