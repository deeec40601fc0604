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
    let preds = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
    assert!(preds.starts_with("id,true_class,predicted_class,p_left,p_right\n"));
    assert_eq!(preds.lines().count(), 1 + 12);
    assert!(out.join("model.bpk").is_file());
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
