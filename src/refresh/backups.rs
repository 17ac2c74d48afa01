//! The backups the topology's seeds name: each seeding source's list, and for a `backup:<id>`
//! that is not its source's, one listing of every backup.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::observed::RemoteService;
use crate::remote::Remote;
use crate::skysql::types::{Backup, ServiceResponse};
use crate::state::State;
use crate::topology::{Seed, Topology};

/// What the seeds' backups are.
pub(super) struct Backups {
    pub(super) backups: BTreeMap<String, Vec<Backup>>,
    pub(super) foreign_backups: BTreeMap<String, Backup>,
    pub(super) foreign_owners_gone: BTreeSet<String>,
}

pub(super) async fn backups(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    listed: &HashMap<String, ServiceResponse>,
    unmanaged: &BTreeMap<String, Vec<RemoteService>>,
    parallelism: usize,
) -> Result<Backups> {
    let res = &state.resources;
    // Sources seeding from an existing backup: list their backups, so that the plan names the
    // one it will use (or refuses) before anything is created.
    let seeding: std::collections::BTreeSet<&String> = topology
        .services
        .values()
        .filter_map(|s| s.replication.as_ref())
        .filter(|r| matches!(r.seed, Seed::LatestBackup | Seed::Backup(_)))
        .map(|r| &r.from)
        .collect();
    let with_ids: Vec<(&String, String)> = seeding
        .into_iter()
        .filter_map(|k| {
            let id = res.services.get(k).map(|r| r.id.clone()).or_else(|| {
                match unmanaged.get(k).map(Vec::as_slice) {
                    Some([one]) => Some(one.id.clone()),
                    _ => None,
                }
            })?;
            Some((k, id))
        })
        .collect();
    let backups: BTreeMap<String, Vec<Backup>> = stream::iter(with_ids)
        .map(|(key, id)| async move {
            let list = remote
                .client
                .list_backups(&id)
                .await
                .with_context(|| format!("listing the backups of service.{key}"))?;
            Ok::<_, anyhow::Error>((key.clone(), list))
        })
        .buffer_unordered(parallelism)
        .try_collect()
        .await?;

    // A `backup:<id>` that is not one of its source's: look for it among every backup (one
    // paginated listing however many such seeds there are), so the plan can accept another
    // service's backup on the same provider, with a warning, or refuse it by name.
    let wanted: Vec<&String> = topology
        .services
        .values()
        .filter_map(|s| s.replication.as_ref())
        .filter_map(|r| match &r.seed {
            Seed::Backup(id) => Some((id, &r.from)),
            _ => None,
        })
        .filter(|(id, from)| {
            backups
                .get(*from)
                .is_some_and(|own| !own.iter().any(|b| &b.id == *id))
        })
        .map(|(id, _)| id)
        .collect();
    let mut foreign_backups = BTreeMap::new();
    let mut foreign_owners_gone = std::collections::BTreeSet::new();
    if !wanted.is_empty() {
        let all = remote
            .client
            .list_all_backups()
            .await
            .context("listing every backup to find the one a seed names")?;
        for b in all.into_iter().filter(|b| wanted.contains(&&b.id)) {
            if !listed.contains_key(&b.service_id) {
                foreign_owners_gone.insert(b.id.clone());
            }
            foreign_backups.insert(b.id.clone(), b);
        }
    }

    Ok(Backups {
        backups,
        foreign_backups,
        foreign_owners_gone,
    })
}
