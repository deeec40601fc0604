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
    CalibrationStudy, Comparison, DistillResult, DistillationStudy, MemoryStore, ModelKind,
    RegularizerSettings, Regularizers, Sweep, SweepResult, TrialSpec,
};
use serde::Serialize;

use crate::plots;
use crate::progress::Console;
use crate::report::{
    Page, Section, Table, confidence_regime, cv_measured, cv_reading, f4, print_table, regime_word,
    summary_csv, summary_table, write_report,
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
/// The text model's sweep: fewer factors and folds, as each LSTM trial takes seconds.
const TEXT_ALPHAS: [f32; 3] = [0.0, 0.1, 0.2];
const TEXT_FOLDS: usize = 2;
const DISTILL_ALPHAS: [f32; 3] = [0.0, 0.1, 0.2];
const DISTILL_TEMPERATURES: [f32; 2] = [2.0, 4.0];
const DISTILL_FOLDS: usize = 2;
/// Hidden layer of the distilled student (the teacher has 128).
const STUDENT_HIDDEN: usize = 32;

/// What the demo measured.
struct Studies {
    sweep: SweepResult,
    compare: ComparisonResult,
    calibration: CalibrationResult,
    text: TextStudies,
    distill: DistillationStudy,
    distilled: DistillResult,
}

/// The text model's part: a sweep and a calibration study of the LSTM on rt-polarity.
struct TextStudies {
    data: Dataset,
    sweep: SweepResult,
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
    folds: std::borrow::Cow<'a, FoldMetrics>,
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
    text: TextResults<'a>,
    distillation: DistillResults<'a>,
    reading: &'a [String],
    seconds: f64,
}

/// The text part of `results.json`.
#[derive(Serialize)]
struct TextResults<'a> {
    data: &'static str,
    model: &'static str,
    config: &'a TrialSpec,
    sweep: Ranked<'a, FactorRow>,
    sweep_folds: Vec<SettingFolds<'a, Smoothing>>,
    calibration: &'a [CalibrationRow],
}

/// The distillation part of `results.json`.
#[derive(Serialize)]
struct DistillResults<'a> {
    study: &'a DistillationStudy,
    rows: &'a [labelsmooth_experiment::distill::DistillRow],
    reproduced: Option<bool>,
}

/// What `demo --json` prints.
#[derive(Serialize)]
struct DemoOutput<'a> {
    sweep: Ranked<'a, FactorRow>,
    compare: Ranked<'a, RegularizerRow>,
    text_sweep: Ranked<'a, FactorRow>,
    distillation: &'a [labelsmooth_experiment::distill::DistillRow],
    report: &'a Path,
    seconds: f64,
}

fn sweep_folds(s: &SweepResult) -> Vec<SettingFolds<'static, Smoothing>> {
    s.config
        .factors
        .iter()
        .zip(s.folds())
        .map(|(&smoothing, folds)| SettingFolds {
            key: Smoothing { smoothing },
            folds: std::borrow::Cow::Owned(folds),
        })
        .collect()
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
        sweep_folds: sweep_folds(&studies.sweep),
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
                folds: std::borrow::Cow::Borrowed(folds),
            })
            .collect(),
        calibration: &studies.calibration.rows,
        text: TextResults {
            data: "rt-polarity",
            model: "lstm (embedding 16, LSTM 64, dense 32)",
            config: &studies.text.sweep.config.base,
            sweep: ranked_sweep(&studies.text.sweep),
            sweep_folds: sweep_folds(&studies.text.sweep),
            calibration: &studies.text.calibration.rows,
        },
        distillation: DistillResults {
            study: &studies.distill,
            rows: &studies.distilled.rows,
            reproduced: studies.distilled.reproduced(),
        },
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
            text_sweep: ranked_sweep(&studies.text.sweep),
            distillation: &studies.distilled.rows,
            report: &report,
            seconds,
        };
        println!("{}", serde_json::to_string(&o)?);
    } else {
        print_summary(&studies, &reading);
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
        projected_classes: vec![0, 1, 2],
    };
    let calibration = study.run(d, &mut console)?;
    for r in &calibration.rows {
        say(format!(
            "calibration: {}: T = {:.3}",
            r.model, r.temperature
        ));
    }
    let text = text_studies(seed, &mut console, &say)?;
    let mut student = base_spec(seed);
    student.hidden = vec![STUDENT_HIDDEN];
    let distill = DistillationStudy {
        teacher: base_spec(seed),
        student,
        factors: DISTILL_ALPHAS.to_vec(),
        temperatures: DISTILL_TEMPERATURES.to_vec(),
        weight: 0.5,
        folds: DISTILL_FOLDS,
        seed,
    };
    let distilled = distill.run(d, &mut console)?;
    Ok(Studies {
        sweep,
        compare,
        calibration,
        text,
        distill,
        distilled,
    })
}

/// The LSTM on rt-polarity: a sweep of the smoothing factor and the calibration study.
fn text_studies(seed: u64, console: &mut Console, say: &dyn Fn(String)) -> Result<TextStudies> {
    let data = labelsmooth_data::bundled::load("rt-polarity")?;
    let base = TrialSpec::new(ModelKind::Lstm, seed);
    let sweep = Sweep {
        data: "rt-polarity".into(),
        factors: TEXT_ALPHAS.to_vec(),
        folds: TEXT_FOLDS,
        seed,
        base: base.clone(),
    };
    let mut store = MemoryStore::default();
    sweep.run(&data, &mut store, None, console)?;
    let sweep = sweep.result(&sweep.collect(&[&store])?)?;
    for r in sweep.summary.rows() {
        say(format!(
            "text sweep: smoothing {}: accuracy {:.4}, ECE {:.4}",
            r.smoothing, r.stats.accuracy_mean, r.stats.ece_mean
        ));
    }
    let best = sweep.best.as_ref().context("the text sweep is empty")?;
    let alpha = if best.smoothing > 0.0 {
        best.smoothing as f32
    } else {
        0.1
    };
    let study = CalibrationStudy {
        base,
        factors: vec![0.0, alpha],
        bins: BINS,
        seed,
        projected_classes: vec![0, 1],
    };
    let calibration = study.run(&data, console)?;
    for r in &calibration.rows {
        say(format!(
            "text calibration: {}: T = {:.3}",
            r.model, r.temperature
        ));
    }
    Ok(TextStudies {
        data,
        sweep,
        calibration,
    })
}

/// Every figure of the report, as PNG and SVG in `figures`.
fn draw(figures: &Path, d: &Dataset, s: &Studies) -> Result<()> {
    calibration_figures(figures, "", d, &s.calibration)?;
    calibration_figures(figures, "text_", &s.text.data, &s.text.calibration)?;
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
    plots::calibration_vs_setting(
        figures,
        "calibration_vs_smoothing",
        "Digits MLP: NLL and ECE against the smoothing factor (3-fold CV)",
        "smoothing factor α",
        s.sweep.summary.rows(),
    )?;
    plots::error_bars(
        figures,
        "text_accuracy_vs_smoothing",
        (
            "Text LSTM: accuracy vs smoothing factor (2-fold CV, mean ± std)",
            "smoothing factor α",
            "accuracy",
        ),
        &plots::points(s.text.sweep.summary.rows()),
    )?;
    plots::calibration_vs_setting(
        figures,
        "text_calibration_vs_smoothing",
        "Text LSTM: NLL and ECE against the smoothing factor (2-fold CV)",
        "smoothing factor α",
        s.text.sweep.summary.rows(),
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
    crate::distill::figure(figures, "distillation", &s.distilled)
}

/// The figures of one calibration study, their names starting with `prefix`.
fn calibration_figures(
    figures: &Path,
    prefix: &str,
    d: &Dataset,
    c: &CalibrationResult,
) -> Result<()> {
    let k = d.n_classes();
    let study = &c.rows;
    let y_test = &c.test_labels;
    let name = |n: &str| format!("{prefix}{n}");
    let mut confidences = Vec::new();
    for r in study {
        let conf: Vec<f32> = top_label(&r.test_probs, y_test, k)?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        confidences.push((r.model.clone(), conf));
    }
    plots::confidence_histogram(figures, &name("confidence_histogram"), &confidences)?;
    plots::softmax_bars(
        figures,
        &name("softmax_output"),
        &d.class_names,
        &study
            .iter()
            .map(|r| (r.model.clone(), r.test_probs[..k].to_vec()))
            .collect::<Vec<_>>(),
    )?;
    for (i, r) in study.iter().enumerate() {
        plots::reliability_diagram(
            figures,
            &name(&format!("reliability_{}", ["plain", "smoothed"][i.min(1)])),
            &format!("Reliability, {}", r.model),
            &reliability_bins(&r.test_probs, y_test, k, BINS, Binning::Uniform)?,
            r.before.ece,
        )?;
    }
    plots::curves(
        figures,
        &name("training_loss"),
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
        &name("validation_nll"),
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
        &name("penultimate_layer"),
        &d.class_names,
        &study
            .iter()
            .map(|r| {
                (
                    format!("Training rows, {}", r.model),
                    r.projection_train.clone(),
                )
            })
            .chain(
                study
                    .iter()
                    .map(|r| (format!("Held-out rows, {}", r.model), r.projection.clone())),
            )
            .collect::<Vec<_>>(),
    )?;
    plots::grouped_bars(
        figures,
        &name("ece_temperature"),
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

/// sweep.csv, compare.csv, calibration.csv, their text_ twins and distill.csv.
fn write_tables(out: &Path, s: &Studies) -> Result<()> {
    write_atomic(
        &out.join("sweep.csv"),
        &summary_csv("smoothing", s.sweep.summary.rows())?,
    )?;
    write_atomic(
        &out.join("compare.csv"),
        &summary_csv("regularizer", s.compare.summary.rows())?,
    )?;
    write_atomic(
        &out.join("text_sweep.csv"),
        &summary_csv("smoothing", s.text.sweep.summary.rows())?,
    )?;
    write_atomic(
        &out.join("calibration.csv"),
        &calibration_csv(&s.calibration)?,
    )?;
    write_atomic(
        &out.join("text_calibration.csv"),
        &calibration_csv(&s.text.calibration)?,
    )?;
    write_atomic(
        &out.join("distill.csv"),
        &crate::distill::csv_bytes(&s.distill, &s.distilled)?,
    )?;
    Ok(())
}

fn calibration_csv(c: &CalibrationResult) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "model",
        "smoothing",
        "temperature",
        "accuracy",
        "confidence",
        "nll_before",
        "nll_after",
        "ece_before",
        "ece_after",
        "mce_before",
        "mce_after",
        "brier_before",
        "brier_after",
    ])?;
    for r in &c.rows {
        w.write_record([
            r.model.clone(),
            r.smoothing.to_string(),
            r.temperature.to_string(),
            r.before.accuracy.to_string(),
            r.before.confidence.to_string(),
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
    w.into_inner().context("cannot format calibration.csv")
}

fn print_summary(s: &Studies, reading: &[String]) {
    println!("label smoothing on digits (MLP 64-128-10, 3-fold CV)");
    print_table("smoothing", 9, s.sweep.summary.rows());
    println!("label smoothing on rt-polarity (LSTM, 2-fold CV)");
    print_table("smoothing", 9, s.text.sweep.summary.rows());
    println!(
        "distillation on digits (teacher MLP 128, student MLP {STUDENT_HIDDEN}, 2-fold CV): accuracy"
    );
    let t = crate::distill::table(&s.distill, &s.distilled);
    println!("{}", t.header.join(" | "));
    for row in &t.rows {
        println!("{}", row.join(" | "));
    }
    for line in reading {
        println!("{line}");
    }
}

/// The regime of a model without smoothing, from its calibration study (confidence against
/// accuracy on the test split, the fitted temperature), and what the sweep measured.
fn regime(who: &str, c: &CalibrationResult, sweep: &SweepResult) -> Vec<String> {
    let Some(plain) = c.rows.iter().find(|r| r.smoothing == 0.0) else {
        return Vec::new();
    };
    let rows = sweep.summary.rows();
    let zero = rows.iter().find(|r| r.smoothing == 0.0);
    let word = regime_word(plain.before.accuracy, plain.before.confidence);
    let mut out = vec![confidence_regime(
        &format!(
            "Without smoothing, {who} (test split; temperature fitted on the calibration split)"
        ),
        plain.before.accuracy,
        plain.before.confidence,
        Some(plain.temperature),
    )];
    out.extend(cv_measured("α = ", rows, zero, word));
    out
}

/// A few sentences that read the results.
fn reading(s: &Studies) -> Vec<String> {
    let mut out = Vec::new();
    let rows = s.sweep.summary.rows();
    let zero = rows.iter().find(|r| r.smoothing == 0.0);
    if let Some(best) = &s.sweep.best {
        out.extend(
            cv_reading("smoothing factor", "α = ", rows, best, zero)
                .into_iter()
                .map(|l| format!("Digits MLP: {l}")),
        );
    }
    out.extend(regime("the digits MLP", &s.calibration, &s.sweep));
    if let Some(r) = &s.compare.best {
        out.push(format!(
            "Among the regularizers, {} ranked first ({:.2}% accuracy; the highest mean accuracy, ties broken by the lower NLL).",
            r.regularizer,
            100.0 * r.stats.accuracy_mean
        ));
    }
    for r in &s.calibration.rows {
        out.push(format!(
            "Digits, {}: test ECE {:.3} before and {:.3} after temperature scaling (T = {:.2}).",
            r.model, r.before.ece, r.after.ece, r.temperature
        ));
    }
    let rows = s.text.sweep.summary.rows();
    let zero = rows.iter().find(|r| r.smoothing == 0.0);
    if let Some(best) = &s.text.sweep.best {
        out.extend(
            cv_reading("smoothing factor", "α = ", rows, best, zero)
                .into_iter()
                .map(|l| format!("Text LSTM: {l}")),
        );
    }
    out.extend(regime("the text LSTM", &s.text.calibration, &s.text.sweep));
    for r in &s.text.calibration.rows {
        out.push(format!(
            "Text, {}: test ECE {:.3} before and {:.3} after temperature scaling (T = {:.2}).",
            r.model, r.before.ece, r.after.ece, r.temperature
        ));
    }
    out.extend(
        crate::distill::reading(&s.distill, &s.distilled)
            .into_iter()
            .map(|l| format!("Distillation: {l}")),
    );
    out
}

fn calibration_table(c: &CalibrationResult) -> Table {
    Table {
        header: [
            "model",
            "accuracy",
            "confidence",
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
        rows: c
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.model.clone(),
                    f4(r.before.accuracy),
                    f4(r.before.confidence),
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
    }
}

/// The calibration section of one model; `classes` says which classes the projection shows.
fn calibration_section(
    heading: &str,
    prefix: &str,
    c: &CalibrationResult,
    classes: &str,
) -> Section {
    let fig = |n: &str, caption: String| (format!("{prefix}{n}"), caption);
    Section {
        heading: heading.into(),
        table: Some(calibration_table(c)),
        figures: vec![
            fig(
                "confidence_histogram",
                "Top-label confidence on the test split, without and with smoothing".into(),
            ),
            fig(
                "reliability_plain",
                "Reliability diagram without smoothing".into(),
            ),
            fig(
                "reliability_smoothed",
                "Reliability diagram with smoothing".into(),
            ),
            fig(
                "ece_temperature",
                "ECE before and after temperature scaling".into(),
            ),
            fig(
                "softmax_output",
                "Softmax output for the first test example".into(),
            ),
            fig(
                "penultimate_layer",
                format!(
                    "Penultimate-layer activations of {classes} projected on the plane through their class templates (Müller et al. 2019, figure 1), training rows above and held-out rows below, without and with smoothing"
                ),
            ),
            fig("training_loss", "Training loss per epoch".into()),
            fig(
                "validation_nll",
                "NLL on the temperature-fitting split per epoch".into(),
            ),
        ],
    }
}

fn page(s: &Studies, reading: Vec<String>, seconds: f64) -> Page {
    let fig = |n: &str, c: &str| (n.to_string(), c.to_string());
    Page {
        title:
            "Label smoothing: when it calibrates, when it hurts, and what it does to distillation"
                .into(),
        intro: format!(
            "Two models in two regimes. An MLP 64-128-10 on the bundled hand-written digits (1797 images of 8 × 8 pixels, 10 classes), 3-fold stratified cross-validation; and the deck's embedding + LSTM sentiment model on rt-polarity (12 808 movie-review snippets, rotten or fresh), 2-fold. Calibration on a 60/20/20 split (train / temperature fitting / test). Then students (MLP {STUDENT_HIDDEN}) distilled from digits teachers trained with and without smoothing. Adam throughout. {seconds:.1} s."
        ),
        reading,
        sections: vec![
            Section {
                heading: "Digits MLP: smoothing factor".into(),
                table: Some(summary_table("α", s.sweep.summary.rows(), true)),
                figures: vec![
                    fig(
                        "accuracy_vs_smoothing",
                        "Accuracy against the smoothing factor, mean ± std over folds",
                    ),
                    fig(
                        "calibration_vs_smoothing",
                        "NLL and ECE against the smoothing factor, mean ± std over folds",
                    ),
                ],
            },
            Section {
                heading: "Digits MLP: regularizers".into(),
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
            calibration_section(
                "Digits MLP: calibration",
                "",
                &s.calibration,
                "classes 0, 1, 2",
            ),
            Section {
                heading: "Text LSTM: smoothing factor".into(),
                table: Some(summary_table("α", s.text.sweep.summary.rows(), true)),
                figures: vec![
                    fig(
                        "text_accuracy_vs_smoothing",
                        "Accuracy against the smoothing factor, mean ± std over folds",
                    ),
                    fig(
                        "text_calibration_vs_smoothing",
                        "NLL and ECE against the smoothing factor, mean ± std over folds",
                    ),
                ],
            },
            calibration_section(
                "Text LSTM: calibration",
                "text_",
                &s.text.calibration,
                "both classes (the plane through the origin and the two templates)",
            ),
            Section {
                heading: "Distillation from smoothed teachers (digits)".into(),
                table: Some(crate::distill::table(&s.distill, &s.distilled)),
                figures: vec![fig(
                    "distillation",
                    "Teacher and student accuracy against the teacher's smoothing factor (Müller et al. 2019, figure 6), mean ± std over folds",
                )],
            },
        ],
    }
}
