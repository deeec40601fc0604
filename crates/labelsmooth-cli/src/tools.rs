//! `labelsmooth calibrate` and `labelsmooth smooth`: the core library on files and streams.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use labelsmooth::calibration::{
    Binning, Norm, ReliabilityBin, accuracy, apply_temperature, binary_brier_score,
    binary_reliability_bins, brier_score, calibration_curve, confusion_matrix, error_of_bins,
    fit_temperature, logit_nll, negative_log_likelihood, per_class_scores, reliability_bins,
    softmax, top_label,
};
use labelsmooth::split::stratified_split;
use labelsmooth::targets::{BinaryConvention, Convention, smooth_binary, smooth_class_ids};
use labelsmooth_experiment::io::{claim_output, write_json};
use serde::Serialize;

use crate::arrays::{class_ids, read_label_values, read_predictions};
use crate::plots;
use crate::report::{ClassRow, Page, Section, Table, class_rows, class_section, f4, write_report};

fn parse_binning(s: &str) -> Result<Binning, String> {
    s.parse::<Binning>().map_err(|e| e.to_string())
}

/// `labelsmooth calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Predicted probabilities, `[n, k]` (CSV or .npy); one column means P(class 1) for 0/1
    /// labels. A CSV with `p_<class>` columns (`predictions.csv` of `train` and `predict`) gives
    /// its classes, and its `true_class` column the labels.
    #[arg(long, required_unless_present = "logits", conflicts_with = "logits")]
    probs: Option<PathBuf>,
    /// Logits `[n, k]` (CSV or .npy).
    #[arg(long)]
    logits: Option<PathBuf>,
    /// True classes, one per row: class ids, or class names (with --class-names or a
    /// probability CSV whose header names the classes); CSV or .npy.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Class names in column order, one per line.
    #[arg(long)]
    class_names: Option<PathBuf>,
    /// Bins of the calibration errors and the reliability diagram.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    bins: u64,
    /// Bin layout: uniform (equal width, as torchmetrics) or quantile (equal mass).
    #[arg(long, default_value = "uniform", value_parser = parse_binning)]
    binning: Binning,
    /// Fit a temperature (minimum NLL) on a stratified part of the rows (--fit-fraction) and
    /// report the metrics before and after it on the other rows; with --fit-on, fit on that
    /// file instead and report on all rows.
    #[arg(long)]
    fit_temperature: bool,
    /// Share of the rows, per class, the temperature is fitted on.
    #[arg(long, default_value = "0.5", value_parser = parse_fit_fraction)]
    fit_fraction: f64,
    /// Fit the temperature on these predictions (the same kind as --probs or --logits, e.g. a
    /// validation set) instead of a part of the evaluated rows.
    #[arg(long, requires = "fit_temperature")]
    fit_on: Option<PathBuf>,
    /// The labels of --fit-on (not needed when it has a `true_class` column).
    #[arg(long, requires = "fit_on")]
    fit_on_labels: Option<PathBuf>,
    /// Seed of the split for --fit-temperature.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Divide each probability row by its sum instead of refusing rows that do not sum to 1
    /// (within 1e-3).
    #[arg(long)]
    renormalize: bool,
    /// Folder for results.json, the figures (reliability diagrams, confidence histogram,
    /// confusion matrix) and report.html.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_fit_fraction(s: &str) -> Result<f64, String> {
    let f: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(f > 0.0 && f < 1.0) {
        return Err(format!("fit fraction {f} is not strictly between 0 and 1"));
    }
    Ok(f)
}

/// Calibration metrics of one set of predictions.
#[derive(Debug, Serialize)]
pub struct Metrics {
    pub(crate) n: usize,
    pub(crate) accuracy: f64,
    /// From logits: −log softmax at the label, exact. From probabilities: −log p with p clipped
    /// below at `nll_clipped_at`.
    pub(crate) nll: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) nll_clipped_at: Option<f64>,
    /// Σ over classes of (p_j − onehot_j)², mean over rows.
    pub(crate) brier: f64,
    /// Two classes: scikit-learn's `brier_score_loss`, mean (P(1) − y)² (half of `brier`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) brier_binary: Option<f64>,
    /// Top-label expected calibration error (torchmetrics' multiclass ECE).
    pub(crate) ece: f64,
    /// Two classes: torchmetrics' binary ECE, on P(class 1) against the fraction of label 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ece_binary: Option<f64>,
    pub(crate) mce: f64,
    pub(crate) rmsce: f64,
    pub(crate) bins: Vec<ReliabilityBin>,
}

/// scikit-learn's calibration curve of binary predictions.
#[derive(Debug, Serialize)]
struct Curve {
    prob_true: Vec<f64>,
    prob_pred: Vec<f64>,
    counts: Vec<usize>,
}

/// The smallest probability the NLL of probability files uses (−log of it at most).
const NLL_FLOOR: f64 = 1e-15;
/// The smallest probability turned into a logit for temperature scaling of probability files.
const LOGIT_FLOOR: f64 = 1e-12;

/// Where the NLL comes from: logits (exact log-softmax at a temperature) or probabilities
/// (clipped below at [`NLL_FLOOR`]).
pub(crate) enum NllFrom<'a> {
    Logits {
        logits: &'a [f32],
        temperature: f64,
        clipped_at: Option<f64>,
    },
    Probabilities,
}

pub(crate) fn metrics(
    probs: &[f32],
    nll_from: NllFrom<'_>,
    labels: &[usize],
    k: usize,
    bins: usize,
    binning: Binning,
) -> Result<Metrics> {
    let rb = reliability_bins(probs, labels, k, bins, binning)?;
    let (nll, nll_clipped_at) = match nll_from {
        NllFrom::Logits {
            logits,
            temperature,
            clipped_at,
        } => (logit_nll(logits, labels, k, temperature)?, clipped_at),
        NllFrom::Probabilities => (negative_log_likelihood(probs, labels, k)?, Some(NLL_FLOOR)),
    };
    let (brier_binary, ece_binary) = if k == 2 {
        let bins = binary_reliability_bins(probs, labels, bins, binning)?;
        (
            Some(binary_brier_score(probs, labels)?),
            Some(error_of_bins(&bins, Norm::L1)?),
        )
    } else {
        (None, None)
    };
    Ok(Metrics {
        n: labels.len(),
        accuracy: accuracy(probs, labels, k)?,
        nll,
        nll_clipped_at,
        brier: brier_score(probs, labels, k)?,
        brier_binary,
        ece: error_of_bins(&rb, Norm::L1)?,
        ece_binary,
        mce: error_of_bins(&rb, Norm::Max)?,
        rmsce: error_of_bins(&rb, Norm::L2)?,
        bins: rb,
    })
}

/// One file of predictions with its labels, ready for the metrics.
struct Set {
    /// Logits `[n, k]` (from probability files: their clipped logarithms).
    logits: Vec<f32>,
    /// Probabilities `[n, k]`.
    probs: Vec<f32>,
    labels: Vec<usize>,
    k: usize,
    /// One column of P(class 1).
    binary: bool,
    class_names: Option<Vec<String>>,
}

impl Set {
    /// The rows `rows` of this set.
    fn subset(&self, rows: &[usize]) -> Set {
        let k = self.k;
        let pick = |v: &[f32]| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| v[r * k..(r + 1) * k].iter().copied())
                .collect()
        };
        Set {
            logits: pick(&self.logits),
            probs: pick(&self.probs),
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            k,
            binary: self.binary,
            class_names: self.class_names.clone(),
        }
    }
}

/// Reads predictions (`is_logits`: logits, else probabilities) and their labels (`labels`, or
/// the file's `true_class` column); class names from `given_names` or the file's header.
fn read_set(
    path: &Path,
    is_logits: bool,
    labels: Option<&Path>,
    given_names: Option<&[String]>,
    renormalize: bool,
) -> Result<Set> {
    let pred = read_predictions(path)?;
    let m = &pred.matrix;
    let binary = m.cols == 1;
    let k = if binary { 2 } else { m.cols };
    let class_names = match (given_names, pred.class_names) {
        (Some(given), Some(header)) if given != header.as_slice() => bail!(
            "{}: its header names the classes {} but --class-names gives {}",
            path.display(),
            header.join(", "),
            given.join(", ")
        ),
        (Some(given), _) => Some(given.to_vec()),
        (None, header) => header,
    };
    if let Some(names) = &class_names
        && names.len() != k
    {
        bail!(
            "{} class names for the {k} classes of {}",
            names.len(),
            path.display()
        );
    }
    let values = match (labels, pred.truth) {
        (Some(l), _) => read_label_values(l, class_names.as_deref())?,
        (None, Some(truth)) => truth
            .into_iter()
            .enumerate()
            .map(|(i, t)| (format!("{}: row {} (true_class)", path.display(), i + 1), t))
            .collect(),
        (None, None) => bail!(
            "{}: give the true classes with --labels FILE (the file has no true_class column)",
            path.display()
        ),
    };
    let ids = class_ids(&values, class_names.as_deref(), k)?;
    if m.rows != ids.len() {
        bail!(
            "{} has {} rows but there are {} labels{}",
            path.display(),
            m.rows,
            ids.len(),
            labels.map_or(String::new(), |l| format!(" in {}", l.display()))
        );
    }
    let labels = ids;
    let (logits, probs) = if is_logits {
        let logits: Vec<f32> = if binary {
            m.values.iter().flat_map(|&x| [0.0, x as f32]).collect()
        } else {
            m.values.iter().map(|&x| x as f32).collect()
        };
        let probs = softmax(&logits, k)?;
        (logits, probs)
    } else {
        let mut probs: Vec<f64> = if binary {
            m.values.iter().flat_map(|&p| [1.0 - p, p]).collect()
        } else {
            m.values.clone()
        };
        if let Some(i) = probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
            bail!(
                "{}: row {}: probability {} is outside [0, 1]",
                path.display(),
                i / k + 1,
                probs[i]
            );
        }
        for (row, p) in probs.chunks_mut(k).enumerate() {
            let sum: f64 = p.iter().sum();
            if (sum - 1.0).abs() > 1e-3 {
                if sum <= 0.0 {
                    bail!(
                        "{}: row {}: probabilities sum to {sum}: nothing to renormalize",
                        path.display(),
                        row + 1
                    );
                }
                if !renormalize {
                    bail!(
                        "{}: row {}: probabilities sum to {sum:.4}, not 1 (give --renormalize to divide each row by its sum)",
                        path.display(),
                        row + 1
                    );
                }
                p.iter_mut().for_each(|v| *v /= sum);
            }
        }
        (
            probs
                .iter()
                .map(|&p| p.max(LOGIT_FLOOR).ln() as f32)
                .collect(),
            probs.iter().map(|&p| p as f32).collect(),
        )
    };
    Ok(Set {
        logits,
        probs,
        labels,
        k,
        binary,
        class_names,
    })
}

/// The metrics of `set` at temperature `t` (1: as given).
fn set_metrics(
    set: &Set,
    is_logits: bool,
    t: f64,
    bins: usize,
    binning: Binning,
) -> Result<(Metrics, Vec<f32>)> {
    let (probs, nll_from) = if t == 1.0 {
        let from = if is_logits {
            NllFrom::Logits {
                logits: &set.logits,
                temperature: 1.0,
                clipped_at: None,
            }
        } else {
            NllFrom::Probabilities
        };
        (set.probs.clone(), from)
    } else {
        (
            softmax(&apply_temperature(&set.logits, t)?, set.k)?,
            NllFrom::Logits {
                logits: &set.logits,
                temperature: t,
                clipped_at: (!is_logits).then_some(LOGIT_FLOOR),
            },
        )
    };
    let m = metrics(&probs, nll_from, &set.labels, set.k, bins, binning)?;
    Ok((m, probs))
}

/// A temperature fitted on some rows and its effect on others.
#[derive(Debug, Serialize)]
struct Scaling {
    /// The fitted temperature T.
    temperature: f64,
    /// The rows it was fitted on, in words.
    fitted_on: String,
    fit_rows: usize,
    /// The rows `before_scaling` and `after` are measured on, in words.
    evaluated_on: String,
    /// The evaluated rows as given.
    before_scaling: Metrics,
    /// The evaluated rows at temperature T.
    after: Metrics,
}

/// What `calibrate --json` prints and `--out` writes as results.json.
#[derive(Debug, Serialize)]
struct CalibrateOutput<'a> {
    /// Every row, as given.
    #[serde(flatten)]
    before: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_curve: Option<Curve>,
    /// Precision, recall, F1 and support per class, every row.
    per_class: Vec<ClassRow<'a>>,
    /// Rows the true classes.
    confusion_matrix: Vec<Vec<usize>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    scaling: Option<Scaling>,
}

/// Runs `labelsmooth calibrate`.
pub fn calibrate(args: CalibrateArgs) -> Result<()> {
    let _lock = args.out.as_deref().map(claim_output).transpose()?;
    let given_names = args
        .class_names
        .as_deref()
        .map(crate::models::read_class_names)
        .transpose()?;
    let (path, is_logits) = match (&args.probs, &args.logits) {
        (Some(p), None) => (p, false),
        (None, Some(l)) => (l, true),
        _ => bail!("give exactly one of --probs and --logits"),
    };
    let set = read_set(
        path,
        is_logits,
        args.labels.as_deref(),
        given_names.as_deref(),
        args.renormalize,
    )?;
    let (bins, binning, k) = (args.bins as usize, args.binning, set.k);
    let (before, _) = set_metrics(&set, is_logits, 1.0, bins, binning)?;
    let curve = if set.binary {
        let p1: Vec<f64> = set.probs.chunks(2).map(|r| f64::from(r[1])).collect();
        Some(calibration_curve(&set.labels, &p1, bins, binning)?)
    } else {
        None
    };
    let scaled = if args.fit_temperature {
        let (fit_set, eval_set, fitted_on, evaluated_on) = match &args.fit_on {
            Some(fit_path) => {
                let fit = read_set(
                    fit_path,
                    is_logits,
                    args.fit_on_labels.as_deref(),
                    set.class_names.as_deref(),
                    args.renormalize,
                )?;
                if fit.k != k {
                    bail!(
                        "{} has {} classes but {} has {k}",
                        fit_path.display(),
                        fit.k,
                        path.display()
                    );
                }
                let on = format!("{} ({} rows)", fit_path.display(), fit.labels.len());
                let eval = format!("every row of {}", path.display());
                (
                    fit,
                    set.subset(&(0..set.labels.len()).collect::<Vec<_>>()),
                    on,
                    eval,
                )
            }
            None => {
                let split = stratified_split(&set.labels, 1.0 - args.fit_fraction, args.seed)
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "{}: too few rows to fit the temperature on {}% of each class and evaluate on the rest (give --fit-on FILE, or another --fit-fraction)",
                            path.display(),
                            (100.0 * args.fit_fraction).round()
                        )
                    })?;
                let on = format!(
                    "a stratified {}% of the rows (seed {}, {} rows)",
                    (100.0 * args.fit_fraction).round(),
                    args.seed,
                    split.train.len()
                );
                let eval = format!("the other {} rows", split.valid.len());
                (set.subset(&split.train), set.subset(&split.valid), on, eval)
            }
        };
        let t = fit_temperature(&fit_set.logits, &fit_set.labels, k)?.temperature;
        let (before_scaling, _) = set_metrics(&eval_set, is_logits, 1.0, bins, binning)?;
        let (after, probs) = set_metrics(&eval_set, is_logits, t, bins, binning)?;
        Some((
            Scaling {
                temperature: t,
                fitted_on,
                fit_rows: fit_set.labels.len(),
                evaluated_on,
                before_scaling,
                after,
            },
            eval_set,
            probs,
        ))
    } else {
        None
    };
    let names: Vec<String> = set
        .class_names
        .clone()
        .unwrap_or_else(|| (0..k).map(|c| c.to_string()).collect());
    let confusion = confusion_matrix(&set.probs, &set.labels, k)?;
    let scores = per_class_scores(&confusion, k)?;
    let (scaling, scaled_rows) = match scaled {
        Some((s, eval_set, probs)) => (Some(s), Some((eval_set, probs))),
        None => (None, None),
    };
    let o = CalibrateOutput {
        before,
        calibration_curve: curve.map(|c| Curve {
            prob_true: c.prob_true,
            prob_pred: c.prob_pred,
            counts: c.counts,
        }),
        per_class: class_rows(&names, &scores),
        confusion_matrix: confusion.chunks(k).map(<[usize]>::to_vec).collect(),
        scaling,
    };
    if let Some(out) = &args.out {
        write_json(&out.join("results.json"), &o)?;
        calibrate_report(
            out,
            path,
            &o,
            &set,
            scaled_rows.as_ref(),
            &names,
            &confusion,
        )?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&o)?);
    } else {
        let row = |name: &str, m: &Metrics| {
            println!(
                "{name:<10} {:>6} {:>9.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
                m.n, m.accuracy, m.nll, m.brier, m.ece, m.mce, m.rmsce
            )
        };
        println!(
            "{:<10} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "", "n", "accuracy", "NLL", "Brier", "ECE", "MCE", "RMSCE"
        );
        row("as given", &o.before);
        if let Some(s) = &o.scaling {
            println!(
                "temperature T = {:.4}, fitted on {}; on {}:",
                s.temperature, s.fitted_on, s.evaluated_on
            );
            row("before", &s.before_scaling);
            row("T-scaled", &s.after);
        }
        if let Some(eps) = o.before.nll_clipped_at {
            println!(
                "NLL from probabilities: each clipped below at {eps:e} (give --logits for the exact value)"
            );
        }
        if let Some(out) = &args.out {
            println!("report: {}", out.join("report.html").display());
        }
    }
    Ok(())
}

/// Figures and report of `calibrate --out`.
fn calibrate_report(
    out: &Path,
    path: &Path,
    o: &CalibrateOutput<'_>,
    set: &Set,
    scaled: Option<&(Set, Vec<f32>)>,
    names: &[String],
    confusion: &[usize],
) -> Result<()> {
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    let m = &o.before;
    plots::reliability_diagram(
        &figures,
        "reliability",
        "Reliability as given",
        &m.bins,
        m.ece,
    )?;
    let top = |probs: &[f32], labels: &[usize]| -> Result<Vec<f32>> {
        Ok(top_label(probs, labels, set.k)?
            .into_iter()
            .map(|(c, _)| c)
            .collect())
    };
    let mut histograms = vec![("as given".to_string(), top(&set.probs, &set.labels)?)];
    let mut figs = vec![(
        "reliability".to_string(),
        "Reliability diagram of every row as given".to_string(),
    )];
    let mut reading = vec![format!(
        "Accuracy {:.2}%, NLL {:.3}{}, Brier {:.3}, ECE {:.3} on {} rows.",
        100.0 * m.accuracy,
        m.nll,
        m.nll_clipped_at.map_or(String::new(), |e| format!(
            " (probabilities clipped below at {e:e})"
        )),
        m.brier,
        m.ece,
        m.n
    )];
    reading.push(confidence_reading(m, "the predictions are"));
    let mut rows = vec![metric_cells("as given, every row", m)];
    if let (Some(s), Some((eval_set, probs))) = (&o.scaling, scaled) {
        plots::reliability_diagram(
            &figures,
            "reliability_scaled",
            &format!("Reliability at T = {:.3}", s.temperature),
            &s.after.bins,
            s.after.ece,
        )?;
        figs.push((
            "reliability_scaled".into(),
            format!(
                "Reliability diagram at the fitted temperature, on {}",
                s.evaluated_on
            ),
        ));
        histograms.push((
            format!("T = {:.3}", s.temperature),
            top(probs, &eval_set.labels)?,
        ));
        reading.push(format!(
            "Temperature scaling fitted T = {:.3} on {}; on {} it moves NLL {:.3} → {:.3} and ECE {:.3} → {:.3} ({}).",
            s.temperature,
            s.fitted_on,
            s.evaluated_on,
            s.before_scaling.nll,
            s.after.nll,
            s.before_scaling.ece,
            s.after.ece,
            if s.temperature > 1.0 {
                "T > 1 softens over-confident predictions"
            } else {
                "T < 1 sharpens under-confident predictions"
            }
        ));
        rows.push(metric_cells(
            &format!("as given, {}", s.evaluated_on),
            &s.before_scaling,
        ));
        rows.push(metric_cells(
            &format!("T = {:.3}, {}", s.temperature, s.evaluated_on),
            &s.after,
        ));
    }
    plots::confidence_histogram(&figures, "confidence_histogram", &histograms)?;
    figs.push(("confidence_histogram".into(), "Top-label confidence".into()));
    plots::confusion_matrix(&figures, "confusion_matrix", names, confusion)?;
    let page = Page {
        title: format!("Calibration: {}", path.display()),
        intro: format!(
            "The predictions in {} against their true classes: {} classes, ECE over {} bins of the top-label confidence.",
            path.display(),
            set.k,
            m.bins.len()
        ),
        reading,
        sections: vec![
            Section {
                heading: "Metrics".into(),
                table: Some(Table {
                    header: [
                        "rows", "n", "accuracy", "NLL", "Brier", "ECE", "MCE", "RMSCE",
                    ]
                    .map(String::from)
                    .to_vec(),
                    rows,
                }),
                figures: figs,
            },
            class_section("Per class".into(), &o.per_class, ""),
        ],
    };
    write_report(&out.join("report.html"), &page, &figures)
}

/// The mean top-label confidence against the accuracy, and what that makes the predictions:
/// "Mean confidence 0.830 against accuracy 0.986: {subject} under-confident."
pub(crate) fn confidence_reading(m: &Metrics, subject: &str) -> String {
    let mean_conf = m
        .bins
        .iter()
        .map(|b| b.mean_confidence * b.count as f64)
        .sum::<f64>()
        / m.n.max(1) as f64;
    let word = crate::report::regime_word(m.accuracy, mean_conf);
    format!(
        "Mean confidence {mean_conf:.3} against accuracy {:.3}: {subject} {word}.",
        m.accuracy
    )
}

/// A row of the metrics table.
fn metric_cells(rows: &str, m: &Metrics) -> Vec<String> {
    vec![
        rows.to_string(),
        m.n.to_string(),
        f4(m.accuracy),
        f4(m.nll),
        f4(m.brier),
        f4(m.ece),
        f4(m.mce),
        f4(m.rmsce),
    ]
}

/// What `smooth` reads and how it smooths it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SmoothConvention {
    /// One class id per line; 1 − α + α/K on it, α/K elsewhere (PyTorch, Keras).
    Uniform,
    /// One class id per line; 1 − α on it, α/(K − 1) elsewhere (fairseq).
    ExcludeTrue,
    /// One row of 0/1 labels per line; each moved toward 0.5: y(1 − α) + α/2 (Keras).
    Binary,
    /// One row of 0/1 labels per line; y(1 − α) + α/L over L labels.
    MultiLabel,
}

/// The convention's target form.
enum Targets {
    ClassIds(Convention),
    LabelRows(BinaryConvention),
}

impl SmoothConvention {
    fn targets(self) -> Targets {
        match self {
            SmoothConvention::Uniform => Targets::ClassIds(Convention::Uniform),
            SmoothConvention::ExcludeTrue => Targets::ClassIds(Convention::ExcludeTrue),
            SmoothConvention::Binary => Targets::LabelRows(BinaryConvention::TowardHalf),
            SmoothConvention::MultiLabel => Targets::LabelRows(BinaryConvention::OverLabels),
        }
    }
}

fn parse_classes(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("the number of classes must be at least 1".into()),
        Ok(k) => Ok(k),
        Err(_) => Err(format!("`{s}` is not a number of classes")),
    }
}

/// `labelsmooth smooth`.
#[derive(Args, Debug)]
pub struct SmoothArgs {
    /// Smoothing factor α in [0, 1].
    #[arg(long, value_parser = crate::args::parse_alpha)]
    alpha: f32,
    /// Number of classes K ≥ 1 (class-id input).
    #[arg(long, value_parser = parse_classes)]
    classes: Option<usize>,
    /// uniform (a/K, PyTorch/Keras), exclude-true (a/(K-1), fairseq): one class id per input
    /// line; binary (toward 0.5, Keras) or multi-label (a/L): one row of 0/1 labels per line.
    #[arg(long, value_enum, default_value = "uniform")]
    convention: SmoothConvention,
}

/// Runs `labelsmooth smooth` from stdin to stdout. Nothing is written unless every line is valid.
pub fn smooth(args: SmoothArgs) -> Result<()> {
    let stdin = std::io::stdin();
    let mut out = Vec::new();
    let targets = args.convention.targets();
    let k = match (&targets, args.classes) {
        (Targets::ClassIds(_), Some(k)) => k,
        (Targets::ClassIds(c), None) => {
            bail!("--classes is needed with the {} convention", c.name())
        }
        (Targets::LabelRows(_), _) => 0,
    };
    let mut width = None;
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.context("cannot read standard input")?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let row: Vec<f32> = match targets {
            Targets::ClassIds(conv) => {
                let first = line.split([',', ';', '\t']).next().unwrap_or_default();
                let id: usize = first
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("line {}: `{line}` is not a class id", i + 1))?;
                if id >= k {
                    bail!(
                        "line {}: class id {id} is out of range for {k} classes",
                        i + 1
                    );
                }
                smooth_class_ids(&[id], k, args.alpha, conv)
                    .map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?
            }
            Targets::LabelRows(conv) => {
                let y: Vec<f32> = line
                    .split([',', ';', '\t'])
                    .map(|f| f.trim().parse::<f32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| {
                        anyhow::anyhow!("line {}: `{line}` is not a row of 0/1 labels", i + 1)
                    })?;
                let expected = *width.get_or_insert(y.len());
                if expected != y.len() {
                    bail!("line {}: {} labels, expected {expected}", i + 1, y.len());
                }
                smooth_binary(&y, y.len(), args.alpha, conv)
                    .map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?
            }
        };
        let text: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        writeln!(out, "{}", text.join(","))?;
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(())
}
