//! `skyplan state rm` and `skyplan state mv`: edit the state by hand, under its lock, without
//! touching anything remote. The edits are the core's (`skyplan_core::state::edit`); this
//! reads, writes (the backend bumps the serial and keeps the previous version in its history)
//! and reports what changed and what the next plan will make of it.

use std::fmt::Write;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::ops::{with_lock, ExitStatus, Workspace};
use crate::printer::Printer;
use crate::state::address::Record;
use crate::state::{edit, State};

/// Forget the records `addresses` name (see [`edit::remove`]).
pub(crate) async fn rm(
    ws: &Workspace,
    addresses: &[String],
    lock_timeout: Duration,
    ui: &Printer,
) -> Result<ExitStatus> {
    let work = async {
        let mut state = stored(ws).await?;
        let before = state.clone();
        let names: Vec<&str> = addresses.iter().map(String::as_str).collect();
        let removed = edit::remove(&mut state, &names)?;
        ws.backend.write(&mut state).await?;
        Ok((before, state, removed))
    };
    let (before, after, removed) = with_lock(ws.backend.as_ref(), lock_timeout, ui, work).await?;
    let mut s = String::new();
    for r in &removed.records {
        let _ = writeln!(s, "Removed {r}");
    }
    let _ = writeln!(
        s,
        "\nForgot {} record{} (state serial {} at {}). Nothing remote was changed.",
        removed.records.len(),
        if removed.records.len() == 1 { "" } else { "s" },
        after.serial,
        ws.backend.describe()
    );
    ui.out(&s);
    for note in rm_notes(ws, &before, &after, &removed) {
        ui.info(&note);
    }
    Ok(ExitStatus::Success)
}

/// What the user should know about the next plan after `rm`.
fn rm_notes(ws: &Workspace, before: &State, after: &State, removed: &edit::Removed) -> Vec<String> {
    let file = ws.file.display();
    let mut notes = Vec::new();
    for key in &removed.services {
        if ws.topology.services.contains_key(key) {
            notes.push(format!(
                "Note: [services.{key}] is still in {file}: the next plan shows the existing service as an adoption (or a create if it is gone). Remove it from {file} to stop managing it."
            ));
        }
    }
    // A forgotten link's replication user still sits on a source skyplan manages: no link
    // owns it any more, so the next plan offers to drop it.
    for rec in &removed.gone {
        let Record::Replication(replica) = rec else {
            continue;
        };
        let Some(user) = before
            .resources
            .replications
            .get(replica)
            .and_then(|l| l.replication_user.as_ref())
        else {
            continue;
        };
        let on = before
            .resources
            .replication_users
            .get(user)
            .map(|u| u.on.as_str())
            .or_else(|| {
                before
                    .resources
                    .replications
                    .get(replica)
                    .map(|l| l.source.as_str())
            });
        if let Some(on) = on.filter(|on| after.resources.services.contains_key(*on)) {
            notes.push(format!(
                "Note: service.{on} still has the replication user {user} that service.{replica} replicates with. No recorded link owns it now, so the next plan offers to drop it, which would stop that replication: review that step before you apply."
            ));
        }
    }
    notes
}

/// Rename service `from` to `to` (both `service.KEY`) and every record naming it (see
/// [`edit::rename_service`]).
pub(crate) async fn mv(
    ws: &Workspace,
    from: &str,
    to: &str,
    lock_timeout: Duration,
    ui: &Printer,
) -> Result<ExitStatus> {
    let work = async {
        let mut state = stored(ws).await?;
        let moved = edit::rename_service(&mut state, from, to)?;
        ws.backend.write(&mut state).await?;
        Ok((state, moved))
    };
    let (after, moved) = with_lock(ws.backend.as_ref(), lock_timeout, ui, work).await?;
    let mut s = format!("Moved service.{} to service.{}\n", moved.from, moved.to);
    for (old, new) in &moved.renamed {
        if old != &format!("service.{}", moved.from) {
            let _ = writeln!(s, "  {old} -> {new}");
        }
    }
    for u in &moved.updated {
        let _ = writeln!(s, "  {u}: now names service.{}", moved.to);
    }
    let _ = writeln!(
        s,
        "\nState serial {} at {}. Nothing remote was changed.",
        after.serial,
        ws.backend.describe()
    );
    ui.out(&s);
    let (old, new) = (&moved.from, &moved.to);
    if !ws.topology.services.contains_key(new) {
        ui.info(&format!(
            "Note: {} has no [services.{new}] yet: rename [services.{old}] to [services.{new}] there (and every `from = \"{old}\"`) before the next plan, which otherwise sees service.{new} gone from the file.",
            ws.file.display()
        ));
    }
    ui.info(&format!(
        "Note: the service keeps its tag {}={old} until skyplan next sets its tags; the tag only tells other workspaces who owns it.",
        crate::ownership::KEY_TAG
    ));
    Ok(ExitStatus::Success)
}

async fn stored(ws: &Workspace) -> Result<State> {
    match ws.backend.read().await? {
        Some(s) => Ok(s),
        None => bail!(
            "no state at {} (nothing applied yet): nothing to edit",
            ws.backend.describe()
        ),
    }
}
