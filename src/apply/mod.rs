//! apply: carry out a plan's actions in dependency order against SkySQL or the emulator.

pub(crate) mod events;
pub mod executor;
pub(crate) mod progress;
pub(crate) mod queue;
pub mod state_handle;
pub mod steps;
pub mod wait;
