//! Running an emulator in this process: load the data directory, recover services, serve the
//! API, announce it in `emulator.json`; and shut it down again.

use std::fs::File;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::app::App;
use super::info::{self, InfoFile, LocalEmulator};
use super::instances::Instances;
use super::options::ServeOptions;
use super::reqlog::ReqLog;
use super::store::StoreFile;
use super::{ops, server, EmulatorError};

/// An emulator serving from this process. Dropping it stops the API and the endpoints but
/// leaves the mariadbd servers running (they outlive the emulator by design); call
/// [`RunningEmulator::shutdown`] to stop them too.
pub struct RunningEmulator {
    info: LocalEmulator,
    app: Arc<App>,
    stop_api: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    /// Held for the emulator's life: one emulator per data directory.
    _lock: File,
}

impl RunningEmulator {
    pub fn info(&self) -> &LocalEmulator {
        &self.info
    }

    /// Pids of the services' mariadbd processes.
    pub fn mariadbd_pids(&self) -> Vec<u32> {
        self.app
            .instances
            .pids()
            .into_iter()
            .map(|(_, pid)| pid)
            .collect()
    }

    /// Stops the API, the operations in flight and the endpoints; with `stop_databases`, also
    /// every mariadbd (a later start restarts them).
    pub async fn shutdown(mut self, stop_databases: bool) {
        if let Some(tx) = self.stop_api.take() {
            let _ = tx.send(());
        }
        self.app.abort_ops();
        self.app.stop_all_proxies().await;
        if stop_databases {
            self.app.instances.stop_all().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.server).await;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.server.abort();
        self.app.abort_ops();
        self.app.drop_all_proxies();
    }
}

/// Starts an emulator for `opts.dir` in this process (on the current tokio runtime).
pub async fn start(opts: ServeOptions) -> Result<RunningEmulator, EmulatorError> {
    opts.validate()?;
    let dir =
        std::path::absolute(&opts.dir).map_err(|e| EmulatorError::io("resolving", &opts.dir, e))?;
    let opts = ServeOptions {
        dir: dir.clone(),
        ..opts
    };
    info::create_data_dir(&dir)?;
    let lock = lock_dir(&dir)?;
    let previous_port = info::read_info(&dir).and_then(|i| port_of(&i.emulator.endpoint));
    let api_key = info::load_or_create_api_key(&dir)?;
    let instance_id = info::load_or_create_instance_id(&dir)?;
    let store = StoreFile::open(&dir)?;
    let instances = if opts.no_mariadb {
        Instances::api_only(&dir)?
    } else {
        Instances::real(&dir)?
    };
    let reqlog = ReqLog::open(&dir)
        .map_err(|e| EmulatorError::io("opening", &dir.join(super::reqlog::FILE_NAME), e))?;
    let ca_cert = instances.ca_cert().to_path_buf();
    let app = App::new(opts.clone(), api_key.clone(), store, instances, reqlog);

    ops::recover(&app).await;

    let listener = bind_api(previous_port).await?;
    let addr = listener.local_addr().map_err(EmulatorError::Listen)?;
    let (stop_api, stopped) = oneshot::channel::<()>();
    let router = server::router(app.clone());
    let server = tokio::spawn(async move {
        let serving = axum::serve(listener, router).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = serving.await {
            tracing::error!("the emulator API stopped: {e}");
        }
    });
    let info = LocalEmulator {
        endpoint: format!("http://{addr}"),
        api_key,
        pid: std::process::id(),
        dir: dir.clone(),
        ca_cert,
        instance_id,
    };
    info::write_info(
        &dir,
        &InfoFile {
            emulator: info.clone(),
            options: opts,
        },
    )?;
    tracing::debug!("emulator serving {} from {}", info.endpoint, dir.display());
    Ok(RunningEmulator {
        info,
        app,
        stop_api: Some(stop_api),
        server,
        _lock: lock,
    })
}

/// Serves until SIGINT or SIGTERM, then shuts down, stopping the databases.
// The serving process's stderr is the daemon's log (`emulator.log`): it has no other printer.
#[allow(clippy::print_stderr)]
pub async fn serve_until_signal(opts: ServeOptions) -> Result<(), EmulatorError> {
    let running = start(opts).await?;
    eprintln!(
        "emulator serving {} (dir {})",
        running.info().endpoint,
        running.info().dir.display()
    );
    wait_for_signal().await;
    eprintln!("emulator shutting down: stopping services' databases");
    running.shutdown(true).await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The API listens on 127.0.0.1, on the previous run's port when it is free (so an endpoint
/// a user exported keeps working), else on any free port.
async fn bind_api(previous: Option<u16>) -> Result<tokio::net::TcpListener, EmulatorError> {
    if let Some(port) = previous {
        if let Ok(l) = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            return Ok(l);
        }
    }
    tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(EmulatorError::Listen)
}

fn port_of(endpoint: &str) -> Option<u16> {
    endpoint.rsplit(':').next()?.parse().ok()
}

/// An exclusive `flock` on `<dir>/emulator.lock`, released when the process exits.
fn lock_dir(dir: &std::path::Path) -> Result<File, EmulatorError> {
    let path = dir.join(info::LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| EmulatorError::io("opening", &path, e))?;
    // flock(2): held while the file is open, released by the kernel when the process exits.
    if file.try_lock().is_err() {
        return Err(EmulatorError::AlreadyServing {
            dir: dir.to_path_buf(),
            pid: info::read_info(dir).map(|i| i.emulator.pid),
        });
    }
    Ok(file)
}
