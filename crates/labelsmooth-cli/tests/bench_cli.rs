//! The `labelsmooth bench` commands run end to end and report what they promise.

use std::process::Command;

fn labelsmooth(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_labelsmooth"))
        .args(args)
        .output()
        .expect("run labelsmooth")
}

#[test]
fn bench_loss_json_has_the_promised_fields() {
    let out = labelsmooth(&[
        "bench",
        "loss",
        "--shapes",
        "64x10,8x300",
        "--reps",
        "1",
        "--copy-bytes",
        "1048576",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 2);
    for (row, (n, k)) in rows.iter().zip([(64, 10), (8, 300)]) {
        assert_eq!(row["n"], n);
        assert_eq!(row["k"], k);
        for field in ["median_ms", "gbps", "copy_gbps"] {
            assert!(row[field].as_f64().expect(field) > 0.0, "{field}");
        }
    }
}

#[test]
fn bench_linear_reports_both_paths() {
    let out = labelsmooth(&[
        "bench",
        "linear",
        "--n",
        "64",
        "--hidden",
        "8",
        "--vocab",
        "500",
        "--reps",
        "1",
        "--block-rows",
        "16",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let paths: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["fused", "unfused"]);
    // The unfused path holds the whole logits and their gradient, the fused one 16 rows of each.
    let fused = rows[0]["peak_extra_mb"].as_f64().unwrap();
    let unfused = rows[1]["peak_extra_mb"].as_f64().unwrap();
    assert!(
        unfused - fused > 0.9 * 2.0 * 48.0 * 500.0 * 4.0 / 1e6,
        "{fused} vs {unfused}"
    );
}

#[test]
fn usage_errors_exit_with_2_and_one_line() {
    for args in [
        &["bench", "loss", "--shapes", "64y10"][..],
        &["bench", "loss", "--shapes", "0x10"],
        &["bench", "loss", "--threads", "0"],
        &["bench", "nothing"],
    ] {
        let out = labelsmooth(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// `--device` names a backend this binary was not built with: one clear error, nothing run.
#[test]
fn a_device_the_binary_lacks_is_refused_with_how_to_get_it() {
    let mut cases = vec![
        (vec!["bench", "loss", "--device", "cuda"], "downloads LLVM"),
        (
            vec!["train", "--data", "digits", "--device", "cuda"],
            "cuda",
        ),
        (
            vec!["bench", "linear", "--device", "tpu"],
            "not one of cpu, wgpu, cuda",
        ),
    ];
    if !cfg!(feature = "wgpu") {
        cases.push((
            vec!["bench", "train", "--device", "wgpu"],
            "--features wgpu",
        ));
        cases.push((
            vec!["sweep", "--data", "digits", "--device", "wgpu"],
            "--features wgpu",
        ));
    }
    for (args, says) in cases {
        let out = labelsmooth(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
