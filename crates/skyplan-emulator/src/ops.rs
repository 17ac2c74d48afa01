//! Long operations: what happens between a `pending_*` status and `ready` (or `failed`).
//!
//! Each runs in the background and takes at least `--op-seconds`, however fast the real work
//! was. A fail-next mark (admin API) makes the operation skip its work and end `failed`.
//! Statuses are persisted at each step, so an emulator restart finds every operation either
//! finished or still marked pending, and [`recover`] settles the latter.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use skyplan_api::types::{BackupStatus, RestoreStatus, ServiceStatus};

use super::app::{now, now_rfc3339, App};
use super::store::ServiceRecord;

const INJECTED: &str = "injected failure (the emulator's fail-next was set for this service)";

/// Sleeps until `--op-seconds` have passed since `start`.
async fn pace(app: &App, start: Instant) {
    let left = app.opts.op_duration().saturating_sub(start.elapsed());
    tokio::time::sleep(left).await;
}

fn record(app: &App, id: &str) -> Option<ServiceRecord> {
    app.store.read(|s| s.service(id).cloned())
}

/// Ends a provisioning operation: `ready`, or `failed` with the reason in `errors`.
fn settle(app: &App, id: &str, result: Result<(), String>) {
    let update = app.store.update(|s| {
        if let Some(svc) = s.service_mut(id) {
            svc.updated_on = now();
            match &result {
                Ok(()) => {
                    svc.status = ServiceStatus::Ready;
                    svc.errors.clear();
                }
                Err(reason) => {
                    svc.status = ServiceStatus::Failed;
                    svc.errors = vec![reason.clone()];
                }
            }
        }
        Ok(())
    });
    if let Err(e) = update {
        tracing::error!("recording the end of an operation on {id}: {}", e.message);
    }
    if let Err(reason) = result {
        tracing::warn!("operation on {id} failed: {reason}");
    }
}

/// pending_create → ready: creates and starts the service's mariadbd.
pub(crate) async fn create(app: Arc<App>, id: String, fail: bool) {
    let start = Instant::now();
    let result = if fail {
        Err(INJECTED.to_string())
    } else {
        match create_database(&app, &id).await {
            Some(result) => result,
            // Deleted meanwhile.
            None => return,
        }
    };
    pace(&app, start).await;
    settle(&app, &id, result);
}

/// Creates the database of service `id` (`None` once the service is gone).
async fn create_database(app: &App, id: &str) -> Option<Result<(), String>> {
    on_a_free_port(app, id, true, |rec| async move {
        let vars = server_variables(app, &rec);
        app.instances.create(&rec, &vars).await
    })
    .await
}

/// Starts (or adopts) the database of service `id` with its data (`None` once the service is
/// gone): after a stop, an outage or an emulator restart.
pub(crate) async fn open_database(app: &App, id: &str) -> Option<Result<(), String>> {
    on_a_free_port(app, id, false, |rec| async move {
        let vars = server_variables(app, &rec);
        app.instances.open(&rec, &vars).await
    })
    .await
}

/// What `rec`'s mariadbd starts with from its attached custom configuration, read afresh at
/// every start (create, start, restore, recovery), so the values in force when it starts are
/// the ones it gets.
fn server_variables(app: &App, rec: &ServiceRecord) -> Vec<(String, String)> {
    let mut vars = app.store.read(|s| super::configs::server_variables(s, rec));
    // A shared server (`--shared-mariadbd`) takes the sessions of every service on it.
    if app.opts.shared_mariadbd.is_some() && rec.shared_host.is_none() {
        vars.push(("max_connections".into(), SHARED_MAX_CONNECTIONS.into()));
    }
    vars
}

/// `max_connections` of a server that services share.
const SHARED_MAX_CONNECTIONS: &str = "4000";

/// Runs `start` (a create or an open of the service's mariadbd). A port taken between its
/// choice and mariadbd's bind (see `ports`), or while the database was down, is not the
/// service's failure: the service gets another port (the proxy follows the store) and
/// `start` runs again, a few times; `fresh`: a half-made database is removed first.
async fn on_a_free_port<F, Fut>(
    app: &App,
    id: &str,
    fresh: bool,
    start: F,
) -> Option<Result<(), String>>
where
    F: Fn(ServiceRecord) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::mariadb::MariadbError>>,
{
    const TRIES: usize = 3;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let rec = record(app, id)?;
        let port = rec.db_port;
        let e = match start(rec.clone()).await {
            Ok(()) => return Some(Ok(())),
            Err(e) if attempt < TRIES && super::ports::port_was_taken(&e) => e,
            Err(e) => return Some(Err(e.to_string())),
        };
        tracing::warn!("port {port} of {id} was taken ({e}); starting it on another");
        if fresh {
            let _ = app.instances.destroy(&rec).await;
        }
        if let Err(e) = move_to_a_free_port(app, id) {
            return Some(Err(e));
        }
    }
}

/// Gives service `id` another free database port, recorded in the store (which the proxy
/// reads for every connection).
fn move_to_a_free_port(app: &App, id: &str) -> Result<u16, String> {
    let port = super::ports::db_port().map_err(|e| format!("choosing another port: {e}"))?;
    app.store
        .update(|s| {
            if let Some(svc) = s.service_mut(id) {
                svc.db_port = port;
            }
            Ok(())
        })
        .map_err(|e| format!("recording another port: {}", e.message))?;
    Ok(port)
}

/// pending_modifying → ready after a size or storage change (nothing real to resize).
pub(crate) async fn modify(app: Arc<App>, id: String, fail: bool) {
    let start = Instant::now();
    pace(&app, start).await;
    settle(&app, &id, if fail { Err(INJECTED.into()) } else { Ok(()) });
}

/// pending_start → ready (the database started again with its data), pending_stop → stopped
/// (the database stopped cleanly). A failure leaves the service `failed`, as SkySQL does.
pub(crate) async fn power(app: Arc<App>, id: String, active: bool, fail: bool) {
    let start = Instant::now();
    let Some(rec) = record(&app, &id) else {
        return;
    };
    let result = match (fail, active) {
        (true, _) => Err(INJECTED.to_string()),
        (false, true) => open_database(&app, &id)
            .await
            .unwrap_or_else(|| Err("the service disappeared".into())),
        (false, false) => app.instances.stop(&rec).await.map_err(|e| e.to_string()),
    };
    pace(&app, start).await;
    match result {
        Ok(()) if !active => set_stopped(&app, &id),
        result => settle(&app, &id, result),
    }
}

fn set_stopped(app: &App, id: &str) {
    let update = app.store.update(|s| {
        if let Some(svc) = s.service_mut(id) {
            svc.status = ServiceStatus::Stopped;
            svc.updated_on = now();
            svc.errors.clear();
        }
        Ok(())
    });
    if let Err(e) = update {
        tracing::error!("recording the stop of {id}: {}", e.message);
    }
}

/// pending_delete → gone: stops the proxy and mariadbd, removes the data, then the record
/// (GET answers 404 from then on).
pub(crate) async fn delete(app: Arc<App>, id: String, fail: bool) {
    let start = Instant::now();
    let Some(rec) = record(&app, &id) else {
        return;
    };
    if fail {
        pace(&app, start).await;
        return settle(&app, &id, Err(INJECTED.into()));
    }
    app.stop_proxy(&id).await;
    let destroyed = app.instances.destroy(&rec).await;
    pace(&app, start).await;
    if let Err(e) = destroyed {
        return settle(&app, &id, Err(format!("deleting the database: {e}")));
    }
    let removed = app.store.update(|s| {
        s.services.retain(|svc| svc.id != id);
        Ok(())
    });
    if let Err(e) = removed {
        tracing::error!("removing {id} from the store: {}", e.message);
    }
}

/// A one-off full backup: Pending → Running → Succeeded (or Failed).
pub(crate) async fn backup(app: Arc<App>, backup_id: String, service_id: String, fail: bool) {
    let start = Instant::now();
    let dest = app.dir.join("backups").join(&backup_id);
    let _ = app.store.update(|s| {
        if let Some(b) = s.backup_mut(&backup_id) {
            b.backup.status = BackupStatus::Running;
            b.backup.start_time = Some(now_rfc3339());
        }
        Ok(())
    });
    let result = if fail {
        Err(INJECTED.to_string())
    } else {
        match std::fs::create_dir_all(dest.parent().unwrap_or(&app.dir)) {
            Ok(()) => app
                .instances
                .backup(&service_id, &dest)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("creating the backup directory: {e}")),
        }
    };
    pace(&app, start).await;
    let api_only = app.instances.is_api_only();
    let _ = app.store.update(|s| {
        let Some(b) = s.backup_mut(&backup_id) else {
            return Ok(());
        };
        b.backup.end_time = Some(now_rfc3339());
        match &result {
            Ok(info) => {
                b.backup.status = BackupStatus::Succeeded;
                b.backup.binlog_file = Some(info.binlog_file.clone());
                b.backup.binlog_position = Some(info.binlog_position.to_string());
                b.backup.binlog_gtid_position = Some(info.gtid_position.clone());
                let bytes = i64::try_from(info.size_bytes).unwrap_or(i64::MAX);
                b.backup.storage_bytes = Some(bytes);
                b.backup.disk_size_bytes = Some(bytes);
                b.backup.disk_size = Some(human_size(info.size_bytes));
                b.data_dir = (!api_only).then(|| dest.clone());
            }
            Err(_) => b.backup.status = BackupStatus::Failed,
        }
        Ok(())
    });
    if let Err(reason) = result {
        tracing::warn!("backup {backup_id} of {service_id} failed: {reason}");
        let _ = std::fs::remove_dir_all(&dest);
    }
}

/// Restores a backup into a service: the target stops, its data is replaced, and afterwards it
/// accepts the backup source's credentials only.
pub(crate) async fn restore(
    app: Arc<App>,
    restore_id: i64,
    backup_id: String,
    target: String,
    fail: bool,
) {
    let start = Instant::now();
    set_restore_status(&app, restore_id, RestoreStatus::Running, None);
    let source = app.store.read(|s| {
        s.backup(&backup_id).map(|b| {
            (
                b.source_username.clone(),
                b.source_password.clone(),
                b.data_dir.clone(),
            )
        })
    });
    let result = match (fail, source, record(&app, &target)) {
        (true, _, _) => Err(INJECTED.to_string()),
        (false, Some((user, password, dir)), Some(mut rec)) => {
            rec.username = user.clone();
            rec.password = password.clone();
            run_restore(&app, &rec, dir)
                .await
                .map(|()| (user, password))
        }
        _ => Err("the backup or the target service disappeared".to_string()),
    };
    pace(&app, start).await;
    match result {
        Ok((user, password)) => {
            let _ = app.store.update(|s| {
                if let Some(svc) = s.service_mut(&target) {
                    svc.username = user;
                    svc.password = password;
                }
                Ok(())
            });
            settle(&app, &target, Ok(()));
            set_restore_status(
                &app,
                restore_id,
                RestoreStatus::Succeeded,
                Some("restore completed".into()),
            );
        }
        Err(reason) => {
            settle(&app, &target, Err(format!("restore failed: {reason}")));
            set_restore_status(&app, restore_id, RestoreStatus::Failed, Some(reason));
        }
    }
}

async fn run_restore(app: &App, rec: &ServiceRecord, dir: Option<PathBuf>) -> Result<(), String> {
    if app.instances.is_api_only() {
        return Ok(());
    }
    let dir = dir.ok_or("the backup has no data (it was taken by an API-only emulator)")?;
    let vars = server_variables(app, rec);
    match app.instances.restore(rec, &vars, &dir).await {
        // The data is in place; only the restart found the port taken meanwhile (see
        // `ports`): start it on another one.
        Err(e) if super::ports::port_was_taken(&e) => {
            tracing::warn!(
                "port {} of {} was taken ({e}); starting it on another",
                rec.db_port,
                rec.id
            );
            let port = move_to_a_free_port(app, &rec.id)?;
            let moved = ServiceRecord {
                db_port: port,
                ..rec.clone()
            };
            app.instances
                .open(&moved, &vars)
                .await
                .map_err(|e| e.to_string())
        }
        r => r.map_err(|e| e.to_string()),
    }
}

fn set_restore_status(app: &App, id: i64, status: RestoreStatus, message: Option<String>) {
    let _ = app.store.update(|s| {
        if let Some(r) = s.restore_mut(id) {
            r.status = status;
            if message.is_some() {
                r.message = message;
            }
        }
        Ok(())
    });
}

/// After an emulator restart: settles operations the previous process left pending, restarts
/// (or adopts) every service's mariadbd, and reopens every endpoint.
pub(crate) async fn recover(app: &Arc<App>) {
    const INTERRUPTED: &str = "interrupted by an emulator restart";
    let _ = app.store.update(|s| {
        for b in s.backups.iter_mut() {
            if matches!(
                b.backup.status,
                BackupStatus::Pending | BackupStatus::Running
            ) {
                b.backup.status = BackupStatus::Failed;
                b.backup.end_time = Some(now_rfc3339());
            }
        }
        let mut restoring = Vec::new();
        for r in s.restores.iter_mut() {
            if matches!(r.status, RestoreStatus::Pending | RestoreStatus::Running) {
                r.status = RestoreStatus::Failed;
                r.message = Some(INTERRUPTED.into());
                restoring.push(r.service_id.clone());
            }
        }
        for svc in s.services.iter_mut() {
            if restoring.contains(&svc.id) {
                svc.status = ServiceStatus::Failed;
                svc.errors = vec![format!("restore {INTERRUPTED}")];
            }
        }
        Ok(())
    });
    let services = app.store.read(|s| s.services.clone());
    let mut work = tokio::task::JoinSet::new();
    for rec in services {
        let app = app.clone();
        work.spawn(async move { recover_service(app, rec).await });
    }
    while work.join_next().await.is_some() {}
}

async fn recover_service(app: Arc<App>, rec: ServiceRecord) {
    if !app.instances.is_api_only() {
        match super::proxy::bind(rec.public_port).await {
            Ok(listeners) => {
                let port = listeners
                    .first()
                    .and_then(|l| l.local_addr().ok())
                    .map_or(rec.public_port, |a| a.port());
                if port != rec.public_port {
                    tracing::warn!(
                        "port {} of {} is taken; its endpoint moved to {port}",
                        rec.public_port,
                        rec.id
                    );
                    let _ = app.store.update(|s| {
                        if let Some(svc) = s.service_mut(&rec.id) {
                            svc.public_port = port;
                        }
                        Ok(())
                    });
                }
                app.start_proxy(&rec.id, listeners);
            }
            Err(e) => tracing::error!("cannot reopen the endpoint of {}: {e}", rec.id),
        }
    }
    let id = rec.id.clone();
    // An emulated outage outlives a restart: the database stays down until the outage ends
    // (stopped again if the previous process died before it had stopped it). The endpoint
    // above is reopened all the same, so the service keeps its port. (No operation can be
    // pending during an outage: starting one is refused, and so is an outage during one.)
    if rec.outage.is_some() && !rec.status.is_pending() {
        if app.instances.exists(&id) {
            if let Err(e) = app.instances.stop(&rec).await {
                tracing::error!("stopping the database of {id} (in an outage): {e}");
            }
        }
        return;
    }
    match rec.status.clone() {
        ServiceStatus::PendingDelete => delete(app, id, false).await,
        // Stopped stays stopped (a server left running by a dead emulator is stopped again);
        // a stop or start the previous process left half done is carried out again.
        ServiceStatus::Stopped | ServiceStatus::PendingStop if app.instances.exists(&id) => {
            let stopping = rec.status == ServiceStatus::PendingStop;
            match app.instances.stop(&rec).await {
                Ok(()) if stopping => set_stopped(&app, &id),
                Ok(()) => {}
                Err(e) => settle(&app, &id, Err(format!("stopping the database: {e}"))),
            }
        }
        ServiceStatus::PendingCreate => {
            // A half-made database is worth nothing: start it over.
            if app.instances.exists(&id) {
                let _ = app.instances.destroy(&rec).await;
            }
            create(app, id, false).await
        }
        _ if !app.instances.exists(&id) => {}
        status => {
            let opened = open_database(&app, &id)
                .await
                .unwrap_or_else(|| Err("the service disappeared".into()));
            if status.is_pending() {
                settle(&app, &id, opened);
            } else if let Err(e) = opened {
                settle(&app, &id, Err(format!("restarting the database: {e}")));
            }
        }
    }
}

/// `1.5 GB`-style sizes, as the backup API shows `disk_size`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(512), "512 B");
        assert_eq!(super::human_size(3 * 1024 * 1024 / 2), "1.5 MB");
    }
}
