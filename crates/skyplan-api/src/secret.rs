//! A string that must never be printed: API keys and database passwords.
//!
//! `Debug` and `Display` print `***`, and there is deliberately no `Serialize`, so a secret
//! cannot end up in logs, error messages, plan files or the state file by accident. Code that
//! really needs the value (an HTTP header, a MySQL handshake) calls [`Secret::expose`], which
//! is easy to grep for.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// What a secret prints as.
pub const REDACTED: &str = "***";

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The real value. Only pass it to the place that needs it; never format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of this secret replaced by `***`: for messages that come
    /// from outside (an API error body, a server error) and might echo the secret back.
    pub fn redact_in(&self, text: &str) -> String {
        // An empty or one-character secret would redact everything; such values are not
        // secrets worth hiding and replacing them would make messages unreadable.
        if self.0.len() < 2 {
            return text.to_string();
        }
        text.replace(&self.0, REDACTED)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// Reading a secret (e.g. a password in an API response) is fine; writing one out is not.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-key");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(***)");
        assert_eq!(s.expose(), "hunter2-key");
    }

    #[test]
    fn redact_replaces_every_occurrence() {
        let s = Secret::new("k3y");
        assert_eq!(s.redact_in("a k3y and k3y"), "a *** and ***");
        assert_eq!(Secret::new("").redact_in("text"), "text");
    }

    #[test]
    fn deserializes_from_a_json_string() {
        let s: Secret = serde_json::from_str("\"pw\"").unwrap();
        assert_eq!(s.expose(), "pw");
    }
}
