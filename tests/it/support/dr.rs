//! The model of the randomized DR test (`e2e_dr_random`): which service is the primary and
//! which replicates from which, the operations that change it, a seeded generator that picks
//! only operations valid in the model, and the topology file the model stands for.
//!
//! Pure: no I/O, so a seed always yields the same operations (the kill timing aside).

use std::collections::BTreeMap;
use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// The services, in the order they are added: `primary` is the first primary. The first two
/// are the guide's (`examples/global-replication.toml`), so the file stays the guide's shape.
pub(crate) const SERVICES: [(&str, &str, &str); 4] = [
    ("primary", "skysql-primary", "us-east4"),
    ("secondary", "skysql-secondary", "us-west1"),
    ("third", "skysql-third", "europe-west1"),
    ("fourth", "skysql-fourth", "asia-southeast1"),
];

/// Who is the primary and who replicates from whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Model {
    pub(crate) keys: Vec<&'static str>,
    pub(crate) primary: &'static str,
    /// Each replica's source.
    pub(crate) from: BTreeMap<&'static str, &'static str>,
    /// A primary lost with its region and failed over from: the file keeps it as a replica of
    /// the new primary, to rejoin when its region returns. Nothing else touches it meanwhile.
    pub(crate) away: Option<&'static str>,
    /// The last primary a failover replaced, once its region returned: a flip-back makes
    /// it the primary again.
    pub(crate) returned: Option<&'static str>,
}

impl Model {
    /// The first `n` services, every other one replicating from the first.
    pub(crate) fn fan_out(n: usize) -> Model {
        assert!((2..=SERVICES.len()).contains(&n), "2 to 4 services");
        let keys: Vec<&'static str> = SERVICES[..n].iter().map(|s| s.0).collect();
        let from = keys[1..].iter().map(|k| (*k, keys[0])).collect();
        Model {
            primary: keys[0],
            keys,
            from,
            away: None,
            returned: None,
        }
    }

    pub(crate) fn replicas(&self) -> Vec<&'static str> {
        self.from.keys().copied().collect()
    }

    /// Whether `below` replicates, directly or through others, from `above`.
    fn is_below(&self, below: &str, above: &str) -> bool {
        let mut at = below;
        while let Some(up) = self.from.get(at) {
            if *up == above {
                return true;
            }
            at = up;
        }
        false
    }

    /// The primary moves to `new`: the old primary and every replica of the old primary
    /// follow `new`; chains below other replicas stay as they are.
    pub(crate) fn switched_to(&self, new: &'static str) -> Model {
        let old = self.primary;
        let mut m = self.clone();
        m.from.remove(new);
        for source in m.from.values_mut() {
            if *source == old {
                *source = new;
            }
        }
        m.from.insert(old, new);
        m.primary = new;
        m
    }

    /// The primary is lost with its region and `new` takes over: the same shape as a
    /// switchover, the old primary away until its region returns.
    pub(crate) fn failed_over_to(&self, new: &'static str) -> Model {
        let mut m = self.switched_to(new);
        m.away = Some(self.primary);
        m
    }

    /// The services that answer: every one but the one away.
    pub(crate) fn present(&self) -> Vec<&'static str> {
        self.keys
            .iter()
            .copied()
            .filter(|k| Some(*k) != self.away)
            .collect()
    }

    pub(crate) fn repointed(&self, replica: &'static str, to: &'static str) -> Model {
        let mut m = self.clone();
        m.from.insert(replica, to);
        m
    }

    /// The topology file: `header` (provider and defaults) and one block per service.
    pub(crate) fn toml(&self, header: &str) -> String {
        let mut t = header.trim_end().to_string();
        t.push('\n');
        for (key, name, region) in SERVICES.iter().filter(|s| self.keys.contains(&s.0)) {
            t.push_str(&format!(
                "\n[services.{key}]\nname = \"{name}\"\nregion = \"{region}\"\n"
            ));
            if let Some(from) = self.from.get(key) {
                // new-backup: where skyplan judges a copy necessary it may make one, and the
                // test sees it (a copy nobody asked for), rather than a refused plan.
                t.push_str(&format!(
                    "\n[services.{key}.replication]\nfrom = \"{from}\"\nseed = \"new-backup\"\n"
                ));
            }
        }
        t
    }
}

/// The kinds of operation, each switchable on its own (see `e2e_dr_random::ENABLED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The primary moves to one of its direct replicas.
    Switchover,
    /// The primary moves to a replica of a replica (the chain's middle catches it up).
    SwitchoverChained,
    /// A replica of the primary moves under another replica.
    Chain,
    /// A replica of a replica moves back under the primary.
    Unchain,
    /// A replica of a replica moves under another replica (needs 4 services).
    Repoint,
    /// `apply --replace service.X` of a replica: the one operation that may copy data.
    Replace,
    /// One of the operations above, its apply killed with SIGKILL, then applied again (a
    /// switchover killed at an even line: its file put back first).
    Kill9,
    /// The primary's database stopped cleanly and started again (data kept).
    Restart,
    /// A replica's database stopped cleanly and started again (data kept).
    RestartReplica,
    /// Every database restarted, one after another (a maintenance window): the roles must
    /// survive it, because they are in each service's configuration.
    RestartAll,
    /// Thousands of single-row transactions on the primary.
    Bulk,
    /// The primary's region goes down (`outage`, errors or timeouts) with the writer running,
    /// and the file fails over to one of its direct replicas (`--allow-data-loss`).
    Failover,
    /// The region of the primary a failover replaced comes back: it is fenced and rejoins by
    /// GTID, or, holding writes the new primary lacks, is re-seeded with `--replace
    /// --allow-data-loss` (the last-copy rule lists them first).
    Return,
    /// A switchover back to the primary a failover replaced, after it returned.
    FlipBack,
}

impl Kind {
    pub(crate) const ALL: [Kind; 14] = [
        Kind::Switchover,
        Kind::SwitchoverChained,
        Kind::Chain,
        Kind::Unchain,
        Kind::Repoint,
        Kind::Replace,
        Kind::Kill9,
        Kind::Restart,
        Kind::RestartReplica,
        Kind::RestartAll,
        Kind::Bulk,
        Kind::Failover,
        Kind::Return,
        Kind::FlipBack,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Switchover => "switchover",
            Kind::SwitchoverChained => "switchover-chained",
            Kind::Chain => "chain",
            Kind::Unchain => "unchain",
            Kind::Repoint => "repoint",
            Kind::Replace => "replace",
            Kind::Kill9 => "kill9",
            Kind::Restart => "restart",
            Kind::RestartReplica => "restart-replica",
            Kind::RestartAll => "restart-all",
            Kind::Bulk => "bulk",
            Kind::Failover => "failover",
            Kind::Return => "return",
            Kind::FlipBack => "flip-back",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Switchover {
        to: &'static str,
    },
    /// Chain, unchain or re-point: `replica` replicates from `to` from now on.
    Repoint {
        replica: &'static str,
        to: &'static str,
    },
    Replace {
        replica: &'static str,
    },
    /// The apply of `op` is killed once it has printed `line` lines on stderr.
    Kill9 {
        line: usize,
        op: Box<Op>,
    },
    Restart {
        key: &'static str,
    },
    /// Every present service's database, one after another.
    RestartAll,
    Bulk {
        rows: u64,
    },
    /// An outage of the primary's region (`timeouts`: its API hangs; otherwise it errors),
    /// then a failover to `to`.
    Failover {
        to: &'static str,
        timeouts: bool,
        /// The candidate stops receiving before the outage while a sibling goes on: the
        /// failover must first catch it up from that sibling.
        lagging: bool,
    },
    /// The region of `key` (away) comes back.
    Return {
        key: &'static str,
    },
}

impl Op {
    /// The model after the operation.
    pub(crate) fn next(&self, m: &Model) -> Model {
        match self {
            Op::Switchover { to } => m.switched_to(to),
            Op::Repoint { replica, to } => m.repointed(replica, to),
            Op::Kill9 { op, .. } => op.next(m),
            Op::Failover { to, .. } => m.failed_over_to(to),
            Op::Return { key } => Model {
                away: None,
                returned: Some(key),
                ..m.clone()
            },
            Op::Replace { .. } | Op::Restart { .. } | Op::RestartAll | Op::Bulk { .. } => m.clone(),
        }
    }

    /// The replica `apply --replace` re-seeds, if this operation is one.
    pub(crate) fn replaces(&self) -> Option<&'static str> {
        match self {
            Op::Replace { replica } => Some(replica),
            Op::Kill9 { op, .. } => op.replaces(),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Switchover { to } => write!(f, "switchover to {to}"),
            Op::Repoint { replica, to } => write!(f, "re-point {replica} to {to}"),
            Op::Replace { replica } => write!(f, "apply --replace service.{replica}"),
            Op::Kill9 { line, op } => write!(f, "kill -9 at stderr line {line} of: {op}"),
            Op::Restart { key } => write!(f, "restart the database of {key}"),
            Op::RestartAll => write!(f, "restart every database, one after another"),
            Op::Bulk { rows } => write!(f, "{rows} single-row transactions"),
            Op::Failover {
                to,
                timeouts,
                lagging,
            } => write!(
                f,
                "outage ({}) of the primary's region, failover to {to}{}",
                if *timeouts { "timeouts" } else { "errors" },
                if *lagging {
                    ", which lags a sibling"
                } else {
                    ""
                }
            ),
            Op::Return { key } => write!(f, "the region of {key} returns"),
        }
    }
}

/// The next operation: a kind chosen evenly among the enabled ones valid in `m`, then its
/// arguments. `None` when no enabled kind is valid.
pub(crate) fn pick(rng: &mut StdRng, m: &Model, enabled: &[Kind]) -> Option<Op> {
    let valid: Vec<Kind> = enabled
        .iter()
        .copied()
        .filter(|k| !candidates(m, *k, enabled).is_empty())
        .collect();
    let kind = *valid.choose(rng)?;
    let mut ops = candidates(m, kind, enabled);
    ops.shuffle(rng);
    let op = ops.swap_remove(0);
    Some(match op {
        Op::Kill9 { .. } => {
            // The operation whose apply is killed, and where: an apply prints a line per
            // step, a dozen or two in all; a line past its end means no kill, which is fine.
            let inner = pick(rng, m, &changing(enabled))?;
            Op::Kill9 {
                line: rng.gen_range(1..=16),
                op: Box::new(inner),
            }
        }
        Op::Bulk { .. } => Op::Bulk {
            // Each is ~6 binlog events: well past any 500-event assumption.
            rows: rng.gen_range(1000..=2500),
        },
        Op::Failover { to, .. } => Op::Failover {
            to,
            timeouts: rng.gen_bool(0.5),
            // Only where another direct replica of the primary receives what it misses.
            lagging: m.from.iter().any(|(r, s)| *s == m.primary && *r != to) && rng.gen_bool(0.5),
        },
        op => op,
    })
}

/// The enabled kinds that change the topology through an apply (the ones a kill can hit).
fn changing(enabled: &[Kind]) -> Vec<Kind> {
    enabled
        .iter()
        .copied()
        .filter(|k| {
            matches!(
                k,
                Kind::Switchover
                    | Kind::SwitchoverChained
                    | Kind::Chain
                    | Kind::Unchain
                    | Kind::Repoint
                    | Kind::Replace
            )
        })
        .collect()
}

/// Every operation of `kind` valid in `m` (placeholders for the kill and the bulk).
fn candidates(m: &Model, kind: Kind, enabled: &[Kind]) -> Vec<Op> {
    let replicas = m.replicas();
    let p = m.primary;
    // While a primary is away, only its return and writes: a topology change would have to
    // move a service that does not answer.
    if let Some(key) = m.away {
        return match kind {
            Kind::Return => vec![Op::Return { key }],
            Kind::Bulk => vec![Op::Bulk { rows: 0 }],
            _ => vec![],
        };
    }
    match kind {
        Kind::Switchover => replicas
            .iter()
            .filter(|r| m.from[*r] == p)
            .map(|to| Op::Switchover { to })
            .collect(),
        Kind::SwitchoverChained => replicas
            .iter()
            .filter(|r| m.from[*r] != p)
            .map(|to| Op::Switchover { to })
            .collect(),
        Kind::Chain => pairs(m, |r, to| m.from[r] == p && to != p),
        Kind::Unchain => replicas
            .iter()
            .filter(|r| m.from[*r] != p)
            .map(|replica| Op::Repoint { replica, to: p })
            .collect(),
        Kind::Repoint => pairs(m, |r, to| m.from[r] != p && to != p),
        Kind::Replace => replicas
            .iter()
            .map(|replica| Op::Replace { replica })
            .collect(),
        Kind::Kill9 => {
            let inner = changing(enabled);
            let any = inner.iter().any(|k| !candidates(m, *k, &inner).is_empty());
            if any {
                vec![Op::Kill9 {
                    line: 0,
                    op: Box::new(Op::Bulk { rows: 0 }),
                }]
            } else {
                vec![]
            }
        }
        Kind::Restart => vec![Op::Restart { key: p }],
        Kind::RestartReplica => replicas.iter().map(|key| Op::Restart { key }).collect(),
        Kind::RestartAll => vec![Op::RestartAll],
        Kind::Bulk => vec![Op::Bulk { rows: 0 }],
        Kind::Failover => replicas
            .iter()
            .filter(|r| m.from[*r] == p)
            .map(|to| Op::Failover {
                to,
                timeouts: false,
                lagging: false,
            })
            .collect(),
        Kind::Return => vec![],
        Kind::FlipBack => m
            .returned
            .filter(|k| m.from.get(k) == Some(&p))
            .map(|to| Op::Switchover { to })
            .into_iter()
            .collect(),
    }
}

/// Re-points of a replica `r` to a new source `to` that keep every replica under the primary
/// (no cycle) and that `ok` accepts.
fn pairs(m: &Model, ok: impl Fn(&str, &str) -> bool) -> Vec<Op> {
    let mut v = Vec::new();
    for replica in m.replicas() {
        for to in m.keys.iter().copied() {
            let fine = to != replica
                && m.from[replica] != to
                && !m.is_below(to, replica)
                && ok(replica, to);
            if fine {
                v.push(Op::Repoint { replica, to });
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_switchover_moves_the_old_primarys_replicas_and_keeps_chains() {
        let m = Model::fan_out(4).repointed("fourth", "third");
        let s = m.switched_to("third");
        assert_eq!(s.primary, "third");
        assert_eq!(s.from["primary"], "third");
        assert_eq!(s.from["secondary"], "third");
        assert_eq!(s.from["fourth"], "third");
        assert!(!s.from.contains_key("third"));
        let s = m.switched_to("fourth");
        assert_eq!(s.from["third"], "fourth");
        assert_eq!(s.from["primary"], "fourth");
    }

    #[test]
    fn generated_operations_keep_every_replica_under_the_primary() {
        for seed in 0..200 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut m = Model::fan_out(4);
            for _ in 0..30 {
                let op = pick(&mut rng, &m, &Kind::ALL).unwrap();
                if m.away.is_some() {
                    assert!(
                        matches!(op, Op::Return { .. } | Op::Bulk { .. }),
                        "{op} while away: {m:?}"
                    );
                }
                m = op.next(&m);
                assert!(!m.from.contains_key(m.primary), "{op}: {m:?}");
                for r in m.replicas() {
                    assert!(m.is_below(r, m.primary), "{op}: {m:?}");
                }
            }
        }
    }
}
