//! The `StateBackend` contract (src/state/backend.rs), written once and run against every
//! backend: each behaviour is a function generic over a [`Fixture`] (a fresh, empty storage
//! and as many handles on it as a test asks for), and `contract_tests!` instantiates one test
//! per behaviour per backend: `state_contract::local::NAME` and `state_contract::mariadb::NAME`.
//!
//! What only one backend does (file modes, `.backup`, crash leftovers, stale-lock takeover,
//! schema, grants, TLS, workspaces, `--kill-holder` of a foreign connection) stays in
//! state_local.rs and state_mariadb.rs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use skyplan::state::mysql::DEFAULT_HISTORY_LIMIT;
use skyplan::state::*;

use crate::state_support::mariadb::MariaDb;
use crate::state_support::populated_state;

/// One storage a state can live in, fresh and empty for each test, and dropped (files removed,
/// server stopped) when the test ends, also when it fails.
pub(crate) trait Fixture: Sized {
    async fn new() -> Self;
    /// A new handle on this fixture's storage: two handles are two processes sharing it.
    fn backend(&self) -> Box<dyn StateBackend>;
    /// What `describe()` must say.
    fn expected_describe(&self) -> String;
    /// The password of the storage, which no message may contain (`None`: there is none).
    fn secret(&self) -> Option<String>;
    /// How many versions `history()` keeps (local: the file and its `.backup`).
    fn history_depth(&self) -> usize;
    /// Everything stored for this state (content, previous versions, their metadata), raw:
    /// unchanged means nothing was written.
    async fn stored(&self) -> String;
}

pub(crate) struct LocalFixture {
    dir: tempfile::TempDir,
}

impl LocalFixture {
    fn path(&self) -> PathBuf {
        // A directory that does not exist yet: the first write creates it.
        self.dir.path().join("state").join("demo.state.json")
    }
}

impl Fixture for LocalFixture {
    async fn new() -> Self {
        LocalFixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn backend(&self) -> Box<dyn StateBackend> {
        Box::new(LocalBackend::new(self.path()))
    }
    fn expected_describe(&self) -> String {
        self.path().display().to_string()
    }
    fn secret(&self) -> Option<String> {
        None
    }
    fn history_depth(&self) -> usize {
        2
    }
    async fn stored(&self) -> String {
        let b = LocalBackend::new(self.path());
        let bytes = |p: PathBuf| {
            std::fs::read(&p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|_| "(absent)".into())
        };
        format!(
            "file:\n{}\nbackup:\n{}",
            bytes(b.path().to_path_buf()),
            bytes(b.backup_path())
        )
    }
}

pub(crate) struct MariaDbFixture {
    db: MariaDb,
}

const WORKSPACE: &str = "demo";

impl Fixture for MariaDbFixture {
    async fn new() -> Self {
        MariaDbFixture {
            db: MariaDb::start().await,
        }
    }
    fn backend(&self) -> Box<dyn StateBackend> {
        Box::new(self.db.backend(WORKSPACE))
    }
    fn expected_describe(&self) -> String {
        format!("{} (workspace {WORKSPACE})", self.db.url())
    }
    fn secret(&self) -> Option<String> {
        Some(self.db.password.clone())
    }
    fn history_depth(&self) -> usize {
        DEFAULT_HISTORY_LIMIT as usize
    }
    async fn stored(&self) -> String {
        use mysql_async::prelude::*;
        let mut conn = self.db.conn().await;
        let state: Vec<String> = conn
            .exec(
                "SELECT CONCAT_WS(' | ', lineage, serial, state, updated_at, updated_by_user, \
                 updated_by_host, updated_by_pid, updated_by_command) \
                 FROM skyplan_state WHERE workspace = ?",
                (WORKSPACE,),
            )
            .await
            .unwrap();
        let history: Vec<String> = conn
            .exec(
                "SELECT CONCAT_WS(' | ', id, lineage, serial, state, written_at, writer_user, \
                 writer_host, writer_pid, writer_command) \
                 FROM skyplan_state_history WHERE workspace = ? ORDER BY id",
                (WORKSPACE,),
            )
            .await
            .unwrap();
        format!(
            "state:\n{}\nhistory:\n{}",
            state.join("\n"),
            history.join("\n")
        )
    }
}

/// `err`'s message names where the state lives and never contains the password.
fn assert_names_the_location<F: Fixture>(f: &F, err: &StateError) {
    let msg = err.to_string();
    assert!(
        msg.contains(&f.expected_describe()),
        "{:?} missing from: {msg}",
        f.expected_describe()
    );
    if let Some(secret) = f.secret() {
        assert!(!msg.contains(&secret), "password leaked into: {msg}");
    }
}

fn locked_holder(err: &StateError) -> &LockInfo {
    match err {
        StateError::Locked {
            holder: Some(holder),
            ..
        } => holder,
        _ => panic!("expected Locked naming a holder: {err:?}"),
    }
}

// ---- describe ----

/// `describe()`: where the state lives, never a password.
async fn describe_names_the_storage_without_a_password<F: Fixture>(f: &F) {
    let b = f.backend();
    assert_eq!(b.describe(), f.expected_describe());
    if let Some(secret) = f.secret() {
        assert!(!b.describe().contains(&secret), "{}", b.describe());
    }
}

// ---- read / write ----

/// `read()` is `None` until a first write; a write stores the next serial (previous + 1) and
/// every handle reads back exactly what was written.
async fn writes_count_serials_and_read_back_what_was_written<F: Fixture>(f: &F) {
    let a = f.backend();
    let b = f.backend();
    assert_eq!(a.read().await.unwrap(), None, "no state yet");
    assert_eq!(b.read().await.unwrap(), None);

    let mut state = populated_state();
    state.serial = 0; // as if new: expects no stored state
    a.write(&mut state).await.unwrap();
    assert_eq!(state.serial, 1);
    assert_eq!(b.read().await.unwrap().as_ref(), Some(&state));

    state.resources.backups.clear();
    a.write(&mut state).await.unwrap();
    assert_eq!(state.serial, 2);
    assert_eq!(b.read().await.unwrap().as_ref(), Some(&state));

    // What another handle read, it writes as the next version.
    let mut theirs = b.read().await.unwrap().unwrap();
    theirs.resources.services.clear();
    b.write(&mut theirs).await.unwrap();
    assert_eq!(theirs.serial, 3);
    assert_eq!(a.read().await.unwrap(), Some(theirs));
}

/// Compare-and-swap on the serial: a write from a serial the state has moved on from (or a
/// new state over a stored one, or a state read at a serial over no state) is refused with
/// `StaleSerial`, leaves the caller's serial alone and stores nothing.
async fn a_write_from_a_stale_serial_is_refused_and_stores_nothing<F: Fixture>(f: &F) {
    let a = f.backend();
    let b = f.backend();

    // Read at serial 3 of a state that is not there (any more).
    let mut ghost = skyplan::state::new_state();
    ghost.serial = 3;
    let err = a.write(&mut ghost).await.unwrap_err();
    assert!(
        matches!(
            err,
            StateError::StaleSerial {
                expected: 3,
                found: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(ghost.serial, 3);
    assert_names_the_location(f, &err);
    assert_eq!(a.read().await.unwrap(), None, "nothing was stored");

    let mut state = populated_state();
    state.serial = 0;
    a.write(&mut state).await.unwrap();

    // Two processes read serial 1; the first writes serial 2; the second's write is stale.
    let mut first = a.read().await.unwrap().unwrap();
    let mut second = b.read().await.unwrap().unwrap();
    assert_eq!(second, first);
    let at_serial_1 = f.stored().await;
    a.write(&mut first).await.unwrap();
    assert_eq!(first.serial, 2);
    let before = f.stored().await;
    assert_ne!(before, at_serial_1, "stored() sees every write");

    second.resources.services.clear();
    let err = b.write(&mut second).await.unwrap_err();
    assert!(
        matches!(
            err,
            StateError::StaleSerial {
                expected: 1,
                found: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        second.serial, 1,
        "a refused write leaves the caller's serial alone"
    );
    assert!(err.to_string().contains("another writer"), "{err}");
    assert_names_the_location(f, &err);
    assert_eq!(f.stored().await, before, "the refused write stored nothing");
    assert_eq!(b.read().await.unwrap().as_ref(), Some(&first));

    // A new state over an existing one is stale too (it was "read" when there was none).
    let mut fresh = skyplan::state::new_state();
    fresh.lineage = first.lineage.clone();
    let err = b.write(&mut fresh).await.unwrap_err();
    assert!(
        matches!(
            err,
            StateError::StaleSerial {
                expected: 0,
                found: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fresh.serial, 0);
    assert_eq!(f.stored().await, before);
}

/// A write of another lineage is refused with `LineageMismatch` naming the stored lineage,
/// whatever its serial, and stores nothing.
async fn a_write_of_another_lineage_is_refused_and_stores_nothing<F: Fixture>(f: &F) {
    let a = f.backend();
    let mut mine = skyplan::state::new_state();
    a.write(&mut mine).await.unwrap();
    a.write(&mut mine).await.unwrap(); // serial 2
    let before = f.stored().await;

    for serial in [2, 0] {
        let mut other = skyplan::state::new_state();
        other.serial = serial;
        let err = f.backend().write(&mut other).await.unwrap_err();
        assert!(matches!(err, StateError::LineageMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains(&mine.lineage), "{err}");
        assert!(err.to_string().contains(&other.lineage), "{err}");
        assert_names_the_location(f, &err);
        assert_eq!(
            other.serial, serial,
            "a refused write leaves the state alone"
        );
        assert_eq!(f.stored().await, before, "the refused write stored nothing");
    }
    assert_eq!(a.read().await.unwrap(), Some(mine));
}

// ---- push ----

/// `push` stores the state exactly as given, serial included (also where there is none yet),
/// and the next write carries on from the pushed serial.
async fn push_stores_the_state_exactly_as_given<F: Fixture>(f: &F) {
    let a = f.backend();
    let pushed = populated_state(); // serial 7
    a.push(&pushed, false).await.unwrap();
    assert_eq!(f.backend().read().await.unwrap().as_ref(), Some(&pushed));

    let mut next = a.read().await.unwrap().unwrap();
    a.write(&mut next).await.unwrap();
    assert_eq!(next.serial, 8);

    // A newer serial of the same lineage needs no force.
    let mut newer = next.clone();
    newer.serial = 12;
    newer.resources.services.clear();
    a.push(&newer, false).await.unwrap();
    assert_eq!(a.read().await.unwrap(), Some(newer));
}

/// Without `force`, a push is refused when the stored state has another lineage, a higher
/// serial, or different content at the same serial, and stores nothing; pushing the identical
/// state is a no-op. With `force` each of them is stored as given.
async fn push_refuses_other_lineage_older_serial_or_other_content_unless_forced<F: Fixture>(f: &F) {
    let b = f.backend();
    let mut state = skyplan::state::new_state();
    b.write(&mut state).await.unwrap();
    b.write(&mut state).await.unwrap(); // serial 2
    let before = f.stored().await;

    let mut older = state.clone();
    older.serial = 1;
    let err = b.push(&older, false).await.unwrap_err();
    assert!(matches!(err, StateError::PushRefused { .. }), "{err:?}");
    assert!(
        err.to_string().contains("newer than the pushed serial 1"),
        "{err}"
    );
    assert_names_the_location(f, &err);
    assert_eq!(f.stored().await, before);

    let other = skyplan::state::new_state();
    let err = b.push(&other, false).await.unwrap_err();
    assert!(matches!(err, StateError::PushRefused { .. }), "{err:?}");
    assert!(err.to_string().contains(&other.lineage), "{err}");
    assert_names_the_location(f, &err);
    assert_eq!(f.stored().await, before);

    let mut changed = state.clone();
    changed.resources = populated_state().resources;
    let err = b.push(&changed, false).await.unwrap_err();
    assert!(matches!(err, StateError::PushRefused { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("different content at the same serial 2"),
        "{err}"
    );
    assert_names_the_location(f, &err);
    assert_eq!(f.stored().await, before);

    b.push(&state, false).await.unwrap(); // identical: a no-op
    assert_eq!(f.stored().await, before, "an identical push stores nothing");

    for forced in [changed, older, other] {
        b.push(&forced, true).await.unwrap();
        assert_eq!(f.backend().read().await.unwrap(), Some(forced));
    }
}

// ---- lock ----

/// A second locker (another handle, or the same one) is refused at once with `Locked` naming
/// the holder; `lock_holder` names it too, `None` when nobody holds the lock. Released by
/// `release`, or on drop.
async fn a_second_locker_is_refused_naming_the_holder<F: Fixture>(f: &F) {
    let a = f.backend();
    let b = f.backend();
    assert_eq!(a.lock_holder().await.unwrap(), None);

    let held = a
        .lock(
            LockInfo::new("skyplan apply team.toml"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert!(held.took_over().is_none());

    let start = Instant::now();
    let err = b
        .lock(
            LockInfo::new("skyplan plan"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .err()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "a zero timeout is one try: {:?}",
        start.elapsed()
    );
    assert_eq!(locked_holder(&err), held.info());
    let msg = err.to_string();
    for part in [
        format!("pid {}", std::process::id()),
        held.info().host.clone(),
        held.info().user.clone(),
        "skyplan apply team.toml".to_string(),
        held.info().created_at.clone(),
        format!("skyplan force-unlock --id {}", held.info().id),
    ] {
        assert!(msg.contains(&part), "{part:?} missing from: {msg}");
    }
    assert_names_the_location(f, &err);

    // The holder's own handle is refused as well: the lock is not reentrant.
    let err = a
        .lock(
            LockInfo::new("skyplan plan"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .err()
        .unwrap();
    assert_eq!(locked_holder(&err), held.info());

    assert_eq!(a.lock_holder().await.unwrap().as_ref(), Some(held.info()));
    assert_eq!(b.lock_holder().await.unwrap().as_ref(), Some(held.info()));

    held.release().await.unwrap();
    assert_eq!(b.lock_holder().await.unwrap(), None);
    let again = b
        .lock(
            LockInfo::new("skyplan plan"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert!(
        again.took_over().is_none(),
        "a clean release leaves no record behind"
    );

    // Dropping the lock releases it too.
    drop(again);
    let last = a
        .lock(
            LockInfo::new("fourth"),
            Duration::from_secs(5),
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert!(last.took_over().is_none());
    assert_eq!(b.lock_holder().await.unwrap().as_ref(), Some(last.info()));
}

/// With a timeout, a locker waits and gets the lock as soon as the holder lets go (released or
/// dropped), not before.
async fn lock_timeout_waits_for_the_holder_to_let_go<F: Fixture>(f: &F) {
    let a = f.backend();
    let b = f.backend();
    let held = a
        .lock(
            LockInfo::new("first"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();

    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        held.release().await.unwrap();
    });
    let start = Instant::now();
    let second = b
        .lock(
            LockInfo::new("second"),
            Duration::from_secs(10),
            &crate::support::ui(),
        )
        .await
        .unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(600),
        "got it too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "took too long: {waited:?}");
    assert!(
        second.took_over().is_none(),
        "a clean release leaves no record behind"
    );
    assert_eq!(a.lock_holder().await.unwrap().as_ref(), Some(second.info()));
    releaser.await.unwrap();

    // The same when the holder drops its lock instead.
    let dropper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        drop(second);
    });
    let start = Instant::now();
    let third = a
        .lock(
            LockInfo::new("third"),
            Duration::from_secs(10),
            &crate::support::ui(),
        )
        .await
        .unwrap();
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(600),
        "got it too early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "took too long: {waited:?}");
    assert!(third.took_over().is_none());
    assert_eq!(b.lock_holder().await.unwrap().as_ref(), Some(third.info()));
    dropper.await.unwrap();
}

/// A lock that is not let go is refused once the timeout has passed, naming the holder.
async fn lock_timeout_gives_up_at_the_deadline<F: Fixture>(f: &F) {
    let a = f.backend();
    let b = f.backend();
    let held = a
        .lock(
            LockInfo::new("first"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let err = b
        .lock(
            LockInfo::new("second"),
            Duration::from_millis(700),
            &crate::support::ui(),
        )
        .await
        .err()
        .unwrap();
    let waited = start.elapsed();
    assert!(matches!(err, StateError::Locked { .. }), "{err:?}");
    assert_eq!(locked_holder(&err), held.info());
    assert!(
        waited >= Duration::from_millis(650) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(a.lock_holder().await.unwrap().as_ref(), Some(held.info()));
}

// ---- force_unlock ----

/// `force_unlock` returns the holder it removed (`None` when nothing is locked); with an
/// expected id it removes only a holder with that id and otherwise refuses with
/// `LockIdMismatch`, leaving the lock held. A removed holder's late release does not free the
/// lock of whoever took it next.
async fn force_unlock_removes_the_named_holder_only<F: Fixture>(f: &F) {
    let a = f.backend();
    let b = f.backend();
    assert_eq!(b.force_unlock(None, false).await.unwrap(), None);

    let held = a
        .lock(
            LockInfo::new("skyplan apply (stuck)"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    let err = b.force_unlock(Some("not-the-id"), false).await.unwrap_err();
    assert!(
        matches!(&err, StateError::LockIdMismatch { found, .. } if *found == held.info().id),
        "{err:?}"
    );
    assert_names_the_location(f, &err);
    assert_eq!(b.lock_holder().await.unwrap().as_ref(), Some(held.info()));
    let refused = b
        .lock(LockInfo::new("x"), Duration::ZERO, &crate::support::ui())
        .await
        .err()
        .unwrap();
    assert_eq!(locked_holder(&refused), held.info());

    // kill_holder: the MariaDB holder's connection must end for the server to let go.
    let removed = b.force_unlock(Some(&held.info().id), true).await.unwrap();
    assert_eq!(removed.as_ref(), Some(held.info()));
    let next = b
        .lock(
            LockInfo::new("skyplan apply (next)"),
            Duration::from_secs(5),
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert_eq!(a.lock_holder().await.unwrap().as_ref(), Some(next.info()));

    // The removed holder carries on and lets go: the new holder keeps the lock.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.lock_holder().await.unwrap().as_ref(), Some(next.info()));
    let err = a
        .lock(LockInfo::new("x"), Duration::ZERO, &crate::support::ui())
        .await
        .err()
        .unwrap();
    assert_eq!(locked_holder(&err), next.info());

    next.release().await.unwrap();
    assert_eq!(b.force_unlock(None, false).await.unwrap(), None);
}

// ---- history ----

/// `history()`: the stored versions, newest first (as many as the backend keeps), writes and
/// pushes alike; empty before the first write.
async fn history_lists_stored_versions_newest_first<F: Fixture>(f: &F) {
    let b = f.backend();
    assert_eq!(b.history().await.unwrap(), vec![]);

    let mut state = skyplan::state::new_state();
    for _ in 0..3 {
        b.write(&mut state).await.unwrap();
    }
    let mut pushed = state.clone();
    pushed.serial = 10;
    b.push(&pushed, false).await.unwrap();

    let history = f.backend().history().await.unwrap();
    let serials: Vec<u64> = history.iter().map(|h| h.serial).collect();
    let expected: Vec<u64> = [10, 3, 2, 1].into_iter().take(f.history_depth()).collect();
    assert_eq!(serials, expected);
    for entry in &history {
        assert_eq!(entry.lineage, state.lineage);
        if let Some(at) = &entry.written_at {
            assert!(
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .is_ok(),
                "written_at is not RFC 3339: {at}"
            );
        }
    }
}

/// One `#[tokio::test]` per behaviour for the fixture `$fixture`.
macro_rules! instantiate {
    ($fixture:ty; $($behaviour:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $behaviour() {
                let fixture = <$fixture as super::Fixture>::new().await;
                super::$behaviour(&fixture).await;
            }
        )*
    };
}

/// The contract's behaviours, listed once, each instantiated for every backend.
macro_rules! contract_tests {
    ($($behaviour:ident),* $(,)?) => {
        mod local {
            instantiate!(super::LocalFixture; $($behaviour),*);
        }
        mod mariadb {
            instantiate!(super::MariaDbFixture; $($behaviour),*);
        }
    };
}

contract_tests!(
    describe_names_the_storage_without_a_password,
    writes_count_serials_and_read_back_what_was_written,
    a_write_from_a_stale_serial_is_refused_and_stores_nothing,
    a_write_of_another_lineage_is_refused_and_stores_nothing,
    push_stores_the_state_exactly_as_given,
    push_refuses_other_lineage_older_serial_or_other_content_unless_forced,
    a_second_locker_is_refused_naming_the_holder,
    lock_timeout_waits_for_the_holder_to_let_go,
    lock_timeout_gives_up_at_the_deadline,
    force_unlock_removes_the_named_holder_only,
    history_lists_stored_versions_newest_first,
);
