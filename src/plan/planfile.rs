//! Saved plans (`plan --out FILE`, `apply FILE`): the plan's JSON plus what makes it stale.
//! A saved plan holds ids and positions, never secrets.

use std::io::Write;
use std::path::Path;

use super::{Plan, PLAN_FORMAT_VERSION};
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write plan file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a skyplan plan file: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
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

pub fn save(plan: &Plan, path: &Path) -> Result<(), PlanFileError> {
    let err = |source| PlanFileError::Write {
        path: path.display().to_string(),
        source,
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
        source,
    })?;
    parse(&bytes, &p)
}

pub fn parse(bytes: &[u8], path: &str) -> Result<Plan, PlanFileError> {
    #[derive(serde::Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version = serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
        path: path.into(),
        source,
    })?;
    if v.format_version > PLAN_FORMAT_VERSION {
        return Err(PlanFileError::NewerFormat {
            path: path.into(),
            found: v.format_version,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
        path: path.into(),
        source,
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
