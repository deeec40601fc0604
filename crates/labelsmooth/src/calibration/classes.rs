//! Per-class scores of predictions: the confusion matrix, precision, recall and F1 (as
//! scikit-learn's `confusion_matrix` and `precision_recall_fscore_support`, with 0 where a
//! ratio has no denominator, its `zero_division=0`).

use crate::error::{Error, Result, check_len};

/// Counts `[k, k]` row-major: entry `[true][predicted]` (rows are the true classes, as
/// scikit-learn). Predictions are the first largest score of each row.
///
/// ```
/// use labelsmooth::calibration::confusion_matrix;
/// let scores = [0.9, 0.1, 0.3, 0.7, 0.6, 0.4];
/// assert_eq!(confusion_matrix(&scores, &[0, 1, 1], 2).unwrap(), vec![1, 0, 1, 1]);
/// ```
pub fn confusion_matrix(scores: &[f32], labels: &[usize], k: usize) -> Result<Vec<usize>> {
    // Validates shapes, labels and NaN the way every metric does.
    super::accuracy(scores, labels, k)?;
    let mut m = vec![0usize; k * k];
    for (s, &y) in scores.chunks_exact(k).zip(labels) {
        m[y * k + super::argmax(s)] += 1;
    }
    Ok(m)
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClassScores {
    /// Of the samples predicted as this class, the fraction that are (0 when none is).
    pub precision: f64,
    /// Of the samples of this class, the fraction predicted as it (0 when there are none).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Samples of this class.
    pub support: usize,
}

/// The scores of each class from a confusion matrix `[k, k]` (rows true, columns predicted).
///
/// ```
/// use labelsmooth::calibration::per_class_scores;
/// let s = per_class_scores(&[1, 0, 1, 1], 2).unwrap();
/// assert_eq!((s[0].precision, s[0].recall), (0.5, 1.0));
/// assert_eq!((s[1].precision, s[1].recall, s[1].support), (1.0, 0.5, 2));
/// ```
pub fn per_class_scores(confusion: &[usize], k: usize) -> Result<Vec<ClassScores>> {
    if k == 0 {
        return Err(Error::Empty {
            what: "the classes",
            why: "a confusion matrix has one row per class",
        });
    }
    check_len("confusion matrix (k * k counts)", k * k, confusion.len())?;
    Ok((0..k)
        .map(|c| {
            let tp = confusion[c * k + c] as f64;
            let support: usize = confusion[c * k..(c + 1) * k].iter().sum();
            let predicted: usize = (0..k).map(|r| confusion[r * k + c]).sum();
            let ratio = |a: f64, b: usize| if b == 0 { 0.0 } else { a / b as f64 };
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassScores {
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_follow_the_definitions_on_an_imbalanced_case() {
        // 3 classes; class 2 is never predicted and has one sample.
        let labels = [0, 0, 0, 1, 1, 2];
        let scores = [
            0.8, 0.1, 0.1, //
            0.7, 0.2, 0.1, //
            0.2, 0.7, 0.1, //
            0.1, 0.8, 0.1, //
            0.6, 0.3, 0.1, //
            0.5, 0.4, 0.1, //
        ];
        let m = confusion_matrix(&scores, &labels, 3).unwrap();
        assert_eq!(m, vec![2, 1, 0, 1, 1, 0, 1, 0, 0]);
        let s = per_class_scores(&m, 3).unwrap();
        // Class 0: predicted 4 times, 2 right; 3 samples.
        assert_eq!(s[0].precision, 0.5);
        assert_eq!(s[0].recall, 2.0 / 3.0);
        assert!((s[0].f1 - 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0)).abs() < 1e-15);
        assert_eq!((s[1].precision, s[1].recall), (0.5, 0.5));
        assert_eq!(
            s[2],
            ClassScores {
                precision: 0.0,
                recall: 0.0,
                f1: 0.0,
                support: 1
            }
        );
        let total: usize = s.iter().map(|c| c.support).sum();
        assert_eq!(total, labels.len());
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert!(confusion_matrix(&[0.5, 0.5], &[2], 2).is_err());
        assert!(confusion_matrix(&[f32::NAN, 0.5], &[0], 2).is_err());
        assert!(per_class_scores(&[1, 2, 3], 2).is_err());
    }
}
