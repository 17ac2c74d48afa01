//! The MariaDB state backend beyond the `StateBackend` contract (state_contract.rs), against a
//! real mariadbd that each test starts for itself.

use crate::state_support::mariadb::{KillOnDrop, MariaDb, DB, USER};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use skyplan::state::mysql::{MysqlBackend, MysqlConfig, Password};
use skyplan::state::*;
use skyplan::topology::{ProviderConfig, StateConfig, Topology};

fn assert_no_password(server: &MariaDb, text: &str) {
    assert!(
        !text.contains(&server.password),
        "password leaked into: {text}"
    );
}

/// The write and lock contract is in state_contract.rs; here, what is MariaDB's own: one
/// versioned schema whose rows are per workspace, each with its own state and its own lock,
/// and a backend whose `Debug` shows no password either.
#[tokio::test]
async fn workspaces_are_independent_rows_of_one_versioned_schema() {
    let db = MariaDb::start().await;
    let a = db.backend("demo");
    assert_eq!(
        a.read().await.unwrap(),
        None,
        "no state yet; the schema is created"
    );
    let mut state = crate::state_support::populated_state();
    state.serial = 0;
    a.write(&mut state).await.unwrap();
    a.write(&mut state).await.unwrap();
    assert_eq!(state.serial, 2);

    // Another lineage is refused in this workspace; other workspaces are independent.
    let mut other = skyplan::state::new_state();
    other.serial = 2;
    let err = a.write(&mut other).await.unwrap_err();
    assert!(matches!(err, StateError::LineageMismatch { .. }), "{err:?}");
    let c = db.backend("other");
    let mut fresh = skyplan::state::new_state();
    c.write(&mut fresh).await.unwrap();
    assert_eq!(fresh.serial, 1);
    assert_eq!(a.read().await.unwrap(), Some(state));
    assert_eq!(c.read().await.unwrap(), Some(fresh));

    // Another workspace has its own lock.
    let held = a
        .lock(
            LockInfo::new("skyplan apply team.toml"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    let other = c
        .lock(LockInfo::new("x"), Duration::ZERO, &crate::support::ui())
        .await
        .unwrap();
    other.release().await.unwrap();
    held.release().await.unwrap();

    // One versioned schema.
    let mut conn = db.conn().await;
    let version: Option<u32> = conn
        .query_first("SELECT version FROM skyplan_schema_version")
        .await
        .unwrap();
    assert_eq!(version, Some(skyplan::state::mysql::schema::SCHEMA_VERSION));
    let rows: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM skyplan_state")
        .await
        .unwrap();
    assert_eq!(rows, Some(2));
    assert_no_password(&db, &format!("{err} {} {:?}", a.describe(), a));
}

#[tokio::test]
async fn history_keeps_the_last_20_versions_with_their_writer() {
    let db = MariaDb::start().await;
    let b = db.backend("demo");
    let mut state = skyplan::state::new_state();
    for _ in 0..25 {
        b.write(&mut state).await.unwrap();
    }
    let history = b.history().await.unwrap();
    let serials: Vec<u64> = history.iter().map(|h| h.serial).collect();
    assert_eq!(serials, (6..=25).rev().collect::<Vec<u64>>());
    let writer = history[0].writer.as_ref().unwrap();
    assert_eq!(writer.pid, std::process::id());
    assert_eq!(writer.host, LockInfo::new("x").host);
    assert!(history[0].written_at.as_deref().unwrap().ends_with('Z'));

    // A configured limit, and pushes count as versions.
    let config = MysqlConfig::parse(&format!("{}?history=3", db.url())).unwrap();
    let short = MysqlBackend::new(config, "short", Some(Password::new(&db.password)));
    let mut s = skyplan::state::new_state();
    for _ in 0..4 {
        short.write(&mut s).await.unwrap();
    }
    s.serial = 10;
    short.push(&s, false).await.unwrap();
    let serials: Vec<u64> = short
        .history()
        .await
        .unwrap()
        .iter()
        .map(|h| h.serial)
        .collect();
    assert_eq!(serials, vec![10, 4, 3]);
}

const CHILD_ENV: &str = "SKYPLAN_TEST_HOLD_MARIADB_LOCK";
const CHILD_PASSWORD_ENV: &str = "SKYPLAN_TEST_MARIADB_PASSWORD";

/// Not a test on its own: the body of the child process started by
/// `kill_9_of_the_holder_releases_the_lock_at_once` (this binary run again with CHILD_ENV set).
#[tokio::test]
async fn child_process_mariadb_lock_holder() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let b = MysqlBackend::from_url(&url, "demo", Some(CHILD_PASSWORD_ENV)).unwrap();
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

#[tokio::test]
async fn kill_9_of_the_holder_releases_the_lock_at_once() {
    let db = MariaDb::start().await;
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state_mariadb::child_process_mariadb_lock_holder",
                "--nocapture",
            ])
            .env(CHILD_ENV, db.url())
            .env(CHILD_PASSWORD_ENV, &db.password)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child_pid = child.0.id();
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("child exited before locking").unwrap();
        if line.contains("LOCKED ") {
            break;
        }
    }

    let b = db.backend("demo");
    let err = b
        .lock(
            LockInfo::new("skyplan apply"),
            Duration::ZERO,
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
    assert_eq!(holder.command, "child holder");

    child.0.kill().unwrap(); // SIGKILL: no cleanup in the child
    child.0.wait().unwrap();
    let start = Instant::now();
    let lock = b
        .lock(
            LockInfo::new("skyplan apply"),
            Duration::from_secs(10),
            &crate::support::ui(),
        )
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(
        lock.took_over().map(|h| h.pid),
        Some(child_pid),
        "the dead holder is named"
    );
}

#[tokio::test]
async fn force_unlock_clears_the_record_and_kills_the_holder_only_when_asked() {
    let db = MariaDb::start().await;
    let b = db.backend("demo");
    // A foreign holder: the mariadb client taking the same named lock, idle on its stdin.
    let mut client = KillOnDrop(
        Command::new("mariadb")
            .args(["--no-defaults", "-h127.0.0.1", "-u", USER, "-D", DB])
            .arg(format!("-P{}", db.port))
            .env("MYSQL_PWD", &db.password)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = client.0.stdin.take().unwrap();
    writeln!(stdin, "SELECT GET_LOCK('{}', 0);", b.lock_name()).unwrap();
    stdin.flush().unwrap();
    let mut conn = db.conn().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let holder_conn = loop {
        let used: Option<Option<u64>> = conn
            .exec_first("SELECT IS_USED_LOCK(?)", (b.lock_name(),))
            .await
            .unwrap();
        if let Some(Some(id)) = used {
            break id;
        }
        assert!(Instant::now() < deadline, "the client never took the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let err = b
        .lock(
            LockInfo::new("skyplan apply"),
            Duration::ZERO,
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
    assert_eq!(holder.id, format!("connection-{holder_conn}"));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("MariaDB connection {holder_conn}")),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "force-unlock --id connection-{holder_conn} --kill-holder"
        )),
        "{msg}"
    );

    // Without --kill-holder nothing is killed: the lock stays.
    let wrong = b.force_unlock(Some("not-it"), true).await.unwrap_err();
    assert!(matches!(wrong, StateError::LockIdMismatch { .. }));
    b.force_unlock(None, false).await.unwrap();
    assert!(b
        .lock(LockInfo::new("x"), Duration::ZERO, &crate::support::ui())
        .await
        .is_err());

    let removed = b.force_unlock(Some(&holder.id), true).await.unwrap();
    assert_eq!(removed.map(|h| h.id), Some(holder.id.clone()));
    b.lock(
        LockInfo::new("x"),
        Duration::from_secs(5),
        &crate::support::ui(),
    )
    .await
    .unwrap();
    drop(stdin);
}

#[tokio::test]
async fn migrate_local_to_mariadb_and_back_is_byte_identical() {
    let db = MariaDb::start().await;
    let dir = tempfile::tempdir().unwrap();
    let local = LocalBackend::new(dir.path().join("demo.state.json"));
    let mut state = crate::state_support::populated_state();
    state.serial = 0;
    for _ in 0..3 {
        local.write(&mut state).await.unwrap();
    }
    let original = std::fs::read(local.path()).unwrap();

    let remote = db.backend("demo");
    migrate(&local, &remote).await.unwrap();
    let there = remote.read().await.unwrap().unwrap();
    assert_eq!(
        (there.lineage.as_str(), there.serial),
        (state.lineage.as_str(), 3)
    );

    let back = LocalBackend::new(dir.path().join("back.state.json"));
    migrate(&remote, &back).await.unwrap();
    assert_eq!(std::fs::read(back.path()).unwrap(), original);

    // The remote state carries on from the migrated serial.
    let mut s = remote.read().await.unwrap().unwrap();
    remote.write(&mut s).await.unwrap();
    assert_eq!(s.serial, 4);
    // Pushing the older local copy back is refused without --force.
    assert!(matches!(
        migrate(&local, &remote).await,
        Err(StateError::PushRefused { .. })
    ));
}

fn topology(source: &Path, backend: &str, password_env: Option<&str>) -> Topology {
    Topology {
        source: PathBuf::from(source),
        provider: ProviderConfig::default(),
        state: StateConfig {
            path: None,
            backend: Some(backend.to_string()),
            password_env: password_env.map(str::to_string),
        },
        services: Default::default(),
    }
}

#[tokio::test]
async fn open_backend_reads_the_password_from_the_named_env_var_and_never_shows_it() {
    let db = MariaDb::start().await;
    let env = format!("SKYPLAN_TEST_PW_{}", db.port);
    std::env::set_var(&env, &db.password);
    let topo = topology(Path::new("examples/team.toml"), &db.url(), Some(&env));
    let backend = open_backend(&topo, None).unwrap();
    assert_eq!(
        backend.describe(),
        format!("mysql://{USER}@127.0.0.1:{}/{DB} (workspace team)", db.port)
    );
    let mut s = skyplan::state::new_state();
    backend.write(&mut s).await.unwrap();

    // --state-backend overrides the file's backend.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.json");
    let local = open_backend(&topo, Some(&file.display().to_string())).unwrap();
    assert_eq!(local.describe(), file.display().to_string());

    // A missing env var and a wrong password are clear errors without the password.
    let missing = topology(
        Path::new("t.toml"),
        &db.url(),
        Some("SKYPLAN_TEST_PW_UNSET"),
    );
    let err = open_backend(&missing, None).err().unwrap();
    assert!(err.to_string().contains("SKYPLAN_TEST_PW_UNSET"), "{err}");
    let wrong_env = format!("SKYPLAN_TEST_WRONG_PW_{}", db.port);
    std::env::set_var(&wrong_env, "wrong-password");
    let wrong = open_backend(
        &topology(Path::new("t.toml"), &db.url(), Some(&wrong_env)),
        None,
    )
    .unwrap();
    let err = wrong.read().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("Access denied"), "{msg}");
    assert!(!msg.contains("wrong-password"), "{msg}");
    assert_no_password(&db, &msg);
}

#[tokio::test]
async fn a_schema_from_a_newer_skyplan_is_refused() {
    let db = MariaDb::start().await;
    db.backend("demo").read().await.unwrap();
    let mut conn = db.conn().await;
    conn.query_drop("UPDATE skyplan_schema_version SET version = 99")
        .await
        .unwrap();
    let err = db.backend("demo").read().await.unwrap_err();
    assert!(
        matches!(err, StateError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
fn make_certs(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn ssl_modes_encrypt_and_verify_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path(), "server");
    let (other_ca, _, _) = make_certs(dir.path(), "other");
    let extra = [
        format!("--ssl-ca={}", ca.display()),
        format!("--ssl-cert={}", cert.display()),
        format!("--ssl-key={}", key.display()),
    ];
    let db = MariaDb::start_with(dir, &extra, "REQUIRE SSL").await;
    let with = |query: &str| {
        let config = MysqlConfig::parse(&format!("{}?{query}", db.url())).unwrap();
        MysqlBackend::new(config, "demo", Some(Password::new(&db.password)))
    };

    // The user may only connect over TLS: plain connections are refused by the server.
    assert!(with("ssl-mode=disabled").read().await.is_err());
    // Encrypted, unverified.
    with("ssl-mode=required").read().await.unwrap();
    // Verified against the right CA, with and without the host name check.
    let ca_arg = format!("ssl-ca={}", ca.display());
    with(&format!("ssl-mode=verify-ca&{ca_arg}"))
        .read()
        .await
        .unwrap();
    let mut s = skyplan::state::new_state();
    with(&format!("ssl-mode=verify-identity&{ca_arg}"))
        .write(&mut s)
        .await
        .unwrap();
    // A server certificate from another CA is refused.
    let other = format!("ssl-mode=verify-ca&ssl-ca={}", other_ca.display());
    let err = with(&other).read().await.unwrap_err();
    assert!(matches!(err, StateError::Database { .. }), "{err:?}");
    assert_no_password(&db, &err.to_string());
}

/// The CLI on a topology whose `[state]` names this server.
fn cli_topology(db: &MariaDb, dir: &Path, password_env: &str) -> PathBuf {
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/global-replication.toml"
    ))
    .unwrap();
    let file = dir.join("team.toml");
    std::fs::write(
        &file,
        format!(
            "{example}\n[state]\nbackend = \"{}\"\npassword_env = \"{password_env}\"\n",
            db.url()
        ),
    )
    .unwrap();
    file
}

#[tokio::test]
async fn the_cli_plans_through_mariadb_and_a_second_apply_names_the_holder() {
    let db = MariaDb::start().await;
    let dir = tempfile::tempdir().unwrap();
    let env = "SKYPLAN_TEST_CLI_STATE_PASSWORD";
    let file = cli_topology(&db, dir.path(), env);
    let skyplan = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_skyplan"));
        cmd.current_dir(dir.path())
            .env(env, &db.password)
            .env("NO_COLOR", "1");
        cmd
    };

    let out = skyplan()
        .args(["plan", "--refresh=false", "--detailed-exitcode"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("skysql-secondary"), "{text}");
    assert_no_password(&db, &text);
    assert!(
        !dir.path().join("state").exists(),
        "no local state file was made"
    );

    // Another run holds the workspace's lock (the workspace is the file stem, "team").
    let holder = db.backend("team");
    let held = holder
        .lock(
            LockInfo::new("skyplan apply team.toml"),
            Duration::ZERO,
            &crate::support::ui(),
        )
        .await
        .unwrap();
    let out = skyplan()
        .args(["apply", "--auto-approve"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", std::process::id())),
        "{stderr}"
    );
    assert!(stderr.contains("skyplan apply team.toml"), "{stderr}");
    assert_no_password(&db, &stderr);
    held.release().await.unwrap();

    // Without the password's env var: a clear error naming the variable.
    let out = skyplan()
        .env_remove(env)
        .args(["plan", "--refresh=false"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(env));
}
