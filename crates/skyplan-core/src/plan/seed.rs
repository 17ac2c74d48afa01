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
    #[error("backup {id} was not found: it is neither a backup of service.{service} nor any other backup this API key can list (GET /skybackup/v1/backups); use seed = \"latest-backup\" or \"new-backup\"")]
    UnknownId { id: String, service: String },
    #[error("backup {id} is a backup of service {owner}, which no longer exists: a replica restored from it accepts only {owner}'s credentials, which can no longer be read; use seed = \"new-backup\"")]
    OwnerGone { id: String, owner: String },
    #[error("backup {id} is at GTID {gtid}, but service.{service}'s binlogs no longer reach it (they begin after {domain}-…-{starts_after} in domain {domain}; the backup is at {at}): a replica restored from it could not catch up (error 1236); use seed = \"new-backup\"")]
    Purged {
        id: String,
        gtid: String,
        service: String,
        domain: u32,
        at: u64,
        starts_after: u64,
    },
    #[error("backup {id} is at GTID {gtid}, which holds transactions service.{service} does not have ({extra}): it is not service.{service}'s history, so a replica restored from it could not follow it; use seed = \"new-backup\"")]
    NotItsHistory {
        id: String,
        gtid: String,
        service: String,
        extra: String,
    },
    #[error("backup {id} is at GTID {gtid}, and whether service.{service}'s binlogs still reach it could not be read ({why}); use seed = \"new-backup\", or plan again when service.{service} answers")]
    ReachUnknown {
        id: String,
        gtid: String,
        service: String,
        why: String,
    },
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
    #[error("backup {id} belongs to service {owner} on {backup_provider}, but service.{service} is on {provider}: a backup can only be restored on the provider that took it; use seed = \"new-backup\"")]
    ForeignProvider {
        id: String,
        owner: String,
        backup_provider: String,
        service: String,
        provider: String,
    },
}

/// The source a replica is seeded from, as far as choosing a backup needs it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Its topology key.
    pub key: &'a str,
    /// Its cloud provider (`aws`, `gcp`, …): a backup of another service is usable only there.
    pub provider: &'a str,
}

/// The backup chosen to seed a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen<'a> {
    pub backup: &'a Backup,
    /// It is a backup of another service (`backup:<id>` naming one), not of the source: the
    /// restored replica then replicates from the source starting at that backup's GTID
    /// position, which only works when the source's binlogs hold that history. Worth a warning.
    pub foreign: bool,
}

impl Chosen<'_> {
    /// The plan's warning for a foreign backup, `None` for the source's own.
    pub fn warning(&self, source: &str) -> Option<String> {
        let b = self.backup;
        self.foreign.then(|| {
            let owner = if b.service_name.is_empty() {
                &b.service_id
            } else {
                &b.service_name
            };
            format!(
                "backup {} is a backup of service {owner}, not of service.{source}: the replica \
                 restored from it replicates from service.{source} starting at GTID {}, which \
                 works only if service.{source} shares that history and still holds it in its binlogs",
                b.id,
                b.binlog_gtid_position
                    .as_deref()
                    .map_or("(unknown)", crate::gtid::shown)
            )
        })
    }
}

/// The backup `seed` names among `backups` (the source's, as listed at `now`), or, for a
/// `backup:<id>` that is not one of them, `foreign` (the backup of that id found elsewhere, on
/// the source's provider). With the source's `holdings` read, it must be within what the
/// source still serves ([`check_reach`]: the binlogs decide); without them, within
/// `retention` of `now` (the backup's age is all there is to go by).
pub fn choose<'a>(
    source: Source<'_>,
    seed: &Seed,
    backups: &'a [Backup],
    foreign: Option<&'a Backup>,
    now: OffsetDateTime,
    retention: Duration,
    holdings: Option<&crate::gtid::Holdings>,
) -> Result<Option<Chosen<'a>>, SeedError> {
    let key = source.key;
    let mut is_foreign = false;
    let chosen = match seed {
        Seed::NewBackup | Seed::None => return Ok(None),
        Seed::LatestBackup => backups
            .iter()
            .filter(|b| b.is_succeeded())
            .filter(|b| b.backup_type.is_empty() || b.backup_type.eq_ignore_ascii_case("full"))
            .max_by(|a, b| a.end_time.cmp(&b.end_time))
            .ok_or_else(|| SeedError::NoBackup {
                service: key.to_string(),
            })?,
        Seed::Backup(id) => {
            let b = match backups.iter().find(|b| &b.id == id) {
                Some(b) => b,
                None => {
                    let b =
                        foreign
                            .filter(|b| &b.id == id)
                            .ok_or_else(|| SeedError::UnknownId {
                                id: id.clone(),
                                service: key.to_string(),
                            })?;
                    check_provider(b, source)?;
                    is_foreign = true;
                    b
                }
            };
            if !b.is_succeeded() {
                return Err(SeedError::NotSucceeded {
                    id: id.clone(),
                    service: key.to_string(),
                    status: b.status.to_string(),
                });
            }
            b
        }
    };
    match holdings {
        Some(h) => check_reach(chosen, key, h)?,
        None => check_age(chosen, now, retention)?,
    }
    Ok(Some(Chosen {
        backup: chosen,
        foreign: is_foreign,
    }))
}

/// A backup can be restored only on the provider that took it (SkySQL refuses otherwise). One
/// whose provider the API does not report cannot be proven usable, so it is refused too.
fn check_provider(b: &Backup, source: Source<'_>) -> Result<(), SeedError> {
    let theirs = b.cloud_provider.as_deref().unwrap_or("");
    if theirs.is_empty() || !theirs.eq_ignore_ascii_case(source.provider) {
        return Err(SeedError::ForeignProvider {
            id: b.id.clone(),
            owner: b.service_id.clone(),
            backup_provider: if theirs.is_empty() {
                "an unreported provider".to_string()
            } else {
                theirs.to_string()
            },
            service: source.key.to_string(),
            provider: source.provider.to_string(),
        });
    }
    Ok(())
}

/// Whether the source can serve a replica restored from `b`: the backup's GTID position is in
/// the source's history (`has`), and the source's binlogs still hold what follows it
/// (`serves`). This is the rule, not the backup's age: a backup of any age is good while the
/// binlogs reach it, and a day-old one is not once they were purged past it. `Ok` for a
/// backup with no GTID (the source had no transaction: it serves everything from the start).
pub fn check_reach(
    b: &Backup,
    service: &str,
    source: &crate::gtid::Holdings,
) -> Result<(), SeedError> {
    let gtid = b.binlog_gtid_position.clone().unwrap_or_default();
    if gtid.trim().is_empty() {
        return Ok(());
    }
    let unknown = |why: String| SeedError::ReachUnknown {
        id: b.id.clone(),
        gtid: gtid.clone(),
        service: service.to_string(),
        why,
    };
    let at = crate::gtid::GtidSet::parse(&gtid).map_err(|e| unknown(e.to_string()))?;
    let restored = crate::gtid::Holdings {
        has: at,
        serves_after: None,
    };
    match crate::gtid::can_follow(&restored, source, &[]) {
        Ok(()) => Ok(()),
        Err(crate::gtid::Unsafe::Errant(extra)) => Err(SeedError::NotItsHistory {
            id: b.id.clone(),
            gtid: gtid.clone(),
            service: service.to_string(),
            extra: extra
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
        Err(crate::gtid::Unsafe::Purged {
            domain,
            at,
            starts_after,
        }) => Err(SeedError::Purged {
            id: b.id.clone(),
            gtid: gtid.clone(),
            service: service.to_string(),
            domain,
            at,
            starts_after,
        }),
        Err(crate::gtid::Unsafe::Unknown(why)) => Err(unknown(why)),
    }
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

    #[test]
    fn a_seed_is_good_while_the_sources_binlogs_reach_it_whatever_its_age() {
        let at = |g: &str| Backup {
            id: "b1".into(),
            binlog_gtid_position: Some(g.into()),
            ..Default::default()
        };
        let source = |has: &str, starts_after: u64| crate::gtid::Holdings {
            has: crate::gtid::GtidSet::parse(has).unwrap(),
            serves_after: Some([(1, starts_after)].into()),
        };
        // The binlogs begin after 1-1-40: a backup at 50 is served, one at 30 is not.
        assert_eq!(
            check_reach(&at("1-1-50"), "primary", &source("1-1-90", 40)),
            Ok(())
        );
        let e = check_reach(&at("1-1-30"), "primary", &source("1-1-90", 40)).unwrap_err();
        assert!(
            matches!(
                e,
                SeedError::Purged {
                    at: 30,
                    starts_after: 40,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("binlogs no longer reach it"), "{e}");
        // Not its history: the backup holds a stream the source never had.
        let e = check_reach(&at("1-1-50,7-7-3"), "primary", &source("1-1-90", 0)).unwrap_err();
        assert!(matches!(e, SeedError::NotItsHistory { .. }), "{e}");
        // A backup of an empty source needs nothing from the binlogs.
        assert_eq!(
            check_reach(&at(""), "primary", &source("1-1-90", 40)),
            Ok(())
        );
        // Where the binlogs begin not readable: said, never passed.
        let unread = crate::gtid::Holdings {
            serves_after: None,
            ..source("1-1-90", 40)
        };
        assert!(matches!(
            check_reach(&at("1-1-50"), "primary", &unread),
            Err(SeedError::ReachUnknown { .. })
        ));
    }

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

    const SRC: Source<'static> = Source {
        key: "p",
        provider: "gcp",
    };

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
            SRC,
            &Seed::LatestBackup,
            &list,
            None,
            now(),
            DEFAULT_BINLOG_RETENTION,
            None,
        );
        assert_eq!(c.unwrap().unwrap().backup.id, "new");
        let e = choose(
            SRC,
            &Seed::LatestBackup,
            &list[2..3],
            None,
            now(),
            DEFAULT_BINLOG_RETENTION,
            None,
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
                SRC,
                &Seed::Backup(id.into()),
                &list,
                None,
                now(),
                DEFAULT_BINLOG_RETENTION,
                None,
            )
        };
        assert_eq!(pick("ok").unwrap().unwrap().backup.id, "ok");
        assert!(!pick("ok").unwrap().unwrap().foreign);
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
                SRC,
                &Seed::NewBackup,
                &list,
                None,
                now(),
                DEFAULT_BINLOG_RETENTION,
                None
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_foreign_backup_is_accepted_on_the_same_provider_with_a_warning() {
        let own = [backup(
            "mine",
            BackupStatus::Succeeded,
            "2026-11-30T10:00:00Z",
        )];
        let theirs = |provider: Option<&str>, status| Backup {
            service_id: "dbother".into(),
            service_name: "old-primary".into(),
            cloud_provider: provider.map(str::to_string),
            ..backup("theirs", status, "2026-11-30T11:00:00Z")
        };
        let pick = |f: &Backup| {
            choose(
                SRC,
                &Seed::Backup("theirs".into()),
                &own,
                Some(f),
                now(),
                DEFAULT_BINLOG_RETENTION,
                None,
            )
            .map(|c| c.map(|c| (c.backup.id.clone(), c.foreign, c.warning("p"))))
        };
        let (id, foreign, warning) = pick(&theirs(Some("GCP"), BackupStatus::Succeeded))
            .unwrap()
            .unwrap();
        assert_eq!((id.as_str(), foreign), ("theirs", true));
        let warning = warning.unwrap();
        assert!(
            warning.contains("backup theirs is a backup of service old-primary, not of service.p"),
            "{warning}"
        );
        assert!(warning.contains("GTID 0-1-5"), "{warning}");
        assert!(matches!(
            pick(&theirs(Some("aws"), BackupStatus::Succeeded)),
            Err(SeedError::ForeignProvider { .. })
        ));
        assert!(matches!(
            pick(&theirs(None, BackupStatus::Succeeded)),
            Err(SeedError::ForeignProvider { .. })
        ));
        assert!(matches!(
            pick(&theirs(Some("gcp"), BackupStatus::Failed)),
            Err(SeedError::NotSucceeded { .. })
        ));
        // latest-backup never picks another service's backup.
        let same_provider = theirs(Some("gcp"), BackupStatus::Succeeded);
        let c = choose(
            SRC,
            &Seed::LatestBackup,
            &own,
            Some(&same_provider),
            now(),
            DEFAULT_BINLOG_RETENTION,
            None,
        );
        assert_eq!(c.unwrap().unwrap().backup.id, "mine");
        // A foreign backup of another id does not stand in for the one named.
        assert!(matches!(
            choose(
                SRC,
                &Seed::Backup("nope".into()),
                &own,
                Some(&theirs(Some("gcp"), BackupStatus::Succeeded)),
                now(),
                DEFAULT_BINLOG_RETENTION,
                None,
            ),
            Err(SeedError::UnknownId { .. })
        ));
    }
}
