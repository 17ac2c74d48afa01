//! MariaDB GTIDs (`domain-server-sequence`) and the two questions skyplan asks of them:
//!
//! - **Can a replica be re-pointed at another source from its own position?** Only when the
//!   new source has every transaction the replica has applied (else the replica holds an
//!   *errant* transaction the new source lacks, and the new source's history would conflict
//!   with it) and the new source's binlogs still hold the first transaction the replica lacks
//!   (else MariaDB either refuses with error 1236 or, without `gtid_strict_mode`, silently
//!   skips to the next transaction it has: lost rows). See [`repoint`].
//! - **Has someone written to a replica?** A replica's GTIDs that its source does not have are
//!   errant: see [`errant`].
//!
//! MariaDB's `gtid_binlog_state` keeps the last sequence number per (domain, server); a
//! position (`gtid_current_pos`, `gtid_slave_pos`) keeps the last GTID per domain. Sequence
//! numbers grow monotonically within a domain, across servers.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// How a GTID position with no transaction in it is printed. MariaDB spells it as an empty
/// string, which in a sentence ("backup … at GTID ") reads as if text were missing.
pub const EMPTY_POSITION: &str = "(empty: no transactions yet)";

/// A GTID position (or list) as printed for people: [`EMPTY_POSITION`] when it is empty.
pub fn shown(position: &str) -> &str {
    if position.trim().is_empty() {
        EMPTY_POSITION
    } else {
        position
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a GTID list: {text:?} (expected e.g. \"0-1-100,1-2-7\")")]
pub struct GtidParseError {
    pub text: String,
}

/// A set of GTIDs as MariaDB summarises one: the highest sequence number per (domain, server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet(BTreeMap<(u32, u32), u64>);

impl GtidSet {
    /// `"0-1-100,14-3-7"` (spaces and empty items are ignored; `""` is the empty set).
    pub fn parse(text: &str) -> Result<GtidSet, GtidParseError> {
        let mut set = GtidSet::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            set.insert(parse_one(item).ok_or_else(|| GtidParseError {
                text: text.to_string(),
            })?);
        }
        Ok(set)
    }

    pub fn insert(&mut self, g: Gtid) {
        let seq = self.0.entry((g.domain, g.server)).or_insert(g.seq);
        *seq = (*seq).max(g.seq);
    }

    /// Both sets together (the higher sequence number per (domain, server)).
    pub fn union(mut self, other: &GtidSet) -> GtidSet {
        for g in other.iter() {
            self.insert(g);
        }
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = Gtid> + '_ {
        self.0.iter().map(|(&(domain, server), &seq)| Gtid {
            domain,
            server,
            seq,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether this set has `g`: the same (domain, server) at `g`'s sequence number or later.
    pub fn covers(&self, g: Gtid) -> bool {
        self.0
            .get(&(g.domain, g.server))
            .is_some_and(|&seq| seq >= g.seq)
    }

    /// The GTIDs of this set that `other` does not cover.
    pub fn not_in(&self, other: &GtidSet) -> Vec<Gtid> {
        self.iter().filter(|g| !other.covers(*g)).collect()
    }

    /// The GTIDs of this set from a (domain, server) that `other` has nothing of: a stream
    /// `other` never saw, as opposed to one it is merely behind on (lag, or two servers read
    /// a moment apart while writes go on).
    pub fn foreign_to(&self, other: &GtidSet) -> Vec<Gtid> {
        self.iter()
            .filter(|g| !other.0.contains_key(&(g.domain, g.server)))
            .collect()
    }

    /// The highest sequence number of `domain`, from any server.
    pub fn last_seq(&self, domain: u32) -> Option<u64> {
        self.iter()
            .filter(|g| g.domain == domain)
            .map(|g| g.seq)
            .max()
    }

    pub fn domains(&self) -> impl Iterator<Item = u32> + '_ {
        let mut d: Vec<u32> = self.0.keys().map(|(d, _)| *d).collect();
        d.dedup();
        d.into_iter()
    }
}

/// A run of one server's transactions in one domain, `first..=last`: how the plan lists what
/// one service has and another lacks (a failover's loss, a returning primary's extra writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidRange {
    pub domain: u32,
    pub server: u32,
    pub first: u64,
    pub last: u64,
}

impl GtidRange {
    /// How many transactions the range holds at most (sequence numbers are shared by the
    /// servers of a domain, so some of them may be another server's).
    pub fn count(&self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }
}

impl fmt::Display for GtidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, s) = (self.domain, self.server);
        if self.first == self.last {
            write!(f, "{d}-{s}-{}", self.last)
        } else {
            write!(f, "{d}-{s}-{}..{d}-{s}-{}", self.first, self.last)
        }
    }
}

/// What `ahead` has that `behind` lacks, one range per (domain, server) stream. A range
/// starts after `behind`'s last transaction of that stream, or, for a stream `behind` has
/// nothing of, after its last one in the domain (where that is earlier).
pub fn beyond(ahead: &GtidSet, behind: &GtidSet) -> Vec<GtidRange> {
    ahead
        .not_in(behind)
        .into_iter()
        .map(|g| {
            let after = behind
                .0
                .get(&(g.domain, g.server))
                .copied()
                .or_else(|| behind.last_seq(g.domain).filter(|&s| s < g.seq))
                .unwrap_or(g.seq.saturating_sub(1));
            GtidRange {
                domain: g.domain,
                server: g.server,
                first: after.saturating_add(1).min(g.seq),
                last: g.seq,
            }
        })
        .collect()
}

/// `"0-1-119..0-1-120 (2 transactions)"`, ranges joined by `, `.
pub fn describe_ranges(ranges: &[GtidRange]) -> String {
    let total = ranges.iter().fold(0u64, |n, r| n.saturating_add(r.count()));
    format!(
        "{} ({total} transaction{})",
        ranges
            .iter()
            .map(GtidRange::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        if total == 1 { "" } else { "s" }
    )
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self.iter().map(|g| g.to_string()).collect();
        f.write_str(&items.join(","))
    }
}

fn parse_one(s: &str) -> Option<Gtid> {
    let mut parts = s.split('-');
    let g = Gtid {
        domain: parts.next()?.parse().ok()?,
        server: parts.next()?.parse().ok()?,
        seq: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(g)
}

/// What refresh reads of one service's GTIDs (`CALL sky.gtid_status()` and its binlogs), as
/// the server spelled it. Parsed on use, so a value the server changed its spelling of shows
/// up as an error naming it rather than as a silent empty set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedGtids {
    #[serde(default)]
    pub binlog_state: String,
    #[serde(default)]
    pub current_pos: String,
    #[serde(default)]
    pub slave_pos: String,
    /// Where its binlogs begin, per domain: the sequence number just before the first
    /// transaction of that domain they still hold (from the oldest binlog's `Gtid_list` and
    /// its first GTID events). `None` when the binlogs could not be read; a domain missing
    /// from the map is one whose beginning was not found (both count as unknown, never as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_start: Option<BTreeMap<u32, u64>>,
}

impl ObservedGtids {
    /// Everything the server has applied or written: its binlog state and both positions.
    pub fn applied(&self) -> Result<GtidSet, GtidParseError> {
        Ok(GtidSet::parse(&self.binlog_state)?
            .union(&GtidSet::parse(&self.current_pos)?)
            .union(&GtidSet::parse(&self.slave_pos)?))
    }

    /// What it can send to a replica from its binlogs.
    pub fn served(&self) -> Result<GtidSet, GtidParseError> {
        GtidSet::parse(&self.binlog_state)
    }
}

/// Why a re-point from the replica's own position is not safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsafe {
    /// The replica has transactions the new source lacks (and will not get from upstream).
    Errant(Vec<Gtid>),
    /// The new source's binlogs no longer hold (or never held) the first transaction the
    /// replica lacks in `domain`: they begin after `starts_after`, the replica is at `at`.
    Purged {
        domain: u32,
        at: u64,
        starts_after: u64,
    },
    /// What is needed to decide could not be read or parsed.
    Unknown(String),
}

impl Unsafe {
    /// The reason, for the plan: `"e-sec2 has 1 transaction e-sec1 lacks: 14-3-1 (domain 14)"`.
    pub fn describe(&self, replica: &str, source: &str) -> String {
        match self {
            Unsafe::Errant(gtids) => {
                let domains: Vec<String> = {
                    let mut d: Vec<u32> = gtids.iter().map(|g| g.domain).collect();
                    d.dedup();
                    d.iter().map(u32::to_string).collect()
                };
                format!(
                    "{replica} has {} that {source} lacks: {} (domain {})",
                    match gtids.len() {
                        1 => "a transaction".to_string(),
                        n => format!("transactions of {n} servers"),
                    },
                    gtids
                        .iter()
                        .map(Gtid::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    domains.join(", ")
                )
            }
            Unsafe::Purged {
                domain,
                at,
                starts_after,
            } => format!(
                "{source}'s binlogs begin after sequence {starts_after} in domain {domain}, \
                 but {replica} has applied only up to {at}: the transactions between are gone"
            ),
            Unsafe::Unknown(why) => why.clone(),
        }
    }
}

/// Whether `replica` can be re-pointed at `source` from its own position (see the module's
/// doc). `upstream` are the GTIDs of the services `source` replicates from, directly or
/// through others.
///
/// A transaction is errant when it comes from a (domain, server) stream that neither the
/// source nor its upstream has anything of: someone wrote on the replica. Being *behind* on
/// a stream they have (the source lags, or the servers were read a moment apart while writes
/// go on) is not: apply waits for the source to catch up ([`caught_up_with`]) before it
/// re-points.
pub fn repoint(
    replica: &ObservedGtids,
    source: &ObservedGtids,
    upstream: &[&ObservedGtids],
) -> Result<(), Unsafe> {
    let unknown = |e: GtidParseError| Unsafe::Unknown(e.to_string());
    let applied = replica.applied().map_err(unknown)?;
    let mut reachable = source.served().map_err(unknown)?;
    for u in upstream {
        reachable = reachable.union(&u.served().map_err(unknown)?);
    }
    let errant = applied.foreign_to(&reachable);
    if !errant.is_empty() {
        return Err(Unsafe::Errant(errant));
    }
    let Some(start) = &source.binlog_start else {
        return Err(Unsafe::Unknown(
            "the new source's binlogs could not be read to check that they still hold the \
             replica's next transaction"
                .into(),
        ));
    };
    // Per domain the source serves: the replica must be at or past where the binlogs begin.
    let served = source.served().map_err(unknown)?;
    for domain in served.domains() {
        let at = applied.last_seq(domain).unwrap_or(0);
        let Some(&starts_after) = start.get(&domain) else {
            return Err(Unsafe::Unknown(format!(
                "where the new source's binlogs begin in domain {domain} could not be read"
            )));
        };
        if at < starts_after {
            return Err(Unsafe::Purged {
                domain,
                at,
                starts_after,
            });
        }
    }
    Ok(())
}

/// Whether `source` now has every transaction `replica` has applied (its binlogs hold them):
/// the moment a re-point may happen.
pub fn caught_up_with(
    replica: &ObservedGtids,
    source: &ObservedGtids,
) -> Result<bool, GtidParseError> {
    Ok(replica.applied()?.not_in(&source.served()?).is_empty())
}

/// A replica's transactions that its source does not have: from a stream the source has
/// nothing of (someone wrote on the replica), or further along one of the source's streams
/// than the source itself (the source lost transactions, e.g. was restored from an older
/// backup). Lag is never errant: what a replica applied came from its source.
///
/// The replica must have been read *before* the source (refresh reads replicas first): then
/// the source has at least everything the replica had, whatever writes went on meanwhile.
pub fn errant(
    replica: &ObservedGtids,
    source: &ObservedGtids,
) -> Result<Vec<Gtid>, GtidParseError> {
    let theirs = source.applied()?;
    Ok(replica.applied()?.not_in(&theirs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(binlog: &str, current: &str, start: &[(u32, u64)]) -> ObservedGtids {
        ObservedGtids {
            binlog_state: binlog.into(),
            current_pos: current.into(),
            slave_pos: String::new(),
            binlog_start: Some(start.iter().copied().collect()),
        }
    }

    #[test]
    fn an_empty_position_is_printed_as_such() {
        assert_eq!(shown(""), "(empty: no transactions yet)");
        assert_eq!(shown(" "), EMPTY_POSITION);
        assert_eq!(shown("0-1-5,1-2-7"), "0-1-5,1-2-7");
    }

    #[test]
    fn ranges_beyond_another_set() {
        let old = GtidSet::parse("0-1-120,1-1-7").unwrap();
        let new = GtidSet::parse("0-1-118,0-2-150,1-1-7").unwrap();
        let r = beyond(&old, &new);
        assert_eq!(describe_ranges(&r), "0-1-119..0-1-120 (2 transactions)");
        assert!(beyond(&new, &GtidSet::parse("0-1-118,0-2-150,1-1-7").unwrap()).is_empty());
        // A stream the other side never had starts after its last in the domain.
        let r = beyond(
            &GtidSet::parse("0-3-5").unwrap(),
            &GtidSet::parse("0-1-4").unwrap(),
        );
        assert_eq!(describe_ranges(&r), "0-3-5 (1 transaction)");
        let r = beyond(&GtidSet::parse("2-3-5").unwrap(), &GtidSet::default());
        assert_eq!(r[0].count(), 1);
    }

    #[test]
    fn parses_and_prints_gtid_lists() {
        let s = GtidSet::parse(" 0-1-100, 14-3-7,0-2-5,").unwrap();
        assert_eq!(s.to_string(), "0-1-100,0-2-5,14-3-7");
        assert_eq!(GtidSet::parse("").unwrap(), GtidSet::default());
        for bad in ["0-1", "a-1-2", "0-1-2-3", "0-1-x"] {
            assert!(GtidSet::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(s.last_seq(0), Some(100));
        assert!(s.covers(Gtid {
            domain: 0,
            server: 1,
            seq: 99
        }));
        assert!(!s.covers(Gtid {
            domain: 0,
            server: 3,
            seq: 1
        }));
    }

    #[test]
    fn a_sibling_with_the_same_history_is_a_safe_new_source() {
        let sec2 = obs("0-1-250", "0-1-250", &[]);
        let sec1 = obs("0-1-260", "0-1-260", &[(0, 100)]);
        assert_eq!(repoint(&sec2, &sec1, &[]), Ok(()));
    }

    #[test]
    fn lag_of_the_new_source_is_not_errant_when_upstream_has_it() {
        let sec2 = obs("0-1-250", "0-1-250", &[]);
        let sec1 = obs("0-1-240", "0-1-240", &[(0, 100)]);
        // Behind on the same stream: not errant, but not caught up yet either.
        assert_eq!(repoint(&sec2, &sec1, &[]), Ok(()));
        assert_eq!(caught_up_with(&sec2, &sec1), Ok(false));
        let later = obs("0-1-251", "0-1-251", &[(0, 100)]);
        assert_eq!(caught_up_with(&sec2, &later), Ok(true));
        // A stream only upstream has (the source has none of it yet) is reachable too.
        let sec2 = obs("0-1-250,7-7-3", "0-1-250,7-7-3", &[]);
        let primary = obs("0-1-255,7-7-3", "0-1-255", &[]);
        assert!(matches!(repoint(&sec2, &sec1, &[]), Err(Unsafe::Errant(_))));
        assert_eq!(repoint(&sec2, &sec1, &[&primary]), Ok(()));
    }

    #[test]
    fn a_local_write_on_the_replica_is_errant_and_named() {
        let sec2 = obs("0-1-250,14-3-1", "0-1-250,14-3-1", &[]);
        let sec1 = obs("0-1-260", "0-1-260", &[]);
        let e = repoint(&sec2, &sec1, &[]).unwrap_err();
        assert_eq!(
            e,
            Unsafe::Errant(vec![Gtid {
                domain: 14,
                server: 3,
                seq: 1
            }])
        );
        assert_eq!(
            e.describe("e-sec2", "e-sec1"),
            "e-sec2 has a transaction that e-sec1 lacks: 14-3-1 (domain 14)"
        );
        // Also within the source's own domain, from another server id.
        let sec2 = obs("0-1-250,0-3-251", "0-3-251", &[]);
        let sec1 = obs("0-1-260", "0-1-260", &[(0, 100)]);
        assert!(matches!(repoint(&sec2, &sec1, &[]), Err(Unsafe::Errant(g)) if g[0].server == 3));
        assert_eq!(
            errant(&sec2, &sec1).unwrap(),
            vec![Gtid {
                domain: 0,
                server: 3,
                seq: 251
            }]
        );
    }

    #[test]
    fn binlogs_that_begin_after_the_replica_make_it_unsafe() {
        let sec2 = obs("0-1-150", "0-1-150", &[]);
        let sec1 = obs("0-1-260", "0-1-260", &[(0, 200)]);
        let e = repoint(&sec2, &sec1, &[]).unwrap_err();
        assert_eq!(
            e,
            Unsafe::Purged {
                domain: 0,
                at: 150,
                starts_after: 200
            }
        );
        let unread = ObservedGtids {
            binlog_start: None,
            ..sec1
        };
        assert!(matches!(
            repoint(&sec2, &unread, &[]),
            Err(Unsafe::Unknown(_))
        ));
    }

    #[test]
    fn lag_alone_is_never_errant() {
        let replica = obs("0-1-90", "0-1-90", &[]);
        let source = obs("0-1-100", "0-1-100", &[]);
        assert_eq!(errant(&replica, &source).unwrap(), vec![]);
        // Further along the source's own stream than the source (read after it): the source
        // lost transactions the replica has.
        let replica = obs("0-1-133", "0-1-133", &[]);
        let source = obs("0-1-132", "0-1-132", &[]);
        assert_eq!(
            errant(&replica, &source).unwrap(),
            vec![Gtid {
                domain: 0,
                server: 1,
                seq: 133
            }]
        );
    }
}
