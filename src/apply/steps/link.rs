//! Link steps: allowlist grant/revoke on the source, and GTID replication on the replica
//! (`sky.change_external_primary_gtid` → grant on the source → `sky.start_replication` →
//! wait until `sky.replication_status` is healthy).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use super::RealSteps;
use crate::apply::executor::ProgressHandle;
use crate::apply::wait::{self, Poll, PollPolicy};
use crate::observed::ObservedReplication;
use crate::plan::diff::{cidr32, cidr_key, contains_cidr};
use crate::plan::WireMode;
use crate::state::{AllowlistRecord, ReplicationRecord};

pub(super) async fn grant(
    steps: &RealSteps,
    source: &str,
    replica: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let source_id = steps.service_id(source).await?;
    let replica_id = steps.service_id(replica).await?;
    // The replica's outbound IPs as the API reports them now (they may have changed since
    // the state recorded them); the recorded ones if the API lists none.
    let mut ips = client
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
    let entries: Vec<String> = ips.iter().map(|ip| cidr32(ip)).collect();
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
            s.resources.allowlists.insert(
                replica.to_string(),
                AllowlistRecord {
                    on: source.to_string(),
                    entries: entries.clone(),
                },
            );
        })
        .await?;
    Ok(if added.is_empty() {
        "already allowed".into()
    } else {
        format!("added {}", added.join(", "))
    })
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
    let mut conn = steps
        .remote
        .sql(&state, replica)
        .await
        .with_context(|| format!("connecting to service.{replica}"))?;
    let mut gtid = None;
    let mut user = state
        .resources
        .replications
        .get(replica)
        .and_then(|r| r.replication_user.clone());
    match mode {
        WireMode::Restart => {
            p.status("starting replication");
            conn.start_replication().await?;
        }
        WireMode::Fresh | WireMode::Rewire => {
            // A channel that already ran from this very source (the state still records it:
            // a restore removes the record) continues from the replica's own position.
            // Starting it again at the seeding backup's position would replay every
            // transaction applied since, and break on the first duplicate.
            let ran_here = state.resources.replications.get(replica).is_some_and(|l| {
                l.source == source && l.source_host == host && l.source_port == port
            });
            let own = if mode == WireMode::Rewire || ran_here {
                let g = conn.gtid_status().await?;
                let slave = g.slave_pos.clone().filter(|s| !s.is_empty());
                if mode == WireMode::Rewire {
                    slave.or(g.current_pos.clone())
                } else {
                    slave
                }
            } else {
                None
            };
            let position = match own {
                Some(own) => own,
                // The seeding backup's position; with seed = "none" the start of the binlogs.
                None if mode == WireMode::Fresh => state
                    .resources
                    .backups
                    .get(replica)
                    .and_then(|b| b.gtid_position.clone())
                    .unwrap_or_default(),
                None => String::new(),
            };
            let _ = conn.stop_replication().await;
            p.status(&format!(
                "configuring replication from {host}:{port} at GTID {}",
                if position.is_empty() {
                    "(start)"
                } else {
                    &position
                }
            ));
            let grant = conn
                .change_external_primary_gtid(&host, port, &position, ssl)
                .await
                .with_context(|| {
                    format!("sky.change_external_primary_gtid on service.{replica}")
                })?;
            user = Some(format!("{}@{}", grant.user(), grant.host()));
            p.status("granting replication on the source");
            let mut src_conn = steps
                .remote
                .sql(&state, source)
                .await
                .with_context(|| format!("connecting to service.{source}"))?;
            src_conn
                .run_grant_on_primary(&grant)
                .await
                .with_context(|| format!("running the replication grant on service.{source}"))?;
            let _ = src_conn.disconnect().await;
            p.status("starting replication");
            conn.start_replication().await?;
            gtid = Some(position);
        }
    }
    let status = wait_healthy(&mut conn, &steps.opts.poll, steps.opts.healthy_timeout, p).await?;
    let _ = conn.disconnect().await;
    let gtid = gtid.or_else(|| {
        state
            .resources
            .replications
            .get(replica)
            .and_then(|r| r.gtid_position.clone())
    });
    steps
        .state
        .update(|s| {
            s.resources.replications.insert(
                replica.to_string(),
                ReplicationRecord {
                    source: source.to_string(),
                    source_host: host.clone(),
                    source_port: port,
                    gtid_position: gtid.clone().filter(|g| !g.is_empty()),
                    ssl,
                    replication_user: user.clone(),
                    healthy: true,
                },
            );
        })
        .await?;
    Ok(format!(
        "healthy, {} s behind",
        status
            .seconds_behind_master
            .map(|s| s.to_string())
            .unwrap_or_else(|| "?".into())
    ))
}

/// Wait until both replication threads run; fail with the server's error if they stop on one.
async fn wait_healthy(
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
    _source: &str,
    replica: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let state = steps.state.snapshot().await;
    if state.resources.services.contains_key(replica) {
        let mut conn = steps
            .remote
            .sql(&state, replica)
            .await
            .with_context(|| format!("connecting to service.{replica}"))?;
        p.status("stopping replication");
        conn.stop_replication().await?;
        conn.reset_replication().await?;
        let _ = conn.disconnect().await;
    }
    steps
        .state
        .update(|s| {
            s.resources.replications.remove(replica);
            s.resources.backups.remove(replica);
            s.resources.restores.remove(replica);
        })
        .await?;
    Ok(String::new())
}
