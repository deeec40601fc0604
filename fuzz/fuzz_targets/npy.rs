//! NumPy `.npy` arrays (`npy:`, `calibrate --probs X.npy`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = labelsmooth_data::npy::parse(Path::new("fuzz.npy"), data) {
        assert_eq!(a.values.len(), a.shape.iter().product::<usize>());
    }
});
