//! The addresses `--replace` and `--target` name: checked against the topology and the state
//! before anything is planned, so a typo is an error rather than a plan that quietly does
//! nothing (or everything).

use std::collections::BTreeSet;

use super::{PlanError, PlanFlags};
use crate::state::State;
use crate::topology::Topology;

/// Address kinds only actions have; the others are those of state records
/// ([`crate::state::address::KINDS`]).
const ACTION_KINDS: &[&str] = &["switchover", "failover", "role", "power"];

/// Whether `kind` names actions (`<kind>.<key>…`), as the plan prints them.
fn is_kind(kind: &str) -> bool {
    crate::state::address::KINDS.contains(&kind) || ACTION_KINDS.contains(&kind)
}

fn kinds() -> String {
    let all: Vec<&str> = crate::state::address::KINDS
        .iter()
        .chain(ACTION_KINDS)
        .copied()
        .collect();
    all.join(", ")
}

pub(super) fn check(
    flags: &super::PlanFlags,
    topology: &Topology,
    state: &State,
) -> Result<(), PlanError> {
    let keys: BTreeSet<&str> = topology
        .services
        .keys()
        .chain(state.resources.services.keys())
        .map(String::as_str)
        .collect();
    let known = || keys.iter().copied().collect::<Vec<_>>().join(", ");
    let mut errors = Vec::new();
    for (flag, addresses) in [("--replace", &flags.replace), ("--target", &flags.target)] {
        for address in addresses {
            let mut parts = address.split('.');
            let (kind, key) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let why = if !is_kind(kind) {
                Some(format!(
                    "an address is <kind>.<service key>, the kind one of {}",
                    kinds()
                ))
            } else if !keys.contains(key) {
                Some(format!("no service key `{key}` (known: {})", known()))
            } else if flag == "--replace" && !matches!(kind, "service" | "replication") {
                Some("--replace takes service.KEY (a replica is re-seeded, any other service replaced) or replication.KEY".into())
            } else if flag == "--replace" {
                replace_problem(kind, key, topology)
            } else {
                None
            };
            if let Some(why) = why {
                errors.push(PlanError::BadAddress {
                    flag,
                    address: crate::topology::rules::echo(address),
                    why,
                });
            }
        }
    }
    match PlanError::combine(errors) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// What keeps `--replace` of `kind.key` from meaning anything.
fn replace_problem(kind: &str, key: &str, topology: &Topology) -> Option<String> {
    let svc = topology.services.get(key);
    let link = svc.and_then(|s| s.replication.as_ref());
    match (kind, svc, link) {
        (_, None, _) => Some(format!(
            "service.{key} is not in the topology: there is nothing to rebuild it as"
        )),
        ("replication", _, None) => Some(format!(
            "service.{key} replicates from nobody in the topology: it has no link to re-seed"
        )),
        (_, _, Some(l)) if !l.seed.uses_backup() => Some(format!(
            "service.{key} has seed = \"none\": a re-seed needs a backup to copy; set a seed to re-seed it"
        )),
        _ => None,
    }
}

/// The keys an address of `--replace` names (`service.KEY`, `replication.KEY`).
fn replace_keys(replace: &[String]) -> impl Iterator<Item = &str> {
    replace.iter().filter_map(|a| {
        a.strip_prefix("service.")
            .or_else(|| a.strip_prefix("replication."))
    })
}

/// Record in the state, before an apply's first step, the services its `--replace` names:
/// an apply interrupted before the replace is done leaves the request for the next one.
pub fn record_replaces(state: &mut State, replace: &[String], at: &str) {
    for key in replace_keys(replace) {
        if let Some(r) = state.resources.services.get_mut(key) {
            r.replace_requested = Some(at.to_string());
        }
    }
}

/// The command line's flags with the replaces an earlier, interrupted apply recorded (see
/// [`record_replaces`]), and a warning for each one resumed.
pub(super) fn with_recorded_replaces(
    flags: &PlanFlags,
    topology: &Topology,
    state: &State,
) -> (PlanFlags, Vec<String>) {
    let mut flags = flags.clone();
    let mut warnings = Vec::new();
    for (key, r) in &state.resources.services {
        let Some(at) = &r.replace_requested else {
            continue;
        };
        // One the file no longer has is not carried out (its removal is planned instead).
        if replace_keys(&flags.replace).any(|k| k == key) || !topology.services.contains_key(key) {
            continue;
        }
        flags.replace.push(format!("service.{key}"));
        warnings.push(format!(
            "service.{key}: the --replace of an apply started at {at} that did not finish is carried out (it was recorded in the state)"
        ));
    }
    (flags, warnings)
}
