//! The experiments of labelsmooth as a library: does label smoothing help a model, with which
//! factor, and what does it do to calibration?
//!
//! - [`trial`]: one trial, train on some rows and measure on others ([`TrialSpec`],
//!   [`run_trial`]);
//! - [`cv`]: cross-validation of one specification;
//! - [`sweep`]: the grid factor × fold as independent trials ([`Sweep`] with
//!   [`trials`](Sweep::trials) and [`shard`](Sweep::shard)), resumable and mergeable through a
//!   [`TrialStore`] ([`FolderStore`], [`MemoryStore`]);
//! - [`regularizer`]: typed regularizer combinations and their [`Comparison`];
//! - [`study`]: the [`CalibrationStudy`], with and without smoothing, before and after
//!   temperature scaling;
//! - [`distill`]: the [`DistillationStudy`], students of teachers trained with and without
//!   smoothing (Müller et al. 2019, section 5);
//! - [`summary`]: cross-validated summaries and the one rule for the best setting,
//!   [`Summary::best`]: highest mean accuracy, ties broken by the lower mean NLL, then by order.
//!
//! Nothing here prints: progress goes to an [`Observer`] (`()` listens to nothing).
//!
//! A small sweep from Rust, on the bundled digits:
//!
//! ```
//! use labelsmooth_experiment::{ModelKind, MemoryStore, Sweep, TrialSpec};
//!
//! let digits = labelsmooth_data::bundled::load("digits")?;
//! let base = TrialSpec::new(ModelKind::Mlp, 0).with_epochs(2);
//! let sweep = Sweep { data: "digits".into(), factors: vec![0.0, 0.1], folds: 2, seed: 0, base };
//! let mut store = MemoryStore::default();
//! let ran = sweep.run(&digits, &mut store, None, &mut ())?;
//! assert_eq!(ran, 4);
//! let result = sweep.result(&sweep.collect(&[&store])?)?;
//! assert_eq!(result.summary.rows().len(), 2);
//! let best = result.best.expect("two factors");
//! assert!(best.stats.accuracy_mean > 0.5);
//! // Run again: every trial is in the store, nothing trains.
//! assert_eq!(sweep.run(&digits, &mut store, None, &mut ())?, 0);
//! # Ok::<(), labelsmooth_experiment::Error>(())
//! ```

#![warn(missing_docs)]

pub mod cv;
pub mod distill;
mod error;
pub mod io;
pub mod model;
pub mod observe;
pub mod regularizer;
pub mod store;
pub mod study;
pub mod summary;
pub mod sweep;
pub mod trial;

pub use distill::{DistillResult, DistillationStudy};
pub use error::{Error, Result};
pub use model::{InputSchema, ModelCard, SavedModel};
pub use observe::Observer;
pub use regularizer::{Comparison, Regularizer, RegularizerSettings, Regularizers};
pub use store::{FolderStore, MemoryStore, TrialStore};
pub use study::CalibrationStudy;
pub use summary::Summary;
pub use sweep::{Sweep, SweepResult, TrialKey, TrialRecord};
pub use trial::{ClassWeight, ModelKind, TrialSpec, run_trial};
