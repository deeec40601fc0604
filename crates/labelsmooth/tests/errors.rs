//! Each kind of bad input gets one clear error naming what and where; none panics.

use labelsmooth::Error;
use labelsmooth::calibration::{
    Binning, Norm, accuracy, brier_score, calibration_curve, calibration_error, fit_temperature,
    negative_log_likelihood, reliability_bins,
};
use labelsmooth::loss::{
    BinaryCrossEntropy, ConfidencePenalty, CrossEntropy, Reduction, SoftCrossEntropy,
};
use labelsmooth::split::{stratified_k_fold, stratified_split};
use labelsmooth::targets::{
    BinaryConvention, Convention, smooth_binary, smooth_class_ids, smooth_probabilities,
};

const LOGITS: [f32; 6] = [1.0, 2.0, 3.0, 0.5, 0.1, -1.0];

#[test]
fn smoothing_factor_outside_unit_interval_or_nan() {
    for alpha in [-0.1f32, 1.5, f32::NAN, f32::INFINITY] {
        let e = CrossEntropy::new(3)
            .with_smoothing(alpha)
            .forward(&LOGITS, &[0, 1])
            .unwrap_err();
        assert!(matches!(e, Error::InvalidSmoothing { .. }), "{e}");
        assert!(e.to_string().contains("outside [0, 1]"), "{e}");
        assert!(smooth_class_ids(&[0], 3, alpha, Convention::Uniform).is_err());
        assert!(smooth_probabilities(&[1.0, 0.0], 2, alpha).is_err());
        assert!(smooth_binary(&[1.0], 1, alpha, BinaryConvention::TowardHalf).is_err());
        assert!(
            SoftCrossEntropy::new(3)
                .with_smoothing(alpha)
                .forward(&LOGITS, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
                .is_err()
        );
        assert!(
            BinaryCrossEntropy::new(3)
                .with_smoothing(alpha)
                .forward(&LOGITS, &[1.0; 6])
                .is_err()
        );
    }
    assert_eq!(
        CrossEntropy::new(3)
            .with_smoothing(1.5)
            .forward(&LOGITS, &[0, 1])
            .unwrap_err()
            .to_string(),
        "smoothing factor 1.5 is outside [0, 1]"
    );
}

#[test]
fn zero_classes() {
    let e = CrossEntropy::new(0).forward(&[], &[]).unwrap_err();
    assert_eq!(e, Error::NoClasses);
    assert!(smooth_class_ids(&[], 0, 0.1, Convention::Uniform).is_err());
    assert!(SoftCrossEntropy::new(0).forward(&[], &[]).is_err());
    assert!(accuracy(&[], &[], 0).is_err());
}

#[test]
fn exclude_true_needs_two_classes() {
    let e = CrossEntropy::new(1)
        .with_convention(Convention::ExcludeTrue)
        .forward(&[1.0], &[0])
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "exclude-true smoothing needs at least 2 classes, got 1"
    );
    assert!(smooth_class_ids(&[0], 1, 0.1, Convention::ExcludeTrue).is_err());
    // Uniform works with one class (the loss is 0).
    let l = CrossEntropy::new(1)
        .with_smoothing(0.3)
        .forward(&[4.0], &[0])
        .unwrap();
    assert_eq!(l.scalar(), Some(0.0));
}

#[test]
fn class_id_out_of_range() {
    let e = CrossEntropy::new(3).forward(&LOGITS, &[0, 3]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "row 1: class id 3 is out of range for 3 classes"
    );
    // Negative ids are errors unless they are the ignore index.
    let e = CrossEntropy::new(3).forward(&LOGITS, &[-1, 0]).unwrap_err();
    assert_eq!(
        e,
        Error::ClassOutOfRange {
            row: 0,
            class: -1,
            k: 3
        }
    );
    assert!(
        CrossEntropy::new(3)
            .with_ignore_index(-1)
            .forward(&LOGITS, &[-1, 0])
            .is_ok()
    );
    assert!(smooth_class_ids(&[5], 3, 0.1, Convention::Uniform).is_err());
    let e = accuracy(&LOGITS, &[0, 9], 3).unwrap_err();
    assert!(e.to_string().starts_with("row 1: class id 9"), "{e}");
    assert!(fit_temperature(&LOGITS, &[0, 3], 3).is_err());
    assert!(brier_score(&[0.5, 0.5], &[2], 2).is_err());
}

#[test]
fn length_mismatches() {
    let ce = CrossEntropy::new(3);
    let e = ce.forward(&LOGITS, &[0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "length mismatch: targets (one per row of logits) has length 1, expected 2"
    );
    let e = ce.forward(&LOGITS[..5], &[0, 1]).unwrap_err();
    assert!(
        e.to_string().contains("logits (n * k values) has length 5"),
        "{e}"
    );
    let e = ce
        .clone()
        .with_weights(vec![1.0, 1.0])
        .forward(&LOGITS, &[0, 1])
        .unwrap_err();
    assert!(e.to_string().contains("class weights"), "{e}");
    let mut short = [0.0f32; 5];
    let e = ce
        .forward_backward(&LOGITS, &[0, 1], &mut short)
        .unwrap_err();
    assert!(e.to_string().contains("gradient buffer"), "{e}");
    assert!(
        SoftCrossEntropy::new(3)
            .forward(&LOGITS, &[1.0, 0.0, 0.0])
            .is_err()
    );
    assert!(
        BinaryCrossEntropy::new(3)
            .forward(&LOGITS, &[1.0; 5])
            .is_err()
    );
    assert!(
        BinaryCrossEntropy::new(3)
            .with_pos_weight(vec![1.0])
            .forward(&LOGITS, &[1.0; 6])
            .is_err()
    );
    assert!(calibration_curve(&[0, 1], &[0.5], 5, Binning::Uniform).is_err());
    assert!(reliability_bins(&[0.5, 0.5], &[0, 1], 2, 5, Binning::Uniform).is_err());
    assert!(ConfidencePenalty::new(1.0).forward(&LOGITS, 4).is_err());
}

#[test]
fn bad_class_weights() {
    for (w, class) in [(-1.0f32, 1usize), (f32::NAN, 1), (f32::INFINITY, 1)] {
        let e = CrossEntropy::new(3)
            .with_weights(vec![1.0, w, 1.0])
            .forward(&LOGITS, &[0, 1])
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidWeight { class: c, .. } if c == class),
            "{e}"
        );
        assert!(e.to_string().starts_with("class weight 1 is"), "{e}");
        assert!(
            SoftCrossEntropy::new(3)
                .with_weights(vec![1.0, w, 1.0])
                .forward(&LOGITS, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
                .is_err()
        );
    }
    assert!(
        BinaryCrossEntropy::new(3)
            .with_pos_weight(vec![1.0, -2.0, 1.0])
            .forward(&LOGITS, &[1.0; 6])
            .is_err()
    );
}

#[test]
fn probability_rows_must_sum_to_one() {
    let e = SoftCrossEntropy::new(3)
        .forward(&LOGITS, &[1.0, 0.0, 0.0, 0.5, 0.4, 0.0])
        .unwrap_err();
    assert!(matches!(e, Error::RowNotNormalized { row: 1, .. }), "{e}");
    assert!(
        e.to_string().starts_with("row 1: probabilities sum to 0.9"),
        "{e}"
    );
    let e = SoftCrossEntropy::new(3)
        .forward(&LOGITS, &[1.5, -0.5, 0.0, 0.0, 1.0, 0.0])
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidProbability {
                row: 0,
                column: 0,
                ..
            }
        ),
        "{e}"
    );
    // Within 1e-4 is accepted.
    assert!(
        SoftCrossEntropy::new(3)
            .forward(&LOGITS, &[1.0, 0.0, 0.00005, 0.0, 1.0, 0.0])
            .is_ok()
    );
    assert!(smooth_probabilities(&[0.2, 0.2], 2, 0.1).is_err());
}

#[test]
fn nan_logits_name_the_first_row() {
    let mut logits = LOGITS;
    logits[4] = f32::NAN;
    let e = CrossEntropy::new(3).forward(&logits, &[0, 1]).unwrap_err();
    assert_eq!(e.to_string(), "row 1, class 1: logit is NaN");
    let mut grad = [0.0; 6];
    assert!(
        CrossEntropy::new(3)
            .forward_backward(&logits, &[0, 1], &mut grad)
            .is_err()
    );
    // A NaN in a row that has the NaN away from the target, and +inf, are both named.
    logits[4] = f32::INFINITY;
    let e = CrossEntropy::new(3).forward(&logits, &[0, 0]).unwrap_err();
    assert_eq!(e.to_string(), "row 1, class 1: logit is inf");
    // A −inf target logit has no finite loss.
    let e = CrossEntropy::new(3)
        .forward(&[f32::NEG_INFINITY, 0.0, 0.0], &[0])
        .unwrap_err();
    assert!(
        e.to_string().contains("target class needs a finite logit"),
        "{e}"
    );
    assert!(
        SoftCrossEntropy::new(3)
            .forward(&logits, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
            .is_err()
    );
    let e = BinaryCrossEntropy::new(3)
        .forward(&logits, &[1.0; 6])
        .unwrap_err();
    assert!(e.to_string().starts_with("row 1, class 1"), "{e}");
    assert!(ConfidencePenalty::new(1.0).forward(&logits, 3).is_err());
    assert!(fit_temperature(&logits, &[0, 1], 3).is_err());
    assert!(accuracy(&[f32::NAN, 1.0], &[0], 2).is_err());
    // Large batches go through the parallel path: the first bad row is still the one named.
    let mut big = vec![0.5f32; 400 * 500];
    big[123 * 500 + 7] = f32::NAN;
    big[300 * 500 + 1] = f32::NAN;
    let targets = vec![0i64; 400];
    let e = CrossEntropy::new(500).forward(&big, &targets).unwrap_err();
    assert_eq!(e.to_string(), "row 123, class 7: logit is NaN");
}

#[test]
fn zero_bins() {
    assert_eq!(
        calibration_curve(&[0, 1], &[0.2, 0.8], 0, Binning::Uniform).unwrap_err(),
        Error::NoBins
    );
    assert_eq!(
        calibration_error(&[0.5, 0.5], &[0], 2, 0, Norm::L1, Binning::Uniform).unwrap_err(),
        Error::NoBins
    );
}

#[test]
fn empty_input_where_a_mean_is_asked() {
    let e = CrossEntropy::new(3).forward(&[], &[]).unwrap_err();
    assert!(matches!(e, Error::Empty { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "the batch is empty: a mean loss needs at least one row"
    );
    // Sum and none of an empty batch are well defined.
    assert!(
        CrossEntropy::new(3)
            .with_reduction(Reduction::Sum)
            .forward(&[], &[])
            .is_ok()
    );
    // Every row ignored: a mean over nothing.
    let e = CrossEntropy::new(3)
        .with_ignore_index(-100)
        .forward(&LOGITS, &[-100, -100])
        .unwrap_err();
    assert!(matches!(e, Error::Empty { .. }), "{e}");
    assert!(SoftCrossEntropy::new(3).forward(&[], &[]).is_err());
    assert!(BinaryCrossEntropy::new(2).forward(&[], &[]).is_err());
    assert!(ConfidencePenalty::new(1.0).forward(&[], 3).is_err());
    assert!(calibration_curve(&[], &[], 5, Binning::Uniform).is_err());
    assert!(calibration_error(&[], &[], 2, 5, Norm::L1, Binning::Uniform).is_err());
    assert!(brier_score(&[], &[], 2).is_err());
    assert!(negative_log_likelihood(&[], &[], 2).is_err());
    assert!(accuracy(&[], &[], 2).is_err());
    assert!(fit_temperature(&[], &[], 2).is_err());
}

#[test]
fn other_bad_inputs() {
    // Binary labels must be 0/1 for smoothing, targets in [0, 1] for the loss.
    assert!(smooth_binary(&[0.5], 1, 0.1, BinaryConvention::TowardHalf).is_err());
    let e = BinaryCrossEntropy::new(3)
        .forward(&LOGITS, &[1.0, 0.0, 2.0, 0.0, 1.0, 0.0])
        .unwrap_err();
    assert!(e.to_string().starts_with("row 0, column 2: label 2"), "{e}");
    assert!(calibration_curve(&[0, 2], &[0.2, 0.8], 5, Binning::Uniform).is_err());
    assert!(calibration_curve(&[0, 1], &[0.2, 1.8], 5, Binning::Uniform).is_err());
    assert!(calibration_error(&[0.5, 0.6], &[0], 2, 5, Norm::L1, Binning::Uniform).is_ok());
    assert!(calibration_error(&[f32::NAN, 0.6], &[0], 2, 5, Norm::L1, Binning::Uniform).is_err());
    assert!(ConfidencePenalty::new(-1.0).forward(&LOGITS, 3).is_err());
    assert!(stratified_k_fold(&[0, 1, 0], 1, 0).is_err());
    assert!(stratified_k_fold(&[0, 1], 3, 0).is_err());
    assert!(stratified_split(&[0, 1, 0, 1], 1.0, 0).is_err());
    assert!(stratified_split(&[0, 1, 0, 1], f64::NAN, 0).is_err());
    assert!("nope".parse::<Convention>().is_err());
    assert!("nope".parse::<Reduction>().is_err());
}
