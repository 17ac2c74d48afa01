//! `/provisioning/v1/services…`: create, list, get, delete, size, storage, nodes, tags, power.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use std::sync::Arc;

use skyplan_api::types::{
    CreateServiceRequest, PowerState, ServiceNodesState, ServiceResponse, ServiceSizeState,
    ServiceStatus, SetStorageRequest, StorageVolume, UpdateServiceTagsRequest,
};

use super::api_error::ApiError;
use super::app::{now, App};
use super::body::Body;
use super::paging::{self, PageQuery};
use super::store::ServiceRecord;
use super::{allowlist, catalog, ids, ops, proxy, render};

type Api<T> = Result<T, ApiError>;

pub(crate) async fn create(
    State(app): State<Arc<App>>,
    Body(req): Body<CreateServiceRequest>,
) -> Api<(StatusCode, Json<ServiceResponse>)> {
    let name = validate_create(&req)?;
    // The endpoint is bound before the record exists, so its port is real and reserved.
    let listeners = if app.instances.is_api_only() {
        Vec::new()
    } else {
        proxy::bind(0)
            .await
            .map_err(|e| ApiError::internal(format!("opening the service endpoint: {e}")))?
    };
    let public_port = match listeners.first() {
        Some(l) => l
            .local_addr()
            .map_err(|e| ApiError::internal(e.to_string()))?
            .port(),
        None => 0,
    };
    let db_port = if app.instances.is_api_only() {
        0
    } else {
        super::ports::db_port()
            .map_err(|e| ApiError::internal(format!("finding a free port: {e}")))?
    };
    let (rec, fail) = app.store.update(|s| {
        if s.services.iter().any(|svc| svc.name == name) {
            return Err(ApiError::bad_request(format!(
                "a service named {name:?} already exists; service names must be unique"
            )));
        }
        s.counters.service_seq += 1;
        let seq = s.counters.service_seq;
        let outbound_ip = ids::outbound_ip(seq)
            .ok_or_else(|| ApiError::bad_request("the emulator has run out of outbound IPs"))?;
        let id = loop {
            let id = ids::service_id();
            if s.service(&id).is_none() {
                break id;
            }
        };
        let mut rec = new_record(
            &req,
            seq,
            id,
            name.clone(),
            outbound_ip.to_string(),
            public_port,
            db_port,
        );
        if let Some(host) = shared_host(s, app.opts.shared_mariadbd, seq) {
            rec.db_port = host.db_port;
            rec.shared_host = Some(host.id.clone());
        }
        let fail = s.take_fail_next(&name);
        s.services.push(rec.clone());
        Ok((rec, fail))
    })?;
    // API-only: no listener; the port shown is a placeholder nothing answers on.
    if !listeners.is_empty() {
        app.start_proxy(&rec.id, listeners);
    }
    let (op_app, id) = (app.clone(), rec.id.clone());
    app.spawn_op(ops::create(op_app, id, fail));
    Ok((StatusCode::ACCEPTED, Json(render::service(&rec))))
}

/// Shared mode (`--shared-mariadbd K`): once K services have a server of their own, a new
/// one shares the server of one of them, in turn.
fn shared_host(
    s: &crate::store::Store,
    shared: Option<usize>,
    seq: u64,
) -> Option<&crate::store::ServiceRecord> {
    let k = shared?;
    let hosts: Vec<&crate::store::ServiceRecord> = s
        .services
        .iter()
        .filter(|r| r.shared_host.is_none())
        .collect();
    if hosts.len() < k {
        return None;
    }
    hosts
        .get(usize::try_from(seq).unwrap_or(0) % hosts.len())
        .copied()
}

fn validate_create(req: &CreateServiceRequest) -> Api<String> {
    let name = req.name.clone().unwrap_or_default();
    let valid_name = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        return Err(ApiError::bad_request(
            "name is required: 1-63 characters of letters, digits, '-' and '_'",
        ));
    }
    // What SkySQL offers (with the same defaults the record takes for fields left out).
    let offer = catalog::Offer {
        provider: req.provider.as_deref().unwrap_or("gcp"),
        region: req.region.as_deref().unwrap_or("us-east4"),
        architecture: req.architecture.as_deref().unwrap_or("amd64"),
        size: req.size.as_deref().unwrap_or("sky-2x8"),
        topology: req.topology.as_deref().unwrap_or("es-single"),
        service_type: req.service_type.as_deref().unwrap_or_else(|| {
            catalog::service_type_of(req.topology.as_deref().unwrap_or("es-single"))
        }),
        version: req.version.as_deref(),
        nodes: req.nodes.unwrap_or(1),
        availability_zone: req.availability_zone.as_deref(),
    };
    catalog::check(&offer).map_err(|(_, message)| ApiError::bad_request(message))?;
    if let Some(gb) = req.storage.filter(|gb| !catalog::storage_offered(*gb)) {
        return Err(ApiError::bad_request(format!(
            "storage {gb} GB is not offered: 100 to 1000 GB in steps of 100, or 2000 to 10000 in steps of 1000"
        )));
    }
    for item in req.allow_list.iter().flatten() {
        allowlist::validate(&item.ip).map_err(ApiError::bad_request)?;
    }
    Ok(name)
}

fn new_record(
    req: &CreateServiceRequest,
    seq: u64,
    id: String,
    name: String,
    outbound_ip: String,
    public_port: u16,
    db_port: u16,
) -> ServiceRecord {
    let provider = req.provider.clone().unwrap_or_else(|| "gcp".into());
    let storage = StorageVolume {
        size: req.storage.unwrap_or(100),
        iops: req.volume_iops,
        throughput: req.volume_throughput,
        volume_type: Some(match provider.as_str() {
            "aws" => req.volume_type.clone().unwrap_or_else(|| "gp3".into()),
            "azure" => "StandardSSD_LRS".into(),
            _ => "pd-ssd".into(),
        }),
    };
    let seq32 = u32::try_from(seq).unwrap_or(u32::MAX - 1000);
    ServiceRecord {
        seq,
        username: id.clone(),
        password: ids::secret(24),
        id,
        name,
        status: ServiceStatus::PendingCreate,
        region: req.region.clone().unwrap_or_else(|| "us-east4".into()),
        provider,
        service_type: req.service_type.clone().unwrap_or_else(|| {
            catalog::service_type_of(req.topology.as_deref().unwrap_or("es-single")).into()
        }),
        topology: req.topology.clone().unwrap_or_else(|| "es-single".into()),
        architecture: req.architecture.clone().unwrap_or_else(|| "amd64".into()),
        version: Some(catalog::reported_version(req.version.as_deref())),
        size: req.size.clone().unwrap_or_else(|| "sky-2x8".into()),
        nodes: req.nodes.unwrap_or(1),
        storage,
        ssl_enabled: req.ssl_enabled.unwrap_or(true),
        tags: req.tags.clone(),
        created_on: now(),
        updated_on: now(),
        public_port,
        db_port,
        server_id: 1000 + seq32,
        gtid_domain_id: seq32,
        outbound_ip,
        allow_list: req.allow_list.clone().unwrap_or_default(),
        errors: Vec::new(),
        outage: None,
        config_id: None,
        shared_host: None,
    }
}

/// Pages in creation order; a page token is the creation number of the page's first service,
/// so pages stay stable when services are deleted in between.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
) -> Api<(HeaderMap, Json<Vec<ServiceResponse>>)> {
    // A service in an emulated outage is left out: its region does not answer the cloud's
    // listing either. Paging tokens are creation numbers, so pages stay stable around the gap.
    let all: Vec<ServiceRecord> = app.store.read(|s| {
        s.services
            .iter()
            .filter(|svc| svc.outage.is_none())
            .cloned()
            .collect()
    });
    let (headers, page) = paging::page(all, |s| s.seq, 's', &q)?;
    Ok((headers, Json(page.iter().map(render::service).collect())))
}

pub(crate) async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Api<Json<ServiceResponse>> {
    app.store
        .read(|s| s.require(&id).map(render::service))
        .map(Json)
}

pub(crate) async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>) -> Api<StatusCode> {
    let fail = app.store.update(|s| {
        let svc = s.require_settled(&id)?;
        svc.status = ServiceStatus::PendingDelete;
        svc.updated_on = now();
        let name = svc.name.clone();
        Ok(s.take_fail_next(&name))
    })?;
    app.spawn_op(ops::delete(app.clone(), id, fail));
    Ok(StatusCode::OK)
}

pub(crate) async fn set_size(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Body(req): Body<ServiceSizeState>,
) -> Api<(StatusCode, Json<ServiceSizeState>)> {
    if !catalog::is_size(&req.size) {
        let hint = catalog::nearest_size(&req.size)
            .map(|n| format!("; did you mean {n:?}?"))
            .unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "size {:?} is not offered{hint}",
            req.size
        )));
    }
    let fail = app.store.update(|s| {
        let svc = s.require_running(&id)?;
        svc.size = req.size.clone();
        svc.status = ServiceStatus::PendingModifying;
        svc.updated_on = now();
        let name = svc.name.clone();
        Ok(s.take_fail_next(&name))
    })?;
    app.spawn_op(ops::modify(app.clone(), id, fail));
    Ok((StatusCode::ACCEPTED, Json(req)))
}

pub(crate) async fn set_storage(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Body(req): Body<SetStorageRequest>,
) -> Api<(StatusCode, Json<SetStorageRequest>)> {
    if req.size.is_none() && req.iops.is_none() && req.throughput.is_none() {
        return Err(ApiError::bad_request(
            "set at least one of size, iops, throughput",
        ));
    }
    if let Some(gb) = req.size.filter(|gb| !catalog::storage_offered(*gb)) {
        return Err(ApiError::bad_request(format!(
            "storage {gb} GB is not offered: 100 to 1000 GB in steps of 100, or 2000 to 10000 in steps of 1000"
        )));
    }
    if req.iops.is_some_and(|v| !(3000..=16000).contains(&v)) {
        return Err(ApiError::bad_request("iops must be between 3000 and 16000"));
    }
    if req.throughput.is_some_and(|v| !(125..=1000).contains(&v)) {
        return Err(ApiError::bad_request(
            "throughput must be between 125 and 1000",
        ));
    }
    let fail = app.store.update(|s| {
        let svc = s.require_running(&id).map_err(ApiError::too_early)?;
        if let Some(size) = req.size {
            if size < svc.storage.size {
                return Err(ApiError::bad_request(format!(
                    "storage can only grow: {size} GB is less than the current {} GB",
                    svc.storage.size
                )));
            }
            svc.storage.size = size;
        }
        if req.iops.is_some() {
            svc.storage.iops = req.iops;
        }
        if req.throughput.is_some() {
            svc.storage.throughput = req.throughput;
        }
        svc.status = ServiceStatus::PendingModifying;
        svc.updated_on = now();
        let name = svc.name.clone();
        Ok(s.take_fail_next(&name))
    })?;
    app.spawn_op(ops::modify(app.clone(), id, fail));
    Ok((StatusCode::ACCEPTED, Json(req)))
}

/// `POST …/nodes` (full spec): pending_scale, then ready. Nothing real to scale: the node count
/// is recorded.
pub(crate) async fn set_nodes(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Body(req): Body<ServiceNodesState>,
) -> Api<Json<ServiceNodesState>> {
    if !(1..=9).contains(&req.nodes) {
        return Err(ApiError::bad_request("nodes must be between 1 and 9"));
    }
    let fail = app.store.update(|s| {
        let svc = s.require_running(&id)?;
        svc.nodes = req.nodes;
        svc.status = ServiceStatus::PendingScale;
        svc.updated_on = now();
        let name = svc.name.clone();
        Ok(s.take_fail_next(&name))
    })?;
    app.spawn_op(ops::modify(app.clone(), id, fail));
    Ok(Json(req))
}

/// `PATCH …/tags` (full spec): replaces the tags at once; 204 No Content.
pub(crate) async fn set_tags(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Body(req): Body<UpdateServiceTagsRequest>,
) -> Api<StatusCode> {
    app.store.update(|s| {
        let svc = s.require_settled(&id)?;
        svc.tags = Some(req.tags);
        svc.updated_on = now();
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/start` (full spec): a stopped service goes `pending_start`, its database starts,
/// then `ready`. Anything but `stopped` is refused (400), as starting a running service is.
pub(crate) async fn start(State(app): State<Arc<App>>, Path(id): Path<String>) -> Api<StatusCode> {
    power(&app, id, true)
}

/// `POST …/stop` (full spec): a ready service goes `pending_stop`, its database stops cleanly
/// (data kept), then `stopped`. Anything but `ready` is refused (400).
pub(crate) async fn stop(State(app): State<Arc<App>>, Path(id): Path<String>) -> Api<StatusCode> {
    power(&app, id, false)
}

/// `POST …/power` (full spec, deprecated for `…/start` and `…/stop`): `{"is_active": bool}`.
pub(crate) async fn set_power(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Body(req): Body<PowerState>,
) -> Api<StatusCode> {
    let active = req
        .is_active
        .ok_or_else(|| ApiError::bad_request("is_active is required (true starts, false stops)"))?;
    power(&app, id, active)
}

fn power(app: &Arc<App>, id: String, active: bool) -> Api<StatusCode> {
    let (from, pending) = if active {
        (ServiceStatus::Stopped, ServiceStatus::PendingStart)
    } else {
        (ServiceStatus::Ready, ServiceStatus::PendingStop)
    };
    let fail = app.store.update(|s| {
        let svc = s.require_settled(&id)?;
        if svc.status != from {
            return Err(ApiError::bad_request(format!(
                "service {id} is {}; only a {from} service can be {}",
                svc.status,
                if active { "started" } else { "stopped" }
            )));
        }
        svc.status = pending;
        svc.updated_on = now();
        let name = svc.name.clone();
        Ok(s.take_fail_next(&name))
    })?;
    app.spawn_op(ops::power(app.clone(), id, active, fail));
    Ok(StatusCode::OK)
}
