//! Seeding a replica's data: the restore that copies a backup of its source onto it, and the
//! backup itself: one per (source, seed) shared by the replicas it seeds, new or chosen among
//! the existing ones (checked by the seed rule before anything is created), with the chosen
//! backup's id and GTID written into the restore and wiring lines.

use serde_json::{json, Value};

use super::super::{DiffOutput, Planned};
use super::{Ctx, Seeds};
use crate::plan::action::{ActionKind, Change, WireMode, KNOWN_AFTER_APPLY};
use crate::plan::seed::{self, SeedError, DEFAULT_BINLOG_RETENTION};
use crate::plan::PlanError;
use crate::topology::Seed;

/// The restore that seeds `r` from `src`'s backup: a seed for a service this plan creates (it
/// is empty), a wipe, with its reason, over one that holds data.
pub(super) fn restore(
    cx: &Ctx,
    r: &str,
    src: &str,
    reseed: Option<String>,
    seeded_ok: bool,
) -> Planned {
    let (fate_r, fate_s) = (cx.fate(r), cx.fate(src));
    // A replica that holds replicated data and is about to be overwritten from a source
    // that is new (hence empty) deserves a reason a reviewer cannot miss.
    let reason = reseed.or_else(|| {
        (seeded_ok && !fate_r.is_new() && fate_s.is_new()).then(|| {
            format!(
                "{} is {}: this replaces all data on {} with a copy of the new, empty {}",
                cx.name_of(src),
                if cx.deleted_outside(src) {
                    "re-created after it was deleted outside skyplan"
                } else {
                    "replaced"
                },
                cx.name_of(r),
                cx.name_of(src)
            )
        })
    });
    // A service this plan creates (or re-creates) is empty: the restore is its seed, not
    // a wipe. Over a service that holds data it is one, always with its reason.
    let (wipes, summary, reason) = if fate_r.is_new() {
        (
            false,
            format!(
                "seed     {} from backup.{src}   (a new service: nothing to overwrite)",
                cx.name_of(r)
            ),
            reason,
        )
    } else {
        let why = reason.unwrap_or_else(|| {
            format!(
                "{} holds data that skyplan never seeded from {} and has no link to keep: it is replaced by a copy of {}",
                cx.name_of(r),
                cx.name_of(src),
                cx.name_of(src)
            )
        });
        (
            true,
            format!(
                "restore  backup.{src} -> {}   (wipes all data on {})",
                cx.name_of(r),
                cx.name_of(r)
            ),
            Some(why),
        )
    };
    Planned {
        kind: ActionKind::Restore {
            source: src.to_string(),
            replica: r.to_string(),
        },
        change: Change::Create,
        summary,
        before: None,
        after: Some(json!({ "backup_of": cx.name_of(src), "target": cx.name_of(r) })),
        wipes_data: wipes,
        reason,
    }
}

/// One backup action per (source, seed), shared by the replicas it seeds. An existing backup
/// (`latest-backup`, `backup:<id>`) is chosen here when refresh listed the source's backups,
/// so a missing or unusable one stops the plan before anything is created.
pub(super) fn plan_backups(cx: &Ctx, seeds: Seeds, out: &mut DiffOutput) -> Result<(), PlanError> {
    let mut errors = Vec::new();
    for ((source, seed), replicas) in seeds {
        let seed = seed.0;
        let existing = matches!(seed, Seed::LatestBackup | Seed::Backup(_));
        let chosen = match cx.observed.at {
            Some(now) if existing && cx.observed.refreshed => {
                match choose_existing(cx, &source, &seed, now, out) {
                    Ok(b) => b,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
            _ => None,
        };
        let what = match (&seed, chosen) {
            (Seed::NewBackup | Seed::None, _) => format!("full, once, of {}", cx.name_of(&source)),
            (_, Some(b)) => format!(
                "existing backup {} of {}, taken {}, at GTID {}",
                b.id,
                if cx.observed.foreign_backups.contains_key(&b.id) {
                    format!("{} (foreign to {})", b.service_name, cx.name_of(&source))
                } else {
                    cx.name_of(&source)
                },
                b.end_time.as_deref().unwrap_or("(time unknown)"),
                b.binlog_gtid_position
                    .as_deref()
                    .map_or("(unknown)", crate::gtid::shown)
            ),
            (Seed::LatestBackup, None) => format!(
                "latest succeeded full backup of {} (known after apply)",
                cx.name_of(&source)
            ),
            (Seed::Backup(id), None) => format!("existing backup {id} of {}", cx.name_of(&source)),
        };
        // The restores and wirings of these replicas name the backup the plan chose.
        let id = match (&seed, chosen) {
            (_, Some(b)) => Some(b.id.clone()),
            (Seed::Backup(id), None) => Some(id.clone()),
            _ => None,
        };
        let gtid = chosen.and_then(|b| b.binlog_gtid_position.clone());
        name_the_backup(out, &source, &replicas, id.as_deref(), gtid.as_deref());
        out.actions.push(Planned {
            kind: ActionKind::Backup {
                source: source.clone(),
                seed: seed.clone(),
                replicas,
            },
            // An existing backup is used as it is: nothing is added.
            change: if existing {
                Change::Read
            } else {
                Change::Create
            },
            summary: format!("backup   {what}"),
            before: None,
            after: Some(json!({
                "source": cx.name_of(&source),
                "seed": seed.to_string(),
                "backup_id": match (&seed, chosen) {
                    (_, Some(b)) => json!(b.id),
                    (Seed::Backup(id), None) => json!(id),
                    _ => json!(KNOWN_AFTER_APPLY),
                },
                "gtid_position": chosen
                    .and_then(|b| b.binlog_gtid_position.clone())
                    .map_or(json!(KNOWN_AFTER_APPLY), |g| json!(g)),
            })),
            wipes_data: false,
            reason: matches!(seed, Seed::NewBackup | Seed::None)
                .then(|| previous_backup(cx, &source))
                .flatten(),
        });
    }
    match PlanError::combine(errors) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The existing backup a seed names (or the latest), checked by the seed rule; warnings
/// (another service's backup) go to the plan.
fn choose_existing<'a>(
    cx: &Ctx<'a>,
    source: &str,
    seed: &Seed,
    now: time::OffsetDateTime,
    out: &mut DiffOutput,
) -> Result<Option<&'a skyplan_api::types::Backup>, PlanError> {
    if cx.fate(source).is_new() {
        return Err(PlanError::from(SeedError::NewSource {
            service: source.to_string(),
            seed: seed.to_string(),
        }));
    }
    let listed = cx.observed.backups.get(source).map(Vec::as_slice);
    let foreign = match seed {
        Seed::Backup(id) => cx.observed.foreign_backups.get(id),
        _ => None,
    };
    let provider = cx
        .topology
        .services
        .get(source)
        .map_or("", |s| s.spec.provider.as_str());
    let src = seed::Source {
        key: source,
        provider,
    };
    // Whether the source still serves the backup is read from its binlogs; only
    // where they were not read (a source skyplan does not manage yet) the age.
    let holdings = cx
        .observed
        .gtids
        .get(source)
        .and_then(|g| g.holdings().ok());
    let chosen = seed::choose(
        src,
        seed,
        listed.unwrap_or(&[]),
        foreign,
        now,
        DEFAULT_BINLOG_RETENTION,
        holdings.as_ref(),
    )
    .and_then(|c| match c {
        Some(c) if c.foreign && cx.observed.foreign_owners_gone.contains(&c.backup.id) => {
            Err(SeedError::OwnerGone {
                id: c.backup.id.clone(),
                owner: if c.backup.service_name.is_empty() {
                    c.backup.service_id.clone()
                } else {
                    c.backup.service_name.clone()
                },
            })
        }
        c => Ok(c),
    });
    match chosen {
        Ok(c) => {
            if let Some(w) = c.and_then(|c| c.warning(source)) {
                out.warnings.push(w);
            }
            Ok(c.map(|c| c.backup))
        }
        Err(e) => Err(e.into()),
    }
}

/// Put the chosen backup's id into the restore lines of `replicas` (`backup.SOURCE` ->
/// `backup.SOURCE (ID)`), and its GTID into their wiring where the plan already printed it.
fn name_the_backup(
    out: &mut DiffOutput,
    source: &str,
    replicas: &[String],
    id: Option<&str>,
    gtid: Option<&str>,
) {
    for a in out.actions.iter_mut() {
        match &a.kind {
            ActionKind::Restore { replica, .. } if replicas.contains(replica) => {
                if let Some(id) = id {
                    a.summary = a.summary.replacen(
                        &format!("backup.{source}"),
                        &format!("backup.{source} ({id})"),
                        1,
                    );
                    if let Some(Value::Object(m)) = &mut a.after {
                        m.insert("backup_id".into(), json!(id));
                    }
                }
            }
            ActionKind::Replicate {
                replica,
                mode: WireMode::Fresh,
                ..
            } if replicas.contains(replica) => {
                if let Some(g) = gtid {
                    let shown = crate::gtid::shown(g);
                    a.summary = a.summary.replace(
                        &format!("the backup's GTID {KNOWN_AFTER_APPLY}"),
                        &format!("the backup's GTID {shown}"),
                    );
                    if let Some(Value::Object(m)) = &mut a.after {
                        if m.get("gtid").and_then(Value::as_str).is_some_and(|v| {
                            v.ends_with(KNOWN_AFTER_APPLY) && v.starts_with("the backup's")
                        }) {
                            m.insert("gtid".into(), json!(g));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// What a previous run left of a new backup of `source` for these replicas, said in the plan:
/// the backup step resumes one still running (or uses it if it succeeded) and takes a new one
/// if it failed, so the plan names both cases rather than let apply discover them.
fn previous_backup(cx: &Ctx, source: &str) -> Option<String> {
    let records = cx
        .state
        .resources
        .backups
        .values()
        .filter(|b| b.source == source);
    let mut failed = None;
    for b in records {
        if b.in_flight.is_some() {
            return Some(format!(
                "a previous run scheduled a backup of {} and stopped: it is used if it succeeded, waited for if it still runs, and a new one is taken if it failed",
                cx.name_of(source)
            ));
        }
        if b.status == Some(skyplan_api::types::BackupStatus::Failed) {
            failed = b.backup_id.clone();
        }
    }
    failed.map(|id| {
        format!(
            "retry: the previous backup {id} of {} failed",
            cx.name_of(source)
        )
    })
}

/// Seeds ordered for grouping (Seed itself has no Ord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeedKey(Seed);

impl From<&Seed> for SeedKey {
    fn from(s: &Seed) -> Self {
        SeedKey(s.clone())
    }
}
impl PartialOrd for SeedKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SeedKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.to_string().cmp(&other.0.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use skyplan_api::types::{Backup, BackupStatus};
    use time::format_description::well_known::Rfc3339;

    use super::super::super::fixtures::{guide_state, guide_topology, seen};
    use super::super::super::Fate;
    use super::*;
    use crate::observed::Observed;
    use crate::state::{InFlight, Operation};

    fn seeds(seed: &Seed, replicas: &[&str]) -> Seeds {
        Seeds::from([(
            ("primary".to_string(), SeedKey::from(seed)),
            replicas.iter().map(|r| r.to_string()).collect(),
        )])
    }

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::parse("2026-11-30T12:00:00Z", &Rfc3339).unwrap()
    }

    #[test]
    fn seeds_group_by_their_spelling() {
        let mut keys = [
            SeedKey::from(&Seed::NewBackup),
            SeedKey::from(&Seed::Backup("b-1".into())),
            SeedKey::from(&Seed::LatestBackup),
        ];
        keys.sort();
        let spelled: Vec<String> = keys.iter().map(|k| k.0.to_string()).collect();
        assert_eq!(spelled, ["backup:b-1", "latest-backup", "new-backup"]);
        assert_eq!(SeedKey::from(&Seed::None), SeedKey::from(&Seed::None));
    }

    #[test]
    fn one_new_backup_serves_every_replica_of_a_source() {
        let (t, s, o) = (guide_topology(), guide_state(), Observed::offline());
        let fates = BTreeMap::new();
        let mut out = DiffOutput::default();
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        plan_backups(
            &cx,
            seeds(&Seed::NewBackup, &["secondary", "third"]),
            &mut out,
        )
        .unwrap();
        let [a] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        assert_eq!(a.summary, "backup   full, once, of svc-primary");
        assert_eq!(a.change, Change::Create);
        assert!(matches!(&a.kind, ActionKind::Backup { replicas, .. } if replicas.len() == 2));
        assert_eq!(
            a.after.as_ref().unwrap()["backup_id"],
            json!(KNOWN_AFTER_APPLY)
        );
        assert_eq!(a.reason, None);
    }

    #[test]
    fn the_latest_backup_is_chosen_at_plan_time_and_named_in_the_restore() {
        let (t, s) = (guide_topology(), guide_state());
        let mut o = seen(&s);
        o.at = Some(now());
        o.backups.insert(
            "primary".into(),
            vec![Backup {
                id: "b-7".into(),
                status: BackupStatus::Succeeded,
                backup_type: "full".into(),
                end_time: Some("2026-11-30T09:00:00Z".into()),
                binlog_gtid_position: Some("0-1-7".into()),
                ..Backup::default()
            }],
        );
        let fates = BTreeMap::new();
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        let mut out = DiffOutput::default();
        out.actions.push(restore(
            &cx,
            "secondary",
            "primary",
            Some("asked".into()),
            true,
        ));
        plan_backups(&cx, seeds(&Seed::LatestBackup, &["secondary"]), &mut out).unwrap();
        assert_eq!(
            out.actions[0].summary,
            "restore  backup.primary (b-7) -> svc-secondary   (wipes all data on svc-secondary)"
        );
        assert_eq!(
            out.actions[0].after.as_ref().unwrap()["backup_id"],
            json!("b-7")
        );
        let b = &out.actions[1];
        assert_eq!(b.change, Change::Read, "an existing backup adds nothing");
        assert_eq!(
            b.summary,
            "backup   existing backup b-7 of svc-primary, taken 2026-11-30T09:00:00Z, at GTID 0-1-7"
        );
    }

    #[test]
    fn an_existing_backup_of_a_source_this_plan_creates_is_refused() {
        let (t, s) = (guide_topology(), guide_state());
        let mut o = seen(&s);
        o.at = Some(now());
        let fates = BTreeMap::from([("primary", Fate::Create)]);
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        let e = plan_backups(
            &cx,
            seeds(&Seed::LatestBackup, &["secondary"]),
            &mut DiffOutput::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("latest-backup"), "{e}");
    }

    #[test]
    fn a_previous_run_failed_backup_is_retried_and_a_running_one_resumed() {
        let (t, mut s, o) = (guide_topology(), guide_state(), Observed::offline());
        let fates = BTreeMap::new();
        assert_eq!(
            previous_backup(&Ctx::for_test(&t, &s, &o, &fates), "primary"),
            None
        );
        let rec = s.resources.backups.get_mut("secondary").unwrap();
        rec.status = Some(BackupStatus::Failed);
        assert_eq!(
            previous_backup(&Ctx::for_test(&t, &s, &o, &fates), "primary").as_deref(),
            Some("retry: the previous backup b-1 of svc-primary failed")
        );
        s.resources.backups.get_mut("secondary").unwrap().in_flight = Some(InFlight {
            operation: Operation::Backup,
            started_at: "2026-11-30T11:00:00Z".into(),
            operation_id: None,
        });
        let why = previous_backup(&Ctx::for_test(&t, &s, &o, &fates), "primary").unwrap();
        assert!(
            why.starts_with("a previous run scheduled a backup of svc-primary"),
            "{why}"
        );
    }

    #[test]
    fn a_restore_seeds_a_new_replica_and_wipes_one_that_holds_data() {
        let (t, s, o) = (guide_topology(), guide_state(), Observed::offline());
        let new = BTreeMap::from([("secondary", Fate::Create)]);
        let a = restore(
            &Ctx::for_test(&t, &s, &o, &new),
            "secondary",
            "primary",
            None,
            false,
        );
        assert!(!a.wipes_data);
        assert_eq!(
            a.summary,
            "seed     svc-secondary from backup.primary   (a new service: nothing to overwrite)"
        );
        // Over a replica that holds data, always with a reason; a new, empty source says so.
        let source_new = BTreeMap::from([("primary", Fate::Replace)]);
        let a = restore(
            &Ctx::for_test(&t, &s, &o, &source_new),
            "secondary",
            "primary",
            None,
            true,
        );
        assert!(a.wipes_data);
        assert_eq!(
            a.reason.as_deref(),
            Some("svc-primary is replaced: this replaces all data on svc-secondary with a copy of the new, empty svc-primary")
        );
        let keep = BTreeMap::new();
        let a = restore(
            &Ctx::for_test(&t, &s, &o, &keep),
            "secondary",
            "primary",
            None,
            false,
        );
        assert!(a.wipes_data);
        assert!(a
            .reason
            .unwrap()
            .contains("holds data that skyplan never seeded"));
    }

    #[test]
    fn the_chosen_gtid_replaces_the_unknown_one_in_a_fresh_wiring() {
        let mut out = DiffOutput::default();
        out.actions.push(Planned {
            kind: ActionKind::Replicate {
                source: "primary".into(),
                replica: "secondary".into(),
                ssl: true,
                mode: WireMode::Fresh,
            },
            change: Change::Create,
            summary: format!("wire     p -> s at the backup's GTID {KNOWN_AFTER_APPLY}"),
            before: None,
            after: Some(json!({ "gtid": format!("the backup's GTID {KNOWN_AFTER_APPLY}") })),
            wipes_data: false,
            reason: None,
        });
        name_the_backup(
            &mut out,
            "primary",
            &["other".into()],
            Some("b-7"),
            Some("0-1-7"),
        );
        assert!(
            out.actions[0].summary.ends_with(KNOWN_AFTER_APPLY),
            "not its replica"
        );
        name_the_backup(
            &mut out,
            "primary",
            &["secondary".into()],
            Some("b-7"),
            Some("0-1-7"),
        );
        assert_eq!(
            out.actions[0].summary,
            "wire     p -> s at the backup's GTID 0-1-7"
        );
        assert_eq!(
            out.actions[0].after.as_ref().unwrap()["gtid"],
            json!("0-1-7")
        );
    }
}
