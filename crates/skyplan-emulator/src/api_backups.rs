//! `/skybackup/v1/…`: one-off full backups and restores.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

use skyplan_api::types::{
    Backup, BackupScheduleRequest, BackupScheduleResponse, BackupStatus,
    PagedBackupSchedulesResponse, PagedBackupsResponse, PagedRestoresResponse, RestoreRequest,
    RestoreResponse, RestoreStatus, ServiceStatus,
};

use super::api_error::ApiError;
use super::app::{now, now_rfc3339, App};
use super::body::Body;
use super::store::BackupRecord;
use super::{ids, ops};

type Api<T> = Result<T, ApiError>;

pub(crate) async fn create_schedule(
    State(app): State<Arc<App>>,
    Body(req): Body<BackupScheduleRequest>,
) -> Api<Json<BackupScheduleResponse>> {
    if req.backup_type != "full" {
        return Err(ApiError::bad_request(format!(
            "backup_type {:?} is not supported by the emulator; use \"full\"",
            req.backup_type
        )));
    }
    if req.schedule != "once" {
        return Err(ApiError::bad_request(format!(
            "schedule {:?} is not supported by the emulator; use \"once\" (it runs now)",
            req.schedule
        )));
    }
    let backup_id = ids::hex_id();
    let (schedule, fail) = app.store.update(|s| {
        let svc = known(s, &req.service_id)?;
        if svc.status.is_pending() {
            return Err(ApiError::pending(&svc.id, svc.status.as_str()));
        }
        if svc.status != ServiceStatus::Ready {
            return Err(ApiError::bad_request(format!(
                "service {} is {}; only a ready service can be backed up",
                svc.id, svc.status
            )));
        }
        let (name, provider) = (svc.name.clone(), svc.provider.clone());
        let (user, password) = (svc.username.clone(), svc.password.clone());
        s.counters.schedule_id += 1;
        let created = now_rfc3339();
        let schedule = BackupScheduleResponse {
            id: s.counters.schedule_id,
            cloud_provider: Some(provider.clone()),
            created_at: Some(created.clone()),
            labels: None,
            message: Some(format!("one-off full backup {backup_id} scheduled")),
            schedule: Some("once".into()),
            scheduled_at: Some(created.clone()),
            service_id: req.service_id.clone(),
            service_name: Some(name.clone()),
            status: Some("Scheduled".into()),
            suspended: Some(false),
            backup_type: Some("full".into()),
            updated_at: Some(created),
        };
        s.schedules.push(schedule.clone());
        s.backups.push(BackupRecord {
            backup: Backup {
                id: backup_id.clone(),
                service_id: req.service_id.clone(),
                service_name: name.clone(),
                status: BackupStatus::Pending,
                backup_type: "full".into(),
                method: "mariabackup".into(),
                cloud_provider: Some(provider),
                is_external_storage: Some(false),
                server_pod: Some(format!("{}-mdb-ms-0", req.service_id)),
                ..Backup::default()
            },
            source_username: user,
            source_password: password,
            data_dir: None,
        });
        Ok((schedule, s.take_fail_next(&name)))
    })?;
    let op = ops::backup(app.clone(), backup_id, req.service_id, fail);
    app.spawn_op(op);
    Ok(Json(schedule))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    page: Option<usize>,
    page_size: Option<usize>,
    order: Option<String>,
    service_id: Option<String>,
    status: Option<String>,
}

/// One page of `items` (1-based `page`), and the page count.
fn paginate<T: Clone>(mut items: Vec<T>, q: &PageQuery) -> Api<(Vec<T>, i64, i64)> {
    // Pages count from 1 (the spec's `minimum: 1`); page 0 is refused, not read as page 1.
    let page = q.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::bad_request("page must be 1 or more"));
    }
    let page_size = q.page_size.unwrap_or(100);
    if !(1..=100).contains(&page_size) {
        return Err(ApiError::bad_request("page_size must be between 1 and 100"));
    }
    // Newest first unless asked otherwise, so a new backup is always on the first page.
    match q.order.as_deref() {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order {other:?} must be \"asc\" or \"desc\""
            )))
        }
    }
    let total = items.len();
    let pages = total.div_ceil(page_size);
    let start = ((page - 1) * page_size).min(total);
    let end = (start + page_size).min(total);
    Ok((items[start..end].to_vec(), total as i64, pages as i64))
}

pub(crate) async fn list_backups(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
) -> Api<Json<PagedBackupsResponse>> {
    // The one backup route whose 404 the spec documents: a service_id that names no service
    // (and no backup of a service since deleted).
    if let Some(id) = q.service_id.as_deref() {
        let unknown = app.store.read(|s| {
            s.service(id).is_none() && !s.backups.iter().any(|b| b.backup.service_id == id)
        });
        if unknown {
            return Err(ApiError::service_not_found(id));
        }
    }
    let backups: Vec<Backup> = app.store.read(|s| {
        s.backups
            .iter()
            .map(|b| &b.backup)
            .filter(|b| q.service_id.as_ref().is_none_or(|id| &b.service_id == id))
            .filter(|b| {
                q.status
                    .as_ref()
                    .is_none_or(|st| b.status == BackupStatus::parse(st))
            })
            .cloned()
            .collect()
    });
    let (backups, backups_count, pages_count) = paginate(backups, &q)?;
    Ok(Json(PagedBackupsResponse {
        backups,
        backups_count,
        pages_count,
    }))
}

pub(crate) async fn list_schedules(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
) -> Api<Json<PagedBackupSchedulesResponse>> {
    required_service(&app, &q)?;
    let schedules: Vec<BackupScheduleResponse> = app.store.read(|s| {
        s.schedules
            .iter()
            .filter(|b| q.service_id.as_ref().is_none_or(|id| &b.service_id == id))
            .cloned()
            .collect()
    });
    let (schedules, schedules_count, pages_count) = paginate(schedules, &q)?;
    Ok(Json(PagedBackupSchedulesResponse {
        schedules,
        schedules_count,
        pages_count,
    }))
}

pub(crate) async fn create_restore(
    State(app): State<Arc<App>>,
    Body(req): Body<RestoreRequest>,
) -> Api<Json<RestoreResponse>> {
    let (restore, fail) = app.store.update(|s| {
        let backup = s
            .backup(&req.id)
            .map(|b| b.backup.clone())
            .ok_or_else(|| ApiError::bad_request(format!("backup {} not found", req.id)))?;
        if !backup.is_succeeded() {
            return Err(ApiError::bad_request(format!(
                "backup {} is {}; only a succeeded backup can be restored",
                backup.id, backup.status
            )));
        }
        let target = known(s, &req.service_id)?;
        if target.status.is_pending() {
            return Err(ApiError::pending(&target.id, target.status.as_str()));
        }
        if target.status == ServiceStatus::Stopped {
            return Err(ApiError::bad_request(format!(
                "service {} is stopped; start it before restoring into it",
                target.id
            )));
        }
        if backup.cloud_provider.as_deref() != Some(target.provider.as_str()) {
            return Err(ApiError::bad_request(format!(
                "backup {} was taken on {} and service {} runs on {}: a backup can only be \
                 restored to a service on the same cloud provider",
                backup.id,
                backup
                    .cloud_provider
                    .as_deref()
                    .unwrap_or("an unknown provider"),
                target.id,
                target.provider
            )));
        }
        let name = target.name.clone();
        s.counters.restore_id += 1;
        let restore = RestoreResponse {
            id: s.counters.restore_id,
            backup_id: backup.id.clone(),
            service_id: req.service_id.clone(),
            service_name: Some(name.clone()),
            status: RestoreStatus::Pending,
            bucket: None,
            created_at: Some(now_rfc3339()),
            message: Some("restore scheduled; the service stops and its data is replaced".into()),
            restore_type: Some("full".into()),
        };
        s.restores.push(restore.clone());
        // `require_settled` cannot fail here: checked above.
        let svc = s.require_settled(&req.service_id)?;
        svc.status = ServiceStatus::PendingModifying;
        svc.updated_on = now();
        Ok((restore, s.take_fail_next(&name)))
    })?;
    let op = ops::restore(app.clone(), restore.id, req.id, req.service_id, fail);
    app.spawn_op(op);
    Ok(Json(restore))
}

pub(crate) async fn list_restores(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
) -> Api<Json<PagedRestoresResponse>> {
    required_service(&app, &q)?;
    let restores: Vec<RestoreResponse> = app.store.read(|s| {
        s.restores
            .iter()
            .filter(|r| q.service_id.as_ref().is_none_or(|id| &r.service_id == id))
            .cloned()
            .collect()
    });
    let (restores, restores_count, pages_count) = paginate(restores, &q)?;
    Ok(Json(PagedRestoresResponse {
        restores,
        restores_count,
        pages_count,
    }))
}

pub(crate) async fn get_restore(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Api<Json<RestoreResponse>> {
    let not_found = || ApiError::not_found(format!("restore {id} not found"));
    let num: i64 = id.parse().map_err(|_| not_found())?;
    app.store
        .read(|s| s.restores.iter().find(|r| r.id == num).cloned())
        .map(Json)
        .ok_or_else(not_found)
}

/// `service_id` is a required query parameter of the schedule and restore lists (the full
/// spec): without it SkySQL answers 400, never every service's entries; an unknown id is 404.
/// The service a schedule or restore names. The spec declares 400, not 404, for these routes
/// (only the backups list documents 404), so an unknown service is a bad request here.
fn known<'a>(
    s: &'a super::store::Store,
    id: &str,
) -> Result<&'a super::store::ServiceRecord, ApiError> {
    s.service(id)
        .ok_or_else(|| ApiError::bad_request(format!("service {id} not found")))
}

fn required_service(app: &App, q: &PageQuery) -> Api<()> {
    let Some(id) = q.service_id.as_deref().filter(|id| !id.is_empty()) else {
        return Err(ApiError::bad_request(
            "query parameter service_id is required",
        ));
    };
    app.store.read(|s| known(s, id).map(|_| ()))
}
