//! Model folders end to end: `train --out` → `predict` and `evaluate`, on a table, texts and
//! images, and every way a model folder or its data can be wrong.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn labelsmooth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labelsmooth"))
        .args(args)
        .output()
        .expect("run labelsmooth")
}

fn ok(args: &[&str]) -> Output {
    let o = labelsmooth(args);
    assert!(
        o.status.success(),
        "labelsmooth {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Fails with exit code 1, one line on stderr containing `needle`, no panic.
fn fails(args: &[&str], needle: &str) {
    let o = labelsmooth(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "labelsmooth {args:?}: {err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Rows of a predictions CSV by id: the probability fields as written.
fn probabilities(path: &Path) -> HashMap<String, Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().clone();
    let first_p = h.iter().position(|c| c.starts_with("p_")).unwrap();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            (
                rec[0].to_string(),
                rec.iter().skip(first_p).map(String::from).collect(),
            )
        })
        .collect()
}

/// Every held-out row of `train`'s predictions.csv has the same probabilities, written the
/// same way, in `predict`'s output.
fn assert_same_probabilities(train_preds: &Path, predicted: &Path) {
    let held_out = probabilities(train_preds);
    let all = probabilities(predicted);
    assert!(!held_out.is_empty());
    for (id, p) in &held_out {
        assert_eq!(all.get(id), Some(p), "row {id}");
    }
}

/// Three classes (names with a comma and quotes) in two informative features and one noise
/// feature; 150 rows.
fn write_table(dir: &Path) -> (PathBuf, PathBuf) {
    let names = ["New York, NY", "Paris \"FR\"", "Tokyo"];
    let mut train = String::from("x1,x2,noise,city\n");
    let mut shuffled = String::from("noise,comment,x2,x1\n");
    for i in 0..150usize {
        let c = i % 3;
        let x1 = c as f64 * 2.0 + ((i * 7) % 11) as f64 * 0.15;
        let x2 = -(c as f64) + ((i * 5) % 13) as f64 * 0.1;
        let noise = ((i * 31) % 17) as f64 / 17.0;
        let name = names[c].replace('"', "\"\"");
        train.push_str(&format!("{x1},{x2},{noise},\"{name}\"\n"));
        shuffled.push_str(&format!("{noise},\"row {i}, unused\",{x2},{x1}\n"));
    }
    let (a, b) = (dir.join("cities.csv"), dir.join("shuffled.csv"));
    std::fs::write(&a, train).unwrap();
    std::fs::write(&b, shuffled).unwrap();
    (a, b)
}

#[test]
fn a_table_model_predicts_by_column_name_as_it_did_in_training() {
    let dir = tempfile::tempdir().unwrap();
    let (train, shuffled) = write_table(dir.path());
    let run = dir.path().join("run");
    ok(&[
        "train",
        "--data",
        &format!("csv:{}", s(&train)),
        "--model",
        "mlp",
        "--epochs",
        "15",
        "--out",
        s(&run),
    ]);
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["format"], 1);
    assert_eq!(card["classes"][0], "New York, NY");
    assert_eq!(card["input"]["kind"], "table");
    assert_eq!(
        card["input"]["standardizer"]["mean"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(card["training"]["fingerprint"]["rows"], 150);
    assert_eq!(card["training"]["spec"]["train"]["smoothing"], 0.1);

    let out = dir.path().join("p.csv");
    let o = ok(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &format!("csv:{}", s(&shuffled)),
        "--out",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("comment").count(), 1, "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("id,predicted_class,\"p_New York, NY\",\"p_Paris \"\"FR\"\"\",p_Tokyo\n")
    );
    assert_eq!(text.lines().count(), 151);
    assert_same_probabilities(&run.join("predictions.csv"), &out);

    // The same rows with their labels, through evaluate and through calibrate.
    let ev = dir.path().join("eval");
    let o = ok(&[
        "evaluate",
        "--model",
        s(&run),
        "--data",
        &format!("csv:{}", s(&train)),
        "--out",
        s(&ev),
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let logits = dir.path().join("logits.npy");
    ok(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &format!("csv:{}", s(&train)),
        "--out",
        s(&dir.path().join("p2.csv")),
        "--logits",
        s(&logits),
    ]);
    let labels = dir.path().join("labels.csv");
    let ids: String = (0..150).map(|i| format!("{}\n", i % 3)).collect();
    std::fs::write(&labels, ids).unwrap();
    let o = ok(&[
        "calibrate",
        "--logits",
        s(&logits),
        "--labels",
        s(&labels),
        "--json",
    ]);
    let c: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for m in [
        "n", "accuracy", "nll", "brier", "ece", "mce", "rmsce", "bins",
    ] {
        assert_eq!(e[m], c[m], "{m}");
    }
    let support: u64 = e["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["support"].as_u64().unwrap())
        .sum();
    assert_eq!(support, 150);
    let cm: u64 = e["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(cm, 150);
    for f in ["metrics.json", "predictions.csv", "report.html"] {
        assert!(ev.join(f).is_file(), "{f}");
    }
    for f in [
        "confusion_matrix.png",
        "confusion_matrix.svg",
        "reliability.png",
    ] {
        assert!(ev.join("figures").join(f).is_file(), "{f}");
    }
}

#[test]
fn a_fitted_temperature_is_saved_and_used_unless_raw() {
    let dir = tempfile::tempdir().unwrap();
    let (train, _) = write_table(dir.path());
    let data = format!("csv:{}", s(&train));
    let run = dir.path().join("run");
    ok(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "5",
        "--out",
        s(&run),
    ]);
    let before = dir.path().join("before.csv");
    ok(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &data,
        "--out",
        s(&before),
    ]);
    let o = ok(&[
        "evaluate",
        "--model",
        s(&run),
        "--data",
        &data,
        "--fit-temperature",
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = e["fitted_temperature"].as_f64().unwrap();
    assert!(e["after"]["nll"].as_f64().unwrap() <= e["nll"].as_f64().unwrap());
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["temperature"].as_f64(), Some(t));
    let (cal, raw) = (dir.path().join("cal.csv"), dir.path().join("raw.csv"));
    ok(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &data,
        "--out",
        s(&cal),
    ]);
    ok(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &data,
        "--out",
        s(&raw),
        "--raw",
    ]);
    assert_eq!(probabilities(&raw), probabilities(&before));
    assert_ne!(probabilities(&cal), probabilities(&before));
    // Evaluating again reports the metrics at the saved temperature: the fitted NLL.
    let o = ok(&["evaluate", "--model", s(&run), "--data", &data, "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gap = (again["nll"].as_f64().unwrap() - e["after"]["nll"].as_f64().unwrap()).abs();
    assert!(gap < 1e-9, "{gap}");
}

#[test]
fn a_text_model_predicts_texts_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = [
        "great fun film",
        "loved every minute",
        "a joy to watch",
        "wonderful acting",
    ];
    let bad = [
        "dull and slow",
        "a waste of time",
        "boring plot",
        "terrible acting",
    ];
    let mut csv = String::from("review,label\n");
    let mut lines = String::new();
    for i in 0..80 {
        let (t, l) = if i % 2 == 0 {
            (good[i / 2 % 4], "pos")
        } else {
            (bad[i / 2 % 4], "neg")
        };
        let text = format!("{t}, take {i}");
        csv.push_str(&format!("\"{text}\",{l}\n"));
        lines.push_str(&text);
        lines.push('\n');
    }
    let (table, plain) = (dir.path().join("reviews.csv"), dir.path().join("new.txt"));
    std::fs::write(&table, csv).unwrap();
    std::fs::write(&plain, lines).unwrap();
    let run = dir.path().join("run");
    ok(&[
        "train",
        "--data",
        &format!("text:{}", s(&table)),
        "--model",
        "lstm",
        "--epochs",
        "2",
        "--out",
        s(&run),
    ]);
    let out = dir.path().join("p.csv");
    ok(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &format!("lines:{}", s(&plain)),
        "--out",
        s(&out),
    ]);
    assert_same_probabilities(&run.join("predictions.csv"), &out);
    // A table model does not take texts.
    let (t, _) = write_table(dir.path());
    let table_run = dir.path().join("table_run");
    ok(&[
        "train",
        "--data",
        &format!("csv:{}", s(&t)),
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--out",
        s(&table_run),
    ]);
    fails(
        &[
            "predict",
            "--model",
            s(&table_run),
            "--data",
            &format!("lines:{}", s(&plain)),
        ],
        "the model takes table rows of 3 features",
    );
}

/// `root/<class>/i.png`, 8 per class: dark squares and bright squares, 12 × 12.
fn write_images(root: &Path) {
    for (class, level) in [("dark", 40u8), ("bright", 210u8)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..8u8 {
            let img = image::GrayImage::from_fn(12, 12, |x, y| {
                image::Luma([level.wrapping_add(((x + y) as u8 + i) % 20)])
            });
            img.save(root.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn an_image_model_predicts_by_image_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shapes");
    write_images(&root);
    let run = dir.path().join("run");
    ok(&[
        "train",
        "--data",
        &format!("images:{}", s(&root)),
        "--image-size",
        "8",
        "--model",
        "cnn",
        "--epochs",
        "2",
        "--valid-fraction",
        "0.25",
        "--out",
        s(&run),
    ]);
    let preds = std::fs::read_to_string(run.join("predictions.csv")).unwrap();
    assert!(
        preds
            .lines()
            .skip(1)
            .all(|l| l.starts_with("bright/") || l.starts_with("dark/")),
        "{preds}"
    );
    let out = dir.path().join("p.csv");
    ok(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &format!("images:{}", s(&root)),
        "--out",
        s(&out),
    ]);
    assert_same_probabilities(&run.join("predictions.csv"), &out);
    // A flat folder has no labels; a file that is not an image is an error naming it.
    let flat = dir.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    std::fs::copy(root.join("dark/0.png"), flat.join("a.png")).unwrap();
    let o = ok(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &format!("images:{}", s(&flat)),
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.starts_with("id,predicted_class,p_bright,p_dark\na.png,"),
        "{text}"
    );
    fails(
        &[
            "evaluate",
            "--model",
            s(&run),
            "--data",
            &format!("images:{}", s(&flat)),
        ],
        "no labels",
    );
    std::fs::write(flat.join("b.png"), b"not a png").unwrap();
    let out2 = dir.path().join("never.csv");
    fails(
        &[
            "predict",
            "--model",
            s(&run),
            "--data",
            &format!("images:{}", s(&flat)),
            "--out",
            s(&out2),
        ],
        "b.png: cannot decode image",
    );
    assert!(!out2.exists());
}

#[test]
fn broken_model_folders_and_mismatched_data_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (train, _) = write_table(dir.path());
    let data = format!("csv:{}", s(&train));
    let run = dir.path().join("run");
    ok(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--out",
        s(&run),
    ]);
    let card_path = run.join("model.json");
    let card = std::fs::read_to_string(&card_path).unwrap();
    let out = dir.path().join("p.csv");
    let predict = |model: &Path, data: &str| {
        vec![
            "predict".to_string(),
            "--model".into(),
            s(model).into(),
            "--data".into(),
            data.into(),
            "--out".into(),
            s(&out).into(),
        ]
    };
    let run_fails = |args: Vec<String>, needle: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&a, needle);
        assert!(!out.exists(), "{needle}: output written");
    };
    // Not a model folder.
    run_fails(predict(dir.path(), &data), "not a model folder");
    // A newer format.
    std::fs::write(
        &card_path,
        card.replacen("\"format\": 1", "\"format\": 7", 1),
    )
    .unwrap();
    run_fails(predict(&run, &data), "model format 7 is newer");
    std::fs::write(&card_path, &card).unwrap();
    // Missing and corrupt weights.
    let card_v: serde_json::Value = serde_json::from_str(&card).unwrap();
    let weights = run.join(card_v["weights"].as_str().unwrap());
    let saved = std::fs::read(&weights).unwrap();
    std::fs::remove_file(&weights).unwrap();
    run_fails(
        predict(&run, &data),
        "weights file named in model.json is missing",
    );
    std::fs::write(&weights, &saved[..saved.len() / 2]).unwrap();
    run_fails(predict(&run, &data), "cannot read the checkpoint");
    std::fs::write(&weights, &saved).unwrap();
    // A card describing a model far larger than its weights: refused before it is built (a
    // billion hidden units would take 12 GB).
    let mut huge = card_v.clone();
    huge["model"]["Mlp"]["hidden"] = serde_json::json!([1_000_000_000u64]);
    std::fs::write(&card_path, serde_json::to_string(&huge).unwrap()).unwrap();
    run_fails(
        predict(&run, &data),
        "describes a mlp of about 7000000003 weights, but its weights file holds",
    );
    std::fs::write(&card_path, &card).unwrap();
    // A missing column, named.
    let partial = dir.path().join("partial.csv");
    std::fs::write(&partial, "x1,noise\n1,2\n").unwrap();
    run_fails(
        predict(&run, &format!("csv:{}", s(&partial))),
        "missing column `x2`",
    );
    // Images into a table model.
    let imgs = dir.path().join("imgs");
    write_images(&imgs);
    run_fails(
        predict(&run, &format!("images:{}", s(&imgs))),
        "the model takes table rows of 3 features",
    );
    // Labels the model does not know.
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "x1,x2,noise,city\n1,2,3,Lima\n").unwrap();
    fails(
        &[
            "evaluate",
            "--model",
            s(&run),
            "--data",
            &format!("csv:{}", s(&other)),
        ],
        "label `Lima` is not one of the model's classes",
    );
    // A missing data file is said once, with the system's reason once.
    let o = labelsmooth(&[
        "predict",
        "--model",
        s(&run),
        "--data",
        &format!("npy:{}", s(&dir.path().join("absent.npy"))),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err.matches("absent.npy").count(), 1, "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    // The folder still works after all this.
    ok(&predict(&run, &data)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mobilenet_v2")
}

/// The first reference case of the small checkpoint: its input as `.npy` `[n, 3, h, w]` and the
/// logits PyTorch computed `[n, 16]`.
fn reference_case(dir: &Path) -> (PathBuf, Vec<f32>, usize) {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("mobilenet_v2_w035_c16.json")).unwrap(),
    )
    .unwrap();
    let case = &v["cases"][0];
    let shape: Vec<usize> = case["input_shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(case["input_f32le_base64"].as_str().unwrap())
        .unwrap();
    let x: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let npy = dir.join("input.npy");
    std::fs::write(&npy, labelsmooth_data::npy::to_bytes_f32(&x, &shape)).unwrap();
    let logits: Vec<f32> = case["logits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    (npy, logits, shape[0])
}

#[test]
fn imported_weights_predict_pytorchs_logits() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, want, n) = reference_case(dir.path());
    let names = dir.path().join("classes.txt");
    let class_names: String = (0..16).map(|c| format!("class {c}\n")).collect();
    std::fs::write(&names, class_names).unwrap();
    for file in [
        "mobilenet_v2_w035_c16.pth",
        "mobilenet_v2_w035_c16.safetensors",
    ] {
        let model = dir.path().join(format!("m_{file}"));
        ok(&[
            "import",
            "--from",
            s(&fixtures().join(file)),
            "--model",
            "mobilenet-v2",
            "--width",
            "0.35",
            "--class-names",
            s(&names),
            "--out",
            s(&model),
        ]);
        let logits = dir.path().join("logits.npy");
        let out = dir.path().join("p.csv");
        ok(&[
            "predict",
            "--model",
            s(&model),
            "--data",
            &format!("npy:{}", s(&npy)),
            "--logits",
            s(&logits),
            "--out",
            s(&out),
        ]);
        let got = labelsmooth_data::npy::read(&logits).unwrap();
        assert_eq!(got.shape, vec![n, 16]);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (g, w) in got.values.iter().zip(&want) {
            assert!((*g as f32 - w).abs() <= 1e-4 * scale, "{file}: {g} vs {w}");
        }
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.starts_with("id,predicted_class,p_class 0,"), "{text}");
    }
}

#[test]
fn import_errors_name_the_problem_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pth = fixtures().join("mobilenet_v2_w035_c16.pth");
    let out = dir.path().join("never");
    let import = |from: &Path, extra: &[&str], needle: &str| {
        let mut a = vec![
            "import",
            "--from",
            s(from),
            "--model",
            "mobilenet-v2",
            "--out",
            s(&out),
        ];
        a.extend_from_slice(extra);
        fails(&a, needle);
        assert!(!out.exists(), "{needle}");
    };
    import(
        &pth,
        &["--width", "1.0"],
        "`features.0.0.weight` has shape [16, 3, 3, 3]",
    );
    let three = dir.path().join("three.txt");
    std::fs::write(&three, "a\nb\nc\n").unwrap();
    import(
        &pth,
        &["--width", "0.35", "--class-names", s(&three)],
        "3 class names, but the classifier",
    );
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"PK\x03\x04 not really").unwrap();
    import(&junk, &["--width", "0.35"], "cannot read a state_dict");
    import(&dir.path().join("absent.pth"), &[], "absent.pth");
}

/// `root/<class>/i.png`, `per_class` RGB images of side 24 around each class's colour.
fn write_colours(root: &Path, classes: &[(&str, [u8; 3])], per_class: u8) {
    for (name, rgb) in classes {
        std::fs::create_dir_all(root.join(name)).unwrap();
        for i in 0..per_class {
            let img = image::RgbImage::from_fn(24, 24, |x, y| {
                let jitter = ((x * 7 + y * 13 + u32::from(i) * 29) % 41) as u8;
                image::Rgb(rgb.map(|c| c.saturating_add(jitter).saturating_sub(20)))
            });
            img.save(root.join(name).join(format!("{i}.png"))).unwrap();
        }
    }
}

#[test]
fn fine_tuning_a_pretrained_backbone_beats_chance() {
    let dir = tempfile::tempdir().unwrap();
    // Pretraining: a small MobileNetV2 learns three colours.
    let pre_data = dir.path().join("colours");
    write_colours(
        &pre_data,
        &[
            ("red", [200, 40, 40]),
            ("green", [40, 190, 40]),
            ("blue", [40, 40, 200]),
        ],
        12,
    );
    let pre = dir.path().join("pre");
    ok(&[
        "train",
        "--data",
        &format!("images:{}", s(&pre_data)),
        "--model",
        "mobilenet-v2",
        "--width",
        "0.35",
        "--image-size",
        "32",
        "--epochs",
        "12",
        "--learning-rate",
        "0.003",
        "--out",
        s(&pre),
    ]);
    // Fine-tuning on new classes: the classifier is replaced and trained on the frozen
    // backbone, then everything trains at a lower rate. With 16 held-out images one run's
    // accuracy moves by steps of 1/16 from seed to seed, so five seeds are pooled: 80 held-out
    // predictions, where guessing (0.5 each, independently) would exceed 0.65 with probability
    // below 0.5%.
    let new_data = dir.path().join("warm_cool");
    write_colours(
        &new_data,
        &[("warm", [220, 90, 30]), ("cool", [30, 90, 220])],
        32,
    );
    let tuned = dir.path().join("tuned");
    let mut accuracies = Vec::new();
    for seed in ["1", "2", "3", "4", "5"] {
        let o = ok(&[
            "train",
            "--data",
            &format!("images:{}", s(&new_data)),
            "--model",
            "mobilenet-v2",
            "--init",
            s(&pre),
            "--freeze",
            "backbone",
            "--unfreeze-after",
            "6",
            "--fine-tune-lr",
            "0.0003",
            "--augment",
            "--image-size",
            "32",
            "--epochs",
            "8",
            "--learning-rate",
            "0.01",
            "--valid-fraction",
            "0.25",
            "--seed",
            seed,
            "--out",
            s(&tuned),
            "--json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        accuracies.push(v["accuracy"].as_f64().unwrap());
    }
    let pooled = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
    assert!(
        pooled > 0.65,
        "held-out accuracy {pooled} over seeds ({accuracies:?}; chance 0.5)"
    );
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tuned.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["classes"], serde_json::json!(["cool", "warm"]));
    assert_eq!(card["model"]["MobileNet"]["width"], 0.35);
    assert_eq!(card["training"]["spec"]["train"]["frozen_epochs"], 6);
    // The imported torchvision weights start a fine-tuning run too.
    let o = ok(&[
        "train",
        "--data",
        &format!("images:{}", s(&new_data)),
        "--model",
        "mobilenet-v2",
        "--init",
        s(&fixtures().join("mobilenet_v2_w035_c16.safetensors")),
        "--width",
        "0.35",
        "--freeze",
        "backbone",
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["accuracy"].is_number());
    // Freezing needs a backbone.
    let (table, _) = write_table(dir.path());
    fails(
        &[
            "train",
            "--data",
            &format!("csv:{}", s(&table)),
            "--model",
            "mlp",
            "--freeze",
            "backbone",
        ],
        "only mobilenet-v2 has a backbone to freeze",
    );
}

#[test]
fn sweep_and_compare_save_the_best_setting_as_a_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (train, shuffled) = write_table(dir.path());
    let data = format!("csv:{}", s(&train));
    let best = dir.path().join("best");
    let o = ok(&[
        "sweep",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--smoothing",
        "0,0.2",
        "--folds",
        "2",
        "--save-best",
        s(&best),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(best.join("model.json")).unwrap()).unwrap();
    assert_eq!(
        card["training"]["spec"]["train"]["smoothing"].as_f64(),
        v["best"]["smoothing"].as_f64()
    );
    assert_eq!(card["metrics"]["n"], 30);
    ok(&[
        "predict",
        "--model",
        s(&best),
        "--data",
        &format!("csv:{}", s(&shuffled)),
    ]);
    let chosen = dir.path().join("chosen");
    let o = ok(&[
        "compare",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "3",
        "--regularizers",
        "none,smoothing+dropout",
        "--folds",
        "2",
        "--save-best",
        s(&chosen),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(chosen.join("model.json")).unwrap()).unwrap();
    let smoothed = v["best"]["regularizer"] == "smoothing+dropout";
    assert_eq!(
        card["training"]["spec"]["train"]["smoothing"].as_f64(),
        Some(if smoothed { 0.1 } else { 0.0 })
    );
    assert_eq!(
        card["training"]["spec"]["dropout"].as_f64(),
        Some(if smoothed { 0.2 } else { 0.0 })
    );
    // A shard sees only part of the trials: it cannot choose.
    let o = labelsmooth(&[
        "sweep",
        "--data",
        &data,
        "--model",
        "mlp",
        "--out",
        s(&dir.path().join("o")),
        "--shard",
        "0/2",
        "--save-best",
        s(&best),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
}

#[test]
fn class_weights_come_balanced_or_from_a_file_by_class_name() {
    let dir = tempfile::tempdir().unwrap();
    let (train, _) = write_table(dir.path());
    let data = format!("csv:{}", s(&train));
    let run = dir.path().join("run");
    ok(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "2",
        "--class-weight",
        "balanced",
        "--out",
        s(&run),
    ]);
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["training"]["spec"]["class_weight"], "balanced");
    // Names with commas: the last comma separates the weight.
    let weights = dir.path().join("w.csv");
    std::fs::write(&weights, "New York, NY,2\nParis \"FR\",1\nTokyo,0.5\n").unwrap();
    ok(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--class-weight",
        s(&weights),
    ]);
    std::fs::write(&weights, "Tokyo,1\nLima,2\n").unwrap();
    fails(
        &[
            "train",
            "--data",
            &data,
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--class-weight",
            s(&weights),
        ],
        "`Lima`, which is not a class",
    );
    std::fs::write(&weights, "Tokyo\n").unwrap();
    let o = labelsmooth(&[
        "train",
        "--data",
        &data,
        "--model",
        "mlp",
        "--class-weight",
        s(&weights),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not `class,weight`"));
}

#[test]
fn missing_values_take_the_saved_median_and_npy_pairs_train() {
    let dir = tempfile::tempdir().unwrap();
    // Two classes apart in x; y is noise with a few values missing.
    let mut csv = String::from("x,y,label\n");
    for i in 0..80 {
        let (x, label) = if i % 2 == 0 { (-2.0, "a") } else { (2.0, "b") };
        let y = if i % 9 == 0 {
            "NA".to_string()
        } else {
            format!("{}", (i % 7) as f64 * 0.5)
        };
        csv.push_str(&format!("{},{y},{label}\n", x + (i % 5) as f64 * 0.1));
    }
    let data = dir.path().join("train.csv");
    std::fs::write(&data, &csv).unwrap();
    let model = dir.path().join("model");
    let o = ok(&[
        "train",
        "--data",
        &format!("csv:{}", s(&data)),
        "--model",
        "mlp",
        "--epochs",
        "20",
        "--out",
        s(&model),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("9 missing values (`y`: 9)"), "{err}");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    let median = card["input"]["standardizer"]["median"][1].as_f64().unwrap();
    // A row with y missing predicts as the row with the saved median in its place.
    let new = dir.path().join("new.csv");
    std::fs::write(&new, format!("label,y,x\na,,1.5\na,{median},1.5\n")).unwrap();
    let out = dir.path().join("p.csv");
    let o = ok(&[
        "predict",
        "--model",
        s(&model),
        "--data",
        &format!("csv:{}", s(&new)),
        "--out",
        s(&out),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains(
        "1 missing value (column `y`: 1), imputed with the training median saved in the model"
    ));
    let p = probabilities(&out);
    assert_eq!(p["0"], p["1"]);
    fails(
        &[
            "predict",
            "--model",
            s(&model),
            "--data",
            &format!("csv:{}", s(&new)),
            "--missing",
            "error",
        ],
        "new.csv:2: column `y`: missing value ``",
    );
    // The same kind of data as two .npy files: train, then evaluate on them.
    let n = 60;
    let xs: Vec<f32> = (0..n)
        .flat_map(|i| [if i % 3 == 0 { -2.0 } else { 2.0 }, (i % 4) as f32])
        .collect();
    let ys: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { 5.0 } else { 9.0 }).collect();
    let x = dir.path().join("x.npy");
    let y = dir.path().join("y.npy");
    std::fs::write(&x, labelsmooth_data::npy::to_bytes_f32(&xs, &[n, 2])).unwrap();
    std::fs::write(&y, labelsmooth_data::npy::to_bytes_f32(&ys, &[n])).unwrap();
    let pair = format!("npy:{},{}", s(&x), s(&y));
    let npy_model = dir.path().join("npy-model");
    ok(&[
        "train",
        "--data",
        &pair,
        "--model",
        "mlp",
        "--epochs",
        "30",
        "--out",
        s(&npy_model),
    ]);
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(npy_model.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["classes"], serde_json::json!(["5", "9"]));
    let o = ok(&[
        "evaluate",
        "--model",
        s(&npy_model),
        "--data",
        &pair,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 60);
    assert!(v["accuracy"].as_f64().unwrap() > 0.9, "{v}");
}

#[test]
fn parquet_tables_train_and_predict_by_column_name() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/parquet");
    let model = dir.path().join("model");
    let o = ok(&[
        "train",
        "--data",
        &format!("parquet:{}", s(&fixtures.join("iris.parquet"))),
        "--label-column",
        "species",
        "--model",
        "mlp",
        "--out",
        s(&model),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["accuracy"].as_f64().unwrap() > 0.8, "{v}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 missing values"));
    let out = dir.path().join("p.csv");
    ok(&[
        "predict",
        "--model",
        s(&model),
        "--data",
        &format!("parquet:{}", s(&fixtures.join("iris_new.parquet"))),
        "--out",
        s(&out),
    ]);
    let p = probabilities(&out);
    assert_eq!(p.len(), 20);
    // The first 20 rows are setosa, the easiest class.
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.split(',').nth(1) == Some("setosa")),
        "{text}"
    );
}
