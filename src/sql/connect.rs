//! Where and how to connect: [`SqlTarget`], [`TlsMode`], [`connect`].

use std::path::PathBuf;
use std::time::Duration;

use mysql_async::{Opts, OptsBuilder, SslOpts};

use super::error::{describe, SqlError};
use super::SqlConn;
use crate::skysql::secret::Secret;

/// How long to wait for the TCP connection, TLS and the MySQL handshake together.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A MariaDB server to talk to. `Debug` shows the password as `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    pub tls: TlsMode,
}

impl SqlTarget {
    /// `host:port` (IPv6 hosts in brackets), as used in messages.
    pub fn endpoint(&self) -> String {
        endpoint(&self.host, self.port)
    }
}

pub(crate) fn endpoint(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text. Only for services created with `ssl_enabled = false`.
    Disabled,
    /// TLS with the server certificate verified against `ca_pem_path` (only that CA: the
    /// emulator's) or, when `None`, the built-in Mozilla root set (the cloud); the hostname is
    /// verified too. A server without TLS is refused, never silently used in plain text.
    Verified { ca_pem_path: Option<PathBuf> },
}

pub async fn connect(target: &SqlTarget) -> Result<SqlConn, SqlError> {
    connect_with_timeout(target, DEFAULT_CONNECT_TIMEOUT).await
}

pub async fn connect_with_timeout(
    target: &SqlTarget,
    timeout: Duration,
) -> Result<SqlConn, SqlError> {
    let opts = opts(target, ssl_opts(&target.tls).await?);
    let endpoint = target.endpoint();
    let conn = match tokio::time::timeout(timeout, mysql_async::Conn::new(opts)).await {
        Err(_) => {
            return Err(SqlError::ConnectTimeout {
                endpoint,
                user: target.user.clone(),
                timeout,
            })
        }
        Ok(Err(e)) => {
            let (code, message) = describe(&e, |m| target.password.redact_in(m));
            return Err(SqlError::Connect {
                endpoint,
                user: target.user.clone(),
                code,
                message,
                unreachable: super::error::nothing_answered(&e),
            });
        }
        Ok(Ok(conn)) => conn,
    };
    Ok(SqlConn::new(conn, endpoint, target.password.clone()))
}

fn opts(target: &SqlTarget, ssl: Option<SslOpts>) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(target.host.clone())
        .tcp_port(target.port)
        .user(Some(target.user.clone()))
        .pass(Some(target.password.expose().to_string()))
        // mysql_async otherwise switches loopback connections to the unix socket it reads
        // from the server, which would bypass TLS (and the emulator's allowlist).
        .prefer_socket(false)
        // Given, so the driver does not ask the server for them after the login: a round trip
        // saved per session (at a distance, per service refreshed). The packet limit is the
        // protocol's largest; the wait timeout only matters to a pool, which skyplan has not.
        .max_allowed_packet(Some(MAX_ALLOWED_PACKET))
        .wait_timeout(Some(DEFAULT_WAIT_TIMEOUT_SECONDS))
        .ssl_opts(ssl)
        .into()
}

/// The largest packet the protocol allows (1 GiB): never lower than the server's own limit.
const MAX_ALLOWED_PACKET: usize = 1 << 30;
/// MariaDB's default `wait_timeout`.
const DEFAULT_WAIT_TIMEOUT_SECONDS: usize = 28_800;

async fn ssl_opts(tls: &TlsMode) -> Result<Option<SslOpts>, SqlError> {
    match tls {
        TlsMode::Disabled => Ok(None),
        TlsMode::Verified { ca_pem_path: None } => Ok(Some(SslOpts::default())),
        TlsMode::Verified {
            ca_pem_path: Some(path),
        } => {
            // Read it here rather than letting the driver do it, for an error that names the
            // file instead of a bare "No such file or directory" at connect time.
            let pem = tokio::fs::read(path)
                .await
                .map_err(|e| SqlError::CaCertificate {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            Ok(Some(
                SslOpts::default()
                    .with_root_certs(vec![pem.into()])
                    .with_disable_built_in_roots(true),
            ))
        }
    }
}
