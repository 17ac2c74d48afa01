//! Planning one service of the topology that the state records: kept, updated in place, or
//! replaced (a field that cannot change in place, a failed service, `--replace`), with the
//! drift refresh saw on it (resized outside skyplan, deleted outside skyplan). What it is
//! trusted to report, and what an update puts back, are decided here; a service the state
//! does not record goes to `adopt`, its allowlist drift to `allowlist`.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use skyplan_api::types::ServiceStatus;

use super::adopt::unrecorded;
use super::allowlist::allow_list_drift;
use super::{changed_fields, describe_spec, spec_value, DiffOutput, Fate, Planned};
use crate::observed::{Observed, ObservedService, RemoteService};
use crate::plan::action::{ActionKind, Change, KNOWN_AFTER_APPLY};
use crate::plan::drift::{Drift, DriftKind};
use crate::plan::PlanError;
use crate::state::State;
use crate::topology::{Service, ServiceSpec};

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

pub(super) fn plan_service(
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

pub(super) fn check_protection(svc: &Service) -> Result<(), PlanError> {
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

pub(super) fn replace(svc: &Service, current: &ServiceSpec, why: String) -> Planned {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::fixtures::{guide_state, guide_topology, remote, seen};
    use super::*;

    fn primary() -> Service {
        guide_topology().services["primary"].clone()
    }

    #[test]
    fn what_the_api_leaves_out_or_spells_otherwise_keeps_the_recorded_value() {
        let rec = ServiceSpec::for_test("svc-primary");
        let mut r = remote("svc-primary", &rec);
        (r.size, r.nodes, r.storage) = (String::new(), 0, 0);
        (r.provider, r.region, r.ssl_enabled) = ("GCP".into(), "US-EAST4".into(), false);
        let t = trusted(&r, &rec);
        assert_eq!((t.size.as_str(), t.nodes, t.storage), ("sky-2x8", 1, 100));
        assert_eq!(
            (t.provider.as_str(), t.region.as_str()),
            ("gcp", "us-east4")
        );
        assert!(t.ssl_enabled, "ssl_enabled is always the recorded one");
        // A real change is kept: it is what the service is now.
        r.region = "europe-west1".into();
        assert_eq!(trusted(&r, &rec).region, "europe-west1");
        assert_eq!(
            current_spec(&rec, Some(&trusted(&r, &rec))).region,
            "europe-west1"
        );
        assert_eq!(current_spec(&rec, None), rec);
    }

    #[test]
    fn a_field_that_cannot_change_in_place_replaces_and_others_update() {
        let svc = primary();
        let mut out = DiffOutput::default();
        let mut current = svc.spec.clone();
        current.region = "europe-west1".into();
        let fate = update_or_replace(&svc, &current, &svc.spec, &[], &mut out).unwrap();
        assert_eq!(fate, Fate::Replace);
        let [a] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        assert!(a.wipes_data);
        assert_eq!(a.reason.as_deref(), Some("region cannot change in place"));
        assert!(
            a.summary.starts_with("replace  svc-primary"),
            "{}",
            a.summary
        );

        let mut out = DiffOutput::default();
        let mut current = svc.spec.clone();
        current.size = "sky-4x16".into();
        let fate = update_or_replace(&svc, &current, &svc.spec, &["size"], &mut out).unwrap();
        assert_eq!(fate, Fate::Update);
        let [a] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        assert_eq!(a.summary, "update   svc-primary  (size)");
        assert_eq!(a.reason.as_deref(), Some("size changed outside skyplan"));
        assert!(!a.wipes_data);

        let mut out = DiffOutput::default();
        let same = update_or_replace(&svc, &svc.spec, &svc.spec, &[], &mut out).unwrap();
        assert_eq!(same, Fate::Keep);
        assert!(out.actions.is_empty());
    }

    #[test]
    fn storage_never_shrinks_and_a_protected_service_is_not_replaced() {
        let mut svc = primary();
        let mut current = svc.spec.clone();
        current.storage = 200;
        let e = update_or_replace(&svc, &current, &svc.spec, &[], &mut DiffOutput::default())
            .unwrap_err();
        assert!(
            matches!(
                e,
                PlanError::StorageShrink {
                    from: 200,
                    to: 100,
                    ..
                }
            ),
            "{e:?}"
        );
        svc.deletion_protection = true;
        let mut current = svc.spec.clone();
        current.provider = "aws".into();
        let e = update_or_replace(&svc, &current, &svc.spec, &[], &mut DiffOutput::default())
            .unwrap_err();
        assert!(matches!(e, PlanError::DeletionProtected { .. }), "{e:?}");
    }

    #[test]
    fn a_resize_by_hand_is_drift_unless_it_is_what_the_topology_asks() {
        let (mut svc, s) = (primary(), guide_state());
        let rec = &s.resources.services["primary"];
        let mut r = remote(&rec.id, &rec.spec);
        r.size = "sky-4x16".into();
        let mut out = DiffOutput::default();
        assert_eq!(
            resized_outside(&svc, rec, &r, "service.primary", &mut out),
            ["size"]
        );
        let [d] = out.drift.as_slice() else {
            panic!("{:?}", out.drift)
        };
        assert_eq!(d.kind, DriftKind::ServiceResized);
        assert_eq!(d.detail, "size changed outside skyplan");
        assert_eq!(d.after, json!({ "size": "sky-4x16" }));

        svc.spec.size = "sky-4x16".into();
        let mut out = DiffOutput::default();
        assert!(resized_outside(&svc, rec, &r, "service.primary", &mut out).is_empty());
        assert!(out.drift.is_empty());
    }

    #[test]
    fn a_failed_service_is_replaced_and_a_deleted_one_created_again() {
        let (svc, s) = (primary(), guide_state());
        let mut o = seen(&s);
        if let Some(ObservedService::Present(r)) = o.services.get_mut("primary") {
            r.status = ServiceStatus::Failed;
        }
        let mut out = DiffOutput::default();
        let fate = plan_service(&svc, &s, &o, &HashMap::new(), &mut out).unwrap();
        assert_eq!(fate, Fate::Replace);
        assert_eq!(out.drift[0].kind, DriftKind::ServiceFailed);
        assert_eq!(out.actions[0].reason.as_deref(), Some("the service failed"));

        o.services.insert(
            "primary".into(),
            ObservedService::Missing {
                id: "svc-primary".into(),
            },
        );
        let mut out = DiffOutput::default();
        let fate = plan_service(&svc, &s, &o, &HashMap::new(), &mut out).unwrap();
        assert_eq!(fate, Fate::Create);
        assert_eq!(out.drift[0].kind, DriftKind::ServiceDeleted);
        let a = &out.actions[0];
        assert_eq!(a.change, Change::Create);
        assert_eq!(a.reason.as_deref(), Some("deleted outside skyplan"));
        assert_eq!(a.after.as_ref().unwrap()["fqdn"], json!(KNOWN_AFTER_APPLY));
    }

    #[test]
    fn storage_grown_by_hand_is_kept_and_the_topology_told() {
        let (svc, s) = (primary(), guide_state());
        let mut o = seen(&s);
        if let Some(ObservedService::Present(r)) = o.services.get_mut("primary") {
            r.storage = 300;
        }
        let mut out = DiffOutput::default();
        let fate = plan_service(&svc, &s, &o, &HashMap::new(), &mut out).unwrap();
        assert_eq!(fate, Fate::Keep, "{:?}", out.actions);
        assert!(
            out.drift[0].detail.ends_with(
                "storage cannot shrink back to 100 GB: set storage = 300 in the topology"
            ),
            "{}",
            out.drift[0].detail
        );
    }

    #[test]
    fn a_pinned_id_must_be_the_recorded_one() {
        let (mut svc, s) = (primary(), guide_state());
        svc.id = Some("svc-other".into());
        let e = plan_service(
            &svc,
            &s,
            &seen(&s),
            &HashMap::new(),
            &mut DiffOutput::default(),
        )
        .unwrap_err();
        assert!(matches!(e, PlanError::PinnedIdMismatch { .. }), "{e:?}");
    }

    #[test]
    fn repair_reason_names_only_the_fields_put_back() {
        assert_eq!(
            repair_reason(&["size", "storage"], &["storage", "nodes"]).as_deref(),
            Some("storage changed outside skyplan")
        );
        assert_eq!(repair_reason(&["size"], &[]), None);
    }
}
