//! Roles in the pure core: a change of which service is the primary is one switchover action
//! (marker `<>`), never a backup and restore; the other replicas follow by GTID after it; a
//! gone primary, an old primary that does not follow the new one, an unhealthy candidate and a
//! missing privilege are refused at plan time.

use crate::support::fixtures::{applied, build as plan_of, example, in_sync, topology};
use skyplan::gtid::ObservedGtids;
use skyplan::observed::{Observed, ObservedService};
use skyplan::plan::{render, ActionKind, PlanError, WireMode};
use skyplan::state::State;
use skyplan::topology::Topology;

const GUIDE: &str = include_str!("../../examples/global-replication.toml");
const FAN_OUT: &str = include_str!("../../examples/fan-out.toml");

fn switched_pair() -> Topology {
    let start = GUIDE.find("[services.secondary.replication]").unwrap();
    topology(&format!(
        "{}[services.primary.replication]\nfrom = \"secondary\"\nseed = \"new-backup\"\n",
        &GUIDE[..start]
    ))
}

fn observed(s: &State) -> Observed {
    let mut o = in_sync(s);
    for key in s.resources.services.keys() {
        o.gtids.insert(
            key.clone(),
            ObservedGtids {
                binlog_state: "1-1001-40".into(),
                current_pos: "1-1001-40".into(),
                slave_pos: String::new(),
                binlog_start: Some([(1, 0)].into_iter().collect()),
            },
        );
    }
    o
}

#[test]
fn turning_a_pair_round_is_one_switchover_and_never_a_restore() {
    let s = applied(&example("global-replication.toml"));
    let p = plan_of(&switched_pair(), &s, &observed(&s)).unwrap();
    let text = render::render(&p, false);
    insta::assert_snapshot!(
        "markdown_switchover",
        crate::support::fixtures::markdown(&p, &switched_pair(), &s)
    );
    assert!(
        text.contains(" <> switchover.secondary")
            && text
                .contains("switch   primary skysql-primary -> skysql-secondary (no data copied)")
            && text.contains("3. fence skysql-primary")
            && text.contains("2. check by GTID: once caught up, skysql-secondary has 1-1001-40 and its binlogs hold domain 1 from its start, so skysql-primary (at 1-1001-40) can follow")
            && text.contains("(now 1-1001-40)")
            && text.contains("rollback: if a step fails before skysql-secondary is open"),
        "{text}"
    );
    assert_eq!(p.summary.wipes_data, 0, "{text}");
    assert!(
        p.actions.iter().all(|a| !matches!(
            a.kind,
            ActionKind::Backup { .. }
                | ActionKind::Restore { .. }
                | ActionKind::StopReplication { .. }
                | ActionKind::Replicate { .. }
        )),
        "{text}"
    );
    // The old primary's IPs are allowed on the new one before; the candidate's entry on the
    // old primary is revoked after.
    let id = |addr: &str| {
        p.action(addr)
            .unwrap_or_else(|| panic!("{addr} in {text}"))
            .id
    };
    let sw = p.action("switchover.secondary").unwrap();
    assert!(sw.depends_on.contains(&id("allowlist.secondary.primary")));
    let revoke = p.action("allowlist.primary.secondary").unwrap();
    assert!(revoke.depends_on.contains(&sw.id), "{text}");
}

#[test]
fn other_replicas_follow_the_new_primary_by_gtid_after_the_switchover() {
    let s = applied(&example("fan-out.toml"));
    let block = "[services.europe.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n";
    let t = topology(
        &(FAN_OUT
            .replace(block, "")
            .replace("from = \"primary\"", "from = \"europe\"")
            + "\n[services.primary.replication]\nfrom = \"europe\"\nseed = \"new-backup\"\n"),
    );
    let p = plan_of(&t, &s, &observed(&s)).unwrap();
    let text = render::render(&p, false);
    let sw = p.action("switchover.europe").expect("a switchover");
    for r in ["asia", "oregon"] {
        let a = p.action(&format!("replication.{r}")).unwrap();
        assert!(
            matches!(
                a.kind,
                ActionKind::Replicate {
                    mode: WireMode::Repoint,
                    ..
                }
            ),
            "{text}"
        );
        assert!(a.depends_on.contains(&sw.id), "{text}");
    }
    assert_eq!(p.summary.wipes_data, 0, "{text}");
}

#[test]
fn impossible_switchovers_are_refused_at_plan_time() {
    let s = applied(&example("global-replication.toml"));
    let t = switched_pair();
    // The primary is gone: that is a failover.
    let mut o = observed(&s);
    o.services.insert(
        "primary".into(),
        ObservedService::Missing {
            id: s.resources.services["primary"].id.clone(),
        },
    );
    let e = plan_of(&t, &s, &o).unwrap_err();
    assert!(matches!(e, PlanError::Failover { .. }), "{e}");
    assert!(e.to_string().contains("failover"), "{e}");
    // The candidate does not replicate.
    let mut o = observed(&s);
    o.replication.get_mut("secondary").unwrap().sql_running = false;
    let e = plan_of(&t, &s, &o).unwrap_err();
    assert!(matches!(e, PlanError::CandidateUnhealthy { .. }), "{e}");
    // No privilege to fence.
    let mut o = observed(&s);
    o.can_fence.insert("primary".into(), false);
    let e = plan_of(&t, &s, &o).unwrap_err();
    assert!(e.to_string().contains("READ_ONLY ADMIN"), "{e}");
    // The old primary must follow the new one.
    let start = GUIDE.find("[services.secondary.replication]").unwrap();
    let t = topology(&format!(
        "{}[services.primary.replication]\nfrom = \"third\"\n\n[services.third]\nname = \"skysql-third\"\nregion = \"europe-west1\"\n",
        &GUIDE[..start]
    ));
    let e = plan_of(&t, &s, &observed(&s)).unwrap_err();
    assert!(matches!(e, PlanError::SwitchoverShape { .. }), "{e}");
}

#[test]
fn a_replica_made_standalone_is_opened_only_after_its_replication_stops() {
    let s = applied(&example("global-replication.toml"));
    let start = GUIDE.find("[services.secondary.replication]").unwrap();
    let t = topology(&GUIDE[..start]);
    let mut o = observed(&s);
    o.read_only.insert("secondary".into(), true);
    o.read_only.insert("primary".into(), false);
    let p = plan_of(&t, &s, &o).unwrap();
    let text = render::render(&p, false);
    let stop = p.action("replication.secondary").expect(&text);
    assert!(
        matches!(stop.kind, ActionKind::StopReplication { .. }),
        "{text}"
    );
    let open = p.action("role.secondary").expect(&text);
    assert!(
        matches!(open.kind, ActionKind::SetRole { writable: true, .. }),
        "{text}"
    );
    assert!(open.depends_on.contains(&stop.id), "{text}");
}

/// Issue 22: a switchover that could not finish without a copy is refused at plan time, before
/// anything is fenced: here the candidate was restored from a backup taken after the point a
/// sibling has reached, so its binlogs cannot serve that sibling.
#[test]
fn a_switchover_a_sibling_could_not_follow_is_refused_before_anything_is_fenced() {
    let s = applied(&example("fan-out.toml"));
    let block = "[services.europe.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n";
    let t = topology(
        &(FAN_OUT
            .replace(block, "")
            .replace("from = \"primary\"", "from = \"europe\"")
            + "\n[services.primary.replication]\nfrom = \"europe\"\nseed = \"new-backup\"\n"),
    );
    let gtids = |binlog: &str, slave: &str, start: &[(u32, u64)]| ObservedGtids {
        binlog_state: binlog.into(),
        current_pos: binlog.into(),
        slave_pos: slave.into(),
        binlog_start: Some(start.iter().copied().collect()),
    };
    let mut o = observed(&s);
    o.gtids
        .insert("primary".into(), gtids("1-1001-900", "", &[(1, 0)]));
    // Restored at 1-1001-500, then replicated up to 880 (its binlogs hold 501..880).
    o.gtids.insert(
        "europe".into(),
        gtids("1-1001-880", "1-1001-880", &[(1, 500)]),
    );
    o.gtids
        .insert("asia".into(), gtids("1-1001-900", "1-1001-900", &[(1, 0)]));
    // Far behind: it needs 401..500, which europe never binlogged.
    o.gtids.insert(
        "oregon".into(),
        gtids("1-1001-400", "1-1001-400", &[(1, 0)]),
    );
    let e = plan_of(&t, &s, &o).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PlanError::SwitchoverNeedsCopy { .. }), "{text}");
    assert!(
        text.contains("service.oregon could not follow it")
            && text.contains("begin after sequence 500 in domain 1")
            && text.contains("up to 400"),
        "{text}"
    );
    // Caught up past the restore point, it can: the plan shows what it checked.
    let mut o2 = o.clone();
    o2.gtids.insert(
        "oregon".into(),
        gtids("1-1001-600", "1-1001-600", &[(1, 0)]),
    );
    let p = plan_of(&t, &s, &o2).unwrap();
    let text = render::render(&p, false);
    assert!(
        text.contains("its binlogs hold domain 1 after 500")
            && text.contains("(at 1-1001-600)")
            && text.contains("(at 1-1001-900)"),
        "{text}"
    );
    assert_eq!(p.summary.wipes_data, 0, "{text}");
}

/// Issue 22, resumable role changes: an apply killed during the catch-up wait leaves the old
/// primary fenced, the candidate not open (its replication maybe stopped) and the switchover
/// recorded on the candidate. The next plan resumes the switchover (the stopped replication
/// is no reason to refuse it: the interrupted run stopped it), a drift job sees "no writable
/// primary", and nothing is copied.
#[test]
fn a_switchover_killed_before_the_opening_is_resumed_and_named_as_no_writable_primary() {
    use skyplan::plan::DriftKind;
    use skyplan::state::{RoleChange, RoleChangeStep};
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
    let mut o = observed(&s);
    o.read_only.insert("primary".into(), true);
    o.read_only.insert("secondary".into(), true);
    let r = o.replication.get_mut("secondary").unwrap();
    r.io_running = false;
    r.sql_running = false;
    let p = plan_of(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(p.action("switchover.secondary").is_some(), "{text}");
    let d = p
        .drift
        .iter()
        .find(|d| d.kind == DriftKind::RoleChangeInterrupted)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(d.detail.contains("no writable primary"), "{}", d.detail);
    assert!(p.summary.drift > 0 && p.summary.wipes_data == 0, "{text}");
    // Without the record the same observation is a candidate that does not replicate.
    s.resources
        .services
        .get_mut("secondary")
        .unwrap()
        .role_change = None;
    let e = plan_of(&switched_pair(), &s, &o).unwrap_err();
    assert!(matches!(e, PlanError::CandidateUnhealthy { .. }), "{e}");
}

/// Killed after the opening: the candidate is the primary and its link is forgotten, the old
/// primary fenced and following nobody. The next plan re-points the old primary by GTID (never
/// a re-seed, which is what it planned before the state recorded the switchover).
#[test]
fn a_switchover_killed_after_the_opening_resumes_as_a_repoint_never_a_reseed() {
    use skyplan::state::{RoleChange, RoleChangeStep};
    let mut s = applied(&example("global-replication.toml"));
    // What the interrupted run recorded at the opening.
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
    let mut o = observed(&s);
    o.replication.remove("secondary");
    o.read_only.insert("primary".into(), true);
    o.read_only.insert("secondary".into(), false);
    let p = plan_of(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    let wire = p
        .action("replication.primary")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        matches!(
            wire.kind,
            ActionKind::Replicate {
                mode: WireMode::Repoint,
                ..
            }
        ),
        "{text}"
    );
    assert_eq!(p.summary.wipes_data, 0, "{text}");
    assert!(
        p.actions.iter().all(|a| !matches!(
            a.kind,
            ActionKind::Backup { .. } | ActionKind::Restore { .. }
        )),
        "{text}"
    );
    // Writable again (a restart): fenced before it follows.
    o.read_only.insert("primary".into(), false);
    let p = plan_of(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    let fence = p.action("role.primary").unwrap_or_else(|| panic!("{text}"));
    let wire = p.action("replication.primary").unwrap();
    assert!(wire.depends_on.contains(&fence.id), "{text}");
}

/// `--replace` survives an interrupted apply: the state records it, and the next plan carries
/// it out (with a warning saying so) although the command line no longer names it.
#[test]
fn a_recorded_replace_is_carried_out_by_the_next_plan() {
    let mut s = applied(&example("global-replication.toml"));
    let p = plan_of(&example("global-replication.toml"), &s, &observed(&s)).unwrap();
    assert!(p.actions.is_empty(), "{}", render::render(&p, false));
    skyplan::plan::record_replaces(
        &mut s,
        &["service.secondary".to_string()],
        "2026-12-07T05:00:00Z",
    );
    let p = plan_of(&example("global-replication.toml"), &s, &observed(&s)).unwrap();
    let text = render::render(&p, false);
    assert!(p.action("restore.secondary").is_some(), "{text}");
    assert!(
        text.contains("the --replace of an apply started at 2026-12-07T05:00:00Z"),
        "{text}"
    );
}

/// Making a replica of a replica the primary while the chain's primary becomes a replica is
/// refused at plan time with the way to do it (found by the randomized DR test: the plan
/// opened the candidate without fencing the old primary and re-seeded the old primary).
#[test]
fn a_switchover_to_a_chained_replica_is_refused_with_the_way_to_do_it() {
    let mut s = applied(&example("fan-out.toml"));
    // oregon replicates from europe (a chain under the primary).
    s.resources.replications.get_mut("oregon").unwrap().source = "europe".into();
    let block = "[services.oregon.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n";
    assert!(FAN_OUT.contains(block));
    let t = topology(
        &(FAN_OUT
            .replace(block, "")
            .replace("from = \"primary\"", "from = \"oregon\"")
            + "\n[services.primary.replication]\nfrom = \"oregon\"\nseed = \"new-backup\"\n"),
    );
    let e = plan_of(&t, &s, &observed(&s)).unwrap_err();
    assert!(
        matches!(e, PlanError::ChainedCandidate { .. })
            && e.to_string()
                .contains("Re-point it first ([services.oregon.replication] from = \"primary\")"),
        "{e}"
    );
}
