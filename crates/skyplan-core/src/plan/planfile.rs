//! Saved plans (`plan --out FILE`, `apply FILE`): the plan's JSON plus what makes it stale.
//! A saved plan holds ids and positions, never secrets. Reading and writing the file is the
//! binary's (`skyplan::plan::planfile`); this is the format and its freshness rules.

use super::{Plan, PLAN_FORMAT_VERSION};
use crate::state::State;

/// Causes are part of the messages and deliberately not `source()`: the CLI prints the chain,
/// and a cause in both would print twice.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("cannot write plan file {path}: {cause}")]
    Write { path: String, cause: std::io::Error },
    #[error("{path} is not a skyplan plan file: {cause}")]
    Parse {
        path: String,
        cause: serde_json::Error,
    },
    #[error("{path} was written by a newer skyplan (plan format {found}, this one reads up to {PLAN_FORMAT_VERSION}); upgrade skyplan")]
    NewerFormat { path: String, found: u32 },
    #[error("stale plan: {0}. Run `skyplan plan` again and review the new plan")]
    Stale(String),
}

/// Whether the bytes look like a saved plan rather than a topology file.
pub fn looks_like_plan(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace());
    start.is_some_and(|i| bytes[i] == b'{')
}

pub fn parse(bytes: &[u8], path: &str) -> Result<Plan, PlanFileError> {
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version = serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
        path: path.into(),
        cause: source,
    })?;
    if v.format_version > PLAN_FORMAT_VERSION {
        return Err(PlanFileError::NewerFormat {
            path: path.into(),
            found: v.format_version,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
        path: path.into(),
        cause: source,
    })
}

/// Refuse a saved plan when the state or the topology file moved on since it was made.
pub fn check_fresh(
    plan: &Plan,
    state: &State,
    topology_sha256: Option<&str>,
) -> Result<(), PlanFileError> {
    if plan.lineage != state.lineage {
        return Err(PlanFileError::Stale(format!(
            "it was made for state lineage {} but the state's lineage is {}",
            plan.lineage, state.lineage
        )));
    }
    if plan.serial != state.serial {
        return Err(PlanFileError::Stale(format!(
            "the state changed since the plan was made (serial {} then, {} now)",
            plan.serial, state.serial
        )));
    }
    if let Some(sha) = topology_sha256 {
        if sha != plan.topology_sha256 {
            return Err(PlanFileError::Stale(format!(
                "{} changed since the plan was made",
                plan.topology_file
            )));
        }
    }
    Ok(())
}
