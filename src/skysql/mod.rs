//! (in progress)
pub mod types;
pub mod retry;
pub mod secret;
pub mod client;
pub mod error;
pub mod operations;
pub mod request;
