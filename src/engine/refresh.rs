//! Refresh: read what really exists into `Observed` — services (one paginated list, then a
//! confirming GET only for ids the list lacks), allowlists, and replication status over SQL,
//! the per-service calls concurrent within `parallelism`.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::connect::Remote;
use crate::observed::{Observed, ObservedReplication, ObservedService, RemoteService};
use crate::skysql::types::ServiceResponse;
use crate::state::State;
use crate::topology::Topology;

pub fn remote_service(s: &ServiceResponse) -> RemoteService {
    RemoteService {
        id: s.id.clone(),
        name: s.name.clone(),
        status: s.status.as_str().to_string(),
        provider: s.provider.clone(),
        region: s.region.clone(),
        size: s.size.clone(),
        nodes: u32::try_from(s.nodes).unwrap_or(0),
        storage: u32::try_from(s.storage_volume.size).unwrap_or(0),
        ssl_enabled: s.ssl_enabled,
        fqdn: Some(s.fqdn.clone()).filter(|f| !f.is_empty()),
        port: s.readwrite_port(),
        outbound_ips: s.outbound_ips.clone(),
    }
}

pub async fn refresh(
    remote: &Remote,
    _topology: &Topology,
    state: &State,
    parallelism: usize,
) -> Result<Observed> {
    let parallelism = parallelism.max(1);
    let res = &state.resources;
    let listed: HashMap<String, ServiceResponse> = remote
        .client
        .list_services()
        .await
        .context("refreshing services")?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();

    let mut services = BTreeMap::new();
    // Ids the list did not show are confirmed one by one (a list may lag behind a create).
    let unlisted: Vec<(&String, &String)> = res
        .services
        .iter()
        .filter(|(_, r)| !listed.contains_key(&r.id))
        .map(|(k, r)| (k, &r.id))
        .collect();
    let confirmed: Vec<(String, ObservedService)> = stream::iter(unlisted)
        .map(|(key, id)| async move {
            let found = remote
                .client
                .get_service(id)
                .await
                .with_context(|| format!("refreshing service.{key}"))?;
            Ok::<_, anyhow::Error>((
                key.clone(),
                match found {
                    Some(s) => ObservedService::Present(remote_service(&s)),
                    None => ObservedService::Missing { id: id.clone() },
                },
            ))
        })
        .buffer_unordered(parallelism)
        .try_collect()
        .await?;
    services.extend(confirmed);
    for (key, rec) in &res.services {
        if let Some(s) = listed.get(&rec.id) {
            services.insert(key.clone(), ObservedService::Present(remote_service(s)));
        }
    }

    let present: Vec<(&String, &RemoteService)> = services
        .iter()
        .filter_map(|(k, o)| match o {
            ObservedService::Present(r) if r.status == "ready" => Some((k, r)),
            _ => None,
        })
        .collect();

    let allowlists: BTreeMap<String, Vec<String>> = stream::iter(present.iter().copied())
        .map(|(key, r)| async move {
            let lists = remote
                .client
                .get_allowlist(&r.id)
                .await
                .with_context(|| format!("reading the allowlist of service.{key}"))?;
            let entries = lists
                .into_iter()
                .flat_map(|e| e.allow_list)
                .map(|i| i.ip)
                .collect();
            Ok::<_, anyhow::Error>((key.clone(), entries))
        })
        .buffer_unordered(parallelism)
        .try_collect()
        .await?;

    let ready: std::collections::BTreeSet<&String> = present.iter().map(|(k, _)| *k).collect();
    let replicas: Vec<&String> = res
        .replications
        .keys()
        .filter(|r| ready.contains(r))
        .collect();
    let replication: BTreeMap<String, ObservedReplication> = stream::iter(replicas)
        .map(|key| async move {
            let mut conn = remote.sql(state, key).await.with_context(|| {
                format!("connecting to service.{key} to read its replication status")
            })?;
            let status = conn
                .replication_status()
                .await
                .with_context(|| format!("reading the replication status of service.{key}"))?;
            let _ = conn.disconnect().await;
            Ok::<_, anyhow::Error>((key.clone(), status))
        })
        .buffer_unordered(parallelism)
        .try_collect()
        .await?;

    Ok(Observed {
        refreshed: true,
        services,
        allowlists,
        replication,
    })
}

/// Make the state say what refresh saw (`plan --refresh-only`): gone services are forgotten,
/// resized ones take their real size, unhealthy links are marked so.
pub fn record_observed(state: &mut State, observed: &Observed) {
    for (key, o) in &observed.services {
        match o {
            ObservedService::Missing { .. } => {
                state.resources.services.remove(key);
                state.resources.restores.remove(key);
                state.resources.replications.remove(key);
                state.resources.backups.remove(key);
                state.resources.allowlists.remove(key);
            }
            ObservedService::Present(r) => {
                if let Some(rec) = state.resources.services.get_mut(key) {
                    rec.spec.size = r.size.clone();
                    rec.spec.nodes = r.nodes;
                    rec.spec.storage = r.storage;
                    rec.fqdn = r.fqdn.clone();
                    rec.port = r.port;
                    rec.outbound_ips = r.outbound_ips.clone();
                    rec.status = Some(r.status.clone());
                }
            }
        }
    }
    for (key, o) in &observed.replication {
        if let Some(link) = state.resources.replications.get_mut(key) {
            link.healthy = o.configured && o.io_running && o.sql_running;
        }
    }
}
