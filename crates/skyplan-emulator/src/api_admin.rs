//! The emulator's own endpoints, under `/emulator/v1/` (not SkySQL paths; never faulted).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

use super::api_error::ApiError;
use super::app::App;

/// `POST /emulator/v1/services/{id or name}/fail-next`: the next long operation (create, size,
/// storage, delete, backup, restore) of that service ends `failed`. A name that no service has
/// yet marks the service that will be created with that name.
pub async fn fail_next(
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

/// `GET /emulator/v1/status`: liveness and a summary (no secrets).
pub async fn status(State(app): State<Arc<App>>) -> Json<Value> {
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
