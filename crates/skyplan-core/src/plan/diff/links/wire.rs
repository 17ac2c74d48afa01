//! Wiring a link: the replicate action (fresh from the seeding backup's position, a restart of
//! a stopped channel, a re-wire from the replica's own position, a re-point onto another
//! source), how it is chosen, and what the plan shows of it.

use serde_json::{json, Value};

use super::super::Planned;
use super::Ctx;
use crate::plan::action::{ActionKind, Change, WireMode, KNOWN_AFTER_APPLY};
use crate::state::ReplicationRecord;
use crate::topology::{Replication, Seed};

/// How a link is wired: fresh after a seed (or with no seed and no link), by GTID from the
/// replica's own position (a re-point), or as the observed drift asks (a restart).
pub(super) fn wire_mode(
    seeded: bool,
    repoint: bool,
    fresh_unseeded: bool,
    reseed: Option<String>,
    repair: Option<(WireMode, String)>,
) -> (WireMode, Option<String>) {
    if seeded {
        (WireMode::Fresh, reseed)
    } else if repoint {
        (WireMode::Repoint, None)
    } else if fresh_unseeded {
        (WireMode::Fresh, reseed)
    } else if let Some((mode, why)) = repair {
        (mode, Some(why))
    } else {
        (WireMode::Fresh, None)
    }
}

/// The replicate action: fresh from the seeding backup's position, a restart of a stopped
/// channel, or a re-wire of a reset one from the replica's own position.
#[allow(clippy::too_many_arguments)]
pub(super) fn wire(
    cx: &Ctx,
    r: &str,
    repl: &Replication,
    link: Option<&ReplicationRecord>,
    mode: WireMode,
    seeded: bool,
    running: Option<bool>,
    reason: Option<String>,
) -> Planned {
    let src = repl.from.as_str();
    let res = &cx.state.resources;
    let old_gtid = link.map(|l| json!(l.gtid_position));
    let gtid = match (mode, seeded) {
        (WireMode::Fresh, true) => match &repl.seed {
            Seed::Backup(_) | Seed::NewBackup | Seed::LatestBackup => {
                json!(format!("the backup's GTID {KNOWN_AFTER_APPLY}"))
            }
            Seed::None => json!("the source's current GTID"),
        },
        (WireMode::Fresh, false) => json!(link
            .and_then(|l| l.gtid_position.clone())
            .unwrap_or_else(|| KNOWN_AFTER_APPLY.to_string())),
        // Continues where it stopped: the position does not change.
        (WireMode::Restart, _) => old_gtid.clone().unwrap_or(Value::Null),
        (WireMode::Rewire | WireMode::Repoint, _) => json!("the replica's own GTID position"),
    };
    let host = if cx.fate(src).is_new() {
        json!(KNOWN_AFTER_APPLY)
    } else {
        res.services
            .get(src)
            .and_then(|s| s.fqdn.clone().zip(s.port))
            .map(|(h, p)| json!(format!("{h}:{p}")))
            .unwrap_or(json!(KNOWN_AFTER_APPLY))
    };
    let (verb, at) = match mode {
        WireMode::Fresh => (
            "wire    ",
            format!(
                "at {}",
                crate::gtid::shown(gtid.as_str().unwrap_or_default())
            ),
        ),
        WireMode::Restart => ("restart ", "from where it stopped".to_string()),
        WireMode::Rewire => (
            "rewire  ",
            format!(
                "at {}",
                crate::gtid::shown(gtid.as_str().unwrap_or_default())
            ),
        ),
        WireMode::Repoint => {
            let now = cx
                .observed
                .gtids
                .get(r)
                .map(|g| g.current_pos.as_str())
                .filter(|g| !g.is_empty());
            let at = format!(
                "from its own position{}, no data copied",
                now.map(|g| format!(" ({g} when planned)"))
                    .unwrap_or_default()
            );
            match link.filter(|l| l.source != src) {
                // The issue's own words: `re-point  sec2: e-primary -> e-sec1 from …`.
                Some(l) => {
                    return repoint_action(cx, r, repl, l, gtid, host, running, reason, &at);
                }
                None => ("wire    ", at),
            }
        }
    };
    Planned {
        kind: ActionKind::Replicate {
            source: src.to_string(),
            replica: r.to_string(),
            ssl: repl.ssl,
            mode,
        },
        change: if mode == WireMode::Fresh && link.is_none() {
            Change::Create
        } else {
            Change::Update
        },
        summary: format!(
            "{verb} {} -> {} {at}{}",
            cx.name_of(src),
            cx.name_of(r),
            if repl.ssl { ", ssl" } else { "" }
        ),
        before: link.map(|l| {
            json!({
                "source": cx.name_of(&l.source),
                "host": format!("{}:{}", l.source_host, l.source_port),
                "gtid": l.gtid_position,
                "ssl": l.ssl,
                // As refresh saw it; without a look, as the state last recorded it.
                "running": running.unwrap_or(l.healthy),
            })
        }),
        after: Some({
            let mut after =
                json!({ "source": cx.name_of(src), "host": host, "gtid": gtid, "ssl": repl.ssl });
            if link.is_some() {
                after["running"] = json!(true);
            }
            after
        }),
        wipes_data: false,
        reason,
    }
}

/// A replica moving from the recorded source to another that shares its history.
#[allow(clippy::too_many_arguments)]
fn repoint_action(
    cx: &Ctx,
    r: &str,
    repl: &Replication,
    link: &ReplicationRecord,
    gtid: Value,
    host: Value,
    running: Option<bool>,
    reason: Option<String>,
    at: &str,
) -> Planned {
    let src = repl.from.as_str();
    Planned {
        kind: ActionKind::Replicate {
            source: src.to_string(),
            replica: r.to_string(),
            ssl: repl.ssl,
            mode: WireMode::Repoint,
        },
        change: Change::Update,
        summary: format!(
            "re-point {}: {} -> {} {at}{}",
            cx.name_of(r),
            cx.name_of(&link.source),
            cx.name_of(src),
            if repl.ssl { ", ssl" } else { "" }
        ),
        before: Some(json!({
            "source": cx.name_of(&link.source),
            "host": format!("{}:{}", link.source_host, link.source_port),
            "gtid": link.gtid_position,
            "ssl": link.ssl,
            "running": running.unwrap_or(link.healthy),
        })),
        after: Some(json!({
            "source": cx.name_of(src),
            "host": host,
            "gtid": gtid,
            "ssl": repl.ssl,
            "running": true,
        })),
        wipes_data: false,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::super::fixtures::{guide_state, guide_topology};
    use super::*;
    use crate::observed::Observed;

    #[test]
    fn the_mode_is_fresh_after_a_seed_then_a_repoint_then_the_repair() {
        let repair = || Some((WireMode::Restart, "stopped".to_string()));
        let why = || Some("asked".to_string());
        assert_eq!(
            wire_mode(true, true, false, why(), repair()),
            (WireMode::Fresh, why())
        );
        assert_eq!(
            wire_mode(false, true, true, why(), repair()),
            (WireMode::Repoint, None)
        );
        assert_eq!(
            wire_mode(false, false, true, why(), repair()),
            (WireMode::Fresh, why())
        );
        assert_eq!(
            wire_mode(false, false, false, None, repair()),
            (WireMode::Restart, Some("stopped".into()))
        );
        assert_eq!(
            wire_mode(false, false, false, None, None),
            (WireMode::Fresh, None)
        );
    }

    #[test]
    fn a_stopped_link_restarts_where_it_stopped_and_a_new_one_at_the_backups_gtid() {
        let (t, s, o) = (guide_topology(), guide_state(), Observed::offline());
        let fates = BTreeMap::new();
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        let repl = t.services["secondary"].replication.clone().unwrap();
        let link = s.resources.replications.get("secondary");
        let a = wire(
            &cx,
            "secondary",
            &repl,
            link,
            WireMode::Restart,
            false,
            Some(false),
            None,
        );
        assert_eq!(
            a.summary,
            "restart  svc-primary -> svc-secondary from where it stopped, ssl"
        );
        assert_eq!(a.change, Change::Update);
        assert_eq!(a.after.as_ref().unwrap()["gtid"], json!("0-1-5"));
        assert_eq!(a.before.as_ref().unwrap()["running"], json!(false));

        let a = wire(
            &cx,
            "secondary",
            &repl,
            None,
            WireMode::Fresh,
            true,
            None,
            None,
        );
        assert_eq!(a.change, Change::Create);
        assert_eq!(
            a.after.as_ref().unwrap()["gtid"],
            json!(format!("the backup's GTID {KNOWN_AFTER_APPLY}"))
        );
        assert_eq!(
            a.after.as_ref().unwrap()["host"],
            json!("svc-primary.example.com:3306")
        );
    }

    #[test]
    fn a_link_moving_to_another_source_is_a_repoint_without_a_copy() {
        let (t, mut s, o) = (guide_topology(), guide_state(), Observed::offline());
        s.resources
            .replications
            .get_mut("secondary")
            .unwrap()
            .source = "old".into();
        let fates = BTreeMap::new();
        let cx = Ctx::for_test(&t, &s, &o, &fates);
        let repl = t.services["secondary"].replication.clone().unwrap();
        let link = s.resources.replications.get("secondary");
        let a = wire(
            &cx,
            "secondary",
            &repl,
            link,
            WireMode::Repoint,
            false,
            None,
            None,
        );
        assert_eq!(
            a.summary,
            "re-point svc-secondary: old -> svc-primary from its own position, no data copied, ssl"
        );
        assert!(!a.wipes_data);
        assert_eq!(a.before.as_ref().unwrap()["source"], json!("old"));
        assert_eq!(
            a.after.as_ref().unwrap()["gtid"],
            json!("the replica's own GTID position")
        );
    }
}
