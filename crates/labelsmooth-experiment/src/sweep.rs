//! The cross-validated grid over smoothing factors, as independent trials (factor × fold) that
//! can run in shards, resume after a crash and merge, all through a [`TrialStore`].
//!
//! A trial is a pure function of the sweep and its [`TrialKey`]: the same data, settings and
//! seed give the same folds and the same training at a fixed thread count.

use std::collections::BTreeMap;

use labelsmooth::split::stratified_k_fold;
use labelsmooth_burn::train::Evaluation;
use labelsmooth_data::{Dataset, Fingerprint};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::observe::Observer;
use crate::store::TrialStore;
use crate::summary::{FactorRow, FoldMetrics, Summary, decimal};
use crate::trial::{TrialSpec, run_trial};

/// A sweep of the smoothing factor: every factor on every stratified fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// What the data is (the data spec, such as `digits` or `csv:PATH`); only recorded.
    pub data: String,
    /// Smoothing factors, in the order of the table.
    #[serde(rename = "smoothing")]
    pub factors: Vec<f32>,
    /// Stratified folds.
    pub folds: usize,
    /// Seed of the folds (training uses `base.train.seed`).
    pub seed: u64,
    /// The trial every factor starts from (its own smoothing factor is replaced).
    pub base: TrialSpec,
}

/// One trial of a sweep: the index of its factor and its fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TrialKey {
    /// Index into [`Sweep::factors`].
    pub factor: usize,
    /// Fold, from 0.
    pub fold: usize,
}

/// The held-out metrics of one finished trial, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Its smoothing factor.
    pub smoothing: f32,
    /// Its fold, from 0.
    pub fold: usize,
    /// Accuracy.
    pub accuracy: f64,
    /// Mean negative log-likelihood.
    pub nll: f64,
    /// Expected calibration error.
    pub ece: f64,
    /// Brier score.
    pub brier: f64,
    /// Mean top-label confidence (absent in trials recorded before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Seconds the trial took.
    pub seconds: f64,
    /// The data it ran on: trials of other data are never mixed into one result.
    pub data: Fingerprint,
    /// The class names of the data, in the order of `confusion`.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Held-out confusion matrix, rows the true classes (empty in trials recorded before it was).
    #[serde(default)]
    pub confusion: Vec<usize>,
}

/// What a complete sweep measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// The sweep.
    pub config: Sweep,
    /// The labelsmooth version that summarized it.
    pub version: String,
    /// Every trial, by factor then fold.
    pub trials: Vec<TrialRecord>,
    /// One row per factor.
    pub summary: Summary<FactorRow>,
    /// The best factor (see [`Summary::best`]).
    pub best: Option<FactorRow>,
}

impl SweepResult {
    /// The class names of the data, in the order of the confusion matrices.
    pub fn classes(&self) -> &[String] {
        self.trials.first().map_or(&[], |t| t.classes.as_slice())
    }

    /// The metrics of every fold, per factor.
    pub fn folds(&self) -> Vec<FoldMetrics> {
        self.config
            .factors
            .iter()
            .map(|&a| {
                let mut m = FoldMetrics::default();
                for t in self.trials.iter().filter(|t| t.smoothing == a) {
                    m.push(t.accuracy, t.nll, t.ece, &t.confusion);
                    m.push_confidence(t.confidence);
                }
                m
            })
            .collect()
    }
}

impl Sweep {
    /// Every trial, factor by factor and fold by fold within a factor.
    pub fn trials(&self) -> Vec<TrialKey> {
        (0..self.factors.len())
            .flat_map(|factor| (0..self.folds).map(move |fold| TrialKey { factor, fold }))
            .collect()
    }

    /// The trials of shard `i` of `n`: those whose position in [`trials`](Self::trials) is `i`
    /// modulo `n`. The `n` shards together hold every trial once.
    pub fn shard(&self, i: usize, n: usize) -> Result<Vec<TrialKey>> {
        if n == 0 || i >= n {
            return Err(Error::Invalid(format!("shard {i}/{n}: need 0 <= I < N")));
        }
        Ok(self
            .trials()
            .into_iter()
            .enumerate()
            .filter(|(p, _)| p % n == i)
            .map(|(_, k)| k)
            .collect())
    }

    /// The trial specification of `key`: the base with its smoothing factor.
    pub fn spec(&self, key: &TrialKey) -> TrialSpec {
        self.base.clone().with_smoothing(self.factors[key.factor])
    }

    /// How observers and messages name `key` (`smoothing 0.1: fold 2/3`).
    pub fn label(&self, key: &TrialKey) -> String {
        format!(
            "smoothing {}: fold {}/{}",
            self.factors[key.factor],
            key.fold + 1,
            self.folds
        )
    }

    /// Checks the grid: at least one factor, each in [0, 1] and given once, at least 2 folds.
    pub fn validate(&self) -> Result<()> {
        if self.factors.is_empty() {
            return Err(Error::Invalid(
                "a sweep needs at least one smoothing factor".into(),
            ));
        }
        for (i, a) in self.factors.iter().enumerate() {
            labelsmooth::targets::check_smoothing(*a)?;
            if self.factors[..i].contains(a) {
                return Err(Error::Invalid(format!(
                    "smoothing factor {a} is given twice"
                )));
            }
        }
        if self.folds < 2 {
            return Err(Error::Invalid(format!(
                "{} folds: cross-validation needs at least 2",
                self.folds
            )));
        }
        Ok(())
    }

    fn check_key(&self, key: &TrialKey) -> Result<()> {
        if key.factor >= self.factors.len() || key.fold >= self.folds {
            return Err(Error::Invalid(format!(
                "trial {key:?} is outside this sweep's {} factors × {} folds",
                self.factors.len(),
                self.folds
            )));
        }
        Ok(())
    }

    /// Runs the trials `keys` that `store` does not hold yet with `trial`, storing each as it
    /// finishes; returns how many ran. A trial found in the store is not run again (resume).
    pub fn run_with(
        &self,
        store: &mut dyn TrialStore,
        keys: &[TrialKey],
        observer: &mut dyn Observer,
        mut trial: impl FnMut(&TrialKey, &TrialSpec, &mut dyn Observer) -> Result<TrialRecord>,
    ) -> Result<usize> {
        self.validate()?;
        let mut stored = Vec::with_capacity(keys.len());
        for key in keys {
            self.check_key(key)?;
            stored.push(store.get(key)?.is_some());
        }
        let done = stored.iter().filter(|&&s| s).count();
        observer.run_started(done, keys.len() - done);
        let mut ran = 0;
        for (key, stored) in keys.iter().zip(stored) {
            let label = self.label(key);
            if stored {
                observer.trial_reused(&label);
                continue;
            }
            observer.trial_started(&label);
            let record = trial(key, &self.spec(key), observer)?;
            observer.trial_finished(
                &label,
                &Evaluation {
                    accuracy: record.accuracy,
                    nll: record.nll,
                    ece: record.ece,
                    brier: record.brier,
                    confidence: record.confidence.unwrap_or(f64::NAN),
                },
            );
            store.put(key, &record)?;
            ran += 1;
        }
        Ok(ran)
    }

    /// Trains and measures the trials `keys` (all of them when `None`) on `d` that `store` does
    /// not hold yet; returns how many ran.
    pub fn run(
        &self,
        d: &Dataset,
        store: &mut dyn TrialStore,
        keys: Option<&[TrialKey]>,
        observer: &mut dyn Observer,
    ) -> Result<usize> {
        self.validate()?;
        let data = d.fingerprint();
        for key in self.trials() {
            if let Some(r) = store.get(&key)?
                && r.data != data
            {
                return Err(Error::Store(format!(
                    "the stored trial `{}` ran on other data ({}) than `{}` gives now ({}): use another output folder, or remove this one to start over",
                    self.label(&key),
                    r.data,
                    self.data,
                    data
                )));
            }
        }
        let folds = stratified_k_fold(&d.labels, self.folds, self.seed)?;
        let all = self.trials();
        self.run_with(store, keys.unwrap_or(&all), observer, |key, spec, obs| {
            let f = &folds[key.fold];
            let r = run_trial(d, &f.train, &f.valid, spec, obs)?;
            Ok(TrialRecord {
                smoothing: self.factors[key.factor],
                fold: key.fold,
                accuracy: r.eval.accuracy,
                nll: r.eval.nll,
                ece: r.eval.ece,
                brier: r.eval.brier,
                confidence: Some(r.eval.confidence),
                seconds: r.seconds,
                data: data.clone(),
                classes: d.class_names.clone(),
                confusion: r.confusion,
            })
        })
    }

    /// The records of this sweep found in `stores` (a later store's record of a trial replaces
    /// an earlier one's).
    pub fn collect(&self, stores: &[&dyn TrialStore]) -> Result<BTreeMap<TrialKey, TrialRecord>> {
        let mut all = BTreeMap::new();
        for store in stores {
            for key in self.trials() {
                if let Some(r) = store.get(&key)? {
                    all.insert(key, r);
                }
            }
        }
        Ok(all)
    }

    /// The trials missing from `records`.
    pub fn missing(&self, records: &BTreeMap<TrialKey, TrialRecord>) -> Vec<TrialKey> {
        self.trials()
            .into_iter()
            .filter(|k| !records.contains_key(k))
            .collect()
    }

    /// The summary of a complete set of records; an error names the missing trials.
    pub fn result(&self, records: &BTreeMap<TrialKey, TrialRecord>) -> Result<SweepResult> {
        self.validate()?;
        let missing = self.missing(records);
        if !missing.is_empty() {
            let names: Vec<String> = missing
                .iter()
                .map(|k| format!("α {} fold {}", self.factors[k.factor], k.fold))
                .collect();
            return Err(Error::Store(format!(
                "{} of {} trials found; missing: {}",
                records.len(),
                self.trials().len(),
                names.join(", ")
            )));
        }
        let mut fingerprints = records.values().map(|r| &r.data);
        if let Some(first) = fingerprints.next()
            && let Some(other) = fingerprints.find(|f| *f != first)
        {
            return Err(Error::Store(format!(
                "the trials ran on different data ({first} and {other}): they cannot be combined"
            )));
        }
        let rows = self
            .factors
            .iter()
            .enumerate()
            .map(|(factor, &alpha)| {
                let mut m = FoldMetrics::default();
                for fold in 0..self.folds {
                    let r = &records[&TrialKey { factor, fold }];
                    m.push(r.accuracy, r.nll, r.ece, &r.confusion);
                    m.push_confidence(r.confidence);
                }
                FactorRow {
                    smoothing: decimal(alpha),
                    stats: m.stats(),
                    confusion: m.confusion,
                }
            })
            .collect();
        let summary = Summary(rows);
        Ok(SweepResult {
            config: self.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            trials: self.trials().iter().map(|k| records[k].clone()).collect(),
            best: summary.best().cloned(),
            summary,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FolderStore, MemoryStore};
    use crate::trial::ModelKind;

    fn sweep() -> Sweep {
        Sweep {
            data: "synthetic".into(),
            factors: vec![0.0, 0.1, 0.2],
            folds: 2,
            seed: 0,
            base: TrialSpec::new(ModelKind::Mlp, 0),
        }
    }

    /// A stand-in for training: a record computed from the key alone.
    fn fake(key: &TrialKey, spec: &TrialSpec) -> TrialRecord {
        TrialRecord {
            smoothing: spec.train.smoothing,
            fold: key.fold,
            accuracy: 0.9 + spec.train.smoothing as f64 * 0.1 - key.fold as f64 * 0.01,
            nll: 0.3 + key.fold as f64 * 0.01,
            ece: 0.02,
            brier: 0.1,
            confidence: Some(0.95),
            seconds: 1.0,
            data: Fingerprint {
                rows: 10,
                sha256: "ab".repeat(32),
            },
            classes: vec!["a".into(), "b".into()],
            confusion: vec![4, 1, 0, 5],
        }
    }

    #[test]
    fn shards_partition_the_trials() {
        let s = sweep();
        assert_eq!(s.trials().len(), 6);
        for n in 1..=7 {
            let mut all: Vec<TrialKey> = (0..n).flat_map(|i| s.shard(i, n).unwrap()).collect();
            all.sort();
            assert_eq!(all, s.trials(), "{n} shards");
        }
        assert_eq!(
            s.shard(1, 4).unwrap(),
            [
                TrialKey { factor: 0, fold: 1 },
                TrialKey { factor: 2, fold: 1 }
            ]
        );
        assert!(s.shard(3, 3).is_err());
        assert!(s.shard(0, 0).is_err());
    }

    #[test]
    fn a_bad_grid_or_a_key_outside_it_is_an_error() {
        let mut twice = sweep();
        twice.factors = vec![0.1, 0.2, 0.1];
        let mut store = MemoryStore::default();
        let e = twice
            .run_with(&mut store, &twice.trials(), &mut (), |k, spec, _| {
                Ok(fake(k, spec))
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("0.1 is given twice"), "{e}");
        let mut one_fold = sweep();
        one_fold.folds = 1;
        assert!(one_fold.validate().is_err());
        let s = sweep();
        let outside = [TrialKey { factor: 3, fold: 0 }];
        let e = s
            .run_with(&mut store, &outside, &mut (), |k, spec, _| {
                Ok(fake(k, spec))
            })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("outside this sweep's 3 factors × 2 folds"),
            "{e}"
        );
    }

    #[test]
    fn resume_runs_only_what_is_missing() {
        let s = sweep();
        let mut store = MemoryStore::default();
        let mut calls = Vec::new();
        let run = |keys: &[TrialKey], store: &mut MemoryStore, calls: &mut Vec<TrialKey>| {
            s.run_with(store, keys, &mut (), |k, spec, _| {
                calls.push(*k);
                Ok(fake(k, spec))
            })
            .unwrap()
        };
        assert_eq!(run(&s.shard(0, 2).unwrap(), &mut store, &mut calls), 3);
        assert_eq!(run(&s.trials(), &mut store, &mut calls), 3);
        assert_eq!(run(&s.trials(), &mut store, &mut calls), 0);
        let mut sorted = calls.clone();
        sorted.sort();
        assert_eq!(sorted, s.trials(), "each trial ran exactly once");
    }

    /// Records what a run tells its observer.
    #[derive(Default)]
    struct Recorder {
        started: Vec<(usize, usize)>,
        reused: Vec<String>,
        finished: Vec<String>,
    }

    impl labelsmooth_burn::train::TrainObserver for Recorder {}

    impl Observer for Recorder {
        fn run_started(&mut self, done: usize, to_run: usize) {
            self.started.push((done, to_run));
        }
        fn trial_reused(&mut self, label: &str) {
            self.reused.push(label.to_string());
        }
        fn trial_finished(&mut self, label: &str, _: &Evaluation) {
            self.finished.push(label.to_string());
        }
    }

    #[test]
    fn the_observer_hears_what_is_done_and_what_runs() {
        let s = sweep();
        let mut store = MemoryStore::default();
        let mut rec = Recorder::default();
        s.run_with(
            &mut store,
            &s.shard(1, 3).unwrap(),
            &mut rec,
            |k, spec, _| Ok(fake(k, spec)),
        )
        .unwrap();
        s.run_with(&mut store, &s.trials(), &mut rec, |k, spec, _| {
            Ok(fake(k, spec))
        })
        .unwrap();
        assert_eq!(rec.started, [(0, 2), (2, 4)]);
        assert_eq!(
            rec.reused,
            ["smoothing 0: fold 2/2", "smoothing 0.2: fold 1/2"]
        );
        assert_eq!(rec.finished.len(), 6);
        assert_eq!(rec.finished[0], "smoothing 0: fold 2/2");
    }

    #[test]
    fn an_error_keeps_the_finished_trials() {
        let s = sweep();
        let mut store = MemoryStore::default();
        let e = s.run_with(&mut store, &s.trials(), &mut (), |k, spec, _| {
            if k.factor == 1 {
                return Err(Error::Invalid("boom".into()));
            }
            Ok(fake(k, spec))
        });
        assert!(e.is_err());
        assert_eq!(s.collect(&[&store]).unwrap().len(), 2);
    }

    #[test]
    fn merged_shards_summarize_like_the_whole_sweep() {
        let s = sweep();
        let mut whole = MemoryStore::default();
        s.run_with(&mut whole, &s.trials(), &mut (), |k, spec, _| {
            Ok(fake(k, spec))
        })
        .unwrap();
        let mut shards: Vec<MemoryStore> = (0..3).map(|_| MemoryStore::default()).collect();
        for (i, store) in shards.iter_mut().enumerate() {
            s.run_with(store, &s.shard(i, 3).unwrap(), &mut (), |k, spec, _| {
                Ok(fake(k, spec))
            })
            .unwrap();
        }
        // A shard of other data does not combine.
        let mut other = shards[2].clone();
        for k in s.shard(2, 3).unwrap() {
            let mut r = other.get(&k).unwrap().unwrap();
            r.data.rows = 9;
            other.put(&k, &r).unwrap();
        }
        let e = s
            .result(&s.collect(&[&shards[0], &shards[1], &other]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("ran on different data (10 rows"), "{e}");
        let partial = s.collect(&[&shards[0], &shards[1]]).unwrap();
        let e = s.result(&partial).unwrap_err().to_string();
        assert!(
            e == "4 of 6 trials found; missing: α 0.1 fold 0, α 0.2 fold 1",
            "{e}"
        );
        let merged = s.collect(&[&shards[0], &shards[1], &shards[2]]).unwrap();
        let a = s.result(&merged).unwrap();
        let b = s.result(&s.collect(&[&whole]).unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.best.as_ref().unwrap().smoothing, 0.2);
        assert_eq!(a.summary.rows()[1].smoothing, 0.1);
        assert!((a.summary.rows()[1].stats.accuracy_mean - 0.905).abs() < 1e-8);
        assert_eq!(a.folds()[2].accuracy.len(), 2);
    }

    #[test]
    fn a_folder_store_resumes_without_rewriting_and_refuses_another_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let s = sweep();
        let mut store = FolderStore::create(dir.path(), &s).unwrap();
        s.run_with(&mut store, &s.trials(), &mut (), |k, spec, _| {
            Ok(fake(k, spec))
        })
        .unwrap();
        let files = |d: &std::path::Path| -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
            let mut v: Vec<_> = std::fs::read_dir(d.join("trials"))
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                        e.metadata().unwrap().modified().unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let before = files(dir.path());
        assert_eq!(before.len(), 6);
        assert!(before.iter().any(|(n, _, _)| n == "a0.1_f1.json"));
        let (mut reopened, again) = FolderStore::open(dir.path()).unwrap();
        assert_eq!(again, s);
        let ran = s
            .run_with(&mut reopened, &s.trials(), &mut (), |_, _, _| {
                panic!("a finished trial ran again")
            })
            .unwrap();
        assert_eq!(ran, 0);
        assert_eq!(files(dir.path()), before);
        let mut other = s.clone();
        other.base.train.epochs += 1;
        let e = FolderStore::create(dir.path(), &other)
            .unwrap_err()
            .to_string();
        assert!(e.contains("holds a different sweep"), "{e}");
    }
}
