//! Knowledge distillation (Hinton, Vinyals and Dean 2015).

use super::{CrossEntropy, LossValue, Reduction, check_logits_finite_above, reduce};
use crate::error::{Error, Result, check_alpha, check_len, rows_of};
use crate::targets::Convention;

/// The distillation loss of a student against a teacher and the true classes:
///
/// (1 − λ)·CE_α(s, y) + λ·τ²·KL(softmax(t/τ) ‖ softmax(s/τ))
///
/// per row, where `s` are the student's logits, `t` the teacher's, `y` the class ids, τ the
/// temperature that softens both distributions and λ the weight of the teacher's term. The τ²
/// keeps the soft term's gradient on the scale of the hard one as τ changes (Hinton et al. 2015,
/// section 2). CE_α is the cross-entropy with labels smoothed toward uniform by α (0 by
/// default), so λ = 0 trains on (smoothed) labels alone.
///
/// The gradient with respect to the student's logits is
/// (1 − λ)·(softmax(s) − q) + λ·τ·(softmax(s/τ) − softmax(t/τ)), with q the smoothed target.
/// The teacher's logits are constants. `mean` divides by n. Sums run in `f64`. A student logit
/// of −inf (a masked class) is allowed where the teacher gives the class no probability; where
/// the teacher gives it some, the KL term and so the loss are infinite.
///
/// ```
/// use labelsmooth::loss::Distillation;
/// let student = [1.0, 0.0, -1.0];
/// // A student that matches its teacher pays only the hard term, here with weight 1 − λ = 0.5.
/// let d = Distillation::new(3).with_temperature(4.0).with_weight(0.5);
/// let both = d.forward(&student, &student, &[0]).unwrap().scalar().unwrap();
/// let hard = labelsmooth::loss::CrossEntropy::new(3).forward(&student, &[0]).unwrap();
/// assert!((both - 0.5 * hard.scalar().unwrap()).abs() < 1e-6);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Distillation {
    k: usize,
    temperature: f32,
    weight: f32,
    smoothing: f32,
    convention: Convention,
    reduction: Reduction,
}

impl Distillation {
    /// Distillation over `k` classes: τ = 1, λ = 0.5, no smoothing, mean reduction.
    pub fn new(k: usize) -> Self {
        Distillation {
            k,
            temperature: 1.0,
            weight: 0.5,
            smoothing: 0.0,
            convention: Convention::Uniform,
            reduction: Reduction::Mean,
        }
    }

    /// Sets the temperature τ (finite, > 0).
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = temperature;
        self
    }

    /// Sets the weight λ of the teacher's term, in [0, 1].
    pub fn with_weight(mut self, weight: f32) -> Self {
        self.weight = weight;
        self
    }

    /// Sets the smoothing factor α of the hard term, in [0, 1].
    pub fn with_smoothing(mut self, alpha: f32) -> Self {
        self.smoothing = alpha;
        self
    }

    /// Sets how α spreads over the classes in the hard term.
    pub fn with_convention(mut self, convention: Convention) -> Self {
        self.convention = convention;
        self
    }

    /// Sets the reduction.
    pub fn with_reduction(mut self, reduction: Reduction) -> Self {
        self.reduction = reduction;
        self
    }

    /// The temperature τ.
    pub fn temperature(&self) -> f32 {
        self.temperature
    }

    /// The weight λ of the teacher's term.
    pub fn weight(&self) -> f32 {
        self.weight
    }

    /// Checks the configuration: τ finite and > 0, λ and α in [0, 1].
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::InvalidParameter {
                what: "distillation temperature",
                why: format!("{} is not finite and > 0", self.temperature),
            });
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(Error::InvalidParameter {
                what: "distillation weight",
                why: format!("{} is not in [0, 1]", self.weight),
            });
        }
        check_alpha(self.smoothing)
    }

    /// The loss of student logits `[n, k]` against teacher logits `[n, k]` and class ids `[n]`.
    pub fn forward(&self, student: &[f32], teacher: &[f32], targets: &[i64]) -> Result<LossValue> {
        self.run(student, teacher, targets, None)
    }

    /// The loss, with d(loss)/d(student logits) written to `grad` (as long as `student`).
    pub fn forward_backward(
        &self,
        student: &[f32],
        teacher: &[f32],
        targets: &[i64],
        grad: &mut [f32],
    ) -> Result<LossValue> {
        check_len(
            "gradient buffer (as long as the student's logits)",
            student.len(),
            grad.len(),
        )?;
        self.run(student, teacher, targets, Some(grad))
    }

    fn run(
        &self,
        student: &[f32],
        teacher: &[f32],
        targets: &[i64],
        grad: Option<&mut [f32]>,
    ) -> Result<LossValue> {
        self.validate()?;
        let k = self.k;
        let n = rows_of("student logits (n * k values)", student.len(), k)?;
        check_len(
            "teacher logits (as many as the student's)",
            student.len(),
            teacher.len(),
        )?;
        check_logits_finite_above(student, k)?;
        if let Some(i) = teacher.iter().position(|v| !v.is_finite()) {
            return Err(Error::InvalidParameter {
                what: "teacher logits",
                why: format!("row {} holds {}, not a finite number", i / k, teacher[i]),
            });
        }
        if n == 0 && self.reduction == Reduction::Mean {
            return Err(Error::Empty {
                what: "the batch",
                why: "a mean loss needs at least one row",
            });
        }
        let lambda = f64::from(self.weight);
        let tau = f64::from(self.temperature);
        // The hard term: per-row smoothed cross-entropy, its gradient that of the sum.
        let hard = CrossEntropy::new(k)
            .with_smoothing(self.smoothing)
            .with_convention(self.convention)
            .with_reduction(Reduction::None);
        let mut grad = grad;
        let hard_rows = match grad.as_deref_mut() {
            Some(g) => hard.forward_backward(student, targets, g)?,
            None => hard.forward(student, targets)?,
        };
        let scale = if self.reduction == Reduction::Mean {
            1.0 / n as f64
        } else {
            1.0
        };
        let mut items = Vec::with_capacity(n);
        let mut ps = vec![0f64; k];
        let mut pt = vec![0f64; k];
        for (row, (s, t)) in student
            .chunks_exact(k)
            .zip(teacher.chunks_exact(k))
            .enumerate()
        {
            let log_ps = log_softmax_scaled(s, tau, &mut ps);
            let log_pt = log_softmax_scaled(t, tau, &mut pt);
            // KL(p_t ‖ p_s) = Σ p_t (log p_t − log p_s), terms with p_t = 0 contributing 0.
            let kl: f64 = (0..k)
                .filter(|&j| pt[j] > 0.0)
                .map(|j| pt[j] * ((t[j] as f64 / tau - log_pt) - (s[j] as f64 / tau - log_ps)))
                .sum::<f64>()
                .max(0.0);
            let hard_value = f64::from(hard_rows.as_slice()[row]);
            items.push((1.0 - lambda) * hard_value + lambda * tau * tau * kl);
            if let Some(g) = grad.as_deref_mut() {
                for ((gj, &a), &b) in g[row * k..(row + 1) * k].iter_mut().zip(&ps).zip(&pt) {
                    let d = (1.0 - lambda) * f64::from(*gj) + lambda * tau * (a - b);
                    *gj = (scale * d) as f32;
                }
            }
        }
        Ok(reduce(items, self.reduction, n as f64))
    }
}

/// Writes softmax(x/τ) to `p` and returns log Σ exp(x/τ).
fn log_softmax_scaled(x: &[f32], tau: f64, p: &mut [f64]) -> f64 {
    let m = x
        .iter()
        .map(|&v| f64::from(v) / tau)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for (pj, &v) in p.iter_mut().zip(x) {
        *pj = (f64::from(v) / tau - m).exp();
        sum += *pj;
    }
    p.iter_mut().for_each(|pj| *pj /= sum);
    m + sum.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss of one row from its definition: softmax, KL and cross-entropy written out.
    fn by_definition(s: &[f64], t: &[f64], y: usize, tau: f64, lambda: f64, alpha: f64) -> f64 {
        let k = s.len() as f64;
        let softmax = |x: &[f64], tau: f64| {
            let e: Vec<f64> = x.iter().map(|v| (v / tau).exp()).collect();
            let z: f64 = e.iter().sum();
            e.into_iter().map(|v| v / z).collect::<Vec<f64>>()
        };
        let p = softmax(s, 1.0);
        let q: Vec<f64> = (0..s.len())
            .map(|j| (1.0 - alpha) * f64::from(u8::from(j == y)) + alpha / k)
            .collect();
        let ce: f64 = -q.iter().zip(&p).map(|(q, p)| q * p.ln()).sum::<f64>();
        let (ps, pt) = (softmax(s, tau), softmax(t, tau));
        let kl: f64 = pt.iter().zip(&ps).map(|(a, b)| a * (a / b).ln()).sum();
        (1.0 - lambda) * ce + lambda * tau * tau * kl
    }

    /// A reproducible stream of numbers in [−3, 3).
    fn numbers(seed: u64, n: usize) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0) as f32
            })
            .collect()
    }

    #[test]
    fn value_matches_the_definition() {
        for (seed, (tau, lambda, alpha)) in [
            (1.0, 0.5, 0.0),
            (4.0, 0.9, 0.0),
            (2.0, 0.3, 0.1),
            (0.5, 1.0, 0.0),
            (8.0, 0.0, 0.2),
        ]
        .into_iter()
        .enumerate()
        {
            let (n, k) = (7, 5);
            let s = numbers(seed as u64 + 1, n * k);
            let t: Vec<f32> = numbers(seed as u64 + 100, n * k)
                .iter()
                .map(|v| 2.0 * v)
                .collect();
            let y: Vec<i64> = (0..n).map(|i| ((i * 3 + seed) % k) as i64).collect();
            let d = Distillation::new(k)
                .with_temperature(tau)
                .with_weight(lambda)
                .with_smoothing(alpha);
            let got = d.forward(&s, &t, &y).unwrap().scalar().unwrap();
            let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
            let want: f64 = (0..n)
                .map(|i| {
                    by_definition(
                        &f(&s[i * k..(i + 1) * k]),
                        &f(&t[i * k..(i + 1) * k]),
                        y[i] as usize,
                        f64::from(tau),
                        f64::from(lambda),
                        f64::from(alpha),
                    )
                })
                .sum::<f64>()
                / n as f64;
            assert!(
                (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1.0),
                "τ {tau} λ {lambda} α {alpha}: {got} against {want}"
            );
            let rows = d
                .clone()
                .with_reduction(Reduction::None)
                .forward(&s, &t, &y)
                .unwrap();
            let sum = d
                .with_reduction(Reduction::Sum)
                .forward(&s, &t, &y)
                .unwrap();
            let total: f32 = rows.as_slice().iter().sum();
            assert!((total - sum.scalar().unwrap()).abs() < 1e-4);
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // Central differences of the f64 definition, over random logits and settings.
        for seed in 0..20u64 {
            let (n, k) = (3, 4);
            let s = numbers(seed + 7, n * k);
            let t = numbers(seed + 70, n * k);
            let y: Vec<i64> = (0..n)
                .map(|i| ((i as u64 + seed) % k as u64) as i64)
                .collect();
            let knobs = numbers(seed + 700, 3);
            let tau = 0.5 + (knobs[0] + 3.0) as f64; // (0.5, 6.5)
            let lambda = f64::from((knobs[1] + 3.0) / 6.0);
            let alpha = f64::from((knobs[2] + 3.0) / 12.0);
            let d = Distillation::new(k)
                .with_temperature(tau as f32)
                .with_weight(lambda as f32)
                .with_smoothing(alpha as f32);
            let mut grad = vec![0f32; n * k];
            d.forward_backward(&s, &t, &y, &mut grad).unwrap();
            let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
            let (tau, lambda, alpha) = (
                f64::from(tau as f32),
                f64::from(lambda as f32),
                f64::from(alpha as f32),
            );
            let mean = |s: &[f64]| -> f64 {
                (0..n)
                    .map(|i| {
                        by_definition(
                            &s[i * k..(i + 1) * k],
                            &f(&t[i * k..(i + 1) * k]),
                            y[i] as usize,
                            tau,
                            lambda,
                            alpha,
                        )
                    })
                    .sum::<f64>()
                    / n as f64
            };
            // Sum: n times the mean's gradient; None: the gradient of the sum.
            for reduction in [Reduction::Sum, Reduction::None] {
                let mut g = vec![0f32; n * k];
                d.clone()
                    .with_reduction(reduction)
                    .forward_backward(&s, &t, &y, &mut g)
                    .unwrap();
                for (a, b) in g.iter().zip(&grad) {
                    assert!(
                        (a - n as f32 * b).abs() < 1e-5,
                        "{reduction:?}: {a} against {n} × {b}"
                    );
                }
            }
            let base = f(&s);
            for j in 0..n * k {
                let h = 1e-5;
                let (mut up, mut down) = (base.clone(), base.clone());
                up[j] += h;
                down[j] -= h;
                let fd = (mean(&up) - mean(&down)) / (2.0 * h);
                assert!(
                    (f64::from(grad[j]) - fd).abs() < 1e-5,
                    "seed {seed}, logit {j}: {} against {fd}",
                    grad[j]
                );
            }
        }
    }

    #[test]
    fn limits_and_invariances() {
        let (n, k) = (4, 3);
        let s = numbers(5, n * k);
        let t = numbers(6, n * k);
        let y = [0i64, 1, 2, 1];
        // λ = 0 is the smoothed cross-entropy; the teacher does not matter.
        let d0 = Distillation::new(k).with_weight(0.0).with_smoothing(0.1);
        let ce = CrossEntropy::new(k).with_smoothing(0.1);
        let a = d0.forward(&s, &t, &y).unwrap().scalar().unwrap();
        assert!((a - ce.forward(&s, &y).unwrap().scalar().unwrap()).abs() < 1e-6);
        // λ = 1 with the student equal to the teacher: zero loss and gradient.
        let d1 = Distillation::new(k).with_weight(1.0).with_temperature(3.0);
        let mut g = vec![1f32; n * k];
        let v = d1.forward_backward(&s, &s, &y, &mut g).unwrap();
        assert!(v.scalar().unwrap().abs() < 1e-6);
        assert!(g.iter().all(|x| x.abs() < 1e-7), "{g:?}");
        // Adding a constant to a row of either the student or the teacher changes nothing.
        let shifted: Vec<f32> = s
            .iter()
            .enumerate()
            .map(|(i, v)| v + (i / k) as f32)
            .collect();
        let d = Distillation::new(k).with_temperature(2.0).with_weight(0.7);
        let (mut g1, mut g2) = (vec![0f32; n * k], vec![0f32; n * k]);
        let l1 = d.forward_backward(&s, &t, &y, &mut g1).unwrap();
        let l2 = d.forward_backward(&shifted, &t, &y, &mut g2).unwrap();
        assert!((l1.scalar().unwrap() - l2.scalar().unwrap()).abs() < 1e-5);
        assert!(g1.iter().zip(&g2).all(|(a, b)| (a - b).abs() < 1e-6));
        // Each gradient row sums to zero.
        for row in g1.chunks(k) {
            assert!(row.iter().sum::<f32>().abs() < 1e-6);
        }
    }

    #[test]
    fn bad_settings_and_inputs_are_refused() {
        let s = [0.0f32; 6];
        let y = [0i64, 1];
        for d in [
            Distillation::new(3).with_temperature(0.0),
            Distillation::new(3).with_temperature(f32::NAN),
            Distillation::new(3).with_weight(1.5),
            Distillation::new(3).with_smoothing(-0.1),
        ] {
            assert!(d.forward(&s, &s, &y).is_err(), "{d:?}");
        }
        let d = Distillation::new(3);
        assert!(d.forward(&s, &s[..3], &y).is_err());
        let mut t = s;
        t[4] = f32::NAN;
        let e = d.forward(&s, &t, &y).unwrap_err().to_string();
        assert!(e.contains("teacher") && e.contains("row 1"), "{e}");
        assert!(d.forward(&s, &s, &[0, 3]).is_err());
        assert!(d.forward(&[], &[], &[]).is_err());
    }
}
