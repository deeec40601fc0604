//! Property tests against mathematics: gradients equal central finite differences of the loss
//! written from its definition in f64, shift invariance, α = 0 is plain cross-entropy, smoothed
//! targets are distributions, and smoothed cross-entropy is at least the target's entropy.

use labelsmooth::loss::{
    BinaryCrossEntropy, ConfidencePenalty, CrossEntropy, LossValue, Reduction, SoftCrossEntropy,
};
use labelsmooth::targets::{
    BinaryConvention, Convention, smooth_binary, smooth_class_ids, smooth_probabilities,
};
use proptest::prelude::*;

fn log_softmax(x: &[f64]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    x.iter().map(|v| v - lse).collect()
}

/// −Σ_j w_j·q_j·log softmax_j per row, from the definition.
fn soft_ce_rows(x: &[f64], q: &[f64], w: &[f64], k: usize) -> Vec<f64> {
    x.chunks(k)
        .zip(q.chunks(k))
        .map(|(xr, qr)| {
            let lp = log_softmax(xr);
            -(0..k).map(|j| w[j] * qr[j] * lp[j]).sum::<f64>()
        })
        .collect()
}

fn reduce(rows: &[f64], reduction: Reduction, denom: f64) -> f64 {
    match reduction {
        Reduction::None | Reduction::Sum => rows.iter().sum(),
        Reduction::Mean => rows.iter().sum::<f64>() / denom,
    }
}

/// Central finite differences of `f` at `x` (f64, step h).
fn finite_diff(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-5;
    let mut y = x.to_vec();
    (0..x.len())
        .map(|i| {
            y[i] = x[i] + h;
            let up = f(&y);
            y[i] = x[i] - h;
            let down = f(&y);
            y[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn sum_of(v: &LossValue) -> f64 {
    v.as_slice().iter().map(|&x| f64::from(x)).sum()
}

fn assert_grad_close(got: &[f32], want: &[f64]) -> Result<(), TestCaseError> {
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs())).max(1e-3);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (f64::from(g) - w).abs() <= 2e-5 * scale,
            "grad[{i}] = {g}, finite difference {w}"
        );
    }
    Ok(())
}

fn reduction() -> impl Strategy<Value = Reduction> {
    prop_oneof![
        Just(Reduction::None),
        Just(Reduction::Sum),
        Just(Reduction::Mean)
    ]
}

/// (n, k, logits, class ids).
fn batch(max_k: usize) -> impl Strategy<Value = (usize, usize, Vec<f32>, Vec<usize>)> {
    (1usize..6, 2usize..max_k).prop_flat_map(|(n, k)| {
        (
            Just(n),
            Just(k),
            prop::collection::vec(-8.0f32..8.0, n * k),
            prop::collection::vec(0..k, n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn cross_entropy_gradient_is_finite_difference(
        (n, k, logits, ids) in batch(40),
        alpha in 0.0f32..=1.0,
        exclude in any::<bool>(),
        weighted in any::<bool>(),
        ignore_first in any::<bool>(),
        reduction in reduction(),
        wseed in prop::collection::vec(0.1f32..3.0, 40),
    ) {
        let convention = if exclude { Convention::ExcludeTrue } else { Convention::Uniform };
        let weights: Vec<f32> = if weighted { wseed[..k].to_vec() } else { vec![1.0; k] };
        let mut targets: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        if ignore_first && n > 1 {
            targets[0] = -100;
        }
        let mut ce = CrossEntropy::new(k).with_smoothing(alpha).with_convention(convention)
            .with_ignore_index(-100).with_reduction(reduction);
        if weighted {
            ce = ce.with_weights(weights.clone());
        }
        let mut grad = vec![0.0f32; n * k];
        let loss = ce.forward_backward(&logits, &targets, &mut grad).unwrap();

        // Dense targets from the definition of each convention.
        let a = f64::from(alpha);
        let mut q = vec![0.0f64; n * k];
        let mut denom = 0.0;
        for (row, &t) in targets.iter().enumerate() {
            if t < 0 { continue; }
            denom += f64::from(weights[t as usize]);
            for j in 0..k {
                q[row * k + j] = match convention {
                    Convention::Uniform => (if j == t as usize { 1.0 - a } else { 0.0 }) + a / k as f64,
                    Convention::ExcludeTrue => if j == t as usize { 1.0 - a } else { a / (k - 1) as f64 },
                };
            }
        }
        let w: Vec<f64> = weights.iter().map(|&v| f64::from(v)).collect();
        let x: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        let f = |x: &[f64]| reduce(&soft_ce_rows(x, &q, &w, k), reduction, denom);
        let want = f(&x);
        prop_assert!((sum_of(&loss) - want).abs() <= 1e-5 * want.abs().max(1e-3), "{} vs {want}", sum_of(&loss));
        assert_grad_close(&grad, &finite_diff(&x, f))?;
    }

    #[test]
    fn soft_cross_entropy_gradient_is_finite_difference(
        (n, k, logits, _ids) in batch(20),
        raw in prop::collection::vec(0.0f64..1.0, 100),
        alpha in 0.0f32..=1.0,
        weighted in any::<bool>(),
        reduction in reduction(),
    ) {
        let mut probs = vec![0.0f32; n * k];
        for row in 0..n {
            let r = &raw[row * k % 80..row * k % 80 + k];
            let s: f64 = r.iter().sum::<f64>() + 1e-9;
            for j in 0..k {
                probs[row * k + j] = (r[j] / s) as f32;
            }
        }
        let weights: Vec<f32> = (0..k).map(|j| if weighted { 0.5 + j as f32 * 0.25 } else { 1.0 }).collect();
        let mut ce = SoftCrossEntropy::new(k).with_smoothing(alpha).with_reduction(reduction);
        if weighted {
            ce = ce.with_weights(weights.clone());
        }
        let mut grad = vec![0.0f32; n * k];
        let loss = ce.forward_backward(&logits, &probs, &mut grad).unwrap();
        let a = f64::from(alpha);
        let q: Vec<f64> = probs.iter().map(|&p| (1.0 - a) * f64::from(p) + a / k as f64).collect();
        let w: Vec<f64> = weights.iter().map(|&v| f64::from(v)).collect();
        let x: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        let f = |x: &[f64]| reduce(&soft_ce_rows(x, &q, &w, k), reduction, n as f64);
        let want = f(&x);
        prop_assert!((sum_of(&loss) - want).abs() <= 1e-5 * want.abs().max(1e-3));
        assert_grad_close(&grad, &finite_diff(&x, f))?;
    }

    #[test]
    fn binary_cross_entropy_gradient_is_finite_difference(
        (n, l, logits, _ids) in batch(8),
        bits in prop::collection::vec(any::<bool>(), 40),
        alpha in 0.0f32..=1.0,
        over_labels in any::<bool>(),
        pos_weighted in any::<bool>(),
        reduction in reduction(),
    ) {
        let y: Vec<f32> = (0..n * l).map(|i| f32::from(u8::from(bits[i % 40]))).collect();
        let pw: Vec<f32> = (0..l).map(|j| if pos_weighted { 0.5 + j as f32 } else { 1.0 }).collect();
        let conv = if over_labels { BinaryConvention::OverLabels } else { BinaryConvention::TowardHalf };
        let bce = BinaryCrossEntropy::new(l).with_smoothing(alpha).with_convention(conv)
            .with_pos_weight(pw.clone()).with_reduction(reduction);
        let mut grad = vec![0.0f32; n * l];
        let loss = bce.forward_backward(&logits, &y, &mut grad).unwrap();
        let a = f64::from(alpha);
        let prior = if over_labels { 1.0 / l as f64 } else { 0.5 };
        let x: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        let f = |x: &[f64]| {
            let rows: Vec<f64> = x.iter().enumerate().map(|(i, &xi)| {
                let q = f64::from(y[i]) * (1.0 - a) + a * prior;
                let sig = 1.0 / (1.0 + (-xi).exp());
                -(f64::from(pw[i % l]) * q * sig.ln() + (1.0 - q) * (1.0 - sig).ln())
            }).collect();
            reduce(&rows, reduction, (n * l) as f64)
        };
        let want = f(&x);
        prop_assert!((sum_of(&loss) - want).abs() <= 1e-5 * want.abs().max(1e-3));
        assert_grad_close(&grad, &finite_diff(&x, f))?;
    }

    #[test]
    fn confidence_penalty_gradient_is_finite_difference(
        (n, k, logits, _ids) in batch(12),
        beta in 0.0f32..2.0,
        threshold in prop::option::of(0.0f32..2.0),
        reduction in reduction(),
    ) {
        let mut pen = ConfidencePenalty::new(beta).with_reduction(reduction);
        if let Some(t) = threshold {
            pen = pen.with_threshold(t);
        }
        let mut grad = vec![0.0f32; n * k];
        let loss = pen.forward_backward(&logits, k, &mut grad).unwrap();
        let x: Vec<f64> = logits.iter().map(|&v| f64::from(v)).collect();
        let b = f64::from(beta);
        let entropy = |r: &[f64]| -> f64 { log_softmax(r).iter().map(|lp| -lp.exp() * lp).sum() };
        let f = |x: &[f64]| {
            let rows: Vec<f64> = x.chunks(k).map(|r| match threshold {
                None => -b * entropy(r),
                Some(t) => b * (f64::from(t) - entropy(r)).max(0.0),
            }).collect();
            reduce(&rows, reduction, n as f64)
        };
        // The hinge has a kink at H = Γ: skip draws within reach of the finite-difference step.
        if let Some(t) = threshold {
            for r in x.chunks(k) {
                prop_assume!((entropy(r) - f64::from(t)).abs() > 1e-3);
            }
        }
        let want = f(&x);
        prop_assert!((sum_of(&loss) - want).abs() <= 1e-5 * want.abs().max(1e-3));
        assert_grad_close(&grad, &finite_diff(&x, f))?;
        // Added to a gradient, it adds.
        let mut acc = vec![1.0f32; n * k];
        pen.forward_backward_add(&logits, k, &mut acc).unwrap();
        for (a, g) in acc.iter().zip(&grad) {
            prop_assert!((a - 1.0 - g).abs() <= 1e-6);
        }
    }

    #[test]
    fn cross_entropy_is_shift_invariant(
        (n, k, logits, ids) in batch(30),
        alpha in 0.0f32..=1.0,
        exclude in any::<bool>(),
        shift in -50.0f32..50.0,
    ) {
        let convention = if exclude { Convention::ExcludeTrue } else { Convention::Uniform };
        let targets: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        let ce = CrossEntropy::new(k).with_smoothing(alpha).with_convention(convention);
        let shifted: Vec<f32> = logits.iter().map(|v| v + shift).collect();
        let (mut g1, mut g2) = (vec![0.0; n * k], vec![0.0; n * k]);
        let l1 = sum_of(&ce.forward_backward(&logits, &targets, &mut g1).unwrap());
        let l2 = sum_of(&ce.forward_backward(&shifted, &targets, &mut g2).unwrap());
        // Shifting by c moves each logit by up to half an ulp of |x + c| ≤ 58.
        let tol = 1e-5 * l1.abs().max(1.0) + 4.0 * 58.0 * f64::from(f32::EPSILON);
        prop_assert!((l1 - l2).abs() <= tol, "{l1} vs {l2}");
        for (a, b) in g1.iter().zip(&g2) {
            prop_assert!((a - b).abs() <= 1e-5);
        }
        let pen = ConfidencePenalty::new(1.0);
        let p1 = sum_of(&pen.forward(&logits, k).unwrap());
        let p2 = sum_of(&pen.forward(&shifted, k).unwrap());
        prop_assert!((p1 - p2).abs() <= tol);
    }

    #[test]
    fn zero_smoothing_is_plain_cross_entropy((n, k, logits, ids) in batch(30)) {
        let targets: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        let plain: f64 = logits.chunks(k).zip(&ids).map(|(r, &t)| {
            let x: Vec<f64> = r.iter().map(|&v| f64::from(v)).collect();
            -log_softmax(&x)[t]
        }).sum::<f64>() / n as f64;
        for conv in [Convention::Uniform, Convention::ExcludeTrue] {
            let l = CrossEntropy::new(k).with_smoothing(0.0).with_convention(conv)
                .forward(&logits, &targets).unwrap().scalar().unwrap();
            prop_assert!((f64::from(l) - plain).abs() <= 1e-5 * plain.max(1e-3));
        }
    }

    #[test]
    fn smoothed_targets_are_distributions(
        ids in prop::collection::vec(0usize..12, 1..20),
        alpha in 0.0f32..=1.0,
        bits in prop::collection::vec(any::<bool>(), 12),
    ) {
        for conv in [Convention::Uniform, Convention::ExcludeTrue] {
            let q = smooth_class_ids(&ids, 12, alpha, conv).unwrap();
            for row in q.chunks(12) {
                prop_assert!(row.iter().all(|&v| v >= 0.0));
                let s: f64 = row.iter().map(|&v| f64::from(v)).sum();
                prop_assert!((s - 1.0).abs() < 1e-6, "row sums to {s}");
            }
            // A smoothed distribution smooths again into a distribution.
            let again = smooth_probabilities(&q, 12, alpha).unwrap();
            for row in again.chunks(12) {
                let s: f64 = row.iter().map(|&v| f64::from(v)).sum();
                prop_assert!((s - 1.0).abs() < 1e-5 && row.iter().all(|&v| v >= 0.0));
            }
        }
        let y: Vec<f32> = bits.iter().map(|&b| f32::from(u8::from(b))).collect();
        for conv in [BinaryConvention::TowardHalf, BinaryConvention::OverLabels] {
            let s = smooth_binary(&y, 4, alpha, conv).unwrap();
            prop_assert!(s.iter().all(|&v| (0.0..=1.0).contains(&v)));
        }
    }

    #[test]
    fn converted_factors_give_the_same_targets(alpha in 0.0f64..=1.0, k in 2usize..50) {
        let pairs = [
            (Convention::Uniform, Convention::ExcludeTrue),
            (Convention::ExcludeTrue, Convention::Uniform),
            (Convention::Uniform, Convention::Uniform),
        ];
        for (from, to) in pairs {
            let (on, off) = from.on_off(alpha, k).unwrap();
            match from.convert(alpha, k, to) {
                Ok(b) => {
                    let (on2, off2) = to.on_off(b, k).unwrap();
                    prop_assert!((on - on2).abs() < 1e-12 && (off - off2).abs() < 1e-12);
                    // And back.
                    let back = to.convert(b, k, from).unwrap();
                    prop_assert!((back - alpha).abs() < 1e-12);
                }
                // Only an exclude-true factor whose off-target mass exceeds the uniform
                // distribution's has no uniform equivalent.
                Err(_) => prop_assert!(
                    from == Convention::ExcludeTrue && off > 1.0 / k as f64,
                    "{from:?} {alpha} k={k}"
                ),
            }
        }
    }

    #[test]
    fn smoothed_cross_entropy_is_at_least_target_entropy(
        (_n, k, logits, ids) in batch(30),
        alpha in 0.0f32..=1.0,
        exclude in any::<bool>(),
    ) {
        let convention = if exclude { Convention::ExcludeTrue } else { Convention::Uniform };
        let targets: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        let rows = CrossEntropy::new(k).with_smoothing(alpha).with_convention(convention)
            .with_reduction(Reduction::None).forward(&logits, &targets).unwrap();
        let q = smooth_class_ids(&ids, k, alpha, convention).unwrap();
        for (row, &l) in rows.as_slice().iter().enumerate() {
            let h: f64 = q[row * k..(row + 1) * k].iter()
                .filter(|&&v| v > 0.0).map(|&v| -f64::from(v) * f64::from(v).ln()).sum();
            prop_assert!(f64::from(l) >= h - 1e-5 * h.max(1.0), "row {row}: {l} < entropy {h}");
        }
    }
}

/// The parallel path (large batches) gives the same values as row-by-row evaluation.
#[test]
fn large_batches_agree_with_small_ones() {
    let (n, k) = (300, 1000);
    let logits: Vec<f32> = (0..n * k)
        .map(|i| ((i * 2_654_435_761usize) % 10_007) as f32 / 1000.0 - 5.0)
        .collect();
    let targets: Vec<i64> = (0..n).map(|i| ((i * 31) % k) as i64).collect();
    let ce = CrossEntropy::new(k)
        .with_smoothing(0.1)
        .with_reduction(Reduction::None);
    let mut grad = vec![0.0; n * k];
    let all = ce.forward_backward(&logits, &targets, &mut grad).unwrap();
    for row in [0usize, 17, 299] {
        let mut g = vec![0.0; k];
        let one = ce
            .forward_backward(
                &logits[row * k..(row + 1) * k],
                &targets[row..row + 1],
                &mut g,
            )
            .unwrap();
        assert_eq!(one.as_slice()[0], all.as_slice()[row]);
        assert_eq!(&g[..], &grad[row * k..(row + 1) * k]);
    }
}

/// Masked classes (−inf logits) get probability 0; the loss stays finite without smoothing and
/// matches the loss over the unmasked classes alone.
#[test]
fn masked_classes() {
    let logits = [1.0, f32::NEG_INFINITY, 0.5, f32::NEG_INFINITY];
    let unmasked = [1.0, 0.5];
    let ce = CrossEntropy::new(4);
    let mut grad = [0.0; 4];
    let l = ce.forward_backward(&logits, &[2], &mut grad).unwrap();
    let l2 = CrossEntropy::new(2).forward(&unmasked, &[1]).unwrap();
    assert!((l.scalar().unwrap() - l2.scalar().unwrap()).abs() < 1e-6);
    assert_eq!(grad[1], 0.0);
    assert_eq!(grad[3], 0.0);
    let smoothed = CrossEntropy::new(4)
        .with_smoothing(0.1)
        .forward(&logits, &[2])
        .unwrap();
    assert_eq!(smoothed.scalar(), Some(f32::INFINITY));
    // Weight 0 on the masked classes keeps a smoothed loss finite.
    let weighted = CrossEntropy::new(4)
        .with_smoothing(0.1)
        .with_weights(vec![1.0, 0.0, 1.0, 0.0])
        .forward(&logits, &[2])
        .unwrap();
    assert!(weighted.scalar().unwrap().is_finite());
}

/// Logits of any finite size: no overflow, and the loss is the exact margin.
#[test]
fn huge_logits_are_stable() {
    let logits = [1.0e38f32, -1.0e38, 0.0];
    let l = CrossEntropy::new(3).forward(&logits, &[1]).unwrap();
    assert_eq!(l.scalar(), Some(2.0e38));
    let l = CrossEntropy::new(3).forward(&logits, &[0]).unwrap();
    assert_eq!(l.scalar(), Some(0.0));
}
