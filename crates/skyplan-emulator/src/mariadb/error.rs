//! The one error type of the MariaDB layer. Messages say what failed, where, and what to do;
//! they never contain passwords (SQL errors are reported by code and server message only).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MariadbError {
    #[error(
        "MariaDB binary `{binary}` not found (searched PATH, /usr/sbin, /usr/bin, /usr/local/sbin); \
         install Debian packages: apt-get install -y mariadb-server mariadb-client mariadb-backup"
    )]
    MissingBinaries { binary: String },

    // The cause is in the message, not `source()`, so a printed chain never repeats it.
    #[error("{action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("TLS certificate generation failed: {0}")]
    Tls(String),

    #[error("invalid instance configuration: {0}")]
    Config(String),

    #[error("`{command}` failed ({status}); last lines of its output:\n{output_tail}")]
    Command {
        command: String,
        status: String,
        output_tail: String,
    },

    #[error("mariadbd in {dir} did not start: {reason}; last lines of its error log:\n{log_tail}")]
    StartFailed {
        dir: PathBuf,
        reason: String,
        log_tail: String,
    },

    #[error("mariadbd (pid {pid}) in {dir} did not stop even after SIGKILL")]
    StopFailed { dir: PathBuf, pid: u32 },

    #[error("SQL on the instance in {dir} failed while {action}: {message}")]
    Sql {
        dir: PathBuf,
        action: String,
        message: String,
    },

    #[error("backup in {dir} is unusable: {reason}")]
    BadBackup { dir: PathBuf, reason: String },
}

impl MariadbError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        MariadbError::Io {
            action,
            path: path.into(),
            cause: source,
        }
    }
}
