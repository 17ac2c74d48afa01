//! Server configuration: each managed service's custom configuration (SkySQL's Configuration
//! Manager) holds the topology's `config` variables and `read_only` by role; the running
//! server is held to it.
//!
//! Three places can differ from the topology, and each is said and repaired:
//! - the configuration itself (edited outside skyplan, or the file changed): its values are
//!   set again (`config.KEY`);
//! - the running server's dynamic variables (a `SET GLOBAL` by hand): set again on the server;
//! - a variable that takes effect only at a start: the server restarts (`restart.KEY`, a
//!   flagged step). A replica restored in the same plan needs none: the restore starts it
//!   with its configuration.
//!
//! `read_only` is never set on the running server here: the role steps (fence, open,
//! switchover, failover) own that moment.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use super::{DiffOutput, Fate, Planned};
use crate::config::{self, ROLE_VARIABLE};
use crate::observed::{Observed, ObservedService};
use crate::plan::action::{ActionKind, Change, KNOWN_AFTER_APPLY};
use crate::plan::drift::{Drift, DriftKind};
use crate::state::State;
use crate::topology::{Service, Topology};

pub(super) fn plan_configs(
    topology: &Topology,
    state: &State,
    observed: &Observed,
    fates: &BTreeMap<&str, Fate>,
    out: &mut DiffOutput,
) {
    let restored: BTreeSet<String> = out
        .actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::Restore { replica, .. } => Some(replica.clone()),
            _ => None,
        })
        .collect();
    for (key, svc) in &topology.services {
        let Some(&fate) = fates.get(key.as_str()) else {
            continue;
        };
        if matches!(
            observed.services.get(key),
            Some(ObservedService::Unreachable { .. })
        ) {
            continue;
        }
        plan_one(svc, fate, state, observed, restored.contains(key), out);
    }
}

fn plan_one(
    svc: &Service,
    fate: Fate,
    state: &State,
    observed: &Observed,
    restored: bool,
    out: &mut DiffOutput,
) {
    let key = &svc.key;
    let rec = state.resources.services.get(key);
    let vars = observed.config_vars.get(&svc.spec.topology);
    let desired = desired_values(svc, rec, vars, observed.refreshed);
    let recorded_id = rec.and_then(|r| r.config_id.clone());
    if desired.is_empty() && recorded_id.is_none() {
        return;
    }
    let seen = observed.configs.get(key);
    let (config_id, current) = current_values(recorded_id.as_ref(), seen, rec);
    config_drift(
        (key, role_of(svc)),
        recorded_id.as_ref(),
        config_id.as_ref(),
        rec,
        seen,
        &current,
        out,
    );
    let set: BTreeMap<String, String> = desired
        .iter()
        .filter(|(n, v)| !current.get(*n).is_some_and(|c| config::same(c, v)))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let unset: Vec<String> = current
        .keys()
        .filter(|n| !desired.contains_key(*n))
        .cloned()
        .collect();
    let attached = match observed.services.get(key) {
        Some(ObservedService::Present(r)) => r.config_id.clone(),
        _ => recorded_id.clone(),
    };
    let attach = fate.is_new() || config_id.is_none() || attached != config_id;
    // The running server, held to the configuration (read_only aside: role steps own it).
    let running = seen.map(|c| &c.running);
    let (live, restart) = running_changes(key, &desired, vars, fate, running, &current, out);
    if !set.is_empty() || !unset.is_empty() || attach || !live.is_empty() {
        out.actions.push(configure(
            svc, config_id, &current, &desired, set, unset, attach, live, fate,
        ));
    }
    // A replica restored in this plan starts again with its configuration.
    if !restart.is_empty() && !restored {
        out.actions.push(restart_action(svc, restart));
    }
}

/// What the service's configuration should hold. Offline the catalog is unknown: the role is
/// kept in the configuration as recorded.
fn desired_values(
    svc: &Service,
    rec: Option<&crate::state::ServiceRecord>,
    vars: Option<&config::Variables>,
    refreshed: bool,
) -> BTreeMap<String, String> {
    let mut desired = config::desired(svc, vars);
    if !refreshed && rec.is_some_and(|r| r.config.contains_key(ROLE_VARIABLE)) {
        desired.insert(ROLE_VARIABLE.into(), role_of(svc).into());
    }
    desired
}

/// The configuration's id and what it holds now: as refresh read it, or as recorded (no id:
/// none, or the recorded one is gone).
fn current_values(
    recorded_id: Option<&String>,
    seen: Option<&crate::observed::ObservedConfig>,
    rec: Option<&crate::state::ServiceRecord>,
) -> (Option<String>, BTreeMap<String, String>) {
    match (recorded_id, seen) {
        (Some(_), Some(c)) if c.values.is_none() => (None, BTreeMap::new()),
        (Some(id), Some(c)) => (Some(id.clone()), c.values.clone().unwrap_or_default()),
        (Some(id), None) => (
            Some(id.clone()),
            rec.map(|r| r.config.clone()).unwrap_or_default(),
        ),
        (None, _) => (None, BTreeMap::new()),
    }
}

/// The role the topology gives `svc`, as its configuration's `read_only` says it.
fn role_of(svc: &Service) -> &'static str {
    if svc.replication.is_some() {
        "ON"
    } else {
        "OFF"
    }
}

/// The configuration deleted, or changed, outside skyplan. `read_only` holding the role the
/// topology gives the service is not drift: skyplan's role steps write it at the moment of a
/// role change, and a run killed between that write and the state's record left it so
/// (randomized DR test, a kill during "keeping read_only = OFF in the configuration").
fn config_drift(
    (key, role): (&str, &str),
    recorded_id: Option<&String>,
    config_id: Option<&String>,
    rec: Option<&crate::state::ServiceRecord>,
    seen: Option<&crate::observed::ObservedConfig>,
    current: &BTreeMap<String, String>,
    out: &mut DiffOutput,
) {
    if let (Some(id), None, Some(r)) = (recorded_id, config_id, rec) {
        out.drift.push(Drift {
            resource: format!("config.{key}"),
            kind: DriftKind::ConfigChanged,
            before: json!({ "config_id": id }),
            after: Value::Null,
            detail: format!(
                "its configuration {id} no longer exists (deleted outside skyplan); a new one is made with {}",
                describe(&r.config.keys().cloned().collect::<Vec<_>>(), &r.config, &BTreeMap::new())
            ),
        });
    }
    if let (Some(id), Some(r), Some(_)) = (config_id, rec, seen) {
        // The configuration changed outside skyplan: what it holds is not what was set.
        let mut changed = changed_names(&r.config, current);
        changed.retain(|n| {
            n != ROLE_VARIABLE || !current.get(n).is_some_and(|v| config::same(v, role))
        });
        if !changed.is_empty() {
            out.drift.push(Drift {
                resource: format!("config.{key}"),
                kind: DriftKind::ConfigChanged,
                before: values_json(&r.config),
                after: values_json(current),
                detail: format!(
                    "its configuration {id} was changed outside skyplan: {}",
                    describe(&changed, &r.config, current)
                ),
            });
        }
    }
}

/// What the running server needs: values set live, and variables that take effect only at a
/// start (a restart). A running value that differs from what the configuration already holds
/// is drift.
fn running_changes(
    key: &str,
    desired: &BTreeMap<String, String>,
    vars: Option<&config::Variables>,
    fate: Fate,
    running: Option<&BTreeMap<String, String>>,
    current: &BTreeMap<String, String>,
    out: &mut DiffOutput,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut live = BTreeMap::new();
    let mut restart = Vec::new();
    let mut running_drift = Vec::new();
    for (name, want) in desired.iter().filter(|(n, _)| *n != ROLE_VARIABLE) {
        let needs_restart = vars
            .and_then(|v| v.get(name))
            .is_some_and(|v| v.requires_restart);
        if fate.is_new() {
            // A new server starts without its configuration: attached after the create.
            if needs_restart {
                restart.push(name.clone());
            } else {
                live.insert(name.clone(), want.clone());
            }
            continue;
        }
        let Some(now) = running.and_then(|r| r.get(name)) else {
            continue;
        };
        if config::same(now, want) {
            continue;
        }
        let in_config = current.get(name).is_some_and(|c| config::same(c, want));
        if in_config {
            running_drift.push((name.clone(), now.clone(), want.clone()));
        }
        if needs_restart {
            restart.push(name.clone());
        } else {
            live.insert(name.clone(), want.clone());
        }
    }
    if !running_drift.is_empty() {
        out.drift.push(Drift {
            resource: format!("config.{key}"),
            kind: DriftKind::ConfigChanged,
            before: Value::Object(
                running_drift
                    .iter()
                    .map(|(n, _, w)| (n.clone(), json!(w)))
                    .collect(),
            ),
            after: Value::Object(
                running_drift
                    .iter()
                    .map(|(n, now, _)| (n.clone(), json!(now)))
                    .collect(),
            ),
            detail: format!(
                "the running server differs from its configuration: {}",
                running_drift
                    .iter()
                    .map(|(n, now, w)| format!("{n} is {now}, not {w}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    (live, restart)
}

/// `restart.KEY`: the variables that take effect only when the server starts.
fn restart_action(svc: &Service, restart: Vec<String>) -> Planned {
    Planned {
        kind: ActionKind::RestartService {
            key: svc.key.clone(),
            variables: restart.clone(),
        },
        change: Change::Update,
        summary: format!(
            "restart  {}  (its clients are disconnected; {} {} only when the server starts)",
            svc.spec.name,
            restart.join(", "),
            if restart.len() == 1 {
                "takes effect"
            } else {
                "take effect"
            }
        ),
        before: None,
        after: None,
        wipes_data: false,
        reason: None,
    }
}

#[allow(clippy::too_many_arguments)]
fn configure(
    svc: &Service,
    config_id: Option<String>,
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
    set: BTreeMap<String, String>,
    unset: Vec<String>,
    attach: bool,
    live: BTreeMap<String, String>,
    fate: Fate,
) -> Planned {
    let name = config::config_name(&svc.spec.name);
    let mut parts: Vec<String> = set.iter().map(|(n, v)| format!("{n} = {v}")).collect();
    parts.extend(unset.iter().map(|n| format!("unset {n}")));
    if attach && config_id.is_some() {
        parts.push("attach it".into());
    }
    if !live.is_empty() {
        parts.push(format!(
            "and on the running server: {}",
            live.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let summary = match &config_id {
        None => format!(
            "create   configuration {name} for {} and attach it: {}{}",
            svc.spec.name,
            desired
                .iter()
                .map(|(n, v)| format!("{n} = {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            // What the step also does on the server, said here too.
            if live.is_empty() {
                String::new()
            } else {
                format!(
                    "; and on the running server: {}",
                    live.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        ),
        Some(id) => format!("configure {} ({id}): {}", svc.spec.name, parts.join(", ")),
    };
    Planned {
        kind: ActionKind::ConfigureService {
            key: svc.key.clone(),
            config_id: config_id.clone(),
            name,
            topology: svc.spec.topology.clone(),
            version: svc.spec.version.clone(),
            values: desired.clone(),
            set,
            unset,
            attach,
            live,
        },
        change: if config_id.is_none() {
            Change::Create
        } else {
            Change::Update
        },
        summary,
        before: config_id.as_ref().map(|_| values_json(current)),
        after: Some({
            let mut v = values_json(desired);
            if fate.is_new() {
                if let Value::Object(m) = &mut v {
                    m.insert("config_id".into(), json!(KNOWN_AFTER_APPLY));
                }
            }
            v
        }),
        wipes_data: false,
        reason: None,
    }
}

fn values_json(values: &BTreeMap<String, String>) -> Value {
    Value::Object(
        values
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect::<Map<String, Value>>(),
    )
}

/// Variables whose value differs between `a` and `b` (or is in one only).
fn changed_names(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    a.keys()
        .chain(b.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|n| match (a.get(*n), b.get(*n)) {
            (Some(x), Some(y)) => !config::same(x, y),
            _ => true,
        })
        .cloned()
        .collect()
}

fn describe(
    names: &[String],
    was: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
) -> String {
    names
        .iter()
        .map(|n| {
            let show = |v: Option<&String>| v.map_or("(unset)".to_string(), Clone::clone);
            format!("{n} {} -> {}", show(was.get(n)), show(now.get(n)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
