//! The embedded SkySQL emulator: the SkySQL API subset on loopback, backed by real MariaDB.
//!
//! - `server` routes the spec's paths through middleware (request log, error bodies, faults,
//!   `X-API-Key`) to the handlers in `api_services`, `api_security`, `api_backups`,
//!   `api_configs` (the Configuration Manager; its variables in `configs`), and the emulator's
//!   own `api_admin` (`/emulator/v1/…`). `paging` pages the lists.
//! - `store` persists the cloud's state; `ops` moves services through `pending_*` states in the
//!   background; `instances` drives the real `mariadbd` of each service (`mariadb`).
//! - `outage` emulates a region outage of a service (admin API; mechanism documented there).
//! - `proxy` + `peer` enforce the allowlist on each service endpoint (mechanism documented in
//!   [`proxy`]).
//! - `serve` runs an emulator in this process; `daemon` runs one in the background and finds
//!   it again (`info`: `emulator.json`, the API key).

mod allowlist;
mod api_admin;
mod api_backups;
mod api_catalog;
mod api_configs;
mod api_error;
mod api_security;
mod api_services;
mod app;
mod body;
pub mod catalog;
mod configs;
pub mod daemon;
mod error;
mod faults;
mod ids;
pub mod info;
mod instances;
pub mod latency;
pub mod mariadb;
mod ops;
pub mod options;
pub mod outage;
mod paging;
mod peer;
mod ports;
mod proxy;
mod render;
pub mod reqlog;
mod serve;
mod server;
mod spec;
mod store;

pub use daemon::{
    default_dir, ensure_running, find_running, kill_strays, resolve_dir, start_background, stop,
};
pub use error::EmulatorError;
pub use info::LocalEmulator;
pub use options::ServeOptions;
pub use serve::{serve_until_signal, start, RunningEmulator};

/// The host name of every emulated service: resolves on any machine, and the services' TLS
/// certificates carry it (and 127.0.0.1) as subject alternative names.
pub const FQDN: &str = "localhost";
