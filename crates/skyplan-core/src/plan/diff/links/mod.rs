//! Replication links: for each replica of the topology, the seeding (backup, restore), the
//! allowlist grant on its source and the wiring it needs, including the repairs of drift that
//! refresh saw; and the teardown of links the topology no longer has.
//!
//! This file holds what every link decision reads (`Ctx`), the walk over the replicas
//! ([`plan_links`], `plan_link`) and the checks a link is judged by: its health as refresh saw
//! it, and whether a replica can continue from its own GTID position (errant or diverged
//! transactions). The actions it plans have their own files: `grants` (allowlist entries on the
//! source), `wire` (the replicate action), `backups` (the seeding copy), `read_only` (client
//! roles), `users` (orphaned replication users), `teardown` (links the topology dropped).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{DiffOutput, Fate};
use crate::gtid;
use crate::observed::{Observed, ObservedService};
use crate::plan::action::WireMode;
use crate::plan::drift::{classify_replication, Drift, DriftKind};
use crate::plan::PlanError;
use crate::state::{ReplicationRecord, RoleChangeStep, State};
use crate::topology::{Replication, Seed, Topology};

mod backups;
mod grants;
mod read_only;
mod teardown;
mod users;
mod wire;

use backups::{plan_backups, restore, SeedKey};
use grants::{plan_grant, revoke_stale_grants};
use read_only::{interrupted_role_changes, plan_roles};
use teardown::plan_teardown;
use users::plan_orphaned_users;
use wire::{wire, wire_mode};

/// The inputs every link decision reads.
struct Ctx<'a> {
    topology: &'a Topology,
    state: &'a State,
    observed: &'a Observed,
    fates: &'a BTreeMap<&'a str, Fate>,
    /// `--replace` addresses.
    replace: &'a [String],
    /// Services this plan re-seeds (found by a first pass, sources before their replicas):
    /// nothing re-points onto one by its GTIDs of now, which the copy replaces.
    reseeded: BTreeSet<String>,
    /// Failover candidates that first catch up from a sibling → that sibling: what the
    /// candidate will hold once open includes what the sibling holds.
    catching_up: BTreeMap<String, String>,
}

impl Ctx<'_> {
    fn name_of(&self, key: &str) -> String {
        self.topology
            .services
            .get(key)
            .map(|s| s.spec.name.clone())
            .or_else(|| {
                self.state
                    .resources
                    .services
                    .get(key)
                    .map(|r| r.spec.name.clone())
            })
            .unwrap_or_else(|| key.to_string())
    }

    fn fate(&self, key: &str) -> Fate {
        self.fates.get(key).copied().unwrap_or(Fate::Keep)
    }

    /// `--replace` names this replica (`service.KEY` or `replication.KEY`): re-seed it.
    fn reseed_requested(&self, key: &str) -> bool {
        self.replace
            .iter()
            .any(|a| *a == format!("service.{key}") || *a == format!("replication.{key}"))
    }

    /// A primary that a failover replaced and that has not rejoined yet.
    fn replaced(&self, key: &str) -> bool {
        self.state
            .resources
            .services
            .get(key)
            .is_some_and(|r| r.failed_over_to.is_some())
    }

    /// A switchover to another service got past the candidate's opening and stopped before
    /// `key`, its old primary, followed: the candidate it must follow now.
    fn left_behind_by(&self, key: &str) -> Option<&str> {
        self.state.resources.services.iter().find_map(|(k, r)| {
            r.role_change
                .as_ref()
                .filter(|c| c.from == key && c.step == RoleChangeStep::Opened)
                .map(|_| k.as_str())
        })
    }

    /// The API says nothing of it now: deleted, or not answering.
    fn api_lost(&self, key: &str) -> bool {
        matches!(
            self.observed.services.get(key),
            Some(ObservedService::Missing { .. } | ObservedService::Unreachable { .. })
        )
    }

    /// Refresh found the id recorded in state gone.
    fn deleted_outside(&self, key: &str) -> bool {
        matches!(
            self.observed.services.get(key),
            Some(ObservedService::Missing { .. })
        )
    }
}

#[cfg(test)]
impl<'a> Ctx<'a> {
    /// A context over these inputs: no `--replace`, nothing re-seeded, no failover catching up.
    fn for_test(
        topology: &'a Topology,
        state: &'a State,
        observed: &'a Observed,
        fates: &'a BTreeMap<&'a str, Fate>,
    ) -> Ctx<'a> {
        Ctx {
            topology,
            state,
            observed,
            fates,
            replace: &[],
            reseeded: BTreeSet::new(),
            catching_up: BTreeMap::new(),
        }
    }
}

/// (source, seed) → replicas that need a fresh copy of the source's data.
type Seeds = BTreeMap<(String, SeedKey), Vec<String>>;

pub(super) fn plan_links(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    fates: &BTreeMap<&str, Fate>,
    switches: &[super::roles::Switch],
    replace: &[String],
    out: &mut DiffOutput,
) -> Result<(), PlanError> {
    let mut cx = Ctx {
        topology,
        state,
        observed,
        fates,
        replace,
        reseeded: BTreeSet::new(),
        catching_up: switches
            .iter()
            .filter_map(|s| {
                let c = s.lost.as_ref()?.catch_up.as_ref()?;
                Some((s.new.clone(), c.from.clone()))
            })
            .collect(),
    };
    cx.reseeded = reseeded_services(&cx, switches);
    let mut seeds = Seeds::new();
    let mut errors = Vec::new();
    for sw in switches {
        if let Some(lost) = &sw.lost {
            out.actions
                .push(super::roles::failover_action(sw, lost, |k| cx.name_of(k)));
        }
    }
    for (r, svc) in &topology.services {
        if let Some(repl) = &svc.replication {
            // A replaced primary that does not answer (now, or since an earlier failover)
            // keeps its data untouched until it does: then it is fenced and rejoins.
            let failing_over = switches
                .iter()
                .any(|sw| &sw.old == r && sw.lost.as_ref().is_some_and(|l| !l.gone));
            let replaced = state
                .resources
                .services
                .get(r)
                .is_some_and(|x| x.failed_over_to.is_some());
            if failing_over || (replaced && observed.lost(r).is_some()) {
                out.warnings.push(format!(
                    "service.{r} was the primary and does not answer: nothing is done to it now. When it answers again, the next apply fences it (read-only) first, then rejoins it to service.{} by GTID if it has no transaction service.{} lacks; otherwise it stays fenced and the plan lists them",
                    repl.from, repl.from
                ));
                continue;
            }
            if let Some(sw) = switches.iter().find(|sw| &sw.old == r && sw.lost.is_none()) {
                // The switchover wires the old primary (from its own position): only the
                // allowlist grant that lets it reach the new primary is planned beside it.
                if let Some(g) =
                    plan_grant(&cx, r, &repl.from, state.resources.services.get(r), out)
                {
                    out.actions.push(g);
                }
                out.actions
                    .push(super::roles::action(sw, topology, observed, |k| {
                        cx.name_of(k)
                    }));
                continue;
            }
            plan_link(&cx, r, repl, &mut seeds, &mut errors, out);
        }
    }
    let promoted: BTreeSet<&str> = switches.iter().map(|s| s.new.as_str()).collect();
    // A failover that catches its candidate up from a sibling grants and revokes its own
    // temporary entry there (one an interrupted apply left is the failover's to revoke).
    let catching_up: BTreeSet<(&str, &str)> = cx
        .catching_up
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    plan_teardown(&cx, &promoted, &catching_up, out);
    plan_roles(&cx, switches, out);
    interrupted_role_changes(&cx, out);
    plan_orphaned_users(&cx, out);
    let backups = plan_backups(&cx, seeds, out);
    if let Err(e) = backups {
        errors.push(e);
    }
    match PlanError::combine(errors) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Which replicas this plan re-seeds: [`plan_link`] on each in the order of the chains
/// (sources first), each told of the re-seeds above it, its actions set aside. A replica whose
/// source is re-seeded cannot count on that source's GTIDs of now, so the re-seed cascades.
fn reseeded_services(cx: &Ctx, switches: &[super::roles::Switch]) -> BTreeSet<String> {
    let depth = |key: &str| {
        let mut d = 0usize;
        let mut at = key;
        while let Some(r) = cx
            .topology
            .services
            .get(at)
            .and_then(|s| s.replication.as_ref())
        {
            d += 1;
            at = &r.from;
            if d > cx.topology.services.len() {
                break;
            }
        }
        d
    };
    let mut order: Vec<(&String, &Replication)> = cx
        .topology
        .services
        .iter()
        .filter(|(k, _)| !switches.iter().any(|sw| &sw.old == *k))
        .filter_map(|(k, s)| s.replication.as_ref().map(|r| (k, r)))
        .collect();
    order.sort_by_key(|(k, _)| depth(k));
    let mut scratch = Ctx {
        topology: cx.topology,
        state: cx.state,
        observed: cx.observed,
        fates: cx.fates,
        replace: cx.replace,
        reseeded: BTreeSet::new(),
        catching_up: cx.catching_up.clone(),
    };
    for (r, repl) in order {
        let mut seeds = Seeds::new();
        plan_link(
            &scratch,
            r,
            repl,
            &mut seeds,
            &mut Vec::new(),
            &mut DiffOutput::default(),
        );
        if seeds.values().flatten().any(|x| x == r) {
            scratch.reseeded.insert(r.clone());
        }
    }
    scratch.reseeded
}

/// Whether `r` can replicate from `src` starting at its own GTID position (see
/// [`gtid::repoint`]): `Err` holds the reason for the plan. A replica the plan creates is
/// empty: its own position is the beginning, so the source must still hold everything.
fn check_own_position(cx: &Ctx, r: &str, src: &str) -> Result<(), String> {
    let (name_r, name_s) = (cx.name_of(r), cx.name_of(src));
    if !cx.observed.refreshed {
        return Err(format!(
            "refresh was skipped, so whether {name_r} can continue from its own position on \
             {name_s} is unknown"
        ));
    }
    let empty = gtid::ObservedGtids {
        binlog_start: Some(Default::default()),
        ..Default::default()
    };
    let replica = if cx.fate(r).is_new() {
        &empty
    } else {
        cx.observed
            .gtids
            .get(r)
            .ok_or_else(|| format!("the GTIDs of {name_r} could not be read"))?
    };
    let source = cx
        .observed
        .gtids
        .get(src)
        .ok_or_else(|| format!("the GTIDs of {name_s} could not be read"))?;
    let upstream = upstream_gtids(cx, src);
    gtid::repoint(replica, source, &upstream).map_err(|u| u.describe(&name_r, &name_s))
}

/// The GTIDs of the services `key` replicates from now (its recorded source, that one's, …):
/// what `key` has not received yet but will. A failover candidate also gets what its
/// catch-up sibling holds, before it opens.
fn upstream_gtids<'a>(cx: &Ctx<'a>, key: &str) -> Vec<&'a gtid::ObservedGtids> {
    let mut seen = BTreeSet::from([key.to_string()]);
    let mut out: Vec<&'a gtid::ObservedGtids> = cx
        .catching_up
        .get(key)
        .and_then(|s| cx.observed.gtids.get(s))
        .into_iter()
        .collect();
    let mut at = key.to_string();
    while let Some(l) = cx.state.resources.replications.get(&at) {
        if !seen.insert(l.source.clone()) {
            break;
        }
        if let Some(g) = cx.observed.gtids.get(&l.source) {
            out.push(g);
        }
        at = l.source.clone();
    }
    out
}

/// Errant transactions on a linked replica: GTIDs its source does not have.
fn errant_drift(cx: &Ctx, r: &str, src: &str) -> Option<Drift> {
    let (rg, sg) = (cx.observed.gtids.get(r)?, cx.observed.gtids.get(src)?);
    let errant = gtid::errant(rg, sg).ok()?;
    if errant.is_empty() {
        return None;
    }
    let list: Vec<String> = errant.iter().map(|g| g.to_string()).collect();
    Some(Drift {
        resource: format!("replication.{r}"),
        kind: DriftKind::ErrantTransactions,
        before: json!({ "errant": [] }),
        after: json!({ "errant": list }),
        detail: format!(
            "{} has transactions {} does not: {} (written on the replica, not replicated); it \
             cannot be re-pointed or promoted safely until a person decides what they are",
            cx.name_of(r),
            cx.name_of(src),
            list.join(", ")
        ),
    })
}

/// A returning replaced primary's transactions that its new source lacks (every one of
/// them, not only whole streams: after a failover both hold the old primary's stream, the old
/// one further along), as drift; `None` when it has none or they cannot be read (then the
/// own-position check says why it cannot rejoin).
fn diverged(cx: &Ctx, r: &str, src: &str) -> Option<Drift> {
    let (rg, sg) = (cx.observed.gtids.get(r)?, cx.observed.gtids.get(src)?);
    let (mine, theirs) = (rg.applied().ok()?, sg.applied().ok()?);
    let extra = gtid::beyond(&mine, &theirs);
    if extra.is_empty() {
        return None;
    }
    let list: Vec<String> = extra.iter().map(|g| g.to_string()).collect();
    let (name_r, name_s) = (cx.name_of(r), cx.name_of(src));
    Some(Drift {
        resource: format!("service.{r}"),
        kind: DriftKind::DivergedPrimary,
        before: json!({ "extra": [] }),
        after: json!({ "extra": list }),
        detail: format!(
            "{name_r}, the primary a failover replaced, has transactions {name_s} lacks: {} \
             (the writes the failover lost). It stays fenced (read-only) and is not re-seeded \
             on its own: take what you need from it, then re-seed it from {name_s} with \
             `skyplan apply --replace service.{r} --allow-data-loss` (wipes it)",
            gtid::describe_ranges(&extra)
        ),
    })
}

/// What one replica's link needs.
fn plan_link(
    cx: &Ctx,
    r: &str,
    repl: &Replication,
    seeds: &mut Seeds,
    errors: &mut Vec<PlanError>,
    out: &mut DiffOutput,
) {
    let res = &cx.state.resources;
    let src = repl.from.as_str();
    let (fate_r, fate_s) = (cx.fate(r), cx.fate(src));
    if either_end_unanswered(cx, r, src) {
        return;
    }
    let rec_r = res.services.get(r);
    let link = res.replications.get(r);
    let repointed = link.is_some_and(|l| l.source != src);

    // Replication health as observed (only when refresh looked and the link is recorded).
    let observed = cx.observed.replication.get(r);
    let (repair, mut reseed) = match (observed, link) {
        (Some(o), Some(l)) if !fate_r.is_new() && !repointed => health(cx, r, repl, o, l, out),
        _ => (None, None),
    };

    if let (Some(l), false, false) = (link, repointed, fate_r.is_new()) {
        out.drift.extend(errant_drift(cx, r, &l.source));
    }

    // A replica moving to another source, or wired with seed = "none", replicates from its
    // own GTID position: no copy, when the new source has its whole history (re-point by
    // GTID). Otherwise it is re-seeded with the reason, or, without a seed, refused.
    let existing_r = !fate_r.is_new() && rec_r.is_some();
    // A primary a failover replaced, answering again: it rejoins from its own position only
    // if it has nothing the new primary lacks. Otherwise it holds the writes the failover
    // lost: it stays fenced (plan_roles) and nothing overwrites them unasked.
    let returning = existing_r && link.is_none() && cx.replaced(r);
    // The old primary of a switchover interrupted after the candidate opened: fenced, it
    // follows the candidate from its own position; it is never re-seeded on its own.
    let resuming = existing_r && link.is_none() && cx.left_behind_by(r) == Some(src);
    let requested = cx.reseed_requested(r) && repl.seed.uses_backup();
    if requested {
        reseed = Some("requested with --replace".into());
    }
    if returning {
        if let Some(d) = diverged(cx, r, src) {
            out.drift.push(d);
            // Its extra writes are discarded only when asked for by name.
            if !requested {
                return;
            }
        }
    }
    let own_position = (!fate_s.is_new()
        && (repointed
            || returning
            || resuming
            || (repl.seed == Seed::None && (link.is_none() || !existing_r))))
        .then(|| own_position_now(cx, r, src));
    let repoint_ok = matches!(own_position, Some(Ok(())));
    if let (true, false, Some(Err(why))) = (resuming, requested, &own_position) {
        out.warnings.push(left_fenced(cx, r, src, why));
        return;
    }
    if let Some(Err(why)) = &own_position {
        if repl.seed.uses_backup() {
            reseed.get_or_insert(format!("it cannot continue from its own position: {why}"));
        } else {
            errors.push(PlanError::OwnPositionUnsafe {
                replica: r.to_string(),
                from: src.to_string(),
                why: why.clone(),
            });
        }
    }

    let seeded_ok = seeded(cx, r);
    let needs_seed = repl.seed.uses_backup()
        && (fate_r.is_new()
            || fate_s.is_new()
            || (repointed && !repoint_ok)
            // Never seeded and not linked (an adopted service): it holds no copy yet. A
            // recorded link (e.g. an old primary following the new one after a switchover)
            // holds the data through replication.
            || (!seeded_ok && !repoint_ok && link.is_none())
            || reseed.is_some());
    let needs_wire = needs_seed
        || fate_s.is_new()
        || fate_r.is_new()
        || link.is_none()
        || repointed
        || link.is_some_and(|l| !l.healthy)
        || repair.is_some();

    let grant = plan_grant(cx, r, src, rec_r, out);

    if needs_seed {
        let seed = (src.to_string(), SeedKey::from(&repl.seed));
        seeds.entry(seed).or_default().push(r.to_string());
        out.actions
            .push(restore(cx, r, src, reseed.clone(), seeded_ok));
    }
    if let Some(g) = grant {
        out.actions.push(g);
    }
    if needs_wire {
        let fresh_unseeded = !repl.seed.uses_backup() && link.is_none();
        let (mode, reason) = wire_mode(
            needs_seed,
            repoint_ok && existing_r,
            fresh_unseeded,
            reseed,
            repair,
        );
        let running = observed.map(|o| o.configured && o.io_running && o.sql_running);
        out.actions
            .push(wire(cx, r, repl, link, mode, needs_seed, running, reason));
    }
    revoke_stale_grants(cx, r, src, out);
}

/// A database that does not answer (its own drift) leaves nothing to plan for the link: no
/// repair could run, and its replication errors are that one cause.
fn either_end_unanswered(cx: &Ctx, r: &str, src: &str) -> bool {
    [r, src]
        .iter()
        .any(|k| cx.observed.unreachable.contains_key(*k) && !cx.fate(k).is_new())
}

/// Whether `r` holds a completed restore of its current service (a seeded replica).
fn seeded(cx: &Ctx, r: &str) -> bool {
    let res = &cx.state.resources;
    match (res.restores.get(r), res.services.get(r)) {
        (Some(rs), Some(rec)) => rs.completed && rs.target_id == rec.id,
        _ => false,
    }
}

/// Whether `r` can continue from its own position on `src` now: never onto a source this
/// plan re-seeds (what it will have after the copy is not known).
fn own_position_now(cx: &Ctx, r: &str, src: &str) -> Result<(), String> {
    if cx.reseeded.contains(src) {
        return Err(format!(
            "{} is re-seeded by this plan, so what it will have after the copy is not known now",
            cx.name_of(src)
        ));
    }
    check_own_position(cx, r, src)
}

/// The warning for an interrupted switchover's old primary that cannot follow yet.
fn left_fenced(cx: &Ctx, r: &str, src: &str, why: &str) -> String {
    format!(
        "{} was the primary until an interrupted switchover to {} and cannot follow it from its \
         own position yet ({why}); it stays fenced and nothing is copied over it unasked: plan \
         again once it can, or re-seed it with `skyplan apply --replace service.{r}` (wipes it)",
        cx.name_of(r),
        cx.name_of(src)
    )
}

/// What refresh saw of a recorded link: the drift, and a restart or re-seed that repairs it.
fn health(
    cx: &Ctx,
    r: &str,
    repl: &Replication,
    o: &crate::observed::ObservedReplication,
    l: &ReplicationRecord,
    out: &mut DiffOutput,
) -> (Option<(WireMode, String)>, Option<String>) {
    let endpoint = cx
        .state
        .resources
        .services
        .get(&repl.from)
        .and_then(|s| s.fqdn.as_deref().zip(s.port));
    let v = classify_replication(r, o, l, endpoint, repl, cx.observed.at);
    out.warnings.extend(v.warning.clone());
    out.drift.extend(v.drift.clone());
    if v.healthy() && !l.healthy {
        // Running fine, but the state does not say so (an apply stopped while waiting, or
        // `--refresh-only` recorded an outage since repaired by hand): verify and record it.
        // Never re-wire a running replica from an old position.
        return (
            Some((
                WireMode::Restart,
                "replication runs but the state does not record it healthy: verify it".into(),
            )),
            None,
        );
    }
    (v.repair, v.reseed)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{guide_state, guide_topology, seen};
    use super::*;
    use crate::plan::action::ActionKind;

    fn links(fates: &BTreeMap<&str, Fate>, observed: &Observed) -> DiffOutput {
        let (t, s) = (guide_topology(), guide_state());
        let mut out = DiffOutput::default();
        plan_links(&t, &s, observed, fates, &[], &[], &mut out).unwrap();
        out
    }

    #[test]
    fn a_recorded_healthy_link_needs_nothing() {
        let out = links(&BTreeMap::new(), &seen(&guide_state()));
        assert!(out.actions.is_empty(), "{:?}", out.actions);
        assert!(out.drift.is_empty(), "{:?}", out.drift);
    }

    #[test]
    fn a_replica_re_created_is_seeded_granted_and_wired_and_its_old_entries_revoked() {
        let fates = BTreeMap::from([("secondary", Fate::Replace)]);
        let out = links(&fates, &seen(&guide_state()));
        let addresses: Vec<String> = out.actions.iter().map(|a| a.kind.address()).collect();
        assert_eq!(
            addresses,
            [
                "restore.secondary",
                "allowlist.primary.secondary",
                "replication.secondary",
                "allowlist.primary.secondary",
                "backup.primary",
            ]
        );
        // A new service is empty: the restore is its seed, not a wipe.
        assert!(out.actions.iter().all(|a| !a.wipes_data));
        assert!(matches!(
            out.actions[3].kind,
            ActionKind::AllowlistRevoke { .. }
        ));
    }

    #[test]
    fn a_stopped_link_is_drift_and_restarted() {
        let s = guide_state();
        let mut o = seen(&s);
        o.replication.insert(
            "secondary".into(),
            crate::observed::ObservedReplication {
                configured: true,
                io_running: true,
                sql_running: false,
                master_host: Some("svc-primary.example.com".into()),
                master_port: Some(3306),
                ..Default::default()
            },
        );
        let out = links(&BTreeMap::new(), &o);
        assert!(!out.drift.is_empty());
        let wires: Vec<&str> = out
            .actions
            .iter()
            .filter(|a| matches!(a.kind, ActionKind::Replicate { .. }))
            .map(|a| a.summary.as_str())
            .collect();
        assert_eq!(wires.len(), 1, "{:?}", out.actions);
        assert!(
            !out.actions.iter().any(|a| a.wipes_data),
            "no copy over a kept link"
        );
    }

    #[test]
    fn seeded_means_a_completed_restore_of_the_current_service() {
        let (t, mut s, o) = (guide_topology(), guide_state(), Observed::offline());
        let fates = BTreeMap::new();
        assert!(seeded(&Ctx::for_test(&t, &s, &o, &fates), "secondary"));
        assert!(!seeded(&Ctx::for_test(&t, &s, &o, &fates), "primary"));
        s.resources.restores.get_mut("secondary").unwrap().target_id = "svc-before".into();
        assert!(!seeded(&Ctx::for_test(&t, &s, &o, &fates), "secondary"));
    }

    #[test]
    fn an_end_whose_database_does_not_answer_leaves_the_link_alone() {
        let (t, s) = (guide_topology(), guide_state());
        let mut o = seen(&s);
        o.unreachable.insert("primary".into(), "refused".into());
        let keep = BTreeMap::new();
        assert!(either_end_unanswered(
            &Ctx::for_test(&t, &s, &o, &keep),
            "secondary",
            "primary"
        ));
        // Unless this plan replaces it: a new service answers.
        let replaced = BTreeMap::from([("primary", Fate::Replace)]);
        assert!(!either_end_unanswered(
            &Ctx::for_test(&t, &s, &o, &replaced),
            "secondary",
            "primary"
        ));
    }

    #[test]
    fn own_position_needs_a_refresh_and_the_gtids_of_both_ends() {
        let (t, s) = (guide_topology(), guide_state());
        let fates = BTreeMap::new();
        let offline = Observed::offline();
        let why = check_own_position(
            &Ctx::for_test(&t, &s, &offline, &fates),
            "secondary",
            "primary",
        )
        .unwrap_err();
        assert!(why.starts_with("refresh was skipped"), "{why}");
        let o = seen(&s);
        let why = check_own_position(&Ctx::for_test(&t, &s, &o, &fates), "secondary", "primary")
            .unwrap_err();
        assert_eq!(why, "the GTIDs of svc-secondary could not be read");
        let mut cx = Ctx::for_test(&t, &s, &o, &fates);
        cx.reseeded.insert("primary".into());
        let why = own_position_now(&cx, "secondary", "primary").unwrap_err();
        assert!(
            why.starts_with("svc-primary is re-seeded by this plan"),
            "{why}"
        );
    }
}
