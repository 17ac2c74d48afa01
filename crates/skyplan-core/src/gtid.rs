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
    /// Where its binlogs begin, per domain they hold: the sequence number just before the
    /// first transaction of that domain they still hold (the `Gtid_list` at the head of the
    /// oldest binlog, or, for a domain that list does not name, the first event of the domain
    /// in the binlogs). `None` when the binlogs could not be read; a domain of the binlog
    /// state missing from the map is one whose beginning was not found (both count as
    /// unknown, never as 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_start: Option<BTreeMap<u32, u64>>,
}

impl ObservedGtids {
    /// Everything the server has applied or written: its binlog state and both positions.
    /// A server seeded by a restore starts fresh binlogs, so what it had before lives only in
    /// `gtid_slave_pos` (and `gtid_current_pos`): `has` ⊋ binlog state is normal.
    pub fn applied(&self) -> Result<GtidSet, GtidParseError> {
        Ok(GtidSet::parse(&self.binlog_state)?
            .union(&GtidSet::parse(&self.current_pos)?)
            .union(&GtidSet::parse(&self.slave_pos)?))
    }

    /// The model of what this server has and serves ([`Holdings`]).
    pub fn holdings(&self) -> Result<Holdings, GtidParseError> {
        let has = self.applied()?;
        let binlogged = GtidSet::parse(&self.binlog_state)?;
        let serves_after = self.binlog_start.as_ref().map(|start| {
            has.domains()
                .filter_map(|d| {
                    let last = has.last_seq(d).unwrap_or(0);
                    // What it has of a domain beyond its binlogs (only a position names it: a
                    // restore, or replication without binlogging) it cannot send on.
                    if binlogged.last_seq(d) != Some(last) {
                        return Some((d, last));
                    }
                    start.get(&d).map(|&s| (d, s.min(last)))
                })
                .collect()
        });
        Ok(Holdings { has, serves_after })
    }
}

/// One server's GTIDs as the re-point rules see them:
///
/// - `has`: every transaction it has applied, per (domain, server) stream: `gtid_binlog_state`
///   with `gtid_current_pos` and `gtid_slave_pos`. In MariaDB a position names the last GTID
///   per domain, and with `gtid_strict_mode` sequence numbers only grow within a domain, so
///   "has `d-s-n`" means it has everything of that stream up to `n`.
/// - `serves`: what its binlogs can still deliver: per domain, everything after
///   `serves_after[d]`. A replica at or past that point in `d` can be sent the rest; one
///   before it would need transactions purged (or never binlogged), which MariaDB either
///   refuses (error 1236) or, without strict mode, silently skips.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holdings {
    pub has: GtidSet,
    /// Per domain of `has`; `None`: the binlogs could not be read; a domain missing from the
    /// map: where its binlogs begin is unknown.
    pub serves_after: Option<BTreeMap<u32, u64>>,
}

impl Holdings {
    /// This server once it has applied everything `from` has (a switchover's candidate after
    /// its catch-up wait): it binlogs what it receives, so where its binlogs begin in each
    /// domain stays where it was, and a domain it had nothing of is served from its start.
    pub fn after_applying(&self, from: &Holdings) -> Holdings {
        let serves_after = self.serves_after.as_ref().map(|start| {
            let mut start = start.clone();
            for d in from.has.domains() {
                let mine = self.has.last_seq(d);
                if from.has.last_seq(d) > mine {
                    start.entry(d).or_insert(mine.unwrap_or(0));
                }
            }
            start
        });
        Holdings {
            has: self.has.clone().union(&from.has),
            serves_after,
        }
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
/// through others: what `source` has not received yet but will.
///
/// Safe when `replica.has ⊆ source.has ∪ upstream.has` (else the difference is errant: the
/// new source's history would conflict with it) and, in every domain where `source` has more
/// than `replica`, its binlogs still hold what follows the replica's position. Being *behind*
/// (the source lags its upstream) is not errant: apply waits for the source to catch up
/// ([`caught_up_with`]) before it re-points. Refresh reads replicas before their sources, so
/// a lag between two reads never looks like an errant transaction.
pub fn repoint(
    replica: &ObservedGtids,
    source: &ObservedGtids,
    upstream: &[&ObservedGtids],
) -> Result<(), Unsafe> {
    let unknown = |e: GtidParseError| Unsafe::Unknown(e.to_string());
    let ups = upstream
        .iter()
        .map(|u| u.holdings())
        .collect::<Result<Vec<_>, _>>()
        .map_err(unknown)?;
    let ups: Vec<&Holdings> = ups.iter().collect();
    can_follow(
        &replica.holdings().map_err(unknown)?,
        &source.holdings().map_err(unknown)?,
        &ups,
    )
}

/// [`repoint`] on parsed holdings.
pub fn can_follow(
    replica: &Holdings,
    source: &Holdings,
    upstream: &[&Holdings],
) -> Result<(), Unsafe> {
    let mut reachable = source.has.clone();
    for u in upstream {
        reachable = reachable.union(&u.has);
    }
    let errant = replica.has.not_in(&reachable);
    if !errant.is_empty() {
        return Err(Unsafe::Errant(errant));
    }
    // Per domain where the source has more than the replica: its binlogs must hold what
    // follows the replica's position. (Where only upstream has more, the source will binlog
    // it as it arrives.)
    for domain in source.has.domains() {
        let at = replica.has.last_seq(domain).unwrap_or(0);
        if source.has.last_seq(domain).unwrap_or(0) <= at {
            continue;
        }
        let Some(start) = &source.serves_after else {
            return Err(Unsafe::Unknown(
                "the new source's binlogs could not be read to check that they still hold the \
                 replica's next transaction"
                    .into(),
            ));
        };
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

/// A switchover's precondition, decided before the fence: once `candidate` has applied
/// everything `old` has (the catch-up wait), `old` and each of `others` (the replicas that move
/// to the candidate) can follow it from their own positions, with no copy. `Ok` holds the
/// candidate as it will be; `Err` the first one that could not follow, and why.
pub fn takeover<'k>(
    old: (&'k str, &Holdings),
    candidate: &Holdings,
    others: &[(&'k str, &Holdings)],
) -> Result<Holdings, (&'k str, Unsafe)> {
    let after = candidate.after_applying(old.1);
    for (key, h) in std::iter::once(&old).chain(others) {
        can_follow(h, &after, &[]).map_err(|u| (*key, u))?;
    }
    Ok(after)
}

impl Holdings {
    /// Where its binlogs begin, for the plan: `"domain 19 after 383, domain 20 from its
    /// start"`.
    pub fn describe_serves(&self) -> String {
        let Some(start) = &self.serves_after else {
            return "its binlogs could not be read".into();
        };
        let parts: Vec<String> = self
            .has
            .domains()
            .map(|d| match start.get(&d) {
                Some(0) => format!("domain {d} from its start"),
                Some(s) => format!("domain {d} after {s}"),
                None => format!("domain {d} from an unknown point"),
            })
            .collect();
        if parts.is_empty() {
            "nothing yet".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Whether `source` now has every transaction `replica` has applied: the moment a re-point
/// may happen.
pub fn caught_up_with(
    replica: &ObservedGtids,
    source: &ObservedGtids,
) -> Result<bool, GtidParseError> {
    Ok(replica.applied()?.not_in(&source.applied()?).is_empty())
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
mod tests;
