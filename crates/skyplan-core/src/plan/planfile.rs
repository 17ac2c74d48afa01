//! Saved plans (`plan --out FILE`, `apply FILE`): the plan's JSON plus what makes it stale.
//! A saved plan holds ids and positions, never secrets. Reading and writing the file is the
//! binary's (`skyplan::plan::saved` writes it, `apply` and `show` read it); this is the format
//! and its freshness rules.

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
    #[error("{path} is not a valid plan: {why}")]
    Malformed { path: String, why: String },
    #[error("the saved plan is not what skyplan would do now: {0}. It was edited, or the world changed since it was made; run `skyplan plan` again and review the new plan")]
    Differs(String),
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
    let plan: Plan = serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
        path: path.into(),
        cause: source,
    })?;
    check_shape(&plan).map_err(|why| PlanFileError::Malformed {
        path: path.into(),
        why,
    })?;
    Ok(plan)
}

/// Ids are positions, and an action depends only on earlier ones (the plan is in dependency
/// order): anything else would index out of bounds or deadlock the executor.
fn check_shape(plan: &Plan) -> Result<(), String> {
    for (i, a) in plan.actions.iter().enumerate() {
        if a.id != i {
            return Err(format!("action {} has id {}", i, a.id));
        }
        if let Some(d) = a.depends_on.iter().find(|d| **d >= i) {
            return Err(format!(
                "action {i} ({}) depends on action {d}, which does not come before it",
                a.address
            ));
        }
    }
    Ok(())
}

/// The saved plan's actions against the ones skyplan derives now from the same topology, the
/// same state and a fresh refresh: what apply would do (kind, address, change, wipe flag and
/// dependencies) must be identical. Descriptions (summaries, before/after values) may differ:
/// they hold positions and lags read at plan time.
pub fn check_same_actions(saved: &Plan, now: &Plan) -> Result<(), PlanFileError> {
    let key = |a: &super::Action| {
        (
            a.address.clone(),
            a.kind.clone(),
            a.change,
            a.wipes_data,
            a.depends_on.clone(),
        )
    };
    for (i, (s, n)) in saved.actions.iter().zip(&now.actions).enumerate() {
        if key(s) != key(n) {
            let what = if s.address != n.address {
                format!(
                    "action {i} is {} in the file but {} now",
                    s.address, n.address
                )
            } else if s.kind != n.kind {
                format!(
                    "{} would be carried out differently ({} now)",
                    s.address,
                    n.summary.trim()
                )
            } else {
                format!(
                    "{}: its change, wipe flag or dependencies differ",
                    s.address
                )
            };
            return Err(PlanFileError::Differs(what));
        }
    }
    match saved.actions.len().cmp(&now.actions.len()) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(PlanFileError::Differs(format!(
            "{} is planned now but not in the file",
            now.actions[saved.actions.len()].address
        ))),
        std::cmp::Ordering::Greater => Err(PlanFileError::Differs(format!(
            "{} is in the file but not planned now",
            saved.actions[now.actions.len()].address
        ))),
    }
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
