//! The last-copy rule in the pure core (issue 23): no plan discards transactions that no other
//! surviving service holds unless `--allow-data-loss` is given, and then it lists them first;
//! plans never delete what they keep; a damaged state plans nothing.

use crate::support::fixtures::{applied, build as plan_of, build_allowing_loss, example, in_sync};
use skyplan::gtid::ObservedGtids;
use skyplan::plan::{render, PlanError};
use skyplan::state::{RoleChange, RoleChangeStep};

fn gtids(binlog: &str) -> ObservedGtids {
    ObservedGtids {
        binlog_state: binlog.into(),
        current_pos: String::new(),
        slave_pos: String::new(),
        binlog_start: Some([(1, 0), (2, 0)].into_iter().collect()),
    }
}

/// A switchover to the secondary stopped right after its opening, as apply records it: the
/// secondary's link, backup and restore forgotten, the role change open. Refresh saw it so.
fn opened() -> (skyplan::state::State, skyplan::observed::Observed) {
    let mut s = applied(&example("global-replication.toml"));
    s.resources.replications.remove("secondary");
    s.resources.backups.remove("secondary");
    s.resources.restores.remove("secondary");
    s.resources
        .services
        .get_mut("secondary")
        .unwrap()
        .role_change = Some(RoleChange {
        from: "primary".into(),
        step: RoleChangeStep::Opened,
        started_at: "2026-12-07T05:00:00Z".into(),
    });
    let mut o = in_sync(&s);
    o.replication.remove("secondary");
    (s, o)
}

/// A switchover failed after the opening: the secondary is the primary and took 1,095 writes,
/// the old primary is fenced. The operator reverts the file. Before, the plan opened the old
/// primary and restored the secondary from it (1,095 acknowledged writes lost, exit 0). Now
/// the plan refuses and names the secondary's writes.
#[test]
fn a_flip_back_over_writes_only_the_new_primary_has_is_refused_naming_them() {
    let (s, mut o) = opened();
    o.gtids.insert("primary".into(), gtids("1-1001-40"));
    o.gtids
        .insert("secondary".into(), gtids("1-1001-40,2-2002-1095"));
    o.read_only.insert("primary".into(), true);
    o.read_only.insert("secondary".into(), false);
    let reverted = example("global-replication.toml");
    let e = plan_of(&reverted, &s, &o).unwrap_err();
    assert!(
        matches!(e, PlanError::RevertedPastTheOpening { .. })
            && e.to_string().contains(
                "service.secondary holds 2-2002-1..2-2002-1095 (1095 transactions) that no other surviving service has; restore.secondary discards them"
            )
            && e.to_string().contains("Put the file back and apply"),
        "{e}"
    );
    // With consent, the plan lists them first.
    let p = build_allowing_loss(&reverted, &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(
        p.warnings[0].contains(
            "DATA LOSS (--allow-data-loss): service.secondary holds 2-2002-1..2-2002-1095"
        ),
        "{text}"
    );
}

/// A replica's re-seed whose data its source has discards nothing: no consent needed.
#[test]
fn a_reseed_of_a_replica_its_source_covers_needs_no_consent() {
    let s = applied(&example("global-replication.toml"));
    let mut o = in_sync(&s);
    o.gtids.insert("primary".into(), gtids("1-1001-40"));
    o.gtids.insert("secondary".into(), gtids("1-1001-38"));
    let p = skyplan::plan::build(&skyplan::plan::PlanInput {
        topology: &example("global-replication.toml"),
        topology_sha256: "0000",
        state: &s,
        observed: &o,
        flags: skyplan::plan::PlanFlags {
            replace: vec!["service.secondary".into()],
            ..Default::default()
        },
    })
    .unwrap();
    assert!(p.action("restore.secondary").is_some());
    assert!(!p.warnings.iter().any(|w| w.contains("DATA LOSS")));
}

/// A record without an id is damage, not a service to create: nothing is planned.
#[test]
fn a_state_record_without_an_id_is_refused_as_damaged() {
    let mut s = applied(&example("global-replication.toml"));
    s.resources.services.get_mut("secondary").unwrap().id = String::new();
    let o = in_sync(&s);
    let e = plan_of(&example("global-replication.toml"), &s, &o).unwrap_err();
    assert!(
        matches!(e, PlanError::DamagedState { ref key } if key == "secondary"),
        "{e}"
    );
}

/// Issue 23: a state that lost its records (`"resources": {}` after it had recorded
/// services) while the workspace's tagged services exist is refused as damaged, naming them;
/// before, the plan adopted them as new and re-seeded the healthy replica. A state never
/// written (the first apply's create interrupted before it was recorded) adopts its own
/// tagged service as before, and a service tagged by another workspace is never ours.
#[test]
fn a_state_that_lost_every_record_is_refused_while_its_tagged_services_exist() {
    let t = example("global-replication.toml");
    let full = applied(&t);
    let tagged = |key: &str, lineage: &str| {
        let mut r = skyplan::observed::RemoteService::as_recorded(&full.resources.services[key]);
        r.tags = skyplan::ownership::tags(&Default::default(), lineage, key);
        r
    };
    let mut emptied = full.clone();
    emptied.resources = Default::default();
    let mut o = in_sync(&emptied);
    for key in ["primary", "secondary"] {
        o.unmanaged
            .insert(key.into(), vec![tagged(key, &full.lineage)]);
    }
    let e = plan_of(&t, &emptied, &o).unwrap_err();
    assert!(
        matches!(e, PlanError::RecordsLost { ref services, .. } if services.len() == 2)
            && e.to_string()
                .contains("service.secondary: skysql-secondary (dbpgf")
            && e.to_string().contains("skyplan import"),
        "{e}"
    );
    // With --allow-data-loss too: this is no loss to consent to, but a state to mend.
    assert!(build_allowing_loss(&t, &emptied, &o).is_err());

    // Never written beyond its creation (serial 0, or 1: the first apply stores the new
    // state before its first create): the interrupted first create is adopted.
    for serial in [0, 1] {
        let mut fresh = emptied.clone();
        fresh.serial = serial;
        let p = plan_of(&t, &fresh, &o).unwrap();
        assert!(p.action("service.primary").is_some());
    }

    // Tagged by another workspace: not this state's records, so not a damaged state (the
    // adoption is refused for its own reason).
    let mut theirs = in_sync(&emptied);
    theirs
        .unmanaged
        .insert("primary".into(), vec![tagged("primary", "another-lineage")]);
    let e = plan_of(&t, &emptied, &theirs).unwrap_err();
    assert!(!matches!(e, PlanError::RecordsLost { .. }), "{e}");
}

/// The state of a switchover killed after the opening, the old primary already following the
/// new one: the secondary writable with writes of its own, the primary fenced and replicating
/// from it. `healthy` says whether the primary's link runs without an error.
fn opened_with_old_primary_following(
    healthy: bool,
) -> (skyplan::state::State, skyplan::observed::Observed) {
    let (s, mut o) = opened();
    let new = &s.resources.services["secondary"];
    o.replication.insert(
        "primary".into(),
        skyplan::observed::ObservedReplication {
            configured: true,
            io_running: healthy,
            sql_running: true,
            master_host: new.fqdn.clone(),
            master_port: new.port,
            seconds_behind_master: Some(0),
            last_io_errno: if healthy { 0 } else { 1045 },
            last_io_error: if healthy {
                String::new()
            } else {
                "Access denied".into()
            },
            ..Default::default()
        },
    );
    // The primary has received the secondary's writes; it is applying the last of them.
    o.gtids
        .insert("primary".into(), gtids("1-1001-40,2-2002-3"));
    o.gtids
        .insert("secondary".into(), gtids("1-1001-40,2-2002-5"));
    o.read_only.insert("primary".into(), true);
    o.read_only.insert("secondary".into(), false);
    (s, o)
}

/// The file put back after a switchover killed once the old primary followed the new one:
/// the link it has is kept (observed beats recorded), so the flip-back is a switchover back
/// by GTID — the primary catches up on the secondary's writes before it opens — not a copy of
/// the primary over the secondary, which would discard those writes (refused) or, with none,
/// open the primary while the secondary still took writes.
#[test]
fn a_flip_back_once_the_old_primary_follows_is_a_switchover_back_with_no_copy() {
    let (s, o) = opened_with_old_primary_following(true);
    let reverted = example("global-replication.toml");
    let p = plan_of(&reverted, &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(p.action("switchover.primary").is_some(), "{text}");
    assert!(
        text.contains("switch   primary skysql-secondary -> skysql-primary (no data copied)")
            && text.contains("replication.primary  link kept")
            && !text.contains("restore")
            && !text.contains("wipes"),
        "{text}"
    );
    // An unhealthy link proves nothing: the secondary's writes exist only there, and the
    // copy that would discard them is refused as before.
    let (s, o) = opened_with_old_primary_following(false);
    let e = plan_of(&reverted, &s, &o).unwrap_err();
    assert!(matches!(e, PlanError::RevertedPastTheOpening { .. }), "{e}");
}

/// The kept link of an interrupted switchover's old primary owns the account the killed run
/// granted for it (recorded), even before that grant reached the root refresh read the users
/// on: the switchover back then drops it once the link is forgotten. Before, the account was
/// found only among the users read, so a grant still in the old primary's relay log left the
/// link without one and the account an orphan after the switchover back (seen in CI).
#[test]
fn a_kept_link_owns_the_account_its_run_recorded() {
    let (mut s, mut o) = opened_with_old_primary_following(true);
    let account = "skysql_replication_old@127.0.1.2".to_string();
    s.resources.replication_users.insert(
        account.clone(),
        skyplan::state::ReplicationUserRecord {
            on: "secondary".into(),
            replica: "primary".into(),
        },
    );
    o.replication.get_mut("primary").unwrap().master_user = Some("skysql_replication_old".into());
    o.replication_users.clear();
    let kept = skyplan::plan::drift::kept_links(&example("global-replication.toml"), &s, &o);
    let [k] = kept.as_slice() else {
        panic!("{kept:?}")
    };
    assert_eq!(
        (k.key.as_str(), k.link.source.as_str()),
        ("primary", "secondary")
    );
    assert_eq!(k.link.replication_user.as_deref(), Some(account.as_str()));
}

/// A switchover to the secondary recorded at its fencing step (the secondary's link still
/// recorded), refresh seeing everything as recorded.
fn fencing() -> (skyplan::state::State, skyplan::observed::Observed) {
    let mut s = applied(&example("global-replication.toml"));
    s.resources
        .services
        .get_mut("secondary")
        .unwrap()
        .role_change = Some(RoleChange {
        from: "primary".into(),
        step: RoleChangeStep::Fencing,
        started_at: "2026-12-07T05:00:00Z".into(),
    });
    let o = in_sync(&s);
    (s, o)
}

/// A switchover killed between the candidate's promotion and the state's record of it: the
/// state says "fencing", refresh sees the candidate no longer replicating and open for writes.
/// Observed beats recorded: the opening is recorded, so a file put back is refused (it would
/// open the old primary beside the candidate) rather than planned as an un-fencing.
#[test]
fn a_promotion_the_state_missed_is_recorded_and_a_file_put_back_refused() {
    let (s, mut o) = fencing();
    o.replication.insert("secondary".into(), Default::default());
    o.gtids.insert("primary".into(), gtids("1-1001-40"));
    o.gtids
        .insert("secondary".into(), gtids("1-1001-40,2-2002-3"));
    o.read_only.insert("primary".into(), true);
    o.read_only.insert("secondary".into(), false);
    let reverted = example("global-replication.toml");
    let e = plan_of(&reverted, &s, &o).unwrap_err();
    assert!(
        matches!(e, PlanError::RevertedPastTheOpening { .. })
            && e.to_string()
                .contains("service.secondary holds 2-2002-1..2-2002-3"),
        "{e}"
    );
    // The switched file finishes it: the old primary follows by GTID, no copy.
    let mut switched = reverted.clone();
    let link = switched
        .services
        .get_mut("secondary")
        .unwrap()
        .replication
        .take()
        .unwrap();
    switched.services.get_mut("primary").unwrap().replication =
        Some(skyplan::topology::Replication {
            from: "secondary".into(),
            ..link
        });
    let p = plan_of(&switched, &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(
        text.contains("got past its opening") && !text.contains("restore"),
        "{text}"
    );
}

/// A switchover killed before the opening, the file put back: nothing to resume. It is
/// abandoned (said once), the old primary's fence lifted, and nothing else planned.
#[test]
fn a_switchover_killed_before_the_opening_and_put_back_is_abandoned() {
    let (s, mut o) = fencing();
    o.read_only.insert("primary".into(), true);
    o.read_only.insert("secondary".into(), true);
    let p = plan_of(&example("global-replication.toml"), &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(
        text.contains("abandoned")
            && text.contains("open     skysql-primary for writes")
            && !text.contains("restore")
            && !text.contains("switch "),
        "{text}"
    );
}
