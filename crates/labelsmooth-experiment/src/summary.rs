//! Cross-validated summaries and the one rule that names the best setting.

use serde::{Deserialize, Serialize};

/// Mean and population standard deviation (as scikit-learn's `cv_results_`); `(NaN, NaN)` for
/// no values.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// The decimal a user wrote for an `f32` factor (0.1, not 0.10000000149011612).
pub fn decimal(a: f32) -> f64 {
    a.to_string().parse().unwrap_or(f64::from(a))
}

/// Held-out metrics of every fold of one setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FoldMetrics {
    /// Accuracy per fold.
    pub accuracy: Vec<f64>,
    /// Mean negative log-likelihood per fold.
    pub nll: Vec<f64>,
    /// Expected calibration error per fold.
    pub ece: Vec<f64>,
    /// The held-out confusion matrices of the folds summed (rows the true classes): every row
    /// of the data once, as cross-validation holds each out once. Empty when not recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confusion: Vec<usize>,
    /// Mean top-label confidence per fold; empty when a fold did not record it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confidence: Vec<f64>,
}

impl FoldMetrics {
    /// Adds one fold: its metrics and its held-out confusion matrix (empty when not recorded:
    /// then no pooled matrix is kept).
    pub fn push(&mut self, accuracy: f64, nll: f64, ece: f64, confusion: &[usize]) {
        let first = self.accuracy.is_empty();
        self.accuracy.push(accuracy);
        self.nll.push(nll);
        self.ece.push(ece);
        if first {
            self.confusion = confusion.to_vec();
        } else if self.confusion.len() == confusion.len() {
            self.confusion
                .iter_mut()
                .zip(confusion)
                .for_each(|(a, b)| *a += b);
        } else {
            self.confusion.clear();
        }
    }

    /// Adds the mean confidence of the fold just pushed; `None` (an old record without it)
    /// drops the confidences of every fold.
    pub fn push_confidence(&mut self, confidence: Option<f64>) {
        match confidence {
            Some(c) if self.confidence.len() + 1 == self.accuracy.len() => self.confidence.push(c),
            _ => self.confidence.clear(),
        }
    }

    /// Means and spreads over the folds.
    pub fn stats(&self) -> CvStats {
        let (accuracy_mean, accuracy_std) = mean_std(&self.accuracy);
        let (nll_mean, nll_std) = mean_std(&self.nll);
        let (ece_mean, ece_std) = mean_std(&self.ece);
        CvStats {
            accuracy_mean,
            accuracy_std,
            nll_mean,
            nll_std,
            ece_mean,
            ece_std,
            confidence_mean: (!self.confidence.is_empty()
                && self.confidence.len() == self.accuracy.len())
            .then(|| mean_std(&self.confidence).0),
            folds: self.accuracy.len(),
        }
    }
}

/// One setting's cross-validated metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvStats {
    /// Mean accuracy over folds.
    pub accuracy_mean: f64,
    /// Population standard deviation of accuracy over folds.
    pub accuracy_std: f64,
    /// Mean NLL over folds.
    pub nll_mean: f64,
    /// Population standard deviation of the NLL over folds.
    #[serde(default)]
    pub nll_std: f64,
    /// Mean ECE over folds.
    pub ece_mean: f64,
    /// Population standard deviation of the ECE over folds.
    #[serde(default)]
    pub ece_std: f64,
    /// Mean top-label confidence over folds (absent for trials recorded before it was): above
    /// `accuracy_mean`, the model is over-confident on held-out data; below, under-confident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_mean: Option<f64>,
    /// Folds.
    pub folds: usize,
}

impl CvStats {
    /// Whether these metrics rank above `other` by the rule of [`Summary::best`]: higher mean
    /// accuracy, or equal accuracy and lower mean NLL.
    pub fn ranks_above(&self, other: &CvStats) -> bool {
        self.accuracy_mean
            .total_cmp(&other.accuracy_mean)
            .then(other.nll_mean.total_cmp(&self.nll_mean))
            .is_gt()
    }
}

/// A summary row: a setting and its metrics.
pub trait Row {
    /// The setting's name as tables and reports show it (`0.1`, `smoothing+dropout`).
    fn key(&self) -> String;
    /// The metrics.
    fn stats(&self) -> &CvStats;
    /// The held-out confusion matrix pooled over the folds; empty when not recorded.
    fn confusion(&self) -> &[usize];
}

/// A smoothing factor's row of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorRow {
    /// Smoothing factor α, as the user wrote it.
    pub smoothing: f64,
    /// Its metrics.
    #[serde(flatten)]
    pub stats: CvStats,
    /// Its held-out confusion matrix pooled over the folds (rows the true classes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confusion: Vec<usize>,
}

impl Row for FactorRow {
    fn key(&self) -> String {
        self.smoothing.to_string()
    }
    fn stats(&self) -> &CvStats {
        &self.stats
    }
    fn confusion(&self) -> &[usize] {
        &self.confusion
    }
}

/// A regularizer combination's row of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegularizerRow {
    /// The combination (`none`, `smoothing+dropout`).
    pub regularizer: String,
    /// Its metrics.
    #[serde(flatten)]
    pub stats: CvStats,
    /// Its held-out confusion matrix pooled over the folds (rows the true classes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confusion: Vec<usize>,
}

impl Row for RegularizerRow {
    fn key(&self) -> String {
        self.regularizer.clone()
    }
    fn stats(&self) -> &CvStats {
        &self.stats
    }
    fn confusion(&self) -> &[usize] {
        &self.confusion
    }
}

/// The best of `rows` by the rule of [`Summary::best`].
pub fn best<R: Row>(rows: &[R]) -> Option<&R> {
    rows.iter().fold(None, |best: Option<&R>, r| match best {
        Some(b) if !r.stats().ranks_above(b.stats()) => Some(b),
        _ => Some(r),
    })
}

/// The rows of a cross-validated experiment, in the order they were run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Summary<R>(pub Vec<R>);

impl<R: Row> Summary<R> {
    /// The best row: the highest mean accuracy; among equal accuracies the lower mean NLL; among
    /// rows equal in both, the first. `None` when there are no rows.
    ///
    /// ```
    /// use labelsmooth_experiment::summary::{CvStats, FactorRow, Summary};
    /// let row = |a: f64, acc: f64, nll: f64| FactorRow {
    ///     smoothing: a,
    ///     stats: CvStats {
    ///         accuracy_mean: acc, accuracy_std: 0.0, nll_mean: nll, nll_std: 0.0,
    ///         ece_mean: 0.0, ece_std: 0.0, confidence_mean: None, folds: 3,
    ///     },
    ///     confusion: Vec::new(),
    /// };
    /// let s = Summary(vec![row(0.0, 0.9, 0.4), row(0.1, 0.95, 0.5), row(0.2, 0.95, 0.3)]);
    /// assert_eq!(s.best().unwrap().smoothing, 0.2);
    /// ```
    pub fn best(&self) -> Option<&R> {
        best(&self.0)
    }

    /// The rows.
    pub fn rows(&self) -> &[R] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, acc: f64, nll: f64) -> RegularizerRow {
        RegularizerRow {
            regularizer: name.into(),
            stats: CvStats {
                accuracy_mean: acc,
                accuracy_std: 0.01,
                nll_mean: nll,
                nll_std: 0.0,
                ece_mean: 0.05,
                ece_std: 0.0,
                confidence_mean: None,
                folds: 3,
            },
            confusion: Vec::new(),
        }
    }

    #[test]
    fn best_is_highest_accuracy_then_lowest_nll_then_first() {
        let s = Summary(vec![
            row("a", 0.90, 0.1),
            row("b", 0.95, 0.5),
            row("c", 0.95, 0.4),
            row("d", 0.95, 0.4),
            row("e", 0.94, 0.0),
        ]);
        assert_eq!(s.best().unwrap().regularizer, "c");
        assert!(Summary::<RegularizerRow>(vec![]).best().is_none());
        // Order does not matter except among exact ties.
        let s = Summary(vec![row("x", 0.95, 0.4), row("y", 0.95, 0.5)]);
        assert_eq!(s.best().unwrap().regularizer, "x");
        let s = Summary(vec![row("y", 0.95, 0.5), row("x", 0.95, 0.4)]);
        assert_eq!(s.best().unwrap().regularizer, "x");
    }

    #[test]
    fn fold_statistics_are_population_moments() {
        let mut m = FoldMetrics::default();
        m.push(0.8, 0.5, 0.1, &[3, 1, 0, 4]);
        m.push(0.9, 0.3, 0.3, &[4, 0, 1, 3]);
        m.push(1.0, 0.1, 0.2, &[2, 0, 0, 6]);
        let s = m.stats();
        assert!((s.accuracy_mean - 0.9).abs() < 1e-12);
        assert!((s.accuracy_std - (0.02f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.nll_mean - 0.3).abs() < 1e-12);
        assert!((s.nll_std - (0.08f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.ece_mean - 0.2).abs() < 1e-12);
        assert!((s.ece_std - (0.02f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.folds, 3);
        // The held-out confusion matrices add up over the folds.
        assert_eq!(m.confusion, vec![9, 1, 1, 13]);
        // A fold without one (recorded before they were kept): no pooled matrix.
        m.push(1.0, 0.1, 0.2, &[]);
        assert!(m.confusion.is_empty());
    }

    #[test]
    fn rows_serialize_flat_with_their_key_first() {
        let r = FactorRow {
            smoothing: 0.1,
            stats: row("", 0.9, 0.3).stats,
            confusion: Vec::new(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.starts_with("{\"smoothing\":0.1,\"accuracy_mean\":0.9,"),
            "{text}"
        );
        assert_eq!(decimal(0.1), 0.1);
        assert_eq!(decimal(0.15), 0.15);
    }
}
