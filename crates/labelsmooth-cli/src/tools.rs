//! `labelsmooth calibrate` and `labelsmooth smooth`: the core library on files and streams.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use labelsmooth::calibration::Binning;
use labelsmooth::targets::{BinaryConvention, Convention, smooth_binary, smooth_class_ids};
use labelsmooth_experiment::io::{claim_output, write_json};
use labelsmooth_report::calibrate::{
    FitPlan, Metrics, NotNormalized, Predictions, calibrate as report_calibrate,
};

use crate::arrays::{class_ids, read_label_values, read_predictions};

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

/// Reads predictions (`is_logits`: logits, else probabilities) and their labels (`labels`, or
/// the file's `true_class` column); class names from `given_names` or the file's header.
fn read_set(
    path: &Path,
    is_logits: bool,
    labels: Option<&Path>,
    given_names: Option<&[String]>,
    renormalize: bool,
) -> Result<Predictions> {
    let pred = read_predictions(path)?;
    let m = &pred.matrix;
    let k = if m.cols == 1 { 2 } else { m.cols };
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
    let set = if is_logits {
        Predictions::from_logits(&m.values, m.cols, ids)
    } else {
        Predictions::from_probabilities(&m.values, m.cols, ids, renormalize).map_err(|e| {
            match e.downcast_ref::<NotNormalized>() {
                Some(n) => {
                    anyhow::anyhow!("{n} (give --renormalize to divide each row by its sum)")
                }
                None => e,
            }
        })
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    match class_names {
        Some(names) => set.with_class_names(names),
        None => Ok(set),
    }
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
    let plan = if args.fit_temperature {
        Some(match &args.fit_on {
            Some(fit_path) => {
                let fit = read_set(
                    fit_path,
                    is_logits,
                    args.fit_on_labels.as_deref(),
                    set.class_names.as_deref(),
                    args.renormalize,
                )?;
                FitPlan::other(
                    fit,
                    &fit_path.display().to_string(),
                    &set,
                    &path.display().to_string(),
                )?
            }
            None => FitPlan::split(&set, args.fit_fraction, args.seed).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e} (give --fit-on FILE, or another --fit-fraction)",
                    path.display()
                )
            })?,
        })
    } else {
        None
    };
    let o = report_calibrate(&set, plan, args.bins as usize, args.binning)?;
    if let Some(out) = &args.out {
        write_json(&out.join("results.json"), &o)?;
        o.write_report(
            &path.display().to_string(),
            &out.join("figures"),
            &out.join("report.html"),
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
