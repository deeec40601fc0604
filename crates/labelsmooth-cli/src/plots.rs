//! The figures: `labelsmooth_report::plots`, and those that read the experiments' summary rows.

use std::path::Path;

use anyhow::Result;
use labelsmooth_experiment::summary::Row;

pub use labelsmooth_report::plots::*;

/// `(name, mean, std)` of each row's accuracy, for [`error_bars`].
pub fn points<R: Row>(rows: &[R]) -> Vec<(String, f64, f64)> {
    rows.iter()
        .map(|r| (r.key(), r.stats().accuracy_mean, r.stats().accuracy_std))
        .collect()
}

/// NLL and ECE (mean ± std over folds) of each row, side by side.
pub fn calibration_vs_setting<R: Row>(
    dir: &Path,
    name: &str,
    title: &str,
    x_desc: &str,
    rows: &[R],
) -> Result<()> {
    let nll: Vec<(String, f64, f64)> = rows
        .iter()
        .map(|r| (r.key(), r.stats().nll_mean, r.stats().nll_std))
        .collect();
    let ece: Vec<(String, f64, f64)> = rows
        .iter()
        .map(|r| (r.key(), r.stats().ece_mean, r.stats().ece_std))
        .collect();
    labelsmooth_report::plots::calibration_vs_setting(dir, name, (title, x_desc), &nll, &ece)
}
