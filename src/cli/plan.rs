//! `skyplan plan`: refresh, diff, show the plan; optionally save it or print JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::common::{lock_timeout, topology_path};
use crate::ops::ExitStatus;
use crate::ops::{self, PlanOptions};
use crate::plan::render;
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Topology file (default: skyplan.toml).
    file: Option<PathBuf>,
    /// Save the plan to this file for `skyplan apply PLANFILE`.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit 0 when there is nothing to do, 2 when there are changes or drift, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Print the plan as JSON (format: schemas/plan.schema.json); the same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// `text` (the default), `json` (schemas/plan.schema.json) or `markdown` (a document for
    /// a pull-request comment: flagged steps first, drift, a table of actions, the topology
    /// before and after as Mermaid diagrams).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Look at the real world first (default true); `--refresh=false` trusts the recorded state.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    refresh: bool,
    /// Only show drift and offer to update the state to match reality (nothing remote changes).
    #[arg(long)]
    refresh_only: bool,
    /// Plan a destroy of everything in the state.
    #[arg(long)]
    destroy: bool,
    /// Use this state backend instead of the topology's (a path or mysql:// URL).
    #[arg(long)]
    state_backend: Option<String>,
    /// Wait this long for a state lock held by another run (e.g. 30s, 5m).
    #[arg(long, value_parser = lock_timeout, default_value = "0s")]
    lock_timeout: std::time::Duration,
    /// How many services to refresh at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
    #[command(flatten)]
    sql: super::common::SqlBound,
    /// Skip the confirmation of `--refresh-only`'s state update.
    #[arg(long)]
    auto_approve: bool,
    /// Allow a failover: promote a replica of a lost primary with what it received, losing
    /// what it had not (the plan shows an estimate). Saved with `--out`.
    #[arg(long)]
    allow_data_loss: bool,
    /// Rebuild ADDRESS although nothing drifted (repeatable): a replica (service.KEY or
    /// replication.KEY) is re-seeded, any other service replaced. Both wipe data.
    #[arg(long, value_name = "ADDRESS")]
    replace: Vec<String>,
    /// Plan only ADDRESS and what it depends on (repeatable): a partial plan.
    #[arg(long, value_name = "ADDRESS")]
    target: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Text,
    Json,
    Markdown,
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let format = match (args.json, args.format) {
        (true, _) => Format::Json,
        (false, f) => f.unwrap_or(Format::Text),
    };
    if args.refresh_only && format == Format::Markdown {
        anyhow::bail!("--refresh-only has no Markdown form: use the text or --json");
    }
    let file = topology_path(args.file);
    let ws = super::common::load_workspace(ui, &file, args.state_backend.as_deref())?;
    if args.refresh_only {
        let opts = ops::apply::RefreshOnlyOptions {
            auto_approve: args.auto_approve,
            lock_timeout: args.lock_timeout,
            parallelism: args.parallelism,
            sql_parallelism: args.sql.sql_parallelism,
            json: format == Format::Json,
            detailed_exitcode: args.detailed_exitcode,
        };
        return ops::apply::refresh_only(&ws, ui, opts).await;
    }
    let opts = PlanOptions {
        refresh: args.refresh,
        destroy: args.destroy,
        parallelism: args.parallelism,
        sql_parallelism: args.sql.sql_parallelism,
        flags: crate::plan::PlanFlags {
            allow_data_loss: args.allow_data_loss,
            replace: args.replace,
            target: args.target,
        },
    };
    let (plan, state) = ops::plan(&ws, &opts, ui).await?;
    match format {
        Format::Json => ui.out(&format!("{}\n", serde_json::to_string_pretty(&plan)?)),
        Format::Markdown => ui.out_text(&crate::plan::markdown::render(&plan, &state)),
        Format::Text => ui.out_text(&render::render(&plan, ui.colors)),
    }
    if let Some(out) = &args.out {
        crate::plan::saved::save(&plan, out)
            .with_context(|| format!("saving the plan to {}", out.display()))?;
        ui.info(&format!(
            "\nSaved the plan to {}. To carry out exactly these actions, run:\n  {} apply {}",
            out.display(),
            crate::hints::program(),
            out.display()
        ));
    }
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        ExitStatus::Changes
    } else {
        ExitStatus::Success
    })
}
