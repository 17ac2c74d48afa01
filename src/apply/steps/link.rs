//! Link steps: allowlist grant/revoke on the source, and GTID replication on the replica
//! (`sky.change_external_primary_gtid` → grant on the source → `sky.start_replication` →
//! wait until `sky.replication_status` is healthy).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::RealSteps;
use crate::apply::executor::ProgressHandle;
use crate::apply::wait::{self, Poll, PollPolicy};
use crate::gtid;
use crate::observed::ObservedReplication;
use crate::plan::diff::{cidr32, cidr_key, contains_cidr};
use crate::plan::{self, start::Start, WireMode};
use crate::sql::gtids::Applied;
use crate::state::{AllowlistRecord, ReplicationRecord, ReplicationUserRecord};

pub(super) async fn grant(
    steps: &RealSteps,
    source: &str,
    replica: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let source_id = steps.service_id(source).await?;
    let entries = outbound_entries(steps, replica, source).await?;
    let present: Vec<String> = steps.allowlist_entries(&source_id).await?;
    let mut added = Vec::new();
    for e in &entries {
        // `1.2.3.4` listed by the cloud is the entry `1.2.3.4/32`.
        if !contains_cidr(&present, e) {
            p.status(&format!("adding {e}"));
            client
                .add_allowlist_entry(&source_id, e)
                .await
                .with_context(|| format!("allowlisting {e} on service.{source}"))?;
            added.push(e.clone());
        }
    }
    steps
        .state
        .update(|s| {
            // A grant on another source than before keeps the one before until its revoke
            // (which may have to wait for that source to answer again).
            let r = &mut s.resources;
            let record = AllowlistRecord::granted(
                r.allowlists.get(replica),
                source,
                entries.clone(),
                &r.services,
            );
            r.allowlists.insert(replica.to_string(), record);
        })
        .await?;
    Ok(if added.is_empty() {
        "already allowed".into()
    } else {
        format!("added {}", added.join(", "))
    })
}

/// The allowlist entries that admit `replica` on `source`: its outbound IPs as the API
/// reports them now (they may have changed since the state recorded them), the recorded ones
/// if the API lists none, each as `ip/32`.
pub(super) async fn outbound_entries(
    steps: &RealSteps,
    replica: &str,
    source: &str,
) -> Result<Vec<String>> {
    let replica_id = steps.service_id(replica).await?;
    let mut ips = steps
        .remote
        .client
        .get_service(&replica_id)
        .await?
        .ok_or_else(|| anyhow!("service.{replica} ({replica_id}) does not exist"))?
        .outbound_ips;
    if ips.is_empty() {
        ips = steps
            .state
            .read(|s| {
                s.resources
                    .services
                    .get(replica)
                    .map(|r| r.outbound_ips.clone())
                    .unwrap_or_default()
            })
            .await;
    }
    if ips.is_empty() {
        bail!("service.{replica} reports no outbound IPs; cannot allowlist it on service.{source}");
    }
    Ok(ips.iter().map(|ip| cidr32(ip)).collect())
}

pub(super) async fn revoke(
    steps: &RealSteps,
    source: &str,
    replica: &str,
    entries: &[String],
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let source_id = steps.service_id(source).await?;
    let present: Vec<String> = steps.allowlist_entries(&source_id).await?;
    // Only entries skyplan owns, and not ones the user also lists for this source.
    let user_listed = steps
        .topology
        .services
        .get(source)
        .map(|s| s.spec.allow_list.clone())
        .unwrap_or_default();
    // When the topology still replicates `replica` from `source`, this revokes the entries of
    // an earlier incarnation of the replica (re-created, new outbound IPs): the entries that
    // admit its current IPs stay, and so does the grant that added them.
    let still_linked = steps
        .topology
        .services
        .get(replica)
        .and_then(|s| s.replication.as_ref())
        .is_some_and(|r| r.from == source);
    let current_ips: Vec<String> = if still_linked {
        steps
            .state
            .read(|s| {
                s.resources
                    .services
                    .get(replica)
                    .map(|r| r.outbound_ips.clone())
                    .unwrap_or_default()
            })
            .await
    } else {
        Vec::new()
    };
    let mut removed = Vec::new();
    for e in entries.iter().filter(|e| {
        contains_cidr(&present, e)
            && !contains_cidr(&user_listed, e)
            && !contains_cidr(&current_ips, e)
    }) {
        p.status(&format!("removing {e}"));
        // Delete the entry as the cloud spells it.
        let listed = present
            .iter()
            .find(|p| cidr_key(p) == cidr_key(e))
            .cloned()
            .unwrap_or_else(|| e.clone());
        client.delete_allowlist_entry(&source_id, &listed).await?;
        removed.push(e.clone());
    }
    steps
        .state
        .update(|s| {
            if still_linked {
                if let Some(a) = s.resources.allowlists.get_mut(replica) {
                    a.entries
                        .retain(|e| !contains_cidr(entries, e) || contains_cidr(&current_ips, e));
                }
            } else if s
                .resources
                .allowlists
                .get(replica)
                .is_some_and(|a| a.on == source)
            {
                s.resources.allowlists.remove(replica);
            } else if let Some(a) = s.resources.allowlists.get_mut(replica) {
                // An earlier grant on `source` (the replica now replicates from another).
                a.earlier.retain(|g| g.on != source);
            }
        })
        .await?;
    Ok(if removed.is_empty() {
        "nothing to remove".into()
    } else {
        format!("removed {}", removed.join(", "))
    })
}

pub(super) async fn replicate(
    steps: &RealSteps,
    source: &str,
    replica: &str,
    ssl: bool,
    mode: WireMode,
    p: &ProgressHandle,
) -> Result<String> {
    let state = steps.state.snapshot().await;
    let src = state
        .resources
        .services
        .get(source)
        .with_context(|| format!("service.{source} is not in the state"))?;
    let (Some(host), Some(port)) = (src.fqdn.clone(), src.port) else {
        bail!("service.{source} has no endpoint yet");
    };
    let mut conn = steps.sql(&state, replica).await?;
    let mut gtid = None;
    let mut user = state
        .resources
        .replications
        .get(replica)
        .and_then(|r| r.replication_user.clone());
    let mut note = "";
    match mode {
        WireMode::Restart => {
            p.status("starting replication");
            conn.start_replication().await?;
        }
        WireMode::Fresh | WireMode::Rewire | WireMode::Repoint => {
            // Stopped first, so the replica's own position no longer moves while it is read.
            let _ = conn.stop_replication().await;
            let own = conn.observed_gtids().await?;
            let start = plan::start::start_position(
                mode,
                just_restored(&state, replica, source, &host, port),
                &own,
            );
            if let Start::Own(_) = start {
                // The plan's check, again now: the source must hold the replica's history and
                // still have its next transaction. A re-point waits for a lagging new source.
                if let Err(e) = own_position_safe(steps, &state, source, replica, &own, p).await {
                    if mode == WireMode::Repoint {
                        // Leave it replicating from where it was, as before this step.
                        let _ = conn.start_replication().await;
                    }
                    return Err(e);
                }
                note = ", from its own position, no data copied";
            }
            let position = start.gtid().to_string();
            p.status(&format!(
                "configuring replication from {host}:{port} at GTID {}",
                crate::gtid::shown(&position)
            ));
            let grant = conn
                .change_external_primary_gtid(&host, port, &position, ssl)
                .await
                .with_context(|| {
                    format!("sky.change_external_primary_gtid on service.{replica}")
                })?;
            let account = run_grant(steps, &state, source, replica, &grant, p).await?;
            // A replica that was re-created has a new user: the old ones go.
            let old: Vec<String> = state
                .resources
                .replication_users
                .iter()
                .filter(|(u, r)| r.replica == replica && **u != account)
                .map(|(u, _)| u.clone())
                .chain(user.clone().filter(|u| *u != account))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            for u in old {
                drop_recorded_user(steps, &state, &u, source, p).await?;
            }
            user = Some(account);
            p.status("starting replication");
            conn.start_replication().await?;
            gtid = Some(position);
        }
    }
    wait_healthy(&mut conn, &steps.opts.poll, steps.opts.healthy_timeout, p).await?;
    let status = caught_up(steps, &state, source, replica, &mut conn, p).await?;
    // Its role: a replica is read-only for clients (replication still applies).
    conn.set_read_only(true)
        .await
        .with_context(|| format!("making service.{replica} read-only for clients"))?;
    let _ = conn.disconnect().await;
    let gtid = gtid.or_else(|| {
        state
            .resources
            .replications
            .get(replica)
            .and_then(|r| r.gtid_position.clone())
    });
    let link = ReplicationRecord {
        source: source.to_string(),
        source_host: host.clone(),
        source_port: port,
        gtid_position: gtid.filter(|g| !g.is_empty()),
        ssl,
        replication_user: user,
        healthy: true,
        wired_at: Some(super::now_rfc3339()),
    };
    record_link(steps, replica, link).await?;
    Ok(format!(
        "healthy, caught up, {} s behind{note}",
        status
            .seconds_behind_master
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".into())
    ))
}

/// The link, recorded healthy; a primary replaced by a failover that rejoined is an ordinary
/// replica now, and the old primary of an interrupted switchover that follows is done.
async fn record_link(steps: &RealSteps, replica: &str, link: ReplicationRecord) -> Result<()> {
    steps
        .state
        .update(|s| {
            s.resources
                .replications
                .insert(replica.to_string(), link.clone());
            if let Some(r) = s.resources.services.get_mut(replica) {
                r.failed_over_to = None;
            }
            for r in s.resources.services.values_mut() {
                if r.role_change.as_ref().is_some_and(|c| c.from == replica) {
                    r.role_change = None;
                }
            }
        })
        .await
}

/// The GTID of the backup just restored into `replica` for this source, when no channel has
/// run on it since (a restore removes the replication record; a channel that already ran
/// from this very source is recorded, and then continues from its own position).
fn just_restored<'a>(
    state: &'a crate::state::State,
    replica: &str,
    source: &str,
    host: &str,
    port: u16,
) -> Option<&'a str> {
    let res = &state.resources;
    let ran_here = res
        .replications
        .get(replica)
        .is_some_and(|l| l.source == source && l.source_host == host && l.source_port == port);
    let backup = res.backups.get(replica)?;
    let restored = res
        .restores
        .get(replica)
        .is_some_and(|r| r.completed && backup.backup_id.as_deref() == Some(r.backup_id.as_str()));
    (restored && !ran_here && backup.source == source)
        .then_some(backup.gtid_position.as_deref())
        .flatten()
}

/// The services `key` replicates from, nearest first, as the topology says once applied.
fn upstream_of(steps: &RealSteps, key: &str) -> Vec<String> {
    let mut chain = Vec::new();
    let mut at = key.to_string();
    while let Some(from) = steps
        .topology
        .services
        .get(&at)
        .and_then(|s| s.replication.as_ref())
        .map(|r| r.from.clone())
    {
        if from == key || chain.contains(&from) {
            break;
        }
        chain.push(from.clone());
        at = from;
    }
    chain
}

/// Check, at apply time, that `replica` (at `own`) can continue from its own position on
/// `source`; while the only obstacle is that `source` has not yet received transactions its
/// own sources have (lag), wait for it.
async fn own_position_safe(
    steps: &RealSteps,
    state: &crate::state::State,
    source: &str,
    replica: &str,
    own: &crate::gtid::ObservedGtids,
    p: &ProgressHandle,
) -> Result<()> {
    let mut upstream = Vec::new();
    for key in upstream_of(steps, source) {
        let mut c = steps.remote.sql(state, &key).await?;
        upstream.push(c.observed_gtids().await?);
        let _ = c.disconnect().await;
    }
    let ups: Vec<&crate::gtid::ObservedGtids> = upstream.iter().collect();
    let mut src_conn = steps.sql(state, source).await?;
    let deadline = tokio::time::Instant::now() + steps.opts.healthy_timeout;
    let result = loop {
        let theirs = src_conn.observed_gtids().await?;
        if let Err(u) = gtid::repoint(own, &theirs, &ups) {
            break Err(anyhow::anyhow!(
                "service.{replica} cannot continue from its own position on service.{source}: {}; \
                 nothing was changed (plan again: it will re-seed with seed = \"new-backup\")",
                u.describe(&format!("service.{replica}"), &format!("service.{source}"))
            ));
        }
        if gtid::caught_up_with(own, &theirs)? {
            break Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            break Err(anyhow::anyhow!(
                "service.{source} did not catch up with service.{replica} within {:?}; nothing was changed",
                steps.opts.healthy_timeout
            ));
        }
        p.status(&format!(
            "waiting for service.{source} to catch up with service.{replica}"
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = src_conn.disconnect().await;
    result
}

/// Run the replication GRANT `replica` asked for where it creates no local transaction on a
/// replica: on the chain's root (the service with no source), from where it replicates down
/// to `source`; then wait until `source` has applied it, so the replica's first connection
/// succeeds. The password reaches the binlogs only as a hash. The user is recorded in the
/// state as skyplan's; its `user@host` is returned.
pub(super) async fn run_grant(
    steps: &RealSteps,
    state: &crate::state::State,
    source: &str,
    replica: &str,
    grant: &crate::sql::ReplicationGrant,
    p: &ProgressHandle,
) -> Result<String> {
    let root = upstream_of(steps, source)
        .pop()
        .unwrap_or_else(|| source.to_string());
    p.status(&format!("granting replication on service.{root}"));
    let mut root_conn = steps.sql(state, &root).await?;
    root_conn
        .run_grant_on_primary(&grant.hashed())
        .await
        .with_context(|| format!("running the replication grant on service.{root}"))?;
    let pos = root_conn
        .gtid_status()
        .await?
        .binlog_pos
        .unwrap_or_default();
    let _ = root_conn.disconnect().await;
    if root != source && !pos.is_empty() {
        p.status(&format!("waiting for the grant to reach service.{source}"));
        let mut src_conn = steps.sql(state, source).await?;
        let applied = src_conn
            .wait_applied(&pos, steps.opts.healthy_timeout)
            .await?;
        let _ = src_conn.disconnect().await;
        if applied != Applied::Reached {
            bail!(
                "the replication grant run on service.{root} did not reach service.{source}: {}",
                applied.why_not(steps.opts.healthy_timeout)
            );
        }
    }
    let account = format!("{}@{}", grant.user(), grant.host());
    steps
        .state
        .update(|s| {
            s.resources.replication_users.insert(
                account.clone(),
                ReplicationUserRecord {
                    on: root.clone(),
                    replica: replica.to_string(),
                },
            );
        })
        .await?;
    Ok(account)
}

/// Prove the link: the replica applies everything the source had when wiring finished
/// (`MASTER_GTID_WAIT` on the source's `gtid_binlog_pos`), and both threads still run. A link
/// that breaks meanwhile fails the action with the server's error.
pub(super) async fn caught_up(
    steps: &RealSteps,
    state: &crate::state::State,
    source: &str,
    replica: &str,
    conn: &mut crate::sql::SqlConn,
    p: &ProgressHandle,
) -> Result<ObservedReplication> {
    let mut src_conn = steps.sql(state, source).await?;
    let pos = src_conn.gtid_status().await?.binlog_pos.unwrap_or_default();
    let _ = src_conn.disconnect().await;
    if !pos.is_empty() {
        p.status(&format!("waiting for service.{replica} to apply {pos}"));
        match conn.wait_applied(&pos, steps.opts.healthy_timeout).await? {
            Applied::Reached => {}
            Applied::Broke { errno, error } => {
                bail!("replication broke while catching up: SQL error {errno}: {error}")
            }
            timed_out @ Applied::TimedOut { .. } => bail!(
                "service.{replica} did not apply service.{source}'s position {pos}: {}",
                timed_out.why_not(steps.opts.healthy_timeout)
            ),
        }
    }
    let st = conn.replication_status().await?;
    if !(st.io_running && st.sql_running) {
        bail!(
            "replication stopped right after catching up: IO {} / SQL {}{}",
            yes(st.io_running),
            yes(st.sql_running),
            if st.last_sql_errno != 0 {
                format!(": SQL error {}: {}", st.last_sql_errno, st.last_sql_error)
            } else if st.last_io_errno != 0 {
                format!(": IO error {}: {}", st.last_io_errno, st.last_io_error)
            } else {
                String::new()
            }
        );
    }
    Ok(st)
}

/// Wait until both replication threads run; fail with the server's error if they stop on one.
pub(super) async fn wait_healthy(
    conn: &mut crate::sql::SqlConn,
    poll: &PollPolicy,
    timeout: Duration,
    p: &ProgressHandle,
) -> Result<ObservedReplication> {
    let policy = PollPolicy {
        deadline: timeout,
        max: poll.max.min(Duration::from_secs(2)),
        ..poll.clone()
    };
    let conn = tokio::sync::Mutex::new(conn);
    wait::until(
        &policy,
        p,
        "waiting for replication to be healthy",
        || async {
            let st = conn.lock().await.replication_status().await?;
            if st.io_running && st.sql_running {
                return Ok(Poll::Done(st));
            }
            if st.last_sql_errno != 0 {
                bail!(
                    "replication SQL thread stopped: error {}: {}",
                    st.last_sql_errno,
                    st.last_sql_error
                );
            }
            if st.last_io_errno == 1236 {
                bail!("replication cannot start: error 1236: {}", st.last_io_error);
            }
            let why = if st.last_io_errno != 0 {
                format!(
                    "IO thread: error {}: {}",
                    st.last_io_errno, st.last_io_error
                )
            } else {
                format!("IO {} / SQL {}", yes(st.io_running), yes(st.sql_running))
            };
            Ok(Poll::Pending(why))
        },
    )
    .await
}

fn yes(b: bool) -> &'static str {
    if b {
        "running"
    } else {
        "not running"
    }
}

pub(super) async fn stop(
    steps: &RealSteps,
    source: &str,
    replica: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let state = steps.state.snapshot().await;
    if state.resources.services.contains_key(replica) {
        let mut conn = steps.sql(&state, replica).await?;
        p.status("stopping replication");
        conn.stop_replication().await?;
        conn.reset_replication().await?;
        let _ = conn.disconnect().await;
    }
    // Its replication user goes too, on the root of the source's chain (as recorded: the
    // topology may no longer have the source), so the drop replicates to every replica.
    let user = state
        .resources
        .replications
        .get(replica)
        .and_then(|l| l.replication_user.clone());
    let dropped = match user {
        Some(user) => drop_recorded_user(steps, &state, &user, source, p).await?,
        None => String::new(),
    };
    steps
        .state
        .update(|s| {
            s.resources.replications.remove(replica);
            s.resources.backups.remove(replica);
            s.resources.restores.remove(replica);
        })
        .await?;
    Ok(dropped)
}

/// Drop a replication user skyplan created, where its GRANT ran (as recorded; else the root
/// of `source`'s recorded chain), and forget it. Says what it did.
pub(super) async fn drop_recorded_user(
    steps: &RealSteps,
    state: &crate::state::State,
    user: &str,
    source: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let root = state
        .resources
        .replication_users
        .get(user)
        .map(|r| r.on.clone())
        .unwrap_or_else(|| recorded_root(state, source));
    let mut said = String::new();
    if let Some(rec) = state.resources.services.get(&root) {
        p.status(&format!("dropping {user} on service.{root}"));
        match steps.remote.sql(state, &root).await {
            Ok(mut conn) => {
                conn.drop_replication_user(user).await?;
                let _ = conn.disconnect().await;
                said = format!("dropped {user} on service.{root}");
            }
            // The service it lived on is gone (a lost primary): so is the user.
            Err(_) if steps.remote.client.get_service(&rec.id).await?.is_none() => {
                said = format!("{user} went with service.{root}, which is gone");
            }
            Err(e) => return Err(e.context(format!("connecting to service.{root}"))),
        }
    }
    steps
        .state
        .update(|s| {
            s.resources.replication_users.remove(user);
        })
        .await?;
    Ok(said)
}

/// The root of `key`'s chain as the state records the links.
fn recorded_root(state: &crate::state::State, key: &str) -> String {
    let mut at = key.to_string();
    let mut hops = 0;
    while let Some(l) = state.resources.replications.get(&at) {
        at = l.source.clone();
        hops += 1;
        // A cycle can only come from a corrupt state: stop rather than loop.
        if hops > 64 {
            break;
        }
    }
    at
}

/// Drop a replication user no link owns, on `on` (a chain's root).
pub(super) async fn drop_user(
    steps: &RealSteps,
    on: &str,
    user: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let state = steps.state.snapshot().await;
    p.status(&format!("dropping {user}"));
    let mut conn = steps.sql(&state, on).await?;
    conn.drop_replication_user(user).await?;
    let _ = conn.disconnect().await;
    steps
        .state
        .update(|s| {
            s.resources.replication_users.remove(user);
        })
        .await?;
    Ok(format!("dropped {user}"))
}
