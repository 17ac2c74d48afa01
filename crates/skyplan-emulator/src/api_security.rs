//! `/provisioning/v1/services/{id}/security/…`: allowlist, credentials, is-ip-allowed.
//!
//! Allowlist changes are instant (no pending state) but, like every mutation, refused while
//! the service is pending. Adding an entry that is there, or removing one that is not, changes
//! nothing and succeeds, so retries are safe.

use axum::extract::{Path, State};
use axum::Json;
use std::net::IpAddr;
use std::sync::Arc;

use skyplan_api::types::{
    AddAllowListIPAddressRequest, AllowListEndpoint, AllowListItem, CredentialsResponse,
    DeleteAllowedAddressRequest, IsIpAllowedRequest, IsIpAllowedResponse,
};

use super::api_error::ApiError;
use super::app::{now, App};
use super::body::{Body, StrictList};
use super::{allowlist, render, FQDN};

type Api<T> = Result<T, ApiError>;

pub(crate) async fn get_allowlist(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Api<Json<Vec<AllowListEndpoint>>> {
    app.store
        .read(|s| s.require(&id).map(render::allowlist))
        .map(Json)
}

pub(crate) async fn put_allowlist(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    StrictList(items): StrictList<AllowListItem>,
) -> Api<Json<Vec<AllowListEndpoint>>> {
    for item in &items {
        allowlist::validate(&item.ip).map_err(ApiError::bad_request)?;
    }
    change(&app, &id, |list| *list = items)
}

pub(crate) async fn add_to_allowlist(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Body(req): Body<AddAllowListIPAddressRequest>,
) -> Api<Json<Vec<AllowListEndpoint>>> {
    let net = allowlist::validate(&req.ip_address).map_err(ApiError::bad_request)?;
    change(&app, &id, |list| {
        if allowlist::position(list, &net).is_none() {
            list.push(AllowListItem {
                ip: req.ip_address,
                comment: None,
            });
        }
    })
}

pub(crate) async fn delete_from_allowlist(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Body(req): Body<DeleteAllowedAddressRequest>,
) -> Api<Json<Vec<AllowListEndpoint>>> {
    let net = allowlist::validate(&req.ip_address).map_err(ApiError::bad_request)?;
    change(&app, &id, |list| {
        if let Some(i) = allowlist::position(list, &net) {
            list.remove(i);
        }
    })
}

/// PUT, POST and DELETE: the spec documents no 404 for them (only `GET` does), so an unknown
/// service is a 400.
fn change(
    app: &App,
    id: &str,
    edit: impl FnOnce(&mut Vec<AllowListItem>),
) -> Api<Json<Vec<AllowListEndpoint>>> {
    app.store
        .update(|s| {
            let svc = s.require_settled(id).map_err(ApiError::undocumented_404)?;
            edit(&mut svc.allow_list);
            svc.updated_on = now();
            Ok(render::allowlist(svc))
        })
        .map(Json)
}

pub(crate) async fn credentials(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Api<Json<CredentialsResponse>> {
    app.store
        .read(|s| {
            s.require(&id).map(|svc| CredentialsResponse {
                host: FQDN.to_string(),
                username: svc.username.clone(),
                password: svc.password.clone(),
            })
        })
        .map(Json)
}

pub(crate) async fn is_ip_allowed(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Body(req): Body<IsIpAllowedRequest>,
) -> Api<Json<IsIpAllowedResponse>> {
    let ip: IpAddr = allowlist::parse(&req.ip_address)
        .map(|net| net.addr())
        .ok_or_else(|| {
            ApiError::bad_request(format!("{:?} is not an IP address", req.ip_address))
        })?;
    // The spec documents only 200 and 400 here: an unknown service is a 400.
    let is_allowed = app.store.read(|s| {
        s.require(&id)
            .map(|svc| allowlist::allows(&svc.allow_list, ip))
            .map_err(ApiError::undocumented_404)
    })?;
    Ok(Json(IsIpAllowedResponse {
        ip_address: req.ip_address,
        is_allowed,
    }))
}
