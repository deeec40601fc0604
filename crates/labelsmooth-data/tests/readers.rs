//! Readers on good files and on each kind of malformed file.

use std::io::Write;
use std::path::Path;

use labelsmooth_data::images::{read_cifar10, read_idx, read_image_folder};
use labelsmooth_data::table::{Column, Header, TableOptions, read_table, read_text_table};
use labelsmooth_data::text::Tokenizer;
use labelsmooth_data::{DataError, Features, Standardizer, bundled};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
    p
}

fn dense(f: &Features) -> (&[f32], &[usize]) {
    match f {
        Features::Dense { values, shape } => (values, shape),
        Features::Text(_) => panic!("dense features expected"),
    }
}

#[test]
fn bundled_sets() {
    let d = bundled::load("digits").unwrap();
    assert_eq!(d.len(), 1797);
    let (v, shape) = dense(&d.features);
    assert_eq!(shape, &[1, 8, 8]);
    assert_eq!(v.len(), 1797 * 64);
    assert!(v.iter().all(|&x| (0.0..=1.0).contains(&x)));
    assert_eq!(
        d.class_names,
        (0..10).map(|c| c.to_string()).collect::<Vec<_>>()
    );
    let m = bundled::load("mnist-5k").unwrap();
    assert_eq!(m.len(), 5000);
    for c in 0..10 {
        assert_eq!(m.labels.iter().filter(|&&l| l == c).count(), 500);
    }
    assert_eq!(dense(&m.features).1, &[1, 28, 28]);
    let r = bundled::load("rt-polarity").unwrap();
    assert_eq!(r.class_names, vec!["rotten", "fresh"]);
    assert_eq!(r.labels.iter().filter(|&&l| l == 1).count(), 7403);
    assert_eq!(r.labels.iter().filter(|&&l| l == 0).count(), 5405);
    let e = bundled::load("iris").unwrap_err();
    assert!(e.to_string().contains("no bundled data set `iris`"), "{e}");
}

#[test]
fn csv_tables_with_options() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "t.csv", b"x1;x2;kind\n1;2;b\n3;4;a\n5;6.5;b\n");
    let d = read_table(&p, &TableOptions::default()).unwrap();
    assert_eq!(d.class_names, vec!["a", "b"]);
    assert_eq!(d.labels, vec![1, 0, 1]);
    assert_eq!(
        dense(&d.features),
        (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.5][..], &[2][..])
    );
    // Tab separated, no header, label first by index.
    let p = write(dir.path(), "t.tsv", b"7\t0.5\t1\n3\t1.5\t2\n");
    let opts = TableOptions {
        label_column: Some(Column::Index(0)),
        ..Default::default()
    };
    let d = read_table(&p, &opts).unwrap();
    assert_eq!(d.class_names, vec!["3", "7"]);
    assert_eq!(d.labels, vec![1, 0]);
    assert_eq!(dense(&d.features).0, &[0.5, 1.0, 1.5, 2.0]);
    // By name.
    let p = write(dir.path(), "n.csv", b"label,a\nyes,1\nno,2\n");
    let opts = TableOptions {
        label_column: Some(Column::Name("label".into())),
        ..Default::default()
    };
    assert_eq!(read_table(&p, &opts).unwrap().labels, vec![1, 0]);
}

#[test]
fn malformed_tables_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "ragged.csv",
            b"1,2,a\n3,4,b\n5,b\n",
            "ragged.csv:3: row has 2 fields, expected 3",
        ),
        (
            "text.csv",
            b"1,2,a\n3,x,b\n",
            "text.csv:2: column 1: `x` is not a finite number",
        ),
        (
            "inf.csv",
            b"a,b,c\n1,2,a\n3,inf,b\n",
            "inf.csv:3: column `b`: `inf` is not a finite number",
        ),
        ("empty.csv", b"", "empty.csv: the file is empty"),
        (
            "header.csv",
            b"a,b,c\n",
            "header.csv: the table has a header but no rows",
        ),
    ];
    for (name, body, want) in cases {
        let p = write(dir.path(), name, body);
        let opts = TableOptions {
            header: if name == "header.csv" {
                Header::Yes
            } else {
                Header::Auto
            },
            ..Default::default()
        };
        let e = read_table(&p, &opts).unwrap_err();
        let msg = e.to_string();
        assert!(msg.ends_with(want), "{name}: {msg}");
        assert!(msg.contains(dir.path().to_str().unwrap()), "{msg}");
    }
    let p = write(dir.path(), "ok.csv", b"a,b,c\n1,2,x\n");
    let opts = TableOptions {
        label_column: Some(Column::Name("kind".into())),
        ..Default::default()
    };
    let e = read_table(&p, &opts).unwrap_err().to_string();
    assert!(
        e.contains("no label column named `kind` (columns: a, b, c)"),
        "{e}"
    );
    let opts = TableOptions {
        label_column: Some(Column::Index(7)),
        ..Default::default()
    };
    assert!(
        read_table(&p, &opts)
            .unwrap_err()
            .to_string()
            .contains("label column 7 does not exist")
    );
    let e = read_table(&dir.path().join("missing.csv"), &TableOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Io { .. }));
}

#[test]
fn line_numbers_count_crlf_line_ends_and_a_label_column_is_suggested() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TableOptions::default();
    let crlf = write(
        dir.path(),
        "crlf.csv",
        b"a,b,label\r\n1,2,x\r\n3,4,y\r\n5,oops,x\r\n",
    );
    let e = read_table(&crlf, &opts).unwrap_err().to_string();
    assert!(
        e.contains("crlf.csv:4: column `b`: `oops` is not a finite number"),
        "{e}"
    );
    let lf = write(dir.path(), "lf.csv", b"a,b,label\n1,2,x\n3,4,y\n5,oops,x\n");
    let e = read_table(&lf, &opts).unwrap_err().to_string();
    assert!(e.contains("lf.csv:4:"), "{e}");
    assert!(
        !e.contains("--label-column"),
        "a number column with one typo: {e}"
    );
    // The labels first and numbers last: the first column is words only.
    let first = write(
        dir.path(),
        "first.csv",
        b"species,x,y\nsetosa,1,2\nvirginica,3,4\n",
    );
    let e = read_table(&first, &opts).unwrap_err().to_string();
    assert!(
        e.contains("first.csv:2: column `species`: `setosa` is not a finite number; if column `species` holds the labels, name it as the label column (--label-column species)"),
        "{e}"
    );
}

#[test]
fn text_and_label_columns_are_detected_and_a_column_of_unique_values_is_no_label() {
    let dir = tempfile::tempdir().unwrap();
    // An SMS-like file: label first, message second, no header.
    let mut tsv = String::new();
    for i in 0..40 {
        let label = if i % 4 == 0 { "spam" } else { "ham" };
        tsv.push_str(&format!(
            "{label}\tmessage number {i} with some words in it\n"
        ));
    }
    let p = write(dir.path(), "sms.tsv", tsv.as_bytes());
    let d = read_text_table(&p, &TableOptions::default()).unwrap();
    assert_eq!(d.class_names, ["ham", "spam"]);
    assert_eq!(d.len(), 40, "no row taken as a header");
    assert_eq!(d.labels.iter().filter(|&&y| y == 1).count(), 10);
    let Features::Text(t) = &d.features else {
        panic!()
    };
    assert!(t[3].starts_with("message number 3"));
    assert_eq!(d.notes.len(), 2, "{:?}", d.notes);
    assert!(d.notes[0].contains("labels from column 0"), "{:?}", d.notes);
    assert!(d.notes[1].contains("text from column 1"), "{:?}", d.notes);
    // Naming the message column as the label is refused: one distinct value per row.
    let opts = TableOptions {
        label_column: Some(Column::Index(1)),
        text_column: Some(Column::Index(0)),
        ..Default::default()
    };
    let e = read_text_table(&p, &opts).unwrap_err().to_string();
    assert!(e.contains("has 40 distinct values in 40 rows"), "{e}");
    assert!(e.contains("--label-column 0?"), "{e}");
    // The same for a table whose last column is an id.
    let mut csv = String::from("kind,x,id\n");
    for i in 0..30 {
        csv.push_str(&format!("{},{},{}\n", ["a", "b"][i % 2], i, 1000 + i));
    }
    let p = write(dir.path(), "ids.csv", csv.as_bytes());
    let e = read_table(&p, &TableOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("column 2 (`id`), which has 30 distinct values in 30 rows"),
        "{e}"
    );
    let named = TableOptions {
        label_column: Some(Column::Name("kind".into())),
        ..Default::default()
    };
    assert_eq!(read_table(&p, &named).unwrap().class_names, ["a", "b"]);
}

#[test]
fn standardization_is_fitted_on_training_rows() {
    let train = [1.0f32, 100.0, 3.0, 300.0];
    let s = Standardizer::fit(&train, 2);
    let mut test = vec![2.0f32, 200.0, 5.0, 0.0];
    s.apply(&mut test);
    assert_eq!(test, vec![0.0, 0.0, 3.0, -2.0]);
}

#[test]
fn text_tables_and_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "r.csv",
        b"id,review,label\n1,\"Great, great film\",pos\n2,\"dull\nand slow\",neg\n3,great fun,pos\n",
    );
    let opts = TableOptions {
        label_column: Some(Column::Name("label".into())),
        text_column: Some(Column::Name("review".into())),
        ..Default::default()
    };
    let d = read_text_table(&p, &opts).unwrap();
    assert_eq!(d.labels, vec![1, 0, 1]);
    let Features::Text(texts) = &d.features else {
        panic!("text expected")
    };
    assert_eq!(texts[1], "dull\nand slow");
    let tok = Tokenizer::fit(texts, 5, 4);
    assert_eq!(
        tok.vocabulary,
        vec!["<pad>", "<oov>", "great", "and", "dull"]
    );
    assert_eq!(tok.encode("GREAT and awful"), vec![0, 2, 3, 1]);
    assert_eq!(tok.encode("great great great great great").len(), 4);
    // Without a header, the last column is the label and the first other column the text.
    let p = write(
        dir.path(),
        "plain.tsv",
        b"good movie\tpos\nbad movie\tneg\n",
    );
    let d = read_text_table(&p, &TableOptions::default()).unwrap();
    assert_eq!(d.len(), 2);
    let p = write(dir.path(), "bad.csv", b"text,label\nok,pos\n");
    let opts = TableOptions {
        text_column: Some(Column::Name("body".into())),
        ..Default::default()
    };
    assert!(
        read_text_table(&p, &opts)
            .unwrap_err()
            .to_string()
            .contains("no text column named `body`")
    );
}

#[test]
fn image_folders() {
    let dir = tempfile::tempdir().unwrap();
    for (class, shade) in [("cat", 40u8), ("dog", 200u8)] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
        for i in 0..2 {
            let img = image::RgbImage::from_pixel(6, 4, image::Rgb([shade, shade, shade]));
            img.save(dir.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let d = read_image_folder(dir.path(), 3, false).unwrap();
    assert_eq!(d.class_names, vec!["cat", "dog"]);
    assert_eq!(d.labels, vec![0, 0, 1, 1]);
    let (v, shape) = dense(&d.features);
    assert_eq!(shape, &[1, 3, 3]);
    assert!((v[0] - 40.0 / 255.0).abs() < 1e-6);
    let rgb = read_image_folder(dir.path(), 2, true).unwrap();
    assert_eq!(dense(&rgb.features).1, &[3, 2, 2]);
    // An image that does not decode, and a class folder with no images.
    write(&dir.path().join("dog"), "broken.png", b"not a png");
    let e = read_image_folder(dir.path(), 3, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("broken.png") && e.contains("cannot decode image"),
        "{e}"
    );
    std::fs::remove_file(dir.path().join("dog").join("broken.png")).unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let e = read_image_folder(dir.path(), 3, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("empty") && e.contains("no .png or .jpg images"),
        "{e}"
    );
}

fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_be_bytes().to_vec();
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

#[test]
fn idx_files_plain_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let images = idx(2051, &[2, 2, 2], &[0, 255, 51, 0, 1, 2, 3, 4]);
    let labels = idx(2049, &[2], &[3, 1]);
    let pi = write(dir.path(), "img", &images);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&labels).unwrap();
    let pl = write(dir.path(), "lab.gz", &gz.finish().unwrap());
    let d = read_idx(&pi, &pl).unwrap();
    assert_eq!(d.labels, vec![3, 1]);
    assert_eq!(d.n_classes(), 4);
    let (v, shape) = dense(&d.features);
    assert_eq!(shape, &[1, 2, 2]);
    assert_eq!(v[1], 1.0);
    assert!((v[2] - 0.2).abs() < 1e-6);
    let e = read_idx(&pl, &pi).unwrap_err().to_string();
    assert!(
        e.contains("lab.gz") && e.contains("magic number 2051"),
        "{e}"
    );
    let short = write(dir.path(), "short", &images[..20]);
    assert!(
        read_idx(&short, &pl)
            .unwrap_err()
            .to_string()
            .contains("header promises")
    );
    let three = write(dir.path(), "three", &idx(2049, &[3], &[0, 1, 2]));
    assert!(read_idx(&pi, &three).is_err());
}

#[test]
fn cifar_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut batch = Vec::new();
    for label in [6u8, 9] {
        batch.push(label);
        batch.extend(std::iter::repeat_n(label * 10, 3072));
    }
    write(dir.path(), "data_batch_1.bin", &batch);
    let d = read_cifar10(dir.path()).unwrap();
    assert_eq!(d.labels, vec![6, 9]);
    assert_eq!(d.class_names[6], "frog");
    assert_eq!(dense(&d.features).1, &[3, 32, 32]);
    write(dir.path(), "data_batch_2.bin", &batch[..100]);
    let e = read_cifar10(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("data_batch_2.bin") && e.contains("3073-byte records"),
        "{e}"
    );
    let mut bad = batch.clone();
    bad[3073] = 12;
    write(dir.path(), "data_batch_2.bin", &bad);
    let e = read_cifar10(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("data_batch_2.bin:2") && e.contains("label 12"),
        "{e}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(read_cifar10(empty.path()).is_err());
}

#[test]
fn npy_pairs_of_samples_and_integer_labels() {
    use labelsmooth_data::npy::{read_pair, to_bytes_f32};
    let dir = tempfile::tempdir().unwrap();
    let x = write(
        dir.path(),
        "x.npy",
        &to_bytes_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], &[4, 2]),
    );
    let y = write(
        dir.path(),
        "y.npy",
        &to_bytes_f32(&[7.0, 3.0, 7.0, -1.0], &[4]),
    );
    let d = read_pair(&x, &y).unwrap();
    assert_eq!(d.class_names, vec!["-1", "3", "7"]);
    assert_eq!(d.labels, vec![2, 1, 2, 0]);
    let (v, shape) = dense(&d.features);
    assert_eq!(shape, &[2]);
    assert_eq!(v[7], 8.0);
    let images = write(
        dir.path(),
        "img.npy",
        &to_bytes_f32(&[0.5; 4 * 12], &[4, 3, 2, 2]),
    );
    assert_eq!(
        dense(&read_pair(&images, &y).unwrap().features).1,
        &[3, 2, 2]
    );
    let short = write(
        dir.path(),
        "short.npy",
        &to_bytes_f32(&[1.0, 0.0, 1.0], &[3]),
    );
    let e = read_pair(&x, &short).unwrap_err().to_string();
    assert!(e.contains("short.npy: 3 labels for the 4 samples"), "{e}");
    let frac = write(
        dir.path(),
        "frac.npy",
        &to_bytes_f32(&[1.0, 0.5, 1.0, 0.0], &[4]),
    );
    let e = read_pair(&x, &frac).unwrap_err().to_string();
    assert!(
        e.contains("label 0.5 of sample 1 (0-based) is not an integer"),
        "{e}"
    );
    let flat = write(dir.path(), "flat.npy", &to_bytes_f32(&[1.0; 4], &[4]));
    let e = read_pair(&flat, &y).unwrap_err().to_string();
    assert!(e.contains("flat.npy: shape [4]"), "{e}");
    let nan = write(
        dir.path(),
        "nan.npy",
        &to_bytes_f32(&[1.0, 2.0, 3.0, f32::NAN, 5.0, 6.0, 7.0, 8.0], &[4, 2]),
    );
    let e = read_pair(&nan, &y).unwrap_err().to_string();
    assert!(e.contains("nan.npy: element 3 is not finite"), "{e}");
    let e = labelsmooth_data::spec::load(
        &format!("npy:{}", x.display()),
        &labelsmooth_data::spec::LoadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("npy: needs X.npy,Y.npy"), "{e}");
}

#[test]
fn missing_values_are_kept_for_the_median_or_refused() {
    use labelsmooth_data::table::{Missing, parse_table};
    let csv = b"a,b,label\n1,NA,x\n2,,y\n?,4,x\n5,6,y\n4,8,x\n";
    let d = parse_table(Path::new("m.csv"), csv, &TableOptions::default()).unwrap();
    let (v, _) = dense(&d.features);
    assert!(v[1].is_nan() && v[3].is_nan() && v[4].is_nan());
    assert_eq!(v[0], 1.0);
    assert_eq!(d.notes.len(), 1);
    assert!(
        d.notes[0].contains("m.csv: 3 missing values (`a`: 1, `b`: 2)"),
        "{}",
        d.notes[0]
    );
    // The median of each column over the values there: a = {1, 2, 5, 4} → 3, b = {4, 6, 8} → 6.
    let s = Standardizer::fit(v, 2);
    assert_eq!(s.median, vec![3.0, 6.0]);
    assert_eq!(s.mean, vec![3.0, 6.0]);
    let mut row = [f32::NAN, 8.0];
    s.apply(&mut row);
    assert_eq!(row[0], 0.0);
    assert!((row[1] - 2.0 / (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
    let opts = TableOptions {
        missing: Missing::Error,
        ..Default::default()
    };
    let e = parse_table(Path::new("m.csv"), csv, &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("m.csv:2: column `b`: missing value `NA`"), "{e}");
    // A word that is not a missing-value marker is still an error.
    let e = parse_table(
        Path::new("w.csv"),
        b"a,label\n1,x\nabc,y\n",
        &TableOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("w.csv:3: column `a`: `abc` is not a finite number"),
        "{e}"
    );
}

#[test]
fn parquet_tables_written_by_pyarrow() {
    use labelsmooth_data::table::read_parquet_table;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/parquet");
    let opts = TableOptions {
        label_column: Some(Column::Name("species".into())),
        ..Default::default()
    };
    let d = read_parquet_table(&dir.join("iris.parquet"), &opts).unwrap();
    assert_eq!(d.len(), 150);
    assert_eq!(d.class_names, vec!["setosa", "versicolor", "virginica"]);
    let (v, shape) = dense(&d.features);
    // Four measurements and the int32 batch column, in file order.
    assert_eq!(shape, &[5]);
    assert_eq!(&v[..5], &[5.1, 3.5, 1.4, 0.2, 0.0]);
    assert!(v[5 * 5 + 3].is_nan(), "row 5's petal width is null");
    assert!(v[77 * 5].is_nan(), "row 77's sepal length is null");
    assert_eq!(v[149 * 5 + 4], 2.0);
    let layout = d.layout.as_ref().unwrap();
    assert_eq!(layout.feature_names()[3], "petal width (cm)");
    // The label column is the last one unless named: here the last is the int32 batch column,
    // and `species` is refused as a feature.
    let e = read_parquet_table(&dir.join("iris.parquet"), &TableOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("iris.parquet:2: column `species`: `setosa` is not a finite number"),
        "{e}"
    );
    let e = read_parquet_table(&dir.join("nested.parquet"), &TableOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nested.parquet:2: column `x` holds [1.0], not a number or a string"),
        "{e}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "bad.parquet", b"PAR1 not really PAR1");
    let e = read_parquet_table(&bad, &TableOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.parquet: not a readable Parquet file"),
        "{e}"
    );
}
