//! `labelsmooth distill`: is a teacher trained with label smoothing a worse teacher? (Müller et
//! al. 2019, section 5.)

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use labelsmooth_experiment::distill::{DistillResult, DistillRow};
use labelsmooth_experiment::io::{claim_output, write_atomic, write_json};
use labelsmooth_experiment::summary::CvStats;
use labelsmooth_experiment::{DistillationStudy, ModelKind, TrialSpec};
use serde::Serialize;

use crate::args::{Common, ModelArg, parse_alpha};
use crate::plots;
use crate::progress::Console;
use crate::report::{Page, Section, Table, write_report};

fn parse_temperature(s: &str) -> Result<f32, String> {
    let t: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(t.is_finite() && t > 0.0) {
        return Err(format!("temperature {t} must be finite and > 0"));
    }
    Ok(t)
}

fn parse_weight(s: &str) -> Result<f32, String> {
    let w: f32 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if !(0.0..=1.0).contains(&w) {
        return Err(format!("the teacher's weight {w} is outside [0, 1]"));
    }
    Ok(w)
}

/// `labelsmooth distill` (the data flags and `--teacher-model`, `--teacher-hidden` are those
/// of `train`, for the teacher).
#[derive(Args, Debug)]
pub struct DistillArgs {
    #[command(flatten)]
    common: Common,
    /// The student's model family (default: the teacher's). A student of the teacher's own
    /// architecture and size (for an MLP, --student-hidden equal to --teacher-hidden) is
    /// born-again distillation; its smoothed-label baseline is then the teacher itself (same
    /// model, seed and training).
    #[arg(long, value_enum)]
    student_model: Option<ModelArg>,
    /// Hidden layer sizes of an MLP student (default: 32, smaller than the teacher's default 128).
    #[arg(long, value_delimiter = ',')]
    student_hidden: Option<Vec<usize>>,
    /// The teachers' smoothing factors.
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.2", value_parser = parse_alpha)]
    smoothing: Vec<f32>,
    /// Distillation temperatures τ.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4", value_parser = parse_temperature)]
    temperatures: Vec<f32>,
    /// Weight λ of the teacher's term: the student's loss is (1 − λ)·CE(labels) +
    /// λ·τ²·KL(teacher_τ ‖ student_τ).
    #[arg(long, default_value = "0.5", value_parser = parse_weight)]
    weight: f32,
    /// Stratified folds.
    #[arg(long, default_value_t = 3)]
    folds: usize,
    /// Folder for results.json, distill.csv, figures/ and report.html.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `results.json` of `distill --out`, and what `--json` prints.
#[derive(Serialize)]
struct DistillOutput<'a> {
    data: &'a str,
    version: &'static str,
    study: &'a DistillationStudy,
    rows: &'a [DistillRow],
    reproduced: Option<bool>,
    reading: &'a [String],
}

/// The student these flags describe: the teacher's training settings on the student's model.
fn student_spec(args: &DistillArgs) -> TrialSpec {
    let c = &args.common;
    let model = args.student_model.unwrap_or(c.model);
    let mut flags = c.clone();
    flags.model = model;
    flags.hidden = args.student_hidden.clone().or(Some(vec![32]));
    flags.trial(0.0)
}

/// Runs `labelsmooth distill`.
pub fn distill(args: DistillArgs) -> Result<()> {
    let c = &args.common;
    crate::args::set_threads(c.threads)?;
    let _lock = args.out.as_deref().map(claim_output).transpose()?;
    let d = c.load()?;
    let study = DistillationStudy {
        teacher: c.trial(0.0),
        student: student_spec(&args),
        factors: args.smoothing.clone(),
        temperatures: args.temperatures.clone(),
        weight: args.weight,
        folds: args.folds,
        seed: c.seed,
    };
    let result = study.run(&d, &mut Console::new(c.json))?;
    let reading = reading(&study, &result);
    if let Some(out) = &args.out {
        outputs(out, &c.data, &study, &result, &reading)?;
    }
    let output = DistillOutput {
        data: &c.data,
        version: env!("CARGO_PKG_VERSION"),
        study: &study,
        rows: &result.rows,
        reproduced: result.reproduced(),
        reading: &reading,
    };
    if c.json {
        println!("{}", serde_json::to_string(&output)?);
    } else {
        println!(
            "{}: teacher {}, student {}, {}-fold stratified cross-validation, λ = {}",
            c.data,
            describe(&study.teacher),
            describe(&study.student),
            study.folds,
            study.weight
        );
        print_rows(&study, &result);
        for line in &reading {
            println!("{line}");
        }
    }
    Ok(())
}

/// `mlp 128`, `lstm`.
pub(crate) fn describe(spec: &TrialSpec) -> String {
    match spec.model {
        ModelKind::Mlp => format!(
            "mlp {}",
            spec.hidden
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()
                .join("-")
        ),
        other => other.name().to_string(),
    }
}

fn pm(s: &CvStats) -> String {
    format!("{:.4} ± {:.4}", s.accuracy_mean, s.accuracy_std)
}

/// The table's header and rows: α, teacher, baseline student, a student per temperature.
pub(crate) fn table(study: &DistillationStudy, result: &DistillResult) -> Table {
    let mut header = vec![
        "teacher α".to_string(),
        "teacher accuracy".into(),
        "student on smoothed labels".into(),
    ];
    header.extend(
        study
            .temperatures
            .iter()
            .map(|t| format!("student, τ = {t}")),
    );
    let rows = result
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![r.smoothing.to_string(), pm(&r.teacher), pm(&r.baseline)];
            row.extend(r.students.iter().map(|s| pm(&s.stats)));
            row
        })
        .collect();
    Table { header, rows }
}

fn print_rows(study: &DistillationStudy, result: &DistillResult) {
    let t = table(study, result);
    println!("{}", t.header.join(" | "));
    for row in &t.rows {
        println!("{}", row.join(" | "));
    }
}

/// Sentences that read the study: the teachers, the best students and whether the finding of
/// Müller et al. reproduced, against the fold-to-fold spread.
pub(crate) fn reading(study: &DistillationStudy, result: &DistillResult) -> Vec<String> {
    let mut out = Vec::new();
    let teachers: Vec<String> = result
        .rows
        .iter()
        .map(|r| {
            format!(
                "{:.2}% at α = {}",
                100.0 * r.teacher.accuracy_mean,
                r.smoothing
            )
        })
        .collect();
    out.push(format!(
        "Teachers ({}): {}.",
        describe(&study.teacher),
        teachers.join(", ")
    ));
    let students: Vec<String> = result
        .rows
        .iter()
        .filter_map(|r| {
            r.best_student().map(|s| {
                format!(
                    "{:.2}% ± {:.2}% from the teacher of α = {} (τ = {}; {:.2}% on labels smoothed by {} alone)",
                    100.0 * s.stats.accuracy_mean,
                    100.0 * s.stats.accuracy_std,
                    r.smoothing,
                    s.temperature,
                    100.0 * r.baseline.accuracy_mean,
                    r.smoothing
                )
            })
        })
        .collect();
    out.push(format!(
        "Best distilled students ({}): {}.{}",
        describe(&study.student),
        students.join("; "),
        if study.temperatures.len() > 1 {
            " The best τ is picked on the same held-out folds it is measured on, which flatters the distilled students a little against the baseline; the table has every τ."
        } else {
            ""
        }
    ));
    let zero = result.rows.iter().find(|r| r.smoothing == 0.0);
    let best_zero = zero.and_then(DistillRow::best_student);
    match (result.reproduced(), best_zero) {
        (Some(true), Some(z)) => {
            let gaps: Vec<f64> = result
                .rows
                .iter()
                .filter(|r| r.smoothing > 0.0)
                .filter_map(|r| r.best_student())
                .map(|s| z.stats.accuracy_mean - s.stats.accuracy_mean)
                .collect();
            let smallest = gaps.iter().cloned().fold(f64::INFINITY, f64::min);
            let spread = z.stats.accuracy_std;
            out.push(format!(
                "Müller et al.'s finding reproduced here: the unsmoothed teacher made the best student, {:.2} points or more ahead of every smoothed teacher's best student{}.",
                100.0 * smallest,
                if smallest <= spread {
                    format!(
                        ", though the smallest gap is inside the fold-to-fold spread ({:.2} points)",
                        100.0 * spread
                    )
                } else {
                    String::new()
                }
            ));
        }
        (Some(false), Some(z)) => {
            let better: Vec<String> = result
                .rows
                .iter()
                .filter(|r| r.smoothing > 0.0)
                .filter_map(|r| r.best_student().map(|s| (r, s)))
                .filter(|(_, s)| s.stats.accuracy_mean >= z.stats.accuracy_mean)
                .map(|(r, s)| {
                    format!(
                        "α = {} ({:.2}%)",
                        r.smoothing,
                        100.0 * s.stats.accuracy_mean
                    )
                })
                .collect();
            out.push(format!(
                "Müller et al.'s finding did not reproduce here: the best student of the teacher with {} was at least as accurate as that of the unsmoothed teacher ({:.2}%).",
                better.join(", "),
                100.0 * z.stats.accuracy_mean
            ));
        }
        _ => out.push(
            "Give α = 0 and at least one α > 0 to compare smoothed and unsmoothed teachers.".into(),
        ),
    }
    out
}

/// The figure of Müller et al.'s figure 6: student accuracy against the teacher's smoothing.
pub(crate) fn figure(figures: &Path, name: &str, result: &DistillResult) -> Result<()> {
    let x: Vec<String> = result
        .rows
        .iter()
        .map(|r| r.smoothing.to_string())
        .collect();
    let pick = |f: &dyn Fn(&DistillRow) -> Option<&CvStats>| -> Vec<(f64, f64)> {
        result
            .rows
            .iter()
            .map(|r| f(r).map_or((f64::NAN, 0.0), |s| (s.accuracy_mean, s.accuracy_std)))
            .collect()
    };
    plots::series_error_bars(
        figures,
        name,
        (
            "Students of teachers trained with smoothing",
            "teacher's smoothing factor α",
            "accuracy",
        ),
        &x,
        &[
            ("teacher".into(), pick(&|r| Some(&r.teacher))),
            (
                "student, distilled (best τ)".into(),
                pick(&|r| r.best_student().map(|s| &s.stats)),
            ),
            (
                "student on labels smoothed by α".into(),
                pick(&|r| Some(&r.baseline)),
            ),
        ],
    )
}

/// distill.csv: one row per teacher smoothing factor, numbers in full precision.
pub fn csv_bytes(study: &DistillationStudy, result: &DistillResult) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "teacher_smoothing".to_string(),
        "teacher_accuracy_mean".into(),
        "teacher_accuracy_std".into(),
        "baseline_accuracy_mean".into(),
        "baseline_accuracy_std".into(),
    ];
    for tau in &study.temperatures {
        header.push(format!("student_t{tau}_accuracy_mean"));
        header.push(format!("student_t{tau}_accuracy_std"));
        header.push(format!("student_t{tau}_nll_mean"));
    }
    w.write_record(&header)?;
    for r in &result.rows {
        let mut row = vec![
            r.smoothing.to_string(),
            r.teacher.accuracy_mean.to_string(),
            r.teacher.accuracy_std.to_string(),
            r.baseline.accuracy_mean.to_string(),
            r.baseline.accuracy_std.to_string(),
        ];
        for s in &r.students {
            row.push(s.stats.accuracy_mean.to_string());
            row.push(s.stats.accuracy_std.to_string());
            row.push(s.stats.nll_mean.to_string());
        }
        w.write_record(&row)?;
    }
    w.into_inner().context("cannot format distill.csv")
}

fn outputs(
    out: &Path,
    data: &str,
    study: &DistillationStudy,
    result: &DistillResult,
    reading: &[String],
) -> Result<()> {
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create", figures.display()))?;
    figure(&figures, "distillation", result)?;
    write_atomic(&out.join("distill.csv"), &csv_bytes(study, result)?)?;
    write_json(
        &out.join("results.json"),
        &DistillOutput {
            data,
            version: env!("CARGO_PKG_VERSION"),
            study,
            rows: &result.rows,
            reproduced: result.reproduced(),
            reading,
        },
    )?;
    let page = Page {
        title: format!("Distillation from smoothed teachers: {data}"),
        intro: format!(
            "Per fold and teacher smoothing factor α: a teacher ({}) trained with α; students ({}) trained on the labels and the teacher's outputs softened by τ (loss (1 − λ)·CE + λ·τ²·KL, λ = {}, Hinton et al. 2015), and a student trained on labels smoothed by α alone. Stratified {}-fold cross-validation, seed {}; accuracy mean ± std over folds.",
            describe(&study.teacher),
            describe(&study.student),
            study.weight,
            study.folds,
            study.seed
        ),
        reading: reading.to_vec(),
        sections: vec![Section {
            heading: "Teachers and students".into(),
            table: Some(table(study, result)),
            figures: vec![(
                "distillation".into(),
                "Accuracy against the teacher's smoothing factor (Müller et al. 2019, figure 6), mean ± std over folds".into(),
            )],
        }],
    };
    write_report(&out.join("report.html"), &page, &figures)
}
