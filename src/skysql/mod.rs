//! (in progress)
pub mod types;
pub mod retry;
pub mod secret;
