//! `labelsmooth sweep` and `labelsmooth merge`: the cross-validated grid over smoothing factors
//! of [`labelsmooth_experiment::Sweep`], with a folder of trials that shards, resumes and merges.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use labelsmooth_experiment::io::{claim_output, write_atomic, write_json};
use labelsmooth_experiment::summary::{FactorRow, Summary};
use labelsmooth_experiment::{
    FolderStore, MemoryStore, Sweep, SweepResult, TrialKey, TrialRecord, TrialStore,
};
use serde::Serialize;

use crate::args::{Common, parse_alpha};
use crate::plots;
use crate::progress::Console;
use crate::report::{
    Page, Section, cv_class_section, cv_reading, cv_regime, print_table, summary_csv,
    summary_table, write_report,
};

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not I/N"))?;
    let i: usize = i.parse().map_err(|_| format!("`{s}`: I is not a number"))?;
    let n: usize = n.parse().map_err(|_| format!("`{s}`: N is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("`{s}`: need 0 <= I < N"));
    }
    Ok((i, n))
}

/// `labelsmooth sweep`.
#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    common: Common,
    /// Smoothing factors to compare.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.15,0.2,0.3", value_parser = parse_alpha)]
    smoothing: Vec<f32>,
    /// Stratified folds.
    #[arg(long, default_value_t = 3)]
    folds: usize,
    /// Folder for sweep.json, trials/, results.json, sweep.csv, figures/ and report.html;
    /// finished trials found there are not run again.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only the trials whose index modulo N is I (0 ≤ I < N); combine shards with `merge`.
    #[arg(long, value_parser = parse_shard, requires = "out")]
    shard: Option<(usize, usize)>,
    /// Train the best factor on a stratified 80% of the data and save its model folder here
    /// (metrics on the other 20%).
    #[arg(long, conflicts_with = "shard")]
    save_best: Option<PathBuf>,
}

/// `labelsmooth merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Folders written by `sweep --out` (shards of one sweep).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Folder for the merged result (default: the first folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// What `sweep --json` and `merge --json` print for a complete sweep.
#[derive(Serialize)]
struct SweepOutput<'a> {
    summary: &'a Summary<FactorRow>,
    best: &'a Option<FactorRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<PathBuf>,
}

/// What `sweep --json` prints for a shard of an unfinished sweep.
#[derive(Serialize)]
struct Partial<'a> {
    complete: bool,
    done: usize,
    total: usize,
    out: &'a Path,
}

/// Runs `labelsmooth sweep`.
pub fn sweep(args: SweepArgs) -> Result<()> {
    let c = &args.common;
    crate::args::set_threads(c.threads)?;
    let sweep = Sweep {
        data: c.data.clone(),
        factors: args.smoothing.clone(),
        folds: args.folds,
        seed: c.seed,
        base: c.trial(0.0),
    };
    let keys = match args.shard {
        Some((i, n)) => sweep.shard(i, n)?,
        None => sweep.trials(),
    };
    let _locks = [&args.out, &args.save_best]
        .into_iter()
        .flatten()
        .map(|dir| claim_output(dir))
        .collect::<Result<Vec<_>, _>>()?;
    let mut console = Console::new(c.json);
    let d = c.load()?;
    let records = match &args.out {
        Some(out) => {
            let mut store = FolderStore::create(out, &sweep)?;
            sweep.run(&d, &mut store, Some(&keys), &mut console)?;
            let records = sweep.collect(&[&store])?;
            finish(out, &sweep, &records, c.json)?;
            records
        }
        None => {
            let mut store = MemoryStore::default();
            sweep.run(&d, &mut store, Some(&keys), &mut console)?;
            let records = sweep.collect(&[&store])?;
            let result = sweep.result(&records)?;
            print_summary(&result, None, c.json)?;
            records
        }
    };
    if let Some(dir) = &args.save_best {
        let result = sweep.result(&records)?;
        let best = result.best.context("no factor to save")?;
        let factor = sweep
            .factors
            .iter()
            .copied()
            .find(|f| f.to_string() == best.smoothing.to_string())
            .context("the best factor is not one of the sweep's")?;
        let spec = sweep.base.clone().with_smoothing(factor);
        let what = format!("smoothing {factor}");
        crate::models::save_best(dir, &d, &c.data, &spec, &what, c.json)?;
    }
    Ok(())
}

/// Runs `labelsmooth merge`.
pub fn merge(args: MergeArgs) -> Result<()> {
    let mut stores = Vec::new();
    let mut sweep: Option<Sweep> = None;
    for dir in &args.dirs {
        let (store, s) = FolderStore::open(dir)?;
        match &sweep {
            Some(first) if *first != s => bail!(
                "{} and {} hold different sweeps",
                args.dirs[0].display(),
                dir.display()
            ),
            Some(_) => {}
            None => sweep = Some(s),
        }
        stores.push(store);
    }
    let sweep = sweep.context("no folder to merge")?;
    let refs: Vec<&dyn TrialStore> = stores.iter().map(|s| s as &dyn TrialStore).collect();
    let records = sweep.collect(&refs)?;
    // Complete before anything is written.
    let result = sweep.result(&records)?;
    let out = args.out.clone().unwrap_or_else(|| args.dirs[0].clone());
    let _lock = claim_output(&out)?;
    let mut merged = FolderStore::create(&out, &sweep)?;
    for (key, r) in &records {
        merged.put(key, r)?;
    }
    complete(&out, &result, args.json)
}

/// Writes the result of a complete sweep into `out` and prints it, or says what is missing.
fn finish(
    out: &Path,
    sweep: &Sweep,
    records: &BTreeMap<TrialKey, TrialRecord>,
    json: bool,
) -> Result<()> {
    let total = sweep.trials().len();
    if records.len() < total {
        if json {
            let p = Partial {
                complete: false,
                done: records.len(),
                total,
                out,
            };
            println!("{}", serde_json::to_string(&p)?);
        } else {
            println!(
                "{} of {total} trials are in {}; when every shard has run, combine them with `labelsmooth merge DIR...`",
                records.len(),
                out.display()
            );
        }
        return Ok(());
    }
    complete(out, &sweep.result(records)?, json)
}

/// Writes `result` into `out` (results.json, sweep.csv, the figure, the report) and prints it.
fn complete(out: &Path, result: &SweepResult, json: bool) -> Result<()> {
    let report = out.join("report.html");
    write_outputs(out, result)?;
    print_summary(result, Some(report.clone()), json)?;
    if !json {
        println!("report: {}", report.display());
    }
    Ok(())
}

fn print_summary(result: &SweepResult, report: Option<PathBuf>, json: bool) -> Result<()> {
    if json {
        let o = SweepOutput {
            summary: &result.summary,
            best: &result.best,
            report,
        };
        println!("{}", serde_json::to_string(&o)?);
        return Ok(());
    }
    let s = &result.config;
    println!(
        "{} / {}, {}-fold stratified cross-validation",
        s.data, s.base.model, s.folds
    );
    print_table("smoothing", 9, result.summary.rows());
    if let Some(b) = &result.best {
        println!(
            "best: smoothing {} (highest mean accuracy, ties broken by the lower NLL)",
            b.smoothing
        );
    }
    Ok(())
}

/// results.json, sweep.csv, the figure and the report of a complete sweep.
fn write_outputs(out: &Path, result: &SweepResult) -> Result<()> {
    let s = &result.config;
    let rows = result.summary.rows();
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    plots::error_bars(
        &figures,
        "accuracy_vs_smoothing",
        (
            &format!(
                "Accuracy vs smoothing factor ({}-fold CV, mean ± std)",
                s.folds
            ),
            "smoothing factor α",
            "accuracy",
        ),
        &plots::points(rows),
    )?;
    plots::calibration_vs_setting(
        &figures,
        "calibration_vs_smoothing",
        &format!(
            "NLL and ECE vs smoothing factor ({}-fold CV, mean ± std)",
            s.folds
        ),
        "smoothing factor α",
        rows,
    )?;
    write_atomic(&out.join("sweep.csv"), &summary_csv("smoothing", rows)?)?;
    write_json(&out.join("results.json"), result)?;
    let zero = rows.iter().find(|r| r.smoothing == 0.0);
    let reading = match &result.best {
        Some(best) => cv_reading("smoothing factor", "α = ", rows, best, zero),
        None => Vec::new(),
    }
    .into_iter()
    .chain(cv_regime("α = ", rows, zero))
    .collect();
    let mut sections = vec![Section {
        heading: "Smoothing factor".into(),
        table: Some(summary_table("α", rows, true)),
        figures: vec![
            (
                "accuracy_vs_smoothing".into(),
                "Accuracy against the smoothing factor, mean ± std over folds".into(),
            ),
            (
                "calibration_vs_smoothing".into(),
                "NLL and ECE against the smoothing factor, mean ± std over folds".into(),
            ),
        ],
    }];
    if let Some(best) = &result.best
        && let Some(section) = cv_class_section(&figures, "α", rows, best, result.classes())?
    {
        sections.push(section);
    }
    let page = Page {
        title: format!("Smoothing sweep: {} / {}", s.data, s.base.model),
        intro: format!(
            "{}-fold stratified cross-validation, seed {}, {} trials.",
            s.folds,
            s.seed,
            s.trials().len()
        ),
        reading,
        sections,
    };
    write_report(&out.join("report.html"), &page, &figures)
}
