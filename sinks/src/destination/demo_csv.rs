//! The original demo's `output.csv` (rows of name, price and time, no ids) upgraded in place to
//! the sink's layout, as the MySQL migration upgrades the demo's table: a header, and each of the
//! demo's rows with a new random `bid_id`, the `default` auction and no Kafka position (the demo
//! never recorded one). The original is kept beside it as `<file>.demo`.
//!
//! The upgrade is crash-safe: the copy is made first, the upgraded file replaces the original by
//! a rename, and a crash before the rename leaves the demo's file to be upgraded again.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use auction_schemas::BidTimestamp;

use super::csv_file::{CsvError, HEADER, io_error, neutralise};

/// What a CSV file holds, by its first row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// No file, or an empty one.
    Empty,
    /// The sink's header and rows.
    Sink,
    /// The demo's rows of three cells (with or without a `name,price,bid_ts` header).
    Demo,
}

/// The layout of the file at `path` (see [`layout_of`]).
#[cfg(test)]
fn layout(path: &Path) -> Result<Layout, CsvError> {
    layout_of(path, &read_rows(path)?.unwrap_or_default())
}

/// The layout of a file's `rows` (read once by the caller); a file that is neither the sink's nor
/// the demo's is refused with a sentence (the sink must not append its rows to someone else's
/// file).
fn layout_of(path: &Path, rows: &[Vec<String>]) -> Result<Layout, CsvError> {
    match rows.first() {
        None => Ok(Layout::Empty),
        Some(first) if first.iter().eq(HEADER) => Ok(Layout::Sink),
        Some(_) if rows.iter().all(|row| row.len() == 3) => Ok(Layout::Demo),
        Some(first) => Err(CsvError::Foreign {
            path: path.display().to_string(),
            reason: format!(
                "its first row has {} cells ({}), neither the sink's header nor the demo's \
                 name, price and time",
                first.len(),
                first
                    .iter()
                    .take(7)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }),
    }
}

/// Upgrades the demo's file at `path` to the sink's layout; does nothing to any other file.
/// Returns how many of the demo's rows it carried over.
pub(crate) fn upgrade(path: &Path) -> Result<u64, CsvError> {
    let rows = read_rows(path)?.unwrap_or_default();
    if layout_of(path, &rows)? != Layout::Demo {
        return Ok(0);
    }
    let backup = suffixed(path, ".demo");
    std::fs::copy(path, &backup)
        .and_then(|_| File::open(&backup)?.sync_all())
        .map_err(io_error(
            "cannot keep a copy of the demo's file as",
            &backup,
        ))?;
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let format_error = |e: csv::Error| CsvError::Io {
        what: "cannot format the upgrade of",
        path: path.display().to_string(),
        source: io::Error::other(e.to_string()),
    };
    writer.write_record(HEADER).map_err(format_error)?;
    let mut carried = 0;
    for row in rows.iter().filter(|row| !is_demo_header(row)) {
        // The demo's time (`str(datetime.now())`) is written as the sink writes times; a cell
        // that is not a time is kept as it was.
        let bid_ts = BidTimestamp::parse(&row[2])
            .map(BidTimestamp::to_rfc3339)
            .unwrap_or_else(|_| row[2].clone());
        let bid_id = uuid::Uuid::new_v4().to_string();
        let cells = [
            bid_id.as_str(),
            "default",
            &row[0],
            &row[1],
            &bid_ts,
            "",
            "",
        ];
        writer
            .write_record(cells.iter().map(|c| neutralise(c).into_owned()))
            .map_err(format_error)?;
        carried += 1;
    }
    let bytes = writer.into_inner().map_err(|e| CsvError::Io {
        what: "cannot format the upgrade of",
        path: path.display().to_string(),
        source: io::Error::other(e.to_string()),
    })?;
    let temporary = suffixed(path, ".upgrading");
    File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .map_err(io_error("cannot write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(io_error("cannot replace", path))?;
    if let Some(directory) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(directory)
            .and_then(|d| d.sync_all())
            .map_err(io_error("cannot sync the directory", directory))?;
    }
    tracing::info!(file = %path.display(), rows = carried, backup = %backup.display(),
        "upgraded the demo's CSV file to the sink's layout");
    Ok(carried)
}

/// How many rows of the sink's file at `path` carry no Kafka position (the demo's, carried over
/// by [`upgrade`]). A file of another layout counts as none.
pub(crate) fn rows_without_position(path: &Path) -> Result<u64, CsvError> {
    let rows = read_rows(path)?.unwrap_or_default();
    if layout_of(path, &rows)? != Layout::Sink {
        return Ok(0);
    }
    Ok(rows
        .iter()
        .skip(1)
        .filter(|row| row.get(5).is_none_or(String::is_empty))
        .count() as u64)
}

/// How many bids the file at `path` holds if it is the demo's (its header row aside); none for a
/// file of another layout.
pub(crate) fn rows_of_demo_layout(path: &Path) -> Result<u64, CsvError> {
    let rows = read_rows(path)?.unwrap_or_default();
    if layout_of(path, &rows)? != Layout::Demo {
        return Ok(0);
    }
    Ok(rows.iter().filter(|row| !is_demo_header(row)).count() as u64)
}

fn is_demo_header(row: &[String]) -> bool {
    row.iter()
        .map(String::as_str)
        .eq(["name", "price", "bid_ts"])
}

/// Every row of the file, `None` when there is no file.
fn read_rows(path: &Path) -> Result<Option<Vec<Vec<String>>>, CsvError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot open", path)(e)),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(io::BufReader::new(file));
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| CsvError::Io {
            what: "cannot read a row of",
            path: path.display().to_string(),
            source: io::Error::other(e.to_string()),
        })?;
        rows.push(record.iter().map(str::to_owned).collect());
    }
    Ok(Some(rows))
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demos_file_is_upgraded_in_place_and_kept_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.csv");
        let demo =
            "Ada,10,2026-11-23 10:00:00.250000\r\n\"Grace, Hopper\",12,2026-11-23 10:00:01\r\n";
        std::fs::write(&path, demo).unwrap();
        assert_eq!(layout(&path).unwrap(), Layout::Demo);
        assert_eq!(upgrade(&path).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(suffixed(&path, ".demo")).unwrap(),
            demo
        );
        let rows = read_rows(&path).unwrap().unwrap();
        assert!(rows[0].iter().eq(HEADER));
        assert_eq!(
            rows[1][1..],
            [
                "default",
                "Ada",
                "10",
                "2026-11-23T10:00:00.250000Z",
                "",
                ""
            ]
        );
        assert_eq!(rows[2][2], "Grace, Hopper");
        assert!(uuid::Uuid::parse_str(&rows[1][0]).is_ok());
        assert_eq!(rows_without_position(&path).unwrap(), 2);
        // Once upgraded, it is the sink's file: a second start changes nothing.
        let upgraded = std::fs::read(&path).unwrap();
        assert_eq!(upgrade(&path).unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), upgraded);
    }

    #[test]
    fn a_demo_header_row_is_dropped_and_a_foreign_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("output.csv");
        std::fs::write(&path, "name,price,bid_ts\nAda,10,2026-11-23 10:00:00\n").unwrap();
        assert_eq!(upgrade(&path).unwrap(), 1);
        assert_eq!(read_rows(&path).unwrap().unwrap().len(), 2);
        let other = dir.path().join("other.csv");
        std::fs::write(&other, "a,b\nc,d\n").unwrap();
        let error = layout(&other).unwrap_err().to_string();
        assert!(
            error.contains("neither the sink's header nor the demo's"),
            "{error}"
        );
        assert_eq!(
            layout(&dir.path().join("missing.csv")).unwrap(),
            Layout::Empty
        );
    }
}
