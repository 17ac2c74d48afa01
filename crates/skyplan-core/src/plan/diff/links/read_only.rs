//! Client roles (`read_only`): a replica is fenced for clients, a primary open for writes.
//! Drift where refresh saw otherwise (set back unless a switchover or a wiring in this plan
//! sets it already), and switchovers an apply started and left unfinished.

use std::collections::BTreeSet;

use serde_json::json;

use super::super::roles::Switch;
use super::super::{DiffOutput, Planned};
use super::Ctx;
use crate::plan::action::{ActionKind, Change};
use crate::plan::drift::{Drift, DriftKind};
use crate::state::RoleChangeStep;

/// Roles as the topology says: a replica read-only for clients, a primary writable. Services
/// a switchover or a wiring in this plan already sets are left to it.
pub(super) fn plan_roles(cx: &Ctx, switches: &[Switch], out: &mut DiffOutput) {
    let wired: BTreeSet<String> = out
        .actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Replicate { replica, .. } => Some(replica.clone()),
            // Both change roles in that action (the new one is added below).
            ActionKind::Switchover { old, .. } => Some(old.clone()),
            _ => None,
        })
        .chain(switches.iter().map(|s| s.new.clone()))
        .collect();
    for (key, svc) in &cx.topology.services {
        let Some(&read_only) = cx.observed.read_only.get(key) else {
            continue;
        };
        // A replaced primary is fenced before anything else touches it, wired or not.
        if (wired.contains(key) && !cx.replaced(key) && cx.left_behind_by(key).is_none())
            || cx.fate(key).is_new()
            || cx.deleted_outside(key)
        {
            continue;
        }
        let writable = svc.replication.is_none();
        if writable != read_only {
            continue;
        }
        let name = cx.name_of(key);
        let detail = if writable {
            format!("{name} is the primary but refuses client writes (read_only is ON): a fence left behind?")
        } else {
            format!("{name} is a replica but clients can write to it (read_only is OFF)")
        };
        out.drift.push(Drift {
            resource: format!("role.{key}"),
            kind: DriftKind::RoleMismatch,
            before: json!({ "read_only": !writable }),
            after: json!({ "read_only": read_only }),
            detail,
        });
        out.actions.push(Planned {
            kind: ActionKind::SetRole {
                key: key.clone(),
                writable,
            },
            change: Change::Update,
            summary: if writable {
                format!("open     {name} for writes (read_only OFF): it is the primary")
            } else {
                format!("fence    {name} for clients (read_only ON): it is a replica")
            },
            before: Some(json!({ "read_only": read_only })),
            after: Some(json!({ "read_only": !writable })),
            wipes_data: false,
            reason: Some(if writable {
                "the topology makes it the primary".into()
            } else if cx.replaced(key) {
                "it was the primary until a failover: fenced first, so it is never a second writer"
                    .into()
            } else if cx.left_behind_by(key).is_some() {
                "it was the primary until an interrupted switchover: fenced first, so it is never a second writer"
                    .into()
            } else {
                "the topology makes it a replica".into()
            }),
        });
    }
}

/// Switchovers an apply started and did not finish: drift (a drift job exits 2), naming "no
/// writable primary" when neither side is open. The switchover or re-point that resumes them
/// is planned as usual (the state still records where each side stands).
pub(super) fn interrupted_role_changes(cx: &Ctx, out: &mut DiffOutput) {
    for (key, rec) in &cx.state.resources.services {
        let Some(c) = &rec.role_change else { continue };
        let (old, new) = (cx.name_of(&c.from), cx.name_of(key));
        let ro = |k: &str| cx.observed.read_only.get(k).copied();
        let nobody = ro(&c.from) == Some(true) && ro(key) == Some(true);
        let detail = match c.step {
            RoleChangeStep::Fencing => format!(
                "the switchover of the primary {old} -> {new} started at {} was interrupted before {new} was opened{}; apply resumes it by GTID (no data copied)",
                c.started_at,
                if nobody { ": no writable primary" } else { "" }
            ),
            RoleChangeStep::Opened => format!(
                "the switchover of the primary {old} -> {new} started at {} was interrupted after {new} was opened, before {old} followed it{}; apply re-points {old} by GTID (no data copied)",
                c.started_at,
                if nobody { ": no writable primary" } else { "" }
            ),
        };
        out.drift.push(Drift {
            resource: format!("switchover.{key}"),
            kind: DriftKind::RoleChangeInterrupted,
            before: json!({ "primary": old }),
            after: json!({ "primary": new, "step": c.step, "writable_primary": !nobody }),
            detail,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::fixtures::{guide_state, guide_topology, seen};
    use super::*;
    use crate::plan::action::WireMode;
    use crate::state::RoleChange;

    #[test]
    fn a_writable_replica_is_fenced_and_a_fenced_primary_opened() {
        let (t, s) = (guide_topology(), guide_state());
        let mut o = seen(&s);
        o.read_only = BTreeMap::from([("primary".into(), true), ("secondary".into(), false)]);
        let fates = BTreeMap::new();
        let mut out = DiffOutput::default();
        plan_roles(&Ctx::for_test(&t, &s, &o, &fates), &[], &mut out);
        let summaries: Vec<&str> = out.actions.iter().map(|a| a.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "open     svc-primary for writes (read_only OFF): it is the primary",
                "fence    svc-secondary for clients (read_only ON): it is a replica",
            ]
        );
        assert!(out.drift.iter().all(|d| d.kind == DriftKind::RoleMismatch));
        assert_eq!(out.drift.len(), 2);
        // As they should be: nothing.
        o.read_only = BTreeMap::from([("primary".into(), false), ("secondary".into(), true)]);
        let mut out = DiffOutput::default();
        plan_roles(&Ctx::for_test(&t, &s, &o, &fates), &[], &mut out);
        assert!(out.actions.is_empty() && out.drift.is_empty());
    }

    #[test]
    fn a_replica_this_plan_wires_is_left_to_the_wiring() {
        let (t, s) = (guide_topology(), guide_state());
        let mut o = seen(&s);
        o.read_only = BTreeMap::from([("secondary".into(), false)]);
        let mut out = DiffOutput::default();
        out.actions.push(Planned {
            kind: ActionKind::Replicate {
                source: "primary".into(),
                replica: "secondary".into(),
                ssl: true,
                mode: WireMode::Fresh,
            },
            change: Change::Update,
            summary: String::new(),
            before: None,
            after: None,
            wipes_data: false,
            reason: None,
        });
        let fates = BTreeMap::new();
        plan_roles(&Ctx::for_test(&t, &s, &o, &fates), &[], &mut out);
        assert_eq!(out.actions.len(), 1);
        assert!(out.drift.is_empty());
    }

    #[test]
    fn an_interrupted_switchover_is_drift_naming_no_writable_primary() {
        let (t, mut s) = (guide_topology(), guide_state());
        s.resources
            .services
            .get_mut("secondary")
            .unwrap()
            .role_change = Some(RoleChange {
            from: "primary".into(),
            step: RoleChangeStep::Fencing,
            started_at: "2026-01-01T00:00:00Z".into(),
        });
        let mut o = seen(&s);
        o.read_only = BTreeMap::from([("primary".into(), true), ("secondary".into(), true)]);
        let fates = BTreeMap::new();
        let mut out = DiffOutput::default();
        interrupted_role_changes(&Ctx::for_test(&t, &s, &o, &fates), &mut out);
        let [d] = out.drift.as_slice() else {
            panic!("{:?}", out.drift)
        };
        assert_eq!(d.kind, DriftKind::RoleChangeInterrupted);
        assert_eq!(d.resource, "switchover.secondary");
        assert!(
            d.detail
                .contains("interrupted before svc-secondary was opened: no writable primary"),
            "{}",
            d.detail
        );
        assert_eq!(d.after["writable_primary"], json!(false));
    }
}
