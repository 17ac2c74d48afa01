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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{guide_state, guide_topology};
    use super::*;
    use crate::state::{AllowlistRecord, EarlierGrant};

    #[test]
    fn entries_compare_as_networks() {
        assert_eq!(cidr_key("10.0.0.1"), cidr_key("10.0.0.1/32"));
        assert_eq!(cidr_key("10.0.0.7/24"), cidr_key("10.0.0.0/24"));
        assert!(contains_cidr(&["10.0.0.1/32".into()], "10.0.0.1"));
        assert!(!contains_cidr(&["10.0.0.1/32".into()], "10.0.0.2"));
        assert_eq!(cidr32("10.0.0.1"), "10.0.0.1/32");
        assert_eq!(cidr32("10.0.0.0/24"), "10.0.0.0/24");
    }

    #[test]
    fn the_entries_skyplan_granted_are_gathered_by_the_service_that_holds_them() {
        let mut s = guide_state();
        s.resources.allowlists.insert(
            "third".into(),
            AllowlistRecord {
                on: "secondary".into(),
                entries: vec!["10.0.0.3".into()],
                earlier: vec![EarlierGrant {
                    on: "primary".into(),
                    entries: vec!["10.0.0.4/32".into()],
                }],
            },
        );
        let owned = owned_entries(&s);
        assert_eq!(
            owned["primary"],
            BTreeSet::from([cidr_key("10.0.0.1/32"), cidr_key("10.0.0.4")])
        );
        assert_eq!(owned["secondary"], BTreeSet::from([cidr_key("10.0.0.3")]));
    }

    #[test]
    fn a_listed_entry_removed_is_put_back_and_one_added_by_hand_left_alone() {
        let (t, mut s) = (guide_topology(), guide_state());
        let rec = s.resources.services.get_mut("primary").unwrap();
        rec.spec.allow_list = vec!["1.2.3.4/32".into(), "5.6.7.0/24".into()];
        let (svc, rec) = (&t.services["primary"], &s.resources.services["primary"]);
        let mut current = rec.spec.clone();
        let seen = [
            "1.2.3.4".to_string(),
            "9.9.9.9/32".into(),
            "10.0.0.1/32".into(),
        ];
        let owned = BTreeSet::from([cidr_key("10.0.0.1/32")]);
        let found = allow_list_drift(svc, rec, &seen, &owned, &mut current);
        assert!(found.listed_missing);
        assert_eq!(
            current.allow_list,
            ["1.2.3.4/32"],
            "the update puts back the rest"
        );
        let kinds: Vec<DriftKind> = found.drift.iter().map(|d| d.kind).collect();
        assert_eq!(
            kinds,
            [DriftKind::AllowListChanged, DriftKind::AllowlistEntryAdded]
        );
        assert_eq!(
            found.drift[0].detail,
            "allow_list 5.6.7.0/24 removed outside skyplan"
        );
        // skyplan's own grant (10.0.0.1) is neither the user's nor drift.
        assert_eq!(
            found.drift[1].detail,
            "9.9.9.9/32 added outside skyplan (left alone)"
        );
    }

    #[test]
    fn entries_as_recorded_are_no_drift() {
        let (t, mut s) = (guide_topology(), guide_state());
        let rec = s.resources.services.get_mut("primary").unwrap();
        rec.spec.allow_list = vec!["1.2.3.4/32".into()];
        let (svc, rec) = (&t.services["primary"], &s.resources.services["primary"]);
        let mut current = rec.spec.clone();
        let found = allow_list_drift(
            svc,
            rec,
            &["1.2.3.4".into()],
            &BTreeSet::new(),
            &mut current,
        );
        assert!(!found.listed_missing);
        assert!(found.drift.is_empty());
        assert_eq!(current.allow_list, rec.spec.allow_list);
    }
}
