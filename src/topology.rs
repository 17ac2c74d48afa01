//! The topology file: the core parses and validates (`skyplan_core::topology`); reading the
//! file is the binary's.

use std::path::Path;

pub use skyplan_core::topology::*;

/// Reads and validates the topology file at `path`. An unreadable or non-UTF-8 file is reported
/// as a [`Diagnostic`] like any other problem. Messages show `path` as given.
pub fn load(path: &Path) -> Result<Topology, Diagnostics> {
    load_with_text(path).map(|(t, _)| t)
}

/// [`load`], with the file's text: a later problem (the catalog's) is located in the text
/// that was read, not in a second read of a file that may have changed since.
pub fn load_with_text(path: &Path) -> Result<(Topology, String), Diagnostics> {
    let bytes = read_bytes(path).map_err(|err| {
        Diagnostic::whole_file(path, format!("cannot read the topology file: {err}"))
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    parse_bytes(bytes, path).map(|t| (t, text))
}

/// The topology file's bytes (bounded: a topology is never megabytes), for a command that
/// parses them itself ([`crate::ops::Workspace::from_bytes`]).
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    read_bytes(path)
        .map_err(|e| anyhow::anyhow!("cannot read topology file {}: {e}", path.display()))
}

/// The one place a topology file is read.
fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    #[cfg(test)]
    tests::READS.with(|n| n.set(n.get() + 1));
    skyplan_os::read_bounded(path, skyplan_os::MAX_FILE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// How many times this thread read a topology file.
        pub(super) static READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn a_workspace_reads_its_topology_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("skyplan.toml");
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/global-replication.toml"
        );
        std::fs::copy(example, &file).unwrap();
        let before = READS.with(|n| n.get());
        let ws = crate::ops::Workspace::load(&file, None).unwrap();
        assert_eq!(READS.with(|n| n.get()) - before, 1);
        assert_eq!(
            ws.topology_sha256,
            crate::ops::sha256_hex(&std::fs::read(&file).unwrap())
        );
    }

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
