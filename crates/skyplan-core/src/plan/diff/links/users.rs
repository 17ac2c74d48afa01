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
        if cx.fate(on).is_new() || cx.deleted_outside(on) || !cx.topology.services.contains_key(on)
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
