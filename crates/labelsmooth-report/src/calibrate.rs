//! The calibration of one set of predictions: its metrics, per-class scores, confusion matrix,
//! calibration curve (two classes) and, when asked, a temperature fitted on some rows and its
//! effect on others; then the figures and the report of it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use labelsmooth::calibration::{
    Binning, Norm, ReliabilityBin, accuracy, apply_temperature, binary_brier_score,
    binary_reliability_bins, brier_score, calibration_curve, confusion_matrix, error_of_bins,
    fit_temperature, logit_nll, negative_log_likelihood, per_class_scores, reliability_bins,
    softmax, top_label,
};
use labelsmooth::split::stratified_split;
use serde::Serialize;

use crate::html::{ClassRow, Page, Section, Table, class_rows, class_section, f4, write_report};
use crate::plots;

/// The smallest probability the NLL of probabilities uses (−log of it at most).
pub const NLL_FLOOR: f64 = 1e-15;
/// The smallest probability turned into a logit for temperature scaling of probabilities.
pub const LOGIT_FLOOR: f64 = 1e-12;

/// Calibration metrics of one set of predictions.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Rows.
    pub n: usize,
    /// Share of rows whose highest probability is on the true class.
    pub accuracy: f64,
    /// From logits: −log softmax at the label, exact. From probabilities: −log p with p clipped
    /// below at `nll_clipped_at`.
    pub nll: f64,
    /// The clipping of the NLL, when it was computed from probabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nll_clipped_at: Option<f64>,
    /// Σ over classes of (p_j − onehot_j)², mean over rows.
    pub brier: f64,
    /// Two classes: scikit-learn's `brier_score_loss`, mean (P(1) − y)² (half of `brier`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brier_binary: Option<f64>,
    /// Top-label expected calibration error (torchmetrics' multiclass ECE).
    pub ece: f64,
    /// Two classes: torchmetrics' binary ECE, on P(class 1) against the fraction of label 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ece_binary: Option<f64>,
    /// Top-label maximum calibration error.
    pub mce: f64,
    /// Top-label root-mean-square calibration error.
    pub rmsce: f64,
    /// The reliability bins of the top-label confidence.
    pub bins: Vec<ReliabilityBin>,
}

/// Where the NLL comes from: logits (exact log-softmax at a temperature) or probabilities
/// (clipped below at [`NLL_FLOOR`]).
pub enum NllFrom<'a> {
    /// Logits `[n, k]` at `temperature`; `clipped_at`: the floor of the probabilities they were
    /// made from, if any.
    Logits {
        /// The logits.
        logits: &'a [f32],
        /// The temperature they are divided by.
        temperature: f64,
        /// The floor of the probabilities the logits are the logarithms of, if they are.
        clipped_at: Option<f64>,
    },
    /// The probabilities themselves.
    Probabilities,
}

/// The metrics of probabilities `probs` `[n, k]` against `labels`, over `bins` bins laid out by
/// `binning`.
pub fn metrics(
    probs: &[f32],
    nll_from: NllFrom<'_>,
    labels: &[usize],
    k: usize,
    bins: usize,
    binning: Binning,
) -> Result<Metrics> {
    let rb = reliability_bins(probs, labels, k, bins, binning)?;
    let (nll, nll_clipped_at) = match nll_from {
        NllFrom::Logits {
            logits,
            temperature,
            clipped_at,
        } => (logit_nll(logits, labels, k, temperature)?, clipped_at),
        NllFrom::Probabilities => (negative_log_likelihood(probs, labels, k)?, Some(NLL_FLOOR)),
    };
    let (brier_binary, ece_binary) = if k == 2 {
        let bins = binary_reliability_bins(probs, labels, bins, binning)?;
        (
            Some(binary_brier_score(probs, labels)?),
            Some(error_of_bins(&bins, Norm::L1)?),
        )
    } else {
        (None, None)
    };
    Ok(Metrics {
        n: labels.len(),
        accuracy: accuracy(probs, labels, k)?,
        nll,
        nll_clipped_at,
        brier: brier_score(probs, labels, k)?,
        brier_binary,
        ece: error_of_bins(&rb, Norm::L1)?,
        ece_binary,
        mce: error_of_bins(&rb, Norm::Max)?,
        rmsce: error_of_bins(&rb, Norm::L2)?,
        bins: rb,
    })
}

/// A row of probabilities that does not sum to 1 (within 1e-3), met without leave to
/// renormalize: the error [`Predictions::from_probabilities`] returns, so that a caller can name
/// its own way to renormalize.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NotNormalized {
    /// The row, from 1.
    pub row: usize,
    /// Its sum.
    pub sum: f64,
}

impl std::fmt::Display for NotNormalized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "row {}: probabilities sum to {:.4}, not 1",
            self.row, self.sum
        )
    }
}

impl std::error::Error for NotNormalized {}

/// Predictions with their true classes, ready for the metrics.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// Logits `[n, k]` (from probabilities: their logarithms, clipped below at [`LOGIT_FLOOR`]).
    pub logits: Vec<f32>,
    /// Probabilities `[n, k]`.
    pub probs: Vec<f32>,
    /// The true class of each row.
    pub labels: Vec<usize>,
    /// Classes.
    pub k: usize,
    /// Given as one column of class 1 (a logit or P(class 1)).
    pub binary: bool,
    /// Given as logits.
    pub from_logits: bool,
    /// Class names in column order, if known.
    pub class_names: Option<Vec<String>>,
}

/// The classes of `cols` columns: one column means two classes (class 1's column).
fn classes_of(cols: usize) -> Result<usize> {
    match cols {
        0 => bail!("the predictions have no columns"),
        1 => Ok(2),
        k => Ok(k),
    }
}

/// Checks `values` `[n, cols]` and `labels` against each other; returns n.
fn check_shape(values: &[f64], cols: usize, labels: &[usize], k: usize) -> Result<usize> {
    if values.is_empty() {
        bail!("there are no predictions");
    }
    if !values.len().is_multiple_of(cols) {
        bail!("{} values do not make rows of {cols} columns", values.len());
    }
    let n = values.len() / cols;
    if n != labels.len() {
        bail!("{n} rows of predictions but {} labels", labels.len());
    }
    if let Some((row, &y)) = labels.iter().enumerate().find(|(_, y)| **y >= k) {
        bail!("row {}: class {y} is out of range for {k} classes", row + 1);
    }
    Ok(n)
}

impl Predictions {
    /// Logits `[n, cols]` (row-major) and the true class of each row; one column is the logit of
    /// class 1 against class 0.
    pub fn from_logits(values: &[f64], cols: usize, labels: Vec<usize>) -> Result<Self> {
        let k = classes_of(cols)?;
        check_shape(values, cols, &labels, k)?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "row {}: logit {} is not a finite number",
                i / cols + 1,
                values[i]
            );
        }
        let logits: Vec<f32> = if cols == 1 {
            values.iter().flat_map(|&x| [0.0, x as f32]).collect()
        } else {
            values.iter().map(|&x| x as f32).collect()
        };
        let probs = softmax(&logits, k)?;
        Ok(Predictions {
            logits,
            probs,
            labels,
            k,
            binary: cols == 1,
            from_logits: true,
            class_names: None,
        })
    }

    /// Probabilities `[n, cols]` (row-major) and the true class of each row; one column is
    /// P(class 1). Each probability must lie in [0, 1] and each row sum to 1 within 1e-3, unless
    /// `renormalize`, which divides each row by its sum; a row that does not is a
    /// [`NotNormalized`] error.
    pub fn from_probabilities(
        values: &[f64],
        cols: usize,
        labels: Vec<usize>,
        renormalize: bool,
    ) -> Result<Self> {
        let k = classes_of(cols)?;
        check_shape(values, cols, &labels, k)?;
        let mut probs: Vec<f64> = if cols == 1 {
            values.iter().flat_map(|&p| [1.0 - p, p]).collect()
        } else {
            values.to_vec()
        };
        if let Some(i) = values.iter().position(|p| !(0.0..=1.0).contains(p)) {
            bail!(
                "row {}: probability {} is outside [0, 1]",
                i / cols + 1,
                values[i]
            );
        }
        for (row, p) in probs.chunks_mut(k).enumerate() {
            let sum: f64 = p.iter().sum();
            if (sum - 1.0).abs() > 1e-3 {
                if sum <= 0.0 {
                    bail!(
                        "row {}: probabilities sum to {sum}: nothing to renormalize",
                        row + 1
                    );
                }
                if !renormalize {
                    return Err(NotNormalized { row: row + 1, sum }.into());
                }
                p.iter_mut().for_each(|v| *v /= sum);
            }
        }
        Ok(Predictions {
            logits: probs
                .iter()
                .map(|&p| p.max(LOGIT_FLOOR).ln() as f32)
                .collect(),
            probs: probs.iter().map(|&p| p as f32).collect(),
            labels,
            k,
            binary: cols == 1,
            from_logits: false,
            class_names: None,
        })
    }

    /// These predictions with their classes named, in column order.
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.k {
            bail!(
                "{} class names for predictions of {} classes",
                names.len(),
                self.k
            );
        }
        self.class_names = Some(names);
        Ok(self)
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The rows `rows` of these predictions.
    pub fn subset(&self, rows: &[usize]) -> Predictions {
        let k = self.k;
        let pick = |v: &[f32]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| v[r * k..(r + 1) * k].iter().copied())
                .collect()
        };
        Predictions {
            logits: pick(&self.logits),
            probs: pick(&self.probs),
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            class_names: self.class_names.clone(),
            ..*self
        }
    }

    /// The class names, or the class ids as names.
    pub fn names(&self) -> Vec<String> {
        self.class_names
            .clone()
            .unwrap_or_else(|| (0..self.k).map(|c| c.to_string()).collect())
    }

    /// The metrics at temperature `t` (1: as given) and the probabilities they are of.
    pub fn metrics_at(&self, t: f64, bins: usize, binning: Binning) -> Result<(Metrics, Vec<f32>)> {
        let (probs, nll_from) = if t == 1.0 {
            let from = if self.from_logits {
                NllFrom::Logits {
                    logits: &self.logits,
                    temperature: 1.0,
                    clipped_at: None,
                }
            } else {
                NllFrom::Probabilities
            };
            (self.probs.clone(), from)
        } else {
            (
                softmax(&apply_temperature(&self.logits, t)?, self.k)?,
                NllFrom::Logits {
                    logits: &self.logits,
                    temperature: t,
                    clipped_at: (!self.from_logits).then_some(LOGIT_FLOOR),
                },
            )
        };
        let m = metrics(&probs, nll_from, &self.labels, self.k, bins, binning)?;
        Ok((m, probs))
    }
}

/// Where a temperature is fitted and where its effect is measured.
#[derive(Debug, Clone)]
pub struct FitPlan {
    /// The rows the temperature is fitted on.
    pub fit: Predictions,
    /// The rows it is evaluated on.
    pub eval: Predictions,
    /// The fitted rows, in words.
    pub fitted_on: String,
    /// The evaluated rows, in words.
    pub evaluated_on: String,
}

impl FitPlan {
    /// Fit on a stratified share `fraction` of each class of `set` (seeded), evaluate on the
    /// other rows.
    pub fn split(set: &Predictions, fraction: f64, seed: u64) -> Result<Self> {
        if !(fraction > 0.0 && fraction < 1.0) {
            bail!("fit fraction {fraction} is not strictly between 0 and 1");
        }
        let percent = (100.0 * fraction).round();
        let split = stratified_split(&set.labels, 1.0 - fraction, seed).map_err(|_| {
            anyhow::anyhow!(
                "too few rows to fit the temperature on {percent}% of each class and evaluate on the rest"
            )
        })?;
        Ok(FitPlan {
            fitted_on: format!(
                "a stratified {percent}% of the rows (seed {seed}, {} rows)",
                split.train.len()
            ),
            evaluated_on: format!("the other {} rows", split.valid.len()),
            fit: set.subset(&split.train),
            eval: set.subset(&split.valid),
        })
    }

    /// Fit on `fit` (described as `fit_name`), evaluate on every row of `set` (`set_name`).
    pub fn other(
        fit: Predictions,
        fit_name: &str,
        set: &Predictions,
        set_name: &str,
    ) -> Result<Self> {
        if fit.k != set.k {
            bail!(
                "{fit_name} has {} classes but {set_name} has {}",
                fit.k,
                set.k
            );
        }
        Ok(FitPlan {
            fitted_on: format!("{fit_name} ({} rows)", fit.len()),
            evaluated_on: format!("every row of {set_name}"),
            fit,
            eval: set.clone(),
        })
    }
}

/// scikit-learn's calibration curve of binary predictions.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// Fraction of class 1 per non-empty bin.
    pub prob_true: Vec<f64>,
    /// Mean P(class 1) per non-empty bin.
    pub prob_pred: Vec<f64>,
    /// Rows per non-empty bin.
    pub counts: Vec<usize>,
}

/// A temperature fitted on some rows and its effect on others.
#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    /// The fitted temperature T.
    pub temperature: f64,
    /// The rows it was fitted on, in words.
    pub fitted_on: String,
    /// How many rows it was fitted on.
    pub fit_rows: usize,
    /// The rows `before_scaling` and `after` are measured on, in words.
    pub evaluated_on: String,
    /// The evaluated rows as given.
    pub before_scaling: Metrics,
    /// The evaluated rows at temperature T.
    pub after: Metrics,
}

/// The calibration of a set of predictions; as JSON, what `calibrate --json` prints and
/// `results.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// Every row, as given.
    #[serde(flatten)]
    pub before: Metrics,
    /// Two classes: the calibration curve of P(class 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration_curve: Option<Curve>,
    /// Precision, recall, F1 and support per class, every row.
    pub per_class: Vec<ClassRow>,
    /// Rows the true classes.
    pub confusion_matrix: Vec<Vec<usize>>,
    /// The fitted temperature and its effect, when one was fitted.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// The class names (or ids) in column order.
    #[serde(skip)]
    pub class_names: Vec<String>,
    /// The top-label confidences as given, and (with scaling) at T on the evaluated rows.
    #[serde(skip)]
    confidences: (Vec<f32>, Option<Vec<f32>>),
}

/// The top-label confidence of each row of `probs`.
fn top_confidences(probs: &[f32], labels: &[usize], k: usize) -> Result<Vec<f32>> {
    Ok(top_label(probs, labels, k)?
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

/// The calibration of `set` over `bins` bins laid out by `binning`; with `fit`, a temperature
/// fitted (minimum NLL) on its `fit` rows and the metrics before and after it on its `eval` rows.
pub fn calibrate(
    set: &Predictions,
    fit: Option<FitPlan>,
    bins: usize,
    binning: Binning,
) -> Result<Calibration> {
    let k = set.k;
    let (before, _) = set.metrics_at(1.0, bins, binning)?;
    let calibration_curve = if set.binary {
        let p1: Vec<f64> = set.probs.chunks(2).map(|r| f64::from(r[1])).collect();
        let c = calibration_curve(&set.labels, &p1, bins, binning)?;
        Some(Curve {
            prob_true: c.prob_true,
            prob_pred: c.prob_pred,
            counts: c.counts,
        })
    } else {
        None
    };
    let (scaling, scaled_confidences) = match fit {
        Some(plan) => {
            let t = fit_temperature(&plan.fit.logits, &plan.fit.labels, k)?.temperature;
            let (before_scaling, _) = plan.eval.metrics_at(1.0, bins, binning)?;
            let (after, probs) = plan.eval.metrics_at(t, bins, binning)?;
            let confidences = top_confidences(&probs, &plan.eval.labels, k)?;
            (
                Some(Scaling {
                    temperature: t,
                    fit_rows: plan.fit.len(),
                    fitted_on: plan.fitted_on,
                    evaluated_on: plan.evaluated_on,
                    before_scaling,
                    after,
                }),
                Some(confidences),
            )
        }
        None => (None, None),
    };
    let names = set.names();
    let confusion = confusion_matrix(&set.probs, &set.labels, k)?;
    let scores = per_class_scores(&confusion, k)?;
    Ok(Calibration {
        before,
        calibration_curve,
        per_class: class_rows(&names, &scores),
        confusion_matrix: confusion.chunks(k).map(<[usize]>::to_vec).collect(),
        scaling,
        class_names: names,
        confidences: (
            top_confidences(&set.probs, &set.labels, k)?,
            scaled_confidences,
        ),
    })
}

/// The mean top-label confidence against the accuracy, and what that makes the predictions:
/// "Mean confidence 0.830 against accuracy 0.986: {subject} under-confident."
pub fn confidence_reading(m: &Metrics, subject: &str) -> String {
    let mean_conf = m
        .bins
        .iter()
        .map(|b| b.mean_confidence * b.count as f64)
        .sum::<f64>()
        / m.n.max(1) as f64;
    let word = crate::html::regime_word(m.accuracy, mean_conf);
    format!(
        "Mean confidence {mean_conf:.3} against accuracy {:.3}: {subject} {word}.",
        m.accuracy
    )
}

/// The metrics table of a report: one row per `(rows described, metrics)`.
pub fn metrics_table(rows: &[(String, &Metrics)]) -> Table {
    Table {
        header: [
            "rows", "n", "accuracy", "NLL", "Brier", "ECE", "MCE", "RMSCE",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|(what, m)| {
                vec![
                    what.clone(),
                    m.n.to_string(),
                    f4(m.accuracy),
                    f4(m.nll),
                    f4(m.brier),
                    f4(m.ece),
                    f4(m.mce),
                    f4(m.rmsce),
                ]
            })
            .collect(),
    }
}

impl Calibration {
    /// Writes the figures (reliability diagrams as given and at the fitted temperature, the
    /// top-label confidence histogram, the confusion matrix; PNG and SVG) into `figures` and the
    /// report that embeds them to `html`, atomically; `source` names the predictions in its
    /// title ("Calibration: {source}").
    pub fn write_report(&self, source: &str, figures: &Path, html: &Path) -> Result<()> {
        std::fs::create_dir_all(figures)
            .with_context(|| format!("{}: cannot create", figures.display()))?;
        let m = &self.before;
        plots::reliability_diagram(
            figures,
            "reliability",
            "Reliability as given",
            &m.bins,
            m.ece,
        )?;
        let mut histograms = vec![("as given".to_string(), self.confidences.0.clone())];
        let mut figs = vec![(
            "reliability".to_string(),
            "Reliability diagram of every row as given".to_string(),
        )];
        let mut reading = vec![format!(
            "Accuracy {:.2}%, NLL {:.3}{}, Brier {:.3}, ECE {:.3} on {} rows.",
            100.0 * m.accuracy,
            m.nll,
            m.nll_clipped_at.map_or(String::new(), |e| format!(
                " (probabilities clipped below at {e:e})"
            )),
            m.brier,
            m.ece,
            m.n
        )];
        reading.push(confidence_reading(m, "the predictions are"));
        let mut rows = vec![("as given, every row".to_string(), m)];
        if let (Some(s), Some(scaled)) = (&self.scaling, &self.confidences.1) {
            plots::reliability_diagram(
                figures,
                "reliability_scaled",
                &format!("Reliability at T = {:.3}", s.temperature),
                &s.after.bins,
                s.after.ece,
            )?;
            figs.push((
                "reliability_scaled".into(),
                format!(
                    "Reliability diagram at the fitted temperature, on {}",
                    s.evaluated_on
                ),
            ));
            histograms.push((format!("T = {:.3}", s.temperature), scaled.clone()));
            reading.push(format!(
                "Temperature scaling fitted T = {:.3} on {}; on {} it moves NLL {:.3} → {:.3} and ECE {:.3} → {:.3} ({}).",
                s.temperature,
                s.fitted_on,
                s.evaluated_on,
                s.before_scaling.nll,
                s.after.nll,
                s.before_scaling.ece,
                s.after.ece,
                if s.temperature > 1.0 {
                    "T > 1 softens over-confident predictions"
                } else {
                    "T < 1 sharpens under-confident predictions"
                }
            ));
            rows.push((format!("as given, {}", s.evaluated_on), &s.before_scaling));
            rows.push((
                format!("T = {:.3}, {}", s.temperature, s.evaluated_on),
                &s.after,
            ));
        }
        plots::confidence_histogram(figures, "confidence_histogram", &histograms)?;
        figs.push(("confidence_histogram".into(), "Top-label confidence".into()));
        let flat: Vec<usize> = self.confusion_matrix.concat();
        plots::confusion_matrix(figures, "confusion_matrix", &self.class_names, &flat)?;
        let page = Page {
            title: format!("Calibration: {source}"),
            intro: format!(
                "The predictions in {source} against their true classes: {} classes, ECE over {} bins of the top-label confidence.",
                self.class_names.len(),
                m.bins.len()
            ),
            reading,
            sections: vec![
                Section {
                    heading: "Metrics".into(),
                    table: Some(metrics_table(&rows)),
                    figures: figs,
                },
                class_section("Per class".into(), &self.per_class, ""),
            ],
        };
        write_report(html, &page, figures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three classes, rows chosen so that the metrics can be worked out by hand.
    fn set() -> Predictions {
        Predictions::from_probabilities(
            &[0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.5, 0.3, 0.2, 0.2, 0.2, 0.6],
            3,
            vec![0, 1, 1, 2],
            false,
        )
        .unwrap()
    }

    #[test]
    fn the_metrics_follow_their_definitions() {
        let c = calibrate(&set(), None, 10, Binning::Uniform).unwrap();
        let m = &c.before;
        // Rows 0, 1 and 3 are right, row 2 is not.
        assert_eq!(m.accuracy, 0.75);
        let nll = -(0.7f64.ln() + 0.8f64.ln() + 0.3f64.ln() + 0.6f64.ln()) / 4.0;
        assert!((m.nll - nll).abs() < 1e-6, "{} vs {nll}", m.nll);
        let brier = ((0.09 + 0.04 + 0.01)
            + (0.01 + 0.04 + 0.01)
            + (0.25 + 0.49 + 0.04)
            + (0.04 + 0.04 + 0.16))
            / 4.0;
        assert!((m.brier - brier).abs() < 1e-6);
        // Four bins hold one row each: |conf − right| per row, over 4.
        let ece = (0.3 + 0.2 + 0.5 + 0.4) / 4.0;
        assert!((m.ece - ece).abs() < 1e-6, "{} vs {ece}", m.ece);
        assert!((m.mce - 0.5).abs() < 1e-6);
        assert_eq!(
            c.confusion_matrix,
            vec![vec![1, 0, 0], vec![1, 1, 0], vec![0, 0, 1]]
        );
        assert_eq!(c.per_class[1].recall, 0.5);
        assert!(c.calibration_curve.is_none() && c.scaling.is_none());
    }

    #[test]
    fn logits_and_their_probabilities_agree_and_temperature_one_changes_nothing() {
        let logits = [2.0, 0.5, -1.0, 0.1, 0.3, 1.2, -0.4, 1.5, 0.0];
        let labels = vec![0, 2, 1];
        let from_logits = Predictions::from_logits(&logits, 3, labels.clone()).unwrap();
        let probs: Vec<f64> = from_logits.probs.iter().map(|&p| f64::from(p)).collect();
        let from_probs = Predictions::from_probabilities(&probs, 3, labels, false).unwrap();
        let (a, _) = from_logits.metrics_at(1.0, 5, Binning::Uniform).unwrap();
        let (b, _) = from_probs.metrics_at(1.0, 5, Binning::Uniform).unwrap();
        assert!((a.nll - b.nll).abs() < 1e-5 && (a.ece - b.ece).abs() < 1e-6);
        assert_eq!(a.nll_clipped_at, None);
        assert_eq!(b.nll_clipped_at, Some(NLL_FLOOR));
    }

    #[test]
    fn a_fitted_temperature_lowers_the_nll_where_it_was_fitted() {
        // One column, the logit of class 1: right 4 times in 5, each with confidence 0.9975.
        let logits = [-6.0, 6.0, -6.0, 6.0, 6.0];
        let set = Predictions::from_logits(&logits, 1, vec![0, 1, 0, 0, 1]).unwrap();
        assert!(set.binary && set.k == 2);
        let plan = FitPlan::other(set.clone(), "the same rows", &set, "them").unwrap();
        let c = calibrate(&set, Some(plan), 10, Binning::Uniform).unwrap();
        let s = c.scaling.as_ref().unwrap();
        assert!(s.temperature > 1.0, "{}", s.temperature);
        assert!(s.after.nll < s.before_scaling.nll);
        assert!(c.calibration_curve.is_some());
    }

    #[test]
    fn bad_predictions_are_refused_with_the_row() {
        let e = |r: Result<Predictions>| r.unwrap_err().to_string();
        assert!(
            e(Predictions::from_probabilities(
                &[0.5, 0.6],
                2,
                vec![0],
                false
            ))
            .contains("row 1: probabilities sum to 1.1000")
        );
        assert!(
            e(Predictions::from_probabilities(
                &[0.5, 0.5, -0.1, 1.1],
                2,
                vec![0, 1],
                true
            ))
            .contains("row 2: probability -0.1")
        );
        assert!(
            e(Predictions::from_probabilities(
                &[f64::NAN, 0.5],
                2,
                vec![0],
                false
            ))
            .contains("row 1: probability NaN")
        );
        assert!(
            e(Predictions::from_logits(&[0.0, f64::INFINITY], 2, vec![0]))
                .contains("row 1: logit inf")
        );
        assert!(
            e(Predictions::from_logits(&[0.0, 1.0], 2, vec![2]))
                .contains("class 2 is out of range for 2 classes")
        );
        assert!(
            e(Predictions::from_logits(&[0.0, 1.0], 2, vec![0, 1]))
                .contains("1 rows of predictions but 2 labels")
        );
        assert!(e(Predictions::from_logits(&[], 2, vec![])).contains("no predictions"));
        assert!(
            e(Predictions::from_logits(&[0.0, 1.0, 2.0], 2, vec![0])).contains("rows of 2 columns")
        );
        assert!(
            e(set().with_class_names(vec!["a".into()]))
                .contains("1 class names for predictions of 3 classes")
        );
        assert!(FitPlan::split(&set(), 1.0, 0).is_err());
    }

    #[test]
    fn the_report_embeds_every_figure_and_nothing_is_left_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let set = set()
            .with_class_names(vec!["cat".into(), "dog, big".into(), "<fox>".into()])
            .unwrap();
        let plan = FitPlan::other(set.clone(), "them", &set, "them").unwrap();
        let c = calibrate(&set, Some(plan), 10, Binning::Uniform).unwrap();
        let figures = dir.path().join("figures");
        let html = dir.path().join("report.html");
        c.write_report("a test", &figures, &html).unwrap();
        let page = std::fs::read_to_string(&html).unwrap();
        for name in [
            "reliability",
            "reliability_scaled",
            "confidence_histogram",
            "confusion_matrix",
        ] {
            assert!(figures.join(format!("{name}.png")).is_file(), "{name}.png");
            assert!(figures.join(format!("{name}.svg")).is_file(), "{name}.svg");
        }
        assert_eq!(page.matches("data:image/png;base64,").count(), 4);
        assert!(page.contains("&lt;fox&gt;") && !page.contains("<fox>"));
        assert!(!dir.path().join("report.html.tmp").exists());
        let json = serde_json::to_value(&c).unwrap();
        assert!(
            json["temperature"].as_f64().is_some() && json["per_class"][1]["class"] == "dog, big"
        );
    }
}
