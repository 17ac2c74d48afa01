//! Replication links: for each replica of the topology, the seeding (backup, restore), the
//! allowlist grant on its source and the wiring it needs, including the repairs of drift that
//! refresh saw; and the teardown of links the topology no longer has.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{cidr32, cidr_key, join, DiffOutput, Fate, Planned};
use crate::gtid;
use crate::observed::{Observed, ObservedService};
use crate::plan::action::{ActionKind, Change, WireMode, KNOWN_AFTER_APPLY};
use crate::plan::drift::{classify_replication, Drift, DriftKind};
use crate::plan::seed::{self, SeedError, DEFAULT_BINLOG_RETENTION};
use crate::plan::PlanError;
use crate::state::{ReplicationRecord, RoleChangeStep, ServiceRecord, State};
use crate::topology::{Replication, Seed, Topology};

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

/// How a link is wired: fresh after a seed (or with no seed and no link), by GTID from the
/// replica's own position (a re-point), or as the observed drift asks (a restart).
fn wire_mode(
    seeded: bool,
    repoint: bool,
    fresh_unseeded: bool,
    reseed: Option<String>,
    repair: Option<(WireMode, String)>,
) -> (WireMode, Option<String>) {
    if seeded {
        (WireMode::Fresh, reseed)
    } else if repoint {
        (WireMode::Repoint, None)
    } else if fresh_unseeded {
        (WireMode::Fresh, reseed)
    } else if let Some((mode, why)) = repair {
        (mode, Some(why))
    } else {
        (WireMode::Fresh, None)
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

/// The restore that seeds `r` from `src`'s backup: a seed for a service this plan creates (it
/// is empty), a wipe, with its reason, over one that holds data.
fn restore(cx: &Ctx, r: &str, src: &str, reseed: Option<String>, seeded_ok: bool) -> Planned {
    let (fate_r, fate_s) = (cx.fate(r), cx.fate(src));
    // A replica that holds replicated data and is about to be overwritten from a source
    // that is new (hence empty) deserves a reason a reviewer cannot miss.
    let reason = reseed.or_else(|| {
        (seeded_ok && !fate_r.is_new() && fate_s.is_new()).then(|| {
            format!(
                "{} is {}: this replaces all data on {} with a copy of the new, empty {}",
                cx.name_of(src),
                if cx.deleted_outside(src) {
                    "re-created after it was deleted outside skyplan"
                } else {
                    "replaced"
                },
                cx.name_of(r),
                cx.name_of(src)
            )
        })
    });
    // A service this plan creates (or re-creates) is empty: the restore is its seed, not
    // a wipe. Over a service that holds data it is one, always with its reason.
    let (wipes, summary, reason) = if fate_r.is_new() {
        (
            false,
            format!(
                "seed     {} from backup.{src}   (a new service: nothing to overwrite)",
                cx.name_of(r)
            ),
            reason,
        )
    } else {
        let why = reason.unwrap_or_else(|| {
            format!(
                "{} holds data that skyplan never seeded from {} and has no link to keep: it is replaced by a copy of {}",
                cx.name_of(r),
                cx.name_of(src),
                cx.name_of(src)
            )
        });
        (
            true,
            format!(
                "restore  backup.{src} -> {}   (wipes all data on {})",
                cx.name_of(r),
                cx.name_of(r)
            ),
            Some(why),
        )
    };
    Planned {
        kind: ActionKind::Restore {
            source: src.to_string(),
            replica: r.to_string(),
        },
        change: Change::Create,
        summary,
        before: None,
        after: Some(json!({ "backup_of": cx.name_of(src), "target": cx.name_of(r) })),
        wipes_data: wipes,
        reason,
    }
}

/// Entries skyplan added for this replica that are no longer right go: on a previous source
/// (re-pointed link), or for the outbound IPs of a replica that is re-created.
fn revoke_stale_grants(cx: &Ctx, r: &str, src: &str, out: &mut DiffOutput) {
    let (fate_r, fate_s) = (cx.fate(r), cx.fate(src));
    if let Some(g) = cx.state.resources.allowlists.get(r) {
        if g.on != src {
            push_revoke(cx, &g.on, r, &g.entries, None, out);
        } else if fate_r.is_new() && !fate_s.is_new() {
            let why = format!(
                "{} is new: these admitted the outbound IPs of the old one",
                cx.name_of(r)
            );
            push_revoke(cx, src, r, &g.entries, Some(why), out);
        }
    }
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

/// The grant action the link needs, if any, and the drift of the entries skyplan owns.
fn plan_grant(
    cx: &Ctx,
    r: &str,
    src: &str,
    rec_r: Option<&ServiceRecord>,
    out: &mut DiffOutput,
) -> Option<Planned> {
    let (fate_r, fate_s) = (cx.fate(r), cx.fate(src));
    let grant = cx.state.resources.allowlists.get(r);
    let granted_here = grant.filter(|g| g.on == src);
    let mut reason = None;
    if let (Some(g), Some(entries)) = (granted_here, cx.observed.allowlists.get(src)) {
        let present: BTreeSet<String> = entries.iter().map(|e| cidr_key(e)).collect();
        let (kept, missing): (Vec<&String>, Vec<&String>) = g
            .entries
            .iter()
            .partition(|e| present.contains(&cidr_key(e)));
        if !missing.is_empty() && !fate_s.is_new() {
            out.drift.push(Drift {
                resource: format!("allowlist.{src}.{r}"),
                kind: DriftKind::AllowlistEntryRemoved,
                before: json!(g.entries),
                after: json!(kept),
                detail: format!(
                    "{} for {} removed from {}'s allowlist",
                    join(missing.iter().map(|s| s.as_str())),
                    cx.name_of(r),
                    cx.name_of(src)
                ),
            });
            reason = Some("allowlist entry removed outside skyplan".to_string());
        }
    }
    // The replica's outbound IPs as refresh saw them, else as recorded.
    let outbound: Vec<String> = match cx.observed.services.get(r) {
        Some(ObservedService::Present(s)) if !s.outbound_ips.is_empty() => s.outbound_ips.clone(),
        _ => rec_r.map(|x| x.outbound_ips.clone()).unwrap_or_default(),
    };
    let outbound_known = !fate_r.is_new() && !outbound.is_empty();
    let uncovered = outbound_known
        && granted_here.is_some_and(|g| {
            let have: BTreeSet<String> = g.entries.iter().map(|e| cidr_key(e)).collect();
            outbound.iter().any(|ip| !have.contains(&cidr_key(ip)))
        });
    if uncovered && reason.is_none() {
        reason = Some(format!("{}'s outbound IPs changed", cx.name_of(r)));
    }
    let needed = granted_here.is_none() || fate_r.is_new() || fate_s.is_new() || reason.is_some();
    if !needed {
        return None;
    }
    let (entries, shown) = if outbound_known {
        (
            json!(outbound.iter().map(|ip| cidr32(ip)).collect::<Vec<_>>()),
            outbound.join(", "),
        )
    } else {
        (json!(KNOWN_AFTER_APPLY), KNOWN_AFTER_APPLY.to_string())
    };
    Some(Planned {
        kind: ActionKind::AllowlistGrant {
            source: src.to_string(),
            replica: r.to_string(),
        },
        change: Change::Create,
        summary: format!(
            "grant    {} outbound IP {shown} on {}",
            cx.name_of(r),
            cx.name_of(src)
        ),
        before: grant.map(|g| json!({ "on": cx.name_of(&g.on), "entries": g.entries })),
        after: Some(json!({ "on": cx.name_of(src), "entries": entries })),
        wipes_data: false,
        reason,
    })
}

/// The replicate action: fresh from the seeding backup's position, a restart of a stopped
/// channel, or a re-wire of a reset one from the replica's own position.
#[allow(clippy::too_many_arguments)]
fn wire(
    cx: &Ctx,
    r: &str,
    repl: &Replication,
    link: Option<&ReplicationRecord>,
    mode: WireMode,
    seeded: bool,
    running: Option<bool>,
    reason: Option<String>,
) -> Planned {
    let src = repl.from.as_str();
    let res = &cx.state.resources;
    let old_gtid = link.map(|l| json!(l.gtid_position));
    let gtid = match (mode, seeded) {
        (WireMode::Fresh, true) => match &repl.seed {
            Seed::Backup(_) | Seed::NewBackup | Seed::LatestBackup => {
                json!(format!("the backup's GTID {KNOWN_AFTER_APPLY}"))
            }
            Seed::None => json!("the source's current GTID"),
        },
        (WireMode::Fresh, false) => json!(link
            .and_then(|l| l.gtid_position.clone())
            .unwrap_or_else(|| KNOWN_AFTER_APPLY.to_string())),
        // Continues where it stopped: the position does not change.
        (WireMode::Restart, _) => old_gtid.clone().unwrap_or(Value::Null),
        (WireMode::Rewire | WireMode::Repoint, _) => json!("the replica's own GTID position"),
    };
    let host = if cx.fate(src).is_new() {
        json!(KNOWN_AFTER_APPLY)
    } else {
        res.services
            .get(src)
            .and_then(|s| s.fqdn.clone().zip(s.port))
            .map(|(h, p)| json!(format!("{h}:{p}")))
            .unwrap_or(json!(KNOWN_AFTER_APPLY))
    };
    let (verb, at) = match mode {
        WireMode::Fresh => (
            "wire    ",
            format!(
                "at {}",
                crate::gtid::shown(gtid.as_str().unwrap_or_default())
            ),
        ),
        WireMode::Restart => ("restart ", "from where it stopped".to_string()),
        WireMode::Rewire => (
            "rewire  ",
            format!(
                "at {}",
                crate::gtid::shown(gtid.as_str().unwrap_or_default())
            ),
        ),
        WireMode::Repoint => {
            let now = cx
                .observed
                .gtids
                .get(r)
                .map(|g| g.current_pos.as_str())
                .filter(|g| !g.is_empty());
            let at = format!(
                "from its own position{}, no data copied",
                now.map(|g| format!(" ({g} when planned)"))
                    .unwrap_or_default()
            );
            match link.filter(|l| l.source != src) {
                // The issue's own words: `re-point  sec2: e-primary -> e-sec1 from …`.
                Some(l) => {
                    return repoint_action(cx, r, repl, l, gtid, host, running, reason, &at);
                }
                None => ("wire    ", at),
            }
        }
    };
    Planned {
        kind: ActionKind::Replicate {
            source: src.to_string(),
            replica: r.to_string(),
            ssl: repl.ssl,
            mode,
        },
        change: if mode == WireMode::Fresh && link.is_none() {
            Change::Create
        } else {
            Change::Update
        },
        summary: format!(
            "{verb} {} -> {} {at}{}",
            cx.name_of(src),
            cx.name_of(r),
            if repl.ssl { ", ssl" } else { "" }
        ),
        before: link.map(|l| {
            json!({
                "source": cx.name_of(&l.source),
                "host": format!("{}:{}", l.source_host, l.source_port),
                "gtid": l.gtid_position,
                "ssl": l.ssl,
                // As refresh saw it; without a look, as the state last recorded it.
                "running": running.unwrap_or(l.healthy),
            })
        }),
        after: Some({
            let mut after =
                json!({ "source": cx.name_of(src), "host": host, "gtid": gtid, "ssl": repl.ssl });
            if link.is_some() {
                after["running"] = json!(true);
            }
            after
        }),
        wipes_data: false,
        reason,
    }
}

/// A replica moving from the recorded source to another that shares its history.
#[allow(clippy::too_many_arguments)]
fn repoint_action(
    cx: &Ctx,
    r: &str,
    repl: &Replication,
    link: &ReplicationRecord,
    gtid: Value,
    host: Value,
    running: Option<bool>,
    reason: Option<String>,
    at: &str,
) -> Planned {
    let src = repl.from.as_str();
    Planned {
        kind: ActionKind::Replicate {
            source: src.to_string(),
            replica: r.to_string(),
            ssl: repl.ssl,
            mode: WireMode::Repoint,
        },
        change: Change::Update,
        summary: format!(
            "re-point {}: {} -> {} {at}{}",
            cx.name_of(r),
            cx.name_of(&link.source),
            cx.name_of(src),
            if repl.ssl { ", ssl" } else { "" }
        ),
        before: Some(json!({
            "source": cx.name_of(&link.source),
            "host": format!("{}:{}", link.source_host, link.source_port),
            "gtid": link.gtid_position,
            "ssl": link.ssl,
            "running": running.unwrap_or(link.healthy),
        })),
        after: Some(json!({
            "source": cx.name_of(src),
            "host": host,
            "gtid": gtid,
            "ssl": repl.ssl,
            "running": true,
        })),
        wipes_data: false,
        reason,
    }
}

/// Roles as the topology says: a replica read-only for clients, a primary writable. Services
/// a switchover or a wiring in this plan already sets are left to it.
fn plan_roles(cx: &Ctx, switches: &[super::roles::Switch], out: &mut DiffOutput) {
    let wired: BTreeSet<String> = out
        .actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Replicate { replica, .. } => Some(replica.clone()),
            // Both change roles in that action (the new one is added below).
            ActionKind::Switchover { old, .. } => Some(old.clone()),
            _ => None,
        })
        .chain(switches.iter().map(|s| s.new.clone()))
        .collect();
    for (key, svc) in &cx.topology.services {
        let Some(&read_only) = cx.observed.read_only.get(key) else {
            continue;
        };
        // A replaced primary is fenced before anything else touches it, wired or not.
        if (wired.contains(key) && !cx.replaced(key) && cx.left_behind_by(key).is_none())
            || cx.fate(key).is_new()
            || cx.deleted_outside(key)
        {
            continue;
        }
        let writable = svc.replication.is_none();
        if writable != read_only {
            continue;
        }
        let name = cx.name_of(key);
        let detail = if writable {
            format!("{name} is the primary but refuses client writes (read_only is ON): a fence left behind?")
        } else {
            format!("{name} is a replica but clients can write to it (read_only is OFF)")
        };
        out.drift.push(Drift {
            resource: format!("role.{key}"),
            kind: DriftKind::RoleMismatch,
            before: json!({ "read_only": !writable }),
            after: json!({ "read_only": read_only }),
            detail,
        });
        out.actions.push(Planned {
            kind: ActionKind::SetRole {
                key: key.clone(),
                writable,
            },
            change: Change::Update,
            summary: if writable {
                format!("open     {name} for writes (read_only OFF): it is the primary")
            } else {
                format!("fence    {name} for clients (read_only ON): it is a replica")
            },
            before: Some(json!({ "read_only": read_only })),
            after: Some(json!({ "read_only": !writable })),
            wipes_data: false,
            reason: Some(if writable {
                "the topology makes it the primary".into()
            } else if cx.replaced(key) {
                "it was the primary until a failover: fenced first, so it is never a second writer"
                    .into()
            } else if cx.left_behind_by(key).is_some() {
                "it was the primary until an interrupted switchover: fenced first, so it is never a second writer"
                    .into()
            } else {
                "the topology makes it a replica".into()
            }),
        });
    }
}

/// Switchovers an apply started and did not finish: drift (a drift job exits 2), naming "no
/// writable primary" when neither side is open. The switchover or re-point that resumes them
/// is planned as usual (the state still records where each side stands).
fn interrupted_role_changes(cx: &Ctx, out: &mut DiffOutput) {
    for (key, rec) in &cx.state.resources.services {
        let Some(c) = &rec.role_change else { continue };
        let (old, new) = (cx.name_of(&c.from), cx.name_of(key));
        let ro = |k: &str| cx.observed.read_only.get(k).copied();
        let nobody = ro(&c.from) == Some(true) && ro(key) == Some(true);
        let detail = match c.step {
            RoleChangeStep::Fencing => format!(
                "the switchover of the primary {old} -> {new} started at {} was interrupted before {new} was opened{}; apply resumes it by GTID (no data copied)",
                c.started_at,
                if nobody { ": no writable primary" } else { "" }
            ),
            RoleChangeStep::Opened => format!(
                "the switchover of the primary {old} -> {new} started at {} was interrupted after {new} was opened, before {old} followed it{}; apply re-points {old} by GTID (no data copied)",
                c.started_at,
                if nobody { ": no writable primary" } else { "" }
            ),
        };
        out.drift.push(Drift {
            resource: format!("switchover.{key}"),
            kind: DriftKind::RoleChangeInterrupted,
            before: json!({ "primary": old }),
            after: json!({ "primary": new, "step": c.step, "writable_primary": !nobody }),
            detail,
        });
    }
}

/// Replication users on a chain's root that no recorded link owns: credentials that can read
/// the whole binlog, bound to an IP the cloud may give to someone else. Reported, and dropped
/// on the root (the drop replicates to its replicas). A link being torn down in this plan
/// still owns its user: its stop step drops it.
fn plan_orphaned_users(cx: &Ctx, out: &mut DiffOutput) {
    let owned: BTreeSet<&str> = cx
        .state
        .resources
        .replications
        .values()
        .filter_map(|l| l.replication_user.as_deref())
        .collect();
    let recorded = &cx.state.resources.replication_users;
    for (on, users) in &cx.observed.replication_users {
        if cx.fate(on).is_new() || cx.deleted_outside(on) || !cx.topology.services.contains_key(on)
        {
            continue;
        }
        for user in users.iter().filter(|u| !owned.contains(u.as_str())) {
            if recorded.contains_key(user) {
                // Ours, its link gone (the replica was deleted outside skyplan, or a run
                // stopped before dropping it): a planned cleanup, not drift.
                out.actions
                    .push(drop_user(cx, on, user, "its replication link is gone"));
                continue;
            }
            out.drift.push(Drift {
                resource: format!("replication_user.{on}"),
                kind: DriftKind::ReplicationUserOrphaned,
                before: Value::Null,
                after: json!({ "user": user }),
                detail: format!(
                    "{user} on {} is a replication user no link owns",
                    cx.name_of(on)
                ),
            });
            out.actions
                .push(drop_user(cx, on, user, "no replication link owns it"));
        }
    }
}

fn drop_user(cx: &Ctx, on: &str, user: &str, why: &str) -> Planned {
    Planned {
        kind: ActionKind::DropReplicationUser {
            on: on.to_string(),
            user: user.to_string(),
        },
        change: Change::Delete,
        summary: format!("drop     replication user {user} on {}", cx.name_of(on)),
        before: Some(json!({ "user": user })),
        after: None,
        wipes_data: false,
        reason: Some(why.to_string()),
    }
}

/// Links in state that the topology no longer has: stop the replica, revoke its entries
/// (also the entries of a replica the state no longer links, e.g. after `--refresh-only`
/// recorded that it was deleted).
/// `promoted`: new primaries of switchovers, whose replication the switchover itself stops.
/// `catching_up`: (candidate, sibling) of failovers that catch up through a temporary link.
fn plan_teardown(
    cx: &Ctx,
    promoted: &BTreeSet<&str>,
    catching_up: &BTreeSet<(&str, &str)>,
    out: &mut DiffOutput,
) {
    let res = &cx.state.resources;
    let unlinked = |r: &String| {
        cx.topology
            .services
            .get(r)
            .and_then(|s| s.replication.as_ref())
            .is_none()
    };
    for (r, link) in res.replications.iter().filter(|(r, _)| unlinked(r)) {
        let replica_gone = cx.deleted_outside(r) || !res.services.contains_key(r);
        if !replica_gone && !promoted.contains(r.as_str()) {
            out.actions.push(Planned {
                kind: ActionKind::StopReplication {
                    source: link.source.clone(),
                    replica: r.clone(),
                },
                change: Change::Delete,
                summary: format!(
                    "stop     {} -> {} (stop and reset replication{})",
                    cx.name_of(&link.source),
                    cx.name_of(r),
                    // The step drops the link's replication user too (on its chain's root).
                    link.replication_user
                        .as_deref()
                        .map(|u| format!("; DROP USER {u}"))
                        .unwrap_or_default()
                ),
                before: Some(
                    json!({ "source": cx.name_of(&link.source), "healthy": link.healthy }),
                ),
                after: None,
                wipes_data: false,
                reason: None,
            });
        }
    }
    for (r, g) in res.allowlists.iter().filter(|(r, _)| unlinked(r)) {
        push_revoke(cx, &g.on, r, &g.entries, None, out);
    }
    // Entries granted for a replica on a source it no longer replicates from, which did not
    // answer when the replica was re-pointed (a failover): revoked once that source answers
    // (`push_revoke` plans nothing while it is lost), unless the replica replicates from it
    // again, whose grant then owns them.
    for (r, a) in &res.allowlists {
        let from = cx
            .topology
            .services
            .get(r)
            .and_then(|s| s.replication.as_ref())
            .map(|x| x.from.as_str());
        for g in a
            .earlier
            .iter()
            .filter(|g| Some(g.on.as_str()) != from)
            .filter(|g| !catching_up.contains(&(r.as_str(), g.on.as_str())))
        {
            let why = format!(
                "granted for {} when it replicated from {}, which did not answer when it was re-pointed",
                cx.name_of(r),
                cx.name_of(&g.on)
            );
            push_revoke(cx, &g.on, r, &g.entries, Some(why), out);
        }
    }
}

/// One backup action per (source, seed), shared by the replicas it seeds. An existing backup
/// (`latest-backup`, `backup:<id>`) is chosen here when refresh listed the source's backups,
/// so a missing or unusable one stops the plan before anything is created.
fn plan_backups(cx: &Ctx, seeds: Seeds, out: &mut DiffOutput) -> Result<(), PlanError> {
    let mut errors = Vec::new();
    for ((source, seed), replicas) in seeds {
        let seed = seed.0;
        let existing = matches!(seed, Seed::LatestBackup | Seed::Backup(_));
        let chosen = match cx.observed.at {
            Some(now) if existing && cx.observed.refreshed => {
                match choose_existing(cx, &source, &seed, now, out) {
                    Ok(b) => b,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
            _ => None,
        };
        let what = match (&seed, chosen) {
            (Seed::NewBackup | Seed::None, _) => format!("full, once, of {}", cx.name_of(&source)),
            (_, Some(b)) => format!(
                "existing backup {} of {}, taken {}, at GTID {}",
                b.id,
                if cx.observed.foreign_backups.contains_key(&b.id) {
                    format!("{} (foreign to {})", b.service_name, cx.name_of(&source))
                } else {
                    cx.name_of(&source)
                },
                b.end_time.as_deref().unwrap_or("(time unknown)"),
                b.binlog_gtid_position
                    .as_deref()
                    .map_or("(unknown)", crate::gtid::shown)
            ),
            (Seed::LatestBackup, None) => format!(
                "latest succeeded full backup of {} (known after apply)",
                cx.name_of(&source)
            ),
            (Seed::Backup(id), None) => format!("existing backup {id} of {}", cx.name_of(&source)),
        };
        // The restores and wirings of these replicas name the backup the plan chose.
        let id = match (&seed, chosen) {
            (_, Some(b)) => Some(b.id.clone()),
            (Seed::Backup(id), None) => Some(id.clone()),
            _ => None,
        };
        let gtid = chosen.and_then(|b| b.binlog_gtid_position.clone());
        name_the_backup(out, &source, &replicas, id.as_deref(), gtid.as_deref());
        out.actions.push(Planned {
            kind: ActionKind::Backup {
                source: source.clone(),
                seed: seed.clone(),
                replicas,
            },
            // An existing backup is used as it is: nothing is added.
            change: if existing {
                Change::Read
            } else {
                Change::Create
            },
            summary: format!("backup   {what}"),
            before: None,
            after: Some(json!({
                "source": cx.name_of(&source),
                "seed": seed.to_string(),
                "backup_id": match (&seed, chosen) {
                    (_, Some(b)) => json!(b.id),
                    (Seed::Backup(id), None) => json!(id),
                    _ => json!(KNOWN_AFTER_APPLY),
                },
                "gtid_position": chosen
                    .and_then(|b| b.binlog_gtid_position.clone())
                    .map_or(json!(KNOWN_AFTER_APPLY), |g| json!(g)),
            })),
            wipes_data: false,
            reason: matches!(seed, Seed::NewBackup | Seed::None)
                .then(|| previous_backup(cx, &source))
                .flatten(),
        });
    }
    match PlanError::combine(errors) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The existing backup a seed names (or the latest), checked by the seed rule; warnings
/// (another service's backup) go to the plan.
fn choose_existing<'a>(
    cx: &Ctx<'a>,
    source: &str,
    seed: &Seed,
    now: time::OffsetDateTime,
    out: &mut DiffOutput,
) -> Result<Option<&'a skyplan_api::types::Backup>, PlanError> {
    if cx.fate(source).is_new() {
        return Err(PlanError::from(SeedError::NewSource {
            service: source.to_string(),
            seed: seed.to_string(),
        }));
    }
    let listed = cx.observed.backups.get(source).map(Vec::as_slice);
    let foreign = match seed {
        Seed::Backup(id) => cx.observed.foreign_backups.get(id),
        _ => None,
    };
    let provider = cx
        .topology
        .services
        .get(source)
        .map_or("", |s| s.spec.provider.as_str());
    let src = seed::Source {
        key: source,
        provider,
    };
    // Whether the source still serves the backup is read from its binlogs; only
    // where they were not read (a source skyplan does not manage yet) the age.
    let holdings = cx
        .observed
        .gtids
        .get(source)
        .and_then(|g| g.holdings().ok());
    let chosen = seed::choose(
        src,
        seed,
        listed.unwrap_or(&[]),
        foreign,
        now,
        DEFAULT_BINLOG_RETENTION,
        holdings.as_ref(),
    )
    .and_then(|c| match c {
        Some(c) if c.foreign && cx.observed.foreign_owners_gone.contains(&c.backup.id) => {
            Err(SeedError::OwnerGone {
                id: c.backup.id.clone(),
                owner: if c.backup.service_name.is_empty() {
                    c.backup.service_id.clone()
                } else {
                    c.backup.service_name.clone()
                },
            })
        }
        c => Ok(c),
    });
    match chosen {
        Ok(c) => {
            if let Some(w) = c.and_then(|c| c.warning(source)) {
                out.warnings.push(w);
            }
            Ok(c.map(|c| c.backup))
        }
        Err(e) => Err(e.into()),
    }
}

/// Put the chosen backup's id into the restore lines of `replicas` (`backup.SOURCE` ->
/// `backup.SOURCE (ID)`), and its GTID into their wiring where the plan already printed it.
fn name_the_backup(
    out: &mut DiffOutput,
    source: &str,
    replicas: &[String],
    id: Option<&str>,
    gtid: Option<&str>,
) {
    for a in out.actions.iter_mut() {
        match &a.kind {
            ActionKind::Restore { replica, .. } if replicas.contains(replica) => {
                if let Some(id) = id {
                    a.summary = a.summary.replacen(
                        &format!("backup.{source}"),
                        &format!("backup.{source} ({id})"),
                        1,
                    );
                    if let Some(Value::Object(m)) = &mut a.after {
                        m.insert("backup_id".into(), json!(id));
                    }
                }
            }
            ActionKind::Replicate {
                replica,
                mode: WireMode::Fresh,
                ..
            } if replicas.contains(replica) => {
                if let Some(g) = gtid {
                    let shown = crate::gtid::shown(g);
                    a.summary = a.summary.replace(
                        &format!("the backup's GTID {KNOWN_AFTER_APPLY}"),
                        &format!("the backup's GTID {shown}"),
                    );
                    if let Some(Value::Object(m)) = &mut a.after {
                        if m.get("gtid").and_then(Value::as_str).is_some_and(|v| {
                            v.ends_with(KNOWN_AFTER_APPLY) && v.starts_with("the backup's")
                        }) {
                            m.insert("gtid".into(), json!(g));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// What a previous run left of a new backup of `source` for these replicas, said in the plan:
/// the backup step resumes one still running (or uses it if it succeeded) and takes a new one
/// if it failed, so the plan names both cases rather than let apply discover them.
fn previous_backup(cx: &Ctx, source: &str) -> Option<String> {
    let records = cx
        .state
        .resources
        .backups
        .values()
        .filter(|b| b.source == source);
    let mut failed = None;
    for b in records {
        if b.in_flight.is_some() {
            return Some(format!(
                "a previous run scheduled a backup of {} and stopped: it is used if it succeeded, waited for if it still runs, and a new one is taken if it failed",
                cx.name_of(source)
            ));
        }
        if b.status == Some(skyplan_api::types::BackupStatus::Failed) {
            failed = b.backup_id.clone();
        }
    }
    failed.map(|id| {
        format!(
            "retry: the previous backup {id} of {} failed",
            cx.name_of(source)
        )
    })
}

fn push_revoke(
    cx: &Ctx,
    on: &str,
    replica: &str,
    entries: &[String],
    reason: Option<String>,
    out: &mut DiffOutput,
) {
    // Nothing to revoke on a source that is going away or being replaced.
    let source_gone = !cx.topology.services.contains_key(on)
        || cx.fate(on).is_new()
        || !cx.state.resources.services.contains_key(on)
        || cx.api_lost(on);
    if source_gone {
        return;
    }
    out.actions.push(Planned {
        kind: ActionKind::AllowlistRevoke {
            source: on.to_string(),
            replica: replica.to_string(),
            entries: entries.to_vec(),
        },
        change: Change::Delete,
        summary: format!(
            "revoke   {} on {}'s allowlist",
            entries.join(", "),
            cx.name_of(on)
        ),
        before: Some(json!({ "on": cx.name_of(on), "entries": entries })),
        after: None,
        wipes_data: false,
        reason,
    });
}

/// Seeds ordered for grouping (Seed itself has no Ord).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeedKey(Seed);

impl From<&Seed> for SeedKey {
    fn from(s: &Seed) -> Self {
        SeedKey(s.clone())
    }
}
impl PartialOrd for SeedKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SeedKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.to_string().cmp(&other.0.to_string())
    }
}
