//! Closed auctions' results in a CSV file of their own (`output-results.csv` beside
//! `output.csv` by default): header once, RFC 4180, formula-like cells neutralised, one line per
//! auction. A result whose auction id the file already holds is not written again, so a
//! redelivery after a crash adds nothing; a line cut short by a crash is removed at the next start.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::csv_file::{CsvError, io_error, neutralise};
use super::{ResultRecord, WriteOutcome};

/// The columns, in order.
pub const RESULTS_HEADER: [&str; 11] = [
    "auction_id",
    "title",
    "seller",
    "sold",
    "winner",
    "final_price",
    "winning_bid_id",
    "bid_count",
    "closed_at",
    "kafka_partition",
    "kafka_offset",
];

/// The results file next to a bid file: `output.csv` → `output-results.csv`.
pub fn results_path_beside(bids: &Path) -> PathBuf {
    let stem = bids
        .file_stem()
        .map_or_else(|| "output".into(), |s| s.to_string_lossy().into_owned());
    let extension = bids
        .extension()
        .map_or_else(|| "csv".into(), |e| e.to_string_lossy().into_owned());
    bids.with_file_name(format!("{stem}-results.{extension}"))
}

/// The results file, opened lazily.
#[derive(Debug)]
pub struct ResultsFile {
    path: PathBuf,
    open: Option<(File, HashSet<String>, u64)>,
}

impl ResultsFile {
    /// The file at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path, open: None }
    }

    /// Opens the file: drops a line cut short by a crash and reads the auction ids it holds.
    fn open(&mut self) -> Result<(), CsvError> {
        if self.open.is_some() {
            return Ok(());
        }
        let path = &self.path;
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_error("cannot open", path))?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)
            .map_err(io_error("cannot read", path))?;
        let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < text.len() {
            file.set_len(complete as u64)
                .and_then(|()| file.sync_all())
                .map_err(io_error("cannot truncate", path))?;
            tracing::warn!(path = %path.display(), "removed a results line cut short by a crash");
        }
        file.seek(SeekFrom::End(0))
            .map_err(io_error("cannot seek", path))?;
        let mut ids = HashSet::new();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(&text[..complete]);
        for record in reader.records() {
            let record = record.map_err(|e| CsvError::Io {
                what: "cannot parse",
                path: path.display().to_string(),
                source: io::Error::other(e.to_string()),
            })?;
            if let Some(id) = record.get(0) {
                ids.insert(id.to_owned());
            }
        }
        self.open = Some((file, ids, complete as u64));
        Ok(())
    }

    /// Appends the results whose auction the file does not hold yet, then syncs the file.
    pub fn write(&mut self, results: &[ResultRecord]) -> Result<WriteOutcome, CsvError> {
        self.open()?;
        let path = self.path.clone();
        let Some((file, ids, length)) = self.open.as_mut() else {
            return Ok(WriteOutcome::default());
        };
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        let csv_error = |e: csv::Error| CsvError::Io {
            what: "cannot format a result for",
            path: path.display().to_string(),
            source: io::Error::other(e.to_string()),
        };
        if *length == 0 {
            writer.write_record(RESULTS_HEADER).map_err(csv_error)?;
        }
        let mut outcome = WriteOutcome::default();
        let mut added = Vec::new();
        for record in results {
            let r = &record.result;
            if ids.contains(&r.auction_id) || added.contains(&r.auction_id) {
                outcome.duplicates += 1;
                continue;
            }
            let cells = [
                r.auction_id.clone(),
                neutralise(&r.title).into_owned(),
                neutralise(&r.seller).into_owned(),
                r.sold.to_string(),
                neutralise(r.winner.as_deref().unwrap_or_default()).into_owned(),
                r.final_price.map(|p| p.to_string()).unwrap_or_default(),
                r.winning_bid_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                r.bid_count.to_string(),
                r.closed_at.clone(),
                record.position.partition.to_string(),
                record.position.offset.to_string(),
            ];
            writer.write_record(&cells).map_err(csv_error)?;
            added.push(r.auction_id.clone());
            outcome.written += 1;
        }
        let bytes = writer.into_inner().map_err(|e| CsvError::Io {
            what: "cannot format results for",
            path: path.display().to_string(),
            source: io::Error::other(e.to_string()),
        })?;
        if outcome.written > 0 {
            file.write_all(&bytes)
                .and_then(|()| file.sync_all())
                .map_err(io_error("cannot append to", &path))?;
            *length += bytes.len() as u64;
            ids.extend(added);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::SourcePosition;
    use auction_schemas::result::AuctionResult;

    fn result(id: &str, offset: i64) -> ResultRecord {
        ResultRecord {
            result: AuctionResult {
                auction_id: id.into(),
                title: "=SUM(A1)".into(),
                seller: "Sam".into(),
                sold: true,
                winner: Some("Ada, Lovelace".into()),
                final_price: Some(41),
                winning_bid_id: None,
                bid_count: 3,
                closed_at: "2026-11-30T16:00:00.000Z".into(),
            },
            position: SourcePosition {
                topic: "auction.results".into(),
                partition: 0,
                offset,
            },
        }
    }

    #[test]
    fn each_auction_is_written_once_and_a_torn_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = results_path_beside(&dir.path().join("output.csv"));
        assert!(path.ends_with("output-results.csv"));
        let mut file = ResultsFile::new(path.clone());
        let first = file.write(&[result("a", 0), result("b", 1)]).unwrap();
        assert_eq!((first.written, first.duplicates), (2, 0));
        // A crash leaves half a line; a new writer (a restart) drops it and skips what is there.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"c,half")
            .unwrap();
        let mut file = ResultsFile::new(path.clone());
        let again = file.write(&[result("b", 1), result("c", 2)]).unwrap();
        assert_eq!((again.written, again.duplicates), (1, 1));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("auction_id,title,seller,sold,winner"));
        assert!(
            lines[1].starts_with("a,'=SUM(A1),Sam"),
            "neutralised: {}",
            lines[1]
        );
        assert!(
            lines[1].contains("\"Ada, Lovelace\""),
            "quoted: {}",
            lines[1]
        );
        assert!(lines[3].starts_with("c,"));
    }
}
