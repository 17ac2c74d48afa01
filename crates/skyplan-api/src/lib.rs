//! The SkySQL API as data: wire types, request builders (no client needed to build or test a
//! request), the retry policy and error classification, and [`secret::Secret`].
//!
//! No async runtime and no HTTP client here: the binary sends what this crate builds, and the
//! emulator answers with the same types, so both speak one schema.

pub mod cidr;
pub mod request;
pub mod retry;
pub mod secret;
pub mod suggest;
pub mod text;
pub mod types;
