//! What refresh saw in the real world. The diff takes it as an input beside the topology and
//! the state; an offline plan (`--refresh=false`) passes `Observed::offline()` and trusts state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use skyplan_api::types::ServiceStatus;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// False for an offline plan: nothing below was looked at.
    pub refreshed: bool,
    /// By topology key. A key with no entry was not looked up (no id in state, no name match).
    pub services: BTreeMap<String, ObservedService>,
    /// Allowlist entries present on a service, by service key.
    pub allowlists: BTreeMap<String, Vec<String>>,
    /// Inbound replication status of a replica, by replica key.
    pub replication: BTreeMap<String, ObservedReplication>,
    /// Services that carry the name of a topology key the state does not record, by that key:
    /// candidates for adoption (more than one is an error the plan reports).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unmanaged: BTreeMap<String, Vec<RemoteService>>,
    /// The backups of sources that seed a replica from an existing backup
    /// (`latest-backup`, `backup:<id>`), by source key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backups: BTreeMap<String, Vec<skyplan_api::types::Backup>>,
    /// Backups that a `backup:<id>` seed names but that are not among its source's backups:
    /// another service's, found by listing every backup, by backup id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub foreign_backups: BTreeMap<String, skyplan_api::types::Backup>,
    /// Ids of those backups whose service no longer exists: a restore of one makes the replica
    /// accept only that service's credentials, which can no longer be read.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub foreign_owners_gone: std::collections::BTreeSet<String>,
    /// The GTIDs of the services in replication links (sources and replicas) whose database
    /// answered, by service key: what re-pointing and errant-transaction checks read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gtids: BTreeMap<String, crate::gtid::ObservedGtids>,
    /// Users named like the replication users SkySQL hands out (`skysql_replication_*`), as
    /// `user@host`, on the services that replicate from nobody (chains' roots), by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replication_users: BTreeMap<String, Vec<String>>,
    /// `@@read_only` of the services in replication links whose database answered, by key:
    /// a replica must be read-only for clients, a primary must not be.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub read_only: BTreeMap<String, bool>,
    /// For services whose role the topology changes (a recorded replica that the topology
    /// makes a primary, and its source): whether skyplan's account may change `read_only`
    /// there (fence, open). A switchover is refused at plan time where it may not.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub can_fence: BTreeMap<String, bool>,
    /// Services whose database did not answer refresh (with the error), by key: among the
    /// services in replication links, and the primaries a failover replaced.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unreachable: BTreeMap<String, String>,
    /// The variables the Configuration Manager accepts, by topology name (every topology of
    /// the file, read once per refresh). A topology without an entry has none readable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config_vars: BTreeMap<String, crate::config::Variables>,
    /// The configuration of each managed service as the cloud and the server have it, by key
    /// (services refresh could read; others are planned from the state).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, ObservedConfig>,
    /// When refresh looked (the clock stays out of the core: ages are measured from this).
    #[serde(skip)]
    pub at: Option<time::OffsetDateTime>,
}

impl Observed {
    pub fn offline() -> Observed {
        Observed::default()
    }

    /// Remember in `state` the GTIDs refresh read (and each replica's lag then): a later
    /// failover, when a service no longer answers, estimates its loss from them.
    pub fn record_last_seen(&self, state: &mut crate::state::State) {
        let Some(at) = self.at.and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        }) else {
            return;
        };
        for (key, g) in &self.gtids {
            if let Some(rec) = state.resources.services.get_mut(key) {
                rec.last_seen = Some(crate::state::LastSeen {
                    gtid_binlog_state: g.binlog_state.clone(),
                    at: at.clone(),
                    lag_seconds: self
                        .replication
                        .get(key)
                        .and_then(|r| r.seconds_behind_master),
                });
            }
        }
    }

    /// Why `key` cannot be reached now (its API or its database), if it cannot.
    pub fn lost(&self, key: &str) -> Option<String> {
        match self.services.get(key) {
            Some(ObservedService::Missing { id }) => Some(format!("it no longer exists ({id})")),
            Some(ObservedService::Unreachable { why, .. }) => {
                Some(format!("the SkySQL API does not answer for it: {why}"))
            }
            _ => self
                .unreachable
                .get(key)
                .map(|why| format!("its database does not answer: {why}")),
        }
    }
}

// One per service in a map, nearly all `Present`: boxing would only add an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "presence", rename_all = "snake_case")]
pub enum ObservedService {
    /// The id recorded in state answered 404.
    Missing {
        id: String,
    },
    /// The API did not answer for the id recorded in state (errors or timeouts after the
    /// retries): a region outage, not a deletion. Only a failover away from it, or a primary
    /// that a failover already replaced, may be planned around it; anything else is an error.
    Unreachable {
        id: String,
        why: String,
    },
    Present(RemoteService),
}

/// The managed fields of a `v1.ServiceResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteService {
    pub id: String,
    pub name: String,
    pub status: ServiceStatus,
    pub provider: String,
    pub region: String,
    /// Empty when the API left it out.
    #[serde(default)]
    pub architecture: String,
    pub size: String,
    pub nodes: u32,
    pub storage: u32,
    pub ssl_enabled: bool,
    pub fqdn: Option<String>,
    pub port: Option<u16>,
    pub outbound_ips: Vec<String>,
    /// All its tags, ownership tags included (see [`crate::ownership`]).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The custom configuration attached to it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_id: Option<String>,
}

impl RemoteService {
    /// What refresh keeps of a service the API reports.
    pub fn from_api(s: &skyplan_api::types::ServiceResponse) -> RemoteService {
        RemoteService {
            id: s.id.clone(),
            name: s.name.clone(),
            status: s.status.clone(),
            provider: s.provider.clone(),
            region: s.region.clone(),
            architecture: s.architecture.clone(),
            size: s.size.clone(),
            nodes: u32::try_from(s.nodes).unwrap_or(0),
            storage: u32::try_from(s.storage_volume.size).unwrap_or(0),
            ssl_enabled: s.ssl_enabled,
            fqdn: Some(s.fqdn.clone()).filter(|f| !f.is_empty()),
            port: s.readwrite_port(),
            outbound_ips: s.outbound_ips.clone(),
            tags: s.tags.clone().unwrap_or_default(),
            config_id: s.config_id.clone().filter(|c| !c.is_empty()),
        }
    }

    /// What the API reports for a service that is ready and exactly as `rec` records it
    /// (tests and benchmarks build "in sync" observations from it).
    pub fn as_recorded(rec: &crate::state::ServiceRecord) -> RemoteService {
        RemoteService {
            id: rec.id.clone(),
            name: rec.spec.name.clone(),
            status: ServiceStatus::Ready,
            provider: rec.spec.provider.clone(),
            region: rec.spec.region.clone(),
            architecture: rec.spec.architecture.clone(),
            size: rec.spec.size.clone(),
            nodes: rec.spec.nodes,
            storage: rec.spec.storage,
            ssl_enabled: rec.spec.ssl_enabled,
            fqdn: rec.fqdn.clone(),
            port: rec.port,
            outbound_ips: rec.outbound_ips.clone(),
            tags: rec.spec.tags.clone(),
            config_id: rec.config_id.clone(),
        }
    }
}

/// One service's server variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedConfig {
    /// The values its recorded configuration holds, by variable name; `None` when that
    /// configuration no longer exists (or none is recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, String>>,
    /// The running server's values (`SHOW GLOBAL VARIABLES`) of the variables the topology
    /// or the configuration names, when its database answered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub running: BTreeMap<String, String>,
}

/// Parsed from `CALL sky.replication_status()` on the replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedReplication {
    /// False when the replica has no replication configured at all (empty status).
    pub configured: bool,
    pub io_running: bool,
    pub sql_running: bool,
    pub master_host: Option<String>,
    /// The account its IO thread connects as (`Master_User`), when the status names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_user: Option<String>,
    pub master_port: Option<u16>,
    pub seconds_behind_master: Option<u64>,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    pub gtid_io_pos: Option<String>,
    /// The IO thread was still reconnecting (a network error, retried by MariaDB every
    /// `Connect_Retry` seconds) after refresh waited for its next retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnecting: Option<Reconnecting>,
    /// The IO thread was reconnecting when refresh first looked and reconnected while it
    /// waited, after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnected_after: Option<u64>,
}

/// What refresh knows of an IO thread that keeps reconnecting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconnecting {
    /// MariaDB's `Connect_Retry`: seconds between attempts.
    pub retry_seconds: Option<u64>,
    /// How long ago the source started (`Uptime`), when it answered: a source that restarted
    /// within the grace period explains the reconnecting.
    pub source_up_seconds: Option<u64>,
    /// How long ago the replica itself started: its own restart explains it as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_up_seconds: Option<u64>,
}

/// Network errors after which MariaDB's IO thread keeps retrying (can't connect, connection
/// lost or gone, net read/write errors and timeouts), as opposed to refusals it will not get
/// past by retrying.
pub fn is_transient_io_error(errno: u32) -> bool {
    matches!(errno, 2002 | 2003 | 2005 | 2006 | 2013 | 1158..=1161)
}

/// Errors an IO thread may report for a while right after its source or itself restarted,
/// and then get past on its own: the network ones, and refusals of a server still starting
/// (access denied before its grant tables and accounts are in place, host blocked or not yet
/// allowed, too many connections, a TLS handshake cut short). Only a restart within the
/// reconnect grace makes them "reconnecting"; otherwise they are broken replication.
pub fn is_restart_io_error(errno: u32) -> bool {
    is_transient_io_error(errno) || matches!(errno, 1040 | 1045 | 1129 | 1130 | 2026)
}

/// Make the state say what refresh saw (`plan --refresh-only`): gone services are forgotten,
/// resized ones take their real size, unhealthy links are marked so, and a link a replica of
/// `topology` already has that the state does not record is recorded as it is
/// (`drift::kept_links`), and so is what refresh proves of a switchover an apply left at its
/// fencing step (`drift::settle_role_changes`).
pub fn record_observed(
    state: &mut crate::state::State,
    topology: &crate::topology::Topology,
    observed: &Observed,
) {
    observed.record_last_seen(state);
    let res = &mut state.resources;
    for (key, o) in &observed.services {
        match o {
            // Not answering is not gone: the record stays as it is.
            ObservedService::Unreachable { .. } => {}
            ObservedService::Missing { .. } => {
                res.services.remove(key);
                res.restores.remove(key);
                res.replications.remove(key);
                res.backups.remove(key);
                // The grant that admitted the gone replica stays while its entries are still on
                // the source: skyplan still owns them, and revokes them when it next plans.
            }
            ObservedService::Present(r) => {
                if let Some(rec) = res.services.get_mut(key) {
                    rec.spec.size = r.size.clone();
                    rec.spec.nodes = r.nodes;
                    rec.spec.storage = r.storage;
                    rec.fqdn = r.fqdn.clone();
                    rec.port = r.port;
                    rec.outbound_ips = r.outbound_ips.clone();
                    rec.status = Some(r.status.clone());
                }
            }
        }
    }
    for (key, entries) in &observed.allowlists {
        // The user's entries still there, and skyplan's grants reduced to what is left.
        if let Some(rec) = res.services.get_mut(key) {
            rec.spec
                .allow_list
                .retain(|e| skyplan_api::cidr::contains(entries, e));
        }
        for grant in res.allowlists.values_mut().filter(|a| &a.on == key) {
            grant
                .entries
                .retain(|e| skyplan_api::cidr::contains(entries, e));
        }
    }
    // Entries on a service that is gone went with it.
    let services = &res.services;
    res.allowlists
        .retain(|_, a| !a.entries.is_empty() && services.contains_key(&a.on));
    for (key, o) in &observed.replication {
        if let Some(link) = res.replications.get_mut(key) {
            link.healthy = o.configured && o.io_running && o.sql_running;
        }
    }
    for kept in crate::plan::drift::kept_links(topology, state, observed) {
        kept.record(state);
    }
    // A switchover recorded at its fencing step, found promoted or given up by the file.
    crate::plan::drift::settle_role_changes(topology, state, observed);
}
