//! Who holds the lock and who wrote each version: plain records stored beside the state.
//! Filling them in for the running process (pid, host, clock) is the binary's job.

use serde::{Deserialize, Serialize};

/// Who holds a lock: written next to the state so a refused writer can name the holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random id, the argument of `skyplan force-unlock`.
    pub id: String,
    pub pid: u32,
    pub host: String,
    pub user: String,
    /// The holder's command line.
    pub command: String,
    /// RFC 3339.
    pub created_at: String,
    /// The holder host's boot id (Linux `/proc/sys/kernel/random/boot_id`): a lock from an
    /// earlier boot of this host has no live holder, whatever runs under its pid now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// When the holder process started, in clock ticks since that boot (Linux
    /// `/proc/PID/stat` field 22). With `boot_id` and `pid` it names the holder exactly: a
    /// live pid with another start time is a reused pid, and the lock is stale at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_ticks: Option<u64>,
}

/// The process that wrote a state version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Writer {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
}

/// One stored version of the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub serial: u64,
    pub lineage: String,
    /// RFC 3339, when known.
    pub written_at: Option<String>,
    pub writer: Option<Writer>,
}
