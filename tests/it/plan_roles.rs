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
    assert!(
        text.contains(" <> switchover.secondary")
            && text
                .contains("switch   primary skysql-primary -> skysql-secondary (no data copied)")
            && text.contains("2. fence skysql-primary")
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
