//! `skyplan output [FILE] [NAME] [--json]`: each managed service's endpoint, role, region,
//! credentials reference and replication source, from the state (Terraform's `output`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::common::topology_path;
use crate::ops::output;
use crate::ops::ExitStatus;
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "With a single argument, it is NAME unless it looks like a file \
                        (it exists, ends in .toml or has a /). Read-only: no refresh, no API \
                        call; never a password (credentials are named by the API call that \
                        returns them)."
)]
pub(super) struct Args {
    /// Topology file (default: skyplan.toml).
    file: Option<PathBuf>,
    /// Only this service: its topology key (primary) or address (service.primary).
    name: Option<String>,
    /// Print JSON (documented by schemas/output.schema.json); with NAME, that service's object.
    #[arg(long)]
    json: bool,
    /// Use this state backend instead of the topology's (a path or mysql:// URL).
    #[arg(long)]
    state_backend: Option<String>,
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    // The file may stand on either side of NAME (`output FILE NAME` or `output NAME FILE`).
    let (file, name) = match (args.file, args.name) {
        (Some(one), None) if !looks_like_file(&one) => (None, Some(one.display().to_string())),
        (Some(first), Some(second))
            if !looks_like_file(&first) && looks_like_file(Path::new(&second)) =>
        {
            (
                Some(PathBuf::from(second)),
                Some(first.display().to_string()),
            )
        }
        (file, name) => (file, name),
    };
    let key = name
        .as_deref()
        .map(|n| n.strip_prefix("service.").unwrap_or(n));
    let ws =
        super::common::load_workspace(ui, &topology_path(file), args.state_backend.as_deref())?;
    let state = match ws.backend.read().await? {
        Some(s) => s,
        None if key.is_none() => {
            ui.info(&format!(
                "No state yet at {} (nothing applied): no outputs.",
                ws.backend.describe()
            ));
            crate::state::new_state()
        }
        None => bail!(
            "no state at {} (nothing applied yet): no output for service.{}",
            ws.backend.describe(),
            key.unwrap_or_default()
        ),
    };
    let outputs = output::outputs(&state, &ws.topology, key)?;
    if args.json {
        let json = match key.and_then(|k| outputs.services.get(k)) {
            Some(one) => serde_json::to_string_pretty(one)?,
            None => serde_json::to_string_pretty(&outputs)?,
        };
        ui.out(&format!("{json}\n"));
    } else if outputs.services.is_empty() {
        ui.info("The state manages no service: no outputs.");
    } else {
        ui.out(&output::render(&outputs));
    }
    Ok(ExitStatus::Success)
}

pub(super) fn looks_like_file(p: &Path) -> bool {
    p.is_file() || p.extension().is_some_and(|e| e == "toml") || p.components().count() > 1
}
