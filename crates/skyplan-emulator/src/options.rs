//! How an emulator runs: data directory, pacing, faults, API-only mode.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

use super::EmulatorError;

/// Options of `skyplan emulator serve|start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServeOptions {
    /// Data directory: store, logs, CA, instances, backups.
    pub dir: PathBuf,
    /// Least time (seconds) create, modify, backup, restore and delete stay pending.
    pub op_seconds: f64,
    /// Fraction (0–1) of API requests answered with an injected 500/502/503/429.
    pub fault_rate: f64,
    pub fault_seed: u64,
    /// Services without mariadbd (API-only, for benchmarks); never the default.
    pub no_mariadb: bool,
    /// Distances between regions (`--latency`, `--client-region`, `--api-delay-ms`): none by
    /// default. Absent in the options of emulators started before it existed.
    #[serde(default)]
    pub latency: super::latency::Latency,
    /// At most this many mariadbd servers: once they exist, a new service shares the server
    /// of an earlier one, with its own admin account on it (benchmarks of many services with
    /// their SQL; backups, restores and outages of a sharing service act on the shared
    /// server). None: a server per service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_mariadbd: Option<usize>,
}

impl ServeOptions {
    pub const DEFAULT_OP_SECONDS: f64 = 1.0;

    /// Defaults for `dir`: 1 s operations, no faults, real MariaDB.
    pub fn new(dir: PathBuf) -> ServeOptions {
        ServeOptions {
            dir,
            op_seconds: Self::DEFAULT_OP_SECONDS,
            fault_rate: 0.0,
            fault_seed: 0,
            no_mariadb: false,
            latency: Default::default(),
            shared_mariadbd: None,
        }
    }

    pub fn validate(&self) -> Result<(), EmulatorError> {
        if !(self.op_seconds.is_finite() && (0.0..=3600.0).contains(&self.op_seconds)) {
            return Err(EmulatorError::Invalid(format!(
                "--op-seconds {} must be between 0 and 3600",
                self.op_seconds
            )));
        }
        if !(self.fault_rate.is_finite() && (0.0..=1.0).contains(&self.fault_rate)) {
            return Err(EmulatorError::Invalid(format!(
                "--fault-rate {} must be between 0 and 1",
                self.fault_rate
            )));
        }
        if let Some(k) = self.shared_mariadbd.filter(|k| !(1..=64).contains(k)) {
            return Err(EmulatorError::Invalid(format!(
                "--shared-mariadbd {k} must be between 1 and 64"
            )));
        }
        self.latency.validate()
    }

    pub fn op_duration(&self) -> Duration {
        Duration::from_secs_f64(self.op_seconds)
    }
}
