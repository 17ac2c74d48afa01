//! The emulator's own endpoints, under `/emulator/v1/` (not SkySQL paths; never faulted).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

use super::api_error::ApiError;
use super::app::App;
use super::outage::{self, OutageMode};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientRegion {
    region: String,
}

/// `PUT /emulator/v1/client-region` `{"region": …}`: where the operator (skyplan) sits under a
/// latency profile, sent by skyplan with the first region of the topology it applies; a
/// `--client-region` given at start wins. Answers the region in force and whether it was
/// pinned at start.
pub(crate) async fn set_client_region(
    State(app): State<Arc<App>>,
    Json(body): Json<ClientRegion>,
) -> Result<Json<Value>, ApiError> {
    if super::latency::site_known(&body.region).is_none() {
        return Err(ApiError::bad_request(format!(
            "region {:?} is not a region of the catalog",
            body.region
        )));
    }
    let in_force = app.report_client_region(&body.region);
    Ok(Json(json!({
        "client_region": in_force,
        "pinned": app.opts.latency.client_region.is_some(),
    })))
}

/// `POST /emulator/v1/services/{id or name}/fail-next`: the next long operation (create, size,
/// storage, delete, backup, restore) of that service ends `failed`. A name that no service has
/// yet marks the service that will be created with that name.
pub(crate) async fn fail_next(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = app.store.update(|s| {
        let name = s
            .services
            .iter()
            .find(|svc| svc.id == key || svc.name == key)
            .map(|svc| svc.name.clone())
            .unwrap_or_else(|| key.clone());
        s.fail_next.insert(name.clone());
        Ok(name)
    })?;
    Ok(Json(json!({ "service_name": name, "fail_next": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutageRequest {
    #[serde(default)]
    mode: OutageMode,
}

/// `POST /emulator/v1/services/{id or name}/outage`, body `{"mode": "errors" | "timeouts"}`
/// (optional; default `errors`): the service's region stops answering (see [`outage`]).
/// Starting it again changes the mode. 404 for an unknown service, 409 while the service has
/// an operation running.
pub(crate) async fn start_outage(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // The body is optional, so it is parsed here rather than by `Json` (which requires one).
    let mode = if body.iter().all(u8::is_ascii_whitespace) {
        OutageMode::default()
    } else {
        serde_json::from_slice::<OutageRequest>(&body)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "invalid outage request ({e}); expected {{\"mode\": \"errors\" | \"timeouts\"}}"
                ))
            })?
            .mode
    };
    let id = outage::start(&app, &key, mode).await?;
    Ok(Json(
        json!({ "service_id": id, "outage": true, "mode": mode.as_str() }),
    ))
}

/// `DELETE /emulator/v1/services/{id or name}/outage`: the outage ends; the service's database
/// is back with its data and the API answers for it again. Without an outage: nothing to do.
pub(crate) async fn end_outage(
    State(app): State<Arc<App>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (id, ended) = outage::end(&app, &key).await?;
    Ok(Json(
        json!({ "service_id": id, "outage": false, "ended": ended }),
    ))
}

/// `GET /emulator/v1/status`: liveness and a summary (no secrets).
pub(crate) async fn status(State(app): State<Arc<App>>) -> Json<Value> {
    let services = app.store.read(|s| s.services.len());
    Json(json!({
        "pid": std::process::id(),
        "dir": app.dir,
        "services": services,
        "api_only": app.instances.is_api_only(),
        "op_seconds": app.opts.op_seconds,
        "fault_rate": app.opts.fault_rate,
    }))
}
