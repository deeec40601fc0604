//! Reading predictions and labels from CSV or NumPy `.npy` files.
//!
//! `.npy` files are read by [`labelsmooth_data::npy`]; here they must have 1 or 2 dimensions.
//! CSV files are read with the `csv` crate (quoted fields, `,` `;` or tab): a first row with a
//! field that is not a number is a header.

use std::path::Path;

use anyhow::{Result, bail};

/// A row-major matrix of f64.
pub struct Matrix {
    /// Values.
    pub values: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// Predictions read from a file: the numbers, and what a CSV header says of them.
pub struct Predictions {
    /// The probability or logit columns.
    pub matrix: Matrix,
    /// The class of each column, from a header: `p_<class>` columns (as `predict` and `train`
    /// write them) or a header of class names over numeric columns.
    pub class_names: Option<Vec<String>>,
    /// The `true_class` column of a file written by `train` or `predict` on labelled data.
    pub truth: Option<Vec<String>>,
}

/// The rows of a CSV file, each with its 1-based line number.
fn csv_records(path: &Path) -> Result<Vec<(u64, Vec<String>)>> {
    Ok(labelsmooth_data::table::read_records(path)?
        .into_iter()
        .map(|(line, fields)| (line as u64, fields))
        .collect())
}

fn is_number(s: &str) -> bool {
    s.parse::<f64>().is_ok()
}

/// Reads predictions from `.npy` (by extension) or CSV.
pub fn read_predictions(path: &Path) -> Result<Predictions> {
    if path.extension().is_some_and(|e| e == "npy") {
        return Ok(Predictions {
            matrix: read_npy(path)?,
            class_names: None,
            truth: None,
        });
    }
    let mut records = csv_records(path)?;
    let header = match records.first() {
        Some((_, fields)) if fields.iter().any(|f| !is_number(f)) => Some(records.remove(0).1),
        _ => None,
    };
    // Which columns hold the numbers, and what the header says of them.
    let (columns, class_names, truth_column): (Vec<usize>, Option<Vec<String>>, Option<usize>) =
        match &header {
            Some(h) if h.iter().any(|f| f.starts_with("p_")) => {
                let columns: Vec<usize> =
                    (0..h.len()).filter(|&i| h[i].starts_with("p_")).collect();
                let names = columns.iter().map(|&i| h[i][2..].to_string()).collect();
                (
                    columns,
                    Some(names),
                    h.iter().position(|f| f == "true_class"),
                )
            }
            Some(h) => (
                (0..h.len()).collect(),
                (h.len() > 1).then(|| h.clone()),
                None,
            ),
            None => {
                let width = records.first().map_or(0, |(_, f)| f.len());
                ((0..width).collect(), None, None)
            }
        };
    let width = header.as_ref().map_or(columns.len(), Vec::len);
    let mut values = Vec::with_capacity(records.len() * columns.len());
    let mut truth = truth_column.map(|_| Vec::with_capacity(records.len()));
    for (line, fields) in &records {
        if fields.len() != width {
            bail!(
                "{}:{line}: {} values, expected {width}",
                path.display(),
                fields.len()
            );
        }
        for &c in &columns {
            let f = &fields[c];
            let Ok(v) = f.parse::<f64>() else {
                bail!("{}:{line}: `{f}` is not a number", path.display());
            };
            if !v.is_finite() {
                bail!("{}:{line}: value {v} is not finite", path.display());
            }
            values.push(v);
        }
        if let (Some(t), Some(c)) = (truth.as_mut(), truth_column) {
            t.push(fields[c].clone());
        }
    }
    if records.is_empty() {
        bail!("{}: no rows", path.display());
    }
    Ok(Predictions {
        matrix: Matrix {
            values,
            rows: records.len(),
            cols: columns.len(),
        },
        class_names,
        truth,
    })
}

fn read_npy(path: &Path) -> Result<Matrix> {
    let a = labelsmooth_data::npy::read(path)?;
    let (rows, cols) = match a.shape.as_slice() {
        [n] => (*n, 1),
        [n, k] => (*n, *k),
        other => bail!(
            "{}: shape {other:?}: 1 or 2 dimensions expected",
            path.display()
        ),
    };
    Ok(Matrix {
        values: a.values,
        rows,
        cols,
    })
}

/// The labels of a file as written, each with where it stands (`path:line` or `path: row i`):
/// class ids or class names, one per row (a one-column CSV, or a 1-dimensional `.npy` of
/// integers). A first row that is not a label is not returned (a header): without known class
/// names, a non-integer above integers; with them, a value that names no class.
pub fn read_label_values(
    path: &Path,
    class_names: Option<&[String]>,
) -> Result<Vec<(String, String)>> {
    if path.extension().is_some_and(|e| e == "npy") {
        let m = read_npy(path)?;
        if m.cols != 1 {
            bail!(
                "{}: labels need one column, found {}",
                path.display(),
                m.cols
            );
        }
        return m
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v >= 0.0 && v.fract() == 0.0 {
                    Ok((
                        format!("{}: row {}", path.display(), i + 1),
                        (v as usize).to_string(),
                    ))
                } else {
                    bail!(
                        "{}: row {}: label {v} is not a class id",
                        path.display(),
                        i + 1
                    )
                }
            })
            .collect();
    }
    let mut records = csv_records(path)?;
    if let Some((line, fields)) = records.iter().find(|(_, f)| f.len() != 1) {
        bail!(
            "{}:{line}: labels need one column, found {}",
            path.display(),
            fields.len()
        );
    }
    let is_id = |v: &str| v.parse::<f64>().is_ok_and(|x| x >= 0.0 && x.fract() == 0.0);
    let is_label =
        |v: &str| is_id(v) || class_names.is_some_and(|names| names.iter().any(|n| n == v));
    if records.len() > 1 && !is_label(&records[0].1[0]) && is_label(&records[1].1[0]) {
        records.remove(0);
    }
    if records.is_empty() {
        bail!("{}: no labels", path.display());
    }
    Ok(records
        .into_iter()
        .map(|(line, mut f)| (format!("{}:{line}", path.display()), f.remove(0)))
        .collect())
}

/// Class ids of labels as written: class names (by `class_names`) or ids below `k`.
pub fn class_ids(
    values: &[(String, String)],
    class_names: Option<&[String]>,
    k: usize,
) -> Result<Vec<usize>> {
    values
        .iter()
        .map(|(at, v)| {
            if let Some(i) = class_names.and_then(|names| names.iter().position(|n| n == v)) {
                return Ok(i);
            }
            match v.parse::<f64>() {
                Ok(x) if x >= 0.0 && x.fract() == 0.0 => {
                    let y = x as usize;
                    if y >= k {
                        bail!("{at}: class id {y} is out of range for {k} classes");
                    }
                    Ok(y)
                }
                Ok(x) => bail!("{at}: label {x} is not a class id"),
                Err(_) => match class_names {
                    Some(names) => bail!(
                        "{at}: `{v}` is not a class (the classes: {})",
                        names.join(", ")
                    ),
                    None => bail!(
                        "{at}: `{v}` is a class name: give --class-names FILE (one per line, in column order) or a probability CSV whose header names the classes (p_<class> columns)"
                    ),
                },
            }
        })
        .collect()
}
