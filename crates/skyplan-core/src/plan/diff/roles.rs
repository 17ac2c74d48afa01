//! Roles: which service is the primary is a property of the topology. A change of it while
//! the old primary is alive is a **switchover**, planned as one action (fence, catch up,
//! promote, re-point the old primary from its own position), never as a backup and a restore
//! over the old primary.
//!
//! Recognised when the state records `new` as a direct replica of `old`, `old` as replicating
//! from nobody, and the topology turns that round: `new` replicates from nobody and `old` from
//! `new`. The other replicas of `old` that the topology moves to `new` are ordinary re-points
//! by GTID, after the switchover.

use serde_json::json;

use super::Planned;
use crate::observed::{Observed, ObservedService};
use crate::plan::action::{ActionKind, Change};
use crate::plan::PlanError;
use crate::state::State;
use crate::topology::Topology;

/// One switchover: `old` primary → `new` primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Switch {
    pub(super) old: String,
    pub(super) new: String,
}

/// The switchovers the topology asks for, or why one cannot be done.
pub(super) fn switchovers(
    topology: &Topology,
    state: &State,
    observed: &Observed,
) -> Result<Vec<Switch>, Vec<PlanError>> {
    let res = &state.resources;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (new, link) in &res.replications {
        let becomes_root = topology
            .services
            .get(new)
            .is_some_and(|s| s.replication.is_none());
        let old = &link.source;
        let old_was_root = !res.replications.contains_key(old);
        let old_follows = topology
            .services
            .get(old)
            .and_then(|s| s.replication.as_ref());
        let (true, true, Some(follows)) = (becomes_root, old_was_root, old_follows) else {
            continue;
        };
        let gone = matches!(
            observed.services.get(old),
            Some(ObservedService::Missing { .. })
        ) || !res.services.contains_key(old);
        if gone {
            errors.push(PlanError::Failover {
                old: old.clone(),
                new: new.clone(),
            });
            continue;
        }
        if &follows.from != new {
            errors.push(PlanError::SwitchoverShape {
                old: old.clone(),
                new: new.clone(),
                from: follows.from.clone(),
            });
            continue;
        }
        // Fencing and opening need the privilege to change read_only on both: refused now,
        // before anything is touched, where refresh saw it missing.
        if let Some(key) = [old, new]
            .into_iter()
            .find(|k| observed.can_fence.get(*k) == Some(&false))
        {
            errors.push(PlanError::CannotFence { key: key.clone() });
            continue;
        }
        // The candidate must be replicating, and not too far behind, to be promoted.
        if let Some(o) = observed.replication.get(new) {
            let lag = o.seconds_behind_master.unwrap_or(0);
            if !(o.io_running && o.sql_running) || lag > follows.max_lag_seconds {
                errors.push(PlanError::CandidateUnhealthy {
                    new: new.clone(),
                    why: if o.io_running && o.sql_running {
                        format!(
                            "it is {lag} s behind (max_lag_seconds = {})",
                            follows.max_lag_seconds
                        )
                    } else {
                        "its replication is not running".into()
                    },
                });
                continue;
            }
        }
        found.push(Switch {
            old: old.clone(),
            new: new.clone(),
        });
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// The switchover action, with the GTIDs and lag refresh saw.
pub(super) fn action(
    sw: &Switch,
    topology: &Topology,
    observed: &Observed,
    name_of: impl Fn(&str) -> String,
) -> Planned {
    let (old, new) = (name_of(&sw.old), name_of(&sw.new));
    let follows = topology.services[&sw.old]
        .replication
        .as_ref()
        .expect("a switchover's old primary replicates in the topology");
    let final_gtid = observed
        .gtids
        .get(&sw.old)
        .map(|g| g.binlog_state.clone())
        .filter(|g| !g.is_empty());
    let candidate_gtid = observed
        .gtids
        .get(&sw.new)
        .map(|g| g.current_pos.clone())
        .filter(|g| !g.is_empty());
    let lag = observed
        .replication
        .get(&sw.new)
        .and_then(|o| o.seconds_behind_master);
    let known = |g: &Option<String>| g.clone().unwrap_or_else(|| "(read at apply)".into());
    let steps = vec![
        format!(
            "check {new} replicates and is at most {} s behind (now {})",
            follows.max_lag_seconds,
            lag.map_or("unknown".to_string(), |l| format!("{l} s"))
        ),
        format!("fence {old}: read-only for clients, their sessions ended"),
        format!(
            "wait until {new} has applied {old}'s final GTID position (now {})",
            known(&final_gtid)
        ),
        format!("stop and reset replication on {new}, open it for writes"),
        format!(
            "re-point {old} at {new} from its own position, no data copied{}",
            if follows.ssl { ", ssl" } else { "" }
        ),
        format!(
            "rollback: if a step fails before {new} is open, {old} is unfenced and nothing else changes"
        ),
    ];
    Planned {
        kind: ActionKind::Switchover {
            old: sw.old.clone(),
            new: sw.new.clone(),
            ssl: follows.ssl,
            max_lag_seconds: follows.max_lag_seconds,
        },
        change: Change::Update,
        summary: format!("switch   primary {old} -> {new} (no data copied)"),
        before: Some(json!({
            "primary": old,
            "gtid_binlog_state": final_gtid,
            "candidate_gtid": candidate_gtid,
            "candidate_lag_seconds": lag,
        })),
        after: Some(json!({ "primary": new, "steps": steps })),
        wipes_data: false,
        reason: None,
    }
}
