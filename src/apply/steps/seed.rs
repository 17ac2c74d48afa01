//! Seeding steps: obtain a full backup of the source (new, latest, or given) and restore it
//! into the replica. The backup's GTID position is recorded: replication starts there, never
//! at the source's current position (that would silently lose the writes made since).

use std::collections::BTreeSet;

use anyhow::{anyhow, bail, Context, Result};

use super::{now_rfc3339, RealSteps};
use crate::apply::executor::ProgressHandle;
use crate::apply::wait::{self, Poll};
use crate::skysql::types::{Backup, RestoreRequest};
use crate::state::{BackupRecord, InFlight, RestoreRecord};
use crate::topology::Seed;

fn is_succeeded(status: &str) -> bool {
    matches!(
        status.to_ascii_lowercase().as_str(),
        "succeeded" | "success" | "completed" | "done"
    )
}

fn is_failed(status: &str) -> bool {
    matches!(
        status.to_ascii_lowercase().as_str(),
        "failed" | "error" | "cancelled" | "canceled"
    )
}

async fn service_id(steps: &RealSteps, key: &str) -> Result<String> {
    steps
        .state
        .read(|s| s.resources.services.get(key).map(|r| r.id.clone()))
        .await
        .with_context(|| format!("service.{key} is not in the state"))
}

pub(super) async fn backup(
    steps: &RealSteps,
    source: &str,
    seed: &Seed,
    replicas: &[String],
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let source_id = service_id(steps, source).await?;
    let chosen: Backup = match seed {
        Seed::NewBackup | Seed::None => {
            // Resume a backup that a previous run scheduled: the ids it did not want are saved.
            let resumed = steps
                .state
                .read(|s| {
                    replicas.iter().find_map(|r| {
                        s.resources.backups.get(r).and_then(|b| {
                            b.in_flight
                                .as_ref()
                                .filter(|_| b.source == source && b.backup_id.is_none())
                                .cloned()
                        })
                    })
                })
                .await;
            let (known, note) = match resumed.and_then(|f| f.operation_id) {
                Some(known) => (
                    known
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                    "resumed",
                ),
                None => {
                    let known: BTreeSet<String> = client
                        .list_backups(&source_id)
                        .await?
                        .into_iter()
                        .map(|b| b.id)
                        .collect();
                    let known_csv = known.iter().cloned().collect::<Vec<_>>().join(",");
                    p.status("scheduling a one-time full backup");
                    let schedule = client
                        .schedule_backup(&source_id)
                        .await
                        .with_context(|| format!("scheduling a full backup of service.{source}"))?;
                    // Saved before waiting, with the backups that existed before, so a resumed
                    // run can tell the new backup apart.
                    steps
                        .state
                        .update(|s| {
                            for r in replicas {
                                s.resources.backups.insert(
                                    r.clone(),
                                    BackupRecord {
                                        source: source.to_string(),
                                        backup_id: None,
                                        schedule_id: Some(schedule.id.to_string()),
                                        gtid_position: None,
                                        status: Some("scheduled".into()),
                                        in_flight: Some(InFlight {
                                            operation: "backup".into(),
                                            started_at: now_rfc3339(),
                                            operation_id: Some(known_csv.clone()),
                                        }),
                                    },
                                );
                            }
                        })
                        .await?;
                    (known, "")
                }
            };
            let known: BTreeSet<String> = known;
            let b = wait::until(
                &steps.opts.poll,
                p,
                &format!("waiting for the backup of service.{source}"),
                || async {
                    let new: Vec<Backup> = client
                        .list_backups(&source_id)
                        .await?
                        .into_iter()
                        .filter(|b| !known.contains(&b.id))
                        .collect();
                    let Some(b) = new
                        .into_iter()
                        .max_by(|a, b| a.start_time.cmp(&b.start_time))
                    else {
                        return Ok(Poll::Pending("waiting for the backup to appear".into()));
                    };
                    let status = b.status.clone();
                    if is_succeeded(&status) {
                        Ok(Poll::Done(b))
                    } else if is_failed(&status) {
                        bail!("the backup {} of service.{source} ended {status}", b.id)
                    } else {
                        Ok(Poll::Pending(format!("backup {} {status}", b.id)))
                    }
                },
            )
            .await?;
            let _ = note;
            b
        }
        Seed::LatestBackup => {
            let backups = client.list_backups(&source_id).await?;
            let latest = backups
                .into_iter()
                .filter(|b| is_succeeded(&b.status))
                .filter(|b| b.backup_type.is_empty() || b.backup_type.eq_ignore_ascii_case("full"))
                .max_by(|a, b| a.end_time.cmp(&b.end_time))
                .ok_or_else(|| {
                    anyhow!(
                        "service.{source} has no succeeded full backup; use seed = \"new-backup\""
                    )
                })?;
            check_age(&latest, steps.opts.binlog_retention)?;
            latest
        }
        Seed::Backup(id) => {
            let b = client
                .list_backups(&source_id)
                .await?
                .into_iter()
                .find(|b| &b.id == id)
                .ok_or_else(|| anyhow!("backup {id} is not a backup of service.{source}"))?;
            if !is_succeeded(&b.status) {
                bail!(
                    "backup {id} of service.{source} is {}, not succeeded",
                    b.status
                );
            }
            check_age(&b, steps.opts.binlog_retention)?;
            b
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
    steps
        .state
        .update(|s| {
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
    Ok(format!("backup {} at GTID {gtid}", chosen.id))
}

/// A backup older than the source's binlog retention cannot be caught up from.
fn check_age(b: &Backup, retention: std::time::Duration) -> Result<()> {
    let Some(end) = b.end_time.as_deref().and_then(parse_time) else {
        return Ok(()); // unknown age: the cloud decides; replication would report 1236
    };
    let age = time::OffsetDateTime::now_utc() - end;
    if age > time::Duration::try_from(retention).unwrap_or(time::Duration::MAX) {
        bail!(
            "backup {} is {} hours old, older than the source's binlog retention ({} hours): replication could not catch up from it. Use seed = \"new-backup\"",
            b.id,
            age.whole_hours(),
            retention.as_secs() / 3600
        );
    }
    Ok(())
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        time::PrimitiveDateTime::parse(s, &f)
            .ok()
            .map(|p| p.assume_utc())
    })
}

pub(super) async fn restore(
    steps: &RealSteps,
    source: &str,
    replica: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let client = &steps.remote.client;
    let replica_id = service_id(steps, replica).await?;
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
    let resumed = steps
        .state
        .read(|s| {
            s.resources
                .restores
                .get(replica)
                .filter(|r| r.backup_id == backup_id && r.target_id == replica_id && !r.completed)
                .and_then(|r| r.restore_id.clone())
        })
        .await;
    let restore_id: i64 = match resumed.and_then(|r| r.parse().ok()) {
        Some(id) => id,
        None => {
            // The target must be ready to accept a restore.
            super::service::wait_ready(steps, replica, &replica_id, p).await?;
            p.status(&format!("restoring backup {backup_id}"));
            let r = client
                .start_restore(&RestoreRequest {
                    id: backup_id.clone(),
                    service_id: replica_id.clone(),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("restoring backup {backup_id} into service.{replica}"))?;
            let id = r.id;
            steps
                .state
                .update(|s| {
                    s.resources.restores.insert(
                        replica.to_string(),
                        RestoreRecord {
                            backup_id: backup_id.clone(),
                            target_id: replica_id.clone(),
                            restore_id: Some(id.to_string()),
                            completed: false,
                            in_flight: Some(InFlight {
                                operation: "restore".into(),
                                started_at: now_rfc3339(),
                                operation_id: Some(id.to_string()),
                            }),
                        },
                    );
                    // The replica's data is being replaced: its old replication is meaningless.
                    s.resources.replications.remove(replica);
                })
                .await?;
            id
        }
    };
    wait::until(
        &steps.opts.poll,
        p,
        &format!("waiting for the restore into service.{replica}"),
        || async {
            let r = client.get_restore(restore_id).await?;
            let status = r.status.clone();
            if is_succeeded(&status) {
                Ok(Poll::Done(()))
            } else if is_failed(&status) {
                bail!(
                    "the restore of backup {backup_id} into service.{replica} ended {status}{}",
                    r.message.map(|m| format!(": {m}")).unwrap_or_default()
                )
            } else {
                Ok(Poll::Pending(format!("restore {status}")))
            }
        },
    )
    .await?;
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
                svc.status = Some("ready".into());
            }
        })
        .await?;
    Ok(format!("restored backup {backup_id}"))
}
