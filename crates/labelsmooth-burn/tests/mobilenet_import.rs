//! torchvision's MobileNetV2 weights give torchvision's outputs: the reference checkpoints
//! (random weights and random batch norm statistics, so that a wrong mapping shows) with the
//! logits and pooled features PyTorch computed in eval mode.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use labelsmooth_burn::burn::tensor::{Device, Tensor, TensorData};
use labelsmooth_burn::import::{ImportError, mobilenet_v2};
use labelsmooth_burn::mobilenet::MobileNetV2;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/mobilenet_v2")
}

fn rows(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect()
}

/// Checks every case of `reference` (a fixture's JSON): logits and pooled features within 1e-4
/// of the largest |logit|.
fn check(model: &MobileNetV2, reference: &Path) {
    let cases: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reference).unwrap()).unwrap();
    let device = Device::flex();
    for case in cases["cases"].as_array().unwrap() {
        let shape: Vec<usize> = case["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(case["input_f32le_base64"].as_str().unwrap())
            .unwrap();
        let x: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let input = Tensor::<4>::from_data(
            TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
            &device,
        );
        let pooled = model.features(input.clone());
        let logits = model.forward(input);
        let want_logits = rows(&case["logits"]);
        let want_pooled = rows(&case["pooled_features"]);
        let scale = want_logits.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (name, got, want) in [
            (
                "logits",
                logits.into_data().try_to_vec::<f32>().unwrap(),
                want_logits,
            ),
            (
                "pooled",
                pooled.into_data().try_to_vec::<f32>().unwrap(),
                want_pooled,
            ),
        ] {
            assert_eq!(got.len(), want.len(), "{name} {shape:?}");
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            eprintln!(
                "{name} {shape:?}: largest difference {worst:.3e}, {:.3e} of the largest |logit|",
                worst / scale
            );
            assert!(
                worst <= 1e-4 * scale,
                "{name} {shape:?}: largest difference {worst}, allowed {}",
                1e-4 * scale
            );
        }
    }
}

#[test]
fn the_small_checkpoint_gives_pytorchs_outputs_from_pth_and_safetensors() {
    let dir = fixtures();
    for file in [
        "mobilenet_v2_w035_c16.pth",
        "mobilenet_v2_w035_c16.safetensors",
    ] {
        let m = mobilenet_v2(&dir.join(file), 0.35, &Device::flex()).unwrap();
        assert_eq!(m.classifier.weight.dims(), [1280, 16], "{file}");
        check(&m, &dir.join("mobilenet_v2_w035_c16.json"));
    }
}

#[test]
fn the_imagenet_shaped_checkpoint_gives_pytorchs_outputs_when_present() {
    // 14 MB, kept out of the repository: checked where the shared fixtures are.
    let shared = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/mobilenet_v2/mobilenet_v2_w1_c1000.pth");
    if !shared.is_file() {
        eprintln!("{} not present: skipped", shared.display());
        return;
    }
    let m = mobilenet_v2(&shared, 1.0, &Device::flex()).unwrap();
    assert_eq!(m.classifier.weight.dims(), [1280, 1000]);
    check(&m, &shared.with_extension("json"));
}

#[test]
fn a_wrong_width_or_file_is_an_error_naming_the_first_mismatch() {
    let dir = fixtures();
    let pth = dir.join("mobilenet_v2_w035_c16.pth");
    let e = mobilenet_v2(&pth, 1.0, &Device::flex()).unwrap_err();
    assert!(matches!(e, ImportError::Mismatch { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("`features.0.0.weight` has shape [16, 3, 3, 3]"),
        "{text}"
    );
    assert!(text.contains("expects [32, 3, 3, 3]"), "{text}");
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.pth");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = mobilenet_v2(&junk, 0.35, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read a state_dict"), "{e}");
    let odd = tmp.path().join("weights.onnx");
    std::fs::write(&odd, b"x").unwrap();
    let e = mobilenet_v2(&odd, 0.35, &Device::flex())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected a .pth, .pt or .safetensors file"),
        "{e}"
    );
}
