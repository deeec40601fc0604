//! `labelsmooth demo` end to end: its JSON, its files, and its report rendered as a user would see
//! it, in headless Chromium, with every figure loaded.

use std::path::{Path, PathBuf};
use std::process::Command;

fn labelsmooth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_labelsmooth"))
        .args(args)
        .output()
        .expect("run labelsmooth")
}

/// Debian's Chromium (`.ci/run` installs it), or the browser named by `LABELSMOOTH_CHROMIUM`.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("LABELSMOOTH_CHROMIUM") {
        return PathBuf::from(p);
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "headless Chromium is needed to check the report: apt-get install chromium (.ci/run does)"
    );
}

#[test]
fn demo_writes_results_figures_and_a_report_that_renders_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = labelsmooth(&["demo", "--out", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let sweep = v["sweep"]["summary"].as_array().unwrap();
    assert_eq!(sweep.len(), 6);
    for row in sweep {
        assert!(row["accuracy_mean"].as_f64().unwrap() > 0.9, "{row}");
        assert_eq!(row["folds"], 3);
    }
    assert_eq!(v["compare"]["summary"].as_array().unwrap().len(), 5);
    assert!(v["sweep"]["best"]["smoothing"].is_number());
    let text = v["text_sweep"]["summary"].as_array().unwrap();
    assert_eq!(text.len(), 3);
    for row in text {
        // rt-polarity has two balanced classes: a trained LSTM is well above chance.
        assert!(row["accuracy_mean"].as_f64().unwrap() > 0.6, "{row}");
        assert_eq!(row["folds"], 2);
        assert!(row["confidence_mean"].as_f64().unwrap() > 0.5, "{row}");
    }
    let distilled = v["distillation"].as_array().unwrap();
    assert_eq!(distilled.len(), 3);
    for row in distilled {
        assert_eq!(row["students"].as_array().unwrap().len(), 2, "{row}");
        assert!(
            row["teacher"]["accuracy_mean"].as_f64().unwrap() > 0.9,
            "{row}"
        );
    }
    assert!(v["seconds"].as_f64().unwrap() > 0.0);
    let report = PathBuf::from(v["report"].as_str().unwrap());
    assert_eq!(report, out.join("report.html"));

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["seed"], 0);
    assert_eq!(results["calibration"].as_array().unwrap().len(), 2);
    assert_eq!(results["text"]["calibration"].as_array().unwrap().len(), 2);
    assert!(results["distillation"]["reproduced"].is_boolean());
    // The reading names each model's regime as its numbers say: over-confident exactly when the
    // unsmoothed model's mean confidence on the test split is more than 0.01 above its accuracy,
    // under-confident when more than 0.01 below.
    let reading: Vec<&str> = results["reading"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for (who, part) in [
        ("the digits MLP", &results["calibration"]),
        ("the text LSTM", &results["text"]["calibration"]),
    ] {
        let plain = &part[0];
        assert_eq!(plain["smoothing"], 0.0);
        let gap = plain["before"]["confidence"].as_f64().unwrap()
            - plain["before"]["accuracy"].as_f64().unwrap();
        let line = reading
            .iter()
            .find(|l| l.starts_with(&format!("Without smoothing, {who}")))
            .unwrap_or_else(|| panic!("no regime sentence for {who}: {reading:?}"));
        let said = if gap > 0.01 {
            "over-confident"
        } else if gap < -0.01 {
            "under-confident"
        } else {
            "about calibrated"
        };
        assert!(line.contains(said), "{line}");
        let t = plain["temperature"].as_f64().unwrap();
        assert!(
            line.contains(&format!("fitted temperature {t:.2}")),
            "{line}"
        );
    }
    assert!(
        reading
            .iter()
            .any(|l| l.starts_with("Distillation: Müller et al.'s finding")),
        "{reading:?}"
    );
    for f in [
        "sweep.csv",
        "compare.csv",
        "calibration.csv",
        "text_sweep.csv",
        "text_calibration.csv",
        "distill.csv",
    ] {
        assert!(
            std::fs::read_to_string(out.join(f))
                .unwrap()
                .lines()
                .count()
                > 2,
            "{f}"
        );
    }
    // distill.csv is the `distill` command's table: numbers in full precision.
    let distill = std::fs::read_to_string(out.join("distill.csv")).unwrap();
    let mut lines = distill.lines();
    assert!(
        lines.next().unwrap().starts_with("teacher_smoothing,"),
        "{distill}"
    );
    for line in lines {
        for cell in line.split(',') {
            assert!(cell.parse::<f64>().is_ok(), "{cell:?} in {distill}");
        }
    }
    let calibration = [
        "confidence_histogram",
        "ece_temperature",
        "penultimate_layer",
        "reliability_plain",
        "reliability_smoothed",
        "softmax_output",
        "training_loss",
        "validation_nll",
    ];
    let mut names: Vec<String> = [
        "accuracy_vs_smoothing",
        "calibration_vs_smoothing",
        "regularizers",
        "text_accuracy_vs_smoothing",
        "text_calibration_vs_smoothing",
        "distillation",
    ]
    .map(String::from)
    .to_vec();
    for n in calibration {
        names.push(n.to_string());
        names.push(format!("text_{n}"));
    }
    for n in &names {
        for ext in ["png", "svg"] {
            let p = out.join("figures").join(format!("{n}.{ext}"));
            assert!(
                std::fs::metadata(&p)
                    .map(|m| m.len() > 1000)
                    .unwrap_or(false),
                "{}",
                p.display()
            );
        }
    }
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the report must need no network"
    );

    // Render it in headless Chromium; the page records how many figures loaded.
    let profile = dir.path().join("chromium-profile");
    let dom = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", report.display()))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&dom.stdout);
    let want = format!(
        "data-figures=\"{}\" data-loaded=\"{}\"",
        names.len(),
        names.len()
    );
    assert!(
        dom.contains(&want),
        "rendered body: {}",
        dom.lines().find(|l| l.contains("<body")).unwrap_or("none")
    );
}

#[test]
fn demo_refuses_an_unwritable_folder_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let o = labelsmooth(&["demo", "--out", file.join("sub").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("cannot create the output folder"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
