//! Re-pointing in the pure core: a replica whose `from` changes continues from its own GTID
//! position when the new source has its history (no backup, no restore), is re-seeded with the
//! reason when it does not, and with `seed = "none"` is refused rather than started from a
//! wrong position.

use std::collections::BTreeMap;

use crate::support::fixtures::{applied, build as plan_of, example, in_sync, topology};
use skyplan::gtid::ObservedGtids;
use skyplan::observed::Observed;
use skyplan::plan::{render, ActionKind, DriftKind, WireMode};
use skyplan::state::State;
use skyplan::topology::Topology;

const FAN_OUT: &str = include_str!("../../examples/fan-out.toml");

/// fan-out with orders-oregon replicating from orders-europe instead of the primary.
fn oregon_from_europe(seed: &str) -> Topology {
    let src = FAN_OUT.replace(
        "[services.oregon.replication]\nfrom = \"primary\"\nseed = \"new-backup\"",
        &format!("[services.oregon.replication]\nfrom = \"europe\"\nseed = \"{seed}\""),
    );
    assert_ne!(src, FAN_OUT);
    topology(&src)
}

fn gtids(binlog: &str, start: &[(u32, u64)]) -> ObservedGtids {
    ObservedGtids {
        binlog_state: binlog.into(),
        current_pos: binlog.into(),
        slave_pos: String::new(),
        binlog_start: Some(start.iter().copied().collect::<BTreeMap<_, _>>()),
    }
}

/// Everything in sync; oregon at `oregon`, europe (the new source) at `europe`.
fn observed(s: &State, oregon: &str, europe: ObservedGtids) -> Observed {
    let mut o = in_sync(s);
    o.at = Some(time::OffsetDateTime::now_utc());
    o.gtids
        .insert("primary".into(), gtids("3-1003-260", &[(3, 0)]));
    o.gtids.insert("europe".into(), europe);
    o.gtids.insert("oregon".into(), gtids(oregon, &[]));
    o.gtids.insert("asia".into(), gtids("3-1003-250", &[]));
    o
}

fn setup() -> State {
    applied(&example("fan-out.toml"))
}

#[test]
fn a_sibling_sharing_the_history_is_a_repoint_without_copy() {
    let s = setup();
    let t = oregon_from_europe("new-backup");
    let o = observed(&s, "3-1003-250", gtids("3-1003-255", &[(3, 100)]));
    let p = plan_of(&t, &s, &o).unwrap();
    let text = render::render(&p, false);
    assert!(
        text.contains(
            "re-point orders-oregon: orders-primary -> orders-europe from its own position \
             (3-1003-250 when planned), no data copied"
        ),
        "{text}"
    );
    assert!(
        p.actions.iter().all(|a| !matches!(
            a.kind,
            ActionKind::Backup { .. } | ActionKind::Restore { .. }
        )),
        "{text}"
    );
    assert!(p.actions.iter().any(|a| matches!(
        a.kind,
        ActionKind::Replicate {
            mode: WireMode::Repoint,
            ..
        }
    )));
    assert_eq!(p.summary.wipes_data, 0);
    // Behind on the same stream is lag, not a reason to copy: apply waits for europe.
    let o = observed(&s, "3-1003-250", gtids("3-1003-240", &[(3, 100)]));
    let p = plan_of(&t, &s, &o).unwrap();
    assert_eq!(p.summary.wipes_data, 0, "{}", render::render(&p, false));
}

#[test]
fn an_errant_transaction_or_purged_binlogs_reseed_with_the_reason() {
    let s = setup();
    let t = oregon_from_europe("new-backup");
    let cases = [
        (
            observed(&s, "3-1003-250,7-1007-1", gtids("3-1003-255", &[(3, 100)])),
            "orders-oregon has a transaction that orders-europe lacks: 7-1007-1 (domain 7)",
        ),
        (
            observed(&s, "3-1003-250", gtids("3-1003-255", &[(3, 251)])),
            "orders-europe's binlogs begin after sequence 251 in domain 3",
        ),
        (
            {
                let mut o = observed(&s, "3-1003-250", gtids("3-1003-255", &[]));
                o.gtids.remove("europe");
                o
            },
            "the GTIDs of orders-europe could not be read",
        ),
    ];
    for (i, (o, why)) in cases.into_iter().enumerate() {
        // The errant transaction exists nowhere else: discarding it takes consent (the
        // last-copy rule), and the refusal names it.
        let p = if i == 0 {
            let e = plan_of(&t, &s, &o).unwrap_err();
            assert!(
                matches!(e, skyplan::plan::PlanError::LastCopy { .. })
                    && e.to_string()
                        .contains("service.oregon holds 7-1007-1 (1 transaction)"),
                "{e}"
            );
            crate::support::fixtures::build_allowing_loss(&t, &s, &o).unwrap()
        } else {
            plan_of(&t, &s, &o).unwrap()
        };
        let text = render::render(&p, false);
        let restore = p
            .actions
            .iter()
            .find(|a| matches!(a.kind, ActionKind::Restore { .. }))
            .unwrap_or_else(|| panic!("no restore in\n{text}"));
        assert!(restore.wipes_data);
        let reason = restore.reason.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with("it cannot continue from its own position: ")
                && reason.contains(why),
            "{reason}\n{text}"
        );
    }
    // Offline, nothing can be proven: re-seed, saying why.
    let p = plan_of(&t, &s, &Observed::offline()).unwrap();
    assert!(
        render::render(&p, false).contains("refresh was skipped"),
        "{}",
        render::render(&p, false)
    );
}

#[test]
fn seed_none_never_starts_from_a_wrong_position() {
    let s = setup();
    let t = oregon_from_europe("none");
    // Safe: re-pointed from its own position.
    let o = observed(&s, "3-1003-250", gtids("3-1003-255", &[(3, 100)]));
    let p = plan_of(&t, &s, &o).unwrap();
    assert!(p.actions.iter().any(|a| matches!(
        a.kind,
        ActionKind::Replicate {
            mode: WireMode::Repoint,
            ..
        }
    )));
    // Unsafe: refused, with the reason and the way out; nothing planned.
    let o = observed(&s, "3-1003-250,7-1007-1", gtids("3-1003-255", &[(3, 100)]));
    let e = plan_of(&t, &s, &o).unwrap_err().to_string();
    assert!(
        e.contains("service.oregon has seed = \"none\"")
            && e.contains("7-1007-1")
            && e.contains("seed = \"new-backup\""),
        "{e}"
    );
}

#[test]
fn a_write_on_a_replica_is_errant_drift_naming_the_gtid_and_lag_is_not() {
    let s = setup();
    let t = example("fan-out.toml");
    let mut o = in_sync(&s);
    o.gtids
        .insert("primary".into(), gtids("3-1003-260", &[(3, 0)]));
    // Behind the primary on its stream: lag, not errant.
    o.gtids.insert("europe".into(), gtids("3-1003-255", &[]));
    o.gtids
        .insert("asia".into(), gtids("3-1003-250,2-1002-4", &[]));
    let p = plan_of(&t, &s, &o).unwrap();
    let errant: Vec<_> = p
        .drift
        .iter()
        .filter(|d| d.kind == DriftKind::ErrantTransactions)
        .collect();
    assert_eq!(errant.len(), 1, "{:?}", p.drift);
    assert_eq!(errant[0].resource, "replication.asia");
    assert!(
        errant[0].detail.contains("2-1002-4"),
        "{}",
        errant[0].detail
    );
    assert!(p.actions.is_empty(), "no repair: a person decides");
    assert_eq!(p.summary.drift, 1);
}

/// Issue 22: a plan never re-points a replica onto a service the same plan re-seeds (its GTIDs
/// of now are replaced by the copy's): the replica is re-seeded too, after its source, with
/// that reason. Before, apply re-pointed it and failed once the middle service was wiped.
#[test]
fn a_replica_never_repoints_onto_a_service_the_same_plan_reseeds() {
    let s = setup();
    let t = oregon_from_europe("new-backup");
    let o = observed(&s, "3-1003-250", gtids("3-1003-255", &[(3, 100)]));
    let p = skyplan::plan::build(&skyplan::plan::PlanInput {
        topology: &t,
        topology_sha256: "0000",
        state: &s,
        observed: &o,
        flags: skyplan::plan::PlanFlags {
            replace: vec!["service.europe".into()],
            ..Default::default()
        },
    })
    .unwrap();
    let text = render::render(&p, false);
    let wire = p.action("replication.oregon").expect("oregon is wired");
    assert!(
        !matches!(
            wire.kind,
            ActionKind::Replicate {
                mode: WireMode::Repoint,
                ..
            }
        ),
        "{text}"
    );
    let restore = p.action("restore.oregon").expect("oregon is re-seeded");
    assert!(
        restore
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("orders-europe is re-seeded by this plan")),
        "{text}"
    );
    // After its source is settled: europe's wiring comes first.
    let europe = p.action("replication.europe").unwrap();
    let backup = p
        .actions
        .iter()
        .find(|a| a.depends_on.contains(&europe.id) && a.address.starts_with("backup."))
        .unwrap_or_else(|| panic!("a backup of europe after its wiring in {text}"));
    assert!(restore.depends_on.contains(&backup.id), "{text}");
}
