//! `skyplan graph [FILE]`: the plan's dependency graph in DOT, or, when nothing is planned,
//! the managed services and their links.

use std::path::PathBuf;

use anyhow::Result;

use super::common::topology_path;
use crate::ops::ExitStatus;
use crate::ops::{self, PlanOptions};
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Topology file (default: skyplan.toml).
    file: Option<PathBuf>,
    /// Look at the real world first (default false: graph of the plan against the state file).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    refresh: bool,
    /// Use this state backend instead of the topology's.
    #[arg(long)]
    state_backend: Option<String>,
    /// `dot` (Graphviz, the default) or `mermaid` (rendered inline by GitHub and GitLab).
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Dot,
    Mermaid,
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let file = topology_path(args.file);
    let ws = super::common::load_workspace(ui, &file, args.state_backend.as_deref())?;
    let opts = PlanOptions {
        refresh: args.refresh,
        destroy: false,
        parallelism: 10,
        sql_parallelism: crate::remote::DEFAULT_SQL_PARALLELISM,
        flags: Default::default(),
    };
    let (plan, state) = ops::plan(&ws, &opts, ui).await?;
    // Nothing to do: draw what is managed rather than an empty graph of no actions.
    use crate::plan::graph;
    ui.out(&match (plan.actions.is_empty(), args.format) {
        (true, Format::Dot) => graph::state_to_dot(&state),
        (true, Format::Mermaid) => graph::state_to_mermaid(&state),
        (false, Format::Dot) => graph::to_dot(&plan.actions),
        (false, Format::Mermaid) => graph::to_mermaid(&plan.actions),
    });
    Ok(ExitStatus::Success)
}
