//! Power: whether each service runs, as the topology's `is_active` says (default: running).
//!
//! A service that should run and is found stopped was stopped outside skyplan: that is drift,
//! repaired by starting it. A service the topology keeps stopped is stopped once (after it is
//! created, adopted or changed) and then left alone. Starting and stopping keep the data.

use serde_json::json;
use skyplan_api::types::ServiceStatus;

use super::{DiffOutput, Fate, Planned};
use crate::observed::{Observed, ObservedService};
use crate::plan::action::{ActionKind, Change};
use crate::plan::drift::{Drift, DriftKind};
use crate::plan::PlanError;
use crate::state::State;
use crate::topology::Service;

/// Fields SkySQL changes only on a running service (the emulator refuses them on a stopped one).
const NEEDS_RUNNING: &[&str] = &["size", "nodes", "storage"];

/// Plans the start or stop of `svc`, whose other actions (`fate`) are already in `out`.
pub(super) fn plan_power(
    svc: &Service,
    fate: Fate,
    state: &State,
    observed: &Observed,
    out: &mut DiffOutput,
) -> Result<(), PlanError> {
    let key = &svc.key;
    let running = if fate.is_new() {
        // A new service (created or replaced) comes up running.
        true
    } else {
        match status(key, state, observed) {
            Some(ServiceStatus::Stopped | ServiceStatus::PendingStop) => false,
            Some(_) => true,
            // Not refreshed (offline) or not found: nothing is known to change.
            None => return Ok(()),
        }
    };
    if running == svc.is_active {
        return Ok(());
    }
    let name = &svc.spec.name;
    if !running {
        // A stopped service that should run: drift if skyplan manages it, else (adopting)
        // only what apply does.
        let recorded = state.resources.services.contains_key(key);
        if recorded {
            out.drift.push(Drift {
                resource: svc.address(),
                kind: DriftKind::ServiceStopped,
                before: json!({ "status": ServiceStatus::Ready }),
                after: json!({ "status": ServiceStatus::Stopped }),
                detail: format!("{name} is stopped, and the topology wants it running"),
            });
        }
        out.actions.push(planned(
            svc,
            true,
            Some(if recorded {
                "stopped outside skyplan".into()
            } else {
                "it is stopped and the topology wants it running".into()
            }),
        ));
        return Ok(());
    }
    out.actions.push(planned(svc, false, None));
    Ok(())
}

/// A service the topology keeps stopped, found stopped, cannot take an in-place change that
/// SkySQL makes only on a running service: said at plan time, not discovered by apply.
pub(super) fn check_stopped_changes(
    svc: &Service,
    state: &State,
    observed: &Observed,
    out: &DiffOutput,
) -> Result<(), PlanError> {
    let stays_stopped = !svc.is_active
        && matches!(
            status(&svc.key, state, observed),
            Some(ServiceStatus::Stopped | ServiceStatus::PendingStop)
        );
    if !stays_stopped {
        return Ok(());
    }
    let fields: Vec<&str> = out
        .actions
        .iter()
        .filter_map(|a| match &a.kind {
            ActionKind::UpdateService { key, from, to }
            | ActionKind::AdoptService { key, from, to, .. }
                if key == &svc.key =>
            {
                Some(super::changed_fields(from, to))
            }
            _ => None,
        })
        .flatten()
        .filter(|f| NEEDS_RUNNING.contains(f))
        .collect();
    if fields.is_empty() {
        return Ok(());
    }
    Err(PlanError::StoppedChange {
        key: svc.key.clone(),
        fields: fields.join(", "),
    })
}

/// The status refresh saw: of the recorded service, or of the one an adoption takes over.
fn status(key: &str, state: &State, observed: &Observed) -> Option<ServiceStatus> {
    if state.resources.services.contains_key(key) {
        return match observed.services.get(key) {
            Some(ObservedService::Present(r)) => Some(r.status.clone()),
            _ => None,
        };
    }
    match observed.unmanaged.get(key).map(Vec::as_slice) {
        Some([existing]) => Some(existing.status.clone()),
        _ => None,
    }
}

fn planned(svc: &Service, active: bool, reason: Option<String>) -> Planned {
    let name = &svc.spec.name;
    let (status, summary) = if active {
        ("ready", format!("start    {name}  (its data is kept)"))
    } else {
        (
            "stopped",
            format!("stop     {name}  (is_active = false; its data is kept)"),
        )
    };
    let before = if active { "stopped" } else { "ready" };
    Planned {
        kind: ActionKind::SetPower {
            key: svc.key.clone(),
            active,
        },
        change: Change::Update,
        summary,
        before: Some(json!({ "status": before })),
        after: Some(json!({ "status": status })),
        wipes_data: false,
        reason,
    }
}
