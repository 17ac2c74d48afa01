//! Roles: which service is the primary is a property of the topology. A change of it while
//! the old primary is alive is a **switchover**, planned as one action (fence, catch up,
//! promote, re-point the old primary from its own position), never as a backup and a restore
//! over the old primary.
//!
//! Recognised when the state records `new` as a direct replica of `old`, `old` as replicating
//! from nobody, and the topology turns that round: `new` replicates from nobody and `old` from
//! `new`. The other replicas of `old` that the topology moves to `new` are ordinary re-points
//! by GTID, after the switchover.
//!
//! When `old` is lost (deleted, or its API or database does not answer), the same change is a
//! **failover**: `new` is promoted with what it received, which may be less than `old` had.
//! It is planned only with `--allow-data-loss`, with an estimate of the loss from the GTIDs
//! skyplan last read on `old` and what `new` has received. `old` may then leave the topology
//! or stay in it as a replica of `new`: re-created if it is gone, or, if it only does not
//! answer, fenced and rejoined by GTID when it answers again (see `links::plan_link`).

use serde_json::json;

use super::Planned;
use crate::gtid::{self, GtidSet, Holdings};
use crate::observed::{Observed, ObservedService};
use crate::plan::action::{ActionKind, Change};
use crate::plan::PlanError;
use crate::state::State;
use crate::topology::Topology;

/// One switchover (or failover): `old` primary → `new` primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Switch {
    pub(super) old: String,
    pub(super) new: String,
    /// Set for a failover: `old` is lost.
    pub(super) lost: Option<Lost>,
    /// A switchover's GTID check (`None`: refresh was skipped, so only apply checks it,
    /// before the fence).
    pub(super) checked: Option<Checked>,
}

/// What a switchover's GTID check found, for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Checked {
    /// What the candidate will have once caught up, and where its binlogs begin.
    has: String,
    serves: String,
    /// (key, its GTIDs) of the old primary and each sibling that moves to the candidate.
    followers: Vec<(String, String)>,
}

/// Why a failover's old primary is lost, and what promoting the candidate loses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lost {
    pub(super) why: String,
    /// Deleted (404, or not in the state): nothing will come back.
    pub(super) gone: bool,
    pub(super) estimate: Estimate,
    /// The surviving sibling the candidate first catches up from, when one holds more.
    pub(super) catch_up: Option<CatchUp>,
}

/// A failover's catch-up: the candidate replicates from `from` until it holds all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CatchUp {
    pub(super) from: String,
    /// The ranges `from` holds that the candidate lacks, described.
    pub(super) more: String,
}

/// What a failover loses, as far as skyplan can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Estimate {
    pub(super) text: String,
    /// Transactions known lost (`None`: unknown).
    pub(super) known_lost: Option<u64>,
    /// What the candidate has received (applied or in its relay log).
    pub(super) received: String,
}

/// The switchovers and failovers the topology asks for, and why some cannot be done.
pub(super) struct Roles {
    pub(super) switches: Vec<Switch>,
    pub(super) errors: Vec<PlanError>,
    /// Old primaries found lost (their failover planned or refused): the plan works around
    /// them rather than failing on them a second time.
    pub(super) lost: Vec<String>,
}

pub(super) fn roles(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    allow_data_loss: bool,
) -> Roles {
    let mut lost_olds = Vec::new();
    let result = switchovers(topology, state, observed, allow_data_loss, &mut lost_olds);
    let (switches, errors) = match result {
        Ok(s) => (s, Vec::new()),
        Err(e) => (Vec::new(), e),
    };
    Roles {
        switches,
        errors,
        lost: lost_olds,
    }
}

fn switchovers(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    allow_data_loss: bool,
    lost_olds: &mut Vec<String>,
) -> Result<Vec<Switch>, Vec<PlanError>> {
    let res = &state.resources;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (new, link) in &res.replications {
        let becomes_root = topology
            .services
            .get(new)
            .is_some_and(|s| s.replication.is_none());
        let old = &link.source;
        let old_was_root = !res.replications.contains_key(old);
        let old_follows = topology
            .services
            .get(old)
            .and_then(|s| s.replication.as_ref());
        if becomes_root && !old_was_root {
            errors.extend(chained_candidate(topology, state, observed, old, new));
            continue;
        }
        if !(becomes_root && old_was_root) {
            continue;
        }
        let gone = matches!(
            observed.services.get(old),
            Some(ObservedService::Missing { .. })
        ) || !res.services.contains_key(old);
        let lost = if res.services.contains_key(old) {
            observed.lost(old)
        } else {
            Some("it is not in the state".into())
        };
        if let Some(why) = lost {
            lost_olds.push(old.clone());
            match failover(state, observed, old, new, why, gone, old_follows) {
                Ok(lost) if allow_data_loss => found.push(Switch {
                    old: old.clone(),
                    new: new.clone(),
                    lost: Some(lost),
                    checked: None,
                }),
                Ok(lost) => errors.push(PlanError::Failover {
                    old: old.clone(),
                    new: new.clone(),
                    why: lost.why,
                    estimate: lost.estimate.text,
                }),
                Err(e) => errors.push(e),
            }
            continue;
        }
        let Some(follows) = old_follows else {
            continue;
        };
        if &follows.from != new {
            errors.push(PlanError::SwitchoverShape {
                old: old.clone(),
                new: new.clone(),
                from: follows.from.clone(),
            });
            continue;
        }
        // Fencing and opening need the privilege to change read_only on both: refused now,
        // before anything is touched, where refresh saw it missing.
        if let Some(key) = [old, new]
            .into_iter()
            .find(|k| observed.can_fence.get(*k) == Some(&false))
        {
            errors.push(PlanError::CannotFence { key: key.clone() });
            continue;
        }
        // A switchover an apply started and did not finish may have stopped (or reset) the
        // candidate's replication after it caught up: apply resumes it from where it was.
        let resuming = res
            .services
            .get(new)
            .is_some_and(|r| r.role_change.as_ref().is_some_and(|c| &c.from == old));
        // The candidate must be replicating, and not too far behind, to be promoted.
        if let Some(o) = observed.replication.get(new).filter(|_| !resuming) {
            if let Some(e) = unfit_candidate(new, o, follows.max_lag_seconds) {
                errors.push(e);
                continue;
            }
        }
        let checked = match followers_check(topology, state, observed, old, new) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        found.push(Switch {
            old: old.clone(),
            new: new.clone(),
            lost: None,
            checked,
        });
    }
    errors.extend(two_successors(&found));
    errors.extend(replaced_primaries_promoted(topology, state));
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// Promoting a replica of a replica while its chain's primary becomes a replica: a
/// switchover the plan cannot fence and catch up in one step (the middle lies between).
/// Refused, with the way to do it.
fn chained_candidate(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    old: &str,
    new: &str,
) -> Option<PlanError> {
    let res = &state.resources;
    let mut root = old.to_string();
    let mut hops = 0;
    while let Some(l) = res.replications.get(&root) {
        root = l.source.clone();
        hops += 1;
        if hops > res.replications.len() {
            break;
        }
    }
    let demoted = topology
        .services
        .get(&root)
        .is_some_and(|s| s.replication.is_some());
    (demoted && root != new && observed.lost(&root).is_none()).then(|| {
        PlanError::ChainedCandidate {
            new: new.to_string(),
            via: old.to_string(),
            root,
        }
    })
}

/// A candidate that does not replicate, or lags more than `max_lag_seconds`.
fn unfit_candidate(
    new: &str,
    o: &crate::observed::ObservedReplication,
    max_lag_seconds: u64,
) -> Option<PlanError> {
    let lag = o.seconds_behind_master.unwrap_or(0);
    if o.io_running && o.sql_running && lag <= max_lag_seconds {
        return None;
    }
    Some(PlanError::CandidateUnhealthy {
        new: new.to_string(),
        why: if o.io_running && o.sql_running {
            format!("it is {lag} s behind (max_lag_seconds = {max_lag_seconds})")
        } else {
            "its replication is not running".into()
        },
    })
}

/// One lost primary, one successor: two would be two writers.
fn two_successors(found: &[Switch]) -> Vec<PlanError> {
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for sw in found.iter().filter(|s| s.lost.is_some()) {
        if !seen.insert(&sw.old) {
            let news: Vec<String> = found
                .iter()
                .filter(|s| s.old == sw.old)
                .map(|s| format!("service.{}", s.new))
                .collect();
            errors.push(PlanError::TwoSuccessors {
                old: sw.old.clone(),
                news: news.join(", "),
            });
        }
    }
    errors
}

/// A primary that a failover replaced and that has not rejoined holds writes (or may) the new
/// primary lacks, and lacks the new primary's: making it the primary again would strand one
/// side. It must follow the new primary first; then it can be switched back.
fn replaced_primaries_promoted(topology: &Topology, state: &State) -> Vec<PlanError> {
    let mut errors = Vec::new();
    for (key, rec) in &state.resources.services {
        let Some(by) = &rec.failed_over_to else {
            continue;
        };
        let primary_again = topology
            .services
            .get(key)
            .is_some_and(|s| s.replication.is_none());
        if primary_again {
            errors.push(PlanError::ReplacedPrimaryPromoted {
                key: key.clone(),
                by: by.clone(),
            });
        }
    }
    errors
}

/// The replicas of `old` that the topology moves to `new` (a switchover's siblings).
pub fn siblings<'a>(
    topology: &'a Topology,
    state: &'a State,
    old: &'a str,
    new: &'a str,
) -> impl Iterator<Item = &'a String> + 'a {
    state
        .resources
        .replications
        .iter()
        .filter(move |(k, l)| {
            l.source == old
                && k.as_str() != new
                && topology
                    .services
                    .get(k.as_str())
                    .and_then(|s| s.replication.as_ref())
                    .is_some_and(|r| r.from == new)
        })
        .map(|(k, _)| k)
}

/// Before anything is fenced: once `new` has caught up with `old`, can `old` and the siblings
/// follow it from their own positions ([`gtid::takeover`])? The text says what was checked,
/// with the GTIDs it used.
fn followers_check(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    old: &str,
    new: &str,
) -> Result<Option<Checked>, PlanError> {
    if !observed.refreshed {
        return Ok(None);
    }
    let refuse = |follower: &str, why: String| PlanError::SwitchoverNeedsCopy {
        old: old.to_string(),
        new: new.to_string(),
        follower: follower.to_string(),
        why,
    };
    let holdings = |key: &str| {
        observed
            .gtids
            .get(key)
            .ok_or_else(|| format!("the GTIDs of service.{key} could not be read"))
            .and_then(|g| g.holdings().map_err(|e| e.to_string()))
    };
    let h_old = holdings(old).map_err(|why| refuse(old, why))?;
    let h_new = holdings(new).map_err(|why| refuse(old, why))?;
    let mut others = Vec::new();
    for k in siblings(topology, state, old, new) {
        others.push((k.as_str(), holdings(k).map_err(|why| refuse(k, why))?));
    }
    let refs: Vec<(&str, &gtid::Holdings)> = others.iter().map(|(k, h)| (*k, h)).collect();
    let after = gtid::takeover((old, &h_old), &h_new, &refs).map_err(|(k, u)| {
        refuse(
            k,
            u.describe(&format!("service.{k}"), &format!("service.{new}")),
        )
    })?;
    let mut followers = vec![(old.to_string(), shown_set(&h_old.has))];
    followers.extend(
        others
            .iter()
            .map(|(k, h)| (k.to_string(), shown_set(&h.has))),
    );
    Ok(Some(Checked {
        has: shown_set(&after.has),
        serves: after.describe_serves(),
        followers,
    }))
}

fn shown_set(s: &GtidSet) -> String {
    crate::gtid::shown(&s.to_string()).to_string()
}

/// A failover of lost `old` to `new`: whether it can be done, and what it loses.
fn failover(
    state: &State,
    observed: &Observed,
    old: &str,
    new: &str,
    why: String,
    gone: bool,
    old_follows: Option<&crate::topology::Replication>,
) -> Result<Lost, PlanError> {
    // The old primary may leave the topology, or follow the new one; not another service.
    if let Some(f) = old_follows.filter(|f| f.from != new) {
        return Err(PlanError::SwitchoverShape {
            old: old.to_string(),
            new: new.to_string(),
            from: f.from.clone(),
        });
    }
    let candidate_down = |why: String| PlanError::CandidateUnhealthy {
        new: new.to_string(),
        why,
    };
    if let Some(down) = observed.lost(new) {
        return Err(candidate_down(down));
    }
    if observed.can_fence.get(new) == Some(&false) {
        return Err(PlanError::CannotFence {
            key: new.to_string(),
        });
    }
    // An apply that was stopped while the candidate caught up from a sibling left it
    // replicating from that sibling: the failover resumes from there.
    let resumed_from = observed
        .replication
        .get(new)
        .and_then(|r| replicates_from_sibling(state, old, new, r));
    if let Some(r) = observed.replication.get(new) {
        // Still receiving from it: the old primary is alive, skyplan only cannot reach it.
        // Promoting now would make two writers; skyplan cannot fence what it cannot reach.
        // (A deleted one is gone whatever a stale connection still says.)
        if resumed_from.is_none() && !gone && r.io_running && r.last_io_errno == 0 {
            return Err(PlanError::FailoverOfALivePrimary {
                old: old.to_string(),
                new: new.to_string(),
                why,
            });
        }
        if !r.sql_running && r.last_sql_errno != 0 {
            return Err(candidate_down(format!(
                "its SQL thread stopped on error {} ({}), so it cannot apply what it received",
                r.last_sql_errno, r.last_sql_error
            )));
        }
    }
    let mine = received(observed, new).map_err(candidate_down)?;
    // MHA's rule: a failover loses only what no survivor received. A sibling that holds
    // transactions the candidate lacks would lose them (re-pointed onto the candidate it is
    // errant, re-seeded it is wiped); so the candidate first catches up from the sibling
    // that holds the most, when that sibling holds everything every survivor received.
    let mut survivors = mine.has.clone();
    let mut ahead: Vec<(String, Holdings)> = Vec::new();
    for (k, l) in &state.resources.replications {
        if l.source != old || k == new || observed.lost(k).is_some() {
            continue;
        }
        // Any replica of it still receiving: it is alive (see above), whichever replica.
        if let Some(r) = observed.replication.get(k) {
            if !gone && r.io_running && r.last_io_errno == 0 {
                return Err(PlanError::FailoverOfALivePrimary {
                    old: old.to_string(),
                    new: k.clone(),
                    why,
                });
            }
        }
        let Ok(theirs) = received(observed, k) else {
            continue;
        };
        survivors = survivors.union(&theirs.has);
        if !gtid::beyond(&theirs.has, &mine.has).is_empty() || resumed_from.as_deref() == Some(k) {
            ahead.push((k.clone(), theirs));
        }
    }
    let catch_up = choose_catch_up(
        state,
        old,
        new,
        &mine,
        &survivors,
        ahead,
        resumed_from.as_deref(),
    )?;
    let mut estimate = estimate(state, old, new, &survivors);
    if let Some(c) = &catch_up {
        // What the candidate itself received, for the step that waits for it.
        estimate.received = if mine.has.is_empty() {
            "nothing".into()
        } else {
            mine.has.to_string()
        };
        estimate.text = format!(
            "{} (counting what service.{new} gets from service.{} before it opens)",
            estimate.text, c.from
        );
    }
    Ok(Lost {
        why,
        gone,
        estimate,
        catch_up,
    })
}

/// The sibling a failover's candidate catches up from: one that holds everything every
/// survivor received and can serve the candidate from its position; the one an interrupted
/// apply began with first, then the one holding the most (key order between equals). None
/// when no sibling is ahead; refused, naming the first, when none of those ahead can serve.
fn choose_catch_up(
    state: &State,
    old: &str,
    new: &str,
    mine: &Holdings,
    survivors: &gtid::GtidSet,
    mut ahead: Vec<(String, Holdings)>,
    resumed_from: Option<&str>,
) -> Result<Option<CatchUp>, PlanError> {
    ahead.sort_by_key(|(k, h)| {
        (
            resumed_from != Some(k.as_str()),
            std::cmp::Reverse(total(&h.has)),
            k.clone(),
        )
    });
    let mut refused = None;
    let mut catch_up = None;
    for (sibling, theirs) in &ahead {
        let more = gtid::beyond(&theirs.has, &mine.has);
        let refuse = |why: String| PlanError::FailoverBehindSibling {
            old: old.to_string(),
            new: new.to_string(),
            sibling: sibling.clone(),
            behind: Box::new(crate::plan::Behind {
                more: gtid::describe_ranges(&more),
                why,
            }),
        };
        let after = mine.has.clone().union(&theirs.has);
        let left = gtid::beyond(survivors, &after);
        let why_not = if !left.is_empty() {
            Some(format!(
                "even caught up from it, service.{new} would lack {} that other survivors hold",
                gtid::describe_ranges(&left)
            ))
        } else if !linkable(state, sibling) {
            Some(format!(
                "service.{sibling} is not a recorded service skyplan can link to"
            ))
        } else if let Err(u) = gtid::can_follow(mine, theirs, &[]) {
            Some(format!(
                "service.{new} cannot replicate from it by GTID: {}",
                u.describe(&format!("service.{new}"), &format!("service.{sibling}"))
            ))
        } else {
            None
        };
        match why_not {
            Some(why) => {
                refused.get_or_insert_with(|| refuse(why));
            }
            None => {
                catch_up = Some(CatchUp {
                    from: sibling.clone(),
                    more: if more.is_empty() {
                        "nothing more (an earlier apply's catch-up is finished here)".into()
                    } else {
                        gtid::describe_ranges(&more)
                    },
                });
                break;
            }
        }
    }
    match (catch_up, refused) {
        (None, Some(e)) => Err(e),
        (c, _) => Ok(c),
    }
}

/// What `key` has received: everything it applied, and its relay log (`Gtid_IO_Pos`), with
/// where its binlogs begin.
fn received(observed: &Observed, key: &str) -> Result<Holdings, String> {
    let Some(have) = observed.gtids.get(key) else {
        return Err("its GTIDs could not be read, so what it would lose is unknown".into());
    };
    let mut h = have.holdings().map_err(|e| e.to_string())?;
    let io = observed
        .replication
        .get(key)
        .and_then(|o| o.gtid_io_pos.as_deref())
        .unwrap_or_default();
    h.has = h.has.union(&GtidSet::parse(io).map_err(|e| e.to_string())?);
    Ok(h)
}

/// How many transactions a set holds (per stream, everything up to its last sequence number).
fn total(s: &GtidSet) -> u64 {
    s.iter().fold(0u64, |n, g| n.saturating_add(g.seq))
}

/// A sibling the failover can link the candidate to: recorded with an endpoint.
fn linkable(state: &State, key: &str) -> bool {
    state
        .resources
        .services
        .get(key)
        .is_some_and(|r| r.fqdn.is_some() && r.port.is_some())
}

/// The sibling of `new` (another replica of `old`) that `new` replicates from now, when its
/// replication points at one: a failover's catch-up that an earlier apply began.
fn replicates_from_sibling(
    state: &State,
    old: &str,
    new: &str,
    r: &crate::observed::ObservedReplication,
) -> Option<String> {
    let (host, port) = (r.master_host.as_deref()?, r.master_port?);
    let res = &state.resources;
    res.replications
        .iter()
        .filter(|(k, l)| l.source == old && k.as_str() != new)
        .map(|(k, _)| k)
        .find(|k| {
            res.services
                .get(k.as_str())
                .is_some_and(|s| s.fqdn.as_deref() == Some(host) && s.port == Some(port))
        })
        .cloned()
}

/// Compare what `old` had when skyplan last read it with what `new` has `received`; the lag
/// `new` had at that time says how stale that reading may be.
fn estimate(state: &State, old: &str, new: &str, received: &GtidSet) -> Estimate {
    let res = &state.resources;
    let seen = res.services.get(old).and_then(|r| r.last_seen.as_ref());
    let lag = res
        .services
        .get(new)
        .and_then(|r| r.last_seen.as_ref())
        .and_then(|l| l.lag_seconds)
        .map(|l| format!("; service.{new} was {l} s behind then"))
        .unwrap_or_default();
    let have = if received.is_empty() {
        "nothing".to_string()
    } else {
        received.to_string()
    };
    let (text, known_lost) = match seen.map(|s| (s, GtidSet::parse(&s.gtid_binlog_state))) {
        None => (
            format!(
                "unknown: skyplan never read service.{old}'s GTIDs; service.{new} has received {have}"
            ),
            None,
        ),
        Some((s, Err(_))) => (
            format!(
                "unknown: the GTIDs last read on service.{old} ({:?}) do not parse; service.{new} has received {have}",
                s.gtid_binlog_state
            ),
            None,
        ),
        Some((s, Ok(had))) => {
            let missing = gtid::beyond(&had, received);
            let n = missing
                .iter()
                .fold(0u64, |n, r| n.saturating_add(r.count()));
            let lost = if missing.is_empty() {
                format!("service.{new} has received everything service.{old} had then")
            } else {
                format!(
                    "service.{new} lacks {} of it",
                    gtid::describe_ranges(&missing)
                )
            };
            (
                format!(
                    "service.{old} was last read at {} with {}{lag}; {lost}, and loses whatever service.{old} committed after that",
                    s.at,
                    if had.is_empty() { "no transactions".to_string() } else { had.to_string() },
                ),
                Some(n),
            )
        }
    };
    Estimate {
        text,
        known_lost,
        received: have,
    }
}

/// The failover action: promote `new` with what it received.
pub(super) fn failover_action(
    sw: &Switch,
    lost: &Lost,
    name_of: impl Fn(&str) -> String,
) -> Planned {
    let (old, new) = (name_of(&sw.old), name_of(&sw.new));
    let after_old = if lost.gone {
        format!("{old} no longer exists: nothing of it is kept")
    } else {
        format!(
            "{old} does not answer: it stays recorded as the replaced primary; when it answers \
             again, the next apply fences it first, then rejoins it to {new} by GTID when it has \
             no transaction {new} lacks (otherwise it stays fenced and the plan lists them)"
        )
    };
    let steps = vec![
        format!(
            "wait until {new} has applied everything it received from {old} (up to {})",
            lost.estimate.received
        ),
        format!("stop and reset replication on {new}, open it for writes"),
        after_old,
    ];
    let mut steps = steps;
    if let Some(c) = &lost.catch_up {
        let from = name_of(&c.from);
        steps.splice(
            1..1,
            [format!(
                "catch up from {from}, which holds {} that {new} lacks: allowlist {new} on \
                     {from} (temporary), replicate {new} from {from} by GTID from its own \
                     position until it holds everything {from} holds, then stop that link and \
                     revoke the entry; a failure here leaves {new} closed",
                c.more
            )],
        );
    }
    Planned {
        kind: ActionKind::Failover {
            old: sw.old.clone(),
            new: sw.new.clone(),
            old_gone: lost.gone,
            catch_up_from: lost.catch_up.as_ref().map(|c| c.from.clone()),
        },
        change: Change::Update,
        summary: format!(
            "failover primary {old} -> {new} (the old primary is lost; --allow-data-loss)"
        ),
        before: Some(json!({
            "primary": old,
            "lost": lost.why,
            "known_lost_transactions": lost.estimate.known_lost,
            "candidate_received": lost.estimate.received,
            "catch_up_from": lost.catch_up.as_ref().map(|c| name_of(&c.from)),
        })),
        after: Some(json!({ "primary": new, "steps": steps })),
        wipes_data: false,
        reason: Some(format!(
            "service.{} is lost: {}; data loss: {}",
            sw.old, lost.why, lost.estimate.text
        )),
    }
}

/// The switchover action, with the GTIDs and lag refresh saw.
pub(super) fn action(
    sw: &Switch,
    topology: &Topology,
    observed: &Observed,
    name_of: impl Fn(&str) -> String,
) -> Planned {
    let (old, new) = (name_of(&sw.old), name_of(&sw.new));
    let follows = topology.services[&sw.old]
        .replication
        .as_ref()
        .expect("a switchover's old primary replicates in the topology");
    let final_gtid = observed
        .gtids
        .get(&sw.old)
        .map(|g| g.binlog_state.clone())
        .filter(|g| !g.is_empty());
    let candidate_gtid = observed
        .gtids
        .get(&sw.new)
        .map(|g| g.current_pos.clone())
        .filter(|g| !g.is_empty());
    let lag = observed
        .replication
        .get(&sw.new)
        .and_then(|o| o.seconds_behind_master);
    let known = |g: &Option<String>| {
        g.as_deref()
            .map_or("(read at apply)", crate::gtid::shown)
            .to_string()
    };
    let steps = vec![
        format!(
            "check {new} replicates and is at most {} s behind (now {})",
            follows.max_lag_seconds,
            lag.map_or("unknown".to_string(), |l| format!("{l} s"))
        ),
        format!("fence {old}: read-only for clients, their sessions ended"),
        format!(
            "wait until {new} has applied {old}'s final GTID position (now {})",
            known(&final_gtid)
        ),
        format!("stop and reset replication on {new}, open it for writes"),
        format!(
            "re-point {old} at {new} from its own position, no data copied{}",
            if follows.ssl { ", ssl" } else { "" }
        ),
        format!(
            "rollback: if a step fails before {new} is open, {old} is unfenced and nothing else changes"
        ),
    ];
    let mut steps = steps;
    steps.insert(
        1,
        match &sw.checked {
            Some(c) => format!(
                "check by GTID: once caught up, {new} has {} and its binlogs hold {}, so {} can \
                 follow it from their own positions (nothing errant, nothing purged); checked \
                 again before the fence",
                c.has,
                c.serves,
                c.followers
                    .iter()
                    .map(|(k, at)| format!("{} (at {at})", name_of(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!(
                "check by GTID, before the fence, that {old} and the replicas moving to {new} \
                 can follow it from their own positions (not read now: refresh was skipped)"
            ),
        },
    );
    Planned {
        kind: ActionKind::Switchover {
            old: sw.old.clone(),
            new: sw.new.clone(),
            ssl: follows.ssl,
            max_lag_seconds: follows.max_lag_seconds,
        },
        change: Change::Update,
        summary: format!("switch   primary {old} -> {new} (no data copied)"),
        before: Some(json!({
            "primary": old,
            "gtid_binlog_state": final_gtid,
            "candidate_gtid": candidate_gtid,
            "candidate_lag_seconds": lag,
        })),
        after: Some(json!({ "primary": new, "steps": steps })),
        wipes_data: false,
        reason: None,
    }
}
