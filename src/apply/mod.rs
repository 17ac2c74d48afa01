//! apply: carry out a plan's actions in dependency order against SkySQL or the emulator.

pub mod events;
pub mod executor;
pub mod progress;
pub mod queue;
pub mod state_handle;
pub mod steps;
pub mod wait;
