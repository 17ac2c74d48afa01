//! The GTIDs and role (`read_only`) of every service of the topology and of every recorded
//! link's ends, read deepest first, one level of the chains at a time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Result;
use futures::stream::{self, StreamExt};

use super::{could_not_check, nothing_answered};
use crate::remote::Remote;
use crate::state::State;
use crate::topology::Topology;

/// A service's GTIDs and whether it is read-only, as one read gets them.
type GtidsAndRole = (crate::gtid::ObservedGtids, bool);

/// A GTID read, or why not: (the database did not answer at all, the error).
type GtidRead = Result<GtidsAndRole, (bool, String)>;

/// What the GTID reads found.
pub(super) struct Reads {
    pub(super) gtids: BTreeMap<String, crate::gtid::ObservedGtids>,
    pub(super) read_only: BTreeMap<String, bool>,
    /// Services whose database did not answer, and why.
    pub(super) unreachable: BTreeMap<String, String>,
}

pub(super) async fn gtids_and_roles(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    ready: &BTreeSet<&String>,
    unanswered: BTreeSet<String>,
    parallelism: usize,
) -> Result<Reads> {
    let res = &state.resources;
    // The GTIDs and role of every service of the topology and of every recorded link's ends:
    // for re-pointing, errant transactions, and roles (a primary with no replicas that refuses
    // writes is drift too). A database that does not answer leaves its key out: the plan then
    // cannot prove a re-point safe and says so, rather than failing the whole refresh.
    // (A topology's `from` always names one of its services.)
    let mut linked: std::collections::BTreeSet<&String> = topology.services.keys().collect();
    for (key, l) in &res.replications {
        linked.insert(key);
        linked.insert(&l.source);
    }
    // Deepest first, one level of the chains at a time: a replica is read before its source,
    // so the source cannot look behind it because writes went on between two reads, and a
    // GTID the replica has beyond its source is errant, not lag.
    let up = upstream(state);
    let depth = |key: &String| {
        let mut d = 0usize;
        let mut at = key.as_str();
        while let Some(source) = up.get(at) {
            d += 1;
            at = source;
            if d > up.len() {
                break;
            }
        }
        d
    };
    let mut levels: BTreeMap<std::cmp::Reverse<usize>, Vec<&String>> = BTreeMap::new();
    for key in linked.into_iter().filter(|k| ready.contains(k)) {
        levels
            .entry(std::cmp::Reverse(depth(key)))
            .or_default()
            .push(key);
    }
    let mut gtids: BTreeMap<String, crate::gtid::ObservedGtids> = BTreeMap::new();
    let mut read_only: BTreeMap<String, bool> = BTreeMap::new();
    let mut unreachable: BTreeMap<String, String> = BTreeMap::new();
    let mut refused: Vec<String> = Vec::new();
    for keys in levels.into_values() {
        let read: Vec<(String, GtidRead)> = stream::iter(keys)
            .map(|key| async move {
                let read = async {
                    let mut conn = remote.session(state, key).await?;
                    let g = conn.observed_gtids().await?;
                    let ro = conn.read_only().await?;
                    drop(conn);
                    Ok::<_, anyhow::Error>((g, ro))
                };
                let read = read.await.map_err(|e| {
                    tracing::info!("cannot read the GTIDs of service.{key}: {e:#}");
                    // A database that did not answer at all is unreachable (its own drift);
                    // one that answered and refused (credentials, grants) cannot be vouched
                    // for: the refresh fails naming it.
                    (nothing_answered(&e), format!("{e:#}"))
                });
                (key.clone(), read)
            })
            .buffer_unordered(parallelism)
            .collect()
            .await;
        for (key, read) in read {
            match read {
                Ok((g, ro)) => {
                    gtids.insert(key.clone(), g);
                    read_only.insert(key, ro);
                }
                Err((true, why)) => {
                    unreachable.insert(key, why);
                }
                Err((false, why)) => refused.push(format!("service.{key}: {why}")),
            }
        }
    }
    could_not_check(&refused, "the GTIDs and role")?;
    // A replica that did not answer its status read and was not read again (not linked in
    // the topology) is unreachable too.
    for key in unanswered {
        unreachable
            .entry(key)
            .or_insert_with(|| "its database did not answer".into());
    }

    Ok(Reads {
        gtids,
        read_only,
        unreachable,
    })
}

/// Who each service replicates from, for the reading order: the recorded links, and the old
/// primary of a switchover interrupted after its opening, which the interrupted run may
/// already have pointed at the new primary (its link is not recorded yet). Read after the new
/// primary, it could have applied writes the new primary took after it was read, and look
/// like it holds transactions the new primary lacks.
fn upstream(state: &State) -> HashMap<&str, &str> {
    let res = &state.resources;
    let mut up: HashMap<&str, &str> = res
        .replications
        .iter()
        .map(|(r, l)| (r.as_str(), l.source.as_str()))
        .collect();
    for (new, rec) in &res.services {
        if let Some(c) = rec
            .role_change
            .as_ref()
            .filter(|c| c.step == crate::state::RoleChangeStep::Opened)
        {
            up.entry(c.from.as_str()).or_insert(new.as_str());
        }
    }
    up
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ReplicationRecord, RoleChange, RoleChangeStep, ServiceRecord};

    #[test]
    fn an_opened_switchovers_old_primary_is_read_before_the_new_one() {
        let t = crate::topology::parse(
            include_str!("../../examples/global-replication.toml"),
            std::path::Path::new("g.toml"),
        )
        .unwrap();
        let mut s = State::with_lineage("00000000-0000-4000-8000-000000000000");
        for (k, svc) in &t.services {
            s.resources.services.insert(
                k.clone(),
                ServiceRecord::new(format!("db{k}"), svc.spec.clone()),
            );
        }
        let link = |source: &str| ReplicationRecord {
            source: source.into(),
            source_host: "h".into(),
            source_port: 1,
            gtid_position: None,
            ssl: true,
            replication_user: None,
            healthy: true,
            wired_at: None,
        };
        s.resources
            .replications
            .insert("secondary".into(), link("primary"));
        assert_eq!(upstream(&s), HashMap::from([("secondary", "primary")]));
        // Switched over to the secondary, interrupted after its opening: its link forgotten,
        // the old primary possibly already following it.
        s.resources.replications.clear();
        let change = |step| RoleChange {
            from: "primary".into(),
            step,
            started_at: "2026-12-07T00:00:00Z".into(),
        };
        s.resources
            .services
            .get_mut("secondary")
            .unwrap()
            .role_change = Some(change(RoleChangeStep::Opened));
        assert_eq!(upstream(&s), HashMap::from([("primary", "secondary")]));
        // Before the opening the candidate still has its recorded link: nothing added.
        s.resources
            .replications
            .insert("secondary".into(), link("primary"));
        s.resources
            .services
            .get_mut("secondary")
            .unwrap()
            .role_change = Some(change(RoleChangeStep::Fencing));
        assert_eq!(upstream(&s), HashMap::from([("secondary", "primary")]));
    }
}
