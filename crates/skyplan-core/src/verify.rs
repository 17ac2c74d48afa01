//! `skyplan verify`'s pure half: which replication links a topology has, how the two sides of
//! one table compare, and the report (text for people, JSON for scripts:
//! `schemas/verify.schema.json`). The SQL that measures a table lives in the binary
//! (`skyplan::sql::verify`), the workflow in `skyplan::ops::verify`.
//!
//! The rule that keeps a live writer from producing false differences: each table is compared
//! in a consistent snapshot on the source, after the replica has applied the source's position
//! at that snapshot (the replica's own snapshot may hold a few transactions more). A table
//! that is not equal is compared again, up to [`ATTEMPTS`] times in all ([`again`]); then
//! [`judge`] calls it different, unless the replica's snapshot was past the source's position
//! every time: then a writer may explain it, and the table is *unsettled*, not different.

use std::collections::BTreeSet;
use std::fmt::Write;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::gtid::GtidSet;
use crate::topology::Topology;

/// Version of the JSON document (`schemas/verify.schema.json`).
pub const FORMAT_VERSION: u32 = 1;

/// How many times a table is compared before a difference is reported (the first comparison
/// and two re-checks): a writer on the source can move a table between the two snapshots.
pub const ATTEMPTS: u32 = 3;

/// One replication link: `replica` replicates from `source` (topology keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub source: String,
    pub replica: String,
}

/// Every link of the topology (each service with a `replication` block, against its `from`),
/// sources before their replicas (a chain is verified from its root down), then by key.
pub fn links(topology: &Topology) -> Vec<Link> {
    let depth = |key: &str| {
        let mut k = key;
        let mut d = 0usize;
        while let Some(r) = topology
            .services
            .get(k)
            .and_then(|s| s.replication.as_ref())
        {
            d += 1;
            k = &r.from;
            // A cycle is a validation error; never loop on one here.
            if d > topology.services.len() {
                break;
            }
        }
        d
    };
    let mut links: Vec<(usize, Link)> = topology
        .services
        .iter()
        .filter_map(|(key, s)| {
            let r = s.replication.as_ref()?;
            Some((
                depth(key),
                Link {
                    source: r.from.clone(),
                    replica: key.clone(),
                },
            ))
        })
        .collect();
    links.sort_by(|(da, a), (db, b)| da.cmp(db).then_with(|| a.replica.cmp(&b.replica)));
    links.into_iter().map(|(_, l)| l).collect()
}

/// A user table, `schema.name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub schema: String,
    pub name: String,
}

impl TableId {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> TableId {
        TableId {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// Every table found on either side, in order (a table on one side only is a difference too).
pub fn all_tables(source: &[TableId], replica: &[TableId]) -> Vec<TableId> {
    let set: BTreeSet<&TableId> = source.iter().chain(replica).collect();
    set.into_iter().cloned().collect()
}

/// What one side holds of a table, measured in one consistent snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSide {
    pub rows: u64,
    /// `CHECKSUM TABLE`; `None` when the server returned NULL.
    pub checksum: Option<u64>,
}

/// How the table compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TableStatus {
    /// Same row count and checksum (or gone from both sides while verify ran).
    Equal,
    /// On both sides, with another row count or checksum.
    Different,
    /// On the source only.
    MissingOnReplica,
    /// On the replica only.
    MissingOnSource,
    /// Not equal, but never compared at one position: each time, the replica's snapshot held
    /// transactions past the source's (a writer kept changing the table). Neither identical nor
    /// a difference: verify could not tell.
    Unsettled,
}

/// One comparison of a table: both sides measured in their snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// `None`: the table is not on that side.
    pub source: Option<TableSide>,
    pub replica: Option<TableSide>,
    /// The source snapshot's GTID position (the replica had applied it before its snapshot).
    pub position: String,
    /// Whether the replica's snapshot was at exactly that position (`None`: unknown).
    pub same_position: Option<bool>,
}

impl Attempt {
    fn status(&self) -> TableStatus {
        match (self.source, self.replica) {
            (Some(s), Some(r)) if s == r => TableStatus::Equal,
            (Some(_), Some(_)) => TableStatus::Different,
            (Some(_), None) => TableStatus::MissingOnReplica,
            (None, Some(_)) => TableStatus::MissingOnSource,
            (None, None) => TableStatus::Equal,
        }
    }

    pub fn equal(&self) -> bool {
        self.status() == TableStatus::Equal
    }
}

/// Whether to compare the table once more after these attempts: it is not equal yet and
/// fewer than `max` comparisons were made.
pub fn again(attempts: &[Attempt], max: u32) -> bool {
    attempts.last().is_some_and(|a| !a.equal()) && attempts.len() < max as usize
}

/// One table of one link, as last compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct TableReport {
    /// `schema.name`.
    pub table: String,
    pub schema: String,
    pub name: String,
    pub status: TableStatus,
    pub equal: bool,
    /// Row count on the source; null when the table is not there.
    pub rows_source: Option<u64>,
    /// Row count on the replica; null when the table is not there.
    pub rows_replica: Option<u64>,
    /// CHECKSUM TABLE on the source; null when the table is not there (or the server returned
    /// NULL).
    pub checksum_source: Option<u64>,
    /// CHECKSUM TABLE on the replica; null when the table is not there (or the server returned
    /// NULL).
    pub checksum_replica: Option<u64>,
    /// Comparisons made: a table that is not equal is compared again, up to 3 times in all,
    /// before it is reported (a writer on the source can move it between the two snapshots).
    // 3 is [`ATTEMPTS`].
    #[schemars(range(min = 1))]
    pub attempts: u32,
    /// The source's GTID position at its snapshot for the last comparison; the replica had
    /// applied it before its own snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Whether the replica's snapshot held exactly the source's position in the last
    /// comparison; null when the replica could not say (then a difference counts as one).
    #[serde(default)]
    pub same_position: Option<bool>,
}

/// The verdict on a table from its comparisons (the last one's numbers). Not equal in the
/// last one is a difference, unless every comparison had the replica past the source's
/// position: then a writer may be the cause, and the table is [`TableStatus::Unsettled`].
pub fn judge(table: &TableId, attempts: &[Attempt]) -> TableReport {
    let last = attempts.last().cloned().unwrap_or(Attempt {
        source: None,
        replica: None,
        position: String::new(),
        same_position: None,
    });
    let mut status = last.status();
    if status != TableStatus::Equal
        && !attempts.is_empty()
        && attempts.iter().all(|a| a.same_position == Some(false))
    {
        status = TableStatus::Unsettled;
    }
    let (source, replica) = (last.source, last.replica);
    TableReport {
        table: table.to_string(),
        schema: table.schema.clone(),
        name: table.name.clone(),
        equal: status == TableStatus::Equal,
        status,
        rows_source: source.map(|s| s.rows),
        rows_replica: replica.map(|s| s.rows),
        checksum_source: source.and_then(|s| s.checksum),
        checksum_replica: replica.and_then(|s| s.checksum),
        attempts: attempts.len() as u32,
        position: (!attempts.is_empty()).then_some(last.position),
        same_position: last.same_position,
    }
}

fn opt(n: Option<u64>) -> String {
    n.map_or_else(|| "NULL".to_string(), |n| n.to_string())
}

fn rows(n: u64) -> String {
    format!("{n} row{}", if n == 1 { "" } else { "s" })
}

impl TableReport {
    /// The verdict after the table's name: `5000 rows OK`, `DIFFERENT: rows source 13,
    /// replica 14; …`, `MISSING on the replica (source: 5 rows)`.
    pub fn verdict(&self) -> String {
        match self.status {
            TableStatus::Equal => match self.rows_source {
                Some(n) => format!("{} OK", rows(n)),
                None => "OK (dropped on both sides while verify ran)".to_string(),
            },
            TableStatus::Different | TableStatus::Unsettled => {
                let mut s = format!(
                    "{}: rows source {}, replica {}",
                    if self.status == TableStatus::Different {
                        "DIFFERENT"
                    } else {
                        "UNSETTLED (the source kept writing to it; not compared at one position)"
                    },
                    opt(self.rows_source),
                    opt(self.rows_replica)
                );
                if self.checksum_source != self.checksum_replica {
                    let _ = write!(
                        s,
                        "; checksum source {}, replica {}",
                        opt(self.checksum_source),
                        opt(self.checksum_replica)
                    );
                }
                s
            }
            TableStatus::MissingOnReplica => format!(
                "MISSING on the replica (source: {})",
                rows(self.rows_source.unwrap_or(0))
            ),
            TableStatus::MissingOnSource => format!(
                "MISSING on the source (replica: {})",
                rows(self.rows_replica.unwrap_or(0))
            ),
        }
    }
}

/// One link's tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct LinkReport {
    /// Topology key of the source (service.<key>).
    pub source: String,
    /// Topology key of the replica (replication.<key>).
    pub replica: String,
    /// Service name of the source.
    pub source_name: String,
    /// Service name of the replica.
    pub replica_name: String,
    pub equal: bool,
    /// Every user table found on either side (base tables outside mysql,
    /// information_schema, performance_schema, sys and sky), by schema and name.
    pub tables: Vec<TableReport>,
}

impl LinkReport {
    pub fn new(
        link: &Link,
        source_name: &str,
        replica_name: &str,
        tables: Vec<TableReport>,
    ) -> LinkReport {
        LinkReport {
            source: link.source.clone(),
            replica: link.replica.clone(),
            source_name: source_name.to_string(),
            replica_name: replica_name.to_string(),
            equal: tables.iter().all(|t| t.equal),
            tables,
        }
    }

    /// `skysql-primary -> skysql-secondary`.
    pub fn title(&self) -> String {
        format!("{} -> {}", self.source_name, self.replica_name)
    }
}

/// The output of `skyplan verify --json`: for each replication link of the topology (a replica
/// and the source it replicates from), every user table compared by row count and CHECKSUM
/// TABLE after the replica applied the source's position. The exit code says the same: 0 when
/// `equal`; 2 when a table differs (`tables_different` > 0); 1 when no table differs but some
/// are `unsettled` (this document is printed), or on an error (no document). No secrets appear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct VerifyReport {
    /// Version of this format. Readers refuse higher versions.
    #[schemars(extend("const" = FORMAT_VERSION))]
    pub format_version: u32,
    /// Every table of every link is identical (true when there are no links).
    pub equal: bool,
    pub tables_compared: usize,
    /// Tables with another row count or checksum, or on one side only.
    pub tables_different: usize,
    /// Tables that were not equal each time but never compared at one position (a writer on
    /// the source may explain it): neither identical nor a difference.
    // That is [`TableStatus::Unsettled`].
    pub tables_unsettled: usize,
    /// Sources before their replicas, then by replica key.
    pub links: Vec<LinkReport>,
}

/// What the report says in one word (the exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every table identical.
    Identical,
    /// At least one table differs.
    Different,
    /// No difference found, but some tables could not be compared at one position.
    Unsettled,
}

fn count(tables: &[TableReport], unsettled: bool) -> usize {
    tables
        .iter()
        .filter(|t| !t.equal && (t.status == TableStatus::Unsettled) == unsettled)
        .count()
}

impl VerifyReport {
    pub fn new(links: Vec<LinkReport>) -> VerifyReport {
        let (mut compared, mut different, mut unsettled) = (0, 0, 0);
        for l in &links {
            compared += l.tables.len();
            different += count(&l.tables, false);
            unsettled += count(&l.tables, true);
        }
        VerifyReport {
            format_version: FORMAT_VERSION,
            equal: different == 0 && unsettled == 0,
            tables_compared: compared,
            tables_different: different,
            tables_unsettled: unsettled,
            links,
        }
    }

    pub fn outcome(&self) -> Outcome {
        if self.tables_different > 0 {
            Outcome::Different
        } else if self.tables_unsettled > 0 {
            Outcome::Unsettled
        } else {
            Outcome::Identical
        }
    }

    /// The tables that are not identical, as `title: schema.name` (for messages).
    pub fn not_identical(&self) -> Vec<String> {
        self.links
            .iter()
            .flat_map(|l| {
                l.tables
                    .iter()
                    .filter(|t| !t.equal)
                    .map(move |t| format!("{}: {}", l.title(), t.table))
            })
            .collect()
    }

    /// The last line: what was compared and whether anything differs.
    pub fn summary(&self) -> String {
        let links = plural(self.links.len(), "link");
        let tables = plural(self.tables_compared, "table");
        let (d, u) = (self.tables_different, self.tables_unsettled);
        let unsettled = |n: usize| {
            format!(
                "could not be compared at one position (the source kept writing to {})",
                if n == 1 { "it" } else { "them" }
            )
        };
        match self.outcome() {
            Outcome::Identical => format!("Verify: {tables} identical on {links}."),
            Outcome::Different if u == 0 => {
                format!("Verify: {d} of {tables} {} on {links}.", differ(d))
            }
            Outcome::Different => format!(
                "Verify: {d} of {tables} {} on {links}; {u} more {}.",
                differ(d),
                unsettled(u)
            ),
            Outcome::Unsettled => format!(
                "Verify: no difference found, but {u} of {tables} {}; run verify again when writes are lighter.",
                unsettled(u)
            ),
        }
    }

    /// The report for people: each link, each table with its verdict, then the summary.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for l in &self.links {
            let n = plural(l.tables.len(), "table");
            let (d, u) = (count(&l.tables, false), count(&l.tables, true));
            let head = match (l.tables.is_empty(), d, u) {
                (true, _, _) => "no user tables".to_string(),
                (false, 0, 0) => format!("{n} identical"),
                (false, d, 0) => format!("{d} of {n} {}", differ(d)),
                (false, 0, u) => format!("{u} of {n} unsettled"),
                (false, d, u) => format!("{d} of {n} {}, {u} unsettled", differ(d)),
            };
            let _ = writeln!(s, "{} (replication.{}): {head}", l.title(), l.replica);
            let width = l.tables.iter().map(|t| t.table.len()).max().unwrap_or(0);
            for t in &l.tables {
                let checks = if t.equal || t.attempts <= 1 {
                    String::new()
                } else {
                    format!("  (compared {} times)", t.attempts)
                };
                let _ = writeln!(s, "  {:<width$}  {}{checks}", t.table, t.verdict());
            }
        }
        if !self.links.is_empty() {
            s.push('\n');
        }
        let _ = writeln!(s, "{}", self.summary());
        s
    }
}

fn differ(n: usize) -> &'static str {
    if n == 1 {
        "differs"
    } else {
        "differ"
    }
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Whether a replica's applied position (its `gtid_slave_pos` in its snapshot) is exactly the
/// source's position, in every domain of the source's (other domains are the replica's own
/// or an older source's). `None` when either is not a GTID position.
pub fn same_position(source_pos: &str, replica_pos: &str) -> Option<bool> {
    let (src, rep) = (
        GtidSet::parse(source_pos).ok()?,
        GtidSet::parse(replica_pos).ok()?,
    );
    let same = src.domains().all(|d| rep.last_seq(d) == src.last_seq(d));
    Some(same)
}

/// How far a replica's position is behind a source's, per GTID domain, for messages:
/// `12 transactions behind in domain 0`, or the raw positions when they cannot be read.
pub fn describe_lag(source_pos: &str, replica_pos: &str) -> String {
    let raw = format!(
        "the source is at `{source_pos}`, the replica at `{}`",
        if replica_pos.is_empty() {
            "(nothing applied)"
        } else {
            replica_pos
        }
    );
    let (Ok(src), Ok(rep)) = (GtidSet::parse(source_pos), GtidSet::parse(replica_pos)) else {
        return raw;
    };
    let behind: Vec<String> = src
        .domains()
        .filter_map(|d| {
            let (want, have) = (src.last_seq(d)?, rep.last_seq(d).unwrap_or(0));
            (want > have).then(|| {
                format!(
                    "{} behind in domain {d}",
                    plural((want - have) as usize, "transaction")
                )
            })
        })
        .collect();
    if behind.is_empty() {
        raw
    } else {
        format!("{} ({raw})", behind.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(rows: u64, checksum: u64) -> Option<TableSide> {
        Some(TableSide {
            rows,
            checksum: Some(checksum),
        })
    }

    /// A comparison at position `0-1-10`, the replica's snapshot there too (`same`) or not.
    fn at(source: Option<TableSide>, replica: Option<TableSide>, same: Option<bool>) -> Attempt {
        Attempt {
            source,
            replica,
            position: "0-1-10".into(),
            same_position: same,
        }
    }

    fn once(source: Option<TableSide>, replica: Option<TableSide>) -> TableReport {
        judge(
            &TableId::new("app", "t"),
            &[at(source, replica, Some(true))],
        )
    }

    fn topo(src: &str) -> Topology {
        crate::topology::parse(src, std::path::Path::new("t.toml"))
            .unwrap_or_else(|d| panic!("{d}"))
    }

    const CHAIN: &str = r#"
[provider]
endpoint = "local"
[defaults]
service_type = "transactional"
topology = "standalone"
provider = "gcp"
architecture = "amd64"
size = "sky-2x8"
storage = 100
nodes = 1
ssl_enabled = true
[services.primary]
name = "prim"
region = "us-east4"
[services.zeta]
name = "zeta"
region = "us-west1"
[services.zeta.replication]
from = "primary"
[services.alpha]
name = "alpha"
region = "us-west1"
[services.alpha.replication]
from = "zeta"
[services.beta]
name = "beta"
region = "us-west1"
[services.beta.replication]
from = "primary"
"#;

    #[test]
    fn links_list_each_replica_against_its_source_roots_first() {
        let l = links(&topo(CHAIN));
        let pairs: Vec<(&str, &str)> = l
            .iter()
            .map(|l| (l.source.as_str(), l.replica.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("primary", "beta"), ("primary", "zeta"), ("zeta", "alpha")]
        );
    }

    #[test]
    fn a_topology_without_replication_has_no_links() {
        let single = CHAIN.split("[services.zeta]").next().unwrap();
        assert!(links(&topo(single)).is_empty());
    }

    #[test]
    fn tables_of_both_sides_are_listed_once_in_order() {
        let s = [TableId::new("app", "b"), TableId::new("app", "a")];
        let r = [TableId::new("app", "a"), TableId::new("zz", "only_here")];
        let all: Vec<String> = all_tables(&s, &r).iter().map(|t| t.to_string()).collect();
        assert_eq!(all, ["app.a", "app.b", "zz.only_here"]);
    }

    #[test]
    fn equal_counts_and_checksums_are_equal() {
        let r = once(side(5000, 42), side(5000, 42));
        assert!(r.equal);
        assert_eq!(r.status, TableStatus::Equal);
        assert_eq!(r.verdict(), "5000 rows OK");
        assert_eq!(r.position.as_deref(), Some("0-1-10"));
        assert_eq!(once(side(1, 7), side(1, 7)).verdict(), "1 row OK");
    }

    #[test]
    fn another_count_or_checksum_is_a_difference() {
        let r = once(side(13, 1), side(14, 2));
        assert!(!r.equal);
        assert_eq!(r.status, TableStatus::Different);
        assert_eq!(
            r.verdict(),
            "DIFFERENT: rows source 13, replica 14; checksum source 1, replica 2"
        );
        // Same count, other content: the checksum tells.
        let r = once(side(13, 1), side(13, 2));
        assert!(!r.equal);
        assert_eq!(
            r.verdict(),
            "DIFFERENT: rows source 13, replica 13; checksum source 1, replica 2"
        );
        // A NULL checksum on one side only is a difference too.
        let null = Some(TableSide {
            rows: 13,
            checksum: None,
        });
        assert!(!once(side(13, 1), null).equal);
        assert!(once(null, null).equal);
    }

    #[test]
    fn a_table_on_one_side_only_is_a_difference() {
        let r = once(side(5, 1), None);
        assert_eq!(r.status, TableStatus::MissingOnReplica);
        assert!(!r.equal);
        assert_eq!(r.verdict(), "MISSING on the replica (source: 5 rows)");
        let r = once(None, side(1, 1));
        assert_eq!(r.status, TableStatus::MissingOnSource);
        assert_eq!(r.verdict(), "MISSING on the source (replica: 1 row)");
        // Dropped on both sides between the listing and the comparison: nothing to compare.
        assert!(once(None, None).equal);
    }

    #[test]
    fn a_difference_is_compared_again_up_to_the_limit() {
        let differs = at(side(13, 1), side(14, 2), Some(false));
        let equal = at(side(14, 2), side(14, 2), Some(false));
        assert!(!again(&[], ATTEMPTS));
        assert!(!again(std::slice::from_ref(&equal), ATTEMPTS));
        assert!(again(std::slice::from_ref(&differs), ATTEMPTS));
        assert!(again(&[differs.clone(), differs.clone()], ATTEMPTS));
        assert!(!again(
            &[differs.clone(), differs.clone(), differs.clone()],
            ATTEMPTS
        ));
        // Equal on the second look: equal, and the count of looks is kept.
        let r = judge(&TableId::new("app", "t"), &[differs, equal]);
        assert!(r.equal);
        assert_eq!(r.attempts, 2);
        assert_eq!(r.verdict(), "14 rows OK");
    }

    #[test]
    fn a_difference_seen_only_past_the_source_position_is_unsettled_not_different() {
        let t = TableId::new("app", "events");
        let past = at(side(986, 1), side(1042, 2), Some(false));
        let r = judge(&t, &[past.clone(), past.clone(), past.clone()]);
        assert_eq!(r.status, TableStatus::Unsettled);
        assert!(!r.equal);
        assert_eq!(r.same_position, Some(false));
        assert!(r.verdict().starts_with("UNSETTLED"), "{}", r.verdict());
        // Once at the same position (or where the replica could not say), a difference is real.
        for other in [Some(true), None] {
            let seen = at(side(13, 1), side(14, 2), other);
            let r = judge(&t, &[past.clone(), seen, past.clone()]);
            assert_eq!(r.status, TableStatus::Different, "{other:?}");
            assert_eq!(r.rows_replica, Some(1042), "the last comparison's numbers");
        }
    }

    fn link(tables: Vec<TableReport>) -> LinkReport {
        LinkReport::new(
            &Link {
                source: "primary".into(),
                replica: "secondary".into(),
            },
            "skysql-primary",
            "skysql-secondary",
            tables,
        )
    }

    fn table(name: &str, attempts: &[Attempt]) -> TableReport {
        judge(&TableId::new("app", name), attempts)
    }

    #[test]
    fn the_report_counts_tables_and_names_the_differences() {
        let ok = table("audit", &[at(side(13, 5), side(13, 5), Some(true))]);
        let seen = at(side(13, 1), side(14, 2), Some(true));
        let bad = table("events", &[seen.clone(), seen.clone(), seen]);
        let report = VerifyReport::new(vec![link(vec![ok.clone(), bad])]);
        assert!(!report.equal);
        assert_eq!(report.outcome(), Outcome::Different);
        assert_eq!((report.tables_compared, report.tables_different), (2, 1));
        assert_eq!(
            report.not_identical(),
            ["skysql-primary -> skysql-secondary: app.events"]
        );
        assert_eq!(
            report.render(),
            "skysql-primary -> skysql-secondary (replication.secondary): 1 of 2 tables differs\n  \
             app.audit   13 rows OK\n  \
             app.events  DIFFERENT: rows source 13, replica 14; checksum source 1, replica 2  (compared 3 times)\n\
             \n\
             Verify: 1 of 2 tables differs on 1 link.\n"
        );

        let good = VerifyReport::new(vec![link(vec![ok]), link(vec![])]);
        assert!(good.equal);
        assert_eq!(good.outcome(), Outcome::Identical);
        assert!(good.not_identical().is_empty());
        assert_eq!(good.summary(), "Verify: 1 table identical on 2 links.");
        assert!(good
            .render()
            .contains("(replication.secondary): no user tables\n"));
    }

    #[test]
    fn unsettled_tables_are_counted_apart_from_differences() {
        let past = at(side(9, 1), side(10, 2), Some(false));
        let busy = table("busy", &[past.clone(), past.clone(), past]);
        let ok = table("quiet", &[at(side(1, 1), side(1, 1), Some(true))]);
        let report = VerifyReport::new(vec![link(vec![busy.clone(), ok])]);
        assert!(!report.equal);
        assert_eq!(report.outcome(), Outcome::Unsettled);
        assert_eq!((report.tables_different, report.tables_unsettled), (0, 1));
        assert_eq!(
            report.summary(),
            "Verify: no difference found, but 1 of 2 tables could not be compared at one position (the source kept writing to it); run verify again when writes are lighter."
        );
        assert!(report.render().contains("): 1 of 2 tables unsettled\n"));

        let seen = at(side(1, 1), side(2, 2), Some(true));
        let bad = table("bad", &[seen.clone(), seen.clone(), seen]);
        let both = VerifyReport::new(vec![link(vec![bad, busy])]);
        assert_eq!(both.outcome(), Outcome::Different);
        assert_eq!(
            both.summary(),
            "Verify: 1 of 2 tables differs on 1 link; 1 more could not be compared at one position (the source kept writing to it)."
        );
    }

    #[test]
    fn the_json_document_has_the_documented_shape() {
        let t = once(side(13, 1), None);
        let v = serde_json::to_value(VerifyReport::new(vec![link(vec![t])])).unwrap();
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["equal"], false);
        assert_eq!(v["tables_unsettled"], 0);
        let t = &v["links"][0]["tables"][0];
        assert_eq!(t["table"], "app.t");
        assert_eq!(t["status"], "missing_on_replica");
        assert_eq!(t["rows_source"], 13);
        assert!(t["rows_replica"].is_null());
        assert_eq!(t["checksum_source"], 1);
        assert_eq!(t["same_position"], true);
        assert_eq!(v["links"][0]["replica_name"], "skysql-secondary");
    }

    #[test]
    fn positions_are_the_same_when_every_source_domain_matches() {
        assert_eq!(same_position("0-1-10", "0-1-10"), Some(true));
        // The replica's own domain (or an older source's) does not count.
        assert_eq!(same_position("0-1-10", "0-1-10,7-7-3"), Some(true));
        assert_eq!(same_position("0-1-10", "0-1-11"), Some(false));
        assert_eq!(same_position("0-1-10,2-2-5", "0-1-10"), Some(false));
        assert_eq!(same_position("", ""), Some(true));
        assert_eq!(same_position("0-1", "0-1-10"), None);
    }

    #[test]
    fn lag_is_described_per_domain() {
        assert_eq!(
            describe_lag("0-1-120,5-5-3", "0-1-100,5-5-3"),
            "20 transactions behind in domain 0 (the source is at `0-1-120,5-5-3`, the replica at `0-1-100,5-5-3`)"
        );
        assert_eq!(
            describe_lag("0-1-1", ""),
            "1 transaction behind in domain 0 (the source is at `0-1-1`, the replica at `(nothing applied)`)"
        );
        // Unreadable or not behind: the positions as they are.
        assert_eq!(
            describe_lag("garbage", "0-1-1"),
            "the source is at `garbage`, the replica at `0-1-1`"
        );
    }
}
