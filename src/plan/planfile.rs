//! Saved plan files on disk (`plan --out FILE`, `apply FILE`). The format and its freshness
//! rules are the core's (`skyplan_core::plan::planfile`, re-exported here).

use std::io::Write;
use std::path::Path;

pub use skyplan_core::plan::planfile::*;

use super::Plan;

pub fn save(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    let err = |source| PlanFileError::Write {
        path: path.display().to_string(),
        cause: source,
    };
    let json = serde_json::to_vec_pretty(plan).map_err(|e| err(std::io::Error::other(e)))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(&json)
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PlanFileError::Read {
        path: p.clone(),
        cause: source,
    })?;
    parse(&bytes, &p)
}
