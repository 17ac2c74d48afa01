//! Drift, end to end against the emulator's real MariaDB servers. Each test starts from the
//! guide applied and healthy, causes ONE kind of drift by hand (SQL or the API, never skyplan),
//! and checks what a scheduled job relies on: `plan --detailed-exitcode` exits 2 and names the
//! drift, `apply --auto-approve` repairs it, the next plan exits 0, and new rows written on the
//! primary reach the replica again.

use std::time::{Duration, Instant};

use crate::support::e2e::Cloud;
use mysql_async::prelude::*;
use serde_json::Value;

const TOPOLOGY: &str = "global-replication.toml";

/// The guide applied and verified in sync.
async fn healthy() -> Cloud {
    let mut cloud = Cloud::new(TOPOLOGY);
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    assert_in_sync(&mut cloud);
    // Something to replicate, so "rows flow again" is checked against a populated table.
    assert_replicates(&cloud, "before drift").await;
    cloud
}

/// `plan --detailed-exitcode` exits 0 and reports nothing, not even informational drift.
fn assert_in_sync(cloud: &mut Cloud) {
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(0);
    assert!(r.stdout.starts_with("No changes."), "{}", r.stdout);
}

/// `plan --detailed-exitcode` exits 2, shows the drift apart from the actions, and `--json`
/// lists it with its kind.
fn expect_drift(cloud: &mut Cloud, resource: &str, kind: &str, words: &[&str]) -> Value {
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(2);
    if std::env::var_os("SHOW_PLANS").is_some() {
        eprintln!("=== {resource}\n{}", r.stdout);
    }
    assert!(
        r.stdout.contains("Changed outside skyplan:"),
        "{}",
        r.stdout
    );
    for w in words {
        assert!(r.stdout.contains(w), "no `{w}` in\n{}", r.stdout);
    }
    let j = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode", "--json"])
        .expect_code(2);
    let plan: Value = serde_json::from_str(&j.stdout).expect("plan JSON");
    let drift = plan["drift"].as_array().expect("drift list");
    let found = drift
        .iter()
        .find(|d| d["resource"] == resource && d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} drift of {resource} in {drift:#?}"));
    for field in ["before", "after", "detail"] {
        assert!(found.get(field).is_some(), "{field} missing in {found}");
    }
    plan
}

/// `apply` repairs, the next plan is clean, and replication carries new rows.
async fn repair(cloud: &mut Cloud) -> String {
    let r = cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    assert!(r.stdout.contains("Apply complete"), "{}", r.stdout);
    assert_in_sync(cloud);
    assert_replicates(cloud, "after repair").await;
    r.stdout
}

/// Write a new row on the primary and wait until the replica has it.
async fn assert_replicates(cloud: &Cloud, note: &str) {
    let mut primary = cloud.sql("primary").await;
    primary
        .query_drop("CREATE DATABASE IF NOT EXISTS app")
        .await
        .unwrap();
    primary
        .query_drop(
            "CREATE TABLE IF NOT EXISTS app.notes (id INT PRIMARY KEY AUTO_INCREMENT, note VARCHAR(64))",
        )
        .await
        .unwrap();
    primary
        .exec_drop("INSERT INTO app.notes (note) VALUES (?)", (note,))
        .await
        .unwrap();
    let mut replica = cloud.sql("secondary").await;
    for _ in 0..200 {
        let n: Option<u64> = replica
            .exec_first("SELECT COUNT(*) FROM app.notes WHERE note = ?", (note,))
            .await
            .ok()
            .flatten();
        if n == Some(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the row `{note}` never reached the replica");
}

async fn replica_sql(cloud: &Cloud, sql: &str) {
    let mut c = cloud.sql("secondary").await;
    c.query_drop(sql).await.unwrap();
}

fn id_of(cloud: &Cloud, key: &str) -> String {
    cloud.state().unwrap().resources.services[key].id.clone()
}

async fn wait_status(cloud: &Cloud, key: &str, want: Option<&str>) {
    let api = cloud.api();
    let id = id_of(cloud, key);
    for _ in 0..300 {
        let s = api.get_service(&id).await.unwrap();
        if s.as_ref().map(|s| s.status.as_str()) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("service.{key} never reached {want:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_replication_is_restarted() {
    let mut cloud = healthy().await;
    replica_sql(&cloud, "CALL sky.stop_replication()").await;
    expect_drift(
        &mut cloud,
        "replication.secondary",
        "replication_stopped",
        &["replication.secondary", "stopped"],
    );
    let out = repair(&mut cloud).await;
    assert!(out.contains("replication.secondary"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_replication_is_rewired_from_the_replicas_position() {
    let mut cloud = healthy().await;
    replica_sql(&cloud, "CALL sky.reset_replication()").await;
    let plan = expect_drift(
        &mut cloud,
        "replication.secondary",
        "replication_missing",
        &["replication.secondary", "rewire"],
    );
    let wire = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == "replication.secondary")
        .unwrap();
    assert_eq!(wire["mode"], "rewire", "{wire}");
    // Rewiring keeps the replica's data: nothing is restored.
    assert!(
        plan["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["wipes_data"] == false),
        "{plan:#}"
    );
    repair(&mut cloud).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn removed_allowlist_entry_is_added_again() {
    let mut cloud = healthy().await;
    let state = cloud.state().unwrap();
    let entry = state.resources.allowlists["secondary"].entries[0].clone();
    cloud
        .api()
        .delete_allowlist_entry(&id_of(&cloud, "primary"), &entry)
        .await
        .unwrap();
    expect_drift(
        &mut cloud,
        "allowlist.primary.secondary",
        "allowlist_entry_removed",
        &["allowlist.primary.secondary", &entry],
    );
    repair(&mut cloud).await;
    let present: Vec<String> = cloud
        .api()
        .get_allowlist(&id_of(&cloud, "primary"))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|e| e.allow_list)
        .map(|i| i.ip)
        .collect();
    assert!(present.contains(&entry), "{present:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleted_replica_is_recreated_and_reseeded() {
    let mut cloud = healthy().await;
    let api = cloud.api();
    let old = id_of(&cloud, "secondary");
    api.delete_service(&old).await.unwrap();
    wait_status(&cloud, "secondary", None).await;
    expect_drift(
        &mut cloud,
        "service.secondary",
        "service_deleted",
        &["service.secondary", "no longer exists", "restore.secondary"],
    );
    repair(&mut cloud).await;
    assert_ne!(id_of(&cloud, "secondary"), old);
    // The rows written before the deletion came back with the re-seed.
    let mut replica = cloud.sql("secondary").await;
    let n: Option<u64> = replica
        .query_first("SELECT COUNT(*) FROM app.notes WHERE note = 'before drift'")
        .await
        .unwrap();
    assert_eq!(n, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resize_outside_skyplan_is_resized_back() {
    let mut cloud = healthy().await;
    let id = id_of(&cloud, "primary");
    cloud.api().set_size(&id, "sky-4x16").await.unwrap();
    wait_status(&cloud, "primary", Some("ready")).await;
    expect_drift(
        &mut cloud,
        "service.primary",
        "service_resized",
        &["service.primary", "sky-4x16"],
    );
    repair(&mut cloud).await;
    let s = cloud.api().get_service(&id).await.unwrap().unwrap();
    assert_eq!(s.size, "sky-2x8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicting_row_on_the_replica_is_reseeded() {
    let mut cloud = healthy().await;
    replica_sql(
        &cloud,
        "INSERT INTO app.notes (id, note) VALUES (1000, 'replica only')",
    )
    .await;
    let mut primary = cloud.sql("primary").await;
    primary
        .query_drop("INSERT INTO app.notes (id, note) VALUES (1000, 'primary')")
        .await
        .unwrap();
    // Wait until the replica's SQL thread stopped on the duplicate key.
    let mut replica = cloud.sql("secondary").await;
    for i in 0.. {
        let row: Option<mysql_async::Row> = replica
            .query_first("CALL sky.replication_status()")
            .await
            .unwrap();
        let errno: Option<u32> = row.and_then(|r| r.get("Last_SQL_Errno"));
        if errno == Some(1062) {
            break;
        }
        assert!(i < 200, "replication never broke: {errno:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(replica);
    // The replica's own row exists nowhere else: re-seeding discards it, so the plan refuses
    // without consent (the last-copy rule) and names the transaction.
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(1);
    assert!(
        r.stderr
            .contains("the last-copy rule: service.secondary holds")
            && r.stderr.contains("restore.secondary discards them"),
        "{}",
        r.stderr
    );
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode", "--allow-data-loss"])
        .expect_code(2);
    for w in [
        "replication.secondary",
        "1062",
        "restore.secondary",
        "wipes data",
        "DATA LOSS (--allow-data-loss): service.secondary holds",
    ] {
        assert!(r.stdout.contains(w), "no `{w}` in\n{}", r.stdout);
    }
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve", "--allow-data-loss"])
        .expect_code(0);
    assert_in_sync(&mut cloud);
    assert_replicates(&cloud, "after repair").await;
    let mut replica = cloud.sql("secondary").await;
    let note: Option<String> = replica
        .query_first("SELECT note FROM app.notes WHERE id = 1000")
        .await
        .unwrap();
    assert_eq!(note.as_deref(), Some("primary"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthy_topology_planned_20_times_never_reports_drift() {
    let mut cloud = healthy().await;
    // Keep the replica busy meanwhile, so lag and thread states move while plans look.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(crate::support::e2e::write_rows(
        cloud.sql("primary").await,
        stop_rx,
    ));
    for i in 0..20 {
        let r = cloud
            .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
            .expect_code(0);
        assert!(
            r.stdout.starts_with("No changes."),
            "run {i}:\n{}",
            r.stdout
        );
    }
    stop_tx.send(true).unwrap();
    assert!(writer.await.unwrap() > 0);
    // And the JSON says the same: no drift at all.
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode", "--json"])
        .expect_code(0);
    let plan: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(plan["drift"], serde_json::json!([]));
    assert_eq!(plan["actions"], serde_json::json!([]));
}

/// Requests that change something, from the emulator's request log.
fn mutating_requests(cloud: &Cloud) -> Vec<String> {
    let log = std::fs::read_to_string(cloud.emulator_dir().join("requests.log")).unwrap();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["method"] != "GET")
        .map(|e| format!("{} {}", e["method"], e["path"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_only_records_reality_without_touching_anything_remote() {
    let mut cloud = healthy().await;
    let old = id_of(&cloud, "secondary");
    cloud.api().delete_service(&old).await.unwrap();
    wait_status(&cloud, "secondary", None).await;
    let before = mutating_requests(&cloud);
    // For a scheduler: drift is exit 2, and without a terminal nothing is recorded.
    let state_before = std::fs::read(cloud.state_path()).unwrap();
    cloud
        .skyplan(&["plan", TOPOLOGY, "--refresh-only", "--detailed-exitcode"])
        .expect_code(2);
    assert_eq!(std::fs::read(cloud.state_path()).unwrap(), state_before);
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--refresh-only", "--auto-approve"])
        .expect_code(0);
    assert!(r.stdout.contains("service.secondary"), "{}", r.stdout);
    assert!(r.stdout.contains("no longer exists"), "{}", r.stdout);
    assert!(r.stderr.contains("State updated"), "{}", r.stderr);
    // Only reads: no POST, PATCH or DELETE reached the API.
    assert_eq!(mutating_requests(&cloud), before);
    let state = cloud.state().unwrap();
    let res = &state.resources;
    assert!(!res.services.contains_key("secondary"), "{res:?}");
    assert!(!res.replications.contains_key("secondary"), "{res:?}");
    assert!(res.services.contains_key("primary"));
    // Its entry is still on the primary: skyplan still owns it (and revokes it below).
    assert_eq!(res.allowlists["secondary"].on, "primary");
    // Now the state matches reality: a second refresh-only finds no drift, and the plan
    // asks to create the secondary again (a change, not drift).
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--refresh-only", "--auto-approve"])
        .expect_code(0);
    assert!(r.stdout.contains("No drift"), "{}", r.stdout);
    let j = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode", "--json"])
        .expect_code(2);
    let plan: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(plan["summary"]["drift"], 0);
    let actions: Vec<(&str, &str)> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["address"].as_str().unwrap(), a["kind"].as_str().unwrap()))
        .collect();
    assert!(
        actions.contains(&("service.secondary", "create_service")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("allowlist.primary.secondary", "allowlist_revoke")),
        "{actions:?}"
    );
    assert_eq!(mutating_requests(&cloud), before);
    // The plan then restores what the topology asks for, without leftovers.
    let r = cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    assert!(r.stdout.contains("Apply complete"), "{}", r.stdout);
    assert_in_sync(&mut cloud);
    assert_replicates(&cloud, "after refresh-only").await;
}

/// A port on loopback where nothing listens (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn unreachable_api_is_an_error_never_drift() {
    // Every retry policy setting: the default (7 retries with backoff), none, and a few.
    let policies = [None, Some(0), Some(2)];
    let runs: Vec<_> = policies
        .into_iter()
        .map(|p| std::thread::spawn(move || unreachable_api_with(p)))
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}

fn unreachable_api_with(max_retries: Option<u32>) {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/global-replication.toml"
    ))
    .unwrap();
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let topo = guide.replacen(
        "endpoint = \"local\"",
        &match max_retries {
            None => format!("endpoint = \"{endpoint}\""),
            Some(n) => format!("endpoint = \"{endpoint}\"\nmax_retries = {n}"),
        },
        1,
    );
    assert_ne!(topo, guide);
    let t = crate::support::fixtures::topology(&topo);
    let state = skyplan::state::codec::to_json(&crate::support::fixtures::applied(&t)).unwrap();
    let mut test = crate::support::cli::Test::new()
        .file(TOPOLOGY, &topo)
        .file("state/global-replication.state.json", &state)
        .env("API_KEY", "not-a-real-key");
    // The three ways a scheduler asks run side by side to keep the test short.
    let runs: Vec<(&[&str], crate::support::cli::Spawned)> = [
        &["plan", TOPOLOGY, "--detailed-exitcode"][..],
        &["plan", TOPOLOGY, "--detailed-exitcode", "--json"][..],
        &["plan", TOPOLOGY, "--refresh-only", "--auto-approve"][..],
    ]
    .into_iter()
    .map(|args| (args, test.args(args).spawn()))
    .collect();
    let started = Instant::now();
    for (args, run) in runs {
        let r = run.wait();
        assert_eq!(r.code, 1, "{args:?}\n{}\n{}", r.stdout, r.stderr);
        assert!(
            r.stdout.is_empty(),
            "{args:?}: nothing on stdout: {}",
            r.stdout
        );
        for needle in [
            endpoint.as_str(),
            "cannot list the services",
            "not drift",
            "Connection refused",
        ] {
            assert!(
                r.stderr.contains(needle),
                "{args:?}: no `{needle}` in {}",
                r.stderr
            );
        }
        assert!(!r.stderr.contains("not-a-real-key"), "{}", r.stderr);
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // Nothing was written: the state is as it was.
    let after =
        std::fs::read_to_string(test.path().join("state/global-replication.state.json")).unwrap();
    assert_eq!(after, state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_that_cannot_reconnect_after_its_entry_was_removed_is_repaired() {
    let mut cloud = healthy().await;
    let entry = cloud.state().unwrap().resources.allowlists["secondary"].entries[0].clone();
    cloud
        .api()
        .delete_allowlist_entry(&id_of(&cloud, "primary"), &entry)
        .await
        .unwrap();
    // Open connections survive an allowlist change; a reconnect does not get through. After
    // this the IO thread keeps "Connecting" with the connection error.
    replica_sql(&cloud, "CALL sky.stop_replication()").await;
    replica_sql(&cloud, "CALL sky.start_replication()").await;
    let plan = expect_drift(
        &mut cloud,
        "allowlist.primary.secondary",
        "allowlist_entry_removed",
        &["allowlist.primary.secondary", "replication.secondary"],
    );
    let broken = plan["drift"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["resource"] == "replication.secondary")
        .unwrap_or_else(|| panic!("{plan:#}"));
    assert_eq!(broken["kind"], "replication_broken", "{broken}");
    assert_eq!(broken["after"]["io_running"], false, "{broken}");
    repair(&mut cloud).await;
}

// --- Scheduled use: examples/drift-check.sh and the CI workflow ---------------------------

/// A plan with drift (a stopped channel, a removed grant, an entry added by hand) as the real
/// `plan --json` prints it.
fn drifted_plan_json() -> String {
    use skyplan::observed::{Observed, ObservedReplication};
    let t = crate::support::fixtures::example(TOPOLOGY);
    let s = crate::support::fixtures::applied(&t);
    let mut o = Observed {
        refreshed: true,
        ..Observed::default()
    };
    let link = &s.resources.replications["secondary"];
    o.replication.insert(
        "secondary".into(),
        ObservedReplication {
            configured: true,
            master_host: Some(link.source_host.clone()),
            master_port: Some(link.source_port),
            ..ObservedReplication::default()
        },
    );
    o.allowlists
        .insert("primary".into(), vec!["127.0.0.1/32".into()]);
    o.allowlists.insert(
        "secondary".into(),
        vec!["127.0.0.1/32".into(), "203.0.113.9/32".into()],
    );
    let p = skyplan::plan::build(&skyplan::plan::PlanInput {
        topology: &t,
        topology_sha256: "0",
        state: &s,
        observed: &o,
        flags: Default::default(),
    })
    .unwrap();
    serde_json::to_string_pretty(&p).unwrap()
}

/// Runs examples/drift-check.sh with a fake `skyplan` first on PATH that prints `stdout` and
/// `stderr` and exits `code`. Returns (exit code, stdout, stderr, notification if any, args
/// the fake was called with).
fn drift_check(
    code: i32,
    stdout: &str,
    stderr: &str,
    json_tool: &str,
) -> (i32, String, String, Option<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(dir.path().join("fake.out"), stdout).unwrap();
    std::fs::write(dir.path().join("fake.err"), stderr).unwrap();
    let fake = bin.join("skyplan");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" > '{d}/fake.args'\ncat '{d}/fake.out'\ncat '{d}/fake.err' >&2\nexit {code}\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/drift-check.sh");
    let out = std::process::Command::new("sh")
        .arg(script)
        .arg(TOPOLOGY)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("SKYPLAN")
        .env("DRIFT_CHECK_JSON", json_tool)
        .env("NOTIFY_CMD", "cat > notified.txt")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        std::fs::read_to_string(dir.path().join("notified.txt")).ok(),
        std::fs::read_to_string(dir.path().join("fake.args")).unwrap_or_default(),
    )
}

#[test]
fn drift_check_script_summarises_drift_and_tells_errors_apart() {
    let json = drifted_plan_json();
    let mut summaries = Vec::new();
    for tool in ["jq", "python3"] {
        let (code, stdout, stderr, notified, args) = drift_check(2, &json, "", tool);
        assert_eq!(code, 2, "{tool}: {stdout}\n{stderr}");
        assert_eq!(
            args.trim(),
            "plan global-replication.toml --detailed-exitcode --json"
        );
        for needle in [
            "has drifted",
            "Changed outside skyplan: 2 ",
            "~ replication.secondary  replication_stopped: replication threads stopped",
            "~ allowlist.primary.secondary  allowlist_entry_removed: 10.0.0.2/32",
            "service.secondary  allowlist_entry_added (informational)",
            "`skyplan apply` would:",
            "replication.secondary  update: restart skysql-primary -> skysql-secondary from where it stopped, ssl (because replication stopped outside skyplan)",
            "allowlist.primary.secondary  create: grant",
        ] {
            assert!(stdout.contains(needle), "{tool}: no `{needle}` in\n{stdout}");
        }
        assert_eq!(notified.as_deref(), Some(stdout.as_str()), "{tool}");
        summaries.push(stdout);
    }
    assert_eq!(summaries[0], summaries[1], "jq and python3 summarise alike");
    if std::env::var_os("SHOW_PLANS").is_some() {
        eprintln!("{}", summaries[0]);
    }

    // In sync: quiet, nobody notified.
    let (code, stdout, _, notified, _) = drift_check(0, &json, "", "jq");
    assert_eq!((code, stdout.as_str(), notified), (0, "", None));

    // An error is an error, whatever skyplan's exit code, and says so.
    for skyplan_code in [1, 101] {
        let (code, stdout, stderr, notified, _) = drift_check(
            skyplan_code,
            "",
            "Error: refresh failed: cannot list the services at the SkySQL API http://127.0.0.1:9",
            "jq",
        );
        assert_eq!(code, 1);
        assert!(stdout.is_empty(), "{stdout}");
        assert!(stderr.contains("an error, not drift"), "{stderr}");
        assert!(stderr.contains("cannot list the services"), "{stderr}");
        assert!(notified.unwrap().contains("cannot list the services"));
    }

    // Exit 2 with output that is not a plan: reported as an error, not as drift.
    let (code, stdout, _, _, _) = drift_check(2, "not json", "", "python3");
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("could not be summarised"), "{stdout}");
}

#[test]
fn ci_workflow_runs_the_check_on_a_schedule_and_fails_on_drift_or_error() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/ci/github-drift.yml"
    ))
    .unwrap();
    let wf: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid YAML");
    let on = &wf["on"];
    assert!(on["schedule"][0]["cron"].as_str().is_some(), "{on:?}");
    let steps = wf["jobs"]["drift"]["steps"].as_sequence().unwrap();
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(
        runs.iter().any(|r| r.contains("drift-check.sh")),
        "{runs:?}"
    );
    let fail = steps
        .iter()
        .find(|s| s["name"] == "Fail on drift or error")
        .unwrap();
    assert_eq!(fail["if"], "steps.check.outputs.code != '0'");
    assert!(fail["run"].as_str().unwrap().contains("exit 1"));
    // The key comes from a secret, never from the file.
    assert!(text.contains("${{ secrets.SKYSQL_API_KEY }}"));
}

/// Observed beats recorded: a state whose primary fqdn was edited to a bogus host is corrected
/// by refresh (drift, "endpoint changed"), and the healthy replica is never re-pointed or
/// re-seeded; apply records the real endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bogus_fqdn_in_the_state_is_corrected_by_refresh_and_nothing_is_rewired() {
    let mut cloud = healthy().await;
    let mut state = cloud.state().unwrap();
    let real = state.resources.services["primary"].fqdn.clone();
    state.resources.services.get_mut("primary").unwrap().fqdn =
        Some("bogus.example.invalid".into());
    std::fs::write(
        cloud.state_path(),
        skyplan::state::codec::to_json(&state).unwrap(),
    )
    .unwrap();
    let r = cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(2);
    assert!(r.stdout.contains("endpoint changed"), "{}", r.stdout);
    for word in ["restore", "wire", "rewire", "re-point"] {
        assert!(!r.stdout.contains(word), "{word} in\n{}", r.stdout);
    }
    let restores = |cloud: &Cloud| {
        let id = cloud.state().unwrap().resources.services["secondary"]
            .id
            .clone();
        let api = cloud.api();
        async move { api.list_restores(&id).await.unwrap().len() }
    };
    let before = restores(&cloud).await;
    cloud
        .skyplan(&["apply", TOPOLOGY, "--auto-approve"])
        .expect_code(0);
    assert_eq!(
        cloud.state().unwrap().resources.services["primary"].fqdn,
        real
    );
    assert_eq!(restores(&cloud).await, before);
    cloud
        .skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"])
        .expect_code(0);
}

/// A source whose `mariadbd` died while the API still says `ready`: the plan names the dead
/// database (not "replication broken"), and apply gives up at once, changing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_source_database_is_named_and_apply_gives_up_at_once() {
    let mut cloud = healthy().await;
    let id = id_of(&cloud, "primary");
    for pid in cloud.mariadbd_pids_of(&id) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let json = expect_drift(
        &mut cloud,
        "service.primary",
        "database_unreachable",
        &["database not answering", "skysql-primary"],
    );
    assert!(
        json["drift"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["kind"] != "replication_broken"),
        "{json:#}"
    );
    let before = std::fs::read(cloud.state_path()).unwrap();
    let started = Instant::now();
    let r = cloud.skyplan(&["apply", TOPOLOGY, "--auto-approve"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(r.stderr.contains("does not answer"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was changed"), "{}", r.stderr);
    assert_eq!(std::fs::read(cloud.state_path()).unwrap(), before);
}

/// Right after its source restarts, a replica's IO thread is retrying: the plan waits for
/// MariaDB's next retry and reports a reconnect, not drift (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_restart_is_a_reconnect_note_not_drift() {
    use crate::reliability_support::{end_outage, outage, OutageMode};
    let mut cloud = healthy().await;
    outage(&cloud, "skysql-primary", OutageMode::Errors).await;
    // Long enough for the replica to notice and start retrying.
    tokio::time::sleep(Duration::from_secs(2)).await;
    end_outage(&cloud, "skysql-primary").await;
    let r = cloud.skyplan(&["plan", TOPOLOGY, "--detailed-exitcode"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("reconnect"), "{}", r.stdout);
    assert_replicates(&cloud, "after the restart").await;
}
