//! A failover's catch-up: before the candidate is opened, it replicates by GTID from a
//! surviving sibling (another replica of the lost primary) that received transactions it
//! lacks, through a temporary link, until it holds everything the sibling holds. Nothing is
//! written on the sibling: the candidate's replication account was granted on the lost
//! primary and replicated to every replica of it, the sibling included; only the sibling's
//! allowlist gains the candidate's outbound IPs, recorded as skyplan's (an earlier grant) so
//! that an interrupted apply's entries are revoked by the next plan, and revoked here at the
//! end. Every failure here leaves the candidate closed (read-only): the next plan resumes.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::RealSteps;
use crate::apply::executor::ProgressHandle;
use crate::gtid;
use crate::gtid::ObservedGtids;
use crate::plan::diff::{cidr_key, contains_cidr};
use crate::plan::{self, WireMode};
use crate::sql::gtids::Applied;
use crate::state::{AllowlistRecord, EarlierGrant, State};

/// What the candidate caught up to: the sibling's GTIDs when it stopped moving.
pub(super) struct CaughtUp {
    pub(super) theirs: ObservedGtids,
}

/// Replicate `new` from `sibling` until it holds everything `sibling` holds, then stop and
/// reset that link. `state`: the failover's view (credentials no longer from the lost
/// primary). The temporary allowlist entry stays until [`revoke_temporary`], after the
/// opening.
pub(super) async fn catch_up(
    steps: &RealSteps,
    state: &State,
    old: &str,
    new: &str,
    sibling: &str,
    p: &ProgressHandle,
) -> Result<CaughtUp> {
    let rec = state
        .resources
        .services
        .get(sibling)
        .with_context(|| format!("service.{sibling} is not in the state"))?;
    let (Some(host), Some(port)) = (rec.fqdn.clone(), rec.port) else {
        bail!("service.{sibling} has no endpoint recorded; service.{new} was not opened");
    };
    let ssl = state.resources.replications.get(new).is_some_and(|l| l.ssl);

    // The sibling first applies what it received from the lost primary; then what it holds
    // does not move (nothing reaches it any more), and is the catch-up's target.
    let mut sib = steps.sql(state, sibling).await?;
    let st = sib.replication_status().await?;
    let from_old = state.resources.services.get(old).is_some_and(|o| {
        o.fqdn.as_deref() == st.master_host.as_deref() && o.port == st.master_port
    });
    if from_old && st.io_running && st.last_io_errno == 0 {
        bail!(
            "service.{sibling} receives from service.{old} again: it is alive, so no failover; nothing was changed (plan again)"
        );
    }
    apply_received(
        steps,
        &mut sib,
        sibling,
        &st,
        &format!("service.{new} was not opened"),
        p,
    )
    .await?;
    let theirs = sib.observed_gtids().await?;
    let _ = sib.disconnect().await;

    grant_temporary(steps, old, sibling, new, p).await?;
    let mut conn = steps.sql(state, new).await?;
    let st = conn.replication_status().await?;
    let linked = st.master_host.as_deref() == Some(host.as_str()) && st.master_port == Some(port);
    if !linked {
        conn.stop_replication().await?;
        let own = conn.observed_gtids().await?;
        // The plan's check, again now: the sibling holds the candidate's history and its
        // binlogs still hold what follows the candidate's position.
        if let Err(u) = gtid::repoint(&own, &theirs, &[]) {
            bail!(
                "service.{new} cannot catch up from service.{sibling}: {}; service.{new} was not opened",
                u.describe(&format!("service.{new}"), &format!("service.{sibling}"))
            );
        }
        let position = plan::start::start_position(WireMode::Repoint, None, &own)
            .gtid()
            .to_string();
        p.status(&format!(
            "replicating from service.{sibling} at GTID {}",
            gtid::shown(&position)
        ));
        // The grant it returns is already on the sibling (see the module's comment).
        conn.change_external_primary_gtid(&host, port, &position, ssl)
            .await
            .with_context(|| format!("sky.change_external_primary_gtid on service.{new}"))?;
        conn.start_replication().await?;
    } else if !(st.io_running && st.sql_running) {
        // Configured by an earlier apply that stopped before starting it, or stopped since.
        conn.start_replication().await?;
    }
    super::link::wait_healthy(&mut conn, &steps.opts.poll, steps.opts.healthy_timeout, p)
        .await
        .with_context(|| {
            format!(
                "replicating service.{new} from service.{sibling}; service.{new} was not opened"
            )
        })?;
    p.status(&format!(
        "waiting for service.{new} to hold everything service.{sibling} holds"
    ));
    let deadline = tokio::time::Instant::now() + steps.opts.healthy_timeout;
    let target = theirs.applied()?;
    loop {
        // Per domain, as MASTER_GTID_WAIT does: a candidate seeded by a restore knows its
        // history by position only (one GTID per domain), not by every server's stream.
        let mine = conn.observed_gtids().await?.applied()?;
        if target
            .domains()
            .all(|d| mine.last_seq(d) >= target.last_seq(d))
        {
            break;
        }
        let st = conn.replication_status().await?;
        if st.last_sql_errno != 0 || st.last_io_errno != 0 {
            bail!(
                "service.{new} stopped replicating from service.{sibling}: {}; service.{new} was not opened",
                if st.last_sql_errno != 0 {
                    format!("error {} ({})", st.last_sql_errno, st.last_sql_error)
                } else {
                    format!("error {} ({})", st.last_io_errno, st.last_io_error)
                }
            );
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "service.{new} did not catch up with service.{sibling} within {:?}; service.{new} was not opened",
                steps.opts.healthy_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    conn.stop_replication().await?;
    conn.reset_replication().await?;
    let _ = conn.disconnect().await;
    Ok(CaughtUp { theirs })
}

/// Just before the candidate opens: the sibling it caught up from still holds nothing more
/// than it did (nothing reached it from the old primary since), and does not receive from
/// the old primary (which would mean that one is alive: two writers).
pub(super) async fn sibling_unchanged(
    steps: &RealSteps,
    state: &State,
    old: &str,
    sibling: &str,
    caught: &CaughtUp,
) -> Result<()> {
    let mut sib = steps.sql(state, sibling).await?;
    let st = sib.replication_status().await?;
    let now = sib.observed_gtids().await?;
    let _ = sib.disconnect().await;
    if st.io_running && st.last_io_errno == 0 {
        bail!(
            "service.{sibling} receives from its source again (service.{old} is alive?), so no failover; the candidate was not opened (plan again)"
        );
    }
    let moved = now.applied()?.not_in(&caught.theirs.applied()?);
    if !moved.is_empty() {
        bail!(
            "service.{sibling} received more since the catch-up ({}): service.{old} may be alive; the candidate was not opened (plan again)",
            moved
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    Ok(())
}

/// Allowlist `new`'s outbound IPs on `sibling`, recording the entries skyplan added as an
/// earlier grant of `new`'s (revoked by the next plan if this apply stops here).
async fn grant_temporary(
    steps: &RealSteps,
    old: &str,
    sibling: &str,
    new: &str,
    p: &ProgressHandle,
) -> Result<()> {
    let client = &steps.remote.client;
    let sibling_id = steps.service_id(sibling).await?;
    let entries = super::link::outbound_entries(steps, new, sibling).await?;
    let present = steps.allowlist_entries(&sibling_id).await?;
    let wanted: Vec<String> = entries
        .into_iter()
        .filter(|e| !contains_cidr(&present, e))
        .collect();
    // Recorded before it is added: a stop between the two leaves a record of an entry that
    // is not there, which the revoke skips.
    steps
        .state
        .update(|s| {
            let res = &mut s.resources;
            let a = res
                .allowlists
                .entry(new.to_string())
                .or_insert_with(|| AllowlistRecord {
                    on: old.to_string(),
                    ..Default::default()
                });
            match a.earlier.iter_mut().find(|g| g.on == sibling) {
                Some(g) => g.entries.extend(
                    wanted
                        .iter()
                        .filter(|e| !contains_cidr(&g.entries, e))
                        .cloned()
                        .collect::<Vec<_>>(),
                ),
                None if !wanted.is_empty() => a.earlier.push(EarlierGrant {
                    on: sibling.to_string(),
                    entries: wanted.clone(),
                }),
                None => {}
            }
        })
        .await?;
    for e in &wanted {
        p.status(&format!(
            "allowlisting {e} on service.{sibling} (temporary)"
        ));
        client
            .add_allowlist_entry(&sibling_id, e)
            .await
            .with_context(|| format!("allowlisting {e} on service.{sibling}"))?;
    }
    Ok(())
}

/// Remove the temporary entries recorded for `new` on `sibling`, and their record.
pub(super) async fn revoke_temporary(
    steps: &RealSteps,
    sibling: &str,
    new: &str,
    p: &ProgressHandle,
) -> Result<String> {
    let entries: Vec<String> = steps
        .state
        .read(|s| {
            s.resources
                .allowlists
                .get(new)
                .and_then(|a| a.earlier.iter().find(|g| g.on == sibling))
                .map(|g| g.entries.clone())
                .unwrap_or_default()
        })
        .await;
    if entries.is_empty() {
        return Ok(String::new());
    }
    let client = &steps.remote.client;
    let sibling_id = steps.service_id(sibling).await?;
    let present = steps.allowlist_entries(&sibling_id).await?;
    for e in entries.iter().filter(|e| contains_cidr(&present, e)) {
        p.status(&format!("removing {e} from service.{sibling}"));
        let listed = present
            .iter()
            .find(|x| cidr_key(x) == cidr_key(e))
            .cloned()
            .unwrap_or_else(|| e.clone());
        client.delete_allowlist_entry(&sibling_id, &listed).await?;
    }
    steps
        .state
        .update(|s| {
            if let Some(a) = s.resources.allowlists.get_mut(new) {
                a.earlier.retain(|g| g.on != sibling);
            }
        })
        .await?;
    Ok(format!(
        "; its temporary allowlist entries on service.{sibling} ({}) are revoked",
        entries.join(", ")
    ))
}

/// Let `key` apply what its relay log holds (up to `Gtid_IO_Pos`, as `st` read it), starting
/// its SQL thread if it was stopped without an error. Fails, saying `unchanged`, when it
/// cannot (an SQL error, or not within the healthy timeout). The failover's candidate and
/// its catch-up sibling both go through it.
pub(super) async fn apply_received(
    steps: &RealSteps,
    conn: &mut crate::sql::SqlConn,
    key: &str,
    st: &crate::observed::ObservedReplication,
    unchanged: &str,
    p: &ProgressHandle,
) -> Result<()> {
    let received = st.gtid_io_pos.clone().unwrap_or_default();
    if received.trim().is_empty() {
        return Ok(());
    }
    if !st.sql_running && st.last_sql_errno != 0 {
        bail!(
            "service.{key} cannot apply what it received ({received}): its SQL thread stopped on error {} ({}); {unchanged}",
            st.last_sql_errno,
            st.last_sql_error
        );
    }
    if !st.sql_running {
        // Stopped by hand, no error: what is in its relay log is applied first.
        conn.start_replication().await?;
    }
    p.status(&format!(
        "waiting for service.{key} to apply what it received ({received})"
    ));
    let applied = conn
        .wait_applied(&received, steps.opts.healthy_timeout)
        .await?;
    if applied != Applied::Reached {
        bail!(
            "service.{key} did not apply what it received ({received}): {}; {unchanged}",
            applied.why_not(steps.opts.healthy_timeout)
        );
    }
    Ok(())
}
