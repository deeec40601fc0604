//! Cross-validation of one trial specification over given folds.

use labelsmooth::split::Split;
use labelsmooth_data::Dataset;

use crate::error::Result;
use crate::observe::Observer;
use crate::summary::FoldMetrics;
use crate::trial::{TrialSpec, run_trial};

/// Trains and measures `spec` on every fold of `d`, in order; `setting` names the trials for
/// `observer` (`setting: fold i/n`).
pub fn cross_validate(
    d: &Dataset,
    folds: &[Split],
    spec: &TrialSpec,
    setting: &str,
    observer: &mut dyn Observer,
) -> Result<FoldMetrics> {
    let mut m = FoldMetrics::default();
    for (i, f) in folds.iter().enumerate() {
        let label = format!("{setting}: fold {}/{}", i + 1, folds.len());
        observer.trial_started(&label);
        let r = run_trial(d, &f.train, &f.valid, spec, observer)?;
        observer.trial_finished(&label, &r.eval);
        m.push(r.eval.accuracy, r.eval.nll, r.eval.ece, &r.confusion);
        m.push_confidence(Some(r.eval.confidence));
    }
    Ok(m)
}
