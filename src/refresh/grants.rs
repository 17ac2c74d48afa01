//! Whether skyplan's account may change `read_only` on the services a role change will fence
//! or open: read only when the topology makes a recorded replica a primary.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::{could_not_check, nothing_answered};
use crate::remote::Remote;
use crate::state::State;
use crate::topology::Topology;

pub(super) async fn can_fence(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    ready: &BTreeSet<&String>,
) -> Result<BTreeMap<String, bool>> {
    let res = &state.resources;
    // Role changes ahead (a recorded replica the topology makes a primary): may skyplan's
    // account change read_only on it and its source? Read only then.
    let mut role_changes: Vec<&String> = Vec::new();
    for (r, l) in &res.replications {
        if topology
            .services
            .get(r)
            .is_some_and(|s| s.replication.is_none())
        {
            role_changes.extend([r, &l.source]);
        }
    }
    let mut can_fence = BTreeMap::new();
    for key in role_changes.into_iter().filter(|k| ready.contains(k)) {
        let read = async {
            let mut conn = remote.session(state, key).await?;
            let can = conn.can_set_read_only().await?;
            drop(conn);
            Ok::<_, anyhow::Error>(can)
        };
        match read.await {
            Ok(can) => {
                can_fence.insert(key.clone(), can);
            }
            Err(e) if nothing_answered(&e) => {
                tracing::info!("cannot read the grants of service.{key}: {e:#}")
            }
            Err(e) => could_not_check(&[format!("service.{key}: {e:#}")], "the grants")?,
        }
    }

    Ok(can_fence)
}
