//! The CSV destination: the demo's `output.csv`, made crash-safe.
//!
//! - RFC 4180 through the `csv` crate; one header row when a file is started.
//! - A cell that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or
//!   CR) gets a leading `'`, so `=HYPERLINK(...)` shows as text.
//! - Each batch is appended and fsynced, then a checkpoint beside the file is replaced atomically
//!   (write, fsync, rename, fsync the directory) with the file's length and the next offset of each
//!   partition; only then does the runtime store the Kafka offsets. On start, bytes past the
//!   checkpointed length (a batch written but not checkpointed when the process died) are cut off,
//!   and records below the checkpointed offsets are skipped: a crash at any point neither loses a
//!   record nor appends one twice.
//! - Optional daily rotation (`output-YYYY-MM-DD.csv`, by the UTC date of writing). The switch
//!   to a new file is checkpointed before the first record goes into it.
//!
//! One CSV sink instance owns a file; two instances must not share a path.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::demo_csv;
use super::results_csv::{ResultsFile, results_path_beside};
use super::{Destination, ResultRecord, SinkRecord, WriteOutcome};

/// The columns, in order: the table's columns.
pub const HEADER: [&str; 7] = [
    "bid_id",
    "auction_id",
    "name",
    "price",
    "bid_ts",
    "kafka_partition",
    "kafka_offset",
];

/// The `bid_id` of every row of a CSV file the sink wrote, in file order (a row written twice
/// appears twice), for audits and diagnostics. A missing file has no rows.
pub fn stored_bid_ids(path: &Path) -> Result<Vec<String>, CsvError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CsvError::Io {
                what: "cannot open",
                path: path.display().to_string(),
                source,
            });
        }
    };
    let mut ids = Vec::new();
    for record in csv::Reader::from_reader(io::BufReader::new(file)).records() {
        let record = record.map_err(|e| CsvError::Io {
            what: "cannot read a row of",
            path: path.display().to_string(),
            source: io::Error::other(e),
        })?;
        if let Some(id) = record.get(0) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

/// Where to write.
#[derive(Debug, Clone)]
pub struct CsvSettings {
    /// The file (`output.csv` by default); with rotation, the date goes before the extension.
    pub path: PathBuf,
    /// Start a new file every UTC day.
    pub rotate_daily: bool,
}

/// Why a CSV write failed. Every I/O error is retried (a full disk gets space again); none is
/// the records' fault.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The file holds rows of another layout than the sink's or the demo's.
    #[error(
        "{path} is not a file this sink can append to: {reason}; move it away or choose another file"
    )]
    Foreign {
        /// The file.
        path: String,
        /// What it holds.
        reason: String,
    },
    /// The checkpoint file cannot be read.
    #[error(
        "the checkpoint {path} is not valid ({reason}); move it away only if the CSV file is new"
    )]
    Checkpoint {
        /// The checkpoint file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn io_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> CsvError + 'a {
    move |source| CsvError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// What the checkpoint file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    /// The file being appended to.
    file: Option<PathBuf>,
    /// Its length after the last durable batch.
    length: u64,
    /// The next offset to write, by `topic/partition`.
    offsets: BTreeMap<String, i64>,
}

/// A clock that says which day it is, so tests can move through days.
pub type Today = Arc<dyn Fn() -> NaiveDate + Send + Sync>;

struct State {
    settings: CsvSettings,
    checkpoint_path: PathBuf,
    checkpoint: Option<Checkpoint>,
    open: Option<(PathBuf, File, u64)>,
    today: Today,
}

/// Appends bids to a CSV file, and closed auctions' results to a file of their own beside it
/// (`output.csv` → `output-results.csv`, not rotated).
pub struct CsvDestination {
    state: Arc<Mutex<State>>,
    results: Arc<Mutex<ResultsFile>>,
}

impl std::fmt::Debug for CsvDestination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvDestination").finish_non_exhaustive()
    }
}

impl CsvDestination {
    /// A target writing to `settings.path`, with its checkpoint at `<path>.checkpoint`.
    pub fn new(settings: CsvSettings) -> Self {
        Self::with_clock(settings, Arc::new(|| Utc::now().date_naive()))
    }

    /// Like [`CsvDestination::new`] with another clock for rotation.
    pub fn with_clock(settings: CsvSettings, today: Today) -> Self {
        let mut checkpoint_path = settings.path.clone().into_os_string();
        checkpoint_path.push(".checkpoint");
        Self {
            results: Arc::new(Mutex::new(ResultsFile::new(results_path_beside(
                &settings.path,
            )))),
            state: Arc::new(Mutex::new(State {
                checkpoint_path: PathBuf::from(checkpoint_path),
                settings,
                checkpoint: None,
                open: None,
                today,
            })),
        }
    }

    /// The file records go to now.
    pub fn current_file(&self) -> PathBuf {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.file_for_today()
    }
}

/// The text of a cell, neutralised against formula injection.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

impl State {
    fn file_for_today(&self) -> PathBuf {
        if !self.settings.rotate_daily {
            return self.settings.path.clone();
        }
        let path = &self.settings.path;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".to_owned());
        let date = (self.today)().format("%Y-%m-%d");
        let name = match path.extension() {
            Some(ext) => format!("{stem}-{date}.{}", ext.to_string_lossy()),
            None => format!("{stem}-{date}"),
        };
        path.with_file_name(name)
    }

    fn load_checkpoint(&mut self) -> Result<Checkpoint, CsvError> {
        if let Some(checkpoint) = &self.checkpoint {
            return Ok(checkpoint.clone());
        }
        let path = self.checkpoint_path.clone();
        let checkpoint = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| CsvError::Checkpoint {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Checkpoint::default(),
            Err(e) => return Err(io_error("cannot read the checkpoint", &path)(e)),
        };
        self.checkpoint = Some(checkpoint.clone());
        Ok(checkpoint)
    }

    fn save_checkpoint(&mut self, checkpoint: Checkpoint) -> Result<(), CsvError> {
        let path = self.checkpoint_path.clone();
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let json = serde_json::to_vec_pretty(&checkpoint).map_err(|e| CsvError::Checkpoint {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut file = File::create(&temporary)
            .map_err(io_error("cannot write the checkpoint", &temporary))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(io_error("cannot write the checkpoint", &temporary))?;
        std::fs::rename(&temporary, &path)
            .map_err(io_error("cannot replace the checkpoint", &path))?;
        sync_directory(&path)?;
        self.checkpoint = Some(checkpoint);
        Ok(())
    }

    /// Opens `path` for appending, cutting off whatever lies past the checkpointed length.
    fn open(&mut self, path: &Path, checkpoint: &mut Checkpoint) -> Result<(), CsvError> {
        if self.open.as_ref().is_some_and(|(p, _, _)| p == path) {
            return Ok(());
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(io_error("cannot create the directory of", path))?;
        }
        if checkpoint.file.as_deref() != Some(path) {
            // A file the checkpoint does not know may be the demo's: upgraded to the sink's
            // layout first (and refused if it is someone else's).
            demo_csv::upgrade(path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error("cannot open", path))?;
        let actual = file
            .metadata()
            .map_err(io_error("cannot inspect", path))?
            .len();
        let switching = checkpoint.file.as_deref() != Some(path);
        if switching && let Some(previous) = checkpoint.file.clone() {
            cut_to_checkpoint(&previous, checkpoint.length)?;
        }
        let length = if switching {
            // A file the checkpoint does not know (first run, the demo's old file, a new day):
            // what it holds is kept. The switch is checkpointed before anything is appended, so
            // a crash after this point truncates back to here.
            checkpoint.file = Some(path.to_path_buf());
            checkpoint.length = actual;
            self.save_checkpoint(checkpoint.clone())?;
            actual
        } else if actual > checkpoint.length {
            tracing::warn!(
                file = %path.display(),
                bytes = actual - checkpoint.length,
                "cutting off a batch that was written but not checkpointed before a crash; it is written again"
            );
            file.set_len(checkpoint.length)
                .and_then(|()| file.sync_all())
                .map_err(io_error("cannot truncate", path))?;
            checkpoint.length
        } else {
            if actual < checkpoint.length {
                tracing::warn!(file = %path.display(), "the CSV file is shorter than its checkpoint says; someone truncated it");
                checkpoint.length = actual;
            }
            actual
        };
        self.open = Some((path.to_path_buf(), file, length));
        Ok(())
    }

    fn write(&mut self, batch: &[SinkRecord]) -> Result<WriteOutcome, CsvError> {
        let mut checkpoint = self.load_checkpoint()?;
        let fresh: Vec<&SinkRecord> = batch
            .iter()
            .filter(|r| {
                let key = partition_key(&r.position.topic, r.position.partition);
                checkpoint
                    .offsets
                    .get(&key)
                    .is_none_or(|next| r.position.offset >= *next)
            })
            .collect();
        let duplicates = batch.len() - fresh.len();
        if fresh.is_empty() {
            return Ok(WriteOutcome {
                written: 0,
                duplicates,
            });
        }
        let path = self.file_for_today();
        self.open(&path, &mut checkpoint)?;
        let Some((_, file, length)) = self.open.as_mut() else {
            return Ok(WriteOutcome::default());
        };

        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::with_capacity(fresh.len() * 96));
        let csv_error = |e: csv::Error| CsvError::Io {
            what: "cannot format a record for",
            path: path.display().to_string(),
            source: io::Error::other(e.to_string()),
        };
        if *length == 0 {
            writer.write_record(HEADER).map_err(csv_error)?;
        }
        for record in &fresh {
            let bid = &record.bid;
            let bid_id = bid.bid_id.to_string();
            let price = bid.price.get().to_string();
            let bid_ts = bid.bid_ts.to_rfc3339();
            let partition = record.position.partition.to_string();
            let offset = record.position.offset.to_string();
            let cells = [
                bid_id.as_str(),
                bid.auction_id.as_str(),
                bid.name.as_str(),
                price.as_str(),
                bid_ts.as_str(),
                partition.as_str(),
                offset.as_str(),
            ];
            writer
                .write_record(cells.iter().map(|c| neutralise(c).into_owned()))
                .map_err(csv_error)?;
        }
        let bytes = writer.into_inner().map_err(|e| CsvError::Io {
            what: "cannot format records for",
            path: path.display().to_string(),
            source: io::Error::other(e.to_string()),
        })?;

        let result = (|| {
            use std::io::{Seek, SeekFrom};
            file.seek(SeekFrom::Start(*length))?;
            file.write_all(&bytes)?;
            file.sync_data()
        })();
        if let Err(e) = result {
            // The file may hold part of the batch now: reopen, which cuts back to the checkpoint.
            self.open = None;
            return Err(io_error("cannot append to", &path)(e));
        }
        *length += bytes.len() as u64;
        checkpoint.length = *length;
        for record in &fresh {
            let key = partition_key(&record.position.topic, record.position.partition);
            let next = checkpoint.offsets.entry(key).or_insert(0);
            *next = (*next).max(record.position.offset + 1);
        }
        if let Err(e) = self.save_checkpoint(checkpoint) {
            self.open = None;
            return Err(e);
        }
        Ok(WriteOutcome {
            written: fresh.len(),
            duplicates,
        })
    }
}

/// Cuts a file left behind by a switch back to its checkpointed length (a batch written into it
/// but not checkpointed before a crash is written again, into the new file).
fn cut_to_checkpoint(path: &Path, length: u64) -> Result<(), CsvError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("cannot open", path)(e)),
    };
    let actual = file
        .metadata()
        .map_err(io_error("cannot inspect", path))?
        .len();
    if actual > length {
        file.set_len(length)
            .and_then(|()| file.sync_all())
            .map_err(io_error("cannot truncate", path))?;
    }
    Ok(())
}

fn sync_directory(path: &Path) -> Result<(), CsvError> {
    let directory = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|d| d.sync_all())
        .map_err(io_error("cannot sync the directory", directory))
}

/// Runs the file work `work` on `shared` in a blocking thread, off the async runtime.
async fn off_the_runtime<S: Send + 'static>(
    shared: &Arc<Mutex<S>>,
    work: impl FnOnce(&mut S) -> Result<WriteOutcome, CsvError> + Send + 'static,
) -> Result<WriteOutcome, CsvError> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        work(
            &mut shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    })
    .await
    .unwrap_or_else(|e| {
        Err(CsvError::Io {
            what: "the writer thread failed for",
            path: String::new(),
            source: io::Error::other(e.to_string()),
        })
    })
}

impl Destination for CsvDestination {
    type Error = CsvError;

    fn kind(&self) -> &'static str {
        "csv"
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<WriteOutcome, CsvError> {
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let batch = batch.to_vec();
        off_the_runtime(&self.state, move |state| state.write(&batch)).await
    }

    fn is_retriable(&self, error: &CsvError) -> bool {
        !matches!(error, CsvError::Foreign { .. })
    }

    async fn rows_from_elsewhere(&mut self) -> Result<u64, CsvError> {
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            let mut state = state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let checkpoint = state.load_checkpoint()?;
            let mut files = vec![state.file_for_today()];
            if state.settings.rotate_daily {
                // The demo's undated file, which a rotating sink leaves as it is.
                files.push(state.settings.path.clone());
            }
            let mut count = 0;
            for file in files {
                if checkpoint.file.as_deref() != Some(file.as_path()) {
                    if file == state.file_for_today() {
                        demo_csv::upgrade(&file)?;
                    } else {
                        // The demo's undated file beside a rotating sink stays as it is.
                        count += demo_csv::rows_of_demo_layout(&file)?;
                        continue;
                    }
                }
                count += demo_csv::rows_without_position(&file)?;
            }
            Ok(count)
        })
        .await
        .unwrap_or_else(|e| {
            Err(CsvError::Io {
                what: "the file thread failed for",
                path: String::new(),
                source: io::Error::other(e.to_string()),
            })
        })
    }

    fn takes_results(&self) -> bool {
        true
    }

    async fn write_results(&mut self, results: &[ResultRecord]) -> Result<WriteOutcome, CsvError> {
        if results.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let results = results.to_vec();
        off_the_runtime(&self.results, move |file| file.write(&results)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_cells_round_trip_through_rfc4180_and_none_reads_as_a_formula(
            cells in prop::collection::vec(any::<String>(), 1..6)
        ) {
            let written: Vec<String> = cells.iter().map(|c| neutralise(c).into_owned()).collect();
            let mut writer = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new());
            writer.write_record(&written).unwrap();
            let bytes = writer.into_inner().unwrap();
            let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
            let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            prop_assert_eq!(records.len(), 1);
            let read: Vec<&str> = records[0].iter().collect();
            prop_assert_eq!(&read, &written);
            for (cell, original) in read.iter().zip(&cells) {
                prop_assert!(!matches!(cell.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r')));
                // Nothing is lost: the neutralised cell is the original, prefixed at most.
                prop_assert!(*cell == original || cell.strip_prefix('\'') == Some(original.as_str()));
            }
        }
    }

    #[test]
    fn formula_cells_are_neutralised_and_others_left_alone() {
        assert_eq!(neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralise("+1"), "'+1");
        assert_eq!(neutralise("-1"), "'-1");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("\rx"), "'\rx");
        assert_eq!(neutralise("Ada = Lovelace"), "Ada = Lovelace");
        assert_eq!(neutralise(""), "");
    }

    #[test]
    fn rfc4180_quotes_commas_quotes_and_newlines() {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        writer
            .write_record(["a,b", "say \"hi\"", "line\nbreak", "plain"])
            .unwrap();
        let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
        assert_eq!(text, "\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\",plain\r\n");
    }
}
