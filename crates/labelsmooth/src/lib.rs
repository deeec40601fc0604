//! Label smoothing as a first-class, measured regularizer.
//!
//! - [`targets`]: smoothed target distributions in every convention (PyTorch/Keras uniform,
//!   fairseq exclude-true, binary toward 0.5, multi-label).
//! - [`loss`]: cross-entropy (class ids or probabilities), binary cross-entropy and the confidence
//!   penalty, with exact gradients, class weights, ignore index and PyTorch's reductions; fused,
//!   vectorized and multi-threaded kernels.
//! - [`calibration`]: reliability curves and bins, ECE / MCE / RMS calibration error, Brier score,
//!   NLL, accuracy, temperature scaling.
//! - [`split`]: stratified k-fold and train/validation splits, seeded.
//!
//! No deep-learning framework is needed: everything works on `&[f32]` slices, row-major. The
//! numeric kernels (row passes, matrix products) live in the `labelsmooth-kernels` crate.
//!
//! ```
//! use labelsmooth::loss::CrossEntropy;
//! use labelsmooth::targets::Convention;
//!
//! let logits = vec![2.0, 1.0, 0.1, 0.5, 2.5, 0.3]; // 2 rows, 3 classes
//! let targets = [0i64, 1];
//! let mut grad = vec![0.0; logits.len()];
//! let ce = CrossEntropy::new(3).with_smoothing(0.1).with_convention(Convention::Uniform);
//! let loss = ce.forward_backward(&logits, &targets, &mut grad)?;
//! println!("loss {}", loss.scalar().unwrap());
//! # Ok::<(), labelsmooth::Error>(())
//! ```

#![warn(missing_docs)]

pub mod calibration;
pub mod error;
pub mod loss;
pub mod split;
pub mod targets;

pub use error::{Error, Result};
pub use labelsmooth_kernels::simd_level;
