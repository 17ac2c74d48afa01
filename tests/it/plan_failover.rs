//! Failover in the pure core: promoting a replica of a lost primary is refused without
//! `--allow-data-loss`, with an estimate of the loss from the GTIDs skyplan last read; with it,
//! one failover action (marker `<!`); the lost primary is re-created and seeded when it is gone,
//! left alone while it does not answer, and, when it answers again, fenced first, then rejoined
//! by GTID, or kept fenced with the transactions the new primary lacks listed.

use crate::support::fixtures::{
    applied, build as plan_of, build_allowing_loss, example, in_sync, topology,
};
use skyplan::gtid::ObservedGtids;
use skyplan::observed::{Observed, ObservedService};
use skyplan::plan::{render, ActionKind, DriftKind, PlanError, WireMode};
use skyplan::state::{EarlierGrant, LastSeen, State};
use skyplan::topology::Topology;

const GUIDE: &str = include_str!("../../examples/global-replication.toml");
const FAN_OUT: &str = include_str!("../../examples/fan-out.toml");

fn gtids(binlog: &str) -> ObservedGtids {
    ObservedGtids {
        binlog_state: binlog.into(),
        current_pos: String::new(),
        slave_pos: String::new(),
        binlog_start: Some([(1, 0)].into_iter().collect()),
    }
}

/// The guide with the secondary as the primary and the old primary following it.
fn switched_pair() -> Topology {
    let start = GUIDE.find("[services.secondary.replication]").unwrap();
    topology(&format!(
        "{}[services.primary.replication]\nfrom = \"secondary\"\nseed = \"new-backup\"\n",
        &GUIDE[..start]
    ))
}

/// The guide after a failover that removed the old primary from the topology.
fn secondary_alone() -> Topology {
    let start = GUIDE.find("[services.primary]").unwrap();
    let end = GUIDE.find("[services.secondary]").unwrap();
    let repl = GUIDE.find("[services.secondary.replication]").unwrap();
    topology(&format!("{}{}", &GUIDE[..start], &GUIDE[end..repl]))
}

/// The guide applied; skyplan last read the primary at 1-1001-45, the secondary 3 s behind.
fn applied_pair() -> State {
    let mut s = applied(&example("global-replication.toml"));
    let seen = |g: &str, lag| LastSeen {
        gtid_binlog_state: g.into(),
        at: "2026-12-01T05:00:00Z".into(),
        lag_seconds: lag,
    };
    let svc = &mut s.resources.services;
    svc.get_mut("primary").unwrap().last_seen = Some(seen("1-1001-45", None));
    svc.get_mut("secondary").unwrap().last_seen = Some(seen("1-1001-42", Some(3)));
    s
}

/// The primary lost as `how`; the secondary has received up to 1-1001-40.
fn primary_lost(s: &State, how: ObservedService) -> Observed {
    let mut o = in_sync(s);
    o.services.insert("primary".into(), how);
    o.gtids.insert("secondary".into(), gtids("1-1001-40"));
    let r = o.replication.get_mut("secondary").unwrap();
    r.io_running = false;
    r.last_io_errno = 2003;
    o
}

fn missing(s: &State) -> ObservedService {
    ObservedService::Missing {
        id: s.resources.services["primary"].id.clone(),
    }
}

fn unreachable(s: &State) -> ObservedService {
    ObservedService::Unreachable {
        id: s.resources.services["primary"].id.clone(),
        why: "503 Service Unavailable".into(),
    }
}

#[test]
fn a_failover_is_refused_without_allow_data_loss_with_an_estimate() {
    let s = applied_pair();
    for how in [missing(&s), unreachable(&s)] {
        let o = primary_lost(&s, how);
        for t in [switched_pair(), secondary_alone()] {
            let e = plan_of(&t, &s, &o).unwrap_err();
            assert!(matches!(e, PlanError::Failover { .. }), "{e}");
            if matches!(o.services["primary"], ObservedService::Unreachable { .. }) {
                insta::assert_snapshot!("failover_refused", e.to_string());
            }
            let msg = e.to_string();
            for want in [
                "--allow-data-loss",
                "last read at 2026-12-01T05:00:00Z with 1-1001-45",
                "service.secondary was 3 s behind then",
                "lacks 1-1001-41..1-1001-45 (5 transactions)",
            ] {
                assert!(msg.contains(want), "{want} in {msg}");
            }
        }
    }
    // The database alone not answering is a lost primary too.
    let mut o = primary_lost(
        &s,
        ObservedService::Present(skyplan::observed::RemoteService::as_recorded(
            &s.resources.services["primary"],
        )),
    );
    o.unreachable
        .insert("primary".into(), "connection refused".into());
    let e = plan_of(&switched_pair(), &s, &o).unwrap_err();
    assert!(
        e.to_string().contains("its database does not answer"),
        "{e}"
    );
    // Never read: the loss is unknown, and said so.
    let mut s2 = s.clone();
    s2.resources.services.get_mut("primary").unwrap().last_seen = None;
    let e = plan_of(&switched_pair(), &s2, &primary_lost(&s2, missing(&s2))).unwrap_err();
    assert!(e.to_string().contains("unknown: skyplan never read"), "{e}");
}

#[test]
fn a_deleted_primary_is_failed_over_then_recreated_and_seeded_from_the_new_one() {
    let s = applied_pair();
    let o = primary_lost(&s, missing(&s));
    let p = build_allowing_loss(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(p.flags.allow_data_loss);
    let fo = p.action("failover.secondary").expect(&text);
    assert!(
        matches!(fo.kind, ActionKind::Failover { old_gone: true, .. }),
        "{text}"
    );
    for want in [
        " <! failover.secondary",
        "!! failover: what the old primary had and the new one lacks is lost",
        "1. wait until skysql-secondary has applied everything it received from skysql-primary (up to 1-1-50,1-1001-40)",
    ] {
        assert!(text.contains(want), "{want} in\n{text}");
    }
    insta::assert_snapshot!("failover_of_a_deleted_primary", text);
    insta::assert_snapshot!(
        "markdown_failover_with_loss",
        crate::support::fixtures::markdown(&p, &switched_pair(), &s)
    );
    // The primary comes back as a new, empty service seeded from the new primary, after it.
    assert!(matches!(
        p.action("service.primary").expect(&text).kind,
        ActionKind::CreateService { .. }
    ));
    let wire = p.action("replication.primary").expect(&text);
    assert!(wire.depends_on.contains(&fo.id), "{text}");
    assert!(p.action("restore.primary").is_some(), "{text}");
    // Nothing is done on the lost primary: no revoke, no drop, no stop.
    assert!(p.action("allowlist.primary.secondary").is_none(), "{text}");
    assert!(p.action("replication.secondary").is_none(), "{text}");
    // Without the old primary in the topology: failover and forget.
    let p = build_allowing_loss(&secondary_alone(), &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(p.action("failover.secondary").is_some(), "{text}");
    assert!(text.contains("forget   skysql-primary"), "{text}");
}

#[test]
fn an_unreachable_primary_is_left_alone_and_rejoins_later() {
    let s = applied_pair();
    let o = primary_lost(&s, unreachable(&s));
    let p = build_allowing_loss(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(
        matches!(
            p.action("failover.secondary").expect(&text).kind,
            ActionKind::Failover {
                old_gone: false,
                ..
            }
        ),
        "{text}"
    );
    // Only the failover: nothing touches the unreachable primary.
    assert_eq!(p.actions.len(), 1, "{text}");
    assert!(text.contains("fences it (read-only) first"), "{text}");
    assert!(
        p.drift
            .iter()
            .any(|d| d.kind == DriftKind::ServiceUnreachable && d.resource == "service.primary"),
        "{text}"
    );
    // Another service not answering is an error, not something to plan around.
    let mut o = in_sync(&s);
    o.services.insert(
        "secondary".into(),
        ObservedService::Unreachable {
            id: s.resources.services["secondary"].id.clone(),
            why: "timeout".into(),
        },
    );
    let e = plan_of(&example("global-replication.toml"), &s, &o).unwrap_err();
    assert!(matches!(e, PlanError::Unreachable { .. }), "{e}");
}

/// The state after the failover of an unreachable primary: the secondary is the primary, the
/// old one is marked replaced.
fn after_failover() -> State {
    let mut s = applied_pair();
    s.resources.replications.remove("secondary");
    s.resources
        .services
        .get_mut("primary")
        .unwrap()
        .failed_over_to = Some("secondary".into());
    s
}

#[test]
fn while_the_replaced_primary_is_away_the_plan_waits_and_reports_it() {
    let s = after_failover();
    let mut o = in_sync(&s);
    o.services.insert("primary".into(), unreachable(&s));
    o.gtids
        .insert("secondary".into(), gtids("1-1001-40,1-2002-60"));
    let p = plan_of(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(p.actions.is_empty(), "{text}");
    assert!(p.summary.drift > 0, "drift, so a drift job exits 2: {text}");
}

#[test]
fn a_returning_primary_is_fenced_then_rejoins_by_gtid_without_a_copy() {
    let s = after_failover();
    let mut o = in_sync(&s);
    o.gtids.insert("primary".into(), gtids("1-1001-40"));
    o.gtids
        .insert("secondary".into(), gtids("1-1001-40,1-2002-60"));
    o.read_only.insert("primary".into(), false);
    o.read_only.insert("secondary".into(), false);
    let p = plan_of(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    let fence = p.action("role.primary").expect(&text);
    assert!(
        matches!(
            fence.kind,
            ActionKind::SetRole {
                writable: false,
                ..
            }
        ),
        "{text}"
    );
    let wire = p.action("replication.primary").expect(&text);
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
    assert!(wire.depends_on.contains(&fence.id), "fenced first: {text}");
    assert_eq!(p.summary.wipes_data, 0, "{text}");
    assert!(p.action("restore.primary").is_none(), "{text}");
}

#[test]
fn a_returning_primary_with_lost_writes_stays_fenced_and_they_are_listed() {
    let s = after_failover();
    let mut o = in_sync(&s);
    o.gtids.insert("primary".into(), gtids("1-1001-45"));
    o.gtids
        .insert("secondary".into(), gtids("1-1001-40,1-2002-60"));
    o.read_only.insert("primary".into(), false);
    o.read_only.insert("secondary".into(), false);
    let p = plan_of(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    let d = p
        .drift
        .iter()
        .find(|d| d.kind == DriftKind::DivergedPrimary)
        .expect(&text);
    assert!(
        d.detail.contains("1-1001-41..1-1001-45 (5 transactions)"),
        "{text}"
    );
    insta::assert_snapshot!("returning_primary_with_lost_writes", text);
    assert!(
        matches!(
            p.action("role.primary").expect(&text).kind,
            ActionKind::SetRole {
                writable: false,
                ..
            }
        ),
        "{text}"
    );
    assert!(p.action("replication.primary").is_none(), "{text}");
    assert_eq!(p.summary.wipes_data, 0, "never re-seeded unasked: {text}");
}

#[test]
fn the_other_replicas_follow_the_promoted_one_by_gtid_after_the_failover() {
    let s = applied(&example("fan-out.toml"));
    // Europe is the primary; the old one is gone from the topology; the others follow europe.
    let block = "[services.europe.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n";
    let src = FAN_OUT
        .replace(block, "")
        .replace("from = \"primary\"", "from = \"europe\"");
    let (cut, resume) = (
        src.find("[services.primary]").unwrap(),
        src.find("[services.europe]").unwrap(),
    );
    let t = topology(&format!("{}{}", &src[..cut], &src[resume..]));
    let mut o = in_sync(&s);
    o.services.insert(
        "primary".into(),
        ObservedService::Missing {
            id: s.resources.services["primary"].id.clone(),
        },
    );
    for k in ["europe", "asia", "oregon"] {
        o.gtids.insert(k.into(), gtids("1-1001-40"));
        let r = o.replication.get_mut(k).unwrap();
        r.io_running = false;
        r.last_io_errno = 2003;
    }
    let p = build_allowing_loss(&t, &s, &o).unwrap();
    let text = render::render(&p, false);
    let fo = p.action("failover.europe").expect(&text);
    for r in ["asia", "oregon"] {
        let a = p.action(&format!("replication.{r}")).expect(&text);
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
        assert!(a.depends_on.contains(&fo.id), "{text}");
    }
    assert_eq!(p.summary.wipes_data, 0, "{text}");
}

#[test]
fn failovers_that_would_make_two_writers_are_refused() {
    let s = applied_pair();
    // skyplan cannot reach the primary, but the candidate still receives from it: alive.
    let mut o = primary_lost(&s, unreachable(&s));
    let r = o.replication.get_mut("secondary").unwrap();
    r.io_running = true;
    r.last_io_errno = 0;
    let e = build_allowing_loss(&switched_pair(), &s, &o).unwrap_err();
    assert!(matches!(e, PlanError::FailoverOfALivePrimary { .. }), "{e}");
    // A candidate that cannot apply what it received is not promoted.
    let mut o = primary_lost(&s, missing(&s));
    let r = o.replication.get_mut("secondary").unwrap();
    r.sql_running = false;
    r.last_sql_errno = 1062;
    let e = build_allowing_loss(&switched_pair(), &s, &o).unwrap_err();
    assert!(matches!(e, PlanError::CandidateUnhealthy { .. }), "{e}");
    // Two successors of one lost primary.
    let s = applied(&example("fan-out.toml"));
    let block = |k: &str| {
        format!("[services.{k}.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n")
    };
    let asia = FAN_OUT.find("[services.asia.replication]").unwrap();
    let asia_end = asia + FAN_OUT[asia..].find("\n[services.").unwrap() + 1;
    let src = format!("{}{}", &FAN_OUT[..asia], &FAN_OUT[asia_end..]).replace(&block("europe"), "");
    let (cut, resume) = (
        src.find("[services.primary]").unwrap(),
        src.find("[services.europe]").unwrap(),
    );
    let t = topology(
        &format!("{}{}", &src[..cut], &src[resume..])
            .replace("from = \"primary\"", "from = \"europe\""),
    );
    let mut o = in_sync(&s);
    o.services.insert(
        "primary".into(),
        ObservedService::Missing {
            id: s.resources.services["primary"].id.clone(),
        },
    );
    for k in ["europe", "asia", "oregon"] {
        o.gtids.insert(k.into(), gtids("1-1001-40"));
        if let Some(r) = o.replication.get_mut(k) {
            r.io_running = false;
            r.last_io_errno = 2003;
        }
    }
    let e = build_allowing_loss(&t, &s, &o).unwrap_err();
    assert!(
        e.to_string().contains("one lost primary has one successor"),
        "{e}"
    );
}

#[test]
fn a_replaced_primary_cannot_be_made_the_primary_again_before_it_rejoins() {
    let s = after_failover();
    let mut o = in_sync(&s);
    o.gtids.insert("primary".into(), gtids("1-1001-40"));
    o.gtids
        .insert("secondary".into(), gtids("1-1001-40,1-2002-60"));
    let e = plan_of(&example("global-replication.toml"), &s, &o).unwrap_err();
    assert!(
        matches!(e, PlanError::ReplacedPrimaryPromoted { .. }),
        "{e}"
    );
}

#[test]
fn a_replica_lost_with_its_region_can_leave_the_topology() {
    let s = applied(&example("fan-out.toml"));
    let block = "[services.oregon.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n";
    let src = FAN_OUT.replace(block, "");
    let cut = src.find("[services.oregon]").unwrap();
    let t = topology(&src[..cut]);
    let mut o = in_sync(&s);
    o.services.insert(
        "oregon".into(),
        ObservedService::Unreachable {
            id: s.resources.services["oregon"].id.clone(),
            why: "503".into(),
        },
    );
    o.replication.remove("oregon");
    let p = plan_of(&t, &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(
        p.action("service.oregon").is_none(),
        "not deleted now: {text}"
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("service.oregon does not answer")),
        "{text}"
    );
    // Kept in the topology, it is an error (what apply would do to it is unknown).
    let e = plan_of(&example("fan-out.toml"), &s, &o).unwrap_err();
    assert!(matches!(e, PlanError::Unreachable { .. }), "{e}");
}

#[test]
fn a_returning_primary_with_lost_writes_is_reseeded_only_when_named() {
    let s = after_failover();
    let mut o = in_sync(&s);
    o.gtids.insert("primary".into(), gtids("1-1001-45"));
    o.gtids
        .insert("secondary".into(), gtids("1-1001-40,1-2002-60"));
    o.read_only.insert("primary".into(), false);
    o.read_only.insert("secondary".into(), false);
    let build = |allow_data_loss| {
        skyplan::plan::build(&skyplan::plan::PlanInput {
            topology: &switched_pair(),
            topology_sha256: "0000",
            state: &s,
            observed: &o,
            flags: skyplan::plan::PlanFlags {
                replace: vec!["service.primary".into()],
                allow_data_loss,
                ..Default::default()
            },
        })
    };
    // Named, and still its lost writes are discarded only with consent (the last-copy rule).
    let e = build(false).unwrap_err();
    assert!(
        matches!(e, PlanError::LastCopy { .. })
            && e.to_string()
                .contains("service.primary holds 1-1001-41..1-1001-45 (5 transactions)"),
        "{e}"
    );
    let p = build(true).unwrap();
    let text = render::render(&p, false);
    assert!(
        p.warnings[0].starts_with(
            "DATA LOSS (--allow-data-loss): service.primary holds 1-1001-41..1-1001-45"
        ),
        "listed first: {text}"
    );
    let restore = p.action("restore.primary").expect(&text);
    assert!(restore.wipes_data, "{text}");
    let fence = p.action("role.primary").expect(&text);
    assert!(
        restore.depends_on.contains(&fence.id),
        "fenced first: {text}"
    );
    assert!(p.action("replication.primary").is_some(), "{text}");
}

/// The fan-out after a failover to `europe`: the other replicas follow it, and the old
/// primary, back, follows it too.
fn fan_out_after_failover() -> Topology {
    let text = FAN_OUT
        .replace(
            "[services.europe.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n",
            "",
        )
        .replace("from = \"primary\"", "from = \"europe\"")
        .replace(
            "[services.europe]",
            "[services.primary.replication]\nfrom = \"europe\"\nseed = \"new-backup\"\n\n[services.europe]",
        );
    topology(&text)
}

#[test]
fn entries_left_on_a_lost_primary_are_revoked_once_it_answers_and_are_never_hand_added() {
    let t = fan_out_after_failover();
    let mut s = applied(&t);
    // The failover re-pointed asia and oregon while the primary did not answer: their
    // entries there could not be revoked, and the state keeps them as earlier grants.
    let mut left = Vec::new();
    for r in ["asia", "oregon"] {
        let ip = format!("{}/32", s.resources.services[r].outbound_ips[0]);
        left.push(ip.clone());
        s.resources.allowlists.get_mut(r).unwrap().earlier = vec![EarlierGrant {
            on: "primary".into(),
            entries: vec![ip],
        }];
    }
    let mut o = in_sync(&s);
    o.allowlists
        .get_mut("primary")
        .unwrap()
        .extend(left.clone());
    let p = plan_of(&t, &s, &o).unwrap();
    let text = render::render(&p, false);
    for r in ["asia", "oregon"] {
        let revoke = p.action(&format!("allowlist.primary.{r}")).expect(&text);
        assert!(
            matches!(&revoke.kind, ActionKind::AllowlistRevoke { source, .. } if source == "primary"),
            "{text}"
        );
        assert!(
            revoke
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("did not answer when it was re-pointed")),
            "{text}"
        );
    }
    assert!(
        !p.drift
            .iter()
            .any(|d| d.kind == DriftKind::AllowlistEntryAdded),
        "skyplan's own entries are not reported as added by hand: {text}"
    );

    // While the primary is still away, nothing is planned for them (and nothing fails).
    let mut away = in_sync(&s);
    away.services.insert(
        "primary".into(),
        ObservedService::Unreachable {
            id: s.resources.services["primary"].id.clone(),
            why: "503".into(),
        },
    );
    s.resources
        .services
        .get_mut("primary")
        .unwrap()
        .failed_over_to = Some("europe".into());
    let p = plan_of(&t, &s, &away).unwrap();
    assert!(
        p.action("allowlist.primary.asia").is_none(),
        "{}",
        render::render(&p, false)
    );
}

/// A restored service, as MariaDB shows it: fresh binlogs holding `binlog` (from `start` on),
/// its history before them in `gtid_slave_pos` (`slave`).
fn restored(binlog: &str, slave: &str, start: &[(u32, u64)]) -> ObservedGtids {
    ObservedGtids {
        binlog_state: binlog.into(),
        current_pos: String::new(),
        slave_pos: slave.into(),
        binlog_start: Some(start.iter().copied().collect()),
    }
}

/// Issue 22: a returned old primary with no extra writes rejoins a new primary that was seeded
/// by a restore and had binlogged nothing of the old primary's stream (its history is in its
/// slave position). Before, the old primary's stream was judged missing on the new one and the
/// plan wiped the old primary with a restore it never asked for.
#[test]
fn a_returning_primary_rejoins_a_restored_new_primary_without_a_copy() {
    let s = after_failover();
    let mut o = in_sync(&s);
    o.gtids.insert("primary".into(), gtids("1-1001-40"));
    // Restored at 1-1001-40, binlogged only its own writes since the failover.
    o.gtids.insert(
        "secondary".into(),
        restored("2-2002-60", "1-1001-40", &[(2, 0)]),
    );
    o.read_only.insert("primary".into(), true);
    o.read_only.insert("secondary".into(), false);
    let p = plan_of(&switched_pair(), &s, &o).unwrap();
    let text = render::render(&p, false);
    let wire = p.action("replication.primary").expect(&text);
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
}

/// Issue 22: the siblings of a failover follow a candidate that was seeded by a restore by
/// GTID, not by a re-seed: what they have is in its slave position.
#[test]
fn siblings_follow_a_restored_candidate_by_gtid_after_a_failover() {
    let s = applied(&example("fan-out.toml"));
    let block = "[services.europe.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n";
    let src = FAN_OUT
        .replace(block, "")
        .replace("from = \"primary\"", "from = \"europe\"");
    let (cut, resume) = (
        src.find("[services.primary]").unwrap(),
        src.find("[services.europe]").unwrap(),
    );
    let t = topology(&format!("{}{}", &src[..cut], &src[resume..]));
    let mut o = in_sync(&s);
    o.services.insert(
        "primary".into(),
        ObservedService::Missing {
            id: s.resources.services["primary"].id.clone(),
        },
    );
    // Europe was restored at 1-1001-40 and received nothing since; its siblings are level.
    o.gtids
        .insert("europe".into(), restored("", "1-1001-40", &[]));
    for k in ["asia", "oregon"] {
        o.gtids.insert(k.into(), gtids("1-1001-40"));
    }
    for k in ["europe", "asia", "oregon"] {
        let r = o.replication.get_mut(k).unwrap();
        r.io_running = false;
        r.last_io_errno = 2003;
    }
    let p = build_allowing_loss(&t, &s, &o).unwrap();
    let text = render::render(&p, false);
    for r in ["asia", "oregon"] {
        let a = p.action(&format!("replication.{r}")).expect(&text);
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
    }
    assert_eq!(p.summary.wipes_data, 0, "{text}");
}

/// Issue 23: a failover loses only what no survivor received. The candidate lags; a sibling
/// received five more transactions from the lost primary. Before, the plan promoted the
/// candidate and re-seeded the sibling (those writes gone, under a false reason); now the
/// candidate first catches up from that sibling through a temporary link the plan shows, the
/// siblings are re-pointed (no copy), and failing over to the sibling itself needs no catch-up.
/// When the sibling cannot serve the candidate, the failover is refused, naming it.
#[test]
fn a_failover_to_a_candidate_behind_a_sibling_catches_up_from_it_first() {
    let s = applied(&example("fan-out.toml"));
    let failover_to = |to: &str| {
        let block =
            format!("[services.{to}.replication]\nfrom = \"primary\"\nseed = \"new-backup\"\n");
        let src = FAN_OUT
            .replace(&block, "")
            .replace("from = \"primary\"", &format!("from = \"{to}\""));
        let (cut, resume) = (
            src.find("[services.primary]").unwrap(),
            src.find("[services.europe]").unwrap(),
        );
        topology(&format!("{}{}", &src[..cut], &src[resume..]))
    };
    let mut o = in_sync(&s);
    o.services.insert(
        "primary".into(),
        ObservedService::Missing {
            id: s.resources.services["primary"].id.clone(),
        },
    );
    for (k, at) in [
        ("europe", "1-1001-40"),
        ("asia", "1-1001-40"),
        ("oregon", "1-1001-45"),
    ] {
        o.gtids.insert(k.into(), gtids(at));
        let r = o.replication.get_mut(k).unwrap();
        r.io_running = false;
        r.last_io_errno = 2003;
        r.gtid_io_pos = Some(at.into());
    }
    let p = build_allowing_loss(&failover_to("europe"), &s, &o).unwrap();
    let text = render::render(&p, false);
    let fo = p.action("failover.europe").expect(&text);
    assert!(
        matches!(fo.kind, ActionKind::Failover { catch_up_from: Some(ref k), .. } if k == "oregon"),
        "{text}"
    );
    assert!(
        text.contains("catch up from orders-oregon")
            && text.contains("1-1001-41..1-1001-45 (5 transactions)")
            && text.contains("(temporary)"),
        "{text}"
    );
    // Nothing is lost that a survivor holds: the estimate counts the sibling.
    assert!(!text.contains("lacks 1-1001-41"), "{text}");
    for r in ["asia", "oregon"] {
        let a = p.action(&format!("replication.{r}")).expect(&text);
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
    }
    assert_eq!(p.summary.wipes_data, 0, "{text}");

    // An apply stopped during the catch-up: europe replicates from oregon, and the temporary
    // entry is recorded as an earlier grant. The failover resumes from there (not "the old
    // primary is alive"), and that entry is the failover's to revoke, not a separate action.
    let mut s2 = s.clone();
    let oregon = s2.resources.services["oregon"].clone();
    s2.resources
        .allowlists
        .get_mut("europe")
        .unwrap()
        .earlier
        .push(skyplan::state::EarlierGrant {
            on: "oregon".into(),
            entries: vec!["10.9.9.9/32".into()],
        });
    let mut resumed = o.clone();
    let r = resumed.replication.get_mut("europe").unwrap();
    r.master_host = oregon.fqdn.clone();
    r.master_port = oregon.port;
    r.io_running = true;
    r.last_io_errno = 0;
    r.gtid_io_pos = Some("1-1001-45".into());
    resumed.gtids.insert("europe".into(), gtids("1-1001-43"));
    let p = build_allowing_loss(&failover_to("europe"), &s2, &resumed).unwrap();
    let text = render::render(&p, false);
    assert!(
        matches!(p.action("failover.europe").expect(&text).kind,
            ActionKind::Failover { catch_up_from: Some(ref k), .. } if k == "oregon"),
        "{text}"
    );
    assert!(
        !p.actions.iter().any(|a| matches!(a.kind, ActionKind::AllowlistRevoke { ref source, .. } if source == "oregon")),
        "{text}"
    );
    // Without the failover (the file not edited), the recorded entry is revoked.
    let p = build_allowing_loss(&topology(FAN_OUT), &s2, &in_sync(&s2)).unwrap();
    assert!(
        p.actions.iter().any(|a| matches!(a.kind, ActionKind::AllowlistRevoke { ref source, .. } if source == "oregon")),
        "{}",
        render::render(&p, false)
    );

    // Two siblings ahead by different amounts: the one holding the most (whatever the key
    // order), whose catch-up covers the other.
    let mut two = o.clone();
    two.gtids.insert("asia".into(), gtids("1-1001-45"));
    two.replication.get_mut("asia").unwrap().gtid_io_pos = Some("1-1001-45".into());
    two.gtids.insert("oregon".into(), gtids("1-1001-43"));
    two.replication.get_mut("oregon").unwrap().gtid_io_pos = Some("1-1001-43".into());
    let p = build_allowing_loss(&failover_to("europe"), &s, &two).unwrap();
    assert!(
        matches!(p.action("failover.europe").unwrap().kind,
            ActionKind::Failover { catch_up_from: Some(ref k), .. } if k == "asia"),
        "{}",
        render::render(&p, false)
    );
    // A sibling still receiving from an unreachable (not deleted) old primary: it is alive.
    let mut alive = o.clone();
    alive.services.insert(
        "primary".into(),
        ObservedService::Unreachable {
            id: s.resources.services["primary"].id.clone(),
            why: "timeouts".into(),
        },
    );
    let r = alive.replication.get_mut("asia").unwrap();
    r.io_running = true;
    r.last_io_errno = 0;
    let e = build_allowing_loss(&failover_to("europe"), &s, &alive).unwrap_err();
    assert!(
        e.to_string()
            .contains("service.asia still receives from it"),
        "{e}"
    );

    // The sibling's binlogs no longer hold what follows the candidate's position: no
    // catch-up is possible, and the failover is refused naming the sibling.
    let mut purged = o.clone();
    purged.gtids.get_mut("oregon").unwrap().binlog_start = Some([(1, 43)].into_iter().collect());
    let e = build_allowing_loss(&failover_to("europe"), &s, &purged).unwrap_err();
    assert!(
        matches!(e, PlanError::FailoverBehindSibling { ref sibling, .. } if sibling == "oregon")
            && e.to_string()
                .contains("holds 1-1001-41..1-1001-45 (5 transactions)"),
        "{e}"
    );
    // The candidate holds what the sibling lacks (another domain): refused too.
    let mut split = o.clone();
    split
        .gtids
        .insert("europe".into(), gtids("1-1001-40,2-2002-3"));
    split.replication.get_mut("europe").unwrap().gtid_io_pos = Some("1-1001-40,2-2002-3".into());
    let e = build_allowing_loss(&failover_to("europe"), &s, &split).unwrap_err();
    assert!(matches!(e, PlanError::FailoverBehindSibling { .. }), "{e}");
    let p = build_allowing_loss(&failover_to("oregon"), &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(p.action("failover.oregon").is_some(), "{text}");
    for r in ["europe", "asia"] {
        let a = p.action(&format!("replication.{r}")).expect(&text);
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
    }
    assert_eq!(p.summary.wipes_data, 0, "{text}");
}
