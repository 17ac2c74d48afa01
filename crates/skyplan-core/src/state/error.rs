//! Typed errors of the state layer. Messages say what happened, where, and what to do; they
//! never contain a password (backend locations are rendered without one).

use std::path::PathBuf;

use super::holder::LockInfo;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    // Causes are part of the messages and deliberately not `source()`: the CLI prints the
    // chain, and a cause in both would print twice.
    #[error("could not {action} {}: {cause}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    /// A whole-file replacement that failed (a full disk, say): what was and was not recorded.
    #[error("could not write {}: {cause}. Nothing of this write was recorded: {} still holds its previous content{}, and no temporary file was left", path.display(), state.display(), if path == state { "" } else { " (its backup copy could not be made first, so it was not written)" })]
    WriteFailed {
        /// The file being written (the state, or its backup copy).
        path: PathBuf,
        /// The state file.
        state: PathBuf,
        cause: std::io::Error,
    },

    #[error(
        "{location} is not a valid skyplan state: {message} at line {line} column {column}; \
         it was left untouched (fix it, or restore the previous version from its backup)"
    )]
    Corrupt {
        location: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error(
        "{location} has state format version {found}, written by a newer skyplan (this one \
         supports up to {supported}); upgrade skyplan. The state was left untouched"
    )]
    TooNew {
        location: String,
        found: u64,
        supported: u32,
    },

    #[error(
        "{location} holds lineage {stored}, but the state being written has lineage {given}: \
         they are different states (another topology?); refusing to overwrite"
    )]
    LineageMismatch {
        location: String,
        stored: String,
        given: String,
    },

    #[error(
        "{location} changed since it was read (read at serial {expected}, now {}): another \
         writer got there first; refresh and try again",
        found.map_or_else(|| "absent".to_string(), |s| format!("serial {s}"))
    )]
    StaleSerial {
        location: String,
        expected: u64,
        found: Option<u64>,
    },

    #[error("{}", locked_message(location, holder.as_deref()))]
    Locked {
        location: String,
        holder: Option<Box<LockInfo>>,
    },

    #[error("the lock on {location} has id {found}, not {expected}; nothing was unlocked")]
    LockIdMismatch {
        location: String,
        expected: String,
        found: String,
    },

    #[error(
        "{location} is at serial {serial}, the largest there is: it cannot be written again \
         (a serial that wrapped to 0 would make an old saved plan look fresh). Start a new \
         state with `skyplan state pull` and `skyplan state push --force` of a copy whose \
         serial you reset, after checking nothing else writes it"
    )]
    SerialExhausted { location: String, serial: u64 },

    #[error("refusing to push to {location}: {reason} (use --force to overwrite)")]
    PushRefused { location: String, reason: String },

    #[error(
        "{location} manages the services of {recorded}, but the topology now reaches \
         {current}; refusing to plan against another cloud (every service would look deleted \
         or new). Point the topology (or SKYPLAN_EMULATOR_DIR for a local emulator) at {recorded}, \
         or use another state for the new cloud. Nothing was changed"
    )]
    OtherEndpoint {
        location: String,
        recorded: String,
        current: String,
    },

    #[error("nothing to migrate: {location} holds no state")]
    NothingToMigrate { location: String },

    #[error("invalid state backend `{backend}`: {reason}")]
    InvalidBackend { backend: String, reason: String },

    #[error(
        "the state backend password is read from the environment variable {env}, which is \
         not set"
    )]
    MissingPassword { env: String },

    #[error(
        "{location}: the state schema is at version {found}, created by a newer skyplan (this \
         one supports up to {supported}); upgrade skyplan"
    )]
    SchemaTooNew {
        location: String,
        found: u32,
        supported: u32,
    },

    #[error("{location}: {action} failed: {message}")]
    Database {
        location: String,
        action: &'static str,
        message: String,
    },

    #[error("could not serialise the state: {0}")]
    Serialize(#[from] serde_json::Error),
}

fn locked_message(location: &str, holder: Option<&LockInfo>) -> String {
    const WAIT: &str = "Wait for it to finish (or pass a longer --lock-timeout)";
    match holder {
        // A MariaDB lock taken by something that recorded no holder (see mysql::lock).
        Some(h) if h.pid == 0 => format!(
            "the state {location} is locked by {}. {WAIT}; if it is stuck, run \
             `skyplan force-unlock --id {} --kill-holder`",
            h.command, h.id
        ),
        Some(h) => format!(
            "the state {location} is locked by pid {} on host {} (user {}) running {:?} since \
             {} (lock id {}). {WAIT}; if that process is gone, run \
             `skyplan force-unlock --id {}`",
            h.pid, h.host, h.user, h.command, h.created_at, h.id, h.id
        ),
        None => format!(
            "the state {location} is locked by another process that left no holder \
             information. {WAIT}; if it is gone, run `skyplan force-unlock`"
        ),
    }
}

impl StateError {
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StateError::Io {
            action,
            path: path.into(),
            cause: source,
        }
    }
}
