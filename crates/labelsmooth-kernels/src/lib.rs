//! The numeric kernels of labelsmooth, on plain `f32` slices (row-major unless said otherwise),
//! with no deep-learning framework: the loss crate `labelsmooth` and the Burn crate
//! `labelsmooth-burn` call them.
//!
//! | module | kernels |
//! |---|---|
//! | [`isa`](mod@isa) | [`Isa`], the instruction sets; [`isa()`], the one this process uses; [`simd_level`] |
//! | [`dispatch`] | [`simd_dispatch!`], which compiles a kernel once per [`Isa`] |
//! | [`math`] | `exp` on non-positive arguments, sigmoid, tanh, all vectorizable |
//! | [`softmax_row`] | one pass over a row of logits (max, Σexp, Σ(x − max)), the gradient finished in place |
//! | [`matmul`] | strided multi-threaded product, register-blocked small product, aᵀ·b over rows |
//! | [`array`](mod@array) | transposes, float64 column sums |
//! | [`linear`] | dense layer `x·W + b` (+ ReLU), forward and backward |
//! | [`conv`] | convolution + ReLU + 2 × 2 max-pooling, forward and backward |
//! | [`lstm`] | LSTM over a sequence, forward and backward through time |
//! | [`adam`] | Adam's update, one pass per parameter |
//! | [`activation`] | ReLU6 forward and backward |
//! | [`mobile`] | MobileNet's pointwise and depthwise 3 × 3 convolutions, forward and backward |
//!
//! Kernels whose loops vectorize are compiled three times by [`simd_dispatch!`]: with AVX-512
//! (F, BW, VL), with AVX2 + FMA, and for the baseline target. The widest set this CPU has is
//! chosen once per process; setting the environment variable `LABELSMOOTH_NO_SIMD` to `1`,
//! `true`, `yes` or `on` forces the baseline (other values, `0` included, change nothing). Each
//! dispatched kernel `name` also comes as `name_on(isa, …)`, which runs a chosen copy (`None`
//! when this CPU lacks it); the crate's tests run every copy on the same inputs and compare.
//!
//! The copies for AVX-512 and AVX2 give the same bits, and so does the baseline except where a
//! kernel calls `mul_add` (the small matrix product and the layers built on it): Rust never
//! contracts `a * b + c` into a fused multiply-add, so the arithmetic is otherwise the same.
//!
//! ```
//! use labelsmooth_kernels::softmax_row::row_stats;
//!
//! let logits = [2.0f32, 1.0, 0.1];
//! let mut probs = [0.0f32; 3];
//! let stats = row_stats(&logits, None, Some(&mut probs));
//! let p0 = probs[0] as f64 / stats.sum_exp;
//! assert!((p0 - 0.659).abs() < 1e-3);
//! ```

#![warn(missing_docs)]

pub mod activation;
pub mod adam;
pub mod array;
pub mod conv;
pub mod dispatch;
pub mod isa;
pub mod linear;
pub mod lstm;
pub mod math;
pub mod matmul;
pub mod mobile;
pub mod softmax_row;

#[cfg(test)]
mod isa_agreement;

pub use isa::{Isa, isa, simd_level};
