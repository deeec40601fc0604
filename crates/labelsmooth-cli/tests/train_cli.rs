//! `labelsmooth train` and `labelsmooth sweep` end to end on a user CSV and a bundled set.

use std::process::Command;

fn labelsmooth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_labelsmooth"))
        .args(args)
        .output()
        .expect("run labelsmooth")
}

/// Two well separated classes in two features, 60 rows, with a header and string labels.
fn table(dir: &std::path::Path) -> String {
    let mut csv = String::from("x,y,kind\n");
    for i in 0..60 {
        let (cx, name) = if i % 2 == 0 {
            (-2.0, "left")
        } else {
            (2.0, "right")
        };
        csv.push_str(&format!(
            "{},{},{name}\n",
            cx + (i % 7) as f64 * 0.1,
            (i % 5) as f64 * 0.2
        ));
    }
    let p = dir.join("t.csv");
    std::fs::write(&p, csv).unwrap();
    p.display().to_string()
}

#[test]
fn train_on_a_user_csv_writes_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    let out = dir.path().join("run");
    let o = labelsmooth(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "20",
        "--smoothing",
        "0.1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for f in ["accuracy", "nll", "ece", "brier", "epochs", "seconds"] {
        assert!(v[f].is_number(), "{f}");
    }
    assert!(v["accuracy"].as_f64().unwrap() > 0.9);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["history"].as_array().unwrap().len(), 20);
    let support: u64 = metrics["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["support"].as_u64().unwrap())
        .sum();
    assert_eq!(support, 12);
    assert_eq!(metrics["confusion_matrix"].as_array().unwrap().len(), 2);
    let preds = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    assert!(preds.starts_with("id,true_class,predicted_class,p_left,p_right\n"));
    assert_eq!(preds.lines().count(), 1 + 12);
    assert!(out.join("model.json").is_file());
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(report.matches("<img ").count(), 5);
    for f in [
        "training_loss",
        "validation",
        "reliability",
        "confidence_histogram",
        "confusion_matrix",
    ] {
        assert!(
            out.join("figures").join(format!("{f}.svg")).is_file(),
            "{f}"
        );
    }
}

#[test]
fn sweep_prints_a_summary_and_the_best_factor() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    let o = labelsmooth(&[
        "sweep",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "5",
        "--smoothing",
        "0,0.2",
        "--folds",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v["summary"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["smoothing"].as_f64().unwrap() as f32, 0.2);
    assert_eq!(rows[0]["folds"], 3);
    assert!(v["best"]["accuracy_mean"].is_number());
}

#[test]
fn errors_are_one_line_with_the_right_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    // Data errors: exit 1.
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let bad_out = blocker.join("sub");
    for args in [
        vec!["train", "--data", "iris", "--model", "mlp"],
        vec![
            "train",
            "--data",
            "csv:/nonexistent/t.csv",
            "--model",
            "mlp",
        ],
        vec![
            "train",
            "--data",
            &data,
            "--model",
            "mlp",
            "--out",
            bad_out.to_str().unwrap(),
        ],
        vec!["train", "--data", &data, "--model", "lstm"],
        vec![
            "train",
            "--data",
            &data,
            "--model",
            "mlp",
            "--label-column",
            "nope",
        ],
    ] {
        let o = labelsmooth(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("error: ") && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Usage errors: exit 2.
    for args in [
        vec![
            "train",
            "--data",
            &data,
            "--model",
            "mlp",
            "--smoothing",
            "1.5",
        ],
        vec!["train", "--data", &data, "--model", "svm"],
        vec![
            "sweep",
            "--data",
            &data,
            "--model",
            "mlp",
            "--smoothing",
            "0,x",
        ],
    ] {
        let o = labelsmooth(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
    }
}

fn labelsmooth_stdin(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_labelsmooth"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A process that stops at a usage error may close its input first: ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn smooth_rows_in_every_convention() {
    let rows = |o: std::process::Output| -> Vec<Vec<f64>> {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect()
    };
    let close = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
    };
    let u = rows(labelsmooth_stdin(
        &["smooth", "--alpha", "0.3", "--classes", "3"],
        "2\n0\n",
    ));
    assert!(
        close(&u[0], &[0.1, 0.1, 0.8]) && close(&u[1], &[0.8, 0.1, 0.1]),
        "{u:?}"
    );
    let e = rows(labelsmooth_stdin(
        &[
            "smooth",
            "--alpha",
            "0.3",
            "--classes",
            "4",
            "--convention",
            "exclude-true",
        ],
        "1\n",
    ));
    assert!(close(&e[0], &[0.1, 0.7, 0.1, 0.1]), "{e:?}");
    let b = rows(labelsmooth_stdin(
        &["smooth", "--alpha", "0.2", "--convention", "binary"],
        "1,0\n",
    ));
    assert!(close(&b[0], &[0.9, 0.1]), "{b:?}");
    let m = rows(labelsmooth_stdin(
        &["smooth", "--alpha", "0.2", "--convention", "multi-label"],
        "1,0,1,0\n",
    ));
    assert!(close(&m[0], &[0.85, 0.05, 0.85, 0.05]), "{m:?}");
    // A bad line: one error naming it, nothing on stdout.
    let o = labelsmooth_stdin(&["smooth", "--alpha", "0.1", "--classes", "3"], "0\n7\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "error: line 2: class id 7 is out of range for 3 classes"
    );
    assert_eq!(
        labelsmooth_stdin(&["smooth", "--alpha", "2", "--classes", "3"], "0\n")
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn calibrate_probabilities_and_logits() {
    let dir = tempfile::tempdir().unwrap();
    // Binary: one column of P(class 1), labels 0/1; always 0.8 and right 4 times in 5.
    let probs: String = (0..50).map(|_| "0.8\n").collect();
    let labels: String = (0..50)
        .map(|i| if i % 5 == 0 { "0\n" } else { "1\n" })
        .collect();
    std::fs::write(dir.path().join("p.csv"), &probs).unwrap();
    std::fs::write(dir.path().join("y.csv"), &labels).unwrap();
    let p = dir.path().join("p.csv");
    let y = dir.path().join("y.csv");
    let o = labelsmooth(&[
        "calibrate",
        "--probs",
        p.to_str().unwrap(),
        "--labels",
        y.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 50);
    assert!((v["accuracy"].as_f64().unwrap() - 0.8).abs() < 1e-12);
    assert!(v["ece"].as_f64().unwrap() < 1e-6, "perfectly calibrated");
    assert!((v["nll"].as_f64().unwrap() - (-(0.8f64.ln() * 0.8 + 0.2f64.ln() * 0.2))).abs() < 1e-6);
    assert_eq!(
        v["calibration_curve"]["prob_true"][0].as_f64().unwrap(),
        0.8
    );
    // Both Brier conventions: summed over the two classes, and scikit-learn's binary one.
    let brier_binary = 0.8 * 0.2f64.powi(2) + 0.2 * 0.8f64.powi(2);
    assert!(
        (v["brier_binary"].as_f64().unwrap() - brier_binary).abs() < 1e-6,
        "{v}"
    );
    assert!(
        (v["brier"].as_f64().unwrap() - 2.0 * brier_binary).abs() < 1e-6,
        "{v}"
    );
    assert!(v["ece_binary"].as_f64().unwrap() < 1e-6);
    // Logits with temperature fitting: over-confident logits get T > 1.
    let logits: String = (0..50).map(|_| "0,4\n").collect();
    std::fs::write(dir.path().join("l.csv"), &logits).unwrap();
    let l = dir.path().join("l.csv");
    let o = labelsmooth(&[
        "calibrate",
        "--logits",
        l.to_str().unwrap(),
        "--labels",
        y.to_str().unwrap(),
        "--fit-temperature",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = v["temperature"].as_f64().unwrap();
    assert!(
        (t - 4.0 / 4f64.ln()).abs() < 1e-6,
        "softmax(4/T) = 0.8 at T = 4 / ln 4, got {t}"
    );
    assert!(v["after"]["ece"].as_f64().unwrap() < 1e-6);
    // Errors: mismatched rows, a label out of range, a bad number.
    std::fs::write(dir.path().join("short.csv"), "1\n0\n").unwrap();
    let short = dir.path().join("short.csv");
    let o = labelsmooth(&[
        "calibrate",
        "--probs",
        p.to_str().unwrap(),
        "--labels",
        short.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    std::fs::write(dir.path().join("bad.csv"), "0.5\nx\n").unwrap();
    let bad = dir.path().join("bad.csv");
    let o = labelsmooth(&[
        "calibrate",
        "--probs",
        bad.to_str().unwrap(),
        "--labels",
        short.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.csv:2: `x` is not a number"));
    let o = labelsmooth(&["calibrate", "--labels", y.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn calibrate_nll_is_exact_from_logits_and_says_its_clipping_from_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // Row 1 is wrong by a logit gap of 100: −log softmax = 100 + log(1 + e^−100); row 2 is a tie.
    let logits = w("l.csv", "0,100\n0,0\n");
    let labels = w("y.csv", "0\n0\n");
    let run = |args: &[&str]| {
        let o = labelsmooth(args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let v = run(&[
        "calibrate",
        "--logits",
        &logits,
        "--labels",
        &labels,
        "--json",
    ]);
    let exact = (100.0 + 2f64.ln()) / 2.0;
    assert!((v["nll"].as_f64().unwrap() - exact).abs() < 1e-9, "{v}");
    assert!(v.get("nll_clipped_at").is_none());
    // The same predictions as probabilities: the underflowed probability is clipped, and the
    // output says at which value.
    let probs = w("p.csv", "0,1\n0.5,0.5\n");
    let v = run(&[
        "calibrate",
        "--probs",
        &probs,
        "--labels",
        &labels,
        "--json",
    ]);
    assert_eq!(v["nll_clipped_at"].as_f64(), Some(1e-15));
    assert!((v["nll"].as_f64().unwrap() - (-(1e-15f64.ln()) + 2f64.ln()) / 2.0).abs() < 1e-9);
    let o = labelsmooth(&["calibrate", "--probs", &probs, "--labels", &labels]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("clipped below at 1e-15"));
    // Rows that do not sum to 1 are refused with their row, or renormalized on request.
    let off = w("off.csv", "0.2,0.8\n0.3,0.6\n");
    let o = labelsmooth(&["calibrate", "--probs", &off, "--labels", &labels]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("off.csv: row 2: probabilities sum to 0.9000,"),
        "{err}"
    );
    assert!(err.contains("--renormalize"), "{err}");
    let v = run(&[
        "calibrate",
        "--probs",
        &off,
        "--labels",
        &labels,
        "--renormalize",
        "--json",
    ]);
    let want = -(0.2f64.ln() + (1.0f64 / 3.0).ln()) / 2.0;
    assert!((v["nll"].as_f64().unwrap() - want).abs() < 1e-6, "{v}");
    // `smooth --classes 0` is refused when the flags are read, even on empty input.
    let o = labelsmooth_stdin(&["smooth", "--alpha", "0.1", "--classes", "0"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 1"));
}

/// A version-1 `.npy` file of little-endian float32 values with the given shape.
fn npy_f4(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if shape.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    values.iter().for_each(|v| out.extend(v.to_le_bytes()));
    out
}

#[test]
fn calibrate_reads_npy_files() {
    let dir = tempfile::tempdir().unwrap();
    let logits: Vec<f32> = (0..40)
        .flat_map(|i| if i % 4 == 0 { [2.0, 0.0] } else { [0.0, 2.0] })
        .collect();
    let labels: Vec<f32> = (0..40)
        .map(|i| if i % 4 == 0 { 0.0 } else { 1.0 })
        .collect();
    let l = dir.path().join("logits.npy");
    let y = dir.path().join("labels.npy");
    std::fs::write(&l, npy_f4(&[40, 2], &logits)).unwrap();
    std::fs::write(&y, npy_f4(&[40], &labels)).unwrap();
    let o = labelsmooth(&[
        "calibrate",
        "--logits",
        l.to_str().unwrap(),
        "--labels",
        y.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 40);
    assert_eq!(v["accuracy"].as_f64().unwrap(), 1.0);
    let p = 1.0 / (1.0 + (-2.0f64).exp());
    assert!((v["nll"].as_f64().unwrap() + p.ln()).abs() < 1e-6);
    let mut broken = npy_f4(&[40, 2], &logits);
    broken.truncate(broken.len() - 4);
    std::fs::write(&l, broken).unwrap();
    let o = labelsmooth(&[
        "calibrate",
        "--logits",
        l.to_str().unwrap(),
        "--labels",
        y.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("logits.npy: 316 data bytes"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn sharded_sweeps_merge_into_the_same_result_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    let path = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let sweep = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "sweep",
            "--data",
            &data,
            "--model",
            "mlp",
            "--epochs",
            "3",
            "--smoothing",
            "0,0.1,0.2",
            "--folds",
            "2",
            "--out",
            out,
            "--json",
        ];
        args.extend_from_slice(extra);
        labelsmooth(&args)
    };
    let full = sweep(&path("full"), &[]);
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    let full: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    assert_eq!(full["summary"].as_array().unwrap().len(), 3);
    assert_eq!(full["summary"][1]["smoothing"], 0.1);
    assert!(dir.path().join("full/report.html").is_file());
    assert!(
        dir.path()
            .join("full/figures/accuracy_vs_smoothing.svg")
            .is_file()
    );
    // Three shards of six trials, then a merge: the same summary as the whole sweep.
    for i in 0..3 {
        let o = sweep(&path(&format!("s{i}")), &["--shard", &format!("{i}/3")]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["complete"], false);
        assert_eq!(v["done"], 2);
    }
    let o = labelsmooth(&[
        "merge",
        &path("s0"),
        &path("s1"),
        "--out",
        &path("merged"),
        "--json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a missing shard is an error");
    assert!(err.contains("4 of 6 trials found; missing:"), "{err}");
    let o = labelsmooth(&[
        "merge",
        &path("s0"),
        &path("s1"),
        &path("s2"),
        "--out",
        &path("merged"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let merged: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(merged["summary"], full["summary"]);
    assert_eq!(merged["best"], full["best"]);
    // Re-running a finished sweep trains nothing (a trial that ran again would rewrite its file
    // with another time in `seconds`) and gives the same result.
    let trial_files = || -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir.path().join("full/trials"))
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        v.sort();
        v
    };
    let before = trial_files();
    assert_eq!(before.len(), 6);
    let again: serde_json::Value =
        serde_json::from_slice(&sweep(&path("full"), &[]).stdout).unwrap();
    assert_eq!(again["summary"], full["summary"]);
    assert_eq!(trial_files(), before);
    // A lost trial file is run again, and only that one.
    std::fs::remove_file(&before[2].0).unwrap();
    let again: serde_json::Value =
        serde_json::from_slice(&sweep(&path("full"), &[]).stdout).unwrap();
    assert_eq!(again["summary"], full["summary"]);
    let after = trial_files();
    assert_eq!(after.len(), 6);
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        assert_eq!(a.0, b.0);
        assert_eq!(a.1 == b.1, i != 2, "{}", a.0.display());
    }
    // Resuming after the data file changed is refused: old and new trials never mix.
    let csv_path = data.strip_prefix("csv:").unwrap();
    let original = std::fs::read_to_string(csv_path).unwrap();
    let shorter: String = original
        .lines()
        .take(41)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(csv_path, shorter).unwrap();
    let o = sweep(&path("full"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ran on other data (60 rows"), "{err}");
    assert!(err.contains("gives now (40 rows"), "{err}");
    assert_eq!(trial_files().len(), 6);
    std::fs::write(csv_path, original).unwrap();
    // A different sweep into the same folder is refused.
    let o = labelsmooth(&[
        "sweep",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "4",
        "--smoothing",
        "0,0.1,0.2",
        "--folds",
        "2",
        "--out",
        &path("full"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds a different sweep"));
    assert_eq!(
        labelsmooth(&[
            "sweep",
            "--data",
            &data,
            "--model",
            "mlp",
            "--out",
            &path("x"),
            "--shard",
            "3/3"
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn compare_reports_each_regularizer() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    let o = labelsmooth(&[
        "compare",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--folds",
        "2",
        "--regularizers",
        "none,l2,smoothing+dropout",
        "--out",
        dir.path().join("cmp").to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["regularizer"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["none", "l2", "smoothing+dropout"]);
    assert!(v["best"]["accuracy_mean"].is_number());
    for f in [
        "results.json",
        "compare.csv",
        "report.html",
        "figures/regularizers.png",
    ] {
        assert!(dir.path().join("cmp").join(f).is_file(), "{f}");
    }
    let o = labelsmooth(&[
        "compare",
        "--data",
        &data,
        "--model",
        "mlp",
        "--regularizers",
        "none,magic",
    ]);
    assert_eq!(o.status.code(), Some(2), "a flag clap rejects");
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown regularizer `magic`"));
}

#[test]
fn train_on_an_image_folder_and_a_text_file() {
    let dir = tempfile::tempdir().unwrap();
    // Two classes of 8 × 8 PNG images: a bright square on the left or on the right.
    for (class, left) in [("left", true), ("right", false)] {
        let folder = dir.path().join("images").join(class);
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..12u32 {
            let img = image::GrayImage::from_fn(8, 8, |x, _| {
                let lit = if left { x < 4 } else { x >= 4 };
                image::Luma([if lit {
                    200 + (i as u8) * 3
                } else {
                    10 + (i as u8)
                }])
            });
            img.save(folder.join(format!("{i}.png"))).unwrap();
        }
    }
    let images = format!("images:{}", dir.path().join("images").display());
    for model in ["cnn", "mlp"] {
        let o = labelsmooth(&[
            "train",
            "--data",
            &images,
            "--image-size",
            "8",
            "--model",
            model,
            "--epochs",
            "15",
            "--learning-rate",
            "0.01",
            "--json",
        ]);
        assert!(
            o.status.success(),
            "{model}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(v["accuracy"].as_f64().unwrap() >= 0.8, "{model}: {v}");
    }
    // A text table: the word decides the class.
    let mut text = String::from("review\tlabel\n");
    for i in 0..80 {
        let (w, l) = if i % 2 == 0 {
            ("wonderful", "pos")
        } else {
            ("dreadful", "neg")
        };
        text.push_str(&format!("a {w} film number {i}\t{l}\n"));
    }
    let p = dir.path().join("reviews.tsv");
    std::fs::write(&p, text).unwrap();
    let data = format!("text:{}", p.display());
    let o = labelsmooth(&[
        "train",
        "--data",
        &data,
        "--model",
        "lstm",
        "--epochs",
        "10",
        "--label-column",
        "label",
        "--text-column",
        "review",
        "--max-len",
        "6",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["accuracy"].as_f64().unwrap() >= 0.9, "{v}");
    let o = labelsmooth(&["train", "--data", &data, "--model", "mlp"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("text data needs the lstm model"));
}

#[test]
fn model_size_threads_and_early_stopping_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    let out = dir.path().join("run");
    let o = labelsmooth(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--hidden",
        "16,8",
        "--threads",
        "1",
        "--epochs",
        "40",
        "--early-stopping",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["config"]["hidden"], serde_json::json!([16, 8]));
    assert_eq!(m["config"]["train"]["early_stopping"], 2);
    let o = labelsmooth(&[
        "train", "--data", &data, "--model", "mlp", "--hidden", "8,0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("each must be at least 1"));
    let o = labelsmooth(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--early-stopping",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_final_model_trains_on_every_row_and_small_tables_get_enough_steps() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    let out = dir.path().join("final");
    // A run with a held-out split first, so that its predictions.csv is there to be removed.
    let o = labelsmooth(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    // 48 training rows are one step of 64 per epoch: 600 steps take 600 epochs, not 30.
    assert_eq!(m["epochs"], 600);
    assert_eq!(m["history"].as_array().unwrap().len(), 600);
    assert_eq!(m["metrics_on"], "held-out split");
    assert!(out.join("predictions.csv").exists());

    let o = labelsmooth(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--valid-fraction",
        "0",
        "--epochs",
        "7",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["epochs"], 7);
    assert_eq!(m["n_train"], 60);
    assert_eq!(m["n_valid"], 0);
    assert_eq!(m["metrics_on"], "training rows (nothing held out)");
    let support: u64 = m["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["support"].as_u64().unwrap())
        .sum();
    assert_eq!(support, 60);
    assert!(!out.join("predictions.csv").exists());
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert!(
        card["metrics"]["on"]
            .as_str()
            .unwrap()
            .contains("none held out"),
        "{card}"
    );
    assert_eq!(card["training"]["rows"], 60);
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("Metrics on the training rows (nothing held out)"));
    assert!(!report.contains("held-out split"));

    for bad in ["1", "-0.1", "nan"] {
        let o = labelsmooth(&[
            "train",
            "--data",
            &data,
            "--model",
            "mlp",
            &format!("--valid-fraction={bad}"),
        ]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("--valid-fraction"), "{e}");
    }
}

#[test]
fn calibrate_takes_class_names_and_the_tools_own_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // 40 rows as `train` writes them, class names with a comma and quotes: always 0.9 on the
    // predicted class, right 7 times in 10.
    let (ny, paris) = ("New York, NY", "Paris \"FR\"");
    let mut csv =
        String::from("id,true_class,predicted_class,\"p_New York, NY\",\"p_Paris \"\"FR\"\"\"\n");
    let mut names = String::new();
    let mut plain = String::new();
    for i in 0..40 {
        let predicted_ny = i % 2 == 0;
        let right = i % 10 < 7;
        let truth = if predicted_ny == right { ny } else { paris };
        let (p0, p1) = if predicted_ny { (0.9, 0.1) } else { (0.1, 0.9) };
        let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        csv.push_str(&format!(
            "{i},{},{},{p0},{p1}\n",
            quoted(truth),
            quoted(if predicted_ny { ny } else { paris })
        ));
        names.push_str(&format!("{}\n", quoted(truth)));
        plain.push_str(&format!("{p0},{p1}\n"));
    }
    let predictions = w("predictions.csv", &csv);
    let run = |args: &[&str]| {
        let o = labelsmooth(args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    // The file alone: classes from its p_ columns, labels from its true_class column.
    let v = run(&["calibrate", "--probs", &predictions, "--json"]);
    assert_eq!(v["n"], 40);
    assert!((v["accuracy"].as_f64().unwrap() - 0.7).abs() < 1e-12, "{v}");
    assert!((v["ece"].as_f64().unwrap() - 0.2).abs() < 1e-6, "{v}");
    assert_eq!(v["per_class"][0]["class"], ny);
    assert_eq!(v["per_class"][1]["class"], paris);
    assert_eq!(
        v["per_class"][0]["support"].as_u64().unwrap()
            + v["per_class"][1]["support"].as_u64().unwrap(),
        40
    );
    // Plain probabilities with labels as names (a header line) and --class-names: the same.
    let labels = w("labels.csv", &format!("city\n{names}"));
    let classes = w("classes.txt", &format!("{ny}\n{paris}\n"));
    let plain = w("plain.csv", &plain);
    let v2 = run(&[
        "calibrate",
        "--probs",
        &plain,
        "--labels",
        &labels,
        "--class-names",
        &classes,
        "--json",
    ]);
    assert_eq!(v2["accuracy"], v["accuracy"]);
    assert_eq!(v2["nll"], v["nll"]);
    // Names without their classes, and a name that is not a class, are errors that say where.
    let o = labelsmooth(&["calibrate", "--probs", &plain, "--labels", &labels]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("labels.csv:1: `city` is a class name"), "{e}");
    assert!(e.contains("--class-names"), "{e}");
    let wrong = w(
        "wrong.csv",
        &format!(
            "{}Berlin\n",
            names
                .lines()
                .skip(1)
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        ),
    );
    let o = labelsmooth(&[
        "calibrate",
        "--probs",
        &plain,
        "--labels",
        &wrong,
        "--class-names",
        &classes,
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("wrong.csv:40: `Berlin` is not a class"), "{e}");
}

#[test]
fn calibrate_fits_the_temperature_on_other_rows_and_writes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    // Logit gap 4 everywhere, right 4 times in 5: T = 4 / ln 4 makes every probability 0.8.
    let labels: String = (0..50)
        .map(|i| if i % 5 == 0 { "0\n" } else { "1\n" })
        .collect();
    let y = w("y.csv", &labels);
    let l = w("l.csv", &(0..50).map(|_| "0,4\n").collect::<String>());
    let out = dir.path().join("cal");
    let o = labelsmooth(&[
        "calibrate",
        "--logits",
        &l,
        "--labels",
        &y,
        "--fit-temperature",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(
            "fitted on a stratified 50% of the rows (seed 0, 25 rows); on the other 25 rows:"
        ),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert!(
        (v["temperature"].as_f64().unwrap() - 4.0 / 4f64.ln()).abs() < 1e-6,
        "{v}"
    );
    assert_eq!(v["fit_rows"], 25);
    assert_eq!(v["before_scaling"]["n"], 25);
    assert_eq!(v["after"]["n"], 25);
    assert_eq!(v["n"], 50);
    assert!(v["after"]["ece"].as_f64().unwrap() < 1e-6);
    assert!(v["before_scaling"]["ece"].as_f64().unwrap() > 0.1);
    for fig in [
        "reliability",
        "reliability_scaled",
        "confidence_histogram",
        "confusion_matrix",
    ] {
        let png = image::open(out.join("figures").join(format!("{fig}.png"))).unwrap();
        assert!(png.width() > 100, "{fig}");
        assert!(
            out.join("figures").join(format!("{fig}.svg")).exists(),
            "{fig}"
        );
    }
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("Temperature scaling fitted T = 2.885"),
        "report"
    );
    // Confidence 0.982 everywhere against accuracy 0.8.
    assert!(
        report.contains(
            "Mean confidence 0.982 against accuracy 0.800: the predictions are over-confident."
        ),
        "report"
    );
    // A separate file to fit on: gap 2 with the same labels gives T = 2 / ln 4, and the metrics
    // after it are on every row of the evaluated file.
    let f = w("fit.csv", &(0..50).map(|_| "0,2\n").collect::<String>());
    let o = labelsmooth(&[
        "calibrate",
        "--logits",
        &l,
        "--labels",
        &y,
        "--fit-temperature",
        "--fit-on",
        &f,
        "--fit-on-labels",
        &y,
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        (v["temperature"].as_f64().unwrap() - 2.0 / 4f64.ln()).abs() < 1e-6,
        "{v}"
    );
    assert_eq!(v["after"]["n"], 50);
    let p = 16.0f64 / 17.0;
    let nll = -(0.8 * p.ln() + 0.2 * (1.0 - p).ln());
    assert!(
        (v["after"]["nll"].as_f64().unwrap() - nll).abs() < 1e-5,
        "{v}"
    );
    // Too few rows of a class to set a part aside, and a fraction out of range.
    let few = w("few.csv", "0\n1\n1\n1\n");
    let l4 = w("l4.csv", "0,1\n0,1\n0,1\n0,1\n");
    let o = labelsmooth(&[
        "calibrate",
        "--logits",
        &l4,
        "--labels",
        &few,
        "--fit-temperature",
        "--fit-fraction",
        "0.9",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("too few rows to fit the temperature on 90% of each class")
    );
    let o = labelsmooth(&[
        "calibrate",
        "--logits",
        &l4,
        "--labels",
        &few,
        "--fit-temperature",
        "--fit-fraction",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_folder_in_use_is_refused_and_a_dead_processs_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    let lock = out.join(".labelsmooth.lock");
    let train = |out: &std::path::Path| {
        labelsmooth(&[
            "train",
            "--data",
            &data,
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    // Held by a running process (this test's).
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let o = train(&out);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("in use by process {}", std::process::id())),
        "{e}"
    );
    assert!(e.contains(".labelsmooth.lock"), "{e}");
    assert!(!out.join("metrics.json").exists());
    // Left by a process that has ended: taken over, and removed at the end.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(&lock, format!("{pid}\n")).unwrap();
    let o = train(&out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("metrics.json").exists());
    assert!(!lock.exists());
    // Two sweeps into one folder at once: the second is refused while the first runs, and the
    // first finishes whole.
    let shared = dir.path().join("shared");
    let sweep_args = |out: &std::path::Path| -> Vec<String> {
        [
            "sweep",
            "--data",
            &data,
            "--model",
            "mlp",
            "--epochs",
            "400",
            "--smoothing",
            "0,0.1",
            "--folds",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let first = Command::new(env!("CARGO_BIN_EXE_labelsmooth"))
        .args(sweep_args(&shared))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let shared_lock = shared.join(".labelsmooth.lock");
    let started = std::time::Instant::now();
    while !shared_lock.exists() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the first sweep never took the folder"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let second = labelsmooth(
        &sweep_args(&shared)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(second.status.code(), Some(1));
    let e = String::from_utf8_lossy(&second.stderr);
    assert!(e.contains("in use by process"), "{e}");
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["summary"].as_array().unwrap().len(), 2, "{v}");
    assert!(!shared_lock.exists());
}

#[test]
fn a_damaged_trial_file_is_named_and_a_full_disk_leaves_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("csv:{}", table(dir.path()));
    let out = dir.path().join("sweep");
    let sweep = || {
        labelsmooth(&[
            "sweep",
            "--data",
            &data,
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--smoothing",
            "0,0.1",
            "--folds",
            "2",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = sweep();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let results = std::fs::read(out.join("results.json")).unwrap();
    let trial = out.join("trials").join("a0.1_f1.json");
    let whole = std::fs::read(&trial).unwrap();
    for damaged in [&whole[..whole.len() / 2], b"\x00\xff garbage".as_slice()] {
        std::fs::write(&trial, damaged).unwrap();
        for o in [sweep(), labelsmooth(&["merge", out.to_str().unwrap()])] {
            assert_eq!(o.status.code(), Some(1));
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains("a0.1_f1.json"), "{e}");
        }
        assert_eq!(std::fs::read(out.join("results.json")).unwrap(), results);
    }
    std::fs::write(&trial, &whole).unwrap();
    // A full disk: the results file's temporary name leads to /dev/full, where every write
    // fails with ENOSPC.
    #[cfg(target_os = "linux")]
    {
        let tmp = out.join("results.json.tmp");
        std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
        let o = sweep();
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains("results.json: cannot write"), "{e}");
        assert!(e.contains("No space left on device"), "{e}");
        assert_eq!(std::fs::read(out.join("results.json")).unwrap(), results);
        assert!(
            std::fs::symlink_metadata(&tmp).is_err(),
            "the temporary file is removed"
        );
        assert!(!out.join(".labelsmooth.lock").exists());
    }
}

#[test]
fn distill_reports_teachers_students_and_the_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("distill");
    let o = labelsmooth(&[
        "distill",
        "--data",
        "digits",
        "--teacher-model",
        "mlp",
        "--teacher-hidden",
        "64",
        "--student-hidden",
        "16",
        "--epochs",
        "20",
        "--smoothing",
        "0,0.2",
        "--temperatures",
        "2,4",
        "--folds",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["study"]["teacher"]["hidden"], serde_json::json!([64]));
    assert_eq!(v["study"]["student"]["hidden"], serde_json::json!([16]));
    assert_eq!(v["study"]["student"]["train"]["epochs"], 20);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert_eq!(row["teacher"]["folds"], 2);
        // Ten classes: every model is far above chance (0.1).
        for s in [&row["teacher"], &row["baseline"]] {
            assert!(s["accuracy_mean"].as_f64().unwrap() > 0.8, "{row}");
        }
        let students = row["students"].as_array().unwrap();
        assert_eq!(students.len(), 2);
        assert_eq!(students[1]["temperature"], 4.0);
        assert!(
            students[0]["accuracy_mean"].as_f64().unwrap() > 0.8,
            "{row}"
        );
    }
    // The verdict follows the numbers: reproduced exactly when the unsmoothed teacher's best
    // student beats the smoothed teacher's best.
    let best = |row: &serde_json::Value| {
        row["students"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["accuracy_mean"].as_f64().unwrap())
            .fold(f64::NEG_INFINITY, f64::max)
    };
    assert_eq!(v["reproduced"], best(&rows[0]) > best(&rows[1]));
    let verdict = v["reading"][2].as_str().unwrap();
    let word = if best(&rows[0]) > best(&rows[1]) {
        "reproduced here"
    } else {
        "did not reproduce here"
    };
    assert!(verdict.contains(word), "{verdict}");
    for f in [
        "distill.csv",
        "results.json",
        "report.html",
        "figures/distillation.png",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("distill.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.starts_with("teacher_smoothing,teacher_accuracy_mean"),
        "{csv}"
    );

    // Bad settings are refused before any training, with the flag's own message.
    for (flag, value, says) in [
        (
            "--temperatures",
            "0",
            "temperature 0 must be finite and > 0",
        ),
        (
            "--weight",
            "1.5",
            "the teacher's weight 1.5 is outside [0, 1]",
        ),
        (
            "--smoothing",
            "1.2",
            "smoothing factor 1.2 is outside [0, 1]",
        ),
    ] {
        let o = labelsmooth(&[
            "distill",
            "--data",
            "digits",
            "--teacher-model",
            "mlp",
            flag,
            value,
        ]);
        assert_eq!(o.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{err}");
    }
    let o = labelsmooth(&[
        "distill",
        "--data",
        "rt-polarity",
        "--teacher-model",
        "mlp",
        "--folds",
        "2",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("needs the lstm model"), "{err}");
}
