//! Output files: every file is written to a temporary name in its folder and renamed into
//! place, so that a crash or a full disk never leaves half a file under the real name.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same folder, renamed into place.
/// When the write fails (a full disk), the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    labelsmooth_report::write_atomic(path, bytes).map_err(|e| Error::io(path, "cannot write", e))
}

/// Writes `value` as pretty-printed JSON to `path`, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: format!("cannot serialize: {e}"),
    })?;
    write_atomic(path, &bytes)
}

/// Reads the JSON file `path` as a `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Creates `dir` and checks that files can be written in it, so that an unwritable output folder
/// is an error before any work starts.
pub fn writable_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(dir, "cannot create the output folder", e))?;
    let probe = dir.join(".labelsmooth-write-test");
    std::fs::File::create(&probe)
        .and_then(|mut f| f.write_all(b"ok"))
        .map_err(|e| Error::io(dir, "the output folder is not writable", e))?;
    std::fs::remove_file(&probe).ok();
    Ok(())
}

/// The file in an output folder that says which process writes there.
pub const LOCK_FILE: &str = ".labelsmooth.lock";

/// A claim on an output folder, held while a command writes into it: [`LOCK_FILE`] in the
/// folder holds the process id, and is removed when the claim is dropped.
#[derive(Debug)]
#[must_use = "the folder is claimed only while the lock is held"]
pub struct OutputLock {
    path: PathBuf,
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        if lock_holder(&self.path) == Some(std::process::id()) {
            std::fs::remove_file(&self.path).ok();
        }
    }
}

/// The process id in a lock file.
fn lock_holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether process `pid` runs. Where that cannot be known (not Linux), it is taken to run.
fn process_runs(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Makes `dir` ready to write ([`writable_dir`]) and claims it for this process, so that two
/// commands writing the same folder cannot mix their files: while another running process
/// holds the folder, this is an error that names it. The lock file of a process that no longer
/// runs is taken over.
pub fn claim_output(dir: &Path) -> Result<OutputLock> {
    writable_dir(dir)?;
    let path = dir.join(LOCK_FILE);
    let me = std::process::id();
    // The lock is created whole: the id is written to a file of this process, which is then
    // linked to the lock's name (a link fails when the name exists).
    let mine = dir.join(format!("{LOCK_FILE}.{me}"));
    std::fs::write(&mine, format!("{me}\n")).map_err(|e| Error::io(&mine, "cannot write", e))?;
    let mut outcome = Err(Error::Store(format!(
        "{}: cannot claim the folder (its lock file {} keeps changing)",
        dir.display(),
        path.display()
    )));
    for _ in 0..3 {
        match std::fs::hard_link(&mine, &path) {
            Ok(()) => {
                outcome = Ok(OutputLock { path: path.clone() });
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match lock_holder(&path) {
                Some(pid) if pid == me || process_runs(pid) => {
                    outcome = Err(Error::Store(format!(
                        "{}: in use by process {pid}, which writes there (lock file {}); wait for it to finish, or remove the lock file if no labelsmooth process runs there",
                        dir.display(),
                        path.display()
                    )));
                    break;
                }
                stale => {
                    // Taken over only while it still names the process that is gone.
                    if lock_holder(&path) == stale {
                        std::fs::remove_file(&path).ok();
                    }
                }
            },
            Err(e) => {
                outcome = Err(Error::io(&path, "cannot create the lock file", e));
                break;
            }
        }
    }
    std::fs::remove_file(&mine).ok();
    outcome
}

/// Predictions as CSV, `id[,true_class],predicted_class,p_<class>...`, one row per sample of
/// `probs` `[n, k]` with the ids `ids` (data rows or image paths) and, when given, the true
/// class of each; quoted where a class name needs it.
pub fn predictions_csv(
    ids: &[String],
    truth: Option<&[String]>,
    probs: &[f32],
    class_names: &[String],
) -> Result<Vec<u8>> {
    let k = class_names.len();
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| Error::Invalid(format!("cannot format predictions: {e}"));
    let mut header = vec!["id".to_string()];
    if truth.is_some() {
        header.push("true_class".into());
    }
    header.push("predicted_class".into());
    header.extend(class_names.iter().map(|n| format!("p_{n}")));
    w.write_record(&header).map_err(csv_err)?;
    for (i, (p, id)) in probs.chunks_exact(k.max(1)).zip(ids).enumerate() {
        let pred = labelsmooth::calibration::argmax(p);
        let mut row = vec![id.clone()];
        if let Some(t) = truth {
            row.push(t[i].clone());
        }
        row.push(class_names[pred].clone());
        row.extend(p.iter().map(|v| v.to_string()));
        w.write_record(&row).map_err(csv_err)?;
    }
    w.into_inner()
        .map_err(|e| Error::Invalid(format!("cannot format predictions: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_json(&p, &[1, 2]).unwrap();
        write_json(&p, &[3]).unwrap();
        let v: Vec<i32> = read_json(&p).unwrap();
        assert_eq!(v, [3]);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing").join("a.json");
        let e = write_atomic(&p, b"x").unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        assert!(writable_dir(&blocker.join("sub")).is_err());
    }

    #[test]
    fn class_names_with_commas_and_quotes_are_quoted() {
        let names = vec!["New York, NY".to_string(), "Paris \"FR\"".to_string()];
        let ids = ["4".to_string(), "7".to_string()];
        let truth = [names[0].clone(), names[1].clone()];
        let csv = predictions_csv(&ids, Some(&truth), &[0.75, 0.25, 0.5, 0.5], &names).unwrap();
        let text = String::from_utf8(csv).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let h = r.headers().unwrap().clone();
        assert_eq!(&h[3], "p_New York, NY");
        assert_eq!(&h[4], "p_Paris \"FR\"");
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(&rows[0][0], "4");
        assert_eq!(&rows[0][1], "New York, NY");
        assert_eq!(&rows[1][1], "Paris \"FR\"");
        assert_eq!(&rows[1][2], "New York, NY", "ties go to the first class");
        assert_eq!(&rows[0][3], "0.75");
    }
}
