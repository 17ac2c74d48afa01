//! skyplan's pure core: topology + state + observed → plan.
//!
//! Nothing here does I/O: no network, no files, no clock, no async runtime. The binary crate
//! (`skyplan`) reads the files, talks to the cloud and hands this crate plain values, so every
//! decision below is deterministic and testable without a server.

pub mod catalog;
pub mod config;
pub mod gtid;
pub mod observed;
pub mod ownership;
pub mod plan;
pub mod schemas;
pub mod state;
pub mod status;
pub mod topology;
pub mod verify;
