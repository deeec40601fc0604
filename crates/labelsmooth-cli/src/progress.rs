//! What the command shows while it trains: a progress bar on a terminal and a line per trial.

use std::io::IsTerminal;

use labelsmooth_burn::train::{EpochMetrics, Evaluation, TrainObserver};
use labelsmooth_experiment::Observer;

/// Progress on standard error.
pub(crate) struct Console {
    /// Print a line per finished trial.
    trials: bool,
    /// Draw a progress bar during training (only ever on a terminal).
    bar: bool,
    current: Option<indicatif::ProgressBar>,
}

impl Console {
    /// A bar and a line per trial, unless `quiet` (JSON output).
    pub(crate) fn new(quiet: bool) -> Console {
        Console {
            trials: !quiet,
            bar: !quiet && std::io::stderr().is_terminal(),
            current: None,
        }
    }

    /// A bar only, no line per trial.
    pub(crate) fn bar_only(quiet: bool) -> Console {
        Console {
            trials: false,
            ..Console::new(quiet)
        }
    }
}

impl TrainObserver for Console {
    fn started(&mut self, steps: u64) {
        if self.bar {
            let bar = indicatif::ProgressBar::new(steps);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            self.current = Some(bar);
        }
    }
    fn step(&mut self) {
        if let Some(b) = &self.current {
            b.inc(1);
        }
    }
    fn epoch(&mut self, m: &EpochMetrics) {
        if let (Some(b), Some(v)) = (&self.current, &m.valid) {
            b.set_message(format!(
                "epoch {}: valid acc {:.3} nll {:.3}",
                m.epoch, v.accuracy, v.nll
            ));
        }
    }
    fn finished(&mut self) {
        if let Some(b) = self.current.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for Console {
    fn run_started(&mut self, done: usize, to_run: usize) {
        if self.trials && done > 0 {
            eprintln!(
                "{done} of {} trials done already, running {to_run}",
                done + to_run
            );
        }
    }

    fn trial_finished(&mut self, label: &str, eval: &Evaluation) {
        if self.trials {
            eprintln!("{label}: accuracy {:.4}", eval.accuracy);
        }
    }
}
