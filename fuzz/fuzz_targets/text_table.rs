//! Tables of a text column and a label column (`text:`), with or without named columns.
#![no_main]

use std::path::Path;

use labelsmooth_data::table::{Column, Header, TableOptions, parse_text_table};
use labelsmooth_data::text::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let opts = TableOptions {
        header: [Header::Auto, Header::Yes, Header::No][usize::from(flags % 3)],
        label_column: (flags & 4 != 0).then(|| Column::Index(0)),
        text_column: (flags & 8 != 0).then(|| Column::Name("text".into())),
        ..Default::default()
    };
    if let Ok(d) = parse_text_table(Path::new("fuzz.tsv"), bytes, &opts) {
        assert!(d.labels.iter().all(|&l| l < d.class_names.len()));
        if let labelsmooth_data::Features::Text(texts) = &d.features {
            let tok = Tokenizer::fit(texts, 100, 8);
            assert_eq!(tok.encode_all(texts).len(), texts.len() * 8);
        }
    }
});
