//! `skyplan state …`: inspect, move and edit the state, on either backend (local file or
//! MariaDB). Writes (push, migrate, rm, mv) hold the state lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::common::{lock_timeout, topology_path};
use crate::ops::ExitStatus;
use crate::ops::Workspace;
use crate::printer::Printer;
use crate::state::{address, codec, State};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    command: Command,
    /// Use this state backend instead of the topology's (a path or mysql:// URL).
    #[arg(long, global = true)]
    state_backend: Option<String>,
    /// Wait this long for the state lock (writes only: push, migrate, rm, mv), e.g. 30s.
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
    /// Show one record (e.g. service.primary, backup.primary, replication.secondary) as JSON.
    Show {
        /// An address as `state list` prints it (older spellings such as backup.REPLICA too).
        address: String,
        /// Topology file whose state to use (default: skyplan.toml).
        file: Option<PathBuf>,
    },
    /// Forget records without deleting anything remote (service.KEY: with its backup,
    /// restore, replication, allowlist and replication user records as a replica).
    #[command(
        after_help = "The last argument is the topology file when it is not an address \
                            (e.g. global-replication.toml). Refused, naming what else must go, \
                            when a record that stays would still name a forgotten service."
    )]
    Rm {
        /// Addresses as `state list` prints them, then optionally the topology file.
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
    },
    /// Rename a service key (service.FROM to service.TO) and every record that names it,
    /// without a destroy/create; rename it in the topology too.
    Mv {
        /// The service's current address, e.g. service.secondary.
        from: String,
        /// Its new address, e.g. service.west (refused if the state already uses it).
        to: String,
        /// Topology file (default: skyplan.toml).
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

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let backend_override = args.state_backend.as_deref();
    match args.command {
        Command::List { file } => {
            let (_, state) = read(ui, file, backend_override).await?;
            let mut s = String::new();
            for a in address::addresses(&state) {
                s.push_str(&a);
                s.push('\n');
            }
            ui.out(&s);
        }
        Command::Show { address, file } => {
            // The file may come first too (`state show FILE ADDRESS`).
            let (address, file) = match file {
                Some(f)
                    if super::output::looks_like_file(Path::new(&address))
                        && !super::output::looks_like_file(&f) =>
                {
                    (f.display().to_string(), Some(PathBuf::from(address)))
                }
                other => (address, other),
            };
            let (_, state) = read(ui, file, backend_override).await?;
            let v = address::show(&state, &address)?;
            ui.out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
        }
        Command::Rm { mut addresses } => {
            let file = split_file(&mut addresses)?;
            let ws = super::common::load_workspace(ui, &topology_path(file), backend_override)?;
            return crate::ops::state_edit::rm(&ws, &addresses, args.lock_timeout, ui).await;
        }
        Command::Mv { from, to, file } => {
            let ws = super::common::load_workspace(ui, &topology_path(file), backend_override)?;
            return crate::ops::state_edit::mv(&ws, &from, &to, args.lock_timeout, ui).await;
        }
        Command::Pull { file } => {
            let (_, state) = read(ui, file, backend_override).await?;
            ui.out(&format!("{}\n", codec::to_json(&state)?));
        }
        Command::Push { file, from, force } => {
            let ws = super::common::load_workspace(ui, &topology_path(file), backend_override)?;
            let bytes = skyplan_os::read_bounded(&from, skyplan_os::MAX_FILE_BYTES)
                .with_context(|| format!("cannot read {}", from.display()))?;
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
    Ok(ExitStatus::Success)
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

/// `state rm ADDRESS... [FILE]`: the last argument is the topology file when it is not an
/// address (no known `KIND.` prefix) but looks like a file (it exists, ends in `.toml` or has a
/// `/`), or when it is an existing `.toml` file that happens to look like an address.
fn split_file(args: &mut Vec<String>) -> Result<Option<PathBuf>> {
    let Some(last) = args.last() else {
        return Ok(None);
    };
    let is_address = address::KINDS.iter().any(|k| {
        last.strip_prefix(k)
            .and_then(|r| r.strip_prefix('.'))
            .is_some_and(|r| !r.is_empty())
    });
    let exists = Path::new(last).is_file();
    // Not an address and not a file either (a typo like `servce.a`): left as an address, so
    // the error lists the address kinds.
    let is_file = if is_address {
        last.ends_with(".toml") && exists
    } else {
        exists || last.ends_with(".toml") || last.contains('/')
    };
    if !is_file {
        return Ok(None);
    }
    if args.len() == 1 {
        bail!("`{last}` is not an address: `skyplan state rm` takes ADDRESS... [FILE] (see `skyplan state list`)");
    }
    Ok(args.pop().map(PathBuf::from))
}
