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
