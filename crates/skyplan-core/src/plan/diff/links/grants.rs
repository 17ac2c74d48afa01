//! Allowlist grants for replication: the entry on a source's allowlist that admits its
//! replica's outbound IPs (granted, repaired when removed outside skyplan or when the IPs
//! changed) and the revocation of entries no longer right (a previous source, a re-created
//! replica's old IPs, a link torn down).

use std::collections::BTreeSet;

use serde_json::json;

use super::super::{cidr32, cidr_key, join, DiffOutput, Planned};
use super::Ctx;
use crate::observed::ObservedService;
use crate::plan::action::{ActionKind, Change, KNOWN_AFTER_APPLY};
use crate::plan::drift::{Drift, DriftKind};
use crate::state::ServiceRecord;

/// The grant action the link needs, if any, and the drift of the entries skyplan owns.
pub(super) fn plan_grant(
    cx: &Ctx,
    r: &str,
    src: &str,
    rec_r: Option<&ServiceRecord>,
    out: &mut DiffOutput,
) -> Option<Planned> {
    let (fate_r, fate_s) = (cx.fate(r), cx.fate(src));
    let grant = cx.state.resources.allowlists.get(r);
    let granted_here = grant.filter(|g| g.on == src);
    let mut reason = None;
    if let (Some(g), Some(entries)) = (granted_here, cx.observed.allowlists.get(src)) {
        let present: BTreeSet<String> = entries.iter().map(|e| cidr_key(e)).collect();
        let (kept, missing): (Vec<&String>, Vec<&String>) = g
            .entries
            .iter()
            .partition(|e| present.contains(&cidr_key(e)));
        if !missing.is_empty() && !fate_s.is_new() {
            out.drift.push(Drift {
                resource: format!("allowlist.{src}.{r}"),
                kind: DriftKind::AllowlistEntryRemoved,
                before: json!(g.entries),
                after: json!(kept),
                detail: format!(
                    "{} for {} removed from {}'s allowlist",
                    join(missing.iter().map(|s| s.as_str())),
                    cx.name_of(r),
                    cx.name_of(src)
                ),
            });
            reason = Some("allowlist entry removed outside skyplan".to_string());
        }
    }
    // The replica's outbound IPs as refresh saw them, else as recorded.
    let outbound: Vec<String> = match cx.observed.services.get(r) {
        Some(ObservedService::Present(s)) if !s.outbound_ips.is_empty() => s.outbound_ips.clone(),
        _ => rec_r.map(|x| x.outbound_ips.clone()).unwrap_or_default(),
    };
    let outbound_known = !fate_r.is_new() && !outbound.is_empty();
    let uncovered = outbound_known
        && granted_here.is_some_and(|g| {
            let have: BTreeSet<String> = g.entries.iter().map(|e| cidr_key(e)).collect();
            outbound.iter().any(|ip| !have.contains(&cidr_key(ip)))
        });
    if uncovered && reason.is_none() {
        reason = Some(format!("{}'s outbound IPs changed", cx.name_of(r)));
    }
    let needed = granted_here.is_none() || fate_r.is_new() || fate_s.is_new() || reason.is_some();
    if !needed {
        return None;
    }
    let (entries, shown) = if outbound_known {
        (
            json!(outbound.iter().map(|ip| cidr32(ip)).collect::<Vec<_>>()),
            outbound.join(", "),
        )
    } else {
        (json!(KNOWN_AFTER_APPLY), KNOWN_AFTER_APPLY.to_string())
    };
    Some(Planned {
        kind: ActionKind::AllowlistGrant {
            source: src.to_string(),
            replica: r.to_string(),
        },
        change: Change::Create,
        summary: format!(
            "grant    {} outbound IP {shown} on {}",
            cx.name_of(r),
            cx.name_of(src)
        ),
        before: grant.map(|g| json!({ "on": cx.name_of(&g.on), "entries": g.entries })),
        after: Some(json!({ "on": cx.name_of(src), "entries": entries })),
        wipes_data: false,
        reason,
    })
}

/// Entries skyplan added for this replica that are no longer right go: on a previous source
/// (re-pointed link), or for the outbound IPs of a replica that is re-created.
pub(super) fn revoke_stale_grants(cx: &Ctx, r: &str, src: &str, out: &mut DiffOutput) {
    let (fate_r, fate_s) = (cx.fate(r), cx.fate(src));
    if let Some(g) = cx.state.resources.allowlists.get(r) {
        if g.on != src {
            push_revoke(cx, &g.on, r, &g.entries, None, out);
        } else if fate_r.is_new() && !fate_s.is_new() {
            let why = format!(
                "{} is new: these admitted the outbound IPs of the old one",
                cx.name_of(r)
            );
            push_revoke(cx, src, r, &g.entries, Some(why), out);
        }
    }
}

pub(super) fn push_revoke(
    cx: &Ctx,
    on: &str,
    replica: &str,
    entries: &[String],
    reason: Option<String>,
    out: &mut DiffOutput,
) {
    // Nothing to revoke on a source that is going away or being replaced.
    let source_gone = !cx.topology.services.contains_key(on)
        || cx.fate(on).is_new()
        || !cx.state.resources.services.contains_key(on)
        || cx.api_lost(on);
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
            cx.name_of(on)
        ),
        before: Some(json!({ "on": cx.name_of(on), "entries": entries })),
        after: None,
        wipes_data: false,
        reason,
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::fixtures::{guide_state, guide_topology, seen};
    use super::super::super::Fate;
    use super::*;
    use crate::observed::Observed;

    #[test]
    fn a_new_replica_is_granted_its_outbound_ips_known_after_apply() {
        let (t, s) = (guide_topology(), guide_state());
        let o = seen(&s);
        let fates = BTreeMap::from([("secondary", Fate::Create)]);
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        let rec = s.resources.services.get("secondary");
        let g = plan_grant(&cx, "secondary", "primary", rec, &mut DiffOutput::default()).unwrap();
        assert_eq!(
            g.summary,
            format!("grant    svc-secondary outbound IP {KNOWN_AFTER_APPLY} on svc-primary")
        );
        assert_eq!(g.after.unwrap()["entries"], json!(KNOWN_AFTER_APPLY));
        assert_eq!(
            g.before.unwrap(),
            json!({ "on": "svc-primary", "entries": ["10.0.0.1/32"] })
        );
    }

    #[test]
    fn a_grant_in_place_needs_nothing_and_one_removed_by_hand_is_put_back() {
        let (t, s) = (guide_topology(), guide_state());
        let fates = BTreeMap::new();
        let rec = s.resources.services.get("secondary");
        let mut o = seen(&s);
        o.allowlists
            .insert("primary".into(), vec!["10.0.0.1".into()]);
        let mut out = DiffOutput::default();
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        assert!(plan_grant(&cx, "secondary", "primary", rec, &mut out).is_none());
        assert!(out.drift.is_empty());

        o.allowlists.insert("primary".into(), vec![]);
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        let g = plan_grant(&cx, "secondary", "primary", rec, &mut out).unwrap();
        assert_eq!(
            g.reason.as_deref(),
            Some("allowlist entry removed outside skyplan")
        );
        let [d] = out.drift.as_slice() else {
            panic!("{:?}", out.drift)
        };
        assert_eq!(d.kind, DriftKind::AllowlistEntryRemoved);
        assert_eq!(
            d.detail,
            "10.0.0.1/32 for svc-secondary removed from svc-primary's allowlist"
        );
    }

    #[test]
    fn new_outbound_ips_are_granted_as_hosts() {
        let (t, s) = (guide_topology(), guide_state());
        let fates = BTreeMap::new();
        let mut o = seen(&s);
        if let Some(ObservedService::Present(r)) = o.services.get_mut("secondary") {
            r.outbound_ips = vec!["10.0.0.9".into()];
        }
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        let rec = s.resources.services.get("secondary");
        let g = plan_grant(&cx, "secondary", "primary", rec, &mut DiffOutput::default()).unwrap();
        assert_eq!(
            g.reason.as_deref(),
            Some("svc-secondary's outbound IPs changed")
        );
        assert_eq!(g.after.unwrap()["entries"], json!(["10.0.0.9/32"]));
    }

    #[test]
    fn nothing_is_revoked_on_a_source_going_away() {
        let (t, s, o) = (guide_topology(), guide_state(), Observed::offline());
        let entries = ["10.0.0.1/32".to_string()];
        let keep = BTreeMap::new();
        let mut out = DiffOutput::default();
        push_revoke(
            &Ctx::for_test(&t, &s, &o, &keep),
            "primary",
            "secondary",
            &entries,
            None,
            &mut out,
        );
        let [a] = out.actions.as_slice() else {
            panic!("{:?}", out.actions)
        };
        assert_eq!(a.summary, "revoke   10.0.0.1/32 on svc-primary's allowlist");
        assert_eq!(a.change, Change::Delete);

        let replaced = BTreeMap::from([("primary", Fate::Replace)]);
        let mut out = DiffOutput::default();
        push_revoke(
            &Ctx::for_test(&t, &s, &o, &replaced),
            "primary",
            "secondary",
            &entries,
            None,
            &mut out,
        );
        assert!(out.actions.is_empty());
        let mut lost = seen(&s);
        lost.services.insert(
            "primary".into(),
            ObservedService::Missing {
                id: "svc-primary".into(),
            },
        );
        push_revoke(
            &Ctx::for_test(&t, &s, &lost, &keep),
            "primary",
            "secondary",
            &entries,
            None,
            &mut out,
        );
        assert!(out.actions.is_empty());
    }

    #[test]
    fn stale_entries_go_for_a_re_created_replica_or_a_previous_source() {
        let (t, s, o) = (guide_topology(), guide_state(), Observed::offline());
        let recreated = BTreeMap::from([("secondary", Fate::Create)]);
        let mut out = DiffOutput::default();
        revoke_stale_grants(
            &Ctx::for_test(&t, &s, &o, &recreated),
            "secondary",
            "primary",
            &mut out,
        );
        assert_eq!(
            out.actions[0].reason.as_deref(),
            Some("svc-secondary is new: these admitted the outbound IPs of the old one")
        );
        // The grant is on another source than the one it now replicates from.
        let keep = BTreeMap::new();
        let mut out = DiffOutput::default();
        revoke_stale_grants(
            &Ctx::for_test(&t, &s, &o, &keep),
            "secondary",
            "elsewhere",
            &mut out,
        );
        assert!(matches!(
            &out.actions[0].kind,
            ActionKind::AllowlistRevoke { source, .. } if source == "primary"
        ));
        // Kept on the same source: nothing stale.
        let mut out = DiffOutput::default();
        revoke_stale_grants(
            &Ctx::for_test(&t, &s, &o, &keep),
            "secondary",
            "primary",
            &mut out,
        );
        assert!(out.actions.is_empty());
    }
}
