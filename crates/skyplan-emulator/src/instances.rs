//! The database behind each emulated service: a real `mariadbd` (see [`super::mariadb`]), or
//! nothing at all in API-only mode (`--no-mariadb`, for benchmarks of the API alone).
//!
//! Instances live under `<dir>/services/<service id>/` (data, my.cnf, logs, and `tls/` with the
//! service's certificate), so deleting a service removes exactly that directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::RwLock;

use super::mariadb::{
    running_under, BackupInfo, Binaries, Ca, Instance, InstanceConfig, MariadbError,
    ServerVariables,
};
use super::store::ServiceRecord;

/// Sharing services that may be adding their account to a host at once.
const JOINING_AT_ONCE: usize = 8;

/// How long a sharing service's create waits for its host's server to be up.
const HOST_START_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What real instances need: the MariaDB binaries and the emulator CA.
struct Backend {
    binaries: Binaries,
    ca: Ca,
}

pub struct Instances {
    root: PathBuf,
    /// The CA clients trust; created even when API-only, so every emulator has one.
    ca_cert: PathBuf,
    /// None when API-only.
    backend: Option<Backend>,
    /// Read lock for backups (they run beside client traffic), write lock for start, restore
    /// and destroy.
    live: Mutex<HashMap<String, Arc<RwLock<Instance>>>>,
    /// Sharing services joining their host at once: each opens a root session on the host's
    /// socket, and a benchmark creating a thousand of them must not pass the server's
    /// connection limit.
    joining: tokio::sync::Semaphore,
}

impl Instances {
    /// Real instances: finds the MariaDB binaries (a clear error naming the Debian packages
    /// when they are missing) and loads or creates the CA in `<dir>/ca`.
    pub fn real(dir: &Path) -> Result<Instances, MariadbError> {
        let binaries = Binaries::locate()?;
        // The catalog offers (and a service reports) the version the servers really run.
        if let Some(v) = binaries.server_version() {
            super::catalog::set_server_version(&v);
        }
        Instances::with_binaries(dir, binaries)
    }

    /// Real instances of `binaries` (tests give stand-ins).
    pub(crate) fn with_binaries(dir: &Path, binaries: Binaries) -> Result<Instances, MariadbError> {
        let ca = Ca::load_or_create(&dir.join("ca"))?;
        let ca_cert = ca.cert_pem_path.clone();
        Ok(Instances::with_backend(
            dir,
            ca_cert,
            Some(Backend { binaries, ca }),
        ))
    }

    /// API-only: services have no database; backups and restores only change records.
    pub fn api_only(dir: &Path) -> Result<Instances, MariadbError> {
        let ca = Ca::load_or_create(&dir.join("ca"))?;
        Ok(Instances::with_backend(dir, ca.cert_pem_path, None))
    }

    fn with_backend(dir: &Path, ca_cert: PathBuf, backend: Option<Backend>) -> Instances {
        Instances {
            root: dir.join("services"),
            ca_cert,
            backend,
            live: Mutex::new(HashMap::new()),
            joining: tokio::sync::Semaphore::new(JOINING_AT_ONCE),
        }
    }

    pub fn is_api_only(&self) -> bool {
        self.backend.is_none()
    }

    /// The CA certificate clients use to verify services.
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// Creates and starts the instance of a new service. `vars`: the server variables of its
    /// custom configuration (in my.cnf from the first start on).
    pub async fn create(
        &self,
        rec: &ServiceRecord,
        vars: &[(String, String)],
    ) -> Result<(), MariadbError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        if let Some(host) = &rec.shared_host {
            return self.join(rec, host).await;
        }
        let cfg = self.config(backend, rec)?;
        let vars = ServerVariables::new(vars.to_vec())?;
        let instance = Instance::create_with_variables(&backend.binaries, cfg, vars).await?;
        self.remember(&rec.id, instance);
        Ok(())
    }

    /// A sharing service (`--shared-mariadbd`): its admin account on its host's server, and
    /// the host's instance under its id too.
    async fn join(&self, rec: &ServiceRecord, host: &str) -> Result<(), MariadbError> {
        // The host may still be starting (created a moment before): its server comes first.
        let deadline = std::time::Instant::now() + HOST_START_WAIT;
        let _slot = self.joining.acquire().await;
        let instance = loop {
            match self.get(host) {
                Ok(instance) => break instance,
                Err(e) if std::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        };
        instance
            .read()
            .await
            .add_tenant(&rec.username, &rec.password)
            .await?;
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rec.id.clone(), instance);
        Ok(())
    }

    /// Starts the service's mariadbd with its data (after a stop, an outage or an emulator
    /// restart), or adopts it when it is running. `vars` go into my.cnf when it starts; an
    /// adopted server keeps what it started with until its next start.
    pub async fn open(
        &self,
        rec: &ServiceRecord,
        vars: &[(String, String)],
    ) -> Result<(), MariadbError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        if let Some(host) = &rec.shared_host {
            // Its account is in the host's data already: only the alias is new.
            let instance = self.get(host)?;
            self.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(rec.id.clone(), instance);
            return Ok(());
        }
        let cfg = self.config(backend, rec)?;
        let vars = ServerVariables::new(vars.to_vec())?;
        let mut instance = Instance::open(&backend.binaries, cfg).with_server_variables(vars);
        let started = instance.start().await;
        self.remember(&rec.id, instance);
        started
    }

    /// Whether the service has a database directory to open (a create may have been
    /// interrupted before it made one).
    pub fn exists(&self, id: &str) -> bool {
        self.backend.is_none() || self.root.join(id).join("my.cnf").exists()
    }

    /// A full backup of a running service into `dest`.
    pub async fn backup(&self, id: &str, dest: &Path) -> Result<BackupInfo, MariadbError> {
        if self.backend.is_none() {
            return Ok(BackupInfo {
                binlog_file: "mariadb-bin.000001".into(),
                binlog_position: 4,
                gtid_position: String::new(),
                size_bytes: 0,
            });
        }
        let instance = self.get(id)?;
        let guard = instance.read().await;
        guard.backup(dest).await
    }

    /// Replaces the service's data with the backup in `backup_dir`; `rec` is the service as it
    /// will be afterwards, and `vars` what its server restarts with.
    pub async fn restore(
        &self,
        rec: &ServiceRecord,
        vars: &[(String, String)],
        backup_dir: &Path,
    ) -> Result<(), MariadbError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        let cfg = self.config(backend, rec)?;
        let vars = ServerVariables::new(vars.to_vec())?;
        let instance = self.get(&rec.id)?;
        let mut guard = instance.write().await;
        guard.set_server_variables(vars);
        guard.restore(backup_dir, &cfg).await
    }

    /// Stops the service's mariadbd and removes its directory (a sharing service: removes its
    /// account from the shared server, which stays).
    pub async fn destroy(&self, rec: &ServiceRecord) -> Result<(), MariadbError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        if rec.shared_host.is_some() {
            let alias = self
                .live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&rec.id);
            if let Some(instance) = alias {
                instance.read().await.remove_tenant(&rec.username).await?;
            }
            return Ok(());
        }
        let instance = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&rec.id);
        let instance = match instance {
            // Wait for a running backup to finish before pulling the data away.
            Some(arc) => {
                let lock = arc.write().await;
                drop(lock);
                match Arc::try_unwrap(arc) {
                    Ok(lock) => lock.into_inner(),
                    Err(_) => Instance::open(&backend.binaries, self.config(backend, rec)?),
                }
            }
            None => Instance::open(&backend.binaries, self.config(backend, rec)?),
        };
        instance.destroy().await?;
        match std::fs::remove_dir_all(self.root.join(&rec.id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(MariadbError::Config(format!(
                "removing {}: {e}",
                self.root.join(&rec.id).display()
            ))),
        }
    }

    /// Stops the service's mariadbd cleanly and keeps its data (an emulated outage); [`open`]
    /// starts it again. Stopping a stopped instance does nothing.
    ///
    /// [`open`]: Instances::open
    pub async fn stop(&self, rec: &ServiceRecord) -> Result<(), MariadbError> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        let live = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&rec.id)
            .cloned();
        match live {
            // The write lock waits for a backup in progress to finish.
            Some(instance) => instance.write().await.stop().await,
            // Not opened by this process (an emulator restarted during an outage): a server
            // still running from the directory is found by its pid file.
            None => {
                Instance::open(&backend.binaries, self.config(backend, rec)?)
                    .stop()
                    .await
            }
        }
    }

    /// Stops every instance (emulator shutdown).
    pub async fn stop_all(&self) {
        let all: Vec<(String, Arc<RwLock<Instance>>)> = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Concurrently: each stop mostly waits for a process to exit.
        let mut stops = tokio::task::JoinSet::new();
        for (id, instance) in all {
            stops.spawn(async move {
                if let Err(e) = instance.write().await.stop().await {
                    tracing::warn!("stopping the mariadbd of {id}: {e}");
                }
            });
        }
        while stops.join_next().await.is_some() {}
    }

    /// (service id, pid) of every service's mariadbd alive now (none when API-only), in pid
    /// order: read from the processes themselves (their `--defaults-file` names the service's
    /// directory), so a server is known from the moment it exists. The allowlist proxy relies
    /// on that: a replica's mariadbd starts its IO thread before its start has finished (and
    /// before this process could have recorded it), and that first connection must already
    /// come from the replica's outbound IP.
    pub fn pids(&self) -> Vec<(String, u32)> {
        match &self.backend {
            Some(backend) => running_under(&self.root, &backend.binaries.mariadbd),
            None => Vec::new(),
        }
    }

    /// Whether the service's mariadbd is alive (always true when API-only).
    pub fn is_running(&self, id: &str) -> bool {
        self.backend.is_none() || self.pids().iter().any(|(s, _)| s == id)
    }

    fn get(&self, id: &str) -> Result<Arc<RwLock<Instance>>, MariadbError> {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| MariadbError::Config(format!("service {id} has no running database")))
    }

    fn remember(&self, id: &str, instance: Instance) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), Arc::new(RwLock::new(instance)));
    }

    /// The instance configuration of `rec`. TLS certificates are (re)issued from the CA each
    /// time: cheap, and they always chain to the current `ca.pem`.
    fn config(
        &self,
        backend: &Backend,
        rec: &ServiceRecord,
    ) -> Result<InstanceConfig, MariadbError> {
        let dir = self.root.join(&rec.id);
        let tls = if rec.ssl_enabled {
            Some(
                backend
                    .ca
                    .issue_server_cert(&dir.join("tls"), &[super::FQDN.to_string()])?,
            )
        } else {
            None
        };
        Ok(InstanceConfig {
            dir,
            port: rec.db_port,
            server_id: rec.server_id,
            gtid_domain_id: rec.gtid_domain_id,
            tls,
            admin_user: rec.username.clone(),
            admin_password: rec.password.clone(),
            outbound_ip: rec.outbound_ip.clone(),
            ca_for_replication: Some(backend.ca.cert_pem_path.clone()),
        })
    }
}
