//! New data for a trained model, read the way its training data was: labelled or not.
//!
//! Tables are matched to the training table by column name when it had a header (the columns
//! may come in any order, extra columns are ignored and named in a note, a missing one is an
//! error naming it), by position when it had none. Image folders may be flat (no labels) or
//! hold one folder per class; `.npy` arrays are taken as they are; `lines:` files hold one text
//! per line.

use std::path::Path;

use crate::images::{decode_into, image_files, relative};
use crate::table::{Header, TableOptions, detect_delimiter, read_file, records};
use crate::{DataError, Features, Result, TableLayout};

/// Samples to predict on.
#[derive(Debug, Clone, PartialEq)]
pub struct Samples {
    /// One identifier per sample: the 0-based data row of a table (header excluded), the line
    /// of a `lines:` file, the index in an array, or an image's path below the folder read.
    pub ids: Vec<String>,
    /// The samples.
    pub features: Features,
    /// The label of each sample as written in the data, when the data has labels.
    pub labels: Option<Vec<String>>,
    /// What the reader decided on its own (ignored columns, where the labels came from).
    pub notes: Vec<String>,
}

impl Samples {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Which of the training table's columns a file holds, and where.
struct Mapping {
    /// File column of each needed column (the features in order, or the text).
    needed: Vec<usize>,
    /// File column of the labels, when present.
    label: Option<usize>,
    /// Whether the first row is a header.
    header: bool,
    /// Columns read but not used.
    ignored: Vec<String>,
}

fn map_columns(
    path: &Path,
    first: &[String],
    layout: &TableLayout,
    header: Header,
) -> Result<Mapping> {
    let needed_cols: Vec<usize> = match layout.text {
        Some(t) => vec![t],
        None => layout.features.clone(),
    };
    let width = first.len();
    match &layout.header {
        Some(names) => {
            let needed: Vec<&String> = needed_cols.iter().map(|&j| &names[j]).collect();
            let has_header = match header {
                Header::Yes => true,
                Header::No => false,
                Header::Auto => needed.iter().any(|n| first.contains(n)),
            };
            if !has_header {
                return Err(DataError::at(
                    path,
                    1,
                    format!(
                        "no header row: the model reads columns by name ({})",
                        list_names(&needed)
                    ),
                ));
            }
            let mut mapped = Vec::with_capacity(needed.len());
            let missing: Vec<&String> = needed
                .iter()
                .filter(|n| !first.contains(n))
                .copied()
                .collect();
            if !missing.is_empty() {
                return Err(DataError::at(
                    path,
                    1,
                    format!(
                        "missing column{} {} (the model needs {})",
                        if missing.len() == 1 { "" } else { "s" },
                        list_names(&missing),
                        list_names(&needed)
                    ),
                ));
            }
            for n in &needed {
                mapped.push(first.iter().position(|c| c == *n).unwrap_or(0));
            }
            let label_name = &names[layout.label];
            let label = first.iter().position(|c| c == label_name);
            let ignored = first
                .iter()
                .enumerate()
                .filter(|(j, _)| !mapped.contains(j) && Some(*j) != label)
                .map(|(_, c)| c.clone())
                .collect();
            Ok(Mapping {
                needed: mapped,
                label,
                header: true,
                ignored,
            })
        }
        None => {
            let has_header = header == Header::Yes;
            if width == layout.width {
                Ok(Mapping {
                    needed: needed_cols,
                    label: Some(layout.label),
                    header: has_header,
                    ignored: Vec::new(),
                })
            } else if width + 1 == layout.width {
                // The label column is left out: later columns move one to the left.
                let shift = |j: usize| if j > layout.label { j - 1 } else { j };
                Ok(Mapping {
                    needed: needed_cols.into_iter().map(shift).collect(),
                    label: None,
                    header: has_header,
                    ignored: Vec::new(),
                })
            } else {
                Err(DataError::at(
                    path,
                    1,
                    format!(
                        "rows have {width} columns; the model was trained on a table without a header of {} columns ({} without the label column {})",
                        layout.width,
                        layout.width - 1,
                        layout.label
                    ),
                ))
            }
        }
    }
}

fn list_names(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the table at `path` as the training table described by `layout` was read: numbers
/// from the feature columns (or the text column of a text table), and the labels when the
/// label column is there. `opts` may override the delimiter and the header detection.
pub fn table(path: &Path, layout: &TableLayout, opts: &TableOptions) -> Result<Samples> {
    let bytes = read_file(path)?;
    parse_table(path, &bytes, layout, opts)
}

/// [`table`] on bytes (`path` names them in errors).
pub fn parse_table(
    path: &Path,
    bytes: &[u8],
    layout: &TableLayout,
    opts: &TableOptions,
) -> Result<Samples> {
    let delimiter = opts.delimiter.unwrap_or_else(|| detect_delimiter(bytes));
    samples_from_rows(path, records(path, bytes, delimiter)?, layout, opts)
}

/// Reads an Apache Parquet file as the training table described by `layout` was read: its
/// column names are the header, a null is a missing value.
pub fn parquet_table(path: &Path, layout: &TableLayout, opts: &TableOptions) -> Result<Samples> {
    let opts = TableOptions {
        header: crate::table::Header::Yes,
        ..opts.clone()
    };
    samples_from_rows(path, crate::parquet::rows(path)?, layout, &opts)
}

/// [`parse_table`] on rows already split into fields (at least one row).
fn samples_from_rows(
    path: &Path,
    mut rows: Vec<(usize, Vec<String>)>,
    layout: &TableLayout,
    opts: &TableOptions,
) -> Result<Samples> {
    let m = map_columns(path, &rows[0].1, layout, opts.header)?;
    let width = rows[0].1.len();
    let file_header = if m.header {
        Some(rows.remove(0).1)
    } else {
        None
    };
    if rows.is_empty() {
        return Err(DataError::at(path, 0, "the table has a header but no rows"));
    }
    let mut notes = Vec::new();
    if !m.ignored.is_empty() {
        notes.push(format!(
            "{}: ignored column{} the model does not use: {}",
            path.display(),
            if m.ignored.len() == 1 { "" } else { "s" },
            m.ignored.join(", ")
        ));
    }
    let name_of = |j: usize| match &file_header {
        Some(h) => format!("column `{}`", h[j]),
        None => format!("column {j}"),
    };
    let mut labels = m.label.map(|_| Vec::with_capacity(rows.len()));
    let features = if layout.text.is_some() {
        let mut texts = Vec::with_capacity(rows.len());
        for (line, r) in &rows {
            check_width(path, *line, r, width)?;
            texts.push(r[m.needed[0]].clone());
            if let (Some(l), Some(j)) = (&mut labels, m.label) {
                l.push(r[j].clone());
            }
        }
        Features::Text(texts)
    } else {
        let d = m.needed.len();
        let mut values = Vec::with_capacity(rows.len() * d);
        let mut missing = vec![0usize; d];
        for (line, r) in &rows {
            check_width(path, *line, r, width)?;
            for (i, &j) in m.needed.iter().enumerate() {
                match r[j].parse::<f32>() {
                    Ok(v) if v.is_finite() => values.push(v),
                    _ if crate::is_missing(&r[j]) => {
                        if opts.missing == crate::table::Missing::Error {
                            return Err(DataError::at(
                                path,
                                *line,
                                format!(
                                    "{}: missing value `{}` (--missing impute fills missing values with the training median)",
                                    name_of(j),
                                    r[j]
                                ),
                            ));
                        }
                        missing[i] += 1;
                        values.push(f32::NAN);
                    }
                    _ => {
                        return Err(DataError::at(
                            path,
                            *line,
                            format!("{}: `{}` is not a finite number", name_of(j), r[j]),
                        ));
                    }
                }
            }
            if let (Some(l), Some(j)) = (&mut labels, m.label) {
                l.push(r[j].clone());
            }
        }
        let counts: Vec<(String, usize)> = m
            .needed
            .iter()
            .zip(&missing)
            .map(|(&j, &n)| (name_of(j), n))
            .collect();
        notes.extend(crate::missing_note(
            path,
            &counts,
            "imputed with the training median saved in the model",
        ));
        Features::Dense {
            values,
            shape: vec![d],
        }
    };
    Ok(Samples {
        ids: (0..rows.len()).map(|i| i.to_string()).collect(),
        features,
        labels,
        notes,
    })
}

fn check_width(path: &Path, line: usize, r: &[String], width: usize) -> Result<()> {
    if r.len() != width {
        return Err(DataError::at(
            path,
            line,
            format!("row has {} fields, expected {width}", r.len()),
        ));
    }
    Ok(())
}

/// The non-empty lines of a UTF-8 text file, trimmed (a byte-order mark is skipped).
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let bytes = read_file(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|e| DataError::at(path, 0, format!("not UTF-8 text: {e}")))?;
    Ok(text
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Reads one text per non-empty line (no labels); ids are the 0-based indices of those lines.
pub fn lines(path: &Path) -> Result<Samples> {
    let texts = read_lines(path)?;
    if texts.is_empty() {
        return Err(DataError::at(path, 0, "the file holds no text"));
    }
    Ok(Samples {
        ids: (0..texts.len()).map(|i| i.to_string()).collect(),
        features: Features::Text(texts),
        labels: None,
        notes: Vec::new(),
    })
}

/// Reads a folder of images: flat (no labels) or one sub-folder per class (labelled by the
/// folder's name), each image resized to `size × size`, RGB or grey. Ids are paths below `root`.
pub fn images(root: &Path, size: usize, rgb: bool) -> Result<Samples> {
    if size == 0 {
        return Err(DataError::Unknown("image size must be at least 1".into()));
    }
    let flat = image_files(root)?;
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| DataError::io(root, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for dir in &dirs {
        let name = dir
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        for f in image_files(dir)? {
            files.push(f);
            labels.push(name.clone());
        }
    }
    let labelled = !files.is_empty();
    if labelled && !flat.is_empty() {
        return Err(DataError::at(
            root,
            0,
            format!(
                "holds images both in class folders and beside them (`{}`): use one layout",
                relative(root, &flat[0])
            ),
        ));
    }
    if !labelled {
        files = flat;
    }
    if files.is_empty() {
        return Err(DataError::at(
            root,
            0,
            "no .png or .jpg images (in the folder or in class folders)",
        ));
    }
    let mut values = Vec::new();
    for f in &files {
        decode_into(f, size, rgb, &mut values)?;
    }
    Ok(Samples {
        ids: files.iter().map(|f| relative(root, f)).collect(),
        features: Features::Dense {
            values,
            shape: vec![if rgb { 3 } else { 1 }, size, size],
        },
        labels: labelled.then_some(labels),
        notes: Vec::new(),
    })
}

/// Reads a `.npy` array `[n, ...]` of samples (no labels); ids are the indices along its first
/// axis.
pub fn array(path: &Path) -> Result<Samples> {
    let a = crate::npy::read(path)?;
    let Some((&n, shape)) = a.shape.split_first() else {
        return Err(DataError::at(path, 0, "a scalar is not a set of samples"));
    };
    if n == 0 {
        return Err(DataError::at(path, 0, "the array holds no samples"));
    }
    let shape = if shape.is_empty() {
        vec![1]
    } else {
        shape.to_vec()
    };
    Ok(Samples {
        ids: (0..n).map(|i| i.to_string()).collect(),
        features: Features::Dense {
            values: a.values.iter().map(|&v| v as f32).collect(),
            shape,
        },
        labels: None,
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::parse_table as read_training_table;

    fn trained_layout(csv: &[u8]) -> TableLayout {
        read_training_table(Path::new("train.csv"), csv, &TableOptions::default())
            .unwrap()
            .layout
            .unwrap()
    }

    #[test]
    fn columns_are_matched_by_name_in_any_order() {
        let layout = trained_layout(b"a,b,city\n1,2,x\n3,4,y\n");
        let s = parse_table(
            Path::new("new.csv"),
            b"extra,b,a\n9,20,10\n9,40,30\n",
            &layout,
            &TableOptions::default(),
        )
        .unwrap();
        assert_eq!(
            s.features,
            Features::Dense {
                values: vec![10.0, 20.0, 30.0, 40.0],
                shape: vec![2]
            }
        );
        assert_eq!(s.labels, None);
        assert_eq!(s.ids, vec!["0", "1"]);
        assert!(s.notes[0].contains("extra"), "{:?}", s.notes);
        let with_labels = parse_table(
            Path::new("new.csv"),
            b"city,a,b\n\"New York, NY\",1,2\n",
            &layout,
            &TableOptions::default(),
        )
        .unwrap();
        assert_eq!(with_labels.labels, Some(vec!["New York, NY".to_string()]));
    }

    #[test]
    fn a_missing_column_is_named() {
        let layout = trained_layout(b"a,b,city\n1,2,x\n3,4,y\n");
        let e = parse_table(
            Path::new("new.csv"),
            b"a,city\n1,x\n",
            &layout,
            &TableOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing column `b`"), "{e}");
        let e = parse_table(
            Path::new("new.csv"),
            b"1,2\n3,4\n",
            &layout,
            &TableOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no header row"), "{e}");
    }

    #[test]
    fn headerless_tables_go_by_position_with_or_without_the_label() {
        let layout = trained_layout(b"0,1.5,2\n1,2.5,3\n0,3.5,4\n");
        let with = parse_table(
            Path::new("n.csv"),
            b"1,7,8\n",
            &layout,
            &TableOptions::default(),
        )
        .unwrap();
        assert_eq!(with.labels, Some(vec!["8".to_string()]));
        let without = parse_table(
            Path::new("n.csv"),
            b"1,7\n",
            &layout,
            &TableOptions::default(),
        )
        .unwrap();
        assert_eq!(without.features, with.features);
        assert_eq!(without.labels, None);
        assert!(
            parse_table(
                Path::new("n.csv"),
                b"7\n",
                &layout,
                &TableOptions::default()
            )
            .is_err()
        );
    }
}
