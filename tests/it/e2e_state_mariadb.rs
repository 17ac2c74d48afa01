//! Shared state on MariaDB, through the binary: each test starts its own `mariadbd` for the
//! state database and, where something is applied, a private emulator. Every command's
//! stdout and stderr is searched for the state database's password.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::state_support::mariadb::{KillOnDrop, MariaDb, DB, KILL_GRANT, STATE_GRANTS, USER};
use crate::support::e2e::Cloud;
use mysql_async::prelude::*;
use skyplan::state::{codec, LockInfo, State, StateBackend};

const TOPOLOGY: &str = "global-replication.toml";
/// The name the topology's state goes by in the shared backend: the file stem.
const WORKSPACE: &str = "global-replication";
const PASSWORD_ENV: &str = "SKYPLAN_STATE_PASSWORD";

/// A team setup: the guide's topology, a private emulator, a state database.
struct Team {
    cloud: Cloud,
    db: MariaDb,
    /// The `--state-backend` URL (with the test's options).
    url: String,
    /// The env var skyplan gets the password in (the topology's `password_env`, if it names one).
    password_env: String,
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Out {
    fn expect_code(self, code: i32) -> Out {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Team {
    /// `query` is appended to the backend URL (e.g. `?history=3`).
    async fn new(query: &str) -> Team {
        let db = MariaDb::start().await;
        let url = format!("{}{query}", db.url());
        Team {
            cloud: Cloud::new(TOPOLOGY),
            db,
            url,
            password_env: PASSWORD_ENV.to_string(),
        }
    }

    fn dir(&self) -> &Path {
        self.cloud.dir()
    }

    /// skyplan in the test dir with the state password in the environment, as a team's
    /// runner would have it.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = self.cloud.command(args);
        c.env_remove(PASSWORD_ENV)
            .env(&self.password_env, &self.db.password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn spawn(&self, args: &[&str]) -> tokio::process::Child {
        self.command(args).spawn().expect("skyplan starts")
    }

    /// Run as another MariaDB user: `url` names it, `password` is its password.
    async fn run_as(&self, args: &[&str], password: &str) -> Out {
        let started = Instant::now();
        let mut c = self.command(args);
        c.env(&self.password_env, password);
        let out = self
            .finish(c.spawn().expect("skyplan starts"), started)
            .await;
        assert!(!out.stdout.contains(password) && !out.stderr.contains(password));
        out
    }

    async fn finish(&self, child: tokio::process::Child, started: Instant) -> Out {
        let out = child.wait_with_output().await.expect("skyplan runs");
        let out = Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        self.assert_no_password(&out.stdout);
        self.assert_no_password(&out.stderr);
        out
    }

    async fn run(&self, args: &[&str]) -> Out {
        let started = Instant::now();
        self.finish(self.spawn(args), started).await
    }

    fn assert_no_password(&self, text: &str) {
        assert!(
            !text.contains(&self.db.password),
            "the state database password leaked into:\n{text}"
        );
    }

    /// The password is in no file of the test dir (topology, plans, emulator logs…) and in no
    /// row of the state database.
    async fn assert_password_stored_nowhere(&self) {
        for file in files_under(self.dir()) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(
                !bytes
                    .windows(self.db.password.len())
                    .any(|w| w == self.db.password.as_bytes()),
                "the password is in {}",
                file.display()
            );
        }
        let rows = self.db.all_rows_text().await;
        assert!(!rows.is_empty());
        self.assert_no_password(&rows);
    }

    async fn stored(&self) -> Option<State> {
        self.db.backend(WORKSPACE).read().await.unwrap()
    }

    /// A SQL connection to a service recorded in the shared state.
    async fn sql(&self, state: &State, key: &str) -> mysql_async::Conn {
        let remote = self.cloud.remote().await;
        let t = remote.sql_target(state, key).await.expect("sql target");
        let ssl =
            mysql_async::SslOpts::default().with_root_certs(vec![self.cloud.info().ca_cert.into()]);
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(t.host)
            .tcp_port(t.port)
            .user(Some(t.user))
            .pass(Some(t.password.expose().to_string()))
            .ssl_opts(Some(ssl));
        mysql_async::Conn::new(opts).await.expect("connect")
    }
}

/// Regular files below `dir`, except the emulated services' MariaDB data (large, and written
/// by servers that never see the state password).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                if p.file_name().is_some_and(|n| n == "data") {
                    continue;
                }
                todo.push(p);
            } else if meta.is_file() {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_and_plan_through_mariadb_and_the_state_commands_read_it() {
    let team = Team::new("?ssl-mode=disabled&history=3").await;
    let url = team.url.as_str();

    let apply = team
        .run(&[
            "-vv",
            "apply",
            TOPOLOGY,
            "--auto-approve",
            "--state-backend",
            url,
        ])
        .await
        .expect_code(0);
    assert!(apply.stdout.contains("Apply complete"), "{}", apply.stdout);
    // -vv logs the state database's traffic (checked for the password like all output).
    for line in [
        "connected to the state database",
        "holding the state lock",
        "stored serial",
    ] {
        assert!(apply.stderr.contains(line), "{line:?} in\n{}", apply.stderr);
    }
    assert!(
        !team.dir().join("state").exists(),
        "the state went to MariaDB, not to a local file"
    );

    // The scheduled drift job's command: nothing to do, nothing drifted.
    let plan = team
        .run(&[
            "plan",
            TOPOLOGY,
            "--detailed-exitcode",
            "--state-backend",
            url,
        ])
        .await
        .expect_code(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);

    // Healthy: a row written on the primary arrives on the secondary, with the endpoints and
    // credentials the shared state records.
    let state = team.stored().await.expect("a state in MariaDB");
    assert!(state.resources.replications["secondary"].healthy);
    let mut primary = team.sql(&state, "primary").await;
    primary
        .query_drop("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY); INSERT INTO app.t VALUES (42)")
        .await
        .unwrap();
    let mut secondary = team.sql(&state, "secondary").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got: Option<u32> = secondary
            .query_first("SELECT id FROM app.t")
            .await
            .unwrap_or(None);
        if got == Some(42) {
            break;
        }
        assert!(Instant::now() < deadline, "the row never replicated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The drift job may run as a read-only user.
    let drift_password = format!("drift-{}", uuid::Uuid::new_v4().simple());
    team.db.root_sql(&format!(
        "CREATE USER 'drift'@'%' IDENTIFIED BY '{drift_password}'; \
         GRANT SELECT ON {DB}.* TO 'drift'@'%';"
    ));
    let drift_url = url.replace("skyplan@", "drift@");
    for args in [
        &[
            "plan",
            TOPOLOGY,
            "--detailed-exitcode",
            "--state-backend",
            &drift_url,
        ][..],
        &["state", "history", TOPOLOGY, "--state-backend", &drift_url][..],
    ] {
        team.run_as(args, &drift_password).await.expect_code(0);
    }

    let list = team
        .run(&["state", "list", TOPOLOGY, "--state-backend", url])
        .await
        .expect_code(0);
    for address in [
        "service.primary",
        "service.secondary",
        "backup.primary",
        "restore.secondary",
        "allowlist.primary.secondary",
        "replication.secondary",
    ] {
        assert!(list.stdout.lines().any(|l| l == address), "{}", list.stdout);
    }
    let show = team
        .run(&[
            "state",
            "show",
            "replication.secondary",
            TOPOLOGY,
            "--state-backend",
            url,
        ])
        .await
        .expect_code(0);
    assert!(show.stdout.contains("\"healthy\": true"), "{}", show.stdout);

    let pull = team
        .run(&["state", "pull", TOPOLOGY, "--state-backend", url])
        .await
        .expect_code(0);
    let pulled = codec::from_json(pull.stdout.as_bytes(), "pull").unwrap();
    assert_eq!(pulled, state);

    // Every action persisted the state, so there were more than 3 writes; 3 are kept.
    assert!(state.serial > 5, "serial {}", state.serial);
    let history = team
        .run(&["state", "history", TOPOLOGY, "--state-backend", url])
        .await
        .expect_code(0);
    let lines: Vec<&str> = history.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", history.stdout);
    for (line, serial) in lines.iter().zip((state.serial - 2..=state.serial).rev()) {
        assert!(
            line.starts_with(&format!("serial {serial} ")),
            "{}",
            history.stdout
        );
        assert!(line.contains("apply"), "the writer's command: {line}");
    }

    let show = team
        .run(&["show", "--topology", TOPOLOGY, "--state-backend", url])
        .await
        .expect_code(0);
    assert!(show.stdout.contains(&state.lineage), "{}", show.stdout);

    // A hand edit goes through the same backend: locked, the serial bumped, the writer in
    // the history.
    team.run(&[
        "state",
        "mv",
        "service.secondary",
        "service.west",
        TOPOLOGY,
        "--state-backend",
        url,
    ])
    .await
    .expect_code(0);
    let history = team
        .run(&["state", "history", TOPOLOGY, "--state-backend", url])
        .await
        .expect_code(0);
    let newest = history.stdout.lines().next().unwrap_or_default();
    assert!(
        newest.starts_with(&format!("serial {} ", state.serial + 1)) && newest.contains("state mv"),
        "{}",
        history.stdout
    );
    let list = team
        .run(&["state", "list", TOPOLOGY, "--state-backend", url])
        .await
        .expect_code(0);
    assert!(
        list.stdout.lines().any(|l| l == "replication.west"),
        "{}",
        list.stdout
    );
    team.assert_password_stored_nowhere().await;
    assert!(!team.db.error_log().contains(&team.db.password));
}

/// Wait until a skyplan process holds the workspace's lock (and has recorded itself).
async fn wait_for_holder(db: &MariaDb, timeout: Duration) -> LockInfo {
    let backend = db.backend(WORKSPACE);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(h) = backend.lock_holder().await.unwrap() {
            if h.pid != 0 {
                return h;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no skyplan process took the lock"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn current_holder_pid(db: &MariaDb) -> Option<u32> {
    db.backend(WORKSPACE)
        .lock_holder()
        .await
        .unwrap()
        .map(|h| h.pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_applies_one_proceeds_the_other_names_the_holder_or_waits_for_it() {
    let mut team = Team::new("").await;
    // Operations that take a while, so the winner holds the lock for several seconds.
    team.cloud.start_emulator(&["--op-seconds", "2"]);
    let url = team.url.clone();
    let apply = [
        "apply",
        TOPOLOGY,
        "--auto-approve",
        "--state-backend",
        url.as_str(),
    ];

    let started = Instant::now();
    let first = team.spawn(&apply);
    let second = team.spawn(&apply);
    let holder = wait_for_holder(&team.db, Duration::from_secs(30)).await;
    let (winner, loser) = if Some(holder.pid) == first.id() {
        (first, second)
    } else {
        assert_eq!(
            Some(holder.pid),
            second.id(),
            "the holder is one of the two"
        );
        (second, first)
    };

    // The loser fails fast, while the winner still works, naming it.
    let loser = team.finish(loser, started).await.expect_code(1);
    assert_eq!(current_holder_pid(&team.db).await, Some(holder.pid));
    assert!(
        loser.elapsed < Duration::from_secs(20),
        "{:?}",
        loser.elapsed
    );
    for part in [
        format!("locked by pid {} on host {}", holder.pid, holder.host),
        "apply global-replication.toml --auto-approve --state-backend mysql://".to_string(),
        format!("force-unlock --id {}", holder.id),
    ] {
        assert!(
            loser.stderr.contains(&part),
            "{part:?} in\n{}",
            loser.stderr
        );
    }
    assert!(
        loser.stdout.is_empty(),
        "the refused apply must not even plan:\n{}",
        loser.stdout
    );

    // A scheduled drift check still reads the shared state meanwhile (plan takes no lock).
    let drift = team
        .run(&[
            "plan",
            TOPOLOGY,
            "--refresh=false",
            "--detailed-exitcode",
            "--state-backend",
            &url,
        ])
        .await;
    assert!(matches!(drift.code, Some(0 | 2)), "{}", drift.stderr);

    // With --lock-timeout a third apply waits for the winner instead of failing...
    let mut waiter = team.spawn(&[
        "apply",
        TOPOLOGY,
        "--auto-approve",
        "--lock-timeout",
        "2m",
        "--state-backend",
        &url,
    ]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(waiter.try_wait().unwrap().is_none(), "the waiter gave up");
    assert_eq!(current_holder_pid(&team.db).await, Some(holder.pid));

    let winner = team.finish(winner, started).await.expect_code(0);
    assert!(
        winner.stdout.contains("Apply complete"),
        "{}",
        winner.stdout
    );
    // ...then proceeds on the state the winner left: nothing left to do.
    let waiter = team.finish(waiter, started).await.expect_code(0);
    assert!(waiter.stdout.contains("No changes"), "{}", waiter.stdout);
    assert!(!waiter.stderr.contains("took over"), "{}", waiter.stderr);
    assert_eq!(
        current_holder_pid(&team.db).await,
        None,
        "every lock released"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_kill_9_of_the_holder_the_next_apply_gets_the_lock_at_once_and_finishes() {
    use std::os::unix::process::ExitStatusExt;

    let mut team = Team::new("").await;
    team.cloud.start_emulator(&["--op-seconds", "3"]);
    let url = team.url.clone();
    let apply = [
        "apply",
        TOPOLOGY,
        "--auto-approve",
        "--state-backend",
        url.as_str(),
    ];

    let mut first = team.spawn(&apply);
    let pid = first.id().unwrap();
    assert_eq!(
        wait_for_holder(&team.db, Duration::from_secs(30)).await.pid,
        pid
    );
    // Mid-run: both services are being created, nothing is replicating yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    while team
        .stored()
        .await
        .is_none_or(|s| s.resources.services.len() < 2)
    {
        assert!(
            Instant::now() < deadline,
            "the apply never created both services"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.start_kill().unwrap(); // SIGKILL: no cleanup, no unlock
    let status = first.wait().await.unwrap();
    assert_eq!(status.signal(), Some(9));
    let mid = team.stored().await.unwrap();
    assert!(
        mid.resources.replications.is_empty(),
        "killed too late: {mid:?}"
    );

    // No --lock-timeout, no force-unlock: the server released the dead holder's lock.
    let next = team.run(&apply).await.expect_code(0);
    assert!(
        next.stderr
            .contains(&format!("took over a stale lock of pid {pid}")),
        "{}",
        next.stderr
    );
    assert!(next.stdout.contains("Apply complete"), "{}", next.stdout);
    team.run(&[
        "plan",
        TOPOLOGY,
        "--detailed-exitcode",
        "--state-backend",
        &url,
    ])
    .await
    .expect_code(0);
    let done = team.stored().await.unwrap();
    assert_eq!(done.lineage, mid.lineage);
    assert!(done.serial > mid.serial);
    assert!(done.resources.replications["secondary"].healthy);
    assert_eq!(current_holder_pid(&team.db).await, None);
}

/// `state push --from FILE` of `state` with the CLI, from a file in the test dir.
async fn push(team: &Team, state: &State, name: &str, extra: &[&str]) -> Out {
    let file = team.dir().join(name);
    std::fs::write(&file, codec::to_json(state).unwrap()).unwrap();
    let mut args = vec![
        "state",
        "push",
        TOPOLOGY,
        "--from",
        name,
        "--state-backend",
        team.url.as_str(),
    ];
    args.extend_from_slice(extra);
    team.run(&args).await
}

async fn history_serials(team: &Team) -> Vec<u64> {
    let out = team
        .run(&["state", "history", TOPOLOGY, "--state-backend", &team.url])
        .await
        .expect_code(0);
    out.stdout
        .lines()
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad history line {l:?}"))
        })
        .collect()
}

async fn pulled(team: &Team) -> State {
    let out = team
        .run(&["state", "pull", TOPOLOGY, "--state-backend", &team.url])
        .await
        .expect_code(0);
    codec::from_json(out.stdout.as_bytes(), "state pull").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_keeps_n_versions_and_a_push_of_an_older_serial_is_refused_without_force() {
    let team = Team::new("?history=3").await;
    let mut state = crate::state_support::populated_state();
    for serial in 1..=5 {
        state.serial = serial;
        let out = push(&team, &state, &format!("v{serial}.json"), &[])
            .await
            .expect_code(0);
        assert!(out.stderr.contains("Pushed"), "{}", out.stderr);
    }
    assert_eq!(history_serials(&team).await, vec![5, 4, 3]);

    // A stale serial: refused, nothing written.
    state.serial = 3;
    let stale = push(&team, &state, "old.json", &[]).await.expect_code(1);
    for part in ["refusing to push", "serial 5", "serial 3", "--force"] {
        assert!(stale.stderr.contains(part), "{part:?} in {}", stale.stderr);
    }
    // The same serial with other content, and another lineage: refused too.
    let mut changed = pulled(&team).await;
    changed.resources.replications.clear();
    push(&team, &changed, "same-serial.json", &[])
        .await
        .expect_code(1);
    let mut other = skyplan::state::new_state();
    other.serial = 9;
    let foreign = push(&team, &other, "other.json", &[]).await.expect_code(1);
    assert!(foreign.stderr.contains("lineage"), "{}", foreign.stderr);
    assert_eq!(pulled(&team).await.serial, 5);
    assert_eq!(history_serials(&team).await, vec![5, 4, 3]);

    // --force is the operator's override, and it is a version like any other.
    push(&team, &state, "old.json", &["--force"])
        .await
        .expect_code(0);
    assert_eq!(pulled(&team).await, state);
    assert_eq!(history_serials(&team).await, vec![3, 5, 4]);

    // A password written into the URL is refused, without repeating it.
    let with_password = team
        .url
        .replace("skyplan@", &format!("skyplan:{}@", team.db.password));
    let out = team
        .run(&["state", "list", TOPOLOGY, "--state-backend", &with_password])
        .await
        .expect_code(1);
    assert!(out.stderr.contains("password_env"), "{}", out.stderr);
    team.assert_password_stored_nowhere().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_local_to_mariadb_and_back_is_byte_identical_with_lineage_and_serial() {
    let mut team = Team::new("").await;
    // A local state, as the topology's default (no [state] table yet).
    let mut state = crate::state_support::populated_state();
    state.serial = 12;
    let seed = team.dir().join("seed.json");
    std::fs::write(&seed, codec::to_json(&state).unwrap()).unwrap();
    team.run(&["state", "push", TOPOLOGY, "--from", "seed.json"])
        .await
        .expect_code(0);
    let local_path = team
        .dir()
        .join("state")
        .join(format!("{WORKSPACE}.state.json"));
    let original = std::fs::read(&local_path).unwrap();

    // Local → MariaDB.
    let out = team
        .run(&["state", "migrate", TOPOLOGY, "--to", &team.url])
        .await
        .expect_code(0);
    assert!(out.stderr.contains("Migrated"), "{}", out.stderr);
    let mut conn = team.db.conn().await;
    let row: (String, u64, String) = conn
        .exec_first(
            "SELECT lineage, serial, state FROM skyplan_state WHERE workspace = ?",
            (WORKSPACE,),
        )
        .await
        .unwrap()
        .expect("a row for the workspace");
    assert_eq!((row.0.as_str(), row.1), (state.lineage.as_str(), 12));
    assert_eq!(row.2.as_bytes(), original.as_slice(), "the same bytes");

    // The team points the topology at the shared state, password from its own env var.
    let topology = team.dir().join(TOPOLOGY);
    let mut text = std::fs::read_to_string(&topology).unwrap();
    text.push_str(&format!(
        "\n[state]\nbackend = \"{}\"\npassword_env = \"TEAM_STATE_PASSWORD\"\n",
        team.url
    ));
    std::fs::write(&topology, text).unwrap();
    team.password_env = "TEAM_STATE_PASSWORD".into();
    let list = team.run(&["state", "list", TOPOLOGY]).await.expect_code(0);
    let same = team
        .run(&["state", "migrate", TOPOLOGY, "--to", &team.url])
        .await
        .expect_code(1);
    assert!(same.stderr.contains("already at"), "{}", same.stderr);
    assert!(list.stdout.contains("service.primary"), "{}", list.stdout);

    // MariaDB → local, to a new file.
    team.run(&["state", "migrate", TOPOLOGY, "--to", "back/roundtrip.json"])
        .await
        .expect_code(0);
    let back = std::fs::read(team.dir().join("back/roundtrip.json")).unwrap();
    assert_eq!(back, original, "local → MariaDB → local is byte-identical");
    let back = codec::from_json(&back, "back").unwrap();
    assert_eq!((back.lineage, back.serial), (state.lineage.clone(), 12));

    // Migrating again is a no-op; the MariaDB copy then moves on and the old local one
    // cannot be migrated over it.
    team.run(&["state", "migrate", TOPOLOGY, "--to", "back/roundtrip.json"])
        .await
        .expect_code(0);
    let mut newer = team.db.backend(WORKSPACE).read().await.unwrap().unwrap();
    team.db.backend(WORKSPACE).write(&mut newer).await.unwrap();
    team.run(&[
        "state",
        "migrate",
        TOPOLOGY,
        "--state-backend",
        "back/roundtrip.json",
        "--to",
        &team.url,
    ])
    .await
    .expect_code(1);
    team.assert_password_stored_nowhere().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_unlock_kill_holder_needs_connection_admin_only_for_another_users_holder() {
    let team = Team::new("").await;
    let url = team.url.as_str();
    // A holder that is not skyplan and not the skyplan user: a mariadb client session.
    let other_password = format!("other-{}", uuid::Uuid::new_v4().simple());
    team.db.root_sql(&format!(
        "CREATE USER 'other'@'%' IDENTIFIED BY '{other_password}'; {}",
        STATE_GRANTS.replace("{db}", DB).replace("{user}", "other")
    ));
    let mut client = KillOnDrop(
        std::process::Command::new("mariadb")
            .args(["--no-defaults", "-h127.0.0.1", "-uother", "-D", DB])
            .arg(format!("-P{}", team.db.port))
            .env("MYSQL_PWD", &other_password)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdin = client.0.stdin.take().unwrap();
    let lock_name = skyplan::state::mysql::lock_name(DB, WORKSPACE);
    writeln!(stdin, "SELECT GET_LOCK('{lock_name}', 0);").unwrap();
    stdin.flush().unwrap();
    let holder = wait_for_any_holder(&team.db).await;

    let refused = team
        .run(&["apply", TOPOLOGY, "--auto-approve", "--state-backend", url])
        .await
        .expect_code(1);
    assert!(
        refused
            .stderr
            .contains(&format!("force-unlock --id {} --kill-holder", holder.id)),
        "{}",
        refused.stderr
    );
    let unlock = [
        "force-unlock",
        TOPOLOGY,
        "--force",
        "--kill-holder",
        "--id",
        holder.id.as_str(),
        "--state-backend",
        url,
    ];
    // With only the state grants the skyplan user cannot end another user's connection.
    let denied = team.run(&unlock).await.expect_code(1);
    assert!(
        denied.stderr.contains("CONNECTION ADMIN"),
        "{}",
        denied.stderr
    );
    assert!(current_holder_pid(&team.db).await.is_some(), "still locked");

    team.db.root_sql(&KILL_GRANT.replace("{user}", USER));
    team.run(&unlock).await.expect_code(0);
    assert_eq!(current_holder_pid(&team.db).await, None, "the lock is free");
    drop(stdin);
}

async fn wait_for_any_holder(db: &MariaDb) -> LockInfo {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(h) = db.backend(WORKSPACE).lock_holder().await.unwrap() {
            return h;
        }
        assert!(Instant::now() < deadline, "nobody took the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
