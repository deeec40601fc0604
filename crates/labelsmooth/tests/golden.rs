//! Every case of every reference file (PyTorch, Keras, scikit-learn, torchmetrics, SciPy) checked
//! against the library with the tolerances of `tests/golden/README.md`.
//!
//! The folder is `tests/golden/` at the workspace root, or `$LABELSMOOTH_GOLDEN_DIR` when set.
//! A file or a field this test does not know fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use labelsmooth::calibration::{
    Binning, Norm, calibration_curve, calibration_error, fit_temperature,
};
use labelsmooth::loss::{
    BinaryCrossEntropy, CrossEntropy, LossValue, Reduction, SoftCrossEntropy,
    probability_cross_entropy,
};
use labelsmooth::targets::{
    BinaryConvention, Convention, smooth_binary, smooth_class_ids, smooth_probabilities,
};
use serde_json::Value;

type Case = serde_json::Map<String, Value>;

/// Worst errors seen in one family of cases.
#[derive(Default)]
struct Worst {
    cases: usize,
    value_rel: f64,
    grad_norm: f64,
}

struct Checker {
    family: &'static str,
    index: usize,
    worst: Worst,
}

impl Checker {
    fn ctx(&self) -> String {
        format!("{} case {}", self.family, self.index)
    }

    /// |got − want| ≤ max(rel·|want|, abs_floor) for each element.
    fn values(&mut self, what: &str, got: &[f64], want: &[f64], rel: f64, abs_floor: f64) {
        assert_eq!(got.len(), want.len(), "{}: {what} length", self.ctx());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let err = (g - w).abs();
            assert!(
                err <= (rel * w.abs()).max(abs_floor),
                "{}: {what}[{i}] = {g}, reference {w} (error {err:e})",
                self.ctx()
            );
            let r = err / w.abs().max(abs_floor);
            self.worst.value_rel = self.worst.value_rel.max(r);
        }
    }

    /// Gradients: 1e-6 absolute after dividing by the largest |reference gradient|, plus an
    /// absolute 1e-12 for the reference's own rounding: PyTorch forms p − 1 in float64, which
    /// carries about 1e-16 of absolute error, and in a case whose largest gradient is 1.6e-13
    /// (cross_entropy_index case 0) that error is 4e-4 of the scale. The exact value there is
    /// −(the other gradient), which this library returns.
    ///
    /// `input_rounding` adds, per element, the first-order bound of the change that rounding the
    /// float64 inputs to float32 makes to the exact gradient (see [`softmax_rounding_bound`]):
    /// a float32 implementation cannot see the inputs' lost digits.
    fn grads(&mut self, got: &[f32], want: &[f64], input_rounding: &[f64]) {
        assert_eq!(got.len(), want.len(), "{}: gradient length", self.ctx());
        let scale = want.iter().fold(0.0f64, |a, &v| a.max(v.abs()));
        if scale == 0.0 {
            assert!(
                got.iter().all(|&g| g == 0.0),
                "{}: gradient should be 0",
                self.ctx()
            );
            return;
        }
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let e = (f64::from(g) - w).abs() / scale;
            assert!(
                (f64::from(g) - w).abs()
                    <= 1e-6 * scale + 1e-12 + input_rounding.get(i).copied().unwrap_or(0.0),
                "{}: grad[{i}] = {g}, reference {w} (normalized error {e:e})",
                self.ctx()
            );
            if scale > 1e-6 {
                self.worst.grad_norm = self.worst.grad_norm.max(e);
            }
        }
    }
}

/// Unit roundoff of float32.
const U32: f64 = 1.0 / 16_777_216.0;

/// First-order bound on how much the gradient g_j = scale·(p_j·C − c_j) of a softmax
/// cross-entropy moves when the logits x and the coefficients c (smoothed target times weight,
/// relative rounding `coef_rel`) are rounded to float32:
/// |δg_j| ≤ scale·(C·p_j·(u|x_j| + Σ_i p_i·u|x_i|) + p_j·Σ_i |δc_i| + |δc_j|).
fn softmax_rounding_bound(
    logits: &[f64],
    coefs: &[f64],
    k: usize,
    scales: &[f64],
    coef_rel: f64,
) -> Vec<f64> {
    let mut out = vec![0.0; logits.len()];
    for (row, ((x, c), o)) in logits
        .chunks_exact(k)
        .zip(coefs.chunks_exact(k))
        .zip(out.chunks_exact_mut(k))
        .enumerate()
    {
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = x.iter().map(|&v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / s).collect();
        let total: f64 = c.iter().sum();
        let spread: f64 = p.iter().zip(x).map(|(pi, xi)| pi * U32 * xi.abs()).sum();
        let dc: f64 = c.iter().map(|ci| coef_rel * ci.abs()).sum();
        for j in 0..k {
            o[j] = scales[row]
                * (total * p[j] * (U32 * x[j].abs() + spread) + p[j] * dc + coef_rel * c[j].abs());
        }
    }
    out
}

fn golden_dir() -> PathBuf {
    match std::env::var_os("LABELSMOOTH_GOLDEN_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden"),
    }
}

fn f64s(c: &Case, key: &str) -> Vec<f64> {
    c[key]
        .as_array()
        .unwrap_or_else(|| panic!("field {key} is not an array"))
        .iter()
        .map(|v| {
            v.as_f64()
                .unwrap_or_else(|| panic!("field {key} holds {v}"))
        })
        .collect()
}

fn f32s(c: &Case, key: &str) -> Vec<f32> {
    f64s(c, key).into_iter().map(|v| v as f32).collect()
}

fn usizes(c: &Case, key: &str) -> Vec<usize> {
    c[key]
        .as_array()
        .unwrap_or_else(|| panic!("field {key} is not an array"))
        .iter()
        .map(|v| {
            v.as_u64()
                .unwrap_or_else(|| panic!("field {key} holds {v}")) as usize
        })
        .collect()
}

fn int(c: &Case, key: &str) -> usize {
    c[key]
        .as_u64()
        .unwrap_or_else(|| panic!("field {key} is not an integer")) as usize
}

fn num(c: &Case, key: &str) -> f64 {
    c[key]
        .as_f64()
        .unwrap_or_else(|| panic!("field {key} is not a number"))
}

fn text<'a>(c: &'a Case, key: &str) -> &'a str {
    c[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} is not a string"))
}

fn reduction(c: &Case) -> Reduction {
    text(c, "reduction").parse().expect("reduction")
}

fn loss_f64(v: &LossValue) -> Vec<f64> {
    v.as_slice().iter().map(|&x| f64::from(x)).collect()
}

/// The fields each family's cases must have, exactly.
fn schema(family: &str) -> Option<&'static [&'static str]> {
    Some(match family {
        "cross_entropy_index" => &[
            "n",
            "k",
            "alpha",
            "reduction",
            "logits",
            "targets",
            "ignore_index",
            "weight",
            "loss",
            "grad_of_sum",
        ],
        "cross_entropy_probs" => &[
            "n",
            "k",
            "alpha",
            "reduction",
            "logits",
            "target_probs",
            "weight",
            "loss",
            "grad_of_sum",
        ],
        "cross_entropy_exclude_true" => &[
            "n",
            "k",
            "alpha",
            "logits",
            "targets",
            "smoothed_targets",
            "loss",
            "grad",
        ],
        "binary_cross_entropy" => &[
            "n",
            "labels",
            "alpha",
            "reduction",
            "logits",
            "targets",
            "smoothed_targets",
            "loss",
            "grad_of_sum",
        ],
        "keras_losses" => &[
            "kind",
            "n",
            "k",
            "alpha",
            "from_logits",
            "inputs",
            "onehot",
            "loss",
        ],
        "calibration_curve" => &[
            "n",
            "n_bins",
            "strategy",
            "y_true",
            "y_prob",
            "prob_true",
            "prob_pred",
        ],
        "calibration_error" => &["n", "k", "n_bins", "norm", "probs", "labels", "value"],
        "temperature_scaling" => &[
            "n",
            "k",
            "logits",
            "labels",
            "temperature",
            "nll_before",
            "nll_after",
        ],
        _ => return None,
    })
}

const LOSS_REL: f64 = 1e-5;
const LOSS_ABS: f64 = 1e-6;

fn check_case(family: &str, c: &Case, ck: &mut Checker) {
    match family {
        "cross_entropy_index" => {
            let (n, k) = (int(c, "n"), int(c, "k"));
            let logits = f32s(c, "logits");
            let targets: Vec<i64> = c["targets"]
                .as_array()
                .expect("targets")
                .iter()
                .map(|v| v.as_i64().expect("integer target"))
                .collect();
            assert_eq!(targets.len(), n);
            let mut ce = CrossEntropy::new(k)
                .with_smoothing(num(c, "alpha") as f32)
                .with_reduction(reduction(c));
            if !c["ignore_index"].is_null() {
                ce = ce.with_ignore_index(c["ignore_index"].as_i64().expect("ignore_index"));
            }
            if !c["weight"].is_null() {
                ce = ce.with_weights(f32s(c, "weight"));
            }
            let mut grad = vec![0.0f32; n * k];
            let loss = ce
                .forward_backward(&logits, &targets, &mut grad)
                .expect("loss");
            ck.values(
                "loss",
                &loss_f64(&loss),
                &f64s(c, "loss"),
                LOSS_REL,
                LOSS_ABS,
            );
            let fwd = ce.forward(&logits, &targets).expect("forward");
            assert_eq!(
                fwd,
                loss,
                "{}: forward differs from forward_backward",
                ck.ctx()
            );
            let alpha = num(c, "alpha");
            let weight: Vec<f64> = if c["weight"].is_null() {
                vec![1.0; k]
            } else {
                f64s(c, "weight")
            };
            let ignored = |t: i64| c["ignore_index"].as_i64() == Some(t);
            let mut coefs = vec![0.0; n * k];
            let mut denom = 0.0;
            for (row, &t) in targets.iter().enumerate() {
                if ignored(t) {
                    continue;
                }
                denom += weight[t as usize];
                for j in 0..k {
                    let q = alpha / k as f64 + if j == t as usize { 1.0 - alpha } else { 0.0 };
                    coefs[row * k + j] = q * weight[j];
                }
            }
            let scale = if text(c, "reduction") == "mean" {
                1.0 / denom
            } else {
                1.0
            };
            let scales: Vec<f64> = targets
                .iter()
                .map(|&t| if ignored(t) { 0.0 } else { scale })
                .collect();
            let bound = softmax_rounding_bound(&f64s(c, "logits"), &coefs, k, &scales, U32);
            ck.grads(&grad, &f64s(c, "grad_of_sum"), &bound);
        }
        "cross_entropy_probs" => {
            let (n, k) = (int(c, "n"), int(c, "k"));
            let logits = f32s(c, "logits");
            let mut ce = SoftCrossEntropy::new(k)
                .with_smoothing(num(c, "alpha") as f32)
                .with_reduction(reduction(c));
            if !c["weight"].is_null() {
                ce = ce.with_weights(f32s(c, "weight"));
            }
            let mut grad = vec![0.0f32; n * k];
            let loss = ce
                .forward_backward(&logits, &f32s(c, "target_probs"), &mut grad)
                .expect("loss");
            ck.values(
                "loss",
                &loss_f64(&loss),
                &f64s(c, "loss"),
                LOSS_REL,
                LOSS_ABS,
            );
            let alpha = num(c, "alpha");
            let weight: Vec<f64> = if c["weight"].is_null() {
                vec![1.0; k]
            } else {
                f64s(c, "weight")
            };
            let coefs: Vec<f64> = f64s(c, "target_probs")
                .iter()
                .enumerate()
                .map(|(i, &p)| ((1.0 - alpha) * p + alpha / k as f64) * weight[i % k])
                .collect();
            let scale = if text(c, "reduction") == "mean" {
                1.0 / n as f64
            } else {
                1.0
            };
            let bound =
                softmax_rounding_bound(&f64s(c, "logits"), &coefs, k, &vec![scale; n], 2.0 * U32);
            ck.grads(&grad, &f64s(c, "grad_of_sum"), &bound);
        }
        "cross_entropy_exclude_true" => {
            let (n, k) = (int(c, "n"), int(c, "k"));
            let alpha = num(c, "alpha") as f32;
            let ids = usizes(c, "targets");
            let q = smooth_class_ids(&ids, k, alpha, Convention::ExcludeTrue).expect("targets");
            let q: Vec<f64> = q.iter().map(|&v| f64::from(v)).collect();
            ck.values(
                "smoothed_targets",
                &q,
                &f64s(c, "smoothed_targets"),
                1e-6,
                1e-7,
            );
            let targets: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
            let ce = CrossEntropy::new(k)
                .with_smoothing(alpha)
                .with_convention(Convention::ExcludeTrue);
            let mut grad = vec![0.0f32; n * k];
            let loss = ce
                .forward_backward(&f32s(c, "logits"), &targets, &mut grad)
                .expect("loss");
            ck.values(
                "loss",
                &loss_f64(&loss),
                &f64s(c, "loss"),
                LOSS_REL,
                LOSS_ABS,
            );
            let coefs = f64s(c, "smoothed_targets");
            let bound = softmax_rounding_bound(
                &f64s(c, "logits"),
                &coefs,
                k,
                &vec![1.0 / n as f64; n],
                U32,
            );
            ck.grads(&grad, &f64s(c, "grad"), &bound);
        }
        "binary_cross_entropy" => {
            let (n, l) = (int(c, "n"), int(c, "labels"));
            let alpha = num(c, "alpha") as f32;
            let y = f32s(c, "targets");
            let q = smooth_binary(&y, l, alpha, BinaryConvention::TowardHalf).expect("targets");
            let q: Vec<f64> = q.iter().map(|&v| f64::from(v)).collect();
            ck.values(
                "smoothed_targets",
                &q,
                &f64s(c, "smoothed_targets"),
                1e-6,
                1e-7,
            );
            let bce = BinaryCrossEntropy::new(l)
                .with_smoothing(alpha)
                .with_reduction(reduction(c));
            let mut grad = vec![0.0f32; n * l];
            let loss = bce
                .forward_backward(&f32s(c, "logits"), &y, &mut grad)
                .expect("loss");
            ck.values(
                "loss",
                &loss_f64(&loss),
                &f64s(c, "loss"),
                LOSS_REL,
                LOSS_ABS,
            );
            ck.grads(&grad, &f64s(c, "grad_of_sum"), &[]);
        }
        "keras_losses" => {
            let (n, k) = (int(c, "n"), int(c, "k"));
            let alpha = num(c, "alpha") as f32;
            let inputs = f32s(c, "inputs");
            let onehot = f32s(c, "onehot");
            let from_logits = c["from_logits"].as_bool().expect("from_logits");
            let loss = match (text(c, "kind"), from_logits) {
                ("categorical", true) => {
                    let q = smooth_probabilities(&onehot, k, alpha).expect("targets");
                    let v = SoftCrossEntropy::new(k).forward(&inputs, &q).expect("loss");
                    f64::from(v.as_slice()[0])
                }
                ("categorical", false) => {
                    let q = smooth_probabilities(&onehot, k, alpha).expect("targets");
                    let rows = probability_cross_entropy(&inputs, &q, k, 1e-7).expect("loss");
                    rows.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64
                }
                ("binary", true) => {
                    let v = BinaryCrossEntropy::new(k)
                        .with_smoothing(alpha)
                        .forward(&inputs, &onehot)
                        .expect("loss");
                    f64::from(v.as_slice()[0])
                }
                (kind, fl) => panic!(
                    "{}: unsupported Keras case {kind}, from_logits={fl}",
                    ck.ctx()
                ),
            };
            ck.values("loss", &[loss], &f64s(c, "loss"), 1e-5, 1e-6);
        }
        "calibration_curve" => {
            let strategy: Binning = text(c, "strategy").parse().expect("strategy");
            let curve = calibration_curve(
                &usizes(c, "y_true"),
                &f64s(c, "y_prob"),
                int(c, "n_bins"),
                strategy,
            )
            .expect("curve");
            assert_eq!(
                curve.prob_true.len(),
                f64s(c, "prob_true").len(),
                "{}",
                ck.ctx()
            );
            ck.values(
                "prob_true",
                &curve.prob_true,
                &f64s(c, "prob_true"),
                0.0,
                1e-6,
            );
            ck.values(
                "prob_pred",
                &curve.prob_pred,
                &f64s(c, "prob_pred"),
                0.0,
                1e-6,
            );
        }
        "calibration_error" => {
            let norm = match text(c, "norm") {
                "l1" => Norm::L1,
                "l2" => Norm::L2,
                "max" => Norm::Max,
                other => panic!("{}: unknown norm {other}", ck.ctx()),
            };
            let e = calibration_error(
                &f32s(c, "probs"),
                &usizes(c, "labels"),
                int(c, "k"),
                int(c, "n_bins"),
                norm,
                Binning::Uniform,
            )
            .expect("calibration error");
            ck.values("value", &[e], &[num(c, "value")], 0.0, 1e-5);
        }
        "temperature_scaling" => {
            let fit = fit_temperature(&f32s(c, "logits"), &usizes(c, "labels"), int(c, "k"))
                .expect("fit");
            ck.values(
                "temperature",
                &[fit.temperature],
                &[num(c, "temperature")],
                1e-4,
                0.0,
            );
            ck.values(
                "nll_before",
                &[fit.nll_before],
                &[num(c, "nll_before")],
                LOSS_REL,
                LOSS_ABS,
            );
            ck.values(
                "nll_after",
                &[fit.nll_after],
                &[num(c, "nll_after")],
                LOSS_REL,
                LOSS_ABS,
            );
        }
        other => panic!("no check for family {other}"),
    }
}

#[test]
fn golden_references() {
    let dir = golden_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read golden folder {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut report: BTreeMap<&'static str, Worst> = BTreeMap::new();
    let mut total = 0;
    for path in &files {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let fields =
            schema(stem).unwrap_or_else(|| panic!("unknown golden file {}", path.display()));
        let family: &'static str = fields_family(stem);
        let body = std::fs::read_to_string(path).expect("read golden file");
        let doc: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        let top: BTreeSet<&str> = doc
            .as_object()
            .expect("object")
            .keys()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            top,
            BTreeSet::from(["cases", "generator"]),
            "{}: unexpected top-level fields",
            path.display()
        );
        let cases = doc["cases"].as_array().expect("cases array");
        assert!(!cases.is_empty(), "{}: no cases", path.display());
        let mut ck = Checker {
            family,
            index: 0,
            worst: Worst::default(),
        };
        let want: BTreeSet<&str> = fields.iter().copied().collect();
        for (i, case) in cases.iter().enumerate() {
            ck.index = i;
            let c = case.as_object().expect("case object");
            let have: BTreeSet<&str> = c.keys().map(|s| s.as_str()).collect();
            assert_eq!(have, want, "{}: fields of case {i}", path.display());
            check_case(family, c, &mut ck);
            ck.worst.cases += 1;
        }
        total += ck.worst.cases;
        report.insert(family, ck.worst);
    }
    for family in [
        "cross_entropy_index",
        "cross_entropy_probs",
        "cross_entropy_exclude_true",
        "binary_cross_entropy",
        "keras_losses",
        "calibration_curve",
        "calibration_error",
        "temperature_scaling",
    ] {
        assert!(
            report.contains_key(family),
            "family {family} has no file in {}",
            dir.display()
        );
    }
    for (family, w) in &report {
        println!(
            "golden: {family}: {} cases, worst relative value error {:.2e}, worst normalized gradient error {:.2e}",
            w.cases, w.value_rel, w.grad_norm
        );
    }
    println!("golden: {total} cases checked");
}

fn fields_family(stem: &str) -> &'static str {
    [
        "cross_entropy_index",
        "cross_entropy_probs",
        "cross_entropy_exclude_true",
        "binary_cross_entropy",
        "keras_losses",
        "calibration_curve",
        "calibration_error",
        "temperature_scaling",
    ]
    .into_iter()
    .find(|f| *f == stem)
    .unwrap_or_else(|| panic!("unknown golden file {stem}"))
}
