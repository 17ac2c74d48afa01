//! The services: one paginated list, a confirming GET for each recorded id the list lacks
//! (bounded by `lost_after`: a hanging region is decided in that time), and for the
//! topology's keys the state does not record, the services that carry their names (or their
//! pinned ids): candidates for adoption.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};

use crate::observed::{ObservedService, RemoteService};
use crate::remote::Remote;
use crate::skysql::types::ServiceResponse;
use crate::state::State;
use crate::topology::Topology;

/// How long an answer for one service may take before refresh says it is waiting for it.
const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(3);

/// What the API says exists.
pub(super) struct Listing {
    /// Every listed service, by id.
    pub(super) listed: HashMap<String, ServiceResponse>,
    /// The recorded services, by key, as the API sees them.
    pub(super) services: BTreeMap<String, ObservedService>,
    /// Topology keys the state does not record: the services that carry their name or id.
    pub(super) unmanaged: BTreeMap<String, Vec<RemoteService>>,
}

pub(super) async fn services(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    parallelism: usize,
) -> Result<Listing> {
    let res = &state.resources;
    let listed: HashMap<String, ServiceResponse> = remote
        .client
        .list_services()
        .await
        .with_context(|| {
            format!(
                "refresh failed: cannot list the services at the SkySQL API {} (nothing was planned; this is an error, not drift)",
                remote.endpoint
            )
        })?
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
    // One that does not answer (errors or timeouts after the retries: a region down) is
    // reported as unreachable rather than failing the refresh: the plan decides whether it
    // can go on without it (a failover away from it) or must stop.
    // Bounded by `lost_after` as a whole (retries included): a hanging region is decided
    // in that time, not in retries × the request timeout.
    let lost_after = topology.provider.lost_after();
    let confirmed: Vec<(String, ObservedService)> = stream::iter(unlisted)
        .map(|(key, id)| async move {
            let call = remote.client.get_service(id);
            let answer = tokio::time::timeout(lost_after, async {
                tokio::pin!(call);
                // Said once it takes longer than an answering API would, so a silent plan
                // says what it waits for.
                tokio::select! {
                    r = &mut call => return r,
                    _ = tokio::time::sleep(SLOW_ANSWER.min(lost_after)) => tracing::warn!(
                        "waiting for the SkySQL API to answer for service.{key} ({id}): up to {} s in all ([provider] lost_after), then it counts as lost",
                        lost_after.as_secs()
                    ),
                }
                call.await
            })
            .await
                .unwrap_or_else(|_| {
                    Err(crate::skysql::error::SkysqlError::Transport {
                        method: "GET".into(),
                        path: format!("/provisioning/v1/services/{id}"),
                        message: format!(
                            "no answer within {} s ([provider] lost_after)",
                            lost_after.as_secs()
                        ),
                        connect_failed: false,
                        attempts: 0,
                    })
                });
            let seen = match answer {
                Ok(Some(s)) => ObservedService::Present(RemoteService::from_api(&s)),
                Ok(None) => ObservedService::Missing { id: id.clone() },
                Err(e) => {
                    tracing::info!("service.{key} does not answer: {e:#}");
                    ObservedService::Unreachable {
                        id: id.clone(),
                        why: format!("{e:#}"),
                    }
                }
            };
            (key.clone(), seen)
        })
        .buffer_unordered(parallelism)
        .collect()
        .await;
    for (_, seen) in &confirmed {
        if let ObservedService::Missing { id } | ObservedService::Unreachable { id, .. } = seen {
            remote.mark_lost(id).await;
        }
    }
    services.extend(confirmed);
    for (key, rec) in &res.services {
        if let Some(s) = listed.get(&rec.id) {
            services.insert(
                key.clone(),
                ObservedService::Present(RemoteService::from_api(s)),
            );
        }
    }

    let unmanaged = adoption_candidates(remote, topology, state, &listed).await?;
    Ok(Listing {
        listed,
        services,
        unmanaged,
    })
}

/// For each topology key the state does not record, the services that carry its name (or its
/// pinned id): candidates for adoption, which the plan shows (one list serves every key).
async fn adoption_candidates(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    listed: &HashMap<String, ServiceResponse>,
) -> Result<BTreeMap<String, Vec<RemoteService>>> {
    let res = &state.resources;
    // Topology keys the state does not record: a service with the same name is a candidate
    // for adoption, which the plan shows (one list serves every key).
    let mut by_name: HashMap<&str, Vec<&ServiceResponse>> = HashMap::new();
    for s in listed.values() {
        by_name.entry(s.name.as_str()).or_default().push(s);
    }
    // A pinned id (`id = "…"`) is looked up by id instead of by name: listed, or one GET.
    let mut pinned: BTreeMap<String, Vec<RemoteService>> = BTreeMap::new();
    for (k, svc) in &topology.services {
        let (Some(id), false) = (&svc.id, res.services.contains_key(k)) else {
            continue;
        };
        let found = match listed.get(id) {
            Some(s) => Some(s.clone()),
            None => remote
                .client
                .get_service(id)
                .await
                .with_context(|| format!("looking up the pinned id of service.{k}"))?,
        };
        pinned.insert(
            k.clone(),
            found.iter().map(RemoteService::from_api).collect(),
        );
    }
    let unmanaged: BTreeMap<String, Vec<RemoteService>> = topology
        .services
        .iter()
        .filter(|(k, svc)| !res.services.contains_key(*k) && svc.id.is_none())
        .filter_map(|(k, svc)| {
            let mut found: Vec<RemoteService> = by_name
                .get(svc.spec.name.as_str())?
                .iter()
                .map(|s| RemoteService::from_api(s))
                .collect();
            found.sort_by(|a, b| a.id.cmp(&b.id));
            Some((k.clone(), found))
        })
        .chain(pinned)
        .collect();

    Ok(unmanaged)
}
