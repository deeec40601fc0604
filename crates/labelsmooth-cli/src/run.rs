//! `labelsmooth train` and `labelsmooth sweep`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use labelsmooth::split::{stratified_k_fold, stratified_split};
use labelsmooth::targets::Convention;
use labelsmooth_burn::train::{TrainConfig, save_checkpoint, write_predictions};
use serde::Serialize;

use crate::experiment::{DataOptions, ModelKind, TrialSpec, load, run_trial};

fn parse_convention(s: &str) -> Result<Convention, String> {
    s.parse::<Convention>().map_err(|e| e.to_string())
}

pub(crate) fn parse_alpha(s: &str) -> Result<f32, String> {
    let a: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..=1.0).contains(&a) {
        return Err(format!("smoothing factor {a} is outside [0, 1]"));
    }
    Ok(a)
}

/// Data and model options shared by the commands.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Data: a bundled set (digits, mnist-5k, rt-polarity) or csv:PATH, text:PATH, images:DIR,
    /// idx:IMAGES,LABELS, cifar:DIR.
    #[arg(long)]
    pub(crate) data: String,
    /// Model family.
    #[arg(long, value_enum)]
    pub(crate) model: ModelKind,
    /// Smoothing convention: uniform (PyTorch, Keras) or exclude-true (fairseq).
    #[arg(long, default_value = "uniform", value_parser = parse_convention)]
    pub(crate) convention: Convention,
    /// Epochs (default: mlp 30, cnn 8, lstm 4).
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Learning rate of Adam (default: 1e-3, lstm 3e-3).
    #[arg(long)]
    pub(crate) learning_rate: Option<f64>,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub(crate) batch_size: usize,
    /// Dropout probability in the model.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) dropout: f64,
    /// Seed of splits, initialization and shuffling.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Label column of a table (name or 0-based index; default the last).
    #[arg(long)]
    label_column: Option<String>,
    /// Text column of a text table (name or index).
    #[arg(long)]
    text_column: Option<String>,
    /// Field delimiter (default: detected among , ; tab).
    #[arg(long)]
    delimiter: Option<char>,
    /// Whether the table has a header: yes, no, auto.
    #[arg(long)]
    header: Option<String>,
    /// Side of images read from folders.
    #[arg(long, default_value_t = 28)]
    image_size: usize,
    /// Vocabulary size for text.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) vocab: usize,
    /// Tokens per text (longer texts are cut).
    #[arg(long, default_value_t = 40)]
    pub(crate) max_len: usize,
    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

impl Common {
    pub(crate) fn data_options(&self) -> DataOptions {
        DataOptions {
            label_column: self.label_column.clone(),
            text_column: self.text_column.clone(),
            delimiter: self.delimiter,
            header: self.header.clone(),
            image_size: self.image_size,
        }
    }

    pub(crate) fn trial(&self, smoothing: f32) -> TrialSpec {
        let epochs = self.epochs.unwrap_or(match self.model {
            ModelKind::Mlp => 30,
            ModelKind::Cnn => 8,
            ModelKind::Lstm => 4,
        });
        let lr = self.learning_rate.unwrap_or(match self.model {
            ModelKind::Lstm => 3e-3,
            _ => 1e-3,
        });
        TrialSpec {
            model: self.model,
            train: TrainConfig {
                epochs,
                batch_size: self.batch_size,
                learning_rate: lr,
                seed: self.seed,
                smoothing,
                convention: self.convention,
                progress: !self.json,
                ..Default::default()
            },
            dropout: self.dropout,
            vocab: self.vocab,
            max_len: self.max_len,
        }
    }
}

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
    /// Folder for metrics.json, predictions.csv and the checkpoint model.bpk.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Creates `dir` and checks that files can be written in it, before any work starts.
pub(crate) fn writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the output folder", dir.display()))?;
    let probe = dir.join(".labelsmooth-write-test");
    std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(b"ok"))
        .with_context(|| format!("{}: the output folder is not writable", dir.display()))?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// Writes `value` as pretty JSON to `path` through a temporary file renamed into place.
pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

#[derive(Serialize)]
struct TrainReport<'a> {
    data: &'a str,
    n_train: usize,
    n_valid: usize,
    accuracy: f64,
    nll: f64,
    ece: f64,
    brier: f64,
    epochs: usize,
    seconds: f64,
    config: &'a TrialSpec,
    history: &'a [labelsmooth_burn::train::EpochMetrics],
}

pub fn train(args: TrainArgs) -> Result<()> {
    if let Some(out) = &args.out {
        writable_dir(out)?;
    }
    let c = &args.common;
    let d = load(&c.data, &c.data_options())?;
    let split = stratified_split(&d.labels, args.valid_fraction, c.seed)?;
    let spec = c.trial(args.smoothing);
    let r = run_trial(&d, &split.train, &split.valid, &spec)?;
    let report = TrainReport {
        data: &c.data,
        n_train: split.train.len(),
        n_valid: split.valid.len(),
        accuracy: r.eval.accuracy,
        nll: r.eval.nll,
        ece: r.eval.ece,
        brier: r.eval.brier,
        epochs: r.trained.history.len(),
        seconds: r.seconds,
        config: &spec,
        history: &r.trained.history,
    };
    if let Some(out) = &args.out {
        write_json(&out.join("metrics.json"), &report)?;
        let labels: Vec<usize> = split.valid.iter().map(|&i| d.labels[i]).collect();
        write_predictions(
            &out.join("predictions.csv"),
            &labels,
            &r.probs,
            &d.class_names,
        )
        .with_context(|| format!("{}: cannot write predictions", out.display()))?;
        save_checkpoint(&r.trained.model, &out.join("model.bpk"))?;
        train_report(out, &c.data, args.smoothing, &labels, &r, d.n_classes())?;
    }
    if c.json {
        let v = serde_json::json!({
            "accuracy": report.accuracy, "nll": report.nll, "ece": report.ece, "brier": report.brier,
            "epochs": report.epochs, "seconds": report.seconds,
        });
        println!("{v}");
    } else {
        println!(
            "{} / {:?}, smoothing {} ({}): held-out accuracy {:.4}, NLL {:.4}, ECE {:.4}, Brier {:.4} ({} train, {} held out, {:.1} s)",
            c.data,
            c.model,
            args.smoothing,
            c.convention.name(),
            report.accuracy,
            report.nll,
            report.ece,
            report.brier,
            report.n_train,
            report.n_valid,
            report.seconds
        );
    }
    Ok(())
}

/// The decimal a user wrote for an `f32` factor (0.1, not 0.10000000149011612).
pub(crate) fn decimal(a: f32) -> f64 {
    a.to_string().parse().unwrap_or(f64::from(a))
}

/// Per-factor summary over folds.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryRow {
    /// Smoothing factor.
    pub smoothing: f64,
    /// Mean accuracy over folds.
    pub accuracy_mean: f64,
    /// Standard deviation of accuracy over folds (population, as scikit-learn's cv_results_).
    pub accuracy_std: f64,
    /// Mean NLL.
    pub nll_mean: f64,
    /// Mean ECE.
    pub ece_mean: f64,
    /// Folds.
    pub folds: usize,
}

pub(crate) fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
    (m, var.sqrt())
}

/// Metrics of every fold of a cross-validation.
pub(crate) struct FoldMetrics {
    pub accuracy: Vec<f64>,
    pub nll: Vec<f64>,
    pub ece: Vec<f64>,
}

/// Trains and evaluates `spec` on every fold.
pub(crate) fn cross_validate(
    d: &labelsmooth_data::Dataset,
    folds: &[labelsmooth::split::Split],
    spec: &TrialSpec,
    label: &str,
    verbose: bool,
) -> Result<FoldMetrics> {
    let mut m = FoldMetrics {
        accuracy: Vec::new(),
        nll: Vec::new(),
        ece: Vec::new(),
    };
    for (i, f) in folds.iter().enumerate() {
        let r = run_trial(d, &f.train, &f.valid, spec)?;
        if verbose {
            eprintln!(
                "{label}: fold {}/{}: accuracy {:.4}",
                i + 1,
                folds.len(),
                r.eval.accuracy
            );
        }
        m.accuracy.push(r.eval.accuracy);
        m.nll.push(r.eval.nll);
        m.ece.push(r.eval.ece);
    }
    Ok(m)
}

impl FoldMetrics {
    /// The summary row of these folds.
    pub(crate) fn summary(&self, smoothing: f32) -> SummaryRow {
        let (am, asd) = mean_std(&self.accuracy);
        SummaryRow {
            smoothing: decimal(smoothing),
            accuracy_mean: am,
            accuracy_std: asd,
            nll_mean: mean_std(&self.nll).0,
            ece_mean: mean_std(&self.ece).0,
            folds: self.accuracy.len(),
        }
    }
}

/// The best row by accuracy (ties: lower NLL).
pub(crate) fn best_of(rows: &[SummaryRow]) -> Option<SummaryRow> {
    rows.iter()
        .max_by(|a, b| {
            a.accuracy_mean
                .total_cmp(&b.accuracy_mean)
                .then(b.nll_mean.total_cmp(&a.nll_mean))
        })
        .cloned()
}

/// `labelsmooth compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    #[command(flatten)]
    common: Common,
    /// Regularizers to compare: none, l2, weight-decay, dropout, smoothing, confidence-penalty,
    /// or combinations joined by `+` (smoothing+dropout).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "none,l2,dropout,smoothing,confidence-penalty"
    )]
    regularizers: Vec<String>,
    /// Stratified folds.
    #[arg(long, default_value_t = 3)]
    folds: usize,
    /// λ of L2 (penalty λ·Σw², as Keras' kernel_regularizer; weight decay coefficient).
    #[arg(long, default_value_t = 1e-4)]
    l2: f32,
    /// Dropout probability of the `dropout` regularizer.
    #[arg(long, default_value_t = 0.2)]
    dropout_rate: f64,
    /// Smoothing factor of the `smoothing` regularizer.
    #[arg(long, default_value = "0.1", value_parser = parse_alpha)]
    alpha: f32,
    /// β of the confidence penalty.
    #[arg(long, default_value_t = 0.1)]
    beta: f32,
    /// Folder for results.json, compare.csv, figures/ and report.html.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The trial of a regularizer combination such as `smoothing+dropout`.
/// `spec` with the regularizers of `name` switched on: `none`, `l2`, `weight-decay`, `dropout`,
/// `smoothing`, `confidence-penalty`, or a `+`-joined combination.
pub(crate) fn apply_regularizers(
    mut spec: TrialSpec,
    name: &str,
    l2: f32,
    dropout_rate: f64,
    alpha: f32,
    beta: f32,
) -> Result<TrialSpec> {
    for part in name.split('+') {
        match part.trim() {
            "none" => {}
            "l2" => spec.train.l2 = Some(labelsmooth_burn::train::L2::Penalty(l2)),
            "weight-decay" => spec.train.l2 = Some(labelsmooth_burn::train::L2::WeightDecay(l2)),
            "dropout" => spec.dropout = dropout_rate,
            "smoothing" => spec.train.smoothing = alpha,
            "confidence-penalty" => spec.train.confidence_penalty = Some(beta),
            other => anyhow::bail!(
                "unknown regularizer `{other}` (none, l2, weight-decay, dropout, smoothing, confidence-penalty)"
            ),
        }
    }
    Ok(spec)
}

pub fn compare(args: CompareArgs) -> Result<()> {
    let c = &args.common;
    let specs: Vec<(String, TrialSpec)> = args
        .regularizers
        .iter()
        .map(|r| {
            Ok((
                r.clone(),
                apply_regularizers(
                    c.trial(0.0),
                    r,
                    args.l2,
                    args.dropout_rate,
                    args.alpha,
                    args.beta,
                )?,
            ))
        })
        .collect::<Result<_>>()?;
    if let Some(out) = &args.out {
        writable_dir(out)?;
    }
    let d = load(&c.data, &c.data_options())?;
    let folds = stratified_k_fold(&d.labels, args.folds, c.seed)?;
    let mut rows = Vec::new();
    for (name, spec) in &specs {
        let m = cross_validate(&d, &folds, spec, name, !c.json)?;
        rows.push((name.clone(), m.summary(spec.train.smoothing)));
    }
    let summary: Vec<serde_json::Value> = rows.iter().map(|(n, r)| compare_row(n, r)).collect();
    let best = rows
        .iter()
        .max_by(|a, b| {
            a.1.accuracy_mean
                .total_cmp(&b.1.accuracy_mean)
                .then(b.1.nll_mean.total_cmp(&a.1.nll_mean))
        })
        .map(|(n, r)| compare_row(n, r));
    if let Some(out) = &args.out {
        compare_outputs(out, c, &rows, &summary, &best)?;
    }
    if c.json {
        println!(
            "{}",
            serde_json::json!({ "summary": summary, "best": best })
        );
    } else {
        println!(
            "{} / {:?}, {}-fold stratified cross-validation",
            c.data,
            c.model,
            folds.len()
        );
        println!(
            "{:>26} {:>15} {:>8} {:>8}",
            "regularizer", "accuracy", "NLL", "ECE"
        );
        for (n, r) in &rows {
            println!(
                "{n:>26} {:>8.4} ± {:.4} {:>8.4} {:>8.4}",
                r.accuracy_mean, r.accuracy_std, r.nll_mean, r.ece_mean
            );
        }
    }
    Ok(())
}

/// A summary row keyed by regularizer.
pub(crate) fn compare_row(name: &str, r: &SummaryRow) -> serde_json::Value {
    serde_json::json!({
        "regularizer": name, "accuracy_mean": r.accuracy_mean, "accuracy_std": r.accuracy_std,
        "nll_mean": r.nll_mean, "ece_mean": r.ece_mean, "folds": r.folds,
    })
}

/// Figures and report of one training run.
fn train_report(
    out: &Path,
    data: &str,
    smoothing: f32,
    labels: &[usize],
    r: &crate::experiment::TrialResult,
    k: usize,
) -> Result<()> {
    use crate::plots;
    use crate::report::{Page, Section, Table, f4, render, write_atomic};
    use labelsmooth::calibration::{Binning, reliability_bins};
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
    let bins: Vec<plots::Bin> = reliability_bins(&r.probs, labels, k, 15, Binning::Uniform)?
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
        "reliability",
        &format!("Reliability, smoothing {smoothing}"),
        &bins,
        r.eval.ece,
    )?;
    let conf: Vec<f32> = r
        .probs
        .chunks(k)
        .map(|p| p.iter().cloned().fold(0.0, f32::max))
        .collect();
    plots::confidence_histogram(
        &figures,
        "confidence_histogram",
        &[(format!("smoothing {smoothing}"), conf)],
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
        sections: vec![Section {
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
        }],
    };
    write_atomic(
        &out.join("report.html"),
        render(&page, &figures)?.as_bytes(),
    )
}

/// results.json, compare.csv, the figure and the report of `compare --out`.
fn compare_outputs(
    out: &Path,
    c: &Common,
    rows: &[(String, SummaryRow)],
    summary: &[serde_json::Value],
    best: &Option<serde_json::Value>,
) -> Result<()> {
    use crate::plots;
    use crate::report::{Page, Section, render, summary_csv, summary_table, write_atomic};
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    let points: Vec<(String, f64, f64)> = rows
        .iter()
        .map(|(n, r)| (n.clone(), r.accuracy_mean, r.accuracy_std))
        .collect();
    plots::error_bars(
        &figures,
        "regularizers",
        (
            "Regularizers (cross-validated, mean ± std)",
            "regularizer",
            "accuracy",
        ),
        &points,
    )?;
    let keyed: Vec<(String, &SummaryRow)> = rows.iter().map(|(n, r)| (n.clone(), r)).collect();
    let csv = summary_csv("regularizer", &keyed);
    write_atomic(&out.join("compare.csv"), csv.as_bytes())?;
    write_json(
        &out.join("results.json"),
        &serde_json::json!({"data": c.data, "model": c.model, "seed": c.seed, "version": env!("CARGO_PKG_VERSION"), "summary": summary, "best": best}),
    )?;
    let page = Page {
        title: format!("Regularizers: {}", c.data),
        intro: format!(
            "Stratified cross-validation, {} folds, seed {}.",
            rows.first().map_or(0, |r| r.1.folds),
            c.seed
        ),
        reading: best
            .iter()
            .map(|b| {
                format!(
                    "Highest accuracy: {} ({:.2}%).",
                    b["regularizer"].as_str().unwrap_or(""),
                    100.0 * b["accuracy_mean"].as_f64().unwrap_or(0.0)
                )
            })
            .collect(),
        sections: vec![Section {
            heading: "Regularizers".into(),
            table: Some(summary_table("regularizer", &keyed, false)),
            figures: vec![(
                "regularizers".into(),
                "Accuracy per regularizer, mean ± std over folds".into(),
            )],
        }],
    };
    write_atomic(
        &out.join("report.html"),
        render(&page, &figures)?.as_bytes(),
    )
}
