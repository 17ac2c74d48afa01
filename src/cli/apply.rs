//! `skyplan apply [FILE | PLANFILE]`: plan (or load a saved plan), confirm, carry it out.

use crate::ops::ExitStatus;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use anyhow::{Context, Result};

use super::common::{lock_timeout, topology_path};
use crate::apply::events::JsonEvents;
use crate::ops::apply::{execute, ExecuteOptions};
use crate::plan::planfile;
use crate::printer::Printer;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Topology file or saved plan file (default: skyplan.toml).
    file: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long)]
    auto_approve: bool,
    /// How many actions may run at once.
    #[arg(long, default_value_t = 10)]
    parallelism: usize,
    #[command(flatten)]
    sql: super::common::SqlBound,
    /// Wait this long for a state lock held by another run (e.g. 30s, 5m).
    #[arg(long, value_parser = lock_timeout, default_value = "0s")]
    lock_timeout: Duration,
    /// Use this state backend instead of the topology's.
    #[arg(long)]
    state_backend: Option<String>,
    /// Allow a failover: promote a replica of a lost primary with what it received, losing
    /// what it had not (the plan shows an estimate). A saved plan carries its own.
    #[arg(long)]
    allow_data_loss: bool,
    /// Rebuild ADDRESS although nothing drifted (repeatable): a replica (service.KEY or
    /// replication.KEY) is re-seeded, any other service replaced. Both wipe data.
    #[arg(long, value_name = "ADDRESS")]
    replace: Vec<String>,
    /// Plan only ADDRESS and what it depends on (repeatable): a partial plan.
    #[arg(long, value_name = "ADDRESS")]
    target: Vec<String>,
    /// Stream the apply as JSON events on stdout, one per line (schemas/events.schema.json);
    /// people's output goes to stderr. Needs --auto-approve or a saved plan: a stream has no
    /// prompt.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(args: Args, ui: &Printer) -> Result<ExitStatus> {
    let events = args
        .json
        .then(|| Arc::new(JsonEvents::to(Box::new(ui.out_stream()))));
    let result = run_with(args, ui, events.clone()).await;
    // The error ends the stream too, as its last event (stderr says it as usual).
    if let (Some(ev), Err(e)) = (&events, &result) {
        ev.diagnostic(&crate::hints::complete(&format!("{e:#}")));
    }
    result
}

async fn run_with(args: Args, ui: &Printer, events: Option<Arc<JsonEvents>>) -> Result<ExitStatus> {
    let path = topology_path(args.file);
    let bytes = skyplan_os::read_bounded(&path, skyplan_os::MAX_FILE_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let opts = ExecuteOptions {
        auto_approve: args.auto_approve,
        parallelism: args.parallelism,
        sql_parallelism: args.sql.sql_parallelism,
        lock_timeout: args.lock_timeout,
        destroy: false,
        flags: crate::plan::PlanFlags {
            allow_data_loss: args.allow_data_loss,
            replace: args.replace,
            target: args.target,
        },
        events,
    };
    let saved_plan = planfile::looks_like_plan(&bytes);
    if opts.events.is_some() && !opts.auto_approve && !saved_plan {
        anyhow::bail!("apply --json needs --auto-approve (or a saved plan): an event stream cannot carry a prompt; nothing was changed");
    }
    if saved_plan {
        let saved = planfile::parse(&bytes, &path.display().to_string())?;
        // Hints name the saved plan's topology, not the plan file.
        crate::hints::set_file(std::path::Path::new(&saved.topology_file));
        // The saved plan names its topology; state and staleness are checked against it.
        let ws = super::common::load_workspace(
            ui,
            std::path::Path::new(&saved.topology_file),
            args.state_backend.as_deref(),
        )
        .with_context(|| {
            format!(
                "loading {}, the topology of the saved plan",
                saved.topology_file
            )
        })?;
        return execute(
            &ws,
            Some(saved),
            ui,
            ExecuteOptions {
                auto_approve: true,
                ..opts
            },
        )
        .await
        .map(ExitStatus::from);
    }
    // The topology as read above: a file is read once per command.
    let ws = super::common::workspace_from_bytes(ui, &path, bytes, args.state_backend.as_deref())?;
    execute(&ws, None, ui, opts).await.map(ExitStatus::from)
}
