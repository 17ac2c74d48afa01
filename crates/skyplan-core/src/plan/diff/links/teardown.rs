//! Teardown: links the state records and the topology no longer has are stopped (their user
//! dropped with them) and their allowlist entries revoked, including entries left on a source
//! that did not answer when its replica was re-pointed away from it.

use std::collections::BTreeSet;

use serde_json::json;

use super::super::{DiffOutput, Planned};
use super::grants::push_revoke;
use super::Ctx;
use crate::plan::action::{ActionKind, Change};

/// Links in state that the topology no longer has: stop the replica, revoke its entries
/// (also the entries of a replica the state no longer links, e.g. after `--refresh-only`
/// recorded that it was deleted).
/// `promoted`: new primaries of switchovers, whose replication the switchover itself stops.
/// `catching_up`: (candidate, sibling) of failovers that catch up through a temporary link.
pub(super) fn plan_teardown(
    cx: &Ctx,
    promoted: &BTreeSet<&str>,
    catching_up: &BTreeSet<(&str, &str)>,
    out: &mut DiffOutput,
) {
    let res = &cx.state.resources;
    let unlinked = |r: &String| {
        cx.topology
            .services
            .get(r)
            .and_then(|s| s.replication.as_ref())
            .is_none()
    };
    for (r, link) in res.replications.iter().filter(|(r, _)| unlinked(r)) {
        let replica_gone = cx.deleted_outside(r) || !res.services.contains_key(r);
        if !replica_gone && !promoted.contains(r.as_str()) {
            out.actions.push(Planned {
                kind: ActionKind::StopReplication {
                    source: link.source.clone(),
                    replica: r.clone(),
                },
                change: Change::Delete,
                summary: format!(
                    "stop     {} -> {} (stop and reset replication{})",
                    cx.name_of(&link.source),
                    cx.name_of(r),
                    // The step drops the link's replication user too (on its chain's root).
                    link.replication_user
                        .as_deref()
                        .map(|u| format!("; DROP USER {u}"))
                        .unwrap_or_default()
                ),
                before: Some(
                    json!({ "source": cx.name_of(&link.source), "healthy": link.healthy }),
                ),
                after: None,
                wipes_data: false,
                reason: None,
            });
        }
    }
    for (r, g) in res.allowlists.iter().filter(|(r, _)| unlinked(r)) {
        push_revoke(cx, &g.on, r, &g.entries, None, out);
    }
    // Entries granted for a replica on a source it no longer replicates from, which did not
    // answer when the replica was re-pointed (a failover): revoked once that source answers
    // (`push_revoke` plans nothing while it is lost), unless the replica replicates from it
    // again, whose grant then owns them.
    for (r, a) in &res.allowlists {
        let from = cx
            .topology
            .services
            .get(r)
            .and_then(|s| s.replication.as_ref())
            .map(|x| x.from.as_str());
        for g in a
            .earlier
            .iter()
            .filter(|g| Some(g.on.as_str()) != from)
            .filter(|g| !catching_up.contains(&(r.as_str(), g.on.as_str())))
        {
            let why = format!(
                "granted for {} when it replicated from {}, which did not answer when it was re-pointed",
                cx.name_of(r),
                cx.name_of(&g.on)
            );
            push_revoke(cx, &g.on, r, &g.entries, Some(why), out);
        }
    }
}
