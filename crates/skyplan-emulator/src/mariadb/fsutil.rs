//! Small file helpers: private directories, atomic writes, private (0600) files.

use std::os::unix::fs::DirBuilderExt;
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

/// Replaces `path` atomically (readers never see a half-written file), world-readable.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MariadbError> {
    skyplan_os::write_atomic(path, bytes, 0o644).map_err(|e| MariadbError::io("writing", path, e))
}

/// Like [`write_atomic`], for secrets: the file is 0600.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), MariadbError> {
    skyplan_os::write_private(path, bytes).map_err(|e| MariadbError::io("writing", path, e))
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
