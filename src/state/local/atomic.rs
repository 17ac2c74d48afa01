//! Crash-safe file replacement.
//!
//! # Guarantees
//! After a crash at any point, `path` holds either its old content or the new content, never a
//! mix: the new bytes go to `<path>.tmp` in the same directory (same filesystem, so the rename
//! is atomic), are fsynced, renamed over `path`, and the directory is fsynced so the rename
//! itself survives a power loss. A leftover `.tmp` from a crash is simply overwritten next time.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::state::error::StateError;

/// Files holding state are readable by their owner only.
pub const STATE_FILE_MODE: u32 = 0o600;

pub fn temp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".tmp")
}

pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(|e| StateError::io("create the directory", &dir, e))?;
    let tmp = temp_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(STATE_FILE_MODE)
        .open(&tmp)
        .map_err(|e| StateError::io("create", &tmp, e))?;
    // `mode` only applies to a new file: a leftover temp file keeps its old mode otherwise.
    file.set_permissions(fs::Permissions::from_mode(STATE_FILE_MODE))
        .map_err(|e| StateError::io("set permissions on", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| StateError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| StateError::io("fsync", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| StateError::io("rename the temporary file to", path, e))?;
    sync_dir(&dir)
}

pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("fsync the directory", dir, e))
}
