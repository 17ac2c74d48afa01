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
    let mut s = skyplan::state::new_state();
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
            role_change: None,
            replace_requested: None,
            last_seen: None,
            in_flight: None,
            config_id: None,
            config: Default::default(),
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
    v["format_version"] = 3.into();
    v["something_new"] = serde_json::json!({"the": "future"});
    let bytes = serde_json::to_vec_pretty(&v).unwrap();
    assert_refused(
        &mut t,
        &state,
        &bytes,
        &[
            "state format version 3",
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
        .lock(
            LockInfo::for_this_process(),
            Duration::ZERO,
            &crate::support::ui(),
        )
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
        format!("running {:?}", info.command),
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

/// Symlinks planted at every temporary name skyplan ever used for the state, its backup copy
/// and a saved plan point at a file that must stay untouched; the writes go through anyway.
#[test]
fn symlinks_at_temp_paths_are_never_followed() {
    let (mut t, state) = workspace();
    let victim = t.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let src = t.path().join("incoming.json");
    std::fs::write(&src, codec::to_json(&applied_state()).unwrap()).unwrap();
    let dir = state.parent().unwrap().to_path_buf();
    let name = state.file_name().unwrap().to_string_lossy().into_owned();
    for planted in [
        format!("{name}.tmp"),
        format!(".{name}.tmp"),
        format!("{name}.backup.tmp"),
        format!(".{name}.backup.tmp"),
    ] {
        std::os::unix::fs::symlink(&victim, dir.join(planted)).unwrap();
    }
    for planted in ["p.json.tmp", ".p.json.tmp"] {
        std::os::unix::fs::symlink(&victim, t.path().join(planted)).unwrap();
    }
    t.args(&["state", "push", "--from", "incoming.json", TOPOLOGY])
        .run()
        .expect_code(0);
    t.args(&["plan", TOPOLOGY, "--refresh=false", "--out", "p.json"])
        .run()
        .expect_code(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let pushed: State = codec::from_json(&std::fs::read(&state).unwrap(), "state").unwrap();
    assert_eq!(pushed.resources, applied_state().resources);
    assert!(t.path().join("p.json").is_file());
}

/// Every file in `dir` whose name ends in `.tmp`.
fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// A disk that fills up mid-write (simulated with a 512-byte file size limit: the write fails
/// the way ENOSPC makes it fail) leaves the old state, no new plan and no temporary file, and
/// the message says what was not written.
#[test]
fn a_full_disk_leaves_the_old_files_and_no_temp_files() {
    let (t, state) = workspace();
    // The same lineage as the pushed state, at an older serial.
    let pushed = applied_state();
    let mut older = pushed.clone();
    older.serial = 1;
    older.resources.services.clear();
    let old = codec::to_json(&older).unwrap();
    std::fs::write(&state, &old).unwrap();
    let src = t.path().join("incoming.json");
    std::fs::write(&src, codec::to_json(&pushed).unwrap()).unwrap();
    let limited = |args: &str| {
        // SIGXFSZ ignored (inherited across exec): the write fails with an error instead.
        std::process::Command::new("sh")
            .current_dir(t.path())
            .arg("-c")
            .arg(format!("trap '' XFSZ; ulimit -f 1; exec \"$0\" {args}"))
            .arg(env!("CARGO_BIN_EXE_skyplan"))
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = limited(&format!("state push --from incoming.json {TOPOLOGY}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("Nothing of this write was recorded")
            && stderr.contains("previous content"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&state).unwrap(), old);
    assert!(temp_files(state.parent().unwrap()).is_empty());

    let out = limited(&format!("plan {TOPOLOGY} --refresh=false --out p.json"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!t.path().join("p.json").exists());
    assert!(
        temp_files(t.path()).is_empty(),
        "{:?}",
        temp_files(t.path())
    );
}
