//! What a user connects to: each managed service's endpoint, role, region, where to get its
//! credentials and its replication source. One mechanism for `skyplan output` and the
//! "Outputs:" printed after apply, read from the state alone (no refresh, no API call), and
//! never a password: credentials are named by the API call that returns them.
//!
//! The JSON (`output --json`) is a contract, documented by `schemas/output.schema.json`:
//! extend it, don't break it.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::{bail, Result};
use schemars::JsonSchema;
use serde::Serialize;
use skyplan_core::topology::rules::SERVICE_KEY;

use crate::remote::Remote;
use crate::state::State;
use crate::topology::Topology;

/// Version of the `output --json` document.
pub(crate) const OUTPUT_FORMAT_VERSION: u32 = 1;

/// What `skyplan output --json` prints (format_version 1): each managed service's endpoint,
/// role, region, where to get its credentials and its replication source, read from the state.
/// Never a password. With NAME, the one service object (definitions/ServiceOutput) is printed
/// alone. New fields may be added; existing ones keep their meaning.
//
// The document's schema; the command prints one of the two.
#[derive(JsonSchema)]
#[schemars(untagged)]
#[allow(dead_code)] // never built: it only describes the document to the schema generator
pub(crate) enum OutputDocument {
    All(Outputs),
    One(Box<ServiceOutput>),
}

/// The `output --json` document.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Outputs {
    /// Version of this document; a change that breaks it gets a new version.
    #[schemars(extend("const" = OUTPUT_FORMAT_VERSION))]
    pub format_version: u32,
    /// Every service the state manages, keyed by its topology key.
    #[schemars(extend("propertyNames" = { "pattern": SERVICE_KEY }))]
    pub services: BTreeMap<String, ServiceOutput>,
    /// The backups skyplan took to seed replicas. They stay in SkySQL (and are billed) after
    /// the restores: SkySQL's API has no call to delete a backup. Absent when there are none
    /// (and with NAME).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backups: Vec<BackupOutput>,
}

/// A backup skyplan took.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct BackupOutput {
    /// `backup_made.SOURCE.ID`, as `state list` names it.
    pub address: String,
    pub id: String,
    /// Key of the backed-up service.
    pub source: String,
    pub taken_at: Option<String>,
    pub gtid_position: Option<String>,
}

/// What a user connects to for one service (`output --json NAME` prints it alone).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ServiceOutput {
    /// `service.KEY`, as plans and `state list` name it.
    #[schemars(extend("pattern" = format!("^service\\.{}", &SERVICE_KEY[1..])))]
    pub address: String,
    /// The SkySQL service name.
    pub name: String,
    /// The SkySQL service id.
    pub id: String,
    /// The host clients connect to; null until the service has an endpoint.
    pub host: Option<String>,
    /// The port clients connect to (read-write); null until known.
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    pub role: Role,
    /// For a replica, the key of the service it replicates from (per the topology); null for
    /// a primary.
    pub replica_of: Option<String>,
    pub provider: String,
    pub region: String,
    /// The last status skyplan saw (e.g. `ready`); null if never seen.
    pub status: Option<String>,
    pub credentials: Credentials,
    /// The replication link skyplan wired into this service, as recorded; null when it has
    /// none.
    pub replication: Option<ReplicationOutput>,
}

/// primary: writes go here. replica: read-only for clients. As the topology says (for a service
/// no longer in the topology: as the state's replication record says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    Primary,
    Replica,
}

/// Where to get the credentials that work on this service: after a restore a service accepts
/// its source's credentials only. The API call is named; the password is never printed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Credentials {
    /// Key of the service whose credentials work here (the service itself, or the one it was
    /// restored from).
    pub from: String,
    /// That service's id; null when the state no longer records it.
    pub service_id: Option<String>,
    #[schemars(with = "String", extend("const" = "GET"))]
    pub method: &'static str,
    /// The SkySQL API path returning the credentials; null without a service id.
    #[schemars(pattern(r"^/provisioning/v1/services/[^/]+/security/credentials$"))]
    pub path: Option<String>,
}

/// A replication link, as the state records it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ReplicationOutput {
    /// Key of the source service.
    pub source: String,
    /// The source endpoint's host.
    pub host: String,
    #[schemars(range(min = 1))]
    pub port: u16,
    /// Replicates over TLS.
    pub ssl: bool,
    /// Whether skyplan saw the link healthy when it last checked (run `skyplan plan` to check
    /// again).
    pub healthy: bool,
}

/// The outputs of every service `state` manages; with `only`, of that key alone (an error
/// naming the managed keys when it is not one).
pub(crate) fn outputs(state: &State, topology: &Topology, only: Option<&str>) -> Result<Outputs> {
    let services = &state.resources.services;
    if let Some(key) = only {
        if !services.contains_key(key) {
            let managed: Vec<&str> = services.keys().map(String::as_str).collect();
            let why = if topology.services.contains_key(key) {
                "it is in the topology but not applied yet".to_string()
            } else if managed.is_empty() {
                "the state manages no service".to_string()
            } else {
                format!("the state manages {}", managed.join(", "))
            };
            bail!("no output for service.{key}: {why}");
        }
    }
    let services = services
        .iter()
        .filter(|(k, _)| only.is_none_or(|o| o == k.as_str()))
        .map(|(k, _)| (k.clone(), service_output(state, topology, k)))
        .collect();
    let backups = if only.is_some() {
        Vec::new()
    } else {
        state
            .resources
            .made_backups
            .iter()
            .map(|(id, b)| BackupOutput {
                address: format!("backup_made.{}.{id}", b.source),
                id: id.clone(),
                source: b.source.clone(),
                taken_at: b.taken_at.clone(),
                gtid_position: b.gtid_position.clone(),
            })
            .collect()
    };
    Ok(Outputs {
        format_version: OUTPUT_FORMAT_VERSION,
        services,
        backups,
    })
}

fn service_output(state: &State, topology: &Topology, key: &str) -> ServiceOutput {
    let r = &state.resources;
    let rec = &r.services[key];
    let owner = Remote::credentials_owner(state, key);
    let owner_id = r.services.get(owner).map(|o| o.id.clone());
    // The topology says which service is a replica; a key already gone from it (to be
    // destroyed) keeps the link the state records.
    let replica_of = match topology.services.get(key) {
        Some(svc) => svc.replication.as_ref().map(|x| x.from.clone()),
        None => r.replications.get(key).map(|l| l.source.clone()),
    };
    ServiceOutput {
        address: format!("service.{key}"),
        name: rec.spec.name.clone(),
        id: rec.id.clone(),
        host: rec.fqdn.clone(),
        port: rec.port,
        role: if replica_of.is_some() {
            Role::Replica
        } else {
            Role::Primary
        },
        replica_of,
        provider: rec.spec.provider.clone(),
        region: rec.spec.region.clone(),
        status: rec.status.as_ref().map(|s| s.as_str().to_string()),
        credentials: Credentials {
            from: owner.to_string(),
            path: owner_id
                .as_ref()
                .map(|id| format!("/provisioning/v1/services/{id}/security/credentials")),
            service_id: owner_id,
            method: "GET",
        },
        replication: r.replications.get(key).map(|l| ReplicationOutput {
            source: l.source.clone(),
            host: l.source_host.clone(),
            port: l.source_port,
            ssl: l.ssl,
            healthy: l.healthy,
        }),
    }
}

/// The outputs for a terminal: a block per service.
pub(crate) fn render(o: &Outputs) -> String {
    let mut s = String::from("Outputs:\n");
    for (key, svc) in &o.services {
        let endpoint = match (&svc.host, svc.port) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            _ => "(no endpoint yet)".into(),
        };
        let _ = writeln!(
            s,
            "\n  {}  {} ({} {})",
            svc.address, svc.name, svc.provider, svc.region
        );
        let _ = writeln!(s, "    endpoint     {endpoint}");
        let role = match &svc.replica_of {
            Some(from) => format!("replica of service.{from} (read-only for clients)"),
            None => "primary (writes go here)".into(),
        };
        let _ = writeln!(s, "    role         {role}");
        if let Some(l) = &svc.replication {
            let _ = writeln!(
                s,
                "    replicates   from service.{} at {}:{}{}, {}",
                l.source,
                l.host,
                l.port,
                if l.ssl { " over TLS" } else { "" },
                if l.healthy {
                    "healthy when last checked"
                } else {
                    "not verified healthy"
                }
            );
        }
        let c = &svc.credentials;
        let call = match &c.path {
            Some(p) => format!("{} {p}", c.method),
            None => format!("(service.{} is no longer in the state)", c.from),
        };
        let creds = if c.from == *key {
            call
        } else {
            format!("those of service.{} (restored from it): {call}", c.from)
        };
        let _ = writeln!(s, "    credentials  {creds}");
    }
    if !o.backups.is_empty() {
        let _ = writeln!(
            s,
            "\n  Backups skyplan took ({}; kept in SkySQL and billed, see `skyplan state list`):",
            o.backups.len()
        );
        for b in &o.backups {
            let _ = writeln!(
                s,
                "    {}  of service.{}, taken {}",
                b.id,
                b.source,
                b.taken_at.as_deref().unwrap_or("(time unknown)")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guide() -> (State, Topology) {
        let src = include_str!("../../examples/global-replication.toml");
        let t = crate::topology::parse(src, std::path::Path::new("g.toml")).expect("example");
        let mut s = crate::state::new_state();
        for (i, (key, svc)) in t.services.iter().enumerate() {
            s.resources.services.insert(
                key.clone(),
                crate::state::ServiceRecord {
                    id: format!("svc-{i}"),
                    spec: svc.spec.clone(),
                    fqdn: Some(format!("{key}.example.com")),
                    port: Some(3306),
                    outbound_ips: vec![],
                    status: Some("ready".into()),
                    credentials_from: svc.replication.as_ref().map(|r| r.from.clone()),
                    in_flight: None,
                    failed_over_to: None,
                    role_change: None,
                    replace_requested: None,
                    last_seen: None,
                    config_id: None,
                    config: Default::default(),
                },
            );
        }
        (s, t)
    }

    #[test]
    fn a_restored_replica_takes_its_sources_credentials() {
        let (s, t) = guide();
        let o = outputs(&s, &t, None).unwrap();
        let replica = &o.services["secondary"];
        assert_eq!(replica.role, Role::Replica);
        assert_eq!(replica.replica_of.as_deref(), Some("primary"));
        assert_eq!(replica.credentials.from, "primary");
        assert_eq!(
            replica.credentials.path.as_deref(),
            Some("/provisioning/v1/services/svc-0/security/credentials")
        );
        assert_eq!(o.services["primary"].role, Role::Primary);
        let text = render(&o);
        assert!(
            text.contains("those of service.primary (restored from it): GET /provisioning/v1/services/svc-0/security/credentials"),
            "{text}"
        );
    }

    #[test]
    fn one_name_or_a_clear_error() {
        let (s, t) = guide();
        let o = outputs(&s, &t, Some("primary")).unwrap();
        assert_eq!(o.services.keys().collect::<Vec<_>>(), ["primary"]);
        let e = outputs(&s, &t, Some("nope")).unwrap_err().to_string();
        assert_eq!(
            e,
            "no output for service.nope: the state manages primary, secondary"
        );
        let empty = crate::state::new_state();
        let e = outputs(&empty, &t, Some("primary"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not applied yet"), "{e}");
    }
}
