//! The plan: topology + state + observed → a `Plan`, plain data from a pure function.
//!
//! `diff` decides what to do, `graph` orders it, `render` shows it, `planfile` saves it.

pub mod action;
pub mod diff;
pub mod dot;
pub mod drift;
pub mod estimate;
mod flags;
pub use flags::record_replaces;
pub mod graph;
pub(crate) mod last_copy;
pub mod markdown;
pub mod mermaid;
pub mod planfile;
pub mod render;
pub mod seed;
pub mod start;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use action::{Action, ActionId, ActionKind, Change, WireMode, KNOWN_AFTER_APPLY};
pub use drift::{Drift, DriftKind};

use crate::observed::Observed;
use crate::state::State;
use crate::topology::Topology;

/// Version of the JSON plan format (`--json`, saved plan files).
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What a failover's candidate lacks that a sibling holds, and why it cannot catch up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    /// The ranges, described.
    pub more: String,
    pub why: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("service.{key}: storage can only grow ({from} GB -> {to} GB); keep {from} or more, or replace the service under a new name")]
    StorageShrink { key: String, from: u32, to: u32 },
    #[error("service.{key} ({name}) has deletion_protection = true; this plan would delete it. Set deletion_protection = false in the topology to allow it")]
    DeletionProtected { key: String, name: String },
    #[error("the actions depend on each other in a cycle: {0}")]
    Cycle(String),
    #[error("service.{key}: a service named {name} already exists ({id}) with {}; skyplan will not adopt a service that differs from the topology in what cannot change in place. Make the topology match the real service ({}), or give service.{key} another name", .conflicts.iter().map(|c| format!("{} {} (topology: {})", c.field, c.real, c.file)).collect::<Vec<_>>().join(", "), .conflicts.iter().map(|c| format!("{} = {}", c.field, c.real_toml)).collect::<Vec<_>>().join(", "))]
    AdoptionConflict {
        key: String,
        name: String,
        id: String,
        conflicts: Vec<diff::Conflict>,
    },
    #[error("service.{key}: {count} services are named {name} ({}); skyplan cannot tell which one the topology means. Pin one with `skyplan import service.{key} ID`", .ids.join(", "))]
    AmbiguousName {
        key: String,
        name: String,
        count: usize,
        ids: Vec<String>,
    },
    #[error("service.{key}: the existing service {name} ({id}) is managed by another skyplan workspace (state lineage {lineage}, as service.{owner_key}); it is not adopted. If this topology file was renamed or copied, use the state that owns it instead of a new one: its old path (state/<old file stem>.state.json beside the old file), or move it with `skyplan state migrate`/`state push`")]
    OwnedElsewhere {
        key: String,
        name: String,
        id: String,
        lineage: String,
        owner_key: String,
    },
    #[error("service.{key}: the existing service {name} ({id}) is {status}; it cannot be adopted. Delete it or give service.{key} another name")]
    NotAdoptable {
        key: String,
        name: String,
        id: String,
        status: String,
    },

    /// Boxed: the seed errors carry several names, and every `Result<Plan, PlanError>` pays
    /// for the largest variant.
    #[error(transparent)]
    Seed(Box<seed::SeedError>),
    #[error("service.{old}, the primary, is lost ({why}): making service.{new} the primary is a failover, which loses what service.{new} has not received. Estimate: {estimate}. To promote service.{new} anyway, run again with --allow-data-loss")]
    Failover {
        old: String,
        new: String,
        why: String,
        estimate: String,
    },
    #[error("failover of service.{old} to service.{new} refused, nothing was changed: service.{sibling}, another replica of service.{old}, holds {} that service.{new} has not received, and a failover loses only what no survivor received; skyplan cannot catch service.{new} up from it first: {}. Make service.{sibling} the primary in the file instead (it holds the most)", .behind.more, .behind.why)]
    FailoverBehindSibling {
        old: String,
        new: String,
        sibling: String,
        behind: Box<Behind>,
    },
    #[error("service.{old} does not answer skyplan ({why}), but service.{new} still receives from it: it is alive, and skyplan cannot fence what it cannot reach, so a failover now would make two writers. Restore skyplan's access to service.{old} and switch over instead. (If its region is really down, service.{new} notices within its slave_net_timeout: plan again in a minute.)")]
    FailoverOfALivePrimary {
        old: String,
        new: String,
        why: String,
    },
    #[error("service.{old} is lost and the topology makes {news} the primary: one lost primary has one successor (two would be two writers); keep one, and let the others replicate from it")]
    TwoSuccessors { old: String, news: String },
    #[error("service.{key} was the primary until a failover to service.{by} and has not rejoined it: making it the primary again would strand the writes one of them has and the other lacks. Let it follow service.{by} first ([services.{key}.replication] from = \"{by}\"), then switch back")]
    ReplacedPrimaryPromoted { key: String, by: String },
    #[error("service.{key} is stopped and the topology keeps it stopped (is_active = false), but its {fields} would change: SkySQL changes that only on a running service. Set is_active = true for this apply (it is started, changed, and can be stopped again after), or keep {fields} as they are")]
    StoppedChange { key: String, fields: String },
    #[error("service.{key} does not answer ({why}); nothing was planned or changed. If its region is lost: remove it from the topology (it is deleted once it answers again), or, if it is the primary, make one of its replicas the primary: that is a failover (see the README's disaster recovery section)")]
    Unreachable { key: String, why: String },
    #[error("{flag} {address}: {why}")]
    BadAddress {
        flag: &'static str,
        address: String,
        why: String,
    },
    #[error("switchover of service.{old} to service.{new}: the old primary must replicate from the new one (it says from = \"{from}\"); set [services.{old}.replication] from = \"{new}\"")]
    SwitchoverShape {
        old: String,
        new: String,
        from: String,
    },
    #[error("service.{new} replicates from service.{root} through service.{via}, and the topology makes it the primary and service.{root} a replica: a switchover is to a direct replica of the primary (it is fenced, caught up and opened in one step; the middle would lie between). Re-point it first ([services.{new}.replication] from = \"{root}\"), apply, then switch over; nothing was changed")]
    ChainedCandidate {
        new: String,
        via: String,
        root: String,
    },
    #[error("a switchover needs to set read_only on service.{key} (fence or open it), and skyplan's account there has neither READ_ONLY ADMIN nor SUPER; grant it, or switch over by hand")]
    CannotFence { key: String },
    #[error("service.{new} cannot be made the primary now: {why}. Repair its replication first (skyplan plan shows how), then switch over")]
    CandidateUnhealthy { new: String, why: String },
    #[error("switchover of service.{old} to service.{new} refused, nothing was changed: once service.{new} has caught up, service.{follower} could not follow it from its own position ({why}), so the switchover could not finish without a copy. Re-seed service.{follower} first (`skyplan apply --replace service.{follower}`), or choose another candidate")]
    SwitchoverNeedsCopy {
        old: String,
        new: String,
        follower: String,
        why: String,
    },
    #[error("service.{replica} has seed = \"none\", so it can only replicate from its own position, and that is not safe from service.{from}: {why}. Use seed = \"new-backup\" to re-seed it (wipes it), or fix the cause")]
    OwnPositionUnsafe {
        replica: String,
        from: String,
        why: String,
    },
    #[error("service.{key} pins id = \"{id}\", but no such service exists; remove the id to create the service, or pin the id of the one to adopt")]
    PinnedIdMissing { key: String, id: String },
    #[error("service.{key} is recorded as {recorded}, but the topology pins id = \"{pinned}\"; to manage the other service under this key, `skyplan state rm service.{key}` first (the recorded one is then no longer managed, nothing is deleted)")]
    PinnedIdMismatch {
        key: String,
        recorded: String,
        pinned: String,
    },
    #[error("the state records service {id} as service.{deleted}, and the file calls it service.{kept}: this plan would delete it under one key and keep it under the other. Nothing was changed. Make the two agree: rename [services.{kept}] to [services.{deleted}] in the file, or run `skyplan state mv service.{deleted} service.{kept}`")]
    DeleteAndKeep {
        id: String,
        deleted: String,
        kept: String,
    },
    #[error("the state is damaged: its record of service.{key} has no id, so what exists cannot be told from it. Nothing was planned or changed. Restore the state from a good copy, or forget the record (`skyplan state rm service.{key}`) and import the service (`skyplan import`)")]
    DamagedState { key: String },
    #[error("the state is damaged: it records no services, yet these are tagged as this workspace's (state lineage {lineage}): {}. Planned from it, they would be adopted as new and their replicas re-seeded. Nothing was planned or changed. Restore the state from a good copy; or, if you forgot them on purpose (`skyplan state rm`), bring each back with `skyplan import`, which keeps its data", .services.join(", "))]
    RecordsLost {
        lineage: String,
        services: Vec<String>,
    },
    #[error("the switchover of the primary service.{old} -> service.{new} is past its point of no return: service.{new} is open for writes, and service.{old}, fenced, does not follow it yet. The file makes service.{old} the primary again: planned now, that would open service.{old} beside service.{new} and copy service.{old} over service.{new}, discarding what service.{new} takes{losses}. Nothing was changed. Put the file back and apply (service.{old} follows service.{new} by GTID, no copy), then revert the file: a switchover back by GTID. Or run again with --allow-data-loss to copy service.{old} over service.{new}")]
    RevertedPastTheOpening {
        old: String,
        new: String,
        /// What the copy would discard now, each `; <loss>` (empty when nothing yet).
        losses: String,
    },
    #[error("the last-copy rule: {}. Nothing was changed. These transactions exist nowhere else: take what you need from them, or run again with --allow-data-loss to discard them", .losses.join("; "))]
    LastCopy { losses: Vec<String> },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<PlanError>),
}

impl PlanError {
    pub(crate) fn combine(mut errors: Vec<PlanError>) -> Option<PlanError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(PlanError::Several(errors)),
        }
    }
}

/// What the plan does, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Summary {
    /// Existing services taken over (never counted as added).
    #[serde(default)]
    pub adopt: usize,
    pub add: usize,
    pub change: usize,
    pub replace: usize,
    pub destroy: usize,
    /// Actions that wipe or destroy data.
    pub wipes_data: usize,
    /// restart_service actions: servers restarted (clients disconnected) so that variables
    /// that take effect only at a start do.
    #[serde(default)]
    pub restarts: usize,
    /// Drift items that need attention (informational ones excluded).
    pub drift: usize,
}

impl From<seed::SeedError> for PlanError {
    fn from(e: seed::SeedError) -> Self {
        PlanError::Seed(Box::new(e))
    }
}

/// A skyplan plan: the output of `skyplan plan --json` and the content of a saved plan file
/// (`plan --out`). Actions are listed in dependency order; `depends_on` holds the ids of
/// actions that must finish first. Values not known until apply are the string
/// "(known after apply)". No secrets appear in a plan.
//
// Plain data: what will be done, in dependency order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Plan {
    /// Version of this format. Readers refuse higher versions.
    #[schemars(extend("const" = PLAN_FORMAT_VERSION))]
    pub format_version: u32,
    pub skyplan_version: String,
    /// True for a destroy plan (everything in the state torn down).
    pub destroy: bool,
    /// Whether the real world was looked at (false for `--refresh=false`).
    pub refreshed: bool,
    pub topology_file: String,
    /// SHA-256 of the topology file; a saved plan is refused when the file changed.
    pub topology_sha256: String,
    /// Lineage of the state the plan was made against.
    pub lineage: String,
    /// Serial of that state; a saved plan is refused when the state moved on (stale plan).
    pub serial: u64,
    pub actions: Vec<Action>,
    /// Differences between the state and what refresh observed, reported apart from the
    /// planned actions.
    pub drift: Vec<Drift>,
    /// What the reviewer should know before applying that is not an error, e.g. a seed backup
    /// taken of another service (shown above the summary as `Warning: …`). Absent when there
    /// is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub summary: Summary,
    /// How long applying the plan is expected to take (`plan::estimate`). Absent when nothing
    /// is planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<estimate::Estimate>,
    // The command line's `--allow-data-loss`, `--replace` and `--target` (flattened: absent
    // when unused): applying the saved plan re-derives it the same way.
    #[serde(flatten)]
    pub flags: PlanFlags,
    /// The resolved desired topology (defaults merged), so a saved plan applies exactly what
    /// was reviewed.
    pub topology: Topology,
}

impl Plan {
    /// Nothing to do and nothing drifted that needs attention.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.summary.drift == 0
    }

    pub fn action(&self, address: &str) -> Option<&Action> {
        self.actions.iter().find(|a| a.address == address)
    }
}

/// Inputs the caller read at the edges.
pub struct PlanInput<'a> {
    pub topology: &'a Topology,
    pub topology_sha256: &'a str,
    pub state: &'a State,
    pub observed: &'a Observed,
    pub flags: PlanFlags,
}

/// What the command line adds to the inputs (`--allow-data-loss`, `--replace`, `--target`);
/// a saved plan records them, so applying it re-derives the same plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanFlags {
    /// The plan was made with --allow-data-loss: a failover (promoting a replica of a lost
    /// primary) may be in it; applying the saved plan re-derives it the same way. Absent when
    /// false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_data_loss: bool,
    /// The plan was made with --replace ADDRESS…: addresses to rebuild although nothing
    /// drifted; a replica (`service.KEY` or `replication.KEY`) is re-seeded, any other service
    /// replaced. Both wipe data. Absent when unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<String>,
    /// A partial plan: made with --target ADDRESS…; only those and what they depend on are in
    /// it. Absent when unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<String>,
}

/// Plan the changes that make the world match the topology. The state is first corrected by
/// what refresh saw of the services' endpoints ([`drift::correct_endpoints`]): observed beats
/// recorded, and the correction is drift.
pub fn build(input: &PlanInput) -> Result<Plan, PlanError> {
    // Copied only when refresh saw something to correct (a plan of 10,000 services in sync,
    // refreshed or not, never pays for a copy of its state).
    let (state, corrected) = if input.observed.refreshed {
        drift::corrected_for(input.topology, input.state, input.observed)
    } else {
        (std::borrow::Cow::Borrowed(input.state), Vec::new())
    };
    let state: &State = &state;
    if let Some(key) = last_copy::damaged(state) {
        return Err(PlanError::DamagedState { key });
    }
    let lost = last_copy::records_lost(state, input.observed);
    if !lost.is_empty() {
        return Err(PlanError::RecordsLost {
            lineage: state.lineage.clone(),
            services: lost,
        });
    }
    let (flags, resumed) = flags::with_recorded_replaces(&input.flags, input.topology, state);
    flags::check(&flags, input.topology, state)?;
    let mut out = diff::diff(input.topology, state, input.observed, &flags)?;
    if let Some((id, deleted, kept)) = last_copy::deleted_and_kept(&out.actions, state) {
        return Err(PlanError::DeleteAndKeep { id, deleted, kept });
    }
    let losses = last_copy::losses(&out.actions, state, input.observed);
    if !flags.allow_data_loss {
        if let Some((old, new)) = last_copy::reverted_past_the_opening(input.topology, state) {
            let losses = losses
                .iter()
                .map(|l| format!("; {}", l.describe()))
                .collect();
            return Err(PlanError::RevertedPastTheOpening { old, new, losses });
        }
    }
    if !losses.is_empty() {
        let described: Vec<String> = losses.iter().map(last_copy::Loss::describe).collect();
        if !flags.allow_data_loss {
            // A lost primary the file still has is not re-created empty over the replicas
            // that hold its data: the plan reports it and does nothing (drift: exit 2).
            let lost = last_copy::recreated_lost_primaries(&out.actions, state, input.observed);
            if lost.is_empty() {
                return Err(PlanError::LastCopy { losses: described });
            }
            out.actions.clear();
            out.warnings.extend(
                lost.iter()
                    .map(|k| last_copy::failover_hint(k, input.topology, input.observed)),
            );
            out.warnings
                .extend(described.into_iter().map(|d| format!("not planned: {d}")));
            out.warnings.extend(resumed);
            out.drift.extend(corrected);
            return finish(input, out, false);
        }
        // Listed first: what the reviewer consents to lose.
        let listed = described
            .into_iter()
            .map(|d| format!("DATA LOSS (--allow-data-loss): {d}"));
        out.warnings.splice(0..0, listed);
    }
    out.warnings.extend(resumed);
    out.drift.extend(corrected);
    finish(input, out, false)
}

/// Plan tearing down everything the state records (`skyplan destroy`).
pub fn build_destroy(input: &PlanInput) -> Result<Plan, PlanError> {
    check_destroy_allowed(input.topology, input.state)?;
    flags::check(&input.flags, input.topology, input.state)?;
    let empty = Topology {
        services: Default::default(),
        ..input.topology.clone()
    };
    let mut out = diff::diff(&empty, input.state, input.observed, &PlanFlags::default())?;
    for a in out.actions.iter_mut() {
        if let ActionKind::DeleteService { .. } = a.kind {
            if a.wipes_data {
                a.reason = Some("skyplan destroy".into());
            }
        }
    }
    // What a destroy leaves behind, said before it runs: the backups skyplan took.
    let made = &input.state.resources.made_backups;
    if !made.is_empty() {
        out.warnings.push(format!(
            "{} backup{} skyplan took {} left in SkySQL, and billed, after this destroy: {}. SkySQL's API has no call to delete a backup: delete them in the SkySQL portal if they are not needed; `skyplan state list` keeps listing them until `skyplan state rm backup_made.SOURCE.ID`",
            made.len(),
            if made.len() == 1 { "" } else { "s" },
            if made.len() == 1 { "is" } else { "are" },
            made.iter()
                .map(|(id, b)| format!("{id} (of service.{}, taken {})", b.source, b.taken_at.as_deref().unwrap_or("at an unknown time")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut plan = finish(input, out, true)?;
    plan.drift.clear();
    plan.summary.drift = 0;
    Ok(plan)
}

/// Refuse a destroy while a managed service has `deletion_protection = true` (pure, so the
/// CLI can say so before it connects to anything).
pub fn check_destroy_allowed(topology: &Topology, state: &State) -> Result<(), PlanError> {
    let protected: Vec<PlanError> = topology
        .services
        .values()
        .filter(|s| s.deletion_protection && state.resources.services.contains_key(&s.key))
        .map(|s| PlanError::DeletionProtected {
            key: s.key.clone(),
            name: s.spec.name.clone(),
        })
        .collect();
    match PlanError::combine(protected) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn finish(input: &PlanInput, out: diff::DiffOutput, destroy: bool) -> Result<Plan, PlanError> {
    let mut actions = graph::build(out.actions, input.state)?;
    if !input.flags.target.is_empty() {
        actions = graph::only(actions, &input.flags.target);
    }
    let mut drift = out.drift;
    drift.sort_by(|a, b| (&a.resource, a.kind).cmp(&(&b.resource, b.kind)));
    let summary = summarize(&actions, &drift);
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        skyplan_version: env!("CARGO_PKG_VERSION").to_string(),
        destroy,
        refreshed: input.observed.refreshed,
        topology_file: input.topology.source.display().to_string(),
        topology_sha256: input.topology_sha256.to_string(),
        lineage: input.state.lineage.clone(),
        serial: input.state.serial,
        actions,
        drift,
        warnings: out.warnings,
        summary,
        estimate: None,
        flags: input.flags.clone(),
        topology: input.topology.clone(),
    })
}

fn summarize(actions: &[Action], drift: &[Drift]) -> Summary {
    let mut s = Summary::default();
    for a in actions {
        match a.change {
            Change::Adopt => s.adopt += 1,
            Change::Read => {}
            Change::Create => s.add += 1,
            Change::Update => s.change += 1,
            Change::Replace => s.replace += 1,
            Change::Delete => s.destroy += 1,
        }
        if a.wipes_data {
            s.wipes_data += 1;
        }
        if matches!(a.kind, ActionKind::RestartService { .. }) {
            s.restarts += 1;
        }
    }
    s.drift = drift.iter().filter(|d| !d.kind.is_informational()).count();
    s
}
