//! A server's GTIDs for the re-point and errant-transaction checks
//! ([`skyplan_core::gtid`]): `CALL sky.gtid_status()` plus where its binlogs begin.
//!
//! SkySQL's procedures do not say where a server's binlogs begin, so this reads it with
//! `SHOW BINARY LOGS` and `SHOW BINLOG EVENTS` (read-only; the service's admin user may run
//! both): the `Gtid_list` event at the head of the oldest binlog names, per domain, the last
//! transaction before it. A domain that list does not name began later (a new primary's own
//! writes, or the other side's after a switchover); its first event is looked for in the one
//! binlog where it must be: the file before the first whose `Gtid_list` names the domain (or
//! the newest). That file is read in pages until the event is found, never a bounded prefix
//! of it. When any of this is refused the beginning is unknown and the plan says so.

use std::collections::BTreeMap;

use mysql_async::Params;

use super::error::SqlError;
use super::status::NamedRow;
use super::SqlConn;
use crate::gtid::{GtidSet, ObservedGtids};

/// Events read per `SHOW BINLOG EVENTS` page while looking for a domain's first event.
const PAGE: u32 = 2000;

/// The statement of [`SqlConn::master_gtid_wait`] (prepared once per connection).
const MASTER_GTID_WAIT: &str = "SELECT MASTER_GTID_WAIT(?, ?) AS reached";

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
        observed.binlog_start = match self.binlog_start(&served).await {
            Ok(start) => Some(start),
            Err(e) => {
                tracing::info!("cannot read where {}'s binlogs begin: {e}", self.endpoint());
                None
            }
        };
        Ok(observed)
    }

    /// Prepare [`SqlConn::master_gtid_wait`]'s statement now, so a later wait costs one round
    /// trip, not two (prepare + execute): a switchover does it before its fence, where the
    /// round trips do not stop the application's writes.
    pub async fn prepare_gtid_wait(&mut self) -> Result<(), SqlError> {
        self.prepare("SELECT MASTER_GTID_WAIT(?, ?)", MASTER_GTID_WAIT)
            .await
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
        let sql = MASTER_GTID_WAIT;
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

    /// Per domain of `served` (the binlog state), the sequence number just before the first
    /// transaction of it the binlogs hold (see the module's doc). Domains whose first event
    /// was not found are left out (unknown).
    async fn binlog_start(&mut self, served: &GtidSet) -> Result<BTreeMap<u32, u64>, SqlError> {
        let what = "SHOW BINARY LOGS";
        let logs = self.call(what, what, Params::Empty).await?;
        let files: Vec<String> = logs
            .iter()
            .flatten()
            .filter_map(|r| r.get("Log_name").ok().flatten().map(str::to_string))
            .collect();
        for f in &files {
            // SHOW BINLOG EVENTS takes no parameters: the names are the server's own, checked.
            if !f
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(self.unexpected(what, format!("unexpected binlog name {f:?}")));
            }
        }
        let mut lists = Vec::new();
        let mut pending: Vec<u32> = served.domains().collect();
        // Gtid_lists oldest first, until every domain is named by one (or the files end).
        for f in &files {
            if pending.is_empty() {
                break;
            }
            let head = self.binlog_events(f, None, 4).await?;
            let list = gtid_list(&head).ok_or_else(|| {
                self.unexpected(
                    "SHOW BINLOG EVENTS",
                    format!("no Gtid_list event at the head of {f}"),
                )
            })?;
            pending.retain(|d| list.last_seq(*d).is_none());
            lists.push(list);
        }
        let (mut start, scans) = where_domains_begin(&lists, served);
        for (i, domains) in scans {
            for (d, seq) in self.first_gtids(&files[i], &domains).await? {
                start.insert(d, seq.saturating_sub(1));
            }
        }
        Ok(start)
    }

    /// The first GTID of each of `domains` in binlog `file`, read a page at a time from its
    /// start until all are found or the file ends.
    async fn first_gtids(
        &mut self,
        file: &str,
        domains: &[u32],
    ) -> Result<BTreeMap<u32, u64>, SqlError> {
        let mut found = BTreeMap::new();
        let mut from = None;
        loop {
            let page = self.binlog_events(file, from, PAGE).await?;
            for row in &page {
                if let Some(g) = gtid_event(row).filter(|g| domains.contains(&g.domain)) {
                    found.entry(g.domain).or_insert(g.seq);
                }
            }
            let next = page
                .last()
                .and_then(|r| r.get("End_log_pos").ok().flatten())
                .and_then(|p| p.trim().parse::<u64>().ok());
            if found.len() == domains.len() || page.len() < PAGE as usize {
                return Ok(found);
            }
            match next {
                Some(n) if Some(n) > from => from = Some(n),
                _ => return Ok(found),
            }
        }
    }

    async fn binlog_events(
        &mut self,
        file: &str,
        from: Option<u64>,
        limit: u32,
    ) -> Result<Vec<NamedRow>, SqlError> {
        let sql = match from {
            Some(pos) => format!("SHOW BINLOG EVENTS IN '{file}' FROM {pos} LIMIT {limit}"),
            None => format!("SHOW BINLOG EVENTS IN '{file}' LIMIT {limit}"),
        };
        let sets = self.call("SHOW BINLOG EVENTS", &sql, Params::Empty).await?;
        Ok(sets.into_iter().flatten().collect())
    }
}

fn event_kind(r: &NamedRow) -> &str {
    r.get("Event_type").ok().flatten().unwrap_or("")
}

/// The `Gtid_list` among the first events of a binlog: the binlog state before it.
fn gtid_list(head: &[NamedRow]) -> Option<GtidSet> {
    let list = head.iter().find(|r| event_kind(r) == "Gtid_list")?;
    let text = list.get("Info").ok().flatten().unwrap_or("");
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    GtidSet::parse(inner).ok()
}

/// The GTID of a `Gtid` event: `"BEGIN GTID 0-1-6"` (a transaction) or `"GTID 0-1-6"` (DDL).
fn gtid_event(r: &NamedRow) -> Option<crate::gtid::Gtid> {
    if event_kind(r) != "Gtid" {
        return None;
    }
    r.get("Info")
        .ok()
        .flatten()?
        .split_whitespace()
        .skip_while(|w| *w != "GTID")
        .nth(1)
        .and_then(|g| GtidSet::parse(g).ok())
        .and_then(|s| s.iter().next())
}

/// From the `Gtid_list`s of the binlogs (oldest first, as far as they were read): where each
/// domain of `served` begins when the oldest list names it, and, for the others, which file
/// holds its first event: the one before the first list naming it (its transactions began
/// inside that file), or the last file read when none does.
fn where_domains_begin(
    lists: &[GtidSet],
    served: &GtidSet,
) -> (BTreeMap<u32, u64>, BTreeMap<usize, Vec<u32>>) {
    let mut start = BTreeMap::new();
    let mut scans: BTreeMap<usize, Vec<u32>> = BTreeMap::new();
    let Some(oldest) = lists.first() else {
        return (start, scans);
    };
    for d in served.domains() {
        if let Some(seq) = oldest.last_seq(d) {
            start.insert(d, seq);
            continue;
        }
        let file = lists
            .iter()
            .position(|l| l.last_seq(d).is_some())
            .map_or(lists.len() - 1, |i| i - 1);
        scans.entry(file).or_default().push(d);
    }
    (start, scans)
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
    fn the_head_of_a_binlog_names_its_gtid_list_and_events_their_gtid() {
        let head = [
            event("Format_desc", "Server ver: 11.4"),
            event("Gtid_list", "[19-1019-200,19-1018-150]"),
            event("Binlog_checkpoint", "mariadb-bin.000003"),
        ];
        assert_eq!(
            gtid_list(&head).unwrap().to_string(),
            "19-1018-150,19-1019-200"
        );
        assert_eq!(
            gtid_list(&[event("Gtid_list", "[]")]),
            Some(GtidSet::default())
        );
        assert_eq!(gtid_list(&head[..1]), None);
        let g = gtid_event(&event("Gtid", "BEGIN GTID 20-1020-7")).unwrap();
        assert_eq!(g.to_string(), "20-1020-7");
        assert_eq!(gtid_event(&event("Gtid", "GTID 14-3-8")).unwrap().seq, 8);
        assert_eq!(gtid_event(&event("Query", "BEGIN GTID 1-1-1")), None);
    }

    #[test]
    fn a_domain_the_oldest_list_does_not_name_is_looked_for_where_it_began() {
        let list = |s: &str| GtidSet::parse(s).unwrap();
        // Three binlogs: domain 19 from the start; domain 20 (the other side's, after a
        // switchover) first named by the third file's list, so it began in the second;
        // domain 21 named by none, so it began in the last file read.
        let lists = [
            list("19-1019-100"),
            list("19-1019-900"),
            list("19-1019-1500,20-1020-30"),
        ];
        let served = list("19-1019-2000,20-1020-90,21-1021-3");
        let (start, scans) = where_domains_begin(&lists, &served);
        assert_eq!(start, BTreeMap::from([(19, 100)]));
        assert_eq!(scans, BTreeMap::from([(1, vec![20]), (2, vec![21])]));
        // A restored server's fresh binlog names nothing: every domain is in it.
        let (start, scans) = where_domains_begin(&[list("")], &list("19-1019-400"));
        assert!(start.is_empty());
        assert_eq!(scans, BTreeMap::from([(0, vec![19])]));
        // No binlogs: nothing is known to begin anywhere.
        assert_eq!(where_domains_begin(&[], &served), Default::default());
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
