//! The replication users on the chains' roots (managed services that replicate from nobody),
//! so that users no link owns are reported and dropped.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use futures::stream::{self, StreamExt};

use super::{could_not_check, nothing_answered};
use crate::remote::Remote;
use crate::state::State;
use crate::topology::Topology;

pub(super) async fn replication_users(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    ready: &BTreeSet<&String>,
    parallelism: usize,
) -> Result<BTreeMap<String, Vec<String>>> {
    let res = &state.resources;
    // Replication users on the chains' roots (managed services that replicate from nobody),
    // so that users no link owns are reported and dropped. Unreadable: left out.
    // The candidate of an interrupted switchover too: refresh may find it promoted (its link
    // forgotten by the plan), and its own replication user then an orphan to drop now.
    let roots = ready.iter().filter(|k| {
        let candidate = res
            .services
            .get(**k)
            .is_some_and(|r| r.role_change.is_some());
        candidate
            || (!res.replications.contains_key(**k)
                && topology
                    .services
                    .get(**k)
                    .is_some_and(|s| s.replication.is_none()))
    });
    let users_read: Vec<Result<(String, Vec<String>), String>> = stream::iter(roots)
        .map(|key| async move {
            let read = async {
                let mut conn = remote.session(state, key).await?;
                let users = conn.replication_users().await?;
                drop(conn);
                Ok::<_, anyhow::Error>(users)
            };
            match read.await {
                Ok(users) if !users.is_empty() => Some(Ok(((*key).clone(), users))),
                Ok(_) => None,
                Err(e) if nothing_answered(&e) => {
                    tracing::info!("cannot read the replication users of service.{key}: {e:#}");
                    None
                }
                Err(e) => Some(Err(format!("service.{key}: {e:#}"))),
            }
        })
        .buffer_unordered(parallelism)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    let mut replication_users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut refused = Vec::new();
    for r in users_read {
        match r {
            Ok((k, users)) => {
                replication_users.insert(k, users);
            }
            Err(why) => refused.push(why),
        }
    }
    could_not_check(&refused, "the replication users")?;

    Ok(replication_users)
}
