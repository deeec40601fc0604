//! `labelsmooth demo`: the whole story on the bundled digits, with figures and one report.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use labelsmooth::calibration::{
    Binning, Norm, apply_temperature, error_of_bins, fit_temperature, reliability_bins, softmax,
};
use labelsmooth::split::{stratified_k_fold, stratified_split};
use labelsmooth_burn::train::{
    EpochMetrics, Evaluation, evaluation_of, predict_features, predict_logits, train,
};
use serde::Serialize;

use crate::experiment::{ModelKind, TrialSpec, prepare};
use crate::plots;
use crate::report::{Page, Section, Table, f4, render, summary_csv, summary_table, write_atomic};
use crate::run::{
    SummaryRow, apply_regularizers, best_of, compare_row, cross_validate, mean_std, writable_dir,
    write_json,
};

/// `labelsmooth demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for results.json, the CSV tables, figures/ and report.html.
    #[arg(long, default_value = "labelsmooth-demo")]
    out: PathBuf,
    /// Seed of splits, initialization and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print `{"sweep", "compare", "report"}` as JSON on stdout.
    #[arg(long)]
    json: bool,
}

const ALPHAS: [f32; 6] = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3];
const REGULARIZERS: [&str; 5] = ["none", "l2", "dropout", "smoothing", "confidence-penalty"];
const BINS: usize = 15;

/// One model of the calibration study.
#[derive(Debug, Serialize)]
struct CalibrationRow {
    model: String,
    smoothing: f32,
    temperature: f64,
    before: Evaluation,
    after: Evaluation,
    mce_before: f64,
    mce_after: f64,
    #[serde(skip)]
    history: Vec<EpochMetrics>,
    #[serde(skip)]
    test_probs: Vec<f32>,
    #[serde(skip)]
    projection: Vec<(f64, f64, usize)>,
}

fn base_spec(seed: u64) -> TrialSpec {
    TrialSpec {
        model: ModelKind::Mlp,
        train: labelsmooth_burn::train::TrainConfig {
            epochs: 30,
            seed,
            ..Default::default()
        },
        dropout: 0.0,
        vocab: 10_000,
        max_len: 40,
    }
}

/// A demo trial with one regularizer at the settings the report states.
fn regularized(name: &str, seed: u64) -> Result<TrialSpec> {
    apply_regularizers(base_spec(seed), name, 1e-4, 0.2, 0.1, 0.1)
}

/// Coordinates of `features` `[n, d]` on the plane through the templates of classes `c`
/// (Müller et al. 2019, figure 1), for the rows of those classes.
fn project(
    features: &[f32],
    d: usize,
    labels: &[usize],
    templates: &[f32],
    c: [usize; 3],
) -> Vec<(f64, f64, usize)> {
    let t = |k: usize| -> Vec<f64> {
        templates[k * d..(k + 1) * d]
            .iter()
            .map(|&v| f64::from(v))
            .collect()
    };
    let (t0, t1, t2) = (t(c[0]), t(c[1]), t(c[2]));
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
    labels
        .iter()
        .enumerate()
        .filter(|(_, y)| c.contains(y))
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

fn pick<T: Copy>(v: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&r| v[r]).collect()
}

/// Runs the demo.
pub fn demo(args: DemoArgs) -> Result<()> {
    let started = std::time::Instant::now();
    writable_dir(&args.out)?;
    let figures = args.out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    let d = labelsmooth_data::bundled::load("digits")?;
    let verbose = !args.json;
    let say = |m: String| {
        if verbose {
            eprintln!("{m}");
        }
    };

    // 1. Cross-validated sweep of the smoothing factor.
    let folds = stratified_k_fold(&d.labels, 3, args.seed)?;
    let mut sweep: Vec<SummaryRow> = Vec::new();
    let mut sweep_folds = Vec::new();
    for &a in &ALPHAS {
        let mut spec = base_spec(args.seed);
        spec.train.smoothing = a;
        let m = cross_validate(&d, &folds, &spec, &format!("sweep, smoothing {a}"), false)?;
        say(format!(
            "sweep: smoothing {a}: accuracy {:.4}",
            mean_std(&m.accuracy).0
        ));
        sweep_folds.push(
            serde_json::json!({"smoothing": a, "accuracy": m.accuracy, "nll": m.nll, "ece": m.ece}),
        );
        sweep.push(m.summary(a));
    }
    let best = best_of(&sweep).context("the sweep is empty")?;

    // 2. Regularizers.
    let mut compare = Vec::new();
    let mut compare_folds = Vec::new();
    for name in REGULARIZERS {
        let spec = regularized(name, args.seed)?;
        let m = cross_validate(&d, &folds, &spec, name, false)?;
        say(format!(
            "compare: {name}: accuracy {:.4}",
            mean_std(&m.accuracy).0
        ));
        compare_folds.push(serde_json::json!({"regularizer": name, "accuracy": m.accuracy, "nll": m.nll, "ece": m.ece}));
        compare.push((name.to_string(), m.summary(spec.train.smoothing)));
    }

    // 3. Calibration: train on 60%, fit the temperature on 20%, measure on the last 20%.
    let split = stratified_split(&d.labels, 0.4, args.seed)?;
    let rest_labels = pick(&d.labels, &split.valid);
    let halves = stratified_split(&rest_labels, 0.5, args.seed)?;
    let calib: Vec<usize> = halves.train.iter().map(|&i| split.valid[i]).collect();
    let test: Vec<usize> = halves.valid.iter().map(|&i| split.valid[i]).collect();
    let alpha = if best.smoothing > 0.0 {
        best.smoothing as f32
    } else {
        0.1
    };
    let k = d.n_classes();
    let (y_calib, y_test) = (pick(&d.labels, &calib), pick(&d.labels, &test));
    let mut study = Vec::new();
    for (name, a) in [
        ("no smoothing".to_string(), 0.0f32),
        (format!("smoothing {alpha}"), alpha),
    ] {
        let mut spec = base_spec(args.seed);
        spec.train.smoothing = a;
        let (model_spec, x_train, x_calib) = prepare(&d, &split.train, &calib, &spec)?;
        let (_, _, x_test) = prepare(&d, &split.train, &test, &spec)?;
        let device = labelsmooth_burn::burn::tensor::Device::flex();
        let trained = train(
            &model_spec,
            (&x_train, &pick(&d.labels, &split.train)),
            Some((&x_calib, &y_calib)),
            k,
            &spec.train,
            &device,
        )?;
        let fit = fit_temperature(&predict_logits(&trained.model, &x_calib), &y_calib, k)?;
        let test_logits = predict_logits(&trained.model, &x_test);
        let probs = softmax(&test_logits, k)?;
        let scaled = softmax(&apply_temperature(&test_logits, fit.temperature)?, k)?;
        let mce = |p: &[f32]| -> Result<f64> {
            Ok(error_of_bins(
                &reliability_bins(p, &y_test, k, BINS, Binning::Uniform)?,
                Norm::Max,
            )?)
        };
        let (features, dim) = predict_features(&trained.model, &x_test);
        let (templates, tdim) = trained.model.class_templates();
        let projection = if dim == tdim {
            project(&features, dim, &y_test, &templates, [0, 1, 2])
        } else {
            Vec::new()
        };
        say(format!("calibration: {name}: T = {:.3}", fit.temperature));
        study.push(CalibrationRow {
            model: name,
            smoothing: a,
            temperature: fit.temperature,
            before: evaluation_of(&probs, &y_test, k, BINS)?,
            after: evaluation_of(&scaled, &y_test, k, BINS)?,
            mce_before: mce(&probs)?,
            mce_after: mce(&scaled)?,
            history: trained.history,
            test_probs: probs,
            projection,
        });
    }

    // 4. Figures.
    let top = |p: &[f32]| -> Vec<f32> {
        p.chunks(k)
            .map(|r| r.iter().cloned().fold(0.0, f32::max))
            .collect()
    };
    plots::confidence_histogram(
        &figures,
        "confidence_histogram",
        &study
            .iter()
            .map(|s| (s.model.clone(), top(&s.test_probs)))
            .collect::<Vec<_>>(),
    )?;
    plots::softmax_bars(
        &figures,
        "softmax_output",
        &d.class_names,
        &study
            .iter()
            .map(|s| (s.model.clone(), s.test_probs[..k].to_vec()))
            .collect::<Vec<_>>(),
    )?;
    for (i, s) in study.iter().enumerate() {
        let bins: Vec<plots::Bin> =
            reliability_bins(&s.test_probs, &y_test, k, BINS, Binning::Uniform)?
                .into_iter()
                .map(|b| plots::Bin {
                    lower: b.lower,
                    upper: b.upper,
                    count: b.count,
                    confidence: b.mean_confidence,
                    accuracy: b.accuracy,
                })
                .collect();
        plots::reliability_diagram(
            &figures,
            &format!("reliability_{}", ["plain", "smoothed"][i]),
            &format!("Reliability, {}", s.model),
            &bins,
            s.before.ece,
        )?;
    }
    let sweep_points: Vec<(String, f64, f64)> = sweep
        .iter()
        .map(|r| (r.smoothing.to_string(), r.accuracy_mean, r.accuracy_std))
        .collect();
    plots::error_bars(
        &figures,
        "accuracy_vs_smoothing",
        (
            "Accuracy vs smoothing factor (3-fold CV, mean ± std)",
            "smoothing factor α",
            "accuracy",
        ),
        &sweep_points,
    )?;
    let compare_points: Vec<(String, f64, f64)> = compare
        .iter()
        .map(|(n, r)| (n.clone(), r.accuracy_mean, r.accuracy_std))
        .collect();
    plots::error_bars(
        &figures,
        "regularizers",
        (
            "Regularizers (3-fold CV, mean ± std)",
            "regularizer",
            "accuracy",
        ),
        &compare_points,
    )?;
    plots::curves(
        &figures,
        "training_loss",
        "Training loss per epoch",
        "mean training loss",
        &study
            .iter()
            .map(|s| {
                (
                    s.model.clone(),
                    s.history.iter().map(|h| h.train_loss).collect(),
                )
            })
            .collect::<Vec<_>>(),
    )?;
    plots::curves(
        &figures,
        "validation_nll",
        "Validation NLL per epoch",
        "NLL",
        &study
            .iter()
            .map(|s| {
                (
                    s.model.clone(),
                    s.history
                        .iter()
                        .filter_map(|h| h.valid.as_ref().map(|v| v.nll))
                        .collect(),
                )
            })
            .collect::<Vec<_>>(),
    )?;
    plots::projections(
        &figures,
        "penultimate_layer",
        &d.class_names,
        &study
            .iter()
            .map(|s| {
                (
                    format!("Penultimate layer, {}", s.model),
                    s.projection.clone(),
                )
            })
            .collect::<Vec<_>>(),
    )?;
    plots::grouped_bars(
        &figures,
        "ece_temperature",
        "ECE before and after temperature scaling",
        "ECE (15 bins)",
        &study.iter().map(|s| s.model.clone()).collect::<Vec<_>>(),
        &[
            (
                "before".to_string(),
                study.iter().map(|s| s.before.ece).collect(),
            ),
            (
                "after temperature scaling".to_string(),
                study.iter().map(|s| s.after.ece).collect(),
            ),
        ],
    )?;

    // 5. Tables, results, report.
    let sweep_keyed: Vec<(String, &SummaryRow)> =
        sweep.iter().map(|r| (r.smoothing.to_string(), r)).collect();
    let compare_keyed: Vec<(String, &SummaryRow)> =
        compare.iter().map(|(n, r)| (n.clone(), r)).collect();
    let sweep_csv = summary_csv("smoothing", &sweep_keyed);
    let compare_csv = summary_csv("regularizer", &compare_keyed);
    let mut calib_csv = String::from(
        "model,smoothing,temperature,accuracy,nll_before,nll_after,ece_before,ece_after,mce_before,mce_after,brier_before,brier_after\n",
    );
    for s in &study {
        let _ = writeln!(
            calib_csv,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            s.model,
            s.smoothing,
            s.temperature,
            s.before.accuracy,
            s.before.nll,
            s.after.nll,
            s.before.ece,
            s.after.ece,
            s.mce_before,
            s.mce_after,
            s.before.brier,
            s.after.brier
        );
    }
    write_atomic(&args.out.join("sweep.csv"), sweep_csv.as_bytes())?;
    write_atomic(&args.out.join("compare.csv"), compare_csv.as_bytes())?;
    write_atomic(&args.out.join("calibration.csv"), calib_csv.as_bytes())?;
    let sweep_json = serde_json::json!({"summary": sweep, "best": best});
    let compare_rows: Vec<serde_json::Value> =
        compare.iter().map(|(n, r)| compare_row(n, r)).collect();
    let compare_best = compare
        .iter()
        .max_by(|a, b| a.1.accuracy_mean.total_cmp(&b.1.accuracy_mean))
        .map(|(n, r)| compare_row(n, r));
    let compare_json = serde_json::json!({"summary": compare_rows, "best": compare_best});
    let reading = reading(&sweep, &best, &compare, &study);
    let seconds = started.elapsed().as_secs_f64();
    let results = serde_json::json!({
        "data": "digits",
        "model": "mlp 64-128-10",
        "seed": args.seed,
        "config": base_spec(args.seed),
        "versions": {"labelsmooth": env!("CARGO_PKG_VERSION"), "burn": "0.22.1"},
        "sweep": sweep_json,
        "sweep_folds": sweep_folds,
        "compare": compare_json,
        "compare_folds": compare_folds,
        "calibration": study,
        "reading": reading,
        "seconds": seconds,
    });
    write_json(&args.out.join("results.json"), &results)?;
    let report = args.out.join("report.html");
    write_atomic(
        &report,
        render(
            &page(&sweep, &compare, &study, reading.clone(), seconds),
            &figures,
        )?
        .as_bytes(),
    )?;

    if args.json {
        println!(
            "{}",
            serde_json::json!({"sweep": sweep_json, "compare": compare_json, "report": report})
        );
    } else {
        println!("label smoothing on digits (MLP 64-128-10, 3-fold CV)");
        println!(
            "{:>9} {:>15} {:>8} {:>8}",
            "smoothing", "accuracy", "NLL", "ECE"
        );
        for r in &sweep {
            println!(
                "{:>9} {:>8.4} ± {:.4} {:>8.4} {:>8.4}",
                r.smoothing, r.accuracy_mean, r.accuracy_std, r.nll_mean, r.ece_mean
            );
        }
        for line in &reading {
            println!("{line}");
        }
        println!("report: {} ({seconds:.1} s)", report.display());
    }
    Ok(())
}

/// A few sentences that read the results.
fn reading(
    sweep: &[SummaryRow],
    best: &SummaryRow,
    compare: &[(String, SummaryRow)],
    study: &[CalibrationRow],
) -> Vec<String> {
    let mut out = Vec::new();
    let zero = sweep.iter().find(|r| r.smoothing == 0.0);
    if let Some(z) = zero {
        let gain = 100.0 * (best.accuracy_mean - z.accuracy_mean);
        out.push(if best.smoothing == 0.0 {
            format!("No smoothing factor beat α = 0 on cross-validated accuracy ({:.2}%).", 100.0 * z.accuracy_mean)
        } else {
            format!(
                "The best smoothing factor was α = {} with {:.2}% ± {:.2}% accuracy, {gain:+.2} points against no smoothing ({:.2}%); the fold-to-fold spread is {:.2} points.",
                best.smoothing, 100.0 * best.accuracy_mean, 100.0 * best.accuracy_std, 100.0 * z.accuracy_mean, 100.0 * best.accuracy_std
            )
        });
        out.push(format!(
            "Its calibration cost: cross-validated ECE {:.3} at α = {} against {:.3} without smoothing, NLL {:.3} against {:.3}.",
            best.ece_mean, best.smoothing, z.ece_mean, best.nll_mean, z.nll_mean
        ));
    }
    if let Some((name, r)) = compare
        .iter()
        .max_by(|a, b| a.1.accuracy_mean.total_cmp(&b.1.accuracy_mean))
    {
        out.push(format!(
            "Among the regularizers, {name} had the highest accuracy ({:.2}%).",
            100.0 * r.accuracy_mean
        ));
    }
    for s in study {
        out.push(format!(
            "{}: test ECE {:.3} before and {:.3} after temperature scaling (T = {:.2}).",
            s.model, s.before.ece, s.after.ece, s.temperature
        ));
    }
    out
}

fn page(
    sweep: &[SummaryRow],
    compare: &[(String, SummaryRow)],
    study: &[CalibrationRow],
    reading: Vec<String>,
    seconds: f64,
) -> Page {
    let fig = |n: &str, c: &str| (n.to_string(), c.to_string());
    Page {
        title: "Label smoothing on digits".into(),
        intro: format!(
            "MLP 64-128-10 trained with Adam on the bundled hand-written digits (1797 images of 8 × 8 pixels, 10 classes); 3-fold stratified cross-validation; calibration on a 60/20/20 split (train / temperature fitting / test). {seconds:.1} s."
        ),
        reading,
        sections: vec![
            Section {
                heading: "Smoothing factor".into(),
                table: Some(summary_table(
                    "α",
                    &sweep
                        .iter()
                        .map(|r| (r.smoothing.to_string(), r))
                        .collect::<Vec<_>>(),
                    true,
                )),
                figures: vec![fig(
                    "accuracy_vs_smoothing",
                    "Accuracy against the smoothing factor, mean ± std over folds",
                )],
            },
            Section {
                heading: "Regularizers".into(),
                table: Some(summary_table(
                    "regularizer",
                    &compare
                        .iter()
                        .map(|(n, r)| (n.clone(), r))
                        .collect::<Vec<_>>(),
                    false,
                )),
                figures: vec![fig(
                    "regularizers",
                    "Regularizers compared (L2 λ = 1e-4 as Keras' kernel_regularizer, dropout 0.2, smoothing 0.1, confidence penalty β = 0.1)",
                )],
            },
            Section {
                heading: "Calibration".into(),
                table: Some(Table {
                    header: [
                        "model",
                        "accuracy",
                        "NLL",
                        "ECE",
                        "MCE",
                        "Brier",
                        "T",
                        "NLL after T",
                        "ECE after T",
                    ]
                    .map(String::from)
                    .to_vec(),
                    rows: study
                        .iter()
                        .map(|s| {
                            vec![
                                s.model.clone(),
                                f4(s.before.accuracy),
                                f4(s.before.nll),
                                f4(s.before.ece),
                                f4(s.mce_before),
                                f4(s.before.brier),
                                format!("{:.3}", s.temperature),
                                f4(s.after.nll),
                                f4(s.after.ece),
                            ]
                        })
                        .collect(),
                }),
                figures: vec![
                    fig(
                        "confidence_histogram",
                        "Top-label confidence on the test split, without and with smoothing",
                    ),
                    fig("reliability_plain", "Reliability diagram without smoothing"),
                    fig("reliability_smoothed", "Reliability diagram with smoothing"),
                    fig(
                        "ece_temperature",
                        "ECE before and after temperature scaling",
                    ),
                    fig(
                        "softmax_output",
                        "Softmax output for the first test example",
                    ),
                    fig(
                        "penultimate_layer",
                        "Penultimate-layer activations of classes 0, 1, 2 projected on the plane through their class templates (Müller et al. 2019)",
                    ),
                    fig("training_loss", "Training loss per epoch"),
                    fig(
                        "validation_nll",
                        "NLL on the temperature-fitting split per epoch",
                    ),
                ],
            },
        ],
    }
}
