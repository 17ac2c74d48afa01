//! Which existing backup seeds a replica (`seed = "latest-backup"` or `"backup:<id>"`): one
//! rule for `plan`, which names the choice before anything is created, and for apply, which
//! checks it again just before restoring. Pure: the caller passes the backups it listed and
//! the time it listed them.

use std::time::Duration;

use skyplan_api::types::Backup;
use time::OffsetDateTime;

use crate::topology::Seed;

/// How long a source keeps its binlogs unless told otherwise: a backup older than this cannot
/// be caught up from (replication would stop with error 1236).
pub const DEFAULT_BINLOG_RETENTION: Duration = Duration::from_secs(4 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("service.{service} has no succeeded full backup for seed = \"latest-backup\"; use seed = \"new-backup\"")]
    NoBackup { service: String },
    #[error("backup {id} is not a backup of service.{service}; list its backups (GET /skybackup/v1/backups?service_id=…) or use seed = \"new-backup\"")]
    UnknownId { id: String, service: String },
    #[error("backup {id} of service.{service} is {status}, not Succeeded; use another backup or seed = \"new-backup\"")]
    NotSucceeded {
        id: String,
        service: String,
        status: String,
    },
    #[error("backup {id} is {hours} hours old, older than the source's binlog retention ({retention_hours} hours): replication could not catch up from it. Use seed = \"new-backup\"")]
    TooOld {
        id: String,
        hours: i64,
        retention_hours: u64,
    },
    #[error("service.{service} is created by this plan, so it has no backup yet for seed = \"{seed}\"; use seed = \"new-backup\"")]
    NewSource { service: String, seed: String },
}

/// The backup `seed` names among `backups` (the source's, as listed at `now`).
pub fn choose<'a>(
    source: &str,
    seed: &Seed,
    backups: &'a [Backup],
    now: OffsetDateTime,
    retention: Duration,
) -> Result<Option<&'a Backup>, SeedError> {
    let chosen = match seed {
        Seed::NewBackup | Seed::None => return Ok(None),
        Seed::LatestBackup => backups
            .iter()
            .filter(|b| b.is_succeeded())
            .filter(|b| b.backup_type.is_empty() || b.backup_type.eq_ignore_ascii_case("full"))
            .max_by(|a, b| a.end_time.cmp(&b.end_time))
            .ok_or_else(|| SeedError::NoBackup {
                service: source.to_string(),
            })?,
        Seed::Backup(id) => {
            let b = backups
                .iter()
                .find(|b| &b.id == id)
                .ok_or_else(|| SeedError::UnknownId {
                    id: id.clone(),
                    service: source.to_string(),
                })?;
            if !b.is_succeeded() {
                return Err(SeedError::NotSucceeded {
                    id: id.clone(),
                    service: source.to_string(),
                    status: b.status.to_string(),
                });
            }
            b
        }
    };
    check_age(chosen, now, retention)?;
    Ok(Some(chosen))
}

/// A backup whose end time is unknown passes: the cloud decides (replication reports 1236).
pub fn check_age(b: &Backup, now: OffsetDateTime, retention: Duration) -> Result<(), SeedError> {
    let Some(end) = b.end_time.as_deref().and_then(parse_time) else {
        return Ok(());
    };
    let age = now - end;
    if age > time::Duration::try_from(retention).unwrap_or(time::Duration::MAX) {
        return Err(SeedError::TooOld {
            id: b.id.clone(),
            hours: age.whole_hours(),
            retention_hours: retention.as_secs() / 3600,
        });
    }
    Ok(())
}

/// RFC 3339, or the `YYYY-MM-DD HH:MM:SS` (UTC) some API versions use.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        time::PrimitiveDateTime::parse(s, &f)
            .ok()
            .map(|p| p.assume_utc())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyplan_api::types::BackupStatus;

    fn backup(id: &str, status: BackupStatus, end: &str) -> Backup {
        Backup {
            id: id.into(),
            status,
            backup_type: "full".into(),
            end_time: Some(end.into()),
            binlog_gtid_position: Some("0-1-5".into()),
            ..Backup::default()
        }
    }

    fn now() -> OffsetDateTime {
        parse_time("2026-11-30T12:00:00Z").unwrap()
    }

    #[test]
    fn latest_is_the_newest_succeeded_full_backup() {
        let list = [
            backup("old", BackupStatus::Succeeded, "2026-11-29T10:00:00Z"),
            backup("new", BackupStatus::Succeeded, "2026-11-30 09:00:00"),
            backup("failed", BackupStatus::Failed, "2026-11-30T11:00:00Z"),
            Backup {
                backup_type: "incremental".into(),
                ..backup("incr", BackupStatus::Succeeded, "2026-11-30T11:30:00Z")
            },
        ];
        let c = choose(
            "p",
            &Seed::LatestBackup,
            &list,
            now(),
            DEFAULT_BINLOG_RETENTION,
        );
        assert_eq!(c.unwrap().unwrap().id, "new");
        let e = choose(
            "p",
            &Seed::LatestBackup,
            &list[2..3],
            now(),
            DEFAULT_BINLOG_RETENTION,
        );
        assert_eq!(
            e,
            Err(SeedError::NoBackup {
                service: "p".into()
            })
        );
    }

    #[test]
    fn a_named_backup_must_exist_have_succeeded_and_be_within_retention() {
        let list = [
            backup("ok", BackupStatus::Succeeded, "2026-11-30T10:00:00Z"),
            backup("running", BackupStatus::Running, "2026-11-30T10:00:00Z"),
            backup("ancient", BackupStatus::Succeeded, "2026-11-01T10:00:00Z"),
        ];
        let pick = |id: &str| {
            choose(
                "p",
                &Seed::Backup(id.into()),
                &list,
                now(),
                DEFAULT_BINLOG_RETENTION,
            )
        };
        assert_eq!(pick("ok").unwrap().unwrap().id, "ok");
        assert!(matches!(pick("nope"), Err(SeedError::UnknownId { .. })));
        assert!(matches!(
            pick("running"),
            Err(SeedError::NotSucceeded { .. })
        ));
        assert!(matches!(
            pick("ancient"),
            Err(SeedError::TooOld { hours: 698, .. })
        ));
        // New backups are taken by apply: nothing to choose.
        assert_eq!(
            choose(
                "p",
                &Seed::NewBackup,
                &list,
                now(),
                DEFAULT_BINLOG_RETENTION
            ),
            Ok(None)
        );
    }
}
