//! End to end against the emulator's real MariaDB servers: apply the guide, with rows written
//! on the primary the whole time; all of them arrive on the replica; destroy leaves nothing.

use std::time::Duration;

use crate::support::e2e::{table_fingerprint, wait_converged, write_rows, Cloud};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guide_applies_end_to_end_and_keeps_every_row_written_during_apply() {
    let mut cloud = Cloud::new("global-replication.toml");
    let apply = cloud
        .command(&["apply", "global-replication.toml", "--auto-approve"])
        .output();
    let apply = tokio::spawn(apply);

    // As soon as the primary exists, write to it continuously: before the backup, between
    // the backup and the start of replication, and after.
    cloud
        .wait_ready_in_state("primary", Duration::from_secs(120))
        .await;
    let writer_conn = cloud.sql("primary").await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_rows(writer_conn, stop_rx));

    let out = apply.await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("Apply complete"), "{stdout}");
    assert!(stderr.contains("replication.secondary: done"), "{stderr}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    let written = writer.await.unwrap();
    assert!(written > 10, "the writer wrote only {written} rows");

    let mut primary = cloud.sql("primary").await;
    let mut secondary = cloud.sql("secondary").await;
    let (count, checksum) = wait_converged(&mut primary, &mut secondary).await;
    assert_eq!(count, written);
    assert_eq!(table_fingerprint(&mut secondary).await, (count, checksum));

    // The backup was taken while rows were being written, so some rows came only through
    // replication from the backup's GTID position.
    let state = cloud.state().unwrap();
    let gtid = state.resources.backups["secondary"]
        .gtid_position
        .clone()
        .unwrap();
    assert!(
        !gtid.is_empty(),
        "the backup should have captured some writes"
    );

    // The state a real apply wrote matches its published schema.
    assert_matches_schema(
        "state.schema.json",
        &std::fs::read(cloud.state_path()).unwrap(),
    );
    // So does the plan of a saved drift check.
    cloud
        .skyplan(&["plan", "global-replication.toml", "--out", "check.plan"])
        .expect_code(0);
    assert_matches_schema(
        "plan.schema.json",
        &std::fs::read(cloud.dir().join("check.plan")).unwrap(),
    );

    // No drift, no changes.
    cloud
        .skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"])
        .expect_code(0);

    // Outputs name endpoints, never passwords.
    assert!(stdout.contains("service.primary"), "{stdout}");
    assert!(stdout.contains("security/credentials"), "{stdout}");

    drop(primary);
    drop(secondary);
    let r = cloud
        .skyplan(&["destroy", "global-replication.toml", "--auto-approve"])
        .expect_code(0);
    assert!(r.stdout.contains("Destroy complete"), "{}", r.stdout);
    assert!(cloud.api().list_services().await.unwrap().is_empty());
    assert_eq!(
        cloud.mariadbd_count(),
        0,
        "destroy must leave no mariadbd running"
    );
    let state = cloud.state().unwrap();
    // Only the seed backup skyplan took stays recorded: it stays in SkySQL (the API cannot
    // delete it), and destroy said so.
    let mut rest = state.resources.clone();
    assert_eq!(rest.made_backups.len(), 1, "{state:?}");
    rest.made_backups.clear();
    assert!(rest.is_empty(), "{state:?}");
    assert!(r.stdout.contains("left in SkySQL"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fan_out_seeds_and_wires_the_replicas_in_parallel() {
    let mut cloud = Cloud::new("fan-out.toml");
    // Long enough operations that overlap (or its absence) is visible.
    cloud.start_emulator(&["--op-seconds", "2"]);
    let r = cloud
        .skyplan(&["apply", "fan-out.toml", "--auto-approve"])
        .expect_code(0);
    // Progress lines are "[hh:mm:ss] address: starting …" / "address: done after … [k/n, ~T
    // left]": a count of the steps and the time the plan's estimates leave.
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(": done after ") && l.contains(" left]")),
        "{}",
        r.stderr
    );
    let n = lines.iter().filter(|l| l.contains(": done after ")).count();
    assert!(
        lines.iter().any(|l| l.ends_with(&format!(" [{n}/{n}]"))),
        "the last step says {n}/{n}:\n{}",
        r.stderr
    );
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in\n{}", r.stderr))
    };
    let first_restore_done = ["asia", "europe", "oregon"]
        .iter()
        .map(|k| pos(&format!("restore.{k}: done")))
        .min()
        .unwrap();
    for k in ["asia", "europe", "oregon"] {
        assert!(
            pos(&format!("restore.{k}: starting")) < first_restore_done,
            "restores ran one after another:\n{}",
            r.stderr
        );
    }
    let mut primary = cloud.sql("primary").await;
    use mysql_async::prelude::Queryable;
    primary.query_drop("CREATE DATABASE app").await.unwrap();
    primary
        .query_drop("CREATE TABLE app.events (id INT PRIMARY KEY, note VARCHAR(64))")
        .await
        .unwrap();
    primary
        .query_drop("INSERT INTO app.events VALUES (1,'a'),(2,'b'),(3,'c')")
        .await
        .unwrap();
    for k in ["asia", "europe", "oregon"] {
        let mut replica = cloud.sql(k).await;
        let (count, _) = wait_converged(&mut primary, &mut replica).await;
        assert_eq!(count, 3);
    }
    cloud
        .skyplan(&["plan", "fan-out.toml", "--detailed-exitcode"])
        .expect_code(0);
    // The same refresh one database at a time (`--sql-parallelism`): the same answer.
    cloud
        .skyplan(&[
            "plan",
            "fan-out.toml",
            "--detailed-exitcode",
            "--sql-parallelism",
            "1",
        ])
        .expect_code(0);
}

fn assert_matches_schema(schema: &str, bytes: &[u8]) {
    let path = format!("{}/schemas/{schema}", env!("CARGO_MANIFEST_DIR"));
    let schema_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let compiled = jsonschema::JSONSchema::compile(&schema_json).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let errors: Vec<String> = match compiled.validate(&doc) {
        Ok(()) => return,
        Err(e) => e.map(|e| format!("{e} at {}", e.instance_path)).collect(),
    };
    panic!("does not match {schema}:\n{}", errors.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_same_named_service_elsewhere_is_not_adopted() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&[]);
    // Someone already has a `skysql-primary`, but in another region than the topology's.
    let topo = skyplan::topology::load(&cloud.dir().join("global-replication.toml")).unwrap();
    let mut spec = topo.services["primary"].spec.clone();
    spec.region = "us-central1".into();
    let theirs = cloud.create_by_hand(&spec).await;
    // Found by plan, before anything is created: exit 1, with the value to write.
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--detailed-exitcode"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("will not adopt"), "{}", r.stderr);
    assert!(
        r.stderr.contains("region = \"us-central1\""),
        "{}",
        r.stderr
    );
    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("will not adopt"), "{}", r.stderr);
    assert!(
        r.stderr.contains("region us-central1 (topology: us-east4)"),
        "{}",
        r.stderr
    );
    // Theirs is untouched and nothing else took its name.
    let named: Vec<_> = cloud.services_named("skysql-primary").await;
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].id, theirs.id);
    // Refused at plan time: nothing was created at all (no secondary either), so there may be
    // no state; if there is one, it does not claim theirs.
    assert_eq!(cloud.api().list_services().await.unwrap().len(), 1);
    let state = cloud.state();
    assert!(
        state
            .as_ref()
            .is_none_or(|s| !s.resources.services.contains_key("primary")),
        "{state:?}"
    );
}

/// A saved plan runs only as skyplan would plan it now: an edited action (an allow_list
/// opened to the world) is refused naming it, an impossible dependency is a malformed plan
/// (exit 1, never a panic), and neither changes anything; the plan as saved applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edited_saved_plan_is_refused_and_changes_nothing() {
    let mut cloud = Cloud::new("global-replication.toml");
    let r = cloud.skyplan(&["apply", "global-replication.toml", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let file = cloud.dir().join("global-replication.toml");
    let bigger = std::fs::read_to_string(&file).unwrap().replace(
        "region = \"us-west1\"",
        "region = \"us-west1\"\nsize = \"sky-4x16\"",
    );
    std::fs::write(&file, bigger).unwrap();
    let r = cloud.skyplan(&["plan", "global-replication.toml", "--out", "p.json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let saved = std::fs::read_to_string(cloud.dir().join("p.json")).unwrap();
    let state_before = std::fs::read(cloud.state_path()).unwrap();

    let mut plan: serde_json::Value = serde_json::from_str(&saved).unwrap();
    let update = plan["actions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["kind"] == "update_service")
        .expect("an update");
    update["to"]["allow_list"] = serde_json::json!(["0.0.0.0/0"]);
    std::fs::write(cloud.dir().join("edited.json"), plan.to_string()).unwrap();
    let r = cloud.skyplan(&["apply", "edited.json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("not what skyplan would do now")
            && r.stderr.contains("service.secondary"),
        "{}",
        r.stderr
    );

    let mut plan: serde_json::Value = serde_json::from_str(&saved).unwrap();
    plan["actions"][0]["depends_on"] = serde_json::json!([12345]);
    std::fs::write(cloud.dir().join("broken.json"), plan.to_string()).unwrap();
    let r = cloud.skyplan(&["apply", "broken.json"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("is not a valid plan"), "{}", r.stderr);

    assert_eq!(std::fs::read(cloud.state_path()).unwrap(), state_before);
    let id = cloud.state().unwrap().resources.services["secondary"]
        .id
        .clone();
    let svc = cloud.api().get_service(&id).await.unwrap().unwrap();
    assert_eq!(svc.size, "sky-2x8", "nothing was changed");

    let r = cloud.skyplan(&["apply", "p.json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let svc = cloud.api().get_service(&id).await.unwrap().unwrap();
    assert_eq!(svc.size, "sky-4x16");
}

/// The guide's apply as a CI log shows it (stderr piped): each step says what it does once,
/// and a wait says when it starts and when its status changes, never the same line twice.
#[test]
fn the_piped_apply_log_of_the_guide_says_each_thing_once() {
    let mut cloud = Cloud::new("global-replication.toml");
    let r = cloud
        .skyplan(&["apply", "global-replication.toml", "--auto-approve"])
        .expect_code(0);

    // `[12:00:01] service.primary: …` → ("service.primary", "service.primary: …").
    let lines: Vec<(&str, &str)> = r
        .stderr
        .lines()
        .filter_map(|l| l.split_once("] "))
        .map(|(_, text)| (text.split(": ").next().unwrap_or(""), text))
        .collect();
    assert!(lines.len() > 10, "{}", r.stderr);
    for w in lines.windows(2) {
        assert_ne!(w[0].1, w[1].1, "repeated:\n{}", r.stderr);
    }
    let mut last_of_step = std::collections::HashMap::new();
    for (step, text) in &lines {
        assert_ne!(
            last_of_step.insert(*step, *text),
            Some(*text),
            "`{text}` twice in a row for {step}:\n{}",
            r.stderr
        );
    }
    // The seed of a fresh primary holds no transaction: the log says so rather than end
    // with "at GTID ".
    assert!(
        r.stderr.contains("at GTID (empty: no transactions yet)"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("at GTID \n"), "{}", r.stderr);

    // The snapshot: each step's lines together, steps in the plan's order (parallel steps
    // start and interleave differently from run to run), without the two things that depend on
    // how fast the emulator was: whether a poll caught an operation still `Pending` before
    // `Running`, and the replication threads' start-up ("IO no / SQL no") — and without
    // heartbeats, which only a step longer than 30 s has.
    let mut order: Vec<&str> = vec![];
    for (step, _) in &lines {
        if !order.contains(step) {
            order.push(step);
        }
    }
    // Where the plan printed at the start of the apply lists each step.
    order.sort_by_key(|step| r.stdout.find(&format!(" {step} ")).unwrap_or(usize::MAX));
    let mut log = String::new();
    for step in order {
        let mut prev = String::new();
        for (_, text) in lines.iter().filter(|(s, _)| *s == step) {
            if text.contains("waiting for replication to be healthy")
                || (text.contains(": still ") && text.ends_with(" elapsed)"))
            {
                continue;
            }
            let text = text
                .replace(" Pending", " [PENDING|RUNNING]")
                .replace(" Running", " [PENDING|RUNNING]");
            if text != prev {
                log.push_str(&text);
                log.push('\n');
            }
            prev = text;
        }
    }
    let mut filters = crate::support::cli::filters(cloud.dir());
    filters.extend([
        (r"\b[0-9a-f]{32}\b".to_string(), "[BACKUP_ID]".to_string()),
        (r"\b\d+\.\d+\.\d+\.\d+/32\b".into(), "[IP]/32".into()),
        (r"localhost:\d+".into(), "localhost:[PORT]".into()),
        (r"\b\d+-\d+-\d+\b".into(), "[GTID]".into()),
        (r"\b\d+ s behind".into(), "[N] s behind".into()),
        // Which step ends k-th, and the time left then, vary with the emulator's pace.
        (r" \[\d+/\d+(, ~[^\]]*)?\]".into(), " [K/N]".into()),
    ]);
    let filters: Vec<(&str, &str)> = filters.iter().map(|(a, b)| (&**a, &**b)).collect();
    insta::with_settings!({
        filters => filters,
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!("it__e2e_apply__guide_piped_log", log);
    });

    // With everything applied, `graph` draws what is managed, not an empty digraph.
    let g = cloud
        .skyplan(&["graph", "global-replication.toml"])
        .expect_code(0);
    assert!(
        g.stdout.contains(
            "\"service.primary\" -> \"service.secondary\" [label = \"replication.secondary (ssl)\"];"
        ),
        "{}",
        g.stdout
    );
}

/// `emulator start` hands every option to the daemon as the one shared type
/// (`ServeOptions` as JSON, not flags spelled a second time): the running daemon reports the
/// options it was given, so a second start with other ones names each difference.
#[test]
fn the_emulator_daemon_runs_with_exactly_the_options_it_was_started_with() {
    let mut cloud = Cloud::new("global-replication.toml");
    cloud.start_emulator(&[
        "--op-seconds",
        "2",
        "--fault-rate",
        "0.25",
        "--fault-seed",
        "7",
        "--no-mariadb",
    ]);
    let r = cloud
        .skyplan(&[
            "emulator",
            "start",
            "--op-seconds",
            "3",
            "--fault-rate",
            "0.5",
            "--fault-seed",
            "8",
        ])
        .expect_code(0);
    let said = format!("{}{}", r.stdout, r.stderr);
    for running in [
        "--op-seconds 3 (running: 2)",
        "--fault-rate 0.5 (running: 0.25)",
        "--fault-seed 8 (running: 7)",
        "--no-mariadb false (running: true)",
    ] {
        assert!(said.contains(running), "{running}: {said}");
    }
}

/// Issue 27: `apply --json` streams one JSON event per line on stdout, each valid against
/// schemas/events.schema.json: the plan, the start, each action's start, status changes and
/// end with the count, the summary; people's output on stderr. The stream's shape is
/// snapshot-tested (times, ids and status texts filtered: they vary with the emulator's pace).
#[test]
fn apply_json_streams_one_valid_event_per_line() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/global-replication.toml"
    ))
    .unwrap();
    let lone = &guide[..guide.find("[services.secondary]").unwrap()];
    let mut cloud = Cloud {
        test: crate::support::cli::Test::new().file("lone.toml", lone),
        topology: "lone.toml".into(),
    };
    // Without --auto-approve a stream cannot prompt: refused before anything.
    let r = cloud
        .skyplan(&["apply", "lone.toml", "--json"])
        .expect_code(1);
    assert!(r.stderr.contains("needs --auto-approve"), "{}", r.stderr);
    let last: serde_json::Value =
        serde_json::from_str(r.stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(last["type"], "diagnostic", "{}", r.stdout);

    let r = cloud
        .skyplan(&["apply", "lone.toml", "--json", "--auto-approve"])
        .expect_code(0);
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/events.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let schema = jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .compile(&schema)
        .expect("events schema compiles");
    let plan_schema = crate::support::fixtures::plan_schema();
    let mut shape = String::new();
    let mut last_status: std::collections::HashMap<String, String> = Default::default();
    for line in r.stdout.lines() {
        let ev: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        if let Err(errors) = schema.validate(&ev) {
            let msgs: Vec<String> = errors
                .map(|e| format!("{e} at {}", e.instance_path))
                .collect();
            panic!(
                "{line}\ndoes not match the events schema: {}",
                msgs.join("; ")
            );
        }
        let addr = ev["address"].as_str().unwrap_or("");
        match ev["type"].as_str().unwrap() {
            "plan" => {
                let plan: skyplan::plan::Plan =
                    serde_json::from_value(ev["plan"].clone()).expect("a plan");
                crate::support::fixtures::assert_valid(&plan_schema, &plan);
                shape.push_str(&format!("plan: {} actions\n", plan.actions.len()));
            }
            "action_status" => {
                // Only changes are events.
                let s = ev["status"].as_str().unwrap().to_string();
                assert_ne!(
                    last_status.insert(addr.into(), s.clone()),
                    Some(s),
                    "{line}"
                );
            }
            "action_end" => shape.push_str(&format!(
                "action_end {addr} {} [{}/{}]\n",
                ev["outcome"].as_str().unwrap(),
                ev["done"],
                ev["total"]
            )),
            "summary" => shape.push_str(&format!(
                "summary {} completed={}\n",
                ev["outcome"].as_str().unwrap(),
                ev["completed"]
            )),
            other => shape.push_str(&format!("{other} {addr}\n")),
        }
    }
    assert!(
        r.stderr.contains("skyplan will perform these actions"),
        "the plan for people on stderr: {}",
        r.stderr
    );
    assert!(!last_status.is_empty(), "a create waits: {}", r.stdout);
    insta::assert_snapshot!("apply_json_events", shape);

    // The apply recorded how long each step took; the next plan's estimate uses it for the
    // same kind of step (a create of a gcp 100 GB service) and says so.
    let state = cloud.state().unwrap();
    let created = &state.durations.0["create/gcp/100"];
    assert_eq!(created.len(), 1, "{:?}", state.durations);
    let two = format!("{lone}\n[services.other]\nname = \"skysql-other\"\nregion = \"us-west1\"\n");
    std::fs::write(cloud.dir().join("lone.toml"), two).unwrap();
    let r = cloud
        .skyplan(&["plan", "lone.toml", "--json"])
        .expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let create = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "service.other")
        .unwrap();
    assert_eq!(create["estimated_ms"], created[0], "{create}");
    assert!(
        plan["estimate"]["from_history"].as_u64().unwrap() >= 1,
        "{plan}"
    );
    let text = cloud.skyplan(&["plan", "lone.toml"]).expect_code(0).stdout;
    assert!(text.contains("from durations recorded here"), "{text}");
}
