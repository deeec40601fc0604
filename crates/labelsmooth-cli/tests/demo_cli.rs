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
    let report = PathBuf::from(v["report"].as_str().unwrap());
    assert_eq!(report, out.join("report.html"));

    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["seed"], 0);
    assert_eq!(results["calibration"].as_array().unwrap().len(), 2);
    for f in ["sweep.csv", "compare.csv", "calibration.csv"] {
        assert!(
            std::fs::read_to_string(out.join(f))
                .unwrap()
                .lines()
                .count()
                > 2,
            "{f}"
        );
    }
    let names = [
        "accuracy_vs_smoothing",
        "confidence_histogram",
        "ece_temperature",
        "penultimate_layer",
        "regularizers",
        "reliability_plain",
        "reliability_smoothed",
        "softmax_output",
        "training_loss",
        "validation_nll",
    ];
    for n in names {
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
