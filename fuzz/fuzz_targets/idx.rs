//! MNIST IDX image and label files (`idx:`): the first two bytes give the length of the image
//! file's bytes, the rest are the label file's.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(u16::from_le_bytes([data[0], data[1]])) + 2).min(data.len());
    let (images, labels) = data[2..].split_at(split - 2);
    if let Ok(d) = labelsmooth_data::images::parse_idx(
        Path::new("images.idx"),
        images,
        Path::new("labels.idx"),
        labels,
    ) {
        assert_eq!(d.labels.len() * d.sample_size(), images.len() - 16);
    }
});
