//! Label smoothing on Burn: loss modules with autodiff on the core library's semantics, the
//! deck's model families, regularizers and a trainer.
//!
//! Runs on Burn's pure-Rust CPU backend (flex): `Device::flex()`, and, built with the `wgpu`
//! feature, on a GPU through wgpu ([`device`]).

#![warn(missing_docs)]

pub mod device;
pub mod fused;
pub mod import;
pub mod loss;
pub mod mobilenet;
pub mod models;
pub mod optim;
pub mod train;

pub use burn;
