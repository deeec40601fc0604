//! CIFAR-10 binary batches (`cifar:`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    if labelsmooth_data::images::parse_cifar_batch(
        Path::new("data_batch_1.bin"),
        data,
        &mut values,
        &mut labels,
    )
    .is_ok()
    {
        assert_eq!(values.len(), labels.len() * 3072);
    }
});
