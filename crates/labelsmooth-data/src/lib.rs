//! Data sets for labelsmooth, as plain arrays: bundled sets that work offline, and readers for
//! user data (CSV/TSV and Parquet tables, image folders, MNIST IDX files, CIFAR-10 binary
//! batches, text tables, NumPy arrays) with a word tokenizer and feature standardization. Knows nothing of any
//! deep-learning framework.
//!
//! ```
//! let digits = labelsmooth_data::bundled::load("digits").unwrap();
//! assert_eq!(digits.len(), 1797);
//! assert_eq!(digits.n_classes(), 10);
//! ```

#![warn(missing_docs)]

pub mod bundled;
mod error;
pub mod images;
pub mod input;
pub mod npy;
mod parquet;
pub mod spec;
pub mod table;
pub mod text;

pub use error::{DataError, Result};

/// What each sample is.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// Dense numbers, `values.len() == n · shape.iter().product()`. `shape` is per sample:
    /// `[d]` for a table, `[channels, height, width]` for images.
    Dense {
        /// Row-major values.
        values: Vec<f32>,
        /// Shape of one sample.
        shape: Vec<usize>,
    },
    /// Raw texts, one per sample; see [`text::Tokenizer`] to turn them into token ids.
    Text(Vec<String>),
}

/// A labelled data set: samples, their class ids, and the names of the classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Name (for reports).
    pub name: String,
    /// The samples.
    pub features: Features,
    /// Class id of each sample, in `0..class_names.len()`.
    pub labels: Vec<usize>,
    /// Names of the classes.
    pub class_names: Vec<String>,
    /// What the reader decided on its own (which columns hold the text and the labels), for the
    /// user to see.
    pub notes: Vec<String>,
    /// Identifier of each sample where the position is not enough: the path of each image
    /// (relative to the folder read). `None`: the 0-based data row (header excluded).
    pub ids: Option<Vec<String>>,
    /// Which columns of a table held what, so that new data can be read the same way.
    pub layout: Option<TableLayout>,
}

/// The columns of a table a data set was read from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableLayout {
    /// Field delimiter.
    pub delimiter: u8,
    /// Column names, when the table has a header row.
    pub header: Option<Vec<String>>,
    /// Feature columns in order (0-based), for numeric tables; empty for text tables.
    pub features: Vec<usize>,
    /// The text column of a text table.
    pub text: Option<usize>,
    /// The label column.
    pub label: usize,
    /// Columns in each row.
    pub width: usize,
}

impl TableLayout {
    /// The name of column `j`: its header name, or its 0-based index without a header.
    pub fn name(&self, j: usize) -> String {
        match &self.header {
            Some(h) => h.get(j).cloned().unwrap_or_else(|| j.to_string()),
            None => j.to_string(),
        }
    }

    /// The names of the feature columns, in order.
    pub fn feature_names(&self) -> Vec<String> {
        self.features.iter().map(|&j| self.name(j)).collect()
    }
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Values per sample for dense features (0 for text).
    pub fn sample_size(&self) -> usize {
        match &self.features {
            Features::Dense { shape, .. } => shape.iter().product(),
            Features::Text(_) => 0,
        }
    }

    /// The samples at `rows`, in that order.
    ///
    /// ```
    /// let d = labelsmooth_data::bundled::load("digits").unwrap();
    /// let s = d.subset(&[0, 5]);
    /// assert_eq!(s.len(), 2);
    /// assert_eq!(s.labels[1], d.labels[5]);
    /// ```
    pub fn subset(&self, rows: &[usize]) -> Dataset {
        let features = match &self.features {
            Features::Dense { values, shape } => {
                let d: usize = shape.iter().product();
                let mut out = Vec::with_capacity(rows.len() * d);
                for &r in rows {
                    out.extend_from_slice(&values[r * d..(r + 1) * d]);
                }
                Features::Dense {
                    values: out,
                    shape: shape.clone(),
                }
            }
            Features::Text(texts) => {
                Features::Text(rows.iter().map(|&r| texts[r].clone()).collect())
            }
        };
        Dataset {
            name: self.name.clone(),
            features,
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            class_names: self.class_names.clone(),
            notes: self.notes.clone(),
            ids: self
                .ids
                .as_ref()
                .map(|ids| rows.iter().map(|&r| ids[r].clone()).collect()),
            layout: self.layout.clone(),
        }
    }

    /// The identifier of sample `row`: its entry in [`Dataset::ids`], or the row number.
    pub fn id(&self, row: usize) -> String {
        match &self.ids {
            Some(ids) => ids[row].clone(),
            None => row.to_string(),
        }
    }
}

/// What identifies the content of a data set: its number of rows and a SHA-256 of its samples,
/// labels and class names. Two loads of the same data give the same fingerprint; a changed
/// file (a row added, removed or edited, a label renamed) gives another.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// Samples.
    pub rows: usize,
    /// SHA-256, lowercase hexadecimal.
    pub sha256: String,
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows, SHA-256 {}",
            self.rows,
            self.sha256.get(..12).unwrap_or(&self.sha256)
        )
    }
}

impl Dataset {
    /// The fingerprint of this data set's content (not of its name).
    ///
    /// ```
    /// let d = labelsmooth_data::bundled::load("digits").unwrap();
    /// let f = d.fingerprint();
    /// assert_eq!(f.rows, 1797);
    /// assert_eq!(f, d.clone().fingerprint());
    /// assert_ne!(f, d.subset(&(1..1797).collect::<Vec<_>>()).fingerprint());
    /// ```
    pub fn fingerprint(&self) -> Fingerprint {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let len = |h: &mut Sha256, n: usize| h.update((n as u64).to_le_bytes());
        match &self.features {
            Features::Dense { values, shape } => {
                h.update(b"dense");
                len(&mut h, shape.len());
                shape.iter().for_each(|&s| len(&mut h, s));
                values.iter().for_each(|v| h.update(v.to_le_bytes()));
            }
            Features::Text(texts) => {
                h.update(b"text");
                for t in texts {
                    len(&mut h, t.len());
                    h.update(t.as_bytes());
                }
            }
        }
        len(&mut h, self.labels.len());
        self.labels.iter().for_each(|&y| len(&mut h, y));
        len(&mut h, self.class_names.len());
        for c in &self.class_names {
            len(&mut h, c.len());
            h.update(c.as_bytes());
        }
        Fingerprint {
            rows: self.len(),
            sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// Whether a table field is a missing value: empty, or one of pandas' default markers (`NA`,
/// `N/A`, `n/a`, `NaN`, `nan`, `null`, `NULL`, `None`, `<NA>`, `#N/A`) or `?`.
pub fn is_missing(field: &str) -> bool {
    matches!(
        field,
        "" | "NA"
            | "N/A"
            | "n/a"
            | "NaN"
            | "nan"
            | "null"
            | "NULL"
            | "None"
            | "<NA>"
            | "#N/A"
            | "?"
    )
}

/// Per-feature standardization (x − mean) / std, fitted on a training part only; missing
/// values (NaN) are imputed with the feature's median on that part.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    /// Mean of each feature (over its values that are not missing).
    pub mean: Vec<f32>,
    /// Standard deviation of each feature (1 where it is 0).
    pub std: Vec<f32>,
    /// Median of each feature, which replaces its missing values (0 for a feature with no
    /// value). Empty in models saved before it was kept: then the mean replaces them.
    #[serde(default)]
    pub median: Vec<f32>,
}

impl Standardizer {
    /// Fits means, standard deviations and medians on `values` (`[n, d]`, row-major; NaN
    /// marks a missing value, which none of them counts).
    ///
    /// ```
    /// use labelsmooth_data::Standardizer;
    /// let s = Standardizer::fit(&[1.0, 10.0, 3.0, 10.0], 2);
    /// assert_eq!(s.mean, vec![2.0, 10.0]);
    /// assert_eq!(s.std, vec![1.0, 1.0]); // constant features keep scale 1
    /// let s = Standardizer::fit(&[1.0, f32::NAN, 5.0, 4.0, 3.0], 1);
    /// assert_eq!(s.median, vec![3.5]);
    /// let mut x = [f32::NAN];
    /// s.apply(&mut x);
    /// assert_eq!(x[0], (3.5 - s.mean[0]) / s.std[0]);
    /// ```
    pub fn fit(values: &[f32], d: usize) -> Standardizer {
        let mut columns: Vec<Vec<f64>> = vec![Vec::new(); d];
        for row in values.chunks_exact(d.max(1)) {
            for (j, &v) in row.iter().enumerate() {
                if !v.is_nan() {
                    columns[j].push(f64::from(v));
                }
            }
        }
        let mut mean = Vec::with_capacity(d);
        let mut std = Vec::with_capacity(d);
        let mut median = Vec::with_capacity(d);
        for c in &mut columns {
            let n = c.len().max(1) as f64;
            let m = c.iter().sum::<f64>() / n;
            let sd = (c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt();
            mean.push(m as f32);
            std.push(if sd > 1e-12 { sd as f32 } else { 1.0 });
            c.sort_by(f64::total_cmp);
            median.push(match c.len() {
                0 => 0.0,
                len if len % 2 == 1 => c[len / 2] as f32,
                len => ((c[len / 2 - 1] + c[len / 2]) / 2.0) as f32,
            });
        }
        Standardizer { mean, std, median }
    }

    /// Standardizes `values` (`[n, d]`) in place, missing values (NaN) first replaced by the
    /// median.
    pub fn apply(&self, values: &mut [f32]) {
        let d = self.mean.len();
        for row in values.chunks_exact_mut(d.max(1)) {
            for (j, v) in row.iter_mut().enumerate() {
                if v.is_nan() {
                    *v = self.median.get(j).copied().unwrap_or(self.mean[j]);
                }
                *v = (*v - self.mean[j]) / self.std[j];
            }
        }
    }
}

/// Missing values of each feature column, `(column name, count)`, and their total, for a note.
pub(crate) fn missing_note(
    path: &std::path::Path,
    counts: &[(String, usize)],
    how: &str,
) -> Option<String> {
    let total: usize = counts.iter().map(|c| c.1).sum();
    (total > 0).then(|| {
        let cols: Vec<String> = counts
            .iter()
            .filter(|c| c.1 > 0)
            .map(|(name, n)| format!("{name}: {n}"))
            .collect();
        format!(
            "{}: {total} missing value{} ({}), {how} (--missing error refuses them)",
            path.display(),
            if total == 1 { "" } else { "s" },
            cols.join(", ")
        )
    })
}

/// Class ids and class names from string labels: numbers sort numerically, other names
/// alphabetically.
pub fn class_ids(raw: &[String]) -> (Vec<usize>, Vec<String>) {
    let mut names: Vec<String> = raw.to_vec();
    names.sort();
    names.dedup();
    if names.iter().all(|s| s.parse::<f64>().is_ok()) {
        names.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap_or(0.0)
                .total_cmp(&b.parse::<f64>().unwrap_or(0.0))
        });
    }
    let index: std::collections::HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let ids = raw.iter().map(|s| index[s.as_str()]).collect();
    (ids, names)
}
