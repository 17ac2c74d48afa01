//! desired topology × state × observed → the actions to take and the drift found.
//! Pure: no I/O. Every lookup is by key in a map, so the cost is linear in the number of
//! services (plus log factors).

use skyplan_api::types::ServiceStatus;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::action::{ActionKind, Change, KNOWN_AFTER_APPLY};
use super::drift::{Drift, DriftKind};
use super::PlanError;
use crate::observed::{Observed, ObservedService, RemoteService};
use crate::state::{ServiceRecord, State};
use crate::topology::{Service, ServiceSpec, Topology};

mod config;
mod links;
mod power;
pub mod roles;

/// An action before ids and dependencies are assigned.
#[derive(Debug, Clone)]
pub struct Planned {
    pub kind: ActionKind,
    pub change: Change,
    pub summary: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub wipes_data: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Default)]
pub struct DiffOutput {
    pub actions: Vec<Planned>,
    pub drift: Vec<Drift>,
    /// Things the reviewer should know that are not errors (e.g. a foreign seed backup).
    pub warnings: Vec<String>,
}

/// What happens to a service in this plan (drives the replication decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Create,
    Update,
    Replace,
}

impl Fate {
    /// The service will be new (empty, new id, new outbound IPs) after apply.
    fn is_new(self) -> bool {
        matches!(self, Fate::Create | Fate::Replace)
    }
}

/// Fields that SkySQL cannot change in place: changing them replaces the service.
const IMMUTABLE: &[&str] = &[
    "name",
    "service_type",
    "topology",
    "provider",
    "region",
    "architecture",
    "version",
    "ssl_enabled",
    "volume_type",
];

pub fn diff(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    flags: &super::PlanFlags,
) -> Result<DiffOutput, PlanError> {
    let allow_data_loss = flags.allow_data_loss;
    let mut out = DiffOutput::default();
    let mut fates: BTreeMap<&str, Fate> = BTreeMap::new();
    let mut errors = Vec::new();
    // Role changes first: a failover decides which lost services the plan may work around
    // (a refused one's old primary is left to that error: one message, not two).
    let roles = roles::roles(topology, state, observed, allow_data_loss);
    errors.extend(roles.errors);
    let switches = roles.switches;
    let lost_ok: BTreeSet<&str> = roles
        .lost
        .iter()
        .map(String::as_str)
        .chain(
            state
                .resources
                .services
                .iter()
                .filter(|(_, r)| r.failed_over_to.is_some())
                .map(|(k, _)| k.as_str()),
        )
        .collect();
    let owned_on = owned_entries(state);

    for (key, svc) in &topology.services {
        if let Some(ObservedService::Unreachable { why, .. }) = observed.services.get(key) {
            match unreachable(key, why, state, &lost_ok, true, &mut out) {
                Ok(()) => {
                    fates.insert(key.as_str(), Fate::Keep);
                }
                Err(e) => errors.push(e),
            }
            continue;
        }
        // `--replace service.KEY` of a service that is no replica: replace it (a replica is
        // re-seeded instead, in plan_links).
        let replace_it = svc.replication.is_none()
            && flags.replace.iter().any(|a| a == &svc.address())
            && state.resources.services.contains_key(key);
        if replace_it {
            let rec = &state.resources.services[key];
            match check_protection(svc) {
                Ok(()) => {
                    out.actions
                        .push(replace(svc, &rec.spec, "requested with --replace".into()));
                    fates.insert(key.as_str(), Fate::Replace);
                    if let Err(e) = power::plan_power(svc, Fate::Replace, state, observed, &mut out)
                    {
                        errors.push(e);
                    }
                }
                Err(e) => errors.push(e),
            }
            continue;
        }
        let planned = plan_service(svc, state, observed, &owned_on, &mut out).and_then(|fate| {
            power::check_stopped_changes(svc, state, observed, &out)?;
            power::plan_power(svc, fate, state, observed, &mut out)?;
            Ok(fate)
        });
        match planned {
            Ok(fate) => {
                fates.insert(key.as_str(), fate);
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(e) = PlanError::combine(errors) {
        return Err(e);
    }

    unanswered_databases(state, observed, &lost_ok, &mut out);

    links::plan_links(
        topology,
        state,
        observed,
        &fates,
        &switches,
        &flags.replace,
        &mut out,
    )?;
    config::plan_configs(topology, state, observed, &fates, &mut out);

    deletions(topology, state, observed, &lost_ok, &mut out)?;
    Ok(out)
}

/// Entries skyplan granted, grouped by the service whose allowlist holds them: one pass here
/// instead of a scan of every grant for every service (quadratic on large states).
fn owned_entries(state: &State) -> std::collections::HashMap<&str, BTreeSet<String>> {
    let mut owned_on: std::collections::HashMap<&str, BTreeSet<String>> = Default::default();
    for a in state.resources.allowlists.values() {
        owned_on
            .entry(a.on.as_str())
            .or_default()
            .extend(a.entries.iter().map(|e| cidr_key(e)));
        for g in &a.earlier {
            owned_on
                .entry(g.on.as_str())
                .or_default()
                .extend(g.entries.iter().map(|e| cidr_key(e)));
        }
    }

    owned_on
}

/// Databases that do not answer: a replaced primary still away, or a failover's old primary,
/// is reported as unreachable; anything else blocks apply.
fn unanswered_databases(
    state: &State,
    observed: &Observed,
    lost_ok: &BTreeSet<&str>,
    out: &mut DiffOutput,
) {
    for (key, why) in &observed.unreachable {
        if matches!(
            observed.services.get(key),
            Some(ObservedService::Unreachable { .. } | ObservedService::Missing { .. })
        ) {
            continue;
        }
        let name = state
            .resources
            .services
            .get(key)
            .map_or(key.as_str(), |r| r.spec.name.as_str());
        let replaced = lost_ok.contains(key.as_str());
        out.drift.push(Drift {
            resource: format!("service.{key}"),
            kind: if replaced {
                DriftKind::ServiceUnreachable
            } else {
                DriftKind::DatabaseUnreachable
            },
            before: json!({ "reachable": true }),
            after: json!({ "reachable": false, "error": why }),
            detail: if replaced {
                format!("{name} does not answer ({why}); it was the primary: when it answers again it is fenced first")
            } else {
                format!(
                    "the API reports {name} ready, but its database does not answer ({why}): replication from or to it cannot be repaired, and apply refuses until it answers"
                )
            },
        });
    }
}

/// Services in state but gone from the topology are deleted, replicas first (the graph orders
/// them); links from or to them are torn down by plan_links.
fn deletions(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    lost_ok: &BTreeSet<&str>,
    out: &mut DiffOutput,
) -> Result<(), PlanError> {
    for (key, rec) in &state.resources.services {
        if topology.services.contains_key(key) {
            continue;
        }
        if let Some(ObservedService::Unreachable { why, .. }) = observed.services.get(key) {
            // Deleted once it answers again (fenced first if it is a replaced primary).
            unreachable(key, why, state, lost_ok, false, out)?;
            out.warnings.push(format!(
                "service.{key} does not answer, so it is not deleted now; the first plan after it answers again deletes it"
            ));
            continue;
        }
        if let Some(ObservedService::Missing { id }) = observed.services.get(key) {
            // Already gone: the state still refers to it. The delete step finds it gone and
            // only forgets it (and the entries others had on it).
            out.drift.push(Drift {
                resource: format!("service.{key}"),
                kind: DriftKind::ServiceDeleted,
                before: json!({ "id": id, "name": rec.spec.name }),
                after: Value::Null,
                detail: format!(
                    "{} ({id}) no longer exists; the state still refers to it",
                    rec.spec.name
                ),
            });
            out.actions.push(Planned {
                kind: ActionKind::DeleteService {
                    key: key.clone(),
                    spec: rec.spec.clone(),
                },
                change: Change::Delete,
                summary: format!(
                    "forget   {}  (already deleted; only the state changes)",
                    rec.spec.name
                ),
                before: Some(spec_value(&rec.spec)),
                after: None,
                wipes_data: false,
                reason: Some("deleted outside skyplan".into()),
            });
            continue;
        }
        out.actions.push(Planned {
            kind: ActionKind::DeleteService {
                key: key.clone(),
                spec: rec.spec.clone(),
            },
            change: Change::Delete,
            summary: format!("delete   {}  (destroys all its data)", rec.spec.name),
            before: Some(spec_value(&rec.spec)),
            after: None,
            wipes_data: true,
            reason: Some(format!("[services.{key}] is no longer in the topology")),
        });
    }
    Ok(())
}

/// A recorded service whose API does not answer. Planning around it is allowed for a primary
/// that a failover (in this plan or an earlier one) replaces, and for a service the topology
/// removes (deleted once it answers; e.g. a replica lost with its region, or `destroy`): it is
/// reported, and nothing is planned for it. A service the topology keeps makes the plan fail:
/// what apply would do to it cannot be known.
fn unreachable(
    key: &str,
    why: &str,
    state: &State,
    lost_ok: &BTreeSet<&str>,
    in_topology: bool,
    out: &mut DiffOutput,
) -> Result<(), PlanError> {
    let replaced = lost_ok.contains(key);
    if in_topology && !replaced {
        return Err(PlanError::Unreachable {
            key: key.to_string(),
            why: why.to_string(),
        });
    }
    let name = state
        .resources
        .services
        .get(key)
        .map_or(key, |r| r.spec.name.as_str());
    out.drift.push(Drift {
        resource: format!("service.{key}"),
        kind: DriftKind::ServiceUnreachable,
        before: json!({ "reachable": true }),
        after: json!({ "reachable": false, "error": why }),
        detail: if !in_topology {
            format!("{name} does not answer ({why}); it leaves the topology: deleted once it answers")
        } else {
            format!("{name} does not answer ({why}); it was the primary: when it answers again it is fenced first")
        },
    });
    Ok(())
}

/// The service's current spec: state's record overlaid with what refresh saw.
/// What the API reported, minus what it cannot be trusted to report: a field left out (empty,
/// zero) keeps the recorded value, a provider or region that differs only in case keeps the
/// recorded spelling, and `ssl_enabled` is always the recorded one (it reads as `false` when
/// the API leaves it out, and cannot change in place anyway). A replace that wipes data must
/// never follow from a missing field.
fn trusted(r: &RemoteService, rec: &ServiceSpec) -> RemoteService {
    let keep = |seen: &str, recorded: &str| {
        if seen.is_empty() || seen.eq_ignore_ascii_case(recorded) {
            recorded.to_string()
        } else {
            seen.to_string()
        }
    };
    RemoteService {
        size: keep(&r.size, &rec.size),
        provider: keep(&r.provider, &rec.provider),
        region: keep(&r.region, &rec.region),
        nodes: if r.nodes == 0 { rec.nodes } else { r.nodes },
        storage: if r.storage == 0 {
            rec.storage
        } else {
            r.storage
        },
        ssl_enabled: rec.ssl_enabled,
        ..r.clone()
    }
}

fn current_spec(rec_spec: &ServiceSpec, remote: Option<&RemoteService>) -> ServiceSpec {
    let mut spec = rec_spec.clone();
    if let Some(r) = remote {
        spec.size = r.size.clone();
        spec.nodes = r.nodes;
        spec.storage = r.storage;
        spec.provider = r.provider.clone();
        spec.region = r.region.clone();
        spec.ssl_enabled = r.ssl_enabled;
    }
    spec
}

fn plan_service(
    svc: &Service,
    state: &State,
    observed: &Observed,
    owned_on: &std::collections::HashMap<&str, BTreeSet<String>>,
    out: &mut DiffOutput,
) -> Result<Fate, PlanError> {
    let key = &svc.key;
    let address = svc.address();
    let rec = state.resources.services.get(key);
    let obs = observed.services.get(key);
    let create = |reason: Option<String>| Planned {
        kind: ActionKind::CreateService {
            key: key.clone(),
            spec: svc.spec.clone(),
        },
        change: Change::Create,
        summary: format!("create   {}", describe_spec(&svc.spec)),
        before: None,
        after: Some(spec_value_new(&svc.spec)),
        wipes_data: false,
        reason,
    };
    if let (Some(rec), Some(pinned)) = (rec, &svc.id) {
        if &rec.id != pinned {
            return Err(PlanError::PinnedIdMismatch {
                key: key.clone(),
                recorded: rec.id.clone(),
                pinned: pinned.clone(),
            });
        }
    }
    let Some(rec) = rec else {
        return unrecorded(svc, state, observed, out, create(None));
    };

    let remote = match obs {
        Some(ObservedService::Missing { id }) => {
            out.drift.push(Drift {
                resource: address.clone(),
                kind: DriftKind::ServiceDeleted,
                before: json!({ "id": id, "name": rec.spec.name }),
                after: Value::Null,
                detail: format!("{} ({id}) no longer exists", rec.spec.name),
            });
            out.actions
                .push(create(Some("deleted outside skyplan".into())));
            return Ok(Fate::Create);
        }
        Some(ObservedService::Present(r)) => Some(trusted(r, &rec.spec)),
        // Unreachable is decided by the caller before it plans the service.
        Some(ObservedService::Unreachable { .. }) | None => None,
    };
    let remote = remote.as_ref();

    // Fields that changed outside skyplan: an update that puts them back says so.
    let mut drifted: Vec<&str> = Vec::new();
    if let Some(r) = remote {
        // A failed service is replaced; a stopped one is started or kept stopped (power).
        if r.status == ServiceStatus::Failed {
            out.drift.push(Drift {
                resource: address.clone(),
                kind: DriftKind::ServiceFailed,
                before: json!({ "status": rec.status.as_ref().unwrap_or(&ServiceStatus::Ready) }),
                after: json!({ "status": ServiceStatus::Failed }),
                detail: format!("{} is in state failed", rec.spec.name),
            });
            check_protection(svc)?;
            out.actions
                .push(replace(svc, &rec.spec, "the service failed".into()));
            return Ok(Fate::Replace);
        }
        drifted.extend(resized_outside(svc, rec, r, &address, out));
    }

    let mut current = current_spec(&rec.spec, remote);
    if let Some(entries) = observed.allowlists.get(key) {
        let empty = BTreeSet::new();
        let found = allow_list_drift(
            svc,
            rec,
            entries,
            owned_on.get(key.as_str()).unwrap_or(&empty),
            &mut current,
        );
        if found.listed_missing {
            drifted.push("allow_list");
        }
        out.drift.extend(found.drift);
    }

    // Storage grown outside skyplan cannot be shrunk back: keep it, and say what to do. (A
    // topology that itself asks for less than the state records is still an error below.)
    let mut want = svc.spec.clone();
    if drifted.contains(&"storage") && want.storage < current.storage {
        want.storage = current.storage;
        if let Some(d) = out
            .drift
            .iter_mut()
            .find(|d| d.resource == address && d.kind == DriftKind::ServiceResized)
        {
            d.detail.push_str(&format!(
                "; storage cannot shrink back to {} GB: set storage = {} in the topology",
                svc.spec.storage, current.storage
            ));
        }
    }
    update_or_replace(svc, &current, &want, &drifted, out)
}

/// The service as it is (`current`) against the topology's (`want`): kept, updated in
/// place, or replaced when a field cannot change in place.
fn update_or_replace(
    svc: &Service,
    current: &ServiceSpec,
    want: &ServiceSpec,
    drifted: &[&str],
    out: &mut DiffOutput,
) -> Result<Fate, PlanError> {
    let key = &svc.key;
    let changed = changed_fields(current, want);
    if changed.is_empty() {
        return Ok(Fate::Keep);
    }
    if changed.iter().any(|f| IMMUTABLE.contains(f)) {
        check_protection(svc)?;
        let fields: Vec<&str> = changed
            .iter()
            .copied()
            .filter(|f| IMMUTABLE.contains(f))
            .collect();
        out.actions.push(replace(
            svc,
            current,
            format!("{} cannot change in place", fields.join(", ")),
        ));
        return Ok(Fate::Replace);
    }
    if want.storage < current.storage {
        return Err(PlanError::StorageShrink {
            key: key.clone(),
            from: current.storage,
            to: want.storage,
        });
    }
    out.actions.push(Planned {
        kind: ActionKind::UpdateService {
            key: key.clone(),
            from: current.clone(),
            to: want.clone(),
        },
        change: Change::Update,
        summary: format!("update   {}  ({})", want.name, changed.join(", ")),
        before: Some(spec_value(current)),
        after: Some(spec_value(want)),
        wipes_data: false,
        reason: repair_reason(&changed, drifted),
    });
    Ok(Fate::Update)
}

/// A service the state does not record: adopted when exactly one with its name (or its
/// pinned id) exists, created when none does, refused when several do.
fn unrecorded(
    svc: &Service,
    state: &State,
    observed: &Observed,
    out: &mut DiffOutput,
    create: Planned,
) -> Result<Fate, PlanError> {
    let key = &svc.key;
    if let (Some(pinned), true) = (&svc.id, observed.refreshed) {
        return match observed.unmanaged.get(key).map(Vec::as_slice) {
            Some([existing]) => adopt(svc, existing, state, observed, out),
            _ => Err(PlanError::PinnedIdMissing {
                key: key.clone(),
                id: pinned.clone(),
            }),
        };
    }
    match observed.unmanaged.get(key).map(Vec::as_slice) {
        None | Some([]) => {
            out.actions.push(create);
            Ok(Fate::Create)
        }
        Some([existing]) => adopt(svc, existing, state, observed, out),
        Some(several) => Err(PlanError::AmbiguousName {
            key: key.clone(),
            name: svc.spec.name.clone(),
            count: several.len(),
            ids: several.iter().map(|s| s.id.clone()).collect(),
        }),
    }
}

/// Size, nodes or storage changed outside skyplan (drift), and which. A field changed by
/// hand to exactly what the topology now asks for is not drift: nothing needs doing, and
/// reporting it would exit 2 on every run after.
fn resized_outside(
    svc: &Service,
    rec: &crate::state::ServiceRecord,
    r: &crate::observed::RemoteService,
    address: &str,
    out: &mut DiffOutput,
) -> Vec<&'static str> {
    let resized: Vec<(&str, Value, Value)> = [
        (
            "size",
            json!(rec.spec.size),
            json!(r.size),
            json!(svc.spec.size),
        ),
        (
            "nodes",
            json!(rec.spec.nodes),
            json!(r.nodes),
            json!(svc.spec.nodes),
        ),
        (
            "storage",
            json!(rec.spec.storage),
            json!(r.storage),
            json!(svc.spec.storage),
        ),
    ]
    .into_iter()
    .filter(|(_, was, now, want)| was != now && now != want)
    .map(|(f, was, now, _)| (f, was, now))
    .collect();
    if !resized.is_empty() {
        let before: serde_json::Map<String, Value> = resized
            .iter()
            .map(|(f, a, _)| (f.to_string(), a.clone()))
            .collect();
        let after: serde_json::Map<String, Value> = resized
            .iter()
            .map(|(f, _, b)| (f.to_string(), b.clone()))
            .collect();
        let fields: Vec<&str> = resized.iter().map(|(f, _, _)| *f).collect();
        out.drift.push(Drift {
            resource: address.to_string(),
            kind: DriftKind::ServiceResized,
            before: Value::Object(before),
            after: Value::Object(after),
            detail: format!("{} changed outside skyplan", fields.join(", ")),
        });
    }
    resized.iter().map(|(f, _, _)| *f).collect()
}

/// A field of an existing service that the topology sets otherwise and that cannot change in
/// place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub field: &'static str,
    pub real: String,
    pub file: String,
    /// The real value as the topology would spell it (for the hint).
    pub real_toml: String,
}

/// What keeps `existing` (a service found by name) from being adopted as `spec`: immutable
/// fields that differ. A field the API left out (empty) or spelled in another case never
/// conflicts. One rule for plan and apply (which checks again just before adopting).
pub fn adoption_conflicts(spec: &ServiceSpec, existing: &RemoteService) -> Vec<Conflict> {
    let differs = |seen: &str, want: &str| !seen.is_empty() && !seen.eq_ignore_ascii_case(want);
    let mut c = Vec::new();
    // Found by name this always matches; a pinned id may name a service called otherwise.
    if existing.name != spec.name {
        c.push(Conflict {
            field: "name",
            real: existing.name.clone(),
            file: spec.name.clone(),
            real_toml: format!("{:?}", existing.name),
        });
    }
    for (field, real, file) in [
        ("provider", &existing.provider, &spec.provider),
        ("region", &existing.region, &spec.region),
        ("architecture", &existing.architecture, &spec.architecture),
    ] {
        if differs(real, file) {
            c.push(Conflict {
                field,
                real: real.clone(),
                file: file.clone(),
                real_toml: format!("{real:?}"),
            });
        }
    }
    if existing.ssl_enabled != spec.ssl_enabled {
        c.push(Conflict {
            field: "ssl_enabled",
            real: existing.ssl_enabled.to_string(),
            file: spec.ssl_enabled.to_string(),
            real_toml: existing.ssl_enabled.to_string(),
        });
    }
    c
}

/// Whether `existing` may be adopted as `spec` under `key` by the workspace `lineage`: not when
/// another workspace's tags prove it theirs (this workspace's tag marks a service its state lost
/// track of, ours to take back), nor when what cannot change in place differs. One rule for
/// plan, import and the apply steps that check again.
pub fn check_adoptable(
    key: &str,
    spec: &ServiceSpec,
    existing: &RemoteService,
    lineage: &str,
) -> Result<(), PlanError> {
    if let Some(owner) = crate::ownership::owner(&existing.tags) {
        if owner.lineage != lineage {
            return Err(PlanError::OwnedElsewhere {
                key: key.to_string(),
                name: existing.name.clone(),
                id: existing.id.clone(),
                lineage: owner.lineage,
                owner_key: owner.key,
            });
        }
    }
    let conflicts = adoption_conflicts(spec, existing);
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(PlanError::AdoptionConflict {
        key: key.to_string(),
        // The existing service's own name (a pinned id may name one called otherwise).
        name: existing.name.clone(),
        id: existing.id.clone(),
        conflicts,
    })
}

/// The spec `existing` really has: what the API reports, and the topology's value for what it
/// does not report. Allowlist entries the topology does not list are not ours and not shown.
pub fn adopted_spec(
    want: &ServiceSpec,
    existing: &RemoteService,
    entries: &[String],
) -> ServiceSpec {
    let keep = |seen: &str, file: &str| {
        if seen.is_empty() || seen.eq_ignore_ascii_case(file) {
            file.to_string()
        } else {
            seen.to_string()
        }
    };
    ServiceSpec {
        name: existing.name.clone(),
        provider: keep(&existing.provider, &want.provider),
        region: keep(&existing.region, &want.region),
        architecture: keep(&existing.architecture, &want.architecture),
        size: keep(&existing.size, &want.size),
        nodes: if existing.nodes == 0 {
            want.nodes
        } else {
            existing.nodes
        },
        storage: if existing.storage == 0 {
            want.storage
        } else {
            existing.storage
        },
        ssl_enabled: existing.ssl_enabled,
        allow_list: want
            .allow_list
            .iter()
            .filter(|e| contains_cidr(entries, e))
            .cloned()
            .collect(),
        ..want.clone()
    }
}

/// Take over `existing`, the service named like `svc` that the state does not record: shown
/// as its own action with its real values and what apply changes on it; never a replace or a
/// wipe (what would need one is an error the user resolves in the topology).
fn adopt(
    svc: &Service,
    existing: &RemoteService,
    state: &State,
    observed: &Observed,
    out: &mut DiffOutput,
) -> Result<Fate, PlanError> {
    let key = &svc.key;
    let (name, id) = (svc.spec.name.clone(), existing.id.clone());
    let adoptable = match &existing.status {
        ServiceStatus::Ready | ServiceStatus::Stopped => true,
        ServiceStatus::PendingDelete => false,
        other => other.is_pending(),
    };
    if !adoptable {
        return Err(PlanError::NotAdoptable {
            key: key.clone(),
            name,
            id,
            status: existing.status.to_string(),
        });
    }
    check_adoptable(key, &svc.spec, existing, &state.lineage)?;
    let entries = observed
        .allowlists
        .get(key)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let from = adopted_spec(&svc.spec, existing, entries);
    if svc.spec.storage < from.storage {
        return Err(PlanError::StorageShrink {
            key: key.clone(),
            from: from.storage,
            to: svc.spec.storage,
        });
    }
    let changed = changed_fields(&from, &svc.spec);
    let then = if changed.is_empty() {
        String::new()
    } else {
        format!("; then update {}", changed.join(", "))
    };
    out.actions.push(Planned {
        kind: ActionKind::AdoptService {
            key: key.clone(),
            service_id: id.clone(),
            from: from.clone(),
            to: svc.spec.clone(),
        },
        change: Change::Adopt,
        summary: format!("adopt    {} ({id}){then}", describe_spec(&from)),
        before: Some(spec_value(&from)),
        after: Some(spec_value(&svc.spec)),
        wipes_data: false,
        reason: Some(match &svc.replication {
            None => format!(
                "a service named {} already exists and the state does not record it",
                svc.spec.name
            ),
            // Its seeding is planned below like any replica's, flagged as a wipe.
            Some(r) => format!(
                "a service named {} already exists and the state does not record it; as a replica of service.{} it is seeded as the topology says",
                svc.spec.name, r.from
            ),
        }),
    });
    Ok(if changed.is_empty() {
        Fate::Keep
    } else {
        Fate::Update
    })
}

fn check_protection(svc: &Service) -> Result<(), PlanError> {
    if svc.deletion_protection {
        return Err(PlanError::DeletionProtected {
            key: svc.key.clone(),
            name: svc.spec.name.clone(),
        });
    }
    Ok(())
}

/// "size changed outside skyplan" when an update puts drifted fields back.
fn repair_reason(changed: &[&str], drifted: &[&str]) -> Option<String> {
    let back: Vec<&str> = changed
        .iter()
        .copied()
        .filter(|f| drifted.contains(f))
        .collect();
    (!back.is_empty()).then(|| format!("{} changed outside skyplan", back.join(", ")))
}

/// Compare a service's observed allowlist with the user's `allow_list` (as last applied) and
/// the entries skyplan added for replicas. Entries are compared CIDR-normalised. Sets
/// `current.allow_list` to the listed entries still present, so the update puts back the
/// missing ones; entries added by hand are reported and left alone.
fn allow_list_drift(
    svc: &Service,
    rec: &ServiceRecord,
    entries: &[String],
    owned: &BTreeSet<String>,
    current: &mut ServiceSpec,
) -> AllowListDrift {
    let present: BTreeSet<String> = entries.iter().map(|e| cidr_key(e)).collect();
    let listed: BTreeSet<String> = rec
        .spec
        .allow_list
        .iter()
        .chain(&svc.spec.allow_list)
        .map(|e| cidr_key(e))
        .collect();
    current.allow_list = rec
        .spec
        .allow_list
        .iter()
        .filter(|e| present.contains(&cidr_key(e)))
        .cloned()
        .collect();
    let mut drift = Vec::new();
    let missing: Vec<&String> = rec
        .spec
        .allow_list
        .iter()
        .filter(|e| !present.contains(&cidr_key(e)))
        .collect();
    if !missing.is_empty() {
        drift.push(Drift {
            resource: svc.address(),
            kind: DriftKind::AllowListChanged,
            before: json!(rec.spec.allow_list),
            after: json!(current.allow_list),
            detail: format!(
                "allow_list {} removed outside skyplan",
                join(missing.iter().map(|s| s.as_str()))
            ),
        });
    }
    let extra: Vec<&String> = entries
        .iter()
        .filter(|e| {
            let k = cidr_key(e);
            !owned.contains(&k) && !listed.contains(&k)
        })
        .collect();
    if !extra.is_empty() {
        drift.push(Drift {
            resource: svc.address(),
            kind: DriftKind::AllowlistEntryAdded,
            before: Value::Null,
            after: json!(extra),
            detail: format!(
                "{} added outside skyplan (left alone)",
                join(extra.iter().map(|s| s.as_str()))
            ),
        });
    }
    AllowListDrift {
        drift,
        listed_missing: !missing.is_empty(),
    }
}

struct AllowListDrift {
    drift: Vec<Drift>,
    /// Entries of the user's allow_list are missing (the update puts them back).
    listed_missing: bool,
}

fn replace(svc: &Service, current: &ServiceSpec, why: String) -> Planned {
    Planned {
        kind: ActionKind::ReplaceService {
            key: svc.key.clone(),
            from: current.clone(),
            to: svc.spec.clone(),
        },
        change: Change::Replace,
        summary: format!(
            "replace  {}  (destroys all data on {})",
            describe_spec(&svc.spec),
            current.name
        ),
        before: Some(spec_value(current)),
        after: Some(spec_value_new(&svc.spec)),
        wipes_data: true,
        reason: Some(why),
    }
}

/// Names of the fields that differ between two specs, in a fixed order.
pub fn changed_fields(a: &ServiceSpec, b: &ServiceSpec) -> Vec<&'static str> {
    let mut f = Vec::new();
    macro_rules! cmp {
        ($($field:ident),*) => { $( if a.$field != b.$field { f.push(stringify!($field)); } )* };
    }
    cmp!(
        name,
        service_type,
        topology,
        provider,
        region,
        architecture,
        version,
        ssl_enabled,
        volume_type,
        size,
        nodes,
        storage,
        volume_iops,
        allow_list,
        tags
    );
    f
}

// Allowlist entries compare as networks: one implementation, in `skyplan_api::cidr`.
pub use skyplan_api::cidr::{contains as contains_cidr, key as cidr_key};

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

pub use skyplan_api::cidr::host as cidr32;

pub fn describe_spec(s: &ServiceSpec) -> String {
    format!(
        "{}  {} {}  {}  {} GB{}",
        s.name,
        s.provider,
        s.region,
        s.size,
        s.storage,
        if s.ssl_enabled { "  ssl" } else { "" }
    )
}

pub fn spec_value(s: &ServiceSpec) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

/// A new service's values, with what only the cloud assigns marked unknown.
fn spec_value_new(s: &ServiceSpec) -> Value {
    let mut v = spec_value(s);
    if let Value::Object(m) = &mut v {
        for k in ["id", "fqdn", "port", "outbound_ips"] {
            m.insert(k.into(), json!(KNOWN_AFTER_APPLY));
        }
    }
    v
}
