//! The report's pieces that read the experiments' summaries (cross-validated rows); the page
//! itself, its tables and the per-class section are `labelsmooth_report::html`'s.

use std::path::Path;

use anyhow::{Context, Result};
use labelsmooth::calibration::ClassScores;
use labelsmooth_experiment::summary::Row;

pub use labelsmooth_report::html::*;

/// Cross-validated summary rows `(key, row)` as a table whose first column is named `key`;
/// with `folds`, a last column holds the number of folds.
pub fn summary_table<R: Row>(key: &str, rows: &[R], folds: bool) -> Table {
    let mut header: Vec<String> = [key, "accuracy", "± std", "NLL", "± std", "ECE", "± std"]
        .map(String::from)
        .to_vec();
    if folds {
        header.push("folds".into());
    }
    Table {
        header,
        rows: rows
            .iter()
            .map(|row| {
                let r = row.stats();
                let mut cells = vec![
                    row.key(),
                    f4(r.accuracy_mean),
                    f4(r.accuracy_std),
                    f4(r.nll_mean),
                    f4(r.nll_std),
                    f4(r.ece_mean),
                    f4(r.ece_std),
                ];
                if folds {
                    cells.push(r.folds.to_string());
                }
                cells
            })
            .collect(),
    }
}

/// The same rows as CSV: `key,accuracy_mean,accuracy_std,nll_mean,nll_std,ece_mean,ece_std,folds`.
pub fn summary_csv<R: Row>(key: &str, rows: &[R]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        key,
        "accuracy_mean",
        "accuracy_std",
        "nll_mean",
        "nll_std",
        "ece_mean",
        "ece_std",
        "folds",
    ])?;
    for row in rows {
        let r = row.stats();
        w.write_record([
            row.key(),
            r.accuracy_mean.to_string(),
            r.accuracy_std.to_string(),
            r.nll_mean.to_string(),
            r.nll_std.to_string(),
            r.ece_mean.to_string(),
            r.ece_std.to_string(),
            r.folds.to_string(),
        ])?;
    }
    w.into_inner().context("cannot format the summary CSV")
}

/// The regime of the unsmoothed setting `baseline` of a cross-validation ([`confidence_regime`],
/// from the mean confidence over the folds) and what was measured ([`cv_measured`]). Empty when
/// the baseline has no recorded confidence.
pub fn cv_regime<R: Row>(prefix: &str, rows: &[R], baseline: Option<&R>) -> Vec<String> {
    let Some(base) = baseline else {
        return Vec::new();
    };
    let b = base.stats();
    let Some(conf) = b.confidence_mean else {
        return Vec::new();
    };
    let mut out = vec![confidence_regime(
        &format!("Without smoothing ({prefix}{}), the model", base.key()),
        b.accuracy_mean,
        conf,
        None,
    )];
    out.extend(cv_measured(
        prefix,
        rows,
        baseline,
        regime_word(b.accuracy_mean, conf),
    ));
    out
}

/// What a cross-validation measured against the prediction of [`confidence_regime`]: the ECE of
/// `baseline` against the lowest ECE among the other `rows` (settings with smoothing), and
/// whether that went as predicted for a model in `regime` ([`regime_word`]): smoothing should
/// lower the ECE of an over-confident model and not of the others.
pub fn cv_measured<R: Row>(
    prefix: &str,
    rows: &[R],
    baseline: Option<&R>,
    regime: &str,
) -> Option<String> {
    let over = regime == "over-confident";
    let base = baseline?;
    let b = base.stats();
    let lowest = rows
        .iter()
        .filter(|r| r.key() != base.key())
        .min_by(|x, y| x.stats().ece_mean.total_cmp(&y.stats().ece_mean))?;
    let l = lowest.stats();
    let improved = l.ece_mean < b.ece_mean;
    Some(format!(
        "Measured: cross-validated ECE {:.3} without smoothing; {} {:.3} at {prefix}{} (NLL {:.3} against {:.3}). {}",
        b.ece_mean,
        if improved {
            "lowest"
        } else {
            "no setting lower, lowest"
        },
        l.ece_mean,
        lowest.key(),
        l.nll_mean,
        b.nll_mean,
        match (over, improved) {
            (true, true) | (false, false) => "As predicted.".to_string(),
            (true, false) => {
                "Against the prediction: smoothing did not calibrate this over-confident model."
                    .to_string()
            }
            (false, true) =>
                format!("Against the prediction: smoothing calibrated this {regime} model better."),
        }
    ))
}

/// Sentences that read cross-validated rows for a user: the best setting (`what` names the
/// kind, e.g. "smoothing factor", and `prefix` goes before each setting's key, e.g. "α = "), the settings it ties with, and against `baseline` (no
/// smoothing, no regularizer) whether its accuracy gain is outside the fold-to-fold spread and
/// what it does to NLL and ECE.
pub fn cv_reading<R: Row>(
    what: &str,
    prefix: &str,
    rows: &[R],
    best: &R,
    baseline: Option<&R>,
) -> Vec<String> {
    let name = |r: &R| format!("{prefix}{}", r.key());
    let b = best.stats();
    let mut out = vec![format!(
        "Best {what}: {} ({:.2}% ± {:.2}% accuracy over {} folds; the highest mean accuracy, ties broken by the lower mean NLL).",
        name(best),
        100.0 * b.accuracy_mean,
        100.0 * b.accuracy_std,
        b.folds
    )];
    let tied: Vec<&R> = rows
        .iter()
        .filter(|r| r.key() != best.key() && r.stats().accuracy_mean == b.accuracy_mean)
        .collect();
    if !tied.is_empty() {
        let names: Vec<String> = tied.iter().map(|r| name(r)).collect();
        let nll_tie = tied.iter().all(|r| r.stats().nll_mean == b.nll_mean);
        out.push(if nll_tie {
            format!(
                "{} ties with {} on mean accuracy and mean NLL: it is named only because it comes first.",
                name(best),
                names.join(", ")
            )
        } else {
            format!(
                "{} ties with {} on mean accuracy ({:.2}%); its lower mean NLL ({:.3}, against {}) names it.",
                name(best),
                names.join(", "),
                100.0 * b.accuracy_mean,
                b.nll_mean,
                tied.iter()
                    .map(|r| format!("{:.3}", r.stats().nll_mean))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    let Some(base) = baseline else {
        return out;
    };
    let z = base.stats();
    if base.key() == best.key() {
        out.push(format!("No {what} beats {} on mean accuracy.", name(base)));
        return out;
    }
    let gain = 100.0 * (b.accuracy_mean - z.accuracy_mean);
    let spread = 100.0 * b.accuracy_std.max(z.accuracy_std);
    out.push(if gain.abs() <= spread {
        format!(
            "Its accuracy gain over {} ({gain:+.2} points) is inside the fold-to-fold spread (std up to {spread:.2} points): these folds do not tell the two apart.",
            name(base)
        )
    } else {
        format!(
            "Its accuracy gain over {} ({gain:+.2} points) is larger than the fold-to-fold spread (std up to {spread:.2} points).",
            name(base)
        )
    });
    let word = |new: f64, old: f64| {
        if new < old {
            "better"
        } else if new > old {
            "worse"
        } else {
            "the same"
        }
    };
    out.push(format!(
        "What it does to calibration against {}: NLL {:.3} against {:.3} ({}), ECE {:.3} against {:.3} ({}).",
        name(base),
        b.nll_mean,
        z.nll_mean,
        word(b.nll_mean, z.nll_mean),
        b.ece_mean,
        z.ece_mean,
        word(b.ece_mean, z.ece_mean)
    ));
    out
}

/// The per-class section of a cross-validated report: each setting's F1 per class from its
/// held-out confusion matrix pooled over the folds, and the best setting's matrix as the
/// figure `confusion_matrix` in `figures`. `None` when the rows carry no matrices.
pub fn cv_class_section<R: Row>(
    figures: &Path,
    key: &str,
    rows: &[R],
    best: &R,
    classes: &[String],
) -> Result<Option<Section>> {
    let k = classes.len();
    if k == 0 || rows.iter().any(|r| r.confusion().len() != k * k) {
        return Ok(None);
    }
    let scores: Vec<Vec<ClassScores>> = rows
        .iter()
        .map(|r| labelsmooth::calibration::per_class_scores(r.confusion(), k))
        .collect::<labelsmooth::Result<_>>()?;
    let mut header = vec!["class".to_string(), "support".to_string()];
    header.extend(rows.iter().map(|r| format!("F1, {key} {}", r.key())));
    let mut table_rows: Vec<Vec<String>> = (0..k)
        .map(|c| {
            let mut cells = vec![classes[c].clone(), scores[0][c].support.to_string()];
            cells.extend(scores.iter().map(|s| f4(s[c].f1)));
            cells
        })
        .collect();
    let mut macro_row = vec!["macro F1".to_string(), String::new()];
    macro_row.extend(
        scores
            .iter()
            .map(|s| f4(s.iter().map(|c| c.f1).sum::<f64>() / k as f64)),
    );
    table_rows.push(macro_row);
    crate::plots::confusion_matrix(figures, "confusion_matrix", classes, best.confusion())?;
    Ok(Some(Section {
        heading: "Per class, held out, pooled over the folds".into(),
        table: Some(Table {
            header,
            rows: table_rows,
        }),
        figures: vec![(
            "confusion_matrix".into(),
            format!(
                "Confusion matrix of {key} {} over every held-out fold: rows are the true classes",
                best.key()
            ),
        )],
    }))
}

/// Prints cross-validated rows as an aligned table on stdout, the key column `width` wide.
pub fn print_table<R: Row>(key: &str, width: usize, rows: &[R]) {
    println!("{key:>width$} {:>15} {:>8} {:>8}", "accuracy", "NLL", "ECE");
    for row in rows {
        let t = row.stats();
        println!(
            "{:>width$} {:>8.4} ± {:.4} {:>8.4} {:>8.4}",
            row.key(),
            t.accuracy_mean,
            t.accuracy_std,
            t.nll_mean,
            t.ece_mean
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labelsmooth_experiment::summary::{CvStats, FactorRow, Summary};

    fn row(alpha: f64, acc: f64, std: f64, nll: f64, ece: f64) -> FactorRow {
        FactorRow {
            smoothing: alpha,
            stats: CvStats {
                accuracy_mean: acc,
                accuracy_std: std,
                nll_mean: nll,
                nll_std: 0.0,
                ece_mean: ece,
                ece_std: 0.0,
                confidence_mean: None,
                folds: 5,
            },
            confusion: vec![9, 1, 2, 8],
        }
    }

    #[test]
    fn the_regime_follows_the_gap_and_the_measurement_is_checked_against_it() {
        assert_eq!(regime_word(0.80, 0.85), "over-confident");
        assert_eq!(regime_word(0.80, 0.75), "under-confident");
        assert_eq!(regime_word(0.80, 0.805), "about calibrated");
        let s = confidence_regime("The model", 0.7, 0.774, Some(1.52));
        assert!(
            s.starts_with("The model is over-confident: mean confidence 0.774 against accuracy 0.700 (gap +0.074, fitted temperature 1.52)."),
            "{s}"
        );
        assert!(s.contains("should improve calibration"), "{s}");
        let s = confidence_regime("The model", 0.98, 0.93, None);
        assert!(
            s.contains("under-confident") && s.contains("get worse"),
            "{s}"
        );
        // No recorded confidence: nothing is said.
        let mut rows = vec![
            row(0.0, 0.90, 0.01, 0.30, 0.08),
            row(0.1, 0.90, 0.01, 0.28, 0.03),
            row(0.2, 0.90, 0.01, 0.29, 0.05),
        ];
        assert!(cv_regime("α = ", &rows, Some(&rows[0])).is_empty());
        // Over-confident at α = 0 and the ECE fell: as predicted.
        rows[0].stats.confidence_mean = Some(0.95);
        let r = cv_regime("α = ", &rows, Some(&rows[0]));
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].contains("over-confident"), "{}", r[0]);
        assert_eq!(
            r[1],
            "Measured: cross-validated ECE 0.080 without smoothing; lowest 0.030 at α = 0.1 (NLL 0.280 against 0.300). As predicted."
        );
        // Under-confident and the ECE fell anyway: against the prediction.
        rows[0].stats.confidence_mean = Some(0.85);
        let r = cv_regime("α = ", &rows, Some(&rows[0]));
        assert!(
            r[1].ends_with(
                "Against the prediction: smoothing calibrated this under-confident model better."
            ),
            "{}",
            r[1]
        );
        // Over-confident and every other setting worse: against the prediction.
        let m = cv_measured("α = ", &rows[..1], Some(&rows[0]), "over-confident");
        assert!(m.is_none());
        rows[1].stats.ece_mean = 0.2;
        rows[2].stats.ece_mean = 0.1;
        let m = cv_measured("α = ", &rows, Some(&rows[0]), "over-confident").unwrap();
        assert!(
            m.contains("no setting lower, lowest 0.100 at α = 0.2"),
            "{m}"
        );
        assert!(
            m.ends_with("smoothing did not calibrate this over-confident model."),
            "{m}"
        );
    }

    #[test]
    fn the_reading_names_ties_the_spread_and_the_calibration_cost() {
        let rows = vec![
            row(0.0, 0.90, 0.02, 0.30, 0.05),
            row(0.1, 0.91, 0.01, 0.35, 0.08),
            row(0.2, 0.91, 0.01, 0.40, 0.02),
        ];
        let best = Summary(rows.clone()).best().unwrap().clone();
        assert_eq!(best.smoothing, 0.1);
        let r = cv_reading("smoothing factor", "α = ", &rows, &best, Some(&rows[0])).join(" ");
        assert!(
            r.contains("Best smoothing factor: α = 0.1 (91.00% ± 1.00%"),
            "{r}"
        );
        assert!(
            r.contains("α = 0.1 ties with α = 0.2 on mean accuracy (91.00%); its lower mean NLL (0.350, against 0.400) names it."),
            "{r}"
        );
        // +1 point against a spread of 2 points: inside.
        assert!(
            r.contains("(+1.00 points) is inside the fold-to-fold spread (std up to 2.00 points)"),
            "{r}"
        );
        assert!(
            r.contains("NLL 0.350 against 0.300 (worse), ECE 0.080 against 0.050 (worse)"),
            "{r}"
        );
        // A gain larger than the spread, and a baseline that is the best.
        let rows = vec![
            row(0.0, 0.90, 0.005, 0.3, 0.05),
            row(0.1, 0.95, 0.01, 0.2, 0.03),
        ];
        let r = cv_reading("smoothing factor", "α = ", &rows, &rows[1], Some(&rows[0])).join(" ");
        assert!(
            r.contains("(+5.00 points) is larger than the fold-to-fold spread"),
            "{r}"
        );
        assert!(r.contains("(better)"), "{r}");
        assert!(!r.contains("ties with"), "{r}");
        let r = cv_reading(
            "smoothing factor",
            "α = ",
            &rows[..1],
            &rows[0],
            Some(&rows[0]),
        )
        .join(" ");
        assert!(
            r.contains("No smoothing factor beats α = 0 on mean accuracy."),
            "{r}"
        );
    }

    #[test]
    fn the_class_section_pools_f1_per_setting() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            row(0.0, 0.85, 0.0, 0.3, 0.05),
            row(0.1, 0.85, 0.0, 0.3, 0.05),
        ];
        let classes = vec!["a".to_string(), "b".to_string()];
        let s = cv_class_section(dir.path(), "α", &rows, &rows[0], &classes)
            .unwrap()
            .unwrap();
        let t = s.table.unwrap();
        assert_eq!(t.header, vec!["class", "support", "F1, α 0", "F1, α 0.1"]);
        // Class a: 9 right of 10, 2 of b taken for a: precision 9/11, recall 9/10.
        let f1_a = 2.0 * (9.0 / 11.0) * 0.9 / (9.0 / 11.0 + 0.9);
        assert_eq!(t.rows[0], vec!["a".into(), "10".into(), f4(f1_a), f4(f1_a)]);
        assert_eq!(t.rows[2][0], "macro F1");
        assert!(dir.path().join("confusion_matrix.png").exists());
        let mut without = rows.clone();
        without[1].confusion.clear();
        assert!(
            cv_class_section(dir.path(), "α", &without, &without[0], &classes)
                .unwrap()
                .is_none()
        );
    }
}
