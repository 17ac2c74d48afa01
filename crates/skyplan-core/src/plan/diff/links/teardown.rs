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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::fixtures::{guide_state, topology, GUIDE};
    use super::*;
    use crate::observed::Observed;
    use crate::state::EarlierGrant;

    /// The guide with the secondary's replication removed: a standalone service now.
    fn unlinked() -> crate::topology::Topology {
        let text = GUIDE.replace("[services.secondary.replication]\nfrom = \"primary\"\n", "");
        topology(&text)
    }

    #[test]
    fn a_link_the_topology_dropped_is_stopped_with_its_user_and_its_entries_revoked() {
        let (t, s, o) = (unlinked(), guide_state(), Observed::offline());
        let fates = BTreeMap::new();
        let mut out = DiffOutput::default();
        plan_teardown(
            &Ctx::for_test(&t, &s, &o, &fates),
            &BTreeSet::new(),
            &BTreeSet::new(),
            &mut out,
        );
        let summaries: Vec<&str> = out.actions.iter().map(|a| a.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "stop     svc-primary -> svc-secondary (stop and reset replication; DROP USER skysql_replication_x@10.0.0.2)",
                "revoke   10.0.0.1/32 on svc-primary's allowlist",
            ]
        );
        assert!(out
            .actions
            .iter()
            .all(|a| a.change == Change::Delete && !a.wipes_data));
    }

    #[test]
    fn a_promoted_replica_is_stopped_by_its_switchover_not_here() {
        let (t, s, o) = (unlinked(), guide_state(), Observed::offline());
        let fates = BTreeMap::new();
        let mut out = DiffOutput::default();
        let promoted = BTreeSet::from(["secondary"]);
        plan_teardown(
            &Ctx::for_test(&t, &s, &o, &fates),
            &promoted,
            &BTreeSet::new(),
            &mut out,
        );
        assert_eq!(out.actions.len(), 1);
        assert!(matches!(
            out.actions[0].kind,
            ActionKind::AllowlistRevoke { .. }
        ));
    }

    #[test]
    fn entries_left_on_an_earlier_source_are_revoked_unless_a_catch_up_owns_them() {
        let t = topology(&format!(
            "{GUIDE}\n[services.third]\nname = \"svc-third\"\n"
        ));
        let mut s = guide_state();
        let mut third = s.resources.services["primary"].clone();
        (third.id, third.spec.name) = ("svc-third".into(), "svc-third".into());
        s.resources.services.insert("third".into(), third);
        s.resources.allowlists.get_mut("secondary").unwrap().earlier = vec![EarlierGrant {
            on: "third".into(),
            entries: vec!["10.0.0.7/32".into()],
        }];
        let (o, fates) = (Observed::offline(), BTreeMap::new());
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        let mut out = DiffOutput::default();
        plan_teardown(&cx, &BTreeSet::new(), &BTreeSet::new(), &mut out);
        let [a] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        assert_eq!(a.summary, "revoke   10.0.0.7/32 on svc-third's allowlist");
        assert_eq!(
            a.reason.as_deref(),
            Some("granted for svc-secondary when it replicated from svc-third, which did not answer when it was re-pointed")
        );
        let mut out = DiffOutput::default();
        plan_teardown(
            &cx,
            &BTreeSet::new(),
            &BTreeSet::from([("secondary", "third")]),
            &mut out,
        );
        assert!(out.actions.is_empty());
    }
}
