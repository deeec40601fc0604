//! Trial files of a sweep folder (`trials/*.json`), as resuming and `merge` read them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<labelsmooth_experiment::TrialRecord>(data);
    let _ = serde_json::from_slice::<labelsmooth_experiment::Sweep>(data);
});
