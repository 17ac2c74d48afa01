//! (in progress)
pub mod types;
