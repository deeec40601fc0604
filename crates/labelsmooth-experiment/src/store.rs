//! Where the finished trials of a sweep are kept: a folder (`sweep.json` and one file per trial
//! under `trials/`, which is what makes resuming and merging shards work) or memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{read_json, writable_dir, write_json};
use crate::sweep::{Sweep, TrialKey, TrialRecord};

/// The sweep described by `path`; a description this version cannot read (such as one written
/// by an older labelsmooth) is an error that says so.
fn read_sweep(path: &Path) -> Result<Sweep> {
    read_json(path).map_err(|e| match e {
        Error::Format { path, message } => Error::Format {
            path,
            message: format!(
                "not a sweep description of this labelsmooth version ({message}); write the sweep to a new folder"
            ),
        },
        other => other,
    })
}

/// Finished trials of one sweep, by key.
pub trait TrialStore {
    /// The record of `key`, if that trial has finished.
    fn get(&self, key: &TrialKey) -> Result<Option<TrialRecord>>;
    /// Keeps the record of a finished trial.
    fn put(&mut self, key: &TrialKey, record: &TrialRecord) -> Result<()>;
}

/// Trials in memory, for sweeps that need no folder.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    records: BTreeMap<TrialKey, TrialRecord>,
}

impl TrialStore for MemoryStore {
    fn get(&self, key: &TrialKey) -> Result<Option<TrialRecord>> {
        Ok(self.records.get(key).cloned())
    }
    fn put(&mut self, key: &TrialKey, record: &TrialRecord) -> Result<()> {
        self.records.insert(*key, record.clone());
        Ok(())
    }
}

/// Trials in a folder: `DIR/sweep.json` says which sweep, and each finished trial is
/// `DIR/trials/a<α>_f<fold>.json`, written atomically.
#[derive(Debug, Clone)]
pub struct FolderStore {
    dir: PathBuf,
    sweep: Sweep,
}

impl FolderStore {
    /// Opens `dir` for `sweep`, creating it (and `sweep.json`) when new. A folder that holds a
    /// different sweep is an error: its trials cannot be mixed with this one's.
    pub fn create(dir: &Path, sweep: &Sweep) -> Result<FolderStore> {
        writable_dir(dir)?;
        let trials = dir.join("trials");
        std::fs::create_dir_all(&trials).map_err(|e| Error::io(&trials, "cannot create", e))?;
        let config = dir.join("sweep.json");
        if config.exists() {
            let existing = read_sweep(&config)?;
            if existing != *sweep {
                return Err(Error::Store(format!(
                    "{}: holds a different sweep (see its sweep.json)",
                    dir.display()
                )));
            }
        } else {
            write_json(&config, sweep)?;
        }
        Ok(FolderStore {
            dir: dir.to_path_buf(),
            sweep: sweep.clone(),
        })
    }

    /// Opens a folder written by [`create`](Self::create), with the sweep it holds.
    pub fn open(dir: &Path) -> Result<(FolderStore, Sweep)> {
        let config = dir.join("sweep.json");
        if !config.is_file() {
            return Err(Error::Store(format!(
                "{}: no sweep.json (not a sweep folder?)",
                dir.display()
            )));
        }
        let sweep = read_sweep(&config)?;
        Ok((
            FolderStore {
                dir: dir.to_path_buf(),
                sweep: sweep.clone(),
            },
            sweep,
        ))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &TrialKey) -> Result<PathBuf> {
        let alpha =
            self.sweep.factors.get(key.factor).ok_or_else(|| {
                Error::Invalid(format!("trial {key:?} is not in this sweep's grid"))
            })?;
        Ok(self
            .dir
            .join("trials")
            .join(format!("a{alpha}_f{}.json", key.fold)))
    }
}

impl TrialStore for FolderStore {
    fn get(&self, key: &TrialKey) -> Result<Option<TrialRecord>> {
        let path = self.path(key)?;
        if !path.exists() {
            return Ok(None);
        }
        let r: TrialRecord = read_json(&path)?;
        if r.fold != key.fold || Some(&r.smoothing) != self.sweep.factors.get(key.factor) {
            return Err(Error::Format {
                path,
                message: format!(
                    "holds smoothing {} fold {}, not the trial its name says",
                    r.smoothing, r.fold
                ),
            });
        }
        Ok(Some(r))
    }

    fn put(&mut self, key: &TrialKey, record: &TrialRecord) -> Result<()> {
        write_json(&self.path(key)?, record)
    }
}
