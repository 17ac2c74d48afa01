//! A server's GTIDs for the re-point and errant-transaction checks
//! ([`skyplan_core::gtid`]): `CALL sky.gtid_status()` plus where its binlogs begin.
//!
//! SkySQL's procedures do not say where a server's binlogs begin, so this reads it with
//! `SHOW BINARY LOGS` and `SHOW BINLOG EVENTS` on the oldest one (read-only; the service's
//! admin user may run both). When that is refused the beginning is unknown and the plan
//! re-seeds rather than guess.

use std::collections::BTreeMap;

use mysql_async::Params;

use super::error::SqlError;
use super::status::NamedRow;
use super::SqlConn;
use crate::gtid::{GtidSet, ObservedGtids};

/// How many events of the oldest binlog are read to find the first GTID of each domain the
/// server writes that its `Gtid_list` does not name. A server restored from a backup starts a
/// fresh binlog whose first transactions come right after the list.
const FIRST_EVENTS: u32 = 500;

impl SqlConn {
    /// The GTID state and binlog beginning of this server (read-only).
    pub async fn observed_gtids(&mut self) -> Result<ObservedGtids, SqlError> {
        let g = self.gtid_status().await?;
        let mut observed = ObservedGtids {
            binlog_state: g.binlog_state.unwrap_or_default(),
            current_pos: g.current_pos.unwrap_or_default(),
            slave_pos: g.slave_pos.unwrap_or_default(),
            binlog_start: None,
        };
        let served = GtidSet::parse(&observed.binlog_state).map_err(|e| {
            self.unexpected("CALL sky.gtid_status()", format!("gtid_binlog_state: {e}"))
        })?;
        // What came in by replication or a restore (the only history that can predate the
        // binlogs without being named in their Gtid_list).
        // Unreadable: then every domain could have come in, and none is inferred.
        let received = GtidSet::parse(&observed.slave_pos).ok();
        observed.binlog_start = match self.binlog_events_of_oldest().await {
            Ok(rows) => Some(binlog_start(&rows, &served, received.as_ref())),
            Err(e) => {
                tracing::info!("cannot read where {}'s binlogs begin: {e}", self.endpoint());
                None
            }
        };
        Ok(observed)
    }

    /// `MASTER_GTID_WAIT(pos, timeout)` on a replica: whether its SQL thread applied `pos`
    /// (every domain) within `timeout`. Read-only: it only waits.
    pub async fn master_gtid_wait(
        &mut self,
        pos: &str,
        timeout: std::time::Duration,
    ) -> Result<bool, SqlError> {
        super::validate_gtid(pos)?;
        let what = "SELECT MASTER_GTID_WAIT(?, ?)";
        let sql = "SELECT MASTER_GTID_WAIT(?, ?) AS reached";
        let params = Params::Positional(vec![pos.into(), timeout.as_secs_f64().into()]);
        let sets = self.call(what, sql, params).await?;
        // 0: reached; -1: timed out; NULL: the server could not wait (not a replica).
        let value = sets
            .iter()
            .flatten()
            .find_map(|r| r.get("reached").ok().flatten().map(str::to_string));
        Ok(value.as_deref() == Some("0"))
    }

    /// Wait until this replica's SQL thread applied `pos`, at most `timeout`, and stop waiting
    /// as soon as the SQL thread stops on an error: `MASTER_GTID_WAIT` alone would wait out its
    /// whole timeout for a position a broken thread never applies (during a switchover, with
    /// the old primary fenced meanwhile). Waits in slices of a second, reading the replication
    /// status between them.
    pub async fn wait_applied(
        &mut self,
        pos: &str,
        timeout: std::time::Duration,
    ) -> Result<Applied, SqlError> {
        const SLICE: std::time::Duration = std::time::Duration::from_secs(1);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.master_gtid_wait(pos, left.min(SLICE)).await? {
                return Ok(Applied::Reached);
            }
            let st = self.replication_status().await?;
            if !st.sql_running && st.last_sql_errno != 0 {
                return Ok(Applied::Broke {
                    errno: st.last_sql_errno,
                    error: st.last_sql_error,
                });
            }
            if left <= SLICE {
                return Ok(Applied::TimedOut {
                    io_errno: st.last_io_errno,
                    io_error: st.last_io_error,
                });
            }
        }
    }

    async fn binlog_events_of_oldest(&mut self) -> Result<Vec<NamedRow>, SqlError> {
        let what = "SHOW BINARY LOGS";
        let logs = self.call(what, what, Params::Empty).await?;
        let Some(oldest) = logs
            .iter()
            .flatten()
            .find_map(|r| r.get("Log_name").ok().flatten().map(str::to_string))
        else {
            return Ok(Vec::new());
        };
        // SHOW BINLOG EVENTS takes no parameters: the name is the server's own, checked here.
        if !oldest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(self.unexpected(what, format!("unexpected binlog name {oldest:?}")));
        }
        let sql = format!("SHOW BINLOG EVENTS IN '{oldest}' LIMIT {FIRST_EVENTS}");
        let sets = self.call("SHOW BINLOG EVENTS", &sql, Params::Empty).await?;
        Ok(sets.into_iter().flatten().collect())
    }
}

/// Per domain of `served`, the sequence number just before the first transaction the binlog
/// holds: the oldest binlog's `Gtid_list` (the state before its first event) where it names
/// the domain, else the first GTID event of that domain minus one. A domain the list does not
/// name and that nothing brought in (`received`: `gtid_slave_pos`) began after the oldest
/// binlog did, so the binlogs hold all of it (e.g. a new primary's own writes, after a
/// failover): 0. Domains found in none of these are left out (unknown).
fn binlog_start(
    events: &[NamedRow],
    served: &GtidSet,
    received: Option<&GtidSet>,
) -> BTreeMap<u32, u64> {
    let mut start: BTreeMap<u32, u64> = BTreeMap::new();
    let info = |r: &NamedRow| r.get("Info").ok().flatten().unwrap_or("").to_string();
    let kind = |r: &NamedRow| r.get("Event_type").ok().flatten().unwrap_or("").to_string();
    let mut listed = false;
    if let Some(list) = events.iter().find(|r| kind(r) == "Gtid_list") {
        let text = info(list);
        let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
        if let Ok(set) = GtidSet::parse(inner) {
            listed = true;
            for d in set.domains() {
                start.insert(d, set.last_seq(d).unwrap_or(0));
            }
        }
    }
    for e in events.iter().filter(|r| kind(r) == "Gtid") {
        // "BEGIN GTID 0-1-6" (a transaction) or "GTID 0-1-6" (DDL).
        let text = info(e);
        let Some(g) = text
            .split_whitespace()
            .skip_while(|w| *w != "GTID")
            .nth(1)
            .and_then(|g| GtidSet::parse(g).ok())
            .and_then(|s| s.iter().next())
        else {
            continue;
        };
        start.entry(g.domain).or_insert(g.seq.saturating_sub(1));
    }
    if let (true, Some(received)) = (listed, received) {
        for d in served.domains() {
            if !received.domains().any(|r| r == d) {
                start.entry(d).or_insert(0);
            }
        }
    }
    start.retain(|d, _| served.domains().any(|s| s == *d));
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, info: &str) -> NamedRow {
        NamedRow::new()
            .with("Event_type", Some(kind))
            .with("Info", Some(info))
    }

    #[test]
    fn the_beginning_comes_from_the_gtid_list_then_the_first_gtid_events() {
        let events = [
            event("Format_desc", "Server ver: 11.4"),
            event("Gtid_list", "[0-1-200,0-2-150]"),
            event("Binlog_checkpoint", "mariadb-bin.000003"),
            event("Gtid", "BEGIN GTID 0-1-201"),
            event("Gtid", "GTID 14-3-8"),
            event("Gtid", "BEGIN GTID 14-3-9"),
        ];
        let served = GtidSet::parse("0-1-300,14-3-20").unwrap();
        let none = GtidSet::default();
        let start = binlog_start(&events, &served, Some(&none));
        assert_eq!(start, BTreeMap::from([(0, 200), (14, 7)]));
        // A restored server's fresh binlog: empty list, the first transaction tells.
        let events = [
            event("Gtid_list", "[]"),
            event("Gtid", "BEGIN GTID 0-1-101"),
        ];
        let served = GtidSet::parse("0-1-130,5-5-2").unwrap();
        let restored = GtidSet::parse("0-1-100,5-5-1").unwrap();
        assert_eq!(
            binlog_start(&events, &served, Some(&restored)),
            BTreeMap::from([(0, 100)]),
            "domain 5 came in by a restore and is not found: unknown, not 0"
        );
        // A domain nothing brought in began after the binlogs did: they hold all of it.
        let own = GtidSet::parse("0-1-100").unwrap();
        assert_eq!(
            binlog_start(&events, &served, Some(&own)),
            BTreeMap::from([(0, 100), (5, 0)])
        );
    }
}

/// How [`SqlConn::wait_applied`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Reached,
    /// The SQL thread stopped on this error before it applied the position.
    Broke {
        errno: u32,
        error: String,
    },
    /// Still not applied at the deadline; the IO thread's last error, if any (0: none).
    TimedOut {
        io_errno: u32,
        io_error: String,
    },
}

impl Applied {
    /// Why the position was not applied, for a message ("" once reached).
    pub fn why_not(&self, timeout: std::time::Duration) -> String {
        match self {
            Applied::Reached => String::new(),
            Applied::Broke { errno, error } => {
                format!("its SQL thread stopped on error {errno}: {error}")
            }
            Applied::TimedOut { io_errno, io_error } => format!(
                "not within {timeout:?}{}",
                if *io_errno != 0 {
                    format!(" (IO error {io_errno}: {io_error})")
                } else {
                    String::new()
                }
            ),
        }
    }
}
