//! `labelsmooth compare`: regularizers compared by cross-validation.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use labelsmooth_experiment::io::{claim_output, write_atomic, write_json};
use labelsmooth_experiment::regularizer::ComparisonResult;
use labelsmooth_experiment::summary::{RegularizerRow, Summary};
use labelsmooth_experiment::{Comparison, ModelKind, RegularizerSettings, Regularizers};
use serde::Serialize;

use crate::args::{Common, parse_alpha};
use crate::plots;
use crate::progress::Console;
use crate::report::{
    Page, Section, cv_class_section, cv_reading, cv_regime, print_table, summary_csv,
    summary_table, write_report,
};

fn parse_regularizers(s: &str) -> Result<Regularizers, String> {
    s.parse()
        .map_err(|e: labelsmooth_experiment::Error| e.to_string())
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
        default_value = "none,l2,dropout,smoothing,confidence-penalty",
        value_parser = parse_regularizers
    )]
    regularizers: Vec<Regularizers>,
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
    /// Train the best combination on a stratified 80% of the data and save its model folder
    /// here (metrics on the other 20%).
    #[arg(long)]
    save_best: Option<PathBuf>,
}

/// What `compare --json` prints.
#[derive(Serialize)]
struct CompareOutput<'a> {
    summary: &'a Summary<RegularizerRow>,
    best: &'a Option<RegularizerRow>,
}

/// `results.json` of `compare --out`.
#[derive(Serialize)]
struct CompareResults<'a> {
    data: &'a str,
    model: ModelKind,
    seed: u64,
    version: &'static str,
    comparison: &'a Comparison,
    summary: &'a Summary<RegularizerRow>,
    best: &'a Option<RegularizerRow>,
    folds: &'a [labelsmooth_experiment::summary::FoldMetrics],
    /// The class names, in the order of the confusion matrices.
    classes: &'a [String],
}

/// Runs `labelsmooth compare`.
pub fn compare(args: CompareArgs) -> Result<()> {
    let c = &args.common;
    crate::args::set_threads(c.threads)?;
    let _locks = [&args.out, &args.save_best]
        .into_iter()
        .flatten()
        .map(|dir| claim_output(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let d = c.load()?;
    let comparison = Comparison {
        regularizers: args.regularizers.clone(),
        settings: RegularizerSettings {
            l2: args.l2,
            dropout: args.dropout_rate,
            alpha: args.alpha,
            beta: args.beta,
        },
        folds: args.folds,
        seed: c.seed,
        base: c.trial(0.0),
    };
    let result = comparison.run(&d, &mut Console::new(c.json))?;
    if let Some(out) = &args.out {
        compare_outputs(out, c, &comparison, &result)?;
    }
    if c.json {
        let o = CompareOutput {
            summary: &result.summary,
            best: &result.best,
        };
        println!("{}", serde_json::to_string(&o)?);
    } else {
        println!(
            "{} / {}, {}-fold stratified cross-validation",
            c.data,
            c.model_name(),
            args.folds
        );
        print_table("regularizer", 26, result.summary.rows());
        if let Some(b) = &result.best {
            println!("best: {}", b.regularizer);
        }
    }
    if let (Some(dir), Some(best)) = (&args.save_best, &result.best) {
        let chosen: Regularizers = best.regularizer.parse()?;
        let spec = chosen.apply(comparison.base.clone(), &comparison.settings);
        crate::models::save_best(dir, &d, &c.data, &spec, &best.regularizer, c.json)?;
    }
    Ok(())
}

/// results.json, compare.csv, the figure and the report of `compare --out`.
fn compare_outputs(
    out: &Path,
    c: &Common,
    comparison: &Comparison,
    result: &ComparisonResult,
) -> Result<()> {
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    let rows = result.summary.rows();
    plots::error_bars(
        &figures,
        "regularizers",
        (
            "Regularizers (cross-validated, mean ± std)",
            "regularizer",
            "accuracy",
        ),
        &plots::points(rows),
    )?;
    write_atomic(&out.join("compare.csv"), &summary_csv("regularizer", rows)?)?;
    write_json(
        &out.join("results.json"),
        &CompareResults {
            data: &c.data,
            model: c.model.into(),
            seed: c.seed,
            version: env!("CARGO_PKG_VERSION"),
            comparison,
            summary: &result.summary,
            best: &result.best,
            folds: &result.folds,
            classes: &result.classes,
        },
    )?;
    let mut sections = vec![Section {
        heading: "Regularizers".into(),
        table: Some(summary_table("regularizer", rows, false)),
        figures: vec![(
            "regularizers".into(),
            "Accuracy per regularizer, mean ± std over folds".into(),
        )],
    }];
    if let Some(best) = &result.best
        && let Some(section) =
            cv_class_section(&figures, "regularizer", rows, best, &result.classes)?
    {
        sections.push(section);
    }
    // What smoothing did to calibration is read on the settings with smoothing, against none.
    let smoothed: Vec<RegularizerRow> = rows
        .iter()
        .filter(|r| r.regularizer == "none" || r.regularizer.split('+').any(|p| p == "smoothing"))
        .cloned()
        .collect();
    let page = Page {
        title: format!("Regularizers: {}", c.data),
        intro: format!(
            "Stratified cross-validation, {} folds, seed {}.",
            comparison.folds, c.seed
        ),
        reading: match &result.best {
            Some(best) => cv_reading(
                "regularizer",
                "",
                rows,
                best,
                rows.iter().find(|r| r.regularizer == "none"),
            ),
            None => Vec::new(),
        }
        .into_iter()
        .chain(cv_regime(
            "",
            &smoothed,
            smoothed.iter().find(|r| r.regularizer == "none"),
        ))
        .collect(),
        sections,
    };
    write_report(&out.join("report.html"), &page, &figures)
}
