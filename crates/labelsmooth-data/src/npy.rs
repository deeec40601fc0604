//! NumPy `.npy` arrays: format versions 1 to 3, little-endian `f4`, `f8`, `i4`, `i8`, `u1`,
//! `b1`, C order, any number of dimensions. A few lines over the documented header, with one
//! clear error for anything else.

use std::path::Path;

use crate::{DataError, Result};

/// An array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Row-major values.
    pub values: Vec<f64>,
    /// Shape (`[]` for a scalar).
    pub shape: Vec<usize>,
}

/// Reads a `.npy` file; non-finite values are refused.
pub fn read(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse(path, &bytes)
}

/// Parses the bytes of a `.npy` file (`path` names it in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Array> {
    let err = |m: String| DataError::at(path, 0, m);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file (bad magic)".into()));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(err(format!("unsupported .npy version {v}"))),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start.saturating_add(header_len))
            .ok_or_else(|| err("truncated header".into()))?,
    )
    .map_err(|_| err("header is not text".into()))?;
    let field = |name: &str| -> Result<&str> {
        let i = header
            .find(&format!("'{name}'"))
            .ok_or_else(|| err(format!("header has no '{name}'")))?;
        Ok(header[i + name.len() + 2..].trim_start_matches([':', ' ']))
    };
    let descr = field("descr")?;
    let descr = descr
        .trim_start_matches('\'')
        .split('\'')
        .next()
        .unwrap_or("");
    if field("fortran_order")?.starts_with("True") {
        return Err(err("Fortran-ordered arrays are not supported".into()));
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
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| err(format!("bad shape `{s}`")))
        })
        .collect::<Result<_>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(format!("shape {shape:?} is too large")))?;
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
            return Err(err(format!(
                "dtype {other} is not supported (f4, f8, i4, i8, u1, b1)"
            )));
        }
    };
    if Some(data.len()) != count.checked_mul(size) {
        return Err(err(format!(
            "{} data bytes for shape {shape:?} of {descr}",
            data.len()
        )));
    }
    let values: Vec<f64> = data.chunks_exact(size).map(conv).collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(err(format!("element {i} is not finite")));
    }
    Ok(Array { values, shape })
}

/// The bytes of a little-endian float32 `.npy` file (format 1) holding `values` of `shape`.
pub fn to_bytes_f32(values: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // The header ends with a newline and pads the data to a 64-byte boundary.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    values
        .iter()
        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// A labelled data set from two `.npy` files: samples `x` of shape `[n, d]` (table rows) or
/// `[n, c, h, w]` (images), and labels `y` of shape `[n]` holding integers; the classes are the
/// distinct labels in increasing order, named by their values.
pub fn read_pair(x: &Path, y: &Path) -> Result<crate::Dataset> {
    let xs = read(x)?;
    let ys = read(y)?;
    let n = match xs.shape.as_slice() {
        [n, _] | [n, _, _, _] => *n,
        other => {
            return Err(DataError::at(
                x,
                0,
                format!(
                    "shape {other:?}: samples need [n, features] or [n, channels, height, width]"
                ),
            ));
        }
    };
    if n == 0 {
        return Err(DataError::at(x, 0, "no samples"));
    }
    let ids = integer_labels(y, &ys, n, x)?;
    let mut classes = ids.clone();
    classes.sort_unstable();
    classes.dedup();
    let labels = ids
        .iter()
        .map(|v| classes.binary_search(v).unwrap_or_default())
        .collect();
    Ok(crate::Dataset {
        name: x
            .file_name()
            .map_or("npy".into(), |s| s.to_string_lossy().into_owned()),
        features: crate::Features::Dense {
            values: xs.values.iter().map(|&v| v as f32).collect(),
            shape: xs.shape[1..].to_vec(),
        },
        labels,
        class_names: classes.iter().map(i64::to_string).collect(),
        notes: Vec::new(),
        ids: None,
        layout: None,
    })
}

/// The labels of the `n` samples of `x` in the array `ys` read from `y`: one dimension of
/// integers.
pub fn integer_labels(y: &Path, ys: &Array, n: usize, x: &Path) -> Result<Vec<i64>> {
    if ys.shape.len() != 1 {
        return Err(DataError::at(
            y,
            0,
            format!("shape {:?}: labels need one dimension [n]", ys.shape),
        ));
    }
    if ys.shape[0] != n {
        return Err(DataError::at(
            y,
            0,
            format!(
                "{} labels for the {n} samples of {}",
                ys.shape[0],
                x.display()
            ),
        ));
    }
    ys.values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() != 0.0 || !v.is_finite() || v.abs() > 9.0e15 {
                Err(DataError::at(
                    y,
                    0,
                    format!("label {v} of sample {i} (0-based) is not an integer"),
                ))
            } else {
                Ok(v as i64)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_arrays_read_back() {
        let v = [1.5f32, -2.0, 0.25, 8.0, 3.0, 1e-3];
        for shape in [vec![6], vec![2, 3], vec![1, 2, 3]] {
            let bytes = to_bytes_f32(&v, &shape);
            assert_eq!((bytes.len() - v.len() * 4) % 64, 0);
            let a = parse(Path::new("x.npy"), &bytes).unwrap();
            assert_eq!(a.shape, shape);
            let back: Vec<f32> = a.values.iter().map(|&x| x as f32).collect();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let bytes = to_bytes_f32(&[1.0, 2.0], &[2]);
        let e = parse(Path::new("x.npy"), &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(e.to_string().contains("data bytes"), "{e}");
        assert!(parse(Path::new("x.npy"), b"PK\x03\x04 not npy").is_err());
        // A shape whose element count overflows is refused before any allocation.
        let huge = to_bytes_f32(&[1.0, 2.0], &[99_999_999_999, 99_999_999_999]);
        let e = parse(Path::new("x.npy"), &huge).unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
    }
}
