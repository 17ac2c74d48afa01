//! Emulated region outages, for tests of what skyplan (and an application) does when a
//! region stops answering.
//!
//! A service in an outage has its `mariadbd` stopped cleanly (data kept on disk, so SQL
//! connections fail), and every SkySQL request that names it answers as an unreachable region
//! would: `503` at once ([`OutageMode::Errors`]) or `504` after [`OUTAGE_TIMEOUT`]
//! ([`OutageMode::Timeouts`], so a client with a shorter timeout sees a timeout). The service
//! list leaves it out. Ending the outage starts the same `mariadbd` on the same port with its
//! data and the service answers again with the status it had.
//!
//! The mark lives in the store ([`ServiceRecord::outage`]), so it survives an emulator restart:
//! a restarted emulator leaves that `mariadbd` down (see `ops::recover`).
//!
//! The answer is given in one place, [`gate`], a route layer over every SkySQL route, rather
//! than in each handler: a route added later is covered without anyone remembering to check,
//! and the timeout (an async wait) cannot live in the synchronous store lookups the handlers
//! share.

use axum::body::Body;
use axum::extract::{MatchedPath, Query, RawPathParams, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

use super::api_error::ApiError;
use super::app::App;
use super::store::{ServiceRecord, Store};

/// How long a request naming a service in a `timeouts` outage hangs before its `504`: longer
/// than any sensible client timeout, as a silent region is.
pub const OUTAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a request body the gate reads to find a `service_id` (axum's own default limit
/// for JSON bodies, so the gate refuses nothing the handler would have accepted).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// How an unreachable region answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutageMode {
    /// `503 Service Unavailable` at once.
    #[default]
    Errors,
    /// No answer for [`OUTAGE_TIMEOUT`], then `504 Gateway Timeout`.
    Timeouts,
}

impl OutageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OutageMode::Errors => "errors",
            OutageMode::Timeouts => "timeouts",
        }
    }
}

/// The service `key` names: its id, else its name (ids first, so a name can never hide an id).
fn resolve<'a>(s: &'a Store, key: &str) -> Option<&'a ServiceRecord> {
    s.service(key)
        .or_else(|| s.services.iter().find(|svc| svc.name == key))
}

/// Starts (or changes the mode of) the outage of the service `key` (id or name); returns its
/// id. Refused (409) while an operation of the service is running: that operation may start
/// the database again behind the outage's back.
pub async fn start(app: &App, key: &str, mode: OutageMode) -> Result<String, ApiError> {
    // One outage change at a time: a start and an end racing could leave the mark and the
    // process disagreeing.
    let _serial = app.outage_lock.lock().await;
    let (rec, before) = app.store.update(|s| {
        let id = resolve(s, key)
            .map(|svc| svc.id.clone())
            .ok_or_else(|| ApiError::service_not_found(key))?;
        let svc = s
            .service_mut(&id)
            .ok_or_else(|| ApiError::service_not_found(key))?;
        if svc.outage.is_none() && svc.status.is_pending() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "service {id} is {}: start the outage once its operation has finished",
                    svc.status
                ),
            ));
        }
        let before = svc.outage.replace(mode);
        Ok((svc.clone(), before))
    })?;
    // The mark is persisted first: from now on the API answers as unreachable, and an emulator
    // restarted before the stop below completes does not start this mariadbd again.
    if let Err(e) = app.instances.stop(&rec).await {
        let _ = app.store.update(|s| {
            if let Some(svc) = s.service_mut(&rec.id) {
                svc.outage = before;
            }
            Ok(())
        });
        return Err(ApiError::internal(format!(
            "stopping the database of {} for the outage: {e}",
            rec.id
        )));
    }
    tracing::info!("service {}: emulated outage ({})", rec.id, mode.as_str());
    Ok(rec.id)
}

/// Ends the outage of the service `key` (id or name), if it has one: its mariadbd starts again
/// on the same port with its data, then the API answers for it again. Returns its id. When the
/// database does not come back, the outage goes on (500) and the call can be retried.
/// Ends the outage of `key`: its id, and whether it was in one.
pub async fn end(app: &App, key: &str) -> Result<(String, bool), ApiError> {
    let _serial = app.outage_lock.lock().await;
    let rec = app
        .store
        .read(|s| resolve(s, key).cloned())
        .ok_or_else(|| ApiError::service_not_found(key))?;
    if rec.outage.is_none() {
        return Ok((rec.id, false));
    }
    // The database first, the mark last: the API must not answer for a service whose
    // database is still down, and a restart in between stops the database again.
    if app.instances.exists(&rec.id) {
        let opened = super::ops::open_database(app, &rec.id)
            .await
            .unwrap_or_else(|| Err("the service disappeared".into()));
        if let Err(e) = opened {
            let _ = app.instances.stop(&rec).await;
            return Err(ApiError::internal(format!(
                "restarting the database of {} after the outage: {e}; the outage goes on",
                rec.id
            )));
        }
    }
    app.store.update(|s| {
        if let Some(svc) = s.service_mut(&rec.id) {
            svc.outage = None;
        }
        Ok(())
    })?;
    tracing::info!("service {}: emulated outage ended", rec.id);
    Ok((rec.id, true))
}

#[derive(Deserialize)]
struct ServiceIdQuery {
    service_id: Option<String>,
}

/// Route layer over every SkySQL route: a request naming a service in an outage gets the
/// unreachable region's answer instead of reaching its handler. A request names a service
/// through its `/provisioning/v1/services/{service_id}…` path, a `service_id` query parameter
/// or JSON body field (backups, schedules, restores), or the restore `/skybackup/v1/restores/{id}`
/// it reads. Runs after the API-key check, so only an authenticated caller learns anything.
pub async fn gate(
    State(app): State<Arc<App>>,
    params: Option<RawPathParams>,
    req: Request,
    next: Next,
) -> Response {
    let (req, named) = match named_service(&app, params.as_ref(), req).await {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let outage = named.and_then(|id| {
        app.store
            .read(|s| s.service(&id).and_then(|svc| svc.outage))
            .map(|mode| (id, mode))
    });
    match outage {
        None => next.run(req).await,
        Some((id, OutageMode::Errors)) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("service {id} is unreachable: its region does not answer (emulated outage)"),
        )
        .into_response(),
        Some((id, OutageMode::Timeouts)) => {
            tokio::time::sleep(OUTAGE_TIMEOUT).await;
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "service {id}: its region did not answer within {} s (emulated outage)",
                    OUTAGE_TIMEOUT.as_secs()
                ),
            )
            .into_response()
        }
    }
}

/// The service id the request names, if any, and the request to pass on (rebuilt when its
/// body had to be read).
async fn named_service(
    app: &App,
    params: Option<&RawPathParams>,
    req: Request,
) -> Result<(Request, Option<String>), ApiError> {
    let param = |name: &str| {
        params.and_then(|p| {
            p.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    };
    // Every per-service provisioning route captures `:service_id` (see `server::router`).
    if let Some(id) = param("service_id") {
        return Ok((req, Some(id)));
    }
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    if !matched.starts_with("/skybackup/") {
        return Ok((req, None));
    }
    if matched == "/skybackup/v1/restores/:id" {
        let target = param("id")
            .and_then(|id| id.parse::<i64>().ok())
            .and_then(|id| {
                app.store.read(|s| {
                    s.restores
                        .iter()
                        .find(|r| r.id == id)
                        .map(|r| r.service_id.clone())
                })
            });
        return Ok((req, target));
    }
    if let Ok(Query(q)) = Query::<ServiceIdQuery>::try_from_uri(req.uri()) {
        if q.service_id.is_some() {
            return Ok((req, q.service_id));
        }
    }
    if req.method() != Method::POST {
        return Ok((req, None));
    }
    // A backup schedule or a restore names its service in the JSON body: read it, look, and
    // hand the same bytes on. A body that is not JSON names nothing; its handler rejects it.
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body could not be read whole (at most {BODY_LIMIT} bytes)"),
        )
    })?;
    let id = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("service_id")?.as_str().map(str::to_string));
    Ok((Request::from_parts(parts, Body::from(bytes)), id))
}
