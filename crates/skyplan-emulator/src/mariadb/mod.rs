//! Real MariaDB servers behind the emulated SkySQL services.
//!
//! Each service is one `mariadbd` with its own directory (datadir, my.cnf, socket, pid file,
//! logs), port on 127.0.0.1, binlog + GTID identity, optional TLS from the emulator CA, and the
//! `sky` schema of replication procedures. The servers run detached and outlive the emulator
//! process; a restarted emulator `open`s the directory and `start`s or adopts the server.
//!
//! - `binaries`: finding mariadbd, mariadb-install-db, mariadb-backup
//! - `ca`: the emulator CA and per-service server certificates
//! - `config`: `InstanceConfig`, `ServerVariables`, the directory layout, my.cnf
//! - `process`: spawning, finding and stopping mariadbd
//! - `instance`: create / open / start / stop / destroy
//! - `backup`: mariadb-backup backups and restores
//! - `admin` + `sky_schema.sql`: the emulator's own SQL (root over the socket)

mod admin;
mod backup;
mod binaries;
mod ca;
mod config;
mod error;
mod fsutil;
mod instance;
mod process;
mod replication_secret;

pub use backup::BackupInfo;
pub use binaries::Binaries;
pub use ca::{Ca, TlsFiles};
pub use config::{InstanceConfig, ServerVariables};
pub use error::MariadbError;
pub use instance::Instance;
pub(crate) use process::running_under;
