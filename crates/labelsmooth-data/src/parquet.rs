//! Apache Parquet tables, read with the `parquet` crate's row reader into the fields of a table
//! (the column names first), so that they are read by the same rules as CSV tables.

use std::path::Path;

use parquet::file::reader::{ChunkReader, FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::{DataError, Result};

/// The rows of the Parquet file `path` as text fields, the column names first: numbers as they
/// print (`f64` and `f32` exactly), booleans as 1 and 0, strings as they are, null as an empty
/// field (a missing value). Rows are numbered as lines of a CSV file with a header: the first
/// row of data is 2. Nested columns (lists, maps, groups) are an error that names the column.
pub(crate) fn rows(path: &Path) -> Result<Vec<(usize, Vec<String>)>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    rows_of(path, file)
}

/// [`rows`] of a Parquet file held in memory; `path` names it in errors.
pub(crate) fn parse_rows(path: &Path, bytes: &[u8]) -> Result<Vec<(usize, Vec<String>)>> {
    rows_of(path, bytes::Bytes::copy_from_slice(bytes))
}

/// Reads the rows of `file`. The `parquet` crate asserts some of its invariants on the file's
/// contents instead of returning an error; the column chunks' byte ranges are checked here first,
/// and any other such assertion on a corrupt file is turned into an error, without its panic
/// message on stderr (other threads' panics are reported as before).
///
/// The crate also skips unknown Thrift fields element by element, so a corrupt page header that
/// declares a list of billions of empty elements keeps it busy for seconds or more; the reading
/// runs on its own thread and gives up after [`deadline`] with an error (the thread is left to
/// finish or to end with the process).
fn rows_of<R: ChunkReader + Send + 'static>(
    path: &Path,
    file: R,
) -> Result<Vec<(usize, Vec<String>)>> {
    let limit = deadline(file.len());
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("parquet".into())
        .spawn(move || {
            let _ = tx.send(guarded_rows(&owned, file));
        })
        .map_err(|e| DataError::io(path, e))?;
    use std::sync::mpsc::RecvTimeoutError;
    rx.recv_timeout(limit).unwrap_or_else(|e| {
        let why = match e {
            RecvTimeoutError::Timeout => format!(
                "the reader did not finish in {} s (a corrupt page header?)",
                limit.as_secs()
            ),
            RecvTimeoutError::Disconnected => "the reader stopped without an answer".into(),
        };
        Err(DataError::at(
            path,
            0,
            format!("not a readable Parquet file: {why}"),
        ))
    })
}

/// How long a Parquet file of `bytes` bytes may take to read: 60 s and 10 s per MB, far more
/// than a file that decodes takes.
fn deadline(bytes: u64) -> std::time::Duration {
    std::time::Duration::from_secs(60 + 10 * (bytes >> 20))
}

thread_local! {
    /// Whether this thread is inside [`guarded_rows`], whose panics are reported as errors.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs, once, a panic hook that stays silent for panics inside [`guarded_rows`] (they
/// become errors) and hands every other panic to the hook that was there before.
fn quiet_inside_guard() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(std::cell::Cell::get) {
                previous(info);
            }
        }));
    });
}

fn guarded_rows<R: ChunkReader + 'static>(
    path: &Path,
    file: R,
) -> Result<Vec<(usize, Vec<String>)>> {
    let read = std::panic::AssertUnwindSafe(|| read_rows(path, file));
    quiet_inside_guard();
    GUARDED.with(|g| g.set(true));
    let outcome = std::panic::catch_unwind(read);
    GUARDED.with(|g| g.set(false));
    outcome.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "corrupt contents".into());
        Err(DataError::at(
            path,
            0,
            format!("not a readable Parquet file: {why}"),
        ))
    })
}

fn read_rows<R: ChunkReader + 'static>(path: &Path, file: R) -> Result<Vec<(usize, Vec<String>)>> {
    let bad = |line: usize, e: &dyn std::fmt::Display| {
        DataError::at(path, line, format!("not a readable Parquet file: {e}"))
    };
    let size = file.len();
    let reader = SerializedFileReader::new(file).map_err(|e| bad(0, &e))?;
    for (g, group) in reader.metadata().row_groups().iter().enumerate() {
        for c in group.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(s, l)| s.checked_add(l))
                .is_some_and(|end| end <= size);
            if !inside {
                return Err(bad(
                    0,
                    &format!(
                        "row group {g}, column `{}`: its data ({len} bytes at offset {start}) lies outside the file ({size} bytes)",
                        c.column_path()
                    ),
                ));
            }
        }
    }
    let schema = reader.metadata().file_metadata().schema_descr();
    let header: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    if header.is_empty() {
        return Err(DataError::at(path, 0, "the Parquet file has no columns"));
    }
    let mut out = vec![(1, header)];
    for (i, row) in reader
        .get_row_iter(None)
        .map_err(|e| bad(0, &e))?
        .enumerate()
    {
        let line = i + 2;
        let row = row.map_err(|e| bad(line, &e))?;
        let fields = row
            .get_column_iter()
            .map(|(name, field)| {
                text(field).ok_or_else(|| {
                    DataError::at(
                        path,
                        line,
                        format!("column `{name}` holds {field}, not a number or a string"),
                    )
                })
            })
            .collect::<Result<Vec<String>>>()?;
        out.push((line, fields));
    }
    if out.len() == 1 {
        return Err(DataError::at(path, 0, "the table has a header but no rows"));
    }
    Ok(out)
}

/// One value as a table field; `None` for nested values.
fn text(field: &Field) -> Option<String> {
    Some(match field {
        Field::Null => String::new(),
        Field::Bool(b) => u8::from(*b).to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Float16(v) => v.to_string(),
        Field::Float(v) => v.to_string(),
        Field::Double(v) => v.to_string(),
        Field::Str(s) => s.clone(),
        Field::Bytes(b) => String::from_utf8_lossy(b.data()).into_owned(),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => return None,
        other => other.to_string(),
    })
}
