//! `labelsmooth sweep` and `labelsmooth merge`: the cross-validated grid over smoothing factors,
//! as independent trials that can be sharded, resumed and merged.
//!
//! A trial is a pure function of its spec (data, model, settings, factor, fold, seed). With
//! `--out DIR` each finished trial is a file `DIR/trials/a<α>_f<fold>.json`: a re-run skips
//! what is there, `--shard I/N` runs every N-th trial (a Slurm array or a Kubernetes indexed Job
//! needs nothing more), and `merge` combines folders of the same sweep into one result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use labelsmooth::split::stratified_k_fold;
use serde::{Deserialize, Serialize};

use crate::experiment::{load, run_trial};
use crate::plots;
use crate::report::{Page, Section, render, summary_csv, summary_table, write_atomic};
use crate::run::{
    Common, SummaryRow, best_of, decimal, mean_std, parse_alpha, writable_dir, write_json,
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
    /// Folder for trials/, results.json, sweep.csv, figures/ and report.html; finished trials
    /// found there are not run again.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only the trials whose index modulo N is I (0 ≤ I < N); combine shards with `merge`.
    #[arg(long, value_parser = parse_shard, requires = "out")]
    shard: Option<(usize, usize)>,
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

/// What defines a sweep: two folders merge only when these are equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SweepConfig {
    data: String,
    model: String,
    smoothing: Vec<f32>,
    folds: usize,
    seed: u64,
    trial: serde_json::Value,
}

/// One finished trial.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrialRecord {
    smoothing: f32,
    fold: usize,
    accuracy: f64,
    nll: f64,
    ece: f64,
    brier: f64,
    seconds: f64,
}

fn trial_path(dir: &Path, alpha: f32, fold: usize) -> PathBuf {
    dir.join("trials").join(format!("a{alpha}_f{fold}.json"))
}

fn read_config(dir: &Path) -> Result<SweepConfig> {
    let p = dir.join("sweep.json");
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("{}: cannot read (not a sweep folder?)", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a sweep description", p.display()))
}

fn read_trial(path: &Path) -> Result<Option<TrialRecord>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{}: not a trial record", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}: cannot read", path.display())),
    }
}

/// Runs `labelsmooth sweep`.
pub fn sweep(args: SweepArgs) -> Result<()> {
    let c = &args.common;
    let config = SweepConfig {
        data: c.data.clone(),
        model: format!("{:?}", c.model).to_lowercase(),
        smoothing: args.smoothing.clone(),
        folds: args.folds,
        seed: c.seed,
        trial: {
            // Whether a progress bar is drawn does not change a trial.
            let mut t = c.trial(0.0);
            t.train.progress = false;
            serde_json::to_value(t)?
        },
    };
    if let Some(out) = &args.out {
        writable_dir(out)?;
        std::fs::create_dir_all(out.join("trials"))
            .with_context(|| format!("{}: cannot create trials/", out.display()))?;
        // Compared as text: what this sweep would write against what the folder holds.
        let want = serde_json::to_string_pretty(&config)?;
        match std::fs::read_to_string(out.join("sweep.json")) {
            Ok(existing) if existing != want => {
                bail!(
                    "{}: holds a different sweep (see its sweep.json)",
                    out.display()
                )
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_json(&out.join("sweep.json"), &config)?
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("{}: cannot read sweep.json", out.display()));
            }
        }
    }
    let d = load(&c.data, &c.data_options())?;
    let folds = stratified_k_fold(&d.labels, args.folds, c.seed)?;
    let mut records = Vec::new();
    let mut index = 0usize;
    for &alpha in &args.smoothing {
        let spec = c.trial(alpha);
        for (fold, f) in folds.iter().enumerate() {
            let mine = args.shard.is_none_or(|(i, n)| index % n == i);
            index += 1;
            if !mine {
                continue;
            }
            if let Some(out) = &args.out
                && let Some(r) = read_trial(&trial_path(out, alpha, fold))?
            {
                records.push(r);
                continue;
            }
            let r = run_trial(&d, &f.train, &f.valid, &spec)?;
            if !c.json {
                eprintln!(
                    "smoothing {alpha}: fold {}/{}: accuracy {:.4}",
                    fold + 1,
                    folds.len(),
                    r.eval.accuracy
                );
            }
            let rec = TrialRecord {
                smoothing: alpha,
                fold,
                accuracy: r.eval.accuracy,
                nll: r.eval.nll,
                ece: r.eval.ece,
                brier: r.eval.brier,
                seconds: r.seconds,
            };
            if let Some(out) = &args.out {
                write_json(&trial_path(out, alpha, fold), &rec)?;
            }
            records.push(rec);
        }
    }
    match &args.out {
        Some(out) => finish(
            out,
            &config,
            &collect(std::slice::from_ref(out), &config)?,
            c.json,
        ),
        None => finish_in_memory(&config, &records, c.json),
    }
}

/// All trial records of `config` found in `dirs`.
fn collect(
    dirs: &[PathBuf],
    config: &SweepConfig,
) -> Result<BTreeMap<(usize, usize), TrialRecord>> {
    let mut all = BTreeMap::new();
    for dir in dirs {
        for (ai, &alpha) in config.smoothing.iter().enumerate() {
            for fold in 0..config.folds {
                if let Some(r) = read_trial(&trial_path(dir, alpha, fold))? {
                    all.insert((ai, fold), r);
                }
            }
        }
    }
    Ok(all)
}

fn summarize(
    config: &SweepConfig,
    records: &BTreeMap<(usize, usize), TrialRecord>,
) -> Vec<SummaryRow> {
    config
        .smoothing
        .iter()
        .enumerate()
        .map(|(ai, &alpha)| {
            let rs: Vec<&TrialRecord> = (0..config.folds)
                .filter_map(|f| records.get(&(ai, f)))
                .collect();
            let acc: Vec<f64> = rs.iter().map(|r| r.accuracy).collect();
            let (am, asd) = mean_std(&acc);
            SummaryRow {
                smoothing: decimal(alpha),
                accuracy_mean: am,
                accuracy_std: asd,
                nll_mean: mean_std(&rs.iter().map(|r| r.nll).collect::<Vec<_>>()).0,
                ece_mean: mean_std(&rs.iter().map(|r| r.ece).collect::<Vec<_>>()).0,
                folds: rs.len(),
            }
        })
        .collect()
}

fn print_summary(
    config: &SweepConfig,
    summary: &[SummaryRow],
    best: &Option<SummaryRow>,
    json: bool,
    extra: serde_json::Value,
) {
    if json {
        let mut v = serde_json::json!({ "summary": summary, "best": best });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        println!("{v}");
    } else {
        println!(
            "{} / {}, {}-fold stratified cross-validation",
            config.data, config.model, config.folds
        );
        println!(
            "{:>9} {:>15} {:>8} {:>8}",
            "smoothing", "accuracy", "NLL", "ECE"
        );
        for r in summary {
            println!(
                "{:>9} {:>8.4} ± {:.4} {:>8.4} {:>8.4}",
                r.smoothing, r.accuracy_mean, r.accuracy_std, r.nll_mean, r.ece_mean
            );
        }
        if let Some(b) = best {
            println!("best by accuracy: smoothing {}", b.smoothing);
        }
    }
}

fn finish_in_memory(config: &SweepConfig, records: &[TrialRecord], json: bool) -> Result<()> {
    let map: BTreeMap<(usize, usize), TrialRecord> = records
        .iter()
        .filter_map(|r| {
            config
                .smoothing
                .iter()
                .position(|&a| a == r.smoothing)
                .map(|ai| ((ai, r.fold), r.clone()))
        })
        .collect();
    let summary = summarize(config, &map);
    let best = best_of(&summary);
    print_summary(config, &summary, &best, json, serde_json::json!({}));
    Ok(())
}

/// Writes the result of a complete sweep into `out`, or says what is missing.
fn finish(
    out: &Path,
    config: &SweepConfig,
    records: &BTreeMap<(usize, usize), TrialRecord>,
    json: bool,
) -> Result<()> {
    let total = config.smoothing.len() * config.folds;
    if records.len() < total {
        if json {
            println!(
                "{}",
                serde_json::json!({"complete": false, "done": records.len(), "total": total, "out": out})
            );
        } else {
            println!(
                "{} of {total} trials are in {}; when every shard has run, combine them with `labelsmooth merge DIR...`",
                records.len(),
                out.display()
            );
        }
        return Ok(());
    }
    let summary = summarize(config, records);
    let best = best_of(&summary);
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    let points: Vec<(String, f64, f64)> = summary
        .iter()
        .map(|r| (r.smoothing.to_string(), r.accuracy_mean, r.accuracy_std))
        .collect();
    plots::error_bars(
        &figures,
        "accuracy_vs_smoothing",
        (
            &format!(
                "Accuracy vs smoothing factor ({}-fold CV, mean ± std)",
                config.folds
            ),
            "smoothing factor α",
            "accuracy",
        ),
        &points,
    )?;
    let keyed: Vec<(String, &SummaryRow)> = summary
        .iter()
        .map(|r| (r.smoothing.to_string(), r))
        .collect();
    let csv = summary_csv("smoothing", &keyed);
    write_atomic(&out.join("sweep.csv"), csv.as_bytes())?;
    let trials: Vec<&TrialRecord> = records.values().collect();
    write_json(
        &out.join("results.json"),
        &serde_json::json!({"config": config, "version": env!("CARGO_PKG_VERSION"), "trials": trials, "summary": summary, "best": best}),
    )?;
    let zero = summary.iter().find(|r| r.smoothing == 0.0);
    let mut reading = Vec::new();
    if let Some(b) = &best {
        reading.push(format!(
            "Best factor by accuracy: α = {} ({:.2}% ± {:.2}%).",
            b.smoothing,
            100.0 * b.accuracy_mean,
            100.0 * b.accuracy_std
        ));
        if let Some(z) = zero {
            reading.push(format!(
                "Against no smoothing: {:+.2} accuracy points, ECE {:.3} against {:.3}, NLL {:.3} against {:.3}.",
                100.0 * (b.accuracy_mean - z.accuracy_mean),
                b.ece_mean,
                z.ece_mean,
                b.nll_mean,
                z.nll_mean
            ));
        }
    }
    let page = Page {
        title: format!("Smoothing sweep: {} / {}", config.data, config.model),
        intro: format!(
            "{}-fold stratified cross-validation, seed {}, {} trials.",
            config.folds, config.seed, total
        ),
        reading,
        sections: vec![Section {
            heading: "Smoothing factor".into(),
            table: Some(summary_table("α", &keyed, true)),
            figures: vec![(
                "accuracy_vs_smoothing".into(),
                "Accuracy against the smoothing factor, mean ± std over folds".into(),
            )],
        }],
    };
    write_atomic(
        &out.join("report.html"),
        render(&page, &figures)?.as_bytes(),
    )?;
    print_summary(
        config,
        &summary,
        &best,
        json,
        serde_json::json!({"report": out.join("report.html")}),
    );
    if !json {
        println!("report: {}", out.join("report.html").display());
    }
    Ok(())
}

/// Runs `labelsmooth merge`.
pub fn merge(args: MergeArgs) -> Result<()> {
    let config = read_config(&args.dirs[0])?;
    let text = |d: &Path| {
        std::fs::read_to_string(d.join("sweep.json"))
            .with_context(|| format!("{}: cannot read sweep.json", d.display()))
    };
    let first = text(&args.dirs[0])?;
    for d in &args.dirs[1..] {
        if text(d)? != first {
            bail!(
                "{} and {} hold different sweeps",
                args.dirs[0].display(),
                d.display()
            );
        }
    }
    let records = collect(&args.dirs, &config)?;
    let total = config.smoothing.len() * config.folds;
    if records.len() < total {
        let mut missing = Vec::new();
        for (ai, a) in config.smoothing.iter().enumerate() {
            for f in 0..config.folds {
                if !records.contains_key(&(ai, f)) {
                    missing.push(format!("α {a} fold {f}"));
                }
            }
        }
        bail!(
            "{} of {total} trials found; missing: {}",
            records.len(),
            missing.join(", ")
        );
    }
    let out = args.out.clone().unwrap_or_else(|| args.dirs[0].clone());
    writable_dir(&out)?;
    std::fs::create_dir_all(out.join("trials"))
        .with_context(|| format!("{}: cannot create trials/", out.display()))?;
    write_atomic(&out.join("sweep.json"), first.as_bytes())?;
    for ((ai, fold), r) in &records {
        write_json(&trial_path(&out, config.smoothing[*ai], *fold), r)?;
    }
    finish(&out, &config, &records, args.json)
}
