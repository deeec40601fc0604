//! What experiments tell while they run: the command draws a progress bar and prints a line per
//! trial; a library user may log, or listen to nothing with `()`.

use labelsmooth_burn::train::{Evaluation, TrainObserver};

/// Listens to trials (and, through [`TrainObserver`], to the training inside each). Every method
/// has an empty default.
pub trait Observer: TrainObserver {
    /// A trial is about to train; `label` names it (`smoothing 0.1: fold 2/3`).
    fn trial_started(&mut self, label: &str) {
        let _ = label;
    }
    /// A trial finished with these held-out metrics.
    fn trial_finished(&mut self, label: &str, eval: &Evaluation) {
        let _ = (label, eval);
    }
    /// A run of trials starts: `done` of them are in the store already, `to_run` will run.
    fn run_started(&mut self, done: usize, to_run: usize) {
        let _ = (done, to_run);
    }
    /// A trial's result was found in the store and not run again.
    fn trial_reused(&mut self, label: &str) {
        let _ = label;
    }
}

impl Observer for () {}
