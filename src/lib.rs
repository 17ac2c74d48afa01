//! skyplan: a declarative plan/apply engine for MariaDB SkySQL global replication.
//!
//! The core (`topology` + `state` + `observed` → `plan`) does no I/O. I/O lives at the edges:
//! `skysql` (REST), `sql` (sky.* procedures), `refresh`, `apply`, `emulator`, `cli`.

pub mod apply;
pub mod bench;
pub mod cli;
pub mod emulator;
pub mod engine;
pub mod observed;
pub mod plan;
pub mod skysql;
pub mod sql;
pub mod state;
pub mod topology;
