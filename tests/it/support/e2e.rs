//! End-to-end harness: a temp directory holding a topology, its state and a private emulator
//! (real mariadbd servers). Dropping the harness stops the emulator and kills every mariadbd
//! it started, even when the test panicked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mysql_async::prelude::*;
use skyplan::remote::Remote;
use skyplan::skysql::client::{ClientConfig, SkysqlClient};
use skyplan::skysql::secret::Secret;
use skyplan::state::State;

use super::cli::{Run, Test};

pub(crate) struct Cloud {
    pub test: Test,
    pub topology: String,
}

impl Cloud {
    /// A temp dir with `examples/<example>` in it; the emulator starts on first use.
    pub(crate) fn new(example: &str) -> Cloud {
        Cloud {
            test: Test::new().example(example),
            topology: example.to_string(),
        }
    }

    /// Start the emulator explicitly, with extra `emulator start` flags (faults, pacing).
    pub(crate) fn start_emulator(&mut self, flags: &[&str]) -> Run {
        let mut args = vec!["emulator", "start"];
        args.extend_from_slice(flags);
        self.test.args(&args).run().expect_code(0)
    }

    pub(crate) fn dir(&self) -> &Path {
        self.test.path()
    }

    pub(crate) fn emulator_dir(&self) -> PathBuf {
        self.dir().join("emulator")
    }

    /// Run skyplan with these arguments in the test dir.
    pub(crate) fn skyplan(&mut self, args: &[&str]) -> Run {
        self.test.args(args).run()
    }

    /// A `Command` for skyplan in the test dir (to run in the background).
    pub(crate) fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_skyplan"));
        c.current_dir(self.dir())
            .args(args)
            .env("NO_COLOR", "1")
            .env("SKYPLAN_EMULATOR_DIR", self.emulator_dir())
            .kill_on_drop(true);
        c
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.test
            .state_file(self.topology.trim_end_matches(".toml"))
    }

    pub(crate) fn state(&self) -> Option<State> {
        let bytes = std::fs::read(self.state_path()).ok()?;
        skyplan::state::codec::from_json(&bytes, "state").ok()
    }

    pub(crate) fn info(&self) -> skyplan_emulator::info::LocalEmulator {
        skyplan_emulator::info::read_info(&self.emulator_dir())
            .expect("emulator running")
            .emulator
    }

    pub(crate) fn api(&self) -> SkysqlClient {
        let info = self.info();
        SkysqlClient::new(ClientConfig::new(info.endpoint, Secret::new(info.api_key))).unwrap()
    }

    /// A SQL connection to a service of the state, with the credentials that work on it.
    pub(crate) async fn sql(&self, key: &str) -> mysql_async::Conn {
        let state = self.state().expect("state");
        let remote = self.remote().await;
        let t = remote.sql_target(&state, key).await.expect("sql target");
        let ca = self.info().ca_cert;
        let ssl = mysql_async::SslOpts::default().with_root_certs(vec![ca.into()]);
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(t.host)
            .tcp_port(t.port)
            .user(Some(t.user))
            .pass(Some(t.password.expose().to_string()))
            .ssl_opts(Some(ssl));
        mysql_async::Conn::new(opts).await.expect("connect")
    }

    /// A service made by hand through the API (as a user would, outside skyplan).
    pub(crate) async fn create_by_hand(
        &self,
        spec: &skyplan::topology::ServiceSpec,
    ) -> skyplan::skysql::types::ServiceResponse {
        self.api()
            .create_service(&skyplan::apply::steps::create_request(spec))
            .await
            .unwrap()
    }

    /// Delete service `key` through the API, outside skyplan (a region lost), and wait until
    /// the API no longer knows it (panics after 30 s). Returns its id.
    pub(crate) async fn delete_by_hand(&self, key: &str) -> String {
        let id = self.state().expect("state").resources.services[key]
            .id
            .clone();
        self.api().delete_service(&id).await.unwrap();
        for _ in 0..300 {
            if self.api().get_service(&id).await.unwrap().is_none() {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("service.{key} ({id}) was not deleted within 30 s");
    }

    /// The services the API lists under `name`.
    pub(crate) async fn services_named(
        &self,
        name: &str,
    ) -> Vec<skyplan::skysql::types::ServiceResponse> {
        let all = self.api().list_services().await.unwrap();
        all.into_iter().filter(|s| s.name == name).collect()
    }

    /// Wait until the service `id` is ready (panics after a minute).
    pub(crate) async fn wait_service_ready(&self, id: &str) {
        for _ in 0..600 {
            let s = self.api().get_service(id).await.unwrap().unwrap();
            if s.status == skyplan::skysql::types::ServiceStatus::Ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("service {id} never became ready");
    }

    /// A SQL connection to a service the state does not record (made by hand, say), with its
    /// own credentials.
    pub(crate) async fn sql_to_service(&self, id: &str) -> mysql_async::Conn {
        let svc = self.api().get_service(id).await.unwrap().expect("service");
        let topo = skyplan::topology::load(&self.dir().join(&self.topology)).unwrap();
        let mut spec = topo.services.values().next().unwrap().spec.clone();
        spec.ssl_enabled = svc.ssl_enabled;
        let mut state = skyplan::state::new_state();
        state.resources.services.insert(
            "theirs".into(),
            skyplan::state::ServiceRecord {
                fqdn: Some(svc.fqdn.clone()),
                port: svc.readwrite_port(),
                ..skyplan::state::ServiceRecord::new(id.into(), spec)
            },
        );
        let t = self
            .remote()
            .await
            .sql_target(&state, "theirs")
            .await
            .expect("sql target");
        let ca = self.info().ca_cert;
        let ssl = mysql_async::SslOpts::default().with_root_certs(vec![ca.into()]);
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(t.host)
            .tcp_port(t.port)
            .user(Some(t.user))
            .pass(Some(t.password.expose().to_string()))
            .ssl_opts(Some(ssl));
        mysql_async::Conn::new(opts).await.expect("connect")
    }

    pub(crate) async fn remote(&self) -> Remote {
        let topo = skyplan::topology::load(&self.dir().join(&self.topology)).unwrap();
        Remote::connect_with(&topo, Default::default(), Some(&self.emulator_dir()))
            .await
            .expect("remote")
    }

    /// Wait until the state knows `key`'s endpoint and the service is ready.
    pub(crate) async fn wait_ready_in_state(&self, key: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.state() {
                if s.resources
                    .services
                    .get(key)
                    .is_some_and(|r| r.status.as_ref().map(|s| s.as_str()) == Some("ready"))
                {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "service.{key} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// mariadbd processes of this test's emulator still alive.
    pub(crate) fn mariadbd_count(&self) -> usize {
        self.mariadbd_pids().len()
    }

    /// The `mariadbd` of service `id` (to kill it, as a crash would, or to see it stopped).
    pub(crate) fn mariadbd_pids_of(&self, id: &str) -> Vec<u32> {
        let dir = self.emulator_dir().join("services").join(id);
        let prefix = format!("--defaults-file={}/", dir.display());
        self.mariadbd_pids()
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.split(|b| *b == 0)
                        .any(|a| a.starts_with(prefix.as_bytes()))
                })
            })
            .collect()
    }

    /// The pids of the `mariadbd`s this test's emulator started.
    pub(crate) fn mariadbd_pids(&self) -> Vec<u32> {
        let prefix = format!(
            "--defaults-file={}/",
            self.emulator_dir().join("services").display()
        );
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.split(|b| *b == 0)
                        .any(|a| a.starts_with(prefix.as_bytes()))
                })
            })
            .collect()
    }
}

// The emulator in `emulator_dir()` is stopped when `test` is dropped (see `Test`'s Drop).

/// Create a table and keep inserting rows until told to stop; returns how many it wrote.
pub(crate) async fn write_rows(
    mut conn: mysql_async::Conn,
    stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    conn.query_drop("CREATE DATABASE IF NOT EXISTS app")
        .await
        .unwrap();
    conn.query_drop("CREATE TABLE IF NOT EXISTS app.events (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))")
        .await
        .unwrap();
    // No primary key: row-based replication of such a table is where duplicates hide.
    conn.query_drop("CREATE TABLE IF NOT EXISTS app.audit (note VARCHAR(64), at INT)")
        .await
        .unwrap();
    let mut n = 0;
    while !*stop.borrow() {
        conn.exec_drop(
            "INSERT INTO app.events (note) VALUES (?)",
            (format!("row {n}"),),
        )
        .await
        .unwrap();
        conn.exec_drop(
            "INSERT INTO app.audit (note, at) VALUES (?, ?)",
            (format!("row {n}"), n),
        )
        .await
        .unwrap();
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

/// Row count and CHECKSUM TABLE of `app.events`.
pub(crate) async fn table_fingerprint(conn: &mut mysql_async::Conn) -> (u64, u64) {
    let count: u64 = conn
        .query_first("SELECT COUNT(*) FROM app.events")
        .await
        .unwrap()
        .unwrap_or(0);
    let row: Option<(String, Option<u64>)> =
        conn.query_first("CHECKSUM TABLE app.events").await.unwrap();
    (count, row.and_then(|r| r.1).unwrap_or(0))
}

/// Row count and CHECKSUM TABLE of `app.audit`, the writer's table without a primary key.
pub(crate) async fn audit_fingerprint(conn: &mut mysql_async::Conn) -> (u64, u64) {
    let count: u64 = conn
        .query_first("SELECT COUNT(*) FROM app.audit")
        .await
        .unwrap()
        .unwrap_or(0);
    let row: Option<(String, Option<u64>)> =
        conn.query_first("CHECKSUM TABLE app.audit").await.unwrap();
    (count, row.and_then(|r| r.1).unwrap_or(0))
}

/// Wait until the replica has the same rows as the primary.
pub(crate) async fn wait_converged(
    primary: &mut mysql_async::Conn,
    replica: &mut mysql_async::Conn,
) -> (u64, u64) {
    let want = table_fingerprint(primary).await;
    for _ in 0..200 {
        let got = replica_fingerprint(replica).await;
        if got == Some(want) {
            return want;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "replica never caught up: primary {want:?}, replica {:?}",
        replica_fingerprint(replica).await
    );
}

async fn replica_fingerprint(c: &mut mysql_async::Conn) -> Option<(u64, u64)> {
    let exists: Option<u64> = c
        .query_first("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='app' AND table_name='events'")
        .await
        .ok()?;
    if exists != Some(1) {
        return None;
    }
    Some(table_fingerprint(c).await)
}
