//! The MariaDB backend URL: `mysql://USER@HOST[:PORT]/DATABASE[?ssl-mode=…&ssl-ca=…&history=N]`.
//! The password never goes in the URL (it would end up in topology files and command lines):
//! it comes from the environment variable named by `[state] password_env`.

use std::fmt;
use std::path::PathBuf;

use mysql_async::{Opts, OptsBuilder, SslOpts};

use crate::state::backend::redact_url_passwords;
use crate::state::error::StateError;

pub const DEFAULT_PORT: u16 = 3306;
/// Versions kept in the history table per workspace unless the URL says `history=N`.
pub const DEFAULT_HISTORY_LIMIT: u32 = 20;
/// Env var read for the password when the topology names none in `[state] password_env`.
pub const DEFAULT_PASSWORD_ENV: &str = "SKYPLAN_STATE_PASSWORD";

/// How the connection is protected, with MySQL's `--ssl-mode` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    /// Encrypted, server certificate not checked.
    Required,
    /// Encrypted, certificate checked against the CA, host name not checked.
    VerifyCa,
    /// Encrypted, certificate and host name checked.
    VerifyIdentity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlConfig {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub ssl_mode: SslMode,
    /// CA certificate (PEM) for the verify modes; the built-in web roots otherwise.
    pub ssl_ca: Option<PathBuf>,
    pub history_limit: u32,
}

/// A password that does not print itself.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(p: impl Into<String>) -> Password {
        Password(p.into())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl MysqlConfig {
    /// Whether `spec` names this backend (`mysql://` or `mariadb://`).
    pub fn matches(spec: &str) -> bool {
        spec.starts_with("mysql://") || spec.starts_with("mariadb://")
    }

    pub fn parse(url: &str) -> Result<MysqlConfig, StateError> {
        let invalid = |reason: &str| StateError::InvalidBackend {
            backend: redact_url_passwords(url),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
            .ok_or_else(|| invalid("expected mysql://USER@HOST:PORT/DATABASE"))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, database) = main
            .split_once('/')
            .ok_or_else(|| invalid("the URL names no /DATABASE"))?;
        let database = database.trim_end_matches('/');
        if database.is_empty()
            || !database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            return Err(invalid(
                "the database name must be non-empty and use only letters, digits, _ and $",
            ));
        }
        let (user, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| invalid("the URL names no USER@"))?;
        if user.contains(':') {
            return Err(invalid(
                "the URL contains a password: remove it and put it in the environment variable \
                 named by [state] password_env",
            ));
        }
        if user.is_empty() {
            return Err(invalid("the user name is empty"));
        }
        let (host, port) = split_host_port(hostport).ok_or_else(|| invalid("bad HOST:PORT"))?;

        let mut config = MysqlConfig {
            user: user.to_string(),
            host,
            port,
            database: database.to_string(),
            ssl_mode: SslMode::Disabled,
            ssl_ca: None,
            history_limit: DEFAULT_HISTORY_LIMIT,
        };
        let mut explicit_mode = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "ssl-mode" | "ssl_mode" | "sslmode" => {
                    explicit_mode = true;
                    config.ssl_mode = match value.to_ascii_lowercase().as_str() {
                        "disabled" => SslMode::Disabled,
                        "required" => SslMode::Required,
                        "verify-ca" | "verify_ca" => SslMode::VerifyCa,
                        "verify-identity" | "verify_identity" => SslMode::VerifyIdentity,
                        _ => {
                            return Err(invalid(
                                "ssl-mode must be disabled, required, verify-ca or \
                                 verify-identity",
                            ))
                        }
                    }
                }
                "ssl-ca" | "ssl_ca" | "sslca" if !value.is_empty() => {
                    config.ssl_ca = Some(PathBuf::from(value))
                }
                "history" => {
                    config.history_limit = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| invalid("history must be a number of versions >= 1"))?
                }
                _ => {
                    return Err(invalid(&format!(
                        "unknown option `{key}` (known: ssl-mode, ssl-ca, history)"
                    )))
                }
            }
        }
        // As with the mysql client: naming a CA without a mode means "verify against it".
        if config.ssl_ca.is_some() && !explicit_mode {
            config.ssl_mode = SslMode::VerifyCa;
        }
        Ok(config)
    }

    /// `mysql://user@host:port/database`: no password, ever.
    pub fn describe(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "mysql://{}@{}:{}/{}",
            self.user, host, self.port, self.database
        )
    }

    pub(crate) fn opts(&self, password: Option<&Password>) -> Opts {
        let ssl = match self.ssl_mode {
            SslMode::Disabled => None,
            SslMode::Required => Some(
                SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            SslMode::VerifyCa => Some(
                self.with_ca(SslOpts::default())
                    .with_danger_skip_domain_validation(true),
            ),
            SslMode::VerifyIdentity => Some(self.with_ca(SslOpts::default())),
        };
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(password.map(|p| p.0.clone()))
            .db_name(Some(self.database.clone()))
            // Stay on TCP: the lock's liveness is the life of this one connection.
            .prefer_socket(false)
            .ssl_opts(ssl)
            .tcp_keepalive(Some(30_000u32))
            .into()
    }

    fn with_ca(&self, ssl: SslOpts) -> SslOpts {
        match &self.ssl_ca {
            Some(ca) => ssl.with_root_certs(vec![ca.clone().into()]),
            None => ssl,
        }
    }
}

fn split_host_port(s: &str) -> Option<(String, u16)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if rest.is_empty() => DEFAULT_PORT,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, DEFAULT_PORT),
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_url() {
        let c = MysqlConfig::parse(
            "mysql://skyplan@db.example.com:3307/infra?ssl-mode=verify-identity&ssl-ca=/ca.pem&history=5",
        )
        .unwrap();
        assert_eq!(c.user, "skyplan");
        assert_eq!(c.host, "db.example.com");
        assert_eq!(c.port, 3307);
        assert_eq!(c.database, "infra");
        assert_eq!(c.ssl_mode, SslMode::VerifyIdentity);
        assert_eq!(c.ssl_ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.history_limit, 5);
        assert_eq!(c.describe(), "mysql://skyplan@db.example.com:3307/infra");
    }

    #[test]
    fn defaults() {
        let c = MysqlConfig::parse("mariadb://u@[::1]/s").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 3306));
        assert_eq!(c.ssl_mode, SslMode::Disabled);
        assert_eq!(c.history_limit, DEFAULT_HISTORY_LIMIT);
        assert_eq!(c.describe(), "mysql://u@[::1]:3306/s");
        let ca = MysqlConfig::parse("mysql://u@h/s?ssl-ca=/x.pem").unwrap();
        assert_eq!(ca.ssl_mode, SslMode::VerifyCa);
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        let err = MysqlConfig::parse("mysql://u:hunter2@h:3306/s").unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("password_env"), "{msg}");
    }

    #[test]
    fn refuses_bad_urls() {
        for bad in [
            "mysql://h:3306/s",
            "mysql://u@h:3306",
            "mysql://u@h:port/s",
            "mysql://u@h/s?ssl-mode=maybe",
            "mysql://u@h/s?colour=blue",
            "mysql://u@h/s;drop",
            "mysql://u@h/s?history=0",
        ] {
            assert!(MysqlConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_debug_is_redacted() {
        assert_eq!(format!("{:?}", Password::new("hunter2")), "Password(***)");
    }
}
