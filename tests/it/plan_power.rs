//! Power in the pure core: a service stopped outside skyplan is drift, repaired by a start
//! that goes before anything else on it; `is_active = false` stops a service once (after its
//! create or changes) and then keeps it stopped without reporting drift; what SkySQL cannot do
//! to a stopped service, and a stopped service in replication, are errors before apply.

use skyplan::observed::{Observed, ObservedService, RemoteService};
use skyplan::plan::{render, ActionKind, Change, DriftKind, Plan, PlanError};
use skyplan::topology::Topology;

use crate::support::fixtures::{
    applied, assert_valid, build, example, in_sync, plan_schema, topology, STANDALONE,
};

/// `STANDALONE` with the fields of `extra` (one `key = value` per line) set or replaced.
fn one(extra: &str) -> Topology {
    let set: Vec<&str> = extra
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k))
        .collect();
    let kept: Vec<&str> = STANDALONE
        .lines()
        .filter(|l| !l.split_once(" = ").is_some_and(|(k, _)| set.contains(&k)))
        .collect();
    topology(&format!("{}\n{extra}", kept.join("\n")))
}

fn remote<'a>(o: &'a mut Observed, key: &str) -> &'a mut RemoteService {
    match o.services.get_mut(key) {
        Some(ObservedService::Present(r)) => r,
        _ => panic!("{key} not present"),
    }
}

fn addresses(p: &Plan) -> Vec<&str> {
    p.actions.iter().map(|a| a.address.as_str()).collect()
}

fn power(p: &Plan) -> Option<bool> {
    p.actions.iter().find_map(|a| match a.kind {
        ActionKind::SetPower { active, .. } => Some(active),
        _ => None,
    })
}

#[test]
fn a_service_stopped_outside_skyplan_is_drift_repaired_by_a_start() {
    let t = example("global-replication.toml");
    let s = applied(&t);
    let mut o = in_sync(&s);
    remote(&mut o, "primary").status = "stopped".into();
    let p = build(&t, &s, &o).unwrap();
    assert_eq!(
        p.drift.iter().map(|d| d.kind).collect::<Vec<_>>(),
        [DriftKind::ServiceStopped]
    );
    assert_eq!(addresses(&p), ["power.primary"]);
    let start = &p.actions[0];
    assert_eq!(power(&p), Some(true));
    assert_eq!(start.change, Change::Update);
    assert!(!start.wipes_data);
    assert_eq!(start.reason.as_deref(), Some("stopped outside skyplan"));
    assert_valid(&plan_schema(), &p);
    let text = render::render(&p, false);
    assert!(text.contains("~ power.primary"), "{text}");
    assert!(text.contains("start    skysql-primary"), "{text}");
}

#[test]
fn is_active_false_stops_a_running_service_once_and_then_keeps_it_stopped() {
    let t = one("is_active = false\n");
    let s = applied(&t);
    let mut o = in_sync(&s);
    let p = build(&t, &s, &o).unwrap();
    assert_eq!(addresses(&p), ["power.archive"]);
    assert_eq!(power(&p), Some(false));
    assert_valid(&plan_schema(), &p);
    assert!(
        p.drift.is_empty(),
        "a stop the topology asks for is no drift"
    );
    assert_eq!(p.actions[0].reason, None);

    // Stopped, as asked: nothing to do and nothing to report (a drift job stays quiet).
    remote(&mut o, "archive").status = "stopped".into();
    let p = build(&t, &s, &o).unwrap();
    assert!(p.is_empty(), "{}", render::render(&p, false));
    assert!(p.drift.is_empty());

    // Started again by hand: stopped again, as the topology says (the file wins).
    remote(&mut o, "archive").status = "ready".into();
    assert_eq!(power(&build(&t, &s, &o).unwrap()), Some(false));
}

#[test]
fn a_new_service_kept_stopped_is_created_then_stopped() {
    let t = one("is_active = false\n");
    let p = build(&t, &skyplan::state::new_state(), &Observed::default()).unwrap();
    assert_eq!(addresses(&p), ["service.archive", "power.archive"]);
    let (create, stop) = (&p.actions[0], &p.actions[1]);
    assert_eq!(create.change, Change::Create);
    assert!(stop.depends_on.contains(&create.id));
}

#[test]
fn a_stop_comes_after_every_other_change_to_its_service() {
    let t = one("is_active = false\nsize = \"sky-4x16\"\ntags = { team = \"dr\" }\n");
    let s = applied(&one(""));
    let p = build(&t, &s, &in_sync(&s)).unwrap();
    let update = p.action("service.archive").unwrap();
    let stop = p.action("power.archive").unwrap();
    assert!(
        stop.depends_on.contains(&update.id),
        "{:?}",
        stop.depends_on
    );
    assert!(stop.id > update.id);
}

#[test]
fn a_start_comes_before_a_resize_of_a_stopped_service() {
    let t = one("size = \"sky-4x16\"\n");
    let s = applied(&one(""));
    let mut o = in_sync(&s);
    remote(&mut o, "archive").status = "stopped".into();
    let p = build(&t, &s, &o).unwrap();
    let start = p.action("power.archive").unwrap();
    let update = p.action("service.archive").unwrap();
    assert!(
        update.depends_on.contains(&start.id),
        "{:?}",
        update.depends_on
    );
}

#[test]
fn a_resize_of_a_service_kept_stopped_is_refused_at_plan_time() {
    let t = one("is_active = false\nsize = \"sky-4x16\"\n");
    let s = applied(&one(""));
    let mut o = in_sync(&s);
    remote(&mut o, "archive").status = "stopped".into();
    let err = build(&t, &s, &o).unwrap_err();
    assert!(
        matches!(&err, PlanError::StoppedChange { key, fields } if key == "archive" && fields == "size"),
        "{err}"
    );
    assert!(err.to_string().contains("is_active = true"), "{err}");

    // Tags and allowlist entries change on a stopped service: no error, no start.
    let t = one("is_active = false\ntags = { team = \"dr\" }\n");
    let p = build(&t, &s, &o).unwrap();
    assert_eq!(addresses(&p), ["service.archive"]);
}

#[test]
fn an_adopted_stopped_service_is_started_after_it_is_recorded() {
    let t = one("");
    let spec = &t.services["archive"].spec;
    let mut o = Observed {
        refreshed: true,
        ..Observed::default()
    };
    let mut found = RemoteService::as_recorded(&applied(&t).resources.services["archive"]);
    found.status = "stopped".into();
    found.name = spec.name.clone();
    o.unmanaged.insert("archive".into(), vec![found]);
    o.allowlists
        .insert("archive".into(), vec!["127.0.0.1/32".into()]);
    let p = build(&t, &skyplan::state::new_state(), &o).unwrap();
    assert_eq!(addresses(&p), ["service.archive", "power.archive"]);
    assert!(p.drift.is_empty(), "adopting is not drift");
    let (adopt, start) = (&p.actions[0], &p.actions[1]);
    assert_eq!(adopt.change, Change::Adopt);
    assert!(start.depends_on.contains(&adopt.id));
}

#[test]
fn a_stopped_service_cannot_take_part_in_replication() {
    let guide = include_str!("../../examples/global-replication.toml");
    for (key, why) in [
        ("secondary", "it replicates from `primary`"),
        ("primary", "[services.secondary] replicates from it"),
    ] {
        let header = format!("[services.{key}]\n");
        let text = guide.replacen(&header, &format!("{header}is_active = false\n"), 1);
        let err = skyplan::topology::parse(&text, std::path::Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{err}");
        assert!(err.contains("is_active = false"), "{err}");
        // Located: the error points at the line that sets it.
        assert!(err.contains("t.toml:"), "{err}");
    }
}

#[test]
fn a_power_action_can_be_targeted() {
    let t = one("is_active = false\ntags = { team = \"dr\" }\n");
    let s = applied(&one(""));
    let o = in_sync(&s);
    let p = skyplan::plan::build(&skyplan::plan::PlanInput {
        topology: &t,
        topology_sha256: "0000",
        state: &s,
        observed: &o,
        flags: skyplan::plan::PlanFlags {
            target: vec!["power.archive".into()],
            ..Default::default()
        },
    })
    .unwrap();
    // The stop and what it depends on (the tags update before it).
    assert_eq!(addresses(&p), ["service.archive", "power.archive"]);
}
