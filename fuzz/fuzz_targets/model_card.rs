//! `model.json` of a model folder (`predict`, `evaluate`, `--init`), up to the size check that
//! comes before any model is built.
#![no_main]

use std::path::Path;

use labelsmooth_experiment::ModelCard;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(card) = ModelCard::parse(Path::new("model.json"), data) {
        let _ = card.model.weight_count();
        assert_eq!(card.classes.len(), card.model.classes());
    }
});
