//! Refresh: read what really exists into `Observed` — services (one paginated list, then a
//! confirming GET only for ids the list lacks), allowlists, and replication status over SQL,
//! the per-service calls concurrent within `parallelism`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::observed::{Observed, ObservedReplication, ObservedService, RemoteService};
use crate::plan::diff::contains_cidr;
use crate::remote::Remote;
use crate::skysql::types::{Backup, ServiceResponse, ServiceStatus};
use crate::sql::status::{parse_replication_status, parse_thread_state, NamedRow, ThreadState};
use crate::sql::SqlConn;
use crate::state::State;
use crate::topology::{Seed, Topology};

pub fn remote_service(s: &ServiceResponse) -> RemoteService {
    RemoteService {
        id: s.id.clone(),
        name: s.name.clone(),
        status: s.status.clone(),
        provider: s.provider.clone(),
        region: s.region.clone(),
        architecture: s.architecture.clone(),
        size: s.size.clone(),
        nodes: u32::try_from(s.nodes).unwrap_or(0),
        storage: u32::try_from(s.storage_volume.size).unwrap_or(0),
        ssl_enabled: s.ssl_enabled,
        fqdn: Some(s.fqdn.clone()).filter(|f| !f.is_empty()),
        port: s.readwrite_port(),
        outbound_ips: s.outbound_ips.clone(),
        tags: s.tags.clone().unwrap_or_default(),
        config_id: s.config_id.clone().filter(|c| !c.is_empty()),
    }
}

mod config;

pub use config::catalogs as config_catalogs;

/// How long an answer for one service may take before refresh says it is waiting for it.
const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(3);

/// The most one refresh may take, every call and read together: a backstop above the
/// per-call deadline (`ClientConfig::call_deadline`) and `lost_after`, so that no mix of slow
/// answers keeps a plan waiting without end.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// What exists, read through the API and the services' SQL (see [`REFRESH_DEADLINE`]).
pub async fn refresh(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    parallelism: usize,
) -> Result<Observed> {
    match tokio::time::timeout(
        REFRESH_DEADLINE,
        refresh_within(remote, topology, state, parallelism),
    )
    .await
    {
        Ok(observed) => observed,
        Err(_) => anyhow::bail!(
            "refresh did not finish within {} minutes (the SkySQL API or the services answer too slowly); nothing was planned",
            REFRESH_DEADLINE.as_secs() / 60
        ),
    }
}

async fn refresh_within(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    parallelism: usize,
) -> Result<Observed> {
    let parallelism = parallelism.max(1);
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
                Ok(Some(s)) => ObservedService::Present(remote_service(&s)),
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
            services.insert(key.clone(), ObservedService::Present(remote_service(s)));
        }
    }

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
        pinned.insert(k.clone(), found.iter().map(remote_service).collect());
    }
    let unmanaged: BTreeMap<String, Vec<RemoteService>> = topology
        .services
        .iter()
        .filter(|(k, svc)| !res.services.contains_key(*k) && svc.id.is_none())
        .filter_map(|(k, svc)| {
            let mut found: Vec<RemoteService> = by_name
                .get(svc.spec.name.as_str())?
                .iter()
                .map(|s| remote_service(s))
                .collect();
            found.sort_by(|a, b| a.id.cmp(&b.id));
            Some((k.clone(), found))
        })
        .chain(pinned)
        .collect();

    // The endpoints the API reports win over the recorded ones for every SQL read below
    // (observed beats recorded: a wrong fqdn in the state must not make a live database look
    // dead). The plan reports the difference as drift.
    let mut sql_state = state.clone();
    let partial = Observed {
        services: std::mem::take(&mut services),
        ..Observed::default()
    };
    let _ = crate::plan::drift::correct_endpoints(&mut sql_state, &partial);
    services = partial.services;
    let state = &sql_state;

    let present: Vec<(&String, &RemoteService)> = services
        .iter()
        .filter_map(|(k, o)| match o {
            ObservedService::Present(r) => Some((k, r)),
            _ => None,
        })
        .chain(
            unmanaged
                .iter()
                .filter_map(|(k, found)| Some((k, found.first().filter(|_| found.len() == 1)?))),
        )
        .filter(|(_, r)| r.status == ServiceStatus::Ready)
        .collect();

    // A listed service carries its allowlist in `endpoints[].allow_list`: use it and save a GET
    // per service. Only services the list did not show, or whose endpoints hold no entry
    // (which the cloud may simply have left out), are read one by one.
    let mut allowlists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut to_read = Vec::new();
    for (key, r) in present.iter().copied() {
        let embedded: Vec<String> = listed
            .get(&r.id)
            .map(|s| {
                s.endpoints
                    .iter()
                    .flat_map(|e| e.allow_list.iter().map(|i| i.ip.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if embedded.is_empty() {
            to_read.push((key, r));
        } else {
            allowlists.insert(key.clone(), embedded);
        }
    }
    let read: Vec<(String, Vec<String>)> = stream::iter(to_read)
        .map(|(key, r)| async move {
            let lists = remote
                .client
                .get_allowlist(&r.id)
                .await
                .with_context(|| format!("reading the allowlist of service.{key}"))?;
            let entries = lists.iter().flat_map(|e| e.entries()).collect();
            Ok::<_, anyhow::Error>((key.clone(), entries))
        })
        .buffer_unordered(parallelism)
        .try_collect()
        .await?;
    allowlists.extend(read);

    let ready: std::collections::BTreeSet<&String> = present
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| res.services.contains_key(*k))
        .collect();
    // Recorded links, and replicas of the topology the state records without one (imported,
    // adopted, a lost record): a link they already have is kept rather than re-seeded.
    let replicas: Vec<&String> = res
        .replications
        .keys()
        .chain(
            topology
                .services
                .iter()
                .filter(|(k, s)| s.replication.is_some() && !res.replications.contains_key(*k))
                .map(|(k, _)| k),
        )
        .filter(|r| ready.contains(r))
        .collect();
    // A replica whose database does not answer is recorded as such (its own drift), not a
    // failed refresh: the plan names it; an unexpected answer is still an error.
    let statuses: Vec<(String, Result<Option<ObservedReplication>, anyhow::Error>)> =
        stream::iter(replicas)
            .map(|key| async move {
                let status = async {
                    let mut conn = match remote.sql(state, key).await {
                        Ok(c) => c,
                        Err(e) if nothing_answered(&e) => {
                            tracing::info!("service.{key} does not answer: {e:#}");
                            return Ok(None);
                        }
                        Err(e) => {
                            return Err(e.context(format!(
                                "connecting to service.{key} to read its replication status"
                            )))
                        }
                    };
                    let grace = topology
                        .services
                        .get(key)
                        .and_then(|s| s.replication.as_ref())
                        .map_or(crate::topology::DEFAULT_RECONNECT_GRACE_SECONDS, |r| {
                            r.reconnect_grace_seconds
                        });
                    let mut status = read_replication(&mut conn, Duration::from_secs(grace))
                        .await
                        .with_context(|| {
                            format!("reading the replication status of service.{key}")
                        })?;
                    let _ = conn.disconnect().await;
                    // Still reconnecting: did its source restart lately? (A source that does
                    // not answer is its own drift.)
                    if let (Some(r), Some(link)) =
                        (status.reconnecting.as_mut(), res.replications.get(key))
                    {
                        if let Ok(mut src) = remote.sql(state, &link.source).await {
                            r.source_up_seconds = src.uptime_seconds().await.ok();
                            let _ = src.disconnect().await;
                        }
                    }
                    Ok(Some(status))
                };
                (key.clone(), status.await)
            })
            .buffer_unordered(parallelism)
            .collect()
            .await;
    let mut replication: BTreeMap<String, ObservedReplication> = BTreeMap::new();
    let mut unanswered: std::collections::BTreeSet<String> = Default::default();
    for (key, status) in statuses {
        match status? {
            Some(s) => {
                replication.insert(key, s);
            }
            None => {
                unanswered.insert(key);
            }
        }
    }

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

    // Replication users on the chains' roots (managed services that replicate from nobody),
    // so that users no link owns are reported and dropped. Unreadable: left out.
    let roots = ready.iter().filter(|k| {
        !res.replications.contains_key(**k)
            && topology
                .services
                .get(**k)
                .is_some_and(|s| s.replication.is_none())
    });
    let users_read: Vec<Result<(String, Vec<String>), String>> = stream::iter(roots)
        .map(|key| async move {
            let read = async {
                let mut conn = remote.sql(state, key).await?;
                let users = conn.replication_users().await?;
                let _ = conn.disconnect().await;
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
            let mut conn = remote.sql(state, key).await?;
            let can = conn.can_set_read_only().await?;
            let _ = conn.disconnect().await;
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

    let config_vars = config::catalogs(remote, topology).await?;
    let configs =
        config::configs(remote, topology, state, &config_vars, &ready, parallelism).await?;

    Ok(Observed {
        refreshed: true,
        config_vars,
        configs,
        backups,
        foreign_backups,
        foreign_owners_gone,
        gtids,
        replication_users,
        can_fence,
        read_only,
        unreachable,
        at: Some(time::OffsetDateTime::now_utc()),
        services,
        allowlists,
        replication,
        unmanaged,
    })
}

/// A read that reached a service and was refused (credentials, grants, an unexpected answer):
/// the plan cannot vouch for that service, so the refresh fails naming it (exit 1), never a
/// silent "No changes".
fn could_not_check(refused: &[String], what: &str) -> Result<()> {
    if refused.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "refresh could not check {what} of {}: {}; nothing was planned (a check that could not be made is an error, not a pass)",
        if refused.len() == 1 { "a service" } else { "some services" },
        refused.join("; ")
    )
}

/// Whether `e` says a database did not answer at all (a dead server, a network cut).
fn nothing_answered(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<crate::sql::SqlError>()
            .is_some_and(|s| s.is_unreachable())
    })
}

/// A service's GTIDs and whether it is read-only, as one read gets them.
type GtidsAndRole = (crate::gtid::ObservedGtids, bool);

/// A GTID read, or why not: (the database did not answer at all, the error).
type GtidRead = Result<GtidsAndRole, (bool, String)>;

/// How far apart a replica whose IO thread is reconnecting after an error is read again, and
/// the least time it is given: a reconnect in progress is not drift.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
const RECONNECT_MIN_WAIT: Duration = Duration::from_secs(2);

/// `sky.replication_status()`, read again while [`judge_status`] says a reconnect is settling:
/// for MariaDB's own retry period (`Connect_Retry`, plus 2 s), at most `grace`, so a source
/// restart or a network blip is seen reconnected rather than broken. One still reconnecting
/// after a network error is marked so (the plan weighs it against `reconnect_grace`).
async fn read_replication(conn: &mut SqlConn, grace: Duration) -> Result<ObservedReplication> {
    let started = std::time::Instant::now();
    let mut was_reconnecting = false;
    loop {
        let rows = conn.replication_status_rows().await?;
        let retry = connect_retry(&rows);
        let (mut status, retrying) = judge_status(&rows).map_err(|e| {
            anyhow::anyhow!("unexpected result of CALL sky.replication_status(): {e}")
        })?;
        let transient = crate::observed::is_restart_io_error(status.last_io_errno);
        if retrying {
            // A network error is given MariaDB's next retry; another error a moment to settle.
            let wait = match (transient, retry) {
                (true, Some(r)) => Duration::from_secs(r.saturating_add(2)).min(grace),
                _ => RECONNECT_MIN_WAIT,
            }
            .max(RECONNECT_MIN_WAIT);
            if started.elapsed() < wait {
                was_reconnecting = true;
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        }
        if was_reconnecting && status.io_running {
            status.reconnected_after = Some(started.elapsed().as_secs().max(1));
        }
        if retrying && transient {
            status.reconnecting = Some(crate::observed::Reconnecting {
                retry_seconds: retry,
                source_up_seconds: None,
                replica_up_seconds: conn.uptime_seconds().await.ok(),
            });
        }
        return Ok(status);
    }
}

/// `Connect_Retry`: the seconds MariaDB waits between reconnect attempts.
fn connect_retry(rows: &[NamedRow]) -> Option<u64> {
    rows.first()?
        .get_any(&["Connect_Retry"])
        .ok()
        .flatten()?
        .trim()
        .parse()
        .ok()
}

/// The replication status, with the IO thread's "Connecting" state taken into account, and
/// whether it is retrying after an error (to be read again).
///
/// The parsed status says only whether the IO thread is "Yes". "Connecting" without an error
/// is a thread that runs and is (re)establishing its connection, as right after a start: it
/// counts as running. "Connecting" with an error is a reconnect in progress: the caller reads
/// again so it settles before it is judged; one that keeps failing is reported as it is: not
/// running, with the server's `Last_IO_Error`.
fn judge_status(
    rows: &[NamedRow],
) -> Result<(ObservedReplication, bool), crate::sql::status::StatusParseError> {
    let mut status = parse_replication_status(rows)?;
    let connecting = rows
        .first()
        .and_then(|r| r.get_any(&["Slave_IO_Running", "Replica_IO_Running"]).ok())
        .and_then(|v| parse_thread_state("Slave_IO_Running", v).ok())
        == Some(ThreadState::Connecting);
    if connecting && status.last_io_errno == 0 {
        status.io_running = true;
    }
    let retrying = connecting && status.last_io_errno != 0;
    Ok((status, retrying))
}

/// Make the state say what refresh saw (`plan --refresh-only`): gone services are forgotten,
/// resized ones take their real size, unhealthy links are marked so, and a link a replica of
/// `topology` already has that the state does not record is recorded as it is
/// (`drift::kept_links`).
pub fn record_observed(state: &mut State, topology: &Topology, observed: &Observed) {
    observed.record_last_seen(state);
    let res = &mut state.resources;
    for (key, o) in &observed.services {
        match o {
            // Not answering is not gone: the record stays as it is.
            ObservedService::Unreachable { .. } => {}
            ObservedService::Missing { .. } => {
                res.services.remove(key);
                res.restores.remove(key);
                res.replications.remove(key);
                res.backups.remove(key);
                // The grant that admitted the gone replica stays while its entries are still on
                // the source: skyplan still owns them, and revokes them when it next plans.
            }
            ObservedService::Present(r) => {
                if let Some(rec) = res.services.get_mut(key) {
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
    for (key, entries) in &observed.allowlists {
        // The user's entries still there, and skyplan's grants reduced to what is left.
        if let Some(rec) = res.services.get_mut(key) {
            rec.spec.allow_list.retain(|e| contains_cidr(entries, e));
        }
        for grant in res.allowlists.values_mut().filter(|a| &a.on == key) {
            grant.entries.retain(|e| contains_cidr(entries, e));
        }
    }
    // Entries on a service that is gone went with it.
    let services = &res.services;
    res.allowlists
        .retain(|_, a| !a.entries.is_empty() && services.contains_key(&a.on));
    for (key, o) in &observed.replication {
        if let Some(link) = res.replications.get_mut(key) {
            link.healthy = o.configured && o.io_running && o.sql_running;
        }
    }
    for kept in crate::plan::drift::kept_links(topology, state, observed) {
        kept.record(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(io: &str, errno: &str) -> Vec<NamedRow> {
        vec![NamedRow::new()
            .with("Master_Host", Some("primary.example.com"))
            .with("Master_Port", Some("3306"))
            .with("Slave_IO_Running", Some(io))
            .with("Slave_SQL_Running", Some("Yes"))
            .with("Seconds_Behind_Master", None)
            .with("Last_IO_Errno", Some(errno))
            .with(
                "Last_IO_Error",
                Some(if errno == "0" {
                    ""
                } else {
                    "error connecting to master"
                }),
            )
            .with("Last_SQL_Errno", Some("0"))
            .with("Last_SQL_Error", Some(""))]
    }

    #[test]
    fn connecting_without_an_error_is_a_running_thread() {
        let (s, retrying) = judge_status(&row("Connecting", "0")).unwrap();
        assert!(s.io_running && s.sql_running && !retrying);
        assert_eq!(s.seconds_behind_master, None);
    }

    #[test]
    fn connecting_with_an_error_is_retrying_and_not_running() {
        let (s, retrying) = judge_status(&row("Connecting", "2003")).unwrap();
        assert!(retrying);
        assert!(!s.io_running);
        assert_eq!(s.last_io_errno, 2003);
    }

    #[test]
    fn settled_states_are_taken_as_they_are() {
        assert!(judge_status(&row("Yes", "0")).unwrap().0.io_running);
        let (stopped, retrying) = judge_status(&row("No", "0")).unwrap();
        assert!(!stopped.io_running && !retrying);
        let (failed, retrying) = judge_status(&row("No", "1045")).unwrap();
        assert_eq!((failed.io_running, failed.last_io_errno), (false, 1045));
        assert!(!retrying);
        // No rows: no replication configured.
        assert!(!judge_status(&[]).unwrap().0.configured);
    }

    #[test]
    fn connect_retry_is_read_from_the_status() {
        let rows = vec![NamedRow::new().with("Connect_Retry", Some("60"))];
        assert_eq!(connect_retry(&rows), Some(60));
        assert_eq!(connect_retry(&[]), None);
    }
}
