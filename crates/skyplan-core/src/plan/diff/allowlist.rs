//! Allowlist entries of a service: the user's `allow_list` against what refresh saw, compared
//! as networks (CIDR-normalised), and the entries skyplan itself granted for replicas (which
//! are neither the user's nor drift). The CIDR helpers every allowlist comparison uses (here,
//! the link grants, apply) are re-exported from `skyplan_api::cidr`, their one implementation.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::join;
use crate::plan::drift::{Drift, DriftKind};
use crate::state::{ServiceRecord, State};
use crate::topology::{Service, ServiceSpec};

// Allowlist entries compare as networks: one implementation, in `skyplan_api::cidr`.
pub use skyplan_api::cidr::{contains as contains_cidr, key as cidr_key};

pub use skyplan_api::cidr::host as cidr32;

/// Entries skyplan granted, grouped by the service whose allowlist holds them: one pass here
/// instead of a scan of every grant for every service (quadratic on large states).
pub(super) fn owned_entries(state: &State) -> std::collections::HashMap<&str, BTreeSet<String>> {
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

/// Compare a service's observed allowlist with the user's `allow_list` (as last applied) and
/// the entries skyplan added for replicas. Entries are compared CIDR-normalised. Sets
/// `current.allow_list` to the listed entries still present, so the update puts back the
/// missing ones; entries added by hand are reported and left alone.
pub(super) fn allow_list_drift(
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

pub(super) struct AllowListDrift {
    pub(super) drift: Vec<Drift>,
    /// Entries of the user's allow_list are missing (the update puts them back).
    pub(super) listed_missing: bool,
}
