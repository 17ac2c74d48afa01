//! The state file's content: what skyplan created and knows about remote objects.
//! It holds ids and derived facts, never secrets (no API key, no passwords).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use skyplan_api::types::{BackupStatus, ServiceStatus};

use crate::topology::ServiceSpec;

/// Current state format version. Files with a higher version are refused, not mangled.
/// 2 added `durations`: a skyplan that knows only 1 says "written by a newer skyplan" rather
/// than calling the field corrupt. Version 1 files are read as they are.
pub const STATE_FORMAT_VERSION: u32 = 2;

/// A lineage: a UUID.
const UUID: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// An RFC 3339 time, as skyplan writes them (`2024-05-01T12:00:00Z`).
const RFC3339: &str = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}";

/// What skyplan created and knows about remote objects (format_version 2; version 1 files,
/// without durations, are read as they are). Holds ids and derived facts, never secrets.
/// Written by skyplan; edit only with care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// State format version; a skyplan refuses versions newer than it supports.
    #[schemars(range(min = 1))]
    pub format_version: u32,
    /// UUID set once when the state is created; states of different lineage are different
    /// states (another topology).
    #[schemars(pattern(UUID))]
    pub lineage: String,
    /// Incremented on every write; writes are compare-and-swap on it.
    pub serial: u64,
    /// The cloud this state manages: the API endpoint, or `local:<instance id>` for an
    /// emulator. Recorded by the first apply; a state is refused against another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// What skyplan manages. Always written (`{}` when empty), so a state without it is
    /// damaged, not empty.
    //
    // Required: read as empty, a damaged state would make every service look new.
    pub resources: Resources,
    /// How long recent actions took here, in milliseconds, newest last (at most 5 per key),
    /// keyed kind/provider/storage (e.g. create/gcp/100): what the plan's estimate
    /// (`plan::estimate`) is refined by. Absent until an apply ran a step.
    #[serde(
        default,
        skip_serializing_if = "crate::plan::estimate::Durations::is_empty"
    )]
    pub durations: crate::plan::estimate::Durations,
}

impl State {
    /// A state never stored, of the given lineage. The core draws no randomness: the binary
    /// makes a new lineage (`skyplan::state::new_state`), tests pass a fixed one.
    pub fn with_lineage(lineage: impl Into<String>) -> State {
        State {
            format_version: STATE_FORMAT_VERSION,
            lineage: lineage.into(),
            serial: 0,
            endpoint: None,
            resources: Resources::default(),
            durations: Default::default(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

/// Every map is keyed by the topology's service key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Keyed by the service key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServiceRecord>,
    /// Keyed by the *replica* key: the backup that seeds that replica.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backups: BTreeMap<String, BackupRecord>,
    /// Keyed by the replica (restore target) key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub restores: BTreeMap<String, RestoreRecord>,
    /// Allowlist entries skyplan added, keyed by the replica key whose outbound IPs they admit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allowlists: BTreeMap<String, AllowlistRecord>,
    /// Keyed by the replica key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replications: BTreeMap<String, ReplicationRecord>,
    /// Replication users skyplan's wiring created, keyed by `user@host`. Kept until skyplan
    /// drops the user, also after its link is gone (a replica deleted outside skyplan, or
    /// restored and not yet wired again), so that dropping it is a planned cleanup, not drift.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replication_users: BTreeMap<String, ReplicationUserRecord>,
    /// Every backup skyplan took (to seed replicas), by backup id: they stay in SkySQL, and
    /// are billed, after the replicas they seeded were restored (SkySQL's API has no call to
    /// delete a backup), so they are listed (`state list`, `output`, `destroy`) rather than
    /// forgotten. Kept until `state rm`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub made_backups: BTreeMap<String, MadeBackupRecord>,
}

/// A backup skyplan took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MadeBackupRecord {
    /// Key of the backed-up service.
    #[schemars(length(min = 1))]
    pub source: String,
    /// Its service id then.
    #[schemars(length(min = 1))]
    pub service_id: String,
    /// When it finished (RFC 3339), when the API said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_position: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationUserRecord {
    /// The service the GRANT ran on (a chain's root): where the user is dropped.
    #[schemars(length(min = 1))]
    pub on: String,
    /// The replica the user was created for.
    #[schemars(length(min = 1))]
    pub replica: String,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
            && self.backups.is_empty()
            && self.restores.is_empty()
            && self.allowlists.is_empty()
            && self.replications.is_empty()
            && self.replication_users.is_empty()
            && self.made_backups.is_empty()
    }
}

/// A long operation started but not yet seen finished: resumed by polling after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InFlight {
    pub operation: Operation,
    /// RFC 3339.
    #[schemars(pattern(RFC3339))]
    pub started_at: String,
    /// Operation-specific id (restore id, backup schedule id) when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
}

/// The kind of a long operation in flight (`"create"`, … in the state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Backup,
    Restore,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Backup => "backup",
            Operation::Restore => "restore",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    /// SkySQL service id.
    #[schemars(length(min = 1))]
    pub id: String,
    /// The spec as last applied.
    pub spec: ServiceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub outbound_ips: Vec<String>,
    /// Last status seen (e.g. "ready").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub status: Option<ServiceStatus>,
    /// After a restore the service takes its credentials from this service (key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    /// Set on a primary that a failover replaced while it could not be reached (key of the
    /// new primary): it holds data nobody reviewed, so when it answers again it is fenced
    /// first, then rejoins the new primary by GTID or stays fenced. Cleared once it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_over_to: Option<String>,
    /// Set on a replica being made the primary by a switchover, before the first effect (the
    /// fence), and cleared when the old primary follows it: an apply killed in between leaves
    /// it, so the next plan resumes the switchover by GTID (or rolls it back when the
    /// candidate was never opened) and never re-seeds on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_change: Option<RoleChange>,
    /// Set (RFC 3339) when an apply starts with `--replace` naming this service, and cleared
    /// when its replacement or re-seed is done: an apply interrupted in between leaves it, and
    /// the next plan carries the replace out as if it were asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(RFC3339))]
    pub replace_requested: Option<String>,
    /// The last GTID state skyplan read on this service: what a failover's loss estimate
    /// compares the candidate with when this service no longer answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<LastSeen>,
    /// The custom configuration (Configuration Manager) skyplan keeps for this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub config_id: Option<String>,
    /// The values skyplan set in that configuration, by variable name (`read_only` by role
    /// included).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

impl ServiceRecord {
    /// A record of service `id` with `spec` and nothing else known yet (no endpoint, no link
    /// bookkeeping): the base the callers fill in with `..ServiceRecord::new(id, spec)`.
    pub fn new(id: String, spec: ServiceSpec) -> ServiceRecord {
        ServiceRecord {
            id,
            spec,
            fqdn: None,
            port: None,
            outbound_ips: Vec::new(),
            status: None,
            credentials_from: None,
            failed_over_to: None,
            role_change: None,
            replace_requested: None,
            last_seen: None,
            in_flight: None,
            config_id: None,
            config: Default::default(),
        }
    }
}

/// A switchover in progress, as recorded on the candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// The old primary (key).
    #[schemars(length(min = 1))]
    pub from: String,
    pub step: RoleChangeStep,
    /// RFC 3339.
    #[schemars(pattern(RFC3339))]
    pub started_at: String,
}

/// How far a switchover got: the point of no return is the candidate's opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleChangeStep {
    /// The old primary may be fenced; the candidate is not open yet (it may have stopped
    /// replicating, caught up).
    Fencing,
    /// The candidate is the primary; the old primary is fenced and not yet following it.
    Opened,
}

/// One reading of a service's GTIDs, kept in the state (never secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LastSeen {
    /// `gtid_binlog_state` as the server spelled it.
    pub gtid_binlog_state: String,
    /// RFC 3339.
    pub at: String,
    /// For a replica: how far behind its source it was then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRecord {
    /// Key of the backed-up (source) service.
    pub source: String,
    /// Backup id (absent while only the schedule exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_position: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub status: Option<BackupStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRecord {
    pub backup_id: String,
    /// Service id the backup was restored into (a re-created service needs a new restore).
    pub target_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_id: Option<String>,
    pub completed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowlistRecord {
    /// Key of the service whose allowlist holds the entries (the source).
    pub on: String,
    /// CIDRs skyplan added and owns (it never removes entries it does not own).
    pub entries: Vec<String>,
    /// Entries skyplan added for this replica on an earlier source, not revoked yet: the
    /// replica was re-pointed while that source did not answer (a failover). Still skyplan's,
    /// so they are revoked once it answers again, never mistaken for entries added by hand.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<EarlierGrant>,
}

/// Allowlist entries of an earlier grant, on another source (`AllowlistRecord::earlier`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlierGrant {
    /// Key of the service whose allowlist holds them.
    pub on: String,
    pub entries: Vec<String>,
}

impl AllowlistRecord {
    /// The record after `on`'s entries are granted for the replica: a grant on another source
    /// than before keeps the one before as earlier (until its revoke), unless that source is
    /// no longer a service of the state (nothing to revoke); an earlier grant on `on` itself
    /// is this one now.
    pub fn granted(
        previous: Option<&AllowlistRecord>,
        on: &str,
        entries: Vec<String>,
        services: &BTreeMap<String, ServiceRecord>,
    ) -> AllowlistRecord {
        let mut earlier: Vec<EarlierGrant> = Vec::new();
        if let Some(p) = previous {
            earlier.extend(p.earlier.iter().filter(|g| g.on != on).cloned());
            if p.on != on && !p.entries.is_empty() && services.contains_key(&p.on) {
                earlier.retain(|g| g.on != p.on);
                earlier.push(EarlierGrant {
                    on: p.on.clone(),
                    entries: p.entries.clone(),
                });
            }
        }
        AllowlistRecord {
            on: on.to_string(),
            entries,
            earlier,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplicationRecord {
    /// Key of the source service.
    pub source: String,
    pub source_host: String,
    pub source_port: u16,
    /// GTID position replication was started from (the backup's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_position: Option<String>,
    pub ssl: bool,
    /// Replication user created on the source by the grant (no password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_user: Option<String>,
    /// True once start_replication ran and status was verified healthy.
    pub healthy: bool,
    /// When skyplan wired it (RFC 3339): a source that started after this restarted, which
    /// explains a replica reconnecting (see `reconnect_grace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wired_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(keys: &[&str]) -> BTreeMap<String, ServiceRecord> {
        let one: ServiceRecord = serde_json::from_value(serde_json::json!({
            "id": "db1",
            "spec": {
                "name": "n", "service_type": "transactional", "topology": "standalone",
                "provider": "gcp", "region": "us-east4", "architecture": "amd64",
                "size": "sky-2x8", "storage": 100, "nodes": 1, "ssl_enabled": true,
                "allow_list": [], "tags": {}
            }
        }))
        .unwrap();
        keys.iter().map(|k| (k.to_string(), one.clone())).collect()
    }

    fn entries(ip: &str) -> Vec<String> {
        vec![format!("{ip}/32")]
    }

    #[test]
    fn a_grant_elsewhere_keeps_the_one_before_until_its_revoke() {
        let all = services(&["p", "n", "r"]);
        let first = AllowlistRecord::granted(None, "p", entries("10.0.0.3"), &all);
        assert!(first.earlier.is_empty());
        // The same source again: nothing earlier.
        let again = AllowlistRecord::granted(Some(&first), "p", entries("10.0.0.4"), &all);
        assert!(again.earlier.is_empty());
        // Re-pointed to n (p did not answer, so no revoke ran): p's entries are kept.
        let moved = AllowlistRecord::granted(Some(&first), "n", entries("10.0.0.3"), &all);
        assert_eq!(moved.on, "n");
        assert_eq!(
            moved.earlier,
            [EarlierGrant {
                on: "p".into(),
                entries: entries("10.0.0.3")
            }]
        );
        // Back to p: its grant owns those entries again; n's become earlier.
        let back = AllowlistRecord::granted(Some(&moved), "p", entries("10.0.0.3"), &all);
        assert_eq!(back.earlier.len(), 1);
        assert_eq!(back.earlier[0].on, "n");
        // A previous source the state no longer has leaves nothing to revoke.
        let only_n = services(&["n", "r"]);
        let gone = AllowlistRecord::granted(Some(&first), "n", entries("10.0.0.3"), &only_n);
        assert!(gone.earlier.is_empty());
    }

    #[test]
    fn a_record_without_earlier_grants_is_written_as_before() {
        let a = AllowlistRecord {
            on: "p".into(),
            entries: entries("10.0.0.3"),
            ..Default::default()
        };
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"on":"p","entries":["10.0.0.3/32"]}"#);
    }
}
