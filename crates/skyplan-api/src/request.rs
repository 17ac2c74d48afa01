//! Every API call as a plain value — method, path, query, JSON body and whether it may be
//! repeated — built without a client (the kube-rs way), so the exact wire shape of each call
//! is unit-tested here and the client only sends.

use serde::Serialize;

use super::retry::Idempotency;
use super::types::{
    AddAllowListIPAddressRequest, BackupScheduleRequest, ConfigValueRequest, CreateConfigRequest,
    CreateServiceRequest, DeleteAllowedAddressRequest, IsIpAllowedRequest, RestoreRequest,
    ServiceConfigState, ServiceSizeState, SetStorageRequest,
};

/// Largest page the listing endpoints accept.
pub const PAGE_SIZE: u32 = 100;

/// Response header carrying the token of the next page of `GET /provisioning/v1/services`.
pub const NEXT_PAGE_HEADER: &str = "X-SkySQL-Page-Token-Next";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    pub method: Method,
    /// Absolute path below the endpoint, segments already percent-encoded.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<serde_json::Value>,
    pub idempotency: Idempotency,
}

impl ApiRequest {
    fn new(method: Method, path: String) -> ApiRequest {
        // Reads, deletes and updates to a given value are idempotent; POSTs that create say so.
        ApiRequest {
            method,
            path,
            query: Vec::new(),
            body: None,
            idempotency: Idempotency::Idempotent,
        }
    }

    fn query(mut self, key: &str, value: impl ToString) -> ApiRequest {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    fn body(mut self, body: &impl Serialize) -> ApiRequest {
        // Serialising these plain structs cannot fail (string keys, no custom serialisers).
        self.body = Some(serde_json::to_value(body).unwrap_or(serde_json::Value::Null));
        self
    }

    fn not_idempotent(mut self) -> ApiRequest {
        self.idempotency = Idempotency::NotIdempotent;
        self
    }
}

const SERVICES: &str = "/provisioning/v1/services";

fn service_path(id: &str, rest: &str) -> String {
    format!("{SERVICES}/{}{rest}", segment(id))
}

pub fn list_services(page_token: Option<&str>) -> ApiRequest {
    let req = ApiRequest::new(Method::Get, SERVICES.into()).query("page_size", PAGE_SIZE);
    match page_token {
        Some(token) => req.query("page_token", token),
        None => req,
    }
}

/// `GET /provisioning/v1/{kind}` (`regions`, `sizes`, `versions`, `topologies`): the offering
/// catalog, filtered by `filters` (the spec's query parameters), one page.
pub fn list_offering(kind: &str, filters: &[(&str, &str)], page_token: Option<&str>) -> ApiRequest {
    let mut req = ApiRequest::new(Method::Get, format!("/provisioning/v1/{kind}"))
        .query("page_size", PAGE_SIZE);
    for (k, v) in filters {
        req = req.query(k, *v);
    }
    match page_token {
        Some(token) => req.query("page_token", token),
        None => req,
    }
}

/// Not idempotent: a repeat would create a second service with the same name.
pub fn create_service(body: &CreateServiceRequest) -> ApiRequest {
    ApiRequest::new(Method::Post, SERVICES.into())
        .body(body)
        .not_idempotent()
}

pub fn get_service(id: &str) -> ApiRequest {
    ApiRequest::new(Method::Get, service_path(id, ""))
}

pub fn delete_service(id: &str) -> ApiRequest {
    ApiRequest::new(Method::Delete, service_path(id, ""))
}

/// Idempotent although a POST: it sets the size to a value.
pub fn set_size(id: &str, size: &str) -> ApiRequest {
    ApiRequest::new(Method::Post, service_path(id, "/size")).body(&ServiceSizeState {
        size: size.to_string(),
    })
}

/// Idempotent although a POST: it sets the node count to a value.
pub fn set_nodes(id: &str, nodes: i64) -> ApiRequest {
    ApiRequest::new(Method::Post, service_path(id, "/nodes"))
        .body(&super::types::ServiceNodesState { nodes })
}

/// `POST …/start` (full spec: "Starts a stopped service"; asynchronous: `pending_start`, then
/// `ready`). Not retried blindly: a repeat after a lost answer is refused (the service is no
/// longer stopped), so the caller reads the status instead.
pub fn start_service(id: &str) -> ApiRequest {
    ApiRequest::new(Method::Post, service_path(id, "/start")).not_idempotent()
}

/// `POST …/stop` (full spec: "Stops a running service"; `pending_stop`, then `stopped`).
pub fn stop_service(id: &str) -> ApiRequest {
    ApiRequest::new(Method::Post, service_path(id, "/stop")).not_idempotent()
}

pub fn set_tags(id: &str, tags: &std::collections::BTreeMap<String, String>) -> ApiRequest {
    ApiRequest::new(Method::Patch, service_path(id, "/tags"))
        .body(&super::types::UpdateServiceTagsRequest { tags: tags.clone() })
}

pub fn set_storage(id: &str, body: &SetStorageRequest) -> ApiRequest {
    ApiRequest::new(Method::Patch, service_path(id, "/storage")).body(body)
}

pub fn get_allowlist(id: &str) -> ApiRequest {
    ApiRequest::new(Method::Get, service_path(id, "/security/allowlist"))
}

/// Not idempotent: a repeat may be refused as a duplicate entry.
pub fn add_allowlist_entry(id: &str, ip: &str) -> ApiRequest {
    ApiRequest::new(Method::Post, service_path(id, "/security/allowlist"))
        .body(&AddAllowListIPAddressRequest {
            ip_address: ip.to_string(),
        })
        .not_idempotent()
}

pub fn delete_allowlist_entry(id: &str, ip: &str) -> ApiRequest {
    ApiRequest::new(Method::Delete, service_path(id, "/security/allowlist")).body(
        &DeleteAllowedAddressRequest {
            ip_address: ip.to_string(),
        },
    )
}

pub fn get_credentials(id: &str) -> ApiRequest {
    ApiRequest::new(Method::Get, service_path(id, "/security/credentials"))
}

/// A POST that only reads.
pub fn is_ip_allowed(id: &str, ip: &str) -> ApiRequest {
    ApiRequest::new(Method::Post, service_path(id, "/security/is-ip-allowed")).body(
        &IsIpAllowedRequest {
            ip_address: ip.to_string(),
        },
    )
}

/// A one-time full backup. Treated as idempotent on purpose: a duplicate after an ambiguous
/// failure only costs storage, while giving up would fail the apply. The engine identifies
/// its backup by listing backups, never by the schedule id, so a duplicate cannot confuse it.
pub fn schedule_full_backup(service_id: &str) -> ApiRequest {
    ApiRequest::new(Method::Post, "/skybackup/v1/backups/schedules".into()).body(
        &BackupScheduleRequest {
            backup_type: "full".into(),
            schedule: "once".into(),
            service_id: service_id.to_string(),
        },
    )
}

/// `page` is 1-based.
pub fn list_backups(service_id: &str, page: u32) -> ApiRequest {
    ApiRequest::new(Method::Get, "/skybackup/v1/backups".into())
        .query("service_id", service_id)
        .query("page", page)
        .query("page_size", PAGE_SIZE)
}

/// Every backup the API key can see, of any service (`GET /skybackup/v1/backups` without
/// `service_id`): how a `backup:<id>` of another service is found. `page` is 1-based.
pub fn list_all_backups(page: u32) -> ApiRequest {
    ApiRequest::new(Method::Get, "/skybackup/v1/backups".into())
        .query("page", page)
        .query("page_size", PAGE_SIZE)
}

/// Not idempotent: a repeat would stop and wipe the target a second time.
pub fn start_restore(body: &RestoreRequest) -> ApiRequest {
    ApiRequest::new(Method::Post, "/skybackup/v1/restores".into())
        .body(body)
        .not_idempotent()
}

/// `page` is 1-based.
pub fn list_restores(service_id: &str, page: u32) -> ApiRequest {
    ApiRequest::new(Method::Get, "/skybackup/v1/restores".into())
        .query("service_id", service_id)
        .query("page", page)
        .query("page_size", PAGE_SIZE)
}

const CONFIGS: &str = "/provisioning/v1/configs";

fn config_path(id: &str, rest: &str) -> String {
    format!("{CONFIGS}/{}{rest}", segment(id))
}

/// `GET /provisioning/v1/configs`: the custom configurations (Configuration Manager), one page.
pub fn list_configs(page_token: Option<&str>) -> ApiRequest {
    let req = ApiRequest::new(Method::Get, CONFIGS.into()).query("page_size", PAGE_SIZE);
    match page_token {
        Some(token) => req.query("page_token", token),
        None => req,
    }
}

/// Not idempotent: a repeat would create a second configuration.
pub fn create_config(body: &CreateConfigRequest) -> ApiRequest {
    ApiRequest::new(Method::Post, CONFIGS.into())
        .body(body)
        .not_idempotent()
}

pub fn delete_config(id: &str) -> ApiRequest {
    ApiRequest::new(Method::Delete, config_path(id, ""))
}

/// `GET …/configs/{id}/values`: the values set in it, by config key id.
pub fn get_config_values(id: &str) -> ApiRequest {
    ApiRequest::new(Method::Get, config_path(id, "/values"))
}

/// Idempotent although a POST: it sets the variable to a value.
pub fn set_config_value(id: &str, variable: &str, value: &str) -> ApiRequest {
    ApiRequest::new(
        Method::Post,
        config_path(id, &format!("/values/{}", segment(variable))),
    )
    .body(&ConfigValueRequest {
        value: value.to_string(),
    })
}

pub fn unset_config_value(id: &str, variable: &str) -> ApiRequest {
    ApiRequest::new(
        Method::Delete,
        config_path(id, &format!("/values/{}", segment(variable))),
    )
}

/// `GET /provisioning/v1/topologies/{topology}/configs`: the variables a configuration of that
/// topology accepts, one page.
pub fn list_config_keys(topology: &str, page_token: Option<&str>) -> ApiRequest {
    let req = ApiRequest::new(
        Method::Get,
        format!("/provisioning/v1/topologies/{}/configs", segment(topology)),
    )
    .query("page_size", PAGE_SIZE);
    match page_token {
        Some(token) => req.query("page_token", token),
        None => req,
    }
}

/// Idempotent although a POST: it attaches one given configuration.
pub fn attach_config(service_id: &str, config_id: &str) -> ApiRequest {
    ApiRequest::new(Method::Post, service_path(service_id, "/config")).body(&ServiceConfigState {
        config_id: config_id.to_string(),
    })
}

pub fn get_restore(id: i64) -> ApiRequest {
    ApiRequest::new(Method::Get, format!("/skybackup/v1/restores/{id}"))
}

/// Percent-encode one path segment (RFC 3986 unreserved characters pass through), so an id
/// can never inject `/`, `?` or `..` into the path.
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else if b == b'.' && raw != "." && raw != ".." {
            out.push('.');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_calls() {
        let r = create_config(&CreateConfigRequest {
            name: "skyplan-a".into(),
            topology_id: "es-replica".into(),
            version_id: "11.4.4-2".into(),
        });
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::Post, "/provisioning/v1/configs")
        );
        assert_eq!(r.idempotency, Idempotency::NotIdempotent);
        let r = set_config_value("cfg 1", "max_connections", "500");
        assert_eq!(
            r.path,
            "/provisioning/v1/configs/cfg%201/values/max_connections"
        );
        assert_eq!(r.body, Some(json!({"value": "500"})));
        assert_eq!(r.idempotency, Idempotency::Idempotent);
        let r = unset_config_value("c", "../x");
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::Delete, "/provisioning/v1/configs/c/values/..%2Fx")
        );
        let r = list_config_keys("es-replica", Some("t"));
        assert_eq!(r.path, "/provisioning/v1/topologies/es-replica/configs");
        assert!(r.query.contains(&("page_token".into(), "t".into())));
        let r = attach_config("svc", "cfg");
        assert_eq!(r.path, "/provisioning/v1/services/svc/config");
        assert_eq!(r.body, Some(json!({"config_id": "cfg"})));
        assert_eq!(
            get_config_values("c").path,
            "/provisioning/v1/configs/c/values"
        );
        assert_eq!(delete_config("c").method, Method::Delete);
        assert_eq!(list_configs(None).path, "/provisioning/v1/configs");
    }

    #[test]
    fn service_calls() {
        let r = create_service(&CreateServiceRequest {
            name: Some("p".into()),
            ..Default::default()
        });
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::Post, "/provisioning/v1/services")
        );
        assert_eq!(r.body, Some(json!({"name": "p"})));
        assert_eq!(r.idempotency, Idempotency::NotIdempotent);

        let r = get_service("db1");
        assert_eq!(
            (r.method, r.path.as_str()),
            (Method::Get, "/provisioning/v1/services/db1")
        );
        assert_eq!(r.idempotency, Idempotency::Idempotent);
        assert_eq!(delete_service("db1").method, Method::Delete);

        let r = set_size("db1", "sky-4x16");
        assert_eq!(r.path, "/provisioning/v1/services/db1/size");
        assert_eq!(r.body, Some(json!({"size": "sky-4x16"})));
        assert_eq!(r.method, Method::Post);

        let r = set_storage(
            "db1",
            &SetStorageRequest {
                size: Some(200),
                ..Default::default()
            },
        );
        assert_eq!(
            (r.method, r.body),
            (Method::Patch, Some(json!({"size": 200})))
        );
    }

    #[test]
    fn listing_pages() {
        assert_eq!(
            list_services(None).query,
            vec![("page_size".to_string(), "100".to_string())]
        );
        assert_eq!(
            list_services(Some("t2")).query[1],
            ("page_token".into(), "t2".into())
        );
        let r = list_backups("db1", 2);
        assert_eq!(r.path, "/skybackup/v1/backups");
        assert_eq!(
            r.query,
            vec![
                ("service_id".to_string(), "db1".to_string()),
                ("page".to_string(), "2".to_string()),
                ("page_size".to_string(), "100".to_string())
            ]
        );
    }

    #[test]
    fn allowlist_calls() {
        let add = add_allowlist_entry("db1", "10.0.0.1/32");
        assert_eq!(add.path, "/provisioning/v1/services/db1/security/allowlist");
        assert_eq!(add.body, Some(json!({"ip_address": "10.0.0.1/32"})));
        assert_eq!(add.idempotency, Idempotency::NotIdempotent);
        let del = delete_allowlist_entry("db1", "10.0.0.1/32");
        assert_eq!((del.method, del.body), (Method::Delete, add.body));
        assert_eq!(
            is_ip_allowed("db1", "1.2.3.4").path,
            "/provisioning/v1/services/db1/security/is-ip-allowed"
        );
        assert_eq!(
            get_credentials("db1").path,
            "/provisioning/v1/services/db1/security/credentials"
        );
    }

    #[test]
    fn backup_and_restore_calls() {
        let b = schedule_full_backup("db1");
        assert_eq!(b.path, "/skybackup/v1/backups/schedules");
        assert_eq!(
            b.body,
            Some(json!({"backup_type": "full", "schedule": "once", "service_id": "db1"}))
        );
        let r = start_restore(&RestoreRequest {
            id: "bk1".into(),
            service_id: "db2".into(),
            point_in_time: None,
        });
        assert_eq!(r.body, Some(json!({"id": "bk1", "service_id": "db2"})));
        assert_eq!(r.idempotency, Idempotency::NotIdempotent);
        assert_eq!(get_restore(7).path, "/skybackup/v1/restores/7");
    }

    #[test]
    fn ids_cannot_escape_their_segment() {
        assert_eq!(segment("db-1_a.b~"), "db-1_a.b~");
        assert_eq!(segment("../x?y=1"), "..%2Fx%3Fy%3D1");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(get_service("a/b").path, "/provisioning/v1/services/a%2Fb");
    }
}
