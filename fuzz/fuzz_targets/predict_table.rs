//! New rows read as a model's training table was (`predict --data csv:`): columns matched by
//! name, missing values kept for the saved median.
#![no_main]

use std::path::Path;

use labelsmooth_data::TableLayout;
use labelsmooth_data::input::parse_table;
use labelsmooth_data::table::{Header, Missing, TableOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let layout = TableLayout {
        delimiter: b',',
        header: (flags & 1 == 0).then(|| vec!["a".into(), "b".into(), "label".into()]),
        features: vec![0, 1],
        text: None,
        label: 2,
        width: 3,
    };
    let opts = TableOptions {
        header: [Header::Auto, Header::Yes, Header::No][usize::from((flags >> 1) % 3)],
        missing: if flags & 8 == 0 {
            Missing::Impute
        } else {
            Missing::Error
        },
        ..Default::default()
    };
    if let Ok(s) = parse_table(Path::new("new.csv"), bytes, &layout, &opts) {
        if let labelsmooth_data::Features::Dense { values, shape } = &s.features {
            assert_eq!(values.len(), s.ids.len() * shape.iter().product::<usize>());
        }
    }
});
