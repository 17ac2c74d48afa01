//! skyplan: a declarative plan/apply engine for MariaDB SkySQL global replication.
//!
//! This crate is the I/O edge over the pure core (`skyplan_core`: topology + state + observed →
//! plan) and the API model (`skyplan_api`): `skysql` (REST client), `sql` (sky.* procedures),
//! `state` (backends and locks), `engine` (workflows: workspace, refresh, plan), `apply`
//! (executor and steps), `cli` (one thin file per command). See ARCHITECTURE.md.

pub mod apply;
pub mod cli;
pub mod engine;
pub mod plan;
pub mod skysql;
pub mod sql;
pub mod state;
pub mod topology;

pub use skyplan_core::observed;
