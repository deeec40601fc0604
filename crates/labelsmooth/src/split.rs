//! Stratified, seeded, deterministic splits of a data set, as lists of row indices.
//!
//! Rows are shuffled with ChaCha8 seeded by the caller, so the same labels and seed give the same
//! split on every machine and every version of this crate.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Row indices of a training part and a validation part, each sorted ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Rows to train on.
    pub train: Vec<usize>,
    /// Rows to validate on.
    pub valid: Vec<usize>,
}

/// Rows of each class, each class's rows shuffled by `rng`; classes in ascending order.
fn shuffled_by_class(labels: &[usize], rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let k = labels.iter().max().map_or(0, |&m| m + 1);
    let mut by_class = vec![Vec::new(); k];
    for (i, &y) in labels.iter().enumerate() {
        by_class[y].push(i);
    }
    for rows in &mut by_class {
        rows.shuffle(rng);
    }
    by_class
}

/// Stratified k-fold: `folds` splits whose validation parts partition the rows, each class spread
/// over the folds as evenly as possible (fold sizes differ by at most one).
///
/// ```
/// use labelsmooth::split::stratified_k_fold;
/// let labels = [0, 0, 0, 1, 1, 1, 2, 2, 2];
/// let folds = stratified_k_fold(&labels, 3, 42).unwrap();
/// for f in &folds {
///     let mut classes: Vec<usize> = f.valid.iter().map(|&i| labels[i]).collect();
///     classes.sort();
///     assert_eq!(classes, vec![0, 1, 2]);
/// }
/// ```
pub fn stratified_k_fold(labels: &[usize], folds: usize, seed: u64) -> Result<Vec<Split>> {
    if folds < 2 {
        return Err(Error::InvalidParameter {
            what: "number of folds",
            why: format!("need at least 2, got {folds}"),
        });
    }
    if labels.len() < folds {
        return Err(Error::InvalidParameter {
            what: "number of folds",
            why: format!(
                "{folds} folds need at least {folds} rows, got {}",
                labels.len()
            ),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold_of = vec![0usize; labels.len()];
    // Deal the rows of each class in turn, continuing the round-robin across classes.
    let mut next = 0usize;
    for rows in shuffled_by_class(labels, &mut rng) {
        for i in rows {
            fold_of[i] = next % folds;
            next += 1;
        }
    }
    Ok((0..folds)
        .map(|f| {
            let (valid, train): (Vec<usize>, Vec<usize>) =
                (0..labels.len()).partition(|&i| fold_of[i] == f);
            Split { train, valid }
        })
        .collect())
}

/// Stratified train/validation split: a fraction `valid_fraction` of each class (rounded) goes to
/// validation.
///
/// ```
/// use labelsmooth::split::stratified_split;
/// let labels: Vec<usize> = (0..100).map(|i| i % 4).collect();
/// let s = stratified_split(&labels, 0.2, 7).unwrap();
/// assert_eq!(s.valid.len(), 20);
/// assert_eq!(s.valid.iter().filter(|&&i| labels[i] == 3).count(), 5);
/// ```
pub fn stratified_split(labels: &[usize], valid_fraction: f64, seed: u64) -> Result<Split> {
    if !(valid_fraction > 0.0 && valid_fraction < 1.0) {
        return Err(Error::InvalidParameter {
            what: "validation fraction",
            why: format!("{valid_fraction} is not strictly between 0 and 1"),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut in_valid = vec![false; labels.len()];
    for rows in shuffled_by_class(labels, &mut rng) {
        let take = (rows.len() as f64 * valid_fraction).round() as usize;
        for &i in &rows[..take] {
            in_valid[i] = true;
        }
    }
    let (valid, train): (Vec<usize>, Vec<usize>) = (0..labels.len()).partition(|&i| in_valid[i]);
    if valid.is_empty() || train.is_empty() {
        return Err(Error::Empty {
            what: if valid.is_empty() {
                "the validation part"
            } else {
                "the training part"
            },
            why: "too few rows for this validation fraction",
        });
    }
    Ok(Split { train, valid })
}
