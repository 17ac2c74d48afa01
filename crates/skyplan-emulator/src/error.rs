//! The emulator's library error: starting, stopping and finding emulators. (API answers use
//! [`super::api_error::ApiError`] instead.)

use std::path::{Path, PathBuf};

use super::mariadb::MariadbError;

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error(transparent)]
    Mariadb(#[from] MariadbError),

    // The cause is in the message, not `source()`, so a printed chain never repeats it.
    #[error("{action} {path}: {cause}")]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error(
        "emulator store {path} is unreadable: {reason}; move it away to start from an empty cloud"
    )]
    Store { path: PathBuf, reason: String },

    #[error("another emulator is already serving {dir}{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    AlreadyServing { dir: PathBuf, pid: Option<u32> },

    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),

    #[error("the emulator did not come up: {reason}; last lines of {}:\n{log_tail}", log.display())]
    StartFailed {
        reason: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error("no emulator is running for {}", dir.display())]
    NotRunning { dir: PathBuf },

    #[error("invalid option: {0}")]
    Invalid(String),
}

impl EmulatorError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        EmulatorError::Io {
            action,
            path: path.to_path_buf(),
            cause: source,
        }
    }
}
