//! The files that make a running emulator findable: `emulator.json` (endpoint, key, pid, CA)
//! and the API key file. Both are 0600: they hold the key.
//!
//! `emulator.json` stays when the emulator exits, so the next start can reuse its port (an
//! endpoint a user exported keeps working). Readers trust it only when its pid is alive and the
//! API answers with that pid (see `daemon::find_running`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use super::options::ServeOptions;
use super::{ids, EmulatorError};

pub const INFO_FILE: &str = "emulator.json";
pub const KEY_FILE: &str = "api_key";
pub const LOG_FILE: &str = "emulator.log";
pub const LOCK_FILE: &str = "emulator.lock";
pub const INSTANCE_FILE: &str = "instance_id";

/// How to reach a running emulator. `status --json` prints it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalEmulator {
    /// e.g. `http://127.0.0.1:43121`
    pub endpoint: String,
    pub api_key: String,
    pub pid: u32,
    pub dir: PathBuf,
    /// The emulator CA: trust it to verify services' TLS certificates.
    pub ca_cert: PathBuf,
    /// Which emulated cloud this is: created with its data directory, kept across restarts.
    /// A state records it, so it is never used against another emulator.
    #[serde(default)]
    pub instance_id: String,
}

impl std::fmt::Debug for LocalEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmulator")
            .field("endpoint", &self.endpoint)
            .field("api_key", &"<redacted>")
            .field("pid", &self.pid)
            .field("dir", &self.dir)
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

/// `emulator.json`: the emulator plus the options it runs with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InfoFile {
    #[serde(flatten)]
    pub emulator: LocalEmulator,
    pub options: ServeOptions,
}

pub fn read_info(dir: &Path) -> Option<InfoFile> {
    let bytes = std::fs::read(dir.join(INFO_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn write_info(dir: &Path, info: &InfoFile) -> Result<(), EmulatorError> {
    let path = dir.join(INFO_FILE);
    let bytes = serde_json::to_vec_pretty(info).map_err(|e| EmulatorError::Store {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    skyplan_os::write_private(&path, &bytes).map_err(|e| EmulatorError::io("writing", &path, e))
}

/// The data directory's API key, generated once (random, 0600) and reused ever after.
pub fn load_or_create_api_key(dir: &Path) -> Result<String, EmulatorError> {
    let path = dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EmulatorError::io("reading", &path, e)),
    }
    let key = format!("skyemu_{}", ids::secret(40));
    skyplan_os::write_private(&path, key.as_bytes())
        .map_err(|e| EmulatorError::io("writing", &path, e))?;
    Ok(key)
}

/// The emulated cloud's identity (see [`LocalEmulator::instance_id`]), created on first use.
pub fn load_or_create_instance_id(dir: &Path) -> Result<String, EmulatorError> {
    let path = dir.join(INSTANCE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(EmulatorError::io("reading", &path, e)),
    }
    let id = uuid::Uuid::new_v4().to_string();
    skyplan_os::write_private(&path, id.as_bytes())
        .map_err(|e| EmulatorError::io("writing", &path, e))?;
    Ok(id)
}

/// Creates the data directory, readable by its owner only.
pub fn create_data_dir(dir: &Path) -> Result<(), EmulatorError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| EmulatorError::io("creating", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_is_stable_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_api_key(dir.path()).unwrap();
        let b = load_or_create_api_key(dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.len() > 40);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn debug_hides_the_key() {
        let e = LocalEmulator {
            endpoint: "http://127.0.0.1:1".into(),
            api_key: "skyemu_secret".into(),
            pid: 1,
            dir: "/d".into(),
            ca_cert: "/d/ca/ca.pem".into(),
            instance_id: "i".into(),
        };
        assert!(!format!("{e:?}").contains("skyemu_secret"));
    }
}
