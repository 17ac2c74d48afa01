//! The switchover step: a replica becomes the primary and the old primary follows it, with no
//! acknowledged write lost and no data copied.
//!
//! Order and guarantees:
//! 1. the candidate replicates and is under `max_lag_seconds` behind;
//! 2. **fence** the old primary: `read_only` for clients, client sessions ended. From here no
//!    client write is accepted there (a commit in flight either made it into the binlog
//!    before, or fails);
//! 3. the candidate applies the old primary's final `gtid_binlog_pos` (`MASTER_GTID_WAIT`);
//! 4. replication on the candidate is stopped and reset, and it is **opened** for writes.
//!
//! A failure in 1–4, before the candidate is open, **rolls back**: the old primary is unfenced
//! (and the candidate's replication started again if it was only stopped), so the old primary
//! goes on as before. After the candidate is open there is no way back to two writers:
//! 5. the old primary is re-pointed at the new one from its own position (no copy), its GRANT
//!    on the new primary (the new root), and the link proven caught up.

use anyhow::{anyhow, bail, Context, Result};

use super::link::{caught_up, drop_recorded_user, run_grant, wait_healthy};
use super::RealSteps;
use crate::apply::executor::ProgressHandle;
use crate::gtid;
use crate::plan::start::start_position;
use crate::plan::WireMode;
use crate::sql::gtids::Applied;
use crate::sql::SqlConn;
use crate::state::{ReplicationRecord, RoleChange, RoleChangeStep};

pub(super) async fn switchover(
    steps: &RealSteps,
    old: &str,
    new: &str,
    ssl: bool,
    max_lag_seconds: u64,
    p: &ProgressHandle,
) -> Result<String> {
    let state = steps.state.snapshot().await;
    let rec = state
        .resources
        .services
        .get(new)
        .with_context(|| format!("service.{new} is not in the state"))?;
    let (Some(host), Some(port)) = (rec.fqdn.clone(), rec.port) else {
        bail!("service.{new} has no endpoint");
    };
    // An earlier apply started this switchover and did not finish it.
    let resumed = rec
        .role_change
        .as_ref()
        .filter(|c| c.from == old)
        .map(|c| c.step);
    let mut newc = steps.sql(&state, new).await?;
    let mut oldc = steps.sql(&state, old).await?;

    // (A run that got past the opening left the candidate open and its link forgotten: the
    // plan resumes that as the old primary's re-point, not as a switchover.)
    // 1. The candidate is fit to take over (when resuming, its replication may have been
    //    stopped or reset by the interrupted run, after it caught up).
    if resumed.is_none() {
        fit_to_take_over(&mut newc, new, max_lag_seconds).await?;
    } else {
        p.status(&format!(
            "resuming the interrupted switchover of service.{old} to service.{new}"
        ));
    }
    // 1b. Checked again here, before the point of no return: once the candidate has
    // caught up, the old primary and the siblings that move to it can follow it by GTID.
    followers_can_follow(steps, &state, &mut oldc, &mut newc, old, new).await?;
    // Every round trip to the candidate between the fence and its opening is the
    // application's write gap: prepare its wait now (a WAN round trip saved).
    newc.prepare_gtid_wait().await?;
    // The candidate's replication, read here, before the fence, where the round trip costs
    // the application nothing: one an interrupted run (or anyone) stopped is started again
    // so it can catch up; one already reset (it had caught up) is checked after the fence
    // against the old primary's final position. A break after this is caught by the wait.
    let st = newc.replication_status().await?;
    if st.configured && !(st.io_running && st.sql_running) {
        newc.start_replication().await?;
    }
    // The old primary's configuration says read-only before it is fenced: a restart from
    // here on keeps it fenced. Refused by the cloud: nothing else was changed.
    super::config::set_role_in_config(steps, old, true, p)
        .await
        .with_context(|| format!("the switchover did not start: service.{old}'s configuration could not take its new role; nothing else was changed"))?;
    // The intent, before the first effect: a run killed from here on is resumed.
    if resumed.is_none() {
        set_role_change(steps, new, Some((old, RoleChangeStep::Fencing))).await?;
    }

    // 2-4, rolled back on failure.
    p.status(&format!("fencing service.{old}"));
    let fenced_at = std::time::Instant::now();
    let promoted =
        fence_and_promote(steps, &mut oldc, &mut newc, (old, new), st.configured, p).await;
    let (ended, final_pos) = match promoted {
        Ok(v) => v,
        Err((e, stopped)) => {
            return Err(roll_back(steps, &mut oldc, &mut newc, old, new, e, stopped, p).await);
        }
    };
    let gap = fenced_at.elapsed();
    // Past the point of no return: recorded at once, with the candidate's link forgotten.
    let old_user = record_opened(steps, old, new).await?;
    // The new primary's configuration says writable, so a restart keeps it the primary. Past
    // the point of no return a refusal does not stop the switchover: the plan's
    // configuration step after it sets it again.
    if let Err(e) = super::config::set_role_in_config(steps, new, false, p).await {
        tracing::warn!(
            "service.{new} is open, but its configuration still says read_only = ON: {e:#}"
        );
    }

    // 5. The old primary follows the new one from its own position.
    let target = (host.as_str(), port, ssl);
    let account = follow(steps, &state, &mut oldc, &mut newc, old, new, target, p).await?;
    // The new primary no longer replicates: its replication user goes, dropped on it (the new
    // root), from where the drop reaches the old primary.
    if let Some(u) = old_user.filter(|u| *u != account) {
        steps
            .state
            .update(|s| {
                if let Some(r) = s.resources.replication_users.get_mut(&u) {
                    r.on = new.to_string();
                }
            })
            .await?;
        let now = steps.state.snapshot().await;
        drop_recorded_user(steps, &now, &u, new, p).await?;
    }
    let _ = oldc.disconnect().await;
    let _ = newc.disconnect().await;
    Ok(format!(
        "service.{new} is the primary (open {:.1}s after the fence, at {}); service.{old} follows it from its own position, no data copied; {ended} client session(s) ended{}",
        gap.as_secs_f64(),
        crate::gtid::shown(&final_pos),
        if resumed.is_some() { " (resumed)" } else { "" }
    ))
}

/// Step 1: the candidate replicates and is no more than `max_lag_seconds` behind.
async fn fit_to_take_over(newc: &mut SqlConn, new: &str, max_lag_seconds: u64) -> Result<()> {
    let st = newc.replication_status().await?;
    let lag = st.seconds_behind_master.unwrap_or(0);
    if !(st.io_running && st.sql_running) {
        bail!(
            "service.{new} is not replicating (IO {}, SQL {}); nothing was changed",
            st.io_running,
            st.sql_running
        );
    }
    if lag > max_lag_seconds {
        bail!("service.{new} is {lag} s behind (max_lag_seconds = {max_lag_seconds}); nothing was changed");
    }
    Ok(())
}

/// A failure before the candidate was opened: the old primary is unfenced and the candidate
/// replicates again (if it was only stopped); returns the error saying what was undone.
#[allow(clippy::too_many_arguments)]
async fn roll_back(
    steps: &RealSteps,
    oldc: &mut SqlConn,
    newc: &mut SqlConn,
    old: &str,
    new: &str,
    e: anyhow::Error,
    stopped: bool,
    p: &ProgressHandle,
) -> anyhow::Error {
    let mut undone = Vec::new();
    let mut replicates = !stopped;
    if stopped && newc.start_replication().await.is_ok() {
        undone.push(format!("service.{new} replicates again"));
        replicates = true;
    }
    let unfenced = oldc.set_read_only(false).await;
    match &unfenced {
        Ok(()) => undone.push(format!("service.{old} is unfenced")),
        Err(u) => undone.push(format!(
            "UNFENCING service.{old} FAILED ({u}): it is still read-only"
        )),
    }
    if let Err(u) = super::config::set_role_in_config(steps, old, false, p).await {
        undone.push(format!(
            "its configuration still says read_only = ON ({u:#}); the next apply sets it back"
        ));
    }
    // Rolled back in full: nothing is left to resume.
    if unfenced.is_ok() && replicates {
        if let Err(u) = set_role_change(steps, new, None).await {
            return u.context(format!("{e:#}"));
        }
    }
    e.context(format!(
        "switchover rolled back before service.{new} was opened: {}",
        undone.join(", ")
    ))
}

/// The point of no return, recorded at once: the candidate opened, its link forgotten.
/// Returns the replication user its link had.
async fn record_opened(steps: &RealSteps, old: &str, new: &str) -> Result<Option<String>> {
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(new) {
                r.role_change = Some(RoleChange {
                    from: old.to_string(),
                    step: RoleChangeStep::Opened,
                    started_at: r
                        .role_change
                        .as_ref()
                        .map_or_else(super::now_rfc3339, |c| c.started_at.clone()),
                });
            }
            forget_as_replica(&mut s.resources, new)
        })
        .await
}

/// Step 5: the old primary follows the new one from its own position, proven caught up, and
/// the link recorded; returns the replication account it uses.
#[allow(clippy::too_many_arguments)]
async fn follow(
    steps: &RealSteps,
    state: &crate::state::State,
    oldc: &mut SqlConn,
    newc: &mut SqlConn,
    old: &str,
    new: &str,
    (host, port, ssl): (&str, u16, bool),
    p: &ProgressHandle,
) -> Result<String> {
    let own = oldc.observed_gtids().await?;
    let theirs = newc.observed_gtids().await?;
    if let Err(u) = gtid::repoint(&own, &theirs, &[]) {
        // Checked before the fence, so only something unforeseeable gets here: the old
        // primary stays fenced, and the next plan re-points it by GTID (never a copy unasked).
        bail!(
            "service.{new} is the primary now, but service.{old} cannot follow it from its own position yet: {}; it stays fenced (read-only). Plan again to finish the re-point",
            u.describe(&format!("service.{old}"), &format!("service.{new}"))
        );
    }
    // The old primary's own position (a re-point never starts from a backup).
    let position = start_position(WireMode::Repoint, None, &own)
        .gtid()
        .to_string();
    p.status(&format!(
        "re-pointing service.{old} at service.{new} from {position}"
    ));
    let grant = oldc
        .change_external_primary_gtid(host, port, &position, ssl)
        .await
        .with_context(|| format!("sky.change_external_primary_gtid on service.{old}"))?;
    let account = run_grant(steps, state, new, old, &grant, p).await?;
    oldc.start_replication().await?;
    wait_healthy(oldc, &steps.opts.poll, steps.opts.healthy_timeout, p).await?;
    caught_up(steps, state, new, old, oldc, p).await?;
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(new) {
                r.role_change = None;
            }
            s.resources.replications.insert(
                old.to_string(),
                ReplicationRecord {
                    source: new.to_string(),
                    source_host: host.to_string(),
                    source_port: port,
                    gtid_position: Some(position.clone()).filter(|g| !g.is_empty()),
                    ssl,
                    replication_user: Some(account.clone()),
                    healthy: true,
                    wired_at: Some(super::now_rfc3339()),
                },
            );
        })
        .await?;
    Ok(account)
}

/// Record (or clear) the switchover to `new` in progress, on its state record.
async fn set_role_change(
    steps: &RealSteps,
    new: &str,
    change: Option<(&str, RoleChangeStep)>,
) -> Result<()> {
    steps
        .state
        .update(|s| {
            if let Some(r) = s.resources.services.get_mut(new) {
                r.role_change = change.map(|(from, step)| RoleChange {
                    from: from.to_string(),
                    step,
                    started_at: super::now_rfc3339(),
                });
            }
        })
        .await?;
    Ok(())
}

/// The switchover's precondition read afresh (see [`gtid::takeover`]): fails, with nothing
/// changed, when the old primary or a sibling that moves to the candidate could not follow
/// it from its own position.
async fn followers_can_follow(
    steps: &RealSteps,
    state: &crate::state::State,
    oldc: &mut SqlConn,
    newc: &mut SqlConn,
    old: &str,
    new: &str,
) -> Result<()> {
    let parse = |k: &str, g: gtid::ObservedGtids| {
        g.holdings()
            .with_context(|| format!("the GTIDs of service.{k}"))
    };
    let mut others = Vec::new();
    let siblings: Vec<String> =
        crate::plan::diff::roles::siblings(&steps.topology, state, old, new)
            .cloned()
            .collect();
    // Replicas before their source, as refresh reads them: lag never looks errant.
    for k in &siblings {
        let mut c = steps.sql(state, k).await?;
        let g = c.observed_gtids().await?;
        let _ = c.disconnect().await;
        others.push((k.as_str(), parse(k, g)?));
    }
    let h_new = parse(new, newc.observed_gtids().await?)?;
    let h_old = parse(old, oldc.observed_gtids().await?)?;
    let refs: Vec<(&str, &gtid::Holdings)> = others.iter().map(|(k, h)| (*k, h)).collect();
    if let Err((k, u)) = gtid::takeover((old, &h_old), &h_new, &refs) {
        bail!(
            "switchover refused before the fence, nothing was changed: once service.{new} has caught up, service.{k} could not follow it from its own position: {}",
            u.describe(&format!("service.{k}"), &format!("service.{new}"))
        );
    }
    Ok(())
}

/// The failover step (planned only with `--allow-data-loss`): the old primary is lost, so
/// `new` becomes the primary with what it has received. It first applies all of it (its
/// relay log, up to `Gtid_IO_Pos`): a failure there changes nothing. Then its replication is
/// stopped and reset and it is opened for writes. The lost primary is not touched; when it
/// still exists, the state marks it replaced, so the next plan fences it when it answers.
pub(super) async fn failover(
    steps: &RealSteps,
    old: &str,
    new: &str,
    old_gone: bool,
    catch_up_from: Option<&str>,
    p: &ProgressHandle,
) -> Result<String> {
    // Credentials do not come from the lost primary (which may come back, or be re-created
    // empty under the same key, or be forgotten by this apply meanwhile): each service uses
    // its own. In this step's view only; the state records it once the candidate is open.
    let mut state = steps.state.snapshot().await;
    without_credentials_from(&mut state.resources, old);
    let mut newc = steps.sql(&state, new).await?;
    let st = newc.replication_status().await?;
    // Replicating from the catch-up sibling: an earlier apply's catch-up, resumed below.
    let from_sibling = catch_up_from.is_some_and(|k| {
        state.resources.services.get(k).is_some_and(|r| {
            r.fqdn.as_deref() == st.master_host.as_deref() && r.port == st.master_port
        })
    });
    // Receiving again since the plan: the old primary is alive (only skyplan cannot reach
    // it); opening this one would make two writers.
    if !from_sibling && st.io_running && st.last_io_errno == 0 {
        bail!(
            "service.{new} receives from service.{old} again: it is alive, so no failover; nothing was changed (plan again)"
        );
    }
    super::catch_up::apply_received(steps, &mut newc, new, &st, "nothing was changed", p).await?;
    let _ = newc.disconnect().await;
    let caught = match catch_up_from {
        Some(sibling) => {
            Some(super::catch_up::catch_up(steps, &state, old, new, sibling, p).await?)
        }
        None => None,
    };
    let mut newc = steps.sql(&state, new).await?;
    newc.stop_replication().await?;
    newc.reset_replication().await?;
    if let (Some(sibling), Some(caught)) = (catch_up_from, &caught) {
        super::catch_up::sibling_unchanged(steps, &state, old, sibling, caught).await?;
    }
    // The lost primary's configuration says read-only before the candidate opens: if it
    // comes back (a restart after its outage), it starts fenced. Its region may be gone
    // with the API's answers for it: tried, bounded, and never in the way of the failover.
    if let Err(e) = super::config::set_role_in_config(steps, old, true, p).await {
        tracing::warn!("the configuration of service.{old} could not take read_only = ON: {e:#}; it is fenced when it answers again");
    }
    p.status(&format!("opening service.{new} for writes"));
    newc.set_read_only(false)
        .await
        .with_context(|| format!("opening service.{new} for writes"))?;
    if let Err(e) = super::config::set_role_in_config(steps, new, false, p).await {
        tracing::warn!(
            "service.{new} is open, but its configuration still says read_only = ON: {e:#}"
        );
    }
    let at = newc.gtid_status().await?.binlog_pos.unwrap_or_default();
    let _ = newc.disconnect().await;
    let own_user = steps
        .state
        .update(|s| {
            let res = &mut s.resources;
            let own_user = forget_as_replica(res, new);
            without_credentials_from(res, old);
            // The users granted on the lost primary replicated to the new one, the new root:
            // they are dropped there when their links go.
            for u in res.replication_users.values_mut() {
                if u.on == old {
                    u.on = new.to_string();
                }
            }
            if !old_gone {
                if let Some(r) = res.services.get_mut(old) {
                    r.failed_over_to = Some(new.to_string());
                }
            }
            own_user
        })
        .await?;
    // The temporary entry on the sibling goes; a failure here is no failure of the failover
    // (the candidate is open): the entry stays recorded as skyplan's, and the next plan
    // revokes it.
    let caught_up = match (catch_up_from, &caught) {
        (Some(sibling), Some(c)) => {
            let revoked = match super::catch_up::revoke_temporary(steps, sibling, new, p).await {
                Ok(r) => r,
                Err(e) => format!(
                    "; its temporary allowlist entries on service.{sibling} could not be revoked now ({e:#}): the next plan revokes them"
                ),
            };
            format!(
                "caught up from service.{sibling} ({}){revoked}",
                crate::gtid::shown(&c.theirs.current_pos)
            )
        }
        _ => String::new(),
    };
    // Its own replication user (its link is gone) goes, dropped where it now lives.
    if let Some(u) = own_user {
        let now = steps.state.snapshot().await;
        drop_recorded_user(steps, &now, &u, new, p).await?;
    }
    Ok(format!(
        "{caught_up}{}service.{new} is the primary, open for writes at {}; {}",
        if caught_up.is_empty() { "" } else { "; " },
        if at.is_empty() {
            "(empty: no transactions yet)"
        } else {
            &at
        },
        if old_gone {
            format!("service.{old} no longer exists")
        } else {
            format!("service.{old} is marked replaced: fenced when it answers again")
        }
    ))
}

/// Make `key` writable for clients (its role is primary) or read-only (replica).
pub(super) async fn set_role(
    steps: &RealSteps,
    key: &str,
    writable: bool,
    p: &ProgressHandle,
) -> Result<String> {
    let state = steps.state.snapshot().await;
    let mut c = steps.sql(&state, key).await?;
    p.status(if writable {
        "opening for writes"
    } else {
        "making read-only for clients"
    });
    c.set_read_only(!writable).await?;
    let _ = c.disconnect().await;
    Ok(if writable {
        "read_only OFF".into()
    } else {
        "read_only ON".into()
    })
}

/// Fence `old`, let `new` catch up with it, stop and reset replication on `new`, open it.
/// On failure: the error, and whether `new`'s replication was stopped (to start it again).
///
/// After the fence, the candidate gets two round trips when it replicates (`configured`, read
/// just before the fence: the wait for the final position, then [`SqlConn::promote`]).
async fn fence_and_promote(
    steps: &RealSteps,
    oldc: &mut SqlConn,
    newc: &mut SqlConn,
    (old, new): (&str, &str),
    configured: bool,
    p: &ProgressHandle,
) -> Result<(usize, String), (anyhow::Error, bool)> {
    let e = |e: anyhow::Error| (e, false);
    oldc.set_read_only(true)
        .await
        .with_context(|| format!("fencing service.{old} (read_only)"))
        .map_err(e)?;
    let ended = oldc
        .end_client_sessions()
        .await
        .with_context(|| format!("ending the client sessions of service.{old}"))
        .map_err(e)?;
    let final_pos = oldc
        .gtid_status()
        .await
        .map_err(|x| e(x.into()))?
        .binlog_pos
        .unwrap_or_default();
    if !configured {
        // Reset by the interrupted run after it caught up: it must still hold everything the
        // (fenced) old primary has, or opening it would lose those writes.
        let (mine, theirs) = (newc.observed_gtids().await, oldc.observed_gtids().await);
        let (mine, theirs) = (
            mine.map_err(|x| e(x.into()))?,
            theirs.map_err(|x| e(x.into()))?,
        );
        if !gtid::caught_up_with(&theirs, &mine).map_err(|x| e(x.into()))? {
            return Err(e(anyhow!(
                "service.{new} no longer replicates and lacks transactions of service.{old}; it is not opened"
            )));
        }
    }
    if !final_pos.is_empty() && configured {
        p.status(&format!("waiting for service.{new} to apply {final_pos}"));
        let applied = newc
            .wait_applied(&final_pos, steps.opts.healthy_timeout)
            .await
            .map_err(|x| e(x.into()))?;
        if applied != Applied::Reached {
            return Err(e(anyhow!(
                "service.{new} did not apply service.{old}'s final position {final_pos}: {}",
                applied.why_not(steps.opts.healthy_timeout)
            )));
        }
    }
    let stopped = |x: anyhow::Error| (x, true);
    p.status(&format!("opening service.{new} for writes"));
    if configured {
        newc.promote()
            .await
            .with_context(|| format!("opening service.{new} for writes"))
            .map_err(stopped)?;
    } else {
        newc.set_read_only(false)
            .await
            .with_context(|| format!("opening service.{new} for writes"))
            .map_err(stopped)?;
    }
    Ok((ended, final_pos))
}

/// A promoted replica's link and seeding are history: a later link to it is planned afresh,
/// never from the old backup's position. Returns the replication user its link had.
fn forget_as_replica(res: &mut crate::state::Resources, key: &str) -> Option<String> {
    res.backups.remove(key);
    res.restores.remove(key);
    res.replications
        .remove(key)
        .and_then(|l| l.replication_user)
}

/// Services whose credentials came from `old` use their own.
fn without_credentials_from(res: &mut crate::state::Resources, old: &str) {
    for r in res.services.values_mut() {
        if r.credentials_from.as_deref() == Some(old) {
            r.credentials_from = None;
        }
    }
}
