//! A private `mariadbd` for a test's state database, killed when dropped (also on panic).
//!
//! The skyplan user gets exactly the grants the README's "Team setups" section asks for
//! (`STATE_GRANTS`), so every test that uses it proves those grants are enough.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::free_port;
use mysql_async::prelude::*;
use skyplan::state::mysql::{MysqlBackend, MysqlConfig, Password};

pub(crate) const DB: &str = "skyplan_state";
pub(crate) const USER: &str = "skyplan";

/// The README's grants for the skyplan user on its state database (`{db}`, `{user}`).
pub(crate) const STATE_GRANTS: &str =
    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON {db}.* TO '{user}'@'%';";
/// The README's extra grant for `force-unlock --kill-holder` when the holder is another
/// MariaDB user (a user may always end its own connections).
pub(crate) const KILL_GRANT: &str = "GRANT CONNECTION ADMIN ON *.* TO '{user}'@'%';";

pub(crate) struct MariaDb {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Random per server, so a test can search any output for it.
    pub password: String,
    /// The user must connect over TLS.
    pub tls: bool,
    /// mariadbd's arguments but the port.
    args: Vec<String>,
}

fn spawn_mariadbd(args: &[String], port: u16) -> Child {
    Command::new("mariadbd")
        .args(args)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mariadbd starts")
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl MariaDb {
    pub(crate) async fn start() -> MariaDb {
        MariaDb::start_with(tempfile::tempdir().unwrap(), &[], "").await
    }

    /// `extra` goes to mariadbd; `require` is appended to CREATE USER (e.g. "REQUIRE SSL").
    pub(crate) async fn start_with(
        dir: tempfile::TempDir,
        extra: &[String],
        require: &str,
    ) -> MariaDb {
        let data = dir.path().join("data");
        let user_arg: Vec<String> = if skyplan_os::is_root() {
            vec!["--user=root".into()]
        } else {
            vec![]
        };
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        // Own tmpdir: concurrent bootstraps sharing /tmp collide on temporary table names.
        let small = [
            "--innodb-buffer-pool-size=16M".to_string(),
            "--innodb-log-file-size=4M".to_string(),
            "--performance-schema=OFF".to_string(),
            "--skip-name-resolve".to_string(),
            format!("--tmpdir={}", tmp.display()),
        ];
        let out = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(&user_arg)
            .args(&small)
            .output()
            .expect("mariadb-install-db runs");
        assert!(
            out.status.success(),
            "install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        let init = dir.path().join("init.sql");
        std::fs::write(
            &init,
            format!(
                "CREATE DATABASE IF NOT EXISTS {DB};\n\
                 CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{password}' {require};\n\
                 {}\n",
                STATE_GRANTS.replace("{db}", DB).replace("{user}", USER)
            ),
        )
        .unwrap();
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", dir.path().join("sock").display()),
            format!("--pid-file={}", dir.path().join("pid").display()),
            format!("--log-error={}", dir.path().join("err.log").display()),
            format!("--init-file={}", init.display()),
        ];
        args.extend(user_arg);
        args.extend(small);
        args.extend(extra.iter().cloned());
        let port = free_port();
        let mut server = MariaDb {
            child: spawn_mariadbd(&args, port),
            dir,
            port,
            password,
            tls: !require.is_empty(),
            args,
        };
        server.wait_ready().await;
        server
    }

    /// Wait until the server answers. A free port can be taken by another test between
    /// `free_port` and mariadbd's bind: then start again on another port.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut port_retries = 5;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                let log = self.error_log();
                assert!(
                    log.contains("Address already in use") && port_retries > 0,
                    "mariadbd exited:\n{log}"
                );
                port_retries -= 1;
                let _ = std::fs::remove_file(self.dir.path().join("err.log"));
                self.port = free_port();
                self.child = spawn_mariadbd(&self.args, self.port);
                continue;
            }
            let ok = match mysql_async::Conn::new(self.opts()).await {
                Ok(c) => c.disconnect().await.is_ok(),
                Err(_) => false,
            };
            if ok {
                return;
            }
            let log = std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "mariadbd did not come up:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `mysql://skyplan@127.0.0.1:PORT/skyplan_state`: no password, as a user would write it.
    pub(crate) fn url(&self) -> String {
        format!("mysql://{USER}@127.0.0.1:{}/{DB}", self.port)
    }

    pub(crate) fn backend(&self, workspace: &str) -> MysqlBackend {
        let config = MysqlConfig::parse(&self.url()).unwrap();
        MysqlBackend::new(config, workspace, Some(Password::new(&self.password)))
    }

    pub(crate) fn opts(&self) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.port)
            .user(Some(USER))
            .pass(Some(self.password.clone()))
            .db_name(Some(DB))
            .prefer_socket(false)
            .ssl_opts(self.tls.then(|| {
                mysql_async::SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true)
            }))
            .into()
    }

    pub(crate) async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::new(self.opts()).await.unwrap()
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// Run `sql` as root over the socket (to change grants or add users in a test).
    pub(crate) fn root_sql(&self, sql: &str) {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-uroot"])
            .arg(format!("--socket={}", self.socket().display()))
            .args(["-e", sql])
            .output()
            .expect("mariadb client runs");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every text the state database holds about skyplan (state, history, lock rows), for
    /// searching it for secrets.
    pub(crate) async fn all_rows_text(&self) -> String {
        let mut conn = self.conn().await;
        let mut text = String::new();
        for table in ["skyplan_state", "skyplan_state_history", "skyplan_lock"] {
            let columns: Vec<String> = conn
                .exec(
                    "SELECT column_name FROM information_schema.columns \
                     WHERE table_schema = ? AND table_name = ?",
                    (DB, table),
                )
                .await
                .unwrap();
            if columns.is_empty() {
                continue;
            }
            let concat = columns
                .iter()
                .map(|c| format!("COALESCE(`{c}`, '')"))
                .collect::<Vec<_>>()
                .join(", ");
            let rows: Vec<String> = conn
                .query(format!("SELECT CONCAT_WS(' ', {concat}) FROM {table}"))
                .await
                .unwrap();
            text.push_str(&rows.join("\n"));
            text.push('\n');
        }
        text
    }

    /// The server's own error log.
    pub(crate) fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("err.log")).unwrap_or_default()
    }
}

/// A child process killed (SIGKILL) when dropped.
pub(crate) struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
