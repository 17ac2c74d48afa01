//! One step of a plan. An action carries what the executor needs to carry it out and what a
//! reviewer needs to judge it (before/after values, whether it wipes data).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::topology::{Seed, ServiceSpec};

/// Index of an action inside its plan.
pub type ActionId = usize;

/// How an action changes the world, in Terraform's vocabulary (drives markers and the summary:
/// adopt is `<=`, read is `=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Take over an existing service the state does not record (and bring it to the file).
    Adopt,
    Create,
    Update,
    Replace,
    Delete,
    /// Use something that exists as it is (an existing backup as a seed): nothing is made,
    /// changed or billed, so it is not counted among the adds.
    Read,
}

impl Change {
    pub fn marker(self) -> &'static str {
        match self {
            Change::Adopt => "<=",
            Change::Read => "=",
            Change::Create => "+",
            Change::Update => "~",
            Change::Replace => "-/+",
            Change::Delete => "-",
        }
    }
}

/// Why replication is (re)wired, which decides how the executor starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireMode {
    /// Configure from the seeding backup's GTID position, grant, start, verify.
    Fresh,
    /// The channel is configured but stopped: start it again and verify.
    Restart,
    /// The channel was reset: configure again from the replica's own GTID position.
    Rewire,
    /// Point the replica at another source that shares its history, from its own GTID
    /// position: no backup, no restore (the plan checked the new source has every
    /// transaction the replica applied and still holds the next one in its binlogs; apply
    /// checks again, after waiting for the new source to catch up).
    Repoint,
}

/// What to do. Service keys refer to the topology (and the state's maps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionKind {
    /// Create a service and wait until it is ready.
    CreateService { key: String, spec: ServiceSpec },
    /// Record an existing service (`service_id`, found by name) under `key`, as it really is (`from`),
    /// then change in place what differs from the topology (`to`): size, nodes, storage, and
    /// allowlist entries the topology lists (entries it does not list are not touched).
    AdoptService {
        key: String,
        /// The id of the existing service.
        service_id: String,
        from: ServiceSpec,
        to: ServiceSpec,
    },
    /// Change size / nodes / storage / allow list / tags in place.
    UpdateService {
        key: String,
        from: ServiceSpec,
        to: ServiceSpec,
    },
    /// Delete the service and create it again: the only way to change an immutable field.
    ReplaceService {
        key: String,
        from: ServiceSpec,
        to: ServiceSpec,
    },
    /// Delete the service and wait until it is gone.
    DeleteService { key: String, spec: ServiceSpec },
    /// Obtain a full backup of `source` to seed `replicas`: a new one, the latest, or a given id.
    Backup {
        source: String,
        seed: Seed,
        replicas: Vec<String>,
    },
    /// Restore the seeding backup of `source` into `replica`: wipes the replica's data.
    Restore { source: String, replica: String },
    /// Add the replica's outbound IPs to the source's allowlist.
    AllowlistGrant { source: String, replica: String },
    /// Remove the entries skyplan added for the replica from the source's allowlist.
    AllowlistRevoke {
        source: String,
        replica: String,
        entries: Vec<String>,
    },
    /// Wire GTID replication source → replica and wait until it is healthy.
    Replicate {
        source: String,
        replica: String,
        ssl: bool,
        mode: WireMode,
    },
    /// Stop and reset replication on the replica (link removed or re-pointed).
    StopReplication { source: String, replica: String },
    /// Drop a replication user (`user@host`) that no link owns, on `on` (a chain's root, so
    /// the drop replicates to every replica).
    DropReplicationUser {
        /// The key of the service (a chain's root) the user is dropped on.
        on: String,
        /// The account, `user@host`.
        user: String,
    },
    /// Make a service writable for clients (a primary) or read-only (a replica), as the
    /// topology says (`read_only`).
    SetRole {
        key: String,
        /// true opens the service for client writes (primary), false makes it read-only for
        /// clients (replica).
        writable: bool,
    },
    /// Start (`active`) or stop a service through the API, as the topology's `is_active` says,
    /// and wait until it is `ready` or `stopped`. Stopping keeps the data.
    SetPower {
        key: String,
        /// true starts the service (its data is kept), false stops it (as is_active = false
        /// asks).
        active: bool,
    },
    /// Make `new` (a replica of `old`) the primary, with no data lost and none copied: fence
    /// `old` (read-only, client sessions ended), wait until `new` applied `old`'s final GTID,
    /// stop and reset replication on `new` and open it for writes, then re-point `old` at
    /// `new` from its own position. Before `new` is opened, any failure unfences `old` and
    /// changes nothing else.
    Switchover {
        /// The key of the primary that becomes a replica.
        old: String,
        /// The key of the replica that becomes the primary.
        new: String,
        /// The old primary's new link: over TLS or not.
        ssl: bool,
        /// The candidate's lag must be under this before the old primary is fenced.
        max_lag_seconds: u64,
    },
    /// Make `new` (a replica of the lost primary `old`) the primary with what it received
    /// (planned only with `--allow-data-loss`): wait until it applied its relay log, stop
    /// and reset replication, open it for writes. `old` is not touched: when it is not
    /// `old_gone`, the state marks it replaced, so that it is fenced when it answers again.
    Failover {
        /// The key of the lost primary.
        old: String,
        /// The key of the replica that becomes the primary.
        new: String,
        /// The lost primary no longer exists (otherwise it does not answer, and is fenced when
        /// it answers again).
        old_gone: bool,
        /// A surviving sibling (another replica of `old`) that received transactions `new`
        /// lacks: before `new` is opened, it replicates from that sibling by GTID (a
        /// temporary link, its allowlist entry revoked after) until it holds all of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catch_up_from: Option<String>,
    },
    /// Keep `key`'s server variables in its custom configuration (SkySQL's Configuration
    /// Manager, one per service): create it, named `name`, when there is no `config_id` (or the
    /// recorded one is gone), set `set` and unset `unset` there, attach it when `attach`, and
    /// set on the running server the dynamic variables of `live` (`SET GLOBAL`), so that what
    /// the configuration says holds now and after every restart.
    ConfigureService {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_id: Option<String>,
        name: String,
        topology: String,
        /// The configuration's MariaDB version: the service's (absent: read from the API at
        /// apply).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<String>,
        /// Everything the configuration should hold (a new one gets all of it).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        values: BTreeMap<String, String>,
        /// What differs from what it holds now: set there.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        set: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unset: Vec<String>,
        #[serde(default)]
        attach: bool,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        live: BTreeMap<String, String>,
    },
    /// Restart the service (stop, then start, through the API; its data is kept) so that
    /// `variables`, which take effect only when the server starts, do. Its clients are
    /// disconnected while it restarts.
    RestartService {
        key: String,
        /// The variables that take effect only when the server starts.
        variables: Vec<String>,
    },
}

/// One step of the plan: what it does (`kind`, with that kind's fields), what it changes, and
/// which steps must finish first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Action {
    pub id: ActionId,
    /// Stable name: service.<key>, backup.<source>, restore.<replica>,
    /// allowlist.<source>.<replica>, replication.<replica>, replication_user.<service>.<user>,
    /// switchover.<new primary>, failover.<new primary>, role.<key>, power.<key>, config.<key>,
    /// restart.<key>.
    #[schemars(pattern(ADDRESS))]
    pub address: String,
    pub change: Change,
    #[serde(flatten)]
    pub kind: ActionKind,
    /// One line for reviewers.
    pub summary: String,
    /// Ids of actions that must finish first (earlier in the plan).
    pub depends_on: Vec<ActionId>,
    /// Values before the action; null when the object does not exist yet. Values not known
    /// until apply are the string "(known after apply)".
    pub before: Option<Value>,
    /// Values after the action; null when it will not exist.
    pub after: Option<Value>,
    /// Destroys or overwrites data: a restore, a replace, a delete.
    pub wipes_data: bool,
    /// Why the action is planned when it repairs drift (not because of the topology).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long this action is expected to take, in milliseconds (`plan::estimate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_ms: Option<u64>,
}

pub const KNOWN_AFTER_APPLY: &str = "(known after apply)";

/// What an action's address starts with: one prefix per kind of thing ([`ActionKind::address`]).
pub const ADDRESS: &str = "^(service|backup|restore|allowlist|replication|replication_user|switchover|failover|role|power|config|restart)\\.";

impl ActionKind {
    /// The address prefix and key that name this action.
    pub fn address(&self) -> String {
        match self {
            ActionKind::CreateService { key, .. }
            | ActionKind::AdoptService { key, .. }
            | ActionKind::UpdateService { key, .. }
            | ActionKind::ReplaceService { key, .. }
            | ActionKind::DeleteService { key, .. } => format!("service.{key}"),
            ActionKind::Backup { source, seed, .. } => match seed {
                Seed::LatestBackup => format!("backup.{source}.latest"),
                Seed::Backup(id) => format!("backup.{source}.{id}"),
                Seed::NewBackup | Seed::None => format!("backup.{source}"),
            },
            ActionKind::Restore { replica, .. } => format!("restore.{replica}"),
            ActionKind::AllowlistGrant { source, replica }
            | ActionKind::AllowlistRevoke {
                source, replica, ..
            } => {
                format!("allowlist.{source}.{replica}")
            }
            ActionKind::Replicate { replica, .. } | ActionKind::StopReplication { replica, .. } => {
                format!("replication.{replica}")
            }
            ActionKind::DropReplicationUser { on, user } => {
                let name = user.split_once('@').map_or(user.as_str(), |(u, _)| u);
                format!("replication_user.{on}.{name}")
            }
            ActionKind::Switchover { new, .. } => format!("switchover.{new}"),
            ActionKind::Failover { new, .. } => format!("failover.{new}"),
            ActionKind::SetRole { key, .. } => format!("role.{key}"),
            ActionKind::SetPower { key, .. } => format!("power.{key}"),
            ActionKind::ConfigureService { key, .. } => format!("config.{key}"),
            ActionKind::RestartService { key, .. } => format!("restart.{key}"),
        }
    }

    /// The services this action mutates (the executor serialises mutations per service).
    pub fn mutated_services(&self) -> Vec<&str> {
        match self {
            ActionKind::CreateService { key, .. }
            | ActionKind::AdoptService { key, .. }
            | ActionKind::UpdateService { key, .. }
            | ActionKind::ReplaceService { key, .. }
            | ActionKind::DeleteService { key, .. } => vec![key],
            ActionKind::Backup { source, .. } => vec![source],
            ActionKind::Restore { replica, .. } => vec![replica],
            ActionKind::AllowlistGrant { source, .. }
            | ActionKind::AllowlistRevoke { source, .. } => vec![source],
            ActionKind::Replicate { replica, .. } | ActionKind::StopReplication { replica, .. } => {
                vec![replica]
            }
            ActionKind::DropReplicationUser { on, .. } => vec![on],
            ActionKind::Switchover { old, new, .. } => vec![old, new],
            // The lost primary is not touched (only its record); a catch-up sibling's
            // allowlist is.
            ActionKind::Failover {
                new, catch_up_from, ..
            } => std::iter::once(new)
                .chain(catch_up_from)
                .map(String::as_str)
                .collect(),
            ActionKind::SetRole { key, .. }
            | ActionKind::SetPower { key, .. }
            | ActionKind::ConfigureService { key, .. }
            | ActionKind::RestartService { key, .. } => vec![key],
        }
    }
}
