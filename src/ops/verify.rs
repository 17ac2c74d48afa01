//! `skyplan verify`: for each replication link of the topology, wait until the replica has
//! applied its source's position, then compare every user table (row count and
//! `CHECKSUM TABLE`) between the two. Read-only on both sides; no lock (nothing is written,
//! the state included).
//!
//! Each table is compared at one point of the source's history, even with writers running:
//!
//! 1. open a read-only consistent snapshot on the source and read its GTID position `P`;
//! 2. wait until the replica has applied `P` (`MASTER_GTID_WAIT`, `--timeout`), then open a
//!    snapshot there;
//! 3. count and checksum the table in both snapshots (at once), close them.
//!
//! The replica's snapshot may include a few transactions past `P` when the source kept writing
//! meanwhile, so a table that is not equal is compared again, up to [`ATTEMPTS`] times in all,
//! before it is reported. The replica's snapshot also says which position it holds
//! (`mysql.gtid_slave_pos`, read in the snapshot): a table that differed only when the replica
//! was past `P` is *unsettled* (the writer may explain it), not different. A real difference
//! (a row written on the replica, a lost or duplicated row) is different at `P` too.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use skyplan_core::verify::{
    self, Attempt, Link, LinkReport, TableId, TableReport, VerifyReport, ATTEMPTS,
};

use crate::ops::Workspace;
use crate::printer::Printer;
use crate::remote::Remote;
use crate::sql::SqlConn;
use crate::state::State;

pub(crate) struct VerifyOptions {
    /// How long each wait for a replica to reach its source's position may take.
    pub timeout: Duration,
}

pub(crate) enum VerifyOutcome {
    /// The topology has no replication links.
    NoLinks,
    Report(VerifyReport),
}

/// Verify every link of the workspace's topology.
pub(crate) async fn verify(
    ws: &Workspace,
    ui: &Printer,
    opts: &VerifyOptions,
) -> Result<VerifyOutcome> {
    let links = verify::links(&ws.topology);
    if links.is_empty() {
        return Ok(VerifyOutcome::NoLinks);
    }
    let state = ws.read_state().await?;
    // Every link must exist before anything is compared: a half-verified topology is no answer.
    for link in &links {
        check_applied(ws, &state, link)?;
    }
    let remote =
        crate::ops::connect(ws, &state, ui, crate::remote::DEFAULT_SQL_PARALLELISM).await?;
    let mut reports = Vec::new();
    for link in &links {
        let report = verify_link(&remote, &state, link, ui, opts)
            .await
            .with_context(|| {
                let name = |key: &str| &state.resources.services[key].spec.name;
                format!(
                    "verifying replication.{} ({} -> {})",
                    link.replica,
                    name(&link.source),
                    name(&link.replica)
                )
            })?;
        reports.push(report);
    }
    Ok(VerifyOutcome::Report(VerifyReport::new(reports)))
}

/// The link's services and its replication are in the state, wired as the topology says.
fn check_applied(ws: &Workspace, state: &State, link: &Link) -> Result<()> {
    let file = ws.file.display();
    let r = &state.resources;
    for key in [&link.source, &link.replica] {
        let Some(rec) = r.services.get(key) else {
            bail!(
                "cannot verify replication.{}: service.{key} is not in the state (not applied yet); run `skyplan apply {file}` first",
                link.replica
            );
        };
        if rec.fqdn.is_none() || rec.port.is_none() {
            bail!(
                "cannot verify replication.{}: service.{key} ({}) has no endpoint yet; run `skyplan apply {file}` first",
                link.replica,
                rec.spec.name
            );
        }
    }
    match r.replications.get(&link.replica) {
        None => bail!(
            "cannot verify replication.{0}: service.{0} does not replicate from service.{1} yet (not in the state); run `skyplan apply {file}` first",
            link.replica,
            link.source
        ),
        Some(rec) if rec.source != link.source => bail!(
            "cannot verify replication.{0}: the state records it replicating from service.{1}, the topology from service.{2}; run `skyplan apply {file}` first",
            link.replica,
            rec.source,
            link.source
        ),
        Some(_) => Ok(()),
    }
}

async fn verify_link(
    remote: &Remote,
    state: &State,
    link: &Link,
    ui: &Printer,
    opts: &VerifyOptions,
) -> Result<LinkReport> {
    let name = |key: &str| state.resources.services[key].spec.name.clone();
    let (source_name, replica_name) = (name(&link.source), name(&link.replica));
    let title = format!("{source_name} -> {replica_name}");
    let mut source = remote.sql(state, &link.source).await?;
    let mut replica = remote.sql(state, &link.replica).await?;
    source.prepare_verify_session().await?;
    replica.prepare_verify_session().await?;

    // Catch up first (the table lists must include what the replica has yet to apply).
    let position = source.gtid_binlog_pos().await?;
    ui.info(&format!(
        "verify {title}: waiting for the replica to apply the source's position {}",
        crate::gtid::shown(&position)
    ));
    wait_for(&mut replica, &position, opts.timeout).await?;

    let tables = verify::all_tables(&source.user_tables().await?, &replica.user_tables().await?);
    if tables.is_empty() {
        ui.info(&format!("verify {title}: no user tables"));
    }
    // Whether the replica can say exactly which position its snapshot holds.
    let exact_replica = replica.slave_pos_is_transactional().await;
    let mut reports = Vec::with_capacity(tables.len());
    for table in &tables {
        let report = compare_table(
            &mut source,
            &mut replica,
            table,
            &title,
            exact_replica,
            ui,
            opts,
        )
        .await?;
        reports.push(report);
    }
    // Best effort: the work is done, a failed goodbye changes nothing.
    let _ = source.disconnect().await;
    let _ = replica.disconnect().await;
    Ok(LinkReport::new(link, &source_name, &replica_name, reports))
}

/// Compare one table, again while it is not equal, at most [`ATTEMPTS`] times.
async fn compare_table(
    source: &mut SqlConn,
    replica: &mut SqlConn,
    table: &TableId,
    title: &str,
    exact_replica: bool,
    ui: &Printer,
    opts: &VerifyOptions,
) -> Result<TableReport> {
    let mut attempts: Vec<Attempt> = Vec::new();
    loop {
        // Catch up to the source's current position first, so that the wait after the
        // snapshot is short and the replica has little queued to run past it with.
        let now = source.gtid_binlog_pos().await?;
        wait_for(replica, &now, opts.timeout).await?;

        source.begin_snapshot().await?;
        let (position, exact) = source.snapshot_gtid_pos().await?;
        wait_for(replica, &position, opts.timeout).await?;
        replica.begin_snapshot().await?;
        let applied = if exact && exact_replica {
            replica.snapshot_slave_pos().await.ok()
        } else {
            None
        };
        let (s, r) = tokio::join!(source.table_side(table), replica.table_side(table));
        let (end_s, end_r) = tokio::join!(source.end_snapshot(), replica.end_snapshot());
        let (s, r) = (s?, r?);
        end_s?;
        end_r?;
        attempts.push(Attempt {
            source: s,
            replica: r,
            same_position: applied.and_then(|a| verify::same_position(&position, &a)),
            position,
        });
        let report = verify::judge(table, &attempts);
        if !verify::again(&attempts, ATTEMPTS) {
            ui.info(&format!("verify {title}: {table} {}", report.verdict()));
            return Ok(report);
        }
        ui.info(&format!(
            "verify {title}: {table} {}; comparing again ({} of {ATTEMPTS})",
            report.verdict(),
            attempts.len() + 1
        ));
    }
}

/// Wait until `replica` has applied `position`; on timeout, an error saying how far behind the
/// replica is and how its replication threads are (the caller names the link).
async fn wait_for(replica: &mut SqlConn, position: &str, timeout: Duration) -> Result<()> {
    if replica.master_gtid_wait(position, timeout).await? {
        return Ok(());
    }
    let at = replica.gtid_slave_pos().await.unwrap_or_default();
    let threads = match replica.replication_status().await {
        Ok(s) if !s.configured => "; replication is not configured on the replica".to_string(),
        Ok(s) => {
            let yes = |b: bool| if b { "running" } else { "stopped" };
            let mut t = format!(
                "; IO thread {}, SQL thread {}",
                yes(s.io_running),
                yes(s.sql_running)
            );
            if let Some(secs) = s.seconds_behind_master {
                t.push_str(&format!(", {secs}s behind"));
            }
            if s.last_io_errno != 0 {
                t.push_str(&format!(
                    ", last IO error {}: {}",
                    s.last_io_errno, s.last_io_error
                ));
            }
            if s.last_sql_errno != 0 {
                t.push_str(&format!(
                    ", last SQL error {}: {}",
                    s.last_sql_errno, s.last_sql_error
                ));
            }
            t
        }
        Err(_) => String::new(),
    };
    bail!(
        "the replica did not apply the source's position within {}s: {}{threads}",
        timeout.as_secs_f64(),
        verify::describe_lag(position, &at)
    )
}
