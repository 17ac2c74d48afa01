//! skyplan: a declarative plan/apply engine for MariaDB SkySQL global replication.
//!
//! This crate is the I/O edge over the pure core (`skyplan_core`: topology + state + observed →
//! plan) and the API model (`skyplan_api`): `cli` (thin commands) over `ops` (the workflows),
//! which print through `printer` and use `remote` (API + SQL), `refresh`, `apply` (executor and
//! steps), `state` (backends and locks), `skysql` (REST client) and `sql` (sky.* procedures).
//! See ARCHITECTURE.md.

pub mod apply;
pub mod cli;
pub(crate) mod hints;
pub(crate) mod ops;
pub mod plan;
pub mod printer;
pub mod refresh;
pub mod remote;
pub mod schemas;
pub mod skysql;
pub mod sql;
pub mod state;
pub mod topology;

pub use skyplan_core::{catalog, config, gtid, observed, ownership};
