//! The SkySQL API client: the wire types and request builders of `skyplan-api`, sent with
//! reqwest (retries, waits, pending-state handling) by `client` and `operations`.

pub mod client;
pub(crate) mod configs;
pub mod error;
pub(crate) mod operations;

pub use skyplan_api::{request, retry, secret, types};
