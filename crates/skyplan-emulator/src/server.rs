//! The HTTP API: routes (exactly the spec's paths) and the middleware every request passes,
//! outermost first: request log → error bodies → fault injection → `X-API-Key` check, then on
//! the SkySQL routes only, the emulated-outage gate.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use std::time::Instant;

use super::api_error::{self, ApiError};
use super::app::App;
use super::faults::Fault;
use super::{api_admin, api_backups, api_catalog, api_configs, api_security, api_services, outage};

/// Paths under this prefix are the emulator's own: never faulted.
pub(crate) const ADMIN_PREFIX: &str = "/emulator/";

pub(crate) fn router(app: Arc<App>) -> Router {
    const SVC: &str = "/provisioning/v1/services/:service_id";
    const CONFIGS: &str = "/provisioning/v1/configs";
    Router::new()
        .route(
            "/provisioning/v1/services",
            get(api_services::list).post(api_services::create),
        )
        .route(SVC, get(api_services::get).delete(api_services::delete))
        .route("/provisioning/v1/providers", get(api_catalog::providers))
        .route("/provisioning/v1/regions", get(api_catalog::regions))
        .route(
            "/provisioning/v1/regions/:region_name/zones",
            get(api_catalog::zones),
        )
        .route("/provisioning/v1/sizes", get(api_catalog::sizes))
        .route("/provisioning/v1/versions", get(api_catalog::versions))
        .route("/provisioning/v1/topologies", get(api_catalog::topologies))
        .route(
            "/provisioning/v1/topologies/:topology_name/configs",
            get(api_configs::topology_keys),
        )
        .route(CONFIGS, get(api_configs::list).post(api_configs::create))
        .route(
            &format!("{CONFIGS}/:config_id"),
            get(api_configs::get)
                .delete(api_configs::delete)
                .patch(api_configs::rename),
        )
        .route(
            &format!("{CONFIGS}/:config_id/values"),
            get(api_configs::get_values).put(api_configs::put_values),
        )
        .route(
            &format!("{CONFIGS}/:config_id/values/:variable_name"),
            post(api_configs::set_value).delete(api_configs::unset_value),
        )
        .route(
            &format!("{SVC}/config"),
            post(api_configs::attach).delete(api_configs::detach),
        )
        .route(&format!("{SVC}/size"), post(api_services::set_size))
        // Not in the subset spec, but in the full one and used by the client for updates.
        .route(&format!("{SVC}/nodes"), post(api_services::set_nodes))
        .route(&format!("{SVC}/start"), post(api_services::start))
        .route(&format!("{SVC}/stop"), post(api_services::stop))
        .route(&format!("{SVC}/power"), post(api_services::set_power))
        .route(
            &format!("{SVC}/tags"),
            axum::routing::patch(api_services::set_tags),
        )
        .route(
            &format!("{SVC}/storage"),
            axum::routing::patch(api_services::set_storage),
        )
        .route(
            &format!("{SVC}/security/allowlist"),
            get(api_security::get_allowlist)
                .put(api_security::put_allowlist)
                .post(api_security::add_to_allowlist)
                .delete(api_security::delete_from_allowlist),
        )
        .route(
            &format!("{SVC}/security/credentials"),
            get(api_security::credentials),
        )
        .route(
            &format!("{SVC}/security/is-ip-allowed"),
            post(api_security::is_ip_allowed),
        )
        .route("/skybackup/v1/backups", get(api_backups::list_backups))
        .route(
            "/skybackup/v1/backups/schedules",
            get(api_backups::list_schedules).post(api_backups::create_schedule),
        )
        .route(
            "/skybackup/v1/restores",
            get(api_backups::list_restores).post(api_backups::create_restore),
        )
        .route("/skybackup/v1/restores/:id", get(api_backups::get_restore))
        // Every SkySQL route above (and only those: the emulator's own routes are merged
        // below) passes the outage gate, after the API-key check: a request naming a service
        // in an emulated outage gets the unreachable region's answer (see `outage::gate`).
        .route_layer(from_fn_with_state(app.clone(), outage::gate))
        // The control plane's distance (`--api-delay-ms`): SkySQL's routes only.
        .route_layer(from_fn_with_state(app.clone(), control_plane_delay))
        .merge(admin_routes())
        .fallback(api_error::no_route)
        .layer(from_fn_with_state(app.clone(), require_api_key))
        .layer(from_fn_with_state(app.clone(), inject_faults))
        .layer(from_fn(api_error::render_errors))
        .layer(from_fn_with_state(app.clone(), log_request))
        .with_state(app)
}

/// The emulator's own endpoints (`/emulator/v1/…`): never faulted, never behind an outage.
fn admin_routes() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/emulator/v1/services/:service/fail-next",
            post(api_admin::fail_next),
        )
        .route(
            "/emulator/v1/services/:service/outage",
            post(api_admin::start_outage).delete(api_admin::end_outage),
        )
        .route("/emulator/v1/status", get(api_admin::status))
        .route(
            "/emulator/v1/client-region",
            axum::routing::put(api_admin::set_client_region),
        )
}

/// Answers after the latency profile's control-plane delay, as a distant API does.
async fn control_plane_delay(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let delay = app.opts.latency.api_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    next.run(req).await
}

async fn log_request(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let latency = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    app.reqlog
        .record(&method, &path, resp.status().as_u16(), latency);
    resp
}

async fn inject_faults(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with(ADMIN_PREFIX) {
        return next.run(req).await;
    }
    match app.faults.roll() {
        None => next.run(req).await,
        Some(fault) => {
            let status =
                StatusCode::from_u16(fault.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = match fault {
                Fault::TooManyRequests => "rate limit exceeded (injected by the emulator)",
                Fault::ServerError(_) => "injected fault (emulator --fault-rate)",
            };
            ApiError::new(status, message).into_response()
        }
    }
}

async fn require_api_key(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get("x-api-key")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if constant_time_eq(given, app.api_key.as_bytes()) {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API key: send it in the X-API-Key header",
        )
        .into_response()
    }
}

/// Compares without an early exit, so timing does not reveal how much of a key was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
