//! State: what skyplan manages (ids, positions, ownership), its persistence and locking.
//!
//! The content (`model`), its JSON encoding (`codec`), the write rules and the error type are
//! the core's (`skyplan_core::state`, re-exported here). This module adds where a state lives:
//! `backend` the contract the engine uses; `local` and `mysql` the two places a state can live;
//! `migrate` moves it between them.

pub(crate) mod backend;
pub mod local;
pub(crate) mod lock_wait;
pub(crate) mod migrate;
pub mod mysql;

pub use skyplan_core::state::*;
pub use skyplan_core::state::{address, codec, edit, error, holder, model, rules};

use std::path::{Path, PathBuf};

pub use backend::{LockInfoExt, StateBackend, StateLock, WriterExt};
pub use local::LocalBackend;
pub use migrate::migrate;

/// A new state of a new lineage (a random UUID), never stored yet.
pub fn new_state() -> State {
    State::with_lineage(uuid::Uuid::new_v4().to_string())
}
pub use mysql::MysqlBackend;

use crate::topology::Topology;

/// `state/<topology file stem>.state.json` beside the topology file: the same file from any
/// working directory.
pub fn default_state_path(topology_file: &Path) -> PathBuf {
    let file = Path::new("state").join(format!("{}.state.json", workspace_name(topology_file)));
    match topology_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(file),
        _ => file,
    }
}

/// Where the default state lives: [`default_state_path`], or, when only that exists, the
/// working-directory-relative `state/<stem>.state.json` that skyplan used before, with a note
/// saying so (a state is never silently left behind).
pub fn default_state_location(topology_file: &Path) -> (PathBuf, Option<String>) {
    let path = default_state_path(topology_file);
    let legacy =
        PathBuf::from("state").join(format!("{}.state.json", workspace_name(topology_file)));
    let same = |a: &Path, b: &Path| match (std::path::absolute(a), std::path::absolute(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if !path.exists() && legacy.exists() && !same(&path, &legacy) {
        let note = format!(
            "Note: using the state at {} (relative to the working directory, where skyplan \
             kept it before); the default is now {} beside the topology file: move it there",
            legacy.display(),
            path.display()
        );
        return (legacy, Some(note));
    }
    (path, None)
}

/// The name a topology's state goes by in a shared backend: the topology file's stem.
pub fn workspace_name(topology_file: &Path) -> String {
    topology_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// The backend for `topology`: `override_backend` (the CLI's `--state-backend`) if given, else
/// `[state] backend`, else `[state] path`, else the default local file. A backend is a
/// `mysql://USER@HOST:PORT/DATABASE` URL, `file:PATH`, or a plain path.
pub fn open_backend(
    topology: &Topology,
    override_backend: Option<&str>,
) -> Result<Box<dyn StateBackend>, StateError> {
    match override_backend.or(topology.state.backend.as_deref()) {
        Some(spec) => open_spec(topology, spec),
        None => Ok(Box::new(LocalBackend::new(
            topology
                .state
                .path
                .clone()
                .unwrap_or_else(|| default_state_location(&topology.source).0),
        ))),
    }
}

fn open_spec(topology: &Topology, spec: &str) -> Result<Box<dyn StateBackend>, StateError> {
    if mysql::MysqlConfig::matches(spec) {
        return Ok(Box::new(MysqlBackend::from_url(
            spec,
            workspace_name(&topology.source),
            topology.state.password_env.as_deref(),
        )?));
    }
    if let Some(path) = spec
        .strip_prefix("file://")
        .or_else(|| spec.strip_prefix("file:"))
    {
        return Ok(Box::new(LocalBackend::new(path)));
    }
    if spec.contains("://") {
        return Err(StateError::InvalidBackend {
            backend: backend::redact_url_passwords(spec),
            reason: "unsupported scheme (expected mysql://USER@HOST:PORT/DATABASE or a file \
                     path)"
                .into(),
        });
    }
    if spec.is_empty() {
        return Err(StateError::InvalidBackend {
            backend: String::new(),
            reason: "empty backend".into(),
        });
    }
    Ok(Box::new(LocalBackend::new(spec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_uses_the_topology_stem() {
        assert_eq!(
            default_state_path(Path::new("examples/global-replication.toml")),
            PathBuf::from("examples/state/global-replication.state.json")
        );
        assert_eq!(
            default_state_path(Path::new("skyplan.toml")),
            PathBuf::from("state/skyplan.state.json")
        );
    }
}
