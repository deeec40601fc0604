//! The calibration study: the same model trained without and with smoothing on 60% of the data,
//! a temperature fitted on 20%, everything measured on the last 20% before and after it.

use labelsmooth::calibration::{
    Binning, Norm, apply_temperature, error_of_bins, fit_temperature, reliability_bins, softmax,
};
use labelsmooth::split::stratified_split;
use labelsmooth_burn::train::{
    EpochMetrics, Evaluation, Inputs, evaluation_of, predict_features, predict_logits,
    train_observed,
};
use labelsmooth_data::Dataset;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::observe::Observer;
use crate::trial::{TrialSpec, prepare};

/// Settings of the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationStudy {
    /// The model and training, trained once per factor.
    pub base: TrialSpec,
    /// Smoothing factors compared (the first is usually 0).
    pub factors: Vec<f32>,
    /// Bins of ECE and MCE.
    pub bins: usize,
    /// Seed of the 60/20/20 split.
    pub seed: u64,
    /// Classes whose penultimate-layer activations are projected (Müller et al. 2019): three,
    /// or two (then the plane runs through the origin and their templates).
    pub projected_classes: Vec<usize>,
}

/// One model of the study.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationRow {
    /// `no smoothing` or `smoothing α`.
    pub model: String,
    /// Its smoothing factor.
    pub smoothing: f32,
    /// The temperature fitted on the calibration split.
    pub temperature: f64,
    /// Test metrics before temperature scaling.
    pub before: Evaluation,
    /// Test metrics after it.
    pub after: Evaluation,
    /// Maximum calibration error before.
    pub mce_before: f64,
    /// Maximum calibration error after.
    pub mce_after: f64,
    /// Training history (validation on the calibration split).
    #[serde(skip)]
    pub history: Vec<EpochMetrics>,
    /// Test probabilities `[n, classes]` before temperature scaling.
    #[serde(skip)]
    pub test_probs: Vec<f32>,
    /// Penultimate-layer activations of the projected classes' test rows, as plane coordinates
    /// and class (at most [`PROJECTED_PER_CLASS`] rows per class).
    #[serde(skip)]
    pub projection: Vec<(f64, f64, usize)>,
    /// The same for training rows.
    #[serde(skip)]
    pub projection_train: Vec<(f64, f64, usize)>,
}

/// What the study measured.
#[derive(Debug, Clone, Serialize)]
pub struct CalibrationResult {
    /// One row per factor.
    pub rows: Vec<CalibrationRow>,
    /// True classes of the test rows.
    #[serde(skip)]
    pub test_labels: Vec<usize>,
}

impl CalibrationStudy {
    /// Trains one model per factor on `d` and measures each.
    pub fn run(&self, d: &Dataset, observer: &mut dyn Observer) -> Result<CalibrationResult> {
        let c = &self.projected_classes;
        if !(c.len() == 2 || c.len() == 3) {
            return Err(crate::error::Error::Invalid(format!(
                "the penultimate-layer picture needs two or three classes, not {c:?}"
            )));
        }
        let split = stratified_split(&d.labels, 0.4, self.seed)?;
        let rest_labels = pick(&d.labels, &split.valid);
        let halves = stratified_split(&rest_labels, 0.5, self.seed)?;
        let calib: Vec<usize> = halves.train.iter().map(|&i| split.valid[i]).collect();
        let test: Vec<usize> = halves.valid.iter().map(|&i| split.valid[i]).collect();
        let k = d.n_classes();
        let (y_calib, y_test) = (pick(&d.labels, &calib), pick(&d.labels, &test));
        let mut rows = Vec::new();
        for &a in &self.factors {
            let name = if a == 0.0 {
                "no smoothing".to_string()
            } else {
                format!("smoothing {a}")
            };
            let spec = self.base.clone().with_smoothing(a);
            let p = prepare(d, &split.train, &[&calib, &test], &spec)?;
            let (model_spec, x_train) = (p.model, p.train);
            let [x_calib, x_test]: [Inputs; 2] = p.others.try_into().expect("one set per row list");
            let label = format!("calibration: {name}");
            observer.trial_started(&label);
            let trained = train_observed(
                &model_spec,
                (&x_train, &pick(&d.labels, &split.train)),
                Some((&x_calib, &y_calib)),
                k,
                &spec.train,
                &spec.open_device()?,
                observer,
            )?;
            let fit = fit_temperature(&predict_logits(&trained.model, &x_calib), &y_calib, k)?;
            let test_logits = predict_logits(&trained.model, &x_test);
            let probs = softmax(&test_logits, k)?;
            let scaled = softmax(&apply_temperature(&test_logits, fit.temperature)?, k)?;
            let mce = |p: &[f32]| -> Result<f64> {
                Ok(error_of_bins(
                    &reliability_bins(p, &y_test, k, self.bins, Binning::Uniform)?,
                    Norm::Max,
                )?)
            };
            let (templates, tdim) = trained.model.class_templates();
            let projected = |x: &Inputs, y: &[usize]| {
                let (features, dim) = predict_features(&trained.model, x);
                if dim == tdim && self.projected_classes.iter().all(|&c| c < k) {
                    project(&features, dim, y, &templates, &self.projected_classes)
                } else {
                    Vec::new()
                }
            };
            let projection = projected(&x_test, &y_test);
            let projection_train = projected(&x_train, &pick(&d.labels, &split.train));
            let before = evaluation_of(&probs, &y_test, k, self.bins)?;
            observer.trial_finished(&label, &before);
            rows.push(CalibrationRow {
                model: name,
                smoothing: a,
                temperature: fit.temperature,
                after: evaluation_of(&scaled, &y_test, k, self.bins)?,
                before,
                mce_before: mce(&probs)?,
                mce_after: mce(&scaled)?,
                history: trained.history,
                test_probs: probs,
                projection,
                projection_train,
            });
        }
        Ok(CalibrationResult {
            rows,
            test_labels: y_test,
        })
    }
}

fn pick<T: Copy>(v: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&r| v[r]).collect()
}

/// Rows per class at most in a projection, so that the figure stays readable.
pub const PROJECTED_PER_CLASS: usize = 300;

/// Coordinates of `features` `[n, d]` on the plane through the templates (output-layer weight
/// rows) of classes `c`, for the rows of those classes (the first [`PROJECTED_PER_CLASS`] of
/// each): the picture of Müller et al. 2019, figure 1. The first axis runs from the template of
/// `c[0]` to that of `c[1]`. With two classes the third point of the plane is the origin.
///
/// # Panics
/// If `c` holds neither two nor three classes.
pub fn project(
    features: &[f32],
    d: usize,
    labels: &[usize],
    templates: &[f32],
    c: &[usize],
) -> Vec<(f64, f64, usize)> {
    assert!(
        c.len() == 2 || c.len() == 3,
        "the plane is drawn through two or three class templates"
    );
    let t = |k: usize| -> Vec<f64> {
        templates[k * d..(k + 1) * d]
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    let (t0, t1) = (t(c[0]), t(c[1]));
    let t2 = c.get(2).map_or_else(|| vec![0.0; d], |&k| t(k));
    let sub = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<f64>>();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let u = sub(&t1, &t0);
    let nu = dot(&u, &u).sqrt().max(1e-12);
    let u: Vec<f64> = u.iter().map(|x| x / nu).collect();
    let v = sub(&t2, &t0);
    let pv = dot(&v, &u);
    let v: Vec<f64> = v.iter().zip(&u).map(|(a, b)| a - pv * b).collect();
    let nv = dot(&v, &v).sqrt().max(1e-12);
    let v: Vec<f64> = v.iter().map(|x| x / nv).collect();
    let mut taken = vec![0usize; c.len()];
    labels
        .iter()
        .enumerate()
        .filter(|&(_, y)| match c.iter().position(|k| k == y) {
            Some(j) if taken[j] < PROJECTED_PER_CLASS => {
                taken[j] += 1;
                true
            }
            _ => false,
        })
        .map(|(i, &y)| {
            let a: Vec<f64> = features[i * d..(i + 1) * d]
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            let a = sub(&a, &t0);
            (dot(&a, &u), dot(&a, &v), y)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::project;

    #[test]
    fn templates_land_on_the_plane_corners() {
        // Three templates in 3-d; features equal to the templates project to (0,0), (|t1-t0|, 0)
        // and a point with positive second coordinate; other classes are left out.
        let templates = [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 1.0, 3.0, 0.0, 9.0, 9.0, 9.0];
        let features = [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 1.0, 3.0, 5.0, 7.0, 7.0, 7.0];
        let p = project(&features, 3, &[0, 1, 2, 3], &templates, &[0, 1, 2]);
        assert_eq!(p.len(), 3);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(p[0].0, 0.0) && close(p[0].1, 0.0));
        assert!(close(p[1].0, 2.0) && close(p[1].1, 0.0));
        assert!(close(p[2].0, 1.0) && close(p[2].1, 3.0), "{:?}", p[2]);
        assert_eq!(p[2].2, 2);
        // Two classes: the plane through the origin and both templates; (2, 0, 0) and (1, 3, 0)
        // span the x-y plane, so a feature keeps its length and its angle to the first axis.
        let t2 = [2.0, 0.0, 0.0, 1.0, 3.0, 0.0];
        let p = project(&[0.0, 5.0, 0.0, 3.0, 4.0, 0.0], 3, &[0, 1], &t2, &[0, 1]);
        let t0 = (2.0f64, 0.0f64);
        let u = ((1.0 - t0.0) / 10f64.sqrt(), 3.0 / 10f64.sqrt());
        assert!(close(p[0].0, (0.0 - t0.0) * u.0 + 5.0 * u.1), "{p:?}");
        assert!(close(p[0].0.hypot(p[0].1), (4.0f64 + 25.0).sqrt()));
        assert!(close(p[1].0.hypot(p[1].1), (1.0f64 + 16.0).sqrt()));
    }
}
