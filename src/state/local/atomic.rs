//! Crash-safe replacement of state files: [`skyplan_os::write_private`] (see its guarantees:
//! a random exclusive temp file, fsync, rename, directory fsync, 0600) with the state's errors;
//! a crash's leftover temporary files are removed by the next write.

use std::fs;
use std::path::{Path, PathBuf};

pub(crate) use skyplan_os::parent_dir;

use crate::state::error::StateError;

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Replace `path` (the state file `state`, or its backup copy) with `bytes`.
pub(crate) fn atomic_write(path: &Path, state: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| StateError::io("create the directory", &dir, e))?;
    skyplan_os::write_private(path, bytes).map_err(|cause| StateError::WriteFailed {
        path: path.to_path_buf(),
        state: state.to_path_buf(),
        cause,
    })?;
    // Writers hold the state lock, so any temporary file of this path is a crash's leftover.
    if let Err(e) = skyplan_os::remove_leftovers(path) {
        tracing::warn!(
            "could not remove leftover temporary files of {}: {e}",
            path.display()
        );
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    skyplan_os::sync_dir(dir).map_err(|e| StateError::io("fsync the directory", dir, e))
}
