//! The Configuration Manager: `/provisioning/v1/configs…` (custom configurations and their
//! values), `…/topologies/{topology}/configs` (the variables they may set, see
//! [`crate::configs`]) and `…/services/{id}/config` (attaching one to a service).
//!
//! Status codes are the spec's, operation by operation: `GET /configs/{id}` documents no 404,
//! so an unknown configuration is a 400 there and a 404 wherever 404 is documented.
//!
//! When values apply: a service's mariadbd starts with the values of its attached
//! configuration (written into its my.cnf at every start: create, start, restart after a
//! restore, emulator restart). Setting a value, or attaching a configuration, while the service
//! runs changes nothing in the running server: it takes effect at the next start, and a client
//! that wants a dynamic variable now sets it itself with `SET GLOBAL`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

use skyplan_api::types::{
    Config, ConfigKey, ConfigValue, ConfigValueRequest, CreateConfigRequest, ServiceConfigState,
    UpdateConfigRequest,
};

use super::api_error::ApiError;
use super::app::{now, App};
use super::body::{StrictBody, StrictList};
use super::paging::{self, PageQuery};
use super::store::{ConfigRecord, Store};
use super::{catalog, configs, ids, render};

type Api<T> = Result<T, ApiError>;

const NAME_MAX: usize = 100;

/// Filters of `GET /configs` besides paging.
#[derive(Debug, Deserialize)]
pub(crate) struct ListFilter {
    /// Also the cloud's own default configurations: the emulator has none, so it changes
    /// nothing (but must be a boolean).
    #[serde(rename = "include_default")]
    _include_default: Option<bool>,
}

/// `GET /provisioning/v1/configs` (200): in creation order, paged like the service list.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    Query(q): Query<PageQuery>,
    Query(_filter): Query<ListFilter>,
) -> Api<(HeaderMap, Json<Vec<Config>>)> {
    let all: Vec<(u64, Config)> = app.store.read(|s| {
        s.configs
            .iter()
            .map(|c| (c.seq, render::config(c, s.services_using(&c.id))))
            .collect()
    });
    let (headers, page) = paging::page(all, |(seq, _)| *seq, 'c', &q)?;
    Ok((headers, Json(page.into_iter().map(|(_, c)| c).collect())))
}

/// `POST /provisioning/v1/configs` (202): a new, empty configuration for one topology and
/// release, under a name no other configuration has.
pub(crate) async fn create(
    State(app): State<Arc<App>>,
    StrictBody(req): StrictBody<CreateConfigRequest>,
) -> Api<(StatusCode, Json<Config>)> {
    validate_name(&req.name)?;
    let topology = catalog::topology(&req.topology_id)
        .map_err(|m| ApiError::bad_request(format!("topology_id: {m}")))?;
    if req.version_id.is_empty() {
        return Err(ApiError::bad_request(
            "version_id is required (a version id or name that GET /provisioning/v1/versions lists)",
        ));
    }
    let release = catalog::release(&req.version_id, topology)
        .map_err(|m| ApiError::bad_request(format!("version_id: {m}")))?;
    let rec = app.store.update(|s| {
        refuse_taken_name(s, &req.name, None)?;
        s.counters.config_seq += 1;
        let id = loop {
            let id = ids::config_id();
            if s.config(&id).is_none() {
                break id;
            }
        };
        let rec = ConfigRecord {
            seq: s.counters.config_seq,
            id,
            name: req.name.clone(),
            topology: topology.to_string(),
            release: release.to_string(),
            values: Default::default(),
            created_on: now(),
            updated_on: now(),
        };
        s.configs.push(rec.clone());
        Ok(rec)
    })?;
    Ok((StatusCode::ACCEPTED, Json(render::config(&rec, Vec::new()))))
}

/// `GET /provisioning/v1/configs/{id}` (200), with the ids of the services using it.
pub(crate) async fn get(State(app): State<Arc<App>>, Path(id): Path<String>) -> Api<Json<Config>> {
    app.store
        .read(|s| {
            // The only operation that documents no 404.
            let rec = s
                .config(&id)
                .ok_or_else(|| ApiError::bad_request(format!("configuration {id} not found")))?;
            Ok(render::config(rec, s.services_using(&id)))
        })
        .map(Json)
}

/// `DELETE /provisioning/v1/configs/{id}` (200); refused while a service uses it.
pub(crate) async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>) -> Api<StatusCode> {
    app.store.update(|s| {
        require(s, &id)?;
        let users = s.services_using(&id);
        if !users.is_empty() {
            return Err(ApiError::bad_request(format!(
                "configuration {id} is attached to {}; detach it first \
                 (DELETE /provisioning/v1/services/{{service_id}}/config)",
                users.join(", ")
            )));
        }
        s.configs.retain(|c| c.id != id);
        Ok(())
    })?;
    Ok(StatusCode::OK)
}

/// `PATCH /provisioning/v1/configs/{id}` (204): renames it.
pub(crate) async fn rename(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    StrictBody(req): StrictBody<UpdateConfigRequest>,
) -> Api<StatusCode> {
    validate_name(&req.name)?;
    app.store.update(|s| {
        require(s, &id)?;
        refuse_taken_name(s, &req.name, Some(&id))?;
        let rec = require_mut(s, &id)?;
        rec.name = req.name.clone();
        rec.updated_on = now();
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /provisioning/v1/configs/{id}/values` (202, as the spec has it): the values set, by
/// config key id, in variable name order.
pub(crate) async fn get_values(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Api<(StatusCode, Json<Vec<ConfigValue>>)> {
    let values = app.store.read(|s| require(s, &id).map(values_of))?;
    Ok((StatusCode::ACCEPTED, Json(values)))
}

/// `PUT /provisioning/v1/configs/{id}/values` (202): replaces every value at once; one bad
/// entry refuses the whole batch. Takes effect at each service's next start.
pub(crate) async fn put_values(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    StrictList(entries): StrictList<ConfigValue>,
) -> Api<(StatusCode, Json<Vec<ConfigValue>>)> {
    let values = app.store.update(|s| {
        let rec = require_mut(s, &id)?;
        let mut values = std::collections::BTreeMap::new();
        for entry in &entries {
            let (name, value) = batch_entry(entry, &rec.topology)?;
            if values.insert(name.to_string(), value).is_some() {
                return Err(ApiError::bad_request(format!(
                    "config_key_id {:?} appears twice",
                    entry.config_key_id
                )));
            }
        }
        rec.values = values;
        rec.updated_on = now();
        Ok(values_of(rec))
    })?;
    Ok((StatusCode::ACCEPTED, Json(values)))
}

/// One `v1.ConfigValue` of a batch: (variable name, normalised value).
fn batch_entry(entry: &ConfigValue, topology: &str) -> Api<(&'static str, String)> {
    let key = &entry.config_key_id;
    let var = configs::by_key_id(key).ok_or_else(|| {
        let hint = match configs::find(key) {
            Some(v) => format!("; that is a variable name, its key id is {:?}", v.key_id()),
            None => String::new(),
        };
        ApiError::bad_request(format!(
            "config_key_id {key:?} is not a configuration key of topology {topology}{hint}"
        ))
    })?;
    let var = configs::settable(var.name, topology).map_err(ApiError::bad_request)?;
    let [value] = entry.selected_values.as_slice() else {
        return Err(ApiError::bad_request(format!(
            "{}: selected_values must hold exactly one value, found {}",
            var.name,
            entry.selected_values.len()
        )));
    };
    let value = var.normalise(value).map_err(ApiError::bad_request)?;
    Ok((var.name, value))
}

/// `POST /provisioning/v1/configs/{id}/values/{variable}` (204): sets one value, checked
/// against the variable's type and range. Takes effect at each service's next start.
pub(crate) async fn set_value(
    State(app): State<Arc<App>>,
    Path((id, variable)): Path<(String, String)>,
    StrictBody(req): StrictBody<ConfigValueRequest>,
) -> Api<StatusCode> {
    app.store.update(|s| {
        let rec = require_mut(s, &id)?;
        let var = configs::settable(&variable, &rec.topology).map_err(ApiError::bad_request)?;
        let value = var.normalise(&req.value).map_err(ApiError::bad_request)?;
        rec.values.insert(var.name.to_string(), value);
        rec.updated_on = now();
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /provisioning/v1/configs/{id}/values/{variable}` (204): back to the server's
/// default at the next start. Unsetting a value that is not set is no error.
pub(crate) async fn unset_value(
    State(app): State<Arc<App>>,
    Path((id, variable)): Path<(String, String)>,
) -> Api<StatusCode> {
    app.store.update(|s| {
        let rec = require_mut(s, &id)?;
        let var = configs::settable(&variable, &rec.topology).map_err(ApiError::bad_request)?;
        if rec.values.remove(var.name).is_some() {
            rec.updated_on = now();
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filters of `GET /topologies/{topology}/configs` besides paging.
#[derive(Debug, Deserialize)]
pub(crate) struct KeysFilter {
    version: Option<String>,
}

/// `GET /provisioning/v1/topologies/{topology}/configs` (200): the variables, in name order
/// (the same for every release; a `version` filter must still name one). An unknown topology
/// or version is a 400: the operation documents no 404.
pub(crate) async fn topology_keys(
    Path(topology): Path<String>,
    Query(q): Query<PageQuery>,
    Query(filter): Query<KeysFilter>,
) -> Api<(HeaderMap, Json<Vec<ConfigKey>>)> {
    let topology = catalog::topology(&topology).map_err(ApiError::bad_request)?;
    if let Some(version) = &filter.version {
        catalog::release(version, topology).map_err(ApiError::bad_request)?;
    }
    let keys: Vec<(u64, ConfigKey)> = (1u64..)
        .zip(
            configs::variables()
                .iter()
                .copied()
                .map(configs::Variable::to_key),
        )
        .collect();
    let (headers, page) = paging::page(keys, |(i, _)| *i, 'k', &q)?;
    Ok((headers, Json(page.into_iter().map(|(_, k)| k).collect())))
}

/// `POST /provisioning/v1/services/{id}/config` (202): attaches a configuration of the
/// service's topology (replacing any other). The running server is not restarted: the values
/// apply at its next start.
pub(crate) async fn attach(
    State(app): State<Arc<App>>,
    Path(service_id): Path<String>,
    StrictBody(req): StrictBody<ServiceConfigState>,
) -> Api<(StatusCode, Json<ServiceConfigState>)> {
    let config_id = req.config_id;
    if config_id.is_empty() {
        return Err(ApiError::bad_request("config_id is required"));
    }
    app.store.update(|s| {
        let topology = s.require(&service_id)?.topology.clone();
        let config = require(s, &config_id)?;
        if config.topology != topology {
            return Err(ApiError::bad_request(format!(
                "configuration {config_id} is for topology {}, service {service_id} is {topology}",
                config.topology
            )));
        }
        let svc = s.require_settled(&service_id)?;
        svc.config_id = Some(config_id.clone());
        svc.updated_on = now();
        Ok(())
    })?;
    Ok((StatusCode::ACCEPTED, Json(ServiceConfigState { config_id })))
}

/// `DELETE /provisioning/v1/services/{id}/config` (202): detaches its configuration (the one
/// detached is answered; `""` when there was none, which is no error, so a retry succeeds).
/// The server keeps its values until its next start.
pub(crate) async fn detach(
    State(app): State<Arc<App>>,
    Path(service_id): Path<String>,
) -> Api<(StatusCode, Json<ServiceConfigState>)> {
    let detached = app.store.update(|s| {
        let svc = s.require_settled(&service_id)?;
        let old = svc.config_id.take();
        if old.is_some() {
            svc.updated_on = now();
        }
        Ok(old.unwrap_or_default())
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ServiceConfigState {
            config_id: detached,
        }),
    ))
}

fn validate_name(name: &str) -> Api<()> {
    if name.trim().is_empty()
        || name.chars().count() > NAME_MAX
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "name is required: 1-{NAME_MAX} characters, not only spaces, no control characters"
        )));
    }
    Ok(())
}

/// 400 when a configuration other than `except` is called `name`.
fn refuse_taken_name(s: &Store, name: &str, except: Option<&str>) -> Api<()> {
    match s
        .configs
        .iter()
        .find(|c| c.name == name && Some(c.id.as_str()) != except)
    {
        Some(other) => Err(ApiError::bad_request(format!(
            "a configuration named {name:?} already exists ({}); configuration names must be \
             unique",
            other.id
        ))),
        None => Ok(()),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("configuration {id} not found"))
}

fn require<'a>(s: &'a Store, id: &str) -> Api<&'a ConfigRecord> {
    s.config(id).ok_or_else(|| not_found(id))
}

fn require_mut<'a>(s: &'a mut Store, id: &str) -> Api<&'a mut ConfigRecord> {
    s.config_mut(id).ok_or_else(|| not_found(id))
}

fn values_of(rec: &ConfigRecord) -> Vec<ConfigValue> {
    rec.values
        .iter()
        .map(|(name, value)| ConfigValue {
            // Stored names are catalog names; a name a later catalog dropped shows as itself.
            config_key_id: configs::find(name)
                .map(configs::Variable::key_id)
                .unwrap_or_else(|| name.clone()),
            selected_values: vec![value.clone()],
        })
        .collect()
}
