//! Drift in the pure core: hand-built `Observed` (what refresh would see) against the guide
//! applied, for every kind of drift: what is reported, what repairs it, how it renders, and
//! what must NOT count as drift (normalised CIDRs, NULL lag, a lag under the threshold).

use crate::support::fixtures::{applied, build, example, in_sync, topology};
use skyplan::observed::{Observed, ObservedReplication, ObservedService, RemoteService};
use skyplan::plan::{self, render, ActionKind, Change, DriftKind, Plan, WireMode};
use skyplan::state::State;
use skyplan::topology::Topology;

const GUIDE: &str = include_str!("../../examples/global-replication.toml");

fn guide() -> (Topology, State) {
    let t = example("global-replication.toml");
    let s = applied(&t);
    (t, s)
}

fn plan_with(t: &Topology, s: &State, o: &Observed) -> Plan {
    build(t, s, o).unwrap()
}

fn text(p: &Plan) -> String {
    render::render(p, false)
}

fn kinds(p: &Plan) -> Vec<(&str, DriftKind)> {
    p.drift
        .iter()
        .map(|d| (d.resource.as_str(), d.kind))
        .collect()
}

fn addresses(p: &Plan) -> Vec<&str> {
    p.actions.iter().map(|a| a.address.as_str()).collect()
}

fn repl(o: &mut Observed) -> &mut ObservedReplication {
    o.replication.get_mut("secondary").unwrap()
}

fn remote<'a>(o: &'a mut Observed, key: &str) -> &'a mut RemoteService {
    match o.services.get_mut(key) {
        Some(ObservedService::Present(r)) => r,
        _ => panic!("{key} not present"),
    }
}

#[test]
fn in_sync_is_no_drift_and_no_changes() {
    let (t, s) = guide();
    let p = plan_with(&t, &s, &in_sync(&s));
    assert!(p.is_empty(), "{}", text(&p));
    assert!(p.drift.is_empty());
    assert!(text(&p).starts_with("No changes."), "{}", text(&p));
}

#[test]
fn quiet_when_all_is_well_in_every_harmless_variant() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    // The cloud lists `1.2.3.4` for `1.2.3.4/32`, and a netblock with host bits set.
    for entries in o.allowlists.values_mut() {
        for e in entries.iter_mut() {
            *e = e.trim_end_matches("/32").to_string();
        }
    }
    // Lag unknown (NULL), as right after a start.
    repl(&mut o).seconds_behind_master = None;
    assert!(plan_with(&t, &s, &o).is_empty());
    // Lag exactly at the default threshold is not over it.
    repl(&mut o).seconds_behind_master = Some(300);
    assert!(plan_with(&t, &s, &o).is_empty());
    // A resize by hand to exactly what the topology now asks for: nothing to do.
    let bigger = topology(&GUIDE.replacen(
        "region = \"us-east4\"",
        "region = \"us-east4\"\nsize = \"sky-4x16\"",
        1,
    ));
    remote(&mut o, "primary").size = "sky-4x16".into();
    let p = plan_with(&bigger, &s, &o);
    assert!(p.is_empty(), "{}", text(&p));
}

#[test]
fn netblock_entries_compare_by_network() {
    // The topology writes the network (host bits are refused there); the cloud may list it
    // with host bits, as it was typed into the portal.
    let src = GUIDE.replacen(
        "allow_list = [\"127.0.0.1/32\"]",
        "allow_list = [\"10.1.2.0/24\"]",
        1,
    );
    let t = topology(&src);
    let s = applied(&t);
    let mut o = in_sync(&s);
    for entries in o.allowlists.values_mut() {
        for e in entries.iter_mut() {
            if e == "10.1.2.0/24" {
                *e = "10.1.2.3/24".into();
            }
        }
    }
    let p = plan_with(&t, &s, &o);
    assert!(p.is_empty(), "{}", text(&p));
}

#[test]
fn stopped_replication_is_restarted_where_it_stopped() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    let r = repl(&mut o);
    r.io_running = false;
    r.sql_running = false;
    r.seconds_behind_master = None;
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("replication.secondary", DriftKind::ReplicationStopped)]
    );
    assert_eq!(addresses(&p), ["replication.secondary"]);
    assert!(matches!(
        p.actions[0].kind,
        ActionKind::Replicate {
            mode: WireMode::Restart,
            ..
        }
    ));
    assert!(!p.is_empty());
    insta::assert_snapshot!("replication_stopped", text(&p));
}

#[test]
fn reset_channel_is_rewired_from_the_replicas_own_position() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    *repl(&mut o) = ObservedReplication::default();
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("replication.secondary", DriftKind::ReplicationMissing)]
    );
    assert!(matches!(
        p.actions[..],
        [plan::Action {
            kind: ActionKind::Replicate {
                mode: WireMode::Rewire,
                ..
            },
            wipes_data: false,
            ..
        }]
    ));
    insta::assert_snapshot!("replication_reset", text(&p));
}

#[test]
fn sql_error_reseeds_and_says_it_wipes_the_replica() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    let r = repl(&mut o);
    r.sql_running = false;
    r.seconds_behind_master = None;
    r.last_sql_errno = 1062;
    r.last_sql_error = "Could not execute Write_rows_v1 event on table app.notes; Duplicate entry '1000' for key 'PRIMARY'".into();
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("replication.secondary", DriftKind::ReplicationBroken)]
    );
    assert_eq!(
        addresses(&p),
        [
            "backup.primary",
            "restore.secondary",
            "replication.secondary"
        ]
    );
    let restore = p.action("restore.secondary").unwrap();
    assert!(restore.wipes_data);
    assert!(restore.reason.as_deref().unwrap().contains("1062"));
    assert_eq!(p.summary.wipes_data, 1);
    insta::assert_snapshot!("replication_broken_sql", text(&p));
}

#[test]
fn position_gone_from_the_binlogs_reseeds() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    let r = repl(&mut o);
    r.io_running = false;
    r.last_io_errno = 1236;
    r.last_io_error = "Could not find GTID state requested by slave in any binlog files".into();
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("replication.secondary", DriftKind::ReplicationBroken)]
    );
    assert!(p.action("restore.secondary").unwrap().wipes_data);
    assert!(p.drift[0].detail.contains("1236"));
}

#[test]
fn io_error_restarts_and_shows_the_servers_error() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    let r = repl(&mut o);
    r.io_running = false;
    r.last_io_errno = 2003;
    r.last_io_error = "error connecting to master".into();
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("replication.secondary", DriftKind::ReplicationBroken)]
    );
    assert_eq!(addresses(&p), ["replication.secondary"]);
    assert!(
        text(&p).contains("IO error 2003: error connecting to master"),
        "{}",
        text(&p)
    );
    assert_eq!(
        p.drift[0].after["last_io_error"],
        "2003: error connecting to master"
    );
}

#[test]
fn replica_pointing_elsewhere_is_reseeded() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    repl(&mut o).master_host = Some("rogue.example.com".into());
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("replication.secondary", DriftKind::ReplicationRepointed)]
    );
    assert!(p.drift[0].detail.contains("rogue.example.com"));
    assert!(p.action("restore.secondary").is_some());
}

#[test]
fn lag_over_the_topologys_threshold_is_reported_for_a_person() {
    let t = topology(&GUIDE.replacen("ssl = true ", "max_lag_seconds = 60\nssl = true ", 1));
    let s = applied(&t);
    let mut o = in_sync(&s);
    repl(&mut o).seconds_behind_master = Some(60);
    assert!(plan_with(&t, &s, &o).is_empty());
    repl(&mut o).seconds_behind_master = Some(61);
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("replication.secondary", DriftKind::ReplicationLagging)]
    );
    assert!(p.actions.is_empty());
    assert!(!p.is_empty(), "lagging is drift: exit 2");
    insta::assert_snapshot!("replication_lagging", text(&p));
}

#[test]
fn removed_grant_is_added_again() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    o.allowlists
        .insert("primary".into(), vec!["127.0.0.1/32".into()]);
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [(
            "allowlist.primary.secondary",
            DriftKind::AllowlistEntryRemoved
        )]
    );
    assert_eq!(addresses(&p), ["allowlist.primary.secondary"]);
    assert_eq!(p.actions[0].change, Change::Create);
    insta::assert_snapshot!("allowlist_entry_removed", text(&p));
}

#[test]
fn user_listed_entry_removed_is_put_back_and_hand_added_ones_left_alone() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    // On the secondary: the user's 127.0.0.1/32 is gone, 203.0.113.9 was added by hand.
    o.allowlists
        .insert("secondary".into(), vec!["203.0.113.9".into()]);
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [
            ("service.secondary", DriftKind::AllowlistEntryAdded),
            ("service.secondary", DriftKind::AllowListChanged),
        ]
    );
    let update = p.action("service.secondary").unwrap();
    assert_eq!(update.change, Change::Update);
    assert_eq!(
        update.reason.as_deref(),
        Some("allow_list changed outside skyplan")
    );
    match &update.kind {
        ActionKind::UpdateService { from, to, .. } => {
            assert!(from.allow_list.is_empty());
            assert_eq!(to.allow_list, ["127.0.0.1/32"]);
        }
        other => panic!("{other:?}"),
    }
    insta::assert_snapshot!("allow_list_changed", text(&p));

    // Only the hand-added entry: reported, informational, nothing to do, exit 0.
    o.allowlists.insert(
        "secondary".into(),
        vec!["127.0.0.1/32".into(), "203.0.113.9/32".into()],
    );
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("service.secondary", DriftKind::AllowlistEntryAdded)]
    );
    assert!(p.is_empty());
    assert!(text(&p).contains("No changes."), "{}", text(&p));
}

#[test]
fn resize_outside_skyplan_is_resized_back() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    let r = remote(&mut o, "primary");
    r.size = "sky-4x16".into();
    r.storage = 200;
    let p = plan_with(&t, &s, &o);
    assert_eq!(kinds(&p), [("service.primary", DriftKind::ServiceResized)]);
    assert_eq!(
        p.drift[0].before,
        serde_json::json!({"size": "sky-2x8", "storage": 100})
    );
    assert_eq!(
        p.drift[0].after,
        serde_json::json!({"size": "sky-4x16", "storage": 200})
    );
    // The size goes back; storage cannot shrink, so it stays and the drift says what to do.
    match &p.action("service.primary").unwrap().kind {
        ActionKind::UpdateService { from, to, .. } => {
            assert_eq!(
                (from.size.as_str(), to.size.as_str()),
                ("sky-4x16", "sky-2x8")
            );
            assert_eq!((from.storage, to.storage), (200, 200));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        p.drift[0].detail.contains("set storage = 200"),
        "{}",
        p.drift[0].detail
    );
    insta::assert_snapshot!("service_resized", text(&p));
}

#[test]
fn deleted_replica_is_recreated_reseeded_and_its_old_entry_revoked() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    let id = s.resources.services["secondary"].id.clone();
    o.services
        .insert("secondary".into(), ObservedService::Missing { id });
    o.allowlists.remove("secondary");
    o.replication.remove("secondary");
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("service.secondary", DriftKind::ServiceDeleted)]
    );
    assert_eq!(
        addresses(&p),
        [
            "service.secondary",
            "backup.primary",
            "restore.secondary",
            "allowlist.primary.secondary",
            "replication.secondary",
            "allowlist.primary.secondary",
        ]
    );
    assert!(matches!(
        &p.actions[5].kind,
        ActionKind::AllowlistRevoke { entries, .. } if entries == &["10.0.0.2/32"]
    ));
    insta::assert_snapshot!("service_deleted_replica", text(&p));
}

#[test]
fn deleted_primary_warns_that_the_surviving_replica_is_overwritten() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    let id = s.resources.services["primary"].id.clone();
    o.services
        .insert("primary".into(), ObservedService::Missing { id });
    o.allowlists.remove("primary");
    let r = repl(&mut o);
    r.io_running = false;
    r.last_io_errno = 2003;
    r.last_io_error = "Can't connect to server".into();
    let p = plan_with(&t, &s, &o);
    let restore = p.action("restore.secondary").unwrap();
    assert!(restore.wipes_data);
    let why = restore.reason.as_deref().unwrap();
    assert!(
        why.contains("deleted outside skyplan") && why.contains("replaces all data"),
        "{why}"
    );
}

#[test]
fn failed_service_is_replaced_and_stopped_one_is_started() {
    let (t, s) = guide();
    let mut o = in_sync(&s);
    remote(&mut o, "secondary").status = "failed".into();
    let p = plan_with(&t, &s, &o);
    assert!(kinds(&p).contains(&("service.secondary", DriftKind::ServiceFailed)));
    assert_eq!(
        p.action("service.secondary").unwrap().change,
        Change::Replace
    );

    let mut o = in_sync(&s);
    remote(&mut o, "primary").status = "stopped".into();
    o.allowlists.remove("primary");
    let p = plan_with(&t, &s, &o);
    assert_eq!(kinds(&p), [("service.primary", DriftKind::ServiceStopped)]);
    assert_eq!(addresses(&p), ["power.primary"]);
    insta::assert_snapshot!("service_stopped", text(&p));
}

#[test]
fn state_id_gone_for_a_service_no_longer_in_the_topology_is_forgotten() {
    let (full, s) = guide();
    let cut = GUIDE.find("[services.secondary]").unwrap();
    let t = topology(&GUIDE[..cut]);
    let mut o = in_sync(&s);
    let id = s.resources.services["secondary"].id.clone();
    o.services
        .insert("secondary".into(), ObservedService::Missing { id });
    o.replication.remove("secondary");
    let _ = full;
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        [("service.secondary", DriftKind::ServiceDeleted)]
    );
    let forget = p.action("service.secondary").unwrap();
    assert_eq!(forget.change, Change::Delete);
    assert!(!forget.wipes_data, "nothing left to wipe");
    // Its grant on the primary goes too.
    assert!(p.action("allowlist.primary.secondary").is_some());
    insta::assert_snapshot!("state_id_gone", text(&p));
}

#[test]
fn unverified_link_that_runs_is_verified_not_rewired() {
    let (t, mut s) = guide();
    s.resources
        .replications
        .get_mut("secondary")
        .unwrap()
        .healthy = false;
    let p = plan_with(&t, &s, &in_sync(&s));
    assert!(p.drift.is_empty());
    assert!(matches!(
        p.actions[..],
        [plan::Action {
            kind: ActionKind::Replicate {
                mode: WireMode::Restart,
                ..
            },
            ..
        }]
    ));
}

#[test]
fn drift_json_matches_the_schema_and_lists_every_field() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schemas/plan.schema.json"
    ))
    .unwrap();
    let schema_json: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Every kind the engine can report is documented.
    let documented: Vec<&serde_json::Value> = schema_json["definitions"]["Drift"]["properties"]
        ["kind"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k["description"].is_string(), "{k}");
            &k["const"]
        })
        .collect();
    assert_eq!(documented.len(), DriftKind::ALL.len());
    for k in DriftKind::ALL {
        let name = serde_json::to_value(k).unwrap();
        assert!(
            documented.contains(&&name),
            "{name} is not in plan.schema.json"
        );
    }
    let schema = jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .compile(&schema_json)
        .unwrap();
    let (t, s) = guide();
    let mut o = in_sync(&s);
    repl(&mut o).sql_running = false;
    repl(&mut o).last_sql_errno = 1062;
    o.allowlists
        .insert("primary".into(), vec!["127.0.0.1".into()]);
    remote(&mut o, "primary").size = "sky-4x16".into();
    let p = plan_with(&t, &s, &o);
    assert_eq!(p.drift.len(), 3);
    let v = serde_json::to_value(&p).unwrap();
    if let Err(errors) = schema.validate(&v) {
        let msgs: Vec<String> = errors
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        panic!("{}", msgs.join("\n"));
    }
    for d in v["drift"].as_array().unwrap() {
        for field in ["resource", "kind", "before", "after", "detail"] {
            assert!(d.get(field).is_some(), "{field} in {d}");
        }
    }
    assert_eq!(v["summary"]["drift"], 3);
    // The schema is not vacuous: an unknown kind fails it.
    let mut bad = v.clone();
    bad["drift"][0]["kind"] = "gremlins".into();
    assert!(schema.validate(&bad).is_err());
}

#[test]
fn refresh_only_records_reality_in_the_state() {
    use skyplan::observed::record_observed;
    let (t, s) = guide();
    // The secondary deleted, the primary resized, the user's entry gone from the primary.
    let mut o = in_sync(&s);
    let id = s.resources.services["secondary"].id.clone();
    o.services
        .insert("secondary".into(), ObservedService::Missing { id });
    o.allowlists.remove("secondary");
    o.replication.remove("secondary");
    remote(&mut o, "primary").size = "sky-4x16".into();
    o.allowlists
        .insert("primary".into(), vec!["10.0.0.2".into()]);
    let mut next = s.clone();
    record_observed(&mut next, &t, &o);
    let res = &next.resources;
    assert!(!res.services.contains_key("secondary"));
    assert!(!res.replications.contains_key("secondary"));
    assert!(!res.restores.contains_key("secondary"));
    assert_eq!(res.services["primary"].spec.size, "sky-4x16");
    assert!(res.services["primary"].spec.allow_list.is_empty());
    // The gone replica's entry is still on the primary: still owned, so revoked next.
    assert_eq!(res.allowlists["secondary"].entries, ["10.0.0.2/32"]);
    // After it, refresh finds no drift; the plan re-creates the secondary and revokes the
    // entry of the old one (a change, not drift).
    let mut o2 = in_sync(&next);
    o2.allowlists
        .insert("primary".into(), vec!["10.0.0.2".into()]);
    let p = plan_with(&t, &next, &o2);
    assert!(p.drift.is_empty(), "{}", text(&p));
    assert!(addresses(&p).contains(&"service.secondary"));
    assert!(p
        .actions
        .iter()
        .any(|a| matches!(&a.kind, ActionKind::AllowlistRevoke { entries, .. } if entries == &["10.0.0.2/32"])));

    // A stopped channel is recorded unhealthy; an entry gone from its source is forgotten.
    let mut o = in_sync(&s);
    repl(&mut o).io_running = false;
    o.allowlists
        .insert("primary".into(), vec!["127.0.0.1/32".into()]);
    let mut next = s.clone();
    record_observed(&mut next, &t, &o);
    assert!(!next.resources.replications["secondary"].healthy);
    assert!(!next.resources.allowlists.contains_key("secondary"));
    // The next plan still restarts the channel and grants the entry again.
    let p = plan_with(&t, &next, &o);
    assert_eq!(
        addresses(&p),
        ["allowlist.primary.secondary", "replication.secondary"]
    );
}

/// A database that does not answer (API ready) is its own drift, named, and nothing is planned
/// for the links from or to it: no repair could run.
#[test]
fn a_dead_database_is_named_and_its_links_get_no_repair() {
    let (t, s) = guide();
    for dead in ["primary", "secondary"] {
        let mut o = in_sync(&s);
        o.unreachable
            .insert(dead.into(), "Connection refused (os error 111)".into());
        if dead == "primary" {
            let r = repl(&mut o);
            r.io_running = false;
            r.last_io_errno = 2003;
            r.last_io_error = "error reconnecting to master".into();
        } else {
            o.replication.remove("secondary");
        }
        let p = plan_with(&t, &s, &o);
        let text = text(&p);
        assert_eq!(
            kinds(&p),
            vec![(
                format!("service.{dead}").as_str(),
                DriftKind::DatabaseUnreachable
            )],
            "{text}"
        );
        assert!(text.contains("database not answering"), "{text}");
        assert!(text.contains("Connection refused"), "{text}");
        assert!(!addresses(&p).contains(&"replication.secondary"), "{text}");
    }
}

/// An IO thread still reconnecting after MariaDB's next retry, to a source that restarted
/// within `reconnect_grace`, is a warning and not drift; past the grace it is broken; one that
/// reconnected while refresh waited is only a note.
#[test]
fn reconnecting_is_a_warning_within_the_grace_and_broken_after_it() {
    let (t, mut s) = guide();
    // Wired an hour ago; refresh looks now.
    let now = time::OffsetDateTime::now_utc();
    let hour_ago = (now - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    s.resources
        .replications
        .get_mut("secondary")
        .unwrap()
        .wired_at = Some(hour_ago);
    let reconnecting = |up: u64| {
        let mut o = in_sync(&s);
        o.at = Some(now);
        let r = repl(&mut o);
        r.io_running = false;
        r.last_io_errno = 2013;
        r.last_io_error = "Lost connection to server during query".into();
        r.reconnecting = Some(skyplan::observed::Reconnecting {
            retry_seconds: Some(60),
            source_up_seconds: Some(up),
            replica_up_seconds: None,
        });
        o
    };
    let p = plan_with(&t, &s, &reconnecting(30));
    assert!(p.is_empty(), "{}", text(&p));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("is reconnecting") && w.contains("retries every 60 s")),
        "{:?}",
        p.warnings
    );
    let p = plan_with(&t, &s, &reconnecting(600));
    assert_eq!(
        kinds(&p),
        vec![("replication.secondary", DriftKind::ReplicationBroken)],
        "{}",
        text(&p)
    );
    assert!(
        text(&p).contains("longer than reconnect_grace (120 s)"),
        "{}",
        text(&p)
    );
    // Reconnected while refresh waited: a note, nothing else.
    let mut o = in_sync(&s);
    repl(&mut o).reconnected_after = Some(7);
    let p = plan_with(&t, &s, &o);
    assert!(p.is_empty());
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("reconnected after 7 s")));
}

/// Right after a restart (of the source, or of the replica itself) an IO thread may be refused
/// for a few seconds (error 1045 while accounts load, 1130 before the host is allowed): within
/// reconnect_grace that is "reconnecting", a warning; the same refusal with no restart behind
/// it is broken replication.
#[test]
fn an_access_refusal_right_after_a_restart_is_reconnecting_not_broken() {
    let (t, mut s) = guide();
    let now = time::OffsetDateTime::now_utc();
    let hour_ago = (now - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    s.resources
        .replications
        .get_mut("secondary")
        .unwrap()
        .wired_at = Some(hour_ago);
    let refused = |source_up: u64, replica_up: u64| {
        let mut o = in_sync(&s);
        o.at = Some(now);
        let r = repl(&mut o);
        r.io_running = false;
        r.last_io_errno = 1045;
        r.last_io_error = "Access denied for user 'skysql_replication_x'@'10.0.0.2'".into();
        r.reconnecting = Some(skyplan::observed::Reconnecting {
            retry_seconds: Some(10),
            source_up_seconds: Some(source_up),
            replica_up_seconds: Some(replica_up),
        });
        o
    };
    // The replica itself restarted 5 s ago.
    let p = plan_with(&t, &s, &refused(3600, 5));
    assert!(p.is_empty(), "{}", text(&p));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("IO error 1045") && w.contains("it started 5 s ago")),
        "{:?}",
        p.warnings
    );
    // Its source did.
    let p = plan_with(&t, &s, &refused(8, 3600));
    assert!(p.is_empty(), "{}", text(&p));
    // Nobody restarted: a refusal is broken replication.
    let p = plan_with(&t, &s, &refused(3600, 3600));
    assert_eq!(
        kinds(&p),
        vec![("replication.secondary", DriftKind::ReplicationBroken)],
        "{}",
        text(&p)
    );
}

/// A source younger than the grace that has been up since before the link was wired did not
/// restart: its replica failing to reconnect is broken at once.
#[test]
fn a_young_source_is_no_excuse_for_a_failing_reconnect() {
    let (t, mut s) = guide();
    let now = time::OffsetDateTime::now_utc();
    let wired = (now - time::Duration::seconds(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    s.resources
        .replications
        .get_mut("secondary")
        .unwrap()
        .wired_at = Some(wired);
    let mut o = in_sync(&s);
    o.at = Some(now);
    let r = repl(&mut o);
    r.io_running = false;
    r.last_io_errno = 2013;
    r.reconnecting = Some(skyplan::observed::Reconnecting {
        retry_seconds: Some(10),
        source_up_seconds: Some(60),
        replica_up_seconds: None,
    });
    let p = plan_with(&t, &s, &o);
    assert_eq!(
        kinds(&p),
        vec![("replication.secondary", DriftKind::ReplicationBroken)]
    );
    assert!(text(&p).contains("not a restart"), "{}", text(&p));
}

#[test]
fn the_state_is_copied_only_when_refresh_corrects_it() {
    use std::borrow::Cow;
    let (_, s) = guide();
    let o = in_sync(&s);
    let (state, drift) = skyplan::plan::drift::corrected(&s, &o);
    assert!(matches!(state, Cow::Borrowed(_)), "in sync: no copy");
    assert!(drift.is_empty());

    let mut o = in_sync(&s);
    remote(&mut o, "primary").port = Some(4406);
    let (state, drift) = skyplan::plan::drift::corrected(&s, &o);
    assert_eq!(state.resources.services["primary"].port, Some(4406));
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].kind, DriftKind::ServiceEndpointChanged);
    assert_eq!(
        s.resources.services["primary"].port,
        Some(3306),
        "the input is untouched"
    );
}
