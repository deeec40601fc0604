//! Smoothed target distributions, in every convention people use.
//!
//! | convention | target class | every other class | used by |
//! |---|---|---|---|
//! | [`Convention::Uniform`] | 1 − α + α/K | α/K | PyTorch `label_smoothing`, Keras, Optax, timm, Burn, Szegedy et al. 2016 |
//! | [`Convention::ExcludeTrue`] | 1 − α | α/(K − 1) | fairseq, the "LabelSmoothingLoss" class found in many PyTorch code bases |
//! | [`BinaryConvention::TowardHalf`] | y(1 − α) + α/2 per label | | Keras `BinaryCrossentropy(label_smoothing)` |
//! | [`BinaryConvention::OverLabels`] | y(1 − α) + α/L per label, L labels | | multi-label variant spreading α over the L label columns |
//!
//! The two multi-class conventions differ by how much mass stays on the true class: with α = 0.1
//! and K = 10, `Uniform` keeps 0.91 and `ExcludeTrue` keeps 0.90. A factor tuned in one convention
//! is the factor α·K/(K−1) in the other.
//!
//! The number of classes K is always given by the caller, never inferred from the labels a batch
//! happens to contain.

use crate::error::{Error, Result, check_alpha, rows_of};

/// How a multi-class smoothing factor α spreads probability mass (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Convention {
    /// q = (1 − α)·onehot + α/K: PyTorch, Keras, Optax, timm, Burn.
    #[default]
    Uniform,
    /// q = 1 − α on the target class and α/(K − 1) on every other: fairseq. Needs K ≥ 2.
    ExcludeTrue,
}

impl Convention {
    /// The name used in messages, files and the command line: `uniform` or `exclude-true`.
    pub fn name(self) -> &'static str {
        match self {
            Convention::Uniform => "uniform",
            Convention::ExcludeTrue => "exclude-true",
        }
    }

    /// Target probabilities `(on, off)` for the true class and every other class.
    ///
    /// ```
    /// use labelsmooth::targets::Convention;
    /// assert_eq!(Convention::ExcludeTrue.on_off(0.1, 3).unwrap(), (0.9, 0.05));
    /// let (on, off) = Convention::Uniform.on_off(0.3, 3).unwrap();
    /// assert!((on - 0.8).abs() < 1e-12 && (off - 0.1).abs() < 1e-12);
    /// ```
    pub fn on_off(self, alpha: f64, k: usize) -> Result<(f64, f64)> {
        if alpha.is_nan() || !(0.0..=1.0).contains(&alpha) {
            return Err(Error::InvalidSmoothing { value: alpha });
        }
        self.check_classes(k)?;
        Ok(match self {
            Convention::Uniform => {
                let off = alpha / k as f64;
                (1.0 - alpha + off, off)
            }
            Convention::ExcludeTrue => (1.0 - alpha, alpha / (k - 1) as f64),
        })
    }

    /// The factor that gives, in convention `to`, the same targets as `alpha` gives in this one
    /// for `k` classes: an exclude-true α is the uniform α·K/(K − 1). An error when the
    /// equivalent factor falls outside [0, 1] (exclude-true factors above (K − 1)/K have no uniform
    /// equivalent).
    ///
    /// ```
    /// use labelsmooth::targets::Convention;
    /// let a = Convention::Uniform.convert(0.1, 10, Convention::ExcludeTrue).unwrap();
    /// assert!((a - 0.09).abs() < 1e-12);
    /// assert_eq!(Convention::ExcludeTrue.on_off(a, 10).unwrap().0, 1.0 - 0.09);
    /// ```
    pub fn convert(self, alpha: f64, k: usize, to: Convention) -> Result<f64> {
        self.on_off(alpha, k)?;
        to.check_classes(k)?;
        let kf = k as f64;
        let converted = match (self, to) {
            (Convention::Uniform, Convention::ExcludeTrue) => alpha * (kf - 1.0) / kf,
            (Convention::ExcludeTrue, Convention::Uniform) => alpha * kf / (kf - 1.0),
            _ => alpha,
        };
        if converted > 1.0 {
            return Err(Error::InvalidParameter {
                what: "smoothing factor",
                why: format!(
                    "{} α = {alpha} with {k} classes is {} α = {converted}, outside [0, 1]",
                    self.name(),
                    to.name()
                ),
            });
        }
        Ok(converted)
    }

    /// Checks that `k` classes are enough for this convention.
    pub fn check_classes(self, k: usize) -> Result<()> {
        if k == 0 {
            return Err(Error::NoClasses);
        }
        if self == Convention::ExcludeTrue && k < 2 {
            return Err(Error::TooFewClasses {
                convention: "exclude-true",
                min: 2,
                k,
            });
        }
        Ok(())
    }
}

impl std::str::FromStr for Convention {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(Convention::Uniform),
            "exclude-true" | "exclude_true" => Ok(Convention::ExcludeTrue),
            other => Err(Error::InvalidParameter {
                what: "convention",
                why: format!("`{other}` is not one of uniform, exclude-true"),
            }),
        }
    }
}

/// How a smoothing factor moves binary or multi-label 0/1 targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum BinaryConvention {
    /// y(1 − α) + α/2 for every label, as Keras' `BinaryCrossentropy(label_smoothing=α)`.
    #[default]
    TowardHalf,
    /// y(1 − α) + α/L over L label columns: the multi-label variant that treats the L labels
    /// as the classes of a uniform prior. Equals `TowardHalf` when L = 2.
    OverLabels,
}

/// Smoothed target rows `[n, k]` (row-major) from class ids.
///
/// Each row sums to 1. This builds the whole matrix; the losses in [`crate::loss`] never do.
///
/// ```
/// use labelsmooth::targets::{smooth_class_ids, Convention};
/// let q = smooth_class_ids(&[2, 0], 4, 0.2, Convention::Uniform).unwrap();
/// assert_eq!(q, vec![0.05, 0.05, 0.85, 0.05, 0.85, 0.05, 0.05, 0.05]);
/// let q = smooth_class_ids(&[1], 3, 0.2, Convention::ExcludeTrue).unwrap();
/// assert_eq!(q, vec![0.1, 0.8, 0.1]);
/// ```
pub fn smooth_class_ids(
    class_ids: &[usize],
    k: usize,
    alpha: f32,
    convention: Convention,
) -> Result<Vec<f32>> {
    check_alpha(alpha)?;
    let (on, off) = convention.on_off(f64::from(alpha), k)?;
    let mut out = vec![off as f32; class_ids.len() * k];
    for (row, &c) in class_ids.iter().enumerate() {
        if c >= k {
            return Err(Error::ClassOutOfRange {
                row,
                class: i64::try_from(c).unwrap_or(i64::MAX),
                k,
            });
        }
        out[row * k + c] = on as f32;
    }
    Ok(out)
}

/// Smooths probability rows `[n, k]` toward the uniform distribution: (1 − α)·p + α/K.
///
/// This is what PyTorch does to probability targets with `label_smoothing=α`, and what Keras does
/// to one-hot targets. Every row must sum to 1 within 1e-4 and hold values in [0, 1].
///
/// ```
/// use labelsmooth::targets::smooth_probabilities;
/// let q = smooth_probabilities(&[0.5, 0.5, 0.0, 0.0], 4, 0.4).unwrap();
/// assert_eq!(q, vec![0.4, 0.4, 0.1, 0.1]);
/// ```
pub fn smooth_probabilities(probs: &[f32], k: usize, alpha: f32) -> Result<Vec<f32>> {
    check_alpha(alpha)?;
    let n = rows_of("probability rows (n * k values)", probs.len(), k)?;
    check_probability_rows(probs, n, k)?;
    let a = f64::from(alpha);
    let u = a / k as f64;
    Ok(probs
        .iter()
        .map(|&p| ((1.0 - a) * f64::from(p) + u) as f32)
        .collect())
}

/// Checks that every row of `probs` (`[n, k]`) holds values in [0, 1] summing to 1 within 1e-4.
pub fn check_probability_rows(probs: &[f32], n: usize, k: usize) -> Result<()> {
    for row in 0..n {
        let r = &probs[row * k..(row + 1) * k];
        let mut sum = 0.0f64;
        for (column, &p) in r.iter().enumerate() {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::InvalidProbability {
                    row,
                    column,
                    value: f64::from(p),
                });
            }
            sum += f64::from(p);
        }
        if (sum - 1.0).abs() > 1e-4 {
            return Err(Error::RowNotNormalized { row, sum });
        }
    }
    Ok(())
}

/// Smooths binary or multi-label 0/1 targets `[n, labels]` (row-major).
///
/// `TowardHalf` gives y(1 − α) + α/2 (Keras); `OverLabels` gives y(1 − α) + α/L. Labels must be
/// 0 or 1.
///
/// ```
/// use labelsmooth::targets::{smooth_binary, BinaryConvention};
/// let y = [1.0, 0.0, 1.0, 0.0];
/// assert_eq!(smooth_binary(&y, 4, 0.2, BinaryConvention::TowardHalf).unwrap(), vec![0.9, 0.1, 0.9, 0.1]);
/// assert_eq!(smooth_binary(&y, 4, 0.2, BinaryConvention::OverLabels).unwrap(), vec![0.85, 0.05, 0.85, 0.05]);
/// ```
pub fn smooth_binary(
    labels: &[f32],
    n_labels: usize,
    alpha: f32,
    convention: BinaryConvention,
) -> Result<Vec<f32>> {
    check_alpha(alpha)?;
    if n_labels == 0 {
        return Err(Error::NoClasses);
    }
    rows_of("label rows (n * labels values)", labels.len(), n_labels)?;
    let (on, off) = binary_on_off(f64::from(alpha), n_labels, convention);
    labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            if y == 1.0 {
                Ok(on as f32)
            } else if y == 0.0 {
                Ok(off as f32)
            } else {
                Err(Error::InvalidLabel {
                    row: i / n_labels,
                    column: i % n_labels,
                    value: f64::from(y),
                    expected: "0 or 1",
                })
            }
        })
        .collect()
}

/// Smoothed values `(for 1, for 0)` of a binary label.
pub(crate) fn binary_on_off(
    alpha: f64,
    n_labels: usize,
    convention: BinaryConvention,
) -> (f64, f64) {
    let prior = match convention {
        BinaryConvention::TowardHalf => 0.5,
        BinaryConvention::OverLabels => 1.0 / n_labels as f64,
    };
    (1.0 - alpha + alpha * prior, alpha * prior)
}

impl BinaryConvention {
    /// Smoothed values `(for 1, for 0)` of a binary label among `n_labels` labels.
    ///
    /// ```
    /// use labelsmooth::targets::BinaryConvention;
    /// assert_eq!(BinaryConvention::TowardHalf.on_off(0.2, 5), (0.9, 0.1));
    /// ```
    pub fn on_off(self, alpha: f64, n_labels: usize) -> (f64, f64) {
        binary_on_off(alpha, n_labels, self)
    }
}

/// Checks that a smoothing factor α lies in [0, 1] (NaN does not).
///
/// ```
/// assert!(labelsmooth::targets::check_smoothing(0.1).is_ok());
/// assert!(labelsmooth::targets::check_smoothing(1.5).is_err());
/// assert!(labelsmooth::targets::check_smoothing(f32::NAN).is_err());
/// ```
pub fn check_smoothing(alpha: f32) -> crate::Result<()> {
    crate::error::check_alpha(alpha)
}
