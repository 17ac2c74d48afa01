//! `skyplan state …`: inspect and move the state, on either backend (local file or MariaDB).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::common::{lock_timeout, topology_path};
use super::EXIT_OK;
use crate::ops::Workspace;
use crate::printer::Printer;
use crate::state::{codec, State};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    command: Command,
    /// Use this state backend instead of the topology's (a path or mysql:// URL).
    #[arg(long, global = true)]
    state_backend: Option<String>,
    /// Wait this long for the state lock (writes only).
    #[arg(long, global = true, value_parser = lock_timeout, default_value = "0s")]
    lock_timeout: Duration,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// List the addresses of everything the state records.
    List {
        /// Topology file whose state to use (default: skyplan.toml).
        file: Option<PathBuf>,
    },
    /// Show one record (e.g. service.primary, replication.secondary) as JSON.
    Show {
        /// The record's address, as `state list` prints it.
        address: String,
        /// Topology file whose state to use (default: skyplan.toml).
        file: Option<PathBuf>,
    },
    /// Print the whole state as JSON.
    Pull {
        /// Topology file whose state to use (default: skyplan.toml).
        file: Option<PathBuf>,
    },
    /// Replace the stored state with a file's (refused on lineage mismatch unless --force).
    Push {
        /// Topology file whose state to use (default: skyplan.toml).
        file: Option<PathBuf>,
        /// The state file (JSON, as `state pull` prints it) to store.
        #[arg(long = "from")]
        from: PathBuf,
        /// Store it even if its lineage differs from the stored state's.
        #[arg(long)]
        force: bool,
    },
    /// The stored versions, newest first.
    History {
        /// Topology file whose state to use (default: skyplan.toml).
        file: Option<PathBuf>,
    },
    /// Move the state to another backend, keeping lineage and serial.
    Migrate {
        /// Topology file whose state to use (default: skyplan.toml).
        file: Option<PathBuf>,
        /// Target backend: a file path or mysql://USER@HOST:PORT/DATABASE.
        #[arg(long)]
        to: String,
    },
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<i32> {
    let backend_override = args.state_backend.as_deref();
    match args.command {
        Command::List { file } => {
            let (_, state) = read(ui, file, backend_override).await?;
            let mut s = String::new();
            for a in addresses(&state) {
                s.push_str(&a);
                s.push('\n');
            }
            ui.out(&s);
        }
        Command::Show { address, file } => {
            let (_, state) = read(ui, file, backend_override).await?;
            let v = record(&state, &address).with_context(|| {
                format!("no `{address}` in the state (see `skyplan state list`)")
            })?;
            ui.out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
        }
        Command::Pull { file } => {
            let (_, state) = read(ui, file, backend_override).await?;
            ui.out(&format!("{}\n", codec::to_json(&state)?));
        }
        Command::Push { file, from, force } => {
            let ws = super::common::load_workspace(ui, &topology_path(file), backend_override)?;
            let bytes =
                std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
            let state = codec::from_json(&bytes, &from.display().to_string())?;
            let push = async { Ok(ws.backend.push(&state, force).await?) };
            crate::ops::with_lock(ws.backend.as_ref(), args.lock_timeout, ui, push).await?;
            ui.info(&format!(
                "Pushed {} (lineage {}, serial {}) to {}.",
                from.display(),
                state.lineage,
                state.serial,
                ws.backend.describe()
            ));
        }
        Command::History { file } => {
            let ws = super::common::load_workspace(ui, &topology_path(file), backend_override)?;
            let mut s = String::new();
            for h in ws.backend.history().await? {
                let who = h
                    .writer
                    .map(|w| format!("{}@{} pid {}: {}", w.user, w.host, w.pid, w.command))
                    .unwrap_or_default();
                s.push_str(&format!(
                    "serial {:<6} {}  {}\n",
                    h.serial,
                    h.written_at.as_deref().unwrap_or("-"),
                    who
                ));
            }
            ui.out(&s);
        }
        Command::Migrate { file, to } => {
            let ws = super::common::load_workspace(ui, &topology_path(file), backend_override)?;
            let target = crate::state::open_backend(&ws.topology, Some(&to))?;
            if target.describe() == ws.backend.describe() {
                bail!(
                    "the state is already at {}: --to must name another backend",
                    target.describe()
                );
            }
            // Both locks, the source's first: no run may write either state meanwhile.
            let (from, to) = (ws.backend.as_ref(), target.as_ref());
            let copy = async { Ok(crate::state::migrate(from, to).await?) };
            let on_target = crate::ops::with_lock(to, args.lock_timeout, ui, copy);
            crate::ops::with_lock(from, args.lock_timeout, ui, on_target).await?;
            ui.info(&format!(
                "Migrated the state from {} to {} (lineage and serial kept). Point the topology's [state] at the new backend.",
                ws.backend.describe(),
                target.describe()
            ));
        }
    }
    Ok(EXIT_OK)
}

async fn read(
    ui: &Printer,
    file: Option<PathBuf>,
    backend: Option<&str>,
) -> Result<(Workspace, State)> {
    let ws = super::common::load_workspace(ui, &topology_path(file), backend)?;
    let Some(state) = ws.backend.read().await? else {
        bail!(
            "no state at {} (nothing applied yet)",
            ws.backend.describe()
        );
    };
    Ok((ws, state))
}

fn addresses(s: &State) -> Vec<String> {
    let r = &s.resources;
    let mut v: Vec<String> = r.services.keys().map(|k| format!("service.{k}")).collect();
    v.extend(r.backups.keys().map(|k| format!("backup.{k}")));
    v.extend(r.restores.keys().map(|k| format!("restore.{k}")));
    v.extend(
        r.allowlists
            .iter()
            .map(|(k, a)| format!("allowlist.{}.{k}", a.on)),
    );
    v.extend(r.replications.keys().map(|k| format!("replication.{k}")));
    v
}

fn record(s: &State, address: &str) -> Option<serde_json::Value> {
    let r = &s.resources;
    let (kind, key) = address.split_once('.')?;
    let v = match kind {
        "service" => serde_json::to_value(r.services.get(key)?),
        "backup" => serde_json::to_value(r.backups.get(key)?),
        "restore" => serde_json::to_value(r.restores.get(key)?),
        "allowlist" => {
            let replica = key.rsplit('.').next()?;
            serde_json::to_value(r.allowlists.get(replica)?)
        }
        "replication" => serde_json::to_value(r.replications.get(key)?),
        _ => return None,
    };
    v.ok()
}
