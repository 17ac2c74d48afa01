//! The offering lookups of the spec: `GET /provisioning/v1/{providers,regions,sizes,versions,
//! topologies}` and the zones of a region, filtered by the spec's query parameters (see
//! [`crate::catalog`] for the data and where it comes from).

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::Json;
use serde_json::Value;

use super::api_error::ApiError;
use super::catalog;

type Params = Query<HashMap<String, String>>;

/// A filter that must be one of the listed values when given (the spec's enums).
fn one_of<'a>(q: &'a Params, name: &str, valid: &[&str]) -> Result<Option<&'a str>, ApiError> {
    match q.get(name).map(String::as_str) {
        Some(v) if !valid.contains(&v) => Err(ApiError::bad_request(format!(
            "query parameter {name}={v:?} is not one of {valid:?}"
        ))),
        v => Ok(v),
    }
}

pub async fn providers() -> Json<Value> {
    Json(catalog::providers_json())
}

pub async fn regions(q: Params) -> Result<Json<Value>, ApiError> {
    let provider = one_of(&q, "provider", catalog::PROVIDERS)?;
    Ok(Json(catalog::regions_json(provider)))
}

pub async fn zones(Path(region): Path<String>, q: Params) -> Result<Json<Value>, ApiError> {
    let provider = match one_of(&q, "provider", catalog::PROVIDERS)? {
        Some(p) => p,
        None => catalog::PROVIDERS
            .iter()
            .copied()
            .find(|p| catalog::regions(p).contains(&region.as_str()))
            .ok_or_else(|| ApiError::not_found(format!("no region {region:?}")))?,
    };
    if !catalog::regions(provider).contains(&region.as_str()) {
        return Err(ApiError::not_found(format!(
            "no region {region:?} for provider {provider}"
        )));
    }
    Ok(Json(catalog::zones_json(provider, &region)))
}

pub async fn sizes(q: Params) -> Result<Json<Value>, ApiError> {
    let provider = one_of(&q, "provider", catalog::PROVIDERS)?;
    let architecture = one_of(&q, "architecture", catalog::ARCHITECTURES)?;
    Ok(Json(catalog::sizes_json(
        provider,
        architecture,
        q.get("topology").map(String::as_str),
    )))
}

pub async fn versions(q: Params) -> Json<Value> {
    Json(catalog::versions_json(
        q.get("topology").map(String::as_str),
    ))
}

pub async fn topologies(q: Params) -> Json<Value> {
    Json(catalog::topologies_json(
        q.get("service_type").map(String::as_str),
    ))
}
