//! Reading numeric matrices and label vectors from CSV or NumPy `.npy` files.
//!
//! The `.npy` reader handles what prediction files hold: format versions 1 to 3, little-endian
//! `f4`, `f8`, `i4`, `i8`, `u1`, `b1`, C order, 1 or 2 dimensions. It is a few lines over the
//! documented header, with one clear error for anything else.

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
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let err = |m: &str| anyhow::anyhow!("{}: {m}", path.display());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file (bad magic)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(err(&format!("unsupported .npy version {v}"))),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + header_len)
            .ok_or_else(|| err("truncated header"))?,
    )
    .map_err(|_| err("header is not text"))?;
    let field = |name: &str| -> Result<&str> {
        let i = header
            .find(&format!("'{name}'"))
            .ok_or_else(|| err(&format!("header has no '{name}'")))?;
        Ok(header[i + name.len() + 2..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr")?;
    let descr = descr
        .trim_start_matches('\'')
        .split('\'')
        .next()
        .unwrap_or("");
    if field("fortran_order")?.starts_with("True") {
        return Err(err("Fortran-ordered arrays are not supported"));
    }
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("");
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err("bad shape")))
        .collect::<Result<_>>()?;
    let (rows, cols) = match shape.as_slice() {
        [n] => (*n, 1),
        [n, k] => (*n, *k),
        other => return Err(err(&format!("shape {other:?}: 1 or 2 dimensions expected"))),
    };
    let data = &bytes[start + header_len..];
    let (size, conv): (usize, fn(&[u8]) -> f64) = match descr {
        "<f4" => (4, |b| {
            f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }),
        "<f8" => (8, |b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))),
        "<i4" => (4, |b| {
            f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }),
        "<i8" => (8, |b| {
            i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f64
        }),
        "|u1" | "|b1" => (1, |b| f64::from(b[0])),
        other => {
            return Err(err(&format!(
                "dtype {other} is not supported (f4, f8, i4, i8, u1, b1)"
            )));
        }
    };
    if data.len() != rows * cols * size {
        return Err(err(&format!(
            "{} data bytes for shape {shape:?} of {descr}",
            data.len()
        )));
    }
    let values: Vec<f64> = data.chunks_exact(size).map(conv).collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(err(&format!("element {i} is not finite")));
    }
    Ok(Matrix { values, rows, cols })
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
