//! `labelsmooth demo`: the whole story on the bundled digits, with figures and one report.
//!
//! The experiments are those of `labelsmooth_experiment` (a sweep, a comparison, a calibration
//! study); this module draws, tabulates and reports them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use labelsmooth::calibration::{Binning, reliability_bins, top_label};
use labelsmooth_data::Dataset;
use labelsmooth_experiment::io::{claim_output, write_atomic, write_json};
use labelsmooth_experiment::regularizer::ComparisonResult;
use labelsmooth_experiment::study::{CalibrationResult, CalibrationRow};
use labelsmooth_experiment::summary::{FactorRow, FoldMetrics, RegularizerRow, Summary};
use labelsmooth_experiment::{
    CalibrationStudy, Comparison, MemoryStore, ModelKind, RegularizerSettings, Regularizers, Sweep,
    SweepResult, TrialSpec,
};
use serde::Serialize;

use crate::plots;
use crate::progress::Console;
use crate::report::{
    Page, Section, Table, f4, print_table, summary_csv, summary_table, write_report,
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
const FOLDS: usize = 3;

/// What the demo measured.
struct Studies {
    sweep: SweepResult,
    compare: ComparisonResult,
    calibration: CalibrationResult,
}

/// A summary with its best row, as printed and stored.
#[derive(Serialize)]
struct Ranked<'a, R> {
    summary: &'a Summary<R>,
    best: &'a Option<R>,
}

/// The fold metrics of one setting.
#[derive(Serialize)]
struct SettingFolds<'a, K: Serialize> {
    #[serde(flatten)]
    key: K,
    #[serde(flatten)]
    folds: &'a FoldMetrics,
}

#[derive(Serialize)]
struct Smoothing {
    smoothing: f32,
}

#[derive(Serialize)]
struct Regularizer<'a> {
    regularizer: &'a str,
}

#[derive(Serialize)]
struct Versions {
    labelsmooth: &'static str,
    burn: &'static str,
}

/// `results.json` of the demo.
#[derive(Serialize)]
struct DemoResults<'a> {
    data: &'static str,
    model: &'static str,
    seed: u64,
    config: &'a TrialSpec,
    versions: Versions,
    sweep: Ranked<'a, FactorRow>,
    sweep_folds: Vec<SettingFolds<'a, Smoothing>>,
    compare: Ranked<'a, RegularizerRow>,
    compare_folds: Vec<SettingFolds<'a, Regularizer<'a>>>,
    calibration: &'a [CalibrationRow],
    reading: &'a [String],
    seconds: f64,
}

/// What `demo --json` prints.
#[derive(Serialize)]
struct DemoOutput<'a> {
    sweep: Ranked<'a, FactorRow>,
    compare: Ranked<'a, RegularizerRow>,
    report: &'a Path,
}

fn base_spec(seed: u64) -> TrialSpec {
    TrialSpec::new(ModelKind::Mlp, seed)
}

/// Runs the demo.
pub fn demo(args: DemoArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let _lock = claim_output(&args.out)?;
    let figures = args.out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    let d = labelsmooth_data::bundled::load("digits")?;
    let studies = run_studies(&d, args.seed, !args.json)?;
    draw(&figures, &d, &studies)?;
    write_tables(&args.out, &studies)?;
    let reading = reading(&studies);
    let seconds = started.elapsed().as_secs_f64();
    let sweep_folds = studies.sweep.folds();
    let results = DemoResults {
        data: "digits",
        model: "mlp 64-128-10",
        seed: args.seed,
        config: &base_spec(args.seed),
        versions: Versions {
            labelsmooth: env!("CARGO_PKG_VERSION"),
            burn: "0.22.1",
        },
        sweep: ranked_sweep(&studies.sweep),
        sweep_folds: studies
            .sweep
            .config
            .factors
            .iter()
            .zip(&sweep_folds)
            .map(|(&smoothing, folds)| SettingFolds {
                key: Smoothing { smoothing },
                folds,
            })
            .collect(),
        compare: ranked_compare(&studies.compare),
        compare_folds: studies
            .compare
            .summary
            .rows()
            .iter()
            .zip(&studies.compare.folds)
            .map(|(r, folds)| SettingFolds {
                key: Regularizer {
                    regularizer: &r.regularizer,
                },
                folds,
            })
            .collect(),
        calibration: &studies.calibration.rows,
        reading: &reading,
        seconds,
    };
    write_json(&args.out.join("results.json"), &results)?;
    let report = args.out.join("report.html");
    write_report(&report, &page(&studies, reading.clone(), seconds), &figures)?;
    if args.json {
        let o = DemoOutput {
            sweep: ranked_sweep(&studies.sweep),
            compare: ranked_compare(&studies.compare),
            report: &report,
        };
        println!("{}", serde_json::to_string(&o)?);
    } else {
        print_summary(&studies.sweep, &reading);
        println!("report: {} ({seconds:.1} s)", report.display());
    }
    Ok(())
}

fn ranked_sweep(s: &SweepResult) -> Ranked<'_, FactorRow> {
    Ranked {
        summary: &s.summary,
        best: &s.best,
    }
}

fn ranked_compare(c: &ComparisonResult) -> Ranked<'_, RegularizerRow> {
    Ranked {
        summary: &c.summary,
        best: &c.best,
    }
}

/// The three studies: a sweep of the smoothing factor and a comparison of regularizers, both
/// 3-fold cross-validated on the same folds, and the calibration study without smoothing and
/// with the best factor (0.1 when the best is 0).
fn run_studies(d: &Dataset, seed: u64, verbose: bool) -> Result<Studies> {
    let mut console = Console::bar_only(!verbose);
    let say = |m: String| {
        if verbose {
            eprintln!("{m}");
        }
    };
    let sweep = Sweep {
        data: "digits".into(),
        factors: ALPHAS.to_vec(),
        folds: FOLDS,
        seed,
        base: base_spec(seed),
    };
    let mut store = MemoryStore::default();
    sweep.run(d, &mut store, None, &mut console)?;
    let sweep = sweep.result(&sweep.collect(&[&store])?)?;
    for r in sweep.summary.rows() {
        say(format!(
            "sweep: smoothing {}: accuracy {:.4}",
            r.smoothing, r.stats.accuracy_mean
        ));
    }
    let best = sweep.best.as_ref().context("the sweep is empty")?;
    let comparison = Comparison {
        regularizers: REGULARIZERS
            .iter()
            .map(|r| r.parse::<Regularizers>())
            .collect::<labelsmooth_experiment::Result<_>>()?,
        settings: RegularizerSettings::default(),
        folds: FOLDS,
        seed,
        base: base_spec(seed),
    };
    let compare = comparison.run(d, &mut console)?;
    for r in compare.summary.rows() {
        say(format!(
            "compare: {}: accuracy {:.4}",
            r.regularizer, r.stats.accuracy_mean
        ));
    }
    let alpha = if best.smoothing > 0.0 {
        best.smoothing as f32
    } else {
        0.1
    };
    let study = CalibrationStudy {
        base: base_spec(seed),
        factors: vec![0.0, alpha],
        bins: BINS,
        seed,
        projected_classes: [0, 1, 2],
    };
    let calibration = study.run(d, &mut console)?;
    for r in &calibration.rows {
        say(format!(
            "calibration: {}: T = {:.3}",
            r.model, r.temperature
        ));
    }
    Ok(Studies {
        sweep,
        compare,
        calibration,
    })
}

/// Every figure of the report, as PNG and SVG in `figures`.
fn draw(figures: &Path, d: &Dataset, s: &Studies) -> Result<()> {
    let k = d.n_classes();
    let study = &s.calibration.rows;
    let y_test = &s.calibration.test_labels;
    let mut confidences = Vec::new();
    for r in study {
        let conf: Vec<f32> = top_label(&r.test_probs, y_test, k)?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        confidences.push((r.model.clone(), conf));
    }
    plots::confidence_histogram(figures, "confidence_histogram", &confidences)?;
    plots::softmax_bars(
        figures,
        "softmax_output",
        &d.class_names,
        &study
            .iter()
            .map(|r| (r.model.clone(), r.test_probs[..k].to_vec()))
            .collect::<Vec<_>>(),
    )?;
    for (i, r) in study.iter().enumerate() {
        plots::reliability_diagram(
            figures,
            &format!("reliability_{}", ["plain", "smoothed"][i.min(1)]),
            &format!("Reliability, {}", r.model),
            &reliability_bins(&r.test_probs, y_test, k, BINS, Binning::Uniform)?,
            r.before.ece,
        )?;
    }
    plots::error_bars(
        figures,
        "accuracy_vs_smoothing",
        (
            "Accuracy vs smoothing factor (3-fold CV, mean ± std)",
            "smoothing factor α",
            "accuracy",
        ),
        &plots::points(s.sweep.summary.rows()),
    )?;
    plots::error_bars(
        figures,
        "regularizers",
        (
            "Regularizers (3-fold CV, mean ± std)",
            "regularizer",
            "accuracy",
        ),
        &plots::points(s.compare.summary.rows()),
    )?;
    plots::curves(
        figures,
        "training_loss",
        "Training loss per epoch",
        "mean training loss",
        &study
            .iter()
            .map(|r| {
                (
                    r.model.clone(),
                    r.history.iter().map(|h| h.train_loss).collect(),
                )
            })
            .collect::<Vec<_>>(),
    )?;
    plots::curves(
        figures,
        "validation_nll",
        "Validation NLL per epoch",
        "NLL",
        &study
            .iter()
            .map(|r| {
                (
                    r.model.clone(),
                    r.history
                        .iter()
                        .filter_map(|h| h.valid.as_ref().map(|v| v.nll))
                        .collect(),
                )
            })
            .collect::<Vec<_>>(),
    )?;
    plots::projections(
        figures,
        "penultimate_layer",
        &d.class_names,
        &study
            .iter()
            .map(|r| {
                (
                    format!("Penultimate layer, {}", r.model),
                    r.projection.clone(),
                )
            })
            .collect::<Vec<_>>(),
    )?;
    plots::grouped_bars(
        figures,
        "ece_temperature",
        "ECE before and after temperature scaling",
        "ECE (15 bins)",
        &study.iter().map(|r| r.model.clone()).collect::<Vec<_>>(),
        &[
            (
                "before".to_string(),
                study.iter().map(|r| r.before.ece).collect(),
            ),
            (
                "after temperature scaling".to_string(),
                study.iter().map(|r| r.after.ece).collect(),
            ),
        ],
    )
}

/// sweep.csv, compare.csv and calibration.csv.
fn write_tables(out: &Path, s: &Studies) -> Result<()> {
    write_atomic(
        &out.join("sweep.csv"),
        &summary_csv("smoothing", s.sweep.summary.rows())?,
    )?;
    write_atomic(
        &out.join("compare.csv"),
        &summary_csv("regularizer", s.compare.summary.rows())?,
    )?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "model",
        "smoothing",
        "temperature",
        "accuracy",
        "nll_before",
        "nll_after",
        "ece_before",
        "ece_after",
        "mce_before",
        "mce_after",
        "brier_before",
        "brier_after",
    ])?;
    for r in &s.calibration.rows {
        w.write_record([
            r.model.clone(),
            r.smoothing.to_string(),
            r.temperature.to_string(),
            r.before.accuracy.to_string(),
            r.before.nll.to_string(),
            r.after.nll.to_string(),
            r.before.ece.to_string(),
            r.after.ece.to_string(),
            r.mce_before.to_string(),
            r.mce_after.to_string(),
            r.before.brier.to_string(),
            r.after.brier.to_string(),
        ])?;
    }
    write_atomic(
        &out.join("calibration.csv"),
        &w.into_inner().context("cannot format calibration.csv")?,
    )?;
    Ok(())
}

fn print_summary(sweep: &SweepResult, reading: &[String]) {
    println!("label smoothing on digits (MLP 64-128-10, 3-fold CV)");
    print_table("smoothing", 9, sweep.summary.rows());
    for line in reading {
        println!("{line}");
    }
}

/// A few sentences that read the results.
fn reading(s: &Studies) -> Vec<String> {
    let mut out = Vec::new();
    let rows = s.sweep.summary.rows();
    let zero = rows.iter().find(|r| r.smoothing == 0.0).map(|r| &r.stats);
    if let (Some(z), Some(best)) = (zero, &s.sweep.best) {
        let b = &best.stats;
        let gain = 100.0 * (b.accuracy_mean - z.accuracy_mean);
        out.push(if best.smoothing == 0.0 {
            format!(
                "No smoothing factor beat α = 0 on cross-validated accuracy ({:.2}%).",
                100.0 * z.accuracy_mean
            )
        } else {
            format!(
                "The best smoothing factor was α = {} with {:.2}% ± {:.2}% accuracy, {gain:+.2} points against no smoothing ({:.2}%); the fold-to-fold spread is {:.2} points.",
                best.smoothing,
                100.0 * b.accuracy_mean,
                100.0 * b.accuracy_std,
                100.0 * z.accuracy_mean,
                100.0 * b.accuracy_std
            )
        });
        out.push(format!(
            "Its calibration cost: cross-validated ECE {:.3} at α = {} against {:.3} without smoothing, NLL {:.3} against {:.3}.",
            b.ece_mean, best.smoothing, z.ece_mean, b.nll_mean, z.nll_mean
        ));
    }
    if let Some(r) = &s.compare.best {
        out.push(format!(
            "Among the regularizers, {} ranked first ({:.2}% accuracy; the highest mean accuracy, ties broken by the lower NLL).",
            r.regularizer,
            100.0 * r.stats.accuracy_mean
        ));
    }
    for r in &s.calibration.rows {
        out.push(format!(
            "{}: test ECE {:.3} before and {:.3} after temperature scaling (T = {:.2}).",
            r.model, r.before.ece, r.after.ece, r.temperature
        ));
    }
    out
}

fn page(s: &Studies, reading: Vec<String>, seconds: f64) -> Page {
    let study = &s.calibration.rows;
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
                table: Some(summary_table("α", s.sweep.summary.rows(), true)),
                figures: vec![fig(
                    "accuracy_vs_smoothing",
                    "Accuracy against the smoothing factor, mean ± std over folds",
                )],
            },
            Section {
                heading: "Regularizers".into(),
                table: Some(summary_table(
                    "regularizer",
                    s.compare.summary.rows(),
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
                        .map(|r| {
                            vec![
                                r.model.clone(),
                                f4(r.before.accuracy),
                                f4(r.before.nll),
                                f4(r.before.ece),
                                f4(r.mce_before),
                                f4(r.before.brier),
                                format!("{:.3}", r.temperature),
                                f4(r.after.nll),
                                f4(r.after.ece),
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
