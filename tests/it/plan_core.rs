//! The pure core: topology × state × observed → plan, rendered as text and JSON.

use crate::support::fixtures::{applied, assert_valid, example, plan_schema, topology};
use skyplan::observed::Observed;
use skyplan::plan::{self, render, Change, Plan, PlanInput};
use skyplan::state::State;
use skyplan::topology::Topology;

fn plan_of(t: &Topology, s: &State) -> Plan {
    plan::build(&PlanInput {
        topology: t,
        topology_sha256: "0000",
        state: s,
        observed: &Observed::offline(),
        flags: Default::default(),
    })
    .unwrap()
}

fn text(p: &Plan) -> String {
    render::render(p, false)
}

fn with(src: &str, from: &str, to: &str) -> Topology {
    assert!(src.contains(from), "{from}");
    topology(&src.replacen(from, to, 1))
}

const GUIDE: &str = include_str!("../../examples/global-replication.toml");

#[test]
fn empty_state_plans_the_guide_in_dependency_order() {
    let t = example("global-replication.toml");
    let p = plan_of(&t, &skyplan::state::new_state());
    let order: Vec<&str> = p.actions.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(
        order,
        [
            "service.primary",
            "service.secondary",
            "backup.primary",
            "restore.secondary",
            "allowlist.primary.secondary",
            "replication.secondary"
        ]
    );
    // The secondary is created by this plan, so its restore is a seed: nothing is wiped, and
    // a greenfield plan flags no step.
    let restore = p.action("restore.secondary").unwrap();
    assert!(!restore.wipes_data);
    assert_eq!(p.summary.wipes_data, 0);
    // Every dependency comes earlier in the order.
    for a in &p.actions {
        assert!(a.depends_on.iter().all(|&d| d < a.id), "{}", a.address);
    }
    let repl = p.action("replication.secondary").unwrap();
    let deps: Vec<&str> = repl
        .depends_on
        .iter()
        .map(|&d| p.actions[d].address.as_str())
        .collect();
    assert!(deps.contains(&"restore.secondary") && deps.contains(&"allowlist.primary.secondary"));
    assert_eq!(p.summary.add, 6);
    insta::assert_snapshot!("guide_from_empty", text(&p));
    let md = crate::support::fixtures::markdown(&p, &t, &skyplan::state::new_state());
    assert!(md.contains("Estimated time: \\~13 min"), "{md}");
    insta::assert_snapshot!("markdown_guide", md);
}

#[test]
fn applied_state_means_no_changes() {
    let t = example("global-replication.toml");
    let p = plan_of(&t, &applied(&t));
    assert!(p.is_empty());
    assert!(text(&p).contains("No changes."), "{}", text(&p));
}

#[test]
fn size_change_is_an_in_place_update_with_old_and_new_values() {
    let before = example("global-replication.toml");
    let t = with(
        GUIDE,
        "region = \"us-west1\"",
        "region = \"us-west1\"\nsize = \"sky-4x16\"",
    );
    let p = plan_of(&t, &applied(&before));
    assert_eq!(p.actions.len(), 1, "{}", text(&p));
    assert_eq!(p.actions[0].change, Change::Update);
    assert!(!p.actions[0].wipes_data);
    insta::assert_snapshot!("size_change", text(&p));
}

#[test]
fn region_change_is_a_replacement_that_destroys_data() {
    let before = example("global-replication.toml");
    let t = with(GUIDE, "region = \"us-west1\"", "region = \"europe-west1\"");
    let p = plan_of(&t, &applied(&before));
    let svc = p.action("service.secondary").unwrap();
    assert_eq!(svc.change, Change::Replace);
    assert!(svc.wipes_data);
    // The replacement is empty: it is seeded and wired again.
    for addr in [
        "backup.primary",
        "restore.secondary",
        "allowlist.primary.secondary",
        "replication.secondary",
    ] {
        assert!(p.action(addr).is_some(), "{addr} missing:\n{}", text(&p));
    }
    insta::assert_snapshot!("region_change", text(&p));
}

#[test]
fn removing_the_replica_stops_replication_revokes_and_deletes() {
    let before = example("global-replication.toml");
    let cut = GUIDE.find("[services.secondary]").unwrap();
    let t = topology(&GUIDE[..cut]);
    let p = plan_of(&t, &applied(&before));
    let order: Vec<&str> = p.actions.iter().map(|a| a.address.as_str()).collect();
    assert_eq!(
        order,
        [
            "replication.secondary",
            "allowlist.primary.secondary",
            "service.secondary"
        ]
    );
    assert_eq!(p.summary.destroy, 3);
    insta::assert_snapshot!("remove_replica", text(&p));
}

#[test]
fn fan_out_replicas_are_independent_branches() {
    let t = example("fan-out.toml");
    let p = plan_of(&t, &skyplan::state::new_state());
    // One backup of the primary seeds all three replicas.
    assert_eq!(
        p.actions
            .iter()
            .filter(|a| a.address.starts_with("backup."))
            .count(),
        1
    );
    let restores: Vec<_> = p
        .actions
        .iter()
        .filter(|a| a.address.starts_with("restore."))
        .collect();
    assert_eq!(restores.len(), 3);
    for r in &restores {
        // A replica's restore never waits for another replica's steps.
        for &d in &r.depends_on {
            let dep = &p.actions[d].address;
            assert!(
                dep == "backup.primary" || dep == &r.address.replace("restore.", "service."),
                "{dep}"
            );
        }
    }
    insta::assert_snapshot!("fan_out_from_empty", text(&p));
}

#[test]
fn json_plan_is_versioned_and_complete() {
    let t = example("global-replication.toml");
    let p = plan_of(&t, &skyplan::state::new_state());
    let mut v = serde_json::to_value(&p).unwrap();
    v["lineage"] = "<lineage>".into();
    insta::assert_json_snapshot!("guide_json", v);
}

#[test]
fn storage_cannot_shrink() {
    let before = example("global-replication.toml");
    let mut s = applied(&before);
    s.resources
        .services
        .get_mut("primary")
        .unwrap()
        .spec
        .storage = 200;
    let err = plan::build(&PlanInput {
        topology: &before,
        topology_sha256: "0",
        state: &s,
        observed: &Observed::offline(),
        flags: Default::default(),
    })
    .unwrap_err();
    assert!(err.to_string().contains("storage can only grow"), "{err}");
}

#[test]
fn destroy_plan_tears_down_replicas_before_sources() {
    let t = example("global-replication.toml");
    let p = plan::build_destroy(&PlanInput {
        topology: &t,
        topology_sha256: "0",
        state: &applied(&t),
        observed: &Observed::offline(),
        flags: Default::default(),
    })
    .unwrap();
    let order: Vec<&str> = p.actions.iter().map(|a| a.address.as_str()).collect();
    let pos = |a: &str| order.iter().position(|x| *x == a).unwrap();
    assert!(pos("replication.secondary") < pos("service.secondary"));
    assert!(
        pos("service.secondary") < pos("service.primary"),
        "{order:?}"
    );
}

#[test]
fn deletion_protection_refuses_destroy() {
    let t = with(
        GUIDE,
        "name = \"skysql-primary\"",
        "name = \"skysql-primary\"\ndeletion_protection = true",
    );
    let err = plan::build_destroy(&PlanInput {
        topology: &t,
        topology_sha256: "0",
        state: &applied(&t),
        observed: &Observed::offline(),
        flags: Default::default(),
    })
    .unwrap_err();
    assert!(err.to_string().contains("deletion_protection"), "{err}");
}

#[test]
fn every_produced_plan_matches_the_plan_schema() {
    let schema = plan_schema();
    let guide = example("global-replication.toml");
    let fan = example("fan-out.toml");
    assert_valid(&schema, &plan_of(&guide, &skyplan::state::new_state()));
    assert_valid(&schema, &plan_of(&fan, &skyplan::state::new_state()));
    assert_valid(&schema, &plan_of(&guide, &applied(&guide)));
    let moved = with(
        GUIDE,
        "region = \"us-west1\"",
        "region = \"europe-west1\"\nsize = \"sky-4x16\"",
    );
    assert_valid(&schema, &plan_of(&moved, &applied(&guide)));
    let cut = GUIDE.find("[services.secondary]").unwrap();
    assert_valid(
        &schema,
        &plan_of(&topology(&GUIDE[..cut]), &applied(&guide)),
    );
    let destroy = plan::build_destroy(&PlanInput {
        topology: &guide,
        topology_sha256: "0",
        state: &applied(&guide),
        observed: &Observed::offline(),
        flags: Default::default(),
    })
    .unwrap();
    assert_valid(&schema, &destroy);
    // And the schema is not vacuous: a plan with a bogus action kind fails it.
    let mut v = serde_json::to_value(plan_of(&guide, &skyplan::state::new_state())).unwrap();
    v["actions"][0]["kind"] = "launch_rocket".into();
    assert!(schema.validate(&v).is_err());
}

/// The API leaving fields out (or spelling them in another case) must never plan a replace.
#[test]
fn fields_the_api_leaves_out_or_recases_do_not_replace_anything() {
    use skyplan::observed::{ObservedService, RemoteService};
    let t = example("global-replication.toml");
    let s = applied(&t);
    let mut observed = Observed {
        refreshed: true,
        ..Observed::default()
    };
    for (key, rec) in &s.resources.services {
        observed.services.insert(
            key.clone(),
            ObservedService::Present(RemoteService {
                id: rec.id.clone(),
                name: rec.spec.name.clone(),
                status: "ready".into(),
                provider: "GCP".into(),
                region: String::new(),
                architecture: String::new(),
                size: String::new(),
                nodes: 0,
                storage: 0,
                ssl_enabled: false,
                fqdn: rec.fqdn.clone(),
                port: rec.port,
                outbound_ips: rec.outbound_ips.clone(),
                tags: Default::default(),
                config_id: None,
            }),
        );
    }
    let p = plan::build(&PlanInput {
        topology: &t,
        topology_sha256: "0",
        state: &s,
        observed: &observed,
        flags: Default::default(),
    })
    .unwrap();
    assert!(p.actions.is_empty(), "{}", text(&p));
    assert!(p.drift.is_empty(), "{:?}", p.drift);
}

/// Issue 25: a greenfield plan of every example flags no step — its restores seed services
/// the same plan creates, so nothing that exists is wiped.
#[test]
fn greenfield_plans_of_the_examples_flag_no_wipe() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let t = crate::support::fixtures::example(&name);
        let p = crate::support::fixtures::build(
            &t,
            &skyplan::state::State::with_lineage("test"),
            &skyplan::observed::Observed::offline(),
        )
        .unwrap();
        assert_eq!(p.summary.wipes_data, 0, "{name}");
        assert!(p.actions.iter().all(|a| !a.wipes_data), "{name}");
        seen += 1;
    }
    assert!(seen >= 3, "the examples were found");
}
