//! Regularizers and their combinations (`smoothing+dropout`), and the cross-validated
//! comparison of several.

use labelsmooth::split::stratified_k_fold;
use labelsmooth_burn::train::L2;
use labelsmooth_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::cv::cross_validate;
use crate::error::{Error, Result};
use crate::observe::Observer;
use crate::summary::{FoldMetrics, RegularizerRow, Summary};
use crate::trial::TrialSpec;

/// One regularizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Regularizer {
    /// Nothing.
    None,
    /// λ·Σw² over weight matrices and kernels added to the loss (Keras' `kernel_regularizer`).
    L2,
    /// Adam's weight decay λ.
    WeightDecay,
    /// Dropout in the model.
    Dropout,
    /// Label smoothing with factor α.
    Smoothing,
    /// The confidence penalty β (Pereyra et al. 2017).
    ConfidencePenalty,
}

impl Regularizer {
    /// Every regularizer.
    pub const ALL: [Regularizer; 6] = [
        Regularizer::None,
        Regularizer::L2,
        Regularizer::WeightDecay,
        Regularizer::Dropout,
        Regularizer::Smoothing,
        Regularizer::ConfidencePenalty,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Regularizer::None => "none",
            Regularizer::L2 => "l2",
            Regularizer::WeightDecay => "weight-decay",
            Regularizer::Dropout => "dropout",
            Regularizer::Smoothing => "smoothing",
            Regularizer::ConfidencePenalty => "confidence-penalty",
        }
    }
}

impl std::str::FromStr for Regularizer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        Regularizer::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown regularizer `{s}` (none, l2, weight-decay, dropout, smoothing, confidence-penalty)"
                ))
            })
    }
}

/// The strengths the regularizers are applied with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegularizerSettings {
    /// λ of `l2` and `weight-decay`.
    pub l2: f32,
    /// Dropout probability of `dropout`.
    pub dropout: f64,
    /// Smoothing factor α of `smoothing`.
    pub alpha: f32,
    /// β of `confidence-penalty`.
    pub beta: f32,
}

impl Default for RegularizerSettings {
    /// λ = 1e-4, dropout 0.2, α = 0.1, β = 0.1.
    fn default() -> Self {
        RegularizerSettings {
            l2: 1e-4,
            dropout: 0.2,
            alpha: 0.1,
            beta: 0.1,
        }
    }
}

/// A combination of regularizers, written joined by `+` (`smoothing+dropout`).
///
/// ```
/// use labelsmooth_experiment::regularizer::{Regularizer, Regularizers};
/// let r: Regularizers = "smoothing+dropout".parse().unwrap();
/// assert_eq!(r.parts(), [Regularizer::Smoothing, Regularizer::Dropout]);
/// assert_eq!(r.to_string(), "smoothing+dropout");
/// assert!("smoothing+magic".parse::<Regularizers>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Regularizers(Vec<Regularizer>);

impl Regularizers {
    /// The parts, in the order written.
    pub fn parts(&self) -> &[Regularizer] {
        &self.0
    }

    /// `spec` with these regularizers switched on at `settings`' strengths.
    pub fn apply(&self, mut spec: TrialSpec, settings: &RegularizerSettings) -> TrialSpec {
        for r in &self.0 {
            match r {
                Regularizer::None => {}
                Regularizer::L2 => spec.train.l2 = Some(L2::Penalty(settings.l2)),
                Regularizer::WeightDecay => spec.train.l2 = Some(L2::WeightDecay(settings.l2)),
                Regularizer::Dropout => spec.dropout = settings.dropout,
                Regularizer::Smoothing => spec.train.smoothing = settings.alpha,
                Regularizer::ConfidencePenalty => {
                    spec.train.confidence_penalty = Some(settings.beta)
                }
            }
        }
        spec
    }
}

impl std::str::FromStr for Regularizers {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(Regularizers(
            s.split('+').map(str::parse).collect::<Result<_>>()?,
        ))
    }
}

impl std::fmt::Display for Regularizers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|r| r.name()).collect();
        f.write_str(&names.join("+"))
    }
}

/// Regularizer combinations compared by stratified cross-validation on the same folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The combinations, in the order of the table.
    pub regularizers: Vec<Regularizers>,
    /// Their strengths.
    pub settings: RegularizerSettings,
    /// Stratified folds.
    pub folds: usize,
    /// Seed of the folds (training uses `base.train.seed`).
    pub seed: u64,
    /// The trial every combination starts from.
    pub base: TrialSpec,
}

/// What a [`Comparison`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonResult {
    /// One row per combination.
    pub summary: Summary<RegularizerRow>,
    /// The best row (see [`Summary::best`]).
    pub best: Option<RegularizerRow>,
    /// The metrics of every fold, per combination.
    pub folds: Vec<FoldMetrics>,
    /// The class names of the data, in the order of the confusion matrices.
    pub classes: Vec<String>,
}

impl Comparison {
    /// Runs every combination on every fold of `d`.
    pub fn run(&self, d: &Dataset, observer: &mut dyn Observer) -> Result<ComparisonResult> {
        let folds = stratified_k_fold(&d.labels, self.folds, self.seed)?;
        let mut rows = Vec::new();
        let mut all = Vec::new();
        for r in &self.regularizers {
            let spec = r.apply(self.base.clone(), &self.settings);
            let m = cross_validate(d, &folds, &spec, &r.to_string(), observer)?;
            rows.push(RegularizerRow {
                regularizer: r.to_string(),
                stats: m.stats(),
                confusion: m.confusion.clone(),
            });
            all.push(m);
        }
        let summary = Summary(rows);
        Ok(ComparisonResult {
            best: summary.best().cloned(),
            summary,
            folds: all,
            classes: d.class_names.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::ModelKind;

    #[test]
    fn combinations_switch_on_each_part() {
        let s = RegularizerSettings::default();
        let base = TrialSpec::new(ModelKind::Mlp, 0);
        let r: Regularizers = "l2+dropout+smoothing+confidence-penalty".parse().unwrap();
        let spec = r.apply(base.clone(), &s);
        assert_eq!(spec.train.l2, Some(L2::Penalty(1e-4)));
        assert_eq!(spec.dropout, 0.2);
        assert_eq!(spec.train.smoothing, 0.1);
        assert_eq!(spec.train.confidence_penalty, Some(0.1));
        let none: Regularizers = "none".parse().unwrap();
        assert_eq!(none.apply(base.clone(), &s), base);
        let wd: Regularizers = " weight-decay ".parse().unwrap();
        assert_eq!(wd.apply(base, &s).train.l2, Some(L2::WeightDecay(1e-4)));
        let e = "l2+l3".parse::<Regularizers>().unwrap_err().to_string();
        assert!(e.contains("unknown regularizer `l3`"), "{e}");
    }
}
