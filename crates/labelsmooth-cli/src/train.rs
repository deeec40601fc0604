//! `labelsmooth train`: one model on a stratified held-out split, with its metrics, predictions,
//! checkpoint, figures and report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use labelsmooth::calibration::{
    Binning, confusion_matrix, per_class_scores, reliability_bins, top_label,
};
use labelsmooth::split::stratified_split;
use labelsmooth_burn::train::EpochMetrics;
use labelsmooth_experiment::io::{predictions_csv, writable_dir, write_atomic, write_json};
use labelsmooth_experiment::trial::TrialResult;
use labelsmooth_experiment::{SavedModel, TrialSpec, run_trial};
use serde::Serialize;

use crate::args::{Common, parse_alpha};
use crate::plots;
use crate::progress::Console;
use crate::report::{ClassRow, Page, Section, Table, class_rows, class_table, f4, write_report};

/// `labelsmooth train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    common: Common,
    /// Smoothing factor α in [0, 1].
    #[arg(long, default_value = "0.1", value_parser = parse_alpha)]
    smoothing: f32,
    /// Fraction of each class held out for evaluation.
    #[arg(long, default_value_t = 0.2)]
    valid_fraction: f64,
    /// Folder for the model (model.json and its weights, read by `predict` and `evaluate`),
    /// metrics.json, predictions.csv (the held-out rows, by data row), figures/ and report.html.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The held-out metrics printed by `--json`.
#[derive(Serialize)]
struct TrainSummary {
    accuracy: f64,
    nll: f64,
    ece: f64,
    brier: f64,
    epochs: usize,
    seconds: f64,
}

/// `metrics.json`.
#[derive(Serialize)]
struct TrainReport<'a> {
    data: &'a str,
    n_train: usize,
    n_valid: usize,
    #[serde(flatten)]
    summary: &'a TrainSummary,
    config: &'a TrialSpec,
    history: &'a [EpochMetrics],
    /// Held-out precision, recall, F1 and support per class.
    per_class: Vec<ClassRow<'a>>,
    /// Held-out confusion matrix, rows the true classes.
    confusion_matrix: Vec<Vec<usize>>,
}

/// Runs `labelsmooth train`.
pub fn train(args: TrainArgs) -> Result<()> {
    crate::args::set_threads(args.common.threads)?;
    if let Some(out) = &args.out {
        writable_dir(out)?;
    }
    let c = &args.common;
    let d = c.load()?;
    let split = stratified_split(&d.labels, args.valid_fraction, c.seed)?;
    let spec = c.trial(args.smoothing);
    let r = run_trial(
        &d,
        &split.train,
        &split.valid,
        &spec,
        &mut Console::new(c.json),
    )?;
    let summary = TrainSummary {
        accuracy: r.eval.accuracy,
        nll: r.eval.nll,
        ece: r.eval.ece,
        brier: r.eval.brier,
        epochs: r.trained.history.len(),
        seconds: r.seconds,
    };
    if let Some(out) = &args.out {
        let k = d.n_classes();
        let labels: Vec<usize> = split.valid.iter().map(|&i| d.labels[i]).collect();
        let confusion = confusion_matrix(&r.probs, &labels, k)?;
        let per_class = class_rows(&d.class_names, &per_class_scores(&confusion, k)?);
        let report = TrainReport {
            data: &c.data,
            n_train: split.train.len(),
            n_valid: split.valid.len(),
            summary: &summary,
            config: &spec,
            history: &r.trained.history,
            per_class,
            confusion_matrix: confusion.chunks(k).map(<[usize]>::to_vec).collect(),
        };
        write_json(&out.join("metrics.json"), &report)?;
        let ids: Vec<String> = split.valid.iter().map(|&i| d.id(i)).collect();
        let truth: Vec<String> = labels.iter().map(|&y| d.class_names[y].clone()).collect();
        write_atomic(
            &out.join("predictions.csv"),
            &predictions_csv(&ids, Some(&truth), &r.probs, &d.class_names)?,
        )?;
        let held_out = format!(
            "held-out {}% ({} rows, seed {})",
            (100.0 * args.valid_fraction).round(),
            split.valid.len(),
            c.seed
        );
        SavedModel::from_trial(&r, &d, &c.data, &spec, split.train.len(), &held_out).save(out)?;
        let held_out = HeldOut {
            labels: &labels,
            class_names: &d.class_names,
            confusion: &confusion,
            per_class: &report.per_class,
        };
        train_report(out, &c.data, args.smoothing, &r, &held_out)?;
    }
    if c.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} / {}, smoothing {} ({}): held-out accuracy {:.4}, NLL {:.4}, ECE {:.4}, Brier {:.4} ({} train, {} held out, {:.1} s)",
            c.data,
            c.model_name(),
            args.smoothing,
            spec.train.convention.name(),
            summary.accuracy,
            summary.nll,
            summary.ece,
            summary.brier,
            split.train.len(),
            split.valid.len(),
            summary.seconds
        );
    }
    Ok(())
}

/// What the report shows of the held-out split.
struct HeldOut<'a> {
    labels: &'a [usize],
    class_names: &'a [String],
    confusion: &'a [usize],
    per_class: &'a [ClassRow<'a>],
}

/// Figures and report of one training run.
fn train_report(
    out: &Path,
    data: &str,
    smoothing: f32,
    r: &TrialResult,
    held_out: &HeldOut<'_>,
) -> Result<()> {
    let (labels, class_names) = (held_out.labels, held_out.class_names);
    let k = class_names.len();
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    let h = &r.trained.history;
    plots::curves(
        &figures,
        "training_loss",
        "Training loss per epoch",
        "mean training loss",
        &[("training".into(), h.iter().map(|e| e.train_loss).collect())],
    )?;
    plots::curves(
        &figures,
        "validation",
        "Held-out accuracy and NLL per epoch",
        "value",
        &[
            (
                "accuracy".into(),
                h.iter()
                    .filter_map(|e| e.valid.as_ref().map(|v| v.accuracy))
                    .collect(),
            ),
            (
                "NLL".into(),
                h.iter()
                    .filter_map(|e| e.valid.as_ref().map(|v| v.nll))
                    .collect(),
            ),
        ],
    )?;
    plots::reliability_diagram(
        &figures,
        "reliability",
        &format!("Reliability, smoothing {smoothing}"),
        &reliability_bins(&r.probs, labels, k, 15, Binning::Uniform)?,
        r.eval.ece,
    )?;
    let conf: Vec<f32> = top_label(&r.probs, labels, k)?
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    plots::confidence_histogram(
        &figures,
        "confidence_histogram",
        &[(format!("smoothing {smoothing}"), conf)],
    )?;
    plots::confusion_matrix(
        &figures,
        "confusion_matrix",
        class_names,
        held_out.confusion,
    )?;
    let e = &r.eval;
    let page = Page {
        title: format!("Training run: {data}"),
        intro: format!(
            "Smoothing {smoothing}; {} epochs; metrics on the stratified held-out split ({} samples).",
            h.len(),
            labels.len()
        ),
        reading: vec![format!(
            "Held-out accuracy {:.2}%, NLL {:.3}, ECE {:.3}, Brier {:.3}.",
            100.0 * e.accuracy,
            e.nll,
            e.ece,
            e.brier
        )],
        sections: vec![
            Section {
                heading: "Held-out metrics".into(),
                table: Some(Table {
                    header: ["accuracy", "NLL", "ECE", "Brier", "seconds"]
                        .map(String::from)
                        .to_vec(),
                    rows: vec![vec![
                        f4(e.accuracy),
                        f4(e.nll),
                        f4(e.ece),
                        f4(e.brier),
                        format!("{:.1}", r.seconds),
                    ]],
                }),
                figures: vec![
                    ("training_loss".into(), "Training loss per epoch".into()),
                    (
                        "validation".into(),
                        "Held-out accuracy and NLL per epoch".into(),
                    ),
                    (
                        "reliability".into(),
                        "Reliability diagram on the held-out split".into(),
                    ),
                    (
                        "confidence_histogram".into(),
                        "Top-label confidence on the held-out split".into(),
                    ),
                ],
            },
            Section {
                heading: "Per class, on the held-out split".into(),
                table: Some(class_table(held_out.per_class)),
                figures: vec![(
                    "confusion_matrix".into(),
                    "Confusion matrix on the held-out split: rows are the true classes".into(),
                )],
            },
        ],
    };
    write_report(&out.join("report.html"), &page, &figures)
}
