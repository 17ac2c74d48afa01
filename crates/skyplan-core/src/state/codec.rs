//! The one JSON encoding of a state, shared by every backend so that moving a state between
//! backends keeps it byte-identical.

use serde::Deserialize;

use super::error::StateError;
use super::model::{State, STATE_FORMAT_VERSION};

/// Pretty-printed JSON with a trailing newline.
pub fn to_json(state: &State) -> Result<String, StateError> {
    let mut s = serde_json::to_string_pretty(state)?;
    s.push('\n');
    Ok(s)
}

/// Parse a stored state. `location` names where it came from, for the error. Checks the format
/// version before the content, so a newer file is reported as newer, not as garbage.
pub fn from_json(bytes: &[u8], location: &str) -> Result<State, StateError> {
    #[derive(Deserialize)]
    struct Probe {
        format_version: Option<serde_json::Value>,
    }
    let corrupt = |e: serde_json::Error| StateError::Corrupt {
        location: location.to_string(),
        line: e.line(),
        column: e.column(),
        message: strip_location(&e.to_string()),
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(corrupt)?;
    if let Some(found) = probe.format_version.as_ref().and_then(|v| v.as_u64()) {
        if found > u64::from(STATE_FORMAT_VERSION) {
            return Err(StateError::TooNew {
                location: location.to_string(),
                found,
                supported: STATE_FORMAT_VERSION,
            });
        }
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

/// serde_json appends " at line L column C"; the error message places them itself.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = State::with_lineage("00000000-0000-4000-8000-000000000000");
        let json = to_json(&s).unwrap();
        assert_eq!(from_json(json.as_bytes(), "x").unwrap(), s);
        assert!(json.ends_with("}\n"));
    }

    #[test]
    fn truncated_is_located() {
        let json = to_json(&State::with_lineage("00000000-0000-4000-8000-000000000000")).unwrap();
        let err = from_json(&json.as_bytes()[..json.len() / 2], "f.json").unwrap_err();
        match &err {
            StateError::Corrupt { line, location, .. } => {
                assert!(*line >= 2);
                assert_eq!(location, "f.json");
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("f.json") && msg.contains("line") && msg.contains("column"),
            "{msg}"
        );
    }

    #[test]
    fn newer_version_wins_over_unknown_fields() {
        let json = br#"{"format_version": 99, "lineage": "x", "serial": 1, "new_thing": {}}"#;
        let err = from_json(json, "f").unwrap_err();
        assert!(
            matches!(err, StateError::TooNew { found: 99, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer skyplan"));
    }
}
