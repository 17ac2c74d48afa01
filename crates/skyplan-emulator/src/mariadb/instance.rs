//! One emulated server: create, start, stop, destroy. Backup and restore are in `backup.rs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::admin::{self, Admin};
use super::config::{render_my_cnf, InstanceConfig, Layout, ServerVariables};
use super::replication_secret::ReplicationSecret;
use super::{fsutil, process, Binaries, MariadbError};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A MariaDB server owned by the emulator. Dropping an `Instance` does NOT stop the server:
/// servers outlive the emulator process by design (see `process.rs`).
#[derive(Debug)]
pub struct Instance {
    pub(crate) binaries: Binaries,
    pub(crate) cfg: InstanceConfig,
    pub(crate) layout: Layout,
    /// Written into my.cnf at every start (see [`ServerVariables`]).
    pub(crate) vars: ServerVariables,
}

impl Instance {
    /// Gives another service an admin account on this server: the emulator's shared mode
    /// (`--shared-mariadbd`), where a benchmark's many services sit behind a few servers.
    pub async fn add_tenant(&self, user: &str, password: &str) -> Result<(), MariadbError> {
        let mut admin = Admin::connect(&self.layout).await?;
        let made = admin.create_admin_user(user, password).await;
        admin.close().await;
        made
    }

    /// Removes a tenant's account ([`Instance::add_tenant`]); the server and its data stay.
    pub async fn remove_tenant(&self, user: &str) -> Result<(), MariadbError> {
        let mut admin = Admin::connect(&self.layout).await?;
        let dropped = admin.drop_admin_user(user).await;
        admin.close().await;
        dropped
    }

    /// Initialises a new data directory, starts the server, creates the admin user and
    /// installs the `sky` schema. Leaves the server running. Fails if `cfg.dir` already holds
    /// a data directory.
    pub async fn create(
        binaries: &Binaries,
        cfg: InstanceConfig,
    ) -> Result<Instance, MariadbError> {
        Instance::create_with_variables(binaries, cfg, ServerVariables::default()).await
    }

    /// [`Instance::create`], with the server variables of a custom configuration in my.cnf from
    /// the first start on.
    pub async fn create_with_variables(
        binaries: &Binaries,
        cfg: InstanceConfig,
        vars: ServerVariables,
    ) -> Result<Instance, MariadbError> {
        cfg.validate()?;
        let mut instance = Instance::open(binaries, cfg).with_server_variables(vars);
        let layout = instance.layout.clone();
        if layout.datadir.exists() {
            return Err(MariadbError::Config(format!(
                "{} already exists; open the instance instead of creating it",
                layout.datadir.display()
            )));
        }
        fsutil::create_dir_private(&layout.dir)?;
        match instance.initialise().await {
            Ok(()) => Ok(instance),
            Err(e) => {
                // Leave no half-made server behind, so that a retried create starts afresh.
                // Other files in the directory (e.g. the caller's TLS files) stay.
                let _ = process::stop(&layout).await;
                let _ = std::fs::remove_dir_all(&layout.datadir);
                let _ = std::fs::remove_file(&layout.my_cnf);
                Err(e)
            }
        }
    }

    async fn initialise(&mut self) -> Result<(), MariadbError> {
        // The system tables are bootstrapped under the emulator's own settings only: configured
        // values (read_only, lower_case_table_names, a large buffer pool) are for the service's
        // server, which `start` writes them in for.
        let vars = std::mem::take(&mut self.vars);
        let bootstrapped = async {
            self.write_my_cnf()?;
            self.install_db().await
        }
        .await;
        self.vars = vars;
        bootstrapped?;
        ReplicationSecret::load_or_create(&self.layout)?;
        self.start().await?;
        let mut admin = Admin::connect(&self.layout).await?;
        let result = async {
            admin.lock_down_root().await?;
            admin
                .create_admin_user(&self.cfg.admin_user, &self.cfg.admin_password)
                .await
        }
        .await;
        admin.close().await;
        result
    }

    /// An existing instance directory (e.g. after an emulator restart). Does not start it.
    pub fn open(binaries: &Binaries, cfg: InstanceConfig) -> Instance {
        let layout = Layout::new(&cfg.dir);
        Instance {
            binaries: binaries.clone(),
            cfg,
            layout,
            vars: ServerVariables::default(),
        }
    }

    /// The server variables my.cnf gets at the next start. A running server is not changed
    /// (and [`Instance::start`] adopts a running one as it is).
    pub fn with_server_variables(mut self, vars: ServerVariables) -> Instance {
        self.vars = vars;
        self
    }

    /// See [`Instance::with_server_variables`].
    pub fn set_server_variables(&mut self, vars: ServerVariables) {
        self.vars = vars;
    }

    /// Starts mariadbd (unless it is already running), waits until it accepts connections
    /// (60 s at most), then refreshes the `sky` schema and this service's sky.settings row.
    pub async fn start(&mut self) -> Result<(), MariadbError> {
        self.cfg.validate()?;
        let pid = match process::live_pid(&self.layout) {
            Some(pid) => pid,
            None => {
                self.write_my_cnf()?;
                fsutil::create_dir_private(&self.layout.tmpdir)?;
                // A socket left by a killed server would make the readiness probe fail oddly.
                let _ = std::fs::remove_file(&self.layout.socket);
                process::spawn(&self.binaries.mariadbd, &self.layout)?
            }
        };
        self.wait_ready(pid).await?;
        let secret = ReplicationSecret::load_or_create(&self.layout)?;
        let mut admin = Admin::connect(&self.layout).await?;
        let result = async {
            admin.install_sky_schema().await?;
            admin.write_settings(&self.cfg, &secret).await
        }
        .await;
        admin.close().await;
        result
    }

    /// Graceful shutdown: SIGTERM, then SIGKILL after 20 s. A stopped instance is a no-op.
    pub async fn stop(&mut self) -> Result<(), MariadbError> {
        process::stop(&self.layout).await
    }

    /// The live server's pid, from the pid file.
    pub fn pid(&self) -> Option<u32> {
        process::live_pid(&self.layout)
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Stops the server and removes the whole instance directory.
    pub async fn destroy(mut self) -> Result<(), MariadbError> {
        self.stop().await?;
        match std::fs::remove_dir_all(&self.layout.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(MariadbError::io("removing", &self.layout.dir, e)),
        }
    }

    /// SIGKILL without waiting or cleaning up: for Drop guards (tests, crash paths).
    pub fn kill_now(&self) {
        process::kill_now(&self.layout);
    }

    /// The root-only unix socket (in the instance directory).
    pub fn socket_path(&self) -> PathBuf {
        self.layout.socket.clone()
    }

    pub fn config(&self) -> &InstanceConfig {
        &self.cfg
    }

    pub fn dir(&self) -> &Path {
        &self.layout.dir
    }

    /// mariadbd's error log, for diagnostics.
    pub fn error_log_path(&self) -> PathBuf {
        self.layout.error_log.clone()
    }

    pub(crate) fn write_my_cnf(&self) -> Result<(), MariadbError> {
        let text = render_my_cnf(&self.cfg, &self.vars, &self.layout, running_as_root());
        fsutil::write_atomic(&self.layout.my_cnf, text.as_bytes())
    }

    async fn install_db(&self) -> Result<(), MariadbError> {
        fsutil::create_dir_private(&self.layout.tmpdir)?;
        let mut command = tokio::process::Command::new(&self.binaries.install_db);
        command
            .arg(self.layout.defaults_arg())
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .current_dir(&self.layout.dir);
        run_tool(command, "mariadb-install-db").await
    }

    async fn wait_ready(&self, pid: u32) -> Result<(), MariadbError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if !process::is_ours(pid, &self.layout) {
                return Err(self.start_failed("mariadbd exited during startup"));
            }
            if let Ok(conn) = admin::try_connect(&self.layout).await {
                let _ = conn.disconnect().await;
                return Ok(());
            }
            if Instant::now() >= deadline {
                // Do not leave a half-started server behind.
                process::kill_now(&self.layout);
                return Err(self.start_failed("not accepting connections after 60 s; killed it"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn start_failed(&self, reason: &str) -> MariadbError {
        MariadbError::StartFailed {
            dir: self.layout.dir.clone(),
            reason: reason.to_string(),
            log_tail: process::log_tail(&self.layout),
        }
    }
}

pub(crate) fn running_as_root() -> bool {
    skyplan_os::is_root()
}

/// Runs a MariaDB tool to completion; on failure the error holds the tail of its output.
pub(crate) async fn run_tool(
    mut command: tokio::process::Command,
    name: &str,
) -> Result<(), MariadbError> {
    // The tools get only what they need of the daemon's environment (already cleared).
    command
        .env_clear()
        .envs(skyplan_os::inherited_env())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = command
        .output()
        .await
        .map_err(|e| MariadbError::io("running", name, e))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    Err(MariadbError::Command {
        command: name.to_string(),
        status: output.status.to_string(),
        output_tail: lines[lines.len().saturating_sub(25)..].join("\n"),
    })
}
