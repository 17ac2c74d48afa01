//! desired topology × state × observed → the actions to take and the drift found.
//! Pure: no I/O. Every lookup is by key in a map, so the cost is linear in the number of
//! services (plus log factors).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::action::{ActionKind, Change, WireMode, KNOWN_AFTER_APPLY};
use super::drift::{Drift, DriftKind};
use super::PlanError;
use crate::observed::{Observed, ObservedReplication, ObservedService, RemoteService};
use crate::state::State;
use crate::topology::{Seed, Service, ServiceSpec, Topology};

/// MariaDB's "could not find GTID state requested by slave in any binlog files".
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u32 = 1236;

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
) -> Result<DiffOutput, PlanError> {
    let mut out = DiffOutput::default();
    let mut fates: BTreeMap<&str, Fate> = BTreeMap::new();
    let mut errors = Vec::new();

    for (key, svc) in &topology.services {
        match plan_service(svc, state, observed, &mut out) {
            Ok(fate) => {
                fates.insert(key.as_str(), fate);
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(e) = PlanError::combine(errors) {
        return Err(e);
    }

    plan_links(topology, state, observed, &fates, &mut out);

    // Services in state but gone from the topology are deleted, replicas first (the graph
    // orders them); links from or to them are torn down by plan_links.
    for (key, rec) in &state.resources.services {
        if topology.services.contains_key(key) {
            continue;
        }
        if matches!(
            observed.services.get(key),
            Some(ObservedService::Missing { .. })
        ) {
            continue; // already gone; the state entry is dropped by apply
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
            reason: None,
        });
    }
    Ok(out)
}

/// The service's current spec: state's record overlaid with what refresh saw.
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
    let Some(rec) = rec else {
        out.actions.push(create(None));
        return Ok(Fate::Create);
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
        Some(ObservedService::Present(r)) => Some(r),
        None => None,
    };

    if let Some(r) = remote {
        match r.status.as_str() {
            "failed" => {
                out.drift.push(Drift {
                    resource: address.clone(),
                    kind: DriftKind::ServiceFailed,
                    before: json!({ "status": rec.status.as_deref().unwrap_or("ready") }),
                    after: json!({ "status": "failed" }),
                    detail: format!("{} is in state failed", rec.spec.name),
                });
                check_protection(svc)?;
                out.actions
                    .push(replace(svc, &rec.spec, "the service failed".into()));
                return Ok(Fate::Replace);
            }
            "stopped" => out.drift.push(Drift {
                resource: address.clone(),
                kind: DriftKind::ServiceStopped,
                before: json!({ "status": "ready" }),
                after: json!({ "status": "stopped" }),
                detail: format!(
                    "{} is stopped; start it from the SkySQL portal",
                    rec.spec.name
                ),
            }),
            _ => {}
        }
        let resized: Vec<(&str, Value, Value)> = [
            ("size", json!(rec.spec.size), json!(r.size)),
            ("nodes", json!(rec.spec.nodes), json!(r.nodes)),
            ("storage", json!(rec.spec.storage), json!(r.storage)),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
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
                resource: address.clone(),
                kind: DriftKind::ServiceResized,
                before: Value::Object(before),
                after: Value::Object(after),
                detail: format!("{} changed outside skyplan", fields.join(", ")),
            });
        }
    }

    let mut current = current_spec(&rec.spec, remote);
    if let Some(entries) = observed.allowlists.get(key) {
        // The user's part of the allowlist is what is there minus the entries skyplan owns.
        let owned: BTreeSet<&str> = state
            .resources
            .allowlists
            .values()
            .filter(|a| &a.on == key)
            .flat_map(|a| a.entries.iter().map(String::as_str))
            .collect();
        let user: Vec<String> = entries
            .iter()
            .filter(|e| !owned.contains(e.as_str()))
            .cloned()
            .collect();
        let missing: Vec<&String> = rec
            .spec
            .allow_list
            .iter()
            .filter(|e| !user.contains(e))
            .collect();
        if !missing.is_empty() {
            out.drift.push(Drift {
                resource: address.clone(),
                kind: DriftKind::AllowListChanged,
                before: json!(rec.spec.allow_list),
                after: json!(user),
                detail: format!("allow_list entries removed outside skyplan: {missing:?}"),
            });
        }
        let extra: Vec<&String> = user
            .iter()
            .filter(|e| !rec.spec.allow_list.contains(e) && !svc.spec.allow_list.contains(e))
            .collect();
        if !extra.is_empty() {
            out.drift.push(Drift {
                resource: address.clone(),
                kind: DriftKind::AllowlistEntryAdded,
                before: Value::Null,
                after: json!(extra),
                detail: "entries added outside skyplan (left alone)".into(),
            });
        }
        // Entries added by hand are left alone: only the user's listed entries are managed.
        current.allow_list = rec
            .spec
            .allow_list
            .iter()
            .filter(|e| user.contains(e))
            .cloned()
            .collect();
    }

    let changed = changed_fields(&current, &svc.spec);
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
            &current,
            format!("{} cannot change in place", fields.join(", ")),
        ));
        return Ok(Fate::Replace);
    }
    if svc.spec.storage < current.storage {
        return Err(PlanError::StorageShrink {
            key: key.clone(),
            from: current.storage,
            to: svc.spec.storage,
        });
    }
    out.actions.push(Planned {
        kind: ActionKind::UpdateService {
            key: key.clone(),
            from: current.clone(),
            to: svc.spec.clone(),
        },
        change: Change::Update,
        summary: format!("update   {}  ({})", svc.spec.name, changed.join(", ")),
        before: Some(spec_value(&current)),
        after: Some(spec_value(&svc.spec)),
        wipes_data: false,
        reason: None,
    });
    Ok(Fate::Update)
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

/// Replication links: backups, restores, allowlist grants, wiring; and teardown of old links.
fn plan_links(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    fates: &BTreeMap<&str, Fate>,
    out: &mut DiffOutput,
) {
    let res = &state.resources;
    // (source, seed) → replicas that need a fresh copy of the source's data.
    let mut seeds: BTreeMap<(String, SeedKey), Vec<String>> = BTreeMap::new();
    let name_of = |key: &str| -> String {
        topology
            .services
            .get(key)
            .map(|s| s.spec.name.clone())
            .or_else(|| res.services.get(key).map(|r| r.spec.name.clone()))
            .unwrap_or_else(|| key.to_string())
    };

    for (r, svc) in &topology.services {
        let Some(repl) = &svc.replication else {
            continue;
        };
        let src = &repl.from;
        let fate_r = fates.get(r.as_str()).copied().unwrap_or(Fate::Keep);
        let fate_s = fates.get(src.as_str()).copied().unwrap_or(Fate::Keep);
        let rec_r = res.services.get(r);
        let link = res.replications.get(r);
        let restore = res.restores.get(r);
        let obs_repl = observed.replication.get(r);
        let repointed = link.is_some_and(|l| &l.source != src);

        // Replication health as observed (only when refresh looked and the link is recorded).
        let mut repair: Option<(WireMode, String)> = None;
        let mut reseed_reason: Option<String> = None;
        if let (Some(o), Some(l)) = (obs_repl, link) {
            if !fate_r.is_new() && !repointed {
                let src_rec = res.services.get(src);
                classify_replication(r, o, l, src_rec, svc, out, &mut repair, &mut reseed_reason);
            }
        }

        let seeded_ok = match (restore, rec_r) {
            (Some(rs), Some(rec)) => rs.completed && rs.target_id == rec.id,
            _ => false,
        };
        let needs_seed = repl.seed.uses_backup()
            && (fate_r.is_new()
                || fate_s.is_new()
                || repointed
                || !seeded_ok
                || reseed_reason.is_some());
        let needs_wire = needs_seed
            || fate_s.is_new()
            || fate_r.is_new()
            || link.is_none()
            || repointed
            || link.is_some_and(|l| !l.healthy)
            || repair.is_some();

        // Allowlist: the source must admit the replica's outbound IPs.
        let grant = res.allowlists.get(r);
        let mut grant_reason = None;
        if let (Some(g), Some(entries)) = (grant, observed.allowlists.get(src)) {
            let missing: Vec<&String> = g.entries.iter().filter(|e| !entries.contains(e)).collect();
            if g.on == *src && !missing.is_empty() && !fate_s.is_new() {
                out.drift.push(Drift {
                    resource: format!("allowlist.{src}.{r}"),
                    kind: DriftKind::AllowlistEntryRemoved,
                    before: json!(g.entries),
                    after: json!(entries),
                    detail: format!(
                        "entry {} for {} removed from {}'s allowlist",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        name_of(r),
                        name_of(src)
                    ),
                });
                grant_reason = Some("allowlist entry removed outside skyplan".to_string());
            }
        }
        let outbound_known =
            !fate_r.is_new() && rec_r.is_some_and(|rec| !rec.outbound_ips.is_empty());
        let needs_grant = grant.is_none_or(|g| &g.on != src)
            || fate_r.is_new()
            || fate_s.is_new()
            || grant_reason.is_some()
            || (outbound_known
                && grant.is_some_and(|g| {
                    rec_r.is_some_and(|rec| {
                        rec.outbound_ips
                            .iter()
                            .any(|ip| !g.entries.contains(&cidr32(ip)))
                    })
                }));

        if needs_seed {
            seeds
                .entry((src.clone(), SeedKey::from(&repl.seed)))
                .or_default()
                .push(r.clone());
            let wipe_reason = reseed_reason.clone();
            out.actions.push(Planned {
                kind: ActionKind::Restore {
                    source: src.clone(),
                    replica: r.clone(),
                },
                change: Change::Create,
                summary: format!(
                    "restore  backup.{src} -> {}   (wipes all data on {})",
                    name_of(r),
                    name_of(r)
                ),
                before: None,
                after: Some(json!({ "backup_of": name_of(src), "target": name_of(r) })),
                wipes_data: true,
                reason: wipe_reason,
            });
        }
        if needs_grant {
            let entries = if outbound_known {
                json!(rec_r.map(|rec| rec
                    .outbound_ips
                    .iter()
                    .map(|ip| cidr32(ip))
                    .collect::<Vec<_>>()))
            } else {
                json!(KNOWN_AFTER_APPLY)
            };
            let shown = if outbound_known {
                rec_r
                    .map(|rec| rec.outbound_ips.join(", "))
                    .unwrap_or_default()
            } else {
                KNOWN_AFTER_APPLY.to_string()
            };
            out.actions.push(Planned {
                kind: ActionKind::AllowlistGrant {
                    source: src.clone(),
                    replica: r.clone(),
                },
                change: Change::Create,
                summary: format!(
                    "grant    {} outbound IP {shown} on {}",
                    name_of(r),
                    name_of(src)
                ),
                before: grant.map(|g| json!({ "on": name_of(&g.on), "entries": g.entries })),
                after: Some(json!({ "on": name_of(src), "entries": entries })),
                wipes_data: false,
                reason: grant_reason,
            });
        }
        if needs_wire {
            let (mode, reason) = if needs_seed || !repl.seed.uses_backup() && link.is_none() {
                (WireMode::Fresh, reseed_reason.clone())
            } else if let Some((mode, why)) = repair.clone() {
                (mode, Some(why))
            } else {
                (WireMode::Fresh, None)
            };
            let gtid = match (&mode, needs_seed) {
                (WireMode::Fresh, true) => match &repl.seed {
                    Seed::Backup(_) | Seed::NewBackup | Seed::LatestBackup => {
                        json!(format!("the backup's GTID {KNOWN_AFTER_APPLY}"))
                    }
                    Seed::None => json!("the source's current GTID"),
                },
                (WireMode::Fresh, false) => json!(link
                    .and_then(|l| l.gtid_position.clone())
                    .unwrap_or_else(|| KNOWN_AFTER_APPLY.to_string())),
                (WireMode::Restart, _) => json!("where it stopped"),
                (WireMode::Rewire, _) => json!("the replica's own GTID position"),
            };
            let host = if fate_s.is_new() {
                json!(KNOWN_AFTER_APPLY)
            } else {
                res.services
                    .get(src)
                    .and_then(|s| s.fqdn.clone().zip(s.port))
                    .map(|(h, p)| json!(format!("{h}:{p}")))
                    .unwrap_or(json!(KNOWN_AFTER_APPLY))
            };
            let verb = match mode {
                WireMode::Fresh => "wire    ",
                WireMode::Restart => "restart ",
                WireMode::Rewire => "rewire  ",
            };
            let at = gtid.as_str().unwrap_or_default().to_string();
            out.actions.push(Planned {
                kind: ActionKind::Replicate {
                    source: src.clone(),
                    replica: r.clone(),
                    ssl: repl.ssl,
                    mode,
                },
                change: if mode == WireMode::Fresh && link.is_none() {
                    Change::Create
                } else {
                    Change::Update
                },
                summary: format!(
                    "{verb} {} -> {} at {at}{}",
                    name_of(src),
                    name_of(r),
                    if repl.ssl { ", ssl" } else { "" }
                ),
                before: link.map(|l| {
                    json!({
                        "source": name_of(&l.source),
                        "host": format!("{}:{}", l.source_host, l.source_port),
                        "gtid": l.gtid_position,
                        "ssl": l.ssl,
                    })
                }),
                after: Some(
                    json!({ "source": name_of(src), "host": host, "gtid": gtid, "ssl": repl.ssl }),
                ),
                wipes_data: false,
                reason,
            });
        }

        // A re-pointed link leaves an allowlist entry on the old source to revoke.
        if let Some(g) = grant {
            if &g.on != src {
                push_revoke(
                    &g.on, r, &g.entries, fates, topology, state, observed, out, &name_of,
                );
            }
        }
    }

    // Links in state that the topology no longer has: stop the replica, revoke its entries.
    for (r, link) in &res.replications {
        let still = topology
            .services
            .get(r)
            .and_then(|s| s.replication.as_ref())
            .is_some();
        if still {
            continue;
        }
        let replica_gone = matches!(
            observed.services.get(r),
            Some(ObservedService::Missing { .. })
        ) || !res.services.contains_key(r);
        if !replica_gone {
            out.actions.push(Planned {
                kind: ActionKind::StopReplication {
                    source: link.source.clone(),
                    replica: r.clone(),
                },
                change: Change::Delete,
                summary: format!(
                    "stop     {} -> {} (stop and reset replication)",
                    name_of(&link.source),
                    name_of(r)
                ),
                before: Some(json!({ "source": name_of(&link.source), "healthy": link.healthy })),
                after: None,
                wipes_data: false,
                reason: None,
            });
        }
        if let Some(g) = res.allowlists.get(r) {
            push_revoke(
                &g.on, r, &g.entries, fates, topology, state, observed, out, &name_of,
            );
        }
    }

    for ((source, seed), replicas) in seeds {
        let seed = seed.0;
        let what = match &seed {
            Seed::NewBackup | Seed::None => format!("full, once, of {}", name_of(&source)),
            Seed::LatestBackup => format!(
                "latest succeeded full backup of {} (known after apply)",
                name_of(&source)
            ),
            Seed::Backup(id) => format!("existing backup {id} of {}", name_of(&source)),
        };
        out.actions.push(Planned {
            kind: ActionKind::Backup { source: source.clone(), seed: seed.clone(), replicas },
            change: Change::Create,
            summary: format!("backup   {what}"),
            before: None,
            after: Some(json!({
                "source": name_of(&source),
                "seed": seed.to_string(),
                "backup_id": match &seed { Seed::Backup(id) => json!(id), _ => json!(KNOWN_AFTER_APPLY) },
                "gtid_position": KNOWN_AFTER_APPLY,
            })),
            wipes_data: false,
            reason: None,
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn push_revoke(
    on: &str,
    replica: &str,
    entries: &[String],
    fates: &BTreeMap<&str, Fate>,
    topology: &Topology,
    state: &State,
    observed: &Observed,
    out: &mut DiffOutput,
    name_of: &dyn Fn(&str) -> String,
) {
    // Nothing to revoke on a source that is going away or being replaced.
    let source_gone = !topology.services.contains_key(on)
        || fates.get(on).is_some_and(|f| f.is_new())
        || !state.resources.services.contains_key(on)
        || matches!(
            observed.services.get(on),
            Some(ObservedService::Missing { .. })
        );
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
            name_of(on)
        ),
        before: Some(json!({ "on": name_of(on), "entries": entries })),
        after: None,
        wipes_data: false,
        reason: None,
    });
}

#[allow(clippy::too_many_arguments)]
fn classify_replication(
    r: &str,
    o: &ObservedReplication,
    link: &crate::state::ReplicationRecord,
    src_rec: Option<&crate::state::ServiceRecord>,
    svc: &Service,
    out: &mut DiffOutput,
    repair: &mut Option<(WireMode, String)>,
    reseed: &mut Option<String>,
) {
    let resource = format!("replication.{r}");
    let expected = json!({ "io_running": true, "sql_running": true, "source": format!("{}:{}", link.source_host, link.source_port) });
    let seen = serde_json::to_value(o).unwrap_or(Value::Null);
    if !o.configured {
        out.drift.push(Drift {
            resource,
            kind: DriftKind::ReplicationMissing,
            before: expected,
            after: seen,
            detail: "no replication configured on the replica (reset outside skyplan)".into(),
        });
        *repair = Some((
            WireMode::Rewire,
            "replication was reset outside skyplan".into(),
        ));
        return;
    }
    let host_ok = o.master_host.as_deref() == Some(link.source_host.as_str())
        && o.master_port == Some(link.source_port);
    let src_moved = src_rec.is_some_and(|s| {
        s.fqdn.as_deref() != Some(link.source_host.as_str()) || s.port != Some(link.source_port)
    });
    if !host_ok || src_moved {
        out.drift.push(Drift {
            resource,
            kind: DriftKind::ReplicationRepointed,
            before: expected,
            after: seen,
            detail: format!(
                "replicating from {}:{} instead of {}:{}",
                o.master_host.as_deref().unwrap_or("?"),
                o.master_port
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "?".into()),
                link.source_host,
                link.source_port
            ),
        });
        *reseed = Some("replica points at another primary; re-seed from the source".into());
        return;
    }
    if o.last_io_errno == ER_MASTER_FATAL_ERROR_READING_BINLOG {
        out.drift.push(Drift {
            resource,
            kind: DriftKind::ReplicationBroken,
            before: expected,
            after: seen,
            detail: format!(
                "IO error {}: {} (position gone from the source's binlogs)",
                o.last_io_errno, o.last_io_error
            ),
        });
        *reseed = Some("the replica's GTID position is gone from the source's binlogs".into());
        return;
    }
    if o.last_sql_errno != 0 {
        out.drift.push(Drift {
            resource,
            kind: DriftKind::ReplicationBroken,
            before: expected,
            after: seen,
            detail: format!("SQL error {}: {}", o.last_sql_errno, o.last_sql_error),
        });
        *reseed = Some(format!(
            "replication broke on SQL error {}; re-seed the replica",
            o.last_sql_errno
        ));
        return;
    }
    if !o.io_running || !o.sql_running {
        let broken = o.last_io_errno != 0;
        out.drift.push(Drift {
            resource,
            kind: if broken {
                DriftKind::ReplicationBroken
            } else {
                DriftKind::ReplicationStopped
            },
            before: expected,
            after: seen,
            detail: if broken {
                format!("IO error {}: {}", o.last_io_errno, o.last_io_error)
            } else {
                "replication threads are stopped".into()
            },
        });
        *repair = Some((
            WireMode::Restart,
            "replication stopped outside skyplan".into(),
        ));
        return;
    }
    let max_lag = svc
        .replication
        .as_ref()
        .map(|r| r.max_lag_seconds)
        .unwrap_or(u64::MAX);
    if let Some(lag) = o.seconds_behind_master {
        if lag > max_lag {
            out.drift.push(Drift {
                resource,
                kind: DriftKind::ReplicationLagging,
                before: json!({ "max_lag_seconds": max_lag }),
                after: json!({ "seconds_behind_master": lag }),
                detail: format!("{lag} s behind the source (threshold {max_lag} s)"),
            });
        }
    }
}

/// Seeds ordered for grouping (Seed itself has no Ord).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeedKey(Seed);

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

pub fn cidr32(ip: &str) -> String {
    if ip.contains('/') {
        ip.to_string()
    } else {
        format!("{ip}/32")
    }
}

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
