//! The emulator's MariaDB layer against real mariadbd servers: create, TLS, backup, restore,
//! GTID replication through the sky.* procedures, stop/start, destroy.
//!
//! Every test has its own temp dir and free ports, and a `Servers` guard that SIGKILLs what it
//! started even when the test panics.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::free_port;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, SslOpts};
use skyplan_emulator::mariadb::{
    BackupInfo, Binaries, Ca, Instance, InstanceConfig, MariadbError, TlsFiles,
};
use tempfile::TempDir;

/// Kills every server of the test on drop (also on panic).
struct Servers {
    binaries: Binaries,
    configs: Vec<InstanceConfig>,
    // Declared last: the directory is removed after the servers are killed.
    tmp: TempDir,
}

impl Servers {
    fn new() -> Servers {
        Servers {
            binaries: Binaries::locate().expect("MariaDB binaries (see .ci/run)"),
            configs: Vec::new(),
            tmp: tempfile::Builder::new().prefix("skyem").tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn ca(&self) -> Ca {
        Ca::load_or_create(&self.path("ca")).unwrap()
    }

    /// A config for service `name`, registered with the guard before anything starts.
    fn config(&mut self, name: &str, id: u32, tls: Option<TlsFiles>) -> InstanceConfig {
        let cfg = InstanceConfig {
            dir: self.path(name),
            port: free_port(),
            server_id: id,
            gtid_domain_id: id,
            ca_for_replication: tls.as_ref().map(|t| t.ca.clone()),
            tls,
            admin_user: format!("dbpgf0000000{id}"),
            admin_password: format!("pw-{name}-{id}'\\x"),
            outbound_ip: format!("127.0.0.{}", 10 + id),
        };
        self.configs.push(cfg.clone());
        cfg
    }

    fn tls_config(&mut self, name: &str, id: u32) -> InstanceConfig {
        let tls = self
            .ca()
            .issue_server_cert(
                &self.path(&format!("{name}-tls")),
                &[format!("{name}.test")],
            )
            .unwrap();
        self.config(name, id, Some(tls))
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for cfg in &self.configs {
            Instance::open(&self.binaries, cfg.clone()).kill_now();
        }
    }
}

/// A TCP connection (never the socket), with TLS verified against `ca` when given.
async fn connect(
    port: u16,
    user: &str,
    password: &str,
    ca: Option<&Path>,
) -> Result<Conn, mysql_async::Error> {
    let mut opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    if let Some(ca) = ca {
        opts = opts.ssl_opts(SslOpts::default().with_root_certs(vec![ca.to_path_buf().into()]));
    }
    Conn::new(opts).await
}

async fn admin(cfg: &InstanceConfig) -> Conn {
    connect(cfg.port, &cfg.admin_user, &cfg.admin_password, ca_of(cfg))
        .await
        .unwrap()
}

/// Connects to `cfg`'s server with `creds`' admin credentials (after a restore: the source's).
async fn admin_as(cfg: &InstanceConfig, creds: &InstanceConfig) -> Conn {
    connect(
        cfg.port,
        &creds.admin_user,
        &creds.admin_password,
        ca_of(cfg),
    )
    .await
    .unwrap()
}

fn ca_of(cfg: &InstanceConfig) -> Option<&Path> {
    cfg.tls.as_ref().map(|t| t.ca.as_path())
}

async fn count(conn: &mut Conn, table: &str) -> u64 {
    conn.query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap()
        .unwrap()
}

async fn insert(conn: &mut Conn, from: u32, to: u32) {
    for i in from..to {
        conn.exec_drop(
            "INSERT INTO app.t (id, v) VALUES (?, ?)",
            (i, format!("row {i}")),
        )
        .await
        .unwrap();
    }
}

async fn call_one(conn: &mut Conn, sql: &str) -> Row {
    let rows: Vec<Row> = conn.query(sql).await.unwrap();
    assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
    rows.into_iter().next().unwrap()
}

fn text(row: &Row, column: &str) -> String {
    let value: Option<String> = row
        .get_opt(column)
        .unwrap_or_else(|| panic!("no column {column}"))
        .unwrap();
    value.unwrap_or_default()
}

/// Creates two TLS services A (id 1) and B (id 2) concurrently, with `app.t` on A.
async fn two_services(
    servers: &mut Servers,
) -> (Instance, InstanceConfig, Instance, InstanceConfig) {
    let cfg_a = servers.tls_config("a", 1);
    let cfg_b = servers.tls_config("b", 2);
    let (a, b) = tokio::join!(
        Instance::create(&servers.binaries, cfg_a.clone()),
        Instance::create(&servers.binaries, cfg_b.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut conn = admin(&cfg_a).await;
    conn.query_drop("CREATE DATABASE app").await.unwrap();
    conn.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40))")
        .await
        .unwrap();
    (a, cfg_a, b, cfg_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_replaces_data_and_credentials() {
    let mut servers = Servers::new();
    let (a, cfg_a, mut b, cfg_b) = two_services(&mut servers).await;

    let mut conn_a = admin(&cfg_a).await;
    let cipher: Option<(String, String)> = conn_a
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    assert!(
        !cipher.unwrap().1.is_empty(),
        "the TCP connection to A is not TLS"
    );
    insert(&mut conn_a, 0, 5).await;
    let mut conn_b = admin(&cfg_b).await;
    conn_b.query_drop("CREATE DATABASE b_only").await.unwrap();
    drop(conn_b);

    let info: BackupInfo = a.backup(&servers.path("backup")).await.unwrap();
    assert!(info.binlog_file.starts_with("mariadb-bin."), "{info:?}");
    assert!(info.gtid_position.starts_with("1-1-"), "{info:?}");
    assert!(info.size_bytes > 1_000_000, "{info:?}");

    // Something that is not a prepared backup is refused before B is touched.
    let err = b.restore(&servers.path("a"), &cfg_b).await.unwrap_err();
    assert!(matches!(err, MariadbError::BadBackup { .. }), "{err}");
    assert!(b.is_running());

    b.restore(&servers.path("backup"), &cfg_b).await.unwrap();
    assert!(b.is_running());

    // B now takes A's credentials only.
    let old = connect(
        cfg_b.port,
        &cfg_b.admin_user,
        &cfg_b.admin_password,
        ca_of(&cfg_b),
    )
    .await;
    match old {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!(
            "B still accepts its own old credentials: {:?}",
            other.map(|_| ())
        ),
    }
    let mut conn_b = admin_as(&cfg_b, &cfg_a).await;
    assert_eq!(count(&mut conn_b, "app.t").await, 5);
    let dbs: Vec<String> = conn_b.query("SHOW DATABASES").await.unwrap();
    assert!(
        !dbs.contains(&"b_only".to_string()),
        "B kept its own data: {dbs:?}"
    );
    // B keeps its own identity: server id from my.cnf, outbound IP in its grant.
    let server_id: u32 = conn_b
        .query_first("SELECT @@server_id")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server_id, 2);
    let grant = call_one(&mut conn_b, "CALL sky.replication_grants()").await;
    let grant = text(&grant, "Run_this_grant_on_your_external_primary");
    assert!(
        grant.contains(&format!("@'{}'", cfg_b.outbound_ip)),
        "{grant}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtid_replication_from_a_restored_backup() {
    let mut servers = Servers::new();
    let (a, cfg_a, mut b, mut cfg_b) = two_services(&mut servers).await;
    // Without the other engineer's proxy, the replica reaches A from 127.0.0.1.
    cfg_b.outbound_ip = "127.0.0.1".into();

    let mut conn_a = admin(&cfg_a).await;
    insert(&mut conn_a, 0, 3).await;
    let info = a.backup(&servers.path("backup")).await.unwrap();
    // Written after the backup: only replication from the backup's GTID brings these over.
    insert(&mut conn_a, 3, 6).await;
    b.restore(&servers.path("backup"), &cfg_b).await.unwrap();

    let mut conn_b = admin_as(&cfg_b, &cfg_a).await;
    assert_eq!(count(&mut conn_b, "app.t").await, 3);
    let status: Vec<(String, String)> = conn_b.query("CALL sky.gtid_status()").await.unwrap();
    let names: Vec<&str> = status.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "gtid_binlog_pos",
            "gtid_binlog_state",
            "gtid_current_pos",
            "gtid_slave_pos"
        ]
    );

    let call = format!(
        "CALL sky.change_external_primary_gtid('127.0.0.1', {}, '{}', true)",
        cfg_a.port, info.gtid_position
    );
    let row = call_one(&mut conn_b, &call).await;
    assert_eq!(row.columns_ref().len(), 1);
    let grant = text(&row, "Run_this_grant_on_your_external_primary");
    assert!(
        grant.starts_with("GRANT REPLICATION SLAVE ON *.* TO 'skysql_replication_")
            && grant.contains("@'127.0.0.1' IDENTIFIED BY '")
            && grant.ends_with("';"),
        "{grant}"
    );
    // Before the grant runs on A, the replica is refused, and says so.
    let refused = call_one(&mut conn_b, "CALL sky.start_replication()").await;
    assert_ne!(
        text(&refused, "Message"),
        "External replication running normally."
    );
    let status = wait_status(&mut conn_b, |s| text(s, "Last_IO_Errno") != "0").await;
    assert_eq!(
        text(&status, "Last_IO_Errno"),
        "1045",
        "{}",
        text(&status, "Last_IO_Error")
    );
    assert_ne!(text(&status, "Slave_IO_Running"), "Yes");

    conn_a.query_drop(&grant).await.unwrap();

    let started = call_one(&mut conn_b, "CALL sky.start_replication()").await;
    assert_eq!(
        text(&started, "Message"),
        "External replication running normally."
    );
    insert(&mut conn_a, 6, 9).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut conn_b, "app.t").await < 9 {
        assert!(Instant::now() < deadline, "rows did not replicate to B");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = call_one(&mut conn_b, "CALL sky.replication_status()").await;
    assert_eq!(
        text(&status, "Slave_IO_Running"),
        "Yes",
        "{}",
        text(&status, "Last_IO_Error")
    );
    assert_eq!(
        text(&status, "Slave_SQL_Running"),
        "Yes",
        "{}",
        text(&status, "Last_SQL_Error")
    );
    assert_eq!(text(&status, "Master_Host"), "127.0.0.1");
    assert_eq!(text(&status, "Master_Port"), cfg_a.port.to_string());
    assert_eq!(text(&status, "Master_SSL_Allowed"), "Yes");
    assert_eq!(text(&status, "Master_SSL_Verify_Server_Cert"), "Yes");
    assert_eq!(text(&status, "Using_Gtid"), "Slave_Pos");
    assert_eq!(text(&status, "Last_IO_Errno"), "0");
    assert_eq!(text(&status, "Last_SQL_Errno"), "0");
    assert!(text(&status, "Gtid_IO_Pos").contains("1-1-"));
    assert!(!text(&status, "Seconds_Behind_Master").is_empty());

    // A conflicting row stops the SQL thread visibly; skip_repl_error skips that transaction.
    conn_b
        .query_drop("INSERT INTO app.t VALUES (100, 'on B')")
        .await
        .unwrap();
    insert(&mut conn_a, 100, 101).await;
    let status = wait_status(&mut conn_b, |s| text(s, "Slave_SQL_Running") == "No").await;
    assert_eq!(
        text(&status, "Last_SQL_Errno"),
        "1062",
        "{}",
        text(&status, "Last_SQL_Error")
    );
    call_one(&mut conn_b, "CALL sky.skip_repl_error()").await;
    insert(&mut conn_a, 101, 102).await;
    let status = wait_status(&mut conn_b, |s| text(s, "Slave_SQL_Running") == "Yes").await;
    assert_eq!(text(&status, "Last_SQL_Errno"), "0");
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&mut conn_b, "app.t").await < 11 {
        assert!(
            Instant::now() < deadline,
            "replication did not resume after the skip"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stopped = call_one(&mut conn_b, "CALL sky.stop_replication()").await;
    assert_eq!(text(&stopped, "Message"), "Replication is down or disabled");
    let reset = call_one(&mut conn_b, "CALL sky.reset_replication()").await;
    assert_eq!(text(&reset, "Message"), "Replica has been reset");
    let rows: Vec<Row> = conn_b.query("CALL sky.replication_status()").await.unwrap();
    assert!(rows.is_empty(), "replication still configured after reset");
}

/// Polls sky.replication_status() until `done` holds (30 s at most).
async fn wait_status(conn: &mut Conn, done: impl Fn(&Row) -> bool) -> Row {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = call_one(conn, "CALL sky.replication_status()").await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "replication status never reached the expected state: IO {} ({}), SQL {} ({})",
            text(&status, "Slave_IO_Running"),
            text(&status, "Last_IO_Error"),
            text(&status, "Slave_SQL_Running"),
            text(&status, "Last_SQL_Error")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_keep_data_and_a_live_server_is_adopted() {
    let mut servers = Servers::new();
    let cfg = servers.config("solo", 3, None);
    let mut instance = Instance::create(&servers.binaries, cfg.clone())
        .await
        .unwrap();
    let mut conn = admin(&cfg).await;
    conn.query_drop("CREATE DATABASE app").await.unwrap();
    conn.query_drop("CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(40))")
        .await
        .unwrap();
    insert(&mut conn, 0, 4).await;
    drop(conn);

    // The passwordless root of mariadb-install-db is reachable over the socket only.
    match connect(cfg.port, "root", "", None).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!("root logged in over TCP: {:?}", other.map(|_| ())),
    }

    let pid = instance.pid().unwrap();
    // mariadbd leads its own session, so it outlives the emulator and its terminal.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let session: u32 = after_name.split(' ').nth(3).unwrap().parse().unwrap();
    assert_eq!(session, pid);
    instance.stop().await.unwrap();
    assert!(!instance.is_running());
    assert_eq!(instance.pid(), None);
    instance.stop().await.unwrap(); // stopping a stopped server is a no-op
    let err = instance.backup(&servers.path("backup")).await.unwrap_err();
    assert!(err.to_string().contains("not running"), "{err}");

    instance.start().await.unwrap();
    assert_ne!(instance.pid(), Some(pid));
    let mut conn = admin(&cfg).await;
    assert_eq!(count(&mut conn, "app.t").await, 4);

    // A new handle (as after an emulator restart) adopts the running server.
    let mut reopened = Instance::open(&servers.binaries, cfg.clone());
    let live = reopened.pid();
    assert!(live.is_some());
    reopened.start().await.unwrap();
    assert_eq!(reopened.pid(), live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_the_process_and_the_directory() {
    let mut servers = Servers::new();
    let cfg = servers.config("gone", 4, None);
    let instance = Instance::create(&servers.binaries, cfg.clone())
        .await
        .unwrap();
    let pid = instance.pid().unwrap();
    instance.destroy().await.unwrap();
    assert!(!cfg.dir.exists());
    let deadline = Instant::now() + Duration::from_secs(5);
    // The reaper thread collects the exited child; until then /proc may show a zombie.
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "mariadbd {pid} still exists");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_reports_the_error_log() {
    let mut servers = Servers::new();
    let mut cfg = servers.config("busy", 5, None);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cfg.port = taken.local_addr().unwrap().port();
    servers.configs.push(cfg.clone());
    let err = Instance::create(&servers.binaries, cfg.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, MariadbError::StartFailed { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("Address already in use"), "{msg}");
    // Nothing half-made is left: once the port is free, the same create succeeds.
    assert!(!cfg.dir.join("data").exists());
    drop(taken);
    let instance = Instance::create(&servers.binaries, cfg).await.unwrap();
    assert!(instance.is_running());
}
