//! Replication users: a `skysql_replication_*` user on a chain's root that no recorded link
//! owns can read the whole binlog from an IP the cloud may hand to someone else, so it is
//! dropped (reported as drift when skyplan did not create it).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::super::{DiffOutput, Planned};
use super::Ctx;
use crate::plan::action::{ActionKind, Change};
use crate::plan::drift::{Drift, DriftKind};

/// Replication users on a chain's root that no recorded link owns: credentials that can read
/// the whole binlog, bound to an IP the cloud may give to someone else. Reported, and dropped
/// on the root (the drop replicates to its replicas). A link being torn down in this plan
/// still owns its user: its stop step drops it.
pub(super) fn plan_orphaned_users(cx: &Ctx, out: &mut DiffOutput) {
    let owned: BTreeSet<&str> = cx
        .state
        .resources
        .replications
        .values()
        .filter_map(|l| l.replication_user.as_deref())
        .collect();
    let recorded = &cx.state.resources.replication_users;
    for (on, users) in &cx.observed.replication_users {
        // A service refresh read as a root that turns out to replicate (a link kept, such as
        // an interrupted switchover's old primary following the new one) is a replica: its
        // users came through replication and go where they were granted; skyplan never
        // writes to a replica.
        if cx.fate(on).is_new()
            || cx.deleted_outside(on)
            || !cx.topology.services.contains_key(on)
            || cx.state.resources.replications.contains_key(on)
        {
            continue;
        }
        for user in users.iter().filter(|u| !owned.contains(u.as_str())) {
            if recorded.contains_key(user) {
                // Ours, its link gone (the replica was deleted outside skyplan, or a run
                // stopped before dropping it): a planned cleanup, not drift.
                out.actions
                    .push(drop_user(cx, on, user, "its replication link is gone"));
                continue;
            }
            out.drift.push(Drift {
                resource: format!("replication_user.{on}"),
                kind: DriftKind::ReplicationUserOrphaned,
                before: Value::Null,
                after: json!({ "user": user }),
                detail: format!(
                    "{user} on {} is a replication user no link owns",
                    cx.name_of(on)
                ),
            });
            out.actions
                .push(drop_user(cx, on, user, "no replication link owns it"));
        }
    }
}

fn drop_user(cx: &Ctx, on: &str, user: &str, why: &str) -> Planned {
    Planned {
        kind: ActionKind::DropReplicationUser {
            on: on.to_string(),
            user: user.to_string(),
        },
        change: Change::Delete,
        summary: format!("drop     replication user {user} on {}", cx.name_of(on)),
        before: Some(json!({ "user": user })),
        after: None,
        wipes_data: false,
        reason: Some(why.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::fixtures::{guide_state, guide_topology, seen};
    use super::super::super::Fate;
    use super::*;

    const OURS: &str = "skysql_replication_x@10.0.0.2";

    fn users(
        s: &crate::state::State,
        on_primary: &[&str],
        fates: &BTreeMap<&str, Fate>,
    ) -> DiffOutput {
        let t = guide_topology();
        let mut o = seen(s);
        o.replication_users = BTreeMap::from([(
            "primary".to_string(),
            on_primary.iter().map(|u| u.to_string()).collect(),
        )]);
        let mut out = DiffOutput::default();
        plan_orphaned_users(&Ctx::for_test(&t, s, &o, fates), &mut out);
        out
    }

    #[test]
    fn the_user_of_a_recorded_link_is_kept() {
        let out = users(&guide_state(), &[OURS], &BTreeMap::new());
        assert!(out.actions.is_empty() && out.drift.is_empty());
    }

    #[test]
    fn a_user_no_link_owns_is_reported_and_dropped() {
        let out = users(
            &guide_state(),
            &[OURS, "skysql_replication_y@10.0.0.9"],
            &BTreeMap::new(),
        );
        let [a] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        assert_eq!(
            a.summary,
            "drop     replication user skysql_replication_y@10.0.0.9 on svc-primary"
        );
        assert_eq!(a.reason.as_deref(), Some("no replication link owns it"));
        let [d] = out.drift.as_slice() else {
            panic!("{:?}", out.drift)
        };
        assert_eq!(d.kind, DriftKind::ReplicationUserOrphaned);
    }

    /// Read on the primary as a root, but the primary replicates (a link kept: an
    /// interrupted switchover's old primary following the new one): nothing is dropped there.
    /// Before, the drop ran on the replica (an errant write) and the user was granted again.
    #[test]
    fn nothing_is_dropped_on_a_service_that_replicates() {
        let mut s = guide_state();
        let mut link = s.resources.replications.remove("secondary").unwrap();
        link.source = "secondary".into();
        s.resources.replications.insert("primary".into(), link);
        let out = users(
            &s,
            &[OURS, "skysql_replication_y@10.0.0.9"],
            &BTreeMap::new(),
        );
        assert!(
            out.actions.is_empty() && out.drift.is_empty(),
            "{:?}",
            out.actions
        );
    }

    #[test]
    fn a_recorded_user_whose_link_is_gone_is_dropped_without_drift() {
        let mut s = guide_state();
        s.resources.replications.remove("secondary");
        let out = users(&s, &[OURS], &BTreeMap::new());
        assert_eq!(
            out.actions[0].reason.as_deref(),
            Some("its replication link is gone")
        );
        assert!(out.drift.is_empty());
        // A service this plan re-creates starts without users: nothing to look at there.
        let out = users(&s, &[OURS], &BTreeMap::from([("primary", Fate::Replace)]));
        assert!(out.actions.is_empty());
    }
}
