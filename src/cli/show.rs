//! `skyplan show [PLANFILE] [--json]`: a saved plan, or (without a file) the current state.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::topology_path;
use super::EXIT_OK;
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

pub(super) async fn run(args: Args, ui: &Printer) -> Result<i32> {
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
            return Ok(EXIT_OK);
        }
        // A topology file: show its state.
        return show_state(p.clone(), args.state_backend.as_deref(), args.json, ui).await;
    }
    show_state(
        topology_path(args.topology),
        args.state_backend.as_deref(),
        args.json,
        ui,
    )
    .await
}

async fn show_state(file: PathBuf, backend: Option<&str>, json: bool, ui: &Printer) -> Result<i32> {
    let ws = super::common::load_workspace(ui, &file, backend)?;
    let Some(state) = ws.backend.read().await? else {
        ui.info(&format!(
            "No state yet at {} (nothing applied).",
            ws.backend.describe()
        ));
        return Ok(EXIT_OK);
    };
    if json {
        ui.out(&format!("{}\n", crate::state::codec::to_json(&state)?));
    } else {
        ui.out(&crate::ops::describe_state(&state, &ws.backend.describe()));
    }
    Ok(EXIT_OK)
}
