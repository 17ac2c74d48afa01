//! Adoption: a service of the topology that the state does not record, found by its name
//! (or its pinned id), is taken over rather than created twice. The rules of what may be
//! adopted (not another workspace's, nothing that cannot change in place differs) and the
//! spec an adopted service really has are one rule for plan, `import` and the apply steps
//! that check again just before adopting.

use skyplan_api::types::ServiceStatus;

use super::allowlist::contains_cidr;
use super::{changed_fields, describe_spec, spec_value, DiffOutput, Fate, Planned};
use crate::observed::{Observed, RemoteService};
use crate::plan::action::{ActionKind, Change};
use crate::plan::PlanError;
use crate::state::State;
use crate::topology::{Service, ServiceSpec};

/// A service the state does not record: adopted when exactly one with its name (or its
/// pinned id) exists, created when none does, refused when several do.
pub(super) fn unrecorded(
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::fixtures::{guide_topology, remote};
    use super::*;

    const LINEAGE: &str = "00000000-0000-4000-8000-000000000000";

    fn primary() -> Service {
        guide_topology().services["primary"].clone()
    }

    fn create(svc: &Service) -> Planned {
        Planned {
            kind: ActionKind::CreateService {
                key: svc.key.clone(),
                spec: svc.spec.clone(),
            },
            change: Change::Create,
            summary: "create".into(),
            before: None,
            after: None,
            wipes_data: false,
            reason: None,
        }
    }

    #[test]
    fn only_a_reported_difference_in_what_cannot_change_in_place_conflicts() {
        let spec = ServiceSpec::for_test("svc-a");
        let mut existing = remote("x-1", &spec);
        (existing.region, existing.architecture) = ("US-EAST4".into(), String::new());
        assert!(adoption_conflicts(&spec, &existing).is_empty());
        // Size, nodes and storage change in place: an update after the adoption.
        existing.size = "sky-4x16".into();
        assert!(adoption_conflicts(&spec, &existing).is_empty());
        (existing.region, existing.ssl_enabled) = ("europe-west1".into(), false);
        let c = adoption_conflicts(&spec, &existing);
        let fields: Vec<&str> = c.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["region", "ssl_enabled"]);
        assert_eq!(c[0].real_toml, "\"europe-west1\"");
        assert_eq!((c[1].real.as_str(), c[1].file.as_str()), ("false", "true"));
    }

    #[test]
    fn another_workspaces_service_is_never_adopted() {
        let spec = ServiceSpec::for_test("svc-a");
        let mut existing = remote("x-1", &spec);
        existing.tags = crate::ownership::tags(&BTreeMap::new(), "other-lineage", "db");
        let e = check_adoptable("a", &spec, &existing, LINEAGE).unwrap_err();
        assert!(
            matches!(&e, PlanError::OwnedElsewhere { lineage, owner_key, .. } if lineage == "other-lineage" && owner_key == "db"),
            "{e:?}"
        );
        // This workspace's own tag: a service its state lost track of, ours to take back.
        existing.tags = crate::ownership::tags(&BTreeMap::new(), LINEAGE, "a");
        check_adoptable("a", &spec, &existing, LINEAGE).unwrap();
        existing.provider = "aws".into();
        let e = check_adoptable("a", &spec, &existing, LINEAGE).unwrap_err();
        assert!(matches!(e, PlanError::AdoptionConflict { .. }), "{e:?}");
    }

    #[test]
    fn the_adopted_spec_is_what_the_api_reports_and_the_topology_for_the_rest() {
        let mut want = ServiceSpec::for_test("svc-a");
        want.allow_list = vec!["1.2.3.4/32".into(), "5.6.7.8/32".into()];
        let mut existing = remote("x-1", &want);
        (existing.size, existing.nodes, existing.storage) = ("sky-4x16".into(), 0, 200);
        let from = adopted_spec(&want, &existing, &["1.2.3.4".to_string(), "9.9.9.9".into()]);
        assert_eq!(from.size, "sky-4x16");
        assert_eq!(
            from.nodes, want.nodes,
            "left out by the API: the topology's"
        );
        assert_eq!(from.storage, 200);
        assert_eq!(
            from.allow_list,
            ["1.2.3.4/32"],
            "only listed entries present"
        );
    }

    #[test]
    fn one_service_by_the_name_is_adopted_none_created_several_refused() {
        let svc = primary();
        let state = State::with_lineage(LINEAGE);
        let mut observed = Observed {
            refreshed: true,
            ..Observed::default()
        };
        let mut out = DiffOutput::default();
        let fate = unrecorded(&svc, &state, &observed, &mut out, create(&svc)).unwrap();
        assert_eq!(
            (fate, out.actions[0].change),
            (Fate::Create, Change::Create)
        );

        let mut existing = remote("x-1", &svc.spec);
        existing.size = "sky-4x16".into();
        observed
            .unmanaged
            .insert("primary".into(), vec![existing.clone()]);
        let mut out = DiffOutput::default();
        let fate = unrecorded(&svc, &state, &observed, &mut out, create(&svc)).unwrap();
        assert_eq!(fate, Fate::Update, "its size is then updated");
        let [a] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        assert_eq!(a.change, Change::Adopt);
        assert!(!a.wipes_data);
        assert!(
            a.summary.starts_with("adopt    svc-primary")
                && a.summary.ends_with("(x-1); then update size"),
            "{}",
            a.summary
        );

        let mut other = existing.clone();
        other.id = "x-2".into();
        observed
            .unmanaged
            .insert("primary".into(), vec![existing, other]);
        let e = unrecorded(&svc, &state, &observed, &mut out, create(&svc)).unwrap_err();
        assert!(
            matches!(&e, PlanError::AmbiguousName { count: 2, ids, .. } if ids == &["x-1", "x-2"]),
            "{e:?}"
        );
    }

    #[test]
    fn a_pinned_id_not_found_or_a_service_being_deleted_is_not_adopted() {
        let mut svc = primary();
        let state = State::with_lineage(LINEAGE);
        let mut observed = Observed {
            refreshed: true,
            ..Observed::default()
        };
        svc.id = Some("x-9".into());
        let e = unrecorded(
            &svc,
            &state,
            &observed,
            &mut DiffOutput::default(),
            create(&svc),
        )
        .unwrap_err();
        assert!(matches!(e, PlanError::PinnedIdMissing { .. }), "{e:?}");

        let mut existing = remote("x-1", &svc.spec);
        existing.status = ServiceStatus::PendingDelete;
        observed.unmanaged.insert("primary".into(), vec![existing]);
        let e = unrecorded(
            &svc,
            &state,
            &observed,
            &mut DiffOutput::default(),
            create(&svc),
        )
        .unwrap_err();
        assert!(matches!(e, PlanError::NotAdoptable { .. }), "{e:?}");
    }
}
