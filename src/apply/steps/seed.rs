//! Seeding steps: obtain a full backup of the source (new, latest, or given) and restore it
//! into the replica. The backup's GTID position is recorded: replication starts there, never
//! at the source's current position (that would silently lose the writes made since).

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context, Result};

use super::{now_rfc3339, RealSteps};
use crate::apply::executor::ProgressHandle;
use crate::apply::wait::{self, Poll};
use crate::skysql::types::{Backup, BackupStatus, RestoreRequest, RestoreStatus, ServiceStatus};
use crate::state::{BackupRecord, InFlight, Operation, ReplicationRecord, RestoreRecord};
use crate::topology::Seed;

pub(super) async fn backup(
    steps: &RealSteps,
    source: &str,
    seed: &Seed,
    replicas: &[String],
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let source_id = steps.service_id(source).await?;
    let mut note = "";
    let chosen: Backup = match seed {
        Seed::NewBackup | Seed::None => {
            if let Some(b) = unconsumed_backup(steps, source, &source_id, replicas).await? {
                note = " (taken by a previous run for this seed, not restored yet)";
                b
            } else {
                new_backup(steps, source, &source_id, replicas, p).await?
            }
        }
        Seed::LatestBackup | Seed::Backup(_) => {
            // The plan's rule, checked again now (a backup may have expired since).
            let backups = client.list_backups(&source_id).await?;
            let foreign = match seed {
                Seed::Backup(id) if !backups.iter().any(|b| &b.id == id) => {
                    client.find_backup(id).await?
                }
                _ => None,
            };
            let provider = steps
                .state
                .read(|s| {
                    s.resources
                        .services
                        .get(source)
                        .map(|r| r.spec.provider.clone())
                })
                .await
                .unwrap_or_default();
            let src = crate::plan::seed::Source {
                key: source,
                provider: &provider,
            };
            // The plan's GTID rule, read again now: the source's binlogs must still reach the
            // backup (the age rule only where they cannot be read, as in the plan).
            let state = steps.state.snapshot().await;
            let holdings = async {
                let mut c = steps.sql(&state, source).await?;
                let g = c.observed_gtids().await?;
                let _ = c.disconnect().await;
                g.holdings().map_err(anyhow::Error::from)
            }
            .await
            .ok();
            crate::plan::seed::choose(
                src,
                seed,
                &backups,
                foreign.as_ref(),
                time::OffsetDateTime::now_utc(),
                steps.opts.binlog_retention,
                holdings.as_ref(),
            )?
            .map(|c| c.backup.clone())
            .context("no backup chosen")?
        }
    };
    let gtid = chosen
        .binlog_gtid_position
        .clone()
        // Empty is a real position: the source had written no transaction yet.
        .ok_or_else(|| {
            anyhow!(
                "backup {} has no binlog_gtid_position; it cannot seed a replica",
                chosen.id
            )
        })?;
    let made = matches!(seed, Seed::NewBackup | Seed::None);
    steps
        .state
        .update(|s| {
            // Listed from now on: it stays (and is billed) after its restores.
            if made {
                s.resources.made_backups.insert(
                    chosen.id.clone(),
                    crate::state::MadeBackupRecord {
                        source: source.to_string(),
                        service_id: source_id.clone(),
                        taken_at: chosen.end_time.clone(),
                        gtid_position: Some(gtid.clone()),
                    },
                );
            }
            for r in replicas {
                s.resources.backups.insert(
                    r.clone(),
                    BackupRecord {
                        source: source.to_string(),
                        backup_id: Some(chosen.id.clone()),
                        schedule_id: s
                            .resources
                            .backups
                            .get(r)
                            .and_then(|b| b.schedule_id.clone()),
                        gtid_position: Some(gtid.clone()),
                        status: Some(chosen.status.clone()),
                        in_flight: None,
                    },
                );
            }
        })
        .await?;
    Ok(format!(
        "backup {} at GTID {}{note}",
        chosen.id,
        crate::gtid::shown(&gtid)
    ))
}

/// A backup a previous (killed or failed) run took to seed exactly these replicas and that no
/// restore has consumed yet: seeding from it is what that run would have done, and taking
/// another would only cost time and storage. It must still be a succeeded backup of the
/// current source service, young enough to replicate from.
async fn unconsumed_backup(
    steps: &RealSteps,
    source: &str,
    source_id: &str,
    replicas: &[String],
) -> Result<Option<Backup>> {
    let recorded: Option<String> = steps
        .state
        .read(|s| {
            let mut ids = replicas.iter().map(|r| {
                let b = s.resources.backups.get(r)?;
                let id = b.backup_id.as_ref()?;
                let consumed = s
                    .resources
                    .restores
                    .get(r)
                    .is_some_and(|rs| rs.completed && &rs.backup_id == id);
                let usable = b.source == source
                    && b.in_flight.is_none()
                    && b.gtid_position.is_some()
                    && !consumed;
                usable.then(|| id.clone())
            });
            let first = ids.next()??;
            ids.all(|id| id.as_ref() == Some(&first)).then_some(first)
        })
        .await;
    let Some(id) = recorded else {
        return Ok(None);
    };
    let found = steps
        .remote
        .client
        .list_backups(source_id)
        .await?
        .into_iter()
        .find(|b| b.id == id && b.is_succeeded() && b.binlog_gtid_position.is_some());
    let now = time::OffsetDateTime::now_utc();
    Ok(found.filter(|b| crate::plan::seed::check_age(b, now, steps.opts.binlog_retention).is_ok()))
}

/// Schedule a one-time full backup of the source and wait for it, or resume waiting for the
/// one a killed run scheduled. The backups that existed before are saved *before* the
/// schedule request, so a resumed run tells the new backup apart and never schedules twice
/// (unless the first request never reached the API: then no new backup exists and it
/// schedules again).
async fn new_backup(
    steps: &RealSteps,
    source: &str,
    source_id: &str,
    replicas: &[String],
    p: &ProgressHandle,
) -> Result<Backup> {
    let client = &steps.remote.client;
    let resumed: Option<(BTreeSet<String>, bool)> = steps
        .state
        .read(|s| {
            replicas.iter().find_map(|r| {
                let b = s.resources.backups.get(r)?;
                let f = b.in_flight.as_ref()?;
                (b.source == source && b.backup_id.is_none()).then(|| {
                    (
                        f.operation_id
                            .as_deref()
                            .unwrap_or("")
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect(),
                        b.schedule_id.is_some(),
                    )
                })
            })
        })
        .await;
    let known = match resumed {
        Some((known, scheduled)) => match newest_new_backup(steps, source_id, &known).await? {
            // The backup a previous run scheduled ended failed (the API went away while it
            // ran, say): the plan said a backup is taken, so a new one is, now.
            Some(b) if b.is_failed() => {
                p.status(&format!(
                    "the backup {} a previous run scheduled ended {}: taking a new one",
                    b.id, b.status
                ));
                let known: BTreeSet<String> = client
                    .list_backups(source_id)
                    .await?
                    .into_iter()
                    .map(|b| b.id)
                    .collect();
                schedule(steps, source, source_id, replicas, &known, p).await?;
                known
            }
            Some(_) => known,
            None => {
                if !scheduled {
                    schedule(steps, source, source_id, replicas, &known, p).await?;
                }
                known
            }
        },
        None => {
            let known: BTreeSet<String> = client
                .list_backups(source_id)
                .await?
                .into_iter()
                .map(|b| b.id)
                .collect();
            schedule(steps, source, source_id, replicas, &known, p).await?;
            known
        }
    };
    let what = format!("waiting for the backup of service.{source}");
    let poll = wait::until(&steps.opts.poll, p, &what, || async {
        let Some(b) = p.call(newest_new_backup(steps, source_id, &known)).await? else {
            return Ok(Poll::Pending("waiting for the backup to appear".into()));
        };
        if b.status.is_final() {
            Ok(Poll::Done(b))
        } else {
            Ok(Poll::Pending(format!("backup {} {}", b.id, b.status)))
        }
    });
    let b = p.interruptible(&what, poll).await?;
    if b.is_failed() {
        // Over: nothing to resume. The next run schedules a new backup.
        steps
            .state
            .update(|s| {
                for r in replicas {
                    if let Some(rec) = s.resources.backups.get_mut(r) {
                        rec.backup_id = Some(b.id.clone());
                        rec.status = Some(b.status.clone());
                        rec.gtid_position = None;
                        rec.in_flight = None;
                    }
                }
            })
            .await?;
        bail!("the backup {} of service.{source} ended {}", b.id, b.status);
    }
    Ok(b)
}

/// The newest backup of the source that is not in `known`.
async fn newest_new_backup(
    steps: &RealSteps,
    source_id: &str,
    known: &BTreeSet<String>,
) -> Result<Option<Backup>> {
    Ok(steps
        .remote
        .client
        .list_backups(source_id)
        .await?
        .into_iter()
        .filter(|b| !known.contains(&b.id))
        .max_by(|a, b| a.start_time.cmp(&b.start_time)))
}

/// Record the intent (with the backups known before), then schedule, then record the schedule.
async fn schedule(
    steps: &RealSteps,
    source: &str,
    source_id: &str,
    replicas: &[String],
    known: &BTreeSet<String>,
    p: &ProgressHandle,
) -> Result<()> {
    let known_csv = known.iter().cloned().collect::<Vec<_>>().join(",");
    steps
        .state
        .update(|s| {
            for r in replicas {
                s.resources.backups.insert(
                    r.clone(),
                    BackupRecord {
                        source: source.to_string(),
                        backup_id: None,
                        schedule_id: None,
                        gtid_position: None,
                        status: Some("scheduling".into()),
                        in_flight: Some(InFlight {
                            operation: Operation::Backup,
                            started_at: now_rfc3339(),
                            operation_id: Some(known_csv.clone()),
                        }),
                    },
                );
            }
        })
        .await?;
    p.status("scheduling a one-time full backup");
    let schedule = steps
        .remote
        .client
        .schedule_backup(source_id)
        .await
        .with_context(|| format!("scheduling a full backup of service.{source}"))?;
    steps
        .state
        .update(|s| {
            for r in replicas {
                if let Some(rec) = s.resources.backups.get_mut(r) {
                    rec.schedule_id = Some(schedule.id.to_string());
                    rec.status = Some(BackupStatus::Scheduled);
                }
            }
        })
        .await
}

/// A backup older than the source's binlog retention cannot be caught up from.
pub(super) async fn restore(
    steps: &RealSteps,
    source: &str,
    replica: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let replica_id = steps.service_id(replica).await?;
    let backup_id = steps
        .state
        .read(|s| {
            s.resources
                .backups
                .get(replica)
                .and_then(|b| b.backup_id.clone())
        })
        .await
        .with_context(|| format!("no backup recorded to seed service.{replica}"))?;
    // A restore of this backup into this service that a killed run started (or was about to).
    let resumed: Option<(Option<i64>, BTreeSet<i64>)> = steps
        .state
        .read(|s| {
            let r = s.resources.restores.get(replica)?;
            let f = r.in_flight.as_ref()?;
            (r.backup_id == backup_id && r.target_id == replica_id && !r.completed).then(|| {
                let known = f
                    .operation_id
                    .as_deref()
                    .filter(|_| r.restore_id.is_none())
                    .unwrap_or("")
                    .split(',')
                    .filter_map(|id| id.parse().ok())
                    .collect();
                (
                    r.restore_id.as_deref().and_then(|id| id.parse().ok()),
                    known,
                )
            })
        })
        .await;
    let restore_id: i64 = match resumed {
        Some((Some(id), _)) => id,
        Some((None, known)) => {
            // The request may have been sent before the kill: look for it before sending one.
            let started = client
                .list_restores(&replica_id)
                .await?
                .into_iter()
                .filter(|r| r.backup_id == backup_id && !known.contains(&r.id))
                .max_by_key(|r| r.id);
            match started {
                Some(r) => {
                    record_restore_id(steps, replica, r.id).await?;
                    r.id
                }
                None => start_restore(steps, replica, &replica_id, &backup_id, p).await?,
            }
        }
        None => start_restore(steps, replica, &replica_id, &backup_id, p).await?,
    };
    let what = format!("waiting for the restore into service.{replica}");
    let poll = wait::until(&steps.opts.poll, p, &what, || async {
        let r = p.call(client.get_restore(restore_id)).await?;
        if r.status.is_final() {
            Ok(Poll::Done(r))
        } else {
            Ok(Poll::Pending(format!("restore {}", r.status)))
        }
    });
    let r = p.interruptible(&what, poll).await?;
    if r.status == RestoreStatus::Failed {
        // Over: nothing to resume. A target that failed with it is recorded so (the next
        // plan replaces it).
        let target_failed = matches!(
            client.get_service(&replica_id).await,
            Ok(Some(svc)) if svc.status == ServiceStatus::Failed
        );
        steps
            .state
            .update(|s| {
                if let Some(rec) = s.resources.restores.get_mut(replica) {
                    rec.in_flight = None;
                }
                if let Some(svc) = s.resources.services.get_mut(replica) {
                    if target_failed && svc.id == replica_id {
                        svc.status = Some(ServiceStatus::Failed);
                    }
                }
            })
            .await?;
        bail!(
            "the restore of backup {backup_id} into service.{replica} ended {}{}",
            r.status,
            r.message.map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    super::service::wait_ready(steps, replica, &replica_id, p).await?;
    // From now on the replica accepts the source's credentials only (as the guide warns).
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.restores.get_mut(replica) {
                r.completed = true;
                r.in_flight = None;
            }
            if let Some(svc) = s.resources.services.get_mut(replica) {
                svc.credentials_from = Some(source.to_string());
                svc.status = Some(ServiceStatus::Ready);
                // A --replace re-seed is done once the copy is in.
                svc.replace_requested = None;
            }
        })
        .await?;
    Ok(format!("restored backup {backup_id}"))
}

/// Record the intent (with the restores known before), start the restore, record its id.
async fn start_restore(
    steps: &RealSteps,
    replica: &str,
    replica_id: &str,
    backup_id: &str,
    p: &ProgressHandle,
) -> Result<i64> {
    let client = &steps.remote.client;
    // The target must be ready to accept a restore.
    super::service::wait_ready(steps, replica, replica_id, p).await?;
    let known: Vec<String> = client
        .list_restores(replica_id)
        .await?
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    steps
        .state
        .update(|s| {
            s.resources.restores.insert(
                replica.to_string(),
                RestoreRecord {
                    backup_id: backup_id.to_string(),
                    target_id: replica_id.to_string(),
                    restore_id: None,
                    completed: false,
                    in_flight: Some(InFlight {
                        operation: Operation::Restore,
                        started_at: now_rfc3339(),
                        operation_id: Some(known.join(",")),
                    }),
                },
            );
            // The replica's data is being replaced: its old replication is meaningless.
            s.resources.replications.remove(replica);
        })
        .await?;
    p.status(&format!("restoring backup {backup_id}"));
    let r = client
        .start_restore(&RestoreRequest {
            id: backup_id.to_string(),
            service_id: replica_id.to_string(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("restoring backup {backup_id} into service.{replica}"))?;
    record_restore_id(steps, replica, r.id).await?;
    Ok(r.id)
}

async fn record_restore_id(steps: &RealSteps, replica: &str, id: i64) -> Result<()> {
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.restores.get_mut(replica) {
                r.restore_id = Some(id.to_string());
                if let Some(f) = r.in_flight.as_mut() {
                    f.operation_id = Some(id.to_string());
                }
            }
        })
        .await
}

/// The last step of seeding is starting replication at the backup's position. A run killed
/// after `sky.start_replication` but before recording the link leaves a replica that already
/// replicates (and may have applied writes made after the backup) while the state says it
/// is not wired; wiring it again from the backup's position would replay those writes
/// (duplicate-key errors, or worse). Such a link is adopted instead, before planning.
impl RealSteps {
    /// For every seeded replica with no recorded link whose server replicates from its source's
    /// endpoint: record the link — healthy if both threads run, unhealthy (the plan then
    /// restarts or rewires it from the replica's own position) if it moved past the backup's
    /// position without running. A replica that never started is left to be wired afresh.
    /// Only replicas in that situation are contacted. Returns one line per adopted link.
    pub async fn adopt_started_replications(&self) -> Result<Vec<String>> {
        let state = self.state.snapshot().await;
        let res = &state.resources;
        let candidates: Vec<(String, String, String, u16, bool)> = self
            .topology
            .services
            .iter()
            .filter_map(|(key, svc)| {
                let repl = svc.replication.as_ref()?;
                let rec = res.services.get(key)?;
                let src = res.services.get(&repl.from)?;
                // With seed = "none" there is no restore: the replica is wired as it is.
                let seeded = !repl.seed.uses_backup()
                    || res
                        .restores
                        .get(key)
                        .is_some_and(|r| r.completed && r.target_id == rec.id);
                let unwired = !res.replications.contains_key(key);
                let (host, port) = (src.fqdn.clone()?, src.port?);
                (seeded && unwired && rec.fqdn.is_some())
                    .then(|| (key.clone(), repl.from.clone(), host, port, repl.ssl))
            })
            .collect();
        let mut adopted = Vec::new();
        for (key, source, host, port, ssl) in candidates {
            let backup_gtid = res
                .backups
                .get(&key)
                .and_then(|b| b.gtid_position.clone())
                .unwrap_or_default();
            let mut conn = self.sql(&state, &key).await?;
            let status = conn.replication_status().await?;
            let slave_pos = conn.gtid_status().await?.slave_pos.unwrap_or_default();
            let _ = conn.disconnect().await;
            let ours = status.configured
                && status.master_host.as_deref() == Some(host.as_str())
                && status.master_port == Some(port);
            let running = status.io_running && status.sql_running;
            let moved_on = slave_pos.trim() != backup_gtid.trim();
            if !ours || !(running || moved_on) {
                continue;
            }
            self.state
                .update(|s| {
                    s.resources.replications.insert(
                        key.clone(),
                        ReplicationRecord {
                            source: source.clone(),
                            source_host: host.clone(),
                            source_port: port,
                            gtid_position: Some(backup_gtid.clone()).filter(|g| !g.is_empty()),
                            ssl,
                            replication_user: None,
                            healthy: running,
                            wired_at: None,
                        },
                    );
                })
                .await?;
            adopted.push(format!(
                "replication.{key}: adopted the replication from {host}:{port} a previous run started ({})",
                if running { "running" } else { "not running; it will be repaired from the replica's own position" }
            ));
        }
        Ok(adopted)
    }
}
