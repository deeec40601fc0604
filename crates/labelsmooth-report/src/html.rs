//! One self-contained HTML page: tables, sentences that read the results, and the figures
//! embedded as data URIs, so that the page opens from disk with no network.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use labelsmooth::calibration::ClassScores;
use serde::Serialize;

use crate::write_atomic;

/// A table of already formatted cells.
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

/// A section: a heading, an optional table, and figures (`figures/<name>.png`, caption).
pub struct Section {
    /// Heading.
    pub heading: String,
    /// Table.
    pub table: Option<Table>,
    /// Figures by file stem, with captions.
    pub figures: Vec<(String, String)>,
}

/// A report page.
pub struct Page {
    /// Title.
    pub title: String,
    /// What was run, in a sentence or two.
    pub intro: String,
    /// Sentences that read the results for the user.
    pub reading: Vec<String>,
    /// The sections.
    pub sections: Vec<Section>,
}

/// One class's precision, recall, F1 and support, by name, as `metrics.json` files and reports
/// show them.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRow {
    /// The class name.
    pub class: String,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Samples of the class.
    pub support: usize,
}

/// The scores of each class of `classes`, named.
pub fn class_rows(classes: &[String], scores: &[ClassScores]) -> Vec<ClassRow> {
    classes
        .iter()
        .zip(scores)
        .map(|(c, s)| ClassRow {
            class: c.clone(),
            precision: s.precision,
            recall: s.recall,
            f1: s.f1,
            support: s.support,
        })
        .collect()
}

/// The per-class section of a report: the table under `heading` and the confusion matrix
/// figure (`confusion_matrix`, rows the true classes) described as being `on` some rows.
pub fn class_section(heading: String, rows: &[ClassRow], on: &str) -> Section {
    Section {
        heading,
        table: Some(class_table(rows)),
        figures: vec![(
            "confusion_matrix".into(),
            format!("Confusion matrix{on}: rows are the true classes"),
        )],
    }
}

/// The per-class table of a report.
pub fn class_table(rows: &[ClassRow]) -> Table {
    Table {
        header: ["class", "precision", "recall", "F1", "support"]
            .map(String::from)
            .to_vec(),
        rows: rows
            .iter()
            .map(|s| {
                vec![
                    s.class.to_string(),
                    f4(s.precision),
                    f4(s.recall),
                    f4(s.f1),
                    s.support.to_string(),
                ]
            })
            .collect(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders `page`, embedding the PNG figures found in `figures`.
pub fn render(page: &Page, figures: &Path) -> Result<String> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
         th{{background:#eee}}figure{{margin:1em 0}}img{{max-width:100%}}figcaption{{color:#555;font-size:90%}}\
         </style></head><body>\n<h1>{}</h1>\n<p>{}</p>\n",
        escape(&page.title),
        escape(&page.title),
        escape(&page.intro)
    );
    if !page.reading.is_empty() {
        h.push_str("<h2>What the results say</h2>\n<ul>\n");
        for line in &page.reading {
            let _ = writeln!(h, "<li>{}</li>", escape(line));
        }
        h.push_str("</ul>\n");
    }
    for s in &page.sections {
        let _ = writeln!(h, "<h2>{}</h2>", escape(&s.heading));
        if let Some(t) = &s.table {
            h.push_str("<table><tr>");
            for c in &t.header {
                let _ = write!(h, "<th>{}</th>", escape(c));
            }
            h.push_str("</tr>\n");
            for r in &t.rows {
                h.push_str("<tr>");
                for c in r {
                    let _ = write!(h, "<td>{}</td>", escape(c));
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</table>\n");
        }
        for (name, caption) in &s.figures {
            let path = figures.join(format!("{name}.png"));
            let bytes =
                std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let _ = writeln!(
                h,
                "<figure><img alt=\"{0}\" src=\"data:image/png;base64,{b64}\"><figcaption>{0}</figcaption></figure>",
                escape(caption)
            );
        }
    }
    let _ = writeln!(
        h,
        "<p style=\"color:#777\">labelsmooth {}</p>",
        env!("CARGO_PKG_VERSION")
    );
    // Lets a headless browser check that every figure decoded.
    h.push_str("<script>window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);document.body.setAttribute('data-figures',i.length);document.body.setAttribute('data-loaded',i.filter(function(x){return x.complete&&x.naturalWidth>0;}).length);});</script>\n</body></html>\n");
    Ok(h)
}

/// Formats a float with 4 decimals.
pub fn f4(v: f64) -> String {
    format!("{v:.4}")
}

/// `over-confident`, `under-confident` or `about calibrated`: a mean top-label confidence more
/// than 0.01 above the accuracy, more than 0.01 below it, or within 0.01.
pub fn regime_word(accuracy: f64, confidence: f64) -> &'static str {
    if confidence > accuracy + 0.01 {
        "over-confident"
    } else if confidence < accuracy - 0.01 {
        "under-confident"
    } else {
        "about calibrated"
    }
}

/// Which side of calibration a model is on ([`regime_word`]), from its mean top-label confidence
/// against its accuracy on held-out rows and, when known, the temperature fitted to it (T > 1
/// softens: over-confident; T < 1 sharpens: under-confident), and what that predicts label
/// smoothing does to its calibration.
pub fn confidence_regime(
    who: &str,
    accuracy: f64,
    confidence: f64,
    temperature: Option<f64>,
) -> String {
    let gap = confidence - accuracy;
    let t = temperature.map_or(String::new(), |t| format!(", fitted temperature {t:.2}"));
    let word = regime_word(accuracy, confidence);
    let facts = format!(
        "{who} is {word}: mean confidence {confidence:.3} against accuracy {accuracy:.3} (gap {gap:+.3}{t})."
    );
    let prediction = match word {
        "over-confident" => {
            "Smoothing pulls confidences down, so it should improve calibration until the gap is closed (Müller et al. 2019)."
        }
        "under-confident" => {
            "Smoothing pulls confidences further down, so expect its calibration (ECE, NLL) to get worse as α grows; temperature scaling with T < 1 is the remedy, not smoothing."
        }
        _ => {
            "Smoothing would pull its confidences below its accuracy, so expect calibration to get worse as α grows, whatever it does to accuracy."
        }
    };
    format!("{facts} {prediction}")
}

/// Renders `page` with the figures in `figures` and writes it to `path`, atomically.
pub fn write_report(path: &Path, page: &Page, figures: &Path) -> Result<()> {
    write_atomic(path, render(page, figures)?.as_bytes())
        .with_context(|| format!("{}: cannot write", path.display()))
}
