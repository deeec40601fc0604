//! Image files of image folders (`images:`), decoded and resized as training and `predict`
//! read them.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if labelsmooth_data::images::decode_image(Path::new("fuzz.png"), data, 8, true, &mut out)
        .is_ok()
    {
        assert_eq!(out.len(), 3 * 8 * 8);
    }
});
