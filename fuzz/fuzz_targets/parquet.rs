//! Apache Parquet tables (`parquet:`), read by the rules of CSV tables, with the label column
//! taken from the first byte.
#![no_main]

use std::path::Path;

use labelsmooth_data::table::{Column, Missing, TableOptions, parse_parquet_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let opts = TableOptions {
        missing: if flags & 1 == 0 {
            Missing::Impute
        } else {
            Missing::Error
        },
        label_column: match flags >> 1 {
            0 => None,
            1 => Some(Column::Name("species".into())),
            i => Some(Column::Index(usize::from(i % 8))),
        },
        ..Default::default()
    };
    if let Ok(d) = parse_parquet_table(Path::new("fuzz.parquet"), bytes, &opts) {
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
