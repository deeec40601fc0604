//! CSV/TSV tables: numeric features with a label column, or a text column with a label column.

use std::path::Path;

use crate::{DataError, Dataset, Features, Result, TableLayout, class_ids};

/// Whether the first row names the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Header {
    /// It does.
    Yes,
    /// It does not.
    No,
    /// Decide from the content (see [`TableOptions`]).
    #[default]
    Auto,
}

impl std::str::FromStr for Header {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "yes" | "true" => Ok(Header::Yes),
            "no" | "false" => Ok(Header::No),
            "auto" => Ok(Header::Auto),
            other => Err(DataError::Unknown(format!(
                "header `{other}` is not one of yes, no, auto"
            ))),
        }
    }
}

/// A column, by header name or by 0-based index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// By header name.
    Name(String),
    /// By 0-based index.
    Index(usize),
}

impl std::str::FromStr for Column {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.parse::<usize>() {
            Ok(i) => Column::Index(i),
            Err(_) => Column::Name(s.to_string()),
        })
    }
}

/// What a table's missing values (see [`crate::is_missing`]) in feature columns become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Missing {
    /// NaN in the features, imputed with the training rows' median when the model's input is
    /// prepared (and with the saved median when a model predicts).
    #[default]
    Impute,
    /// An error naming the first one.
    Error,
}

impl std::str::FromStr for Missing {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "impute" => Ok(Missing::Impute),
            "error" => Ok(Missing::Error),
            other => Err(DataError::Unknown(format!(
                "missing `{other}` is not one of impute, error"
            ))),
        }
    }
}

/// How to read a table.
///
/// With [`Header::Auto`] the first row is a header when a column named by name is asked for,
/// when one of its feature fields is not a number while the next row's is, or (text tables) when
/// its label does not occur again in the label column while the labels below it repeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableOptions {
    /// Field delimiter; detected among `,` `;` and tab from the first line when `None`.
    pub delimiter: Option<u8>,
    /// Header row.
    pub header: Header,
    /// The label column (default: the last).
    pub label_column: Option<Column>,
    /// The text column of a text table (default: the first column that is not the label).
    pub text_column: Option<Column>,
    /// What missing feature values become.
    pub missing: Missing,
}

/// The delimiter among `,` `;` and tab that the first line holds most of (outside quotes).
pub(crate) fn detect_delimiter(bytes: &[u8]) -> u8 {
    let line = bytes
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty())
        .unwrap_or(&[]);
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in line {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for c in counts.iter_mut() {
                if c.0 == b {
                    c.1 += 1;
                }
            }
        }
    }
    counts
        .iter()
        .max_by_key(|c| c.1)
        .filter(|c| c.1 > 0)
        .map_or(b',', |c| c.0)
}

/// Rows of fields with their 1-based line numbers.
pub(crate) fn records(
    path: &Path,
    bytes: &[u8],
    delimiter: u8,
) -> Result<Vec<(usize, Vec<String>)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes);
    // Line numbers from the byte offsets: the reader's own count is one too low after CRLF line
    // ends, where it starts a record at the `\n` of the previous line's `\r\n`.
    let newlines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line_at = |p: Option<&csv::Position>| {
        p.map_or(0, |p| {
            let mut byte = usize::try_from(p.byte()).unwrap_or(usize::MAX);
            while byte < bytes.len() && matches!(bytes[byte], b'\r' | b'\n') {
                byte += 1;
            }
            1 + newlines.partition_point(|&n| n < byte)
        })
    };
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.map_err(|e| {
            let line = line_at(e.position());
            DataError::at(path, line, format!("not a valid CSV record: {e}"))
        })?;
        let line = line_at(rec.position());
        if rec.len() == 1 && rec[0].trim().is_empty() {
            continue;
        }
        out.push((line, rec.iter().map(|f| f.trim().to_string()).collect()));
    }
    if out.is_empty() {
        return Err(DataError::at(path, 0, "the file is empty"));
    }
    Ok(out)
}

fn resolve(
    path: &Path,
    col: &Column,
    header: Option<&[String]>,
    width: usize,
    what: &str,
) -> Result<usize> {
    match col {
        Column::Index(i) if *i < width => Ok(*i),
        Column::Index(i) => Err(DataError::at(
            path,
            0,
            format!("{what} column {i} does not exist: rows have {width} columns"),
        )),
        Column::Name(name) => header
            .and_then(|h| h.iter().position(|c| c == name))
            .ok_or_else(|| {
                DataError::at(
                    path,
                    1,
                    match header {
                        Some(h) => format!(
                            "no {what} column named `{name}` (columns: {})",
                            h.join(", ")
                        ),
                        None => format!(
                            "{what} column `{name}` asked by name, but the table has no header"
                        ),
                    },
                )
            }),
    }
}

/// Takes the header row off when there is one, then checks that rows remain and that each has
/// `width` fields.
fn take_header(
    path: &Path,
    rows: &mut Vec<(usize, Vec<String>)>,
    has_header: bool,
    width: usize,
) -> Result<Option<Vec<String>>> {
    let header = if has_header {
        Some(rows.remove(0).1)
    } else {
        None
    };
    if rows.is_empty() {
        return Err(DataError::at(path, 0, "the table has a header but no rows"));
    }
    check_widths(path, rows, width)?;
    Ok(header)
}

fn check_widths(path: &Path, rows: &[(usize, Vec<String>)], width: usize) -> Result<()> {
    for (line, r) in rows {
        if r.len() != width {
            return Err(DataError::at(
                path,
                *line,
                format!("row has {} fields, expected {width}", r.len()),
            ));
        }
    }
    Ok(())
}

fn is_number(s: &str) -> bool {
    s.parse::<f64>().is_ok_and(|v| v.is_finite())
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// The rows of a delimited file as trimmed fields, each with its 1-based line number: the
/// delimiter detected among `,` `;` and tab, quoted fields read whole, empty lines skipped. An
/// empty file is an error.
pub fn read_records(path: &Path) -> Result<Vec<(usize, Vec<String>)>> {
    let bytes = read_file(path)?;
    records(path, &bytes, detect_delimiter(&bytes))
}

/// Reads a table of numeric features and a label column from a file.
pub fn read_table(path: &Path, opts: &TableOptions) -> Result<Dataset> {
    parse_table(path, &read_file(path)?, opts)
}

/// Parses a table of numeric features and a label column (`path` names it in errors).
///
/// Every column but the label is a feature and must hold finite numbers; labels may be any
/// strings (numbers sort numerically, names alphabetically, into class ids).
///
/// ```
/// use labelsmooth_data::table::{parse_table, TableOptions};
/// let csv = b"a;b;species\n1.0;2;setosa\n3;4.5;virginica\n";
/// let d = parse_table("iris.csv".as_ref(), csv, &TableOptions::default()).unwrap();
/// assert_eq!(d.class_names, vec!["setosa", "virginica"]);
/// assert_eq!(d.labels, vec![0, 1]);
/// ```
pub fn parse_table(path: &Path, bytes: &[u8], opts: &TableOptions) -> Result<Dataset> {
    let delimiter = opts.delimiter.unwrap_or_else(|| detect_delimiter(bytes));
    table_from_rows(path, records(path, bytes, delimiter)?, delimiter, opts)
}

/// Reads an Apache Parquet file as a table of numeric features and a label column, by the rules
/// of [`parse_table`]: its column names are the header, a null is a missing value.
pub fn read_parquet_table(path: &Path, opts: &TableOptions) -> Result<Dataset> {
    let opts = TableOptions {
        header: Header::Yes,
        ..opts.clone()
    };
    table_from_rows(path, crate::parquet::rows(path)?, b',', &opts)
}

/// [`read_parquet_table`] on the bytes of a Parquet file; `path` only names it in errors.
pub fn parse_parquet_table(path: &Path, bytes: &[u8], opts: &TableOptions) -> Result<Dataset> {
    let opts = TableOptions {
        header: Header::Yes,
        ..opts.clone()
    };
    table_from_rows(path, crate::parquet::parse_rows(path, bytes)?, b',', &opts)
}

/// [`parse_table`] on rows already split into fields (at least one row).
fn table_from_rows(
    path: &Path,
    mut rows: Vec<(usize, Vec<String>)>,
    delimiter: u8,
    opts: &TableOptions,
) -> Result<Dataset> {
    let width = rows[0].1.len();
    let by_name = matches!(opts.label_column, Some(Column::Name(_)));
    let has_header = match opts.header {
        Header::Yes => true,
        Header::No => false,
        Header::Auto => {
            by_name
                || rows.get(1).is_some_and(|(_, second)| {
                    let label = match &opts.label_column {
                        Some(Column::Index(i)) => *i,
                        _ => width.saturating_sub(1),
                    };
                    rows[0]
                        .1
                        .iter()
                        .zip(second)
                        .enumerate()
                        .any(|(j, (a, b))| j != label && !is_number(a) && is_number(b))
                })
        }
    };
    let header = take_header(path, &mut rows, has_header, width)?;
    if width < 2 {
        return Err(DataError::at(
            path,
            rows[0].0,
            "a table needs a label column and at least one feature column",
        ));
    }
    let label = match &opts.label_column {
        Some(c) => resolve(path, c, header.as_deref(), width, "label")?,
        None => width - 1,
    };
    let label_name = header.as_ref().map_or(format!("column {label}"), |h| {
        format!("column {label} (`{}`)", h[label])
    });
    check_label_column(path, &rows, label, &label_name)?;
    let d = width - 1;
    let mut values = Vec::with_capacity(rows.len() * d);
    let mut raw_labels = Vec::with_capacity(rows.len());
    let mut missing = vec![0usize; width];
    for (line, r) in &rows {
        for (j, field) in r.iter().enumerate() {
            if j == label {
                continue;
            }
            match field.parse::<f32>() {
                Ok(v) if v.is_finite() => values.push(v),
                _ if crate::is_missing(field) => {
                    if opts.missing == Missing::Error {
                        let name = header
                            .as_ref()
                            .map_or(format!("column {j}"), |h| format!("column `{}`", h[j]));
                        return Err(DataError::at(
                            path,
                            *line,
                            format!(
                                "{name}: missing value `{field}` (--missing impute fills missing values with the training median)"
                            ),
                        ));
                    }
                    missing[j] += 1;
                    values.push(f32::NAN);
                }
                _ => {
                    let name = header
                        .as_ref()
                        .map_or(format!("column {j}"), |h| format!("column `{}`", h[j]));
                    // A column of words only is more likely the labels than broken numbers.
                    let words = rows
                        .iter()
                        .all(|(_, r)| r.get(j).is_some_and(|f| f.parse::<f64>().is_err()));
                    let hint = if words {
                        let key = header.as_ref().map_or(j.to_string(), |h| h[j].clone());
                        format!(
                            "; if {name} holds the labels, name it as the label column (--label-column {key}); a feature column of categories is not encoded: give it as numbers (one 0/1 column per category), or drop it"
                        )
                    } else {
                        String::new()
                    };
                    return Err(DataError::at(
                        path,
                        *line,
                        format!("{name}: `{field}` is not a finite number{hint}"),
                    ));
                }
            }
        }
        if r[label].is_empty() {
            return Err(DataError::at(path, *line, "the label is empty"));
        }
        raw_labels.push(r[label].clone());
    }
    let (labels, class_names) = class_ids(&raw_labels);
    let counts: Vec<(String, usize)> = (0..width)
        .filter(|&j| j != label)
        .map(|j| {
            let name = header
                .as_ref()
                .map_or(format!("column {j}"), |h| format!("`{}`", h[j]));
            (name, missing[j])
        })
        .collect();
    let notes = crate::missing_note(
        path,
        &counts,
        "imputed with each column's median on the training rows",
    )
    .into_iter()
    .collect();
    Ok(Dataset {
        name: path
            .file_name()
            .map_or("table".into(), |n| n.to_string_lossy().into_owned()),
        features: Features::Dense {
            values,
            shape: vec![d],
        },
        labels,
        class_names,
        notes,
        ids: None,
        layout: Some(TableLayout {
            delimiter,
            header,
            features: (0..width).filter(|&j| j != label).collect(),
            text: None,
            label,
            width,
        }),
    })
}

/// Refuses a label column with about one distinct value per row (at least 20 rows, more distinct
/// values than half the rows): such a column holds texts, ids or measurements, not classes.
fn check_label_column(
    path: &Path,
    rows: &[(usize, Vec<String>)],
    label: usize,
    name: &str,
) -> Result<()> {
    let mut v: Vec<&str> = rows
        .iter()
        .filter_map(|(_, r)| r.get(label).map(String::as_str))
        .collect();
    v.sort_unstable();
    v.dedup();
    if rows.len() >= 20 && 2 * v.len() > rows.len() {
        return Err(DataError::Unknown(format!(
            "{}: the labels would come from {name}, which has {} distinct values in {} rows: that is not a class column; name the label column (--label-column 0?)",
            path.display(),
            v.len(),
            rows.len()
        )));
    }
    Ok(())
}

/// Reads a text table (a text column and a label column) from a file.
pub fn read_text_table(path: &Path, opts: &TableOptions) -> Result<Dataset> {
    parse_text_table(path, &read_file(path)?, opts)
}

/// Parses a text table: one text column, one label column, other columns ignored.
///
/// ```
/// use labelsmooth_data::table::{parse_text_table, TableOptions, Column};
/// let csv = b"review,label\n\"Great, fun film\",pos\nDull,neg\nLoved it,pos\n";
/// let opts = TableOptions { label_column: Some(Column::Name("label".into())), ..Default::default() };
/// let d = parse_text_table("reviews.csv".as_ref(), csv, &opts).unwrap();
/// assert_eq!(d.labels, vec![1, 0, 1]);
/// ```
pub fn parse_text_table(path: &Path, bytes: &[u8], opts: &TableOptions) -> Result<Dataset> {
    let delimiter = opts.delimiter.unwrap_or_else(|| detect_delimiter(bytes));
    let mut rows = records(path, bytes, delimiter)?;
    let width = rows[0].1.len();
    if width < 2 {
        return Err(DataError::at(
            path,
            rows[0].0,
            "a text table needs a text column and a label column",
        ));
    }
    let named = matches!(opts.label_column, Some(Column::Name(_)))
        || matches!(opts.text_column, Some(Column::Name(_)));
    // Without a label column, the labels are the column with the fewest distinct values (rows
    // after the first, which may be a header); without a text column, the text is the column
    // with the longest values among the others.
    let (distinct, total_len): (Vec<usize>, Vec<usize>) = {
        let body = if rows.len() > 1 {
            &rows[1..]
        } else {
            &rows[..]
        };
        (0..width)
            .map(|j| {
                let mut v: Vec<&str> = body
                    .iter()
                    .filter_map(|(_, r)| r.get(j).map(String::as_str))
                    .collect();
                let chars = v.iter().map(|f| f.chars().count()).sum::<usize>();
                v.sort_unstable();
                v.dedup();
                (v.len(), chars)
            })
            .unzip()
    };
    let detected_label = (0..width)
        .filter(|&j| !matches!(opts.text_column, Some(Column::Index(t)) if t == j))
        .rev()
        .min_by_key(|&j| distinct[j])
        .unwrap_or(width - 1);
    let label_guess = match &opts.label_column {
        Some(Column::Index(i)) => *i,
        Some(Column::Name(_)) => width - 1,
        None => detected_label,
    };
    let has_header = match opts.header {
        Header::Yes => true,
        Header::No => false,
        Header::Auto => {
            named
                || rows.get(1..).is_some_and(|rest| {
                    // A header's label cell names the column: it is not one of the labels, which
                    // repeat (at least twice per class on average).
                    let first = rows[0].1.get(label_guess);
                    let mut seen: Vec<Option<&String>> =
                        rest.iter().map(|(_, r)| r.get(label_guess)).collect();
                    let unseen = !seen.contains(&first);
                    seen.sort();
                    seen.dedup();
                    unseen && rest.len() >= 2 * seen.len()
                })
        }
    };
    let header = take_header(path, &mut rows, has_header, width)?;
    let column_name = |j: usize| {
        header.as_ref().map_or(format!("column {j}"), |h| {
            format!("column {j} (`{}`)", h[j])
        })
    };
    let mut notes = Vec::new();
    let label = match &opts.label_column {
        Some(c) => resolve(path, c, header.as_deref(), width, "label")?,
        None => {
            notes.push(format!(
                "{}: labels from {}, the column with the fewest distinct values",
                path.display(),
                column_name(label_guess)
            ));
            label_guess
        }
    };
    let text = match &opts.text_column {
        Some(c) => resolve(path, c, header.as_deref(), width, "text")?,
        None => {
            let j = (0..width)
                .filter(|&j| j != label)
                .max_by_key(|&j| (total_len[j], std::cmp::Reverse(j)))
                .unwrap_or(0);
            notes.push(format!(
                "{}: text from {}, the column with the longest values",
                path.display(),
                column_name(j)
            ));
            j
        }
    };
    if text == label {
        return Err(DataError::Unknown(
            "the text column and the label column are the same".into(),
        ));
    }
    check_label_column(path, &rows, label, &column_name(label))?;
    let mut texts = Vec::with_capacity(rows.len());
    let mut raw = Vec::with_capacity(rows.len());
    for (line, r) in &rows {
        if r[label].is_empty() {
            return Err(DataError::at(path, *line, "the label is empty"));
        }
        texts.push(r[text].clone());
        raw.push(r[label].clone());
    }
    let (labels, class_names) = class_ids(&raw);
    Ok(Dataset {
        name: path
            .file_name()
            .map_or("text".into(), |n| n.to_string_lossy().into_owned()),
        features: Features::Text(texts),
        labels,
        class_names,
        notes,
        ids: None,
        layout: Some(TableLayout {
            delimiter,
            header,
            features: Vec::new(),
            text: Some(text),
            label,
            width,
        }),
    })
}
