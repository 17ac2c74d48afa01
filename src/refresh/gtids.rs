//! The GTIDs and role (`read_only`) of every service of the topology and of every recorded
//! link's ends, read deepest first, one level of the chains at a time.

use std::collections::{BTreeMap, BTreeSet};

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
    // Deepest first, one level of the recorded chains at a time: a replica is read before its
    // source, so the source cannot look behind it because writes went on between two reads,
    // and a GTID the replica has beyond its source is errant, not lag.
    let depth = |key: &String| {
        let mut d = 0usize;
        let mut at = key;
        while let Some(l) = res.replications.get(at) {
            d += 1;
            at = &l.source;
            if d > res.replications.len() {
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
                    let mut conn = remote.sql(state, key).await?;
                    let g = conn.observed_gtids().await?;
                    let ro = conn.read_only().await?;
                    let _ = conn.disconnect().await;
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
