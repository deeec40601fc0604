//! `labelsmooth predict` and `labelsmooth evaluate`: a saved model folder on new data.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use labelsmooth::calibration::{
    Binning, ClassScores, apply_temperature, confusion_matrix, fit_temperature, per_class_scores,
    softmax,
};
use labelsmooth_data::npy;
use labelsmooth_data::spec::LoadOptions;
use labelsmooth_data::table::{Header, Missing, TableOptions};
use labelsmooth_experiment::SavedModel;
use labelsmooth_experiment::io::{
    claim_output, predictions_csv, writable_dir, write_atomic, write_json,
};
use serde::Serialize;

use crate::args::{parse_delimiter, parse_header, parse_missing, set_threads};
use crate::plots;
use crate::report::{ClassRow, Page, Section, class_rows, class_section, write_report};
use labelsmooth_report::calibrate::{Metrics, NllFrom, confidence_reading, metrics, metrics_table};

/// How the data files are read (the model knows its columns and image size).
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// The model folder (written by `train --out` or `import`).
    #[arg(long)]
    model: PathBuf,
    /// Data: csv:PATH, parquet:PATH or text:PATH (columns matched by name), lines:PATH (one text per line),
    /// images:DIR (flat or class folders), npy:PATH (an array of samples; images in it are taken
    /// as already preprocessed), or a bundled set.
    #[arg(long)]
    data: String,
    /// Field delimiter of a table (default: detected among , ; tab).
    #[arg(long, value_parser = parse_delimiter)]
    delimiter: Option<u8>,
    /// Whether the table has a header: yes, no, auto.
    #[arg(long, value_parser = parse_header, default_value = "auto")]
    header: Header,
    /// Missing values in a table's feature columns (empty, NA, NaN, null, ?): impute (with the
    /// training median saved in the model) or error.
    #[arg(long, value_parser = parse_missing, default_value = "impute")]
    missing: Missing,
    /// Threads (default: every core).
    #[arg(long)]
    threads: Option<std::num::NonZeroUsize>,
}

impl DataArgs {
    fn load(&self) -> Result<(SavedModel, labelsmooth_data::input::Samples, Vec<f32>)> {
        set_threads(self.threads)?;
        let m = SavedModel::load(&self.model)?;
        let opts = LoadOptions {
            table: TableOptions {
                delimiter: self.delimiter,
                header: self.header,
                missing: self.missing,
                ..Default::default()
            },
            ..Default::default()
        };
        let (samples, inputs) = m.read(&self.data, &opts)?;
        for note in &samples.notes {
            eprintln!("{note}");
        }
        let logits = m.logits(&inputs)?;
        Ok((m, samples, logits))
    }
}

/// `labelsmooth predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    data: DataArgs,
    /// CSV of predictions: id, predicted_class, one probability column p_<class> per class
    /// (and true_class when the data has labels). Default: standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the logits `[n, classes]` as float32 `.npy`.
    #[arg(long)]
    logits: Option<PathBuf>,
    /// Probabilities without the model's fitted temperature.
    #[arg(long)]
    raw: bool,
    /// Print a JSON summary on stdout (with --out).
    #[arg(long, requires = "out")]
    json: bool,
}

#[derive(Serialize)]
struct PredictSummary<'a> {
    n: usize,
    temperature: Option<f64>,
    predicted: Vec<(&'a str, usize)>,
}

/// Runs `labelsmooth predict`.
pub fn predict(args: PredictArgs) -> Result<()> {
    for path in [&args.out, &args.logits].into_iter().flatten() {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            writable_dir(dir)?;
        }
    }
    let (m, samples, logits) = args.data.load()?;
    let probs = m.probabilities(&logits, args.raw)?;
    let csv = predictions_csv(&samples.ids, samples.labels.as_deref(), &probs, m.classes())?;
    if let Some(path) = &args.logits {
        write_atomic(
            path,
            &npy::to_bytes_f32(&logits, &[samples.len(), m.classes().len()]),
        )?;
    }
    match &args.out {
        Some(path) => {
            write_atomic(path, &csv)?;
            let k = m.classes().len();
            let mut counts = vec![0usize; k];
            probs
                .chunks_exact(k)
                .for_each(|p| counts[labelsmooth::calibration::argmax(p)] += 1);
            let temperature = m.card.temperature.filter(|_| !args.raw);
            if args.json {
                let s = PredictSummary {
                    n: samples.len(),
                    temperature,
                    predicted: m.classes().iter().map(String::as_str).zip(counts).collect(),
                };
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "{} predictions written to {}{}",
                    samples.len(),
                    path.display(),
                    temperature.map_or(String::new(), |t| format!(
                        " (probabilities at the fitted temperature {t:.4}; --raw for the uncalibrated ones)"
                    ))
                );
            }
        }
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&csv)?;
        }
    }
    Ok(())
}

/// `labelsmooth evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Folder for metrics.json, predictions.csv, figures/ and report.html.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Fit a temperature on this data (minimum NLL) and save it in the model folder, so that
    /// `predict` gives calibrated probabilities.
    #[arg(long)]
    fit_temperature: bool,
    /// Bins of the calibration errors and the reliability diagram.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    bins: u64,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// What `evaluate --json` prints and `metrics.json` holds.
#[derive(Serialize)]
struct Evaluation<'a> {
    model: String,
    data: &'a str,
    /// The temperature the metrics are at (the saved one, before any fit here).
    temperature: Option<f64>,
    #[serde(flatten)]
    metrics: &'a Metrics,
    per_class: Vec<ClassRow>,
    macro_f1: f64,
    confusion_matrix: Vec<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fitted_temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<&'a Metrics>,
}

/// Runs `labelsmooth evaluate`.
pub fn evaluate(args: EvaluateArgs) -> Result<()> {
    let _lock = args.out.as_deref().map(claim_output).transpose()?;
    let (mut m, samples, logits) = args.data.load()?;
    let Some(labels) = m.class_ids(&samples)? else {
        bail!(
            "{}: the data has no labels to evaluate against (use `predict` for unlabelled data)",
            args.data.data
        );
    };
    let k = m.classes().len();
    let bins = args.bins as usize;
    let t = m.card.temperature.unwrap_or(1.0);
    let probs = m.probabilities(&logits, false)?;
    let before = metrics(
        &probs,
        NllFrom::Logits {
            logits: &logits,
            temperature: t,
            clipped_at: None,
        },
        &labels,
        k,
        bins,
        Binning::Uniform,
    )?;
    let confusion = confusion_matrix(&probs, &labels, k)?;
    let scores = per_class_scores(&confusion, k)?;
    let fitted = if args.fit_temperature {
        let fit = fit_temperature(&logits, &labels, k)?;
        let scaled = softmax(&apply_temperature(&logits, fit.temperature)?, k)?;
        let after = metrics(
            &scaled,
            NllFrom::Logits {
                logits: &logits,
                temperature: fit.temperature,
                clipped_at: None,
            },
            &labels,
            k,
            bins,
            Binning::Uniform,
        )?;
        Some((fit.temperature, after))
    } else {
        None
    };
    let classes = m.classes().to_vec();
    let report = Evaluation {
        model: args.data.model.display().to_string(),
        data: &args.data.data,
        temperature: m.card.temperature,
        metrics: &before,
        per_class: class_rows(&classes, &scores),
        macro_f1: scores.iter().map(|s| s.f1).sum::<f64>() / k as f64,
        confusion_matrix: confusion.chunks(k).map(<[usize]>::to_vec).collect(),
        fitted_temperature: fitted.as_ref().map(|f| f.0),
        after: fitted.as_ref().map(|f| &f.1),
    };
    if let Some(out) = &args.out {
        write_json(&out.join("metrics.json"), &report)?;
        let truth: Vec<String> = labels.iter().map(|&y| classes[y].clone()).collect();
        write_atomic(
            &out.join("predictions.csv"),
            &predictions_csv(&samples.ids, Some(&truth), &probs, &classes)?,
        )?;
        evaluate_report(out, &args.data.data, &report, &before, &classes, &confusion)?;
    }
    if let Some((t, _)) = &fitted {
        m.card.temperature = Some(*t);
        m.save_card(&args.data.model)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_evaluation(&report, &before, &classes, &scores, fitted.as_ref());
    }
    Ok(())
}

fn print_evaluation(
    report: &Evaluation<'_>,
    m: &Metrics,
    classes: &[String],
    scores: &[ClassScores],
    fitted: Option<&(f64, Metrics)>,
) {
    println!(
        "{} samples: accuracy {:.4}, NLL {:.4}, Brier {:.4}, ECE {:.4}, MCE {:.4}, RMSCE {:.4}{}",
        m.n,
        m.accuracy,
        m.nll,
        m.brier,
        m.ece,
        m.mce,
        m.rmsce,
        report.temperature.map_or(String::new(), |t| format!(
            " (at the saved temperature {t:.4})"
        ))
    );
    let width = classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$} {:>9} {:>7} {:>7} {:>8}",
        "class", "precision", "recall", "F1", "support"
    );
    for (c, s) in classes.iter().zip(scores) {
        println!(
            "{c:<width$} {:>9.4} {:>7.4} {:>7.4} {:>8}",
            s.precision, s.recall, s.f1, s.support
        );
    }
    println!("macro F1 {:.4}", report.macro_f1);
    if let Some((t, after)) = fitted {
        println!(
            "fitted temperature T = {t:.4}, saved in the model folder; after it: NLL {:.4}, ECE {:.4}, Brier {:.4}",
            after.nll, after.ece, after.brier
        );
    }
}

fn evaluate_report(
    out: &Path,
    data: &str,
    report: &Evaluation<'_>,
    m: &Metrics,
    classes: &[String],
    confusion: &[usize],
) -> Result<()> {
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    plots::reliability_diagram(&figures, "reliability", "Reliability", &m.bins, m.ece)?;
    plots::confusion_matrix(&figures, "confusion_matrix", classes, confusion)?;
    let mut reading = vec![format!(
        "Accuracy {:.2}%, NLL {:.3}, Brier {:.3}, ECE {:.3} on {} samples.",
        100.0 * m.accuracy,
        m.nll,
        m.brier,
        m.ece,
        m.n
    )];
    reading.push(confidence_reading(m, "the model is"));
    if let (Some(t), Some(after)) = (report.fitted_temperature, report.after) {
        reading.push(format!(
            "Temperature scaling fitted T = {t:.3} here (NLL {:.3} → {:.3}, ECE {:.3} → {:.3}).",
            m.nll, after.nll, m.ece, after.ece
        ));
    }
    let page = Page {
        title: format!("Evaluation: {data}"),
        intro: format!("The model folder {} on {data}.", report.model),
        reading,
        sections: vec![
            Section {
                heading: "Metrics".into(),
                table: Some(metrics_table(&[("every sample".into(), m)])),
                figures: vec![(
                    "reliability".into(),
                    "Reliability diagram: accuracy per confidence bin".into(),
                )],
            },
            class_section("Per class".into(), &report.per_class, ""),
        ],
    };
    write_report(&out.join("report.html"), &page, &figures)
}

/// `labelsmooth import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A torchvision state_dict: `.pth`/`.pt` (torch.save) or `.safetensors`.
    #[arg(long = "from")]
    from: PathBuf,
    /// The architecture of the weights.
    #[arg(long, value_enum)]
    model: ImportModel,
    /// Width multiplier the weights were made with (torchvision's width_mult).
    #[arg(long, default_value_t = 1.0)]
    width: f64,
    /// Class names, one per line, in the order of the classifier's outputs (default: 0, 1, ...).
    #[arg(long)]
    class_names: Option<PathBuf>,
    /// Side images are resized to before ImageNet normalization.
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// The model folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Architectures `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ImportModel {
    /// torchvision.models.mobilenet_v2.
    #[value(name = "mobilenet-v2")]
    MobilenetV2,
}

/// Runs `labelsmooth import`.
pub fn import(args: ImportArgs) -> Result<()> {
    use labelsmooth_burn::burn::tensor::Device;
    use labelsmooth_burn::mobilenet::MobileNetV2Config;
    use labelsmooth_burn::train::{Classifier, ModelSpec};
    use labelsmooth_experiment::InputSchema;
    use labelsmooth_experiment::model::{IMAGENET_MEAN, IMAGENET_STD};

    if !(args.width > 0.0 && args.width.is_finite()) {
        bail!("--width {} must be finite and > 0", args.width);
    }
    if args.image_size < 32 {
        bail!(
            "--image-size {} is too small for MobileNetV2 (at least 32)",
            args.image_size
        );
    }
    let names = match &args.class_names {
        Some(p) => Some(read_class_names(p)?),
        None => None,
    };
    let net = labelsmooth_burn::import::mobilenet_v2(&args.from, args.width, &Device::flex())?;
    let [_, classes] = net.classifier.weight.dims();
    let classes_names = match names {
        Some(n) if n.len() != classes => bail!(
            "{}: {} class names, but the classifier in {} has {classes} outputs",
            args.class_names
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            n.len(),
            args.from.display()
        ),
        Some(n) => n,
        None => (0..classes).map(|c| c.to_string()).collect(),
    };
    let spec = ModelSpec::MobileNet(MobileNetV2Config::new(classes).with_width(args.width));
    let mut saved = SavedModel::new(
        Classifier::MobileNet(net),
        spec,
        classes_names,
        InputSchema::Images {
            channels: 3,
            height: args.image_size,
            width: args.image_size,
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        },
    );
    saved.card.imported_from = Some(args.from.display().to_string());
    // Claimed once everything has been read and checked, so that a failed import writes nothing.
    let _lock = claim_output(&args.out)?;
    saved.save(&args.out)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"model": "mobilenet-v2", "width": args.width, "classes": classes, "out": args.out})
        );
    } else {
        println!(
            "mobilenet-v2 (width {}, {classes} classes) from {} written to {}",
            args.width,
            args.from.display(),
            args.out.display()
        );
    }
    Ok(())
}

/// One class name per non-empty line; duplicates are an error.
pub(crate) fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let names = labelsmooth_data::input::read_lines(path)?;
    let mut seen = std::collections::HashSet::new();
    if let Some(d) = names.iter().find(|n| !seen.insert(n.as_str())) {
        bail!("{}: class name `{d}` appears twice", path.display());
    }
    Ok(names)
}

/// Trains the setting a sweep or comparison chose (`spec`) on a stratified 80% of `d` (split by
/// `seed`), measures it on the other 20%, and writes its model folder to `dir`.
pub(crate) fn save_best(
    dir: &Path,
    d: &labelsmooth_data::Dataset,
    data: &str,
    spec: &labelsmooth_experiment::TrialSpec,
    what: &str,
    json: bool,
) -> Result<()> {
    let split = labelsmooth::split::stratified_split(&d.labels, 0.2, spec.train.seed)?;
    let r = labelsmooth_experiment::run_trial(
        d,
        &split.train,
        &split.valid,
        spec,
        &mut crate::progress::Console::new(json),
    )?;
    let on = format!(
        "held-out 20% ({} rows, seed {})",
        split.valid.len(),
        spec.train.seed
    );
    SavedModel::from_trial(&r, d, data, spec, split.train.len(), &on).save(dir)?;
    if !json {
        println!(
            "best setting ({what}) trained on {} rows: held-out accuracy {:.4}, NLL {:.4}; model saved to {}",
            split.train.len(),
            r.eval.accuracy,
            r.eval.nll,
            dir.display()
        );
    }
    Ok(())
}
