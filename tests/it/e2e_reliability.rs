//! Reliability against the emulator's real MariaDB servers: a flaky API, kill -9 at every
//! stage and resume, failed operations, Ctrl-C, and two runs at once.
//!
//! Soak: `scripts/soak` reruns the flaky-API test over many fault seeds.

use std::time::Duration;

use crate::reliability_support::{
    any_service_in_flight, assert_state_intact, count, fail_next, read_state, requests,
    service_names, wait_state, Frozen, Running,
};
use crate::support::e2e::{table_fingerprint, wait_converged, write_rows, Cloud};
use mysql_async::prelude::Queryable;

const GUIDE: &str = "global-replication.toml";
const FAN_OUT: &str = "fan-out.toml";
const SERVICES: &str = "/provisioning/v1/services";
const SCHEDULES: &str = "/skybackup/v1/backups/schedules";
const RESTORES: &str = "/skybackup/v1/restores";

fn apply_args(file: &str) -> Vec<&str> {
    vec!["apply", file, "--auto-approve"]
}

/// The fault seed of the flaky-API test (`SKYPLAN_FAULT_SEED` overrides it for soaks).
fn fault_seed() -> String {
    std::env::var("SKYPLAN_FAULT_SEED").unwrap_or_else(|_| "20240611".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flaky_api_fan_out_creates_each_service_once_and_ends_healthy() {
    let mut cloud = Cloud::new(FAN_OUT);
    let seed = fault_seed();
    let rate = std::env::var("SKYPLAN_FAULT_RATE").unwrap_or_else(|_| "0.2".into());
    cloud.start_emulator(&["--fault-rate", &rate, "--fault-seed", &seed]);

    let r = cloud.skyplan(&apply_args(FAN_OUT));
    assert_eq!(
        r.code, 0,
        "apply under faults (seed {seed}) failed:\n{}\n{}",
        r.stdout, r.stderr
    );

    let reqs = requests(&cloud);
    let faulted = reqs
        .iter()
        .filter(|r| r.status == 429 || r.status >= 500)
        .count();
    assert!(
        faulted >= 10,
        "only {faulted} of {} requests were faulted: the test proves nothing",
        reqs.len()
    );
    // Each service exactly once, and created by exactly one accepted request.
    let names = service_names(&cloud).await;
    let want = [
        "orders-asia",
        "orders-europe",
        "orders-oregon",
        "orders-primary",
    ];
    assert_eq!(
        names.keys().map(String::as_str).collect::<Vec<_>>(),
        want,
        "{names:?}"
    );
    assert!(names.values().all(|n| *n == 1), "duplicates: {names:?}");
    assert_eq!(count(&reqs, "POST", SERVICES, true), 4);
    // One backup seeds all three replicas.
    assert_eq!(count(&reqs, "POST", SCHEDULES, true), 1);

    // Healthy: nothing to do, even when the refresh itself meets faults...
    cloud
        .skyplan(&["plan", FAN_OUT, "--detailed-exitcode"])
        .expect_code(0);
    // ...and rows written on the primary reach every replica.
    let mut primary = cloud.sql("primary").await;
    primary
        .query_drop("CREATE DATABASE app; CREATE TABLE app.events (id INT PRIMARY KEY, note TEXT); INSERT INTO app.events VALUES (1,'a'),(2,'b')")
        .await
        .unwrap();
    for k in ["asia", "europe", "oregon"] {
        let mut replica = cloud.sql(k).await;
        assert_eq!(wait_converged(&mut primary, &mut replica).await.0, 2);
    }
}

/// kill -9 during create polling, between backup and restore, during restore polling and
/// during replication wiring, with rows written on the primary throughout; every time the
/// state is intact, and the final run finishes with nothing started twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_each_stage_then_apply_again_finishes_without_duplicates() {
    let mut cloud = Cloud::new(GUIDE);
    // Long enough operations that each kill lands inside the stage it aims at.
    cloud.start_emulator(&["--op-seconds", "2"]);
    let args = apply_args(GUIDE);

    // 1. During create polling: both creates accepted and recorded, not finished.
    let run = Running::spawn(&cloud, &args);
    let s = wait_state(&cloud, "creates in flight", Duration::from_secs(30), |s| {
        s.resources.services.len() == 2 && any_service_in_flight(s, "create")
    })
    .await;
    run.kill_9().await;
    let s = assert_state_intact(&cloud, s.serial);
    assert!(
        s.resources.services.values().all(|r| r.fqdn.is_none()),
        "{s:#?}"
    );

    // 2. Between backup and restore: the backup is recorded.
    let run = Running::spawn(&cloud, &args);
    let s = wait_state(&cloud, "the backup done", Duration::from_secs(40), |s| {
        s.resources
            .backups
            .get("secondary")
            .is_some_and(|b| b.backup_id.is_some() && b.in_flight.is_none())
    })
    .await;
    let out = run.kill_9().await;
    assert!(
        out.stderr
            .contains("Resuming operations a previous run left in flight"),
        "{}",
        out.stderr
    );
    assert_state_intact(&cloud, s.serial);

    // Writes from now on reach the replica only through replication.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(write_rows(cloud.sql("primary").await, stop_rx));

    // 3. During restore polling.
    let mut run = Running::spawn(&cloud, &args);
    run.wait_for_stderr(
        "waiting for the restore into service.secondary",
        Duration::from_secs(40),
    )
    .await;
    let s = read_state(&cloud).unwrap();
    run.kill_9().await;
    let s = assert_state_intact(&cloud, s.serial);
    let restore = &s.resources.restores["secondary"];
    assert!(
        restore.restore_id.is_some() && !restore.completed,
        "{restore:?}"
    );

    // 4. During replication wiring, right as replication is started.
    let mut run = Running::spawn(&cloud, &args);
    run.wait_for_stderr(
        "replication.secondary: starting replication",
        Duration::from_secs(40),
    )
    .await;
    let s = read_state(&cloud).unwrap();
    run.kill_9().await;
    assert_state_intact(&cloud, s.serial);

    // 5. Finish.
    let out = Running::spawn(&cloud, &args)
        .finish(Duration::from_secs(60))
        .await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);

    // Exactly two services were ever created (a create refused by the API would be harmless
    // and is printed for diagnosis), and each name exists once.
    let reqs = requests(&cloud);
    let names: Vec<String> = cloud
        .api()
        .list_services()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        count(&reqs, "POST", SERVICES, true),
        2,
        "a create was re-issued"
    );
    assert_eq!(
        count(&reqs, "POST", SCHEDULES, false),
        1,
        "a backup was re-issued"
    );
    assert_eq!(
        count(&reqs, "POST", RESTORES, false),
        1,
        "a restore was re-issued"
    );
    let names = service_names(&cloud).await;
    assert!(names.values().all(|n| *n == 1), "{names:?}");
    cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(0);

    // Every row written since the backup arrived once: none lost, none replayed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_tx.send(true).unwrap();
    let written = writer.await.unwrap();
    assert!(written > 5, "the writer wrote only {written} rows");
    let mut primary = cloud.sql("primary").await;
    let mut secondary = cloud.sql("secondary").await;
    let (rows, _) = wait_converged(&mut primary, &mut secondary).await;
    assert_eq!(rows, written);
    assert_eq!(
        table_fingerprint(&mut secondary).await,
        table_fingerprint(&mut primary).await
    );
}

/// A run killed after the API accepted a create but before the id reached the state (the
/// window is simulated by removing the record): the next run adopts the service by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_service_created_but_unknown_to_the_state_is_adopted_by_name() {
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&["--op-seconds", "2"]);
    let run = Running::spawn(&cloud, &apply_args(GUIDE));
    wait_state(&cloud, "creates in flight", Duration::from_secs(30), |s| {
        s.resources.services.len() == 2
    })
    .await;
    run.kill_9().await;
    let mut state = read_state(&cloud).unwrap();
    let orphan = state.resources.services.remove("secondary").unwrap();
    std::fs::write(
        cloud.state_path(),
        skyplan::state::codec::to_json(&state).unwrap(),
    )
    .unwrap();

    let out = Running::spawn(&cloud, &apply_args(GUIDE))
        .finish(Duration::from_secs(60))
        .await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("service.secondary: done after")
            && out
                .stderr
                .contains("adopted an existing service with this name"),
        "{}",
        out.stderr
    );
    let state = read_state(&cloud).unwrap();
    assert_eq!(state.resources.services["secondary"].id, orphan.id);
    assert_eq!(count(&requests(&cloud), "POST", SERVICES, false), 2);
    let names = service_names(&cloud).await;
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.values().all(|n| *n == 1), "{names:?}");
    cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_create_stops_its_dependents_while_sibling_replicas_finish_then_plan_replaces_it()
{
    let mut cloud = Cloud::new(FAN_OUT);
    cloud.start_emulator(&[]);
    fail_next(&cloud, "orders-europe").await;

    let r = cloud.skyplan(&apply_args(FAN_OUT)).expect_code(1);
    for done in ["replication.asia: done", "replication.oregon: done"] {
        assert!(r.stderr.contains(done), "{}", r.stderr);
    }
    assert!(
        r.stderr.contains("failed:         service.europe")
            && r.stderr.contains("ended in status failed")
            // Not claimed recorded: a failed create may exist unrecorded.
            && r.stderr.contains("such a service may exist without a record"),
        "{}",
        r.stderr
    );
    for blocked in [
        "restore.europe",
        "allowlist.primary.europe",
        "replication.europe",
    ] {
        assert!(
            r.stderr.contains(&format!("not started:    {blocked}")),
            "{blocked}:\n{}",
            r.stderr
        );
    }
    // The failure is recorded: nothing is left in flight, the siblings are wired.
    let s = read_state(&cloud).unwrap();
    let europe = &s.resources.services["europe"];
    assert_eq!(europe.status.as_ref().map(|s| s.as_str()), Some("failed"));
    assert!(europe.in_flight.is_none());
    assert!(s.resources.replications["asia"].healthy && s.resources.replications["oregon"].healthy);

    // The next plan replaces the failed service and leaves the healthy ones alone.
    let r = cloud
        .skyplan(&["plan", FAN_OUT, "--json", "--detailed-exitcode"])
        .expect_code(2);
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let actions: Vec<(String, String)> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap().to_string(),
                a["change"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        actions.contains(&("service.europe".into(), "replace".into())),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .all(|(a, _)| !a.contains("asia") && !a.contains("oregon")),
        "{actions:?}"
    );

    cloud.skyplan(&apply_args(FAN_OUT)).expect_code(0);
    cloud
        .skyplan(&["plan", FAN_OUT, "--detailed-exitcode"])
        .expect_code(0);
    let names = service_names(&cloud).await;
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.values().all(|n| *n == 1), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_restore_stops_the_wiring_records_the_failure_and_plan_replaces_the_replica() {
    // First the two services without replication, so that the secondary's next long
    // operation is the restore.
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&[]);
    let full = std::fs::read_to_string(cloud.dir().join(GUIDE)).unwrap();
    let (services_only, _) = full.split_once("[services.secondary.replication]").unwrap();
    std::fs::write(cloud.dir().join(GUIDE), services_only).unwrap();
    cloud.skyplan(&apply_args(GUIDE)).expect_code(0);

    std::fs::write(cloud.dir().join(GUIDE), &full).unwrap();
    fail_next(&cloud, "skysql-secondary").await;
    let r = cloud.skyplan(&apply_args(GUIDE)).expect_code(1);
    assert!(
        r.stderr.contains("failed:         restore.secondary") && r.stderr.contains("ended Failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("not started:    replication.secondary"),
        "{}",
        r.stderr
    );
    let s = read_state(&cloud).unwrap();
    let restore = &s.resources.restores["secondary"];
    assert!(
        !restore.completed && restore.in_flight.is_none(),
        "{restore:?}"
    );
    assert_eq!(
        s.resources.services["secondary"]
            .status
            .as_ref()
            .map(|s| s.as_str()),
        Some("failed")
    );
    assert!(!s.resources.replications.contains_key("secondary"));

    let r = cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(2);
    assert!(
        r.stdout.contains("service.secondary") && r.stdout.contains("replace"),
        "{}",
        r.stdout
    );
    cloud.skyplan(&apply_args(GUIDE)).expect_code(0);
    cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(0);
    let reqs = requests(&cloud);
    assert_eq!(
        count(&reqs, "POST", RESTORES, false),
        2,
        "one failed, one retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_starts_nothing_new_stops_waiting_saves_and_the_next_apply_resumes() {
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&["--op-seconds", "3"]);
    let mut run = Running::spawn(&cloud, &apply_args(GUIDE));
    wait_state(&cloud, "creates in flight", Duration::from_secs(30), |s| {
        s.resources.services.len() == 2 && any_service_in_flight(s, "create")
    })
    .await;
    run.wait_for_stderr("waiting for service.primary", Duration::from_secs(10))
        .await;
    let before = requests(&cloud).len();
    let t = tokio::time::Instant::now();
    run.signal(libc::SIGINT);
    let out = run.finish(Duration::from_secs(20)).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "took {:?} to stop",
        t.elapsed()
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    for needle in [
        "Interrupt received: starting nothing new",
        "Interrupted.",
        "still running:  service.primary: stopped waiting for service.primary to be ready (interrupted)",
        "not started:    backup.primary",
        "not started:    replication.secondary",
        "run `skyplan apply global-replication.toml` again",
        // The step's own last line says what the summary says.
        "service.primary: still running after",
    ] {
        assert!(out.stderr.contains(needle), "no `{needle}` in:\n{}", out.stderr);
    }
    assert!(!out.stderr.contains("FAILED"), "{}", out.stderr);
    // Nothing was started after the interrupt.
    let after: Vec<_> = requests(&cloud).into_iter().skip(before).collect();
    assert!(after.iter().all(|r| r.method == "GET"), "{after:?}");
    // The state was saved and holds the creates in flight.
    let s = read_state(&cloud).unwrap();
    assert!(any_service_in_flight(&s, "create"), "{s:#?}");
    assert!(!cloud.state_path().with_extension("json.lock").exists());

    let out = Running::spawn(&cloud, &apply_args(GUIDE))
        .finish(Duration::from_secs(60))
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("the interrupted create finished"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&requests(&cloud), "POST", SERVICES, false), 2);
    cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_ctrl_c_exits_at_once_with_the_state_of_the_last_step() {
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&["--op-seconds", "3"]);
    let mut run = Running::spawn(&cloud, &apply_args(GUIDE));
    let s = wait_state(&cloud, "creates in flight", Duration::from_secs(30), |s| {
        s.resources.services.len() == 2 && any_service_in_flight(s, "create")
    })
    .await;
    {
        // A frozen API: the poll in progress hangs, and the first Ctrl-C waits for it.
        let _frozen = Frozen::emulator(&cloud);
        tokio::time::sleep(Duration::from_secs(2)).await;
        run.signal(libc::SIGINT);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            run.is_running(),
            "the first Ctrl-C should wait for the API call in progress:\n{}",
            run.stderr()
        );
        let t = tokio::time::Instant::now();
        run.signal(libc::SIGINT);
        let out = run.finish(Duration::from_secs(10)).await;
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(out.code, Some(130), "{}", out.stderr);
        assert!(
            out.stderr.contains("Interrupted again: exiting now"),
            "{}",
            out.stderr
        );
    }
    let s = assert_state_intact(&cloud, s.serial);
    assert!(any_service_in_flight(&s, "create"), "{s:#?}");

    // The lock of the exited run is stale and taken over; the creates are resumed.
    let out = Running::spawn(&cloud, &apply_args(GUIDE))
        .finish(Duration::from_secs(60))
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr.contains("took over a stale lock"),
        "{}",
        out.stderr
    );
    let reqs = requests(&cloud);
    assert_eq!(
        count(&reqs, "POST", SERVICES, false),
        2,
        "creates: {:?}\n{}",
        reqs.iter()
            .filter(|r| r.method == "POST" && r.path == SERVICES)
            .collect::<Vec<_>>(),
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_applies_at_once_one_holds_the_lock_the_other_fails_fast_or_waits() {
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&["--op-seconds", "2"]);
    let first = Running::spawn(&cloud, &apply_args(GUIDE));
    let lock = cloud.state_path().with_extension("json.lock");
    wait_state(&cloud, "creates in flight", Duration::from_secs(30), |s| {
        any_service_in_flight(s, "create")
    })
    .await;
    assert!(lock.exists());

    // A plan saved now is made against a state the running apply is about to change.
    cloud
        .skyplan(&["plan", GUIDE, "--out", "early.plan"])
        .expect_code(0);

    // Fails fast, naming the holder.
    let t = std::time::Instant::now();
    let r = cloud.skyplan(&apply_args(GUIDE)).expect_code(1);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let holder = format!("locked by pid {} on host {host}", first.pid);
    assert!(
        r.stderr.contains(&holder),
        "no `{holder}` in:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("apply global-replication.toml"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--lock-timeout"), "{}", r.stderr);

    // Waits for the lock, then finds nothing left to do.
    let waiter = Running::spawn(
        &cloud,
        &["apply", GUIDE, "--auto-approve", "--lock-timeout", "90s"],
    );
    let first = first.finish(Duration::from_secs(60)).await;
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let waited = waiter.finish(Duration::from_secs(60)).await;
    assert_eq!(waited.code, Some(0), "{}", waited.stderr);
    // The wait is said, naming the holder (never silence under --lock-timeout).
    assert!(
        waited
            .stderr
            .contains("Acquiring the state lock: held by pid"),
        "{}",
        waited.stderr
    );
    assert!(waited.stdout.contains("No changes"), "{}", waited.stdout);

    // The saved plan is stale now and refused, leaving the state as it is.
    let before = std::fs::read(cloud.state_path()).unwrap();
    let r = cloud.skyplan(&["apply", "early.plan"]).expect_code(1);
    assert!(r.stderr.contains("stale plan"), "{}", r.stderr);
    assert_eq!(std::fs::read(cloud.state_path()).unwrap(), before);
    assert_eq!(count(&requests(&cloud), "POST", SERVICES, false), 2);
}

/// The state file replaced during an apply by another topology's state (another lineage):
/// the apply's next write is refused, and the file stays exactly as the other one left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_state_of_another_topology_swapped_in_during_apply_is_never_overwritten() {
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&["--op-seconds", "2"]);
    let run = Running::spawn(&cloud, &apply_args(GUIDE));
    let s = wait_state(&cloud, "creates in flight", Duration::from_secs(30), |s| {
        s.resources.services.len() == 2 && any_service_in_flight(s, "create")
    })
    .await;
    let other = skyplan::state::State {
        lineage: "11111111-2222-4333-8444-555555555555".into(),
        ..s
    };
    let bytes = skyplan::state::codec::to_json(&other).unwrap();
    std::fs::write(cloud.state_path(), &bytes).unwrap();

    let out = run.finish(Duration::from_secs(60)).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("they are different states (another topology?); refusing to overwrite"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(cloud.state_path()).unwrap(), bytes);
}

/// The disk fills up right after a create was sent (simulated with a file size limit on the
/// apply process only): the message says the state could not be saved and what that means,
/// not that it records everything; the next apply adopts the created service by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_after_a_create_is_said_and_the_next_apply_adopts_the_service() {
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&[]);
    let out = std::process::Command::new("sh")
        .current_dir(cloud.dir())
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 1; exec \"$0\" apply {GUIDE} --auto-approve"
        ))
        .arg(env!("CARGO_BIN_EXE_skyplan"))
        .env("NO_COLOR", "1")
        .env("SKYPLAN_EMULATOR_DIR", cloud.emulator_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("THE STATE COULD NOT BE SAVED"), "{stderr}");
    assert!(
        !stderr.contains("The state records every completed step"),
        "{stderr}"
    );
    let out = Running::spawn(&cloud, &apply_args(GUIDE))
        .finish(Duration::from_secs(120))
        .await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let names = service_names(&cloud).await;
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.values().all(|n| *n == 1),
        "created once each: {names:?}"
    );
}

/// The API goes away while a backup runs (the emulator restarts and the backup ends failed):
/// the next plan says the backup is retried, and one apply converges doing what it showed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_lost_with_the_api_is_planned_as_a_retry_and_one_apply_converges() {
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&["--op-seconds", "3"]);
    let run = Running::spawn(&cloud, &apply_args(GUIDE));
    wait_state(&cloud, "a backup in flight", Duration::from_secs(60), |s| {
        s.resources
            .backups
            .values()
            .any(|b| b.in_flight.is_some() && b.schedule_id.is_some())
    })
    .await;
    run.kill_9().await;
    cloud.skyplan(&["emulator", "stop"]).expect_code(0);
    cloud.start_emulator(&["--op-seconds", "3"]);

    let r = cloud.skyplan(&["plan", GUIDE, "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("a new one is taken if it failed"),
        "{}",
        r.stdout
    );
    let out = Running::spawn(&cloud, &apply_args(GUIDE))
        .finish(Duration::from_secs(180))
        .await;
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("taking a new one"), "{}", out.stderr);
    cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(0);
}

/// A terminal on stdin (a pseudo-terminal's two ends), so that apply asks for "yes".
fn pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    skyplan_os::openpty().expect("openpty")
}

#[test]
fn ctrl_c_at_the_confirmation_prompt_changes_nothing_and_releases_the_lock() {
    use std::io::Read;
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};

    let mut cloud = Cloud::new(GUIDE);
    // The terminal stays open the whole time, as a person sitting at the prompt.
    let (terminal, stdin) = pty();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skyplan"))
        .current_dir(cloud.dir())
        .args(["apply", GUIDE])
        .env("NO_COLOR", "1")
        .env("SKYPLAN_EMULATOR_DIR", cloud.emulator_dir())
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn skyplan");
    // The prompt ends without a newline: read bytes, not lines.
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = child.stderr.take().unwrap();
    let sink = stderr.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !stderr.lock().unwrap().contains("Enter a value: ") {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "exited ({status}) before asking:\n{}",
                stderr.lock().unwrap()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no prompt:\n{}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let lock = cloud.state_path().with_extension("json.lock");
    assert!(lock.exists(), "the lock is held at the prompt");

    skyplan_os::kill(child.id(), libc::SIGINT).expect("SIGINT");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after Ctrl-C:\n{}",
            stderr.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    let stderr = stderr.lock().unwrap().clone();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted at the prompt; nothing was changed"),
        "{stderr}"
    );
    assert!(!lock.exists(), "the lock was left behind:\n{stderr}");
    assert!(
        cloud
            .state()
            .is_none_or(|s| s.resources.services.is_empty()),
        "{stderr}"
    );
    assert_eq!(count(&requests(&cloud), "POST", SERVICES, false), 0);

    // The next run takes a free lock, not a stale one left by a killed process.
    let r = cloud.skyplan(&["plan", GUIDE, "--refresh-only", "--auto-approve"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stderr.contains("stale lock"), "{}", r.stderr);
    drop(terminal);
}

/// Issue 22: `apply --replace` interrupted by Ctrl-C while its backup runs keeps its intent.
/// The next plan shows the re-seed (with a warning that it carries out the earlier --replace)
/// although the command line no longer names it; the next apply finishes it, once. Before,
/// the replica looked in sync, the plan said "No changes", and the replace was silently lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_interrupted_replace_is_carried_out_by_the_next_apply() {
    let mut cloud = Cloud::new(GUIDE);
    cloud.start_emulator(&["--op-seconds", "3"]);
    cloud.skyplan(&apply_args(GUIDE)).expect_code(0);
    let restores_before =
        |s: &skyplan::state::State| s.resources.restores.get("secondary").cloned();
    let before = restores_before(&read_state(&cloud).unwrap());
    let mut run = Running::spawn(
        &cloud,
        &[
            "apply",
            GUIDE,
            "--replace",
            "service.secondary",
            "--auto-approve",
        ],
    );
    run.wait_for_stderr("backup.", Duration::from_secs(60))
        .await;
    run.signal(libc::SIGINT);
    let out = run.finish(Duration::from_secs(30)).await;
    assert_ne!(out.code, Some(0), "{}", out.stderr);
    let s = read_state(&cloud).unwrap();
    assert!(
        s.resources.services["secondary"]
            .replace_requested
            .is_some(),
        "the --replace is recorded:\n{}",
        out.stderr
    );
    assert_eq!(
        restores_before(&s),
        before,
        "not restored yet:\n{}",
        out.stderr
    );

    let r = cloud.skyplan(&["plan", GUIDE, "--detailed-exitcode"]);
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("restore.secondary")
            && r.stdout.contains("the --replace of an apply started at"),
        "{}",
        r.stdout
    );
    let r = cloud.skyplan(&apply_args(GUIDE));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let s = read_state(&cloud).unwrap();
    assert!(s.resources.services["secondary"]
        .replace_requested
        .is_none());
    assert_ne!(restores_before(&s), before, "re-seeded");
    cloud
        .skyplan(&["plan", GUIDE, "--detailed-exitcode"])
        .expect_code(0);
}

/// Issue 27: `-input=false` never prompts, even with a terminal on stdin: apply fails as it
/// does without one, changing nothing.
#[test]
fn input_false_never_prompts_even_at_a_terminal() {
    use std::process::Stdio;
    let cloud = Cloud::new(GUIDE);
    let (_terminal, stdin) = pty();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skyplan"))
        .current_dir(cloud.dir())
        .args(["apply", GUIDE, "-input=false"])
        .env("NO_COLOR", "1")
        .env("SKYPLAN_EMULATOR_DIR", cloud.emulator_dir())
        .stdin(Stdio::from(stdin))
        .output()
        .expect("run skyplan");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refusing to apply without confirmation"),
        "{stderr}"
    );
    assert!(!stderr.contains("Enter a value"), "{stderr}");
}
