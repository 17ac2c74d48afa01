//! The state's content: what skyplan manages (ids, positions, ownership), its one JSON
//! encoding, and the rules every backend applies on write. Where a state lives and how it is
//! locked is the binary's (`skyplan::state`).

pub mod address;
pub mod codec;
pub mod edit;
pub mod error;
pub mod holder;
pub mod model;
pub mod rules;

pub use error::StateError;
pub use holder::{HistoryEntry, LockInfo, Writer};
pub use model::*;
