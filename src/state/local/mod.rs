//! The local state backend: one JSON file (default `state/<topology stem>.state.json`), its
//! previous version in `<file>.backup`, and a lock file next to it.

pub(crate) mod atomic;
pub(crate) mod lockfile;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::backend::{HistoryEntry, LockInfo, StateBackend, StateLock};
use super::codec;
use super::error::StateError;
use super::model::State;
use super::rules::{check_cas, check_push};
use atomic::{atomic_write, with_suffix};

pub use lockfile::{force_unlock, lock_path};

#[derive(Debug, Clone)]
pub struct LocalBackend {
    path: PathBuf,
}

impl LocalBackend {
    pub fn new(path: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { path: path.into() }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn backup_path(&self) -> PathBuf {
        with_suffix(&self.path, ".backup")
    }
    pub fn lock_path(&self) -> PathBuf {
        lock_path(&self.path)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    /// The current file's bytes and parsed state, `None` if there is no file.
    fn load(&self) -> Result<Option<(Vec<u8>, State)>, StateError> {
        load_file(&self.path)
    }

    /// Replace the file with `json`, keeping the current content as `.backup` first.
    fn replace(&self, previous: Option<&[u8]>, json: &str) -> Result<(), StateError> {
        if let Some(prev) = previous {
            atomic_write(&self.backup_path(), &self.path, prev)?;
        }
        atomic_write(&self.path, &self.path, json.as_bytes())
    }
}

fn load_file(path: &Path) -> Result<Option<(Vec<u8>, State)>, StateError> {
    match skyplan_os::read_bounded(path, skyplan_os::MAX_FILE_BYTES) {
        Ok(bytes) => {
            let state = codec::from_json(&bytes, &path.display().to_string())?;
            Ok(Some((bytes, state)))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io("read", path, e)),
    }
}

#[async_trait]
impl StateBackend for LocalBackend {
    fn describe(&self) -> String {
        self.location()
    }

    async fn read(&self) -> Result<Option<State>, StateError> {
        Ok(self.load()?.map(|(_, s)| s))
    }

    async fn write(&self, state: &mut State) -> Result<(), StateError> {
        let current = self.load()?;
        check_cas(&self.location(), current.as_ref().map(|(_, s)| s), state)?;
        let mut next = state.clone();
        next.serial = state.serial + 1;
        let json = codec::to_json(&next)?;
        self.replace(current.as_ref().map(|(b, _)| b.as_slice()), &json)?;
        state.serial = next.serial;
        Ok(())
    }

    async fn push(&self, state: &State, force: bool) -> Result<(), StateError> {
        let json = codec::to_json(state)?;
        let current = self.load()?;
        if let Some((bytes, stored)) = &current {
            if !force && check_push(&self.location(), stored, state)? {
                return Ok(());
            }
            if bytes == json.as_bytes() {
                return Ok(());
            }
        }
        self.replace(current.as_ref().map(|(b, _)| b.as_slice()), &json)
    }

    async fn lock(
        &self,
        info: LockInfo,
        timeout: Duration,
        ui: &crate::printer::Printer,
    ) -> Result<Box<dyn StateLock>, StateError> {
        let lock =
            lockfile::acquire(&self.lock_path(), info, timeout, &self.location(), ui).await?;
        Ok(Box::new(lock))
    }

    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        lockfile::holder(&self.lock_path())
    }

    async fn force_unlock(
        &self,
        expected_id: Option<&str>,
        _kill_holder: bool,
    ) -> Result<Option<LockInfo>, StateError> {
        // A local holder is not killed: it may be a live process on another host.
        force_unlock(&self.path, expected_id)
    }

    async fn history(&self) -> Result<Vec<HistoryEntry>, StateError> {
        let mut out = Vec::new();
        for path in [self.path.clone(), self.backup_path()] {
            if let Some((_, s)) = load_file(&path)? {
                let written_at = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .map(rfc3339);
                out.push(HistoryEntry {
                    serial: s.serial,
                    lineage: s.lineage,
                    written_at,
                    writer: None,
                });
            }
        }
        Ok(out)
    }
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
