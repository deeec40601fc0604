//! `labelsmooth train`: one model on a stratified held-out split, with its metrics, predictions,
//! checkpoint, figures and report.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use labelsmooth::calibration::{Binning, per_class_scores, reliability_bins, top_label};
use labelsmooth::split::{Split, stratified_split};
use labelsmooth_burn::train::EpochMetrics;
use labelsmooth_experiment::io::{claim_output, predictions_csv, write_atomic, write_json};
use labelsmooth_experiment::trial::TrialResult;
use labelsmooth_experiment::{SavedModel, TrialSpec, run_trial};
use serde::Serialize;

use crate::args::{Common, parse_alpha, parse_valid_fraction};
use crate::plots;
use crate::progress::Console;
use crate::report::{
    ClassRow, Page, Section, Table, class_rows, class_section, confidence_regime, f4, write_report,
};

/// `labelsmooth train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    common: Common,
    /// Smoothing factor α in [0, 1].
    #[arg(long, default_value = "0.1", value_parser = parse_alpha)]
    smoothing: f32,
    /// Fraction of each class held out for evaluation. 0 trains a final model on every row: the
    /// metrics are then measured on the training rows (optimistic) and no predictions.csv is
    /// written.
    #[arg(long, default_value = "0.2", value_parser = parse_valid_fraction)]
    valid_fraction: f64,
    /// Folder for the model (model.json and its weights, read by `predict` and `evaluate`),
    /// metrics.json, predictions.csv (the held-out rows, by data row), figures/ and report.html.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The metrics printed by `--json`.
#[derive(Serialize)]
struct TrainSummary {
    /// The rows they are measured on: the held-out split, or the training rows.
    metrics_on: String,
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
    /// Precision, recall, F1 and support per class on `metrics_on`.
    per_class: Vec<ClassRow>,
    /// Confusion matrix on `metrics_on`, rows the true classes.
    confusion_matrix: Vec<Vec<usize>>,
}

/// Runs `labelsmooth train`.
pub fn train(args: TrainArgs) -> Result<()> {
    crate::args::set_threads(args.common.threads)?;
    let _lock = args.out.as_deref().map(claim_output).transpose()?;
    let c = &args.common;
    let d = c.load()?;
    let final_model = args.valid_fraction == 0.0;
    let split = if final_model {
        let all: Vec<usize> = (0..d.labels.len()).collect();
        Split {
            train: all.clone(),
            valid: all,
        }
    } else {
        stratified_split(&d.labels, args.valid_fraction, c.seed)?
    };
    let n_held_out = if final_model { 0 } else { split.valid.len() };
    let scope = if final_model {
        "training rows (nothing held out)".to_string()
    } else {
        "held-out split".to_string()
    };
    let spec = c.trial(args.smoothing);
    let r = run_trial(
        &d,
        &split.train,
        &split.valid,
        &spec,
        &mut Console::new(c.json),
    )?;
    let summary = TrainSummary {
        metrics_on: scope.clone(),
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
        let confusion = &r.confusion;
        let per_class = class_rows(&d.class_names, &per_class_scores(confusion, k)?);
        let report = TrainReport {
            data: &c.data,
            n_train: split.train.len(),
            n_valid: n_held_out,
            summary: &summary,
            config: &spec,
            history: &r.trained.history,
            per_class,
            confusion_matrix: confusion.chunks(k).map(<[usize]>::to_vec).collect(),
        };
        write_json(&out.join("metrics.json"), &report)?;
        let predictions = out.join("predictions.csv");
        if final_model {
            // An earlier run's held-out predictions would not belong to this model.
            match std::fs::remove_file(&predictions) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| {
                        format!("{}: cannot remove the earlier run's", predictions.display())
                    });
                }
                _ => {}
            }
        } else {
            let ids: Vec<String> = split.valid.iter().map(|&i| d.id(i)).collect();
            let truth: Vec<String> = labels.iter().map(|&y| d.class_names[y].clone()).collect();
            write_atomic(
                &predictions,
                &predictions_csv(&ids, Some(&truth), &r.probs, &d.class_names)?,
            )?;
        }
        let on = if final_model {
            format!(
                "training rows: all {} rows trained, none held out (optimistic)",
                split.train.len()
            )
        } else {
            format!(
                "held-out {}% ({} rows, seed {})",
                (100.0 * args.valid_fraction).round(),
                split.valid.len(),
                c.seed
            )
        };
        SavedModel::from_trial(&r, &d, &c.data, &spec, split.train.len(), &on).save(out)?;
        let held_out = HeldOut {
            scope: &scope,
            labels: &labels,
            class_names: &d.class_names,
            confusion,
            per_class: &report.per_class,
            temperature: labelsmooth::calibration::fit_temperature(
                &r.logits,
                &labels,
                d.n_classes(),
            )
            .ok()
            .map(|f| f.temperature),
        };
        train_report(out, &c.data, args.smoothing, &r, &held_out)?;
    }
    if c.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} / {}, smoothing {} ({}): {} accuracy {:.4}, NLL {:.4}, ECE {:.4}, Brier {:.4} ({} train, {} held out, {:.1} s)",
            c.data,
            c.model_name(),
            args.smoothing,
            spec.train.convention.name(),
            if final_model {
                "training-row"
            } else {
                "held-out"
            },
            summary.accuracy,
            summary.nll,
            summary.ece,
            summary.brier,
            split.train.len(),
            n_held_out,
            summary.seconds
        );
    }
    Ok(())
}

/// What the report shows of the rows the metrics are measured on.
struct HeldOut<'a> {
    /// Which rows: the held-out split, or the training rows when nothing is held out.
    scope: &'a str,
    labels: &'a [usize],
    class_names: &'a [String],
    confusion: &'a [usize],
    per_class: &'a [ClassRow],
    /// The temperature that fits these rows best (a diagnosis of over- or under-confidence).
    temperature: Option<f64>,
}

/// Figures and report of one training run.
fn train_report(
    out: &Path,
    data: &str,
    smoothing: f32,
    r: &TrialResult,
    held_out: &HeldOut<'_>,
) -> Result<()> {
    let (labels, class_names, scope) = (held_out.labels, held_out.class_names, held_out.scope);
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
        &format!("Accuracy and NLL on the {scope} per epoch"),
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
            "Smoothing {smoothing}; {} epochs; metrics on the {scope} ({} samples).",
            h.len(),
            labels.len()
        ),
        reading: vec![
            format!(
                "Accuracy {:.2}%, NLL {:.3}, ECE {:.3}, Brier {:.3} on the {scope}.",
                100.0 * e.accuracy,
                e.nll,
                e.ece,
                e.brier
            ),
            confidence_regime(
                &format!("On the {scope}, the model (smoothing {smoothing})"),
                e.accuracy,
                e.confidence,
                held_out.temperature,
            ),
        ],
        sections: vec![
            Section {
                heading: format!("Metrics on the {scope}"),
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
                        format!("Accuracy and NLL on the {scope} per epoch"),
                    ),
                    (
                        "reliability".into(),
                        format!("Reliability diagram on the {scope}"),
                    ),
                    (
                        "confidence_histogram".into(),
                        format!("Top-label confidence on the {scope}"),
                    ),
                ],
            },
            class_section(
                format!("Per class, on the {scope}"),
                held_out.per_class,
                &format!(" on the {scope}"),
            ),
        ],
    };
    write_report(&out.join("report.html"), &page, &figures)
}
