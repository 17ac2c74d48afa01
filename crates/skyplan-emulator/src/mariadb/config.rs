//! What one instance is (`InstanceConfig`), the server variables of its custom configuration
//! (`ServerVariables`), where its files live (`Layout`), and the `my.cnf` that pins every
//! MariaDB binary to that instance.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{MariadbError, TlsFiles};

/// Everything needed to create, start or restore one emulated server.
#[derive(Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Instance home: datadir, my.cnf, socket, pid file and logs live under it.
    pub dir: PathBuf,
    /// The port mariadbd itself listens on (127.0.0.1 only).
    pub port: u16,
    pub server_id: u32,
    pub gtid_domain_id: u32,
    /// Some when the service has `ssl_enabled`: TLS is offered, not forced.
    pub tls: Option<TlsFiles>,
    /// The service's default credentials, created at `Instance::create` only (after a restore
    /// the source's users are in force).
    pub admin_user: String,
    pub admin_password: String,
    /// The service's outbound IP: the host part of the grant `change_external_primary_gtid`
    /// returns.
    pub outbound_ip: String,
    /// The CA the replica uses to verify its primary (MASTER_SSL_CA).
    pub ca_for_replication: Option<PathBuf>,
}

impl std::fmt::Debug for InstanceConfig {
    // Hand-written so the admin password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceConfig")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("server_id", &self.server_id)
            .field("gtid_domain_id", &self.gtid_domain_id)
            .field("tls", &self.tls)
            .field("admin_user", &self.admin_user)
            .field("admin_password", &"<redacted>")
            .field("outbound_ip", &self.outbound_ip)
            .field("ca_for_replication", &self.ca_for_replication)
            .finish()
    }
}

impl InstanceConfig {
    /// Rejects what would break my.cnf, the socket path or the SQL we build. Called before any
    /// file is written.
    pub fn validate(&self) -> Result<(), MariadbError> {
        let err = |msg: String| Err(MariadbError::Config(msg));
        for path in self.paths() {
            let text = path.to_string_lossy();
            if path.to_str().is_none()
                || text
                    .chars()
                    .any(|c| c.is_whitespace() || "\"'#;\\".contains(c))
            {
                return err(format!(
                    "path {text:?} contains characters that my.cnf cannot hold \
                     (whitespace, quotes, '#', ';', '\\\\' or non-UTF-8); choose another directory"
                ));
            }
            if !path.is_absolute() {
                return err(format!("path {text:?} must be absolute"));
            }
        }
        let socket = Layout::new(&self.dir).socket;
        // sockaddr_un holds 108 bytes including the NUL.
        if socket.as_os_str().len() > 107 {
            return err(format!(
                "socket path {} is longer than 107 bytes; use a shorter directory",
                socket.display()
            ));
        }
        if self.port == 0 {
            return err("port must not be 0".into());
        }
        if self.server_id == 0 {
            return err("server_id must not be 0 (replication needs a non-zero id)".into());
        }
        if self.admin_user.is_empty()
            || self.admin_user.len() > 80
            || !self
                .admin_user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return err(format!(
                "admin user {:?} must be 1-80 characters of [A-Za-z0-9_.-]",
                self.admin_user
            ));
        }
        if self.admin_password.is_empty() || self.admin_password.contains('\0') {
            return err("admin password must be non-empty and contain no NUL".into());
        }
        if self.outbound_ip.parse::<IpAddr>().is_err() {
            return err(format!(
                "outbound_ip {:?} is not an IP address",
                self.outbound_ip
            ));
        }
        Ok(())
    }

    fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.dir.as_path()];
        if let Some(tls) = &self.tls {
            paths.extend([tls.ca.as_path(), tls.cert.as_path(), tls.key.as_path()]);
        }
        paths.extend(self.ca_for_replication.as_deref());
        paths
    }
}

/// Server variables from the service's custom configuration (Configuration Manager), written
/// at the end of my.cnf's `[mysqld]`, after the emulator's own settings: mariadbd takes an
/// option's last occurrence, so `max_connections=321` there beats the emulator's
/// `max-connections=40`. They apply when mariadbd starts; a running server is not changed.
///
/// Checked when made, so nothing can break my.cnf or the instance: a name is `[a-z0-9_]`
/// (starting with a letter) and not one of the options the emulator itself pins (paths, port,
/// replication identity, TLS files); a value is a short run of `[A-Za-z0-9._,:+-]`, so it can
/// hold no newline, `#`, `;`, quote, backslash or space.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerVariables(Vec<(String, String)>);

/// Options my.cnf sets for the emulator's own use: a configuration may not override them.
const PINNED: &[&str] = &[
    "basedir",
    "bind_address",
    "datadir",
    "gtid_domain_id",
    "init_file",
    "log_bin",
    "log_error",
    "pid_file",
    "plugin_dir",
    "port",
    "relay_log",
    "report_host",
    "report_port",
    "server_id",
    "skip_grant_tables",
    "skip_networking",
    "socket",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "tmpdir",
    "user",
];

impl ServerVariables {
    pub fn new(vars: Vec<(String, String)>) -> Result<ServerVariables, MariadbError> {
        for (name, value) in &vars {
            let name_ok = name.len() <= 64
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(MariadbError::Config(format!(
                    "server variable {name:?}: a name must be 1-64 characters of [a-z0-9_]"
                )));
            }
            if PINNED.contains(&name.as_str()) {
                return Err(MariadbError::Config(format!(
                    "server variable {name} is set by the emulator itself and cannot be configured"
                )));
            }
            let value_ok = !value.is_empty()
                && value.len() <= 255
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._,:+-".contains(c));
            if !value_ok {
                return Err(MariadbError::Config(format!(
                    "server variable {name}: value {value:?} must be 1-255 characters of \
                     [A-Za-z0-9._,:+-]"
                )));
            }
        }
        Ok(ServerVariables(vars))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The fixed file names under an instance directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
    pub my_cnf: PathBuf,
    pub datadir: PathBuf,
    pub tmpdir: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    /// mariadbd's log_error.
    pub error_log: PathBuf,
    /// mariadbd's stdout/stderr (messages printed before log_error is open).
    pub console_log: PathBuf,
    /// This replica's replication user and password (0600), stable across restores.
    pub replication_secret: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
            my_cnf: dir.join("my.cnf"),
            datadir: dir.join("data"),
            tmpdir: dir.join("tmp"),
            socket: dir.join("mariadbd.sock"),
            pid_file: dir.join("mariadbd.pid"),
            error_log: dir.join("mariadbd.err"),
            console_log: dir.join("mariadbd.out"),
            replication_secret: dir.join("replication.secret"),
        }
    }

    /// `--defaults-file=…`: always the FIRST argument, so /etc/mysql never leaks in.
    pub(crate) fn defaults_arg(&self) -> String {
        format!("--defaults-file={}", self.my_cnf.display())
    }
}

/// Renders my.cnf. `run_as_root` adds `user=root`, without which mariadbd refuses to start as
/// root (as a normal user it simply runs as that user). `vars` come last in `[mysqld]`.
pub(crate) fn render_my_cnf(
    cfg: &InstanceConfig,
    vars: &ServerVariables,
    layout: &Layout,
    run_as_root: bool,
) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line("# Written by the skyplan emulator on every start; edits are overwritten.".into());
    line("[client]".into());
    line(format!("socket={}", layout.socket.display()));
    line("user=root".into());
    line(String::new());
    line("[mysqld]".into());
    if run_as_root {
        line("user=root".into());
    }
    line(format!("datadir={}", layout.datadir.display()));
    line(format!("tmpdir={}", layout.tmpdir.display()));
    line(format!("socket={}", layout.socket.display()));
    line(format!("pid-file={}", layout.pid_file.display()));
    line(format!("log-error={}", layout.error_log.display()));
    line(format!("port={}", cfg.port));
    line("bind-address=127.0.0.1".into());
    line("skip-networking=0".into());
    line("skip-name-resolve".into());
    line(format!("report-host=127.0.0.1\nreport-port={}", cfg.port));
    line("# replication identity: binlog + GTID, unique ids per service".into());
    line(format!("server-id={}", cfg.server_id));
    line(format!("gtid-domain-id={}", cfg.gtid_domain_id));
    line("log-bin=mariadb-bin".into());
    line("relay-log=mariadb-relay-bin".into());
    line("binlog-format=ROW".into());
    line("log-slave-updates=ON".into());
    // Not strict: a replica that already wrote in its own domain must still accept
    // `SET GLOBAL gtid_slave_pos = <primary's position>` (strict mode refuses it).
    line("gtid-strict-mode=OFF".into());
    line("# tiny footprint: a dozen of these must fit on a small machine".into());
    line("innodb-buffer-pool-size=16M".into());
    line("innodb-log-file-size=8M".into());
    line("innodb-log-buffer-size=2M".into());
    line("innodb-use-native-aio=0".into());
    // Emulated services trade OS-crash durability for speed; a killed mariadbd loses nothing.
    line("innodb-flush-log-at-trx-commit=2".into());
    line("aria-pagecache-buffer-size=8M".into());
    line("key-buffer-size=1M".into());
    line("performance-schema=OFF".into());
    line("max-connections=40".into());
    line("table-open-cache=200".into());
    if let Some(tls) = &cfg.tls {
        line("# TLS offered (not required), with the emulator CA".into());
        line(format!("ssl-ca={}", tls.ca.display()));
        line(format!("ssl-cert={}", tls.cert.display()));
        line(format!("ssl-key={}", tls.key.display()));
    }
    if !vars.is_empty() {
        line(
            "# the service's custom configuration (Configuration Manager): last, so it wins".into(),
        );
        for (name, value) in vars.iter() {
            line(format!("{name}={value}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> InstanceConfig {
        InstanceConfig {
            dir: PathBuf::from("/tmp/svc"),
            port: 3307,
            server_id: 11,
            gtid_domain_id: 11,
            tls: None,
            admin_user: "dbpgf00000001".into(),
            admin_password: "s3cret".into(),
            outbound_ip: "127.0.0.11".into(),
            ca_for_replication: None,
        }
    }

    #[test]
    fn debug_hides_the_password() {
        assert!(!format!("{:?}", cfg()).contains("s3cret"));
    }

    #[test]
    fn validate_rejects_unsafe_input() {
        assert!(cfg().validate().is_ok());
        let bad = [
            InstanceConfig {
                dir: "/tmp/with space".into(),
                ..cfg()
            },
            InstanceConfig {
                dir: format!("/{}", "x".repeat(100)).into(),
                ..cfg()
            },
            InstanceConfig {
                admin_user: "a'b".into(),
                ..cfg()
            },
            InstanceConfig {
                outbound_ip: "host".into(),
                ..cfg()
            },
            InstanceConfig {
                server_id: 0,
                ..cfg()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }

    #[test]
    fn my_cnf_pins_identity_and_paths() {
        let c = cfg();
        let text = render_my_cnf(&c, &ServerVariables::default(), &Layout::new(&c.dir), true);
        for expected in [
            "user=root",
            "datadir=/tmp/svc/data",
            "socket=/tmp/svc/mariadbd.sock",
            "port=3307",
            "server-id=11",
            "gtid-domain-id=11",
            "bind-address=127.0.0.1",
            "performance-schema=OFF",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "missing {expected}:\n{text}"
            );
        }
        assert!(!text.contains("ssl-"));
        assert!(!text.contains("custom configuration"));
        let none = ServerVariables::default();
        assert!(
            !render_my_cnf(&c, &none, &Layout::new(&c.dir), false).contains("\nuser=root\ndatadir")
        );
    }

    #[test]
    fn configured_variables_come_last_in_mysqld() {
        let c = cfg();
        let vars = ServerVariables::new(vec![
            ("max_connections".into(), "321".into()),
            ("read_only".into(), "ON".into()),
        ])
        .unwrap();
        let text = render_my_cnf(&c, &vars, &Layout::new(&c.dir), true);
        let lines: Vec<&str> = text.lines().collect();
        let default = lines
            .iter()
            .position(|l| *l == "max-connections=40")
            .unwrap();
        let ours = lines
            .iter()
            .position(|l| *l == "max_connections=321")
            .unwrap();
        assert!(ours > default, "{text}");
        assert_eq!(lines.last(), Some(&"read_only=ON"));
        // Still in [mysqld]: no other section after it.
        let mysqld = lines.iter().position(|l| *l == "[mysqld]").unwrap();
        assert!(lines[mysqld + 1..].iter().all(|l| !l.starts_with('[')));
    }

    #[test]
    fn variables_that_could_break_my_cnf_are_refused() {
        let one = |name: &str, value: &str| {
            ServerVariables::new(vec![(name.to_string(), value.to_string())])
        };
        assert!(one("max_allowed_packet", "64M").is_ok());
        assert!(one("long_query_time", "0.5").is_ok());
        for (name, value) in [
            ("max_connections", "1\n[client]"),
            ("max_connections", "1 # x"),
            ("max_connections", "'1'"),
            ("max_connections", "1;2"),
            ("max_connections", "a\\b"),
            ("max_connections", ""),
            ("Max_Connections", "1"),
            ("max-connections", "1"),
            ("max_connections\nx", "1"),
            ("", "1"),
            ("datadir", "tmp"),
            ("server_id", "7"),
            ("port", "3306"),
        ] {
            assert!(one(name, value).is_err(), "{name:?}={value:?}");
        }
    }
}
