//! Saved plan files on disk (`plan --out FILE`, `apply FILE`). The format and its freshness
//! rules are the core's (`skyplan_core::plan::planfile`, re-exported here).

use std::path::Path;

pub use skyplan_core::plan::planfile::*;

use super::Plan;

/// Write the plan as `path`, atomically and readable by its owner only (a plan names ids and
/// positions; see [`skyplan_os::write_atomic`] for what survives a crash).
pub fn save(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    let err = |cause| PlanFileError::Write {
        path: path.display().to_string(),
        cause,
    };
    let mut json = serde_json::to_vec_pretty(plan).map_err(|e| err(std::io::Error::other(e)))?;
    json.push(b'\n');
    skyplan_os::write_private(path, &json).map_err(err)
}

pub fn load(path: &Path) -> Result<Plan, PlanFileError> {
    let p = path.display().to_string();
    let bytes = skyplan_os::read_bounded(path, skyplan_os::MAX_FILE_BYTES).map_err(|source| {
        PlanFileError::Read {
            path: p.clone(),
            cause: source,
        }
    })?;
    parse(&bytes, &p)
}
