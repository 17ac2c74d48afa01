//! `--replace` and `--target` in the pure core: a replica named is re-seeded (flagged as
//! wiping), another service replaced; a target limits the plan to it and what it depends on,
//! and says the plan is partial; an unknown address is an error naming what is known.

use crate::support::fixtures::{applied, example, in_sync};
use skyplan::observed::Observed;
use skyplan::plan::{self, render, ActionKind, Plan, PlanError, PlanFlags, PlanInput};
use skyplan::state::State;
use skyplan::topology::Topology;

fn plan_with(t: &Topology, s: &State, o: &Observed, flags: PlanFlags) -> Result<Plan, PlanError> {
    plan::build(&PlanInput {
        topology: t,
        topology_sha256: "0000",
        state: s,
        observed: o,
        flags,
    })
}

fn replace(a: &[&str]) -> PlanFlags {
    PlanFlags {
        replace: a.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn target(a: &[&str]) -> PlanFlags {
    PlanFlags {
        target: a.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn replace_reseeds_only_the_named_replica_and_says_so() {
    let t = example("fan-out.toml");
    let s = applied(&t);
    let p = plan_with(&t, &s, &in_sync(&s), replace(&["service.asia"])).unwrap();
    let text = render::render(&p, false);
    let restore = p.action("restore.asia").expect(&text);
    assert!(restore.wipes_data);
    assert_eq!(restore.reason.as_deref(), Some("requested with --replace"));
    for other in ["europe", "oregon"] {
        assert!(p.action(&format!("restore.{other}")).is_none(), "{text}");
    }
    assert_eq!(p.flags.replace, ["service.asia"]);
    // The same through its link's address.
    let q = plan_with(&t, &s, &in_sync(&s), replace(&["replication.asia"])).unwrap();
    assert!(q.action("restore.asia").is_some());
}

#[test]
fn replace_of_a_primary_replaces_it_unless_protected() {
    let t = example("global-replication.toml");
    let s = applied(&t);
    let p = plan_with(&t, &s, &in_sync(&s), replace(&["service.primary"])).unwrap();
    let a = p.action("service.primary").unwrap();
    assert!(matches!(a.kind, ActionKind::ReplaceService { .. }) && a.wipes_data);
    // fan-out's primary has deletion_protection = true.
    let t = example("fan-out.toml");
    let s = applied(&t);
    let e = plan_with(&t, &s, &in_sync(&s), replace(&["service.primary"])).unwrap_err();
    assert!(matches!(e, PlanError::DeletionProtected { .. }), "{e}");
}

#[test]
fn unknown_addresses_are_errors_naming_what_is_known() {
    let t = example("global-replication.toml");
    let s = applied(&t);
    for (flags, want) in [
        (
            replace(&["service.secondry"]),
            "no service key `secondry` (known: primary, secondary)",
        ),
        (target(&["servic.primary"]), "the kind one of"),
        (
            replace(&["restore.secondary"]),
            "--replace takes service.KEY",
        ),
        (replace(&["replication.primary"]), "has no link to re-seed"),
    ] {
        let e = plan_with(&t, &s, &in_sync(&s), flags).unwrap_err();
        assert!(e.to_string().contains(want), "{want} in {e}");
    }
}

#[test]
fn target_keeps_the_named_service_and_what_it_depends_on_and_says_it_is_partial() {
    let t = example("fan-out.toml");
    let s = skyplan::state::new_state();
    let p = plan_with(&t, &s, &Observed::default(), target(&["service.europe"])).unwrap();
    let text = render::render(&p, false);
    assert!(
        text.contains("Note: a partial plan (--target service.europe)"),
        "{text}"
    );
    let addresses: Vec<&str> = p.actions.iter().map(|a| a.address.as_str()).collect();
    for want in [
        "service.europe",
        "service.primary",
        "restore.europe",
        "replication.europe",
    ] {
        assert!(addresses.contains(&want), "{want} in {addresses:?}");
    }
    for other in ["asia", "oregon"] {
        assert!(
            addresses.iter().all(|a| !a.ends_with(other)),
            "{other} in {addresses:?}"
        );
    }
    // Ids are dense again and every dependency is in the plan.
    for (i, a) in p.actions.iter().enumerate() {
        assert_eq!(a.id, i);
        assert!(a.depends_on.iter().all(|d| *d < i), "{text}");
    }
}
