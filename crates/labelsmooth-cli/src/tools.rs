//! `labelsmooth calibrate` and `labelsmooth smooth`: the core library on files and streams.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use labelsmooth::calibration::{
    Binning, Norm, ReliabilityBin, accuracy, apply_temperature, binary_brier_score,
    binary_reliability_bins, brier_score, calibration_curve, error_of_bins, fit_temperature,
    logit_nll, negative_log_likelihood, reliability_bins, softmax,
};
use labelsmooth::targets::{BinaryConvention, Convention, smooth_binary, smooth_class_ids};
use serde::Serialize;

use crate::arrays::{read_labels, read_matrix};

fn parse_binning(s: &str) -> Result<Binning, String> {
    s.parse::<Binning>().map_err(|e| e.to_string())
}

/// `labelsmooth calibrate`.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Predicted probabilities, `[n, k]` (CSV or .npy); one column means P(class 1) for 0/1 labels.
    #[arg(long, required_unless_present = "logits", conflicts_with = "logits")]
    probs: Option<PathBuf>,
    /// Logits `[n, k]` (CSV or .npy).
    #[arg(long)]
    logits: Option<PathBuf>,
    /// True class ids, one per row (CSV or .npy).
    #[arg(long)]
    labels: PathBuf,
    /// Bins of the calibration errors and the reliability diagram.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    bins: u64,
    /// Bin layout: uniform (equal width, as torchmetrics) or quantile (equal mass).
    #[arg(long, default_value = "uniform", value_parser = parse_binning)]
    binning: Binning,
    /// Also fit a temperature on these predictions (minimum NLL) and report the metrics after it.
    #[arg(long)]
    fit_temperature: bool,
    /// Divide each probability row by its sum instead of refusing rows that do not sum to 1
    /// (within 1e-3).
    #[arg(long)]
    renormalize: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
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

/// What `calibrate --json` prints.
#[derive(Debug, Serialize)]
struct CalibrateOutput {
    #[serde(flatten)]
    before: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    calibration_curve: Option<Curve>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<Metrics>,
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

/// Runs `labelsmooth calibrate`.
pub fn calibrate(args: CalibrateArgs) -> Result<()> {
    let labels = read_labels(&args.labels)?;
    let (path, is_logits) = match (&args.probs, &args.logits) {
        (Some(p), None) => (p, false),
        (None, Some(l)) => (l, true),
        _ => bail!("give exactly one of --probs and --logits"),
    };
    let m = read_matrix(path)?;
    if m.rows != labels.len() {
        bail!(
            "{} has {} rows but {} has {} labels",
            path.display(),
            m.rows,
            args.labels.display(),
            labels.len()
        );
    }
    let bins = args.bins as usize;
    let binary = m.cols == 1;
    let k = if binary { 2 } else { m.cols };
    if let Some((row, &y)) = labels.iter().enumerate().find(|(_, y)| **y >= k) {
        bail!(
            "{}: row {}: class id {y} is out of range for {k} classes",
            args.labels.display(),
            row + 1
        );
    }
    // Logits for temperature scaling and probabilities for the metrics.
    let (logits, given_probs): (Vec<f32>, Option<Vec<f32>>) = if is_logits {
        let logits = if binary {
            m.values.iter().flat_map(|&x| [0.0, x as f32]).collect()
        } else {
            m.values.iter().map(|&x| x as f32).collect()
        };
        (logits, None)
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
                if !args.renormalize {
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
            Some(probs.iter().map(|&p| p as f32).collect()),
        )
    };
    let probs = match given_probs {
        Some(p) => p,
        None => softmax(&logits, k)?,
    };
    let nll_from = |temperature: f64| {
        if is_logits {
            NllFrom::Logits {
                logits: &logits,
                temperature,
                clipped_at: None,
            }
        } else if temperature == 1.0 {
            NllFrom::Probabilities
        } else {
            NllFrom::Logits {
                logits: &logits,
                temperature,
                clipped_at: Some(LOGIT_FLOOR),
            }
        }
    };
    let before = metrics(&probs, nll_from(1.0), &labels, k, bins, args.binning)?;
    let curve = if binary {
        let p1: Vec<f64> = probs.chunks(2).map(|r| f64::from(r[1])).collect();
        Some(calibration_curve(&labels, &p1, bins, args.binning)?)
    } else {
        None
    };
    let fitted = if args.fit_temperature {
        let fit = fit_temperature(&logits, &labels, k)?;
        let scaled = softmax(&apply_temperature(&logits, fit.temperature)?, k)?;
        Some((
            fit.temperature,
            metrics(
                &scaled,
                nll_from(fit.temperature),
                &labels,
                k,
                bins,
                args.binning,
            )?,
        ))
    } else {
        None
    };
    if args.json {
        let (temperature, after) = match fitted {
            Some((t, m)) => (Some(t), Some(m)),
            None => (None, None),
        };
        let o = CalibrateOutput {
            before,
            calibration_curve: curve.map(|c| Curve {
                prob_true: c.prob_true,
                prob_pred: c.prob_pred,
                counts: c.counts,
            }),
            temperature,
            after,
        };
        println!("{}", serde_json::to_string(&o)?);
    } else {
        let row = |name: &str, m: &Metrics| {
            println!(
                "{name:<8} {:>6} {:>9.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4} {:>8.4}",
                m.n, m.accuracy, m.nll, m.brier, m.ece, m.mce, m.rmsce
            )
        };
        println!(
            "{:<8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "", "n", "accuracy", "NLL", "Brier", "ECE", "MCE", "RMSCE"
        );
        row("as given", &before);
        if let Some((t, after)) = &fitted {
            row("T-scaled", after);
            println!("fitted temperature T = {t:.4}");
        }
        if let Some(eps) = before.nll_clipped_at {
            println!(
                "NLL from probabilities: each clipped below at {eps:e} (give --logits for the exact value)"
            );
        }
    }
    Ok(())
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
