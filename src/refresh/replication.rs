//! The replicas' `sky.replication_status()`: read again while a reconnect settles, so a
//! source restart or a network blip is seen reconnected rather than broken.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt};

use super::nothing_answered;
use crate::observed::ObservedReplication;
use crate::remote::Remote;
use crate::sql::status::{connect_retry, judge_status};
use crate::sql::SqlConn;
use crate::state::State;
use crate::topology::Topology;

/// The links' states.
pub(super) struct Statuses {
    pub(super) replication: BTreeMap<String, ObservedReplication>,
    /// Replicas whose database did not answer.
    pub(super) unanswered: BTreeSet<String>,
}

pub(super) async fn statuses(
    remote: &Remote,
    topology: &Topology,
    state: &State,
    ready: &BTreeSet<&String>,
    parallelism: usize,
) -> Result<Statuses> {
    let res = &state.resources;
    // Recorded links, replicas of the topology the state records without one (imported,
    // adopted, a lost record), and the old primary of a switchover interrupted after its
    // opening (the run may have pointed it at the new primary): a link they already have is
    // kept rather than re-seeded (`kept_links`).
    let left_behind = res.services.values().filter_map(|r| {
        r.role_change
            .as_ref()
            .filter(|c| c.step == crate::state::RoleChangeStep::Opened)
            .and_then(|c| res.services.get_key_value(&c.from))
            .map(|(k, _)| k)
    });
    let replicas: BTreeSet<&String> = res
        .replications
        .keys()
        .chain(
            topology
                .services
                .iter()
                .filter(|(k, s)| s.replication.is_some() && !res.replications.contains_key(*k))
                .map(|(k, _)| k),
        )
        .chain(left_behind)
        .filter(|r| ready.contains(r))
        .collect();
    // A replica whose database does not answer is recorded as such (its own drift), not a
    // failed refresh: the plan names it; an unexpected answer is still an error.
    let statuses: Vec<(String, Result<Option<ObservedReplication>, anyhow::Error>)> =
        stream::iter(replicas)
            .map(|key| async move {
                let status = async {
                    let mut conn = match remote.session(state, key).await {
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
                    // Given back before the source's is asked for: a task never holds two.
                    drop(conn);
                    // Still reconnecting: did its source restart lately? (A source that does
                    // not answer is its own drift.)
                    if let (Some(r), Some(link)) =
                        (status.reconnecting.as_mut(), res.replications.get(key))
                    {
                        if let Ok(mut src) = remote.session(state, &link.source).await {
                            r.source_up_seconds = src.uptime_seconds().await.ok();
                            drop(src);
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

    Ok(Statuses {
        replication,
        unanswered,
    })
}

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
