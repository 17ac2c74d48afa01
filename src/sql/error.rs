//! Errors of the SQL layer. They name the server (`host:port`) and the user, never the
//! password: messages that come from the server are passed through [`Secret::redact_in`].
//!
//! [`Secret::redact_in`]: crate::skysql::secret::Secret::redact_in

use std::path::PathBuf;
use std::time::Duration;

use super::grant::GrantParseError;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot read the CA certificate {}: {message}", path.display())]
    CaCertificate { path: PathBuf, message: String },

    #[error("cannot connect to {endpoint} as '{user}': {message}")]
    Connect {
        endpoint: String,
        user: String,
        /// The server's error code (e.g. 1045 access denied), when the server answered.
        code: Option<u16>,
        message: String,
        /// Nothing answered (refused, reset, closed, unreachable, unknown host), as opposed to
        /// a server that answered and refused (a bad certificate, access denied).
        unreachable: bool,
    },

    #[error("cannot connect to {endpoint} as '{user}': no answer within {}s", timeout.as_secs())]
    ConnectTimeout {
        endpoint: String,
        user: String,
        timeout: Duration,
    },

    #[error("{what} on {endpoint} failed: {message}")]
    Query {
        endpoint: String,
        what: String,
        code: Option<u16>,
        message: String,
    },

    #[error("{what} on {endpoint} returned an unexpected result: {message}")]
    UnexpectedResult {
        endpoint: String,
        what: String,
        message: String,
    },

    // The cause is part of the message and deliberately not `source()`: the CLI prints the
    // chain, and a cause in both would print twice.
    #[error("{what} on {endpoint}: {cause}")]
    Grant {
        endpoint: String,
        what: String,
        cause: GrantParseError,
    },

    #[error("invalid GTID position `{0}`: expected comma-separated domain-server-sequence triples like 0-100-42")]
    InvalidGtid(String),
}

impl SqlError {
    /// The database did not answer at all: a dead server or a network cut, not a refusal.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            SqlError::ConnectTimeout { .. }
                | SqlError::Connect {
                    unreachable: true,
                    ..
                }
        )
    }

    /// The MariaDB error code, when the server refused something (1045 = access denied).
    pub fn server_code(&self) -> Option<u16> {
        match self {
            SqlError::Connect { code, .. } | SqlError::Query { code, .. } => *code,
            _ => None,
        }
    }
}

/// Whether a connection error means nothing answered (see [`SqlError::is_unreachable`]).
pub(crate) fn nothing_answered(error: &mysql_async::Error) -> bool {
    use std::io::ErrorKind::*;
    match error {
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => {
            matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | TimedOut
                    | HostUnreachable
                    | NetworkUnreachable
                    | NotConnected
                    | UnexpectedEof
                    | BrokenPipe
                    | AddrNotAvailable
            ) || io.to_string().contains("failed to lookup address")
        }
        mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed) => true,
        _ => false,
    }
}

/// The server's error code and a message with `redact` applied (and control characters
/// escaped), from a mysql_async error.
pub(crate) fn describe(
    error: &mysql_async::Error,
    redact: impl Fn(&str) -> String,
) -> (Option<u16>, String) {
    let code = match error {
        mysql_async::Error::Server(e) => Some(e.code),
        _ => None,
    };
    // The server's words are data: control characters escaped before they can be printed.
    (
        code,
        skyplan_api::text::escape_controls(&redact(&error.to_string())).into_owned(),
    )
}
