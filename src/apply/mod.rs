//! (in progress)
pub mod queue;
