//! The topology file: the core parses and validates (`skyplan_core::topology`); reading the
//! file is the binary's.

use std::path::Path;

pub use skyplan_core::topology::*;

/// Reads and validates the topology file at `path`. An unreadable or non-UTF-8 file is reported
/// as a [`Diagnostic`] like any other problem. Messages show `path` as given.
pub fn load(path: &Path) -> Result<Topology, Diagnostics> {
    let bytes = skyplan_os::read_bounded(path, skyplan_os::MAX_FILE_BYTES).map_err(|err| {
        Diagnostic::whole_file(path, format!("cannot read the topology file: {err}"))
    })?;
    parse_bytes(bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_reports_unreadable_and_non_utf8_files() {
        let missing = Path::new("/nonexistent/skyplan.toml");
        let e = load(missing).unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e.to_string().contains("cannot read the topology file"),
            "{e}"
        );
        assert!(
            e.to_string().contains("--> /nonexistent/skyplan.toml"),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("latin1.toml");
        std::fs::write(&file, b"[services.a]\nname = \"caf\xe9\"\n").unwrap();
        let e = load(&file).unwrap_err();
        let d = e.iter().next().unwrap();
        assert_eq!(d.message, "the file is not valid UTF-8 text");
        assert_eq!(
            d.location,
            Some(Location {
                line: 2,
                column: 12
            })
        );
    }
}
