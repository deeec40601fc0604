//! Knowledge distillation from teachers trained with label smoothing (Müller, Kornblith and
//! Hinton 2019, section 5): a teacher trained with smoothing is a worse teacher, because
//! smoothing erases the information in the relative probabilities of the wrong classes.
//!
//! For each fold and each teacher smoothing factor α, a teacher is trained with α, then for each
//! temperature τ a student learns from the labels and the teacher's softened outputs on the
//! training rows ([`labelsmooth::loss::Distillation`]); the baseline student learns from labels
//! smoothed by the same α alone. Everyone is measured on the held-out fold.

use labelsmooth::calibration::{confusion_matrix, softmax};
use labelsmooth::split::stratified_k_fold;
use labelsmooth_burn::train::{
    Evaluation, Teacher, evaluation_of, predict_logits, train_distilled, train_observed,
};
use labelsmooth_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::observe::Observer;
use crate::summary::{self, CvStats, FoldMetrics, Row, decimal};
use crate::trial::{TrialSpec, prepare};

/// Settings of a distillation study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillationStudy {
    /// The teacher's model and training (its smoothing is set per factor).
    pub teacher: TrialSpec,
    /// The student's model and training (its smoothing is 0 when distilled, α for the baseline).
    pub student: TrialSpec,
    /// The teachers' smoothing factors.
    pub factors: Vec<f32>,
    /// Distillation temperatures τ.
    pub temperatures: Vec<f32>,
    /// Weight λ of the teacher's term in the student's loss.
    pub weight: f32,
    /// Stratified folds.
    pub folds: usize,
    /// Seed of the folds.
    pub seed: u64,
}

/// Students distilled at one temperature from the teachers of one factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentRow {
    /// Temperature τ, as written.
    pub temperature: f64,
    /// The students' held-out metrics.
    #[serde(flatten)]
    pub stats: CvStats,
}

/// One teacher smoothing factor: the teachers, the baseline students and the distilled ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillRow {
    /// The teachers' smoothing factor α, as written.
    pub smoothing: f64,
    /// The teachers' held-out metrics.
    pub teacher: CvStats,
    /// Students trained on labels smoothed by α, without a teacher.
    pub baseline: CvStats,
    /// Distilled students, one row per temperature.
    pub students: Vec<StudentRow>,
}

impl DistillRow {
    /// The distilled students of the best temperature (highest mean accuracy, then lower NLL,
    /// then the earlier temperature).
    pub fn best_student(&self) -> Option<&StudentRow> {
        summary::best(&self.students)
    }
}

impl Row for StudentRow {
    fn key(&self) -> String {
        self.temperature.to_string()
    }
    fn stats(&self) -> &CvStats {
        &self.stats
    }
    fn confusion(&self) -> &[usize] {
        &[]
    }
}

/// What a [`DistillationStudy`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillResult {
    /// One row per teacher smoothing factor, in the order given.
    pub rows: Vec<DistillRow>,
}

impl DistillResult {
    /// Whether the finding of Müller et al. reproduced: the best student distilled from the
    /// unsmoothed teacher (α = 0) is more accurate than the best student of every smoothed
    /// teacher. `None` without an α = 0 row or a smoothed one.
    pub fn reproduced(&self) -> Option<bool> {
        let zero = self.rows.iter().find(|r| r.smoothing == 0.0)?;
        let z = zero.best_student()?;
        let smoothed: Vec<&DistillRow> = self.rows.iter().filter(|r| r.smoothing > 0.0).collect();
        if smoothed.is_empty() {
            return None;
        }
        Some(smoothed.iter().all(|r| {
            r.best_student()
                .is_some_and(|s| z.stats.accuracy_mean > s.stats.accuracy_mean)
        }))
    }
}

/// Held-out metrics of one trained model, kept per fold.
struct Measured {
    eval: Evaluation,
    confusion: Vec<usize>,
}

impl DistillationStudy {
    /// Number of trainings the study runs: per fold and factor, one teacher, one baseline and
    /// one student per temperature.
    pub fn trainings(&self) -> usize {
        self.folds * self.factors.len() * (2 + self.temperatures.len())
    }

    fn check(&self) -> Result<()> {
        if self.factors.is_empty() || self.temperatures.is_empty() {
            return Err(Error::Invalid(
                "distillation needs at least one smoothing factor and one temperature".into(),
            ));
        }
        if let Some(t) = self
            .temperatures
            .iter()
            .find(|t| !(t.is_finite() && **t > 0.0))
        {
            return Err(Error::Invalid(format!(
                "temperature {t} must be finite and > 0"
            )));
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(Error::Invalid(format!(
                "the teacher's weight {} must lie in [0, 1]",
                self.weight
            )));
        }
        if let Some(a) = self.factors.iter().find(|a| !(0.0..=1.0).contains(*a)) {
            return Err(Error::Invalid(format!(
                "smoothing factor {a} must lie in [0, 1]"
            )));
        }
        for (who, spec) in [("teacher", &self.teacher), ("student", &self.student)] {
            let unsupported = [
                (spec.class_weight.is_some(), "class weights"),
                (spec.init.is_some(), "starting weights (--init)"),
                (spec.train.frozen_epochs.is_some(), "a frozen backbone"),
                (spec.train.early_stopping.is_some(), "early stopping"),
                (spec.train.augment, "augmentation"),
            ];
            if let Some((_, what)) = unsupported.iter().find(|(set, _)| *set) {
                return Err(Error::Invalid(format!(
                    "the distillation study does not take {what} (set for the {who}): every model trains from scratch on the fold's rows as they are"
                )));
            }
        }
        Ok(())
    }

    /// Runs the study on `d`.
    pub fn run(&self, d: &Dataset, observer: &mut dyn Observer) -> Result<DistillResult> {
        self.check()?;
        let folds = stratified_k_fold(&d.labels, self.folds, self.seed)?;
        let k = d.n_classes();
        let n_t = self.temperatures.len();
        let mut teachers = vec![FoldMetrics::default(); self.factors.len()];
        let mut baselines = vec![FoldMetrics::default(); self.factors.len()];
        let mut students = vec![vec![FoldMetrics::default(); n_t]; self.factors.len()];
        let push = |m: &mut FoldMetrics, x: &Measured| {
            m.push(x.eval.accuracy, x.eval.nll, x.eval.ece, &x.confusion);
            m.push_confidence(Some(x.eval.confidence));
        };
        for (f, fold) in folds.iter().enumerate() {
            let fold_name = format!("fold {}/{}", f + 1, folds.len());
            let y_train: Vec<usize> = fold.train.iter().map(|&r| d.labels[r]).collect();
            let y_valid: Vec<usize> = fold.valid.iter().map(|&r| d.labels[r]).collect();
            let measure = |model: &labelsmooth_burn::train::Classifier,
                           x: &labelsmooth_burn::train::Inputs,
                           bins: usize|
             -> Result<Measured> {
                let probs = softmax(&predict_logits(model, x), k)?;
                Ok(Measured {
                    eval: evaluation_of(&probs, &y_valid, k, bins)?,
                    confusion: confusion_matrix(&probs, &y_valid, k)?,
                })
            };
            for (i, &alpha) in self.factors.iter().enumerate() {
                // The teacher, trained with α.
                let spec = self.teacher.clone().with_smoothing(alpha);
                let p = prepare(d, &fold.train, &[&fold.valid], &spec)?;
                let label = format!("teacher α {alpha}: {fold_name}");
                observer.trial_started(&label);
                let teacher = train_observed(
                    &p.model,
                    (&p.train, &y_train),
                    None,
                    k,
                    &spec.train,
                    &spec.open_device()?,
                    observer,
                )?;
                let m = measure(&teacher.model, &p.others[0], spec.train.ece_bins)?;
                observer.trial_finished(&label, &m.eval);
                push(&mut teachers[i], &m);
                let teacher_logits = predict_logits(&teacher.model, &p.train);
                // The student's inputs and model; the baseline learns from smoothed labels.
                let base = self.student.clone().with_smoothing(alpha);
                let s = prepare(d, &fold.train, &[&fold.valid], &base)?;
                let label = format!("student on labels smoothed by {alpha}: {fold_name}");
                observer.trial_started(&label);
                let alone = train_observed(
                    &s.model,
                    (&s.train, &y_train),
                    None,
                    k,
                    &base.train,
                    &base.open_device()?,
                    observer,
                )?;
                let m = measure(&alone.model, &s.others[0], base.train.ece_bins)?;
                observer.trial_finished(&label, &m.eval);
                push(&mut baselines[i], &m);
                let plain = self.student.clone().with_smoothing(0.0);
                for (j, &tau) in self.temperatures.iter().enumerate() {
                    let label = format!("student of teacher α {alpha}, τ {tau}: {fold_name}");
                    observer.trial_started(&label);
                    let student = train_distilled(
                        &s.model,
                        (&s.train, &y_train),
                        Teacher {
                            logits: &teacher_logits,
                            temperature: tau,
                            weight: self.weight,
                        },
                        None,
                        k,
                        &plain.train,
                        &plain.open_device()?,
                        observer,
                    )?;
                    let m = measure(&student.model, &s.others[0], plain.train.ece_bins)?;
                    observer.trial_finished(&label, &m.eval);
                    push(&mut students[i][j], &m);
                }
            }
        }
        let rows = self
            .factors
            .iter()
            .enumerate()
            .map(|(i, &a)| DistillRow {
                smoothing: decimal(a),
                teacher: teachers[i].stats(),
                baseline: baselines[i].stats(),
                students: self
                    .temperatures
                    .iter()
                    .zip(&students[i])
                    .map(|(&t, m)| StudentRow {
                        temperature: decimal(t),
                        stats: m.stats(),
                    })
                    .collect(),
            })
            .collect();
        Ok(DistillResult { rows })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::ModelKind;

    fn stats(accuracy: f64, nll: f64) -> CvStats {
        CvStats {
            accuracy_mean: accuracy,
            accuracy_std: 0.0,
            nll_mean: nll,
            nll_std: 0.0,
            ece_mean: 0.0,
            ece_std: 0.0,
            confidence_mean: None,
            folds: 2,
        }
    }

    fn row(alpha: f64, students: &[(f64, f64, f64)]) -> DistillRow {
        DistillRow {
            smoothing: alpha,
            teacher: stats(0.9, 0.3),
            baseline: stats(0.8, 0.5),
            students: students
                .iter()
                .map(|&(t, a, n)| StudentRow {
                    temperature: t,
                    stats: stats(a, n),
                })
                .collect(),
        }
    }

    #[test]
    fn best_student_and_the_reading_of_the_finding() {
        // Ties on accuracy go to the lower NLL, then to the earlier temperature.
        let r = row(0.0, &[(1.0, 0.8, 0.4), (2.0, 0.85, 0.5), (4.0, 0.85, 0.45)]);
        assert_eq!(r.best_student().unwrap().temperature, 4.0);
        let r = row(0.0, &[(1.0, 0.8, 0.4), (2.0, 0.8, 0.4)]);
        assert_eq!(r.best_student().unwrap().temperature, 1.0);
        let result = |a: f64, b: f64| DistillResult {
            rows: vec![row(0.0, &[(2.0, a, 0.4)]), row(0.1, &[(2.0, b, 0.4)])],
        };
        assert_eq!(result(0.9, 0.8).reproduced(), Some(true));
        assert_eq!(result(0.8, 0.8).reproduced(), Some(false));
        assert_eq!(result(0.7, 0.8).reproduced(), Some(false));
        let only_smoothed = DistillResult {
            rows: vec![row(0.1, &[(2.0, 0.8, 0.4)])],
        };
        assert_eq!(only_smoothed.reproduced(), None);
    }

    #[test]
    fn students_learn_from_teachers_on_digits() {
        let d = labelsmooth_data::bundled::load("digits").unwrap();
        let teacher = TrialSpec::new(ModelKind::Mlp, 0).with_epochs(15);
        let mut student = teacher.clone();
        student.hidden = vec![16];
        let study = DistillationStudy {
            teacher,
            student,
            factors: vec![0.0, 0.2],
            temperatures: vec![2.0],
            weight: 0.5,
            folds: 2,
            seed: 0,
        };
        assert_eq!(study.trainings(), 2 * 2 * 3);
        let r = study.run(&d, &mut ()).unwrap();
        assert_eq!(r.rows.len(), 2);
        for row in &r.rows {
            assert_eq!(row.teacher.folds, 2);
            assert!(row.teacher.accuracy_mean > 0.7, "{row:?}");
            assert!(row.baseline.accuracy_mean > 0.5, "{row:?}");
            assert!(row.students[0].stats.accuracy_mean > 0.5, "{row:?}");
        }
        let bad = DistillationStudy {
            temperatures: vec![0.0],
            ..study.clone()
        };
        let e = bad.run(&d, &mut ()).unwrap_err().to_string();
        assert!(e.contains("temperature 0"), "{e}");
        let bad = DistillationStudy {
            weight: 2.0,
            ..study.clone()
        };
        assert!(bad.run(&d, &mut ()).is_err());
        let mut bad = study;
        bad.student.train.early_stopping = Some(3);
        let e = bad.run(&d, &mut ()).unwrap_err().to_string();
        assert!(
            e.contains("does not take early stopping (set for the student)"),
            "{e}"
        );
    }
}
