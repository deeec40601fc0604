//! Tables of numeric features and a label column (`csv:`), with the reading options taken from
//! the first byte.
#![no_main]

use std::path::Path;

use labelsmooth_data::table::{Column, Header, Missing, TableOptions, parse_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let opts = TableOptions {
        header: [Header::Auto, Header::Yes, Header::No][usize::from(flags % 3)],
        missing: if flags & 4 == 0 {
            Missing::Impute
        } else {
            Missing::Error
        },
        label_column: match flags >> 3 {
            0 => None,
            1 => Some(Column::Name("label".into())),
            i => Some(Column::Index(usize::from(i % 8))),
        },
        ..Default::default()
    };
    if let Ok(d) = parse_table(Path::new("fuzz.csv"), bytes, &opts) {
        assert_eq!(
            d.labels.len() * d.sample_size(),
            match &d.features {
                labelsmooth_data::Features::Dense { values, .. } => values.len(),
                labelsmooth_data::Features::Text(_) => unreachable!("a table of numbers"),
            }
        );
        assert!(d.labels.iter().all(|&l| l < d.class_names.len()));
    }
});
