//! Reading numeric matrices and label vectors from CSV or NumPy `.npy` files.
//!
//! `.npy` files are read by [`labelsmooth_data::npy`]; here they must have 1 or 2 dimensions.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// A row-major matrix of f64.
pub struct Matrix {
    /// Values.
    pub values: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// Reads a matrix from `.npy` (by extension) or CSV (comma, semicolon or tab; a header row of
/// non-numbers is skipped).
pub fn read_matrix(path: &Path) -> Result<Matrix> {
    if path.extension().is_some_and(|e| e == "npy") {
        return read_npy(path);
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut values = Vec::new();
    let (mut rows, mut cols) = (0usize, None);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split([',', ';', '\t']).map(str::trim).collect();
        let parsed: Result<Vec<f64>, _> = fields.iter().map(|f| f.parse::<f64>()).collect();
        let Ok(parsed) = parsed else {
            if rows == 0 && cols.is_none() {
                continue; // a header
            }
            let bad = fields
                .iter()
                .find(|f| f.parse::<f64>().is_err())
                .unwrap_or(&"");
            bail!("{}:{}: `{bad}` is not a number", path.display(), i + 1);
        };
        if let Some(c) = cols
            && parsed.len() != c
        {
            bail!(
                "{}:{}: {} values, expected {c}",
                path.display(),
                i + 1,
                parsed.len()
            );
        }
        if let Some(v) = parsed.iter().find(|v| !v.is_finite()) {
            bail!("{}:{}: value {v} is not finite", path.display(), i + 1);
        }
        cols = Some(parsed.len());
        values.extend(parsed);
        rows += 1;
    }
    if rows == 0 {
        bail!("{}: no rows", path.display());
    }
    Ok(Matrix {
        values,
        rows,
        cols: cols.unwrap_or(0),
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

/// Reads class ids: a one-column matrix of non-negative integers.
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    let m = read_matrix(path)?;
    if m.cols != 1 {
        bail!(
            "{}: labels need one column, found {}",
            path.display(),
            m.cols
        );
    }
    m.values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v >= 0.0 && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                bail!(
                    "{}: row {}: label {v} is not a class id",
                    path.display(),
                    i + 1
                )
            }
        })
        .collect()
}
