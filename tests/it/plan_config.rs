//! Server configuration in the pure core (issue 24): what `config.KEY` and `restart.KEY`
//! steps a topology's `config` table and the services' roles plan, against hand-built
//! observations of the configuration and of the running servers.

use std::collections::BTreeMap;

use crate::support::fixtures::{applied, build, example, in_sync, topology};
use skyplan::config::{Variable, Variables};
use skyplan::observed::{Observed, ObservedConfig};
use skyplan::plan::{render, ActionKind, Change, DriftKind, Plan};
use skyplan::state::State;
use skyplan::topology::Topology;

const GUIDE: &str = include_str!("../../examples/global-replication.toml");

fn with_config(extra: &str) -> Topology {
    topology(&GUIDE.replace(
        "# The globally available copy.",
        &format!("[services.primary.config]\n{extra}\n\n# The globally available copy."),
    ))
}

fn catalog() -> BTreeMap<String, Variables> {
    let var = |name: &str, restart: bool| {
        (
            name.to_string(),
            Variable {
                id: format!("cfg-{name}"),
                name: name.into(),
                requires_restart: restart,
                ..Default::default()
            },
        )
    };
    let vars: Variables = [
        var("max_connections", false),
        var("read_only", false),
        var("innodb_buffer_pool_size", true),
    ]
    .into();
    [("standalone".to_string(), vars)].into()
}

/// The guide applied with configurations that hold what `t` asks (and roles), observed so.
fn configured(t: &Topology) -> (State, Observed) {
    let mut s = applied(&example("global-replication.toml"));
    let mut o = in_sync(&s);
    o.config_vars = catalog();
    for (key, svc) in &t.services {
        let want = skyplan::config::desired(svc, o.config_vars.get(&svc.spec.topology));
        let rec = s.resources.services.get_mut(key).unwrap();
        rec.config_id = Some(format!("cfg-of-{key}"));
        rec.config = want.clone();
        let running = want
            .iter()
            .filter(|(n, _)| *n != "read_only")
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        o.configs.insert(
            key.clone(),
            ObservedConfig {
                values: Some(want),
                running,
            },
        );
    }
    // Attached, as the API reports it.
    let o = {
        let mut o = o;
        for (key, svc) in o.services.iter_mut() {
            if let skyplan::observed::ObservedService::Present(r) = svc {
                r.config_id = Some(format!("cfg-of-{key}"));
            }
        }
        o
    };
    (s, o)
}

fn text(p: &Plan) -> String {
    render::render(p, false)
}

#[test]
fn a_new_topology_keeps_roles_and_variables_in_a_configuration_per_service() {
    let t = with_config("max_connections = 321");
    let s = State::with_lineage("test");
    let o = Observed {
        refreshed: true,
        config_vars: catalog(),
        ..Default::default()
    };
    let p = build(&t, &s, &o).unwrap();
    let primary = p.action("config.primary").expect("config.primary");
    assert_eq!(primary.change, Change::Create);
    let ActionKind::ConfigureService { values, live, .. } = &primary.kind else {
        panic!("{primary:?}")
    };
    assert_eq!(values["max_connections"], "321");
    assert_eq!(values["read_only"], "OFF");
    assert_eq!(live.keys().collect::<Vec<_>>(), ["max_connections"]);
    let secondary = p.action("config.secondary").expect("config.secondary");
    let ActionKind::ConfigureService { values, .. } = &secondary.kind else {
        panic!()
    };
    assert_eq!(
        values["read_only"], "ON",
        "a replica is fenced in its configuration"
    );
    // The replica's configuration is attached before its restore starts it again.
    let restore = p.action("restore.secondary").unwrap();
    assert!(restore.depends_on.contains(&secondary.id), "{}", text(&p));
    assert!(
        p.action("restart.primary").is_none(),
        "nothing needs a restart"
    );
}

#[test]
fn in_sync_configurations_plan_nothing() {
    let t = with_config("max_connections = 321");
    let (s, o) = configured(&t);
    let p = build(&t, &s, &o).unwrap();
    assert!(p.is_empty(), "{}", text(&p));
    assert!(p.drift.is_empty(), "{:?}", p.drift);
}

#[test]
fn a_changed_variable_shows_old_and_new_and_a_restart_only_when_the_catalog_says_so() {
    let old = with_config("max_connections = 321\ninnodb_buffer_pool_size = \"16M\"");
    let (s, o) = configured(&old);
    let t = with_config("max_connections = 500\ninnodb_buffer_pool_size = \"32M\"");
    let p = build(&t, &s, &o).unwrap();
    let out = text(&p);
    let config = p.action("config.primary").expect(&out);
    assert_eq!(config.change, Change::Update);
    assert!(
        out.contains("max_connections") && out.contains("321") && out.contains("500"),
        "{out}"
    );
    let restart = p.action("restart.primary").expect(&out);
    let ActionKind::RestartService { variables, .. } = &restart.kind else {
        panic!()
    };
    assert_eq!(variables, &["innodb_buffer_pool_size"]);
    assert!(restart.depends_on.contains(&config.id));
    assert!(
        out.contains("!! this step restarts the server")
            && out.contains("1 step restarts a server."),
        "{out}"
    );
    assert_eq!(p.summary.restarts, 1);
}

#[test]
fn a_hand_change_on_the_server_or_in_the_configuration_is_drift() {
    let t = with_config("max_connections = 321");
    let (s, mut o) = configured(&t);
    o.configs
        .get_mut("primary")
        .unwrap()
        .running
        .insert("max_connections".into(), "100".into());
    let p = build(&t, &s, &o).unwrap();
    assert_eq!(p.drift.len(), 1, "{}", text(&p));
    assert_eq!(p.drift[0].kind, DriftKind::ConfigChanged);
    assert!(p.drift[0]
        .detail
        .contains("max_connections is 100, not 321"));
    let ActionKind::ConfigureService { live, set, .. } = &p.action("config.primary").unwrap().kind
    else {
        panic!()
    };
    assert_eq!(live["max_connections"], "321");
    assert!(set.is_empty(), "the configuration itself is right");

    // Edited in the configuration (the portal): set back there.
    let (s, mut o) = configured(&t);
    o.configs
        .get_mut("secondary")
        .unwrap()
        .values
        .as_mut()
        .unwrap()
        .insert("read_only".into(), "OFF".into());
    let p = build(&t, &s, &o).unwrap();
    assert_eq!(p.drift[0].resource, "config.secondary", "{}", text(&p));
    let ActionKind::ConfigureService { set, .. } = &p.action("config.secondary").unwrap().kind
    else {
        panic!()
    };
    assert_eq!(set["read_only"], "ON");
}

#[test]
fn a_switchover_flips_both_configurations_after_the_role_change() {
    let t = topology(GUIDE);
    let (s, mut o) = configured(&t);
    for key in s.resources.services.keys() {
        o.gtids.insert(
            key.clone(),
            skyplan::gtid::ObservedGtids {
                binlog_state: "1-1001-40".into(),
                current_pos: "1-1001-40".into(),
                slave_pos: String::new(),
                binlog_start: Some([(1, 0)].into_iter().collect()),
            },
        );
    }
    // The file makes the secondary the primary.
    let start = GUIDE.find("[services.secondary.replication]").unwrap();
    let flipped = topology(&format!(
        "{}[services.primary.replication]\nfrom = \"secondary\"\nseed = \"new-backup\"\n",
        &GUIDE[..start]
    ));
    let p = build(&flipped, &s, &o).unwrap();
    let out = text(&p);
    let switch = p.action("switchover.secondary").expect(&out);
    for (key, want) in [("primary", "ON"), ("secondary", "OFF")] {
        let a = p.action(&format!("config.{key}")).expect(&out);
        let ActionKind::ConfigureService { set, live, .. } = &a.kind else {
            panic!()
        };
        assert_eq!(set["read_only"], want, "{out}");
        assert!(
            live.is_empty(),
            "read_only is never set live by a configuration step"
        );
        assert!(a.depends_on.contains(&switch.id), "{out}");
    }
}

#[test]
fn a_cloud_without_a_settable_read_only_keeps_roles_out_of_the_configuration() {
    let t = topology(GUIDE);
    let s = applied(&example("global-replication.toml"));
    let mut o = in_sync(&s);
    let mut cat = catalog();
    cat.get_mut("standalone").unwrap().remove("read_only");
    o.config_vars = cat;
    let p = build(&t, &s, &o).unwrap();
    assert!(p.is_empty(), "{}", text(&p));
}
