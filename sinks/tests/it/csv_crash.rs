//! The CSV target across crashes: a batch written but not checkpointed is cut off and written
//! again; a batch checkpointed but not committed to Kafka is skipped when redelivered.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use auction_sinks::Destination;
use auction_sinks::destination::csv_file::{CsvDestination, CsvSettings};
use chrono::NaiveDate;

use crate::helpers::{csv_rows, record};

fn settings(dir: &tempfile::TempDir, rotate_daily: bool) -> CsvSettings {
    CsvSettings {
        path: dir.path().join("output.csv"),
        rotate_daily,
    }
}

#[tokio::test]
async fn a_batch_written_but_not_checkpointed_is_cut_off_and_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = [record("a", 1, 0, 0), record("b", 2, 0, 1)];
    let second = [record("c", 3, 0, 2), record("d", 4, 1, 0)];
    let mut target = CsvDestination::new(settings(&dir, false));
    target.write(&first).await.unwrap();
    drop(target);

    // The process died after appending the second batch but before its checkpoint.
    let path = dir.path().join("output.csv");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(b"torn,partial,row-without-end").unwrap();
    drop(file);

    let mut restarted = CsvDestination::new(settings(&dir, false));
    // Kafka redelivers from the last commit: the first batch (checkpointed, not committed) and
    // the second.
    let outcome = restarted
        .write(&[first.as_slice(), second.as_slice()].concat())
        .await
        .unwrap();
    assert_eq!((outcome.written, outcome.duplicates), (2, 2));
    let rows = csv_rows(&path);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("torn"), "{text}");
    assert_eq!(text.matches("bid_id,auction_id").count(), 1, "one header");
}

#[tokio::test]
async fn daily_rotation_starts_a_file_per_day_with_its_own_header() {
    let dir = tempfile::tempdir().unwrap();
    let day = Arc::new(AtomicU32::new(23));
    let clock_day = Arc::clone(&day);
    let clock = Arc::new(move || {
        NaiveDate::from_ymd_opt(2026, 11, clock_day.load(Ordering::SeqCst)).unwrap()
    });
    let mut target = CsvDestination::with_clock(settings(&dir, true), clock.clone());
    target.write(&[record("a", 1, 0, 0)]).await.unwrap();
    day.store(24, Ordering::SeqCst);
    target.write(&[record("b", 2, 0, 1)]).await.unwrap();

    // A crash right after appending to the second day's file, then a restart a day later.
    let second_day = dir.path().join("output-2026-11-24.csv");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&second_day)
        .unwrap();
    file.write_all(b"unchecked\r\n").unwrap();
    drop(file);
    day.store(25, Ordering::SeqCst);
    let mut restarted = CsvDestination::with_clock(settings(&dir, true), clock);
    restarted
        .write(&[record("b-again", 2, 0, 1), record("c", 3, 0, 2)])
        .await
        .unwrap();

    let rows = |d: u32| csv_rows(&dir.path().join(format!("output-2026-11-{d}.csv")));
    assert_eq!(rows(23).len(), 1);
    assert_eq!(rows(24).len(), 1, "the unchecked tail was cut off");
    assert_eq!(
        rows(25).iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["c"]
    );
}
