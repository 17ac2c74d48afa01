//! The local state backend beyond the `StateBackend` contract (state_contract.rs): atomic
//! writes, backups, permissions, refusal of files it cannot trust, and the lock file
//! (cross-process, stale, another host).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skyplan::state::*;

fn backend(dir: &tempfile::TempDir) -> LocalBackend {
    LocalBackend::new(dir.path().join("state").join("demo.state.json"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn first_write_creates_the_dir_and_a_private_file_and_increments_serial() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    assert_eq!(b.read().await.unwrap(), None);

    let mut state = skyplan::state::new_state();
    b.write(&mut state).await.unwrap();
    assert_eq!(state.serial, 1);
    assert_eq!(mode(b.path()), 0o600);
    b.write(&mut state).await.unwrap();
    assert_eq!(state.serial, 2);

    let stored = b.read().await.unwrap().unwrap();
    assert_eq!(stored, state);
    assert_eq!(mode(b.path()), 0o600);
    assert_eq!(mode(&b.backup_path()), 0o600);
}

#[tokio::test]
async fn the_previous_version_is_kept_as_backup() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    let mut state = crate::state_support::populated_state();
    state.serial = 0;
    b.write(&mut state).await.unwrap();
    let first = std::fs::read(b.path()).unwrap();
    state.resources.services.clear();
    b.write(&mut state).await.unwrap();

    assert_eq!(std::fs::read(b.backup_path()).unwrap(), first);
    let history = b.history().await.unwrap();
    let serials: Vec<u64> = history.iter().map(|h| h.serial).collect();
    assert_eq!(serials, vec![2, 1]);
}

#[tokio::test]
async fn a_crash_mid_write_leaves_the_old_content() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    let mut state = skyplan::state::new_state();
    b.write(&mut state).await.unwrap();
    let before = std::fs::read(b.path()).unwrap();

    // What a crash between "write temp" and "rename" leaves: a half-written temp file.
    let tmp = PathBuf::from(format!("{}.tmp", b.path().display()));
    std::fs::write(&tmp, b"{\"format_version\": 1, \"lin").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();

    assert_eq!(std::fs::read(b.path()).unwrap(), before);
    assert_eq!(b.read().await.unwrap().unwrap(), state);

    // The next write goes through and does not leave the leftover behind.
    b.write(&mut state).await.unwrap();
    assert_eq!(b.read().await.unwrap().unwrap().serial, 2);
    assert!(!tmp.exists());
    assert_eq!(mode(b.path()), 0o600);
}

#[tokio::test]
async fn a_newer_format_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    std::fs::create_dir_all(b.path().parent().unwrap()).unwrap();
    let future = br#"{"format_version": 3, "lineage": "x", "serial": 9, "future": [1, 2]}"#;
    std::fs::write(b.path(), future).unwrap();

    let err = b.read().await.unwrap_err();
    assert!(
        matches!(err, StateError::TooNew { found: 3, .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("newer skyplan") && msg.contains("demo.state.json"),
        "{msg}"
    );

    let mut state = skyplan::state::new_state();
    assert!(matches!(
        b.write(&mut state).await,
        Err(StateError::TooNew { .. })
    ));
    assert!(matches!(
        b.push(&state, true).await,
        Err(StateError::TooNew { .. })
    ));
    assert_eq!(std::fs::read(b.path()).unwrap(), future);
    assert!(!b.backup_path().exists());
}

#[tokio::test]
async fn a_truncated_file_is_refused_naming_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    let mut state = crate::state_support::populated_state();
    state.serial = 0;
    b.write(&mut state).await.unwrap();
    let full = std::fs::read(b.path()).unwrap();
    let truncated = &full[..full.len() / 2];
    std::fs::write(b.path(), truncated).unwrap();

    let err = b.read().await.unwrap_err();
    let StateError::Corrupt { line, column, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(*line > 1 && *column > 0);
    let msg = err.to_string();
    assert!(msg.contains(&b.path().display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("line {line} column {column}")),
        "{msg}"
    );

    assert!(matches!(
        b.write(&mut state).await,
        Err(StateError::Corrupt { .. })
    ));
    assert_eq!(std::fs::read(b.path()).unwrap(), truncated);
}

#[tokio::test]
async fn migrate_keeps_lineage_serial_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let from = LocalBackend::new(dir.path().join("a.state.json"));
    let to = LocalBackend::new(dir.path().join("b.state.json"));
    let mut state = crate::state_support::populated_state();
    state.serial = 0;
    from.write(&mut state).await.unwrap();

    migrate(&from, &to).await.unwrap();
    assert_eq!(
        std::fs::read(from.path()).unwrap(),
        std::fs::read(to.path()).unwrap()
    );
    migrate(&from, &to).await.unwrap(); // again: nothing to do

    let empty = LocalBackend::new(dir.path().join("none.state.json"));
    assert!(matches!(
        migrate(&empty, &to).await,
        Err(StateError::NothingToMigrate { .. })
    ));
}

// ---- locking ----

/// The lock contract (refusal naming the holder, release, drop) is in state_contract.rs; here,
/// that the lock file goes at once on release and on drop.
#[tokio::test]
async fn releasing_or_dropping_the_lock_removes_the_lock_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    let held = b
        .lock(
            LockInfo::new("skyplan apply demo.toml"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert!(b.lock_path().exists());
    held.release().await.unwrap();
    assert!(!b.lock_path().exists());
    let again = b
        .lock(
            LockInfo::new("skyplan plan"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert!(b.lock_path().exists());
    drop(again);
    assert!(!b.lock_path().exists(), "dropping the lock releases it");
}

/// Writes a lock file as another process would have left it.
fn plant_lock(b: &LocalBackend, pid: u32, host: &str) -> LockInfo {
    let mut info = LockInfo::new("skyplan apply (elsewhere)");
    info.pid = pid;
    info.host = host.to_string();
    std::fs::create_dir_all(b.path().parent().unwrap()).unwrap();
    std::fs::write(b.lock_path(), serde_json::to_vec(&info).unwrap()).unwrap();
    info
}

#[tokio::test]
async fn a_lock_left_by_a_dead_process_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    let mut child = Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let stale = plant_lock(&b, dead_pid, &gethostname());

    let lock = b
        .lock(
            LockInfo::new("skyplan apply"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert_eq!(lock.took_over(), Some(&stale));
    assert_eq!(b.lock_holder().await.unwrap().unwrap().id, lock.info().id);
}

#[tokio::test]
async fn a_lock_held_on_another_host_is_never_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    // A pid that does not exist here: it may well exist on the other host.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let remote = plant_lock(&b, pid, "some-other-host.example");

    let err = b
        .lock(
            LockInfo::new("skyplan apply"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("some-other-host.example"), "{err}");

    // The operator's way out.
    let wrong = force_unlock_local(&b, Some("not-the-id")).unwrap_err();
    assert!(matches!(wrong, StateError::LockIdMismatch { .. }));
    assert_eq!(
        force_unlock_local(&b, Some(&remote.id)).unwrap(),
        Some(remote)
    );
    assert_eq!(force_unlock_local(&b, None).unwrap(), None);
    b.lock(
        LockInfo::new("skyplan apply"),
        Duration::ZERO,
        &crate::support::ui(),
    )
    .await
    .unwrap();
}

fn force_unlock_local(b: &LocalBackend, id: Option<&str>) -> Result<Option<LockInfo>, StateError> {
    skyplan::state::local::force_unlock(b.path(), id)
}

fn gethostname() -> String {
    LockInfo::new("x").host
}

// ---- a lock held by another process ----

const CHILD_ENV: &str = "SKYPLAN_TEST_HOLD_LOCAL_LOCK";

/// Not a test on its own: the body of the child process that `a_lock_held_by_another_process_*`
/// starts (this test binary, run again with CHILD_ENV set). It takes the lock, says so, and
/// holds it until it is killed.
#[tokio::test]
async fn child_process_lock_holder() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let b = LocalBackend::new(path);
    let lock = b
        .lock(
            LockInfo::new("child holder"),
            Duration::from_secs(10),
            &crate::support::ui(),
        )
        .await
        .unwrap();
    println!("LOCKED {}", lock.info().id);
    tokio::time::sleep(Duration::from_secs(60)).await;
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_lock_held_by_another_process_refuses_then_is_taken_over_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&dir);
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state_local::child_process_lock_holder",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, b.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child_pid = child.0.id();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let child_lock_id = loop {
        let line = lines.next().expect("child exited before locking").unwrap();
        // The harness may print "test name ... " on the same line first.
        if let Some((_, id)) = line.split_once("LOCKED ") {
            break id.trim().to_string();
        }
    };

    let err = b
        .lock(
            LockInfo::new("parent"),
            Duration::from_millis(300),
            &crate::support::ui(),
        )
        .await
        .err()
        .unwrap();
    let StateError::Locked {
        holder: Some(holder),
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(holder.pid, child_pid);
    assert_eq!(holder.id, child_lock_id);
    assert!(
        err.to_string().contains(&format!("pid {child_pid}")),
        "{err}"
    );

    // kill -9: the child cannot clean up; its lock file stays, naming a dead pid.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(b.lock_path().exists());

    let lock = b
        .lock(
            LockInfo::new("parent"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert_eq!(lock.took_over().map(|h| h.pid), Some(child_pid));
}
