//! Calibration semantics and splits, checked against their definitions.

use labelsmooth::calibration::{
    Binning, Norm, apply_temperature, brier_score, calibration_error, error_of_bins,
    fit_temperature, fit_temperature_bounded, negative_log_likelihood, reliability_bins, softmax,
};
use labelsmooth::split::{stratified_k_fold, stratified_split};

/// Two-class probabilities with the given top-label confidences, predicting class 0.
fn probs_with_confidence(conf: &[f32]) -> Vec<f32> {
    conf.iter().flat_map(|&c| [c, 1.0 - c]).collect()
}

#[test]
fn confidence_zero_and_one_land_in_first_and_last_bins() {
    // With three classes a top-label confidence can be 1/3; exactly 1.0 goes to the last bin.
    let probs = [1.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.95, 0.05, 0.0];
    let bins = reliability_bins(&probs, &[0, 1, 0], 3, 10, Binning::Uniform).unwrap();
    assert_eq!(bins.len(), 10);
    assert_eq!(bins[9].count, 2);
    assert_eq!(bins[5].count, 1);
    assert!((bins[9].mean_confidence - 0.975).abs() < 1e-7);
    assert_eq!(bins[9].accuracy, 1.0);
    assert_eq!(bins[5].accuracy, 0.0); // argmax is the first 0.5, class 0; label 1
    // Binary top-label confidences near 0 cannot occur, but the bins still cover [0, 1].
    assert_eq!(bins[0].lower, 0.0);
    assert_eq!(bins[9].upper, 1.0);
}

#[test]
fn calibration_error_norms_from_definition() {
    // Bin [0.6, 0.7): 2 samples at 0.65, one right → gap 0.15; bin [0.9, 1]: 2 at 0.95, both right → gap 0.05.
    let probs = probs_with_confidence(&[0.65, 0.65, 0.95, 0.95]);
    let labels = [0, 1, 0, 0];
    let l1 = calibration_error(&probs, &labels, 2, 10, Norm::L1, Binning::Uniform).unwrap();
    let l2 = calibration_error(&probs, &labels, 2, 10, Norm::L2, Binning::Uniform).unwrap();
    let max = calibration_error(&probs, &labels, 2, 10, Norm::Max, Binning::Uniform).unwrap();
    assert!((l1 - (0.5 * 0.15 + 0.5 * 0.05)).abs() < 1e-7, "{l1}");
    assert!(
        (l2 - (0.5f64 * 0.15 * 0.15 + 0.5 * 0.05 * 0.05).sqrt()).abs() < 1e-7,
        "{l2}"
    );
    assert!((max - 0.15).abs() < 1e-7, "{max}");
    assert!(l1 <= l2 && l2 <= max);
}

#[test]
fn equal_mass_bins_hold_equal_counts() {
    let conf: Vec<f32> = (0..103).map(|i| 0.5 + 0.5 * (i as f32 / 103.0)).collect();
    let probs = probs_with_confidence(&conf);
    let labels = vec![0usize; 103];
    let bins = reliability_bins(&probs, &labels, 2, 10, Binning::Quantile).unwrap();
    let counts: Vec<usize> = bins.iter().map(|b| b.count).collect();
    assert_eq!(counts, vec![11, 11, 11, 10, 10, 10, 10, 10, 10, 10]);
    for w in bins.windows(2) {
        assert!(w[0].upper <= w[1].lower);
    }
    // All correct: the error is the mean gap 1 − confidence.
    let ece = error_of_bins(&bins, Norm::L1).unwrap();
    let want: f64 = conf.iter().map(|&c| 1.0 - f64::from(c)).sum::<f64>() / 103.0;
    assert!((ece - want).abs() < 1e-6);
}

#[test]
fn brier_and_nll_from_definition() {
    let probs = [0.7, 0.2, 0.1, 0.1, 0.1, 0.8];
    let b = brier_score(&probs, &[0, 1], 3).unwrap();
    let want = ((0.09 + 0.04 + 0.01) + (0.01 + 0.81 + 0.64)) / 2.0;
    assert!((b - want).abs() < 1e-6);
    let nll = negative_log_likelihood(&probs, &[0, 1], 3).unwrap();
    assert!((nll - (-(0.7f64.ln()) - 0.1f64.ln()) / 2.0).abs() < 1e-6);
}

#[test]
fn temperature_fit_scales_with_the_logits_and_respects_bounds() {
    let logits: Vec<f32> = (0..60)
        .map(|i| ((i * 37) % 11) as f32 * 0.7 - 3.0)
        .collect();
    // The argmax is right three times in four: an optimum inside the bounds.
    let labels: Vec<usize> = logits
        .chunks(3)
        .enumerate()
        .map(|(i, r)| {
            let top = labelsmooth::calibration::argmax(r);
            if i % 4 == 0 { (top + 1) % 3 } else { top }
        })
        .collect();
    let fit = fit_temperature(&logits, &labels, 3).unwrap();
    let doubled: Vec<f32> = logits.iter().map(|v| v * 2.0).collect();
    let fit2 = fit_temperature(&doubled, &labels, 3).unwrap();
    assert!((fit2.temperature / fit.temperature - 2.0).abs() < 1e-6);
    assert!((fit2.nll_after - fit.nll_after).abs() < 1e-9);
    // The NLL at the fitted T is below its neighbours'.
    let nll_at = |t: f64| {
        let p = softmax(&apply_temperature(&logits, t).unwrap(), 3).unwrap();
        negative_log_likelihood(&p, &labels, 3).unwrap()
    };
    assert!(nll_at(fit.temperature) <= nll_at(fit.temperature * 1.01) + 1e-9);
    assert!(nll_at(fit.temperature) <= nll_at(fit.temperature * 0.99) + 1e-9);
    // Always right: the NLL falls as T → 0, so the fit stops at the lower bound.
    let sure = fit_temperature_bounded(&[2.0, 0.0, 0.0, 2.0], &[0, 1], 2, 0.05, 10.0).unwrap();
    assert_eq!(sure.temperature, 0.05);
    assert!(fit_temperature_bounded(&logits, &labels, 3, 2.0, 1.0).is_err());
}

#[test]
fn k_fold_partitions_and_stratifies() {
    let labels: Vec<usize> = (0..103)
        .map(|i| if i % 10 < 7 { 0 } else { i % 3 + 1 })
        .collect();
    let folds = stratified_k_fold(&labels, 5, 11).unwrap();
    let mut seen = vec![0; labels.len()];
    for f in &folds {
        for &i in &f.valid {
            seen[i] += 1;
        }
        assert_eq!(f.train.len() + f.valid.len(), labels.len());
        assert!(f.train.iter().all(|i| !f.valid.contains(i)));
        assert!(f.valid.windows(2).all(|w| w[0] < w[1]));
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "validation parts partition the rows"
    );
    let sizes: Vec<usize> = folds.iter().map(|f| f.valid.len()).collect();
    assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    for class in 0..4 {
        let per: Vec<usize> = folds
            .iter()
            .map(|f| f.valid.iter().filter(|&&i| labels[i] == class).count())
            .collect();
        assert!(
            per.iter().max().unwrap() - per.iter().min().unwrap() <= 1,
            "class {class}: {per:?}"
        );
    }
    assert_eq!(folds, stratified_k_fold(&labels, 5, 11).unwrap());
    assert_ne!(folds, stratified_k_fold(&labels, 5, 12).unwrap());
}

#[test]
fn train_valid_split_is_stratified_and_seeded() {
    let labels: Vec<usize> = (0..200).map(|i| usize::from(i % 4 == 0)).collect();
    let s = stratified_split(&labels, 0.2, 3).unwrap();
    assert_eq!(s.valid.len(), 40);
    assert_eq!(s.valid.iter().filter(|&&i| labels[i] == 1).count(), 10);
    assert_eq!(s.train.len() + s.valid.len(), 200);
    assert_eq!(s, stratified_split(&labels, 0.2, 3).unwrap());
    assert_ne!(s, stratified_split(&labels, 0.2, 4).unwrap());
}

#[test]
fn binary_calibration_error_bins_the_positive_probability() {
    use labelsmooth::calibration::{
        Binning, Norm, binary_brier_score, binary_reliability_bins, error_of_bins,
    };
    // Deterministic pseudo-random P(1) and labels; the definition written out with 10 bins.
    let n = 500;
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f64) / f64::from(1u32 << 31)
    };
    let p1: Vec<f32> = (0..n).map(|_| next() as f32).collect();
    let labels: Vec<usize> = p1
        .iter()
        .map(|&p| usize::from(next() < f64::from(p).powf(1.5)))
        .collect();
    let probs: Vec<f32> = p1.iter().flat_map(|&p| [1.0 - p, p]).collect();
    let b = 10;
    let (mut conf, mut pos, mut count) = (vec![0.0f64; b], vec![0.0f64; b], vec![0usize; b]);
    for (&p, &y) in p1.iter().zip(&labels) {
        let i = ((f64::from(p) * b as f64) as usize).min(b - 1);
        conf[i] += f64::from(p);
        pos[i] += y as f64;
        count[i] += 1;
    }
    let want: f64 = (0..b)
        .filter(|&i| count[i] > 0)
        .map(|i| (conf[i] - pos[i]).abs() / n as f64)
        .sum();
    let bins = binary_reliability_bins(&probs, &labels, b, Binning::Uniform).unwrap();
    let got = error_of_bins(&bins, Norm::L1).unwrap();
    assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    let brier: f64 = p1
        .iter()
        .zip(&labels)
        .map(|(&p, &y)| (f64::from(p) - y as f64).powi(2))
        .sum::<f64>()
        / n as f64;
    assert!((binary_brier_score(&probs, &labels).unwrap() - brier).abs() < 1e-9);
    assert!(binary_reliability_bins(&probs[..4], &[0, 2], b, Binning::Uniform).is_err());
}
