//! Images: class folders of PNG/JPEG files, MNIST IDX files, CIFAR-10 binary batches.
//!
//! Pixels come out scaled to [0, 1], `[channels, height, width]` per sample.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{DataError, Dataset, Features, Result};

/// Reads `root/<class>/*.png|jpg|jpeg`, each image resized to `size × size` (bilinear), grey
/// (1 channel) or RGB (3). Classes are the sub-folders in alphabetical order; files are read in
/// name order. A class folder without images, or an image that cannot be decoded, is an error.
pub fn read_image_folder(root: &Path, size: usize, rgb: bool) -> Result<Dataset> {
    if size == 0 {
        return Err(DataError::Unknown("image size must be at least 1".into()));
    }
    let mut classes: Vec<PathBuf> = list(root)?.into_iter().filter(|p| p.is_dir()).collect();
    classes.sort();
    if classes.is_empty() {
        return Err(DataError::at(
            root,
            0,
            "no class folders (expected root/<class>/*.png)",
        ));
    }
    let channels = if rgb { 3 } else { 1 };
    let mut values = Vec::new();
    let mut labels = Vec::new();
    let mut class_names = Vec::new();
    let mut ids = Vec::new();
    for (class, dir) in classes.iter().enumerate() {
        let files = image_files(dir)?;
        if files.is_empty() {
            return Err(DataError::at(
                dir,
                0,
                "class folder holds no .png or .jpg images",
            ));
        }
        for f in files {
            decode_into(&f, size, rgb, &mut values)?;
            labels.push(class);
            ids.push(relative(root, &f));
        }
        class_names.push(
            dir.file_name()
                .map_or(class.to_string(), |n| n.to_string_lossy().into_owned()),
        );
    }
    Ok(Dataset {
        name: root
            .file_name()
            .map_or("images".into(), |n| n.to_string_lossy().into_owned()),
        features: Features::Dense {
            values,
            shape: vec![channels, size, size],
        },
        labels,
        class_names,
        notes: Vec::new(),
        ids: Some(ids),
        layout: None,
    })
}

/// The PNG and JPEG files in `dir` (not in its sub-folders), in name order.
pub(crate) fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = list(dir)?
        .into_iter()
        .filter(|p| {
            p.is_file()
                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                })
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `file`'s path below `root`, with `/` between parts.
pub(crate) fn relative(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Decodes `file`, resizes it to `size × size` (bilinear) and appends its pixels scaled to
/// [0, 1], channel by channel: 3 channels (RGB) or 1 (grey).
pub(crate) fn decode_into(file: &Path, size: usize, rgb: bool, out: &mut Vec<f32>) -> Result<()> {
    let bytes = std::fs::read(file).map_err(|e| DataError::io(file, e))?;
    decode_image(file, &bytes, size, rgb, out)
}

/// Decodes and resizes, as an image folder is read, the bytes of an image file (PNG, JPEG, BMP,
/// GIF, …, told by its content; `file` names it in errors). Images whose decoding would take more
/// than 512 MiB are refused.
pub fn decode_image(
    file: &Path,
    bytes: &[u8],
    size: usize,
    rgb: bool,
    out: &mut Vec<f32>,
) -> Result<()> {
    let bad =
        |e: &dyn std::fmt::Display| DataError::at(file, 0, format!("cannot decode image: {e}"));
    let side = u32::try_from(size)
        .ok()
        .filter(|&s| (1..=4096).contains(&s))
        .ok_or_else(|| DataError::Unknown(format!("image size {size} is not in 1..=4096")))?;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    reader.limits(image::Limits::default());
    let img = reader.decode().map_err(|e| bad(&e))?;
    let img = img.resize_exact(side, side, image::imageops::FilterType::Triangle);
    if rgb {
        let px = img.to_rgb8();
        for c in 0..3 {
            out.extend(px.pixels().map(|p| f32::from(p.0[c]) / 255.0));
        }
    } else {
        out.extend(img.to_luma8().pixels().map(|p| f32::from(p.0[0]) / 255.0));
    }
    Ok(())
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect()
}

/// The bytes of a file, un-gzipped when they start with the gzip magic.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::at(path, 0, format!("not a valid gzip file: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads MNIST IDX files (gzipped or not): images (magic 2051, `[n, rows, cols]` unsigned bytes)
/// and labels (magic 2049, `[n]`). Class names are the digits present, `0..=max label`.
pub fn read_idx(images: &Path, labels: &Path) -> Result<Dataset> {
    let img = read_maybe_gz(images)?;
    let lab = read_maybe_gz(labels)?;
    parse_idx(images, &img, labels, &lab)
}

/// [`read_idx`] on the bytes of the two files, un-gzipped (`images` and `labels` name them in
/// errors).
pub fn parse_idx(images: &Path, img: &[u8], labels: &Path, lab: &[u8]) -> Result<Dataset> {
    if img.len() < 16 || be_u32(img, 0) != 0x0803 {
        return Err(DataError::at(
            images,
            0,
            "not an IDX image file (magic number 2051 expected)",
        ));
    }
    let (n, rows, cols) = (
        be_u32(img, 4) as usize,
        be_u32(img, 8) as usize,
        be_u32(img, 12) as usize,
    );
    let want = n
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .and_then(|v| v.checked_add(16));
    if want != Some(img.len()) {
        return Err(DataError::at(
            images,
            0,
            format!(
                "{} bytes, but the header promises {n} images of {rows} × {cols} pixels",
                img.len()
            ),
        ));
    }
    if lab.len() < 8 || be_u32(lab, 0) != 0x0801 {
        return Err(DataError::at(
            labels,
            0,
            "not an IDX label file (magic number 2049 expected)",
        ));
    }
    let m = be_u32(lab, 4) as usize;
    if m != n || lab.len() != 8 + m {
        return Err(DataError::at(
            labels,
            0,
            format!(
                "holds {m} labels in {} bytes; the images are {n}",
                lab.len()
            ),
        ));
    }
    let labels_v: Vec<usize> = lab[8..].iter().map(|&b| usize::from(b)).collect();
    let k = labels_v.iter().max().map_or(0, |&m| m + 1);
    Ok(Dataset {
        name: images
            .file_name()
            .map_or("idx".into(), |n| n.to_string_lossy().into_owned()),
        features: Features::Dense {
            values: img[16..].iter().map(|&b| f32::from(b) / 255.0).collect(),
            shape: vec![1, rows, cols],
        },
        labels: labels_v,
        class_names: (0..k).map(|c| c.to_string()).collect(),
        notes: Vec::new(),
        ids: None,
        layout: None,
    })
}

/// CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Appends the images (scaled to [0, 1]) and labels of one CIFAR-10 binary batch, `bytes` of
/// the file `path`: records of 1 label byte and 3072 pixel bytes.
pub fn parse_cifar_batch(
    path: &Path,
    bytes: &[u8],
    values: &mut Vec<f32>,
    labels: &mut Vec<usize>,
) -> Result<()> {
    const RECORD: usize = 1 + 3072;
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::at(
            path,
            0,
            format!(
                "{} bytes is not a whole number of 3073-byte records",
                bytes.len()
            ),
        ));
    }
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] > 9 {
            return Err(DataError::at(
                path,
                i + 1,
                format!("record {}: label {} is not in 0..=9", i + 1, rec[0]),
            ));
        }
        labels.push(usize::from(rec[0]));
        values.extend(rec[1..].iter().map(|&b| f32::from(b) / 255.0));
    }
    Ok(())
}

/// Reads CIFAR-10 binary batches from a folder (`data_batch_*.bin`, then `test_batch.bin`
/// if no data batch is there): records of 1 label byte and 3072 pixel bytes (3 × 32 × 32).
pub fn read_cifar10(dir: &Path) -> Result<Dataset> {
    let mut files: Vec<PathBuf> = list(dir)?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("data_batch_") && n.ends_with(".bin"))
        })
        .collect();
    files.sort();
    if files.is_empty() && dir.join("test_batch.bin").is_file() {
        files.push(dir.join("test_batch.bin"));
    }
    if files.is_empty() {
        return Err(DataError::at(
            dir,
            0,
            "no CIFAR-10 batches (data_batch_*.bin or test_batch.bin)",
        ));
    }
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| DataError::io(f, e))?;
        parse_cifar_batch(f, &bytes, &mut values, &mut labels)?;
    }
    Ok(Dataset {
        name: "cifar-10".into(),
        features: Features::Dense {
            values,
            shape: vec![3, 32, 32],
        },
        labels,
        class_names: CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
        notes: Vec::new(),
        ids: None,
        layout: None,
    })
}
