//! Errors of the SkySQL client. They say which call failed (method and path), how (status and
//! the API's own message, or the transport failure) and after how many attempts. They never
//! contain the API key: messages taken from responses pass through [`Secret::redact_in`].

use std::fmt;
use std::time::Duration;

use super::retry::{self, RetryClass};
use super::types::ErrorResponse;

#[cfg(doc)]
use super::secret::Secret;

/// Longest API message kept in an error: enough for any real message, short enough that an
/// HTML error page from a proxy does not flood the terminal.
pub const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum SkysqlError {
    /// The API answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiError),

    /// No HTTP answer: connection refused, TLS failure, timeout, connection lost.
    #[error("{method} {path}: {message}{}", attempts_note(*attempts))]
    Transport {
        method: String,
        path: String,
        message: String,
        /// The connection never opened, so the server cannot have acted.
        connect_failed: bool,
        attempts: u32,
    },

    /// A success status with a body that is not what the spec says.
    #[error("{method} {path}: unexpected response body: {message}")]
    Decode {
        method: String,
        path: String,
        message: String,
    },

    #[error("{method} {path}: the listing did not end after {pages} pages")]
    Pagination {
        method: String,
        path: String,
        pages: u32,
    },

    #[error("invalid SkySQL client configuration: {0}")]
    Config(String),
}

/// An error status from the API, e.g. `POST /provisioning/v1/services: 400 Bad Request: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `errors[].message` of the error body, else the body text; truncated, key redacted.
    pub message: String,
    pub trace_id: Option<String>,
    /// The `Retry-After` the server asked for, if any.
    pub retry_after: Option<Duration>,
    /// Attempts made before giving up (1 = no retry).
    pub attempts: u32,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.method,
            self.path,
            status_line(self.status)
        )?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(trace) = &self.trace_id {
            write!(f, " (trace id {trace})")?;
        }
        f.write_str(&attempts_note(self.attempts))
    }
}

impl SkysqlError {
    /// How retrying would fare (see [`retry`]).
    pub fn retry_class(&self) -> RetryClass {
        match self {
            SkysqlError::Api(e) => retry::classify_status(e.status, &e.message, e.retry_after),
            SkysqlError::Transport { connect_failed, .. } => {
                retry::classify_transport(*connect_failed)
            }
            _ => RetryClass::Fatal,
        }
    }

    /// The HTTP status, when the API answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            SkysqlError::Api(e) => Some(e.status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// A refusal that says the thing asked about is not offered here (404, or a 400 for an
    /// unknown name): not an outage, not an authentication or rate-limit problem.
    pub fn is_not_offered(&self) -> bool {
        matches!(self.status(), Some(400 | 404 | 405 | 501))
    }

    pub(crate) fn set_attempts(&mut self, n: u32) {
        match self {
            SkysqlError::Api(e) => e.attempts = n,
            SkysqlError::Transport { attempts, .. } => *attempts = n,
            _ => {}
        }
    }
}

/// `400 Bad Request`, or the bare code for statuses without a standard reason.
pub fn status_line(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// The message to show for an error body: the spec's `errors[].message` (or `.error`, or
/// `exception`), else the raw text. Returns it with the body's trace id.
pub fn message_from_body(body: &[u8]) -> (String, Option<String>) {
    if let Ok(parsed) = serde_json::from_slice::<ErrorResponse>(body) {
        let mut message = parsed.message();
        if message.trim().is_empty() {
            message = parsed
                .errors
                .iter()
                .map(|e| e.error.as_str())
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
        }
        if message.trim().is_empty() {
            message = parsed.exception.clone().unwrap_or_default();
        }
        let trace = Some(parsed.trace_id).filter(|t| !t.is_empty());
        if !message.trim().is_empty() {
            return (truncate(message.trim()), trace);
        }
        if trace.is_some() {
            return (String::new(), trace);
        }
    }
    (truncate(String::from_utf8_lossy(body).trim()), None)
}

fn truncate(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_MESSAGE_CHARS {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, message: &str) -> ApiError {
        ApiError {
            method: "POST".into(),
            path: "/provisioning/v1/services".into(),
            status,
            message: message.into(),
            trace_id: None,
            retry_after: None,
            attempts: 1,
        }
    }

    #[test]
    fn api_error_display() {
        assert_eq!(
            api(400, "invalid size").to_string(),
            "POST /provisioning/v1/services: 400 Bad Request: invalid size"
        );
        let mut e = api(503, "");
        e.trace_id = Some("t-1".into());
        e.attempts = 8;
        assert_eq!(
            e.to_string(),
            "POST /provisioning/v1/services: 503 Service Unavailable (trace id t-1) \
             (gave up after 8 attempts)"
        );
    }

    #[test]
    fn message_prefers_the_spec_fields() {
        let body = br#"{"code":400,"errors":[{"message":"bad size"},{"message":"bad region"}],"trace_id":"abc"}"#;
        assert_eq!(
            message_from_body(body),
            ("bad size; bad region".to_string(), Some("abc".to_string()))
        );
        let body = br#"{"errors":[{"error":"NOT_FOUND"}]}"#;
        assert_eq!(message_from_body(body).0, "NOT_FOUND");
        assert_eq!(message_from_body(b"  upstream\n down ").0, "upstream down");
        let long = "x".repeat(1000);
        assert_eq!(
            message_from_body(long.as_bytes()).0.chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
    }

    #[test]
    fn classes_follow_the_error() {
        let e = SkysqlError::Api(api(409, "service is in pending state"));
        assert!(matches!(e.retry_class(), RetryClass::Refused { .. }));
        assert_eq!(
            SkysqlError::Api(api(404, "")).retry_class(),
            RetryClass::Fatal
        );
        assert!(SkysqlError::Api(api(404, "")).is_not_found());
    }
}
