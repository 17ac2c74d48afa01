//! The emulator's persisted state: services, custom configurations, backups, schedules,
//! restores and counters, as one JSON file (`<dir>/store.json`, mode 0600 because it holds service passwords).
//!
//! # Guarantees
//! Every change is written to a temporary file and renamed over the old one before the API
//! answers, so after a crash the file holds either the state before or after a request, never
//! half of one. An update that fails to persist leaves the in-memory state unchanged too.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use skyplan_api::types::{
    AllowListItem, Backup, BackupScheduleResponse, RestoreResponse, ServiceStatus, StorageVolume,
};

use super::api_error::ApiError;
use super::outage::OutageMode;
use super::EmulatorError;

pub(crate) const FILE_NAME: &str = "store.json";

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Store {
    pub counters: Counters,
    /// In creation order (`seq` ascending).
    pub services: Vec<ServiceRecord>,
    /// Custom configurations (Configuration Manager), in creation order. Absent in stores
    /// written before they existed.
    #[serde(default)]
    pub configs: Vec<ConfigRecord>,
    pub backups: Vec<BackupRecord>,
    pub schedules: Vec<BackupScheduleResponse>,
    pub restores: Vec<RestoreResponse>,
    /// Names of services whose next long operation must end `failed` (set by the admin API;
    /// by name, so it can target a service that does not exist yet).
    pub fail_next: BTreeSet<String>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    pub service_seq: u64,
    pub config_seq: u64,
    pub schedule_id: i64,
    pub restore_id: i64,
}

/// One service, as the emulator knows it. Not `Debug`: it holds the password.
#[derive(Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Creation sequence number: orders the list and derives the outbound IP and ids.
    pub seq: u64,
    pub id: String,
    pub name: String,
    pub status: ServiceStatus,
    pub provider: String,
    pub region: String,
    pub service_type: String,
    pub topology: String,
    pub architecture: String,
    pub version: Option<String>,
    pub size: String,
    pub nodes: i64,
    pub storage: StorageVolume,
    pub ssl_enabled: bool,
    pub tags: Option<BTreeMap<String, String>>,
    pub created_on: i64,
    pub updated_on: i64,
    /// The published endpoint port (the allowlist proxy).
    pub public_port: u16,
    /// mariadbd's own port on 127.0.0.1.
    pub db_port: u16,
    pub server_id: u32,
    pub gtid_domain_id: u32,
    pub outbound_ip: String,
    pub allow_list: Vec<AllowListItem>,
    /// The credentials the service accepts now (the source's after a restore).
    pub username: String,
    pub password: String,
    /// Why the last operation failed, served in `errors`.
    #[serde(default)]
    pub errors: Vec<String>,
    /// An emulated region outage (admin API): its database is down and the API answers for it
    /// as an unreachable region (see [`super::outage`]). Absent in stores written before
    /// outages existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<OutageMode>,
    /// The attached custom configuration: its values go into my.cnf at every start of the
    /// service's mariadbd. Absent in stores written before configurations existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_id: Option<String>,
    /// Shared mode (`--shared-mariadbd`, benchmarks only): the service whose mariadbd this one
    /// uses, with its own admin account on it; None for a service with its own server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_host: Option<String>,
}

/// A custom configuration (Configuration Manager). Which services use it is not kept here but
/// read from their `config_id`, so the two can never disagree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// Creation sequence number: orders the list and makes its page tokens.
    pub seq: u64,
    pub id: String,
    pub name: String,
    /// The topology's name (which is also the id the topology catalog publishes).
    pub topology: String,
    /// The release (`11.4.4-2`); the API shows the version id the catalog publishes.
    pub release: String,
    /// Variable name → value, normalised by [`super::configs::Variable::normalise`].
    pub values: BTreeMap<String, String>,
    pub created_on: i64,
    pub updated_on: i64,
}

/// A backup plus what a restore needs and the API does not show.
#[derive(Clone, Serialize, Deserialize)]
pub struct BackupRecord {
    pub backup: Backup,
    /// The backed-up service's credentials at backup time: a restore makes them the target's.
    pub source_username: String,
    pub source_password: String,
    /// Where the backup files are (None in API-only mode).
    pub data_dir: Option<PathBuf>,
}

impl Store {
    pub fn service(&self, id: &str) -> Option<&ServiceRecord> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn service_mut(&mut self, id: &str) -> Option<&mut ServiceRecord> {
        self.services.iter_mut().find(|s| s.id == id)
    }

    /// The service `id`, or the API's 404.
    pub fn require(&self, id: &str) -> Result<&ServiceRecord, ApiError> {
        self.service(id)
            .ok_or_else(|| ApiError::service_not_found(id))
    }

    /// The service `id` if it exists and is not in a `pending_*` state (400 otherwise).
    pub fn require_settled(&mut self, id: &str) -> Result<&mut ServiceRecord, ApiError> {
        let svc = self
            .service_mut(id)
            .ok_or_else(|| ApiError::service_not_found(id))?;
        if svc.status.is_pending() {
            return Err(ApiError::pending(id, svc.status.as_str()));
        }
        Ok(svc)
    }

    /// Settled and not stopped: what a change to the running database (size, nodes, storage,
    /// a restore) needs. A stopped service must be started first.
    pub fn require_running(&mut self, id: &str) -> Result<&mut ServiceRecord, ApiError> {
        let svc = self.require_settled(id)?;
        if svc.status == ServiceStatus::Stopped {
            return Err(ApiError::bad_request(format!(
                "service {id} is stopped; start it first (POST …/services/{id}/start)"
            )));
        }
        Ok(svc)
    }

    pub fn config(&self, id: &str) -> Option<&ConfigRecord> {
        self.configs.iter().find(|c| c.id == id)
    }

    pub fn config_mut(&mut self, id: &str) -> Option<&mut ConfigRecord> {
        self.configs.iter_mut().find(|c| c.id == id)
    }

    /// Ids of the services configuration `id` is attached to, in creation order.
    pub fn services_using(&self, config_id: &str) -> Vec<String> {
        self.services
            .iter()
            .filter(|s| s.config_id.as_deref() == Some(config_id))
            .map(|s| s.id.clone())
            .collect()
    }

    pub fn backup(&self, id: &str) -> Option<&BackupRecord> {
        self.backups.iter().find(|b| b.backup.id == id)
    }

    pub fn backup_mut(&mut self, id: &str) -> Option<&mut BackupRecord> {
        self.backups.iter_mut().find(|b| b.backup.id == id)
    }

    pub fn restore_mut(&mut self, id: i64) -> Option<&mut RestoreResponse> {
        self.restores.iter_mut().find(|r| r.id == id)
    }

    /// Consumes a fail-next mark for the service called `name`.
    pub fn take_fail_next(&mut self, name: &str) -> bool {
        self.fail_next.remove(name)
    }
}

/// The store and the file it lives in.
pub struct StoreFile {
    path: PathBuf,
    inner: Mutex<Store>,
}

impl StoreFile {
    /// Loads `<dir>/store.json`, or starts empty when there is none.
    pub fn open(dir: &Path) -> Result<StoreFile, EmulatorError> {
        let path = dir.join(FILE_NAME);
        let store = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| EmulatorError::Store {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Store::default(),
            Err(e) => return Err(EmulatorError::io("reading", &path, e)),
        };
        Ok(StoreFile {
            path,
            inner: Mutex::new(store),
        })
    }

    /// Reads under the lock.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.lock())
    }

    /// Applies `f` to a copy, persists the copy, then makes it current. When `f` fails or the
    /// write fails, nothing changes.
    pub fn update<R>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let mut guard = self.lock();
        let mut next = guard.clone();
        let out = f(&mut next)?;
        let bytes = serde_json::to_vec_pretty(&next)
            .map_err(|e| ApiError::internal(format!("encoding the emulator store: {e}")))?;
        skyplan_os::write_private(&self.path, &bytes)
            .map_err(|e| ApiError::internal(format!("writing {}: {e}", self.path.display())))?;
        *guard = next;
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave a half-applied update (see `update`).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_persist_and_failed_updates_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = StoreFile::open(dir.path()).unwrap();
        file.update(|s| {
            s.counters.service_seq = 5;
            Ok(())
        })
        .unwrap();
        let err = file.update(|s| {
            s.counters.service_seq = 6;
            Err::<(), _>(ApiError::bad_request("no"))
        });
        assert!(err.is_err());
        assert_eq!(file.read(|s| s.counters.service_seq), 5);
        let reopened = StoreFile::open(dir.path()).unwrap();
        assert_eq!(reopened.read(|s| s.counters.service_seq), 5);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_store_written_before_configurations_loads() {
        let dir = tempfile::tempdir().unwrap();
        let service = serde_json::json!({
            "seq": 1, "id": "dbpgf00000001", "name": "old", "status": "ready",
            "provider": "gcp", "region": "us-east4", "service_type": "transactional",
            "topology": "es-single", "architecture": "amd64", "version": "10.11",
            "size": "sky-2x8", "nodes": 1, "storage": {"size": 100}, "ssl_enabled": true,
            "tags": null, "created_on": 1, "updated_on": 1, "public_port": 4000,
            "db_port": 4001, "server_id": 1001, "gtid_domain_id": 1,
            "outbound_ip": "127.0.1.1", "allow_list": [], "username": "u", "password": "p"
        });
        let old = serde_json::json!({
            "counters": {"service_seq": 1, "schedule_id": 0, "restore_id": 0},
            "services": [service], "backups": [], "schedules": [], "restores": [],
            "fail_next": []
        });
        std::fs::write(dir.path().join(FILE_NAME), old.to_string()).unwrap();
        let file = StoreFile::open(dir.path()).unwrap();
        file.read(|s| {
            assert!(s.configs.is_empty());
            assert_eq!(s.counters.config_seq, 0);
            assert_eq!(s.services[0].config_id, None);
        });
    }

    #[test]
    fn a_corrupt_store_is_an_error_not_an_empty_cloud() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(StoreFile::open(dir.path()).is_err());
    }
}
