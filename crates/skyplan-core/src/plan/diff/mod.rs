//! desired topology × state × observed → the actions to take and the drift found.
//! Pure: no I/O. Every lookup is by key in a map, so the cost is linear in the number of
//! services (plus log factors).
//!
//! This file holds the entry point ([`diff`]), what every part shares (the [`Planned`]
//! action, the [`DiffOutput`], a service's `Fate` in this plan) and what is decided for the
//! service set as a whole: services the topology drops (deleted), and services or databases
//! that do not answer. Each decision unit has its own file: `service` (one service: create,
//! update, replace), `adopt` (taking over an existing service), `allowlist` (the user's
//! entries and their drift), `links` (replication), `roles` (switchovers and failovers),
//! `config` (server configuration), `power` (start and stop).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::action::{ActionKind, Change};
use super::drift::{Drift, DriftKind};
use super::PlanError;
use crate::observed::{Observed, ObservedService};
use crate::state::State;
use crate::topology::{ServiceSpec, Topology};

mod adopt;
mod allowlist;
mod config;
#[cfg(test)]
mod fixtures;
mod links;
mod power;
pub mod roles;
mod service;

pub use adopt::{adopted_spec, adoption_conflicts, check_adoptable, Conflict};
pub use allowlist::{cidr32, cidr_key, contains_cidr};

use allowlist::owned_entries;
use service::{check_protection, plan_service, replace};

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

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
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

#[cfg(test)]
mod tests {
    use super::fixtures::{guide_state, guide_topology, seen, topology};
    use super::*;
    use crate::plan::PlanFlags;

    fn summaries(out: &DiffOutput) -> Vec<&str> {
        out.actions.iter().map(|a| a.summary.as_str()).collect()
    }

    #[test]
    fn the_guide_as_applied_plans_nothing() {
        let (t, s) = (guide_topology(), guide_state());
        for observed in [Observed::offline(), seen(&s)] {
            let out = diff(&t, &s, &observed, &PlanFlags::default()).unwrap();
            assert!(out.actions.is_empty(), "{:?}", summaries(&out));
            assert!(out.drift.is_empty(), "{:?}", out.drift);
            assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        }
    }

    #[test]
    fn a_service_the_topology_drops_is_deleted_and_its_link_torn_down() {
        let t = topology(
            "[services.primary]\nname = \"svc-primary\"\nprovider = \"gcp\"\nregion = \"us-east4\"\nsize = \"sky-2x8\"\nstorage = 100\n",
        );
        let s = guide_state();
        let out = diff(&t, &s, &Observed::offline(), &PlanFlags::default()).unwrap();
        let delete = out
            .actions
            .iter()
            .find(
                |a| matches!(&a.kind, ActionKind::DeleteService { key, .. } if key == "secondary"),
            )
            .expect("the secondary is deleted");
        assert!(delete.wipes_data);
        assert_eq!(
            delete.summary,
            "delete   svc-secondary  (destroys all its data)"
        );
        assert_eq!(
            delete.reason.as_deref(),
            Some("[services.secondary] is no longer in the topology")
        );
        let kinds: Vec<&ActionKind> = out.actions.iter().map(|a| &a.kind).collect();
        assert!(kinds.iter().any(
            |k| matches!(k, ActionKind::StopReplication { replica, .. } if replica == "secondary")
        ));
        assert!(kinds.iter().any(
            |k| matches!(k, ActionKind::AllowlistRevoke { source, .. } if source == "primary")
        ));
    }

    #[test]
    fn a_dropped_service_already_deleted_is_only_forgotten() {
        let t = topology(
            "[services.primary]\nname = \"svc-primary\"\nprovider = \"gcp\"\nregion = \"us-east4\"\nsize = \"sky-2x8\"\nstorage = 100\n",
        );
        let s = guide_state();
        let mut o = seen(&s);
        o.services.insert(
            "secondary".into(),
            ObservedService::Missing {
                id: "svc-secondary".into(),
            },
        );
        let out = diff(&t, &s, &o, &PlanFlags::default()).unwrap();
        let forget = out
            .actions
            .iter()
            .find(|a| matches!(a.kind, ActionKind::DeleteService { .. }))
            .unwrap();
        assert!(!forget.wipes_data);
        assert!(
            forget.summary.starts_with("forget   svc-secondary"),
            "{}",
            forget.summary
        );
        assert!(out
            .drift
            .iter()
            .any(|d| d.kind == DriftKind::ServiceDeleted && d.resource == "service.secondary"));
        // A replica gone from the state's services is not stopped; only forgotten.
        assert!(!out
            .actions
            .iter()
            .any(|a| matches!(a.kind, ActionKind::StopReplication { .. })));
    }

    #[test]
    fn a_kept_service_whose_api_does_not_answer_fails_the_plan() {
        let (t, s) = (guide_topology(), guide_state());
        let mut o = seen(&s);
        o.services.insert(
            "secondary".into(),
            ObservedService::Unreachable {
                id: "svc-secondary".into(),
                why: "timed out".into(),
            },
        );
        let e = diff(&t, &s, &o, &PlanFlags::default()).unwrap_err();
        assert!(
            matches!(&e, PlanError::Unreachable { key, why } if key == "secondary" && why == "timed out"),
            "{e:?}"
        );
    }

    #[test]
    fn a_database_that_does_not_answer_is_drift_that_blocks_apply() {
        let (t, s) = (guide_topology(), guide_state());
        let mut o = seen(&s);
        o.unreachable
            .insert("secondary".into(), "connection refused".into());
        let out = diff(&t, &s, &o, &PlanFlags::default()).unwrap();
        assert!(out.actions.is_empty(), "{:?}", summaries(&out));
        let [d] = out.drift.as_slice() else {
            panic!("{:?}", out.drift)
        };
        assert_eq!(d.kind, DriftKind::DatabaseUnreachable);
        assert!(
            d.detail.contains("apply refuses until it answers"),
            "{}",
            d.detail
        );
    }

    #[test]
    fn replace_requested_of_a_primary_replaces_it_unless_protected() {
        let (mut t, s) = (guide_topology(), guide_state());
        let flags = PlanFlags {
            replace: vec!["service.primary".into()],
            ..PlanFlags::default()
        };
        let out = diff(&t, &s, &Observed::offline(), &flags).unwrap();
        let replace = out
            .actions
            .iter()
            .find(|a| matches!(a.kind, ActionKind::ReplaceService { .. }))
            .unwrap();
        assert_eq!(replace.reason.as_deref(), Some("requested with --replace"));
        // Its replica is re-seeded from the new, empty primary.
        assert!(out.actions.iter().any(
            |a| matches!(&a.kind, ActionKind::Restore { replica, .. } if replica == "secondary")
        ));
        t.services.get_mut("primary").unwrap().deletion_protection = true;
        let e = diff(&t, &s, &Observed::offline(), &flags).unwrap_err();
        assert!(matches!(e, PlanError::DeletionProtected { .. }), "{e:?}");
    }

    #[test]
    fn changed_fields_are_named_in_a_fixed_order() {
        let a = ServiceSpec::for_test("a");
        let mut b = a.clone();
        b.storage = 200;
        b.region = "europe-west1".into();
        b.allow_list = vec!["10.0.0.0/24".into()];
        assert_eq!(changed_fields(&a, &b), ["region", "storage", "allow_list"]);
        assert!(changed_fields(&a, &a).is_empty());
    }
}
