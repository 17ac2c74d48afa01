//! `skyplan force-unlock [FILE] [--id LOCK_ID]`: remove a lock a crashed run left behind.
//!
//! It shows the holder and asks for "yes" first: removing a lock that a live run still holds
//! lets a second run write the same state at the same time. Without a terminal it refuses
//! unless `--force` is given.

use crate::state::LockInfoExt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::common::topology_path;
use crate::ops::ExitStatus;
use crate::printer::Printer;
use crate::state::{LockInfo, StateError};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
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
    /// Use this state backend instead of the topology's (a path or mysql:// URL).
    #[arg(long)]
    state_backend: Option<String>,
}

/// Who holds the lock: nobody, a known holder, or a lock that names no (readable) holder.
enum Lock {
    Free,
    Held(LockInfo),
    Anonymous,
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let file = topology_path(args.file);
    let ws = super::common::load_workspace(ui, &file, args.state_backend.as_deref())?;
    let location = ws.backend.describe();
    let expected = match find_lock(&ws, ui).await? {
        Lock::Free => {
            ui.info(&format!("{location} is not locked."));
            return Ok(ExitStatus::Success);
        }
        Lock::Held(holder) => {
            ui.info(&format!(
                "Lock on {location}:\n  id: {}\n  held by pid {} on {} ({}) since {}\n  command: {}",
                holder.id, holder.pid, holder.host, holder.user, holder.created_at, holder.command
            ));
            Some(args.id.unwrap_or(holder.id))
        }
        Lock::Anonymous => {
            ui.info(&format!(
                "{location} is locked, but the lock names no readable holder."
            ));
            args.id
        }
    };
    if !args.force {
        if !crate::printer::can_prompt() {
            ui.error("refusing to remove the lock without confirmation: stdin is not a terminal (use --force if you are sure no run holds it)");
            return Ok(ExitStatus::Failure);
        }
        if !ui.confirm("Remove this lock? If the run that holds it is still going, it and the next run could both write the state.",
        )? {
            ui.error("force-unlock cancelled; the lock is still there");
            return Ok(ExitStatus::Failure);
        }
    }
    match ws
        .backend
        .force_unlock(expected.as_deref(), args.kill_holder)
        .await?
    {
        Some(_) => {}
        None => ui.info("The lock record was already gone."),
    }
    // On MariaDB the lock is the holder's connection: clearing the record alone does not free
    // it. Look again rather than claim success.
    match find_lock(&ws, ui).await? {
        Lock::Free => {
            ui.info("Lock removed.");
            Ok(ExitStatus::Success)
        }
        Lock::Held(_) | Lock::Anonymous => {
            ui.error("the holder's record was removed, but its connection still holds the lock; end it with --kill-holder (or stop that run)");
            Ok(ExitStatus::Failure)
        }
    }
}

/// The lock's holder, or whether there is a lock at all when it names none: then the only way
/// to know is to try to take it (at once, and give it back).
async fn find_lock(ws: &crate::ops::Workspace, ui: &Printer) -> Result<Lock> {
    if let Some(h) = ws.backend.lock_holder().await? {
        return Ok(Lock::Held(h));
    }
    match ws
        .backend
        .lock(LockInfo::for_this_process(), Duration::ZERO, ui)
        .await
    {
        Ok(lock) => {
            lock.release().await?;
            Ok(Lock::Free)
        }
        Err(StateError::Locked {
            holder: Some(h), ..
        }) => Ok(Lock::Held(*h)),
        Err(StateError::Locked { holder: None, .. }) => Ok(Lock::Anonymous),
        Err(e) => Err(e.into()),
    }
}
