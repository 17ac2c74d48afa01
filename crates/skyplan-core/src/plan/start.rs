//! Where a (re)configured replication channel starts: one rule for every way apply wires a
//! replica, so that no path can start from a stale position.
//!
//! The only position that is not the replica's own is the GTID of a backup that was *just*
//! restored into it (the restore replaced its data with the source's as of that GTID, and
//! nothing has replicated since). Everything else — a re-point, a re-wire of a reset channel,
//! `seed = "none"`, a channel that already ran from this source — continues from what the
//! replica has applied: its `gtid_current_pos` (`gtid_slave_pos` when the server reports no
//! current position). Starting earlier replays transactions (duplicate rows, or a
//! duplicate-key stop); starting later skips them (lost rows).

use crate::gtid::ObservedGtids;
use crate::plan::WireMode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The just-restored backup's `binlog_gtid_position` (may be empty: the source had no
    /// transaction yet).
    Backup(String),
    /// The replica's own position, as read when the channel is configured.
    Own(String),
}

impl Start {
    pub fn gtid(&self) -> &str {
        match self {
            Start::Backup(g) | Start::Own(g) => g,
        }
    }
}

/// `restored`: the GTID of the backup whose restore into this replica completed, when no
/// channel has run on it since; `own`: the replica's GTIDs, read now.
pub fn start_position(mode: WireMode, restored: Option<&str>, own: &ObservedGtids) -> Start {
    match (mode, restored) {
        (WireMode::Fresh, Some(g)) => Start::Backup(g.to_string()),
        _ => Start::Own(if own.current_pos.trim().is_empty() {
            own.slave_pos.clone()
        } else {
            own.current_pos.clone()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(current: &str, slave: &str) -> ObservedGtids {
        ObservedGtids {
            current_pos: current.into(),
            slave_pos: slave.into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_a_fresh_wire_right_after_a_restore_starts_at_the_backup() {
        let g = own("0-1-250", "0-1-250");
        assert_eq!(
            start_position(WireMode::Fresh, Some("0-1-100"), &g),
            Start::Backup("0-1-100".into())
        );
        for mode in [WireMode::Repoint, WireMode::Rewire] {
            // Even with a recorded backup: the replica has moved on since.
            assert_eq!(
                start_position(mode, Some("0-1-100"), &g),
                Start::Own("0-1-250".into())
            );
        }
        // seed = "none", or a channel that already ran here: the replica's own position.
        assert_eq!(
            start_position(WireMode::Fresh, None, &g),
            Start::Own("0-1-250".into())
        );
    }

    #[test]
    fn own_position_is_the_current_one_else_the_slave_one() {
        assert_eq!(
            start_position(WireMode::Repoint, None, &own("", "0-1-7")).gtid(),
            "0-1-7"
        );
        assert_eq!(
            start_position(WireMode::Repoint, None, &own("0-1-9,3-3-2", "0-1-7")).gtid(),
            "0-1-9,3-3-2"
        );
        // A brand-new replica: nothing applied, the beginning.
        assert_eq!(
            start_position(WireMode::Fresh, None, &own("", "")).gtid(),
            ""
        );
    }
}
