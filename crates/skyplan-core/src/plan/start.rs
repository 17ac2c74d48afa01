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

use crate::gtid::{GtidSet, ObservedGtids};
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
        (WireMode::Fresh, Some(g)) if !replicated_since(g, &own.slave_pos) => {
            Start::Backup(g.to_string())
        }
        _ => Start::Own(if own.current_pos.trim().is_empty() {
            own.slave_pos.clone()
        } else {
            own.current_pos.clone()
        }),
    }
}

/// Whether replication applied anything on the replica after the restore of the backup at
/// `backup`: its `gtid_slave_pos` has a transaction beyond the backup's position. A run killed
/// while `sky.start_replication` was on its way leaves exactly that (the server started the
/// channel, the state never recorded it); starting again at the backup would replay those
/// transactions. Only `gtid_slave_pos` counts: it moves only by replication, never by what the
/// replica's own binlog holds. A position that does not parse is taken as not moved (the
/// backup's position, as before).
fn replicated_since(backup: &str, slave_pos: &str) -> bool {
    match (GtidSet::parse(backup), GtidSet::parse(slave_pos)) {
        (Ok(b), Ok(s)) => !crate::gtid::beyond(&s, &b).is_empty(),
        _ => false,
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
        assert_eq!(
            start_position(WireMode::Fresh, Some("0-1-100"), &own("0-1-100", "0-1-100")),
            Start::Backup("0-1-100".into())
        );
        let g = own("0-1-250", "0-1-250");
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
    fn a_fresh_wire_after_replication_already_ran_continues_from_the_replica() {
        // A previous run was killed while starting the channel: the replica applied 0-1-101..
        // 0-1-120 from the source before anything was recorded.
        let g = own("0-1-120", "0-1-120");
        assert_eq!(
            start_position(WireMode::Fresh, Some("0-1-100"), &g),
            Start::Own("0-1-120".into())
        );
        // From an empty backup (the source had no transaction yet) the same.
        assert_eq!(
            start_position(WireMode::Fresh, Some(""), &own("0-1-3", "0-1-3")),
            Start::Own("0-1-3".into())
        );
        // The replica's own binlog (not replication) moved its current position only.
        assert_eq!(
            start_position(
                WireMode::Fresh,
                Some("0-1-100"),
                &own("0-1-100,7-7-2", "0-1-100")
            ),
            Start::Backup("0-1-100".into())
        );
        // Nothing replicated yet (or a restore that leaves gtid_slave_pos empty).
        assert_eq!(
            start_position(WireMode::Fresh, Some("0-1-100"), &own("", "")),
            Start::Backup("0-1-100".into())
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
