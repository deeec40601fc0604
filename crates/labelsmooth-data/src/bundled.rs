//! Data sets embedded in the binary, usable offline with no path. Origins, licences and
//! citations are in `data/SOURCES.md`.

use std::io::Read;
use std::path::Path;

use crate::table::{Column, Header, TableOptions, parse_table, parse_text_table};
use crate::{DataError, Dataset, Features, Result};

const DIGITS: &[u8] = include_bytes!("../../../data/digits.csv.gz");
const MNIST_5K: &[u8] = include_bytes!("../../../data/mnist_5k.csv.gz");
const ROTTEN_TOMATOES: &[u8] = include_bytes!("../../../data/rotten_tomatoes_corpus_full.csv.bz2");

/// Names of the bundled sets.
pub const NAMES: [&str; 3] = ["digits", "mnist-5k", "rt-polarity"];

/// Loads a bundled set by name:
/// - `digits`: 1797 hand-written digits, 8 × 8 grey pixels in [0, 1], 10 classes;
/// - `mnist-5k`: 5000 MNIST digits (500 per class), 28 × 28 grey pixels in [0, 1];
/// - `rt-polarity`: 12808 movie-review snippets labelled `rotten` (0) or `fresh` (1).
pub fn load(name: &str) -> Result<Dataset> {
    match name {
        "digits" => images_from_csv("digits", DIGITS, 8, 16.0),
        "mnist-5k" => images_from_csv("mnist-5k", MNIST_5K, 28, 255.0),
        "rt-polarity" => rt_polarity(),
        other => Err(DataError::Unknown(format!(
            "no bundled data set `{other}` (bundled: {})",
            NAMES.join(", ")
        ))),
    }
}

fn gunzip(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| DataError::at(Path::new(name), 0, format!("bundled file is corrupt: {e}")))?;
    Ok(out)
}

fn images_from_csv(name: &str, gz: &[u8], side: usize, max: f32) -> Result<Dataset> {
    let csv = gunzip(name, gz)?;
    let opts = TableOptions {
        header: Header::No,
        delimiter: Some(b','),
        ..Default::default()
    };
    let mut d = parse_table(Path::new(name), &csv, &opts)?;
    if let Features::Dense { values, shape } = &mut d.features {
        values.iter_mut().for_each(|v| *v /= max);
        *shape = vec![1, side, side];
    }
    d.name = name.to_string();
    d.layout = None;
    Ok(d)
}

fn rt_polarity() -> Result<Dataset> {
    let mut csv = Vec::new();
    bzip2::read::BzDecoder::new(ROTTEN_TOMATOES)
        .read_to_end(&mut csv)
        .map_err(|e| {
            DataError::at(
                Path::new("rt-polarity"),
                0,
                format!("bundled file is corrupt: {e}"),
            )
        })?;
    let opts = TableOptions {
        header: Header::Yes,
        delimiter: Some(b','),
        label_column: Some(Column::Name("category".into())),
        text_column: Some(Column::Name("text".into())),
        ..Default::default()
    };
    let all = parse_text_table(Path::new("rt-polarity"), &csv, &opts)?;
    let keep: Vec<usize> = (0..all.len())
        .filter(|&i| matches!(all.class_names[all.labels[i]].as_str(), "fresh" | "rotten"))
        .collect();
    let mut d = all.subset(&keep);
    let names = d.class_names.clone();
    d.labels = d
        .labels
        .iter()
        .map(|&l| usize::from(names[l] == "fresh"))
        .collect();
    d.class_names = vec!["rotten".into(), "fresh".into()];
    d.name = "rt-polarity".into();
    Ok(d)
}
