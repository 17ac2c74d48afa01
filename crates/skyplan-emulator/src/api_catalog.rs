//! The offering lookups of the spec: `GET /provisioning/v1/{providers,regions,sizes,versions,
//! topologies}` and the zones of a region, filtered by the spec's query parameters (see
//! [`crate::catalog`] for the data and where it comes from), and paged as every SkySQL list
//! is (the same rules as `/services`: `page_size` 1–100, `page_order`, `page_token`).

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;

use super::api_error::ApiError;
use super::catalog;
use super::paging::{self, PageQuery};

type Params = Query<HashMap<String, String>>;

/// A catalog list answered one page at a time.
type Paged = Result<(HeaderMap, Json<Value>), ApiError>;

/// One page of a catalog list (in catalog order; the token names a catalog position), with the
/// query's paging parameters checked as `/services` checks them.
fn paged(q: &Params, items: Value) -> Paged {
    let page_size = match q.get("page_size") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "page_size {v:?} must be an integer between 1 and 100"
            ))
        })?),
    };
    let pq = PageQuery {
        page_size,
        page_token: q.get("page_token").cloned(),
        page_order: q.get("page_order").cloned(),
    };
    let list = match items {
        Value::Array(list) => list,
        other => vec![other],
    };
    let indexed: Vec<(u64, Value)> = list
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v))
        .collect();
    let (headers, page) = paging::page(indexed, |(i, _)| *i, 'p', &pq)?;
    Ok((
        headers,
        Json(Value::Array(page.into_iter().map(|(_, v)| v).collect())),
    ))
}

/// A filter that must be one of the listed values when given (the spec's enums).
fn one_of<'a>(q: &'a Params, name: &str, valid: &[&str]) -> Result<Option<&'a str>, ApiError> {
    match q.get(name).map(String::as_str) {
        Some(v) if !valid.contains(&v) => Err(ApiError::bad_request(format!(
            "query parameter {name}={v:?} is not one of {valid:?}"
        ))),
        v => Ok(v),
    }
}

/// A boolean query parameter, when given: `true` or `false`, as the spec's `type: boolean`.
fn boolean(q: &Params, name: &str) -> Result<Option<bool>, ApiError> {
    match q.get(name).map(String::as_str) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_request(format!(
            "query parameter {name}={v:?} must be true or false"
        ))),
    }
}

pub(crate) async fn providers(q: Params) -> Paged {
    let name = one_of(&q, "name", catalog::PROVIDERS)?;
    let mut all = catalog::providers_json();
    if let (Some(name), Value::Array(list)) = (name, &mut all) {
        list.retain(|p| p["name"] == name);
    }
    paged(&q, all)
}

pub(crate) async fn regions(q: Params) -> Paged {
    let provider = one_of(&q, "provider", catalog::PROVIDERS)?;
    paged(&q, catalog::regions_json(provider))
}

pub(crate) async fn zones(Path(region): Path<String>, q: Params) -> Paged {
    let provider = match one_of(&q, "provider", catalog::PROVIDERS)? {
        Some(p) => p,
        None => catalog::PROVIDERS
            .iter()
            .copied()
            .find(|p| catalog::regions(p).contains(&region.as_str()))
            .ok_or_else(|| ApiError::bad_request(format!("no region {region:?}")))?,
    };
    // 400, not 404: the operation documents no 404.
    if !catalog::regions(provider).contains(&region.as_str()) {
        return Err(ApiError::bad_request(format!(
            "no region {region:?} for provider {provider}"
        )));
    }
    paged(&q, catalog::zones_json(provider, &region))
}

pub(crate) async fn sizes(q: Params) -> Paged {
    let provider = one_of(&q, "provider", catalog::PROVIDERS)?;
    let architecture = one_of(&q, "architecture", catalog::ARCHITECTURES)?;
    let sizes = catalog::sizes_json(
        provider,
        architecture,
        q.get("topology").map(String::as_str),
    );
    paged(&q, sizes)
}

pub(crate) async fn versions(q: Params) -> Paged {
    paged(
        &q,
        catalog::versions_json(q.get("topology").map(String::as_str)),
    )
}

/// `only_legacy=true` lists the legacy topologies only: the emulator offers none (its
/// topologies are those of the spec's create request, and `standalone`).
pub(crate) async fn topologies(q: Params) -> Paged {
    let only_legacy = boolean(&q, "only_legacy")?.unwrap_or(false);
    let all = if only_legacy {
        Value::Array(Vec::new())
    } else {
        catalog::topologies_json(q.get("service_type").map(String::as_str))
    };
    paged(&q, all)
}
