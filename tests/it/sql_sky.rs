//! The SQL layer against real MariaDB servers started by the emulator's mariadb layer: TLS
//! verified against the emulator CA (and refused with another CA), the `sky.*` procedures,
//! the replication grant, and replication status — replicating real rows.

use std::time::{Duration, Instant};

use crate::support::free_port;
use mysql_async::prelude::Queryable;
use skyplan::skysql::secret::Secret;
use skyplan::sql::{self, SqlConn, SqlError, SqlTarget, TlsMode};
use skyplan_emulator::mariadb::{Binaries, Ca, Instance, InstanceConfig};
use tempfile::TempDir;

const ADMIN: &str = "dbadmin";
const PASSWORD: &str = "Adm1n-pa55word-for-tests";

/// Kills every server it holds when dropped, even when the test panics.
struct Servers {
    instances: Vec<Instance>,
    _dir: TempDir,
    ca: Ca,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for instance in &self.instances {
            instance.kill_now();
        }
    }
}

/// `count` TLS-enabled servers sharing one CA.
async fn start_servers(count: u32) -> Servers {
    let dir = tempfile::Builder::new().prefix("sqlsky").tempdir().unwrap();
    let ca = Ca::load_or_create(&dir.path().join("ca")).unwrap();
    let binaries = Binaries::locate().expect("MariaDB binaries are installed");
    let mut servers = Servers {
        instances: Vec::new(),
        _dir: dir,
        ca,
    };
    for i in 1..=count {
        let home = servers._dir.path().join(format!("s{i}"));
        let tls = servers
            .ca
            .issue_server_cert(&servers._dir.path().join(format!("tls{i}")), &[])
            .unwrap();
        let cfg = InstanceConfig {
            dir: home,
            port: free_port(),
            server_id: i,
            gtid_domain_id: i,
            tls: Some(tls),
            admin_user: ADMIN.into(),
            admin_password: PASSWORD.into(),
            outbound_ip: "127.0.0.1".into(),
            ca_for_replication: Some(servers.ca.cert_pem_path.clone()),
        };
        let instance = Instance::create(&binaries, cfg).await.unwrap();
        servers.instances.push(instance);
    }
    servers
}

impl Servers {
    fn target(&self, i: usize) -> SqlTarget {
        SqlTarget {
            host: "127.0.0.1".into(),
            port: self.instances[i].config().port,
            user: ADMIN.into(),
            password: Secret::new(PASSWORD),
            tls: TlsMode::Verified {
                ca_pem_path: Some(self.ca.cert_pem_path.clone()),
            },
        }
    }
}

async fn scalar(conn: &mut SqlConn, sql: &str) -> Option<String> {
    conn.raw()
        .query_first::<Option<String>, _>(sql)
        .await
        .unwrap()
        .flatten()
}

#[tokio::test]
async fn tls_is_verified_against_the_ca() {
    let servers = start_servers(1).await;
    let target = servers.target(0);

    let mut conn = sql::connect(&target).await.unwrap();
    let cipher = scalar(&mut conn, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'").await;
    assert!(
        cipher.is_some_and(|c| !c.is_empty()),
        "the session is encrypted"
    );
    conn.disconnect().await.unwrap();

    // The same server, but trusting another CA: refused, and the error names server and user.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Ca::load_or_create(other_dir.path()).unwrap();
    let wrong = SqlTarget {
        tls: TlsMode::Verified {
            ca_pem_path: Some(other.cert_pem_path.clone()),
        },
        ..target.clone()
    };
    let e = sql::connect(&wrong).await.unwrap_err();
    let shown = e.to_string();
    assert!(matches!(e, SqlError::Connect { .. }), "{shown}");
    assert!(
        shown.starts_with(&format!(
            "cannot connect to {} as '{ADMIN}': ",
            target.endpoint()
        )),
        "{shown}"
    );
    assert!(!shown.contains(PASSWORD) && !format!("{e:?}").contains(PASSWORD));

    // The built-in web roots do not know the emulator CA either.
    let system_roots = SqlTarget {
        tls: TlsMode::Verified { ca_pem_path: None },
        ..target.clone()
    };
    assert!(sql::connect(&system_roots).await.is_err());

    // A missing CA file is named.
    let missing = SqlTarget {
        tls: TlsMode::Verified {
            ca_pem_path: Some(other_dir.path().join("nope.pem")),
        },
        ..target.clone()
    };
    let e = sql::connect(&missing).await.unwrap_err();
    assert!(e.to_string().contains("nope.pem"), "{e}");

    // A wrong password: the server's refusal, with its code, and no password in sight.
    let bad_password = SqlTarget {
        password: Secret::new("not-the-password"),
        ..target.clone()
    };
    let e = sql::connect(&bad_password).await.unwrap_err();
    assert_eq!(e.server_code(), Some(1045), "{e}");
    assert!(!e.to_string().contains("not-the-password"));

    // Plain text still works where TLS is merely offered.
    let plain = SqlTarget {
        tls: TlsMode::Disabled,
        ..target
    };
    let mut conn = sql::connect(&plain).await.unwrap();
    let cipher = scalar(&mut conn, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'").await;
    assert_eq!(cipher.unwrap_or_default(), "");
}

#[tokio::test]
async fn connect_times_out_against_a_silent_port() {
    // A listener that accepts but never speaks: the MySQL handshake never starts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let target = SqlTarget {
        host: "127.0.0.1".into(),
        port,
        user: "u".into(),
        password: Secret::new("p"),
        tls: TlsMode::Disabled,
    };
    let e = sql::connect_with_timeout(&target, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, SqlError::ConnectTimeout { .. }), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
}

#[tokio::test]
async fn sky_procedures_replicate_rows_over_tls() {
    let servers = start_servers(2).await;
    let primary_port = servers.instances[0].config().port;
    let mut primary = sql::connect(&servers.target(0)).await.unwrap();
    let mut replica = sql::connect(&servers.target(1)).await.unwrap();

    let before = replica.replication_status().await.unwrap();
    assert!(!before.configured, "{before:?}");

    // The schema stands for what a restored backup brings: the replica has it already (made
    // without binlog) and starts replicating after it, at the primary's GTID position.
    for (conn, binlog) in [(&mut primary, "1"), (&mut replica, "0")] {
        for stmt in [
            &format!("SET SESSION sql_log_bin = {binlog}"),
            "CREATE DATABASE app",
            "CREATE TABLE app.t (id INT PRIMARY KEY)",
        ] {
            conn.raw().query_drop(stmt).await.unwrap();
        }
    }
    let gtid = primary.gtid_status().await.unwrap();
    let position = gtid
        .binlog_pos
        .clone()
        .expect("the primary has a binlog position");

    let grant = replica
        .change_external_primary_gtid("127.0.0.1", primary_port, &position, true)
        .await
        .unwrap();
    assert_eq!(grant.host(), "127.0.0.1");
    assert!(grant.user().starts_with("skysql_replication"));
    assert!(!format!("{grant} {grant:?}").contains(grant.password().expose()));
    primary.run_grant_on_primary(&grant).await.unwrap();

    let message = replica.start_replication().await.unwrap();
    assert_eq!(
        message.as_deref(),
        Some("External replication running normally.")
    );
    primary
        .raw()
        .query_drop("INSERT INTO app.t SELECT seq FROM app.seq_1_to_100")
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = scalar(&mut replica, "SELECT CAST(COUNT(*) AS CHAR) FROM app.t").await;
        if n.as_deref() == Some("100") {
            break;
        }
        assert!(Instant::now() < deadline, "rows did not replicate: {n:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let status = replica.replication_status().await.unwrap();
    assert!(
        status.configured && status.io_running && status.sql_running,
        "{status:?}"
    );
    assert_eq!(status.master_host.as_deref(), Some("127.0.0.1"));
    assert_eq!(status.master_port, Some(primary_port));
    assert_eq!((status.last_io_errno, status.last_sql_errno), (0, 0));
    assert!(status.seconds_behind_master.is_some());
    assert!(status.gtid_io_pos.is_some());

    let replica_gtid = replica.gtid_status().await.unwrap();
    let primary_now = primary.gtid_status().await.unwrap().binlog_pos.unwrap();
    assert!(
        replica_gtid.slave_pos.as_deref() == Some(primary_now.as_str()),
        "{replica_gtid:?} vs {primary_now}"
    );

    replica.stop_replication().await.unwrap();
    let stopped = replica.replication_status().await.unwrap();
    assert!(stopped.configured && !stopped.io_running && !stopped.sql_running);
    replica.reset_replication().await.unwrap();
}

#[tokio::test]
async fn procedure_errors_name_the_server_and_the_call() {
    let servers = start_servers(1).await;
    let mut conn = sql::connect(&servers.target(0)).await.unwrap();
    // Malformed positions are refused before they reach the server.
    let e = conn
        .change_external_primary_gtid("127.0.0.1", 1, "0-1-2; DROP TABLE x", false)
        .await
        .unwrap_err();
    assert!(matches!(e, SqlError::InvalidGtid(_)), "{e}");
    // A server-side refusal (port 0 is out of range in sky.configure_primary).
    let e = conn
        .change_external_primary_gtid("127.0.0.1", 0, "0-1-2", false)
        .await
        .unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "CALL sky.change_external_primary_gtid on {} failed: ",
            servers.target(0).endpoint()
        )),
        "{shown}"
    );
    assert!(
        shown.contains("port must be between 1 and 65535"),
        "{shown}"
    );
}
