//! Adoption in the pure core: a service that already carries a topology key's name, and that
//! the state does not record, is planned as `adopt` (never `create`), with its real values and
//! what apply changes on it; what cannot change in place is an error at plan time.

use skyplan::observed::{Observed, RemoteService};
use skyplan::plan::{self, render, Change, Plan, PlanError, PlanInput};
use skyplan::topology::Topology;

use crate::support::fixtures::{example, topology};

const GUIDE: &str = include_str!("../../examples/global-replication.toml");

/// The guide's primary, made by hand: what the API reports for it.
fn their_primary(t: &Topology) -> RemoteService {
    let spec = &t.services["primary"].spec;
    RemoteService {
        id: "dbpgf00000042".into(),
        name: spec.name.clone(),
        status: "ready".into(),
        provider: spec.provider.clone(),
        region: spec.region.clone(),
        architecture: spec.architecture.clone(),
        size: spec.size.clone(),
        nodes: spec.nodes,
        storage: spec.storage,
        ssl_enabled: spec.ssl_enabled,
        fqdn: Some("primary.example".into()),
        port: Some(3306),
        outbound_ips: vec!["10.0.0.1".into()],
        tags: Default::default(),
        config_id: None,
    }
}

fn observed_with(found: Vec<RemoteService>, allowlist: &[&str]) -> Observed {
    let mut o = Observed {
        refreshed: true,
        ..Observed::default()
    };
    o.unmanaged.insert("primary".into(), found);
    o.allowlists.insert(
        "primary".into(),
        allowlist.iter().map(|s| s.to_string()).collect(),
    );
    o
}

fn plan_of(t: &Topology, observed: &Observed) -> Result<Plan, PlanError> {
    crate::support::fixtures::build(t, &skyplan::state::new_state(), observed)
}

#[test]
fn an_existing_primary_is_adopted_and_the_secondary_seeded_from_it() {
    let t = example("global-replication.toml");
    let p = plan_of(
        &t,
        &observed_with(vec![their_primary(&t)], &["127.0.0.1/32"]),
    )
    .unwrap();
    let adopt = p.action("service.primary").unwrap();
    assert_eq!(adopt.change, Change::Adopt);
    assert!(!adopt.wipes_data);
    assert!(adopt.summary.contains("dbpgf00000042"), "{}", adopt.summary);
    assert_eq!(p.summary.adopt, 1);
    assert_eq!(
        p.summary.add, 5,
        "the adopted primary is not counted as added"
    );
    // Nothing wipes the adopted primary; the new secondary is seeded from it.
    for a in &p.actions {
        assert!(
            !(a.wipes_data && a.address.ends_with(".primary")),
            "{}",
            a.address
        );
    }
    let backup = p.action("backup.primary").unwrap();
    assert!(backup.depends_on.contains(&adopt.id));
    let text = render::render(&p, false);
    assert!(text.contains(" <= service.primary"), "{text}");
    assert!(text.contains("Plan: 1 to adopt, 5 to add"), "{text}");
    insta::assert_snapshot!("adopt_guide_primary", text);
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["summary"]["adopt"], 1);
    assert_eq!(json["actions"][0]["change"], "adopt");
    assert_eq!(json["actions"][0]["kind"], "adopt_service");
    assert_eq!(json["actions"][0]["service_id"], "dbpgf00000042");
}

#[test]
fn a_differing_existing_service_shows_the_in_place_update_never_a_silent_change_or_replace() {
    let t = example("global-replication.toml");
    let mut theirs = their_primary(&t);
    theirs.size = "sky-4x16".into();
    theirs.storage = 100;
    // The file asks for sky-2x8: a resize back is shown old -> new, as an adoption.
    let p = plan_of(&t, &observed_with(vec![theirs.clone()], &[])).unwrap();
    let adopt = p.action("service.primary").unwrap();
    assert_eq!(adopt.change, Change::Adopt);
    assert_eq!(adopt.before.as_ref().unwrap()["size"], "sky-4x16");
    assert_eq!(adopt.after.as_ref().unwrap()["size"], "sky-2x8");
    assert!(adopt.summary.contains("then update"), "{}", adopt.summary);
    let text = render::render(&p, false);
    insta::assert_snapshot!("adopt_with_resize", text);
    assert!(p.actions.iter().all(|a| a.change != Change::Replace));
    // The topology's allowlist entry is added; theirs (not listed) are not shown or removed.
    assert_eq!(
        adopt.before.as_ref().unwrap()["allow_list"],
        serde_json::json!([])
    );

    // Storage that would shrink is refused at plan time.
    theirs.storage = 200;
    let e = plan_of(&t, &observed_with(vec![theirs], &[])).unwrap_err();
    assert!(
        matches!(
            e,
            PlanError::StorageShrink {
                from: 200,
                to: 100,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn an_immutable_difference_is_refused_at_plan_time_with_the_value_to_write() {
    let t = example("global-replication.toml");
    let mut theirs = their_primary(&t);
    theirs.region = "us-central1".into();
    theirs.ssl_enabled = false;
    let e = plan_of(&t, &observed_with(vec![theirs], &[])).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("will not adopt"), "{msg}");
    assert!(
        msg.contains("region us-central1 (topology: us-east4)"),
        "{msg}"
    );
    assert!(msg.contains("ssl_enabled false (topology: true)"), "{msg}");
    assert!(
        msg.contains("region = \"us-central1\", ssl_enabled = false"),
        "{msg}"
    );
}

#[test]
fn a_name_twice_a_failed_service_or_one_being_deleted_is_refused() {
    let t = example("global-replication.toml");
    let mut other = their_primary(&t);
    other.id = "dbpgf00000043".into();
    let e = plan_of(&t, &observed_with(vec![their_primary(&t), other], &[])).unwrap_err();
    assert!(
        matches!(e, PlanError::AmbiguousName { count: 2, .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("skyplan import service.primary"),
        "{e}"
    );
    for status in ["failed", "pending_delete", "retired"] {
        let mut theirs = their_primary(&t);
        theirs.status = status.into();
        let e = plan_of(&t, &observed_with(vec![theirs], &[])).unwrap_err();
        assert!(matches!(e, PlanError::NotAdoptable { .. }), "{status}: {e}");
    }
}

#[test]
fn an_existing_replica_is_adopted_and_its_reseed_is_flagged_as_a_wipe() {
    let t = topology(GUIDE);
    let spec = &t.services["secondary"].spec;
    let theirs = RemoteService {
        id: "dbpgf00000099".into(),
        name: spec.name.clone(),
        region: spec.region.clone(),
        ..their_primary(&t)
    };
    let mut o = Observed {
        refreshed: true,
        ..Observed::default()
    };
    o.unmanaged.insert("secondary".into(), vec![theirs]);
    let p = plan_of(&t, &o).unwrap();
    assert_eq!(p.action("service.secondary").unwrap().change, Change::Adopt);
    let restore = p.action("restore.secondary").unwrap();
    assert!(
        restore.wipes_data,
        "the re-seed of an adopted replica is flagged"
    );
    assert!(p
        .action("service.secondary")
        .unwrap()
        .reason
        .as_deref()
        .unwrap()
        .contains("seeded as the topology says"));
}

#[test]
fn the_plan_names_the_existing_backup_it_seeds_from() {
    use skyplan::skysql::types::{Backup, BackupStatus};
    let t = topology(&GUIDE.replacen("seed = \"new-backup\"", "seed = \"latest-backup\"", 1));
    let mut o = observed_with(vec![their_primary(&t)], &["127.0.0.1/32"]);
    o.at = Some(time::OffsetDateTime::now_utc());
    let b = |id: &str, ago_h: i64, status| Backup {
        id: id.into(),
        status,
        backup_type: "full".into(),
        end_time: Some(
            (time::OffsetDateTime::now_utc() - time::Duration::hours(ago_h))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap(),
        ),
        binlog_gtid_position: Some("0-1000-42".into()),
        ..Backup::default()
    };
    o.backups.insert(
        "primary".into(),
        vec![
            b("dbbkp-old", 30, BackupStatus::Succeeded),
            b("dbbkp-new", 2, BackupStatus::Succeeded),
            b("dbbkp-running", 1, BackupStatus::Running),
        ],
    );
    let p = plan_of(&t, &o).unwrap();
    let backup = p.action("backup.primary.latest").unwrap();
    assert!(
        backup.summary.contains("existing backup dbbkp-new")
            && backup.summary.contains("at GTID 0-1000-42"),
        "{}",
        backup.summary
    );
    assert_eq!(backup.after.as_ref().unwrap()["backup_id"], "dbbkp-new");
    assert_eq!(backup.after.as_ref().unwrap()["gtid_position"], "0-1000-42");
    // Used as it is: nothing is added (marker `=`), and the restore and the wiring name it.
    assert_eq!(backup.change, skyplan::plan::Change::Read);
    let text = skyplan::plan::render::render(&p, false);
    assert!(text.contains("  = backup.primary.latest"), "{text}");
    assert!(
        p.action("restore.secondary")
            .unwrap()
            .summary
            .contains("backup.primary (dbbkp-new)"),
        "{text}"
    );
    assert!(
        p.action("replication.secondary")
            .unwrap()
            .summary
            .contains("at the backup's GTID 0-1000-42"),
        "{text}"
    );
    let creates = p
        .actions
        .iter()
        .filter(|a| a.change == skyplan::plan::Change::Create);
    assert_eq!(
        p.summary.add,
        creates.count(),
        "the backup is not counted as an add"
    );

    // Only old backups: refused at plan time, naming the retention.
    o.backups.insert(
        "primary".into(),
        vec![b("dbbkp-ancient", 24 * 30, BackupStatus::Succeeded)],
    );
    let e = plan_of(&t, &o).unwrap_err();
    assert!(
        e.to_string()
            .contains("older than the source's binlog retention"),
        "{e}"
    );
}

#[test]
fn a_service_tagged_by_another_workspace_is_never_adopted() {
    let t = example("global-replication.toml");
    let mut theirs = their_primary(&t);
    theirs.tags = skyplan::ownership::tags(&Default::default(), "other-lineage", "db");
    let e = plan_of(&t, &observed_with(vec![theirs.clone()], &[])).unwrap_err();
    assert!(
        matches!(&e, PlanError::OwnedElsewhere { lineage, owner_key, .. }
            if lineage == "other-lineage" && owner_key == "db"),
        "{e}"
    );
    assert!(e.to_string().contains("renamed or copied"), "{e}");

    // Tagged by this very workspace (a service its state lost track of): ours to take back.
    let state = skyplan::state::new_state();
    theirs.tags = skyplan::ownership::tags(&Default::default(), &state.lineage, "primary");
    let p = plan::build(&PlanInput {
        topology: &t,
        topology_sha256: "0000",
        state: &state,
        observed: &observed_with(vec![theirs], &[]),
        flags: Default::default(),
    })
    .unwrap();
    assert_eq!(p.action("service.primary").unwrap().change, Change::Adopt);
}

#[test]
fn a_pinned_id_is_adopted_by_id_and_must_exist_and_match() {
    let src = GUIDE.replacen(
        "[services.primary]\n",
        "[services.primary]\nid = \"dbpgf00000042\"\n",
        1,
    );
    assert_ne!(src, GUIDE, "the guide has a [services.primary] table");
    let t = topology(&src);
    assert_eq!(t.services["primary"].id.as_deref(), Some("dbpgf00000042"));
    let p = plan_of(&t, &observed_with(vec![their_primary(&t)], &[])).unwrap();
    assert_eq!(p.action("service.primary").unwrap().change, Change::Adopt);

    // Not found (refresh saw nothing under that id): an error, never a create.
    let e = plan_of(&t, &observed_with(vec![], &[])).unwrap_err();
    assert!(matches!(e, PlanError::PinnedIdMissing { .. }), "{e}");
    // Found, but called otherwise: the name cannot change in place.
    let mut renamed = their_primary(&t);
    renamed.name = "prod-db".into();
    let e = plan_of(&t, &observed_with(vec![renamed], &[])).unwrap_err();
    assert!(e.to_string().contains("name = \"prod-db\""), "{e}");
    // The state records another id under the key.
    let mut state = skyplan::state::new_state();
    let mut rec = crate::support::fixtures::applied(&t).resources.services["primary"].clone();
    rec.id = "dbpgf00000001".into();
    state.resources.services.insert("primary".into(), rec);
    let e = plan::build(&PlanInput {
        topology: &t,
        topology_sha256: "0000",
        state: &state,
        observed: &Observed::offline(),
        flags: Default::default(),
    })
    .unwrap_err();
    assert!(matches!(e, PlanError::PinnedIdMismatch { .. }), "{e}");
}

#[test]
fn an_id_cannot_be_shared_or_set_in_defaults() {
    let twice = GUIDE
        .replacen(
            "[services.primary]\n",
            "[services.primary]\nid = \"dbpgf1\"\n",
            1,
        )
        .replacen(
            "[services.secondary]\n",
            "[services.secondary]\nid = \"dbpgf1\"\n",
            1,
        );
    let e = skyplan::topology::parse(&twice, std::path::Path::new("t.toml")).unwrap_err();
    assert!(
        e.to_string()
            .contains("already pinned by [services.primary]"),
        "{e}"
    );
    let defaults = GUIDE.replacen("[defaults]\n", "[defaults]\nid = \"dbpgf1\"\n", 1);
    assert_ne!(defaults, GUIDE);
    let e = skyplan::topology::parse(&defaults, std::path::Path::new("t.toml")).unwrap_err();
    assert!(
        e.to_string().contains("`id` cannot be set in [defaults]"),
        "{e}"
    );
}
