//! Store records → the API's JSON shapes.

use skyplan_api::types::{
    AllowListEndpoint, Config, PurposePort, ServiceEndpoint, ServiceResponse, ServiceStatus,
};

use super::catalog;
use super::store::{ConfigRecord, ServiceRecord};
use super::FQDN;

/// The name of the single endpoint every emulated service has.
pub(crate) const ENDPOINT_NAME: &str = "primary";

pub(crate) fn service(rec: &ServiceRecord) -> ServiceResponse {
    ServiceResponse {
        id: rec.id.clone(),
        name: rec.name.clone(),
        status: rec.status.clone(),
        service_type: rec.service_type.clone(),
        topology: rec.topology.clone(),
        provider: rec.provider.clone(),
        region: rec.region.clone(),
        architecture: rec.architecture.clone(),
        size: rec.size.clone(),
        nodes: rec.nodes,
        ssl_enabled: rec.ssl_enabled,
        fqdn: FQDN.to_string(),
        endpoints: vec![ServiceEndpoint {
            allow_list: rec.allow_list.clone(),
            allowed_accounts: Vec::new(),
            endpoint_service: None,
            fqdn: Some(FQDN.to_string()),
            ips: vec!["127.0.0.1".to_string()],
            mechanism: Some("nlb".to_string()),
            name: ENDPOINT_NAME.to_string(),
            ports: vec![PurposePort {
                name: "readwrite".to_string(),
                port: rec.public_port,
                purpose: "readwrite".to_string(),
            }],
            visibility: Some("public".to_string()),
        }],
        outbound_ips: vec![rec.outbound_ip.clone()],
        storage_volume: rec.storage.clone(),
        version: rec.version.clone(),
        tier: Some("foundation".to_string()),
        tenancy: Some("shared".to_string()),
        project_id: None,
        availability_zone: None,
        maxscale_nodes: None,
        maxscale_size: None,
        primary_host: None,
        replication_enabled: Some(false),
        // The power state: false once stopped (or on the way there).
        is_active: Some(!matches!(
            rec.status,
            ServiceStatus::Stopped | ServiceStatus::PendingStop
        )),
        created_on: Some(rec.created_on),
        updated_on: Some(rec.updated_on),
        created_by: Some(CREATOR.to_string()),
        tags: rec.tags.clone(),
        errors: rec.errors.clone(),
        config_id: rec.config_id.clone(),
    }
}

/// `v1.Config`; `services`: the ids of the services it is attached to.
pub(crate) fn config(rec: &ConfigRecord, services: Vec<String>) -> Config {
    Config {
        id: rec.id.clone(),
        name: rec.name.clone(),
        topology_id: rec.topology.clone(),
        version_id: catalog::version_id(&rec.topology, &rec.release),
        public: false,
        services,
        created_by: Some(CREATOR.to_string()),
        created_date: Some(rec.created_on),
        updated_by: Some(CREATOR.to_string()),
        updated_date: Some(rec.updated_on),
    }
}

const CREATOR: &str = "skyplan-emulator";

pub(crate) fn allowlist(rec: &ServiceRecord) -> Vec<AllowListEndpoint> {
    vec![AllowListEndpoint {
        allow_list_deprecated: rec.allow_list.iter().map(|i| i.ip.clone()).collect(),
        allow_list: rec.allow_list.clone(),
        name: ENDPOINT_NAME.to_string(),
    }]
}
