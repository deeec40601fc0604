//! The one error type of the library.
//!
//! Every message names the problem and where it is: the row, the class id, the value.

/// Everything that can go wrong in `labelsmooth`.
///
/// ```
/// use labelsmooth::targets::{smooth_class_ids, Convention};
/// let err = smooth_class_ids(&[0, 7], 3, 0.1, Convention::Uniform).unwrap_err();
/// assert_eq!(err.to_string(), "row 1: class id 7 is out of range for 3 classes");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The smoothing factor is NaN or outside [0, 1].
    #[error("smoothing factor {value} is outside [0, 1]")]
    InvalidSmoothing {
        /// The factor given.
        value: f64,
    },
    /// The number of classes is zero.
    #[error("the number of classes must be at least 1, got 0")]
    NoClasses,
    /// A convention needs more classes than were given.
    #[error("{convention} smoothing needs at least {min} classes, got {k}")]
    TooFewClasses {
        /// The convention that was asked for.
        convention: &'static str,
        /// How many classes it needs.
        min: usize,
        /// How many were given.
        k: usize,
    },
    /// A class id is negative (and not the ignore index) or not below the number of classes.
    #[error("row {row}: class id {class} is out of range for {k} classes")]
    ClassOutOfRange {
        /// Row of the target.
        row: usize,
        /// The class id found.
        class: i64,
        /// Number of classes.
        k: usize,
    },
    /// Two inputs that must agree in length do not.
    #[error("length mismatch: {what} has length {actual}, expected {expected}")]
    LengthMismatch {
        /// Which input (and what it was compared with).
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        actual: usize,
    },
    /// A class weight is negative, NaN or infinite.
    #[error("class weight {class} is {value}: weights must be finite and >= 0")]
    InvalidWeight {
        /// Class of the weight.
        class: usize,
        /// The weight found.
        value: f64,
    },
    /// A probability row does not sum to 1 (within 1e-4).
    #[error("row {row}: probabilities sum to {sum}, not 1 (tolerance 1e-4)")]
    RowNotNormalized {
        /// Row index.
        row: usize,
        /// Its sum.
        sum: f64,
    },
    /// A probability is NaN or outside [0, 1].
    #[error("row {row}, column {column}: probability {value} is outside [0, 1]")]
    InvalidProbability {
        /// Row index.
        row: usize,
        /// Column (class or label) index.
        column: usize,
        /// The value found.
        value: f64,
    },
    /// A logit is NaN or +infinity (or -infinity where a finite value is needed).
    #[error("row {row}, class {class}: logit is {value}{hint}")]
    InvalidLogit {
        /// First row holding such a logit.
        row: usize,
        /// Its class (column).
        class: usize,
        /// The value found.
        value: f32,
        /// Why the value is refused, when that is not obvious.
        hint: &'static str,
    },
    /// A label is not 0 or 1 where binary labels are needed, or a target is NaN.
    #[error("row {row}, column {column}: label {value} is not valid here ({expected})")]
    InvalidLabel {
        /// Row index.
        row: usize,
        /// Column index.
        column: usize,
        /// The value found.
        value: f64,
        /// What was expected.
        expected: &'static str,
    },
    /// The number of bins is zero.
    #[error("the number of bins must be at least 1, got 0")]
    NoBins,
    /// A mean (or another statistic) was asked of an empty input.
    #[error("{what} is empty: {why}")]
    Empty {
        /// What is empty.
        what: &'static str,
        /// Why that is a problem.
        why: &'static str,
    },
    /// A parameter outside its valid range (number of folds, fraction, bounds, ...).
    #[error("invalid {what}: {why}")]
    InvalidParameter {
        /// The parameter.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks a smoothing factor: finite and in [0, 1].
pub(crate) fn check_alpha(alpha: f32) -> Result<()> {
    if alpha.is_nan() || !(0.0..=1.0).contains(&alpha) {
        return Err(Error::InvalidSmoothing {
            value: f64::from(alpha),
        });
    }
    Ok(())
}

/// Checks that `actual == expected`, naming `what` otherwise.
pub(crate) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<()> {
    if expected != actual {
        return Err(Error::LengthMismatch {
            what,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Checks class weights: length `k`, each finite and >= 0.
pub(crate) fn check_weights(weights: &[f32], k: usize) -> Result<()> {
    check_len("class weights (one per class)", k, weights.len())?;
    for (class, &w) in weights.iter().enumerate() {
        if !w.is_finite() || w < 0.0 {
            return Err(Error::InvalidWeight {
                class,
                value: f64::from(w),
            });
        }
    }
    Ok(())
}

/// Checks `k >= 1` and that `data.len()` is a multiple of it, returning the row count.
pub(crate) fn rows_of(what: &'static str, len: usize, k: usize) -> Result<usize> {
    if k == 0 {
        return Err(Error::NoClasses);
    }
    if !len.is_multiple_of(k) {
        return Err(Error::LengthMismatch {
            what,
            expected: len.div_ceil(k) * k,
            actual: len,
        });
    }
    Ok(len / k)
}
