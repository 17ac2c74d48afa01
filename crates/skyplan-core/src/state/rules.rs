//! The rules every backend applies before it stores a state, so they behave alike.

use super::error::StateError;
use super::model::State;

/// The compare-and-swap rule shared by all backends: `state` must have been read at the
/// stored serial, from the stored lineage (no stored state: a new state at serial 0).
pub fn check_cas(location: &str, stored: Option<&State>, state: &State) -> Result<(), StateError> {
    if let Some(stored) = stored {
        if stored.lineage != state.lineage {
            return Err(StateError::LineageMismatch {
                location: location.to_string(),
                stored: stored.lineage.clone(),
                given: state.lineage.clone(),
            });
        }
    }
    let found = stored.map(|s| s.serial);
    if found.unwrap_or(0) != state.serial {
        return Err(StateError::StaleSerial {
            location: location.to_string(),
            expected: state.serial,
            found,
        });
    }
    // The write makes it serial + 1: never wrap.
    if state.serial == u64::MAX {
        return Err(StateError::SerialExhausted {
            location: location.to_string(),
            serial: state.serial,
        });
    }
    Ok(())
}

/// The push rule shared by all backends (without `--force`). `Ok(true)`: the stored state is
/// already exactly this one, nothing to do.
pub fn check_push(location: &str, stored: &State, state: &State) -> Result<bool, StateError> {
    let refuse = |reason: String| {
        Err(StateError::PushRefused {
            location: location.to_string(),
            reason,
        })
    };
    if stored.lineage != state.lineage {
        return refuse(format!(
            "it holds lineage {}, the pushed state has lineage {}",
            stored.lineage, state.lineage
        ));
    }
    if stored.serial > state.serial {
        return refuse(format!(
            "it holds serial {}, newer than the pushed serial {}",
            stored.serial, state.serial
        ));
    }
    if stored.serial == state.serial {
        if stored == state {
            return Ok(true);
        }
        return refuse(format!(
            "it holds different content at the same serial {}",
            stored.serial
        ));
    }
    Ok(false)
}

/// Refuse a state that records another cloud than `current` (see [`State::endpoint`]).
pub fn check_endpoint(state: &State, current: &str, location: &str) -> Result<(), StateError> {
    match &state.endpoint {
        Some(recorded) if recorded != current => Err(StateError::OtherEndpoint {
            location: location.to_string(),
            recorded: recorded.clone(),
            current: current.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_serial_is_never_written_again_so_it_cannot_wrap() {
        let mut s = State::with_lineage("00000000-0000-4000-8000-000000000000");
        s.serial = u64::MAX;
        let stored = s.clone();
        assert!(matches!(
            check_cas("state.json", Some(&stored), &s),
            Err(StateError::SerialExhausted { .. })
        ));
        s.serial = u64::MAX - 1;
        let stored = s.clone();
        assert!(check_cas("state.json", Some(&stored), &s).is_ok());
    }

    #[test]
    fn a_state_without_resources_is_damaged_not_empty() {
        let json = format!(
            "{{\"format_version\": 1, \"lineage\": \"{}\", \"serial\": 3}}",
            "00000000-0000-4000-8000-00000000abcd"
        );
        let e = crate::state::codec::from_json(json.as_bytes(), "s.json").unwrap_err();
        assert!(
            matches!(e, StateError::Corrupt { .. }) && e.to_string().contains("resources"),
            "{e}"
        );
    }
}
