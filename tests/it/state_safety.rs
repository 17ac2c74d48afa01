//! A state file that cannot be trusted is refused and left byte-for-byte as it was; a held
//! lock makes other runs fail fast (or wait) naming the holder; `force-unlock` confirms first.
//! All through the binary, without an emulator: each refusal happens before anything remote.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::cli::Test;
use skyplan::state::{codec, LocalBackend, LockInfo, LockInfoExt, State, StateBackend};

const TOPOLOGY: &str = "global-replication.toml";

fn workspace() -> (Test, PathBuf) {
    let t = Test::new().example(TOPOLOGY);
    let state = t.state_file("global-replication");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    (t, state)
}

/// A state as an apply leaves it: one service recorded.
fn applied_state() -> State {
    let topology = skyplan::topology::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(TOPOLOGY),
    )
    .unwrap();
    let mut s = State::new();
    s.serial = 3;
    s.resources.services.insert(
        "primary".into(),
        skyplan::state::ServiceRecord {
            id: "dbpgf00000001".into(),
            spec: topology.services["primary"].spec.clone(),
            fqdn: Some("primary.example".into()),
            port: Some(3306),
            outbound_ips: vec![],
            status: Some("ready".into()),
            credentials_from: None,
            failed_over_to: None,
            last_seen: None,
            in_flight: None,
        },
    );
    s
}

/// Every command that reads the state refuses it with `message`, changes no byte of it, takes
/// no lock for good, and starts no emulator (nothing remote was attempted).
fn assert_refused(t: &mut Test, state: &PathBuf, bytes: &[u8], message: &[&str]) {
    std::fs::write(state, bytes).unwrap();
    let commands: [&[&str]; 5] = [
        &["plan", TOPOLOGY],
        &["plan", TOPOLOGY, "--refresh=false"],
        &["apply", TOPOLOGY, "--auto-approve"],
        &["destroy", TOPOLOGY, "--auto-approve"],
        &["show", "--topology", TOPOLOGY],
    ];
    for args in commands {
        let r = t.args(args).run();
        assert_eq!(r.code, 1, "{args:?}:\n{}\n{}", r.stdout, r.stderr);
        for m in message {
            assert!(r.stderr.contains(m), "{args:?}: no `{m}` in:\n{}", r.stderr);
        }
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert_eq!(
            std::fs::read(state).unwrap(),
            bytes,
            "{args:?} changed the state"
        );
    }
    assert!(
        !state.with_extension("json.lock").exists(),
        "a lock was left"
    );
    assert!(
        !t.path().join("emulator").exists(),
        "an emulator was started for a state that was refused"
    );
}

#[test]
fn a_truncated_or_garbled_state_is_refused_and_left_untouched() {
    let (mut t, state) = workspace();
    let json = codec::to_json(&applied_state()).unwrap();
    let location = "state/global-replication.state.json";
    let cases: [(&str, &[u8]); 4] = [
        ("truncated", &json.as_bytes()[..json.len() * 2 / 3]),
        ("empty", b""),
        ("not JSON", b"\x00\x01garbage\xff"),
        (
            "wrong shape",
            br#"{"format_version": 1, "lineage": 7, "serial": "x"}"#,
        ),
    ];
    for (what, bytes) in cases {
        eprintln!("case: {what}");
        assert_refused(
            &mut t,
            &state,
            bytes,
            &["is not a valid skyplan state", "left untouched", location],
        );
    }
}

#[test]
fn a_state_from_a_newer_skyplan_is_refused_and_left_untouched() {
    let (mut t, state) = workspace();
    let mut v: serde_json::Value =
        serde_json::from_str(&codec::to_json(&applied_state()).unwrap()).unwrap();
    v["format_version"] = 2.into();
    v["something_new"] = serde_json::json!({"the": "future"});
    let bytes = serde_json::to_vec_pretty(&v).unwrap();
    assert_refused(
        &mut t,
        &state,
        &bytes,
        &[
            "state format version 2",
            "newer skyplan",
            "upgrade skyplan",
            "left untouched",
        ],
    );
}

#[test]
fn a_state_of_another_lineage_is_refused_for_a_saved_plan_and_left_untouched() {
    let (mut t, state) = workspace();
    // A plan saved for this topology's (empty) state: its lineage is recorded in the plan.
    // Offline, so that nothing below starts an emulator: the refusal must come first.
    let r = t
        .args(&[
            "plan",
            TOPOLOGY,
            "--refresh=false",
            "--out",
            "reviewed.plan",
        ])
        .run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("reviewed.plan")).unwrap()).unwrap();
    // Meanwhile the state file was replaced by another topology's state.
    let other = applied_state();
    assert_ne!(plan["lineage"].as_str(), Some(other.lineage.as_str()));
    let bytes = codec::to_json(&other).unwrap().into_bytes();
    std::fs::write(&state, &bytes).unwrap();
    let r = t.args(&["apply", "reviewed.plan"]).run();
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    for m in [
        "stale plan",
        &format!("lineage {}", plan["lineage"].as_str().unwrap()),
        &format!("state's lineage is {}", other.lineage),
    ] {
        assert!(r.stderr.contains(m), "no `{m}` in:\n{}", r.stderr);
    }
    assert_eq!(std::fs::read(&state).unwrap(), bytes);
    assert!(!t.path().join("emulator").exists());
}

async fn hold_lock(state: &PathBuf) -> Box<dyn skyplan::state::StateLock> {
    LocalBackend::new(state)
        .lock(LockInfo::for_this_process(), Duration::ZERO)
        .await
        .expect("take the lock")
}

#[tokio::test]
async fn a_held_lock_makes_apply_fail_fast_naming_the_holder_or_wait_for_lock_timeout() {
    let (mut t, state) = workspace();
    let lock = hold_lock(&state).await;
    let info = lock.info().clone();

    let start = Instant::now();
    let r = t.args(&["apply", TOPOLOGY, "--auto-approve"]).run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    for m in [
        format!("locked by pid {} on host {}", info.pid, info.host),
        format!("running `{}`", info.command),
        format!("force-unlock --id {}", info.id),
        "--lock-timeout".to_string(),
    ] {
        assert!(r.stderr.contains(&m), "no `{m}` in:\n{}", r.stderr);
    }

    let start = Instant::now();
    let r = t
        .args(&["apply", TOPOLOGY, "--auto-approve", "--lock-timeout", "2s"])
        .run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "did not wait: {:?}",
        start.elapsed()
    );
    assert!(
        r.stderr.contains(&format!("pid {}", info.pid)),
        "{}",
        r.stderr
    );
    assert!(!t.path().join("emulator").exists());
    lock.release().await.unwrap();
}

#[tokio::test]
async fn force_unlock_shows_the_holder_and_needs_a_confirmation_or_force() {
    let (mut t, state) = workspace();
    let lock_file = state.with_extension("json.lock");
    let lock = hold_lock(&state).await;
    let info = lock.info().clone();

    // No terminal, no --force: refused, the lock stays.
    let r = t.args(&["force-unlock", TOPOLOGY]).run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("held by pid {}", info.pid)),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&info.id), "{}", r.stderr);
    assert!(
        r.stderr.contains("stdin is not a terminal (use --force"),
        "{}",
        r.stderr
    );
    assert!(lock_file.exists());

    // The wrong id: refused, the lock stays.
    let r = t
        .args(&["force-unlock", TOPOLOGY, "--force", "--id", "not-that-one"])
        .run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was unlocked"), "{}", r.stderr);
    assert!(lock_file.exists());

    // The right id, forced: removed; a run can lock again.
    let r = t
        .args(&["force-unlock", TOPOLOGY, "--force", "--id", &info.id])
        .run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("Lock removed."), "{}", r.stderr);
    assert!(!lock_file.exists());
    // The old holder's release does not remove a lock that is no longer its own.
    let again = hold_lock(&state).await;
    lock.release().await.unwrap();
    assert!(lock_file.exists());
    again.release().await.unwrap();

    let r = t.args(&["force-unlock", TOPOLOGY]).run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("is not locked"), "{}", r.stderr);
}

#[test]
fn force_unlock_removes_a_lock_file_that_names_no_readable_holder() {
    let (mut t, state) = workspace();
    let lock_file = state.with_extension("json.lock");
    std::fs::write(&lock_file, b"\x00 not a lock record").unwrap();

    let r = t.args(&["apply", TOPOLOGY, "--auto-approve"]).run();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("skyplan force-unlock"), "{}", r.stderr);

    let r = t.args(&["force-unlock", TOPOLOGY]).run();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("names no readable holder"),
        "{}",
        r.stderr
    );
    assert!(lock_file.exists());

    let r = t.args(&["force-unlock", TOPOLOGY, "--force"]).run();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!lock_file.exists());
}
