//! Small file helpers: private directories, atomic writes, private (0600) files.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::MariadbError;

/// Creates `dir` (and parents) readable by the owner only: instance dirs hold keys and the
/// root-only socket.
pub(crate) fn create_dir_private(dir: &Path) -> Result<(), MariadbError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| MariadbError::io("creating directory", dir, e))
}

/// Writes `bytes` to a temporary sibling and renames it over `path`, so readers never see a
/// half-written file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MariadbError> {
    write_with_mode(path, bytes, 0o644)
}

/// Like [`write_atomic`], for secrets: the file is created 0600.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), MariadbError> {
    write_with_mode(path, bytes, 0o600)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), MariadbError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        MariadbError::io("writing", path, e)
    })
}

/// The last `lines` lines of a text file, or a note saying why there are none.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({} unreadable: {e})", path.display()),
    }
}
