//! (in progress)
pub mod client;
pub mod error;
pub mod operations;
pub mod request;
pub mod retry;
pub mod secret;
pub mod types;
