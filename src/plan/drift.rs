//! Drift: differences between what skyplan last applied (state) and what refresh observed,
//! reported apart from the changes the topology asks for.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The id recorded in state no longer exists (404).
    ServiceDeleted,
    ServiceFailed,
    ServiceStopped,
    /// Size, nodes or storage changed outside skyplan.
    ServiceResized,
    /// An allowlist entry skyplan owns was removed.
    AllowlistEntryRemoved,
    /// Entries added by hand (reported, left alone).
    AllowlistEntryAdded,
    /// A user-listed allow_list entry is missing.
    AllowListChanged,
    ReplicationStopped,
    /// IO or SQL thread stopped on an error.
    ReplicationBroken,
    /// The channel was reset: no replication configured.
    ReplicationMissing,
    /// Replicating from another host/port than the topology's source.
    ReplicationRepointed,
    ReplicationLagging,
}

impl DriftKind {
    /// Informational drift is reported but does not by itself make `--detailed-exitcode` exit 2.
    pub fn is_informational(self) -> bool {
        matches!(self, DriftKind::AllowlistEntryAdded)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// Address of the resource, e.g. `service.secondary`.
    pub resource: String,
    pub kind: DriftKind,
    /// What skyplan expected (from state).
    pub before: Value,
    /// What refresh found.
    pub after: Value,
    pub detail: String,
}
