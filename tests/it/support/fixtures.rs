//! Fixtures: topologies from the examples and states "as if applied", for plan tests.

use std::path::Path;

use skyplan::observed::{Observed, ObservedReplication, ObservedService, RemoteService};
use skyplan::state::{
    AllowlistRecord, BackupRecord, ReplicationRecord, RestoreRecord, ServiceRecord, State,
};
use skyplan::topology::Topology;

/// One standalone service, `service.archive`, on the local emulator: the smallest topology.
pub(crate) const STANDALONE: &str = r#"
[provider]
api_key_env = "API_KEY"

[services.archive]
name = "skysql-archive"
provider = "gcp"
region = "us-east4"
size = "sky-2x8"
storage = 100
allow_list = ["127.0.0.1/32"]
"#;

pub(crate) fn topology(src: &str) -> Topology {
    skyplan::topology::parse(src, Path::new("skyplan.toml")).unwrap_or_else(|d| panic!("{d}"))
}

pub(crate) fn example(name: &str) -> Topology {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let src = std::fs::read_to_string(&path).unwrap();
    skyplan::topology::parse(&src, Path::new(&format!("examples/{name}")))
        .unwrap_or_else(|d| panic!("{d}"))
}

/// A state in which everything in `t` was applied and is healthy.
pub(crate) fn applied(t: &Topology) -> State {
    let mut s = skyplan::state::new_state();
    s.lineage = "00000000-0000-4000-8000-000000000000".into();
    s.serial = 7;
    let r = &mut s.resources;
    for (i, (key, svc)) in t.services.iter().enumerate() {
        r.services.insert(
            key.clone(),
            ServiceRecord {
                id: format!("dbpgf{:08}", i + 1),
                spec: svc.spec.clone(),
                fqdn: Some(format!("{}.example.skysql.com", svc.spec.name)),
                port: Some(3306),
                outbound_ips: vec![format!("10.0.0.{}", i + 1)],
                status: Some("ready".into()),
                credentials_from: svc.replication.as_ref().map(|x| x.from.clone()),
                failed_over_to: None,
                role_change: None,
                replace_requested: None,
                last_seen: None,
                in_flight: None,
                config_id: None,
                config: Default::default(),
            },
        );
    }
    for (key, svc) in &t.services {
        let Some(repl) = &svc.replication else {
            continue;
        };
        let src = &r.services[&repl.from];
        let (host, port) = (src.fqdn.clone().unwrap(), src.port.unwrap());
        let replica_id = r.services[key].id.clone();
        let ip = r.services[key].outbound_ips[0].clone();
        r.backups.insert(
            key.clone(),
            BackupRecord {
                source: repl.from.clone(),
                backup_id: Some(format!("backup-{}", repl.from)),
                schedule_id: Some("1".into()),
                gtid_position: Some("1-1-42".into()),
                status: Some("Succeeded".into()),
                in_flight: None,
            },
        );
        r.restores.insert(
            key.clone(),
            RestoreRecord {
                backup_id: format!("backup-{}", repl.from),
                target_id: replica_id,
                restore_id: Some("3".into()),
                completed: true,
                in_flight: None,
            },
        );
        r.allowlists.insert(
            key.clone(),
            AllowlistRecord {
                on: repl.from.clone(),
                entries: vec![format!("{ip}/32")],
                ..Default::default()
            },
        );
        r.replications.insert(
            key.clone(),
            ReplicationRecord {
                source: repl.from.clone(),
                source_host: host,
                source_port: port,
                gtid_position: Some("1-1-42".into()),
                ssl: repl.ssl,
                replication_user: Some("skysql_replication_x@10.0.0.2".into()),
                healthy: true,
                wired_at: None,
            },
        );
    }
    s
}

/// What refresh sees when everything is exactly as the state records it.
pub(crate) fn in_sync(s: &State) -> Observed {
    let mut o = Observed {
        refreshed: true,
        ..Observed::default()
    };
    let res = &s.resources;
    for (key, rec) in &res.services {
        o.services.insert(
            key.clone(),
            ObservedService::Present(RemoteService::as_recorded(rec)),
        );
        let mut entries = rec.spec.allow_list.clone();
        for g in res.allowlists.values().filter(|g| &g.on == key) {
            entries.extend(g.entries.iter().cloned());
        }
        o.allowlists.insert(key.clone(), entries);
    }
    for (r, link) in &res.replications {
        o.replication.insert(
            r.clone(),
            ObservedReplication {
                configured: true,
                io_running: true,
                sql_running: true,
                master_host: Some(link.source_host.clone()),
                master_user: None,
                master_port: Some(link.source_port),
                seconds_behind_master: Some(0),
                gtid_io_pos: Some("1-1-50".into()),
                reconnecting: None,
                reconnected_after: None,
                ..ObservedReplication::default()
            },
        );
    }
    o
}

/// The plan of `t` against `s` and what refresh saw (`o`): the pure core, as `plan` calls it.
pub(crate) fn build(
    t: &Topology,
    s: &State,
    o: &Observed,
) -> Result<skyplan::plan::Plan, skyplan::plan::PlanError> {
    skyplan::plan::build(&skyplan::plan::PlanInput {
        topology: t,
        topology_sha256: "0000",
        state: s,
        observed: o,
        flags: Default::default(),
    })
}

/// As [`build`], with `--allow-data-loss` (a failover may be planned).
pub(crate) fn build_allowing_loss(
    t: &Topology,
    s: &State,
    o: &Observed,
) -> Result<skyplan::plan::Plan, skyplan::plan::PlanError> {
    skyplan::plan::build(&skyplan::plan::PlanInput {
        topology: t,
        topology_sha256: "0000",
        state: s,
        observed: o,
        flags: skyplan::plan::PlanFlags {
            allow_data_loss: true,
            ..Default::default()
        },
    })
}

/// `schemas/plan.schema.json`, compiled.
pub(crate) fn plan_schema() -> jsonschema::JSONSchema {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/plan.schema.json"
    ))
    .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .compile(&schema)
        .expect("plan schema compiles")
}

/// Panics with every violation when `p` as JSON does not match the plan schema.
pub(crate) fn assert_valid(schema: &jsonschema::JSONSchema, p: &skyplan::plan::Plan) {
    let v = serde_json::to_value(p).unwrap();
    let msgs: Vec<String> = match schema.validate(&v) {
        Ok(()) => return,
        Err(errors) => errors
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect(),
    };
    panic!(
        "plan does not match schemas/plan.schema.json:\n{}",
        msgs.join("\n")
    );
}

/// The plan as `plan --format markdown` prints it, with the estimate SkySQL's defaults give
/// (the ops layer annotates plans; the core's `build` leaves the estimate out).
pub(crate) fn markdown(p: &skyplan::plan::Plan, t: &Topology, s: &State) -> String {
    let mut p = p.clone();
    skyplan::plan::estimate::annotate(&mut p, t, s, skyplan::plan::estimate::Base::Cloud);
    skyplan::plan::markdown::render(&p, s)
}
