//! `skyplan show [PLANFILE] [--json]`: a saved plan, or (without a file) the current state.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::topology_path;
use crate::ops::ExitStatus;
use crate::plan::{planfile, render};
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A saved plan file. Without it, the state of the topology given by --topology.
    planfile: Option<PathBuf>,
    /// Topology whose state to show (default: skyplan.toml).
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Print JSON (the plan file's or the state's format) instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Use this state backend instead of the topology's.
    #[arg(long)]
    state_backend: Option<String>,
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    if let Some(p) = &args.planfile {
        let bytes = skyplan_os::read_bounded(p, skyplan_os::MAX_FILE_BYTES)
            .with_context(|| format!("cannot read {}", p.display()))?;
        if planfile::looks_like_plan(&bytes) {
            let plan = planfile::parse(&bytes, &p.display().to_string())?;
            if args.json {
                ui.out(&format!("{}\n", serde_json::to_string_pretty(&plan)?));
            } else {
                ui.out(&format!(
                    "Saved plan {} (state serial {}):\n\n",
                    p.display(),
                    plan.serial
                ));
                ui.out_text(&render::render(&plan, ui.colors));
            }
            return Ok(ExitStatus::Success);
        }
        // A topology file: show its state (from the bytes read above: one read per command).
        let ws = super::common::workspace_from_bytes(ui, p, bytes, args.state_backend.as_deref())?;
        return show_state(&ws, args.json, ui).await;
    }
    let file = topology_path(args.topology);
    let ws = super::common::load_workspace(ui, &file, args.state_backend.as_deref())?;
    show_state(&ws, args.json, ui).await
}

async fn show_state(ws: &crate::ops::Workspace, json: bool, ui: &Printer) -> Result<ExitStatus> {
    let Some(state) = ws.backend.read().await? else {
        ui.info(&format!(
            "No state yet at {} (nothing applied).",
            ws.backend.describe()
        ));
        return Ok(ExitStatus::Success);
    };
    if json {
        ui.out(&format!("{}\n", crate::state::codec::to_json(&state)?));
    } else {
        ui.out(&crate::ops::describe_state(&state, &ws.backend.describe()));
    }
    Ok(ExitStatus::Success)
}
