//! The emulator's own SQL on an instance: as root over the instance's unix socket (root exists
//! only as root@localhost, which TCP clients cannot match under skip-name-resolve), with
//! binary logging off so none of it reaches the binlog or a replica.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

use super::config::{InstanceConfig, Layout};
use super::replication_secret::ReplicationSecret;
use super::MariadbError;

const SKY_SCHEMA: &str = include_str!("sky_schema.sql");
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A root session on the instance's socket.
pub(crate) struct Admin<'a> {
    conn: Conn,
    layout: &'a Layout,
}

impl<'a> Admin<'a> {
    pub(super) async fn connect(layout: &'a Layout) -> Result<Admin<'a>, MariadbError> {
        let conn = try_connect(layout).await.map_err(|e| MariadbError::Sql {
            dir: layout.dir.clone(),
            action: "connecting as root over the socket".into(),
            message: e.to_string(),
        })?;
        let mut admin = Admin { conn, layout };
        admin
            .run(
                "disabling the binlog for setup",
                "SET SESSION sql_log_bin = 0",
            )
            .await?;
        Ok(admin)
    }

    pub(super) async fn close(self) {
        let _ = self.conn.disconnect().await;
    }

    /// Removes the passwordless root accounts mariadb-install-db creates for TCP
    /// (root@127.0.0.1, root@::1, root@<hostname>) and any anonymous user: only the
    /// socket-only root@localhost stays, for the emulator.
    pub(super) async fn lock_down_root(&mut self) -> Result<(), MariadbError> {
        let accounts: Vec<(String, String)> = self
            .conn
            .query("SELECT User, Host FROM mysql.user WHERE (User = 'root' AND Host <> 'localhost') OR User = ''")
            .await
            .map_err(|e| self.err("listing root accounts", e))?;
        for (user, host) in accounts {
            let sql = format!("DROP USER {}@{}", quote(&user), quote(&host));
            self.run("dropping a TCP root account", &sql).await?;
        }
        Ok(())
    }

    /// Creates the service's default user: any host, all privileges, WITH GRANT OPTION.
    pub(super) async fn create_admin_user(
        &mut self,
        user: &str,
        password: &str,
    ) -> Result<(), MariadbError> {
        let account = format!("{}@'%'", quote(user));
        let create = format!(
            "CREATE OR REPLACE USER {account} IDENTIFIED BY {}",
            quote(password)
        );
        // The statement holds the password: report the server's error code only.
        if let Err(e) = self.conn.query_drop(create).await {
            let code = match &e {
                mysql_async::Error::Server(s) => format!("server error {}", s.code),
                _ => "connection error".to_string(),
            };
            return Err(MariadbError::Sql {
                dir: self.layout.dir.clone(),
                action: format!("creating admin user {user}"),
                message: code,
            });
        }
        let grant = format!("GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION");
        self.run("granting the admin user", &grant).await
    }

    /// Installs (or refreshes) the `sky` schema: idempotent.
    pub(super) async fn install_sky_schema(&mut self) -> Result<(), MariadbError> {
        for statement in split_statements(SKY_SCHEMA) {
            self.run("installing the sky schema", &statement).await?;
        }
        Ok(())
    }

    /// Writes this service's row of sky.settings.
    pub(super) async fn write_settings(
        &mut self,
        cfg: &InstanceConfig,
        secret: &ReplicationSecret,
    ) -> Result<(), MariadbError> {
        let ca = cfg
            .ca_for_replication
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        self.conn
            .exec_drop(
                "REPLACE INTO sky.settings (id, outbound_ip, replication_ca, replication_user, \
                 replication_password) VALUES (1, ?, ?, ?, ?)",
                (&cfg.outbound_ip, ca, &secret.user, &secret.password),
            )
            .await
            .map_err(|e| self.err("writing sky.settings", e))
    }

    /// Drops a service's admin account (a tenant of a shared server leaving it).
    pub(super) async fn drop_admin_user(&mut self, user: &str) -> Result<(), MariadbError> {
        let sql = format!("DROP USER IF EXISTS {}@'%'", quote(user));
        self.run("dropping an admin user", &sql).await
    }

    async fn run(&mut self, action: &str, sql: &str) -> Result<(), MariadbError> {
        self.conn
            .query_drop(sql)
            .await
            .map_err(|e| self.err(action, e))
    }

    fn err(&self, action: &str, e: mysql_async::Error) -> MariadbError {
        MariadbError::Sql {
            dir: self.layout.dir.clone(),
            action: action.to_string(),
            message: e.to_string(),
        }
    }
}

/// One connection attempt; used both for setup and to poll readiness.
pub(crate) async fn try_connect(layout: &Layout) -> Result<Conn, mysql_async::Error> {
    let opts = OptsBuilder::default()
        .socket(Some(layout.socket.to_string_lossy()))
        .user(Some("root"))
        .prefer_socket(true);
    // A server that accepted the socket but hangs must not hang us.
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out connecting over the socket",
        )
        .into()),
    }
}

/// A SQL string literal. Backslashes and quotes are escaped; our sessions never set
/// NO_BACKSLASH_ESCAPES.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Splits a `DELIMITER $$` script into statements: `--` comment lines and DELIMITER lines are
/// dropped, and a line that is exactly `$$` ends a statement.
fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("DELIMITER") || (trimmed.starts_with("--") && current.is_empty()) {
            continue;
        }
        if trimmed == "$$" {
            if !current.trim().is_empty() {
                statements.push(std::mem::take(&mut current));
            }
            current.clear();
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_quotes_and_backslashes() {
        assert_eq!(quote("a'b\\c"), "'a\\'b\\\\c'");
    }

    #[test]
    fn the_schema_splits_into_whole_statements() {
        let statements = split_statements(SKY_SCHEMA);
        let procedures: Vec<&str> = statements
            .iter()
            .filter_map(|s| s.split("PROCEDURE sky.").nth(1))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        for name in [
            "replication_grants",
            "change_external_primary_gtid",
            "change_external_primary",
            "gtid_status",
            "start_replication",
            "stop_replication",
            "reset_replication",
            "replication_status",
            "skip_repl_error",
        ] {
            assert!(
                procedures.contains(&name),
                "{name} missing from {procedures:?}"
            );
        }
        assert!(statements.iter().all(|s| !s.contains("$$")));
    }
}
