//! The last-copy rule: no action may discard transactions that no other surviving service
//! holds, unless the user passed `--allow-data-loss`; then the plan lists those ranges first.
//!
//! One check over the whole action list, not a case per command: every action that discards
//! a service's data (a restore over it, a replace, a delete) is weighed against what the
//! services that survive the plan hold ([`crate::gtid::Holdings::has`]). A service whose data
//! the plan discards is no survivor. The ranges come from what refresh read; a plan made
//! without refresh cannot weigh anything, and apply (which refreshes) checks again.

use std::collections::BTreeSet;

use super::action::ActionKind;
use super::diff::Planned;
use crate::gtid::{self, GtidRange, GtidSet};
use crate::observed::Observed;
use crate::state::State;

/// What one action would discard that nobody else holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loss {
    /// The service whose data goes (key).
    pub key: String,
    /// The address of the action that discards it.
    pub action: String,
    pub ranges: Vec<GtidRange>,
}

impl Loss {
    /// `service.secondary holds 2-2002-1..2-2002-1095 (1095 transactions) that no surviving
    /// service has; restore.secondary discards them`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "service.{} holds {} that no other surviving service has; {} discards them",
            self.key,
            gtid::describe_ranges(&self.ranges),
            self.action
        )
    }
}

/// The service whose data `kind` discards, and that action's address.
fn discarded(kind: &ActionKind) -> Option<(&str, String)> {
    match kind {
        ActionKind::Restore { replica, .. } => Some((replica, format!("restore.{replica}"))),
        ActionKind::ReplaceService { key, .. } => Some((key, format!("service.{key} (replace)"))),
        ActionKind::DeleteService { key, .. } => Some((key, format!("service.{key} (delete)"))),
        _ => None,
    }
}

/// Every discard in `actions` of transactions no survivor holds. (A service whose GTIDs could
/// not be read is not weighed here: the re-point and seed checks already refuse or say why.)
pub(crate) fn losses(actions: &[Planned], state: &State, observed: &Observed) -> Vec<Loss> {
    if !observed.refreshed {
        return Vec::new();
    }
    let gone: BTreeSet<&str> = actions
        .iter()
        .filter_map(|a| discarded(&a.kind))
        .map(|(k, _)| k)
        .collect();
    let mut out = Vec::new();
    for a in actions {
        let Some((key, action)) = discarded(&a.kind) else {
            continue;
        };
        // Only data that exists can be lost: a service the state does not hold, or one
        // already gone, has none.
        if !state.resources.services.contains_key(key) || observed.lost(key).is_some() {
            continue;
        }
        let Some(mine) = observed.gtids.get(key).and_then(|g| g.applied().ok()) else {
            continue;
        };
        let mut others = GtidSet::default();
        for (k, g) in &observed.gtids {
            if k == key || gone.contains(k.as_str()) {
                continue;
            }
            if let Ok(h) = g.applied() {
                others = others.union(&h);
            }
        }
        // A domain no survivor has anything of is lost from its start.
        let ranges: Vec<GtidRange> = gtid::beyond(&mine, &others)
            .into_iter()
            .map(|r| match others.last_seq(r.domain) {
                None => GtidRange { first: 1, ..r },
                Some(_) => r,
            })
            .collect();
        if !ranges.is_empty() {
            out.push(Loss {
                key: key.to_string(),
                action,
                ranges,
            });
        }
    }
    out
}

/// Primaries the plan would re-create because they were deleted, while the file still has
/// them: the case where a re-create empties what the replicas hold.
pub(crate) fn recreated_lost_primaries(
    actions: &[Planned],
    state: &State,
    observed: &Observed,
) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::CreateService { key, .. } => Some(key.as_str()),
            _ => None,
        })
        .filter(|k| {
            state.resources.services.contains_key(*k)
                && !state.resources.replications.contains_key(*k)
                && matches!(
                    observed.services.get(*k),
                    Some(crate::observed::ObservedService::Missing { .. })
                )
        })
        .map(str::to_string)
        .collect()
}

/// What to do about lost primary `key`: which of its replicas holds the most, and the edit
/// that fails over to it.
pub(crate) fn failover_hint(
    key: &str,
    topology: &crate::topology::Topology,
    observed: &Observed,
) -> String {
    let size = |s: &GtidSet| s.iter().fold(0u64, |n, g| n.saturating_add(g.seq));
    let best = topology
        .services
        .iter()
        .filter(|(_, s)| s.replication.as_ref().is_some_and(|r| r.from == key))
        .filter_map(|(k, _)| Some((k, observed.gtids.get(k)?.applied().ok()?)))
        .max_by_key(|(_, has)| size(has));
    match best {
        Some((r, has)) => format!(
            "service.{key}, the primary, is lost and the file still has it: re-creating it empty would discard what its replicas hold, so nothing is planned. service.{r} holds the most ({}). To fail over to it, make it the primary in the file (remove [services.{r}.replication]; point the other replicas, and service.{key} if you keep it, at \"{r}\") and run `skyplan apply --allow-data-loss`",
            gtid::shown(&has.to_string())
        ),
        None => format!(
            "service.{key}, the primary, is lost and the file still has it: re-creating it empty would discard what its replicas hold, so nothing is planned; make one of them the primary (a failover, with --allow-data-loss)"
        ),
    }
}

/// Plans never delete what they keep: the same service id deleted under one key and adopted
/// under another (the state's keys no longer match the file, say after `state mv` before the
/// edit). Returns (id, deleted key, kept key).
pub(crate) fn deleted_and_kept(
    actions: &[Planned],
    state: &State,
) -> Option<(String, String, String)> {
    let deleted: Vec<(&str, &str)> = actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::DeleteService { key, .. } => state
                .resources
                .services
                .get(key)
                .map(|r| (r.id.as_str(), key.as_str())),
            _ => None,
        })
        .collect();
    actions.iter().find_map(|a| match &a.kind {
        ActionKind::AdoptService {
            key, service_id, ..
        } => deleted
            .iter()
            .find(|(id, _)| id == service_id)
            .map(|(id, gone)| (id.to_string(), gone.to_string(), key.clone())),
        _ => None,
    })
}

/// A state record that cannot be trusted to say what exists: one without an id.
pub(crate) fn damaged(state: &State) -> Option<String> {
    state
        .resources
        .services
        .iter()
        .find(|(_, r)| r.id.trim().is_empty())
        .map(|(k, _)| k.clone())
}

/// Services tagged as this workspace's (its lineage) that a state which has recorded
/// something since its creation no longer records at all: the state lost its records
/// (`"resources": {}`, a bad restore, every service `state rm`-ed). Planned from it, each
/// would be adopted as new and its replica re-seeded: refused instead.
///
/// The first apply writes the new state once (serial 1) before it creates anything, so that
/// its lineage, which the services are tagged with, is on disk; its first service record is
/// the next write. A state at serial 0 or 1 with such a service is therefore that first
/// apply's create interrupted before it was recorded (a kill, a full disk): adopted, as the
/// next apply is told. Returns "service.KEY: NAME (ID)" for each.
pub(crate) fn records_lost(state: &State, observed: &Observed) -> Vec<String> {
    if state.serial < 2 || !state.resources.services.is_empty() {
        return Vec::new();
    }
    observed
        .unmanaged
        .iter()
        .flat_map(|(key, found)| {
            found
                .iter()
                .filter(|s| {
                    crate::ownership::owner(&s.tags).is_some_and(|o| o.lineage == state.lineage)
                })
                .map(move |s| format!("service.{key}: {} ({})", s.name, s.id))
        })
        .collect()
}

/// A switchover past its opening (the candidate `new` open for writes) whose old primary does
/// not follow it yet, with a file that makes the old primary the primary again and `new` a
/// replica. Planned as asked, that opens the old primary beside `new` and copies it over
/// `new`: two writers for a while, and whatever `new` takes meanwhile is discarded. Returns
/// (old, new).
pub(crate) fn reverted_past_the_opening(
    topology: &crate::topology::Topology,
    state: &State,
) -> Option<(String, String)> {
    let res = &state.resources;
    res.services.iter().find_map(|(new, rec)| {
        let c = rec
            .role_change
            .as_ref()
            .filter(|c| c.step == crate::state::RoleChangeStep::Opened)?;
        let old_root = topology
            .services
            .get(&c.from)
            .is_some_and(|s| s.replication.is_none());
        let new_replica = topology
            .services
            .get(new)
            .is_some_and(|s| s.replication.is_some());
        (old_root && new_replica && !res.replications.contains_key(&c.from))
            .then(|| (c.from.clone(), new.clone()))
    })
}
