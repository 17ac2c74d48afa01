//! `skyplan force-unlock [FILE] [LOCK_ID]`: remove a lock a crashed run left behind.

use std::path::PathBuf;

use anyhow::Result;

use super::common::{confirm, topology_path, Ui};
use super::{EXIT_ERROR, EXIT_OK};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Topology file (default: skyplan.toml).
    file: Option<PathBuf>,
    /// Only remove the lock if its id is this one (shown in the "state is locked" error).
    #[arg(long)]
    id: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    force: bool,
    /// MariaDB backend: also kill the holder's lock connection.
    #[arg(long)]
    kill_holder: bool,
    #[arg(long)]
    state_backend: Option<String>,
}

pub async fn run(args: Args, ui: &Ui) -> Result<i32> {
    let file = topology_path(args.file);
    let ws = crate::engine::Workspace::load(&file, args.state_backend.as_deref())?;
    let Some(holder) = ws.backend.lock_holder().await? else {
        ui.info(&format!("{} is not locked.", ws.backend.describe()));
        return Ok(EXIT_OK);
    };
    ui.info(&format!(
        "Lock on {}:\n  id: {}\n  held by pid {} on {} ({}) since {}\n  command: {}",
        ws.backend.describe(),
        holder.id,
        holder.pid,
        holder.host,
        holder.user,
        holder.created_at,
        holder.command
    ));
    if !args.force
        && !confirm(
            ui,
            "Remove this lock? A run that still holds it could then corrupt the state.",
        )?
    {
        ui.error("force-unlock cancelled");
        return Ok(EXIT_ERROR);
    }
    let expected = args.id.as_deref().or(Some(holder.id.as_str()));
    match ws.backend.force_unlock(expected, args.kill_holder).await? {
        Some(_) => ui.info("Lock removed."),
        None => ui.info("The lock was already gone."),
    }
    Ok(EXIT_OK)
}
