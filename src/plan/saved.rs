//! Writing a saved plan file (`plan --out FILE`). The format and its freshness rules are the
//! core's (`skyplan_core::plan::planfile`); reading one is the command's (it reads its argument
//! once and asks the core whether it is a plan).

use std::path::Path;

use skyplan_core::plan::planfile::PlanFileError;

use super::Plan;

/// Write the plan as `path`, atomically and readable by its owner only (a plan names ids and
/// positions; see [`skyplan_os::write_atomic`] for what survives a crash).
pub(crate) fn save(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    let err = |cause| PlanFileError::Write {
        path: path.display().to_string(),
        cause,
    };
    let mut json = serde_json::to_vec_pretty(plan).map_err(|e| err(std::io::Error::other(e)))?;
    json.push(b'\n');
    skyplan_os::write_private(path, &json).map_err(err)
}
